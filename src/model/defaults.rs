//! What libvirt fills into every definition at define time, whatever the driver (its
//! driver-independent post-parse): current memory, vCPU placement, the boot device, lifecycle
//! actions and clock, console and serial pairing, port numbers, disk buses and drive
//! addresses, the controllers those imply, graphics listens and ports, and video defaults.
//!
//! Drivers add their own defaults around these (see `drivers::qemu::defaults`); the result is
//! stored, so `GetXML(inactive)`, the facade and the next start all see one document.

use super::{
    Address, AddressType, BootDev, Clock, ClockOffset, DomainDef, LifecycleAction, OsType,
    VcpuPlacement,
    devices::{
        CharDevice, Controller, ControllerType, DiskBus, DiskDevice, GraphicsListen, GraphicsType,
        VideoModel, VideoType,
    },
};

/// A definition libvirt would refuse after filling its defaults.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DefaultsError(pub String);

/// The first steps of libvirt's post-parse, before any driver's own: controller indexes.
pub fn before_driver(def: &mut DomainDef) {
    assign_controller_indexes(def);
}

/// Per-device defaults that follow the driver's (libvirt's device post-parse), then the
/// definition-wide ones.
pub fn after_driver(def: &mut DomainDef) -> Result<(), DefaultsError> {
    chardev_ports(def);
    def.os.apply_defaults();
    disks(def);
    filesystems(def);
    videos(def);
    graphics(def);
    vcpus_and_memory(def);
    boot_order(def);
    lifecycle_and_clock(def);
    console_compat(def)?;
    chardev_ports(def);
    implicit_controllers(def);
    implicit_video(def);
    primary_video(def);
    Ok(())
}

/// Controllers without an index take the next free one of their type; a PCI root is index 0
/// and other PCI controllers start at 1, after it.
fn assign_controller_indexes(def: &mut DomainDef) {
    let cs = &mut def.devices.controllers;
    for i in 0..cs.len() {
        if cs[i].index.is_some() {
            continue;
        }
        if let Some(idx) = usb2_group_index(cs, i) {
            cs[i].index = Some(idx);
            continue;
        }
        let t = cs[i].controller_type;
        let root = t == ControllerType::Pci
            && matches!(cs[i].model.as_deref(), Some("pci-root" | "pcie-root"));
        let first = if t == ControllerType::Pci && !root {
            1
        } else {
            0
        };
        let next = cs
            .iter()
            .filter(|c| c.controller_type == t)
            .filter_map(|c| c.index)
            .max()
            .map_or(first, |m| (m + 1).max(first));
        cs[i].index = Some(if root { 0 } else { next });
    }
}

/// An unindexed USB2 controller right after another USB2 controller joins its group (takes
/// its index), unless the group has this model already: libvirt's reading of companions
/// listed after their EHCI.
fn usb2_group_index(cs: &[Controller], i: usize) -> Option<u32> {
    if !cs[i].is_usb2() {
        return None;
    }
    let prev = cs[..i]
        .iter()
        .rev()
        .find(|c| c.controller_type == ControllerType::Usb)
        .filter(|c| c.is_usb2())?;
    let idx = prev.index?;
    let taken = cs.iter().any(|c| {
        c.controller_type == ControllerType::Usb && c.index == Some(idx) && c.model == cs[i].model
    });
    (!taken).then_some(idx)
}

/// A controller of `t` and `index`, unless one exists; inserted where libvirt inserts it
/// (after the last of its type with a lower index, else at the end).
pub fn ensure_controller(def: &mut DomainDef, t: ControllerType, index: u32, model: Option<&str>) {
    let cs = &mut def.devices.controllers;
    if cs
        .iter()
        .any(|c| c.controller_type == t && c.index == Some(index))
    {
        return;
    }
    let mut c = Controller::new(t);
    c.index = Some(index);
    c.model = model.map(str::to_owned);
    insert_controller(cs, c);
}

/// libvirt's insertion rule: before the first controller of the same type with a higher
/// index, else after the last of that type, else at the end.
pub fn insert_controller(cs: &mut Vec<Controller>, c: Controller) {
    let idx = c.index.unwrap_or(0);
    let mut at = None;
    for (i, cur) in cs.iter().enumerate().rev() {
        if cur.controller_type != c.controller_type {
            continue;
        }
        if cur.index.unwrap_or(0) > idx {
            at = Some(i);
        } else if at.is_none() {
            at = Some(i + 1);
            break;
        } else {
            break;
        }
    }
    let at = at.unwrap_or(cs.len());
    cs.insert(at, c);
}

