//! Memory devices (`<memory model=...>`) and `<maxMemory>`: `-m slots=,maxmem=`, one
//! `memory-backend-*` object per device and its `pc-dimm`, `nvdimm`, `virtio-mem-pci` or
//! `virtio-pmem-pci`, as libvirt 9.0 builds them, with libvirt's checks of slots, NUMA
//! nodes and hotplug room.

use std::path::PathBuf;

use serde_json::json;

use super::tuning::{self, Obj};
use super::{Builder, CmdlineError, Result, alias, esc, pci_addr, unsupported};
use crate::model::AddressType;
use crate::model::DomainDef;
use crate::model::devices::{MemoryDevice, MemoryModel};
use crate::model::tuning::{MemAccess, MemSource, NumaMode};

/// `,slots=N,maxmem=Mk` for `-m` when the definition has `<maxMemory>`.
pub(super) fn m_props(def: &DomainDef) -> String {
    match def.max_memory {
        Some(m) => format!(",slots={},maxmem={}k", m.slots, m.kib),
        None => String::new(),
    }
}

/// `,nvdimm=on` for `-machine` when an NVDIMM is plugged.
pub(super) fn machine_props(def: &DomainDef) -> String {
    let nvdimm = def
        .devices
        .memories
        .iter()
        .any(|m| m.model == MemoryModel::Nvdimm);
    if nvdimm {
        ",nvdimm=on".into()
    } else {
        String::new()
    }
}

/// QEMU's device and the alias prefix libvirt gives each model.
fn device_of(model: MemoryModel) -> (&'static str, &'static str) {
    match model {
        MemoryModel::Dimm => ("pc-dimm", "dimm"),
        MemoryModel::Nvdimm => ("nvdimm", "nvdimm"),
        MemoryModel::VirtioMem => ("virtio-mem-pci", "virtiomem"),
        MemoryModel::VirtioPmem => ("virtio-pmem-pci", "virtiopmem"),
        MemoryModel::SgxEpc => ("sgx-epc", "epc"),
    }
}

fn what(m: &MemoryDevice) -> String {
    format!("<memory model='{}'>", m.model)
}

fn invalid<T>(msg: String) -> Result<T> {
    Err(CmdlineError::Invalid(msg))
}

/// libvirt's checks of memory hotplug (`qemuDomainDefValidateMemoryHotplug`).
fn check(def: &DomainDef) -> Result<()> {
    let mems = &def.devices.memories;
    let cells = tuning::numa_cells(def).len();
    if let Some(m) = mems.iter().find(|m| m.model == MemoryModel::SgxEpc) {
        return unsupported(format!(
            "{}: SGX enclave memory needs an SGX-capable host CPU and KVM",
            what(m)
        ));
    }
    let Some(max) = def.max_memory else {
        return match mems.first() {
            Some(m) => invalid(format!(
                "{}: a memory device needs <maxMemory slots=...> in the definition",
                what(m)
            )),
            None => Ok(()),
        };
    };
    if cells == 0 {
        return invalid(
            "<maxMemory>: memory hotplug needs at least one NUMA cell in <cpu><numa>".into(),
        );
    }
    if mems.len() > max.slots as usize {
        return invalid(format!(
            "<maxMemory slots='{}'>: {} memory devices do not fit",
            max.slots,
            mems.len()
        ));
    }
    // the room for them (<maxMemory> less the cells) is checked with the definition
    let mut slots: Vec<u32> = Vec::new();
    for m in mems {
        let w = what(m);
        let kind = m.info.address.as_ref().map(|a| a.kind);
        match (m.model.takes_slot(), kind) {
            (_, None) => {}
            (true, Some(AddressType::Dimm)) | (false, Some(AddressType::Pci)) => {}
            (_, Some(k)) => {
                return unsupported(format!("{w}: address type '{k}' for this model"));
            }
        }
        if m.model.takes_node() {
            match m.target.node {
                None => return invalid(format!("{w}: <target><node> is required with NUMA")),
                Some(n) if n as usize >= cells => {
                    return invalid(format!(
                        "{w}: <target><node>{n}</node>: the guest has {cells} NUMA cells"
                    ));
                }
                Some(_) => {}
            }
        }
        if let Some(s) = m.slot() {
            if s >= max.slots {
                return invalid(format!(
                    "{w}: slot {s} is beyond <maxMemory slots='{}'>",
                    max.slots
                ));
            }
            if slots.contains(&s) {
                return invalid(format!("{w}: slot {s} is used by another memory device"));
            }
            slots.push(s);
        }
    }
    Ok(())
}

