//! One running QEMU as the driver holds it, and the task that turns its QMP events and its
//! exit into [`DriverEvent`]s, in order.
//!
//! Events the driver causes itself (`STOP` after our `stop`, `RESUME` after our `cont`) are
//! not reported: the core records those transitions when the operation returns. QMP sends an
//! event before the reply of the command that caused it, so after each such command the
//! driver waits until the event task has handled every event read so far (a barrier) and
//! then drops its suppression; nothing stale is left to swallow a later real event.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::Value;
use tokio::sync::watch;
use uuid::Uuid;

use super::{
    qga::Agent,
    seam::{Monitor, QemuProcess},
    transport::{Error, Event, Events},
};
use crate::{
    drivers::{DomainCtx, DriverError, DriverEvent},
    model::{
        DomainDef,
        guest_events::MonitorEvent,
        state::{
            CrashedDetail, PmSuspendedDetail, ShutdownDetail, StateReason, StoppedDetail,
            WatchdogEventAction,
        },
    },
    util::lock,
};

/// How long an operation waits for the events its command caused to be handled.
const BARRIER_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
struct Flags {
    /// The driver is stopping the process: its events and exit are not news.
    stopping: bool,
    /// A reboot was asked as power-off-then-reset: the next SHUTDOWN is a reboot.
    fake_reboot: bool,
    /// The guest powered off and QEMU holds it stopped (`-no-shutdown`).
    in_shutdown: bool,
    /// Events our own commands cause, not to be reported.
    suppress: Vec<&'static str>,
    /// Why the next STOP happens, from the event that announced it.
    pause_reason: Option<StateReason>,
    /// Jobs running that stop and continue the guest themselves (snapshot-save, -load):
    /// their STOP and RESUME are not news; the job's caller reconciles the state after.
    quiet_jobs: u32,
}

/// A running QEMU.
pub struct Vm {
    pub uuid: Uuid,
    pub name: String,
    pub id: u32,
    pub qmp: Box<dyn Monitor>,
    pub agent: Option<Agent>,
    pub process: Box<dyn QemuProcess>,
    /// The domain's runtime directory.
    pub dir: PathBuf,
    pub log: PathBuf,
    pub emulator: PathBuf,
    pub monitor: PathBuf,
    pub live: Mutex<DomainDef>,
    pub timeout: Duration,
    /// Where a watchdog with `action='dump'` writes the guest's memory.
    pub dump_dir: PathBuf,
    /// Who may thaw the guest's filesystems, and whether a thaw of ours is unconfirmed.
    pub freeze: Arc<crate::drivers::quiesce::FreezeOwner>,
    /// QEMU holds a descriptor of our agent connection (QMP `getfd`), so that a thaw queued
    /// on it outlives this daemon.
    pub agent_held: std::sync::atomic::AtomicBool,
    /// Its block jobs and write thresholds.
    pub block: super::block::BlockState,
    /// Held from taking a status record to its write: two writers with their own snapshots
    /// would otherwise share the file's temporary and could land the older one last.
    pub status_write: tokio::sync::Mutex<()>,
    /// The perf event counters open on it (`<perf>`).
    pub perf: super::perf::Counters,
    /// Its backup job.
    pub backup: super::backup::BackupState,
    flags: Mutex<Flags>,
    /// Counts `JOB_STATUS_CHANGE` events, so that a job's caller wakes when its job moves.
    job_events: watch::Sender<u64>,
    handled: watch::Sender<u64>,
    resets: watch::Sender<u64>,
    /// A `variable` clock's adjustment as the guest started (libvirt's `adjustment0`): QEMU's
    /// `RTC_CHANGE` offsets are from it.
    rtc_base: i64,
    /// The ids of the devices QEMU reported removed (`DEVICE_DELETED`), for hot-unplug.
    deleted: watch::Sender<Vec<String>>,
    gone: watch::Sender<bool>,
}

