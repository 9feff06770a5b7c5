//! `<ip>` of a network (its address on the bridge, DHCP ranges and static hosts) and the
//! subnet arithmetic the checks and the firewall need.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::model::MacAddr;
use crate::model::XmlError;
use crate::model::values;
use crate::model::writer::Writer;
use crate::model::xml::Elem;

/// One `<ip>`: the host side's address on the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpDef {
    /// `family='ipv4|ipv6'` as written (it must match the address).
    pub family: Option<String>,
    pub address: IpAddr,
    /// `netmask=` (IPv4 only), kept as written.
    pub netmask: Option<Ipv4Addr>,
    pub prefix: Option<u8>,
    /// `localPtr='yes'`: dnsmasq answers reverse lookups of the subnet itself.
    pub local_ptr: Option<bool>,
    pub dhcp: Option<Dhcp>,
}

/// `<dhcp>`: what dnsmasq hands out.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dhcp {
    pub ranges: Vec<DhcpRange>,
    pub hosts: Vec<DhcpHost>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DhcpRange {
    pub start: IpAddr,
    pub end: IpAddr,
}

/// A static lease: by MAC (IPv4) and/or host name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpHost {
    pub mac: Option<MacAddr>,
    pub name: Option<String>,
    pub ip: Option<IpAddr>,
}

/// An address and prefix length with the arithmetic the checks need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    pub addr: IpAddr,
    pub prefix: u8,
}

fn to_u128(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u128::from(u32::from(v)),
        IpAddr::V6(v) => u128::from(v),
    }
}

fn bits(a: IpAddr) -> u8 {
    if a.is_ipv4() { 32 } else { 128 }
}

impl Subnet {
    fn mask(&self) -> u128 {
        let width = bits(self.addr);
        let all = if width == 32 {
            u128::from(u32::MAX)
        } else {
            u128::MAX
        };
        if self.prefix == 0 {
            0
        } else {
            all & !((1u128 << (width - self.prefix)) - 1)
        }
    }

    /// The first address (the network address).
    pub fn network(&self) -> u128 {
        to_u128(self.addr) & self.mask()
    }

    /// The last address (the IPv4 broadcast).
    pub fn last(&self) -> u128 {
        let width = bits(self.addr);
        let all = if width == 32 {
            u128::from(u32::MAX)
        } else {
            u128::MAX
        };
        self.network() | (all & !self.mask())
    }

    pub fn contains(&self, a: IpAddr) -> bool {
        a.is_ipv4() == self.addr.is_ipv4() && (to_u128(a) & self.mask()) == self.network()
    }

    /// Whether the two subnets share an address.
    pub fn overlaps(&self, other: &Subnet) -> bool {
        self.addr.is_ipv4() == other.addr.is_ipv4()
            && self.network() <= other.last()
            && other.network() <= self.last()
    }

    /// `192.168.122.0/24`.
    pub fn cidr(&self) -> String {
        let net = self.network();
        let a = if self.addr.is_ipv4() {
            IpAddr::V4(Ipv4Addr::from(net as u32))
        } else {
            IpAddr::V6(Ipv6Addr::from(net))
        };
        format!("{a}/{}", self.prefix)
    }

    /// The netmask in dotted form (IPv4).
    pub fn netmask_v4(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.mask() as u32)
    }
}

/// The prefix length of a contiguous netmask.
fn netmask_prefix(m: Ipv4Addr) -> Result<u8, String> {
    let v = u32::from(m);
    let p = v.leading_ones();
    if v.checked_shl(p).unwrap_or(0) != 0 {
        return Err("expected a contiguous netmask such as 255.255.255.0".into());
    }
    Ok(p as u8)
}

impl IpDef {
    /// The prefix in force: `prefix=`, else `netmask=`, else the classful default for IPv4
    /// (as libvirt does) and /64 for IPv6.
    pub fn prefix_len(&self) -> u8 {
        if let Some(p) = self.prefix {
            return p;
        }
        if let Some(m) = self.netmask {
            return netmask_prefix(m).unwrap_or(32);
        }
        match self.address {
            IpAddr::V4(a) => match a.octets()[0] {
                0..=127 => 8,
                128..=191 => 16,
                192..=223 => 24,
                _ => 32,
            },
            IpAddr::V6(_) => 64,
        }
    }

