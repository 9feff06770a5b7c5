//! vCPU, I/O thread, NUMA and memory tuning: `<memoryBacking>`, `<vcpus>`, `<iothreads>`,
//! `<iothreadids>`, `<defaultiothread>`, `<cputune>`, `<numatune>` and `<cpu><numa>`.
//!
//! Host CPU and node lists are kept as sets and written in libvirt's canonical form
//! (`0-3,^2` becomes `0-1,3`), as libvirt does.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::model::error::XmlError;
use crate::model::values::{self, xml_enum};
use crate::model::writer::Writer;
use crate::model::xml::Elem;

type Result<T> = std::result::Result<T, XmlError>;

/// Highest CPU or node number a set may name (libvirt's bitmap length).
const SET_MAX: u32 = 16_383;

/// A set of host CPUs, host NUMA nodes or vCPU ids, in libvirt's list syntax.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdSet(BTreeSet<u32>);

impl IdSet {
    /// Parses `0-3,^2,8`; an empty result is an error, as in libvirt.
    pub fn parse(s: &str) -> std::result::Result<IdSet, String> {
        values::cpuset(s)?;
        let num = |t: &str| t.trim().parse::<u32>().map_err(|e| e.to_string());
        let mut set = BTreeSet::new();
        let mut neg = Vec::new();
        for item in s.split(',') {
            let item = item.trim();
            if let Some(n) = item.strip_prefix('^') {
                neg.push(num(n)?);
            } else if let Some((a, b)) = item.split_once('-') {
                set.extend(num(a)?..=num(b)?);
            } else {
                set.insert(num(item)?);
            }
        }
        for n in neg {
            set.remove(&n);
        }
        if set.is_empty() {
            return Err("the list names no member".into());
        }
        Ok(IdSet(set))
    }

    pub fn from_ids(ids: impl IntoIterator<Item = u32>) -> IdSet {
        IdSet(ids.into_iter().filter(|i| *i <= SET_MAX).collect())
    }

    pub fn contains(&self, id: u32) -> bool {
        self.0.contains(&id)
    }

    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().copied()
    }

    pub fn max(&self) -> Option<u32> {
        self.0.last().copied()
    }

    pub fn overlaps(&self, other: &IdSet) -> bool {
        self.0.intersection(&other.0).next().is_some()
    }

    /// The runs of consecutive members, as `(first, last)`.
    pub fn ranges(&self) -> Vec<(u32, u32)> {
        let mut out: Vec<(u32, u32)> = Vec::new();
        for &n in &self.0 {
            match out.last_mut() {
                Some((_, last)) if *last + 1 == n => *last = n,
                _ => out.push((n, n)),
            }
        }
        out
    }
}

impl fmt::Display for IdSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (a, b)) in self.ranges().into_iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if a == b {
                write!(f, "{a}")?;
            } else {
                write!(f, "{a}-{b}")?;
            }
        }
        Ok(())
    }
}

fn id_set(s: &str) -> std::result::Result<IdSet, String> {
    IdSet::parse(s)
}

xml_enum! {
    /// Linux scheduling policy of a vCPU, I/O or emulator thread.
    pub enum SchedPolicy {
        Batch = "batch",
        Idle = "idle",
        Fifo = "fifo",
        Rr = "rr",
    }
}

impl SchedPolicy {
    /// The real-time policies, which take a priority.
    pub fn realtime(self) -> bool {
        matches!(self, Self::Fifo | Self::Rr)
    }
}

/// `<vcpusched>`, `<iothreadsched>`, `<emulatorsched>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sched {
    pub policy: SchedPolicy,
    /// 1..=99, for the real-time policies only.
    pub priority: Option<u32>,
}

xml_enum! {
    /// `mode` of `<numatune><memory>` and `<memnode>`.
    pub enum NumaMode {
        Strict = "strict",
        Preferred = "preferred",
        Interleave = "interleave",
        Restrictive = "restrictive",
    }
}

xml_enum! {
    pub enum NumaPlacement {
        Static = "static",
        Auto = "auto",
    }
}

xml_enum! {
    /// `<memoryBacking><source type>`.
    pub enum MemSource {
        File = "file",
        Anonymous = "anonymous",
        Memfd = "memfd",
    }
}

xml_enum! {
    /// Whether guest memory is shared with other processes (`access mode`, `memAccess`).
    pub enum MemAccess {
        Shared = "shared",
        Private = "private",
    }
}

xml_enum! {
    pub enum AllocMode {
        Immediate = "immediate",
        Ondemand = "ondemand",
    }
}

/// One `<vcpus><vcpu>`: whether the vCPU is online at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VcpuState {
    pub enabled: bool,
    pub hotpluggable: bool,
    pub order: Option<u32>,
}

/// An I/O thread with its pinning and scheduling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoThread {
    pub id: u32,
    /// Not named in `<iothreadids>` but implied by `<iothreads>`.
    pub autofill: bool,
    pub pool_min: Option<u32>,
    pub pool_max: Option<u32>,
    /// `<cputune><iothreadpin>`.
    pub pin: Option<IdSet>,
    /// `<cputune><iothreadsched>`.
    pub sched: Option<Sched>,
}

/// `<defaultiothread>`: the main loop's thread pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThreadPool {
    pub min: Option<u32>,
    pub max: Option<u32>,
}

xml_enum! {
    /// `<cachetune><cache type>`.
    #[derive(PartialOrd, Ord)]
    pub enum CacheType {
        Both = "both",
        Code = "code",
        Data = "data",
    }
}

/// A resctrl group: `<cachetune>` and `<memorytune>` of the same vCPUs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resctrl {
    pub vcpus: IdSet,
    /// Cache size in bytes by (level, type, cache id), in libvirt's order.
    pub caches: BTreeMap<(u32, CacheType, u32), u64>,
    pub cache_monitors: Vec<IdSet>,
    /// Bandwidth percentage by memory controller (node) id.
    pub mem_nodes: BTreeMap<u32, u32>,
    pub mem_monitors: Vec<IdSet>,
}

