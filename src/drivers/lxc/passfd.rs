//! Descriptors handed to a container's init (libvirt's `virDomainCreateWithFiles`): the
//! daemon gives them to the controller as descriptors 3 and on, the controller keeps them
//! through the init's set-up and the init has them, renumbered, as 3 and on (as libvirt's
//! `lxcContainerSetupFDs`), for its first boot only.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// The first descriptor after standard error.
pub const FIRST: RawFd = 3;

/// Arrange for `files` to be descriptors 3, 4, ... of the controller `cmd` runs.
pub fn hand_to(cmd: &mut tokio::process::Command, files: &[OwnedFd]) {
    if files.is_empty() {
        return;
    }
    let raw: Vec<RawFd> = files.iter().map(AsRawFd::as_raw_fd).collect();
    // SAFETY: the closure runs in the forked child before exec and calls only fcntl, dup2
    // and close, which are async-signal-safe; `raw` is owned by the closure.
    unsafe {
        cmd.pre_exec(move || renumber(&raw, false));
    }
}

/// Make `fds` descriptors 3, 4, ... in order (moved above their targets first, so none
/// overwrites another), leaving them open across exec unless `cloexec`.
pub fn renumber(fds: &[RawFd], cloexec: bool) -> std::io::Result<()> {
    let n = fds.len() as RawFd;
    let mut moved = Vec::with_capacity(fds.len());
    for &fd in fds {
        // SAFETY: duplicating a descriptor we hold.
        let m = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, FIRST + n) };
        if m < 0 {
            return Err(std::io::Error::last_os_error());
        }
        moved.push(m);
    }
    for (i, &m) in moved.iter().enumerate() {
        let target = FIRST + i as RawFd;
        // SAFETY: dup2 onto a number we own from now on, then closing the stand-in.
        unsafe {
            if libc::dup2(m, target) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::close(m);
            if cloexec && libc::fcntl(target, libc::F_SETFD, libc::FD_CLOEXEC) < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// In the controller: keep the `n` descriptors received as 3, 4, ... from leaking into
/// anything it runs but the init.
pub fn keep(n: usize) -> Vec<RawFd> {
    let fds: Vec<RawFd> = (0..n as RawFd).map(|i| FIRST + i).collect();
    for &fd in &fds {
        // SAFETY: setting a flag on a descriptor the daemon gave us.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    fds
}

/// In the controller, once the init has them: close them.
pub fn close(fds: &[RawFd]) {
    for &fd in fds {
        // SAFETY: closing descriptors only this code knows of.
        unsafe { libc::close(fd) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Descriptors given in an order that clashes with their targets come out in order.
    #[test]
    fn renumber_in_order() {
        // a child process, so that descriptor 3.. of the test runner stay untouched
        // SAFETY: fork in a test; the child only runs plain syscalls and exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let mut p = [0; 2];
            let mut q = [0; 2];
            // SAFETY: plain syscalls in the child.
            unsafe {
                libc::pipe(p.as_mut_ptr());
                libc::pipe(q.as_mut_ptr());
                // read ends out of the way of 3 and 4
                for r in [&mut p[0], &mut q[0]] {
                    let high = libc::fcntl(*r, libc::F_DUPFD, 100);
                    libc::close(*r);
                    *r = high;
                }
                // hand (q's write end, p's write end): order must follow the list
                let ok = renumber(&[q[1], p[1]], false).is_ok()
                    && libc::write(3, b"q".as_ptr().cast(), 1) == 1
                    && libc::write(4, b"p".as_ptr().cast(), 1) == 1;
                let mut b = [0u8; 1];
                let good = ok
                    && libc::read(q[0], b.as_mut_ptr().cast(), 1) == 1
                    && b[0] == b'q'
                    && libc::read(p[0], b.as_mut_ptr().cast(), 1) == 1
                    && b[0] == b'p';
                libc::_exit(if good { 0 } else { 1 });
            }
        }
        let mut status = 0;
        // SAFETY: waiting for our child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(status, 0);
    }
}
