//! QEMU processes: spawned as children in a process group of their own (so that a signal to
//! the daemon's group does not reach them), their output appended to a per-domain
//! log, identified by pid plus start time, signalled and watched through a pidfd so that a
//! recycled pid is never signalled, and after a daemon restart watched the same way although
//! they are no longer our children.

use std::{
    fs::File,
    io::{self, Read, Seek, SeekFrom, Write},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    path::{Path, PathBuf},
    time::Duration,
};

use tokio::io::unix::AsyncFd;

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("cannot open log {path}: {source}")]
    Log { path: PathBuf, source: io::Error },
    #[error("cannot start {program}: {source}")]
    Spawn { program: PathBuf, source: io::Error },
    #[error("cannot watch process {pid}: {source}")]
    Pidfd { pid: i32, source: io::Error },
    #[error("process {pid} is gone or is not the one recorded")]
    NotOurs { pid: i32 },
}

/// A running QEMU.
#[derive(Debug)]
pub struct Process {
    pub pid: i32,
    /// Clock ticks since boot when it started (field 22 of `/proc/PID/stat`).
    pub start_time: u64,
    pidfd: AsyncFd<OwnedFd>,
    /// Set for our own children, which we must reap.
    child: tokio::sync::Mutex<Option<tokio::process::Child>>,
}

/// `pidfd_open(2)`.
fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: a plain syscall; on success it returns a new descriptor we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor from the kernel.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// The start time of `pid` in clock ticks since boot, from `/proc/PID/stat`.
pub fn start_time(pid: i32) -> io::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_start_time(&stat)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unreadable /proc/PID/stat"))
}

/// Field 22 of a `stat` line; the command name (field 2) may hold spaces and parentheses, so
/// fields are counted after its last `)`.
pub fn parse_start_time(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// User and system CPU time of a `stat` line, in clock ticks (fields 14 and 15).
pub fn parse_cpu_ticks(stat: &str) -> Option<(u64, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace().skip(11);
    Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
}

/// Register a pidfd with the reactor (readable once the process exits).
fn watchable(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: the AsyncFd owns the OwnedFd, which stays open and the same until dropped.
    unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
        .map_err(|e| e.into_parts().1)
}

impl Process {
    /// Spawn `program` with `args` and the extra environment `env`, stdout and stderr
    /// appended to `log`.
    pub fn spawn(
        program: &Path,
        args: &[String],
        env: &[(String, String)],
        log: &File,
    ) -> Result<Self, ProcessError> {
        let spawn_err = |source| ProcessError::Spawn {
            program: program.to_owned(),
            source,
        };
        let out = log.try_clone().map_err(spawn_err)?;
        let err = log.try_clone().map_err(spawn_err)?;
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(false);
        // A process group of its own keeps signals meant for the daemon's group (a Ctrl-C,
        // a stop of the daemon) away from the guest; unlike setsid in a pre_exec hook it
        // lets the standard library spawn with posix_spawn, which is faster than fork.
        cmd.process_group(0);
        let child = cmd.spawn().map_err(spawn_err)?;
        let pid = child.id().map(|p| p as i32).unwrap_or(0);
        // Our unreaped child cannot be recycled, so pid and pidfd surely match.
        let fd = pidfd_open(pid).map_err(|source| ProcessError::Pidfd { pid, source })?;
        let start_time = start_time(pid).unwrap_or(0);
        Ok(Self {
            pid,
            start_time,
            pidfd: watchable(fd).map_err(|source| ProcessError::Pidfd { pid, source })?,
            child: tokio::sync::Mutex::new(Some(child)),
        })
    }

    /// Take hold of a process an earlier daemon started, if `pid` still is that process.
    pub fn adopt(pid: i32, recorded_start: u64) -> Result<Self, ProcessError> {
        if pid <= 0 || start_time(pid).ok() != Some(recorded_start) {
            return Err(ProcessError::NotOurs { pid });
        }
        let fd = pidfd_open(pid).map_err(|_| ProcessError::NotOurs { pid })?;
        // The pidfd now pins this process's identity; check it is still the one recorded
        // (the pid could have been recycled between the two reads).
        if start_time(pid).ok() != Some(recorded_start) {
            return Err(ProcessError::NotOurs { pid });
        }
        Ok(Self {
            pid,
            start_time: recorded_start,
            pidfd: watchable(fd).map_err(|source| ProcessError::Pidfd { pid, source })?,
            child: tokio::sync::Mutex::new(None),
        })
    }

    /// Send `sig`; a process already gone is not an error.
    pub fn signal(&self, sig: i32) -> io::Result<()> {
        // SAFETY: a plain syscall on our pidfd.
        let r = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.get_ref().as_raw_fd(),
                sig,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ESRCH) {
                return Ok(());
            }
            return Err(e);
        }
        Ok(())
    }

    /// Whether it has exited (without waiting).
    pub fn has_exited(&self) -> bool {
        let mut pfd = libc::pollfd {
            fd: self.pidfd.get_ref().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd on our descriptor, no wait.
        let n = unsafe { libc::poll(&mut pfd, 1, 0) };
        n > 0 && pfd.revents & libc::POLLIN != 0
    }

    /// Wait until it has exited, and reap it when it is our child.
    pub async fn wait(&self) {
        loop {
            match self.pidfd.readable().await {
                Ok(mut g) => {
                    if self.has_exited() {
                        break;
                    }
                    g.clear_ready();
                }
                Err(e) => {
                    tracing::warn!("cannot watch QEMU process {}: {e}", self.pid);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    if self.has_exited() || start_time(self.pid).ok() != Some(self.start_time) {
                        break;
                    }
                }
            }
        }
        if let Some(mut c) = self.child.lock().await.take() {
            let _ = c.wait().await;
        }
    }

    /// Wait up to `timeout` for it to exit; returns whether it did.
    pub async fn wait_for(&self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.wait()).await.is_ok()
    }

    /// SIGTERM, then SIGKILL after `grace` unless `graceful`; returns whether it is gone.
    pub async fn terminate(&self, grace: Duration, graceful: bool) -> io::Result<bool> {
        self.signal(libc::SIGTERM)?;
        if self.wait_for(grace).await {
            return Ok(true);
        }
        if graceful {
            return Ok(false);
        }
        self.signal(libc::SIGKILL)?;
        Ok(self.wait_for(Duration::from_secs(10)).await)
    }
}

