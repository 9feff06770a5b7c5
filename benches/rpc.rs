//! libvirt's RPC protocol: virtbusd's socket against Debian's libvirtd (its test driver),
//! side by side with the same unchanged clients. Run with `cargo bench --bench rpc`
//! (BENCH_DOMAINS sets the domains defined, default 1000; BENCH_ITERS the calls of the
//! python loop, default 5000).
//!
//! Figures: `virsh list --all` with the domains defined (a fresh connection each run, as a
//! shell user runs it), `virsh dominfo` of every domain in one connection (one virsh with
//! the commands separated by `;`), and a python3-libvirt loop of `domain.info()`. Both
//! daemons serve `test:///default` over their Unix socket; the domains are defined through
//! the socket by python3-libvirt.

#[path = "../tests/support/mod.rs"]
mod support;

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use support::{Bus, Daemon, libvirtd::Libvirtd};

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Define `n` test-driver domains `bench0…` through `uri`.
const DEFINE: &str = r#"
import sys, libvirt
c = libvirt.open(sys.argv[1])
for i in range(int(sys.argv[2])):
    c.defineXML("<domain type='test'><name>bench%d</name><memory>65536</memory>"
                "<vcpu>1</vcpu><os><type>hvm</type></os></domain>" % i)
"#;

/// `domain.info()` `n` times on one connection; prints the seconds taken.
const INFO_LOOP: &str = r#"
import sys, time, libvirt
c = libvirt.open(sys.argv[1])
d = c.lookupByName("bench0")
n = int(sys.argv[2])
t = time.perf_counter()
for _ in range(n):
    d.info()
print(time.perf_counter() - t)
"#;

fn python(script: &str, args: &[&str]) -> String {
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 with python3-libvirt");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn virsh(uri: &str, args: &[&str]) -> Duration {
    let t = Instant::now();
    let out = Command::new("/usr/bin/virsh")
        .arg("-q")
        .arg("-c")
        .arg(uri)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("virsh");
    let d = t.elapsed();
    assert!(
        out.status.success(),
        "virsh {:?} failed: {}",
        args.first(),
        String::from_utf8_lossy(&out.stderr)
    );
    d
}

struct Figures {
    list_ms: f64,
    dominfo_per_s: f64,
    info_per_s: f64,
}

fn measure(uri: &str, domains: usize, iters: usize) -> Figures {
    python(DEFINE, &[uri, &domains.to_string()]);
    // warm up: the first connection of a daemon pays for its set-up
    virsh(uri, &["list", "--all"]);
    let runs = 10;
    let mut total = Duration::ZERO;
    for _ in 0..runs {
        total += virsh(uri, &["list", "--all"]);
    }
    let list_ms = total.as_secs_f64() * 1000.0 / runs as f64;
    let cmds: Vec<String> = (0..domains).map(|i| format!("dominfo bench{i}")).collect();
    let batch = cmds.join(" ; ");
    let t = virsh(uri, &[&batch]);
    let dominfo_per_s = domains as f64 / t.as_secs_f64();
    let secs: f64 = python(INFO_LOOP, &[uri, &iters.to_string()])
        .parse()
        .expect("seconds");
    Figures {
        list_ms,
        dominfo_per_s,
        info_per_s: iters as f64 / secs,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let domains = env_num("BENCH_DOMAINS", 1000);
    let iters = env_num("BENCH_ITERS", 5000);

    let bus = Bus::start();
    let sock = bus.dir.path().join("libvirt-sock");
    let sock_arg = sock.to_string_lossy().into_owned();
    let d = Daemon::start_with(
        &bus,
        &bus.dir.path().join("state"),
        &bus.dir.path().join("run"),
        &["--libvirt-rpc-socket", &sock_arg],
    )
    .await;
    while std::os::unix::net::UnixStream::connect(&sock).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let ours = measure(&test_uri(&sock), domains, iters);
    drop(d);

    if let Err(why) = Libvirtd::available() {
        eprintln!("no reference figures: {why}");
        print(&ours, None, domains, iters);
        return;
    }
    let lv = Libvirtd::start();
    let theirs = measure(&test_uri(&lv.socket), domains, iters);
    print(&ours, Some(&theirs), domains, iters);
}

fn test_uri(sock: &Path) -> String {
    format!("test+unix:///default?socket={}", sock.display())
}

fn print(ours: &Figures, theirs: Option<&Figures>, domains: usize, iters: usize) {
    println!("libvirt RPC, test:///default over the Unix socket, {domains} domains");
    println!(
        "{:<44} {:>12} {:>12} {:>8}",
        "figure", "virtbusd", "libvirtd", "ratio"
    );
    let row = |name: &str, a: f64, b: Option<f64>, higher_better: bool| {
        let (theirs, ratio) = match b {
            Some(b) => {
                let r = if higher_better { a / b } else { b / a };
                (format!("{b:.1}"), format!("{r:.2}x"))
            }
            None => ("-".into(), "-".into()),
        };
        println!("{name:<44} {a:>12.1} {theirs:>12} {ratio:>8}");
    };
    row(
        "virsh list --all (ms per run, lower better)",
        ours.list_ms,
        theirs.map(|t| t.list_ms),
        false,
    );
    row(
        "virsh dominfo, one connection (calls/s)",
        ours.dominfo_per_s,
        theirs.map(|t| t.dominfo_per_s),
        true,
    );
    row(
        &format!("python domain.info() x{iters} (calls/s)"),
        ours.info_per_s,
        theirs.map(|t| t.info_per_s),
        true,
    );
    println!("ratio: how many times virtbusd's figure is better");
}
