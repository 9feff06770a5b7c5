//! Hostile input and clients: the daemon answers with a typed error, keeps answering, and
//! keeps what it acknowledged.

use std::time::Duration;

use crate::support::{proxies::*, *};

/// `depth` elements nested in each other, the outermost in namespace `urn:app` when `ns`.
fn nested(depth: usize, ns: bool) -> String {
    let open = if ns { "<a xmlns='urn:app'>" } else { "<a>" };
    format!("{open}{}{}", "<a>".repeat(depth - 1), "</a>".repeat(depth))
}

/// The daemon still answers, quickly.
async fn still_answers(conn: &zbus::Connection) {
    let mgr = manager(conn).await;
    tokio::time::timeout(Duration::from_secs(5), mgr.list_domains(no_opts()))
        .await
        .expect("answers in time")
        .expect("list");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_xml_is_refused_on_every_path_and_the_daemon_survives() {
    let bus = Bus::start();
    let mut d = Daemon::start(&bus).await;
    let conn = bus.connect().await;
    let mgr = manager(&conn).await;
    let path = mgr
        .define_domain(&test_domain("deep"), no_opts())
        .await
        .expect("define");
    let dom = domain(&conn, &path).await;

    for depth in [300, 5000, 100_000] {
        let r = dom
            .set_metadata(
                "element",
                &nested(depth, false),
                "app",
                "urn:app",
                no_opts(),
            )
            .await;
        assert_eq!(
            error_name(&r),
            "org.virtbus1.Error.InvalidArgument",
            "{r:?}"
        );
        assert!(error_message(&r).contains("limit of"), "{r:?}");
        still_answers(&conn).await;

        let meta = format!("<metadata>{}</metadata>", nested(depth, true));
        let xml = test_domain("deeper").replace("</domain>", &format!("{meta}</domain>"));
        let r = mgr.define_domain(&xml, no_opts()).await;
        assert_eq!(
            error_name(&r),
            "org.virtbus1.Error.InvalidArgument",
            "{r:?}"
        );
        assert!(error_message(&r).contains("limit of"), "{r:?}");
        let snap = format!(
            "<domainsnapshot><name>s</name><cookie>{}</cookie></domainsnapshot>",
            nested(depth, false)
        );
        let r = dom.create_snapshot(&snap, no_opts()).await;
        assert_eq!(
            error_name(&r),
            "org.virtbus1.Error.InvalidArgument",
            "{r:?}"
        );
        still_answers(&conn).await;
    }
    let r = dom.get_metadata("element", "urn:app", no_opts()).await;
    assert_eq!(
        error_name(&r),
        "org.virtbus1.Error.NotFound",
        "nothing was stored"
    );

    // Within the limit, it is kept and read back.
    dom.set_metadata("element", &nested(200, false), "app", "urn:app", no_opts())
        .await
        .expect("200 deep is fine");
    let back = dom
        .get_metadata("element", "urn:app", no_opts())
        .await
        .expect("read back");
    assert_eq!(back.matches("<a").count(), 200);

    // A stored file nested too deep (an older daemon wrote it) is set aside at start, not a
    // crash.
    let file = d
        .state
        .join(format!("domains/{}.xml", dom.uuid().await.expect("uuid")));
    let text = std::fs::read_to_string(&file).expect("stored");
    let deep = text.replace(
        "</metadata>",
        &format!("{}</metadata>", nested(100_000, true)),
    );
    std::fs::write(&file, deep).expect("plant");
    d.restart(&bus).await;
    let conn = bus.connect().await;
    still_answers(&conn).await;
    assert!(file.with_extension("xml.corrupt").exists(), "set aside");
    assert!(d.log_text().contains("limit of"), "logged why");
}

/// A domain whose definition takes `size` bytes as given.
fn padded_domain(name: &str, size: usize) -> String {
    let head = format!("<domain type='test'><name>{name}</name><description>");
    let tail =
        "</description><memory>1024</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>";
    format!("{head}{}{tail}", "x".repeat(size - head.len() - tail.len()))
}

const LIMIT: usize = 1 << 20;

/// Nothing over the size limit is acknowledged, and everything acknowledged (or stored by an
/// earlier version, up to twice the limit) is there after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_over_the_size_limit_is_acknowledged_and_lost() {
    let bus = Bus::start();
    let mut d = Daemon::start(&bus).await;
    let conn = bus.connect().await;
    let mgr = manager(&conn).await;

    // Just under the limit as given, over it as stored (the record wraps it): refused.
    let r = mgr
        .define_domain(&padded_domain("over", LIMIT - 10), no_opts())
        .await;
    assert_eq!(
        error_name(&r),
        "org.virtbus1.Error.InvalidArgument",
        "{r:?}"
    );
    assert!(error_message(&r).contains("limit of 1048576"), "{r:?}");
    assert!(mgr.lookup_domain("over").await.is_err(), "not defined");

    // A definition that fits, but a snapshot of it (which embeds it) does not.
    let path = mgr
        .define_domain(&padded_domain("big", LIMIT - 4096), no_opts())
        .await
        .expect("fits");
    let dom = domain(&conn, &path).await;
    let uuid = dom.uuid().await.expect("uuid");
    let r = dom
        .create_snapshot("<domainsnapshot><name>s</name></domainsnapshot>", no_opts())
        .await;
    assert_eq!(
        error_name(&r),
        "org.virtbus1.Error.InvalidArgument",
        "{r:?}"
    );
    assert!(error_message(&r).contains("snapshot 's'"), "{r:?}");
    assert_eq!(dom.snapshot_count().await.expect("count"), 0);

    // What an earlier version stored: a snapshot file over the limit (of a running domain
    // whose persistent definition differs, so with both).
    let inactive = dom
        .get_xml(opts([("inactive", true.into())]))
        .await
        .expect("xml");
    let other = inactive
        .replace("<domain ", "<inactiveDomain ")
        .replace("</domain>", "</inactiveDomain>");
    let old = format!(
        "<domainsnapshot><name>old</name><state>shutoff</state><creationTime>1</creationTime>\
         <memory snapshot='no'/>{inactive}{other}</domainsnapshot>"
    );
    assert!(old.len() > 2 * LIMIT - 8192, "{}", old.len());
    let dir = d.state.join(format!("snapshots/{uuid}"));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("old.xml"), &old).expect("plant");

    // A small domain's snapshot is fine, and all of it survives a restart.
    let small = mgr
        .define_domain(&test_domain("small"), no_opts())
        .await
        .expect("small");
    domain(&conn, &small)
        .await
        .create_snapshot("<domainsnapshot><name>s</name></domainsnapshot>", no_opts())
        .await
        .expect("small snapshot");

    d.restart(&bus).await;
    let conn = bus.connect().await;
    let mgr = manager(&conn).await;
    let dom = domain(&conn, &mgr.lookup_domain("big").await.expect("big loads")).await;
    dom.lookup_snapshot("old")
        .await
        .expect("the old snapshot loads");
    assert_eq!(dom.snapshot_count().await.expect("count"), 1);
    let small = domain(&conn, &mgr.lookup_domain("small").await.expect("small")).await;
    small.lookup_snapshot("s").await.expect("small snapshot");
    let corrupt: Vec<_> = state_files(&d.state)
        .into_keys()
        .filter(|p| p.ends_with(".corrupt"))
        .collect();
    assert!(corrupt.is_empty(), "{corrupt:?}");
}

