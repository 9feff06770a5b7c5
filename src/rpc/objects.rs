//! The procedures about libvirt's objects besides domains: virtual networks (over the core's
//! network requests), host interfaces and node devices (over the core's host readers), and
//! the host's statistics; storage is in [`super::pools`], domain statistics in
//! [`super::stats`]. Every call is authorized through the execution path, as the domain
//! procedures are.

use uuid::Uuid;

use super::{
    Shared,
    dispatch::{Session, int, ok},
    error::{RpcError, RpcResult},
    objproto::{
        CpuMapArgs, CpuMapRet, DhcpLease, DhcpLeasesArgs, DhcpLeasesRet, FlagsArgs, HyperRet,
        Iface, IfaceArgs, IfaceFlagsArgs, IfaceRet, ListAllArgs, ListAllInterfacesRet,
        ListAllNetworksRet, ListAllNodeDevicesRet, MaxNamesArgs, NameArgs, NamesRet, Net, NetArgs,
        NetAutostartArgs, NetFlagsArgs, NetRet, NodeCpuStatsArgs, NodeDev, NodeDevFlagsArgs,
        NodeDevListCapsArgs, NodeDevListCapsRet, NodeDevRet, NodeListDevicesArgs,
        NodeMemoryStatsArgs, NodeNumOfDevicesArgs, NodeStat, NodeStatsRet, NumRet, Opaque,
        OptStringRet, UuidArgs, XmlArgs, XmlFlagsArgs, procs,
    },
    proto::StringRet,
    xdr::{Array, Reader},
};
use crate::{
    compat::{
        errors::Code,
        fixture::{TEST_DEVICES, TEST_INTERFACE},
        flags::Flavor,
    },
    core::{
        self, Missing, host, hostdev,
        network_ops::{NetworkReply, NetworkRequest},
        ops::Operation,
    },
    host::{
        interfaces::{Filter, HostInterface},
        nodedev,
    },
    network::NetworkInfo,
    server::{authz::Details, exec::ExecError},
};

/// Carry out procedure `p` (one of [`procs::IMPLEMENTED`]).
pub(super) async fn call(shared: &Shared, s: &Session, p: i32, body: &[u8]) -> RpcResult<Vec<u8>> {
    use procs as P;
    match p {
        P::CONNECT_LIST_ALL_NETWORKS
        | P::NETWORK_LOOKUP_BY_NAME
        | P::NETWORK_LOOKUP_BY_UUID
        | P::NETWORK_GET_XML_DESC
        | P::NETWORK_DEFINE_XML
        | P::NETWORK_DEFINE_XML_FLAGS
        | P::NETWORK_CREATE_XML
        | P::NETWORK_CREATE_XML_FLAGS
        | P::NETWORK_CREATE
        | P::NETWORK_DESTROY
        | P::NETWORK_UNDEFINE
        | P::NETWORK_GET_AUTOSTART
        | P::NETWORK_SET_AUTOSTART
        | P::NETWORK_IS_ACTIVE
        | P::NETWORK_IS_PERSISTENT
        | P::NETWORK_GET_BRIDGE_NAME
        | P::NETWORK_GET_DHCP_LEASES
        | P::NUM_OF_NETWORKS
        | P::LIST_NETWORKS
        | P::NUM_OF_DEFINED_NETWORKS
        | P::LIST_DEFINED_NETWORKS => network(shared, s, p, body).await,
        P::CONNECT_LIST_ALL_INTERFACES
        | P::INTERFACE_LOOKUP_BY_NAME
        | P::INTERFACE_LOOKUP_BY_MAC_STRING
        | P::INTERFACE_GET_XML_DESC
        | P::INTERFACE_IS_ACTIVE
        | P::NUM_OF_INTERFACES
        | P::LIST_INTERFACES
        | P::NUM_OF_DEFINED_INTERFACES
        | P::LIST_DEFINED_INTERFACES => interface(shared, s, p, body).await,
        P::CONNECT_LIST_ALL_NODE_DEVICES
        | P::NODE_DEVICE_LOOKUP_BY_NAME
        | P::NODE_DEVICE_GET_XML_DESC
        | P::NODE_DEVICE_GET_PARENT
        | P::NODE_DEVICE_NUM_OF_CAPS
        | P::NODE_DEVICE_LIST_CAPS
        | P::NODE_NUM_OF_DEVICES
        | P::NODE_LIST_DEVICES => node_device(shared, s, p, body).await,
        P::NODE_GET_FREE_MEMORY
        | P::NODE_GET_CPU_STATS
        | P::NODE_GET_MEMORY_STATS
        | P::NODE_GET_CPU_MAP
        | P::CONNECT_GET_SYSINFO => node(shared, s, p, body).await,
        p if super::pools::handles(p) => super::pools::call(shared, s, p, body).await,
        p => super::stats::call(shared, s, p, body).await,
    }
}

