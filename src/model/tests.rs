//! Whole-document tests: round trips of realistic documents, metadata
//! preservation and a table of rejected inputs with their exact paths.

use crate::model::*;

const MINIMAL: &str = include_str!("testdata/minimal.xml");
const QEMU_FULL: &str = include_str!("testdata/qemu-full.xml");
const SNAP_INTERNAL: &str = include_str!("testdata/snapshot-internal.xml");
const SNAP_DISK_ONLY: &str = include_str!("testdata/snapshot-disk-only.xml");
const SNAP_EXTERNAL: &str = include_str!("testdata/snapshot-external-vm.xml");

fn secure() -> FormatOptions {
    FormatOptions {
        id: None,
        secure: true,
    }
}

pub(super) fn parse(xml: &str) -> DomainDef {
    match DomainDef::from_xml(xml) {
        Ok(d) => d,
        Err(e) => panic!("parse failed: {e}"),
    }
}

fn parse_snap(xml: &str) -> SnapshotDef {
    match SnapshotDef::from_xml(xml) {
        Ok(d) => d,
        Err(e) => panic!("parse failed: {e}"),
    }
}

/// parse → format → parse is equal, and formatting is a fixed point.
pub(super) fn assert_domain_round_trip(xml: &str) -> String {
    let opts = secure();
    let first = parse(xml);
    let out = first.to_xml(&opts);
    let second = parse(&out);
    assert_eq!(first, second, "reparse differs:\n{out}");
    assert_eq!(second.to_xml(&opts), out, "format is not a fixed point");
    out
}

fn assert_snapshot_round_trip(xml: &str) -> String {
    let opts = secure();
    let first = parse_snap(xml);
    let out = first.to_xml(&opts);
    let second = parse_snap(&out);
    assert_eq!(first, second, "reparse differs:\n{out}");
    assert_eq!(second.to_xml(&opts), out, "format is not a fixed point");
    out
}

#[test]
fn minimal_test_domain() {
    let d = parse(MINIMAL);
    assert_eq!(d.domain_type, DomainType::Test);
    assert_eq!(d.name, "a");
    assert_eq!(d.memory_kib, 1024);
    assert_eq!(d.vcpus(), 1);
    assert_eq!(d.current_memory(), 1024);
    assert_eq!(d.os.os_type, OsType::Hvm);
    assert_eq!(d.uuid.get_version_num(), 4, "missing uuid is generated");
    assert_domain_round_trip(MINIMAL);
    let out = d.to_xml(&secure());
    let expected = format!(
        "<domain type='test'>\n  <name>a</name>\n  <uuid>{}</uuid>\n  <memory unit='KiB'>1024</memory>\n  <vcpu>1</vcpu>\n  <os>\n    <type>hvm</type>\n  </os>\n  <devices>\n  </devices>\n</domain>\n",
        d.uuid
    );
    assert_eq!(out, expected);
}

#[test]
fn two_parses_generate_different_uuids() {
    assert_ne!(parse(MINIMAL).uuid, parse(MINIMAL).uuid);
}

#[test]
fn full_qemu_domain_is_canonical() {
    let d = parse(QEMU_FULL);
    let opts = FormatOptions {
        id: Some(7),
        secure: true,
    };
    assert_eq!(d.to_xml(&opts), QEMU_FULL);
    assert_domain_round_trip(QEMU_FULL);

    assert_eq!(d.memory_kib, 4 << 20);
    assert_eq!(d.current_memory(), 2 << 20);
    assert_eq!(d.vcpus(), 2);
    assert_eq!(d.max_vcpus, 4);
    assert_eq!(d.owner_uid(), Some(1000));
    assert_eq!(
        d.os.kernel.as_deref(),
        Some("/var/lib/libvirt/boot/vmlinuz")
    );
    assert_eq!(d.on_crash, Some(LifecycleAction::CoredumpRestart));
    let dev = &d.devices;
    assert_eq!(dev.disks.len(), 3);
    assert_eq!(dev.disks[2].device, devices::DiskDevice::Cdrom);
    assert!(dev.disks[2].source.is_none());
    assert_eq!(dev.controllers.len(), 7);
    assert_eq!(dev.interfaces[0].mac.to_string(), "52:54:00:6b:3c:58");
    assert_eq!(
        dev.channels[0].target_name.as_deref(),
        Some("org.qemu.guest_agent.0")
    );
    assert_eq!(
        dev.channels[0].target_state,
        Some(devices::ChannelState::Connected)
    );
    assert_eq!(dev.graphics[0].passwd.as_deref(), Some("s3cr't"));
    let addr = dev.disks[0].info.address.as_ref().map(|a| a.get("bus"));
    assert_eq!(addr, Some(Some("0x04")));
    match &dev.disks[0].backing_store {
        Some(devices::BackingStore::Image(img)) => {
            assert_eq!(img.backing_store, Some(devices::BackingStore::End));
        }
        other => panic!("unexpected backing store {other:?}"),
    }
}

#[test]
fn secrets_only_with_secure() {
    let d = parse(QEMU_FULL);
    let public = d.to_xml(&FormatOptions::default());
    assert!(!public.contains("passwd"));
    assert!(!public.contains("s3cr"));
    assert!(public.starts_with("<domain type='kvm'>\n"));
    assert!(d.to_xml(&secure()).contains("passwd='s3cr&apos;t'"));
}

#[test]
fn devices_in_any_order_come_out_grouped() {
    let xml = "<domain type='kvm'><name>x</name><memory>1</memory><os><type>hvm</type></os>\
        <devices><rng model='virtio'><backend model='random'/></rng>\
        <memballoon model='none'/><disk type='file'><source file='/x'/><target dev='vda'/></disk>\
        <emulator>/bin/qemu</emulator></devices></domain>";
    let out = assert_domain_round_trip(xml);
    let pos = |s: &str| out.find(s).unwrap_or(usize::MAX);
    assert!(pos("<emulator>") < pos("<disk "));
    assert!(pos("<disk ") < pos("<memballoon "));
    assert!(pos("<memballoon ") < pos("<rng "));
}

#[test]
fn memory_units_normalise_to_kib() {
    let doc = |mem: &str| {
        format!("<domain type='test'><name>a</name>{mem}<os><type>hvm</type></os></domain>")
    };
    let d = parse(&doc(
        "<memory unit='GiB'>2</memory><currentMemory unit='MB'>1</currentMemory>",
    ));
    assert_eq!(d.memory_kib, 2 << 20);
    assert_eq!(d.current_memory_kib, Some(977));
    let d = parse(&doc("<memory unit='b'>1</memory>"));
    assert_eq!(d.memory_kib, 1);
}

