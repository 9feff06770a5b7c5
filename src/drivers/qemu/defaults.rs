//! What libvirt's QEMU driver fills into a definition at define time, for x86: the
//! versioned machine type, the default CPU model, the devices every machine has (USB and PCI
//! root controllers, PS/2 input, the balloon, the audio backend), device models (serial
//! targets, video, NICs, SCSI and USB controllers), and stable addresses: virtio-serial
//! ports, USB ports and PCI addresses (`pci/`).
//!
//! The result is stored, so the guest sees the same hardware on every boot.

use super::caps::Caps;
use crate::{
    drivers::DriverError,
    model::{
        Address, AddressType, Cpu, CpuCheck, CpuFallback, CpuMatch, CpuMode, CpuModel, DeviceInfo,
        DomainDef, DomainType,
        defaults::{self, DefaultsError},
        devices::{
            Audio, AudioType, CharSourceType, ControllerType, DiskFormat, GraphicsType, Input,
            InputBus, InputType, Memballoon, MemballoonModel, PanicModel, RngBackend, ShmemModel,
            Video, VideoModel, VideoType, VsockModel,
        },
    },
};

/// Fill `def` with the QEMU driver's defaults as libvirt does, with the emulator's `caps`.
pub fn apply(def: &mut DomainDef, caps: &Caps) -> Result<(), DriverError> {
    defaults::before_driver(def);
    if def.os.arch.is_none() {
        // QEMU's i386 target is libvirt's i686
        let arch = if caps.arch == "i386" {
            "i686"
        } else {
            caps.arch.as_str()
        };
        def.os.arch = Some(arch.to_owned());
    }
    if def.devices.emulator.is_none() {
        def.devices.emulator = Some(caps.emulator.display().to_string());
    }
    machine(def, caps)?;
    super::usb::input_buses(def);
    let x86 = matches!(def.os.arch.as_deref(), Some("x86_64" | "i686"));
    let kind = Machine::of(def);
    if x86 {
        implicit_inputs(def);
    }
    default_devices(def, kind, x86)?;
    default_audio(def);
    if x86 {
        default_cpu(def, caps);
    }
    cpu_checks(def);
    // graphics without a video get the driver's default video (libvirt adds it, then fills
    // it in like any other)
    if !def.devices.graphics.is_empty() && def.devices.videos.is_empty() {
        def.devices.videos.push(Video {
            model: None,
            acceleration: None,
            info: DeviceInfo::default(),
        });
    }
    device_models(def, kind, caps, x86);
    platform_models(&mut def.devices, x86);
    defaults::after_driver(def).map_err(|DefaultsError(m)| DriverError::InvalidArgument(m))?;
    // SCSI controllers the disks needed get their model too
    for c in &mut def.devices.controllers {
        if c.controller_type == ControllerType::Scsi && c.model.is_none() {
            c.model = Some(default_scsi_model(caps).into());
        }
    }
    // a serial port made from a console just now gets its model too (libvirt runs its
    // device defaults again for it)
    serial_models(&mut def.devices, x86);
    virtio_serial_ports(def);
    // A random backend without a device gets libvirt's built-in default (Debian's libvirt
    // 9.0 writes /dev/random), written down so the guest's source never changes silently.
    for r in &mut def.devices.rngs {
        if let RngBackend::Random(path @ None) = &mut r.backend {
            *path = Some("/dev/random".into());
        }
    }
    super::usb::assign(def)?;
    crate::model::devices::assign_memory_slots(&mut def.devices.memories, def.max_memory);
    super::pci::assign(def, caps, kind)
}

/// The machine families whose built-in devices and slots differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Machine {
    I440fx,
    Q35,
    Other,
}

impl Machine {
    pub fn of(def: &DomainDef) -> Machine {
        match def.os.machine.as_deref() {
            Some(m) if m == "q35" || m.starts_with("pc-q35") => Machine::Q35,
            Some(m) if m == "pc" || m.starts_with("pc-i440fx") || m.starts_with("pc-0.") => {
                Machine::I440fx
            }
            Some(m) if m.starts_with("pc-1.") => Machine::I440fx,
            _ => Machine::Other,
        }
    }
}

