//! Guest agent requests beyond guest information, in a driver-neutral shape: the guest's
//! clock, filesystems, vCPUs, users and disks, passwords and SSH keys. One request type and
//! one reply type, so that a driver implements a single hook and the core keeps the rules
//! (state, disk targets, which vCPUs may go offline).

/// Where the guest sees a disk (qemu-ga's `GuestDiskAddress`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuestDiskAddress {
    /// The PCI address of the disk's controller function: domain, bus, slot, function.
    pub pci: Option<[u32; 4]>,
    pub bus: u32,
    pub target: u32,
    pub unit: u32,
    pub serial: Option<String>,
    /// The guest's device node (`/dev/vda`).
    pub dev: Option<String>,
    /// The domain's disk target, when the driver knows it without matching addresses (the
    /// test driver); else the core finds it from the address.
    pub target_dev: Option<String>,
}

/// A mounted filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestFs {
    /// The guest's name of its device (`vda`, `sda1`, `dm-0`).
    pub name: String,
    pub mountpoint: String,
    pub fstype: String,
    pub total_bytes: Option<u64>,
    pub used_bytes: Option<u64>,
    pub disks: Vec<GuestDiskAddress>,
}

/// A logged-in user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestUser {
    pub name: String,
    /// The Windows domain, when there is one.
    pub domain: Option<String>,
    /// Login time in milliseconds since the epoch.
    pub login_ms: u64,
}

/// A disk as the guest sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestDisk {
    pub name: String,
    pub partition: bool,
    pub dependencies: Vec<String>,
    pub address: Option<GuestDiskAddress>,
    /// The guest's alias of the disk (device mapper names).
    pub alias: Option<String>,
}

/// One vCPU as the guest sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestVcpu {
    pub id: u32,
    pub online: bool,
    pub offlinable: bool,
}

/// A request to the guest agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentRequest {
    /// The guest's clock.
    GetTime,
    /// Set the guest's clock to seconds and nanoseconds, or (`None`) from its RTC.
    SetTime(Option<(i64, u32)>),
    /// Mounted filesystems; with `optional`, an agent without the command answers `None`.
    FsInfo {
        optional: bool,
    },
    /// Discard unused blocks of `mountpoint` (all when `None`) in extents of `minimum`
    /// bytes or more.
    FsTrim {
        mountpoint: Option<String>,
        minimum: u64,
    },
    Vcpus,
    /// Bring vCPUs online or offline: (id, online) pairs.
    SetVcpus(Vec<(u32, bool)>),
    SetUserPassword {
        user: String,
        password: String,
        crypted: bool,
    },
    SshKeys {
        user: String,
    },
    /// Add keys (replacing all the user's keys when `reset`).
    AddSshKeys {
        user: String,
        keys: Vec<String>,
        reset: bool,
    },
    RemoveSshKeys {
        user: String,
        keys: Vec<String>,
    },
    Users {
        optional: bool,
    },
    Disks {
        optional: bool,
    },
}

/// The agent's answer, by request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentReply {
    Done,
    Time(i64, u32),
    /// `None`: the agent has no such command and the request was optional.
    FsInfo(Option<Vec<GuestFs>>),
    Vcpus(Vec<GuestVcpu>),
    SshKeys(Vec<String>),
    Users(Option<Vec<GuestUser>>),
    Disks(Option<Vec<GuestDisk>>),
}
