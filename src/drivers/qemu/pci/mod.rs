//! PCI addresses and PCI controllers as libvirt's QEMU driver lays them out at define time,
//! for i440fx and q35 machines alike: every device gets libvirt's connect flags (conventional
//! PCI or PCI Express), the chipset's fixed functions are taken first (PIIX3 at slot 1, the
//! ICH9's at 1f, the primary video), and the rest take the next free slot in libvirt's device
//! order. A first dry run finds the controllers the devices need (a pcie-root-port for each
//! PCI Express device, a pcie-to-pci-bridge behind a root port for conventional PCI devices
//! on q35, pci-bridges when a bus is full, one spare root port on a new q35 guest); the second
//! run gives the addresses. The result is stored, so the guest keeps its hardware.

mod devs;
mod set;
#[cfg(test)]
mod tests;

pub use set::PciModel;

use super::caps::Caps;
use super::defaults::{Machine, pci_address_on, pci_bsf};
use crate::{
    drivers::DriverError,
    model::{
        DomainDef,
        devices::{Controller, ControllerType, SoundModel, VideoType},
    },
};
use devs::Dev;
use set::{AddrSet, Bsf, flags};

/// Lay out the PCI devices and controllers of an x86 definition.
pub fn assign(def: &mut DomainDef, caps: &Caps, kind: Machine) -> Result<(), DriverError> {
    if kind == Machine::Other {
        return Ok(());
    }
    let q35 = kind == Machine::Q35;
    check_controllers(def, kind)?;
    // `<address type='pci'/>` (domain, bus and slot 0) asks for an address, as in libvirt
    for dev in devs::all(&def.devices) {
        if let Some(info) = devs::info_mut(&mut def.devices, dev)
            && info
                .address
                .as_ref()
                .and_then(pci_bsf)
                .is_some_and(|(b, s, _)| b == 0 && s == 0)
        {
            info.address = None;
        }
    }
    let pcie_to_pci = caps.has_device("pcie-pci-bridge");
    let virtio = if q35 && caps.has_device("virtio-blk-pci-transitional") {
        flags::PCIE
    } else {
        flags::PCI
    };
    let fl = devs::Flags {
        pcie: if q35 { flags::PCIE } else { flags::PCI },
        virtio,
    };
    let max_idx = pci_controllers(def).map(|(_, i, _)| i).max().unwrap_or(0);
    let mut nbuses = max_idx as usize + 1;

    // first pass: which buses are needed
    {
        let mut set = create(def, nbuses, true, pcie_to_pci, fl)?;
        chipset(def, &mut set, kind, fl)?;
        if !q35 && set.buses.iter().any(|b| !b.fully_reserved()) {
            // room for a bridge to come, on pci-root machines
            set.reserve_next(flags::PCI, None, "a future pci-bridge")?;
        }
        devices(def, &mut set, fl)?;
        if q35 && max_idx == 0 && set.buses.len() > 1 {
            // a new guest whose controllers are ours gets one empty root port for hot-plug
            set.reserve_next(flags::PCIE, None, "a spare root port")?;
        }
        let mut i = 1;
        while i < set.buses.len() {
            let Some(model) = set.buses[i].model else {
                i += 1;
                continue;
            };
            let exists = def
                .devices
                .controllers
                .iter()
                .any(|c| c.controller_type == ControllerType::Pci && c.index == Some(i as u32));
            if !exists {
                let mut c = Controller::new(ControllerType::Pci);
                c.index = Some(i as u32);
                c.model = Some(model.as_str().into());
                // appended, as libvirt adds them
                def.devices.controllers.push(c);
                let who = format!("<controller type='pci' index='{i}'>");
                set.reserve_next(model.connect(), None, &who)?;
            }
            i += 1;
        }
        nbuses = set.buses.len();
    }

    // second pass: the addresses
    let mut set = create(def, nbuses, false, pcie_to_pci, fl)?;
    chipset(def, &mut set, kind, fl)?;
    devices(def, &mut set, fl)?;
    all_multi(def);
    canonical_addresses(def);
    controller_defaults(def, caps)
}

/// Every PCI address written in full, as libvirt writes it (a definition may leave out
/// domain, bus, slot or function, which are then 0).
fn canonical_addresses(def: &mut DomainDef) {
    for dev in devs::all(&def.devices) {
        if let Some(info) = devs::info_mut(&mut def.devices, dev)
            && let Some(a) = &info.address
            && let Some(at) = pci_bsf(a)
        {
            let multi = a.get("multifunction").map(str::to_owned);
            let mut full = address(at, false);
            if let Some(m) = multi {
                let _ = full.set("multifunction", Some(&m));
            }
            info.address = Some(full);
        }
    }
}

