//! Routing a call to its object, and what every object has: Peer, Introspectable (the shipped
//! interface XML verbatim) and the checks GDBus makes before libvirt-dbus sees a call.

use std::fmt::Write as _;

use zbus::Message;

use super::{
    Connect, Ctx,
    errors::{Code, CompatError, Reply, bare, libvirt},
    flags::Flavor,
    paths::{self, Dir, Target},
    schema::{
        CONNECT_IFACE, DOMAIN_IFACE, INTERFACE_IFACE, NETWORK_IFACE, NODEDEV_IFACE, SNAPSHOT_IFACE,
        STORAGE_POOL_IFACE, STORAGE_VOL_IFACE,
    },
};
use crate::core::ops::Operation;
use crate::server::{
    Call,
    authz::Details,
    schema::{Interface, STANDARD_XML},
};

const PEER: &str = "org.freedesktop.DBus.Peer";
const INTROSPECTABLE: &str = "org.freedesktop.DBus.Introspectable";
pub(super) const PROPERTIES: &str = "org.freedesktop.DBus.Properties";

/// The interface an object at `target` implements.
fn own_interface<'a>(ctx: &'a Ctx, target: &Target) -> Option<&'a Interface> {
    match target {
        Target::Connect(_) => Some(&ctx.schema.connect),
        Target::Domain(..) | Target::BadDomain(_) => Some(&ctx.schema.domain),
        Target::Snapshot(..) => Some(&ctx.schema.snapshot),
        Target::Interface(..) => Some(&ctx.schema.interface),
        Target::NodeDevice(..) => Some(&ctx.schema.nodedev),
        Target::Network(..) => Some(&ctx.schema.network),
        Target::StoragePool(..) => Some(&ctx.schema.storage_pool),
        Target::StorageVol(..) => Some(&ctx.schema.storage_vol),
        _ => None,
    }
}

pub(super) async fn dispatch(ctx: &Ctx, call: &Call) -> Reply<Message> {
    let hdr = call.header();
    let path = hdr.path().map(|p| p.as_str()).unwrap_or("/");
    let member = hdr.member().map(|m| m.as_str()).unwrap_or_default();
    let target = paths::parse(path, &ctx.paths);
    let own = own_interface(ctx, &target);
    let iface = match hdr.interface() {
        Some(i) => i.as_str().to_owned(),
        None => match (own, member) {
            (Some(i), m) if i.methods.contains_key(m) => i.name.clone(),
            (_, "Ping" | "GetMachineId") => PEER.to_owned(),
            (_, "Introspect") => INTROSPECTABLE.to_owned(),
            (_, "Get" | "GetAll" | "Set") => PROPERTIES.to_owned(),
            _ => String::new(),
        },
    };
    if target == Target::Unknown {
        return Err(no_interface(&iface, path));
    }
    match iface.as_str() {
        PEER => peer(call, member),
        INTROSPECTABLE if member == "Introspect" => {
            check_signature(call, "")?;
            introspect(ctx, call, &target).await
        }
        PROPERTIES => super::props::call(ctx, call, &target, member).await,
        _ => {
            let Some(own) = own.filter(|i| i.name == iface) else {
                return Err(no_interface(&iface, path));
            };
            let m = own
                .methods
                .get(member)
                .ok_or_else(|| CompatError::unknown_method(member))?;
            check_signature(call, &m.in_sig)?;
            match (&target, iface.as_str()) {
                (Target::Connect(i), CONNECT_IFACE) => {
                    super::connect::call(ctx, call, &ctx.connects[*i], member).await
                }
                (Target::Domain(i, uuid), DOMAIN_IFACE) => {
                    super::domain::call(ctx, call, &ctx.connects[*i], uuid, member).await
                }
                (Target::BadDomain(_), DOMAIN_IFACE) => Err(bare("Invalid UUID".into())),
                (Target::Snapshot(i, uuid, name), SNAPSHOT_IFACE) => {
                    super::snapshot::call(ctx, call, &ctx.connects[*i], uuid, name, member).await
                }
                (Target::Interface(i, mac), INTERFACE_IFACE) => {
                    super::hostdev::interface_call(ctx, call, &ctx.connects[*i], mac, member).await
                }
                (Target::NodeDevice(i, name), NODEDEV_IFACE) => {
                    super::hostdev::nodedev_call(ctx, call, &ctx.connects[*i], name, member).await
                }
                (Target::Network(i, uuid), NETWORK_IFACE) => {
                    super::network::object_call(ctx, call, &ctx.connects[*i], uuid, member).await
                }
                (Target::StoragePool(i, uuid), STORAGE_POOL_IFACE) => {
                    super::storage::pool_call(ctx, call, &ctx.connects[*i], uuid, member).await
                }
                (Target::StorageVol(i, key), STORAGE_VOL_IFACE) => {
                    super::storage::vol_call(ctx, call, &ctx.connects[*i], key, member).await
                }
                _ => Err(no_interface(&iface, path)),
            }
        }
    }
}

fn no_interface(iface: &str, path: &str) -> CompatError {
    CompatError::Standard(
        "UnknownMethod",
        format!("No such interface “{iface}” on object at path {path}"),
    )
}

/// GDBus's check of the arguments against the interface.
pub(super) fn check_signature(call: &Call, want: &str) -> Reply<()> {
    let got = call.header().signature().to_string_no_parens();
    if got == want {
        Ok(())
    } else {
        Err(CompatError::invalid_args(format!(
            "Type of message, “({got})”, does not match expected type “({want})”"
        )))
    }
}