/// Serial, parallel and console ports: the next after the highest of their kind.
fn chardev_ports(def: &mut DomainDef) {
    fn number(list: &mut [CharDevice]) {
        for i in 0..list.len() {
            if list[i].target_port.is_some() {
                continue;
            }
            let next = list
                .iter()
                .filter_map(|c| c.target_port)
                .max()
                .map_or(0, |m| m + 1);
            list[i].target_port = Some(next);
        }
    }
    for c in &mut def.devices.consoles {
        if c.target_type.is_none() {
            c.target_type = Some("serial".into());
        }
    }
    number(&mut def.devices.serials);
    number(&mut def.devices.parallels);
    number(&mut def.devices.consoles);
}

/// CD-ROMs are read-only; the bus follows the target name; IDE, SATA, SCSI and floppy disks
/// get a drive address from their index.
fn disks(def: &mut DomainDef) {
    for d in &mut def.devices.disks {
        if d.device == DiskDevice::Cdrom {
            d.readonly = true;
        }
        if d.target_bus.is_none() {
            d.target_bus = Some(if d.device == DiskDevice::Floppy {
                DiskBus::Fdc
            } else if d.target_dev.starts_with("sd") {
                DiskBus::Scsi
            } else if d.target_dev.starts_with("vd") {
                DiskBus::Virtio
            } else {
                DiskBus::Ide
            });
        }
        if d.info.address.is_some() {
            continue;
        }
        let Some(index) = disk_index(&d.target_dev) else {
            continue;
        };
        // (controller, bus, target, unit) as libvirt's virDomainDiskDefAssignAddress.
        let addr = match d.target_bus {
            Some(DiskBus::Ide) => Some((index / 4, (index % 4) / 2, 0, index % 2)),
            Some(DiskBus::Sata) => Some((index / 6, 0, 0, index % 6)),
            Some(DiskBus::Scsi) => Some((index / 7, 0, 0, index % 7)),
            Some(DiskBus::Fdc) => Some((0, 0, 0, index)),
            _ => None,
        };
        if let Some((controller, bus, target, unit)) = addr {
            d.info.address = Some(drive_address(controller, bus, target, unit));
        }
    }
}

/// A share without a daemon socket of its own passes file ownership through by default.
fn filesystems(def: &mut DomainDef) {
    for f in &mut def.devices.filesystems {
        if f.accessmode.is_none() && f.socket.is_none() {
            f.accessmode = Some(crate::model::devices::FsAccessMode::Passthrough);
        }
    }
}

/// A `drive` address.
pub fn drive_address(controller: u32, bus: u32, target: u32, unit: u32) -> Address {
    let mut a = Address::new(AddressType::Drive);
    for (k, v) in [
        ("controller", controller),
        ("bus", bus),
        ("target", target),
        ("unit", unit),
    ] {
        // Numbers always pass the attribute check.
        let _ = a.set(k, Some(&v.to_string()));
    }
    a
}

/// The index a disk target name encodes (`vda` → 0, `sdb` → 1, `hdaa` → 26).
pub fn disk_index(dev: &str) -> Option<u32> {
    let suffix = ["xvd", "ubd", "hd", "sd", "vd", "fd"]
        .iter()
        .find_map(|p| dev.strip_prefix(p))?;
    if suffix.is_empty() || !suffix.bytes().all(|c| c.is_ascii_lowercase()) {
        return None;
    }
    let mut idx: u32 = 0;
    for c in suffix.bytes() {
        idx = idx.checked_mul(26)?.checked_add(u32::from(c - b'a') + 1)?;
    }
    Some(idx - 1)
}

/// Video memory libvirt gives a model when none is set, in KiB.
pub fn default_vram(t: VideoType) -> Option<u32> {
    match t {
        VideoType::Vga | VideoType::Cirrus | VideoType::Vmvga | VideoType::Bochs => Some(16384),
        VideoType::Xen => Some(4096),
        VideoType::Qxl => Some(65536),
        _ => None,
    }
}

