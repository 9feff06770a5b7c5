//! A domain's vCPUs: how many it has and may have, changing them, and which host CPUs each
//! may run on.

use std::sync::Arc;

use super::{
    Core, Domain, Error, Result, blocking, events::lock, host, ops::Operation, options::Affect,
    options::VcpuOptions,
};
use crate::model::DomainDef;

impl Core {
    /// The current (or, with `maximum`, the maximum) vCPU count of the running or persistent
    /// definition.
    pub fn vcpu_count(&self, dom: &Domain, opts: VcpuOptions) -> Result<u32> {
        let d = lock(&dom.data);
        if d.removed {
            return Err(dom.gone());
        }
        let def = d.def_for_read(opts.affect, Operation::GetVcpus)?;
        Ok(if opts.maximum {
            def.max_vcpus
        } else {
            def.vcpus()
        })
    }

    /// Change the vCPU count: of the running guest (through its driver), of the persistent
    /// definition, or with `maximum` the persistent maximum.
    pub async fn set_vcpus(&self, dom: &Arc<Domain>, count: u32, opts: VcpuOptions) -> Result<()> {
        opts.validate_set()?;
        if count == 0 {
            return Err(Error::InvalidArgument(
                "a domain needs at least one vCPU".into(),
            ));
        }
        let _job = dom.begin_job("set vCPUs").await?;
        let (t, live, config) = {
            let d = lock(&dom.data);
            let t = opts.affect.resolve(
                &d.def.name,
                Operation::SetVcpus,
                d.status.state,
                d.persistent,
            )?;
            (t, d.live.clone(), d.def.clone())
        };
        let with_count = |def: &DomainDef, max: bool| -> Result<Arc<DomainDef>> {
            let mut def = def.clone();
            if max {
                def.max_vcpus = count;
                def.current_vcpus = def.current_vcpus.filter(|c| *c < count);
            } else {
                if count > def.max_vcpus {
                    return Err(Error::InvalidArgument(format!(
                        "domain '{}' may have at most {} vCPUs, not {count}",
                        def.name, def.max_vcpus
                    )));
                }
                def.current_vcpus = (count < def.max_vcpus).then_some(count);
            }
            def.validate()?;
            Ok(Arc::new(def))
        };
        let new_live = match (&live, t.live) {
            (Some(l), true) => Some(with_count(l, false)?),
            _ => None,
        };
        let new_config = if t.config {
            Some(with_count(&config, opts.maximum)?)
        } else {
            None
        };
        if let Some(l) = &new_live {
            dom.driver.set_vcpus(&self.ctx(dom), l, count).await?;
        }
        if let Some(c) = &new_config {
            let mut rec = lock(&dom.data).record();
            rec.def = (**c).clone();
            self.save(rec).await?;
        }
        self.update(dom, |d| {
            if let Some(l) = new_live {
                d.live = Some(l);
            }
            if let Some(c) = new_config {
                d.def = c;
            }
            ((), Vec::new())
        });
        Ok(())
    }

    /// For each vCPU of the running or persistent definition, which host CPUs it may run on.
    pub async fn vcpu_pinning(&self, dom: &Domain, affect: Affect) -> Result<Vec<Vec<bool>>> {
        let def = {
            let d = lock(&dom.data);
            if d.removed {
                return Err(dom.gone());
            }
            d.def_for_read(affect, Operation::GetVcpuPinning)?.clone()
        };
        let host_cpus = blocking(host::cpu_count).await?;
        let allowed = match &def.cpuset {
            Some(set) => host::parse_cpuset(set, host_cpus),
            None => vec![true; host_cpus],
        };
        Ok(vec![allowed; def.vcpus() as usize])
    }
}
