//! The installed service under a real systemd: this machine's own OS booted in a container
//! (`systemd-nspawn`, an overlay of / with the `meson install` tree on top), where the first
//! `busctl call` on the system bus activates `virtbusd.service`, `systemctl` and `journalctl`
//! show it like any other service, a QEMU guest it starts is registered with machined in a
//! scope of its own, and `systemctl restart virtbusd` leaves that guest running and
//! controllable. The scenario itself is `boot/inside.sh`, run there as a unit; this test
//! checks what it recorded.

use std::{path::Path, process::Command};

use crate::fixture::*;

/// One recorded step of inside.sh: its exit status and output.
struct Step {
    rc: i32,
    out: String,
}

fn step(dir: &Path, name: &str) -> Step {
    let read = |ext: &str| {
        std::fs::read_to_string(dir.join(format!("{name}.{ext}")))
            .unwrap_or_else(|e| panic!("step {name} left no .{ext}: {e}"))
    };
    Step {
        rc: read("rc").trim().parse().expect("exit status"),
        out: read("out"),
    }
}

/// The step's output, after checking that it exited with `rc`.
fn expect(dir: &Path, name: &str, rc: i32, context: &str) -> String {
    let s = step(dir, name);
    assert_eq!(
        s.rc, rc,
        "step {name}: exit status {} (want {rc}):\n{}\n--- boot journal ---\n{context}",
        s.rc, s.out
    );
    s.out
}

#[test]
fn under_systemd_the_bus_activates_the_service_which_keeps_guests_across_restarts() {
    let inst = Installed::get();
    let out = open_tempdir();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/install/boot/boot.sh");
    let run = Command::new("timeout")
        .args(["300", "unshare", "--mount", "--propagation", "private"])
        .arg("bash")
        .arg(&script)
        .arg(&inst.dest)
        .arg(out.path())
        .output()
        .expect("run boot.sh");
    let dir = out.path();
    let console =
        String::from_utf8_lossy(&run.stdout).into_owned() + &String::from_utf8_lossy(&run.stderr);
    assert!(
        dir.join("done").exists(),
        "the scenario did not finish ({}):\n{console}",
        run.status
    );
    let journal = std::fs::read_to_string(dir.join("boot-journal.out")).unwrap_or_default();
    let j = journal.as_str();

    // Nothing runs until the first call, which activates the unit through systemd.
    assert_eq!(step(dir, "before").out.trim(), "inactive");
    assert_eq!(expect(dir, "activate", 0, j).trim(), "ao 0");
    // "Activating via systemd: ..." or, while systemd is not yet on the bus it activated,
    // "Activating systemd to hand-off: ...".
    assert!(
        j.lines().any(|l| l.contains("dbus-daemon")
            && l.contains("Activating")
            && l.contains("service name='org.virtbus1' unit='virtbusd.service'")),
        "not activated through systemd:\n{j}"
    );
    let show = expect(dir, "show", 0, j);
    for want in [
        "ActiveState=active",
        "SubState=running",
        "Type=dbus",
        "StatusText=Serving org.virtbus1 on the system bus",
        "NRestarts=0",
    ] {
        assert!(show.contains(want), "systemctl show lacks {want}:\n{show}");
    }
    let status = expect(dir, "status", 0, j);
    assert!(
        status.contains("Active: active (running)") && status.contains("/usr/libexec/virtbusd"),
        "{status}"
    );

    // A guest, registered with machined in a scope of its own.
    expect(dir, "define", 0, j);
    expect(dir, "start", 0, j);
    assert_eq!(expect(dir, "state-before", 0, j).trim(), "s \"running\"");
    let qemu = expect(dir, "pid-before", 0, j);
    let machines = expect(dir, "machines", 0, j);
    assert!(
        machines.starts_with("qemu-boot-test vm virtbus"),
        "machinectl list: {machines:?}\n{j}"
    );

    // Restart: the same QEMU process, reattached, still registered, still controllable.
    expect(dir, "restart", 0, j);
    assert_eq!(expect(dir, "state-after", 0, j).trim(), "s \"running\"");
    assert_eq!(expect(dir, "pid-after", 0, j), qemu, "QEMU was restarted");
    assert!(
        j.contains("domain 'boot-test' still runs (id 1); reattached"),
        "{j}"
    );
    assert!(expect(dir, "machines-after", 0, j).starts_with("qemu-boot-test vm virtbus"));
    assert_eq!(
        expect(dir, "machine-unit", 0, j).trim(),
        r"machine-qemu\x2dboot\x2dtest.scope"
    );
    expect(dir, "destroy", 0, j);
    assert_eq!(
        expect(dir, "state-destroyed", 0, j).trim(),
        "s \"shut-off\""
    );
    assert_eq!(expect(dir, "machines-destroyed", 0, j).trim(), "");
    expect(dir, "undefine", 0, j);
    expect(dir, "stop", 0, j);

    // Its log is in the journal, with priorities; sysusers and tmpfiles did their part.
    let log = expect(dir, "journal", 0, j);
    for want in [
        "serving org.virtbus1 on the system bus",
        "registered 'boot-test' with systemd-machined as qemu-boot-test",
        "stopping; running guests keep running",
    ] {
        assert!(log.contains(want), "journal lacks {want:?}:\n{log}");
    }
    assert!(expect(dir, "journal-priority", 0, j).contains("serving org.virtbus1"));
    assert!(expect(dir, "group", 0, j).starts_with("virtbus-users:"));
    assert_eq!(
        expect(dir, "dirs", 0, j),
        "/var/lib/virtbus 700 root\n/run/virtbus 755 root\n"
    );
}
