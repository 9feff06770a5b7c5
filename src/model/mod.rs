//! Typed model of libvirt domain and domain-snapshot XML.
//!
//! Parsing is strict: anything the model does not know — element,
//! attribute, text, namespace — is an error, so nothing a user wrote is
//! ever dropped silently. The only exceptions are comments and processing
//! instructions (they carry no data), the `id` attribute of `<domain>`
//! (present in `dumpxml` of running domains, meaningless in a definition)
//! and the content of `<metadata>` and the snapshot `<cookie>`, which is
//! kept verbatim.
//!
//! # Error paths
//!
//! Errors name the offending place like `/domain/devices/disk[2]/driver/@bogus`:
//! element names from the root joined by `/`; a 1-based `[n]` after a name
//! only when its parent has more than one element of that name (so a lone
//! disk is `disk`, the second of two is `disk[2]`); attributes as `/@name`;
//! text errors name the element holding the text. Namespaced names keep
//! their prefix (`/domain/qemu:commandline`). Paths of embedded domains in
//! snapshots start at the document root (`/domainsnapshot/domain/...`).
//!
//! # Output
//!
//! `to_xml` writes canonical XML: two-space indentation, libvirt's element
//! order (devices grouped by kind), a fixed attribute order, single-quoted
//! attributes, memory in KiB. Parsing the output gives an equal value and
//! formatting that again gives the same text.

mod address;
pub mod backup;
pub mod blkiotune;
pub mod checkpoint;
mod clock;
mod cpu;
pub mod defaults;
pub mod devices;
mod domain;
mod error;
mod features;
#[cfg(test)]
pub(crate) mod fuzz;
pub mod guest_events;
mod hyperv;
pub mod idmap;
pub mod launch_security;
pub mod memtune;
mod metadata;
pub mod migratable;
pub mod names;
pub mod options;
mod os;
pub mod perf;
pub mod proc_caps;
pub mod qemu_ns;
pub mod seclabel;
mod snapshot;
pub mod state;
pub mod tuning;
pub(crate) mod values;
pub(crate) mod writer;
pub(crate) mod xml;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_features;

pub use address::{Address, AddressType, AttrList, DeviceInfo};
pub use checkpoint::{CheckpointDef, CheckpointDisk, CheckpointFormat, CheckpointKind};
pub use clock::{
    Clock, ClockBasis, ClockOffset, TickPolicy, Timer, TimerName, TimerTrack, TscMode,
};
pub use cpu::{
    Cpu, CpuCheck, CpuFallback, CpuFeature, CpuMatch, CpuMode, CpuModel, FeaturePolicy, Topology,
};
pub use devices::Devices;
pub use domain::{DomainDef, DomainType, FormatOptions, LifecycleAction, Pm, VcpuPlacement};
pub use error::XmlError;
pub use features::{FeatureState, Features, IoapicDriver};
pub use hyperv::{HvFlag, Hyperv, HypervMode, KvmFeatures, KvmFlag};
pub use metadata::{VIRTBUS_NS, VIRTBUS_PREFIX};
pub use names::{NameKind, validate_name};
pub use os::{
    BootDev, BootMenu, Firmware, FirmwareFeature, FirmwareFeatureName, Loader, LoaderType, Nvram,
    Os, OsType,
};
pub use snapshot::{
    DiskSnapshotKind, MemorySnapshotKind, SNAPSHOT_STATES, SnapshotDef, SnapshotDisk, SnapshotKind,
    SnapshotMemory, disk_images, snapshot_kind,
};
pub use values::MacAddr;

/// Largest document accepted, in bytes; larger ones are refused before
/// parsing so one request cannot make the daemon allocate without bound.
pub const MAX_XML_BYTES: usize = 1 << 20;

/// Largest stored file read back. Writes are held to [`MAX_XML_BYTES`]; reading allows four
/// times as much so that every file written earlier (a definition at the limit inside its
/// record, a snapshot holding two such definitions) still loads.
pub const MAX_STORED_XML_BYTES: usize = 4 * MAX_XML_BYTES;

/// Deepest element nesting accepted in any document or metadata fragment. libvirt's
/// own XML never nests beyond a dozen levels; the limit keeps every walk over a
/// document (and anything stored from one) far below what a thread's stack holds.
pub const MAX_XML_DEPTH: usize = 256;

/// Deepest nesting of the content of `<metadata>` or a snapshot's `<cookie>` (its top-level
/// elements are level 1). Below the document limit with margin, so that a domain holding
/// such content, and a snapshot embedding that domain, still load when read back.
pub const MAX_METADATA_DEPTH: usize = MAX_XML_DEPTH - 16;