impl Resctrl {
    fn has_cachetune(&self) -> bool {
        !self.caches.is_empty() || !self.cache_monitors.is_empty()
    }

    fn has_memorytune(&self) -> bool {
        !self.mem_nodes.is_empty() || !self.mem_monitors.is_empty()
    }

    /// The element a refusal names.
    pub fn element(&self) -> String {
        let name = if self.has_cachetune() {
            "cachetune"
        } else {
            "memorytune"
        };
        format!("<cputune><{name} vcpus='{}'>", self.vcpus)
    }
}

/// libvirt's shortest exact unit for a byte count.
fn pretty_size(bytes: u64) -> (u64, &'static str) {
    let mut v = bytes;
    for unit in ["B", "KiB", "MiB", "GiB", "TiB", "PiB"] {
        if v == 0 || !v.is_multiple_of(1024) {
            return (v, unit);
        }
        v /= 1024;
    }
    (v, "EiB")
}

/// `<cputune>` less what belongs to I/O threads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cputune {
    pub shares: Option<u64>,
    pub period: Option<u64>,
    pub quota: Option<i64>,
    pub global_period: Option<u64>,
    pub global_quota: Option<i64>,
    pub emulator_period: Option<u64>,
    pub emulator_quota: Option<i64>,
    pub iothread_period: Option<u64>,
    pub iothread_quota: Option<i64>,
    pub vcpupin: BTreeMap<u32, IdSet>,
    pub emulatorpin: Option<IdSet>,
    pub emulatorsched: Option<Sched>,
    pub vcpusched: BTreeMap<u32, Sched>,
    /// `<cachetune>` and `<memorytune>` (resctrl), in order of first appearance.
    pub resctrl: Vec<Resctrl>,
}

impl Cputune {
    /// The CPU bandwidth settings, by element name, that need a cgroup.
    pub fn bandwidth(&self) -> Vec<(&'static str, i64)> {
        let u = |v: Option<u64>| v.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
        [
            ("shares", u(self.shares)),
            ("period", u(self.period)),
            ("quota", self.quota),
            ("global_period", u(self.global_period)),
            ("global_quota", self.global_quota),
            ("emulator_period", u(self.emulator_period)),
            ("emulator_quota", self.emulator_quota),
            ("iothread_period", u(self.iothread_period)),
            ("iothread_quota", self.iothread_quota),
        ]
        .into_iter()
        .filter_map(|(n, v)| v.map(|v| (n, v)))
        .collect()
    }
}

/// `<numatune><memory>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumaMemory {
    pub mode: NumaMode,
    pub placement: NumaPlacement,
    /// Set exactly when the placement is static.
    pub nodeset: Option<IdSet>,
}

/// `<numatune>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Numatune {
    pub memory: Option<NumaMemory>,
    /// `<memnode>` by guest cell id.
    pub memnodes: BTreeMap<u32, (NumaMode, IdSet)>,
}

impl Numatune {
    /// Host nodes and mode for guest cell `cell` (`None`: the whole guest).
    pub fn for_cell(&self, cell: Option<u32>) -> Option<(NumaMode, &IdSet)> {
        if let Some((mode, set)) = cell.and_then(|c| self.memnodes.get(&c)) {
            return Some((*mode, set));
        }
        let m = self.memory.as_ref()?;
        m.nodeset.as_ref().map(|s| (m.mode, s))
    }

    pub fn mode_for_cell(&self, cell: Option<u32>) -> NumaMode {
        cell.and_then(|c| self.memnodes.get(&c))
            .map(|(m, _)| *m)
            .or(self.memory.as_ref().map(|m| m.mode))
            .unwrap_or(NumaMode::Strict)
    }
}

/// `<hugepages><page>`; a size of 0 is the host's default huge page size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HugePage {
    pub size_kib: u64,
    pub nodeset: Option<IdSet>,
}

/// `<memoryBacking>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryBacking {
    /// `None`: no `<hugepages>`; an empty list: `<hugepages/>` (default size).
    pub hugepages: Option<Vec<HugePage>>,
    pub nosharepages: bool,
    pub locked: bool,
    pub source: Option<MemSource>,
    pub access: Option<MemAccess>,
    pub allocation: Option<AllocMode>,
    pub allocation_threads: Option<u32>,
    pub discard: bool,
}

impl MemoryBacking {
    /// The huge page size (KiB, 0 for the default) backing guest cell `cell`.
    pub fn page_for_cell(&self, cell: Option<u32>) -> Option<u64> {
        let pages = self.hugepages.as_ref()?;
        if pages.is_empty() {
            return Some(0);
        }
        if let Some(c) = cell
            && let Some(p) = pages
                .iter()
                .find(|p| p.nodeset.as_ref().is_some_and(|s| s.contains(c)))
        {
            return Some(p.size_kib);
        }
        pages
            .iter()
            .find(|p| p.nodeset.is_none())
            .map(|p| p.size_kib)
    }
}

/// `<cpu><numa><cell>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumaCell {
    pub cpus: Option<IdSet>,
    pub memory_kib: u64,
    pub mem_access: Option<MemAccess>,
    pub discard: Option<bool>,
    /// Distances to cells by id, symmetric pairs filled in as libvirt does.
    pub distances: BTreeMap<u32, u32>,
}

/// Everything this module reads from the top level of `<domain>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tuning {
    pub memory_backing: Option<MemoryBacking>,
    /// `<vcpus>`: one entry per vCPU when given.
    pub vcpus: Vec<VcpuState>,
    pub iothreads: Vec<IoThread>,
    pub default_iothread: Option<ThreadPool>,
    pub cputune: Cputune,
    pub numatune: Option<Numatune>,
    /// `<memtune>`.
    pub memtune: crate::model::memtune::Memtune,
    /// `<blkiotune>`.
    pub blkiotune: crate::model::blkiotune::Blkiotune,
}

