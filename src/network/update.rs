//! libvirt's `virNetworkUpdate` for the sections clients use: static DHCP hosts (Cockpit adds
//! them) and DNS hosts. A change is applied to a copy of the definition, which must then
//! pass every check a new definition passes.

use super::def::NetworkDef;
use super::dns::DnsHost;
use super::error::{NetError, Result};
use super::ip::DhcpHost;
use crate::model::XmlError;
use crate::model::values::xml_enum;

xml_enum! {
    pub enum UpdateCommand {
        AddLast = "add-last",
        AddFirst = "add-first",
        Delete = "delete",
        Modify = "modify",
    }
}

xml_enum! {
    pub enum UpdateSection {
        IpDhcpHost = "ip-dhcp-host",
        DnsHost = "dns-host",
    }
}

fn refuse(path: &str, value: &str, reason: &str) -> NetError {
    NetError::Xml(XmlError::invalid(path.to_string(), value, reason))
}

/// Applies the change to `def`; `ip_index` picks the `<ip>` of a DHCP host (the first IPv4
/// one with `<dhcp>` by default).
pub fn apply(
    def: &NetworkDef,
    cmd: UpdateCommand,
    section: UpdateSection,
    xml: &str,
    ip_index: Option<usize>,
) -> Result<NetworkDef> {
    let mut out = def.clone();
    match section {
        UpdateSection::IpDhcpHost => {
            let idx = match ip_index {
                Some(i) => i,
                None => out
                    .ips
                    .iter()
                    .position(|i| i.is_ipv4() && i.dhcp.is_some())
                    .or_else(|| out.ips.iter().position(|i| i.is_ipv4()))
                    .ok_or_else(|| refuse("/network/ip", "", "the network has no IPv4 address"))?,
            };
            let ip = out.ips.get_mut(idx).ok_or_else(|| {
                refuse("/network/ip", &idx.to_string(), "no <ip> with this index")
            })?;
            let v4 = ip.is_ipv4();
            let host = DhcpHost::from_xml(xml, v4)?;
            let hosts = &mut ip.dhcp.get_or_insert_with(Default::default).hosts;
            let same = |h: &DhcpHost| {
                (host.mac.is_some() && h.mac == host.mac)
                    || (host.mac.is_none() && host.name.is_some() && h.name == host.name)
            };
            let clash = |h: &DhcpHost| {
                (host.mac.is_some() && h.mac == host.mac)
                    || (host.name.is_some() && h.name == host.name)
                    || (host.ip.is_some() && h.ip == host.ip)
            };
            edit(
                hosts,
                host.clone(),
                cmd,
                same,
                clash,
                "/network/ip/dhcp/host",
            )?;
        }
        UpdateSection::DnsHost => {
            let host = DnsHost::from_xml(xml)?;
            let hosts = &mut out.dns.hosts;
            let same = |h: &DnsHost| h.ip == host.ip;
            edit(hosts, host.clone(), cmd, same, same, "/network/dns/host")?;
        }
    }
    // the result must be a definition the parser accepts
    NetworkDef::from_xml(&out.to_xml())?;
    Ok(out)
}

/// The four commands over one list: `same` finds the entry to delete or modify, `clash`
/// an entry an addition would duplicate.
fn edit<T: PartialEq>(
    list: &mut Vec<T>,
    item: T,
    cmd: UpdateCommand,
    same: impl Fn(&T) -> bool,
    clash: impl Fn(&T) -> bool,
    path: &str,
) -> Result<()> {
    match cmd {
        UpdateCommand::AddFirst | UpdateCommand::AddLast => {
            if list.iter().any(&clash) {
                return Err(refuse(
                    path,
                    "",
                    "an existing entry has the same MAC address, name or IP address",
                ));
            }
            if cmd == UpdateCommand::AddFirst {
                list.insert(0, item);
            } else {
                list.push(item);
            }
        }
        UpdateCommand::Delete => {
            let pos = list
                .iter()
                .position(|h| *h == item || same(h))
                .ok_or_else(|| refuse(path, "", "no such entry to delete"))?;
            list.remove(pos);
        }
        UpdateCommand::Modify => {
            let pos = list
                .iter()
                .position(&same)
                .ok_or_else(|| refuse(path, "", "no such entry to modify"))?;
            list[pos] = item;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::defaults::DEFAULT_NETWORK_XML;

    #[test]
    fn dhcp_hosts_are_added_modified_and_deleted() {
        let def = NetworkDef::from_xml(DEFAULT_NETWORK_XML).unwrap();
        let h = "<host mac='52:54:00:00:00:aa' name='web' ip='192.168.122.50'/>";
        let a = apply(
            &def,
            UpdateCommand::AddLast,
            UpdateSection::IpDhcpHost,
            h,
            None,
        )
        .unwrap();
        assert!(a.to_xml().contains(h), "{}", a.to_xml());
        let e = apply(
            &a,
            UpdateCommand::AddLast,
            UpdateSection::IpDhcpHost,
            h,
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("same MAC"), "{e}");
        let m = apply(
            &a,
            UpdateCommand::Modify,
            UpdateSection::IpDhcpHost,
            "<host mac='52:54:00:00:00:aa' name='web' ip='192.168.122.51'/>",
            None,
        )
        .unwrap();
        assert!(m.to_xml().contains("ip='192.168.122.51'"));
        let d = apply(
            &m,
            UpdateCommand::Delete,
            UpdateSection::IpDhcpHost,
            h,
            None,
        )
        .unwrap();
        assert_eq!(d, def);
        // outside the subnet: refused with the path
        let e = apply(
            &def,
            UpdateCommand::AddLast,
            UpdateSection::IpDhcpHost,
            "<host mac='52:54:00:00:00:ab' ip='10.0.0.5'/>",
            None,
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("/network/ip[1]/dhcp/host[1]/@ip"),
            "{e}"
        );
        let e = apply(
            &def,
            UpdateCommand::Delete,
            UpdateSection::IpDhcpHost,
            h,
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("no such entry"), "{e}");
    }

    #[test]
    fn dns_hosts_are_added() {
        let def = NetworkDef::from_xml(DEFAULT_NETWORK_XML).unwrap();
        let a = apply(
            &def,
            UpdateCommand::AddFirst,
            UpdateSection::DnsHost,
            "<host ip='192.168.122.9'><hostname>db</hostname></host>",
            None,
        )
        .unwrap();
        assert_eq!(a.dns.hosts.len(), 1);
        assert!("bogus".parse::<UpdateSection>().is_err());
    }
}
