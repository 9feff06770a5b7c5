//! libvirt's RPC protocol, driven by Debian's unchanged `virsh` (libvirt.so's remote driver)
//! against the real daemon's socket, and by a raw client sending what no real client would.

#[path = "../support/mod.rs"]
mod support;

#[path = "../qemu/guest.rs"]
mod guest;

mod agent;
mod backup;
mod badinput;
mod block;
mod checkpoint;
mod console;
mod cpucmp;
mod domcaps;
mod events;
mod host;
mod iftune;
mod livecfg;
mod lxc;
mod lxcmore;
mod migrate;
mod misc;
mod more;
mod moreevents;
mod netevents;
mod objects;
mod osinfo;
mod polkit;
#[path = "../lxc/rootfs.rs"]
mod rootfs;
mod save;
mod session;
mod socket;
mod streams;
mod tune;
mod vcpuplug;
mod virsh;

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use support::{Bus, Daemon};

/// libvirt's own test driver (in libvirt.so, `virsh -c test:///default`), the oracle of the
/// test flavor: status, stdout, stderr.
pub fn libvirt_test(args: &[&str]) -> (bool, String, String) {
    let out = Command::new("virsh")
        .args(["-c", "test:///default"])
        .args(args)
        .env_remove("LIBVIRT_DEFAULT_URI")
        .output()
        .expect("virsh (package libvirt-clients)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A daemon on a private bus answering libvirt's RPC protocol on a socket of its own.
pub struct Rpc {
    pub daemon: Daemon,
    pub sock: PathBuf,
    pub bus: Bus,
}

impl Rpc {
    pub async fn start() -> Rpc {
        let bus = Bus::start();
        let sock = bus.dir.path().join("libvirt-sock");
        let sock_arg = sock.to_string_lossy().into_owned();
        let daemon = Daemon::start_with(
            &bus,
            &bus.dir.path().join("state"),
            &bus.dir.path().join("run"),
            &["--libvirt-rpc-socket", &sock_arg],
        )
        .await;
        wait_for(&sock, &daemon);
        Rpc { daemon, sock, bus }
    }

    /// [`Rpc::start`] with the daemon inside network namespace `netns`, so that the networks
    /// it starts live there.
    pub async fn start_in(netns: &str) -> Rpc {
        let bus = Bus::start();
        let sock = bus.dir.path().join("libvirt-sock");
        let launch = support::Launch {
            prefix: vec!["ip".into(), "netns".into(), "exec".into(), netns.into()],
            extra: vec![
                "--libvirt-rpc-socket".into(),
                sock.to_string_lossy().into_owned(),
            ],
            ..Default::default()
        };
        let daemon = Daemon::start_launch(&bus, launch).await;
        wait_for(&sock, &daemon);
        Rpc { daemon, sock, bus }
    }

    /// The URI of this daemon's `driver` (`qemu:///system`…) for unchanged clients.
    pub fn uri(&self, driver: &str) -> String {
        format!("{driver}?socket={}", self.sock.display())
    }

    /// `virsh -c <driver>:///<path>?socket=…` with `args`: status, stdout, stderr.
    pub fn virsh(&self, uri: &str, args: &[&str]) -> (bool, String, String) {
        let uri = format!("{uri}?socket={}", self.sock.display());
        let out = Command::new("virsh")
            .arg("-c")
            .arg(&uri)
            .args(args)
            // no libvirt configuration or default URI of the user's
            .env("HOME", self.bus.dir.path())
            .env_remove("LIBVIRT_DEFAULT_URI")
            .output()
            .expect("virsh (package libvirt-clients)");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `virsh` that must succeed; its output.
    /// Retry virsh `args` on `qemu:///system` until it succeeds, for 90 s (the guest agent
    /// answers a few seconds after boot): its stdout.
    pub fn ok_eventually(&self, args: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let (ok, out, err) = self.virsh("qemu:///system", args);
            if ok {
                return out;
            }
            assert!(
                Instant::now() < deadline,
                "virsh {args:?}: {err}\n{}",
                self.daemon.log_text()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Assert virsh `args` gives on `test+unix:///default` here what it gives on libvirt's
    /// own test driver: status, stdout and stderr.
    pub fn assert_as_libvirt_test(&self, args: &[&str]) {
        assert_eq!(
            self.virsh("test+unix:///default", args),
            libvirt_test(args),
            "virsh {args:?}: ours (left) differs from libvirt's test driver\ndaemon log:\n{}",
            self.daemon.log_text()
        );
    }

    pub fn ok(&self, uri: &str, args: &[&str]) -> String {
        let (ok, out, err) = self.virsh(uri, args);
        assert!(
            ok,
            "virsh {args:?} on {uri} failed: {err}\ndaemon log:\n{}",
            self.daemon.log_text()
        );
        out
    }

    /// Run an unchanged client (virt-install, python3-libvirt…) that must succeed, without
    /// the user's libvirt configuration; its stdout, or a panic with its stderr and the
    /// daemon's log.
    pub fn client(&self, cmd: &mut Command) -> String {
        let out = cmd
            .env("HOME", self.bus.dir.path())
            .env_remove("LIBVIRT_DEFAULT_URI")
            .output()
            .expect("run client");
        assert!(
            out.status.success(),
            "{cmd:?} failed: {}\n{}\ndaemon log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout),
            self.daemon.log_text()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `virsh` that must fail; its error output.
    pub fn fails(&self, uri: &str, args: &[&str]) -> String {
        let (ok, out, err) = self.virsh(uri, args);
        assert!(!ok, "virsh {args:?} on {uri} succeeded: {out}");
        err
    }
}

fn wait_for(sock: &Path, daemon: &Daemon) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::os::unix::net::UnixStream::connect(sock).is_err() {
        assert!(
            Instant::now() < deadline,
            "no RPC socket at {}:\n{}",
            sock.display(),
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
