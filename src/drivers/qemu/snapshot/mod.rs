//! Snapshots of QEMU domains: [`plan`] (what each disk gets), [`internal`] (qcow2 internal
//! snapshots, memory included while running), [`external`] (disk-only overlays switched in
//! one transaction), [`quiesce`] (the guest agent's freeze around it), [`jobs`] (QMP jobs
//! with progress), [`nodes`] (which node holds what), [`img`] (`qemu-img`) and [`hooks`]
//! (test faults).
//!
//! External snapshots are reverted to by new overlays over the snapshot's images (which are
//! never written, so other snapshots stay valid), and deleted by merging the image over the
//! snapshot's into it ([`merge`]: `block-commit` while QEMU has it open, `qemu-img commit`
//! and `rebase` otherwise). Every image the driver makes is listed first ([`registry`]) and
//! removed once no definition uses it.

pub mod external;
pub mod hooks;
pub mod img;
pub mod internal;
pub mod jobs;
pub mod merge;
pub mod nodes;
pub mod plan;
pub mod quiesce;
pub mod registry;

use std::sync::Arc;

use serde_json::Value;

use self::{plan::Capture, quiesce::QgaFreeze};
use super::{QemuDriver, monitor::Vm};
use crate::{
    drivers::{
        DeleteOutcome, DomainCtx, DriverError, DriverResult, ImageChains, RevertOutcome,
        RevertTarget, SnapshotOutcome, SnapshotRequest,
    },
    model::SnapshotDef,
    model::{SnapshotKind, snapshot_kind},
};

impl QemuDriver {
    /// The guest agent of `vm` as quiesce uses it.
    pub(super) fn freeze_agent(&self, vm: &Arc<Vm>) -> QgaFreeze {
        QgaFreeze {
            vm: vm.clone(),
            timeout: self.config.agent_timeout(),
            hooks: self.hooks.clone(),
            runtime: self.runtime.clone(),
        }
    }

    /// qemu-img, which `what` needs; refused by name when it is not installed.
    pub(super) fn need_img(&self, ctx: &DomainCtx, what: &str) -> DriverResult<()> {
        if self.img.available() {
            return Ok(());
        }
        Err(DriverError::NotSupported(format!(
            "domain '{}': {what} needs qemu-img (package qemu-utils), which is not installed",
            ctx.name
        )))
    }

    pub(super) async fn snapshot_create_impl(
        &self,
        ctx: &DomainCtx,
        req: SnapshotRequest<'_>,
    ) -> DriverResult<SnapshotOutcome> {
        let name = req.def.name.clone().unwrap_or_default();
        let vm = self.vm(ctx).ok();
        let plan = plan::plan(req.def, &req.opts, req.definition, vm.is_some(), &name)?;
        let external = plan
            .disks
            .iter()
            .any(|d| matches!(d.capture, Capture::External { .. }));
        if external || vm.is_none() {
            self.need_img(ctx, "this snapshot")?;
        }
        if req.opts.quiesce {
            // the core refuses a domain that is not running; QEMU has the last word, and
            // nothing has been sent to the agent yet
            let running = match &vm {
                Some(vm) => vm
                    .command("query-status", None)
                    .await?
                    .get("running")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                None => false,
            };
            if !running {
                return Err(DriverError::InvalidState(format!(
                    "cannot take a quiesced snapshot of domain '{}': its guest is not \
                     running, so its agent cannot freeze its filesystems (nothing was sent \
                     to the agent)",
                    ctx.name
                )));
            }
        }
        req.def.disks = plan.recorded.clone();
        match (&vm, external) {
            (Some(vm), false) => self.internal_online(ctx, vm, &plan, &name).await,
            (None, false) => self.internal_offline(&plan, &name).await,
            (Some(vm), true) => {
                self.external_online(ctx, vm, &plan, &name, req.opts.quiesce)
                    .await
            }
            (None, true) => {
                self.external_offline(ctx, req.definition, &plan, &name)
                    .await
            }
        }
    }

