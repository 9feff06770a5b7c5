//! Applying `<cputune>` and `<vcpu cpuset>` to a started QEMU: vCPU and I/O thread ids from
//! QMP, each pinned with `sched_setaffinity` and given its scheduler; the other threads are
//! the emulator's. Runs before the guest's first instruction (QEMU is started with `-S`).

use serde_json::Value;

use super::cgroup;
use super::monitor::Vm;
use crate::drivers::{DriverError, DriverResult};
use crate::model::DomainDef;
use crate::model::tuning::{IdSet, Sched, SchedPolicy};

/// Whether anything in `def` needs the running threads.
fn needed(def: &DomainDef) -> bool {
    let t = &def.tuning;
    def.cpuset.is_some()
        || !t.cputune.vcpupin.is_empty()
        || t.cputune.emulatorpin.is_some()
        || t.cputune.emulatorsched.is_some()
        || !t.cputune.vcpusched.is_empty()
        || t.iothreads
            .iter()
            .any(|i| i.pin.is_some() || i.sched.is_some())
        || !t.cputune.bandwidth().is_empty()
}

/// `(index, thread id)` pairs from a QMP answer.
pub(super) fn threads(
    v: &Value,
    key: &str,
    id_of: impl Fn(&Value) -> Option<u32>,
) -> Vec<(u32, i32)> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let id = id_of(e.get(key)?)?;
            let tid = e.get("thread-id")?.as_i64()?;
            Some((id, i32::try_from(tid).ok()?))
        })
        .collect()
}

/// Pins and schedules the threads of `vm`'s QEMU as `def` says.
pub(super) async fn apply(vm: &Vm, def: &DomainDef) -> DriverResult<()> {
    let groups = super::cgtune::Groups::locate(&def.uuid);
    let pid = vm.process.pid();
    // v1 hosts: every guest of the system instance gets its cgroups, as libvirt's do, for
    // the tuning calls (a session instance may not write there, as libvirt's session daemon
    // has no cgroups); a process whose threads cannot be seen (gone already, or the unit
    // tests' stand-in) has none to place
    let place_v1 = groups.has_v1() && nix::unistd::geteuid().is_root() && !tasks(pid).is_empty();
    if !needed(def) && !place_v1 {
        return Ok(());
    }
    let vcpus = threads(
        &vm.command("query-cpus-fast", None).await?,
        "cpu-index",
        |v| v.as_u64().and_then(|n| u32::try_from(n).ok()),
    );
    let iothreads = if def.tuning.iothreads.is_empty() {
        Vec::new()
    } else {
        threads(&vm.command("query-iothreads", None).await?, "id", |v| {
            v.as_str()?.strip_prefix("iothread")?.parse().ok()
        })
    };
    let fail = |what: String, e: String| {
        DriverError::Failed(format!("domain '{}': cannot apply {what}: {e}", vm.name))
    };
    let emulator: Vec<i32> = tasks(pid)
        .into_iter()
        .filter(|t| !vcpus.iter().chain(&iothreads).any(|(_, v)| v == t))
        .collect();
    // v1: into the cgroups first, as joining a cpuset resets a thread's affinity
    if place_v1 {
        groups
            .place(def, pid, &vcpus, &iothreads, &emulator)
            .map_err(|e| fail("its cgroups".into(), e))?;
    }
    let c = &def.tuning.cputune;
    let default_set = def.cpuset.as_deref().and_then(|s| IdSet::parse(s).ok());
    for (i, tid) in &vcpus {
        let (set, what) = match c.vcpupin.get(i) {
            Some(s) => (Some(s), format!("<cputune><vcpupin vcpu='{i}'>")),
            None => (default_set.as_ref(), "<vcpu cpuset>".to_owned()),
        };
        if let Some(set) = set {
            set_affinity(*tid, set).map_err(|e| fail(what, e))?;
        }
        if let Some(s) = c.vcpusched.get(i) {
            set_scheduler(*tid, s)
                .map_err(|e| fail(format!("<cputune><vcpusched vcpus='{i}'>"), e))?;
        }
    }
    for (id, tid) in &iothreads {
        let t = def.tuning.iothreads.iter().find(|t| t.id == *id);
        let (set, what) = match t.and_then(|t| t.pin.as_ref()) {
            Some(s) => (Some(s), format!("<cputune><iothreadpin iothread='{id}'>")),
            None => (default_set.as_ref(), "<vcpu cpuset>".to_owned()),
        };
        if let Some(set) = set {
            set_affinity(*tid, set).map_err(|e| fail(what, e))?;
        }
        if let Some(s) = t.and_then(|t| t.sched.as_ref()) {
            set_scheduler(*tid, s)
                .map_err(|e| fail(format!("<cputune><iothreadsched iothreads='{id}'>"), e))?;
        }
    }
    let (set, what) = match &c.emulatorpin {
        Some(s) => (Some(s), "<cputune><emulatorpin>".to_owned()),
        None => (default_set.as_ref(), "<vcpu cpuset>".to_owned()),
    };
    for tid in &emulator {
        if let Some(set) = set {
            set_affinity(*tid, set).map_err(|e| fail(what.clone(), e))?;
        }
        if let Some(s) = &c.emulatorsched {
            set_scheduler(*tid, s).map_err(|e| fail("<cputune><emulatorsched>".into(), e))?;
        }
    }
    if groups.has_v1() {
        // placed above
    } else if let Some(root) = cgroup::cpu_hierarchy() {
        cgroup::apply(&root, def, pid, &vcpus, &iothreads, &emulator)
            .map_err(|e| fail("<cputune> CPU bandwidth".into(), e))?;
    } else if let Some((name, _)) = c.bandwidth().first() {
        return Err(DriverError::NotSupported(format!(
            "domain '{}': <cputune><{name}> needs a cgroup v2 hierarchy with the cpu controller",
            vm.name
        )));
    }
    Ok(())
}

