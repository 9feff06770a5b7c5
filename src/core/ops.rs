//! Operations as data: every request a front end can make of the core, each knowing the
//! permission it needs, the domain states it may run in, whether it holds the domain's job
//! lock, and its typed result.
//!
//! Front ends are translators: they decode their wire request into one of the request types
//! below, hand it to the one execution path (`server::exec` for the D-Bus front ends), and
//! encode the typed result. So an operation's permission, state rule and option rules are
//! written once, here, whichever front end asks.

use std::{future::Future, sync::Arc};

use super::{
    Core, Domain, Result,
    metadata::MetadataKind,
    options::{
        AddressSource, Affect, DestroyOptions, DeviceOptions, ManagedSaveOptions, MemoryOptions,
        PowerMode, RevertOptions, SnapshotCreateOptions, SnapshotDeleteOptions,
        SnapshotListOptions, StartOptions, StatsGroup, UndefineOptions, VcpuOptions, XmlOptions,
    },
};
use crate::{
    drivers::{GuestInfo, GuestInfoTypes, GuestInterface, MemoryStat, Stats},
    model::state::DomainState,
};

/// One permission, mirroring libvirt's permission model; each is a polkit action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    DomainRead,
    DomainReadSecure,
    DomainWrite,
    DomainDelete,
    DomainStart,
    DomainStop,
    DomainInitControl,
    DomainReset,
    DomainSuspend,
    DomainSnapshot,
    DomainFsFreeze,
    /// Passing QEMU arguments of the user's own (libvirt's `qemu:` namespace).
    DomainQemuPassthrough,
    /// Connecting to a guest's console or graphics server.
    DomainOpenConsole,
    /// Entering a container's namespaces (root inside it, libvirt's `open_namespace`).
    DomainEnterNamespace,
    ManagerRead,
    /// Changing the host's memory settings: huge page pools and same-page merging (KSM).
    ManagerWrite,
    /// Seeing storage pools, volumes and their XML.
    StorageRead,
    /// Changing pools and volumes, and moving a volume's bytes in or out.
    StorageWrite,
    /// Seeing virtual networks, their XML and DHCP leases.
    NetworkRead,
    /// Defining, starting, stopping and undefining virtual networks.
    NetworkWrite,
}

impl Action {
    pub const ALL: [Action; 20] = [
        Self::DomainRead,
        Self::DomainReadSecure,
        Self::DomainWrite,
        Self::DomainDelete,
        Self::DomainStart,
        Self::DomainStop,
        Self::DomainInitControl,
        Self::DomainReset,
        Self::DomainSuspend,
        Self::DomainSnapshot,
        Self::DomainFsFreeze,
        Self::DomainQemuPassthrough,
        Self::DomainOpenConsole,
        Self::DomainEnterNamespace,
        Self::ManagerRead,
        Self::ManagerWrite,
        Self::StorageRead,
        Self::StorageWrite,
        Self::NetworkRead,
        Self::NetworkWrite,
    ];

    /// The polkit action id.
    pub fn id(self) -> &'static str {
        match self {
            Self::DomainRead => "org.virtbus1.domain.read",
            Self::DomainReadSecure => "org.virtbus1.domain.read-secure",
            Self::DomainWrite => "org.virtbus1.domain.write",
            Self::DomainDelete => "org.virtbus1.domain.delete",
            Self::DomainStart => "org.virtbus1.domain.start",
            Self::DomainStop => "org.virtbus1.domain.stop",
            Self::DomainInitControl => "org.virtbus1.domain.init-control",
            Self::DomainReset => "org.virtbus1.domain.reset",
            Self::DomainSuspend => "org.virtbus1.domain.suspend",
            Self::DomainSnapshot => "org.virtbus1.domain.snapshot",
            Self::DomainFsFreeze => "org.virtbus1.domain.fs-freeze",
            Self::DomainQemuPassthrough => "org.virtbus1.domain.qemu-passthrough",
            Self::DomainOpenConsole => "org.virtbus1.domain.open-console",
            Self::DomainEnterNamespace => "org.virtbus1.domain.enter-namespace",
            Self::ManagerRead => "org.virtbus1.manager.read",
            Self::ManagerWrite => "org.virtbus1.manager.write",
            Self::StorageRead => "org.virtbus1.storage.read",
            Self::StorageWrite => "org.virtbus1.storage.write",
            Self::NetworkRead => "org.virtbus1.network.read",
            Self::NetworkWrite => "org.virtbus1.network.write",
        }
    }

    /// Whether a decision may be remembered. Handing QEMU arbitrary arguments is as good as
    /// root on the host: every such request is decided anew.
    pub fn cacheable(self) -> bool {
        !matches!(
            self,
            Self::DomainQemuPassthrough | Self::DomainEnterNamespace
        )
    }
}

