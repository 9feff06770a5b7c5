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
    Completion, DeleteOutcome, DomainCapsInfo, DomainCtx, Driver, DriverCaps, DriverError,
    DriverEvent, DriverResult, GuestAddress, GuestInfo, GuestInfoTypes, GuestInterface,
    ImageChains, MemoryStat, RevertMode, RevertOutcome, RevertTarget, SnapshotOutcome,
    SnapshotRequest, Started, StatValue, Stats,
    quiesce::{self, AgentFailure, FreezeAgent, FreezeOwner, FreezeStatus},
};
use crate::{
    model::options::PowerMode,
    model::{
        DomainDef, DomainType, SnapshotDef,
        devices::{Device, Interface, InterfaceType},
    },
};

/// The clock of a freshly started guest of libvirt's test driver (seconds, nanoseconds).
const TEST_CLOCK: (i64, u32) = (627_319_920, 0);

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
    /// Which of the driver's guests this is, in start order: spreads simulated addresses.
    slot: u32,
    /// The network interfaces, which the simulated guest agent reports.
    nics: Vec<Interface>,
    /// The guest's clock as libvirt's test driver keeps it: set, never ticking.
    clock: (i64, u32),
    /// The target of the first disk (not CD-ROM or floppy), where the simulated guest has
    /// its filesystems.
    root_disk: Option<String>,
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
    /// Managed save images: how long a guest had run when saved.
    saved: Mutex<HashMap<Uuid, u64>>,
    starts: std::sync::atomic::AtomicU32,
}

/// The CPU models the simulation offers, QEMU's generic and named x86 models.
const CPU_MODELS: &[&str] = &[
    "qemu64",
    "qemu32",
    "kvm64",
    "kvm32",
    "486",
    "pentium",
    "pentium2",
    "pentium3",
    "coreduo",
    "core2duo",
    "n270",
    "athlon",
    "phenom",
    "Conroe",
    "Penryn",
    "Nehalem",
    "Westmere",
    "SandyBridge",
    "IvyBridge",
    "Haswell",
    "Broadwell",
    "Skylake-Client",
    "Skylake-Server",
    "Cascadelake-Server",
    "Icelake-Server",
    "Opteron_G1",
    "Opteron_G2",
    "Opteron_G3",
    "Opteron_G4",
    "Opteron_G5",
    "EPYC",
    "EPYC-Rome",
    "EPYC-Milan",
];

impl TestDriver {
    pub fn new() -> Self {
        Self::default()
    }

    fn with_vm<T>(&self, ctx: &DomainCtx, f: impl FnOnce(&mut Vm) -> T) -> DriverResult<T> {
        let mut vms = crate::util::lock(&self.vms);
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

    /// libvirt's driver-independent defaults, and the architecture libvirt's test driver
    /// gives a guest that names none (its simulated host's first guest type, i686).
    async fn post_parse(&self, def: &mut DomainDef) -> DriverResult<()> {
        crate::model::defaults::before_driver(def);
        if def.os.arch.is_none() {
            def.os.arch = Some("i686".into());
        }
        crate::model::defaults::after_driver(def)
            .map_err(|e| DriverError::InvalidArgument(e.to_string()))
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
        let slot = self
            .starts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let vm = Vm {
            running_since: (!paused).then(Instant::now),
            ran_ns_before: 0,
            vcpus: def.vcpus(),
            frozen: false,
            delay,
            slot,
            nics: def.devices.interfaces.clone(),
            clock: TEST_CLOCK,
            root_disk: def
                .devices
                .disks
                .iter()
                .find(|d| d.device == crate::model::devices::DiskDevice::Disk)
                .map(|d| d.target_dev.clone()),
        };
        crate::util::lock(&self.vms).insert(ctx.uuid, vm);
        Ok(Started {
            live: None,
            agent: None,
        })
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
        crate::util::lock(&self.vms).remove(&ctx.uuid);
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
        if live.devices.memballoon.is_some() {
            let cur = live.current_memory();
            for (k, v) in [
                ("balloon.rss", cur / 2),
                ("balloon.unused", cur / 2),
                ("balloon.available", cur),
                ("balloon.usable", cur / 2),
            ] {
                s.push((k.into(), StatValue::U64(v)));
            }
        }
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
        let kind = crate::model::snapshot_kind(snap);
        if kind != crate::model::SnapshotKind::Internal {
            // no images to put new overlays on
            return Err(DriverError::NotSupported(format!(
                "the test driver does not revert to {} snapshots ('{}')",
                kind.as_str(),
                snap.name.as_deref().unwrap_or_default()
            )));
        }
        self.delay(ctx).await?;
        if active_now {
            crate::util::lock(&self.vms).remove(&ctx.uuid);
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
            switched: Vec::new(),
        })
    }

