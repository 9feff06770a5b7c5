//! Snapshots of QEMU domains: [`plan`] (what each disk gets), [`internal`] (qcow2 internal
//! snapshots, memory included while running), [`external`] (disk-only overlays switched in
//! one transaction), [`quiesce`] (the guest agent's freeze around it), [`jobs`] (QMP jobs
//! with progress), [`nodes`] (which node holds what), [`img`] (`qemu-img`) and [`hooks`]
//! (test faults).
//!
//! External snapshots cannot be reverted to or deleted (other than their metadata): that
//! would need new overlays over the snapshot's images, or merging overlays back with
//! block-commit; both are refused with `NotSupported` before anything changes.

pub mod external;
pub mod hooks;
pub mod img;
pub mod internal;
pub mod jobs;
pub mod nodes;
pub mod plan;
pub mod quiesce;

use std::sync::Arc;

use serde_json::Value;

use self::{plan::Capture, quiesce::QgaFreeze};
use super::{QemuDriver, monitor::Vm};
use crate::{
    drivers::{
        DomainCtx, DriverError, DriverResult, RevertOutcome, RevertTarget, SnapshotOutcome,
        SnapshotRequest,
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
        if external && !self.img.available() || !external && vm.is_none() && !self.img.available() {
            return Err(DriverError::NotSupported(format!(
                "domain '{}': this snapshot needs qemu-img (package qemu-utils), which is not \
                 installed",
                ctx.name
            )));
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
            (None, true) => self.external_offline(req.definition, &plan).await,
        }
    }

    pub(super) async fn snapshot_revert_impl(
        &self,
        ctx: &DomainCtx,
        snap: &SnapshotDef,
        target: RevertTarget,
        id: u32,
    ) -> DriverResult<RevertOutcome> {
        let kind = snapshot_kind(snap);
        if kind != SnapshotKind::Internal {
            return Err(DriverError::NotSupported(format!(
                "reverting to {} snapshot '{}' is not supported",
                kind.as_str(),
                snap.name.as_deref().unwrap_or_default()
            )));
        }
        self.internal_revert(ctx, snap, target, id).await
    }

    pub(super) async fn snapshot_delete_impl(
        &self,
        ctx: &DomainCtx,
        snap: &SnapshotDef,
        metadata_only: bool,
    ) -> DriverResult<()> {
        if metadata_only {
            return Ok(());
        }
        let kind = snapshot_kind(snap);
        if kind != SnapshotKind::Internal {
            return Err(DriverError::NotSupported(format!(
                "deleting {} snapshot '{}' is not supported; use 'metadata-only'",
                kind.as_str(),
                snap.name.as_deref().unwrap_or_default()
            )));
        }
        self.internal_delete(ctx, snap).await
    }
}

#[cfg(test)]
mod tests {
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
        assert_eq!(live.devices.disks[0].source, def.devices.disks[0].source);
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
}
