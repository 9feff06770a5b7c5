//! Running the facade and the Python clients.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::support::{Bus, Daemon};

pub const LIBVIRT: &str = "org.libvirt";

/// The directory of the Python scripts.
fn scripts() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/compat"))
}

/// Wait until `name` has an owner on the bus at `address`.
pub async fn wait_for_name(address: &str, name: &str, what: &dyn Fn() -> String) {
    let conn = crate::support::connect(address).await;
    let dbus = zbus::fdo::DBusProxy::new(&conn).await.expect("dbus proxy");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if dbus
            .name_has_owner(name.try_into().expect("name"))
            .await
            .unwrap_or(false)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} has no owner:\n{}",
            what()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// virtbusd serving the facade on a fresh private bus, with state of its own.
pub struct Facade {
    pub bus: Bus,
    pub daemon: Daemon,
}

impl Facade {
    pub async fn start() -> Facade {
        let bus = Bus::start();
        let state = bus.dir.path().join("state");
        let runtime = bus.dir.path().join("run");
        let daemon = Daemon::start_with(&bus, &state, &runtime, &["--libvirt-compat"]).await;
        wait_for_name(&bus.address, LIBVIRT, &|| daemon.log_text()).await;
        Facade { bus, daemon }
    }

    /// Stop and start the daemon again over the same state.
    pub async fn restart(&mut self) {
        self.daemon.restart(&self.bus).await;
        let log = self.daemon.log_text();
        wait_for_name(&self.bus.address, LIBVIRT, &|| log.clone()).await;
    }
}

/// Debian's libvirt-dbus over libvirt's test driver, on a private bus of its own.
pub struct Reference {
    pub bus: Bus,
    child: Child,
}

impl Reference {
    /// `None` when libvirt-dbus is not installed (`apt-get install libvirt-dbus`).
    pub async fn start() -> Reference {
        let bus = Bus::start();
        let log = bus.dir.path().join("libvirt-dbus.log");
        let child = Command::new("libvirt-dbus")
            .arg("--session")
            .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
            .env("HOME", bus.dir.path())
            .env("XDG_CONFIG_HOME", bus.dir.path().join("config"))
            .env("XDG_RUNTIME_DIR", bus.dir.path())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("libvirt-dbus (package libvirt-dbus) must be installed");
        wait_for_name(&bus.address, LIBVIRT, &|| {
            std::fs::read_to_string(&log).unwrap_or_default()
        })
        .await;
        Reference { bus, child }
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run `tests/compat/<script>` with `env`; fail the test with its output if it fails.
pub fn python(script: &str, env: &[(&str, &str)]) {
    let out = Command::new("/usr/bin/python3")
        .arg(scripts().join(script))
        .envs(env.iter().copied())
        .env("PYTHONPATH", scripts())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("python3 with dbus and gi (python3-dbus, python3-gi) is needed");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{script} failed:\n{text}");
    assert!(text.contains("ok   "), "{script} ran no check:\n{text}");
}
