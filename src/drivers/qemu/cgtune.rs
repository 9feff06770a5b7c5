//! A running guest's cgroups for the tuning calls (schedinfo, memtune, cpu-stats) on
//! cgroup v1 hosts: `virtbus/<uuid>` below the `cpu`, `cpuacct` and `memory` hierarchies,
//! with `vcpuN`, `iothreadN` and `emulator` children in the CPU ones, as libvirt lays out its
//! machine cgroups without systemd. (On a v2 host with the cpu controller, [`super::cgroup`]
//! places QEMU; the calls here then read and write the v2 files of that directory.)
//!
//! libvirt's mapping: `cpu_shares` is v1 `cpu.shares` (v2 `cpu.weight`), each period and
//! quota pair `cpu.cfs_period_us`/`cpu.cfs_quota_us` (v2 `cpu.max`) of the vCPU, emulator,
//! I/O thread or whole-domain group, the memory limits `memory.limit_in_bytes`,
//! `memory.soft_limit_in_bytes`, `memory.memsw.limit_in_bytes` (v2 `memory.max`,
//! `memory.high`, `memory.swap.max`).

use std::path::{Path, PathBuf};

use uuid::Uuid;

use crate::drivers::{CpuStats, LiveTunables};
use crate::model::{DomainDef, memtune::Memtune, tuning::Cputune};

/// The controllers a guest is placed under on a v1 host.
const V1: &[&str] = &["cpu", "cpuacct", "cpuset", "memory", "blkio"];

/// A guest's cgroup directories.
#[derive(Debug, Clone, Default)]
pub struct Groups {
    /// v1 directories by controller.
    v1: Vec<(&'static str, PathBuf)>,
    /// The v2 directory, when the v2 hierarchy offers the cpu controller.
    v2: Option<PathBuf>,
}

fn write(path: &Path, value: &str) -> Result<(), String> {
    std::fs::write(path, value)
        .map_err(|e| format!("unable to write '{value}' to '{}': {e}", path.display()))
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .map_err(|e| format!("unable to read '{}': {e}", path.display()))
}

fn read_u64(path: &Path) -> Result<u64, String> {
    let t = read(path)?;
    t.parse()
        .map_err(|_| format!("'{}' holds '{t}', not a number", path.display()))
}

/// Creates `dir` (and its missing parents); a v1 cpuset group gets its parent's CPUs and
/// memory nodes, without which no task may join it.
fn make(dir: &Path, cpuset: bool) -> Result<(), String> {
    if !cpuset {
        return std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create '{}': {e}", dir.display()));
    }
    if dir.is_dir() {
        return Ok(());
    }
    let parent = dir
        .parent()
        .ok_or_else(|| format!("'{}' has no parent", dir.display()))?;
    make(parent, true)?;
    match std::fs::create_dir(dir) {
        // another guest's start made it meanwhile: it is initialised below all the same
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot create '{}': {e}", dir.display())),
    }
    for f in ["cpuset.cpus", "cpuset.mems"] {
        write(&dir.join(f), &read(&parent.join(f))?)?;
    }
    Ok(())
}

/// The root of each mounted v1 controller of [`V1`].
fn v1_roots() -> Vec<(&'static str, PathBuf)> {
    let text = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut out: Vec<(&'static str, PathBuf)> = Vec::new();
    for l in text.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 4 || f[2] != "cgroup" || !f[3].split(',').any(|o| o == "rw") {
            continue;
        }
        for c in V1 {
            if f[3].split(',').any(|o| o == *c) && !out.iter().any(|(o, _)| o == c) {
                out.push((c, PathBuf::from(f[1])));
            }
        }
    }
    out
}

/// The v1 cpu hierarchy's root, on hosts that mount one.
pub fn v1_cpu_root() -> Option<PathBuf> {
    v1_roots()
        .into_iter()
        .find(|(c, _)| *c == "cpu")
        .map(|(_, r)| r)
}

impl Groups {
    /// Where the guest `uuid`'s cgroups are (whether or not they exist yet).
    pub fn locate(uuid: &Uuid) -> Groups {
        let rel = PathBuf::from("virtbus").join(uuid.simple().to_string());
        if let Some(root) = super::cgroup::cpu_hierarchy() {
            return Groups {
                v1: Vec::new(),
                v2: Some(root.join(rel)),
            };
        }
        Groups {
            v1: v1_roots()
                .into_iter()
                .map(|(c, r)| (c, r.join(&rel)))
                .collect(),
            v2: None,
        }
    }

