//! Guest RAM as a memory backend object when `<memoryBacking>` asks for a source or sharing
//! (vhost-user devices such as virtio-fs map guest memory), as libvirt 9.0 does for a guest
//! without NUMA cells: `-machine memory-backend=pc.ram` and one `-object`.

use std::path::Path;

use super::{Result, esc};
use crate::model::{DomainDef, MemoryAccess, MemorySource};

/// The id QEMU gives a non-NUMA guest's RAM.
pub const RAM_ID: &str = "pc.ram";

/// The `-object` for the guest's RAM, if the definition needs one.
pub(super) fn backend(def: &DomainDef, dir: &Path) -> Result<Option<String>> {
    let Some(m) = def.memory_backing else {
        return Ok(None);
    };
    if m.source.is_none() && m.access.is_none() {
        return Ok(None);
    }
    let bytes = def.memory_kib * 1024;
    let mut s = match m.source {
        Some(MemorySource::Memfd) => format!("memory-backend-memfd,id={RAM_ID}"),
        Some(MemorySource::File) => format!(
            "memory-backend-file,id={RAM_ID},mem-path={}",
            esc(&dir.display().to_string())
        ),
        Some(MemorySource::Anonymous) | None => format!("memory-backend-ram,id={RAM_ID}"),
    };
    match m.access {
        Some(MemoryAccess::Shared) => s.push_str(",share=on"),
        Some(MemoryAccess::Private) => s.push_str(",share=off"),
        None => {}
    }
    // keeps the RAM block's migration id what QEMU gives plain `-m` memory
    s.push_str(",x-use-canonical-path-for-ramblock-id=off");
    s.push_str(&format!(",size={bytes}"));
    Ok(Some(s))
}
