//! A polkit text agent for the duration of one call, as systemctl runs one: when the caller
//! may be asked for a password (a terminal on standard input, the local system bus, not
//! root), `pkttyagent` registers for this process and prompts on the terminal.

use std::{
    io::Read,
    os::fd::AsRawFd,
    os::unix::process::CommandExt,
    process::{Child, Command, Stdio},
};

/// The running agent; dropping it ends it.
pub struct Agent {
    child: Option<Child>,
}

impl Agent {
    /// Start `pkttyagent` if `interactive`, and wait until it has registered (it closes its
    /// notify descriptor then), so that the call that follows finds it.
    pub fn start(interactive: bool) -> Agent {
        if !interactive {
            return Agent { child: None };
        }
        match spawn() {
            Ok(child) => Agent { child: Some(child) },
            Err(e) => {
                eprintln!("virtbusctl: warning: cannot run pkttyagent: {e}");
                Agent { child: None }
            }
        }
    }
}

/// Whether this process runs in a logind session. In one, the agent registers as a fallback
/// (as systemctl's does), so that a graphical agent of the session answers first. polkitd looks
/// at a fallback agent only after it found the caller's session, though: without logind it
/// would never ask it, so there the agent registers as this process's own.
fn in_login_session() -> bool {
    std::env::var_os("XDG_SESSION_ID").is_some_and(|v| !v.is_empty())
        && std::path::Path::new("/run/systemd/sessions").is_dir()
}

fn spawn() -> std::io::Result<Child> {
    let (mut reader, writer) = std::io::pipe()?;
    let fd = writer.as_raw_fd();
    let mut cmd = Command::new("pkttyagent");
    cmd.arg("--process").arg(std::process::id().to_string());
    if in_login_session() {
        cmd.arg("--fallback");
    }
    cmd.arg("--notify-fd")
        .arg(fd.to_string())
        .stdin(Stdio::inherit())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    // SAFETY: fcntl is async-signal-safe; it only lets the notify pipe survive exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    drop(writer);
    // EOF once the agent registered (or gave up and exited).
    let mut buf = [0u8; 16];
    while matches!(reader.read(&mut buf), Ok(n) if n > 0) {}
    Ok(child)
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGTERM, as systemd ends its agent: it unregisters cleanly.
            if let Ok(pid) = i32::try_from(child.id()) {
                // SAFETY: a plain signal to the child this process started and still owns.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
            let _ = child.wait();
        }
    }
}