/// The emulator's default machine when none is named, and an alias (`pc`, `q35`) replaced by
/// the versioned type it stands for, so a guest keeps its hardware across QEMU upgrades.
fn machine(def: &mut DomainDef, caps: &Caps) -> Result<(), DriverError> {
    match def.os.machine.as_deref() {
        None => {
            let m = caps.default_machine().ok_or_else(|| {
                DriverError::InvalidArgument(format!(
                    "emulator {} has no default machine type; name one in \
                     /domain/os/type/@machine",
                    caps.emulator.display()
                ))
            })?;
            def.os.machine = Some(m.name.clone());
        }
        Some(name) => {
            if let Some(m) = caps
                .machines
                .iter()
                .find(|m| m.alias.as_deref() == Some(name))
            {
                def.os.machine = Some(m.name.clone());
            }
        }
    }
    Ok(())
}

/// x86 machines always have a PS/2 mouse and keyboard.
fn implicit_inputs(def: &mut DomainDef) {
    for t in [InputType::Mouse, InputType::Keyboard] {
        let has = def
            .devices
            .inputs
            .iter()
            .any(|i| i.input_type == t && i.bus == Some(InputBus::Ps2));
        if !has {
            def.devices.inputs.push(Input {
                input_type: t,
                bus: Some(InputBus::Ps2),
                virtio: Default::default(),
                info: DeviceInfo::default(),
            });
        }
    }
}

/// The USB controller, the SATA controller of q35, the PCI root and the balloon.
fn default_devices(def: &mut DomainDef, kind: Machine, x86: bool) -> Result<(), DriverError> {
    if x86 && def.os.machine.as_deref() != Some("isapc") {
        let usb_model = match kind {
            Machine::Q35 => Some("qemu-xhci"),
            _ => None,
        };
        append_controller(def, ControllerType::Usb, 0, usb_model);
        if kind == Machine::Q35 {
            append_controller(def, ControllerType::Sata, 0, None);
        }
        let root = match kind {
            Machine::Q35 => Some("pcie-root"),
            Machine::I440fx => Some("pci-root"),
            Machine::Other => None,
        };
        if let Some(root) = root {
            let existing = def
                .devices
                .controllers
                .iter()
                .find(|c| c.controller_type == ControllerType::Pci && c.index == Some(0));
            match existing {
                Some(c) if c.model.as_deref().is_some_and(|m| m != root) => {
                    return Err(DriverError::InvalidArgument(format!(
                        "/domain/devices/controller[@type='pci'][@index='0']: the PCI \
                         controller with index 0 must be model '{root}' for machine '{}', not \
                         '{}'",
                        def.os.machine.as_deref().unwrap_or_default(),
                        c.model.as_deref().unwrap_or_default()
                    )));
                }
                Some(_) => {}
                None => append_controller(def, ControllerType::Pci, 0, Some(root)),
            }
            for c in &mut def.devices.controllers {
                if c.controller_type == ControllerType::Pci && c.index == Some(0) {
                    c.model = Some(root.into());
                }
            }
        }
        if def.devices.memballoon.is_none() {
            def.devices.memballoon = Some(Memballoon {
                model: MemballoonModel::Virtio,
                autodeflate: None,
                free_page_reporting: None,
                stats_period: None,
                info: DeviceInfo::default(),
                virtio: Default::default(),
            });
        }
    }
    Ok(())
}

/// A controller of `t` and `index` unless one exists, added after all others as libvirt
/// adds the machine's own (its parser sorts only the controllers a definition lists).
fn append_controller(def: &mut DomainDef, t: ControllerType, index: u32, model: Option<&str>) {
    let cs = &mut def.devices.controllers;
    if !cs
        .iter()
        .any(|c| c.controller_type == t && c.index == Some(index))
    {
        let mut c = crate::model::devices::Controller::new(t);
        c.index = Some(index);
        c.model = model.map(str::to_owned);
        cs.push(c);
    }
}

