//! Every Domain method and property, and the signals of each transition.

use zbus::{OwnedObjectPath, Variant};

use crate::support::{proxies::*, *};

fn s(v: &zbus::OwnedVariant) -> String {
    String::try_from(v.try_clone().expect("clone")).expect("string")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_domain_lifecycle_with_signals() {
    let bus = Bus::start();
    let _d = Daemon::start(&bus).await;
    let conn = bus.connect().await;
    let mut sigs = Signals::new(&conn).await;
    let mgr = manager(&conn).await;

    let path = mgr
        .define_domain(&test_domain("life"), no_opts())
        .await
        .expect("define");
    let p = path.as_str();
    let got = sigs.take().await;
    assert!(
        matches!(&got[0], Sig::InterfacesAdded { path, ifaces } if path == p && ifaces == &["org.virtbus1.Domain"]),
        "{got:?}"
    );
    assert_eq!(lifecycle(&got), [("defined".into(), "added".into())]);

    let dom = domain(&conn, &path).await;
    assert_eq!(dom.name().await.expect("Name"), "life");
    let uuid = dom.uuid().await.expect("UUID");
    assert!(p.ends_with(&uuid.replace('-', "_2d")), "{p} {uuid}");
    assert_eq!(dom.title().await.expect("Title"), "");
    assert_eq!(dom.id().await.expect("Id"), -1);
    assert_eq!(dom.driver().await.expect("Driver"), "test");
    assert_eq!(dom.state().await.expect("State"), "shut-off");
    assert_eq!(dom.state_reason().await.expect("StateReason"), "unknown");
    assert!(!dom.active().await.expect("Active"));
    assert!(dom.persistent().await.expect("Persistent"));
    assert!(!dom.autostart().await.expect("Autostart"));
    assert_eq!(dom.vcpus().await.expect("VCPUs"), 2);
    assert_eq!(dom.memory_kib().await.expect("MemoryKiB"), 512 * 1024);
    assert_eq!(
        dom.current_snapshot()
            .await
            .expect("CurrentSnapshot")
            .as_str(),
        "/"
    );
    assert_eq!(dom.snapshot_count().await.expect("SnapshotCount"), 0);
    assert_eq!(dom.warning().await.expect("Warning"), "");

    // Start.
    dom.start(no_opts()).await.expect("start");
    let got = sigs.take().await;
    assert_eq!(lifecycle(&got), [("started".into(), "booted".into())]);
    assert_eq!(
        changes_of(&got, p, "State")
            .iter()
            .map(s)
            .collect::<Vec<_>>(),
        ["running"]
    );
    assert_eq!(
        changes_of(&got, p, "StateReason")
            .iter()
            .map(s)
            .collect::<Vec<_>>(),
        ["booted"]
    );
    assert_eq!(changes_of(&got, p, "Active").len(), 1);
    let id = dom.id().await.expect("Id");
    assert!(id >= 1);
    assert_eq!(changes_of(&got, p, "Id").len(), 1);
    assert!(
        dom.get_xml(no_opts())
            .await
            .expect("xml")
            .contains(&format!("id='{id}'"))
    );
    assert!(
        !dom.get_xml(opts([("inactive", Variant::Bool(true))]))
            .await
            .expect("inactive xml")
            .contains("id=")
    );

    // Suspend and resume.
    dom.suspend(no_opts()).await.expect("suspend");
    let got = sigs.take().await;
    assert_eq!(lifecycle(&got), [("suspended".into(), "paused".into())]);
    assert_eq!(
        changes_of(&got, p, "State")
            .iter()
            .map(s)
            .collect::<Vec<_>>(),
        ["paused"]
    );
    assert_eq!(
        changes_of(&got, p, "StateReason")
            .iter()
            .map(s)
            .collect::<Vec<_>>(),
        ["user"]
    );
    assert!(
        changes_of(&got, p, "Active").is_empty(),
        "paused is still active"
    );
    dom.resume(no_opts()).await.expect("resume");
    let got = sigs.take().await;
    assert_eq!(lifecycle(&got), [("resumed".into(), "unpaused".into())]);
    assert_eq!(dom.state_reason().await.expect("reason"), "unpaused");

    // Reboot and reset keep it running and say so.
    dom.reboot(no_opts()).await.expect("reboot");
    dom.reset(no_opts()).await.expect("reset");
    let got = sigs.take().await;
    let rebooted = got
        .iter()
        .filter(|g| matches!(g, Sig::Other { member, path } if member == "Rebooted" && path == p))
        .count();
    assert_eq!(rebooted, 2, "{got:?}");
    assert!(lifecycle(&got).is_empty());
    assert_eq!(dom.state().await.expect("State"), "running");

    // Statistics while running.
    let stats = dom.get_stats(no_opts()).await.expect("stats");
    for key in [
        "state.state",
        "cpu.time",
        "balloon.current",
        "vcpu.current",
        "vcpu.0.time",
    ] {
        assert!(stats.contains_key(key), "missing {key}: {stats:?}");
    }
    assert_eq!(
        i64::try_from(stats["state.state"].try_clone().expect("v")).expect("x"),
        1
    );

    // Shutdown.
    dom.shutdown(no_opts()).await.expect("shutdown");
    let got = sigs.take().await;
    assert_eq!(
        lifecycle(&got),
        [
            ("shutdown".into(), "finished".into()),
            ("stopped".into(), "shutdown".into())
        ]
    );
    assert_eq!(dom.state().await.expect("State"), "shut-off");
    assert_eq!(dom.state_reason().await.expect("reason"), "shutdown");
    assert_eq!(dom.id().await.expect("Id"), -1);
    let stats = dom.get_stats(no_opts()).await.expect("stats");
    assert!(!stats.contains_key("cpu.time"), "inactive: state only");

    // Start paused, then destroy.
    dom.start(opts([("paused", Variant::Bool(true))]))
        .await
        .expect("start paused");
    let got = sigs.take().await;
    assert_eq!(
        lifecycle(&got),
        [
            ("started".into(), "booted".into()),
            ("suspended".into(), "paused".into())
        ]
    );
    assert_eq!(dom.state().await.expect("State"), "paused");
    dom.destroy(no_opts()).await.expect("destroy");
    let got = sigs.take().await;
    assert_eq!(lifecycle(&got), [("stopped".into(), "destroyed".into())]);
    assert_eq!(dom.state_reason().await.expect("reason"), "destroyed");

    // Autostart is writable and signalled.
    dom.set_autostart(true).await.expect("autostart");
    let got = sigs.take().await;
    assert_eq!(changes_of(&got, p, "Autostart").len(), 1);
    assert!(dom.autostart().await.expect("Autostart"));

    // Redefinition keeps the path and says so.
    let xml = test_domain("life").replace("<vcpu>2</vcpu>", "<vcpu>4</vcpu>");
    let xml = xml.replace(
        "<name>life</name>",
        &format!("<name>life</name><uuid>{uuid}</uuid>"),
    );
    let again = mgr.define_domain(&xml, no_opts()).await.expect("redefine");
    assert_eq!(again, path);
    let got = sigs.take().await;
    assert_eq!(lifecycle(&got), [("defined".into(), "updated".into())]);
    assert_eq!(changes_of(&got, p, "VCPUs").len(), 1);
    assert_eq!(dom.vcpus().await.expect("VCPUs"), 4);
    assert!(dom.autostart().await.expect("autostart kept"));

    // Undefine removes the object.
    dom.undefine(no_opts()).await.expect("undefine");
    let got = sigs.take().await;
    assert_eq!(lifecycle(&got), [("undefined".into(), "removed".into())]);
    assert!(got.iter().any(
        |g| matches!(g, Sig::InterfacesRemoved { path, ifaces } if path == p && ifaces == &["org.virtbus1.Domain"])
    ));
    let r = dom.state().await;
    assert!(r.is_err());
    let r = dom.start(no_opts()).await;
    assert_eq!(error_name(&r), "org.virtbus1.Error.NotFound", "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_domain_appears_started_and_vanishes_when_stopped() {
    let bus = Bus::start();
    let _d = Daemon::start(&bus).await;
    let conn = bus.connect().await;
    let mut sigs = Signals::new(&conn).await;
    let mgr = manager(&conn).await;
    let path = mgr
        .create_domain(&test_domain("tr"), no_opts())
        .await
        .expect("create");
    let got = sigs.take().await;
    assert!(matches!(&got[0], Sig::InterfacesAdded { path: p, .. } if p == path.as_str()));
    assert_eq!(lifecycle(&got), [("started".into(), "booted".into())]);
    let dom = domain(&conn, &path).await;
    assert!(!dom.persistent().await.expect("Persistent"));
    assert_eq!(dom.state().await.expect("State"), "running");
    let r = dom.undefine(no_opts()).await;
    assert_eq!(error_name(&r), "org.virtbus1.Error.InvalidState");
    let r = dom.set_autostart(true).await;
    assert!(error_message(&r).contains("transient"), "{r:?}");
    dom.destroy(no_opts()).await.expect("destroy");
    let got = sigs.take().await;
    assert_eq!(lifecycle(&got), [("stopped".into(), "destroyed".into())]);
    assert!(
        matches!(got.last(), Some(Sig::InterfacesRemoved { path: p, .. }) if p == path.as_str())
    );
    assert!(mgr.list_domains(no_opts()).await.expect("list").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undefining_a_running_domain_makes_it_transient() {
    let bus = Bus::start();
    let _d = Daemon::start(&bus).await;
    let conn = bus.connect().await;
    let mgr = manager(&conn).await;
    let path = mgr
        .define_domain(&test_domain("keep"), no_opts())
        .await
        .expect("define");
    let dom = domain(&conn, &path).await;
    dom.start(no_opts()).await.expect("start");
    dom.undefine(no_opts()).await.expect("undefine");
    assert!(!dom.persistent().await.expect("Persistent"));
    assert_eq!(dom.state().await.expect("State"), "running");
    dom.shutdown(no_opts()).await.expect("shutdown");
    let paths: Vec<OwnedObjectPath> = mgr.list_domains(no_opts()).await.expect("list");
    assert!(paths.is_empty(), "a stopped transient domain is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_freeze_and_thaw_on_the_test_driver() {
    let bus = Bus::start();
    let _d = Daemon::start(&bus).await;
    let conn = bus.connect().await;
    let mgr = manager(&conn).await;
    let path = mgr
        .define_domain(&test_domain("fz"), no_opts())
        .await
        .expect("define");
    let dom = domain(&conn, &path).await;
    let r = dom.fs_freeze(no_opts()).await;
    assert_eq!(
        error_name(&r),
        "org.virtbus1.Error.InvalidState",
        "not running"
    );
    dom.start(no_opts()).await.expect("start");
    assert_eq!(dom.fs_freeze(no_opts()).await.expect("freeze"), 1);
    let r = dom.fs_freeze(no_opts()).await;
    assert_eq!(
        error_name(&r),
        "org.virtbus1.Error.InvalidState",
        "already frozen"
    );
    assert_eq!(dom.fs_thaw(no_opts()).await.expect("thaw"), 1);
    assert_eq!(dom.fs_thaw(no_opts()).await.expect("thaw again"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_while_running_only() {
    let bus = Bus::start();
    let _d = Daemon::start(&bus).await;
    let conn = bus.connect().await;
    let xml = test_domain("io").replace(
        "</os>",
        "</os><devices><disk type='file' device='disk'><source file='/var/lib/io.img'/>\
         <target dev='vda' bus='virtio'/></disk><interface type='user'>\
         <mac address='52:54:00:11:22:33'/><model type='virtio'/></interface></devices>",
    );
    let path = manager(&conn)
        .await
        .define_domain(&xml, no_opts())
        .await
        .expect("define");
    let dom = domain(&conn, &path).await;
    dom.start(no_opts()).await.expect("start");
    let get = |st: &std::collections::HashMap<String, zbus::OwnedVariant>, k: &str| {
        u64::try_from(st[k].try_clone().expect("v")).expect("t")
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let a = dom.get_stats(no_opts()).await.expect("stats");
    assert_eq!(get(&a, "block.count"), 1);
    assert_eq!(
        String::try_from(a["block.0.name"].try_clone().expect("v")).expect("s"),
        "vda"
    );
    assert_eq!(get(&a, "net.count"), 1);
    assert!(get(&a, "block.0.rd.reqs") > 0 && get(&a, "net.0.rx.bytes") > 0);
    dom.suspend(no_opts()).await.expect("suspend");
    let b = dom.get_stats(no_opts()).await.expect("stats");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let c = dom.get_stats(no_opts()).await.expect("stats");
    assert!(get(&b, "cpu.time") > get(&a, "cpu.time"));
    assert_eq!(
        get(&b, "cpu.time"),
        get(&c, "cpu.time"),
        "paused: no CPU time"
    );
    assert_eq!(get(&b, "block.0.rd.bytes"), get(&c, "block.0.rd.bytes"));
    dom.resume(no_opts()).await.expect("resume");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let d = dom.get_stats(no_opts()).await.expect("stats");
    assert!(get(&d, "cpu.time") > get(&c, "cpu.time"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_poweroff_and_on_reboot_are_honoured() {
    let bus = Bus::start();
    let _d = Daemon::start(&bus).await;
    let conn = bus.connect().await;
    let mut sigs = Signals::new(&conn).await;
    let mgr = manager(&conn).await;
    let restart =
        test_domain("phoenix").replace("</os>", "</os><on_poweroff>restart</on_poweroff>");
    let p = mgr
        .define_domain(&restart, no_opts())
        .await
        .expect("define");
    let dom = domain(&conn, &p).await;
    dom.start(no_opts()).await.expect("start");
    let id1 = dom.id().await.expect("id");
    sigs.take().await;
    dom.shutdown(no_opts()).await.expect("shutdown");
    let got = sigs.take().await;
    assert_eq!(
        lifecycle(&got),
        [
            ("shutdown".into(), "finished".into()),
            ("stopped".into(), "shutdown".into()),
            ("started".into(), "booted".into())
        ]
    );
    assert_eq!(dom.state().await.expect("State"), "running");
    assert_ne!(dom.id().await.expect("id"), id1, "a new run has a new id");

    let halt = test_domain("brittle").replace("</os>", "</os><on_reboot>destroy</on_reboot>");
    let p = mgr.define_domain(&halt, no_opts()).await.expect("define");
    let dom = domain(&conn, &p).await;
    dom.start(no_opts()).await.expect("start");
    sigs.take().await;
    dom.reboot(no_opts()).await.expect("reboot");
    let got = sigs.take().await;
    assert_eq!(lifecycle(&got), [("stopped".into(), "shutdown".into())]);
    assert!(
        !got.iter()
            .any(|g| matches!(g, Sig::Other { member, .. } if member == "Rebooted")),
        "it did not reboot: {got:?}"
    );
    assert_eq!(dom.state().await.expect("State"), "shut-off");
}
