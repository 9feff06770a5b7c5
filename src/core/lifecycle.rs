//! Running, pausing and stopping domains; and what a guest does on its own.

use std::{os::fd::OwnedFd, sync::Arc};

use uuid::Uuid;

use super::{
    Core, Domain, Error, Event, Result,
    error::StateConflict,
    events::lock,
    ops::Operation,
    options::{DestroyOptions, PowerMode, StartOptions},
};
use crate::{
    drivers::{Completion, DriverEvent, StatValue, Stats},
    model::{
        DomainDef, LifecycleAction,
        state::{
            CrashedDetail, DomainState, Lifecycle, ResumedDetail, ShutdownDetail, StartedDetail,
            StateReason, Status, StoppedDetail, SuspendedDetail,
        },
    },
};

impl Core {
    /// The domain's definition now and its state, if `op` may run in that state;
    /// otherwise the error saying why it cannot.
    pub(crate) fn require(dom: &Domain, op: Operation) -> Result<(Arc<DomainDef>, DomainState)> {
        let d = lock(&dom.data);
        let state = d.status.state;
        if op.states().allows(state) {
            return Ok((d.current_def().clone(), state));
        }
        Err(Error::WrongState(StateConflict {
            domain: d.def.name.clone(),
            op,
            state,
            needs_active: op.states().needs_active(),
        }))
    }

    /// Start a domain: from its managed save image when it has one (unless `force_boot`),
    /// else boot it.
    pub async fn start(&self, dom: &Arc<Domain>, opts: StartOptions) -> Result<()> {
        self.start_with(dom, opts, None, StateReason::Booted, &[])
            .await
    }

    /// Start a domain with `reason` as its running state's reason (fixtures recreate a
    /// domain found running for an unknown reason).
    pub async fn start_as(
        &self,
        dom: &Arc<Domain>,
        opts: StartOptions,
        reason: StateReason,
    ) -> Result<()> {
        self.start_with(dom, opts, None, reason, &[]).await
    }

    /// Start a domain, optionally from another definition than its persistent one.
    pub(crate) async fn start_with(
        &self,
        dom: &Arc<Domain>,
        opts: StartOptions,
        def: Option<DomainDef>,
        reason: StateReason,
        files: &[OwnedFd],
    ) -> Result<()> {
        let _job = dom.begin_job("start").await?;
        let (persistent_def, _) = Self::require(dom, Operation::Start)?;
        let saved = lock(&dom.data).managed_save.clone();
        if let Some(saved) = saved {
            if def.is_some() || (!files.is_empty() && !opts.force_boot) {
                return Err(Error::InvalidState(format!(
                    "domain '{}' has a managed save image: start it as it is, or remove the \
                     image first",
                    dom.name()
                )));
            }
            if !opts.force_boot {
                return self
                    .restore(
                        dom,
                        saved.def.unwrap_or(persistent_def),
                        opts.paused || saved.paused,
                    )
                    .await;
            }
            self.drop_managed_save(dom).await?;
        }
        let def = def.map(Arc::new).unwrap_or(persistent_def);
        self.boot_with_files(dom, def, opts.paused, StartedDetail::Booted, reason, files)
            .await
    }

    /// Start a domain with `files` handed to the guest (libvirt's
    /// `virDomainCreateWithFiles`); a managed save image is refused, as it was saved
    /// without them.
    pub async fn start_with_files(
        &self,
        dom: &Arc<Domain>,
        opts: StartOptions,
        files: &[OwnedFd],
    ) -> Result<()> {
        self.start_with(dom, opts, None, StateReason::Booted, files)
            .await
    }

    /// Start the hypervisor for `def` and record the domain as running; the job is held.
    pub(crate) async fn boot(
        &self,
        dom: &Arc<Domain>,
        def: Arc<DomainDef>,
        paused: bool,
        detail: StartedDetail,
        reason: StateReason,
    ) -> Result<()> {
        self.boot_with_files(dom, def, paused, detail, reason, &[])
            .await
    }

    /// [`Core::boot`] handing `files` to the guest.
    async fn boot_with_files(
        &self,
        dom: &Arc<Domain>,
        def: Arc<DomainDef>,
        paused: bool,
        detail: StartedDetail,
        reason: StateReason,
        files: &[OwnedFd],
    ) -> Result<()> {
        let def = self.resolved(def)?;
        let def = self.resolve_networks(def).await?;
        let id = self.next_id();
        let started = dom
            .driver
            .start_with_files(&self.ctx(dom), &def, paused, id, files)
            .await?;
        let agent = agent_at_start(dom.uuid, started.agent);
        self.update(dom, |d| {
            d.live = Some(started.live.map(Arc::new).unwrap_or(def));
            d.id = Some(id);
            d.status = Status::new(DomainState::Running, reason);
            d.warning = None;
            d.taints.clear();
            let ev = Lifecycle::Started(detail);
            let started = Event::Lifecycle {
                uuid: dom.uuid,
                event: ev,
            };
            ((), agent.into_iter().chain([started]).collect())
        });
        if paused {
            self.mark_paused(dom, StateReason::User, SuspendedDetail::Paused);
        }
        Ok(())
    }

