//! SIGTERM stops the daemon cleanly and leaves guests and their state alone.

use crate::support::{proxies::*, *};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_zero_and_leaves_running_guests_and_state_alone() {
    let bus = Bus::start();
    let mut d = Daemon::start(&bus).await;
    let conn = bus.connect().await;
    let mgr = manager(&conn).await;
    let path = mgr
        .define_domain(&test_domain("keep"), no_opts())
        .await
        .expect("define");
    let dom = domain(&conn, &path).await;
    dom.create_snapshot("<domainsnapshot><name>s</name></domainsnapshot>", no_opts())
        .await
        .expect("snapshot");
    dom.start(no_opts()).await.expect("start");
    let before = state_files(&d.state);
    assert!(before.len() >= 2, "{before:?}");
    let mut signals = Signals::new(&conn).await;

    let status = d.stop();
    assert!(status.success(), "{status}:\n{}", d.log_text());
    assert_eq!(state_files(&d.state), before, "state untouched by the stop");
    let log = d.log_text();
    assert!(
        log.contains("stopping; running guests keep running"),
        "{log}"
    );
    let sigs = signals.drain(std::time::Duration::from_millis(300)).await;
    assert_eq!(lifecycle(&sigs), [], "the stop stopped no guest");
}
