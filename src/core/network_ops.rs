//! Virtual network operations: one request type that every front end decodes into, with the
//! operation (so the permission) and the network it concerns, carried out by the network
//! driver the core holds.

use std::sync::Arc;

use super::{Core, Error, Missing, Result, ops::Operation};
use crate::network::{NetError, NetworkDriver, NetworkInfo, dnsmasq::Lease};

impl From<NetError> for Error {
    fn from(e: NetError) -> Self {
        let msg = e.to_string();
        match e {
            NetError::Xml(x) => Error::from(x),
            NetError::NotFound(_) => Error::NotFound(Missing::Object, msg),
            NetError::Conflict { .. } | NetError::HostLinkExists(_) => Error::InvalidArgument(msg),
            NetError::NameTaken { .. } | NetError::UuidTaken { .. } => Error::AlreadyExists(msg),
            NetError::NotActive(_)
            | NetError::AlreadyActive(_)
            | NetError::StillActive(_)
            | NetError::ActiveAs(_)
            | NetError::Transient(_) => Error::InvalidState(msg),
            NetError::NoHostBridge(_) => Error::InvalidArgument(msg),
            NetError::NotSupported(_) => Error::NotSupported(msg),
            NetError::Runtime { .. } | NetError::Store(_) => Error::Failed(msg),
        }
    }
}

/// A request about virtual networks.
#[derive(Debug, Clone)]
pub enum NetworkRequest {
    List,
    Info {
        name: String,
    },
    GetXml {
        name: String,
        inactive: bool,
    },
    Leases {
        name: String,
        mac: Option<String>,
    },
    Define {
        xml: String,
    },
    Create {
        xml: String,
    },
    Start {
        name: String,
    },
    Stop {
        name: String,
    },
    Undefine {
        name: String,
    },
    SetAutostart {
        name: String,
        autostart: bool,
    },
    Update {
        name: String,
        command: crate::network::update::UpdateCommand,
        section: crate::network::update::UpdateSection,
        xml: String,
        live: bool,
        config: bool,
        ip_index: Option<usize>,
    },
}

/// What a [`NetworkRequest`] returns.
#[derive(Debug, Clone)]
pub enum NetworkReply {
    List(Vec<NetworkInfo>),
    Info(NetworkInfo),
    Xml(String),
    Leases(Vec<Lease>),
    Done,
}

impl NetworkRequest {
    pub fn operation(&self) -> Operation {
        use NetworkRequest as R;
        match self {
            R::List | R::Info { .. } | R::GetXml { .. } | R::Leases { .. } => {
                Operation::ReadNetwork
            }
            R::Define { .. } => Operation::DefineNetwork,
            R::Create { .. } => Operation::CreateNetwork,
            R::Start { .. } => Operation::StartNetwork,
            R::Stop { .. } => Operation::StopNetwork,
            R::Undefine { .. } => Operation::UndefineNetwork,
            R::SetAutostart { .. } => Operation::SetNetworkAutostart,
            R::Update { .. } => Operation::DefineNetwork,
        }
    }

    /// The network's name, for authorization details (read from the XML of a definition,
    /// which is refused later, typed, if it does not parse).
    pub fn network_name(&self) -> Option<String> {
        use NetworkRequest as R;
        match self {
            R::List => None,
            R::Define { xml } | R::Create { xml } => {
                crate::model::xml::parse_document(xml).ok().and_then(|d| {
                    d.root_element()
                        .children()
                        .find(|c| c.has_tag_name("name"))
                        .and_then(|n| n.text())
                        .map(str::to_owned)
                })
            }
            R::Info { name }
            | R::GetXml { name, .. }
            | R::Leases { name, .. }
            | R::Start { name }
            | R::Stop { name }
            | R::Undefine { name }
            | R::SetAutostart { name, .. }
            | R::Update { name, .. } => Some(name.clone()),
        }
    }

