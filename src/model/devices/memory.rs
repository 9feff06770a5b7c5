//! `<memory model=...>`: memory modules plugged beside the guest's initial RAM (DIMMs,
//! NVDIMMs, virtio-mem and virtio-pmem devices), and `<maxMemory slots>`, the room they
//! may take.
//!
//! Sizes are kept in KiB as given: QEMU's alignment happens on the command line, as in
//! libvirt, so a definition reads back as written.

use crate::model::address::DeviceInfo;
use crate::model::domain::read_memory;
use crate::model::error::XmlError;
use crate::model::tuning::{IdSet, MemAccess};
use crate::model::values::{self, xml_enum};
use crate::model::writer::Writer;
use crate::model::xml::Elem;

type Result<T> = std::result::Result<T, XmlError>;

xml_enum! {
    pub enum MemoryModel {
        Dimm = "dimm",
        Nvdimm = "nvdimm",
        VirtioPmem = "virtio-pmem",
        VirtioMem = "virtio-mem",
        SgxEpc = "sgx-epc",
    }
}

impl MemoryModel {
    /// Devices backed by a host file the user names (`<source><path>`).
    pub fn has_path(self) -> bool {
        matches!(self, MemoryModel::Nvdimm | MemoryModel::VirtioPmem)
    }

    /// Devices that sit in a DIMM slot of `<maxMemory slots>`.
    pub fn takes_slot(self) -> bool {
        matches!(self, MemoryModel::Dimm | MemoryModel::Nvdimm)
    }

    /// Devices that take a guest NUMA node (`<target><node>`).
    pub fn takes_node(self) -> bool {
        !matches!(self, MemoryModel::VirtioPmem)
    }
}

/// `<maxMemory slots='N'>`: the most memory the guest may grow to, and its DIMM slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxMemory {
    pub kib: u64,
    pub slots: u32,
}

impl MaxMemory {
    pub(crate) fn read(mut e: Elem) -> Result<MaxMemory> {
        // libvirt wants both; a size without slots is refused
        let slots = e.req_attr_with("slots", values::u32_any)?;
        let kib = read_memory(e)?;
        Ok(MaxMemory { kib, slots })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.start("maxMemory");
        w.attr_num("slots", self.slots);
        w.attr("unit", "KiB");
        w.end_with_text(&self.kib.to_string());
    }
}

/// `<source>` of a memory device; which fields apply depends on the model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemorySource {
    /// Host NUMA nodes to allocate from (dimm, virtio-mem, sgx-epc).
    pub nodemask: Option<IdSet>,
    /// Host page size in KiB (dimm, virtio-mem).
    pub pagesize_kib: Option<u64>,
    /// Backing file (nvdimm, virtio-pmem).
    pub path: Option<String>,
    /// Alignment of the backing file in KiB (nvdimm).
    pub alignsize_kib: Option<u64>,
    /// The backing file is real persistent memory (nvdimm).
    pub pmem: bool,
}

/// `<target>` of a memory device: what the guest sees.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryTarget {
    pub size_kib: u64,
    /// Guest NUMA node.
    pub node: Option<u32>,
    /// NVDIMM label area in KiB.
    pub label_kib: Option<u64>,
    /// NVDIMM exposed read-only (QEMU's `unarmed`).
    pub readonly: bool,
    /// virtio-mem block size in KiB.
    pub block_kib: Option<u64>,
    /// virtio-mem: how much the guest is asked to plug, in KiB.
    pub requested_kib: Option<u64>,
    /// virtio-mem: how much the guest has plugged (live only).
    pub current_kib: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryDevice {
    pub model: MemoryModel,
    pub access: Option<MemAccess>,
    pub discard: Option<bool>,
    /// NVDIMM identity (a PPC64 feature; kept as written elsewhere).
    pub uuid: Option<uuid::Uuid>,
    pub source: MemorySource,
    pub target: MemoryTarget,
    pub info: DeviceInfo,
}

fn size_child(e: &mut Elem, name: &str) -> Result<Option<u64>> {
    e.child(name)?.map(read_memory).transpose()
}

