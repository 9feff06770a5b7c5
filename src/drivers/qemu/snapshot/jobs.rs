//! QMP jobs (`snapshot-save`, `snapshot-load`, `snapshot-delete`, and the block jobs
//! `block-commit` and `block-stream`, which a delete of external snapshots uses): started, followed through
//! `JOB_STATUS_CHANGE` and `query-jobs` (whose progress becomes the domain's `JobProgress`),
//! dismissed. Waiting holds no lock but the domain's job lock, which the core already holds.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::super::{monitor::Vm, status_from_qmp};
use crate::{
    drivers::{DomainCtx, DriverError, DriverEvent, DriverResult},
    model::state::DomainState,
};

/// How often progress is read while nothing else wakes the wait.
const PROGRESS_POLL: Duration = Duration::from_millis(100);

/// The longest a snapshot job may take (a large guest's memory goes to disk).
pub const JOB_LIMIT: Duration = Duration::from_secs(1800);

fn fresh_id(command: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(1);
    format!("vb-{command}-{}", N.fetch_add(1, Ordering::Relaxed))
}

fn running(status: &Value) -> bool {
    status
        .get("running")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// Run `command` (with `args`, a job id added) to its end. The STOP and RESUME it causes are
/// not reported; a guest whose run state the job changed otherwise (an I/O error meanwhile)
/// is reported afterwards.
pub async fn run(
    vm: &Vm,
    ctx: &DomainCtx,
    command: &str,
    args: Map<String, Value>,
) -> DriverResult<()> {
    run_job(vm, ctx, command, args, false).await
}

/// Run block job `command` (`block-commit`, `block-stream`) to its end, kept until dismissed
/// (`auto-dismiss` off) so that its outcome is read; an active commit is completed (the disk
/// pivots onto the base) when it is ready.
pub async fn run_block(
    vm: &Vm,
    ctx: &DomainCtx,
    command: &str,
    mut args: Map<String, Value>,
) -> DriverResult<()> {
    args.insert("auto-dismiss".into(), json!(false));
    run_job(vm, ctx, command, args, true).await
}

async fn run_job(
    vm: &Vm,
    ctx: &DomainCtx,
    command: &str,
    mut args: Map<String, Value>,
    complete_when_ready: bool,
) -> DriverResult<()> {
    let id = fresh_id(command);
    args.insert("job-id".into(), json!(id));
    let before = vm.command("query-status", None).await?;
    let mut changes = vm.job_events();
    changes.borrow_and_update();
    vm.quiet_run_state(true);
    let result = follow(
        vm,
        ctx,
        command,
        &id,
        Value::Object(args),
        &mut changes,
        complete_when_ready,
    )
    .await;
    vm.barrier().await;
    vm.quiet_run_state(false);
    if let Ok(after) = vm.command("query-status", None).await
        && running(&before) != running(&after)
    {
        let status = status_from_qmp(&after);
        tracing::info!(
            "domain '{}': {command} left the guest {}",
            vm.name,
            status.state
        );
        ctx.report(match status.state {
            DomainState::Running => DriverEvent::Resumed,
            _ => DriverEvent::Paused(status.reason),
        });
    }
    result
}

async fn follow(
    vm: &Vm,
    ctx: &DomainCtx,
    command: &str,
    id: &str,
    args: Value,
    changes: &mut tokio::sync::watch::Receiver<u64>,
    complete_when_ready: bool,
) -> DriverResult<()> {
    vm.command(command, Some(args)).await?;
    let deadline = Instant::now() + JOB_LIMIT;
    let mut gone = vm.gone();
    let mut shown = None;
    let mut completed = false;
    loop {
        let jobs = vm.command("query-jobs", None).await?;
        let Some(job) = jobs
            .as_array()
            .into_iter()
            .flatten()
            .find(|j| j.get("id").and_then(Value::as_str) == Some(id))
        else {
            return Err(DriverError::Failed(format!(
                "domain '{}': {command} job {id} vanished",
                vm.name
            )));
        };
        let num = |k: &str| job.get(k).and_then(Value::as_f64).unwrap_or(0.0);
        let total = num("total-progress");
        if total > 0.0 {
            let p = (num("current-progress") / total).clamp(0.0, 1.0);
            if shown != Some(p) {
                shown = Some(p);
                ctx.report(DriverEvent::JobProgress(p));
            }
        }
        let status = job.get("status").and_then(Value::as_str);
        if complete_when_ready && !completed && status == Some("ready") {
            // the active layer is in sync with its base: switch the disk onto it
            vm.command("job-complete", Some(json!({ "id": id })))
                .await?;
            completed = true;
            continue;
        }
        if status == Some("concluded") {
            let error = job.get("error").and_then(Value::as_str).map(str::to_owned);
            if let Err(e) = vm.command("job-dismiss", Some(json!({ "id": id }))).await {
                tracing::warn!("domain '{}': {e}", vm.name);
            }
            return match error {
                None => Ok(()),
                Some(e) => Err(DriverError::Failed(format!(
                    "domain '{}': {command}: {e}",
                    vm.name
                ))),
            };
        }
        if Instant::now() >= deadline {
            let _ = vm.command("job-cancel", Some(json!({ "id": id }))).await;
            return Err(DriverError::Timeout(format!(
                "domain '{}': {command} did not finish within {JOB_LIMIT:?}",
                vm.name
            )));
        }
        tokio::select! {
            _ = changes.changed() => {}
            _ = tokio::time::sleep(PROGRESS_POLL) => {}
            _ = gone.wait_for(|g| *g) => {
                return Err(DriverError::Failed(format!(
                    "domain '{}': QEMU exited during {command}",
                    vm.name
                )));
            }
        }
    }
}
