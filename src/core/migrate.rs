//! Migration between two virtbus daemons in libvirt's version 3 sequence, as a client drives
//! it (`virsh migrate`): begin and perform and confirm on the source, prepare and finish on
//! the destination. The core decides what each domain goes through (libvirt's states and
//! lifecycle details); the driver moves the guest's state. Each step hands the next an
//! opaque cookie, here virtbus's own, versioned: [`Cookie`].

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    Core, Domain, Error, Event, Result,
    backup::{JobStats as JobStats_, JobValue},
    define::{Caller, Origin},
    events::lock,
    ops::Operation,
    options::{StartOptions, UndefineOptions, XmlOptions},
    save_file::same_domain,
};
use crate::{
    drivers::migrate::{MigrateOut, MigrateSetting, MigrationStats},
    model::{
        DomainDef,
        state::{
            DomainState, Lifecycle, ResumedDetail, StartedDetail, StateReason, Status,
            StoppedDetail, SuspendedDetail,
        },
    },
};

/// What the steps of one migration are asked to do (libvirt's flags and parameters).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrateOptions {
    pub live: bool,
    /// Only the definition moves (the domain need not run).
    pub offline: bool,
    /// The destination keeps the domain defined.
    pub persist_dest: bool,
    /// The source's definition goes once the guest runs at the destination.
    pub undefine_source: bool,
    /// The guest stays paused at the destination.
    pub paused: bool,
    pub auto_converge: bool,
    pub compressed: bool,
    pub postcopy: bool,
    /// Bandwidth in MiB/s (`None`: the domain's own setting).
    pub bandwidth: Option<u64>,
    /// Where the destination listens / the source sends (`tcp://HOST:PORT`).
    pub uri: Option<String>,
    /// The address the destination listens on.
    pub listen_address: Option<String>,
    /// The domain's name at the destination.
    pub dname: Option<String>,
    /// The definition the destination runs (checked against the source's).
    pub dest_xml: Option<String>,
    /// The definition the destination keeps (`persistent_xml`).
    pub persist_xml: Option<String>,
}

/// The cookie virtbus daemons pass each other through the client, as libvirt's QEMU
/// drivers do theirs: who the domain is, the definition to keep, and the job's statistics.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cookie {
    pub version: u32,
    pub name: String,
    pub uuid: Uuid,
    /// The persistent definition the destination keeps (with `persist_dest`).
    #[serde(default)]
    pub persistent: Option<String>,
    /// The outgoing job's statistics once it completed.
    #[serde(default)]
    pub stats: Option<JobStats>,
}

/// A completed migration job's figures, in libvirt's job statistics terms.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobStats {
    /// Whether the job sent the guest away (else it received it).
    #[serde(default)]
    pub outgoing: bool,
    pub time_elapsed: u64,
    pub downtime: u64,
    pub setup_time: u64,
    pub memory_total: u64,
    pub memory_processed: u64,
    pub memory_remaining: u64,
    pub memory_bps: u64,
    pub memory_constant: u64,
    pub memory_normal: u64,
    pub memory_normal_bytes: u64,
    pub memory_dirty_rate: u64,
    pub memory_iteration: u64,
    pub memory_page_size: u64,
}

impl From<&MigrationStats> for JobStats {
    fn from(s: &MigrationStats) -> Self {
        JobStats {
            outgoing: true,
            time_elapsed: s.time_elapsed_ms,
            downtime: s.downtime_ms.unwrap_or(0),
            setup_time: s.setup_time_ms.unwrap_or(0),
            memory_total: s.memory_total,
            memory_processed: s.memory_processed,
            memory_remaining: s.memory_remaining,
            memory_bps: s.memory_bps,
            memory_constant: s.memory_constant,
            memory_normal: s.memory_normal,
            memory_normal_bytes: s.memory_normal_bytes,
            memory_dirty_rate: s.dirty_rate,
            memory_iteration: s.memory_iteration,
            memory_page_size: s.memory_page_size,
        }
    }
}

