//! Listing with many objects: `ListNetworks`, `ListStoragePools` and `ListStorageVolumes`
//! with 100 networks (defined, not started) and 100 directory pools of 100 volumes each,
//! through virtbusd and through the reference — Debian's libvirt-dbus over a private
//! libvirtd (`tests/support/libvirtd.rs`: its network and storage drivers) — both running
//! side by side, measured in alternated rounds with the same client. Run with
//! `cargo bench --bench listing` as root (BENCH_POOLS, BENCH_VOLUMES, BENCH_NETWORKS and
//! BENCH_ROUNDS change the sizes; defaults 100, 100, 100, 7).
//!
//! virtbusd runs inside a network namespace of the bench's own (its network driver looks at
//! the host's links when networks are defined); libvirtd has one of its own already.
//! virtbusd's storage is listed through its native API (`org.virtbus1`), and through the
//! facade (`/org/libvirt/QEMU`) when it serves `ListStoragePools`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use support::{Bus, Daemon, Launch, MANAGER, NAME, libvirtd::Libvirtd, no_opts};
use zbus::{Connection, OwnedObjectPath};

const LIBVIRT: &str = "org.libvirt";
const QEMU: &str = "/org/libvirt/QEMU";
const CONNECT: &str = "org.libvirt.Connect";

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// `pools` directories under `root`, each with `volumes` sparse 1 MiB raw files.
fn make_tree(root: &Path, pools: usize, volumes: usize) {
    for p in 0..pools {
        let dir = root.join(format!("p{p:03}"));
        std::fs::create_dir_all(&dir).expect("pool dir");
        for v in 0..volumes {
            let f = std::fs::File::create(dir.join(format!("v{v:03}.img"))).expect("volume");
            f.set_len(1 << 20).expect("size");
        }
    }
}

fn network_xml(i: usize) -> String {
    format!(
        "<network><name>n{i:03}</name><bridge name='vbl{i}'/>\
         <ip address='10.{}.{}.1' prefix='24'/></network>",
        100 + i / 250,
        i % 250
    )
}

async fn call<B, R>(conn: &Connection, dest: &str, path: &str, iface: &str, m: &str, b: &B) -> R
where
    B: serde::Serialize + zbus::zvariant::DynamicType,
    R: for<'d> zbus::zvariant::DynamicDeserialize<'d>,
{
    conn.call_method(Some(dest), path, Some(iface), m, b)
        .await
        .unwrap_or_else(|e| panic!("{iface}.{m} on {path}: {e}"))
        .body()
        .deserialize()
        .unwrap_or_else(|e| panic!("{iface}.{m}'s reply: {e}"))
}

/// A network namespace of the bench's own, deleted (with what runs in it) on drop.
struct Netns(String);