/// The PCI controllers: position, index, model.
fn pci_controllers(def: &DomainDef) -> impl Iterator<Item = (usize, u32, Option<PciModel>)> + '_ {
    def.devices
        .controllers
        .iter()
        .enumerate()
        .filter(|(_, c)| c.controller_type == ControllerType::Pci)
        .map(|(i, c)| {
            (
                i,
                c.index.unwrap_or(0),
                c.model.as_deref().and_then(PciModel::parse),
            )
        })
}

/// libvirt's checks of PCI controllers: a model for each, roots at index 0 only, others
/// above it, expander buses on their own machine, options only where they apply.
fn check_controllers(def: &DomainDef, kind: Machine) -> Result<(), DriverError> {
    let bad = |m: String| Err(DriverError::InvalidArgument(m));
    let mut seen: Vec<u32> = Vec::new();
    for c in &def.devices.controllers {
        if c.controller_type != ControllerType::Pci {
            continue;
        }
        let idx = c.index.unwrap_or(0);
        let who = format!("<controller type='pci' index='{idx}'>");
        if seen.contains(&idx) {
            return bad(format!("{who}: two PCI controllers have index {idx}"));
        }
        seen.push(idx);
        let Some(model) = c.model.as_deref().and_then(PciModel::parse) else {
            return bad(format!(
                "{who}: a PCI controller above index 0 needs a model"
            ));
        };
        let root = matches!(model, PciModel::PciRoot | PciModel::PcieRoot);
        if root != (idx == 0) {
            return bad(format!(
                "{who}: model '{}' {}",
                model.as_str(),
                if root {
                    "must have index 0"
                } else {
                    "needs an index above 0"
                }
            ));
        }
        match model {
            PciModel::PciExpander if kind != Machine::I440fx => {
                return bad(format!(
                    "{who}: pci-expander-bus controllers are only supported on i440fx machines"
                ));
            }
            PciModel::PcieExpander if kind != Machine::Q35 => {
                return bad(format!(
                    "{who}: pcie-expander-bus controllers are only supported on q35 machines"
                ));
            }
            _ => {}
        }
        let allowed: &[&str] = match model {
            PciModel::PciRoot if kind == Machine::I440fx => &["hotplug"],
            PciModel::PciBridge => &["chassisNr"],
            PciModel::PcieRootPort => &["chassis", "port", "hotplug"],
            PciModel::SwitchDownstream => &["chassis", "port", "hotplug"],
            PciModel::PciExpander | PciModel::PcieExpander => &["busNr"],
            _ => &[],
        };
        if let Some((k, _)) = c.target.iter().find(|(k, _)| !allowed.contains(k)) {
            return bad(format!(
                "{who}: <target {k}> does not apply to a {} controller",
                model.as_str()
            ));
        }
        if c.numa_node.is_some() && !matches!(model, PciModel::PciExpander | PciModel::PcieExpander)
        {
            return bad(format!(
                "{who}: <target><node> applies to expander buses only"
            ));
        }
        if let Some(name) = &c.model_name
            && name != model_name(model, true)
            && !(model == PciModel::PcieRootPort && name == "ioh3420")
        {
            return bad(format!(
                "{who}: <model name='{name}'> is not a device for a {} controller",
                model.as_str()
            ));
        }
    }
    Ok(())
}

/// A new address set with the controllers' buses and the addresses the definition gives.
fn create(
    def: &DomainDef,
    nbuses: usize,
    dry_run: bool,
    pcie_to_pci: bool,
    fl: devs::Flags,
) -> Result<AddrSet, DriverError> {
    let mut set = AddrSet::new(nbuses, dry_run, pcie_to_pci);
    let mut has_pcie_root = false;
    for (i, idx, model) in pci_controllers(def) {
        if let Some(m) = model {
            let c = &def.devices.controllers[i];
            let hotplug = !c.target.iter().any(|(k, v)| *k == "hotplug" && v == "off");
            set.buses[idx as usize].set_model(m, hotplug);
            has_pcie_root |= m == PciModel::PcieRoot;
        }
    }
    if set.buses[0].model.is_none() {
        set.buses[0].set_model(PciModel::PciRoot, true);
    }
    let default = if has_pcie_root {
        PciModel::PcieRootPort
    } else {
        PciModel::PciBridge
    };
    for b in &mut set.buses[1..] {
        if b.model.is_none() {
            b.set_model(default, true);
        }
    }
    // what the definition places is kept (the PIIX3's own functions are checked later)
    for dev in devs::all(&def.devices) {
        let Some(at) = devs::info(&def.devices, dev)
            .and_then(|i| i.address.as_ref())
            .and_then(pci_bsf)
        else {
            continue;
        };
        if let Dev::Controller(i) = dev {
            let c = &def.devices.controllers[i];
            let piix3 = at.0 == 0
                && at.1 == 1
                && c.index.unwrap_or(0) == 0
                && ((c.controller_type == ControllerType::Ide && at.2 == 1)
                    || (c.controller_type == ControllerType::Usb
                        && matches!(c.model.as_deref(), None | Some("piix3-uhci"))
                        && at.2 == 2));
            if piix3 {
                continue;
            }
        }
        let f = match devs::flags(&def.devices, dev, fl) {
            0 => flags::PCI_DEVICE,
            f => f,
        };
        set.reserve(at, f, true, &devs::who(&def.devices, dev))?;
    }
    Ok(set)
}