    /// Whether this is a v1 host with any of the controllers mounted.
    pub fn has_v1(&self) -> bool {
        !self.v1.is_empty()
    }

    /// Whether this is a v1 host with the memory controller (where QEMU gets `<memtune>`).
    pub fn v1_memory(&self) -> bool {
        self.dir("memory").is_some()
    }

    /// Whether the host offers the cpu controller (v1 or v2).
    pub fn has_cpu(&self) -> bool {
        self.v2.is_some() || self.dir("cpu").is_some()
    }

    /// Whether the host offers the cpuset controller.
    pub fn has_cpuset(&self) -> bool {
        self.v2.is_some() || self.dir("cpuset").is_some()
    }

    /// Restricts the guest's emulator, vCPU and I/O thread groups to host NUMA `nodes`.
    pub fn set_mems(&self, nodes: &str, vcpus: &[u32], iothreads: &[u32]) -> Result<(), String> {
        let dom = match (&self.v2, self.dir("cpuset")) {
            (Some(d), _) => d.clone(),
            (None, Some(d)) => d.to_path_buf(),
            (None, None) => return Err("cgroup cpuset controller is not mounted".into()),
        };
        let mut names = vec!["emulator".to_owned()];
        names.extend(vcpus.iter().map(|i| format!("vcpu{i}")));
        names.extend(iothreads.iter().map(|i| format!("iothread{i}")));
        for n in names {
            let g = dom.join(n);
            if g.is_dir() {
                write(&g.join("cpuset.mems"), nodes)?;
            }
        }
        Ok(())
    }

    /// Whether the host offers the memory controller.
    pub fn has_memory(&self) -> bool {
        match &self.v2 {
            Some(d) => d
                .parent()
                .and_then(Path::parent)
                .and_then(|r| std::fs::read_to_string(r.join("cgroup.controllers")).ok())
                .is_some_and(|c| c.split_whitespace().any(|c| c == "memory")),
            None => self.dir("memory").is_some(),
        }
    }

    fn dir(&self, controller: &str) -> Option<&Path> {
        self.v1
            .iter()
            .find(|(c, _)| *c == controller)
            .map(|(_, p)| p.as_path())
    }

    /// The distinct directories of the CPU controllers (cpu and cpuacct may share a mount).
    fn cpu_dirs(&self) -> Vec<&Path> {
        let mut out: Vec<&Path> = Vec::new();
        for c in ["cpu", "cpuacct"] {
            if let Some(d) = self.dir(c)
                && !out.contains(&d)
            {
                out.push(d);
            }
        }
        out
    }

