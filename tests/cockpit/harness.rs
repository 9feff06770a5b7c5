//! Cockpit served hermetically: a private bus configured as the system bus (with the project's
//! bus policy), `virtbusd --system --libvirt-compat` on it with dirs of its own, and Debian's
//! cockpit-ws on a loopback port with a local session (`--local-session=cockpit-bridge`: no
//! TLS, no PAM, no login; the bridge runs as the test's user, root here) whose bridge has the
//! private bus as its system bus. The browser is Debian's Chromium under playwright-core
//! (`page.mjs`). Every process is killed on every way out, and every wait is bounded.

use std::{
    net::{TcpListener, TcpStream},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use crate::support::{Bus, Daemon, Launch, system_bus_config};

pub const LIBVIRT: &str = "org.libvirt";
pub const QEMU: &str = "/org/libvirt/QEMU";
pub const CONNECT: &str = "org.libvirt.Connect";
pub const DOMAIN: &str = "org.libvirt.Domain";

/// The folder of this test's files (`page.mjs`, `package.json`, `node_modules`).
pub fn here() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cockpit"))
}

/// A fresh `<target>/cockpit-artifacts/<name>` for a test's screenshots and logs.
pub fn artifacts(name: &str) -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target dir")
        .to_owned();
    let dir = target.join("cockpit-artifacts").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    eprintln!("artifacts (screenshots, logs): {}", dir.display());
    dir
}

/// A child in a process group of its own, killed with its group when dropped.
pub struct Proc {
    child: Child,
}

impl Proc {
    pub fn spawn(name: &'static str, cmd: &mut Command) -> Proc {
        let child = cmd
            .process_group(0)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc { child }
    }

