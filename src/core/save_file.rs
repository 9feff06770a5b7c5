//! Saving a guest's state to a file of the user's choosing and restoring from one
//! (`virsh save` / `restore`), reading and replacing the XML such a file holds, and dumping
//! a guest's memory (`virsh dump`). The file's layout is the driver's; the core decides
//! what the domain goes through (stopped/saved, started/restored, crashed).

use std::{path::Path, sync::Arc};

use super::{
    Core, Domain, Error, Result,
    define::Caller,
    events::lock,
    ops::Operation,
    options::{Affect, ManagedSaveOptions, StartOptions, XmlOptions},
};
use crate::{
    drivers::{DumpOptions, SaveImageHeader},
    model::{
        DomainDef, DomainType, FormatOptions,
        state::{
            DomainState, Lifecycle, StartedDetail, StateReason, Status, StoppedDetail,
            SuspendedDetail,
        },
    },
};

/// What to do with the guest after a dump (libvirt's `VIR_DUMP_CRASH` / `VIR_DUMP_RESET`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AfterDump {
    #[default]
    Continue,
    /// Stop it, as crashed.
    Crash,
    /// Reset it.
    Reset,
}

impl Core {
    /// Save a running or paused guest's state to `path` and stop it; `xml` replaces the
    /// domain XML the file holds (same domain: name and UUID). The domain stops as saved
    /// (a transient one disappears).
    pub async fn save_to_file(
        &self,
        dom: &Arc<Domain>,
        path: &Path,
        xml: Option<&str>,
        opts: ManagedSaveOptions,
    ) -> Result<()> {
        opts.validate()?;
        let _job = dom.begin_job("save").await?;
        let (live, state) = Self::require(dom, Operation::Save)?;
        let running = if opts.running {
            true
        } else if opts.paused {
            false
        } else {
            state == DomainState::Running
        };
        let xml = match xml {
            Some(x) => {
                let def = DomainDef::from_xml(x)?;
                same_domain(&live, &def)?;
                def.to_xml(&FormatOptions {
                    id: None,
                    secure: true,
                })
            }
            None => self.domain_xml(
                dom,
                XmlOptions {
                    inactive: false,
                    secure: true,
                    migratable: dom.driver.save_image_migratable(),
                    update_cpu: false,
                },
            )?,
        };
        let header = SaveImageHeader { xml, running };
        dom.driver
            .save_to_file(&self.ctx(dom), &header, path)
            .await?;
        self.mark_stopped(dom, StateReason::Saved, StoppedDetail::Saved);
        Ok(())
    }

    /// The header of the save image at `path`, read by the driver of `domain_type`.
    pub fn read_save_image(&self, domain_type: DomainType, path: &Path) -> Result<SaveImageHeader> {
        let driver = self.driver_for(domain_type).ok_or_else(|| {
            Error::NotSupported(format!(
                "no enabled driver runs domains of type '{}'",
                domain_type.as_str()
            ))
        })?;
        Ok(driver.read_save_image(path)?)
    }

    /// The definition the save image at `path` holds (the driver of `domain_type` reads
    /// it), and whether the guest runs once restored.
    pub fn save_image_def(
        &self,
        domain_type: DomainType,
        path: &Path,
    ) -> Result<(DomainDef, bool)> {
        let h = self.read_save_image(domain_type, path)?;
        Ok((DomainDef::from_xml(&h.xml)?, h.running))
    }

    /// Replace the XML of the save image at `path` (of the same domain), and whether the
    /// guest runs once restored (`running`; `None` keeps it).
    pub fn define_save_image(
        &self,
        domain_type: DomainType,
        path: &Path,
        xml: &str,
        running: Option<bool>,
    ) -> Result<()> {
        let driver = self
            .driver_for(domain_type)
            .ok_or_else(|| Error::NotSupported("no driver".into()))?;
        let old = driver.read_save_image(path)?;
        let running = running.unwrap_or(old.running);
        if old.xml == xml && running == old.running {
            return Ok(());
        }
        let before = DomainDef::from_xml(&old.xml)?;
        let def = DomainDef::from_xml(xml)?;
        same_domain(&before, &def)?;
        let xml = def.to_xml(&FormatOptions {
            id: None,
            secure: true,
        });
        Ok(driver.rewrite_save_image(path, &SaveImageHeader { xml, running })?)
    }

    /// Restore a guest from the save image at `path` with definition `def` (the image's,
    /// or the caller's replacement checked with [`same_domain`]): an inactive domain of the
    /// same UUID runs it, else a new transient domain does; refused while that UUID runs.
    pub async fn restore_from_file(
        &self,
        def: DomainDef,
        path: &Path,
        paused: bool,
        caller: Caller,
    ) -> Result<Arc<Domain>> {
        let opts = StartOptions {
            paused,
            force_boot: false,
        };
        self.create_from(def, opts, caller, Some(path), &[]).await
    }

