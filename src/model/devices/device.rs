//! One device on its own, as hot-plug and definition edits take it (`<disk>…</disk>`), and
//! libvirt's rules for finding the device an edit means: a disk by its target, an interface
//! by its MAC address, any other device by its whole description.

use super::Devices;
use crate::model::{
    error::XmlError,
    xml::{self, Elem},
};

/// Exactly one device, of any kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device(Devices);

impl Device {
    /// A disk on its own.
    pub fn disk(d: super::Disk) -> Device {
        Device(Devices {
            disks: vec![d],
            ..Default::default()
        })
    }

    /// A network interface on its own.
    pub fn interface(i: super::Interface) -> Device {
        Device(Devices {
            interfaces: vec![i],
            ..Default::default()
        })
    }

    /// Parse one device element, with the same rules as inside `<devices>`.
    pub fn from_xml(text: &str) -> Result<Device, XmlError> {
        let body = strip_declaration(text);
        let wrapped = format!("<devices>{body}</devices>");
        let doc = xml::parse_document(&wrapped)?;
        let root: Elem = xml::root(&doc, "devices")?;
        let devices = Devices::read(root)?;
        if devices.emulator.is_some() {
            return Err(XmlError::Malformed(
                "<emulator> is not a device that can be attached or detached".into(),
            ));
        }
        match devices.count() {
            1 => Ok(Device(devices)),
            0 => Err(XmlError::Malformed("no device element given".into())),
            n => Err(XmlError::Malformed(format!(
                "expected one device element, got {n}"
            ))),
        }
    }

    /// How events and errors name the device: its alias, else its disk target or MAC
    /// address, else its element name.
    pub fn name(&self) -> String {
        let d = &self.0;
        if let Some(disk) = d.disks.first() {
            return disk.info.alias.clone().unwrap_or(disk.target_dev.clone());
        }
        if let Some(i) = d.interfaces.first() {
            return i.info.alias.clone().unwrap_or(i.mac.to_string());
        }
        self.element().to_owned()
    }

    /// The device's element name.
    pub fn element(&self) -> &'static str {
        let d = &self.0;
        let kinds: [(&'static str, bool); 23] = [
            ("disk", !d.disks.is_empty()),
            ("controller", !d.controllers.is_empty()),
            ("filesystem", !d.filesystems.is_empty()),
            ("interface", !d.interfaces.is_empty()),
            ("serial", !d.serials.is_empty()),
            ("parallel", !d.parallels.is_empty()),
            ("console", !d.consoles.is_empty()),
            ("channel", !d.channels.is_empty()),
            ("input", !d.inputs.is_empty()),
            ("graphics", !d.graphics.is_empty()),
            ("sound", !d.sounds.is_empty()),
            ("audio", !d.audios.is_empty()),
            ("video", !d.videos.is_empty()),
            ("redirdev", !d.redirdevs.is_empty()),
            ("hub", !d.hubs.is_empty()),
            ("watchdog", !d.watchdogs.is_empty()),
            ("memballoon", d.memballoon.is_some()),
            ("rng", !d.rngs.is_empty()),
            ("panic", !d.panics.is_empty()),
            ("shmem", !d.shmems.is_empty()),
            ("memory", !d.memories.is_empty()),
            ("iommu", d.iommu.is_some()),
            ("vsock", d.vsock.is_some()),
        ];
        kinds
            .iter()
            .find(|(_, present)| *present)
            .map(|(n, _)| *n)
            .unwrap_or("device")
    }

    pub fn as_devices(&self) -> &Devices {
        &self.0
    }
}

/// Drop a leading `<?xml …?>` declaration, which cannot appear inside a wrapper element.
fn strip_declaration(text: &str) -> &str {
    let t = text.trim_start();
    match t
        .strip_prefix("<?xml")
        .and_then(|r| r.find("?>").map(|i| &r[i + 2..]))
    {
        Some(rest) => rest,
        None => t,
    }
}

/// Append every element of `from` to `to`.
fn append<T: Clone>(to: &mut Vec<T>, from: &[T]) {
    to.extend(from.iter().cloned());
}

/// Remove the first element of `list` equal to one in `wanted`; whether one went.
fn remove_equal<T: PartialEq>(list: &mut Vec<T>, wanted: &[T]) -> bool {
    let Some(w) = wanted.first() else {
        return false;
    };
    match list.iter().position(|x| x == w) {
        Some(i) => {
            list.remove(i);
            true
        }
        None => false,
    }
}