/// What the rest of the domain tells the tuning parser.
pub(crate) struct Ctx<'c> {
    pub max_vcpus: u32,
    /// `<vcpu placement>` is static (or absent).
    pub placement_static: bool,
    pub cells: &'c [NumaCell],
}

const LOCAL_DISTANCE: u32 = 10;
const UNREACHABLE: u32 = 255;

/// A `<sibling>` as written: cell id, distance, and its path for errors.
type Sibling = (u32, u32, String);

/// Reads `<cpu><numa>`.
pub(crate) fn read_numa(mut e: Elem, max_vcpus: u32) -> Result<Vec<NumaCell>> {
    let mut raw: Vec<(u32, NumaCell, Vec<Sibling>)> = Vec::new();
    let n = e
        .node()
        .children()
        .filter(|c| c.is_element() && c.has_tag_name("cell"))
        .count() as u32;
    if n == 0 {
        return Err(e.missing_child("cell"));
    }
    let mut index = 0u32;
    e.each("cell", |mut c| {
        let id = c.attr_with("id", values::u32_any)?.unwrap_or(index);
        index += 1;
        if id >= n {
            return Err(c.attr_invalid(
                "id",
                &id.to_string(),
                "cells are numbered 0 to their count less one",
            ));
        }
        if raw.iter().any(|(i, _, _)| *i == id) {
            return Err(c.attr_invalid("id", &id.to_string(), "duplicate NUMA cell id"));
        }
        let cpus = c.attr_with("cpus", id_set)?;
        if let Some(m) = cpus
            .as_ref()
            .and_then(IdSet::max)
            .filter(|m| *m >= max_vcpus)
        {
            return Err(c.attr_invalid(
                "cpus",
                &m.to_string(),
                format!("vCPU ids in <numa> exceed the <vcpu> count {max_vcpus}"),
            ));
        }
        if let Some(cpus) = &cpus
            && let Some((other, _, _)) = raw
                .iter()
                .find(|(_, o, _)| o.cpus.as_ref().is_some_and(|s| s.overlaps(cpus)))
        {
            return Err(c.attr_invalid(
                "cpus",
                &cpus.to_string(),
                format!("overlaps the vCPUs of cell {other}"),
            ));
        }
        let unit = c.attr_with("unit", values::memory_unit)?.unwrap_or(1024);
        let memory_kib = c.req_attr_with("memory", |v| values::memory_kib(v, unit))?;
        let mem_access = c.attr_with("memAccess", values::keyword::<MemAccess>)?;
        let discard = c.attr_with("discard", values::yes_no)?;
        let mut siblings = Vec::new();
        if let Some(mut d) = c.child("distances")? {
            let mut any = false;
            d.each("sibling", |mut s| {
                any = true;
                let sid = s.req_attr_with("id", values::u32_any)?;
                let value = s.req_attr_with("value", values::u32_any)?;
                siblings.push((sid, value, s.path()));
                s.finish()
            })?;
            if !any {
                return Err(d.missing_child("sibling"));
            }
            d.finish()?;
        }
        c.finish()?;
        let cell = NumaCell {
            cpus,
            memory_kib,
            mem_access,
            discard,
            distances: BTreeMap::new(),
        };
        raw.push((id, cell, siblings));
        Ok(())
    })?;
    e.finish()?;
    raw.sort_by_key(|(id, _, _)| *id);
    let mut cells: Vec<NumaCell> = Vec::with_capacity(raw.len());
    let mut all_siblings = Vec::new();
    for (id, cell, siblings) in raw {
        cells.push(cell);
        all_siblings.push((id, siblings));
    }
    for (id, siblings) in all_siblings {
        for (sid, value, path) in siblings {
            let bad = sid >= n
                || !(LOCAL_DISTANCE..=UNREACHABLE).contains(&value)
                || (sid == id) != (value == LOCAL_DISTANCE);
            if bad {
                return Err(XmlError::invalid(
                    path,
                    &value.to_string(),
                    format!(
                        "distance from cell {id} to cell {sid}: {LOCAL_DISTANCE} to itself, \
                         {}..={UNREACHABLE} to another existing cell",
                        LOCAL_DISTANCE + 1
                    ),
                ));
            }
            let here = &mut cells[id as usize].distances;
            here.entry(id).or_insert(LOCAL_DISTANCE);
            here.insert(sid, value);
            let there = &mut cells[sid as usize].distances;
            there.entry(sid).or_insert(LOCAL_DISTANCE);
            there.entry(id).or_insert(value);
        }
    }
    Ok(cells)
}

pub(crate) fn write_numa(w: &mut Writer, cells: &[NumaCell]) {
    if cells.is_empty() {
        return;
    }
    w.start("numa");
    for (i, c) in cells.iter().enumerate() {
        w.start("cell");
        w.attr_num("id", i);
        if let Some(s) = &c.cpus {
            w.attr("cpus", &s.to_string());
        }
        w.attr_num("memory", c.memory_kib);
        w.attr("unit", "KiB");
        w.attr_opt("memAccess", c.mem_access.map(|a| a.as_str()));
        w.attr_opt("discard", c.discard.map(values::yes_no_str));
        if !c.distances.is_empty() {
            w.start("distances");
            for (id, v) in &c.distances {
                w.start("sibling");
                w.attr_num("id", id);
                w.attr_num("value", v);
                w.end();
            }
            w.end();
        }
        w.end();
    }
    w.end();
}

