//! `<disk>`: file- or block-backed disks, CD-ROMs and floppies.

use super::disk_net::NetSource;
use super::disk_tune::{BlockIo, Geometry, Iotune};
use crate::model::address::{self, DeviceInfo};
use crate::model::error::XmlError;
use crate::model::snapshot::DiskSnapshotKind;
use crate::model::values::{self, xml_enum};
use crate::model::writer::Writer;
use crate::model::xml::Elem;

type Result<T> = std::result::Result<T, XmlError>;

/// Deepest `<backingStore>` nesting accepted. Chains are walked
/// recursively, so this bounds stack use on hostile input.
pub const MAX_BACKING_DEPTH: usize = 200;

xml_enum! {
    /// What backs a disk: `<source file=...>`, `<source dev=...>` or a network server.
    pub enum DiskType {
        File = "file",
        Block = "block",
        Network = "network",
        /// A volume of a storage pool, `<source pool volume>`, resolved when the guest starts.
        Volume = "volume",
    }
}

xml_enum! {
    /// What QEMU does when an I/O request fails (`error_policy`, `rerror_policy`).
    pub enum ErrorPolicy {
        Stop = "stop",
        Report = "report",
        Ignore = "ignore",
        Enospace = "enospace",
    }
}

xml_enum! {
    pub enum DiskDevice {
        Disk = "disk",
        Cdrom = "cdrom",
        Floppy = "floppy",
    }
}

xml_enum! {
    /// Image format (`<driver type=...>`, `<format type=...>`).
    pub enum DiskFormat {
        Raw = "raw",
        Qcow2 = "qcow2",
        Qcow = "qcow",
        Qed = "qed",
        Vmdk = "vmdk",
        Vpc = "vpc",
        Vhdx = "vhdx",
        Vdi = "vdi",
        Iso = "iso",
        Luks = "luks",
        Bochs = "bochs",
        Cloop = "cloop",
        Dmg = "dmg",
        Parallels = "parallels",
        Ploop = "ploop",
        Fat = "fat",
        Dir = "dir",
    }
}

xml_enum! {
    pub enum DiskCache {
        Default = "default",
        None = "none",
        Writethrough = "writethrough",
        Writeback = "writeback",
        Directsync = "directsync",
        Unsafe = "unsafe",
    }
}

xml_enum! {
    pub enum DiskIo {
        Threads = "threads",
        Native = "native",
        IoUring = "io_uring",
    }
}

xml_enum! {
    pub enum DiskDiscard {
        Unmap = "unmap",
        Ignore = "ignore",
    }
}

xml_enum! {
    pub enum DetectZeroes {
        Off = "off",
        On = "on",
        Unmap = "unmap",
    }
}

xml_enum! {
    pub enum DiskBus {
        Ide = "ide",
        Scsi = "scsi",
        Virtio = "virtio",
        Xen = "xen",
        Usb = "usb",
        Sata = "sata",
        Sd = "sd",
        Fdc = "fdc",
    }
}

xml_enum! {
    /// Tray of a removable drive; libvirt reports `open` while ejected.
    pub enum Tray {
        Open = "open",
        Closed = "closed",
    }
}

xml_enum! {
    /// What to do when a removable medium's source is missing at start.
    pub enum StartupPolicy {
        Mandatory = "mandatory",
        Requisite = "requisite",
        Optional = "optional",
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskDriver {
    /// Backend driver, `qemu` for QEMU.
    pub name: Option<String>,
    /// Image format (`type` attribute).
    pub format: Option<DiskFormat>,
    pub cache: Option<DiskCache>,
    pub io: Option<DiskIo>,
    pub discard: Option<DiskDiscard>,
    /// The I/O thread (`<iothreads>` id) a virtio disk runs in.
    pub iothread: Option<u32>,
    pub detect_zeroes: Option<DetectZeroes>,
    /// On write errors.
    pub error_policy: Option<ErrorPolicy>,
    /// On read errors (`enospace` is not one).
    pub rerror_policy: Option<ErrorPolicy>,
    pub ioeventfd: Option<bool>,
    pub event_idx: Option<bool>,
    pub copy_on_read: Option<bool>,
    /// virtio-blk queues.
    pub queues: Option<u32>,
    pub queue_size: Option<u32>,
    /// Virtio options (virtio disks).
    pub virtio: super::VirtioOptions,
}

/// `<source file|dev=...>`; the attribute name follows the disk type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskSource {
    /// Absent for an empty drive that still lists a startup policy, and for network sources.
    pub path: Option<String>,
    /// The server side of a `type='network'` source.
    pub network: Option<NetSource>,
    /// Node index libvirt assigns while running.
    pub index: Option<u32>,
    pub startup_policy: Option<StartupPolicy>,
    /// `<source pool volume>` of a `type='volume'` disk; `path` then holds the volume's file
    /// once resolved, and is not written.
    pub volume: Option<VolumeSource>,
}

/// A storage pool's volume a disk uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeSource {
    pub pool: String,
    pub volume: String,
}

