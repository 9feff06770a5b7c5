//! Deleting external snapshots with their data kept, as libvirt 9.7+ does: for each disk the
//! snapshot captured, its image (the one it froze) and the single image over it are merged
//! into one by committing the upper image down into the snapshot's (`block-commit` while a
//! running QEMU has them open, pivoting the disk when the upper image is its active layer;
//! `qemu-img commit` and `rebase -u` of the images over it otherwise). The upper image then
//! leaves every chain (the core takes it out of every definition) and, once no definition
//! uses it, is removed.
//!
//! An image with no image over it left (its branch was reverted away) needs no merge: it is
//! removed once unused. An image with several images over it (a revert made a second branch)
//! would need its data streamed into each of them (`block-stream`); libvirt 9.7+ refuses
//! that case, and so does this driver, before anything changes.

use std::path::Path;

use serde_json::{Map, json};

use super::{
    super::QemuDriver,
    jobs, nodes,
    plan::{captured_disks, format_of},
};
use crate::{
    drivers::{DeleteOutcome, DomainCtx, DriverError, DriverResult, ImageChains},
    model::{DiskSnapshotKind, SnapshotDef},
};

/// One disk's merge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merge {
    pub target: String,
    /// The snapshot's image, which receives the data.
    pub base: String,
    pub base_format: &'static str,
    /// The one image over it, merged down and then gone.
    pub top: String,
    /// The images over `top`, which then back onto `base`.
    pub uppers: Vec<String>,
}

/// The images an external snapshot froze: (disk target, image, format), from its recorded
/// `<disks>` (every disk of its domain when it has none).
pub fn frozen_images(snap: &SnapshotDef) -> Vec<(String, String, &'static str)> {
    captured_disks(snap, DiskSnapshotKind::External, |_| true)
        .into_iter()
        .map(|(d, p)| (d.target_dev.clone(), p, format_of(d)))
        .collect()
}

/// What deleting external snapshot `snap` merges, given the chains that stay; refused (before
/// anything changes) where an image has several images over it.
pub fn plan(snap: &SnapshotDef, remaining: &ImageChains) -> DriverResult<Vec<Merge>> {
    let name = snap.name.as_deref().unwrap_or_default();
    let mut out = Vec::new();
    for (target, base, base_format) in frozen_images(snap) {
        let over = remaining.over(&base);
        match over.as_slice() {
            [] => {}
            [top] => {
                let uppers = remaining.over(top);
                out.push(Merge {
                    target,
                    base,
                    base_format,
                    top: top.clone(),
                    uppers,
                });
            }
            several => {
                return Err(DriverError::NotSupported(format!(
                    "deleting external snapshot '{name}' would need image {base} of disk \
                     '{target}' merged into each of the {} images over it ({}): a revert made \
                     a second branch on it, which needs block-stream, and libvirt refuses \
                     this too; delete the snapshots of the other branch first, or delete \
                     with 'metadata-only' to keep the images",
                    several.len(),
                    several.join(", ")
                )));
            }
        }
    }
    Ok(out)
}

impl QemuDriver {
    /// Delete external snapshot `snap`, its data merged (see the module).
    pub(super) async fn external_delete(
        &self,
        ctx: &DomainCtx,
        snap: &SnapshotDef,
        remaining: &ImageChains,
    ) -> DriverResult<DeleteOutcome> {
        let merges = plan(snap, remaining)?;
        let name = snap.name.as_deref().unwrap_or_default();
        // the images that go: listed first, so that they are removed once unused even if
        // the daemon stops half-way (never while a definition still uses them)
        let going: Vec<&Path> = merges.iter().map(|m| Path::new(&m.top)).collect();
        self.register_images(&ctx.uuid, &going)?;
        // (a snapshot's image that nothing uses any more, its branch reverted away, goes
        // at the sweep after the delete if it was made for a snapshot)
        let mut collapsed = Vec::new();
        for m in &merges {
            let vm = self.vm(ctx).ok();
            let open = match &vm {
                Some(vm) => nodes::all_images(vm).await?,
                None => Vec::new(),
            };
            let top_node = open.iter().find(|n| n.file == m.top);
            match (&vm, top_node) {
                (Some(vm), Some(top_node)) => {
                    let base_node = open.iter().find(|n| n.file == m.base).ok_or_else(|| {
                        DriverError::Failed(format!(
                            "domain '{}': QEMU has {} open but not {}, the image below it",
                            ctx.name, m.top, m.base
                        ))
                    })?;
                    let tops = nodes::top_nodes(vm, &[m.target.as_str()]).await?;
                    let root = &tops[0].node;
                    let active = *root == top_node.node;
                    let mut args = Map::new();
                    args.insert("device".into(), json!(root));
                    args.insert("top-node".into(), json!(top_node.node));
                    args.insert("base-node".into(), json!(base_node.node));
                    if !active {
                        args.insert("backing-file".into(), json!(m.base));
                    }
                    jobs::run_block(vm, ctx, "block-commit", args)
                        .await
                        .map_err(|e| {
                            DriverError::Failed(format!(
                                "deleting snapshot '{name}': merging {} into {} failed \
                                 (both kept, the snapshot too): {e}",
                                m.top, m.base
                            ))
                        })?;
                    self.close_nodes(vm, &top_node.node, &m.top).await;
                    {
                        let mut live = crate::util::lock(&vm.live);
                        for d in live.devices.disks.iter_mut() {
                            d.collapse(&m.top);
                        }
                    }
                    if let Err(e) = self.save_status(vm).await {
                        tracing::error!("domain '{}': {e}", vm.name);
                    }
                }
                (vm, _) => {
                    if vm.is_some() && open.iter().any(|n| n.file == m.base) {
                        return Err(DriverError::InvalidState(format!(
                            "deleting snapshot '{name}': the running domain has {} open \
                             without {} over it; cannot merge them",
                            m.base, m.top
                        )));
                    }
                    self.merge_offline(m).await.map_err(|e| {
                        DriverError::Failed(format!("deleting snapshot '{name}': {e}"))
                    })?;
                }
            }
            collapsed.push(m.top.clone());
        }
        Ok(DeleteOutcome { collapsed })
    }