/// Every operation, by name. Its data (permission, state rule, job) is a property of the
/// variant, so no front end maps an operation to a permission of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    // The host and the registry.
    ReadHost,
    /// The host's network interfaces (libvirt's interface driver, read-only).
    ReadHostInterfaces,
    /// The host's devices (libvirt's node-device driver, read-only).
    ReadNodeDevices,
    /// Resizing the host's huge page pools or tuning its same-page merging.
    TuneHost,
    /// Comparing a CPU with the host's or computing a baseline of CPUs (reads the host's CPU).
    CompareCpu,
    DefineDomain,
    CreateDomain,
    /// Defining or creating a domain with `<qemu:commandline>`.
    QemuPassthrough,
    /// A QMP or HMP command of the caller's own on a running guest's monitor.
    QemuMonitorCommand,
    /// A guest agent command of the caller's own.
    QemuAgentCommand,
    // One domain.
    ReadDomain,
    Start,
    Shutdown,
    Reboot,
    Destroy,
    Reset,
    InjectNmi,
    /// A signal to a process of the guest (a container's init).
    SendProcessSignal,
    /// Descriptors of a container init's namespaces, to enter them.
    OpenNamespace,
    Suspend,
    Resume,
    Undefine,
    SetAutostart,
    FsFreeze,
    FsThaw,
    GetXml,
    GetStats,
    ManagedSave,
    ManagedSaveRemove,
    HasManagedSave,
    /// Save the guest's state to a file of the caller's choosing and stop it.
    Save,
    /// Start a guest from a save file (no domain yet: authorized with the file's XML).
    Restore,
    /// Read the XML a save file holds.
    SaveImageRead,
    /// Read it with its secrets.
    SaveImageReadSecure,
    /// Replace the XML a save file holds.
    SaveImageDefine,
    /// Dump the guest's memory to a file: it holds every secret the guest has.
    CoreDump,
    /// How often the balloon collects the guest's memory statistics.
    SetMemoryStatsPeriod,
    /// Stop the long operation a domain runs.
    AbortJob,
    /// Start a backup job of the running guest's disks.
    BackupBegin,
    /// Read the running backup job's definition.
    BackupRead,
    /// Migrating the domain away (the begin, perform and confirm steps at the source).
    MigrateOut,
    /// Receiving a migrated domain (the prepare and finish steps at the destination).
    MigrateIn,
    /// Changing the running guest's migration settings.
    MigrateTune,
    GetMetadata,
    SetMetadata,
    GetVcpus,
    SetVcpus,
    GetVcpuPinning,
    MemoryStats,
    SetMemory,
    AttachDevice,
    DetachDevice,
    UpdateDevice,
    GuestInfo,
    InterfaceAddresses,
    /// The guest's clock, from its agent.
    GuestTime,
    SetGuestTime,
    /// The guest's mounted filesystems, from its agent.
    GuestFsInfo,
    /// Discarding the unused blocks of the guest's filesystems.
    FsTrim,
    /// The vCPUs as the guest sees them (online, offlinable).
    GuestVcpus,
    /// Bringing the guest's vCPUs online or offline.
    SetGuestVcpus,
    SetUserPassword,
    GetSshKeys,
    SetSshKeys,
    /// A session on the guest's text console.
    OpenConsole,
    /// A connection to the guest's graphics server.
    OpenGraphics,
    /// An image of the guest's screen.
    Screenshot,
    /// Keys pressed on the guest's keyboard.
    SendKey,
    /// What answers the guest's power-off, reboot or crash.
    SetLifecycleAction,
    /// Another name for a shut-off domain.
    Rename,
    /// The guest asked to suspend itself (through its agent).
    PmSuspend,
    /// A guest suspended to RAM woken.
    PmWakeup,
    /// A measurement of the guest's dirty page rate started.
    DirtyRateCalc,
    /// Whether (and how) the guest's memory is encrypted.
    LaunchSecurity,
    /// The definition kept with a managed save image.
    ManagedSaveXml,
    /// A new definition for a managed save image (as [`Self::ManagedSave`], it needs the
    /// stop permission besides, see `saved_xml::ManagedSaveDefine`).
    ManagedSaveDefine,
    /// Reading a disk's I/O throttling.
    BlockIoTune,
    /// Changing a disk's I/O throttling.
    SetBlockIoTune,
    /// Reading the running guest's disk error states.
    DiskErrors,
    /// Reading a disk's block job.
    BlockJobInfo,
    /// Resizing a disk, arming a write threshold, starting, ending or tuning a block job.
    BlockWrite,
    /// CPU bandwidth, memory limits and pinning of the emulator and I/O threads.
    ReadTunables,
    /// Changing CPU bandwidth or memory limits.
    SetTunables,
    /// Pinning a vCPU or the emulator threads to host CPUs.
    Pin,
    /// The CPU time a running guest used.
    ReadCpuStats,
    /// Adding, removing or retuning an I/O thread.
    ChangeIoThreads,
    /// Which perf events are counted.
    GetPerfEvents,
    /// Counting perf events, or not.
    SetPerfEvents,
    // Snapshots of one domain.
    SnapshotCreate,
    SnapshotList,
    SnapshotRead,
    SnapshotGetXml,
    SnapshotRevert,
    SnapshotDelete,
    // Checkpoints (persistent dirty bitmaps) of one domain.
    CheckpointCreate,
    CheckpointRead,
    CheckpointGetXml,
    CheckpointDelete,
    // Storage pools and their volumes.
    ReadStorage,
    DefinePool,
    CreatePool,
    BuildPool,
    StartPool,
    StopPool,
    RefreshPool,
    DeletePool,
    UndefinePool,
    SetPoolAutostart,
    CreateVolume,
    CloneVolume,
    DeleteVolume,
    WipeVolume,
    ResizeVolume,
    UploadVolume,
    /// Reading a volume's bytes reveals a guest's disk: it needs the write permission.
    DownloadVolume,
    // Virtual networks (see `network_ops`).
    ReadNetwork,
    DefineNetwork,
    CreateNetwork,
    StartNetwork,
    StopNetwork,
    UndefineNetwork,
    SetNetworkAutostart,
}

/// The states an operation may run in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateRule {
    /// Any state.
    Any,
    /// Not active (shut off, crashed).
    Inactive,
    /// Active: running, paused, or on the way.
    Active,
    Running,
    Paused,
}

impl StateRule {
    pub fn allows(self, s: DomainState) -> bool {
        match self {
            Self::Any => true,
            Self::Inactive => !s.is_active(),
            Self::Active => s.is_active(),
            Self::Running => s == DomainState::Running,
            Self::Paused => s == DomainState::Paused,
        }
    }

    /// Whether the rule asks for an active domain (for wording a refusal).
    pub fn needs_active(self) -> bool {
        !matches!(self, Self::Any | Self::Inactive)
    }
}

impl Operation {
    /// The permission the operation needs (some requests need a second one besides, see
    /// [`DomainOp::actions`]).
    pub fn action(self) -> Action {
        use Operation as O;
        match self {
            // What a local user can read from /sys and `ip address` anyway: the host
            // read permission, as for capabilities and sysinfo.
            O::ReadHost | O::ReadHostInterfaces | O::ReadNodeDevices | O::CompareCpu => {
                Action::ManagerRead
            }
            O::TuneHost => Action::ManagerWrite,
            O::ReadDomain
            | O::GetXml
            | O::GetStats
            | O::HasManagedSave
            | O::GetMetadata
            | O::GetVcpus
            | O::GetVcpuPinning
            | O::ReadTunables
            | O::ReadCpuStats
            | O::MemoryStats
            | O::GuestInfo
            | O::InterfaceAddresses
            | O::SnapshotList
            | O::SnapshotRead
            | O::SnapshotGetXml
            | O::CheckpointRead
            | O::CheckpointGetXml
            | O::LaunchSecurity
            | O::ManagedSaveXml
            | O::BlockIoTune
            | O::DiskErrors
            | O::BlockJobInfo
            | O::GetPerfEvents
            | O::BackupRead
            | O::SaveImageRead => Action::DomainRead,
            O::DefineDomain
            | O::SetAutostart
            | O::SetMetadata
            | O::SetVcpus
            | O::SetMemory
            | O::SetTunables
            | O::Pin
            | O::AttachDevice
            | O::DetachDevice
            | O::UpdateDevice
            // libvirt's ACLs: domain:write for these reads too (they ask the guest), and
            // set_time, fs_trim, set_password, which virtbus has no actions of its own for
            | O::GuestTime
            | O::SetGuestTime
            | O::FsTrim
            | O::GuestVcpus
            | O::SetGuestVcpus
            | O::SetUserPassword
            | O::GetSshKeys
            | O::SetSshKeys
            | O::SetLifecycleAction
            | O::Rename
            | O::DirtyRateCalc
            | O::ManagedSaveDefine
            | O::SetBlockIoTune
            | O::BlockWrite
            | O::SaveImageDefine
            | O::SetMemoryStatsPeriod
            | O::ChangeIoThreads
            | O::SetPerfEvents
            | O::AbortJob
            | O::MigrateTune => Action::DomainWrite,
            // libvirt's domain:checkpoint (the snapshot permission here) and
            // domain:block_write (see `backup::BackupBegin::actions`)
            O::BackupBegin => Action::DomainSnapshot,
            // the source's guest stops there; the destination's starts
            O::MigrateOut => Action::DomainStop,
            O::MigrateIn => Action::DomainStart,
            O::CreateDomain | O::Start | O::Restore => Action::DomainStart,
            O::CoreDump | O::SaveImageReadSecure => Action::DomainReadSecure,
            O::QemuPassthrough | O::QemuMonitorCommand | O::QemuAgentCommand => {
                Action::DomainQemuPassthrough
            }
            O::Shutdown | O::Reboot | O::PmSuspend | O::PmWakeup => Action::DomainInitControl,
            // a signal can end the container's init as destroy does
            O::Destroy | O::ManagedSave | O::Save | O::SendProcessSignal => Action::DomainStop,
            O::OpenNamespace => Action::DomainEnterNamespace,
            O::Reset | O::InjectNmi => Action::DomainReset,
            O::Suspend | O::Resume => Action::DomainSuspend,
            O::Undefine | O::ManagedSaveRemove => Action::DomainDelete,
            O::FsFreeze | O::FsThaw | O::GuestFsInfo => Action::DomainFsFreeze,
            // the screen shows what a graphics connection shows
            // and typing on the guest's keyboard is what a graphics session does
            O::OpenConsole | O::OpenGraphics | O::Screenshot | O::SendKey => {
                Action::DomainOpenConsole
            }
            // libvirt has a checkpoint permission of its own; virtbus's snapshot one covers
            // both (each records the disks' state at a point in time)
            O::SnapshotCreate
            | O::SnapshotRevert
            | O::SnapshotDelete
            | O::CheckpointCreate
            | O::CheckpointDelete => Action::DomainSnapshot,
            O::ReadStorage => Action::StorageRead,
            O::DefinePool
            | O::CreatePool
            | O::BuildPool
            | O::StartPool
            | O::StopPool
            | O::RefreshPool
            | O::DeletePool
            | O::UndefinePool
            | O::SetPoolAutostart
            | O::CreateVolume
            | O::CloneVolume
            | O::DeleteVolume
            | O::WipeVolume
            | O::ResizeVolume
            | O::UploadVolume
            | O::DownloadVolume => Action::StorageWrite,
            O::ReadNetwork => Action::NetworkRead,
            O::DefineNetwork
            | O::CreateNetwork
            | O::StartNetwork
            | O::StopNetwork
            | O::UndefineNetwork
            | O::SetNetworkAutostart => Action::NetworkWrite,
        }
    }

