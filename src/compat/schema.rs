//! The libvirt-dbus interfaces the facade serves, from the interface XML it ships in
//! `dbus/` (libvirt-dbus 1.4.1's own): calls are checked against it and `Introspect` serves
//! it verbatim.

use crate::server::schema::{Interface, SchemaError, parse};

pub const CONNECT_XML: &str = include_str!("../../dbus/org.libvirt.Connect.xml");
pub const DOMAIN_XML: &str = include_str!("../../dbus/org.libvirt.Domain.xml");
pub const SNAPSHOT_XML: &str = include_str!("../../dbus/org.libvirt.DomainSnapshot.xml");
pub const INTERFACE_XML: &str = include_str!("../../dbus/org.libvirt.Interface.xml");
pub const NODEDEV_XML: &str = include_str!("../../dbus/org.libvirt.NodeDevice.xml");
pub const NETWORK_XML: &str = include_str!("../../dbus/org.libvirt.Network.xml");
pub const STORAGE_POOL_XML: &str = include_str!("../../dbus/org.libvirt.StoragePool.xml");
pub const STORAGE_VOL_XML: &str = include_str!("../../dbus/org.libvirt.StorageVol.xml");

pub const CONNECT_IFACE: &str = "org.libvirt.Connect";
pub const DOMAIN_IFACE: &str = "org.libvirt.Domain";
pub const SNAPSHOT_IFACE: &str = "org.libvirt.DomainSnapshot";
pub const INTERFACE_IFACE: &str = "org.libvirt.Interface";
pub const NODEDEV_IFACE: &str = "org.libvirt.NodeDevice";
pub const NETWORK_IFACE: &str = "org.libvirt.Network";
pub const STORAGE_POOL_IFACE: &str = "org.libvirt.StoragePool";
pub const STORAGE_VOL_IFACE: &str = "org.libvirt.StorageVol";

#[derive(Debug, Clone)]
pub struct Schema {
    pub connect: Interface,
    pub domain: Interface,
    pub snapshot: Interface,
    pub interface: Interface,
    pub nodedev: Interface,
    pub network: Interface,
    pub storage_pool: Interface,
    pub storage_vol: Interface,
}

impl Schema {
    pub fn load() -> Result<Self, SchemaError> {
        Ok(Self {
            connect: parse(CONNECT_XML)?,
            domain: parse(DOMAIN_XML)?,
            snapshot: parse(SNAPSHOT_XML)?,
            interface: parse(INTERFACE_XML)?,
            nodedev: parse(NODEDEV_XML)?,
            network: parse(NETWORK_XML)?,
            storage_pool: parse(STORAGE_POOL_XML)?,
            storage_vol: parse(STORAGE_VOL_XML)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libvirt_dbus_interfaces_parse() {
        let s = Schema::load().expect("schema");
        assert_eq!(s.connect.name, CONNECT_IFACE);
        assert_eq!(s.connect.methods["ListDomains"].in_sig, "u");
        assert_eq!(s.connect.methods["ListDomains"].out_sig, "ao");
        assert_eq!(s.connect.methods["GetAllDomainStats"].out_sig, "a(sa{sv})");
        assert_eq!(s.domain.methods["GetState"].out_sig, "(ii)");
        assert_eq!(s.domain.methods["Resume"].in_sig, "");
        assert_eq!(s.domain.property("Id").map(|p| p.sig.as_str()), Some("u"));
        assert!(s.domain.property("Autostart").is_some_and(|p| p.writable));
        assert_eq!(s.snapshot.methods.len(), 6);
        assert_eq!(s.interface.methods["GetXMLDesc"].in_sig, "u");
        assert_eq!(s.nodedev.methods["Detach"].in_sig, "su");
        assert_eq!(s.nodedev.methods["ListCaps"].out_sig, "as");
        assert_eq!(s.storage_pool.methods["GetInfo"].out_sig, "(ittt)");
        assert_eq!(s.storage_vol.methods["Resize"].in_sig, "tu");
        assert!(
            s.domain
                .xml
                .starts_with("<interface name=\"org.libvirt.Domain\">")
        );
    }
}
