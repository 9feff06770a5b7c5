//! `org.libvirt.Network` and Connect's network methods: libvirt-dbus's view of the virtual
//! networks, over the core's network requests (`Exec::run_network`), with libvirt's flag
//! words, command and section numbers, and error codes.

use uuid::Uuid;
use zbus::{Message, ObjectPath, Variant};

use super::{
    Connect, Ctx,
    errors::{Code, CompatError, Reply, libvirt},
    flags::Flavor,
    paths,
};
use crate::{
    core::{
        self, Missing,
        network_ops::{NetworkReply, NetworkRequest},
    },
    network::{
        NetworkInfo,
        update::{UpdateCommand, UpdateSection},
    },
    server::{Call, dict::Dict, exec::ExecError},
};

pub(super) const NETWORK_PROPS: &[&str] = &["Active", "Autostart", "Name", "Persistent", "UUID"];

/// virNetworkXMLFlags
const XML_INACTIVE: u32 = 1;
// virNetworkUpdateFlags (0 is "current": live if active, else config)
const UPDATE_LIVE: u32 = 1;
const UPDATE_CONFIG: u32 = 2;

/// libvirt's error for a failed network request: a missing object is a missing network.
fn error(e: ExecError) -> CompatError {
    match e {
        ExecError::Denied(d) => d.into(),
        ExecError::Core(core::Error::NotFound(Missing::Object, msg)) => {
            libvirt(Code::NoNetwork, Some(&msg))
        }
        ExecError::Core(core::Error::NotSupported(msg)) => libvirt(Code::NoSupport, Some(&msg)),
        ExecError::Core(c) => super::errors::from_core(c, super::flags::Flavor::Qemu, &NET_METHOD),
    }
}

/// The method description `from_core` wants for option errors (networks have none).
static NET_METHOD: super::flags::Method = super::flags::Method {
    api: "virNetwork",
    driver_fn: "Network",
    flags: &[],
};

/// Refuses bits outside `known` as libvirt's `virCheckFlags` does, naming the driver
/// function: `(network driver's, test driver's)`.
fn check_flags(flags: u32, known: u32, flavor: Flavor, func: (&str, &str)) -> Reply<()> {
    let unknown = flags & !known;
    if unknown != 0 {
        let f = match flavor {
            Flavor::Qemu | Flavor::Lxc => func.0,
            Flavor::Test => func.1,
        };
        return Err(super::errors::bare(format!(
            "unsupported flags (0x{unknown:x}) in function {f}"
        )));
    }
    Ok(())
}

async fn run(ctx: &Ctx, call: &Call, c: &Connect, req: NetworkRequest) -> Reply<NetworkReply> {
    let changes = req.operation() != crate::core::ops::Operation::ReadNetwork;
    let out = c
        .exec(ctx)
        .run_network(&call.caller, req)
        .await
        .map_err(error)?;
    if changes {
        c.network_signals_sent().await;
    }
    Ok(out)
}

async fn list(ctx: &Ctx, call: &Call, c: &Connect) -> Reply<Vec<NetworkInfo>> {
    if c.core.networks().is_err() {
        return Ok(Vec::new());
    }
    match run(ctx, call, c, NetworkRequest::List).await? {
        NetworkReply::List(l) => Ok(l),
        _ => Ok(Vec::new()),
    }
}

async fn info(ctx: &Ctx, call: &Call, c: &Connect, name: &str) -> Reply<NetworkInfo> {
    let req = NetworkRequest::Info {
        name: name.to_owned(),
    };
    match run(ctx, call, c, req).await? {
        NetworkReply::Info(i) => Ok(i),
        _ => Err(libvirt(Code::Internal, Some("unexpected reply"))),
    }
}

fn no_network_uuid(uuid: &Uuid) -> CompatError {
    libvirt(
        Code::NoNetwork,
        Some(&format!("no network with matching uuid '{uuid}'")),
    )
}

/// The network with `uuid`.
async fn by_uuid(ctx: &Ctx, call: &Call, c: &Connect, uuid: &Uuid) -> Reply<NetworkInfo> {
    list(ctx, call, c)
        .await?
        .into_iter()
        .find(|n| n.uuid == *uuid)
        .ok_or_else(|| no_network_uuid(uuid))
}

