//! USB redirection and hubs: `<redirdev>`, `<redirfilter>` and `<hub>`.
//!
//! A redirected device reaches the guest through a character device: SPICE's usbredir
//! channel (`spicevmc`) or a TCP connection speaking the usbredir protocol. The filter says
//! which host devices a SPICE client may redirect.

use super::TcpProtocol;
use crate::model::address::{self, AddressType, DeviceInfo};
use crate::model::error::XmlError;
use crate::model::values;
use crate::model::writer::Writer;
use crate::model::xml::Elem;

type Result<T> = std::result::Result<T, XmlError>;

/// Where a redirected USB device comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedirSource {
    /// SPICE's usbredir channel.
    Spicevmc,
    /// A usbredir stream over TCP.
    Tcp {
        /// `mode='bind'`: QEMU listens; otherwise it connects.
        bind: bool,
        host: Option<String>,
        service: Option<String>,
        protocol: TcpProtocol,
    },
}

impl RedirSource {
    /// The `type` attribute.
    pub fn type_str(&self) -> &'static str {
        match self {
            RedirSource::Spicevmc => "spicevmc",
            RedirSource::Tcp { .. } => "tcp",
        }
    }
}

/// `<redirdev bus='usb'>`: one redirected USB device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirdev {
    pub source: RedirSource,
    pub boot_order: Option<u32>,
    pub info: DeviceInfo,
}

/// Any address other than a USB one is wrong for a USB device.
pub(crate) fn check_usb_address(e: &Elem, info: &DeviceInfo) -> Result<()> {
    match &info.address {
        Some(a) if a.kind != AddressType::Usb => Err(XmlError::invalid(
            format!("{}/address/@type", e.path()),
            a.kind.as_str(),
            "a USB device takes only a 'usb' address",
        )),
        _ => Ok(()),
    }
}

impl Redirdev {
    pub(crate) fn read(mut e: Elem) -> Result<Redirdev> {
        e.attr_with("bus", |v| {
            if v == "usb" {
                Ok(())
            } else {
                Err(values::one_of(&["usb"]))
            }
        })?;
        let kind = e.req_attr("type")?;
        let source = match kind {
            "spicevmc" => RedirSource::Spicevmc,
            "tcp" => {
                let (mut bind, mut host, mut service) = (false, None, None);
                if let Some(mut s) = e.child("source")? {
                    bind = s
                        .attr_with("mode", |m| match m {
                            "bind" => Ok(true),
                            "connect" => Ok(false),
                            _ => Err(values::one_of(&["bind", "connect"])),
                        })?
                        .unwrap_or(false);
                    host = s.attr_with("host", values::token)?;
                    service = s.attr_with("service", values::token)?;
                    s.finish()?;
                }
                let protocol = e
                    .child_attr_with("protocol", "type", values::keyword::<TcpProtocol>)?
                    .unwrap_or(TcpProtocol::Raw);
                RedirSource::Tcp {
                    bind,
                    host,
                    service,
                    protocol,
                }
            }
            other => {
                return Err(e.attr_invalid(
                    "type",
                    other,
                    "USB redirection takes 'spicevmc' or 'tcp' here",
                ));
            }
        };
        let boot_order = address::read_boot_order(&mut e)?;
        let info = DeviceInfo::read(&mut e)?;
        check_usb_address(&e, &info)?;
        e.finish()?;
        Ok(Redirdev {
            source,
            boot_order,
            info,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.start("redirdev");
        w.attr("bus", "usb");
        w.attr("type", self.source.type_str());
        if let RedirSource::Tcp {
            bind,
            host,
            service,
            protocol,
        } = &self.source
        {
            w.start("source");
            w.attr("mode", if *bind { "bind" } else { "connect" });
            w.attr_opt("host", host.as_deref());
            w.attr_opt("service", service.as_deref());
            w.end();
            w.leaf_attr("protocol", "type", protocol.as_str());
        }
        address::write_boot_order(w, self.boot_order);
        self.info.write(w);
        w.end();
    }
}

/// One `<usbdev>` rule of `<redirfilter>`; `None` matches any value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedirFilterRule {
    pub class: Option<u8>,
    pub vendor: Option<u16>,
    pub product: Option<u16>,
    /// The device's bcdDevice: `0xJJMN` for version `JJ.MN`.
    pub version: Option<u16>,
    pub allow: bool,
}

/// `-1` (any) or a number up to `max`, decimal or `0x` hex.
fn any_or_max(max: u64) -> impl Fn(&str) -> std::result::Result<Option<u64>, String> {
    move |v| {
        if v == "-1" {
            return Ok(None);
        }
        match values::dec_or_hex(v) {
            Ok(n) if n <= max => Ok(Some(n)),
            _ => Err(format!("expected -1 or a number up to {max:#x}")),
        }
    }
}

/// `JJ.MN` (or `JJ.M`, meaning `JJ.M0`) as binary-coded decimal, or `-1` for any.
fn usb_version(v: &str) -> std::result::Result<Option<u16>, String> {
    if v == "-1" {
        return Ok(None);
    }
    let bad = || "expected a USB version such as '2.00' or '1.10', or -1".to_string();
    let (major, minor) = v.split_once('.').ok_or_else(bad)?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(major) || !digits(minor) {
        return Err(bad());
    }
    let major: u16 = major.parse().map_err(|_| bad())?;
    let mut minor_n: u16 = minor.parse().map_err(|_| bad())?;
    if minor.len() == 1 {
        minor_n *= 10;
    }
    Ok(Some(
        ((major / 10) << 12) | ((major % 10) << 8) | ((minor_n / 10) << 4) | (minor_n % 10),
    ))
}

impl RedirFilterRule {
    fn read(mut e: Elem) -> Result<RedirFilterRule> {
        let class = e.attr_with("class", any_or_max(0xff))?.flatten();
        let vendor = e.attr_with("vendor", any_or_max(0xffff))?.flatten();
        let product = e.attr_with("product", any_or_max(0xffff))?.flatten();
        let version = e.attr_with("version", usb_version)?.flatten();
        let allow = e.req_attr_with("allow", values::yes_no)?;
        e.finish()?;
        Ok(RedirFilterRule {
            class: class.map(|n| n as u8),
            vendor: vendor.map(|n| n as u16),
            product: product.map(|n| n as u16),
            version,
            allow,
        })
    }

