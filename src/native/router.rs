//! Routes each method call of the native API to its handler by path and interface.

use std::future::Future;

use zbus::Message;

use super::{
    Call, Ctx,
    errors::{BusError, Reply},
    paths::{self, Target},
    schema::{
        DOMAIN_IFACE, HOST_INTERFACE_IFACE, MANAGER_IFACE, NETWORK_IFACE, NODE_DEVICE_IFACE,
        POOL_IFACE, SNAPSHOT_IFACE, VOLUME_IFACE,
    },
};
use crate::core::{Error, error::Missing};
use crate::server::router::{Frontend, check_signature};

pub(super) const PEER: &str = "org.freedesktop.DBus.Peer";
pub(super) const INTROSPECTABLE: &str = "org.freedesktop.DBus.Introspectable";
pub(super) const PROPERTIES: &str = "org.freedesktop.DBus.Properties";
pub(super) const OBJECT_MANAGER: &str = "org.freedesktop.DBus.ObjectManager";

impl Frontend for Ctx {
    type Error = BusError;

    fn conn(&self) -> &zbus::Connection {
        &self.conn
    }

    fn dispatch(&self, call: &Call) -> impl Future<Output = Reply<Message>> + Send {
        dispatch(self, call)
    }

    fn error_reply(&self, call: &Call, e: &BusError) -> zbus::Result<Message> {
        error_reply(call, e)
    }

    fn interfaces(&self) -> Vec<&crate::server::schema::Interface> {
        vec![
            &self.schema.manager,
            &self.schema.domain,
            &self.schema.snapshot,
            &self.schema.host_interface,
            &self.schema.node_device,
            &self.schema.pool,
            &self.schema.volume,
            &self.schema.network,
        ]
    }
}

fn error_reply(call: &Call, e: &BusError) -> zbus::Result<Message> {
    let name = e.name();
    Message::error(&call.header(), name.as_str()).build(&(e.to_string(),))
}

async fn dispatch(ctx: &Ctx, call: &Call) -> Reply<Message> {
    let hdr = call.header();
    let path = hdr.path().map(|p| p.as_str()).unwrap_or("/");
    let member = hdr.member().map(|m| m.as_str()).unwrap_or_default();
    let target = paths::parse(path);
    // The interface field is optional; without it, the member names the interface.
    let iface = match hdr.interface() {
        Some(i) => i.as_str().to_owned(),
        None => implied_interface(ctx, &target, member).to_owned(),
    };
    if iface == PEER {
        return super::objects::peer(call, member);
    }
    if target == Target::Foreign || target == Target::Invalid {
        return Err(Error::NotFound(Missing::Object, format!("no object at path '{path}'")).into());
    }
    match iface.as_str() {
        INTROSPECTABLE if member == "Introspect" => {
            super::objects::introspect(ctx, call, &target).await
        }
        PROPERTIES => super::objects::properties(ctx, call, &target, member).await,
        OBJECT_MANAGER if target == Target::Manager && member == "GetManagedObjects" => {
            check_signature(call, "")?;
            super::objects::managed_objects(ctx, call).await
        }
        MANAGER_IFACE if target == Target::Manager => {
            check_method(ctx, call, &ctx.schema.manager, member)?;
            super::manager::call(ctx, call, member).await
        }
        DOMAIN_IFACE => {
            let Target::Domain(uuid) = target else {
                return Err(no_interface(&iface, path));
            };
            check_method(ctx, call, &ctx.schema.domain, member)?;
            let dom = super::objects::domain(ctx, &uuid, path)?;
            super::domain::call(ctx, call, &dom, member).await
        }
        SNAPSHOT_IFACE => {
            let Target::Snapshot(uuid, name) = &target else {
                return Err(no_interface(&iface, path));
            };
            check_method(ctx, call, &ctx.schema.snapshot, member)?;
            let dom = super::objects::domain(ctx, uuid, path)?;
            super::snapshot::call(ctx, call, &dom, name, member).await
        }
        HOST_INTERFACE_IFACE => {
            let Target::HostInterface(name) = &target else {
                return Err(no_interface(&iface, path));
            };
            check_method(ctx, call, &ctx.schema.host_interface, member)?;
            super::hostdev::interface_call(ctx, call, name, member).await
        }
        NODE_DEVICE_IFACE => {
            let Target::NodeDevice(name) = &target else {
                return Err(no_interface(&iface, path));
            };
            check_method(ctx, call, &ctx.schema.node_device, member)?;
            super::hostdev::device_call(ctx, call, name, member).await
        }
        POOL_IFACE => {
            let Target::Pool(name) = &target else {
                return Err(no_interface(&iface, path));
            };
            check_method(ctx, call, &ctx.schema.pool, member)?;
            super::storage::pool_call(ctx, call, name, member).await
        }
        VOLUME_IFACE => {
            let Target::Volume(pool, name) = &target else {
                return Err(no_interface(&iface, path));
            };
            check_method(ctx, call, &ctx.schema.volume, member)?;
            super::storage::volume_call(ctx, call, pool, name, member).await
        }
        NETWORK_IFACE => {
            let Target::Network(name) = &target else {
                return Err(no_interface(&iface, path));
            };
            check_method(ctx, call, &ctx.schema.network, member)?;
            super::network::call(ctx, call, name, member).await
        }
        _ => Err(no_interface(&iface, path)),
    }
}

fn no_interface(iface: &str, path: &str) -> BusError {
    BusError::Standard(
        "UnknownInterface",
        format!("object '{path}' has no interface '{iface}'"),
    )
}

fn implied_interface(ctx: &Ctx, target: &Target, member: &str) -> &'static str {
    let own = match target {
        Target::Manager => Some((&ctx.schema.manager, MANAGER_IFACE)),
        Target::Domain(_) => Some((&ctx.schema.domain, DOMAIN_IFACE)),
        Target::Snapshot(..) => Some((&ctx.schema.snapshot, SNAPSHOT_IFACE)),
        Target::HostInterface(_) => Some((&ctx.schema.host_interface, HOST_INTERFACE_IFACE)),
        Target::NodeDevice(_) => Some((&ctx.schema.node_device, NODE_DEVICE_IFACE)),
        Target::Pool(_) => Some((&ctx.schema.pool, POOL_IFACE)),
        Target::Volume(..) => Some((&ctx.schema.volume, VOLUME_IFACE)),
        Target::Network(_) => Some((&ctx.schema.network, NETWORK_IFACE)),
        _ => None,
    };
    match (own, member) {
        (Some((i, name)), m) if i.methods.contains_key(m) => name,
        (_, "Ping" | "GetMachineId") => PEER,
        (_, "Introspect") => INTROSPECTABLE,
        (_, "Get" | "GetAll" | "Set") => PROPERTIES,
        (_, "GetManagedObjects") => OBJECT_MANAGER,
        _ => "",
    }
}

/// The member must exist in `iface` and the body must have its declared signature.
fn check_method(
    _ctx: &Ctx,
    call: &Call,
    iface: &super::schema::Interface,
    member: &str,
) -> Reply<()> {
    let m = iface
        .methods
        .get(member)
        .ok_or_else(|| BusError::unknown_method(&iface.name, member))?;
    Ok(check_signature(call, &m.in_sig)?)
}
