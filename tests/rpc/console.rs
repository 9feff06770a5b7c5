//! `virsh console` to the tiny guest through the RPC stream: on a pseudo-terminal the test
//! holds, the guest's shell answers what is typed, and Ctrl-] detaches.

use std::{
    io::Write,
    process::Command,
    time::{Duration, Instant},
};

use super::{
    Rpc, guest,
    support::pty::{expect, on_terminal, openpty},
};

const QEMU: &str = "qemu:///system";

#[tokio::test]
async fn virsh_console_reaches_the_guest_shell() {
    let r = Rpc::start().await;
    let disk = r.bus.dir.path().join("con.qcow2");
    guest::data_disk(&disk);
    let xml = r.bus.dir.path().join("con.xml");
    std::fs::write(&xml, guest::domain_xml("con", &disk, "")).expect("write xml");
    r.ok(QEMU, &["define", &xml.to_string_lossy()]);
    // not running: virsh itself sees it from the state the daemon reports
    let e = r.fails(QEMU, &["console", "con"]);
    assert!(e.contains("not running"), "{e}");
    r.ok(QEMU, &["start", "con"]);

    let (mut master, slave) = openpty();
    let uri = format!("{QEMU}?socket={}", r.sock.display());
    let mut cmd = Command::new("virsh");
    cmd.args(["-c", &uri, "console", "con"])
        .env("HOME", r.bus.dir.path())
        .env_remove("LIBVIRT_DEFAULT_URI");
    on_terminal(&mut cmd, &slave);
    let mut child = cmd.spawn().expect("virsh console");
    let mut seen = String::new();
    let long = Duration::from_secs(90);
    expect(&mut master, &mut seen, "Escape character is ^]", b"", long);
    // the guest's shell runs what is typed (the arithmetic shows it ran, not just echoed)
    seen.clear();
    expect(&mut master, &mut seen, "hi-42", b"echo hi-$((6*7))\r", long);
    assert!(child.try_wait().expect("wait").is_none(), "virsh left");
    // Ctrl-] detaches
    master.write_all(b"\x1d").expect("escape");
    let t = Instant::now();
    let mut n = 0u32;
    while child.try_wait().expect("wait").is_none() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "Ctrl-] did not detach"
        );
        std::thread::sleep(Duration::from_millis(50));
        // virsh switches the terminal to raw mode after printing its banner, flushing input
        // typed before: a key sent that early is lost, so it is sent again every second
        n += 1;
        if n.is_multiple_of(20) {
            master.write_all(b"\x1d").expect("escape");
        }
    }
    // the console is free again: a second session opens
    let mut again = cmd.spawn().expect("virsh console again");
    seen.clear();
    expect(&mut master, &mut seen, "Escape character is ^]", b"", long);
    master.write_all(b"\x1d").expect("escape");
    let t = Instant::now();
    let mut n = 0u32;
    while again.try_wait().expect("wait").is_none() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "Ctrl-] did not detach"
        );
        std::thread::sleep(Duration::from_millis(50));
        // virsh switches the terminal to raw mode after printing its banner, flushing input
        // typed before: a key sent that early is lost, so it is sent again every second
        n += 1;
        if n.is_multiple_of(20) {
            master.write_all(b"\x1d").expect("escape");
        }
    }
    r.ok(QEMU, &["destroy", "con"]);
    r.ok(QEMU, &["undefine", "con"]);
}
