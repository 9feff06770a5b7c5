//! A domain's vCPUs: how many it has and may have, changing them, and which host CPUs each
//! may run on.

use std::sync::Arc;

use super::{
    Core, Domain, Error, Result, blocking, events::lock, host, ops::Operation, options::Affect,
    options::VcpuOptions,
};

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
        let r = Self::plan_resize(dom, Operation::SetVcpus, opts.affect, |def, persistent| {
            let mut def = def.clone();
            if persistent && opts.maximum {
                def.max_vcpus = count;
                def.current_vcpus = def.current_vcpus.filter(|c| *c < count);
                def.tuning.resize_vcpus(count, def.vcpus());
            } else {
                if count > def.max_vcpus {
                    // libvirt's QEMU driver's words
                    let which = if persistent { "persistent" } else { "live" };
                    return Err(Error::InvalidArgument(format!(
                        "requested vcpus is greater than max allowable vcpus for the {which} \
                         domain: {count} > {}",
                        def.max_vcpus
                    )));
                }
                def.current_vcpus = (count < def.max_vcpus).then_some(count);
                def.tuning.resize_vcpus(def.max_vcpus, count);
            }
            Ok(def)
        })?;
        let mut r = r;
        if let Some(l) = &mut r.live {
            let states = dom.driver.set_vcpus(&self.ctx(dom), l, count).await?;
            if let Some(states) = states {
                // the driver's word on which vCPUs are online (and may go again)
                let def = Arc::make_mut(l);
                def.tuning.vcpus = states;
            }
        }
        self.commit_resize(dom, r).await
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
        // a vCPU's own <vcpupin> wins over <vcpu cpuset>; the driver applied these at start
        Ok((0..def.vcpus())
            .map(|i| match def.tuning.cputune.vcpupin.get(&i) {
                Some(pin) => (0..host_cpus).map(|c| pin.contains(c as u32)).collect(),
                None => allowed.clone(),
            })
            .collect())
    }
}