/// Temporary files of writes a crash interrupted are removed at start, and the domain and
/// snapshot they belong to load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leftover_temp_files_are_removed_at_start() {
    let bus = Bus::start();
    let mut d = Daemon::start(&bus).await;
    let conn = bus.connect().await;
    let mgr = manager(&conn).await;
    let path = mgr
        .define_domain(&test_domain("t"), no_opts())
        .await
        .expect("define");
    let dom = domain(&conn, &path).await;
    dom.create_snapshot("<domainsnapshot><name>s</name></domainsnapshot>", no_opts())
        .await
        .expect("snapshot");
    let uuid = dom.uuid().await.expect("uuid");
    d.kill();
    let planted = [
        d.state.join(format!("domains/.{uuid}.xml.tmp")),
        d.state.join(format!("snapshots/{uuid}/.s.xml.tmp")),
    ];
    for p in &planted {
        std::fs::write(p, "<virtbus-domain version='1'><domain type='te").expect("plant");
    }
    d.restart(&bus).await;
    let conn = bus.connect().await;
    let dom = domain(
        &conn,
        &manager(&conn)
            .await
            .lookup_domain("t")
            .await
            .expect("loads"),
    )
    .await;
    dom.lookup_snapshot("s").await.expect("snapshot loads");
    for p in &planted {
        assert!(!p.exists(), "{} is gone", p.display());
    }
}

