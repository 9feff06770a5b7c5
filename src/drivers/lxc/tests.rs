//! The LXC XML (libvirt 9.0's lxcxml2xml inputs, written back as libvirt writes them) and
//! the plan's refusals and capability policy.

use super::plan::{self, PlanError};
use crate::model::{
    DomainDef, FormatOptions,
    proc_caps::{ProcessCap, ProcessCaps},
};

/// libvirt's `tests/lxcxml2xmldata` inputs, which its LXC driver writes back unchanged
/// (`lxc-filesystem-ram` aside, whose usage it writes in KiB): ours too.
const LIBVIRT: &[&str] = &[
    "lxc-capabilities.xml",
    "lxc-disk-formats.xml",
    "lxc-idmap.xml",
    "lxc-initdir.xml",
    "lxc-initenv.xml",
    "lxc-inituser.xml",
];

fn libvirt_file(dir: &str, name: &str) -> Option<String> {
    let p = std::path::Path::new("/work/src/libvirt-9.0.0/tests")
        .join(dir)
        .join(name);
    std::fs::read_to_string(p).ok()
}

fn canonical(xml: &str) -> String {
    DomainDef::from_xml(xml)
        .unwrap_or_else(|e| panic!("{e}\n{xml}"))
        .to_xml(&FormatOptions::default())
}

/// Whitespace-insensitive comparison of two documents' text.
fn squash(s: &str) -> String {
    s.lines().map(str::trim).collect::<Vec<_>>().join("")
}

#[test]
fn libvirts_lxc_documents_round_trip_as_libvirt_writes_them() {
    for name in LIBVIRT {
        let Some(mut input) = libvirt_file("lxcxml2xmldata", name) else {
            eprintln!("libvirt's sources are not here; skipping {name}");
            return;
        };
        // the model has no interface <ip>/<route> yet (another piece of work): the idmap
        // file is checked without its interface
        if let (Some(a), Some(b)) = (input.find("<interface"), input.find("</interface>")) {
            input.replace_range(a..b + "</interface>".len(), "");
        }
        assert_eq!(squash(&canonical(&input)), squash(&input), "{name}");
    }
    if let (Some(i), Some(o)) = (
        libvirt_file("lxcxml2xmldata", "lxc-filesystem-ram.xml"),
        libvirt_file("lxcxml2xmloutdata", "lxc-filesystem-ram.xml"),
    ) {
        // our defaults are the generic ones here: accessmode passthrough on every filesystem
        let mut def = DomainDef::from_xml(&i).expect("ram");
        crate::model::defaults::after_driver(&mut def).expect("defaults");
        let ours = def.to_xml(&FormatOptions::default());
        for (a, b) in squash(&ours)
            .split("<filesystem")
            .skip(1)
            .zip(squash(&o).split("<filesystem").skip(1))
        {
            assert_eq!(
                a.split("</filesystem>").next(),
                b.split("</filesystem>").next()
            );
        }
    }
}

const MINI: &str = "<domain type='lxc'><name>c</name><memory>1024</memory>\
    <os><type>exe</type><init>/bin/sh</init></os>__TOP__\
    <devices>__DEV__<console type='pty'/></devices></domain>";

fn def(top: &str, dev: &str) -> Result<DomainDef, String> {
    DomainDef::from_xml(&MINI.replace("__TOP__", top).replace("__DEV__", dev))
        .map_err(|e| e.to_string())
}

#[test]
fn idmaps_are_sorted_checked_for_overlaps_and_must_map_root() {
    let d = def(
        "<idmap><uid start='10' target='2000' count='5'/><uid start='0' target='1000' count='10'/>\
         <gid start='0' target='1000' count='10'/></idmap>",
        "",
    )
    .expect("valid");
    let m = d.idmap.as_ref().expect("idmap");
    assert_eq!(m.uid[0].start, 0, "sorted by start as libvirt does");
    assert_eq!(m.root(), (1000, 1000));
    let e = def(
        "<idmap><uid start='0' target='1000' count='10'/><uid start='5' target='5000' count='2'/>\
         <gid start='0' target='1000' count='10'/></idmap>",
        "",
    )
    .expect_err("overlap inside");
    assert!(
        e.contains("/domain/idmap/uid") && e.contains("overlaps the container ids"),
        "{e}"
    );
    let e = def(
        "<idmap><uid start='0' target='1000' count='10'/><uid start='20' target='1005' count='2'/>\
         <gid start='0' target='1000' count='10'/></idmap>",
        "",
    )
    .expect_err("overlap on the host");
    assert!(e.contains("overlaps the host ids"), "{e}");
    let e = def(
        "<idmap><uid start='0' target='1000' count='10'/></idmap>",
        "",
    )
    .expect_err("no gid");
    assert!(e.contains("/domain/idmap/gid"), "{e}");
    let e = def(
        "<idmap><uid start='1' target='1000' count='10'/><gid start='0' target='1000' count='10'/></idmap>",
        "",
    )
    .expect_err("root unmapped");
    assert!(e.contains("/domain/idmap/uid/@start"), "{e}");
}

