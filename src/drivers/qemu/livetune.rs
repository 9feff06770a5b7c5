//! Tuning a running QEMU: CPU bandwidth and memory limits through its cgroups
//! ([`super::cgtune`]), vCPU and emulator pinning with `sched_setaffinity` on the threads
//! QMP names, and CPU time read back, as libvirt's QEMU driver does for the same calls.

use super::{cgtune::Groups, monitor::Vm, pinning};
use crate::drivers::{CpuStats, DriverError, DriverResult, LiveTunables, TuneGroup};
use crate::model::{DomainDef, tuning::NumaMode};

/// (vCPU index, thread id) of each vCPU QEMU runs.
async fn vcpu_threads(vm: &Vm) -> DriverResult<Vec<(u32, i32)>> {
    let v = vm.command("query-cpus-fast", None).await?;
    Ok(pinning::threads(&v, "cpu-index", |v| {
        v.as_u64().and_then(|n| u32::try_from(n).ok())
    }))
}

/// (I/O thread id, thread id) of each I/O thread.
pub(super) async fn iothread_threads(vm: &Vm) -> DriverResult<Vec<(u32, i32)>> {
    let v = vm.command("query-iothreads", None).await?;
    Ok(pinning::threads(&v, "id", |v| {
        v.as_str()?.strip_prefix("iothread")?.parse().ok()
    }))
}

fn ids(def: &DomainDef) -> (Vec<u32>, Vec<u32>) {
    (
        (0..def.vcpus()).collect(),
        def.tuning.iothreads.iter().map(|t| t.id).collect(),
    )
}

fn failed(vm: &Vm, e: String) -> DriverError {
    DriverError::Failed(format!("domain '{}': {e}", vm.name))
}

/// Applies `group` of the new live definition `live` to `vm`, whose own copy of the live
/// definition then has the new tunables.
pub(super) async fn apply(vm: &Vm, live: &DomainDef, group: TuneGroup) -> DriverResult<()> {
    apply_group(vm, live, group).await?;
    crate::util::lock(&vm.live).tuning = live.tuning.clone();
    Ok(())
}