    pub(super) async fn snapshot_revert_impl(
        &self,
        ctx: &DomainCtx,
        snap: &SnapshotDef,
        target: RevertTarget,
        id: u32,
    ) -> DriverResult<RevertOutcome> {
        match snapshot_kind(snap) {
            SnapshotKind::Internal => self.internal_revert(ctx, snap, target, id).await,
            _ => self.external_revert(ctx, snap, target, id).await,
        }
    }

    pub(super) async fn snapshot_delete_impl(
        &self,
        ctx: &DomainCtx,
        snap: &SnapshotDef,
        metadata_only: bool,
        remaining: &ImageChains,
    ) -> DriverResult<DeleteOutcome> {
        if metadata_only {
            return Ok(DeleteOutcome::default());
        }
        match snapshot_kind(snap) {
            SnapshotKind::Internal => {
                self.internal_delete(ctx, snap).await?;
                Ok(DeleteOutcome::default())
            }
            _ => self.external_delete(ctx, snap, remaining).await,
        }
    }

    /// The registry of the images made for domain `uuid`'s snapshots.
    pub(super) fn image_registry(&self, uuid: &uuid::Uuid) -> std::path::PathBuf {
        registry::path(&self.save_dir.with_file_name("overlays"), uuid)
    }

    /// List `images` as made by this driver, before they are made.
    pub(super) fn register_images(
        &self,
        uuid: &uuid::Uuid,
        images: &[&std::path::Path],
    ) -> DriverResult<()> {
        if images.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = images.iter().map(|p| p.display().to_string()).collect();
        registry::add(&self.image_registry(uuid), &list).map_err(|e| {
            DriverError::Failed(format!(
                "cannot record the images to be made ({}): {e}",
                list.join(", ")
            ))
        })
    }

    /// Remove the listed images no definition uses and no running QEMU has open.
    pub(super) async fn sweep_images_impl(&self, ctx: &DomainCtx, referenced: &[String]) {
        let file = self.image_registry(&ctx.uuid);
        let listed = registry::load(&file);
        let unused: Vec<&String> = listed.iter().filter(|i| !referenced.contains(i)).collect();
        if unused.is_empty() {
            return;
        }
        let open: Vec<String> = match self.vm(ctx) {
            Ok(vm) => match nodes::all_nodes(&vm).await {
                Ok(n) => n.into_iter().map(|n| n.2).collect(),
                Err(e) => {
                    tracing::warn!("domain '{}': images kept for now: {e}", ctx.name);
                    return;
                }
            },
            Err(_) => Vec::new(),
        };
        let mut keep: Vec<String> = Vec::new();
        for i in &listed {
            if !unused.contains(&i) {
                keep.push(i.clone());
                continue;
            }
            if open.contains(i) {
                tracing::warn!(
                    "domain '{}': image {i} is used by no definition, but QEMU has it open; kept",
                    ctx.name
                );
                keep.push(i.clone());
                continue;
            }
            match std::fs::remove_file(i) {
                Ok(()) => tracing::info!("domain '{}': removed unused image {i}", ctx.name),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!("domain '{}': cannot remove image {i}: {e}", ctx.name);
                    keep.push(i.clone());
                }
            }
        }
        if let Err(e) = registry::store(&file, &keep) {
            tracing::warn!("domain '{}': {}: {e}", ctx.name, file.display());
        }
    }
}

/// A snapshot's name and the domain definition it recorded, which a revert needs.
pub(super) fn recorded_domain(
    snap: &SnapshotDef,
) -> DriverResult<(&str, &crate::model::DomainDef)> {
    let name = snap.name.as_deref().unwrap_or_default();
    let def = snap.domain.as_ref().ok_or_else(|| {
        DriverError::InvalidState(format!("snapshot '{name}' has no domain definition"))
    })?;
    Ok((name, def))
}

