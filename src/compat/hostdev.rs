//! `org.libvirt.Interface` and `org.libvirt.NodeDevice`, with the Connect methods that list
//! and find them, as libvirt-dbus 1.4.1 serves them: on `/org/libvirt/QEMU` the real host
//! (libvirt's udev interface backend and node-device driver, see [`crate::host`]); on
//! `/org/libvirt/Test` the fixed ones of `test:///default` ([`super::fixture`]).
//!
//! Both are read-only in virtbus: creating, destroying or undefining an interface and
//! detaching, re-attaching, resetting or destroying a node device are refused as libvirt
//! refuses what a driver does not implement.

use zbus::{Message, ObjectPath, Variant};

use super::{
    Connect, Ctx,
    errors::{Code, CompatError, Reply, bare, from_core, libvirt, no_support},
    fixture::{TEST_DEVICES, TEST_INTERFACE},
    flags::{self, Flavor},
    paths,
};
use crate::{
    core::{hostdev, ops::Operation},
    host::{interfaces::Filter, nodedev},
    server::{Call, authz::Details, dict::Dict},
};

pub(super) const INTERFACE_PROPS: &[&str] = &["Active", "MAC", "Name"];
pub(super) const NODEDEV_PROPS: &[&str] = &["Name", "Parent"];

/// An interface as the facade shows it.
pub(super) struct Iface {
    name: String,
    mac: String,
    active: bool,
    xml: String,
}

/// A node device as the facade shows it.
pub(super) struct Dev {
    name: String,
    parent: Option<String>,
    caps: Vec<String>,
    filter_caps: Vec<String>,
    xml: String,
}

const INTERFACES_INACTIVE: u32 = 1;
const INTERFACES_ACTIVE: u32 = 2;

/// The driver function libvirt names in flag errors, by connect.
fn driver_fn(flavor: Flavor, test: &'static str, host: &'static str) -> &'static str {
    match flavor {
        Flavor::Test => test,
        Flavor::Qemu | Flavor::Lxc => host,
    }
}

fn check_flags(flags: u32, known: u32, func: &str) -> Reply<()> {
    let bad = flags & !known;
    if bad != 0 {
        return Err(bare(format!(
            "unsupported flags (0x{bad:x}) in function {func}"
        )));
    }
    Ok(())
}

fn core_err(e: crate::core::Error) -> CompatError {
    from_core(e, Flavor::Qemu, &flags::GET_SYSINFO)
}

fn interfaces(c: &Connect, filter: Filter) -> Reply<Vec<Iface>> {
    Ok(match c.flavor {
        Flavor::Test => {
            let t = &TEST_INTERFACE;
            let wanted = (!filter.active && !filter.inactive)
                || (filter.active && t.active)
                || (filter.inactive && !t.active);
            wanted
                .then(|| Iface {
                    name: t.name.into(),
                    mac: t.mac.into(),
                    active: t.active,
                    xml: t.xml.into(),
                })
                .into_iter()
                .collect()
        }
        Flavor::Qemu | Flavor::Lxc => hostdev::interfaces(filter)
            .map_err(core_err)?
            .into_iter()
            .map(|i| Iface {
                active: i.active(),
                mac: i.mac.clone().unwrap_or_default(),
                xml: i.to_xml(),
                name: i.name,
            })
            .collect(),
    })
}

fn devices(c: &Connect) -> Reply<Vec<Dev>> {
    Ok(match c.flavor {
        Flavor::Test => TEST_DEVICES
            .iter()
            .map(|d| Dev {
                name: d.name.into(),
                parent: d.parent.map(str::to_owned),
                caps: d.caps.iter().map(|s| (*s).to_owned()).collect(),
                filter_caps: d.filter_caps.iter().map(|s| (*s).to_owned()).collect(),
                xml: d.xml.into(),
            })
            .collect(),
        Flavor::Qemu | Flavor::Lxc => hostdev::node_devices(0)
            .map_err(core_err)?
            .into_iter()
            .map(|d| Dev {
                caps: d.cap_names(),
                filter_caps: d.cap_names(),
                xml: d.to_xml(),
                parent: d.parent,
                name: d.name,
            })
            .collect(),
    })
}

fn no_interface(what: &str, value: &str) -> CompatError {
    libvirt(
        Code::NoInterface,
        Some(&format!("no interface with matching {what} '{value}'")),
    )
}

fn no_device(name: &str) -> CompatError {
    libvirt(
        Code::NoNodeDevice,
        Some(&format!("no node device with matching name '{name}'")),
    )
}

fn interface_by_mac(c: &Connect, mac: &str) -> Reply<Iface> {
    interfaces(c, Filter::default())?
        .into_iter()
        .find(|i| i.mac.eq_ignore_ascii_case(mac))
        .ok_or_else(|| no_interface("mac", mac))
}

