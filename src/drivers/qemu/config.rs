//! Settings of the QEMU driver (the `[qemu]` section of the daemon's configuration).

use std::{path::PathBuf, time::Duration};

use serde::Deserialize;

/// The environment variable that overrides [`QemuConfig::kvm`], for tests and odd hosts.
pub const ACCEL_ENV: &str = "VIRTBUS_QEMU_ACCEL";

/// Whether `kvm` domains may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KvmMode {
    /// Probe `/dev/kvm` by running a tiny guest.
    #[default]
    Auto,
    /// Trust `/dev/kvm` without probing.
    Yes,
    /// Never use KVM.
    No,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QemuConfig {
    /// Directories searched for `qemu-system-<arch>`; empty: `PATH`, then /usr/bin,
    /// /usr/local/bin, /usr/libexec.
    pub emulator_dirs: Vec<PathBuf>,
    /// KVM use; `VIRTBUS_QEMU_ACCEL=tcg` forces `no` and `=kvm` forces `yes`.
    pub kvm: KvmMode,
    /// Seconds between SIGTERM and SIGKILL when destroying a guest.
    pub destroy_grace_secs: u64,
    /// Seconds a QMP command may take before it is given up (the connection stays usable).
    pub monitor_timeout_secs: u64,
    /// Seconds a guest-agent command may take; also each step of a quiesced snapshot.
    pub agent_timeout_secs: u64,
    /// Where per-domain QEMU logs go; default `<runtime dir>/qemu/log`.
    pub log_dir: Option<PathBuf>,
}

impl Default for QemuConfig {
    fn default() -> Self {
        Self {
            emulator_dirs: Vec::new(),
            kvm: KvmMode::Auto,
            destroy_grace_secs: 10,
            monitor_timeout_secs: 30,
            agent_timeout_secs: 5,
            log_dir: None,
        }
    }
}

impl QemuConfig {
    /// The KVM mode after the environment override; an unknown value is reported and
    /// ignored.
    pub fn kvm_mode(&self) -> KvmMode {
        match std::env::var(ACCEL_ENV).as_deref() {
            Ok("tcg") => KvmMode::No,
            Ok("kvm") => KvmMode::Yes,
            Ok("") | Err(_) => self.kvm,
            Ok(other) => {
                tracing::warn!("{ACCEL_ENV}={other} is neither 'tcg' nor 'kvm'; ignored");
                self.kvm
            }
        }
    }

    pub fn grace(&self) -> Duration {
        Duration::from_secs(self.destroy_grace_secs)
    }

    pub fn monitor_timeout(&self) -> Duration {
        Duration::from_secs(self.monitor_timeout_secs.max(1))
    }

    pub fn agent_timeout(&self) -> Duration {
        Duration::from_secs(self.agent_timeout_secs.max(1))
    }
}
