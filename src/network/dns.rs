//! `<dns>` of a network: what its dnsmasq answers and where it forwards.

use std::net::IpAddr;

use crate::model::XmlError;
use crate::model::values;
use crate::model::writer::Writer;
use crate::model::xml::Elem;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dns {
    /// `enable='no'` turns dnsmasq's DNS off (DHCP still runs).
    pub enable: Option<bool>,
    pub forward_plain_names: Option<bool>,
    pub forwarders: Vec<Forwarder>,
    pub txts: Vec<Txt>,
    pub srvs: Vec<Srv>,
    pub hosts: Vec<DnsHost>,
}

/// `<forwarder addr domain/>`: an upstream server, for all names or one domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarder {
    pub domain: Option<String>,
    pub addr: Option<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Txt {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Srv {
    pub service: String,
    pub protocol: String,
    pub domain: Option<String>,
    pub target: Option<String>,
    pub port: Option<u16>,
    pub priority: Option<u16>,
    pub weight: Option<u16>,
}

/// `<host ip><hostname>..</hostname></host>`: extra names dnsmasq resolves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsHost {
    pub ip: IpAddr,
    pub hostnames: Vec<String>,
}

/// A DNS label list: no spaces, commas or slashes (they would break dnsmasq's config).
fn dns_name(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > 255 || s.contains(|c: char| c.is_whitespace() || ",/#".contains(c))
    {
        Err("expected a DNS name without spaces, commas, '/' or '#'".into())
    } else {
        Ok(s.to_string())
    }
}

fn srv_token(s: &str) -> Result<String, String> {
    if s.is_empty()
        || s.len() > 15
        || !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Err("expected 1-15 letters, digits, '-' or '_'".into())
    } else {
        Ok(s.to_string())
    }
}

fn u16_in(s: &str, min: u64) -> Result<u16, String> {
    values::uint_in(s, min, 65535).map(|v| v as u16)
}

impl DnsHost {
    fn read(mut h: Elem) -> Result<DnsHost, XmlError> {
        let ip = h.req_attr_with("ip", |s| {
            s.parse::<IpAddr>()
                .map_err(|_| "expected an IP address".to_string())
        })?;
        let mut hostnames = Vec::new();
        h.each("hostname", |mut n| {
            hostnames.push(n.text_with(dns_name)?);
            n.finish()
        })?;
        if hostnames.is_empty() {
            return Err(h.missing_child("hostname"));
        }
        h.finish()?;
        Ok(DnsHost { ip, hostnames })
    }

    /// One `<host ip><hostname/>…</host>` on its own, as network updates carry it.
    pub fn from_xml(xml: &str) -> Result<DnsHost, XmlError> {
        let doc = crate::model::xml::parse_document(xml)?;
        DnsHost::read(crate::model::xml::root(&doc, "host")?)
    }
}

impl Dns {
    pub(crate) fn read(mut e: Elem) -> Result<Dns, XmlError> {
        let enable = e.attr_with("enable", values::yes_no)?;
        let forward_plain_names = e.attr_with("forwardPlainNames", values::yes_no)?;
        let mut d = Dns {
            enable,
            forward_plain_names,
            ..Dns::default()
        };
        e.each("forwarder", |mut f| {
            let domain = f.attr_with("domain", dns_name)?;
            let addr = f.attr_with("addr", |s| {
                s.parse::<IpAddr>()
                    .map_err(|_| "expected an IP address".to_string())
            })?;
            if domain.is_none() && addr.is_none() {
                return Err(f.missing_attr("addr"));
            }
            f.finish()?;
            d.forwarders.push(Forwarder { domain, addr });
            Ok(())
        })?;
        e.each("txt", |mut t| {
            let name = t.req_attr_with("name", dns_name)?;
            let value = t.req_attr_with("value", |s| {
                if s.contains('\n') {
                    Err("must be a single line".to_string())
                } else {
                    Ok(s.to_string())
                }
            })?;
            t.finish()?;
            d.txts.push(Txt { name, value });
            Ok(())
        })?;
        e.each("srv", |mut s| {
            let service = s.req_attr_with("service", srv_token)?;
            let protocol = s.req_attr_with("protocol", srv_token)?;
            let domain = s.attr_with("domain", dns_name)?;
            let target = s.attr_with("target", dns_name)?;
            let port = s.attr_with("port", |v| u16_in(v, 1))?;
            // libvirt does not write a zero priority or weight
            let priority = s
                .attr_with("priority", |v| u16_in(v, 0))?
                .filter(|p| *p != 0);
            let weight = s.attr_with("weight", |v| u16_in(v, 0))?.filter(|p| *p != 0);
            s.finish()?;
            d.srvs.push(Srv {
                service,
                protocol,
                domain,
                target,
                port,
                priority,
                weight,
            });
            Ok(())
        })?;
        e.each("host", |h| {
            d.hosts.push(DnsHost::read(h)?);
            Ok(())
        })?;
        e.finish()?;
        Ok(d)
    }

    /// Whether libvirt would write anything for it.
    pub fn is_empty(&self) -> bool {
        self.enable.is_none()
            && self.forward_plain_names.is_none()
            && self.forwarders.is_empty()
            && self.txts.is_empty()
            && self.srvs.is_empty()
            && self.hosts.is_empty()
    }

    /// In libvirt's order: forwarders, TXT, SRV, hosts.
    pub(crate) fn write(&self, w: &mut Writer) {
        if self.is_empty() {
            return;
        }
        w.start("dns");
        if let Some(b) = self.enable {
            w.attr("enable", values::yes_no_str(b));
        }
        if let Some(b) = self.forward_plain_names {
            w.attr("forwardPlainNames", values::yes_no_str(b));
        }
        for f in &self.forwarders {
            w.start("forwarder");
            w.attr_opt("domain", f.domain.as_deref());
            w.attr_num_opt("addr", f.addr);
            w.end();
        }
        for t in &self.txts {
            w.start("txt");
            w.attr("name", &t.name);
            w.attr("value", &t.value);
            w.end();
        }
        for s in &self.srvs {
            w.start("srv");
            w.attr("service", &s.service);
            w.attr("protocol", &s.protocol);
            w.attr_opt("domain", s.domain.as_deref());
            w.attr_opt("target", s.target.as_deref());
            w.attr_num_opt("port", s.port);
            w.attr_num_opt("priority", s.priority);
            w.attr_num_opt("weight", s.weight);
            w.end();
        }
        for h in &self.hosts {
            w.start("host");
            w.attr_num("ip", h.ip);
            for n in &h.hostnames {
                w.leaf("hostname", n);
            }
            w.end();
        }
        w.end();
    }
}
