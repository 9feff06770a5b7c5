//! The procedures added for issue 15: `test:///default`'s networks, interfaces, node devices
//! and pools compared with libvirt's own test driver (linked into virsh), pool capabilities
//! and source discovery compared with Debian's libvirtd, the QEMU program's monitor and agent
//! commands on a real guest (and their refusal by polkit), and virsh's domain commands on a
//! running tiny guest.

use std::os::unix::fs::PermissionsExt;

use super::{Rpc, guest};
use crate::support::libvirtd::Libvirtd;

const TEST: &str = "test+unix:///default";
const QEMU: &str = "qemu:///system";

#[tokio::test]
async fn test_uri_objects_are_libvirts_test_driver() {
    let r = Rpc::start().await;
    for cmd in [
        &["net-list", "--all"][..],
        &["net-dumpxml", "default"],
        &["net-info", "default"],
        &["iface-list"],
        &["iface-list", "--all"],
        &["iface-dumpxml", "eth1"],
        &["iface-mac", "eth1"],
        &["nodedev-list"],
        &["nodedev-list", "--tree"],
        &["nodedev-list", "--cap", "scsi_host"],
        &["nodedev-dumpxml", "computer"],
        &["nodedev-dumpxml", "scsi_host11"],
        &["pool-list"],
        &["pool-list", "--all"],
        &["pool-dumpxml", "default-pool"],
        &["find-storage-pool-sources", "logical"],
        &["find-storage-pool-sources", "dir"],
        &["find-storage-pool-sources", "bogus"],
        &["pool-capabilities"],
    ] {
        r.assert_as_libvirt_test(cmd);
    }
    // the comparison compares something: our objects are there
    let nets = r.ok(TEST, &["net-list", "--all"]);
    assert!(nets.contains("default"), "{nets}");
    let dev = r.ok(TEST, &["nodedev-dumpxml", "scsi_host11"]);
    assert!(dev.contains("<parent>scsi_host1</parent>"), "{dev}");
}

/// `<pool type='T' supported='…'>` for each pool type of a pool capabilities document.
fn supported(caps: &str) -> Vec<(String, bool)> {
    let doc = roxmltree::Document::parse(caps).expect("pool capabilities are XML");
    doc.root_element()
        .children()
        .filter(|n| n.has_tag_name("pool"))
        .map(|n| {
            (
                n.attribute("type").unwrap_or_default().to_owned(),
                n.attribute("supported") == Some("yes"),
            )
        })
        .collect()
}

#[tokio::test]
async fn pool_capabilities_and_source_discovery_as_libvirtd() {
    if let Err(why) = Libvirtd::available() {
        panic!("Debian's libvirtd is needed as the oracle: {why}");
    }
    let r = Rpc::start().await;
    let lv = Libvirtd::start();
    let theirs = lv.virsh(&["pool-capabilities"]);
    assert!(theirs.status.success(), "{}", lv.log_text());
    let theirs = String::from_utf8_lossy(&theirs.stdout).into_owned();
    let ours = r.ok(QEMU, &["-q", "pool-capabilities"]);
    // every type in libvirt's order, with its options; only `dir` supported here
    let t = supported(&theirs);
    let o = supported(&ours);
    assert_eq!(
        o.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        t.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    assert!(t.contains(&("dir".into(), true)), "{theirs}");
    for (name, yes) in &o {
        assert_eq!(*yes, name == "dir", "{name}: {ours}");
    }
    let unsupported = |x: &str| {
        x.replace("supported='yes'", "supported='?'")
            .replace("supported='no'", "supported='?'")
    };
    assert_eq!(unsupported(&ours), unsupported(&theirs));

    // source discovery: a type libvirt does not know, and `dir` (which discovers none)
    for ty in ["bogus", "dir"] {
        let args = ["find-storage-pool-sources", ty];
        let theirs = lv.virsh(&args);
        let (ok, _, ours) = r.virsh(QEMU, &args);
        assert!(!ok && !theirs.status.success());
        assert_eq!(ours, String::from_utf8_lossy(&theirs.stderr), "{ty}");
    }
    // a type libvirtd can discover but virtbus does not run: refused, with libvirt's words
    let e = r.fails(QEMU, &["find-storage-pool-sources", "logical"]);
    assert!(
        e.contains("pool type 'logical' does not support source discovery"),
        "{e}"
    );
}

/// The value of a `Key: value` line of virsh's output.
fn field<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(key)?.trim_start().strip_prefix(':'))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {key} in:\n{out}"))
}

