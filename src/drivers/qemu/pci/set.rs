//! A guest's PCI buses and which of their functions are taken, with libvirt's rules for which
//! device may plug into which bus (its "connect flags"), how the next free slot is found and
//! how a dry run grows the set with the controllers a device would need.

use crate::drivers::DriverError;

/// What a bus accepts, and what a device needs, as libvirt's connect flags.
pub(super) mod flags {
    pub const AUTOASSIGN: u32 = 1 << 0;
    pub const HOTPLUGGABLE: u32 = 1 << 1;
    pub const INTEGRATED: u32 = 1 << 2;
    pub const AGGREGATE_SLOT: u32 = 1 << 3;
    pub const PCI_DEVICE: u32 = 1 << 4;
    pub const PCIE_DEVICE: u32 = 1 << 5;
    pub const PCIE_ROOT_PORT: u32 = 1 << 6;
    pub const PCIE_SWITCH_UPSTREAM_PORT: u32 = 1 << 7;
    pub const PCIE_SWITCH_DOWNSTREAM_PORT: u32 = 1 << 8;
    pub const DMI_TO_PCI_BRIDGE: u32 = 1 << 9;
    pub const PCI_EXPANDER_BUS: u32 = 1 << 10;
    pub const PCIE_EXPANDER_BUS: u32 = 1 << 11;
    pub const PCI_BRIDGE: u32 = 1 << 12;
    pub const PCIE_TO_PCI_BRIDGE: u32 = 1 << 13;
    pub const TYPES: u32 = PCI_DEVICE
        | PCIE_DEVICE
        | PCIE_ROOT_PORT
        | PCIE_SWITCH_UPSTREAM_PORT
        | PCIE_SWITCH_DOWNSTREAM_PORT
        | DMI_TO_PCI_BRIDGE
        | PCI_EXPANDER_BUS
        | PCIE_EXPANDER_BUS
        | PCI_BRIDGE
        | PCIE_TO_PCI_BRIDGE;
    pub const ENDPOINT: u32 = PCI_DEVICE | PCIE_DEVICE;
    /// A device that is conventional PCI only.
    pub const PCI: u32 = PCI_DEVICE | AUTOASSIGN;
    /// A PCI Express endpoint.
    pub const PCIE: u32 = PCIE_DEVICE | AUTOASSIGN;
}

/// libvirt's PCI controller models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PciModel {
    PciRoot,
    PcieRoot,
    PciBridge,
    DmiToPciBridge,
    PcieRootPort,
    SwitchUpstream,
    SwitchDownstream,
    PciExpander,
    PcieExpander,
    PcieToPciBridge,
}

