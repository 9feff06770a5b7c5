//! `<network>`: libvirt 9.0's network XML (docs/formatnetwork.rst), the subset virtbus
//! runs: isolated, nat, route, open and bridge (an existing host bridge) networks. Anything
//! else is refused with its path; what is read is written back in libvirt's order.

use std::net::IpAddr;

use uuid::Uuid;

use super::dns::Dns;
use super::ip::IpDef;
use crate::model::values::{self, xml_enum};
use crate::model::writer::Writer;
use crate::model::xml::{self, Elem};
use crate::model::{MacAddr, XmlError};

xml_enum! {
    /// `<forward mode>`; no `<forward>` at all is an isolated network.
    pub enum ForwardMode {
        Nat = "nat",
        Route = "route",
        Open = "open",
        Bridge = "bridge",
    }
}

/// `<forward>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    pub mode: ForwardMode,
    /// `dev=`: the only host interface traffic may leave by.
    pub dev: Option<String>,
    pub nat: Option<Nat>,
}

/// `<nat>`: the source addresses and ports masquerading uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Nat {
    pub address: Option<(IpAddr, Option<IpAddr>)>,
    pub port: Option<(u16, Option<u16>)>,
}

/// `<bridge name stp delay/>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bridge {
    pub name: Option<String>,
    pub stp: Option<bool>,
    pub delay: Option<u64>,
}

/// `<domain name localOnly/>`: the DNS domain of the guests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsDomain {
    pub name: String,
    pub local_only: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkDef {
    pub name: String,
    pub uuid: Uuid,
    pub forward: Option<Forward>,
    pub bridge: Option<Bridge>,
    pub mtu: Option<u32>,
    pub mac: Option<MacAddr>,
    pub domain: Option<DnsDomain>,
    pub dns: Dns,
    pub ips: Vec<IpDef>,
}

/// Longest interface name Linux takes (IFNAMSIZ - 1).
pub const IFNAME_MAX: usize = 15;

fn ifname(s: &str) -> Result<String, String> {
    if s.is_empty()
        || s.len() > IFNAME_MAX
        || s == "."
        || s == ".."
        || s.contains(|c: char| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        Err(format!(
            "expected an interface name of 1-{IFNAME_MAX} characters without '/', ':' or spaces"
        ))
    } else {
        Ok(s.to_string())
    }
}

/// A bridge name, or a template with one `%d` (libvirt picks the lowest free number).
fn bridge_name(s: &str) -> Result<String, String> {
    if s.matches('%').count() == 1 && s.contains("%d") {
        ifname(&s.replace("%d", "0")).map(|_| s.to_string())
    } else {
        ifname(s)
    }
}

fn network_name(s: &str) -> Result<String, String> {
    if s.is_empty() {
        Err("must not be empty".into())
    } else if s.contains('/') {
        Err("must not contain '/'".into())
    } else if s.contains(|c: char| c.is_control()) || s.len() > 255 {
        Err("expected at most 255 printable characters".into())
    } else {
        Ok(s.to_string())
    }
}

fn ip_addr(s: &str) -> Result<IpAddr, String> {
    s.parse().map_err(|_| "expected an IP address".to_string())
}

impl NetworkDef {
    /// Parses a `<network>` document; the UUID is generated when it is missing.
    pub fn from_xml(text: &str) -> Result<NetworkDef, XmlError> {
        let doc = xml::parse_document(text)?;
        let root = xml::root(&doc, "network")?;
        let def = NetworkDef::read(root)?;
        def.check()?;
        Ok(def)
    }

    fn read(mut e: Elem) -> Result<NetworkDef, XmlError> {
        let name = match e.child("name")? {
            Some(mut n) => {
                let v = n.text_with(network_name)?;
                n.finish()?;
                v
            }
            None => return Err(e.missing_child("name")),
        };
        let uuid = e
            .child_text_with("uuid", values::uuid)?
            .unwrap_or_else(Uuid::new_v4);
        let forward = match e.child("forward")? {
            Some(f) => Some(read_forward(f)?),
            None => None,
        };
        let bridge = match e.child("bridge")? {
            Some(mut b) => {
                let v = Bridge {
                    name: b.attr_with("name", bridge_name)?,
                    stp: b.attr_with("stp", values::on_off)?,
                    delay: b.attr_with("delay", |s| values::uint_in(s, 0, 3600))?,
                };
                b.finish()?;
                Some(v)
            }
            None => None,
        };
        let mtu = e.child_attr_with("mtu", "size", |s| {
            values::uint_in(s, 68, 65535).map(|v| v as u32)
        })?;
        let mac = e.child_attr_with("mac", "address", values::keyword::<MacAddr>)?;
        let domain = match e.child("domain")? {
            Some(mut d) => {
                let v = DnsDomain {
                    name: d.req_attr_with("name", |s| {
                        if s.is_empty() || s.contains(|c: char| c.is_whitespace() || c == '/') {
                            Err("expected a DNS domain name".to_string())
                        } else {
                            Ok(s.to_string())
                        }
                    })?,
                    local_only: d.attr_with("localOnly", values::yes_no)?,
                };
                d.finish()?;
                Some(v)
            }
            None => None,
        };
        let dns = match e.child("dns")? {
            Some(d) => Dns::read(d)?,
            None => Dns::default(),
        };
        let mut ips = Vec::new();
        e.each("ip", |i| {
            ips.push(IpDef::read(i)?);
            Ok(())
        })?;
        e.finish()?;
        Ok(NetworkDef {
            name,
            uuid,
            forward,
            bridge,
            mtu,
            mac,
            domain,
            dns,
            ips,
        })
    }

