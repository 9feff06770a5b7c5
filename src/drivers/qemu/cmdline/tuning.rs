//! QEMU arguments for vCPU, NUMA, memory and I/O thread tuning, as libvirt 9.0 builds them
//! for QEMU 7.2: `-numa node/dist`, `memory-backend-*` objects (with `host-nodes`/`policy`
//! from `<numatune>`), `thread-context` for preallocation, `iothread` and `main-loop`
//! objects, `-overcommit mem-lock`, `mem-merge=off`.
//!
//! What depends on the host (huge pages, host NUMA nodes, a cgroup for CPU bandwidth) is
//! checked only when [`Env::host`] is given, that is at start: a definition stays valid on a
//! host that cannot run it today.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::{Builder, CmdlineError, Result, unsupported};
use crate::model::DomainDef;
use crate::model::tuning::{MemAccess, MemSource, NumaMode, NumaPlacement};

/// QEMU's id of a machine's default RAM (`-machine memory-backend=`), for x86 `pc` and `q35`.
const DEFAULT_RAM_ID: &str = "pc.ram";

/// A hugetlbfs mount and the pages reserved for its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HugeTlb {
    pub page_kib: u64,
    pub path: PathBuf,
    /// `nr_hugepages` of that size.
    pub reserved: u64,
}

/// Host facts the tuning needs at start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Host {
    /// Huge page sizes the kernel knows, with what is reserved and where it is mounted.
    pub hugepages: Vec<(u64, u64)>,
    pub hugetlbfs: Vec<HugeTlb>,
    /// The default huge page size (KiB), for `<hugepages/>` without a size.
    pub default_huge_kib: u64,
    pub system_page_kib: u64,
    /// Online host NUMA nodes.
    pub nodes: Vec<u32>,
    /// A cgroup v2 hierarchy where the CPU controller can be used.
    pub cgroup_cpu: Option<PathBuf>,
    /// The resctrl filesystem is mounted (cache and memory bandwidth allocation).
    pub resctrl: bool,
}

impl Host {
    /// Reads what this host offers.
    pub fn probe() -> Host {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let mut hugepages = Vec::new();
        if let Ok(dir) = std::fs::read_dir("/sys/kernel/mm/hugepages") {
            for e in dir.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let kib = name
                    .strip_prefix("hugepages-")
                    .and_then(|s| s.strip_suffix("kB"))
                    .and_then(|s| s.parse::<u64>().ok());
                if let Some(kib) = kib {
                    let n = read(&e.path().join("nr_hugepages"))
                        .trim()
                        .parse()
                        .unwrap_or(0);
                    hugepages.push((kib, n));
                }
            }
        }
        hugepages.sort_unstable();
        let default_huge_kib = read(Path::new("/proc/meminfo"))
            .lines()
            .find_map(|l| l.strip_prefix("Hugepagesize:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(2048);
        let mut hugetlbfs = Vec::new();
        for line in read(Path::new("/proc/mounts")).lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 4 || f[2] != "hugetlbfs" {
                continue;
            }
            let page_kib = f[3]
                .split(',')
                .find_map(|o| o.strip_prefix("pagesize="))
                .and_then(parse_size_kib)
                .unwrap_or(default_huge_kib);
            let reserved = hugepages
                .iter()
                .find(|(k, _)| *k == page_kib)
                .map_or(0, |(_, n)| *n);
            hugetlbfs.push(HugeTlb {
                page_kib,
                path: PathBuf::from(f[1]),
                reserved,
            });
        }
        // SAFETY: sysconf has no memory-safety preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        let nodes = read(Path::new("/sys/devices/system/node/online"));
        let nodes = crate::model::tuning::IdSet::parse(nodes.trim())
            .map(|s| s.iter().collect())
            .unwrap_or_else(|_| vec![0]);
        Host {
            hugepages,
            hugetlbfs,
            default_huge_kib,
            system_page_kib: u64::try_from(page / 1024).unwrap_or(4),
            nodes,
            cgroup_cpu: super::super::cgroup::cpu_hierarchy()
                .or_else(super::super::cgtune::v1_cpu_root),
            resctrl: read(Path::new("/proc/mounts"))
                .lines()
                .any(|l| l.split_whitespace().nth(2) == Some("resctrl")),
        }
    }
}

