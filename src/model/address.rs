//! `<address>`, `<alias>` and other attribute maps shared by devices.
//!
//! Address attributes differ per address type, so an address is kept as
//! its type plus a list of attributes. Names are checked against the type's
//! known set and written in a fixed order; values are kept as written
//! (libvirt itself accepts decimal and hex for the same field).

use crate::model::error::XmlError;
use crate::model::values::{self, xml_enum};
use crate::model::writer::Writer;
use crate::model::xml::Elem;

/// How an attribute value of a map is checked.
#[derive(Clone, Copy)]
pub(crate) enum Check {
    /// Decimal or 0x hex integer.
    Num,
    OnOff,
    /// USB port path: up to four dot-separated decimal numbers.
    UsbPort,
}

impl Check {
    fn run(self, v: &str) -> Result<(), String> {
        match self {
            Check::Num => values::dec_or_hex(v).map(|_| ()),
            Check::OnOff => values::on_off(v).map(|_| ()),
            Check::UsbPort => {
                let parts: Vec<&str> = v.split('.').collect();
                let ok =
                    parts.len() <= 4 && parts.iter().all(|p| values::uint_in(p, 0, 255).is_ok());
                if ok {
                    Ok(())
                } else {
                    Err("expected a USB port such as '1' or '1.2'".into())
                }
            }
        }
    }
}

/// Attribute names and checks, in output order.
pub(crate) type Spec = &'static [(&'static str, Check)];

/// Attributes whose set is fixed but whose values are stored as written.
pub type AttrList = Vec<(&'static str, String)>;

/// Takes every attribute listed in `spec` that is present, in spec order.
pub(crate) fn read_attrs(e: &mut Elem, spec: Spec) -> Result<AttrList, XmlError> {
    let mut out = Vec::new();
    for &(name, check) in spec {
        if let Some(v) = e.attr(name) {
            check.run(v).map_err(|r| e.attr_invalid(name, v, r))?;
            out.push((name, v.to_string()));
        }
    }
    Ok(out)
}

pub(crate) fn write_attrs(w: &mut Writer, attrs: &AttrList) {
    for (k, v) in attrs {
        w.attr(k, v);
    }
}

/// Sets `name` in `attrs`, keeping `spec` order; `None` removes it.
pub(crate) fn set_attr(
    attrs: &mut AttrList,
    spec: Spec,
    name: &str,
    value: Option<&str>,
) -> Result<(), String> {
    let (pos, &(key, check)) = spec
        .iter()
        .enumerate()
        .find(|(_, (k, _))| *k == name)
        .ok_or_else(|| values::one_of(&spec.iter().map(|(k, _)| *k).collect::<Vec<_>>()))?;
    attrs.retain(|(k, _)| *k != key);
    if let Some(v) = value {
        check.run(v)?;
        let at = attrs
            .iter()
            .position(|(k, _)| spec.iter().position(|(s, _)| s == k) > Some(pos))
            .unwrap_or(attrs.len());
        attrs.insert(at, (key, v.to_string()));
    }
    Ok(())
}

xml_enum! {
    /// `type` of `<address>`.
    pub enum AddressType {
        Pci = "pci",
        Drive = "drive",
        VirtioSerial = "virtio-serial",
        Ccid = "ccid",
        Usb = "usb",
        SpaprVio = "spapr-vio",
        Ccw = "ccw",
        VirtioMmio = "virtio-mmio",
        Isa = "isa",
        Dimm = "dimm",
        Unassigned = "unassigned",
    }
}

impl AddressType {
    fn spec(self) -> Spec {
        use Check::*;
        match self {
            AddressType::Pci => &[
                ("domain", Num),
                ("bus", Num),
                ("slot", Num),
                ("function", Num),
                ("multifunction", OnOff),
            ],
            AddressType::Drive => &[
                ("controller", Num),
                ("bus", Num),
                ("target", Num),
                ("unit", Num),
            ],
            AddressType::VirtioSerial => &[("controller", Num), ("bus", Num), ("port", Num)],
            AddressType::Ccid => &[("controller", Num), ("slot", Num)],
            AddressType::Usb => &[("bus", Num), ("port", UsbPort)],
            AddressType::SpaprVio => &[("reg", Num)],
            AddressType::Ccw => &[("cssid", Num), ("ssid", Num), ("devno", Num)],
            AddressType::Isa => &[("iobase", Num), ("irq", Num)],
            AddressType::Dimm => &[("slot", Num), ("base", Num)],
            AddressType::VirtioMmio | AddressType::Unassigned => &[],
        }
    }
}

/// A device address: its type and the attributes that type allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub kind: AddressType,
    pub attrs: AttrList,
}

