//! The core: the registry of domains, per-domain jobs, routing to drivers, persistence and
//! event fan-out. It knows nothing of D-Bus; front ends hold a [`Core`] and call it.

pub mod domain;
pub mod error;
pub mod events;
pub mod host;
pub mod hostdev;
pub mod info;
pub mod options;
pub mod snapshots;
pub mod store;

pub mod agent;
pub mod backup;
pub mod block;
mod blockinfo;
pub mod capabilities;
pub mod checkpoints;
pub mod console;
pub mod cpu_ops;
pub mod critical;
pub mod define;
mod devices;
mod guest;
pub mod iftune;
pub mod keys;
mod lifecycle;
pub mod livecfg;
pub mod lxc_ops;
mod managed_save;
mod memory;
pub mod metadata;
pub mod migrate;
pub mod misc;
pub mod network_ops;
pub mod ops;
mod passthrough;
mod resize;
pub mod save_file;
pub mod saved_xml;
mod screenshot;
mod snapshot_ops;
pub mod storage_ops;
pub mod tune;
mod vcpus;

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, RwLock, Weak,
        atomic::{AtomicU32, Ordering},
    },
};

use uuid::Uuid;

pub use self::{
    blockinfo::BlockInfo,
    domain::Domain,
    error::{Error, Missing, Result},
    events::{Event, EventBus},
    info::{DomainInfo, DomainProp, SnapshotInfo, SnapshotKind, SnapshotProp},
    snapshot_ops::disk_images as disk_images_of,
};
use self::{
    critical::Critical,
    domain::DomainData,
    events::lock,
    snapshots::{Snapshot, SnapshotTree},
    store::{LoadedDomain, Store},
};
use crate::{
    drivers::{DomainCtx, Driver, DriverEvent, EventSink},
    model::{
        DomainType, FormatOptions,
        state::{StateReason, Status},
    },
};

/// A handle to the core; cheap to clone.
#[derive(Clone)]
pub struct Core {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    drivers: Vec<(DomainType, Arc<dyn Driver>)>,
    registry: RwLock<Registry>,
    store: Store,
    events: EventBus,
    /// Serializes changes to the set of names and UUIDs. Held only briefly, never while
    /// waiting for a domain's job or a driver: the lock order is a domain's job lock first,
    /// then this one.
    define_lock: tokio::sync::Mutex<()>,
    next_id: AtomicU32,
    sink: Arc<dyn EventSink>,
    critical: Critical,
    /// Storage pools and volumes (see `storage_ops`).
    storage: std::sync::OnceLock<crate::storage::Storage>,
    /// The virtual network driver, when the daemon runs one (see [`Core::attach_networks`]).
    networks: std::sync::OnceLock<Arc<crate::network::NetworkDriver>>,
}

/// Domains by UUID, and by name in order so that listings need no sort (nor a lookup per
/// domain).
#[derive(Default)]
struct Registry {
    by_uuid: HashMap<Uuid, Arc<Domain>>,
    by_name: BTreeMap<String, Named>,
    /// Names and UUIDs of transient domains being created (their hypervisor starting), so
    /// that nothing else takes them meanwhile.
    reserved: Vec<(String, Uuid)>,
}

/// A domain in the name index, with what a listing by kind reads kept beside it: listing
/// thousands of UUIDs touches no domain.
struct Named {
    uuid: Uuid,
    domain_type: DomainType,
    dom: Arc<Domain>,
}

impl Named {
    fn new(dom: &Arc<Domain>) -> Self {
        Self {
            uuid: dom.uuid,
            domain_type: dom.domain_type,
            dom: dom.clone(),
        }
    }
}

/// Forwards driver events to the core without keeping it alive.
struct Sink(Weak<Inner>);

impl EventSink for Sink {
    fn driver_event(&self, uuid: Uuid, event: DriverEvent) {
        if let Some(inner) = self.0.upgrade() {
            Core { inner }.apply_driver_event(uuid, event);
        }
    }
}

