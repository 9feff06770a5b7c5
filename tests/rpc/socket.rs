//! The socket itself: another daemon's is left alone, a dead daemon's is taken over.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use super::{Rpc, wait_for};
use crate::support::Bus;

#[tokio::test]
async fn a_socket_in_use_is_not_taken() {
    let r = Rpc::start().await;
    let bus = Bus::start();
    let dir = bus.dir.path();
    let mut child = Command::new(env!("CARGO_BIN_EXE_virtbusd"))
        .arg("--session")
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--runtime-dir")
        .arg(dir.join("run"))
        .arg("--libvirt-rpc-socket")
        .arg(&r.sock)
        .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start virtbusd");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "a second daemon took the socket");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is in use"), "{err}");
    // the first one still answers there
    let list = r.ok("test+unix:///default", &["list", "--all"]);
    assert!(list.contains("test"), "{list}");
}

#[tokio::test]
async fn a_dead_daemons_socket_is_taken_over() {
    let mut r = Rpc::start().await;
    // SIGKILL: the socket file stays behind, with nobody listening
    r.daemon.kill();
    assert!(r.sock.exists());
    r.daemon.restart(&r.bus).await;
    wait_for(&r.sock, &r.daemon);
    let uri = r.ok("qemu:///system", &["uri"]);
    assert!(uri.starts_with("qemu:///system"), "{uri}");
}
