//! Snapshot metadata operations, with libvirt's rules; the driver does what touches the guest.

use std::sync::Arc;

use super::{
    Core, Domain, Error, Event, Result,
    error::Missing,
    events::lock,
    info::{SnapshotInfo, SnapshotKind},
    now_unix,
    options::{RevertOptions, SnapshotCreateOptions, SnapshotDeleteOptions, SnapshotListOptions},
    snapshot_kind,
    snapshots::{DeleteScope, Snapshot},
    store::{self, DomainRecord},
    store_io,
};
use crate::{
    drivers::{DiskSwitch, ImageChains, RevertMode, RevertTarget, SnapshotRequest},
    model::{
        DomainDef, FormatOptions, MemorySnapshotKind, SnapshotDef, SnapshotMemory,
        state::{
            DomainState, Lifecycle, ResumedDetail, StartedDetail, StateReason, Status,
            StoppedDetail, SuspendedDetail,
        },
    },
};

/// Room kept below the size limit for what a driver adds to a snapshot as it takes it
/// (QEMU's cookie: the guest CPU).
const SNAPSHOT_COOKIE_RESERVE: usize = 16 * 1024;

/// libvirt's name for the domain state a snapshot records.
fn snapshot_state(state: DomainState) -> &'static str {
    match state {
        DomainState::NoState => "nostate",
        DomainState::Running => "running",
        DomainState::Blocked => "blocked",
        DomainState::Paused => "paused",
        DomainState::Shutdown => "shutdown",
        DomainState::ShutOff => "shutoff",
        DomainState::Crashed => "crashed",
        DomainState::PmSuspended => "pmsuspended",
    }
}

/// Whether `s` passes the filter groups of `opts` (not `roots`, which depends on the list).
fn snapshot_matches(
    t: &super::snapshots::SnapshotTree,
    s: &Snapshot,
    opts: &SnapshotListOptions,
) -> bool {
    fn group(options: &[(bool, bool)]) -> bool {
        !options.iter().any(|(set, _)| *set) || options.iter().any(|(set, hit)| *set && *hit)
    }
    let leaf = t.is_leaf(s.name());
    let state = s.def.state.as_deref().unwrap_or("");
    let disk_only = state == "disk-snapshot";
    let inactive = state == "shutoff";
    let external = s.kind != SnapshotKind::Internal;
    group(&[(opts.leaves, leaf), (opts.no_leaves, !leaf)])
        && group(&[(opts.metadata, true), (opts.no_metadata, false)])
        && group(&[
            (opts.inactive, inactive),
            (opts.active, !inactive && !disk_only),
            (opts.disk_only, disk_only),
        ])
        && group(&[(opts.internal, !external), (opts.external, external)])
}

impl Core {
    /// Takes the domain's name, not the domain: callers hold its data lock.
    fn snapshot_not_found(domain_name: &str, name: &str) -> Error {
        Error::NotFound(
            Missing::Snapshot(name.to_owned()),
            format!("domain '{domain_name}' has no snapshot named '{name}'"),
        )
    }

    pub fn snapshot_info(&self, dom: &Domain, name: &str) -> Result<SnapshotInfo> {
        let d = lock(&dom.data);
        let snap = d
            .snapshots
            .get(name)
            .ok_or_else(|| Self::snapshot_not_found(&d.def.name, name))?;
        Ok(d.snapshots.info(dom.uuid, snap))
    }

    pub fn snapshot_xml(&self, dom: &Domain, name: &str, secure: bool) -> Result<String> {
        let d = lock(&dom.data);
        let snap = d
            .snapshots
            .get(name)
            .ok_or_else(|| Self::snapshot_not_found(&d.def.name, name))?;
        Ok(snap.def.to_xml(&FormatOptions { id: None, secure }))
    }

    pub fn snapshot_list(&self, dom: &Domain, opts: SnapshotListOptions) -> Result<Vec<String>> {
        opts.validate()?;
        let d = lock(&dom.data);
        if d.removed {
            return Err(dom.gone());
        }
        let t = &d.snapshots;
        let all: Vec<&Snapshot> = if opts.topological {
            t.topological()
        } else {
            t.iter().collect()
        };
        Ok(all
            .into_iter()
            .filter(|s| !opts.roots || s.parent().is_none())
            .filter(|s| snapshot_matches(t, s, &opts))
            .map(|s| s.name().to_owned())
            .collect())
    }

    pub fn snapshot_children(
        &self,
        dom: &Domain,
        name: &str,
        descendants: bool,
    ) -> Result<Vec<String>> {
        self.snapshot_children_in(dom, name, descendants, SnapshotListOptions::default())
    }