/// The chipset's built-in functions and the places libvirt gives the primary video, the
/// ICH9 audio and USB2 controllers, and a dmi-to-pci-bridge.
fn chipset(
    def: &mut DomainDef,
    set: &mut AddrSet,
    kind: Machine,
    fl: devs::Flags,
) -> Result<(), DriverError> {
    let d = &mut def.devices;
    let (video_slot, fixed_flags) = match kind {
        Machine::I440fx => {
            for c in &mut d.controllers {
                let function = match (c.controller_type, c.index.unwrap_or(0), c.model.as_deref()) {
                    (ControllerType::Ide, 0, _) => 1,
                    (ControllerType::Usb, 0, None | Some("piix3-uhci")) => 2,
                    _ => continue,
                };
                let who = format!("<controller type='{}' index='0'>", c.controller_type);
                match c.info.address.as_ref().and_then(pci_bsf) {
                    Some(at) if at != (0, 1, function) => {
                        return Err(DriverError::InvalidArgument(format!(
                            "{who}: it is built into the PIIX3 at PCI address 00:01.{function}, \
                             not {:02x}:{:02x}.{}",
                            at.0, at.1, at.2
                        )));
                    }
                    Some(_) => {}
                    None => c.info.address = Some(pci_address_on(0, 1, function, false)),
                }
                set.reserve((0, 1, function), flags::PCI, true, &who)?;
            }
            set.reserve((0, 1, 0), flags::PCI, true, "the PIIX3")?;
            set.reserve((0, 1, 3), flags::PCI, true, "the PIIX3")?;
            (2, flags::PCI)
        }
        _ => {
            let pcie = flags::PCIE_DEVICE;
            for i in 0..d.controllers.len() {
                let c = &d.controllers[i];
                let unaddressed = c.info.address.is_none();
                match (c.controller_type, c.index.unwrap_or(0), c.model.as_deref()) {
                    (ControllerType::Sata, 0, _) => match c.info.address.as_ref().and_then(pci_bsf)
                    {
                        Some(at) if at != (0, 0x1f, 2) => {
                            return Err(DriverError::InvalidArgument(format!(
                                "<controller type='sata' index='0'>: the q35's SATA controller is \
                                 at PCI address 00:1f.2, not {:02x}:{:02x}.{}",
                                at.0, at.1, at.2
                            )));
                        }
                        Some(_) => {}
                        None => {
                            d.controllers[i].info.address = Some(pci_address_on(0, 0x1f, 2, false))
                        }
                    },
                    (ControllerType::Usb, idx, Some("ich9-uhci1")) if unaddressed => {
                        let slot = [0x1d, 0x1a].into_iter().find(|s| !set.slot_in_use(0, *s));
                        if let Some(slot) = slot {
                            let who = format!("<controller type='usb' index='{idx}'>");
                            set.reserve((0, slot, 0), pcie, true, &who)?;
                            d.controllers[i].info.address = Some(pci_address_on(0, slot, 0, true));
                        }
                    }
                    (ControllerType::Pci, idx, Some("dmi-to-pci-bridge"))
                        if unaddressed && !set.slot_in_use(0, 0x1e) =>
                    {
                        let who = format!("<controller type='pci' index='{idx}'>");
                        set.reserve((0, 0x1e, 0), pcie, true, &who)?;
                        d.controllers[i].info.address = Some(pci_address_on(0, 0x1e, 0, false));
                    }
                    _ => {}
                }
            }
            set.reserve((0, 0x1f, 0), pcie, true, "the ICH9")?;
            set.reserve((0, 0x1f, 3), pcie, true, "the ICH9")?;
            (1, pcie)
        }
    };
    // the primary video where QEMU would put it, when that slot is free
    if let Some(v) = d.videos.first_mut()
        && !matches!(
            v.model.map(|m| m.model_type),
            Some(VideoType::None | VideoType::Ramfb)
        )
        && v.info.address.is_none()
    {
        set.validate((0, video_slot, 0), fixed_flags, true, "<video>")?;
        if set.slot_in_use(0, video_slot) {
            let f = devs::flags_of_video(v, fl);
            let at = set.reserve_next(f, None, "<video>")?;
            if !set.is_dry_run() {
                v.info.address = Some(address(at, false));
            }
        } else {
            set.reserve((0, video_slot, 0), fixed_flags, true, "<video>")?;
            v.info.address = Some(pci_address_on(0, video_slot, 0, false));
        }
    }
    if kind == Machine::Q35
        && !set.slot_in_use(0, 0x1b)
        && let Some(s) = d
            .sounds
            .iter_mut()
            .find(|s| s.model == SoundModel::Ich9 && s.info.address.is_none())
    {
        set.reserve(
            (0, 0x1b, 0),
            flags::PCIE_DEVICE,
            true,
            "<sound model='ich9'>",
        )?;
        s.info.address = Some(pci_address_on(0, 0x1b, 0, false));
    }
    Ok(())
}

