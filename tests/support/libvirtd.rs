//! Debian's real `libvirtd`, private to one test: started by hand as root in a mount and
//! network namespace of its own, so that it never sees or touches the host's libvirt.
//!
//! In the namespace, `/run`, `/etc/libvirt`, `/var/lib/libvirt`, `/var/cache/libvirt` and
//! `/var/log/libvirt` are bind mounts of directories under a temporary directory (`/var/run`
//! is a link to `/run` on Debian), and the network is an empty one, so whatever the network
//! and nwfilter drivers set up at start stays there. The configuration turns off what defining
//! domains does not need: no authentication on the sockets, no security driver, QEMU run as
//! root without dynamic ownership or namespaces, no virtlogd. The sockets live in the
//! temporary directory, outside the namespace, where unchanged `virsh` reaches them with
//! `-c 'qemu:///system?socket=PATH'` ([`Libvirtd::uri`]). The QEMU driver probes QEMU's
//! capabilities at start (a few seconds under TCG); [`Libvirtd::start`] returns once it has.
//! Dropping it stops libvirtd and removes the directory.
//!
//! [`Libvirtd::start_lxc`] serves `lxc:///system` instead ([`Libvirtd::lxc_uri`]): no
//! security driver, and on a host with cgroup v1 hierarchies beside a v2 one at
//! `/sys/fs/cgroup/unified` ("hybrid"), that v2 mount is hidden in the namespace: libvirt
//! 9.0's `libvirt_lxc` binds the v2 hierarchy into the container before it mounts the
//! tmpfs for v1's, and fails with "Unable to create directory /sys/fs/cgroup/unified".
//! Its containers' controllers outlive libvirtd: a test destroys what it started.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

pub struct Libvirtd {
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    /// The read-write socket.
    pub socket: PathBuf,
    /// `qemu` or `lxc`: the driver waited for at start.
    driver: &'static str,
}

/// The directories of the host that libvirtd sees replaced by its own, with the name of the
/// replacement under the temporary directory.
const MOUNTS: &[(&str, &str)] = &[
    ("run", "/run"),
    ("etc", "/etc/libvirt"),
    ("lib", "/var/lib/libvirt"),
    ("cache", "/var/cache/libvirt"),
    ("log", "/var/log/libvirt"),
];

impl Libvirtd {
    /// Whether this machine can run one: root, with libvirtd, virsh, unshare and QEMU.
    pub fn available() -> Result<(), String> {
        Self::available_for("/usr/bin/qemu-system-x86_64")
    }

    /// [`Libvirtd::available`] for the LXC driver: `libvirt_lxc` instead of QEMU.
    pub fn available_lxc() -> Result<(), String> {
        Self::available_for("/usr/lib/libvirt/libvirt_lxc")
    }

    fn available_for(hypervisor: &str) -> Result<(), String> {
        // SAFETY: getuid has no preconditions.
        if unsafe { libc::getuid() } != 0 {
            return Err("not root".into());
        }
        for bin in [
            "/usr/sbin/libvirtd",
            "/usr/bin/virsh",
            "/usr/bin/unshare",
            hypervisor,
        ] {
            if !Path::new(bin).exists() {
                return Err(format!(
                    "{bin} is missing (packages libvirt-daemon-driver-qemu, libvirt-clients, \
                     util-linux, qemu-system-x86, libvirt-daemon-driver-lxc)"
                ));
            }
        }
        for (_, host) in MOUNTS {
            if !Path::new(host).is_dir() {
                return Err(format!("{host} is missing (package libvirt-daemon-system)"));
            }
        }
        Ok(())
    }

    /// Start libvirtd and wait until its QEMU driver answers. libvirtd is sent SIGTERM when
    /// the thread that called this ends (so that it never outlives a test that dies), so call
    /// it on a thread that lives as long as the value: the test's own, not `spawn_blocking`.
    pub fn start() -> Libvirtd {
        Self::launch("qemu")
    }

    /// [`Libvirtd::start`], waiting for its LXC driver instead (see the module's notes).
    pub fn start_lxc() -> Libvirtd {
        Self::launch("lxc")
    }