/// Refuse a change on a read-only connection, naming libvirt's API.
pub(super) fn writable(s: &Session, api: &str) -> RpcResult<()> {
    if s.readonly {
        return Err(RpcError::read_only(&format!(
            "read only access prevents {api}"
        )));
    }
    Ok(())
}

/// Refuse flags outside `known`, in libvirt's words.
pub(super) fn check_flags(s: &Session, flags: u32, known: u32, api: &str) -> RpcResult<()> {
    let bad = flags & !known;
    if bad != 0 {
        return Err(s.error(
            Code::InvalidArg,
            &format!("{api}: unsupported flags (0x{bad:x})"),
        ));
    }
    Ok(())
}

/// A name list cut to what the client asked for (`maxnames`), as libvirt's old list calls.
pub(super) fn names(mut v: Vec<String>, max: i32) -> RpcResult<Vec<u8>> {
    v.truncate(usize::try_from(max).unwrap_or(0));
    ok(NamesRet { names: Array(v) })
}

pub(super) fn num(n: usize) -> RpcResult<Vec<u8>> {
    ok(NumRet {
        num: i32::try_from(n).unwrap_or(i32::MAX),
    })
}

// ---- networks ----

/// `VIR_NETWORK_XML_INACTIVE`.
const NET_XML_INACTIVE: u32 = 1;

fn wire_net(n: &NetworkInfo) -> Net {
    Net {
        name: n.name.clone(),
        uuid: *n.uuid.as_bytes(),
    }
}

/// libvirt's error for a network request that did not go through.
fn net_error(s: &Session, e: ExecError) -> RpcError {
    let flavor = s.flavor();
    match e {
        ExecError::Denied(d) => RpcError::denied(d, flavor),
        ExecError::Core(core::Error::NotFound(Missing::Object, msg)) => {
            s.error(Code::NoNetwork, &msg)
        }
        ExecError::Core(core::Error::NotSupported(msg)) => s.error(Code::NoSupport, &msg),
        ExecError::Core(c) => RpcError::from_core(c, flavor, &NET_METHOD),
    }
}

/// The method description the error mapping wants (networks have no option flags).
static NET_METHOD: crate::compat::flags::Method = crate::compat::flags::Method {
    api: "virNetwork",
    driver_fn: "Network",
    flags: &[],
};

pub(super) async fn net_run(
    shared: &Shared,
    s: &Session,
    req: NetworkRequest,
) -> RpcResult<NetworkReply> {
    if req.operation() != Operation::ReadNetwork {
        writable(s, "virNetwork")?;
    }
    s.exec(shared)
        .run_network(&s.caller, req)
        .await
        .map_err(|e| net_error(s, e))
}

/// The networks the caller may read (none without a network driver).
async fn net_list(shared: &Shared, s: &Session) -> RpcResult<Vec<NetworkInfo>> {
    if s.view.core.networks().is_err() {
        return Ok(Vec::new());
    }
    match net_run(shared, s, NetworkRequest::List).await? {
        NetworkReply::List(l) => Ok(l),
        _ => Ok(Vec::new()),
    }
}

