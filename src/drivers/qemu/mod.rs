//! The QEMU driver: `qemu` and `kvm` domains as `qemu-system-*` processes, driven over QMP
//! and the guest agent.
//!
//! Modules, one job each: [`caps`] (emulators and what they offer, cached on disk), [`kvm`]
//! (whether KVM can run a guest), [`domcaps`] (what guests are offered), [`cmdline`] (definition → command line + live definition),
//! [`process`] (spawn, log, signal, watch), [`status`] (what survives a daemon restart),
//! [`monitor`] (QMP events → driver events), [`stats`], [`agent`] (guest info), [`net`]
//! (taps and bridges) and [`snapshot`]; [`transport`], [`qmp`] and [`qga`] are the protocol
//! clients. The driver reaches QEMU only through [`seam`] (its monitor, its process, how it
//! is launched), so that unit tests can put the recording fake of `fake` in its place.
//!
//! A start runs QEMU paused (`-S`) with `-no-shutdown`, connects to its monitor, reads what
//! only the running QEMU knows (pty paths, the VNC port), applies the settings that need
//! QMP, and then continues it, as libvirt does.

pub mod agent;
pub mod agent_ops;
mod backup;
pub mod bandwidth;
mod block;
pub mod caps;
pub mod cgroup;
pub mod cgtune;
pub mod checkpoint;
pub mod cmdline;
pub mod config;
mod console;
pub mod defaults;
pub mod domcaps;
#[cfg(test)]
pub mod fake;
pub mod firmware;
pub mod guest_events;
pub mod hotplug;
mod iothreads;
pub mod kvm;
pub mod live;
mod livetune;
pub mod migratable;
pub mod migrate;
mod misc;
pub mod monitor;
pub mod net;
mod passthrough;
pub mod pci;
mod perf;
pub mod pinning;
mod power;
pub mod process;
pub mod qga;
pub mod qmp;
pub mod save;
pub mod saveimage;
mod screenshot;
pub mod seam;
pub mod snapshot;
pub mod stats;
pub mod status;
pub mod swtpm;
pub mod transport;
pub mod update;
pub mod usb;
mod vcpuplug;
pub mod virtiofs;
mod vsock;
mod watchdog;

