//! `<memoryBacking>`, the part vhost-user devices (virtio-fs) need: where guest RAM comes
//! from (`<source type>`) and whether it is shared with other processes (`<access mode>`).
//! Other children (hugepages, locking, allocation) are refused by the reader, not dropped.

use crate::model::error::XmlError;
use crate::model::values::{self, xml_enum};
use crate::model::writer::Writer;
use crate::model::xml::Elem;

xml_enum! {
    pub enum MemorySource {
        File = "file",
        Anonymous = "anonymous",
        Memfd = "memfd",
    }
}

xml_enum! {
    pub enum MemoryAccess {
        Shared = "shared",
        Private = "private",
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryBacking {
    pub source: Option<MemorySource>,
    pub access: Option<MemoryAccess>,
}

impl MemoryBacking {
    /// Whether other processes (vhost-user daemons) can map guest memory.
    pub fn shared(&self) -> bool {
        self.access == Some(MemoryAccess::Shared)
    }

    pub(crate) fn read(mut e: Elem) -> Result<MemoryBacking, XmlError> {
        let m = MemoryBacking {
            source: e.child_attr_with("source", "type", values::keyword::<MemorySource>)?,
            access: e.child_attr_with("access", "mode", values::keyword::<MemoryAccess>)?,
        };
        e.finish()?;
        Ok(m)
    }

    /// Writes nothing for an empty element, as libvirt.
    pub(crate) fn write(&self, w: &mut Writer) {
        if *self == MemoryBacking::default() {
            return;
        }
        w.start("memoryBacking");
        if let Some(s) = self.source {
            w.leaf_attr("source", "type", s.as_str());
        }
        if let Some(a) = self.access {
            w.leaf_attr("access", "mode", a.as_str());
        }
        w.end();
    }
}