/// One audio backend: none for VNC or no graphics, SPICE's for SPICE (the last display
/// decides, as in libvirt).
pub(super) fn default_audio(def: &mut DomainDef) {
    if !def.devices.audios.is_empty() {
        return;
    }
    let mut backend = def.devices.graphics.is_empty().then_some(AudioType::None);
    for g in &def.devices.graphics {
        match g.graphics_type {
            GraphicsType::Vnc => backend = Some(AudioType::None),
            // host audio passthrough, which libvirt adds only when its daemon's environment
            // names a QEMU_AUDIO_DRV (not read here)
            GraphicsType::Spice => backend = Some(AudioType::Spice),
            GraphicsType::Sdl => backend = None,
            GraphicsType::Dbus | GraphicsType::EglHeadless => {}
        }
    }
    let Some(backend) = backend else { return };
    def.devices.audios.push(Audio {
        id: Some(1),
        audio_type: backend,
        path: None,
        opts: Default::default(),
    });
}

/// A TCG guest without a CPU model gets the machine's default model, checked against
/// nothing (it may not run on every host as is).
fn default_cpu(def: &mut DomainDef, caps: &Caps) {
    if def.domain_type != DomainType::Qemu {
        return;
    }
    // the x86_64 emulator's default model is 64-bit: an i686 guest gets qemu32 on the
    // command line instead, as in libvirt
    if def.os.arch.as_deref() == Some("i686") && caps.arch == "x86_64" {
        return;
    }
    if let Some(c) = &def.cpu
        && (c.mode.unwrap_or(CpuMode::Custom) != CpuMode::Custom || c.model.is_some())
    {
        return;
    }
    let model = def
        .os
        .machine
        .as_deref()
        .and_then(|m| caps.machine(m))
        .and_then(|m| m.default_cpu.clone())
        .unwrap_or_else(|| "qemu64".into());
    let cpu = def.cpu.get_or_insert_with(|| Box::new(Cpu::default()));
    cpu.mode = Some(CpuMode::Custom);
    cpu.cpu_match = Some(CpuMatch::Exact);
    cpu.check = Some(CpuCheck::None);
    cpu.model = Some(CpuModel {
        name: model,
        fallback: Some(CpuFallback::Forbid),
    });
}

/// How strictly the host is checked against the guest CPU, by mode, as libvirt defaults it.
fn cpu_checks(def: &mut DomainDef) {
    let tcg = def.domain_type == DomainType::Qemu;
    let Some(cpu) = def.cpu.as_deref_mut() else {
        return;
    };
    let mode = cpu.mode.unwrap_or(CpuMode::Custom);
    if mode == CpuMode::HostPassthrough && cpu.migratable.is_none() {
        cpu.migratable = Some(true);
    }
    if mode == CpuMode::Custom && cpu.model.is_none() {
        return;
    }
    if mode == CpuMode::Custom {
        cpu.mode = Some(CpuMode::Custom);
        cpu.cpu_match.get_or_insert(CpuMatch::Exact);
        if let Some(m) = &mut cpu.model {
            m.fallback.get_or_insert(CpuFallback::Allow);
        }
    }
    if cpu.check.is_none() {
        cpu.check = Some(match mode {
            CpuMode::HostPassthrough | CpuMode::Maximum => CpuCheck::None,
            CpuMode::HostModel => CpuCheck::Partial,
            CpuMode::Custom if tcg => CpuCheck::None,
            CpuMode::Custom => CpuCheck::Partial,
        });
    }
}