impl Core {
    /// A core over `drivers` (each with the domain types it runs), with state in `store`.
    /// Nothing is loaded yet: see [`Core::load`].
    pub fn new(drivers: Vec<(DomainType, Arc<dyn Driver>)>, store: Store) -> Self {
        let inner = Arc::new_cyclic(|weak| Inner {
            drivers,
            registry: RwLock::new(Registry::default()),
            store,
            events: EventBus::default(),
            define_lock: tokio::sync::Mutex::new(()),
            next_id: AtomicU32::new(1),
            sink: Arc::new(Sink(weak.clone())),
            critical: Critical::default(),
            storage: std::sync::OnceLock::new(),
            networks: std::sync::OnceLock::new(),
        });
        Self { inner }
    }

    /// Load every persistent domain and its snapshots. Domains of a type no enabled driver
    /// runs are kept on disk and skipped with a log line.
    pub fn load(&self) -> usize {
        let loaded = self.inner.store.load();
        let mut reg = self.registry_write();
        let mut count = 0;
        for LoadedDomain { record, snapshots } in loaded {
            let Some(driver) = self.driver_for(record.def.domain_type) else {
                tracing::warn!(
                    "domain '{}' is of type '{}', which no enabled driver runs; skipped",
                    record.def.name,
                    record.def.domain_type.as_str()
                );
                continue;
            };
            if reg.by_name.contains_key(&record.def.name) {
                tracing::error!(
                    "domain name '{}' is defined twice; skipped {}",
                    record.def.name,
                    record.def.uuid
                );
                continue;
            }
            let mut tree = SnapshotTree::default();
            for def in snapshots {
                tree.insert(Snapshot {
                    kind: snapshot_kind(&def),
                    def: Arc::new(def),
                });
            }
            tree.set_current(record.current_snapshot.as_deref());
            let data = DomainData {
                autostart: record.autostart,
                managed_save: record.managed_save,
                snapshots: tree,
                checkpoints: checkpoints::CheckpointList::from_loaded(
                    self.inner
                        .store
                        .checkpoint_dir(&record.def.uuid)
                        .map(|d| checkpoints::load(&d))
                        .unwrap_or_default(),
                ),
                ..define::new_data(record.def, true)
            };
            let dom = Arc::new(Domain::new(driver, data));
            reg.by_name.insert(dom.name(), Named::new(&dom));
            reg.by_uuid.insert(dom.uuid, dom);
            count += 1;
        }
        count
    }

    /// Reattach to the guests that outlived an earlier daemon, as each driver's runtime
    /// records list them; call once after [`Core::load`] and before serving. A guest whose
    /// record has no persistent definition comes back as a transient domain. A guest that is
    /// gone leaves its persistent domain shut off with reason `crashed`. Returns how many
    /// guests run. Ids continue above the highest one recovered, so they stay unique.
    pub async fn recover(&self) -> usize {
        let mut done: Vec<&'static str> = Vec::new();
        let mut max_id = 0;
        let mut running = 0;
        let drivers: Vec<Arc<dyn Driver>> =
            self.inner.drivers.iter().map(|(_, d)| d.clone()).collect();
        for driver in drivers {
            if done.contains(&driver.name()) {
                continue;
            }
            done.push(driver.name());
            for guest in driver.runtime_guests() {
                let Some(dom) = self.recovered_domain(&driver, guest) else {
                    continue;
                };
                match driver.recover(&self.ctx(&dom)).await {
                    Ok(r) => {
                        max_id = max_id.max(r.id);
                        running += 1;
                        let mut d = lock(&dom.data);
                        d.live = Some(Arc::new(r.live));
                        d.id = Some(r.id);
                        d.status = r.status;
                        tracing::info!(
                            "domain '{}' still runs (id {}); reattached",
                            d.def.name,
                            r.id
                        );
                    }
                    Err(e) => {
                        let persistent = {
                            let mut d = lock(&dom.data);
                            tracing::warn!(
                                "domain '{}' did not survive the daemon restart: {e}",
                                d.def.name
                            );
                            d.status = Status::shut_off(StateReason::Crashed);
                            d.persistent
                        };
                        if !persistent {
                            let mut reg = self.registry_write();
                            reg.by_uuid.remove(&dom.uuid);
                            reg.by_name.retain(|_, n| n.uuid != dom.uuid);
                            lock(&dom.data).removed = true;
                        }
                    }
                }
            }
        }
        self.inner
            .next_id
            .fetch_max(max_id.saturating_add(1), Ordering::Relaxed);
        // images made for snapshots that never completed (a daemon killed half-way)
        let doms: Vec<Arc<Domain>> = self.registry_read().by_uuid.values().cloned().collect();
        for dom in doms {
            self.sweep_images(&dom).await;
        }
        running
    }

