//! The pools: their registry, persistence, life cycle and events.
//!
//! ```text
//! STATE/storage/pools/<uuid>.xml     a persistent pool's definition
//! STATE/storage/autostart/<uuid>     present when the pool starts with the daemon
//! STATE/storage/default-pool         written once the `default` pool was first set up
//! STATE/storage/owners/<uuid>.json   who created which volume (see [`super::owners`])
//! RUN/storage/active/<uuid>          present while a persistent pool runs
//! ```
//! A daemon restart starts the pools that were running again, as libvirt does; a host
//! reboot, which empties RUN, only the autostart ones.
//! Each pool has a job lock that its life-cycle operations and volume creation and removal
//! hold; long volume operations (upload, download, wipe, clone) mark just their volume busy,
//! so that other volumes stay usable, and stopping or refreshing the pool waits for none of
//! them but is refused while any runs.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard, RwLock},
};

use uuid::Uuid;

use super::{
    allow::check_pool_path,
    dir,
    owners::{self, Owner, Owners},
    perms::Perms,
    pool_xml::{PoolDef, PoolSizes},
    vol_xml::VolDef,
};
use crate::{
    core::{Error, Missing, Result},
    util::fs::{remove_durable, write_atomic},
};

/// What happened to a pool or a volume, for front ends to signal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageEvent {
    /// A pool appeared (`added`) or its properties changed; `info` is its state now.
    PoolChanged {
        info: PoolInfo,
        kind: PoolEventKind,
        added: bool,
    },
    /// A pool is gone (undefined while inactive, or a transient pool stopped).
    PoolRemoved { name: String, uuid: Uuid },
    /// A volume appeared, changed or went away.
    VolumeChanged {
        pool: String,
        name: String,
        kind: VolEventKind,
    },
    /// Progress of an upload or download: bytes done of the total (0 when unknown).
    Progress {
        pool: String,
        name: String,
        operation: &'static str,
        done: u64,
        total: u64,
    },
}

/// libvirt's pool event kinds (`virStoragePoolEventLifecycleType`), and a refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolEventKind {
    Defined,
    Undefined,
    Started,
    Stopped,
    Created,
    Deleted,
    Refreshed,
    /// Only properties changed (autostart).
    Changed,
}

impl PoolEventKind {
    /// libvirt's number for the event (`virStoragePoolEventLifecycleType`).
    pub fn libvirt(self) -> Option<i32> {
        Some(match self {
            Self::Defined => 0,
            Self::Undefined => 1,
            Self::Started => 2,
            Self::Stopped => 3,
            Self::Created => 4,
            Self::Deleted => 5,
            Self::Refreshed | Self::Changed => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VolEventKind {
    Created,
    Deleted,
    /// Its sizes or contents changed (resize, wipe, upload).
    Changed,
}

/// A pool's properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolInfo {
    pub name: String,
    pub uuid: Uuid,
    pub active: bool,
    pub persistent: bool,
    pub autostart: bool,
    pub sizes: PoolSizes,
    pub path: String,
}

/// A volume's properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolInfo {
    pub pool: String,
    pub name: String,
    pub key: String,
    pub path: String,
    pub capacity: u64,
    pub allocation: u64,
    pub format: String,
    /// libvirt's volume type number (`virStorageVolType`): 0 file, 2 dir.
    pub vol_type: i32,
    /// The job running on the volume (upload, wipe...), or empty.
    pub job: String,
}

impl VolInfo {
    pub(crate) fn of(pool: &str, v: &VolDef) -> VolInfo {
        let path = v.target.path.clone().unwrap_or_default();
        VolInfo {
            pool: pool.to_string(),
            name: v.name.clone(),
            key: v.key.clone().unwrap_or_else(|| path.clone()),
            path,
            capacity: v.capacity.unwrap_or(0),
            allocation: v.allocation.unwrap_or(0),
            format: v
                .target
                .format
                .map(|f| f.as_str().to_string())
                .unwrap_or_default(),
            vol_type: match v.vol_type {
                Some(super::VolType::Dir) => 2,
                Some(super::VolType::Block) => 1,
                _ => 0,
            },
            job: String::new(),
        }
    }
}

/// Settings of the storage subsystem.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Where definitions are kept (`STATE/storage`); `None` keeps nothing.
    pub state_dir: Option<PathBuf>,
    /// Directories pools may be in (or under).
    pub pool_dirs: Vec<PathBuf>,
    /// Where the `default` pool goes, set up on the first start; `None` for no default pool.
    pub default_pool: Option<PathBuf>,
    /// Where running pools are marked (`RUN/storage`); `None` marks nothing.
    pub run_dir: Option<PathBuf>,
}

pub(crate) struct PoolState {
    /// The definition the pool runs with (a redefinition waits for the next start).
    pub(crate) def: Arc<PoolDef>,
    /// The persistent definition, when it differs from `def`.
    pub(crate) next: Option<Arc<PoolDef>>,
    pub(crate) persistent: bool,
    pub(crate) autostart: bool,
    pub(crate) active: bool,
    pub(crate) sizes: PoolSizes,
    pub(crate) live_perms: Option<Perms>,
    pub(crate) volumes: BTreeMap<String, Arc<VolDef>>,
    /// Volumes with a job running (upload, wipe, being created...), with the job's name.
    pub(crate) busy: BTreeMap<String, &'static str>,
    /// Who created which volume (of those a non-root caller created); loaded with the
    /// volumes when the pool starts.
    pub(crate) owners: Owners,
    pub(crate) removed: bool,
}

pub struct Pool {
    pub uuid: Uuid,
    pub(crate) job: tokio::sync::Mutex<()>,
    pub(crate) state: Mutex<PoolState>,
    /// Serialises writes of the owners file, so that the last one written is the newest.
    owners_io: Mutex<()>,
}

impl Pool {
    pub(crate) fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn name(&self) -> String {
        self.lock().def.name.clone()
    }

