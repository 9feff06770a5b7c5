//! The devices that may take a PCI address, named as collisions name them, with libvirt's
//! connect flags (conventional PCI or PCI Express) and its order of assignment.

use super::set::{PciModel, flags};
use crate::model::{
    DeviceInfo, Devices,
    devices::{
        ControllerType, DiskBus, FsDriverType, FsModel, InputBus, IommuModel, MemballoonModel,
        MemoryModel, RngModel, SoundModel, Video, VideoType, VsockModel, WatchdogModel,
    },
};

/// One device of a definition, by kind and position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dev {
    Controller(usize),
    Fs(usize),
    Net(usize),
    Sound(usize),
    Disk(usize),
    Balloon,
    Rng(usize),
    Watchdog(usize),
    Video(usize),
    Shmem(usize),
    Input(usize),
    Serial(usize),
    Iommu,
    Vsock,
    /// A virtio-mem or virtio-pmem memory device.
    Memory(usize),
}

/// The flags a PCI Express device and a virtio device get on this machine.
#[derive(Debug, Clone, Copy)]
pub struct Flags {
    pub pcie: u32,
    pub virtio: u32,
}

/// Every device that has a `DeviceInfo` a PCI address can sit in.
pub fn all(d: &Devices) -> Vec<Dev> {
    let mut v: Vec<Dev> = Vec::new();
    v.extend((0..d.disks.len()).map(Dev::Disk));
    v.extend((0..d.controllers.len()).map(Dev::Controller));
    v.extend((0..d.filesystems.len()).map(Dev::Fs));
    v.extend((0..d.interfaces.len()).map(Dev::Net));
    v.extend((0..d.inputs.len()).map(Dev::Input));
    v.extend((0..d.sounds.len()).map(Dev::Sound));
    v.extend((0..d.videos.len()).map(Dev::Video));
    v.extend((0..d.watchdogs.len()).map(Dev::Watchdog));
    v.extend((0..d.serials.len()).map(Dev::Serial));
    if d.memballoon.is_some() {
        v.push(Dev::Balloon);
    }
    v.extend((0..d.rngs.len()).map(Dev::Rng));
    v.extend((0..d.shmems.len()).map(Dev::Shmem));
    if d.iommu.is_some() {
        v.push(Dev::Iommu);
    }
    if d.vsock.is_some() {
        v.push(Dev::Vsock);
    }
    v.extend((0..d.memories.len()).map(Dev::Memory));
    v
}

/// The devices that want a PCI address, in the order libvirt gives them one: PCI
/// controllers, filesystems, NICs, sound, other controllers, virtio disks, the balloon, RNGs,
/// watchdogs, videos, shared memory, virtio inputs, PCI serial ports, the IOMMU, vsock.
pub fn order(d: &Devices) -> Vec<Dev> {
    let mut v: Vec<Dev> = Vec::new();
    for (i, c) in d.controllers.iter().enumerate() {
        if c.controller_type == ControllerType::Pci
            && !matches!(c.model.as_deref(), Some("pci-root" | "pcie-root") | None)
        {
            v.push(Dev::Controller(i));
        }
    }
    v.extend((0..d.filesystems.len()).map(Dev::Fs));
    v.extend((0..d.interfaces.len()).map(Dev::Net));
    for (i, s) in d.sounds.iter().enumerate() {
        if !matches!(
            s.model,
            SoundModel::Sb16 | SoundModel::Pcspk | SoundModel::Usb
        ) {
            v.push(Dev::Sound(i));
        }
    }
    for (i, c) in d.controllers.iter().enumerate() {
        let skip = match c.controller_type {
            ControllerType::Pci | ControllerType::Fdc | ControllerType::Ccid => true,
            ControllerType::Usb => c.model.as_deref() == Some("none"),
            ControllerType::Ide => c.index.unwrap_or(0) == 0,
            ControllerType::Scsi => c.model.as_deref() == Some("ncr53c90"),
            _ => false,
        };
        if !skip {
            v.push(Dev::Controller(i));
        }
    }
    for (i, x) in d.disks.iter().enumerate() {
        if x.target_bus == Some(DiskBus::Virtio) {
            v.push(Dev::Disk(i));
        }
    }
    if d.memballoon
        .as_ref()
        .is_some_and(|m| m.model != MemballoonModel::None)
    {
        v.push(Dev::Balloon);
    }
    v.extend((0..d.rngs.len()).map(Dev::Rng));
    for (i, w) in d.watchdogs.iter().enumerate() {
        if w.model == WatchdogModel::I6300esb {
            v.push(Dev::Watchdog(i));
        }
    }
    for (i, x) in d.videos.iter().enumerate() {
        if !matches!(
            x.model.map(|m| m.model_type),
            Some(VideoType::None | VideoType::Ramfb)
        ) {
            v.push(Dev::Video(i));
        }
    }
    v.extend((0..d.shmems.len()).map(Dev::Shmem));
    for (i, x) in d.inputs.iter().enumerate() {
        if x.bus == Some(InputBus::Virtio) {
            v.push(Dev::Input(i));
        }
    }
    for (i, s) in d.serials.iter().enumerate() {
        if s.target_type.as_deref() == Some("pci-serial") {
            v.push(Dev::Serial(i));
        }
    }
    if d.iommu
        .as_ref()
        .is_some_and(|m| m.model == IommuModel::Virtio)
    {
        v.push(Dev::Iommu);
    }
    if d.vsock.is_some() {
        v.push(Dev::Vsock);
    }
    for (i, m) in d.memories.iter().enumerate() {
        if matches!(m.model, MemoryModel::VirtioMem | MemoryModel::VirtioPmem) {
            v.push(Dev::Memory(i));
        }
    }
    v
}