    /// The domain a runtime record belongs to: the loaded persistent one, or a new transient
    /// one registered (without events: nobody listens yet) from the live definition.
    fn recovered_domain(
        &self,
        driver: &Arc<dyn Driver>,
        guest: crate::drivers::RuntimeGuest,
    ) -> Option<Arc<Domain>> {
        if let Some(dom) = self.get(&guest.uuid) {
            if dom.driver.name() != driver.name() {
                tracing::error!(
                    "runtime record of domain {} is the {} driver's, but the domain is the {} \
                     driver's; ignored",
                    guest.uuid,
                    driver.name(),
                    dom.driver.name()
                );
                return None;
            }
            return Some(dom);
        }
        let mut reg = self.registry_write();
        if let Some(other) = reg.by_name.get(&guest.live.name).map(|n| n.uuid) {
            tracing::error!(
                "transient domain '{}' ({}) still runs, but domain {other} now has its name; \
                 left alone",
                guest.live.name,
                guest.uuid
            );
            return None;
        }
        let dom = Arc::new(Domain::new(
            driver.clone(),
            define::new_data(guest.live, false),
        ));
        reg.by_name.insert(dom.name(), Named::new(&dom));
        reg.by_uuid.insert(dom.uuid, dom.clone());
        Some(dom)
    }

    /// Fill the persistent definitions stored by an earlier version with their driver's
    /// defaults and addresses, once, and store them: what `GetXML` shows from now on is what
    /// the next cold start runs. A running guest's live definition is left as it is, so its
    /// hardware changes only at its next cold start. Returns how many were rewritten.
    pub async fn canonicalize_stored(&self) -> usize {
        let mut changed = 0;
        for dom in self.domains() {
            let (before, persistent) = {
                let d = lock(&dom.data);
                ((*d.def).clone(), d.persistent)
            };
            if !persistent {
                continue;
            }
            let mut def = before.clone();
            if let Err(e) = dom.driver.post_parse(&mut def).await {
                tracing::warn!(
                    "domain '{}' keeps its stored definition: its defaults cannot be filled \
                     in: {e}",
                    before.name
                );
                continue;
            }
            if def == before {
                continue;
            }
            let rec = {
                let mut d = lock(&dom.data);
                d.def = Arc::new(def);
                d.record()
            };
            let store = self.inner.store.clone();
            match blocking(move || store.save_domain(&rec)).await {
                Ok(()) => changed += 1,
                Err(e) => tracing::error!(
                    "domain '{}': its canonical definition cannot be stored: {e}",
                    before.name
                ),
            }
        }
        changed
    }

    /// Start every domain marked autostart that is not running; failures are logged.
    pub async fn autostart(&self) {
        for dom in self.domains() {
            let wanted = {
                let d = lock(&dom.data);
                d.autostart && !d.status.is_active()
            };
            if wanted && let Err(e) = self.start(&dom, Default::default()).await {
                tracing::error!("autostart of domain '{}' failed: {e}", dom.name());
            }
        }
    }

    pub fn events(&self) -> &EventBus {
        &self.inner.events
    }

    /// The operations that must run to their end; the daemon waits for them before exiting.
    pub fn critical(&self) -> &Critical {
        &self.inner.critical
    }

