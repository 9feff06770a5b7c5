//! The systemd units pass `systemd-analyze verify` and say what the daemon relies on.

use std::process::Command;

use crate::fixture::*;

/// Verify a unit in a mount namespace where the installed libexec dir is /usr/libexec, since
/// verify checks that ExecStart= exists. Any warning fails the test, not only errors.
fn verify(unit: &str, user: bool) {
    let inst = Installed::get();
    let xdg = tempfile::tempdir().expect("runtime dir");
    let script = r#"mount --bind "$1" /usr/libexec && shift && exec systemd-analyze "$@""#;
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        script,
        "sh",
    ])
    .arg(inst.path("/usr/libexec"))
    .env("XDG_RUNTIME_DIR", xdg.path());
    if user {
        cmd.arg("--user");
    }
    cmd.arg("verify").arg(inst.path(unit));
    let out = run(&mut cmd);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.trim().is_empty(), "{unit}: {stderr}");
}

fn settings(unit: &str) -> Vec<String> {
    Installed::get()
        .read(unit)
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains('='))
        .map(String::from)
        .collect()
}

#[test]
fn system_unit_verifies_and_keeps_guests_across_restarts() {
    verify("/usr/lib/systemd/system/virtbusd.service", false);
    let s = settings("/usr/lib/systemd/system/virtbusd.service");
    for want in [
        "Type=dbus",
        "BusName=org.virtbus1",
        "ExecStart=/usr/libexec/virtbusd --system",
        "KillMode=process",
        "StateDirectory=virtbus",
        "RuntimeDirectory=virtbus",
        "RuntimeDirectoryPreserve=yes",
        "ProtectSystem=full",
        "ProtectHome=read-only",
        "PrivateTmp=yes",
    ] {
        assert!(s.iter().any(|l| l == want), "missing {want}: {s:#?}");
    }
    // None of these may come back: each would break QEMU or LXC (see the unit's comments).
    for banned in [
        "PrivateDevices=",
        "DevicePolicy=",
        "DeviceAllow=",
        "ProtectClock=",
        "NoNewPrivileges=",
        "MemoryDenyWriteExecute=",
        "RestrictNamespaces=",
        "SystemCallFilter=",
    ] {
        assert!(!s.iter().any(|l| l.starts_with(banned)), "{banned} set");
    }
}

#[test]
fn user_unit_verifies() {
    verify("/usr/lib/systemd/user/virtbusd.service", true);
    let s = settings("/usr/lib/systemd/user/virtbusd.service");
    for want in [
        "Type=dbus",
        "BusName=org.virtbus1",
        "ExecStart=/usr/libexec/virtbusd --session",
        "KillMode=process",
    ] {
        assert!(s.iter().any(|l| l == want), "missing {want}: {s:#?}");
    }
}
