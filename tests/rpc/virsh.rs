//! Debian's virsh, unchanged, through libvirt.so's remote driver.

use super::{Rpc, guest};
use crate::support;

/// libvirt's test driver URI, forced through the remote driver onto our socket.
const TEST: &str = "test+unix:///default";
const QEMU: &str = "qemu:///system";

/// The value of a `Key: value` line of virsh's output.
fn field<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {key} in:\n{out}"))
}

#[tokio::test]
async fn connection_and_host_commands() {
    let r = Rpc::start().await;
    let uri = r.ok(QEMU, &["uri"]);
    assert!(uri.starts_with("qemu:///system"), "{uri}");
    let v = r.ok(TEST, &["version", "--daemon"]);
    assert!(v.contains("Using API: Test 9.0.0"), "{v}");
    assert!(v.contains("Running against daemon: 9.0.0"), "{v}");
    let v = r.ok(QEMU, &["version"]);
    assert!(v.contains("Using API: QEMU 9.0.0"), "{v}");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    assert_eq!(r.ok(QEMU, &["hostname"]).trim(), host.trim());
    let n = r.ok(QEMU, &["nodeinfo"]);
    assert_eq!(field(&n, "CPU model"), std::env::consts::ARCH);
    let cpus: usize = field(&n, "CPU(s)").parse().expect("cpus");
    assert_eq!(
        cpus,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    assert!(field(&n, "Memory size").ends_with("KiB"), "{n}");
    let caps = r.ok(QEMU, &["capabilities"]);
    let doc = roxmltree::Document::parse(&caps).expect("capabilities are XML");
    assert_eq!(doc.root_element().tag_name().name(), "capabilities");
    let dc = r.ok(QEMU, &["domcapabilities", "--virttype", "qemu"]);
    let doc = roxmltree::Document::parse(&dc).expect("domain capabilities are XML");
    assert_eq!(doc.root_element().tag_name().name(), "domainCapabilities");
    assert!(dc.contains("<domain>qemu</domain>"), "{dc}");
    // Not a URI this daemon serves (lxc:/// is served when the LXC driver runs).
    let e = r.fails("bhyve:///system", &["uri"]);
    assert!(e.contains("no connection driver available"), "{e}");
}

#[tokio::test]
async fn test_driver_domain_lifecycle() {
    let r = Rpc::start().await;
    // test:///default's own domain, running
    let list = r.ok(TEST, &["list", "--all"]);
    assert!(
        list.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["1", "test", "running"]),
        "{list}"
    );
    let xml_path = r.bus.dir.path().join("web.xml");
    std::fs::write(&xml_path, support::test_domain("web")).expect("write xml");
    let xml_arg = xml_path.to_string_lossy().into_owned();
    let out = r.ok(TEST, &["define", &xml_arg]);
    assert!(out.contains("Domain 'web' defined"), "{out}");
    let info = r.ok(TEST, &["dominfo", "web"]);
    assert_eq!(field(&info, "Id"), "-");
    assert_eq!(field(&info, "State"), "shut off");
    assert_eq!(field(&info, "CPU(s)"), "2");
    assert_eq!(field(&info, "Max memory"), "524288 KiB");
    assert_eq!(field(&info, "Persistent"), "yes");
    assert_eq!(r.ok(TEST, &["domstate", "web"]).trim(), "shut off");
    // by UUID too, as virsh resolves it
    let uuid = field(&info, "UUID").to_owned();
    assert_eq!(r.ok(TEST, &["domname", &uuid]).trim(), "web");

    r.ok(TEST, &["start", "web"]);
    assert_eq!(r.ok(TEST, &["domstate", "web"]).trim(), "running");
    let info = r.ok(TEST, &["dominfo", "web"]);
    let id = field(&info, "Id").to_owned();
    assert!(id.parse::<u32>().is_ok(), "{info}");
    // by id
    assert_eq!(r.ok(TEST, &["domname", &id]).trim(), "web");
    let live = r.ok(TEST, &["dumpxml", "web"]);
    assert!(
        live.contains(&format!("<domain type='test' id='{id}'>")),
        "{live}"
    );
    let inactive = r.ok(TEST, &["dumpxml", "--inactive", "--security-info", "web"]);
    assert!(inactive.starts_with("<domain type='test'>"), "{inactive}");
    assert!(inactive.contains("<name>web</name>"), "{inactive}");
    // virsh itself refuses a domain with an id; the daemon's own refusal, libvirt's words
    let e = r.fails(TEST, &["start", "web"]);
    assert!(e.contains("Domain is already active"), "{e}");
    let e = r.fails(TEST, &["resume", "web"]);
    assert!(e.contains("domain 'web' not paused"), "{e}");

    r.ok(TEST, &["suspend", "web"]);
    assert_eq!(r.ok(TEST, &["domstate", "web"]).trim(), "paused");
    r.ok(TEST, &["resume", "web"]);
    assert_eq!(r.ok(TEST, &["domstate", "web"]).trim(), "running");
    r.ok(TEST, &["shutdown", "web"]);
    assert_eq!(r.ok(TEST, &["domstate", "web"]).trim(), "shut off");
    r.ok(TEST, &["start", "web"]);
    r.ok(TEST, &["destroy", "web"]);
    assert_eq!(
        r.ok(TEST, &["domstate", "--reason", "web"]).trim(),
        "shut off (destroyed)"
    );
    let out = r.ok(TEST, &["undefine", "web"]);
    assert!(out.contains("has been undefined"), "{out}");
    assert!(!r.ok(TEST, &["list", "--all"]).contains("web"));
    let e = r.fails(TEST, &["dominfo", "web"]);
    assert!(e.contains("failed to get domain 'web'"), "{e}");

    // the qemu URI shows none of the test driver's domains, and takes none
    let list = r.ok(QEMU, &["list", "--all"]);
    assert!(!list.contains("test"), "{list}");
    let e = r.fails(QEMU, &["define", &xml_arg]);
    assert!(e.contains("are not served at qemu:///system"), "{e}");
    // bad XML: the model's error, nothing defined
    let bad = support::test_domain("x").replace("</domain>", "<bogus/></domain>");
    std::fs::write(&xml_path, bad).expect("write xml");
    let e = r.fails(TEST, &["define", &xml_arg]);
    assert!(e.contains("bogus"), "{e}");
    assert!(!r.ok(TEST, &["list", "--all"]).contains(" x "));
}

