//! `<disk>`: file- or block-backed disks, CD-ROMs and floppies.

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
    /// What backs a disk: `<source file=...>` or `<source dev=...>`.
    pub enum DiskType {
        File = "file",
        Block = "block",
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
}

/// `<source file|dev=...>`; the attribute name follows the disk type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskSource {
    /// Absent for an empty drive that still lists a startup policy.
    pub path: Option<String>,
    /// Node index libvirt assigns while running.
    pub index: Option<u32>,
    pub startup_policy: Option<StartupPolicy>,
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
    /// Guest device name, e.g. `vda`.
    pub target_dev: String,
    pub target_bus: Option<DiskBus>,
    pub tray: Option<Tray>,
    pub readonly: bool,
    pub shareable: bool,
    pub serial: Option<String>,
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
        if device == DiskDevice::Disk && source.as_ref().is_none_or(|s| s.path.is_none()) {
            return Err(XmlError::Missing {
                path: format!("{}/source/@{}", e.path(), source_attr(disk_type)),
            });
        }
        let backing_store = match e.child("backingStore")? {
            None => None,
            Some(b) => Some(read_backing(b, 1)?),
        };
        let mut t = e.req_child("target")?;
        let target_dev = t.req_attr_with("dev", values::token)?;
        let target_bus = t.attr_with("bus", values::keyword::<DiskBus>)?;
        let tray = t.attr_with("tray", values::keyword::<Tray>)?;
        t.finish()?;
        let readonly = e.flag("readonly")?;
        let shareable = e.flag("shareable")?;
        let serial = e.child_text_with("serial", disk_serial)?;
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
            target_dev,
            target_bus,
            tray,
            readonly,
            shareable,
            serial,
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
            w.attr_opt("io", d.io.map(|c| c.as_str()));
            w.attr_opt("discard", d.discard.map(|c| c.as_str()));
            w.attr_num_opt("iothread", d.iothread);
            w.attr_opt("detect_zeroes", d.detect_zeroes.map(|c| c.as_str()));
            w.end();
        }
        if let Some(s) = &self.source {
            write_source(w, s, self.disk_type);
        }
        if let Some(b) = &self.backing_store {
            write_backing(w, b);
        }
        w.start("target");
        w.attr("dev", &self.target_dev);
        w.attr_opt("bus", self.target_bus.map(|b| b.as_str()));
        w.attr_opt("tray", self.tray.map(|t| t.as_str()));
        w.end();
        w.flag("readonly", self.readonly);
        w.flag("shareable", self.shareable);
        w.leaf_opt("serial", self.serial.as_deref());
        address::write_boot_order(w, self.boot_order);
        self.info.write(w);
        w.end();
    }
}

fn source_attr(t: DiskType) -> &'static str {
    match t {
        DiskType::File => "file",
        DiskType::Block => "dev",
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
    };
    d.finish()?;
    Ok(driver)
}

fn read_source(mut s: Elem, t: DiskType) -> Result<DiskSource> {
    let src = DiskSource {
        path: s.attr_with(source_attr(t), values::abs_path)?,
        index: s.attr_with("index", values::u32_pos)?,
        startup_policy: s.attr_with("startupPolicy", values::keyword::<StartupPolicy>)?,
    };
    s.finish()?;
    Ok(src)
}

fn write_source(w: &mut Writer, s: &DiskSource, t: DiskType) {
    w.start("source");
    w.attr_opt(source_attr(t), s.path.as_deref());
    w.attr_opt("startupPolicy", s.startup_policy.map(|p| p.as_str()));
    w.attr_num_opt("index", s.index);
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
