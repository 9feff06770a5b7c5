//! Properties of the Connect and Domain objects, as libvirt-dbus serves them: `Get` returns
//! the value; `GetAll` wraps each value in a second variant (libvirt-dbus does, and its
//! clients, Cockpit among them, read `value.v.v`) and leaves out what cannot be read.

use uuid::Uuid;
use zbus::{Message, Variant};

use super::{
    Connect, Ctx, LIB_VERSION,
    errors::{CompatError, Reply, from_exec},
    flags::{self, Flavor},
    hostdev,
    objects::{check_signature, no_domain_uuid},
    paths::Target,
    schema::{
        CONNECT_IFACE, DOMAIN_IFACE, INTERFACE_IFACE, NETWORK_IFACE, NODEDEV_IFACE, SNAPSHOT_IFACE,
        STORAGE_POOL_IFACE, STORAGE_VOL_IFACE,
    },
};
use crate::core::ops::{self, Operation};
use crate::server::{Call, authz::Details, dict::Dict};

pub(super) const CONNECT_PROPS: &[&str] =
    &["Encrypted", "Hostname", "LibVersion", "Secure", "Version"];
pub(super) const DOMAIN_PROPS: &[&str] = &[
    "Active",
    "Autostart",
    "Id",
    "Name",
    "OSType",
    "Persistent",
    "SchedulerType",
    "Updated",
    "UUID",
];

/// A Connect property.
pub(super) fn connect_prop(c: &Connect, name: &str) -> Option<Variant<'static>> {
    Some(match name {
        // libvirt-dbus reports virConnectIsEncrypted for both: the bus is not encrypted.
        "Encrypted" | "Secure" => Variant::Bool(false),
        "Hostname" => Variant::from(crate::server::hostname::read()),
        "LibVersion" => Variant::U64(LIB_VERSION),
        "Version" => Variant::U64(c.core.hypervisor_version(&c.types)),
        _ => return None,
    })
}

/// A Domain property, or the libvirt error reading it.
pub(super) fn domain_prop(
    c: &Connect,
    dom: &crate::core::Domain,
    info: &crate::core::DomainInfo,
    name: &str,
) -> Option<Reply<Variant<'static>>> {
    Some(Ok(match name {
        "Active" => Variant::Bool(info.status.is_active()),
        "Autostart" => Variant::Bool(info.autostart),
        // libvirt-dbus reports 0 for an inactive domain's id of -1.
        "Id" => Variant::U32(info.id.unwrap_or(0)),
        "Name" => Variant::from(info.name.clone()),
        "OSType" => Variant::from(match c.flavor {
            // libvirt's test driver names every guest's OS so.
            Flavor::Test => "linux",
            Flavor::Qemu | Flavor::Lxc => dom.os_type(),
        }),
        "Persistent" => Variant::Bool(info.persistent),
        // libvirt's test driver names a "fair" scheduler with one parameter; QEMU guests
        // run under the host's POSIX scheduler, with no parameters virtbus tunes (yet).
        "SchedulerType" => Variant::from(match c.flavor {
            Flavor::Test => ("fair".to_owned(), 1i32),
            Flavor::Qemu | Flavor::Lxc => ("posix".to_owned(), 0i32),
        }),
        // libvirt never sets it (its drivers keep no such flag).
        "Updated" => Variant::Bool(false),
        "UUID" => Variant::from(info.uuid.to_string()),
        _ => return None,
    }))
}

fn unknown_interface(iface: &str) -> CompatError {
    CompatError::invalid_args(format!("No such interface “{iface}”"))
}

fn unknown_property(name: &str) -> CompatError {
    CompatError::invalid_args(format!("No such property “{name}”"))
}

