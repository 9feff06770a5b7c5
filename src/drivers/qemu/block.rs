//! Disk requests on a running QEMU (`block_resize`, `block_set_io_throttle`, `query-block`
//! error states, `block-set-write-threshold`) and libvirt's block jobs over QMP jobs:
//! `block-stream` (pull), `block-commit` (commit, active commit), `blockdev-mirror` (copy).
//!
//! Disks are `-blockdev` nodes (`vb-<target>` the format node, `vb-<target>-file` its file,
//! images below opened by QEMU from the image headers), so every job names nodes, found by
//! asking QEMU (`query-block`, `query-named-block-nodes`) since snapshots and pivots move them.
//! Jobs run in QEMU after the request returns; their QMP events (`BLOCK_JOB_READY`,
//! `BLOCK_JOB_COMPLETED`, `BLOCK_JOB_CANCELLED`) end them here: the job is dismissed, the
//! disk's new chain is read from the image headers, and the core is told (the event libvirt
//! raises, with the disk as it now is).

use std::{
    collections::HashMap,
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use serde_json::{Map, Value, json};

use super::{
    monitor::Vm,
    snapshot::nodes::{image_nodes, top_node},
    transport::Event,
};
use crate::{
    drivers::{
        DomainCtx, DriverError, DriverEvent, DriverResult,
        block::{
            BlockJobInfo, BlockJobKind, BlockJobStatus, BlockReply, BlockRequest, DiskError,
            JobStart,
        },
    },
    model::devices::{BackingStore, Disk, DiskBus, DiskFormat, IOTUNE_FIELDS, Iotune},
    util::lock,
};

/// How long a synchronous abort or pivot waits for its job to end.
const END_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JobState {
    Running,
    Ready,
    Aborting,
    Pivoting,
}

/// One block job this driver started.
#[derive(Debug, Clone)]
struct Job {
    id: String,
    target: String,
    kind: BlockJobKind,
    state: JobState,
    /// The image the disk moves onto when the job completes (copy, active commit).
    new_top: Option<(String, DiskFormat)>,
    /// Nodes added for a copy's destination, removed when the copy is cancelled.
    added: Vec<String>,
    /// The disk's top node when the job started, closed once the disk has moved off it.
    old_top: String,
}

/// A write threshold armed on a node: the disk, the chain index it was asked with, the image.
#[derive(Debug, Clone)]
struct Threshold {
    target: String,
    index: Option<u32>,
    path: String,
}

/// The block jobs and write thresholds of one running QEMU.
#[derive(Debug, Default)]
pub struct BlockState {
    jobs: Mutex<Vec<Job>>,
    thresholds: Mutex<HashMap<String, Threshold>>,
    /// The driver's runtime directory, where a job's end rewrites the guest's status
    /// record (so that a restarted daemon finds the disk where the job left it).
    runtime: std::sync::OnceLock<std::path::PathBuf>,
}

impl BlockState {
    pub fn keep_status_in(&self, runtime: std::path::PathBuf) {
        let _ = self.runtime.set(runtime);
    }

    fn job_of(&self, target: &str) -> Option<Job> {
        lock(&self.jobs)
            .iter()
            .find(|j| j.target == target)
            .cloned()
    }

    fn set_state(&self, id: &str, state: JobState) {
        if let Some(j) = lock(&self.jobs).iter_mut().find(|j| j.id == id) {
            j.state = state;
        }
    }
}

/// A number for node names no other node has.
pub(super) fn fresh() -> u64 {
    static N: AtomicU64 = AtomicU64::new(1);
    N.fetch_add(1, Ordering::Relaxed)
}

fn disk_of<'a>(vm_live: &'a crate::model::DomainDef, target: &str) -> DriverResult<&'a Disk> {
    vm_live
        .devices
        .disks
        .iter()
        .find(|d| d.target_dev == target)
        .ok_or_else(|| DriverError::InvalidArgument(format!("disk '{target}' not found in domain")))
}

fn source_path(d: &Disk) -> Option<String> {
    d.source.as_ref().and_then(|s| s.path.clone())
}

fn format_of(d: &Disk) -> DiskFormat {
    d.driver
        .as_ref()
        .and_then(|x| x.format)
        .unwrap_or(DiskFormat::Raw)
}

