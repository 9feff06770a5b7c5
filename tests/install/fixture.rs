//! One `meson setup` + `meson install` per test run, shared by the tests, and the helpers to
//! run the installed daemon.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

/// A `meson install --destdir` of the source tree.
pub struct Installed {
    pub dest: PathBuf,
}

/// The cargo binary under test, and its target dir and profile.
pub fn cargo_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_virtbusd"))
}

pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl Installed {
    /// Install once; later callers wait for the first.
    pub fn get() -> &'static Installed {
        static ONCE: OnceLock<Installed> = OnceLock::new();
        ONCE.get_or_init(Self::install)
    }

    fn install() -> Installed {
        let started = Instant::now();
        let bin = cargo_bin();
        let profile_dir = bin.parent().expect("profile dir");
        let target = profile_dir.parent().expect("target dir");
        // Reuse cargo's build: the same target dir and profile, and prefix=/usr so that no
        // path is compiled in differently (see meson.build). Nothing is rebuilt.
        let buildtype = if profile_dir.ends_with("release") {
            "release"
        } else {
            "debug"
        };
        let root = target.join("meson-install-test");
        let _ = std::fs::remove_dir_all(&root);
        let build = root.join("build");
        let dest = root.join("dest");
        run(Command::new("meson")
            .arg("setup")
            .arg(&build)
            .arg(env!("CARGO_MANIFEST_DIR"))
            .arg(format!("--buildtype={buildtype}"))
            .arg(format!("-Dcargo-target-dir={}", target.display())));
        run(Command::new("meson")
            .arg("install")
            .arg("-C")
            .arg(&build)
            .arg(format!("--destdir={}", dest.display())));
        eprintln!("meson setup + install took {:?}", started.elapsed());
        Installed { dest }
    }

    /// An installed file, by its absolute path on the target system.
    pub fn path(&self, abs: &str) -> PathBuf {
        self.dest.join(abs.trim_start_matches('/'))
    }

    pub fn read(&self, abs: &str) -> String {
        std::fs::read_to_string(self.path(abs))
            .unwrap_or_else(|e| panic!("{abs} is not installed: {e}"))
    }

    pub fn virtbusd(&self) -> PathBuf {
        self.path("/usr/libexec/virtbusd")
    }
}

/// A temporary directory that processes of other uids can enter.
pub fn open_tempdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("vbi")
        .tempdir_in("/tmp")
        .expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

/// A child process killed when dropped.
pub struct Proc(pub Option<Child>);