    async fn snapshot_delete(
        &self,
        ctx: &DomainCtx,
        _snap: &SnapshotDef,
        _active_now: bool,
        _metadata_only: bool,
        _remaining: &ImageChains,
    ) -> DriverResult<DeleteOutcome> {
        if crate::util::lock(&self.vms).contains_key(&ctx.uuid) {
            self.delay(ctx).await?;
        }
        Ok(DeleteOutcome::default())
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

    /// libvirt's test driver refuses a rate above its maximum even when no maximum is set.
    fn check_iotune(&self, t: &crate::model::devices::Iotune) -> DriverResult<()> {
        for i in 0..6 {
            if t.limits[i] > t.limits[i + 6] {
                return Err(DriverError::InvalidArgument(format!(
                    "{} cannot be set higher than {} ",
                    crate::model::devices::IOTUNE_FIELDS[i].0,
                    crate::model::devices::IOTUNE_FIELDS[i + 6].0
                )));
            }
        }
        Ok(())
    }

    /// Checkpoints are metadata only here, as in libvirt's test driver; every bitmap
    /// measures 1024 bytes, the number libvirt's test driver makes up.
    async fn checkpoint_bitmaps(
        &self,
        _ctx: &DomainCtx,
        _live: &DomainDef,
        req: super::checkpoint::BitmapRequest,
    ) -> DriverResult<Vec<Option<u64>>> {
        use super::checkpoint::BitmapRequest;
        Ok(match req {
            BitmapRequest::Measure(b) => b.iter().map(|_| Some(1024)).collect(),
            BitmapRequest::Add(_) | BitmapRequest::Remove(_) => Vec::new(),
        })
    }

    /// Throttling is the definition's alone; the disk errors are libvirt's test driver's
    /// made-up ones (disk i has error i % 2 + 1). Block jobs are not simulated, as in libvirt.
    async fn block(
        &self,
        ctx: &DomainCtx,
        live: &DomainDef,
        req: super::block::BlockRequest,
    ) -> DriverResult<super::block::BlockReply> {
        use super::block::{BlockReply, BlockRequest, DiskError};
        match req {
            BlockRequest::SetIoTune { .. } => Ok(BlockReply::Done),
            BlockRequest::Errors => Ok(BlockReply::Errors(
                live.devices
                    .disks
                    .iter()
                    .enumerate()
                    .map(|(i, d)| {
                        let e = if i % 2 == 0 {
                            DiskError::Unspec
                        } else {
                            DiskError::NoSpace
                        };
                        (d.target_dev.clone(), e)
                    })
                    .collect(),
            )),
            _ => Err(DriverError::Unimplemented(format!(
                "the test driver runs no block jobs for domain '{}'",
                ctx.name
            ))),
        }
    }

    fn forget(&self, uuid: &Uuid) {
        crate::util::lock(&self.vms).remove(uuid);
        crate::util::lock(&self.saved).remove(uuid);
    }

    /// As libvirt's test driver reports.
    fn hypervisor_version(&self) -> u64 {
        2
    }

    /// The simulation runs x86 guests of whatever type it is registered for.
    fn domain_caps(
        &self,
        _domain_type: DomainType,
        arch: &str,
        _machine: Option<&str>,
    ) -> Option<DomainCapsInfo> {
        if !matches!(arch, "x86_64" | "i686") {
            return None;
        }
        let strs = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect();
        Some(DomainCapsInfo {
            emulator: None,
            machines: strs(&["pc"]),
            max_vcpus: 255,
            firmware: strs(&["bios"]),
            loaders: Vec::new(),
            secure_boot: false,
            disk_buses: strs(&["virtio", "sata", "scsi", "usb"]),
            graphics: strs(&["vnc", "spice"]),
            video_models: strs(&["vga", "virtio"]),
            host_passthrough: true,
            cpu_models: strs(CPU_MODELS),
            maximum_cpu: true,
            ..DomainCapsInfo::default()
        })
    }

    async fn managed_save(&self, ctx: &DomainCtx, _live: &DomainDef) -> DriverResult<()> {
        self.delay(ctx).await?;
        let vm = crate::util::lock(&self.vms)
            .remove(&ctx.uuid)
            .ok_or_else(|| {
                DriverError::InvalidState(format!("domain '{}' is not running", ctx.name))
            })?;
        crate::util::lock(&self.saved).insert(ctx.uuid, vm.ran_ns());
        Ok(())
    }

    async fn managed_restore(
        &self,
        ctx: &DomainCtx,
        def: &DomainDef,
        paused: bool,
        id: u32,
    ) -> DriverResult<Started> {
        let before = crate::util::lock(&self.saved)
            .remove(&ctx.uuid)
            .unwrap_or(0);
        let started = self.start(ctx, def, paused, id).await?;
        self.with_vm(ctx, |vm| vm.ran_ns_before = before)?;
        Ok(started)
    }

    /// libvirt's test driver's image: its magic and the domain XML; the guest stops.
    async fn save_to_file(
        &self,
        ctx: &DomainCtx,
        header: &super::SaveImageHeader,
        path: &std::path::Path,
    ) -> DriverResult<()> {
        self.delay(ctx).await?;
        super::testimage::write(path, &ctx.name, &header.xml)?;
        crate::util::lock(&self.vms).remove(&ctx.uuid);
        Ok(())
    }

    /// libvirt's test driver keeps the live XML, id included.
    fn save_image_migratable(&self) -> bool {
        false
    }

    fn read_save_image(&self, path: &std::path::Path) -> DriverResult<super::SaveImageHeader> {
        super::testimage::read(path)
    }

    fn rewrite_save_image(
        &self,
        path: &std::path::Path,
        header: &super::SaveImageHeader,
    ) -> DriverResult<()> {
        super::testimage::read(path)?;
        let name = crate::model::DomainDef::from_xml(&header.xml)
            .map(|d| d.name)
            .unwrap_or_default();
        super::testimage::write(path, &name, &header.xml)
    }

    async fn restore_from_file(
        &self,
        ctx: &DomainCtx,
        def: &DomainDef,
        path: &std::path::Path,
        paused: bool,
        id: u32,
    ) -> DriverResult<Started> {
        super::testimage::read(path)?;
        self.start(ctx, def, paused, id).await
    }

    /// libvirt's test driver's dump: its magic alone; only the raw format.
    async fn core_dump(
        &self,
        ctx: &DomainCtx,
        path: &std::path::Path,
        opts: super::DumpOptions,
    ) -> DriverResult<()> {
        self.with_vm(ctx, |_| ())?;
        super::testimage::dump(path, &ctx.name)?;
        if opts.format != super::DumpFormat::Raw {
            return Err(DriverError::NotSupported(
                "kdump-compressed format is not supported here".into(),
            ));
        }
        Ok(())
    }

    async fn managed_save_remove(&self, ctx: &DomainCtx) -> DriverResult<()> {
        crate::util::lock(&self.saved).remove(&ctx.uuid);
        Ok(())
    }

    async fn set_vcpus(
        &self,
        ctx: &DomainCtx,
        _live: &DomainDef,
        count: u32,
    ) -> DriverResult<Option<Vec<crate::model::tuning::VcpuState>>> {
        self.delay(ctx).await?;
        self.with_vm(ctx, |vm| {
            vm.pause();
            vm.vcpus = count;
            vm.running_since = Some(Instant::now());
        })?;
        Ok(None)
    }

    /// libvirt's test driver keeps perf events in the definition alone.
    async fn set_perf(&self, ctx: &DomainCtx, _live: &DomainDef) -> DriverResult<()> {
        self.with_vm(ctx, |_| ())
    }

    /// libvirt's test driver keeps I/O threads in the definition alone.
    async fn change_iothread(
        &self,
        ctx: &DomainCtx,
        _live: &DomainDef,
        _change: super::livecfg::IoThreadChange,
    ) -> DriverResult<()> {
        self.with_vm(ctx, |_| ())
    }

    /// libvirt's test driver's figures, from the definition's balloon.
    async fn memory_stats(
        &self,
        ctx: &DomainCtx,
        live: &DomainDef,
    ) -> DriverResult<Vec<(MemoryStat, u64)>> {
        self.with_vm(ctx, |_| ())?;
        if live.devices.memballoon.is_none() {
            return Ok(Vec::new());
        }
        let cur = live.current_memory();
        Ok(vec![
            (MemoryStat::ActualBalloon, cur),
            (MemoryStat::SwapIn, 0),
            (MemoryStat::SwapOut, 0),
            (MemoryStat::MajorFault, 0),
            (MemoryStat::MinorFault, 0),
            (MemoryStat::Unused, cur / 2),
            (MemoryStat::Available, cur),
            (MemoryStat::Usable, cur / 2),
            (MemoryStat::LastUpdate, 627_319_920),
            (MemoryStat::DiskCaches, cur / 8),
            (MemoryStat::HugetlbPgalloc, 0),
            (MemoryStat::HugetlbPgfail, 0),
            (MemoryStat::Rss, cur / 2),
        ])
    }

    /// The simulated guest takes any balloon target at once.
    async fn set_memory(&self, ctx: &DomainCtx, _live: &DomainDef, _kib: u64) -> DriverResult<()> {
        self.delay(ctx).await?;
        self.with_vm(ctx, |_| ())
    }

    /// The simulated guest has nothing to tune: the definition is all (as libvirt's test
    /// driver keeps it).
    async fn apply_tunables(
        &self,
        ctx: &DomainCtx,
        _live: &DomainDef,
        _group: crate::drivers::TuneGroup,
    ) -> DriverResult<()> {
        self.with_vm(ctx, |_| ())
    }

    /// libvirt's test driver's fixed figures: two host CPUs.
    async fn cpu_stats(
        &self,
        ctx: &DomainCtx,
        _live: &DomainDef,
    ) -> DriverResult<crate::drivers::CpuStats> {
        const TOTAL: u64 = 48_772_617_035;
        self.with_vm(ctx, |_| ())?;
        Ok(crate::drivers::CpuStats {
            per_cpu: (0..2)
                .map(|i| (TOTAL / 2 + i, TOTAL / 2 + i - 1_234_567_890))
                .collect(),
            total: TOTAL,
            user: 5_540_000_000,
            system: 6_460_000_000,
        })
    }

    /// The simulated guest has no NMI handler that does anything visible.
    async fn inject_nmi(&self, ctx: &DomainCtx) -> DriverResult<()> {
        self.with_vm(ctx, |_| ())
    }

    /// The simulated guest has no keyboard: keys (already checked) go nowhere.
    async fn send_key(&self, ctx: &DomainCtx, _keys: &[u32], _hold_ms: u32) -> DriverResult<()> {
        self.with_vm(ctx, |_| ())
    }

    /// The simulation has no processes to hand descriptors to: like libvirt's test driver,
    /// it starts and lets them go.
    async fn start_with_files(
        &self,
        ctx: &DomainCtx,
        def: &DomainDef,
        paused: bool,
        id: u32,
        _files: &[std::os::fd::OwnedFd],
    ) -> DriverResult<Started> {
        self.start(ctx, def, paused, id).await
    }

    /// Only the simulated init (pid 1) takes a signal, which changes nothing (as libvirt's
    /// test driver).
    async fn send_process_signal(
        &self,
        ctx: &DomainCtx,
        pid: i64,
        _signum: u32,
    ) -> DriverResult<()> {
        if pid != 1 {
            return Err(DriverError::InvalidArgument(
                "only sending a signal to pid 1 is supported".into(),
            ));
        }
        self.with_vm(ctx, |_| ())
    }

    /// Every device hot-plugs in the simulation.
    async fn attach_device(
        &self,
        ctx: &DomainCtx,
        device: &Device,
    ) -> DriverResult<Option<Device>> {
        self.delay(ctx).await?;
        self.with_vm(ctx, |vm| {
            vm.nics
                .extend(device.as_devices().interfaces.iter().cloned())
        })?;
        Ok(None)
    }

    async fn detach_device(&self, ctx: &DomainCtx, device: &Device) -> DriverResult<()> {
        self.delay(ctx).await?;
        self.with_vm(ctx, |vm| {
            let gone = &device.as_devices().interfaces;
            vm.nics.retain(|n| !gone.iter().any(|g| g.mac == n.mac));
        })
    }

    async fn update_device(
        &self,
        ctx: &DomainCtx,
        _device: &Device,
        _force: bool,
    ) -> DriverResult<()> {
        self.delay(ctx).await?;
        self.with_vm(ctx, |_| ())
    }

    /// The guest agent requests libvirt's test driver answers: its clock, which keeps what
    /// was set; `/` and `/boot` on the first disk; a trim of those; any password. The rest
    /// it does not implement.
    async fn guest_agent(
        &self,
        ctx: &DomainCtx,
        req: super::guest_agent::AgentRequest,
    ) -> DriverResult<super::guest_agent::AgentReply> {
        use super::guest_agent::{AgentReply, AgentRequest, GuestDiskAddress, GuestFs};
        let (clock, root) = self.with_vm(ctx, |vm| (vm.clock, vm.root_disk.clone()))?;
        Ok(match req {
            AgentRequest::GetTime => AgentReply::Time(clock.0, clock.1),
            AgentRequest::SetTime(t) => {
                // as libvirt's: `--sync` sets what virsh sends along, zero
                self.with_vm(ctx, |vm| vm.clock = t.unwrap_or((0, 0)))?;
                AgentReply::Done
            }
            AgentRequest::FsInfo { .. } => {
                let fs = |mountpoint: &str, n: u32, disk: &str| GuestFs {
                    name: format!("{disk}{n}"),
                    mountpoint: mountpoint.into(),
                    fstype: "ext4".into(),
                    total_bytes: None,
                    used_bytes: None,
                    disks: vec![GuestDiskAddress {
                        target_dev: Some(disk.into()),
                        ..Default::default()
                    }],
                };
                AgentReply::FsInfo(Some(
                    root.map(|d| vec![fs("/", 1, &d), fs("/boot", 2, &d)])
                        .unwrap_or_default(),
                ))
            }
            AgentRequest::FsTrim { mountpoint, .. } => match mountpoint.as_deref() {
                None | Some("/" | "/boot") => AgentReply::Done,
                Some(m) => {
                    return Err(DriverError::InvalidState(format!(
                        "mount point not found: {m}"
                    )));
                }
            },
            AgentRequest::SetUserPassword { .. } => AgentReply::Done,
            // asked along with the rest of guestinfo: nothing to tell
            AgentRequest::Users { optional: true } => AgentReply::Users(None),
            AgentRequest::Disks { optional: true } => AgentReply::Disks(None),
            _ => {
                return Err(DriverError::Unimplemented(format!(
                    "the test driver has no such guest agent request for domain '{}'",
                    ctx.name
                )));
            }
        })
    }

    /// A guest agent that always answers: the host name `<domain name>host`, a Linux, UTC,
    /// and an address per interface as libvirt's test driver hands them out (from the
    /// default network's range for `network` interfaces).
    async fn guest_info(&self, ctx: &DomainCtx, types: GuestInfoTypes) -> DriverResult<GuestInfo> {
        let (slot, nics) = self.with_vm(ctx, |vm| (vm.slot, vm.nics.clone()))?;
        let interfaces = nics
            .iter()
            .enumerate()
            .map(|(i, iface)| {
                let addr = if iface.iface_type == InterfaceType::Network {
                    format!("192.168.122.{}", (3 + 20 * slot as usize + i).min(254))
                } else {
                    format!("192.168.0.{}", (1 + i).min(254))
                };
                GuestInterface {
                    name: iface
                        .target_dev
                        .clone()
                        .unwrap_or_else(|| format!("eth{i}")),
                    hwaddr: Some(iface.mac.to_string()),
                    addrs: vec![GuestAddress {
                        ipv6: false,
                        addr,
                        prefix: 24,
                    }],
                }
            })
            .collect();
        let strs = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        Ok(GuestInfo {
            hostname: types.hostname.then(|| format!("{}host", ctx.name)),
            os: if types.os {
                strs(&[("id", "linux"), ("name", "Linux"), ("machine", "x86_64")])
            } else {
                Vec::new()
            },
            timezone: types.timezone.then(|| ("UTC".to_owned(), 0)),
            interfaces: types.interfaces.then_some(interfaces),
        })
    }
}