    /// The children (or all descendants) of a snapshot that `opts` selects (`roots` has no
    /// meaning here).
    pub fn snapshot_children_in(
        &self,
        dom: &Domain,
        name: &str,
        descendants: bool,
        opts: SnapshotListOptions,
    ) -> Result<Vec<String>> {
        opts.validate()?;
        let d = lock(&dom.data);
        let t = &d.snapshots;
        if t.get(name).is_none() {
            return Err(Self::snapshot_not_found(&d.def.name, name));
        }
        let v = if descendants {
            t.descendants(name)
        } else {
            t.children(name)
        };
        let mut v: Vec<&Snapshot> = v
            .into_iter()
            .filter(|s| snapshot_matches(t, s, &opts))
            .collect();
        if !opts.topological {
            // Creation order, as the domain's list.
            let order: Vec<&str> = t.iter().map(Snapshot::name).collect();
            v.sort_by_key(|s| order.iter().position(|n| *n == s.name()));
        }
        Ok(v.into_iter().map(|s| s.name().to_owned()).collect())
    }

    /// Take a snapshot (or, with `redefine`, import one's metadata). Returns its name and
    /// whether it was recorded (not with `no-metadata`: the snapshot exists in the guest's
    /// disks only).
    ///
    /// Runs as a critical section: once begun it ends, whatever happens to the caller, and
    /// the daemon waits for it before exiting (a quiesced snapshot must always thaw).
    pub async fn snapshot_create(
        &self,
        dom: &Arc<Domain>,
        xml: &str,
        opts: SnapshotCreateOptions,
    ) -> Result<(String, bool)> {
        opts.validate()?;
        let def = SnapshotDef::from_xml(xml)?;
        let (core, dom2) = (self.clone(), dom.clone());
        let what = format!("snapshot of domain '{}'", dom.name());
        self.critical()
            .run(what, async move {
                core.snapshot_create_now(&dom2, def, opts).await
            })
            .await
    }

    async fn snapshot_create_now(
        &self,
        dom: &Arc<Domain>,
        def: SnapshotDef,
        opts: SnapshotCreateOptions,
    ) -> Result<(String, bool)> {
        let _job = dom.begin_job("snapshot").await?;
        self.sweep_images(dom).await;
        let r = self.snapshot_create_locked(dom, def, opts).await;
        self.sweep_images(dom).await;
        r
    }

    async fn snapshot_create_locked(
        &self,
        dom: &Arc<Domain>,
        mut def: SnapshotDef,
        opts: SnapshotCreateOptions,
    ) -> Result<(String, bool)> {
        if opts.redefine {
            return self
                .snapshot_redefine(dom, def, opts)
                .await
                .map(|n| (n, true));
        }
        for (given, element) in [
            (def.parent.is_some(), "parent"),
            (def.creation_time.is_some(), "creationTime"),
            (def.state.is_some(), "state"),
            (def.domain.is_some(), "domain"),
            (def.inactive_domain.is_some(), "inactiveDomain"),
            (def.active.is_some(), "active"),
            (def.cookie.is_some(), "cookie"),
        ] {
            if given {
                return Err(Error::InvalidArgument(format!(
                    "element /domainsnapshot/{element} is only accepted with option 'redefine'"
                )));
            }
        }
        let (status, current_def, persistent, parent, inactive) = {
            let d = lock(&dom.data);
            (
                d.status,
                d.current_def().clone(),
                d.persistent,
                d.snapshots.current().map(str::to_owned),
                d.def.clone(),
            )
        };
        if opts.halt && !persistent {
            return Err(Error::InvalidState(format!(
                "cannot halt domain '{}' after the snapshot: it is transient and would be lost",
                current_def.name
            )));
        }
        if opts.quiesce && status.state != DomainState::Running {
            return Err(Error::InvalidState(format!(
                "cannot take a quiesced snapshot of domain '{}': it is {}, and quiesce needs a \
                 running guest agent to freeze its filesystems",
                current_def.name, status.state
            )));
        }
        let now = now_unix();
        let name = def.name.clone().unwrap_or_else(|| now.to_string());
        crate::model::validate_name(crate::model::NameKind::Snapshot, &name)?;
        if lock(&dom.data).snapshots.get(&name).is_some() {
            return Err(Error::AlreadyExists(format!(
                "domain '{}' already has a snapshot named '{name}'",
                current_def.name
            )));
        }
        def.name = Some(name.clone());
        def.creation_time = Some(now);
        def.parent = parent;
        def.state = Some(
            if opts.disk_only {
                "disk-snapshot"
            } else {
                snapshot_state(status.state)
            }
            .to_owned(),
        );
        if opts.disk_only {
            def.memory = Some(SnapshotMemory {
                snapshot: MemorySnapshotKind::No,
                file: None,
            });
        } else if def.memory.is_none() {
            let snapshot = if status.is_active() {
                MemorySnapshotKind::Internal
            } else {
                MemorySnapshotKind::No
            };
            def.memory = Some(SnapshotMemory {
                snapshot,
                file: None,
            });
        }
        def.domain = Some((*current_def).clone());
        if persistent && status.is_active() && *inactive != *current_def {
            // what a revert restores as the persistent definition
            def.inactive_domain = Some((*inactive).clone());
        }
        if persistent && !opts.no_metadata {
            // Refused before the driver takes anything: once taken, it must be recorded.
            store::check_snapshot_size(&def, SNAPSHOT_COOKIE_RESERVE)?;
        }
        let _shown = self.show_job(dom, "snapshot-create");
        let outcome = dom
            .driver
            .snapshot_create(
                &self.ctx(dom),
                SnapshotRequest {
                    def: &mut def,
                    opts,
                    status,
                    definition: &current_def,
                },
            )
            .await?;
        if !outcome.switched.is_empty() || outcome.live.is_some() {
            self.apply_disk_switch(dom, outcome.live, &outcome.switched);
            self.persist(dom).await?;
        }
        if !opts.no_metadata {
            self.record_snapshot(dom, def, true).await?;
        }
        if let Some(e) = outcome.error_after {
            // the snapshot exists and is recorded; what went wrong after it is the answer
            return Err(e.into());
        }
        if opts.no_metadata {
            return Ok((name, false));
        }
        if opts.halt && status.is_active() {
            dom.driver.destroy(&self.ctx(dom), false).await?;
            self.mark_stopped(dom, StateReason::FromSnapshot, StoppedDetail::FromSnapshot);
        }
        Ok((name, true))
    }

