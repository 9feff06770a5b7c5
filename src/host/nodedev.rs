//! The host's devices as libvirt 9.0's node-device driver shows them
//! (L:src/node_device/node_device_udev.c, formatted as L:src/conf/node_device_conf.c does).
//!
//! libvirt walks udev's device list; this walks the same sysfs directories (PCI, USB, net,
//! block, SCSI, SCSI generic) and reads what udev would have handed it: the `uevent` keys
//! (`DEVTYPE`, `PCI_CLASS`, `DRIVER`, `DEVNAME`, `BUSNUM`…) and sysfs attributes. Names are
//! libvirt's (`<subsystem>_<sysname>[_<extra>]` with every other character than letters and
//! digits made `_`), and a device's parent is the nearest directory above it in sysfs that is
//! itself a node device, else `computer`. Without udev's database there are no `<devnode
//! type='link'>` entries, no storage serials or buses, and names come from the ID files:
//! exactly what Debian's libvirtd shows on a host without udevd (this CI machine).

use std::path::{Path, PathBuf};

use super::{Error, Result, interfaces::link_xml, pciids, sysfs};
use crate::util::xml::text as esc;

/// One node device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeDevice {
    pub name: String,
    /// The device's directory under /sys (none for `computer`).
    pub path: Option<String>,
    pub devnode: Option<String>,
    pub parent: Option<String>,
    pub driver: Option<String>,
    pub cap: Cap,
}