    /// Carry the request out with `drv`.
    pub async fn run(self, drv: &NetworkDriver) -> Result<NetworkReply> {
        use NetworkReply as P;
        use NetworkRequest as R;
        Ok(match self {
            R::List => P::List(drv.list().await),
            R::Info { name } => P::Info(drv.info(&name).await?),
            R::GetXml { name, inactive } => P::Xml(drv.xml(&name, inactive).await?),
            R::Leases { name, mac } => P::Leases(drv.leases(&name, mac.as_deref()).await?),
            R::Define { xml } => P::Info(drv.define(&xml).await?),
            R::Create { xml } => P::Info(drv.create(&xml).await?),
            R::Start { name } => P::Info(drv.start(&name).await?),
            R::Stop { name } => P::Info(drv.stop(&name).await?),
            R::Undefine { name } => {
                drv.undefine(&name).await?;
                P::Done
            }
            R::SetAutostart { name, autostart } => {
                P::Info(drv.set_autostart(&name, autostart).await?)
            }
            R::Update {
                name,
                command,
                section,
                xml,
                live,
                config,
                ip_index,
            } => P::Info(
                drv.update(&name, command, section, &xml, (live, config), ip_index)
                    .await?,
            ),
        })
    }
}

impl Core {
    /// Gives the core its network driver (once, at start-up).
    pub fn attach_networks(&self, drv: Arc<NetworkDriver>) {
        let _ = self.inner.networks.set(drv);
    }

    /// The network driver, or NotSupported when this daemon runs none.
    pub fn networks(&self) -> Result<&Arc<NetworkDriver>> {
        self.inner
            .networks
            .get()
            .ok_or_else(|| Error::NotSupported("virtual networks are not enabled".into()))
    }

    /// Runs a network request (front ends go through `server::exec`, which authorizes it).
    pub async fn network(&self, req: NetworkRequest) -> Result<NetworkReply> {
        req.run(self.networks()?).await
    }

    /// The bridge of the active network `name`, for a guest's `<interface type='network'>`.
    pub async fn network_bridge(&self, name: &str) -> Result<String> {
        Ok(self.networks()?.active_bridge(name).await?)
    }

    /// `def` with each `<interface type='network'>` given the bridge of its network, which
    /// must be active (libvirt refuses to start a guest on an inactive network); the driver
    /// then plugs the interface in as a `bridge` one, and the live XML shows
    /// `<source network=… bridge=…/>` as libvirt's does.
    pub(crate) async fn resolve_networks(
        &self,
        def: Arc<crate::model::DomainDef>,
    ) -> Result<Arc<crate::model::DomainDef>> {
        use crate::model::devices::InterfaceType;
        if !def
            .devices
            .interfaces
            .iter()
            .any(|i| i.iface_type == InterfaceType::Network)
        {
            return Ok(def);
        }
        // libvirt's test driver does not plug guests into its networks
        let Ok(nets) = self.networks() else {
            return Ok(def);
        };
        if nets.flavour() == crate::network::Flavour::Test {
            return Ok(def);
        }
        let mut out = (*def).clone();
        for iface in &mut out.devices.interfaces {
            resolve_interface(nets, iface).await?;
        }
        Ok(Arc::new(out))
    }

    /// A device about to be hot-plugged, with its `type='network'` interface given the
    /// bridge of its network, as [`Core::resolve_networks`] does at start.
    pub(crate) async fn resolved_interface(
        &self,
        dev: crate::model::devices::Device,
    ) -> Result<crate::model::devices::Device> {
        use crate::model::devices::{Device, InterfaceType};
        let Some(iface) = dev.as_devices().interfaces.first() else {
            return Ok(dev);
        };
        if iface.iface_type != InterfaceType::Network {
            return Ok(dev);
        }
        let Ok(nets) = self.networks() else {
            return Ok(dev);
        };
        let mut iface = iface.clone();
        resolve_interface(nets, &mut iface).await?;
        Ok(Device::interface(iface))
    }

    /// The addresses the networks' dnsmasq leased to the guest's `type='network'`
    /// interfaces, as libvirt's `VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE` gives them:
    /// interfaces without a lease are left out.
    pub(crate) async fn lease_addresses(
        &self,
        live: &crate::model::DomainDef,
    ) -> Vec<crate::drivers::GuestInterface> {
        use crate::drivers::{GuestAddress, GuestInterface};
        use crate::model::devices::InterfaceType;
        let Ok(nets) = self.networks() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for iface in &live.devices.interfaces {
            let (InterfaceType::Network, Some(net)) = (iface.iface_type, &iface.source_network)
            else {
                continue;
            };
            let mac = iface.mac.to_string();
            let Ok(leases) = nets.leases(net, Some(&mac)).await else {
                continue;
            };
            if leases.is_empty() {
                continue;
            }
            out.push(GuestInterface {
                name: iface.target_dev.clone().unwrap_or_default(),
                hwaddr: Some(mac),
                addrs: leases
                    .iter()
                    .map(|l| GuestAddress {
                        ipv6: l.ip.is_ipv6(),
                        addr: l.ip.to_string(),
                        prefix: u32::from(l.prefix),
                    })
                    .collect(),
            });
        }
        out
    }
}