async fn net_info(shared: &Shared, s: &Session, name: &str) -> RpcResult<NetworkInfo> {
    let req = NetworkRequest::Info {
        name: name.to_owned(),
    };
    match net_run(shared, s, req).await {
        Ok(NetworkReply::Info(i)) => Ok(i),
        Ok(_) => Err(s.error(Code::Internal, "unexpected reply")),
        Err(e) if e.code == Code::NoSupport.number() || e.code == Code::NoNetwork.number() => {
            Err(s.error(
                Code::NoNetwork,
                &format!("no network with matching name '{name}'"),
            ))
        }
        Err(e) => Err(e),
    }
}

/// The network a `remote_nonnull_network` names (by UUID, as libvirt's driver looks it up).
pub(super) async fn net_of(shared: &Shared, s: &Session, n: &Net) -> RpcResult<NetworkInfo> {
    let uuid = Uuid::from_bytes(n.uuid);
    net_list(shared, s)
        .await?
        .into_iter()
        .find(|i| i.uuid == uuid)
        .ok_or_else(|| {
            s.error(
                Code::NoNetwork,
                &format!("no network with matching uuid '{uuid}' ({})", n.name),
            )
        })
}

fn net_info_reply(s: &Session, r: NetworkReply) -> RpcResult<Vec<u8>> {
    match r {
        NetworkReply::Info(n) => ok(NetRet { net: wire_net(&n) }),
        _ => Err(s.error(Code::Internal, "unexpected reply")),
    }
}

