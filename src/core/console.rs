//! Connections to a running guest's text console and graphics server.
//!
//! A console is one session at a time per character device, as with libvirt: the core keeps
//! the pty the driver opened and pumps it through a socket of its own, so that it knows when
//! the client goes away and can cut a session off when another one forces its way in.

use std::{
    collections::HashMap,
    io,
    os::{
        fd::{AsRawFd, OwnedFd},
        unix::net::UnixStream as StdUnixStream,
    },
    sync::{Arc, Mutex},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt, Interest, unix::AsyncFd},
    net::UnixStream,
    task::AbortHandle,
};

use super::{Core, Domain, Error, Result, events::lock, ops::Operation};
use crate::model::{DomainDef, devices::CharDevice};

/// The open console sessions of one domain, by the pty they use (a serial port and the
/// console on it are one session).
#[derive(Default)]
pub struct Sessions(Mutex<HashMap<String, Session>>);

/// One pumping session: its id, its task, and a duplicate of the core's end of the
/// client's socket, to see at once that the client hung up (before the pump notices).
struct Session {
    id: u64,
    task: AbortHandle,
    probe: OwnedFd,
}

impl Session {
    fn alive(&self) -> bool {
        if self.task.is_finished() {
            return false;
        }
        let mut pfd = libc::pollfd {
            fd: self.probe.as_raw_fd(),
            events: libc::POLLRDHUP,
            revents: 0,
        };
        // SAFETY: one valid pollfd; a zero timeout never blocks.
        let n = unsafe { libc::poll(&mut pfd, 1, 0) };
        n == 0 || pfd.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) == 0
    }
}

/// What OpenConsole asks for.
#[derive(Debug, Clone, Default)]
pub struct ConsoleOptions {
    /// The device's alias (`serial0`, `console0`, `channel0`); empty: the first console,
    /// else the first serial port.
    pub device: String,
    /// Cut off a session already open on the device instead of refusing.
    pub force: bool,
}

/// The character device `name` selects in `live`, with the name it goes by.
fn find_device<'a>(live: &'a DomainDef, name: &str) -> Result<(String, &'a CharDevice)> {
    let d = &live.devices;
    if name.is_empty() {
        let (kind, dev) = match (d.consoles.first(), d.serials.first()) {
            (Some(c), _) => ("console0", c),
            (None, Some(s)) => ("serial0", s),
            (None, None) => {
                return Err(Error::NotSupported(format!(
                    "domain '{}' has no console or serial port",
                    live.name
                )));
            }
        };
        let alias = dev.info.alias.clone().unwrap_or_else(|| kind.to_owned());
        return Ok((alias, dev));
    }
    let groups = [
        ("console", &d.consoles),
        ("serial", &d.serials),
        ("channel", &d.channels),
    ];
    for (kind, devs) in groups {
        for (i, dev) in devs.iter().enumerate() {
            let alias = dev.info.alias.clone();
            if alias.as_deref() == Some(name) || format!("{kind}{i}") == name {
                return Ok((name.to_owned(), dev));
            }
        }
    }
    Err(Error::InvalidArgument(format!(
        "domain '{}' has no character device '{name}'",
        live.name
    )))
}

impl Core {
    /// Connect to a console of the running domain: pump it through `peer` when the caller
    /// gives a descriptor of its own (the libvirt facade), else through a new socket whose
    /// other end is returned.
    pub async fn open_console(
        &self,
        dom: &Arc<Domain>,
        opts: &ConsoleOptions,
        peer: Option<OwnedFd>,
    ) -> Result<Option<OwnedFd>> {
        let (live, _) = Self::require(dom, Operation::OpenConsole)?;
        let (alias, dev) = find_device(&live, &opts.device)?;
        let key = dev.source_path.clone().unwrap_or_else(|| alias.clone());
        {
            let sessions = lock(&dom.consoles.0);
            if let Some(s) = sessions.get(&key)
                && s.alive()
                && !opts.force
            {
                return Err(Error::InvalidState(format!(
                    "domain '{}' has an active console session on '{alias}' already \
                     (use force to take it over)",
                    live.name
                )));
            }
        }
        let pty = dom.driver.open_console(&self.ctx(dom), &alias, dev).await?;
        let pty = Pty::new(pty).map_err(|e| Error::Failed(format!("console '{alias}': {e}")))?;
        let (ours, theirs) = match peer {
            Some(fd) => (StdUnixStream::from(fd), None),
            None => {
                let (a, b) = StdUnixStream::pair()
                    .map_err(|e| Error::Failed(format!("console socket: {e}")))?;
                (a, Some(OwnedFd::from(b)))
            }
        };
        ours.set_nonblocking(true)
            .and_then(|()| {
                Ok((
                    OwnedFd::from(ours.try_clone()?),
                    UnixStream::from_std(ours)?,
                ))
            })
            .map(|(probe, sock)| self.start_session(dom, key, sock, pty, probe))
            .map_err(|e| Error::Failed(format!("console socket: {e}")))?;
        Ok(theirs)
    }