fn device(c: &Connect, name: &str) -> Reply<Dev> {
    devices(c)?
        .into_iter()
        .find(|d| d.name == name)
        .ok_or_else(|| no_device(name))
}

async fn read_interfaces(ctx: &Ctx, call: &Call) -> Reply<()> {
    ctx.authorize(call, Operation::ReadHostInterfaces, &Details::default())
        .await
}

async fn read_devices(ctx: &Ctx, call: &Call) -> Reply<()> {
    ctx.authorize(call, Operation::ReadNodeDevices, &Details::default())
        .await
}

/// The Connect methods about interfaces and node devices.
pub(super) async fn connect_call(
    ctx: &Ctx,
    call: &Call,
    c: &Connect,
    member: &str,
) -> Reply<Message> {
    let body = call.msg.body();
    match member {
        "ListInterfaces" => {
            let flags: u32 = body.deserialize()?;
            let func = driver_fn(
                c.flavor,
                "testConnectListAllInterfaces",
                "udevConnectListAllInterfaces",
            );
            check_flags(flags, INTERFACES_ACTIVE | INTERFACES_INACTIVE, func)?;
            read_interfaces(ctx, call).await?;
            let filter = Filter {
                active: flags & INTERFACES_ACTIVE != 0,
                inactive: flags & INTERFACES_INACTIVE != 0,
            };
            let paths: Vec<ObjectPath<'_>> = interfaces(c, filter)?
                .iter()
                .map(|i| ObjectPath::from_string_unchecked(paths::interface(c.path, &i.mac)))
                .collect();
            call.reply(&paths)
        }
        "ListNodeDevices" => {
            let flags: u32 = body.deserialize()?;
            const ACTIVE: u32 = 1 << 31;
            const INACTIVE: u32 = 1 << 30;
            let (known, func) = match c.flavor {
                Flavor::Test => (nodedev::CAP_FLAG_MASK, "testConnectListAllNodeDevices"),
                Flavor::Qemu | Flavor::Lxc => (
                    nodedev::CAP_FLAG_MASK | ACTIVE | INACTIVE,
                    "nodeConnectListAllNodeDevices",
                ),
            };
            check_flags(flags, known, func)?;
            read_devices(ctx, call).await?;
            // Every device is active: asking only for inactive ones finds none.
            let none = flags & INACTIVE != 0 && flags & ACTIVE == 0;
            let paths: Vec<ObjectPath<'_>> = devices(c)?
                .iter()
                .filter(|d| !none && nodedev::caps_match(&d.filter_caps, flags))
                .map(|d| ObjectPath::from_string_unchecked(paths::nodedev(c.path, &d.name)))
                .collect();
            call.reply(&paths)
        }
        "InterfaceLookupByName" => {
            let name: String = body.deserialize()?;
            read_interfaces(ctx, call).await?;
            let found = interfaces(c, Filter::default())?
                .into_iter()
                .find(|i| i.name == name);
            // Any net device is found by name, bridge ports included (as libvirt's udev
            // backend finds them); the test driver knows only its own.
            let mac = match (found, c.flavor) {
                (Some(i), _) => i.mac,
                (None, Flavor::Qemu | Flavor::Lxc) => hostdev::interface(&name)
                    .map_err(core_err)?
                    .mac
                    .unwrap_or_default(),
                (None, Flavor::Test) => return Err(no_interface("name", &name)),
            };
            call.reply(&ObjectPath::from_string_unchecked(paths::interface(
                c.path, &mac,
            )))
        }
        "InterfaceLookupByMAC" => {
            let mac: String = body.deserialize()?;
            read_interfaces(ctx, call).await?;
            interface_by_mac(c, &mac)?;
            // libvirt-dbus names the object after the address as the caller spelled it.
            call.reply(&ObjectPath::from_string_unchecked(paths::interface(
                c.path, &mac,
            )))
        }
        "NodeDeviceLookupByName" => {
            let name: String = body.deserialize()?;
            read_devices(ctx, call).await?;
            device(c, &name)?;
            call.reply(&ObjectPath::from_string_unchecked(paths::nodedev(
                c.path, &name,
            )))
        }
        m => Err(no_support(m)),
    }
}

/// `org.libvirt.Interface`'s methods on the interface with address `mac`.
pub(super) async fn interface_call(
    ctx: &Ctx,
    call: &Call,
    c: &Connect,
    mac: &str,
    member: &str,
) -> Reply<Message> {
    let body = call.msg.body();
    read_interfaces(ctx, call).await?;
    let iface = interface_by_mac(c, mac)?;
    match member {
        "GetXMLDesc" => {
            let flags: u32 = body.deserialize()?;
            let (known, func) = match c.flavor {
                Flavor::Test => (0, "testInterfaceGetXMLDesc"),
                // VIR_INTERFACE_XML_INACTIVE: the same description (nothing is configured).
                Flavor::Qemu | Flavor::Lxc => (1, "udevInterfaceGetXMLDesc"),
            };
            check_flags(flags, known, func)?;
            call.reply(&iface.xml)
        }
        "Create" => Err(no_support("virInterfaceCreate")),
        "Destroy" => Err(no_support("virInterfaceDestroy")),
        "Undefine" => Err(no_support("virInterfaceUndefine")),
        m => Err(no_support(m)),
    }
}