fn read_sched(e: &mut Elem) -> Result<Sched> {
    let policy = e.req_attr_with("scheduler", values::keyword::<SchedPolicy>)?;
    let priority = if policy.realtime() {
        // libvirt keeps 0; the kernel's minimum applies at start
        Some(e.req_attr_with("priority", |v| values::uint_in(v, 0, 99).map(|p| p as u32))?)
    } else {
        None
    };
    Ok(Sched { policy, priority })
}

fn write_sched(w: &mut Writer, name: &'static str, ids: Option<(&str, u32)>, s: &Sched) {
    w.start(name);
    if let Some((attr, id)) = ids {
        w.attr_num(attr, id);
    }
    w.attr("scheduler", s.policy.as_str());
    w.attr_num_opt("priority", s.priority);
    w.end();
}

fn read_period(e: &mut Elem, name: &str) -> Result<Option<u64>> {
    e.child_text_with(name, |v| {
        values::uint_in(v, 1000, 1_000_000).map_err(|_| "expected 1000..=1000000 µs".to_string())
    })
}

fn read_quota(e: &mut Elem, name: &str) -> Result<Option<i64>> {
    const MAX: i64 = 17_592_186_044_415;
    e.child_text_with(name, |v| {
        let q = values::int_in(v, -1, MAX)?;
        if q == -1 || q >= 1000 {
            Ok(q)
        } else {
            Err(format!("expected -1 (no limit) or 1000..={MAX} µs"))
        }
    })
}

impl Tuning {
    /// Reads the tuning elements of `<domain>` `e`; `ctx` carries what they refer to.
    pub(crate) fn read(e: &mut Elem, ctx: &Ctx<'_>) -> Result<Tuning> {
        let blkiotune = e
            .child("blkiotune")?
            .map(crate::model::blkiotune::Blkiotune::read)
            .transpose()?
            .unwrap_or_default();
        let memtune = e
            .child("memtune")?
            .map(crate::model::memtune::Memtune::read)
            .transpose()?
            .unwrap_or_default();
        let memory_backing = e
            .child("memoryBacking")?
            .map(|m| read_memory_backing(m, ctx.cells.len() as u32))
            .transpose()?;
        let vcpus = match e.child("vcpus")? {
            None => Vec::new(),
            Some(v) => read_vcpus(v, ctx.max_vcpus)?,
        };
        let mut iothreads = read_iothreads(e)?;
        let default_iothread = match e.child("defaultiothread")? {
            None => None,
            Some(mut d) => {
                let pool = read_pool(&mut d)?;
                d.finish()?;
                Some(pool)
            }
        };
        let cputune = match e.child("cputune")? {
            None => Cputune::default(),
            Some(c) => read_cputune(c, ctx.max_vcpus, &mut iothreads)?,
        };
        let numatune = match e.child("numatune")? {
            Some(n) => Some(read_numatune(n, ctx)?),
            None if !ctx.placement_static => Some(Numatune {
                memory: Some(NumaMemory {
                    mode: NumaMode::Strict,
                    placement: NumaPlacement::Auto,
                    nodeset: None,
                }),
                memnodes: BTreeMap::new(),
            }),
            None => None,
        };
        Ok(Tuning {
            memory_backing,
            vcpus,
            iothreads,
            default_iothread,
            cputune,
            numatune,
            memtune,
            blkiotune,
        })
    }

    /// Whether libvirt turns `<vcpu>` placement to `auto`: automatic NUMA placement and no
    /// pinning of any kind.
    pub(crate) fn implies_auto_placement(&self, has_cpuset: bool) -> bool {
        let auto = self
            .numatune
            .as_ref()
            .and_then(|n| n.memory.as_ref())
            .is_some_and(|m| m.placement == NumaPlacement::Auto);
        auto && !has_cpuset
            && self.cputune.vcpupin.is_empty()
            && self.cputune.emulatorpin.is_none()
            && self.iothreads.iter().all(|t| t.pin.is_none())
    }

    /// Keeps the per-vCPU settings consistent with a new maximum and current count: pins and
    /// schedulers of vCPUs beyond the maximum go, and `<vcpus>` enables the first `current`.
    pub fn resize_vcpus(&mut self, max: u32, current: u32) {
        self.cputune.vcpupin.retain(|v, _| *v < max);
        self.cputune
            .resctrl
            .retain(|r| r.vcpus.max().is_none_or(|m| m < max));
        self.cputune.vcpusched.retain(|v, _| *v < max);
        if !self.vcpus.is_empty() {
            self.vcpus.resize(
                max as usize,
                VcpuState {
                    enabled: false,
                    hotpluggable: true,
                    order: None,
                },
            );
            for (i, v) in self.vcpus.iter_mut().enumerate() {
                v.enabled = (i as u32) < current;
                if !v.enabled {
                    v.hotpluggable = true;
                }
            }
        }
    }

    /// The number of enabled vCPUs when `<vcpus>` says it.
    pub fn enabled_vcpus(&self) -> Option<u32> {
        (!self.vcpus.is_empty()).then(|| self.vcpus.iter().filter(|v| v.enabled).count() as u32)
    }

    /// `<memoryBacking>`, which libvirt writes before `<vcpu>`.
    pub(crate) fn write_memory_backing(&self, w: &mut Writer) {
        let Some(m) = &self.memory_backing else {
            return;
        };
        let empty = m.hugepages.is_none()
            && !m.nosharepages
            && !m.locked
            && m.source.is_none()
            && m.access.is_none()
            && m.allocation.is_none()
            && m.allocation_threads.is_none()
            && !m.discard;
        if empty {
            return;
        }
        w.start("memoryBacking");
        if let Some(pages) = &m.hugepages {
            w.start("hugepages");
            for p in pages {
                w.start("page");
                w.attr_num("size", p.size_kib);
                w.attr("unit", "KiB");
                if let Some(s) = &p.nodeset {
                    w.attr("nodeset", &s.to_string());
                }
                w.end();
            }
            w.end();
        }
        w.flag("nosharepages", m.nosharepages);
        w.flag("locked", m.locked);
        if let Some(s) = m.source {
            w.leaf_attr("source", "type", s.as_str());
        }
        if let Some(a) = m.access {
            w.leaf_attr("access", "mode", a.as_str());
        }
        if m.allocation.is_some() || m.allocation_threads.is_some() {
            w.start("allocation");
            w.attr_opt("mode", m.allocation.map(|a| a.as_str()));
            w.attr_num_opt("threads", m.allocation_threads);
            w.end();
        }
        w.flag("discard", m.discard);
        w.end();
    }