/// The device's info; `None` only for an absent balloon, IOMMU or vsock.
pub fn info(d: &Devices, dev: Dev) -> Option<&DeviceInfo> {
    Some(match dev {
        Dev::Controller(i) => &d.controllers[i].info,
        Dev::Fs(i) => &d.filesystems[i].info,
        Dev::Net(i) => &d.interfaces[i].info,
        Dev::Sound(i) => &d.sounds[i].info,
        Dev::Disk(i) => &d.disks[i].info,
        Dev::Rng(i) => &d.rngs[i].info,
        Dev::Watchdog(i) => &d.watchdogs[i].info,
        Dev::Video(i) => &d.videos[i].info,
        Dev::Shmem(i) => &d.shmems[i].info,
        Dev::Input(i) => &d.inputs[i].info,
        Dev::Serial(i) => &d.serials[i].info,
        Dev::Balloon => &d.memballoon.as_ref()?.info,
        Dev::Iommu => &d.iommu.as_ref()?.info,
        Dev::Vsock => &d.vsock.as_ref()?.info,
        Dev::Memory(i) => &d.memories[i].info,
    })
}

pub fn info_mut(d: &mut Devices, dev: Dev) -> Option<&mut DeviceInfo> {
    Some(match dev {
        Dev::Controller(i) => &mut d.controllers[i].info,
        Dev::Fs(i) => &mut d.filesystems[i].info,
        Dev::Net(i) => &mut d.interfaces[i].info,
        Dev::Sound(i) => &mut d.sounds[i].info,
        Dev::Disk(i) => &mut d.disks[i].info,
        Dev::Rng(i) => &mut d.rngs[i].info,
        Dev::Watchdog(i) => &mut d.watchdogs[i].info,
        Dev::Video(i) => &mut d.videos[i].info,
        Dev::Shmem(i) => &mut d.shmems[i].info,
        Dev::Input(i) => &mut d.inputs[i].info,
        Dev::Serial(i) => &mut d.serials[i].info,
        Dev::Balloon => &mut d.memballoon.as_mut()?.info,
        Dev::Iommu => &mut d.iommu.as_mut()?.info,
        Dev::Vsock => &mut d.vsock.as_mut()?.info,
        Dev::Memory(i) => &mut d.memories[i].info,
    })
}

/// The device as collisions name it.
pub fn who(d: &Devices, dev: Dev) -> String {
    match dev {
        Dev::Controller(i) => {
            let c = &d.controllers[i];
            format!(
                "<controller type='{}' index='{}'>",
                c.controller_type,
                c.index.unwrap_or(0)
            )
        }
        Dev::Fs(i) => format!("<filesystem> {}", d.filesystems[i].target),
        Dev::Net(i) => format!("<interface> {}", i + 1),
        Dev::Sound(i) => format!("<sound> {}", i + 1),
        Dev::Disk(i) => format!("<disk> {}", d.disks[i].target_dev),
        Dev::Rng(i) => format!("<rng> {}", i + 1),
        Dev::Watchdog(_) => "<watchdog>".into(),
        Dev::Video(i) => format!("<video> {}", i + 1),
        Dev::Shmem(i) => format!("<shmem name='{}'>", d.shmems[i].name),
        Dev::Input(i) => format!("<input> {}", i + 1),
        Dev::Serial(i) => format!("<serial> {}", i + 1),
        Dev::Balloon => "<memballoon>".into(),
        Dev::Iommu => "<iommu>".into(),
        Dev::Vsock => "<vsock>".into(),
        Dev::Memory(i) => format!("<memory model='{}'> {}", d.memories[i].model, i + 1),
    }
}

