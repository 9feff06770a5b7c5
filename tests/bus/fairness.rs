//! One peer that floods calls without reading the replies: it is refused beyond its share,
//! the daemon's memory stays bounded, and another peer's calls keep answering promptly.

use std::{
    io::{BufRead, BufReader, Read, Write},
    os::unix::net::UnixStream,
    time::{Duration, Instant},
};

use zbus::Message;

use crate::support::{proxies::*, *};

/// A bus connection on a bare socket, past authentication and `Hello`, that reads nothing.
fn raw_client(address: &str) -> UnixStream {
    let path = address.strip_prefix("unix:path=").expect("unix path");
    let mut s = UnixStream::connect(path).expect("connect");
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let hex: String = uid
        .to_string()
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect();
    s.write_all(format!("\0AUTH EXTERNAL {hex}\r\n").as_bytes())
        .expect("auth");
    let mut line = String::new();
    BufReader::new(&mut s)
        .read_line(&mut line)
        .expect("auth reply");
    assert!(line.starts_with("OK "), "{line}");
    s.write_all(b"BEGIN\r\n").expect("begin");
    let hello = Message::method_call("/org/freedesktop/DBus", "Hello")
        .destination("org.freedesktop.DBus")
        .interface("org.freedesktop.DBus")
        .build(&())
        .expect("build");
    s.write_all(hello.data().bytes()).expect("hello");
    s
}

fn managed_objects_call() -> Message {
    Message::method_call(MANAGER, "GetManagedObjects")
        .destination(NAME)
        .interface("org.freedesktop.DBus.ObjectManager")
        .build(&())
        .expect("build")
}

/// The daemon's resident memory, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The daemon's refusals (its `LimitsExceeded` replies, not the bus's) among everything
/// readable on `s` within `quiet`.
fn count_refusals(s: &mut UnixStream, quiet: Duration) -> usize {
    s.set_read_timeout(Some(quiet)).expect("timeout");
    let mut all = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buf[..n]);
    }
    let needle = b"read the replies before sending more";
    all.windows(needle.len()).filter(|w| w == needle).count()
}

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
    let size = om.get_managed_objects().await.expect("objects").len();
    let alone = t.elapsed();
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