    pub fn info(&self) -> PoolInfo {
        let s = self.lock();
        PoolInfo {
            name: s.def.name.clone(),
            uuid: self.uuid,
            active: s.active,
            persistent: s.persistent,
            autostart: s.autostart,
            sizes: s.sizes,
            path: s.def.path.clone(),
        }
    }
}

type Sink = Arc<dyn Fn(StorageEvent) + Send + Sync>;

/// The storage subsystem; cheap to clone.
#[derive(Clone)]
pub struct Storage {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) settings: Settings,
    /// Pools live in memory only (see [`super::memory`]).
    pub(crate) memory: bool,
    pools: RwLock<BTreeMap<String, Arc<Pool>>>,
    /// Serialises changes to the set of names and UUIDs.
    define_lock: tokio::sync::Mutex<()>,
    sink: RwLock<Option<Sink>>,
}

fn not_found(what: &str) -> Error {
    Error::NotFound(Missing::Object, what.to_string())
}

impl Storage {
    pub fn new(settings: Settings) -> Storage {
        Self::with(settings, false)
    }

    /// Pools and volumes in memory only, as libvirt's test driver keeps them.
    pub fn new_in_memory() -> Storage {
        Self::with(Settings::default(), true)
    }

    fn with(settings: Settings, memory: bool) -> Storage {
        Storage {
            inner: Arc::new(Inner {
                settings,
                memory,
                pools: RwLock::new(BTreeMap::new()),
                define_lock: tokio::sync::Mutex::new(()),
                sink: RwLock::new(None),
            }),
        }
    }

