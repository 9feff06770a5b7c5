//! The daemon: reads its options, loads the core, serves it on the bus until told to stop.

pub mod args;

use std::{path::PathBuf, sync::Arc};

use self::args::{Args, BusKind};
use crate::{
    bus::{
        self,
        authz::{Authorizer, SessionOwner},
    },
    core::{Core, store::Store},
    drivers::{
        Driver,
        qemu::{QemuConfig, QemuDriver},
        test::TestDriver,
    },
    model::DomainType,
};

pub const BUS_NAME: &str = "org.virtbus1";

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot open the state directory: {0}")]
    Store(#[from] crate::core::store::StoreError),
    #[error("cannot connect to the {bus} bus: {source}")]
    Connect {
        bus: &'static str,
        source: zbus::Error,
    },
    #[error("cannot serve on the bus: {0}")]
    Serve(zbus::Error),
    #[error("cannot own the name {BUS_NAME}: {0}")]
    Name(zbus::Error),
    #[error("the name {BUS_NAME} is already owned: is another virtbusd running?")]
    NameTaken,
    #[error("{0}")]
    Setup(String),
}

/// Where state lives for this bus.
pub struct Dirs {
    pub state: PathBuf,
    pub runtime: PathBuf,
    /// What can be rebuilt (probed emulator capabilities): /var/cache/virtbus, or
    /// `$XDG_CACHE_HOME/virtbus` on the session bus.
    pub cache: PathBuf,
}

impl Dirs {
    pub fn resolve(args: &Args, bus: BusKind) -> Result<Self, DaemonError> {
        let (state, runtime, cache) = match bus {
            BusKind::System => (
                PathBuf::from("/var/lib/virtbus"),
                PathBuf::from("/run/virtbus"),
                PathBuf::from("/var/cache/virtbus"),
            ),
            BusKind::Session => {
                let home = std::env::var_os("HOME").map(PathBuf::from);
                let cache = std::env::var_os("XDG_CACHE_HOME")
                    .map(PathBuf::from)
                    .or_else(|| home.as_ref().map(|h| h.join(".cache")))
                    .map(|c| c.join("virtbus"));
                let data = std::env::var_os("XDG_DATA_HOME")
                    .map(PathBuf::from)
                    .or_else(|| home.map(|h| h.join(".local/share")))
                    .ok_or_else(|| {
                        DaemonError::Setup("neither XDG_DATA_HOME nor HOME is set".into())
                    })?;
                // SAFETY: getuid cannot fail.
                let uid = unsafe { libc::getuid() };
                let run = std::env::var_os("XDG_RUNTIME_DIR")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from(format!("/tmp/virtbus-{uid}")));
                let cache = cache.unwrap_or_else(|| run.join("virtbus/cache"));
                (data.join("virtbus"), run.join("virtbus"), cache)
            }
        };
        Ok(Self {
            state: args.state_dir.clone().unwrap_or(state),
            runtime: args.runtime_dir.clone().unwrap_or(runtime),
            cache,
        })
    }
}

/// The bus to use when none is asked for: the system bus for root, as libvirt does.
pub fn default_bus() -> BusKind {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        BusKind::System
    } else {
        BusKind::Session
    }
}

/// The enabled drivers: the test driver always, QEMU when a `qemu-system-*` is installed.
async fn drivers(dirs: &Dirs, qemu: QemuConfig) -> Vec<(DomainType, Arc<dyn Driver>)> {
    let test: Arc<dyn Driver> = Arc::new(TestDriver::new());
    let mut v = vec![(DomainType::Test, test)];
    match QemuDriver::new(qemu, &dirs.cache, &dirs.runtime).await {
        Ok(Some(q)) => {
            let q: Arc<dyn Driver> = Arc::new(q);
            v.push((DomainType::Qemu, q.clone()));
            v.push((DomainType::Kvm, q));
        }
        Ok(None) => {}
        Err(e) => tracing::error!("QEMU driver disabled: {e}"),
    }
    v
}

/// Run until SIGTERM or SIGINT.
pub async fn run(args: Args) -> Result<(), DaemonError> {
    let bus = args.bus.unwrap_or_else(default_bus);
    let dirs = Dirs::resolve(&args, bus)?;
    let store = Store::open(&dirs.state)?;
    std::fs::create_dir_all(&dirs.runtime).map_err(|e| {
        DaemonError::Setup(format!("cannot create {}: {e}", dirs.runtime.display()))
    })?;
    let core = Core::new(drivers(&dirs, QemuConfig::default()).await, store);
    let loaded = core.load();
    tracing::info!("loaded {loaded} domain(s) from {}", dirs.state.display());
    let running = core.recover().await;
    if running > 0 {
        tracing::info!("{running} guest(s) still running from before");
    }

    let (conn, bus_name) = match bus {
        BusKind::System => (zbus::Connection::system().await, "system"),
        BusKind::Session => (zbus::Connection::session().await, "session"),
    };
    let conn = conn.map_err(|source| DaemonError::Connect {
        bus: bus_name,
        source,
    })?;
    let authz: Arc<dyn Authorizer> = Arc::new(SessionOwner);
    let _server = bus::serve(&conn, core.clone(), authz)
        .await
        .map_err(DaemonError::Serve)?;
    request_name(&conn).await?;
    tracing::info!("serving {BUS_NAME} on the {bus_name} bus");

    let autostart = core.clone();
    tokio::spawn(async move { autostart.autostart().await });

    wait_for_stop().await;
    tracing::info!("stopping; running guests keep running");
    Ok(())
}

async fn request_name(conn: &zbus::Connection) -> Result<(), DaemonError> {
    use zbus::fdo::{RequestNameFlags, RequestNameReply};
    let reply = zbus::fdo::DBusProxy::new(conn)
        .await
        .map_err(DaemonError::Name)?
        .request_name(
            BUS_NAME.try_into().map_err(DaemonError::Name)?,
            RequestNameFlags::DO_NOT_QUEUE,
        )
        .await
        .map_err(|e| DaemonError::Name(e.into()))?;
    match reply {
        RequestNameReply::PrimaryOwner | RequestNameReply::AlreadyOwner => Ok(()),
        _ => Err(DaemonError::NameTaken),
    }
}

async fn wait_for_stop() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot watch for SIGTERM/SIGINT; stopping now");
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
