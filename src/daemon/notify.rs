//! The service manager's notification protocol (`sd_notify`): `READY=1`, `STATUS=`, `STOPPING=1`.
//!
//! A few lines over a datagram socket rather than the `sd-notify` crate: the daemon takes
//! `NOTIFY_SOCKET` out of its environment before any thread starts, so that the guests it
//! spawns do not inherit it, and so must keep the address itself; the crate reads the
//! variable on every call.

use std::{
    io,
    os::unix::net::{SocketAddr, UnixDatagram},
};

/// Where notifications go; does nothing when not started by a service manager.
#[derive(Debug, Default)]
pub struct Notifier {
    addr: Option<SocketAddr>,
}

impl Notifier {
    /// Take `NOTIFY_SOCKET` from the environment.
    ///
    /// # Safety
    /// Changes the environment: call before any other thread exists.
    pub unsafe fn take_from_env() -> Self {
        let Some(value) = std::env::var_os("NOTIFY_SOCKET") else {
            return Self::default();
        };
        // SAFETY: the caller guarantees no other thread reads or writes the environment.
        unsafe { std::env::remove_var("NOTIFY_SOCKET") };
        let bytes = value.as_encoded_bytes();
        let addr = match bytes.split_first() {
            Some((b'@', name)) => abstract_addr(name),
            Some((b'/', _)) => SocketAddr::from_pathname(&value),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "neither a path nor an abstract name",
            )),
        };
        match addr {
            Ok(a) => Self { addr: Some(a) },
            Err(e) => {
                eprintln!("virtbusd: ignoring NOTIFY_SOCKET={}: {e}", value.display());
                Self::default()
            }
        }
    }

    /// Send `READY=1` with a status line.
    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={status}\n"));
    }

    pub fn status(&self, status: &str) {
        self.send(&format!("STATUS={status}\n"));
    }

    /// Send `STOPPING=1` with a status line.
    pub fn stopping(&self, status: &str) {
        self.send(&format!("STOPPING=1\nSTATUS={status}\n"));
    }

    /// Best effort: a service manager that went away must not stop the daemon.
    fn send(&self, msg: &str) {
        let Some(addr) = &self.addr else { return };
        let sent = UnixDatagram::unbound().and_then(|s| s.send_to_addr(msg.as_bytes(), addr));
        if let Err(e) = sent {
            tracing::warn!("cannot notify the service manager: {e}");
        }
    }
}

fn abstract_addr(name: &[u8]) -> io::Result<SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    SocketAddr::from_abstract_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_to_a_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify");
        let sock = UnixDatagram::bind(&path).expect("bind");
        let n = Notifier {
            addr: Some(SocketAddr::from_pathname(&path).expect("addr")),
        };
        n.ready("serving");
        let mut buf = [0u8; 256];
        let len = sock.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=serving\n");
    }

    #[test]
    fn without_a_socket_nothing_happens() {
        Notifier::default().stopping("bye");
    }
}
