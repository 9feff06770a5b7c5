//! The installed bus policy in a real system-type dbus-daemon: root owns org.virtbus1 (and
//! org.libvirt, the libvirt facade's name), anyone may call them, nobody else may own them. The installed polkit actions are loaded by a real
//! polkitd on the same bus (in a mount namespace, over the system's actions dir), which
//! answers the daemon's checks and `pkaction`.

use std::{process::Command, time::Duration};

use crate::{fixture::*, support::NAME};

/// `busctl` as uid/gid 65534 (nobody), which exists on every Debian system.
fn busctl_as_nobody(address: &str, args: &[&str]) -> std::process::Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "busctl"])
        .arg(format!("--address={address}"))
        .args(args)
        .output()
        .expect("setpriv busctl")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_owns_the_name_and_anyone_may_call() {
    let inst = Installed::get();
    let dir = open_tempdir();
    let bus = PolkitBus::start(
        dir.path(),
        &inst.path("/usr/share/polkit-1/actions"),
        &inst.path("/usr/share/dbus-1/system.d/org.virtbus1.conf"),
    );
    // pkaction reads the installed actions through polkitd.
    let out = run(Command::new("pkaction")
        .args(["--verbose", "--action-id", "org.virtbus1.domain.start"])
        .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("implicit active:   auth_admin_keep"),
        "{text}"
    );

    let mut daemon =
        SystemDaemon::spawn_with(dir.path(), &bus.as_system_bus(), &["--libvirt-compat"]);
    let conn = connect(&bus.address).await;
    assert!(
        eventually(Duration::from_secs(20), async || has_owner(&conn, NAME)
            .await)
        .await,
        "virtbusd did not own {NAME}:\n{}",
        daemon.log_text()
    );
    assert!(
        daemon.log_text().contains(&format!(
            "configuration from {}",
            inst.path("/usr/share/virtbus/virtbusd.toml").display()
        )),
        "{}",
        daemon.log_text()
    );

    let out = busctl_as_nobody(
        &bus.address,
        &[
            "call",
            NAME,
            "/org/virtbus1",
            "org.virtbus1.Manager",
            "ListDomains",
            "a{sv}",
            "0",
        ],
    );
    assert!(
        out.status.success(),
        "nobody may call: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ao 0");
    let out = busctl_as_nobody(
        &bus.address,
        &[
            "get-property",
            NAME,
            "/org/virtbus1",
            "org.virtbus1.Manager",
            "Drivers",
        ],
    );
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        daemon.log_text()
    );
    // The daemon runs as root, so the LXC driver loads beside the test and QEMU drivers.
    let drivers = if std::path::Path::new("/usr/bin/qemu-system-x86_64").exists() {
        "as 3 \"test\" \"qemu\" \"lxc\""
    } else {
        "as 2 \"test\" \"lxc\""
    };
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), drivers);
    // A mutating call reaches the daemon too, and polkit (not the bus) refuses it.
    let out = busctl_as_nobody(
        &bus.address,
        &[
            "call",
            NAME,
            "/org/virtbus1",
            "org.virtbus1.Manager",
            "DefineDomain",
            "sa{sv}",
            &crate::support::test_domain("x"),
            "0",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("org.virtbus1.domain.write"), "{err}");

    // The facade's name too, and anyone may call it.
    assert!(
        eventually(Duration::from_secs(20), async || has_owner(
            &conn,
            "org.libvirt"
        )
        .await)
        .await,
        "virtbusd did not own org.libvirt:\n{}",
        daemon.log_text()
    );
    let out = busctl_as_nobody(
        &bus.address,
        &[
            "call",
            "org.libvirt",
            "/org/libvirt/Test",
            "org.libvirt.Connect",
            "ListDomains",
            "u",
            "0",
        ],
    );
    assert!(
        out.status.success(),
        "nobody may call org.libvirt: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ao 1 \"/org/libvirt/Test/domain/_6695eb01_f6a4_8304_79aa_97f2502e193f\""
    );

    // Nobody may take the names, even once they are free.
    daemon.proc.signal(libc::SIGTERM);
    let status = daemon
        .proc
        .wait_exit(Duration::from_secs(10))
        .expect("exits");
    assert!(status.success(), "{status}:\n{}", daemon.log_text());
    let out = busctl_as_nobody(
        &bus.address,
        &[
            "call",
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "RequestName",
            "su",
            NAME,
            "4",
        ],
    );
    assert!(!out.status.success(), "nobody owned {NAME}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not allowed to own") || err.contains("Access denied"),
        "{err}"
    );
    let out = busctl_as_nobody(
        &bus.address,
        &[
            "call",
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "RequestName",
            "su",
            "org.libvirt",
            "4",
        ],
    );
    assert!(!out.status.success(), "nobody owned org.libvirt");
}

/// Without the policy the system bus refuses the name to the daemon, which says so and
/// fails: the test above passes because of the installed file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_policy_the_daemon_cannot_own_the_name() {
    let dir = open_tempdir();
    let bus = SystemBus::start(dir.path(), &[]);
    let mut daemon = SystemDaemon::spawn(dir.path(), &bus);
    let status = daemon
        .proc
        .wait_exit(Duration::from_secs(20))
        .expect("exits");
    assert!(!status.success());
    let log = daemon.log_text();
    assert!(log.contains("cannot own the name org.virtbus1"), "{log}");
}

/// A broken policy file in an `<include>` stops dbus-daemon, so the test above cannot pass
/// by loading nothing.
#[test]
fn a_broken_include_stops_the_bus() {
    let dir = open_tempdir();
    let broken = dir.path().join("broken.conf");
    std::fs::write(&broken, "<busconfig><policy user=\"root\"><allow own=").expect("write");
    let result =
        std::panic::catch_unwind(|| SystemBus::start(dir.path(), std::slice::from_ref(&broken)));
    assert!(result.is_err(), "dbus-daemon accepted a broken include");
}
