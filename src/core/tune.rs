//! A domain's tunables: CPU shares and bandwidth (`<cputune>`), memory limits
//! (`<memtune>`), vCPU and emulator pinning, and the CPU time it used, read from and applied
//! to the running guest (through its driver) and the persistent definition, as libvirt's
//! `AFFECT_*` flags say. Live changes raise a tunable event with what changed, as libvirt's.

use std::sync::Arc;

use super::{
    Core, Domain, Error, Result, blocking, events::Event, events::lock, host, ops::Operation,
    options::Affect,
};
use crate::{
    drivers::{CpuStats, LiveTunables, TuneGroup},
    model::{
        DomainDef,
        blkiotune::{BlkioDevice, Blkiotune},
        memtune::Memtune,
        tuning::{Cputune, IdSet, NumaMemory, NumaMode, NumaPlacement, Numatune},
    },
};

/// A value of a tunable event parameter, with libvirt's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TunableValue {
    Int(i32),
    ULLong(u64),
    LLong(i64),
    Str(String),
}

/// The tunable event's parameters (libvirt's `cputune.*` names).
pub type Tunables = Vec<(String, TunableValue)>;

/// libvirt's bounds (`VIR_CGROUP_CPU_*`).
const SHARES: (u64, u64) = (2, 262_144);
const PERIOD: (u64, u64) = (1000, 1_000_000);
const QUOTA: (i64, i64) = (1000, 17_592_186_044_415);

/// CPU shares, periods and quotas to set (`None`: unchanged); libvirt's 0 period or quota
/// leaves the running guest's as it is and clears the persistent one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchedulerChange {
    pub shares: Option<u64>,
    pub vcpu: (Option<u64>, Option<i64>),
    pub emulator: (Option<u64>, Option<i64>),
    pub global: (Option<u64>, Option<i64>),
    pub iothread: (Option<u64>, Option<i64>),
}

impl SchedulerChange {
    /// libvirt's range checks, with its wording.
    pub fn validate(&self) -> Result<()> {
        let pairs = [
            ("vcpu", self.vcpu),
            ("emulator", self.emulator),
            ("global", self.global),
            ("iothread", self.iothread),
        ];
        for (name, (p, q)) in pairs {
            if let Some(p) = p
                && ((p > 0 && p < PERIOD.0) || p > PERIOD.1)
            {
                return Err(Error::InvalidArgument(format!(
                    "value of '{name}_period' is out of range [{}, {}]",
                    PERIOD.0, PERIOD.1
                )));
            }
            if let Some(q) = q
                && ((q > 0 && q < QUOTA.0) || q > QUOTA.1)
            {
                return Err(Error::InvalidArgument(format!(
                    "value of '{name}_quota' is out of range [{}, {}]",
                    QUOTA.0, QUOTA.1
                )));
            }
        }
        Ok(())
    }

    /// Apply to `c`; `live` skips libvirt's "leave as is" zeros. Returns the event's
    /// parameters for what was set.
    fn apply(&self, c: &mut Cputune, live: bool) -> Tunables {
        let mut ev = Vec::new();
        if let Some(s) = self.shares {
            c.shares = Some(s);
            ev.push(("cputune.cpu_shares".into(), TunableValue::ULLong(s)));
        }
        let groups = [
            ("vcpu", self.vcpu, &mut c.period, &mut c.quota),
            (
                "emulator",
                self.emulator,
                &mut c.emulator_period,
                &mut c.emulator_quota,
            ),
            (
                "global",
                self.global,
                &mut c.global_period,
                &mut c.global_quota,
            ),
            (
                "iothread",
                self.iothread,
                &mut c.iothread_period,
                &mut c.iothread_quota,
            ),
        ];
        for (name, (p, q), cp, cq) in groups {
            match p {
                Some(0) if live => {}
                Some(p) => {
                    *cp = Some(p).filter(|p| *p != 0);
                    ev.push((format!("cputune.{name}_period"), TunableValue::ULLong(p)));
                }
                None => {}
            }
            match q {
                Some(0) if live => {}
                Some(q) => {
                    *cq = Some(q).filter(|q| *q != 0);
                    ev.push((format!("cputune.{name}_quota"), TunableValue::LLong(q)));
                }
                None => {}
            }
        }
        ev
    }
}