#[test]
fn capabilities_policy_drops_as_libvirt() {
    let default = ProcessCaps::dropped(None);
    for c in [
        ProcessCap::SysModule,
        ProcessCap::SysTime,
        ProcessCap::Mknod,
        ProcessCap::AuditControl,
        ProcessCap::MacAdmin,
    ] {
        assert!(default.contains(&c), "{c:?}");
    }
    assert_eq!(
        default.len(),
        5,
        "sys_boot stays: a reboot(2) inside ends the container"
    );
    let d = def(
        "<features><capabilities policy='default'><mknod state='on'/><net_raw state='off'/>\
         </capabilities></features>",
        "",
    )
    .expect("caps");
    let dropped = ProcessCaps::dropped(d.features.capabilities.as_ref());
    assert!(!dropped.contains(&ProcessCap::Mknod));
    assert!(dropped.contains(&ProcessCap::NetRaw));
    let deny = def(
        "<features><capabilities policy='deny'><chown state='on'/></capabilities></features>",
        "",
    )
    .expect("deny");
    let dropped = ProcessCaps::dropped(deny.features.capabilities.as_ref());
    assert_eq!(dropped.len(), ProcessCap::ALL.len() - 1);
    let e = def(
        "<features><capabilities><warp_drive state='on'/></capabilities></features>",
        "",
    )
    .expect_err("unknown capability");
    assert!(
        e.contains("/domain/features/capabilities/warp_drive"),
        "{e}"
    );
    // the default policy without switches is no setting at all, as libvirt writes it
    let d = def(
        "<features><capabilities policy='default'/><privnet/></features>",
        "",
    )
    .expect("default");
    assert!(d.features.capabilities.is_none());
    let xml = d.to_xml(&FormatOptions::default());
    assert!(
        xml.contains("<privnet/>") && !xml.contains("capabilities"),
        "{xml}"
    );
}

#[test]
fn the_plan_refuses_by_element() {
    let refused = |top: &str, dev: &str| match plan::check(&def(top, dev).expect("parse")) {
        Err(PlanError::NotSupported(m)) | Err(PlanError::Invalid(m)) => m,
        Ok(()) => panic!("accepted {dev}"),
    };
    assert!(refused("", "<graphics type='vnc'/>").contains("<devices><graphics>"));
    let m = refused(
        "",
        "<interface type='direct'><source dev='eth0' mode='bridge'/></interface>",
    );
    assert!(m.contains("bridge, network and ethernet"), "{m}");
    let m = refused(
        "",
        "<interface type='bridge'><source bridge='br0'/><model type='virtio'/></interface>",
    );
    assert!(m.contains("<model> is for virtual machines"), "{m}");
    let m = refused(
        "",
        "<interface type='ethernet'><guest dev='a'/></interface>\
         <interface type='ethernet'><guest dev='a'/></interface>",
    );
    assert!(m.contains("<guest dev='a'> names another"), "{m}");
    let m = refused(
        "",
        "<filesystem type='template'><source name='t'/><target dir='/'/></filesystem>",
    );
    assert!(m.contains("type 'template'"), "{m}");
    let m = refused(
        "",
        "<filesystem type='file'><driver type='nbd' format='qcow2'/><source file='/x.img'/>\
         <target dir='/'/></filesystem>",
    );
    assert!(m.contains("<driver type='nbd'>"), "{m}");
    let m = refused(
        "",
        "<filesystem type='mount'><source dir='/a'/><target dir='/'/></filesystem>\
         <filesystem type='mount'><source dir='/b'/><target dir='/'/></filesystem>",
    );
    assert!(m.contains("more than one"), "{m}");
    let no_console = DomainDef::from_xml(
        &MINI
            .replace("__TOP__", "")
            .replace("__DEV__<console type='pty'/>", ""),
    )
    .expect("parse");
    assert!(
        matches!(plan::check(&no_console), Err(PlanError::Invalid(m)) if m.contains("PTY console"))
    );
    let hvm = DomainDef::from_xml(
        "<domain type='lxc'><name>c</name><memory>1024</memory><os><type>hvm</type></os>\
         <devices><console type='pty'/></devices></domain>",
    )
    .expect("parse");
    assert!(matches!(plan::check(&hvm), Err(PlanError::Invalid(m)) if m.contains("'exe'")));
}