/// The thread ids of process `pid`.
pub fn tasks(pid: i32) -> Vec<i32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

pub(super) fn set_affinity(tid: i32, set: &IdSet) -> Result<(), String> {
    use nix::sched::{CpuSet, sched_setaffinity};
    use nix::unistd::Pid;
    let mut cpus = CpuSet::new();
    for c in set.iter() {
        cpus.set(c as usize)
            .map_err(|e| format!("host CPU {c} is out of range: {e}"))?;
    }
    sched_setaffinity(Pid::from_raw(tid), &cpus)
        .map_err(|e| format!("sched_setaffinity(CPUs {set}) on thread {tid}: {e}"))
}

fn set_scheduler(tid: i32, s: &Sched) -> Result<(), String> {
    let policy = match s.policy {
        SchedPolicy::Batch => libc::SCHED_BATCH,
        SchedPolicy::Idle => libc::SCHED_IDLE,
        SchedPolicy::Fifo => libc::SCHED_FIFO,
        SchedPolicy::Rr => libc::SCHED_RR,
    };
    let param = libc::sched_param {
        // the kernel's real-time range is 1..=99; libvirt coerces 0 up likewise
        sched_priority: match s.policy {
            SchedPolicy::Fifo | SchedPolicy::Rr => s.priority.map_or(1, |p| p.max(1) as i32),
            SchedPolicy::Batch | SchedPolicy::Idle => 0,
        },
    };
    // SAFETY: `param` is a valid sched_param that outlives the call.
    let rc = unsafe { libc::sched_setscheduler(tid, policy, &param) };
    if rc == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    let hint = if s.policy.realtime() {
        " (real-time scheduling is not permitted here: it needs CAP_SYS_NICE or RLIMIT_RTPRIO, \
         and real-time runtime in this cgroup)"
    } else {
        ""
    };
    Err(format!(
        "scheduler '{}' on thread {tid}: {err}{hint}",
        s.policy.as_str()
    ))
}
