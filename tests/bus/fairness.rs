//! One peer that floods calls without reading the replies: it is refused beyond its share,
//! the daemon's memory stays bounded, and another peer's calls keep answering promptly.

use std::{
    io::Write,
    time::{Duration, Instant},
};

use crate::support::{flood::*, proxies::*, *};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_peer_is_refused_and_others_keep_their_latency() {
    let bus = Bus::start();
    let d = Daemon::start(&bus).await;
    let conn = bus.connect().await;
    let mgr = manager(&conn).await;
    for i in 0..300 {
        mgr.define_domain(&test_domain(&format!("d{i:03}")), no_opts())
            .await
            .expect("define");
    }
    let om = zbus::fdo::ObjectManagerProxy::builder(&conn)
        .destination(NAME)
        .path(MANAGER)
        .build()
        .await
        .expect("proxy");
    let t = Instant::now();
    let objects = om.get_managed_objects().await.expect("objects");
    let alone = t.elapsed();
    // The domains, besides the host's interfaces and devices.
    let size = objects
        .keys()
        .filter(|p| p.as_str().starts_with("/org/virtbus1/domain/"))
        .count();
    assert_eq!(size, 300);
    let rss_before = rss_kib(d.pid());

    let calls = 2000;
    let address = bus.address.clone();
    let flood = std::thread::spawn(move || {
        let mut s = raw_client(&address);
        for _ in 0..calls {
            if s.write_all(managed_objects_call().data().bytes()).is_err() {
                break;
            }
        }
        s
    });

    // Meanwhile another peer's calls answer promptly, and the daemon does not grow.
    let mut worst = Duration::ZERO;
    let mut rss_peak = rss_before;
    for _ in 0..20 {
        let t = Instant::now();
        let r = tokio::time::timeout(Duration::from_secs(10), mgr.list_domains(no_opts())).await;
        let took = t.elapsed();
        assert!(matches!(r, Ok(Ok(ref v)) if v.len() == 300), "{r:?}");
        worst = worst.max(took);
        rss_peak = rss_peak.max(rss_kib(d.pid()));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut s = flood.join().expect("flood");
    let refused = count_refusals(&mut s, Duration::from_secs(2));
    rss_peak = rss_peak.max(rss_kib(d.pid()));
    eprintln!(
        "GetManagedObjects alone: {alone:?}; other peer's worst ListDomains during the flood: \
         {worst:?}; daemon RSS {rss_before} KiB before, {rss_peak} KiB at most; {refused} of \
         {calls} flooded calls refused"
    );
    assert!(refused > 0, "the flooding peer is refused beyond its share");
    // Without the limiter the other peer gets no answer within 10 s; with it, tens to
    // hundreds of milliseconds. The bound leaves room for a loaded CI machine.
    assert!(worst < Duration::from_secs(3), "{worst:?}");
    assert!(rss_peak < rss_before + 100 * 1024, "{rss_peak} KiB");
    drop(s);
    // The daemon still answers everyone.
    om.get_managed_objects().await.expect("after the flood");
}