    /// Stop the save or whole-state dump `dom` runs (it holds the job: this does not wait
    /// for it); libvirt's words for a domain with no job, or one that cannot be aborted.
    pub async fn abort_job(&self, dom: &Arc<Domain>) -> Result<()> {
        match dom.running_job() {
            "" if self.backup_running(dom) => self.backup_abort(dom).await,
            "" => Err(Error::InvalidState("no job is active on the domain".into())),
            "save" | "managed save" | "dump" => Ok(dom.driver.abort_job(&self.ctx(dom)).await?),
            "migration out" => self.abort_migration(dom).await,
            other => Err(Error::InvalidState(format!(
                "cannot abort the '{other}' job"
            ))),
        }
    }

    /// Run the inactive domain `dom` from the save image at `path` with `def` as its live
    /// definition.
    pub(crate) async fn restore_into(
        &self,
        dom: &Arc<Domain>,
        def: DomainDef,
        path: &Path,
        paused: bool,
    ) -> Result<()> {
        let _job = dom.begin_job("restore").await?;
        if lock(&dom.data).status.state.is_active() {
            return Err(Error::InvalidState(format!(
                "domain '{}' is already active",
                dom.name()
            )));
        }
        let def = self.resolve_networks(Arc::new(def)).await?;
        let id = self.next_id();
        let started = dom
            .driver
            .restore_from_file(&self.ctx(dom), &def, path, paused, id)
            .await?;
        let uuid = dom.uuid;
        self.update(dom, |d| {
            d.live = Some(started.live.map(Arc::new).unwrap_or(def));
            d.id = Some(id);
            d.status = Status::new(DomainState::Running, StateReason::Restored);
            d.warning = None;
            d.taints.clear();
            let event = Lifecycle::Started(StartedDetail::Restored);
            ((), vec![super::Event::Lifecycle { uuid, event }])
        });
        if paused {
            self.mark_paused(dom, StateReason::User, SuspendedDetail::Restored);
        }
        Ok(())
    }

    /// Dump the running guest's memory to `path`, then leave it as `after` says.
    pub async fn core_dump(
        &self,
        dom: &Arc<Domain>,
        path: &Path,
        opts: DumpOptions,
        after: AfterDump,
    ) -> Result<()> {
        let _job = dom.begin_job("dump").await?;
        Self::require(dom, Operation::CoreDump)?;
        let ctx = self.ctx(dom);
        dom.driver.core_dump(&ctx, path, opts).await?;
        match after {
            AfterDump::Continue => {}
            AfterDump::Crash => {
                dom.driver.destroy(&ctx, false).await?;
                self.mark_stopped(dom, StateReason::Crashed, StoppedDetail::Crashed);
            }
            AfterDump::Reset => dom.driver.reset(&ctx).await?,
        }
        Ok(())
    }

    /// How often the balloon collects memory statistics (seconds; 0 stops it), in the
    /// definitions `affect` names; the running guest's through its driver.
    pub async fn set_memory_stats_period(
        &self,
        dom: &Arc<Domain>,
        secs: u32,
        affect: Affect,
    ) -> Result<()> {
        let op = Operation::SetMemoryStatsPeriod;
        let _job = dom.begin_job(op.job().unwrap_or_default()).await?;
        let r = Self::plan_resize(dom, op, affect, |def, _| {
            let mut def = def.clone();
            match def
                .devices
                .memballoon
                .as_mut()
                .filter(|m| m.model != crate::model::devices::MemballoonModel::None)
            {
                Some(m) => m.stats_period = Some(secs),
                None => {
                    return Err(Error::Failed(
                        "No memory balloon device configured, can not set the collection \
                         period"
                            .into(),
                    ));
                }
            }
            Ok(def)
        })?;
        if r.live.is_some() {
            dom.driver
                .set_memory_stats_period(&self.ctx(dom), secs)
                .await?;
        }
        self.commit_resize(dom, r).await
    }
}

/// The XML of a save image's definition, with secrets when `secure`.
pub fn save_image_xml(def: &DomainDef, secure: bool) -> String {
    def.to_xml(&FormatOptions { id: None, secure })
}

/// libvirt's ABI check, as far as a save image needs it: the replacement XML is of the
/// same domain.
pub fn same_domain(old: &DomainDef, new: &DomainDef) -> Result<()> {
    if old.name != new.name {
        return Err(Error::NotSupported(format!(
            "Target domain name '{}' does not match source '{}'",
            new.name, old.name
        )));
    }
    if old.uuid != new.uuid {
        return Err(Error::NotSupported(format!(
            "Target domain uuid {} does not match source {}",
            new.uuid, old.uuid
        )));
    }
    Ok(())
}
