//! The host's network interfaces and devices on the native API: the Manager's listings,
//! the objects' properties and XML (the same as `virtbus::host`'s readers give, which
//! tests/hostdev holds to libvirt), introspection and the ObjectManager.

use std::collections::HashMap;

use zbus::{OwnedObjectPath, OwnedVariant, Variant};

use crate::support::*;
use virtbus::host::{interfaces, nodedev};

const HOST_INTERFACE: &str = "org.virtbus1.HostInterface";
const NODE_DEVICE: &str = "org.virtbus1.NodeDevice";

async fn call<B, R>(
    conn: &zbus::Connection,
    path: &str,
    iface: &str,
    method: &str,
    body: &B,
) -> zbus::Result<R>
where
    B: serde::Serialize + zbus::zvariant::DynamicType,
    R: for<'d> serde::Deserialize<'d> + zbus::zvariant::Type,
{
    let reply = conn
        .call_method(Some(NAME), path, Some(iface), method, body)
        .await?;
    reply.body().deserialize::<R>()
}

async fn props(conn: &zbus::Connection, path: &str, iface: &str) -> HashMap<String, OwnedVariant> {
    call(
        conn,
        path,
        "org.freedesktop.DBus.Properties",
        "GetAll",
        &(iface,),
    )
    .await
    .expect("GetAll")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interfaces_and_devices_as_the_readers_give_them() {
    let bus = Bus::start();
    let _d = Daemon::start(&bus).await;
    let conn = bus.connect().await;
    let mgr = "org.virtbus1.Manager";

    // Interfaces: the same names, properties and XML as the reader's.
    let listed: Vec<OwnedObjectPath> =
        call(&conn, MANAGER, mgr, "ListHostInterfaces", &(no_opts(),))
            .await
            .expect("ListHostInterfaces");
    let reader = interfaces::Reader::host().expect("reader");
    let want = reader.list(interfaces::Filter::default());
    assert_eq!(listed.len(), want.len(), "{listed:?}");
    for (path, i) in listed.iter().zip(&want) {
        let p = props(&conn, path, HOST_INTERFACE).await;
        assert_eq!(String::try_from(p["Name"].clone()).unwrap(), i.name);
        assert_eq!(bool::try_from(p["Active"].clone()).unwrap(), i.active());
        assert_eq!(u32::try_from(p["MTU"].clone()).unwrap(), i.mtu);
        assert_eq!(String::try_from(p["Type"].clone()).unwrap(), i.kind_name());
        let xml: String = call(&conn, path, HOST_INTERFACE, "GetXML", &(no_opts(),))
            .await
            .expect("GetXML");
        assert_eq!(xml, i.to_xml(), "{path}");
    }
    let lo = OwnedObjectPath::try_from("/org/virtbus1/host/interface/lo").unwrap();
    assert!(listed.contains(&lo), "{listed:?}");
    let p = props(&conn, &lo, HOST_INTERFACE).await;
    let addrs: Vec<String> = p["Addresses"].clone().try_into().unwrap();
    assert!(addrs.contains(&"127.0.0.1/8".to_owned()), "{addrs:?}");
    // lo's operstate is "unknown": inactive, as libvirt counts it.
    let active: Vec<OwnedObjectPath> = call(
        &conn,
        MANAGER,
        mgr,
        "ListHostInterfaces",
        &(opts([("active", Variant::Bool(true))]),),
    )
    .await
    .expect("active");
    assert!(!active.contains(&lo));
    let r: zbus::Result<String> = call(
        &conn,
        "/org/virtbus1/host/interface/nope0",
        HOST_INTERFACE,
        "GetXML",
        &(no_opts(),),
    )
    .await;
    assert_eq!(error_name(&r), "org.virtbus1.Error.NotFound", "{r:?}");

    // Devices.
    let devs = nodedev::Reader::host().list();
    let listed: Vec<OwnedObjectPath> = call(&conn, MANAGER, mgr, "ListNodeDevices", &(no_opts(),))
        .await
        .expect("ListNodeDevices");
    assert_eq!(listed.len(), devs.len());
    for (path, d) in listed.iter().zip(&devs) {
        let p = props(&conn, path, NODE_DEVICE).await;
        assert_eq!(String::try_from(p["Name"].clone()).unwrap(), d.name);
        assert_eq!(
            String::try_from(p["Parent"].clone()).unwrap(),
            d.parent.clone().unwrap_or_default()
        );
        let caps: Vec<String> = p["Capabilities"].clone().try_into().unwrap();
        assert_eq!(caps, d.cap_names());
        let xml: String = call(&conn, path, NODE_DEVICE, "GetXML", &(no_opts(),))
            .await
            .expect("GetXML");
        assert_eq!(xml, d.to_xml(), "{path}");
    }
    let computer = OwnedObjectPath::try_from("/org/virtbus1/host/device/computer").unwrap();
    assert_eq!(listed[0], computer);
    let systems: Vec<OwnedObjectPath> = call(
        &conn,
        MANAGER,
        mgr,
        "ListNodeDevices",
        &(opts([("capabilities", Variant::from(vec!["system"]))]),),
    )
    .await
    .expect("system");
    assert_eq!(systems, std::slice::from_ref(&computer));
    let r: zbus::Result<Vec<OwnedObjectPath>> = call(
        &conn,
        MANAGER,
        mgr,
        "ListNodeDevices",
        &(opts([("capabilities", Variant::from(vec!["toaster"]))]),),
    )
    .await;
    assert_eq!(
        error_name(&r),
        "org.virtbus1.Error.InvalidArgument",
        "{r:?}"
    );
    assert!(error_message(&r).contains("toaster"), "{r:?}");

    // Introspection and the ObjectManager show them.
    let root: String = call(
        &conn,
        "/org/virtbus1/host/device",
        "org.freedesktop.DBus.Introspectable",
        "Introspect",
        &(),
    )
    .await
    .expect("Introspect");
    assert!(root.contains("<node name=\"computer\"/>"), "{root}");
    let one: String = call(
        &conn,
        &computer,
        "org.freedesktop.DBus.Introspectable",
        "Introspect",
        &(),
    )
    .await
    .expect("Introspect");
    assert!(
        one.contains("<interface name=\"org.virtbus1.NodeDevice\">"),
        "{one}"
    );
    type Managed = HashMap<OwnedObjectPath, HashMap<String, HashMap<String, OwnedVariant>>>;
    let objects: Managed = call(
        &conn,
        MANAGER,
        "org.freedesktop.DBus.ObjectManager",
        "GetManagedObjects",
        &(),
    )
    .await
    .expect("GetManagedObjects");
    assert!(objects[&computer].contains_key(NODE_DEVICE));
    assert!(objects[&lo].contains_key(HOST_INTERFACE));
    assert_eq!(objects[&lo][HOST_INTERFACE].len(), 7);
}
