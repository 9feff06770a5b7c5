//! The test driver: an in-memory simulation of a hypervisor, as libvirt's test driver.
//!
//! Guests "run" as entries in a table with a start time, so states, events and statistics
//! behave as with a real driver, on any machine. A domain can ask for every operation to take
//! a while, to exercise concurrency, with an element in its metadata:
//!
//! ```xml
//! <metadata><delay xmlns="https://virtbus.org/xmlns/test/1" ms="2000"/></metadata>
//! ```

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use uuid::Uuid;

use super::{
    Completion, DomainCtx, Driver, DriverCaps, DriverError, DriverEvent, DriverResult, RevertMode,
    RevertOutcome, RevertTarget, SnapshotOutcome, SnapshotRequest, Started, StatValue, Stats,
    quiesce::{self, AgentFailure, FreezeAgent, FreezeOwner, FreezeStatus},
};
use crate::{
    core::options::PowerMode,
    model::{DomainDef, DomainType, SnapshotDef},
};

/// The namespace of the test driver's settings inside `<metadata>`.
pub const TEST_NS: &str = "https://virtbus.org/xmlns/test/1";

/// A simulated guest.
struct Vm {
    /// When it last started running, and how long it ran before.
    running_since: Option<Instant>,
    ran_ns_before: u64,
    vcpus: u32,
    frozen: bool,
    delay: Duration,
}

impl Vm {
    /// Nanoseconds spent running (not paused) since it started.
    fn ran_ns(&self) -> u64 {
        self.ran_ns_before
            + self
                .running_since
                .map(|t| t.elapsed().as_nanos() as u64)
                .unwrap_or(0)
    }

    fn cpu_ns(&self) -> u64 {
        // A quarter of each vCPU busy: plausible and always increasing while running.
        self.ran_ns() / 4 * u64::from(self.vcpus)
    }

    fn pause(&mut self) {
        self.ran_ns_before = self.ran_ns();
        self.running_since = None;
    }
}

/// Simulated I/O per second of running time: (read requests, write requests) of 4 KiB on a
/// disk, and (received, sent) bytes on an interface.
const DISK_IOPS: (u64, u64) = (40, 15);
const NET_BPS: (u64, u64) = (12_000, 3_000);

#[derive(Default)]
pub struct TestDriver {
    vms: Mutex<HashMap<Uuid, Vm>>,
}

impl TestDriver {
    pub fn new() -> Self {
        Self::default()
    }

    fn with_vm<T>(&self, ctx: &DomainCtx, f: impl FnOnce(&mut Vm) -> T) -> DriverResult<T> {
        let mut vms = crate::core::events::lock(&self.vms);
        let vm = vms.get_mut(&ctx.uuid).ok_or_else(|| {
            DriverError::InvalidState(format!("domain '{}' is not running", ctx.name))
        })?;
        Ok(f(vm))
    }

    /// Sleep for the domain's configured delay, simulating a slow hypervisor.
    async fn delay(&self, ctx: &DomainCtx) -> DriverResult<()> {
        let d = self.with_vm(ctx, |vm| vm.delay).unwrap_or_default();
        if !d.is_zero() {
            tokio::time::sleep(d).await;
        }
        Ok(())
    }
}

/// The simulated guest's agent: freezes and thaws the simulated filesystems at once.
struct SimAgent<'a> {
    driver: &'a TestDriver,
    ctx: &'a DomainCtx,
}

impl SimAgent<'_> {
    fn with_vm<T>(&self, f: impl FnOnce(&mut Vm) -> T) -> Result<T, AgentFailure> {
        self.driver.with_vm(self.ctx, f).map_err(|e| AgentFailure {
            message: e.to_string(),
            sent: false,
            timeout: false,
        })
    }
}

#[async_trait]
impl FreezeAgent for SimAgent<'_> {
    async fn status(&self) -> Result<FreezeStatus, AgentFailure> {
        self.with_vm(|vm| {
            if vm.frozen {
                FreezeStatus::Frozen
            } else {
                FreezeStatus::Thawed
            }
        })
    }

    async fn freeze(&self) -> Result<u32, AgentFailure> {
        self.with_vm(|vm| {
            vm.frozen = true;
            1
        })
    }

    async fn thaw(&self) -> Result<u32, AgentFailure> {
        self.with_vm(|vm| u32::from(std::mem::take(&mut vm.frozen)))
    }
}

