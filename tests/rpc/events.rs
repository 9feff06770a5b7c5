//! Events and snapshots through unchanged clients: `virsh event --loop` and virsh's
//! snapshot commands against our socket, and a python3-libvirt script run against both
//! libvirt's own test driver (the oracle, in the client) and virtbusd.

use std::{
    io::Read,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use super::Rpc;
use crate::support;

const TEST: &str = "test+unix:///default";

/// The python3-libvirt script: lifecycle events of define/start/suspend/resume/reboot/
/// destroy, a snapshot tree, revert and delete.
const SCRIPT: &str = include_str!("events_oracle.py");

fn python(uri: &str, dir: &std::path::Path) -> String {
    let script = dir.join("events_oracle.py");
    std::fs::write(&script, SCRIPT).expect("write script");
    let out = Command::new("/usr/bin/python3")
        .arg(&script)
        .arg(uri)
        .env("HOME", dir)
        .env_remove("LIBVIRT_DEFAULT_URI")
        .output()
        .expect("python3 (package python3-libvirt)");
    assert!(
        out.status.success(),
        "script on {uri}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn events_and_snapshots_match_libvirts_test_driver() {
    let r = Rpc::start().await;
    let dir = r.bus.dir.path();
    let oracle = python("test:///default", dir);
    let ours = python(&format!("{TEST}?socket={}", r.sock.display()), dir);
    // virtbus raises the reboot event on the test driver's reboot (as libvirt's QEMU driver
    // does on a guest's); libvirt's test driver raises none. The one difference.
    assert!(ours.lines().any(|l| l == "reboot web"), "{ours}");
    assert!(!oracle.contains("reboot"), "{oracle}");
    let ours: String = ours
        .lines()
        .filter(|l| *l != "reboot web")
        .map(|l| format!("{l}\n"))
        .collect();
    // the oracle's lines, whatever order events and the rest came in
    let sorted = |s: &str| {
        let mut v: Vec<String> = s.lines().map(str::to_owned).collect();
        v.sort();
        v
    };
    assert_eq!(
        sorted(&ours),
        sorted(&oracle),
        "ours:\n{ours}\noracle:\n{oracle}\ndaemon log:\n{}",
        r.daemon.log_text()
    );
    // and the lifecycle events in their order
    let life = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| l.starts_with("lifecycle"))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(life(&ours), life(&oracle));
}

#[tokio::test]
async fn virsh_event_loop_sees_the_lifecycle() {
    let r = Rpc::start().await;
    let uri = format!("{TEST}?socket={}", r.sock.display());
    let mut ev = Command::new("virsh")
        .args(["-c", &uri, "event", "--loop", "--all", "--timeout", "15"])
        .env("HOME", r.bus.dir.path())
        .env_remove("LIBVIRT_DEFAULT_URI")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("virsh");
    // virsh prints nothing once its callbacks are registered: give it time to
    std::thread::sleep(Duration::from_millis(2000));
    let xml_path = r.bus.dir.path().join("web.xml");
    std::fs::write(&xml_path, support::test_domain("web")).expect("write xml");
    let xml = xml_path.to_string_lossy().into_owned();
    r.ok(TEST, &["define", &xml]);
    r.ok(TEST, &["start", "web"]);
    r.ok(TEST, &["suspend", "web"]);
    r.ok(TEST, &["resume", "web"]);
    r.ok(TEST, &["destroy", "web"]);
    r.ok(TEST, &["undefine", "web"]);
    // the last event seen, stop it (SIGINT as a user would)
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut stdout = ev.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    std::thread::sleep(Duration::from_millis(1000));
    // SAFETY: kill with a pid of our own child.
    unsafe { libc::kill(ev.id() as i32, libc::SIGINT) };
    while Instant::now() < deadline {
        if ev.try_wait().expect("wait").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = ev.kill();
    let _ = ev.wait();
    let out = reader.join().expect("reader");
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("for domain 'web'"))
        .collect();
    assert_eq!(
        lines,
        [
            "event 'lifecycle' for domain 'web': Defined Added",
            "event 'lifecycle' for domain 'web': Started Booted",
            "event 'lifecycle' for domain 'web': Suspended Paused",
            "event 'lifecycle' for domain 'web': Resumed Unpaused",
            "event 'lifecycle' for domain 'web': Stopped Destroyed",
            "event 'lifecycle' for domain 'web': Undefined Removed",
        ],
        "virsh event printed:\n{out}\ndaemon log:\n{}",
        r.daemon.log_text()
    );
}

#[tokio::test]
async fn virsh_snapshot_commands() {
    let r = Rpc::start().await;
    let xml_path = r.bus.dir.path().join("web.xml");
    std::fs::write(&xml_path, support::test_domain("web")).expect("write xml");
    let xml = xml_path.to_string_lossy().into_owned();
    r.ok(TEST, &["define", &xml]);
    r.ok(TEST, &["start", "web"]);
    let out = r.ok(TEST, &["snapshot-create-as", "web", "s1", "first"]);
    assert!(out.contains("Domain snapshot s1 created"), "{out}");
    r.ok(TEST, &["snapshot-create-as", "web", "s2"]);
    r.ok(TEST, &["snapshot-revert", "web", "s1"]);
    r.ok(TEST, &["snapshot-create-as", "web", "s3"]);
    let tree = r.ok(TEST, &["snapshot-list", "web", "--tree"]);
    let want = "s1\n  |\n  +- s2\n  +- s3\n";
    assert_eq!(tree.trim_end(), want.trim_end(), "{tree}");
    let list = r.ok(TEST, &["snapshot-list", "web", "--parent"]);
    assert!(
        list.lines()
            .any(|l| l.split_whitespace().next() == Some("s2") && l.ends_with("s1")),
        "{list}"
    );
    let info = r.ok(TEST, &["snapshot-info", "web", "s1"]);
    let field = |k: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix(':'))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {k} in {info}"))
            .to_owned()
    };
    assert_eq!(field("Name"), "s1");
    assert_eq!(field("Domain"), "web");
    assert_eq!(field("Current"), "no");
    assert_eq!(field("State"), "running");
    assert_eq!(field("Parent"), "-");
    assert_eq!(field("Children"), "2");
    assert_eq!(field("Descendants"), "2");
    assert_eq!(field("Metadata"), "yes");
    let cur = r.ok(TEST, &["snapshot-current", "--name", "web"]);
    assert_eq!(cur.trim(), "s3");
    let x = r.ok(TEST, &["snapshot-dumpxml", "web", "s1"]);
    assert!(x.contains("<name>s1</name>"), "{x}");
    assert!(x.contains("<description>first</description>"), "{x}");
    let e = r.fails(TEST, &["snapshot-info", "web", "nope"]);
    assert!(e.contains("nope"), "{e}");
    r.ok(TEST, &["snapshot-delete", "web", "s1", "--children"]);
    let list = r.ok(TEST, &["snapshot-list", "web", "--name"]);
    assert_eq!(list.trim(), "", "{list}");
    // read-only: the snapshot is not taken
    let e = r.fails(TEST, &["-r", "snapshot-create-as", "web", "ro"]);
    assert!(e.contains("read only") || e.contains("read-only"), "{e}");
}