    /// The operation as a verb phrase, for messages ("cannot shut down domain 'web'").
    pub fn verb(self) -> &'static str {
        use Operation as O;
        match self {
            O::Start => "start",
            O::Shutdown => "shut down",
            O::Reboot => "reboot",
            O::Destroy => "destroy",
            O::Reset => "reset",
            O::InjectNmi => "inject an NMI into",
            O::SendProcessSignal => "send a process signal to",
            O::OpenNamespace => "open the namespaces of",
            O::Suspend => "suspend",
            O::Resume => "resume",
            O::FsFreeze => "freeze the filesystems of",
            O::FsThaw => "thaw the filesystems of",
            O::ManagedSave | O::Save => "save",
            O::Restore => "restore",
            O::SaveImageRead | O::SaveImageReadSecure => "read the save image of",
            O::SaveImageDefine => "change the save image of",
            O::CoreDump => "dump the memory of",
            O::SetMemoryStatsPeriod => "set the memory statistics period of",
            O::AbortJob => "abort the job of",
            O::BackupBegin => "back up",
            O::BackupRead => "read the backup job of",
            O::MigrateOut => "migrate",
            O::MigrateIn => "migrate in",
            O::MigrateTune => "change the migration settings of",
            O::MemoryStats => "read memory statistics of",
            O::GuestInfo => "query the guest agent of",
            O::InterfaceAddresses => "read the interface addresses of",
            O::GuestTime => "read the guest time of",
            O::SetGuestTime => "set the guest time of",
            O::GuestFsInfo => "read the filesystems of",
            O::FsTrim => "trim the filesystems of",
            O::GuestVcpus => "read the guest vCPUs of",
            O::SetGuestVcpus => "change the guest vCPUs of",
            O::SetUserPassword => "set a user password in",
            O::GetSshKeys => "read the SSH keys in",
            O::SetSshKeys => "change the SSH keys in",
            O::SetMemory => "change the memory of",
            O::ReadHost => "read the host of",
            O::ReadHostInterfaces => "read the network interfaces of",
            O::ReadNodeDevices => "read the node devices of",
            O::TuneHost => "tune the memory of",
            O::CompareCpu => "compare CPUs with the CPU of",
            O::DefineDomain => "define",
            O::CreateDomain => "create",
            O::QemuPassthrough => "pass QEMU arguments of its own to",
            O::QemuMonitorCommand => "send a monitor command to",
            O::QemuAgentCommand => "send a guest agent command to",
            O::ReadDomain => "read",
            O::Undefine => "undefine",
            O::SetAutostart => "set autostart of",
            O::GetXml => "read the XML of",
            O::GetStats => "read statistics of",
            O::ManagedSaveRemove => "remove the managed save image of",
            O::HasManagedSave => "look for the managed save image of",
            O::GetMetadata => "read metadata of",
            O::SetMetadata => "set metadata of",
            O::GetVcpus => "read the vCPUs of",
            O::SetVcpus => "change the vCPUs of",
            O::GetVcpuPinning => "read the vCPU pinning of",
            O::AttachDevice => "attach a device to",
            O::DetachDevice => "detach a device from",
            O::UpdateDevice => "change a device of",
            O::SnapshotCreate => "snapshot",
            O::SnapshotList => "list snapshots of",
            O::SnapshotRead => "read a snapshot of",
            O::SnapshotGetXml => "read a snapshot's XML of",
            O::SnapshotRevert => "revert",
            O::SnapshotDelete => "delete a snapshot of",
            O::CheckpointCreate => "checkpoint",
            O::CheckpointRead => "read a checkpoint of",
            O::CheckpointGetXml => "read a checkpoint's XML of",
            O::CheckpointDelete => "delete a checkpoint of",
            O::ReadStorage => "read",
            O::DefinePool => "define",
            O::CreatePool => "create",
            O::BuildPool => "build",
            O::StartPool => "start",
            O::StopPool => "stop",
            O::RefreshPool => "refresh",
            O::DeletePool => "delete",
            O::UndefinePool => "undefine",
            O::SetPoolAutostart => "set autostart of",
            O::CreateVolume => "create a volume in",
            O::CloneVolume => "clone a volume in",
            O::DeleteVolume => "delete a volume of",
            O::WipeVolume => "wipe a volume of",
            O::ResizeVolume => "resize a volume of",
            O::UploadVolume => "upload into a volume of",
            O::DownloadVolume => "download a volume of",
            O::ReadNetwork => "read network",
            O::DefineNetwork => "define network",
            O::CreateNetwork => "create network",
            O::StartNetwork => "start network",
            O::StopNetwork => "stop network",
            O::UndefineNetwork => "undefine network",
            O::SetNetworkAutostart => "set autostart of network",
            O::OpenConsole => "open a console of",
            O::OpenGraphics => "open a graphics connection to",
            O::Screenshot => "take a screenshot of",
            O::SendKey => "send keys to",
            O::SetLifecycleAction => "set a lifecycle action of",
            O::Rename => "rename",
            O::PmSuspend => "suspend the guest of",
            O::PmWakeup => "wake up",
            O::DirtyRateCalc => "measure the dirty page rate of",
            O::LaunchSecurity => "read the launch security of",
            O::ManagedSaveXml => "read the managed save image XML of",
            O::ManagedSaveDefine => "change the managed save image XML of",
            O::BlockIoTune => "read the block I/O tuning of",
            O::SetBlockIoTune => "change the block I/O tuning of",
            O::DiskErrors => "read the disk errors of",
            O::BlockJobInfo => "read the block jobs of",
            O::BlockWrite => "run a block operation on",
            O::ReadTunables => "read the tunables of",
            O::SetTunables => "tune",
            O::Pin => "pin the CPUs of",
            O::ReadCpuStats => "read the CPU statistics of",
            O::ChangeIoThreads => "change the I/O threads of",
            O::GetPerfEvents => "read the perf events of",
            O::SetPerfEvents => "change the perf events of",
        }
    }

    /// The states of the domain the operation may run in (checked by the core, under the
    /// domain's data lock, when the operation starts).
    pub fn states(self) -> StateRule {
        use Operation as O;
        match self {
            O::Start => StateRule::Inactive,
            O::Shutdown
            | O::Destroy
            | O::Reset
            | O::InjectNmi
            | O::SendProcessSignal
            | O::OpenNamespace
            | O::FsThaw
            | O::ManagedSave
            | O::Save
            | O::CoreDump
            | O::AbortJob
            | O::MigrateTune
            | O::MemoryStats
            | O::InterfaceAddresses
            | O::QemuMonitorCommand
            | O::SendKey
            | O::PmWakeup
            | O::DirtyRateCalc
            | O::DiskErrors
            | O::BlockJobInfo
            | O::BlockWrite
            | O::ReadCpuStats => StateRule::Active,
            O::Reboot
            | O::Suspend
            | O::FsFreeze
            | O::GuestInfo
            | O::GuestTime
            | O::SetGuestTime
            | O::GuestFsInfo
            | O::FsTrim
            | O::GuestVcpus
            | O::SetGuestVcpus
            | O::SetUserPassword
            | O::GetSshKeys
            | O::SetSshKeys
            | O::QemuAgentCommand
            | O::OpenConsole
            | O::OpenGraphics
            | O::Screenshot
            | O::PmSuspend => StateRule::Running,
            O::Resume => StateRule::Paused,
            _ => StateRule::Any,
        }
    }

    /// The name the operation holds the domain's job lock under (shown in the `Job`
    /// property and in "still runs" errors); `None` for operations that take no job.
    pub fn job(self) -> Option<&'static str> {
        use Operation as O;
        Some(match self {
            O::Start | O::CreateDomain => "start",
            O::Shutdown => "shutdown",
            O::Reboot => "reboot",
            O::Destroy => "destroy",
            O::Reset => "reset",
            O::InjectNmi => "inject NMI",
            O::SendProcessSignal => "send process signal",
            O::Suspend => "suspend",
            O::Resume => "resume",
            O::DefineDomain => "define",
            O::Undefine => "undefine",
            O::SetAutostart => "set autostart",
            O::FsFreeze => "fs-freeze",
            O::FsThaw => "fs-thaw",
            O::SetGuestTime => "set time",
            O::FsTrim => "fstrim",
            O::SetGuestVcpus => "set guest vCPUs",
            O::SetUserPassword => "set user password",
            O::SetSshKeys => "set SSH keys",
            O::ManagedSave => "managed save",
            O::Save => "save",
            O::Restore => "restore",
            O::CoreDump => "dump",
            O::SetMemoryStatsPeriod => "set memory stats period",
            O::MigrateOut => "migration out",
            O::MigrateIn => "migration in",
            O::ManagedSaveRemove => "remove managed save",
            O::SetMetadata => "set metadata",
            O::SetVcpus => "set vCPUs",
            O::SetMemory => "set memory",
            O::SetTunables => "tune",
            O::Pin => "pin",
            O::AttachDevice | O::DetachDevice | O::UpdateDevice => "edit devices",
            O::SnapshotCreate => "snapshot",
            O::SnapshotRevert => "revert",
            O::SnapshotDelete => "delete snapshot",
            O::CheckpointCreate => "checkpoint",
            O::CheckpointDelete => "delete checkpoint",
            O::DefinePool => "define pool",
            O::CreatePool => "create pool",
            O::BuildPool => "build pool",
            O::StartPool => "start pool",
            O::StopPool => "stop pool",
            O::RefreshPool => "refresh pool",
            O::DeletePool => "delete pool",
            O::UndefinePool => "undefine pool",
            O::SetPoolAutostart => "set pool autostart",
            O::CreateVolume | O::CloneVolume => "create volume",
            O::DeleteVolume => "delete volume",
            O::WipeVolume => "wipe volume",
            O::ResizeVolume => "resize volume",
            O::UploadVolume => "upload volume",
            O::SendKey => "send key",
            O::SetLifecycleAction => "set lifecycle action",
            O::Rename => "rename",
            O::PmSuspend => "pm suspend",
            O::PmWakeup => "pm wakeup",
            O::DirtyRateCalc => "dirty rate",
            O::ManagedSaveDefine => "managed save define",
            O::SetBlockIoTune => "block I/O tune",
            O::BlockWrite => "block job",
            O::ChangeIoThreads => "iothread",
            O::SetPerfEvents => "perf",
            O::BackupBegin => "backup",
            _ => return None,
        })
    }

    /// Whether the operation can change what the bus shows, so that its signals must go
    /// out before its reply. Reads change nothing.
    pub fn changes_state(self) -> bool {
        self.job().is_some()
    }
}