    /// Where events go (a front end's signal emitter, or the core's event bus).
    pub fn set_sink(&self, sink: impl Fn(StorageEvent) + Send + Sync + 'static) {
        *self.inner.sink.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(sink));
    }

    pub(crate) fn emit(&self, ev: StorageEvent) {
        let sink = self
            .inner
            .sink
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(s) = sink {
            s(ev);
        }
    }

    pub(crate) fn emit_pool(&self, pool: &Pool, kind: PoolEventKind) {
        self.emit(StorageEvent::PoolChanged {
            info: pool.info(),
            kind,
            added: false,
        });
    }

    fn emit_new_pool(&self, pool: &Pool, kind: PoolEventKind) {
        self.emit(StorageEvent::PoolChanged {
            info: pool.info(),
            kind,
            added: true,
        });
    }

    /// One event per volume of the pool, e.g. all created when it starts.
    fn emit_volumes(&self, name: &str, vols: Vec<String>, kind: VolEventKind) {
        for v in vols {
            self.emit(StorageEvent::VolumeChanged {
                pool: name.to_string(),
                name: v,
                kind,
            });
        }
    }

    fn dirs(&self) -> Option<(PathBuf, PathBuf)> {
        self.inner
            .settings
            .state_dir
            .as_ref()
            .map(|d| (d.join("pools"), d.join("autostart")))
    }

    // ---- lookups ----

    pub fn pools(&self) -> Vec<Arc<Pool>> {
        self.inner
            .pools
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub fn pool(&self, name: &str) -> Result<Arc<Pool>> {
        self.inner
            .pools
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
            .ok_or_else(|| not_found(&format!("no storage pool with matching name '{name}'")))
    }

    pub fn pool_by_uuid(&self, uuid: &Uuid) -> Result<Arc<Pool>> {
        self.pools()
            .into_iter()
            .find(|p| p.uuid == *uuid)
            .ok_or_else(|| not_found(&format!("no storage pool with matching uuid '{uuid}'")))
    }

    pub fn list_pools(&self) -> Vec<PoolInfo> {
        self.pools().iter().map(|p| p.info()).collect()
    }

    /// The pool's XML: the running definition with its sizes and the directory's
    /// permissions, or with `inactive` the persistent one.
    pub fn pool_xml(&self, name: &str, inactive: bool) -> Result<String> {
        let pool = self.pool(name)?;
        let s = pool.lock();
        if self.in_memory() {
            let def = if inactive { s.next.as_ref() } else { None }.unwrap_or(&s.def);
            return Ok(def.to_xml(s.sizes, None));
        }
        if inactive || !s.active {
            let def = s.next.as_ref().unwrap_or(&s.def);
            return Ok(def.to_xml(PoolSizes::default(), None));
        }
        Ok(s.def.to_xml(s.sizes, s.live_perms.as_ref()))
    }

    // ---- persistence ----

    fn save(&self, def: &PoolDef) -> Result<()> {
        let Some((pools, _)) = self.dirs() else {
            return Ok(());
        };
        fs::create_dir_all(&pools)
            .map_err(|e| Error::Failed(format!("cannot create '{}': {e}", pools.display())))?;
        let xml = def.to_xml(PoolSizes::default(), None);
        write_atomic(
            &pools.join(format!("{}.xml", def.uuid)),
            xml.as_bytes(),
            0o600,
        )
        .map_err(|e| Error::Failed(format!("cannot save pool '{}': {e}", def.name)))
    }

    fn forget(&self, uuid: &Uuid) -> Result<()> {
        let Some((pools, auto)) = self.dirs() else {
            return Ok(());
        };
        for p in [
            pools.join(format!("{uuid}.xml")),
            auto.join(uuid.to_string()),
        ] {
            match remove_durable(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(Error::Failed(format!(
                        "cannot remove '{}': {e}",
                        p.display()
                    )));
                }
            }
        }
        Ok(())
    }

    /// Marks a persistent pool as running (or not) for the next daemon start. Best effort:
    /// a pool that cannot be marked only stays stopped after a restart.
    fn mark_running(&self, pool: &Pool, on: bool) {
        let Some(dir) = self
            .inner
            .settings
            .run_dir
            .as_ref()
            .map(|d| d.join("active"))
        else {
            return;
        };
        let p = dir.join(pool.uuid.to_string());
        let r = if on && pool.lock().persistent {
            fs::create_dir_all(&dir).and_then(|()| write_atomic(&p, b"", 0o600))
        } else {
            match remove_durable(&p) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                r => r,
            }
        };
        if let Err(e) = r {
            tracing::warn!(
                "cannot mark storage pool {} in '{}': {e}",
                pool.uuid,
                p.display()
            );
        }
    }

    fn was_running(&self, uuid: &Uuid) -> bool {
        self.inner
            .settings
            .run_dir
            .as_ref()
            .is_some_and(|d| d.join("active").join(uuid.to_string()).exists())
    }

    fn save_autostart(&self, uuid: &Uuid, on: bool) -> Result<()> {
        let Some((_, auto)) = self.dirs() else {
            return Ok(());
        };
        let p = auto.join(uuid.to_string());
        if on {
            fs::create_dir_all(&auto)
                .map_err(|e| Error::Failed(format!("cannot create '{}': {e}", auto.display())))?;
            write_atomic(&p, b"", 0o600)
        } else {
            match remove_durable(&p) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                r => r,
            }
        }
        .map_err(|e| Error::Failed(format!("cannot write '{}': {e}", p.display())))
    }

    /// Loads the persistent pools, sets up the `default` pool on the very first start, and
    /// starts the autostart pools. Returns how many pools were loaded.
    pub async fn load(&self) -> usize {
        let mut count = 0;
        if let Some((pools, auto)) = self.dirs() {
            let mut files: Vec<PathBuf> = fs::read_dir(&pools)
                .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
                .unwrap_or_default();
            files.sort();
            for f in files {
                if f.extension().and_then(|e| e.to_str()) != Some("xml") {
                    continue;
                }
                let def = match fs::read_to_string(&f)
                    .map_err(|e| Error::Failed(e.to_string()))
                    .and_then(|x| PoolDef::parse(&x))
                {
                    Ok(d) => d,
                    Err(e) => {
                        tracing::error!("cannot load storage pool {}: {e}", f.display());
                        continue;
                    }
                };
                let autostart = auto.join(def.uuid.to_string()).exists();
                let mut map = self.inner.pools.write().unwrap_or_else(|p| p.into_inner());
                if map.contains_key(&def.name) {
                    tracing::error!(
                        "storage pool name '{}' is defined twice; skipped {}",
                        def.name,
                        def.uuid
                    );
                    continue;
                }
                map.insert(
                    def.name.clone(),
                    Arc::new(self.new_pool(def, true, autostart)),
                );
                count += 1;
            }
        }
        if let Err(e) = self.ensure_default().await {
            tracing::warn!("cannot set up the default storage pool: {e}");
        }
        for pool in self.pools() {
            let autostart = pool.lock().autostart;
            if autostart || self.was_running(&pool.uuid) {
                let name = pool.name();
                if let Err(e) = self.start(&name).await {
                    tracing::warn!("cannot start storage pool '{name}' again: {e}");
                    self.mark_running(&pool, false);
                }
            }
        }
        count
    }

    /// The `default` pool: defined, built, autostarted once; an admin who removes it later
    /// keeps it removed.
    async fn ensure_default(&self) -> Result<()> {
        let (Some(state), Some(path)) = (
            self.inner.settings.state_dir.clone(),
            self.inner.settings.default_pool.clone(),
        ) else {
            return Ok(());
        };
        let marker = state.join("default-pool");
        if marker.exists() {
            return Ok(());
        }
        if self.pool("default").is_err() {
            let xml = format!(
                "<pool type='dir'><name>default</name><target><path>{}</path></target></pool>",
                crate::util::xml::text(&path.to_string_lossy())
            );
            self.define(&xml).await?;
            self.build("default").await?;
            self.set_autostart("default", true).await?;
        }
        write_atomic(&marker, b"", 0o600)
            .map_err(|e| Error::Failed(format!("cannot write '{}': {e}", marker.display())))
    }

    // ---- pool life cycle ----

    fn checked_def(&self, xml: &str) -> Result<PoolDef> {
        let def = PoolDef::parse(xml)?;
        if !self.in_memory() {
            check_pool_path(Path::new(&def.path), &self.inner.settings.pool_dirs)?;
        }
        Ok(def)
    }

    /// Refuses a name or UUID another pool has; `Some` when the same pool is redefined.
    fn existing(&self, def: &PoolDef) -> Result<Option<Arc<Pool>>> {
        for p in self.pools() {
            let s = p.lock();
            let same_name = s.def.name == def.name;
            if same_name && p.uuid == def.uuid {
                return Ok(Some(p.clone()));
            }
            if same_name || p.uuid == def.uuid {
                return Err(Error::AlreadyExists(format!(
                    "pool '{}' is already defined with uuid {}",
                    s.def.name, p.uuid
                )));
            }
            if s.def.path == def.path {
                return Err(Error::AlreadyExists(format!(
                    "pool '{}' already uses directory '{}'",
                    s.def.name, def.path
                )));
            }
        }
        Ok(None)
    }

    /// Defines (or redefines) a persistent pool, inactive until started.
    pub async fn define(&self, xml: &str) -> Result<PoolInfo> {
        let def = self.checked_def(xml)?;
        let _g = self.inner.define_lock.lock().await;
        if let Some(pool) = self.existing(&def)? {
            let _job = pool.job.lock().await;
            self.save(&def)?;
            let mut s = pool.lock();
            if s.active {
                s.next = Some(Arc::new(def));
            } else {
                s.def = Arc::new(def);
                s.next = None;
            }
            s.persistent = true;
            drop(s);
            self.emit_pool(&pool, PoolEventKind::Defined);
            return Ok(pool.info());
        }
        self.save(&def)?;
        let pool = Arc::new(self.new_pool(def, true, false));
        self.inner
            .pools
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(pool.name(), pool.clone());
        self.emit_new_pool(&pool, PoolEventKind::Defined);
        Ok(pool.info())
    }

    /// Creates and starts a transient pool, building its directory first with `build`.
    pub async fn create(&self, xml: &str, build: bool) -> Result<PoolInfo> {
        let def = self.checked_def(xml)?;
        let _g = self.inner.define_lock.lock().await;
        if self.existing(&def)?.is_some() {
            return Err(Error::AlreadyExists(format!(
                "pool '{}' already exists",
                def.name
            )));
        }
        let path = PathBuf::from(&def.path);
        if build && !self.in_memory() {
            let perms = def.perms.clone();
            let p = path.clone();
            dir::blocking(move || dir::build(&p, &perms)).await?;
        }
        let pool = Arc::new(self.new_pool(def, false, false));
        self.activate(&pool).await?;
        self.inner
            .pools
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(pool.name(), pool.clone());
        self.emit_new_pool(&pool, PoolEventKind::Started);
        let vols = pool.lock().volumes.keys().cloned().collect();
        self.emit_volumes(&pool.name(), vols, VolEventKind::Created);
        Ok(pool.info())
    }

    /// Creates the pool's directory with its permissions.
    pub async fn build(&self, name: &str) -> Result<()> {
        let pool = self.pool(name)?;
        let _job = pool.job.lock().await;
        let def = {
            let s = pool.lock();
            if s.active {
                return Err(Error::InvalidState(format!(
                    "storage pool '{name}' is already active"
                )));
            }
            s.def.clone()
        };
        if !self.in_memory() {
            dir::blocking(move || dir::build(Path::new(&def.path), &def.perms)).await?;
        }
        self.emit_pool(&pool, PoolEventKind::Created);
        Ok(())
    }

    /// Scans the pool's directory into its volume list.
    async fn activate(&self, pool: &Pool) -> Result<()> {
        if self.in_memory() {
            pool.lock().active = true;
            return Ok(());
        }
        let def = pool.lock().def.clone();
        let path = PathBuf::from(&def.path);
        let (perms, sizes, vols) = scan(&path).await?;
        let owners = self.load_owners(pool.uuid, path, &vols).await;
        let mut s = pool.lock();
        s.live_perms = Some(perms);
        s.sizes = sizes;
        s.volumes = vols;
        s.owners = owners;
        s.active = true;
        Ok(())
    }

    pub async fn start(&self, name: &str) -> Result<()> {
        let pool = self.pool(name)?;
        let _job = pool.job.lock().await;
        {
            let mut s = pool.lock();
            if s.active {
                return Err(Error::InvalidState(format!(
                    "storage pool '{name}' is already active"
                )));
            }
            if let Some(next) = s.next.take() {
                s.def = next;
            }
        }
        self.activate(&pool).await?;
        self.mark_running(&pool, true);
        self.emit_pool(&pool, PoolEventKind::Started);
        let vols = pool.lock().volumes.keys().cloned().collect();
        self.emit_volumes(name, vols, VolEventKind::Created);
        Ok(())
    }

    fn refuse_busy(s: &PoolState, name: &str, what: &str) -> Result<()> {
        if let Some((vol, job)) = s.busy.iter().next() {
            return Err(Error::InvalidState(format!(
                "cannot {what} storage pool '{name}': volume '{vol}' has a {job} running"
            )));
        }
        Ok(())
    }

    /// Stops the pool; a transient pool goes away.
    pub async fn stop(&self, name: &str) -> Result<()> {
        let pool = self.pool(name)?;
        let _g = self.inner.define_lock.lock().await;
        let _job = pool.job.lock().await;
        let (transient, vols) = {
            let mut s = pool.lock();
            if !s.active {
                return Err(Error::InvalidState(format!(
                    "storage pool '{name}' is not active"
                )));
            }
            Self::refuse_busy(&s, name, "stop")?;
            s.active = false;
            // in memory, volumes and sizes stay with the pool
            let vols: Vec<String> = if self.in_memory() {
                Vec::new()
            } else {
                s.sizes = PoolSizes::default();
                s.owners.clear();
                std::mem::take(&mut s.volumes).into_keys().collect()
            };
            s.live_perms = None;
            if let Some(next) = s.next.take() {
                s.def = next;
            }
            if !s.persistent {
                s.removed = true;
            }
            (!s.persistent, vols)
        };
        self.mark_running(&pool, false);
        self.emit_volumes(name, vols, VolEventKind::Deleted);
        self.emit_pool(&pool, PoolEventKind::Stopped);
        if transient {
            self.remove_owners(&pool.uuid);
            self.inner
                .pools
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .remove(name);
            self.emit(StorageEvent::PoolRemoved {
                name: name.to_string(),
                uuid: pool.uuid,
            });
        }
        Ok(())
    }

    /// Rescans the pool's directory.
    pub async fn refresh(&self, name: &str) -> Result<()> {
        let pool = self.pool(name)?;
        let _job = pool.job.lock().await;
        let path = {
            let s = pool.lock();
            if !s.active {
                return Err(Error::InvalidState(format!(
                    "storage pool '{name}' is not active"
                )));
            }
            Self::refuse_busy(&s, name, "refresh")?;
            PathBuf::from(&s.def.path)
        };
        if self.in_memory() {
            self.emit_pool(&pool, PoolEventKind::Refreshed);
            return Ok(());
        }
        let (perms, sizes, vols) = scan(&path).await?;
        let mut owners = pool.lock().owners.clone();
        let pruned = {
            let (p, vols) = (path.clone(), vols.keys().cloned().collect::<Vec<_>>());
            dir::blocking(move || {
                let changed = owners::prune(&mut owners, &p, |n| vols.iter().any(|v| v == n));
                Ok((owners, changed))
            })
            .await?
        };
        let (gone, new): (Vec<String>, Vec<String>) = {
            let mut s = pool.lock();
            let gone = s
                .volumes
                .keys()
                .filter(|k| !vols.contains_key(*k))
                .cloned()
                .collect();
            let new = vols
                .keys()
                .filter(|k| !s.volumes.contains_key(*k))
                .cloned()
                .collect();
            s.live_perms = Some(perms);
            s.sizes = sizes;
            s.volumes = vols;
            if pruned.1 {
                s.owners = pruned.0;
            }
            (gone, new)
        };
        if pruned.1
            && let Err(e) = self.save_owners(&pool).await
        {
            tracing::warn!("{e}");
        }
        self.emit_volumes(name, gone, VolEventKind::Deleted);
        self.emit_volumes(name, new, VolEventKind::Created);
        self.emit_pool(&pool, PoolEventKind::Refreshed);
        Ok(())
    }

    /// Removes the (empty) directory of an inactive pool.
    pub async fn delete(&self, name: &str) -> Result<()> {
        let pool = self.pool(name)?;
        let _job = pool.job.lock().await;
        let path = {
            let s = pool.lock();
            if s.active {
                return Err(Error::InvalidState(format!(
                    "storage pool '{name}' is still active"
                )));
            }
            PathBuf::from(&s.def.path)
        };
        let memory = self.in_memory();
        dir::blocking(move || {
            if memory {
                return Ok(());
            }
            fs::remove_dir(&path).map_err(|e| {
                dir::io_err(
                    format_args!("cannot delete pool directory '{}'", path.display()),
                    e,
                )
            })
        })
        .await?;
        self.emit_pool(&pool, PoolEventKind::Deleted);
        Ok(())
    }

    /// Removes the persistent definition; an active pool runs on as a transient one.
    pub async fn undefine(&self, name: &str) -> Result<()> {
        let pool = self.pool(name)?;
        let _g = self.inner.define_lock.lock().await;
        let _job = pool.job.lock().await;
        let active = {
            let s = pool.lock();
            if !s.persistent {
                return Err(Error::InvalidState(format!(
                    "storage pool '{name}' is not persistent"
                )));
            }
            s.active
        };
        self.forget(&pool.uuid)?;
        // a transient pool does not come back
        self.mark_running(&pool, false);
        {
            let mut s = pool.lock();
            s.persistent = false;
            s.autostart = false;
            s.next = None;
            if !active {
                s.removed = true;
            }
        }
        self.emit_pool(&pool, PoolEventKind::Undefined);
        if !active {
            self.remove_owners(&pool.uuid);
            self.inner
                .pools
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .remove(name);
            self.emit(StorageEvent::PoolRemoved {
                name: name.to_string(),
                uuid: pool.uuid,
            });
        }
        Ok(())
    }

    pub async fn set_autostart(&self, name: &str, on: bool) -> Result<()> {
        let pool = self.pool(name)?;
        let _job = pool.job.lock().await;
        if !pool.lock().persistent {
            return Err(Error::InvalidState(format!(
                "cannot set autostart for transient storage pool '{name}'"
            )));
        }
        self.save_autostart(&pool.uuid, on)?;
        pool.lock().autostart = on;
        self.emit_pool(&pool, PoolEventKind::Changed);
        Ok(())
    }

    fn new_pool(&self, def: PoolDef, persistent: bool, autostart: bool) -> Pool {
        let pool = new_pool(def, persistent, autostart);
        if self.in_memory() {
            pool.lock().sizes = super::memory::empty_sizes();
        }
        pool
    }

    fn owners_dir(&self) -> Option<PathBuf> {
        if self.in_memory() {
            return None;
        }
        self.inner
            .settings
            .state_dir
            .as_ref()
            .map(|d| d.join("owners"))
    }

    /// The owner records of a pool being started, without those whose volume is not in
    /// `vols` or whose file was replaced (the file is rewritten then).
    async fn load_owners(
        &self,
        uuid: Uuid,
        pool_dir: PathBuf,
        vols: &BTreeMap<String, Arc<VolDef>>,
    ) -> Owners {
        let Some(dir) = self.owners_dir() else {
            return Owners::new();
        };
        let names: Vec<String> = vols.keys().cloned().collect();
        let r = dir::blocking(move || {
            let mut o = owners::load(&dir, &uuid);
            if owners::prune(&mut o, &pool_dir, |n| names.iter().any(|v| v == n)) {
                owners::save(&dir, &uuid, &o)?;
            }
            Ok(o)
        })
        .await;
        r.unwrap_or_else(|e| {
            tracing::warn!("volume owners of storage pool {uuid}: {e}");
            Owners::new()
        })
    }

    /// Writes the pool's owner records as they are now.
    async fn save_owners(&self, pool: &Arc<Pool>) -> Result<()> {
        let Some(dir) = self.owners_dir() else {
            return Ok(());
        };
        let pool = pool.clone();
        dir::blocking(move || {
            let _io = pool.owners_io.lock().unwrap_or_else(|p| p.into_inner());
            let now = pool.lock().owners.clone();
            owners::save(&dir, &pool.uuid, &now)
        })
        .await
    }

    /// Drops the owner records of a pool that is gone. Best effort: records of a pool
    /// defined again later only apply to files they were made for.
    fn remove_owners(&self, uuid: &Uuid) {
        if let Some(dir) = self.owners_dir()
            && let Err(e) = owners::remove(&dir, uuid)
        {
            tracing::warn!("{e}");
        }
    }

    /// The uid of the (non-root) caller who created the volume; `None` for the volumes
    /// root created, those found in the pool's directory, and unknown ones.
    pub fn volume_owner(&self, pool: &str, vol: &str) -> Option<u32> {
        let p = self.pool(pool).ok()?;
        let s = p.lock();
        s.owners.get(vol).map(|o| o.uid)
    }

    /// Records `uid` (or, with `None`, nobody) as the creator of the new volume `name`,
    /// persisted before the volume is announced; on failure nothing is recorded.
    pub(crate) async fn set_owner(
        &self,
        pool: &Arc<Pool>,
        name: &str,
        uid: Option<u32>,
    ) -> Result<()> {
        let owner = match uid {
            None => None,
            Some(uid) if self.in_memory() => Some(Owner {
                uid,
                dev: 0,
                ino: 0,
            }),
            Some(uid) => {
                let path = PathBuf::from(&pool.lock().def.path).join(name);
                let (dev, ino) = owners::identity(&path).ok_or_else(|| {
                    Error::Failed(format!("volume '{}' vanished", path.display()))
                })?;
                Some(Owner { uid, dev, ino })
            }
        };
        let before = {
            let mut s = pool.lock();
            match owner {
                Some(o) => s.owners.insert(name.to_string(), o),
                None => s.owners.remove(name),
            }
        };
        if before == owner {
            return Ok(());
        }
        let r = self.save_owners(pool).await;
        if r.is_err() {
            let mut s = pool.lock();
            match before {
                Some(o) => s.owners.insert(name.to_string(), o),
                None => s.owners.remove(name),
            };
        }
        r
    }

    /// Refreshes the pool's sizes from the file system (after a volume changed).
    pub(crate) fn update_sizes(&self, pool: &Pool) {
        let path = PathBuf::from(&pool.lock().def.path);
        if let Ok(sizes) = dir::sizes(&path) {
            pool.lock().sizes = sizes;
        }
    }
}

