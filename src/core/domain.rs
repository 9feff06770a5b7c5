//! One domain as the core holds it: definitions, run state, snapshots, and the job lock that
//! serializes operations on it.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use uuid::Uuid;

use super::{
    error::{Error, Missing, Result},
    events::lock,
    info::DomainInfo,
    snapshots::SnapshotTree,
};
use crate::{
    drivers::Driver,
    model::{DomainDef, state::Status},
};

/// How long an operation waits for the one before it, as libvirt's state-change lock.
pub const JOB_WAIT: Duration = Duration::from_secs(30);

pub struct Domain {
    pub(crate) uuid: Uuid,
    /// Fixed for the domain's life: a redefinition cannot change it.
    pub(crate) domain_type: crate::model::DomainType,
    pub(crate) driver: Arc<dyn Driver>,
    job: tokio::sync::Mutex<()>,
    job_name: Mutex<&'static str>,
    pub(crate) data: Mutex<DomainData>,
    /// Open console sessions, one per character device.
    pub(crate) consoles: super::console::Sessions,
    /// Its backup job, and the statistics of the last one that ended.
    pub(crate) backup: super::backup::Backups,
    /// The statistics of the domain's last completed migration (`domjobinfo --completed`).
    pub(crate) completed_job: Mutex<Option<super::migrate::JobStats>>,
}

/// The mutable part, behind a lock that is never held across an await.
pub(crate) struct DomainData {
    /// The persistent definition (or, for a transient domain, the one it was created from).
    pub def: Arc<DomainDef>,
    /// The running definition while the domain is active.
    pub live: Option<Arc<DomainDef>>,
    pub persistent: bool,
    pub autostart: bool,
    pub managed_save: Option<ManagedSave>,
    pub status: Status,
    pub id: Option<u32>,
    pub snapshots: SnapshotTree,
    pub checkpoints: super::checkpoints::CheckpointList,
    pub warning: Option<String>,
    /// Why nothing vouches for the running guest (libvirt's taint messages, e.g. custom
    /// monitor commands issued); cleared when it starts or stops.
    pub taints: Vec<&'static str>,
    /// Set once the domain is gone, for calls that looked it up before.
    pub removed: bool,
    /// The long operation shown as the `Job` property, and its progress.
    pub job: &'static str,
    pub job_progress: f64,
}

/// A managed save image: the guest's state saved by its driver, restored at the next start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedSave {
    /// Whether the guest comes back paused.
    pub paused: bool,
    /// The definition the guest comes back with, when one was given with the image
    /// (`virDomainManagedSaveDefineXML`); `None`: the persistent one.
    pub def: Option<Arc<DomainDef>>,
}

/// Proof that the caller holds a domain's job lock.
pub struct JobGuard<'a> {
    _guard: tokio::sync::MutexGuard<'a, ()>,
    name: &'a Mutex<&'static str>,
}

impl Drop for JobGuard<'_> {
    fn drop(&mut self) {
        *lock(self.name) = "";
    }
}

impl Domain {
    pub(crate) fn new(driver: Arc<dyn Driver>, data: DomainData) -> Self {
        Self {
            uuid: data.def.uuid,
            domain_type: data.def.domain_type,
            driver,
            job: tokio::sync::Mutex::new(()),
            job_name: Mutex::new(""),
            consoles: Default::default(),
            backup: Default::default(),
            completed_job: Mutex::default(),
            data: Mutex::new(data),
        }
    }

    pub fn uuid(&self) -> Uuid {
        self.uuid
    }