/// Memory limits to set, in KiB (`None`: unchanged; `Some(None)`: no limit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryChange {
    pub hard: Option<Option<u64>>,
    pub soft: Option<Option<u64>>,
    pub swap: Option<Option<u64>>,
}

/// A per-device block I/O setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlkioField {
    Weight,
    ReadIops,
    WriteIops,
    ReadBytes,
    WriteBytes,
}

/// Block I/O settings to set: the weight, and per field (device path, value) pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlkioChange {
    pub weight: Option<u32>,
    pub devices: Vec<(BlkioField, Vec<(String, u64)>)>,
}

/// NUMA memory settings to set (`None`: unchanged).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NumaChange {
    pub mode: Option<NumaMode>,
    pub nodeset: Option<IdSet>,
}

/// What a pinning call pins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinTarget {
    Vcpu(u32),
    Emulator,
    /// An I/O thread, by its `<iothread id>`.
    IoThread(u32),
}

/// Whether `shares` is in libvirt's range (checked before anything is changed).
fn check_shares(shares: Option<u64>) -> Result<()> {
    match shares {
        Some(s) if s < SHARES.0 || s > SHARES.1 => Err(Error::InvalidArgument(format!(
            "shares '{s}' must be in range [{}, {}]",
            SHARES.0, SHARES.1
        ))),
        _ => Ok(()),
    }
}

impl Core {
    /// The CPU bandwidth and memory limits of the running guest (as its driver reads them
    /// back) or of the persistent definition.
    pub async fn tunables(&self, dom: &Domain, affect: Affect) -> Result<LiveTunables> {
        let (def, live) = {
            let d = lock(&dom.data);
            if d.removed {
                return Err(dom.gone());
            }
            let def = d.def_for_read(affect, Operation::ReadTunables)?.clone();
            let live = d.live.as_ref().is_some_and(|l| Arc::ptr_eq(l, &def));
            (def, live)
        };
        if live && let Some(t) = dom.driver.live_tunables(&self.ctx(dom), &def).await? {
            return Ok(t);
        }
        Ok(LiveTunables {
            cputune: def.tuning.cputune.clone(),
            memtune: def.tuning.memtune,
            blkio_weight: Some(def.tuning.blkiotune.weight),
        })
    }

    /// `<blkiotune>` of the running guest (its weight read back) or of the persistent
    /// definition.
    pub async fn blkio_tunables(&self, dom: &Domain, affect: Affect) -> Result<Blkiotune> {
        let def = self.def_for(dom, affect, Operation::ReadTunables)?;
        let mut tune = def.tuning.blkiotune.clone();
        let live = lock(&dom.data)
            .live
            .as_ref()
            .is_some_and(|l| Arc::ptr_eq(l, &def));
        if live && let Some(t) = dom.driver.live_tunables(&self.ctx(dom), &def).await? {
            tune.weight = t.blkio_weight.ok_or_else(|| {
                Error::InvalidState(
                    "blkio device weight is valid only for bfq or cfq scheduler".into(),
                )
            })?;
        }
        Ok(tune)
    }

    /// Set the block I/O weight and per-device weights and throttles (merged into the
    /// devices already tuned, as libvirt merges them).
    pub async fn set_blkio(
        &self,
        dom: &Arc<Domain>,
        change: BlkioChange,
        affect: Affect,
    ) -> Result<()> {
        let _job = dom.begin_job("tune").await?;
        let r = Self::plan_resize(dom, Operation::SetTunables, affect, |def, _| {
            let mut def = def.clone();
            let t = &mut def.tuning.blkiotune;
            if let Some(w) = change.weight {
                t.weight = w;
            }
            for (field, list) in &change.devices {
                for (path, v) in list {
                    let i = match t.devices.iter().position(|d| &d.path == path) {
                        Some(i) => i,
                        None => {
                            t.devices.push(BlkioDevice {
                                path: path.clone(),
                                ..BlkioDevice::default()
                            });
                            t.devices.len() - 1
                        }
                    };
                    let d = &mut t.devices[i];
                    let small = u32::try_from(*v).unwrap_or(u32::MAX);
                    match field {
                        BlkioField::Weight => d.weight = small,
                        BlkioField::ReadIops => d.read_iops = small,
                        BlkioField::WriteIops => d.write_iops = small,
                        BlkioField::ReadBytes => d.read_bytes = *v,
                        BlkioField::WriteBytes => d.write_bytes = *v,
                    }
                }
            }
            Ok(def)
        })?;
        if let Some(l) = &r.live {
            let group = TuneGroup::Blkio {
                weight: change.weight.is_some(),
            };
            dom.driver.apply_tunables(&self.ctx(dom), l, group).await?;
        }
        self.commit_resize(dom, r).await
    }

