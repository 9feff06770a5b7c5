//! The sizes of a domain's disk image (`virDomainGetBlockInfo`): what the guest sees
//! (capacity), what the image uses on the host (allocation) and the file's size (physical).

use std::{os::unix::fs::MetadataExt, path::Path, sync::Arc};

use super::{Core, Domain, Error, Result, ops::Operation};

/// The sizes of one disk, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockInfo {
    pub capacity: u64,
    pub allocation: u64,
    pub physical: u64,
}

impl Core {
    /// The sizes of the disk `disk` names (its target, `vda`, or its source path).
    pub async fn block_info(&self, dom: &Arc<Domain>, disk: &str) -> Result<BlockInfo> {
        let (def, _) = Self::require(dom, Operation::GetStats)?;
        let path = def
            .devices
            .disks
            .iter()
            .find_map(|d| {
                let path = d.source.as_ref().and_then(|s| s.path.clone());
                (d.target_dev == disk || path.as_deref() == Some(disk)).then_some(path)
            })
            .ok_or_else(|| {
                Error::InvalidArgument(format!("invalid path {disk} not assigned to domain"))
            })?
            .ok_or_else(|| {
                Error::InvalidArgument(format!("disk '{disk}' does not have a source"))
            })?;
        let meta = std::fs::metadata(&path)
            .map_err(|e| Error::Failed(format!("cannot stat '{path}': {e}")))?;
        let image = crate::storage::qemu_img::info(Path::new(&path)).await?;
        Ok(BlockInfo {
            capacity: image.virtual_size,
            allocation: meta.blocks().saturating_mul(512),
            physical: meta.len(),
        })
    }
}