    /// Names of the enabled drivers.
    pub fn driver_names(&self) -> Vec<&'static str> {
        let mut v: Vec<_> = self.inner.drivers.iter().map(|(_, d)| d.name()).collect();
        v.dedup();
        v
    }

    /// The domain types the enabled drivers run.
    pub fn domain_types(&self) -> Vec<DomainType> {
        self.inner.drivers.iter().map(|(t, _)| *t).collect()
    }

    /// The name of the driver that runs domains of type `t`.
    pub fn driver_name(&self, t: DomainType) -> Option<&'static str> {
        self.driver_for(t).map(|d| d.name())
    }

    fn driver_for(&self, t: DomainType) -> Option<Arc<dyn Driver>> {
        self.inner
            .drivers
            .iter()
            .find(|(dt, _)| *dt == t)
            .map(|(_, d)| d.clone())
    }

    fn registry_read(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        self.inner
            .registry
            .read()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn registry_write(&self) -> std::sync::RwLockWriteGuard<'_, Registry> {
        self.inner
            .registry
            .write()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Every domain, in no particular order.
    pub fn domains(&self) -> Vec<Arc<Domain>> {
        self.registry_read().by_uuid.values().cloned().collect()
    }

    pub fn domain_count(&self) -> usize {
        self.registry_read().by_uuid.len()
    }

    pub fn get(&self, uuid: &Uuid) -> Option<Arc<Domain>> {
        self.registry_read().by_uuid.get(uuid).cloned()
    }

    /// Find a domain by name, or by UUID in any of libvirt's spellings.
    pub fn lookup(&self, name_or_uuid: &str) -> Result<Arc<Domain>> {
        let reg = self.registry_read();
        if let Some(n) = reg.by_name.get(name_or_uuid) {
            return Ok(n.dom.clone());
        }
        if let Ok(u) = Uuid::parse_str(name_or_uuid)
            && let Some(d) = reg.by_uuid.get(&u)
        {
            return Ok(d.clone());
        }
        Err(Error::NotFound(
            Missing::Domain,
            format!("no domain with name or UUID '{name_or_uuid}'"),
        ))
    }

    /// Domains matching `filter`, sorted by name. A filter on types and drivers alone reads
    /// no domain's data (a listing of thousands takes no lock per domain).
    pub fn list(&self, filter: &options::ListFilter) -> Vec<Arc<Domain>> {
        let reg = self.registry_read();
        let by_kind = |n: &&Named| {
            (filter.domain_types.is_empty() || filter.domain_types.contains(&n.domain_type))
                && filter
                    .driver
                    .as_deref()
                    .is_none_or(|d| d == n.dom.driver.name())
        };
        let candidates = reg.by_name.values().filter(by_kind).map(|n| n.dom.clone());
        if !filter.reads_state() {
            return candidates.collect();
        }
        let candidates: Vec<Arc<Domain>> = candidates.collect();
        drop(reg);
        candidates
            .into_iter()
            .filter(|dom| {
                let d = lock(&dom.data);
                filter.matches(&options::ListFacts {
                    status: d.status,
                    persistent: d.persistent,
                    autostart: d.autostart,
                    managed_save: d.managed_save.is_some(),
                    snapshot_count: d.snapshots.len(),
                    driver: dom.driver.name(),
                    domain_type: dom.domain_type,
                })
            })
            .collect()
    }

    /// The UUIDs of the domains matching `filter`, sorted by name: [`Core::list`] for long
    /// listings that need no more than the UUIDs.
    pub fn list_uuids(&self, filter: &options::ListFilter) -> Vec<Uuid> {
        if filter.reads_state() || filter.driver.is_some() {
            return self.list(filter).iter().map(|d| d.uuid).collect();
        }
        let types = &filter.domain_types;
        self.registry_read()
            .by_name
            .values()
            .filter(|n| types.is_empty() || types.contains(&n.domain_type))
            .map(|n| n.uuid)
            .collect()
    }

    /// The domain's XML: the live definition while active unless `inactive` is asked.
    pub fn domain_xml(&self, dom: &Domain, opts: options::XmlOptions) -> Result<String> {
        let d = lock(&dom.data);
        if d.removed {
            return Err(dom.gone());
        }
        let (def, id) = match (&d.live, opts.inactive && d.persistent) {
            (Some(live), false) => (live, d.id.map(|i| i as i32)),
            _ => (&d.def, None),
        };
        if !opts.migratable && !opts.update_cpu {
            return Ok(def.to_xml(&FormatOptions {
                id,
                secure: opts.secure,
            }));
        }
        let mut copy = crate::model::DomainDef::clone(def);
        if opts.update_cpu {
            dom.driver.update_cpu(&mut copy)?;
        }
        let id = if opts.migratable {
            crate::model::migratable::formatted(&mut copy);
            // a driver that writes it through the inactive form writes no id
            if dom.driver.migratable(&mut copy, &d.def) {
                None
            } else {
                id
            }
        } else {
            id
        };
        Ok(copy.to_xml(&FormatOptions {
            id,
            secure: opts.secure,
        }))
    }

    pub(crate) fn ctx(&self, dom: &Domain) -> DomainCtx {
        DomainCtx {
            uuid: dom.uuid,
            name: dom.name(),
            sink: self.inner.sink.clone(),
        }
    }

    /// Change a domain's data and publish what changed: property changes first, then the
    /// lifecycle events `f` returns, in order.
    pub(crate) fn update<R>(
        &self,
        dom: &Domain,
        f: impl FnOnce(&mut DomainData) -> (R, Vec<Event>),
    ) -> R {
        let mut d = lock(&dom.data);
        let before = d.info(dom.driver.name());
        let snaps_before = d.snapshots.infos(dom.uuid);
        let (r, extra) = f(&mut d);
        let after = d.info(dom.driver.name());
        let changed = before.changes(&after);
        let ev = &self.inner.events;
        let snaps_after = d.snapshots.infos(dom.uuid);
        for old in &snaps_before {
            if !snaps_after.iter().any(|s| s.name == old.name) {
                ev.publish(Event::SnapshotRemoved {
                    domain: dom.uuid,
                    name: old.name.clone(),
                });
            }
        }
        for new in snaps_after {
            match snaps_before.iter().find(|s| s.name == new.name) {
                None => ev.publish(Event::SnapshotAdded {
                    info: Arc::new(new),
                }),
                Some(old) => {
                    let changed = old.changes(&new);
                    if !changed.is_empty() {
                        ev.publish(Event::SnapshotChanged {
                            info: Arc::new(new),
                            changed,
                        });
                    }
                }
            }
        }
        if !changed.is_empty() {
            ev.publish(Event::DomainChanged {
                info: Arc::new(after),
                changed,
            });
        }
        for e in extra {
            ev.publish(e);
        }
        r
    }

    /// Take a domain out of the registry for good (undefined, or a transient one stopped).
    pub(crate) fn remove(&self, dom: &Domain) {
        let names: Vec<String> = {
            let mut d = lock(&dom.data);
            if d.removed {
                return;
            }
            d.removed = true;
            d.snapshots.iter().map(|s| s.name().to_owned()).collect()
        };
        {
            let mut reg = self.registry_write();
            if reg
                .by_uuid
                .get(&dom.uuid)
                .is_some_and(|d| std::ptr::eq(d.as_ref(), dom))
            {
                reg.by_uuid.remove(&dom.uuid);
                reg.by_name.retain(|_, n| n.uuid != dom.uuid);
            }
        }
        dom.driver.forget(&dom.uuid);
        for name in names {
            self.inner.events.publish(Event::SnapshotRemoved {
                domain: dom.uuid,
                name,
            });
        }
        self.inner
            .events
            .publish(Event::DomainRemoved { uuid: dom.uuid });
    }

    /// Write a persistent domain's file; a no-op for transient ones.
    pub(crate) async fn persist(&self, dom: &Domain) -> Result<()> {
        let rec = {
            let d = lock(&dom.data);
            if !d.persistent || d.removed {
                return Ok(());
            }
            d.record()
        };
        let store = self.inner.store.clone();
        store_io(move || store.save_domain(&rec)).await
    }

    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    fn next_id(&self) -> u32 {
        self.inner.next_id.fetch_add(1, Ordering::Relaxed)
    }
}

/// Run blocking file I/O off the async threads.
pub(crate) async fn blocking<T: Send + 'static, E: std::fmt::Display + Send + 'static>(
    f: impl FnOnce() -> std::result::Result<T, E> + Send + 'static,
) -> Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| Error::Failed(e.to_string())),
        Err(e) => Err(Error::Failed(format!("storage task failed: {e}"))),
    }
}

/// Run a store operation off the async threads, keeping the kind of its error (a file over
/// the size limit is `InvalidArgument`).
pub(crate) async fn store_io<T: Send + 'static>(
    f: impl FnOnce() -> std::result::Result<T, store::StoreError> + Send + 'static,
) -> Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(Error::from),
        Err(e) => Err(Error::Failed(format!("storage task failed: {e}"))),
    }
}

pub use crate::model::snapshot_kind;

/// Seconds since the epoch.
pub(crate) fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
