//! External disk-only snapshots: each disk gets a new qcow2 overlay over the image it used,
//! and from then on writes go there; the old image is the snapshot.
//!
//! Running: overlay files made (`qemu-img create -u`, the backing file being in use), opened
//! with `blockdev-add`, then every disk switched in one `transaction` of `blockdev-snapshot`
//! actions (with quiesce, inside the freeze). Shut off: `qemu-img create` only. Whatever
//! fails, the overlays this call made are closed and removed, and no disk is switched.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use serde_json::{Value, json};

use super::{
    super::{QemuDriver, monitor::Vm},
    img::QemuImg,
    nodes,
    plan::{Capture, DiskPlan, Plan},
    quiesce as qq,
};
use crate::{
    drivers::{
        DiskSwitch, DomainCtx, Driver, DriverError, DriverEvent, DriverResult, RevertMode,
        RevertOutcome, RevertTarget, SnapshotOutcome,
        quiesce::{self, Thaw},
    },
    model::{
        DomainDef, SnapshotDef,
        devices::{BackingImage, BackingStore, Disk, DiskDriver, DiskFormat, DiskSource, DiskType},
        state::StoppedDetail,
    },
};

/// QEMU's longest node name.
const MAX_NODE_NAME: usize = 31;

/// One disk's overlay, as prepared.
struct Overlay<'a> {
    disk: &'a DiskPlan,
    path: PathBuf,
    /// The image below: what the disk uses now.
    backing: String,
    backing_format: String,
    /// This call made the file (and so removes it on failure).
    made: bool,
}

fn overlays(plan: &Plan) -> Vec<(&DiskPlan, &Path, bool)> {
    plan.disks
        .iter()
        .filter_map(|d| match &d.capture {
            Capture::External { overlay, reuse } => Some((d, overlay.as_path(), *reuse)),
            Capture::Internal => None,
        })
        .collect()
}

/// An existing overlay file may be used only with `reuse-external`, and only if it is a
/// qcow2 image over the disk's image.
async fn check_existing(
    img: &QemuImg,
    disk: &DiskPlan,
    path: &Path,
    reuse: bool,
    backing: &str,
) -> DriverResult<bool> {
    if !path.exists() {
        return Ok(false);
    }
    if !reuse {
        return Err(DriverError::InvalidArgument(format!(
            "disk '{}': overlay {} already exists; remove it, name another file, or pass \
             'reuse-external' to use it",
            disk.target,
            path.display()
        )));
    }
    let info = img.info(path).await.map_err(|e| {
        DriverError::InvalidArgument(format!(
            "disk '{}': cannot reuse {}: {e}",
            disk.target,
            path.display()
        ))
    })?;
    let over = info.full_backing.as_deref().or(info.backing.as_deref());
    if info.format != "qcow2" || over != Some(backing) {
        return Err(DriverError::InvalidArgument(format!(
            "disk '{}': {} cannot be reused: it is a {} image over {}, not a qcow2 overlay \
             over {backing}",
            disk.target,
            path.display(),
            info.format,
            over.unwrap_or("nothing")
        )));
    }
    Ok(true)
}

/// Remove the overlay files this call made.
async fn remove_made(made: &[PathBuf]) {
    for p in made {
        if let Err(e) = tokio::fs::remove_file(p).await {
            tracing::warn!("cannot remove overlay {}: {e}", p.display());
        }
    }
}