/// A value wrapped in an extra variant is refused, naming the option; names with characters
/// XML forbids are refused, and nothing is defined.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extra_variants_and_forbidden_characters_are_refused() {
    let bus = Bus::start();
    let _d = Daemon::start(&bus).await;
    let conn = bus.connect().await;
    let mgr = manager(&conn).await;
    let doubly = zbus::Variant::Variant(Box::new(zbus::Variant::Bool(true)));
    let r = mgr.list_domains(opts([("active", doubly)])).await;
    assert_eq!(
        error_name(&r),
        "org.virtbus1.Error.InvalidArgument",
        "{r:?}"
    );
    assert!(error_message(&r).contains("'active'"), "{r:?}");
    mgr.list_domains(opts([("active", true.into())]))
        .await
        .expect("v(b) is fine");

    // The same for a property's value.
    let path = mgr
        .define_domain(&test_domain("props"), no_opts())
        .await
        .expect("define");
    let props = zbus::fdo::PropertiesProxy::builder(&conn)
        .destination(NAME)
        .path(path.as_str())
        .build()
        .await
        .expect("proxy");
    let iface = zbus::names::InterfaceName::try_from("org.virtbus1.Domain").expect("iface");
    let doubly = zbus::Variant::Variant(Box::new(zbus::Variant::Bool(true)));
    let r = props.set(iface.clone(), "Autostart", &doubly).await;
    assert!(format!("{r:?}").contains("InvalidArgs"), "{r:?}");
    props
        .set(iface, "Autostart", &zbus::Variant::Bool(true))
        .await
        .expect("v(b) is fine");
    domain(&conn, &path)
        .await
        .undefine(no_opts())
        .await
        .expect("undefine");

    for name in ["a&#xD800;b", "a&#x85;b", "a&#1;b", "a\u{1}b", "a\u{9f}b"] {
        let r = mgr.define_domain(&test_domain(name), no_opts()).await;
        assert_eq!(
            error_name(&r),
            "org.virtbus1.Error.InvalidArgument",
            "{name}: {r:?}"
        );
    }
    assert!(mgr.list_domains(no_opts()).await.expect("list").is_empty());
    let path = mgr
        .define_domain(&test_domain("fine"), no_opts())
        .await
        .expect("define");
    let dom = domain(&conn, &path).await;
    for name in ["s&#xDBFF;", "s&#x7f;", "s\u{85}"] {
        let xml = format!("<domainsnapshot><name>{name}</name></domainsnapshot>");
        let r = dom.create_snapshot(&xml, no_opts()).await;
        assert_eq!(
            error_name(&r),
            "org.virtbus1.Error.InvalidArgument",
            "{name}: {r:?}"
        );
    }
    assert_eq!(dom.snapshot_count().await.expect("count"), 0);
}
