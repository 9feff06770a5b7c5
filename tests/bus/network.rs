//! org.virtbus1.Network over the bus: the daemon runs inside a network namespace of the
//! test's own (`ip netns exec`), so the bridges, nft tables and dnsmasq it makes never
//! touch the host's.

use std::collections::HashMap;
use std::process::Command;

use zbus::{OwnedObjectPath, OwnedVariant as OwnedValue, Variant};

use crate::support::{Bus, Daemon, Launch, MANAGER, NAME, Sig, Signals, no_opts};

const IFACE: &str = "org.virtbus1.Network";

pub(crate) struct Netns(pub(crate) String);

impl Netns {
    pub(crate) fn new() -> Netns {
        Netns::named("bus")
    }

    /// A namespace of its own for each test that runs a daemon in one.
    pub(crate) fn named(tag: &str) -> Netns {
        let name = format!("vbt-{tag}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
        assert!(
            Command::new("ip")
                .args(["netns", "add", &name])
                .status()
                .unwrap()
                .success()
        );
        Netns(name)
    }

    pub(crate) fn ip(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("ip")
            .args(["-n", &self.0])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Ok(out) = Command::new("ip").args(["netns", "pids", &self.0]).output() {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

async fn call<B, R>(
    conn: &zbus::Connection,
    path: &str,
    iface: &str,
    member: &str,
    body: &B,
) -> zbus::Result<R>
where
    B: serde::Serialize + zbus::DynamicType,
    R: for<'d> serde::Deserialize<'d> + zbus::Type,
{
    let reply = conn
        .call_method(Some(NAME), path, Some(iface), member, body)
        .await?;
    reply.body().deserialize::<R>()
}

fn error_name(e: &zbus::Error) -> String {
    match e {
        zbus::Error::MethodError(name, _, _) => name.to_string(),
        e => format!("{e:?}"),
    }
}

const LAB: &str = "<network><name>lab net</name><forward mode='nat'/>\
    <bridge name='vbtlab0'/><ip address='10.77.0.1' prefix='24'>\
    <dhcp><range start='10.77.0.10' end='10.77.0.50'/></dhcp></ip></network>";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn networks_are_objects_with_signals_and_survive_a_daemon_kill() {
    let ns = Netns::new();
    let bus = Bus::start();
    let launch = Launch {
        prefix: vec!["ip".into(), "netns".into(), "exec".into(), ns.0.clone()],
        ..Default::default()
    };
    let mut d = Daemon::start_launch(&bus, launch).await;
    let conn = bus.connect().await;
    let mut sigs = Signals::new(&conn).await;

    // define: an object, InterfacesAdded and NetworkEvent "defined"
    let path: OwnedObjectPath = call(
        &conn,
        MANAGER,
        "org.virtbus1.Manager",
        "DefineNetwork",
        &(LAB, no_opts()),
    )
    .await
    .expect("define");
    assert_eq!(path.as_str(), "/org/virtbus1/network/lab_20net");
    let got = sigs.take().await;
    assert!(
        got.iter()
            .any(|s| matches!(s, Sig::InterfacesAdded { path: p, ifaces }
            if p == path.as_str() && ifaces == &[IFACE.to_string()])),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|s| matches!(s, Sig::Other { member, .. } if member == "NetworkEvent")),
        "{got:?}"
    );
    let list: Vec<OwnedObjectPath> =
        call(&conn, MANAGER, "org.virtbus1.Manager", "ListNetworks", &())
            .await
            .expect("list");
    assert_eq!(list, vec![path.clone()]);
    let props: HashMap<String, OwnedValue> = call(
        &conn,
        path.as_str(),
        "org.freedesktop.DBus.Properties",
        "GetAll",
        &(IFACE,),
    )
    .await
    .expect("props");
    assert_eq!(
        props["Name"],
        OwnedValue::try_from(Variant::from("lab net")).unwrap()
    );
    assert!(!bool::try_from(&props["Active"]).unwrap());
    assert!(bool::try_from(&props["Persistent"]).unwrap());
    assert_eq!(
        String::try_from(props["Bridge"].try_clone().unwrap()).unwrap(),
        "vbtlab0"
    );
    let objects: HashMap<OwnedObjectPath, HashMap<String, HashMap<String, OwnedValue>>> = call(
        &conn,
        MANAGER,
        "org.freedesktop.DBus.ObjectManager",
        "GetManagedObjects",
        &(),
    )
    .await
    .expect("objects");
    assert!(objects[&path].contains_key(IFACE));

    // introspection serves the shipped interface verbatim
    let xml: String = call(
        &conn,
        path.as_str(),
        "org.freedesktop.DBus.Introspectable",
        "Introspect",
        &(),
    )
    .await
    .expect("introspect");
    let shipped = include_str!("../../dbus/org.virtbus1.Network.xml");
    let start = shipped.find("<interface").unwrap();
    let end = shipped.rfind("</interface>").unwrap() + "</interface>".len();
    assert!(xml.contains(&shipped[start..end]), "{xml}");

    // start: Active changes, the bridge is in the daemon's namespace only
    let () = call(&conn, path.as_str(), IFACE, "Start", &())
        .await
        .expect("start");
    let got = sigs.take().await;
    let active: Vec<bool> = got
        .iter()
        .filter_map(|s| match s {
            Sig::PropertiesChanged {
                path: p, changed, ..
            } if p == path.as_str() => changed.get("Active").and_then(|v| bool::try_from(v).ok()),
            _ => None,
        })
        .collect();
    assert_eq!(active, [true], "{got:?}");
    let (ok, out) = ns.ip(&["-br", "addr", "show", "vbtlab0"]);
    assert!(ok && out.contains("10.77.0.1/24"), "{out}");
    assert!(
        !Command::new("ip")
            .args(["link", "show", "vbtlab0"])
            .output()
            .unwrap()
            .status
            .success(),
        "the bridge leaked into the host's namespace"
    );
    let () = call(
        &conn,
        path.as_str(),
        "org.freedesktop.DBus.Properties",
        "Set",
        &(IFACE, "Autostart", Variant::from(true)),
    )
    .await
    .expect("autostart");
    // a static host, live and in the config
    let () = call(
        &conn,
        path.as_str(),
        IFACE,
        "Update",
        &(
            "add-last",
            "ip-dhcp-host",
            "<host mac='52:54:00:12:34:56' name='db' ip='10.77.0.5'/>",
            HashMap::from([
                ("live", Variant::from(true)),
                ("config", Variant::from(true)),
            ]),
        ),
    )
    .await
    .expect("update");
    for inactive in [false, true] {
        let xml: String = call(
            &conn,
            path.as_str(),
            IFACE,
            "GetXML",
            &(HashMap::from([("inactive", Variant::from(inactive))]),),
        )
        .await
        .expect("xml");
        assert!(
            xml.contains("<host mac='52:54:00:12:34:56' name='db' ip='10.77.0.5'/>"),
            "{xml}"
        );
    }
    let leases: Vec<HashMap<String, OwnedValue>> =
        call(&conn, path.as_str(), IFACE, "GetDHCPLeases", &(no_opts(),))
            .await
            .expect("leases");
    assert!(leases.is_empty());

    // bad input: typed, nothing defined
    let e = call::<_, OwnedObjectPath>(
        &conn,
        MANAGER,
        "org.virtbus1.Manager",
        "DefineNetwork",
        &(
            "<network><name>clash</name><ip address='10.77.0.9' prefix='16'/></network>",
            no_opts(),
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(error_name(&e), "org.virtbus1.Error.InvalidArgument", "{e}");
    assert!(e.to_string().contains("lab net"), "{e}");
    let e = call::<_, OwnedObjectPath>(
        &conn,
        MANAGER,
        "org.virtbus1.Manager",
        "DefineNetwork",
        &("<network><name>x</name><bogus/></network>", no_opts()),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("/network/bogus"), "{e}");
    let e = call::<_, ()>(&conn, path.as_str(), IFACE, "Start", &())
        .await
        .unwrap_err();
    assert_eq!(error_name(&e), "org.virtbus1.Error.InvalidState", "{e}");
    let list: Vec<OwnedObjectPath> =
        call(&conn, MANAGER, "org.virtbus1.Manager", "ListNetworks", &())
            .await
            .expect("list");
    assert_eq!(list.len(), 1);

    // kill -9 and restart: the network is adopted, its dnsmasq the same process
    let pidfile = d.runtime.join("networks/lab_20net/dnsmasq.pid");
    let pid = std::fs::read_to_string(&pidfile).expect("pid file");
    let index = ns.ip(&["-o", "link", "show", "vbtlab0"]).1;
    d.restart(&bus).await;
    let props: HashMap<String, OwnedValue> = call(
        &conn,
        path.as_str(),
        "org.freedesktop.DBus.Properties",
        "GetAll",
        &(IFACE,),
    )
    .await
    .expect("props");
    assert!(bool::try_from(&props["Active"]).unwrap());
    assert!(bool::try_from(&props["Autostart"]).unwrap());
    assert_eq!(std::fs::read_to_string(&pidfile).unwrap(), pid);
    assert_eq!(
        ns.ip(&["-o", "link", "show", "vbtlab0"])
            .1
            .split(':')
            .next(),
        index.split(':').next(),
        "the bridge was recreated"
    );

    // stop and undefine: the bridge goes, then the object
    let mut sigs = Signals::new(&conn).await;
    let () = call(&conn, path.as_str(), IFACE, "Stop", &())
        .await
        .expect("stop");
    assert!(!ns.ip(&["link", "show", "vbtlab0"]).0);
    let () = call(&conn, path.as_str(), IFACE, "Undefine", &())
        .await
        .expect("undefine");
    let got = sigs.take().await;
    assert!(
        got.iter()
            .any(|s| matches!(s, Sig::InterfacesRemoved { path: p, .. }
            if p == path.as_str())),
        "{got:?}"
    );
    let e = call::<_, ()>(&conn, path.as_str(), IFACE, "Start", &())
        .await
        .unwrap_err();
    assert_eq!(error_name(&e), "org.virtbus1.Error.NotFound", "{e}");
    d.kill();
}
