//! Hypervisor drivers. A driver runs guests and reports what they do; the core owns states,
//! events and persistence. Drivers know nothing of D-Bus or polkit.

pub mod backup;
pub mod block;
pub mod checkpoint;
pub mod guest_agent;
pub mod livecfg;
pub mod lxc;
pub mod migrate;
pub mod misc;
pub mod qemu;
pub mod quiesce;
pub mod test;
mod testimage;

use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use crate::model::{
    DomainDef, DomainType, SnapshotDef,
    devices::{Device, Disk},
    options::{PowerMode, SnapshotCreateOptions},
    state::{CrashedDetail, ShutdownDetail, StateReason, Status, StoppedDetail},
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    InvalidState(String),
    /// A configuration or request the driver refuses.
    #[error("{0}")]
    NotSupported(String),
    /// An operation the driver does not implement at all.
    #[error("{0}")]
    Unimplemented(String),
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    Failed(String),
    /// A value the host cannot serve (libvirt's `VIR_ERR_ARGUMENT_UNSUPPORTED`).
    #[error("{0}")]
    ArgumentUnsupported(String),
    /// A system call failed, with the reason appended (libvirt's `VIR_ERR_SYSTEM_ERROR`).
    #[error("{0}")]
    System(String),
}

pub type DriverResult<T> = Result<T, DriverError>;

/// Open a guest's console pty (host side) for a console session: read and write, never as
/// the daemon's controlling terminal.
pub fn open_console_pty(path: &str) -> DriverResult<std::os::fd::OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| DriverError::Failed(format!("cannot open console pty {path}: {e}")))?;
    Ok(file.into())
}

/// Something a guest did on its own, reported by its driver.
#[derive(Debug, Clone, PartialEq)]
pub enum DriverEvent {
    /// The guest stopped running (paused by an error, a watchdog, or someone else).
    Paused(StateReason),
    /// The guest runs again.
    Resumed,
    /// The guest began to power off.
    Shutdown(ShutdownDetail),
    /// The hypervisor process is gone.
    Stopped(StoppedDetail),
    /// The guest reset itself.
    Rebooted,
    /// The guest panicked.
    Crashed(CrashedDetail),
    /// A condition the user must know of, or `None` once it is over.
    Warning(Option<String>),
    /// The guest asked to reboot and the hypervisor held it instead (QEMU's `-no-reboot`, or
    /// a reboot done as power-off then reset): the core applies `on_reboot`, calling
    /// [`Driver::destroy`] or [`Driver::reset`].
    RebootRequested,
    /// How far the domain's running job (a snapshot, a revert) has come, from 0.0 to 1.0.
    JobProgress(f64),
    /// The guest's watchdog fired and the hypervisor did this.
    Watchdog(crate::model::state::WatchdogEventAction),
    /// The guest set its real-time clock: its offset from UTC in seconds (for a `variable`
    /// clock, the driver has added the adjustment the guest started with, as libvirt does).
    RtcChange(i64),
    /// A graphics client connected, finished its handshake or left.
    Graphics(Box<crate::model::guest_events::GraphicsEvent>),
    /// The balloon now leaves the guest this much memory (KiB).
    BalloonChange(u64),
    /// The tray of the removable drive with this alias opened (`true`) or closed.
    TrayChange { alias: String, open: bool },
    /// An event of the guest's monitor, as the hypervisor sent it.
    Monitor(std::sync::Arc<crate::model::guest_events::MonitorEvent>),
    /// The guest opened (`connected`) or closed the guest agent's channel.
    AgentLifecycle { connected: bool },
    /// The outgoing migration began pass `n` over the guest's memory.
    MigrationIteration(u64),
    /// The guest suspended itself (to RAM, or to disk before it powers off).
    PmSuspended(crate::model::state::PmSuspendedDetail),
    /// A guest suspended to RAM woke up.
    Wakeup,
    /// A block job changed: ready to pivot, or ended; `disk` is the live disk as it now is
    /// when the job moved it onto another image or chain.
    BlockJob {
        target: String,
        kind: block::BlockJobKind,
        status: block::BlockJobStatus,
        disk: Option<Box<Disk>>,
    },
    /// A write threshold was crossed on `dev` (`vda`, or `vda[2]` when armed by index).
    BlockThreshold {
        dev: String,
        path: String,
        threshold: u64,
        excess: u64,
    },
    /// A disk met an I/O error: its source path and alias (empty when unknown), libvirt's
    /// action code (0 none, 1 pause, 2 report) and reason (`enospc` or empty).
    IoError {
        path: String,
        alias: String,
        action: i32,
        reason: String,
    },
    /// The backup job ended (every disk's copy finished, failed or was cancelled).
    BackupEnded {
        end: backup::BackupEnd,
        progress: backup::BackupProgress,
        error: Option<String>,
    },
}

/// Where a driver reports a guest's own events; implemented by the core.
pub trait EventSink: Send + Sync {
    fn driver_event(&self, uuid: Uuid, event: DriverEvent);
}

/// What a driver is told about the domain it acts on.
#[derive(Clone)]
pub struct DomainCtx {
    pub uuid: Uuid,
    pub name: String,
    pub sink: Arc<dyn EventSink>,
}

impl DomainCtx {
    pub fn report(&self, event: DriverEvent) {
        self.sink.driver_event(self.uuid, event);
    }
}

/// An image of a guest's screen.
#[derive(Debug, Clone)]
pub struct Screenshot {
    /// The image's MIME type (`image/x-portable-pixmap` for QEMU's PPM).
    pub mime: String,
    pub data: Vec<u8>,
}