/// Image chains written as lists of paths, for the snapshot tests.
#[cfg(test)]
pub(super) fn test_chains(c: &[&[&str]]) -> ImageChains {
    ImageChains {
        chains: c
            .iter()
            .map(|c| c.iter().map(|s| s.to_string()).collect())
            .collect(),
    }
}

/// Run the real `qemu-img` with `args`, for the tests that need real images.
#[cfg(test)]
pub(super) fn run_qemu_img(args: &[&str]) {
    let st = std::process::Command::new("qemu-img")
        .args(args)
        .status()
        .expect("qemu-img");
    assert!(st.success(), "qemu-img {args:?}");
}

#[cfg(test)]
mod tests {
    use super::{run_qemu_img as run, test_chains as chains};
    use std::path::Path;

    use serde_json::json;

    use super::*;
    use crate::{
        drivers::{
            Driver,
            qemu::fake::{self, Answer, FakeMonitor, FakeSpawner},
        },
        model::{
            DomainDef,
            options::SnapshotCreateOptions,
            state::{DomainState, StateReason, Status},
        },
    };

    /// A running guest with one qcow2 virtio disk in `dir`, its start-up commands forgotten.
    async fn running(dir: &Path) -> (QemuDriver, FakeMonitor, DomainDef, DomainCtx) {
        let spawner = FakeSpawner::default();
        let qmp = spawner.monitor.clone();
        let driver = fake::driver(dir, spawner);
        let def = fake::domain(&format!(
            "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>\
             <source file='{}/a.qcow2'/><target dev='vda' bus='virtio'/></disk>",
            dir.display()
        ));
        let (ctx, _) = fake::ctx(&def);
        driver.start(&ctx, &def, false, 1).await.expect("start");
        qmp.clear();
        qmp.answer(
            "query-block",
            Answer::ok(json!([{
                "device": "", "qdev": "/machine/peripheral/virtio-disk0/virtio-backend",
                "inserted": {"node-name": "vb-vda", "drv": "qcow2", "ro": false,
                             "file": format!("{}/a.qcow2", dir.display()),
                             "backing_file_depth": 0,
                             "image": {"virtual-size": 1048576, "snapshots": []}}
            }])),
        )
        .answer(
            "query-status",
            Answer::ok(json!({"status": "running", "running": true})),
        );
        (driver, qmp, def, ctx)
    }

    async fn create(
        driver: &QemuDriver,
        ctx: &DomainCtx,
        def: &DomainDef,
        xml: &str,
        disk_only: bool,
    ) -> DriverResult<SnapshotOutcome> {
        let mut snap = SnapshotDef::from_xml(xml).expect("snapshot");
        let req = SnapshotRequest {
            def: &mut snap,
            opts: SnapshotCreateOptions {
                disk_only,
                ..Default::default()
            },
            status: Status::new(DomainState::Running, StateReason::Booted),
            definition: def,
        };
        driver.snapshot_create_impl(ctx, req).await
    }

    /// A disk-only snapshot named as the core names it.
    const S2: &str = "<domainsnapshot><name>s2</name></domainsnapshot>";

    /// `query-jobs` showing the job last started as concluded.
    fn concluded() -> Answer {
        Answer::computed(|log| {
            let id = log
                .iter()
                .rev()
                .find_map(|c| c["arguments"]["job-id"].as_str())
                .unwrap_or_default();
            json!([{"id": id, "type": "snapshot-save", "status": "concluded",
                    "current-progress": 1, "total-progress": 1}])
        })
    }

