//! Internal snapshots: the disks' state (and, while running, the guest's memory) kept inside
//! the qcow2 images under the snapshot's name.
//!
//! Running: `snapshot-save`, `snapshot-load` and `snapshot-delete` jobs over the disks' top
//! nodes, memory in the first. Shut off: `qemu-img snapshot -c/-a/-d` per image. A revert
//! loads state into the running QEMU when it runs the snapshot's very hardware; otherwise
//! the process is replaced (started paused from the snapshot's definition, loaded, then run
//! or left paused).

use std::{path::Path, sync::Arc};

use serde_json::{Map, Value, json};

use super::{
    super::{QemuDriver, monitor::Vm},
    jobs, nodes,
    plan::{Capture, Plan, captured_disks, format_of},
};
use crate::{
    drivers::{
        DomainCtx, Driver, DriverError, DriverEvent, DriverResult, RevertMode, RevertOutcome,
        RevertTarget, SnapshotOutcome,
    },
    model::{
        DiskSnapshotKind, DomainDef, MemorySnapshotKind, SnapshotDef, devices::CharSourceType,
        state::StoppedDetail,
    },
};

/// The images that hold internal snapshot `snap`: (disk target, image), from its recorded
/// `<disks>`, or for metadata without them every writable qcow2 disk of its domain.
pub fn images_of(snap: &SnapshotDef) -> Vec<(String, String)> {
    captured_disks(snap, DiskSnapshotKind::Internal, |d| {
        format_of(d) == "qcow2"
    })
    .into_iter()
    .map(|(d, p)| (d.target_dev.clone(), p))
    .collect()
}

/// A definition without what differs between two runs of the same hardware (pty paths,
/// automatic display ports, whether a guest agent has its channel open).
fn hardware(def: &DomainDef) -> DomainDef {
    let mut d = def.clone();
    d.title = None;
    d.description = None;
    d.metadata = None;
    let devs = &mut d.devices;
    for c in devs
        .serials
        .iter_mut()
        .chain(devs.consoles.iter_mut())
        .chain(devs.channels.iter_mut())
        .chain(devs.parallels.iter_mut())
    {
        if c.source_type == CharSourceType::Pty {
            c.source_path = None;
            c.tty = None;
        }
        c.target_state = None;
    }
    for g in devs.graphics.iter_mut() {
        if g.autoport == Some(true) {
            g.port = None;
            g.tls_port = None;
            g.websocket = None;
        }
    }
    d
}

/// Whether a guest running `live` can take the memory state of a snapshot of `snap`.
pub fn same_hardware(live: &DomainDef, snap: &DomainDef) -> bool {
    hardware(live) == hardware(snap)
}

fn has_memory(snap: &SnapshotDef) -> bool {
    snap.memory
        .as_ref()
        .is_some_and(|m| m.snapshot == MemorySnapshotKind::Internal)
        && matches!(snap.state.as_deref(), Some("running" | "paused"))
}

fn job_args(tag: &str, vmstate: Option<&str>, devices: &[String]) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("tag".into(), json!(tag));
    if let Some(v) = vmstate {
        m.insert("vmstate".into(), json!(v));
    }
    m.insert("devices".into(), json!(devices));
    m
}

