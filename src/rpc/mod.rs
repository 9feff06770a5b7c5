//! libvirt's RPC protocol on a Unix socket: the third front end, beside the native D-Bus API
//! and the libvirt-dbus facade, so that programs linking libvirt.so (virsh, virt-manager,
//! virt-install...) drive virtbus unchanged through its remote driver.
//!
//! A thin translator like the facade: packets are framed and decoded here ([`frame`],
//! [`xdr`], [`proto`]), each call becomes a core request run through the one execution path
//! ([`crate::server::exec`]) with the peer's credentials from `SO_PEERCRED`, and errors are
//! worded by the facade's mapping. The messages are written by hand for the procedures
//! implemented (see [`proto::procs::IMPLEMENTED`]); every other procedure answers
//! `VIR_ERR_NO_SUPPORT`, as an older libvirtd would.

pub mod activation;
mod conn;
mod dispatch;
pub mod error;
mod events;
mod fds;
pub mod frame;
pub mod lxcproto;
mod monitor_events;
mod more;
mod objects;
pub mod objproto;
mod pools;
pub mod proto;
pub mod qemu;
mod screenshot;
mod stats;
mod stream;
pub mod streamproto;
mod transfer;
pub mod xdr;

use std::{
    io,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    sync::Arc,
};

use tokio::{net::UnixListener, sync::watch};

use crate::{compat::flags::Flavor, core::Core, model::DomainType, server::authz::Authorizer};

/// One driver URI a client can open: the domains of some types of one core.
pub struct ViewSpec {
    /// The URI scheme: `qemu`, `test` or `lxc`.
    pub scheme: &'static str,
    pub flavor: Flavor,
    pub core: Core,
    pub types: Vec<DomainType>,
}

/// A view with what the execution path needs besides.
pub(crate) struct View {
    pub scheme: &'static str,
    pub flavor: Flavor,
    pub core: Core,
    pub types: Vec<DomainType>,
    /// How far the core's events have been handed to the connections listening.
    pub signalled: watch::Receiver<u64>,
    /// The connections listening for events on this view.
    pub hub: Arc<events::Hub>,
}

pub(crate) struct Shared {
    pub views: Vec<Arc<View>>,
    pub authz: Arc<dyn Authorizer>,
    /// Whether peers other than root and the daemon's own user must authenticate
    /// (system instance); a session instance admits only its own user.
    pub system: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("{0} is in use: is libvirtd or another virtbusd serving it?")]
    InUse(PathBuf),
    #[error("cannot listen on {0}: {1}")]
    Io(PathBuf, io::Error),
}

/// The running listeners.
pub struct Server {
    /// The read-write and the read-only socket's accept loops.
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// One event pump per view.
    pumps: Vec<tokio::task::JoinHandle<()>>,
    /// The socket files this daemon made (none that systemd handed over).
    paths: Vec<PathBuf>,
}

impl Server {
    /// Resolve when a listener fails.
    pub async fn closed(&mut self) {
        let all = self.tasks.iter_mut();
        let _ = futures_util::future::select_all(all).await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        for t in self.tasks.iter().chain(&self.pumps) {
            t.abort();
        }
        for p in &self.paths {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The read-only twin of socket `path`, as libvirt names it (`libvirt-sock-ro`).
pub fn read_only_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push("-ro");
    PathBuf::from(p)
}

/// Listen on `path` and its read-only twin ([`read_only_path`]) — or on the sockets systemd
/// handed over ([`activation`]) — and serve `views` to every client. A path another daemon
/// answers on is refused, a stale socket replaced.
pub async fn serve(
    path: &Path,
    views: Vec<ViewSpec>,
    authz: Arc<dyn Authorizer>,
    system: bool,
) -> Result<Server, ListenError> {
    let ro_path = read_only_path(path);
    let mut given = activation::take();
    let mut paths = Vec::new();
    // As libvirt's sockets: anyone may connect, polkit decides what they may do. A session
    // socket is the user's alone.
    let mode = if system { 0o666 } else { 0o600 };
    let rw = match given.remove(activation::RW) {
        Some(l) => l,
        None => {
            let l = bind(path, mode).await?;
            paths.push(path.to_owned());
            l
        }
    };
    let ro = match given.remove(activation::RO) {
        Some(l) => l,
        None => {
            let l = bind(&ro_path, mode).await?;
            paths.push(ro_path);
            l
        }
    };
    let mut pumps = Vec::new();
    let views = views
        .into_iter()
        .map(|v| {
            // subscribed before the hub lists the domains, so none is missed
            let events = v.core.events().subscribe();
            let (tx, rx) = watch::channel(v.core.events().last_seq());
            let hub = Arc::new(events::Hub::new(&v.core, v.types.clone()));
            pumps.push(tokio::spawn(events::pump(hub.clone(), events, tx)));
            if let Ok(nets) = v.core.networks() {
                pumps.push(tokio::spawn(events::network_pump(
                    hub.clone(),
                    nets.subscribe(),
                )));
            }
            Arc::new(View {
                scheme: v.scheme,
                flavor: v.flavor,
                core: v.core,
                types: v.types,
                signalled: rx,
                hub,
            })
        })
        .collect();
    let shared = Arc::new(Shared {
        views,
        authz,
        system,
    });
    let tasks = vec![
        tokio::spawn(accept_loop(rw, shared.clone(), false)),
        tokio::spawn(accept_loop(ro, shared, true)),
    ];
    Ok(Server {
        tasks,
        pumps,
        paths,
    })
}

/// A listening socket at `path` with `mode`.
async fn bind(path: &Path, mode: u32) -> Result<UnixListener, ListenError> {
    let io_err = |e| ListenError::Io(path.to_owned(), e);
    if tokio::net::UnixStream::connect(path).await.is_ok() {
        return Err(ListenError::InUse(path.to_owned()));
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(e)),
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_err)?;
    }
    // Bound and listening under a temporary name, then renamed: a client that sees the
    // socket (libvirt.so probes for it) can connect at once.
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let listener = UnixListener::bind(&tmp).map_err(io_err)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).map_err(io_err)?;
    std::fs::rename(&tmp, path).map_err(io_err)?;
    Ok(listener)
}

/// Accept clients; on the read-only socket (`read_only`) nothing may change.
async fn accept_loop(listener: UnixListener, shared: Arc<Shared>, read_only: bool) {
    // one numbering for both sockets: the id names the peer to the authorizer
    static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::spawn(conn::run(stream, shared.clone(), id, read_only));
            }
            Err(e) => {
                // out of descriptors and the like: wait rather than spin
                tracing::warn!("cannot accept an RPC client: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}
