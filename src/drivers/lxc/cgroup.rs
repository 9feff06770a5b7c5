//! A container's cgroups: one directory per mounted hierarchy (cgroup v2 where mounted,
//! and the v1 controllers beside it on hybrid hosts), `<partition>/<name>.virtbus-lxc` as
//! libvirt lays out `<name>.libvirt-lxc` without systemd. Limits go where their controller
//! is; freezing and killing use v2's `cgroup.freeze`/`cgroup.kill` when there is a v2
//! hierarchy (they need no controller), v1's freezer otherwise.

use std::{
    io,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

/// Where a container's cgroup directories are, found once at start and recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cgroups {
    /// The v2 (unified) directory, if a v2 hierarchy is mounted, and that hierarchy's root.
    pub v2: Option<PathBuf>,
    pub v2_root: Option<PathBuf>,
    /// Controllers the v2 hierarchy offers to the directory (`memory`, `cpu`, ...).
    pub v2_controllers: Vec<String>,
    /// v1 directories by controller (`memory`, `cpu`, `cpuacct`, `freezer`, `pids`, `blkio`).
    pub v1: Vec<(String, PathBuf)>,
}

/// The v1 controllers a container is put under (when mounted).
const V1: &[&str] = &["memory", "cpu", "cpuacct", "freezer", "pids", "blkio"];

/// Resource limits, from the definition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// `<memtune><hard_limit>`, else `<memory>`.
    pub memory_bytes: Option<u64>,
    /// `<memtune><soft_limit>`.
    #[serde(default)]
    pub memory_soft_bytes: Option<u64>,
    /// `<memtune><swap_hard_limit>`: memory and swap together, as v1's `memsw`.
    #[serde(default)]
    pub memory_swap_bytes: Option<u64>,
    pub cpu_shares: Option<u64>,
    pub cpu_period: Option<u64>,
    pub cpu_quota: Option<i64>,
    /// `<blkiotune>`.
    #[serde(default)]
    pub blkio: super::blkio::Blkio,
}

fn cg_err(path: &Path, e: io::Error) -> String {
    format!("{}: {e}", path.display())
}

fn write(path: &Path, value: &str) -> Result<(), String> {
    std::fs::write(path, value)
        .map_err(|e| format!("cannot write '{value}' to {}: {e}", path.display()))
}

/// The cgroup mounts of this host: (v2 root, [(v1 controller, root)]).
fn mounts() -> (Option<PathBuf>, Vec<(String, PathBuf)>) {
    let text = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut v2 = None;
    let mut v1 = Vec::new();
    for l in text.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 4 || !f[3].split(',').any(|o| o == "rw") {
            continue;
        }
        match f[2] {
            "cgroup2" if v2.is_none() => v2 = Some(PathBuf::from(f[1])),
            "cgroup" => {
                for o in f[3].split(',') {
                    if V1.contains(&o) && !v1.iter().any(|(c, _)| c == o) {
                        v1.push((o.to_owned(), PathBuf::from(f[1])));
                    }
                }
            }
            _ => {}
        }
    }
    (v2, v1)
}