impl QemuDriver {
    /// Snapshot of a running (or paused) guest, memory included.
    pub(super) async fn internal_online(
        &self,
        ctx: &DomainCtx,
        vm: &Vm,
        plan: &Plan,
        tag: &str,
    ) -> DriverResult<SnapshotOutcome> {
        let targets: Vec<&str> = plan
            .disks
            .iter()
            .filter(|d| d.capture == Capture::Internal)
            .map(|d| d.target.as_str())
            .collect();
        let tops = nodes::top_nodes(vm, &targets).await?;
        for (t, top) in targets.iter().zip(&tops) {
            if top.format != "qcow2" {
                return Err(DriverError::NotSupported(format!(
                    "disk '{t}' ({}) is a {} image: internal snapshots need qcow2",
                    top.file, top.format
                )));
            }
            if top.snapshots.iter().any(|s| s == tag) {
                return Err(DriverError::InvalidArgument(format!(
                    "image {} of disk '{t}' already holds an internal snapshot named '{tag}'",
                    top.file
                )));
            }
        }
        let devices: Vec<String> = tops.iter().map(|t| t.node.clone()).collect();
        let vmstate = devices.first().filter(|_| plan.memory).cloned();
        let args = job_args(tag, vmstate.as_deref(), &devices);
        if let Err(e) = jobs::run(vm, ctx, "snapshot-save", args).await {
            // a save that failed half-way may have left the tag in some images
            if let Ok(after) = nodes::top_nodes(vm, &targets).await {
                let left: Vec<String> = after
                    .into_iter()
                    .filter(|t| t.snapshots.iter().any(|s| s == tag))
                    .map(|t| t.node)
                    .collect();
                if !left.is_empty()
                    && let Err(d) =
                        jobs::run(vm, ctx, "snapshot-delete", job_args(tag, None, &left)).await
                {
                    tracing::warn!(
                        "domain '{}': cannot remove a partial snapshot: {d}",
                        vm.name
                    );
                }
            }
            return Err(e);
        }
        Ok(SnapshotOutcome::default())
    }

    /// Snapshot of a shut-off domain's images.
    pub(super) async fn internal_offline(
        &self,
        plan: &Plan,
        tag: &str,
    ) -> DriverResult<SnapshotOutcome> {
        for d in plan.disks.iter().filter(|d| d.capture == Capture::Internal) {
            let info = self
                .img
                .info(Path::new(&d.source))
                .await
                .map_err(|e| DriverError::Failed(format!("disk '{}': {e}", d.target)))?;
            if info.format != "qcow2" {
                return Err(DriverError::NotSupported(format!(
                    "disk '{}' ({}) is a {} image: internal snapshots need qcow2",
                    d.target, d.source, info.format
                )));
            }
            if info.has_snapshot(tag) {
                return Err(DriverError::InvalidArgument(format!(
                    "image {} of disk '{}' already holds an internal snapshot named '{tag}'",
                    d.source, d.target
                )));
            }
        }
        let mut done: Vec<&str> = Vec::new();
        for d in plan.disks.iter().filter(|d| d.capture == Capture::Internal) {
            if let Err(e) = self.img.snapshot_create(Path::new(&d.source), tag).await {
                for p in &done {
                    if let Err(u) = self.img.snapshot_delete(Path::new(p), tag).await {
                        tracing::warn!("cannot undo snapshot '{tag}' of {p}: {u}");
                    }
                }
                return Err(DriverError::Failed(format!("disk '{}': {e}", d.target)));
            }
            done.push(&d.source);
        }
        Ok(SnapshotOutcome::default())
    }

    /// Fail unless every image holds `tag`: checked before anything changes.
    async fn check_tags(
        &self,
        vm: Option<&Vm>,
        images: &[(String, String)],
        tag: &str,
    ) -> DriverResult<()> {
        let open = match vm {
            Some(vm) => nodes::all_images(vm).await?,
            None => Vec::new(),
        };
        for (t, p) in images {
            let held = match open.iter().find(|n| n.file == *p) {
                Some(n) => n.snapshots.iter().any(|s| s == tag),
                None => self
                    .img
                    .info(Path::new(p))
                    .await
                    .map_err(|e| DriverError::Failed(format!("disk '{t}': {e}")))?
                    .has_snapshot(tag),
            };
            if !held {
                return Err(DriverError::InvalidState(format!(
                    "image {p} of disk '{t}' holds no snapshot '{tag}': it was changed since"
                )));
            }
        }
        Ok(())
    }