#[tokio::test]
async fn real_qemu_guest_through_virsh() {
    let r = Rpc::start().await;
    let disk = r.bus.dir.path().join("data.qcow2");
    guest::data_disk(&disk);
    let xml_path = r.bus.dir.path().join("tiny.xml");
    std::fs::write(&xml_path, guest::domain_xml("tiny", &disk, "")).expect("write xml");
    let xml_arg = xml_path.to_string_lossy().into_owned();
    r.ok(QEMU, &["define", &xml_arg]);
    assert_eq!(r.ok(QEMU, &["domstate", "tiny"]).trim(), "shut off");
    let inactive = r.ok(QEMU, &["dumpxml", "--inactive", "tiny"]);
    assert!(
        inactive.contains("<type arch='x86_64' machine="),
        "{inactive}"
    );
    r.ok(QEMU, &["start", "tiny"]);
    assert_eq!(r.ok(QEMU, &["domstate", "tiny"]).trim(), "running");
    let info = r.ok(QEMU, &["dominfo", "tiny"]);
    assert_eq!(field(&info, "State"), "running");
    assert_eq!(field(&info, "OS Type"), "hvm");
    assert_eq!(field(&info, "Max memory"), "262144 KiB");
    let live = r.ok(QEMU, &["dumpxml", "tiny"]);
    assert!(live.contains("<domain type='qemu' id="), "{live}");
    let list = r.ok(QEMU, &["list"]);
    assert!(list.contains("tiny"), "{list}");
    r.ok(QEMU, &["suspend", "tiny"]);
    assert_eq!(r.ok(QEMU, &["domstate", "tiny"]).trim(), "paused");
    r.ok(QEMU, &["resume", "tiny"]);
    assert_eq!(r.ok(QEMU, &["domstate", "tiny"]).trim(), "running");
    r.ok(QEMU, &["destroy", "tiny"]);
    assert_eq!(r.ok(QEMU, &["domstate", "tiny"]).trim(), "shut off");
    r.ok(QEMU, &["undefine", "tiny"]);
    let e = r.fails(QEMU, &["domstate", "tiny"]);
    assert!(e.contains("failed to get domain 'tiny'"), "{e}");
}