/// The disk's top format node, as QEMU has it now.
async fn top_of(vm: &Vm, d: &Disk) -> DriverResult<String> {
    let alias = d.info.alias.clone().unwrap_or_default();
    let blocks = vm.command("query-block", None).await?;
    top_node(&blocks, &alias).map(|t| t.node).ok_or_else(|| {
        DriverError::InvalidArgument(format!(
            "disk '{}' has no medium in domain '{}'",
            d.target_dev, vm.name
        ))
    })
}

/// The format node of image `path` (any chain).
async fn format_node(vm: &Vm, path: &str) -> DriverResult<String> {
    let named = vm.command("query-named-block-nodes", None).await?;
    image_nodes(&named)
        .into_iter()
        .find(|n| n.file == path)
        .map(|n| n.node)
        .ok_or_else(|| {
            DriverError::Failed(format!(
                "domain '{}': QEMU has no node for image {path}",
                vm.name
            ))
        })
}

/// The protocol (file) node of image `path`, where write thresholds are armed.
async fn storage_node(vm: &Vm, path: &str) -> DriverResult<String> {
    let named = vm.command("query-named-block-nodes", None).await?;
    named
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| {
            matches!(
                n.get("drv").and_then(Value::as_str),
                Some("file" | "host_device")
            ) && n.get("file").and_then(Value::as_str) == Some(path)
        })
        .and_then(|n| n.get("node-name").and_then(Value::as_str))
        .map(str::to_owned)
        .ok_or_else(|| {
            DriverError::Failed(format!(
                "domain '{}': QEMU has no storage node for image {path}",
                vm.name
            ))
        })
}

/// The path of image `index` of the disk's chain (the numbers of the live XML).
fn image_at(d: &Disk, index: u32) -> Option<String> {
    if d.source.as_ref().and_then(|s| s.index) == Some(index) {
        return source_path(d);
    }
    let mut below = d.backing_store.as_ref();
    while let Some(BackingStore::Image(img)) = below {
        if img.index == Some(index) {
            return img.source.as_ref().and_then(|s| s.path.clone());
        }
        below = img.backing_store.as_ref();
    }
    None
}

/// The QOM path `block_set_io_throttle` takes for the disk's device.
fn qom_id(d: &Disk) -> String {
    let a = d.info.alias.clone().unwrap_or_default();
    if d.target_bus == Some(DiskBus::Virtio) {
        format!("/machine/peripheral/{a}/virtio-backend")
    } else {
        a
    }
}