impl Cgroups {
    /// The directories for a container named `name` in `partition` (e.g. `/machine`).
    pub fn locate(partition: &str, name: &str) -> Cgroups {
        let rel =
            PathBuf::from(partition.trim_start_matches('/')).join(format!("{name}.virtbus-lxc"));
        let (v2, v1) = mounts();
        let v2_controllers = v2
            .as_ref()
            .and_then(|r| std::fs::read_to_string(r.join("cgroup.controllers")).ok())
            .map(|s| s.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        Cgroups {
            v2: v2.as_ref().map(|r| r.join(&rel)),
            v2_root: v2,
            v2_controllers,
            v1: v1.into_iter().map(|(c, r)| (c, r.join(&rel))).collect(),
        }
    }

    fn v1(&self, controller: &str) -> Option<&Path> {
        self.v1
            .iter()
            .find(|(c, _)| c == controller)
            .map(|(_, p)| p.as_path())
    }

    fn v2_has(&self, controller: &str) -> bool {
        self.v2_controllers.iter().any(|c| c == controller)
    }

    /// The v1 directory of `controller`, when that controller is mounted.
    pub(super) fn v1_dir(&self, controller: &str) -> Option<&Path> {
        self.v1(controller)
    }

    pub(super) fn v2_dir(&self) -> Option<&Path> {
        self.v2.as_deref()
    }

    pub(super) fn v2_offers(&self, controller: &str) -> bool {
        self.v2_has(controller)
    }

    fn all_dirs(&self) -> impl Iterator<Item = &Path> {
        self.v2
            .iter()
            .map(PathBuf::as_path)
            .chain(self.v1.iter().map(|(_, p)| p.as_path()))
    }

    /// Whether the limits can be applied on this host; the error names what cannot.
    pub fn check(&self, limits: &Limits) -> Result<(), String> {
        let memory = limits.memory_bytes.is_some()
            || limits.memory_soft_bytes.is_some()
            || limits.memory_swap_bytes.is_some();
        if memory && self.v1("memory").is_none() && !self.v2_has("memory") {
            return Err(
                "no cgroup hierarchy offers the memory controller (<memory>, <memtune>)".into(),
            );
        }
        let cpu = limits.cpu_shares.is_some()
            || limits.cpu_period.is_some()
            || limits.cpu_quota.is_some();
        if cpu && self.v1("cpu").is_none() && !self.v2_has("cpu") {
            return Err("no cgroup hierarchy offers the cpu controller (<cputune>)".into());
        }
        limits.blkio.check(self)
    }

    /// Create the directories (a stale one of an earlier container goes first) and set
    /// the limits.
    pub fn create(&self, limits: &Limits) -> Result<(), String> {
        self.remove();
        if let (Some(v2), Some(root)) = (&self.v2, &self.v2_root) {
            // the controllers the limits need must be enabled down to the container
            let wanted: Vec<&str> = [("memory", "memory"), ("cpu", "cpu"), ("io", "blkio")]
                .into_iter()
                .filter(|(v2, v1)| self.v2_has(v2) && self.v1(v1).is_none())
                .map(|(v2, _)| v2)
                .collect();
            create_v2(root, v2, &wanted)?;
        }
        for (_, d) in &self.v1 {
            std::fs::create_dir_all(d).map_err(|e| cg_err(d, e))?;
        }
        self.apply(limits)
    }

    fn apply(&self, l: &Limits) -> Result<(), String> {
        match (self.v1("memory"), &self.v2) {
            (Some(d), _) => {
                // the limit before memory+swap, which may never be below it
                if let Some(m) = l.memory_bytes {
                    write(&d.join("memory.limit_in_bytes"), &m.to_string())?;
                }
                if let Some(m) = l.memory_soft_bytes {
                    write(&d.join("memory.soft_limit_in_bytes"), &m.to_string())?;
                }
                if let Some(m) = l.memory_swap_bytes {
                    let f = d.join("memory.memsw.limit_in_bytes");
                    if !f.exists() {
                        return Err(format!(
                            "<memtune><swap_hard_limit>: this kernel keeps no swap accounts \
                             ({} is missing)",
                            f.display()
                        ));
                    }
                    write(&f, &m.to_string())?;
                }
            }
            (None, Some(d)) => {
                if let Some(m) = l.memory_bytes {
                    write(&d.join("memory.max"), &m.to_string())?;
                }
                if let Some(m) = l.memory_soft_bytes {
                    write(&d.join("memory.high"), &m.to_string())?;
                }
                if let Some(m) = l.memory_swap_bytes {
                    // v2 limits swap alone
                    let swap = m.saturating_sub(l.memory_bytes.unwrap_or(0));
                    write(&d.join("memory.swap.max"), &swap.to_string())?;
                }
            }
            (None, None) => {}
        }
        let (period, quota) = (l.cpu_period, l.cpu_quota);
        match (self.v1("cpu"), &self.v2) {
            (Some(d), _) => {
                if let Some(s) = l.cpu_shares {
                    write(&d.join("cpu.shares"), &s.to_string())?;
                }
                if let Some(p) = period {
                    write(&d.join("cpu.cfs_period_us"), &p.to_string())?;
                }
                if let Some(q) = quota {
                    write(&d.join("cpu.cfs_quota_us"), &q.to_string())?;
                }
            }
            (None, Some(d)) => {
                if let Some(s) = l.cpu_shares {
                    // unconverted, as libvirt 9.0 writes it
                    write(&d.join("cpu.weight"), &s.to_string())?;
                }
                if period.is_some() || quota.is_some() {
                    let q = match quota {
                        None | Some(-1) => "max".to_owned(),
                        Some(q) => q.to_string(),
                    };
                    write(
                        &d.join("cpu.max"),
                        &format!("{q} {}", period.unwrap_or(100_000)),
                    )?;
                }
            }
            (None, None) => {}
        }
        l.blkio.apply(self)
    }

    /// Limit the container's memory to `bytes` (libvirt's live `setmem` on a container:
    /// v1's `memory.limit_in_bytes`, v2's `memory.max`).
    pub fn set_memory_limit(&self, bytes: u64) -> Result<(), String> {
        match (self.v1("memory"), &self.v2) {
            (Some(d), _) => write(&d.join("memory.limit_in_bytes"), &bytes.to_string()),
            (None, Some(d)) => write(&d.join("memory.max"), &bytes.to_string()),
            (None, None) => Err("no memory cgroup controller is mounted".into()),
        }
    }

    /// Put process `pid` into every directory.
    pub fn join(&self, pid: i32) -> Result<(), String> {
        for d in self.all_dirs() {
            write(&d.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// The processes in the container (host pids).
    pub fn procs(&self) -> Vec<i32> {
        let Some(d) = self
            .v2
            .as_deref()
            .or_else(|| self.v1("freezer"))
            .or_else(|| self.v1("pids"))
        else {
            return Vec::new();
        };
        std::fs::read_to_string(d.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Freeze (or thaw) every process, waiting until the kernel says it is done.
    pub fn freeze(&self, frozen: bool) -> Result<(), String> {
        if let Some(d) = &self.v2 {
            write(&d.join("cgroup.freeze"), if frozen { "1" } else { "0" })?;
            let want = if frozen { "frozen 1" } else { "frozen 0" };
            return wait_until(Duration::from_secs(5), || {
                std::fs::read_to_string(d.join("cgroup.events"))
                    .is_ok_and(|s| s.lines().any(|l| l == want))
            })
            .ok_or_else(|| format!("{}: the freezer did not settle", d.display()));
        }
        let Some(d) = self.v1("freezer") else {
            return Err("no cgroup freezer is mounted on this host".into());
        };
        let state = if frozen { "FROZEN" } else { "THAWED" };
        write(&d.join("freezer.state"), state)?;
        wait_until(Duration::from_secs(5), || {
            std::fs::read_to_string(d.join("freezer.state")).is_ok_and(|s| s.trim() == state)
        })
        .ok_or_else(|| format!("{}: the freezer did not reach {state}", d.display()))
    }

    /// Whether the container is frozen now.
    pub fn frozen(&self) -> bool {
        if let Some(d) = &self.v2 {
            return std::fs::read_to_string(d.join("cgroup.events"))
                .is_ok_and(|s| s.lines().any(|l| l == "frozen 1"));
        }
        self.v1("freezer").is_some_and(|d| {
            std::fs::read_to_string(d.join("freezer.state")).is_ok_and(|s| s.trim() == "FROZEN")
        })
    }

    /// SIGKILL every process of the container, including ones that left its PID namespace's
    /// reach (`cgroup.kill` where there is one); frozen processes die too.
    pub fn kill_all(&self) {
        if let Some(d) = &self.v2
            && std::fs::write(d.join("cgroup.kill"), "1").is_ok()
        {
            return;
        }
        for pid in self.procs() {
            // SAFETY: a plain syscall; a vanished pid is harmless (ESRCH).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = self.freeze(false);
    }

    /// Remove the directories (empty ones only: the kernel refuses others).
    pub fn remove(&self) {
        for d in self.all_dirs() {
            let _ = std::fs::remove_dir(d);
        }
    }

    /// Consumed CPU time in nanoseconds, and (user, system) when known.
    pub fn cpu_time(&self) -> Option<(u64, Option<(u64, u64)>)> {
        if let Some(d) = self.v1("cpuacct") {
            let total = read_u64(&d.join("cpuacct.usage"))?;
            let tick = crate::drivers::qemu::stats::tick_ns();
            let split = std::fs::read_to_string(d.join("cpuacct.stat"))
                .ok()
                .and_then(|s| {
                    let get = |k: &str| {
                        s.lines()
                            .find_map(|l| l.strip_prefix(k)?.trim().parse::<u64>().ok())
                    };
                    Some((get("user ")? * tick, get("system ")? * tick))
                });
            return Some((total, split));
        }
        let s = std::fs::read_to_string(self.v2.as_ref()?.join("cpu.stat")).ok()?;
        let get = |k: &str| {
            s.lines()
                .find_map(|l| l.strip_prefix(k)?.trim().parse::<u64>().ok())
        };
        Some((
            get("usage_usec ")? * 1000,
            Some((get("user_usec ")? * 1000, get("system_usec ")? * 1000)),
        ))
    }

    /// Memory in use, in bytes.
    pub fn memory_usage(&self) -> Option<u64> {
        if let Some(d) = self.v1("memory") {
            return read_u64(&d.join("memory.usage_in_bytes"));
        }
        read_u64(&self.v2.as_ref()?.join("memory.current"))
    }

    /// The memory limit in force, in bytes.
    pub fn memory_limit(&self) -> Option<u64> {
        if let Some(d) = self.v1("memory") {
            return read_u64(&d.join("memory.limit_in_bytes"));
        }
        read_u64(&self.v2.as_ref()?.join("memory.max"))
    }

    /// Bytes read and written by the container's processes (v1 blkio or v2 io).
    pub fn block_io(&self) -> Option<(u64, u64)> {
        if let Some(d) = self.v1("blkio") {
            let s = std::fs::read_to_string(d.join("blkio.throttle.io_service_bytes")).ok()?;
            let (mut r, mut w) = (0, 0);
            for l in s.lines() {
                let f: Vec<&str> = l.split_whitespace().collect();
                if f.len() == 3 {
                    let n: u64 = f[2].parse().unwrap_or(0);
                    match f[1] {
                        "Read" => r += n,
                        "Write" => w += n,
                        _ => {}
                    }
                }
            }
            return Some((r, w));
        }
        let s = std::fs::read_to_string(self.v2.as_ref()?.join("io.stat")).ok()?;
        let (mut r, mut w) = (0, 0);
        for tok in s.split_whitespace() {
            if let Some(v) = tok.strip_prefix("rbytes=") {
                r += v.parse::<u64>().unwrap_or(0);
            } else if let Some(v) = tok.strip_prefix("wbytes=") {
                w += v.parse::<u64>().unwrap_or(0);
            }
        }
        Some((r, w))
    }
}

/// Enable `controllers` from the hierarchy's `root` down to `dir`'s parent, then create it.
fn create_v2(root: &Path, dir: &Path, controllers: &[&str]) -> Result<(), String> {
    let mut ancestors: Vec<&Path> = dir
        .ancestors()
        .skip(1)
        .take_while(|a| a.starts_with(root))
        .collect();
    ancestors.reverse();
    for a in ancestors {
        if !a.join("cgroup.controllers").exists() {
            std::fs::create_dir(a).map_err(|e| cg_err(a, e))?;
        }
        for c in controllers {
            write(&a.join("cgroup.subtree_control"), &format!("+{c}"))?;
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| cg_err(dir, e))
}

fn read_u64(p: &Path) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// Poll `done` every millisecond until it holds or `limit` passes.
fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> Option<()> {
    let t = Instant::now();
    loop {
        if done() {
            return Some(());
        }
        if t.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
