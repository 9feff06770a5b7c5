//! The host's own hardware, read-only: its network interfaces as libvirt's interface driver
//! shows them (`<interface>` XML) and its devices as libvirt's node-device driver shows them
//! (`<device>` XML).
//!
//! libvirt reads both through udev; virtbus reads the same kernel sources directly: sysfs
//! (`/sys/class/net`, `/sys/bus/*/devices`, `/sys/block`) for links and devices, and
//! `getifaddrs(3)` (netlink inside glibc) for addresses, so no udev database and no netlink
//! crate are needed. Every reader takes the sysfs root as an argument so that tests can hand it
//! a tree of their own (USB and SCSI machines this CI host does not have).

pub mod cpu;
pub mod cpumodels;
mod ethtool;
pub mod hostmem;
pub mod interfaces;
pub mod nodedev;
mod pciids;
mod sysfs;

use std::path::PathBuf;

/// What a host read can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no interface with matching name '{0}'")]
    NoInterface(String),
    #[error("no interface with matching mac '{0}'")]
    NoInterfaceMac(String),
    #[error("no node device with matching name '{0}'")]
    NoDevice(String),
    #[error("cannot read '{}': {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot parse '{}': {what}", path.display())]
    Parse { path: PathBuf, what: String },
}

pub type Result<T> = std::result::Result<T, Error>;

/// The live system's sysfs.
pub const SYSFS: &str = "/sys";

#[cfg(test)]
mod tests;