/// Carry out `req` on the running QEMU of `vm`.
pub async fn request(vm: &Arc<Vm>, req: BlockRequest) -> DriverResult<BlockReply> {
    let live = vm.live();
    match req {
        BlockRequest::Resize { target, bytes } => {
            let d = disk_of(&live, &target)?;
            let node = top_of(vm, d).await?;
            vm.command(
                "block_resize",
                Some(json!({ "node-name": node, "size": bytes })),
            )
            .await?;
            Ok(BlockReply::Done)
        }
        BlockRequest::SetIoTune { target, tune } => {
            let d = disk_of(&live, &target)?;
            vm.command("block_set_io_throttle", Some(throttle_args(d, &tune)))
                .await?;
            if let Some(ld) = lock(&vm.live)
                .devices
                .disks
                .iter_mut()
                .find(|x| x.target_dev == target)
            {
                ld.iotune = tune.has_limits().then_some(tune);
            }
            Ok(BlockReply::Done)
        }
        BlockRequest::Errors => {
            let blocks = vm.command("query-block", None).await?;
            let mut out = Vec::new();
            for d in &live.devices.disks {
                let Some(alias) = d.info.alias.as_deref() else {
                    continue;
                };
                let base = format!("/machine/peripheral/{alias}");
                let status = blocks
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|b| {
                        b.get("qdev")
                            .and_then(Value::as_str)
                            .is_some_and(|q| q == base || q.starts_with(&format!("{base}/")))
                    })
                    .and_then(|b| b.get("io-status"))
                    .and_then(Value::as_str);
                let e = match status {
                    Some("failed") => DiskError::Unspec,
                    Some("nospace") => DiskError::NoSpace,
                    _ => continue,
                };
                out.push((d.target_dev.clone(), e));
            }
            Ok(BlockReply::Errors(out))
        }
        BlockRequest::SetThreshold {
            target,
            index,
            bytes,
        } => {
            let d = disk_of(&live, &target)?;
            let path = match index {
                None => source_path(d),
                Some(i) => image_at(d, i),
            }
            .ok_or_else(|| {
                DriverError::InvalidArgument(format!("failed to find disk '{target}'"))
            })?;
            let node = storage_node(vm, &path).await?;
            vm.command(
                "block-set-write-threshold",
                Some(json!({ "node-name": node, "write-threshold": bytes })),
            )
            .await?;
            lock(&vm.block.thresholds).insert(
                node,
                Threshold {
                    target,
                    index,
                    path,
                },
            );
            Ok(BlockReply::Done)
        }
        BlockRequest::Start {
            target,
            job,
            bandwidth,
        } => {
            start(vm, &live, &target, job, bandwidth).await?;
            Ok(BlockReply::Done)
        }
        BlockRequest::Info { target } => {
            let Some(job) = vm.block.job_of(&target) else {
                return Ok(BlockReply::Info(None));
            };
            let list = vm.command("query-block-jobs", None).await?;
            let raw = list
                .as_array()
                .into_iter()
                .flatten()
                .find(|j| j.get("device").and_then(Value::as_str) == Some(job.id.as_str()));
            let Some(raw) = raw else {
                // QEMU is done with it and its end is being processed
                return Ok(BlockReply::Info(Some(BlockJobInfo {
                    kind: job.kind,
                    bandwidth: 0,
                    cur: 0,
                    end: 1,
                })));
            };
            let n = |k: &str| raw.get(k).and_then(Value::as_u64).unwrap_or(0);
            let ready = raw.get("ready").and_then(Value::as_bool);
            let (mut cur, mut end) = (n("offset"), n("len"));
            if cur == 0
                && end == 0
                && let Some(r) = ready
            {
                end = 1;
                cur = u64::from(r);
            }
            if ready == Some(false) && cur == end && cur > 0 {
                cur -= 1;
            }
            Ok(BlockReply::Info(Some(BlockJobInfo {
                kind: job.kind,
                bandwidth: n("speed"),
                cur,
                end,
            })))
        }
        BlockRequest::Abort {
            target,
            pivot,
            wait,
        } => abort(vm, &target, pivot, wait)
            .await
            .map(|()| BlockReply::Done),
        BlockRequest::SetSpeed { target, bandwidth } => {
            let job = active_job(vm, &target)?;
            vm.command(
                "block-job-set-speed",
                Some(json!({ "device": job.id, "speed": bandwidth })),
            )
            .await?;
            Ok(BlockReply::Done)
        }
    }
}

fn active_job(vm: &Vm, target: &str) -> DriverResult<Job> {
    vm.block.job_of(target).ok_or_else(|| {
        DriverError::InvalidArgument(format!("disk {target} does not have an active block job"))
    })
}

/// `block_set_io_throttle`'s arguments: the six rates always, the rest when set.
fn throttle_args(d: &Disk, t: &Iotune) -> Value {
    let mut args = Map::new();
    args.insert("id".into(), json!(qom_id(d)));
    for (i, (_, qmp)) in IOTUNE_FIELDS.iter().enumerate() {
        let v = t.limits[i];
        if i < 6 || v != 0 {
            args.insert((*qmp).into(), json!(v));
        }
    }
    if let Some(g) = &t.group_name {
        args.insert("group".into(), json!(g));
    }
    Value::Object(args)
}