/// Serial ports' target type and model (ISA on x86).
fn serial_models(d: &mut crate::model::Devices, x86: bool) {
    for s in &mut d.serials {
        if matches!(s.target_type.as_deref(), None | Some("isa-serial")) && x86 {
            s.target_type = Some("isa-serial".into());
        }
        if s.target_model.is_none() {
            s.target_model = match s.target_type.as_deref() {
                Some("isa-serial") => Some("isa-serial".into()),
                Some("usb-serial") => Some("usb-serial".into()),
                Some("pci-serial") => Some("pci-serial".into()),
                _ => None,
            };
        }
    }
}

/// Device models libvirt's QEMU driver picks when the definition leaves them out.
fn device_models(def: &mut DomainDef, kind: Machine, caps: &Caps, x86: bool) {
    let d = &mut def.devices;
    // QEMU's own block layer, and raw images unless told otherwise (no format probing)
    for disk in &mut d.disks {
        let drv = disk.driver.get_or_insert_with(Default::default);
        drv.name.get_or_insert_with(|| "qemu".into());
        drv.format.get_or_insert(DiskFormat::Raw);
    }
    serial_models(d, x86);
    // a unix channel whose socket the driver names keeps no source in the definition
    for c in &mut d.channels {
        if c.source_type == CharSourceType::Unix && c.source_path.is_none() {
            c.source_mode = None;
        }
    }
    let default_video = if caps.has_device("cirrus-vga") {
        VideoType::Cirrus
    } else {
        VideoType::Vga
    };
    for v in &mut d.videos {
        let m = v.model.get_or_insert_with(|| VideoModel::of(default_video));
        if m.model_type == VideoType::Qxl && m.vgamem.is_none() {
            m.vgamem = Some(16384);
        }
    }
    let default_nic = ["rtl8139", "e1000", "virtio-net-pci"]
        .into_iter()
        .find(|d| caps.has_device(d))
        .map(|d| if d == "virtio-net-pci" { "virtio" } else { d });
    for n in &mut d.interfaces {
        if n.model.is_none() {
            n.model = default_nic.map(str::to_owned);
        }
    }
    for c in &mut d.controllers {
        match c.controller_type {
            // a USB controller the definition names without a model is libvirt's
            // piix3-uhci on every x86 machine (only the one it adds to q35 is qemu-xhci)
            ControllerType::Usb if c.model.is_none() => {
                c.model = Some(
                    match kind {
                        Machine::Q35 if !caps.has_device("piix3-usb-uhci") => "qemu-xhci",
                        _ => "piix3-uhci",
                    }
                    .into(),
                );
            }
            ControllerType::Scsi if c.model.is_none() => {
                c.model = Some(default_scsi_model(caps).into());
            }
            _ => {}
        }
    }
}

/// libvirt's models for platform devices: an ISA panic device on x86, legacy `ivshmem` and
/// 4 MiB for shared memory, a doorbell's MSI with ioeventfd, virtio for vsock.
fn platform_models(d: &mut crate::model::Devices, x86: bool) {
    for p in &mut d.panics {
        if p.model.is_none() && x86 {
            p.model = Some(PanicModel::Isa);
        }
    }
    for s in &mut d.shmems {
        let model = *s.model.get_or_insert(ShmemModel::Ivshmem);
        if model != ShmemModel::IvshmemDoorbell && s.size.is_none() {
            s.size = Some(4 << 20);
        }
        if model == ShmemModel::IvshmemDoorbell && s.server.is_some() {
            let msi = s.msi.get_or_insert_with(Default::default);
            msi.ioeventfd.get_or_insert(true);
        }
    }
    if let Some(v) = &mut d.vsock {
        v.model.get_or_insert(VsockModel::Virtio);
    }
}

/// The SCSI controller model libvirt 9.0 picks on x86: the LSI 53C895A when QEMU has it.
pub fn default_scsi_model(caps: &Caps) -> &'static str {
    if caps.has_device("lsi53c895a") {
        "lsilogic"
    } else {
        "virtio-scsi"
    }
}