#[test]
fn init_environment_and_ram_usage_round_trip() {
    let d = def(
        "",
        "<filesystem type='ram'><source usage='2' units='MiB'/><target dir='/tmp'/></filesystem>",
    )
    .expect("ram");
    assert_eq!(d.devices.filesystems[0].usage_kib, Some(2048));
    let xml = d.to_xml(&FormatOptions::default());
    assert!(xml.contains("<source usage='2048' units='KiB'/>"), "{xml}");
    let e = DomainDef::from_xml(&MINI.replace(
        "<init>/bin/sh</init>",
        "<init>/bin/sh</init><initenv name='9BAD'>x</initenv>",
    ))
    .expect_err("bad name");
    assert!(e.to_string().contains("initenv/@name"), "{e}");
}

/// `<ip>`, `<route>` and `<guest>` round-trip as libvirt writes them (family on every
/// `<ip>`, on a `<route>` only when given; a prefix of 0 is none); the plan names the
/// container ends `eth0`... around the `<guest dev>`s given, and sets up only those with
/// addresses or `<link state='up'/>`.
#[test]
fn interfaces_become_veth_pairs_named_as_libvirt_names_them() {
    let dev = "<interface type='ethernet'><mac address='52:54:00:00:00:01'/>\
        <ip address='192.168.7.2' prefix='24'/><ip address='fd00::2' prefix='0'/>\
        <route address='10.0.0.0' prefix='8' gateway='192.168.7.1' metric='5'/>\
        <route family='ipv6' address='fd01::' gateway='fd00::1'/></interface>\
        <interface type='ethernet'><mac address='52:54:00:00:00:02'/><guest dev='eth0'/>\
        </interface>\
        <interface type='ethernet'><mac address='52:54:00:00:00:03'/><target dev='h3'/>\
        <link state='up'/></interface>";
    let d = def("", dev).expect("parse");
    let xml = d.to_xml(&FormatOptions::default());
    assert!(
        xml.contains("<ip address='192.168.7.2' family='ipv4' prefix='24'/>"),
        "{xml}"
    );
    assert!(
        xml.contains("<ip address='fd00::2' family='ipv6'/>"),
        "{xml}"
    );
    assert!(
        xml.contains("<route address='10.0.0.0' prefix='8' gateway='192.168.7.1' metric='5'/>"),
        "{xml}"
    );
    assert!(
        xml.contains("<route family='ipv6' address='fd01::' gateway='fd00::1'/>"),
        "{xml}"
    );
    assert!(xml.contains("<guest dev='eth0'/>"), "{xml}");
    assert_eq!(squash(&canonical(&xml)), squash(&xml));
    plan::check(&d).expect("check");
    let dir = tempfile::tempdir().expect("tmp");
    let p = plan::build(&d, 7, dir.path(), dir.path().join("log")).expect("plan");
    assert!(p.private_net);
    let names: Vec<_> = p
        .veths
        .iter()
        .map(|v| (v.host.as_str(), v.peer.as_str(), v.guest.as_str(), v.up))
        .collect();
    assert_eq!(
        names,
        [
            ("vb7n0", "vb7p0", "eth1", true),
            ("vb7n1", "vb7p1", "eth0", false),
            ("h3", "vb7p2", "eth2", true)
        ]
    );
    assert_eq!(p.veths[0].mac, [0x52, 0x54, 0, 0, 0, 1]);
    assert_eq!(
        p.veths[0].ips,
        [
            ("192.168.7.2".parse().unwrap(), 24, None),
            ("fd00::2".parse().unwrap(), 64, None)
        ]
    );
    assert_eq!(
        p.veths[0].routes[0],
        (
            "10.0.0.0".parse().unwrap(),
            8,
            "192.168.7.1".parse().unwrap(),
            Some(5)
        )
    );
    // a network not resolved to a bridge
    let e = plan::build(
        &def(
            "",
            "<interface type='network'><source network='default'/></interface>",
        )
        .unwrap(),
        7,
        dir.path(),
        dir.path().join("log"),
    )
    .unwrap_err();
    assert!(
        matches!(&e, PlanError::Invalid(m) if m.contains("not resolved")),
        "{e}"
    );
    // bad addresses are refused with their path
    let e = def(
        "",
        "<interface type='ethernet'><ip address='1.2.3.4' family='ipv6'/></interface>",
    )
    .unwrap_err();
    assert!(e.contains("/ip/@family"), "{e}");
    let e = def(
        "",
        "<interface type='ethernet'><route address='10.0.0.0' prefix='8'/></interface>",
    )
    .unwrap_err();
    assert!(e.contains("/route/@gateway"), "{e}");
}

