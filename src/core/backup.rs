//! Backup jobs (`virDomainBackupBegin`): the definition checked and completed as libvirt
//! does, handed to the driver as a plan, kept while the job runs (for `backup-dumpxml`, job
//! statistics and aborts), and its end published as libvirt's job completed event with the
//! job's statistics, which stay readable as the domain's completed job.
//!
//! The job lock is held only while the job starts: as libvirt, other operations may run
//! while a backup copies; a second backup is refused.

use std::{
    sync::{Arc, Mutex},
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use super::{
    Core, Domain, Error, Event, Missing, Result,
    events::lock,
    ops::{Action, DomainOp, Operation, domain_op},
};
use crate::{
    drivers::backup::{BackupEnd, BackupPlan, BackupProgress, NbdServer, PlanDisk},
    model::{
        backup::{BackupDef, BackupMode, DiskBackupMode, ServerTransport, StoreType},
        devices::DiskFormat,
    },
};

/// libvirt's `VIR_DOMAIN_JOB_OPERATION_BACKUP`.
const OPERATION_BACKUP: i32 = 9;

/// A typed statistic of a job, as libvirt's typed parameters carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobValue {
    Int(i32),
    ULLong(u64),
    Bool(bool),
    Str(String),
}

/// A job's statistics as `virDomainGetJobStats` returns them: libvirt's job type
/// (`VIR_DOMAIN_JOB_UNBOUNDED` 2, `_COMPLETED` 3, `_FAILED` 4, `_CANCELLED` 5) and the
/// parameters in libvirt's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobStats {
    pub kind: i32,
    pub params: Vec<(String, JobValue)>,
}

/// The backup running on a domain.
#[derive(Debug, Clone)]
struct Active {
    def: BackupDef,
    started: Instant,
}

/// A domain's backup job and the statistics of its last completed one.
#[derive(Debug, Default)]
pub struct Backups {
    active: Mutex<Option<Active>>,
    completed: Mutex<Option<JobStats>>,
    /// The last storage source id given to a store while the domain runs: libvirt counts
    /// on from it for every store a backup prepares, even one that then fails.
    last_index: Mutex<u32>,
}

/// libvirt's statistics of a backup job, `end` `None` while it runs.
fn stats(
    elapsed_ms: u64,
    p: BackupProgress,
    end: Option<BackupEnd>,
    err: Option<String>,
) -> JobStats {
    let mut params = vec![
        ("operation".to_owned(), JobValue::Int(OPERATION_BACKUP)),
        ("time_elapsed".to_owned(), JobValue::ULLong(elapsed_ms)),
    ];
    if p.transferred > 0 || p.total > 0 {
        params.push(("disk_total".into(), JobValue::ULLong(p.total)));
        params.push(("disk_processed".into(), JobValue::ULLong(p.transferred)));
        params.push((
            "disk_remaining".into(),
            JobValue::ULLong(p.total.saturating_sub(p.transferred)),
        ));
    }
    if p.tmp_used > 0 || p.tmp_total > 0 {
        params.push(("disk_temp_used".into(), JobValue::ULLong(p.tmp_used)));
        params.push(("disk_temp_total".into(), JobValue::ULLong(p.tmp_total)));
    }
    if let Some(e) = end {
        params.push(("success".into(), JobValue::Bool(e == BackupEnd::Completed)));
    }
    if let Some(m) = err {
        params.push(("errmsg".into(), JobValue::Str(m)));
    }
    JobStats {
        kind: match end {
            None => 2,
            Some(BackupEnd::Completed) => 3,
            Some(BackupEnd::Failed) => 4,
            Some(BackupEnd::Cancelled) => 5,
        },
        params,
    }
}

fn no_backup() -> Error {
    Error::NotFound(Missing::Backup, "no domain backup job present".into())
}

fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The plan a definition aligned to the domain asks of the driver; libvirt's checks of
/// the disks (`qemuBackupDiskPrepareDataOne`) and of the server (`qemuBackupPrepare`).
fn plan(def: &mut BackupDef, reuse: bool) -> Result<BackupPlan> {
    let pull = def.mode == BackupMode::Pull;
    let server = if pull {
        let s = def
            .server
            .get_or_insert_with(|| crate::model::backup::BackupServer {
                transport: ServerTransport::Tcp,
                name: Some("localhost".into()),
                port: None,
                socket: None,
                tls: None,
            });
        if s.tls == Some(true) {
            return Err(Error::InvalidState(
                "backup TLS directory not configured".into(),
            ));
        }
        Some(match s.transport {
            ServerTransport::Unix => NbdServer::Unix {
                path: s.socket.clone().unwrap_or_default(),
            },
            _ => {
                let Some(port) = s.port.filter(|p| *p != 0) else {
                    return Err(Error::NotSupported(
                        "<domainbackup> must specify TCP port for now".into(),
                    ));
                };
                NbdServer::Tcp {
                    host: s.name.clone().unwrap_or_else(|| "localhost".into()),
                    port: u16::try_from(port).unwrap_or(u16::MAX),
                }
            }
        })
    } else {
        None
    };
    let mut disks = Vec::new();
    for d in def
        .disks
        .iter_mut()
        .filter(|d| d.backup && d.path.is_some())
    {
        let format = *d.format.get_or_insert(DiskFormat::Qcow2);
        if pull && format != DiskFormat::Qcow2 {
            return Err(Error::ConfigUnsupported(format!(
                "pull mode backup for disk '{}' requires qcow2 driver",
                d.name
            )));
        }
        if d.mode == Some(DiskBackupMode::Incremental) {
            return Err(Error::NotSupported(
                "incremental backup is not supported yet".into(),
            ));
        }
        if pull && d.exportname.is_none() {
            d.exportname = Some(d.name.clone());
        }
        disks.push(PlanDisk {
            target: d.name.clone(),
            store: d.path.clone().unwrap_or_default(),
            block: d.store_type == StoreType::Block,
            format,
            export: d.exportname.clone(),
            bitmap: None,
            export_bitmap: d.exportbitmap.clone(),
        });
    }
    if disks.is_empty() {
        return Err(Error::ConfigUnsupported(
            "no disks selected for backup".into(),
        ));
    }
    Ok(BackupPlan {
        pull: server,
        disks,
        reuse,
    })
}

impl Core {
    /// Start a backup job of the running domain as `xml` describes.
    pub async fn backup_begin(
        &self,
        dom: &Arc<Domain>,
        xml: &str,
        checkpoint_xml: Option<&str>,
        reuse: bool,
    ) -> Result<()> {
        let mut def = BackupDef::from_xml(xml)?;
        let _job = dom
            .begin_job(Operation::BackupBegin.job().unwrap_or_default())
            .await?;
        let live = lock(&dom.data).live.clone();
        let Some(live) = live else {
            return Err(Error::NotSupported(
                "cannot perform disk backup for inactive domain".into(),
            ));
        };
        let suffix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .to_string();
        def.align(&live, &suffix)
            .map_err(|e| Error::ConfigUnsupported(e.0))?;
        if checkpoint_xml.is_some() {
            return Err(Error::NotSupported(
                "creating checkpoint for incremental backup is not supported yet".into(),
            ));
        }
        if def
            .disks
            .iter()
            .any(|d| d.mode == Some(DiskBackupMode::Incremental))
        {
            return Err(Error::NotSupported(
                "incremental backup is not supported yet".into(),
            ));
        }
        if lock(&dom.backup.active).is_some() {
            return Err(Error::InvalidState(
                "another backup job is already running".into(),
            ));
        }
        let plan = plan(&mut def, reuse)?;
        // libvirt numbers each store as a storage source of the domain
        let mut next = live
            .devices
            .disks
            .iter()
            .filter_map(|d| d.source.as_ref().and_then(|s| s.index))
            .max()
            .unwrap_or(0)
            .max(*lock(&dom.backup.last_index));
        for d in def
            .disks
            .iter_mut()
            .filter(|d| d.backup && d.path.is_some())
        {
            next += 1;
            d.index = Some(next);
        }
        *lock(&dom.backup.last_index) = next;
        *lock(&dom.backup.active) = Some(Active {
            def,
            started: Instant::now(),
        });
        if let Err(e) = dom.driver.backup_begin(&self.ctx(dom), &live, &plan).await {
            *lock(&dom.backup.active) = None;
            return Err(e.into());
        }
        Ok(())
    }

    /// The running backup's definition (`backup-dumpxml`).
    pub fn backup_xml(&self, dom: &Arc<Domain>) -> Result<String> {
        lock(&dom.backup.active)
            .as_ref()
            // libvirt's document ends at its closing tag
            .map(|a| a.def.to_xml().trim_end().to_owned())
            .ok_or_else(no_backup)
    }