/// `2M`, `1G`, `2048k` as the kernel writes mount options.
fn parse_size_kib(s: &str) -> Option<u64> {
    let (num, mult) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 1),
        b'M' | b'm' => (&s[..s.len() - 1], 1024),
        b'G' | b'g' => (&s[..s.len() - 1], 1024 * 1024),
        _ => (s, 0),
    };
    let n: u64 = num.parse().ok()?;
    Some(if mult == 0 { n / 1024 } else { n * mult })
}

/// A JSON object in the key order libvirt writes it.
#[derive(Default)]
pub(super) struct Obj(Vec<(&'static str, Value)>);

impl Obj {
    pub(super) fn put(&mut self, k: &'static str, v: Value) -> &mut Self {
        self.0.push((k, v));
        self
    }

    pub(super) fn get(&self, k: &str) -> Option<&Value> {
        self.0.iter().find(|(n, _)| *n == k).map(|(_, v)| v)
    }

    pub(super) fn render(&self) -> String {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(k, v)| format!("{}:{v}", Value::from(*k)))
            .collect();
        format!("{{{}}}", parts.join(","))
    }
}

/// Refusals that do not depend on the host.
pub(super) fn check(def: &DomainDef) -> Result<()> {
    let t = &def.tuning;
    if let Some(n) = &t.numatune {
        let restrictive = n
            .memory
            .as_ref()
            .is_some_and(|m| m.mode == NumaMode::Restrictive)
            || n.memnodes
                .values()
                .any(|(m, _)| *m == NumaMode::Restrictive);
        if restrictive {
            return unsupported(
                "<numatune> mode='restrictive' (it binds memory through the cgroup cpuset \
                 controller, which this driver does not manage)",
            );
        }
    }
    if let Some(n) = t.enabled_vcpus() {
        // QEMU onlines the first vCPUs; others would need a hotplug at start
        if let Some(i) = t.vcpus.iter().position(|v| !v.enabled)
            && t.vcpus[i..].iter().any(|v| v.enabled)
        {
            return unsupported(format!(
                "<vcpus>: vCPU {} is enabled after offline vCPU {i} (only the first {n} vCPUs \
                 can be online at start)",
                i + t.vcpus[i..].iter().position(|v| v.enabled).unwrap_or(0)
            ));
        }
        if !t.vcpus.first().is_some_and(|v| v.enabled) {
            return Err(CmdlineError::Invalid(
                "<vcpus>: vCPU 0 must be enabled".into(),
            ));
        }
    }
    let cells = numa_cells(def);
    if !cells.is_empty() && cells.iter().all(|c| c.cpus.is_none()) {
        return Err(CmdlineError::Invalid(
            "<cpu><numa>: at least one cell needs vCPUs".into(),
        ));
    }
    Ok(())
}

/// Refusals that depend on the host: only at start.
fn check_host(def: &DomainDef, host: &Host) -> Result<()> {
    // libvirt accepts automatic placement at define and asks numad for a nodeset at start;
    // this driver does not run numad, so a start says so
    if def.vcpu_placement == Some(crate::model::VcpuPlacement::Auto) {
        return unsupported(
            "<vcpu placement='auto'> (automatic placement needs numad, which this driver does \
             not use)",
        );
    }
    if def.tuning.numatune.as_ref().is_some_and(|n| {
        n.memory
            .as_ref()
            .is_some_and(|m| m.placement == NumaPlacement::Auto)
    }) {
        return unsupported(
            "<numatune><memory placement='auto'> (automatic placement needs numad, which this \
             driver does not use)",
        );
    }
    if let Some(n) = &def.tuning.numatune {
        let sets = n
            .memory
            .iter()
            .filter_map(|m| m.nodeset.as_ref())
            .chain(n.memnodes.values().map(|(_, s)| s));
        for set in sets {
            if let Some(bad) = set.iter().find(|id| !host.nodes.contains(id)) {
                return Err(CmdlineError::Invalid(format!(
                    "<numatune> nodeset '{set}': host NUMA node {bad} does not exist (this host \
                     has {})",
                    crate::model::tuning::IdSet::from_ids(host.nodes.iter().copied())
                )));
            }
        }
    }
    if let Some(r) = def.tuning.cputune.resctrl.first() {
        return unsupported(if host.resctrl {
            format!(
                "{} (this driver does not create resctrl allocation groups)",
                r.element()
            )
        } else {
            format!(
                "{} (cache and memory bandwidth allocation need the resctrl filesystem, which \
                 is not mounted at /sys/fs/resctrl)",
                r.element()
            )
        });
    }
    let bandwidth = def.tuning.cputune.bandwidth();
    if let Some((name, _)) = bandwidth.first()
        && host.cgroup_cpu.is_none()
    {
        return unsupported(format!(
            "<cputune><{name}> (CPU bandwidth needs a writable cgroup hierarchy with the cpu \
             controller; this host has none)"
        ));
    }
    Ok(())
}

/// The guest's NUMA cells.
pub(super) fn numa_cells(def: &DomainDef) -> &[crate::model::tuning::NumaCell] {
    def.cpu
        .as_ref()
        .map(|c| c.numa.as_slice())
        .unwrap_or_default()
}

/// 1 MiB, to which QEMU sizes on x86 are aligned as libvirt does.
fn align_kib(kib: u64) -> u64 {
    kib.div_ceil(1024) * 1024
}

/// `-machine` properties: `mem-merge=off` and the default RAM backend.
pub(super) fn machine_props(def: &DomainDef, env: &super::Env<'_>) -> Result<String> {
    let mut s = String::new();
    if def
        .tuning
        .memory_backing
        .as_ref()
        .is_some_and(|m| m.nosharepages)
    {
        s.push_str(",mem-merge=off");
    }
    if numa_cells(def).is_empty() && backend(def, env, None, def.memory_kib)?.1 {
        s.push_str(&format!(",memory-backend={DEFAULT_RAM_ID}"));
    }
    Ok(s)
}

/// The page size in KiB a cell (or the whole guest) is backed by, 0 for none, with the
/// hugetlbfs path to use.
fn hugepage(def: &DomainDef, env: &super::Env<'_>, cell: Option<u32>) -> Result<(u64, PathBuf)> {
    let Some(mb) = &def.tuning.memory_backing else {
        return Ok((0, PathBuf::new()));
    };
    let Some(size) = mb.page_for_cell(cell) else {
        return Ok((0, PathBuf::new()));
    };
    huge_mount(env, size)
}

/// The huge page size in KiB (`0`: the host's default) to back memory with, 0 when those
/// are the system's pages, and the hugetlbfs mount that serves it.
pub(super) fn huge_mount(env: &super::Env<'_>, size: u64) -> Result<(u64, PathBuf)> {
    let Some(host) = env.host else {
        // at define: the size is checked against the host at start
        let kib = if size == 0 { 2048 } else { size };
        return Ok((kib, PathBuf::from("/dev/hugepages")));
    };
    let kib = if size == 0 {
        host.default_huge_kib
    } else {
        size
    };
    if kib == host.system_page_kib {
        // "huge" pages of the system page size are ordinary memory, as in libvirt
        return Ok((0, PathBuf::new()));
    }
    let what = format!("<memoryBacking><hugepages><page size='{kib}' unit='KiB'>");
    let reserved = host
        .hugepages
        .iter()
        .find(|(k, _)| *k == kib)
        .map_or(0, |(_, n)| *n);
    if reserved == 0 {
        return unsupported(format!(
            "{what}: the host has no {kib} KiB huge pages reserved \
             (/sys/kernel/mm/hugepages/hugepages-{kib}kB/nr_hugepages is 0 or absent)"
        ));
    }
    match host.hugetlbfs.iter().find(|m| m.page_kib == kib) {
        Some(m) => Ok((kib, m.path.clone())),
        None => unsupported(format!(
            "{what}: no hugetlbfs is mounted for {kib} KiB pages"
        )),
    }
}

/// The memory backend object for guest cell `cell` (or the whole guest), and whether
/// anything in the definition needs it (libvirt's "rc == 0").
fn backend(
    def: &DomainDef,
    env: &super::Env<'_>,
    cell: Option<u32>,
    size_kib: u64,
) -> Result<(Obj, bool)> {
    let mb = def.tuning.memory_backing.clone().unwrap_or_default();
    let c = cell.and_then(|i| numa_cells(def).get(i as usize));
    let access = c.and_then(|c| c.mem_access).or(mb.access);
    let discard = c.and_then(|c| c.discard).or(mb.discard.then_some(true));
    let numatune = def.tuning.numatune.clone().unwrap_or_default();
    let mode = numatune.mode_for_cell(cell);
    let nodes = numatune.for_cell(cell).map(|(_, s)| s.clone());
    let node_specified = cell.is_some_and(|c| numatune.memnodes.contains_key(&c));
    let (page_kib, huge_path) = hugepage(def, env, cell)?;
    let huge = page_kib != 0;
    let system = cell.is_none();
    let alias = match cell {
        Some(i) => format!("ram-node{i}"),
        None => DEFAULT_RAM_ID.to_owned(),
    };
    let mut prealloc = mb.allocation == Some(crate::model::tuning::AllocMode::Immediate);
    let mut o = Obj::default();
    let share = |o: &mut Obj| {
        if let Some(a) = access {
            o.put("share", json!(a == MemAccess::Shared));
        }
    };
    let kind;
    if mb.source == Some(MemSource::Memfd) {
        kind = "memory-backend-memfd";
        o.put("qom-type", json!(kind)).put("id", json!(alias));
        if huge {
            o.put("hugetlb", json!(true))
                .put("hugetlbsize", json!(page_kib * 1024));
        }
        share(&mut o);
        if system {
            o.put("x-use-canonical-path-for-ramblock-id", json!(false));
        }
    } else if huge || access.is_some() || mb.source == Some(MemSource::File) {
        kind = "memory-backend-file";
        let path = if huge {
            huge_path
        } else {
            // QEMU creates (and libvirt-style, the driver removes with the domain's
            // runtime directory) a file of this name
            env.dir.join(&alias)
        };
        o.put("qom-type", json!(kind)).put("id", json!(alias));
        o.put("mem-path", json!(path.display().to_string()));
        if let Some(d) = discard {
            o.put("discard-data", json!(d));
        }
        share(&mut o);
        if system {
            o.put("x-use-canonical-path-for-ramblock-id", json!(false));
        }
    } else {
        kind = "memory-backend-ram";
        o.put("qom-type", json!(kind)).put("id", json!(alias));
    }
    prealloc |= huge;
    if prealloc {
        o.put("prealloc", json!(true));
    }
    if let Some(t) = mb.allocation_threads {
        o.put("prealloc-threads", json!(t));
    }
    o.put("size", json!(size_kib * 1024));
    if let Some(n) = &nodes {
        let ids: Vec<u32> = n.iter().collect();
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
    let needed = huge
        || node_specified
        || (system && nodes.is_some())
        || access.is_some()
        || matches!(mb.source, Some(MemSource::File | MemSource::Memfd))
        || (system && (prealloc || mb.allocation_threads.is_some()));
    Ok((o, needed))
}

/// `thread-context` for a preallocated backend bound to host nodes (QEMU 7.2), as libvirt.
pub(super) fn thread_context(b: &mut Builder<'_>, o: &mut Obj) {
    let (Some(nodes), Some(Value::String(id))) = (o.get("host-nodes").cloned(), o.get("id")) else {
        return;
    };
    if o.get("prealloc") != Some(&json!(true)) {
        return;
    }
    // thread-context objects came with QEMU 7.2
    let mut v = b
        .env
        .caps
        .version
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    if (v.next().unwrap_or(0), v.next().unwrap_or(0)) < (7, 2) {
        return;
    }
    let tc = format!("tc-{id}");
    let mut t = Obj::default();
    t.put("qom-type", json!("thread-context"))
        .put("id", json!(tc))
        .put("node-affinity", nodes);
    b.arg("-object", t.render());
    o.put("prealloc-context", json!(tc));
}

/// `-m`, the default RAM backend and `-overcommit`, in libvirt's order.
pub(super) fn memory(b: &mut Builder<'_>, def: &DomainDef) -> Result<()> {
    if let Some(host) = b.env.host {
        check_host(def, host)?;
    }
    let cells = numa_cells(def);
    if cells.is_empty() {
        b.arg(
            "-m",
            format!("size={}k{}", def.memory_kib, super::memdev::m_props(def)),
        );
        let (mut o, needed) = backend(def, b.env, None, def.memory_kib)?;
        if needed {
            thread_context(b, &mut o);
            b.arg("-object", o.render());
        }
    } else {
        let total: u64 = cells.iter().map(|c| align_kib(c.memory_kib)).sum();
        b.arg(
            "-m",
            format!("size={total}k{}", super::memdev::m_props(def)),
        );
    }
    if def.tuning.memory_backing.as_ref().is_some_and(|m| m.locked) {
        b.arg("-overcommit", "mem-lock=on");
    }
    Ok(())
}

/// `,iothread=iothreadN` for a virtio disk whose `<driver iothread>` names one.
pub(super) fn disk_iothread(
    def: &DomainDef,
    disk: &crate::model::devices::Disk,
    bus: crate::model::devices::DiskBus,
    what: &str,
) -> Result<String> {
    let Some(id) = disk.driver.as_ref().and_then(|d| d.iothread) else {
        return Ok(String::new());
    };
    if bus != crate::model::devices::DiskBus::Virtio {
        return unsupported(format!(
            "{what}: <driver iothread='{id}'> (I/O threads serve virtio disks only)"
        ));
    }
    if !def.tuning.iothreads.iter().any(|t| t.id == id) {
        return Err(CmdlineError::Invalid(format!(
            "{what}: <driver iothread='{id}'> names no I/O thread of <iothreads>"
        )));
    }
    Ok(format!(",iothread=iothread{id}"))
}

/// Machine types before 5.1 still take `-numa node,mem=`; later ones need a backend.
fn numa_mem_supported(machine: &str) -> bool {
    let version = machine.rsplit('-').next().unwrap_or("");
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) < (5, 1),
        _ => false,
    }
}

