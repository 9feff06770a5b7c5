//! Test hooks: faults a test needs at an exact moment of a quiesced snapshot, which a real
//! guest produces only by chance, and a record of what the agent reported during the
//! snapshot. Off unless the environment variable [`HOOKS_ENV`] names a directory, so a
//! production daemon never acts on them.
//!
//! - `<dir>/faults`, read at each quiesced snapshot, one fault per line:
//!   `pause-after-freeze` (stop the guest's CPUs right after the freeze is written, so the
//!   agent cannot answer and the freeze stays queued) or `drop-freeze-reply` (lose the agent
//!   connection when the freeze's reply arrives, as if it broke just before).
//! - `hang-after-overlay` (also read at each external snapshot and revert to one): stop for
//!   good right after the new overlay files are made, recording `<domain> <snapshot>
//!   overlay-made`, so that a test can kill the daemon there.
//! - `<dir>/observed`: one line per quiesced snapshot, `<domain> <snapshot> <status>`, with
//!   the `guest-fsfreeze-status` the agent really answered between freeze and thaw.

use std::{io::Write as _, path::PathBuf};

/// The environment variable that enables the hooks.
pub const HOOKS_ENV: &str = "VIRTBUS_QEMU_TEST_HOOKS";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    PauseAfterFreeze,
    DropFreezeReply,
    HangAfterOverlay,
}

#[derive(Debug, Clone, Default)]
pub struct Hooks {
    dir: Option<PathBuf>,
}

impl Hooks {
    pub fn from_env() -> Self {
        let dir = std::env::var_os(HOOKS_ENV)
            .filter(|d| !d.is_empty())
            .map(PathBuf::from);
        if let Some(d) = &dir {
            tracing::warn!("QEMU test hooks enabled ({HOOKS_ENV}={})", d.display());
        }
        Self { dir }
    }

    pub fn enabled(&self) -> bool {
        self.dir.is_some()
    }

    /// The faults armed now.
    pub fn faults(&self) -> Vec<Fault> {
        let Some(d) = &self.dir else {
            return Vec::new();
        };
        std::fs::read_to_string(d.join("faults"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| match l.trim() {
                "pause-after-freeze" => Some(Fault::PauseAfterFreeze),
                "drop-freeze-reply" => Some(Fault::DropFreezeReply),
                "hang-after-overlay" => Some(Fault::HangAfterOverlay),
                _ => None,
            })
            .collect()
    }

    /// With `hang-after-overlay` armed: record `<domain> <snapshot> overlay-made` and never
    /// return (the test kills the daemon).
    pub async fn after_overlay(&self, domain: &str, snapshot: &str) {
        if !self.faults().contains(&Fault::HangAfterOverlay) {
            return;
        }
        self.record(&format!("{domain} {snapshot} overlay-made"));
        std::future::pending::<()>().await;
    }

    /// Append an observation.
    pub fn record(&self, line: &str) {
        let Some(d) = &self.dir else {
            return;
        };
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("observed"));
        if let Err(e) = f.and_then(|mut f| writeln!(f, "{line}")) {
            tracing::warn!("test hooks: cannot record an observation: {e}");
        }
    }
}
