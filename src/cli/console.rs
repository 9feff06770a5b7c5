//! console: the guest's serial console on this terminal, as `virsh console`.
//!
//! The terminal goes raw for the session (keys go to the guest as typed, Ctrl-C included) and
//! comes back as it was on every way out: Ctrl-], the guest or daemon closing the session,
//! end of input, an error, or SIGTERM/SIGHUP/SIGINT (a guard restores it; signals end the
//! session first so that the guard runs).

use std::{
    fs::File,
    io::{self, IsTerminal, Read, Write},
    net::Shutdown,
    os::{
        fd::{AsFd, AsRawFd, OwnedFd},
        unix::net::UnixStream,
    },
};

use tokio::signal::unix::{SignalKind, signal};
use zbus::Variant;

use super::{
    Ctx,
    api::{domain as d, opts},
    domains,
    error::{Error, Result},
};

/// Ctrl-], the escape character that ends the session.
const ESCAPE: u8 = 0x1d;

/// Puts the terminal in raw mode and restores it when dropped.
struct RawMode;

impl RawMode {
    fn enable() -> Result<Option<Self>> {
        if !io::stdin().is_terminal() {
            return Ok(None);
        }
        crossterm::terminal::enable_raw_mode()
            .map_err(|e| Error::failed(format!("cannot put the terminal in raw mode: {e}")))?;
        Ok(Some(Self))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = crossterm::terminal::disable_raw_mode();
    }
}

pub async fn console(ctx: &Ctx, domain: &str, device: Option<String>, force: bool) -> Result<()> {
    let (path, name) = domains::resolve(ctx.bus(), domain).await?;
    let o = opts([("force", Variant::from(force))]);
    let fd = ctx
        .bus()
        .change(&d::OPEN_CONSOLE, &path, &(device.unwrap_or_default(), o))
        .await?;
    let sock = UnixStream::from(OwnedFd::from(fd));
    let stop = sock
        .try_clone()
        .map_err(|e| Error::failed(format!("console socket: {e}")))?;
    println!("Connected to domain '{name}'");
    println!("Escape character is ^] (Ctrl + ])");
    // Handlers first: a signal must never find the terminal raw with nobody to restore it.
    let (mut term, mut hup, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(h), Ok(i)) => (t, h, i),
        _ => return Err(Error::failed("cannot handle signals")),
    };
    let input = io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map(File::from)
        .map_err(|e| Error::failed(format!("standard input: {e}")))?;
    let raw = RawMode::enable()?;
    let session = tokio::task::spawn_blocking(move || copy(input, sock));
    tokio::pin!(session);
    let result = loop {
        tokio::select! {
            r = &mut session => break r,
            _ = term.recv() => {}
            _ = hup.recv() => {}
            _ = int.recv() => {}
        }
        // A signal: end the session; the copy sees its socket shut and returns.
        let _ = stop.shutdown(Shutdown::Both);
    };
    drop(raw);
    println!();
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Error::failed(format!("console of '{name}': {e}"))),
        Err(e) => Err(Error::failed(format!("console of '{name}': {e}"))),
    }
}

/// Copy the terminal to the guest and back until Ctrl-], end of input, or the session ends.
fn copy(mut stdin: File, mut sock: UnixStream) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    let mut buf = [0u8; 4096];
    loop {
        let mut fds = [
            libc::pollfd {
                fd: stdin.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: sock.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: `fds` is a valid array of two pollfd for the duration of the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let ready = libc::POLLIN | libc::POLLHUP | libc::POLLERR;
        if fds[1].revents & ready != 0 {
            let n = sock.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            stdout.write_all(&buf[..n])?;
            stdout.flush()?;
        }
        if fds[0].revents & ready != 0 {
            let n = stdin.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            match buf[..n].iter().position(|&b| b == ESCAPE) {
                Some(i) => {
                    sock.write_all(&buf[..i])?;
                    return Ok(());
                }
                None => sock.write_all(&buf[..n])?,
            }
        }
    }
}
