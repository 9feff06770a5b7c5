//! Backup jobs on a running QEMU, as libvirt's QEMU driver runs them.
//!
//! Each disk's store is created with `blockdev-create` (unless reused) and opened with
//! `blockdev-add`; one `transaction` then starts a `blockdev-backup` per disk. Push mode
//! copies the disk (`sync=full`, or `sync=incremental` with the checkpoint's bitmap); pull
//! mode (`sync=none`) makes the store a scratch image over the live disk that keeps what the
//! guest overwrites (copy-before-write fleecing), exported by QEMU's NBD server. The job ends
//! when every copy has ended (`BLOCK_JOB_COMPLETED` / `BLOCK_JOB_CANCELLED`): the server is
//! stopped, the nodes closed, files libvirt would delete deleted, and the end reported with
//! libvirt's statistics.

use std::{sync::Arc, time::Duration};

use serde_json::{Map, Value, json};

use super::{
    block::fresh,
    monitor::Vm,
    snapshot::{jobs, nodes::top_node},
    transport::Event,
};
use crate::{
    drivers::{
        DomainCtx, DriverError, DriverEvent, DriverResult,
        backup::{BackupEnd, BackupPlan, BackupProgress, NbdServer, PlanDisk},
    },
    model::devices::DiskFormat,
    util::lock,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CopyState {
    Running,
    Completed,
    Failed,
    Cancelled,
}

/// One disk's copy.
#[derive(Debug, Clone)]
struct Copy {
    job: String,
    /// The store's format and file nodes.
    nodes: [String; 2],
    store: String,
    block: bool,
    state: CopyState,
    cur: u64,
    end: u64,
}

#[derive(Debug, Clone)]
struct Running {
    pull: bool,
    reuse: bool,
    copies: Vec<Copy>,
    /// The first error a copy ended with.
    error: Option<String>,
    ending: bool,
}

/// The backup job of one running QEMU, if any.
#[derive(Debug, Default)]
pub struct BackupState {
    running: std::sync::Mutex<Option<Running>>,
}

/// A store's file node options (`file` or `host_device`).
fn protocol(d: &PlanDisk) -> Value {
    json!({
        "driver": if d.block { "host_device" } else { "file" },
        "filename": d.store,
    })
}

/// Create, open and (for pull) back with the live disk the store of `d`; its nodes.
async fn prepare_store(
    vm: &Vm,
    ctx: &DomainCtx,
    d: &PlanDisk,
    top: &str,
    size: u64,
    pull: bool,
    reuse: bool,
) -> DriverResult<[String; 2]> {
    let n = fresh();
    let fmt_node = format!("vb-backup-{}-{n}", d.target);
    let file_node = format!("{fmt_node}-file");
    if !reuse && !d.block {
        let mut create = Map::new();
        let mut opts = protocol(d);
        opts["size"] = json!(if d.format == DiskFormat::Raw { size } else { 0 });
        create.insert("options".into(), opts);
        jobs::run(vm, ctx, "blockdev-create", create).await?;
    }
    let mut file = protocol(d);
    file["node-name"] = json!(file_node);
    vm.command("blockdev-add", Some(file)).await?;
    let nodes = [fmt_node.clone(), file_node.clone()];
    if !reuse && d.format != DiskFormat::Raw {
        let mut create = Map::new();
        create.insert(
            "options".into(),
            json!({"driver": d.format.as_str(), "file": file_node, "size": size}),
        );
        if let Err(e) = jobs::run(vm, ctx, "blockdev-create", create).await {
            close(vm, &nodes).await;
            return Err(e);
        }
    }
    let mut fmt = json!({"driver": d.format.as_str(), "file": file_node, "node-name": fmt_node});
    if d.format == DiskFormat::Qcow2 {
        // a pull backup's scratch image reads what the guest has not overwritten from the
        // disk; a push target stands alone
        fmt["backing"] = if pull { json!(top) } else { Value::Null };
    }
    if let Err(e) = vm.command("blockdev-add", Some(fmt)).await {
        close(vm, &nodes[1..]).await;
        return Err(e);
    }
    Ok(nodes)
}

/// Close nodes (format before file), retrying while an export still lets go of them.
async fn close(vm: &Vm, nodes: &[String]) {
    for n in nodes {
        for attempt in 0..50 {
            match vm
                .command("blockdev-del", Some(json!({ "node-name": n })))
                .await
            {
                Ok(_) => break,
                Err(e) if attempt == 49 => tracing::warn!("domain '{}': {e}", vm.name),
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }
}

/// Start the backup `plan` describes.
pub async fn begin(vm: &Arc<Vm>, ctx: &DomainCtx, plan: &BackupPlan) -> DriverResult<()> {
    if lock(&vm.backup.running).is_some() {
        return Err(DriverError::InvalidState(
            "another backup job is already running".into(),
        ));
    }
    let live = vm.live();
    let blocks = vm.command("query-block", None).await?;
    let mut prepared: Vec<(PlanDisk, String, [String; 2])> = Vec::new();
    let undo = |prepared: Vec<(PlanDisk, String, [String; 2])>| async move {
        for (d, _, nodes) in prepared {
            close(vm, &nodes).await;
            if !plan.reuse && !d.block {
                let _ = std::fs::remove_file(&d.store);
            }
        }
    };
    for d in &plan.disks {
        let alias = live
            .devices
            .disks
            .iter()
            .find(|x| x.target_dev == d.target)
            .and_then(|x| x.info.alias.clone())
            .unwrap_or_default();
        let Some(top) = top_node(&blocks, &alias) else {
            undo(prepared).await;
            return Err(DriverError::InvalidArgument(format!(
                "disk '{}' has no medium in domain '{}'",
                d.target, vm.name
            )));
        };
        if !plan.reuse && !d.block && std::path::Path::new(&d.store).exists() {
            undo(prepared).await;
            return Err(DriverError::InvalidArgument(format!(
                "store '{}' for backup of '{}' exists",
                d.store, d.target
            )));
        }
        match prepare_store(
            vm,
            ctx,
            d,
            &top.node,
            top.virtual_size,
            plan.pull.is_some(),
            plan.reuse,
        )
        .await
        {
            Ok(nodes) => prepared.push((d.clone(), top.node, nodes)),
            Err(e) => {
                if !plan.reuse && !d.block {
                    let _ = std::fs::remove_file(&d.store);
                }
                undo(prepared).await;
                return Err(e);
            }
        }
    }
    if let Some(server) = &plan.pull {
        let addr = match server {
            // nbd-server-start takes QMP's legacy socket address
            NbdServer::Tcp { host, port } => {
                json!({"type": "inet", "data": {"host": host, "port": port.to_string()}})
            }
            NbdServer::Unix { path } => json!({"type": "unix", "data": {"path": path}}),
        };
        if let Err(e) = vm
            .command("nbd-server-start", Some(json!({ "addr": addr })))
            .await
        {
            undo(prepared).await;
            return Err(e);
        }
    }
    let mut actions = Vec::new();
    let mut copies = Vec::new();
    for (d, top, nodes) in &prepared {
        let job = format!("backup-{}-{}", d.target, fresh());
        let mut data = json!({
            "device": top,
            "job-id": job,
            "target": nodes[0],
            "auto-dismiss": false,
        });
        data["sync"] = json!(match (&plan.pull, &d.bitmap) {
            (Some(_), _) => "none",
            (None, Some(_)) => "incremental",
            (None, None) => "full",
        });
        if plan.pull.is_none()
            && let Some(b) = &d.bitmap
        {
            data["bitmap"] = json!(b);
        }
        actions.push(json!({"type": "blockdev-backup", "data": data}));
        copies.push(Copy {
            job,
            nodes: nodes.clone(),
            store: d.store.clone(),
            block: d.block,
            state: CopyState::Running,
            cur: 0,
            end: 0,
        });
    }
    *lock(&vm.backup.running) = Some(Running {
        pull: plan.pull.is_some(),
        reuse: plan.reuse,
        copies,
        error: None,
        ending: false,
    });
    if let Err(e) = vm
        .command("transaction", Some(json!({ "actions": actions })))
        .await
    {
        *lock(&vm.backup.running) = None;
        if plan.pull.is_some() {
            let _ = vm.command("nbd-server-stop", None).await;
        }
        undo(prepared).await;
        return Err(e);
    }
    if plan.pull.is_some() {
        for (d, _, nodes) in &prepared {
            let mut export = json!({
                "type": "nbd",
                "id": format!("{}-export", nodes[0]),
                "node-name": nodes[0],
                "name": d.export.clone().unwrap_or_else(|| d.target.clone()),
                "writable": false,
            });
            if let Some(b) = &d.export_bitmap {
                export["bitmaps"] = json!([b]);
            }
            if let Err(e) = vm.command("block-export-add", Some(export)).await {
                // as libvirt: the copies are cancelled, their end reported as usual
                let _ = abort(vm).await;
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Cancel every running copy.
pub async fn abort(vm: &Arc<Vm>) -> DriverResult<()> {
    let jobs: Vec<String> = match lock(&vm.backup.running).as_ref() {
        None => {
            return Err(DriverError::InvalidState(
                "no domain backup job present".into(),
            ));
        }
        Some(r) => r
            .copies
            .iter()
            .filter(|c| c.state == CopyState::Running)
            .map(|c| c.job.clone())
            .collect(),
    };
    for j in jobs {
        vm.command(
            "block-job-cancel",
            Some(json!({ "device": j, "force": true })),
        )
        .await?;
    }
    Ok(())
}

/// The statistics of the running backup: copies ended count in full, running ones as QEMU
/// reports them.
pub async fn progress(vm: &Arc<Vm>) -> DriverResult<BackupProgress> {
    let jobs = vm.command("query-jobs", None).await?;
    let r = lock(&vm.backup.running)
        .clone()
        .ok_or_else(|| DriverError::InvalidState("no domain backup job present".into()))?;
    let mut p = BackupProgress::default();
    for c in &r.copies {
        let (cur, end) = if c.state == CopyState::Running {
            jobs.as_array()
                .into_iter()
                .flatten()
                .find(|j| j.get("id").and_then(Value::as_str) == Some(&c.job))
                .map_or((0, 0), |j| {
                    let n = |k: &str| j.get(k).and_then(Value::as_u64).unwrap_or(0);
                    (n("current-progress"), n("total-progress"))
                })
        } else {
            (c.cur, c.end)
        };
        add(&mut p, r.pull, cur, end);
    }
    Ok(p)
}

fn add(p: &mut BackupProgress, pull: bool, cur: u64, end: u64) {
    if pull {
        p.tmp_used += cur;
        p.tmp_total += end;
    } else {
        p.transferred += cur;
        p.total += end;
    }
}

/// A copy's end (QMP `BLOCK_JOB_COMPLETED` / `BLOCK_JOB_CANCELLED`); once every copy has
/// ended, the job is wound up in a task of its own.
pub fn event(vm: &Arc<Vm>, ctx: &DomainCtx, ev: &Event) {
    if !matches!(
        ev.name.as_str(),
        "BLOCK_JOB_COMPLETED" | "BLOCK_JOB_CANCELLED"
    ) {
        return;
    }
    let data = &ev.data;
    let id = data.get("device").and_then(Value::as_str).unwrap_or("");
    let n = |k: &str| data.get(k).and_then(Value::as_u64).unwrap_or(0);
    let done = {
        let mut guard = lock(&vm.backup.running);
        let Some(r) = guard.as_mut() else {
            return;
        };
        let Some(c) = r.copies.iter_mut().find(|c| c.job == id) else {
            return;
        };
        let error = data.get("error").and_then(Value::as_str);
        c.state = match (ev.name.as_str(), error) {
            (_, Some(_)) => CopyState::Failed,
            ("BLOCK_JOB_CANCELLED", _) => CopyState::Cancelled,
            _ => CopyState::Completed,
        };
        c.cur = n("offset");
        c.end = n("len");
        if r.error.is_none() {
            r.error = error.map(str::to_owned);
        }
        let running = r.copies.iter().any(|c| c.state == CopyState::Running);
        let broken = r
            .copies
            .iter()
            .any(|c| matches!(c.state, CopyState::Failed | CopyState::Cancelled));
        if running && broken && !r.ending {
            // one copy failed or was cancelled: the others are cancelled too
            r.ending = true;
            let jobs: Vec<String> = r
                .copies
                .iter()
                .filter(|c| c.state == CopyState::Running)
                .map(|c| c.job.clone())
                .collect();
            let vm = vm.clone();
            tokio::spawn(async move {
                for j in jobs {
                    let _ = vm
                        .command(
                            "block-job-cancel",
                            Some(json!({ "device": j, "force": true })),
                        )
                        .await;
                }
            });
        }
        if running { None } else { guard.take() }
    };
    if let Some(r) = done {
        let (vm, ctx) = (vm.clone(), ctx.clone());
        tokio::spawn(async move { finish(&vm, &ctx, r).await });
    }
}

/// Every copy has ended: stop the server, dismiss the jobs, close the stores, delete the
/// files libvirt deletes, and report the end.
async fn finish(vm: &Vm, ctx: &DomainCtx, r: Running) {
    if r.pull
        && let Err(e) = vm.command("nbd-server-stop", None).await
    {
        tracing::debug!("domain '{}': {e}", vm.name);
    }
    for c in &r.copies {
        for _ in 0..100 {
            match vm
                .command("job-dismiss", Some(json!({ "id": c.job })))
                .await
            {
                Ok(_) => break,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        close(vm, &c.nodes).await;
    }
    let failed = r.copies.iter().any(|c| c.state == CopyState::Failed);
    let cancelled = r.copies.iter().any(|c| c.state == CopyState::Cancelled);
    // libvirt: a pull backup ends when its client is done, which is cancelling it
    let end = if failed {
        BackupEnd::Failed
    } else if cancelled && !r.pull {
        BackupEnd::Cancelled
    } else {
        BackupEnd::Completed
    };
    if !r.reuse && (r.pull || end != BackupEnd::Completed) {
        for c in r.copies.iter().filter(|c| !c.block) {
            if let Err(e) = std::fs::remove_file(&c.store) {
                tracing::warn!("domain '{}': cannot remove '{}': {e}", vm.name, c.store);
            }
        }
    }
    let mut progress = BackupProgress::default();
    for c in &r.copies {
        add(&mut progress, r.pull, c.cur, c.end);
    }
    ctx.report(DriverEvent::BackupEnded {
        end,
        progress,
        error: r.error,
    });
}