impl Netns {
    fn new() -> Netns {
        let name = format!("vbb-listing-{}", std::process::id());
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "ip netns add {name}");
        Netns(name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Ok(out) = Command::new("ip").args(["netns", "pids", &self.0]).output() {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse::<i32>() {
                    // SAFETY: a process in the bench's own namespace.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// libvirt-dbus in libvirtd's mount namespace (where `qemu:///system`'s socket is libvirtd's),
/// on a private bus of its own as its system bus; killed on drop.
struct LibvirtDbus {
    child: Child,
}

impl Drop for LibvirtDbus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One side's objects, as its client sees them.
struct Side {
    conn: Connection,
    /// Pools through libvirt-dbus's API (`org.libvirt`), when this side serves it.
    facade_pools: bool,
    /// Pools through virtbus's native API (`org.virtbus1`).
    native: bool,
}

/// What one round measured, in seconds (`None`: not served by this side).
#[derive(Default, Clone)]
struct Round {
    networks: Option<f64>,
    networks_native: Option<f64>,
    pools: Option<f64>,
    volumes_one: Option<f64>,
    volumes_all: Option<f64>,
    pools_native: Option<f64>,
    volumes_one_native: Option<f64>,
    volumes_all_native: Option<f64>,
}

async fn timed<T>(f: impl AsyncFnOnce() -> T) -> (T, f64) {
    let t = Instant::now();
    let v = f().await;
    (v, t.elapsed().as_secs_f64())
}

async fn round(s: &Side, pools: usize, volumes: usize, networks: usize) -> Round {
    let mut r = Round::default();
    let c = &s.conn;
    let (nets, t): (Vec<OwnedObjectPath>, f64) =
        timed(async || call(c, LIBVIRT, QEMU, CONNECT, "ListNetworks", &(0u32,)).await).await;
    assert_eq!(nets.len(), networks, "ListNetworks");
    r.networks = Some(t);
    if s.facade_pools {
        let (ps, t): (Vec<OwnedObjectPath>, f64) =
            timed(async || call(c, LIBVIRT, QEMU, CONNECT, "ListStoragePools", &(0u32,)).await)
                .await;
        assert_eq!(ps.len(), pools, "ListStoragePools");
        r.pools = Some(t);
        let mut all = 0.0;
        for (i, p) in ps.iter().enumerate() {
            let (vs, t): (Vec<OwnedObjectPath>, f64) = timed(async || {
                call(
                    c,
                    LIBVIRT,
                    p.as_str(),
                    "org.libvirt.StoragePool",
                    "ListStorageVolumes",
                    &(0u32,),
                )
                .await
            })
            .await;
            assert_eq!(vs.len(), volumes, "ListStorageVolumes");
            if i == 0 {
                r.volumes_one = Some(t);
            }
            all += t;
        }
        r.volumes_all = Some(all);
    }
    if s.native {
        let (ns, t): (Vec<OwnedObjectPath>, f64) = timed(async || {
            call(
                c,
                NAME,
                MANAGER,
                "org.virtbus1.Manager",
                "ListNetworks",
                &(),
            )
            .await
        })
        .await;
        assert_eq!(ns.len(), networks, "native ListNetworks");
        r.networks_native = Some(t);
        let (ps, t): (Vec<OwnedObjectPath>, f64) = timed(async || {
            call(
                c,
                NAME,
                MANAGER,
                "org.virtbus1.Manager",
                "ListPools",
                &(no_opts(),),
            )
            .await
        })
        .await;
        assert_eq!(ps.len(), pools, "native ListPools");
        r.pools_native = Some(t);
        let mut all = 0.0;
        for (i, p) in ps.iter().enumerate() {
            let (vs, t): (Vec<OwnedObjectPath>, f64) = timed(async || {
                call(
                    c,
                    NAME,
                    p.as_str(),
                    "org.virtbus1.StoragePool",
                    "ListVolumes",
                    &(no_opts(),),
                )
                .await
            })
            .await;
            assert_eq!(vs.len(), volumes, "native ListVolumes");
            if i == 0 {
                r.volumes_one_native = Some(t);
            }
            all += t;
        }
        r.volumes_all_native = Some(all);
    }
    r
}

/// Waits (at most 30 s) until `name` is owned on the bus at `address`.
async fn wait_for_owner(address: &str, name: &str) {
    let conn = support::connect(address).await;
    let dbus = zbus::fdo::DBusProxy::new(&conn).await.expect("dbus proxy");
    let t = Instant::now();
    while !dbus
        .name_has_owner(name.try_into().expect("name"))
        .await
        .unwrap_or(false)
    {
        assert!(t.elapsed() < Duration::from_secs(30), "{name} has no owner");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One figure of a round.
type Figure = fn(&Round) -> Option<f64>;

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    Some(v[v.len() / 2])
}

fn ms(v: Option<f64>) -> String {
    v.map_or("—".into(), |s| format!("{:.2} ms", s * 1000.0))
}

fn ratio(ours: Option<f64>, theirs: Option<f64>) -> String {
    match (ours, theirs) {
        (Some(o), Some(t)) if o > 0.0 => format!("{:.2}x", t / o),
        _ => "—".into(),
    }
}

/// virtbusd in `ns` on a bus of its own, with the pools (native API) and networks (facade).
async fn virtbus(
    ns: &Netns,
    pools: usize,
    volumes: usize,
    networks: usize,
) -> (Bus, Daemon, Connection) {
    let bus = Bus::start();
    let launch = Launch {
        prefix: vec!["ip".into(), "netns".into(), "exec".into(), ns.0.clone()],
        extra: vec!["--libvirt-compat".into()],
        // the daemon's default log level, as deployed (the tests' is debug)
        env: vec![("RUST_LOG".into(), "info".into())],
        ..Default::default()
    };
    let d = Daemon::start_launch(&bus, launch).await;
    wait_for_owner(&bus.address, LIBVIRT).await;
    let conn = bus.connect().await;
    let root = d.state.join("images");
    make_tree(&root, pools, volumes);
    for p in 0..pools {
        let xml = format!(
            "<pool type='dir'><name>p{p:03}</name><target><path>{}</path></target></pool>",
            root.join(format!("p{p:03}")).display()
        );
        let path: OwnedObjectPath = call(
            &conn,
            NAME,
            MANAGER,
            "org.virtbus1.Manager",
            "DefinePool",
            &(xml.as_str(), no_opts()),
        )
        .await;
        let () = call(
            &conn,
            NAME,
            path.as_str(),
            "org.virtbus1.StoragePool",
            "Start",
            &(no_opts(),),
        )
        .await;
    }
    for i in 0..networks {
        let _: OwnedObjectPath = call(
            &conn,
            LIBVIRT,
            QEMU,
            CONNECT,
            "NetworkDefineXML",
            &(network_xml(i).as_str(),),
        )
        .await;
    }
    (bus, d, conn)
}

/// The reference: libvirtd with the same pools and networks (defined through virsh), and
/// libvirt-dbus over it.
async fn reference(
    lv: &Libvirtd,
    pools: usize,
    volumes: usize,
    networks: usize,
) -> (Bus, LibvirtDbus, Connection) {
    let root = lv.dir.path().join("pools");
    make_tree(&root, pools, volumes);
    let mut script = String::new();
    for p in 0..pools {
        let dir = root.join(format!("p{p:03}"));
        script += &format!(
            "pool-define-as p{p:03} dir --target {}; pool-start p{p:03}; ",
            dir.display()
        );
    }
    let xmls = lv.dir.path().join("networks");
    std::fs::create_dir_all(&xmls).expect("mkdir");
    for i in 0..networks {
        let f = xmls.join(format!("n{i:03}.xml"));
        std::fs::write(&f, network_xml(i)).expect("network xml");
        script += &format!("net-define {}; ", f.display());
    }
    let out = lv.virsh(&[&script]);
    assert!(
        out.status.success(),
        "virsh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // qemu:///system's socket, in libvirtd's mount namespace (where /run is its own)
    let run = lv.dir.path().join("run/libvirt");
    std::fs::create_dir_all(&run).expect("mkdir");
    let _ = std::fs::remove_file(run.join("libvirt-sock"));
    std::os::unix::fs::symlink(&lv.socket, run.join("libvirt-sock")).expect("symlink");
    let bus = Bus::start();
    let log = bus.dir.path().join("libvirt-dbus.log");
    let child = Command::new("nsenter")
        .args(["-t", &lv.pid().to_string(), "-m", "--"])
        .args(["libvirt-dbus", "--system"])
        .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("libvirt-dbus (package libvirt-dbus)");
    let ldb = LibvirtDbus { child };
    wait_for_owner(&bus.address, LIBVIRT).await;
    let conn = bus.connect().await;
    (bus, ldb, conn)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let pools = env_or("BENCH_POOLS", 100);
    let volumes = env_or("BENCH_VOLUMES", 100);
    let networks = env_or("BENCH_NETWORKS", 100);
    let rounds = env_or("BENCH_ROUNDS", 7);
    if let Err(e) = Libvirtd::available() {
        println!("listing bench skipped: no private libvirtd ({e})");
        return;
    }
    eprintln!("setting up {pools} pools x {volumes} volumes and {networks} networks on each side");
    let ns = Netns::new();
    let t = Instant::now();
    let (_bus, _d, ours) = virtbus(&ns, pools, volumes, networks).await;
    eprintln!("virtbusd ready in {:.1?}", t.elapsed());
    let t = Instant::now();
    let lv = Libvirtd::start();
    let (_rbus, _ldb, theirs) = reference(&lv, pools, volumes, networks).await;
    eprintln!("libvirtd + libvirt-dbus ready in {:.1?}", t.elapsed());
    // the facade's pools arrive with org.libvirt.StoragePool: served when it answers
    let facade_pools = ours
        .call_method(
            Some(LIBVIRT),
            QEMU,
            Some(CONNECT),
            "ListStoragePools",
            &(0u32,),
        )
        .await
        .is_ok();
    let a = Side {
        conn: ours,
        facade_pools,
        native: true,
    };
    let b = Side {
        conn: theirs,
        facade_pools: true,
        native: false,
    };
    // one warm-up round each, then alternated rounds
    round(&a, pools, volumes, networks).await;
    round(&b, pools, volumes, networks).await;
    let (mut ra, mut rb) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        ra.push(round(&a, pools, volumes, networks).await);
        rb.push(round(&b, pools, volumes, networks).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let med = |v: &[Round], f: fn(&Round) -> Option<f64>| median(v.iter().filter_map(f).collect());
    println!(
        "\n## Listing: virtbusd vs libvirt-dbus 1.4.1 + libvirtd 9.0 ({pools} pools x {volumes} \
         volumes, {networks} networks defined; median of {rounds} alternated rounds, same client; \
         virtbusd {} build)\n",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    println!("| call | virtbusd | libvirt-dbus + libvirtd | ratio (theirs/ours) |");
    println!("|---|---|---|---|");
    let rows: [(&str, Figure, Figure); 8] = [
        ("ListNetworks (facade)", |r| r.networks, |r| r.networks),
        (
            "ListNetworks (native)",
            |r| r.networks_native,
            |r| r.networks,
        ),
        ("ListStoragePools (facade)", |r| r.pools, |r| r.pools),
        ("ListPools (native)", |r| r.pools_native, |r| r.pools),
        (
            "ListStorageVolumes, one pool (facade)",
            |r| r.volumes_one,
            |r| r.volumes_one,
        ),
        (
            "ListVolumes, one pool (native)",
            |r| r.volumes_one_native,
            |r| r.volumes_one,
        ),
        (
            "ListStorageVolumes, all pools (facade)",
            |r| r.volumes_all,
            |r| r.volumes_all,
        ),
        (
            "ListVolumes, all pools (native)",
            |r| r.volumes_all_native,
            |r| r.volumes_all,
        ),
    ];
    for (name, ours, theirs) in rows {
        let (o, t) = (med(&ra, ours), med(&rb, theirs));
        if o.is_none() {
            println!("| {name} | not served yet | {} | — |", ms(t));
            continue;
        }
        println!("| {name} | {} | {} | {} |", ms(o), ms(t), ratio(o, t));
    }
    drop(lv);
}
