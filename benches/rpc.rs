//! libvirt's RPC protocol: virtbusd's socket against Debian's libvirtd (its test and QEMU
//! drivers), side by side with the same unchanged clients. Run with `cargo bench --bench rpc`
//! (BENCH_DOMAINS sets the domains defined, default 1000; BENCH_ITERS the calls of the
//! python loop, default 5000; BENCH_DRIVERS the drivers, default `test,qemu`).
//!
//! Figures: `virsh list --all` with the domains defined (a fresh connection each run, as a
//! shell user runs it), `virsh dominfo` of every domain in one connection (one virsh with
//! the commands separated by `;`), and a python3-libvirt loop of `domain.info()`. Both
//! daemons serve `test:///default` and `qemu:///system` over their Unix socket; the domains
//! (defined, not started) are defined through the socket by python3-libvirt.

#[path = "../tests/support/mod.rs"]
mod support;

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use support::{Bus, Daemon, Launch, libvirtd::Libvirtd};

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Define `n` domains `bench0…` of type `argv[3]` through `uri`, say so, and keep the
/// connection until stdin closes: `test:///default` lives only while a client holds it.
const DEFINE: &str = r#"
import sys, libvirt
c = libvirt.open(sys.argv[1])
for i in range(int(sys.argv[2])):
    c.defineXML("<domain type='%s'><name>bench%d</name><memory>65536</memory>"
                "<vcpu>1</vcpu><os><type>hvm</type></os></domain>" % (sys.argv[3], i))
print("defined", flush=True)
sys.stdin.read()
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

fn measure(uri: &str, kind: &str, domains: usize, iters: usize) -> Figures {
    let mut holder = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(DEFINE)
        .args([uri, &domains.to_string(), kind])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 with python3-libvirt");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.take().expect("stdout")),
        &mut line,
    )
    .expect("python's answer");
    assert_eq!(line.trim(), "defined", "defining the domains failed");
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
    drop(holder.stdin.take());
    let _ = holder.wait();
    Figures {
        list_ms,
        dominfo_per_s,
        info_per_s: iters as f64 / secs,
    }
}

/// A driver's URI at `sock`, and the domain type defined in it.
fn driver(name: &str, sock: &Path) -> (String, &'static str) {
    match name {
        "qemu" => (
            format!("qemu+unix:///system?socket={}", sock.display()),
            "qemu",
        ),
        _ => (
            format!("test+unix:///default?socket={}", sock.display()),
            "test",
        ),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let domains = env_num("BENCH_DOMAINS", 1000);
    let iters = env_num("BENCH_ITERS", 5000);
    let drivers: Vec<String> = std::env::var("BENCH_DRIVERS")
        .unwrap_or_else(|_| "test,qemu".into())
        .split(',')
        .map(str::to_owned)
        .collect();

    let bus = Bus::start();
    let sock = bus.dir.path().join("libvirt-sock");
    let sock_arg = sock.to_string_lossy().into_owned();
    let launch = Launch {
        extra: vec!["--libvirt-rpc-socket".into(), sock_arg],
        // the daemon's default log level, as deployed (the tests' is debug)
        env: vec![("RUST_LOG".into(), "info".into())],
        ..Default::default()
    };
    let d = Daemon::start_launch(&bus, launch).await;
    while std::os::unix::net::UnixStream::connect(&sock).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let ours: Vec<Figures> = drivers
        .iter()
        .map(|n| {
            let (uri, kind) = driver(n, &sock);
            measure(&uri, kind, domains, iters)
        })
        .collect();
    drop(d);

    let theirs: Option<Vec<Figures>> = match Libvirtd::available() {
        Err(why) => {
            eprintln!("no reference figures: {why}");
            None
        }
        Ok(()) => {
            let lv = Libvirtd::start();
            Some(
                drivers
                    .iter()
                    .map(|n| {
                        let (uri, kind) = driver(n, &lv.socket);
                        measure(&uri, kind, domains, iters)
                    })
                    .collect(),
            )
        }
    };
    println!(
        "libvirt RPC over the Unix socket, {domains} domains defined; virtbusd {} build",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    for (i, n) in drivers.iter().enumerate() {
        print(n, &ours[i], theirs.as_ref().map(|t| &t[i]), iters);
    }
    println!("ratio: how many times virtbusd's figure is better");
}

fn print(driver: &str, ours: &Figures, theirs: Option<&Figures>, iters: usize) {
    println!("\n{driver} driver");
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
}