    /// Puts QEMU `pid` into its v1 groups: its vCPU and I/O threads (id, thread id) into
    /// children of their own, every other thread into `emulator`; then applies `def`'s
    /// bandwidth and memory limits. Nothing to do on v2 hosts ([`super::cgroup::apply`]).
    pub fn place(
        &self,
        def: &DomainDef,
        pid: i32,
        vcpus: &[(u32, i32)],
        iothreads: &[(u32, i32)],
        emulator: &[i32],
    ) -> Result<(), String> {
        if self.v2.is_some() {
            return Ok(());
        }
        for (c, d) in &self.v1 {
            make(d, *c == "cpuset")?;
            write(&d.join("cgroup.procs"), &pid.to_string())?;
        }
        let mut dirs = self.cpu_dirs();
        if let Some(d) = self.dir("cpuset") {
            dirs.push(d);
        }
        for d in dirs {
            let cpuset = Some(d) == self.dir("cpuset");
            let put = |name: String, tid: i32| -> Result<(), String> {
                let g = d.join(name);
                make(&g, cpuset)?;
                write(&g.join("tasks"), &tid.to_string())
            };
            for (i, t) in vcpus {
                put(format!("vcpu{i}"), *t)?;
            }
            for (i, t) in iothreads {
                put(format!("iothread{i}"), *t)?;
            }
            for t in emulator {
                put("emulator".into(), *t)?;
            }
        }
        let c = &def.tuning.cputune;
        if !c.bandwidth().is_empty() {
            self.set_cpu(c, &ids(vcpus), &ids(iothreads))?;
        }
        if def.tuning.memtune.is_set() {
            self.set_memory(&def.tuning.memtune)?;
        }
        if def.tuning.blkiotune.is_set() {
            self.set_blkio(&def.tuning.blkiotune, def.tuning.blkiotune.weight != 0)?;
        }
        Ok(())
    }

    /// Whether this is a v1 host with the blkio controller (where QEMU gets `<blkiotune>`).
    pub fn v1_blkio(&self) -> bool {
        self.dir("blkio").is_some()
    }

    /// The blkio weight file of this host (BFQ's or CFQ's), if its scheduler has one.
    fn weight_file(&self, device: bool) -> Option<PathBuf> {
        let d = self.dir("blkio")?;
        let names: [&str; 2] = if device {
            ["blkio.bfq.weight_device", "blkio.weight_device"]
        } else {
            ["blkio.bfq.weight", "blkio.weight"]
        };
        names.iter().map(|n| d.join(n)).find(|p| p.exists())
    }

    /// The weight of the guest's blkio group (`None`: the I/O scheduler has none).
    pub fn blkio_weight(&self) -> Option<u32> {
        let f = self.weight_file(false)?;
        read(&f).ok()?.parse().ok()
    }

    /// Writes `<blkiotune>`: the weight when `weight`, and every device's weight and
    /// throttles (0 lifts a throttle).
    pub fn set_blkio(
        &self,
        tune: &crate::model::blkiotune::Blkiotune,
        weight: bool,
    ) -> Result<(), String> {
        const NO_WEIGHT: &str = "blkio device weight is valid only for bfq or cfq scheduler";
        let mut all = tune.clone();
        // a device whose values are all 0 still has its throttles lifted
        let keep: Vec<_> = all.devices.drain(..).collect();
        let mut resolved = Vec::new();
        for d in keep {
            let one = crate::model::blkiotune::Blkiotune {
                weight: 0,
                devices: vec![crate::model::blkiotune::BlkioDevice {
                    read_iops: 1,
                    ..d.clone()
                }],
            };
            let r = crate::drivers::lxc::blkio::resolve(&one)
                .map_err(|_| format!("Path '{}' must be a block device", d.path))?;
            let id = r
                .devices
                .first()
                .map(|x| format!("{}:{}", x.major, x.minor))
                .unwrap_or_default();
            resolved.push((id, d));
        }
        if let Some(v2) = &self.v2 {
            if weight {
                write(&v2.join("io.weight"), &format!("default {}", tune.weight))?;
            }
            for (id, d) in &resolved {
                if d.weight != 0 {
                    write(&v2.join("io.weight"), &format!("{id} {}", d.weight))?;
                }
                let v = |n: u64| {
                    if n == 0 {
                        "max".to_owned()
                    } else {
                        n.to_string()
                    }
                };
                write(
                    &v2.join("io.max"),
                    &format!(
                        "{id} rbps={} wbps={} riops={} wiops={}",
                        v(d.read_bytes),
                        v(d.write_bytes),
                        v(u64::from(d.read_iops)),
                        v(u64::from(d.write_iops))
                    ),
                )?;
            }
            return Ok(());
        }
        let Some(dir) = self.dir("blkio") else {
            return Err("blkio cgroup isn't mounted".into());
        };
        if weight {
            let f = self.weight_file(false).ok_or(NO_WEIGHT)?;
            write(&f, &tune.weight.to_string())?;
        }
        for (id, d) in &resolved {
            if d.weight != 0 {
                let f = self.weight_file(true).ok_or(NO_WEIGHT)?;
                write(&f, &format!("{id} {}", d.weight))?;
            }
            for (file, v) in [
                ("blkio.throttle.read_iops_device", u64::from(d.read_iops)),
                ("blkio.throttle.write_iops_device", u64::from(d.write_iops)),
                ("blkio.throttle.read_bps_device", d.read_bytes),
                ("blkio.throttle.write_bps_device", d.write_bytes),
            ] {
                write(&dir.join(file), &format!("{id} {v}"))?;
            }
        }
        Ok(())
    }