async fn start(
    vm: &Arc<Vm>,
    live: &crate::model::DomainDef,
    target: &str,
    start: JobStart,
    bandwidth: u64,
) -> DriverResult<()> {
    let d = disk_of(live, target)?;
    if vm.block.job_of(target).is_some() {
        return Err(DriverError::NotSupported(format!(
            "disk '{target}' already in active block job"
        )));
    }
    let top = top_of(vm, d).await?;
    let mut args = Map::new();
    args.insert("device".into(), json!(top));
    args.insert("auto-dismiss".into(), json!(false));
    if bandwidth > 0 {
        args.insert("speed".into(), json!(bandwidth));
    }
    let mut added = Vec::new();
    let mut new_top = None;
    let (kind, command) = match &start {
        JobStart::Pull { base } => {
            if let Some(b) = base {
                args.insert("base-node".into(), json!(format_node(vm, b).await?));
                args.insert("backing-file".into(), json!(b));
            }
            (BlockJobKind::Pull, "block-stream")
        }
        JobStart::Commit {
            top: t,
            base,
            active,
        } => {
            args.insert("base-node".into(), json!(format_node(vm, base).await?));
            if let Some(t) = t {
                args.insert("top-node".into(), json!(format_node(vm, t).await?));
            }
            if *active {
                let fmt = chain_format(d, base);
                new_top = Some((base.clone(), fmt));
                (BlockJobKind::ActiveCommit, "block-commit")
            } else {
                (BlockJobKind::Commit, "block-commit")
            }
        }
        JobStart::Copy {
            dest,
            format,
            shallow,
            reuse,
        } => {
            let backing = match &d.backing_store {
                Some(BackingStore::Image(img)) if *shallow => img
                    .source
                    .as_ref()
                    .and_then(|s| s.path.clone())
                    .map(|p| (p, img.format.unwrap_or(DiskFormat::Raw))),
                _ => None,
            };
            if !reuse {
                create_image(vm, d, dest, *format, backing.as_ref()).await?;
            }
            let n = fresh();
            let fmt_node = format!("vb-{target}-c{n}");
            let file_node = format!("{fmt_node}-file");
            vm.command(
                "blockdev-add",
                Some(json!({"driver": "file", "filename": dest, "node-name": file_node})),
            )
            .await?;
            added.push(file_node.clone());
            let mut fmt_args =
                json!({"driver": format.to_string(), "file": file_node, "node-name": fmt_node});
            if *format == DiskFormat::Qcow2 {
                fmt_args["backing"] = match &backing {
                    Some((p, _)) => json!(format_node(vm, p).await?),
                    None => Value::Null,
                };
            }
            if let Err(e) = vm.command("blockdev-add", Some(fmt_args)).await {
                del_nodes(vm, &added).await;
                return Err(e);
            }
            added.insert(0, fmt_node.clone());
            args.insert("target".into(), json!(fmt_node));
            args.insert("sync".into(), json!(if *shallow { "top" } else { "full" }));
            new_top = Some((dest.clone(), *format));
            (BlockJobKind::Copy, "blockdev-mirror")
        }
    };
    // QMP ids are letters, digits, '-', '.', '_' and start with a letter: no node name here
    let id = format!("{}-{target}-{}", kind.name(), fresh());
    args.insert("job-id".into(), json!(id));
    lock(&vm.block.jobs).push(Job {
        id: id.clone(),
        target: target.to_owned(),
        kind,
        state: JobState::Running,
        new_top,
        added: added.clone(),
        old_top: top.clone(),
    });
    if let Err(e) = vm.command(command, Some(Value::Object(args))).await {
        lock(&vm.block.jobs).retain(|j| j.id != id);
        del_nodes(vm, &added).await;
        return Err(e);
    }
    Ok(())
}

/// The format the chain records for image `path` of disk `d`.
fn chain_format(d: &Disk, path: &str) -> DiskFormat {
    let mut below = d.backing_store.as_ref();
    while let Some(BackingStore::Image(img)) = below {
        if img.source.as_ref().and_then(|s| s.path.as_deref()) == Some(path) {
            return img.format.unwrap_or(DiskFormat::Raw);
        }
        below = img.backing_store.as_ref();
    }
    DiskFormat::Raw
}

