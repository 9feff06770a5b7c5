//! Starting a container's init anew in place (reboot, reset). The controller stays, and so
//! does the console's host pty: the live XML's `<console><source path>` is unchanged and an
//! open console session keeps receiving from the new init. The daemon asks with SIGUSR1 and
//! learns how it went from the controller's record (`controller.json`), which the controller
//! replaces atomically with each boot.

use std::{path::Path, time::Duration};

use super::controller::State;
use crate::drivers::qemu::process::Process;

/// How often the record is read while waiting for the controller's word.
const POLL: Duration = Duration::from_millis(10);

/// One boot of a container's init: its host pid and start time (to watch it through a
/// pidfd), and the boot's number in the controller's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Boot {
    pub pid: i32,
    pub start: u64,
    pub number: u32,
}

impl From<&State> for Boot {
    fn from(s: &State) -> Self {
        Boot {
            pid: s.init_pid,
            start: s.init_start,
            number: s.boot,
        }
    }
}

/// What followed the end of an init while its controller lived on.
#[derive(Debug)]
pub enum AfterInit {
    /// The controller started the init anew (a reset the daemon asked for).
    Booted(Boot),
    /// The init rebooted: the controller holds the console and waits for SIGUSR1 or SIGTERM.
    RebootWait,
    /// The container is ending; the controller exits.
    Ending,
}

fn record(dir: &Path) -> Option<State> {
    State::load(&dir.join("controller.json"))
}

/// Wait for the controller in `dir` to tell what follows the end of boot `boot`'s init.
pub async fn after_init(dir: &Path, controller: &Process, boot: u32) -> AfterInit {
    loop {
        if controller.has_exited() {
            return AfterInit::Ending;
        }
        if let Some(st) = record(dir) {
            if st.boot > boot && st.exit.is_none() {
                return AfterInit::Booted(Boot::from(&st));
            }
            match st.exit.as_deref() {
                Some("reboot") if st.boot == boot => return AfterInit::RebootWait,
                Some(_) => return AfterInit::Ending,
                None => {}
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Wait for a boot after `boot`: `None` when the controller gives up (its record says the
/// restart failed, or it exits) or `within` passes.
pub async fn next_boot(
    dir: &Path,
    controller: &Process,
    boot: u32,
    within: Duration,
) -> Option<Boot> {
    let wait = async {
        loop {
            if controller.has_exited() {
                return None;
            }
            if let Some(st) = record(dir) {
                if st.boot > boot && st.exit.is_none() {
                    return Some(Boot::from(&st));
                }
                if st.exit.as_deref().is_some_and(|e| e != "reboot") {
                    return None;
                }
            }
            tokio::time::sleep(POLL).await;
        }
    };
    tokio::time::timeout(within, wait).await.ok().flatten()
}

/// Ask the controller for a new boot of the init (ending the running one if any) and wait
/// for it.
pub async fn restart(
    dir: &Path,
    controller: &Process,
    boot: u32,
    within: Duration,
) -> Result<Boot, String> {
    controller
        .signal(libc::SIGUSR1)
        .map_err(|e| format!("cannot signal the controller: {e}"))?;
    next_boot(dir, controller, boot, within)
        .await
        .ok_or_else(|| "the controller could not start the init again".to_owned())
}