    fn write(&self, w: &mut Writer) {
        w.start("usbdev");
        if let Some(c) = self.class {
            w.attr("class", &format!("0x{c:02X}"));
        }
        if let Some(v) = self.vendor {
            w.attr("vendor", &format!("0x{v:04X}"));
        }
        if let Some(p) = self.product {
            w.attr("product", &format!("0x{p:04X}"));
        }
        if let Some(v) = self.version {
            let major = (v >> 12) * 10 + ((v >> 8) & 0xf);
            let minor = ((v >> 4) & 0xf) * 10 + (v & 0xf);
            w.attr("version", &format!("{major}.{minor:02}"));
        }
        w.attr("allow", values::yes_no_str(self.allow));
        w.end();
    }

    /// The rule in usb-redir's `filter` syntax: `class:vendor:product:version:allow`.
    pub fn qemu_filter(&self) -> String {
        let num = |v: Option<u16>, width: usize| match v {
            Some(n) => format!("0x{n:0width$X}"),
            None => "-1".into(),
        };
        format!(
            "{}:{}:{}:{}:{}",
            num(self.class.map(u16::from), 2),
            num(self.vendor, 4),
            num(self.product, 4),
            num(self.version, 4),
            u8::from(self.allow)
        )
    }
}

/// `<redirfilter>`: rules tried in order for every redirected device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Redirfilter {
    pub rules: Vec<RedirFilterRule>,
}

impl Redirfilter {
    pub(crate) fn read(mut e: Elem) -> Result<Redirfilter> {
        let mut rules = Vec::new();
        e.each("usbdev", |u| {
            rules.push(RedirFilterRule::read(u)?);
            Ok(())
        })?;
        e.finish()?;
        Ok(Redirfilter { rules })
    }

    /// libvirt writes nothing for a filter without rules.
    pub(crate) fn write(&self, w: &mut Writer) {
        if self.rules.is_empty() {
            return;
        }
        w.start("redirfilter");
        self.rules.iter().for_each(|r| r.write(w));
        w.end();
    }

    /// usb-redir's `filter` property: the rules joined by `|`.
    pub fn qemu_filter(&self) -> String {
        self.rules
            .iter()
            .map(RedirFilterRule::qemu_filter)
            .collect::<Vec<_>>()
            .join("|")
    }
}

/// `<hub type='usb'>`: an 8-port USB hub.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hub {
    pub info: DeviceInfo,
}

