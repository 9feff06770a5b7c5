//! Snapshot objects and their tree on the test driver.

use zbus::{OwnedObjectPath, Variant};

use crate::support::{proxies::*, *};

fn snap_xml(name: &str) -> String {
    format!(
        "<domainsnapshot><name>{name}</name><description>about {name}</description></domainsnapshot>"
    )
}

async fn names(conn: &zbus::Connection, paths: Vec<OwnedObjectPath>) -> Vec<String> {
    let mut out = Vec::new();
    for p in paths {
        out.push(snapshot(conn, &p).await.name().await.expect("Name"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tree_current_revert_and_delete() {
    let bus = Bus::start();
    let _d = Daemon::start(&bus).await;
    let conn = bus.connect().await;
    let mut sigs = Signals::new(&conn).await;
    let mgr = manager(&conn).await;
    let dpath = mgr
        .define_domain(&test_domain("t"), no_opts())
        .await
        .expect("define");
    let dom = domain(&conn, &dpath).await;
    dom.start(no_opts()).await.expect("start");
    sigs.take().await;

    // s1: the first snapshot of a running domain.
    let s1p = dom
        .create_snapshot(&snap_xml("s1"), no_opts())
        .await
        .expect("s1");
    let got = sigs.take().await;
    assert!(got.iter().any(|g| matches!(g, Sig::InterfacesAdded { path, ifaces } if path == s1p.as_str() && ifaces == &["org.virtbus1.Snapshot"])), "{got:?}");
    assert_eq!(changes_of(&got, dpath.as_str(), "CurrentSnapshot").len(), 1);
    assert_eq!(changes_of(&got, dpath.as_str(), "SnapshotCount").len(), 1);
    let s1 = snapshot(&conn, &s1p).await;
    assert_eq!(s1.name().await.expect("Name"), "s1");
    assert_eq!(s1.description().await.expect("Description"), "about s1");
    assert_eq!(s1.domain().await.expect("Domain"), dpath);
    assert_eq!(s1.parent().await.expect("Parent").as_str(), "/");
    assert!(s1.creation_time().await.expect("CreationTime") > 1_700_000_000);
    assert_eq!(s1.state().await.expect("State"), "running");
    assert!(s1.is_current().await.expect("IsCurrent"));
    assert_eq!(s1.kind().await.expect("Kind"), "internal");
    assert_eq!(dom.current_snapshot().await.expect("current"), s1p);
    let xml = s1.get_xml(no_opts()).await.expect("xml");
    assert!(xml.contains("<name>s1</name>"), "{xml}");
    assert_eq!(dom.lookup_snapshot("s1").await.expect("lookup"), s1p);

    // s2 under s1; s1 stops being current, with a signal.
    let s2p = dom
        .create_snapshot(&snap_xml("s2"), no_opts())
        .await
        .expect("s2");
    let got = sigs.take().await;
    let s1_current = changes_of(&got, s1p.as_str(), "IsCurrent");
    assert_eq!(s1_current.len(), 1);
    assert!(!bool::try_from(s1_current[0].try_clone().expect("v")).expect("b"));
    let s2 = snapshot(&conn, &s2p).await;
    assert_eq!(s2.parent().await.expect("Parent"), s1p);

    // Revert to s1 while running: stopped and started from the snapshot.
    s1.revert(no_opts()).await.expect("revert");
    let got = sigs.take().await;
    assert_eq!(
        lifecycle(&got),
        [
            ("stopped".into(), "from-snapshot".into()),
            ("started".into(), "from-snapshot".into())
        ]
    );
    assert_eq!(dom.state_reason().await.expect("reason"), "from-snapshot");
    assert!(s1.is_current().await.expect("IsCurrent"));

    // s3 of the shut-off domain, also under s1.
    dom.destroy(no_opts()).await.expect("destroy");
    let s3p = dom
        .create_snapshot(&snap_xml("s3"), no_opts())
        .await
        .expect("s3");
    sigs.take().await;
    let s3 = snapshot(&conn, &s3p).await;
    assert_eq!(s3.state().await.expect("State"), "shutoff");
    assert_eq!(s3.parent().await.expect("Parent"), s1p);

    let all = dom.list_snapshots(no_opts()).await.expect("list");
    assert_eq!(names(&conn, all).await, ["s1", "s2", "s3"]);
    let roots = dom
        .list_snapshots(opts([("roots", Variant::Bool(true))]))
        .await
        .expect("roots");
    assert_eq!(names(&conn, roots).await, ["s1"]);
    let leaves = dom
        .list_snapshots(opts([("leaves", Variant::Bool(true))]))
        .await
        .expect("leaves");
    assert_eq!(names(&conn, leaves).await, ["s2", "s3"]);
    let inner = dom
        .list_snapshots(opts([("no-leaves", Variant::Bool(true))]))
        .await
        .expect("no-leaves");
    assert_eq!(names(&conn, inner).await, ["s1"]);
    let kids = s1.list_children(no_opts()).await.expect("children");
    assert_eq!(names(&conn, kids).await, ["s2", "s3"]);

    // Revert a shut-off domain to a running snapshot: started from it.
    s2.revert(no_opts()).await.expect("revert s2");
    let got = sigs.take().await;
    assert_eq!(
        lifecycle(&got),
        [("started".into(), "from-snapshot".into())]
    );
    // Revert a running domain to a shut-off snapshot: stopped.
    s3.revert(no_opts()).await.expect("revert s3");
    let got = sigs.take().await;
    assert_eq!(
        lifecycle(&got),
        [("stopped".into(), "from-snapshot".into())]
    );
    assert_eq!(dom.state().await.expect("State"), "shut-off");
    // ... with 'paused': started and suspended.
    s3.revert(opts([("paused", Variant::Bool(true))]))
        .await
        .expect("revert paused");
    let got = sigs.take().await;
    assert_eq!(
        lifecycle(&got),
        [
            ("started".into(), "from-snapshot".into()),
            ("suspended".into(), "from-snapshot".into())
        ]
    );
    assert_eq!(dom.state().await.expect("State"), "paused");
    let r = s3
        .revert(opts([
            ("paused", Variant::Bool(true)),
            ("running", Variant::Bool(true)),
        ]))
        .await;
    assert_eq!(error_name(&r), "org.virtbus1.Error.InvalidArgument");

    // Delete s1 alone: its children become roots, with Parent signals.
    s1.delete(no_opts()).await.expect("delete s1");
    let got = sigs.take().await;
    assert!(
        got.iter()
            .any(|g| matches!(g, Sig::InterfacesRemoved { path, .. } if path == s1p.as_str()))
    );
    assert_eq!(changes_of(&got, s2p.as_str(), "Parent").len(), 1);
    assert_eq!(s2.parent().await.expect("Parent").as_str(), "/");
    assert!(s1.name().await.is_err(), "deleted object is gone");
    let r = s1.revert(no_opts()).await;
    assert_eq!(error_name(&r), "org.virtbus1.Error.NotFound");

    // children-only keeps the snapshot; children removes the subtree.
    let s4p = dom
        .create_snapshot(&snap_xml("s4"), no_opts())
        .await
        .expect("s4");
    let s4 = snapshot(&conn, &s4p).await;
    assert_eq!(s4.parent().await.expect("Parent"), s3p);
    s3.delete(opts([("children-only", Variant::Bool(true))]))
        .await
        .expect("children-only");
    assert!(s4.name().await.is_err());
    assert!(
        s3.is_current()
            .await
            .expect("s3 current after its children go")
    );
    let r = s2
        .delete(opts([
            ("children", Variant::Bool(true)),
            ("children-only", Variant::Bool(true)),
        ]))
        .await;
    assert_eq!(error_name(&r), "org.virtbus1.Error.InvalidArgument");
    s2.delete(opts([("children", Variant::Bool(true))]))
        .await
        .expect("children");
    assert_eq!(dom.snapshot_count().await.expect("count"), 1);

    // A domain with snapshots needs snapshots-metadata to be undefined.
    dom.destroy(no_opts()).await.expect("destroy");
    let r = dom.undefine(no_opts()).await;
    assert_eq!(error_name(&r), "org.virtbus1.Error.InvalidState");
    assert!(error_message(&r).contains("snapshots-metadata"), "{r:?}");
    dom.undefine(opts([("snapshots-metadata", Variant::Bool(true))]))
        .await
        .expect("undefine");
    let got = sigs.take().await;
    assert!(
        got.iter()
            .any(|g| matches!(g, Sig::InterfacesRemoved { path, .. } if path == s3p.as_str()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_options_follow_libvirts_rules() {
    let bus = Bus::start();
    let _d = Daemon::start(&bus).await;
    let conn = bus.connect().await;
    let mut sigs = Signals::new(&conn).await;
    let mgr = manager(&conn).await;
    let dpath = mgr
        .define_domain(&test_domain("o"), no_opts())
        .await
        .expect("define");
    let dom = domain(&conn, &dpath).await;
    dom.start(no_opts()).await.expect("start");

    let create = |xml: String, o| {
        let dom = dom.clone();
        async move { dom.create_snapshot(&xml, o).await }
    };
    let b = |k: &'static str| (k, Variant::Bool(true));
    // quiesce needs disk-only; current needs redefine; redefine excludes no-metadata and halt.
    for (o, needle) in [
        (opts([b("quiesce")]), "disk-only"),
        (opts([b("current")]), "redefine"),
        (
            opts([b("redefine"), b("no-metadata")]),
            "mutually exclusive",
        ),
        (opts([b("redefine"), b("halt")]), "mutually exclusive"),
    ] {
        let r = create(snap_xml("x"), o).await;
        assert_eq!(
            error_name(&r),
            "org.virtbus1.Error.InvalidArgument",
            "{r:?}"
        );
        assert!(error_message(&r).contains(needle), "{r:?}");
    }
    assert_eq!(
        dom.snapshot_count().await.expect("count"),
        0,
        "nothing was made"
    );

    // Quiesce needs a running guest.
    dom.suspend(no_opts()).await.expect("suspend");
    let r = create(snap_xml("q"), opts([b("quiesce"), b("disk-only")])).await;
    assert_eq!(error_name(&r), "org.virtbus1.Error.InvalidState", "{r:?}");
    dom.resume(no_opts()).await.expect("resume");
    let q = create(snap_xml("q"), opts([b("quiesce"), b("disk-only")]))
        .await
        .expect("quiesced");
    let qs = snapshot(&conn, &q).await;
    assert_eq!(qs.kind().await.expect("Kind"), "disk-only");
    assert_eq!(qs.state().await.expect("State"), "disk-snapshot");

    // A snapshot the user already froze for stays frozen.
    dom.fs_freeze(no_opts()).await.expect("freeze");
    create(snap_xml("q2"), opts([b("quiesce"), b("disk-only")]))
        .await
        .expect("quiesced again");
    assert_eq!(
        dom.fs_thaw(no_opts()).await.expect("thaw"),
        1,
        "still frozen by the user"
    );

    // no-metadata records nothing.
    let none = create(snap_xml("ghost"), opts([b("no-metadata")]))
        .await
        .expect("no-metadata");
    assert_eq!(none.as_str(), "/");
    assert!(dom.lookup_snapshot("ghost").await.is_err());

    // Elements only redefine may set.
    let r = create(
        "<domainsnapshot><name>p</name><parent><name>q</name></parent></domainsnapshot>".into(),
        no_opts(),
    )
    .await;
    assert_eq!(error_name(&r), "org.virtbus1.Error.InvalidArgument");
    assert!(
        error_message(&r).contains("/domainsnapshot/parent"),
        "{r:?}"
    );

    // A name that exists.
    let r = create(snap_xml("q"), no_opts()).await;
    assert_eq!(error_name(&r), "org.virtbus1.Error.AlreadyExists");

    // halt stops the domain after the snapshot.
    sigs.take().await;
    create(snap_xml("h"), opts([b("halt")]))
        .await
        .expect("halt");
    let got = sigs.take().await;
    assert_eq!(
        lifecycle(&got),
        [("stopped".into(), "from-snapshot".into())]
    );
    assert_eq!(dom.state().await.expect("State"), "shut-off");

    // A snapshot without a name is named after its creation time.
    let t = create("<domainsnapshot/>".into(), no_opts())
        .await
        .expect("unnamed");
    let name = snapshot(&conn, &t).await.name().await.expect("Name");
    assert!(
        name.parse::<u64>().is_ok_and(|n| n > 1_700_000_000),
        "{name}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redefine_imports_metadata() {
    let bus = Bus::start();
    let _d = Daemon::start(&bus).await;
    let conn = bus.connect().await;
    let mgr = manager(&conn).await;
    let apath = mgr
        .define_domain(&test_domain("a"), no_opts())
        .await
        .expect("a");
    let bpath = mgr
        .define_domain(&test_domain("b"), no_opts())
        .await
        .expect("b");
    let a = domain(&conn, &apath).await;
    let b = domain(&conn, &bpath).await;
    let s = a
        .create_snapshot(&snap_xml("base"), no_opts())
        .await
        .expect("base");
    let exported = snapshot(&conn, &s)
        .await
        .get_xml(no_opts())
        .await
        .expect("xml");
    let r = b
        .create_snapshot(&exported, opts([("redefine", Variant::Bool(true))]))
        .await;
    assert_eq!(
        error_name(&r),
        "org.virtbus1.Error.InvalidArgument",
        "another domain's snapshot"
    );
    assert!(
        error_message(&r).contains("/domainsnapshot/domain/uuid"),
        "{r:?}"
    );

    let buuid = b.uuid().await.expect("uuid");
    let xml = format!(
        "<domainsnapshot><name>imported</name><state>shutoff</state>\
         <creationTime>1600000000</creationTime>\
         <domain type='test'><name>b</name><uuid>{buuid}</uuid><memory>524288</memory>\
         <vcpu>2</vcpu><os><type>hvm</type></os></domain></domainsnapshot>"
    );
    let imported = b
        .create_snapshot(
            &xml,
            opts([
                ("redefine", Variant::Bool(true)),
                ("current", Variant::Bool(true)),
            ]),
        )
        .await
        .expect("redefine");
    let imp = snapshot(&conn, &imported).await;
    assert_eq!(imp.creation_time().await.expect("time"), 1_600_000_000);
    assert!(imp.is_current().await.expect("current"));
    assert_eq!(
        b.state().await.expect("State"),
        "shut-off",
        "redefine touches no guest"
    );
}

/// The `Job` property shows a snapshot while it runs; reads of the domain are not held up by
/// it; a caller that goes away does not cancel it; and a daemon asked to stop meanwhile
/// finishes it (and records it) before exiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_job_is_shown_survives_its_caller_and_a_stopping_daemon() {
    let bus = Bus::start();
    let mut d = Daemon::start(&bus).await;
    let conn = bus.connect().await;
    let mut sigs = Signals::new(&conn).await;
    let mgr = manager(&conn).await;
    let dpath = mgr
        .define_domain(&slow_domain("slowsnap", 1500), no_opts())
        .await
        .expect("define");
    let dom = domain(&conn, &dpath).await;
    dom.start(no_opts()).await.expect("start");
    sigs.take().await;

    // Job, and reads while it runs
    let d2 = dom.clone();
    let create = tokio::spawn(async move { d2.create_snapshot(&snap_xml("j1"), no_opts()).await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let t = std::time::Instant::now();
    assert_eq!(dom.job().await.expect("Job"), "snapshot-create");
    assert_eq!(dom.state().await.expect("State"), "running");
    assert!(
        t.elapsed() < std::time::Duration::from_millis(500),
        "reads wait for nothing"
    );
    create.await.expect("join").expect("j1");
    assert_eq!(dom.job().await.expect("Job"), "");
    let jobs: Vec<String> = changes_of(&sigs.take().await, dpath.as_str(), "Job")
        .iter()
        .map(|v| String::try_from(v.try_clone().expect("v")).expect("s"))
        .collect();
    assert_eq!(jobs, ["snapshot-create", ""]);

    // The caller leaves mid-snapshot: the snapshot is still taken.
    let c2 = bus.connect().await;
    let dom2 = domain(&c2, &dpath).await;
    let gone = tokio::spawn(async move { dom2.create_snapshot(&snap_xml("j2"), no_opts()).await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    gone.abort();
    drop(c2);
    let t = std::time::Instant::now();
    while dom.lookup_snapshot("j2").await.is_err() {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(10),
            "j2 never appeared"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // SIGTERM mid-snapshot: the daemon finishes it, then exits; it is there after a restart.
    let d3 = dom.clone();
    let pending = tokio::spawn(async move { d3.create_snapshot(&snap_xml("j3"), no_opts()).await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let t = std::time::Instant::now();
    d.signal_stop();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(d.running(), "the daemon waits for the snapshot");
    let status = d.wait_exit();
    assert!(status.success(), "{status}");
    assert!(
        t.elapsed() >= std::time::Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    let log = d.log_text();
    assert!(log.contains("operations that must finish"), "{log}");
    drop(pending);
    d.restart(&bus).await;
    let conn = bus.connect().await;
    let dom = domain(&conn, &dpath).await;
    let names: Vec<String> = names(&conn, dom.list_snapshots(no_opts()).await.expect("list")).await;
    assert_eq!(names, ["j1", "j2", "j3"]);
}

/// External (disk-only) snapshots cannot be reverted to or deleted with their images on the
/// test driver (it has no images; the QEMU driver does both): refused before anything
/// changes, also inside a subtree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_only_snapshots_refuse_revert_and_delete_but_forget_metadata() {
    let bus = Bus::start();
    let _d = Daemon::start(&bus).await;
    let conn = bus.connect().await;
    let mgr = manager(&conn).await;
    let dpath = mgr
        .define_domain(&test_domain("ext"), no_opts())
        .await
        .expect("define");
    let dom = domain(&conn, &dpath).await;
    dom.start(no_opts()).await.expect("start");
    let b = |k: &'static str| (k, Variant::Bool(true));
    let i1 = dom
        .create_snapshot(&snap_xml("i1"), no_opts())
        .await
        .expect("i1");
    let e1 = dom
        .create_snapshot(&snap_xml("e1"), opts([b("disk-only")]))
        .await
        .expect("e1");
    let i2 = dom
        .create_snapshot(&snap_xml("i2"), no_opts())
        .await
        .expect("i2");
    let e1s = snapshot(&conn, &e1).await;
    assert_eq!(e1s.kind().await.expect("Kind"), "disk-only");
    let r = e1s.revert(no_opts()).await;
    assert_eq!(error_name(&r), "org.virtbus1.Error.NotSupported", "{r:?}");
    let r = e1s.delete(no_opts()).await;
    assert_eq!(error_name(&r), "org.virtbus1.Error.NotSupported", "{r:?}");
    assert!(error_message(&r).contains("metadata-only"), "{r:?}");
    // i1 with children includes e1: refused as a whole, nothing deleted
    let i1s = snapshot(&conn, &i1).await;
    let r = i1s.delete(opts([b("children")])).await;
    assert_eq!(error_name(&r), "org.virtbus1.Error.NotSupported", "{r:?}");
    assert_eq!(dom.snapshot_count().await.expect("count"), 3);
    assert!(snapshot(&conn, &i2).await.name().await.is_ok());
    // metadata-only forgets it
    e1s.delete(opts([b("metadata-only")]))
        .await
        .expect("metadata-only");
    assert_eq!(dom.snapshot_count().await.expect("count"), 2);
    assert_eq!(
        snapshot(&conn, &i2).await.parent().await.expect("Parent"),
        i1
    );
}

/// Quiesce on the test driver follows the same rules as with a real agent: our own freeze
/// is undone, the user's is left, a paused domain is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiesce_rules_on_the_test_driver() {
    let bus = Bus::start();
    let _d = Daemon::start(&bus).await;
    let conn = bus.connect().await;
    let mgr = manager(&conn).await;
    let dpath = mgr
        .define_domain(&test_domain("qt"), no_opts())
        .await
        .expect("define");
    let dom = domain(&conn, &dpath).await;
    let b = |k: &'static str| (k, Variant::Bool(true));
    let quiesced = || opts([b("disk-only"), b("quiesce")]);
    // shut off, paused: InvalidState
    let r = dom.create_snapshot(&snap_xml("off"), quiesced()).await;
    assert_eq!(error_name(&r), "org.virtbus1.Error.InvalidState", "{r:?}");
    dom.start(opts([b("paused")])).await.expect("start paused");
    let r = dom.create_snapshot(&snap_xml("p"), quiesced()).await;
    assert_eq!(error_name(&r), "org.virtbus1.Error.InvalidState", "{r:?}");
    assert!(error_message(&r).contains("paused"), "{r:?}");
    dom.resume(no_opts()).await.expect("resume");
    // ours: frozen for the snapshot, thawed after
    dom.create_snapshot(&snap_xml("q"), quiesced())
        .await
        .expect("quiesced");
    assert_eq!(
        dom.fs_thaw(no_opts()).await.expect("thaw"),
        0,
        "left thawed"
    );
    // the user's: left frozen
    assert_eq!(dom.fs_freeze(no_opts()).await.expect("freeze"), 1);
    dom.create_snapshot(&snap_xml("q2"), quiesced())
        .await
        .expect("under the user's freeze");
    assert_eq!(
        dom.fs_thaw(no_opts()).await.expect("thaw"),
        1,
        "still frozen"
    );
    assert_eq!(dom.snapshot_count().await.expect("count"), 2);
}
