//! The per-guest TPM emulator: `swtpm` with its state under the daemon's state directory
//! (`<state>/swtpm/<uuid>/tpm2`, as libvirt's `/var/lib/libvirt/swtpm/<uuid>/tpm2`), created
//! by `swtpm_setup` at the first start, and its control socket in the domain's runtime
//! directory.
//!
//! swtpm runs as a daemon of its own (`--daemon`) so that a daemon crash leaves it serving
//! the guest; `--terminate` ends it when QEMU's connection closes, so it never outlives its
//! guest. Its pid and start time are recorded under the runtime directory: a restarted
//! daemon that adopts the QEMU leaves the swtpm alone (QEMU still holds its connection), a
//! new start stops a stale one first, so a guest never gets two.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{cmdline::tpm::socket, process};
use crate::model::{
    DomainDef,
    devices::{PcrBank, TpmBackend, TpmEmulator, TpmVersion},
};

/// A file in a running domain's runtime directory: remove its TPM state when it stops
/// (it was undefined while running, without `keep-tpm`).
pub const REMOVE_STATE: &str = "remove-tpm-state";

/// How long swtpm_setup may take to manufacture a TPM (keys and certificates).
const SETUP_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a started swtpm may take to create its socket.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the driver keeps TPM state and what it records about running emulators.
#[derive(Debug, Clone)]
pub struct Swtpm {
    /// `<state>/swtpm`: one directory per domain UUID.
    pub state_root: PathBuf,
    /// `<runtime>/qemu/swtpm`: `<uuid>.json` per running emulator.
    pub records: PathBuf,
    pub log_dir: PathBuf,
}

/// A running swtpm, as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    pid: i32,
    start_time: u64,
}

/// The emulated TPM of `def`, if it has one.
pub fn emulator(def: &DomainDef) -> Option<&TpmEmulator> {
    def.devices.tpms.iter().find_map(|t| match &t.backend {
        TpmBackend::Emulator(e) => Some(e),
        TpmBackend::Passthrough { .. } => None,
    })
}

fn version(em: &TpmEmulator) -> TpmVersion {
    em.version.unwrap_or(TpmVersion::V2_0)
}

impl Swtpm {
    /// The directory holding all TPM state of the domain `uuid`.
    pub fn domain_state(&self, uuid: &Uuid) -> PathBuf {
        self.state_root.join(uuid.hyphenated().to_string())
    }

    /// The state directory of one TPM version (`tpm2` or `tpm1.2`).
    pub fn state_dir(&self, uuid: &Uuid, v: TpmVersion) -> PathBuf {
        self.domain_state(uuid).join(match v {
            TpmVersion::V2_0 => "tpm2",
            TpmVersion::V1_2 => "tpm1.2",
        })
    }

    fn record_path(&self, uuid: &Uuid) -> PathBuf {
        self.records.join(format!("{}.json", uuid.simple()))
    }

