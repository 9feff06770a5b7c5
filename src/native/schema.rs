//! The interfaces this service implements, read from the introspection XML it ships in
//! `dbus/`. That XML is the contract: the router checks each call's signature against it and
//! serves it verbatim to `Introspect`, so the two can never drift apart.

pub use crate::server::schema::{
    Interface, Method, OBJECT_MANAGER_XML, Property, STANDARD_XML, SchemaError, parse,
};

/// The shipped interface documents, embedded at build time.
pub const MANAGER_XML: &str = include_str!("../../dbus/org.virtbus1.Manager.xml");
pub const DOMAIN_XML: &str = include_str!("../../dbus/org.virtbus1.Domain.xml");
pub const SNAPSHOT_XML: &str = include_str!("../../dbus/org.virtbus1.Snapshot.xml");
pub const HOST_INTERFACE_XML: &str = include_str!("../../dbus/org.virtbus1.HostInterface.xml");
pub const NODE_DEVICE_XML: &str = include_str!("../../dbus/org.virtbus1.NodeDevice.xml");
pub const POOL_XML: &str = include_str!("../../dbus/org.virtbus1.StoragePool.xml");
pub const VOLUME_XML: &str = include_str!("../../dbus/org.virtbus1.StorageVolume.xml");
pub const NETWORK_XML: &str = include_str!("../../dbus/org.virtbus1.Network.xml");

pub const MANAGER_IFACE: &str = "org.virtbus1.Manager";
pub const DOMAIN_IFACE: &str = "org.virtbus1.Domain";
pub const SNAPSHOT_IFACE: &str = "org.virtbus1.Snapshot";
pub const HOST_INTERFACE_IFACE: &str = "org.virtbus1.HostInterface";
pub const NODE_DEVICE_IFACE: &str = "org.virtbus1.NodeDevice";
pub const POOL_IFACE: &str = "org.virtbus1.StoragePool";
pub const VOLUME_IFACE: &str = "org.virtbus1.StorageVolume";
pub const NETWORK_IFACE: &str = "org.virtbus1.Network";

/// All the interfaces, parsed once at start.
#[derive(Debug, Clone)]
pub struct Schema {
    pub manager: Interface,
    pub domain: Interface,
    pub snapshot: Interface,
    pub host_interface: Interface,
    pub node_device: Interface,
    pub pool: Interface,
    pub volume: Interface,
    pub network: Interface,
}

impl Schema {
    pub fn load() -> Result<Self, SchemaError> {
        Ok(Self {
            manager: parse(MANAGER_XML)?,
            domain: parse(DOMAIN_XML)?,
            snapshot: parse(SNAPSHOT_XML)?,
            host_interface: parse(HOST_INTERFACE_XML)?,
            node_device: parse(NODE_DEVICE_XML)?,
            pool: parse(POOL_XML)?,
            volume: parse(VOLUME_XML)?,
            network: parse(NETWORK_XML)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_interfaces_parse_with_the_required_members() {
        let s = Schema::load().expect("schema");
        assert_eq!(s.manager.name, MANAGER_IFACE);
        assert_eq!(s.manager.methods["DefineDomain"].in_sig, "sa{sv}");
        assert_eq!(s.manager.methods["DefineDomain"].out_sig, "o");
        assert_eq!(s.manager.methods["ListDomains"].out_sig, "ao");
        assert_eq!(s.manager.methods["GetCapabilities"].in_sig, "");
        assert_eq!(s.domain.methods["GetStats"].out_sig, "a{sv}");
        assert_eq!(s.domain.methods["CreateSnapshot"].in_sig, "sa{sv}");
        assert!(s.domain.property("Autostart").is_some_and(|p| p.writable));
        assert_eq!(s.domain.property("Id").map(|p| p.sig.as_str()), Some("i"));
        assert_eq!(
            s.domain.property("MemoryKiB").map(|p| p.sig.as_str()),
            Some("t")
        );
        assert_eq!(s.snapshot.methods["ListChildren"].out_sig, "ao");
        assert_eq!(s.manager.methods["ListNodeDevices"].out_sig, "ao");
        assert_eq!(s.host_interface.name, HOST_INTERFACE_IFACE);
        assert_eq!(s.node_device.methods["GetXML"].in_sig, "a{sv}");
        assert_eq!(s.network.name, NETWORK_IFACE);
        assert_eq!(s.network.methods["GetDHCPLeases"].out_sig, "aa{sv}");
        assert_eq!(s.network.methods["Update"].in_sig, "sssa{sv}");
        assert!(s.network.property("Autostart").is_some_and(|p| p.writable));
        assert_eq!(s.manager.methods["ListNetworks"].out_sig, "ao");
        assert_eq!(
            s.snapshot.property("Parent").map(|p| p.sig.as_str()),
            Some("o")
        );
        assert!(
            s.domain
                .xml
                .starts_with("<interface name=\"org.virtbus1.Domain\">")
        );
        assert!(s.domain.xml.ends_with("</interface>"));
        assert_eq!(s.pool.name, POOL_IFACE);
        assert_eq!(s.pool.methods["CloneVolume"].in_sig, "soa{sv}");
        assert!(s.pool.property("Autostart").is_some_and(|p| p.writable));
        assert_eq!(s.volume.name, VOLUME_IFACE);
        assert_eq!(s.volume.methods["Upload"].in_sig, "ha{sv}");
        assert_eq!(s.volume.methods["Resize"].in_sig, "ta{sv}");
    }
}
