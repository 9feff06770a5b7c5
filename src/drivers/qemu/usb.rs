//! USB ports as libvirt assigns them at define time: every USB device gets a stable
//! `<address type='usb' bus port>`, hubs are added when the controllers' ports run out, and
//! a device behind a hub gets a port path such as `1.2`.
//!
//! Buses are the USB controllers by index, with libvirt's port counts per model (companion
//! UHCI controllers add none: their EHCI master owns the ports). Hubs have 8 ports. Devices
//! keep the address they were given; the others take the first free port, depth first
//! through hubs, in libvirt's device order.

use crate::{
    drivers::DriverError,
    model::{
        Address, AddressType, DeviceInfo, DomainDef,
        devices::{Controller, ControllerType, DiskBus, Hub, InputBus, InputType, SoundModel},
    },
};

/// Ports of a USB hub (`usb-hub`).
pub const HUB_PORTS: usize = 8;

/// The deepest port path QEMU and libvirt take (`1.2.3.4`).
const MAX_DEPTH: usize = 4;

/// How many ports a controller of `model` offers, as libvirt counts them.
pub fn controller_ports(c: &Controller) -> usize {
    match c.model.as_deref() {
        None | Some("piix3-uhci" | "piix4-uhci" | "vt82c686b-uhci") => 2,
        Some("ehci" | "ich9-ehci1") => 6,
        Some("pci-ohci") => 3,
        Some("nec-xhci" | "qemu-xhci") => c.ports.map_or(4, |p| p as usize),
        Some("qusb1" | "qusb2") => c.ports.map_or(8, |p| p as usize),
        _ => 0,
    }
}

/// Whether the machine has a USB bus at all (`model='none'` says it has none).
pub fn has_usb(def: &DomainDef) -> bool {
    def.devices
        .controllers
        .iter()
        .any(|c| c.controller_type == ControllerType::Usb && c.model.as_deref() != Some("none"))
}

/// An input without `bus` is libvirt's default for it: PS/2 for an x86 mouse or keyboard,
/// USB otherwise (a tablet).
pub fn input_buses(def: &mut DomainDef) {
    let x86 = matches!(def.os.arch.as_deref(), Some("x86_64" | "i686") | None);
    for i in &mut def.devices.inputs {
        if i.bus.is_none() {
            let ps2 = x86 && matches!(i.input_type, InputType::Mouse | InputType::Keyboard);
            i.bus = Some(if ps2 { InputBus::Ps2 } else { InputBus::Usb });
        }
    }
}

/// The devices that sit on a USB port, in libvirt's order (hubs first).
pub fn usb_infos_mut(def: &mut DomainDef, with_hubs: bool) -> Vec<&mut DeviceInfo> {
    let d = &mut def.devices;
    let mut out: Vec<&mut DeviceInfo> = Vec::new();
    if with_hubs {
        out.extend(d.hubs.iter_mut().map(|h| &mut h.info));
    }
    out.extend(
        d.disks
            .iter_mut()
            .filter(|x| x.target_bus == Some(DiskBus::Usb))
            .map(|x| &mut x.info),
    );
    out.extend(
        d.inputs
            .iter_mut()
            .filter(|x| x.bus == Some(InputBus::Usb))
            .map(|x| &mut x.info),
    );
    out.extend(
        d.serials
            .iter_mut()
            .filter(|x| x.target_type.as_deref() == Some("usb-serial"))
            .map(|x| &mut x.info),
    );
    out.extend(
        d.sounds
            .iter_mut()
            .filter(|x| x.model == SoundModel::Usb)
            .map(|x| &mut x.info),
    );
    out.extend(d.redirdevs.iter_mut().map(|x| &mut x.info));
    out
}

/// One hub or controller: which ports are taken, and the hubs plugged into them.
#[derive(Debug)]
struct Ports {
    used: Vec<bool>,
    hubs: Vec<Option<Ports>>,
}

impl Ports {
    fn new(n: usize) -> Ports {
        Ports {
            used: vec![false; n],
            hubs: (0..n).map(|_| None).collect(),
        }
    }