async fn network(shared: &Shared, s: &Session, p: i32, body: &[u8]) -> RpcResult<Vec<u8>> {
    use procs as P;
    match p {
        P::CONNECT_LIST_ALL_NETWORKS => {
            let a: ListAllArgs = Reader::decode(body)?;
            check_flags(s, a.flags, 63, "virConnectListAllNetworks")?;
            let nets: Vec<Net> = net_list(shared, s)
                .await?
                .iter()
                .filter(|n| {
                    crate::compat::flags::state_filter(a.flags, n.active, n.persistent, n.autostart)
                })
                .map(wire_net)
                .collect();
            let ret = nets.len() as u32;
            let nets = if a.need_results != 0 {
                nets
            } else {
                Vec::new()
            };
            ok(ListAllNetworksRet {
                nets: Array(nets),
                ret,
            })
        }
        P::NUM_OF_NETWORKS | P::NUM_OF_DEFINED_NETWORKS => {
            Reader::decode::<()>(body)?;
            let active = p == P::NUM_OF_NETWORKS;
            let n = net_list(shared, s)
                .await?
                .iter()
                .filter(|n| n.active == active)
                .count();
            num(n)
        }
        P::LIST_NETWORKS | P::LIST_DEFINED_NETWORKS => {
            let a: MaxNamesArgs = Reader::decode(body)?;
            let active = p == P::LIST_NETWORKS;
            let v = net_list(shared, s)
                .await?
                .into_iter()
                .filter(|n| n.active == active)
                .map(|n| n.name)
                .collect();
            names(v, a.maxnames)
        }
        P::NETWORK_LOOKUP_BY_NAME => {
            let a: NameArgs = Reader::decode(body)?;
            let n = net_info(shared, s, &a.name).await?;
            ok(NetRet { net: wire_net(&n) })
        }
        P::NETWORK_LOOKUP_BY_UUID => {
            let a: UuidArgs = Reader::decode(body)?;
            let uuid = Uuid::from_bytes(a.uuid);
            let n = net_list(shared, s)
                .await?
                .into_iter()
                .find(|n| n.uuid == uuid)
                .ok_or_else(|| {
                    s.error(
                        Code::NoNetwork,
                        &format!("no network with matching uuid '{uuid}'"),
                    )
                })?;
            ok(NetRet { net: wire_net(&n) })
        }
        P::NETWORK_DEFINE_XML
        | P::NETWORK_DEFINE_XML_FLAGS
        | P::NETWORK_CREATE_XML
        | P::NETWORK_CREATE_XML_FLAGS => {
            let define = matches!(p, P::NETWORK_DEFINE_XML | P::NETWORK_DEFINE_XML_FLAGS);
            let api = if define {
                "virNetworkDefineXML"
            } else {
                "virNetworkCreateXML"
            };
            let xml = if matches!(p, P::NETWORK_DEFINE_XML | P::NETWORK_CREATE_XML) {
                Reader::decode::<XmlArgs>(body)?.xml
            } else {
                let a: XmlFlagsArgs = Reader::decode(body)?;
                // VIR_NETWORK_DEFINE_VALIDATE / VIR_NETWORK_CREATE_VALIDATE: virtbus
                // always validates
                check_flags(s, a.flags, 1, api)?;
                a.xml
            };
            writable(s, api)?;
            if s.view.core.networks().is_err() {
                return Err(RpcError::no_support(api));
            }
            let req = if define {
                NetworkRequest::Define { xml }
            } else {
                NetworkRequest::Create { xml }
            };
            let r = net_run(shared, s, req).await?;
            net_info_reply(s, r)
        }
        P::NETWORK_CREATE | P::NETWORK_DESTROY | P::NETWORK_UNDEFINE => {
            let a: NetArgs = Reader::decode(body)?;
            let name = net_of(shared, s, &a.net).await?.name;
            let req = match p {
                P::NETWORK_CREATE => NetworkRequest::Start { name },
                P::NETWORK_DESTROY => NetworkRequest::Stop { name },
                _ => NetworkRequest::Undefine { name },
            };
            net_run(shared, s, req).await?;
            ok(())
        }
        P::NETWORK_GET_XML_DESC => {
            let a: NetFlagsArgs = Reader::decode(body)?;
            check_flags(s, a.flags, NET_XML_INACTIVE, "virNetworkGetXMLDesc")?;
            let name = net_of(shared, s, &a.net).await?.name;
            let req = NetworkRequest::GetXml {
                name,
                inactive: a.flags & NET_XML_INACTIVE != 0,
            };
            match net_run(shared, s, req).await? {
                NetworkReply::Xml(x) => ok(StringRet { value: x }),
                _ => Err(s.error(Code::Internal, "unexpected reply")),
            }
        }
        P::NETWORK_GET_AUTOSTART | P::NETWORK_IS_ACTIVE | P::NETWORK_IS_PERSISTENT => {
            let a: NetArgs = Reader::decode(body)?;
            let n = net_of(shared, s, &a.net).await?;
            int(match p {
                P::NETWORK_GET_AUTOSTART => n.autostart,
                P::NETWORK_IS_ACTIVE => n.active,
                _ => n.persistent,
            })
        }
        P::NETWORK_SET_AUTOSTART => {
            let a: NetAutostartArgs = Reader::decode(body)?;
            let name = net_of(shared, s, &a.net).await?.name;
            let req = NetworkRequest::SetAutostart {
                name,
                autostart: a.autostart != 0,
            };
            net_run(shared, s, req).await?;
            ok(())
        }
        P::NETWORK_GET_BRIDGE_NAME => {
            let a: NetArgs = Reader::decode(body)?;
            let name = net_of(shared, s, &a.net).await?.name;
            let req = NetworkRequest::GetXml {
                name: name.clone(),
                inactive: false,
            };
            let NetworkReply::Xml(xml) = net_run(shared, s, req).await? else {
                return Err(s.error(Code::Internal, "unexpected reply"));
            };
            let bridge = bridge_of(&xml).ok_or_else(|| {
                s.error(
                    Code::Internal,
                    &format!("network '{name}' does not have a bridge name."),
                )
            })?;
            ok(StringRet { value: bridge })
        }
        P::NETWORK_GET_DHCP_LEASES => {
            let a: DhcpLeasesArgs = Reader::decode(body)?;
            check_flags(s, a.flags, 0, "virNetworkGetDHCPLeases")?;
            let name = net_of(shared, s, &a.net).await?.name;
            let req = NetworkRequest::Leases {
                name,
                mac: a.mac.filter(|m| !m.is_empty()),
            };
            let NetworkReply::Leases(leases) = net_run(shared, s, req).await? else {
                return Err(s.error(Code::Internal, "unexpected reply"));
            };
            let ret = leases.len() as u32;
            let leases = if a.need_results != 0 {
                leases
                    .into_iter()
                    .map(|l| DhcpLease {
                        iface: l.iface,
                        expirytime: l.expiry,
                        // VIR_IP_ADDR_TYPE_IPV4 / _IPV6
                        kind: i32::from(l.ip.is_ipv6()),
                        mac: l.mac.map(|m| m.to_string()),
                        iaid: l.iaid,
                        ipaddr: l.ip.to_string(),
                        prefix: u32::from(l.prefix),
                        hostname: l.hostname,
                        clientid: l.client_id,
                    })
                    .collect()
            } else {
                Vec::new()
            };
            ok(DhcpLeasesRet {
                leases: Array(leases),
                ret,
            })
        }
        p => Err(RpcError::no_support(&format!("procedure {p}"))),
    }
}