fn new_pool(def: PoolDef, persistent: bool, autostart: bool) -> Pool {
    Pool {
        uuid: def.uuid,
        job: tokio::sync::Mutex::new(()),
        state: Mutex::new(PoolState {
            def: Arc::new(def),
            next: None,
            persistent,
            autostart,
            active: false,
            sizes: PoolSizes::default(),
            live_perms: None,
            volumes: BTreeMap::new(),
            busy: BTreeMap::new(),
            owners: Owners::new(),
            removed: false,
        }),
        owners_io: Mutex::new(()),
    }
}

/// The directory's permissions, sizes and volumes. Files are looked at in one blocking
/// task; only those that may be images wait for `qemu-img`.
async fn scan(path: &Path) -> Result<(Perms, PoolSizes, BTreeMap<String, Arc<VolDef>>)> {
    let p = path.to_path_buf();
    let (perms, quick) = dir::blocking(move || {
        let (perms, _) = dir::check_dir(&p)?;
        let quick: Vec<(String, dir::Quick)> = dir::list_names(&p)?
            .into_iter()
            .map(|n| {
                let q = dir::probe_quick(&n, &p.join(&n));
                (n, q)
            })
            .collect();
        Ok((perms, quick))
    })
    .await?;
    let mut vols = BTreeMap::new();
    for (n, q) in quick {
        let v = match q {
            dir::Quick::None => continue,
            dir::Quick::Done(v) => *v,
            dir::Quick::Image(m) => match dir::probe_image(&n, &path.join(&n), &m).await {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!("skipping '{n}' in pool directory '{}': {e}", path.display());
                    continue;
                }
            },
        };
        vols.insert(n, Arc::new(v));
    }
    // sizes last: probing can have touched nothing, but volumes may be written meanwhile
    let sizes = dir::sizes(path)?;
    Ok((perms, sizes, vols))
}
