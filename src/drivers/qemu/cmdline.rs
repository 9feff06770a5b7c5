//! The QEMU command line for a domain definition, and the live definition that goes with it.
//!
//! Disks use `-blockdev` with explicit node names (`vb-<target>-file` for the protocol node,
//! `vb-<target>` for the format node) so that later QMP commands (snapshots) can name them.
//! Every device gets libvirt's alias as its QEMU id. Anything in the definition that this
//! module cannot make QEMU do is refused, naming the element, rather than dropped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::caps::Caps;
use crate::model::{
    AddressType, BootDev, CpuMode, DeviceInfo, DomainDef, FeaturePolicy, LifecycleAction, OsType,
    devices::{
        CharDevice, CharSourceMode, CharSourceType, Controller, ControllerType, Disk, DiskBus,
        DiskCache, DiskDevice, DiskFormat, DiskType, GraphicsListen, GraphicsType, InputBus,
        InputType, InterfaceType, LinkState, ListenType, MemballoonModel, NetDriverName,
        RngBackend, RngModel, StartupPolicy, TcpProtocol, Video, VideoModel, VideoType,
        WatchdogAction, WatchdogModel,
    },
};

/// Longest unix socket path the kernel takes (`sun_path` less its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// The port name of the QEMU guest agent channel.
pub const AGENT_CHANNEL: &str = "org.qemu.guest_agent.0";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CmdlineError {
    /// Something in the definition QEMU (or this driver) cannot do.
    #[error("{0}")]
    NotSupported(String),
    /// Something in the definition that is wrong for QEMU.
    #[error("{0}")]
    Invalid(String),
}

type Result<T> = std::result::Result<T, CmdlineError>;

fn unsupported<T>(what: impl Into<String>) -> Result<T> {
    Err(CmdlineError::NotSupported(what.into()))
}

/// Which accelerator runs the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Tcg,
    Kvm,
}

impl Accel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcg => "tcg",
            Self::Kvm => "kvm",
        }
    }
}

/// What the command line depends on besides the definition.
pub struct Env<'a> {
    pub caps: &'a Caps,
    pub accel: Accel,
    /// The domain's runtime directory (monitor and channel sockets).
    pub dir: &'a Path,
    /// The domain's id, for host-side names (tap devices).
    pub id: u32,
    /// A free TCP port for SPICE autoport; asked only when needed.
    pub free_port: &'a (dyn Fn() -> Option<u16> + Sync),
    /// What the host offers (huge pages, NUMA nodes, cgroups); `None` at define, where
    /// only what can never start is refused.
    pub host: Option<&'a Host>,
}

/// A step after QEMU started paused and before the guest runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Setup {
    /// `set_link` down for a NIC whose definition says `<link state='down'/>`.
    LinkDown { device: String },
    /// Put tap `tap` into bridge `bridge` and bring it up.
    Bridge { tap: String, bridge: String },
    /// Bring tap `tap` up (an `ethernet` interface libvirt would manage).
    TapUp { tap: String },
    /// Set the MTU of tap `tap` (`<mtu size>`), before it joins a bridge.
    Mtu { tap: String, mtu: u32 },
    /// Shape tap `tap`'s traffic (`<bandwidth>`).
    Bandwidth {
        tap: String,
        bandwidth: crate::model::devices::Bandwidth,
    },
    /// Set the password of a display protocol (`vnc`, `spice`).
    Password {
        protocol: &'static str,
        secret: String,
    },
    /// Deflate the guest to `currentMemory` (bytes).
    Balloon { bytes: u64 },
    /// Enable guest memory statistics every `period` seconds.
    BalloonStats { period: u32 },
    /// A QMP command with its arguments (disk throttling).
    Qmp { command: &'static str, args: Value },
}

/// Which device a pty belongs to, to write its path into the live definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PtyOf {
    Serial(usize),
    Parallel(usize),
    Console(usize),
    Channel(usize),
}

/// A command line and what to do and record around it.
#[derive(Debug, Clone)]
pub struct Plan {
    pub args: Vec<String>,
    /// The live definition: the input with aliases, generated paths and defaults filled in.
    pub live: DomainDef,
    pub monitor: PathBuf,
    /// The guest agent's socket, when the definition has an agent channel QEMU listens on.
    pub agent: Option<PathBuf>,
    /// Chardev ids of ptys, whose paths QEMU tells after start.
    pub ptys: Vec<(String, PtyOf)>,
    /// Index of a VNC graphics whose port QEMU picks.
    pub vnc_auto: Option<usize>,
    pub setup: Vec<Setup>,
    /// Extra environment for QEMU (`<qemu:env>`).
    pub env: Vec<(String, String)>,
    /// virtiofsd daemons to run before QEMU starts and stop after it ends.
    pub virtiofsd: Vec<Virtiofsd>,
}

/// Escape a value for QEMU's `key=value,...` syntax.
fn esc(s: &str) -> String {
    s.replace(',', ",,")
}

fn on_off(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

/// A device's alias: the user's (`ua-...`) or the one libvirt would assign.
fn alias(info: &DeviceInfo, default: String) -> String {
    match &info.alias {
        Some(a) if a.starts_with("ua-") => a.clone(),
        _ => default,
    }
}

/// `,addr=0xS.F` for a PCI address on bus 0; other buses need bridges this driver does not
/// create.
fn pci_addr(info: &DeviceInfo, what: &str) -> Result<String> {
    let Some(a) = &info.address else {
        return Ok(String::new());
    };
    if a.kind != AddressType::Pci {
        return unsupported(format!(
            "{what}: address type '{}' (only 'pci' addresses are supported here)",
            a.kind
        ));
    }
    let num = |k: &str| -> Result<u64> {
        match a.get(k) {
            None => Ok(0),
            Some(v) => parse_num(v).ok_or_else(|| {
                CmdlineError::Invalid(format!("{what}: PCI address {k} '{v}' is not a number"))
            }),
        }
    };
    if num("domain")? != 0 {
        return unsupported(format!(
            "{what}: PCI address on domain {} (only domain 0 is supported)",
            num("domain")?
        ));
    }
    let (slot, function) = (num("slot")?, num("function")?);
    if slot > 31 || function > 7 {
        return Err(CmdlineError::Invalid(format!(
            "{what}: PCI slot {slot} function {function} is out of range"
        )));
    }
    // a bus other than the root is the root port (or bridge) whose index it names
    let bus = num("bus")?;
    let mut s = if bus == 0 {
        String::new()
    } else {
        format!(",bus=pci.{bus}")
    };
    s.push_str(&format!(",addr={slot:#x}.{function:x}"));
    if a.get("multifunction") == Some("on") {
        s.push_str(",multifunction=on");
    }
    Ok(s)
}

/// Every PCI address sits on a bus a PCI controller of the definition provides, in a slot
/// that bus has, once.
fn check_pci_buses(def: &DomainDef) -> Result<()> {
    super::pci::check(def).map_err(|e| match e {
        crate::drivers::DriverError::InvalidArgument(m) => CmdlineError::Invalid(m),
        other => CmdlineError::Invalid(other.to_string()),
    })
}

fn parse_num(v: &str) -> Option<u64> {
    match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => v.parse().ok(),
    }
}

/// `drive` address attribute, default 0.
fn drive_attr(info: &DeviceInfo, key: &str) -> Option<u64> {
    info.address
        .as_ref()
        .filter(|a| a.kind == AddressType::Drive)
        .and_then(|a| a.get(key))
        .and_then(parse_num)
}

pub use crate::model::defaults::disk_index;

/// Node names must start with a letter and hold letters, digits, `-`, `.`, `_`, up to 31.
pub fn node_base(dev: &str) -> Result<String> {
    let ok = dev.len() <= 24
        && dev
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
    if ok {
        Ok(format!("vb-{dev}"))
    } else {
        unsupported(format!(
            "disk target '{dev}': a QEMU node name needs up to 24 letters, digits, '-' or '_'"
        ))
    }
}

fn socket_path(p: PathBuf) -> Result<PathBuf> {
    if p.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(CmdlineError::Invalid(format!(
            "socket path {} is longer than {MAX_SOCKET_PATH} bytes; use a shorter runtime \
             directory",
            p.display()
        )));
    }
    Ok(p)
}

struct Builder<'a> {
    env: &'a Env<'a>,
    args: Vec<String>,
    live: DomainDef,
    q35: bool,
    agent: Option<PathBuf>,
    ptys: Vec<(String, PtyOf)>,
    vnc_auto: Option<usize>,
    setup: Vec<Setup>,
}

impl Builder<'_> {
    fn arg(&mut self, a: &str, v: impl Into<String>) {
        self.args.push(a.to_owned());
        self.args.push(v.into());
    }

    fn device(&mut self, v: impl Into<String>) {
        self.arg("-device", v);
    }

    /// A device type this emulator must have.
    fn need(&self, dev: &str, what: &str) -> Result<()> {
        if self.env.caps.has_device(dev) {
            Ok(())
        } else {
            unsupported(format!(
                "{what}: {} has no device '{dev}'",
                self.env.caps.emulator.display()
            ))
        }
    }
}

