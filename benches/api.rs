//! The API benchmark: figures for virtbusd and, in the same run with the same client, for the
//! reference stack (Debian's libvirt-dbus with libvirt's test driver). Run with
//! `cargo bench --bench api` (BENCH_ITERS sets the calls per figure, default 2000;
//! BENCH_ONLY=facade measures the libvirt facade alone).
//!
//! The client is Python GDBus making synchronous calls, as the reference figures were measured;
//! `Peer.Ping` to each daemon gives the bus round trip that no daemon can beat. The libvirt
//! facade (`--libvirt-compat`) is measured with the reference's own calls, and for the longest
//! reply the CPU time of client, bus and daemon is accounted per call.

#[path = "../tests/support/mod.rs"]
mod support;

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use support::{Bus, Daemon, polkit::PolkitEnv, proxies::*, *};

const CLIENT: &str = include_str!("client.py");
const TEST_DOMAIN: &str = "/org/libvirt/Test/domain/_6695eb01_f6a4_8304_79aa_97f2502e193f";

fn iters() -> usize {
    std::env::var("BENCH_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000)
}

/// Run the client as root against `address`.
fn client(address: &str, args: &[&str]) -> Value {
    let out = Command::new("/usr/bin/python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/benches/client.py"))
        .args(args)
        .env("BENCH_BUS_ADDRESS", address)
        .output()
        .expect("python3 with gi (python3-gi) is needed");
    parse(&out)
}

fn parse(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("client prints JSON")
}