    /// Whether a backup job runs on the domain.
    pub fn backup_running(&self, dom: &Domain) -> bool {
        lock(&dom.backup.active).is_some()
    }

    /// Cancel the running backup (`domjobabort`); its end is reported when the copies stop.
    pub async fn backup_abort(&self, dom: &Arc<Domain>) -> Result<()> {
        if !self.backup_running(dom) {
            return Err(Error::InvalidState("no job is active on the domain".into()));
        }
        Ok(dom.driver.backup_abort(&self.ctx(dom)).await?)
    }

    /// The backup job's statistics: the running one's, or (`completed`) the last ended
    /// one's, forgotten once read unless `keep`. `None` when there is none (the caller
    /// answers for other jobs).
    pub async fn backup_job_stats(
        &self,
        dom: &Arc<Domain>,
        completed: bool,
        keep: bool,
    ) -> Result<Option<JobStats>> {
        if completed {
            let mut c = lock(&dom.backup.completed);
            return Ok(if keep { c.clone() } else { c.take() });
        }
        // libvirt's `qemuDomainGetJobStats`: a running job needs a running domain
        if !lock(&dom.data).status.state.is_active() {
            return Err(Error::InvalidState("domain is not running".into()));
        }
        let started = match lock(&dom.backup.active).as_ref() {
            None => return Ok(None),
            Some(a) => a.started,
        };
        let p = dom.driver.backup_progress(&self.ctx(dom)).await?;
        Ok(Some(stats(elapsed_ms(started), p, None, None)))
    }

    /// The backup job ended (driver event): its statistics kept as the completed job's and
    /// published as libvirt's job completed event.
    pub(crate) fn backup_ended(
        &self,
        dom: &Domain,
        end: BackupEnd,
        p: BackupProgress,
        error: Option<String>,
    ) {
        let Some(a) = lock(&dom.backup.active).take() else {
            return;
        };
        let s = stats(elapsed_ms(a.started), p, Some(end), error);
        *lock(&dom.backup.completed) = Some(s.clone());
        self.events().publish(Event::JobCompleted {
            uuid: dom.uuid,
            stats: Arc::new(s),
        });
    }

    /// The domain stopped: a backup it ran is over, cancelled (libvirt's
    /// `qemuProcessStop`).
    pub(crate) fn backup_domain_stopped(&self, dom: &Domain) {
        *lock(&dom.backup.last_index) = 0;
        self.backup_ended(dom, BackupEnd::Cancelled, BackupProgress::default(), None);
    }
}

/// Start a backup job (`virDomainBackupBegin`); `reuse`: write into existing stores.
#[derive(Debug, Clone)]
pub struct BackupBegin {
    pub xml: String,
    pub checkpoint_xml: Option<String>,
    pub reuse: bool,
}

impl DomainOp for BackupBegin {
    type Output = ();

    fn operation(&self) -> Operation {
        Operation::BackupBegin
    }

    /// libvirt asks for `domain:checkpoint` and `domain:block_write`.
    fn actions(&self) -> Vec<Action> {
        vec![Action::DomainSnapshot, Action::DomainWrite]
    }

    async fn run(self, core: &Core, dom: &Arc<Domain>) -> Result<()> {
        core.backup_begin(dom, &self.xml, self.checkpoint_xml.as_deref(), self.reuse)
            .await
    }
}

domain_op!(
    /// The running backup job's definition.
    BackupGetXml {} => String, BackupRead, |_r, core, dom| core.backup_xml(dom)
);
domain_op!(
    /// The backup job's statistics (the running one's, or the last ended one's).
    BackupJobStats { completed: bool, keep: bool } => Option<JobStats>, ReadDomain,
    |r, core, dom| core.backup_job_stats(dom, r.completed, r.keep).await
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_follow_libvirts_order_and_presence() {
        let p = BackupProgress {
            total: 10,
            transferred: 4,
            ..Default::default()
        };
        let s = stats(7, p, Some(BackupEnd::Completed), None);
        assert_eq!(s.kind, 3);
        let names: Vec<&str> = s.params.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "operation",
                "time_elapsed",
                "disk_total",
                "disk_processed",
                "disk_remaining",
                "success"
            ]
        );
        assert_eq!(s.params[4].1, JobValue::ULLong(6));
        let running = stats(1, BackupProgress::default(), None, None);
        assert_eq!(running.kind, 2);
        assert_eq!(running.params.len(), 2);
    }
}
