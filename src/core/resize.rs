//! Changing one figure of a domain (its vCPU count, its memory) in the running guest, the
//! persistent definition, or both, as libvirt's `AFFECT_*` flags say: the definitions are
//! edited and checked first, the running guest changed next, and the persistent definition
//! stored last, so a refusal at any step changes nothing.

use std::sync::Arc;

use super::{Core, Domain, Result, events::lock, ops::Operation, options::Affect};
use crate::model::DomainDef;

/// The definitions one change produces.
pub(crate) struct Resized {
    /// The running guest's new definition, when the change applies to it.
    pub live: Option<Arc<DomainDef>>,
    /// The new persistent definition, when the change applies to it.
    pub config: Option<Arc<DomainDef>>,
}

impl Core {
    /// Edit the definitions `affect` names with `edit(def, persistent)`, checking each result;
    /// nothing is changed yet. The caller holds the domain's job.
    pub(crate) fn plan_resize(
        dom: &Domain,
        op: Operation,
        affect: Affect,
        edit: impl Fn(&DomainDef, bool) -> Result<DomainDef>,
    ) -> Result<Resized> {
        let (t, live, config) = {
            let d = lock(&dom.data);
            let t = affect.resolve(&d.def.name, op, d.status.state, d.persistent)?;
            (t, d.live.clone(), d.def.clone())
        };
        let checked = |def: &DomainDef, persistent: bool| -> Result<Arc<DomainDef>> {
            let def = edit(def, persistent)?;
            def.validate()?;
            Ok(Arc::new(def))
        };
        Ok(Resized {
            live: match (&live, t.live) {
                (Some(l), true) => Some(checked(l, false)?),
                _ => None,
            },
            config: if t.config {
                Some(checked(&config, true)?)
            } else {
                None
            },
        })
    }

    /// Store the new persistent definition and publish both (once the running guest, if it
    /// was to change, has).
    pub(crate) async fn commit_resize(&self, dom: &Domain, r: Resized) -> Result<()> {
        if let Some(c) = &r.config {
            let mut rec = lock(&dom.data).record();
            rec.def = (**c).clone();
            self.save(rec).await?;
        }
        self.update(dom, |d| {
            if let Some(l) = r.live {
                d.live = Some(l);
            }
            if let Some(c) = r.config {
                d.def = c;
            }
            ((), Vec::new())
        });
        Ok(())
    }
}
