//! Fixtures shared by the integration tests: a private bus, the real daemon on it, clients.
#![allow(dead_code)]

pub mod flood;
pub mod libvirtd;
pub mod polkit;
pub mod proxies;
pub mod pty;

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
    pin::Pin,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use zbus::{
    MatchRule, Message, MessageStream, OwnedObjectPath, OwnedVariant, export::futures_core::Stream,
    message::Type,
};

/// The configuration of a private bus of the system type: the default policy of a system bus
/// (nothing owned or called unless a policy allows it; the bus driver callable), then
/// `includes` (bus policies such as the project's own), as the real system bus loads them.
pub fn system_bus_config(sock: &Path, includes: &[PathBuf]) -> String {
    let includes: String = includes
        .iter()
        .map(|p| format!("  <include>{}</include>\n", p.display()))
        .collect();
    format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={sock}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus" send_member="UpdateActivationEnvironment"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Monitoring"/>
  </policy>
{includes}</busconfig>
"#,
        sock = sock.display()
    )
}

/// A private `dbus-daemon` for one test, with a configuration that lets everyone talk and
/// own names (authorization is polkit's business, tested elsewhere).
pub struct Bus {
    pub dir: tempfile::TempDir,
    child: Child,
    pub address: String,
}

/// A private session bus's configuration listening on `sock`: everyone may own and call
/// anything; `policy` adds rules to the default context.
pub fn session_bus_config(sock: &Path, policy: &str) -> String {
    format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>{policy}
  </policy>
  <!-- as Debian's session bus: many calls of one client may await their replies -->
  <limit name="max_replies_per_connection">50000</limit>
</busconfig>
"#,
        sock.display()
    )
}

impl Bus {
    pub fn start() -> Bus {
        let dir = tempfile::Builder::new()
            .prefix("vb")
            .tempdir_in("/tmp")
            .expect("tempdir");
        let sock = dir.path().join("bus");
        let conf = dir.path().join("bus.conf");
        std::fs::write(&conf, session_bus_config(&sock, "")).expect("bus config");
        let child = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", conf.display()))
            .arg("--nofork")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon (package dbus-daemon) must be installed");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sock.exists() {
            assert!(Instant::now() < deadline, "dbus-daemon did not start");
            std::thread::sleep(Duration::from_millis(5));
        }
        Bus {
            address: format!("unix:path={}", sock.display()),
            dir,
            child,
        }
    }

    pub async fn connect(&self) -> zbus::Connection {
        connect(&self.address).await
    }

    /// The dbus-daemon's process.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// A connection to the bus at `address`. A dbus-daemon creates its socket file just before