/// Run the client as `user` inside the polkit environment.
fn client_as(env: &PolkitEnv, user: &str, args: &[&str]) -> Value {
    let path = env.workdir().join("bench-client.py");
    if !path.exists() {
        std::fs::write(&path, CLIENT).expect("client");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let out = env
        .command_as(user, "/usr/bin/python3")
        .arg(&path)
        .args(args)
        .env("BENCH_BUS_ADDRESS", &env.address)
        .output()
        .expect("client");
    parse(&out)
}

/// CPU µs per call of the client, the bus and the daemon.
type Split = (f64, f64, f64);

/// CPU time (user + system) of a process so far, in µs.
fn cpu_us(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15, the 12th and 13th after the name.
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks as f64 * 1e6 / hz
}

/// Run the latency client for a call while accounting the CPU time of the daemon (`server`)
/// and the bus (`bus`): the figures, with (client, bus, server) CPU µs per call.
fn lat_split(address: &str, server: u32, bus: u32, args: &[&str]) -> (Value, Split) {
    let iters: f64 = args[1].parse().unwrap_or(1.0);
    let calls = iters + iters.min(100.0);
    let (s0, b0) = (cpu_us(server), cpu_us(bus));
    let v = client(address, args);
    let (s1, b1) = (cpu_us(server), cpu_us(bus));
    let split = (
        v["cpu"].as_f64().unwrap_or(0.0),
        (b1 - b0) / calls,
        (s1 - s0) / calls,
    );
    (v, split)
}

/// A call's latency and the bus floor (Peer.Ping to the same object) measured alternately in
/// one loop, so that both see the same conditions: (floor, call).
fn with_floor(address: &str, n: &str, dest: &str, path: &str, call: &str) -> (Value, Value) {
    let v = client(
        address,
        &[
            "alt",
            n,
            dest,
            &format!("{path} org.freedesktop.DBus.Peer.Ping ()"),
            &format!("{path} {call}"),
        ],
    );
    (v["a"].clone(), v["b"].clone())
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[derive(Default, Clone)]
struct Figures {
    /// The bus floor, measured alternately with Get(Name) and with GetXML.
    ping: Option<Value>,
    ping_xml: Option<Value>,
    get_name: Option<Value>,
    get_xml: Option<Value>,
    list_1: Option<Value>,
    list_1000: Option<Value>,
    managed_1000: Option<Value>,
    /// GetManagedObjects with 1001 domains: CPU µs per call of the client, bus and daemon.
    managed_1000_split: Option<Split>,
    /// The same call from a zbus client, which receives and checks the reply but does not
    /// decode it: (p50, p99) ms.
    managed_1000_zbus: Option<(f64, f64)>,
    define_1000_s: Option<f64>,
    owned_0_ms: Option<f64>,
    owned_1000_ms: Option<f64>,
    rss_idle: Option<u64>,
    rss_1000: Option<u64>,
    /// ListDomains with 1001 domains: CPU µs per call of the client, the bus and the daemon.
    list_1000_split: Option<Split>,
}

fn lat(v: &Option<Value>) -> String {
    match v {
        Some(v) => format!(
            "p50 {:.0} µs, p99 {:.0} µs, {:.0}/s",
            v["p50"].as_f64().unwrap_or(0.0),
            v["p99"].as_f64().unwrap_or(0.0),
            v["rate"].as_f64().unwrap_or(0.0)
        ),
        None => "n/a".into(),
    }
}

fn p50(v: &Option<Value>) -> Option<f64> {
    v.as_ref().and_then(|v| v["p50"].as_f64())
}

fn domain_xml(name: &str) -> String {
    format!(
        "<domain type='test'><name>{name}</name><memory unit='MiB'>128</memory>\
         <vcpu>1</vcpu><os><type>hvm</type></os></domain>"
    )
}

async fn virtbus(n: usize) -> (Figures, Bus, Daemon) {
    let mut f = Figures::default();
    let bus = Bus::start();
    let mut d = Daemon::start(&bus).await;
    f.owned_0_ms = Some(d.started_in.as_secs_f64() * 1e3);
    tokio::time::sleep(Duration::from_millis(200)).await;
    f.rss_idle = Some(rss_kib(d.pid()));
    let a = bus.address.clone();
    let conn = bus.connect().await;
    let path = manager(&conn)
        .await
        .define_domain(&domain_xml("bench"), no_opts())
        .await
        .expect("define");
    let p = path.as_str();
    let ns = n.to_string();
    let (ping, get) = with_floor(
        &a,
        &ns,
        NAME,
        p,
        "org.freedesktop.DBus.Properties.Get (ss) ('org.virtbus1.Domain', 'Name')",
    );
    let (ping_xml, xml) = with_floor(&a, &ns, NAME, p, "org.virtbus1.Domain.GetXML (a{sv}) ({},)");
    (f.ping, f.get_name, f.ping_xml, f.get_xml) =
        (Some(ping), Some(get), Some(ping_xml), Some(xml));
    f.list_1 = Some(client(
        &a,
        &[
            "lat",
            &ns,
            NAME,
            MANAGER,
            "org.virtbus1.Manager.ListDomains",
            "(a{sv})",
            "({},)",
        ],
    ));
    let tmpl = format!("(\"{}\", {{}})", domain_xml("d{i}"));
    let def = client(
        &a,
        &[
            "define",
            "1000",
            NAME,
            MANAGER,
            "org.virtbus1.Manager.DefineDomain",
            "(sa{sv})",
            &tmpl,
        ],
    );
    f.define_1000_s = def["seconds"].as_f64();
    let few = (n / 10).max(50).to_string();
    let (list, split) = lat_split(
        &a,
        d.pid(),
        bus.pid(),
        &[
            "lat",
            &few,
            NAME,
            MANAGER,
            "org.virtbus1.Manager.ListDomains",
            "(a{sv})",
            "({},)",
        ],
    );
    f.list_1000 = Some(list);
    f.list_1000_split = Some(split);
    let (managed, split) = lat_split(
        &a,
        d.pid(),
        bus.pid(),
        &[
            "lat",
            &few,
            NAME,
            MANAGER,
            "org.freedesktop.DBus.ObjectManager.GetManagedObjects",
            "()",
            "",
        ],
    );
    f.managed_1000 = Some(managed);
    f.managed_1000_split = Some(split);
    let mut times = Vec::new();
    for _ in 0..60 {
        let t = Instant::now();
        conn.call_method(
            Some(NAME),
            MANAGER,
            Some("org.freedesktop.DBus.ObjectManager"),
            "GetManagedObjects",
            &(),
        )
        .await
        .expect("GetManagedObjects");
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    f.managed_1000_zbus = Some((times[times.len() / 2], times[times.len() * 99 / 100]));
    d.restart(&bus).await;
    f.owned_1000_ms = Some(d.started_in.as_secs_f64() * 1e3);
    tokio::time::sleep(Duration::from_millis(200)).await;
    f.rss_1000 = Some(rss_kib(d.pid()));
    (f, bus, d)
}

async fn reference(n: usize) -> Option<Figures> {
    if Command::new("libvirt-dbus").arg("--help").output().is_err() {
        println!("(reference skipped: apt-get install libvirt-dbus libvirt-daemon)");
        return None;
    }
    let mut f = Figures::default();
    let bus = Bus::start();
    let a = bus.address.clone();
    let start = Instant::now();
    let mut child = Command::new("libvirt-dbus")
        .arg("--session")
        .env("DBUS_SESSION_BUS_ADDRESS", &a)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let conn = bus.connect().await;
    let dbus = zbus::fdo::DBusProxy::new(&conn).await.ok()?;
    while !dbus
        .name_has_owner("org.libvirt".try_into().ok()?)
        .await
        .unwrap_or(false)
    {
        if start.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            return None;
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    f.owned_0_ms = Some(start.elapsed().as_secs_f64() * 1e3);
    tokio::time::sleep(Duration::from_millis(200)).await;
    f.rss_idle = Some(rss_kib(child.id()));
    let ns = n.to_string();
    let dest = "org.libvirt";
    let (ping, get) = with_floor(
        &a,
        &ns,
        dest,
        TEST_DOMAIN,
        "org.freedesktop.DBus.Properties.Get (ss) ('org.libvirt.Domain', 'Name')",
    );
    let (ping_xml, xml) = with_floor(
        &a,
        &ns,
        dest,
        TEST_DOMAIN,
        "org.libvirt.Domain.GetXMLDesc (u) (0,)",
    );
    (f.ping, f.get_name, f.ping_xml, f.get_xml) =
        (Some(ping), Some(get), Some(ping_xml), Some(xml));
    f.list_1 = Some(client(
        &a,
        &[
            "lat",
            &ns,
            dest,
            "/org/libvirt/Test",
            "org.libvirt.Connect.ListDomains",
            "(u)",
            "(0,)",
        ],
    ));
    let tmpl = format!("(\"{}\",)", domain_xml("d{i}"));
    let def = client(
        &a,
        &[
            "define",
            "1000",
            dest,
            "/org/libvirt/Test",
            "org.libvirt.Connect.DomainDefineXML",
            "(s)",
            &tmpl,
        ],
    );
    f.define_1000_s = def["seconds"].as_f64();
    let few = (n / 10).max(50).to_string();
    let (list, split) = lat_split(
        &a,
        child.id(),
        bus.pid(),
        &[
            "lat",
            &few,
            dest,
            "/org/libvirt/Test",
            "org.libvirt.Connect.ListDomains",
            "(u)",
            "(0,)",
        ],
    );
    f.list_1000 = Some(list);
    f.list_1000_split = Some(split);
    tokio::time::sleep(Duration::from_millis(200)).await;
    f.rss_1000 = Some(rss_kib(child.id()));
    let _ = child.kill();
    let _ = child.wait();
    Some(f)
}

/// libvirt-dbus with libvirt's test driver on a private bus, until dropped.
struct LibvirtDbus {
    bus: Bus,
    child: std::process::Child,
}

impl Drop for LibvirtDbus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait_for_name(bus: &Bus, name: &str) -> bool {
    let conn = bus.connect().await;
    let Ok(dbus) = zbus::fdo::DBusProxy::new(&conn).await else {
        return false;
    };
    let start = Instant::now();
    while !dbus
        .name_has_owner(name.try_into().expect("name"))
        .await
        .unwrap_or(false)
    {
        if start.elapsed() > Duration::from_secs(10) {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    true
}

/// The best (lowest p50) of `rounds` runs of the latency client.
fn best(rounds: usize, run: impl Fn() -> Value) -> Value {
    (0..rounds)
        .map(|_| run())
        .min_by(|a, b| {
            let p = |v: &Value| v["p50"].as_f64().unwrap_or(f64::MAX);
            p(a).total_cmp(&p(b))
        })
        .unwrap_or(Value::Null)
}

/// virtbusd's facade (`/org/libvirt/Test`) and libvirt-dbus over libvirt's test driver, both
/// running, measured in alternation with the same client (the best of three rounds each, so
/// that other load on the machine weighs on neither): the facade's figures and the
/// reference's.
async fn facade_vs_reference(n: usize) -> Option<(Figures, Figures)> {
    let reference_bus = Bus::start();
    let child = Command::new("libvirt-dbus")
        .arg("--session")
        .env("DBUS_SESSION_BUS_ADDRESS", &reference_bus.address)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let reference = LibvirtDbus {
        bus: reference_bus,
        child,
    };
    if !wait_for_name(&reference.bus, "org.libvirt").await {
        return None;
    }
    let bus = Bus::start();
    let state = bus.dir.path().join("state");
    let run = bus.dir.path().join("run");
    let d = Daemon::start_with(&bus, &state, &run, &["--libvirt-compat"]).await;
    if !wait_for_name(&bus, "org.libvirt").await {
        return None;
    }
    let (mut f, mut r) = (Figures::default(), Figures::default());
    let both = [(&bus.address, &mut f), (&reference.bus.address, &mut r)];
    let [(fa, ff), (ra, rf)] = both;
    let ns = n.to_string();
    let dest = "org.libvirt";
    let test = "/org/libvirt/Test";
    let calls: [(&str, &str, &str, &str); 4] = [
        (TEST_DOMAIN, "org.freedesktop.DBus.Peer.Ping", "()", ""),
        (
            TEST_DOMAIN,
            "org.freedesktop.DBus.Properties.Get",
            "(ss)",
            "('org.libvirt.Domain', 'Name')",
        ),
        (TEST_DOMAIN, "org.libvirt.Domain.GetXMLDesc", "(u)", "(0,)"),
        (test, "org.libvirt.Connect.ListDomains", "(u)", "(0,)"),
    ];
    for (i, (path, method, sig, args)) in calls.iter().enumerate() {
        let mut pair = Vec::new();
        for a in [fa.as_str(), ra.as_str()] {
            pair.push(best(3, || {
                client(a, &["lat", &ns, dest, path, method, sig, args])
            }));
        }
        let (ours, theirs) = (Some(pair.remove(0)), Some(pair.remove(0)));
        match i {
            0 => (ff.ping, rf.ping) = (ours, theirs),
            1 => (ff.get_name, rf.get_name) = (ours, theirs),
            2 => (ff.get_xml, rf.get_xml) = (ours, theirs),
            _ => (ff.list_1, rf.list_1) = (ours, theirs),
        }
    }
    let tmpl = format!("(\"{}\",)", domain_xml("d{i}"));
    for (a, fig) in [(fa.as_str(), &mut *ff), (ra.as_str(), &mut *rf)] {
        let def = client(
            a,
            &[
                "define",
                "1000",
                dest,
                test,
                "org.libvirt.Connect.DomainDefineXML",
                "(s)",
                &tmpl,
            ],
        );
        fig.define_1000_s = def["seconds"].as_f64();
    }
    let few = (n / 10).max(50).to_string();
    let list = [
        "lat",
        &few,
        dest,
        test,
        "org.libvirt.Connect.ListDomains",
        "(u)",
        "(0,)",
    ];
    let pids = [
        (fa.as_str(), d.pid(), bus.pid()),
        (ra.as_str(), reference.child.id(), reference.bus.pid()),
    ];
    let mut rounds: [Vec<(Value, Split)>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..3 {
        for (k, (a, server, b)) in pids.iter().enumerate() {
            rounds[k].push(lat_split(a, *server, *b, &list));
        }
    }
    for (k, fig) in [&mut *ff, &mut *rf].into_iter().enumerate() {
        let pick = rounds[k]
            .iter()
            .min_by(|x, y| {
                let p = |v: &Value| v["p50"].as_f64().unwrap_or(f64::MAX);
                p(&x.0).total_cmp(&p(&y.0))
            })
            .cloned();
        if let Some((v, split)) = pick {
            fig.list_1000 = Some(v);
            fig.list_1000_split = Some(split);
        }
    }
    Some((f, r))
}

fn ratio(ours: Option<f64>, theirs: Option<f64>, lower_is_better: bool) -> String {
    match (ours, theirs) {
        (Some(o), Some(t)) if o > 0.0 && t > 0.0 => {
            if lower_is_better {
                format!("{:.1}x faster", t / o)
            } else {
                format!("{:.1}x", o / t)
            }
        }
        _ => String::new(),
    }
}

fn print_api(v: &Figures, r: &Option<Figures>) {
    let r0 = r.clone().unwrap_or_default();
    println!(
        "\n## Native API: virtbusd vs libvirt-dbus 1.4.1 + libvirt test driver (same client)\n"
    );
    println!("| figure | virtbusd | libvirt-dbus | ratio |");
    println!("|---|---|---|---|");
    let row = |name: &str, a: &Option<Value>, b: &Option<Value>| {
        println!(
            "| {name} | {} | {} | {} |",
            lat(a),
            lat(b),
            ratio(p50(a), p50(b), true)
        );
    };
    row("Peer.Ping (bus floor)", &v.ping, &r0.ping);
    row("Properties.Get(Name)", &v.get_name, &r0.get_name);
    row("GetXML / GetXMLDesc", &v.get_xml, &r0.get_xml);
    row("ListDomains, 1 domain", &v.list_1, &r0.list_1);
    row("ListDomains, 1001 domains", &v.list_1000, &r0.list_1000);
    row("GetManagedObjects, 1001 domains", &v.managed_1000, &None);
    if let Some((p50, p99)) = v.managed_1000_zbus {
        println!(
            "| GetManagedObjects, 1001 domains, zbus client (reply checked, not decoded) | p50 {:.0} µs, p99 {:.0} µs | n/a | |",
            p50 * 1e3,
            p99 * 1e3
        );
    }
    let ms = |x: Option<f64>| x.map(|x| format!("{x:.1} ms")).unwrap_or("n/a".into());
    let s = |x: Option<f64>| x.map(|x| format!("{x:.2} s")).unwrap_or("n/a".into());
    println!(
        "| define 1000 domains | {} | {} | {} |",
        s(v.define_1000_s),
        s(r0.define_1000_s),
        ratio(v.define_1000_s, r0.define_1000_s, true)
    );
    println!(
        "| exec to name owned, 0 domains | {} | {} | {} |",
        ms(v.owned_0_ms),
        ms(r0.owned_0_ms),
        ratio(v.owned_0_ms, r0.owned_0_ms, true)
    );
    println!(
        "| exec to name owned, 1001 persistent domains | {} | n/a (keeps nothing) | |",
        ms(v.owned_1000_ms)
    );
    let mib = |x: Option<u64>| {
        x.map(|x| format!("{:.1} MiB", x as f64 / 1024.0))
            .unwrap_or("n/a".into())
    };
    println!(
        "| RSS idle | {} | {} | |",
        mib(v.rss_idle),
        mib(r0.rss_idle)
    );
    println!(
        "| RSS with 1001 domains | {} | {} | |",
        mib(v.rss_1000),
        mib(r0.rss_1000)
    );
    let per = |f: &Figures| match (f.rss_idle, f.rss_1000) {
        (Some(a), Some(b)) => format!("{:.2} KiB", (b.saturating_sub(a)) as f64 / 1001.0),
        _ => "n/a".into(),
    };
    println!("| RSS per domain | {} | {} | |", per(v), per(&r0));
    println!(
        "\nWhere the large native replies spend their time (CPU µs per call, 1001 domains):\n"
    );
    println!("| call | reply size | client (Python GDBus) | dbus-daemon | virtbusd | wall (p50) |");
    println!("|---|---|---|---|---|---|");
    for (name, size, split, l) in [
        ("ListDomains", "70 KiB", v.list_1000_split, &v.list_1000),
        (
            "GetManagedObjects",
            "470 KiB",
            v.managed_1000_split,
            &v.managed_1000,
        ),
    ] {
        if let Some((c, b, d)) = split {
            println!(
                "| {name} | {size} | {c:.0} | {b:.0} | {d:.0} | {:.0} |",
                p50(l).unwrap_or(0.0)
            );
        }
    }
    println!(
        "\nvirtbusd above its own floor (p50, each measured alternately with Peer.Ping): \
         Get(Name) {:+.0} µs, GetXML {:+.0} µs (target: within 25 µs)",
        p50(&v.get_name).unwrap_or(0.0) - p50(&v.ping).unwrap_or(0.0),
        p50(&v.get_xml).unwrap_or(0.0) - p50(&v.ping_xml).unwrap_or(0.0)
    );
}

fn print_facade(v: &Figures, r: &Option<Figures>) {
    let r0 = r.clone().unwrap_or_default();
    println!(
        "\n## libvirt facade: virtbusd's /org/libvirt/Test vs libvirt-dbus 1.4.1 + libvirt test driver (same client, both running, best of 3 alternated rounds)\n"
    );
    println!("| figure | virtbusd facade | libvirt-dbus | ratio | target |");
    println!("|---|---|---|---|---|");
    let row = |name: &str, a: &Option<Value>, b: &Option<Value>, target: &str| {
        println!(
            "| {name} | {} | {} | {} | {target} |",
            lat(a),
            lat(b),
            ratio(p50(a), p50(b), true)
        );
    };
    row("Peer.Ping (bus floor)", &v.ping, &r0.ping, "");
    row("Properties.Get(Name)", &v.get_name, &r0.get_name, "1.5x");
    row("GetXMLDesc(0)", &v.get_xml, &r0.get_xml, "1.5x");
    row("ListDomains(0), 1 domain", &v.list_1, &r0.list_1, "");
    row(
        "ListDomains(0), 1001 domains",
        &v.list_1000,
        &r0.list_1000,
        "5x",
    );
    let s = |x: Option<f64>| x.map(|x| format!("{x:.2} s")).unwrap_or("n/a".into());
    println!(
        "| DomainDefineXML × 1000 | {} | {} | {} | |",
        s(v.define_1000_s),
        s(r0.define_1000_s),
        ratio(v.define_1000_s, r0.define_1000_s, true)
    );
    let rate = |x: &Option<Value>| x.as_ref().and_then(|v| v["rate"].as_f64());
    println!(
        "\ncalls/s ratios: Get(Name) {}, GetXMLDesc {}, ListDomains with 1001 {}",
        ratio(rate(&v.get_name), rate(&r0.get_name), false),
        ratio(rate(&v.get_xml), rate(&r0.get_xml), false),
        ratio(rate(&v.list_1000), rate(&r0.list_1000), false),
    );
    println!(
        "\nWhere ListDomains with 1001 domains spends its time (CPU µs per call; the reply is \
         some 68 KiB of object paths, which the bus and the client each parse in full):\n"
    );
    println!("| | client (Python GDBus) | dbus-daemon | daemon | wall (p50) |");
    println!("|---|---|---|---|---|");
    for (name, f) in [("virtbusd facade", v), ("libvirt-dbus", &r0)] {
        if let Some((c, b, d)) = f.list_1000_split {
            println!(
                "| {name} | {c:.0} | {b:.0} | {d:.0} | {:.0} |",
                p50(&f.list_1000).unwrap_or(0.0)
            );
        }
    }
    if let (Some((c, b, _)), Some(theirs)) = (v.list_1000_split, p50(&r0.list_1000)) {
        println!(
            "\nWith a daemon that took no time at all, this client and bus would make ListDomains \
             at best {:.1}x faster than libvirt-dbus here.",
            theirs / (c + b)
        );
    }
}

async fn authorized(n: usize, session_bus: &Bus) {
    println!("\n## Authorized calls by an unprivileged user through the real polkitd\n");
    let rule = "polkit.addRule(function(action, subject) {\n  if (subject.user == \"carol\" && action.lookup(\"domain_name\") == \"bench\" &&\n      (action.id == \"org.virtbus1.domain.start\" || action.id == \"org.virtbus1.domain.stop\"))\n    return polkit.Result.YES;\n});\n";
    let env = PolkitEnv::start(&[("70-bench.rules", rule.to_owned())]);
    let ns = n.to_string();
    let few = (n / 4).max(50).to_string();
    // The unauthorized baseline: the same calls on the session bus, where nobody is asked.
    let sconn = session_bus.connect().await;
    let base_path = manager(&sconn)
        .await
        .lookup_domain("bench")
        .await
        .expect("bench");
    let sa = session_bus.address.clone();
    let bp = base_path.as_str();
    let base_get = client(
        &sa,
        &[
            "lat",
            &ns,
            NAME,
            bp,
            "org.freedesktop.DBus.Properties.Get",
            "(ss)",
            "('org.virtbus1.Domain', 'Name')",
        ],
    );
    let base_alt = client(
        &sa,
        &[
            "alt",
            &few,
            NAME,
            &format!("{bp} org.virtbus1.Domain.Start (a{{sv}}) ({{}},)"),
            &format!("{bp} org.virtbus1.Domain.Destroy (a{{sv}}) ({{}},)"),
        ],
    );
    let check = client_as(&env, "carol", &["check", &ns, "org.virtbus1.domain.start"]);
    let mut rows = Vec::new();
    for cache in [true, false] {
        let extra: &[&str] = if cache { &[] } else { &["--no-authz-cache"] };
        let mut d = env.daemon(extra).await;
        let conn = connect(&env.address).await;
        let path = match manager(&conn).await.lookup_domain("bench").await {
            Ok(p) => p,
            Err(_) => manager(&conn)
                .await
                .define_domain(&domain_xml("bench"), no_opts())
                .await
                .expect("define"),
        };
        let p = path.as_str();
        let get = client_as(
            &env,
            "carol",
            &[
                "lat",
                &ns,
                NAME,
                p,
                "org.freedesktop.DBus.Properties.Get",
                "(ss)",
                "('org.virtbus1.Domain', 'Name')",
            ],
        );
        let alt = client_as(
            &env,
            "carol",
            &[
                "alt",
                &few,
                NAME,
                &format!("{p} org.virtbus1.Domain.Start (a{{sv}}) ({{}},)"),
                &format!("{p} org.virtbus1.Domain.Destroy (a{{sv}}) ({{}},)"),
            ],
        );
        rows.push((cache, get, alt));
        d.stop();
    }
    println!("| call | unauthorized (session bus) | cache on | cache off |");
    println!("|---|---|---|---|");
    let g = |v: &Value| Some(v.clone());
    println!(
        "| Properties.Get(Name) | {} | {} | {} |",
        lat(&g(&base_get)),
        lat(&g(&rows[0].1)),
        lat(&g(&rows[1].1))
    );
    println!(
        "| Start | {} | {} | {} |",
        lat(&g(&base_alt["a"])),
        lat(&g(&rows[0].2["a"])),
        lat(&g(&rows[1].2["a"]))
    );
    println!(
        "| Destroy | {} | {} | {} |",
        lat(&g(&base_alt["b"])),
        lat(&g(&rows[0].2["b"])),
        lat(&g(&rows[1].2["b"]))
    );
    println!(
        "| polkitd CheckAuthorization alone | {} | | |",
        lat(&g(&check))
    );
    let p = |v: &Value| v["p50"].as_f64().unwrap_or(0.0);
    println!(
        "\nCached read above unauthorized (p50): +{:.0} µs (target: within 50 µs)",
        p(&rows[0].1) - p(&base_get)
    );
    println!(
        "Uncached Start above unauthorized Start, minus polkitd's check (p50): {:+.0} µs (target: within 300 µs)",
        p(&rows[1].2["a"]) - p(&base_alt["a"]) - p(&check)
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let n = iters();
        println!("virtbus API benchmark, {n} calls per latency figure");
        let only_facade = std::env::var("BENCH_ONLY").as_deref() == Ok("facade");
        let native = if only_facade {
            None
        } else {
            let (v, bus, d) = virtbus(n).await;
            let r = reference(n).await;
            print_api(&v, &r);
            Some((bus, d))
        };
        match facade_vs_reference(n).await {
            Some((f, r)) => print_facade(&f, &Some(r)),
            None => println!("\n(facade comparison skipped: libvirt-dbus did not start)"),
        }
        let Some((bus, d)) = native else {
            return;
        };
        authorized(n, &bus).await;
        flood(&bus, &d).await;
    });
}

/// Another peer's call latency (Peer.Ping to the daemon, p50 and p99) alone, and while a
/// peer sends `GetManagedObjects` over the 1001 domains and never reads the replies; with the
/// daemon's memory and how many flooded calls it refused.
async fn flood(bus: &Bus, d: &Daemon) {
    use support::flood::{count_refusals, managed_objects_call, raw_client};
    println!("\n## A peer that floods the daemon without reading its replies\n");
    let conn = bus.connect().await;
    let ping = || async {
        let t = Instant::now();
        conn.call_method(
            Some(NAME),
            MANAGER,
            Some("org.freedesktop.DBus.Peer"),
            "Ping",
            &(),
        )
        .await
        .expect("ping");
        t.elapsed()
    };
    let sample = |mut v: Vec<Duration>| {
        v.sort();
        let at = |q: f64| v[((v.len() - 1) as f64 * q) as usize].as_micros();
        (at(0.5), at(0.99))
    };
    let mut alone = Vec::new();
    for _ in 0..300 {
        alone.push(ping().await);
    }
    let rss_before = rss_kib(d.pid());
    let calls = 3000;
    let address = bus.address.clone();
    let flooder = std::thread::spawn(move || {
        use std::io::Write;
        let mut s = raw_client(&address);
        for _ in 0..calls {
            if s.write_all(managed_objects_call().data().bytes()).is_err() {
                break;
            }
        }
        s
    });
    let mut during = Vec::new();
    let mut rss_peak = rss_before;
    let t = Instant::now();
    while during.len() < 300 && t.elapsed() < Duration::from_secs(60) {
        during.push(ping().await);
        if during.len() % 20 == 0 {
            rss_peak = rss_peak.max(rss_kib(d.pid()));
        }
    }
    let mut s = flooder.join().expect("flooder");
    let refused = count_refusals(&mut s, Duration::from_secs(2));
    rss_peak = rss_peak.max(rss_kib(d.pid()));
    let (a50, a99) = sample(alone);
    let (f50, f99) = sample(during);
    println!("| other peer's Ping | p50 | p99 |");
    println!("|---|---|---|");
    println!("| alone | {a50} µs | {a99} µs |");
    println!("| during the flood | {f50} µs | {f99} µs |");
    println!(
        "\nFlooding peer: {refused} of {calls} calls refused with LimitsExceeded; daemon RSS \
         {rss_before} KiB before, {rss_peak} KiB at most."
    );
}