    /// Writes the shares, periods and quotas `c` sets (vCPU and I/O thread ids given).
    pub fn set_cpu(&self, c: &Cputune, vcpus: &[u32], iothreads: &[u32]) -> Result<(), String> {
        let Some(dom) = self.cpu_dir() else {
            return Err("cgroup CPU controller is not mounted".into());
        };
        if let Some(s) = c.shares {
            match &self.v2 {
                Some(_) => write(&dom.join("cpu.weight"), &s.to_string())?,
                None => write(&dom.join("cpu.shares"), &s.to_string())?,
            }
        }
        let groups = [
            (
                c.period,
                c.quota,
                vcpus.iter().map(|i| format!("vcpu{i}")).collect(),
            ),
            (
                c.emulator_period,
                c.emulator_quota,
                vec!["emulator".to_owned()],
            ),
            (c.global_period, c.global_quota, vec![String::new()]),
            (
                c.iothread_period,
                c.iothread_quota,
                iothreads
                    .iter()
                    .map(|i| format!("iothread{i}"))
                    .collect::<Vec<_>>(),
            ),
        ];
        for (period, quota, names) in groups {
            if period.is_none() && quota.is_none() {
                continue;
            }
            for n in names {
                let g = if n.is_empty() {
                    dom.clone()
                } else {
                    dom.join(n)
                };
                self.set_bandwidth(&g, period, quota)?;
            }
        }
        Ok(())
    }

    fn cpu_dir(&self) -> Option<PathBuf> {
        match &self.v2 {
            Some(d) => Some(d.clone()),
            None => self.dir("cpu").map(Path::to_path_buf),
        }
    }

    fn set_bandwidth(
        &self,
        g: &Path,
        period: Option<u64>,
        quota: Option<i64>,
    ) -> Result<(), String> {
        if self.v2.is_some() {
            let (_, old_q) = self.bandwidth(g)?;
            let q = quota.unwrap_or(old_q);
            let q = if q < 0 {
                "max".to_owned()
            } else {
                q.to_string()
            };
            let p = match period {
                Some(p) => p,
                None => self.bandwidth(g)?.0,
            };
            return write(&g.join("cpu.max"), &format!("{q} {p}"));
        }
        if let Some(p) = period {
            write(&g.join("cpu.cfs_period_us"), &p.to_string())?;
        }
        if let Some(q) = quota {
            write(&g.join("cpu.cfs_quota_us"), &q.to_string())?;
        }
        Ok(())
    }

    /// (period, quota) of group `g`; quota -1 is none (libvirt reports v2's `max` so too).
    fn bandwidth(&self, g: &Path) -> Result<(u64, i64), String> {
        if self.v2.is_some() {
            let t = read(&g.join("cpu.max"))?;
            let mut f = t.split_whitespace();
            let q = match f.next() {
                Some("max") | None => -1,
                Some(q) => q.parse().unwrap_or(-1),
            };
            let p = f.next().and_then(|p| p.parse().ok()).unwrap_or(100_000);
            return Ok((p, q));
        }
        let p = read_u64(&g.join("cpu.cfs_period_us"))?;
        let q = read(&g.join("cpu.cfs_quota_us"))?;
        Ok((p, q.parse().unwrap_or(-1)))
    }