/// `<backingStore>` as libvirt writes it for the running domain: either
/// the empty terminator (nothing below) or one image with its own chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackingStore {
    /// `<backingStore/>`: the chain ends here.
    End,
    Image(Box<BackingImage>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackingImage {
    pub disk_type: DiskType,
    pub index: Option<u32>,
    pub format: Option<DiskFormat>,
    pub source: Option<DiskSource>,
    pub backing_store: Option<BackingStore>,
}

/// `<transient shareBacking=...>`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Transient {
    /// Several guests may share the backing image (libvirt writes only `yes`).
    pub share_backing: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    pub disk_type: DiskType,
    pub device: DiskDevice,
    /// Default snapshot behaviour for this disk.
    pub snapshot: Option<DiskSnapshotKind>,
    pub driver: Option<DiskDriver>,
    /// `None` for an empty CD-ROM or floppy drive.
    pub source: Option<DiskSource>,
    pub backing_store: Option<BackingStore>,
    pub geometry: Option<Geometry>,
    pub blockio: Option<BlockIo>,
    /// Guest device name, e.g. `vda`.
    pub target_dev: String,
    pub target_bus: Option<DiskBus>,
    pub tray: Option<Tray>,
    /// `<target removable>`: a USB disk the guest sees as removable.
    pub removable: Option<bool>,
    /// `<target rotation_rate>`: 1 for a solid-state disk, else RPM.
    pub rotation_rate: Option<u32>,
    pub iotune: Option<Iotune>,
    pub readonly: bool,
    pub shareable: bool,
    /// `<transient/>`: writes go to an overlay dropped when the guest stops.
    pub transient: Option<Transient>,
    pub serial: Option<String>,
    /// SCSI/IDE World Wide Name, 16 hex digits.
    pub wwn: Option<String>,
    /// SCSI inquiry vendor (up to 8 characters) and product (up to 16).
    pub vendor: Option<String>,
    pub product: Option<String>,
    pub boot_order: Option<u32>,
    pub info: DeviceInfo,
}

impl Disk {
    /// The images the disk uses: its source first, then down its `<backingStore>` chain
    /// (as far as the definition describes it).
    pub fn image_chain(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .source
            .as_ref()
            .and_then(|s| s.path.clone())
            .into_iter()
            .collect();
        let mut below = self.backing_store.as_ref();
        while let Some(BackingStore::Image(img)) = below {
            if let Some(p) = img.source.as_ref().and_then(|s| s.path.clone()) {
                out.push(p);
            }
            below = img.backing_store.as_ref();
        }
        out
    }

    /// Take `image` out of the disk's chain, as once it was merged into the image below it
    /// (or that image into it): the image over it now backs onto the one below, and a disk
    /// whose source it was uses the image below directly. Returns whether it was there.
    pub fn collapse(&mut self, image: &str) -> bool {
        fn path_of(s: &Option<DiskSource>) -> Option<&str> {
            s.as_ref().and_then(|s| s.path.as_deref())
        }
        if path_of(&self.source) == Some(image) {
            let Some(BackingStore::Image(below)) = self.backing_store.take() else {
                // nothing known below: keep the disk as it is
                return false;
            };
            let below = *below;
            self.disk_type = below.disk_type;
            self.source = below.source.map(|s| DiskSource { index: None, ..s });
            if let Some(f) = below.format {
                self.driver.get_or_insert_with(Default::default).format = Some(f);
            }
            self.backing_store = below.backing_store;
            return true;
        }
        let mut slot = &mut self.backing_store;
        loop {
            let hit = matches!(slot, Some(BackingStore::Image(img)) if path_of(&img.source) == Some(image));
            if hit {
                let Some(BackingStore::Image(img)) = slot.take() else {
                    unreachable!()
                };
                *slot = img.backing_store;
                return true;
            }
            match slot {
                Some(BackingStore::Image(img)) => slot = &mut img.backing_store,
                _ => return false,
            }
        }
    }