/// A request about one domain: its operation, the permissions it needs, the rules its
/// arguments follow, and what it does. `Output` is the typed result a front end encodes.
pub trait DomainOp: Send + Sized {
    type Output: Send;

    fn operation(&self) -> Operation;

    /// Every permission the request needs: its operation's, and more for some arguments
    /// (secrets in XML, quiesced snapshots).
    fn actions(&self) -> Vec<Action> {
        vec![self.operation().action()]
    }

    /// The snapshot the request is about, passed to authorization as a detail.
    fn snapshot(&self) -> Option<&str> {
        None
    }

    /// The rules about the arguments alone, checked before authorization so that a
    /// malformed request is refused the same way whoever sends it.
    fn validate(&self) -> Result<()> {
        Ok(())
    }

    /// Carry the request out.
    fn run(
        self,
        core: &Core,
        dom: &Arc<Domain>,
    ) -> impl Future<Output = Result<Self::Output>> + Send;
}

/// One request type: a struct with public fields, its operation, its result and its body.
macro_rules! domain_op {
    (
        $(#[$doc:meta])*
        $name:ident { $($field:ident : $ty:ty),* $(,)? } => $out:ty, $op:ident,
        |$req:ident, $core:ident, $dom:ident| $body:expr
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name { $(pub $field: $ty),* }

        impl DomainOp for $name {
            type Output = $out;

            fn operation(&self) -> Operation {
                Operation::$op
            }

            async fn run(self, $core: &Core, $dom: &Arc<Domain>) -> Result<$out> {
                let $req = self;
                $body
            }
        }
    };
}

pub(crate) use domain_op;

domain_op!(
    /// Boot the domain, or restore its managed save image.
    Start { opts: StartOptions } => (), Start, |r, core, dom| core.start(dom, r.opts).await
);
domain_op!(
    /// Ask the guest to power off.
    Shutdown { mode: PowerMode } => (), Shutdown, |r, core, dom| core.shutdown(dom, r.mode).await
);
domain_op!(
    /// Ask the guest to reboot.
    Reboot { mode: PowerMode } => (), Reboot, |r, core, dom| core.reboot(dom, r.mode).await
);
domain_op!(
    /// Stop the guest at once.
    Destroy { opts: DestroyOptions } => (), Destroy, |r, core, dom| core.destroy(dom, r.opts).await
);
domain_op!(
    /// Reset the guest's hardware.
    Reset {} => (), Reset, |_r, core, dom| core.reset(dom).await
);
domain_op!(
    /// Send the guest a non-maskable interrupt.
    InjectNmi {} => (), InjectNmi, |_r, core, dom| core.inject_nmi(dom).await
);
domain_op!(
    /// Pause the guest's CPUs.
    Suspend {} => (), Suspend, |_r, core, dom| core.suspend(dom).await
);
domain_op!(
    /// Let a paused guest run again.
    Resume {} => (), Resume, |_r, core, dom| core.resume(dom).await
);
domain_op!(
    /// Remove the persistent definition.
    Undefine { opts: UndefineOptions } => (), Undefine,
    |r, core, dom| core.undefine(dom, r.opts).await
);
domain_op!(
    /// Start the domain with the host, or not.
    SetAutostart { autostart: bool } => (), SetAutostart,
    |r, core, dom| core.set_autostart(dom, r.autostart).await
);
domain_op!(
    /// The sizes of one disk's image (by target or source path).
    GetBlockInfo { disk: String } => super::BlockInfo, GetStats,
    |r, core, dom| core.block_info(dom, &r.disk).await
);
domain_op!(
    /// The I/O throttling of one disk (by target or source path) in one definition.
    GetBlockIoTune { disk: String, affect: Affect } => crate::model::devices::Iotune,
    BlockIoTune, |r, core, dom| core.block_iotune(dom, &r.disk, r.affect)
);
domain_op!(
    /// Change the I/O throttling of one disk.
    SetBlockIoTune {
        disk: String,
        change: super::block::IotuneChange,
        affect: Affect,
    } => (), SetBlockIoTune,
    |r, core, dom| core.set_block_iotune(dom, &r.disk, r.change, r.affect).await
);
domain_op!(
    /// The number of disks (`max` `None`), or the disks in an error state, `max` at most.
    GetDiskErrors { max: Option<usize> } =>
    (usize, Vec<(String, crate::drivers::block::DiskError)>), DiskErrors,
    |r, core, dom| core.disk_errors(dom, r.max).await
);
domain_op!(
    /// The block job of one disk.
    GetBlockJob { disk: String } => crate::drivers::block::BlockReply, BlockJobInfo,
    |r, core, dom| core.block(dom, &r.disk, super::block::BlockAsk::Info).await
);
domain_op!(
    /// Resize a disk, arm a write threshold, or start, end or tune a block job.
    BlockWrite { disk: String, ask: super::block::BlockAsk } =>
    crate::drivers::block::BlockReply, BlockWrite,
    |r, core, dom| core.block(dom, &r.disk, r.ask).await
);
domain_op!(
    /// Pass a QMP command (JSON), or an HMP command line (`hmp`), to the running guest's
    /// monitor; QEMU's reply. Taints the domain.
    QemuMonitorCommand { cmd: String, hmp: bool } => String, QemuMonitorCommand,
    |r, core, dom| core.qemu_monitor_command(dom, &r.cmd, r.hmp).await
);
domain_op!(
    /// Pass a guest agent command (JSON) to the guest, waiting `timeout` at most (`None`:
    /// the agent's default); its reply. Taints the domain.
    QemuAgentCommand { cmd: String, timeout: Option<std::time::Duration> } => String,
    QemuAgentCommand,
    |r, core, dom| core.qemu_agent_command(dom, &r.cmd, r.timeout).await
);
domain_op!(
    /// Freeze the guest's filesystems through its agent; the count frozen.
    FsFreeze { mountpoints: Vec<String> } => u32, FsFreeze,
    |r, core, dom| core.fs_freeze(dom, &r.mountpoints).await
);
domain_op!(
    /// Thaw the guest's filesystems; the count thawed.
    FsThaw { mountpoints: Vec<String> } => u32, FsThaw,
    |r, core, dom| core.fs_thaw(dom, &r.mountpoints).await
);
/// Open a session on a console of the guest; with `peer`, pumped through that descriptor
/// (nothing returned), else through a new socket whose other end is returned.
#[derive(Debug)]
pub struct OpenConsole {
    pub opts: super::console::ConsoleOptions,
    pub peer: Option<std::os::fd::OwnedFd>,
}

impl DomainOp for OpenConsole {
    type Output = Option<std::os::fd::OwnedFd>;

    fn operation(&self) -> Operation {
        Operation::OpenConsole
    }

    async fn run(self, core: &Core, dom: &Arc<Domain>) -> Result<Self::Output> {
        core.open_console(dom, &self.opts, self.peer).await
    }
}

domain_op!(
    /// A socket connected to the guest's graphics server, `index` among its devices;
    /// `skipauth`: the server asks the client for no password.
    OpenGraphics { index: u32, skipauth: bool } => std::os::fd::OwnedFd, OpenGraphics,
    |r, core, dom| core.open_graphics(dom, r.index, r.skipauth).await
);
domain_op!(
    /// An image of screen `screen` of the guest's display, with its MIME type.
    Screenshot { screen: u32 } => crate::drivers::Screenshot, Screenshot,
    |r, core, dom| core.screenshot(dom, r.screen).await
);
domain_op!(
    /// Statistics of the groups asked (all when none).
    GetStats { groups: Vec<StatsGroup> } => Stats, GetStats,
    |r, core, dom| core.stats_in(dom, &r.groups).await
);
domain_op!(
    /// Drop the managed save image.
    ManagedSaveRemove {} => (), ManagedSaveRemove,
    |_r, core, dom| core.managed_save_remove(dom).await
);
domain_op!(
    /// Whether a managed save image exists.
    HasManagedSave {} => bool, HasManagedSave, |_r, core, dom| core.has_managed_save(dom)
);
domain_op!(
    /// The title, description or a metadata element.
    GetMetadata { kind: MetadataKind, affect: Affect } => String, GetMetadata,
    |r, core, dom| core.metadata(dom, &r.kind, r.affect)
);
domain_op!(
    /// Set (or, with `None`, remove) the title, description or a metadata element.
    SetMetadata {
        kind: MetadataKind,
        value: Option<String>,
        key: Option<String>,
        affect: Affect,
    } => (), SetMetadata,
    |r, core, dom| {
        core.set_metadata(dom, r.kind, r.value.as_deref(), r.key.as_deref(), r.affect)
            .await
    }
);
domain_op!(
    /// The vCPU count of one definition.
    GetVcpus { opts: VcpuOptions } => u32, GetVcpus, |r, core, dom| core.vcpu_count(dom, r.opts)
);
domain_op!(
    /// Which host CPUs each vCPU may run on.
    GetVcpuPinning { affect: Affect } => Vec<Vec<bool>>, GetVcpuPinning,
    |r, core, dom| core.vcpu_pinning(dom, r.affect).await
);
domain_op!(
    /// The running guest's memory statistics.
    MemoryStats {} => Vec<(MemoryStat, u64)>, MemoryStats,
    |_r, core, dom| core.memory_stats(dom).await
);
domain_op!(
    /// Add a device.
    AttachDevice { xml: String, opts: DeviceOptions } => (), AttachDevice,
    |r, core, dom| core.attach_device(dom, &r.xml, r.opts).await
);
domain_op!(
    /// Remove a device.
    DetachDevice { xml: String, opts: DeviceOptions } => (), DetachDevice,
    |r, core, dom| core.detach_device(dom, &r.xml, r.opts).await
);
domain_op!(
    /// Change a device in place.
    UpdateDevice { xml: String, opts: DeviceOptions } => (), UpdateDevice,
    |r, core, dom| core.update_device(dom, &r.xml, r.opts).await
);
domain_op!(
    /// What the guest agent tells of the guest.
    GuestInfoOp { types: GuestInfoTypes } => GuestInfo, GuestInfo,
    |r, core, dom| core.guest_info(dom, r.types).await
);
domain_op!(
    /// The guest's users, filesystems and disks, from its agent.
    GuestDetailsOp { parts: super::agent::GuestParts } => super::agent::GuestDetails, GuestInfo,
    |r, core, dom| core.guest_details(dom, r.parts).await
);
domain_op!(
    /// The guest's clock (seconds, nanoseconds).
    GuestTime {} => (i64, u32), GuestTime, |_r, core, dom| core.guest_time(dom).await
);
domain_op!(
    /// Set the guest's clock, or (`None`) resynchronize it from its RTC.
    SetGuestTime { time: Option<(i64, u32)> } => (), SetGuestTime,
    |r, core, dom| core.set_guest_time(dom, r.time).await
);
domain_op!(
    /// The guest's mounted filesystems with the domain's disk targets.
    GuestFsInfo {} => Vec<crate::drivers::guest_agent::GuestFs>, GuestFsInfo,
    |_r, core, dom| core.guest_fs_info(dom).await
);
domain_op!(
    /// Discard unused blocks (of `mountpoint`, where the driver can choose one).
    FsTrim { mountpoint: Option<String>, minimum: u64 } => (), FsTrim,
    |r, core, dom| core.fstrim(dom, r.mountpoint, r.minimum).await
);
domain_op!(
    /// The vCPUs as the guest sees them.
    GuestVcpus {} => Vec<crate::drivers::guest_agent::GuestVcpu>, GuestVcpus,
    |_r, core, dom| core.guest_vcpus(dom).await
);
domain_op!(
    /// Bring the guest's vCPUs `ids` online or offline.
    SetGuestVcpus { ids: Vec<u32>, online: bool } => (), SetGuestVcpus,
    |r, core, dom| core.set_guest_vcpus(dom, &r.ids, r.online).await
);
domain_op!(
    /// Set a guest user's password.
    SetUserPassword { user: String, password: String, crypted: bool } => (), SetUserPassword,
    |r, core, dom| core.set_user_password(dom, r.user, r.password, r.crypted).await
);
domain_op!(
    /// A guest user's authorized SSH keys.
    GetSshKeys { user: String } => Vec<String>, GetSshKeys,
    |r, core, dom| core.ssh_keys(dom, r.user).await
);
domain_op!(
    /// Change a guest user's authorized SSH keys.
    SetSshKeys { user: String, keys: Vec<String>, mode: super::agent::SshKeysMode } => (),
    SetSshKeys,
    |r, core, dom| core.set_ssh_keys(dom, r.user, r.keys, r.mode).await
);
domain_op!(
    /// The guest's interfaces and addresses, from `source`.
    InterfaceAddresses { source: AddressSource } => Vec<GuestInterface>, InterfaceAddresses,
    |r, core, dom| core.interface_addresses(dom, r.source).await
);
domain_op!(
    /// Snapshots matching the filters, by name.
    SnapshotList { opts: SnapshotListOptions } => Vec<String>, SnapshotList,
    |r, core, dom| core.snapshot_list(dom, r.opts)
);

domain_op!(
    /// CPU bandwidth and memory limits, live (read back) or persistent.
    GetTunables { affect: Affect } => crate::drivers::LiveTunables, ReadTunables,
    |r, core, dom| core.tunables(dom, r.affect).await
);
domain_op!(
    SetScheduler { change: super::tune::SchedulerChange, affect: Affect } => (), SetTunables,
    |r, core, dom| core.set_scheduler(dom, r.change, r.affect).await
);
domain_op!(
    SetMemoryLimits { change: super::tune::MemoryChange, affect: Affect } => (), SetTunables,
    |r, core, dom| core.set_memory_limits(dom, r.change, r.affect).await
);
domain_op!(
    PinCpus {
        target: super::tune::PinTarget,
        cpus: crate::model::tuning::IdSet,
        affect: Affect,
    } => (), Pin,
    |r, core, dom| core.pin(dom, r.target, r.cpus, r.affect).await
);
domain_op!(
    GetBlkio { affect: Affect } => crate::model::blkiotune::Blkiotune, ReadTunables,
    |r, core, dom| core.blkio_tunables(dom, r.affect).await
);
domain_op!(
    SetBlkio { change: super::tune::BlkioChange, affect: Affect } => (), SetTunables,
    |r, core, dom| core.set_blkio(dom, r.change, r.affect).await
);
domain_op!(
    GetNuma { affect: Affect } => (crate::model::tuning::NumaMode, Option<crate::model::tuning::IdSet>),
    ReadTunables,
    |r, core, dom| core.numa_tunables(dom, r.affect)
);
domain_op!(
    SetNuma { change: super::tune::NumaChange, affect: Affect } => (), SetTunables,
    |r, core, dom| core.set_numa(dom, r.change, r.affect).await
);
domain_op!(
    GetEmulatorPin { affect: Affect } => Vec<bool>, ReadTunables,
    |r, core, dom| core.emulator_pinning(dom, r.affect).await
);
domain_op!(
    GetIoThreadPins { affect: Affect } => Vec<(u32, Vec<bool>)>, ReadTunables,
    |r, core, dom| core.iothread_pinning(dom, r.affect).await
);
domain_op!(
    /// Add, remove or retune an I/O thread (`virsh iothreadadd`, `iothreaddel`,
    /// `iothreadset`).
    ChangeIoThread { change: crate::drivers::livecfg::IoThreadChange, affect: Affect } => (),
    ChangeIoThreads,
    |r, core, dom| core.change_iothread(dom, r.change, r.affect).await
);
domain_op!(
    /// Each perf event, on or off, of one definition.
    GetPerfEvents { affect: Affect } => Vec<(crate::model::perf::PerfEvent, bool)>,
    GetPerfEvents,
    |r, core, dom| core.perf_events(dom, r.affect)
);
domain_op!(
    /// Turn perf events on or off (`virsh perf --enable/--disable`).
    SetPerfEvents { changes: Vec<(crate::model::perf::PerfEvent, bool)>, affect: Affect } => (),
    SetPerfEvents,
    |r, core, dom| core.set_perf_events(dom, r.changes, r.affect).await
);
domain_op!(
    /// The `<bandwidth>` of an interface (MAC address or host device name).
    GetInterfaceBandwidth { device: String, affect: Affect } =>
        Option<crate::model::devices::Bandwidth>, ReadTunables,
    |r, core, dom| core.interface_bandwidth(dom, &r.device, r.affect)
);
domain_op!(
    /// Change the `<bandwidth>` of an interface.
    SetInterfaceBandwidth {
        device: String,
        change: super::iftune::BandwidthChange,
        affect: Affect,
    } => (), SetTunables,
    |r, core, dom| core.set_interface_bandwidth(dom, r.device, r.change, r.affect).await
);
domain_op!(
    GetCpuStats {} => crate::drivers::CpuStats, ReadCpuStats,
    |_r, core, dom| core.cpu_stats(dom).await
);

/// The domain's XML; secrets need a second permission.
#[derive(Debug, Clone)]
pub struct GetXml {
    pub opts: XmlOptions,
}

impl DomainOp for GetXml {
    type Output = String;

    fn operation(&self) -> Operation {
        Operation::GetXml
    }

    fn actions(&self) -> Vec<Action> {
        secure_read(self.opts.secure)
    }

    async fn run(self, core: &Core, dom: &Arc<Domain>) -> Result<String> {
        core.domain_xml(dom, self.opts)
    }
}

/// Reads, and reads of secrets besides when `secure`.
fn secure_read(secure: bool) -> Vec<Action> {
    if secure {
        vec![Action::DomainRead, Action::DomainReadSecure]
    } else {
        vec![Action::DomainRead]
    }
}

/// Save the guest's memory and stop it, to be restored by the next start.
#[derive(Debug, Clone)]
pub struct ManagedSave {
    pub opts: ManagedSaveOptions,
}

impl DomainOp for ManagedSave {
    type Output = ();

    fn operation(&self) -> Operation {
        Operation::ManagedSave
    }

    fn validate(&self) -> Result<()> {
        Ok(self.opts.validate()?)
    }

    async fn run(self, core: &Core, dom: &Arc<Domain>) -> Result<()> {
        core.managed_save(dom, self.opts).await
    }
}

/// Save the guest's state to a file and stop it (`virsh save`).
#[derive(Debug, Clone)]
pub struct Save {
    pub path: std::path::PathBuf,
    /// Replacement domain XML for the file (same domain).
    pub xml: Option<String>,
    pub opts: ManagedSaveOptions,
}

impl DomainOp for Save {
    type Output = ();

    fn operation(&self) -> Operation {
        Operation::Save
    }

    fn validate(&self) -> Result<()> {
        Ok(self.opts.validate()?)
    }

    async fn run(self, core: &Core, dom: &Arc<Domain>) -> Result<()> {
        core.save_to_file(dom, &self.path, self.xml.as_deref(), self.opts)
            .await
    }
}

domain_op!(
    /// Dump the guest's memory to a file (`virsh dump`), then leave it as `after` says.
    CoreDump {
        path: std::path::PathBuf,
        opts: crate::drivers::DumpOptions,
        after: super::save_file::AfterDump,
    } => (), CoreDump,
    |r, core, dom| core.core_dump(dom, &r.path, r.opts, r.after).await
);
domain_op!(
    /// Stop the save or dump the domain runs (takes no job: that one holds it).
    AbortJob {} => (), AbortJob, |_r, core, dom| core.abort_job(dom).await
);
domain_op!(
    /// How often (seconds) the running guest's balloon collects memory statistics.
    SetMemoryStatsPeriod { secs: u32, affect: Affect } => (), SetMemoryStatsPeriod,
    |r, core, dom| core.set_memory_stats_period(dom, r.secs, r.affect).await
);

/// Change the vCPU count of one definition.
#[derive(Debug, Clone)]
pub struct SetVcpus {
    pub count: u32,
    pub opts: VcpuOptions,
}

impl DomainOp for SetVcpus {
    type Output = ();

    fn operation(&self) -> Operation {
        Operation::SetVcpus
    }

    fn validate(&self) -> Result<()> {
        Ok(self.opts.validate_set()?)
    }

    async fn run(self, core: &Core, dom: &Arc<Domain>) -> Result<()> {
        core.set_vcpus(dom, self.count, self.opts).await
    }
}

/// Change the memory of one definition (the current balloon target, or the maximum).
#[derive(Debug, Clone)]
pub struct SetMemory {
    pub kib: u64,
    pub opts: MemoryOptions,
}

impl DomainOp for SetMemory {
    type Output = ();

    fn operation(&self) -> Operation {
        Operation::SetMemory
    }

    fn validate(&self) -> Result<()> {
        Ok(self.opts.validate()?)
    }

    async fn run(self, core: &Core, dom: &Arc<Domain>) -> Result<()> {
        core.set_memory(dom, self.kib, self.opts).await
    }
}

/// Take a snapshot; the new snapshot's name, and whether its metadata is kept.
#[derive(Debug, Clone)]
pub struct SnapshotCreate {
    pub xml: String,
    pub opts: SnapshotCreateOptions,
}

impl DomainOp for SnapshotCreate {
    type Output = (String, bool);

    fn operation(&self) -> Operation {
        Operation::SnapshotCreate
    }

    fn actions(&self) -> Vec<Action> {
        if self.opts.quiesce {
            vec![Action::DomainSnapshot, Action::DomainFsFreeze]
        } else {
            vec![Action::DomainSnapshot]
        }
    }

    fn validate(&self) -> Result<()> {
        Ok(self.opts.validate()?)
    }

    async fn run(self, core: &Core, dom: &Arc<Domain>) -> Result<(String, bool)> {
        core.snapshot_create(dom, &self.xml, self.opts).await
    }
}

/// Read one snapshot's facts (properties, parent, children, whether current): the
/// snapshot must exist.
#[derive(Debug, Clone)]
pub struct SnapshotRead {
    pub name: String,
}

impl DomainOp for SnapshotRead {
    type Output = super::SnapshotInfo;

    fn operation(&self) -> Operation {
        Operation::SnapshotRead
    }

    fn snapshot(&self) -> Option<&str> {
        Some(&self.name)
    }

    async fn run(self, core: &Core, dom: &Arc<Domain>) -> Result<Self::Output> {
        core.snapshot_info(dom, &self.name)
    }
}

/// The children (or all descendants) of a snapshot matching the filters.
#[derive(Debug, Clone)]
pub struct SnapshotChildren {
    pub name: String,
    pub descendants: bool,
    pub opts: SnapshotListOptions,
}

impl DomainOp for SnapshotChildren {
    type Output = Vec<String>;

    fn operation(&self) -> Operation {
        Operation::SnapshotRead
    }

    fn snapshot(&self) -> Option<&str> {
        Some(&self.name)
    }

    async fn run(self, core: &Core, dom: &Arc<Domain>) -> Result<Vec<String>> {
        core.snapshot_children_in(dom, &self.name, self.descendants, self.opts)
    }
}

/// A snapshot's XML; secrets need a second permission.
#[derive(Debug, Clone)]
pub struct SnapshotGetXml {
    pub name: String,
    pub secure: bool,
}

impl DomainOp for SnapshotGetXml {
    type Output = String;

    fn operation(&self) -> Operation {
        Operation::SnapshotGetXml
    }

    fn actions(&self) -> Vec<Action> {
        secure_read(self.secure)
    }

    fn snapshot(&self) -> Option<&str> {
        Some(&self.name)
    }

    async fn run(self, core: &Core, dom: &Arc<Domain>) -> Result<String> {
        core.snapshot_xml(dom, &self.name, self.secure)
    }
}

/// Bring the domain back to a snapshot.
#[derive(Debug, Clone)]
pub struct SnapshotRevert {
    pub name: String,
    pub opts: RevertOptions,
}

impl DomainOp for SnapshotRevert {
    type Output = ();

    fn operation(&self) -> Operation {
        Operation::SnapshotRevert
    }

    fn snapshot(&self) -> Option<&str> {
        Some(&self.name)
    }

    fn validate(&self) -> Result<()> {
        Ok(self.opts.validate()?)
    }

    async fn run(self, core: &Core, dom: &Arc<Domain>) -> Result<()> {
        core.snapshot_revert(dom, &self.name, self.opts).await
    }
}

/// Delete a snapshot (and, as asked, its children).
#[derive(Debug, Clone)]
pub struct SnapshotDelete {
    pub name: String,
    pub opts: SnapshotDeleteOptions,
}

impl DomainOp for SnapshotDelete {
    type Output = ();

    fn operation(&self) -> Operation {
        Operation::SnapshotDelete
    }

    fn snapshot(&self) -> Option<&str> {
        Some(&self.name)
    }

    fn validate(&self) -> Result<()> {
        Ok(self.opts.validate()?)
    }

    async fn run(self, core: &Core, dom: &Arc<Domain>) -> Result<()> {
        core.snapshot_delete(dom, &self.name, self.opts).await
    }
}

/// Take a checkpoint, or redefine one's metadata; its name.
#[derive(Debug, Clone)]
pub struct CheckpointCreate {
    pub xml: String,
    pub opts: super::checkpoints::CheckpointCreateOptions,
}

impl DomainOp for CheckpointCreate {
    type Output = String;

    fn operation(&self) -> Operation {
        Operation::CheckpointCreate
    }

    fn actions(&self) -> Vec<Action> {
        if self.opts.quiesce {
            vec![Action::DomainSnapshot, Action::DomainFsFreeze]
        } else {
            vec![Action::DomainSnapshot]
        }
    }

    async fn run(self, core: &Core, dom: &Arc<Domain>) -> Result<String> {
        core.checkpoint_create(dom, &self.xml, self.opts).await
    }
}

domain_op!(
    /// Checkpoint names: the domain's (`from: None`) or one checkpoint's children.
    CheckpointList {
        from: Option<String>,
        opts: super::checkpoints::CheckpointListOptions,
    } => Vec<String>, CheckpointRead,
    |r, core, dom| core.checkpoint_list(dom, r.from.as_deref(), r.opts)
);
domain_op!(
    /// One checkpoint's name and parent: it must exist.
    CheckpointRead { name: String } => super::checkpoints::CheckpointFacts, CheckpointRead,
    |r, core, dom| core.checkpoint_facts(dom, &r.name)
);
domain_op!(
    /// Delete a checkpoint (and, as asked, its descendants; its bitmaps unless metadata-only).
    CheckpointDelete {
        name: String,
        opts: super::checkpoints::CheckpointDeleteOptions,
    } => (), CheckpointDelete,
    |r, core, dom| core.checkpoint_delete(dom, &r.name, r.opts).await
);

/// A checkpoint's XML; secrets of the embedded domain need a second permission.
#[derive(Debug, Clone)]
pub struct CheckpointGetXml {
    pub name: String,
    pub format: crate::model::CheckpointFormat,
}

impl DomainOp for CheckpointGetXml {
    type Output = String;

    fn operation(&self) -> Operation {
        Operation::CheckpointGetXml
    }

    fn actions(&self) -> Vec<Action> {
        secure_read(self.format.secure)
    }

    async fn run(self, core: &Core, dom: &Arc<Domain>) -> Result<String> {
        core.checkpoint_xml(dom, &self.name, self.format).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_rules_read_as_libvirt_does() {
        assert!(Operation::Start.states().allows(DomainState::ShutOff));
        assert!(!Operation::Start.states().allows(DomainState::Running));
        assert!(Operation::Resume.states().allows(DomainState::Paused));
        assert!(!Operation::Suspend.states().allows(DomainState::Paused));
        assert!(Operation::Destroy.states().needs_active());
        assert!(!Operation::Start.states().needs_active());
    }

    #[test]
    fn reads_take_no_job_and_changes_do() {
        assert_eq!(Operation::GetXml.job(), None);
        assert!(!Operation::GetXml.changes_state());
        assert_eq!(Operation::Start.job(), Some("start"));
        assert!(Operation::SetMemory.changes_state());
    }

    #[test]
    fn extra_permissions_follow_the_arguments() {
        let plain = GetXml {
            opts: XmlOptions::default(),
        };
        assert_eq!(plain.actions(), vec![Action::DomainRead]);
        let secure = GetXml {
            opts: XmlOptions {
                secure: true,
                ..Default::default()
            },
        };
        assert_eq!(
            secure.actions(),
            vec![Action::DomainRead, Action::DomainReadSecure]
        );
        let quiesced = SnapshotCreate {
            xml: String::new(),
            opts: SnapshotCreateOptions {
                disk_only: true,
                quiesce: true,
                ..Default::default()
            },
        };
        assert_eq!(
            quiesced.actions(),
            vec![Action::DomainSnapshot, Action::DomainFsFreeze]
        );
    }
}

domain_op!(
    /// The source's begin step of a migration: the definition the destination runs and
    /// the cookie for its prepare step.
    MigrateBegin { opts: super::migrate::MigrateOptions } => (String, Vec<u8>), MigrateOut,
    |r, core, dom| core.migrate_begin(dom, &r.opts).await
);
domain_op!(
    /// The source's perform step: the guest's state sent; the cookie for the finish step.
    MigratePerform { cookie: Vec<u8>, opts: super::migrate::MigrateOptions } => Vec<u8>,
    MigrateOut,
    |r, core, dom| core.migrate_perform(dom, &r.cookie, &r.opts).await
);
domain_op!(
    /// The source's confirm step: the migrated guest stops, or runs again when cancelled.
    MigrateConfirm {
        cookie: Vec<u8>,
        opts: super::migrate::MigrateOptions,
        cancelled: bool,
    } => (), MigrateOut,
    |r, core, dom| core.migrate_confirm(dom, &r.cookie, &r.opts, r.cancelled).await
);
domain_op!(
    /// Read a migration setting (maximum downtime, bandwidth, compression cache).
    MigrateSetting { which: crate::drivers::migrate::MigrateSetting } => u64, ReadDomain,
    |r, core, dom| core.migrate_setting(dom, r.which).await
);
domain_op!(
    /// Change a migration setting.
    SetMigrateSetting { which: crate::drivers::migrate::MigrateSetting, value: u64 } => (),
    MigrateTune,
    |r, core, dom| core.set_migrate_setting(dom, r.which, r.value).await
);
domain_op!(
    /// Switch the running outgoing migration to post-copy.
    MigrateStartPostCopy {} => (), MigrateTune,
    |_r, core, dom| core.migrate_start_postcopy(dom).await
);
