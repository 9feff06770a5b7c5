//! The guest agent as quiesce needs it ([`FreezeAgent`] over qemu-ga), and what follows a
//! thaw the agent could not confirm: the domain's warning, kept in the status file, and the
//! background check that clears it.

use std::{
    path::PathBuf,
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{
    super::{monitor::Vm, qga, status::AGENT_HELD_FD, transport::Error, write_status},
    hooks::{Fault, Hooks},
};
use crate::drivers::{
    DomainCtx, DriverEvent,
    quiesce::{self, AgentFailure, FreezeAgent, FreezeStatus},
};

/// qemu-ga of one running guest.
#[derive(Clone)]
pub struct QgaFreeze {
    pub vm: Arc<Vm>,
    pub timeout: Duration,
    pub hooks: Hooks,
    /// Where the status file lives, which records a freeze before it is sent.
    pub runtime: PathBuf,
}

fn failure(e: qga::CallError) -> AgentFailure {
    let timeout = matches!(e.error, Error::Timeout { .. });
    let message = match e.error {
        // the agent's own words
        Error::Qemu { desc, .. } => desc,
        Error::Timeout { command, after } => format!("no answer to {command} within {after:?}"),
        Error::Disconnected => "the connection to the guest agent was lost".into(),
        other => other.to_string(),
    };
    AgentFailure {
        message,
        sent: e.sent,
        timeout,
    }
}

impl QgaFreeze {
    fn agent(&self) -> Result<&qga::Agent, AgentFailure> {
        self.vm.agent.as_ref().ok_or_else(|| AgentFailure {
            message: format!("domain '{}' has no guest agent channel", self.vm.name),
            sent: false,
            timeout: false,
        })
    }
}

#[async_trait]
impl FreezeAgent for QgaFreeze {
    async fn status(&self) -> Result<FreezeStatus, AgentFailure> {
        let v = self
            .agent()?
            .execute_tracked("guest-fsfreeze-status", None, self.timeout)
            .await
            .map_err(failure)?;
        match v.as_str() {
            Some("frozen") => Ok(FreezeStatus::Frozen),
            Some("thawed") => Ok(FreezeStatus::Thawed),
            _ => Err(AgentFailure {
                message: format!("unexpected guest-fsfreeze-status answer {v}"),
                sent: true,
                timeout: false,
            }),
        }
    }

    async fn freeze(&self) -> Result<u32, AgentFailure> {
        const FREEZE: &str = "guest-fsfreeze-freeze";
        let agent = self.agent()?;
        for fault in self.hooks.faults() {
            match fault {
                Fault::PauseAfterFreeze => {
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    agent.arm_fault(FREEZE, qga::Fault::NotifyWritten(tx));
                    let vm = self.vm.clone();
                    tokio::spawn(async move {
                        if rx.await.is_ok() {
                            tracing::warn!("test fault: stopping the guest after the freeze");
                            if let Err(e) = vm.command("stop", None).await {
                                tracing::warn!("test fault: {e}");
                            }
                        }
                    });
                }
                Fault::DropFreezeReply => agent.arm_fault(FREEZE, qga::Fault::DropReply),
                Fault::HangAfterOverlay => {}
            }
        }
        // Recorded first, so that a daemon killed before the thaw (SIGKILL, a crash) is
        // followed by one that checks and thaws: without the record, nobody would.
        if let Err(e) = write_status(&self.vm, self.runtime.clone()).await {
            agent.disarm_fault();
            return Err(AgentFailure {
                message: format!("the freeze could not be recorded in the status file: {e}"),
                sent: false,
                timeout: false,
            });
        }
        let r = agent.execute_tracked(FREEZE, None, self.timeout).await;
        agent.disarm_fault();
        let n = r.map_err(failure)?;
        Ok(n.as_u64().unwrap_or(0) as u32)
    }

    async fn thaw(&self) -> Result<u32, AgentFailure> {
        let n = self
            .agent()?
            .thaw_always(self.timeout)
            .await
            .map_err(failure)?;
        Ok(n.max(0) as u32)
    }
}

/// Record what the agent answers while the filesystems should be frozen (test hooks only;
/// the answer is the agent's, asked like any other command).
pub async fn observe(q: &QgaFreeze, snapshot: &str) {
    if !q.hooks.enabled() {
        return;
    }
    let seen = match q.status().await {
        Ok(FreezeStatus::Frozen) => "frozen".to_owned(),
        Ok(FreezeStatus::Thawed) => "thawed".to_owned(),
        Err(f) => format!("error:{}", f.message.replace(' ', "_")),
    };
    q.hooks.record(&format!("{} {snapshot} {seen}", q.vm.name));
}

/// The guest may still be frozen: show it as the domain's warning; hand QEMU the agent
/// connection that carries the thaw, so that the thaw reaches the guest even if this daemon
/// exits first (QEMU drops what it has not handed to a stopped guest when the last
/// descriptor of a connection closes); keep both facts in the status file (before
/// returning: a daemon about to stop must have written it); then, once the guest runs,
/// take the agent back and check until it confirms a thaw.
pub async fn unconfirmed(q: &QgaFreeze, ctx: &DomainCtx, runtime: PathBuf, why: &str) {
    ctx.report(DriverEvent::Warning(Some(quiesce::warning_text(why))));
    hold_agent(&q.vm).await;
    save(&q.vm, runtime.clone()).await;
    drain_then_watch(q.clone(), ctx.clone(), runtime);
}

/// Hand our agent connection to QEMU (QMP `getfd`), which keeps it open.
async fn hold_agent(vm: &Vm) {
    if vm.agent_held.load(Ordering::SeqCst) {
        return;
    }
    let Some(agent) = vm.agent.as_ref() else {
        return;
    };
    let fd = match agent.hand_over().await {
        Ok(fd) => fd,
        Err(e) => {
            tracing::warn!(
                "domain '{}': agent connection not handed to QEMU: {e}",
                vm.name
            );
            return;
        }
    };
    let args = json!({ "fdname": AGENT_HELD_FD });
    match vm
        .qmp
        .execute_with_fd("getfd", Some(args), fd, vm.timeout)
        .await
    {
        Ok(_) => {
            vm.agent_held.store(true, Ordering::SeqCst);
            tracing::info!(
                "domain '{}': QEMU holds the agent connection with the thaw on it",
                vm.name
            );
        }
        Err(e) => tracing::warn!("domain '{}': getfd: {e}", vm.name),
    }
}

/// Let QEMU close its descriptor of the agent connection (QMP `closefd`).
pub async fn release_agent(vm: &Vm) {
    if !vm.agent_held.load(Ordering::SeqCst) {
        return;
    }
    match vm
        .command("closefd", Some(json!({ "fdname": AGENT_HELD_FD })))
        .await
    {
        Ok(_) => {
            vm.agent_held.store(false, Ordering::SeqCst);
            tracing::info!("domain '{}': QEMU let go of the agent connection", vm.name);
        }
        Err(e) => tracing::warn!("domain '{}': {e}", vm.name),
    }
}

/// Start the background check for a guest whose thaw is unconfirmed.
pub fn watch(q: &QgaFreeze, ctx: &DomainCtx, runtime: PathBuf) {
    let agent = Arc::new(q.clone());
    let alive_vm = Arc::downgrade(&q.vm);
    let (report_vm, report_ctx) = (Arc::downgrade(&q.vm), ctx.clone());
    quiesce::watch_thaw(
        agent,
        q.vm.freeze.clone(),
        format!("domain '{}'", q.vm.name),
        Box::new(move || alive_vm.upgrade().is_some_and(|vm| !*vm.gone().borrow())),
        Box::new(move |w| {
            report_ctx.report(DriverEvent::Warning(w.clone()));
            if let Some(vm) = report_vm.upgrade() {
                let runtime = runtime.clone();
                tokio::spawn(async move {
                    if w.is_none() {
                        release_agent(&vm).await;
                    }
                    save(&vm, runtime).await;
                });
            }
        }),
    );
}

/// While QEMU holds the agent connection (here, or as a restarted daemon finds it), no new
/// connection reaches the agent. Once the guest has run for a moment (time to read what
/// was queued for it), let QEMU close it, then check the thaw as usual.
pub fn drain_then_watch(q: QgaFreeze, ctx: DomainCtx, runtime: PathBuf) {
    tokio::spawn(async move {
        let mut running_since: Option<Instant> = None;
        while q.vm.agent_held.load(Ordering::SeqCst) && !*q.vm.gone().borrow() {
            let running =
                q.vm.command("query-status", None)
                    .await
                    .ok()
                    .and_then(|s| s.get("running").and_then(Value::as_bool))
                    .unwrap_or(false);
            running_since = if running {
                running_since.or(Some(Instant::now()))
            } else {
                None
            };
            if running_since.is_some_and(|t| t.elapsed() >= DRAIN_TIME) {
                release_agent(&q.vm).await;
                save(&q.vm, runtime.clone()).await;
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        if q.vm.freeze.unconfirmed() && !*q.vm.gone().borrow() {
            watch(&q, &ctx, runtime);
        }
    });
}

/// How long a running guest gets to read what was queued on a held agent connection.
const DRAIN_TIME: Duration = Duration::from_secs(1);

/// Write the status file (the freeze state changed); errors are logged.
pub async fn save(vm: &Vm, runtime: PathBuf) {
    if let Err(e) = write_status(vm, runtime).await {
        tracing::error!("domain '{}': status file not written: {e}", vm.name);
    }
}
