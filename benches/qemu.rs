//! Start-up cost of a QEMU guest through virtbusd, against the same QEMU command line run
//! directly, and against Debian's libvirt when it is installed; and the cost of snapshots
//! of the 256 MiB guest through virtbusd against the same QMP (and agent) sequence sent
//! straight to a bare QEMU.
//!
//! `cargo bench --bench qemu` prints, for each way, the median of a few runs of:
//! - running: from the start request until the guest runs (virtbusd: `Start` returned;
//!   direct: QEMU spawned, QMP connected, `cont` answered; libvirt: `virsh create` returned),
//! - agent: until the guest agent first answers,
//! - snapshots: internal with memory (create, revert, delete), external disk-only
//!   (create) and quiesced disk-only (create), each from the call until it returned; the
//!   daemon's guest and a bare copy of it run side by side and are measured in alternation.
//!
//! Needs the packages of the QEMU tests; libvirt (`libvirt-daemon-system`, `libvirt-clients`)
//! only for its row, which is skipped with a message when `virsh` is absent. The row uses
//! `VIRTBUS_BENCH_LIBVIRT_URI`, else the host's libvirtd when it runs, else (as root) a private
//! libvirtd of its own (`tests/support/libvirtd.rs`).

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "../tests/qemu/guest.rs"]
mod guest;

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use support::{
    Bus, Daemon, no_opts, opts,
    proxies::{DomainProxy, ManagerProxy, domain, manager, snapshot},
};
use virtbus::drivers::qemu::{qga::Agent, qmp::Qmp, transport::Events};
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
        let t = Instant::now();
        let (mut child, _qmp, _events) = launch_bare(&cmdline, &dir).await;
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
    snapshots(&d, &mgr, &conn, &bus).await;
    libvirt(&disk, &xml).await;
}

/// The snapshot operations measured, in the order of the table.
const SNAPSHOT_OPS: [&str; 5] = [
    "internal+memory create",
    "internal+memory revert",
    "internal+memory delete",
    "external disk-only create",
    "quiesced disk-only create",
];

/// Runs of each snapshot operation: a freeze's cost varies with what the guest has to
/// flush, so more than for start-up.
const SNAPSHOT_RUNS: usize = 9;

const T: Duration = Duration::from_secs(30);