impl MemorySource {
    fn read(mut e: Elem, model: MemoryModel) -> Result<MemorySource> {
        let mut s = MemorySource::default();
        match model {
            MemoryModel::Dimm | MemoryModel::VirtioMem | MemoryModel::SgxEpc => {
                s.nodemask = e.child_text_with("nodemask", IdSet::parse)?;
                if model != MemoryModel::SgxEpc {
                    s.pagesize_kib = size_child(&mut e, "pagesize")?;
                }
            }
            MemoryModel::Nvdimm | MemoryModel::VirtioPmem => {
                s.path = e.child_text_with("path", values::abs_path)?;
                if model == MemoryModel::Nvdimm {
                    s.alignsize_kib = size_child(&mut e, "alignsize")?;
                    s.pmem = e.flag("pmem")?;
                }
            }
        }
        e.finish()?;
        Ok(s)
    }

    fn is_empty(&self) -> bool {
        *self == MemorySource::default()
    }

    fn write(&self, w: &mut Writer) {
        if self.is_empty() {
            return;
        }
        w.start("source");
        if let Some(n) = &self.nodemask {
            w.leaf("nodemask", &n.to_string());
        }
        if let Some(p) = self.pagesize_kib {
            write_kib(w, "pagesize", p);
        }
        w.leaf_opt("path", self.path.as_deref());
        if let Some(a) = self.alignsize_kib {
            write_kib(w, "alignsize", a);
        }
        w.flag("pmem", self.pmem);
        w.end();
    }
}

fn write_kib(w: &mut Writer, name: &'static str, kib: u64) {
    w.start(name);
    w.attr("unit", "KiB");
    w.end_with_text(&kib.to_string());
}

impl MemoryTarget {
    fn read(mut e: Elem, model: MemoryModel) -> Result<MemoryTarget> {
        let size_kib = match e.child("size")? {
            Some(s) => read_memory(s)?,
            None => return Err(e.missing_child("size")),
        };
        let mut t = MemoryTarget {
            size_kib,
            node: e.child_text_with("node", values::u32_any)?,
            ..Default::default()
        };
        if model == MemoryModel::Nvdimm {
            if let Some(mut l) = e.child("label")? {
                t.label_kib = size_child(&mut l, "size")?;
                if t.label_kib.is_none() {
                    return Err(l.missing_child("size"));
                }
                l.finish()?;
            }
            t.readonly = e.flag("readonly")?;
        }
        if model == MemoryModel::VirtioMem {
            t.block_kib = size_child(&mut e, "block")?;
            t.requested_kib = size_child(&mut e, "requested")?;
            t.current_kib = size_child(&mut e, "current")?;
        }
        e.finish()?;
        Ok(t)
    }

    fn write(&self, w: &mut Writer) {
        w.start("target");
        write_kib(w, "size", self.size_kib);
        if let Some(n) = self.node {
            w.leaf("node", &n.to_string());
        }
        if let Some(l) = self.label_kib {
            w.start("label");
            write_kib(w, "size", l);
            w.end();
        }
        w.flag("readonly", self.readonly);
        if let Some(b) = self.block_kib {
            write_kib(w, "block", b);
            write_kib(w, "requested", self.requested_kib.unwrap_or(0));
            if let Some(c) = self.current_kib {
                write_kib(w, "current", c);
            }
        }
        w.end();
    }
}

