//! `<controller>`: buses that other devices attach to.

use crate::model::address::{self, AttrList, Check, DeviceInfo, Spec};
use crate::model::error::XmlError;
use crate::model::values::{self, xml_enum};
use crate::model::writer::Writer;
use crate::model::xml::Elem;

type Result<T> = std::result::Result<T, XmlError>;

xml_enum! {
    pub enum ControllerType {
        Ide = "ide",
        Fdc = "fdc",
        Scsi = "scsi",
        Sata = "sata",
        Usb = "usb",
        Ccid = "ccid",
        VirtioSerial = "virtio-serial",
        Pci = "pci",
        Xenbus = "xenbus",
        Isa = "isa",
    }
}

impl ControllerType {
    /// Models libvirt knows for this controller type (empty: no `model`).
    fn models(self) -> &'static [&'static str] {
        match self {
            ControllerType::Usb => &[
                "piix3-uhci",
                "piix4-uhci",
                "ehci",
                "ich9-ehci1",
                "ich9-uhci1",
                "ich9-uhci2",
                "ich9-uhci3",
                "vt82c686b-uhci",
                "pci-ohci",
                "nec-xhci",
                "qusb1",
                "qusb2",
                "qemu-xhci",
                "none",
            ],
            ControllerType::Scsi => &[
                "auto",
                "buslogic",
                "lsilogic",
                "lsisas1068",
                "vmpvscsi",
                "ibmvscsi",
                "virtio-scsi",
                "lsisas1078",
                "virtio-transitional",
                "virtio-non-transitional",
                "ncr53c90",
                "am53c974",
                "dc390",
            ],
            ControllerType::Pci => &[
                "pci-root",
                "pcie-root",
                "pci-bridge",
                "dmi-to-pci-bridge",
                "pcie-root-port",
                "pcie-switch-upstream-port",
                "pcie-switch-downstream-port",
                "pci-expander-bus",
                "pcie-expander-bus",
                "pcie-to-pci-bridge",
            ],
            ControllerType::VirtioSerial => {
                &["virtio", "virtio-transitional", "virtio-non-transitional"]
            }
            ControllerType::Ide => &["piix3", "piix4", "ich6"],
            _ => &[],
        }
    }
}

/// Attributes of a PCI controller's `<target>`.
const PCI_TARGET: Spec = &[
    ("chassisNr", Check::Num),
    ("chassis", Check::Num),
    ("port", Check::Num),
    ("busNr", Check::Num),
    ("index", Check::Num),
    ("hotplug", Check::OnOff),
];