    /// Set CPU shares, periods and quotas.
    pub async fn set_scheduler(
        &self,
        dom: &Arc<Domain>,
        change: SchedulerChange,
        affect: Affect,
    ) -> Result<()> {
        change.validate()?;
        let _job = dom.begin_job("tune").await?;
        let r = Self::plan_resize(dom, Operation::SetTunables, affect, |def, persistent| {
            let mut def = def.clone();
            change.apply(&mut def.tuning.cputune, !persistent);
            Ok(def)
        })?;
        let mut event = Vec::new();
        if let Some(l) = &r.live {
            check_shares(change.shares)?;
            dom.driver
                .apply_tunables(&self.ctx(dom), l, TuneGroup::Scheduler)
                .await?;
            event = change.apply(&mut Cputune::default(), true);
        }
        self.commit_resize(dom, r).await?;
        self.tunable_event(dom, event);
        Ok(())
    }

    /// Set memory limits.
    pub async fn set_memory_limits(
        &self,
        dom: &Arc<Domain>,
        change: MemoryChange,
        affect: Affect,
    ) -> Result<()> {
        let _job = dom.begin_job("tune").await?;
        let r = Self::plan_resize(dom, Operation::SetTunables, affect, |def, _| {
            let mut def = def.clone();
            let m: &mut Memtune = &mut def.tuning.memtune;
            let (hard, swap) = (
                change.hard.unwrap_or(m.hard_limit_kib),
                change.swap.unwrap_or(m.swap_hard_limit_kib),
            );
            if (change.hard.is_some() || change.swap.is_some())
                && let (Some(h), s) = (hard, swap)
                && s.is_some_and(|s| h > s)
            {
                return Err(Error::InvalidArgument(
                    "memory hard_limit tunable value must be lower than or equal to \
                     swap_hard_limit"
                        .into(),
                ));
            }
            m.hard_limit_kib = hard;
            m.swap_hard_limit_kib = swap;
            if let Some(s) = change.soft {
                m.soft_limit_kib = s;
            }
            Ok(def)
        })?;
        if let Some(l) = &r.live {
            dom.driver
                .apply_tunables(&self.ctx(dom), l, TuneGroup::Memory)
                .await?;
        }
        self.commit_resize(dom, r).await
    }

    /// `<numatune><memory>`'s mode and nodeset (libvirt's `strict` and none when unset).
    pub fn numa_tunables(&self, dom: &Domain, affect: Affect) -> Result<(NumaMode, Option<IdSet>)> {
        let def = self.def_for(dom, affect, Operation::ReadTunables)?;
        let m = def.tuning.numatune.as_ref().and_then(|n| n.memory.as_ref());
        Ok((
            m.map_or(NumaMode::Strict, |m| m.mode),
            m.and_then(|m| m.nodeset.clone()),
        ))
    }