/// The `<bridge name=…>` of a network's XML.
fn bridge_of(xml: &str) -> Option<String> {
    let doc = crate::model::xml::parse_document(xml).ok()?;
    doc.root_element()
        .children()
        .find(|c| c.has_tag_name("bridge"))
        .and_then(|b| b.attribute("name"))
        .map(str::to_owned)
}

// ---- host interfaces ----

const IFACE_INACTIVE: u32 = 1;
const IFACE_ACTIVE: u32 = 2;

fn host_error(s: &Session, e: core::Error) -> RpcError {
    RpcError::from_core(e, s.flavor(), &crate::compat::flags::GET_SYSINFO)
}

async fn authorize_host(shared: &Shared, s: &Session, op: Operation) -> RpcResult<()> {
    s.exec(shared)
        .authorize_as(&s.caller, op, &Details::default())
        .await
        .map_err(|e| RpcError::denied(e, s.flavor()))
}

/// An interface as the wire needs it: the host's, or `test:///default`'s fixed one.
struct IfaceView {
    name: String,
    mac: Option<String>,
    active: bool,
    xml: String,
}

impl From<HostInterface> for IfaceView {
    fn from(i: HostInterface) -> Self {
        IfaceView {
            active: i.active(),
            xml: i.to_xml(),
            mac: i.mac,
            name: i.name,
        }
    }
}

/// The host's interfaces, or the test driver's one ([`TEST_INTERFACE`]).
fn ifaces(s: &Session, filter: Filter) -> RpcResult<Vec<IfaceView>> {
    match s.flavor() {
        Flavor::Test => {
            let t = &TEST_INTERFACE;
            let wanted = (!filter.active && !filter.inactive)
                || (filter.active && t.active)
                || (filter.inactive && !t.active);
            Ok(wanted
                .then(|| IfaceView {
                    name: t.name.into(),
                    mac: Some(t.mac.into()),
                    active: t.active,
                    xml: t.xml.into(),
                })
                .into_iter()
                .collect())
        }
        Flavor::Qemu | Flavor::Lxc => Ok(hostdev::interfaces(filter)
            .map_err(|e| host_error(s, e))?
            .into_iter()
            .map(IfaceView::from)
            .collect()),
    }
}

fn wire_iface(i: &IfaceView) -> Iface {
    Iface {
        name: i.name.clone(),
        mac: i.mac.clone().unwrap_or_default(),
    }
}

fn no_iface(s: &Session, what: &str, value: &str) -> RpcError {
    s.error(
        Code::NoInterface,
        &format!("couldn't find interface with {what} '{value}'"),
    )
}

fn iface_named(s: &Session, name: &str) -> RpcResult<IfaceView> {
    match s.flavor() {
        Flavor::Test => ifaces(s, Filter::default())?
            .into_iter()
            .find(|i| i.name == name)
            .ok_or_else(|| no_iface(s, "name", name)),
        Flavor::Qemu | Flavor::Lxc => hostdev::interface(name)
            .map(IfaceView::from)
            .map_err(|_| no_iface(s, "name", name)),
    }
}