fn reply_path(call: &Call, c: &Connect, n: &NetworkInfo) -> Reply<Message> {
    call.reply(&ObjectPath::from_string_unchecked(paths::network(
        c.path, &n.uuid,
    )))
}

/// The node names under `<connect>/network` the caller may see.
pub(super) async fn children(ctx: &Ctx, call: &Call, c: &Connect) -> Vec<String> {
    let mut out: Vec<String> = list(ctx, call, c)
        .await
        .unwrap_or_default()
        .iter()
        .filter_map(|n| {
            paths::network(c.path, &n.uuid)
                .rsplit('/')
                .next()
                .map(str::to_owned)
        })
        .collect();
    out.sort();
    out
}

/// Connect's network methods.
pub(super) async fn connect_call(
    ctx: &Ctx,
    call: &Call,
    c: &Connect,
    member: &str,
) -> Reply<Message> {
    let body = call.msg.body();
    match member {
        "ListNetworks" => {
            let flags: u32 = body.deserialize()?;
            check_flags(
                flags,
                63,
                c.flavor,
                (
                    "networkConnectListAllNetworks",
                    "testConnectListAllNetworks",
                ),
            )?;
            let paths: Vec<ObjectPath<'static>> = list(ctx, call, c)
                .await?
                .iter()
                .filter(|n| {
                    crate::compat::flags::state_filter(flags, n.active, n.persistent, n.autostart)
                })
                .map(|n| ObjectPath::from_string_unchecked(paths::network(c.path, &n.uuid)))
                .collect();
            call.reply(&paths)
        }
        "NetworkLookupByName" => {
            let name: String = body.deserialize()?;
            let n = info(ctx, call, c, &name).await.map_err(|e| match e {
                CompatError::Libvirt {
                    code: Code::NoNetwork | Code::NoSupport,
                    ..
                } => libvirt(
                    Code::NoNetwork,
                    Some(&format!("no network with matching name '{name}'")),
                ),
                e => e,
            })?;
            reply_path(call, c, &n)
        }
        "NetworkLookupByUUID" => {
            let s: String = body.deserialize()?;
            // libvirt-dbus hands the string to libvirt, which checks it
            let uuid = super::connect::parse_uuid(&s).ok_or_else(|| {
                super::errors::bare(
                    "uuidstr in virNetworkLookupByUUIDString must be a valid UUID".into(),
                )
            })?;
            let n = by_uuid(ctx, call, c, &uuid).await?;
            reply_path(call, c, &n)
        }
        "NetworkDefineXML" | "NetworkCreateXML" => {
            let xml: String = body.deserialize()?;
            if c.core.networks().is_err() {
                // libvirt's answer from a connection without a network driver
                return Err(super::errors::no_support(if member == "NetworkDefineXML" {
                    "virNetworkDefineXML"
                } else {
                    "virNetworkCreateXML"
                }));
            }
            let req = if member == "NetworkDefineXML" {
                NetworkRequest::Define { xml }
            } else {
                NetworkRequest::Create { xml }
            };
            match run(ctx, call, c, req).await? {
                NetworkReply::Info(n) => reply_path(call, c, &n),
                _ => Err(libvirt(Code::Internal, Some("unexpected reply"))),
            }
        }
        m => Err(super::errors::no_support(m)),
    }
}

/// libvirt's command numbers (virNetworkUpdateCommand).
pub(crate) fn command(n: u32) -> Reply<UpdateCommand> {
    Ok(match n {
        1 => UpdateCommand::Modify,
        2 => UpdateCommand::Delete,
        3 => UpdateCommand::AddLast,
        4 => UpdateCommand::AddFirst,
        n => {
            return Err(libvirt(
                Code::InvalidArg,
                Some(&format!("unrecognized network update command code {n}")),
            ));
        }
    })
}

