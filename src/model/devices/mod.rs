//! `<devices>`: one list per device kind.
//!
//! Input may list devices in any order; output groups them by kind in
//! libvirt's order, keeping the input order within each kind.

mod audio;
mod bandwidth;
mod chardev;
mod controller;
mod device;
mod disk;
mod disk_net;
mod disk_tune;
mod display;
mod filesystem;
mod graphics;
mod iface_ip;
mod input;
mod interface;
mod iommu;
mod memballoon;
mod memory;
mod net_driver;
mod panic;
mod rng;
mod shmem;
mod smartcard;
mod sound;
mod spice;
#[cfg(test)]
mod storage_tests;
mod tpm;
mod usb;
mod video;
mod virtio;
mod vsock;
mod watchdog;

pub use audio::{AudioFormat, AudioIo, AudioOptions, SdlDriver};
pub use bandwidth::{Bandwidth, Rate};
pub use chardev::{ChannelState, CharDevice, CharNet, CharSourceMode, CharSourceType, TcpProtocol};
pub use controller::{Controller, ControllerType};
pub use device::Device;
pub use disk::{
    BackingImage, BackingStore, DetectZeroes, Disk, DiskBus, DiskCache, DiskDevice, DiskDiscard,
    DiskDriver, DiskFormat, DiskIo, DiskSource, DiskType, ErrorPolicy, MAX_BACKING_DEPTH,
    StartupPolicy, Transient, Tray, VolumeSource, source_attr,
};
pub use disk_net::{HostTransport, NetHost, NetProtocol, NetSource, default_port};
pub use disk_tune::{BlockIo, Geometry, GeometryTrans, IOTUNE_FIELDS, Iotune};
pub use display::{DisplayGl, DisplayOptions, VncSharePolicy};
pub use filesystem::{
    Filesystem, FsAccessMode, FsBinary, FsCacheMode, FsDriverType, FsModel, FsMultidevs,
    FsSandboxMode, FsType, FsWrpolicy,
};
pub use graphics::{Graphics, GraphicsListen, GraphicsType, ImageCompression, ListenType};
pub use iface_ip::{IfaceIp, IfaceRoute, default_prefix};
pub use input::{Input, InputBus, InputType};
pub use interface::{
    DirectMode, Interface, InterfaceType, LinkState, NetDriverName, NetSocket, Rom,
};
pub use iommu::{Iommu, IommuDriver, IommuModel};
pub use memballoon::{Memballoon, MemballoonModel};
pub use memory::assign_slots as assign_memory_slots;
pub(crate) use memory::total as memory_total;
pub use memory::{MaxMemory, MemoryDevice, MemoryModel, MemorySource, MemoryTarget};
pub use net_driver::{GUEST_OFFLOADS, HOST_OFFLOADS, NetDriver, TxMode};
pub use panic::{Panic, PanicModel};
pub use rng::{Rng, RngBackend, RngModel};
pub use shmem::{Shmem, ShmemModel, ShmemMsi, ShmemRole, ShmemServer};
pub use smartcard::{Smartcard, SmartcardMode};
pub use sound::{Audio, AudioType, Sound, SoundCodec, SoundModel};
pub use spice::{
    SpiceChannel, SpiceChannelMode, SpiceGl, SpiceMouseMode, SpiceOptions, SpiceStreaming,
    SpiceWanCompression,
};
pub use tpm::{PcrBank, Tpm, TpmBackend, TpmEmulator, TpmModel, TpmVersion};
pub use usb::{Hub, RedirFilterRule, RedirSource, Redirdev, Redirfilter};
pub use video::{Video, VideoAccel, VideoModel, VideoType};
pub use virtio::VirtioOptions;
pub use vsock::{Vsock, VsockModel};
pub use watchdog::{Watchdog, WatchdogAction, WatchdogModel};

use crate::model::domain::FormatOptions;
use crate::model::error::XmlError;
use crate::model::values;
use crate::model::writer::Writer;
use crate::model::xml::{Elem, node_path};