/// it listens on it, so a refused connection is tried again for a while.
pub async fn connect(address: &str) -> zbus::Connection {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match zbus::connection::Builder::address(address).build().await {
            Ok(c) => return c,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => panic!("cannot connect to the private bus {address}: {e}"),
        }
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The real `virtbusd` on a [`Bus`].
pub struct Daemon {
    child: Option<Child>,
    pub state: PathBuf,
    pub runtime: PathBuf,
    address: String,
    pub log: PathBuf,
    launch: Launch,
    /// From exec to the bus name being owned, at the last start.
    pub started_in: Duration,
    spawned_at: Instant,
}

/// How to run the daemon: on which bus, and under which command prefix (e.g. `nsenter`).
#[derive(Clone, Default)]
pub struct Launch {
    pub system: bool,
    pub prefix: Vec<String>,
    pub extra: Vec<String>,
    /// More environment for the daemon (e.g. test hooks).
    pub env: Vec<(String, String)>,
}

pub const NAME: &str = "org.virtbus1";
pub const MANAGER: &str = "/org/virtbus1";

impl Daemon {
    /// Start a daemon with its own state and runtime dirs under the bus's dir.
    pub async fn start(bus: &Bus) -> Daemon {
        let state = bus.dir.path().join("state");
        let runtime = bus.dir.path().join("run");
        Self::start_with(bus, &state, &runtime, &[]).await
    }

    pub async fn start_with(bus: &Bus, state: &Path, runtime: &Path, extra: &[&str]) -> Daemon {
        let launch = Launch {
            extra: extra.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        Self::launch(&bus.address, bus.dir.path(), state, runtime, launch).await
    }

    /// Start a daemon as `launch` says, with state and runtime dirs under the bus's dir.
    pub async fn start_launch(bus: &Bus, launch: Launch) -> Daemon {
        let state = bus.dir.path().join("state");
        let runtime = bus.dir.path().join("run");
        Self::launch(&bus.address, bus.dir.path(), &state, &runtime, launch).await
    }

    /// Start a daemon as `launch` says, on the bus at `address`, logging under `dir`.
    pub async fn launch(
        address: &str,
        dir: &Path,
        state: &Path,
        runtime: &Path,
        launch: Launch,
    ) -> Daemon {
        let log = dir.join(format!(
            "daemon-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        let mut d = Daemon {
            child: None,
            state: state.to_owned(),
            runtime: runtime.to_owned(),
            address: address.to_owned(),
            log,
            launch,
            started_in: Duration::ZERO,
            spawned_at: Instant::now(),
        };
        d.spawn();
        d.wait_for_name().await;
        d
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(&self.log).expect("log file");
        self.spawned_at = Instant::now();
        let bin = env!("CARGO_BIN_EXE_virtbusd");
        let mut cmd = match self.launch.prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let (flag, var) = if self.launch.system {
            ("--system", "DBUS_SYSTEM_BUS_ADDRESS")
        } else {
            ("--session", "DBUS_SESSION_BUS_ADDRESS")
        };
        let child = cmd
            .arg(flag)
            .arg("--state-dir")
            .arg(&self.state)
            .arg("--runtime-dir")
            .arg(&self.runtime)
            .args(&self.launch.extra)
            .env(var, &self.address)
            // No configuration file of the user's: the built-in defaults.
            .env("XDG_CONFIG_HOME", self.state.with_extension("config"))
            .env("RUST_LOG", "debug")
            // after the defaults, so that a launch may change them (a bench's log level)
            .envs(self.launch.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start virtbusd");
        self.child = Some(child);
    }

    async fn wait_for_name(&mut self) {
        let conn = connect(&self.address).await;
        let dbus = zbus::fdo::DBusProxy::new(&conn).await.expect("dbus proxy");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if dbus
                .name_has_owner(NAME.try_into().expect("name"))
                .await
                .unwrap_or(false)
            {
                self.started_in = self.spawned_at.elapsed();
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("virtbusd exited with {status}:\n{}", self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "virtbusd did not own its name:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// SIGKILL: a crash, as far as the daemon can tell.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        self.signal_stop();
        self.wait_exit()
    }

    /// SIGTERM, without waiting.
    pub fn signal_stop(&mut self) {
        let c = self.child.as_ref().expect("running");
        // SAFETY: sending a signal to our own child.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
    }

    /// Whether the daemon process still runs.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// Wait for the daemon process to exit.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        c.wait().expect("wait")
    }

    /// Start again with the same dirs (after `kill` or `stop`).
    pub async fn restart(&mut self, _bus: &Bus) {
        self.kill();
        self.spawn();
        self.wait_for_name().await;
    }
}

impl Drop for Daemon {
    /// Guests outlive the daemon by design; a test that ends (or fails) with guests running
    /// must not leave them behind, so every process whose command line names this daemon's
    /// runtime dir (QEMU's monitor socket lives there) is killed too.
    fn drop(&mut self) {
        self.kill();
        let dir = self.runtime.display().to_string();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&dir) {
                // SAFETY: signalling a process this test's daemon started.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

/// A signal from the daemon, decoded.
#[derive(Debug, Clone)]
pub enum Sig {
    DomainEvent {
        domain: String,
        event: String,
        detail: String,
    },
    PropertiesChanged {
        path: String,
        iface: String,
        changed: HashMap<String, OwnedVariant>,
    },
    InterfacesAdded {
        path: String,
        ifaces: Vec<String>,
    },
    InterfacesRemoved {
        path: String,
        ifaces: Vec<String>,
    },
    Other {
        path: String,
        member: String,
    },
}

/// Every signal the daemon sends, in order.
pub struct Signals {
    stream: MessageStream,
}

impl Signals {
    pub async fn new(conn: &zbus::Connection) -> Signals {
        let rule = MatchRule::builder()
            .msg_type(Type::Signal)
            .sender(NAME)
            .build()
            .expect("rule");
        let stream = MessageStream::for_match_rule(rule, conn, None)
            .await
            .expect("signal stream");
        Signals { stream }
    }

    async fn next(&mut self, wait: Duration) -> Option<Message> {
        let next = std::future::poll_fn(|cx| Pin::new(&mut self.stream).poll_next(cx));
        tokio::time::timeout(wait, next).await.ok().flatten()?.ok()
    }

    /// Collect signals until none arrives for `quiet`.
    pub async fn drain(&mut self, quiet: Duration) -> Vec<Sig> {
        let mut out = Vec::new();
        while let Some(m) = self.next(quiet).await {
            out.push(decode(&m));
        }
        out
    }

    /// Collect the signals that arrived so far (the daemon sends an operation's signals before
    /// its reply, so after a call they are all here).
    pub async fn take(&mut self) -> Vec<Sig> {
        self.drain(Duration::from_millis(100)).await
    }
}

fn decode(m: &Message) -> Sig {
    let h = m.header();
    let path = h.path().map(|p| p.to_string()).unwrap_or_default();
    let member = h.member().map(|m| m.to_string()).unwrap_or_default();
    let body = m.body();
    match member.as_str() {
        "DomainEvent" => {
            let (domain, event, detail): (OwnedObjectPath, String, String) =
                body.deserialize().expect("DomainEvent body");
            Sig::DomainEvent {
                domain: domain.to_string(),
                event,
                detail,
            }
        }
        "PropertiesChanged" => {
            let (iface, changed, _): (String, HashMap<String, OwnedVariant>, Vec<String>) =
                body.deserialize().expect("PropertiesChanged body");
            Sig::PropertiesChanged {
                path,
                iface,
                changed,
            }
        }
        "InterfacesAdded" => {
            let (p, ifaces): (
                OwnedObjectPath,
                HashMap<String, HashMap<String, OwnedVariant>>,
            ) = body.deserialize().expect("InterfacesAdded body");
            let mut names: Vec<String> = ifaces.into_keys().collect();
            names.sort();
            Sig::InterfacesAdded {
                path: p.to_string(),
                ifaces: names,
            }
        }
        "InterfacesRemoved" => {
            let (p, ifaces): (OwnedObjectPath, Vec<String>) =
                body.deserialize().expect("InterfacesRemoved body");
            Sig::InterfacesRemoved {
                path: p.to_string(),
                ifaces,
            }
        }
        _ => Sig::Other { path, member },
    }
}

/// The lifecycle events among `sigs`, as (event, detail).
pub fn lifecycle(sigs: &[Sig]) -> Vec<(String, String)> {
    sigs.iter()
        .filter_map(|s| match s {
            Sig::DomainEvent { event, detail, .. } => Some((event.clone(), detail.clone())),
            _ => None,
        })
        .collect()
}

/// The values a property took, in order, across PropertiesChanged signals of `path`.
pub fn changes_of(sigs: &[Sig], path: &str, prop: &str) -> Vec<OwnedVariant> {
    sigs.iter()
        .filter_map(|s| match s {
            Sig::PropertiesChanged {
                path: p, changed, ..
            } if p == path => changed.get(prop).and_then(|v| v.try_clone().ok()),
            _ => None,
        })
        .collect()
}

/// A minimal test-driver domain.
pub fn test_domain(name: &str) -> String {
    format!(
        "<domain type='test'><name>{name}</name><memory unit='MiB'>512</memory>\
         <vcpu>2</vcpu><os><type>hvm</type></os></domain>"
    )
}

/// A test-driver domain whose every operation takes `ms` milliseconds.
pub fn slow_domain(name: &str, ms: u64) -> String {
    format!(
        "<domain type='test'><name>{name}</name><memory unit='MiB'>512</memory>\
         <vcpu>1</vcpu><os><type>hvm</type></os><metadata>\
         <delay xmlns='https://virtbus.org/xmlns/test/1' ms='{ms}'/></metadata></domain>"
    )
}

/// An empty options dictionary.
pub fn no_opts() -> HashMap<&'static str, zbus::Variant<'static>> {
    HashMap::new()
}

/// Options from pairs.
pub fn opts<const N: usize>(
    pairs: [(&'static str, zbus::Variant<'static>); N],
) -> HashMap<&'static str, zbus::Variant<'static>> {
    pairs.into_iter().collect()
}

/// The D-Bus error name of a failed call.
pub fn error_name<T: std::fmt::Debug>(r: &zbus::Result<T>) -> String {
    match r {
        Err(zbus::Error::MethodError(name, _, _)) => name.to_string(),
        Err(zbus::Error::FDO(e)) => format!("{e:?}"),
        other => format!("not a method error: {other:?}"),
    }
}

/// The message of a failed call.
pub fn error_message<T: std::fmt::Debug>(r: &zbus::Result<T>) -> String {
    match r {
        Err(zbus::Error::MethodError(_, Some(msg), _)) => msg.clone(),
        Err(zbus::Error::FDO(e)) => e.to_string(),
        other => format!("not a method error: {other:?}"),
    }
}

/// Every file under `dir` (a daemon's state directory) with its content, to show that a
/// call or a stop left the state as it was.
pub fn state_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let content = std::fs::read(&p).unwrap_or_default();
                out.insert(p.display().to_string(), content);
            }
        }
    }
    out
}