impl Devices {
    /// How many devices there are (the emulator is not one).
    pub fn count(&self) -> usize {
        self.disks.len()
            + self.controllers.len()
            + self.filesystems.len()
            + self.interfaces.len()
            + self.serials.len()
            + self.parallels.len()
            + self.consoles.len()
            + self.channels.len()
            + self.inputs.len()
            + self.graphics.len()
            + self.sounds.len()
            + self.audios.len()
            + self.videos.len()
            + self.redirdevs.len()
            + self.hubs.len()
            + self.watchdogs.len()
            + usize::from(self.memballoon.is_some())
            + self.rngs.len()
            + self.panics.len()
            + self.shmems.len()
            + self.memories.len()
            + usize::from(self.iommu.is_some())
            + usize::from(self.vsock.is_some())
    }

    /// Add a device; a disk target or MAC address already in use is an error.
    pub fn attach(&mut self, dev: &Device) -> Result<(), String> {
        let d = &dev.0;
        for disk in &d.disks {
            if self.disks.iter().any(|x| x.target_dev == disk.target_dev) {
                return Err(format!("target {} already exists", disk.target_dev));
            }
        }
        for i in &d.interfaces {
            if self.interfaces.iter().any(|x| x.mac == i.mac) {
                return Err(format!("MAC address {} is already in use", i.mac));
            }
        }
        if d.memballoon.is_some() && self.memballoon.is_some() {
            return Err("the domain already has a memory balloon".into());
        }
        if d.iommu.is_some() && self.iommu.is_some() {
            return Err("the domain already has an IOMMU".into());
        }
        if d.vsock.is_some() && self.vsock.is_some() {
            return Err("the domain already has a vsock device".into());
        }
        for shm in &d.shmems {
            if self.shmems.iter().any(|x| x.name == shm.name) {
                return Err(format!("a shmem named {} already exists", shm.name));
            }
        }
        append(&mut self.disks, &d.disks);
        append(&mut self.controllers, &d.controllers);
        append(&mut self.filesystems, &d.filesystems);
        append(&mut self.interfaces, &d.interfaces);
        append(&mut self.serials, &d.serials);
        append(&mut self.parallels, &d.parallels);
        append(&mut self.consoles, &d.consoles);
        append(&mut self.channels, &d.channels);
        append(&mut self.inputs, &d.inputs);
        append(&mut self.graphics, &d.graphics);
        append(&mut self.sounds, &d.sounds);
        append(&mut self.audios, &d.audios);
        append(&mut self.videos, &d.videos);
        append(&mut self.redirdevs, &d.redirdevs);
        append(&mut self.hubs, &d.hubs);
        append(&mut self.watchdogs, &d.watchdogs);
        append(&mut self.rngs, &d.rngs);
        append(&mut self.panics, &d.panics);
        append(&mut self.shmems, &d.shmems);
        append(&mut self.memories, &d.memories);
        if d.memballoon.is_some() {
            self.memballoon = d.memballoon.clone();
        }
        if d.iommu.is_some() {
            self.iommu = d.iommu.clone();
        }
        if d.vsock.is_some() {
            self.vsock = d.vsock.clone();
        }
        Ok(())
    }

    /// Find the device `dev` means, as this definition has it.
    pub fn find(&self, dev: &Device) -> Option<Device> {
        let mut copy = self.clone();
        copy.detach(dev).ok()
    }

    /// Remove the device `dev` means; returns it as it was here.
    pub fn detach(&mut self, dev: &Device) -> Result<Device, String> {
        let d = &dev.0;
        let mut out = Devices::default();
        if let Some(disk) = d.disks.first() {
            let i = self
                .disks
                .iter()
                .position(|x| x.target_dev == disk.target_dev)
                .ok_or_else(|| format!("no disk with target {}", disk.target_dev))?;
            out.disks.push(self.disks.remove(i));
            return Ok(Device(out));
        }
        if let Some(iface) = d.interfaces.first() {
            let i = self
                .interfaces
                .iter()
                .position(|x| x.mac == iface.mac)
                .ok_or_else(|| format!("no interface with MAC address {}", iface.mac))?;
            out.interfaces.push(self.interfaces.remove(i));
            return Ok(Device(out));
        }
        if d.memballoon.is_some() && self.memballoon == d.memballoon {
            out.memballoon = self.memballoon.take();
            return Ok(Device(out));
        }
        if let Some(shm) = d.shmems.first() {
            // libvirt finds a shmem by its name
            let i = self
                .shmems
                .iter()
                .position(|x| x.name == shm.name)
                .ok_or_else(|| format!("no shmem named {}", shm.name))?;
            out.shmems.push(self.shmems.remove(i));
            return Ok(Device(out));
        }
        if d.iommu.is_some() && self.iommu == d.iommu {
            out.iommu = self.iommu.take();
            return Ok(Device(out));
        }
        if d.iommu.is_some() && self.iommu == d.iommu {
            out.iommu = self.iommu.take();
            return Ok(Device(out));
        }
        if d.vsock.is_some() && self.vsock.is_some() {
            out.vsock = self.vsock.take();
            return Ok(Device(out));
        }
        let found = remove_equal(&mut self.controllers, &d.controllers)
            || remove_equal(&mut self.filesystems, &d.filesystems)
            || remove_equal(&mut self.serials, &d.serials)
            || remove_equal(&mut self.parallels, &d.parallels)
            || remove_equal(&mut self.consoles, &d.consoles)
            || remove_equal(&mut self.channels, &d.channels)
            || remove_equal(&mut self.inputs, &d.inputs)
            || remove_equal(&mut self.graphics, &d.graphics)
            || remove_equal(&mut self.sounds, &d.sounds)
            || remove_equal(&mut self.audios, &d.audios)
            || remove_equal(&mut self.videos, &d.videos)
            || remove_equal(&mut self.redirdevs, &d.redirdevs)
            || remove_equal(&mut self.hubs, &d.hubs)
            || remove_equal(&mut self.watchdogs, &d.watchdogs)
            || remove_equal(&mut self.rngs, &d.rngs)
            || remove_equal(&mut self.panics, &d.panics)
            || remove_equal(&mut self.memories, &d.memories);
        if found {
            Ok(dev.clone())
        } else {
            Err(format!("no matching {} device", dev.element()))
        }
    }

