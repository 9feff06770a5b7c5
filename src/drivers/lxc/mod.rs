//! The LXC driver: `<domain type='lxc'>` as containers (libvirt's `lxc:///` semantics).
//!
//! Modules, one job each: [`plan`] (definition → what a start does, refusals by element),
//! [`controller`] (the per-container supervisor process, `virtbusd --lxc-controller`),
//! [`container`] (the container's side: mounts, pivot_root, /dev, console, exec),
//! [`cgroup`] (limits, freezer, kill, statistics), [`status`] (what survives a daemon
//! restart), [`power`] (shutdown and reboot requests as libvirt makes them), [`restart`]
//! (a new boot of the init in place, keeping the console) and [`console`] (OpenConsole).
//!
//! The daemon never is a container's parent: each container has a controller of its own
//! that outlives the daemon. The driver watches controllers through pidfds and, after a
//! restart, adopts them from their recorded pid and start time.

pub mod blkio;
pub mod cgroup;
mod console;
pub mod container;
pub mod controller;
pub mod fs;
mod fsmount;
pub mod loopdev;
pub mod passfd;
pub mod plan;
mod power;
pub mod restart;
pub mod status;
pub mod veth;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use tokio::io::AsyncBufReadExt;
use uuid::Uuid;

use super::{
    Completion, DeleteOutcome, DomainCapsInfo, DomainCtx, Driver, DriverCaps, DriverError,
    DriverEvent, DriverResult, ImageChains, MemoryStat, Recovered, RevertOutcome, RevertTarget,
    RuntimeGuest, SnapshotOutcome, SnapshotRequest, Started, StatValue, Stats,
};
use crate::{
    drivers::qemu::process::{Log, Process},
    model::{
        DomainDef, DomainType, SnapshotDef,
        options::PowerMode,
        state::{DomainState, StateReason, Status, StoppedDetail},
    },
    util::lock,
};

/// The hidden option that turns `virtbusd` into a container's controller.
pub const CONTROLLER_OPTION: &str = "--lxc-controller";

/// How long a start may take before the controller is given up on.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// One running container.
struct Container {
    uuid: Uuid,
    name: String,
    controller: Process,
    /// The init's current boot (a reboot or reset starts it anew under the same controller).
    boot: Mutex<restart::Boot>,
    dir: PathBuf,
    log: PathBuf,
    cgroups: cgroup::Cgroups,
    /// Set by destroy: the controller's exit is then no news.
    stopping: AtomicBool,
    gone: tokio::sync::watch::Sender<bool>,
}

impl Container {
    fn init_pid(&self) -> i32 {
        lock(&self.boot).pid
    }
}

/// The LXC driver.
pub struct LxcDriver {
    /// `<runtime>/lxc`: per-container directories and `status/`.
    runtime: PathBuf,
    log_dir: PathBuf,
    /// The program run as `PROGRAM --lxc-controller PLAN`: this daemon's own binary.
    program: PathBuf,
    containers: Arc<Mutex<HashMap<Uuid, Arc<Container>>>>,
}

fn failed(e: impl std::fmt::Display) -> DriverError {
    DriverError::Failed(e.to_string())
}

fn plan_error(e: plan::PlanError) -> DriverError {
    match e {
        plan::PlanError::Invalid(m) => DriverError::InvalidArgument(m),
        plan::PlanError::NotSupported(m) => DriverError::NotSupported(m),
    }
}