    pub fn subnet(&self) -> Subnet {
        Subnet {
            addr: self.address,
            prefix: self.prefix_len(),
        }
    }

    pub fn is_ipv4(&self) -> bool {
        self.address.is_ipv4()
    }

    /// The reverse-lookup domain of the subnet (`122.168.192.in-addr.arpa`), when its
    /// prefix falls on a label boundary (8 bits for IPv4, 4 for IPv6), as dnsmasq's `local=`
    /// needs it.
    pub fn ptr_domain(&self) -> Option<String> {
        let prefix = self.prefix_len();
        let net = Subnet {
            addr: self.address,
            prefix,
        }
        .network();
        match self.address {
            IpAddr::V4(_) if prefix.is_multiple_of(8) => {
                let octets = (net as u32).to_be_bytes();
                let mut labels: Vec<String> = octets[..usize::from(prefix / 8)]
                    .iter()
                    .map(u8::to_string)
                    .collect();
                labels.reverse();
                labels.push("in-addr.arpa".into());
                Some(labels.join("."))
            }
            IpAddr::V6(_) if prefix.is_multiple_of(4) => {
                let nibbles = usize::from(prefix / 4);
                let mut labels: Vec<String> = (0..nibbles)
                    .map(|i| format!("{:x}", (net >> (124 - 4 * i)) & 0xf))
                    .collect();
                labels.reverse();
                labels.push("ip6.arpa".into());
                Some(labels.join("."))
            }
            _ => None,
        }
    }