fn peer(call: &Call, member: &str) -> Reply<Message> {
    match member {
        "Ping" => call.reply_empty(),
        "GetMachineId" => {
            let id = crate::util::machine_id().ok_or_else(|| {
                CompatError::Standard("Failed", "this host has no machine id".into())
            })?;
            call.reply(&id)
        }
        m => Err(CompatError::unknown_method(m)),
    }
}

/// libvirt's "no such domain" for a domain addressed by UUID, in the driver's words.
pub(super) fn no_domain_uuid(c: &Connect, uuid: &uuid::Uuid) -> CompatError {
    match c.flavor {
        Flavor::Test => libvirt(Code::NoDomain, None),
        Flavor::Qemu | Flavor::Lxc => libvirt(
            Code::NoDomain,
            Some(&format!("no domain with matching uuid '{uuid}'")),
        ),
    }
}

async fn introspect(ctx: &Ctx, call: &Call, target: &Target) -> Reply<Message> {
    let mut xml = String::from(
        "<!DOCTYPE node PUBLIC \"-//freedesktop//DTD D-BUS Object Introspection 1.0//EN\"\n \
         \"http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd\">\n<node>\n",
    );
    let mut children: Vec<String> = Vec::new();
    let iface = |xml: &mut String, i: &Interface| {
        xml.push_str(STANDARD_XML);
        let _ = writeln!(xml, "  {}", i.xml);
    };
    match target {
        Target::Ancestor => {
            let path = call
                .header()
                .path()
                .map(|p| p.to_string())
                .unwrap_or_default();
            match path.as_str() {
                "/" => children.push("org".into()),
                "/org" => children.push("libvirt".into()),
                _ => children.extend(
                    ctx.paths
                        .iter()
                        .filter_map(|p| p.rsplit('/').next().map(str::to_owned)),
                ),
            }
        }
        Target::Connect(_) => {
            iface(&mut xml, &ctx.schema.connect);
            children.extend(
                [
                    "domain",
                    "domainsnapshot",
                    "interface",
                    "network",
                    "nodedev",
                    "storagepool",
                    "storagevol",
                ]
                .map(str::to_owned),
            );
        }
        Target::Dir(i, dir @ (Dir::Interfaces | Dir::NodeDevices)) => {
            let c = &ctx.connects[*i];
            let devices = *dir == Dir::NodeDevices;
            let op = if devices {
                Operation::ReadNodeDevices
            } else {
                Operation::ReadHostInterfaces
            };
            if ctx.authorize(call, op, &Details::default()).await.is_ok() {
                children = super::hostdev::children(c, devices);
            }
        }
        Target::Dir(i, Dir::Networks) => {
            children = super::network::children(ctx, call, &ctx.connects[*i]).await;
        }
        Target::Dir(i, dir @ (Dir::StoragePools | Dir::StorageVols)) => {
            let vols = *dir == Dir::StorageVols;
            children = super::storage::children(ctx, call, &ctx.connects[*i], vols).await;
        }
        Target::Dir(i, dir) => {
            let c = &ctx.connects[*i];
            for dom in c.core.domains() {
                if !c.shows(&dom) {
                    continue;
                }
                let info = dom.info();
                if !ctx.may_read(call, &info).await {
                    continue;
                }
                match dir {
                    Dir::Domains => {
                        let p = c.domain_path(&info.uuid);
                        children.push(p.rsplit('/').next().unwrap_or_default().to_owned());
                    }
                    Dir::Snapshots => {
                        let names = c
                            .core
                            .snapshot_list(&dom, Default::default())
                            .unwrap_or_default();
                        for n in names {
                            let p = c.snapshot_path(&info.uuid, &n);
                            children.push(p.rsplit('/').next().unwrap_or_default().to_owned());
                        }
                    }
                    Dir::Interfaces
                    | Dir::NodeDevices
                    | Dir::Networks
                    | Dir::StoragePools
                    | Dir::StorageVols => {}
                }
            }
            children.sort();
        }
        // As libvirt-dbus, any path under `domain` and `domainsnapshot` introspects as its
        // interface, whether or not its object exists (calls then say it does not).
        Target::Domain(i, uuid) => {
            let c = &ctx.connects[*i];
            if let Some(dom) = c.domain(uuid) {
                ctx.authorize_domain(call, Operation::ReadDomain, &dom.info())
                    .await?;
            }
            iface(&mut xml, &ctx.schema.domain);
        }
        Target::BadDomain(_) => iface(&mut xml, &ctx.schema.domain),
        Target::Snapshot(i, uuid, name) => {
            let c = &ctx.connects[*i];
            if let Some(dom) = c.domain(uuid) {
                let details = Details::snapshot(&dom.info(), name);
                ctx.authorize(call, Operation::ReadDomain, &details).await?;
            }
            iface(&mut xml, &ctx.schema.snapshot);
        }
        // Likewise for interfaces and node devices.
        Target::Interface(..) => iface(&mut xml, &ctx.schema.interface),
        Target::NodeDevice(..) => iface(&mut xml, &ctx.schema.nodedev),
        Target::Network(..) => iface(&mut xml, &ctx.schema.network),
        Target::StoragePool(..) => iface(&mut xml, &ctx.schema.storage_pool),
        Target::StorageVol(..) => iface(&mut xml, &ctx.schema.storage_vol),
        Target::Unknown => {}
    }
    for c in children {
        let _ = writeln!(xml, "  <node name=\"{c}\"/>");
    }
    xml.push_str("</node>\n");
    call.reply(&xml)
}
