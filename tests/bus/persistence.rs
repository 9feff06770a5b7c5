//! State across daemon restarts, and a corrupt state file.

use zbus::Variant;

use crate::support::{proxies::*, *};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_persistent_domains_and_snapshots_at_the_same_paths() {
    let bus = Bus::start();
    let mut d = Daemon::start(&bus).await;
    let conn = bus.connect().await;
    let mgr = manager(&conn).await;
    let p1 = mgr
        .define_domain(&test_domain("p1"), no_opts())
        .await
        .expect("p1");
    let p2 = mgr
        .define_domain(&test_domain("p2"), no_opts())
        .await
        .expect("p2");
    let t = mgr
        .create_domain(&test_domain("t"), no_opts())
        .await
        .expect("t");
    let d1 = domain(&conn, &p1).await;
    let s1 = d1
        .create_snapshot(
            "<domainsnapshot><name>one</name></domainsnapshot>",
            no_opts(),
        )
        .await
        .expect("one");
    let s2 = d1
        .create_snapshot(
            "<domainsnapshot><name>two words</name></domainsnapshot>",
            no_opts(),
        )
        .await
        .expect("two");
    snapshot(&conn, &s1)
        .await
        .revert(no_opts())
        .await
        .expect("current is one");
    let d2 = domain(&conn, &p2).await;
    d2.set_autostart(true).await.expect("autostart");
    d2.start(no_opts()).await.expect("start p2");
    let uuid1 = d1.uuid().await.expect("uuid");

    // A crash, not a clean stop: everything acknowledged must be on disk.
    d.kill();
    d.restart(&bus).await;

    let list = mgr.list_domains(no_opts()).await.expect("list");
    assert_eq!(list, [p1.clone(), p2.clone()], "transient domain is gone");
    let d1 = domain(&conn, &p1).await;
    assert_eq!(d1.uuid().await.expect("uuid"), uuid1);
    assert_eq!(d1.state().await.expect("State"), "shut-off");
    assert_eq!(d1.snapshot_count().await.expect("count"), 2);
    assert_eq!(d1.current_snapshot().await.expect("current"), s1);
    assert_eq!(
        d1.list_snapshots(no_opts()).await.expect("snaps"),
        [s1.clone(), s2.clone()]
    );
    let two = snapshot(&conn, &s2).await;
    assert_eq!(two.name().await.expect("Name"), "two words");
    assert_eq!(two.parent().await.expect("Parent"), s1);
    let d2 = domain(&conn, &p2).await;
    assert!(d2.autostart().await.expect("autostart"));
    assert_eq!(d2.state().await.expect("autostarted"), "running");
    let r = domain(&conn, &t).await.state().await;
    assert!(r.is_err(), "transient domain is gone: {r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_state_file_is_set_aside_and_the_rest_loads() {
    let bus = Bus::start();
    let mut d = Daemon::start(&bus).await;
    let conn = bus.connect().await;
    let mgr = manager(&conn).await;
    let good = mgr
        .define_domain(&test_domain("good"), no_opts())
        .await
        .expect("good");
    let victim = mgr
        .define_domain(&test_domain("victim"), no_opts())
        .await
        .expect("victim");
    let vuuid = domain(&conn, &victim).await.uuid().await.expect("uuid");
    d.stop();
    let file = d.state.join("domains").join(format!("{vuuid}.xml"));
    let text = std::fs::read_to_string(&file).expect("state file");
    std::fs::write(&file, &text[..text.len() / 2]).expect("truncate");
    d.restart(&bus).await;
    assert_eq!(mgr.list_domains(no_opts()).await.expect("list"), [good]);
    assert!(!file.exists());
    let aside = d.state.join("domains").join(format!("{vuuid}.xml.corrupt"));
    assert!(aside.exists(), "set aside as {}", aside.display());
    assert!(
        d.log_text().contains("moved it to"),
        "logged:\n{}",
        d.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_files_are_written_for_persistent_domains_only() {
    let bus = Bus::start();
    let d = Daemon::start(&bus).await;
    let conn = bus.connect().await;
    let mgr = manager(&conn).await;
    mgr.create_domain(&test_domain("t"), no_opts())
        .await
        .expect("t");
    let p = mgr
        .define_domain(&test_domain("p"), no_opts())
        .await
        .expect("p");
    let files: Vec<_> = std::fs::read_dir(d.state.join("domains"))
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let dom = domain(&conn, &p).await;
    dom.create_snapshot("<domainsnapshot><name>s</name></domainsnapshot>", no_opts())
        .await
        .expect("snap");
    dom.undefine(opts([("snapshots-metadata", Variant::Bool(true))]))
        .await
        .expect("undefine");
    // Only the domain's files must go; the daemon's own first-start markers stay.
    let left: Vec<_> = walk(&d.state)
        .into_iter()
        .filter(|p| p.file_name().is_none_or(|n| n != ".initialized"))
        .collect();
    assert!(left.is_empty(), "nothing left behind: {left:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A definition stored by an earlier version, without libvirt's defaults, gets them once at
/// start: the file is rewritten, and GetXML shows what the next start runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_definitions_are_completed_with_their_defaults_once() {
    let bus = Bus::start();
    let mut d = Daemon::start(&bus).await;
    let conn = bus.connect().await;
    let mgr = manager(&conn).await;
    let path = mgr
        .define_domain(&test_domain("old"), no_opts())
        .await
        .expect("define");
    let uuid = domain(&conn, &path).await.uuid().await.expect("uuid");
    d.stop();
    // strip what this version filled in, as an earlier version stored it
    let file = d.state.join("domains").join(format!("{uuid}.xml"));
    let text = std::fs::read_to_string(&file).expect("state file");
    let old: String = text
        .lines()
        .filter(|l| {
            ![
                "<currentMemory",
                "<boot dev",
                "<clock",
                "<on_poweroff",
                "<on_reboot",
                "<on_crash",
            ]
            .iter()
            .any(|p| l.trim_start().starts_with(p))
        })
        .map(|l| format!("{}\n", l.replace(" placement='static'", "")))
        .collect();
    assert_ne!(old, text, "the test removed something");
    std::fs::write(&file, &old).expect("write old form");
    d.restart(&bus).await;
    let xml = domain(&conn, &path)
        .await
        .get_xml(no_opts())
        .await
        .expect("xml");
    for part in [
        "<currentMemory unit='KiB'>524288</currentMemory>",
        "<vcpu placement='static'>2</vcpu>",
        "<boot dev='hd'/>",
        "<clock offset='utc'/>",
        "<on_crash>destroy</on_crash>",
    ] {
        assert!(xml.contains(part), "{part} in {xml}");
    }
    let stored = std::fs::read_to_string(&file).expect("state file");
    assert!(stored.contains("<currentMemory"), "rewritten: {stored}");
    assert!(
        d.log_text().contains("completed with their defaults"),
        "{}",
        d.log_text()
    );
}