#[tokio::test]
async fn qemu_program_and_domain_commands_on_a_real_guest() {
    let r = Rpc::start().await;
    let disk = r.bus.dir.path().join("data.qcow2");
    guest::data_disk(&disk);
    let xml_path = r.bus.dir.path().join("tiny.xml");
    std::fs::write(&xml_path, guest::domain_xml("tiny", &disk, "")).expect("write xml");
    let xml_arg = xml_path.to_string_lossy().into_owned();
    r.ok(QEMU, &["define", &xml_arg]);

    // metadata, on the definition
    r.ok(
        QEMU,
        &["desc", "tiny", "--config", "--title", "A tiny guest"],
    );
    assert_eq!(
        r.ok(QEMU, &["desc", "tiny", "--title"]).trim(),
        "A tiny guest"
    );
    r.ok(
        QEMU,
        &[
            "metadata",
            "tiny",
            "--uri",
            "http://example.org/app",
            "--key",
            "app",
            "--set",
            "<app><k>v</k></app>",
        ],
    );
    let md = r.ok(
        QEMU,
        &["metadata", "tiny", "--uri", "http://example.org/app"],
    );
    assert!(md.contains("<k>v</k>"), "{md}");
    // the QEMU program on a guest that is not running: authorized (root), then refused
    let e = r.fails(
        QEMU,
        &[
            "qemu-monitor-command",
            "tiny",
            r#"{"execute":"query-status"}"#,
        ],
    );
    assert!(e.contains("not running"), "{e}");

    r.ok(QEMU, &["start", "tiny"]);
    // QMP: QEMU's reply as it gave it
    let out = r.ok(
        QEMU,
        &[
            "qemu-monitor-command",
            "tiny",
            r#"{"execute":"query-status"}"#,
        ],
    );
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON reply");
    assert_eq!(v["return"]["status"], "running", "{out}");
    let out = r.ok(
        QEMU,
        &[
            "qemu-monitor-command",
            "tiny",
            "--pretty",
            r#"{"execute":"query-name"}"#,
        ],
    );
    assert!(out.contains("\"return\""), "{out}");
    // a QMP error is QEMU's answer, not a failure of the call
    let out = r.ok(
        QEMU,
        &[
            "qemu-monitor-command",
            "tiny",
            r#"{"execute":"no-such-command"}"#,
        ],
    );
    assert!(out.contains("CommandNotFound"), "{out}");
    // HMP
    let out = r.ok(
        QEMU,
        &["qemu-monitor-command", "tiny", "--hmp", "info status"],
    );
    assert!(out.contains("VM status: running"), "{out}");
    // bad input: refused by name, nothing sent
    let e = r.fails(
        QEMU,
        &[
            "qemu-monitor-command",
            "tiny",
            r#"{"execute":"stop","bogus":1}"#,
        ],
    );
    assert!(e.contains("unknown member 'bogus'"), "{e}");
    assert_eq!(r.ok(QEMU, &["domstate", "tiny"]).trim(), "running");
    // the domain is tainted, as libvirt marks it
    let info = r.ok(QEMU, &["dominfo", "tiny"]);
    assert!(
        info.contains("tainted: custom monitor control commands issued"),
        "{info}"
    );

    // the guest agent, once it answers
    let out = r.ok_eventually(&["qemu-agent-command", "tiny", r#"{"execute":"guest-ping"}"#]);
    assert_eq!(out.trim(), r#"{"return":{}}"#);
    let host = r.ok_eventually(&["domhostname", "tiny"]);
    assert!(!host.trim().is_empty());
    let gi = r.ok(QEMU, &["guestinfo", "tiny"]);
    assert_eq!(field(&gi, "hostname"), host.trim(), "{gi}");
    assert!(gi.contains("os.id"), "{gi}");
    let gi = r.ok(QEMU, &["guestinfo", "tiny", "--user"]);
    assert_eq!(field(&gi, "user.count"), "0", "{gi}");
    let n = r.ok(QEMU, &["domfsfreeze", "tiny"]);
    assert!(n.contains("Froze 1 filesystem"), "{n}");
    let n = r.ok(QEMU, &["domfsthaw", "tiny"]);
    assert!(n.contains("Thawed 1 filesystem"), "{n}");

    // sizes, pinning, memory and vCPUs
    let bi = r.ok(QEMU, &["domblkinfo", "tiny", "vda"]);
    let cap = field(&bi, "Capacity")
        .split_whitespace()
        .next()
        .unwrap_or("");
    assert!(cap.parse::<f64>().is_ok_and(|c| c > 0.0), "{bi}");
    let pin = r.ok(QEMU, &["vcpupin", "tiny"]);
    assert!(pin.lines().any(|l| l.trim().starts_with("0 ")), "{pin}");
    r.ok(QEMU, &["setmem", "tiny", "200M", "--live"]);
    r.ok(QEMU, &["setmaxmem", "tiny", "300M", "--config"]);
    let xml = r.ok(QEMU, &["dumpxml", "--inactive", "tiny"]);
    assert!(xml.contains("<memory unit='KiB'>307200</memory>"), "{xml}");
    r.ok(QEMU, &["setvcpus", "tiny", "2", "--config", "--maximum"]);
    let n = r.ok(QEMU, &["vcpucount", "tiny", "--config", "--maximum"]);
    assert_eq!(n.trim(), "2");

    let job = r.ok(QEMU, &["domjobinfo", "tiny"]);
    assert_eq!(field(&job, "Job type"), "None", "{job}");
    // what virtbus does not do answers as an older libvirtd would
    for cmd in [
        &["setvcpu", "tiny", "1", "--enable"][..],
        &["guest-agent-timeout", "tiny", "--timeout", "5"],
    ] {
        let e = r.fails(QEMU, cmd);
        assert!(
            e.contains("this function is not supported by the connection driver"),
            "{cmd:?}: {e}"
        );
    }
    r.ok(QEMU, &["destroy", "tiny"]);
    // the taint goes with the run
    let info = r.ok(QEMU, &["dominfo", "tiny"]);
    assert!(!info.contains("tainted"), "{info}");
    r.ok(QEMU, &["undefine", "tiny"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_passthrough_needs_its_own_permission() {
    let o = super::polkit::OwnerRpc::start().await;
    let (w, daemon) = (o.env.workdir(), &o.daemon);
    let virsh = |user: &str, args: &[&str]| {
        let out = o.virsh(user, QEMU, args);
        (out.status.success(), super::polkit::text(&out))
    };
    // alice (virtbus-users) owns her domain: she may change it, not pass QEMU commands
    let xml = w.join("vm.xml");
    let disk = w.join("none.qcow2");
    std::fs::write(&xml, guest::domain_xml("alices", &disk, "")).expect("xml");
    std::fs::set_permissions(&xml, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let (ok, out) = virsh("alice", &["define", &xml.to_string_lossy()]);
    assert!(ok, "{out}\n{}", daemon.log_text());
    let (ok, out) = virsh("alice", &["desc", "alices", "--config", "--title", "mine"]);
    assert!(ok, "{out}");
    for args in [
        &[
            "qemu-monitor-command",
            "alices",
            r#"{"execute":"query-status"}"#,
        ][..],
        &["qemu-monitor-command", "alices", "--hmp", "info status"],
        &[
            "qemu-agent-command",
            "alices",
            r#"{"execute":"guest-ping"}"#,
        ],
    ] {
        let (ok, out) = virsh("alice", args);
        assert!(!ok, "{args:?}: {out}");
        assert!(out.contains("access denied"), "{args:?}: {out}");
    }
    // root is allowed; the domain is not running
    let (ok, out) = virsh(
        "root",
        &[
            "qemu-monitor-command",
            "alices",
            r#"{"execute":"query-status"}"#,
        ],
    );
    assert!(!ok && out.contains("not running"), "{out}");
}