/// A device's capability, with what libvirt writes for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cap {
    System(System),
    Pci(Box<Pci>),
    UsbDevice(UsbDevice),
    UsbInterface(UsbInterface),
    Net(Net),
    ScsiHost { host: u32, unique_id: Option<i64> },
    ScsiTarget { target: String },
    Scsi(Scsi),
    Storage(Storage),
    ScsiGeneric { char_dev: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct System {
    pub product: Option<String>,
    pub hw_vendor: Option<String>,
    pub hw_version: Option<String>,
    pub hw_serial: Option<String>,
    pub uuid: String,
    pub fw_vendor: Option<String>,
    pub fw_version: Option<String>,
    pub fw_date: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciAddr {
    pub domain: u32,
    pub bus: u32,
    pub slot: u32,
    pub function: u32,
}

impl PciAddr {
    fn parse(s: &str) -> Option<PciAddr> {
        let (domain, rest) = s.split_once(':')?;
        let (bus, rest) = rest.split_once(':')?;
        let (slot, function) = rest.split_once('.')?;
        Some(PciAddr {
            domain: u32::from_str_radix(domain, 16).ok()?,
            bus: u32::from_str_radix(bus, 16).ok()?,
            slot: u32::from_str_radix(slot, 16).ok()?,
            function: u32::from_str_radix(function, 16).ok()?,
        })
    }

    fn xml(&self) -> String {
        format!(
            "<address domain='0x{:04x}' bus='0x{:02x}' slot='0x{:02x}' function='0x{}'/>",
            self.domain, self.bus, self.slot, self.function
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciLink {
    pub port: Option<u32>,
    pub speed: u32,
    pub width: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pci {
    pub class: Option<u32>,
    pub addr: PciAddr,
    pub vendor: u16,
    pub product: u16,
    pub vendor_name: Option<String>,
    pub product_name: Option<String>,
    /// `pci-bridge` or `cardbus-bridge` from the header type; endpoints have none.
    pub header: Option<&'static str>,
    pub iommu_group: Option<(u32, Vec<PciAddr>)>,
    pub numa_node: Option<i64>,
    /// PCI Express, with link capability and status when the function has a link.
    pub express: Option<Option<(PciLink, PciLink)>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsbDevice {
    pub bus: u32,
    pub device: u32,
    pub vendor: u16,
    pub product: u16,
    pub vendor_name: Option<String>,
    pub product_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsbInterface {
    pub number: u32,
    pub class: u32,
    pub subclass: u32,
    pub protocol: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Net {
    pub interface: String,
    pub address: Option<String>,
    pub speed: Option<u32>,
    pub state: Option<String>,
    /// Offload features (ethtool), read for the live host only.
    pub features: Vec<&'static str>,
    /// 80203 (wired) or 80211 (wireless).
    pub subtype: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scsi {
    pub host: u32,
    pub bus: u32,
    pub target: u32,
    pub lun: u32,
    pub kind: Option<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Storage {
    pub block: String,
    pub drive_type: &'static str,
    pub model: Option<String>,
    pub vendor: Option<String>,
    /// Removable drives: whether media is in, and its size.
    pub removable: Option<(bool, u64)>,
    pub size: u64,
    pub logical_block_size: u64,
    pub num_blocks: u64,
}

impl Cap {
    /// The capability's type name (`<capability type=…>`).
    pub fn type_name(&self) -> &'static str {
        match self {
            Cap::System(_) => "system",
            Cap::Pci(_) => "pci",
            Cap::UsbDevice(_) => "usb_device",
            Cap::UsbInterface(_) => "usb",
            Cap::Net(_) => "net",
            Cap::ScsiHost { .. } => "scsi_host",
            Cap::ScsiTarget { .. } => "scsi_target",
            Cap::Scsi(_) => "scsi",
            Cap::Storage(_) => "storage",
            Cap::ScsiGeneric { .. } => "scsi_generic",
        }
    }
}

/// libvirt's capability names in the order of its list flags
/// (`VIR_CONNECT_LIST_NODE_DEVICES_CAP_*`: bit n is the n-th name).
pub const CAP_FLAGS: [&str; 22] = [
    "system",
    "pci",
    "usb_device",
    "usb",
    "net",
    "scsi_host",
    "scsi_target",
    "scsi",
    "storage",
    "fc_host",
    "vports",
    "scsi_generic",
    "drm",
    "mdev_types",
    "mdev",
    "ccw",
    "css",
    "vdpa",
    "ap_card",
    "ap_queue",
    "ap_matrix",
    "vpd",
];

/// The list flags' capability bits.
pub const CAP_FLAG_MASK: u32 = (1 << CAP_FLAGS.len()) - 1;

/// Whether a device with these capabilities passes libvirt's capability flags (none: all).
pub fn caps_match(caps: &[String], flags: u32) -> bool {
    let wanted = flags & CAP_FLAG_MASK;
    wanted == 0
        || CAP_FLAGS
            .iter()
            .enumerate()
            .any(|(i, c)| wanted & (1 << i) != 0 && caps.iter().any(|d| d == c))
}

impl NodeDevice {
    /// The capability names `ListCaps` gives (the device's one; the nested ones libvirt
    /// adds for SR-IOV, mdev, FC and vport capable devices are not read here).
    pub fn cap_names(&self) -> Vec<String> {
        vec![self.cap.type_name().to_owned()]
    }

    /// libvirt's `<device>` XML.
    pub fn to_xml(&self) -> String {
        let mut o = String::from("<device>\n");
        o.push_str(&format!("  <name>{}</name>\n", esc(&self.name)));
        if let Some(p) = &self.path {
            o.push_str(&format!("  <path>{}</path>\n", esc(p)));
        }
        if let Some(d) = &self.devnode {
            o.push_str(&format!("  <devnode type='dev'>{}</devnode>\n", esc(d)));
        }
        if let Some(p) = &self.parent {
            o.push_str(&format!("  <parent>{}</parent>\n", esc(p)));
        }
        if let Some(d) = &self.driver {
            o.push_str(&format!(
                "  <driver>\n    <name>{}</name>\n  </driver>\n",
                esc(d)
            ));
        }
        o.push_str(&format!("  <capability type='{}'>\n", self.cap.type_name()));
        let p = "    ";
        match &self.cap {
            Cap::System(s) => {
                opt(&mut o, p, "product", &s.product);
                o.push_str(&format!("{p}<hardware>\n"));
                let q = "      ";
                opt(&mut o, q, "vendor", &s.hw_vendor);
                opt(&mut o, q, "version", &s.hw_version);
                opt(&mut o, q, "serial", &s.hw_serial);
                o.push_str(&format!(
                    "{q}<uuid>{}</uuid>\n{p}</hardware>\n",
                    esc(&s.uuid)
                ));
                o.push_str(&format!("{p}<firmware>\n"));
                opt(&mut o, q, "vendor", &s.fw_vendor);
                opt(&mut o, q, "version", &s.fw_version);
                opt(&mut o, q, "release_date", &s.fw_date);
                o.push_str(&format!("{p}</firmware>\n"));
            }
            Cap::Pci(d) => write_pci(&mut o, p, d),
            Cap::UsbDevice(u) => {
                o.push_str(&format!(
                    "{p}<bus>{}</bus>\n{p}<device>{}</device>\n",
                    u.bus, u.device
                ));
                named(&mut o, p, "product", u.product, &u.product_name, " />");
                named(&mut o, p, "vendor", u.vendor, &u.vendor_name, " />");
            }
            Cap::UsbInterface(u) => o.push_str(&format!(
                "{p}<number>{}</number>\n{p}<class>{}</class>\n{p}<subclass>{}</subclass>\n\
                 {p}<protocol>{}</protocol>\n",
                u.number, u.class, u.subclass, u.protocol
            )),
            Cap::Net(n) => {
                o.push_str(&format!(
                    "{p}<interface>{}</interface>\n",
                    esc(&n.interface)
                ));
                opt(&mut o, p, "address", &n.address);
                link_xml(&mut o, p, n.speed, n.state.as_deref());
                for f in &n.features {
                    o.push_str(&format!("{p}<feature name='{f}'/>\n"));
                }
                o.push_str(&format!("{p}<capability type='{}'/>\n", n.subtype));
            }
            Cap::ScsiHost { host, unique_id } => {
                o.push_str(&format!("{p}<host>{host}</host>\n"));
                if let Some(u) = unique_id {
                    o.push_str(&format!("{p}<unique_id>{u}</unique_id>\n"));
                }
            }
            Cap::ScsiTarget { target } => {
                o.push_str(&format!("{p}<target>{}</target>\n", esc(target)))
            }
            Cap::Scsi(s) => {
                o.push_str(&format!(
                    "{p}<host>{}</host>\n{p}<bus>{}</bus>\n{p}<target>{}</target>\n{p}<lun>{}</lun>\n",
                    s.host, s.bus, s.target, s.lun
                ));
                if let Some(k) = s.kind {
                    o.push_str(&format!("{p}<type>{k}</type>\n"));
                }
            }
            Cap::Storage(s) => write_storage(&mut o, p, s),
            Cap::ScsiGeneric { char_dev } => {
                o.push_str(&format!("{p}<char>{}</char>\n", esc(char_dev)))
            }
        }
        o.push_str("  </capability>\n</device>\n");
        o
    }
}

fn opt(o: &mut String, pad: &str, el: &str, v: &Option<String>) {
    if let Some(v) = v {
        o.push_str(&format!("{pad}<{el}>{}</{el}>\n", esc(v)));
    }
}

/// `<product id='0x…'>name</product>`, or the empty form libvirt writes without a name
/// (`/>` for PCI, ` />` for USB).
fn named(o: &mut String, pad: &str, el: &str, id: u16, name: &Option<String>, empty: &str) {
    o.push_str(&format!("{pad}<{el} id='0x{id:04x}'"));
    match name {
        Some(n) => o.push_str(&format!(">{}</{el}>\n", esc(n))),
        None => o.push_str(&format!("{empty}\n")),
    }
}

fn write_pci(o: &mut String, p: &str, d: &Pci) {
    if let Some(c) = d.class {
        o.push_str(&format!("{p}<class>0x{c:06x}</class>\n"));
    }
    let a = &d.addr;
    o.push_str(&format!(
        "{p}<domain>{}</domain>\n{p}<bus>{}</bus>\n{p}<slot>{}</slot>\n{p}<function>{}</function>\n",
        a.domain, a.bus, a.slot, a.function
    ));
    named(o, p, "product", d.product, &d.product_name, "/>");
    named(o, p, "vendor", d.vendor, &d.vendor_name, "/>");
    if let Some(h) = d.header {
        o.push_str(&format!("{p}<capability type='{h}'/>\n"));
    }
    if let Some((n, addrs)) = &d.iommu_group
        && !addrs.is_empty()
    {
        o.push_str(&format!("{p}<iommuGroup number='{n}'>\n"));
        for a in addrs {
            o.push_str(&format!("{p}  {}\n", a.xml()));
        }
        o.push_str(&format!("{p}</iommuGroup>\n"));
    }
    if let Some(n) = d.numa_node.filter(|n| *n >= 0) {
        o.push_str(&format!("{p}<numa node='{n}'/>\n"));
    }
    match &d.express {
        None => {}
        Some(None) => o.push_str(&format!("{p}<pci-express/>\n")),
        Some(Some((cap, sta))) => {
            o.push_str(&format!("{p}<pci-express>\n"));
            for (l, validity) in [(cap, "cap"), (sta, "sta")] {
                o.push_str(&format!("{p}  <link validity='{validity}'"));
                if let Some(port) = l.port {
                    o.push_str(&format!(" port='{port}'"));
                }
                const SPEEDS: [&str; 7] = ["", "2.5", "5", "8", "16", "32", "64"];
                if let Some(s) = SPEEDS.get(l.speed as usize).filter(|s| !s.is_empty()) {
                    o.push_str(&format!(" speed='{s}'"));
                }
                o.push_str(&format!(" width='{}'/>\n", l.width));
            }
            o.push_str(&format!("{p}</pci-express>\n"));
        }
    }
}

fn write_storage(o: &mut String, p: &str, s: &Storage) {
    o.push_str(&format!("{p}<block>{}</block>\n", esc(&s.block)));
    o.push_str(&format!("{p}<drive_type>{}</drive_type>\n", s.drive_type));
    opt(o, p, "model", &s.model);
    opt(o, p, "vendor", &s.vendor);
    let sizes = |o: &mut String, p: &str| {
        if s.logical_block_size > 0 {
            o.push_str(&format!(
                "{p}<logical_block_size>{}</logical_block_size>\n",
                s.logical_block_size
            ));
        }
        if s.num_blocks > 0 {
            o.push_str(&format!("{p}<num_blocks>{}</num_blocks>\n", s.num_blocks));
        }
    };
    match s.removable {
        Some((media, size)) => {
            o.push_str(&format!(
                "{p}<capability type='removable'>\n{p}  <media_available>{}</media_available>\n\
                 {p}  <media_size>{size}</media_size>\n",
                u8::from(media)
            ));
            if media {
                sizes(o, &format!("{p}  "));
            }
            o.push_str(&format!("{p}</capability>\n"));
        }
        None => {
            o.push_str(&format!("{p}<size>{}</size>\n", s.size));
            sizes(o, p);
        }
    }
}

/// Reads node devices from a sysfs tree.
pub struct Reader {
    root: PathBuf,
    /// Whether `root` is this host's /sys, so that devices may be asked (ethtool) too.
    live: bool,
}

/// A device found in sysfs before its parent is known.
struct Found {
    real: PathBuf,
    dev: NodeDevice,
}

impl Reader {
    pub fn host() -> Reader {
        Reader {
            root: PathBuf::from(super::SYSFS),
            live: true,
        }
    }

    pub fn new(root: &Path) -> Reader {
        Reader {
            root: root.to_owned(),
            live: false,
        }
    }

    /// Every device, `computer` first, the others sorted by name.
    pub fn list(&self) -> Vec<NodeDevice> {
        let mut found = Vec::new();
        for (dir, kind) in [
            ("bus/pci/devices", Kind::Pci),
            ("bus/usb/devices", Kind::Usb),
            ("class/net", Kind::Net),
            ("bus/scsi/devices", Kind::Scsi),
            ("class/block", Kind::Block),
            ("class/scsi_generic", Kind::ScsiGeneric),
        ] {
            let base = self.root.join(dir);
            for name in sysfs::names(&base) {
                let Some(real) = sysfs::real(&base.join(&name)) else {
                    continue;
                };
                // A device libvirt would skip (or one that vanished) is left out.
                if let Ok(Some(dev)) = self.read_one(&real, &name, kind) {
                    found.push(Found { real, dev });
                }
            }
        }
        // Parents: the nearest sysfs ancestor that is a node device.
        let paths: Vec<(PathBuf, String)> = found
            .iter()
            .map(|f| (f.real.clone(), f.dev.name.clone()))
            .collect();
        let mut out = vec![self.computer()];
        for mut f in found {
            let parent = f
                .real
                .ancestors()
                .skip(1)
                .find_map(|a| paths.iter().find(|(p, _)| p == a).map(|(_, n)| n.clone()));
            f.dev.parent = Some(parent.unwrap_or_else(|| "computer".to_owned()));
            out.push(f.dev);
        }
        out[1..].sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// One device by name.
    pub fn lookup(&self, name: &str) -> Result<NodeDevice> {
        self.list()
            .into_iter()
            .find(|d| d.name == name)
            .ok_or_else(|| Error::NoDevice(name.to_owned()))
    }

    /// The `computer` device from DMI.
    fn computer(&self) -> NodeDevice {
        let dmi = self.root.join("class/dmi/id");
        let s = |n: &str| sysfs::string(&dmi, n);
        let uuid = s("product_uuid")
            .filter(|u| uuid::Uuid::parse_str(u).is_ok())
            .map(|u| u.to_ascii_lowercase())
            .unwrap_or_else(|| uuid::Uuid::nil().to_string());
        NodeDevice {
            name: "computer".into(),
            path: None,
            devnode: None,
            parent: None,
            driver: None,
            cap: Cap::System(System {
                product: s("product_name"),
                hw_vendor: s("sys_vendor"),
                hw_version: s("product_version"),
                hw_serial: s("product_serial"),
                uuid,
                fw_vendor: s("bios_vendor"),
                fw_version: s("bios_version"),
                fw_date: s("bios_date"),
            }),
        }
    }

    fn read_one(&self, dir: &Path, sysname: &str, kind: Kind) -> Result<Option<NodeDevice>> {
        let ev = sysfs::uevent(dir);
        let devtype = sysfs::prop(&ev, "DEVTYPE");
        let subsystem = sysfs::link_name(dir, "subsystem").unwrap_or_default();
        let cap = match (kind, devtype) {
            (Kind::Pci, None) if sysfs::prop(&ev, "PCI_CLASS").is_some() => {
                self.pci(dir, sysname, &ev)?
            }
            (Kind::Usb, Some("usb_device")) => usb_device(dir, &ev)?,
            (Kind::Usb, Some("usb_interface")) => usb_interface(dir)?,
            (Kind::Net, None | Some("wlan")) => net(dir, sysname, devtype, self.live)?,
            (Kind::Scsi, Some("scsi_host")) => scsi_host(dir, sysname)?,
            (Kind::Scsi, Some("scsi_target")) => Cap::ScsiTarget {
                target: sysname.to_owned(),
            },
            (Kind::Scsi, Some("scsi_device")) => scsi_device(dir, sysname)?,
            (Kind::Block, Some("disk")) => match storage(dir, sysname, &ev)? {
                Some(c) => c,
                None => return Ok(None),
            },
            (Kind::ScsiGeneric, None) => Cap::ScsiGeneric {
                char_dev: format!("/dev/{}", sysfs::prop(&ev, "DEVNAME").unwrap_or(sysname)),
            },
            _ => return Ok(None),
        };
        let extra = match &cap {
            Cap::Net(n) => n.address.clone(),
            _ => None,
        };
        let mut name = format!("{subsystem}_{sysname}");
        if let Some(x) = extra {
            name.push('_');
            name.push_str(&x);
        }
        let name: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        Ok(Some(NodeDevice {
            name,
            path: Some(self.display_path(dir)),
            devnode: sysfs::prop(&ev, "DEVNAME").map(|d| format!("/dev/{d}")),
            parent: None,
            driver: sysfs::prop(&ev, "DRIVER").map(str::to_owned),
            cap,
        }))
    }

    /// The path libvirt shows: under `/sys` whatever root the reader has.
    fn display_path(&self, dir: &Path) -> String {
        let root = sysfs::real(&self.root).unwrap_or_else(|| self.root.clone());
        match dir.strip_prefix(&root) {
            Ok(rel) => Path::new("/sys").join(rel).display().to_string(),
            Err(_) => dir.display().to_string(),
        }
    }

    fn pci(&self, dir: &Path, sysname: &str, ev: &[(String, String)]) -> Result<Cap> {
        let addr = PciAddr::parse(sysname).ok_or_else(|| Error::Parse {
            path: dir.to_owned(),
            what: format!("'{sysname}' is not a PCI address"),
        })?;
        let class = sysfs::prop(ev, "PCI_CLASS").and_then(|c| u32::from_str_radix(c, 16).ok());
        let vendor = sysfs::number(dir, "vendor", 16)?.unwrap_or(0) as u16;
        let product = sysfs::number(dir, "device", 16)?.unwrap_or(0) as u16;
        let (vendor_name, product_name) = pciids::pci(vendor, product);
        let numa_node = sysfs::string(dir, "numa_node").and_then(|n| n.parse().ok());
        let iommu_group = sysfs::link_name(dir, "iommu_group")
            .and_then(|g| g.parse::<u32>().ok())
            .map(|g| {
                let devs = self.root.join(format!("kernel/iommu_groups/{g}/devices"));
                let addrs = sysfs::names(&devs)
                    .iter()
                    .filter_map(|n| PciAddr::parse(n))
                    .collect();
                (g, addrs)
            });
        let config = std::fs::read(dir.join("config")).unwrap_or_default();
        let header = config.get(0x0e).and_then(|h| match h & 0x7f {
            1 => Some("pci-bridge"),
            2 => Some("cardbus-bridge"),
            _ => None,
        });
        Ok(Cap::Pci(Box::new(Pci {
            class,
            addr,
            vendor,
            product,
            vendor_name,
            product_name,
            header,
            iommu_group,
            numa_node,
            express: pci_express(&config),
        })))
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Pci,
    Usb,
    Net,
    Scsi,
    Block,
    ScsiGeneric,
}

/// PCI Express from the config space's capability list (what libvirt reads as root). As in
/// libvirt, a function whose list has no PCI Express capability (or no list) counts as PCIe,
/// without a link, when its config space is longer than a legacy PCI function's 256 bytes.
fn pci_express(config: &[u8]) -> Option<Option<(PciLink, PciLink)>> {
    let guess = (!config.is_empty() && config.len() != 256).then_some(None);
    let b = |o: usize| config.get(o).copied();
    let w = |o: usize| Some(u16::from_le_bytes([b(o)?, b(o + 1)?]));
    let d = |o: usize| Some(u32::from_le_bytes([b(o)?, b(o + 1)?, b(o + 2)?, b(o + 3)?]));
    // Status bit 4: a capability list.
    if w(0x06).is_none_or(|s| s & 0x10 == 0) {
        return guess;
    }
    let Some(mut pos) = b(0x34).map(usize::from) else {
        return guess;
    };
    let mut hops = 0;
    while (0x40..0xff).contains(&pos) && hops < 48 {
        if b(pos)? == 0x10 {
            let port_type = (w(pos + 2)? & 0xf0) >> 4;
            // Root-complex integrated endpoints and event collectors have no link.
            if port_type == 0x9 || port_type == 0xa {
                return Some(None);
            }
            let cap = d(pos + 0x0c)?;
            let sta = w(pos + 0x12)?;
            return Some(Some((
                PciLink {
                    port: Some(cap >> 24),
                    speed: cap & 0xf,
                    width: (cap & 0x3f0) >> 4,
                },
                PciLink {
                    port: None,
                    speed: u32::from(sta & 0xf),
                    width: u32::from((sta & 0x3f0) >> 4),
                },
            )));
        }
        pos = b(pos + 1)? as usize;
        hops += 1;
    }
    guess
}

fn usb_device(dir: &Path, ev: &[(String, String)]) -> Result<Cap> {
    let num = |k: &str| sysfs::prop(ev, k).and_then(|v| v.parse::<u32>().ok());
    let vendor = sysfs::number(dir, "idVendor", 16)?.unwrap_or(0) as u16;
    let product = sysfs::number(dir, "idProduct", 16)?.unwrap_or(0) as u16;
    let (vn, pn) = pciids::usb(vendor, product);
    Ok(Cap::UsbDevice(UsbDevice {
        bus: num("BUSNUM")
            .or(sysfs::number(dir, "busnum", 10)?.map(|n| n as u32))
            .unwrap_or(0),
        device: num("DEVNUM")
            .or(sysfs::number(dir, "devnum", 10)?.map(|n| n as u32))
            .unwrap_or(0),
        vendor,
        product,
        vendor_name: vn.or_else(|| sysfs::string(dir, "manufacturer")),
        product_name: pn.or_else(|| sysfs::string(dir, "product")),
    }))
}

fn usb_interface(dir: &Path) -> Result<Cap> {
    let n = |k: &str| -> Result<u32> { Ok(sysfs::number(dir, k, 16)?.unwrap_or(0) as u32) };
    Ok(Cap::UsbInterface(UsbInterface {
        number: n("bInterfaceNumber")?,
        class: n("bInterfaceClass")?,
        subclass: n("bInterfaceSubClass")?,
        protocol: n("bInterfaceProtocol")?,
    }))
}

fn net(dir: &Path, sysname: &str, devtype: Option<&str>, live: bool) -> Result<Cap> {
    let state = sysfs::string(dir, "operstate");
    let speed = if state.as_deref() == Some("up") {
        sysfs::string(dir, "speed")
            .and_then(|s| s.parse::<i64>().ok())
            .map(|s| s as u32)
    } else {
        None
    };
    Ok(Cap::Net(Net {
        interface: sysname.to_owned(),
        address: sysfs::string(dir, "address"),
        speed,
        state,
        features: if live {
            super::ethtool::features(sysname)
        } else {
            Vec::new()
        },
        subtype: if devtype == Some("wlan") {
            "80211"
        } else {
            "80203"
        },
    }))
}

fn scsi_host(dir: &Path, sysname: &str) -> Result<Cap> {
    let host = sysname
        .strip_prefix("host")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| Error::Parse {
            path: dir.to_owned(),
            what: format!("'{sysname}' is not a SCSI host"),
        })?;
    let unique_id = sysfs::string(&dir.join(format!("scsi_host/{sysname}")), "unique_id")
        .and_then(|u| u.parse().ok());
    Ok(Cap::ScsiHost { host, unique_id })
}

fn scsi_device(dir: &Path, sysname: &str) -> Result<Cap> {
    let parts: Vec<u32> = sysname.split(':').filter_map(|p| p.parse().ok()).collect();
    let [host, bus, target, lun] = parts[..] else {
        return Err(Error::Parse {
            path: dir.to_owned(),
            what: format!("'{sysname}' is not a SCSI address"),
        });
    };
    let kind = sysfs::number(dir, "type", 10)?.and_then(scsi_type);
    Ok(Cap::Scsi(Scsi {
        host,
        bus,
        target,
        lun,
        kind,
    }))
}

/// SCSI peripheral device types as libvirt names them.
fn scsi_type(t: u64) -> Option<&'static str> {
    Some(match t {
        0x00 => "disk",
        0x01 => "tape",
        0x03 => "processor",
        0x04 => "worm",
        0x05 => "cdrom",
        0x06 => "scanner",
        0x07 => "mod",
        0x08 => "changer",
        0x0d => "enclosure",
        0x0c => "raid",
        _ => return None,
    })
}

/// A whole-disk block device. The drive type libvirt takes from udev's `ID_TYPE` (or, without
/// one, guesses for virtio and NVMe disks) comes here from the device's kind; block devices
/// that are not drives (loop, zram, device-mapper, md) are skipped as libvirt skips them.
fn storage(dir: &Path, sysname: &str, ev: &[(String, String)]) -> Result<Option<Cap>> {
    let block = format!("/dev/{}", sysfs::prop(ev, "DEVNAME").unwrap_or(sysname));
    let scsi_kind = sysfs::number(&dir.join("device"), "type", 10)
        .ok()
        .flatten();
    let drive_type = if sysname.starts_with("vd") || sysname.starts_with("nvme") {
        "disk"
    } else if sysname.starts_with("sr") || (sysname.starts_with("sd") && scsi_kind == Some(5)) {
        "cdrom"
    } else if sysname.starts_with("sd") && scsi_kind.is_none_or(|k| k == 0 || k == 0x0e) {
        "disk"
    } else if sysname.starts_with("fd") {
        "floppy"
    } else if sysname.starts_with("mmcblk") {
        "sd"
    } else {
        return Ok(None);
    };
    let num_blocks = sysfs::number(dir, "size", 10)?.unwrap_or(0);
    let logical_block_size = sysfs::number(dir, "queue/logical_block_size", 10)?.unwrap_or(0);
    let removable = if matches!(drive_type, "cdrom" | "floppy") {
        let media = num_blocks > 0;
        Some((
            media,
            if media {
                num_blocks * logical_block_size
            } else {
                0
            },
        ))
    } else {
        None
    };
    Ok(Some(Cap::Storage(Storage {
        block,
        drive_type,
        model: sysfs::string(&dir.join("device"), "model"),
        vendor: sysfs::string(&dir.join("device"), "vendor"),
        removable,
        size: num_blocks * logical_block_size,
        logical_block_size,
        num_blocks,
    })))
}