/// One head, and the default video memory, for every video with a model.
fn videos(def: &mut DomainDef) {
    for v in &mut def.devices.videos {
        let Some(m) = &mut v.model else { continue };
        if m.model_type == VideoType::None {
            *m = VideoModel::of(VideoType::None);
            continue;
        }
        if m.model_type == VideoType::Qxl && m.ram.is_none() {
            m.ram = default_vram(VideoType::Qxl);
        }
        if m.vram.is_none() {
            m.vram = default_vram(m.model_type);
        }
        m.ram = m.ram.map(round_up_pow2);
        m.vram = m.vram.map(round_up_pow2);
        if m.heads.is_none() {
            m.heads = Some(1);
        }
    }
}

fn round_up_pow2(n: u32) -> u32 {
    if n == 0 { 0 } else { n.next_power_of_two() }
}

/// VNC and SPICE without a port allocate one automatically (`port='-1' autoport='yes'`),
/// and every graphics device has at least one listen: the `listen` attribute's address, or
/// an address listen with none.
fn graphics(def: &mut DomainDef) {
    for g in &mut def.devices.graphics {
        let socket = g
            .listens
            .first()
            .is_some_and(|l| l.listen_type == crate::model::devices::ListenType::Socket);
        match g.graphics_type {
            // local displays neither listen nor take ports
            GraphicsType::Sdl | GraphicsType::Dbus | GraphicsType::EglHeadless => continue,
            // a VNC socket has no port
            GraphicsType::Vnc if socket => {}
            // SPICE: `-1` is the legacy automatic port; an automatic port is not written
            GraphicsType::Spice => {
                if g.port == Some(-1) && g.tls_port.is_none_or(|p| p == -1) {
                    g.autoport = Some(true);
                }
                if g.autoport == Some(true) {
                    g.port = None;
                    g.tls_port = None;
                } else if g.autoport.is_none() {
                    g.autoport = Some(false);
                }
            }
            GraphicsType::Vnc => match (g.port, g.autoport) {
                (None | Some(-1), None) => {
                    g.port = Some(-1);
                    g.autoport = Some(true);
                }
                (_, Some(true)) | (Some(-1), Some(false)) => g.port = Some(-1),
                (Some(_), None) => g.autoport = Some(false),
                (None | Some(_), Some(false)) => {}
            },
        }
        if g.listens.is_empty() {
            let address = g.listen.clone().filter(|a| !a.is_empty());
            g.listens.push(GraphicsListen::address(address));
        }
        if g.graphics_type == GraphicsType::Spice {
            spice_listen_none(g);
        }
        listen_attr(g);
    }
}

/// libvirt writes the first listen's address as the legacy `listen` attribute too, and a
/// display listening nowhere has no ports to write.
fn listen_attr(g: &mut crate::model::devices::Graphics) {
    use crate::model::devices::ListenType;
    let first = &g.listens[0];
    match first.listen_type {
        ListenType::Address if first.address.is_some() => g.listen = first.address.clone(),
        ListenType::None => {
            g.listen = None;
            g.port = None;
            g.tls_port = None;
            g.autoport = None;
        }
        _ => {}
    }
}

/// SPICE with no port, no TLS port and no autoport listens nowhere: libvirt turns its
/// address listen into `<listen type='none'/>`.
fn spice_listen_none(g: &mut crate::model::devices::Graphics) {
    use crate::model::devices::ListenType;
    let unset = |p: Option<i32>| p.is_none_or(|p| p == 0);
    if g.autoport != Some(true)
        && unset(g.port)
        && unset(g.tls_port)
        && g.listens[0].listen_type == ListenType::Address
    {
        g.listens[0] = GraphicsListen {
            listen_type: ListenType::None,
            address: None,
            network: None,
            socket: None,
        };
    }
}

/// Placement is static unless automatic; current memory never exceeds the maximum.
fn vcpus_and_memory(def: &mut DomainDef) {
    if def.vcpu_placement.is_none() {
        def.vcpu_placement = Some(VcpuPlacement::Static);
    }
    let current = def.current_memory_kib.unwrap_or(def.memory_kib);
    def.current_memory_kib = Some(if current == 0 || current > def.memory_kib {
        def.memory_kib
    } else {
        current
    });
}