impl Hub {
    pub(crate) fn read(mut e: Elem) -> Result<Hub> {
        e.req_attr_with("type", |v| {
            if v == "usb" {
                Ok(())
            } else {
                Err(values::one_of(&["usb"]))
            }
        })?;
        let info = DeviceInfo::read(&mut e)?;
        check_usb_address(&e, &info)?;
        e.finish()?;
        Ok(Hub { info })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.start("hub");
        w.attr("type", "usb");
        self.info.write(w);
        w.end();
    }
}

#[cfg(test)]
mod tests {
    use crate::model::DomainDef;

    fn devices_xml(devices: &str) -> Result<String, String> {
        let xml = format!(
            "<domain type='qemu'><name>t</name><memory>65536</memory>\
             <os><type>hvm</type></os><devices>{devices}</devices></domain>"
        );
        let d = DomainDef::from_xml(&xml).map_err(|e| e.to_string())?;
        let out = d.to_xml(&Default::default());
        let start = out.find("<devices>").unwrap_or(0);
        let end = out.find("</devices>").unwrap_or(out.len());
        Ok(out[start..end]
            .lines()
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(""))
    }

    /// libvirt's canonical form: the TCP protocol spelled out, a catch-all rule written
    /// without its -1 values, a one-digit minor version as two, hex in upper case.
    #[test]
    fn round_trip_in_libvirt_form() {
        let got = devices_xml(
            "<hub type='usb'><address type='usb' bus='0' port='1'/></hub>\
             <redirfilter><usbdev class='8' vendor='0x15e1' product='0x2007' version='1.1' \
             allow='yes'/><usbdev class='-1' vendor='-1' product='-1' version='-1' \
             allow='no'/></redirfilter>\
             <redirdev bus='usb' type='tcp'><source mode='connect' host='localhost' \
             service='4000'/><boot order='1'/></redirdev>\
             <redirdev type='spicevmc'><alias name='ua-r'/><address type='usb' bus='0' \
             port='1.2'/></redirdev>",
        )
        .expect("parses");
        assert_eq!(
            got,
            "<devices>\
             <redirdev bus='usb' type='tcp'>\
             <source mode='connect' host='localhost' service='4000'/>\
             <protocol type='raw'/><boot order='1'/></redirdev>\
             <redirdev bus='usb' type='spicevmc'><alias name='ua-r'/>\
             <address type='usb' bus='0' port='1.2'/></redirdev>\
             <redirfilter>\
             <usbdev class='0x08' vendor='0x15E1' product='0x2007' version='1.10' allow='yes'/>\
             <usbdev allow='no'/></redirfilter>\
             <hub type='usb'><address type='usb' bus='0' port='1'/></hub>"
        );
        // the canonical form reads back to itself
        let again = devices_xml(got.trim_start_matches("<devices>")).expect("reparses");
        assert_eq!(again, got);
    }

    #[test]
    fn bad_input_is_named() {
        for (devices, want) in [
            (
                "<redirdev bus='usb' type='pty'/>",
                "/domain/devices/redirdev/@type",
            ),
            (
                "<redirdev bus='pci' type='spicevmc'/>",
                "/domain/devices/redirdev/@bus",
            ),
            (
                "<redirdev bus='usb' type='spicevmc'><address type='pci' slot='3'/></redirdev>",
                "a USB device takes only a 'usb' address",
            ),
            (
                "<redirdev bus='usb' type='tcp'><protocol type='ssh'/></redirdev>",
                "protocol/@type",
            ),
            (
                "<redirfilter><usbdev version='1.100' allow='yes'/></redirfilter>",
                "@version",
            ),
            (
                "<redirfilter><usbdev class='0x100' allow='yes'/></redirfilter>",
                "@class",
            ),
            ("<redirfilter><usbdev vendor='1'/></redirfilter>", "allow"),
            ("<redirfilter><other/></redirfilter>", "other"),
            ("<redirfilter/><redirfilter/>", "redirfilter"),
            ("<hub type='pci'/>", "/domain/devices/hub/@type"),
            (
                "<redirdev bus='usb' type='spicevmc'><boot order='1'/></redirdev>\
                 <redirdev bus='usb' type='spicevmc'><boot order='1'/></redirdev>",
                "boot order is already used",
            ),
        ] {
            match devices_xml(devices) {
                Ok(x) => panic!("{devices} parsed: {x}"),
                Err(e) => assert!(e.contains(want), "{devices}: '{e}' does not name '{want}'"),
            }
        }
    }
}