/// A started guest.
#[derive(Debug)]
pub struct Started {
    /// The live definition, with what only a running guest has (ports, pty paths, aliases);
    /// `None` when it equals the definition the guest was started from.
    pub live: Option<DomainDef>,
    /// Whether the guest agent's channel is open as the guest starts, for a guest with one:
    /// the core announces it before the start, as libvirt does.
    pub agent: Option<bool>,
}

/// What a save image's header tells (`virsh save`'s file): the domain XML to restore into,
/// and whether the guest runs again once restored. The layout is the driver's own (the QEMU
/// driver writes libvirt's, so images move between libvirtd and virtbus).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaveImageHeader {
    pub xml: String,
    pub running: bool,
}

/// How a guest's memory is dumped (`virsh dump`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DumpOptions {
    /// Only the guest's memory, as an ELF or kdump file (QEMU's `dump-guest-memory`), rather
    /// than its whole state as a migration stream.
    pub memory_only: bool,
    pub format: DumpFormat,
    /// Leave a running guest running during a memory-only dump (libvirt's `VIR_DUMP_LIVE`).
    pub live: bool,
}

/// libvirt's `virDomainCoreDumpFormat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DumpFormat {
    #[default]
    Raw,
    KdumpZlib,
    KdumpLzo,
    KdumpSnappy,
    WinDmp,
}

/// A guest a driver left running before the daemon stopped, found from its runtime records.
#[derive(Debug, Clone)]
pub struct RuntimeGuest {
    pub uuid: Uuid,
    /// The live definition it runs with; for a transient domain also its only definition.
    pub live: DomainDef,
}

/// A guest the driver has reattached to after a daemon restart.
#[derive(Debug)]
pub struct Recovered {
    pub live: DomainDef,
    /// The id it had, kept so that ids stay stable and unique across restarts.
    pub id: u32,
    /// What the hypervisor says it is doing now.
    pub status: Status,
}

/// What a guest agent reports about its guest, for the parts asked for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GuestInfo {
    pub hostname: Option<String>,
    /// OS facts by libvirt's key suffixes (`id`, `name`, `pretty-name`, `version`,
    /// `version-id`, `kernel-release`, `kernel-version`, `machine`).
    pub os: Vec<(String, String)>,
    /// Time zone name (may be empty) and offset from UTC in seconds.
    pub timezone: Option<(String, i64)>,
    pub interfaces: Option<Vec<GuestInterface>>,
}

/// Which parts of [`GuestInfo`] to fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestInfoTypes {
    pub hostname: bool,
    pub os: bool,
    pub timezone: bool,
    pub interfaces: bool,
}

impl GuestInfoTypes {
    pub const ALL: Self = Self {
        hostname: true,
        os: true,
        timezone: true,
        interfaces: true,
    };
}

/// A network interface as the guest sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestInterface {
    pub name: String,
    /// The MAC address, when the interface has one.
    pub hwaddr: Option<String>,
    pub addrs: Vec<GuestAddress>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestAddress {
    pub ipv6: bool,
    pub addr: String,
    pub prefix: u32,
}

/// One memory statistic of a guest, as libvirt's `virDomainMemoryStatTags` (values in KiB,
/// counts, or seconds for `LastUpdate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemoryStat {
    SwapIn,
    SwapOut,
    MajorFault,
    MinorFault,
    Unused,
    Available,
    ActualBalloon,
    Rss,
    Usable,
    LastUpdate,
    DiskCaches,
    HugetlbPgalloc,
    HugetlbPgfail,
}

impl MemoryStat {
    /// libvirt's tag number.
    pub fn tag(self) -> i32 {
        match self {
            Self::SwapIn => 0,
            Self::SwapOut => 1,
            Self::MajorFault => 2,
            Self::MinorFault => 3,
            Self::Unused => 4,
            Self::Available => 5,
            Self::ActualBalloon => 6,
            Self::Rss => 7,
            Self::Usable => 8,
            Self::LastUpdate => 9,
            Self::DiskCaches => 10,
            Self::HugetlbPgalloc => 11,
            Self::HugetlbPgfail => 12,
        }
    }

    /// libvirt's name (as `virsh dommemstat` prints it).
    pub fn name(self) -> &'static str {
        match self {
            Self::SwapIn => "swap_in",
            Self::SwapOut => "swap_out",
            Self::MajorFault => "major_fault",
            Self::MinorFault => "minor_fault",
            Self::Unused => "unused",
            Self::Available => "available",
            Self::ActualBalloon => "actual",
            Self::Rss => "rss",
            Self::Usable => "usable",
            Self::LastUpdate => "last_update",
            Self::DiskCaches => "disk_caches",
            Self::HugetlbPgalloc => "hugetlb_pgalloc",
            Self::HugetlbPgfail => "hugetlb_pgfail",
        }
    }
}

/// What a driver can run, for the domain capabilities document.
#[derive(Debug, Clone, Default)]
pub struct DomainCapsInfo {
    /// The emulator binary, when the driver runs one.
    pub emulator: Option<String>,
    /// Machine types, the default first.
    pub machines: Vec<String>,
    pub max_vcpus: u32,
    /// Firmware kinds it can boot (`bios`, `efi`).
    pub firmware: Vec<String>,
    /// UEFI loader images it offers, and whether secure boot firmware is among them.
    pub loaders: Vec<String>,
    pub secure_boot: bool,
    /// Disk buses and devices, NIC models, graphics types, video models it offers.
    pub disk_buses: Vec<String>,
    pub graphics: Vec<String>,
    pub video_models: Vec<String>,
    /// Whether the guest can use the host CPU as is.
    pub host_passthrough: bool,
    /// CPU models it can emulate.
    pub cpu_models: Vec<String>,
    /// The machine type described, by its full name (`None`: not machine-specific).
    pub machine: Option<String>,
    /// Whether `<cpu mode='maximum'>` (all the emulator can give) runs.
    pub maximum_cpu: bool,
    /// `<memoryBacking><source type>` values it runs; empty when it has no memory backing.
    pub memory_sources: Vec<String>,
    /// Disk devices (`disk`, `cdrom`…) it attaches.
    pub disk_devices: Vec<String>,
    /// Further `<devices>` sections (after disk, graphics and video), in libvirt's order.
    pub devices: Vec<CapsSection>,
    /// `<features>` sections; empty: only `gic` and `sev`, both unsupported.
    pub features: Vec<CapsSection>,
}