/// A copy's destination image, as large as the disk, over `backing` for a shallow copy.
async fn create_image(
    vm: &Vm,
    d: &Disk,
    dest: &str,
    format: DiskFormat,
    backing: Option<&(String, DiskFormat)>,
) -> DriverResult<()> {
    let alias = d.info.alias.clone().unwrap_or_default();
    let blocks = vm.command("query-block", None).await?;
    let size = top_node(&blocks, &alias).map_or(0, |t| t.virtual_size);
    let mut cmd = tokio::process::Command::new("qemu-img");
    cmd.args(["create", "-q", "-f", &format.to_string()]);
    if let Some((p, f)) = backing.filter(|_| format == DiskFormat::Qcow2) {
        cmd.args(["-b", p, "-F", &f.to_string()]);
    }
    cmd.arg(dest).arg(size.to_string());
    let out = cmd
        .output()
        .await
        .map_err(|e| DriverError::Failed(format!("cannot run qemu-img: {e}")))?;
    if !out.status.success() {
        return Err(DriverError::Failed(format!(
            "cannot create image '{dest}': {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

async fn del_nodes(vm: &Vm, nodes: &[String]) {
    for n in nodes {
        if let Err(e) = vm
            .command("blockdev-del", Some(json!({ "node-name": n })))
            .await
        {
            tracing::warn!("domain '{}': {e}", vm.name);
        }
    }
}

async fn abort(vm: &Arc<Vm>, target: &str, pivot: bool, wait: bool) -> DriverResult<()> {
    let job = active_job(vm, target)?;
    if matches!(job.state, JobState::Aborting | JobState::Pivoting) {
        return Err(DriverError::InvalidState(format!(
            "block job on disk '{target}' is still being ended"
        )));
    }
    if pivot {
        if !matches!(job.kind, BlockJobKind::Copy | BlockJobKind::ActiveCommit) {
            return Err(DriverError::InvalidState(format!(
                "job type '{}' does not support pivot",
                job.kind.name()
            )));
        }
        if job.state != JobState::Ready {
            return Err(DriverError::NotSupported(format!(
                "block job '{}' not ready for pivot yet",
                job.id
            )));
        }
        vm.command("job-complete", Some(json!({ "id": job.id })))
            .await?;
        vm.block.set_state(&job.id, JobState::Pivoting);
    } else {
        vm.command("block-job-cancel", Some(json!({ "device": job.id })))
            .await?;
        vm.block.set_state(&job.id, JobState::Aborting);
    }
    if wait {
        let deadline = tokio::time::Instant::now() + END_WAIT;
        while lock(&vm.block.jobs).iter().any(|j| j.id == job.id) {
            if tokio::time::Instant::now() >= deadline {
                return Err(DriverError::Timeout(format!(
                    "block job '{}' did not end within {END_WAIT:?}",
                    job.id
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(())
}

/// React to a QMP event about blocks: thresholds and I/O errors at once (reported in the
/// event's order), job ends in a task of their own (they need more QMP commands).
pub fn event(vm: &Arc<Vm>, ctx: &DomainCtx, ev: &Event) {
    let data = &ev.data;
    let s = |k: &str| data.get(k).and_then(Value::as_str).unwrap_or_default();
    match ev.name.as_str() {
        "BLOCK_WRITE_THRESHOLD" => {
            let Some(t) = lock(&vm.block.thresholds).remove(s("node-name")) else {
                return;
            };
            let n = |k: &str| data.get(k).and_then(Value::as_u64).unwrap_or(0);
            ctx.report(DriverEvent::BlockThreshold {
                dev: match t.index {
                    Some(i) => format!("{}[{i}]", t.target),
                    None => t.target,
                },
                path: t.path,
                threshold: n("write-threshold"),
                excess: n("amount-exceeded"),
            });
        }
        "BLOCK_IO_ERROR" => {
            let live = lock(&vm.live);
            let node = s("node-name");
            let device = s("device");
            let disk = live.devices.disks.iter().find(|d| {
                let base = format!("vb-{}", d.target_dev);
                (!node.is_empty() && (node == base || node.starts_with(&format!("{base}-"))))
                    || (!device.is_empty() && d.info.alias.as_deref() == Some(device))
            });
            let (path, alias) = disk.map_or((String::new(), String::new()), |d| {
                (
                    source_path(d).unwrap_or_default(),
                    d.info.alias.clone().unwrap_or_default(),
                )
            });
            let action = match s("action") {
                "stop" => 1,
                "report" => 2,
                _ => 0,
            };
            let nospace = data
                .get("nospace")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            ctx.report(DriverEvent::IoError {
                path,
                alias,
                action,
                reason: if nospace { "enospc" } else { "" }.into(),
            });
        }
        "BLOCK_JOB_READY" => {
            let id = s("device");
            let found = {
                let mut jobs = lock(&vm.block.jobs);
                jobs.iter_mut()
                    .find(|j| j.id == id && j.state == JobState::Running)
                    .map(|j| {
                        j.state = JobState::Ready;
                        (j.target.clone(), j.kind)
                    })
            };
            if let Some((target, kind)) = found {
                ctx.report(DriverEvent::BlockJob {
                    target,
                    kind,
                    status: BlockJobStatus::Ready,
                    disk: None,
                });
            }
        }
        "BLOCK_JOB_COMPLETED" | "BLOCK_JOB_CANCELLED" => {
            let id = s("device").to_owned();
            let Some(job) = lock(&vm.block.jobs).iter().find(|j| j.id == id).cloned() else {
                return;
            };
            let failed = data.get("error").and_then(Value::as_str).map(str::to_owned);
            let cancelled = ev.name == "BLOCK_JOB_CANCELLED" || job.state == JobState::Aborting;
            let (vm, ctx) = (vm.clone(), ctx.clone());
            tokio::spawn(async move { finish(&vm, &ctx, job, failed, cancelled).await });
        }
        _ => {}
    }
}

/// A job's end: dismissed, the disk moved onto its new chain (read from the image
/// headers), the core told, the job forgotten.
async fn finish(vm: &Vm, ctx: &DomainCtx, job: Job, failed: Option<String>, cancelled: bool) {
    for _ in 0..100 {
        match vm
            .command("job-dismiss", Some(json!({ "id": job.id })))
            .await
        {
            Ok(_) => break,
            // not concluded yet: QEMU finalizes it right after the event
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    let status = if let Some(e) = &failed {
        tracing::warn!("domain '{}': block job {} failed: {e}", vm.name, job.id);
        BlockJobStatus::Failed
    } else if cancelled {
        BlockJobStatus::Canceled
    } else {
        BlockJobStatus::Completed
    };
    if status != BlockJobStatus::Completed && !job.added.is_empty() {
        del_nodes(vm, &job.added).await;
    }
    if status == BlockJobStatus::Completed && job.new_top.is_some() {
        // the disk left its old top: close it (and its file), so that the new top is a root
        // node again for later jobs; nodes QEMU opened itself go with their parent
        for n in [job.old_top.clone(), format!("{}-file", job.old_top)] {
            if let Err(e) = vm
                .command("blockdev-del", Some(json!({ "node-name": n })))
                .await
            {
                tracing::debug!("domain '{}': {e}", vm.name);
            }
        }
    }
    let disk = if status == BlockJobStatus::Completed {
        let mut live = lock(&vm.live);
        live.devices
            .disks
            .iter_mut()
            .find(|d| d.target_dev == job.target)
            .map(|d| {
                moved(d, job.new_top.clone());
                Box::new(d.clone())
            })
    } else {
        None
    };
    if disk.is_some()
        && let Some(runtime) = vm.block.runtime.get().cloned()
        && let Err(e) = super::write_status(vm, runtime).await
    {
        tracing::warn!("domain '{}': {e}", vm.name);
    }
    ctx.report(DriverEvent::BlockJob {
        target: job.target.clone(),
        kind: job.kind,
        status,
        disk,
    });
    lock(&vm.block.jobs).retain(|j| j.id != job.id);
}

/// The disk on its (possibly new) top image, with the chain below as the headers tell.
fn moved(d: &mut Disk, new_top: Option<(String, DiskFormat)>) {
    if let Some((path, fmt)) = new_top {
        if let Some(src) = d.source.as_mut() {
            src.path = Some(path);
            src.index = None;
        }
        d.driver.get_or_insert_with(Default::default).format = Some(fmt);
    }
    let Some(path) = source_path(d) else {
        return;
    };
    match super::live::chain_below(Path::new(&path), Some(format_of(d))) {
        Ok(chain) => d.backing_store = chain,
        Err(e) => tracing::warn!("disk '{}': {e}", d.target_dev),
    }
}
