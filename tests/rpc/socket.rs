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

#[tokio::test]
async fn the_read_only_socket_serves_reads_only() {
    let r = Rpc::start().await;
    let ro = {
        let mut p = r.sock.as_os_str().to_owned();
        p.push("-ro");
        std::path::PathBuf::from(p)
    };
    wait_for(&ro, &r.daemon);
    let uri = format!("test+unix:///default?socket={}", ro.display());
    let virsh = |args: &[&str]| {
        Command::new("virsh")
            .args(["-c", &uri])
            .args(args)
            .env("HOME", r.bus.dir.path())
            .env_remove("LIBVIRT_DEFAULT_URI")
            .output()
            .expect("virsh")
    };
    // reads, without asking for read-only access
    let out = virsh(&["list", "--all"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("test"));
    let out = virsh(&["dominfo", "test"]);
    assert!(out.status.success(), "{out:?}");
    // a change is refused, in libvirt's words, and nothing changes
    let out = virsh(&["suspend", "test"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("read only access prevents"), "{err}");
    assert_eq!(
        r.ok("test+unix:///default", &["domstate", "test"]).trim(),
        "running"
    );
    // as does a definition
    let xml = r.bus.dir.path().join("ro.xml");
    std::fs::write(&xml, crate::support::test_domain("ro")).expect("write");
    let out = virsh(&["define", &xml.to_string_lossy()]);
    assert!(!out.status.success());
    assert!(
        !r.ok("test+unix:///default", &["list", "--all"])
            .contains(" ro ")
    );
}

#[tokio::test]
async fn sockets_from_systemd_start_the_daemon() {
    let bus = Bus::start();
    let dir = bus.dir.path().to_owned();
    let sock = dir.join("act-sock");
    let ro = dir.join("act-sock-ro");
    let mut prefix: Vec<String> = vec!["systemd-socket-activate".into()];
    for p in [&sock, &ro] {
        prefix.push("-l".into());
        prefix.push(p.to_string_lossy().into_owned());
    }
    prefix.push("--fdname=libvirt-sock:libvirt-sock-ro".into());
    // systemd-socket-activate passes on only the environment it is told to
    for v in ["DBUS_SESSION_BUS_ADDRESS", "XDG_CONFIG_HOME", "RUST_LOG"] {
        prefix.push("-E".into());
        prefix.push(v.into());
    }
    let launch = crate::support::Launch {
        prefix,
        // the path the units name; both sockets come from "systemd" instead
        extra: vec![
            "--libvirt-rpc-socket".into(),
            sock.to_string_lossy().into_owned(),
        ],
        ..Default::default()
    };
    // The first client starts the daemon: it waits in the socket's queue meanwhile.
    let uri = format!("test+unix:///default?socket={}", ro.display());
    let home = dir.clone();
    let first = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ro.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        Command::new("virsh")
            .args(["-c", &uri, "list", "--all"])
            .env("HOME", &home)
            .env_remove("LIBVIRT_DEFAULT_URI")
            .output()
            .expect("virsh")
    });
    let daemon = crate::support::Daemon::start_launch(&bus, launch).await;
    let out = first.join().expect("first client");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("test"),
        "{out:?}\n{}",
        daemon.log_text()
    );
    assert!(daemon.log_text().contains("socket systemd passed"));
    // the read-write socket is served too, and is not read-only
    let uri = format!("test+unix:///default?socket={}", sock.display());
    let out = Command::new("virsh")
        .args(["-c", &uri, "suspend", "test"])
        .env("HOME", &dir)
        .env_remove("LIBVIRT_DEFAULT_URI")
        .output()
        .expect("virsh");
    assert!(out.status.success(), "{out:?}");
}