    /// The forward mode, `None` for an isolated network.
    pub fn mode(&self) -> Option<ForwardMode> {
        self.forward.as_ref().map(|f| f.mode)
    }

    /// Whether starting it creates a bridge of its own (every mode but `bridge`).
    pub fn is_virtual(&self) -> bool {
        self.mode() != Some(ForwardMode::Bridge)
    }

    /// The bridge name once defaults are in.
    pub fn bridge_name(&self) -> Option<&str> {
        self.bridge.as_ref().and_then(|b| b.name.as_deref())
    }

    /// Rules that concern this definition alone (libvirt's parse-time and validate checks).
    fn check(&self) -> Result<(), XmlError> {
        let bad = |path: &str, value: &str, reason: &str| {
            XmlError::invalid(format!("/network/{path}"), value, reason)
        };
        match self.mode() {
            Some(ForwardMode::Bridge) => {
                if self.bridge_name().is_none() {
                    return Err(XmlError::Missing {
                        path: "/network/bridge/@name".into(),
                    });
                }
                if let Some(b) = &self.bridge
                    && (b.stp.is_some() || b.delay.is_some())
                {
                    return Err(bad(
                        "bridge/@stp",
                        "",
                        "stp and delay are only allowed for networks with a bridge of their own",
                    ));
                }
                if let Some(ip) = self.ips.first() {
                    return Err(bad(
                        "ip/@address",
                        &ip.address.to_string(),
                        "<ip> is not allowed with forward mode='bridge'",
                    ));
                }
                if let Some(d) = &self.domain {
                    return Err(bad(
                        "domain/@name",
                        &d.name,
                        "<domain> is not allowed with forward mode='bridge'",
                    ));
                }
                if !self.dns.is_empty() {
                    return Err(bad(
                        "dns",
                        "",
                        "<dns> is not allowed with forward mode='bridge'",
                    ));
                }
                if let Some(m) = self.mac {
                    return Err(bad(
                        "mac/@address",
                        &m.to_string(),
                        "<mac> is not allowed with forward mode='bridge'",
                    ));
                }
                if let Some(f) = &self.forward
                    && let Some(d) = &f.dev
                {
                    return Err(bad(
                        "forward/@dev",
                        d,
                        "not allowed with forward mode='bridge'",
                    ));
                }
            }
            Some(mode) => {
                if self.ips.is_empty() {
                    return Err(XmlError::Missing {
                        path: format!("/network/ip (needed by forward mode='{mode}')"),
                    });
                }
                if let Some(f) = &self.forward
                    && mode == ForwardMode::Open
                    && let Some(d) = &f.dev
                {
                    return Err(bad(
                        "forward/@dev",
                        d,
                        "not allowed with forward mode='open'",
                    ));
                }
            }
            None => {}
        }
        let mut v4_dhcp = false;
        let mut v6_dhcp = false;
        for (n, ip) in self.ips.iter().enumerate() {
            let at = |rest: &str| format!("ip[{}]{rest}", n + 1);
            let net = ip.subnet();
            if let Some(d) = &ip.dhcp {
                let seen = if ip.is_ipv4() {
                    &mut v4_dhcp
                } else {
                    &mut v6_dhcp
                };
                if *seen {
                    return Err(bad(
                        &at("/dhcp"),
                        "",
                        "only one <ip> of each family may have <dhcp>",
                    ));
                }
                *seen = true;
                for (k, r) in d.ranges.iter().enumerate() {
                    for a in [r.start, r.end] {
                        if !net.contains(a) {
                            return Err(bad(
                                &at(&format!("/dhcp/range[{}]", k + 1)),
                                &a.to_string(),
                                &format!("outside the network's subnet {}", net.cidr()),
                            ));
                        }
                    }
                    if r.start.is_ipv4() {
                        let lo = net.network();
                        let hi = net.last();
                        let s = u128::from(u32::from(match r.start {
                            IpAddr::V4(v) => v,
                            IpAddr::V6(_) => continue,
                        }));
                        let e = u128::from(u32::from(match r.end {
                            IpAddr::V4(v) => v,
                            IpAddr::V6(_) => continue,
                        }));
                        if s == lo || e == hi {
                            return Err(bad(
                                &at(&format!("/dhcp/range[{}]", k + 1)),
                                &format!("{}-{}", r.start, r.end),
                                "includes the network or broadcast address",
                            ));
                        }
                    }
                }
                for (k, h) in d.hosts.iter().enumerate() {
                    if let Some(a) = h.ip
                        && !net.contains(a)
                    {
                        return Err(bad(
                            &at(&format!("/dhcp/host[{}]/@ip", k + 1)),
                            &a.to_string(),
                            &format!("outside the network's subnet {}", net.cidr()),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Canonical XML in libvirt's order.
    pub fn to_xml(&self) -> String {
        let mut w = Writer::new(0);
        w.start("network");
        w.leaf("name", &self.name);
        w.leaf("uuid", &self.uuid.to_string());
        if let Some(f) = &self.forward {
            w.start("forward");
            w.attr_opt("dev", f.dev.as_deref());
            w.attr("mode", f.mode.as_str());
            if let Some(n) = &f.nat
                && (n.address.is_some() || n.port.is_some())
            {
                w.start("nat");
                if let Some((s, e)) = n.address {
                    w.start("address");
                    w.attr_num("start", s);
                    w.attr_num_opt("end", e);
                    w.end();
                }
                if let Some((s, e)) = n.port {
                    w.start("port");
                    w.attr_num("start", s);
                    w.attr_num_opt("end", e);
                    w.end();
                }
                w.end();
            }
            w.end();
        }
        // as libvirt: a network with a bridge of its own always shows STP and delay (on
        // and 0 unless given); one on a host bridge only its name
        let b = self.bridge.clone().unwrap_or_default();
        if self.is_virtual() || b.name.is_some() {
            w.start("bridge");
            w.attr_opt("name", b.name.as_deref());
            if self.is_virtual() {
                w.attr("stp", values::on_off_str(b.stp.unwrap_or(true)));
                w.attr_num("delay", b.delay.unwrap_or(0));
            }
            w.end();
        }
        if let Some(m) = self.mtu {
            w.leaf_attr("mtu", "size", &m.to_string());
        }
        if let Some(m) = self.mac {
            w.leaf_attr("mac", "address", &m.to_string());
        }
        if let Some(d) = &self.domain {
            w.start("domain");
            w.attr("name", &d.name);
            if let Some(l) = d.local_only {
                w.attr("localOnly", values::yes_no_str(l));
            }
            w.end();
        }
        self.dns.write(&mut w);
        for ip in &self.ips {
            ip.write(&mut w);
        }
        w.end();
        w.finish()
    }
}

fn read_forward(mut f: Elem) -> Result<Forward, XmlError> {
    let mode = f
        .attr_with("mode", values::keyword::<ForwardMode>)?
        .unwrap_or(ForwardMode::Nat);
    let dev = f.attr_with("dev", ifname)?;
    let nat = match f.child("nat")? {
        Some(mut n) => {
            if mode != ForwardMode::Nat {
                return Err(n.unknown());
            }
            let address = match n.child("address")? {
                Some(mut a) => {
                    let s = a.req_attr_with("start", ip_addr)?;
                    let e = a.attr_with("end", ip_addr)?;
                    if !s.is_ipv4() || e.is_some_and(|e| !e.is_ipv4()) {
                        return Err(a.attr_invalid(
                            "start",
                            &s.to_string(),
                            "NAT addresses must be IPv4",
                        ));
                    }
                    if let Some(end) = e
                        && end < s
                    {
                        return Err(a.attr_invalid(
                            "end",
                            &end.to_string(),
                            format!("lies before start '{s}'"),
                        ));
                    }
                    a.finish()?;
                    Some((s, e))
                }
                None => None,
            };
            let port = match n.child("port")? {
                Some(mut p) => {
                    let s = p.req_attr_with("start", |v| {
                        values::uint_in(v, 1, 65535).map(|x| x as u16)
                    })?;
                    let e =
                        p.attr_with("end", |v| values::uint_in(v, 1, 65535).map(|x| x as u16))?;
                    if let Some(end) = e
                        && end < s
                    {
                        return Err(p.attr_invalid(
                            "end",
                            &end.to_string(),
                            format!("lies before start '{s}'"),
                        ));
                    }
                    p.finish()?;
                    Some((s, e))
                }
                None => None,
            };
            n.finish()?;
            Some(Nat { address, port })
        }
        None => None,
    };
    f.finish()?;
    Ok(Forward { mode, dev, nat })
}
