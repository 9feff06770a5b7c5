//! sd_notify: READY=1 only once the name is owned, STOPPING=1 on SIGTERM, nothing when
//! start-up fails.

use std::{os::unix::net::UnixDatagram, process::Command, time::Duration};

use crate::{
    fixture::*,
    support::{Bus, NAME},
};

/// A notification socket as systemd provides one.
struct NotifySocket {
    sock: UnixDatagram,
    path: std::path::PathBuf,
}

impl NotifySocket {
    fn new(dir: &std::path::Path) -> NotifySocket {
        let path = dir.join("notify");
        let sock = UnixDatagram::bind(&path).expect("bind");
        sock.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        NotifySocket { sock, path }
    }

    fn recv(&self) -> Option<String> {
        let mut buf = [0u8; 4096];
        let n = self.sock.recv(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    fn try_recv(&self) -> Option<String> {
        self.sock.set_nonblocking(true).ok()?;
        let r = self.recv();
        let _ = self.sock.set_nonblocking(false);
        r
    }
}

fn daemon(bus: &Bus, dir: &std::path::Path, notify: &NotifySocket, log: &str) -> Proc {
    Proc::spawn(
        Command::new(cargo_bin())
            .arg("--session")
            .arg("--state-dir")
            .arg(dir.join("state"))
            .arg("--runtime-dir")
            .arg(dir.join("run"))
            .arg("--timeout=0")
            .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
            .env("XDG_CONFIG_HOME", dir.join("config"))
            .env("NOTIFY_SOCKET", &notify.path)
            .env_remove("JOURNAL_STREAM")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.join(log)).expect("log")),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_after_the_name_is_owned_and_stopping_on_sigterm() {
    let bus = Bus::start();
    let dir = bus.dir.path().to_owned();
    let conn = bus.connect().await;
    let notify = NotifySocket::new(&dir);
    let mut d = daemon(&bus, &dir, &notify, "first.log");

    let msg = tokio::task::block_in_place(|| notify.recv()).expect("a notification");
    // The name is checked the moment READY=1 arrives: it must already be owned.
    assert!(
        has_owner(&conn, NAME).await,
        "READY=1 before the name was owned"
    );
    let lines: Vec<&str> = msg.lines().collect();
    assert_eq!(lines.first(), Some(&"READY=1"), "{msg}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("STATUS=Serving org.virtbus1 on the session bus")),
        "{msg}"
    );

    // A second instance cannot own the name: it fails without claiming readiness.
    let notify2 = NotifySocket::new(&dir.join("state"));
    let mut d2 = daemon(&bus, &dir, &notify2, "second.log");
    let status = d2.wait_exit(Duration::from_secs(20)).expect("second exits");
    assert!(!status.success());
    while let Some(m) = notify2.try_recv() {
        assert!(
            !m.contains("READY=1"),
            "second instance claimed readiness: {m}"
        );
    }

    d.signal(libc::SIGTERM);
    let msg = tokio::task::block_in_place(|| notify.recv()).expect("stopping");
    assert!(msg.starts_with("STOPPING=1\n"), "{msg}");
    assert!(
        msg.contains("STATUS=Stopping; running guests keep running"),
        "{msg}"
    );
    let status = d.wait_exit(Duration::from_secs(10)).expect("exits");
    assert!(status.success(), "{status}");
}