    #[tokio::test]
    async fn internal_runs_a_snapshot_save_job_over_the_top_nodes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (driver, qmp, def, ctx) = running(dir.path()).await;
        qmp.answer("query-jobs", concluded());
        let xml = "<domainsnapshot><name>s1</name><memory snapshot='internal'/></domainsnapshot>";
        let out = create(&driver, &ctx, &def, xml, false)
            .await
            .expect("snapshot");
        assert!(out.switched.is_empty() && out.live.is_none());
        let log = qmp.log();
        let id = log[2]["arguments"]["job-id"].as_str().unwrap_or_default();
        assert!(id.starts_with("vb-snapshot-save-"), "{id}");
        assert_eq!(
            log,
            [
                json!({"execute": "query-block"}),
                json!({"execute": "query-status"}),
                json!({"execute": "snapshot-save", "arguments": {
                    "job-id": id, "tag": "s1", "vmstate": "vb-vda", "devices": ["vb-vda"]}}),
                json!({"execute": "query-jobs"}),
                json!({"execute": "job-dismiss", "arguments": {"id": id}}),
                json!({"execute": "query-status"}),
            ]
        );
    }

    #[tokio::test]
    async fn internal_job_error_is_the_snapshots_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (driver, qmp, def, ctx) = running(dir.path()).await;
        qmp.answer(
            "query-jobs",
            Answer::computed(|log| {
                let id = log
                    .iter()
                    .rev()
                    .find_map(|c| c["arguments"]["job-id"].as_str())
                    .unwrap_or_default();
                json!([{"id": id, "status": "concluded", "error": "No space left on device"}])
            }),
        );
        let xml = "<domainsnapshot><name>s1</name><memory snapshot='internal'/></domainsnapshot>";
        let e = create(&driver, &ctx, &def, xml, false)
            .await
            .expect_err("job failed");
        assert!(e.to_string().contains("No space left"), "{e}");
        // the job is dismissed; no image holds the tag, so nothing is deleted
        assert_eq!(
            qmp.commands(),
            [
                "query-block",
                "query-status",
                "snapshot-save",
                "query-jobs",
                "job-dismiss",
                "query-status",
                "query-block",
            ]
        );
    }

    #[tokio::test]
    async fn external_disk_only_adds_overlays_then_one_transaction() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (driver, qmp, def, ctx) = running(dir.path()).await;
        if !driver.img.available() {
            eprintln!("qemu-img not installed; skipped");
            return;
        }
        let overlay = dir.path().join("a.s2.qcow2").display().to_string();
        let out = create(&driver, &ctx, &def, S2, true)
            .await
            .expect("snapshot");
        let log = qmp.log();
        let node = log[1]["arguments"]["node-name"]
            .as_str()
            .unwrap_or_default();
        assert!(node.starts_with("vb-vda-"), "{node}");
        assert_eq!(
            log,
            [
                json!({"execute": "query-block"}),
                json!({"execute": "blockdev-add", "arguments": {
                    "driver": "qcow2", "node-name": node,
                    "file": {"driver": "file", "filename": overlay}, "backing": null}}),
                json!({"execute": "transaction", "arguments": {"actions": [
                    {"type": "blockdev-snapshot", "data": {"node": "vb-vda", "overlay": node}}
                ]}}),
            ]
        );
        assert!(Path::new(&overlay).exists());
        assert_eq!(out.switched.len(), 1);
        let live = out.live.expect("live");
        let src = live.devices.disks[0].source.as_ref();
        assert_eq!(src.and_then(|s| s.path.as_deref()), Some(overlay.as_str()));
    }

    #[tokio::test]
    async fn external_failed_transaction_closes_and_removes_the_overlays() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (driver, qmp, def, ctx) = running(dir.path()).await;
        if !driver.img.available() {
            eprintln!("qemu-img not installed; skipped");
            return;
        }
        qmp.answer(
            "transaction",
            Answer::error("GenericError", "Permission denied"),
        );
        let overlay = dir.path().join("a.s2.qcow2");
        let e = create(&driver, &ctx, &def, S2, true)
            .await
            .expect_err("transaction fails");
        assert!(e.to_string().contains("Permission denied"), "{e}");
        let log = qmp.log();
        let node = &log[1]["arguments"]["node-name"];
        assert_eq!(
            qmp.commands(),
            ["query-block", "blockdev-add", "transaction", "blockdev-del"]
        );
        assert_eq!(log[3]["arguments"], json!({ "node-name": node }));
        // made (by qemu-img, before it was opened), then removed
        assert_eq!(
            log[1]["arguments"]["file"]["filename"],
            json!(overlay.display().to_string())
        );
        assert!(!overlay.exists(), "the overlay this call made is removed");
        let live = driver.vm(&ctx).expect("vm").live();
        let path = |d: &DomainDef| {
            d.devices.disks[0]
                .source
                .as_ref()
                .and_then(|s| s.path.clone())
        };
        assert_eq!(path(&live), path(&def));
    }

    #[tokio::test]
    async fn refused_plans_send_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (driver, qmp, def, ctx) = running(dir.path()).await;
        // a running guest's internal snapshot holds its memory; an external one is
        // disk-only
        for (xml, disk_only) in [
            (
                "<domainsnapshot><memory snapshot='no'/></domainsnapshot>",
                false,
            ),
            (
                "<domainsnapshot><disks><disk name='vda' snapshot='internal'/></disks>\
                 </domainsnapshot>",
                true,
            ),
        ] {
            let e = create(&driver, &ctx, &def, xml, disk_only)
                .await
                .expect_err(xml);
            assert!(matches!(e, DriverError::NotSupported(_)), "{e:?}");
        }
        assert!(qmp.log().is_empty(), "{:?}", qmp.log());
    }

    /// External snapshot `e1` of `def`, which froze its disk's image.
    fn external(def: &DomainDef, overlay: &str) -> SnapshotDef {
        let mut s = SnapshotDef::from_xml(&format!(
            "<domainsnapshot><name>e1</name><state>disk-snapshot</state>\
             <memory snapshot='no'/><disks><disk name='vda' snapshot='external'>\
             <source file='{overlay}'/></disk></disks></domainsnapshot>"
        ))
        .expect("snapshot");
        s.domain = Some(def.clone());
        s
    }

    /// Named image nodes as QEMU lists them: (node, file).
    fn named(nodes: &[(&str, &str)]) -> Answer {
        Answer::ok(serde_json::Value::Array(
            nodes
                .iter()
                .map(|(n, f)| json!({"node-name": n, "drv": "qcow2", "file": f, "ro": false}))
                .collect(),
        ))
    }

    fn top_is(qmp: &FakeMonitor, node: &str, file: &str, depth: u64) {
        qmp.answer(
            "query-block",
            Answer::ok(json!([{
                "device": "", "qdev": "/machine/peripheral/virtio-disk0/virtio-backend",
                "inserted": {"node-name": node, "drv": "qcow2", "ro": false, "file": file,
                             "backing_file_depth": depth,
                             "image": {"virtual-size": 1048576, "snapshots": []}}
            }])),
        );
    }

    #[tokio::test]
    async fn deleting_the_top_snapshot_commits_the_active_layer_and_pivots() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (driver, qmp, def, _) = running(dir.path()).await;
        let (ctx, sink) = fake::ctx(&def);
        let base = format!("{}/a.qcow2", dir.path().display());
        let over = format!("{}/a.e1.qcow2", dir.path().display());
        qmp.answer(
            "query-named-block-nodes",
            named(&[("vb-vda-1", &over), ("vb-vda", &base)]),
        );
        top_is(&qmp, "vb-vda-1", &over, 1);
        // ready (half-way reported, then all), completed, concluded
        qmp.answer(
            "query-jobs",
            Answer::computed(|log| {
                let id = log
                    .iter()
                    .find_map(|c| c["arguments"]["job-id"].as_str())
                    .unwrap_or_default();
                let completed = log.iter().any(|c| c["execute"] == "job-complete");
                if completed {
                    json!([{"id": id, "type": "commit", "status": "concluded",
                            "current-progress": 100, "total-progress": 100}])
                } else {
                    json!([{"id": id, "type": "commit", "status": "ready",
                            "current-progress": 50, "total-progress": 100}])
                }
            }),
        );
        let snap = external(&def, &over);
        let out = driver
            .snapshot_delete(&ctx, &snap, true, false, &chains(&[&[&over, &base]]))
            .await
            .expect("delete");
        assert_eq!(out.collapsed, std::slice::from_ref(&over));
        let log = qmp.log();
        let id = log
            .iter()
            .find_map(|c| c["arguments"]["job-id"].as_str())
            .unwrap_or_default()
            .to_owned();
        assert!(id.starts_with("vb-block-commit-"), "{id}");
        assert_eq!(
            log,
            [
                json!({"execute": "query-named-block-nodes", "arguments": {"flat": true}}),
                json!({"execute": "query-block"}),
                json!({"execute": "query-status"}),
                json!({"execute": "block-commit", "arguments": {
                    "device": "vb-vda-1", "top-node": "vb-vda-1", "base-node": "vb-vda",
                    "auto-dismiss": false, "job-id": id}}),
                json!({"execute": "query-jobs"}),
                json!({"execute": "job-complete", "arguments": {"id": id}}),
                json!({"execute": "query-jobs"}),
                json!({"execute": "job-dismiss", "arguments": {"id": id}}),
                json!({"execute": "query-status"}),
                json!({"execute": "blockdev-del", "arguments": {"node-name": "vb-vda-1"}}),
                json!({"execute": "query-named-block-nodes", "arguments": {"flat": true}}),
            ]
        );
        let progress: Vec<f64> = crate::util::lock(&sink.0)
            .iter()
            .filter_map(|e| match e {
                crate::drivers::DriverEvent::JobProgress(p) => Some(*p),
                _ => None,
            })
            .collect();
        assert_eq!(progress, [0.5, 1.0]);
        // the merged image is listed, to go once no definition uses it
        let listed = registry::load(&driver.image_registry(&ctx.uuid));
        assert_eq!(listed, [over]);
    }

    #[tokio::test]
    async fn deleting_a_snapshot_below_another_commits_between_and_relinks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (driver, qmp, def, ctx) = running(dir.path()).await;
        let base = format!("{}/a.qcow2", dir.path().display());
        let mid = format!("{}/a.e1.qcow2", dir.path().display());
        let top = format!("{}/a.e2.qcow2", dir.path().display());
        qmp.answer(
            "query-named-block-nodes",
            named(&[("vb-2", &top), ("vb-1", &mid), ("vb-vda", &base)]),
        );
        top_is(&qmp, "vb-2", &top, 2);
        qmp.answer("query-jobs", concluded());
        let snap = external(&def, &mid);
        let out = driver
            .snapshot_delete(
                &ctx,
                &snap,
                true,
                false,
                &chains(&[&[&top, &mid, &base], &[&mid, &base]]),
            )
            .await
            .expect("delete");
        assert_eq!(out.collapsed, [mid]);
        let log = qmp.log();
        let commit = log
            .iter()
            .find(|c| c["execute"] == "block-commit")
            .expect("commit");
        assert_eq!(commit["arguments"]["device"], "vb-2");
        assert_eq!(commit["arguments"]["top-node"], "vb-1");
        assert_eq!(commit["arguments"]["base-node"], "vb-vda");
        assert_eq!(commit["arguments"]["backing-file"], json!(base));
        assert!(!qmp.commands().contains(&"job-complete".to_owned()));
    }

    #[tokio::test]
    async fn a_failed_commit_keeps_the_chain_and_is_the_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (driver, qmp, def, ctx) = running(dir.path()).await;
        let base = format!("{}/a.qcow2", dir.path().display());
        let over = format!("{}/a.e1.qcow2", dir.path().display());
        qmp.answer(
            "query-named-block-nodes",
            named(&[("vb-vda-1", &over), ("vb-vda", &base)]),
        );
        top_is(&qmp, "vb-vda-1", &over, 1);
        qmp.answer(
            "query-jobs",
            Answer::computed(|log| {
                let id = log
                    .iter()
                    .find_map(|c| c["arguments"]["job-id"].as_str())
                    .unwrap_or_default();
                json!([{"id": id, "status": "concluded", "error": "No space left on device"}])
            }),
        );
        let live_before = driver.vm(&ctx).expect("vm").live();
        let e = driver
            .snapshot_delete(
                &ctx,
                &external(&def, &over),
                true,
                false,
                &chains(&[&[&over, &base]]),
            )
            .await
            .expect_err("commit fails");
        assert!(e.to_string().contains("No space left"), "{e}");
        assert!(e.to_string().contains("both kept"), "{e}");
        // dismissed; nothing closed; the running definition unchanged
        let cmds = qmp.commands();
        assert!(cmds.contains(&"job-dismiss".to_owned()), "{cmds:?}");
        assert!(!cmds.contains(&"blockdev-del".to_owned()), "{cmds:?}");
        assert_eq!(driver.vm(&ctx).expect("vm").live(), live_before);
    }

    #[tokio::test]
    async fn a_second_branch_is_refused_before_anything_is_sent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (driver, qmp, def, ctx) = running(dir.path()).await;
        let base = format!("{}/a.qcow2", dir.path().display());
        let snap = external(&def, "/x/a.e1.qcow2");
        let two = chains(&[&["/x/r1.qcow2", &base], &["/x/a.e1.qcow2", &base]]);
        let e = driver
            .snapshot_delete_check(&snap, false, &two)
            .expect_err("two branches");
        assert!(matches!(e, DriverError::NotSupported(_)), "{e:?}");
        assert!(driver.snapshot_delete_check(&snap, true, &two).is_ok());
        let e = driver
            .snapshot_delete(&ctx, &snap, true, false, &two)
            .await
            .expect_err("two branches");
        assert!(e.to_string().contains("block-stream"), "{e}");
        assert!(qmp.log().is_empty(), "{:?}", qmp.log());
    }

    #[tokio::test]
    async fn offline_delete_commits_and_rebases_with_qemu_img() {
        let dir = tempfile::tempdir().expect("tempdir");
        let driver = fake::driver(dir.path(), FakeSpawner::default());
        if !driver.img.available() {
            eprintln!("qemu-img not installed; skipped");
            return;
        }
        let p = |n: &str| dir.path().join(n).display().to_string();
        run(&["create", "-q", "-f", "qcow2", &p("a.qcow2"), "1M"]);
        for (img, over) in [("a.qcow2", "a.e1.qcow2"), ("a.e1.qcow2", "a.e2.qcow2")] {
            run(&[
                "create",
                "-q",
                "-f",
                "qcow2",
                "-F",
                "qcow2",
                "-b",
                &p(img),
                &p(over),
            ]);
        }
        // data above the snapshot (qemu-io comes with qemu-img)
        let st = std::process::Command::new("qemu-io")
            .args(["-c", "write -P 0x11 0 64k", &p("a.e1.qcow2")])
            .output()
            .map(|o| o.status.success());
        let wrote = matches!(st, Ok(true));
        let def = fake::domain(&format!(
            "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>\
             <source file='{}'/><target dev='vda' bus='virtio'/></disk>",
            p("a.qcow2")
        ));
        let (ctx, _) = fake::ctx(&def);
        let snap = external(&def, &p("a.e1.qcow2"));
        let out = driver
            .snapshot_delete(
                &ctx,
                &snap,
                false,
                false,
                &chains(&[&[&p("a.e2.qcow2"), &p("a.e1.qcow2"), &p("a.qcow2")]]),
            )
            .await
            .expect("delete");
        assert_eq!(out.collapsed, [p("a.e1.qcow2")]);
        let info = driver
            .img
            .info(Path::new(&p("a.e2.qcow2")))
            .await
            .expect("info");
        assert_eq!(info.backing.as_deref(), Some(p("a.qcow2").as_str()));
        if !wrote {
            return;
        }
        // the data written above the snapshot is in its image now
        let out = std::process::Command::new("qemu-io")
            .args(["-c", "read -P 0x11 0 64k", &p("a.qcow2")])
            .output()
            .expect("qemu-io");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success() && !text.contains("failed"),
            "a.e1's data merged into a: {text}"
        );
    }

    #[tokio::test]
    async fn revert_to_external_puts_new_overlays_over_the_snapshots_images() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (driver, qmp, def, ctx) = running(dir.path()).await;
        if !driver.img.available() {
            eprintln!("qemu-img not installed; skipped");
            return;
        }
        let base = dir.path().join("a.qcow2");
        run(&[
            "create",
            "-q",
            "-f",
            "qcow2",
            &base.display().to_string(),
            "1M",
        ]);
        let before = std::fs::read(&base).expect("read");
        let snap = external(&def, &dir.path().join("a.e1.qcow2").display().to_string());
        let out = driver
            .snapshot_revert_impl(&ctx, &snap, RevertTarget::Inactive, 2)
            .await
            .expect("revert");
        // the running guest was stopped (a disk-only snapshot has no memory to load)
        assert!(driver.vm(&ctx).is_err());
        assert!(qmp.commands().iter().all(|c| c != "snapshot-load"));
        let new = dir.path().join("a.e1-revert1.qcow2");
        let info = driver.img.info(&new).await.expect("overlay");
        assert_eq!(
            info.backing.as_deref(),
            Some(base.display().to_string().as_str())
        );
        assert_eq!(std::fs::read(&base).expect("read"), before, "never written");
        assert_eq!(out.switched.len(), 1);
        assert_eq!(out.switched[0].old_source, base.display().to_string());
        assert_eq!(
            out.switched[0].disk.image_chain(),
            [new.display().to_string(), base.display().to_string()]
        );
        assert!(out.live.is_none());
        assert_eq!(
            registry::load(&driver.image_registry(&ctx.uuid)),
            [new.display().to_string()]
        );
        // again: another overlay, the first one left to the sweep
        driver
            .snapshot_revert_impl(&ctx, &snap, RevertTarget::Inactive, 3)
            .await
            .expect("revert again");
        assert!(dir.path().join("a.e1-revert2.qcow2").exists());
    }

    #[tokio::test]
    async fn sweep_removes_listed_images_nothing_uses_or_has_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (driver, qmp, _, ctx) = running(dir.path()).await;
        let p = |n: &str| dir.path().join(n).display().to_string();
        for n in ["stray.qcow2", "used.qcow2", "open.qcow2", "other.qcow2"] {
            std::fs::write(p(n), b"x").expect("file");
        }
        registry::add(
            &driver.image_registry(&ctx.uuid),
            &[p("stray.qcow2"), p("used.qcow2"), p("open.qcow2")],
        )
        .expect("list");
        qmp.answer(
            "query-named-block-nodes",
            named(&[("vb-o", &p("open.qcow2"))]),
        );
        driver.sweep_images(&ctx, &[p("used.qcow2")]).await;
        assert!(!Path::new(&p("stray.qcow2")).exists());
        assert!(Path::new(&p("used.qcow2")).exists());
        assert!(Path::new(&p("open.qcow2")).exists(), "QEMU has it open");
        assert!(Path::new(&p("other.qcow2")).exists(), "never listed");
        assert_eq!(
            registry::load(&driver.image_registry(&ctx.uuid)),
            [p("used.qcow2"), p("open.qcow2")]
        );
        // nothing listed unused: QEMU is not asked
        qmp.clear();
        driver
            .sweep_images(&ctx, &[p("used.qcow2"), p("open.qcow2")])
            .await;
        assert!(qmp.log().is_empty());
    }
}