/// One element of the domain capabilities' `<devices>` or `<features>`: whether the driver
/// runs it, and the values each of its enums may take.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapsSection {
    pub name: String,
    pub supported: bool,
    pub enums: Vec<(String, Vec<String>)>,
}

impl CapsSection {
    /// A section with `enums` (name, values), supported.
    pub fn new(name: &str, enums: &[(&str, &[&str])]) -> CapsSection {
        CapsSection {
            name: name.to_owned(),
            supported: true,
            enums: enums
                .iter()
                .map(|(n, v)| ((*n).to_owned(), v.iter().map(|s| (*s).to_owned()).collect()))
                .collect(),
        }
    }

    /// A section the driver does not run.
    pub fn unsupported(name: &str) -> CapsSection {
        CapsSection {
            name: name.to_owned(),
            supported: false,
            enums: Vec::new(),
        }
    }
}

/// Whether a power request has completed or was only delivered to the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// Done: the core applies the result now.
    Done,
    /// The guest was asked; its driver reports what happens.
    Requested,
}

/// One statistic, named as libvirt's `GetAllDomainStats` names them.
#[derive(Debug, Clone, PartialEq)]
pub enum StatValue {
    U64(u64),
    I64(i64),
    Str(String),
}

pub type Stats = Vec<(String, StatValue)>;

/// A snapshot to take; `def` has its name, parent, state, creation time and domain filled in
/// and the driver completes it (memory and disk elements).
pub struct SnapshotRequest<'a> {
    pub def: &'a mut SnapshotDef,
    pub opts: SnapshotCreateOptions,
    pub status: Status,
    pub definition: &'a DomainDef,
}

/// What a snapshot changed besides the snapshot itself.
#[derive(Debug, Default)]
pub struct SnapshotOutcome {
    /// The live definition, when the snapshot changed it (disks now on new overlays).
    pub live: Option<DomainDef>,
    /// Disks that now write to new images; the core applies them to the persistent
    /// definition as well, and persists it before the snapshot call returns.
    pub switched: Vec<DiskSwitch>,
    /// The snapshot was taken, but something after it failed (a thaw the guest agent did
    /// not confirm): the core records the snapshot and fails the call with this error.
    pub error_after: Option<DriverError>,
}

/// One disk moved to a new top image by an external snapshot.
#[derive(Debug, Clone)]
pub struct DiskSwitch {
    /// The image the disk used before (now the overlay's backing file); a persistent
    /// definition whose disk still names another image is left alone.
    pub old_source: String,
    /// The disk as it is now: new source, qcow2, and the backing chain below.
    pub disk: Disk,
}

/// What a revert did to the hypervisor process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevertMode {
    /// The process was replaced, started or stopped: the core emits stopped/started events.
    Restarted,
    /// State was loaded into the running process.
    InPlace,
}

/// The state a revert leaves the guest in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevertTarget {
    Inactive,
    Running,
    Paused,
}

#[derive(Debug)]
pub struct RevertOutcome {
    pub mode: RevertMode,
    /// The live definition when the guest runs afterwards (see [`Started::live`]).
    pub live: Option<DomainDef>,
    /// Disks put on new overlays over the snapshot's images (a revert to an external
    /// snapshot): the core applies them to the definitions it restores (each disk whose
    /// source is `old_source`).
    pub switched: Vec<DiskSwitch>,
}

/// The disk image chains (top first) of every definition that stays once the snapshots
/// being deleted are gone: the persistent and live definitions, and the other snapshots'.
#[derive(Debug, Clone, Default)]
pub struct ImageChains {
    pub chains: Vec<Vec<String>>,
}

impl ImageChains {
    /// Whether any chain uses `image`.
    pub fn uses(&self, image: &str) -> bool {
        self.chains.iter().any(|c| c.iter().any(|i| i == image))
    }

    /// The images directly over `image` in some chain (each once).
    pub fn over(&self, image: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for c in &self.chains {
            for w in c.windows(2) {
                if w[1] == image && !out.contains(&w[0]) {
                    out.push(w[0].clone());
                }
            }
        }
        out
    }
}

/// What deleting a snapshot changed besides its metadata.
#[derive(Debug, Default)]
pub struct DeleteOutcome {
    /// Images merged into the image below them and gone from every chain: the core takes
    /// them out of every definition (persistent, live, other snapshots').
    pub collapsed: Vec<String>,
}

/// What the drivers present can do, for the capabilities document.
#[derive(Debug, Clone)]
pub struct DriverCaps {
    pub name: &'static str,
    pub domain_types: Vec<DomainType>,
    /// Extra XML inside the driver's element (emulators, machine types, accelerators).
    pub details_xml: String,
    pub snapshot_internal: bool,
    pub snapshot_external: bool,
    pub quiesce: bool,
}

