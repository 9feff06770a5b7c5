//! `<devices>`: one list per device kind.
//!
//! Input may list devices in any order; output groups them by kind in
//! libvirt's order, keeping the input order within each kind.

mod chardev;
mod controller;
mod device;
mod disk;
mod disk_net;
mod disk_tune;
mod filesystem;
mod graphics;
mod input;
mod interface;
mod memballoon;
mod rng;
mod sound;
#[cfg(test)]
mod storage_tests;
mod video;
mod watchdog;

pub use chardev::{ChannelState, CharDevice, CharSourceMode, CharSourceType};
pub use controller::{Controller, ControllerType};
pub use device::Device;
pub use disk::{
    BackingImage, BackingStore, DetectZeroes, Disk, DiskBus, DiskCache, DiskDevice, DiskDiscard,
    DiskDriver, DiskFormat, DiskIo, DiskSource, DiskType, ErrorPolicy, MAX_BACKING_DEPTH,
    StartupPolicy, Transient, Tray, source_attr,
};
pub use disk_net::{HostTransport, NetHost, NetProtocol, NetSource, default_port};
pub use disk_tune::{BlockIo, Geometry, GeometryTrans, IOTUNE_FIELDS, Iotune};
pub use filesystem::{
    Filesystem, FsAccessMode, FsBinary, FsCacheMode, FsDriverType, FsModel, FsMultidevs,
    FsSandboxMode, FsType, FsWrpolicy,
};
pub use graphics::{Graphics, GraphicsListen, GraphicsType, ImageCompression, ListenType};
pub use input::{Input, InputBus, InputType};
pub use interface::{DirectMode, Interface, InterfaceType, LinkState, NetDriverName};
pub use memballoon::{Memballoon, MemballoonModel};
pub use rng::{Rng, RngBackend, RngModel};
pub use sound::{Audio, AudioType, Sound, SoundModel};
pub use video::{Video, VideoModel, VideoType};
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
    pub parallels: Vec<CharDevice>,
    pub consoles: Vec<CharDevice>,
    pub channels: Vec<CharDevice>,
    pub inputs: Vec<Input>,
    pub graphics: Vec<Graphics>,
    pub sounds: Vec<Sound>,
    pub audios: Vec<Audio>,
    pub videos: Vec<Video>,
    pub watchdogs: Vec<Watchdog>,
    /// At most one balloon, as in libvirt.
    pub memballoon: Option<Memballoon>,
    pub rngs: Vec<Rng>,
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
                "console" => d.consoles.push(CharDevice::read(c, CharKind::Console)?),
                "channel" => d.channels.push(CharDevice::read(c, CharKind::Channel)?),
                "input" => d.inputs.push(Input::read(c)?),
                "graphics" => d.graphics.push(Graphics::read(c)?),
                "sound" => d.sounds.push(Sound::read(c)?),
                "audio" => d.audios.push(Audio::read(c)?),
                "video" => d.videos.push(Video::read(c)?),
                "watchdog" => d.watchdogs.push(Watchdog::read(c)?),
                "memballoon" => {
                    if d.memballoon.is_some() {
                        return Err(XmlError::Duplicate { path: c.path() });
                    }
                    d.memballoon = Some(Memballoon::read(c)?);
                }
                "rng" => d.rngs.push(Rng::read(c)?),
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
        self.graphics.iter().for_each(|x| x.write(w, opts.secure));
        self.sounds.iter().for_each(|x| x.write(w));
        self.audios.iter().for_each(|x| x.write(w));
        self.videos.iter().for_each(|x| x.write(w));
        self.watchdogs.iter().for_each(|x| x.write(w));
        if let Some(m) = &self.memballoon {
            m.write(w);
        }
        self.rngs.iter().for_each(|x| x.write(w));
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
