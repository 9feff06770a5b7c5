//! A container's console through OpenConsole (the bus, and `virtbusctl console` on a
//! terminal the test holds): the init's output arrives, input reaches it, and the console
//! stays through a reboot and a reset (same pty in the live XML, the open session goes on).

use std::{
    io::{Read, Write},
    os::{fd::OwnedFd, unix::net::UnixStream},
    process::Command,
};

use super::{
    support::pty::{expect, on_terminal, openpty},
    *,
};

/// Read `s` until `want` shows up (or fail with what was read); returns what was read.
fn read_until(s: &mut UnixStream, want: &str, within: Duration) -> String {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let t = Instant::now();
    let mut got = String::new();
    let mut buf = [0u8; 4096];
    while !got.contains(want) {
        assert!(
            t.elapsed() < within,
            "no {want:?} within {within:?}: {got:?}"
        );
        match s.read(&mut buf) {
            Ok(0) => panic!("the console ended before {want:?}: {got:?}"),
            Ok(n) => got.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(_) => {}
        }
    }
    got
}

/// OpenConsole gives a socket on the container's console: "hello" from the init arrives,
/// a line written reaches the init (which answers it); one session at a time; then
/// `virtbusctl console` (which goes through OpenConsole) does the same on a terminal and
/// Ctrl-] detaches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_console_reads_and_writes_the_init() {
    let s = setup().await;
    let dom = s
        .start(&rootfs::domain(
            "lxc-con",
            &s.root,
            "echo hello; while read l; do echo got-$l; done",
            "",
            "",
        ))
        .await;
    let fd = dom
        .open_console("", no_opts())
        .await
        .unwrap_or_else(|e| panic!("OpenConsole: {e}\n{}", s.daemon.log_text()));
    let mut con = UnixStream::from(OwnedFd::from(fd));
    read_until(&mut con, "hello", Duration::from_secs(10));
    con.write_all(b"ping\n").expect("write");
    read_until(&mut con, "got-ping", Duration::from_secs(10));
    // a second session is refused while this one is open, by the console's alias too
    let e = dom
        .open_console("console0", no_opts())
        .await
        .expect_err("busy");
    assert!(e.to_string().contains("active console session"), "{e}");
    drop(con);

    let (mut master, slave) = openpty();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_virtbusctl"));
    cmd.args(["--user", "console", "lxc-con"])
        .env("DBUS_SESSION_BUS_ADDRESS", &s.bus.address);
    on_terminal(&mut cmd, &slave);
    let mut child = cmd.spawn().expect("virtbusctl console");
    let long = Duration::from_secs(20);
    let mut seen = String::new();
    expect(&mut master, &mut seen, "Escape character is ^]", b"", long);
    assert!(seen.contains("Connected to domain 'lxc-con'"), "{seen}");
    expect(&mut master, &mut seen, "got-pong", b"pong\r", long);
    let t = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        assert!(t.elapsed() < long, "Ctrl-] did not detach");
        master.write_all(b"\x1d").expect("escape");
        std::thread::sleep(Duration::from_millis(300));
    }
    dom.destroy(no_opts()).await.expect("destroy");
}

/// A reboot (the init's `reboot -f`, libvirt's `<on_reboot>restart`) and a reset start the
/// init anew under the same controller: the live XML's console pty is the same, and the
/// console session opened before the reboot gets the new init's output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_stays_through_reboot_and_reset() {
    let s = setup().await;
    let dom = s
        .start(&rootfs::domain(
            "lxc-conboot",
            &s.root,
            "echo x >> /out/boots; echo boot-$(wc -l < /out/boots)-up; \
             trap 'reboot -f' HUP; while true; do sleep 0.1; done",
            "",
            "",
        ))
        .await;
    let pty = console_pty(&dom.get_xml(no_opts()).await.expect("xml"));
    let id = dom.id().await.expect("id");
    let fd = dom.open_console("", no_opts()).await.expect("OpenConsole");
    let mut con = UnixStream::from(OwnedFd::from(fd));
    read_until(&mut con, "boot-1-up", Duration::from_secs(10));
    let first = procs("lxc-conboot");

    dom.reboot(no_opts()).await.expect("reboot");
    read_until(&mut con, "boot-2-up", Duration::from_secs(15));
    assert_eq!(dom.state().await.expect("state"), "running");
    let again = procs("lxc-conboot");
    assert!(
        !again.is_empty() && again[0] != first[0],
        "a new init: {first:?} {again:?}"
    );
    assert!(!pid_alive(first[0]));
    let live = dom.get_xml(no_opts()).await.expect("xml");
    assert_eq!(console_pty(&live), pty, "the same console pty");
    assert_eq!(dom.id().await.expect("id"), id);

    dom.reset(no_opts()).await.expect("reset");
    read_until(&mut con, "boot-3-up", Duration::from_secs(15));
    assert_eq!(
        console_pty(&dom.get_xml(no_opts()).await.expect("xml")),
        pty
    );
    let init = procs("lxc-conboot");
    dom.destroy(no_opts()).await.expect("destroy");
    assert!(init.iter().all(|p| !pid_alive(*p)));
    // the session ends with the container
    con.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut rest = Vec::new();
    con.read_to_end(&mut rest)
        .expect("the console session ends with the container");
}

/// An init that reboots while the daemon is down (`kill -9`) leaves its controller waiting,
/// the console held; the restarted daemon starts it anew as it adopts the controller.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reboot_while_the_daemon_is_down_boots_on_adoption() {
    let mut s = setup().await;
    let dom = s
        .start(&rootfs::domain(
            "lxc-downboot",
            &s.root,
            "echo x >> /out/boots; trap 'reboot -f' HUP; while true; do sleep 0.1; done",
            "",
            "",
        ))
        .await;
    let boots = s.out().join("boots");
    read_when_there(&boots).await;
    let pty = console_pty(&dom.get_xml(no_opts()).await.expect("xml"));
    let first = procs("lxc-downboot");
    s.daemon.kill();
    // SAFETY: signalling the container's init, whose trap reboots it.
    assert_eq!(unsafe { libc::kill(first[0], libc::SIGHUP) }, 0);
    until("the init to end", Duration::from_secs(10), || {
        !pid_alive(first[0])
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        std::fs::read_to_string(&boots)
            .expect("boots")
            .lines()
            .count(),
        1,
        "nothing starts it again without the daemon"
    );
    s.daemon.restart(&s.bus).await;
    let conn = s.bus.connect().await;
    let mgr = manager(&conn).await;
    let dom = domain(
        &conn,
        &mgr.lookup_domain("lxc-downboot").await.expect("lookup"),
    )
    .await;
    assert_eq!(
        dom.state().await.expect("state"),
        "running",
        "{}",
        s.daemon.log_text()
    );
    until("a second boot", Duration::from_secs(10), || {
        std::fs::read_to_string(&boots).is_ok_and(|b| b.lines().count() == 2)
    })
    .await;
    let again = procs("lxc-downboot");
    assert!(!again.is_empty() && again[0] != first[0], "{again:?}");
    assert_eq!(
        console_pty(&dom.get_xml(no_opts()).await.expect("xml")),
        pty
    );
    dom.destroy(no_opts()).await.expect("destroy");
    assert!(again.iter().all(|p| !pid_alive(*p)));
}