fn address(at: Bsf, multi: bool) -> crate::model::Address {
    pci_address_on(at.0, at.1, at.2, multi)
}

/// Every device still without an address takes the next free one, in libvirt's order.
fn devices(def: &mut DomainDef, set: &mut AddrSet, fl: devs::Flags) -> Result<(), DriverError> {
    let d = &mut def.devices;
    for dev in devs::order(d) {
        if devs::info(d, dev).is_none_or(|i| i.address.is_some()) {
            continue;
        }
        let f = devs::flags(d, dev, fl);
        let who = devs::who(d, dev);
        // an ICH9 EHCI and its UHCI companions share one slot
        if let Dev::Controller(i) = dev
            && let Some((function, multi)) = super::usb::usb2_function(&d.controllers[i])
        {
            let idx = d.controllers[i].index.unwrap_or(0);
            let sibling = d
                .controllers
                .iter()
                .filter(|o| super::usb::usb2_function(o).is_some() && o.index.unwrap_or(0) == idx)
                .find_map(|o| o.info.address.as_ref().and_then(pci_bsf));
            let at = match sibling {
                Some((b, s, _)) => {
                    let at = (b, s, function);
                    set.reserve(at, f, true, &who)?;
                    Some(at)
                }
                None => {
                    let at = set.reserve_next(f, Some(function), &who)?;
                    (!set.is_dry_run()).then_some(at)
                }
            };
            if let Some(at) = at
                && let Some(info) = devs::info_mut(d, dev)
            {
                info.address = Some(address(at, multi));
            }
            continue;
        }
        let at = set.reserve_next(f, None, &who)?;
        if !set.is_dry_run()
            && let Some(info) = devs::info_mut(d, dev)
        {
            info.address = Some(address(at, false));
        }
    }
    Ok(())
}

/// Function 0 of a slot whose other functions are used says so (`multifunction='on'`).
fn all_multi(def: &mut DomainDef) {
    let d = &mut def.devices;
    let all = devs::all(d);
    let shared: Vec<(u32, u32)> = all
        .iter()
        .filter_map(|dev| devs::info(d, *dev)?.address.as_ref().and_then(pci_bsf))
        .filter(|(_, _, f)| *f != 0)
        .map(|(b, s, _)| (b, s))
        .collect();
    for dev in all {
        if let Some(info) = devs::info_mut(d, dev)
            && let Some(a) = &mut info.address
            && let Some((b, s, 0)) = pci_bsf(a)
            && shared.contains(&(b, s))
            && a.get("multifunction").is_none()
        {
            let _ = a.set("multifunction", Some("on"));
        }
    }
}

/// The QEMU device behind each PCI controller model, as libvirt names it.
pub fn model_name(model: PciModel, generic_root_port: bool) -> &'static str {
    match model {
        PciModel::PciBridge => "pci-bridge",
        PciModel::DmiToPciBridge => "i82801b11-bridge",
        PciModel::PcieToPciBridge => "pcie-pci-bridge",
        PciModel::PcieRootPort if generic_root_port => "pcie-root-port",
        PciModel::PcieRootPort => "ioh3420",
        PciModel::SwitchUpstream => "x3130-upstream",
        PciModel::SwitchDownstream => "xio3130-downstream",
        PciModel::PciExpander => "pxb",
        PciModel::PcieExpander => "pxb-pcie",
        PciModel::PciRoot | PciModel::PcieRoot => "",
    }
}