/// A bridge that is not there, or a device that is not a bridge, is bad input; so is a
/// host end whose name is taken.
#[tokio::test]
async fn bridges_are_checked_through_netlink() {
    let v = |bridge: Option<&str>, host: &str| super::veth::Veth {
        host: host.into(),
        peer: "vbxp0".into(),
        guest: "eth0".into(),
        mac: [0x52, 0x54, 0, 0, 0, 1],
        bridge: bridge.map(str::to_owned),
        ips: Vec::new(),
        routes: Vec::new(),
        up: false,
        host_ips: Vec::new(),
        host_routes: Vec::new(),
    };
    let e = super::veth::check(&[v(Some("vbnosuchbr0"), "vbxn0")])
        .await
        .unwrap_err();
    assert!(
        e.0 && e.1.contains("'vbnosuchbr0'> is not an existing bridge"),
        "{e:?}"
    );
    let e = super::veth::check(&[v(Some("lo"), "vbxn0")])
        .await
        .unwrap_err();
    assert!(
        e.0 && e.1.contains("'lo'> is not an existing bridge"),
        "{e:?}"
    );
    let e = super::veth::check(&[v(None, "lo")]).await.unwrap_err();
    assert!(e.0 && e.1.contains("<target dev='lo'>"), "{e:?}");
    super::veth::check(&[v(None, "vbxn0")]).await.expect("fine");
}

/// `<memtune>` round-trips as libvirt writes it (KiB, its order); "unlimited" and 0 are
/// no limit; a memory+swap limit below the hard limit is refused with its path; the plan
/// puts the hard limit in place of `<memory>`'s.
#[test]
fn memtune_round_trips_and_sets_the_limits() {
    let d = def(
        "<memtune><swap_hard_limit unit='GiB'>1</swap_hard_limit>\
         <hard_limit unit='MiB'>48</hard_limit><soft_limit>9007199254740991</soft_limit>\
         </memtune>",
        "",
    )
    .expect("parse");
    let xml = d.to_xml(&FormatOptions::default());
    assert!(
        squash(&xml).contains(
            "<memtune><hard_limit unit='KiB'>49152</hard_limit>\
             <swap_hard_limit unit='KiB'>1048576</swap_hard_limit></memtune>"
        ),
        "{xml}"
    );
    assert_eq!(squash(&canonical(&xml)), squash(&xml));
    let e = def(
        "<memtune><hard_limit>2048</hard_limit><swap_hard_limit>1024</swap_hard_limit></memtune>",
        "",
    )
    .unwrap_err();
    assert!(e.contains("/memtune/swap_hard_limit"), "{e}");
    let dir = tempfile::tempdir().expect("tmp");
    if let Ok(p) = plan::build(&d, 1, dir.path(), dir.path().join("log")) {
        assert_eq!(p.limits.memory_bytes, Some(48 << 20));
        assert_eq!(p.limits.memory_soft_bytes, None);
        assert_eq!(p.limits.memory_swap_bytes, Some(1 << 30));
    }
}