    fn launch(driver: &'static str) -> Libvirtd {
        let ready = match driver {
            "lxc" => Self::available_lxc(),
            _ => Self::available(),
        };
        if let Err(e) = ready {
            panic!("cannot run a private libvirtd: {e}");
        }
        let dir = tempfile::Builder::new()
            .prefix("vblv")
            .tempdir_in("/tmp")
            .expect("tempdir");
        let d = dir.path();
        for (sub, _) in MOUNTS {
            std::fs::create_dir_all(d.join(sub)).expect("mkdir");
        }
        std::fs::create_dir_all(d.join("lib/images")).expect("mkdir");
        std::fs::create_dir_all(d.join("sock")).expect("mkdir");
        std::fs::write(
            d.join("etc/libvirtd.conf"),
            format!(
                "unix_sock_dir = \"{sock}\"\n\
                 unix_sock_rw_perms = \"0700\"\n\
                 unix_sock_ro_perms = \"0700\"\n\
                 auth_unix_rw = \"none\"\n\
                 auth_unix_ro = \"none\"\n\
                 log_outputs = \"3:file:{log}\"\n",
                sock = d.join("sock").display(),
                log = d.join("libvirtd.log").display(),
            ),
        )
        .expect("libvirtd.conf");
        std::fs::write(
            d.join("etc/qemu.conf"),
            "user = \"root\"\n\
             group = \"root\"\n\
             security_driver = \"none\"\n\
             dynamic_ownership = 0\n\
             remember_owner = 0\n\
             namespaces = [ ]\n\
             stdio_handler = \"file\"\n",
        )
        .expect("qemu.conf");
        std::fs::write(d.join("etc/lxc.conf"), "security_driver = \"none\"\n").expect("lxc.conf");
        let mut script = String::new();
        if driver == "lxc" && hybrid_cgroups() {
            script += "umount /sys/fs/cgroup/unified && ";
        }
        for (sub, host) in MOUNTS {
            script += &format!("mount --bind '{}' '{host}' && ", d.join(sub).display());
        }
        script += "exec /usr/sbin/libvirtd -f /etc/libvirt/libvirtd.conf";
        let stderr = std::fs::File::create(d.join("stderr")).expect("stderr file");
        let mut cmd = Command::new("/usr/bin/unshare");
        cmd.args(["--mount", "--propagation", "private", "--net", "--"])
            .args(["/bin/sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        // libvirtd goes with the test process should it die without dropping this.
        // SAFETY: prctl is async-signal-safe.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = cmd.spawn().expect("unshare");
        let mut lv = Libvirtd {
            socket: d.join("sock/libvirt-sock"),
            dir,
            child: Some(child),
            driver,
        };
        lv.wait_ready();
        lv
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.socket.exists() {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("libvirtd exited with {status}:\n{}", self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "libvirtd made no socket:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        if self.driver == "lxc" {
            let out = self.virsh_lxc(&["version"]);
            assert!(
                out.status.success(),
                "libvirtd's LXC driver does not answer: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                self.log_text()
            );
            return;
        }
        // The QEMU driver answers once it has probed QEMU.
        let out = self.virsh(&["domcapabilities", "--virttype", "qemu"]);
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("<machine>"),
            "libvirtd's QEMU driver does not answer: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log_text()
        );
    }

    /// The URI for clients: `qemu:///system` at this daemon's socket.
    pub fn uri(&self) -> String {
        format!("qemu:///system?socket={}", self.socket.display())
    }

    /// The URI for clients of its LXC driver: `lxc:///system` at this daemon's socket.
    pub fn lxc_uri(&self) -> String {
        format!("lxc:///system?socket={}", self.socket.display())
    }

    /// Run `virsh -c LXC-URI args…`.
    pub fn virsh_lxc(&self, args: &[&str]) -> Output {
        Command::new("/usr/bin/virsh")
            .arg("-q")
            .arg("-c")
            .arg(self.lxc_uri())
            .args(args)
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .output()
            .expect("virsh")
    }

    /// Run `virsh -c URI args…`.
    pub fn virsh(&self, args: &[&str]) -> Output {
        Command::new("/usr/bin/virsh")
            .arg("-q")
            .arg("-c")
            .arg(self.uri())
            .args(args)
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .output()
            .expect("virsh")
    }

    /// libvirtd's log (errors and warnings) and its standard error.
    pub fn log_text(&self) -> String {
        let d = self.dir.path();
        format!(
            "{}{}",
            std::fs::read_to_string(d.join("libvirtd.log")).unwrap_or_default(),
            std::fs::read_to_string(d.join("stderr")).unwrap_or_default()
        )
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }
}

impl Drop for Libvirtd {
    /// SIGTERM (libvirtd stops its QEMU probes and exits), SIGKILL after 10 s.
    fn drop(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        // SAFETY: signalling our own child.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while c.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Whether `/sys/fs/cgroup/unified` is a cgroup v2 mount beside v1 hierarchies.
fn hybrid_cgroups() -> bool {
    std::fs::read_to_string("/proc/self/mountinfo").is_ok_and(|m| {
        m.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(4) == Some(&"/sys/fs/cgroup/unified") && l.contains(" - cgroup2 ")
        })
    })
}
