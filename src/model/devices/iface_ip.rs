//! `<interface>`'s guest-side `<ip>` and `<route>` (libvirt's LXC driver sets them on the
//! container's end of a veth) and `<guest dev actual>` (its name inside the container).

use std::net::IpAddr;

use crate::model::error::XmlError;
use crate::model::values;
use crate::model::writer::Writer;
use crate::model::xml::Elem;

type Result<T> = std::result::Result<T, XmlError>;

/// One `<ip address prefix peer>` of an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfaceIp {
    pub address: IpAddr,
    /// As written; unset means libvirt's default (the class prefix for IPv4, 64 for IPv6).
    pub prefix: Option<u8>,
    pub peer: Option<IpAddr>,
}

/// One `<route address prefix gateway metric>` of an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfaceRoute {
    /// Whether `family` was written (libvirt writes it back only then).
    pub family: bool,
    pub address: IpAddr,
    pub prefix: Option<u8>,
    pub gateway: IpAddr,
    pub metric: Option<u32>,
}

fn addr(s: &str) -> std::result::Result<IpAddr, String> {
    s.parse::<IpAddr>()
        .map_err(|_| "expected an IPv4 or IPv6 address".to_string())
}

fn family_matches(e: &mut Elem, a: &IpAddr) -> Result<()> {
    if let Some(f) = e.attr("family") {
        let ok = matches!((f, a), ("ipv4", IpAddr::V4(_)) | ("ipv6", IpAddr::V6(_)));
        if !ok {
            return Err(e.attr_invalid(
                "family",
                f,
                format!("'{f}' does not fit the address {a} (ipv4 or ipv6)"),
            ));
        }
    }
    Ok(())
}

fn prefix_of(e: &mut Elem, a: &IpAddr) -> Result<Option<u8>> {
    let max = if a.is_ipv4() { 32 } else { 128 };
    // libvirt: a prefix of 0 is no prefix
    Ok(e.attr_with("prefix", |v| values::uint_in(v, 0, max))?
        .map(|p| p as u8)
        .filter(|p| *p != 0))
}

/// The prefix libvirt uses when `<ip>` gives none: the address class for IPv4, 64 for
/// IPv6.
pub fn default_prefix(a: &IpAddr) -> u8 {
    match a {
        IpAddr::V4(v) => match v.octets()[0] {
            0..=127 => 8,
            128..=191 => 16,
            192..=223 => 24,
            _ => 32,
        },
        IpAddr::V6(_) => 64,
    }
}

impl IfaceIp {
    pub(crate) fn read(mut e: Elem) -> Result<IfaceIp> {
        let address = e.req_attr_with("address", addr)?;
        family_matches(&mut e, &address)?;
        let prefix = prefix_of(&mut e, &address)?;
        let peer = e.attr_with("peer", addr)?;
        e.finish()?;
        Ok(IfaceIp {
            address,
            prefix,
            peer,
        })
    }

    pub fn prefix_or_default(&self) -> u8 {
        self.prefix.unwrap_or_else(|| default_prefix(&self.address))
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.start("ip");
        w.attr("address", &self.address.to_string());
        w.attr(
            "family",
            if self.address.is_ipv4() {
                "ipv4"
            } else {
                "ipv6"
            },
        );
        w.attr_num_opt("prefix", self.prefix);
        w.attr_opt("peer", self.peer.map(|p| p.to_string()).as_deref());
        w.end();
    }
}

impl IfaceRoute {
    pub(crate) fn read(mut e: Elem) -> Result<IfaceRoute> {
        let address = e.req_attr_with("address", addr)?;
        let family = e.node().attribute("family").is_some();
        family_matches(&mut e, &address)?;
        let mut prefix = prefix_of(&mut e, &address)?;
        if let Some(m) = e.attr("netmask") {
            let bits = match (m.parse::<std::net::Ipv4Addr>(), address) {
                (Ok(n), IpAddr::V4(_)) => {
                    let v = u32::from(n);
                    (v.leading_ones() + v.trailing_zeros() == 32).then_some(v.leading_ones() as u8)
                }
                _ => None,
            };
            match (bits, prefix) {
                (Some(b), None) => prefix = Some(b),
                (_, Some(_)) => {
                    return Err(e.attr_invalid(
                        "netmask",
                        m,
                        "give a netmask or a prefix, not both",
                    ));
                }
                (None, None) => {
                    return Err(e.attr_invalid(
                        "netmask",
                        m,
                        "expected an IPv4 netmask (contiguous ones) on an IPv4 route",
                    ));
                }
            }
        }
        let gateway = e.req_attr_with("gateway", addr)?;
        if gateway.is_ipv4() != address.is_ipv4() {
            return Err(e.attr_invalid(
                "gateway",
                &gateway.to_string(),
                "the gateway must be of the address's family",
            ));
        }
        let metric = e.attr_with("metric", values::u32_any)?;
        e.finish()?;
        Ok(IfaceRoute {
            family,
            address,
            prefix,
            gateway,
            metric,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.start("route");
        if self.family {
            w.attr(
                "family",
                if self.address.is_ipv4() {
                    "ipv4"
                } else {
                    "ipv6"
                },
            );
        }
        w.attr("address", &self.address.to_string());
        w.attr_num_opt("prefix", self.prefix);
        w.attr("gateway", &self.gateway.to_string());
        w.attr_num_opt("metric", self.metric);
        w.end();
    }
}