/// What libvirt writes of each PCI controller: its device's name, a pci-bridge's chassisNr,
/// a port's chassis and port, an expander bus's busNr; and a pci-bridge's index must be
/// above its bus.
fn controller_defaults(def: &mut DomainDef, caps: &Caps) -> Result<(), DriverError> {
    let lowest_bus_nr = |cs: &[Controller]| {
        cs.iter()
            .filter(|c| c.controller_type == ControllerType::Pci)
            .filter_map(|c| target_num(c, "busNr"))
            .min()
            .unwrap_or(256)
    };
    for i in 0..def.devices.controllers.len() {
        let c = &def.devices.controllers[i];
        if c.controller_type != ControllerType::Pci {
            continue;
        }
        let Some(model) = c.model.as_deref().and_then(PciModel::parse) else {
            continue;
        };
        let idx = c.index.unwrap_or(0);
        let at = c
            .info
            .address
            .as_ref()
            .and_then(pci_bsf)
            .unwrap_or((0, 0, 0));
        let low = lowest_bus_nr(&def.devices.controllers);
        let c = &mut def.devices.controllers[i];
        let name = model_name(model, caps.has_device("pcie-root-port"));
        if !name.is_empty() && c.model_name.is_none() {
            c.model_name = Some(name.into());
        }
        let mut set = |k: &'static str, v: String| {
            if !c.target.iter().any(|(n, _)| *n == k) {
                c.target.push((k, v));
            }
        };
        match model {
            PciModel::PciBridge => set("chassisNr", idx.to_string()),
            PciModel::PcieRootPort => {
                set("chassis", idx.to_string());
                set("port", format!("{:#x}", (at.1 << 3) | at.2));
            }
            PciModel::SwitchDownstream => {
                set("chassis", idx.to_string());
                set("port", format!("{:#x}", at.1));
            }
            PciModel::PciExpander | PciModel::PcieExpander if target_num(c, "busNr").is_none() => {
                if low <= 2 {
                    return Err(DriverError::InvalidArgument(format!(
                        "<controller type='pci' index='{idx}'>: no free busNr below the lowest \
                         one in use is left to give it; set <target busNr> yourself"
                    )));
                }
                c.target.push(("busNr", (low - 2).to_string()));
            }
            _ => {}
        }
        sort_target(c);
        if model == PciModel::PciBridge && idx <= at.0 {
            return Err(DriverError::InvalidArgument(format!(
                "<controller type='pci' index='{idx}'>: a pci-bridge's index must be above the \
                 bus it sits on ({:#04x})",
                at.0
            )));
        }
    }
    Ok(())
}

fn target_num(c: &Controller, k: &str) -> Option<u32> {
    let v = c.target.iter().find(|(n, _)| *n == k)?.1.as_str();
    match v.strip_prefix("0x") {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => v.parse().ok(),
    }
}

/// `<target>` attributes in the order and form libvirt writes them (`port` in hex, other
/// numbers in decimal).
fn sort_target(c: &mut Controller) {
    const ORDER: [&str; 6] = ["chassisNr", "chassis", "port", "busNr", "index", "hotplug"];
    for i in 0..c.target.len() {
        let k = c.target[i].0;
        if k == "hotplug" {
            continue;
        }
        if let Some(n) = target_num(c, k) {
            c.target[i].1 = if k == "port" {
                format!("{n:#x}")
            } else {
                n.to_string()
            };
        }
    }
    c.target
        .sort_by_key(|(k, _)| ORDER.iter().position(|o| o == k).unwrap_or(ORDER.len()));
}

/// Check the PCI addresses of a definition against its buses: each on a bus one of its
/// controllers provides, in a slot that bus has (a pcie-to-pci-bridge's slot 0 is its own),
/// fit for the device, and used once.
pub fn check(def: &DomainDef) -> Result<(), DriverError> {
    let kind = Machine::of(def);
    let q35 = kind == Machine::Q35;
    let fl = devs::Flags {
        pcie: if q35 { flags::PCIE } else { flags::PCI },
        virtio: if q35 { flags::PCIE } else { flags::PCI },
    };
    check_controllers(def, kind)?;
    let max_idx = pci_controllers(def).map(|(_, i, _)| i).max().unwrap_or(0);
    create(def, max_idx as usize + 1, false, true, fl).map(|_| ())
}