/// Build the command line for `def`.
pub fn build(def: &DomainDef, env: &Env<'_>) -> Result<Plan> {
    // <qemu:capabilities> changes what the emulator is taken to have, for this start only
    let adjusted = qemu_ns::adjusted_caps(env.caps, &def.qemu_tweaks)?;
    let env_adjusted;
    let env = match &adjusted {
        Some(caps) => {
            env_adjusted = Env { caps, ..*env };
            &env_adjusted
        }
        None => env,
    };
    let caps = env.caps;
    let mut b = Builder {
        env,
        args: Vec::new(),
        live: def.clone(),
        q35: false,
        agent: None,
        ptys: Vec::new(),
        vnc_auto: None,
        setup: Vec::new(),
    };
    check_top(def)?;
    check_pci_buses(def)?;
    let arch = def.os.arch.as_deref().unwrap_or(caps.arch.as_str());
    // libvirt's i686 is QEMU's i386 target, and the x86_64 target runs i686 guests too
    let same =
        arch == caps.arch || (arch == "i686" && matches!(caps.arch.as_str(), "i386" | "x86_64"));
    if !same {
        return unsupported(format!(
            "architecture '{arch}': emulator {} runs '{}' guests",
            caps.emulator.display(),
            caps.arch
        ));
    }
    let machine = match def.os.machine.as_deref() {
        Some(m) => caps.machine(m).ok_or_else(|| {
            CmdlineError::NotSupported(format!(
                "machine type '{m}' is not offered by {} (it offers: {})",
                caps.emulator.display(),
                caps.machines
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?,
        None => caps.default_machine().ok_or_else(|| {
            CmdlineError::NotSupported(format!(
                "{} has no default machine type; name one in <os><type machine=...>",
                caps.emulator.display()
            ))
        })?,
    }
    .name
    .clone();
    b.q35 = machine.contains("q35");
    b.live.os.machine = Some(machine.clone());
    b.live.os.arch = Some(caps.arch.clone());
    if b.live.devices.emulator.is_none() {
        b.live.devices.emulator = Some(caps.emulator.display().to_string());
    }
    if !caps.has_accel(env.accel.as_str()) {
        return unsupported(format!(
            "accelerator '{}' is not compiled into {}",
            env.accel.as_str(),
            caps.emulator.display()
        ));
    }

    let monitor = socket_path(env.dir.join("monitor.sock"))?;
    b.arg(
        "-name",
        format!("guest={},debug-threads=on", esc(&def.name)),
    );
    b.args.push("-S".into());
    b.arg("-uuid", def.uuid.hyphenated().to_string());
    for a in ["-no-user-config", "-nodefaults", "-no-shutdown"] {
        b.args.push(a.into());
    }
    b.arg("-msg", "timestamp=on");
    b.arg(
        "-chardev",
        format!(
            "socket,id=charmonitor,path={},server=on,wait=off",
            esc(&monitor.display().to_string())
        ),
    );
    b.arg("-mon", "chardev=charmonitor,id=monitor,mode=control");

    let mut m = format!(
        "{machine},usb=off,dump-guest-core={}",
        on_off(def.dump_core == Some(true))
    );
    if !def.features.acpi {
        m.push_str(",acpi=off");
    }
    if let Some(s) = def.features.vmport {
        m.push_str(&format!(",vmport={}", on_off(s.enabled())));
    }
    if let Some(s) = def.features.smm {
        m.push_str(&format!(",smm={}", on_off(s.enabled())));
    }
    m.push_str(&features::machine_props(def, env.accel)?);
    m.push_str(&sound::machine_props(def)?);
    m.push_str(&memdev::machine_props(def));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let clock = clock::clock_args(def, env.accel, now, clock::local_offset(now))?;
    if clock.hpet_off {
        m.push_str(",hpet=off");
    }
    let firmware = pflash::build(def, b.q35)?;
    b.args.extend(firmware.args);
    m.push_str(&firmware.machine_props);
    m.push_str(&tuning::machine_props(def, env)?);
    m.push_str(&sev::machine_props(def));
    b.arg("-machine", m);
    b.arg(
        "-accel",
        format!(
            "{}{}",
            env.accel.as_str(),
            features::accel_props(def, env.accel)?
        ),
    );
    let mut flags = features::cpu_flags(def, env.accel)?;
    if platform::hyperv_crash(def) {
        flags.push_str(",hv-crash=on");
    }
    match cpu_arg(def, env.accel)? {
        Some(cpu) => b.arg("-cpu", cpu + &flags),
        // flags need a model: QEMU's default one, named as libvirt does
        None if !flags.is_empty() => {
            let model = if caps.arch == "i386" || arch == "i686" {
                "qemu32"
            } else {
                "qemu64"
            };
            b.arg("-cpu", format!("{model}{flags}"));
        }
        // an i686 guest of the x86_64 emulator gets a 32-bit CPU, as in libvirt
        None if arch == "i686" && caps.arch == "x86_64" => b.arg("-cpu", "qemu32"),
        None => {}
    }
    if let Some(g) = firmware.global {
        b.arg("-global", g);
    }
    tuning::memory(&mut b, def)?;
    b.arg("-smp", smp_arg(def));
    tuning::after_smp(&mut b, def, &machine)?;
    b.arg("-rtc", clock.rtc);
    if let (Some(adj), Some(live)) = (clock.utc_adjustment, b.live.clock.as_mut()) {
        // a localtime basis is folded in at start, as libvirt records it
        live.adjustment = Some(adj);
        live.basis = Some(crate::model::ClockBasis::Utc);
    }
    if let Some(g) = clock.pit_global {
        b.arg("-global", g);
    }
    for g in features::globals(def, b.q35)? {
        b.arg("-global", g);
    }
    if let Some(pm) = &def.pm {
        let dev = if b.q35 { "ICH9-LPC" } else { "PIIX4_PM" };
        for (name, v) in [("s3", pm.suspend_to_mem), ("s4", pm.suspend_to_disk)] {
            if let Some(on) = v {
                b.arg("-global", format!("{dev}.disable_{name}={}", u8::from(!on)));
            }
        }
    }
    let mut boot = format!("{}strict=on", misc::boot_prefix(def));
    if !def.os.boot.is_empty() {
        let order: String = def
            .os
            .boot
            .iter()
            .map(|d| match d {
                BootDev::Fd => 'a',
                BootDev::Hd => 'c',
                BootDev::Cdrom => 'd',
                BootDev::Network => 'n',
            })
            .collect();
        boot.push_str(&format!(",order={order}"));
    }
    if let Some(menu) = def.os.bootmenu {
        boot.push_str(&format!(",menu={}", on_off(menu.enable)));
        if let Some(t) = menu.timeout {
            boot.push_str(&format!(",splash-time={t}"));
        }
    }
    b.arg("-boot", boot);
    if let Some(k) = &def.os.kernel {
        b.arg("-kernel", k.clone());
    }
    if let Some(i) = &def.os.initrd {
        b.arg("-initrd", i.clone());
    }
    if let Some(c) = &def.os.cmdline {
        b.arg("-append", c.clone());
    }
    if matches!(def.on_reboot, Some(LifecycleAction::Destroy)) {
        // the guest's reboot becomes a shutdown the core turns into a stop
        b.args.push("-no-reboot".into());
    }
    platform::panics(&mut b, def)?;
    misc::devices(&mut b, def)?;
    if !display::has_local(def) {
        b.arg("-display", "none");
    }

    controllers(&mut b, def)?;
    memdev::devices(&mut b, def)?;
    usb::hubs(&mut b, def)?;
    let virtiofsd = fs::filesystems(&mut b, def)?;
    disks(&mut b, def)?;
    interfaces(&mut b, def)?;
    chardevs(&mut b, def)?;
    smartcard::devices(&mut b, def)?;
    inputs(&mut b, def)?;
    tpm::tpms(&mut b, def)?;
    graphics(&mut b, def)?;
    videos(&mut b, def)?;
    usb::redirdevs(&mut b, def)?;
    misc_devices(&mut b, def)?;
    platform::shmems(&mut b, def)?;
    platform::iommu(&mut b, def)?;
    platform::vsock(&mut b, def)?;
    sev::object(&mut b, def)?;
    // libvirt's QEMU namespace: the user's own arguments last, unchecked (the domain is
    // tainted for it), and its environment
    let mut env: Vec<(String, String)> = clock
        .tz
        .iter()
        .map(|tz| ("TZ".into(), tz.clone()))
        .collect();
    env.extend(sound::audio_env(def));
    env.extend(display::env(def));
    qemu_ns::apply_overrides(&mut b.args, &def.qemu_tweaks)?;
    if let Some(q) = &def.qemu_commandline {
        b.args.extend(q.args.iter().cloned());
        env.extend(
            q.env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().unwrap_or_default())),
        );
    }

    super::live::prepare(&mut b.live)?;
    Ok(Plan {
        args: b.args,
        live: b.live,
        monitor,
        agent: b.agent,
        ptys: b.ptys,
        vnc_auto: b.vnc_auto,
        setup: b.setup,
        env,
        virtiofsd,
    })
}

/// Definition-wide refusals.
fn check_top(def: &DomainDef) -> Result<()> {
    if def.os.os_type != OsType::Hvm {
        return unsupported(format!(
            "<os><type>{}</type>: QEMU runs 'hvm' guests",
            def.os.os_type
        ));
    }
    if def.os.init.is_some() || !def.os.init_args.is_empty() {
        return unsupported("<os><init> (container init) in a QEMU domain");
    }
    tuning::check(def)?;
    if def.tuning.memtune.is_set() && !super::cgtune::Groups::locate(&def.uuid).v1_memory() {
        return unsupported("<memtune> (cgroup memory limits of a QEMU process)");
    }
    if def.tuning.blkiotune.is_set() && !super::cgtune::Groups::locate(&def.uuid).v1_blkio() {
        return unsupported("<blkiotune> (cgroup block I/O limits of a QEMU process)");
    }
    if def.resource_partition.is_some() {
        return unsupported("<resource><partition> (cgroup partitions)");
    }
    if def.features.hap.is_some() {
        return unsupported("<features><hap> (a Xen feature)");
    }
    if def.current_memory() < def.memory_kib
        && def
            .devices
            .memballoon
            .as_ref()
            .is_none_or(|m| m.model == MemballoonModel::None)
    {
        return unsupported("<currentMemory> below <memory> without a memballoon device");
    }
    for (name, action) in [
        ("on_poweroff", def.on_poweroff),
        ("on_reboot", def.on_reboot),
        ("on_crash", def.on_crash),
    ] {
        let bad = match action {
            None | Some(LifecycleAction::Destroy | LifecycleAction::Restart) => false,
            Some(LifecycleAction::Preserve) => name != "on_crash",
            Some(
                LifecycleAction::RenameRestart
                | LifecycleAction::CoredumpDestroy
                | LifecycleAction::CoredumpRestart,
            ) => true,
        };
        if let Some(a) = action.filter(|_| bad) {
            return unsupported(format!("<{name}>{a}</{name}>"));
        }
    }
    Ok(())
}

fn cpu_arg(def: &DomainDef, accel: Accel) -> Result<Option<String>> {
    let Some(cpu) = &def.cpu else {
        return Ok(None);
    };
    if cpu.vendor.is_some() {
        return unsupported("<cpu><vendor>");
    }
    let mut s = match cpu.mode.unwrap_or(CpuMode::Custom) {
        CpuMode::HostPassthrough | CpuMode::HostModel if accel == Accel::Tcg => {
            return unsupported(format!(
                "<cpu mode='{}'> under TCG (it needs KVM)",
                cpu.mode.map(|m| m.as_str()).unwrap_or_default()
            ));
        }
        CpuMode::HostPassthrough | CpuMode::HostModel => "host".to_owned(),
        CpuMode::Maximum => "max".to_owned(),
        CpuMode::Custom => match &cpu.model {
            Some(m) => m.name.clone(),
            None if cpu.features.is_empty() => return Ok(None),
            None => return unsupported("<cpu><feature> without a <model>"),
        },
    };
    if let Some(m) = cpu.migratable {
        if matches!(cpu.mode, Some(CpuMode::HostPassthrough | CpuMode::Maximum)) {
            s.push_str(&format!(",migratable={}", on_off(m)));
        } else {
            return unsupported("<cpu migratable> outside host-passthrough and maximum modes");
        }
    }
    for f in &cpu.features {
        let on = !matches!(
            f.policy,
            Some(FeaturePolicy::Disable | FeaturePolicy::Forbid)
        );
        s.push_str(&format!(",{}={}", f.name, on_off(on)));
    }
    if cpu.check == Some(crate::model::CpuCheck::Full) {
        s.push_str(",enforce=on");
    }
    Ok(Some(s))
}

fn smp_arg(def: &DomainDef) -> String {
    let max = def.max_vcpus;
    let mut s = format!("{},maxcpus={max}", def.vcpus());
    match def.cpu.as_ref().and_then(|c| c.topology) {
        Some(t) => {
            s.push_str(&format!(",sockets={}", t.sockets));
            if let Some(d) = t.dies {
                s.push_str(&format!(",dies={d}"));
            }
            if let Some(c) = t.clusters {
                s.push_str(&format!(",clusters={c}"));
            }
            s.push_str(&format!(",cores={},threads={}", t.cores, t.threads));
        }
        None => s.push_str(&format!(",sockets={max},cores=1,threads=1")),
    }
    s
}

/// What other devices need from controllers, and the controllers themselves.
fn controllers(b: &mut Builder<'_>, def: &DomainDef) -> Result<()> {
    // the virtio-serial controllers the channels and virtio consoles sit on
    let mut needs_vserial: std::collections::BTreeSet<u64> = def
        .devices
        .channels
        .iter()
        .chain(def.devices.consoles.iter())
        .filter(|c| c.target_type.as_deref() == Some("virtio"))
        .map(|c| vserial_controller(&c.info))
        .collect();
    let needs_usb = def
        .devices
        .inputs
        .iter()
        .any(|i| input_bus(i.input_type, i.bus) == InputBus::Usb)
        || !def.devices.redirdevs.is_empty()
        || !def.devices.hubs.is_empty()
        || !def.devices.smartcards.is_empty()
        || def
            .devices
            .controllers
            .iter()
            .any(|c| c.controller_type == ControllerType::Ccid);
    let mut have_usb = false;
    // PCI controllers first, in index order: other devices sit behind them
    pci::controllers(b, def)?;
    for (i, c) in def.devices.controllers.iter().enumerate() {
        let what = format!("<controller type='{}'>", c.controller_type);
        if !c.driver.is_empty() && c.controller_type != ControllerType::Scsi {
            return unsupported(format!("{what} <driver> tuning"));
        }
        let idx = c.index.unwrap_or(0);
        match c.controller_type {
            ControllerType::Pci => {
                if let Some(k) = c.pcihole64_kib {
                    let host = if b.q35 {
                        "q35-pcihost"
                    } else {
                        "i440FX-pcihost"
                    };
                    b.arg("-global", format!("{host}.pci-hole64-size={k}K"));
                }
            }
            ControllerType::Ide => {
                if b.q35 || idx != 0 {
                    return unsupported(format!("{what} index {idx} on this machine"));
                }
                b.live.devices.controllers[i].info.alias = Some("ide".into());
            }
            ControllerType::Sata => {
                if b.q35 {
                    if idx != 0 {
                        return unsupported(format!("{what} index {idx} on a q35 machine"));
                    }
                    b.live.devices.controllers[i].info.alias = Some("ide".into());
                } else {
                    b.need("ich9-ahci", &what)?;
                    let a = alias(&c.info, format!("sata{idx}"));
                    let addr = pci_addr(&c.info, &what)?;
                    b.device(format!("ich9-ahci,id={a}{addr}"));
                    b.live.devices.controllers[i].info.alias = Some(a);
                }
            }
            ControllerType::Usb => {
                if c.model.as_deref() == Some("none") && needs_usb {
                    return unsupported("USB devices with <controller type='usb' model='none'>");
                }
                have_usb |= usb::controller(b, def, i, c)?;
            }
            ControllerType::VirtioSerial => {
                let dev = match c.model.as_deref() {
                    None | Some("virtio") => "virtio-serial-pci",
                    Some("virtio-transitional") => "virtio-serial-pci-transitional",
                    Some(_) => "virtio-serial-pci-non-transitional",
                };
                b.need(dev, &what)?;
                let a = alias(&c.info, format!("virtio-serial{idx}"));
                let v = virtio::props(&c.virtio, true, &what)?;
                let mut s = format!("{dev}{v},id={a}{}", pci_addr(&c.info, &what)?);
                if let Some(p) = c.ports {
                    s.push_str(&format!(",max_ports={p}"));
                }
                if let Some(v) = c.vectors {
                    s.push_str(&format!(",vectors={v}"));
                }
                b.device(s);
                b.live.devices.controllers[i].info.alias = Some(a);
                needs_vserial.remove(&u64::from(idx));
            }
            // the PC's built-in floppy controller; on q35 the floppy drives bring an ISA one
            ControllerType::Fdc => {
                if idx != 0 {
                    return unsupported(format!("{what} index {idx} (a machine has one)"));
                }
                b.live.devices.controllers[i].info.alias = Some("fdc0".into());
            }
            ControllerType::Scsi => storage::scsi_controller(b, i, c)?,
            // CCID readers are USB devices: `smartcard::devices` adds them
            ControllerType::Ccid => {}
            other => return unsupported(format!("<controller type='{other}'>")),
        }
    }
    for idx in needs_vserial {
        b.need("virtio-serial-pci", "virtio channels")?;
        let a = format!("virtio-serial{idx}");
        b.device(format!("virtio-serial-pci,id={a}"));
        let mut c = implicit_controller(ControllerType::VirtioSerial, &a);
        c.index = Some(idx as u32);
        b.live.devices.controllers.push(c);
    }
    if needs_usb && !have_usb {
        let dev = if b.q35 { "qemu-xhci" } else { "piix3-usb-uhci" };
        b.need(dev, "USB devices")?;
        b.device(format!("{dev},id=usb"));
        let mut c = implicit_controller(ControllerType::Usb, "usb");
        c.model = Some(if b.q35 { "qemu-xhci" } else { "piix3-uhci" }.into());
        b.live.devices.controllers.push(c);
    }
    Ok(())
}

/// The index of the virtio-serial controller a channel or console names (0 when none).
fn vserial_controller(info: &crate::model::DeviceInfo) -> u64 {
    match &info.address {
        Some(a) if a.kind == AddressType::VirtioSerial => {
            a.get("controller").and_then(parse_num).unwrap_or(0)
        }
        _ => 0,
    }
}

/// The QEMU bus of virtio-serial controller `idx`: its alias's `.0`.
fn vserial_bus(b: &Builder<'_>, idx: u64) -> String {
    let alias = b
        .live
        .devices
        .controllers
        .iter()
        .find(|c| {
            c.controller_type == ControllerType::VirtioSerial
                && u64::from(c.index.unwrap_or(0)) == idx
        })
        .and_then(|c| c.info.alias.clone())
        .unwrap_or_else(|| format!("virtio-serial{idx}"));
    format!("{alias}.0")
}

fn implicit_controller(t: ControllerType, alias: &str) -> Controller {
    let mut c = Controller::new(t);
    c.index = Some(0);
    c.info.alias = Some(alias.into());
    c
}

/// What a `<driver cache=...>` mode means for QEMU: (O_DIRECT, no flushes, the device's
/// write cache).
pub fn cache_flags(cache: Option<DiskCache>) -> (bool, bool, Option<bool>) {
    match cache {
        None | Some(DiskCache::Default) => (false, false, None),
        Some(DiskCache::None) => (true, false, Some(true)),
        Some(DiskCache::Writeback) => (false, false, Some(true)),
        Some(DiskCache::Writethrough) => (false, false, Some(false)),
        Some(DiskCache::Directsync) => (true, false, Some(false)),
        Some(DiskCache::Unsafe) => (false, true, Some(true)),
    }
}

/// The two block nodes of a disk's image at `path`: `<node>-file` (the file or block
/// device) and `<node>` (its format) on top, as `-blockdev` and `blockdev-add` take them.
/// Shared by the command line, hot-plug and media changes, so that a drive's nodes are the
/// same however it got its image.
pub fn image_nodes(d: &Disk, path: &str, node: &str, what: &str) -> Result<(Value, Value)> {
    let drv = d.driver.clone().unwrap_or_default();
    let format = match drv.format {
        None | Some(DiskFormat::Raw | DiskFormat::Iso) => "raw",
        Some(DiskFormat::Qcow2) => "qcow2",
        Some(f) => return unsupported(format!("{what}: image format '{f}'")),
    };
    let readonly = d.readonly || d.device == DiskDevice::Cdrom;
    let (direct, no_flush, _) = cache_flags(drv.cache);
    let net = d.source.as_ref().and_then(|s| s.network.as_ref());
    let mut file = match (d.disk_type, net) {
        (DiskType::Network, Some(n)) => storage::network_node(d, n, what)?,
        (DiskType::Network, None) => {
            return Err(CmdlineError::Invalid(format!(
                "{what}: no network <source>"
            )));
        }
        (t, _) => {
            let mut file = Map::new();
            let driver = if t == DiskType::Block {
                "host_device"
            } else {
                "file"
            };
            file.insert("driver".into(), json!(driver));
            file.insert("filename".into(), json!(path));
            file
        }
    };
    file.insert("node-name".into(), json!(format!("{node}-file")));
    file.insert("auto-read-only".into(), json!(true));
    if let Some(io) = drv.io.filter(|_| net.is_none()) {
        file.insert("aio".into(), json!(io.as_str()));
    }
    let mut fmt = Map::new();
    fmt.insert("node-name".into(), json!(node));
    fmt.insert("driver".into(), json!(format));
    fmt.insert("file".into(), json!(format!("{node}-file")));
    for m in [&mut file, &mut fmt] {
        m.insert("read-only".into(), json!(readonly));
        if direct || no_flush {
            m.insert(
                "cache".into(),
                json!({"direct": direct, "no-flush": no_flush}),
            );
        }
        if let Some(dc) = drv.discard {
            m.insert("discard".into(), json!(dc.as_str()));
        }
    }
    if let Some(z) = drv.detect_zeroes {
        fmt.insert("detect-zeroes".into(), json!(z.as_str()));
    }
    Ok((Value::Object(file), Value::Object(fmt)))
}

fn disks(b: &mut Builder<'_>, def: &DomainDef) -> Result<()> {
    storage::check_iotune(&def.devices.disks)?;
    for (i, d) in def.devices.disks.iter().enumerate() {
        let dev = &d.target_dev;
        let what = format!("disk '{dev}'");
        let bus = match d.target_bus {
            Some(bus) => bus,
            None if d.device == DiskDevice::Floppy => DiskBus::Fdc,
            None if dev.starts_with("vd") => DiskBus::Virtio,
            None if dev.starts_with("hd") => DiskBus::Ide,
            None if dev.starts_with("sd") => DiskBus::Sata,
            None => {
                return Err(CmdlineError::Invalid(format!(
                    "{what}: name a bus in <target bus=...>"
                )));
            }
        };
        let cdrom = d.device == DiskDevice::Cdrom;
        let floppy = d.device == DiskDevice::Floppy;
        if floppy != (bus == DiskBus::Fdc) {
            return unsupported(format!(
                "{what}: {} on bus '{bus}' (floppy drives, and only they, sit on 'fdc')",
                d.device
            ));
        }
        let node = node_base(dev)?;
        let idx = disk_index(dev).ok_or_else(|| {
            CmdlineError::Invalid(format!(
                "{what}: a target name is a prefix (vd, sd, hd) and letters, like 'vda'"
            ))
        })?;
        let drv = d.driver.clone().unwrap_or_default();
        if drv.name.as_deref().is_some_and(|n| n != "qemu") {
            return unsupported(format!(
                "{what}: driver name '{}'",
                drv.name.as_deref().unwrap_or_default()
            ));
        }
        let mut path = d.source.as_ref().and_then(|s| s.path.clone());
        if let Some(p) = &path
            && d.source.as_ref().and_then(|s| s.startup_policy) == Some(StartupPolicy::Optional)
            && !Path::new(p).exists()
        {
            tracing::info!("{what}: optional source {p} is missing; starting without it");
            path = None;
            b.live.devices.disks[i].source = None;
        }
        let write_cache = cache_flags(drv.cache).2;
        let mut has_medium = false;
        let network = d.source.as_ref().is_some_and(|s| s.network.is_some());
        let mut top = node.clone();
        if path.is_some() || network {
            has_medium = true;
            let (file, fmt) = image_nodes(d, path.as_deref().unwrap_or(""), &node, &what)?;
            b.arg("-blockdev", file.to_string());
            b.arg("-blockdev", fmt.to_string());
            if drv.copy_on_read == Some(true) {
                let (cor, v) = storage::copy_on_read_node(&node);
                b.arg("-blockdev", v.to_string());
                top = cor;
            }
        } else if !cdrom && !floppy {
            return Err(CmdlineError::Invalid(format!("{what} has no source")));
        }
        let drive = if has_medium {
            format!(",drive={top}")
        } else {
            String::new()
        };
        if bus != DiskBus::Virtio {
            let v = d.driver.as_ref().map(|d| d.virtio).unwrap_or_default();
            virtio::props(&v, false, &what)?;
        }
        let (qdev, a, busarg) = match bus {
            DiskBus::Virtio => {
                if cdrom {
                    return unsupported(format!("{what}: a CD-ROM on the virtio bus"));
                }
                let v = d.driver.as_ref().map(|d| d.virtio).unwrap_or_default();
                let addr = format!(
                    "{}{}",
                    virtio::props(&v, true, &what)?,
                    pci_addr(&d.info, &what)?
                );
                (
                    "virtio-blk-pci",
                    alias(&d.info, format!("virtio-disk{idx}")),
                    addr,
                )
            }
            DiskBus::Sata | DiskBus::Ide if d.readonly && !cdrom => {
                return unsupported(format!(
                    "{what}: a read-only {bus} hard disk (QEMU's IDE disks cannot be read-only)"
                ));
            }
            DiskBus::Sata => {
                let ctrl = drive_attr(&d.info, "controller").unwrap_or(0);
                let unit = drive_attr(&d.info, "unit").unwrap_or(u64::from(idx));
                if unit > 5 {
                    return unsupported(format!("{what}: SATA unit {unit} (0-5)"));
                }
                let busname = if b.q35 {
                    if ctrl != 0 {
                        return unsupported(format!("{what}: SATA controller {ctrl} on q35"));
                    }
                    format!("ide.{unit}")
                } else {
                    ensure_sata(b, ctrl)?;
                    format!("sata{ctrl}.{unit}")
                };
                set_drive_address(&mut b.live.devices.disks[i].info, ctrl, 0, unit);
                (
                    if cdrom { "ide-cd" } else { "ide-hd" },
                    alias(&d.info, format!("sata{ctrl}-0-{unit}")),
                    format!(",bus={busname}"),
                )
            }
            DiskBus::Ide => {
                if b.q35 {
                    return unsupported(format!("{what}: IDE on a q35 machine (use sata)"));
                }
                let bus_no = drive_attr(&d.info, "bus").unwrap_or(u64::from(idx / 2));
                let unit = drive_attr(&d.info, "unit").unwrap_or(u64::from(idx % 2));
                // libvirt defines any drive address; QEMU's PIIX IDE has two buses of two
                // units, so a start says so
                if (bus_no > 1 || unit > 1) && b.env.host.is_some() {
                    return unsupported(format!(
                        "{what}: IDE bus {bus_no} unit {unit} (the PIIX IDE controller has \
                         buses 0-1 with units 0-1)"
                    ));
                }
                set_drive_address(&mut b.live.devices.disks[i].info, 0, bus_no, unit);
                (
                    if cdrom { "ide-cd" } else { "ide-hd" },
                    alias(&d.info, format!("ide0-{bus_no}-{unit}")),
                    format!(",bus=ide.{bus_no},unit={unit}"),
                )
            }
            DiskBus::Fdc => {
                let ctrl = drive_attr(&d.info, "controller").unwrap_or(0);
                let unit = drive_attr(&d.info, "unit").unwrap_or(u64::from(idx));
                if ctrl != 0 || unit > 1 {
                    return unsupported(format!(
                        "{what}: floppy controller {ctrl} unit {unit} (one controller, units 0-1)"
                    ));
                }
                if b.q35 && !b.args.iter().any(|a| a.starts_with("isa-fdc")) {
                    // q35 has no built-in floppy controller: libvirt adds an ISA one
                    b.need("isa-fdc", &what)?;
                    b.device("isa-fdc");
                }
                set_drive_address(&mut b.live.devices.disks[i].info, 0, 0, unit);
                (
                    "floppy",
                    alias(&d.info, format!("fdc0-0-{unit}")),
                    format!(",unit={unit}"),
                )
            }
            DiskBus::Scsi => storage::scsi_disk(b, d, &what)?,
            DiskBus::Usb => storage::usb_disk(def, d, idx, &what)?,
            other => return unsupported(format!("{what}: bus '{other}'")),
        };
        b.need(qdev, &what)?;
        let vpd = if bus == DiskBus::Scsi {
            let id = d.serial.clone().unwrap_or_else(|| format!("drive-{a}"));
            format!(",device_id={}", esc(&id))
        } else {
            String::new()
        };
        let mut s = format!("{qdev}{busarg}{vpd}{drive},id={a}");
        s.push_str(&tuning::disk_iothread(def, d, bus, &what)?);
        if let Some(o) = d.boot_order {
            s.push_str(&format!(",bootindex={o}"));
        }
        if let Some(ser) = &d.serial {
            s.push_str(&format!(",serial={}", esc(ser)));
        }
        if d.shareable {
            s.push_str(",share-rw=on");
        }
        if let Some(wc) = write_cache.filter(|_| has_medium) {
            s.push_str(&format!(",write-cache={}", on_off(wc)));
        }
        s.push_str(&storage::device_options(d, bus, &what)?);
        b.device(s);
        if has_medium {
            let qom = if bus == DiskBus::Virtio {
                format!("/machine/peripheral/{a}/virtio-backend")
            } else {
                a.clone()
            };
            storage::throttle(b, d, &qom);
        }
        let live = &mut b.live.devices.disks[i];
        live.target_bus = Some(bus);
        live.info.alias = Some(a);
    }
    Ok(())
}

fn set_drive_address(info: &mut DeviceInfo, controller: u64, bus: u64, unit: u64) {
    let mut a = crate::model::Address::new(AddressType::Drive);
    for (k, v) in [
        ("controller", controller),
        ("bus", bus),
        ("target", 0),
        ("unit", unit),
    ] {
        let _ = a.set(k, Some(&v.to_string()));
    }
    info.address = Some(a);
}

/// An AHCI controller for SATA disks that no `<controller>` defined.
fn ensure_sata(b: &mut Builder<'_>, idx: u64) -> Result<()> {
    let have = b.live.devices.controllers.iter().any(|c| {
        c.controller_type == ControllerType::Sata && u64::from(c.index.unwrap_or(0)) == idx
    });
    if !have {
        b.need("ich9-ahci", "SATA disks")?;
        b.device(format!("ich9-ahci,id=sata{idx}"));
        let mut c = implicit_controller(ControllerType::Sata, &format!("sata{idx}"));
        c.index = Some(idx as u32);
        b.live.devices.controllers.push(c);
    }
    Ok(())
}

/// The NIC model of an interface that names none, as libvirt's.
pub const NIC_MODEL: &str = "rtl8139";

/// QEMU's device for a NIC model.
pub fn nic_qdev(model: &str) -> Option<&str> {
    match model {
        "virtio" => Some("virtio-net-pci"),
        "virtio-transitional" => Some("virtio-net-pci-transitional"),
        "virtio-non-transitional" => Some("virtio-net-pci-non-transitional"),
        "e1000" | "e1000e" | "rtl8139" | "vmxnet3" | "ne2k_pci" | "pcnet" | "i82559er" => {
            Some(model)
        }
        _ => None,
    }
}

fn interfaces(b: &mut Builder<'_>, def: &DomainDef) -> Result<()> {
    let net_boot = def.os.boot.contains(&BootDev::Network);
    for (i, n) in def.devices.interfaces.iter().enumerate() {
        let what = format!("<interface type='{}'> {}", n.iface_type, n.mac);
        if !n.ips.is_empty() || !n.routes.is_empty() {
            // libvirt's QEMU driver refuses them too: only containers set guest addresses
            return unsupported(format!("{what}: guest-side <ip> and <route>"));
        }
        if !n.host_ips.is_empty() || !n.host_routes.is_empty() {
            return unsupported(format!("{what}: host-side <source><ip> and <route>"));
        }
        if (n.script.is_some() || n.downscript.is_some()) && n.iface_type != InterfaceType::Ethernet
        {
            // as libvirt: a managed bridge or network tap is set up by the driver, not a script
            return Err(CmdlineError::Invalid(format!(
                "{what}: <script> and <downscript> are for interfaces of type 'ethernet'"
            )));
        }
        let a = alias(&n.info, format!("net{i}"));
        let host = format!("host{a}");
        let queues = n.driver_queues.filter(|q| *q > 1);
        let mut netdev = match n.iface_type {
            // vhost-net only carries taps: as in libvirt, `name='vhost'` means nothing here
            // multiqueue needs a tap; as in libvirt, a definition may ask and a start refuses
            InterfaceType::User => {
                if queues.is_some() && b.env.host.is_some() {
                    return unsupported(format!("{what}: queues with user networking"));
                }
                format!("user,id={host}")
            }
            // The core resolves the network to its bridge at start (`Core::resolve_networks`);
            // at define (no host facts) the network need not exist or run, as in libvirt.
            InterfaceType::Network if n.source_bridge.is_none() && b.env.host.is_some() => {
                return Err(CmdlineError::Invalid(format!(
                    "{what}: network '{}' was not resolved to a bridge",
                    n.source_network.as_deref().unwrap_or_default()
                )));
            }
            InterfaceType::Bridge | InterfaceType::Ethernet | InterfaceType::Network => {
                let tap = match &n.target_dev {
                    Some(t) if n.iface_type == InterfaceType::Ethernet => t.clone(),
                    _ => format!("vb{}n{i}", b.env.id),
                };
                if tap.len() > 15 {
                    return Err(CmdlineError::Invalid(format!(
                        "{what}: host device name '{tap}' is longer than 15 characters"
                    )));
                }
                b.live.devices.interfaces[i].target_dev = Some(tap.clone());
                if let Some(mtu) = n.mtu {
                    b.setup.push(Setup::Mtu {
                        tap: tap.clone(),
                        mtu,
                    });
                }
                match (&n.source_bridge, n.iface_type) {
                    (Some(br), InterfaceType::Bridge | InterfaceType::Network) => {
                        b.setup.push(Setup::Bridge {
                            tap: tap.clone(),
                            bridge: br.clone(),
                        })
                    }
                    _ if n.target_managed != Some(false) => {
                        b.setup.push(Setup::TapUp { tap: tap.clone() })
                    }
                    _ => {}
                }
                if let Some(bw) = n.bandwidth {
                    b.setup.push(Setup::Bandwidth {
                        tap: tap.clone(),
                        bandwidth: bw,
                    });
                }
                // QEMU runs the scripts with the tap's name, as libvirt does
                let mut s = format!(
                    "tap,id={host},ifname={},script={},downscript={}",
                    esc(&tap),
                    esc(n.script.as_deref().unwrap_or("no")),
                    esc(n.downscript.as_deref().unwrap_or("no"))
                );
                match n.driver_name {
                    Some(NetDriverName::Vhost) => s.push_str(",vhost=on"),
                    Some(NetDriverName::Qemu) => s.push_str(",vhost=off"),
                    None => {}
                }
                if let Some(q) = queues {
                    s.push_str(&format!(",queues={q}"));
                }
                s
            }
            InterfaceType::Direct => return unsupported(format!("{what}: macvtap ('direct')")),
            InterfaceType::Mcast
            | InterfaceType::Client
            | InterfaceType::Server
            | InterfaceType::Udp => {
                if queues.is_some() || n.driver_name == Some(NetDriverName::Vhost) {
                    return unsupported(format!("{what}: vhost or queues on a socket backend"));
                }
                socket_netdev(n, &host)
            }
        };
        let model = n.model.as_deref().unwrap_or(NIC_MODEL);
        let Some(qdev) = nic_qdev(model) else {
            return unsupported(format!("{what}: NIC model '{model}'"));
        };
        b.need(qdev, &what)?;
        if queues.is_some() && !qdev.starts_with("virtio-net-pci") {
            return unsupported(format!("{what}: queues on NIC model '{model}'"));
        }
        let virtio_net = qdev.starts_with("virtio-net-pci");
        if !virtio_net && (!n.driver.is_empty() || n.mtu.is_some()) {
            return unsupported(format!(
                "{what}: <driver> tuning or <mtu> on NIC model '{model}' (virtio-net only)"
            ));
        }
        b.arg("-netdev", std::mem::take(&mut netdev));
        let mut tuning = n.driver.qemu_props();
        if let Some(m) = n.mtu {
            tuning.push_str(&format!(",host_mtu={m}"));
        }
        let mut s = format!(
            "{qdev}{tuning},netdev={host},id={a},mac={}{}{}",
            n.mac,
            pci_addr(&n.info, &what)?,
            n.rom.qemu_props()
        );
        if let Some(q) = queues {
            s.push_str(&format!(",mq=on,vectors={}", 2 * q + 2));
        }
        match n.boot_order {
            Some(o) => s.push_str(&format!(",bootindex={o}")),
            // no network boot: skip the option ROM, which slows every boot
            None if !net_boot && virtio_net && n.rom.is_empty() => s.push_str(",romfile="),
            None => {}
        }
        b.device(s);
        if n.link_state == Some(LinkState::Down) {
            b.setup.push(Setup::LinkDown { device: a.clone() });
        }
        b.live.devices.interfaces[i].info.alias = Some(a);
    }
    Ok(())
}

/// The chardev backend option for a character device.
fn chardev(
    b: &mut Builder<'_>,
    c: &CharDevice,
    id: &str,
    what: &str,
) -> Result<(String, Option<PathBuf>)> {
    let path = |c: &CharDevice| c.source_path.clone().unwrap_or_default();
    Ok(match c.source_type {
        CharSourceType::Pty => (format!("pty,id={id}"), None),
        CharSourceType::Null => (format!("null,id={id}"), None),
        CharSourceType::File => {
            let mut s = format!("file,id={id},path={}", esc(&path(c)));
            if let Some(a) = c.source_append {
                s.push_str(&format!(",append={}", on_off(a)));
            }
            (s, None)
        }
        // a parallel port passes a host parport through, any other device a tty
        CharSourceType::Dev if id.starts_with("charparallel") => {
            (format!("parallel,id={id},path={}", esc(&path(c))), None)
        }
        CharSourceType::Dev => (format!("tty,id={id},path={}", esc(&path(c))), None),
        CharSourceType::Pipe => (format!("pipe,id={id},path={}", esc(&path(c))), None),
        CharSourceType::Unix => {
            let p = match &c.source_path {
                Some(p) => PathBuf::from(p),
                None if c.source_mode == Some(CharSourceMode::Connect) => {
                    return Err(CmdlineError::Invalid(format!(
                        "{what}: a unix socket in mode 'connect' needs a path"
                    )));
                }
                None => socket_path(b.env.dir.join(format!("{id}.sock")))?,
            };
            let server = c.source_mode != Some(CharSourceMode::Connect);
            let mut s = if server {
                format!(
                    "socket,id={id},path={},server=on,wait=off",
                    esc(&p.display().to_string())
                )
            } else {
                format!(
                    "socket,id={id},path={},server=off",
                    esc(&p.display().to_string())
                )
            };
            reconnect(&mut s, c.unix_reconnect, server, what)?;
            (s, server.then_some(p))
        }
        CharSourceType::Spicevmc | CharSourceType::Spiceport => {
            spice::check_chardev(b, c, what)?;
            match &c.source_channel {
                Some(name) if c.source_type == CharSourceType::Spiceport => {
                    (format!("spiceport,id={id},name={}", esc(name)), None)
                }
                _ if id.starts_with("charsmartcard") => {
                    (format!("spicevmc,id={id},name=smartcard"), None)
                }
                _ => (format!("spicevmc,id={id},name=vdagent"), None),
            }
        }
        CharSourceType::Tcp | CharSourceType::Udp => (net_chardev(c, id, what)?, None),
        other => return unsupported(format!("{what}: source type '{other}'")),
    })
}

/// QEMU's `-netdev socket` for a socket-backed interface, as libvirt writes it.
fn socket_netdev(n: &crate::model::devices::Interface, host: &str) -> String {
    let s = n.socket.clone().unwrap_or_default();
    let at = |addr: &Option<String>, port: u16| {
        // an IPv6 address is bracketed, as QEMU parses host:port
        match addr.as_deref() {
            Some(a) if a.contains(':') => format!("[{a}]:{port}"),
            Some(a) => format!("{a}:{port}"),
            None => format!(":{port}"),
        }
    };
    let far = at(&s.address, s.port);
    let kind = match n.iface_type {
        InterfaceType::Mcast => format!("mcast={far}"),
        InterfaceType::Client => format!("connect={far}"),
        InterfaceType::Server => format!("listen={far}"),
        _ => {
            let (addr, port) = s.local.clone().unwrap_or((None, 0));
            format!("udp={far},localaddr={}", at(&addr, port))
        }
    };
    format!("socket,{kind},id={host}")
}

/// `-chardev socket` over TCP or `-chardev udp`, as libvirt writes them.
fn net_chardev(c: &CharDevice, id: &str, what: &str) -> Result<String> {
    let n = c.net.clone().unwrap_or_default();
    let port = |service: &Option<String>| -> Result<String> {
        match service.as_deref() {
            None => Ok("0".into()),
            Some(p) if p.parse::<u16>().is_ok() => Ok(p.to_owned()),
            Some(p) => Err(CmdlineError::Invalid(format!(
                "{what}: service '{p}' is not a port number"
            ))),
        }
    };
    if c.source_type == CharSourceType::Udp {
        return Ok(format!(
            "udp,id={id},host={},port={},localaddr={},localport={}",
            esc(n.host.as_deref().unwrap_or_default()),
            port(&n.service)?,
            esc(n.bind_host.as_deref().unwrap_or_default()),
            port(&n.bind_service)?
        ));
    }
    let protocol = n.protocol.unwrap_or(TcpProtocol::Raw);
    if n.tls == Some(true) || matches!(protocol, TcpProtocol::Tls | TcpProtocol::Telnets) {
        return unsupported(format!(
            "{what}: TLS on a tcp character device (no TLS credentials are configured)"
        ));
    }
    let mut s = format!("socket,id={id}");
    if let Some(h) = &n.host {
        s.push_str(&format!(",host={}", esc(h)));
    }
    s.push_str(&format!(",port={}", port(&n.service)?));
    if protocol == TcpProtocol::Telnet {
        s.push_str(",telnet=on");
    }
    let server = c.source_mode == Some(CharSourceMode::Bind);
    if server {
        s.push_str(",server=on,wait=off");
    }
    reconnect(&mut s, n.reconnect, server, what)?;
    Ok(s)
}

/// A client socket chardev's `<reconnect enabled timeout>` as QEMU's `reconnect=`; refused
/// without a timeout or on a listening socket.
fn reconnect(
    s: &mut String,
    rc: Option<(bool, Option<u32>)>,
    server: bool,
    what: &str,
) -> Result<()> {
    match rc {
        Some((true, Some(t))) if !server => s.push_str(&format!(",reconnect={t}")),
        Some((true, _)) if !server => {
            return Err(CmdlineError::Invalid(format!(
                "{what}: <reconnect enabled='yes'> needs a timeout"
            )));
        }
        Some((true, _)) => {
            return Err(CmdlineError::Invalid(format!(
                "{what}: <reconnect> is for mode 'connect'"
            )));
        }
        _ => {}
    }
    Ok(())
}

/// Record a generated socket path and the bind mode in a live character device.
fn live_socket(c: &mut CharDevice, p: Option<PathBuf>) {
    if let Some(p) = p {
        c.source_path = Some(p.display().to_string());
        c.source_mode = Some(CharSourceMode::Bind);
    }
}

fn chardevs(b: &mut Builder<'_>, def: &DomainDef) -> Result<()> {
    let serial_device = |b: &mut Builder<'_>, c: &CharDevice, what: &str| -> Result<&'static str> {
        let dev = match c.target_type.as_deref() {
            None | Some("isa-serial") => "isa-serial",
            Some("pci-serial") => "pci-serial",
            Some(t) => return unsupported(format!("{what}: target type '{t}'")),
        };
        if c.target_model.as_deref().is_some_and(|m| m != dev) {
            return unsupported(format!(
                "{what}: model '{}' for target '{dev}'",
                c.target_model.as_deref().unwrap_or_default()
            ));
        }
        b.need(dev, what)?;
        Ok(dev)
    };
    for (i, c) in def.devices.serials.iter().enumerate() {
        let what = format!("<serial type='{}'>", c.source_type);
        let a = alias(&c.info, format!("serial{i}"));
        let id = format!("char{a}");
        let dev = serial_device(b, c, &what)?;
        let (backend, sock) = chardev(b, c, &id, &what)?;
        b.arg("-chardev", backend);
        let mut s = format!("{dev},chardev={id},id={a}");
        if dev == "isa-serial" {
            s.push_str(&format!(",index={}", c.target_port.unwrap_or(i as u32)));
        } else {
            s.push_str(&pci_addr(&c.info, &what)?);
        }
        b.device(s);
        if c.source_type == CharSourceType::Pty {
            b.ptys.push((id, PtyOf::Serial(i)));
        }
        let live = &mut b.live.devices.serials[i];
        live_socket(live, sock);
        live.info.alias = Some(a);
        live.target_type = Some(dev.into());
        live.target_port = Some(c.target_port.unwrap_or(i as u32));
    }
    // ISA parallel ports (LPT1-3), on the PC's ISA bus or the q35 LPC bridge
    for (i, c) in def.devices.parallels.iter().enumerate() {
        let what = format!("<parallel type='{}'>", c.source_type);
        b.need("isa-parallel", &what)?;
        if let Some(a) = &c.info.address {
            return unsupported(format!("{what}: address type '{}'", a.kind));
        }
        let a = alias(&c.info, format!("parallel{i}"));
        let id = format!("char{a}");
        let (backend, sock) = chardev(b, c, &id, &what)?;
        b.arg("-chardev", backend);
        b.device(format!("isa-parallel,chardev={id},id={a}"));
        if c.source_type == CharSourceType::Pty {
            b.ptys.push((id, PtyOf::Parallel(i)));
        }
        let live = &mut b.live.devices.parallels[i];
        live_socket(live, sock);
        live.info.alias = Some(a);
        live.target_port = Some(c.target_port.unwrap_or(i as u32));
    }
    for (i, c) in def.devices.consoles.iter().enumerate() {
        let what = format!("<console type='{}'>", c.source_type);
        match c.target_type.as_deref() {
            None | Some("serial") => {
                if i == 0 && !def.devices.serials.is_empty() {
                    // the first console is the first serial port, shown twice
                    let serial = b.live.devices.serials[0].clone();
                    let live = &mut b.live.devices.consoles[0];
                    live.target_type = Some("serial".into());
                    live.target_port = Some(0);
                    live.info.alias = serial.info.alias.clone();
                    if c.source_type == CharSourceType::Pty {
                        b.ptys.push(("charserial0".into(), PtyOf::Console(0)));
                    }
                    continue;
                }
                if i != 0 {
                    return unsupported(format!("{what}: serial consoles beyond the first"));
                }
                let dev = serial_device(b, c, &what)?;
                let (backend, sock) = chardev(b, c, "charserial0", &what)?;
                b.arg("-chardev", backend);
                b.device(format!("{dev},chardev=charserial0,id=serial0,index=0"));
                if c.source_type == CharSourceType::Pty {
                    b.ptys.push(("charserial0".into(), PtyOf::Console(0)));
                }
                let live = &mut b.live.devices.consoles[0];
                live_socket(live, sock);
                live.target_type = Some("serial".into());
                live.target_port = Some(0);
                live.info.alias = Some("serial0".into());
            }
            Some("virtio") => {
                b.need("virtconsole", &what)?;
                let a = alias(&c.info, format!("console{i}"));
                let id = format!("char{a}");
                let (backend, sock) = chardev(b, c, &id, &what)?;
                b.arg("-chardev", backend);
                let bus = vserial_bus(b, vserial_controller(&c.info));
                b.device(format!("virtconsole,bus={bus},chardev={id},id={a}"));
                if c.source_type == CharSourceType::Pty {
                    b.ptys.push((id, PtyOf::Console(i)));
                }
                let live = &mut b.live.devices.consoles[i];
                live_socket(live, sock);
                live.info.alias = Some(a);
            }
            Some(t) => return unsupported(format!("{what}: target type '{t}'")),
        }
    }
    // the next free port of each controller, as QEMU would pick it
    let mut next_port: BTreeMap<u64, u32> = BTreeMap::new();
    for (i, c) in def.devices.channels.iter().enumerate() {
        let what = format!("<channel type='{}'>", c.source_type);
        if c.target_type.as_deref() != Some("virtio") {
            return unsupported(format!(
                "{what}: target type '{}'",
                c.target_type.as_deref().unwrap_or_default()
            ));
        }
        b.need("virtserialport", &what)?;
        let a = alias(&c.info, format!("channel{i}"));
        let id = format!("char{a}");
        let (backend, sock) = chardev(b, c, &id, &what)?;
        b.arg("-chardev", backend);
        let ctl = vserial_controller(&c.info);
        let next = *next_port.get(&ctl).unwrap_or(&1);
        let port = match &c.info.address {
            Some(addr) if addr.kind == AddressType::VirtioSerial => {
                if addr.get("bus").and_then(parse_num).unwrap_or(0) != 0 {
                    return Err(CmdlineError::Invalid(format!(
                        "{what}: virtio-serial bus other than 0 (a controller has one bus)"
                    )));
                }
                addr.get("port")
                    .and_then(parse_num)
                    .unwrap_or(u64::from(next)) as u32
            }
            Some(addr) => {
                return unsupported(format!("{what}: address type '{}'", addr.kind));
            }
            None => next,
        };
        next_port.insert(ctl, next.max(port + 1));
        let bus = vserial_bus(b, ctl);
        let mut s = format!("virtserialport,bus={bus},nr={port},chardev={id},id={a}");
        let name = c
            .target_name
            .as_deref()
            .or((c.source_type == CharSourceType::Spicevmc).then_some(spice::AGENT_PORT));
        if let Some(name) = name {
            s.push_str(&format!(",name={}", esc(name)));
        }
        b.device(s);
        if c.target_name.as_deref() == Some(AGENT_CHANNEL) && b.agent.is_none() {
            b.agent = sock.clone();
        }
        if c.source_type == CharSourceType::Pty {
            b.ptys.push((id, PtyOf::Channel(i)));
        }
        let live = &mut b.live.devices.channels[i];
        live_socket(live, sock);
        live.info.alias = Some(a);
        let mut addr = crate::model::Address::new(AddressType::VirtioSerial);
        for (k, v) in [("controller", ctl), ("bus", 0), ("port", u64::from(port))] {
            let _ = addr.set(k, Some(&v.to_string()));
        }
        live.info.address = Some(addr);
    }
    Ok(())
}

fn input_bus(t: InputType, bus: Option<InputBus>) -> InputBus {
    bus.unwrap_or(if t == InputType::Tablet {
        InputBus::Usb
    } else {
        InputBus::Ps2
    })
}

fn inputs(b: &mut Builder<'_>, def: &DomainDef) -> Result<()> {
    for (i, inp) in def.devices.inputs.iter().enumerate() {
        let what = format!("<input type='{}'>", inp.input_type);
        let bus = input_bus(inp.input_type, inp.bus);
        let a = alias(&inp.info, format!("input{i}"));
        let dev = match (bus, inp.input_type) {
            (InputBus::Ps2, InputType::Tablet) => {
                return unsupported(format!("{what}: a tablet on the ps2 bus"));
            }
            // the PS/2 controller is part of the machine
            (InputBus::Ps2, _) => {
                b.live.devices.inputs[i].info.alias = Some(a);
                b.live.devices.inputs[i].bus = Some(bus);
                continue;
            }
            (InputBus::Usb, InputType::Tablet) => "usb-tablet",
            (InputBus::Usb, InputType::Mouse) => "usb-mouse",
            (InputBus::Usb, InputType::Keyboard) => "usb-kbd",
            (InputBus::Virtio, InputType::Tablet) => "virtio-tablet-pci",
            (InputBus::Virtio, InputType::Mouse) => "virtio-mouse-pci",
            (InputBus::Virtio, InputType::Keyboard) => "virtio-keyboard-pci",
            (other, _) => return unsupported(format!("{what}: bus '{other}'")),
        };
        b.need(dev, &what)?;
        let v = virtio::props(&inp.virtio, bus == InputBus::Virtio, &what)?;
        let addr = if bus == InputBus::Virtio {
            pci_addr(&inp.info, &what)?
        } else {
            usb::usb_addr(&inp.info, &what)?
        };
        // libvirt's order: the bus and port follow the id
        b.device(format!("{dev}{v},id={a}{addr}"));
        b.live.devices.inputs[i].info.alias = Some(a);
        b.live.devices.inputs[i].bus = Some(bus);
    }
    Ok(())
}

fn graphics(b: &mut Builder<'_>, def: &DomainDef) -> Result<()> {
    let mut vnc_seen = false;
    let mut spice_seen = false;
    for (i, g) in def.devices.graphics.iter().enumerate() {
        let what = format!("<graphics type='{}'>", g.graphics_type);
        if display::is_local(g) {
            display::local(b, def, g)?;
            continue;
        }
        let first = g.listens.first();
        let address = first
            .and_then(|l| l.address.clone())
            .or_else(|| g.listen.clone())
            .unwrap_or_else(|| "127.0.0.1".into());
        // QEMU listens on the first; a network's address is looked up at start, which
        // this driver does not do (the definition stays valid for when it can)
        if let Some(l) = g
            .listens
            .iter()
            .find(|l| l.listen_type == ListenType::Network)
            .filter(|_| b.env.host.is_some())
        {
            return unsupported(format!(
                "{what}: <listen type='network' network='{}'> (looking up a virtual                  network's address at start is not done by this driver)",
                l.network.as_deref().unwrap_or_default()
            ));
        }
        // The live definition names the address actually listened on, as libvirt's does
        // (clients such as Cockpit connect to it).
        if first.is_none_or(|l| l.listen_type == ListenType::Address) {
            let live = &mut b.live.devices.graphics[i];
            live.listen = Some(address.clone());
            match live.listens.first_mut() {
                Some(l) => l.address = Some(address.clone()),
                None => live
                    .listens
                    .push(GraphicsListen::address(Some(address.clone()))),
            }
        }
        let auto = g.autoport == Some(true) || g.port.is_none_or(|p| p < 0);
        match g.graphics_type {
            GraphicsType::Vnc => {
                if std::mem::replace(&mut vnc_seen, true) {
                    return unsupported("more than one VNC display");
                }
                let mut s = match first.map(|l| l.listen_type) {
                    Some(ListenType::None) => "none".to_owned(),
                    Some(ListenType::Socket) => {
                        let p = match first.and_then(|l| l.socket.clone()) {
                            Some(p) => PathBuf::from(p),
                            None => socket_path(b.env.dir.join("vnc.sock"))?,
                        };
                        if let Some(l) = b.live.devices.graphics[i].listens.first_mut() {
                            l.socket = Some(p.display().to_string());
                        }
                        format!("unix:{}", esc(&p.display().to_string()))
                    }
                    _ if auto => {
                        b.vnc_auto = Some(i);
                        format!("{}:0,to=100", vnc_host(&address))
                    }
                    _ => {
                        let port = g.port.unwrap_or(5900);
                        if !(5900..=65535).contains(&port) {
                            return Err(CmdlineError::Invalid(format!(
                                "{what}: VNC port {port} is below 5900"
                            )));
                        }
                        format!("{}:{}", vnc_host(&address), port - 5900)
                    }
                };
                if let Some(ws) = g.websocket {
                    if ws < 0 {
                        return unsupported(format!("{what}: websocket autoport"));
                    }
                    s.push_str(&format!(",websocket={ws}"));
                }
                if let Some(pw) = &g.passwd {
                    s.push_str(",password=on");
                    b.setup.push(Setup::Password {
                        protocol: "vnc",
                        secret: pw.clone(),
                    });
                }
                if let Some(p) = g.display.share_policy {
                    s.push_str(&format!(",share={p}"));
                }
                if let Some(on) = g.display.power_control {
                    s.push_str(&format!(",power-control={}", on_off(on)));
                }
                if let Some(id) = g.display.audio_id {
                    s.push_str(&format!(
                        ",audiodev={}",
                        sound::audiodev_named(def, id, &what)?
                    ));
                }
                if let Some(k) = &g.keymap {
                    b.arg("-k", k.clone());
                }
                b.arg("-vnc", s);
            }
            GraphicsType::Spice => {
                if !b.env.caps.spice {
                    return unsupported(format!(
                        "{what}: {} has no SPICE support",
                        b.env.caps.emulator.display()
                    ));
                }
                if std::mem::replace(&mut spice_seen, true) {
                    return unsupported("more than one SPICE display");
                }
                let tls = spice::tls(b, g, &what)?;
                if let Some(t) = tls {
                    b.live.devices.graphics[i].tls_port = Some(i32::from(t));
                }
                // listen type 'none': SPICE serves no socket (clients come through other
                // means), as libvirt's `port=0`
                let no_listen = first.is_some_and(|l| l.listen_type == ListenType::None);
                let socket = first.filter(|l| l.listen_type == ListenType::Socket);
                if tls.is_some() && (no_listen || socket.is_some()) {
                    return unsupported(format!(
                        "{what}: tlsPort with a listen type other than 'address'"
                    ));
                }
                let mut s = if no_listen {
                    "port=0".to_owned()
                } else if let Some(l) = socket {
                    // a UNIX socket: the one named, else one in the runtime directory
                    let p = match &l.socket {
                        Some(p) => PathBuf::from(p),
                        None => socket_path(b.env.dir.join("spice.sock"))?,
                    };
                    if let Some(l) = b.live.devices.graphics[i].listens.first_mut() {
                        l.socket = Some(p.display().to_string());
                    }
                    format!("unix=on,addr={}", esc(&p.display().to_string()))
                } else {
                    let port = if auto {
                        let p = (b.env.free_port)().ok_or_else(|| {
                            CmdlineError::NotSupported(format!("{what}: no free port for SPICE"))
                        })?;
                        b.live.devices.graphics[i].port = Some(i32::from(p));
                        i32::from(p)
                    } else {
                        g.port.unwrap_or(5900)
                    };
                    match tls {
                        Some(t) => format!(
                            "port={port},tls-port={t},addr={},x509-dir={}",
                            esc(&address),
                            esc(spice::X509_DIR)
                        ),
                        None => format!("port={port},addr={}", esc(&address)),
                    }
                };
                match &g.passwd {
                    Some(pw) => b.setup.push(Setup::Password {
                        protocol: "spice",
                        secret: pw.clone(),
                    }),
                    None => s.push_str(",disable-ticketing=on"),
                }
                s.push_str(&spice::options(b, g, tls.is_some(), &what)?);
                if g.keymap.is_some() {
                    return unsupported(format!("{what}: keymap"));
                }
                b.arg("-spice", s);
            }
            GraphicsType::Sdl | GraphicsType::Dbus | GraphicsType::EglHeadless => {}
        }
    }
    if !def.devices.graphics.is_empty() && def.devices.videos.is_empty() {
        b.live.devices.videos.push(Video {
            model: Some(VideoModel {
                model_type: VideoType::Vga,
                ram: None,
                vram: None,
                vram64: None,
                vgamem: None,
                heads: None,
                primary: Some(true),
            }),
            acceleration: None,
            info: DeviceInfo::default(),
        });
    }
    Ok(())
}

fn vnc_host(address: &str) -> String {
    if address.contains(':') {
        format!("[{address}]")
    } else {
        address.to_owned()
    }
}

fn videos(b: &mut Builder<'_>, def: &DomainDef) -> Result<()> {
    let videos = b.live.devices.videos.clone();
    for (i, v) in videos.iter().enumerate() {
        let what = "<video>".to_owned();
        let m = v.model.unwrap_or(VideoModel::of(VideoType::Vga));
        let primary = i == 0;
        let gl = video_3d(b, def, v, m.model_type)?;
        let dev = match (m.model_type, primary) {
            (VideoType::Virtio, true) if gl => "virtio-vga-gl",
            (VideoType::Virtio, false) if gl => "virtio-gpu-gl-pci",
            (VideoType::None, _) => continue,
            (VideoType::Vga, true) => "VGA",
            (VideoType::Cirrus, true) => "cirrus-vga",
            (VideoType::Vmvga, true) => "vmware-svga",
            (VideoType::Qxl, true) => "qxl-vga",
            (VideoType::Qxl, false) => "qxl",
            (VideoType::Virtio, true) => "virtio-vga",
            (VideoType::Virtio, false) => "virtio-gpu-pci",
            (VideoType::Bochs, _) => "bochs-display",
            (VideoType::Ramfb, _) => "ramfb",
            (t, true) => return unsupported(format!("{what}: model '{t}'")),
            (t, false) => return unsupported(format!("{what}: secondary model '{t}'")),
        };
        b.need(dev, &what)?;
        let a = alias(&v.info, format!("video{i}"));
        let mut s = format!("{dev},id={a}");
        let qxl = m.model_type == VideoType::Qxl;
        // As libvirt: VGA and VMware SVGA take `vram` as their VGA memory, Bochs as its
        // only memory; Cirrus and virtio have fixed sizes and ignore it.
        let mut vgamem = m.vgamem;
        match m.model_type {
            VideoType::Vga | VideoType::Vmvga if vgamem.is_none() => vgamem = m.vram,
            VideoType::Bochs => {
                if let Some(v) = m.vram {
                    s.push_str(&format!(",vgamem={}", u64::from(v) * 1024));
                }
            }
            _ => {}
        }
        if (m.ram.is_some() || m.vram64.is_some()) && !qxl {
            return unsupported(format!("{what}: ram sizes on model '{}'", m.model_type));
        }
        if qxl {
            if let Some(r) = m.ram {
                s.push_str(&format!(",ram_size={}", u64::from(r) * 1024));
            }
            if let Some(r) = m.vram {
                s.push_str(&format!(",vram_size={}", u64::from(r) * 1024));
            }
            if let Some(r) = m.vram64 {
                s.push_str(&format!(",vram64_size_mb={}", r / 1024));
            }
        }
        if let Some(g) = vgamem {
            match m.model_type {
                VideoType::Vga | VideoType::Qxl | VideoType::Vmvga => {
                    s.push_str(&format!(",vgamem_mb={}", g / 1024))
                }
                t => return unsupported(format!("{what}: vgamem on model '{t}'")),
            }
        }
        if let Some(h) = m.heads.filter(|h| *h > 1) {
            match m.model_type {
                VideoType::Virtio | VideoType::Qxl => s.push_str(&format!(",max_outputs={h}")),
                t => return unsupported(format!("{what}: heads on model '{t}'")),
            }
        }
        if m.model_type != VideoType::Ramfb {
            s.push_str(&pci_addr(&v.info, &what)?);
        }
        b.device(s);
        let live = &mut b.live.devices.videos[i];
        live.info.alias = Some(a);
        if live.model.is_none() {
            live.model = Some(m);
        }
    }
    Ok(())
}

/// Whether video `v` renders 3D through virgl (`<acceleration accel3d='yes'>`): virtio only,
/// and at start only with a host render node and a display that shows OpenGL.
fn video_3d(b: &Builder<'_>, def: &DomainDef, v: &Video, t: VideoType) -> Result<bool> {
    let what = format!("<video><model type='{t}'><acceleration>");
    let Some(a) = &v.acceleration else {
        return Ok(false);
    };
    if a.accel2d == Some(true) {
        return unsupported(format!(
            "{what}: accel2d (QEMU has no 2D acceleration setting)"
        ));
    }
    if a.rendernode.is_some() {
        return unsupported(format!(
            "{what}: rendernode (it is for a vhost-user GPU, which this driver does not run)"
        ));
    }
    if a.accel3d != Some(true) {
        return Ok(false);
    }
    if t != VideoType::Virtio {
        return Err(CmdlineError::Invalid(format!(
            "{what}: accel3d='yes' needs model type 'virtio'"
        )));
    }
    if b.env.host.is_some() {
        display::render_node(b, None, &what)?;
        let gl = def.devices.graphics.iter().any(|g| {
            g.graphics_type == GraphicsType::EglHeadless
                || g.display
                    .gl
                    .as_ref()
                    .is_some_and(|gl| gl.enable == Some(true))
                || g.spice.gl.as_ref().is_some_and(|gl| gl.enable)
        });
        if !gl {
            return unsupported(format!(
                "{what}: accel3d='yes' needs a display that shows OpenGL (egl-headless, or \
                 <gl enable='yes'> on sdl or spice)"
            ));
        }
    }
    Ok(true)
}

fn misc_devices(b: &mut Builder<'_>, def: &DomainDef) -> Result<()> {
    sound::audiodevs(b, def)?;
    sound::sounds(b, def)?;
    if def.devices.watchdogs.len() > 1 {
        return unsupported("more than one <watchdog>");
    }
    if let Some(w) = def.devices.watchdogs.first() {
        let what = format!("<watchdog model='{}'>", w.model);
        let a = alias(&w.info, "watchdog0".into());
        match w.model {
            WatchdogModel::I6300esb => {
                b.need("i6300esb", &what)?;
                let addr = pci_addr(&w.info, &what)?;
                b.device(format!("i6300esb,id={a}{addr}"));
            }
            WatchdogModel::Ib700 => {
                b.need("ib700", &what)?;
                b.device(format!("ib700,id={a}"));
            }
            WatchdogModel::Itco if b.q35 => {
                // the ICH9's own watchdog; it only needs to be allowed to act
                b.arg("-global", "ICH9-LPC.noreboot=off");
            }
            other => return unsupported(format!("<watchdog model='{other}'> on this machine")),
        }
        let action = match w.action.unwrap_or(WatchdogAction::Reset) {
            WatchdogAction::Reset => "reset",
            WatchdogAction::Shutdown => "shutdown",
            WatchdogAction::Poweroff => "poweroff",
            WatchdogAction::Pause => "pause",
            WatchdogAction::None => "none",
            WatchdogAction::InjectNmi => "inject-nmi",
            // QEMU pauses; the driver dumps the guest's memory and resumes it (libvirt's way)
            WatchdogAction::Dump => "pause",
        };
        b.arg("-action", format!("watchdog={action}"));
        b.live.devices.watchdogs[0].info.alias = Some(a);
    }
    if let Some(m) = &def.devices.memballoon {
        let what = format!("<memballoon model='{}'>", m.model);
        let dev = match m.model {
            MemballoonModel::None => None,
            MemballoonModel::Virtio => Some("virtio-balloon-pci"),
            MemballoonModel::VirtioTransitional => Some("virtio-balloon-pci-transitional"),
            MemballoonModel::VirtioNonTransitional => Some("virtio-balloon-pci-non-transitional"),
            MemballoonModel::Xen => return unsupported(what),
        };
        if let Some(dev) = dev {
            b.need(dev, &what)?;
            let a = alias(&m.info, "balloon0".into());
            let v = virtio::props(&m.virtio, true, &what)?;
            let mut s = format!("{dev}{v},id={a}{}", pci_addr(&m.info, &what)?);
            if let Some(d) = m.autodeflate {
                s.push_str(&format!(",deflate-on-oom={}", on_off(d)));
            }
            if let Some(f) = m.free_page_reporting {
                s.push_str(&format!(",free-page-reporting={}", on_off(f)));
            }
            b.device(s);
            if let Some(p) = m.stats_period.filter(|p| *p > 0) {
                b.setup.push(Setup::BalloonStats { period: p });
            }
            if def.current_memory() < def.memory_kib {
                b.setup.push(Setup::Balloon {
                    bytes: def.current_memory() * 1024,
                });
            }
            if let Some(live) = b.live.devices.memballoon.as_mut() {
                live.info.alias = Some(a);
            }
        }
    }
    for (i, r) in def.devices.rngs.iter().enumerate() {
        let what = "<rng>".to_owned();
        let a = alias(&r.info, format!("rng{i}"));
        let obj = format!("obj{a}");
        match &r.backend {
            RngBackend::Random(p) => b.arg(
                "-object",
                format!(
                    "rng-random,id={obj},filename={}",
                    esc(p.as_deref().unwrap_or("/dev/urandom"))
                ),
            ),
            RngBackend::Builtin => b.arg("-object", format!("rng-builtin,id={obj}")),
            RngBackend::Egd(c) => {
                let id = format!("char{a}");
                let (backend, sock) = chardev(b, c, &id, &format!("{what} <backend model='egd'>"))?;
                b.arg("-chardev", backend);
                b.arg("-object", format!("rng-egd,id={obj},chardev={id}"));
                if let RngBackend::Egd(live) = &mut b.live.devices.rngs[i].backend {
                    live_socket(live, sock);
                }
            }
        }
        let dev = match r.model {
            RngModel::Virtio => "virtio-rng-pci",
            RngModel::VirtioTransitional => "virtio-rng-pci-transitional",
            RngModel::VirtioNonTransitional => "virtio-rng-pci-non-transitional",
        };
        b.need(dev, &what)?;
        let v = virtio::props(&r.virtio, true, &what)?;
        let mut s = format!("{dev}{v},rng={obj},id={a}");
        if let Some(bytes) = r.rate_bytes {
            s.push_str(&format!(
                ",max-bytes={bytes},period={}",
                r.rate_period.unwrap_or(1000)
            ));
        }
        s.push_str(&pci_addr(&r.info, &what)?);
        b.device(s);
        b.live.devices.rngs[i].info.alias = Some(a);
    }
    Ok(())
}

mod clock;
mod display;
mod features;
mod fs;
mod memdev;
mod misc;
mod pci;
mod pflash;
mod platform;
mod qemu_ns;
mod sev;
mod smartcard;
mod sound;
mod spice;
mod storage;
pub mod tpm;
mod usb;
mod virtio;
pub use fs::{VIRTIOFSD, Virtiofsd};
pub use storage::{hotplug_refusal, network_node};

#[cfg(test)]
mod audio_tests;
#[cfg(test)]
mod device_tests;
#[cfg(test)]
mod display_tests;
#[cfg(test)]
mod memdev_tests;
#[cfg(test)]
mod misc_tests;
#[cfg(test)]
mod net_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_features;
mod tuning;
#[cfg(test)]
mod virtio_tests;
pub use tuning::{Host, HugeTlb};