    /// Pump `pty` and `sock` into each other until either closes, replacing (and ending)
    /// any session on `key`.
    fn start_session(
        &self,
        dom: &Arc<Domain>,
        key: String,
        sock: UnixStream,
        pty: Pty,
        probe: OwnedFd,
    ) {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let weak = Arc::downgrade(dom);
        let k = key.clone();
        let mut sessions = lock(&dom.consoles.0);
        let task = tokio::spawn(async move {
            if let Err(e) = pump(sock, pty).await {
                tracing::debug!("console session on {k} ended: {e}");
            }
            if let Some(dom) = weak.upgrade() {
                let mut s = lock(&dom.consoles.0);
                if s.get(&k).is_some_and(|s| s.id == id) {
                    s.remove(&k);
                }
            }
        });
        let new = Session {
            id,
            task: task.abort_handle(),
            probe,
        };
        if let Some(old) = sessions.insert(key, new) {
            old.task.abort();
        }
    }

    /// A socket connected to the domain's graphics server (VNC or SPICE), `index` among
    /// its `<graphics>` elements; `skipauth` spares the client the server's password.
    pub async fn open_graphics(
        &self,
        dom: &Arc<Domain>,
        index: u32,
        skipauth: bool,
    ) -> Result<OwnedFd> {
        let (live, _) = Self::require(dom, Operation::OpenGraphics)?;
        let Some(g) = live.devices.graphics.get(index as usize) else {
            return Err(Error::InvalidArgument(format!(
                "domain '{}' has no graphics device {index}",
                live.name
            )));
        };
        Ok(dom
            .driver
            .open_graphics(&self.ctx(dom), index, g, skipauth)
            .await?)
    }
}

/// A pty in non-blocking mode, registered with the reactor.
struct Pty(AsyncFd<OwnedFd>);

impl Pty {
    fn new(fd: OwnedFd) -> io::Result<Self> {
        // SAFETY: fcntl on a descriptor we own, with no pointers involved.
        let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
        if flags < 0
            // SAFETY: as above.
            || unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0
        {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the AsyncFd owns the descriptor, so it stays open while registered.
        let fd = unsafe {
            AsyncFd::register_with_interest(fd, Interest::READABLE | Interest::WRITABLE)
        }?;
        Ok(Self(fd))
    }

    async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut g = self.0.readable().await?;
            // SAFETY: reads at most buf.len() bytes into buf, which we borrow mutably.
            let r = g.try_io(|fd| {
                let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match r {
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Ok(0),
                Ok(r) => return r,
                Err(_) => continue,
            }
        }
    }

    async fn write_all(&self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let mut g = self.0.writable().await?;
            // SAFETY: writes at most buf.len() bytes from buf.
            let r = g.try_io(|fd| {
                let n = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            if let Ok(r) = r {
                buf = &buf[r?..];
            }
        }
        Ok(())
    }
}

/// Copy both ways until one side ends (the guest's pty hangs up with EIO when QEMU goes).
async fn pump(sock: UnixStream, pty: Pty) -> io::Result<()> {
    let (mut rd, mut wr) = sock.into_split();
    let to_guest = async {
        let mut buf = [0u8; 4096];
        loop {
            let n = rd.read(&mut buf).await?;
            if n == 0 {
                return io::Result::Ok(());
            }
            pty.write_all(&buf[..n]).await?;
        }
    };
    let from_guest = async {
        let mut buf = [0u8; 4096];
        loop {
            let n = pty.read(&mut buf).await?;
            if n == 0 {
                return io::Result::Ok(());
            }
            wr.write_all(&buf[..n]).await?;
        }
    };
    tokio::select! {
        r = to_guest => r,
        r = from_guest => r,
    }
}