use std::{
    collections::HashMap,
    fmt::Write as _,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use async_trait::async_trait;
use serde_json::{Value, json};
use uuid::Uuid;

pub use self::config::QemuConfig;
use self::{
    caps::{Caps, CapsCache},
    cmdline::{Accel, Env, Plan, PtyOf, Setup},
    kvm::KvmStatus,
    monitor::{Vm, VmParts, driver_error},
    process::Log,
    seam::{QemuProcess, Spawner},
    status::Status as StatusFile,
};
use super::{
    Completion, DeleteOutcome, DomainCapsInfo, DomainCtx, Driver, DriverCaps, DriverError,
    DriverEvent, DriverResult, GuestInfo, GuestInfoTypes, ImageChains, MemoryStat, Recovered,
    RevertOutcome, RevertTarget, RuntimeGuest, SnapshotOutcome, SnapshotRequest, Started, Stats,
    UndefineFiles,
};
use crate::{
    model::options::PowerMode,
    model::{
        DomainDef, DomainType, SnapshotDef,
        devices::{CharSourceType, Device, InterfaceType},
        state::{DomainState, StateReason, Status},
    },
    util::{lock, xml::text as xml_text},
};

/// Where a starting guest's state comes from, other than a boot.
#[derive(Debug, Clone, Copy)]
enum Incoming<'a> {
    /// A save image, its migration stream from this offset on.
    Image(&'a Path, u64),
    /// An incoming migration, listened for at this address and port.
    Listen(&'a str, u16),
}

/// Why the driver could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum QemuError {
    #[error("cannot create {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The QEMU driver.
pub struct QemuDriver {
    config: QemuConfig,
    /// `<runtime>/qemu`: per-domain socket directories and `status/`.
    runtime: PathBuf,
    log_dir: PathBuf,
    cache_dir: PathBuf,
    /// `<state>/qemu/save`: managed save images, which outlive a reboot of the host.
    save_dir: PathBuf,
    /// `<state>/qemu/nvram`: the UEFI variable stores of domains (`<name>_VARS.fd`).
    nvram_dir: PathBuf,
    /// `<state>/qemu/dump`: memory dumps of guests whose watchdog fired (libvirt's
    /// auto_dump_path).
    dump_dir: PathBuf,
    /// Emulated TPMs: their state under `<state>/swtpm`, their processes.
    swtpm: swtpm::Swtpm,
    /// The emulator for the host's architecture, found at start.
    default_emulator: PathBuf,
    caps: CapsCache,
    kvm: KvmStatus,
    vms: Arc<Mutex<HashMap<Uuid, Arc<Vm>>>>,
    /// Migration bandwidths (MiB/s) set for domains, running or not.
    bandwidths: Mutex<HashMap<Uuid, u64>>,
    /// `qemu-img`, for snapshots that touch images outside a running QEMU.
    img: snapshot::img::QemuImg,
    hooks: snapshot::hooks::Hooks,
    /// Launches QEMU and connects to its monitor: the system's, or a test's fake.
    spawner: Arc<dyn Spawner>,
}

/// The container modes (`initctl`, `signal`) and Xen's `paravirt` have no QEMU meaning.
fn vm_mode_refused(name: &str, mode: PowerMode, verb: &str) -> DriverError {
    DriverError::NotSupported(format!(
        "domain '{name}': the QEMU driver has no {verb} mode '{}' (acpi and agent are)",
        mode.as_str()
    ))
}

fn failed(e: impl std::fmt::Display) -> DriverError {
    DriverError::Failed(e.to_string())
}

impl QemuDriver {
    /// Find the host's emulator, probe it (or read its cached capabilities) and KVM.
    /// `Ok(None)` when no `qemu-system-*` binary is found or it cannot be probed: the daemon
    /// runs without the driver.
    /// Capabilities are cached under `cache_dir`; sockets, status files and (by default)
    /// logs live under `runtime_dir`; managed save images under `state_dir`.
    pub async fn new(
        config: QemuConfig,
        state_dir: &Path,
        cache_dir: &Path,
        runtime_dir: &Path,
    ) -> Result<Option<Self>, QemuError> {
        let runtime = runtime_dir.join("qemu");
        let log_dir = config
            .log_dir
            .clone()
            .unwrap_or_else(|| runtime.join("log"));
        let cache_dir = cache_dir.join("qemu");
        for d in [&runtime, &log_dir] {
            mkdir_private(d)?;
        }
        let dirs = caps::search_dirs(&config.emulator_dirs);
        let default_emulator = match caps::find_emulator(std::env::consts::ARCH, &dirs) {
            Ok(e) => e,
            Err(e) => {
                tracing::info!("QEMU driver disabled: {e}");
                return Ok(None);
            }
        };
        let cache = CapsCache::default();
        let t = Instant::now();
        if let Err(e) = cache.get(&default_emulator, &cache_dir, &runtime).await {
            tracing::error!("QEMU driver disabled: {e}");
            return Ok(None);
        }
        let kvm = match config.kvm_mode() {
            config::KvmMode::No => KvmStatus::Unusable(format!(
                "KVM is disabled by configuration (or {}=tcg)",
                config::ACCEL_ENV
            )),
            config::KvmMode::Yes => KvmStatus::Usable,
            config::KvmMode::Auto => kvm::probe(Duration::from_secs(2)).await,
        };
        tracing::info!(
            "QEMU driver: {} ready in {:?}; KVM {}",
            default_emulator.display(),
            t.elapsed(),
            match &kvm {
                KvmStatus::Usable => "usable".to_owned(),
                KvmStatus::Unusable(why) => format!("unusable: {why}"),
            }
        );
        let img = snapshot::img::QemuImg::find(&dirs);
        if !img.available() {
            tracing::warn!(
                "qemu-img not found (package qemu-utils): snapshots of shut-off domains and \
                 external snapshots are unavailable"
            );
        }
        let swtpm = swtpm::Swtpm {
            state_root: state_dir.join("swtpm"),
            records: runtime.join("swtpm"),
            log_dir: log_dir.clone(),
        };
        Ok(Some(Self {
            config,
            runtime,
            log_dir,
            cache_dir,
            save_dir: state_dir.join("qemu").join("save"),
            nvram_dir: state_dir.join("qemu").join("nvram"),
            dump_dir: state_dir.join("qemu").join("dump"),
            swtpm,
            default_emulator,
            caps: cache,
            kvm,
            vms: Arc::default(),
            bandwidths: Mutex::default(),
            img,
            hooks: snapshot::hooks::Hooks::from_env(),
            spawner: Arc::new(seam::System),
        }))
    }

    fn vm(&self, ctx: &DomainCtx) -> DriverResult<Arc<Vm>> {
        lock(&self.vms)
            .get(&ctx.uuid)
            .filter(|vm| !*vm.gone().borrow())
            .cloned()
            .ok_or_else(|| {
                DriverError::InvalidState(format!("domain '{}' is not running", ctx.name))
            })
    }

    fn emulator_for(&self, def: &DomainDef) -> DriverResult<PathBuf> {
        if let Some(e) = &def.devices.emulator {
            return Ok(PathBuf::from(e));
        }
        match def.os.arch.as_deref() {
            None => Ok(self.default_emulator.clone()),
            Some(a) if a == std::env::consts::ARCH => Ok(self.default_emulator.clone()),
            // libvirt's i686 is QEMU's i386 target; the x86_64 one runs i686 guests too
            Some("i686") => {
                let dirs = caps::search_dirs(&self.config.emulator_dirs);
                caps::find_emulator("i386", &dirs)
                    .or_else(|e| match std::env::consts::ARCH {
                        "x86_64" => Ok(self.default_emulator.clone()),
                        _ => caps::find_emulator("x86_64", &dirs).map_err(|_| e),
                    })
                    .map_err(|e| DriverError::NotSupported(e.to_string()))
            }
            Some(a) => caps::find_emulator(a, &caps::search_dirs(&self.config.emulator_dirs))
                .map_err(|e| DriverError::NotSupported(e.to_string())),
        }
    }

    fn accel_for(&self, def: &DomainDef) -> DriverResult<Accel> {
        match def.domain_type {
            DomainType::Kvm => match &self.kvm {
                KvmStatus::Usable => Ok(Accel::Kvm),
                KvmStatus::Unusable(why) => Err(DriverError::NotSupported(format!(
                    "domain '{}' is of type 'kvm', but KVM is not usable on this host: {why}; \
                     use <domain type='qemu'> to run it under TCG emulation",
                    def.name
                ))),
            },
            _ => Ok(Accel::Tcg),
        }
    }

    /// The capabilities this emulator has been seen with, without probing.
    /// The capabilities of `emulator`, probed if not known (or if the binary changed).
    async fn caps_of(&self, emulator: &Path) -> DriverResult<Caps> {
        self.caps
            .get(emulator, &self.cache_dir, &self.runtime)
            .await
            .map_err(|e| DriverError::NotSupported(e.to_string()))
    }

    fn known_caps(&self, emulator: &Path) -> Option<Caps> {
        self.caps.all().into_iter().find(|c| c.emulator == emulator)
    }

    /// The definition QEMU runs for `def`: its automatic firmware selection resolved against
    /// the host's firmware descriptors.
    fn resolve_firmware(&self, def: &DomainDef, caps: &Caps) -> DriverResult<DomainDef> {
        if def.os.firmware.is_none()
            && def.os.loader.is_none()
            && def.os.nvram.is_none()
            && def.os.firmware_features.is_empty()
        {
            return Ok(def.clone());
        }
        let machine = match def.os.machine.as_deref() {
            Some(m) => m.to_owned(),
            None => caps
                .default_machine()
                .map(|m| m.name.clone())
                .unwrap_or_default(),
        };
        let machine = caps.machine(&machine).map_or(machine, |m| m.name.clone());
        let arch = def.os.arch.as_deref().unwrap_or(caps.arch.as_str());
        let descriptors = firmware::load(firmware::DESCRIPTOR_DIRS);
        firmware::resolve(def, &descriptors, &machine, arch, &self.nvram_dir).map_err(|e| match e {
            firmware::FirmwareError::Invalid(m) => {
                DriverError::InvalidArgument(format!("domain '{}': {m}", def.name))
            }
            firmware::FirmwareError::NotSupported(m) => {
                DriverError::NotSupported(format!("domain '{}': {m}", def.name))
            }
        })
    }

    fn domain_dir(&self, uuid: &Uuid) -> PathBuf {
        self.runtime.join(uuid.simple().to_string())
    }

    /// Remove a domain's runtime files and forget it, if `vm` is still the one recorded.
    fn cleanup_fn(&self) -> impl FnOnce(&Vm) + Send + 'static {
        let vms = self.vms.clone();
        let runtime = self.runtime.clone();
        let swtpm = self.swtpm.clone();
        move |vm: &Vm| {
            let mut map = lock(&vms);
            if map
                .get(&vm.uuid)
                .is_some_and(|v| std::ptr::eq(v.as_ref(), vm))
            {
                map.remove(&vm.uuid);
                drop(map);
                StatusFile::remove(&runtime, &vm.uuid);
                // its swtpm ends with QEMU's connection; this makes sure
                swtpm.stop(&vm.uuid);
                if vm.dir.join(swtpm::REMOVE_STATE).exists()
                    && let Err(e) = swtpm.remove_state(&vm.uuid)
                {
                    tracing::warn!("domain '{}': {e}", vm.name);
                }
                virtiofs::stop_all(&vm.dir);
                let _ = std::fs::remove_dir_all(&vm.dir);
                cgroup::remove(&vm.live());
                cgtune::Groups::locate(&vm.live().uuid).remove();
            }
        }
    }

    async fn save_status(&self, vm: &Vm) -> DriverResult<()> {
        write_status(vm, self.runtime.clone()).await.map_err(failed)
    }

    /// Connect to the monitor of a QEMU that is starting; its exit ends the wait.
    async fn connect_monitor(
        &self,
        path: &Path,
        proc: &dyn QemuProcess,
    ) -> Result<(Box<dyn seam::Monitor>, transport::Events), String> {
        let deadline = Instant::now() + self.config.monitor_timeout();
        loop {
            if proc.has_exited() {
                return Err("QEMU exited while starting".into());
            }
            if path.exists() {
                match self
                    .spawner
                    .connect(path, self.config.monitor_timeout())
                    .await
                {
                    Ok(c) => return Ok(c),
                    Err(e) if Instant::now() >= deadline => {
                        return Err(format!("cannot connect to its monitor: {e}"));
                    }
                    Err(_) => {}
                }
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "its monitor {} did not appear within {:?}",
                    path.display(),
                    self.config.monitor_timeout()
                ));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// What only the running QEMU knows, and the settings that need QMP.
    async fn setup(&self, vm: &Vm, plan: &Plan) -> DriverResult<()> {
        if !plan.ptys.is_empty() {
            let chardevs = vm.command("query-chardev", None).await?;
            let mut live = lock(&vm.live);
            for (id, of) in &plan.ptys {
                let path = chardevs
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|c| c.get("label").and_then(Value::as_str) == Some(id))
                    .and_then(|c| c.get("filename").and_then(Value::as_str))
                    .and_then(|f| f.strip_prefix("pty:"))
                    .map(str::to_owned);
                let dev = match of {
                    PtyOf::Serial(i) => live.devices.serials.get_mut(*i),
                    PtyOf::Parallel(i) => live.devices.parallels.get_mut(*i),
                    PtyOf::Console(i) => live.devices.consoles.get_mut(*i),
                    PtyOf::Channel(i) => live.devices.channels.get_mut(*i),
                };
                if let Some(d) = dev
                    && d.source_type == CharSourceType::Pty
                {
                    if matches!(of, PtyOf::Console(_)) {
                        d.tty = path.clone();
                    }
                    d.source_path = path;
                }
            }
        }
        if let Some(i) = plan.vnc_auto {
            let vnc = vm.command("query-vnc", None).await?;
            let port = vnc
                .get("service")
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<i32>().ok());
            if let Some(g) = lock(&vm.live).devices.graphics.get_mut(i) {
                g.port = port;
                g.autoport = Some(true);
            }
        }
        pinning::apply(vm, &plan.live).await?;
        vm.perf.apply(&plan.live.perf, vm.process.pid())?;
        for step in &plan.setup {
            match step {
                Setup::LinkDown { device } => {
                    vm.command("set_link", Some(json!({"name": device, "up": false})))
                        .await?;
                }
                Setup::Qmp { command, args } => {
                    vm.command(command, Some(args.clone())).await?;
                }
                Setup::Bridge { tap, bridge } => {
                    net::attach(tap, bridge).map_err(|e| {
                        DriverError::Failed(format!(
                            "domain '{}': cannot add tap {tap} to bridge {bridge}: {e}",
                            vm.name
                        ))
                    })?;
                    bandwidth::set_default_qdisc(tap);
                }
                Setup::Mtu { tap, mtu } => net::set_mtu(tap, *mtu).map_err(|e| {
                    DriverError::Failed(format!(
                        "domain '{}': cannot set the MTU of {tap} to {mtu}: {e}",
                        vm.name
                    ))
                })?,
                Setup::Bandwidth { tap, bandwidth } => {
                    bandwidth::apply(tap, Some(bandwidth)).map_err(DriverError::Failed)?
                }
                Setup::TapUp { tap } => {
                    net::up(tap).map_err(|e| {
                        DriverError::Failed(format!(
                            "domain '{}': cannot bring {tap} up: {e}",
                            vm.name
                        ))
                    })?;
                    bandwidth::set_default_qdisc(tap);
                }
                Setup::Password { protocol, secret } => {
                    vm.command(
                        "set_password",
                        Some(json!({"protocol": protocol, "password": secret})),
                    )
                    .await?;
                }
                Setup::Balloon { bytes } => {
                    vm.command("balloon", Some(json!({"value": bytes}))).await?;
                }
                Setup::BalloonStats { period } => balloon_stats_period(vm, *period).await?,
            }
        }
        Ok(())
    }

    /// The error for a start that failed after QEMU was launched: QEMU's own words first.
    async fn start_failed(&self, proc: &dyn QemuProcess, log: &Log, why: String) -> DriverError {
        // give QEMU a moment to finish writing why it exits
        proc.wait_for(Duration::from_millis(500)).await;
        let _ = proc.terminate(Duration::from_secs(2), false).await;
        let out = log.output();
        Log::note(&log.path, &format!("start failed: {why}"));
        let mut msg = String::from("QEMU failed to start");
        if !out.is_empty() {
            let _ = write!(msg, ": {out}");
        } else {
            let _ = write!(msg, ": {why}");
        }
        let _ = write!(msg, " (log: {})", log.path.display());
        DriverError::Failed(msg)
    }

    fn capabilities_details(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "    <kvm usable='{}'{}/>",
            if self.kvm.usable() { "yes" } else { "no" },
            match &self.kvm {
                KvmStatus::Usable => String::new(),
                KvmStatus::Unusable(why) => format!(" reason='{}'", xml_attr(why)),
            }
        );
        for c in self.caps.all() {
            let _ = writeln!(
                s,
                "    <emulator path='{}' arch='{}' version='{}'>",
                xml_attr(&c.emulator.display().to_string()),
                xml_attr(&c.arch),
                xml_attr(&c.version)
            );
            for a in &c.accels {
                let usable = match a.as_str() {
                    "kvm" => self.kvm.usable(),
                    _ => true,
                };
                let _ = writeln!(
                    s,
                    "      <accelerator name='{}' usable='{}'/>",
                    xml_attr(a),
                    if usable { "yes" } else { "no" }
                );
            }
            for m in &c.machines {
                let _ = write!(s, "      <machine");
                if let Some(a) = &m.alias {
                    let _ = write!(s, " alias='{}'", xml_attr(a));
                }
                if m.default {
                    s.push_str(" default='yes'");
                }
                let _ = writeln!(s, ">{}</machine>", xml_text(&m.name));
            }
            let _ = writeln!(s, "      <devices count='{}'/>", c.devices.len());
            s.push_str("    </emulator>\n");
        }
        s
    }
}