impl JobStats {
    /// libvirt's typed parameters of the migration, in its order (`operation`,
    /// `time_elapsed`, `downtime`, …).
    /// libvirt's statistics of the migration job, `kind` its job type (2 running, 3 done).
    pub fn job_stats(&self, kind: i32) -> JobStats_ {
        let out = self.outgoing;
        let u = |k: &str, v: u64| (k.to_owned(), JobValue::ULLong(v));
        JobStats_ {
            kind,
            params: vec![
                // VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT / _IN
                (
                    "operation".to_owned(),
                    JobValue::Int(if out { 5 } else { 4 }),
                ),
                u("time_elapsed", self.time_elapsed),
                u("downtime", self.downtime),
                u("setup_time", self.setup_time),
                u("data_total", self.memory_total),
                u("data_processed", self.memory_processed),
                u("data_remaining", self.memory_remaining),
                u("memory_total", self.memory_total),
                u("memory_processed", self.memory_processed),
                u("memory_remaining", self.memory_remaining),
                u("memory_bps", self.memory_bps),
                u("memory_constant", self.memory_constant),
                u("memory_normal", self.memory_normal),
                u("memory_normal_bytes", self.memory_normal_bytes),
                u("memory_dirty_rate", self.memory_dirty_rate),
                u("memory_iteration", self.memory_iteration),
                u("memory_page_size", self.memory_page_size),
            ],
        }
    }
}

/// What starts every virtbus cookie, before its JSON.
const MAGIC: &[u8] = b"virtbus-migration-cookie\n";
/// The cookie layout this daemon writes and reads.
pub const COOKIE_VERSION: u32 = 1;

impl Cookie {
    fn new(dom: &DomainDef) -> Cookie {
        Cookie {
            version: COOKIE_VERSION,
            name: dom.name.clone(),
            uuid: dom.uuid,
            ..Cookie::default()
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend(serde_json::to_vec(self).unwrap_or_default());
        out
    }

    /// The cookie a step received; refused when another program (a libvirtd) wrote it, or
    /// another version of virtbus's layout.
    pub fn decode(bytes: &[u8]) -> Result<Cookie> {
        let not_ours = || {
            Error::InvalidArgument(
                "the migration cookie is not a virtbus one: virtbus migrates only to and \
                 from another virtbus daemon"
                    .into(),
            )
        };
        let json = bytes.strip_prefix(MAGIC).ok_or_else(not_ours)?;
        let c: Cookie = serde_json::from_slice(json).map_err(|_| not_ours())?;
        if c.version != COOKIE_VERSION {
            return Err(Error::InvalidArgument(format!(
                "migration cookie version {} is not supported (this virtbus reads version \
                 {COOKIE_VERSION})",
                c.version
            )));
        }
        Ok(c)
    }
}

/// libvirt's QEMU driver's refusals of flag combinations at the begin step.
pub fn check_flags(o: &MigrateOptions) -> Result<()> {
    if o.postcopy && (!o.live || o.paused) {
        return Err(Error::NotSupported(
            "post-copy migration is not supported with non-live or paused migration".into(),
        ));
    }
    if o.offline && !o.persist_dest {
        return Err(Error::InvalidState(
            "offline migration must be specified with the persistent flag set".into(),
        ));
    }
    Ok(())
}

/// This host's name (libvirt's destination answers with it when no address is given).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into())
}

impl Core {
    /// The begin step at the source: the checks, the definition the destination is to
    /// run, and the cookie for its prepare step.
    pub async fn migrate_begin(
        &self,
        dom: &Arc<Domain>,
        o: &MigrateOptions,
    ) -> Result<(String, Vec<u8>)> {
        check_flags(o)?;
        let (active, persistent) = {
            let d = lock(&dom.data);
            (d.status.is_active(), d.persistent)
        };
        if !o.offline && !active {
            return Err(Error::InvalidState("domain is not running".into()));
        }
        if o.offline && !persistent {
            return Err(Error::InvalidState(
                "transient domains cannot be migrated offline".into(),
            ));
        }
        match dom.running_job() {
            "" => {}
            job => {
                return Err(Error::InvalidState(format!(
                    "cannot acquire state change lock: the domain runs job '{job}'"
                )));
            }
        }
        let xml = self.domain_xml(
            dom,
            XmlOptions {
                inactive: o.offline,
                secure: true,
                migratable: true,
                update_cpu: false,
            },
        )?;
        let current = DomainDef::from_xml(&xml)?;
        let xml = match &o.dest_xml {
            Some(x) => {
                let mut given = DomainDef::from_xml(x)?;
                // a new name comes with dname; libvirt's ABI check compares the rest
                if o.dname.as_deref() == Some(given.name.as_str()) {
                    given.name = current.name.clone();
                }
                same_domain(&current, &given)?;
                x.clone()
            }
            None => xml,
        };
        let mut cookie = Cookie::new(&current);
        if o.persist_dest {
            cookie.persistent = Some(match &o.persist_xml {
                Some(x) => {
                    let given = DomainDef::from_xml(x)?;
                    if given.uuid != current.uuid {
                        return Err(Error::NotSupported(format!(
                            "Target domain uuid {} does not match source {}",
                            given.uuid, current.uuid
                        )));
                    }
                    x.clone()
                }
                None if persistent => self.domain_xml(
                    dom,
                    XmlOptions {
                        inactive: true,
                        secure: true,
                        migratable: true,
                        update_cpu: false,
                    },
                )?,
                None => xml.clone(),
            });
        }
        Ok((xml, cookie.encode()))
    }