impl Address {
    pub fn new(kind: AddressType) -> Address {
        Address {
            kind,
            attrs: Vec::new(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets or removes one attribute, validated like the parser does.
    pub fn set(&mut self, name: &str, value: Option<&str>) -> Result<(), String> {
        set_attr(&mut self.attrs, self.kind.spec(), name, value)
    }

    pub(crate) fn read(mut e: Elem) -> Result<Address, XmlError> {
        let kind = e.req_attr_with("type", values::keyword::<AddressType>)?;
        let attrs = read_attrs(&mut e, kind.spec())?;
        e.finish()?;
        Ok(Address { kind, attrs })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.start("address");
        w.attr("type", self.kind.as_str());
        if self.kind == AddressType::Pci {
            // libvirt writes PCI numbers in hex of fixed width, however they were given
            for (k, v) in &self.attrs {
                let n = values::dec_or_hex(v).ok();
                let canon = match (*k, n) {
                    ("domain", Some(n)) => format!("{n:#06x}"),
                    ("bus" | "slot", Some(n)) => format!("{n:#04x}"),
                    ("function", Some(n)) => format!("{n:#x}"),
                    _ => v.clone(),
                };
                w.attr(k, &canon);
            }
        } else {
            write_attrs(w, &self.attrs);
        }
        w.end();
    }
}

/// Identity shared by all devices: the alias (assigned while running, or a
/// user alias starting with `ua-`) and the bus address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceInfo {
    pub alias: Option<String>,
    pub address: Option<Address>,
}

impl DeviceInfo {
    pub(crate) fn read(e: &mut Elem) -> Result<DeviceInfo, XmlError> {
        let alias = e.child_attr_with("alias", "name", values::token)?;
        let address = e.child("address")?.map(Address::read).transpose()?;
        Ok(DeviceInfo { alias, address })
    }

    pub(crate) fn write_alias(&self, w: &mut Writer) {
        if let Some(a) = &self.alias {
            w.leaf_attr("alias", "name", a);
        }
    }

    pub(crate) fn write_address(&self, w: &mut Writer) {
        if let Some(a) = &self.address {
            a.write(w);
        }
    }

    /// Alias then address, the order libvirt uses for the device tail.
    pub(crate) fn write(&self, w: &mut Writer) {
        self.write_alias(w);
        self.write_address(w);
    }
}

/// `<boot order='N'/>` of a bootable device.
pub(crate) fn read_boot_order(e: &mut Elem) -> Result<Option<u32>, XmlError> {
    e.child_attr_with("boot", "order", values::u32_pos)
}

pub(crate) fn write_boot_order(w: &mut Writer, order: Option<u32>) {
    if let Some(o) = order {
        w.start("boot");
        w.attr_num("order", o);
        w.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_keeps_canonical_order() {
        let mut a = Address::new(AddressType::Pci);
        assert_eq!(a.set("function", Some("0x0")), Ok(()));
        assert_eq!(a.set("domain", Some("0x0000")), Ok(()));
        assert_eq!(a.set("slot", Some("0x02")), Ok(()));
        assert_eq!(a.set("bus", Some("0x00")), Ok(()));
        let keys: Vec<&str> = a.attrs.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, ["domain", "bus", "slot", "function"]);
        assert!(a.set("slot", Some("zz")).is_err());
        assert!(a.set("port", Some("1")).is_err());
        assert_eq!(a.set("slot", None), Ok(()));
        assert_eq!(a.get("slot"), None);
        assert_eq!(a.get("bus"), Some("0x00"));
    }

    #[test]
    fn usb_ports() {
        assert!(Check::UsbPort.run("1").is_ok());
        assert!(Check::UsbPort.run("1.2.3.4").is_ok());
        assert!(Check::UsbPort.run("1.2.3.4.5").is_err());
        assert!(Check::UsbPort.run("1..2").is_err());
    }
}
