//! The libvirt-dbus facade's `/org/libvirt/LXC` connect (libvirt-dbus serves `lxc:///`
//! there) over a real container: it shows the lxc domains only, and starts, describes and
//! destroys them as libvirt-dbus does; the other connects do not show them.

use zbus::{OwnedObjectPath, OwnedVariant};

use super::*;

const LIBVIRT: &str = "org.libvirt";
const LXC: &str = "/org/libvirt/LXC";

async fn call<B, R>(
    conn: &zbus::Connection,
    path: &str,
    iface: &str,
    member: &str,
    body: &B,
) -> zbus::Result<R>
where
    B: serde::Serialize + zbus::zvariant::DynamicType,
    R: for<'d> serde::Deserialize<'d> + zbus::zvariant::Type,
{
    conn.call_method(Some(LIBVIRT), path, Some(iface), member, body)
        .await?
        .body()
        .deserialize::<R>()
}

async fn prop(conn: &zbus::Connection, path: &str, name: &str) -> OwnedVariant {
    call(
        conn,
        path,
        "org.freedesktop.DBus.Properties",
        "Get",
        &("org.libvirt.Domain", name),
    )
    .await
    .unwrap_or_else(|e| panic!("{name}: {e}"))
}

async fn list(conn: &zbus::Connection, connect: &str) -> Vec<OwnedObjectPath> {
    call(
        conn,
        connect,
        "org.libvirt.Connect",
        "ListDomains",
        &(0u32,),
    )
    .await
    .expect("ListDomains")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lxc_connect_shows_and_runs_containers() {
    let bus = Bus::start();
    let daemon = Daemon::start_with(
        &bus,
        &bus.dir.path().join("state"),
        &bus.dir.path().join("run"),
        &["--libvirt-compat"],
    )
    .await;
    let conn = bus.connect().await;
    let dbus = zbus::fdo::DBusProxy::new(&conn).await.expect("dbus");
    let t = Instant::now();
    while !dbus
        .name_has_owner(LIBVIRT.try_into().expect("name"))
        .await
        .unwrap_or(false)
    {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "no facade:\n{}",
            daemon.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let root = rootfs::build(bus.dir.path());

    // a test-type domain beside it, on the same core: not the LXC connect's
    let mgr = manager(&conn).await;
    mgr.define_domain(&test_domain("not-lxc"), no_opts())
        .await
        .expect("define test domain");
    // a container defined through the facade lands on the LXC connect
    let xml = rootfs::domain(
        "lxc-facade",
        &root,
        "echo hello; while true; do sleep 1; done",
        "",
        "",
    );
    let path: OwnedObjectPath = call(
        &conn,
        LXC,
        "org.libvirt.Connect",
        "DomainDefineXML",
        &(xml,),
    )
    .await
    .unwrap_or_else(|e| panic!("define: {e}\n{}", daemon.log_text()));
    assert!(
        path.as_str().starts_with("/org/libvirt/LXC/domain/_"),
        "{path}"
    );
    assert_eq!(list(&conn, LXC).await, vec![path.clone()]);
    assert!(
        !list(&conn, "/org/libvirt/QEMU").await.contains(&path),
        "the QEMU connect shows a container"
    );
    let e = call::<_, OwnedObjectPath>(
        &conn,
        LXC,
        "org.libvirt.Connect",
        "DomainLookupByName",
        &("not-lxc",),
    )
    .await
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("no domain with matching name 'not-lxc'"),
        "{e}"
    );
    // a VM's definition is not the LXC connect's to take
    let e = call::<_, OwnedObjectPath>(
        &conn,
        LXC,
        "org.libvirt.Connect",
        "DomainDefineXML",
        &(test_domain("vm"),),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("not served at"), "{e}");

    let found: OwnedObjectPath = call(
        &conn,
        LXC,
        "org.libvirt.Connect",
        "DomainLookupByName",
        &("lxc-facade",),
    )
    .await
    .expect("lookup");
    assert_eq!(found, path);
    let p = path.as_str();
    let () = call(&conn, p, "org.libvirt.Domain", "Create", &(0u32,))
        .await
        .unwrap_or_else(|e| panic!("create: {e}\n{}", daemon.log_text()));
    assert!(bool::try_from(prop(&conn, p, "Active").await).expect("bool"));
    assert_eq!(
        String::try_from(prop(&conn, p, "OSType").await).expect("str"),
        "exe"
    );
    assert!(u32::try_from(prop(&conn, p, "Id").await).expect("u32") > 0);
    let live: String = call(&conn, p, "org.libvirt.Domain", "GetXMLDesc", &(0u32,))
        .await
        .expect("xml");
    assert!(live.contains("type='lxc'"), "{live}");
    let pty = console_pty(&live);
    let console =
        tokio::task::spawn_blocking(move || read_console(&pty, "hello", Duration::from_secs(10)))
            .await
            .expect("console");
    assert!(console.contains("hello"), "{console:?}");
    // the state as libvirt reports a running container: running, booted
    let (state, reason): (i32, i32) = call(&conn, p, "org.libvirt.Domain", "GetState", &(0u32,))
        .await
        .expect("state");
    assert_eq!((state, reason), (1, 1));
    let () = call(&conn, p, "org.libvirt.Domain", "Destroy", &(0u32,))
        .await
        .expect("destroy");
    assert!(!bool::try_from(prop(&conn, p, "Active").await).expect("bool"));
    // a flag the LXC driver does not know is refused in its words
    let e = call::<_, ()>(&conn, p, "org.libvirt.Domain", "Create", &(1u32 << 30,))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("in function lxc"), "{e}");
}