    /// What libvirt writes between `<vcpu>` and `<resource>`.
    pub(crate) fn write_after_vcpu(&self, w: &mut Writer) {
        if !self.vcpus.is_empty() {
            w.start("vcpus");
            for (i, v) in self.vcpus.iter().enumerate() {
                w.start("vcpu");
                w.attr_num("id", i);
                w.attr("enabled", values::yes_no_str(v.enabled));
                w.attr("hotpluggable", values::yes_no_str(v.hotpluggable));
                w.attr_num_opt("order", v.order);
                w.end();
            }
            w.end();
        }
        if !self.iothreads.is_empty() {
            w.leaf("iothreads", &self.iothreads.len().to_string());
            let explicit = self
                .iothreads
                .iter()
                .any(|t| !t.autofill || t.pool_min.is_some() || t.pool_max.is_some());
            if explicit {
                w.start("iothreadids");
                for t in &self.iothreads {
                    w.start("iothread");
                    w.attr_num("id", t.id);
                    w.attr_num_opt("thread_pool_min", t.pool_min);
                    w.attr_num_opt("thread_pool_max", t.pool_max);
                    w.end();
                }
                w.end();
            }
        }
        if let Some(p) = self.default_iothread
            && (p.min.is_some() || p.max.is_some())
        {
            w.start("defaultiothread");
            w.attr_num_opt("thread_pool_min", p.min);
            w.attr_num_opt("thread_pool_max", p.max);
            w.end();
        }
        self.write_cputune(w);
        if let Some(n) = &self.numatune
            && (n.memory.is_some() || !n.memnodes.is_empty())
        {
            w.start("numatune");
            if let Some(m) = &n.memory {
                w.start("memory");
                w.attr("mode", m.mode.as_str());
                match (&m.placement, &m.nodeset) {
                    (NumaPlacement::Static, Some(s)) => w.attr("nodeset", &s.to_string()),
                    _ => w.attr("placement", m.placement.as_str()),
                }
                w.end();
            }
            for (cell, (mode, set)) in &n.memnodes {
                w.start("memnode");
                w.attr_num("cellid", cell);
                w.attr("mode", mode.as_str());
                w.attr("nodeset", &set.to_string());
                w.end();
            }
            w.end();
        }
    }

    fn write_cputune(&self, w: &mut Writer) {
        let c = &self.cputune;
        let any = c != &Cputune::default()
            || self
                .iothreads
                .iter()
                .any(|t| t.pin.is_some() || t.sched.is_some());
        if !any {
            return;
        }
        w.start("cputune");
        let num = |w: &mut Writer, name: &'static str, v: Option<String>| {
            if let Some(v) = v {
                w.leaf(name, &v);
            }
        };
        let s = |v: Option<u64>| v.map(|v| v.to_string());
        let q = |v: Option<i64>| v.map(|v| v.to_string());
        num(w, "shares", s(c.shares));
        num(w, "period", s(c.period));
        num(w, "quota", q(c.quota));
        num(w, "global_period", s(c.global_period));
        num(w, "global_quota", q(c.global_quota));
        num(w, "emulator_period", s(c.emulator_period));
        num(w, "emulator_quota", q(c.emulator_quota));
        num(w, "iothread_period", s(c.iothread_period));
        num(w, "iothread_quota", q(c.iothread_quota));
        for (vcpu, set) in &c.vcpupin {
            w.start("vcpupin");
            w.attr_num("vcpu", vcpu);
            w.attr("cpuset", &set.to_string());
            w.end();
        }
        if let Some(set) = &c.emulatorpin {
            w.leaf_attr("emulatorpin", "cpuset", &set.to_string());
        }
        for t in &self.iothreads {
            if let Some(set) = &t.pin {
                w.start("iothreadpin");
                w.attr_num("iothread", t.id);
                w.attr("cpuset", &set.to_string());
                w.end();
            }
        }
        if let Some(s) = &c.emulatorsched {
            write_sched(w, "emulatorsched", None, s);
        }
        for (vcpu, s) in &c.vcpusched {
            write_sched(w, "vcpusched", Some(("vcpus", *vcpu)), s);
        }
        for t in &self.iothreads {
            if let Some(s) = &t.sched {
                write_sched(w, "iothreadsched", Some(("iothreads", t.id)), s);
            }
        }
        for r in c.resctrl.iter().filter(|r| r.has_cachetune()) {
            w.start("cachetune");
            w.attr("vcpus", &r.vcpus.to_string());
            for ((level, kind, id), bytes) in &r.caches {
                let (size, unit) = pretty_size(*bytes);
                w.start("cache");
                w.attr_num("id", id);
                w.attr_num("level", level);
                w.attr("type", kind.as_str());
                w.attr_num("size", size);
                w.attr("unit", unit);
                w.end();
            }
            for m in &r.cache_monitors {
                w.start("monitor");
                w.attr_num("level", 3);
                w.attr("vcpus", &m.to_string());
                w.end();
            }
            w.end();
        }
        for r in c.resctrl.iter().filter(|r| r.has_memorytune()) {
            w.start("memorytune");
            w.attr("vcpus", &r.vcpus.to_string());
            for (id, bw) in &r.mem_nodes {
                w.start("node");
                w.attr_num("id", id);
                w.attr_num("bandwidth", bw);
                w.end();
            }
            for m in &r.mem_monitors {
                w.leaf_attr("monitor", "vcpus", &m.to_string());
            }
            w.end();
        }
        w.end();
    }
}

