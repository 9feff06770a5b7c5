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

mod conn;
mod dispatch;
pub mod error;
pub mod frame;
mod objects;
pub mod objproto;
mod pools;
pub mod proto;
mod stats;
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
    /// The URI scheme: `qemu` or `test`.
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
    /// This front end sends no events (yet), so nothing waits for them: always "sent".
    pub signalled: watch::Receiver<u64>,
    _signalled_tx: watch::Sender<u64>,
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

/// The running listener.
pub struct Server {
    task: tokio::task::JoinHandle<()>,
    path: PathBuf,
}

impl Server {
    /// Resolve when the listener fails.
    pub async fn closed(&mut self) {
        let _ = (&mut self.task).await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Listen on `path` (refusing it when another daemon answers there, replacing a stale
/// socket) and serve `views` to every client.
pub async fn serve(
    path: &Path,
    views: Vec<ViewSpec>,
    authz: Arc<dyn Authorizer>,
    system: bool,
) -> Result<Server, ListenError> {
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
    // As libvirt's rw socket: anyone may connect, polkit decides what they may do. A session
    // socket is the user's alone.
    let mode = if system { 0o666 } else { 0o600 };
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).map_err(io_err)?;
    std::fs::rename(&tmp, path).map_err(io_err)?;
    let views = views
        .into_iter()
        .map(|v| {
            let (tx, rx) = watch::channel(u64::MAX);
            Arc::new(View {
                scheme: v.scheme,
                flavor: v.flavor,
                core: v.core,
                types: v.types,
                signalled: rx,
                _signalled_tx: tx,
            })
        })
        .collect();
    let shared = Arc::new(Shared {
        views,
        authz,
        system,
    });
    let task = tokio::spawn(accept_loop(listener, shared));
    Ok(Server {
        task,
        path: path.to_owned(),
    })
}

async fn accept_loop(listener: UnixListener, shared: Arc<Shared>) {
    let mut next_id: u64 = 0;
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                next_id += 1;
                tokio::spawn(conn::run(stream, shared.clone(), next_id));
            }
            Err(e) => {
                // out of descriptors and the like: wait rather than spin
                tracing::warn!("cannot accept an RPC client: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}