/// The delay a definition asks for, from its metadata.
fn configured_delay(def: &DomainDef) -> Duration {
    let Some(meta) = def.metadata.as_deref() else {
        return Duration::ZERO;
    };
    let wrapped = format!("<m>{meta}</m>");
    let Ok(doc) = roxmltree::Document::parse(&wrapped) else {
        return Duration::ZERO;
    };
    doc.root_element()
        .children()
        .find(|n| n.tag_name().namespace() == Some(TEST_NS) && n.has_tag_name("delay"))
        .and_then(|n| n.attribute("ms"))
        .and_then(|ms| ms.parse::<u64>().ok())
        .map(|ms| Duration::from_millis(ms.min(600_000)))
        .unwrap_or_default()
}

#[async_trait]
impl Driver for TestDriver {
    fn name(&self) -> &'static str {
        "test"
    }

    fn capabilities(&self) -> DriverCaps {
        DriverCaps {
            name: "test",
            domain_types: vec![DomainType::Test],
            details_xml: String::new(),
            snapshot_internal: true,
            snapshot_external: false,
            quiesce: true,
        }
    }

    async fn start(
        &self,
        ctx: &DomainCtx,
        def: &DomainDef,
        paused: bool,
        _id: u32,
    ) -> DriverResult<Started> {
        let delay = configured_delay(def);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let vm = Vm {
            running_since: (!paused).then(Instant::now),
            ran_ns_before: 0,
            vcpus: def.vcpus(),
            frozen: false,
            delay,
        };
        crate::core::events::lock(&self.vms).insert(ctx.uuid, vm);
        Ok(Started { live: None })
    }

    async fn shutdown(&self, ctx: &DomainCtx, _mode: PowerMode) -> DriverResult<Completion> {
        self.delay(ctx).await?;
        Ok(Completion::Done)
    }

    async fn reboot(&self, ctx: &DomainCtx, _mode: PowerMode) -> DriverResult<Completion> {
        self.delay(ctx).await?;
        self.with_vm(ctx, |vm| vm.frozen = false)?;
        Ok(Completion::Done)
    }

    async fn destroy(&self, ctx: &DomainCtx, _graceful: bool) -> DriverResult<()> {
        self.delay(ctx).await?;
        crate::core::events::lock(&self.vms).remove(&ctx.uuid);
        Ok(())
    }

    async fn reset(&self, ctx: &DomainCtx) -> DriverResult<()> {
        self.delay(ctx).await?;
        self.with_vm(ctx, |vm| vm.frozen = false)?;
        ctx.report(DriverEvent::Rebooted);
        Ok(())
    }

    async fn suspend(&self, ctx: &DomainCtx) -> DriverResult<()> {
        self.delay(ctx).await?;
        self.with_vm(ctx, Vm::pause)
    }

    async fn resume(&self, ctx: &DomainCtx) -> DriverResult<()> {
        self.delay(ctx).await?;
        self.with_vm(ctx, |vm| vm.running_since = Some(Instant::now()))
    }

    async fn stats(&self, ctx: &DomainCtx, live: &DomainDef) -> DriverResult<Stats> {
        let (cpu, ran_ns) = self.with_vm(ctx, |vm| (vm.cpu_ns(), vm.ran_ns()))?;
        let per_s = |rate: u64| rate * ran_ns / 1_000_000_000;
        let mut s: Stats = vec![
            ("cpu.time".into(), StatValue::U64(cpu)),
            ("cpu.user".into(), StatValue::U64(cpu / 10 * 7)),
            ("cpu.system".into(), StatValue::U64(cpu / 10 * 3)),
            (
                "balloon.current".into(),
                StatValue::U64(live.current_memory()),
            ),
            ("balloon.maximum".into(), StatValue::U64(live.memory_kib)),
            (
                "vcpu.current".into(),
                StatValue::U64(u64::from(live.vcpus())),
            ),
            (
                "vcpu.maximum".into(),
                StatValue::U64(u64::from(live.max_vcpus)),
            ),
        ];
        let per_vcpu = cpu / u64::from(live.vcpus().max(1));
        for i in 0..live.vcpus() {
            s.push((format!("vcpu.{i}.state"), StatValue::I64(1)));
            s.push((format!("vcpu.{i}.time"), StatValue::U64(per_vcpu)));
        }
        let disks = &live.devices.disks;
        s.push(("block.count".into(), StatValue::U64(disks.len() as u64)));
        for (i, d) in disks.iter().enumerate() {
            let (rd, wr) = (per_s(DISK_IOPS.0), per_s(DISK_IOPS.1));
            let b = format!("block.{i}");
            s.push((format!("{b}.name"), StatValue::Str(d.target_dev.clone())));
            s.push((format!("{b}.rd.reqs"), StatValue::U64(rd)));
            s.push((format!("{b}.rd.bytes"), StatValue::U64(rd * 4096)));
            s.push((format!("{b}.wr.reqs"), StatValue::U64(wr)));
            s.push((format!("{b}.wr.bytes"), StatValue::U64(wr * 4096)));
        }
        let nics = &live.devices.interfaces;
        s.push(("net.count".into(), StatValue::U64(nics.len() as u64)));
        for (i, n) in nics.iter().enumerate() {
            let name = n.target_dev.clone().unwrap_or_else(|| format!("vnet{i}"));
            let (rx, tx) = (per_s(NET_BPS.0), per_s(NET_BPS.1));
            let b = format!("net.{i}");
            s.push((format!("{b}.name"), StatValue::Str(name)));
            s.push((format!("{b}.rx.bytes"), StatValue::U64(rx)));
            s.push((format!("{b}.rx.pkts"), StatValue::U64(rx / 1000)));
            s.push((format!("{b}.tx.bytes"), StatValue::U64(tx)));
            s.push((format!("{b}.tx.pkts"), StatValue::U64(tx / 500)));
        }
        Ok(s)
    }

    async fn snapshot_create(
        &self,
        ctx: &DomainCtx,
        req: SnapshotRequest<'_>,
    ) -> DriverResult<SnapshotOutcome> {
        if !req.opts.quiesce {
            self.delay(ctx).await?;
            return Ok(SnapshotOutcome::default());
        }
        // the same rules as with a real agent: a user's freeze is left alone, ours is undone
        let agent = SimAgent { driver: self, ctx };
        let owner = FreezeOwner::default();
        let what = format!("domain '{}'", ctx.name);
        let q = quiesce::quiesced(&agent, &owner, &what, || self.delay(ctx)).await;
        q.error_with_thaw().0?;
        Ok(SnapshotOutcome::default())
    }

    async fn snapshot_revert(
        &self,
        ctx: &DomainCtx,
        snap: &SnapshotDef,
        active_now: bool,
        target: RevertTarget,
        _id: u32,
    ) -> DriverResult<RevertOutcome> {
        self.delay(ctx).await?;
        if active_now {
            crate::core::events::lock(&self.vms).remove(&ctx.uuid);
        }
        if target != RevertTarget::Inactive {
            let def = snap.domain.as_ref().ok_or_else(|| {
                DriverError::InvalidState("snapshot has no domain definition".into())
            })?;
            self.start(ctx, def, target == RevertTarget::Paused, 0)
                .await?;
        }
        Ok(RevertOutcome {
            mode: RevertMode::Restarted,
            live: None,
        })
    }

    async fn snapshot_delete(
        &self,
        ctx: &DomainCtx,
        _snap: &SnapshotDef,
        _active_now: bool,
        _metadata_only: bool,
    ) -> DriverResult<()> {
        if crate::core::events::lock(&self.vms).contains_key(&ctx.uuid) {
            self.delay(ctx).await?;
        }
        Ok(())
    }

    async fn fs_freeze(&self, ctx: &DomainCtx, _mountpoints: &[String]) -> DriverResult<u32> {
        self.with_vm(ctx, |vm| {
            if vm.frozen {
                return Err(DriverError::InvalidState(format!(
                    "the filesystems of domain '{}' are already frozen",
                    ctx.name
                )));
            }
            vm.frozen = true;
            Ok(1)
        })?
    }

    async fn fs_thaw(&self, ctx: &DomainCtx, _mountpoints: &[String]) -> DriverResult<u32> {
        self.with_vm(ctx, |vm| u32::from(std::mem::take(&mut vm.frozen)))
    }

    fn forget(&self, uuid: &Uuid) {
        crate::core::events::lock(&self.vms).remove(uuid);
    }
}
