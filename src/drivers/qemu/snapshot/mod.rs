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