/// How the device connects: conventional PCI only, PCI Express, or not at all (0).
pub fn flags(d: &Devices, dev: Dev, fl: Flags) -> u32 {
    let pci = flags::PCI;
    match dev {
        Dev::Controller(i) => {
            let c = &d.controllers[i];
            let m = c.model.as_deref();
            match c.controller_type {
                ControllerType::Pci => m.and_then(PciModel::parse).map_or(0, PciModel::connect),
                ControllerType::Sata | ControllerType::Ide => pci,
                ControllerType::Usb => match m {
                    Some("nec-xhci" | "qemu-xhci") => fl.pcie,
                    Some("qusb1" | "qusb2" | "none") => 0,
                    _ => pci,
                },
                ControllerType::Scsi => match m {
                    None | Some("ncr53c90") => 0,
                    Some("virtio-scsi" | "virtio-non-transitional") => fl.virtio,
                    _ => pci,
                },
                ControllerType::VirtioSerial => match m {
                    Some("virtio-transitional") => pci,
                    _ => fl.virtio,
                },
                _ => 0,
            }
        }
        Dev::Fs(i) => {
            let f = &d.filesystems[i];
            match f.driver_type {
                Some(FsDriverType::Virtiofs) => fl.virtio,
                Some(FsDriverType::Path | FsDriverType::Handle) | None => match f.model {
                    Some(FsModel::VirtioTransitional) => pci,
                    _ => fl.virtio,
                },
                _ => 0,
            }
        }
        Dev::Net(i) => match d.interfaces[i].model.as_deref() {
            Some("usb-net") => 0,
            Some("virtio" | "virtio-non-transitional") => fl.virtio,
            Some("virtio-transitional") => pci,
            Some("e1000e") | None => fl.pcie,
            Some(_) => pci,
        },
        Dev::Sound(i) => match d.sounds[i].model {
            // ich7 is a PCI device to libvirt too; the command line refuses it (QEMU has none)
            SoundModel::Es1370
            | SoundModel::Ac97
            | SoundModel::Ich6
            | SoundModel::Ich7
            | SoundModel::Ich9 => pci,
            _ => 0,
        },
        Dev::Disk(i) => {
            if d.disks[i].target_bus == Some(DiskBus::Virtio) {
                fl.virtio
            } else {
                0
            }
        }
        Dev::Balloon => match d.memballoon.as_ref().map(|m| m.model) {
            Some(MemballoonModel::VirtioTransitional) => pci,
            Some(MemballoonModel::Virtio | MemballoonModel::VirtioNonTransitional) => fl.virtio,
            _ => 0,
        },
        Dev::Rng(i) => match d.rngs[i].model {
            RngModel::VirtioTransitional => pci,
            _ => fl.virtio,
        },
        Dev::Watchdog(i) => match d.watchdogs[i].model {
            WatchdogModel::I6300esb => pci,
            _ => 0,
        },
        Dev::Video(i) => flags_of_video(&d.videos[i], fl),
        Dev::Shmem(_) => pci,
        Dev::Input(i) => match d.inputs[i].bus {
            Some(InputBus::Virtio) => fl.virtio,
            _ => 0,
        },
        Dev::Serial(i) => match d.serials[i].target_type.as_deref() {
            Some("pci-serial") => pci,
            _ => 0,
        },
        Dev::Iommu => match d.iommu.as_ref().map(|m| m.model) {
            Some(IommuModel::Virtio) => fl.virtio | flags::INTEGRATED,
            _ => 0,
        },
        Dev::Vsock => match d.vsock.as_ref().and_then(|v| v.model) {
            Some(VsockModel::VirtioTransitional) => pci,
            Some(_) => fl.virtio,
            None => 0,
        },
        Dev::Memory(i) => match d.memories[i].model {
            MemoryModel::VirtioMem | MemoryModel::VirtioPmem => fl.virtio,
            _ => 0,
        },
    }
}

pub fn flags_of_video(v: &Video, fl: Flags) -> u32 {
    match v.model.map(|m| m.model_type) {
        Some(VideoType::Virtio) => fl.virtio,
        Some(VideoType::Bochs) => fl.pcie,
        Some(VideoType::Gop | VideoType::None | VideoType::Ramfb) | None => 0,
        Some(_) => flags::PCI,
    }
}