/// An HVM guest with neither `<boot dev>` nor a device boot order boots from its disk.
fn boot_order(def: &mut DomainDef) {
    if def.os.os_type != OsType::Hvm || !def.os.boot.is_empty() {
        return;
    }
    if !def.devices.has_boot_order() {
        def.os.boot.push(BootDev::Hd);
    }
}

fn lifecycle_and_clock(def: &mut DomainDef) {
    def.on_poweroff.get_or_insert(LifecycleAction::Destroy);
    def.on_reboot.get_or_insert(LifecycleAction::Restart);
    def.on_crash.get_or_insert(LifecycleAction::Destroy);
    if def.clock.is_none() {
        def.clock = Some(Clock::with_offset(ClockOffset::Utc));
    }
}

/// libvirt's console compatibility: the first console of an HVM guest, when it is of target
/// type serial, stands for the first serial port — one is made from it if there is none —
/// and a first serial port without such a console gets one.
fn console_compat(def: &mut DomainDef) -> Result<(), DefaultsError> {
    if def.os.os_type != OsType::Hvm {
        return Ok(());
    }
    let d = &mut def.devices;
    if d.consoles
        .iter()
        .skip(1)
        .any(|c| c.target_type.as_deref() == Some("serial"))
    {
        return Err(DefaultsError(
            "/domain/devices/console: only the first console can be a serial port".into(),
        ));
    }
    let first_is_serial = d
        .consoles
        .first()
        .is_some_and(|c| matches!(c.target_type.as_deref(), None | Some("serial")));
    if first_is_serial {
        if d.serials.is_empty() {
            let mut s = d.consoles[0].clone();
            s.target_type = None;
            s.target_port = Some(0);
            s.tty = None;
            s.info = Default::default();
            d.serials.push(s);
        }
        let c = &mut d.consoles[0];
        c.target_type = Some("serial".into());
        c.target_port = Some(0);
        // the console shows the serial port's source
        let s = &d.serials[0];
        c.source_type = s.source_type;
        c.source_path = s.source_path.clone();
        c.source_mode = s.source_mode;
        c.source_append = s.source_append;
    } else if let Some(s) = d.serials.first() {
        let serial_like = matches!(
            s.target_type.as_deref(),
            None | Some("isa-serial")
                | Some("spapr-vio-serial")
                | Some("system-serial")
                | Some("sclp-serial")
        );
        if serial_like {
            let mut c = s.clone();
            c.target_type = Some("serial".into());
            c.target_port = Some(0);
            c.target_model = None;
            c.info = Default::default();
            d.consoles.insert(0, c);
        }
    }
    Ok(())
}

/// Controllers that devices name by address but the definition lacks: for disks by their
/// drive address, and virtio-serial for virtio channels and consoles.
fn implicit_controllers(def: &mut DomainDef) {
    for (t, bus) in [
        (ControllerType::Scsi, DiskBus::Scsi),
        (ControllerType::Fdc, DiskBus::Fdc),
        (ControllerType::Ide, DiskBus::Ide),
        (ControllerType::Sata, DiskBus::Sata),
    ] {
        let max = def
            .devices
            .disks
            .iter()
            .filter(|d| d.target_bus == Some(bus))
            .filter_map(|d| d.info.address.as_ref())
            .filter(|a| a.kind == AddressType::Drive)
            .filter_map(|a| a.get("controller").and_then(|v| v.parse::<u32>().ok()))
            .max();
        if let Some(max) = max {
            for i in 0..=max {
                ensure_controller(def, t, i, None);
            }
        }
    }
    let d = &def.devices;
    let vserial = d
        .channels
        .iter()
        .chain(d.consoles.iter())
        .filter(|c| c.target_type.as_deref() == Some("virtio"))
        .map(|c| {
            c.info
                .address
                .as_ref()
                .filter(|a| a.kind == AddressType::VirtioSerial)
                .and_then(|a| a.get("controller"))
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0)
        })
        .collect::<Vec<_>>();
    for idx in vserial {
        ensure_controller(def, ControllerType::VirtioSerial, idx, None);
    }
}

/// Graphics without a video device get one of the driver's default model.
fn implicit_video(def: &mut DomainDef) {
    if !def.devices.graphics.is_empty() && def.devices.videos.is_empty() {
        def.devices.videos.push(super::devices::Video {
            model: None,
            acceleration: None,
            info: Default::default(),
        });
    }
}