impl LxcDriver {
    /// The driver, or `None` when this host cannot run containers (not root: namespaces,
    /// cgroups and device binds need it, as libvirt's LXC driver does).
    pub fn new(runtime_dir: &Path, program: PathBuf) -> Option<Self> {
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            tracing::info!("LXC driver not loaded: it needs root");
            return None;
        }
        if !Path::new("/proc/self/ns/cgroup").exists() || !Path::new("/proc/self/ns/pid").exists() {
            tracing::info!("LXC driver not loaded: the kernel lacks PID or cgroup namespaces");
            return None;
        }
        let runtime = runtime_dir.join("lxc");
        let log_dir = runtime.join("log");
        for d in [&runtime, &log_dir] {
            if let Err(e) = mkdir_private(d) {
                tracing::error!("LXC driver disabled: cannot create {}: {e}", d.display());
                return None;
            }
        }
        Some(Self {
            runtime,
            log_dir,
            program,
            containers: Arc::default(),
        })
    }

    fn container(&self, ctx: &DomainCtx) -> DriverResult<Arc<Container>> {
        lock(&self.containers)
            .get(&ctx.uuid)
            .filter(|c| !*c.gone.borrow())
            .cloned()
            .ok_or_else(|| {
                DriverError::InvalidState(format!("domain '{}' is not running", ctx.name))
            })
    }

    fn domain_dir(&self, uuid: &Uuid) -> PathBuf {
        self.runtime.join(uuid.simple().to_string())
    }

    /// Start a controller for `def` and wait for its word.
    async fn launch(
        &self,
        ctx: &DomainCtx,
        def: &DomainDef,
        id: u32,
        files: &[std::os::fd::OwnedFd],
    ) -> DriverResult<Started> {
        if self.container(ctx).is_ok() {
            return Err(DriverError::InvalidState(format!(
                "domain '{}' is already running",
                ctx.name
            )));
        }
        let dir = self.domain_dir(&def.uuid);
        let log_path = self.log_dir.join(format!("{}.log", def.name));
        let mut plan = plan::build(def, id, &dir, log_path.clone()).map_err(plan_error)?;
        plan.pass_fds = files.len();
        veth::check(&plan.veths).await.map_err(|(bad_input, m)| {
            let m = format!("domain '{}': {m}", def.name);
            if bad_input {
                DriverError::InvalidArgument(m)
            } else {
                DriverError::Failed(m)
            }
        })?;
        let _ = std::fs::remove_dir_all(&dir);
        mkdir_private(&dir).map_err(|e| failed(format!("{}: {e}", dir.display())))?;
        let plan_file = dir.join("plan.json");
        let cleanup_dir = |e: DriverError| {
            let _ = std::fs::remove_dir_all(&dir);
            e
        };
        let data = serde_json::to_vec_pretty(&plan).map_err(failed)?;
        crate::util::fs::write_atomic(&plan_file, &data, 0o600)
            .map_err(|e| cleanup_dir(failed(format!("{}: {e}", plan_file.display()))))?;
        let args = vec![
            CONTROLLER_OPTION.to_owned(),
            plan_file.display().to_string(),
        ];
        let log = Log::open(&log_path, &self.program, &args).map_err(|e| cleanup_dir(failed(e)))?;
        let err = log.file.try_clone().map_err(|e| cleanup_dir(failed(e)))?;
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.args(&args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(err)
            .kill_on_drop(false);
        passfd::hand_to(&mut cmd, files);
        let mut child = cmd.spawn().map_err(|e| {
            cleanup_dir(failed(format!(
                "cannot start the container controller {}: {e}",
                self.program.display()
            )))
        })?;
        let cpid = child.id().map(|p| p as i32).unwrap_or(0);
        let cstart = crate::drivers::qemu::process::start_time(cpid).unwrap_or(0);
        let answer = match child.stdout.take() {
            Some(out) => {
                let mut line = String::new();
                let mut r = tokio::io::BufReader::new(out);
                match tokio::time::timeout(START_TIMEOUT, r.read_line(&mut line)).await {
                    Ok(Ok(_)) => line.trim_end().to_owned(),
                    Ok(Err(e)) => format!("failed cannot read the controller's answer: {e}"),
                    Err(_) => {
                        let _ = child.start_kill();
                        format!("failed the controller did not answer within {START_TIMEOUT:?}")
                    }
                }
            }
            None => "failed no pipe to the controller".into(),
        };
        // the controller's exit is watched through its pidfd; tokio reaps it
        tokio::spawn(async move {
            let _ = child.wait().await;
        });
        if answer != "ok" {
            let (kind, msg) = answer.split_once(' ').unwrap_or(("failed", &answer));
            let msg = if msg.is_empty() {
                "the controller exited without a word".to_owned()
            } else {
                msg.to_owned()
            };
            Log::note(&log_path, &format!("start failed: {msg}"));
            let msg = format!("domain '{}': {msg} (log: {})", def.name, log_path.display());
            return Err(cleanup_dir(match kind {
                "invalid" => DriverError::InvalidArgument(msg),
                _ => DriverError::Failed(msg),
            }));
        }
        let state = controller::State::load(&plan.state).ok_or_else(|| {
            cleanup_dir(failed(format!(
                "domain '{}': the controller left no record",
                def.name
            )))
        })?;
        let proc = Process::adopt(cpid, cstart)
            .map_err(|e| cleanup_dir(failed(format!("domain '{}': {e}", def.name))))?;
        let live = live_def(def, &state, &plan);
        let c = Arc::new(Container {
            uuid: def.uuid,
            name: def.name.clone(),
            controller: proc,
            boot: Mutex::new(restart::Boot::from(&state)),
            dir: dir.clone(),
            log: log_path,
            cgroups: plan.cgroups.clone(),
            stopping: AtomicBool::new(false),
            gone: tokio::sync::watch::channel(false).0,
        });
        let record = status::Status {
            uuid: def.uuid,
            id,
            controller_pid: cpid,
            controller_start: cstart,
            dir: dir.clone(),
            log: c.log.clone(),
            cgroups: plan.cgroups,
            live: live.clone(),
        };
        if let Err(e) = record.save(&self.runtime) {
            // without a record a restarted daemon could not find it: do not run it
            c.cgroups.kill_all();
            let _ = c.controller.wait_for(Duration::from_secs(10)).await;
            return Err(cleanup_dir(failed(e)));
        }
        lock(&self.containers).insert(def.uuid, c.clone());
        self.watch(c, ctx.clone());
        Ok(Started {
            live: Some(live),
            agent: None,
        })
    }

    /// Report a reboot of the container's init (its controller then waits for a reset or a
    /// destroy), and its end when its controller exits, and then forget it.
    fn watch(&self, c: Arc<Container>, ctx: DomainCtx) {
        let containers = self.containers.clone();
        let runtime = self.runtime.clone();
        tokio::spawn(async move {
            loop {
                let boot = *lock(&c.boot);
                let init = Process::adopt(boot.pid, boot.start).ok();
                tokio::select! {
                    () = c.controller.wait() => break,
                    () = async {
                        if let Some(p) = &init {
                            p.wait().await;
                        }
                    } => {}
                }
                match restart::after_init(&c.dir, &c.controller, boot.number).await {
                    restart::AfterInit::Booted(b) => *lock(&c.boot) = b,
                    restart::AfterInit::Ending => {
                        c.controller.wait().await;
                        break;
                    }
                    restart::AfterInit::RebootWait => {
                        if !c.stopping.load(Ordering::SeqCst) {
                            Log::note(&c.log, "container init rebooted");
                            ctx.report(DriverEvent::RebootRequested);
                        }
                        // the core resets it (a new boot) or destroys it (`<on_reboot>`)
                        let forever = Duration::from_secs(u64::MAX / 4);
                        let next =
                            restart::next_boot(&c.dir, &c.controller, boot.number, forever).await;
                        match next {
                            Some(b) => *lock(&c.boot) = b,
                            None => {
                                c.controller.wait().await;
                                break;
                            }
                        }
                    }
                }
            }
            let state = controller::State::load(&c.dir.join("controller.json"));
            let stopping = c.stopping.load(Ordering::SeqCst);
            {
                let mut map = lock(&containers);
                if map.get(&c.uuid).is_some_and(|v| Arc::ptr_eq(v, &c)) {
                    map.remove(&c.uuid);
                }
            }
            status::Status::remove(&runtime, &c.uuid);
            let _ = std::fs::remove_dir_all(&c.dir);
            // a controller killed outright leaves its cgroups behind
            c.cgroups.kill_all();
            c.cgroups.remove();
            c.gone.send_replace(true);
            if stopping {
                return;
            }
            let exit = state.and_then(|s| s.exit);
            Log::note(
                &c.log,
                &format!(
                    "container ended: {}",
                    exit.as_deref().unwrap_or("the controller vanished")
                ),
            );
            ctx.report(match exit.as_deref() {
                // libvirt: any end of the init is a shutdown
                Some(_) => DriverEvent::Stopped(StoppedDetail::Shutdown),
                None => DriverEvent::Stopped(StoppedDetail::Failed),
            });
        });
    }

    /// Kill every process of the container and wait for its controller to finish.
    async fn kill(&self, c: &Container) -> DriverResult<()> {
        c.stopping.store(true, Ordering::SeqCst);
        c.cgroups.kill_all();
        // SAFETY: the init is checked through the controller, which outlives it.
        let _ = c.controller.signal(libc::SIGTERM);
        if !c.controller.wait_for(Duration::from_secs(15)).await {
            c.stopping.store(false, Ordering::SeqCst);
            return Err(DriverError::Timeout(format!(
                "the controller of domain '{}' did not exit within 15s",
                c.name
            )));
        }
        let mut g = c.gone.subscribe();
        let _ = tokio::time::timeout(Duration::from_secs(5), g.wait_for(|g| *g)).await;
        Log::note(&c.log, "stopped by virtbus");
        Ok(())
    }
}