impl QemuDriver {
    /// Power the guest off or reboot it through its agent.
    async fn agent_shutdown(
        &self,
        vm: &Vm,
        mode: qapi::qga::GuestShutdownMode,
    ) -> DriverResult<()> {
        agent_of(vm)?
            .shutdown(mode, self.config.agent_timeout())
            .await
            .map_err(|e| agent_error(vm, e))
    }

    /// Start QEMU for `def`; with `incoming`, its state is read from that managed save
    /// image before the guest runs.
    ///
    /// A display port chosen here (SPICE autoport) can be taken by another program between
    /// the choice and QEMU's bind (another guest's VNC autoport, which QEMU picks itself):
    /// QEMU then fails to listen, and the start is tried again with the next free port (the
    /// one taken stays leased, so it is not chosen again).
    async fn launch(
        &self,
        ctx: &DomainCtx,
        def: &DomainDef,
        paused: bool,
        id: u32,
        incoming: Option<Incoming<'_>>,
    ) -> DriverResult<Started> {
        const TRIES: usize = 3;
        let mut tries = 1;
        loop {
            match self.launch_once(ctx, def, paused, id, incoming).await {
                Err(DriverError::Failed(m)) if tries < TRIES && port_taken(def, &m) => {
                    tracing::info!(domain = %def.name, "display port taken meanwhile, starting again");
                    tries += 1;
                }
                r => return r,
            }
        }
    }

