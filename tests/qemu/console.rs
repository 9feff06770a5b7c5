//! The serial console of a real guest: `virtbusctl console` on a pseudo-terminal the test
//! holds (a shell in the guest answers, Ctrl-] detaches, the terminal is as it was), and
//! OpenConsole's one-session rule over the bus.

use std::{
    io::{Read, Write},
    os::{
        fd::{AsRawFd, OwnedFd},
        unix::net::UnixStream,
    },
    process::Command,
    time::{Duration, Instant},
};

use zbus::Variant;

use crate::{
    guest, guests,
    support::{
        pty::{expect, on_terminal, openpty},
        *,
    },
    wait_agent,
};

/// The settings of a terminal, as comparable values.
fn termios(fd: &OwnedFd) -> (u32, u32, u32, u32, Vec<u8>) {
    // SAFETY: a zeroed termios is a valid out-parameter for tcgetattr.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: fd is an open terminal; t is a valid termios.
    assert_eq!(unsafe { libc::tcgetattr(fd.as_raw_fd(), &mut t) }, 0);
    (t.c_iflag, t.c_oflag, t.c_cflag, t.c_lflag, t.c_cc.to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_on_a_terminal_reaches_the_guest_shell_and_detaches_cleanly() {
    let _permit = guests(1).await;
    // The daemon serves the libvirt facade too (its OpenGraphicsFD is checked last).
    let bus = Bus::start();
    let state = bus.dir.path().join("state");
    let runtime = bus.dir.path().join("run");
    let _daemon = Daemon::start_with(&bus, &state, &runtime, &["--libvirt-compat"]).await;
    let conn = bus.connect().await;
    let disk = bus.dir.path().join("con.qcow2");
    guest::data_disk(&disk);
    let path = proxies::manager(&conn)
        .await
        .define_domain(&guest::domain_xml("con", &disk, ""), no_opts())
        .await
        .expect("define");
    let dom = proxies::domain(&conn, &path).await;

    // Not running: refused by state, naming the operation.
    let e = dom.open_console("", no_opts()).await.expect_err("shut off");
    assert!(
        e.to_string()
            .contains("cannot open a console of domain 'con'"),
        "{e}"
    );

    dom.start(no_opts()).await.expect("start");
    wait_agent(&dom).await;

    let (mut master, slave) = openpty();
    let before = termios(&slave);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_virtbusctl"));
    cmd.args(["--user", "console", "con"])
        .env("DBUS_SESSION_BUS_ADDRESS", &bus.address);
    on_terminal(&mut cmd, &slave);
    let mut child = cmd.spawn().expect("run virtbusctl console");

    let mut seen = String::new();
    let long = Duration::from_secs(60);
    expect(&mut master, &mut seen, "Escape character is ^]", b"", long);
    assert!(seen.contains("Connected to domain 'con'"), "{seen}");
    // The session's terminal is raw: no line editing, no echo, no signals from keys.
    // (the client prints its greeting, then switches)
    let cooked = libc::ICANON | libc::ECHO | libc::ISIG;
    let t = Instant::now();
    while termios(&slave).3 & cooked != 0 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{:?}",
            termios(&slave)
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // The guest's shell runs what is typed (the arithmetic shows it ran, not just echoed).
    seen.clear();
    expect(&mut master, &mut seen, "hi-42", b"echo hi-$((6*7))\r", long);
    // Ctrl-C goes to the guest, not to the client.
    master.write_all(b"\x03").expect("ctrl-c");
    seen.clear();
    expect(
        &mut master,
        &mut seen,
        "again-7",
        b"echo again-$((3+4))\r",
        long,
    );
    assert!(child.try_wait().expect("wait").is_none(), "the client left");

    // Ctrl-] detaches; the client ends well and the terminal is as it was.
    master.write_all(b"\x1d").expect("escape");
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "Ctrl-] did not detach"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    assert_eq!(
        termios(&slave),
        before,
        "terminal settings after the session"
    );

    // A signal ends a session too, and the terminal is restored all the same.
    let mut child = cmd.spawn().expect("run virtbusctl console again");
    seen.clear();
    expect(&mut master, &mut seen, "Escape character is ^]", b"", long);
    let t = Instant::now();
    while termios(&slave).3 & cooked != 0 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{:?}",
            termios(&slave)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let t = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "SIGTERM did not end it"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(termios(&slave), before, "terminal settings after SIGTERM");

    // One session per device: a second is refused, force takes over (the first one ends).
    let first = dom.open_console("", no_opts()).await.expect("open");
    let e = dom
        .open_console("serial0", no_opts())
        .await
        .expect_err("busy");
    assert!(e.to_string().contains("active console session"), "{e}");
    let second = dom
        .open_console("", opts([("force", Variant::Bool(true))]))
        .await
        .expect("force");
    let mut first = UnixStream::from(OwnedFd::from(first));
    first
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut sink = Vec::new();
    first
        .read_to_end(&mut sink)
        .expect("the first session ends");
    // The second one works: it reaches the shell.
    let mut second = UnixStream::from(OwnedFd::from(second));
    second
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let mut got = String::new();
    let t = Instant::now();
    while !got.contains("bye-9") {
        assert!(t.elapsed() < long, "forced session: {got:?}");
        second.write_all(b"echo bye-$((4+5))\r").expect("type");
        let mut buf = [0u8; 4096];
        if let Ok(n) = second.read(&mut buf) {
            got.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }
    let e = dom
        .open_console("nosuch0", no_opts())
        .await
        .expect_err("no device");
    assert!(
        e.to_string().contains("no character device 'nosuch0'"),
        "{e}"
    );

    // Graphics: the guest's VNC server greets a client on the socket it hands out.
    let vnc = dom.open_graphics_fd(no_opts()).await.expect("graphics");
    let mut vnc = UnixStream::from(OwnedFd::from(vnc));
    vnc.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut hello = [0u8; 12];
    vnc.read_exact(&mut hello).expect("VNC greeting");
    assert!(hello.starts_with(b"RFB 003."), "{hello:?}");

    // The libvirt facade's OpenGraphicsFD(idx, flags) over the same operation.
    let facade = |member: &'static str, body| {
        let conn = conn.clone();
        async move {
            let p: zbus::OwnedObjectPath = conn
                .call_method(
                    Some("org.libvirt"),
                    "/org/libvirt/QEMU",
                    Some("org.libvirt.Connect"),
                    "DomainLookupByName",
                    &("con",),
                )
                .await
                .expect("lookup")
                .body()
                .deserialize()
                .expect("path");
            conn.call_method(
                Some("org.libvirt"),
                p.as_str(),
                Some("org.libvirt.Domain"),
                member,
                &body,
            )
            .await
        }
    };
    let reply = facade("OpenGraphicsFD", (0u32, 1u32))
        .await
        .expect("facade");
    let fd: zbus::OwnedFd = reply.body().deserialize().expect("fd");
    let mut vnc = UnixStream::from(OwnedFd::from(fd));
    vnc.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    vnc.read_exact(&mut hello).expect("VNC greeting (facade)");
    assert!(hello.starts_with(b"RFB 003."), "{hello:?}");
    let e = facade("OpenGraphicsFD", (0u32, 2u32))
        .await
        .expect_err("flags");
    assert!(e.to_string().contains("unsupported flags"), "{e}");

    dom.destroy(no_opts()).await.expect("destroy");
}