/// Attributes of `<driver>` (SCSI and virtio-serial tuning).
const DRIVER: Spec = &[
    ("queues", Check::Num),
    ("cmd_per_lun", Check::Num),
    ("max_sectors", Check::Num),
    ("ioeventfd", Check::OnOff),
    ("iothread", Check::Num),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Controller {
    pub controller_type: ControllerType,
    /// Assigned by the hypervisor driver when absent.
    pub index: Option<u32>,
    pub model: Option<String>,
    /// USB and virtio-serial only.
    pub ports: Option<u32>,
    /// virtio-serial only.
    pub vectors: Option<u32>,
    /// PCI only: `<model name=...>`, the emulated device behind the model.
    pub model_name: Option<String>,
    /// PCI only: `<target>` attributes.
    pub target: AttrList,
    /// PCI expander buses only: `<target><node>`, the guest NUMA node they belong to.
    pub numa_node: Option<u32>,
    pub driver: AttrList,
    /// Virtio options on the same `<driver>` (virtio-scsi, virtio-serial).
    pub virtio: super::VirtioOptions,
    /// USB companion controllers: `<master startport=...>`.
    pub master_startport: Option<u32>,
    /// PCI roots only: `<pcihole64>`, the size of the 64-bit PCI MMIO window in KiB.
    pub pcihole64_kib: Option<u64>,
    pub info: DeviceInfo,
}

impl Controller {
    /// A controller of type `t` with nothing else set.
    pub fn new(t: ControllerType) -> Controller {
        Controller {
            controller_type: t,
            index: None,
            model: None,
            ports: None,
            vectors: None,
            model_name: None,
            target: Vec::new(),
            numa_node: None,
            driver: Vec::new(),
            virtio: Default::default(),
            master_startport: None,
            pcihole64_kib: None,
            info: DeviceInfo::default(),
        }
    }

    /// An ICH9 USB2 controller: the EHCI or one of its UHCI companions, which share an index.
    pub fn is_usb2(&self) -> bool {
        self.controller_type == ControllerType::Usb
            && matches!(
                self.model.as_deref(),
                Some("ich9-ehci1" | "ich9-uhci1" | "ich9-uhci2" | "ich9-uhci3")
            )
    }

    pub(crate) fn read(mut e: Elem) -> Result<Controller> {
        let controller_type = e.req_attr_with("type", values::keyword::<ControllerType>)?;
        let index = e.attr_with("index", values::u32_any)?;
        let models = controller_type.models();
        let model = e.attr_with("model", |m| {
            if models.contains(&m) {
                Ok(m.to_string())
            } else if models.is_empty() {
                Err(format!("{controller_type} controllers have no models"))
            } else {
                Err(values::one_of(models))
            }
        })?;
        let (mut ports, mut vectors) = (None, None);
        if matches!(
            controller_type,
            ControllerType::Usb | ControllerType::VirtioSerial
        ) {
            ports = e.attr_with("ports", values::u32_any)?;
        }
        if controller_type == ControllerType::VirtioSerial {
            vectors = e.attr_with("vectors", values::u32_any)?;
        }
        let (mut model_name, mut target, mut numa_node) = (None, Vec::new(), None);
        let mut pcihole64_kib = None;
        if controller_type == ControllerType::Pci
            && matches!(model.as_deref(), Some("pci-root" | "pcie-root"))
            && let Some(mut h) = e.child("pcihole64")?
        {
            let unit = match h.attr("unit") {
                Some(u) => values::memory_unit(u).map_err(|why| h.attr_invalid("unit", u, why))?,
                None => 1024,
            };
            let t = h.text();
            if t.trim() != "0" {
                pcihole64_kib = Some(
                    values::memory_kib(t.trim(), unit).map_err(|why| h.invalid(t.trim(), why))?,
                );
            }
            h.finish()?;
        }
        if controller_type == ControllerType::Pci {
            model_name = e.child_attr_with("model", "name", values::token)?;
            if let Some(mut t) = e.child("target")? {
                target = address::read_attrs(&mut t, PCI_TARGET)?;
                numa_node = t.child_text_with("node", values::u32_any)?;
                t.finish()?;
            }
        }
        let (driver, virtio) = match e.child("driver")? {
            None => (Vec::new(), Default::default()),
            Some(mut d) => {
                let attrs = address::read_attrs(&mut d, DRIVER)?;
                let virtio = super::VirtioOptions::read(&mut d)?;
                d.finish()?;
                (attrs, virtio)
            }
        };
        let master_startport = if controller_type == ControllerType::Usb {
            // as libvirt: an ich9 UHCI companion naming no master takes the ports its
            // number gives on the EHCI controller of its index (pairs from 0)
            let first = match model.as_deref() {
                Some("ich9-uhci1") => Some(0),
                Some("ich9-uhci2") => Some(2),
                Some("ich9-uhci3") => Some(4),
                _ => None,
            };
            e.child_attr_with("master", "startport", values::u32_any)?
                .or(first)
        } else {
            None
        };
        let info = DeviceInfo::read(&mut e)?;
        e.finish()?;
        Ok(Controller {
            controller_type,
            index,
            model,
            ports,
            vectors,
            model_name,
            target,
            numa_node,
            driver,
            virtio,
            master_startport,
            pcihole64_kib,
            info,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.start("controller");
        w.attr("type", self.controller_type.as_str());
        w.attr_num_opt("index", self.index);
        w.attr_opt("model", self.model.as_deref());
        w.attr_num_opt("ports", self.ports);
        w.attr_num_opt("vectors", self.vectors);
        if let Some(n) = &self.model_name {
            w.leaf_attr("model", "name", n);
        }
        if !self.target.is_empty() || self.numa_node.is_some() {
            w.start("target");
            address::write_attrs(w, &self.target);
            if let Some(n) = self.numa_node {
                w.leaf("node", &n.to_string());
            }
            w.end();
        }
        if let Some(k) = self.pcihole64_kib {
            w.start("pcihole64");
            w.attr("unit", "KiB");
            w.end_with_text(&k.to_string());
        }
        if !self.driver.is_empty() || !self.virtio.is_empty() {
            w.start("driver");
            address::write_attrs(w, &self.driver);
            self.virtio.write_attrs(w);
            w.end();
        }
        self.info.write_alias(w);
        if let Some(p) = self.master_startport {
            w.start("master");
            w.attr_num("startport", p);
            w.end();
        }
        self.info.write_address(w);
        w.end();
    }
}
