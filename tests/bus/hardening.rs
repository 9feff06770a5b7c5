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
