//! The guest agent as quiesce needs it ([`FreezeAgent`] over qemu-ga), and what follows a
//! thaw the agent could not confirm: the domain's warning, kept in the status file, and the
//! background check that clears it.

use std::{path::PathBuf, sync::Arc, time::Duration};

use async_trait::async_trait;

use super::{
    super::{monitor::Vm, qga, status_record, transport::Error},
    hooks::{Fault, Hooks},
};
use crate::drivers::{
    DomainCtx, DriverEvent,
    quiesce::{self, AgentFailure, FreezeAgent, FreezeStatus},
};

/// qemu-ga of one running guest.
pub struct QgaFreeze {
    pub vm: Arc<Vm>,
    pub timeout: Duration,
    pub hooks: Hooks,
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
            }
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

/// The guest may still be frozen: show it as the domain's warning, keep it in the status
/// file (before returning: a daemon about to stop must have written it), and check in the
/// background until the agent confirms a thaw.
pub async fn unconfirmed(q: &QgaFreeze, ctx: &DomainCtx, runtime: PathBuf, why: &str) {
    ctx.report(DriverEvent::Warning(Some(quiesce::warning_text(why))));
    let st = status_record(&q.vm);
    let rt = runtime.clone();
    match tokio::task::spawn_blocking(move || st.save(&rt)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!("{e}"),
        Err(e) => tracing::error!("status file not written: {e}"),
    }
    watch(q, ctx, runtime);
}

/// Start the background check for a guest whose thaw is unconfirmed.
pub fn watch(q: &QgaFreeze, ctx: &DomainCtx, runtime: PathBuf) {
    let agent = Arc::new(QgaFreeze {
        vm: q.vm.clone(),
        timeout: q.timeout,
        hooks: q.hooks.clone(),
    });
    let alive_vm = Arc::downgrade(&q.vm);
    let (report_vm, report_ctx) = (Arc::downgrade(&q.vm), ctx.clone());
    quiesce::watch_thaw(
        agent,
        q.vm.freeze.clone(),
        format!("domain '{}'", q.vm.name),
        Box::new(move || alive_vm.upgrade().is_some_and(|vm| !*vm.gone().borrow())),
        Box::new(move |w| {
            report_ctx.report(DriverEvent::Warning(w));
            if let Some(vm) = report_vm.upgrade() {
                save(&vm, runtime.clone());
            }
        }),
    );
}

/// Write the status file in the background (the freeze state changed).
fn save(vm: &Vm, runtime: PathBuf) {
    let st = status_record(vm);
    tokio::task::spawn_blocking(move || {
        if let Err(e) = st.save(&runtime) {
            tracing::error!("{e}");
        }
    });
}