#[test]
fn dumpxml_id_is_accepted_and_dropped() {
    let d = parse(&MINIMAL.replace("type='test'", "type='test' id='12'"));
    assert!(!d.to_xml(&secure()).contains("id="));
    assert_eq!(
        DomainDef::from_xml(&MINIMAL.replace("type='test'", "type='test' id='x'"))
            .map_err(|e| e.path().map(str::to_string)),
        Err(Some("/domain/@id".into()))
    );
}

#[test]
fn uuid_without_dashes() {
    let d = parse(&MINIMAL.replace(
        "<name>a</name>",
        "<name>a</name><uuid>C7A5FDBDEDAF9455926AD65C16DB1809</uuid>",
    ));
    assert_eq!(d.uuid.to_string(), "c7a5fdbd-edaf-9455-926a-d65c16db1809");
}

#[test]
fn snapshots_round_trip_canonically() {
    for (name, xml) in [
        ("internal", SNAP_INTERNAL),
        ("disk-only", SNAP_DISK_ONLY),
        ("external", SNAP_EXTERNAL),
    ] {
        let out = assert_snapshot_round_trip(xml);
        assert_eq!(out, xml, "{name} is not written back as is");
    }
}

#[test]
fn snapshot_fields() {
    let s = parse_snap(SNAP_INTERNAL);
    assert_eq!(s.name.as_deref(), Some("before-upgrade"));
    assert_eq!(s.parent.as_deref(), Some("fresh-install"));
    assert_eq!(s.state.as_deref(), Some("running"));
    assert_eq!(s.creation_time, Some(1_700_000_000));
    assert_eq!(
        s.memory,
        Some(SnapshotMemory {
            snapshot: MemorySnapshotKind::Internal,
            file: None
        })
    );
    assert_eq!(s.active, Some(true));
    assert_eq!(s.domain.as_ref().map(|d| d.name.as_str()), Some("db-01"));

    let s = parse_snap(SNAP_DISK_ONLY);
    assert_eq!(s.disks.len(), 3);
    assert_eq!(
        s.disks[1].source.as_deref(),
        Some("/dev/vg0/web-01-data-snap")
    );
    assert_eq!(s.disks[2].snapshot, Some(DiskSnapshotKind::No));

    let s = parse_snap(SNAP_EXTERNAL);
    assert!(s.inactive_domain.is_some());
    let cookie = s.cookie.unwrap_or_default();
    assert!(cookie.starts_with("\n    <cpu mode='custom'"), "{cookie}");
}

#[test]
fn snapshot_defaults_and_inference() {
    let s = parse_snap(
        "<domainsnapshot><memory file='/m'/><disks><disk name='vda'><source file='/o'/></disk></disks></domainsnapshot>",
    );
    assert_eq!(s.name, None);
    assert_eq!(
        s.memory.map(|m| m.snapshot),
        Some(MemorySnapshotKind::External)
    );
    assert_eq!(s.disks[0].snapshot, Some(DiskSnapshotKind::External));
    let short = "<domainsnapshot>\n  <name>1386166249</name>\n  <creationTime>1386166249</creationTime>\n  <domain>\n    <uuid>9d37b878-a7cc-9f9a-b78f-49b3abad25a8</uuid>\n  </domain>\n</domainsnapshot>\n";
    let s = parse_snap(short);
    assert!(s.domain.is_none());
    assert_eq!(
        s.domain_uuid.map(|u| u.to_string()).as_deref(),
        Some("9d37b878-a7cc-9f9a-b78f-49b3abad25a8")
    );
    assert_eq!(assert_snapshot_round_trip(short), short);
    assert_eq!(
        SnapshotDef::from_xml("<domainsnapshot><domain><name>x</name></domain></domainsnapshot>")
            .map(|_| ()),
        Err(XmlError::Missing {
            path: "/domainsnapshot/domain/@type".into()
        })
    );
    let empty = parse_snap("<domainsnapshot/>");
    assert_eq!(empty, SnapshotDef::default());
    assert_eq!(empty.to_xml(&secure()), "<domainsnapshot/>\n");
}

const META_DOMAIN: &str = "<domain type='test'>
  <name>m</name>
  <metadata><!-- apps keep data here -->
    <app1:foo xmlns:app1=\"http://app1.org/app1/\" a = \"1\">fooish &amp; <![CDATA[raw <stuff>]]></app1:foo>
      <app2:bar xmlns:app2='http://app2.org/app2/'><deep><deeper x='y'/></deep>text</app2:bar>
  </metadata>
  <memory>1024</memory>
  <os><type>hvm</type></os>
</domain>";

fn metadata_source(xml: &str) -> &str {
    let start = xml.find("<metadata>").map_or(0, |i| i + "<metadata>".len());
    let end = xml.find("</metadata>").unwrap_or(start);
    &xml[start..end]
}

#[test]
fn metadata_is_kept_byte_for_byte() {
    let d = parse(META_DOMAIN);
    let original = metadata_source(META_DOMAIN);
    assert_eq!(d.metadata.as_deref(), Some(original));
    let out = assert_domain_round_trip(META_DOMAIN);
    assert_eq!(metadata_source(&out), original);
    assert_eq!(
        d.metadata_element("http://app2.org/app2/").as_deref(),
        Some(
            "<app2:bar xmlns:app2='http://app2.org/app2/'><deep><deeper x='y'/></deep>text</app2:bar>"
        )
    );
}

#[test]
fn owner_set_replace_remove_keeps_metadata() {
    let mut d = parse(META_DOMAIN);
    let original = d.metadata.clone().unwrap_or_default();
    assert_eq!(d.owner_uid(), None);

    d.set_owner_uid(Some(1000));
    assert_eq!(d.owner_uid(), Some(1000));
    let with_owner = d.to_xml(&secure());
    let reparsed = parse(&with_owner);
    assert_eq!(reparsed.owner_uid(), Some(1000));
    let m = d.metadata.clone().unwrap_or_default();
    assert!(m.starts_with(original.trim_end()), "{m}");
    assert!(m.contains(
        "<virtbus:owner xmlns:virtbus='https://virtbus.org/xmlns/virtbus/1' uid='1000'/>"
    ));

    d.set_owner_uid(Some(4242));
    assert_eq!(d.owner_uid(), Some(4242));
    assert_eq!(
        d.metadata.as_deref().map(|s| s.replace("4242", "1000")),
        Some(m)
    );

    d.set_owner_uid(None);
    assert_eq!(d.owner_uid(), None);
    assert_eq!(d.metadata.as_deref(), Some(original.as_str()));
}