/// Virtio consoles take the first free port from 0, channels from 1, on controller 0 bus 0.
fn virtio_serial_ports(def: &mut DomainDef) {
    let d = &mut def.devices;
    let mut used: Vec<(u32, u32)> = Vec::new();
    let port_of = |a: &Address| -> Option<(u32, u32)> {
        (a.kind == AddressType::VirtioSerial && a.get("port").is_some()).then(|| {
            let n = |k| a.get(k).and_then(|v| v.parse::<u32>().ok()).unwrap_or(0);
            (n("controller"), n("port"))
        })
    };
    for c in d.consoles.iter().chain(d.channels.iter()) {
        if let Some(p) = c.info.address.as_ref().and_then(port_of) {
            used.push(p);
        }
    }
    let mut assign = |info: &mut DeviceInfo, from: u32| {
        // an address naming only its controller (and bus) gets a port there
        let (ctl, bus) = match &info.address {
            Some(a) if a.kind == AddressType::VirtioSerial => {
                let n = |k| a.get(k).and_then(|v| v.parse::<u32>().ok()).unwrap_or(0);
                (n("controller"), n("bus"))
            }
            _ => (0, 0),
        };
        let port = (from..)
            .find(|p| !used.contains(&(ctl, *p)))
            .unwrap_or(from);
        used.push((ctl, port));
        let mut a = Address::new(AddressType::VirtioSerial);
        for (k, v) in [("controller", ctl), ("bus", bus), ("port", port)] {
            let _ = a.set(k, Some(&v.to_string()));
        }
        info.address = Some(a);
    };
    // Virtio consoles take their ports when QEMU adds them (the first 0, then the lowest
    // free); libvirt writes no address for them, so their ports are only held here, for the
    // channels to go around.
    for c in &mut d.consoles {
        if c.target_type.as_deref() == Some("virtio") && c.info.address.is_none() {
            let mut scratch = DeviceInfo::default();
            assign(&mut scratch, 0);
        }
    }
    let portless = |info: &DeviceInfo| match &info.address {
        None => true,
        Some(a) => a.kind == AddressType::VirtioSerial && a.get("port").is_none(),
    };
    for c in &mut d.channels {
        if c.target_type.as_deref() == Some("virtio") && portless(&c.info) {
            assign(&mut c.info, 1);
        }
    }
}

/// Every device with a PCI address, described for collision errors.
pub(super) fn pci_infos(d: &crate::model::Devices) -> Vec<(String, &DeviceInfo)> {
    let mut out: Vec<(String, &DeviceInfo)> = Vec::new();
    for c in &d.controllers {
        out.push((
            format!(
                "<controller type='{}' index='{}'>",
                c.controller_type,
                c.index.unwrap_or(0)
            ),
            &c.info,
        ));
    }
    for x in &d.disks {
        out.push((format!("<disk> {}", x.target_dev), &x.info));
    }
    for f in &d.filesystems {
        out.push((format!("<filesystem> {}", f.target), &f.info));
    }
    for (i, n) in d.interfaces.iter().enumerate() {
        out.push((format!("<interface> {}", i + 1), &n.info));
    }
    for (i, s) in d.sounds.iter().enumerate() {
        out.push((format!("<sound> {}", i + 1), &s.info));
    }
    for (i, v) in d.videos.iter().enumerate() {
        out.push((format!("<video> {}", i + 1), &v.info));
    }
    for (i, r) in d.rngs.iter().enumerate() {
        out.push((format!("<rng> {}", i + 1), &r.info));
    }
    for w in &d.watchdogs {
        out.push(("<watchdog>".into(), &w.info));
    }
    for (i, inp) in d.inputs.iter().enumerate() {
        out.push((format!("<input> {}", i + 1), &inp.info));
    }
    if let Some(m) = &d.memballoon {
        out.push(("<memballoon>".into(), &m.info));
    }
    for s in &d.shmems {
        out.push((format!("<shmem name='{}'>", s.name), &s.info));
    }
    if let Some(m) = &d.iommu {
        out.push(("<iommu>".into(), &m.info));
    }
    if let Some(v) = &d.vsock {
        out.push(("<vsock>".into(), &v.info));
    }
    for (i, m) in d.memories.iter().enumerate() {
        out.push((format!("<memory model='{}'> {}", m.model, i + 1), &m.info));
    }
    out
}