    pub(crate) fn read(mut e: Elem) -> Result<Disk> {
        let disk_type = e
            .attr_with("type", values::keyword::<DiskType>)?
            .unwrap_or(DiskType::File);
        let device = e
            .attr_with("device", values::keyword::<DiskDevice>)?
            .unwrap_or(DiskDevice::Disk);
        let snapshot = e.attr_with("snapshot", values::keyword::<DiskSnapshotKind>)?;
        let driver = e.child("driver")?.map(read_driver).transpose()?;
        let source = match e.child("source")? {
            None => None,
            Some(s) => Some(read_source(s, disk_type)?),
        };
        if device == DiskDevice::Disk
            && source
                .as_ref()
                .is_none_or(|s| s.path.is_none() && s.network.is_none() && s.volume.is_none())
        {
            return Err(XmlError::Missing {
                path: format!("{}/source/@{}", e.path(), source_attr(disk_type)),
            });
        }
        let backing_store = match e.child("backingStore")? {
            None => None,
            Some(b) => Some(read_backing(b, 1)?),
        };
        let geometry = e.child("geometry")?.map(Geometry::read).transpose()?;
        let blockio = e
            .child("blockio")?
            .map(BlockIo::read)
            .transpose()?
            .flatten();
        let mut t = e.req_child("target")?;
        let target_dev = t.req_attr_with("dev", values::token)?;
        let target_bus = t.attr_with("bus", values::keyword::<DiskBus>)?;
        let tray = t.attr_with("tray", values::keyword::<Tray>)?;
        let removable = t.attr_with("removable", values::on_off)?;
        let rotation_rate = t.attr_with("rotation_rate", |v| values::uint_in(v, 1, 65534))?;
        t.finish()?;
        let iotune = e.child("iotune")?.map(Iotune::read).transpose()?.flatten();
        let readonly = e.flag("readonly")?;
        let shareable = e.flag("shareable")?;
        let transient = match e.child("transient")? {
            None => None,
            Some(mut t) => {
                let share_backing = t
                    .attr_with("shareBacking", values::yes_no)?
                    .unwrap_or(false);
                t.finish()?;
                Some(Transient { share_backing })
            }
        };
        let serial = e.child_text_with("serial", disk_serial)?;
        let wwn = e.child_text_with("wwn", disk_wwn)?;
        let vendor = e.child_text_with("vendor", |v| inquiry_text(v, 8))?;
        let product = e.child_text_with("product", |v| inquiry_text(v, 16))?;
        let boot_order = address::read_boot_order(&mut e)?;
        let info = DeviceInfo::read(&mut e)?;
        e.finish()?;
        Ok(Disk {
            disk_type,
            device,
            snapshot,
            driver,
            source,
            backing_store,
            geometry,
            blockio,
            target_dev,
            target_bus,
            tray,
            removable,
            rotation_rate: rotation_rate.map(|r| r as u32),
            iotune,
            readonly,
            shareable,
            transient,
            serial,
            wwn,
            vendor,
            product,
            boot_order,
            info,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.start("disk");
        w.attr("type", self.disk_type.as_str());
        w.attr("device", self.device.as_str());
        w.attr_opt("snapshot", self.snapshot.map(|s| s.as_str()));
        if let Some(d) = &self.driver {
            w.start("driver");
            w.attr_opt("name", d.name.as_deref());
            w.attr_opt("type", d.format.map(|f| f.as_str()));
            w.attr_opt("cache", d.cache.map(|c| c.as_str()));
            w.attr_opt("error_policy", d.error_policy.map(|c| c.as_str()));
            w.attr_opt("rerror_policy", d.rerror_policy.map(|c| c.as_str()));
            w.attr_opt("io", d.io.map(|c| c.as_str()));
            w.attr_opt("ioeventfd", d.ioeventfd.map(values::on_off_str));
            w.attr_opt("event_idx", d.event_idx.map(values::on_off_str));
            w.attr_opt("copy_on_read", d.copy_on_read.map(values::on_off_str));
            w.attr_opt("discard", d.discard.map(|c| c.as_str()));
            w.attr_num_opt("iothread", d.iothread);
            w.attr_opt("detect_zeroes", d.detect_zeroes.map(|c| c.as_str()));
            w.attr_num_opt("queues", d.queues);
            w.attr_num_opt("queue_size", d.queue_size);
            d.virtio.write_attrs(w);
            w.end();
        }
        if let Some(s) = &self.source {
            write_source(w, s, self.disk_type);
        }
        if let Some(b) = &self.backing_store {
            write_backing(w, b);
        }
        if let Some(g) = &self.geometry {
            g.write(w);
        }
        if let Some(b) = &self.blockio {
            b.write(w);
        }
        w.start("target");
        w.attr("dev", &self.target_dev);
        w.attr_opt("bus", self.target_bus.map(|b| b.as_str()));
        // a closed tray is the default, and libvirt writes only an open one
        w.attr_opt(
            "tray",
            self.tray.filter(|t| *t == Tray::Open).map(|t| t.as_str()),
        );
        w.attr_opt("removable", self.removable.map(values::on_off_str));
        w.attr_num_opt("rotation_rate", self.rotation_rate);
        w.end();
        if let Some(t) = &self.iotune {
            t.write(w);
        }
        w.flag("readonly", self.readonly);
        w.flag("shareable", self.shareable);
        if let Some(t) = self.transient {
            w.start("transient");
            if t.share_backing {
                w.attr("shareBacking", "yes");
            }
            w.end();
        }
        w.leaf_opt("serial", self.serial.as_deref());
        w.leaf_opt("wwn", self.wwn.as_deref());
        w.leaf_opt("vendor", self.vendor.as_deref());
        w.leaf_opt("product", self.product.as_deref());
        address::write_boot_order(w, self.boot_order);
        self.info.write(w);
        w.end();
    }
}

/// Adds `disk` where libvirt's parser puts it: after the last disk on its bus, or before
/// the first later disk on its bus whose target sorts after it. The bus is the one written
/// (libvirt picks defaults only after all disks are in), so disks naming none group together.
pub(crate) fn insert_ordered(disks: &mut Vec<Disk>, disk: Disk) {
    let bus = disk.target_bus;
    let index = crate::model::defaults::disk_index(&disk.target_dev);
    let mut at: Option<usize> = None;
    for (i, d) in disks.iter().enumerate().rev() {
        if d.target_bus != bus {
            continue;
        }
        let later = match (crate::model::defaults::disk_index(&d.target_dev), index) {
            (Some(a), Some(b)) => a > b,
            _ => false,
        };
        if later {
            at = Some(i);
        } else if at.is_none() {
            at = Some(i + 1);
        }
    }
    match at {
        Some(i) => disks.insert(i, disk),
        None => disks.push(disk),
    }
}

/// The `<source>` attribute that holds a local path (`name` for network sources).
pub fn source_attr(t: DiskType) -> &'static str {
    match t {
        DiskType::File => "file",
        DiskType::Block => "dev",
        DiskType::Network => "name",
        DiskType::Volume => "volume",
    }
}

/// `<wwn>`: 16 hex digits, optionally after `0x` (kept as written, as libvirt).
fn disk_wwn(s: &str) -> std::result::Result<String, String> {
    let digits = s.strip_prefix("0x").unwrap_or(s);
    if digits.len() == 16 && digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(s.to_string())
    } else {
        Err("expected 16 hex digits, optionally after '0x'".into())
    }
}