    /// Set the NUMA memory mode and nodeset; a running guest keeps its mode (what else its
    /// driver allows live is the driver's: QEMU's changes nodes only in `restrictive` mode).
    pub async fn set_numa(
        &self,
        dom: &Arc<Domain>,
        change: NumaChange,
        affect: Affect,
    ) -> Result<()> {
        let _job = dom.begin_job("tune").await?;
        let r = Self::plan_resize(dom, Operation::SetTunables, affect, |def, persistent| {
            let mut def = def.clone();
            let current = def
                .tuning
                .numatune
                .as_ref()
                .and_then(|n| n.memory.as_ref())
                .cloned();
            if !persistent {
                let invalid = |m: &str| Err(Error::InvalidState(m.into()));
                if let (Some(m), Some(c)) = (change.mode, &current)
                    && m != c.mode
                {
                    return invalid("can't change numatune mode for running domain");
                }
            }
            let n = def.tuning.numatune.get_or_insert_with(Numatune::default);
            let mut m = current.unwrap_or(NumaMemory {
                mode: NumaMode::Strict,
                placement: NumaPlacement::Static,
                nodeset: None,
            });
            if let Some(mode) = change.mode {
                m.mode = mode;
            }
            if let Some(set) = &change.nodeset {
                m.nodeset = Some(set.clone());
                m.placement = NumaPlacement::Static;
            }
            if m.placement == NumaPlacement::Static && m.nodeset.is_none() {
                return Err(Error::NotSupported(
                    "nodeset for NUMA memory tuning must be set if 'placement' is 'static'".into(),
                ));
            }
            n.memory = Some(m);
            Ok(def)
        })?;
        if let Some(l) = &r.live
            && change.nodeset.is_some()
        {
            dom.driver
                .apply_tunables(&self.ctx(dom), l, TuneGroup::Numa)
                .await?;
        }
        self.commit_resize(dom, r).await
    }

    /// Pin a vCPU or the emulator threads to `cpus`.
    pub async fn pin(
        &self,
        dom: &Arc<Domain>,
        target: PinTarget,
        cpus: IdSet,
        affect: Affect,
    ) -> Result<()> {
        if cpus.iter().next().is_none() {
            let what = match target {
                PinTarget::IoThread(_) => "Empty iothread cpumap list for pinning",
                _ => "Empty cpu list for pinning",
            };
            return Err(Error::InvalidArgument(what.into()));
        }
        let host_cpus = blocking(host::cpu_count).await?;
        if let Some(m) = cpus.max()
            && m as usize >= host_cpus
        {
            return Err(Error::InvalidArgument(format!(
                "CPU {m} is beyond this host's {host_cpus} CPUs"
            )));
        }
        let _job = dom.begin_job("pin").await?;
        let r = Self::plan_resize(dom, Operation::Pin, affect, |def, persistent| {
            let mut def = def.clone();
            match target {
                PinTarget::Vcpu(v) => {
                    let (n, which) = if persistent {
                        (def.max_vcpus, "persistent")
                    } else {
                        (def.vcpus(), "live")
                    };
                    if v >= n {
                        return Err(Error::InvalidArgument(format!(
                            "vcpu {v} is out of range of {which} cpu count {n}"
                        )));
                    }
                    def.tuning.cputune.vcpupin.insert(v, cpus.clone());
                }
                PinTarget::Emulator => def.tuning.cputune.emulatorpin = Some(cpus.clone()),
                PinTarget::IoThread(id) => {
                    let Some(t) = def.tuning.iothreads.iter_mut().find(|t| t.id == id) else {
                        // (libvirt's QEMU driver says "iothread N" for the live one)
                        return Err(Error::InvalidArgument(format!("iothreadid {id} not found")));
                    };
                    t.pin = Some(cpus.clone());
                    t.autofill = false;
                }
            }
            Ok(def)
        })?;
        let mut event = Vec::new();
        if let Some(l) = &r.live {
            let (group, name) = match target {
                PinTarget::Vcpu(v) => (TuneGroup::VcpuPin(v), format!("cputune.vcpupin{v}")),
                PinTarget::Emulator => (TuneGroup::EmulatorPin, "cputune.emulatorpin".into()),
                PinTarget::IoThread(id) => (
                    TuneGroup::IoThreadPin(id),
                    format!("cputune.iothreadpin{id}"),
                ),
            };
            dom.driver.apply_tunables(&self.ctx(dom), l, group).await?;
            event.push((name, TunableValue::Str(cpus.to_string())));
        }
        self.commit_resize(dom, r).await?;
        self.tunable_event(dom, event);
        Ok(())
    }