    /// Load memory and disk state `tag` into the running `vm`, leaving it paused or running
    /// per `target`. A failed load leaves a guest with half its memory overwritten: it is
    /// stopped (the caller reports it).
    async fn load_into(
        &self,
        ctx: &DomainCtx,
        vm: &Arc<Vm>,
        devices: &[String],
        tag: &str,
        target: RevertTarget,
    ) -> DriverResult<()> {
        let running = vm
            .command("query-status", None)
            .await?
            .get("running")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if running {
            vm.command_quiet("stop", None, &["STOP"]).await?;
        }
        let args = job_args(tag, devices.first().map(String::as_str), devices);
        if let Err(e) = jobs::run(vm, ctx, "snapshot-load", args).await {
            let _ = self.destroy(ctx, false).await;
            return Err(DriverError::Failed(format!(
                "{e}; the guest was stopped, its state being half loaded"
            )));
        }
        if target == RevertTarget::Running {
            vm.command_quiet("cont", None, &["RESUME"]).await?;
        }
        Ok(())
    }

    pub(super) async fn internal_revert(
        &self,
        ctx: &DomainCtx,
        snap: &SnapshotDef,
        target: RevertTarget,
        id: u32,
    ) -> DriverResult<RevertOutcome> {
        let (tag, def) = super::recorded_domain(snap)?;
        let images = images_of(snap);
        let memory = has_memory(snap) && target != RevertTarget::Inactive;
        let vm = self.vm(ctx).ok();
        if let Some(vm) = &vm
            && memory
            && same_hardware(&vm.live(), def)
        {
            // the snapshot's images are the running disks' top images
            let targets: Vec<&str> = images.iter().map(|(t, _)| t.as_str()).collect();
            let tops = nodes::top_nodes(vm, &targets).await?;
            for ((t, p), top) in images.iter().zip(&tops) {
                if top.file != *p || !top.snapshots.iter().any(|s| s == tag) {
                    return Err(DriverError::InvalidState(format!(
                        "image {p} of disk '{t}' holds no snapshot '{tag}': it was changed since"
                    )));
                }
            }
            let devices: Vec<String> = tops.into_iter().map(|t| t.node).collect();
            if let Err(e) = self.load_into(ctx, vm, &devices, tag, target).await {
                if self.vm(ctx).is_err() {
                    ctx.report(DriverEvent::Stopped(StoppedDetail::Failed));
                }
                return Err(e);
            }
            return Ok(RevertOutcome {
                mode: RevertMode::InPlace,
                live: Some(vm.live()),
                switched: Vec::new(),
            });
        }
        self.check_tags(vm.as_deref(), &images, tag).await?;
        let was_active = vm.is_some();
        if was_active {
            self.destroy(ctx, false).await?;
        }
        let stopped = |e: DriverError| {
            if was_active {
                ctx.report(DriverEvent::Stopped(StoppedDetail::Failed));
            }
            e
        };
        if memory {
            let started = self.start(ctx, def, true, id).await.map_err(stopped)?;
            let vm = self.vm(ctx).map_err(stopped)?;
            let targets: Vec<&str> = images.iter().map(|(t, _)| t.as_str()).collect();
            let devices: Vec<String> = match nodes::top_nodes(&vm, &targets).await {
                Ok(tops) => tops.into_iter().map(|t| t.node).collect(),
                Err(e) => {
                    let _ = self.destroy(ctx, false).await;
                    return Err(stopped(e));
                }
            };
            if let Err(e) = self.load_into(ctx, &vm, &devices, tag, target).await {
                return Err(stopped(e));
            }
            return Ok(RevertOutcome {
                mode: RevertMode::Restarted,
                live: started.live,
                switched: Vec::new(),
            });
        }
        for (t, p) in &images {
            self.img
                .snapshot_apply(Path::new(p), tag)
                .await
                .map_err(|e| stopped(DriverError::Failed(format!("disk '{t}': {e}"))))?;
        }
        let live = if target == RevertTarget::Inactive {
            None
        } else {
            let paused = target == RevertTarget::Paused;
            self.start(ctx, def, paused, id)
                .await
                .map_err(stopped)?
                .live
        };
        Ok(RevertOutcome {
            mode: RevertMode::Restarted,
            live,
            switched: Vec::new(),
        })
    }