use chardev::CharKind;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Devices {
    /// Path of the hypervisor binary.
    pub emulator: Option<String>,
    pub disks: Vec<Disk>,
    pub controllers: Vec<Controller>,
    pub filesystems: Vec<Filesystem>,
    pub interfaces: Vec<Interface>,
    pub serials: Vec<CharDevice>,
    pub smartcards: Vec<Smartcard>,
    pub parallels: Vec<CharDevice>,
    pub consoles: Vec<CharDevice>,
    pub channels: Vec<CharDevice>,
    pub inputs: Vec<Input>,
    pub graphics: Vec<Graphics>,
    pub tpms: Vec<Tpm>,
    pub sounds: Vec<Sound>,
    pub audios: Vec<Audio>,
    pub videos: Vec<Video>,
    pub redirdevs: Vec<Redirdev>,
    pub redirfilter: Option<Redirfilter>,
    pub hubs: Vec<Hub>,
    pub watchdogs: Vec<Watchdog>,
    /// At most one balloon, as in libvirt.
    pub memballoon: Option<Memballoon>,
    pub rngs: Vec<Rng>,
    pub panics: Vec<Panic>,
    pub shmems: Vec<Shmem>,
    /// `<memory model=...>` modules beside the initial RAM.
    pub memories: Vec<MemoryDevice>,
    /// At most one, as in libvirt.
    pub iommu: Option<Iommu>,
    /// At most one, as in libvirt.
    pub vsock: Option<Vsock>,
}

impl Devices {
    pub(crate) fn read(mut e: Elem) -> Result<Devices, XmlError> {
        let mut d = Devices::default();
        let mut boot_orders: Vec<u32> = Vec::new();
        e.each_child(|c| {
            let node = c.node();
            match c.name() {
                "emulator" => {
                    if d.emulator.is_some() {
                        return Err(XmlError::Duplicate { path: c.path() });
                    }
                    let mut c = c;
                    d.emulator = Some(c.text_with(values::abs_path)?);
                    c.finish()?;
                }
                "disk" => {
                    let disk = Disk::read(c)?;
                    check_boot(&mut boot_orders, disk.boot_order, node)?;
                    disk::insert_ordered(&mut d.disks, disk);
                }
                "controller" => d.controllers.push(Controller::read(c)?),
                "filesystem" => d.filesystems.push(Filesystem::read(c)?),
                "interface" => {
                    let iface = Interface::read(c)?;
                    check_boot(&mut boot_orders, iface.boot_order, node)?;
                    d.interfaces.push(iface);
                }
                "serial" => d.serials.push(CharDevice::read(c, CharKind::Serial)?),
                "parallel" => d.parallels.push(CharDevice::read(c, CharKind::Parallel)?),
                "smartcard" => d.smartcards.push(Smartcard::read(c)?),
                "console" => d.consoles.push(CharDevice::read(c, CharKind::Console)?),
                "channel" => d.channels.push(CharDevice::read(c, CharKind::Channel)?),
                "input" => d.inputs.push(Input::read(c)?),
                "graphics" => d.graphics.push(Graphics::read(c)?),
                "sound" => d.sounds.push(Sound::read(c)?),
                "tpm" => d.tpms.push(Tpm::read(c)?),
                "audio" => d.audios.push(Audio::read(c)?),
                "video" => {
                    let v = Video::read(c)?;
                    video::place(&mut d.videos, v, node)?;
                }
                "redirdev" => {
                    let r = Redirdev::read(c)?;
                    check_boot(&mut boot_orders, r.boot_order, node)?;
                    d.redirdevs.push(r);
                }
                "redirfilter" => {
                    if d.redirfilter.is_some() {
                        return Err(XmlError::Duplicate { path: c.path() });
                    }
                    d.redirfilter = Some(Redirfilter::read(c)?);
                }
                "hub" => d.hubs.push(Hub::read(c)?),
                "watchdog" => d.watchdogs.push(Watchdog::read(c)?),
                "memballoon" => {
                    if d.memballoon.is_some() {
                        return Err(XmlError::Duplicate { path: c.path() });
                    }
                    d.memballoon = Some(Memballoon::read(c)?);
                }
                "rng" => d.rngs.push(Rng::read(c)?),
                "panic" => d.panics.push(Panic::read(c)?),
                "shmem" => {
                    let shmem = Shmem::read(c)?;
                    if d.shmems.iter().any(|s| s.name == shmem.name) {
                        return Err(XmlError::invalid(
                            format!("{}/@name", node_path(node)),
                            &shmem.name,
                            "another <shmem> has this name",
                        ));
                    }
                    d.shmems.push(shmem);
                }
                "memory" => d.memories.push(MemoryDevice::read(c)?),
                "iommu" => {
                    if d.iommu.is_some() {
                        return Err(XmlError::Duplicate { path: c.path() });
                    }
                    d.iommu = Some(Iommu::read(c)?);
                }
                "vsock" => {
                    if d.vsock.is_some() {
                        return Err(XmlError::Duplicate { path: c.path() });
                    }
                    d.vsock = Some(Vsock::read(c)?);
                }
                _ => return Err(c.unknown()),
            }
            Ok(())
        })?;
        e.finish()?;
        Ok(d)
    }