#[test]
fn owner_on_domain_without_metadata() {
    let mut d = parse(MINIMAL);
    d.set_owner_uid(Some(5));
    let out = d.to_xml(&secure());
    assert!(out.contains(
        "  <metadata>\n    <virtbus:owner xmlns:virtbus='https://virtbus.org/xmlns/virtbus/1' uid='5'/>\n  </metadata>\n"
    ));
    assert_eq!(parse(&out).owner_uid(), Some(5));
    d.set_owner_uid(None);
    assert_eq!(d.metadata, None);
}

const BASE: &str = "<domain type='kvm'>
  <name>vm</name>
  <uuid>c7a5fdbd-edaf-9455-926a-d65c16db1809</uuid>
  <memory unit='MiB'>512</memory>
  <currentMemory unit='MiB'>256</currentMemory>
  <vcpu current='1'>2</vcpu>
  <os><type arch='x86_64'>hvm</type><boot dev='hd'/></os>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/a.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='/b.img'/>
      <target dev='vdb' bus='virtio'/>
    </disk>
    <interface type='network'>
      <mac address='52:54:00:00:00:01'/>
      <source network='default'/>
    </interface>
    <memballoon model='virtio'/>
    <graphics type='vnc' listen='127.0.0.1'><listen type='address' address='127.0.0.1'/></graphics>
  </devices>
</domain>";