    pub(crate) fn mark_paused_after_start(&self, dom: &Arc<Domain>) {
        self.mark_paused(dom, StateReason::User, SuspendedDetail::Paused);
    }

    /// Record a pause; a no-op when already paused (the driver may report the pause an
    /// operation caused before the operation returns).
    pub(crate) fn mark_paused(&self, dom: &Domain, reason: StateReason, detail: SuspendedDetail) {
        self.update(dom, |d| {
            if d.status.state == DomainState::Paused {
                return ((), Vec::new());
            }
            d.status = Status::new(DomainState::Paused, reason);
            let ev = Lifecycle::Suspended(detail);
            (
                (),
                vec![Event::Lifecycle {
                    uuid: dom.uuid,
                    event: ev,
                }],
            )
        });
    }

    /// Record that the hypervisor is gone; a transient domain disappears with it.
    pub(crate) fn mark_stopped(
        &self,
        dom: &Arc<Domain>,
        reason: StateReason,
        detail: StoppedDetail,
    ) {
        if self.mark_stopped_keep(dom, reason, detail) {
            self.remove(dom);
        }
    }

    /// Record that the hypervisor is gone, keeping the domain even when transient (a revert
    /// starts it again); returns whether it is transient.
    pub(crate) fn mark_stopped_keep(
        &self,
        dom: &Domain,
        reason: StateReason,
        detail: StoppedDetail,
    ) -> bool {
        self.backup_domain_stopped(dom);
        self.update(dom, |d| {
            d.status = Status::shut_off(reason);
            d.id = None;
            d.live = None;
            d.warning = None;
            d.taints.clear();
            let ev = Lifecycle::Stopped(detail);
            (
                !d.persistent,
                vec![Event::Lifecycle {
                    uuid: dom.uuid,
                    event: ev,
                }],
            )
        })
    }

    pub async fn shutdown(&self, dom: &Arc<Domain>, mode: PowerMode) -> Result<()> {
        let _job = dom.begin_job("shutdown").await?;
        Self::require(dom, Operation::Shutdown)?;
        if dom.driver.shutdown(&self.ctx(dom), mode).await? == Completion::Done {
            self.emit_shutdown(dom, ShutdownDetail::Finished);
            self.after_poweroff(dom).await?;
        }
        Ok(())
    }

    pub async fn reboot(&self, dom: &Arc<Domain>, mode: PowerMode) -> Result<()> {
        let _job = dom.begin_job("reboot").await?;
        let (def, _) = Self::require(dom, Operation::Reboot)?;
        // Done: the guest went through its reboot now. A guest that may not reboot
        // (on_reboot=destroy) is shut off instead, as QEMU's -no-reboot does.
        if dom.driver.reboot(&self.ctx(dom), mode).await? == Completion::Done {
            if matches!(def.on_reboot, Some(LifecycleAction::Destroy)) {
                dom.driver.destroy(&self.ctx(dom), false).await?;
                self.mark_stopped(dom, StateReason::Shutdown, StoppedDetail::Shutdown);
            } else {
                self.events().publish(Event::Rebooted { uuid: dom.uuid });
            }
        }
        Ok(())
    }

    pub async fn destroy(&self, dom: &Arc<Domain>, opts: DestroyOptions) -> Result<()> {
        let _job = dom.begin_job("destroy").await?;
        Self::require(dom, Operation::Destroy)?;
        dom.driver.destroy(&self.ctx(dom), opts.graceful).await?;
        self.mark_stopped(dom, StateReason::Destroyed, StoppedDetail::Destroyed);
        Ok(())
    }

    pub async fn reset(&self, dom: &Arc<Domain>) -> Result<()> {
        let _job = dom.begin_job("reset").await?;
        Self::require(dom, Operation::Reset)?;
        dom.driver.reset(&self.ctx(dom)).await?;
        Ok(())
    }

    /// Send the guest a non-maskable interrupt.
    pub async fn inject_nmi(&self, dom: &Arc<Domain>) -> Result<()> {
        let _job = dom.begin_job("inject NMI").await?;
        Self::require(dom, Operation::InjectNmi)?;
        dom.driver.inject_nmi(&self.ctx(dom)).await?;
        Ok(())
    }

