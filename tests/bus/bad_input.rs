//! Bad input gets its specific typed error, and nothing changes on disk or in memory.

use zbus::Variant;

use crate::support::{proxies::*, *};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bad_input_gets_its_error_and_changes_nothing() {
    let bus = Bus::start();
    let d = Daemon::start(&bus).await;
    let conn = bus.connect().await;
    let mgr = manager(&conn).await;
    let existing = mgr
        .define_domain(&test_domain("existing"), no_opts())
        .await
        .expect("define");
    let dom = domain(&conn, &existing).await;
    let uuid = dom.uuid().await.expect("uuid");
    dom.start(no_opts()).await.expect("start");
    let doomed = mgr
        .define_domain(&test_domain("doomed"), no_opts())
        .await
        .expect("doomed");
    domain(&conn, &doomed)
        .await
        .undefine(no_opts())
        .await
        .expect("undefine");

    let before_files = state_files(&d.state);
    let before_list = mgr.list_domains(no_opts()).await.expect("list");

    let big = format!(
        "<domain type='test'><name>big</name><description>{}</description>\
         <memory>1024</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>",
        "x".repeat(1 << 20)
    );
    let defines: Vec<(&str, String, &str, &str)> = vec![
        (
            "malformed XML",
            "<domain type='test'><name>x</name>".into(),
            "InvalidArgument",
            "malformed",
        ),
        ("over 1 MiB", big, "InvalidArgument", "limit"),
        (
            "unknown element",
            test_domain("u").replace("<vcpu>", "<frobnicate/><vcpu>"),
            "InvalidArgument",
            "/domain/frobnicate",
        ),
        (
            "unknown element deep in devices",
            test_domain("u").replace("</os>", "</os><devices><frobnicator/></devices>"),
            "InvalidArgument",
            "/domain/devices/frobnicator",
        ),
        (
            "duplicate name",
            test_domain("existing"),
            "AlreadyExists",
            "existing",
        ),
        (
            "duplicate uuid",
            test_domain("other").replace(
                "<name>other</name>",
                &format!("<name>other</name><uuid>{uuid}</uuid>"),
            ),
            "AlreadyExists",
            &uuid,
        ),
        (
            "invalid uuid",
            test_domain("u").replace("<name>u</name>", "<name>u</name><uuid>not-a-uuid</uuid>"),
            "InvalidArgument",
            "/domain/uuid",
        ),
        (
            "name with slash",
            test_domain("a/b"),
            "InvalidArgument",
            "/domain/name",
        ),
        (
            "name with control character",
            test_domain("a&#9;b"),
            "InvalidArgument",
            "/domain/name",
        ),
        (
            "empty name",
            test_domain(""),
            "InvalidArgument",
            "/domain/name",
        ),
        (
            "unknown domain type",
            test_domain("u").replace("type='test'", "type='xen'"),
            "InvalidArgument",
            "xen",
        ),
    ];
    for (what, xml, err, needle) in &defines {
        let r = mgr.define_domain(xml, no_opts()).await;
        assert_eq!(
            error_name(&r),
            format!("org.virtbus1.Error.{err}"),
            "{what}: {r:?}"
        );
        assert!(
            error_message(&r).contains(needle),
            "{what}: {needle:?} not in {:?}",
            error_message(&r)
        );
        let r = mgr.create_domain(xml, no_opts()).await;
        assert_eq!(
            error_name(&r),
            format!("org.virtbus1.Error.{err}"),
            "{what} (create): {r:?}"
        );
    }

    let b = |k: &'static str| opts([(k, Variant::Bool(true))]);
    let calls: Vec<(&str, zbus::Result<()>, &str, &str)> = vec![
        (
            "start a running domain",
            dom.start(no_opts()).await,
            "InvalidState",
            "already running",
        ),
        (
            "resume a running domain",
            dom.resume(no_opts()).await,
            "InvalidState",
            "existing",
        ),
        (
            "unknown option key",
            dom.suspend(b("bogus")).await,
            "InvalidArgument",
            "bogus",
        ),
        (
            "option of the wrong type",
            dom.destroy(opts([("graceful", Variant::from("yes"))]))
                .await,
            "InvalidArgument",
            "graceful",
        ),
        (
            "deleted object path",
            domain(&conn, &doomed).await.start(no_opts()).await,
            "NotFound",
            "no domain",
        ),
        (
            "shutdown mode",
            dom.shutdown(opts([("mode", Variant::from("magic"))])).await,
            "InvalidArgument",
            "magic",
        ),
    ];
    for (what, r, err, needle) in &calls {
        assert_eq!(
            error_name(r),
            format!("org.virtbus1.Error.{err}"),
            "{what}: {r:?}"
        );
        assert!(
            error_message(r).contains(needle),
            "{what}: {needle:?} not in {:?}",
            error_message(r)
        );
    }

    // A body of the wrong signature is refused by the router itself.
    let r: zbus::Result<zbus::Message> = conn
        .call_method(
            Some(NAME),
            existing.as_str(),
            Some("org.virtbus1.Domain"),
            "Start",
            &("x",),
        )
        .await;
    assert!(
        matches!(&r, Err(zbus::Error::FDO(e)) if matches!(**e, zbus::fdo::Error::InvalidArgs(_))),
        "{r:?}"
    );
    // A method that does not exist.
    let r: zbus::Result<zbus::Message> = conn
        .call_method(
            Some(NAME),
            existing.as_str(),
            Some("org.virtbus1.Domain"),
            "Explode",
            &(),
        )
        .await;
    assert!(
        matches!(&r, Err(zbus::Error::FDO(e)) if matches!(**e, zbus::fdo::Error::UnknownMethod(_))),
        "{r:?}"
    );

    // Snapshot input on the running domain.
    let r = dom
        .create_snapshot(
            "<domainsnapshot><name>a/b</name></domainsnapshot>",
            no_opts(),
        )
        .await;
    assert_eq!(
        error_name(&r),
        "org.virtbus1.Error.InvalidArgument",
        "{r:?}"
    );
    let r = dom
        .create_snapshot("<domainsnapshot><bogus/></domainsnapshot>", no_opts())
        .await;
    assert!(error_message(&r).contains("/domainsnapshot/bogus"), "{r:?}");
    let r = dom.lookup_snapshot("missing").await;
    assert_eq!(error_name(&r), "org.virtbus1.Error.NotFound", "{r:?}");

    assert_eq!(
        mgr.list_domains(no_opts()).await.expect("list"),
        before_list,
        "memory unchanged"
    );
    assert_eq!(dom.state().await.expect("State"), "running");
    assert_eq!(dom.snapshot_count().await.expect("count"), 0);
    assert_eq!(state_files(&d.state), before_files, "disk unchanged");
}
