//! Storage pools and volumes: libvirt's `dir` pools, their XML and their operations.
//!
//! [`pool_xml`] and [`vol_xml`] are the definitions; [`dir`] does the file work of a
//! directory pool; [`qemu_img`] runs `qemu-img` for image formats; [`manager`] keeps the
//! pools, persists them and runs their operations for the core.

mod allow;
pub mod caps;
pub mod config;
pub mod dir;
pub mod manager;
pub mod memory;
mod owners;
pub mod perms;
pub mod pool_xml;
pub mod qemu_img;
pub mod size;
pub mod sniff;
pub mod transfer;
pub mod vol_xml;
pub mod volumes;

#[cfg(test)]
mod tests;

pub use manager::{
    PoolEventKind, PoolInfo, Settings, Storage, StorageEvent, VolEventKind, VolInfo,
};
pub use perms::Perms;
pub use pool_xml::{PoolDef, PoolSizes, PoolType};
pub use transfer::TransferOptions;
pub use vol_xml::{VolDef, VolFormat, VolTarget, VolType};
pub use volumes::{CreateOptions, ResizeOptions};

type Result<T> = crate::core::Result<T>;