/// The live definition: the console's host pty, the interfaces' names, and the cgroup
/// partition.
fn live_def(def: &DomainDef, state: &controller::State, plan: &plan::Plan) -> DomainDef {
    let mut live = def.clone();
    for (n, v) in live.devices.interfaces.iter_mut().zip(&plan.veths) {
        n.target_dev = Some(v.host.clone());
        n.guest_dev = Some(v.guest.clone());
        n.guest_actual = Some(v.peer.clone());
    }
    if let Some(c) = live.devices.consoles.first_mut() {
        c.source_path = Some(state.pty.clone());
        c.tty = Some(state.pty.clone());
        c.info.alias.get_or_insert_with(|| "console0".into());
    }
    if live.resource_partition.is_none() {
        live.resource_partition = Some(plan::DEFAULT_PARTITION.to_owned());
    }
    live
}

fn mkdir_private(d: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(d)
}

fn no_snapshots(ctx: &DomainCtx) -> DriverError {
    DriverError::Unimplemented(format!(
        "the LXC driver has no snapshots (domain '{}')",
        ctx.name
    ))
}

#[async_trait]
impl Driver for LxcDriver {
    fn name(&self) -> &'static str {
        "lxc"
    }

    fn capabilities(&self) -> DriverCaps {
        DriverCaps {
            name: "lxc",
            domain_types: vec![DomainType::Lxc],
            details_xml: String::new(),
            snapshot_internal: false,
            snapshot_external: false,
            quiesce: false,
        }
    }

    /// The kernel's version, as libvirt's LXC driver reports it.
    fn hypervisor_version(&self) -> u64 {
        let r = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let mut n = r
            .trim()
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|p| p.parse::<u64>().ok());
        let (a, b, c) = (
            n.next().unwrap_or(0),
            n.next().unwrap_or(0),
            n.next().unwrap_or(0),
        );
        a * 1_000_000 + b * 1_000 + c
    }

    fn domain_caps(
        &self,
        domain_type: DomainType,
        arch: &str,
        _machine: Option<&str>,
    ) -> Option<DomainCapsInfo> {
        (domain_type == DomainType::Lxc && arch == std::env::consts::ARCH).then(|| DomainCapsInfo {
            max_vcpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            ..DomainCapsInfo::default()
        })
    }

    /// libvirt's generic defaults, and its LXC ones: the host's architecture, and a
    /// console's target is `lxc`.
    async fn post_parse(&self, def: &mut DomainDef) -> DriverResult<()> {
        crate::model::defaults::before_driver(def);
        if def.os.arch.is_none() {
            def.os.arch = Some(std::env::consts::ARCH.into());
        }
        for c in &mut def.devices.consoles {
            if c.target_type.is_none() {
                c.target_type = Some("lxc".into());
            }
        }
        crate::model::defaults::after_driver(def)
            .map_err(|e| DriverError::InvalidArgument(e.to_string()))
    }

    fn check(&self, def: &DomainDef) -> DriverResult<()> {
        plan::check(def).map_err(plan_error)
    }

    fn leader_pid(&self, uuid: &Uuid) -> Option<u32> {
        let c = lock(&self.containers).get(uuid)?.clone();
        u32::try_from(c.init_pid()).ok()
    }

    async fn start(
        &self,
        ctx: &DomainCtx,
        def: &DomainDef,
        paused: bool,
        id: u32,
    ) -> DriverResult<Started> {
        self.start_with_files(ctx, def, paused, id, &[]).await
    }

    async fn start_with_files(
        &self,
        ctx: &DomainCtx,
        def: &DomainDef,
        paused: bool,
        id: u32,
        files: &[std::os::fd::OwnedFd],
    ) -> DriverResult<Started> {
        let started = self.launch(ctx, def, id, files).await?;
        if paused {
            let c = self.container(ctx)?;
            if let Err(e) = c.cgroups.freeze(true) {
                let _ = self.kill(&c).await;
                return Err(failed(format!("domain '{}': {e}", ctx.name)));
            }
        }
        Ok(started)
    }

    async fn shutdown(&self, ctx: &DomainCtx, mode: PowerMode) -> DriverResult<Completion> {
        let c = self.container(ctx)?;
        power::request(&c.name, c.init_pid(), mode, power::Action::PowerOff)?;
        Ok(Completion::Requested)
    }

    async fn reboot(&self, ctx: &DomainCtx, mode: PowerMode) -> DriverResult<Completion> {
        let c = self.container(ctx)?;
        power::request(&c.name, c.init_pid(), mode, power::Action::Reboot)?;
        Ok(Completion::Requested)
    }

    async fn destroy(&self, ctx: &DomainCtx, _graceful: bool) -> DriverResult<()> {
        let c = self.container(ctx)?;
        self.kill(&c).await
    }

    /// The container's memory limit, as libvirt's LXC driver sets a running container's
    /// memory.
    async fn set_memory(&self, ctx: &DomainCtx, _live: &DomainDef, kib: u64) -> DriverResult<()> {
        let c = self.container(ctx)?;
        c.cgroups
            .set_memory_limit(kib.saturating_mul(1024))
            .map_err(|e| failed(format!("domain '{}': {e}", ctx.name)))
    }

    /// As libvirt's LXC driver: only the init (pid 1 in the container) takes signals.
    async fn send_process_signal(
        &self,
        ctx: &DomainCtx,
        pid: i64,
        signum: u32,
    ) -> DriverResult<()> {
        let c = self.container(ctx)?;
        if pid != 1 {
            return Err(DriverError::NotSupported(
                "Only the init process may be killed".into(),
            ));
        }
        let init = c.init_pid();
        if init <= 0 {
            return Err(DriverError::InvalidState(
                "Init pid is not yet available".into(),
            ));
        }
        // libvirt's signal numbers are Linux's
        // SAFETY: a plain kill of the container's init.
        if unsafe { libc::kill(init, signum as i32) } < 0 {
            return Err(failed(format!(
                "Unable to send {signum} signal to process {init}: {}",
                std::io::Error::last_os_error()
            )));
        }
        Ok(())
    }

    async fn open_namespaces(&self, ctx: &DomainCtx) -> DriverResult<Vec<std::os::fd::OwnedFd>> {
        let c = self.container(ctx)?;
        let init = c.init_pid();
        if init <= 0 {
            return Err(DriverError::InvalidState(
                "Init pid is not yet available".into(),
            ));
        }
        // libvirt's order; a namespace the kernel lacks is left out, as libvirt does
        Ok(["user", "ipc", "uts", "net", "pid", "mnt"]
            .iter()
            .filter_map(|ns| {
                std::fs::File::open(format!("/proc/{init}/ns/{ns}"))
                    .ok()
                    .map(Into::into)
            })
            .collect())
    }

    /// A container's reset is a new start of its init, as libvirt's reboot does, under the
    /// same controller: the console's pty stays (see [`restart`]).
    async fn reset(&self, ctx: &DomainCtx) -> DriverResult<()> {
        let c = self.container(ctx)?;
        let boot = lock(&c.boot).number;
        let b = restart::restart(&c.dir, &c.controller, boot, START_TIMEOUT)
            .await
            .map_err(|e| {
                failed(format!(
                    "domain '{}': {e} (log: {})",
                    ctx.name,
                    c.log.display()
                ))
            })?;
        *lock(&c.boot) = b;
        Ok(())
    }

    async fn suspend(&self, ctx: &DomainCtx) -> DriverResult<()> {
        let c = self.container(ctx)?;
        c.cgroups
            .freeze(true)
            .map_err(|e| failed(format!("domain '{}': {e}", ctx.name)))
    }

    async fn resume(&self, ctx: &DomainCtx) -> DriverResult<()> {
        let c = self.container(ctx)?;
        c.cgroups
            .freeze(false)
            .map_err(|e| failed(format!("domain '{}': {e}", ctx.name)))
    }

    async fn memory_stats(
        &self,
        ctx: &DomainCtx,
        _live: &DomainDef,
    ) -> DriverResult<Vec<(MemoryStat, u64)>> {
        let c = self.container(ctx)?;
        let mut out = Vec::new();
        if let Some(u) = c.cgroups.memory_usage() {
            out.push((MemoryStat::Rss, u / 1024));
        }
        if let Some(l) = c.cgroups.memory_limit() {
            out.push((MemoryStat::ActualBalloon, l / 1024));
        }
        Ok(out)
    }

    async fn stats(&self, ctx: &DomainCtx, live: &DomainDef) -> DriverResult<Stats> {
        let c = self.container(ctx)?;
        let mut out = Stats::new();
        let state = if c.cgroups.frozen() {
            DomainState::Paused
        } else {
            DomainState::Running
        };
        out.push(("state.state".into(), StatValue::I64(state as i64)));
        if let Some((total, split)) = c.cgroups.cpu_time() {
            out.push(("cpu.time".into(), StatValue::U64(total)));
            if let Some((user, system)) = split {
                out.push(("cpu.user".into(), StatValue::U64(user)));
                out.push(("cpu.system".into(), StatValue::U64(system)));
            }
        }
        let limit = c.cgroups.memory_limit().map(|b| b / 1024);
        out.push((
            "balloon.maximum".into(),
            StatValue::U64(limit.unwrap_or(live.memory_kib)),
        ));
        if let Some(u) = c.cgroups.memory_usage() {
            out.push(("balloon.current".into(), StatValue::U64(u / 1024)));
            out.push(("balloon.rss".into(), StatValue::U64(u / 1024)));
        }
        if let Some((r, w)) = c.cgroups.block_io() {
            out.push(("block.count".into(), StatValue::U64(0)));
            out.push(("lxc.block.rd.bytes".into(), StatValue::U64(r)));
            out.push(("lxc.block.wr.bytes".into(), StatValue::U64(w)));
        }
        // the host ends' counters, swapped: what the host end sends, the container receives
        let hosts: Vec<Option<String>> = live
            .devices
            .interfaces
            .iter()
            .map(|n| n.target_dev.clone())
            .collect();
        let counters = veth::counters(&hosts).await;
        crate::drivers::qemu::stats::nets(live, &|i| counters.get(i).copied().flatten(), &mut out);
        out.push(("lxc.init.pid".into(), StatValue::I64(c.init_pid().into())));
        Ok(out)
    }

    async fn snapshot_create(
        &self,
        ctx: &DomainCtx,
        _req: SnapshotRequest<'_>,
    ) -> DriverResult<SnapshotOutcome> {
        Err(no_snapshots(ctx))
    }

    async fn snapshot_revert(
        &self,
        ctx: &DomainCtx,
        _snap: &SnapshotDef,
        _active_now: bool,
        _target: RevertTarget,
        _id: u32,
    ) -> DriverResult<RevertOutcome> {
        Err(no_snapshots(ctx))
    }

    async fn snapshot_delete(
        &self,
        _ctx: &DomainCtx,
        _snap: &SnapshotDef,
        _active_now: bool,
        _metadata_only: bool,
        _remaining: &ImageChains,
    ) -> DriverResult<DeleteOutcome> {
        Ok(DeleteOutcome::default())
    }

    async fn open_console(
        &self,
        ctx: &DomainCtx,
        alias: &str,
        dev: &crate::model::devices::CharDevice,
    ) -> DriverResult<std::os::fd::OwnedFd> {
        self.container(ctx)?;
        console::open(&ctx.name, alias, dev)
    }

    async fn fs_freeze(&self, ctx: &DomainCtx, _mountpoints: &[String]) -> DriverResult<u32> {
        Err(DriverError::Unimplemented(format!(
            "the LXC driver cannot freeze the filesystems of domain '{}'",
            ctx.name
        )))
    }

    async fn fs_thaw(&self, ctx: &DomainCtx, _mountpoints: &[String]) -> DriverResult<u32> {
        Err(DriverError::Unimplemented(format!(
            "the LXC driver cannot thaw the filesystems of domain '{}'",
            ctx.name
        )))
    }

    fn forget(&self, uuid: &Uuid) {
        lock(&self.containers).remove(uuid);
    }

    fn runtime_guests(&self) -> Vec<RuntimeGuest> {
        status::load_all(&self.runtime)
            .into_iter()
            .map(|s| RuntimeGuest {
                uuid: s.uuid,
                live: s.live,
            })
            .collect()
    }

    /// Adopt the controller if it is still the process recorded (pid and start time), and
    /// its init still runs.
    async fn recover(&self, ctx: &DomainCtx) -> DriverResult<Recovered> {
        let path = status::path(&self.runtime, &ctx.uuid);
        let st = status::Status::load(&path).map_err(failed)?;
        let forget = |why: String| {
            status::Status::remove(&self.runtime, &st.uuid);
            let _ = std::fs::remove_dir_all(&st.dir);
            DriverError::Failed(why)
        };
        let state = controller::State::load(&st.dir.join("controller.json"));
        let proc = match Process::adopt(st.controller_pid, st.controller_start) {
            Ok(p) => p,
            Err(e) => {
                // its container may still run without it: nothing may be left behind
                st.cgroups.kill_all();
                st.cgroups.remove();
                Log::note(&st.log, "the controller was gone when virtbus restarted");
                return Err(forget(format!(
                    "its controller exited while the daemon was down ({e})"
                )));
            }
        };
        let init_same = |s: &controller::State| {
            crate::drivers::qemu::process::start_time(s.init_pid).ok() == Some(s.init_start)
        };
        // an init that rebooted while the daemon was down starts again (libvirt's default
        // `<on_reboot>`)
        let state = match state {
            Some(s) if s.exit.as_deref() == Some("reboot") => {
                restart::restart(&st.dir, &proc, s.boot, START_TIMEOUT)
                    .await
                    .ok()
                    .and_then(|_| controller::State::load(&st.dir.join("controller.json")))
            }
            s => s,
        };
        let Some(state) = state.filter(|s| s.exit.is_none() && init_same(s)) else {
            let _ = proc.wait_for(Duration::from_secs(10)).await;
            return Err(forget(
                "its container ended while the daemon was down".into(),
            ));
        };
        let status = if st.cgroups.frozen() {
            Status::new(DomainState::Paused, StateReason::User)
        } else {
            Status::new(DomainState::Running, StateReason::Booted)
        };
        let c = Arc::new(Container {
            uuid: st.uuid,
            name: st.live.name.clone(),
            controller: proc,
            boot: Mutex::new(restart::Boot::from(&state)),
            dir: st.dir.clone(),
            log: st.log.clone(),
            cgroups: st.cgroups.clone(),
            stopping: AtomicBool::new(false),
            gone: tokio::sync::watch::channel(false).0,
        });
        lock(&self.containers).insert(st.uuid, c.clone());
        self.watch(c, ctx.clone());
        Log::note(&st.log, "reattached by a restarted virtbus");
        Ok(Recovered {
            live: st.live,
            id: st.id,
            status,
        })
    }
}

#[cfg(test)]
mod tests;