    /// The prepare step at the destination: the domain of `xml` (renamed to `dname`)
    /// started waiting for its state (for an offline migration nothing starts); the URI
    /// the source is to send to, and the cookie for the perform step.
    pub async fn migrate_prepare(
        &self,
        xml: &str,
        cookie: &[u8],
        o: &MigrateOptions,
        caller: Caller,
    ) -> Result<(Vec<u8>, String)> {
        let c = Cookie::decode(cookie)?;
        let mut def = DomainDef::from_xml(xml)?;
        if def.uuid != c.uuid {
            return Err(Error::InvalidArgument(format!(
                "the migration cookie is of domain {} and the XML of domain {}",
                c.uuid, def.uuid
            )));
        }
        if let Some(n) = &o.dname {
            def.name = n.clone();
        }
        if let Some(d) = self.get(&def.uuid)
            && lock(&d.data).status.is_active()
        {
            return Err(Error::InvalidState(format!(
                "domain '{}' is already active",
                d.name()
            )));
        }
        let mut out = c.clone();
        out.name = def.name.clone();
        if o.offline {
            // the definition is all that moves; libvirt's client sends the finish step no
            // cookie then, so it is kept now (and removed again if the migration fails)
            let xml = c.persistent.clone().ok_or_else(|| {
                Error::InvalidArgument("the migration cookie carries no definition".into())
            })?;
            let mut def = DomainDef::from_xml(&xml)?;
            def.name = out.name.clone();
            self.define(def, caller).await?;
            return Ok((out.encode(), format!("tcp:{}", hostname())));
        }
        let listen = match (&o.listen_address, &o.uri) {
            (Some(a), _) => a.clone(),
            (None, Some(u)) => crate::drivers::migrate::qemu_uri(u)
                .map(|(h, _)| h)
                .unwrap_or_default(),
            (None, None) => String::new(),
        };
        let opts = StartOptions {
            paused: true,
            force_boot: false,
        };
        let (_, uri) = self
            .create_origin(
                def,
                opts,
                caller,
                Origin::Migration { listen: &listen },
                &[],
            )
            .await?;
        let uri = uri.unwrap_or_default();
        // a URI the client gave names the host the source reaches; the port is the one
        // listened on
        let uri = match (&o.uri, crate::drivers::migrate::qemu_uri(&uri)) {
            (Some(given), Some((_, port))) => match crate::drivers::migrate::qemu_uri(given) {
                Some((h, _)) => format!("tcp:{h}:{port}"),
                None => uri,
            },
            _ => uri,
        };
        Ok((out.encode(), uri))
    }

    /// Start the incoming migration of the inactive domain `dom` with `def` as its live
    /// definition; the URI the source sends to.
    pub(crate) async fn incoming_into(
        &self,
        dom: &Arc<Domain>,
        def: DomainDef,
        listen: &str,
    ) -> Result<String> {
        let _job = dom.begin_job("migration in").await?;
        if lock(&dom.data).status.is_active() {
            return Err(Error::InvalidState(format!(
                "domain '{}' is already active",
                dom.name()
            )));
        }
        let def = self.resolve_networks(Arc::new(def)).await?;
        let id = self.next_id();
        let (started, uri) = dom
            .driver
            .migrate_incoming(&self.ctx(dom), &def, id, listen)
            .await?;
        let uuid = dom.uuid;
        self.update(dom, |d| {
            d.live = Some(started.live.map(Arc::new).unwrap_or(def));
            d.id = Some(id);
            d.status = Status::new(DomainState::Paused, StateReason::Migrated);
            d.warning = None;
            d.taints.clear();
            let event = Lifecycle::Started(StartedDetail::Migrated);
            ((), vec![Event::Lifecycle { uuid, event }])
        });
        Ok(uri)
    }