impl MemoryDevice {
    pub(crate) fn read(mut e: Elem) -> Result<MemoryDevice> {
        let model = e.req_attr_with("model", values::keyword::<MemoryModel>)?;
        let access = e.attr_with("access", values::keyword::<MemAccess>)?;
        let discard = e.attr_with("discard", values::yes_no)?;
        let uuid = if model == MemoryModel::Nvdimm {
            e.child_text_with("uuid", values::uuid)?
        } else {
            None
        };
        let source = match e.child("source")? {
            Some(s) => MemorySource::read(s, model)?,
            None => MemorySource::default(),
        };
        let target = MemoryTarget::read(e.req_child("target")?, model)?;
        let info = DeviceInfo::read(&mut e)?;
        let path = e.path();
        e.finish()?;
        if model.has_path() && source.path.is_none() {
            return Err(XmlError::Missing {
                path: format!("{path}/source/path"),
            });
        }
        if model == MemoryModel::VirtioMem {
            let Some(block) = target.block_kib else {
                return Err(XmlError::Missing {
                    path: format!("{path}/target/block"),
                });
            };
            let requested = target.requested_kib.unwrap_or(0);
            if requested > target.size_kib {
                return Err(XmlError::invalid(
                    format!("{path}/target/requested"),
                    &requested.to_string(),
                    "exceeds the device's <size>",
                ));
            }
            if !block.is_power_of_two() || target.size_kib % block != 0 {
                return Err(XmlError::invalid(
                    format!("{path}/target/block"),
                    &block.to_string(),
                    "must be a power of two that divides <size>",
                ));
            }
        }
        if let (Some(label), MemoryModel::Nvdimm) = (target.label_kib, model)
            && label >= target.size_kib
        {
            return Err(XmlError::invalid(
                format!("{path}/target/label/size"),
                &label.to_string(),
                "the label must be smaller than the NVDIMM",
            ));
        }
        Ok(MemoryDevice {
            model,
            access,
            discard,
            uuid,
            source,
            target,
            info,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.start("memory");
        w.attr("model", self.model.as_str());
        w.attr_opt("access", self.access.map(|a| a.as_str()));
        w.attr_opt("discard", self.discard.map(values::yes_no_str));
        if let Some(u) = self.uuid {
            w.leaf("uuid", &u.hyphenated().to_string());
        }
        self.source.write(w);
        self.target.write(w);
        self.info.write(w);
        w.end();
    }

    /// The DIMM slot its address names.
    pub fn slot(&self) -> Option<u32> {
        let a = self.info.address.as_ref()?;
        (a.kind == crate::model::AddressType::Dimm)
            .then(|| a.get("slot"))
            .flatten()
            .and_then(|v| values::dec_or_hex(v).ok())
            .and_then(|v| u32::try_from(v).ok())
    }
}

/// libvirt's total memory (`<memory>`) once memory devices are known: with NUMA cells, the
/// cells' sum (already in `memory_kib`) plus the devices; without, `<memory>` as given, which
/// must leave room for them. `<maxMemory>` must cover the total.
pub(crate) fn total(
    domain: &Elem,
    memory_kib: u64,
    has_numa: bool,
    max: Option<MaxMemory>,
    devices: &super::Devices,
) -> Result<u64> {
    let plugged: u64 = devices.memories.iter().map(|m| m.target.size_kib).sum();
    let total = if has_numa {
        memory_kib.saturating_add(plugged)
    } else {
        if plugged >= memory_kib && plugged > 0 {
            return Err(XmlError::invalid(
                format!("{}/memory", domain.path()),
                &memory_kib.to_string(),
                format!("the memory devices ({plugged} KiB) leave no initial memory"),
            ));
        }
        memory_kib
    };
    if let Some(m) = max
        && m.kib < total
    {
        return Err(XmlError::invalid(
            format!("{}/maxMemory", domain.path()),
            &m.kib.to_string(),
            format!("below the memory size of {total} KiB"),
        ));
    }
    Ok(total)
}

/// Gives every DIMM and NVDIMM without an address the first free slot, as libvirt's QEMU
/// driver does when the definition has `<maxMemory>`.
pub fn assign_slots(mems: &mut [MemoryDevice], max: Option<MaxMemory>) {
    let Some(max) = max else { return };
    let mut used: Vec<u32> = mems.iter().filter_map(MemoryDevice::slot).collect();
    for m in mems.iter_mut() {
        if !m.model.takes_slot() || m.info.address.is_some() {
            continue;
        }
        let Some(free) = (0..max.slots).find(|s| !used.contains(s)) else {
            // too many devices: refused with its reason when the command line is built
            return;
        };
        used.push(free);
        let mut a = crate::model::Address::new(crate::model::AddressType::Dimm);
        a.attrs.push(("slot", free.to_string()));
        m.info.address = Some(a);
    }
}