    pub async fn suspend(&self, dom: &Arc<Domain>) -> Result<()> {
        let _job = dom.begin_job("suspend").await?;
        Self::require(dom, Operation::Suspend)?;
        dom.driver.suspend(&self.ctx(dom)).await?;
        self.mark_paused(dom, StateReason::User, SuspendedDetail::Paused);
        Ok(())
    }

    pub async fn resume(&self, dom: &Arc<Domain>) -> Result<()> {
        let _job = dom.begin_job("resume").await?;
        Self::require(dom, Operation::Resume)?;
        dom.driver.resume(&self.ctx(dom)).await?;
        self.mark_resumed(dom, StateReason::Unpaused, ResumedDetail::Unpaused);
        Ok(())
    }

    /// Record that the guest runs again; a no-op when already running.
    pub(crate) fn mark_resumed(&self, dom: &Domain, reason: StateReason, detail: ResumedDetail) {
        self.update(dom, |d| {
            if d.status.state == DomainState::Running {
                return ((), Vec::new());
            }
            d.status = Status::new(DomainState::Running, reason);
            let ev = Lifecycle::Resumed(detail);
            (
                (),
                vec![Event::Lifecycle {
                    uuid: dom.uuid,
                    event: ev,
                }],
            )
        });
    }

    fn emit_shutdown(&self, dom: &Domain, detail: ShutdownDetail) {
        self.update(dom, |d| {
            if d.status.is_active() {
                d.status = Status::new(DomainState::Shutdown, StateReason::User);
            }
            let ev = Lifecycle::Shutdown(detail);
            (
                (),
                vec![Event::Lifecycle {
                    uuid: dom.uuid,
                    event: ev,
                }],
            )
        });
    }

    /// The guest powered off: apply its `on_poweroff` action. The job is held.
    async fn after_poweroff(&self, dom: &Arc<Domain>) -> Result<()> {
        let def = lock(&dom.data).current_def().clone();
        let restart = matches!(
            def.on_poweroff,
            Some(
                LifecycleAction::Restart
                    | LifecycleAction::RenameRestart
                    | LifecycleAction::CoredumpRestart
            )
        );
        dom.driver.destroy(&self.ctx(dom), false).await?;
        self.mark_stopped(dom, StateReason::Shutdown, StoppedDetail::Shutdown);
        if restart && !dom.is_removed() {
            let def = lock(&dom.data).def.clone();
            self.boot(dom, def, false, StartedDetail::Booted, StateReason::Booted)
                .await?;
        }
        Ok(())
    }

    /// The guest asked to reboot and its hypervisor held it: apply `on_reboot` (destroy, or
    /// by default restart it in place). The job is held.
    async fn after_reboot(&self, dom: &Arc<Domain>) -> Result<()> {
        let def = lock(&dom.data).current_def().clone();
        if matches!(def.on_reboot, Some(LifecycleAction::Destroy)) {
            self.emit_shutdown(dom, ShutdownDetail::Guest);
            dom.driver.destroy(&self.ctx(dom), false).await?;
            self.mark_stopped(dom, StateReason::Shutdown, StoppedDetail::Shutdown);
        } else {
            dom.driver.reset(&self.ctx(dom)).await?;
        }
        Ok(())
    }

    /// The guest panicked: apply its `on_crash` action. The job is held.
    async fn after_crash(&self, dom: &Arc<Domain>) -> Result<()> {
        let def = lock(&dom.data).current_def().clone();
        match def.on_crash {
            Some(LifecycleAction::Preserve) => Ok(()),
            Some(
                LifecycleAction::Restart
                | LifecycleAction::RenameRestart
                | LifecycleAction::CoredumpRestart,
            ) => {
                dom.driver.destroy(&self.ctx(dom), false).await?;
                self.mark_stopped(dom, StateReason::Crashed, StoppedDetail::Crashed);
                if !dom.is_removed() {
                    let def = lock(&dom.data).def.clone();
                    self.boot(dom, def, false, StartedDetail::Booted, StateReason::Booted)
                        .await?;
                }
                Ok(())
            }
            _ => {
                dom.driver.destroy(&self.ctx(dom), false).await?;
                self.mark_stopped(dom, StateReason::Crashed, StoppedDetail::Crashed);
                Ok(())
            }
        }
    }