    /// Show `job` as the domain's `Job` property until the returned guard is dropped.
    fn show_job<'a>(&'a self, dom: &'a Domain, job: &'static str) -> ShownJob<'a> {
        self.update(dom, |d| {
            d.job = job;
            d.job_progress = 0.0;
            ((), Vec::new())
        });
        ShownJob { core: self, dom }
    }

    /// Point the definitions at the images an external snapshot switched the disks to: the
    /// live one as the driver reports it, and each persistent disk that still names the old
    /// image.
    fn apply_disk_switch(&self, dom: &Domain, live: Option<DomainDef>, switched: &[DiskSwitch]) {
        self.update(dom, |d| {
            if let Some(live) = live {
                if d.status.is_active() {
                    d.live = Some(Arc::new(live));
                } else {
                    tracing::warn!(
                        "ignored a live definition for shut-off domain '{}'",
                        d.def.name
                    );
                }
            }
            let mut def = (*d.def).clone();
            let mut changed = false;
            for sw in switched {
                for disk in def.devices.disks.iter_mut() {
                    let same = disk.target_dev == sw.disk.target_dev
                        && disk.source.as_ref().and_then(|s| s.path.as_deref())
                            == Some(sw.old_source.as_str());
                    if same {
                        disk.source = sw.disk.source.clone();
                        disk.driver = sw.disk.driver.clone();
                        disk.backing_store = sw.disk.backing_store.clone();
                        disk.disk_type = sw.disk.disk_type;
                        changed = true;
                    }
                }
            }
            if changed {
                d.def = Arc::new(def);
            }
            ((), Vec::new())
        });
    }

    /// Refuse to revert to an internal snapshot whose images now hold data something else
    /// needs: a backing file of the domain's disks (it lies under an external snapshot's
    /// overlay), or an image an external snapshot froze. Loading the snapshot would rewrite
    /// it under them. libvirt 9.7+ refuses this revert too (it loads internal snapshots into
    /// the disks' top images only); the error names the image, what sits over it, and the
    /// ways out.
    fn check_revert_images(&self, dom: &Domain, snap: &Snapshot) -> Result<()> {
        let Some(snap_def) = &snap.def.domain else {
            return Ok(());
        };
        let d = lock(&dom.data);
        let mut protected: Vec<(String, String)> = Vec::new();
        for def in [Some(&d.def), d.live.as_ref()].into_iter().flatten() {
            for disk in &def.devices.disks {
                let chain = disk.image_chain();
                for w in chain.windows(2) {
                    protected.push((
                        w[1].clone(),
                        format!(
                            "under external overlay {} of the domain's disk '{}'",
                            w[0], disk.target_dev
                        ),
                    ));
                }
            }
        }
        for other in d.snapshots.iter() {
            if other.kind == SnapshotKind::Internal || other.name() == snap.name() {
                continue;
            }
            if let Some(od) = &other.def.domain {
                for (img, _) in disk_images(od) {
                    protected.push((
                        img,
                        format!(
                            "held by {} snapshot '{}'",
                            other.kind.as_str(),
                            other.name()
                        ),
                    ));
                }
            }
        }
        for (img, top) in disk_images(snap_def) {
            if !top {
                continue;
            }
            if let Some((_, why)) = protected.iter().find(|(p, _)| *p == img) {
                return Err(Error::NotSupported(format!(
                    "cannot revert to internal snapshot '{}': it lives in image {img}, which \
                     is now {why}; reverting would rewrite image {img} under the images built \
                     on it (libvirt refuses this too); delete the external snapshots over it \
                     first (their data is merged down, and the disk then uses {img} again)",
                    snap.name()
                )));
            }
        }
        Ok(())
    }

    /// Write a snapshot's file, add it to the tree and (if `make_current`) make it current.
    async fn record_snapshot(
        &self,
        dom: &Arc<Domain>,
        def: SnapshotDef,
        make_current: bool,
    ) -> Result<()> {
        let name = def.name.clone().unwrap_or_default();
        let persistent = lock(&dom.data).persistent;
        if persistent {
            let store = self.store().clone();
            let (uuid, d) = (dom.uuid, def.clone());
            store_io(move || store.save_snapshot(&uuid, &d)).await?;
        }
        self.update(dom, |d| {
            d.snapshots.insert(Snapshot {
                kind: snapshot_kind(&def),
                def: Arc::new(def),
            });
            if make_current {
                d.snapshots.set_current(Some(&name));
            }
            ((), Vec::new())
        });
        if make_current {
            self.persist(dom).await?;
        }
        Ok(())
    }

    async fn snapshot_redefine(
        &self,
        dom: &Arc<Domain>,
        mut def: SnapshotDef,
        opts: SnapshotCreateOptions,
    ) -> Result<String> {
        let name = def.name.clone().ok_or_else(|| {
            Error::InvalidArgument(
                "option 'redefine' needs the snapshot's /domainsnapshot/name".into(),
            )
        })?;
        {
            let d = lock(&dom.data);
            if let Some(sd) = &def.domain
                && sd.uuid != dom.uuid
            {
                return Err(Error::InvalidArgument(format!(
                    "/domainsnapshot/domain/uuid is {}, but snapshot '{name}' is being \
                     defined for domain '{}' with UUID {}",
                    sd.uuid, d.def.name, dom.uuid
                )));
            }
            if let Some(p) = &def.parent {
                if d.snapshots.get(p).is_none() {
                    return Err(Error::InvalidArgument(format!(
                        "/domainsnapshot/parent/name '{p}' is not a snapshot of domain '{}'",
                        d.def.name
                    )));
                }
                if p == &name || d.snapshots.ancestors(p).contains(&name.as_str()) {
                    return Err(Error::InvalidArgument(format!(
                        "parent '{p}' would make snapshot '{name}' its own ancestor"
                    )));
                }
            }
        }
        def.creation_time.get_or_insert_with(now_unix);
        self.record_snapshot(dom, def, opts.current).await?;
        Ok(name)
    }

    /// Revert to a snapshot; a critical section like [`Core::snapshot_create`].
    pub async fn snapshot_revert(
        &self,
        dom: &Arc<Domain>,
        name: &str,
        opts: RevertOptions,
    ) -> Result<()> {
        opts.validate()?;
        let (core, dom2, name2) = (self.clone(), dom.clone(), name.to_owned());
        let what = format!("revert of domain '{}' to snapshot '{name}'", dom.name());
        self.critical()
            .run(what, async move {
                core.snapshot_revert_now(&dom2, &name2, opts).await
            })
            .await
    }

    async fn snapshot_revert_now(
        &self,
        dom: &Arc<Domain>,
        name: &str,
        opts: RevertOptions,
    ) -> Result<()> {
        let _job = dom.begin_job("revert").await?;
        self.sweep_images(dom).await;
        let r = self.snapshot_revert_locked(dom, name, opts).await;
        self.sweep_images(dom).await;
        r
    }

    async fn snapshot_revert_locked(
        &self,
        dom: &Arc<Domain>,
        name: &str,
        opts: RevertOptions,
    ) -> Result<()> {
        let (snap, persistent, status) = {
            let d = lock(&dom.data);
            let snap = d
                .snapshots
                .get(name)
                .ok_or_else(|| Self::snapshot_not_found(&d.def.name, name))?
                .clone();
            (snap, d.persistent, d.status)
        };
        let snap_state = snap.def.state.as_deref().unwrap_or("");
        let snap_active = matches!(snap_state, "running" | "paused");
        if !persistent && !snap_active && !opts.running && !opts.paused {
            return Err(Error::InvalidState(format!(
                "domain '{}' is transient: reverting to inactive snapshot '{name}' needs \
                 option 'running' or 'paused'",
                dom.name()
            )));
        }
        let Some(snap_def) = snap.def.domain.clone() else {
            return Err(Error::InvalidState(format!(
                "snapshot '{name}' has no domain definition to revert to; redefine it with one"
            )));
        };
        if snap.kind == SnapshotKind::Internal {
            // an external snapshot's images are never written: new overlays go over them
            self.check_revert_images(dom, &snap)?;
        }
        let target = if snap_active {
            if !opts.running && (snap_state == "paused" || opts.paused) {
                RevertTarget::Paused
            } else {
                RevertTarget::Running
            }
        } else if opts.running {
            RevertTarget::Running
        } else if opts.paused {
            RevertTarget::Paused
        } else {
            RevertTarget::Inactive
        };
        let was_active = status.is_active();
        let id = self.next_id();
        let _shown = self.show_job(dom, "snapshot-revert");
        let outcome = dom
            .driver
            .snapshot_revert(&self.ctx(dom), &snap.def, was_active, target, id)
            .await?;
        let mut snap_def = snap_def;
        let mut inactive_def = snap
            .def
            .inactive_domain
            .clone()
            .unwrap_or_else(|| snap_def.clone());
        for sw in &outcome.switched {
            switch_disk(&mut snap_def, sw);
            switch_disk(&mut inactive_def, sw);
        }
        let snap_def = Arc::new(snap_def);
        let inactive_def = Arc::new(inactive_def);
        if persistent {
            let (rec, unchanged) = {
                let d = lock(&dom.data);
                let now = d.record();
                let rec = DomainRecord {
                    def: (*inactive_def).clone(),
                    current_snapshot: Some(name.to_owned()),
                    ..now.clone()
                };
                let unchanged = rec == now;
                (rec, unchanged)
            };
            // back to the current snapshot with the same definition: the file already says so
            if !unchanged {
                self.save(rec).await?;
            }
        }
        let uuid = dom.uuid;
        let lifecycle = |e| Event::Lifecycle { uuid, event: e };
        match (outcome.mode, target) {
            (RevertMode::InPlace, RevertTarget::Running | RevertTarget::Paused) if was_active => {
                let (state, ev) = if target == RevertTarget::Running {
                    let ev = (status.state == DomainState::Paused)
                        .then_some(Lifecycle::Resumed(ResumedDetail::FromSnapshot));
                    (DomainState::Running, ev)
                } else {
                    let ev = (status.state == DomainState::Running)
                        .then_some(Lifecycle::Suspended(SuspendedDetail::FromSnapshot));
                    (DomainState::Paused, ev)
                };
                let live = outcome
                    .live
                    .map(Arc::new)
                    .unwrap_or_else(|| snap_def.clone());
                self.update(dom, |d| {
                    d.def = inactive_def.clone();
                    d.live = Some(live);
                    d.status = Status::new(state, StateReason::FromSnapshot);
                    d.snapshots.set_current(Some(name));
                    ((), ev.into_iter().map(lifecycle).collect())
                });
            }
            _ => {
                if was_active {
                    self.mark_stopped_keep(
                        dom,
                        StateReason::FromSnapshot,
                        StoppedDetail::FromSnapshot,
                    );
                }
                let id = (target != RevertTarget::Inactive).then_some(id);
                let live = outcome
                    .live
                    .map(Arc::new)
                    .unwrap_or_else(|| snap_def.clone());
                self.update(dom, |d| {
                    d.def = inactive_def.clone();
                    d.snapshots.set_current(Some(name));
                    let mut evs = Vec::new();
                    if let Some(id) = id {
                        d.live = Some(live);
                        d.id = Some(id);
                        d.status = Status::new(DomainState::Running, StateReason::FromSnapshot);
                        evs.push(lifecycle(Lifecycle::Started(StartedDetail::FromSnapshot)));
                    }
                    ((), evs)
                });
                if target == RevertTarget::Paused {
                    self.mark_paused(
                        dom,
                        StateReason::FromSnapshot,
                        SuspendedDetail::FromSnapshot,
                    );
                }
            }
        }
        Ok(())
    }

    /// Delete a snapshot (and, by scope, its descendants); a critical section like
    /// [`Core::snapshot_create`].
    pub async fn snapshot_delete(
        &self,
        dom: &Arc<Domain>,
        name: &str,
        opts: SnapshotDeleteOptions,
    ) -> Result<()> {
        opts.validate()?;
        let (core, dom2, name2) = (self.clone(), dom.clone(), name.to_owned());
        let what = format!("delete of snapshot '{name}' of domain '{}'", dom.name());
        self.critical()
            .run(what, async move {
                core.snapshot_delete_now(&dom2, &name2, opts).await
            })
            .await
    }

    async fn snapshot_delete_now(
        &self,
        dom: &Arc<Domain>,
        name: &str,
        opts: SnapshotDeleteOptions,
    ) -> Result<()> {
        let _job = dom.begin_job("delete snapshot").await?;
        self.sweep_images(dom).await;
        let r = self.snapshot_delete_locked(dom, name, opts).await;
        self.sweep_images(dom).await;
        r
    }

    /// Every image of every definition of the domain: persistent, live, and each snapshot's.
    fn referenced_images(d: &super::domain::DomainData) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let snaps = d
            .snapshots
            .iter()
            .flat_map(|s| [s.def.domain.as_ref(), s.def.inactive_domain.as_ref()]);
        for def in [Some(&*d.def), d.live.as_deref()]
            .into_iter()
            .chain(snaps)
            .flatten()
        {
            for (img, _) in disk_images(def) {
                if !out.contains(&img) {
                    out.push(img);
                }
            }
        }
        out
    }

    /// Let the driver remove the images it made that no definition uses any more (see
    /// [`crate::drivers::Driver::sweep_images`]). Runs under the domain's job lock, or before
    /// the daemon serves: never while another operation is making images.
    pub(crate) async fn sweep_images(&self, dom: &Domain) {
        let referenced = Self::referenced_images(&lock(&dom.data));
        dom.driver.sweep_images(&self.ctx(dom), &referenced).await;
    }

    /// The chains of the definitions that stay when the snapshots named `doomed` are gone.
    fn remaining_chains(d: &super::domain::DomainData, doomed: &[String]) -> ImageChains {
        let snaps = d
            .snapshots
            .iter()
            .filter(|s| !doomed.iter().any(|n| n == s.name()))
            .flat_map(|s| [s.def.domain.as_ref(), s.def.inactive_domain.as_ref()]);
        let mut chains = Vec::new();
        for def in [Some(&*d.def), d.live.as_deref()]
            .into_iter()
            .chain(snaps)
            .flatten()
        {
            for disk in &def.devices.disks {
                let c = disk.image_chain();
                if !c.is_empty() && !chains.contains(&c) {
                    chains.push(c);
                }
            }
        }
        ImageChains { chains }
    }

    async fn snapshot_delete_locked(
        &self,
        dom: &Arc<Domain>,
        name: &str,
        opts: SnapshotDeleteOptions,
    ) -> Result<()> {
        let scope = if opts.children {
            DeleteScope::WithChildren
        } else if opts.children_only {
            DeleteScope::ChildrenOnly
        } else {
            DeleteScope::Alone
        };
        let (doomed, active, persistent) = {
            let d = lock(&dom.data);
            let t = &d.snapshots;
            let snap = t
                .get(name)
                .ok_or_else(|| Self::snapshot_not_found(&d.def.name, name))?;
            let mut doomed: Vec<Snapshot> = match scope {
                DeleteScope::Alone => vec![snap.clone()],
                _ => t.descendants(name).into_iter().cloned().collect(),
            };
            if scope == DeleteScope::WithChildren {
                doomed.insert(0, snap.clone());
            }
            (doomed, d.status.is_active(), d.persistent)
        };
        let doomed_names: Vec<String> = doomed.iter().map(|s| s.name().to_owned()).collect();
        {
            let remaining = Self::remaining_chains(&lock(&dom.data), &doomed_names);
            for snap in &doomed {
                dom.driver
                    .snapshot_delete_check(&snap.def, opts.metadata_only, &remaining)?;
            }
        }
        if opts.metadata_only {
            // the images stay, the user's: nothing removes them once unused
            let images: Vec<String> = doomed
                .iter()
                .flat_map(|s| [s.def.domain.as_ref(), s.def.inactive_domain.as_ref()])
                .flatten()
                .flat_map(|def| disk_images(def).into_iter().map(|(i, _)| i))
                .chain(
                    doomed
                        .iter()
                        .flat_map(|s| s.def.disks.iter().filter_map(|d| d.source.clone())),
                )
                .collect();
            dom.driver.release_images(&self.ctx(dom), &images);
        }
        let _shown = self.show_job(dom, "snapshot-delete");
        // Leaves first, so that a driver never deletes a snapshot another one depends on.
        let mut done: Vec<String> = Vec::new();
        let mut failure = None;
        let mut touched: Vec<String> = Vec::new();
        for snap in doomed.iter().rev() {
            let remaining = Self::remaining_chains(&lock(&dom.data), &doomed_names);
            match dom
                .driver
                .snapshot_delete(
                    &self.ctx(dom),
                    &snap.def,
                    active,
                    opts.metadata_only,
                    &remaining,
                )
                .await
            {
                Ok(out) => {
                    done.push(snap.name().to_owned());
                    if !out.collapsed.is_empty() {
                        let t = self.update(dom, |d| (collapse_all(d, &out.collapsed), Vec::new()));
                        for n in t {
                            if !touched.contains(&n) {
                                touched.push(n);
                            }
                        }
                    }
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        // on a failure, the snapshots already deleted go (each a leaf by then), the rest stay
        let (scope, name) = match &failure {
            None => (scope, name.to_owned()),
            Some(_) => (DeleteScope::Alone, String::new()),
        };
        let reparented = self.update(dom, |d| {
            let children: Vec<String> = d
                .snapshots
                .children(&name)
                .iter()
                .map(|s| s.name().to_owned())
                .collect();
            if failure.is_some() {
                for n in &done {
                    d.snapshots.remove(n, DeleteScope::Alone);
                }
            } else {
                d.snapshots.remove(&name, scope);
            }
            let touched: Vec<SnapshotDef> = touched
                .iter()
                .filter_map(|c| d.snapshots.get(c).map(|s| (*s.def).clone()))
                .collect();
            let moved: Vec<SnapshotDef> = if scope == DeleteScope::Alone {
                children
                    .iter()
                    .filter_map(|c| d.snapshots.get(c).map(|s| (*s.def).clone()))
                    .collect()
            } else {
                Vec::new()
            };
            let mut all = touched;
            for m in moved {
                if !all.iter().any(|t| t.name == m.name) {
                    all.push(m);
                }
            }
            (all, Vec::new())
        });
        if persistent {
            let store = self.store().clone();
            let uuid = dom.uuid;
            let names = done;
            store_io(move || {
                for def in &reparented {
                    store.save_snapshot(&uuid, def)?;
                }
                for n in &names {
                    store.remove_snapshot(&uuid, n)?;
                }
                Ok::<_, super::store::StoreError>(())
            })
            .await?;
            self.persist(dom).await?;
        }
        match failure {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }
}

/// Put the disk `sw` names (by its old source) on its new image.
fn switch_disk(def: &mut DomainDef, sw: &DiskSwitch) {
    for disk in def.devices.disks.iter_mut() {
        let same = disk.target_dev == sw.disk.target_dev
            && disk.source.as_ref().and_then(|s| s.path.as_deref()) == Some(sw.old_source.as_str());
        if same {
            disk.source = sw.disk.source.clone();
            disk.driver = sw.disk.driver.clone();
            disk.backing_store = sw.disk.backing_store.clone();
            disk.disk_type = sw.disk.disk_type;
        }
    }
}

/// Take `images` (merged away) out of every definition of the domain; returns the names of
/// the snapshots whose definitions changed.
fn collapse_all(d: &mut super::domain::DomainData, images: &[String]) -> Vec<String> {
    fn collapse(def: &mut DomainDef, images: &[String]) -> bool {
        let mut changed = false;
        for disk in def.devices.disks.iter_mut() {
            for img in images {
                changed |= disk.collapse(img);
            }
        }
        changed
    }
    let mut def = (*d.def).clone();
    if collapse(&mut def, images) {
        d.def = Arc::new(def);
    }
    if let Some(live) = &d.live {
        let mut live = (**live).clone();
        if collapse(&mut live, images) {
            d.live = Some(Arc::new(live));
        }
    }
    let mut touched = Vec::new();
    let names: Vec<String> = d.snapshots.iter().map(|s| s.name().to_owned()).collect();
    for n in names {
        let Some(s) = d.snapshots.get(&n) else {
            continue;
        };
        let mut sd = (*s.def).clone();
        let mut changed = false;
        for def in [sd.domain.as_mut(), sd.inactive_domain.as_mut()]
            .into_iter()
            .flatten()
        {
            changed |= collapse(def, images);
        }
        if changed {
            let kind = s.kind;
            d.snapshots.insert(Snapshot {
                def: Arc::new(sd),
                kind,
            });
            touched.push(n);
        }
    }
    touched
}

/// Clears the `Job` property when the operation ends, however it ends.
struct ShownJob<'a> {
    core: &'a Core,
    dom: &'a Domain,
}

impl Drop for ShownJob<'_> {
    fn drop(&mut self) {
        self.core.update(self.dom, |d| {
            d.job = "";
            d.job_progress = 0.0;
            ((), Vec::new())
        });
    }
}

pub use crate::model::disk_images;

#[cfg(test)]
mod tests {
    use super::*;

    fn def_on(chain: &[&str]) -> DomainDef {
        let mut backing = String::from("<backingStore/>");
        for img in chain[1..].iter().rev() {
            backing = format!(
                "<backingStore type='file'><format type='qcow2'/><source file='{img}'/>\
                 {backing}</backingStore>"
            );
        }
        DomainDef::from_xml(&format!(
            "<domain type='qemu'><name>g</name><memory>1024</memory><os><type>hvm</type></os>\
             <devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/>\
             <source file='{}'/>{backing}<target dev='vda' bus='virtio'/></disk></devices>\
             </domain>",
            chain[0]
        ))
        .expect("domain")
    }

    fn snap(name: &str, parent: Option<&str>, chain: &[&str]) -> Snapshot {
        let mut def = SnapshotDef::from_xml(&format!(
            "<domainsnapshot><name>{name}</name><state>disk-snapshot</state>\
             <memory snapshot='no'/></domainsnapshot>"
        ))
        .expect("snapshot");
        def.parent = parent.map(str::to_owned);
        def.domain = Some(def_on(chain));
        Snapshot {
            kind: SnapshotKind::DiskOnly,
            def: Arc::new(def),
        }
    }

    /// e1 froze a, e2 froze a.e1; the domain runs on a.e2.
    fn data() -> super::super::domain::DomainData {
        let top = ["/i/a.e2", "/i/a.e1", "/i/a"];
        let mut d = super::super::define::new_data(def_on(&top), true);
        d.live = Some(Arc::new(def_on(&top)));
        d.snapshots.insert(snap("e1", None, &["/i/a"]));
        d.snapshots
            .insert(snap("e2", Some("e1"), &["/i/a.e1", "/i/a"]));
        d
    }

    #[test]
    fn remaining_chains_leave_out_the_doomed() {
        let d = data();
        let r = Core::remaining_chains(&d, &["e1".into()]);
        assert_eq!(r.over("/i/a"), ["/i/a.e1"]);
        assert_eq!(r.over("/i/a.e1"), ["/i/a.e2"]);
        assert!(!r.chains.contains(&vec!["/i/a".to_owned()]), "e1's own");
        let all = Core::referenced_images(&d);
        assert_eq!(all, ["/i/a.e2", "/i/a.e1", "/i/a"]);
    }

    #[test]
    fn a_merged_image_leaves_every_definition() {
        let mut d = data();
        let touched = collapse_all(&mut d, &["/i/a.e1".into()]);
        assert_eq!(touched, ["e2"]);
        assert_eq!(d.def.devices.disks[0].image_chain(), ["/i/a.e2", "/i/a"]);
        let live = d.live.as_ref().expect("live");
        assert_eq!(live.devices.disks[0].image_chain(), ["/i/a.e2", "/i/a"]);
        let e2 = d.snapshots.get("e2").expect("e2");
        let e2_chain = e2.def.domain.as_ref().expect("domain").devices.disks[0].image_chain();
        assert_eq!(e2_chain, ["/i/a"], "e2's state is in a now");
        assert_eq!(e2.parent(), Some("e1"), "the tree is the core's to change");
        // the top merged away: the disk uses the image below
        collapse_all(&mut d, &["/i/a.e2".into()]);
        assert_eq!(d.def.devices.disks[0].image_chain(), ["/i/a"]);
    }

    #[test]
    fn a_revert_switch_names_the_new_overlay() {
        let mut def = def_on(&["/i/a"]);
        let mut disk = def.devices.disks[0].clone();
        disk.source = Some(crate::model::devices::DiskSource {
            path: Some("/i/a.e1-revert1".into()),
            network: None,
            index: None,
            startup_policy: None,
            volume: None,
        });
        switch_disk(
            &mut def,
            &DiskSwitch {
                old_source: "/i/a".into(),
                disk,
            },
        );
        assert_eq!(
            def.devices.disks[0]
                .source
                .as_ref()
                .and_then(|s| s.path.as_deref()),
            Some("/i/a.e1-revert1")
        );
    }
}
