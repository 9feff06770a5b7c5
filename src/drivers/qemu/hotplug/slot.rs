//! Where a hot-plugged PCI device goes. i440fx guests take a free slot of the root bus (or of
//! a pci-bridge); q35's root bus `pcie.0` cannot hot-plug, so a PCI Express device takes the
//! first empty `pcie-root-port` (or switch downstream port) whose hotplug is not 'off', and a
//! conventional PCI device a slot of a PCI bridge, as libvirt does. The live definition's
//! addresses and QEMU's own view (`query-pci`) both count as taken.

use serde_json::Value;

use super::super::{
    defaults::{Machine, pci_address_on, pci_bsf, pci_infos},
    pci::PciModel,
};
use crate::{
    drivers::{DriverError, DriverResult},
    model::{Address, DomainDef, devices::ControllerType},
};

/// A bus a device may be hot-plugged into.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HotBus {
    /// libvirt's bus number: the index of the controller that provides it.
    index: u32,
    model: PciModel,
    /// The QEMU id of that bus.
    qdev: String,
    min: u32,
    max: u32,
}

/// The slot a hot-plugged device takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub bus: u32,
    pub slot: u32,
    /// The QEMU bus id for `device_add`.
    pub qdev_bus: String,
}

impl Slot {
    /// The address as the live definition records it.
    pub fn address(&self) -> Address {
        pci_address_on(self.bus, self.slot, 0, false)
    }

    /// `addr` for `device_add`.
    pub fn addr(&self) -> String {
        format!("{:#x}", self.slot)
    }
}

/// The buses of `def` a device can be hot-plugged into: PCI Express ports for a PCI Express
/// device on q35, else the conventional buses (the i440fx root and PCI bridges).
fn hot_buses(def: &DomainDef, pcie: bool) -> Vec<HotBus> {
    let q35 = Machine::of(def) == Machine::Q35;
    let mut out: Vec<HotBus> = def
        .devices
        .controllers
        .iter()
        .filter(|c| c.controller_type == ControllerType::Pci)
        .filter(|c| !c.target.iter().any(|(k, v)| *k == "hotplug" && v == "off"))
        .filter_map(|c| {
            let index = c.index.unwrap_or(0);
            let model = c.model.as_deref().and_then(PciModel::parse)?;
            let (min, max) = match model {
                PciModel::PcieRootPort | PciModel::SwitchDownstream if q35 && pcie => (0, 0),
                PciModel::PciBridge | PciModel::PcieToPciBridge if !(q35 && pcie) => (1, 31),
                PciModel::PciRoot if !q35 => (1, 31),
                _ => return None,
            };
            Some(HotBus {
                index,
                model,
                qdev: format!("pci.{index}"),
                min,
                max,
            })
        })
        .collect();
    // a guest defined without controllers still has its i440fx root bus
    if !q35
        && !def
            .devices
            .controllers
            .iter()
            .any(|c| c.controller_type == ControllerType::Pci && c.index.unwrap_or(0) == 0)
    {
        out.push(HotBus {
            index: 0,
            model: PciModel::PciRoot,
            qdev: "pci.0".into(),
            min: 1,
            max: 31,
        });
    }
    out.sort_by_key(|b| b.index);
    out
}