impl Proc {
    pub fn spawn(cmd: &mut Command) -> Proc {
        Proc(Some(
            cmd.spawn()
                .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}")),
        ))
    }

    pub fn pid(&self) -> u32 {
        self.0.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.pid() as i32, sig) };
    }

    /// Wait up to `limit` for the exit status.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        let child = self.0.as_mut()?;
        loop {
            if let Ok(Some(s)) = child.try_wait() {
                self.0 = None;
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Wait until `path` exists.
pub fn wait_for_path(path: &Path, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        assert!(Instant::now() < deadline, "{what} did not appear");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Poll `f` every 10 ms until it is true or `limit` passes.
pub async fn eventually(limit: Duration, mut f: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Whether `name` has an owner on the bus at `address`.
pub async fn has_owner(conn: &zbus::Connection, name: &str) -> bool {
    let Ok(dbus) = zbus::fdo::DBusProxy::new(conn).await else {
        return false;
    };
    let Ok(name) = name.try_into() else {
        return false;
    };
    dbus.name_has_owner(name).await.unwrap_or(false)
}

pub async fn connect(address: &str) -> zbus::Connection {
    crate::support::connect(address).await
}

/// Stdout of a successful command, as text.
pub fn stdout(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&run(cmd.stdin(Stdio::null())).stdout).into_owned()
}

/// A private bus configured as the system bus is: default deny, plus `includes`.
pub struct SystemBus {
    pub address: String,
    _proc: Proc,
}

impl SystemBus {
    /// Start one in `dir` (which must be open to other uids); panics if dbus-daemon refuses
    /// its configuration, as it does for a broken `<include>`.
    pub fn start(dir: &Path, includes: &[PathBuf]) -> SystemBus {
        let sock = dir.join("system_bus_socket");
        let conf = Self::config(dir, &sock, includes);
        let log = std::fs::File::create(dir.join("dbus-daemon.log")).expect("log");
        let mut proc = Proc::spawn(
            Command::new("dbus-daemon")
                .arg(format!("--config-file={}", conf.display()))
                .arg("--nofork")
                .stdout(Stdio::null())
                .stderr(log),
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sock.exists() {
            if let Some(status) = proc.wait_exit(Duration::ZERO) {
                panic!(
                    "dbus-daemon exited with {status}: {}",
                    std::fs::read_to_string(dir.join("dbus-daemon.log")).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "dbus-daemon did not start");
            std::thread::sleep(Duration::from_millis(5));
        }
        SystemBus {
            address: format!("unix:path={}", sock.display()),
            _proc: proc,
        }
    }

    /// Write the configuration file in `dir`; returns its path.
    fn config(dir: &Path, sock: &Path, includes: &[PathBuf]) -> PathBuf {
        let conf = dir.join("system.conf");
        std::fs::write(&conf, crate::support::system_bus_config(sock, includes))
            .expect("bus config");
        conf
    }
}

/// A system bus and a real polkitd in a mount namespace where `actions` (copied, so that the
/// polkitd user can read it) is /usr/share/polkit-1/actions and no rules exist; with
/// PolicyKit1's bus policy and `policy` included. Both processes die with the namespace's
/// process group.
pub struct PolkitBus {
    pub address: String,
    group: Proc,
}

impl PolkitBus {
    pub fn start(dir: &Path, actions: &Path, policy: &Path) -> PolkitBus {
        use std::os::unix::{fs::PermissionsExt, process::CommandExt};
        let copy = dir.join("actions");
        let empty = dir.join("empty");
        for d in [&copy, &empty] {
            std::fs::create_dir(d).expect("mkdir");
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        for e in std::fs::read_dir(actions).expect("actions") {
            let p = e.expect("entry").path();
            let to = copy.join(p.file_name().expect("name"));
            std::fs::copy(&p, &to).expect("copy");
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        }
        let sock = dir.join("system_bus_socket");
        let conf_dir = dir.join("conf");
        std::fs::create_dir(&conf_dir).expect("mkdir");
        // Write the bus configuration the way SystemBus does, without starting it.
        let bus = SystemBus::config(
            &conf_dir,
            &sock,
            &[
                "/usr/share/dbus-1/system.d/org.freedesktop.PolicyKit1.conf".into(),
                policy.to_owned(),
            ],
        );
        let script = r#"set -e
mount --bind "$1" /usr/share/polkit-1/actions
mount --bind "$2" /usr/share/polkit-1/rules.d
mount --bind "$2" /etc/polkit-1/rules.d
dbus-daemon --nofork --config-file="$3" &
while [ ! -S "$4" ]; do sleep 0.01; done
DBUS_SYSTEM_BUS_ADDRESS="unix:path=$4" exec /usr/lib/polkit-1/polkitd"#;
        let log = std::fs::File::create(dir.join("polkit.log")).expect("log");
        let group = Proc::spawn(
            Command::new("unshare")
                .args([
                    "--mount",
                    "--propagation",
                    "private",
                    "sh",
                    "-c",
                    script,
                    "sh",
                ])
                .arg(&copy)
                .arg(&empty)
                .arg(&bus)
                .arg(&sock)
                .process_group(0)
                .stdout(Stdio::null())
                .stderr(log),
        );
        wait_for_path(&sock, "the system bus socket");
        let address = format!("unix:path={}", sock.display());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = Command::new("busctl")
                .arg(format!("--address={address}"))
                .args(["status", "org.freedesktop.PolicyKit1"])
                .output()
                .expect("busctl");
            if out.status.success() {
                break;
            }
            assert!(Instant::now() < deadline, "polkitd did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        PolkitBus { address, group }
    }

    /// The address, as a [`SystemBus`] for [`SystemDaemon::spawn`].
    pub fn as_system_bus(&self) -> SystemBus {
        SystemBus {
            address: self.address.clone(),
            _proc: Proc(None),
        }
    }
}

impl Drop for PolkitBus {
    fn drop(&mut self) {
        // SAFETY: signalling the process group we created.
        unsafe { libc::kill(-(self.group.pid() as i32), libc::SIGKILL) };
    }
}

/// The installed daemon on a system bus, with its own state, runtime dirs and log.
pub struct SystemDaemon {
    pub proc: Proc,
    pub log: PathBuf,
}

impl SystemDaemon {
    pub fn spawn(dir: &Path, bus: &SystemBus) -> SystemDaemon {
        Self::spawn_with(dir, bus, &[])
    }

    /// With `extra` options after the usual ones.
    pub fn spawn_with(dir: &Path, bus: &SystemBus, extra: &[&str]) -> SystemDaemon {
        let inst = Installed::get();
        let log = dir.join("virtbusd.log");
        let proc = Proc::spawn(
            Command::new(inst.virtbusd())
                .arg("--system")
                .arg("--state-dir")
                .arg(dir.join("state"))
                .arg("--runtime-dir")
                .arg(dir.join("run"))
                .arg("--config")
                .arg(inst.path("/usr/share/virtbus/virtbusd.toml"))
                .args(extra)
                .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
                .env_remove("NOTIFY_SOCKET")
                .env_remove("JOURNAL_STREAM")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).expect("log")),
        );
        SystemDaemon { proc, log }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}