    /// Whether any device carries `<boot order>`.
    pub fn has_boot_order(&self) -> bool {
        self.disks.iter().any(|d| d.boot_order.is_some())
            || self.interfaces.iter().any(|i| i.boot_order.is_some())
            || self.redirdevs.iter().any(|r| r.boot_order.is_some())
    }

    fn is_empty(&self) -> bool {
        *self == Devices::default()
    }

    /// Writes `<devices>` unless there is nothing in it.
    pub(crate) fn write(&self, w: &mut Writer, opts: &FormatOptions) {
        if self.is_empty() {
            // libvirt always writes the element
            w.empty_block("devices");
            return;
        }
        w.start("devices");
        w.leaf_opt("emulator", self.emulator.as_deref());
        self.disks.iter().for_each(|x| x.write(w));
        self.controllers.iter().for_each(|x| x.write(w));
        self.filesystems.iter().for_each(|x| x.write(w));
        self.interfaces.iter().for_each(|x| x.write(w));
        self.smartcards.iter().for_each(|x| x.write(w));
        self.serials
            .iter()
            .for_each(|x| x.write(w, CharKind::Serial));
        self.parallels
            .iter()
            .for_each(|x| x.write(w, CharKind::Parallel));
        self.consoles
            .iter()
            .for_each(|x| x.write(w, CharKind::Console));
        self.channels
            .iter()
            .for_each(|x| x.write(w, CharKind::Channel));
        self.inputs.iter().for_each(|x| x.write(w));
        self.tpms.iter().for_each(|x| x.write(w));
        self.graphics.iter().for_each(|x| x.write(w, opts.secure));
        self.sounds.iter().for_each(|x| x.write(w));
        self.audios.iter().for_each(|x| x.write(w));
        self.videos.iter().for_each(|x| x.write(w));
        self.redirdevs.iter().for_each(|x| x.write(w));
        if let Some(f) = &self.redirfilter {
            f.write(w);
        }
        self.hubs.iter().for_each(|x| x.write(w));
        self.watchdogs.iter().for_each(|x| x.write(w));
        if let Some(m) = &self.memballoon {
            m.write(w);
        }
        self.rngs.iter().for_each(|x| x.write(w));
        self.panics.iter().for_each(|x| x.write(w));
        self.shmems.iter().for_each(|x| x.write(w));
        self.memories.iter().for_each(|x| x.write(w));
        if let Some(i) = &self.iommu {
            i.write(w);
        }
        if let Some(v) = &self.vsock {
            v.write(w);
        }
        w.end();
    }
}

/// Boot orders must be unique across devices.
fn check_boot(
    seen: &mut Vec<u32>,
    order: Option<u32>,
    device: roxmltree::Node,
) -> Result<(), XmlError> {
    if let Some(o) = order {
        if seen.contains(&o) {
            return Err(XmlError::invalid(
                format!("{}/boot/@order", node_path(device)),
                &o.to_string(),
                "boot order is already used by another device",
            ));
        }
        seen.push(o);
    }
    Ok(())
}