fn read_memory_backing(mut e: Elem, ncells: u32) -> Result<MemoryBacking> {
    let hugepages = match e.child("hugepages")? {
        None => None,
        Some(mut h) => {
            let mut pages: Vec<HugePage> = Vec::new();
            h.each("page", |mut p| {
                let unit = p.attr_with("unit", values::memory_unit)?.unwrap_or(1024);
                let size_kib = p.req_attr_with("size", |v| values::memory_kib(v, unit))?;
                let nodeset = p.attr_with("nodeset", id_set)?;
                if let Some(m) = nodeset
                    .as_ref()
                    .and_then(IdSet::max)
                    .filter(|m| *m >= ncells)
                {
                    return Err(p.attr_invalid(
                        "nodeset",
                        &m.to_string(),
                        format!("names a guest NUMA cell that does not exist ({ncells} defined)"),
                    ));
                }
                let clash = pages.iter().any(|o| match (&o.nodeset, &nodeset) {
                    (None, None) => true,
                    (Some(a), Some(b)) => a.overlaps(b),
                    _ => false,
                });
                if clash {
                    return Err(p.invalid(
                        &size_kib.to_string(),
                        "two <page> elements cover the same guest NUMA cells",
                    ));
                }
                p.finish()?;
                pages.push(HugePage { size_kib, nodeset });
                Ok(())
            })?;
            h.finish()?;
            Some(pages)
        }
    };
    let nosharepages = e.flag("nosharepages")?;
    let locked = e.flag("locked")?;
    let source = e.child_attr_with("source", "type", values::keyword::<MemSource>)?;
    let access = e.child_attr_with("access", "mode", values::keyword::<MemAccess>)?;
    let (allocation, allocation_threads) = match e.child("allocation")? {
        None => (None, None),
        Some(mut a) => {
            let mode = a.attr_with("mode", values::keyword::<AllocMode>)?;
            let threads = a.attr_with("threads", values::u32_pos)?;
            a.finish()?;
            (mode, threads)
        }
    };
    let discard = e.flag("discard")?;
    e.finish()?;
    Ok(MemoryBacking {
        hugepages,
        nosharepages,
        locked,
        source,
        access,
        allocation,
        allocation_threads,
        discard,
    })
}

fn read_vcpus(mut e: Elem, max: u32) -> Result<Vec<VcpuState>> {
    let mut states: Vec<Option<VcpuState>> = vec![None; max as usize];
    e.each("vcpu", |mut v| {
        let id = v.req_attr_with("id", values::u32_any)?;
        if id >= max {
            return Err(v.attr_invalid(
                "id",
                &id.to_string(),
                format!("vCPU ids are below the maximum of {max}"),
            ));
        }
        let enabled = v.req_attr_with("enabled", values::yes_no)?;
        let hotpluggable = v.attr_with("hotpluggable", values::yes_no)?;
        if hotpluggable == Some(false) && !enabled {
            return Err(v.attr_invalid(
                "hotpluggable",
                "no",
                "an offline vCPU must be hotpluggable",
            ));
        }
        let order = v.attr_with("order", values::u32_pos)?;
        if states[id as usize].is_some() {
            return Err(v.attr_invalid("id", &id.to_string(), "duplicate vCPU id"));
        }
        v.finish()?;
        states[id as usize] = Some(VcpuState {
            enabled,
            hotpluggable: hotpluggable.unwrap_or(!enabled),
            order,
        });
        Ok(())
    })?;
    e.finish()?;
    // vCPUs left out stay offline, as in libvirt
    Ok(states
        .into_iter()
        .map(|s| {
            s.unwrap_or(VcpuState {
                enabled: false,
                hotpluggable: true,
                order: None,
            })
        })
        .collect())
}

fn read_pool(e: &mut Elem) -> Result<ThreadPool> {
    let min = e.attr_with("thread_pool_min", values::u32_any)?;
    let max = e.attr_with("thread_pool_max", values::u32_pos)?;
    if let (Some(a), Some(b)) = (min, max)
        && a > b
    {
        return Err(e.attr_invalid(
            "thread_pool_min",
            &a.to_string(),
            format!("exceeds thread_pool_max {b}"),
        ));
    }
    Ok(ThreadPool { min, max })
}

/// `<iothreads>` and `<iothreadids>`; ids `<iothreads>` implies beyond those listed are the
/// lowest unused ones.
fn read_iothreads(e: &mut Elem) -> Result<Vec<IoThread>> {
    let count = e
        .child_text_with("iothreads", values::u32_any)?
        .unwrap_or(0);
    let mut threads: Vec<IoThread> = Vec::new();
    if let Some(mut ids) = e.child("iothreadids")? {
        ids.each("iothread", |mut t| {
            let id = t.req_attr_with("id", values::u32_pos)?;
            if threads.iter().any(|o| o.id == id) {
                return Err(t.attr_invalid("id", &id.to_string(), "duplicate iothread id"));
            }
            let pool = read_pool(&mut t)?;
            t.finish()?;
            threads.push(IoThread {
                id,
                autofill: false,
                pool_min: pool.min,
                pool_max: pool.max,
                pin: None,
                sched: None,
            });
            Ok(())
        })?;
        ids.finish()?;
    }
    let mut next = 1;
    while (threads.len() as u32) < count {
        while threads.iter().any(|t| t.id == next) {
            next += 1;
        }
        threads.push(IoThread {
            id: next,
            autofill: true,
            pool_min: None,
            pool_max: None,
            pin: None,
            sched: None,
        });
    }
    // once any id is written out all are (libvirt's rule), so a listed set is explicit
    if threads.iter().any(|t| !t.autofill) {
        for t in &mut threads {
            t.autofill = false;
        }
    }
    Ok(threads)
}

