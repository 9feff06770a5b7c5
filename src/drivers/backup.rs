//! A backup job as a driver runs it: the core hands over a plan (which disks, into which
//! files, push or pull), the driver starts it in the hypervisor and reports its end with
//! libvirt's statistics. Checks of the definition against the domain are the core's.

use crate::model::devices::DiskFormat;

/// Where a pull backup's NBD server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NbdServer {
    Tcp { host: String, port: u16 },
    Unix { path: String },
}

/// One disk of a backup plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanDisk {
    /// The domain disk (`vda`).
    pub target: String,
    /// The copy (push) or the scratch image (pull).
    pub store: String,
    /// Whether `store` is a block device rather than a file.
    pub block: bool,
    pub format: DiskFormat,
    /// The NBD export's name (pull).
    pub export: Option<String>,
    /// The bitmap of the disk's changes since the incremental backup's checkpoint.
    pub bitmap: Option<String>,
    /// The bitmap name the NBD export offers (pull, incremental).
    pub export_bitmap: Option<String>,
}

/// What a backup job does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupPlan {
    /// `Some`: pull mode, exported by this server.
    pub pull: Option<NbdServer>,
    pub disks: Vec<PlanDisk>,
    /// Write into stores that exist already (`VIR_DOMAIN_BACKUP_BEGIN_REUSE_EXTERNAL`).
    pub reuse: bool,
}

/// How far a backup has come, in bytes (libvirt's backup job statistics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackupProgress {
    /// Push: bytes to copy and copied.
    pub total: u64,
    pub transferred: u64,
    /// Pull: scratch space used and its size.
    pub tmp_used: u64,
    pub tmp_total: u64,
}

/// How a backup job ended (libvirt's `virDomainJobStatus` of its completed job).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupEnd {
    Completed,
    Failed,
    Cancelled,
}