    async fn launch_once(
        &self,
        ctx: &DomainCtx,
        def: &DomainDef,
        paused: bool,
        id: u32,
        incoming: Option<Incoming<'_>>,
    ) -> DriverResult<Started> {
        if self.vm(ctx).is_ok() {
            return Err(DriverError::InvalidState(format!(
                "domain '{}' is already running",
                ctx.name
            )));
        }
        let accel = self.accel_for(def)?;
        let emulator = self.emulator_for(def)?;
        let caps = self.caps_of(&emulator).await?;
        let resolved = self.resolve_firmware(def, &caps)?;
        let def = &resolved;
        // the variable store is the guest's own from its first start on
        let d = def.clone();
        tokio::task::spawn_blocking(move || firmware::prepare_nvram(&d))
            .await
            .map_err(failed)?
            .map_err(|m| DriverError::Failed(format!("domain '{}': {m}", def.name)))?;
        let dir = self.domain_dir(&def.uuid);
        let _ = std::fs::remove_dir_all(&dir);
        mkdir_private(&dir).map_err(failed)?;
        let host = cmdline::Host::probe();
        let env = Env {
            caps: &caps,
            accel,
            dir: &dir,
            id,
            free_port: &free_port,
            host: Some(&host),
        };
        let def = &*vsock::settle(def).inspect_err(|_| {
            let _ = std::fs::remove_dir_all(&dir);
        })?;
        let built = cmdline::build(def, &env).and_then(|mut p| {
            live::storage(&mut p.live)?;
            Ok(p)
        });
        let plan = match built {
            Ok(mut p) => {
                if incoming.is_some() {
                    p.args.extend(["-incoming".to_owned(), "defer".to_owned()]);
                }
                p
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(match e {
                    cmdline::CmdlineError::NotSupported(m) => {
                        DriverError::NotSupported(format!("domain '{}': {m}", def.name))
                    }
                    cmdline::CmdlineError::Invalid(m) => {
                        DriverError::InvalidArgument(format!("domain '{}': {m}", def.name))
                    }
                });
            }
        };
        if let Err(e) = virtiofs::start_all(&plan.virtiofsd, &dir, &self.log_dir, &def.name).await {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(DriverError::Failed(format!("domain '{}': {e}", def.name)));
        }
        let log_path = self.log_dir.join(format!("{}.log", def.name));
        let log = match Log::open(&log_path, &emulator, &plan.args) {
            Ok(l) => l,
            Err(e) => {
                virtiofs::stop_all(&dir);
                return Err(failed(e));
            }
        };
        // the TPM emulator first: QEMU connects to it as it starts
        if let Err(m) = self.swtpm.start(def, &dir).await {
            virtiofs::stop_all(&dir);
            let _ = std::fs::remove_dir_all(&dir);
            return Err(DriverError::Failed(format!("domain '{}': {m}", def.name)));
        }
        let proc = match self
            .spawner
            .spawn(&emulator, &plan.args, &plan.env, &log.file)
        {
            Ok(p) => p,
            Err(e) => {
                self.swtpm.stop(&def.uuid);
                virtiofs::stop_all(&dir);
                return Err(failed(e));
            }
        };
        tracing::debug!("domain '{}': QEMU pid {}", def.name, proc.pid());
        let (qmp, events) = match self.connect_monitor(&plan.monitor, proc.as_ref()).await {
            Ok(c) => c,
            Err(why) => {
                let e = self.start_failed(proc.as_ref(), &log, why).await;
                virtiofs::stop_all(&dir);
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        let vm = Vm::new(VmParts {
            uuid: def.uuid,
            name: def.name.clone(),
            id,
            qmp,
            agent: plan.agent.clone(),
            process: proc,
            dir: dir.clone(),
            log: log_path.clone(),
            emulator: emulator.clone(),
            monitor: plan.monitor.clone(),
            live: plan.live.clone(),
            timeout: self.config.monitor_timeout(),
            in_shutdown: false,
            dump_dir: self.dump_dir.clone(),
        });
        lock(&self.vms).insert(def.uuid, vm.clone());
        vm.block.keep_status_in(self.runtime.clone());
        monitor::watch(vm.clone(), events, ctx.clone(), self.cleanup_fn());
        let setup = async {
            self.setup(&vm, &plan).await?;
            // before the guest runs, a record to find this QEMU again after a kill -9
            self.save_status(&vm).await?;
            match incoming {
                Some(Incoming::Image(image, offset)) => save::restore(&vm, image, offset).await?,
                Some(Incoming::Listen(host, port)) => {
                    // the guest runs once the stream has all its state (the finish step)
                    migrate::listen(&vm, host, port).await?;
                    return Ok(());
                }
                None => {}
            }
            if !paused {
                vm.command_quiet("cont", None, &["RESUME"]).await?;
            }
            Ok::<(), DriverError>(())
        };
        if let Err(e) = setup.await {
            vm.set_stopping(true);
            // a host command's failure (tc shaping the tap) is the error, not QEMU's words
            let host_side =
                matches!(&e, DriverError::Failed(m) if m.starts_with("Child process ("));
            let mut err = self
                .start_failed(vm.process.as_ref(), &log, e.to_string())
                .await;
            if host_side {
                err = e;
            }
            let mut gone = vm.gone();
            let _ = tokio::time::timeout(Duration::from_secs(5), gone.wait_for(|g| *g)).await;
            return Err(err);
        }
        // libvirt reports the agent channel's state as the domain starts
        let agent = vm.agent.is_some().then(|| {
            lock(&vm.live).devices.channels.iter().any(|c| {
                c.target_name.as_deref() == Some(cmdline::AGENT_CHANNEL)
                    && c.target_state == Some(crate::model::devices::ChannelState::Connected)
            })
        });
        Ok(Started {
            live: Some(vm.live()),
            agent,
        })
    }
}

/// This host's name, where a source's QEMU reaches an incoming migration listening on every
/// address (libvirt's default too).
fn nix_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// What the status file records of a running guest.
/// Write `vm`'s status record, one writer at a time (see `Vm::status_write`).
pub(super) async fn write_status(vm: &Vm, runtime: PathBuf) -> Result<(), String> {
    let _writing = vm.status_write.lock().await;
    let st = status_record(vm);
    match tokio::task::spawn_blocking(move || st.save(&runtime)).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

fn status_record(vm: &Vm) -> StatusFile {
    StatusFile {
        uuid: vm.uuid,
        id: vm.id,
        pid: vm.process.pid(),
        start_time: vm.process.start_time(),
        emulator: vm.emulator.clone(),
        monitor: vm.monitor.clone(),
        agent: vm.agent.as_ref().map(|a| a.path().to_owned()),
        dir: vm.dir.clone(),
        log: vm.log.clone(),
        live: vm.live(),
        thaw_unconfirmed: vm.freeze.unconfirmed(),
        agent_held: vm.agent_held.load(std::sync::atomic::Ordering::SeqCst),
    }
}

fn xml_attr(s: &str) -> String {
    xml_text(s).replace('\'', "&apos;")
}

fn mkdir_private(d: &Path) -> Result<(), QemuError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(d)
        .map_err(|source| QemuError::Dir {
            path: d.to_owned(),
            source,
        })
}

/// How long a display port handed out stays reserved: until the QEMU it went to listens on
/// it (then binding it fails anyway), so that guests started meanwhile, or a second display
/// of the same guest, do not get it too.
const PORT_LEASE: std::time::Duration = std::time::Duration::from_secs(60);

/// Display ports handed out within [`PORT_LEASE`].
static LEASED_PORTS: std::sync::Mutex<Vec<(u16, std::time::Instant)>> =
    std::sync::Mutex::new(Vec::new());

/// A TCP port nobody listens on and none handed out lately, from libvirt's range for
/// displays.
fn free_port() -> Option<u16> {
    let mut leased = lock(&LEASED_PORTS);
    leased.retain(|(_, t)| t.elapsed() < PORT_LEASE);
    let p = (5900..=65535).find(|p| {
        !leased.iter().any(|(l, _)| l == p) && std::net::TcpListener::bind(("0.0.0.0", *p)).is_ok()
    })?;
    leased.push((p, std::time::Instant::now()));
    Some(p)
}

/// Make the balloon driver refresh the guest's memory statistics every `secs` seconds.
async fn balloon_stats_period(vm: &Vm, secs: u32) -> DriverResult<()> {
    let alias = lock(&vm.live)
        .devices
        .memballoon
        .as_ref()
        .and_then(|m| m.info.alias.clone())
        .unwrap_or_else(|| "balloon0".into());
    vm.command(
        "qom-set",
        Some(json!({"path": format!("/machine/peripheral/{alias}"),
                    "property": "guest-stats-polling-interval",
                    "value": secs})),
    )
    .await
    .map(|_| ())
}

/// Whether QEMU's failure `msg` is a display port of ours (an autoport SPICE one) found taken.
fn port_taken(def: &DomainDef, msg: &str) -> bool {
    use crate::model::devices::GraphicsType;
    // autoport, or no port given: the port was chosen here
    let auto_spice = def.devices.graphics.iter().any(|g| {
        g.graphics_type == GraphicsType::Spice
            && (g.autoport == Some(true) || g.port.is_none_or(|p| p < 0))
    });
    auto_spice && msg.contains("Failed to open SPICE sockets")
}

/// A domain's state from QMP `query-status`.
fn status_from_qmp(v: &Value) -> Status {
    match v.get("status").and_then(Value::as_str).unwrap_or_default() {
        "running" => Status::new(DomainState::Running, StateReason::Booted),
        "io-error" => Status::new(DomainState::Paused, StateReason::IoError),
        "watchdog" => Status::new(DomainState::Paused, StateReason::Watchdog),
        "guest-panicked" => Status::new(DomainState::Crashed, StateReason::Panicked),
        "shutdown" => Status::new(DomainState::Shutdown, StateReason::User),
        _ => Status::new(DomainState::Paused, StateReason::User),
    }
}

#[async_trait]
impl Driver for QemuDriver {
    fn name(&self) -> &'static str {
        "qemu"
    }

    fn capabilities(&self) -> DriverCaps {
        DriverCaps {
            name: "qemu",
            domain_types: vec![DomainType::Qemu, DomainType::Kvm],
            details_xml: self.capabilities_details(),
            snapshot_internal: true,
            snapshot_external: self.img.available(),
            quiesce: true,
        }
    }

    /// The version of the host architecture's emulator.
    fn leader_pid(&self, uuid: &Uuid) -> Option<u32> {
        let pid = lock(&self.vms).get(uuid)?.process.pid();
        u32::try_from(pid).ok()
    }

    fn hypervisor_version(&self) -> u64 {
        self.known_caps(&self.default_emulator)
            .map_or(0, |c| domcaps::version_code(&c.version))
    }

    /// From the emulators probed so far (the host's is probed at start); `kvm` domains only
    /// while KVM is usable.
    fn domain_caps(
        &self,
        domain_type: DomainType,
        arch: &str,
        machine: Option<&str>,
    ) -> Option<DomainCapsInfo> {
        let kvm = domain_type == DomainType::Kvm;
        if kvm && !self.kvm.usable() {
            return None;
        }
        let caps = self.caps.all().into_iter().find(|c| c.arch == arch)?;
        let descriptors = firmware::load(firmware::DESCRIPTOR_DIRS);
        Some(domcaps::offer(&caps, kvm, &descriptors, machine))
    }

    /// libvirt's QEMU defaults, with the capabilities of the emulator the domain names.
    async fn post_parse(&self, def: &mut DomainDef) -> DriverResult<()> {
        let emulator = self.emulator_for(def)?;
        let caps = self.caps_of(&emulator).await?;
        defaults::apply(def, &caps)?;
        firmware::post_parse(def, &self.nvram_dir);
        swtpm::post_parse(def);
        Ok(())
    }

    /// Refuse at define what can never start: a `kvm` domain without usable KVM, and anything
    /// the command line cannot express (checked against the emulator's known capabilities).
    fn migratable(&self, def: &mut DomainDef, config: &DomainDef) -> bool {
        crate::model::migratable::runtime(def, config);
        migratable::strip(def);
        true
    }

    fn update_cpu(&self, def: &mut DomainDef) -> DriverResult<()> {
        migratable::update_cpu(def)
    }

    fn check(&self, def: &DomainDef) -> DriverResult<()> {
        let accel = self.accel_for(def)?;
        let emulator = self.emulator_for(def)?;
        let Some(caps) = self.known_caps(&emulator) else {
            return Ok(());
        };
        let mut resolved = self.resolve_firmware(def, &caps)?;
        // a storage volume's file is known only when the guest starts (its pool may be
        // inactive now): check the rest of the disk with a stand-in
        for s in resolved
            .devices
            .disks
            .iter_mut()
            .filter_map(|d| d.source.as_mut())
        {
            if let Some(v) = s.volume.as_ref().filter(|_| s.path.is_none()) {
                s.path = Some(format!("/volume/{}/{}", v.pool, v.volume));
            }
        }
        let def = &resolved;
        let env = Env {
            caps: &caps,
            accel,
            dir: Path::new("/run/virtbus/qemu/check"),
            id: 1,
            free_port: &|| Some(5900),
            host: None,
        };
        cmdline::build(def, &env).map(|_| ()).map_err(|e| match e {
            cmdline::CmdlineError::NotSupported(m) => {
                DriverError::NotSupported(format!("domain '{}': {m}", def.name))
            }
            cmdline::CmdlineError::Invalid(m) => {
                DriverError::InvalidArgument(format!("domain '{}': {m}", def.name))
            }
        })
    }

    /// libvirt's rule: a domain whose NVRAM file exists is undefined only with `nvram`
    /// (remove it) or `keep-nvram`.
    fn undefine_check(&self, def: &DomainDef, files: UndefineFiles) -> DriverResult<()> {
        if let Some(p) = firmware::nvram_file(def, &self.nvram_dir)
            && p.exists()
            && !files.nvram
            && !files.keep_nvram
        {
            return Err(DriverError::InvalidState(format!(
                "domain '{}' has a UEFI variable store ({}); pass option 'nvram' to remove                  it or 'keep-nvram' to keep it",
                def.name,
                p.display()
            )));
        }
        Ok(())
    }

    async fn undefine_files(&self, def: &DomainDef, files: UndefineFiles) -> DriverResult<()> {
        // a running guest's swtpm still writes there: its state goes when the guest stops,
        // as libvirt's does when the transient domain it became ends
        let running = lock(&self.vms).contains_key(&def.uuid);
        if !files.keep_tpm {
            if !running {
                self.swtpm
                    .remove_state(&def.uuid)
                    .map_err(DriverError::Failed)?;
            } else if swtpm::emulator(def).is_some_and(|e| !e.persistent_state) {
                let mark = self.domain_dir(&def.uuid).join(swtpm::REMOVE_STATE);
                std::fs::write(&mark, b"")
                    .map_err(|e| failed(format!("{}: {e}", mark.display())))?;
            }
        }
        if files.nvram
            && let Some(p) = firmware::nvram_file(def, &self.nvram_dir)
        {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(DriverError::Failed(format!(
                        "cannot remove NVRAM file {}: {e}",
                        p.display()
                    )));
                }
            }
        }
        Ok(())
    }

    async fn start(
        &self,
        ctx: &DomainCtx,
        def: &DomainDef,
        paused: bool,
        id: u32,
    ) -> DriverResult<Started> {
        self.launch(ctx, def, paused, id, None).await
    }

    async fn shutdown(&self, ctx: &DomainCtx, mode: PowerMode) -> DriverResult<Completion> {
        let vm = self.vm(ctx)?;
        let powerdown = qapi::qga::GuestShutdownMode::Powerdown;
        let acpi = || async { vm.command("system_powerdown", None).await.map(|_| ()) };
        match mode {
            PowerMode::Acpi => acpi().await?,
            PowerMode::Agent => self.agent_shutdown(&vm, powerdown).await?,
            m @ (PowerMode::Initctl | PowerMode::Signal | PowerMode::Paravirt) => {
                return Err(vm_mode_refused(&vm.name, m, "shutdown"));
            }
            PowerMode::Default => {
                let agent = vm
                    .agent
                    .is_some()
                    .then(|| self.agent_shutdown(&vm, powerdown));
                power::default_mode(&vm.name, agent, acpi)
                    .await
                    .map(|_| ())?
            }
        }
        Ok(Completion::Requested)
    }

    async fn reboot(&self, ctx: &DomainCtx, mode: PowerMode) -> DriverResult<Completion> {
        let vm = self.vm(ctx)?;
        let reboot = qapi::qga::GuestShutdownMode::Reboot;
        let acpi = || async {
            // the guest powers off; QEMU holds it and the core resets it (on_reboot)
            vm.set_fake_reboot(true);
            let r = vm.command("system_powerdown", None).await.map(|_| ());
            if r.is_err() {
                vm.set_fake_reboot(false);
            }
            r
        };
        match mode {
            PowerMode::Acpi => acpi().await?,
            PowerMode::Agent => self.agent_shutdown(&vm, reboot).await?,
            m @ (PowerMode::Initctl | PowerMode::Signal | PowerMode::Paravirt) => {
                return Err(vm_mode_refused(&vm.name, m, "reboot"));
            }
            PowerMode::Default => {
                let agent = vm.agent.is_some().then(|| self.agent_shutdown(&vm, reboot));
                power::default_mode(&vm.name, agent, acpi)
                    .await
                    .map(|_| ())?
            }
        }
        Ok(Completion::Requested)
    }

    async fn destroy(&self, ctx: &DomainCtx, graceful: bool) -> DriverResult<()> {
        let vm = self.vm(ctx)?;
        vm.set_stopping(true);
        let gone = vm
            .process
            .terminate(self.config.grace(), graceful)
            .await
            .map_err(|e| failed(format!("cannot stop QEMU of domain '{}': {e}", vm.name)))?;
        if !gone {
            vm.set_stopping(false);
            return Err(DriverError::Timeout(format!(
                "QEMU of domain '{}' did not exit within {:?} of SIGTERM",
                vm.name,
                self.config.grace()
            )));
        }
        Log::note(&vm.log, "stopped by virtbus");
        let mut g = vm.gone();
        if tokio::time::timeout(Duration::from_secs(10), g.wait_for(|g| *g))
            .await
            .is_err()
        {
            // the watcher is late; do its cleanup now
            (self.cleanup_fn())(&vm);
        }
        Ok(())
    }

    async fn reset(&self, ctx: &DomainCtx) -> DriverResult<()> {
        let vm = self.vm(ctx)?;
        let mut resets = vm.resets();
        let before = *resets.borrow_and_update();
        let held = vm.in_shutdown();
        vm.command("system_reset", None).await?;
        if held {
            // a powered-off guest held by -no-shutdown runs again after its reset
            vm.command_quiet("cont", None, &["RESUME"]).await?;
        }
        // report the reset (from its event) before returning
        let _ =
            tokio::time::timeout(Duration::from_secs(5), resets.wait_for(|n| *n > before)).await;
        Ok(())
    }

    async fn suspend(&self, ctx: &DomainCtx) -> DriverResult<()> {
        let vm = self.vm(ctx)?;
        vm.command_quiet("stop", None, &["STOP"]).await.map(|_| ())
    }

    async fn resume(&self, ctx: &DomainCtx) -> DriverResult<()> {
        let vm = self.vm(ctx)?;
        vm.command_quiet("cont", None, &["RESUME"])
            .await
            .map(|_| ())
    }

    /// The guest's state to its image, then QEMU stops; the core records the image.
    async fn managed_save(&self, ctx: &DomainCtx, _live: &DomainDef) -> DriverResult<()> {
        let vm = self.vm(ctx)?;
        save::save(&vm, &save::image_path(&self.save_dir, &ctx.uuid)).await?;
        self.destroy(ctx, false).await
    }

    /// A new QEMU for `def`, its state read from the image, which is removed once the
    /// guest has it; a failed restore keeps the image (libvirt's behaviour: the user may
    /// retry, or start afresh and drop it).
    async fn managed_restore(
        &self,
        ctx: &DomainCtx,
        def: &DomainDef,
        paused: bool,
        id: u32,
    ) -> DriverResult<Started> {
        let image = save::image_path(&self.save_dir, &ctx.uuid);
        if !image.exists() {
            return Err(DriverError::Failed(format!(
                "domain '{}': its managed save image {} is gone",
                ctx.name,
                image.display()
            )));
        }
        let started = self
            .launch(ctx, def, paused, id, Some(Incoming::Image(&image, 0)))
            .await?;
        if let Err(e) = std::fs::remove_file(&image) {
            tracing::warn!("domain '{}': {}: {e}", ctx.name, image.display());
        }
        Ok(started)
    }

    /// The guest's state to a file in libvirt's layout, then QEMU stops.
    async fn save_to_file(
        &self,
        ctx: &DomainCtx,
        header: &crate::drivers::SaveImageHeader,
        path: &Path,
    ) -> DriverResult<()> {
        let vm = self.vm(ctx)?;
        saveimage::save(&vm, header, path).await?;
        self.destroy(ctx, false).await
    }

    fn read_save_image(&self, path: &Path) -> DriverResult<crate::drivers::SaveImageHeader> {
        Ok(saveimage::read(path)?.header)
    }

    fn rewrite_save_image(
        &self,
        path: &Path,
        header: &crate::drivers::SaveImageHeader,
    ) -> DriverResult<()> {
        saveimage::rewrite(path, header)
    }

    /// A new QEMU for `def`, its state read from the stream after the image's header.
    async fn restore_from_file(
        &self,
        ctx: &DomainCtx,
        def: &DomainDef,
        path: &Path,
        paused: bool,
        id: u32,
    ) -> DriverResult<Started> {
        let img = saveimage::read(path)?;
        if img.compressed != 0 {
            return Err(DriverError::NotSupported(format!(
                "save image '{}' is compressed (format {}): virtbus restores raw images only",
                path.display(),
                img.compressed
            )));
        }
        self.launch(
            ctx,
            def,
            paused,
            id,
            Some(Incoming::Image(path, img.stream_offset())),
        )
        .await
    }

    /// Dump the guest's memory; a guest that ran is paused for the dump unless `live`,
    /// and runs again after it (a whole-state dump pauses it whatever `live` says).
    async fn core_dump(
        &self,
        ctx: &DomainCtx,
        path: &Path,
        opts: crate::drivers::DumpOptions,
    ) -> DriverResult<()> {
        let vm = self.vm(ctx)?;
        saveimage::dump(&vm, path, opts).await
    }

    async fn abort_job(&self, ctx: &DomainCtx) -> DriverResult<()> {
        let vm = self.vm(ctx)?;
        vm.command("migrate_cancel", None).await.map(|_| ())
    }

    async fn migrate_incoming(
        &self,
        ctx: &DomainCtx,
        def: &DomainDef,
        id: u32,
        listen: &str,
    ) -> DriverResult<(Started, String)> {
        let port = migrate::free_port(listen).ok_or_else(|| {
            DriverError::Failed("no free port in the migration range 49152-49215".into())
        })?;
        let started = self
            .launch(ctx, def, true, id, Some(Incoming::Listen(listen, port)))
            .await?;
        let host = match listen {
            "" | "0.0.0.0" | "::" | "[::]" => nix_hostname(),
            a => a.to_owned(),
        };
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        Ok((started, format!("tcp:{host}:{port}")))
    }

    fn migrate_setting_kept(&self, uuid: Uuid) -> u64 {
        lock(&self.bandwidths)
            .get(&uuid)
            .copied()
            .unwrap_or(crate::drivers::migrate::UNLIMITED_MIB)
    }

    fn keep_migrate_setting(&self, uuid: Uuid, mib: u64) {
        lock(&self.bandwidths).insert(uuid, mib);
    }

    async fn migrate_incoming_finish(&self, ctx: &DomainCtx, paused: bool) -> DriverResult<()> {
        let vm = self.vm(ctx)?;
        migrate::wait_incoming(&vm).await?;
        if !paused {
            vm.command_quiet("cont", None, &["RESUME"]).await?;
        }
        self.save_status(&vm).await
    }

    async fn migrate_out(
        &self,
        ctx: &DomainCtx,
        opts: &crate::drivers::migrate::MigrateOut,
    ) -> DriverResult<()> {
        let vm = self.vm(ctx)?;
        let report = |e: DriverEvent| ctx.report(e);
        migrate::send(&vm, opts, &report).await
    }

    async fn migration_stats(
        &self,
        ctx: &DomainCtx,
    ) -> DriverResult<crate::drivers::migrate::MigrationStats> {
        let vm = self.vm(ctx)?;
        let st = vm.command("query-migrate", None).await?;
        Ok(migrate::stats_of(&st))
    }

    async fn migrate_setting(
        &self,
        ctx: &DomainCtx,
        which: crate::drivers::migrate::MigrateSetting,
    ) -> DriverResult<u64> {
        let vm = self.vm(ctx)?;
        migrate::setting(&vm, which).await
    }

    async fn set_migrate_setting(
        &self,
        ctx: &DomainCtx,
        which: crate::drivers::migrate::MigrateSetting,
        value: u64,
    ) -> DriverResult<()> {
        let vm = self.vm(ctx)?;
        migrate::set_setting(&vm, which, value).await
    }

    async fn migrate_start_postcopy(&self, ctx: &DomainCtx) -> DriverResult<()> {
        let vm = self.vm(ctx)?;
        vm.command("migrate-start-postcopy", None).await.map(|_| ())
    }

    async fn set_memory_stats_period(&self, ctx: &DomainCtx, secs: u32) -> DriverResult<()> {
        let vm = self.vm(ctx)?;
        balloon_stats_period(&vm, secs).await
    }

    async fn managed_save_remove(&self, ctx: &DomainCtx) -> DriverResult<()> {
        let image = save::image_path(&self.save_dir, &ctx.uuid);
        match std::fs::remove_file(&image) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(DriverError::Failed(
                format!("cannot remove {}: {e}", image.display()),
            )),
            _ => Ok(()),
        }
    }

    async fn memory_stats(
        &self,
        ctx: &DomainCtx,
        _live: &DomainDef,
    ) -> DriverResult<Vec<(MemoryStat, u64)>> {
        let vm = self.vm(ctx)?;
        let balloon = lock(&vm.live).devices.memballoon.clone();
        let (actual, guest) = match balloon {
            Some(m) if m.model != crate::model::devices::MemballoonModel::None => {
                let actual = vm.command("query-balloon", None).await?;
                let guest = if m.stats_period.unwrap_or(0) > 0 {
                    let alias = m.info.alias.unwrap_or_else(|| "balloon0".into());
                    let args = json!({"path": format!("/machine/peripheral/{alias}"),
                                      "property": "guest-stats"});
                    Some(vm.command("qom-get", Some(args)).await?)
                } else {
                    None
                };
                (Some(actual), guest)
            }
            _ => (None, None),
        };
        let rss = std::fs::read_to_string(format!("/proc/{}/status", vm.process.pid()))
            .ok()
            .and_then(|s| stats::rss_kib(&s));
        Ok(stats::memory(actual.as_ref(), guest.as_ref(), rss))
    }

    /// A virtio disk or a network interface into the running guest.
    async fn attach_device(
        &self,
        ctx: &DomainCtx,
        device: &Device,
    ) -> DriverResult<Option<Device>> {
        let vm = self.vm(ctx)?;
        let attached = hotplug::attach(&vm, device).await?;
        self.save_status(&vm).await?;
        Ok(Some(attached))
    }

    async fn detach_device(&self, ctx: &DomainCtx, device: &Device) -> DriverResult<()> {
        let vm = self.vm(ctx)?;
        hotplug::detach(&vm, device).await?;
        self.save_status(&vm).await
    }

    /// New media in a CD-ROM, or an interface's link state.
    async fn update_device(
        &self,
        ctx: &DomainCtx,
        device: &Device,
        force: bool,
    ) -> DriverResult<()> {
        let vm = self.vm(ctx)?;
        update::update(&vm, device, force).await?;
        self.save_status(&vm).await
    }

    async fn screenshot(
        &self,
        ctx: &DomainCtx,
        screen: u32,
    ) -> DriverResult<crate::drivers::Screenshot> {
        let vm = self.vm(ctx)?;
        screenshot::take(&vm, screen).await
    }

    async fn backup_begin(
        &self,
        ctx: &DomainCtx,
        _live: &DomainDef,
        plan: &crate::drivers::backup::BackupPlan,
    ) -> DriverResult<()> {
        backup::begin(&self.vm(ctx)?, ctx, plan).await
    }

    async fn backup_abort(&self, ctx: &DomainCtx) -> DriverResult<()> {
        backup::abort(&self.vm(ctx)?).await
    }

    async fn backup_progress(
        &self,
        ctx: &DomainCtx,
    ) -> DriverResult<crate::drivers::backup::BackupProgress> {
        backup::progress(&self.vm(ctx)?).await
    }

    async fn block(
        &self,
        ctx: &DomainCtx,
        _live: &DomainDef,
        req: crate::drivers::block::BlockRequest,
    ) -> DriverResult<crate::drivers::block::BlockReply> {
        let vm = self.vm(ctx)?;
        // throttling is kept in the live definition; a job's end records the disk itself
        // (saving here too would race that write)
        let changes = matches!(req, crate::drivers::block::BlockRequest::SetIoTune { .. });
        let reply = block::request(&vm, req).await?;
        if changes {
            self.save_status(&vm).await?;
        }
        Ok(reply)
    }

    async fn checkpoint_bitmaps(
        &self,
        ctx: &DomainCtx,
        live: &DomainDef,
        req: crate::drivers::checkpoint::BitmapRequest,
    ) -> DriverResult<Vec<Option<u64>>> {
        checkpoint::request(&*self.vm(ctx)?, live, req).await
    }

    async fn inject_nmi(&self, ctx: &DomainCtx) -> DriverResult<()> {
        self.vm(ctx)?.command("inject-nmi", None).await?;
        Ok(())
    }

    async fn apply_tunables(
        &self,
        ctx: &DomainCtx,
        live: &DomainDef,
        group: crate::drivers::TuneGroup,
    ) -> DriverResult<()> {
        livetune::apply(&*self.vm(ctx)?, live, group).await
    }

    /// `query-iothreads` order, which libvirt's `iothreadinfo` of a running guest follows.
    async fn iothread_order(&self, ctx: &DomainCtx) -> DriverResult<Option<Vec<u32>>> {
        let vm = self.vm(ctx)?;
        let threads = livetune::iothread_threads(&vm).await?;
        Ok(Some(threads.into_iter().map(|(id, _)| id).collect()))
    }

    async fn set_perf(&self, ctx: &DomainCtx, live: &DomainDef) -> DriverResult<()> {
        let vm = self.vm(ctx)?;
        vm.perf.apply(&live.perf, vm.process.pid())?;
        lock(&vm.live).perf = live.perf.clone();
        self.save_status(&vm).await
    }

    async fn change_iothread(
        &self,
        ctx: &DomainCtx,
        live: &DomainDef,
        change: crate::drivers::livecfg::IoThreadChange,
    ) -> DriverResult<()> {
        let vm = self.vm(ctx)?;
        iothreads::change(&vm, live, change).await?;
        self.save_status(&vm).await
    }

    async fn live_tunables(
        &self,
        ctx: &DomainCtx,
        live: &DomainDef,
    ) -> DriverResult<Option<crate::drivers::LiveTunables>> {
        livetune::read(&*self.vm(ctx)?, live)
    }

    async fn cpu_stats(
        &self,
        ctx: &DomainCtx,
        live: &DomainDef,
    ) -> DriverResult<crate::drivers::CpuStats> {
        livetune::cpu_stats(&*self.vm(ctx)?, live)
    }

    async fn monitor_command(&self, ctx: &DomainCtx, cmd: &str, hmp: bool) -> DriverResult<String> {
        let vm = self.vm(ctx)?;
        passthrough::monitor(&vm, cmd, hmp).await
    }

    async fn agent_command(
        &self,
        ctx: &DomainCtx,
        cmd: &str,
        timeout: Option<std::time::Duration>,
    ) -> DriverResult<String> {
        let vm = self.vm(ctx)?;
        let timeout = timeout.unwrap_or(passthrough::AGENT_DEFAULT_TIMEOUT);
        passthrough::agent(agent_of(&vm)?, &vm.name, cmd, timeout).await
    }

    async fn guest_agent(
        &self,
        ctx: &DomainCtx,
        req: crate::drivers::guest_agent::AgentRequest,
    ) -> DriverResult<crate::drivers::guest_agent::AgentReply> {
        let vm = self.vm(ctx)?;
        let agent = agent_of(&vm)?;
        // as libvirt: a guest that has not opened the agent's port is told at once (QEMU's
        // word, not a recorded state, which a daemon restart may have left stale)
        if agent_ops::port_closed(&vm).await {
            return Err(DriverError::Timeout(agent_ops::NOT_CONNECTED.to_owned()));
        }
        agent_ops::run(&vm, agent, req, self.config.agent_timeout()).await
    }

    async fn open_console(
        &self,
        ctx: &DomainCtx,
        alias: &str,
        dev: &crate::model::devices::CharDevice,
    ) -> DriverResult<std::os::fd::OwnedFd> {
        self.vm(ctx)?;
        console::open_pty(&ctx.name, alias, dev)
    }

    async fn open_graphics(
        &self,
        ctx: &DomainCtx,
        index: u32,
        graphics: &crate::model::devices::Graphics,
        skipauth: bool,
    ) -> DriverResult<std::os::fd::OwnedFd> {
        let vm = self.vm(ctx)?;
        console::open_graphics(&vm, index, graphics, skipauth).await
    }

    /// vCPUs plugged or unplugged one by one until `count` are online (libvirt's choice
    /// of which); the status file keeps the new set.
    async fn set_vcpus(
        &self,
        ctx: &DomainCtx,
        _live: &DomainDef,
        count: u32,
    ) -> DriverResult<Option<Vec<crate::model::tuning::VcpuState>>> {
        let vm = self.vm(ctx)?;
        let (ids, enable) = vcpuplug::select(&vcpuplug::states(&vm.live()), count)?;
        let (states, r) = vcpuplug::change(&vm, &ids, enable).await;
        if !ids.is_empty() {
            self.save_status(&vm).await?;
        }
        r.map(|()| Some(states))
    }

    /// The balloon driver takes the new target; the guest gives memory back (or takes it)
    /// at its own pace, as with libvirt.
    async fn set_memory(&self, ctx: &DomainCtx, live: &DomainDef, kib: u64) -> DriverResult<()> {
        let has_balloon = live
            .devices
            .memballoon
            .as_ref()
            .is_some_and(|m| m.model != crate::model::devices::MemballoonModel::None);
        if !has_balloon {
            return Err(DriverError::NotSupported(format!(
                "domain '{}' has no memory balloon device, so its memory cannot change while \
                 it runs",
                ctx.name
            )));
        }
        let bytes = kib.saturating_mul(1024);
        self.vm(ctx)?
            .command("balloon", Some(serde_json::json!({ "value": bytes })))
            .await?;
        Ok(())
    }

    async fn stats(&self, ctx: &DomainCtx, _live: &DomainDef) -> DriverResult<Stats> {
        let vm = self.vm(ctx)?;
        let live = vm.live();
        let pid = vm.process.pid();
        let tick = stats::tick_ns();
        let mut out = Stats::new();
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            stats::cpu(&s, tick, &mut out);
        }
        let balloon = match live.devices.memballoon.as_ref() {
            Some(m) if m.model != crate::model::devices::MemballoonModel::None => {
                vm.command("query-balloon", None).await.ok()
            }
            _ => None,
        };
        let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| stats::rss_kib(&s));
        stats::balloon(&live, balloon.as_ref(), rss, &mut out);
        let cpus = vm.command("query-cpus-fast", None).await?;
        stats::vcpus(
            &live,
            &cpus,
            tick,
            &|tid| std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).ok(),
            &mut out,
        );
        let blockstats = vm.command("query-blockstats", None).await?;
        stats::blocks(&live, &blockstats, &mut out);
        if !live.tuning.iothreads.is_empty() {
            iothreads::stats(&vm.command("query-iothreads", None).await?, &mut out);
        }
        vm.perf.stats(&mut out);
        // user-mode NICs have no host device: ask the guest agent, briefly, if it runs
        let needs_agent = live
            .devices
            .interfaces
            .iter()
            .any(|i| i.iface_type == InterfaceType::User);
        let guest_view = match (&vm.agent, needs_agent) {
            (Some(a), true) => {
                let running = vm
                    .command("query-status", None)
                    .await
                    .ok()
                    .and_then(|s| s.get("running").and_then(Value::as_bool))
                    .unwrap_or(false);
                if running {
                    agent::interfaces_raw(a, Duration::from_secs(1)).await.ok()
                } else {
                    None
                }
            }
            _ => None,
        };
        stats::nets(
            &live,
            &|i| {
                let n = live.devices.interfaces.get(i)?;
                match n.iface_type {
                    InterfaceType::Bridge | InterfaceType::Ethernet | InterfaceType::Network => {
                        stats::tap_counters(n.target_dev.as_deref()?)
                    }
                    _ => agent::counters_for_mac(guest_view.as_ref()?, &n.mac.to_string()),
                }
            },
            &mut out,
        );
        Ok(out)
    }

    async fn snapshot_create(
        &self,
        ctx: &DomainCtx,
        req: SnapshotRequest<'_>,
    ) -> DriverResult<SnapshotOutcome> {
        self.snapshot_create_impl(ctx, req).await
    }

    async fn snapshot_revert(
        &self,
        ctx: &DomainCtx,
        snap: &SnapshotDef,
        _active_now: bool,
        target: RevertTarget,
        id: u32,
    ) -> DriverResult<RevertOutcome> {
        self.snapshot_revert_impl(ctx, snap, target, id).await
    }

    /// External snapshots are deleted by merging images, as libvirt 9.7+: refused when the
    /// snapshot's image has several images over it (see [`snapshot::merge`]).
    fn snapshot_delete_check(
        &self,
        snap: &SnapshotDef,
        metadata_only: bool,
        remaining: &ImageChains,
    ) -> DriverResult<()> {
        if metadata_only
            || crate::model::snapshot_kind(snap) == crate::model::SnapshotKind::Internal
        {
            return Ok(());
        }
        snapshot::merge::plan(snap, remaining).map(drop)
    }

    async fn snapshot_delete(
        &self,
        ctx: &DomainCtx,
        snap: &SnapshotDef,
        _active_now: bool,
        metadata_only: bool,
        remaining: &ImageChains,
    ) -> DriverResult<DeleteOutcome> {
        self.snapshot_delete_impl(ctx, snap, metadata_only, remaining)
            .await
    }

    async fn sweep_images(&self, ctx: &DomainCtx, referenced: &[String]) {
        self.sweep_images_impl(ctx, referenced).await
    }

    fn release_images(&self, ctx: &DomainCtx, images: &[String]) {
        let file = self.image_registry(&ctx.uuid);
        let mut listed = snapshot::registry::load(&file);
        let before = listed.len();
        listed.retain(|l| !images.contains(l));
        if listed.len() != before
            && let Err(e) = snapshot::registry::store(&file, &listed)
        {
            tracing::warn!("domain '{}': {}: {e}", ctx.name, file.display());
        }
    }

    /// The user's freeze: theirs to undo, so an unconfirmed thaw of ours stops being
    /// chased (see [`crate::drivers::quiesce`]).
    async fn fs_freeze(&self, ctx: &DomainCtx, mountpoints: &[String]) -> DriverResult<u32> {
        let vm = self.vm(ctx)?;
        let agent = agent_of(&vm)?;
        let _owned = vm.freeze.lock.lock().await;
        // the user's freeze replaces whatever thaw of ours QEMU still holds queued
        snapshot::quiesce::release_agent(&vm).await;
        let (cmd, args) = if mountpoints.is_empty() {
            ("guest-fsfreeze-freeze", None)
        } else {
            (
                "guest-fsfreeze-freeze-list",
                Some(json!({"mountpoints": mountpoints})),
            )
        };
        let r = agent
            .execute_tracked(cmd, args, self.config.agent_timeout())
            .await;
        if r.as_ref().is_ok() || r.as_ref().is_err_and(|e| e.sent) {
            let was_unconfirmed = vm.freeze.unconfirmed();
            vm.freeze.user_took_over();
            if was_unconfirmed {
                // a restarted daemon must not take this freeze for ours and thaw it
                ctx.report(DriverEvent::Warning(None));
                if let Err(e) = self.save_status(&vm).await {
                    tracing::error!("{e}");
                }
            }
        }
        let n = r.map_err(|e| agent_error(&vm, e.error))?;
        Ok(n.as_u64().unwrap_or(0) as u32)
    }

    async fn fs_thaw(&self, ctx: &DomainCtx, _mountpoints: &[String]) -> DriverResult<u32> {
        let vm = self.vm(ctx)?;
        let agent = agent_of(&vm)?;
        let _owned = vm.freeze.lock.lock().await;
        snapshot::quiesce::release_agent(&vm).await;
        let was_unconfirmed = vm.freeze.unconfirmed();
        let n = agent
            .fsfreeze_thaw(self.config.agent_timeout())
            .await
            .map_err(|e| agent_error(&vm, e))?;
        vm.freeze.user_took_over();
        if was_unconfirmed {
            // thawed, by the agent's own answer
            ctx.report(DriverEvent::Warning(None));
            if let Err(e) = self.save_status(&vm).await {
                tracing::error!("{e}");
            }
        }
        Ok(n.max(0) as u32)
    }

    /// The domain's images made for snapshots are the user's from now on, as its other
    /// images: their list goes, so nothing removes them.
    fn forget(&self, uuid: &Uuid) {
        lock(&self.vms).remove(uuid);
        if let Err(e) = snapshot::registry::store(&self.image_registry(uuid), &[]) {
            tracing::warn!("{e}");
        }
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

    async fn recover(&self, ctx: &DomainCtx) -> DriverResult<Recovered> {
        let path = status::path(&self.runtime, &ctx.uuid);
        let st = StatusFile::load(&path).map_err(failed)?;
        let forget = |why: String| {
            StatusFile::remove(&self.runtime, &st.uuid);
            self.swtpm.stop(&st.uuid);
            virtiofs::stop_all(&st.dir);
            let _ = std::fs::remove_dir_all(&st.dir);
            DriverError::Failed(why)
        };
        let proc = match self.spawner.adopt(st.pid, st.start_time) {
            Ok(p) => p,
            Err(e) => {
                Log::note(&st.log, "QEMU was gone when virtbus restarted");
                return Err(forget(format!(
                    "its QEMU exited while the daemon was down ({e})"
                )));
            }
        };
        let (qmp, events) = self
            .spawner
            .connect(&st.monitor, self.config.monitor_timeout())
            .await
            .map_err(|e| {
                DriverError::Failed(format!(
                    "QEMU process {} still runs but its monitor {} does not answer: {e}",
                    st.pid,
                    st.monitor.display()
                ))
            })?;
        let qs = qmp
            .execute("query-status", None, self.config.monitor_timeout())
            .await
            .map_err(|e| driver_error(&format!("domain '{}': query-status", ctx.name), e))?;
        let status = status_from_qmp(&qs);
        let vm = Vm::new(VmParts {
            uuid: st.uuid,
            name: st.live.name.clone(),
            id: st.id,
            qmp,
            agent: st.agent.clone(),
            process: proc,
            dir: st.dir.clone(),
            log: st.log.clone(),
            emulator: st.emulator.clone(),
            monitor: st.monitor.clone(),
            live: st.live.clone(),
            timeout: self.config.monitor_timeout(),
            in_shutdown: status.state == DomainState::Shutdown,
            dump_dir: self.dump_dir.clone(),
        });
        if matches!(
            qs.get("status").and_then(Value::as_str),
            Some("shutdown" | "prelaunch")
        ) {
            // powered off, or never finished starting, while no daemon watched: finish it
            vm.set_stopping(true);
            let _ = vm.process.terminate(self.config.grace(), false).await;
            Log::note(
                &st.log,
                "stopped by virtbus after a restart: the guest was not running",
            );
            return Err(forget(format!(
                "its guest was {} when the daemon restarted; QEMU stopped",
                qs.get("status").and_then(Value::as_str).unwrap_or_default()
            )));
        }
        if !st.live.perf.is_empty() {
            let mut l = lock(&vm.live);
            vm.perf.reopen(&mut l.perf, st.pid);
        }
        lock(&self.vms).insert(st.uuid, vm.clone());
        vm.block.keep_status_in(self.runtime.clone());
        monitor::watch(vm.clone(), events, ctx.clone(), self.cleanup_fn());
        Log::note(&st.log, "reattached by a restarted virtbus");
        if st.thaw_unconfirmed {
            // an earlier daemon could not confirm a thaw: keep the warning and the check
            vm.freeze.mark_unconfirmed();
            ctx.report(DriverEvent::Warning(Some(
                crate::drivers::quiesce::warning_text(
                    "the thaw was not confirmed before the daemon restarted",
                ),
            )));
        }
        if st.agent_held || st.thaw_unconfirmed {
            vm.agent_held
                .store(st.agent_held, std::sync::atomic::Ordering::SeqCst);
            snapshot::quiesce::drain_then_watch(
                self.freeze_agent(&vm),
                ctx.clone(),
                self.runtime.clone(),
            );
        }
        Ok(Recovered {
            live: vm.live(),
            id: st.id,
            status,
        })
    }

    async fn send_key(&self, ctx: &DomainCtx, keys: &[u32], hold_ms: u32) -> DriverResult<()> {
        misc::send_key(&*self.vm(ctx)?, keys, hold_ms).await
    }

    fn lifecycle_check(&self, def: &DomainDef) -> DriverResult<()> {
        misc::lifecycle_check(def)
    }

    async fn set_reboot_action(&self, ctx: &DomainCtx, live: &DomainDef) -> DriverResult<()> {
        misc::set_reboot_action(&*self.vm(ctx)?, live).await
    }

    async fn pm_suspend(
        &self,
        ctx: &DomainCtx,
        live: &DomainDef,
        target: super::misc::SuspendTarget,
    ) -> DriverResult<()> {
        let vm = self.vm(ctx)?;
        let agent = agent_of(&vm)?;
        misc::pm_suspend(&vm, agent, live, target, self.config.agent_timeout()).await
    }

    async fn pm_wakeup(&self, ctx: &DomainCtx) -> DriverResult<()> {
        misc::pm_wakeup(&*self.vm(ctx)?).await
    }

    async fn dirty_rate_calc(&self, ctx: &DomainCtx, secs: u32, mode: &str) -> DriverResult<()> {
        misc::dirty_rate_calc(&*self.vm(ctx)?, secs, mode).await
    }

    async fn dirty_rate(&self, ctx: &DomainCtx) -> DriverResult<super::misc::DirtyRate> {
        misc::dirty_rate(&*self.vm(ctx)?).await
    }

    async fn guest_info(&self, ctx: &DomainCtx, types: GuestInfoTypes) -> DriverResult<GuestInfo> {
        let vm = self.vm(ctx)?;
        let a = agent_of(&vm)?;
        agent::guest_info(a, types, self.config.agent_timeout())
            .await
            .map_err(|e| agent_error(&vm, e))
    }
}

