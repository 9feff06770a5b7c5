//! The daemon: reads its options and configuration, loads the core, serves it on the bus
//! until told to stop (or, for a session instance, until idle), and tells systemd how it goes.

pub mod args;
pub mod idle;
pub mod logging;
pub mod notify;

use std::{path::PathBuf, sync::Arc, time::Duration};

use self::{
    args::{Args, BusKind},
    notify::Notifier,
};
use crate::{
    compat::{self, ConnectSpec, flags::Flavor},
    config::{Config, DriverKind},
    core::{Core, store::Store},
    drivers::{
        Driver,
        qemu::{QemuConfig, QemuDriver},
        test::TestDriver,
    },
    model::DomainType,
    native, rpc,
    server::{
        activity::Activity,
        authz::{Authorizer, SessionOwner},
        polkit::Polkit,
    },
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
    #[error("cannot own the name {0}: {1}")]
    Name(&'static str, zbus::Error),
    #[error("the name {0} is already owned: {1}")]
    NameTaken(&'static str, &'static str),
    #[error("{0}")]
    Setup(String),
    #[error("the bus connection closed")]
    Disconnected,
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
    /// Command-line options first, then the configuration, then the bus's defaults.
    pub fn resolve(args: &Args, config: &Config, bus: BusKind) -> Result<Self, DaemonError> {
        let pick = |arg: &Option<PathBuf>, conf: &Option<PathBuf>| arg.clone().or(conf.clone());
        let state = pick(&args.state_dir, &config.state_dir);
        let runtime = pick(&args.runtime_dir, &config.runtime_dir);
        match bus {
            BusKind::System => Ok(Self {
                state: state.unwrap_or_else(|| PathBuf::from("/var/lib/virtbus")),
                runtime: runtime.unwrap_or_else(|| PathBuf::from("/run/virtbus")),
                cache: PathBuf::from("/var/cache/virtbus"),
            }),
            BusKind::Session => {
                let env = |k: &str| std::env::var_os(k).map(PathBuf::from);
                let home = env("HOME");
                let state = match state {
                    Some(s) => s,
                    None => env("XDG_DATA_HOME")
                        .or_else(|| home.as_ref().map(|h| h.join(".local/share")))
                        .map(|d| d.join("virtbus"))
                        .ok_or_else(|| {
                            DaemonError::Setup("neither XDG_DATA_HOME nor HOME is set".into())
                        })?,
                };
                let runtime = runtime.unwrap_or_else(|| {
                    // SAFETY: getuid cannot fail.
                    let uid = unsafe { libc::getuid() };
                    env("XDG_RUNTIME_DIR")
                        .unwrap_or_else(|| PathBuf::from(format!("/tmp/virtbus-{uid}")))
                        .join("virtbus")
                });
                let cache = env("XDG_CACHE_HOME")
                    .or_else(|| home.map(|h| h.join(".cache")))
                    .map(|c| c.join("virtbus"))
                    .unwrap_or_else(|| runtime.join("cache"));
                Ok(Self {
                    state,
                    runtime,
                    cache,
                })
            }
        }
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

/// The drivers `enabled` names; QEMU only when a `qemu-system-*` is installed, so that a host
/// without QEMU still runs the daemon.
async fn drivers(
    enabled: &[DriverKind],
    dirs: &Dirs,
    qemu: &QemuConfig,
) -> Vec<(DomainType, Arc<dyn Driver>)> {
    let mut out: Vec<(DomainType, Arc<dyn Driver>)> = Vec::new();
    let has = |out: &Vec<(DomainType, Arc<dyn Driver>)>, t| out.iter().any(|(d, _)| *d == t);
    for kind in enabled {
        match kind {
            DriverKind::Test if !has(&out, DomainType::Test) => {
                out.push((DomainType::Test, Arc::new(TestDriver::new())));
            }
            DriverKind::Qemu if !has(&out, DomainType::Qemu) => {
                match QemuDriver::new(qemu.clone(), &dirs.state, &dirs.cache, &dirs.runtime).await {
                    Ok(Some(q)) => {
                        let q: Arc<dyn Driver> = Arc::new(q);
                        out.push((DomainType::Qemu, q.clone()));
                        out.push((DomainType::Kvm, q));
                    }
                    Ok(None) => tracing::info!("QEMU driver not loaded: no qemu-system-* found"),
                    Err(e) => tracing::error!("QEMU driver disabled: {e}"),
                }
            }
            DriverKind::Lxc if !has(&out, DomainType::Lxc) => {
                // the controller is this very binary, run with a hidden option
                let program = std::env::current_exe().unwrap_or_else(|_| "virtbusd".into());
                if let Some(l) = crate::drivers::lxc::LxcDriver::new(&dirs.runtime, program) {
                    out.push((DomainType::Lxc, Arc::new(l)));
                }
            }
            DriverKind::Test | DriverKind::Qemu | DriverKind::Lxc => {}
        }
    }
    out
}

/// Why [`run`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Signal,
    Idle,
}

/// Run until SIGTERM or SIGINT, or until idle for a session instance. Returning leaves every
/// guest running: drivers' guests are not children that die with the daemon.
pub async fn run(args: Args, config: Config, notifier: Notifier) -> Result<Exit, DaemonError> {
    let mut stop = StopSignals::watch()?;
    let bus = args.bus.unwrap_or_else(default_bus);
    let dirs = Dirs::resolve(&args, &config, bus)?;
    let store = Store::open(&dirs.state)?;
    std::fs::create_dir_all(&dirs.runtime).map_err(|e| {
        DaemonError::Setup(format!("cannot create {}: {e}", dirs.runtime.display()))
    })?;
    tracing::debug!(
        "state in {}, runtime files in {}, cache in {}, drivers {:?}",
        dirs.state.display(),
        dirs.runtime.display(),
        dirs.cache.display(),
        config.drivers
    );
    let core = Core::new(drivers(&config.drivers, &dirs, &config.qemu).await, store);
    let mut storage = config.storage.settings(&dirs.state, bus == BusKind::System);
    storage.run_dir = Some(dirs.runtime.join("storage"));
    core.set_storage(crate::storage::Storage::new(storage));
    let loaded = core.load();
    tracing::info!("loaded {loaded} domain(s) from {}", dirs.state.display());
    let running = core.recover().await;
    let canonicalized = core.canonicalize_stored().await;
    if canonicalized > 0 {
        tracing::info!("{canonicalized} stored definition(s) completed with their defaults");
    }
    if running > 0 {
        tracing::info!("{running} guest(s) still running from before");
    }
    let pools = core.storage().load().await;
    tracing::info!("loaded {pools} storage pool(s)");
    crate::network::attach(&core, &dirs.state, &dirs.runtime, bus == BusKind::System).await;

    let conn = connect(bus).await?;
    let bus_name = bus.name();
    // On the session bus every caller is the bus's owner (the bus admits nobody else), so
    // there is nobody to ask, as with libvirt's session mode.
    let authz: Arc<dyn Authorizer> = match bus {
        BusKind::Session => Arc::new(SessionOwner),
        BusKind::System => Polkit::new(&conn, !args.no_authz_cache)
            .await
            .map_err(DaemonError::Serve)?,
    };
    let mut server = native::serve(&conn, core.clone(), authz.clone())
        .await
        .map_err(DaemonError::Serve)?;
    if bus == BusKind::System {
        crate::machined::spawn(&conn, core.clone());
    }
    request_name(&conn, BUS_NAME, "is another virtbusd running?").await?;
    tracing::info!("serving {BUS_NAME} on the {bus_name} bus");
    let want_compat = args.libvirt_compat || config.libvirt_compat;
    // started by one of the .socket units: answer on the sockets they hold
    let want_rpc = args.libvirt_rpc || config.libvirt_rpc || rpc::activation::passed();
    // libvirt's test:///default, one for both libvirt front ends
    let test_default = if want_compat || want_rpc {
        Some(
            compat::fixture::test_default()
                .await
                .map_err(|e| DaemonError::Setup(format!("cannot set up test:///default: {e}")))?,
        )
    } else {
        None
    };
    let mut rpc = match (&test_default, want_rpc) {
        (Some(test), true) => {
            let path = rpc_socket(&args, &config, bus)?;
            let r = serve_rpc(&path, bus, &core, test, authz.clone()).await?;
            tracing::info!("answering libvirt's RPC protocol on {}", path.display());
            Some(r)
        }
        _ => None,
    };
    let mut facade = if let (Some(test), true) = (&test_default, want_compat) {
        let f = serve_compat(bus, &core, test, authz, server.activity()).await?;
        tracing::info!("serving {} on the {bus_name} bus", compat::BUS_NAME);
        Some(f)
    } else {
        None
    };
    let also = if facade.is_some() {
        format!(" and {}", compat::BUS_NAME)
    } else {
        String::new()
    };
    notifier.ready(&format!(
        "Serving {BUS_NAME}{also} on the {bus_name} bus, {loaded} domain(s) defined"
    ));

    let autostart = core.clone();
    tokio::spawn(async move {
        // networks first: autostarted guests may be plugged into them
        if let Ok(nets) = autostart.networks() {
            nets.autostart().await;
        }
        autostart.autostart().await
    });

    let timeout = args.timeout.unwrap_or(config.idle_timeout);
    let activity = server.activity();
    // org.libvirt has no activation file (it would take libvirt-dbus's place), and nothing
    // activates the RPC socket, so an instance that serves either stays: after an exit,
    // nothing would start it again for its callers.
    let may_idle = facade.is_none() && rpc.is_none();
    let idle = async {
        match bus {
            BusKind::Session if timeout > 0 && may_idle => {
                idle::wait(&core, &activity, Duration::from_secs(timeout)).await
            }
            _ => std::future::pending().await,
        }
    };
    let facade_closed = async {
        match &mut facade {
            Some((_, f)) => f.closed().await,
            None => std::future::pending().await,
        }
    };
    let rpc_closed = async {
        match &mut rpc {
            Some(r) => r.closed().await,
            None => std::future::pending().await,
        }
    };
    let exit = tokio::select! {
        () = stop.recv() => Exit::Signal,
        () = rpc_closed => {
            notifier.stopping("The libvirt RPC listener stopped");
            return Err(DaemonError::Setup("the libvirt RPC listener stopped".into()));
        }
        () = idle => Exit::Idle,
        () = server.closed() => {
            notifier.stopping("Lost the bus connection");
            return Err(DaemonError::Disconnected);
        }
        () = facade_closed => {
            notifier.stopping("Lost the bus connection of org.libvirt");
            return Err(DaemonError::Disconnected);
        }
    };
    match exit {
        Exit::Signal => {
            notifier.stopping("Stopping; running guests keep running");
            tracing::info!("stopping; running guests keep running");
        }
        Exit::Idle => {
            notifier.stopping(&format!("Idle for {timeout} s; exiting"));
            tracing::info!("idle for {timeout} s with nothing running; exiting");
            if let Some((fconn, _)) = &facade
                && let Err(e) = fconn.release_name(compat::BUS_NAME).await
            {
                tracing::warn!("cannot release {}: {e}", compat::BUS_NAME);
            }
            hand_over(&conn, &activity).await;
        }
    }
    finish_critical(&core).await;
    Ok(exit)
}

/// How long a stopping daemon waits for operations that must not be cut in half (a
/// quiesced snapshot's thaw comes after at most a few agent timeouts).
pub const CRITICAL_WAIT: Duration = Duration::from_secs(60);

/// Let every critical section (a freeze that must be thawed, a disk switch that must be
/// recorded) end before the runtime, and every task with it, goes.
async fn finish_critical(core: &Core) {
    let running = core.critical().running();
    if running.is_empty() {
        core.critical().close_and_wait(Duration::ZERO).await;
        return;
    }
    tracing::info!(
        "waiting up to {CRITICAL_WAIT:?} for operations that must finish: {}",
        running.join("; ")
    );
    let left = core.critical().close_and_wait(CRITICAL_WAIT).await;
    if left.is_empty() {
        tracing::info!("operations finished; exiting");
    } else {
        tracing::error!(
            "exiting with operations unfinished after {CRITICAL_WAIT:?}: {}",
            left.join("; ")
        );
    }
}

/// Give up the bus name, so that the next call activates a new instance, then finish the
/// calls that reached this one before it did.
async fn hand_over(conn: &zbus::Connection, activity: &Activity) {
    if let Err(e) = conn.release_name(BUS_NAME).await {
        tracing::warn!("cannot release {BUS_NAME}: {e}");
    }
    let quiet = Duration::from_millis(200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        if activity.idle_for().is_some_and(|d| d >= quiet) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A connection of our own to `bus`.
async fn connect(bus: BusKind) -> Result<zbus::Connection, DaemonError> {
    let conn = match bus {
        BusKind::System => zbus::Connection::system().await,
        BusKind::Session => zbus::Connection::session().await,
    };
    conn.map_err(|source| DaemonError::Connect {
        bus: bus.name(),
        source,
    })
}

/// The libvirt facade on a connection of its own (its signals come from `org.libvirt`'s
/// owner only): `/org/libvirt/QEMU` over the qemu and kvm domains of `core`,
/// `/org/libvirt/Test` over a core of its own in `test:///default`'s state, and
/// `/org/libvirt/LXC` over the lxc domains of `core` when the LXC driver runs.
async fn serve_compat(
    bus: BusKind,
    core: &Core,
    test: &Core,
    authz: Arc<dyn Authorizer>,
    activity: Arc<Activity>,
) -> Result<(zbus::Connection, compat::Server), DaemonError> {
    let conn = connect(bus).await?;
    let test = test.clone();
    let connects = vec![
        ConnectSpec {
            path: "/org/libvirt/QEMU",
            flavor: Flavor::Qemu,
            core: core.clone(),
            types: vec![DomainType::Qemu, DomainType::Kvm],
        },
        ConnectSpec {
            path: "/org/libvirt/Test",
            flavor: Flavor::Test,
            core: test,
            types: vec![DomainType::Test],
        },
    ];
    let mut connects = connects;
    // libvirt-dbus serves lxc:/// there when libvirt's LXC driver runs: here when ours does
    if core.domain_types().contains(&DomainType::Lxc) {
        connects.push(ConnectSpec {
            path: "/org/libvirt/LXC",
            flavor: Flavor::Lxc,
            core: core.clone(),
            types: vec![DomainType::Lxc],
        });
    }
    let server = compat::serve(&conn, connects, authz, activity)
        .await
        .map_err(DaemonError::Serve)?;
    request_name(&conn, compat::BUS_NAME, "is libvirt-dbus running?").await?;
    Ok((conn, server))
}

/// Where libvirt's RPC protocol is answered: the option, the configuration, or where
/// libvirt.so looks for the bus's instance.
fn rpc_socket(args: &Args, config: &Config, bus: BusKind) -> Result<PathBuf, DaemonError> {
    if let Some(p) = args
        .libvirt_rpc_socket
        .clone()
        .or(config.libvirt_rpc_socket.clone())
    {
        return Ok(p);
    }
    match bus {
        BusKind::System => Ok(PathBuf::from("/run/libvirt/libvirt-sock")),
        BusKind::Session => std::env::var_os("XDG_RUNTIME_DIR")
            .map(|d| PathBuf::from(d).join("libvirt/libvirt-sock"))
            .ok_or_else(|| {
                DaemonError::Setup(
                    "XDG_RUNTIME_DIR is not set: give the RPC socket with --libvirt-rpc-socket"
                        .into(),
                )
            }),
    }
}

/// libvirt's RPC protocol on `path`: `qemu:///system` (or `/session`) over the qemu and kvm
/// domains of `core`, `test:///default` over `test`.
async fn serve_rpc(
    path: &std::path::Path,
    bus: BusKind,
    core: &Core,
    test: &Core,
    authz: Arc<dyn Authorizer>,
) -> Result<rpc::Server, DaemonError> {
    let views = vec![
        rpc::ViewSpec {
            scheme: "qemu",
            flavor: Flavor::Qemu,
            core: core.clone(),
            types: vec![DomainType::Qemu, DomainType::Kvm],
        },
        rpc::ViewSpec {
            scheme: "test",
            flavor: Flavor::Test,
            core: test.clone(),
            types: vec![DomainType::Test],
        },
    ];
    let mut views = views;
    if core.domain_types().contains(&DomainType::Lxc) {
        views.push(rpc::ViewSpec {
            scheme: "lxc",
            flavor: Flavor::Lxc,
            core: core.clone(),
            types: vec![DomainType::Lxc],
        });
    }
    rpc::serve(path, views, authz, bus == BusKind::System)
        .await
        .map_err(|e| DaemonError::Setup(e.to_string()))
}

async fn request_name(
    conn: &zbus::Connection,
    name: &'static str,
    hint: &'static str,
) -> Result<(), DaemonError> {
    use zbus::fdo::{RequestNameFlags, RequestNameReply};
    let reply = zbus::fdo::DBusProxy::new(conn)
        .await
        .map_err(|e| DaemonError::Name(name, e))?
        .request_name(
            name.try_into().map_err(|e| DaemonError::Name(name, e))?,
            RequestNameFlags::DO_NOT_QUEUE,
        )
        .await
        .map_err(|e| DaemonError::Name(name, e.into()))?;
    match reply {
        RequestNameReply::PrimaryOwner | RequestNameReply::AlreadyOwner => Ok(()),
        _ => Err(DaemonError::NameTaken(name, hint)),
    }
}

/// SIGTERM and SIGINT, watched from before the bus name is owned: from then on a stop request
/// (systemd sends one as soon as it likes) must be handled, not kill the daemon.
struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn watch() -> Result<Self, DaemonError> {
        use tokio::signal::unix::{SignalKind, signal};
        let setup = |e: std::io::Error| DaemonError::Setup(format!("cannot watch signals: {e}"));
        Ok(Self {
            term: signal(SignalKind::terminate()).map_err(setup)?,
            int: signal(SignalKind::interrupt()).map_err(setup)?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}
