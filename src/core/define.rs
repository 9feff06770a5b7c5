//! Defining, creating and undefining domains, and their autostart flag.

use std::{os::fd::OwnedFd, sync::Arc};

use super::{
    Core, Domain, DomainData, Error, Event, Result,
    events::lock,
    options::{StartOptions, UndefineOptions},
    snapshots::SnapshotTree,
    store::DomainRecord,
    store_io,
};
use crate::drivers::UndefineFiles;
use crate::model::{
    DomainDef,
    state::{
        DefinedDetail, DomainState, Lifecycle, StartedDetail, StateReason, Status, UndefinedDetail,
    },
};

/// Where a created domain's guest comes from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Origin<'a> {
    /// It boots.
    Boot,
    /// Restored from this save image.
    Image(&'a std::path::Path),
    /// An incoming migration, listened for at this address (empty: every address).
    Migration { listen: &'a str },
}

/// Who asks to define a domain.
#[derive(Debug, Clone, Copy, Default)]
pub struct Caller {
    /// The caller's uid when it is not root: a new domain records it as its owner, and a
    /// redefinition keeps the existing owner. `None` (root, or the session bus) takes the
    /// owner the XML names.
    pub uid: Option<u32>,
}

impl Core {
    /// Parse domain XML and check that an enabled driver runs its type. The driver's own
    /// checks wait for its defaults (define and create apply them): before them, a
    /// definition such as virt-install's index-less `pcie-root-port`s would look invalid.
    pub fn parse_domain(&self, xml: &str) -> Result<DomainDef> {
        let def = DomainDef::from_xml(xml)?;
        if self.driver_for(def.domain_type).is_none() {
            return Err(self.no_driver(&def));
        }
        Ok(def)
    }

    /// The driver for `def`, once it has filled in its defaults and checked the result.
    async fn prepared(&self, def: &mut DomainDef) -> Result<Arc<dyn crate::drivers::Driver>> {
        let driver = self
            .driver_for(def.domain_type)
            .ok_or_else(|| self.no_driver(def))?;
        driver.post_parse(def).await?;
        driver.check(def)?;
        Ok(driver)
    }

    fn no_driver(&self, def: &DomainDef) -> Error {
        Error::NotSupported(format!(
            "no enabled driver runs domains of type '{}' (enabled: {})",
            def.domain_type.as_str(),
            self.driver_names().join(", ")
        ))
    }

    /// Which existing domain, if any, `def` would redefine; an error if it clashes with one
    /// (or with a domain being created).
    fn find_existing(&self, def: &DomainDef) -> Result<Option<Arc<Domain>>> {
        let reg = self.registry_read();
        if let Some((name, uuid)) = reg
            .reserved
            .iter()
            .find(|(n, u)| *n == def.name || *u == def.uuid)
        {
            return Err(Error::AlreadyExists(format!(
                "domain '{name}' (UUID {uuid}) is being created"
            )));
        }
        if let Some(other) = reg.by_name.get(&def.name)
            && other.uuid != def.uuid
        {
            return Err(Error::AlreadyExists(format!(
                "domain '{}' already exists with UUID {}",
                def.name, other.uuid
            )));
        }
        let Some(dom) = reg.by_uuid.get(&def.uuid).cloned() else {
            return Ok(None);
        };
        drop(reg);
        let d = lock(&dom.data);
        if d.def.name != def.name {
            return Err(Error::AlreadyExists(format!(
                "UUID {} already belongs to domain '{}'",
                def.uuid, d.def.name
            )));
        }
        if d.def.domain_type != def.domain_type {
            return Err(Error::InvalidArgument(format!(
                "domain '{}' is of type '{}'; a redefinition cannot change it to '{}'",
                def.name,
                d.def.domain_type.as_str(),
                def.domain_type.as_str()
            )));
        }
        drop(d);
        Ok(Some(dom))
    }

    /// Define a persistent domain, or redefine the one with the same UUID. A redefinition
    /// waits only for jobs on that domain.
    pub async fn define(&self, mut def: DomainDef, caller: Caller) -> Result<Arc<Domain>> {
        let driver = self.prepared(&mut def).await?;
        loop {
            if let Some(dom) = self.find_existing(&def)? {
                let job = match dom.begin_job("define").await {
                    Err(Error::NotFound(..)) => continue, // undefined meanwhile: define anew
                    other => other?,
                };
                self.redefine(&dom, def, caller).await?;
                drop(job);
                return Ok(dom);
            }
            let _defining = self.inner.define_lock.lock().await;
            if self.find_existing(&def)?.is_some() {
                continue; // defined meanwhile: redefine it
            }
            if caller.uid.is_some() {
                def.set_owner_uid(caller.uid);
            }
            self.save(DomainRecord {
                def: def.clone(),
                autostart: false,
                current_snapshot: None,
                managed_save: None,
            })
            .await?;
            let dom = Arc::new(Domain::new(driver, new_data(def, true)));
            self.insert(&dom, Lifecycle::Defined(DefinedDetail::Added));
            return Ok(dom);
        }
    }

    /// Replace an existing domain's persistent definition; its job is held.
    async fn redefine(&self, dom: &Arc<Domain>, mut def: DomainDef, caller: Caller) -> Result<()> {
        let (autostart, current, managed_save, owner) = {
            let d = lock(&dom.data);
            (
                d.autostart && d.persistent,
                d.snapshots.current().map(str::to_owned),
                d.managed_save.clone(),
                d.def.owner_uid(),
            )
        };
        if caller.uid.is_some() || def.owner_uid().is_none() {
            def.set_owner_uid(owner);
        }
        self.save(DomainRecord {
            def: def.clone(),
            autostart,
            current_snapshot: current,
            managed_save,
        })
        .await?;
        self.update(dom, |d| {
            // a transient domain gains its first definition: added, as libvirt says
            let detail = if d.persistent {
                DefinedDetail::Updated
            } else {
                DefinedDetail::Added
            };
            d.def = Arc::new(def);
            d.persistent = true;
            d.autostart = autostart;
            let ev = Lifecycle::Defined(detail);
            (
                (),
                vec![Event::Lifecycle {
                    uuid: dom.uuid,
                    event: ev,
                }],
            )
        });
        Ok(())
    }

    /// Put a new domain in the registry and announce it.
    fn insert(&self, dom: &Arc<Domain>, event: Lifecycle) {
        self.insert_with(dom, None, event);
    }

    /// [`Self::insert`], with `first` announced between the domain and its lifecycle event.
    fn insert_with(&self, dom: &Arc<Domain>, first: Option<Event>, event: Lifecycle) {
        let info = {
            let d = lock(&dom.data);
            let mut reg = self.registry_write();
            reg.by_name
                .insert(d.def.name.clone(), super::Named::new(dom));
            reg.by_uuid.insert(dom.uuid, dom.clone());
            d.info(dom.driver.name())
        };
        let ev = self.events();
        ev.publish(Event::DomainAdded {
            info: Arc::new(info),
        });
        if let Some(first) = first {
            ev.publish(first);
        }
        ev.publish(Event::Lifecycle {
            uuid: dom.uuid,
            event,
        });
    }

    /// Create and start a transient domain. As libvirt does, XML naming an inactive persistent
    /// domain starts that domain with this XML as its live definition. The domain appears
    /// once it runs; while its hypervisor starts, its name and UUID are reserved.
    pub async fn create(
        &self,
        def: DomainDef,
        opts: StartOptions,
        caller: Caller,
    ) -> Result<Arc<Domain>> {
        self.create_from(def, opts, caller, None, &[]).await
    }

    /// [`Core::create`] with `files` handed to the guest (libvirt's
    /// `virDomainCreateXMLWithFiles`: a container's init has them as descriptors 3 and on).
    pub async fn create_with_files(
        &self,
        def: DomainDef,
        opts: StartOptions,
        caller: Caller,
        files: &[OwnedFd],
    ) -> Result<Arc<Domain>> {
        self.create_from(def, opts, caller, None, files).await
    }

    /// [`Core::create`], or with `image` a restore from that save image: an inactive
    /// domain of the same UUID runs from it, else a new transient domain does.
    pub(crate) async fn create_from(
        &self,
        def: DomainDef,
        opts: StartOptions,
        caller: Caller,
        image: Option<&std::path::Path>,
        files: &[OwnedFd],
    ) -> Result<Arc<Domain>> {
        let origin = match image {
            Some(i) => Origin::Image(i),
            None => Origin::Boot,
        };
        Ok(self
            .create_origin(def, opts, caller, origin, files)
            .await?
            .0)
    }

    /// [`Core::create_from`] from any [`Origin`] (`files` for a boot); with an incoming
    /// migration, also the URI the source sends to.
    pub(crate) async fn create_origin(
        &self,
        mut def: DomainDef,
        opts: StartOptions,
        caller: Caller,
        origin: Origin<'_>,
        files: &[OwnedFd],
    ) -> Result<(Arc<Domain>, Option<String>)> {
        let image = match origin {
            Origin::Image(i) => Some(i),
            _ => None,
        };
        let driver = self.prepared(&mut def).await?;
        if let Some(dom) = self.find_existing(&def)? {
            if let Origin::Migration { listen } = origin {
                def.set_owner_uid(lock(&dom.data).def.owner_uid());
                let uri = self.incoming_into(&dom, def, listen).await?;
                return Ok((dom, Some(uri)));
            }
            if let Some(image) = image {
                def.set_owner_uid(lock(&dom.data).def.owner_uid());
                self.restore_into(&dom, def, image, opts.paused).await?;
                return Ok((dom, None));
            }
            def.set_owner_uid(lock(&dom.data).def.owner_uid());
            self.start_with(&dom, opts, Some(def), StateReason::Booted, files)
                .await
                .map_err(|e| match e {
                    Error::InvalidState(_) => Error::AlreadyExists(format!(
                        "domain '{}' already exists and is running",
                        dom.name()
                    )),
                    e => e,
                })?;
            return Ok((dom, None));
        }
        if caller.uid.is_some() {
            def.set_owner_uid(caller.uid);
        }
        self.resolve_volumes(&mut def)?;
        let key = (def.name.clone(), def.uuid);
        {
            let _defining = self.inner.define_lock.lock().await;
            self.find_existing(&def)?.map_or(Ok(()), |d| {
                Err(Error::AlreadyExists(format!(
                    "domain '{}' already exists",
                    d.name()
                )))
            })?;
            self.registry_write().reserved.push(key.clone());
        }
        let dom = Arc::new(Domain::new(driver.clone(), new_data(def.clone(), false)));
        let id = self.next_id();
        let mut uri = None;
        let started = match self.resolve_networks(Arc::new(def.clone())).await {
            Ok(resolved) => match origin {
                Origin::Image(image) => driver
                    .restore_from_file(&self.ctx(&dom), &resolved, image, opts.paused, id)
                    .await
                    .map_err(Error::from),
                Origin::Boot => driver
                    .start_with_files(&self.ctx(&dom), &resolved, opts.paused, id, files)
                    .await
                    .map_err(Error::from),
                Origin::Migration { listen } => driver
                    .migrate_incoming(&self.ctx(&dom), &resolved, id, listen)
                    .await
                    .map(|(s, u)| {
                        uri = Some(u);
                        s
                    })
                    .map_err(Error::from),
            },
            Err(e) => Err(e),
        };
        let _defining = self.inner.define_lock.lock().await;
        self.registry_write().reserved.retain(|k| *k != key);
        let started = started?;
        let agent = super::lifecycle::agent_at_start(dom.uuid, started.agent);
        {
            let mut d = lock(&dom.data);
            d.live = Some(started.live.map(Arc::new).unwrap_or_else(|| d.def.clone()));
            d.id = Some(id);
            d.status = match origin {
                Origin::Image(_) => Status::new(DomainState::Running, StateReason::Restored),
                Origin::Boot => Status::new(DomainState::Running, StateReason::Booted),
                // waiting for its state: paused, as libvirt's incoming domains are
                Origin::Migration { .. } => Status::new(DomainState::Paused, StateReason::Migrated),
            };
        }
        let detail = match origin {
            Origin::Image(_) => StartedDetail::Restored,
            Origin::Boot => StartedDetail::Booted,
            Origin::Migration { .. } => StartedDetail::Migrated,
        };
        self.insert_with(&dom, agent, Lifecycle::Started(detail));
        drop(_defining);
        if opts.paused && !matches!(origin, Origin::Migration { .. }) {
            self.mark_paused_after_start(&dom);
        }
        Ok((dom, uri))
    }

    /// Remove a persistent domain's definition. A running domain keeps running, transient.
    pub async fn undefine(&self, dom: &Arc<Domain>, opts: UndefineOptions) -> Result<()> {
        let _job = dom.begin_job("undefine").await?;
        let active = {
            let d = lock(&dom.data);
            if !d.persistent {
                return Err(Error::InvalidState(format!(
                    "domain '{}' is transient: there is no definition to remove",
                    d.def.name
                )));
            }
            if !d.snapshots.is_empty() && !opts.snapshots_metadata {
                return Err(Error::InvalidState(format!(
                    "domain '{}' has {} snapshot(s); pass option 'snapshots-metadata' to \
                     remove their metadata too",
                    d.def.name,
                    d.snapshots.len()
                )));
            }
            if !d.status.is_active() && !d.checkpoints.is_empty() && !opts.checkpoints_metadata {
                return Err(Error::InvalidState(format!(
                    "cannot delete inactive domain with {} checkpoints",
                    d.checkpoints.len()
                )));
            }
            if d.managed_save.is_some() && !opts.managed_save {
                return Err(Error::InvalidState(format!(
                    "domain '{}' has a managed save image; pass option 'managed-save' to \
                     remove it too",
                    d.def.name
                )));
            }
            d.status.is_active()
        };
        if opts.nvram && opts.keep_nvram {
            return Err(Error::InvalidArgument(
                "options 'nvram' and 'keep-nvram' contradict each other".into(),
            ));
        }
        let files = UndefineFiles {
            nvram: opts.nvram,
            keep_nvram: opts.keep_nvram,
            keep_tpm: opts.keep_tpm,
        };
        let def = lock(&dom.data).def.clone();
        dom.driver.undefine_check(&def, files)?;
        if lock(&dom.data).managed_save.is_some() {
            dom.driver.managed_save_remove(&self.ctx(dom)).await?;
        }
        if !active && opts.checkpoints_metadata {
            self.checkpoints_forget(dom).await?;
        }
        let _defining = self.inner.define_lock.lock().await;
        let store = self.store().clone();
        let uuid = dom.uuid;
        store_io(move || store.remove_domain(&uuid)).await?;
        if let Err(e) = dom.driver.undefine_files(&def, files).await {
            tracing::warn!("domain '{}' undefined, but: {e}", def.name);
        }
        self.update(dom, |d| {
            d.persistent = false;
            d.autostart = false;
            d.managed_save = None;
            d.snapshots = SnapshotTree::default();
            let ev = Lifecycle::Undefined(UndefinedDetail::Removed);
            ((), vec![Event::Lifecycle { uuid, event: ev }])
        });
        if !active {
            self.remove(dom);
        }
        Ok(())
    }

    pub async fn set_autostart(&self, dom: &Arc<Domain>, autostart: bool) -> Result<()> {
        let _job = dom.begin_job("set autostart").await?;
        let rec = {
            let d = lock(&dom.data);
            if !d.persistent {
                return Err(Error::InvalidState(format!(
                    "domain '{}' is transient: autostart needs a persistent definition",
                    d.def.name
                )));
            }
            if d.autostart == autostart {
                return Ok(());
            }
            DomainRecord {
                autostart,
                ..d.record()
            }
        };
        self.save(rec).await?;
        self.update(dom, |d| {
            d.autostart = autostart;
            ((), Vec::new())
        });
        Ok(())
    }

    pub(crate) async fn save(&self, rec: DomainRecord) -> Result<()> {
        let store = self.store().clone();
        store_io(move || store.save_domain(&rec)).await
    }
}

/// The data of a domain that is not running.
pub(crate) fn new_data(def: DomainDef, persistent: bool) -> DomainData {
    DomainData {
        def: Arc::new(def),
        live: None,
        persistent,
        autostart: false,
        managed_save: None,
        status: Status::shut_off(StateReason::Unknown),
        id: None,
        snapshots: SnapshotTree::default(),
        checkpoints: Default::default(),
        warning: None,
        taints: Vec::new(),
        removed: false,
        job: "",
        job_progress: 0.0,
    }
}