    /// The first free port, this hub's own before those of the hubs on it.
    fn free(&self, depth: usize) -> Option<Vec<usize>> {
        if let Some(i) = self.used.iter().position(|u| !u) {
            return Some(vec![i + 1]);
        }
        if depth + 1 >= MAX_DEPTH {
            return None;
        }
        self.hubs.iter().enumerate().find_map(|(i, h)| {
            let mut path = h.as_ref()?.free(depth + 1)?;
            path.insert(0, i + 1);
            Some(path)
        })
    }
}

/// A USB address: bus and port path (`None` when the port is absent or 0).
fn parse(info: &DeviceInfo) -> Option<(u32, Option<Vec<usize>>)> {
    let a = info
        .address
        .as_ref()
        .filter(|a| a.kind == AddressType::Usb)?;
    let bus = a.get("bus").and_then(|b| b.parse().ok()).unwrap_or(0);
    let path: Option<Vec<usize>> = a
        .get("port")
        .map(|p| p.split('.').filter_map(|n| n.parse().ok()).collect());
    Some((
        bus,
        path.filter(|p: &Vec<usize>| p.first().is_some_and(|n| *n != 0)),
    ))
}

fn port_str(path: &[usize]) -> String {
    path.iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

fn bad(m: String) -> DriverError {
    DriverError::InvalidArgument(m)
}

struct Buses(Vec<(u32, Ports)>);

impl Buses {
    fn bus(&mut self, bus: u32) -> Option<&mut Ports> {
        self.0.iter_mut().find(|(b, _)| *b == bus).map(|(_, p)| p)
    }

    /// The hub holding the last port of `path` on `bus`, and that port's index.
    fn find(&mut self, bus: u32, path: &[usize]) -> Result<(&mut Ports, usize), DriverError> {
        let s = port_str(path);
        let mut hub = self
            .bus(bus)
            .ok_or_else(|| bad(format!("USB address bus {bus} port {s}: no USB bus {bus}")))?;
        let (last, through) = path.split_last().unwrap_or((&0, &[]));
        for &p in through {
            let next = p
                .checked_sub(1)
                .and_then(|i| hub.hubs.get_mut(i))
                .and_then(Option::as_mut);
            hub = next.ok_or_else(|| {
                bad(format!(
                    "USB address bus {bus} port {s}: there is no hub at port {p}"
                ))
            })?;
        }
        let i = last
            .checked_sub(1)
            .filter(|i| *i < hub.used.len())
            .ok_or_else(|| {
                bad(format!(
                    "USB address bus {bus} port {s}: the port is not present"
                ))
            })?;
        Ok((hub, i))
    }

    fn reserve(&mut self, bus: u32, path: &[usize]) -> Result<(), DriverError> {
        let (hub, i) = self.find(bus, path)?;
        if std::mem::replace(&mut hub.used[i], true) {
            return Err(bad(format!(
                "USB address bus {bus} port {} is used by two devices",
                port_str(path)
            )));
        }
        Ok(())
    }

    fn add_hub(&mut self, bus: u32, path: &[usize]) -> Result<(), DriverError> {
        let (hub, i) = self.find(bus, path)?;
        if hub.hubs[i].is_some() || hub.used[i] {
            return Err(bad(format!(
                "USB address bus {bus} port {}: a hub is there already",
                port_str(path)
            )));
        }
        hub.used[i] = true;
        hub.hubs[i] = Some(Ports::new(HUB_PORTS));
        Ok(())
    }

    /// A free port on `bus`, or on any bus; taken at once.
    fn assign(&mut self, info: &mut DeviceInfo) -> Result<(u32, Vec<usize>), DriverError> {
        let wanted = parse(info).map(|(b, _)| b);
        let found = self
            .0
            .iter()
            .filter(|(b, _)| wanted.is_none_or(|w| w == *b))
            .find_map(|(b, p)| p.free(0).map(|path| (*b, path)));
        let Some((bus, path)) = found else {
            return Err(match wanted {
                Some(b) if self.bus(b).is_none() => bad(format!(
                    "USB bus {b} requested but no controller with that index is present"
                )),
                _ => DriverError::NotSupported("no free USB ports".into()),
            });
        };
        self.reserve(bus, &path)?;
        let mut a = Address::new(AddressType::Usb);
        let _ = a.set("bus", Some(&bus.to_string()));
        let _ = a.set("port", Some(&port_str(&path)));
        info.address = Some(a);
        Ok((bus, path))
    }
}

/// Give every USB device a port, adding hubs where the ports run out, as libvirt does when
/// a domain is defined. A USB device on a machine without USB is refused.
pub fn assign(def: &mut DomainDef) -> Result<(), DriverError> {
    let count = usb_infos_mut(def, true).len();
    if count > 0 && !has_usb(def) {
        return Err(DriverError::NotSupported(
            "USB is disabled for this domain (<controller type='usb' model='none'>), but USB \
             devices are present in the domain XML"
                .into(),
        ));
    }
    if !has_usb(def) {
        return Ok(());
    }
    let available: usize = def
        .devices
        .controllers
        .iter()
        .filter(|c| c.controller_type == ControllerType::Usb)
        .map(controller_ports)
        .sum::<usize>()
        + def.devices.hubs.len() * HUB_PORTS;
    if count > available {
        // each added hub takes a port and gives 8
        let needed = (count - available + 1).div_ceil(HUB_PORTS - 1);
        def.devices.hubs.extend((0..needed).map(|_| Hub::default()));
    }
    let mut buses = Buses(Vec::new());
    for c in &def.devices.controllers {
        if c.controller_type != ControllerType::Usb {
            continue;
        }
        let n = controller_ports(c);
        if n == 0 {
            continue;
        }
        let idx = c.index.unwrap_or(0);
        if buses.bus(idx).is_some() {
            return Err(bad(format!("two USB controllers have index {idx}")));
        }
        buses.0.push((idx, Ports::new(n)));
    }
    buses.0.sort_by_key(|(b, _)| *b);
    for h in &def.devices.hubs {
        if let Some((bus, Some(path))) = parse(&h.info) {
            buses.add_hub(bus, &path)?;
        }
    }
    for info in usb_infos_mut(def, false) {
        if let Some((bus, Some(path))) = parse(info) {
            buses.reserve(bus, &path)?;
        }
    }
    for h in &mut def.devices.hubs {
        if !matches!(parse(&h.info), Some((_, Some(_)))) {
            let (bus, path) = buses.assign(&mut h.info)?;
            // assign took the port as a device's; a hub's port holds the hub
            let (hub, i) = buses.find(bus, &path)?;
            hub.hubs[i] = Some(Ports::new(HUB_PORTS));
        }
    }
    for info in usb_infos_mut(def, false) {
        if !matches!(parse(info), Some((_, Some(_)))) {
            buses.assign(info)?;
        }
    }
    Ok(())
}

/// An ICH9 USB2 controller's PCI function in its shared slot, and whether it carries the
/// multifunction flag (the companion on function 0 does).
pub fn usb2_function(c: &Controller) -> Option<(u32, bool)> {
    if c.controller_type != ControllerType::Usb {
        return None;
    }
    match c.model.as_deref()? {
        "ich9-ehci1" => Some((7, false)),
        "ich9-uhci1" => Some((0, true)),
        "ich9-uhci2" => Some((1, false)),
        "ich9-uhci3" => Some((2, false)),
        _ => None,
    }
}

/// The bus-0 slot another USB2 controller of `c`'s index already sits in.
pub fn usb2_slot(all: &[Controller], c: &Controller) -> Option<u32> {
    all.iter()
        .filter(|o| usb2_function(o).is_some() && o.index.unwrap_or(0) == c.index.unwrap_or(0))
        .find_map(|o| super::defaults::pci_slot(o.info.address.as_ref()?))
        .map(|(slot, _)| slot)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assigned(devices: &str) -> Result<String, DriverError> {
        let xml = format!(
            "<domain type='qemu'><name>t</name><memory>65536</memory>\
             <os><type arch='x86_64' machine='pc'>hvm</type></os><devices>{devices}</devices>\
             </domain>"
        );
        let mut d = DomainDef::from_xml(&xml).expect("parses");
        assign(&mut d)?;
        let out = d.to_xml(&Default::default());
        let start = out.find("<devices>").unwrap_or(0);
        Ok(out[start..]
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "))
    }

    #[test]
    fn ports_in_device_order_and_kept() {
        let out = assigned(
            "<controller type='usb' index='0' model='qemu-xhci' ports='4'/>\
             <input type='tablet' bus='usb'/>\
             <graphics type='spice'/>\
             <redirdev bus='usb' type='spicevmc'/>\
             <redirdev bus='usb' type='spicevmc'><address type='usb' bus='0' port='1'/></redirdev>",
        )
        .expect("assigns");
        assert!(
            out.contains("<input type='tablet' bus='usb'> <address type='usb' bus='0' port='2'/>"),
            "{out}"
        );
        assert!(
            out.contains("type='spicevmc'> <address type='usb' bus='0' port='3'/>"),
            "{out}"
        );
        assert!(!out.contains("<hub"), "{out}");
    }

    /// libvirt's usb-hub-autoadd: four devices on a 2-port UHCI need a hub.
    #[test]
    fn hub_added_when_ports_run_out() {
        let out = assigned(
            "<controller type='usb' index='0' model='piix3-uhci'/>\
             <input type='mouse' bus='usb'/><input type='mouse' bus='usb'/>\
             <input type='mouse' bus='usb'/><input type='tablet' bus='usb'/>",
        )
        .expect("assigns");
        let ports: Vec<&str> = out
            .match_indices("port='")
            .map(|(i, _)| out[i + 6..].split('\'').next().unwrap_or(""))
            .collect();
        // the hub takes port 1 first, then the devices: 2, 1.1, 1.2, 1.3
        assert_eq!(ports, ["2", "1.1", "1.2", "1.3", "1"], "{out}");
        assert!(out.contains("<hub type='usb'>"), "{out}");
    }

    #[test]
    fn companions_share_the_ehci_ports() {
        let out = assigned(
            "<controller type='usb' index='0' model='ich9-ehci1'/>\
             <controller type='usb' index='0' model='ich9-uhci1'><master startport='0'/></controller>\
             <input type='tablet' bus='usb'/><hub type='usb'/><input type='mouse' bus='usb'/>",
        )
        .expect("assigns");
        // hubs first: the hub on 1, then the tablet 2 and the mouse 3
        assert!(
            out.contains("<hub type='usb'> <address type='usb' bus='0' port='1'/>"),
            "{out}"
        );
        assert!(
            out.contains("<input type='mouse' bus='usb'> <address type='usb' bus='0' port='3'/>"),
            "{out}"
        );
    }

    #[test]
    fn refusals() {
        let none =
            assigned("<controller type='usb' model='none'/><input type='tablet' bus='usb'/>");
        assert!(
            matches!(&none, Err(DriverError::NotSupported(m)) if m.contains("USB is disabled")),
            "{none:?}"
        );
        let dup = assigned(
            "<controller type='usb' model='qemu-xhci'/>\
             <input type='tablet' bus='usb'><address type='usb' bus='0' port='1'/></input>\
             <input type='mouse' bus='usb'><address type='usb' bus='0' port='1'/></input>",
        );
        assert!(
            matches!(&dup, Err(DriverError::InvalidArgument(m)) if m.contains("two devices")),
            "{dup:?}"
        );
        let nobus = assigned(
            "<controller type='usb' model='qemu-xhci'/>\
             <input type='tablet' bus='usb'><address type='usb' bus='1' port='1'/></input>",
        );
        assert!(
            matches!(&nobus, Err(DriverError::InvalidArgument(m)) if m.contains("no USB bus 1")),
            "{nobus:?}"
        );
        let nohub = assigned(
            "<controller type='usb' model='qemu-xhci'/>\
             <input type='tablet' bus='usb'><address type='usb' bus='0' port='2.1'/></input>",
        );
        assert!(
            matches!(&nohub, Err(DriverError::InvalidArgument(m)) if m.contains("no hub at port 2")),
            "{nohub:?}"
        );
        let range = assigned(
            "<controller type='usb' model='qemu-xhci' ports='4'/>\
             <input type='tablet' bus='usb'><address type='usb' bus='0' port='5'/></input>",
        );
        assert!(
            matches!(&range, Err(DriverError::InvalidArgument(m)) if m.contains("not present")),
            "{range:?}"
        );
    }
}
