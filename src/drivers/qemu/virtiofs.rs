//! virtiofsd daemons for `<filesystem><driver type='virtiofs'>`: one per share, started
//! before QEMU (QEMU connects to its socket at start) and stopped once QEMU is gone.
//!
//! Each daemon runs in a process group of its own, like QEMU, so it outlives a daemon
//! restart with its guest. It is recorded as `<alias>-fs.pid` (pid and start time) in the
//! domain's runtime directory, which also survives the restart: whichever virtbus sees the
//! guest end stops the daemons recorded there, checking the start time so that a recycled
//! pid is never signalled. A restarted virtbus starts nothing: the recorded daemons still
//! serve the running QEMU.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use super::cmdline::Virtiofsd;
use super::process::{Log, start_time};

/// How long a daemon gets to create its socket.
const SOCKET_WAIT: Duration = Duration::from_secs(10);

fn pid_file(dir: &Path, alias: &str) -> PathBuf {
    dir.join(format!("{alias}-fs.pid"))
}

/// Start every daemon of `daemons` and wait for its socket. On failure the ones already
/// started are stopped again.
pub async fn start_all(
    daemons: &[Virtiofsd],
    dir: &Path,
    log_dir: &Path,
    domain: &str,
) -> Result<(), String> {
    for d in daemons {
        if let Err(e) = start(d, dir, log_dir, domain).await {
            stop_all(dir);
            return Err(e);
        }
    }
    Ok(())
}

async fn start(d: &Virtiofsd, dir: &Path, log_dir: &Path, domain: &str) -> Result<(), String> {
    let log_path = log_dir.join(format!("{domain}-{}-virtiofsd.log", d.alias));
    let log = Log::open(&log_path, &d.binary, &d.args).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&d.socket);
    let out = log.file.try_clone().map_err(|e| e.to_string())?;
    let mut cmd = tokio::process::Command::new(&d.binary);
    cmd.args(&d.args)
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(log.file)
        .kill_on_drop(false)
        // away from signals meant for the daemon's group, as QEMU
        .process_group(0);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", d.binary.display()))?;
    let pid = child.id().map(|p| p as i32).unwrap_or(0);
    let started = start_time(pid).unwrap_or(0);
    std::fs::write(pid_file(dir, &d.alias), format!("{pid} {started}\n"))
        .map_err(|e| format!("cannot record virtiofsd {pid}: {e}"))?;
    tracing::debug!("virtiofsd for {} of '{domain}': pid {pid}", d.alias);
    let deadline = Instant::now() + SOCKET_WAIT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let _ = std::fs::remove_file(pid_file(dir, &d.alias));
            return Err(format!(
                "virtiofsd for filesystem {} exited ({status}) before QEMU started; see {}",
                d.alias,
                log_path.display()
            ));
        }
        if d.socket.exists() {
            // the child handle goes; tokio reaps the process when it ends
            return Ok(());
        }
        if Instant::now() >= deadline {
            let _ = child.start_kill();
            let _ = std::fs::remove_file(pid_file(dir, &d.alias));
            return Err(format!(
                "virtiofsd for filesystem {} made no socket {} within {SOCKET_WAIT:?}",
                d.alias,
                d.socket.display()
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Stop every daemon recorded in `dir` that is still the process recorded.
pub fn stop_all(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let is_pid = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with("-fs.pid"));
        if !is_pid {
            continue;
        }
        if let Some((pid, started)) = std::fs::read_to_string(&path)
            .ok()
            .as_deref()
            .and_then(parse_record)
            && start_time(pid).ok() == Some(started)
        {
            // SAFETY: a plain signal to a process whose identity was just checked.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            tracing::debug!("virtiofsd {pid} stopped");
        }
        let _ = std::fs::remove_file(&path);
    }
}

/// Pids of the daemons recorded in `dir` that still run (for tests and diagnostics).
pub fn running(dir: &Path) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with("-fs.pid"))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter_map(|s| parse_record(&s))
        .filter(|(pid, started)| start_time(*pid).ok() == Some(*started))
        .map(|(pid, _)| pid)
        .collect()
}

fn parse_record(s: &str) -> Option<(i32, u64)> {
    let mut it = s.split_whitespace();
    let pid = it.next()?.parse().ok()?;
    let started = it.next()?.parse().ok()?;
    (pid > 0).then_some((pid, started))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_parse_and_a_gone_process_is_not_signalled() {
        assert_eq!(parse_record("123 456\n"), Some((123, 456)));
        assert_eq!(parse_record("0 1"), None);
        assert_eq!(parse_record("x"), None);
        let dir = tempfile::tempdir().unwrap();
        // our own pid with a wrong start time: must be left alone
        let me = std::process::id() as i32;
        std::fs::write(dir.path().join("fs0-fs.pid"), format!("{me} 1\n")).unwrap();
        assert!(running(dir.path()).is_empty());
        stop_all(dir.path());
        assert!(!dir.path().join("fs0-fs.pid").exists());
    }
}
