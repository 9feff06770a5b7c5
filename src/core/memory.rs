//! A domain's memory: the balloon target of the running guest and the current and maximum
//! memory of its persistent definition.

use std::sync::Arc;

use super::{Core, Domain, Error, Result, ops::Operation, options::MemoryOptions};

impl Core {
    /// Change the memory (KiB): the running guest's balloon target (through its driver),
    /// the persistent definition's current memory, or with `maximum` its maximum (current
    /// memory above the new maximum comes down with it).
    pub async fn set_memory(&self, dom: &Arc<Domain>, kib: u64, opts: MemoryOptions) -> Result<()> {
        opts.validate()?;
        if kib == 0 {
            return Err(Error::InvalidArgument(
                "a domain needs some memory; 0 KiB is not allowed".into(),
            ));
        }
        let op = Operation::SetMemory;
        let _job = dom.begin_job(op.job().unwrap_or_default()).await?;
        let r = Self::plan_resize(dom, op, opts.affect, |def, persistent| {
            let mut def = def.clone();
            if opts.maximum && !persistent {
                return Err(Error::InvalidState(format!(
                    "cannot change the maximum memory of running domain '{}'; change the \
                     persistent definition with 'config'",
                    def.name
                )));
            }
            if opts.maximum {
                def.memory_kib = kib;
                def.current_memory_kib = def.current_memory_kib.map(|c| c.min(kib));
            } else {
                if kib > def.memory_kib {
                    return Err(Error::InvalidArgument(format!(
                        "domain '{}' may have at most {} KiB of memory, not {kib} KiB",
                        def.name, def.memory_kib
                    )));
                }
                def.current_memory_kib = Some(kib);
            }
            Ok(def)
        })?;
        if let Some(l) = &r.live {
            dom.driver.set_memory(&self.ctx(dom), l, kib).await?;
        }
        self.commit_resize(dom, r).await
    }
}
