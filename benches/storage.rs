//! Volume transfer throughput: `Upload` and `Download` of one raw volume through a file
//! descriptor, against `cp` of the same bytes on the same file system (with the copy flushed,
//! as an upload is). Run with `cargo bench --bench storage` (BENCH_MIB sets the size, default
//! 512); the target is at least 80% of `cp`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::{
    io::{Read, Write},
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use support::{Bus, Daemon, Launch, MANAGER, NAME, no_opts};
use zbus::{Fd, OwnedObjectPath};

fn mib() -> u64 {
    std::env::var("BENCH_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(512)
}

fn timed(what: &str, f: impl FnOnce()) -> Duration {
    let t0 = Instant::now();
    f();
    let d = t0.elapsed();
    eprintln!("  {what}: {d:.2?}");
    d
}

fn cp(src: &Path, dst: &Path) {
    let _ = std::fs::remove_file(dst);
    let st = Command::new("cp").arg(src).arg(dst).status().expect("cp");
    assert!(st.success());
    let st = Command::new("sync").arg(dst).status().expect("sync");
    assert!(st.success());
}

fn drop_caches() {
    let _ = std::fs::write("/proc/sys/vm/drop_caches", "3");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n = mib();
    let bus = Bus::start();
    let launch = Launch {
        // the daemon's default log level, as deployed (the tests' is debug)
        env: vec![("RUST_LOG".into(), "info".into())],
        ..Default::default()
    };
    let d = Daemon::start_launch(&bus, launch).await;
    let conn = bus.connect().await;
    let dir = d.state.join("images/bench");
    let pool_xml = format!(
        "<pool type='dir'><name>bench</name><target><path>{}</path></target></pool>",
        dir.display()
    );
    let reply = conn
        .call_method(
            Some(NAME),
            MANAGER,
            Some("org.virtbus1.Manager"),
            "CreatePool",
            &(pool_xml.as_str(), support::opts([("build", true.into())])),
        )
        .await
        .expect("CreatePool");
    let pool: OwnedObjectPath = reply.body().deserialize().expect("path");
    let vol_xml = format!("<volume><name>v.img</name><capacity unit='MiB'>{n}</capacity></volume>");
    let reply = conn
        .call_method(
            Some(NAME),
            pool.as_str(),
            Some("org.virtbus1.StoragePool"),
            "CreateVolume",
            &(vol_xml.as_str(), no_opts()),
        )
        .await
        .expect("CreateVolume");
    let vol: OwnedObjectPath = reply.body().deserialize().expect("path");

    let src = dir.with_file_name("bench-src");
    {
        let mut f = std::fs::File::create(&src).expect("src");
        let mut rnd = std::fs::File::open("/dev/urandom").expect("urandom");
        let mut buf = vec![0u8; 1 << 20];
        for _ in 0..n {
            rnd.read_exact(&mut buf).expect("random");
            f.write_all(&buf).expect("write");
        }
        f.sync_all().expect("sync");
    }
    eprintln!("{n} MiB:");
    let mut rows = Vec::new();
    for round in 0..3 {
        drop_caches();
        let cp_in = timed("cp + sync into the pool", || {
            cp(&src, &dir.with_file_name("bench-cp"))
        });
        drop_caches();
        let input = std::fs::File::open(&src).expect("src");
        let t0 = Instant::now();
        conn.call_method(
            Some(NAME),
            vol.as_str(),
            Some("org.virtbus1.StorageVolume"),
            "Upload",
            &(Fd::from(&input), no_opts()),
        )
        .await
        .expect("Upload");
        let up = t0.elapsed();
        eprintln!("  Upload: {up:.2?}");
        drop_caches();
        let cp_out = timed("cp out of the pool", || {
            let _ = std::fs::remove_file(dir.with_file_name("bench-out"));
            let st = Command::new("cp")
                .arg(dir.join("v.img"))
                .arg(dir.with_file_name("bench-out"))
                .status()
                .expect("cp");
            assert!(st.success());
        });
        drop_caches();
        let _ = std::fs::remove_file(dir.with_file_name("bench-dl"));
        let out = std::fs::File::create(dir.with_file_name("bench-dl")).expect("dl");
        let t0 = Instant::now();
        conn.call_method(
            Some(NAME),
            vol.as_str(),
            Some("org.virtbus1.StorageVolume"),
            "Download",
            &(Fd::from(&out), no_opts()),
        )
        .await
        .expect("Download");
        let down = t0.elapsed();
        eprintln!("  Download: {down:.2?}");
        rows.push((round, cp_in, up, cp_out, down));
    }
    let mbs = |d: Duration| n as f64 / d.as_secs_f64();
    println!(
        "| round | cp in MiB/s | Upload MiB/s | ratio | cp out MiB/s | Download MiB/s | ratio |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (r, ci, u, co, dl) in rows {
        println!(
            "| {r} | {:.0} | {:.0} | {:.0}% | {:.0} | {:.0} | {:.0}% |",
            mbs(ci),
            mbs(u),
            100.0 * ci.as_secs_f64() / u.as_secs_f64(),
            mbs(co),
            mbs(dl),
            100.0 * co.as_secs_f64() / dl.as_secs_f64()
        );
    }
    for f in ["bench-src", "bench-cp", "bench-out", "bench-dl"] {
        let _ = std::fs::remove_file(dir.with_file_name(f));
    }
}
