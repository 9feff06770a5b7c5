//! `org.virtbus1.HostInterface` and `org.virtbus1.NodeDevice`: the host's network interfaces
//! and devices, read-only, each read afresh from the kernel when asked (they change under
//! virtbus's feet: cables, hot-plug), with the Manager's listings of them.

use zbus::{Message, ObjectPath, Variant};

use super::{
    Call, Ctx,
    authz::Details,
    errors::{BusError, Reply},
    options::{OptionMap, Options},
    paths,
    props::PropMap,
};
use crate::{
    core::{Error, hostdev, ops::Operation},
    host::{
        interfaces::{Filter, HostInterface},
        nodedev::{self, NodeDevice},
    },
};

/// The interface properties, in the order of the interface XML.
pub const INTERFACE_PROPS: &[&str] = &[
    "Name",
    "Type",
    "MAC",
    "Active",
    "MTU",
    "Addresses",
    "Bridge",
];

/// The node device properties, in the order of the interface XML.
pub const DEVICE_PROPS: &[&str] = &["Name", "Parent", "Capabilities", "Driver"];

pub fn interface_prop<'a>(i: &'a HostInterface, name: &str) -> Option<Variant<'a>> {
    Some(match name {
        "Name" => Variant::from(i.name.as_str()),
        "Type" => Variant::from(i.kind_name()),
        "MAC" => Variant::from(i.mac.as_deref().unwrap_or_default()),
        "Active" => Variant::Bool(i.active()),
        "MTU" => Variant::U32(i.mtu),
        "Addresses" => Variant::from(
            i.addresses
                .iter()
                .map(|a| format!("{}/{}", a.ip, a.prefix))
                .collect::<Vec<_>>(),
        ),
        "Bridge" => Variant::from(i.ports()),
        _ => return None,
    })
}

pub fn device_prop<'a>(d: &'a NodeDevice, name: &str) -> Option<Variant<'a>> {
    Some(match name {
        "Name" => Variant::from(d.name.as_str()),
        "Parent" => Variant::from(d.parent.as_deref().unwrap_or_default()),
        "Capabilities" => Variant::from(d.cap_names()),
        "Driver" => Variant::from(d.driver.as_deref().unwrap_or_default()),
        _ => return None,
    })
}

pub fn interface_props(i: &HostInterface) -> PropMap<'_> {
    INTERFACE_PROPS
        .iter()
        .filter_map(|n| interface_prop(i, n).map(|v| (*n, v)))
        .collect()
}

pub fn device_props(d: &NodeDevice) -> PropMap<'_> {
    DEVICE_PROPS
        .iter()
        .filter_map(|n| device_prop(d, n).map(|v| (*n, v)))
        .collect()
}

/// Authorize reading interfaces, then read the one named.
pub(super) async fn interface(ctx: &Ctx, call: &Call, name: &str) -> Reply<HostInterface> {
    ctx.authorize(call, Operation::ReadHostInterfaces, &Details::default())
        .await?;
    // Only listed interfaces have objects: a bridge port or tap is not one.
    hostdev::interfaces(Filter::default())?
        .into_iter()
        .find(|i| i.name == name)
        .ok_or_else(|| {
            Error::NotFound(
                crate::core::Missing::Interface,
                format!("no host interface '{name}'"),
            )
            .into()
        })
}

/// Authorize reading devices, then read the one named.
pub(super) async fn device(ctx: &Ctx, call: &Call, name: &str) -> Reply<NodeDevice> {
    ctx.authorize(call, Operation::ReadNodeDevices, &Details::default())
        .await?;
    Ok(hostdev::node_device(name)?)
}

/// Both host objects have one method, `GetXML` without options: refuse any other call.
fn check_get_xml(call: &Call, member: &str, iface: &str) -> Reply<()> {
    if member != "GetXML" {
        return Err(BusError::unknown_method(iface, member));
    }
    let body = call.msg.body();
    let opts: OptionMap = body.deserialize()?;
    Options::new("GetXML", opts).finish()?;
    Ok(())
}