fn read_cputune(mut e: Elem, max_vcpus: u32, iothreads: &mut [IoThread]) -> Result<Cputune> {
    let mut c = Cputune {
        shares: e.child_text_with("shares", |v| values::uint_in(v, 0, u64::MAX))?,
        period: read_period(&mut e, "period")?,
        quota: read_quota(&mut e, "quota")?,
        global_period: read_period(&mut e, "global_period")?,
        global_quota: read_quota(&mut e, "global_quota")?,
        emulator_period: read_period(&mut e, "emulator_period")?,
        emulator_quota: read_quota(&mut e, "emulator_quota")?,
        iothread_period: read_period(&mut e, "iothread_period")?,
        iothread_quota: read_quota(&mut e, "iothread_quota")?,
        ..Cputune::default()
    };
    let mut vcpupin = BTreeMap::new();
    e.each("vcpupin", |mut p| {
        let vcpu = p.req_attr_with("vcpu", values::u32_any)?;
        if vcpu >= max_vcpus {
            return Err(p.attr_invalid(
                "vcpu",
                &vcpu.to_string(),
                format!("no such vCPU (the maximum is {max_vcpus})"),
            ));
        }
        if vcpupin.contains_key(&vcpu) {
            return Err(p.attr_invalid("vcpu", &vcpu.to_string(), "duplicate vcpupin"));
        }
        let set = p.req_attr_with("cpuset", id_set)?;
        p.finish()?;
        vcpupin.insert(vcpu, set);
        Ok(())
    })?;
    c.vcpupin = vcpupin;
    c.emulatorpin = e.child_attr_with("emulatorpin", "cpuset", id_set)?;
    e.each("iothreadpin", |mut p| {
        let id = p.req_attr_with("iothread", values::u32_pos)?;
        let set = p.req_attr_with("cpuset", id_set)?;
        let Some(t) = iothreads.iter_mut().find(|t| t.id == id) else {
            return Err(p.attr_invalid("iothread", &id.to_string(), "no such I/O thread"));
        };
        if t.pin.is_some() {
            return Err(p.attr_invalid("iothread", &id.to_string(), "duplicate iothreadpin"));
        }
        p.finish()?;
        t.pin = Some(set);
        Ok(())
    })?;
    if let Some(mut s) = e.child("emulatorsched")? {
        c.emulatorsched = Some(read_sched(&mut s)?);
        s.finish()?;
    }
    let mut vcpusched = BTreeMap::new();
    e.each("vcpusched", |mut s| {
        let ids = s.req_attr_with("vcpus", id_set)?;
        let sched = read_sched(&mut s)?;
        for id in ids.iter() {
            if id >= max_vcpus {
                return Err(s.attr_invalid(
                    "vcpus",
                    &ids.to_string(),
                    "names a vCPU beyond the maximum",
                ));
            }
            if vcpusched.insert(id, sched).is_some() {
                return Err(s.attr_invalid(
                    "vcpus",
                    &ids.to_string(),
                    "overlaps another vcpusched",
                ));
            }
        }
        s.finish()
    })?;
    c.vcpusched = vcpusched;
    c.resctrl = read_resctrl(&mut e, max_vcpus)?;
    e.each("iothreadsched", |mut s| {
        let ids = s.req_attr_with("iothreads", id_set)?;
        let sched = read_sched(&mut s)?;
        for id in ids.iter() {
            let Some(t) = iothreads.iter_mut().find(|t| t.id == id) else {
                return Err(s.attr_invalid(
                    "iothreads",
                    &ids.to_string(),
                    format!("no I/O thread {id}"),
                ));
            };
            if t.sched.replace(sched).is_some() {
                return Err(s.attr_invalid(
                    "iothreads",
                    &ids.to_string(),
                    "overlaps another iothreadsched",
                ));
            }
        }
        s.finish()
    })?;
    e.finish()?;
    Ok(c)
}

/// The group of exactly `vcpus`, created if new; vCPUs shared with another group are an error.
fn group_for<'r>(groups: &'r mut Vec<Resctrl>, e: &Elem, vcpus: IdSet) -> Result<&'r mut Resctrl> {
    let i = match groups.iter().position(|g| g.vcpus == vcpus) {
        Some(i) => i,
        None => {
            if groups.iter().any(|g| g.vcpus.overlaps(&vcpus)) {
                return Err(e.attr_invalid(
                    "vcpus",
                    &vcpus.to_string(),
                    "overlaps the vCPUs of another cachetune or memorytune",
                ));
            }
            groups.push(Resctrl {
                vcpus,
                caches: BTreeMap::new(),
                cache_monitors: Vec::new(),
                mem_nodes: BTreeMap::new(),
                mem_monitors: Vec::new(),
            });
            groups.len() - 1
        }
    };
    Ok(&mut groups[i])
}

fn read_vcpu_set(e: &mut Elem, max_vcpus: u32) -> Result<IdSet> {
    let set = e.req_attr_with("vcpus", id_set)?;
    if let Some(m) = set.max().filter(|m| *m >= max_vcpus) {
        return Err(e.attr_invalid(
            "vcpus",
            &set.to_string(),
            format!("vCPU {m} is beyond the maximum of {max_vcpus}"),
        ));
    }
    Ok(set)
}

/// A `<monitor>`'s vCPUs, which must lie in its group's.
fn read_monitor(m: &mut Elem, group: &IdSet, max_vcpus: u32) -> Result<IdSet> {
    let set = read_vcpu_set(m, max_vcpus)?;
    if set.iter().any(|v| !group.contains(v)) {
        return Err(m.attr_invalid("vcpus", &set.to_string(), "not within the group's vCPUs"));
    }
    Ok(set)
}