    /// The perform step at the source: the guest's state sent to the destination; the
    /// guest is then paused (migrated). On failure it runs on and the error is libvirt's.
    pub async fn migrate_perform(
        &self,
        dom: &Arc<Domain>,
        cookie: &[u8],
        o: &MigrateOptions,
    ) -> Result<Vec<u8>> {
        let c = Cookie::decode(cookie)?;
        if c.uuid != dom.uuid {
            return Err(Error::InvalidArgument(format!(
                "the migration cookie is of domain {}, not of '{}'",
                c.uuid,
                dom.name()
            )));
        }
        let _job = dom.begin_job("migration out").await?;
        let (_, state) = Self::require(dom, Operation::MigrateOut)?;
        if !state.is_active() {
            return Err(Error::InvalidState("domain is not running".into()));
        }
        let Some(uri) = &o.uri else {
            return Err(Error::InvalidArgument(
                "no migration URI: the destination's prepare step gave none".into(),
            ));
        };
        let bandwidth = match o.bandwidth {
            Some(b) => b,
            None => dom.driver.migrate_setting_kept(dom.uuid),
        };
        let out = MigrateOut {
            uri: uri.clone(),
            auto_converge: o.auto_converge,
            compressed: o.compressed,
            postcopy: o.postcopy,
            pause_first: !o.live && state == DomainState::Running,
            bandwidth_mib: bandwidth,
        };
        let ctx = self.ctx(dom);
        dom.driver.migrate_out(&ctx, &out).await?;
        let stats = dom.driver.migration_stats(&ctx).await.ok();
        self.mark_paused(dom, StateReason::Migrated, SuspendedDetail::Migrated);
        let mut c = c;
        c.stats = stats.as_ref().map(JobStats::from);
        *lock(&dom.completed_job) = c.stats.clone();
        Ok(c.encode())
    }

    /// The finish step at the destination: with `cancelled` (the perform step failed) the
    /// waiting guest goes; else it runs (or stays paused) with all its state, kept defined
    /// with `persist_dest`. The domain and the cookie for the confirm step.
    pub async fn migrate_finish(
        &self,
        name: &str,
        cookie: &[u8],
        o: &MigrateOptions,
        cancelled: bool,
        caller: Caller,
    ) -> Result<(Arc<Domain>, Vec<u8>)> {
        if o.offline {
            let dom = self.lookup(name)?;
            if cancelled {
                self.undefine(&dom, UndefineOptions::default()).await?;
                return Err(Error::Failed(
                    "migration of the domain was cancelled".into(),
                ));
            }
            return Ok((dom, Vec::new()));
        }
        let c = Cookie::decode(cookie)?;
        let dom = self
            .lookup(name)
            .ok()
            .filter(|d| d.uuid == c.uuid)
            .ok_or_else(|| {
                Error::InvalidState(format!(
                    "no incoming migration of domain '{name}' is waiting here"
                ))
            })?;
        let ctx = self.ctx(&dom);
        if cancelled {
            let _job = dom.begin_job("migration in").await?;
            if lock(&dom.data).status.is_active() {
                dom.driver.destroy(&ctx, false).await?;
                self.mark_stopped(&dom, StateReason::Failed, StoppedDetail::Failed);
            }
            return Err(Error::Failed(
                "migration of the domain was cancelled".into(),
            ));
        }
        {
            let _job = dom.begin_job("migration in").await?;
            if let Err(e) = dom.driver.migrate_incoming_finish(&ctx, o.paused).await {
                let _ = dom.driver.destroy(&ctx, false).await;
                self.mark_stopped(&dom, StateReason::Failed, StoppedDetail::Failed);
                return Err(e.into());
            }
        }
        if o.persist_dest
            && let Some(xml) = &c.persistent
        {
            let mut def = DomainDef::from_xml(xml)?;
            def.name = dom.name();
            self.define(def, caller).await?;
        }
        let uuid = dom.uuid;
        if o.paused {
            self.update(&dom, |d| {
                d.status = Status::new(DomainState::Paused, StateReason::User);
                let event = Lifecycle::Suspended(SuspendedDetail::Paused);
                ((), vec![Event::Lifecycle { uuid, event }])
            });
        } else {
            self.mark_resumed(&dom, StateReason::Migrated, ResumedDetail::Migrated);
        }
        if let Some(s) = &c.stats {
            let s = JobStats {
                outgoing: false,
                ..s.clone()
            };
            self.events().publish(Event::JobCompleted {
                uuid,
                stats: Arc::new(s.job_stats(3)),
            });
            *lock(&dom.completed_job) = Some(s);
        }
        Ok((dom, c.encode()))
    }