/// libvirt's section numbers (virNetworkUpdateSection); virtbus updates DHCP and DNS hosts.
pub(crate) fn section(n: u32) -> Reply<UpdateSection> {
    const NAMES: [&str; 13] = [
        "none",
        "bridge",
        "domain",
        "ip",
        "ip-dhcp-host",
        "ip-dhcp-range",
        "forward",
        "forward-interface",
        "forward-pf",
        "portgroup",
        "dns-host",
        "dns-txt",
        "dns-srv",
    ];
    match n {
        4 => Ok(UpdateSection::IpDhcpHost),
        10 => Ok(UpdateSection::DnsHost),
        n => match NAMES.get(n as usize) {
            Some(name) => Err(libvirt(
                Code::NoSupport,
                Some(&format!(
                    "can't update '{name}' section of network: not supported by virtbus"
                )),
            )),
            None => Err(libvirt(
                Code::InvalidArg,
                Some(&format!("unrecognized network update section code {n}")),
            )),
        },
    }
}

/// A Network object's methods.
pub(super) async fn object_call(
    ctx: &Ctx,
    call: &Call,
    c: &Connect,
    uuid: &Uuid,
    member: &str,
) -> Reply<Message> {
    let body = call.msg.body();
    let n = by_uuid(ctx, call, c, uuid).await?;
    let name = n.name.clone();
    match member {
        "Create" => {
            run(ctx, call, c, NetworkRequest::Start { name }).await?;
            call.reply_empty()
        }
        "Destroy" => {
            run(ctx, call, c, NetworkRequest::Stop { name }).await?;
            call.reply_empty()
        }
        "Undefine" => {
            run(ctx, call, c, NetworkRequest::Undefine { name }).await?;
            call.reply_empty()
        }
        "GetXMLDesc" => {
            let flags: u32 = body.deserialize()?;
            // libvirt's test driver keeps no inactive definition apart
            let known = match c.flavor {
                Flavor::Qemu | Flavor::Lxc => XML_INACTIVE,
                Flavor::Test => 0,
            };
            check_flags(
                flags,
                known,
                c.flavor,
                ("networkGetXMLDesc", "testNetworkGetXMLDesc"),
            )?;
            let req = NetworkRequest::GetXml {
                name,
                inactive: flags & XML_INACTIVE != 0,
            };
            match run(ctx, call, c, req).await? {
                NetworkReply::Xml(x) => call.reply(&x),
                _ => Err(libvirt(Code::Internal, Some("unexpected reply"))),
            }
        }
        "GetDHCPLeases" => {
            let (mac, flags): (String, u32) = body.deserialize()?;
            if c.flavor == Flavor::Test {
                return Err(super::errors::no_support("virNetworkGetDHCPLeases"));
            }
            check_flags(
                flags,
                0,
                c.flavor,
                ("networkGetDHCPLeases", "testNetworkGetDHCPLeases"),
            )?;
            let req = NetworkRequest::Leases {
                name,
                mac: (!mac.is_empty()).then_some(mac),
            };
            let NetworkReply::Leases(leases) = run(ctx, call, c, req).await? else {
                return Err(libvirt(Code::Internal, Some("unexpected reply")));
            };
            type Row = (
                String,
                i64,
                i32,
                String,
                String,
                String,
                u32,
                String,
                String,
            );
            let opt = |s: &Option<String>| s.clone().unwrap_or_default();
            let rows: Vec<Row> = leases
                .iter()
                .map(|l| {
                    (
                        l.iface.clone(),
                        l.expiry,
                        // VIR_IP_ADDR_TYPE_IPV4 / _IPV6
                        i32::from(l.ip.is_ipv6()),
                        l.mac.map(|m| m.to_string()).unwrap_or_default(),
                        opt(&l.iaid),
                        l.ip.to_string(),
                        u32::from(l.prefix),
                        opt(&l.hostname),
                        opt(&l.client_id),
                    )
                })
                .collect();
            call.reply(&rows)
        }
        "Update" => {
            let (cmd, sect, parent, xml, flags): (u32, u32, i32, String, u32) =
                body.deserialize()?;
            check_flags(
                flags,
                UPDATE_LIVE | UPDATE_CONFIG,
                c.flavor,
                ("networkUpdate", "testNetworkUpdate"),
            )?;
            let (mut live, mut config) = (flags & UPDATE_LIVE != 0, flags & UPDATE_CONFIG != 0);
            if !live && !config {
                // "current": the running network if active, else its definition
                live = n.active;
                config = !n.active;
            }
            let req = NetworkRequest::Update {
                name,
                command: command(cmd)?,
                section: section(sect)?,
                xml,
                live,
                config,
                ip_index: usize::try_from(parent).ok(),
            };
            run(ctx, call, c, req).await?;
            call.reply_empty()
        }
        m => Err(CompatError::unknown_method(m)),
    }
}