pub(super) async fn interface_call(
    ctx: &Ctx,
    call: &Call,
    name: &str,
    member: &str,
) -> Reply<Message> {
    check_get_xml(call, member, super::schema::HOST_INTERFACE_IFACE)?;
    call.reply(&interface(ctx, call, name).await?.to_xml())
}

pub(super) async fn device_call(
    ctx: &Ctx,
    call: &Call,
    name: &str,
    member: &str,
) -> Reply<Message> {
    check_get_xml(call, member, super::schema::NODE_DEVICE_IFACE)?;
    call.reply(&device(ctx, call, name).await?.to_xml())
}

/// Manager.ListHostInterfaces.
pub(super) async fn list_interfaces(ctx: &Ctx, call: &Call) -> Reply<Message> {
    let body = call.msg.body();
    let mut o = Options::new("ListHostInterfaces", body.deserialize()?);
    let filter = Filter {
        active: o.bool("active")?,
        inactive: o.bool("inactive")?,
    };
    o.finish()?;
    ctx.authorize(call, Operation::ReadHostInterfaces, &Details::default())
        .await?;
    let paths: Vec<ObjectPath<'_>> = hostdev::interfaces(filter)?
        .iter()
        .map(|i| ObjectPath::from_string_unchecked(paths::host_interface(&i.name)))
        .collect();
    call.reply(&paths)
}

/// Manager.ListNodeDevices.
pub(super) async fn list_devices(ctx: &Ctx, call: &Call) -> Reply<Message> {
    let body = call.msg.body();
    let mut o = Options::new("ListNodeDevices", body.deserialize()?);
    let caps = o.strings("capabilities")?;
    o.finish()?;
    let mut flags = 0;
    for c in &caps {
        flags |= hostdev::cap_flag(c).map_err(|_| {
            Error::InvalidArgument(format!(
                "option 'capabilities': unknown capability '{c}' (one of {})",
                nodedev::CAP_FLAGS.join(", ")
            ))
        })?;
    }
    ctx.authorize(call, Operation::ReadNodeDevices, &Details::default())
        .await?;
    let paths: Vec<ObjectPath<'_>> = hostdev::node_devices(flags)?
        .iter()
        .map(|d| ObjectPath::from_string_unchecked(paths::node_device(&d.name)))
        .collect();
    call.reply(&paths)
}

/// The host's objects for GetManagedObjects and introspection, when the caller may read
/// them (none otherwise, as domains the caller may not read are left out).
pub(super) async fn readable_objects(
    ctx: &Ctx,
    call: &Call,
) -> (Vec<HostInterface>, Vec<NodeDevice>) {
    let ifaces = match ctx
        .authorize(call, Operation::ReadHostInterfaces, &Details::default())
        .await
    {
        Ok(()) => hostdev::interfaces(Filter::default()).unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let devs = match ctx
        .authorize(call, Operation::ReadNodeDevices, &Details::default())
        .await
    {
        Ok(()) => hostdev::node_devices(0).unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    (ifaces, devs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::native::schema::Schema;

    #[test]
    fn props_match_the_interface_xml() {
        let schema = Schema::load().expect("schema");
        let reader = crate::host::interfaces::Reader::new(std::path::Path::new("/sys"), vec![]);
        let lo = reader.read("lo").expect("lo");
        let names: Vec<&str> = schema
            .host_interface
            .properties
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        assert_eq!(names, INTERFACE_PROPS);
        for (name, p) in &schema.host_interface.properties {
            let v = interface_prop(&lo, name).expect(name);
            assert_eq!(v.value_signature().to_string(), p.sig, "{name}");
        }
        let dev = crate::host::nodedev::Reader::host().list().remove(0);
        let names: Vec<&str> = schema
            .node_device
            .properties
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        assert_eq!(names, DEVICE_PROPS);
        for (name, p) in &schema.node_device.properties {
            let v = device_prop(&dev, name).expect(name);
            assert_eq!(v.value_signature().to_string(), p.sig, "{name}");
        }
    }
}
