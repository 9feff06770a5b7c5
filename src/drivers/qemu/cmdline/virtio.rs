//! `<driver iommu ats packed page_per_vq>` on the command line: QEMU's virtio transport
//! properties, for virtio devices only (libvirt refuses them elsewhere).

use super::{CmdlineError, Result};
use crate::model::devices::VirtioOptions;

/// `,iommu_platform=on,...` for a virtio device; an error for any other device that has them.
pub(super) fn props(opts: &VirtioOptions, is_virtio: bool, what: &str) -> Result<String> {
    if opts.is_empty() {
        return Ok(String::new());
    }
    if !is_virtio {
        return Err(CmdlineError::Invalid(format!(
            "{what}: <driver iommu|ats|packed|page_per_vq> apply to virtio devices only"
        )));
    }
    Ok(opts.qemu_props())
}