/// What undefine does with the files a driver keeps for a domain besides its definition
/// (libvirt's `VIR_DOMAIN_UNDEFINE_NVRAM`, `_KEEP_NVRAM` and `_KEEP_TPM`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UndefineFiles {
    /// Remove the UEFI variable store.
    pub nvram: bool,
    /// Keep the UEFI variable store (without either, a domain that has one is refused).
    pub keep_nvram: bool,
    /// Keep the emulated TPM's state (removed by default).
    pub keep_tpm: bool,
}

#[async_trait]
pub trait Driver: Send + Sync + 'static {
    fn name(&self) -> &'static str;

    fn capabilities(&self) -> DriverCaps;

    /// Fill `def` with this driver's defaults, as libvirt's post-parse does, before it is
    /// checked and stored (define, create, and once for definitions stored by an earlier
    /// version). By default: libvirt's driver-independent defaults.
    async fn post_parse(&self, def: &mut DomainDef) -> DriverResult<()> {
        crate::model::defaults::before_driver(def);
        crate::model::defaults::after_driver(def)
            .map_err(|e| DriverError::InvalidArgument(e.to_string()))
    }

    /// Leave out of `def` what this driver leaves out of a definition written for migration
    /// besides what every formatter does (`config` is the persistent definition); true when
    /// it writes the definition through its inactive form (without an id), as libvirt's QEMU
    /// driver does.
    fn migratable(&self, _def: &mut DomainDef, _config: &DomainDef) -> bool {
        false
    }

    /// Update the guest CPU of `def` from the host's, as libvirt's `VIR_DOMAIN_XML_UPDATE_CPU`
    /// does; a driver without a host CPU (libvirt's test driver) refuses it.
    fn update_cpu(&self, _def: &mut DomainDef) -> DriverResult<()> {
        Err(DriverError::NotSupported(
            "this driver cannot update a guest CPU from the host's (update-cpu)".into(),
        ))
    }

    /// Refuse a definition this driver can never run; called on define and create.
    fn check(&self, _def: &DomainDef) -> DriverResult<()> {
        Ok(())
    }

    /// Refuse to undefine `def` when `files` leaves the fate of a file it keeps open;
    /// nothing is changed.
    fn undefine_check(&self, _def: &DomainDef, _files: UndefineFiles) -> DriverResult<()> {
        Ok(())
    }

    /// Remove the files of an undefined domain that `files` does not keep (after
    /// [`Driver::undefine_check`] passed).
    async fn undefine_files(&self, _def: &DomainDef, _files: UndefineFiles) -> DriverResult<()> {
        Ok(())
    }

    /// Start a guest for `def`; `id` is the id the core gives it while it runs.
    async fn start(
        &self,
        ctx: &DomainCtx,
        def: &DomainDef,
        paused: bool,
        id: u32,
    ) -> DriverResult<Started>;
    async fn shutdown(&self, ctx: &DomainCtx, mode: PowerMode) -> DriverResult<Completion>;
    async fn reboot(&self, ctx: &DomainCtx, mode: PowerMode) -> DriverResult<Completion>;
    /// Stop the guest now; returns when the process is gone.
    async fn destroy(&self, ctx: &DomainCtx, graceful: bool) -> DriverResult<()>;
    async fn reset(&self, ctx: &DomainCtx) -> DriverResult<()>;
    async fn suspend(&self, ctx: &DomainCtx) -> DriverResult<()>;
    async fn resume(&self, ctx: &DomainCtx) -> DriverResult<()>;
    async fn stats(&self, ctx: &DomainCtx, live: &DomainDef) -> DriverResult<Stats>;

    /// Take a snapshot (the metadata is the core's).
    async fn snapshot_create(
        &self,
        ctx: &DomainCtx,
        req: SnapshotRequest<'_>,
    ) -> DriverResult<SnapshotOutcome>;
    /// Bring the guest to the snapshot's state: stop it, start it or load state into it, so
    /// that it ends in `target` with the snapshot's definition (`snap.domain`). `id` is the
    /// id a guest (re)started for the revert gets.
    async fn snapshot_revert(
        &self,
        ctx: &DomainCtx,
        snap: &SnapshotDef,
        active_now: bool,
        target: RevertTarget,
        id: u32,
    ) -> DriverResult<RevertOutcome>;
    /// Refuse, before anything is deleted, a snapshot this driver cannot delete, so that a
    /// delete of several snapshots never stops half-way. By default only the metadata of
    /// external and disk-only snapshots can go: merging their overlays back is not done, and
    /// deleting their images would take data that later images or the guest still use.
    fn snapshot_delete_check(
        &self,
        snap: &SnapshotDef,
        metadata_only: bool,
        _remaining: &ImageChains,
    ) -> DriverResult<()> {
        let kind = crate::model::snapshot_kind(snap);
        if metadata_only || kind == crate::model::SnapshotKind::Internal {
            return Ok(());
        }
        Err(DriverError::NotSupported(format!(
            "deleting {} snapshot '{}' is not supported: its overlay images would have to be \
             merged into their backing files first; delete it with 'metadata-only' to keep \
             the images and forget the snapshot",
            kind.as_str(),
            snap.name.as_deref().unwrap_or_default()
        )))
    }
    /// Delete a snapshot; `remaining` are the chains that stay (see [`ImageChains`]).
    async fn snapshot_delete(
        &self,
        ctx: &DomainCtx,
        snap: &SnapshotDef,
        active_now: bool,
        metadata_only: bool,
        remaining: &ImageChains,
    ) -> DriverResult<DeleteOutcome>;

    /// Remove the images this driver made for snapshots (overlays, revert overlays, merged
    /// images) that no definition uses any more: `referenced` lists every image of every
    /// definition of the domain. Called at start and after each snapshot operation; an image
    /// a running guest still has open is kept.
    async fn sweep_images(&self, _ctx: &DomainCtx, _referenced: &[String]) {}

    /// The images of snapshots deleted with `metadata-only` are the user's from now on:
    /// never removed by [`Driver::sweep_images`].
    fn release_images(&self, _ctx: &DomainCtx, _images: &[String]) {}

    /// Freeze the guest's filesystems (all when `mountpoints` is empty); returns how many.
    async fn fs_freeze(&self, ctx: &DomainCtx, mountpoints: &[String]) -> DriverResult<u32>;
    async fn fs_thaw(&self, ctx: &DomainCtx, mountpoints: &[String]) -> DriverResult<u32>;

    /// Forget a domain that no longer exists.
    fn forget(&self, _uuid: &Uuid) {}

    /// The process that runs an active guest, for systemd-machined (which moves it into a
    /// scope of its own); `None` for a driver whose guests have no process of their own.
    fn leader_pid(&self, _uuid: &Uuid) -> Option<u32> {
        None
    }

    /// The hypervisor's version as libvirt encodes it (major * 1,000,000 + minor * 1,000 +
    /// micro); 0 when unknown.
    fn hypervisor_version(&self) -> u64 {
        0
    }

    /// What the driver offers guests of `domain_type` on `arch`, on machine type `machine`
    /// when named (else its default); `None` when it runs none.
    fn domain_caps(
        &self,
        _domain_type: DomainType,
        _arch: &str,
        _machine: Option<&str>,
    ) -> Option<DomainCapsInfo> {
        None
    }

    /// Save the guest's state to its managed save image and stop it. The core records that
    /// the image exists and restores from it at the next start.
    async fn managed_save(&self, ctx: &DomainCtx, _live: &DomainDef) -> DriverResult<()> {
        Err(unsupported(self.name(), "save the state of", ctx))
    }

    /// Start a guest from its managed save image, which the driver removes once restored;
    /// `id` as for [`Driver::start`].
    async fn managed_restore(
        &self,
        ctx: &DomainCtx,
        _def: &DomainDef,
        _paused: bool,
        _id: u32,
    ) -> DriverResult<Started> {
        Err(unsupported(self.name(), "restore the saved state of", ctx))
    }

    /// Save the guest's state to `path` (a new file of the driver's own format holding
    /// `header`) and stop the guest; on failure no file is left and the guest runs on.
    async fn save_to_file(
        &self,
        ctx: &DomainCtx,
        _header: &SaveImageHeader,
        _path: &std::path::Path,
    ) -> DriverResult<()> {
        Err(unsupported(self.name(), "save the state of", ctx))
    }

    /// Whether the XML a save image holds is the migratable form (without the live id and
    /// what the destination makes up again), as libvirt's QEMU driver writes it.
    fn save_image_migratable(&self) -> bool {
        true
    }

    /// The header of the save image at `path`, checked.
    fn read_save_image(&self, path: &std::path::Path) -> DriverResult<SaveImageHeader> {
        Err(DriverError::Unimplemented(format!(
            "the {} driver reads no save images ({})",
            self.name(),
            path.display()
        )))
    }

    /// Replace the header of the save image at `path`, keeping the state after it.
    fn rewrite_save_image(
        &self,
        path: &std::path::Path,
        _header: &SaveImageHeader,
    ) -> DriverResult<()> {
        Err(DriverError::Unimplemented(format!(
            "the {} driver writes no save images ({})",
            self.name(),
            path.display()
        )))
    }

    /// Start a guest for `def` with its state read from the save image at `path` (kept);
    /// `id` as for [`Driver::start`]; the guest is left paused when `paused`.
    async fn restore_from_file(
        &self,
        ctx: &DomainCtx,
        _def: &DomainDef,
        _path: &std::path::Path,
        _paused: bool,
        _id: u32,
    ) -> DriverResult<Started> {
        Err(unsupported(self.name(), "restore the saved state of", ctx))
    }

    /// Dump the running guest's memory to `path` (the guest is paused or not as the caller
    /// arranged).
    async fn core_dump(
        &self,
        ctx: &DomainCtx,
        _path: &std::path::Path,
        _opts: DumpOptions,
    ) -> DriverResult<()> {
        Err(unsupported(self.name(), "dump the memory of", ctx))
    }

    /// Cancel the migration stream a save or dump of the guest is writing (the operation
    /// then fails and cleans up after itself).
    async fn abort_job(&self, ctx: &DomainCtx) -> DriverResult<()> {
        Err(unsupported(self.name(), "abort the job of", ctx))
    }

    /// Start a backup job on the running guest (`live` its definition); it runs on after
    /// this returns and ends with [`DriverEvent::BackupEnded`].
    async fn backup_begin(
        &self,
        ctx: &DomainCtx,
        _live: &DomainDef,
        _plan: &backup::BackupPlan,
    ) -> DriverResult<()> {
        Err(unsupported(self.name(), "back up", ctx))
    }

    /// Cancel the guest's backup job (its end is reported as usual).
    async fn backup_abort(&self, ctx: &DomainCtx) -> DriverResult<()> {
        Err(unsupported(self.name(), "abort the backup of", ctx))
    }

    /// How far the guest's backup job has come.
    async fn backup_progress(&self, ctx: &DomainCtx) -> DriverResult<backup::BackupProgress> {
        Err(unsupported(self.name(), "read the backup of", ctx))
    }

    /// Start a guest for `def` waiting for its state from an incoming migration, paused;
    /// `id` as for [`Driver::start`]. `listen` is the address to listen on (empty: every
    /// address). Returns the started guest and the URI the source is to send to.
    async fn migrate_incoming(
        &self,
        ctx: &DomainCtx,
        _def: &DomainDef,
        _id: u32,
        _listen: &str,
    ) -> DriverResult<(Started, String)> {
        Err(unsupported(self.name(), "migrate into", ctx))
    }

    /// Wait until the incoming migration of the guest has all its state; then it runs
    /// unless `paused` (the core reports both).
    async fn migrate_incoming_finish(&self, ctx: &DomainCtx, _paused: bool) -> DriverResult<()> {
        Err(unsupported(self.name(), "migrate into", ctx))
    }

    /// Send the running guest's state to a destination waiting for it, to the end; the
    /// guest is then paused. On failure the guest runs on as before.
    async fn migrate_out(&self, ctx: &DomainCtx, _opts: &migrate::MigrateOut) -> DriverResult<()> {
        Err(unsupported(self.name(), "migrate", ctx))
    }

    /// The migration bandwidth (MiB/s) kept for the domain, running or not (libvirt's
    /// `migMaxBandwidth`, unlimited until set).
    fn migrate_setting_kept(&self, _uuid: Uuid) -> u64 {
        migrate::UNLIMITED_MIB
    }

    /// Keep the domain's migration bandwidth (MiB/s) for its next migration.
    fn keep_migrate_setting(&self, _uuid: Uuid, _mib: u64) {}

    /// What the guest's migration has done so far (or its last one).
    async fn migration_stats(&self, ctx: &DomainCtx) -> DriverResult<migrate::MigrationStats> {
        Err(unsupported(self.name(), "read the migration of", ctx))
    }

    /// A migration setting of the running guest.
    async fn migrate_setting(
        &self,
        ctx: &DomainCtx,
        _which: migrate::MigrateSetting,
    ) -> DriverResult<u64> {
        Err(unsupported(
            self.name(),
            "read the migration settings of",
            ctx,
        ))
    }

    /// Change a migration setting of the running guest.
    async fn set_migrate_setting(
        &self,
        ctx: &DomainCtx,
        _which: migrate::MigrateSetting,
        _value: u64,
    ) -> DriverResult<()> {
        Err(unsupported(
            self.name(),
            "change the migration settings of",
            ctx,
        ))
    }

    /// Switch the guest's running migration to post-copy.
    async fn migrate_start_postcopy(&self, ctx: &DomainCtx) -> DriverResult<()> {
        Err(unsupported(
            self.name(),
            "switch to post-copy the migration of",
            ctx,
        ))
    }

    /// How often (seconds; 0 stops it) the balloon driver of a running guest collects its
    /// memory statistics.
    async fn set_memory_stats_period(&self, ctx: &DomainCtx, _secs: u32) -> DriverResult<()> {
        Err(unsupported(
            self.name(),
            "set the memory statistics period of",
            ctx,
        ))
    }

    /// Remove a managed save image (the domain is inactive).
    async fn managed_save_remove(&self, ctx: &DomainCtx) -> DriverResult<()> {
        Err(unsupported(self.name(), "remove the saved state of", ctx))
    }

    /// Change the vCPUs a running guest has online; returns each vCPU's state afterwards
    /// when the driver tracks them one by one (the live `<vcpus>`).
    async fn set_vcpus(
        &self,
        ctx: &DomainCtx,
        _live: &DomainDef,
        _count: u32,
    ) -> DriverResult<Option<Vec<crate::model::tuning::VcpuState>>> {
        Err(unsupported(self.name(), "change the vCPUs of running", ctx))
    }

    /// Set a running guest's balloon target (KiB); `live` already has it as current memory.
    async fn set_memory(&self, ctx: &DomainCtx, _live: &DomainDef, _kib: u64) -> DriverResult<()> {
        Err(unsupported(
            self.name(),
            "change the memory of running",
            ctx,
        ))
    }

    /// Memory statistics of a running guest, from its balloon driver.
    async fn memory_stats(
        &self,
        ctx: &DomainCtx,
        _live: &DomainDef,
    ) -> DriverResult<Vec<(MemoryStat, u64)>> {
        Err(unsupported(self.name(), "read memory statistics of", ctx))
    }

    /// Checks of the driver's own on new I/O throttling, beyond the core's.
    fn check_iotune(&self, _tune: &crate::model::devices::Iotune) -> DriverResult<()> {
        Ok(())
    }

    /// A request about the running guest's disks (resize, throttle, thresholds, errors,
    /// block jobs).
    async fn block(
        &self,
        ctx: &DomainCtx,
        _live: &DomainDef,
        _req: block::BlockRequest,
    ) -> DriverResult<block::BlockReply> {
        Err(unsupported(self.name(), "run block operations on", ctx))
    }

    /// Add, remove or measure a checkpoint's persistent dirty bitmaps on the running guest
    /// (`Measure` answers one entry per bitmap asked for; the others answer nothing).
    async fn checkpoint_bitmaps(
        &self,
        ctx: &DomainCtx,
        _live: &DomainDef,
        _req: checkpoint::BitmapRequest,
    ) -> DriverResult<Vec<Option<u64>>> {
        Err(unsupported(self.name(), "keep checkpoints of", ctx))
    }

    /// Send the guest a non-maskable interrupt.
    async fn inject_nmi(&self, ctx: &DomainCtx) -> DriverResult<()> {
        Err(unsupported(self.name(), "inject an NMI into", ctx))
    }

    /// Pass a QMP command (JSON text), or an HMP command line (`hmp`), to the guest's
    /// monitor; the reply as QEMU gave it (a QMP error reply included).
    async fn monitor_command(
        &self,
        ctx: &DomainCtx,
        _cmd: &str,
        _hmp: bool,
    ) -> DriverResult<String> {
        Err(unsupported(self.name(), "send a monitor command to", ctx))
    }

    /// Pass a guest agent command (JSON text) to the guest; the agent's reply.
    async fn agent_command(
        &self,
        ctx: &DomainCtx,
        _cmd: &str,
        _timeout: Option<std::time::Duration>,
    ) -> DriverResult<String> {
        Err(unsupported(
            self.name(),
            "send a guest agent command to",
            ctx,
        ))
    }

    /// A descriptor of the guest side of character device `alias` (its pty), for a console
    /// session the core pumps.
    async fn open_console(
        &self,
        ctx: &DomainCtx,
        _alias: &str,
        _dev: &crate::model::devices::CharDevice,
    ) -> DriverResult<std::os::fd::OwnedFd> {
        Err(unsupported(self.name(), "open a console of", ctx))
    }

    /// An image of screen `screen` of the guest's display.
    async fn screenshot(&self, ctx: &DomainCtx, _screen: u32) -> DriverResult<Screenshot> {
        Err(unsupported(self.name(), "take a screenshot of", ctx))
    }

    /// A socket connected to graphics device `index` (the VNC or SPICE server).
    async fn open_graphics(
        &self,
        ctx: &DomainCtx,
        _index: u32,
        _graphics: &crate::model::devices::Graphics,
        _skipauth: bool,
    ) -> DriverResult<std::os::fd::OwnedFd> {
        Err(unsupported(
            self.name(),
            "open a graphics connection to",
            ctx,
        ))
    }

    /// Hot-plug a device into a running guest; the core records it in the live definition,
    /// as returned when the driver gave it an alias or address (`None`: as it was given).
    async fn attach_device(
        &self,
        ctx: &DomainCtx,
        _device: &Device,
    ) -> DriverResult<Option<Device>> {
        Err(unsupported(self.name(), "hot-plug devices into", ctx))
    }

    /// Hot-unplug a device (as the live definition has it) from a running guest.
    async fn detach_device(&self, ctx: &DomainCtx, _device: &Device) -> DriverResult<()> {
        Err(unsupported(self.name(), "hot-unplug devices from", ctx))
    }

    /// Change a device of a running guest in place (new media, link state); `force` changes
    /// it even if the guest holds it.
    async fn update_device(
        &self,
        ctx: &DomainCtx,
        _device: &Device,
        _force: bool,
    ) -> DriverResult<()> {
        Err(unsupported(self.name(), "change devices of", ctx))
    }

    /// Guests left running by an earlier daemon, from the driver's runtime records; called
    /// once at start, before [`Driver::recover`]. A driver whose guests die with the daemon
    /// has none.
    fn runtime_guests(&self) -> Vec<RuntimeGuest> {
        Vec::new()
    }

    /// Reattach to a guest listed by [`Driver::runtime_guests`], once the core has registered
    /// its domain. An error means the guest is gone (or its process is not the one recorded):
    /// the driver has dropped its records and the core marks the domain shut off, crashed.
    async fn recover(&self, ctx: &DomainCtx) -> DriverResult<Recovered> {
        Err(DriverError::Failed(format!(
            "the {} driver keeps no guests across restarts (domain '{}')",
            self.name(),
            ctx.name
        )))
    }

    /// A request to the guest agent beyond [`Driver::guest_info`].
    async fn guest_agent(
        &self,
        ctx: &DomainCtx,
        _req: guest_agent::AgentRequest,
    ) -> DriverResult<guest_agent::AgentReply> {
        Err(DriverError::Unimplemented(format!(
            "the {} driver has no guest agent for domain '{}'",
            self.name(),
            ctx.name
        )))
    }

    /// [`Driver::start`] handing `files` to the guest (a container's init has them as
    /// descriptors 3 and on); drivers that cannot pass descriptors refuse any.
    async fn start_with_files(
        &self,
        ctx: &DomainCtx,
        def: &DomainDef,
        paused: bool,
        id: u32,
        files: &[std::os::fd::OwnedFd],
    ) -> DriverResult<Started> {
        if !files.is_empty() {
            return Err(unsupported(self.name(), "pass files to", ctx));
        }
        self.start(ctx, def, paused, id).await
    }

    /// Send signal `signum` (Linux numbering) to process `pid` of the guest, as the guest
    /// numbers its processes.
    async fn send_process_signal(
        &self,
        ctx: &DomainCtx,
        _pid: i64,
        _signum: u32,
    ) -> DriverResult<()> {
        Err(unsupported(self.name(), "send a process signal to", ctx))
    }

    /// Descriptors of the namespaces of the guest's init (`/proc/PID/ns/...`, in libvirt's
    /// order: user, ipc, uts, net, pid, mnt; those the kernel lacks left out).
    async fn open_namespaces(&self, ctx: &DomainCtx) -> DriverResult<Vec<std::os::fd::OwnedFd>> {
        Err(unsupported(self.name(), "open the namespaces of", ctx))
    }

    /// Press and release keys on the guest's keyboard, as QEMU numbers them
    /// ([`crate::core::keys`]), held `hold_ms` milliseconds (0: the hypervisor's default).
    async fn send_key(&self, ctx: &DomainCtx, _keys: &[u32], _hold_ms: u32) -> DriverResult<()> {
        Err(unsupported(self.name(), "send keys to", ctx))
    }

    /// Refuse lifecycle actions (`on_poweroff`, `on_reboot`, `on_crash` of `def`) the
    /// driver cannot carry out.
    fn lifecycle_check(&self, _def: &DomainDef) -> DriverResult<()> {
        Ok(())
    }

    /// Make the running guest's own reboot end as `live`'s `on_reboot` says (the core
    /// applies the other actions itself when the guest's event comes).
    async fn set_reboot_action(&self, _ctx: &DomainCtx, _live: &DomainDef) -> DriverResult<()> {
        Ok(())
    }

    /// Ask the guest (through its agent) to suspend itself to `target`; `live` is its
    /// running definition (`<pm>` may forbid a target).
    async fn pm_suspend(
        &self,
        ctx: &DomainCtx,
        _live: &DomainDef,
        _target: misc::SuspendTarget,
    ) -> DriverResult<()> {
        Err(unsupported(self.name(), "suspend the guest of", ctx))
    }

    /// Wake a guest suspended to RAM.
    async fn pm_wakeup(&self, ctx: &DomainCtx) -> DriverResult<()> {
        Err(unsupported(self.name(), "wake up", ctx))
    }

    /// Start measuring the guest's dirty page rate for `secs` seconds, by `mode`
    /// (`page-sampling` or `dirty-bitmap`).
    async fn dirty_rate_calc(&self, ctx: &DomainCtx, _secs: u32, _mode: &str) -> DriverResult<()> {
        Err(unsupported(
            self.name(),
            "measure the dirty page rate of",
            ctx,
        ))
    }

    /// The last dirty page rate measurement.
    async fn dirty_rate(&self, ctx: &DomainCtx) -> DriverResult<misc::DirtyRate> {
        Err(unsupported(self.name(), "read the dirty page rate of", ctx))
    }

    /// The running guest's I/O thread ids in its hypervisor's order (`None`: the
    /// definition's order is the hypervisor's).
    async fn iothread_order(&self, _ctx: &DomainCtx) -> DriverResult<Option<Vec<u32>>> {
        Ok(None)
    }

    /// Count (or stop counting) the perf events `live.perf` names for the running guest.
    async fn set_perf(&self, ctx: &DomainCtx, _live: &DomainDef) -> DriverResult<()> {
        Err(unsupported(
            self.name(),
            "count perf events of running",
            ctx,
        ))
    }

    /// Add, remove or retune an I/O thread of the running guest; `live` is its new
    /// definition (with the change made).
    async fn change_iothread(
        &self,
        ctx: &DomainCtx,
        _live: &DomainDef,
        _change: livecfg::IoThreadChange,
    ) -> DriverResult<()> {
        Err(unsupported(
            self.name(),
            "change the I/O threads of running",
            ctx,
        ))
    }

    /// Apply `group` of `live` (the running guest's new definition) to the running guest.
    async fn apply_tunables(
        &self,
        ctx: &DomainCtx,
        _live: &DomainDef,
        _group: TuneGroup,
    ) -> DriverResult<()> {
        Err(unsupported(self.name(), "tune running", ctx))
    }

    /// The running guest's CPU bandwidth and memory limits as the host holds them (`None`:
    /// the live definition is all there is).
    async fn live_tunables(
        &self,
        _ctx: &DomainCtx,
        _live: &DomainDef,
    ) -> DriverResult<Option<LiveTunables>> {
        Ok(None)
    }

    /// CPU time the running guest used, in total and per host CPU.
    async fn cpu_stats(&self, ctx: &DomainCtx, _live: &DomainDef) -> DriverResult<CpuStats> {
        Err(unsupported(self.name(), "read the CPU time of", ctx))
    }

    /// Facts from the guest agent.
    async fn guest_info(&self, ctx: &DomainCtx, _types: GuestInfoTypes) -> DriverResult<GuestInfo> {
        Err(DriverError::Unimplemented(format!(
            "the {} driver has no guest agent for domain '{}'",
            self.name(),
            ctx.name
        )))
    }
}