async fn apply_group(vm: &Vm, live: &DomainDef, group: TuneGroup) -> DriverResult<()> {
    let groups = Groups::locate(&live.uuid);
    match group {
        TuneGroup::Scheduler => {
            if !groups.has_cpu() {
                return Err(DriverError::InvalidState(
                    "cgroup CPU controller is not mounted".into(),
                ));
            }
            let (v, i) = ids(live);
            groups
                .set_cpu(&live.tuning.cputune, &v, &i)
                .map_err(|e| failed(vm, e))
        }
        TuneGroup::Memory => {
            if !groups.has_memory() {
                return Err(DriverError::InvalidState(
                    "cgroup memory controller is not mounted".into(),
                ));
            }
            groups
                .set_memory(&live.tuning.memtune)
                .map_err(|e| failed(vm, e))
        }
        TuneGroup::Blkio { weight } => {
            if !groups.v1_blkio() && !groups.has_cpu() {
                return Err(DriverError::InvalidState(
                    "blkio cgroup isn't mounted".into(),
                ));
            }
            groups
                .set_blkio(&live.tuning.blkiotune, weight)
                .map_err(|e| {
                    if e.contains("must be a block device") || e.contains("bfq or cfq") {
                        DriverError::InvalidState(e)
                    } else {
                        failed(vm, e)
                    }
                })
        }
        TuneGroup::Numa => {
            let Some(set) = live
                .tuning
                .numatune
                .as_ref()
                .and_then(|n| n.memory.as_ref())
                .and_then(|m| m.nodeset.as_ref())
            else {
                return Ok(());
            };
            // libvirt's QEMU driver: a running guest's nodes change in restrictive mode only
            // (or while it has no <numatune>)
            let old = vm.live();
            if old
                .tuning
                .numatune
                .as_ref()
                .and_then(|n| n.memory.as_ref())
                .is_some_and(|m| m.mode != NumaMode::Restrictive)
            {
                return Err(DriverError::InvalidState(
                    "change of nodeset for running domain requires restrictive numa mode".into(),
                ));
            }
            if !groups.has_cpuset() {
                return Err(DriverError::InvalidState(
                    "cgroup cpuset controller is not mounted".into(),
                ));
            }
            if let Some(n) = set.iter().find(|n| {
                !std::path::Path::new(&format!("/sys/devices/system/node/node{n}")).exists()
            }) {
                return Err(DriverError::InvalidArgument(format!(
                    "NUMA node {n} is unavailable"
                )));
            }
            let (v, i) = ids(live);
            groups
                .set_mems(&set.to_string(), &v, &i)
                .map_err(|e| failed(vm, e))
        }
        TuneGroup::VcpuPin(n) => {
            let Some(set) = live.tuning.cputune.vcpupin.get(&n) else {
                return Ok(());
            };
            let threads = vcpu_threads(vm).await?;
            let Some((_, tid)) = threads.iter().find(|(i, _)| *i == n) else {
                return Err(DriverError::InvalidArgument(format!(
                    "failed to get vcpu thread for vcpu {n}"
                )));
            };
            pinning::set_affinity(*tid, set).map_err(|e| failed(vm, e))
        }
        TuneGroup::IoThreadPin(id) => {
            let Some(set) = live
                .tuning
                .iothreads
                .iter()
                .find(|t| t.id == id)
                .and_then(|t| t.pin.as_ref())
            else {
                return Ok(());
            };
            let threads = iothread_threads(vm).await?;
            let Some((_, tid)) = threads.iter().find(|(i, _)| *i == id) else {
                return Err(DriverError::InvalidArgument(format!(
                    "failed to get thread id of iothread {id}"
                )));
            };
            pinning::set_affinity(*tid, set).map_err(|e| failed(vm, e))
        }
        TuneGroup::EmulatorPin => {
            let Some(set) = &live.tuning.cputune.emulatorpin else {
                return Ok(());
            };
            let mut others = vcpu_threads(vm).await?;
            if !live.tuning.iothreads.is_empty() {
                others.extend(iothread_threads(vm).await?);
            }
            for tid in pinning::tasks(vm.process.pid()) {
                if !others.iter().any(|(_, t)| *t == tid) {
                    pinning::set_affinity(tid, set).map_err(|e| failed(vm, e))?;
                }
            }
            Ok(())
        }
        TuneGroup::Bandwidth { mac } => {
            let Some(iface) = live.devices.interfaces.iter().find(|i| i.mac == mac) else {
                return Ok(());
            };
            let Some(tap) = iface.target_dev.clone() else {
                // libvirt's words for an interface without a host device
                return Err(DriverError::NotSupported(
                    "Unable to set bandwidth for interface because device name is unknown".into(),
                ));
            };
            let bw = iface.bandwidth;
            tokio::task::spawn_blocking(move || super::bandwidth::apply(&tap, bw.as_ref()))
                .await
                .map_err(|e| failed(vm, e.to_string()))?
                .map_err(DriverError::Failed)?;
            if let Some(i) = crate::util::lock(&vm.live)
                .devices
                .interfaces
                .iter_mut()
                .find(|i| i.mac == mac)
            {
                i.bandwidth = bw;
            }
            Ok(())
        }
    }
}

/// The bandwidth and memory limits as the guest's cgroups hold them.
pub(super) fn read(vm: &Vm, live: &DomainDef) -> DriverResult<Option<LiveTunables>> {
    let groups = Groups::locate(&live.uuid);
    if !groups.has_cpu() {
        return Err(DriverError::InvalidState(
            "cgroup CPU controller is not mounted".into(),
        ));
    }
    let (v, i) = ids(live);
    let mut t = groups.read(&v, &i).map_err(|e| failed(vm, e))?;
    t.blkio_weight = groups.blkio_weight();
    Ok(Some(t))
}

/// CPU time from the guest's cgroups.
pub(super) fn cpu_stats(vm: &Vm, live: &DomainDef) -> DriverResult<CpuStats> {
    let (v, _) = ids(live);
    Groups::locate(&live.uuid)
        .cpu_stats(&v)
        .map_err(|e| DriverError::InvalidState(format!("domain '{}': {e}", vm.name)))
}