async fn interface(shared: &Shared, s: &Session, p: i32, body: &[u8]) -> RpcResult<Vec<u8>> {
    use procs as P;
    authorize_host(shared, s, Operation::ReadHostInterfaces).await?;
    match p {
        P::CONNECT_LIST_ALL_INTERFACES => {
            let a: ListAllArgs = Reader::decode(body)?;
            check_flags(
                s,
                a.flags,
                IFACE_ACTIVE | IFACE_INACTIVE,
                "virConnectListAllInterfaces",
            )?;
            let filter = Filter {
                active: a.flags & IFACE_ACTIVE != 0,
                inactive: a.flags & IFACE_INACTIVE != 0,
            };
            let v: Vec<Iface> = ifaces(s, filter)?.iter().map(wire_iface).collect();
            let ret = v.len() as u32;
            let ifaces = if a.need_results != 0 { v } else { Vec::new() };
            ok(ListAllInterfacesRet {
                ifaces: Array(ifaces),
                ret,
            })
        }
        P::NUM_OF_INTERFACES | P::NUM_OF_DEFINED_INTERFACES => {
            Reader::decode::<()>(body)?;
            let active = p == P::NUM_OF_INTERFACES;
            let filter = Filter {
                active,
                inactive: !active,
            };
            num(ifaces(s, filter)?.len())
        }
        P::LIST_INTERFACES | P::LIST_DEFINED_INTERFACES => {
            let a: MaxNamesArgs = Reader::decode(body)?;
            let active = p == P::LIST_INTERFACES;
            let filter = Filter {
                active,
                inactive: !active,
            };
            names(
                ifaces(s, filter)?.into_iter().map(|i| i.name).collect(),
                a.maxnames,
            )
        }
        P::INTERFACE_LOOKUP_BY_NAME => {
            let a: NameArgs = Reader::decode(body)?;
            let i = iface_named(s, &a.name)?;
            ok(IfaceRet {
                iface: wire_iface(&i),
            })
        }
        P::INTERFACE_LOOKUP_BY_MAC_STRING => {
            let a: super::objproto::NameArgs = Reader::decode(body)?;
            let i = ifaces(s, Filter::default())?
                .into_iter()
                .find(|i| {
                    i.mac
                        .as_deref()
                        .is_some_and(|m| m.eq_ignore_ascii_case(&a.name))
                })
                .ok_or_else(|| no_iface(s, "MAC address", &a.name))?;
            ok(IfaceRet {
                iface: wire_iface(&i),
            })
        }
        P::INTERFACE_GET_XML_DESC => {
            let a: IfaceFlagsArgs = Reader::decode(body)?;
            // VIR_INTERFACE_XML_INACTIVE: the same description (nothing is configured)
            check_flags(s, a.flags, 1, "virInterfaceGetXMLDesc")?;
            let i = iface_named(s, &a.iface.name)?;
            ok(StringRet { value: i.xml })
        }
        P::INTERFACE_IS_ACTIVE => {
            let a: IfaceArgs = Reader::decode(body)?;
            int(iface_named(s, &a.iface.name)?.active)
        }
        p => Err(RpcError::no_support(&format!("procedure {p}"))),
    }
}

// ---- node devices ----

/// `VIR_CONNECT_LIST_NODE_DEVICES_ACTIVE` / `_INACTIVE`.
const DEV_ACTIVE: u32 = 1 << 31;
const DEV_INACTIVE: u32 = 1 << 30;

/// A node device as the wire needs it: the host's, or one of `test:///default`'s.
struct DevView {
    name: String,
    parent: Option<String>,
    caps: Vec<String>,
    xml: String,
}

/// The node devices whose capabilities pass `flags`: the host's, or the test driver's
/// ([`TEST_DEVICES`], whose driver knows no active/inactive flags).
fn devices(s: &Session, flags: u32) -> RpcResult<Vec<DevView>> {
    match s.flavor() {
        Flavor::Test => {
            let bad = flags & !nodedev::CAP_FLAG_MASK;
            if bad != 0 {
                return Err(RpcError::from_compat(
                    crate::compat::errors::bare(format!(
                        "unsupported flags (0x{bad:x}) in function testConnectListAllNodeDevices"
                    )),
                    Flavor::Test,
                ));
            }
            Ok(TEST_DEVICES
                .iter()
                .filter(|d| {
                    let caps: Vec<String> = d.filter_caps.iter().map(|c| (*c).to_owned()).collect();
                    nodedev::caps_match(&caps, flags)
                })
                .map(|d| DevView {
                    name: d.name.into(),
                    parent: d.parent.map(str::to_owned),
                    caps: d.caps.iter().map(|c| (*c).to_owned()).collect(),
                    xml: d.xml.into(),
                })
                .collect())
        }
        Flavor::Qemu | Flavor::Lxc => Ok(hostdev::node_devices(flags)
            .map_err(|e| host_error(s, e))?
            .into_iter()
            .map(|d| DevView {
                caps: d.cap_names(),
                xml: d.to_xml(),
                parent: d.parent,
                name: d.name,
            })
            .collect()),
    }
}