/// The disk as it is once switched onto `overlay`: the old image becomes its backing store.
pub fn switched_disk(old: &Disk, overlay: &Path, backing_known_empty: bool) -> Disk {
    let mut d = old.clone();
    let below = BackingImage {
        disk_type: old.disk_type,
        // the image keeps the storage index it had as the disk's source (live only)
        index: old.source.as_ref().and_then(|s| s.index),
        format: Some(
            old.driver
                .as_ref()
                .and_then(|dr| dr.format)
                .unwrap_or(DiskFormat::Raw),
        ),
        source: old.source.as_ref().map(|s| DiskSource {
            path: s.path.clone(),
            network: s.network.clone(),
            index: None,
            startup_policy: None,
            volume: s.volume.clone(),
        }),
        backing_store: old
            .backing_store
            .clone()
            .or(backing_known_empty.then_some(BackingStore::End)),
    };
    d.disk_type = DiskType::File;
    d.source = Some(DiskSource {
        path: Some(overlay.display().to_string()),
        network: None,
        index: None,
        startup_policy: None,
        volume: None,
    });
    let mut drv = old.driver.clone().unwrap_or(DiskDriver {
        name: Some("qemu".into()),
        ..Default::default()
    });
    drv.format = Some(DiskFormat::Qcow2);
    d.driver = Some(drv);
    d.backing_store = Some(BackingStore::Image(Box::new(below)));
    d
}

/// A node name for an overlay of disk `dev`: `vb-<dev>-<random>`, so that no node has it
/// (no listing of all nodes needed; a clash would only fail `blockdev-add`).
fn overlay_node_name(dev: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(dev.as_bytes());
    let suffix = format!("-{:08x}", h.finish() as u32);
    let room = MAX_NODE_NAME - "vb-".len() - suffix.len();
    let dev: String = dev.chars().take(room).collect();
    format!("vb-{dev}{suffix}")
}

impl QemuDriver {
    /// External snapshot of a running guest.
    pub(super) async fn external_online(
        &self,
        ctx: &DomainCtx,
        vm: &Arc<Vm>,
        plan: &Plan,
        name: &str,
        quiesce_it: bool,
    ) -> DriverResult<SnapshotOutcome> {
        let wanted = overlays(plan);
        let targets: Vec<&str> = wanted.iter().map(|(d, _, _)| d.target.as_str()).collect();
        let tops = nodes::top_nodes(vm, &targets).await?;
        let mut prepared = Vec::new();
        for ((disk, path, reuse), top) in wanted.iter().zip(&tops) {
            let exists = check_existing(&self.img, disk, path, *reuse, &top.file).await?;
            prepared.push(Overlay {
                disk,
                path: path.to_path_buf(),
                backing: top.file.clone(),
                backing_format: top.format.clone(),
                made: !exists,
            });
        }
        let mut made: Vec<PathBuf> = Vec::new();
        let mut added: Vec<String> = Vec::new();
        let result = self
            .switch_online(
                ctx, vm, &prepared, &tops, name, quiesce_it, &mut made, &mut added,
            )
            .await;
        let thaw = match result {
            Ok(thaw) => thaw,
            Err(e) => {
                for node in added.iter().rev() {
                    if let Err(d) = vm
                        .command("blockdev-del", Some(json!({ "node-name": node })))
                        .await
                    {
                        tracing::warn!("domain '{}': cannot close overlay {node}: {d}", vm.name);
                    }
                }
                remove_made(&made).await;
                return Err(e);
            }
        };
        // the disks write to the overlays now: record it before anything else
        let mut switched = Vec::new();
        {
            let mut live = crate::util::lock(&vm.live);
            for (o, top) in prepared.iter().zip(&tops) {
                let Some(d) = live
                    .devices
                    .disks
                    .iter_mut()
                    .find(|d| d.target_dev == o.disk.target)
                else {
                    continue;
                };
                let old_source = d
                    .source
                    .as_ref()
                    .and_then(|s| s.path.clone())
                    .unwrap_or_default();
                *d = switched_disk(d, &o.path, top.backing_depth == 0);
                switched.push(DiskSwitch {
                    old_source,
                    disk: d.clone(),
                });
            }
        }
        if let Err(e) = self.save_status(vm).await {
            tracing::error!("domain '{}': {e}", vm.name);
        }
        let error_after = match thaw {
            Thaw::Unconfirmed(why) => {
                let q = self.freeze_agent(vm);
                qq::unconfirmed(&q, ctx, self.runtime.clone(), &why).await;
                Some(DriverError::Failed(format!(
                    "snapshot '{name}' of domain '{}' was taken (quiesced), but the guest may \
                     still be frozen: {why}",
                    vm.name
                )))
            }
            _ => None,
        };
        Ok(SnapshotOutcome {
            live: Some(vm.live()),
            switched,
            error_after,
        })
    }