/// SCSI inquiry strings: printable ASCII, at most `max` characters.
fn inquiry_text(s: &str, max: usize) -> std::result::Result<String, String> {
    if !s.is_empty() && s.len() <= max && s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        Ok(s.to_string())
    } else {
        Err(format!("expected 1-{max} printable ASCII characters"))
    }
}

/// libvirt's allowed serial characters; the value reaches QEMU's command line.
fn disk_serial(s: &str) -> std::result::Result<String, String> {
    let ok = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b' ' | b'.' | b'+' | b'-'));
    if ok {
        Ok(s.to_string())
    } else {
        Err("expected letters, digits, ' ', '_', '.', '+' or '-'".into())
    }
}

fn read_driver(mut d: Elem) -> Result<DiskDriver> {
    let driver = DiskDriver {
        name: d.attr_with("name", values::token)?,
        format: d.attr_with("type", values::keyword::<DiskFormat>)?,
        cache: d.attr_with("cache", values::keyword::<DiskCache>)?,
        io: d.attr_with("io", values::keyword::<DiskIo>)?,
        discard: d.attr_with("discard", values::keyword::<DiskDiscard>)?,
        iothread: d.attr_with("iothread", values::u32_pos)?,
        detect_zeroes: d.attr_with("detect_zeroes", values::keyword::<DetectZeroes>)?,
        error_policy: d.attr_with("error_policy", values::keyword::<ErrorPolicy>)?,
        rerror_policy: d.attr_with("rerror_policy", |v| match v.parse::<ErrorPolicy>()? {
            ErrorPolicy::Enospace => Err("'enospace' is not a read error policy".into()),
            p => Ok(p),
        })?,
        ioeventfd: d.attr_with("ioeventfd", values::on_off)?,
        event_idx: d.attr_with("event_idx", values::on_off)?,
        copy_on_read: d.attr_with("copy_on_read", values::on_off)?,
        queues: d.attr_with("queues", values::u32_pos)?,
        queue_size: d.attr_with("queue_size", values::u32_pos)?,
        virtio: super::VirtioOptions::read(&mut d)?,
    };
    d.finish()?;
    Ok(driver)
}