impl PciModel {
    pub fn parse(s: &str) -> Option<PciModel> {
        Some(match s {
            "pci-root" => PciModel::PciRoot,
            "pcie-root" => PciModel::PcieRoot,
            "pci-bridge" => PciModel::PciBridge,
            "dmi-to-pci-bridge" => PciModel::DmiToPciBridge,
            "pcie-root-port" => PciModel::PcieRootPort,
            "pcie-switch-upstream-port" => PciModel::SwitchUpstream,
            "pcie-switch-downstream-port" => PciModel::SwitchDownstream,
            "pci-expander-bus" => PciModel::PciExpander,
            "pcie-expander-bus" => PciModel::PcieExpander,
            "pcie-to-pci-bridge" => PciModel::PcieToPciBridge,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PciModel::PciRoot => "pci-root",
            PciModel::PcieRoot => "pcie-root",
            PciModel::PciBridge => "pci-bridge",
            PciModel::DmiToPciBridge => "dmi-to-pci-bridge",
            PciModel::PcieRootPort => "pcie-root-port",
            PciModel::SwitchUpstream => "pcie-switch-upstream-port",
            PciModel::SwitchDownstream => "pcie-switch-downstream-port",
            PciModel::PciExpander => "pci-expander-bus",
            PciModel::PcieExpander => "pcie-expander-bus",
            PciModel::PcieToPciBridge => "pcie-to-pci-bridge",
        }
    }

    /// How a controller of this model plugs into its parent bus (0 for the roots).
    pub fn connect(self) -> u32 {
        use flags::*;
        match self {
            PciModel::PciRoot | PciModel::PcieRoot => 0,
            PciModel::PciBridge => PCI_BRIDGE,
            PciModel::PciExpander => PCI_EXPANDER_BUS,
            PciModel::PcieExpander => PCIE_EXPANDER_BUS,
            PciModel::DmiToPciBridge => DMI_TO_PCI_BRIDGE,
            PciModel::PcieToPciBridge => PCIE_TO_PCI_BRIDGE,
            PciModel::PcieRootPort => PCIE_ROOT_PORT | AGGREGATE_SLOT,
            PciModel::SwitchUpstream => PCIE_SWITCH_UPSTREAM_PORT,
            PciModel::SwitchDownstream => PCIE_SWITCH_DOWNSTREAM_PORT,
        }
    }

    /// What the bus this controller provides accepts, and its slot range.
    fn bus(self, hotplug: bool) -> (u32, u32, u32) {
        use flags::*;
        let hp = if hotplug { HOTPLUGGABLE } else { 0 };
        match self {
            PciModel::PciRoot => (
                AUTOASSIGN | PCI_DEVICE | PCI_BRIDGE | PCI_EXPANDER_BUS | hp,
                1,
                31,
            ),
            PciModel::PciBridge | PciModel::PcieToPciBridge => {
                (AUTOASSIGN | PCI_DEVICE | PCI_BRIDGE | hp, 1, 31)
            }
            PciModel::PciExpander => (AUTOASSIGN | PCI_DEVICE | PCI_BRIDGE | hp, 0, 31),
            PciModel::PcieRoot => (
                PCIE_DEVICE | PCIE_ROOT_PORT | DMI_TO_PCI_BRIDGE | PCIE_EXPANDER_BUS,
                1,
                31,
            ),
            PciModel::DmiToPciBridge => (PCI_DEVICE | PCI_BRIDGE, 0, 31),
            PciModel::PcieRootPort | PciModel::SwitchDownstream => (
                AUTOASSIGN | PCIE_DEVICE | PCIE_SWITCH_UPSTREAM_PORT | PCIE_TO_PCI_BRIDGE | hp,
                0,
                0,
            ),
            PciModel::SwitchUpstream => (PCIE_SWITCH_DOWNSTREAM_PORT, 0, 31),
            PciModel::PcieExpander => (PCIE_ROOT_PORT | DMI_TO_PCI_BRIDGE, 0, 31),
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    functions: u8,
    aggregate: bool,
}

/// One bus: the controller model behind it, what it accepts, which functions are taken.
#[derive(Debug, Clone)]
pub struct Bus {
    pub model: Option<PciModel>,
    flags: u32,
    min_slot: u32,
    max_slot: u32,
    slots: [Slot; 32],
}

impl Bus {
    fn empty() -> Bus {
        Bus {
            model: None,
            flags: 0,
            min_slot: 0,
            max_slot: 31,
            slots: [Slot::default(); 32],
        }
    }

    pub fn set_model(&mut self, model: PciModel, hotplug: bool) {
        let (f, min, max) = model.bus(hotplug);
        self.model = Some(model);
        self.flags = f;
        self.min_slot = min;
        self.max_slot = max;
    }

    pub fn fully_reserved(&self) -> bool {
        (self.min_slot..=self.max_slot).all(|s| self.slots[s as usize].functions != 0)
    }
}

/// A PCI address: bus, slot, function.
pub type Bsf = (u32, u32, u32);

/// The buses of a guest and what holds each function.
pub struct AddrSet {
    pub buses: Vec<Bus>,
    /// A dry run adds the buses a device needs instead of failing.
    dry_run: bool,
    /// Whether the emulator has `pcie-pci-bridge` (else a q35 guest's conventional PCI
    /// devices go behind a dmi-to-pci-bridge and a pci-bridge).
    pcie_to_pci: bool,
    holders: Vec<(Bsf, String)>,
}

fn show((b, s, f): Bsf) -> String {
    format!("0000:{b:02x}:{s:02x}.{f}")
}

impl AddrSet {
    pub fn new(nbuses: usize, dry_run: bool, pcie_to_pci: bool) -> AddrSet {
        AddrSet {
            buses: vec![Bus::empty(); nbuses],
            dry_run,
            pcie_to_pci,
            holders: Vec::new(),
        }
    }

    /// Whether any function of `bus:slot` is taken.
    pub fn slot_in_use(&self, bus: u32, slot: u32) -> bool {
        self.buses
            .get(bus as usize)
            .is_some_and(|b| b.slots[slot as usize & 31].functions != 0)
    }

    /// Whether a device with `dev` flags may sit at `at`; `from_config` relaxes PCI vs PCIe
    /// as libvirt does for addresses the user gave.
    fn compatible(
        &self,
        at: Bsf,
        bus_flags: u32,
        dev: u32,
        from_config: bool,
    ) -> Result<(), String> {
        use flags::*;
        let (mut bf, mut df) = (bus_flags, dev);
        if df & INTEGRATED != 0 {
            if at.0 == 0 {
                bf |= AUTOASSIGN;
            } else {
                return Err("it must be an integrated device (bus 0)".into());
            }
        }
        if from_config {
            if bf & ENDPOINT != 0 {
                bf |= ENDPOINT;
            }
            if df & PCI_BRIDGE != 0 {
                df |= PCI_DEVICE;
            }
        } else if df & AUTOASSIGN != 0 && bf & AUTOASSIGN == 0 {
            return Err(format!(
                "the PCI controller with index='{}' does not take devices automatically",
                at.0
            ));
        }
        if df & HOTPLUGGABLE != 0 && bf & HOTPLUGGABLE == 0 {
            return Err(format!(
                "the PCI controller with index='{}' does not support hot-plug",
                at.0
            ));
        }
        if df & bf & TYPES == 0 {
            return Err(format!(
                "the PCI controller with index='{}'{} cannot take a {}",
                at.0,
                self.buses[at.0 as usize]
                    .model
                    .map(|m| format!(" (model '{}')", m.as_str()))
                    .unwrap_or_default(),
                connect_name(df)
            ));
        }
        Ok(())
    }

    /// Check that `at` exists and suits a device with `dev` flags.
    pub fn validate(
        &self,
        at: Bsf,
        dev: u32,
        from_config: bool,
        who: &str,
    ) -> Result<(), DriverError> {
        let bad = |why: String| {
            Err(DriverError::InvalidArgument(format!(
                "{who}: PCI address {}: {why}",
                show(at)
            )))
        };
        let Some(bus) = self.buses.get(at.0 as usize) else {
            return bad(format!(
                "there is no PCI bus {} (buses go up to {})",
                at.0,
                self.buses.len().saturating_sub(1)
            ));
        };
        if let Err(why) = self.compatible(at, bus.flags, dev, from_config) {
            return bad(why);
        }
        if at.1 < bus.min_slot {
            return bad(format!(
                "slot must be at least {} on this bus{}",
                bus.min_slot,
                if bus.model == Some(PciModel::PcieToPciBridge) {
                    " (slot 0 of a pcie-to-pci-bridge holds its hot-plug controller)"
                } else {
                    ""
                }
            ));
        }
        if at.1 > bus.max_slot {
            return bad(format!("slot must be at most {} on this bus", bus.max_slot));
        }
        if at.2 > 7 {
            return bad("function must be at most 7".into());
        }
        Ok(())
    }

    /// Grow the set (dry runs only) so that bus `at.0` exists, adding the controllers a
    /// device with `dev` flags needs there; the device's bus may move past a bridge added
    /// for it.
    fn grow(&mut self, at: &mut Bsf, dev: u32) -> Result<(), DriverError> {
        use flags::*;
        let mut add = at.0 as i64 - self.buses.len() as i64 + 1;
        if add <= 0 {
            return Ok(());
        }
        let (mut dmi, mut pcie_bridge) = (false, false);
        let model = if dev & PCI_DEVICE != 0 {
            let has_bridge_slot = self.buses.iter().any(|b| b.flags & PCI_BRIDGE != 0);
            if !has_bridge_slot {
                if self.pcie_to_pci {
                    pcie_bridge = true;
                } else {
                    dmi = true;
                }
            }
            if (dmi || pcie_bridge) && add == 1 {
                add += 1;
                at.0 += 1;
            }
            PciModel::PciBridge
        } else if dev & (PCIE_DEVICE | PCIE_SWITCH_UPSTREAM_PORT) != 0 {
            PciModel::PcieRootPort
        } else {
            return Err(DriverError::InvalidArgument(format!(
                "no PCI slot is free for a {}, and libvirt adds no controller for it \
                 automatically",
                connect_name(dev)
            )));
        };
        let mut i = self.buses.len();
        self.buses
            .extend(std::iter::repeat_n(Bus::empty(), add as usize));
        if dmi {
            self.buses[i].set_model(PciModel::DmiToPciBridge, false);
            i += 1;
        }
        if pcie_bridge {
            // the root port is for the bridge alone, not for the spare a new guest gets
            self.buses[i].set_model(PciModel::PcieRootPort, true);
            self.buses[i].flags = PCIE_TO_PCI_BRIDGE;
            i += 1;
            self.buses[i].set_model(PciModel::PcieToPciBridge, true);
            i += 1;
        }
        for b in &mut self.buses[i..] {
            b.set_model(model, true);
        }
        Ok(())
    }

    /// Take `at` for `who`; an address already taken is refused naming both.
    pub fn reserve(
        &mut self,
        mut at: Bsf,
        dev: u32,
        from_config: bool,
        who: &str,
    ) -> Result<(), DriverError> {
        if self.dry_run {
            self.grow(&mut at, dev)?;
        }
        self.validate(at, dev, from_config, who)?;
        let bus = &mut self.buses[at.0 as usize];
        let slot = &mut bus.slots[at.1 as usize];
        if slot.functions & (1 << at.2) != 0 {
            let other = self
                .holders
                .iter()
                .find(|(a, _)| *a == at)
                .map(|(_, w)| w.as_str())
                .unwrap_or("another device");
            return Err(DriverError::InvalidArgument(format!(
                "{who}: PCI address {} is already in use by {other}",
                show(at)
            )));
        }
        if slot.functions == 0 && dev & flags::AGGREGATE_SLOT != 0 {
            slot.aggregate = true;
        }
        slot.functions |= 1 << at.2;
        self.holders.push((at, who.to_owned()));
        Ok(())
    }

    /// The first place on `bus` from slot `from` a device with `dev` flags fits.
    fn free_on(&self, bus: u32, function: Option<u32>, dev: u32) -> Option<Bsf> {
        let b = &self.buses[bus as usize];
        let f0 = function.unwrap_or(0);
        if self
            .compatible((bus, b.min_slot, f0), b.flags, dev, false)
            .is_err()
        {
            return None;
        }
        for slot in b.min_slot..=b.max_slot {
            let s = b.slots[slot as usize];
            if s.functions == 0 {
                return Some((bus, slot, f0));
            }
            if dev & flags::AGGREGATE_SLOT != 0 && s.aggregate {
                if s.functions & (1 << f0) == 0 {
                    return Some((bus, slot, f0));
                }
                if function.is_none()
                    && let Some(f) = (0..8).find(|f| s.functions & (1 << f) == 0)
                {
                    return Some((bus, slot, f));
                }
            }
        }
        None
    }

    /// The next free address for a device with `dev` flags (function 0 unless `function`
    /// says), growing the set in a dry run.
    pub fn next(&mut self, dev: u32, function: Option<u32>) -> Result<Bsf, DriverError> {
        if self.buses.is_empty() {
            return Err(DriverError::InvalidArgument(
                "no PCI buses available".into(),
            ));
        }
        for bus in 0..self.buses.len() as u32 {
            if let Some(at) = self.free_on(bus, function, dev) {
                return Ok(at);
            }
        }
        if self.dry_run {
            let mut at = (self.buses.len() as u32, 0, function.unwrap_or(0));
            self.grow(&mut at, dev)?;
            at.1 = self.buses[at.0 as usize].min_slot;
            return Ok(at);
        }
        Err(DriverError::InvalidArgument(format!(
            "no PCI slot is free for a {}",
            connect_name(dev)
        )))
    }

    /// Find and take the next free address for `who`.
    pub fn reserve_next(
        &mut self,
        dev: u32,
        function: Option<u32>,
        who: &str,
    ) -> Result<Bsf, DriverError> {
        let at = self.next(dev, function)?;
        self.reserve(at, dev, false, who)?;
        Ok(at)
    }

    pub fn is_dry_run(&self) -> bool {
        self.dry_run
    }
}

/// What a device with these flags is, for messages.
fn connect_name(dev: u32) -> &'static str {
    use flags::*;
    [
        (PCI_DEVICE, "standard PCI device"),
        (PCIE_DEVICE, "PCI Express device"),
        (PCIE_ROOT_PORT, "pcie-root-port"),
        (PCIE_SWITCH_UPSTREAM_PORT, "pcie-switch-upstream-port"),
        (PCIE_SWITCH_DOWNSTREAM_PORT, "pcie-switch-downstream-port"),
        (DMI_TO_PCI_BRIDGE, "dmi-to-pci-bridge"),
        (PCIE_TO_PCI_BRIDGE, "pcie-to-pci-bridge"),
        (PCI_EXPANDER_BUS, "pci-expander-bus"),
        (PCIE_EXPANDER_BUS, "pcie-expander-bus"),
        (PCI_BRIDGE, "pci-bridge"),
    ]
    .into_iter()
    .find(|(f, _)| dev & f != 0)
    .map_or("device", |(_, n)| n)
}
