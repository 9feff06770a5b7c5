//! libvirt-dbus's org.libvirt.Network on the facade (`--libvirt-compat`), over the same
//! network driver as the native API; the daemon runs in a network namespace of the test's
//! own, so the bridge and dnsmasq it starts never touch the host's.

use std::collections::HashMap;
use std::pin::Pin;
use std::time::Duration;

use futures_util::Stream;
use zbus::{
    MatchRule, MessageStream, OwnedObjectPath, OwnedVariant as OwnedValue, Variant, message::Type,
};

use crate::network::Netns;
use crate::support::{Bus, Daemon, Launch};

/// libvirt-dbus's lease row: interface, expiry, type, MAC, IAID, address, prefix, host name,
/// client id.
type Lease = (
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

const LIBVIRT: &str = "org.libvirt";
const QEMU: &str = "/org/libvirt/QEMU";
const CONNECT: &str = "org.libvirt.Connect";
const NETWORK: &str = "org.libvirt.Network";
const PROPS: &str = "org.freedesktop.DBus.Properties";

const LAB: &str = "<network><name>lab</name><uuid>3e3fce45-4f53-4fa7-bb32-11f34168b82b</uuid>\
    <forward mode='nat'/><bridge name='vbtfac0'/><ip address='10.78.0.1' prefix='24'>\
    <dhcp><range start='10.78.0.10' end='10.78.0.50'/></dhcp></ip></network>";
const LAB_PATH: &str = "/org/libvirt/QEMU/network/_3e3fce45_4f53_4fa7_bb32_11f34168b82b";

async fn call<B, R>(
    conn: &zbus::Connection,
    path: &str,
    iface: &str,
    m: &str,
    b: &B,
) -> zbus::Result<R>
where
    B: serde::Serialize + zbus::DynamicType,
    R: for<'d> serde::Deserialize<'d> + zbus::Type,
{
    let reply = conn
        .call_method(Some(LIBVIRT), path, Some(iface), m, b)
        .await?;
    reply.body().deserialize::<R>()
}

fn error(e: zbus::Error) -> (String, String) {
    match e {
        zbus::Error::MethodError(name, msg, _) => (name.to_string(), msg.unwrap_or_default()),
        e => (format!("{e:?}"), String::new()),
    }
}

/// The `NetworkEvent`s (path, event) that arrive until none has for a second.
async fn events(stream: &mut MessageStream) -> Vec<(String, i32)> {
    let mut out = Vec::new();
    loop {
        let next = std::future::poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx));
        match tokio::time::timeout(Duration::from_secs(1), next).await {
            Ok(Some(Ok(m))) => {
                if let Ok((p, e)) = m.body().deserialize::<(OwnedObjectPath, i32)>() {
                    out.push((p.to_string(), e));
                }
            }
            _ => return out,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facade_networks_follow_libvirt_dbus() {
    let ns = Netns::named("fac");
    let bus = Bus::start();
    let launch = Launch {
        prefix: vec!["ip".into(), "netns".into(), "exec".into(), ns.0.clone()],
        extra: vec!["--libvirt-compat".into()],
        ..Default::default()
    };
    let _d = Daemon::start_launch(&bus, launch).await;
    let conn = bus.connect().await;
    let rule = MatchRule::builder()
        .msg_type(Type::Signal)
        .sender(LIBVIRT)
        .member("NetworkEvent")
        .build()
        .expect("rule");
    let mut sigs = MessageStream::for_match_rule(rule, &conn, None)
        .await
        .expect("signal stream");
    // org.libvirt may come a moment after org.virtbus1
    let mut none: Vec<OwnedObjectPath> = Vec::new();
    for _ in 0..50 {
        match call(&conn, QEMU, CONNECT, "ListNetworks", &(0u32,)).await {
            Ok(l) => {
                none = l;
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert!(none.is_empty(), "{none:?}");

    // define: the object at libvirt-dbus's path, event 0 (defined)
    let path: OwnedObjectPath = call(&conn, QEMU, CONNECT, "NetworkDefineXML", &(LAB,))
        .await
        .expect("define");
    assert_eq!(path.as_str(), LAB_PATH);
    assert_eq!(events(&mut sigs).await, [(LAB_PATH.to_string(), 0)]);
    let tree: String = call(
        &conn,
        "/org/libvirt/QEMU/network",
        "org.freedesktop.DBus.Introspectable",
        "Introspect",
        &(),
    )
    .await
    .expect("introspect");
    assert!(
        tree.contains("<node name=\"_3e3fce45_4f53_4fa7_bb32_11f34168b82b\"/>"),
        "{tree}"
    );
    let node: String = call(
        &conn,
        LAB_PATH,
        "org.freedesktop.DBus.Introspectable",
        "Introspect",
        &(),
    )
    .await
    .expect("introspect network");
    assert!(
        node.contains("<interface name=\"org.libvirt.Network\">"),
        "{node}"
    );
    let by_name: OwnedObjectPath = call(&conn, QEMU, CONNECT, "NetworkLookupByName", &("lab",))
        .await
        .expect("by name");
    assert_eq!(by_name, path);
    let by_uuid: OwnedObjectPath = call(
        &conn,
        QEMU,
        CONNECT,
        "NetworkLookupByUUID",
        &("3e3fce454f534fa7bb3211f34168b82b",),
    )
    .await
    .expect("by uuid");
    assert_eq!(by_uuid, path);
    let (name, msg) = error(
        call::<_, OwnedObjectPath>(&conn, QEMU, CONNECT, "NetworkLookupByName", &("nope",))
            .await
            .unwrap_err(),
    );
    assert_eq!(name, "org.libvirt.Error");
    assert!(
        msg.contains("no network with matching name 'nope'"),
        "{msg}"
    );

    // ListNetworks with libvirt's flags: 1 inactive, 2 active, 4 persistent
    let c = &conn;
    let lists = |flags: u32| async move {
        call::<_, Vec<OwnedObjectPath>>(c, QEMU, CONNECT, "ListNetworks", &(flags,)).await
    };
    assert_eq!(lists(1).await.expect("inactive"), vec![path.clone()]);
    assert!(lists(2).await.expect("active").is_empty());
    assert_eq!(lists(4).await.expect("persistent"), vec![path.clone()]);

    // properties, as libvirt-dbus serves them (GetAll wraps each value in a second variant)
    let all: HashMap<String, OwnedValue> = call(&conn, LAB_PATH, PROPS, "GetAll", &(NETWORK,))
        .await
        .expect("GetAll");
    let mut keys: Vec<&str> = all.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["Active", "Autostart", "Name", "Persistent", "UUID"]);
    let get = |n: &'static str| async move {
        call::<_, OwnedValue>(c, LAB_PATH, PROPS, "Get", &(NETWORK, n)).await
    };
    assert_eq!(
        String::try_from(get("Name").await.expect("Name")).unwrap(),
        "lab"
    );
    assert_eq!(
        String::try_from(get("UUID").await.expect("UUID")).unwrap(),
        "3e3fce45-4f53-4fa7-bb32-11f34168b82b"
    );
    assert!(!bool::try_from(get("Active").await.expect("Active")).unwrap());
    assert!(bool::try_from(get("Persistent").await.expect("Persistent")).unwrap());
    let () = call(
        &conn,
        LAB_PATH,
        PROPS,
        "Set",
        &(NETWORK, "Autostart", Variant::from(true)),
    )
    .await
    .expect("Set Autostart");
    assert!(bool::try_from(get("Autostart").await.expect("Autostart")).unwrap());
    events(&mut sigs).await;

    // start, XML, leases, update, stop
    let () = call(&conn, LAB_PATH, NETWORK, "Create", &())
        .await
        .expect("Create");
    assert_eq!(events(&mut sigs).await, [(LAB_PATH.to_string(), 2)]);
    assert!(bool::try_from(get("Active").await.expect("Active")).unwrap());
    assert_eq!(lists(2).await.expect("active"), vec![path.clone()]);
    assert!(ns.ip(&["link", "show", "vbtfac0"]).0, "bridge is up");
    let xml: String = call(&conn, LAB_PATH, NETWORK, "GetXMLDesc", &(0u32,))
        .await
        .expect("xml");
    assert!(
        xml.contains("<name>lab</name>") && xml.contains("vbtfac0"),
        "{xml}"
    );
    let leases: Vec<Lease> = call(&conn, LAB_PATH, NETWORK, "GetDHCPLeases", &("", 0u32))
        .await
        .expect("leases");
    assert!(leases.is_empty(), "{leases:?}");
    // Update: command 3 (add-last), section 4 (ip-dhcp-host), parent -1, flags 3 (live|config)
    let host = "<host mac='52:54:00:aa:bb:cc' name='vm1' ip='10.78.0.20'/>";
    let () = call(
        &conn,
        LAB_PATH,
        NETWORK,
        "Update",
        &(3u32, 4u32, -1i32, host, 3u32),
    )
    .await
    .expect("Update");
    let xml: String = call(&conn, LAB_PATH, NETWORK, "GetXMLDesc", &(1u32,))
        .await
        .expect("inactive xml");
    assert!(xml.contains("52:54:00:aa:bb:cc"), "{xml}");
    // section 9 (portgroup) is refused, naming it
    let (name, msg) = error(
        call::<_, ()>(
            &conn,
            LAB_PATH,
            NETWORK,
            "Update",
            &(3u32, 9u32, -1i32, "<portgroup name='x'/>", 0u32),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(name, "org.libvirt.Error");
    assert!(msg.contains("portgroup"), "{msg}");
    let () = call(&conn, LAB_PATH, NETWORK, "Destroy", &())
        .await
        .expect("Destroy");
    assert_eq!(events(&mut sigs).await, [(LAB_PATH.to_string(), 3)]);
    assert!(!bool::try_from(get("Active").await.expect("Active")).unwrap());
    assert!(!ns.ip(&["link", "show", "vbtfac0"]).0, "bridge is gone");
    let (name, _) = error(
        call::<_, ()>(&conn, LAB_PATH, NETWORK, "Destroy", &())
            .await
            .unwrap_err(),
    );
    assert_eq!(name, "org.libvirt.Error");

    // undefine: gone, event 1 (undefined); a transient network from NetworkCreateXML
    let () = call(&conn, LAB_PATH, NETWORK, "Undefine", &())
        .await
        .expect("Undefine");
    assert_eq!(events(&mut sigs).await, [(LAB_PATH.to_string(), 1)]);
    assert!(lists(0).await.expect("list").is_empty());
    let tmp: OwnedObjectPath = call(&conn, QEMU, CONNECT, "NetworkCreateXML", &(LAB,))
        .await
        .expect("create transient");
    assert_eq!(tmp.as_str(), LAB_PATH);
    assert!(!bool::try_from(get("Persistent").await.expect("Persistent")).unwrap());
    assert_eq!(lists(8).await.expect("transient"), vec![path.clone()]);
    let () = call(&conn, LAB_PATH, NETWORK, "Destroy", &())
        .await
        .expect("Destroy transient");
    assert!(lists(0).await.expect("list").is_empty());
}