    /// Start the swtpm of `def` (manufacturing its TPM first if it has no state yet) with
    /// its socket in the domain's runtime directory `dir`. Nothing for a domain without an
    /// emulated TPM.
    pub async fn start(&self, def: &DomainDef, dir: &Path) -> Result<(), String> {
        let Some(em) = emulator(def) else {
            return Ok(());
        };
        self.stop(&def.uuid);
        let v = version(em);
        let state = self.state_dir(&def.uuid, v);
        mkdir_private(&state)?;
        mkdir_private(&self.records)?;
        let log = self.log_dir.join(format!("{}-swtpm.log", def.name));
        let permall = match v {
            TpmVersion::V2_0 => "tpm2-00.permall",
            TpmVersion::V1_2 => "tpm-00.permall",
        };
        if !state.join(permall).exists() {
            self.manufacture(def, em, &state, &log).await?;
        }
        let sock = socket(dir);
        let pidfile = dir.join("swtpm.pid");
        let _ = std::fs::remove_file(&sock);
        let _ = std::fs::remove_file(&pidfile);
        let mut cmd = tokio::process::Command::new("swtpm");
        cmd.arg("socket")
            .arg("--ctrl")
            .arg(format!("type=unixio,path={},mode=0600", sock.display()))
            .arg("--tpmstate")
            .arg(format!("dir={},mode=0600", state.display()))
            .arg("--log")
            .arg(format!("file={}", log.display()))
            .arg("--pid")
            .arg(format!("file={}", pidfile.display()))
            .args(["--terminate", "--daemon"]);
        if v == TpmVersion::V2_0 {
            cmd.arg("--tpm2");
        }
        let out = cmd
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(|e| format!("cannot run swtpm (package swtpm): {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "swtpm failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                log_tail(&log)
            ));
        }
        let t = Instant::now();
        let pid = loop {
            let pid = std::fs::read_to_string(&pidfile)
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok());
            if let Some(pid) = pid
                && sock.exists()
            {
                break pid;
            }
            if t.elapsed() > READY_TIMEOUT {
                return Err(format!(
                    "swtpm did not create {} within {READY_TIMEOUT:?}{}",
                    sock.display(),
                    log_tail(&log)
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let rec = Record {
            pid,
            start_time: process::start_time(pid).map_err(|e| format!("swtpm {pid}: {e}"))?,
        };
        let text = serde_json::to_vec(&rec).map_err(|e| e.to_string())?;
        std::fs::write(self.record_path(&def.uuid), text)
            .map_err(|e| format!("cannot record swtpm {pid}: {e}"))?;
        tracing::debug!("domain '{}': swtpm pid {pid}", def.name);
        Ok(())
    }

    /// Run swtpm_setup as libvirt does: an endorsement key with its certificate, a platform
    /// certificate, the NVRAM locked. A failed manufacture leaves no state behind.
    async fn manufacture(
        &self,
        def: &DomainDef,
        em: &TpmEmulator,
        state: &Path,
        log: &Path,
    ) -> Result<(), String> {
        let mut cmd = tokio::process::Command::new("swtpm_setup");
        if version(em) == TpmVersion::V2_0 {
            cmd.arg("--tpm2");
        }
        cmd.arg("--tpmstate")
            .arg(state)
            .arg("--vmid")
            .arg(format!("{}:{}", def.name, def.uuid.hyphenated()))
            .arg("--logfile")
            .arg(log)
            .args([
                "--createek",
                "--create-ek-cert",
                "--create-platform-cert",
                "--lock-nvram",
                "--not-overwrite",
            ]);
        if let Some(banks) = &em.active_pcr_banks {
            let list: Vec<&str> = banks.iter().map(|b: &PcrBank| b.as_str()).collect();
            cmd.arg("--pcr-banks").arg(list.join(","));
        }
        cmd.stdin(std::process::Stdio::null()).kill_on_drop(true);
        let out = match tokio::time::timeout(SETUP_TIMEOUT, cmd.output()).await {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => {
                let _ = std::fs::remove_dir_all(state);
                return Err(format!("cannot run swtpm_setup (package swtpm-tools): {e}"));
            }
            Err(_) => {
                let _ = std::fs::remove_dir_all(state);
                return Err(format!(
                    "swtpm_setup did not finish within {SETUP_TIMEOUT:?}"
                ));
            }
        };
        if !out.status.success() {
            let _ = std::fs::remove_dir_all(state);
            return Err(format!(
                "swtpm_setup failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                log_tail(log)
            ));
        }
        Ok(())
    }

    /// Stop the recorded swtpm of `uuid`, if it still runs and is the one recorded, and
    /// forget it. It normally ends by itself when QEMU goes.
    pub fn stop(&self, uuid: &Uuid) {
        let path = self.record_path(uuid);
        let Some(rec) = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Record>(&b).ok())
        else {
            return;
        };
        if process::start_time(rec.pid).ok() == Some(rec.start_time) {
            // SAFETY: a signal to the process recorded, checked by its start time.
            unsafe { libc::kill(rec.pid, libc::SIGTERM) };
        }
        let _ = std::fs::remove_file(path);
    }

    /// The pid of the recorded swtpm of `uuid` while it runs.
    pub fn running_pid(&self, uuid: &Uuid) -> Option<i32> {
        let rec: Record =
            serde_json::from_slice(&std::fs::read(self.record_path(uuid)).ok()?).ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", rec.pid)).ok()?;
        let zombie = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            == Some("Z");
        (process::parse_start_time(&stat) == Some(rec.start_time) && !zombie).then_some(rec.pid)
    }

    /// Remove all TPM state of the domain `uuid` (undefine without `keep-tpm`).
    pub fn remove_state(&self, uuid: &Uuid) -> Result<(), String> {
        let d = self.domain_state(uuid);
        match std::fs::remove_dir_all(&d) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("cannot remove TPM state {}: {e}", d.display())),
        }
    }
}

fn mkdir_private(d: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(d)
        .map_err(|e| format!("cannot create {}: {e}", d.display()))
}

/// The last lines of a log, to explain a failure.
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    if lines.is_empty() {
        return String::new();
    }
    let mut l = lines;
    l.reverse();
    format!("; {}: {}", log.display(), l.join(" | "))
}

/// libvirt's QEMU defaults for `<tpm>`: model `tpm-tis` on x86, and an emulator's version
/// 2.0 for `tpm-crb` (which only does 2.0), else 1.2.
pub fn post_parse(def: &mut DomainDef) {
    use crate::model::devices::TpmModel;
    for t in &mut def.devices.tpms {
        let model = *t.model.get_or_insert(TpmModel::Tis);
        if let TpmBackend::Emulator(em) = &mut t.backend
            && em.version.is_none()
        {
            em.version = Some(match model {
                TpmModel::Crb | TpmModel::Spapr => TpmVersion::V2_0,
                _ => TpmVersion::V1_2,
            });
        }
    }
}