    /// Make and open the overlays, then switch all disks at once (frozen, with quiesce).
    /// Returns how a freeze ended; `made` and `added` say what to undo on failure.
    #[allow(clippy::too_many_arguments)]
    async fn switch_online(
        &self,
        ctx: &DomainCtx,
        vm: &Arc<Vm>,
        prepared: &[Overlay<'_>],
        tops: &[nodes::TopNode],
        name: &str,
        quiesce_it: bool,
        made: &mut Vec<PathBuf>,
        added: &mut Vec<String>,
    ) -> DriverResult<Thaw> {
        let new: Vec<&Path> = prepared
            .iter()
            .filter(|o| o.made)
            .map(|o| o.path.as_path())
            .collect();
        self.register_images(&ctx.uuid, &new)?;
        for (o, top) in prepared.iter().zip(tops) {
            if o.made {
                self.img
                    .create_overlay(
                        &o.path,
                        &o.backing,
                        &o.backing_format,
                        Some(top.virtual_size),
                    )
                    .await
                    .map_err(|e| DriverError::Failed(format!("disk '{}': {e}", o.disk.target)))?;
                made.push(o.path.clone());
            }
        }
        self.hooks.after_overlay(&vm.name, name).await;
        let mut actions = Vec::new();
        for (o, top) in prepared.iter().zip(tops) {
            let node = overlay_node_name(&o.disk.target);
            vm.command(
                "blockdev-add",
                Some(json!({
                    "driver": "qcow2",
                    "node-name": node,
                    "file": {"driver": "file", "filename": o.path.display().to_string()},
                    "backing": Value::Null,
                })),
            )
            .await?;
            added.push(node.clone());
            actions.push(json!({
                "type": "blockdev-snapshot",
                "data": {"node": top.node, "overlay": node},
            }));
        }
        let transaction = json!({ "actions": actions });
        if !quiesce_it {
            vm.command("transaction", Some(transaction)).await?;
            return Ok(Thaw::NotOurs);
        }
        let q = self.freeze_agent(vm);
        let _owned = vm.freeze.lock.lock().await;
        let what = format!("domain '{}'", vm.name);
        let done = quiesce::quiesced(&q, &vm.freeze, &what, || async {
            qq::observe(&q, name).await;
            vm.command("transaction", Some(transaction)).await.map(drop)
        })
        .await;
        let found_frozen = done.found_frozen;
        if found_frozen {
            tracing::info!("{what}: snapshot '{name}' taken under the user's freeze");
        }
        let (result, thaw) = done.error_with_thaw();
        match (&result, &thaw) {
            (Err(_), Thaw::Unconfirmed(why)) => {
                qq::unconfirmed(&q, ctx, self.runtime.clone(), why).await
            }
            // The freeze recorded before it was sent is thawed now, or was never sent. (After
            // a snapshot the caller writes the status file, with the switched disks.)
            (Err(_), _) if !found_frozen => qq::save(vm, self.runtime.clone()).await,
            _ => {}
        }
        result.map(|()| thaw)
    }

    /// External snapshot of a shut-off domain: overlay files only.
    pub(super) async fn external_offline(
        &self,
        ctx: &DomainCtx,
        def: &DomainDef,
        plan: &Plan,
        name: &str,
    ) -> DriverResult<SnapshotOutcome> {
        let wanted = overlays(plan);
        let mut reused = Vec::new();
        for (disk, path, reuse) in &wanted {
            reused.push(check_existing(&self.img, disk, path, *reuse, &disk.source).await?);
        }
        let new: Vec<&Path> = wanted
            .iter()
            .zip(&reused)
            .filter(|(_, r)| !**r)
            .map(|((_, p, _), _)| *p)
            .collect();
        self.register_images(&ctx.uuid, &new)?;
        let mut made: Vec<PathBuf> = Vec::new();
        for ((disk, path, _), reused) in wanted.iter().zip(&reused) {
            if *reused {
                continue;
            }
            if let Err(e) = self
                .img
                .create_overlay(path, &disk.source, disk.format, None)
                .await
            {
                remove_made(&made).await;
                return Err(DriverError::Failed(format!("disk '{}': {e}", disk.target)));
            }
            made.push(path.to_path_buf());
        }
        self.hooks.after_overlay(&ctx.name, name).await;
        let mut switched = Vec::new();
        for (disk, path, _) in &wanted {
            let Some(old) = def.devices.disks.get(disk.index) else {
                continue;
            };
            let known_empty = match self.img.info(Path::new(&disk.source)).await {
                Ok(i) => i.backing.is_none(),
                Err(_) => false,
            };
            switched.push(DiskSwitch {
                old_source: disk.source.clone(),
                disk: switched_disk(old, path, known_empty),
            });
        }
        Ok(SnapshotOutcome {
            live: None,
            switched,
            error_after: None,
        })
    }
}

/// A fresh overlay path over `image` for a revert to snapshot `snap`:
/// `<dir>/<stem>.<snap>-revert<k>.qcow2`, the first `k` not in use.
pub fn revert_overlay(image: &str, snap: &str) -> PathBuf {
    let p = Path::new(image);
    let stem = super::plan::image_stem(p);
    (1u32..)
        .map(|k| p.with_file_name(format!("{stem}.{snap}-revert{k}.qcow2")))
        .find(|c| !c.exists())
        .unwrap_or_else(|| p.with_file_name(format!("{stem}.{snap}-revert.qcow2")))
}

impl QemuDriver {
    /// Revert to external snapshot `snap`, as libvirt 9.7+: a disk-only snapshot holds no
    /// memory, so the guest is stopped (when it runs) and, asked for `running` or `paused`,
    /// booted afresh; each disk the snapshot captured gets a new overlay over the image the
    /// snapshot froze, which stays as it is (other snapshots may build on it). The images
    /// of the state left behind go once no definition uses them (the core's sweep).
    pub(super) async fn external_revert(
        &self,
        ctx: &DomainCtx,
        snap: &SnapshotDef,
        target: RevertTarget,
        id: u32,
    ) -> DriverResult<RevertOutcome> {
        let (name, def) = super::recorded_domain(snap)?;
        self.need_img(ctx, &format!("reverting to external snapshot '{name}'"))?;
        let frozen = super::merge::frozen_images(snap);
        let mut planned = Vec::new();
        for (target_dev, image, format) in &frozen {
            let info = self.img.info(Path::new(image)).await.map_err(|e| {
                DriverError::InvalidState(format!(
                    "cannot revert to snapshot '{name}': image {image} of disk '{target_dev}' is unusable: {e}"
                ))
            })?;
            let path = revert_overlay(image, name);
            if planned
                .iter()
                .any(|(_, p, _, _): &(_, PathBuf, _, _)| *p == path)
            {
                return Err(DriverError::InvalidArgument(format!(
                    "snapshot '{name}': two disks use image {image}"
                )));
            }
            planned.push((target_dev.clone(), path, info, *format));
        }
        let paths: Vec<&Path> = planned.iter().map(|(_, p, _, _)| p.as_path()).collect();
        self.register_images(&ctx.uuid, &paths)?;
        let mut made: Vec<PathBuf> = Vec::new();
        for ((target_dev, path, info, format), (_, image, _)) in planned.iter().zip(&frozen) {
            if let Err(e) = self
                .img
                .create_overlay(path, image, format, Some(info.virtual_size))
                .await
            {
                remove_made(&made).await;
                return Err(DriverError::Failed(format!("disk '{target_dev}': {e}")));
            }
            made.push(path.clone());
        }
        self.hooks.after_overlay(&ctx.name, name).await;
        let mut new_def = def.clone();
        let mut switched = Vec::new();
        for ((target_dev, path, info, _), (_, image, _)) in planned.iter().zip(&frozen) {
            let Some(d) = new_def
                .devices
                .disks
                .iter_mut()
                .find(|d| d.target_dev == *target_dev)
            else {
                continue;
            };
            *d = switched_disk(d, path, info.backing.is_none());
            switched.push(DiskSwitch {
                old_source: image.clone(),
                disk: d.clone(),
            });
        }
        let was_active = self.vm(ctx).is_ok();
        if was_active {
            self.destroy(ctx, false).await?;
        }
        let live = if target == RevertTarget::Inactive {
            None
        } else {
            let paused = target == RevertTarget::Paused;
            match self.start(ctx, &new_def, paused, id).await {
                Ok(s) => s.live,
                Err(e) => {
                    if was_active {
                        ctx.report(DriverEvent::Stopped(StoppedDetail::Failed));
                    }
                    return Err(e);
                }
            }
        };
        Ok(RevertOutcome {
            mode: RevertMode::Restarted,
            live,
            switched,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_are_fresh_and_short() {
        let (a, b) = (overlay_node_name("vda"), overlay_node_name("vda"));
        assert!(
            a.starts_with("vb-vda-") && a.len() == "vb-vda-".len() + 8,
            "{a}"
        );
        assert_ne!(a, b);
        let long = "a".repeat(24);
        let n = overlay_node_name(&long);
        assert!(n.len() <= MAX_NODE_NAME, "{n}");
    }

    #[test]
    fn switched_disk_keeps_the_chain() {
        let def = DomainDef::from_xml(
            "<domain type='qemu'><name>g</name><memory>1024</memory><os><type>hvm</type></os>\
             <devices><disk type='file' device='disk'><driver name='qemu' type='raw' \
             cache='none'/><source file='/i/a.img'/><target dev='vda' bus='virtio'/></disk>\
             </devices></domain>",
        )
        .expect("def");
        let d = switched_disk(&def.devices.disks[0], Path::new("/i/a.s1.qcow2"), true);
        assert_eq!(d.image_chain(), ["/i/a.s1.qcow2", "/i/a.img"]);
        let drv = d.driver.as_ref().expect("driver");
        assert_eq!(drv.format, Some(DiskFormat::Qcow2));
        assert_eq!(
            drv.cache,
            def.devices.disks[0].driver.as_ref().and_then(|d| d.cache)
        );
        let Some(BackingStore::Image(b)) = &d.backing_store else {
            panic!("{:?}", d.backing_store)
        };
        assert_eq!(b.format, Some(DiskFormat::Raw));
        assert_eq!(b.backing_store, Some(BackingStore::End));
        // and once more on top: a chain of three
        let d2 = switched_disk(&d, Path::new("/i/a.s2.qcow2"), false);
        assert_eq!(
            d2.image_chain(),
            ["/i/a.s2.qcow2", "/i/a.s1.qcow2", "/i/a.img"]
        );
        // merged away: from the middle, then the top (the disk uses the image below, in
        // its format)
        let mut d3 = d2.clone();
        assert!(d3.collapse("/i/a.s1.qcow2"));
        assert_eq!(d3.image_chain(), ["/i/a.s2.qcow2", "/i/a.img"]);
        assert!(d3.collapse("/i/a.s2.qcow2"));
        assert_eq!(d3.image_chain(), ["/i/a.img"]);
        let drv = d3.driver.as_ref().expect("driver");
        assert_eq!(drv.format, Some(DiskFormat::Raw));
        assert_eq!(d3.backing_store, Some(BackingStore::End));
        assert!(
            !d3.collapse("/i/a.img"),
            "nothing known below the last image"
        );
        assert!(!d3.collapse("/elsewhere"));
    }
}
