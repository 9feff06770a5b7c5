//! Live configuration of a domain beyond tuning: I/O threads added, removed and retuned, and
//! perf events counted, in the running guest (through its driver) and in the persistent
//! definition, with libvirt's checks and words (`virDomainDriverAddIOThreadCheck`,
//! `DelIOThreadCheck`, `qemuDomainIOThreadValidate`).

use std::sync::Arc;

use super::{Core, Domain, Error, Result, events::lock, ops::Operation, options::Affect};
use crate::{
    drivers::livecfg::{IoThreadChange, IoThreadParams},
    model::{DomainDef, perf::PerfEvent, tuning::IoThread},
};

/// libvirt's refusal of the id 0 (checked before anything else).
pub fn check_id(id: u32) -> Result<()> {
    if id == 0 {
        return Err(Error::InvalidArgument(
            "invalid value of 0 for iothread_id".into(),
        ));
    }
    Ok(())
}

/// Makes `change` in `def` (the running guest's when `!persistent`).
fn edit(def: &mut DomainDef, change: IoThreadChange, persistent: bool) -> Result<()> {
    let threads = &mut def.tuning.iothreads;
    match change {
        IoThreadChange::Add(id) => {
            if threads.iter().any(|t| t.id == id) {
                return Err(Error::InvalidArgument(format!(
                    "an IOThread is already using iothread_id '{id}'"
                )));
            }
            threads.push(IoThread {
                id,
                autofill: false,
                pool_min: None,
                pool_max: None,
                pin: None,
                sched: None,
            });
        }
        IoThreadChange::Remove(id) => {
            let Some(at) = threads.iter().position(|t| t.id == id) else {
                return Err(Error::InvalidArgument(format!(
                    "cannot find IOThread '{id}' in iothreadids list"
                )));
            };
            let disk = def.devices.disks.iter().find(|d| {
                d.driver
                    .as_ref()
                    .is_some_and(|drv| drv.iothread == Some(id))
            });
            if let Some(d) = disk {
                return Err(Error::InvalidArgument(format!(
                    "cannot remove IOThread {id} since it is being used by disk '{}'",
                    d.target_dev
                )));
            }
            let id_str = id.to_string();
            if def.devices.controllers.iter().any(|c| {
                c.driver
                    .iter()
                    .any(|(k, v)| *k == "iothread" && *v == id_str)
            }) {
                return Err(Error::InvalidArgument(format!(
                    "cannot remove IOThread '{id}' since it is being used by controller"
                )));
            }
            let threads = &mut def.tuning.iothreads;
            threads.remove(at);
            // those after it keep their ids: listed from now on
            for t in threads.iter_mut().skip(at) {
                t.autofill = false;
            }
        }
        IoThreadChange::Set(id, p) => {
            let Some(t) = threads.iter_mut().find(|t| t.id == id) else {
                return Err(Error::InvalidArgument(format!(
                    "cannot find IOThread '{id}' in iothreadids"
                )));
            };
            set_pool(t, p, !persistent)?;
            if persistent && p.polling() {
                return Err(Error::NotSupported(
                    "configuring persistent polling values is not supported".into(),
                ));
            }
        }
    }
    Ok(())
}

/// The new thread pool bounds of `t`, with libvirt's checks (a live change cannot go back
/// to QEMU's default, -1).
fn set_pool(t: &mut IoThread, p: IoThreadParams, live: bool) -> Result<()> {
    let as_i32 = |v: Option<u32>| v.map_or(-1, |v| i32::try_from(v).unwrap_or(i32::MAX));
    let mut min = as_i32(t.pool_min);
    let mut max = as_i32(t.pool_max);
    if let Some(v) = p.pool_min {
        if live && v < 0 {
            return Err(Error::InvalidState(format!(
                "thread_pool_min ({v}) must be equal to or greater than 0 for live change"
            )));
        }
        min = v;
    }
    if let Some(v) = p.pool_max {
        if live && v < 0 {
            return Err(Error::InvalidState(format!(
                "thread_pool_max ({v}) must be equal to or greater than 0 for live change"
            )));
        }
        max = v;
    }
    if min > max {
        return Err(Error::InvalidState(format!(
            "thread_pool_min ({min}) can't be greater than thread_pool_max ({max})"
        )));
    }
    if p.pool_min.is_some() {
        t.pool_min = u32::try_from(min).ok();
        t.autofill = false;
    }
    if p.pool_max.is_some() {
        t.pool_max = u32::try_from(max).ok();
        t.autofill = false;
    }
    Ok(())
}

impl Core {
    /// Add, remove or retune an I/O thread of the running guest and/or the persistent
    /// definition, as `affect` says; nothing changes unless every targeted definition can.
    pub async fn change_iothread(
        &self,
        dom: &Arc<Domain>,
        change: IoThreadChange,
        affect: Affect,
    ) -> Result<()> {
        check_id(change.id())?;
        let _job = dom.begin_job("iothread").await?;
        let r = Self::plan_resize(
            dom,
            Operation::ChangeIoThreads,
            affect,
            |def, persistent| {
                let mut def = def.clone();
                edit(&mut def, change, persistent)?;
                Ok(def)
            },
        )?;
        if let Some(l) = &r.live {
            dom.driver
                .change_iothread(&self.ctx(dom), l, change)
                .await?;
        }
        self.commit_resize(dom, r).await
    }
}

