//! A domain's memory: the balloon target of the running guest and the current and maximum
//! memory of its persistent definition.

use std::sync::Arc;

use super::{Core, Domain, Error, Result, events::lock, ops::Operation, options::MemoryOptions};
use crate::model::DomainDef;

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
        let (t, live, config) = {
            let d = lock(&dom.data);
            let t = opts
                .affect
                .resolve(&d.def.name, op, d.status.state, d.persistent)?;
            (t, d.live.clone(), d.def.clone())
        };
        if opts.maximum && t.live {
            return Err(Error::InvalidState(format!(
                "cannot change the maximum memory of running domain '{}'; change the \
                 persistent definition with 'config'",
                config.name
            )));
        }
        let with_memory = |def: &DomainDef, max: bool| -> Result<Arc<DomainDef>> {
            let mut def = def.clone();
            if max {
                def.memory_kib = kib;
                def.current_memory_kib = def.current_memory_kib.filter(|c| *c < kib);
            } else {
                if kib > def.memory_kib {
                    return Err(Error::InvalidArgument(format!(
                        "domain '{}' may have at most {} KiB of memory, not {kib} KiB",
                        def.name, def.memory_kib
                    )));
                }
                def.current_memory_kib = (kib < def.memory_kib).then_some(kib);
            }
            def.validate()?;
            Ok(Arc::new(def))
        };
        let new_live = match (&live, t.live) {
            (Some(l), true) => Some(with_memory(l, false)?),
            _ => None,
        };
        let new_config = if t.config {
            Some(with_memory(&config, opts.maximum)?)
        } else {
            None
        };
        if let Some(l) = &new_live {
            dom.driver.set_memory(&self.ctx(dom), l, kib).await?;
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
}