    /// Which host CPUs the emulator threads may run on: `<emulatorpin>`, else
    /// `<vcpu cpuset>`, else all.
    pub async fn emulator_pinning(&self, dom: &Domain, affect: Affect) -> Result<Vec<bool>> {
        let def = self.def_for(dom, affect, Operation::GetVcpuPinning)?;
        let host_cpus = blocking(host::cpu_count).await?;
        Ok(match (&def.tuning.cputune.emulatorpin, &def.cpuset) {
            (Some(p), _) => (0..host_cpus).map(|c| p.contains(c as u32)).collect(),
            (None, Some(set)) => host::parse_cpuset(set, host_cpus),
            (None, None) => vec![true; host_cpus],
        })
    }

    /// Each I/O thread's id and the host CPUs it may run on.
    pub async fn iothread_pinning(
        &self,
        dom: &Domain,
        affect: Affect,
    ) -> Result<Vec<(u32, Vec<bool>)>> {
        let (def, live) = {
            let d = lock(&dom.data);
            if d.removed {
                return Err(dom.gone());
            }
            let t = affect.resolve_one(
                &d.def.name,
                Operation::GetVcpuPinning,
                d.status.state,
                d.persistent,
            )?;
            (
                d.def_for_read(affect, Operation::GetVcpuPinning)?.clone(),
                t.live,
            )
        };
        // a running guest's threads in its hypervisor's order, as libvirt lists them
        let order = if live {
            dom.driver.iothread_order(&self.ctx(dom)).await?
        } else {
            None
        };
        let host_cpus = blocking(host::cpu_count).await?;
        let all = match &def.cpuset {
            Some(set) => host::parse_cpuset(set, host_cpus),
            None => vec![true; host_cpus],
        };
        let mut threads: Vec<&crate::model::tuning::IoThread> =
            def.tuning.iothreads.iter().collect();
        if let Some(order) = order {
            threads.sort_by_key(|t| order.iter().position(|id| *id == t.id));
        }
        Ok(threads
            .into_iter()
            .map(|t| {
                let map = match &t.pin {
                    Some(p) => (0..host_cpus).map(|c| p.contains(c as u32)).collect(),
                    None => all.clone(),
                };
                (t.id, map)
            })
            .collect())
    }

    /// CPU time the running guest used.
    pub async fn cpu_stats(&self, dom: &Domain) -> Result<CpuStats> {
        let (live, _) = Self::require(dom, Operation::ReadCpuStats)?;
        Ok(dom.driver.cpu_stats(&self.ctx(dom), &live).await?)
    }

    fn def_for(&self, dom: &Domain, affect: Affect, op: Operation) -> Result<Arc<DomainDef>> {
        let d = lock(&dom.data);
        if d.removed {
            return Err(dom.gone());
        }
        Ok(d.def_for_read(affect, op)?.clone())
    }

    fn tunable_event(&self, dom: &Domain, params: Tunables) {
        if params.is_empty() {
            return;
        }
        let uuid = dom.uuid;
        self.update(dom, |_| ((), vec![Event::Tunable { uuid, params }]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_zeros_are_libvirts() {
        let bad = SchedulerChange {
            vcpu: (Some(999), None),
            ..SchedulerChange::default()
        };
        let e = bad.validate().expect_err("period below 1000");
        assert!(
            e.to_string()
                .contains("value of 'vcpu_period' is out of range [1000, 1000000]"),
            "{e}"
        );
        let ok = SchedulerChange {
            shares: Some(512),
            vcpu: (Some(0), Some(-1)),
            global: (Some(0), None),
            ..SchedulerChange::default()
        };
        ok.validate().expect("0 and -1 are allowed");
        assert!(check_shares(Some(1)).is_err() && check_shares(Some(2)).is_ok());
        // live: a 0 period leaves the guest's as it is; persistent: it clears the element
        let mut c = Cputune {
            period: Some(5000),
            global_period: Some(7000),
            ..Cputune::default()
        };
        let ev = ok.apply(&mut c, true);
        assert_eq!(
            (c.shares, c.period, c.quota),
            (Some(512), Some(5000), Some(-1))
        );
        assert_eq!(c.global_period, Some(7000));
        assert_eq!(
            ev,
            vec![
                ("cputune.cpu_shares".to_owned(), TunableValue::ULLong(512)),
                ("cputune.vcpu_quota".to_owned(), TunableValue::LLong(-1)),
            ]
        );
        ok.apply(&mut c, false);
        assert_eq!((c.period, c.global_period), (None, None));
    }
}