/// A QMP or agent error as the core sees it; `what` names the domain and the step.
pub fn driver_error(what: &str, e: Error) -> DriverError {
    match e {
        Error::Timeout { command, after } => {
            DriverError::Timeout(format!("{what}: no answer to {command} within {after:?}"))
        }
        Error::Qemu { class, desc } if class == "CommandNotFound" => {
            DriverError::NotSupported(format!("{what}: {desc}"))
        }
        Error::Qemu { desc, .. } => DriverError::Failed(format!("{what}: {desc}")),
        e => DriverError::Failed(format!("{what}: {e}")),
    }
}

pub struct VmParts {
    pub uuid: Uuid,
    pub name: String,
    pub id: u32,
    pub qmp: Box<dyn Monitor>,
    pub agent: Option<PathBuf>,
    pub process: Box<dyn QemuProcess>,
    pub dir: PathBuf,
    pub log: PathBuf,
    pub emulator: PathBuf,
    pub monitor: PathBuf,
    pub live: DomainDef,
    pub timeout: Duration,
    pub in_shutdown: bool,
    /// Where a watchdog with `action='dump'` writes the guest's memory.
    pub dump_dir: PathBuf,
}

impl Vm {
    pub fn new(p: VmParts) -> Arc<Self> {
        Arc::new(Self {
            uuid: p.uuid,
            name: p.name,
            id: p.id,
            qmp: p.qmp,
            agent: p.agent.map(Agent::new),
            process: p.process,
            dir: p.dir,
            log: p.log,
            emulator: p.emulator,
            monitor: p.monitor,
            rtc_base: p
                .live
                .clock
                .as_ref()
                .and_then(|c| c.adjustment)
                .unwrap_or(0),
            live: Mutex::new(p.live),
            timeout: p.timeout,
            dump_dir: p.dump_dir,
            freeze: Arc::default(),
            agent_held: Default::default(),
            block: Default::default(),
            status_write: tokio::sync::Mutex::new(()),
            perf: Default::default(),
            backup: Default::default(),
            job_events: watch::channel(0).0,
            flags: Mutex::new(Flags {
                in_shutdown: p.in_shutdown,
                ..Default::default()
            }),
            handled: watch::channel(0).0,
            resets: watch::channel(0).0,
            deleted: watch::channel(Vec::new()).0,
            gone: watch::channel(false).0,
        })
    }

    pub fn live(&self) -> DomainDef {
        lock(&self.live).clone()
    }

    /// Run a QMP command.
    pub async fn command(&self, cmd: &str, args: Option<Value>) -> Result<Value, DriverError> {
        self.qmp
            .execute(cmd, args, self.timeout)
            .await
            .map_err(|e| driver_error(&format!("domain '{}': {cmd}", self.name), e))
    }