    /// Its exit status, if it exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Wait for it to exit within `limit`; past that, SIGTERM to its group (so that
    /// playwright closes the browser it started), then SIGKILL. `None` when it timed out.
    pub fn wait_for(&mut self, limit: Duration) -> Option<ExitStatus> {
        let t = Instant::now();
        while t.elapsed() < limit {
            if let Some(s) = self.exited() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.signal(libc::SIGTERM);
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5) {
            if self.exited().is_some() {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
        None
    }

    fn signal(&self, sig: i32) {
        // SAFETY: signalling the process group of a child this test started.
        unsafe { libc::kill(-(self.child.id() as i32), sig) };
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `path` opened for appending (stdout and stderr share it), created empty if need be.
fn log_file(path: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Kill every process whose command line names `dir` (dirs of this test only: its bus, the
/// daemon's runtime dir that QEMU's sockets are in, the browser's profile).
fn kill_all_under(dir: &Path) {
    let dir = dir.display().to_string();
    let me = std::process::id() as i32;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(&dir) {
            // SAFETY: signalling a process this test started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// The whole stack. Dropped in field order: cockpit-ws (with its bridge), the daemon (with
/// its guests), the buses, then anything left that names the test's dir, then the dir.
pub struct Cockpit {
    _ws: Proc,
    pub daemon: Daemon,
    session_bus: Bus,
    _system_bus: Proc,
    /// `unix:path=…` of the private system bus.
    pub address: String,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    pub dir: tempfile::TempDir,
    ws_log: PathBuf,
}

impl Drop for Cockpit {
    fn drop(&mut self) {
        kill_all_under(self.dir.path());
    }
}

/// Wait until `f` holds, for at most `limit`; `what` says what did not happen.
pub async fn until(what: &dyn Fn() -> String, limit: Duration, mut f: impl AsyncFnMut() -> bool) {
    let t = Instant::now();
    while !f().await {
        assert!(t.elapsed() < limit, "not within {limit:?}: {}", what());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A network namespace of the test's own, for a daemon whose networks must not touch the
/// host's interfaces or firewall; whatever still runs in it is killed when it is dropped.
pub struct Netns(pub String);

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let name = format!("vbc-{tag}-{}", std::process::id());
        // a namespace left by an earlier run that died (there is none as a rule)
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(Stdio::null())
            .status();
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "ip netns add {name}");
        Netns(name)
    }

    /// `ip -n <ns> <args>`'s output.
    pub fn ip(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["-n", &self.0])
            .args(args)
            .output()
            .expect("ip");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Ok(out) = Command::new("ip").args(["netns", "pids", &self.0]).output() {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse::<i32>() {
                    // SAFETY: a process in the test's own namespace.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

impl Cockpit {
    pub async fn start() -> Cockpit {
        Self::start_with(None).await
    }

    /// The stack with the daemon inside `netns` (cockpit-ws and the browser stay outside:
    /// they reach it through the bus's socket).
    pub async fn start_with(netns: Option<&Netns>) -> Cockpit {
        let dir = tempfile::Builder::new()
            .prefix("vbc")
            .tempdir_in("/tmp")
            .expect("tempdir");
        let d = dir.path();

        // The system bus, configured as the real one with the project's policy.
        let sock = d.join("system_bus_socket");
        let conf = d.join("system.conf");
        let policy = Path::new(env!("CARGO_MANIFEST_DIR")).join("dbus/org.virtbus1.conf");
        std::fs::write(&conf, system_bus_config(&sock, &[policy])).expect("bus config");
        let system_bus = Proc::spawn(
            "dbus-daemon",
            Command::new("dbus-daemon")
                .arg(format!("--config-file={}", conf.display()))
                .arg("--nofork")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(d.join("dbus-daemon.log")).expect("log")),
        );
        // The bridge's session bus: a private one too, never the host's.
        let session_bus = Bus::start();

        // cockpit-ws, started before the daemon: nothing of it needs the daemon until a page
        // asks.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let home = d.join("home");
        let config = d.join("config");
        for p in [&home, &config] {
            std::fs::create_dir(p).expect("mkdir");
        }
        let ws_log = d.join("cockpit-ws.log");
        let address = format!("unix:path={}", sock.display());
        let mut ws = Proc::spawn(
            "cockpit-ws",
            Command::new("/usr/lib/cockpit/cockpit-ws")
                .arg("--local-session=cockpit-bridge")
                .args(["--address", "127.0.0.1", "--port", &port.to_string()])
                .env_clear()
                // the system's tools (the page runs python3 with gi, virt-host-validate, …),
                // not a developer's (pyenv, …)
                .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                .env("LANG", "C.UTF-8")
                .env("HOME", &home)
                .env("USER", "root")
                .env("XDG_RUNTIME_DIR", &home)
                // no cockpit.conf of the host's
                .env("XDG_CONFIG_DIRS", &config)
                .env("DBUS_SYSTEM_BUS_ADDRESS", &address)
                .env("DBUS_SESSION_BUS_ADDRESS", &session_bus.address)
                .stdout(log_file(&ws_log))
                .stderr(log_file(&ws_log)),
        );

        // The daemon, on the system bus, with the libvirt-dbus facade.
        let wait_bus = Instant::now();
        while !sock.exists() {
            assert!(
                wait_bus.elapsed() < Duration::from_secs(10),
                "the system bus did not start: {}",
                std::fs::read_to_string(d.join("dbus-daemon.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let launch = Launch {
            system: true,
            extra: vec!["--libvirt-compat".into()],
            env: vec![("VIRTBUS_QEMU_ACCEL".into(), "tcg".into())],
            prefix: netns
                .map(|n| vec!["ip".into(), "netns".into(), "exec".into(), n.0.clone()])
                .unwrap_or_default(),
        };
        let daemon = Daemon::launch(&address, d, &d.join("state"), &d.join("run"), launch).await;
        let conn = crate::support::connect(&address).await;
        let dbus = zbus::fdo::DBusProxy::new(&conn).await.expect("dbus proxy");
        until(
            &|| format!("{LIBVIRT} owned:\n{}", daemon.log_text()),
            Duration::from_secs(20),
            async || {
                dbus.name_has_owner(LIBVIRT.try_into().expect("name"))
                    .await
                    .unwrap_or(false)
            },
        )
        .await;

        // cockpit-ws answers.
        let t = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(s) = ws.exited() {
                panic!(
                    "cockpit-ws exited with {s}: {}",
                    std::fs::read_to_string(&ws_log).unwrap_or_default()
                );
            }
            assert!(
                t.elapsed() < Duration::from_secs(15),
                "cockpit-ws did not listen on port {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Cockpit {
            _ws: ws,
            daemon,
            session_bus,
            _system_bus: system_bus,
            address,
            url: format!("http://127.0.0.1:{port}"),
            dir,
            ws_log,
        }
    }

    /// Call `org.libvirt`'s `method` on `path`.
    pub async fn call<B, R>(&self, path: &str, iface: &str, method: &str, body: &B) -> R
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
        R: for<'d> zbus::zvariant::DynamicDeserialize<'d>,
    {
        let conn = crate::support::connect(&self.address).await;
        conn.call_method(Some(LIBVIRT), path, Some(iface), method, body)
            .await
            .unwrap_or_else(|e| panic!("{iface}.{method}: {e}\n{}", self.daemon.log_text()))
            .body()
            .deserialize()
            .unwrap_or_else(|e| panic!("{iface}.{method}'s reply: {e}"))
    }

    /// Run `page.mjs <mode>` in Debian's Chromium against this Cockpit, bounded by `limit`;
    /// panics with its output (and cockpit-ws's log) unless every check of it held.
    pub fn browse(&self, mode: &str, artifacts: &Path, env: &[(&str, &str)], limit: Duration) {
        let node_modules = here().join("node_modules/playwright-core");
        assert!(
            node_modules.exists(),
            "{} is missing: run `npm ci --prefix tests/cockpit` (scripts/test.sh does)",
            node_modules.display()
        );
        assert!(
            Path::new("/usr/bin/chromium").exists(),
            "/usr/bin/chromium is missing (apt-get install chromium; scripts/test.sh does)"
        );
        let out = artifacts.join(format!("{mode}.log"));
        let mut node = Proc::spawn(
            "node",
            Command::new("node")
                .arg(here().join("page.mjs"))
                .arg(mode)
                .envs(env.iter().copied())
                .env("COCKPIT_URL", &self.url)
                .env("ARTIFACTS", artifacts)
                .env("PROFILE", self.dir.path().join("chromium-profile"))
                .env("DEADLINE_SECS", limit.as_secs().to_string())
                .env("HOME", self.dir.path().join("home"))
                .env("DBUS_SESSION_BUS_ADDRESS", &self.session_bus.address)
                .stdout(log_file(&out))
                .stderr(log_file(&out)),
        );
        // page.mjs stops itself at `limit`; this one is for a node that hangs anyway.
        let status = node.wait_for(limit + Duration::from_secs(20));
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        eprintln!("{text}");
        let ws = std::fs::read_to_string(&self.ws_log).unwrap_or_default();
        std::fs::write(artifacts.join("cockpit-ws.log"), &ws).ok();
        std::fs::write(artifacts.join("virtbusd.log"), self.daemon.log_text()).ok();
        match status {
            Some(s) if s.success() => {}
            Some(s) => panic!(
                "the page test failed ({s}); screenshots in {}:\n{text}",
                artifacts.display()
            ),
            None => panic!(
                "the browser did not finish within {limit:?}; screenshots in {}:\n{text}",
                artifacts.display()
            ),
        }
    }
}
