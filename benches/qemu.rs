//! Start-up cost of a QEMU guest through virtbusd, against the same QEMU command line run
//! directly, and against Debian's libvirt when it is installed.
//!
//! `cargo bench --bench qemu` prints, for each way, the median of a few runs of:
//! - running: from the start request until the guest runs (virtbusd: `Start` returned;
//!   direct: QEMU spawned, QMP connected, `cont` answered; libvirt: `virsh create` returned),
//! - agent: until the guest agent first answers.
//!
//! Needs the packages of the QEMU tests; libvirt (`libvirt-daemon-system`, `libvirt-clients`)
//! only for its row, which is skipped with a message when `virsh` is absent.

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "../tests/qemu/guest.rs"]
mod guest;

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use support::{
    Bus, Daemon, no_opts, opts,
    proxies::{domain, manager},
};
use virtbus::drivers::qemu::{qga::Agent, qmp::Qmp};
use zbus::Variant;

const RUNS: usize = 5;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

async fn wait_agent(agent: &Agent) {
    let t = Instant::now();
    while agent.ping(Duration::from_secs(5)).await.is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "agent never answered"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run());
}

async fn run() {
    guest::dir();
    let bus = Bus::start();
    let d = Daemon::start(&bus).await;
    let conn = bus.connect().await;
    let mgr = manager(&conn).await;
    let disk = bus.dir.path().join("bench.qcow2");
    guest::data_disk(&disk);
    let xml = guest::domain_xml("bench", &disk, "");
    let path = mgr.define_domain(&xml, no_opts()).await.expect("define");
    let dom = domain(&conn, &path).await;

    // through virtbusd
    let (mut running, mut agent_up) = (Vec::new(), Vec::new());
    let mut cmdline = String::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        dom.start(no_opts()).await.expect("start");
        running.push(t.elapsed());
        loop {
            let r = dom
                .get_guest_info(opts([("types", Variant::from(vec!["hostname"]))]))
                .await;
            if r.is_ok() {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(120),
                "agent never answered"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        agent_up.push(t.elapsed());
        let log = std::fs::read_to_string(d.runtime.join("qemu/log/bench.log")).expect("log");
        cmdline = log
            .lines()
            .rev()
            .find(|l| l.starts_with('/') && l.contains(" -S "))
            .expect("command line in the log")
            .to_owned();
        dom.destroy(no_opts()).await.expect("destroy");
    }
    let daemon = (median(running), median(agent_up));

    // the same command line, directly
    let uuid = dom.uuid().await.expect("uuid");
    let dir = d.runtime.join(format!("qemu/{}", uuid.replace('-', "")));
    let (mut running, mut agent_up) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        std::fs::create_dir_all(&dir).expect("dir");
        let t = Instant::now();
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!("exec {cmdline}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("qemu");
        let sock = dir.join("monitor.sock");
        let (qmp, _events) = loop {
            if sock.exists()
                && let Ok(c) = Qmp::connect(&sock, Duration::from_secs(5)).await
            {
                break c;
            }
            assert!(child.try_wait().ok().flatten().is_none(), "QEMU exited");
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        qmp.execute_raw("cont", None, Duration::from_secs(5))
            .await
            .expect("cont");
        running.push(t.elapsed());
        wait_agent(&Agent::new(dir.join("charchannel0.sock"))).await;
        agent_up.push(t.elapsed());
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&dir);
    }
    let direct = (median(running), median(agent_up));

    println!("QEMU start-up, median of {RUNS} runs (TCG, the test guest):");
    println!("{:<28} {:>12} {:>14}", "", "to running", "to agent");
    println!(
        "{:<28} {:>12} {:>14}",
        "QEMU command line directly",
        ms(direct.0),
        ms(direct.1)
    );
    println!(
        "{:<28} {:>12} {:>14}",
        "virtbusd",
        ms(daemon.0),
        ms(daemon.1)
    );
    println!(
        "{:<28} {:>12} {:>14}",
        "  virtbusd overhead",
        ms(daemon.0.saturating_sub(direct.0)),
        ms(daemon.1.saturating_sub(direct.1))
    );
    libvirt(&disk, &xml).await;
}

/// The same domain through libvirt's `virsh create`, if libvirt is installed.
async fn libvirt(disk: &Path, xml: &str) {
    if Command::new("virsh").arg("--version").output().is_err() {
        println!(
            "libvirt: skipped (virsh not found; install libvirt-daemon-system and \
             libvirt-clients, and start libvirtd, to compare)"
        );
        return;
    }
    let uri =
        std::env::var("VIRTBUS_BENCH_LIBVIRT_URI").unwrap_or_else(|_| "qemu:///system".into());
    // libvirt runs QEMU as its own user: everything must be reachable by others
    let dir = tempfile::Builder::new()
        .prefix("vbq-libvirt")
        .tempdir_in("/tmp")
        .expect("tempdir");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let own_disk = dir.path().join("bench.qcow2");
    guest::data_disk(&own_disk);
    let file = dir.path().join("bench.xml");
    // libvirt names the agent socket itself and must be able to read the disk
    let xml = xml
        .replace(&disk.display().to_string(), &own_disk.display().to_string())
        .replace("<name>bench</name>", "<name>vb-bench</name>")
        .replace(
            "<channel type='unix'>",
            "<channel type='unix'><source mode='bind'/>",
        );
    std::fs::write(&file, &xml).expect("xml");
    let (mut running, mut agent_up) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let t = Instant::now();
        let out = Command::new("virsh")
            .args(["-c", &uri, "create"])
            .arg(&file)
            .output()
            .expect("virsh");
        if !out.status.success() {
            println!(
                "libvirt: skipped (virsh create failed: {})",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return;
        }
        running.push(t.elapsed());
        loop {
            let ping = Command::new("virsh")
                .args([
                    "-c",
                    &uri,
                    "qemu-agent-command",
                    "vb-bench",
                    r#"{"execute":"guest-ping"}"#,
                ])
                .output()
                .expect("virsh");
            if ping.status.success() {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(120),
                "libvirt: agent never answered"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        agent_up.push(t.elapsed());
        let _ = Command::new("virsh")
            .args(["-c", &uri, "destroy", "vb-bench"])
            .output();
    }
    println!(
        "{:<28} {:>12} {:>14}",
        "libvirt (virsh create)",
        ms(median(running)),
        ms(median(agent_up))
    );
}
