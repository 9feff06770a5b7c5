//! A pseudo-terminal for console tests: the master the test reads and types on, the slave a
//! client (virsh, virtbusctl) runs on.

use std::{
    io::{Read, Write},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    time::{Duration, Instant},
};

/// A fresh pseudo-terminal: (master, slave).
pub fn openpty() -> (std::fs::File, OwnedFd) {
    let (mut m, mut s) = (0, 0);
    // SAFETY: openpty writes two descriptors into the integers; no name, termios or size.
    let r = unsafe {
        libc::openpty(
            &mut m,
            &mut s,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors are fresh and ours alone.
    unsafe { (std::fs::File::from_raw_fd(m), OwnedFd::from_raw_fd(s)) }
}

/// Read `master` into `seen` until `want` appears; `poke` is typed every two seconds meanwhile
/// (QEMU drops the guest's output until it notices a reader on its pty, and a client may
/// flush keys typed before it entered raw mode).
pub fn expect(
    master: &mut std::fs::File,
    seen: &mut String,
    want: &str,
    poke: &[u8],
    within: Duration,
) {
    let t = Instant::now();
    let mut last_poke: Option<Instant> = None;
    let mut buf = [0u8; 4096];
    while !seen.contains(want) {
        assert!(
            t.elapsed() < within,
            "no {want:?} within {within:?}; saw {seen:?}"
        );
        if !poke.is_empty() && last_poke.is_none_or(|p| p.elapsed() > Duration::from_secs(2)) {
            master.write_all(poke).expect("type");
            last_poke = Some(Instant::now());
        }
        let mut pfd = libc::pollfd {
            fd: master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, 200) } > 0 {
            match master.read(&mut buf) {
                Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
                Err(e) => panic!("read the terminal: {e}; saw {seen:?}"),
            }
        }
    }
}

/// Run `cmd` on the terminal whose slave is `slave`, as a terminal emulator does: its stdio,
/// and the controlling terminal of a new session (so the client can switch it to raw mode).
pub fn on_terminal(cmd: &mut std::process::Command, slave: &OwnedFd) {
    use std::{os::unix::process::CommandExt, process::Stdio};
    let fd = |f: &OwnedFd| Stdio::from(f.try_clone().expect("dup"));
    cmd.stdin(fd(slave)).stdout(fd(slave)).stderr(fd(slave));
    // SAFETY: setsid and ioctl are async-signal-safe; the slave becomes the controlling
    // terminal of the client's new session.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            libc::ioctl(0, libc::TIOCSCTTY, 0);
            Ok(())
        });
    }
}
