//! GNOME Boxes' scenario: an unprivileged user with a session bus and an `XDG_RUNTIME_DIR` of
//! their own runs the session instance with `--libvirt-rpc` and no socket option; unchanged
//! virsh and python3-libvirt open `qemu:///session` with no `?socket=`, so libvirt.so finds
//! `$XDG_RUNTIME_DIR/libvirt/libvirt-sock` itself. The user is `nobody`, the guest a tiny
//! QEMU one run by the daemon as that user.

use std::{
    os::unix::fs::{PermissionsExt, chown},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use super::guest;
use crate::support::{Daemon, Launch, session_bus_config};

const UID: u32 = 65534;
const URI: &str = "qemu:///session";

fn mkdir_owned(p: &Path, mode: u32) {
    std::fs::create_dir_all(p).expect("mkdir");
    chown(p, Some(UID), Some(UID)).expect("chown");
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// `setpriv` to the unprivileged user, no supplementary groups.
fn as_user(program: &str) -> Command {
    let mut c = Command::new("setpriv");
    c.args([
        &format!("--reuid={UID}"),
        &format!("--regid={UID}"),
        "--clear-groups",
        program,
    ]);
    c
}

/// The user's session bus, run by the user.
struct UserBus {
    child: Child,
    address: String,
}

impl UserBus {
    fn start(run: &Path, dir: &Path) -> UserBus {
        let sock = run.join("bus");
        let conf = dir.join("bus.conf");
        // the test harness (root) watches the daemon's name too
        let policy = "\n    <allow user=\"*\"/>";
        std::fs::write(&conf, session_bus_config(&sock, policy)).expect("bus config");
        std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let child = as_user("dbus-daemon")
            .arg(format!("--config-file={}", conf.display()))
            .arg("--nofork")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sock.exists() {
            assert!(
                Instant::now() < deadline,
                "the user's dbus-daemon did not start"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        UserBus {
            child,
            address: format!("unix:path={}", sock.display()),
        }
    }
}

impl Drop for UserBus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Session {
    dir: tempfile::TempDir,
    run: PathBuf,
    home: PathBuf,
}

impl Session {
    /// Run `program args` as the user, in the user's environment (no socket given anywhere).
    fn run(&self, program: &str, args: &[&str]) -> Output {
        as_user("env")
            .arg("-i")
            .arg(format!("HOME={}", self.home.display()))
            .arg(format!("XDG_RUNTIME_DIR={}", self.run.display()))
            .arg("PATH=/usr/bin:/bin")
            .arg(program)
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("run as the user")
    }

    fn virsh(&self, args: &[&str]) -> String {
        let mut a = vec!["-c", URI];
        a.extend_from_slice(args);
        let o = self.run("/usr/bin/virsh", &a);
        assert!(
            o.status.success(),
            "virsh {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

#[tokio::test]
async fn boxes_session_finds_the_socket_itself() {
    let dir = tempfile::Builder::new()
        .prefix("vbs")
        .tempdir_in("/tmp")
        .expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let run = dir.path().join("run");
    let home = dir.path().join("home");
    let state = dir.path().join("state");
    mkdir_owned(&run, 0o700);
    mkdir_owned(&home, 0o755);
    mkdir_owned(&state, 0o755);
    let bus = UserBus::start(&run, dir.path());
    let launch = Launch {
        prefix: vec![
            "setpriv".into(),
            format!("--reuid={UID}"),
            format!("--regid={UID}"),
            "--clear-groups".into(),
        ],
        extra: vec!["--libvirt-rpc".into()],
        env: vec![
            ("XDG_RUNTIME_DIR".into(), run.display().to_string()),
            ("HOME".into(), home.display().to_string()),
        ],
        ..Default::default()
    };
    let daemon = Daemon::launch(
        &bus.address,
        dir.path(),
        &state.join("virtbus"),
        &run.join("virtbus"),
        launch,
    )
    .await;
    let sock = run.join("libvirt/libvirt-sock");
    super::wait_for(&sock, &daemon);
    let s = Session { dir, run, home };

    assert_eq!(s.virsh(&["uri"]).trim(), URI);
    // the guest's files, readable by the user
    let g = guest::dir();
    let xml = s.dir.path().join("boxy.xml");
    std::fs::write(
        &xml,
        format!(
            "<domain type='qemu'><name>boxy</name><memory unit='MiB'>128</memory>\
             <vcpu>1</vcpu><os><type arch='x86_64'>hvm</type><kernel>{}</kernel>\
             <initrd>{}</initrd><cmdline>console=ttyS0 quiet</cmdline></os><devices>\
             <serial type='pty'/><memballoon model='virtio'/></devices></domain>",
            g.join("vmlinux").display(),
            g.join("initramfs.cpio.gz").display()
        ),
    )
    .expect("xml");
    std::fs::set_permissions(&xml, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let xml_arg = xml.to_string_lossy().into_owned();
    s.virsh(&["define", &xml_arg]);
    s.virsh(&["start", "boxy"]);
    let info = s.virsh(&["dominfo", "boxy"]);
    assert!(info.contains("running"), "{info}");
    let list = s.virsh(&["list"]);
    assert!(list.contains("boxy"), "{list}");

    // Boxes' start-up calls, by python3-libvirt as the user
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rpc/boxes_session.py");
    let o = s.run("/usr/bin/python3", &[&script.to_string_lossy()]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{out}{}\n{}",
        String::from_utf8_lossy(&o.stderr),
        daemon.log_text()
    );
    for want in [
        "uri qemu:///session",
        "caps True",
        "domcaps True",
        "pool gnome-boxes 1",
        "domain boxy 1 True True",
        "stats ['boxy']",
        "memstats True",
    ] {
        assert!(out.lines().any(|l| l == want), "no '{want}' in:\n{out}");
    }
    // the QEMU process is the user's
    let ps = Command::new("pgrep")
        .args(["-u", &UID.to_string(), "-f", "guest=boxy"])
        .output()
        .expect("pgrep");
    assert!(ps.status.success(), "no QEMU of the user's for boxy");

    s.virsh(&["destroy", "boxy"]);
    s.virsh(&["undefine", "boxy"]);
    let list = s.virsh(&["list", "--all"]);
    assert!(!list.contains("boxy"), "{list}");
    drop(daemon);
    drop(bus);
}
