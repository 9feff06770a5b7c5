//! Types of the driver hooks behind virsh's smaller domain commands: guest power management
//! and the dirty page rate measurement.

/// Where a guest suspends itself to (libvirt's `virNodeSuspendTarget`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuspendTarget {
    /// Suspend to RAM (S3).
    Mem,
    /// Suspend to disk (S4, hibernation).
    Disk,
    /// Both: to RAM, with the image on disk too.
    Hybrid,
}

impl SuspendTarget {
    /// libvirt's number for it.
    pub fn from_code(n: u32) -> Option<Self> {
        Some(match n {
            0 => Self::Mem,
            1 => Self::Disk,
            2 => Self::Hybrid,
            _ => return None,
        })
    }
}

/// The last dirty page rate measurement of a guest (QEMU's `query-dirty-rate`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirtyRate {
    /// 0 never started, 1 measuring, 2 measured (libvirt's `virDomainDirtyRateStatus`).
    pub status: i32,
    /// When the measurement started (seconds, the hypervisor's clock).
    pub start_time: i64,
    /// How long it measured, in seconds.
    pub period: i64,
    /// How it measured: `page-sampling`, `dirty-bitmap` or `dirty-ring`.
    pub mode: String,
    /// The rate measured, in MiB/s (once measured).
    pub mib_per_sec: Option<i64>,
}