    /// Apply what a driver reports a guest did on its own.
    pub(crate) fn apply_driver_event(&self, uuid: Uuid, event: DriverEvent) {
        let Some(dom) = self.get(&uuid) else {
            return;
        };
        let state = lock(&dom.data).status.state;
        match event {
            DriverEvent::Paused(reason) if state == DomainState::Running => {
                let detail = match reason {
                    StateReason::IoError => SuspendedDetail::IoError,
                    StateReason::Watchdog => SuspendedDetail::Watchdog,
                    StateReason::FromSnapshot => SuspendedDetail::FromSnapshot,
                    _ => SuspendedDetail::Paused,
                };
                self.mark_paused(&dom, reason, detail);
            }
            DriverEvent::Resumed if state == DomainState::Paused => {
                self.mark_resumed(&dom, StateReason::Unpaused, ResumedDetail::Unpaused);
            }
            DriverEvent::Shutdown(detail)
                if state.is_active() && state != DomainState::Shutdown =>
            {
                self.emit_shutdown(&dom, detail);
                self.in_job(dom, "guest power-off", |core, dom| async move {
                    if lock(&dom.data).status.state == DomainState::Shutdown {
                        core.after_poweroff(&dom).await?;
                    }
                    Ok(())
                });
            }
            DriverEvent::Stopped(detail) if state.is_active() => {
                let reason = match detail {
                    StoppedDetail::Shutdown => StateReason::Shutdown,
                    StoppedDetail::Destroyed => StateReason::Destroyed,
                    StoppedDetail::Crashed => StateReason::Crashed,
                    StoppedDetail::Failed => StateReason::Failed,
                    StoppedDetail::FromSnapshot => StateReason::FromSnapshot,
                    StoppedDetail::Saved => StateReason::Saved,
                    StoppedDetail::Migrated => StateReason::Migrated,
                };
                self.mark_stopped(&dom, reason, detail);
            }
            DriverEvent::Rebooted => self.events().publish(Event::Rebooted { uuid }),
            DriverEvent::AgentLifecycle { connected } if state.is_active() => {
                self.events().publish(Event::AgentLifecycle {
                    uuid,
                    connected,
                    at_start: false,
                })
            }
            DriverEvent::Watchdog(action) => {
                self.events().publish(Event::Watchdog { uuid, action })
            }
            DriverEvent::PmSuspended(detail) if state.is_active() => self.update(&dom, |d| {
                d.status = Status::new(DomainState::PmSuspended, StateReason::Unknown);
                let event = Lifecycle::PmSuspended(detail);
                ((), vec![Event::Lifecycle { uuid, event }])
            }),
            DriverEvent::Wakeup if state == DomainState::PmSuspended => self.update(&dom, |d| {
                d.status = Status::new(DomainState::Running, StateReason::Wakeup);
                let event = Lifecycle::Started(StartedDetail::Wakeup);
                ((), vec![Event::Lifecycle { uuid, event }])
            }),
            DriverEvent::RebootRequested if state.is_active() => {
                self.in_job(dom, "guest reboot", |core, dom| async move {
                    if lock(&dom.data).status.is_active() {
                        core.after_reboot(&dom).await?;
                    }
                    Ok(())
                });
            }
            DriverEvent::Crashed(detail) if state.is_active() => {
                self.update(&dom, |d| {
                    d.status = Status::new(DomainState::Crashed, StateReason::Panicked);
                    (
                        (),
                        vec![Event::Lifecycle {
                            uuid,
                            event: Lifecycle::Crashed(detail),
                        }],
                    )
                });
                if detail == CrashedDetail::Panicked {
                    self.in_job(dom, "guest crash", |core, dom| async move {
                        if lock(&dom.data).status.state == DomainState::Crashed {
                            core.after_crash(&dom).await?;
                        }
                        Ok(())
                    });
                }
            }
            DriverEvent::Warning(w) => self.update(&dom, |d| {
                d.warning = w;
                ((), Vec::new())
            }),
            DriverEvent::JobProgress(p) => self.update(&dom, |d| {
                if !d.job.is_empty() {
                    d.job_progress = p;
                }
                ((), Vec::new())
            }),
            DriverEvent::RtcChange(offset) if state.is_active() => self.update(&dom, |d| {
                // libvirt keeps a variable clock's new offset as its live adjustment
                if let Some(live) = d.live.as_mut().filter(|l| {
                    l.clock
                        .as_ref()
                        .is_some_and(|c| c.offset == crate::model::ClockOffset::Variable)
                }) && let Some(c) = Arc::make_mut(live).clock.as_mut()
                {
                    c.adjustment = Some(offset);
                }
                ((), vec![Event::RtcChange { uuid, offset }])
            }),
            DriverEvent::BalloonChange(actual) if state.is_active() => self.update(&dom, |d| {
                if let Some(live) = d.live.as_mut() {
                    Arc::make_mut(live).current_memory_kib = Some(actual);
                }
                ((), vec![Event::BalloonChange { uuid, actual }])
            }),
            DriverEvent::TrayChange { alias, open } if state.is_active() => {
                self.update(&dom, |d| {
                    if let Some(live) = d.live.as_mut() {
                        set_tray(Arc::make_mut(live), &alias, open);
                    }
                    ((), vec![Event::TrayChange { uuid, alias, open }])
                })
            }
            DriverEvent::Graphics(g) => self.events().publish(Event::Graphics {
                uuid,
                graphics: Arc::new(*g),
            }),
            DriverEvent::Monitor(event) => self.events().publish(Event::Monitor { uuid, event }),
            DriverEvent::BlockJob {
                target,
                kind,
                status,
                disk,
            } if state.is_active() => self.block_job_event(&dom, target, kind, status, disk),
            DriverEvent::BlockThreshold {
                dev,
                path,
                threshold,
                excess,
            } => self.events().publish(Event::BlockThreshold {
                uuid,
                dev,
                path,
                threshold,
                excess,
            }),
            DriverEvent::IoError {
                path,
                alias,
                action,
                reason,
            } => self.events().publish(Event::IoError {
                uuid,
                path,
                alias,
                action,
                reason,
            }),
            DriverEvent::BackupEnded {
                end,
                progress,
                error,
            } => self.backup_ended(&dom, end, progress, error),
            DriverEvent::MigrationIteration(n) => {
                self.events().publish(Event::MigrationIteration {
                    uuid,
                    iteration: i32::try_from(n).unwrap_or(i32::MAX),
                })
            }
            other => tracing::debug!("ignored {other:?} for domain {uuid} in state {state}"),
        }
    }