/// The slots of bus 0 that devices of `def` hold.
pub fn used_pci_slots(def: &DomainDef) -> Vec<u32> {
    pci_infos(&def.devices)
        .into_iter()
        .filter_map(|(_, info)| info.address.as_ref().and_then(pci_slot))
        .map(|(slot, _)| slot)
        .collect()
}

/// Slot and function of a PCI address on bus 0 of domain 0.
pub fn pci_slot(a: &Address) -> Option<(u32, u32)> {
    match pci_bsf(a)? {
        (0, slot, function) => Some((slot, function)),
        _ => None,
    }
}

/// Bus, slot and function of a PCI address of domain 0.
pub fn pci_bsf(a: &Address) -> Option<(u32, u32, u32)> {
    if a.kind != AddressType::Pci {
        return None;
    }
    let n = |k| {
        a.get(k).and_then(|v| match v.strip_prefix("0x") {
            Some(h) => u32::from_str_radix(h, 16).ok(),
            None => v.parse().ok(),
        })
    };
    if n("domain").unwrap_or(0) != 0 {
        return None;
    }
    Some((
        n("bus").unwrap_or(0),
        n("slot").unwrap_or(0),
        n("function").unwrap_or(0),
    ))
}

/// A PCI address on bus 0, written as libvirt writes it.
pub fn pci_address(slot: u32, function: u32, multifunction: bool) -> Address {
    pci_address_on(0, slot, function, multifunction)
}

