//! The Manager object: properties, capabilities, listing, lookup and the ObjectManager.

use std::collections::HashMap;

use zbus::{OwnedObjectPath, OwnedVariant, Variant};

use crate::support::{proxies::*, *};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn properties_and_capabilities() {
    let bus = Bus::start();
    let _d = Daemon::start(&bus).await;
    let conn = bus.connect().await;
    let mgr = manager(&conn).await;
    assert_eq!(
        mgr.version().await.expect("Version"),
        env!("CARGO_PKG_VERSION")
    );
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    assert_eq!(mgr.hostname().await.expect("Hostname"), host.trim());
    let drivers = mgr.drivers().await.expect("Drivers");
    assert_eq!(drivers[0], "test");
    // the QEMU driver is there exactly when QEMU is installed
    let qemu = std::path::Path::new("/usr/bin/qemu-system-x86_64").exists();
    assert_eq!(drivers.iter().any(|d| d == "qemu"), qemu, "{drivers:?}");
    let caps = mgr.get_capabilities().await.expect("caps");
    assert!(caps.starts_with("<capabilities>"), "{caps}");
    assert!(caps.contains("<driver name='test'>"), "{caps}");
    assert!(caps.contains("<domain type='test'/>"), "{caps}");
    assert!(caps.contains("<snapshots internal='yes'"), "{caps}");
    roxmltree::Document::parse(&caps).expect("capabilities are XML");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_filters_and_lookup() {
    let bus = Bus::start();
    let _d = Daemon::start(&bus).await;
    let conn = bus.connect().await;
    let mgr = manager(&conn).await;
    let a = mgr
        .define_domain(&test_domain("a"), no_opts())
        .await
        .expect("a");
    let b = mgr
        .define_domain(&test_domain("b"), no_opts())
        .await
        .expect("b");
    let c = mgr
        .create_domain(&test_domain("c"), no_opts())
        .await
        .expect("c");
    domain(&conn, &b)
        .await
        .start(no_opts())
        .await
        .expect("start b");

    let list = |f: HashMap<&'static str, Variant<'static>>| {
        let mgr = mgr.clone();
        async move { mgr.list_domains(f).await.expect("list") }
    };
    assert_eq!(
        list(no_opts()).await,
        [a.clone(), b.clone(), c.clone()],
        "sorted by name"
    );
    assert_eq!(
        list(opts([("active", Variant::Bool(true))])).await,
        [b.clone(), c.clone()]
    );
    assert_eq!(
        list(opts([("inactive", Variant::Bool(true))])).await,
        std::slice::from_ref(&a)
    );
    assert_eq!(
        list(opts([
            ("active", Variant::Bool(true)),
            ("inactive", Variant::Bool(true))
        ]))
        .await,
        [a.clone(), b.clone(), c.clone()]
    );
    assert_eq!(
        list(opts([("persistent", Variant::Bool(true))])).await,
        [a.clone(), b.clone()]
    );
    assert_eq!(
        list(opts([("transient", Variant::Bool(true))])).await,
        std::slice::from_ref(&c)
    );
    assert_eq!(
        list(opts([("driver", Variant::from("test"))])).await.len(),
        3
    );
    assert!(
        list(opts([("driver", Variant::from("qemu"))]))
            .await
            .is_empty()
    );

    assert_eq!(mgr.lookup_domain("b").await.expect("by name"), b);
    let uuid = domain(&conn, &b).await.uuid().await.expect("uuid");
    assert_eq!(mgr.lookup_domain(&uuid).await.expect("by uuid"), b);
    assert_eq!(
        mgr.lookup_domain(&uuid.replace('-', ""))
            .await
            .expect("by bare uuid"),
        b
    );
    let r = mgr.lookup_domain("nope").await;
    assert_eq!(error_name(&r), "org.virtbus1.Error.NotFound");
    assert!(error_message(&r).contains("'nope'"));
}

type Managed = HashMap<OwnedObjectPath, HashMap<String, HashMap<String, OwnedVariant>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_managed_objects_has_every_domain_and_snapshot_with_all_properties() {
    let bus = Bus::start();
    let _d = Daemon::start(&bus).await;
    let conn = bus.connect().await;
    let mgr = manager(&conn).await;
    let a = mgr
        .define_domain(&test_domain("a"), no_opts())
        .await
        .expect("a");
    let b = mgr
        .create_domain(&test_domain("b"), no_opts())
        .await
        .expect("b");
    let snap = domain(&conn, &b)
        .await
        .create_snapshot("<domainsnapshot><name>s</name></domainsnapshot>", no_opts())
        .await
        .expect("snapshot");
    let om = zbus::fdo::ObjectManagerProxy::builder(&conn)
        .destination(NAME)
        .path(MANAGER)
        .build()
        .await
        .expect("om");
    let reply: zbus::Message = om
        .inner()
        .call_method("GetManagedObjects", &())
        .await
        .expect("GetManagedObjects");
    let objects: Managed = reply.body().deserialize().expect("a{oa{sa{sv}}}");
    // Besides the host's interfaces and devices (tests/bus/host.rs).
    let guests = objects
        .keys()
        .filter(|p| p.as_str().starts_with("/org/virtbus1/domain/"))
        .count();
    assert_eq!(guests, 3);
    let dom_props = &objects[&a]["org.virtbus1.Domain"];
    let mut names: Vec<&str> = dom_props.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "Active",
            "Autostart",
            "CurrentSnapshot",
            "Driver",
            "HasManagedSave",
            "Id",
            "Job",
            "JobProgress",
            "MemoryKiB",
            "Name",
            "Persistent",
            "SnapshotCount",
            "State",
            "StateReason",
            "Title",
            "UUID",
            "VCPUs",
            "Warning"
        ]
    );
    assert_eq!(
        String::try_from(dom_props["Name"].try_clone().expect("v")).expect("s"),
        "a"
    );
    let b_props = &objects[&b]["org.virtbus1.Domain"];
    assert_eq!(
        String::try_from(b_props["State"].try_clone().expect("v")).expect("s"),
        "running"
    );
    assert_eq!(
        u32::try_from(b_props["SnapshotCount"].try_clone().expect("v")).expect("u"),
        1
    );
    let s_props = &objects[&snap]["org.virtbus1.Snapshot"];
    assert_eq!(s_props.len(), 8);
    assert!(bool::try_from(s_props["IsCurrent"].try_clone().expect("v")).expect("b"));
    assert_eq!(
        OwnedObjectPath::try_from(s_props["Domain"].try_clone().expect("v")).expect("o"),
        b
    );
}

/// The host name is watched: a change (here inside the daemon's own UTS namespace, so the
/// host is untouched) is signalled and read back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostname_changes_are_signalled() {
    let bus = Bus::start();
    let d = Daemon::launch(
        &bus.address,
        bus.dir.path(),
        &bus.dir.path().join("state"),
        &bus.dir.path().join("run"),
        Launch {
            prefix: vec!["unshare".into(), "--uts".into(), "--".into()],
            ..Default::default()
        },
    )
    .await;
    let conn = bus.connect().await;
    let mut sigs = Signals::new(&conn).await;
    let status = std::process::Command::new("nsenter")
        .arg(format!("--uts=/proc/{}/ns/uts", d.pid()))
        .args(["hostname", "vb-renamed"])
        .status()
        .expect("nsenter");
    assert!(status.success());
    let got = sigs.drain(std::time::Duration::from_millis(500)).await;
    let seen = changes_of(&got, MANAGER, "Hostname");
    assert_eq!(seen.len(), 1, "{got:?}");
    assert_eq!(
        String::try_from(seen[0].try_clone().expect("v")).expect("s"),
        "vb-renamed"
    );
    assert_eq!(
        manager(&conn).await.hostname().await.expect("Hostname"),
        "vb-renamed"
    );
}