/// Every taken (bus, slot) and who holds it: the live definition's devices, and what QEMU
/// reports (`query-pci`), bridges' buses named by their QEMU id `pci.<index>`.
fn taken(def: &DomainDef, query_pci: &Value) -> Vec<(u32, u32, String)> {
    let mut used: Vec<(u32, u32, String)> = pci_infos(&def.devices)
        .into_iter()
        .filter_map(|(who, info)| {
            let (b, s, _) = info.address.as_ref().and_then(pci_bsf)?;
            Some((b, s, who))
        })
        .collect();
    used.push((0, 0, "the host bridge".into()));
    fn walk(bus: u32, devices: &Value, used: &mut Vec<(u32, u32, String)>) {
        for dev in devices.as_array().into_iter().flatten() {
            if let Some(s) = dev.get("slot").and_then(Value::as_u64) {
                let who = match dev.get("qdev_id").and_then(Value::as_str) {
                    Some(id) if !id.is_empty() => format!("QEMU device '{id}'"),
                    _ => "a device QEMU placed".into(),
                };
                used.push((bus, s as u32, who));
            }
            let child = dev
                .get("qdev_id")
                .and_then(Value::as_str)
                .and_then(|id| id.strip_prefix("pci."))
                .and_then(|n| n.parse::<u32>().ok());
            if let (Some(child), Some(devs)) =
                (child, dev.get("pci_bridge").and_then(|b| b.get("devices")))
            {
                walk(child, devs, used);
            }
        }
    }
    for bus in query_pci.as_array().into_iter().flatten() {
        if bus.get("bus").and_then(Value::as_u64) == Some(0)
            && let Some(devs) = bus.get("devices")
        {
            walk(0, devs, &mut used);
        }
    }
    used
}

/// The slot for a PCI device hot-plugged into the guest `def` describes: the one `wanted`
/// names, if that is a free slot of a hot-pluggable bus, else the first free one. `pcie`
/// says the device is PCI Express (it takes a root port on q35).
pub fn pick(
    def: &DomainDef,
    query_pci: &Value,
    wanted: Option<&Address>,
    pcie: bool,
    what: &str,
) -> DriverResult<Slot> {
    let buses = hot_buses(def, pcie);
    let used = taken(def, query_pci);
    let holder = |b: u32, s: u32| used.iter().find(|(ub, us, _)| *ub == b && *us == s);
    let q35 = Machine::of(def) == Machine::Q35;
    let slot = |bus: &HotBus, s: u32| Slot {
        bus: bus.index,
        slot: s,
        qdev_bus: bus.qdev.clone(),
    };
    let kinds = if q35 && pcie {
        "a pcie-root-port or pcie-switch-downstream-port whose hotplug is not 'off'"
    } else if q35 {
        "a pci-bridge or pcie-to-pci-bridge"
    } else {
        "the root bus or a pci-bridge"
    };
    if let Some(a) = wanted {
        let (b, s, f) = pci_bsf(a).ok_or_else(|| {
            DriverError::InvalidArgument(format!(
                "{what}: a hot-plugged device takes a PCI address of domain 0"
            ))
        })?;
        let bus = buses.iter().find(|x| x.index == b).ok_or_else(|| {
            DriverError::InvalidArgument(format!(
                "{what}: PCI bus {b:#04x} cannot take a hot-plugged device; it must be {kinds}"
            ))
        })?;
        if f != 0 || s < bus.min || s > bus.max {
            return Err(DriverError::InvalidArgument(format!(
                "{what}: PCI address {b:02x}:{s:02x}.{f} cannot take a hot-plugged device \
                 (bus {b:#04x} is a {}: slots {:#04x} to {:#04x}, function 0)",
                bus.model.as_str(),
                bus.min,
                bus.max
            )));
        }
        if let Some((_, _, who)) = holder(b, s) {
            return Err(DriverError::InvalidArgument(format!(
                "{what}: PCI address bus {b:#04x} slot {s:#04x} is already in use by {who}"
            )));
        }
        return Ok(slot(bus, s));
    }
    buses
        .iter()
        .find_map(|bus| {
            (bus.min..=bus.max)
                .find(|s| holder(bus.index, *s).is_none())
                .map(|s| slot(bus, s))
        })
        .ok_or_else(|| {
            DriverError::InvalidArgument(if q35 && pcie {
                format!(
                    "{what}: no free hot-pluggable PCIe port: every pcie-root-port is taken \
                     or has hotplug='off' (add one to the definition; it appears at the next \
                     start)"
                )
            } else {
                format!("{what}: no free PCI slot on {kinds}")
            })
        })
}
