//! A slow job on one domain holds up neither reads of it nor calls on other domains, and a
//! second job on the same domain waits its turn.

use std::time::{Duration, Instant};

use crate::support::{proxies::*, *};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_job_blocks_nothing_else() {
    let bus = Bus::start();
    let _d = Daemon::start(&bus).await;
    let c1 = bus.connect().await;
    let mgr = manager(&c1).await;
    let slow_path = mgr
        .define_domain(&slow_domain("slow", 1500), no_opts())
        .await
        .expect("define slow");

    // Client 1 starts the slow domain; the start takes 1.5 s.
    let slow = domain(&c1, &slow_path).await;
    let started = Instant::now();
    let start = tokio::spawn(async move { slow.start(no_opts()).await });
    tokio::time::sleep(Duration::from_millis(100)).await;

    // Client 2 queues a second job on the same domain: it must wait for the first.
    let c2 = bus.connect().await;
    let slow2 = domain(&c2, &slow_path).await;
    let destroy = tokio::spawn(async move {
        let r = slow2.destroy(no_opts()).await;
        (r, Instant::now())
    });

    // A slow transient create holds its name, but no one else.
    let c3 = bus.connect().await;
    let slow_create = tokio::spawn(async move {
        manager(&c3)
            .await
            .create_domain(&slow_domain("slow-create", 1500), no_opts())
            .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = mgr
        .create_domain(&slow_domain("slow-create", 10), no_opts())
        .await;
    assert_eq!(error_name(&r), "org.virtbus1.Error.AlreadyExists", "{r:?}");

    // Clients 3..6 work on other domains and read the slow one meanwhile.
    let mut others = Vec::new();
    for i in 0..4 {
        let conn = bus.connect().await;
        let slow_path = slow_path.clone();
        others.push(tokio::spawn(async move {
            let t = Instant::now();
            let mgr = manager(&conn).await;
            let p = mgr
                .define_domain(&test_domain(&format!("quick{i}")), no_opts())
                .await
                .expect("define");
            let dom = domain(&conn, &p).await;
            dom.start(no_opts()).await.expect("start");
            dom.suspend(no_opts()).await.expect("suspend");
            dom.destroy(no_opts()).await.expect("destroy");
            let s = domain(&conn, &slow_path).await;
            let state = s.state().await.expect("read the slow domain");
            let xml = s.get_xml(no_opts()).await.expect("xml of the slow domain");
            assert!(xml.contains("<name>slow</name>"));
            (t.elapsed(), state)
        }));
    }
    for o in others {
        let (took, state) = o.await.expect("join");
        assert!(
            took < Duration::from_millis(800),
            "other work took {took:?}"
        );
        assert_eq!(state, "shut-off", "reads see the state before the job ends");
    }
    start.await.expect("join").expect("slow start");
    slow_create.await.expect("join").expect("slow create");
    let start_done = started.elapsed();
    assert!(start_done >= Duration::from_millis(1400), "{start_done:?}");
    let (r, destroy_done) = destroy.await.expect("join");
    r.expect("destroy after the start");
    assert!(
        destroy_done.duration_since(started) >= Duration::from_millis(2900),
        "the destroy (also slow) ran after the start: {:?}",
        destroy_done.duration_since(started)
    );
    assert_eq!(
        domain(&c1, &slow_path).await.state().await.expect("state"),
        "shut-off"
    );
}
