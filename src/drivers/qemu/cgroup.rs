//! CPU bandwidth (`<cputune>` shares, period and quota) through cgroup v2's cpu controller.
//!
//! The guest's QEMU goes into `virtbus/<uuid>` below the hierarchy's root, with threaded
//! children `vcpuN`, `iothreadN` and `emulator` when per-thread bandwidth is set, as libvirt
//! lays out its machine cgroups. Without a v2 hierarchy offering the cpu controller the start
//! is refused beforehand (see `cmdline::tuning`), so nothing here runs half-way on such hosts.

use std::path::{Path, PathBuf};

use crate::model::DomainDef;

/// The root of a writable cgroup v2 hierarchy that offers the cpu controller.
pub fn cpu_hierarchy() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    let root = mounts.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() > 3 && f[2] == "cgroup2" && f[3].split(',').any(|o| o == "rw"))
            .then(|| PathBuf::from(f[1]))
    })?;
    let controllers = std::fs::read_to_string(root.join("cgroup.controllers")).ok()?;
    controllers
        .split_whitespace()
        .any(|c| c == "cpu")
        .then_some(root)
}

fn cpu_max(quota: Option<i64>, period: Option<u64>) -> Option<String> {
    if quota.is_none() && period.is_none() {
        return None;
    }
    let q = match quota {
        None | Some(-1) => "max".to_owned(),
        Some(q) => q.to_string(),
    };
    Some(format!("{q} {}", period.unwrap_or(100_000)))
}

fn write(path: &Path, value: &str) -> Result<(), String> {
    std::fs::write(path, value)
        .map_err(|e| format!("cannot write '{value}' to {}: {e}", path.display()))
}

fn enable_cpu(dir: &Path) -> Result<(), String> {
    write(&dir.join("cgroup.subtree_control"), "+cpu")
}

/// The guest's cgroup directory.
pub fn domain_dir(root: &Path, def: &DomainDef) -> PathBuf {
    root.join("virtbus").join(def.uuid.simple().to_string())
}

/// Moves QEMU `pid` into its cgroup and sets the bandwidth `def` asks for; `vcpus` and
/// `iothreads` are (id, thread id) pairs, `emulator` the other threads.
pub fn apply(
    root: &Path,
    def: &DomainDef,
    pid: i32,
    vcpus: &[(u32, i32)],
    iothreads: &[(u32, i32)],
    emulator: &[i32],
) -> Result<(), String> {
    let c = &def.tuning.cputune;
    if c.bandwidth().is_empty() {
        return Ok(());
    }
    let base = root.join("virtbus");
    std::fs::create_dir_all(&base).map_err(|e| format!("cannot create {}: {e}", base.display()))?;
    enable_cpu(root)?;
    enable_cpu(&base)?;
    let dom = domain_dir(root, def);
    std::fs::create_dir_all(&dom).map_err(|e| format!("cannot create {}: {e}", dom.display()))?;
    write(&dom.join("cgroup.procs"), &pid.to_string())?;
    if let Some(s) = c.shares {
        // libvirt 9.0 writes the shares value as the weight, unconverted; so does the live path
        write(&dom.join("cpu.weight"), &s.to_string())?;
    }
    if let Some(v) = cpu_max(c.global_quota, c.global_period) {
        write(&dom.join("cpu.max"), &v)?;
    }
    let per_thread = [
        (cpu_max(c.quota, c.period), "vcpu", vcpus),
        (
            cpu_max(c.iothread_quota, c.iothread_period),
            "iothread",
            iothreads,
        ),
    ];
    let emulator_max = cpu_max(c.emulator_quota, c.emulator_period);
    if per_thread.iter().all(|(m, _, _)| m.is_none()) && emulator_max.is_none() {
        return Ok(());
    }
    // threads of one process in several cgroups: threaded children
    enable_cpu(&dom)?;
    let group = |name: String, max: Option<&str>, tids: &[i32]| -> Result<(), String> {
        let g = dom.join(name);
        std::fs::create_dir_all(&g).map_err(|e| format!("cannot create {}: {e}", g.display()))?;
        write(&g.join("cgroup.type"), "threaded")?;
        for t in tids {
            write(&g.join("cgroup.threads"), &t.to_string())?;
        }
        if let Some(m) = max {
            write(&g.join("cpu.max"), m)?;
        }
        Ok(())
    };
    for (max, prefix, threads) in &per_thread {
        for (id, tid) in threads.iter() {
            group(format!("{prefix}{id}"), max.as_deref(), &[*tid])?;
        }
    }
    group("emulator".into(), emulator_max.as_deref(), emulator)
}

/// Removes the guest's cgroup after QEMU is gone (its threaded children first).
pub fn remove(def: &DomainDef) {
    let Some(root) = cpu_hierarchy() else {
        return;
    };
    let dom = domain_dir(&root, def);
    if let Ok(kids) = std::fs::read_dir(&dom) {
        for k in kids.flatten() {
            if k.path().is_dir() {
                let _ = std::fs::remove_dir(k.path());
            }
        }
    }
    let _ = std::fs::remove_dir(&dom);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_max_as_libvirt_writes_it() {
        assert_eq!(cpu_max(Some(-1), Some(1000)), Some("max 1000".into()));
        assert_eq!(cpu_max(Some(5000), None), Some("5000 100000".into()));
        assert_eq!(cpu_max(None, None), None);
    }
}