fn prop(n: &NetworkInfo, name: &str) -> Option<Variant<'static>> {
    Some(match name {
        "Active" => Variant::Bool(n.active),
        "Autostart" => Variant::Bool(n.autostart),
        "Name" => Variant::from(n.name.clone()),
        "Persistent" => Variant::Bool(n.persistent),
        "UUID" => Variant::from(n.uuid.to_string()),
        _ => return None,
    })
}

pub(super) async fn get(
    ctx: &Ctx,
    call: &Call,
    c: &Connect,
    uuid: &Uuid,
    name: &str,
) -> Reply<Option<Variant<'static>>> {
    if !NETWORK_PROPS.contains(&name) {
        return Ok(None);
    }
    let n = by_uuid(ctx, call, c, uuid).await?;
    Ok(prop(&n, name))
}

pub(super) async fn get_all(
    ctx: &Ctx,
    call: &Call,
    c: &Connect,
    uuid: &Uuid,
    out: &mut Dict<&str, Variant<'static>>,
) -> Reply<()> {
    // A network that is gone has no property left to read: an empty answer.
    if let Ok(n) = by_uuid(ctx, call, c, uuid).await {
        super::props::push_props(out, NETWORK_PROPS, |p| prop(&n, p));
    }
    Ok(())
}

pub(super) async fn set_autostart(
    ctx: &Ctx,
    call: &Call,
    c: &Connect,
    uuid: &Uuid,
    on: bool,
) -> Reply<()> {
    let n = by_uuid(ctx, call, c, uuid).await?;
    let req = NetworkRequest::SetAutostart {
        name: n.name,
        autostart: on,
    };
    run(ctx, call, c, req).await?;
    Ok(())
}

/// libvirt's NetworkEvent number (virNetworkEventLifecycleType) for a driver event.
pub(super) fn event_number(kind: crate::network::NetEventKind) -> Option<i32> {
    use crate::network::NetEventKind as K;
    match kind {
        K::Defined => Some(0),
        K::Undefined => Some(1),
        K::Started => Some(2),
        K::Stopped => Some(3),
        K::Changed => None,
    }
}

/// Signals Connect's `NetworkEvent` for each lifecycle event of the network driver, then
/// records the event's sequence number as signalled.
pub(super) async fn pump(
    ctx: std::sync::Arc<Ctx>,
    index: usize,
    mut rx: tokio::sync::broadcast::Receiver<crate::network::NetEvent>,
    done: tokio::sync::watch::Sender<u64>,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        let ev = match rx.recv().await {
            Ok(ev) => ev,
            Err(RecvError::Lagged(n)) => {
                tracing::warn!("{n} network event(s) were dropped before being signalled");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let c = &ctx.connects[index];
        // The LXC connect shares the QEMU one's networks; Cockpit Machines subscribes on any
        // path and keys networks by path, so they are signalled once, on the QEMU connect.
        let shared =
            c.flavor == Flavor::Lxc && ctx.connects.iter().any(|o| o.flavor == Flavor::Qemu);
        if let Some(event) = event_number(ev.kind).filter(|_| !shared) {
            let path = ObjectPath::from_string_unchecked(paths::network(c.path, &ev.info.uuid));
            if let Err(e) = ctx
                .conn
                .emit_signal(
                    None::<()>,
                    c.path,
                    super::schema::CONNECT_IFACE,
                    "NetworkEvent",
                    &(path, event),
                )
                .await
            {
                tracing::warn!("cannot signal a network event: {e}");
            }
        }
        done.send_replace(ev.seq);
    }
}