/// Gives a `type='network'` interface its network's bridge; the network must be active.
async fn resolve_interface(
    nets: &NetworkDriver,
    iface: &mut crate::model::devices::Interface,
) -> Result<()> {
    if iface.iface_type != crate::model::devices::InterfaceType::Network {
        return Ok(());
    }
    let name = iface.source_network.clone().unwrap_or_default();
    let bridge = nets.active_bridge(&name).await.map_err(|e| match e {
        NetError::NotFound(_) => Error::NotFound(
            Missing::Object,
            format!("interface {}: no network named '{name}'", iface.mac),
        ),
        NetError::NotActive(_) => Error::InvalidState(format!(
            "interface {}: network '{name}' is not active",
            iface.mac
        )),
        e => e.into(),
    })?;
    iface.source_bridge = Some(bridge);
    if iface.bandwidth.is_some_and(|b| b.has_floor()) {
        return Err(floor_refused(nets, &name, &iface.mac.to_string()).await);
    }
    Ok(())
}

/// libvirt's refusal of an interface's `floor`: it needs a network of a forward mode that
/// shapes traffic and with inbound QoS, and virtbus's networks take no `<bandwidth>`, so
/// the words say which of libvirt's two checks fails first.
pub(crate) async fn floor_refused(nets: &NetworkDriver, network: &str, mac: &str) -> Error {
    use crate::network::def::{ForwardMode, NetworkDef};
    let mode = match nets.xml(network, false).await {
        Ok(x) => NetworkDef::from_xml(&x).ok().and_then(|d| d.mode()),
        Err(_) => None,
    };
    if mode == Some(ForwardMode::Bridge) {
        return Error::NotSupported(format!(
            "Invalid use of 'floor' on interface with MAC address {mac} - 'floor' is only \
             supported for interface type 'network' with forward type 'nat', 'route', 'open' \
             or none"
        ));
    }
    Error::NotSupported(format!(
        "Invalid use of 'floor' on interface with MAC address {mac} - network '{network}' \
         has no inbound QoS set"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::store::Store;
    use crate::drivers::test::TestDriver;
    use crate::model::{DomainDef, DomainType};
    use crate::network::Dirs;

    fn domain_on(net: &str) -> DomainDef {
        DomainDef::from_xml(&format!(
            "<domain type='test'><name>g</name><memory>1048576</memory>\
             <os><type>hvm</type></os><devices><interface type='network'>\
             <mac address='52:54:00:00:00:07'/><source network='{net}'/></interface>\
             </devices></domain>"
        ))
        .unwrap()
    }

    #[tokio::test]
    async fn guests_need_an_active_network() {
        let tmp = tempfile::tempdir().unwrap();
        let core = Core::new(
            vec![(DomainType::Test, Arc::new(TestDriver::new()))],
            Store::memory(),
        );
        // without a network driver the definition goes to the domain's driver unchanged
        let def = Arc::new(domain_on("default"));
        assert!(Arc::ptr_eq(
            &core.resolve_networks(def.clone()).await.unwrap(),
            &def
        ));
        let drv = NetworkDriver::new(
            Dirs {
                config: Some(tmp.path().join("config")),
                run: tmp.path().join("run"),
            },
            false,
        )
        .unwrap();
        drv.load(false).await;
        core.attach_networks(drv);
        let e = core.resolve_networks(def.clone()).await.unwrap_err();
        assert!(matches!(&e, Error::NotFound(..)), "{e}");
        assert!(e.to_string().contains("no network named 'default'"), "{e}");
        core.network(NetworkRequest::Define {
            xml: "<network><name>default</name><ip address='10.3.0.1' prefix='24'/></network>"
                .into(),
        })
        .await
        .unwrap();
        let e = core.resolve_networks(def).await.unwrap_err();
        assert!(matches!(&e, Error::InvalidState(_)), "{e}");
        assert!(
            e.to_string().contains("network 'default' is not active"),
            "{e}"
        );
        // an unprivileged daemon defines networks but cannot start them
        let e = core
            .network(NetworkRequest::Start {
                name: "default".into(),
            })
            .await
            .unwrap_err();
        assert!(matches!(&e, Error::NotSupported(_)), "{e}");
    }
}