pub(super) async fn call(ctx: &Ctx, call: &Call, target: &Target, member: &str) -> Reply<Message> {
    let body = call.msg.body();
    match member {
        "Get" => {
            check_signature(call, "ss")?;
            let (iface, name): (String, String) = body.deserialize()?;
            let value = get(ctx, call, target, &iface, &name).await?;
            call.reply(&value)
        }
        "GetAll" => {
            check_signature(call, "s")?;
            let iface: String = body.deserialize()?;
            get_all(ctx, call, target, &iface).await
        }
        "Set" => {
            check_signature(call, "ssv")?;
            let (iface, name, value): (String, String, Variant<'_>) = body.deserialize()?;
            set(ctx, call, target, &iface, &name, value).await
        }
        m => Err(CompatError::unknown_method(m)),
    }
}

fn domain_of(c: &Connect, uuid: &Uuid) -> Reply<std::sync::Arc<crate::core::Domain>> {
    c.domain(uuid).ok_or_else(|| no_domain_uuid(c, uuid))
}

async fn get(
    ctx: &Ctx,
    call: &Call,
    target: &Target,
    iface: &str,
    name: &str,
) -> Reply<Variant<'static>> {
    match (target, iface) {
        (Target::Connect(i), CONNECT_IFACE) => {
            let c = &ctx.connects[*i];
            let v = connect_prop(c, name).ok_or_else(|| unknown_property(name))?;
            ctx.authorize(call, Operation::ReadHost, &Details::default())
                .await?;
            Ok(v)
        }
        (Target::Domain(i, uuid), DOMAIN_IFACE) => {
            let c = &ctx.connects[*i];
            if !DOMAIN_PROPS.contains(&name) {
                return Err(unknown_property(name));
            }
            let dom = domain_of(c, uuid)?;
            let info = dom.info();
            ctx.authorize_domain(call, Operation::ReadDomain, &info)
                .await?;
            domain_prop(c, &dom, &info, name).unwrap_or_else(|| Err(unknown_property(name)))
        }
        (Target::BadDomain(_), DOMAIN_IFACE) if DOMAIN_PROPS.contains(&name) => {
            Err(super::errors::bare("Invalid UUID".into()))
        }
        (Target::Snapshot(..), SNAPSHOT_IFACE) => Err(unknown_property(name)),
        (Target::Interface(i, mac), INTERFACE_IFACE) => {
            hostdev::interface_get(ctx, call, &ctx.connects[*i], mac, name)
                .await?
                .ok_or_else(|| unknown_property(name))
        }
        (Target::NodeDevice(i, dev), NODEDEV_IFACE) => {
            hostdev::nodedev_get(ctx, call, &ctx.connects[*i], dev, name)
                .await?
                .ok_or_else(|| unknown_property(name))
        }
        (Target::Network(i, uuid), NETWORK_IFACE) => {
            super::network::get(ctx, call, &ctx.connects[*i], uuid, name)
                .await?
                .ok_or_else(|| unknown_property(name))
        }
        (Target::StoragePool(i, uuid), STORAGE_POOL_IFACE) => {
            super::storage::pool_get(ctx, call, &ctx.connects[*i], uuid, name)
                .await?
                .ok_or_else(|| unknown_property(name))
        }
        (Target::StorageVol(i, key), STORAGE_VOL_IFACE) => {
            super::storage::vol_get(ctx, call, &ctx.connects[*i], key, name)
                .await?
                .ok_or_else(|| unknown_property(name))
        }
        _ => Err(unknown_interface(iface)),
    }
}

async fn get_all(ctx: &Ctx, call: &Call, target: &Target, iface: &str) -> Reply<Message> {
    // Each value in a variant of its own, as libvirt-dbus sends them.
    let wrap = |v: Variant<'static>| Variant::Variant(Box::new(v));
    let mut out: Dict<&str, Variant<'static>> = Dict::new();
    match (target, iface) {
        (Target::Connect(i), CONNECT_IFACE) => {
            ctx.authorize(call, Operation::ReadHost, &Details::default())
                .await?;
            let c = &ctx.connects[*i];
            for n in CONNECT_PROPS {
                if let Some(v) = connect_prop(c, n) {
                    out.push(n, wrap(v));
                }
            }
        }
        (Target::Domain(i, uuid), DOMAIN_IFACE) => {
            let c = &ctx.connects[*i];
            // A domain that is gone has no property left to read: an empty answer.
            if let Some(dom) = c.domain(uuid) {
                let info = dom.info();
                ctx.authorize_domain(call, Operation::ReadDomain, &info)
                    .await?;
                for n in DOMAIN_PROPS {
                    if let Some(Ok(v)) = domain_prop(c, &dom, &info, n) {
                        out.push(n, wrap(v));
                    }
                }
            }
        }
        (Target::BadDomain(_), DOMAIN_IFACE) | (Target::Snapshot(..), SNAPSHOT_IFACE) => {}
        (Target::Interface(i, mac), INTERFACE_IFACE) => {
            hostdev::interface_get_all(ctx, call, &ctx.connects[*i], mac, &mut out).await?
        }
        (Target::NodeDevice(i, dev), NODEDEV_IFACE) => {
            hostdev::nodedev_get_all(ctx, call, &ctx.connects[*i], dev, &mut out).await?
        }
        (Target::Network(i, uuid), NETWORK_IFACE) => {
            super::network::get_all(ctx, call, &ctx.connects[*i], uuid, &mut out).await?
        }
        (Target::StoragePool(i, uuid), STORAGE_POOL_IFACE) => {
            super::storage::pool_get_all(ctx, call, &ctx.connects[*i], uuid, &mut out).await?
        }
        (Target::StorageVol(i, key), STORAGE_VOL_IFACE) => {
            super::storage::vol_get_all(ctx, call, &ctx.connects[*i], key, &mut out).await?
        }
        _ => return Err(unknown_interface(iface)),
    }
    call.reply(&out)
}