/// `org.libvirt.NodeDevice`'s methods on the device `name`.
pub(super) async fn nodedev_call(
    ctx: &Ctx,
    call: &Call,
    c: &Connect,
    name: &str,
    member: &str,
) -> Reply<Message> {
    let body = call.msg.body();
    read_devices(ctx, call).await?;
    let dev = device(c, name)?;
    match member {
        "GetXMLDesc" => {
            let flags: u32 = body.deserialize()?;
            let func = driver_fn(c.flavor, "testNodeDeviceGetXMLDesc", "nodeDeviceGetXMLDesc");
            check_flags(flags, 0, func)?;
            call.reply(&dev.xml)
        }
        "ListCaps" => call.reply(&dev.caps),
        "Detach" => Err(no_support("virNodeDeviceDetachFlags")),
        "ReAttach" => Err(no_support("virNodeDeviceReAttach")),
        "Reset" => Err(no_support("virNodeDeviceReset")),
        "Destroy" => Err(no_support("virNodeDeviceDestroy")),
        m => Err(no_support(m)),
    }
}

fn interface_prop(i: &Iface, name: &str) -> Option<Variant<'static>> {
    Some(match name {
        "Active" => Variant::Bool(i.active),
        "MAC" => Variant::from(i.mac.clone()),
        "Name" => Variant::from(i.name.clone()),
        _ => return None,
    })
}

/// A node device property; `computer`'s Parent is libvirt's error.
fn nodedev_prop(d: &Dev, name: &str) -> Option<Reply<Variant<'static>>> {
    Some(match name {
        "Name" => Ok(Variant::from(d.name.clone())),
        "Parent" => match &d.parent {
            Some(p) => Ok(Variant::from(p.clone())),
            None => Err(libvirt(Code::Internal, Some("no parent for this device"))),
        },
        _ => return None,
    })
}

/// `Properties.Get` of an interface.
pub(super) async fn interface_get(
    ctx: &Ctx,
    call: &Call,
    c: &Connect,
    mac: &str,
    name: &str,
) -> Reply<Option<Variant<'static>>> {
    if !INTERFACE_PROPS.contains(&name) {
        return Ok(None);
    }
    read_interfaces(ctx, call).await?;
    Ok(interface_prop(&interface_by_mac(c, mac)?, name))
}

/// `Properties.Get` of a node device.
pub(super) async fn nodedev_get(
    ctx: &Ctx,
    call: &Call,
    c: &Connect,
    dev: &str,
    name: &str,
) -> Reply<Option<Variant<'static>>> {
    if !NODEDEV_PROPS.contains(&name) {
        return Ok(None);
    }
    read_devices(ctx, call).await?;
    nodedev_prop(&device(c, dev)?, name).transpose()
}

/// `Properties.GetAll` of an interface (empty when it is gone).
pub(super) async fn interface_get_all(
    ctx: &Ctx,
    call: &Call,
    c: &Connect,
    mac: &str,
    out: &mut Dict<&'static str, Variant<'static>>,
) -> Reply<()> {
    read_interfaces(ctx, call).await?;
    if let Ok(i) = interface_by_mac(c, mac) {
        super::props::push_props(out, INTERFACE_PROPS, |n| interface_prop(&i, n));
    }
    Ok(())
}

/// `Properties.GetAll` of a node device: what can be read (not `computer`'s Parent).
pub(super) async fn nodedev_get_all(
    ctx: &Ctx,
    call: &Call,
    c: &Connect,
    dev: &str,
    out: &mut Dict<&'static str, Variant<'static>>,
) -> Reply<()> {
    read_devices(ctx, call).await?;
    if let Ok(d) = device(c, dev) {
        for n in NODEDEV_PROPS {
            if let Some(Ok(v)) = nodedev_prop(&d, n) {
                out.push(n, Variant::Variant(Box::new(v)));
            }
        }
    }
    Ok(())
}

/// The last path elements of the objects under `<connect>/interface` or `/nodedev`.
pub(super) fn children(c: &Connect, devices_dir: bool) -> Vec<String> {
    let paths: Vec<String> = if devices_dir {
        devices(c)
            .unwrap_or_default()
            .iter()
            .map(|d| paths::nodedev(c.path, &d.name))
            .collect()
    } else {
        interfaces(c, Filter::default())
            .unwrap_or_default()
            .iter()
            .map(|i| paths::interface(c.path, &i.mac))
            .collect()
    };
    let mut out: Vec<String> = paths
        .iter()
        .filter_map(|p| p.rsplit('/').next().map(str::to_owned))
        .collect();
    out.sort();
    out
}