    /// Close what QEMU still has open of merged image `file`: nodes the monitor added (an
    /// overlay's `blockdev-add`, the command line's `-blockdev` of the first top) stay open
    /// until deleted, its format node `node` first, then the protocol node under it. Nodes
    /// QEMU opened itself (backing files) went with the chain; their delete fails, harmlessly.
    async fn close_nodes(&self, vm: &super::super::monitor::Vm, node: &str, file: &str) {
        if let Err(e) = vm
            .command("blockdev-del", Some(json!({ "node-name": node })))
            .await
        {
            tracing::debug!("domain '{}': {e}", vm.name);
            return;
        }
        let Ok(all) = nodes::all_nodes(vm).await else {
            return;
        };
        for (n, drv, f) in all {
            if f == file
                && drv == "file"
                && let Err(e) = vm
                    .command("blockdev-del", Some(json!({ "node-name": n })))
                    .await
            {
                tracing::debug!("domain '{}': {e}", vm.name);
            }
        }
    }

    /// Merge with qemu-img: no QEMU has these images open.
    async fn merge_offline(&self, m: &Merge) -> Result<(), String> {
        self.img
            .commit(Path::new(&m.top))
            .await
            .map_err(|e| format!("merging {} into {} failed (both kept): {e}", m.top, m.base))?;
        for u in &m.uppers {
            self.img
                .rebase_unsafe(Path::new(u), &m.base, m.base_format)
                .await
                .map_err(|e| {
                    format!(
                        "{} was merged into {}, but {u} could not be set to back onto it: {e}",
                        m.top, m.base
                    )
                })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_chains as chains;
    use super::*;

    fn snap(disk_src: &str) -> SnapshotDef {
        let mut s = SnapshotDef::from_xml(
            "<domainsnapshot><name>e1</name><state>disk-snapshot</state>\
             <memory snapshot='no'/><disks><disk name='vda' snapshot='external'>\
             <source file='/i/a.e1.qcow2'/></disk></disks></domainsnapshot>",
        )
        .expect("snapshot");
        s.domain = Some(
            crate::model::DomainDef::from_xml(&format!(
                "<domain type='qemu'><name>g</name><memory>1024</memory><os><type>hvm</type>\
                 </os><devices><disk type='file' device='disk'><driver name='qemu' \
                 type='qcow2'/><source file='{disk_src}'/><target dev='vda' bus='virtio'/>\
                 </disk></devices></domain>"
            ))
            .expect("domain"),
        );
        s
    }

    #[test]
    fn one_image_over_merges_it_down() {
        let s = snap("/i/a.qcow2");
        let r = chains(&[
            &["/i/a.e2.qcow2", "/i/a.e1.qcow2", "/i/a.qcow2"],
            &["/i/a.e1.qcow2", "/i/a.qcow2"],
        ]);
        assert_eq!(
            plan(&s, &r).expect("plan"),
            [Merge {
                target: "vda".into(),
                base: "/i/a.qcow2".into(),
                base_format: "qcow2",
                top: "/i/a.e1.qcow2".into(),
                uppers: vec!["/i/a.e2.qcow2".into()],
            }]
        );
    }

    #[test]
    fn nothing_over_needs_no_merge_and_two_branches_are_refused() {
        let s = snap("/i/a.e1.qcow2");
        assert!(
            plan(&s, &chains(&[&["/i/a.r1.qcow2", "/i/a.qcow2"]]))
                .expect("plan")
                .is_empty()
        );
        let e = plan(
            &snap("/i/a.qcow2"),
            &chains(&[
                &["/i/a.r1.qcow2", "/i/a.qcow2"],
                &["/i/a.e1.qcow2", "/i/a.qcow2"],
            ]),
        )
        .expect_err("two branches");
        assert!(
            matches!(&e, DriverError::NotSupported(m) if m.contains("block-stream")
                && m.contains("/i/a.r1.qcow2")),
            "{e:?}"
        );
    }
}
