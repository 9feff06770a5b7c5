//! The API from a shell, with busctl and gdbus, and the served introspection.

use std::process::Command;

use crate::support::{proxies::*, *};

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run tool");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busctl_and_gdbus_drive_the_daemon() {
    let bus = Bus::start();
    let _d = Daemon::start(&bus).await;
    let addr = bus.address.clone();
    let busctl = |args: &[&str]| {
        let mut c = Command::new("busctl");
        c.arg(format!("--address={addr}")).args(args);
        run(&mut c)
    };
    let out = busctl(&[
        "call",
        NAME,
        MANAGER,
        "org.virtbus1.Manager",
        "DefineDomain",
        "sa{sv}",
        &test_domain("shell"),
        "0",
    ]);
    assert!(out.starts_with("o \"/org/virtbus1/domain/"), "{out}");
    let path = out
        .trim()
        .trim_start_matches("o ")
        .trim_matches('"')
        .to_owned();
    busctl(&[
        "call",
        NAME,
        &path,
        "org.virtbus1.Domain",
        "Start",
        "a{sv}",
        "0",
    ]);
    let state = busctl(&["get-property", NAME, &path, "org.virtbus1.Domain", "State"]);
    assert_eq!(state.trim(), "s \"running\"");
    let tree = busctl(&["tree", NAME]);
    assert!(tree.contains(&path), "{tree}");

    let gdbus = |args: &[&str]| {
        let mut c = Command::new("gdbus");
        c.args(["call", "--address", &addr, "--dest", NAME])
            .args(args);
        run(&mut c)
    };
    let out = gdbus(&[
        "--object-path",
        MANAGER,
        "--method",
        "org.virtbus1.Manager.ListDomains",
        "{'active': <true>}",
    ]);
    assert!(out.contains(&path), "{out}");
    let out = gdbus(&[
        "--object-path",
        &path,
        "--method",
        "org.virtbus1.Domain.CreateSnapshot",
        "<domainsnapshot><name>from-gdbus</name></domainsnapshot>",
        "{}",
    ]);
    assert!(out.contains("/snapshot/from_2dgdbus"), "{out}");
    let out = gdbus(&[
        "--object-path",
        &path,
        "--method",
        "org.freedesktop.DBus.Properties.Get",
        "org.virtbus1.Domain",
        "SnapshotCount",
    ]);
    assert_eq!(out.trim(), "(<uint32 1>,)");
}

/// What `Introspect` serves for each interface is the shipped XML, byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_introspection_is_the_shipped_xml() {
    let bus = Bus::start();
    let _d = Daemon::start(&bus).await;
    let conn = bus.connect().await;
    let mgr = manager(&conn).await;
    let dpath = mgr
        .define_domain(&test_domain("i"), no_opts())
        .await
        .expect("define");
    let spath = domain(&conn, &dpath)
        .await
        .create_snapshot("<domainsnapshot><name>s</name></domainsnapshot>", no_opts())
        .await
        .expect("snapshot");
    let introspect = |path: String| {
        let conn = conn.clone();
        async move {
            let p = zbus::fdo::IntrospectableProxy::builder(&conn)
                .destination(NAME)
                .path(path)
                .build()
                .await
                .expect("proxy");
            p.introspect().await.expect("introspect")
        }
    };
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/dbus");
    for (path, file, name) in [
        (
            MANAGER.to_owned(),
            "org.virtbus1.Manager.xml",
            "org.virtbus1.Manager",
        ),
        (
            dpath.to_string(),
            "org.virtbus1.Domain.xml",
            "org.virtbus1.Domain",
        ),
        (
            spath.to_string(),
            "org.virtbus1.Snapshot.xml",
            "org.virtbus1.Snapshot",
        ),
    ] {
        let shipped = std::fs::read_to_string(format!("{dir}/{file}")).expect("shipped xml");
        let start = shipped.find("<interface").expect("interface");
        let end = shipped.rfind("</interface>").expect("end") + "</interface>".len();
        let served = introspect(path.clone()).await;
        assert!(
            served.contains(&shipped[start..end]),
            "{path} does not serve {file} verbatim:\n{served}"
        );
        let doc = roxmltree::Document::parse_with_options(
            &served,
            roxmltree::ParsingOptions {
                allow_dtd: true,
                ..Default::default()
            },
        )
        .expect("served XML parses");
        assert_eq!(
            doc.descendants()
                .filter(|n| n.has_tag_name("interface") && n.attribute("name") == Some(name))
                .count(),
            1
        );
    }
    let root = introspect("/org/virtbus1/domain".into()).await;
    assert!(root.contains(&format!(
        "<node name=\"{}\"/>",
        dpath.as_str().rsplit('/').next().expect("last")
    )));
    let snaps = introspect(format!("{}/snapshot", dpath.as_str())).await;
    assert!(snaps.contains("<node name=\"s\"/>"), "{snaps}");
}