    pub(crate) fn read(mut e: Elem) -> Result<IpDef, XmlError> {
        let family = e.attr_string("family");
        let address = e.req_attr_with("address", |s| {
            s.parse::<IpAddr>()
                .map_err(|_| "expected an IPv4 or IPv6 address".to_string())
        })?;
        if let Some(f) = &family {
            let ok = match f.as_str() {
                "ipv4" => address.is_ipv4(),
                "ipv6" => address.is_ipv6(),
                _ => {
                    return Err(e.attr_invalid("family", f, values::one_of(&["ipv4", "ipv6"])));
                }
            };
            if !ok {
                return Err(e.attr_invalid(
                    "address",
                    &address.to_string(),
                    format!("not an address of family {f}"),
                ));
            }
        }
        let netmask = e.attr_with("netmask", |s| {
            let m = s
                .parse::<Ipv4Addr>()
                .map_err(|_| "expected an IPv4 netmask".to_string())?;
            netmask_prefix(m)?;
            Ok(m)
        })?;
        if netmask.is_some() && address.is_ipv6() {
            return Err(e.attr_invalid(
                "netmask",
                &netmask.map(|m| m.to_string()).unwrap_or_default(),
                "an IPv6 address takes prefix=, not netmask=",
            ));
        }
        let max = bits(address);
        let prefix = e.attr_with("prefix", |s| {
            values::uint_in(s, 0, u64::from(max)).map(|v| v as u8)
        })?;
        if let (Some(m), Some(p)) = (netmask, prefix) {
            return Err(e.attr_invalid(
                "prefix",
                &p.to_string(),
                format!("netmask='{m}' is given too; use one of them"),
            ));
        }
        let local_ptr = e.attr_with("localPtr", values::yes_no)?;
        let dhcp = match e.child("dhcp")? {
            Some(d) => Some(Dhcp::read(d, address.is_ipv4())?),
            None => None,
        };
        e.finish()?;
        Ok(IpDef {
            family,
            address,
            netmask,
            prefix,
            local_ptr,
            dhcp,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.start("ip");
        w.attr_opt("family", self.family.as_deref());
        w.attr_num("address", self.address);
        w.attr_num_opt("netmask", self.netmask);
        w.attr_num_opt("prefix", self.prefix);
        if let Some(l) = self.local_ptr {
            w.attr("localPtr", values::yes_no_str(l));
        }
        if let Some(d) = &self.dhcp {
            d.write(w);
        }
        // libvirt never self-closes it
        w.end_block();
    }
}

fn ip_of(s: &str, v4: bool) -> Result<IpAddr, String> {
    let a = s
        .parse::<IpAddr>()
        .map_err(|_| "expected an IP address".to_string())?;
    if a.is_ipv4() != v4 {
        return Err(format!(
            "expected an {} address like the enclosing <ip>",
            if v4 { "IPv4" } else { "IPv6" }
        ));
    }
    Ok(a)
}

impl DhcpHost {
    fn read(mut h: Elem, v4: bool) -> Result<DhcpHost, XmlError> {
        let mac = h.attr_with("mac", values::keyword::<MacAddr>)?;
        let name = h.attr_with("name", |s| {
            if s.is_empty() || s.contains([' ', ',', '/']) || s.len() > 255 {
                Err("expected a host name (no spaces, commas or slashes)".to_string())
            } else {
                Ok(s.to_string())
            }
        })?;
        let ip = h.attr_with("ip", |s| ip_of(s, v4))?;
        if mac.is_none() && name.is_none() {
            return Err(h.missing_attr("mac"));
        }
        if mac.is_some() && !v4 {
            return Err(h.attr_invalid(
                "mac",
                &mac.map(|m| m.to_string()).unwrap_or_default(),
                "IPv6 static hosts are matched by name, not MAC",
            ));
        }
        h.finish()?;
        Ok(DhcpHost { mac, name, ip })
    }

    /// One `<host mac name ip/>` on its own, as network updates carry it.
    pub fn from_xml(xml: &str, v4: bool) -> Result<DhcpHost, XmlError> {
        let doc = crate::model::xml::parse_document(xml)?;
        DhcpHost::read(crate::model::xml::root(&doc, "host")?, v4)
    }
}

impl Dhcp {
    fn read(mut e: Elem, v4: bool) -> Result<Dhcp, XmlError> {
        let mut d = Dhcp::default();
        e.each("range", |mut r| {
            let start = r.req_attr_with("start", |s| ip_of(s, v4))?;
            let end = r.req_attr_with("end", |s| ip_of(s, v4))?;
            if to_u128(end) < to_u128(start) {
                return Err(r.attr_invalid(
                    "end",
                    &end.to_string(),
                    format!("lies before start '{start}'"),
                ));
            }
            r.finish()?;
            d.ranges.push(DhcpRange { start, end });
            Ok(())
        })?;
        e.each("host", |h| {
            d.hosts.push(DhcpHost::read(h, v4)?);
            Ok(())
        })?;
        e.finish()?;
        Ok(d)
    }

    fn write(&self, w: &mut Writer) {
        w.start("dhcp");
        for r in &self.ranges {
            w.start("range");
            w.attr_num("start", r.start);
            w.attr_num("end", r.end);
            w.end();
        }
        for h in &self.hosts {
            w.start("host");
            if let Some(m) = h.mac {
                w.attr_num("mac", m);
            }
            w.attr_opt("name", h.name.as_deref());
            w.attr_num_opt("ip", h.ip);
            w.end();
        }
        w.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sn(s: &str, p: u8) -> Subnet {
        Subnet {
            addr: s.parse().unwrap(),
            prefix: p,
        }
    }

    #[test]
    fn subnet_arithmetic() {
        let a = sn("192.168.122.1", 24);
        assert_eq!(a.cidr(), "192.168.122.0/24");
        assert_eq!(a.netmask_v4(), Ipv4Addr::new(255, 255, 255, 0));
        assert!(a.contains("192.168.122.254".parse().unwrap()));
        assert!(!a.contains("192.168.123.1".parse().unwrap()));
        assert!(a.overlaps(&sn("192.168.0.1", 16)));
        assert!(!a.overlaps(&sn("192.168.123.1", 24)));
        assert!(!a.overlaps(&sn("fd00::1", 64)));
        let v6 = sn("fd00:1::1", 64);
        assert_eq!(v6.cidr(), "fd00:1::/64");
        assert!(v6.contains("fd00:1::ffff".parse().unwrap()));
        assert_eq!(sn("10.0.0.1", 0).cidr(), "0.0.0.0/0");
    }

    #[test]
    fn netmask_must_be_contiguous() {
        assert_eq!(netmask_prefix(Ipv4Addr::new(255, 255, 252, 0)), Ok(22));
        assert!(netmask_prefix(Ipv4Addr::new(255, 0, 255, 0)).is_err());
    }
}