impl Core {
    /// Each perf event, on or off, in libvirt's order: as the running guest counts them
    /// (its live definition) or as the persistent definition names them.
    pub fn perf_events(&self, dom: &Domain, affect: Affect) -> Result<Vec<(PerfEvent, bool)>> {
        let d = lock(&dom.data);
        if d.removed {
            return Err(dom.gone());
        }
        let def = d.def_for_read(affect, Operation::GetPerfEvents)?;
        Ok(PerfEvent::ALL
            .iter()
            .map(|e| (*e, def.perf.enabled(*e)))
            .collect())
    }

    /// Turn perf events on or off in the running guest (its driver opens or closes the
    /// counters) and/or the persistent definition.
    pub async fn set_perf_events(
        &self,
        dom: &Arc<Domain>,
        changes: Vec<(PerfEvent, bool)>,
        affect: Affect,
    ) -> Result<()> {
        let _job = dom.begin_job("perf").await?;
        let r = Self::plan_resize(dom, Operation::SetPerfEvents, affect, |def, _| {
            let mut def = def.clone();
            for (e, on) in &changes {
                def.perf.set(*e, *on);
            }
            Ok(def)
        })?;
        if let Some(l) = &r.live {
            dom.driver.set_perf(&self.ctx(dom), l).await?;
        }
        self.commit_resize(dom, r).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(xml_top: &str, devices: &str) -> DomainDef {
        let xml = format!(
            "<domain type='qemu'><name>t</name><memory>65536</memory>{xml_top}\
             <os><type>hvm</type></os><devices>{devices}</devices></domain>"
        );
        DomainDef::from_xml(&xml).expect("parses")
    }

    #[test]
    fn adds_and_removes_as_libvirt_does() {
        let mut d = def("<vcpu>1</vcpu><iothreads>3</iothreads>", "");
        assert!(matches!(
            edit(&mut d, IoThreadChange::Add(2), true),
            Err(Error::InvalidArgument(m)) if m == "an IOThread is already using iothread_id '2'"
        ));
        edit(&mut d, IoThreadChange::Add(7), true).expect("adds");
        edit(&mut d, IoThreadChange::Remove(1), true).expect("removes");
        let ids: Vec<(u32, bool)> = d
            .tuning
            .iothreads
            .iter()
            .map(|t| (t.id, t.autofill))
            .collect();
        assert_eq!(ids, vec![(2, false), (3, false), (7, false)]);
        assert!(matches!(
            edit(&mut d, IoThreadChange::Remove(1), true),
            Err(Error::InvalidArgument(m)) if m == "cannot find IOThread '1' in iothreadids list"
        ));
    }

    #[test]
    fn a_thread_a_disk_uses_stays() {
        let mut d = def(
            "<vcpu>1</vcpu><iothreads>1</iothreads>",
            "<disk type='file' device='disk'><driver name='qemu' type='raw' iothread='1'/>\
             <source file='/dev/null'/><target dev='vda' bus='virtio'/></disk>",
        );
        assert!(matches!(
            edit(&mut d, IoThreadChange::Remove(1), false),
            Err(Error::InvalidArgument(m))
                if m == "cannot remove IOThread 1 since it is being used by disk 'vda'"
        ));
    }

    #[test]
    fn pool_bounds_follow_libvirts_checks() {
        let mut d = def("<vcpu>1</vcpu><iothreads>1</iothreads>", "");
        let p = |min, max| IoThreadParams {
            pool_min: min,
            pool_max: max,
            ..Default::default()
        };
        assert!(matches!(
            edit(&mut d, IoThreadChange::Set(1, p(Some(-1), None)), false),
            Err(Error::InvalidState(m))
                if m == "thread_pool_min (-1) must be equal to or greater than 0 for live change"
        ));
        assert!(matches!(
            edit(&mut d, IoThreadChange::Set(1, p(Some(4), Some(2))), true),
            Err(Error::InvalidState(m))
                if m == "thread_pool_min (4) can't be greater than thread_pool_max (2)"
        ));
        edit(&mut d, IoThreadChange::Set(1, p(Some(2), Some(8))), true).expect("sets");
        let t = &d.tuning.iothreads[0];
        assert_eq!((t.pool_min, t.pool_max), (Some(2), Some(8)));
        let polling = IoThreadParams {
            poll_max_ns: Some(100),
            ..Default::default()
        };
        assert!(matches!(
            edit(&mut d, IoThreadChange::Set(1, polling), true),
            Err(Error::NotSupported(_))
        ));
        edit(&mut d, IoThreadChange::Set(1, polling), false).expect("live polling");
    }
}