fn device(s: &Session, name: &str) -> RpcResult<DevView> {
    devices(s, 0)?
        .into_iter()
        .find(|d| d.name == name)
        .ok_or_else(|| {
            s.error(
                Code::NoNodeDevice,
                &format!("no node device with matching name '{name}'"),
            )
        })
}

/// The capability flag of an old call's `cap` argument (none: every device).
fn cap_flags(s: &Session, cap: Option<&str>) -> RpcResult<u32> {
    match cap {
        None | Some("") => Ok(0),
        Some(c) => hostdev::cap_flag(c).map_err(|e| host_error(s, e)),
    }
}

async fn node_device(shared: &Shared, s: &Session, p: i32, body: &[u8]) -> RpcResult<Vec<u8>> {
    use procs as P;
    authorize_host(shared, s, Operation::ReadNodeDevices).await?;
    match p {
        P::CONNECT_LIST_ALL_NODE_DEVICES => {
            let a: ListAllArgs = Reader::decode(body)?;
            check_flags(
                s,
                a.flags,
                nodedev::CAP_FLAG_MASK | DEV_ACTIVE | DEV_INACTIVE,
                "virConnectListAllNodeDevices",
            )?;
            let v: Vec<NodeDev> = devices(s, a.flags)?
                .into_iter()
                .map(|d| NodeDev { name: d.name })
                .collect();
            let ret = v.len() as u32;
            let devices = if a.need_results != 0 { v } else { Vec::new() };
            ok(ListAllNodeDevicesRet {
                devices: Array(devices),
                ret,
            })
        }
        P::NODE_NUM_OF_DEVICES => {
            let a: NodeNumOfDevicesArgs = Reader::decode(body)?;
            check_flags(s, a.flags, 0, "virNodeNumOfDevices")?;
            let f = cap_flags(s, a.cap.as_deref())?;
            num(devices(s, f)?.len())
        }
        P::NODE_LIST_DEVICES => {
            let a: NodeListDevicesArgs = Reader::decode(body)?;
            check_flags(s, a.flags, 0, "virNodeListDevices")?;
            let f = cap_flags(s, a.cap.as_deref())?;
            names(
                devices(s, f)?.into_iter().map(|d| d.name).collect(),
                a.maxnames,
            )
        }
        P::NODE_DEVICE_LOOKUP_BY_NAME => {
            let a: NameArgs = Reader::decode(body)?;
            let d = device(s, &a.name)?;
            ok(NodeDevRet {
                dev: NodeDev { name: d.name },
            })
        }
        P::NODE_DEVICE_GET_XML_DESC => {
            let a: NodeDevFlagsArgs = Reader::decode(body)?;
            check_flags(s, a.flags, 0, "virNodeDeviceGetXMLDesc")?;
            ok(StringRet {
                value: device(s, &a.name)?.xml,
            })
        }
        P::NODE_DEVICE_GET_PARENT => {
            let a: NameArgs = Reader::decode(body)?;
            ok(OptStringRet {
                value: device(s, &a.name)?.parent,
            })
        }
        P::NODE_DEVICE_NUM_OF_CAPS => {
            let a: NameArgs = Reader::decode(body)?;
            num(device(s, &a.name)?.caps.len())
        }
        P::NODE_DEVICE_LIST_CAPS => {
            let a: NodeDevListCapsArgs = Reader::decode(body)?;
            let mut caps = device(s, &a.name)?.caps;
            caps.truncate(usize::try_from(a.maxnames).unwrap_or(0));
            ok(NodeDevListCapsRet { names: Array(caps) })
        }
        p => Err(RpcError::no_support(&format!("procedure {p}"))),
    }
}