    /// Run follow-up work for a guest's own event under the domain's job lock.
    fn in_job<F, Fut>(&self, dom: Arc<Domain>, what: &'static str, f: F)
    where
        F: FnOnce(Core, Arc<Domain>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<()>> + Send,
    {
        let core = self.clone();
        tokio::spawn(async move {
            let name = dom.name();
            let result = match dom.begin_job(what).await {
                Ok(_job) => f(core, dom.clone()).await,
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                tracing::error!("{what} of domain '{name}': {e}");
            }
        });
    }

    /// Statistics: the state always, the driver's figures while active.
    pub async fn stats(&self, dom: &Arc<Domain>) -> Result<Stats> {
        let (status, live, active) = {
            let d = lock(&dom.data);
            if d.removed {
                return Err(dom.gone());
            }
            (d.status, d.current_def().clone(), d.status.is_active())
        };
        let mut stats = vec![
            (
                "state.state".to_owned(),
                StatValue::I64(i64::from(status.state.code())),
            ),
            (
                "state.reason".to_owned(),
                StatValue::I64(i64::from(status.reason.code(status.state))),
            ),
        ];
        if active {
            stats.extend(dom.driver.stats(&self.ctx(dom), &live).await?);
        }
        Ok(stats)
    }

    pub async fn fs_freeze(&self, dom: &Arc<Domain>, mountpoints: &[String]) -> Result<u32> {
        let _job = dom.begin_job("fs-freeze").await?;
        Self::require(dom, Operation::FsFreeze)?;
        Ok(dom.driver.fs_freeze(&self.ctx(dom), mountpoints).await?)
    }

    pub async fn fs_thaw(&self, dom: &Arc<Domain>, mountpoints: &[String]) -> Result<u32> {
        let _job = dom.begin_job("fs-thaw").await?;
        Self::require(dom, Operation::FsThaw)?;
        Ok(dom.driver.fs_thaw(&self.ctx(dom), mountpoints).await?)
    }
}

/// Record a removable drive's tray as its `TRAY_CHANGE` event tells (libvirt keeps it in the
/// live definition, which shows an open tray).
pub(crate) fn set_tray(live: &mut crate::model::DomainDef, alias: &str, open: bool) {
    use crate::model::devices::Tray;
    if let Some(d) = live
        .devices
        .disks
        .iter_mut()
        .find(|d| d.info.alias.as_deref() == Some(alias))
    {
        d.tray = Some(if open { Tray::Open } else { Tray::Closed });
    }
}

/// The agent lifecycle event libvirt raises as a domain with a guest agent starts (before
/// its started event): the channel's state, reason "domain started".
pub(crate) fn agent_at_start(uuid: Uuid, connected: Option<bool>) -> Option<Event> {
    connected.map(|connected| Event::AgentLifecycle {
        uuid,
        connected,
        at_start: true,
    })
}
