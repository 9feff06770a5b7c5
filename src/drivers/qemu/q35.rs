//! PCI addresses of a q35 machine as libvirt lays them out: the ICH9's integrated functions on
//! `pcie.0` (SATA at 1f.2, HD audio at 1b.0, the primary video at 01.0), and every PCI Express
//! device behind a `pcie-root-port` of its own, the ports packed as functions of the next free
//! slots of `pcie.0`. Root ports are added as needed, plus one spare for hot-plug when the
//! definition left PCI controllers to us. Conventional-PCI-only devices (rtl8139, e1000,
//! lsilogic, …), for which libvirt adds a pcie-to-pci bridge, keep QEMU's own placement.

use super::defaults::{PciBus, pci_address_on, pci_bsf};
use crate::{
    drivers::DriverError,
    model::{
        DeviceInfo, DomainDef,
        devices::{
            Controller, ControllerType, DiskBus, InputBus, MemballoonModel, SoundModel, VideoType,
        },
    },
};

/// Whether a device takes a root port of its own (a PCI Express endpoint), by the QEMU
/// device it becomes.
fn is_pcie_nic(model: Option<&str>) -> bool {
    matches!(model, Some("virtio" | "virtio-non-transitional" | "e1000e"))
}

/// Lay out the PCI devices of a q35 definition.
pub fn assign(def: &mut DomainDef) -> Result<(), DriverError> {
    let d = &mut def.devices;
    let mut held = PciBus::new();
    // addresses the definition gives are kept
    for (who, info) in super::defaults::pci_infos(d) {
        if let Some(at) = info.address.as_ref().and_then(pci_bsf) {
            held.hold_on(at, &who)?;
        }
    }
    // the ICH9's LPC bridge and SMBus, its SATA controller and HD audio
    for at in [(0, 0x1f, 0), (0, 0x1f, 3)] {
        if held.holder_on(at).is_none() {
            held.hold_on(at, "the ICH9")?;
        }
    }
    for c in &mut d.controllers {
        if c.controller_type == ControllerType::Sata
            && c.index == Some(0)
            && c.info.address.is_none()
        {
            held.hold_on((0, 0x1f, 2), "<controller type='sata' index='0'>")?;
            c.info.address = Some(pci_address_on(0, 0x1f, 2, false));
        }
    }
    for s in &mut d.sounds {
        if s.model == SoundModel::Ich9 && s.info.address.is_none() && held.slot_free_on(0, 0x1b) {
            held.hold_on((0, 0x1b, 0), "<sound model='ich9'>")?;
            s.info.address = Some(pci_address_on(0, 0x1b, 0, false));
        }
    }
    // the primary video at 01.0, as QEMU would put it
    if let Some(v) = d.videos.first_mut()
        && !matches!(
            v.model.map(|m| m.model_type),
            Some(VideoType::None | VideoType::Ramfb)
        )
        && v.info.address.is_none()
        && held.slot_free_on(0, 1)
    {
        held.hold_on((0, 1, 0), "<video>")?;
        v.info.address = Some(pci_address_on(0, 1, 0, false));
    }
    let user_ports = d
        .controllers
        .iter()
        .any(|c| c.controller_type == ControllerType::Pci && c.index.is_some_and(|i| i > 0));
    // root ports the definition has, addressed in index order
    let mut ports: Vec<u32> = d
        .controllers
        .iter()
        .filter(|c| is_root_port(c))
        .filter_map(|c| c.index)
        .collect();
    ports.sort_unstable();
    for idx in &ports {
        if let Some(c) = d
            .controllers
            .iter_mut()
            .find(|c| is_root_port(c) && c.index == Some(*idx))
            && c.info.address.is_none()
        {
            let at = next_port_address(&held);
            held.hold_on(at, &format!("<controller type='pci' index='{idx}'>"))?;
            c.info.address = Some(pci_address_on(0, at.1, at.2, at.2 == 0));
        }
    }
    // each PCI Express device behind a free root port, adding ports as needed, in the
    // order libvirt assigns addresses
    let before = ports.len();
    let mut take = |info: &mut DeviceInfo,
                    who: &str,
                    ports: &mut Vec<u32>,
                    controllers: &mut Vec<Controller>|
     -> Result<(), DriverError> {
        if info.address.is_some() {
            return Ok(());
        }
        let free = ports
            .iter()
            .copied()
            .find(|p| held.holder_on((*p, 0, 0)).is_none());
        let port = match free {
            Some(p) => p,
            None => {
                let idx = controllers
                    .iter()
                    .filter(|c| c.controller_type == ControllerType::Pci)
                    .filter_map(|c| c.index)
                    .max()
                    .map_or(1, |m| m + 1);
                let at = next_port_address(&held);
                held.hold_on(at, &format!("<controller type='pci' index='{idx}'>"))?;
                let mut c = Controller::new(ControllerType::Pci);
                c.index = Some(idx);
                c.model = Some("pcie-root-port".into());
                c.info.address = Some(pci_address_on(0, at.1, at.2, at.2 == 0));
                controllers.push(c);
                ports.push(idx);
                idx
            }
        };
        held.hold_on((port, 0, 0), who)?;
        info.address = Some(pci_address_on(port, 0, 0, false));
        Ok(())
    };
    let mut controllers = std::mem::take(&mut d.controllers);
    for f in &mut d.filesystems {
        let who = format!("<filesystem> {}", f.target);
        take(&mut f.info, &who, &mut ports, &mut controllers)?;
    }
    for (i, n) in d.interfaces.iter_mut().enumerate() {
        if is_pcie_nic(n.model.as_deref()) {
            take(
                &mut n.info,
                &format!("<interface> {}", i + 1),
                &mut ports,
                &mut controllers,
            )?;
        }
    }
    let pcie_controllers: Vec<usize> = controllers
        .iter()
        .enumerate()
        .filter(|(_, c)| match c.controller_type {
            ControllerType::Usb => matches!(c.model.as_deref(), Some("qemu-xhci" | "nec-xhci")),
            ControllerType::VirtioSerial => true,
            ControllerType::Scsi => c.model.as_deref() == Some("virtio-scsi"),
            _ => false,
        })
        .map(|(i, _)| i)
        .collect();
    for i in pcie_controllers {
        let mut info = controllers[i].info.clone();
        let who = format!(
            "<controller type='{}' index='{}'>",
            controllers[i].controller_type,
            controllers[i].index.unwrap_or(0)
        );
        take(&mut info, &who, &mut ports, &mut controllers)?;
        controllers[i].info = info;
    }
    for x in &mut d.disks {
        if x.target_bus == Some(DiskBus::Virtio) {
            let who = format!("<disk> {}", x.target_dev);
            take(&mut x.info, &who, &mut ports, &mut controllers)?;
        }
    }
    if let Some(m) = &mut d.memballoon
        && m.model == MemballoonModel::Virtio
    {
        take(&mut m.info, "<memballoon>", &mut ports, &mut controllers)?;
    }
    for (i, r) in d.rngs.iter_mut().enumerate() {
        take(
            &mut r.info,
            &format!("<rng> {}", i + 1),
            &mut ports,
            &mut controllers,
        )?;
    }
    for (i, v) in d.videos.iter_mut().enumerate().skip(1) {
        if v.model.is_some_and(|m| m.model_type == VideoType::Virtio) {
            take(
                &mut v.info,
                &format!("<video> {}", i + 1),
                &mut ports,
                &mut controllers,
            )?;
        }
    }
    for (i, inp) in d.inputs.iter_mut().enumerate() {
        if inp.bus == Some(InputBus::Virtio) {
            take(
                &mut inp.info,
                &format!("<input> {}", i + 1),
                &mut ports,
                &mut controllers,
            )?;
        }
    }
    if let Some(m) = &mut d.iommu
        && m.model == crate::model::devices::IommuModel::Virtio
    {
        take(&mut m.info, "<iommu>", &mut ports, &mut controllers)?;
    }
    if let Some(v) = &mut d.vsock {
        take(&mut v.info, "<vsock>", &mut ports, &mut controllers)?;
    }
    // one spare root port for hot-plug, when the definition left PCI controllers to us
    if !user_ports && ports.len() > before {
        let mut spare = DeviceInfo::default();
        take(
            &mut spare,
            "a spare root port",
            &mut ports,
            &mut controllers,
        )?;
    }
    d.controllers = controllers;
    // what libvirt writes of every root port
    for c in &mut d.controllers {
        if !is_root_port(c) {
            continue;
        }
        c.model_name.get_or_insert_with(|| "pcie-root-port".into());
        let idx = c.index.unwrap_or(0);
        let port = c
            .info
            .address
            .as_ref()
            .and_then(pci_bsf)
            .map(|(_, s, f)| (s << 3) | f);
        if !c.target.iter().any(|(k, _)| *k == "chassis") {
            c.target.push(("chassis", idx.to_string()));
        }
        if let Some(p) = port
            && !c.target.iter().any(|(k, _)| *k == "port")
        {
            c.target.push(("port", format!("{p:#x}")));
        }
    }
    Ok(())
}