// ---- the host ----

/// `VIR_NODE_CPU_STATS_ALL_CPUS` / `VIR_NODE_MEMORY_STATS_ALL_CELLS`.
const ALL: i32 = -1;

/// Host statistics as libvirt answers them: with `nparams` 0 only their count.
fn node_stats(nparams: i32, stats: Vec<(&'static str, u64)>) -> RpcResult<Vec<u8>> {
    let n = i32::try_from(stats.len()).unwrap_or(i32::MAX);
    let params = if nparams == 0 {
        Vec::new()
    } else {
        stats
            .into_iter()
            .take(usize::try_from(nparams).unwrap_or(0))
            .map(|(k, v)| NodeStat {
                field: k.to_owned(),
                value: v,
            })
            .collect()
    };
    ok(NodeStatsRet {
        params: Array(params),
        nparams: n,
    })
}

async fn node(shared: &Shared, s: &Session, p: i32, body: &[u8]) -> RpcResult<Vec<u8>> {
    use procs as P;
    s.host_read(shared).await?;
    let herr = |e| host_error(s, e);
    match p {
        P::NODE_GET_FREE_MEMORY => {
            Reader::decode::<()>(body)?;
            // bytes, as libvirt's API gives them; libvirt's test driver's two cells have
            // 1 and 2 MiB free
            let bytes = match s.flavor() {
                Flavor::Test => 3 * 1024 * 1024,
                Flavor::Qemu | Flavor::Lxc => host::free_memory().map_err(herr)?,
            };
            ok(HyperRet { value: bytes })
        }
        P::NODE_GET_CPU_STATS => {
            let a: NodeCpuStatsArgs = Reader::decode(body)?;
            check_flags(s, a.flags, 0, "virNodeGetCPUStats")?;
            let cpu = (a.cpu != ALL).then_some(a.cpu as u32);
            node_stats(a.nparams, host::cpu_stats(cpu).map_err(herr)?)
        }
        P::NODE_GET_MEMORY_STATS => {
            let a: NodeMemoryStatsArgs = Reader::decode(body)?;
            check_flags(s, a.flags, 0, "virNodeGetMemoryStats")?;
            let cell = (a.cell != ALL).then_some(a.cell as u32);
            node_stats(a.nparams, host::memory_stats(cell).map_err(herr)?)
        }
        P::NODE_GET_CPU_MAP => {
            let a: CpuMapArgs = Reader::decode(body)?;
            check_flags(s, a.flags, 0, "virNodeGetCPUMap")?;
            let map = host::cpu_map()
                .map_err(|e| s.error(Code::Internal, &format!("cannot read the CPUs: {e}")))?;
            let mut bytes = vec![0u8; map.len().div_ceil(8)];
            for (i, on) in map.iter().enumerate() {
                if *on {
                    bytes[i / 8] |= 1 << (i % 8);
                }
            }
            let online = map.iter().filter(|o| **o).count() as u32;
            ok(CpuMapRet {
                cpumap: Opaque(if a.need_map != 0 { bytes } else { Vec::new() }),
                online: if a.need_online != 0 { online } else { 0 },
                ret: i32::try_from(map.len()).unwrap_or(i32::MAX),
            })
        }
        P::CONNECT_GET_SYSINFO => {
            let a: FlagsArgs = Reader::decode(body)?;
            check_flags(s, a.flags, 0, "virConnectGetSysinfo")?;
            ok(StringRet {
                value: host::sysinfo_xml(),
            })
        }
        p => Err(RpcError::no_support(&format!("procedure {p}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bridge_of_a_network() {
        assert_eq!(
            bridge_of("<network><name>n</name><bridge name='virbr7' stp='on'/></network>"),
            Some("virbr7".into())
        );
        assert_eq!(bridge_of("<network><name>n</name></network>"), None);
    }
}