    pub(super) async fn internal_delete(
        &self,
        ctx: &DomainCtx,
        snap: &SnapshotDef,
    ) -> DriverResult<()> {
        let tag = snap.name.as_deref().unwrap_or_default();
        let images = images_of(snap);
        let mut devices: Vec<String> = Vec::new();
        let mut closed: Vec<&str> = Vec::new();
        let vm = self.vm(ctx).ok();
        let open = match &vm {
            Some(vm) => {
                // the disks' top images usually hold it; every image node only otherwise
                let tops = nodes::all_tops(vm).await?;
                if images
                    .iter()
                    .all(|(_, p)| tops.iter().any(|t| t.file == *p))
                {
                    tops.into_iter()
                        .map(|t| nodes::ImageNode {
                            node: t.node,
                            file: t.file,
                            read_only: t.read_only,
                            snapshots: t.snapshots,
                        })
                        .collect()
                } else {
                    nodes::all_images(vm).await?
                }
            }
            None => Vec::new(),
        };
        for (_, p) in &images {
            match open.iter().find(|n| n.file == *p) {
                Some(n) if n.snapshots.iter().any(|s| s == tag) => {
                    if n.read_only {
                        return Err(DriverError::InvalidState(format!(
                            "snapshot '{tag}' lives in {p}, which the running domain reads as \
                             a backing file and cannot change; delete it while the domain is \
                             shut off, or with 'metadata-only'"
                        )));
                    }
                    devices.push(n.node.clone());
                }
                Some(_) => {}
                None => closed.push(p),
            }
        }
        if let Some(vm) = &vm
            && !devices.is_empty()
        {
            jobs::run(vm, ctx, "snapshot-delete", job_args(tag, None, &devices)).await?;
        }
        for p in closed {
            let path = Path::new(p);
            if !path.exists() {
                tracing::info!("snapshot '{tag}': image {p} is gone; nothing to delete there");
                continue;
            }
            let info = self
                .img
                .info(path)
                .await
                .map_err(|e| DriverError::Failed(e.to_string()))?;
            if info.has_snapshot(tag) {
                self.img
                    .snapshot_delete(path, tag)
                    .await
                    .map_err(|e| DriverError::Failed(e.to_string()))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(extra: &str) -> DomainDef {
        DomainDef::from_xml(&format!(
            "<domain type='qemu'><name>g</name><uuid>9c3b1a2e-52b4-4f5e-9a55-0f7c3c1d2e4f</uuid>\
             <memory>1024</memory><os><type>hvm</type></os>\
             <devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/>\
             <source file='/i/a.qcow2'/><target dev='vda' bus='virtio'/></disk>\
             <disk type='file' device='disk'><driver name='qemu' type='raw'/>\
             <source file='/i/b.img'/><target dev='vdb' bus='virtio'/></disk>{extra}\
             </devices></domain>"
        ))
        .expect("def")
    }

    #[test]
    fn images_from_recorded_disks_or_qcow2() {
        let mut s = SnapshotDef {
            name: Some("s".into()),
            domain: Some(def("")),
            ..Default::default()
        };
        assert_eq!(images_of(&s), [("vda".to_owned(), "/i/a.qcow2".to_owned())]);
        s.disks = vec![crate::model::SnapshotDisk {
            name: "vda".into(),
            snapshot: Some(DiskSnapshotKind::No),
            disk_type: None,
            driver_type: None,
            source: None,
        }];
        assert!(images_of(&s).is_empty());
    }

    #[test]
    fn hardware_ignores_ptys_and_auto_ports() {
        let a = def("<serial type='pty'><source path='/dev/pts/3'/></serial>\
             <graphics type='vnc' port='5901' autoport='yes'/>");
        let b = def("<serial type='pty'><source path='/dev/pts/7'/></serial>\
             <graphics type='vnc' port='5902' autoport='yes'/>");
        assert!(same_hardware(&a, &b));
        let mut c = b.clone();
        c.memory_kib *= 2;
        assert!(!same_hardware(&a, &c));
        let d = def("<serial type='pty'/><graphics type='vnc' port='5902' autoport='no'/>");
        assert!(!same_hardware(&b, &d), "a fixed port is part of the setup");
    }
}