    /// Replace a disk (by target) or an interface (by MAC address) with `dev`, keeping its
    /// alias and address when `dev` names none.
    pub fn update(&mut self, dev: &Device) -> Result<(), String> {
        let d = &dev.0;
        if let Some(disk) = d.disks.first() {
            let old = self
                .disks
                .iter_mut()
                .find(|x| x.target_dev == disk.target_dev)
                .ok_or_else(|| format!("no disk with target {}", disk.target_dev))?;
            let info = if disk.info.alias.is_none() && disk.info.address.is_none() {
                old.info.clone()
            } else {
                disk.info.clone()
            };
            *old = disk.clone();
            old.info = info;
            return Ok(());
        }
        if let Some(iface) = d.interfaces.first() {
            let old = self
                .interfaces
                .iter_mut()
                .find(|x| x.mac == iface.mac)
                .ok_or_else(|| format!("no interface with MAC address {}", iface.mac))?;
            let info = if iface.info.alias.is_none() && iface.info.address.is_none() {
                old.info.clone()
            } else {
                iface.info.clone()
            };
            *old = iface.clone();
            old.info = info;
            return Ok(());
        }
        Err(format!(
            "a {} device cannot be changed in place; only disks and interfaces can",
            dev.element()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(xml: &str) -> Device {
        Device::from_xml(xml).expect("device")
    }

    const DISK: &str = "<disk type='file' device='disk'><source file='/a.img'/>\
                        <target dev='vdb' bus='virtio'/></disk>";

    #[test]
    fn parse_one_device_only() {
        assert_eq!(dev(DISK).name(), "vdb");
        assert_eq!(dev(DISK).element(), "disk");
        let with_decl = format!("<?xml version='1.0'?>\n{DISK}");
        assert_eq!(dev(&with_decl).name(), "vdb");
        assert!(Device::from_xml("").is_err());
        assert!(Device::from_xml(&format!("{DISK}{DISK}")).is_err());
        assert!(Device::from_xml("<disk type='file'/>").is_err());
        assert!(Device::from_xml("<emulator>/bin/x</emulator>").is_err());
    }

    #[test]
    fn attach_detach_update() {
        let mut d = Devices::default();
        d.attach(&dev(DISK)).expect("attach");
        assert!(d.attach(&dev(DISK)).is_err(), "same target twice");
        let nic = dev(
            "<interface type='network'><mac address='52:54:00:00:00:01'/>\
                       <source network='default'/></interface>",
        );
        assert_eq!(nic.name(), "52:54:00:00:00:01");
        d.attach(&nic).expect("nic");
        assert!(d.attach(&nic).is_err(), "same MAC twice");
        d.attach(&dev("<watchdog model='i6300esb'/>"))
            .expect("watchdog");
        assert_eq!(d.count(), 3);
        d.update(&dev(
            "<disk type='file' device='disk'><source file='/b.img'/>\
                       <target dev='vdb' bus='virtio'/></disk>",
        ))
        .expect("update");
        assert_eq!(
            d.disks[0].source.as_ref().and_then(|s| s.path.as_deref()),
            Some("/b.img")
        );
        assert!(d.update(&dev("<watchdog model='i6300esb'/>")).is_err());
        let gone = d
            .detach(&dev(
                "<disk type='file' device='disk'><source file='/other.img'/>\
                           <target dev='vdb'/></disk>",
            ))
            .expect("detach by target");
        assert_eq!(gone.name(), "vdb");
        assert!(d.detach(&dev("<watchdog model='ib700'/>")).is_err());
        d.detach(&dev("<watchdog model='i6300esb'/>"))
            .expect("detach equal");
        assert!(d.find(&nic).is_some());
        d.detach(&nic).expect("nic");
        assert_eq!(d.count(), 0);
    }
}