/// The backend object of memory device `m`, as libvirt's `qemuBuildMemoryBackendProps`, and
/// whether its memory is preallocated (by the device, for virtio-mem).
fn backend(b: &Builder<'_>, def: &DomainDef, m: &MemoryDevice, id: &str) -> Result<(Obj, bool)> {
    let mb = def.tuning.memory_backing.clone().unwrap_or_default();
    let node = m.target.node;
    let cell = node.and_then(|n| tuning::numa_cells(def).get(n as usize));
    let access = m.access.or(cell.and_then(|c| c.mem_access)).or(mb.access);
    let discard = m
        .discard
        .or(cell.and_then(|c| c.discard))
        .or(mb.discard.then_some(true));
    let page = match m.source.pagesize_kib {
        Some(p) => Some(p),
        None if m.model.has_path() => None,
        None => mb.page_for_cell(node),
    };
    let (page_kib, huge_path) = match page {
        Some(p) => tuning::huge_mount(b.env, p)?,
        None => (0, PathBuf::new()),
    };
    let huge = page_kib != 0;
    let virtio_mem = m.model == MemoryModel::VirtioMem;
    let mut o = Obj::default();
    let share = |o: &mut Obj| {
        if let Some(a) = access {
            o.put("share", json!(a == MemAccess::Shared));
        }
    };
    if let Some(path) = &m.source.path {
        o.put("qom-type", json!("memory-backend-file"))
            .put("id", json!(id))
            .put("mem-path", json!(path));
        share(&mut o);
    } else if mb.source == Some(MemSource::Memfd) {
        o.put("qom-type", json!("memory-backend-memfd"))
            .put("id", json!(id));
        if huge {
            o.put("hugetlb", json!(true))
                .put("hugetlbsize", json!(page_kib * 1024));
        }
        share(&mut o);
    } else if huge || access.is_some() || discard.is_some() || mb.source == Some(MemSource::File) {
        let path = if huge {
            huge_path
        } else {
            b.env.dir.join(id.trim_start_matches("mem"))
        };
        o.put("qom-type", json!("memory-backend-file"))
            .put("id", json!(id))
            .put("mem-path", json!(path.display().to_string()));
        if let Some(d) = discard {
            o.put("discard-data", json!(d));
        }
        share(&mut o);
    } else {
        o.put("qom-type", json!("memory-backend-ram"))
            .put("id", json!(id));
    }
    let prealloc = huge
        || mb.allocation == Some(crate::model::tuning::AllocMode::Immediate)
        || (m.model == MemoryModel::Nvdimm && !m.source.pmem);
    if virtio_mem {
        // virtio-mem plugs blocks on demand: the device, not the backend, preallocates
        o.put("reserve", json!(false));
    } else if prealloc {
        o.put("prealloc", json!(true));
        if let Some(t) = mb.allocation_threads {
            o.put("prealloc-threads", json!(t));
        }
    }
    o.put("size", json!(align_kib(m.target.size_kib) * 1024));
    if let Some(a) = m.source.alignsize_kib {
        o.put("align", json!(a * 1024));
    }
    if m.source.pmem {
        o.put("pmem", json!(true));
    }
    let numatune = def.tuning.numatune.clone().unwrap_or_default();
    let nodes = match &m.source.nodemask {
        Some(n) => Some((NumaMode::Strict, n.clone())),
        None => numatune.for_cell(node).map(|(mode, s)| (mode, s.clone())),
    };
    if let Some((mode, set)) = nodes {
        let ids: Vec<u32> = set.iter().collect();
        o.put("host-nodes", json!(ids));
        o.put(
            "policy",
            json!(match mode {
                NumaMode::Strict | NumaMode::Restrictive => "bind",
                NumaMode::Preferred => "preferred",
                NumaMode::Interleave => "interleave",
            }),
        );
    }
    Ok((o, prealloc))
}

/// DIMM sizes are whole 2 MiB on x86, as libvirt aligns them at start.
fn align_kib(kib: u64) -> u64 {
    kib.div_ceil(2048) * 2048
}

/// Every memory device: its backend object, then the device.
pub(super) fn devices(b: &mut Builder<'_>, def: &DomainDef) -> Result<()> {
    check(def)?;
    let mut counts: Vec<(&str, u32)> = Vec::new();
    for (i, m) in def.devices.memories.iter().enumerate() {
        let w = what(m);
        let (dev, prefix) = device_of(m.model);
        b.need(dev, &w)?;
        let n = match m.slot() {
            Some(s) if m.model.takes_slot() => s,
            _ => {
                let next = counts.iter().find(|(p, _)| *p == prefix).map_or(0, |c| c.1);
                counts.retain(|(p, _)| *p != prefix);
                counts.push((prefix, next + 1));
                next
            }
        };
        let a = alias(&m.info, format!("{prefix}{n}"));
        let memdev = format!("mem{a}");
        let (mut o, prealloc) = backend(b, def, m, &memdev)?;
        tuning::thread_context(b, &mut o);
        b.arg("-object", o.render());
        let mut s = dev.to_owned();
        if let Some(node) = m.target.node.filter(|_| m.model.takes_node()) {
            s.push_str(&format!(",node={node}"));
        }
        if let Some(l) = m.target.label_kib {
            s.push_str(&format!(",label-size={}", l * 1024));
        }
        if m.target.readonly {
            s.push_str(",unarmed=on");
        }
        if let Some(bk) = m.target.block_kib {
            s.push_str(&format!(
                ",block-size={},requested-size={}",
                bk * 1024,
                m.target.requested_kib.unwrap_or(0) * 1024
            ));
        }
        s.push_str(&format!(",memdev={}", esc(&memdev)));
        if m.model == MemoryModel::VirtioMem && prealloc {
            s.push_str(",prealloc=on");
        }
        s.push_str(&format!(",id={}", esc(&a)));
        if m.model.takes_slot() {
            if let Some(slot) = m.slot() {
                s.push_str(&format!(",slot={slot}"));
            }
            let base = m.info.address.as_ref().and_then(|ad| ad.get("base"));
            if let Some(base) = base.and_then(super::parse_num) {
                s.push_str(&format!(",addr={base}"));
            }
        } else {
            s.push_str(&pci_addr(&m.info, &w)?);
        }
        b.device(s);
        b.live.devices.memories[i].info.alias = Some(a);
    }
    Ok(())
}