/// An error of the guest agent of `vm`, as the core sees it.
fn agent_error(vm: &Vm, e: transport::Error) -> DriverError {
    driver_error(&format!("domain '{}': guest agent", vm.name), e)
}

fn agent_of(vm: &Vm) -> DriverResult<&qga::Agent> {
    vm.agent.as_ref().ok_or_else(|| {
        DriverError::NotSupported(format!(
            "domain '{}' has no guest agent channel (<channel type='unix'><target \
             type='virtio' name='{}'/></channel>)",
            vm.name,
            cmdline::AGENT_CHANNEL
        ))
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::drivers::qemu::fake::{self, Answer, FakeSpawner};

    /// Only a SPICE port chosen here, found taken by QEMU, starts the guest again.
    #[test]
    fn a_taken_spice_autoport_is_retried() {
        let taken = "QEMU failed to start: Spice: binding socket to 127.0.0.1:5900 failed\n\
                     Failed to open SPICE sockets";
        let auto = fake::domain("<graphics type='spice' autoport='yes'/>");
        let fixed = fake::domain("<graphics type='spice' port='5930' autoport='no'/>");
        let vnc = fake::domain("<graphics type='vnc' autoport='yes'/>");
        assert!(port_taken(&auto, taken));
        assert!(!port_taken(&auto, "QEMU failed to start: no such file"));
        assert!(!port_taken(&fixed, taken));
        assert!(!port_taken(&vnc, taken));
    }

    /// Two guests started together (or two displays of one) never get the same port,
    /// although neither QEMU listens yet.
    #[test]
    fn display_ports_handed_out_stay_reserved() {
        let a = free_port().expect("a port");
        let b = free_port().expect("another port");
        assert_ne!(a, b);
        assert!(a >= 5900 && b >= 5900);
    }

    /// A pty serial port, an automatic VNC port and a NIC whose link starts down: each
    /// needs a QMP step after spawn.
    const DEVICES: &str = "<serial type='pty'><target port='0'/></serial>\
        <graphics type='vnc' autoport='yes'/>\
        <interface type='user'><mac address='52:54:00:00:00:07'/><model type='virtio'/>\
        <link state='down'/></interface>";

    fn spawner() -> FakeSpawner {
        let s = FakeSpawner::default();
        s.monitor
            .answer(
                "query-chardev",
                Answer::ok(json!([
                    {"label": "charmonitor", "filename": "unix:/run/m.sock,server=on",
                     "frontend-open": true},
                    {"label": "charserial0", "filename": "pty:/dev/pts/9",
                     "frontend-open": false}
                ])),
            )
            .answer(
                "query-vnc",
                Answer::ok(json!({"enabled": true, "host": "0.0.0.0", "family": "ipv4",
                                  "service": "5907", "auth": "none"})),
            )
            .answer(
                "cont",
                Answer::ok(json!({})).with_event("RESUME", json!({})),
            );
        s
    }

    fn negotiation_and_queries() -> Vec<Value> {
        vec![
            json!({"execute": "qmp_capabilities", "arguments": {}}),
            json!({"execute": "query-chardev"}),
            json!({"execute": "query-vnc"}),
            json!({"execute": "set_link", "arguments": {"name": "net0", "up": false}}),
        ]
    }

    /// SetMemory on a running guest is one `balloon` command in bytes; a guest without a
    /// balloon device is refused before anything is sent.
    #[tokio::test]
    async fn set_memory_sets_the_balloon_target_in_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spawner = spawner();
        let qmp = spawner.monitor.clone();
        let driver = fake::driver(dir.path(), spawner.clone());
        let def = fake::domain(&format!("{DEVICES}<memballoon model='virtio'/>"));
        let (ctx, _sink) = fake::ctx(&def);
        driver.start(&ctx, &def, false, 3).await.expect("start");
        qmp.clear();
        driver
            .set_memory(&ctx, &def, 65_536)
            .await
            .expect("balloon");
        assert_eq!(
            qmp.log(),
            [json!({"execute": "balloon", "arguments": {"value": 67_108_864u64}})]
        );

        let plain = fake::domain("<memballoon model='none'/>");
        let e = driver
            .set_memory(&ctx, &plain, 65_536)
            .await
            .expect_err("no balloon");
        assert!(matches!(e, DriverError::NotSupported(_)), "{e:?}");
        assert_eq!(qmp.log().len(), 1, "nothing sent for the refusal");
    }

    #[tokio::test]
    async fn start_negotiates_queries_sets_up_then_continues() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spawner = spawner();
        let qmp = spawner.monitor.clone();
        let driver = fake::driver(dir.path(), spawner.clone());
        let def = fake::domain(DEVICES);
        let (ctx, sink) = fake::ctx(&def);
        let started = driver.start(&ctx, &def, false, 3).await.expect("start");
        let mut want = negotiation_and_queries();
        want.push(json!({"execute": "cont"}));
        assert_eq!(qmp.log(), want);
        let args = &spawner.spawned()[0];
        assert!(args.iter().any(|a| a == "-S"), "started paused: {args:?}");
        assert!(args.iter().any(|a| a == "-no-shutdown"), "{args:?}");
        let live = started.live.expect("live");
        assert_eq!(
            live.devices.serials[0].source_path.as_deref(),
            Some("/dev/pts/9")
        );
        assert_eq!(live.devices.graphics[0].port, Some(5907));
        // the RESUME our own `cont` caused is not news, but for monitor-event callbacks
        // (which get every QMP event, as libvirt's)
        let seen = lock(&sink.0).clone();
        assert!(
            matches!(&seen[..], [DriverEvent::Monitor(m)] if m.name == "RESUME"),
            "{seen:?}"
        );
        // a record to find this QEMU again was written before the guest ran
        assert!(status::path(&driver.runtime, &def.uuid).exists());
        assert_eq!(driver.leader_pid(&def.uuid), Some(fake::FAKE_PID as u32));
    }

    #[tokio::test]
    async fn start_paused_does_not_continue() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spawner = spawner();
        let qmp = spawner.monitor.clone();
        let driver = fake::driver(dir.path(), spawner);
        let def = fake::domain(DEVICES);
        let (ctx, _) = fake::ctx(&def);
        driver.start(&ctx, &def, true, 3).await.expect("start");
        assert_eq!(qmp.log(), negotiation_and_queries());
    }

    #[tokio::test]
    async fn start_without_qmp_steps_only_continues() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spawner = spawner();
        let qmp = spawner.monitor.clone();
        let driver = fake::driver(dir.path(), spawner);
        let def = fake::domain("");
        let (ctx, _) = fake::ctx(&def);
        driver.start(&ctx, &def, false, 3).await.expect("start");
        assert_eq!(qmp.commands(), ["qmp_capabilities", "cont"]);
    }

    #[tokio::test]
    async fn recover_adopts_reconnects_and_asks_the_status() {
        let dir = tempfile::tempdir().expect("tempdir");
        let def = fake::domain(DEVICES);
        let (ctx, _) = fake::ctx(&def);
        let first = fake::driver(dir.path(), spawner());
        first.start(&ctx, &def, false, 3).await.expect("start");
        // a restarted daemon: a new driver over the same runtime directory
        let spawner = FakeSpawner::default();
        let qmp = spawner.monitor.clone();
        qmp.answer(
            "query-status",
            Answer::ok(json!({"status": "running", "running": true})),
        );
        let second = fake::driver(dir.path(), spawner);
        let r = second.recover(&ctx).await.expect("recover");
        assert_eq!(r.id, 3);
        assert_eq!(r.status.state, DomainState::Running);
        assert_eq!(
            qmp.log(),
            [
                json!({"execute": "qmp_capabilities", "arguments": {}}),
                json!({"execute": "query-status"}),
            ]
        );
        assert!(second.vm(&ctx).is_ok());
    }

    #[tokio::test]
    async fn a_failed_setup_step_stops_qemu_and_forgets_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spawner = spawner();
        let qmp = spawner.monitor.clone();
        qmp.answer(
            "set_link",
            Answer::error("DeviceNotFound", "Device 'net0' not found"),
        );
        let driver = fake::driver(dir.path(), spawner);
        let def = fake::domain(DEVICES);
        let (ctx, _) = fake::ctx(&def);
        let e = driver
            .start(&ctx, &def, false, 3)
            .await
            .expect_err("set_link fails");
        assert!(
            matches!(&e, DriverError::Failed(m) if m.contains("QEMU failed to start")),
            "{e:?}"
        );
        // no `cont` after the failed step
        assert_eq!(qmp.log(), negotiation_and_queries());
        assert!(driver.vm(&ctx).is_err(), "forgotten");
        assert!(!status::path(&driver.runtime, &def.uuid).exists());
    }
}