fn is_root_port(c: &Controller) -> bool {
    c.controller_type == ControllerType::Pci && c.model.as_deref() == Some("pcie-root-port")
}

/// Where the next root port goes on `pcie.0`: the next free function of the slot the last
/// root port is in, else function 0 of the first wholly free slot from 1.
fn next_port_address(held: &PciBus) -> (u32, u32, u32) {
    let last = held
        .holdings()
        .iter()
        .filter(|(_, w)| w.starts_with("<controller type='pci'"))
        .map(|(a, _)| *a)
        .filter(|(b, _, _)| *b == 0)
        .max();
    if let Some((_, slot, f)) = last
        && f < 7
        && held.holder_on((0, slot, f + 1)).is_none()
    {
        return (0, slot, f + 1);
    }
    let slot = (1..0x1f).find(|s| held.slot_free_on(0, *s)).unwrap_or(0x1e);
    (0, slot, 0)
}

#[cfg(test)]
mod tests {
    use super::super::{caps, defaults};
    use crate::model::DomainDef;

    /// libvirt's own test input `x86_64-q35-graphics.xml` (its test suite, LGPL-2.1+), and
    /// the layout libvirt 9.0 gives it (`qemuxml2xmloutdata`).
    #[test]
    fn the_layout_libvirt_gives_a_q35_guest() {
        let mut def =
            DomainDef::from_xml(include_str!("testdata/q35-graphics.xml")).expect("domain");
        defaults::apply(&mut def, &caps::tests::x86_64()).expect("defaults");
        let out = def.to_xml(&Default::default());
        let addr = |bus: u32, slot: u32, f: u32| {
            format!(
                "<address type='pci' domain='0x0000' bus='{bus:#04x}' slot='{slot:#04x}' \
                 function='{f:#x}'"
            )
        };
        // each device, then the address libvirt gives it
        for (device, at) in [
            ("<target dev='vda' bus='virtio'/>", addr(4, 0, 0)),
            (
                "<controller type='usb' index='0' model='qemu-xhci' ports='15'>",
                addr(2, 0, 0),
            ),
            ("<controller type='sata' index='0'>", addr(0, 0x1f, 2)),
            ("<controller type='virtio-serial' index='0'>", addr(3, 0, 0)),
            ("<model type='virtio'/>", addr(1, 0, 0)),
            ("<video>", addr(0, 1, 0)),
            ("<memballoon model='virtio'>", addr(5, 0, 0)),
            ("<rng model='virtio'>", addr(6, 0, 0)),
        ] {
            let i = out
                .find(device)
                .unwrap_or_else(|| panic!("{device} in {out}"));
            let next = out[i..].find("<address").expect("an address") + i;
            assert!(out[next..].starts_with(&at), "{device}: {at} in {out}");
        }
        // seven root ports (six used and a spare for hot-plug) as functions of slot 2
        for idx in 1..=7u32 {
            let port = format!(
                "<controller type='pci' index='{idx}' model='pcie-root-port'>\n      \
                 <model name='pcie-root-port'/>\n      <target chassis='{idx}' port='{:#x}'/>\n      \
                 {}",
                0x10 + idx - 1,
                addr(0, 2, idx - 1)
            );
            assert!(out.contains(&port), "{port} in {out}");
        }
        assert!(!out.contains("index='8'"), "{out}");
        assert!(out.contains("function='0x0' multifunction='on'/>"), "{out}");
    }
}