fn read_resctrl(e: &mut Elem, max_vcpus: u32) -> Result<Vec<Resctrl>> {
    let mut groups: Vec<Resctrl> = Vec::new();
    e.each("cachetune", |mut t| {
        let vcpus = read_vcpu_set(&mut t, max_vcpus)?;
        let mut caches = BTreeMap::new();
        let mut monitors = Vec::new();
        t.each("cache", |mut c| {
            let id = c.req_attr_with("id", values::u32_any)?;
            let level = c.req_attr_with("level", values::u32_any)?;
            let kind = c.req_attr_with("type", values::keyword::<CacheType>)?;
            let unit = c.attr_with("unit", values::memory_unit)?.unwrap_or(1024);
            let size = c.req_attr_with("size", |v| {
                let n = values::uint_in(v, 0, u64::MAX)?;
                n.checked_mul(unit).ok_or_else(|| "too large".to_string())
            })?;
            if caches.insert((level, kind, id), size).is_some() {
                return Err(c.attr_invalid("id", &id.to_string(), "this cache is allocated twice"));
            }
            c.finish()
        })?;
        t.each("monitor", |mut m| {
            m.req_attr_with("level", |v| {
                values::uint_in(v, 3, 3)
                    .map_err(|_| "only level 3 caches are monitored".to_string())
            })?;
            monitors.push(read_monitor(&mut m, &vcpus, max_vcpus)?);
            m.finish()
        })?;
        let g = group_for(&mut groups, &t, vcpus)?;
        if g.has_cachetune() {
            return Err(t.attr_invalid(
                "vcpus",
                &g.vcpus.to_string(),
                "a second cachetune of these vCPUs",
            ));
        }
        g.caches = caches;
        g.cache_monitors = monitors;
        t.finish()
    })?;
    e.each("memorytune", |mut t| {
        let vcpus = read_vcpu_set(&mut t, max_vcpus)?;
        let mut nodes = BTreeMap::new();
        let mut monitors = Vec::new();
        t.each("node", |mut n| {
            let id = n.req_attr_with("id", values::u32_any)?;
            let bw = n.req_attr_with("bandwidth", |v| {
                values::uint_in(v, 1, 100).map(|b| b as u32)
            })?;
            if nodes.insert(id, bw).is_some() {
                return Err(n.attr_invalid("id", &id.to_string(), "this node is limited twice"));
            }
            n.finish()
        })?;
        t.each("monitor", |mut m| {
            monitors.push(read_monitor(&mut m, &vcpus, max_vcpus)?);
            m.finish()
        })?;
        let g = group_for(&mut groups, &t, vcpus)?;
        if g.has_memorytune() {
            return Err(t.attr_invalid(
                "vcpus",
                &g.vcpus.to_string(),
                "a second memorytune of these vCPUs",
            ));
        }
        g.mem_nodes = nodes;
        g.mem_monitors = monitors;
        t.finish()
    })?;
    Ok(groups)
}

fn read_numatune(mut e: Elem, ctx: &Ctx<'_>) -> Result<Numatune> {
    let memory = match e.child("memory")? {
        None if !ctx.placement_static => Some(NumaMemory {
            mode: NumaMode::Strict,
            placement: NumaPlacement::Auto,
            nodeset: None,
        }),
        None => None,
        Some(mut m) => {
            let mode = m
                .attr_with("mode", values::keyword::<NumaMode>)?
                .unwrap_or(NumaMode::Strict);
            let placement = m.attr_with("placement", values::keyword::<NumaPlacement>)?;
            let nodeset = m.attr_with("nodeset", id_set)?;
            let placement = match (placement, &nodeset) {
                (Some(p), _) => p,
                (None, Some(_)) => NumaPlacement::Static,
                (None, None) if ctx.placement_static => NumaPlacement::Static,
                (None, None) => NumaPlacement::Auto,
            };
            match (placement, &nodeset) {
                (NumaPlacement::Static, None) => {
                    return Err(m.missing_attr("nodeset"));
                }
                (NumaPlacement::Auto, Some(s)) => {
                    return Err(m.attr_invalid(
                        "nodeset",
                        &s.to_string(),
                        "a nodeset cannot be combined with placement='auto'",
                    ));
                }
                _ => {}
            }
            m.finish()?;
            Some(NumaMemory {
                mode,
                placement,
                nodeset,
            })
        }
    };
    let mut memnodes = BTreeMap::new();
    let ncells = ctx.cells.len() as u32;
    e.each("memnode", |mut m| {
        if memory
            .as_ref()
            .is_some_and(|m| m.placement == NumaPlacement::Auto)
        {
            return Err(m.invalid(
                "",
                "per-cell binding is not compatible with automatic placement",
            ));
        }
        let cell = m.req_attr_with("cellid", values::u32_any)?;
        if cell >= ncells {
            return Err(m.attr_invalid(
                "cellid",
                &cell.to_string(),
                format!("no such guest NUMA cell ({ncells} defined in <cpu><numa>)"),
            ));
        }
        let mode = m
            .attr_with("mode", values::keyword::<NumaMode>)?
            .unwrap_or(NumaMode::Strict);
        let restrictive = memory
            .as_ref()
            .is_some_and(|m| m.mode == NumaMode::Restrictive);
        if restrictive && mode != NumaMode::Restrictive {
            return Err(m.attr_invalid(
                "mode",
                mode.as_str(),
                "must be 'restrictive' when <memory mode='restrictive'>",
            ));
        }
        if memnodes.contains_key(&cell) {
            return Err(m.attr_invalid("cellid", &cell.to_string(), "duplicate memnode"));
        }
        let set = m.req_attr_with("nodeset", id_set)?;
        m.finish()?;
        memnodes.insert(cell, (mode, set));
        Ok(())
    })?;
    e.finish()?;
    Ok(Numatune { memory, memnodes })
}

#[cfg(test)]
#[path = "tuning_tests.rs"]
mod tests;