/// A domain's log: opened for appending, with a header naming the command line.
pub struct Log {
    pub path: PathBuf,
    pub file: File,
    /// Where this start's output begins.
    pub offset: u64,
}

impl Log {
    pub fn open(path: &Path, program: &Path, args: &[String]) -> Result<Self, ProcessError> {
        use std::os::unix::fs::OpenOptionsExt;
        let err = |source| ProcessError::Log {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
            .map_err(err)?;
        let mut line = format!(
            "{} starting up\n{}",
            crate::util::utc_timestamp(),
            shell_quote(&program.display().to_string())
        );
        for a in args {
            line.push(' ');
            line.push_str(&shell_quote(a));
        }
        line.push('\n');
        file.write_all(line.as_bytes()).map_err(err)?;
        let offset = file.seek(SeekFrom::End(0)).map_err(err)?;
        Ok(Self {
            path: path.to_owned(),
            file,
            offset,
        })
    }

    /// What the process wrote since it started (QEMU's own error text), trimmed.
    pub fn output(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = File::open(&self.path)
            && f.seek(SeekFrom::Start(self.offset)).is_ok()
        {
            let _ = f.take(64 * 1024).read_to_string(&mut s);
        }
        s.trim().to_owned()
    }

    /// Append a line of our own (why the process was stopped, say).
    pub fn note(path: &Path, msg: &str) {
        if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(path) {
            let _ = writeln!(f, "{} {msg}", crate::util::utc_timestamp());
        }
    }
}

/// Quote an argument for a shell, for a log a person can paste.
pub fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_=,./:@%+".contains(&b));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields() {
        let line = "1234 (qemu-system-x86 (a) b) S 1 1234 1234 0 -1 4194560 100 0 0 0 \
                    250 75 0 0 20 0 5 0 987654 123456789 1000";
        assert_eq!(parse_start_time(line), Some(987654));
        assert_eq!(parse_cpu_ticks(line), Some((250, 75)));
        assert_eq!(parse_start_time("garbage"), None);
        let own = std::fs::read_to_string("/proc/self/stat").expect("stat");
        assert!(parse_start_time(&own).is_some_and(|t| t > 0));
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("-machine"), "-machine");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[tokio::test]
    async fn spawn_watch_adopt_and_terminate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = Log::open(
            &dir.path().join("x.log"),
            Path::new("/bin/sh"),
            &["-c".into(), "echo hello >&2; exec sleep 30".into()],
        )
        .expect("log");
        let p = Process::spawn(
            Path::new("/bin/sh"),
            &["-c".into(), "echo hello >&2; exec sleep 30".into()],
            &[],
            &log.file,
        )
        .expect("spawn");
        assert!(p.start_time > 0);
        // its own process group
        // SAFETY: getpgid on a pid we own.
        assert_eq!(unsafe { libc::getpgid(p.pid) }, p.pid);
        assert!(
            Process::adopt(p.pid, p.start_time + 1).is_err(),
            "wrong start time"
        );
        let adopted = Process::adopt(p.pid, p.start_time).expect("adopt");
        assert!(!adopted.has_exited());
        let mut tries = 0;
        while log.output().is_empty() && tries < 100 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            tries += 1;
        }
        assert_eq!(log.output(), "hello");
        assert!(
            p.terminate(Duration::from_secs(5), false)
                .await
                .expect("kill")
        );
        assert!(adopted.wait_for(Duration::from_secs(5)).await);
        assert!(Process::adopt(p.pid, p.start_time).is_err(), "gone");
        let text = std::fs::read_to_string(dir.path().join("x.log")).expect("read");
        assert!(
            text.contains("starting up\n/bin/sh -c 'echo hello"),
            "{text}"
        );
    }
}