    /// Writes the memory limits of `m` (unset: none).
    pub fn set_memory(&self, m: &Memtune) -> Result<(), String> {
        let bytes = |k: Option<u64>| match k {
            Some(k) => (k.saturating_mul(1024)).to_string(),
            None => "-1".into(),
        };
        if let Some(d) = &self.v2 {
            let v2 = |k: Option<u64>| match k {
                Some(k) => (k.saturating_mul(1024)).to_string(),
                None => "max".into(),
            };
            write(&d.join("memory.max"), &v2(m.hard_limit_kib))?;
            write(&d.join("memory.high"), &v2(m.soft_limit_kib))?;
            // v2's swap.max is swap alone; libvirt writes the difference
            let swap = match (m.swap_hard_limit_kib, m.hard_limit_kib) {
                (Some(s), Some(h)) => Some(s.saturating_sub(h)),
                (s, _) => s,
            };
            return write(&d.join("memory.swap.max"), &v2(swap));
        }
        let Some(d) = self.dir("memory") else {
            return Err("cgroup memory controller is not mounted".into());
        };
        let memsw = d.join("memory.memsw.limit_in_bytes");
        let has_swap = memsw.exists();
        if m.swap_hard_limit_kib.is_some() && !has_swap {
            return Err("this host's kernel accounts no swap in cgroups (memsw)".into());
        }
        // memsw must stay at least the memory limit: raise it first, lower it last
        if has_swap {
            write(&memsw, "-1")?;
        }
        write(&d.join("memory.limit_in_bytes"), &bytes(m.hard_limit_kib))?;
        write(
            &d.join("memory.soft_limit_in_bytes"),
            &bytes(m.soft_limit_kib),
        )?;
        if has_swap {
            write(&memsw, &bytes(m.swap_hard_limit_kib))?;
        }
        Ok(())
    }

    /// The live values, read back: shares, then each group's period and quota (from the
    /// first vCPU and I/O thread), and the memory limits.
    pub fn read(&self, vcpus: &[u32], iothreads: &[u32]) -> Result<LiveTunables, String> {
        let mut t = LiveTunables::default();
        if let Some(dom) = self.cpu_dir().filter(|d| d.exists()) {
            let c = &mut t.cputune;
            c.shares = Some(match &self.v2 {
                Some(_) => read_u64(&dom.join("cpu.weight"))?,
                None => read_u64(&dom.join("cpu.shares"))?,
            });
            let bw = |name: Option<String>| -> Result<(Option<u64>, Option<i64>), String> {
                match name {
                    None => Ok((Some(0), Some(0))),
                    Some(n) => {
                        let g = if n.is_empty() {
                            dom.clone()
                        } else {
                            dom.join(n)
                        };
                        let (p, q) = self.bandwidth(&g)?;
                        Ok((Some(p), Some(q)))
                    }
                }
            };
            (c.period, c.quota) = bw(vcpus.first().map(|i| format!("vcpu{i}")))?;
            (c.emulator_period, c.emulator_quota) = bw(Some("emulator".into()))?;
            (c.global_period, c.global_quota) = bw(Some(String::new()))?;
            (c.iothread_period, c.iothread_quota) =
                bw(iothreads.first().map(|i| format!("iothread{i}")))?;
        }
        let limit = |f: &str| -> Result<Option<u64>, String> {
            let d = match &self.v2 {
                Some(d) => d.clone(),
                None => match self.dir("memory") {
                    Some(d) => d.to_path_buf(),
                    None => return Ok(None),
                },
            };
            let p = d.join(f);
            if !p.exists() {
                return Ok(None);
            }
            let v = read(&p)?;
            // v1's "no limit" is the largest page-aligned i64
            Ok(v.parse::<u64>()
                .ok()
                .filter(|b| *b < (i64::MAX as u64 & !0xffff))
                .map(|b| b / 1024))
        };
        let m = &mut t.memtune;
        if self.v2.is_some() {
            m.hard_limit_kib = limit("memory.max")?;
            m.soft_limit_kib = limit("memory.high")?;
            m.swap_hard_limit_kib =
                limit("memory.swap.max")?.map(|s| s + m.hard_limit_kib.unwrap_or(0));
        } else {
            m.hard_limit_kib = limit("memory.limit_in_bytes")?;
            m.soft_limit_kib = limit("memory.soft_limit_in_bytes")?;
            m.swap_hard_limit_kib = limit("memory.memsw.limit_in_bytes")?;
        }
        Ok(t)
    }