    /// Run a command whose events (`quiet`) the operation reports itself.
    pub async fn command_quiet(
        &self,
        cmd: &str,
        args: Option<Value>,
        quiet: &[&'static str],
    ) -> Result<Value, DriverError> {
        lock(&self.flags).suppress.extend_from_slice(quiet);
        let r = self.command(cmd, args).await;
        self.barrier().await;
        let mut f = lock(&self.flags);
        for q in quiet {
            if let Some(pos) = f.suppress.iter().position(|s| s == q) {
                f.suppress.remove(pos);
            }
        }
        r
    }

    /// Counts of `JOB_STATUS_CHANGE` events; changes when any job moves.
    pub fn job_events(&self) -> watch::Receiver<u64> {
        self.job_events.subscribe()
    }

    /// While on (counted), STOP and RESUME events are a job's own and not reported.
    pub fn quiet_run_state(&self, on: bool) {
        let mut f = lock(&self.flags);
        if on {
            f.quiet_jobs += 1;
        } else {
            f.quiet_jobs = f.quiet_jobs.saturating_sub(1);
        }
    }

    /// Wait until every event read so far has been handled.
    pub async fn barrier(&self) {
        let n = self.qmp.events_received();
        let mut rx = self.handled.subscribe();
        if tokio::time::timeout(BARRIER_WAIT, rx.wait_for(|h| *h >= n))
            .await
            .is_err()
        {
            tracing::warn!(
                "domain '{}': QMP events not handled after {BARRIER_WAIT:?}",
                self.name
            );
        }
    }

    pub fn set_stopping(&self, on: bool) {
        lock(&self.flags).stopping = on;
    }

    pub fn set_fake_reboot(&self, on: bool) {
        lock(&self.flags).fake_reboot = on;
    }

    /// Whether QEMU holds the powered-off guest stopped.
    pub fn in_shutdown(&self) -> bool {
        lock(&self.flags).in_shutdown
    }

    pub fn resets(&self) -> watch::Receiver<u64> {
        self.resets.subscribe()
    }

    /// Set once the process is gone and cleaned up after.
    /// The ids of devices QEMU has reported removed so far.
    pub fn deleted(&self) -> watch::Receiver<Vec<String>> {
        self.deleted.subscribe()
    }

    pub fn gone(&self) -> watch::Receiver<bool> {
        self.gone.subscribe()
    }

    fn handle(&self, ctx: &DomainCtx, ev: &Event) {
        let name = ev.name.as_str();
        // every event goes to monitor-event callbacks first, as libvirt hands them on
        ctx.report(DriverEvent::Monitor(Arc::new(MonitorEvent {
            name: ev.name.clone(),
            seconds: if ev.timestamp == Default::default() {
                -1
            } else {
                ev.timestamp.seconds
            },
            micros: u32::try_from(ev.timestamp.microseconds).unwrap_or(0),
            details: ev.details.clone(),
        })));
        if name == "VSERPORT_CHANGE" {
            let changed = super::live::port_changed(&mut lock(&self.live), &ev.data);
            if let Some((port, connected)) = changed
                && port == super::cmdline::AGENT_CHANNEL
            {
                ctx.report(DriverEvent::AgentLifecycle { connected });
            }
            return;
        }
        // an event to report before the one the match gives
        let mut first = None;
        let report = {
            let mut f = lock(&self.flags);
            if f.stopping {
                return;
            }
            if let Some(pos) = f.suppress.iter().position(|s| *s == name) {
                f.suppress.remove(pos);
                return;
            }
            let data = &ev.data;
            let s = |k: &str| data.get(k).and_then(Value::as_str).unwrap_or_default();
            match name {
                "STOP" | "RESUME" if f.quiet_jobs > 0 => None,
                "JOB_STATUS_CHANGE" => {
                    self.job_events.send_modify(|n| *n += 1);
                    None
                }
                "DEVICE_DELETED" => {
                    if let Some(id) = data.get("device").and_then(Value::as_str) {
                        self.deleted.send_modify(|v| v.push(id.to_owned()));
                    }
                    None
                }
                "STOP" if f.in_shutdown => None,
                "STOP" => Some(DriverEvent::Paused(
                    f.pause_reason.take().unwrap_or(StateReason::User),
                )),
                "RESUME" => Some(DriverEvent::Resumed),
                "SHUTDOWN" => {
                    f.in_shutdown = true;
                    let reboot = std::mem::take(&mut f.fake_reboot) || s("reason") == "guest-reset";
                    let guest = data.get("guest").and_then(Value::as_bool).unwrap_or(false);
                    Some(if reboot {
                        DriverEvent::RebootRequested
                    } else if guest {
                        DriverEvent::Shutdown(ShutdownDetail::Guest)
                    } else {
                        DriverEvent::Shutdown(ShutdownDetail::Host)
                    })
                }
                "RESET" => {
                    f.in_shutdown = false;
                    self.resets.send_modify(|n| *n += 1);
                    Some(DriverEvent::Rebooted)
                }
                "GUEST_PANICKED" => Some(DriverEvent::Crashed(CrashedDetail::Panicked)),
                "RTC_CHANGE" => data.get("offset").and_then(Value::as_i64).map(|offset| {
                    DriverEvent::RtcChange(super::guest_events::rtc_offset(
                        &mut lock(&self.live),
                        self.rtc_base,
                        offset,
                    ))
                }),
                "BALLOON_CHANGE" => data.get("actual").and_then(Value::as_u64).map(|b| {
                    let kib = b.div_ceil(1024);
                    lock(&self.live).current_memory_kib = Some(kib);
                    DriverEvent::BalloonChange(kib)
                }),
                "DEVICE_TRAY_MOVED" => super::guest_events::tray_moved(&mut lock(&self.live), data),
                "VNC_CONNECTED" | "VNC_INITIALIZED" | "VNC_DISCONNECTED" | "SPICE_CONNECTED"
                | "SPICE_INITIALIZED" | "SPICE_DISCONNECTED" => {
                    super::guest_events::graphics(name, data)
                        .map(|g| DriverEvent::Graphics(Box::new(g)))
                }
                "SUSPEND" => Some(DriverEvent::PmSuspended(PmSuspendedDetail::Memory)),
                "SUSPEND_DISK" => Some(DriverEvent::PmSuspended(PmSuspendedDetail::Disk)),
                "WAKEUP" => Some(DriverEvent::Wakeup),
                "BLOCK_IO_ERROR" => {
                    if s("action") == "stop" {
                        f.pause_reason = Some(StateReason::IoError);
                    }
                    None
                }
                "WATCHDOG" => {
                    let action = WatchdogEventAction::from_qemu(s("action"));
                    if action == Some(WatchdogEventAction::Pause) {
                        // libvirt reports the pause first, then the watchdog; the STOP that
                        // follows finds the guest paused already and is no news
                        first = Some(DriverEvent::Paused(StateReason::Watchdog));
                    }
                    action.map(DriverEvent::Watchdog)
                }
                _ => {
                    tracing::debug!("domain '{}': QMP event {name} {}", self.name, ev.data);
                    None
                }
            }
        };
        for r in first.into_iter().chain(report) {
            tracing::debug!("domain '{}': {name} -> {r:?}", self.name);
            ctx.report(r);
        }
    }
}

/// Watch `vm` until its process is gone: report its events in order, then run `cleanup`,
/// then report the exit unless the driver caused it.
pub fn watch(
    vm: Arc<Vm>,
    mut events: Events,
    ctx: DomainCtx,
    cleanup: impl FnOnce(&Vm) + Send + 'static,
) {
    tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            vm.handle(&ctx, &ev);
            super::block::event(&vm, &ctx, &ev);
            super::backup::event(&vm, &ctx, &ev);
            if ev.name == "WATCHDOG"
                && ev.data.get("action").and_then(Value::as_str) == Some("pause")
                && super::watchdog::wants_dump(&vm)
            {
                tokio::spawn(super::watchdog::dump_and_resume(
                    vm.clone(),
                    vm.dump_dir.clone(),
                ));
            }
            vm.handled.send_modify(|h| *h += 1);
        }
        // the monitor closes when QEMU exits; make sure it has
        vm.handled.send_replace(u64::MAX);
        vm.process.wait().await;
        let (stopping, in_shutdown) = {
            let f = lock(&vm.flags);
            (f.stopping, f.in_shutdown)
        };
        if !stopping {
            super::process::Log::note(
                &vm.log,
                if in_shutdown {
                    "QEMU exited after the guest powered off"
                } else {
                    "QEMU exited unexpectedly"
                },
            );
        }
        cleanup(&vm);
        vm.gone.send_replace(true);
        if !stopping {
            ctx.report(DriverEvent::Stopped(if in_shutdown {
                StoppedDetail::Shutdown
            } else {
                StoppedDetail::Crashed
            }));
        }
    });
}