/// I/O thread objects, then NUMA cells and distances: what follows `-smp`.
pub(super) fn after_smp(b: &mut Builder<'_>, def: &DomainDef, machine: &str) -> Result<()> {
    for t in &def.tuning.iothreads {
        let mut o = Obj::default();
        o.put("qom-type", json!("iothread"))
            .put("id", json!(format!("iothread{}", t.id)));
        if let Some(v) = t.pool_min {
            o.put("thread-pool-min", json!(v));
        }
        if let Some(v) = t.pool_max {
            o.put("thread-pool-max", json!(v));
        }
        b.arg("-object", o.render());
    }
    if let Some(p) = def.tuning.default_iothread
        && (p.min.is_some() || p.max.is_some())
    {
        let mut o = Obj::default();
        o.put("qom-type", json!("main-loop"))
            .put("id", json!("main-loop"));
        if let Some(v) = p.min {
            o.put("thread-pool-min", json!(v));
        }
        if let Some(v) = p.max {
            o.put("thread-pool-max", json!(v));
        }
        b.arg("-object", o.render());
    }
    let cells = numa_cells(def);
    if cells.is_empty() {
        return Ok(());
    }
    let mut backends = Vec::with_capacity(cells.len());
    let mut need = !numa_mem_supported(machine);
    for (i, c) in cells.iter().enumerate() {
        let (o, needed) = backend(def, b.env, Some(i as u32), align_kib(c.memory_kib))?;
        need |= needed;
        backends.push(o);
    }
    for (i, (c, mut o)) in cells.iter().zip(backends).enumerate() {
        if need {
            thread_context(b, &mut o);
            b.arg("-object", o.render());
        }
        let mut s = format!("node,nodeid={i}");
        if let Some(cpus) = &c.cpus {
            for (a, z) in cpus.ranges() {
                if a == z {
                    s.push_str(&format!(",cpus={a}"));
                } else {
                    s.push_str(&format!(",cpus={a}-{z}"));
                }
            }
        }
        if need {
            s.push_str(&format!(",memdev=ram-node{i}"));
        } else {
            s.push_str(&format!(",mem={}", align_kib(c.memory_kib) / 1024));
        }
        b.arg("-numa", s);
    }
    if cells.iter().any(|c| !c.distances.is_empty()) {
        let n = cells.len() as u32;
        for i in 0..n {
            for j in 0..n {
                let d = cells[i as usize]
                    .distances
                    .get(&j)
                    .copied()
                    .unwrap_or(if i == j { 10 } else { 20 });
                b.arg("-numa", format!("dist,src={i},dst={j},val={d}"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "tuning_tests.rs"]
mod tests;