    /// CPU time from `cpuacct` (v1: per CPU as well) or v2's `cpu.stat` (totals only).
    pub fn cpu_stats(&self, vcpus: &[u32]) -> Result<CpuStats, String> {
        let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .filter(|h| *h > 0)
            .unwrap_or(100) as u64;
        if let Some(d) = &self.v2 {
            let stat = read(&d.join("cpu.stat"))?;
            let get = |k: &str| {
                stat.lines()
                    .find_map(|l| l.strip_prefix(k)?.trim().parse::<u64>().ok())
                    .unwrap_or(0)
                    * 1000
            };
            return Ok(CpuStats {
                per_cpu: Vec::new(),
                total: get("usage_usec"),
                user: get("user_usec"),
                system: get("system_usec"),
            });
        }
        let Some(d) = self.dir("cpuacct") else {
            return Err("cgroup CPUACCT controller is not mounted".into());
        };
        let percpu = |g: &Path| -> Result<Vec<u64>, String> {
            Ok(read(&g.join("cpuacct.usage_percpu"))?
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect())
        };
        let all = percpu(d)?;
        let mut vcpu = vec![0u64; all.len()];
        for i in vcpus {
            for (c, v) in percpu(&d.join(format!("vcpu{i}")))?.into_iter().enumerate() {
                if let Some(s) = vcpu.get_mut(c) {
                    *s += v;
                }
            }
        }
        let stat = read(&d.join("cpuacct.stat"))?;
        let ticks = |k: &str| {
            stat.lines()
                .find_map(|l| l.strip_prefix(k)?.trim().parse::<u64>().ok())
                .unwrap_or(0)
                * (1_000_000_000 / hz)
        };
        Ok(CpuStats {
            per_cpu: all.into_iter().zip(vcpu).collect(),
            total: read_u64(&d.join("cpuacct.usage"))?,
            user: ticks("user"),
            system: ticks("system"),
        })
    }

    /// Removes the v1 child group `name` (`iothread3`) of a thread that is gone, as
    /// libvirt's `virCgroupDelThread` does; a group that never was is no error.
    pub fn remove_thread_group(&self, name: &str) -> Result<(), String> {
        let mut dirs = self.cpu_dirs();
        if let Some(d) = self.dir("cpuset") {
            dirs.push(d);
        }
        for d in dirs {
            let g = d.join(name);
            match std::fs::remove_dir(&g) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(format!("cannot remove {}: {e}", g.display()));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Removes the v1 groups once QEMU is gone (children first).
    pub fn remove(&self) {
        for (_, d) in &self.v1 {
            if let Ok(kids) = std::fs::read_dir(d) {
                for k in kids.flatten() {
                    if k.path().is_dir() {
                        let _ = std::fs::remove_dir(k.path());
                    }
                }
            }
            let _ = std::fs::remove_dir(d);
        }
    }
}

fn ids(threads: &[(u32, i32)]) -> Vec<u32> {
    threads.iter().map(|(i, _)| *i).collect()
}