    pub fn driver_name(&self) -> &'static str {
        self.driver.name()
    }

    /// Wait for the domain's job lock, up to [`JOB_WAIT`].
    pub(crate) async fn begin_job(&self, job: &'static str) -> Result<JobGuard<'_>> {
        let guard = match tokio::time::timeout(JOB_WAIT, self.job.lock()).await {
            Ok(g) => g,
            Err(_) => {
                let holder = *lock(&self.job_name);
                return Err(Error::Timeout(format!(
                    "cannot start '{job}' on domain '{}': operation '{holder}' still runs after {}s",
                    self.name(),
                    JOB_WAIT.as_secs()
                )));
            }
        };
        *lock(&self.job_name) = job;
        let g = JobGuard {
            _guard: guard,
            name: &self.job_name,
        };
        if lock(&self.data).removed {
            return Err(self.gone());
        }
        Ok(g)
    }

    /// The statistics of the domain's last completed migration, if any.
    pub fn completed_job(&self) -> Option<super::migrate::JobStats> {
        lock(&self.completed_job).clone()
    }

    /// The name of the job the domain runs now ("" when none), whatever its operation.
    pub fn running_job(&self) -> &'static str {
        *lock(&self.job_name)
    }

    pub fn name(&self) -> String {
        lock(&self.data).def.name.clone()
    }

    pub(crate) fn gone(&self) -> Error {
        Error::NotFound(
            Missing::Domain,
            format!("domain {} no longer exists", self.uuid),
        )
    }

    /// The property values now.
    pub fn info(&self) -> DomainInfo {
        lock(&self.data).info(self.driver.name())
    }

    /// The type its definition names (which driver kind runs it).
    pub fn domain_type(&self) -> crate::model::DomainType {
        self.domain_type
    }

    /// The guest OS kind its definition names (`hvm`, `linux`, `exe`, `xen`).
    pub fn os_type(&self) -> &'static str {
        lock(&self.data).current_def().os.os_type.as_str()
    }

    /// The maximum and current memory (KiB) of the definition that describes it now.
    pub fn memory_kib(&self) -> (u64, u64) {
        let data = lock(&self.data);
        let def = data.current_def();
        (def.memory_kib, def.current_memory())
    }

    /// The guest's process while active, when its driver has one.
    pub fn leader_pid(&self) -> Option<u32> {
        if !lock(&self.data).status.is_active() {
            return None;
        }
        self.driver.leader_pid(&self.uuid)
    }

    pub fn is_removed(&self) -> bool {
        lock(&self.data).removed
    }
}

impl DomainData {
    /// What the store keeps of this domain.
    pub fn record(&self) -> super::store::DomainRecord {
        super::store::DomainRecord {
            def: (*self.def).clone(),
            autostart: self.autostart,
            current_snapshot: self.snapshots.current().map(str::to_owned),
            managed_save: self.managed_save.clone(),
        }
    }

    /// The definition that describes the domain now: the live one while active.
    pub fn current_def(&self) -> &Arc<DomainDef> {
        self.live.as_ref().unwrap_or(&self.def)
    }

    /// The one definition a read with `affect` addresses (`live` or `config`, as libvirt's
    /// `VIR_DOMAIN_AFFECT_*` flags resolve against the domain's state); `op` names the read in
    /// errors.
    pub fn def_for_read(
        &self,
        affect: super::options::Affect,
        op: super::ops::Operation,
    ) -> Result<&Arc<DomainDef>> {
        let t = affect.resolve_one(&self.def.name, op, self.status.state, self.persistent)?;
        Ok(match (&self.live, t.live) {
            (Some(live), true) => live,
            _ => &self.def,
        })
    }

    pub fn info(&self, driver: &'static str) -> DomainInfo {
        let d = self.current_def();
        DomainInfo {
            uuid: d.uuid,
            name: d.name.clone(),
            title: d.title.clone().unwrap_or_default(),
            id: self.id,
            driver,
            domain_type: d.domain_type,
            status: self.status,
            persistent: self.persistent,
            autostart: self.autostart,
            managed_save: self.managed_save.is_some(),
            vcpus: d.vcpus(),
            memory_kib: d.current_memory(),
            current_snapshot: self.snapshots.current().map(str::to_owned),
            snapshot_count: self.snapshots.len() as u32,
            warning: self
                .warning
                .clone()
                .or_else(|| taint(&self.def))
                .unwrap_or_default(),
            owner: self.def.owner_uid(),
            job: self.job,
            job_progress: self.job_progress,
        }
    }
}

/// What makes a definition tainted, as libvirt marks it: nothing vouches for a guest that
/// QEMU runs with arguments of the user's own.
pub(crate) fn taint(def: &DomainDef) -> Option<String> {
    if def.qemu_commandline.is_some() {
        return Some(
            "tainted: QEMU runs with arguments of the user's own (<qemu:commandline>); nothing \
             virtbus reports about it can be relied on"
                .to_owned(),
        );
    }
    (!def.qemu_tweaks.is_empty()).then(|| {
        "tainted: QEMU's capabilities or device properties are overridden (<qemu:capabilities>, \
         <qemu:override>); nothing virtbus reports about it can be relied on"
            .to_owned()
    })
}