/// Which variant an error must be, with its path.
#[derive(Debug, PartialEq)]
enum Want {
    UnknownElement(&'static str),
    UnknownAttribute(&'static str),
    UnexpectedText(&'static str),
    Missing(&'static str),
    Duplicate(&'static str),
    Invalid(&'static str),
    Malformed,
    TooLarge,
    TooDeep,
    WrongRoot(&'static str),
}

fn classify(e: &XmlError) -> (std::mem::Discriminant<Want>, Option<String>) {
    use std::mem::discriminant as d;
    match e {
        XmlError::UnknownElement { path } => (d(&Want::UnknownElement("")), Some(path.clone())),
        XmlError::UnknownAttribute { path } => (d(&Want::UnknownAttribute("")), Some(path.clone())),
        XmlError::UnexpectedText { path } => (d(&Want::UnexpectedText("")), Some(path.clone())),
        XmlError::Missing { path } => (d(&Want::Missing("")), Some(path.clone())),
        XmlError::Duplicate { path } => (d(&Want::Duplicate("")), Some(path.clone())),
        XmlError::InvalidValue { path, .. } => (d(&Want::Invalid("")), Some(path.clone())),
        XmlError::Malformed(_) => (d(&Want::Malformed), None),
        XmlError::TooLarge { .. } => (d(&Want::TooLarge), None),
        XmlError::TooDeep { .. } => (d(&Want::TooDeep), None),
        XmlError::WrongRoot { found, .. } => (d(&Want::WrongRoot("")), Some(found.clone())),
    }
}

fn want_parts(w: &Want) -> (std::mem::Discriminant<Want>, Option<String>) {
    let p = |s: &str| Some(s.to_string());
    let d = std::mem::discriminant(w);
    match w {
        Want::UnknownElement(s)
        | Want::UnknownAttribute(s)
        | Want::UnexpectedText(s)
        | Want::Missing(s)
        | Want::Duplicate(s)
        | Want::Invalid(s)
        | Want::WrongRoot(s) => (d, p(s)),
        Want::Malformed | Want::TooLarge | Want::TooDeep => (d, None),
    }
}

#[test]
fn base_document_is_valid() {
    assert_domain_round_trip(BASE);
}

#[test]
fn rejections_name_variant_and_path() {
    use Want::*;
    let big = format!("{}<!--{}-->", BASE, "x".repeat(MAX_XML_BYTES));
    // The base document with one substitution, and the expected error.
    let sub = |from: &str, to: &str| {
        assert!(BASE.contains(from), "base lacks {from:?}");
        BASE.replacen(from, to, 1)
    };
    let cases: Vec<(&str, String, Want)> = vec![
        (
            "unknown element deep in devices",
            sub(
                "<target dev='vdb' bus='virtio'/>",
                "<target dev='vdb' bus='virtio'/><frob/>",
            ),
            UnknownElement("/domain/devices/disk[2]/frob"),
        ),
        (
            "unknown device",
            sub("</devices>", "<frobnicator/></devices>"),
            UnknownElement("/domain/devices/frobnicator"),
        ),
        (
            "unknown attribute",
            sub(
                "<driver name='qemu' type='raw'/>",
                "<driver name='qemu' type='raw' bogus='1'/>",
            ),
            UnknownAttribute("/domain/devices/disk[2]/driver/@bogus"),
        ),
        (
            "unknown attribute on root",
            sub("<domain type='kvm'>", "<domain type='kvm' foo='1'>"),
            UnknownAttribute("/domain/@foo"),
        ),
        (
            "text in os",
            sub("<os>", "<os>hello"),
            UnexpectedText("/domain/os"),
        ),
        (
            "text in a flag",
            sub(
                "<source file='/b.img'/>",
                "<source file='/b.img'/><readonly>x</readonly>",
            ),
            UnexpectedText("/domain/devices/disk[2]/readonly"),
        ),
        (
            "text in devices",
            sub("</devices>", "oops</devices>"),
            UnexpectedText("/domain/devices"),
        ),
        (
            "invalid uuid",
            sub(
                "c7a5fdbd-edaf-9455-926a-d65c16db1809",
                "c7a5fdbd-edaf-9455-926a-d65c16db180z",
            ),
            Invalid("/domain/uuid"),
        ),
        (
            "multicast mac",
            sub("52:54:00:00:00:01", "53:54:00:00:00:01"),
            Invalid("/domain/devices/interface/mac/@address"),
        ),
        (
            "short mac",
            sub("52:54:00:00:00:01", "52:54:00:00:01"),
            Invalid("/domain/devices/interface/mac/@address"),
        ),
        (
            "name with slash",
            sub("<name>vm</name>", "<name>v/m</name>"),
            Invalid("/domain/name"),
        ),
        (
            "name with tab",
            sub("<name>vm</name>", "<name>v\tm</name>"),
            Invalid("/domain/name"),
        ),
        (
            "name with DEL",
            sub("<name>vm</name>", "<name>v&#x7f;m</name>"),
            Invalid("/domain/name"),
        ),
        (
            "empty name",
            sub("<name>vm</name>", "<name></name>"),
            Invalid("/domain/name"),
        ),
        (
            "missing name",
            sub("<name>vm</name>", ""),
            Missing("/domain/name"),
        ),
        (
            "duplicate name",
            sub("<name>vm</name>", "<name>vm</name><name>vm2</name>"),
            Duplicate("/domain/name[2]"),
        ),
        (
            "zero memory",
            sub(
                "<memory unit='MiB'>512</memory>",
                "<memory unit='MiB'>0</memory>",
            ),
            Invalid("/domain/memory"),
        ),
        (
            "missing memory",
            sub("<memory unit='MiB'>512</memory>", ""),
            Missing("/domain/memory"),
        ),
        (
            "bad memory unit",
            sub("<memory unit='MiB'>", "<memory unit='PB'>"),
            Invalid("/domain/memory/@unit"),
        ),
        (
            "current memory above memory",
            sub(
                "<currentMemory unit='MiB'>256",
                "<currentMemory unit='MiB'>1024",
            ),
            Invalid("/domain/currentMemory"),
        ),
        (
            "current vcpus above max",
            sub("<vcpu current='1'>2</vcpu>", "<vcpu current='3'>2</vcpu>"),
            Invalid("/domain/vcpu/@current"),
        ),
        (
            "zero vcpus",
            sub("<vcpu current='1'>2</vcpu>", "<vcpu>0</vcpu>"),
            Invalid("/domain/vcpu"),
        ),
        (
            "bad enum",
            sub(
                "<target dev='vda' bus='virtio'/>",
                "<target dev='vda' bus='virtio2'/>",
            ),
            Invalid("/domain/devices/disk[1]/target/@bus"),
        ),
        (
            "bad domain type",
            sub("<domain type='kvm'>", "<domain type='xen'>"),
            Invalid("/domain/@type"),
        ),
        (
            "missing domain type",
            sub("<domain type='kvm'>", "<domain>"),
            Missing("/domain/@type"),
        ),
        (
            "seclabel",
            sub(
                "</devices>",
                "</devices><seclabel type='none'><bogus/></seclabel>",
            ),
            UnknownElement("/domain/seclabel/bogus"),
        ),
        (
            "namespaced element outside metadata",
            sub("</devices>", "</devices><app:x xmlns:app='urn:app'/>"),
            UnknownElement("/domain/app:x"),
        ),
        (
            "qemu namespace element virtbus does not take",
            sub(
                "</devices>",
                "</devices><qemu:deprecation xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0' behavior='crash'/>",
            ),
            UnknownElement("/domain/qemu:deprecation"),
        ),
        (
            "qemu:env with a bad name",
            sub(
                "</devices>",
                "</devices><qemu:commandline xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'><qemu:env name='1X'/></qemu:commandline>",
            ),
            Invalid("/domain/qemu:commandline/qemu:env/@name"),
        ),
        (
            "un-namespaced metadata child",
            sub("</devices>", "</devices><metadata><foo/></metadata>"),
            UnknownElement("/domain/metadata/foo"),
        ),
        (
            "text in metadata",
            sub("</devices>", "</devices><metadata>hi</metadata>"),
            UnexpectedText("/domain/metadata"),
        ),
        (
            "coredump on poweroff",
            sub(
                "<on_crash>destroy</on_crash>",
                "<on_poweroff>coredump-destroy</on_poweroff>",
            ),
            Invalid("/domain/on_poweroff"),
        ),
        (
            "bad lifecycle",
            sub(
                "<on_crash>destroy</on_crash>",
                "<on_crash>explode</on_crash>",
            ),
            Invalid("/domain/on_crash"),
        ),
        (
            "topology mismatch",
            sub(
                "<on_crash>",
                "<cpu><topology sockets='1' cores='2' threads='2'/></cpu><on_crash>",
            ),
            Invalid("/domain/cpu/topology"),
        ),
        (
            "os boot with device boot",
            sub(
                "<target dev='vda' bus='virtio'/>",
                "<target dev='vda' bus='virtio'/><boot order='1'/>",
            ),
            Invalid("/domain/os/boot"),
        ),
        (
            "missing disk target",
            sub("<target dev='vdb' bus='virtio'/>", ""),
            Missing("/domain/devices/disk[2]/target"),
        ),
        (
            "missing disk source",
            sub("<source file='/b.img'/>", ""),
            Missing("/domain/devices/disk[2]/source/@file"),
        ),
        (
            "block attribute on file disk",
            sub(
                "<source file='/b.img'/>",
                "<source file='/b.img' dev='/dev/sda'/>",
            ),
            UnknownAttribute("/domain/devices/disk[2]/source/@dev"),
        ),
        (
            "relative disk path",
            sub("<source file='/b.img'/>", "<source file='b.img'/>"),
            Invalid("/domain/devices/disk[2]/source/@file"),
        ),
        (
            "title with newline",
            sub("<name>vm</name>", "<name>vm</name><title>a\nb</title>"),
            Invalid("/domain/title"),
        ),
        (
            "second memballoon",
            sub(
                "<memballoon model='virtio'/>",
                "<memballoon model='virtio'/><memballoon model='none'/>",
            ),
            Duplicate("/domain/devices/memballoon[2]"),
        ),
        (
            "listen mismatch",
            sub("listen='127.0.0.1'>", "listen='0.0.0.0'>"),
            Invalid("/domain/devices/graphics/@listen"),
        ),
        (
            "bad address attribute",
            sub(
                "<source file='/b.img'/>",
                "<source file='/b.img'/><address type='pci' slot='0x01' port='1'/>",
            ),
            UnknownAttribute("/domain/devices/disk[2]/address/@port"),
        ),
        (
            "bad address value",
            sub(
                "<source file='/b.img'/>",
                "<source file='/b.img'/><address type='pci' slot='one'/>",
            ),
            Invalid("/domain/devices/disk[2]/address/@slot"),
        ),
        (
            "missing network source",
            sub("<source network='default'/>", ""),
            Missing("/domain/devices/interface/source"),
        ),
        (
            "unknown in os",
            sub("<boot dev='hd'/>", "<boot dev='hd'/><smbios mode='host'/>"),
            UnknownElement("/domain/os/smbios"),
        ),
        (
            "bad boot dev",
            sub("<boot dev='hd'/>", "<boot dev='usb'/>"),
            Invalid("/domain/os/boot/@dev"),
        ),
        ("oversize document", big, TooLarge),
        ("malformed", sub("</domain>", "</domian>"), Malformed),
        (
            "DTD",
            sub(
                "<domain type='kvm'>",
                "<!DOCTYPE domain><domain type='kvm'>",
            ),
            Malformed,
        ),
        (
            "wrong root",
            BASE.replace("<domain ", "<network ")
                .replace("</domain>", "</network>"),
            WrongRoot("network"),
        ),
    ];
    for (what, doc, want) in cases {
        match DomainDef::from_xml(&doc) {
            Ok(_) => panic!("{what}: accepted"),
            Err(e) => assert_eq!(classify(&e), want_parts(&want), "{what}: got {e}"),
        }
    }
}

#[test]
fn enum_errors_list_allowed_values() {
    let doc = BASE.replacen("bus='virtio'", "bus='virtio2'", 1);
    match DomainDef::from_xml(&doc) {
        Err(XmlError::InvalidValue { value, reason, .. }) => {
            assert_eq!(value, "virtio2");
            assert_eq!(
                reason,
                "expected one of: ide, scsi, virtio, xen, usb, sata, sd, fdc"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn malformed_reports_position() {
    match DomainDef::from_xml("<domain type='kvm'>\n  <name>a</nam>\n</domain>") {
        Err(XmlError::Malformed(m)) => assert!(m.contains("2:"), "{m}"),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn wrong_root_message() {
    assert_eq!(
        DomainDef::from_xml("<domainsnapshot/>").map(|_| ()),
        Err(XmlError::WrongRoot {
            expected: "domain",
            found: "domainsnapshot".into()
        })
    );
    assert_eq!(
        SnapshotDef::from_xml(MINIMAL).map(|_| ()),
        Err(XmlError::WrongRoot {
            expected: "domainsnapshot",
            found: "domain".into()
        })
    );
}

#[test]
fn billion_laughs_is_rejected() {
    let mut xml = String::from("<?xml version='1.0'?>\n<!DOCTYPE lolz [\n<!ENTITY lol0 'lol'>\n");
    for i in 1..10 {
        let refs = format!("&lol{};", i - 1).repeat(10);
        xml.push_str(&format!("<!ENTITY lol{i} '{refs}'>\n"));
    }
    xml.push_str("]>\n<domain type='test'><name>&lol9;</name><memory>1</memory><os><type>hvm</type></os></domain>");
    match DomainDef::from_xml(&xml) {
        Err(XmlError::Malformed(m)) => assert!(m.contains("DTD"), "{m}"),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn deep_nesting_is_bounded() {
    // Deep content is refused as a whole, naming the limit, wherever it is.
    let deep = format!("{}{}", "<x>".repeat(50_000), "</x>".repeat(50_000));
    let doc = MINIMAL.replace("</domain>", &format!("{deep}</domain>"));
    let limit = super::MAX_XML_DEPTH;
    assert_eq!(
        DomainDef::from_xml(&doc),
        Err(XmlError::TooDeep {
            element: "x".into(),
            limit
        })
    );
    let meta = format!("<metadata><a:x xmlns:a='urn:a'>{deep}</a:x></metadata>");
    let doc = MINIMAL.replace("</domain>", &format!("{meta}</domain>"));
    assert!(matches!(
        DomainDef::from_xml(&doc),
        Err(XmlError::TooDeep { limit: l, .. }) if l == limit
    ));
    // Up to the metadata limit it is kept verbatim.
    let fits = super::MAX_METADATA_DEPTH - 1;
    let deep = format!("{}{}", "<x>".repeat(fits), "</x>".repeat(fits));
    let meta = format!("<metadata><a:x xmlns:a='urn:a'>{deep}</a:x></metadata>");
    let doc = MINIMAL.replace("</domain>", &format!("{meta}</domain>"));
    let d = parse(&doc);
    assert!(d.metadata.as_ref().is_some_and(|m| m.len() > 7 * fits));
    // Backing chains are limited.
    let depth = devices::MAX_BACKING_DEPTH + 1;
    let chain = format!(
        "{}{}",
        "<backingStore type='file'><source file='/b'/>".repeat(depth),
        "</backingStore>".repeat(depth)
    );
    let doc = MINIMAL.replace(
        "</os>",
        &format!("</os><devices><disk type='file'><source file='/a'/>{chain}<target dev='vda'/></disk></devices>"),
    );
    match DomainDef::from_xml(&doc) {
        Err(XmlError::InvalidValue { reason, .. }) => {
            assert!(reason.contains("deeper"), "{reason}")
        }
        other => panic!("unexpected {:?}", other.map(|_| ())),
    }
}

#[test]
fn snapshot_rejections() {
    let cases: Vec<(&str, String, XmlError)> = vec![
        (
            "unknown in embedded domain",
            SNAP_INTERNAL.replace("<memballoon model='none'/>", "<frob/>"),
            XmlError::UnknownElement {
                path: "/domainsnapshot/domain/devices/frob".into(),
            },
        ),
        (
            "bad state",
            SNAP_INTERNAL.replace("<state>running</state>", "<state>asleep</state>"),
            XmlError::invalid(
                "/domainsnapshot/state".into(),
                "asleep",
                crate::model::values::one_of(SNAPSHOT_STATES),
            ),
        ),
        (
            "external memory without file",
            SNAP_INTERNAL.replace(
                "<memory snapshot='internal'/>",
                "<memory snapshot='external'/>",
            ),
            XmlError::Missing {
                path: "/domainsnapshot/memory/@file".into(),
            },
        ),
        (
            "file with internal memory",
            SNAP_INTERNAL.replace(
                "<memory snapshot='internal'/>",
                "<memory snapshot='internal' file='/m'/>",
            ),
            XmlError::invalid(
                "/domainsnapshot/memory/@file".into(),
                "/m",
                "a memory file needs snapshot='external', not 'internal'",
            ),
        ),
        (
            "source on a non-external disk",
            SNAP_INTERNAL.replace(
                "<disk name='sda' snapshot='no'/>",
                "<disk name='sda' snapshot='no'><source file='/x'/></disk>",
            ),
            XmlError::invalid(
                "/domainsnapshot/disks/disk[2]/@snapshot".into(),
                "no",
                "a new source, driver or type needs snapshot='external'",
            ),
        ),
        (
            "name with slash",
            SNAP_INTERNAL.replace("<name>before-upgrade</name>", "<name>a/b</name>"),
            XmlError::invalid(
                "/domainsnapshot/name".into(),
                "a/b",
                "name must not contain '/'",
            ),
        ),
        (
            "bad active",
            SNAP_INTERNAL.replace("<active>1</active>", "<active>2</active>"),
            XmlError::invalid(
                "/domainsnapshot/active".into(),
                "2",
                "expected one of: 0, 1",
            ),
        ),
        (
            "negative creation time",
            SNAP_INTERNAL.replace("1700000000", "-5"),
            XmlError::invalid(
                "/domainsnapshot/creationTime".into(),
                "-5",
                format!("expected an integer in 0..={}", i64::MAX),
            ),
        ),
        (
            "embedded domain name",
            SNAP_INTERNAL.replace("<name>db-01</name>", "<name></name>"),
            XmlError::invalid(
                "/domainsnapshot/domain/name".into(),
                "",
                "name must not be empty",
            ),
        ),
    ];
    for (what, doc, want) in cases {
        assert_eq!(SnapshotDef::from_xml(&doc).map(|_| ()), Err(want), "{what}");
    }
}

#[test]
fn comments_and_whitespace_are_tolerated() {
    let xml = "<?xml version='1.0' encoding='UTF-8'?>\n<!-- generated -->\n<domain type='test'>\n  <!-- c -->\n  <name>a</name>\n  <memory>\n 1024 \n</memory>\n  <os><type>hvm</type></os>\n</domain>\n";
    let d = parse(xml);
    assert_eq!(d.memory_kib, 1024);
}

#[test]
fn validate_catches_edits_that_break_rules() {
    let mut d = parse(MINIMAL);
    assert_eq!(d.validate(), Ok(()));
    d.current_vcpus = Some(2);
    assert_eq!(
        d.validate().map_err(|e| e.path().map(str::to_string)),
        Err(Some("/domain/vcpu/@current".into()))
    );
    d.current_vcpus = None;
    d.name = "bad/name".into();
    assert!(d.validate().is_err());
    d.name = "control\u{1}".into();
    assert!(matches!(d.validate(), Err(XmlError::Malformed(_))));

    let mut s = parse_snap(SNAP_DISK_ONLY);
    assert_eq!(s.validate(), Ok(()));
    s.state = Some("bogus".into());
    assert!(s.validate().is_err());
}

/// A KVM domain with `extra` after `<os>` and `devices` inside `<devices>`.
pub(super) fn kvm_with(extra: &str, devices: &str) -> String {
    format!(
        "<domain type='kvm'><name>v</name><memory>1024</memory><vcpu>2</vcpu>\
         <os><type arch='x86_64'>hvm</type></os>{extra}<devices>{devices}</devices></domain>"
    )
}

#[test]
fn an_all_zero_catchup_is_dropped_as_libvirt_does() {
    let xml = kvm_with(
        "<clock offset='utc'><timer name='rtc' tickpolicy='catchup'><catchup slew='0'/></timer></clock>",
        "",
    );
    let out = DomainDef::from_xml(&xml).expect("parse").to_xml(&secure());
    assert!(
        out.contains("<timer name='rtc' tickpolicy='catchup'/>"),
        "{out}"
    );
    let bad = kvm_with(
        "<clock offset='utc'><timer name='rtc'><catchup slew='x'/></timer></clock>",
        "",
    );
    let e = DomainDef::from_xml(&bad).expect_err("refused").to_string();
    assert!(e.contains("catchup/@slew"), "{e}");
}

#[test]
fn accepted_variants_round_trip() {
    let extras = [
        "<clock offset='timezone' timezone='Europe/Paris'/>",
        "<clock offset='variable' adjustment='-3600' basis='localtime'><timer name='kvmclock' present='yes'/>\
         <timer name='rtc' tickpolicy='catchup' track='guest'/></clock>",
        "<clock offset='utc'><timer name='rtc' tickpolicy='catchup'><catchup slew='4636'/></timer>\
         <timer name='pit' tickpolicy='catchup'><catchup threshold='123' slew='1' limit='2342'/>\
         </timer></clock>",
        "<clock offset='utc' adjustment='reset'/><on_poweroff>preserve</on_poweroff>\
         <on_reboot>rename-restart</on_reboot><on_crash>coredump-destroy</on_crash>",
        "<features><pae/><hap state='off'/><smm/></features><cpu mode='host-model'><topology sockets='1' \
         dies='1' clusters='1' cores='1' threads='2'/><feature name='x2apic'/></cpu>",
        "<cpu mode='maximum' migratable='off'/><pm><suspend-to-disk enabled='yes'/></pm>",
        "<resource><partition>/machine/tenant</partition></resource>",
    ];
    for extra in extras {
        assert_domain_round_trip(&kvm_with(extra, ""));
    }
    let devices = [
        "<interface type='ethernet'><mac address='52:54:00:00:00:09'/><target dev='tap0' managed='no'/>\
         <model type='virtio'/></interface>",
        "<interface type='user'/>",
        "<interface type='direct'><mac address='52:54:00:00:00:0a'/><source dev='eth0'/></interface>",
        "<parallel type='null'><target port='0'/></parallel>",
        "<serial type='dev'><source path='/dev/ttyS0'/><target type='usb-serial' port='1'>\
         <model name='usb-serial'/></target><address type='usb' bus='0' port='1.2'/></serial>",
        "<console type='stdio'><target type='virtio' port='0'/></console>",
        "<channel type='pipe'><source path='/tmp/pipe'/><target type='xen'/></channel>",
        "<channel type='unix'><source mode='bind'/><target type='virtio' name='org.qemu.guest_agent.0'/></channel>",
        "<controller type='usb' index='0' model='ich9-uhci1'><alias name='usb'/><master startport='0'/>\
         <address type='pci' domain='0x0000' bus='0x00' slot='0x06' function='0x0' multifunction='on'/></controller>",
        "<controller type='virtio-serial' index='0' ports='16' vectors='4'/>",
        "<controller type='pci' index='3' model='pcie-to-pci-bridge'><model name='pcie-pci-bridge'/>\
         <target chassisNr='3' hotplug='off'/></controller>",
        "<graphics type='vnc' port='-1' autoport='yes' websocket='5700'><listen type='none'/></graphics>",
        "<graphics type='spice' autoport='yes'><listen type='socket' socket='/run/x.sock'/>\
         <image compression='off'/></graphics>",
        "<disk type='file' device='floppy'><source file='/f.img'/><target dev='fda' bus='fdc'/></disk>",
        "<disk type='block' device='cdrom' snapshot='no'><source dev='/dev/sr0'/><target dev='hdc' bus='ide'/>\
         <readonly/></disk>",
        "<disk type='file' device='disk'><driver name='qemu' type='qcow2' detect_zeroes='unmap'/>\
         <source file='/a' index='4'/><backingStore type='block' index='5'><format type='raw'/>\
         <source dev='/dev/b'/></backingStore><target dev='vda'/></disk>",
        "<watchdog model='i6300esb'/><video/><input type='keyboard' bus='virtio'/>",
        "<sound model='ac97'/><audio type='pulseaudio'/><memballoon model='virtio' freePageReporting='off'/>",
        "<rng model='virtio-non-transitional'><backend model='random'/></rng>",
        "<tpm model='tpm-tis'><backend type='passthrough'><device path='/dev/tpm0'/></backend></tpm>",
        "<tpm model='tpm-crb'><backend type='emulator' version='2.0' persistent_state='yes'>\
         <encryption secret='b4a117f1-8af2-44a4-91b8-7f0d2d4d68a3'/>\
         <active_pcr_banks><sha256/><sha512/></active_pcr_banks></backend>\
         <alias name='tpm0'/></tpm>",
        "<tpm><backend type='emulator'/></tpm>",
    ];
    for dev in devices {
        assert_domain_round_trip(&kvm_with("", dev));
    }
    let efi = "<domain type='kvm'><name>e</name><memory unit='GiB'>1</memory>\
        <os firmware='efi'><type arch='aarch64' machine='virt'>hvm</type><firmware>\
        <feature enabled='yes' name='enrolled-keys'/><feature enabled='no' name='secure-boot'/></firmware>\
        <loader secure='yes'/><nvram/>\
        <boot dev='network'/><boot dev='hd'/></os></domain>";
    assert_domain_round_trip(efi);
}

#[test]
fn missing_mac_is_generated_in_qemu_range() {
    let d = parse(&kvm_with("", "<interface type='user'/>"));
    let mac = d.devices.interfaces[0].mac;
    assert_eq!(&mac.0[..3], &[0x52, 0x54, 0x00]);
    assert!(
        d.to_xml(&secure())
            .contains(&format!("<mac address='{mac}'/>"))
    );
}

#[test]
fn more_rejections() {
    let cases: Vec<(&str, String, XmlError)> = vec![
        (
            "channel without target",
            kvm_with("", "<channel type='pty'/>"),
            XmlError::Missing {
                path: "/domain/devices/channel/target".into(),
            },
        ),
        (
            "file serial without source",
            kvm_with("", "<serial type='file'/>"),
            XmlError::Missing {
                path: "/domain/devices/serial/source".into(),
            },
        ),
        (
            "timezone with utc",
            kvm_with("<clock offset='utc' timezone='UTC'/>", ""),
            XmlError::UnknownAttribute {
                path: "/domain/clock/@timezone".into(),
            },
        ),
        (
            "tlsPort on vnc",
            kvm_with("", "<graphics type='vnc' tlsPort='5901'/>"),
            XmlError::UnknownAttribute {
                path: "/domain/devices/graphics/@tlsPort".into(),
            },
        ),
        (
            "source on a user interface",
            kvm_with("", "<interface type='user'><source network='x'/></interface>"),
            XmlError::UnknownElement {
                path: "/domain/devices/interface/source".into(),
            },
        ),
        (
            "model on a sata controller",
            kvm_with("", "<controller type='sata' model='ahci'/>"),
            XmlError::invalid(
                "/domain/devices/controller/@model".into(),
                "ahci",
                "sata controllers have no models",
            ),
        ),
        (
            "pci target on a usb controller",
            kvm_with("", "<controller type='usb'><target chassis='1'/></controller>"),
            XmlError::UnknownElement {
                path: "/domain/devices/controller/target".into(),
            },
        ),
        (
            "backing store without type",
            kvm_with(
                "",
                "<disk><source file='/a'/><backingStore index='1'/><target dev='vda'/></disk>",
            ),
            XmlError::Missing {
                path: "/domain/devices/disk/backingStore/@type".into(),
            },
        ),
        (
            "port out of range",
            kvm_with("", "<graphics type='vnc' port='70000'/>"),
            XmlError::invalid(
                "/domain/devices/graphics/@port".into(),
                "70000",
                "expected an integer in -1..=65535",
            ),
        ),
        (
            "duplicate boot order",
            kvm_with(
                "",
                "<disk><source file='/a'/><target dev='vda'/><boot order='1'/></disk>\
                 <interface type='user'><boot order='1'/></interface>",
            ),
            XmlError::invalid(
                "/domain/devices/interface/boot/@order".into(),
                "1",
                "boot order is already used by another device",
            ),
        ),
        (
            "duplicate emulator",
            kvm_with("", "<emulator>/a</emulator><emulator>/b</emulator>"),
            XmlError::Duplicate {
                path: "/domain/devices/emulator[2]".into(),
            },
        ),
        (
            "duplicate target in second disk",
            kvm_with(
                "",
                "<disk><source file='/a'/><target dev='vda'/></disk>\
                 <disk><source file='/b'/><target dev='vdb'/><target dev='vdc'/></disk>",
            ),
            XmlError::Duplicate {
                path: "/domain/devices/disk[2]/target[2]".into(),
            },
        ),
        (
            "text in a feature flag",
            kvm_with("<features><acpi>on</acpi></features>", ""),
            XmlError::UnexpectedText {
                path: "/domain/features/acpi".into(),
            },
        ),
        (
            "bad cpuset",
            "<domain type='kvm'><name>v</name><memory>1</memory><vcpu cpuset='4-1'>1</vcpu><os><type>hvm</type></os></domain>".into(),
            XmlError::invalid(
                "/domain/vcpu/@cpuset".into(),
                "4-1",
                "expected a CPU list such as '0-3,^2,8' with CPUs 0..=16383",
            ),
        ),
    ];
    for (what, doc, want) in cases {
        assert_eq!(DomainDef::from_xml(&doc).map(|_| ()), Err(want), "{what}");
    }
}

/// Namespace declarations may sit anywhere, as XML allows: on `<domain>` or `<metadata>`
/// they are accepted, and the metadata kept verbatim carries the ones it uses.
#[test]
fn namespace_declarations_on_ancestors_of_metadata() {
    let xml = "<domain type='test' xmlns:libosinfo='http://libosinfo.org/xmlns/libvirt/domain/1.0'>\
               <name>ns</name><memory>1024</memory><vcpu>1</vcpu><os><type>hvm</type></os>\
               <metadata xmlns:app='urn:app'><libosinfo:libosinfo>\
               <libosinfo:os id='http://debian.org/debian/12'/></libosinfo:libosinfo>\
               <app:x a='1'/><virtbus:owner xmlns:virtbus='https://virtbus.org/xmlns/virtbus/1' uid='1000'/>\
               </metadata></domain>";
    let d = DomainDef::from_xml(xml).expect("accepted");
    assert_eq!(d.owner_uid(), Some(1000));
    let os = d
        .metadata_element("http://libosinfo.org/xmlns/libvirt/domain/1.0")
        .expect("libosinfo element");
    assert!(
        os.starts_with(
            "<libosinfo:libosinfo xmlns:libosinfo=\"http://libosinfo.org/xmlns/libvirt/domain/1.0\""
        ),
        "{os}"
    );
    assert!(d.metadata_element("urn:app").is_some());
    // and it all parses again on its own
    let out = d.to_xml(&secure());
    let again = DomainDef::from_xml(&out).expect("reparse");
    assert_eq!(again.to_xml(&secure()), out);
    assert!(
        out.contains("<libosinfo:os id='http://debian.org/debian/12'/>")
            || out.contains("<libosinfo:os id=\"http://debian.org/debian/12\"/>"),
        "{out}"
    );
}

/// libvirt's QEMU namespace: `<qemu:commandline>` with arguments and environment, declared
/// on the root as libvirt writes it or on the element itself; written back as libvirt does.
#[test]
fn qemu_commandline_round_trips() {
    let xml = "<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\
               <name>q</name><memory>1024</memory><vcpu>1</vcpu><os><type>hvm</type></os>\
               <qemu:commandline><qemu:arg value='-smbios'/><qemu:arg value='type=1,serial=VB'/>\
               <qemu:env name='QEMU_X' value='1'/><qemu:env name='EMPTY'/></qemu:commandline>\
               </domain>";
    let d = DomainDef::from_xml(xml).expect("accepted");
    let q = d.qemu_commandline.as_ref().expect("commandline");
    assert_eq!(q.args, ["-smbios", "type=1,serial=VB"]);
    assert_eq!(
        q.env,
        [
            ("QEMU_X".to_owned(), Some("1".to_owned())),
            ("EMPTY".to_owned(), None)
        ]
    );
    let out = d.to_xml(&secure());
    assert!(
        out.starts_with(
            "<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>"
        ),
        "{out}"
    );
    assert!(
        out.contains("  <qemu:commandline>\n    <qemu:arg value='-smbios'/>"),
        "{out}"
    );
    assert_domain_round_trip(&out);
}

#[test]
fn tpm_defaults_and_refusals() {
    // libvirt fills in the host TPM it passes through
    let d = parse(&kvm_with("", "<tpm><backend type='passthrough'/></tpm>"));
    assert!(
        d.to_xml(&secure())
            .contains("<backend type='passthrough'>\n        <device path='/dev/tpm0'/>"),
        "{}",
        d.to_xml(&secure())
    );
    for (dev, why) in [
        (
            "<tpm model='tpm-x'><backend type='emulator'/></tpm>",
            "tpm-x",
        ),
        ("<tpm><backend type='external'/></tpm>", "external"),
        ("<tpm><backend type='emulator' version='3.0'/></tpm>", "3.0"),
        ("<tpm/>", "backend"),
        (
            "<tpm><backend type='emulator'><active_pcr_banks><md5/></active_pcr_banks></backend></tpm>",
            "md5",
        ),
    ] {
        let e = DomainDef::from_xml(&kvm_with("", dev))
            .unwrap_err()
            .to_string();
        assert!(e.contains(why), "{dev}: {e}");
    }
}

/// The elements libvirt 9.0's corpus needed (`<nvram type='file'>`, interface scripts, video
/// acceleration, USB disk `removable`, unix chardev `<reconnect>` and `<protocol>`): kept in
/// libvirt's form and order.
#[test]
fn corpus_elements_round_trip_in_libvirt_form() {
    let xml = "<domain type='qemu'><name>t</name><uuid>00000000-0000-4000-8000-000000000001</uuid>\
        <memory unit='KiB'>65536</memory><os><type>hvm</type>\
        <loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE.fd</loader>\
        <nvram type='file'><source file='/var/lib/libvirt/nvram/guest_VARS.fd'/></nvram></os>\
        <devices>\
        <disk type='file' device='disk'><source file='/d/u.img'/>\
        <target dev='sdb' bus='usb' removable='on'/></disk>\
        <interface type='ethernet'><mac address='52:54:00:f6:66:88'/>\
        <target dev='nic02'/><downscript path='/home/ifdown.sh'/><script path='/home/ifup.sh'/>\
        </interface>\
        <channel type='unix'><source mode='connect' path='/unix/socket/path'>\
        <reconnect enabled='no'/></source><protocol type='raw'/>\
        <target type='virtio' name='test2'/></channel>\
        <video><model type='virtio' heads='1' primary='yes'>\
        <acceleration accel3d='yes'/></model></video>\
        </devices></domain>";
    let out = assert_domain_round_trip(xml);
    for want in [
        "    <nvram type='file'>\n      <source file='/var/lib/libvirt/nvram/guest_VARS.fd'/>\n    </nvram>\n",
        "      <target dev='sdb' bus='usb' removable='on'/>\n",
        "      <script path='/home/ifup.sh'/>\n      <downscript path='/home/ifdown.sh'/>\n      <target dev='nic02'/>\n",
        "      <source mode='connect' path='/unix/socket/path'>\n        <reconnect enabled='no'/>\n      </source>\n      <protocol type='raw'/>\n",
        "      <model type='virtio' heads='1' primary='yes'>\n        <acceleration accel3d='yes'/>\n      </model>\n",
    ] {
        assert!(out.contains(want), "{want}\nin\n{out}");
    }
    for (bad, path) in [
        (
            "<os><type>hvm</type><nvram type='network'/></os>",
            "/domain/os/nvram/@type",
        ),
        (
            "<os><type>hvm</type></os><devices><channel type='unix'><protocol type='telnet'/>\
             <target type='virtio'/></channel></devices>",
            "/domain/devices/channel/protocol/@type",
        ),
    ] {
        let xml = format!("<domain type='qemu'><name>t</name><memory>65536</memory>{bad}</domain>");
        let e = DomainDef::from_xml(&xml).expect_err(bad).to_string();
        assert!(e.contains(path), "{bad}: {e}");
    }
}
