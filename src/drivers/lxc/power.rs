//! Shutdown and reboot requests, as libvirt's LXC driver makes them. Modes: `initctl` (a
//! runlevel request on the container's `/dev/initctl`-like FIFO; refused when it has none),
//! `signal` (SIGTERM to its init to power off, SIGHUP to reboot), and the default: initctl
//! when the container has one, the signal otherwise. ACPI, the guest agent and Xen's
//! paravirt control are refused by name: a container has none of them.

use std::{ffi::CString, os::fd::RawFd};

use crate::{drivers::DriverError, model::options::PowerMode};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    PowerOff,
    Reboot,
}

impl Action {
    fn verb(self) -> &'static str {
        match self {
            Action::PowerOff => "shutdown",
            Action::Reboot => "reboot",
        }
    }
}

/// The FIFOs sysvinit-compatible inits read requests from, as libvirt looks for them.
const INITCTL: &[&str] = &["/run/initctl", "/dev/initctl", "/etc/.initctl"];

/// Ask the container whose init is `init` to power off or reboot.
pub fn request(name: &str, init: i32, mode: PowerMode, action: Action) -> Result<(), DriverError> {
    let (try_initctl, try_signal) = match mode {
        PowerMode::Default => (true, true),
        PowerMode::Initctl => (true, false),
        PowerMode::Signal => (false, true),
        PowerMode::Acpi | PowerMode::Agent | PowerMode::Paravirt => {
            return Err(DriverError::NotSupported(format!(
                "domain '{name}': {} mode '{}' is not supported by the LXC driver (a \
                 container has no {}; the modes are initctl and signal)",
                action.verb(),
                mode.as_str(),
                match mode {
                    PowerMode::Acpi => "ACPI",
                    PowerMode::Agent => "guest agent",
                    _ => "paravirtual control",
                }
            )));
        }
    };
    if try_initctl {
        match initctl(init, action) {
            Ok(()) => return Ok(()),
            Err(e) if !try_signal => {
                return Err(DriverError::NotSupported(format!(
                    "domain '{name}': {} mode 'initctl': the container does not provide an \
                     initctl pipe ({e})",
                    action.verb()
                )));
            }
            Err(_) => {}
        }
    }
    let sig = match action {
        Action::PowerOff => libc::SIGTERM,
        Action::Reboot => libc::SIGHUP,
    };
    // SAFETY: a plain syscall; the pid is the container's init, held by its controller.
    if unsafe { libc::kill(init, sig) } < 0 {
        return Err(DriverError::Failed(format!(
            "domain '{name}': cannot signal its init {init}: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

/// sysvinit's `struct init_request`: magic, command, runlevel, sleep time, then padding to
/// 384 bytes.
fn init_request(action: Action) -> [u8; 384] {
    let mut r = [0u8; 384];
    r[0..4].copy_from_slice(&0x0309_1969i32.to_ne_bytes());
    r[4..8].copy_from_slice(&1i32.to_ne_bytes()); // INIT_CMD_RUNLVL
    let level = match action {
        Action::PowerOff => b'0',
        Action::Reboot => b'6',
    };
    r[8..12].copy_from_slice(&i32::from(level).to_ne_bytes());
    r
}

/// Write the runlevel request to the first initctl FIFO the container has, resolving its
/// path inside the container's root (its symlinks cannot lead out).
fn initctl(init: i32, action: Action) -> Result<(), String> {
    let root = CString::new(format!("/proc/{init}/root")).map_err(|e| e.to_string())?;
    // SAFETY: plain syscalls on descriptors we own; open_how is fully initialised.
    unsafe {
        let dir = libc::open(
            root.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        );
        if dir < 0 {
            return Err(format!("cannot open /proc/{init}/root"));
        }
        let result = INITCTL.iter().find_map(|p| {
            let path = CString::new(p.trim_start_matches('/')).ok()?;
            let mut how: libc::open_how = std::mem::zeroed();
            how.flags = (libc::O_PATH | libc::O_CLOEXEC) as u64;
            how.resolve = libc::RESOLVE_IN_ROOT;
            let fd = libc::syscall(
                libc::SYS_openat2,
                dir,
                path.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            ) as RawFd;
            if fd < 0 {
                return None;
            }
            let mut st: libc::stat = std::mem::zeroed();
            let fifo = libc::fstat(fd, &mut st) == 0
                && st.st_mode & libc::S_IFMT == libc::S_IFIFO
                && !is_hosts(p, &st);
            let w = if fifo {
                let again = CString::new(format!("/proc/self/fd/{fd}")).ok()?;
                libc::open(
                    again.as_ptr(),
                    libc::O_WRONLY | libc::O_NONBLOCK | libc::O_CLOEXEC,
                )
            } else {
                -1
            };
            libc::close(fd);
            if w < 0 {
                return None;
            }
            let req = init_request(action);
            let n = libc::write(w, req.as_ptr().cast(), req.len());
            libc::close(w);
            (n == req.len() as isize).then_some(())
        });
        libc::close(dir);
        result.ok_or_else(|| format!("none of {} is a FIFO it can write", INITCTL.join(", ")))
    }
}

/// Whether the container's FIFO is the host's own at `path` (bound in): libvirt never
/// changes the host's runlevel.
fn is_hosts(path: &str, st: &libc::stat) -> bool {
    std::fs::metadata(path).is_ok_and(|m| {
        use std::os::unix::fs::MetadataExt;
        m.dev() == st.st_dev && m.ino() == st.st_ino
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_sysvinits() {
        let r = init_request(Action::Reboot);
        assert_eq!(i32::from_ne_bytes(r[0..4].try_into().unwrap()), 0x0309_1969);
        assert_eq!(i32::from_ne_bytes(r[4..8].try_into().unwrap()), 1);
        assert_eq!(
            i32::from_ne_bytes(r[8..12].try_into().unwrap()),
            i32::from(b'6')
        );
        assert!(r[12..].iter().all(|b| *b == 0));
    }
}