/// The first video is the primary one.
fn primary_video(def: &mut DomainDef) {
    if let Some(v) = def.devices.videos.first_mut()
        && let Some(m) = &mut v.model
        && m.model_type != VideoType::None
    {
        m.primary = Some(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(devices: &str) -> DomainDef {
        DomainDef::from_xml(&format!(
            "<domain type='test'><name>d</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>\
             <os><type>hvm</type></os><devices>{devices}</devices></domain>"
        ))
        .expect("domain")
    }

    fn filled(devices: &str) -> String {
        let mut d = def(devices);
        before_driver(&mut d);
        after_driver(&mut d).expect("defaults");
        d.to_xml(&Default::default())
    }

    #[test]
    fn the_basics_libvirt_always_writes() {
        let x = filled("");
        for part in [
            "<currentMemory unit='KiB'>65536</currentMemory>",
            "<vcpu placement='static'>1</vcpu>",
            "<boot dev='hd'/>",
            "<clock offset='utc'/>",
            "<on_poweroff>destroy</on_poweroff>",
            "<on_reboot>restart</on_reboot>",
            "<on_crash>destroy</on_crash>",
        ] {
            assert!(x.contains(part), "{part} in {x}");
        }
    }

    #[test]
    fn a_console_stands_for_the_first_serial_port() {
        let x = filled("<console type='pty'/>");
        assert!(x.contains("<serial type='pty'>"), "{x}");
        assert!(x.contains("<target type='serial' port='0'/>"), "{x}");
        let x = filled("<serial type='pty'/>");
        assert!(x.contains("<console type='pty'>"), "{x}");
    }

    #[test]
    fn disks_get_buses_drive_addresses_and_controllers() {
        let x = filled(
            "<disk type='file' device='cdrom'><target dev='hdc'/></disk>\
             <disk type='file' device='disk'><source file='/a.img'/><target dev='sdb'/></disk>",
        );
        assert!(x.contains("<target dev='hdc' bus='ide'/>"), "{x}");
        assert!(x.contains("<readonly/>"), "{x}");
        assert!(
            x.contains("<address type='drive' controller='0' bus='1' target='0' unit='0'/>"),
            "{x}"
        );
        assert!(
            x.contains("<address type='drive' controller='0' bus='0' target='0' unit='1'/>"),
            "{x}"
        );
        assert!(x.contains("<controller type='ide' index='0'/>"), "{x}");
        assert!(x.contains("<controller type='scsi' index='0'/>"), "{x}");
    }

    #[test]
    fn graphics_autoport_and_listens() {
        let x =
            filled("<graphics type='vnc' listen='127.0.0.1'/><video><model type='vga'/></video>");
        assert!(
            x.contains("<graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1'>"),
            "{x}"
        );
        assert!(
            x.contains("<listen type='address' address='127.0.0.1'/>"),
            "{x}"
        );
        assert!(
            x.contains("<model type='vga' vram='16384' heads='1' primary='yes'/>"),
            "{x}"
        );
    }

    #[test]
    fn controllers_insert_as_libvirt_does() {
        let mut cs = Vec::new();
        let c = |t, i| {
            let mut c = Controller::new(t);
            c.index = Some(i);
            c
        };
        insert_controller(&mut cs, c(ControllerType::Usb, 0));
        insert_controller(&mut cs, c(ControllerType::Pci, 0));
        insert_controller(&mut cs, c(ControllerType::Usb, 2));
        insert_controller(&mut cs, c(ControllerType::Usb, 1));
        let got: Vec<(ControllerType, Option<u32>)> =
            cs.iter().map(|c| (c.controller_type, c.index)).collect();
        assert_eq!(
            got,
            [
                (ControllerType::Usb, Some(0)),
                (ControllerType::Usb, Some(1)),
                (ControllerType::Usb, Some(2)),
                (ControllerType::Pci, Some(0)),
            ]
        );
    }

    #[test]
    fn disk_indexes() {
        assert_eq!(disk_index("vda"), Some(0));
        assert_eq!(disk_index("sdb"), Some(1));
        assert_eq!(disk_index("hdaa"), Some(26));
        assert_eq!(disk_index("xvdc"), Some(2));
        assert_eq!(disk_index("vd"), None);
    }
}