/// Start `cmdline` as a bare QEMU (its sockets in `dir`), as the daemon does: paused, the
/// monitor connected, then `cont`.
async fn launch_bare(cmdline: &str, dir: &Path) -> (std::process::Child, Qmp, Events) {
    std::fs::create_dir_all(dir).expect("dir");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("exec {cmdline}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("qemu");
    let sock = dir.join("monitor.sock");
    let (qmp, events) = loop {
        if sock.exists()
            && let Ok(c) = Qmp::connect(&sock, Duration::from_secs(5)).await
        {
            break c;
        }
        assert!(child.try_wait().ok().flatten().is_none(), "QEMU exited");
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    qmp.execute_raw("cont", None, T).await.expect("cont");
    (child, qmp, events)
}

/// [`launch_bare`], then wait for its agent.
async fn bare_qemu(cmdline: &str, dir: &Path) -> (std::process::Child, Qmp, Events, Agent) {
    let (child, qmp, events) = launch_bare(cmdline, dir).await;
    let agent = Agent::new(dir.join("charchannel0.sock"));
    wait_agent(&agent).await;
    (child, qmp, events, agent)
}

/// Let the guest settle before a measurement: its data written out and its page cache
/// dropped (the memory state a snapshot saves and a revert loads is then about the same
/// size in both runs), a moment of quiet.
async fn settle(ga: &guest::TestAgent) {
    ga.sh("sync && echo 3 > /proc/sys/vm/drop_caches").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
}

/// A QMP job, started and followed to its end by its events, then dismissed.
async fn job(qmp: &Qmp, events: &mut Events, command: &str, mut args: Value, id: &str) {
    args["job-id"] = json!(id);
    qmp.execute_raw(command, Some(args), T)
        .await
        .unwrap_or_else(|e| panic!("{command}: {e}"));
    loop {
        let ev = events
            .wait_for("JOB_STATUS_CHANGE", T)
            .await
            .expect("job event");
        if ev.data["id"] == id && ev.data["status"] == "concluded" {
            break;
        }
    }
    let jobs = qmp.execute_raw("query-jobs", None, T).await.expect("jobs");
    assert!(jobs[0].get("error").is_none(), "{command} failed: {jobs}");
    qmp.execute_raw("job-dismiss", Some(json!({ "id": id })), T)
        .await
        .expect("dismiss");
}

/// A new overlay over the top image (made before, as the daemon makes it), opened, then
/// switched in by one transaction; `freeze` wraps the switch.
async fn external(qmp: &Qmp, top: &mut (String, String), overlay: &Path, node: &str) {
    let st = Command::new("qemu-img")
        .args([
            "create", "-q", "-f", "qcow2", "-b", &top.1, "-F", "qcow2", "-u",
        ])
        .arg(overlay)
        .arg("64M")
        .status()
        .expect("qemu-img");
    assert!(st.success());
    qmp.execute_raw(
        "blockdev-add",
        Some(json!({"driver": "qcow2", "node-name": node,
                     "file": {"driver": "file", "filename": overlay.display().to_string()},
                     "backing": null})),
        T,
    )
    .await
    .expect("blockdev-add");
}

async fn switch(qmp: &Qmp, top: &mut (String, String), overlay: &Path, node: &str) {
    qmp.execute_raw(
        "transaction",
        Some(json!({"actions": [{"type": "blockdev-snapshot",
                                  "data": {"node": top.0, "overlay": node}}]})),
        T,
    )
    .await
    .expect("transaction");
    *top = (node.to_owned(), overlay.display().to_string());
}

/// A bare QEMU, sent the same QMP and agent commands as the daemon sends.
struct Direct {
    child: std::process::Child,
    qmp: Qmp,
    events: Events,
    agent: Agent,
    ga: guest::TestAgent,
    dir: std::path::PathBuf,
    /// The top node and its image.
    top: (String, String),
}

impl Direct {
    async fn start(cmdline: &str, dir: &Path, disk: &Path) -> Direct {
        let (child, qmp, events, agent) = bare_qemu(cmdline, dir).await;
        let ga = guest::TestAgent {
            path: dir.join("charchannel1.sock"),
        };
        ga.sh("true").await;
        Direct {
            child,
            qmp,
            events,
            agent,
            ga,
            dir: dir.to_owned(),
            top: ("vb-vda".to_owned(), disk.display().to_string()),
        }
    }

    /// Round `i` of the operations, in the order of [`SNAPSHOT_OPS`].
    async fn round(&mut self, i: usize) -> Vec<Duration> {
        let (qmp, events, agent) = (&self.qmp, &mut self.events, &self.agent);
        let mut times = Vec::new();
        let a = Duration::from_secs(5);
        let tag = format!("di{i}");
        let save = json!({"tag": tag, "vmstate": self.top.0, "devices": [self.top.0]});
        settle(&self.ga).await;
        let t = Instant::now();
        job(qmp, events, "snapshot-save", save.clone(), &format!("s{i}")).await;
        times.push(t.elapsed());
        settle(&self.ga).await;
        let t = Instant::now();
        qmp.execute_raw("stop", None, T).await.expect("stop");
        job(qmp, events, "snapshot-load", save, &format!("l{i}")).await;
        qmp.execute_raw("cont", None, T).await.expect("cont");
        times.push(t.elapsed());
        settle(&self.ga).await;
        let t = Instant::now();
        let del = json!({"tag": tag, "devices": [self.top.0]});
        job(qmp, events, "snapshot-delete", del, &format!("d{i}")).await;
        times.push(t.elapsed());

        let overlay = self.dir.join(format!("direct-e{i}.qcow2"));
        settle(&self.ga).await;
        let t = Instant::now();
        external(qmp, &mut self.top, &overlay, &format!("de{i}")).await;
        switch(qmp, &mut self.top, &overlay, &format!("de{i}")).await;
        times.push(t.elapsed());

        let overlay = self.dir.join(format!("direct-q{i}.qcow2"));
        settle(&self.ga).await;
        let t = Instant::now();
        agent.fsfreeze_status(a).await.expect("status");
        external(qmp, &mut self.top, &overlay, &format!("dq{i}")).await;
        agent.fsfreeze_freeze(a).await.expect("freeze");
        switch(qmp, &mut self.top, &overlay, &format!("dq{i}")).await;
        agent.fsfreeze_thaw(a).await.expect("thaw");
        agent.fsfreeze_status(a).await.expect("status");
        times.push(t.elapsed());
        times
    }
}

impl Drop for Direct {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Round `i` of the operations through virtbusd, in the order of [`SNAPSHOT_OPS`].
async fn daemon_round(dom: &DomainProxy<'_>, ga: &guest::TestAgent, i: usize) -> Vec<Duration> {
    let conn = dom.inner().connection().clone();
    let mut times = Vec::new();
    let b = |k: &'static str| (k, Variant::Bool(true));
    let xml = |n: &str| format!("<domainsnapshot><name>{n}</name></domainsnapshot>");
    settle(ga).await;
    let t = Instant::now();
    let p = dom
        .create_snapshot(&xml(&format!("bi{i}")), no_opts())
        .await
        .expect("internal");
    times.push(t.elapsed());
    let s = snapshot(&conn, &p).await;
    settle(ga).await;
    let t = Instant::now();
    s.revert(no_opts()).await.expect("revert");
    times.push(t.elapsed());
    settle(ga).await;
    let t = Instant::now();
    s.delete(no_opts()).await.expect("delete");
    times.push(t.elapsed());
    settle(ga).await;
    let t = Instant::now();
    dom.create_snapshot(&xml(&format!("be{i}")), opts([b("disk-only")]))
        .await
        .expect("external");
    times.push(t.elapsed());
    settle(ga).await;
    let t = Instant::now();
    dom.create_snapshot(
        &xml(&format!("bq{i}")),
        opts([b("disk-only"), b("quiesce")]),
    )
    .await
    .expect("quiesced");
    times.push(t.elapsed());
    times
}

/// `cmdline` with its `-vnc` display turned off: the daemon's guest holds the port.
fn without_vnc(cmdline: &str) -> String {
    let mut words: Vec<&str> = cmdline.split(' ').collect();
    if let Some(k) = words.iter().position(|w| *w == "-vnc") {
        words[k + 1] = "none";
    }
    words.join(" ")
}

/// Snapshots of a domain with the test agent's channel: through the daemon, and as the same
/// command line run bare (captured from the daemon's start, on its own disk and sockets),
/// both guests up at once and measured in alternation, round by round, so that what the
/// host does meanwhile falls on both alike.
async fn snapshots(d: &Daemon, mgr: &ManagerProxy<'_>, conn: &zbus::Connection, bus: &Bus) {
    let disk = bus.dir.path().join("snap.qcow2");
    guest::data_disk(&disk);
    let path = mgr
        .define_domain(
            &guest::domain_xml("snapbench", &disk, guest::TEST_CHANNEL),
            no_opts(),
        )
        .await
        .expect("define");
    let dom = domain(conn, &path).await;
    dom.start(no_opts()).await.expect("start");
    let log = std::fs::read_to_string(d.runtime.join("qemu/log/snapbench.log")).expect("log");
    let cmdline = log
        .lines()
        .rev()
        .find(|l| l.starts_with('/') && l.contains(" -S "))
        .expect("command line in the log")
        .to_owned();
    let uuid = dom.uuid().await.expect("uuid");
    let dir = d.runtime.join(format!("qemu/{}", uuid.replace('-', "")));
    let direct_dir = bus.dir.path().join("direct");
    let direct_disk = bus.dir.path().join("direct.qcow2");
    guest::data_disk(&direct_disk);
    let direct_cmdline = without_vnc(
        &cmdline
            .replace(
                &dir.display().to_string(),
                &direct_dir.display().to_string(),
            )
            .replace(
                &disk.display().to_string(),
                &direct_disk.display().to_string(),
            ),
    );
    let mut direct = Direct::start(&direct_cmdline, &direct_dir, &direct_disk).await;
    let ga = guest::TestAgent::of(&dom.get_xml(no_opts()).await.expect("xml")).await;
    ga.sh("true").await;

    let mut times = (
        vec![Vec::new(); SNAPSHOT_OPS.len()],
        vec![Vec::new(); SNAPSHOT_OPS.len()],
    );
    for i in 0..SNAPSHOT_RUNS {
        // each goes first in every other round
        let (a, b) = if i % 2 == 0 {
            let a = direct.round(i).await;
            (a, daemon_round(&dom, &ga, i).await)
        } else {
            let b = daemon_round(&dom, &ga, i).await;
            (direct.round(i).await, b)
        };
        for k in 0..SNAPSHOT_OPS.len() {
            times.0[k].push(a[k]);
            times.1[k].push(b[k]);
        }
    }
    drop(direct);
    dom.destroy(no_opts()).await.expect("destroy");
    let (direct, daemon) = times;

    println!();
    println!(
        "Snapshots of the 256 MiB test guest, median of {SNAPSHOT_RUNS} rounds (both guests up, \
         measured in alternation):"
    );
    println!(
        "{:<28} {:>12} {:>12} {:>12} {:>16}",
        "", "direct QMP", "virtbusd", "overhead", "target"
    );
    for (k, op) in SNAPSHOT_OPS.iter().enumerate() {
        let (dq, dv) = (median(direct[k].clone()), median(daemon[k].clone()));
        let over = dv.saturating_sub(dq);
        let target = (dq / 10).max(Duration::from_millis(20));
        println!(
            "{:<28} {:>12} {:>12} {:>12} {:>16}",
            op,
            ms(dq),
            ms(dv),
            ms(over),
            format!(
                "{} {}",
                if over <= target { "ok, <" } else { "MISSED <" },
                ms(target)
            )
        );
    }
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
    // The URI given, else the host's libvirtd when it runs, else a private one (as root).
    let mut private = None;
    let uri = match std::env::var("VIRTBUS_BENCH_LIBVIRT_URI") {
        Ok(u) => u,
        Err(_) if std::path::Path::new("/run/libvirt/libvirt-sock").exists() => {
            "qemu:///system".into()
        }
        Err(_) if support::libvirtd::Libvirtd::available().is_ok() => {
            let lv = support::libvirtd::Libvirtd::start();
            let uri = lv.uri();
            private = Some(lv);
            uri
        }
        Err(_) => "qemu:///system".into(),
    };
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
    drop(private);
    println!(
        "{:<28} {:>12} {:>14}",
        "libvirt (virsh create)",
        ms(median(running)),
        ms(median(agent_up))
    );
}