/// A PCI address on `bus`, written as libvirt writes it.
pub fn pci_address_on(bus: u32, slot: u32, function: u32, multifunction: bool) -> Address {
    let mut a = Address::new(AddressType::Pci);
    let _ = a.set("domain", Some("0x0000"));
    let _ = a.set("bus", Some(&format!("{bus:#04x}")));
    let _ = a.set("slot", Some(&format!("{slot:#04x}")));
    let _ = a.set("function", Some(&format!("{function:#x}")));
    if multifunction {
        let _ = a.set("multifunction", Some("on"));
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps() -> Caps {
        super::super::caps::tests::x86_64()
    }

    fn canonical(xml: &str) -> String {
        let mut def = DomainDef::from_xml(xml).expect("domain");
        apply(&mut def, &caps()).expect("defaults");
        let out = def.to_xml(&Default::default());
        // stable under a second pass, as libvirt's is
        let mut again = DomainDef::from_xml(&out).expect("reparse");
        apply(&mut again, &caps()).expect("defaults again");
        assert_eq!(again.to_xml(&Default::default()), out, "idempotent");
        out
    }

    /// The input of issue 12 and libvirt 9.0's `dumpxml --inactive` of it, line for line.
    #[test]
    fn cockpit_example_matches_libvirt() {
        let out = canonical(
            "<domain type='qemu'><name>cc-running</name>\
             <uuid>0b3821a3-2d07-70aa-0000-000000000001</uuid>\
             <memory unit='MiB'>64</memory><vcpu>1</vcpu>\
             <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>\
             <features><acpi/></features>\
             <devices><emulator>/usr/bin/qemu-system-x86_64</emulator>\
             <serial type='pty'><target port='0'/></serial>\
             <console type='pty'><target type='serial' port='0'/></console>\
             <graphics type='vnc' autoport='yes' listen='127.0.0.1'/>\
             <video><model type='vga'/></video></devices></domain>",
        );
        let want = "<domain type='qemu'>
  <name>cc-running</name>
  <uuid>0b3821a3-2d07-70aa-0000-000000000001</uuid>
  <memory unit='KiB'>65536</memory>
  <currentMemory unit='KiB'>65536</currentMemory>
  <vcpu placement='static'>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type>
    <boot dev='hd'/>
  </os>
  <features>
    <acpi/>
  </features>
  <cpu mode='custom' match='exact' check='none'>
    <model fallback='forbid'>qemu64</model>
  </cpu>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <controller type='usb' index='0' model='piix3-uhci'>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x01' function='0x2'/>
    </controller>
    <controller type='pci' index='0' model='pci-root'/>
    <serial type='pty'>
      <target type='isa-serial' port='0'>
        <model name='isa-serial'/>
      </target>
    </serial>
    <console type='pty'>
      <target type='serial' port='0'/>
    </console>
    <input type='mouse' bus='ps2'/>
    <input type='keyboard' bus='ps2'/>
    <graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1'>
      <listen type='address' address='127.0.0.1'/>
    </graphics>
    <audio id='1' type='none'/>
    <video>
      <model type='vga' vram='16384' heads='1' primary='yes'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x0'/>
    </video>
    <memballoon model='virtio'>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x03' function='0x0'/>
    </memballoon>
  </devices>
</domain>
";
        assert_eq!(out, want);
    }

    #[test]
    fn devices_take_slots_in_libvirts_order_and_collisions_are_named() {
        let out = canonical(
            "<domain type='qemu'><name>d</name><memory>65536</memory><vcpu>1</vcpu>\
             <os><type machine='pc'>hvm</type></os><devices>\
             <disk type='file' device='disk'><source file='/a'/><target dev='vda' bus='virtio'/></disk>\
             <interface type='user'><mac address='52:54:00:00:00:01'/><model type='virtio'/></interface>\
             <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>\
             </devices></domain>",
        );
        // the NIC first (slot 2: no video), then the virtio-serial controller, the disk,
        // the balloon
        let slot = |what: &str| {
            let i = out.find(what).expect(what);
            let rest = &out[i..];
            let j = rest.find("slot='").expect("slot");
            rest[j + 6..j + 10].to_owned()
        };
        assert_eq!(slot("<interface"), "0x02");
        assert_eq!(slot("<controller type='virtio-serial'"), "0x03");
        assert_eq!(slot("<disk"), "0x04");
        assert_eq!(slot("<memballoon"), "0x05");
        assert!(
            out.contains("<address type='virtio-serial' controller='0' bus='0' port='1'/>"),
            "{out}"
        );

        let mut clash = DomainDef::from_xml(
            "<domain type='qemu'><name>d</name><memory>65536</memory><vcpu>1</vcpu>\
             <os><type machine='pc'>hvm</type></os><devices>\
             <interface type='user'><mac address='52:54:00:00:00:01'/>\
             <address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'/></interface>\
             <memballoon model='virtio'>\
             <address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'/></memballoon>\
             </devices></domain>",
        )
        .expect("domain");
        let e = apply(&mut clash, &caps()).expect_err("collision");
        let m = e.to_string();
        assert!(
            m.contains("<interface> 1") && m.contains("<memballoon>"),
            "{m}"
        );
    }

    #[test]
    fn q35_gets_its_controllers_and_the_default_nic() {
        let out = canonical(
            "<domain type='qemu'><name>d</name><memory>65536</memory><vcpu>1</vcpu>\
             <os><type machine='q35'>hvm</type></os><devices>\
             <interface type='user'><mac address='52:54:00:00:00:01'/></interface>\
             </devices></domain>",
        );
        assert!(out.contains("machine='pc-q35-7.2'"), "{out}");
        assert!(
            out.contains("<controller type='usb' index='0' model='qemu-xhci'"),
            "{out}"
        );
        assert!(out.contains("<controller type='sata' index='0'"), "{out}");
        assert!(
            out.contains("<controller type='pci' index='0' model='pcie-root'/>"),
            "{out}"
        );
        assert!(out.contains("<model type='rtl8139'/>"), "{out}");
    }
}
