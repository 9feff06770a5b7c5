//! Sockets handed over by systemd (`LISTEN_PID`, `LISTEN_FDS`, `LISTEN_FDNAMES`), as
//! libvirt's modular daemons take theirs from their `.socket` units: the daemon starts on
//! the first client and systemd keeps the sockets across restarts.

use std::{
    collections::HashMap,
    os::fd::{FromRawFd, OwnedFd},
};

use tokio::net::UnixListener;

/// `FileDescriptorName=` of the read-write socket's unit (`data/virtbusd-libvirt.socket`).
pub const RW: &str = "libvirt-sock";
/// `FileDescriptorName=` of the read-only socket's unit.
pub const RO: &str = "libvirt-sock-ro";

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
const FIRST_FD: i32 = 3;

/// Whether systemd passed sockets to this process.
pub fn passed() -> bool {
    let ours = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    let n: i32 = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    ours && n > 0
}

/// The listening sockets passed to this process, by name ([`RW`], [`RO`]); unnamed ones
/// are taken in that order. A child inherits the variables but not their `LISTEN_PID`.
pub fn take() -> HashMap<&'static str, UnixListener> {
    let pid = std::env::var("LISTEN_PID").ok();
    let fds = std::env::var("LISTEN_FDS").ok();
    let names = std::env::var("LISTEN_FDNAMES").ok();
    let mut out = HashMap::new();
    if pid.and_then(|p| p.parse::<u32>().ok()) != Some(std::process::id()) {
        return out;
    }
    let n: i32 = fds.and_then(|n| n.parse().ok()).unwrap_or(0);
    let names: Vec<String> = names
        .map(|n| n.split(':').map(str::to_owned).collect())
        .unwrap_or_default();
    for i in 0..n.clamp(0, 64) {
        let fd = FIRST_FD + i;
        let name = match names.get(i as usize).map(String::as_str) {
            Some(RW) => RW,
            Some(RO) => RO,
            Some(other) if !other.is_empty() && other != "unknown" => {
                tracing::warn!("ignoring socket {fd} named '{other}' from systemd");
                continue;
            }
            // unnamed: the read-write socket first
            _ if !out.contains_key(RW) => RW,
            _ => RO,
        };
        if out.contains_key(name) {
            tracing::warn!("ignoring a second '{name}' socket ({fd}) from systemd");
            continue;
        }
        // SAFETY: systemd passed this descriptor to this process (LISTEN_PID is ours) and
        // nothing else in it owns the descriptor.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        // not for the guests this daemon starts
        // SAFETY: fcntl on a descriptor this process owns.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        let std = std::os::unix::net::UnixListener::from(owned);
        let listener = std
            .set_nonblocking(true)
            .and_then(|()| UnixListener::from_std(std));
        match listener {
            Ok(l) => {
                tracing::info!("listening on the '{name}' socket systemd passed");
                out.insert(name, l);
            }
            Err(e) => tracing::warn!("socket {fd} from systemd is not usable: {e}"),
        }
    }
    out
}
