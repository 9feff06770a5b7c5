//! Managed save: the guest's state saved by its driver when it stops, and restored from at
//! the domain's next start, as libvirt's `virDomainManagedSave`.

use std::sync::Arc;

use super::{
    Core, Domain, Error, Event, Result, domain::ManagedSave, events::lock, ops::Operation,
    options::ManagedSaveOptions,
};
use crate::model::{
    DomainDef,
    state::{
        DomainState, Lifecycle, StartedDetail, StateReason, Status, StoppedDetail, SuspendedDetail,
    },
};

impl Core {
    /// Save a running or paused guest's state and stop it; the next start restores it.
    pub async fn managed_save(&self, dom: &Arc<Domain>, opts: ManagedSaveOptions) -> Result<()> {
        opts.validate()?;
        let _job = dom.begin_job("managed save").await?;
        let (live, state) = Self::require(dom, Operation::ManagedSave)?;
        if !lock(&dom.data).persistent {
            return Err(Error::InvalidState(format!(
                "cannot save domain '{}': it is transient, and a managed save image needs a \
                 persistent definition to restore into",
                live.name
            )));
        }
        dom.driver.managed_save(&self.ctx(dom), &live).await?;
        let saved = ManagedSave {
            paused: opts.paused || (!opts.running && state == DomainState::Paused),
            def: None,
        };
        let uuid = dom.uuid;
        self.update(dom, |d| {
            d.status = Status::shut_off(StateReason::Saved);
            d.id = None;
            d.live = None;
            d.warning = None;
            d.managed_save = Some(saved);
            let event = Lifecycle::Stopped(StoppedDetail::Saved);
            ((), vec![Event::Lifecycle { uuid, event }])
        });
        self.persist(dom).await
    }

    pub fn has_managed_save(&self, dom: &Domain) -> Result<bool> {
        let d = lock(&dom.data);
        if d.removed {
            return Err(dom.gone());
        }
        Ok(d.managed_save.is_some())
    }

    /// Remove the managed save image, if there is one; the next start boots afresh.
    pub async fn managed_save_remove(&self, dom: &Arc<Domain>) -> Result<()> {
        let _job = dom.begin_job("remove managed save").await?;
        if lock(&dom.data).managed_save.is_none() {
            return Ok(());
        }
        self.drop_managed_save(dom).await
    }

    /// Remove the image and forget it; the job is held.
    pub(crate) async fn drop_managed_save(&self, dom: &Arc<Domain>) -> Result<()> {
        dom.driver.managed_save_remove(&self.ctx(dom)).await?;
        self.update(dom, |d| {
            d.managed_save = None;
            ((), Vec::new())
        });
        self.persist(dom).await
    }

    /// Start the guest from its managed save image; the job is held.
    pub(crate) async fn restore(
        &self,
        dom: &Arc<Domain>,
        def: Arc<DomainDef>,
        paused: bool,
    ) -> Result<()> {
        let def = self.resolve_networks(def).await?;
        let id = self.next_id();
        let started = dom
            .driver
            .managed_restore(&self.ctx(dom), &def, paused, id)
            .await?;
        let uuid = dom.uuid;
        let agent = super::lifecycle::agent_at_start(uuid, started.agent);
        self.update(dom, |d| {
            d.live = Some(started.live.map(Arc::new).unwrap_or(def));
            d.id = Some(id);
            d.status = Status::new(DomainState::Running, StateReason::Restored);
            d.managed_save = None;
            d.warning = None;
            let event = Lifecycle::Started(StartedDetail::Restored);
            let started = Event::Lifecycle { uuid, event };
            ((), agent.into_iter().chain([started]).collect())
        });
        if paused {
            self.mark_paused(dom, StateReason::User, SuspendedDetail::Restored);
        }
        self.persist(dom).await
    }
}