fn read_source(mut s: Elem, t: DiskType) -> Result<DiskSource> {
    if t == DiskType::Network {
        let network = NetSource::read(&mut s)?;
        let index = s.attr_with("index", values::u32_pos)?;
        s.finish()?;
        return Ok(DiskSource {
            path: None,
            network: Some(network),
            index,
            startup_policy: None,
            volume: None,
        });
    }
    if t == DiskType::Volume {
        let pool = s.req_attr_with("pool", values::non_empty)?;
        let volume = s.req_attr_with("volume", values::non_empty)?;
        if let Some(m) = s.attr("mode") {
            return Err(s.attr_invalid(
                "mode",
                m,
                "'mode' applies to iSCSI pools, which virtbus does not run",
            ));
        }
        let src = DiskSource {
            path: None,
            network: None,
            startup_policy: s.attr_with("startupPolicy", values::keyword::<StartupPolicy>)?,
            index: s.attr_with("index", values::u32_pos)?,
            volume: Some(VolumeSource { pool, volume }),
        };
        s.finish()?;
        return Ok(src);
    }
    let src = DiskSource {
        path: s.attr_with(source_attr(t), values::abs_path)?,
        network: None,
        index: s.attr_with("index", values::u32_pos)?,
        startup_policy: s.attr_with("startupPolicy", values::keyword::<StartupPolicy>)?,
        volume: None,
    };
    s.finish()?;
    Ok(src)
}

fn write_source(w: &mut Writer, s: &DiskSource, t: DiskType) {
    w.start("source");
    match (&s.network, &s.volume) {
        (Some(n), _) => n.write_attrs(w),
        (None, Some(v)) => {
            w.attr("pool", &v.pool);
            w.attr("volume", &v.volume);
            w.attr_opt("startupPolicy", s.startup_policy.map(|p| p.as_str()));
        }
        (None, None) => {
            w.attr_opt(source_attr(t), s.path.as_deref());
            w.attr_opt("startupPolicy", s.startup_policy.map(|p| p.as_str()));
        }
    }
    w.attr_num_opt("index", s.index);
    if let Some(n) = &s.network {
        n.write_children(w);
    }
    w.end();
}

fn read_backing(mut b: Elem, depth: usize) -> Result<BackingStore> {
    if depth > MAX_BACKING_DEPTH {
        return Err(b.invalid(
            "",
            format!("backing chain is deeper than {MAX_BACKING_DEPTH} images"),
        ));
    }
    let node = b.node();
    if node.attributes().len() == 0 && !node.children().any(|c| c.is_element()) {
        b.finish()?;
        return Ok(BackingStore::End);
    }
    let disk_type = b.req_attr_with("type", values::keyword::<DiskType>)?;
    let index = b.attr_with("index", values::u32_pos)?;
    let format = b.child_attr_with("format", "type", values::keyword::<DiskFormat>)?;
    let source = match b.child("source")? {
        None => None,
        Some(s) => Some(read_source(s, disk_type)?),
    };
    let backing_store = match b.child("backingStore")? {
        None => None,
        Some(next) => Some(read_backing(next, depth + 1)?),
    };
    b.finish()?;
    Ok(BackingStore::Image(Box::new(BackingImage {
        disk_type,
        index,
        format,
        source,
        backing_store,
    })))
}

fn write_backing(w: &mut Writer, b: &BackingStore) {
    w.start("backingStore");
    if let BackingStore::Image(img) = b {
        w.attr("type", img.disk_type.as_str());
        w.attr_num_opt("index", img.index);
        if let Some(f) = img.format {
            w.leaf_attr("format", "type", f.as_str());
        }
        if let Some(s) = &img.source {
            write_source(w, s, img.disk_type);
        }
        if let Some(next) = &img.backing_store {
            write_backing(w, next);
        }
    }
    w.end();
}