/// What a tuning change touched, so a driver applies only that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TuneGroup {
    /// `<cputune>` shares, periods and quotas.
    Scheduler,
    /// `<memtune>` limits.
    Memory,
    /// The host CPUs of one vCPU (`<vcpupin>`).
    VcpuPin(u32),
    /// The host CPUs of the emulator threads (`<emulatorpin>`).
    EmulatorPin,
    /// `<blkiotune>`: its devices, and the weight when `weight`.
    Blkio { weight: bool },
    /// `<numatune><memory nodeset>`: the host nodes the guest's threads allocate from.
    Numa,
    /// The host CPUs of one I/O thread (`<iothreadpin>`), by its id.
    IoThreadPin(u32),
    /// The traffic shaping of one interface (`<bandwidth>`), by its MAC address.
    Bandwidth { mac: crate::model::values::MacAddr },
}

/// A running guest's tunables as read back from its cgroups.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveTunables {
    /// Only the shares, periods and quotas are filled in; `None` where no cgroup holds them.
    pub cputune: crate::model::tuning::Cputune,
    /// KiB; `None` is no limit.
    pub memtune: crate::model::memtune::Memtune,
    /// The block I/O weight (`None`: the host's I/O scheduler has no weight to read).
    pub blkio_weight: Option<u32>,
}

/// CPU time in nanoseconds: per host CPU (its total and its vCPUs' share), and in total.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuStats {
    pub per_cpu: Vec<(u64, u64)>,
    pub total: u64,
    pub user: u64,
    pub system: u64,
}

/// The error of a hook a driver does not implement.
fn unsupported(driver: &str, what: &str, ctx: &DomainCtx) -> DriverError {
    DriverError::Unimplemented(format!(
        "the {driver} driver cannot {what} domain '{}'",
        ctx.name
    ))
}