async fn set(
    ctx: &Ctx,
    call: &Call,
    target: &Target,
    iface: &str,
    name: &str,
    value: Variant<'_>,
) -> Reply<Message> {
    let known = match (target, iface) {
        (Target::Connect(_), CONNECT_IFACE) => CONNECT_PROPS.contains(&name),
        (Target::Domain(..) | Target::BadDomain(_), DOMAIN_IFACE) => DOMAIN_PROPS.contains(&name),
        (Target::Snapshot(..), SNAPSHOT_IFACE) => false,
        (Target::Interface(..), INTERFACE_IFACE) => hostdev::INTERFACE_PROPS.contains(&name),
        (Target::NodeDevice(..), NODEDEV_IFACE) => hostdev::NODEDEV_PROPS.contains(&name),
        (Target::Network(..), NETWORK_IFACE) => super::network::NETWORK_PROPS.contains(&name),
        (Target::StoragePool(..), STORAGE_POOL_IFACE) => super::storage::POOL_PROPS.contains(&name),
        (Target::StorageVol(..), STORAGE_VOL_IFACE) => super::storage::VOL_PROPS.contains(&name),
        _ => return Err(unknown_interface(iface)),
    };
    if !known {
        return Err(unknown_property(name));
    }
    if name != "Autostart" {
        return Err(CompatError::invalid_args(format!(
            "Property “{name}” is not writable"
        )));
    }
    let value = match value {
        Variant::Variant(inner) => *inner,
        v => v,
    };
    let Variant::Bool(on) = value else {
        return Err(CompatError::invalid_args(format!(
            "Error setting property “{name}”: Expected type “b” but got “{}”",
            value.value_signature()
        )));
    };
    let (i, uuid) = match target {
        Target::Domain(i, uuid) => (*i, uuid),
        Target::Network(i, uuid) => {
            let c = &ctx.connects[*i];
            super::network::set_autostart(ctx, call, c, uuid, on).await?;
            return call.reply_empty();
        }
        Target::StoragePool(i, uuid) => {
            let c = &ctx.connects[*i];
            super::storage::set_autostart(ctx, call, c, uuid, on).await?;
            return call.reply_empty();
        }
        _ => return Err(super::errors::bare("Invalid UUID".into())),
    };
    let c = &ctx.connects[i];
    let dom = domain_of(c, uuid)?;
    c.exec(ctx)
        .run(call, &dom, ops::SetAutostart { autostart: on })
        .await
        .map_err(|e| from_exec(e, c.flavor, &flags::SET_AUTOSTART))?;
    call.reply_empty()
}

/// Push each of `names` that `get` answers, wrapped as `GetAll` sends it (a variant per value).
pub(super) fn push_props<'a>(
    out: &mut Dict<&'a str, Variant<'static>>,
    names: &[&'a str],
    get: impl Fn(&str) -> Option<Variant<'static>>,
) {
    for n in names {
        if let Some(v) = get(n) {
            out.push(n, Variant::Variant(Box::new(v)));
        }
    }
}