    /// The confirm step at the source: the migrated guest stops (and its definition goes
    /// with `undefine_source`); with `cancelled` it runs again.
    pub async fn migrate_confirm(
        &self,
        dom: &Arc<Domain>,
        cookie: &[u8],
        o: &MigrateOptions,
        cancelled: bool,
    ) -> Result<()> {
        if o.offline {
            if !cancelled && o.undefine_source {
                self.undefine(dom, UndefineOptions::default()).await?;
            }
            return Ok(());
        }
        // a failed prepare leaves no cookie: the guest runs on regardless
        let c = if cookie.is_empty() && cancelled {
            None
        } else {
            Some(Cookie::decode(cookie)?)
        };
        let ctx = self.ctx(dom);
        {
            let _job = dom.begin_job("migration out").await?;
            let status = lock(&dom.data).status;
            if cancelled {
                if status == Status::new(DomainState::Paused, StateReason::Migrated) {
                    dom.driver.resume(&ctx).await?;
                    self.mark_resumed(dom, StateReason::Migrated, ResumedDetail::Migrated);
                }
                return Ok(());
            }
            if let Some(s) = c.as_ref().and_then(|c| c.stats.as_ref()) {
                self.events().publish(Event::JobCompleted {
                    uuid: dom.uuid,
                    stats: Arc::new(s.job_stats(3)),
                });
            }
            if status.is_active() {
                dom.driver.destroy(&ctx, false).await?;
                self.mark_stopped(dom, StateReason::Migrated, StoppedDetail::Migrated);
            }
        }
        if o.undefine_source && lock(&dom.data).persistent {
            self.undefine(dom, UndefineOptions::default()).await?;
        }
        Ok(())
    }

    /// Stop the outgoing migration `dom` runs (domjobabort).
    pub(crate) async fn abort_migration(&self, dom: &Arc<Domain>) -> Result<()> {
        Ok(dom.driver.abort_job(&self.ctx(dom)).await?)
    }

    /// The running migration's figures, for `domjobinfo`.
    pub async fn migration_stats(&self, dom: &Arc<Domain>) -> Result<MigrationStats> {
        Ok(dom.driver.migration_stats(&self.ctx(dom)).await?)
    }

    /// A migration setting: of the running guest, or (the bandwidth) kept for the domain.
    pub async fn migrate_setting(&self, dom: &Arc<Domain>, which: MigrateSetting) -> Result<u64> {
        if which == MigrateSetting::MaxSpeed {
            return Ok(dom.driver.migrate_setting_kept(dom.uuid));
        }
        Self::require(dom, Operation::MigrateTune)?;
        Ok(dom.driver.migrate_setting(&self.ctx(dom), which).await?)
    }

    /// Change a migration setting (the bandwidth of an inactive domain is kept for its
    /// next migration, as libvirt keeps it).
    pub async fn set_migrate_setting(
        &self,
        dom: &Arc<Domain>,
        which: MigrateSetting,
        value: u64,
    ) -> Result<()> {
        let active = lock(&dom.data).status.is_active();
        if which == MigrateSetting::MaxSpeed && !active {
            dom.driver.keep_migrate_setting(dom.uuid, value);
            return Ok(());
        }
        Self::require(dom, Operation::MigrateTune)?;
        dom.driver
            .set_migrate_setting(&self.ctx(dom), which, value)
            .await?;
        if which == MigrateSetting::MaxSpeed {
            dom.driver.keep_migrate_setting(dom.uuid, value);
        }
        Ok(())
    }

    /// Switch the running outgoing migration to post-copy.
    pub async fn migrate_start_postcopy(&self, dom: &Arc<Domain>) -> Result<()> {
        Self::require(dom, Operation::MigrateTune)?;
        if dom.running_job() != "migration out" {
            return Err(Error::InvalidState(
                "post-copy can only be started while outgoing migration is in progress".into(),
            ));
        }
        Ok(dom.driver.migrate_start_postcopy(&self.ctx(dom)).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_round_trip_and_foreign_ones_are_refused() {
        let c = Cookie {
            version: COOKIE_VERSION,
            name: "a".into(),
            uuid: Uuid::nil(),
            persistent: Some("<domain/>".into()),
            stats: None,
        };
        assert_eq!(Cookie::decode(&c.encode()).expect("ours"), c);
        let e = Cookie::decode(b"<qemu-migration/>").expect_err("libvirt's");
        assert!(e.to_string().contains("not a virtbus one"), "{e}");
        let mut v2 = c.clone();
        v2.version = 2;
        let e = Cookie::decode(&v2.encode()).expect_err("another version");
        assert!(e.to_string().contains("version 2"), "{e}");
    }

    #[test]
    fn libvirts_flag_refusals() {
        let o = MigrateOptions {
            postcopy: true,
            ..Default::default()
        };
        assert!(check_flags(&o).is_err());
        let o = MigrateOptions {
            offline: true,
            ..Default::default()
        };
        let e = check_flags(&o).expect_err("offline without persistent");
        assert!(e.to_string().contains("persistent flag"), "{e}");
    }
}
