//! Snapshots of a real guest: internal with memory, external disk-only, and quiesce by the
//! guest agent under every rule of issue 6.
//!
//! The guest runs a second qemu-ga on the port `org.virtbus.test.0` (see
//! `tests/guest/build-guest.sh`); the tests write and read markers through it, on the data
//! disk and in the guest's memory (its root is a RAM filesystem), while the daemon holds the
//! first agent.
//!
//! Two moments a real guest does not produce on cue are staged with the driver's test hooks
//! (`VIRTBUS_QEMU_TEST_HOOKS`): stopping the guest's CPUs right after the freeze is written
//! (the freeze stays queued, the agent cannot answer, exactly as in a guest paused by
//! someone else), and losing the agent connection when the freeze's answer arrives. The hooks
//! also record the freeze status the real agent reports between freeze and thaw.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use zbus::Variant;

use crate::{
    BOOT, guest, guests, s,
    support::{proxies::*, *},
    until, wait_agent, wait_event,
};

/// Say which part of a long test runs (its output shows where a failure happened).
fn step(what: &str) {
    eprintln!("-- {what}");
}

/// Kills the domain's QEMU when the test ends, however it ends (a panicking test would
/// otherwise leave it running: guests outlive the daemon by design).
struct KillQemu {
    runtime: PathBuf,
    uuid: String,
}

impl Drop for KillQemu {
    fn drop(&mut self) {
        let p = self.runtime.join(format!("qemu/status/{}.json", self.uuid));
        if p.exists() {
            let pid = crate::qemu_pid(&self.runtime, &self.uuid);
            // SAFETY: a QEMU this test started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

fn ev(e: &str, d: &str) -> (String, String) {
    (e.to_owned(), d.to_owned())
}

fn snap(name: &str) -> String {
    format!("<domainsnapshot><name>{name}</name></domainsnapshot>")
}

fn b(k: &'static str) -> (&'static str, Variant<'static>) {
    (k, Variant::Bool(true))
}

async fn snapshot_names(conn: &zbus::Connection, dom: &DomainProxy<'_>) -> Vec<String> {
    let mut out = Vec::new();
    for p in dom.list_snapshots(no_opts()).await.expect("list") {
        out.push(snapshot(conn, &p).await.name().await.expect("Name"));
    }
    out
}

async fn current(conn: &zbus::Connection, dom: &DomainProxy<'_>) -> String {
    let p = dom.current_snapshot().await.expect("CurrentSnapshot");
    if p.as_str() == "/" {
        return String::new();
    }
    snapshot(conn, &p).await.name().await.expect("Name")
}

/// The disk and memory markers.
async fn markers(ga: &guest::TestAgent) -> String {
    ga.sh("cat /mnt/data/marker /tmp/marker").await
}

async fn set_markers(ga: &guest::TestAgent, disk: &str, mem: &str) {
    ga.sh(&format!(
        "echo {disk} > /mnt/data/marker && sync && echo {mem} > /tmp/marker"
    ))
    .await;
}

fn strings(sigs: &[Sig], path: &str, prop: &str) -> Vec<String> {
    changes_of(sigs, path, prop).iter().map(s).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_snapshots_bring_back_memory_and_disk() {
    let _permit = guests(1).await;
    let bus = Bus::start();
    let mut d = Daemon::start(&bus).await;
    let conn = bus.connect().await;
    let mut sigs = Signals::new(&conn).await;
    let mgr = manager(&conn).await;
    let disk = bus.dir.path().join("int.qcow2");
    guest::data_disk(&disk);
    let path = mgr
        .define_domain(
            &guest::domain_xml("int", &disk, guest::TEST_CHANNEL),
            no_opts(),
        )
        .await
        .expect("define");
    let p = path.as_str().to_owned();
    let dom = domain(&conn, &path).await;
    let _kill = KillQemu {
        runtime: d.runtime.clone(),
        uuid: dom.uuid().await.expect("uuid"),
    };
    dom.start(no_opts()).await.expect("start");
    wait_agent(&dom).await;
    let ga = guest::TestAgent::of(&dom.get_xml(no_opts()).await.expect("xml")).await;

    // s1 while a writer runs: memory and disk captured, nothing else changes
    step("s1 while a writer runs");
    set_markers(&ga, "disk-1", "mem-1").await;
    ga.sh("(while :; do echo w >> /mnt/data/busy; usleep 20000; done) >/dev/null 2>&1 &")
        .await;
    sigs.take().await;
    let t = Instant::now();
    let s1p = dom
        .create_snapshot(&snap("s1"), no_opts())
        .await
        .expect("s1");
    eprintln!("internal snapshot with memory: {:?}", t.elapsed());
    let got = sigs.take().await;
    assert!(
        got.iter()
            .any(|g| matches!(g, Sig::InterfacesAdded { path, .. } if path == s1p.as_str())),
        "{got:?}"
    );
    assert!(
        lifecycle(&got).is_empty(),
        "the job's own pause is not an event"
    );
    assert_eq!(strings(&got, &p, "Job"), ["snapshot-create", ""]);
    let progress: Vec<f64> = changes_of(&got, &p, "JobProgress")
        .iter()
        .map(|v| f64::try_from(v.try_clone().expect("v")).expect("d"))
        .collect();
    assert_eq!(progress.last(), Some(&0.0), "{progress:?}");
    assert!(
        progress.contains(&1.0),
        "QEMU's progress shown: {progress:?}"
    );
    assert_eq!(changes_of(&got, &p, "SnapshotCount").len(), 1);
    assert_eq!(changes_of(&got, &p, "CurrentSnapshot").len(), 1);
    let s1 = snapshot(&conn, &s1p).await;
    assert_eq!(s1.kind().await.expect("Kind"), "internal");
    assert_eq!(s1.state().await.expect("State"), "running");
    let xml = s1.get_xml(no_opts()).await.expect("xml");
    assert!(xml.contains("<memory snapshot='internal'/>"), "{xml}");
    assert!(
        xml.contains("<disk name='vda' snapshot='internal'/>"),
        "{xml}"
    );
    let held = guest::image_snapshots(&disk);
    assert!(
        held.iter().any(|(n, vm)| n == "s1" && *vm > 0),
        "s1 in the image with the memory state: {held:?}"
    );

    set_markers(&ga, "disk-2", "mem-2").await;
    let s2p = dom
        .create_snapshot(&snap("s2"), no_opts())
        .await
        .expect("s2");
    let s2 = snapshot(&conn, &s2p).await;
    assert_eq!(s2.parent().await.expect("Parent"), s1p);
    set_markers(&ga, "disk-3", "mem-3").await;

    // revert in place: both markers back, the guest running on
    step("revert in place");
    sigs.take().await;
    let t = Instant::now();
    s1.revert(no_opts()).await.expect("revert s1");
    eprintln!("revert in place: {:?}", t.elapsed());
    let got = sigs.take().await;
    assert!(
        lifecycle(&got).is_empty(),
        "running before and after, in place"
    );
    assert_eq!(strings(&got, &p, "Job"), ["snapshot-revert", ""]);
    assert_eq!(markers(&ga).await, "disk-1\nmem-1\n");
    assert_eq!(dom.state().await.expect("State"), "running");
    assert_eq!(dom.state_reason().await.expect("reason"), "from-snapshot");
    assert_eq!(current(&conn, &dom).await, "s1");
    s2.revert(no_opts()).await.expect("revert s2");
    assert_eq!(markers(&ga).await, "disk-2\nmem-2\n");
    // ... and to a paused guest
    step("... and to a paused guest");
    s1.revert(opts([b("paused")])).await.expect("revert paused");
    let got = sigs.take().await;
    assert_eq!(lifecycle(&got), [ev("suspended", "from-snapshot")]);
    assert_eq!(strings(&got, &p, "State"), ["paused"]);
    assert_eq!(dom.state().await.expect("State"), "paused");
    dom.resume(no_opts()).await.expect("resume");
    assert_eq!(markers(&ga).await, "disk-1\nmem-1\n");

    // delete s2: object gone, image snapshot gone, tree right
    step("delete s2");
    s2.delete(no_opts()).await.expect("delete s2");
    let got = sigs.take().await;
    assert!(
        got.iter()
            .any(|g| matches!(g, Sig::InterfacesRemoved { path, .. } if path == s2p.as_str())),
        "{got:?}"
    );
    assert!(!guest::image_snapshots(&disk).iter().any(|(n, _)| n == "s2"));
    assert_eq!(snapshot_names(&conn, &dom).await, ["s1"]);
    assert_eq!(current(&conn, &dom).await, "s1");

    // across a daemon restart (kill -9): the tree, and the reattached guest's nodes
    step("across a daemon restart (kill -9)");
    d.kill();
    d.restart(&bus).await;
    let conn = bus.connect().await;
    let mut sigs = Signals::new(&conn).await;
    let dom = domain(&conn, &path).await;
    assert_eq!(snapshot_names(&conn, &dom).await, ["s1"]);
    assert_eq!(current(&conn, &dom).await, "s1");
    assert_eq!(dom.snapshot_count().await.expect("count"), 1);
    assert_eq!(dom.state().await.expect("State"), "running");
    set_markers(&ga, "disk-4", "mem-4").await;
    let s1 = snapshot(&conn, &s1p).await;
    s1.revert(no_opts()).await.expect("revert after restart");
    assert_eq!(markers(&ga).await, "disk-1\nmem-1\n");

    // shut off: an internal snapshot of the disks by qemu-img
    step("shut off");
    dom.destroy(no_opts()).await.expect("destroy");
    let offp = dom
        .create_snapshot(&snap("off"), no_opts())
        .await
        .expect("offline snapshot");
    let off = snapshot(&conn, &offp).await;
    assert_eq!(off.state().await.expect("State"), "shutoff");
    assert!(
        guest::image_snapshots(&disk)
            .iter()
            .any(|(n, vm)| n == "off" && *vm == 0),
        "{:?}",
        guest::image_snapshots(&disk)
    );
    assert_eq!(off.parent().await.expect("Parent"), s1p);

    // revert a shut-off domain to s1: QEMU started paused, loaded, run
    step("revert a shut-off domain to s1");
    sigs.take().await;
    s1.revert(no_opts()).await.expect("revert from shut off");
    let got = sigs.take().await;
    assert_eq!(lifecycle(&got), [ev("started", "from-snapshot")]);
    let p = path.as_str();
    assert_eq!(strings(&got, p, "State"), ["running"]);
    assert_eq!(strings(&got, p, "StateReason"), ["from-snapshot"]);
    assert_eq!(markers(&ga).await, "disk-1\nmem-1\n");
    set_markers(&ga, "disk-5", "mem-5").await;

    // revert the running domain to the shut-off snapshot, asking for it running: stopped,
    // the images rolled back, started afresh
    step("revert the running domain to the shut-off snapshot, asking for it running");
    off.revert(opts([b("running")]))
        .await
        .expect("revert to off");
    let got = sigs.take().await;
    assert_eq!(
        lifecycle(&got),
        [
            ev("stopped", "from-snapshot"),
            ev("started", "from-snapshot")
        ]
    );
    wait_agent(&dom).await;
    let ga = guest::TestAgent::of(&dom.get_xml(no_opts()).await.expect("xml")).await;
    assert_eq!(
        ga.sh("cat /mnt/data/marker").await,
        "disk-1\n",
        "the disk as it was at 'off' (the memory marker went with the reboot)"
    );

    // deletes while running go through QEMU, the tree follows
    step("deletes go through QEMU while running, through qemu-img while shut off");
    off.delete(no_opts()).await.expect("delete off");
    assert_eq!(
        guest::image_snapshots(&disk)
            .into_iter()
            .map(|(n, _)| n)
            .collect::<Vec<_>>(),
        ["s1"]
    );
    dom.destroy(no_opts()).await.expect("destroy");
    s1.delete(no_opts()).await.expect("delete s1 offline");
    assert!(guest::image_snapshots(&disk).is_empty());
    assert_eq!(dom.snapshot_count().await.expect("count"), 0);
    assert_eq!(current(&conn, &dom).await, "");

    // a raw disk cannot hold an internal snapshot: refused by name, nothing made
    step("a raw disk cannot hold an internal snapshot");
    let raw = bus.dir.path().join("raw.img");
    let st = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "raw"])
        .arg(&raw)
        .arg("8M")
        .status()
        .expect("qemu-img");
    assert!(st.success());
    let rawdisk = format!(
        "<disk type='file' device='disk'><driver name='qemu' type='raw'/>\
         <source file='{}'/><target dev='vdb' bus='virtio'/></disk>",
        raw.display()
    );
    let rp = mgr
        .define_domain(
            &guest::domain_xml("rawdom", &bus.dir.path().join("r.qcow2"), &rawdisk),
            no_opts(),
        )
        .await
        .expect("define rawdom");
    let rd = domain(&conn, &rp).await;
    let r = rd.create_snapshot(&snap("x"), no_opts()).await;
    assert_eq!(error_name(&r), "org.virtbus1.Error.NotSupported", "{r:?}");
    assert!(error_message(&r).contains("'vdb'"), "{r:?}");
    assert_eq!(rd.snapshot_count().await.expect("count"), 0);
}

/// A daemon with short agent timeouts and the test hooks in `dir`.
async fn hooked_daemon(bus: &Bus) -> (Daemon, PathBuf) {
    let hooks = bus.dir.path().join("hooks");
    std::fs::create_dir_all(&hooks).expect("hooks dir");
    let conf = bus.dir.path().join("virtbusd.toml");
    std::fs::write(&conf, "[qemu]\nagent_timeout_secs = 2\n").expect("config");
    let launch = Launch {
        extra: vec!["--config".into(), conf.display().to_string()],
        env: vec![(
            "VIRTBUS_QEMU_TEST_HOOKS".into(),
            hooks.display().to_string(),
        )],
        ..Default::default()
    };
    (Daemon::start_launch(bus, launch).await, hooks)
}

fn set_fault(hooks: &Path, fault: Option<&str>) {
    let f = hooks.join("faults");
    match fault {
        Some(x) => std::fs::write(f, format!("{x}\n")).expect("faults"),
        None => {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// What the agent reported during snapshot `name`, as the hooks recorded it.
fn observed(hooks: &Path, name: &str) -> Vec<String> {
    std::fs::read_to_string(hooks.join("observed"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut w = l.split(' ');
            let (_dom, snap, status) = (w.next()?, w.next()?, w.next()?);
            (snap == name).then(|| status.to_owned())
        })
        .collect()
}

/// The images of the domain's first disk, top first, from the live XML.
fn chain_of(xml: &str) -> Vec<String> {
    let disk = xml
        .split("<disk ")
        .nth(1)
        .and_then(|r| r.split("</disk>").next())
        .expect("a disk");
    disk.split("<source file='")
        .skip(1)
        .filter_map(|r| r.split('\'').next())
        .map(str::to_owned)
        .collect()
}

/// Not frozen: a write on the data disk finishes at once, and a thaw finds nothing to thaw.
async fn assert_thawed(dom: &DomainProxy<'_>, ga: &guest::TestAgent, what: &str) {
    let t = Instant::now();
    let (code, out) = ga
        .try_sh("timeout 5 sh -c 'echo ok > /mnt/data/probe && sync' && cat /mnt/data/probe")
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!((code, out.as_str()), (0, "ok\n"), "{what}: writable");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "{what}: {:?}",
        t.elapsed()
    );
    assert_eq!(
        dom.fs_thaw(no_opts()).await.expect("thaw"),
        0,
        "{what}: thawed"
    );
}

async fn wait_warning(d: &Daemon, dom: &DomainProxy<'_>, clear: bool, within: Duration) -> String {
    let t = Instant::now();
    loop {
        let w = dom.warning().await.expect("Warning");
        if w.is_empty() == clear {
            return w;
        }
        assert!(
            t.elapsed() < within,
            "Warning still {w:?} after {within:?}; daemon log:\n{}",
            d.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_and_quiesced_snapshots_never_leave_the_guest_frozen() {
    let _permit = guests(1).await;
    let bus = Bus::start();
    let (mut d, hooks) = hooked_daemon(&bus).await;
    let conn = bus.connect().await;
    let mut sigs = Signals::new(&conn).await;
    let mgr = manager(&conn).await;
    let dir = bus.dir.path();
    let base = dir.join("ext.qcow2");
    guest::data_disk(&base);
    let path = mgr
        .define_domain(
            &guest::domain_xml("ext", &base, guest::TEST_CHANNEL),
            no_opts(),
        )
        .await
        .expect("define");
    let p = path.as_str().to_owned();
    let dom = domain(&conn, &path).await;
    let uuid = dom.uuid().await.expect("uuid");
    let _kill = KillQemu {
        runtime: d.runtime.clone(),
        uuid: uuid.clone(),
    };
    dom.start(no_opts()).await.expect("start");
    wait_agent(&dom).await;
    let ga = guest::TestAgent::of(&dom.get_xml(no_opts()).await.expect("xml")).await;
    // the same write load under every snapshot below
    step("the same write load under every snapshot below");
    ga.sh("(while :; do echo x >> /mnt/data/load; usleep 5000; done) >/dev/null 2>&1 &")
        .await;
    // overlays are named after the image they cover: <stem>.<snapshot>.qcow2
    let overlay = |n: &str| dir.join(format!("ext.{n}.qcow2"));
    let q = || opts([b("disk-only"), b("quiesce")]);

    // what the driver says it can do
    let caps = mgr.get_capabilities().await.expect("caps");
    let qemu = caps
        .split("<driver name='qemu'")
        .nth(1)
        .expect("the qemu driver in the capabilities");
    assert!(
        qemu.contains("<snapshots internal='yes' external='yes' quiesce='yes'/>"),
        "{caps}"
    );

    // rule 1: quiesce needs disk-only
    step("rule 1");
    let r = dom.create_snapshot(&snap("x"), opts([b("quiesce")])).await;
    assert_eq!(
        error_name(&r),
        "org.virtbus1.Error.InvalidArgument",
        "{r:?}"
    );

    // unquiesced disk-only u1: the disk moves onto a new overlay, persisted
    step("unquiesced disk-only u1");
    sigs.take().await;
    let t = Instant::now();
    let u1p = dom
        .create_snapshot(&snap("u1"), opts([b("disk-only")]))
        .await
        .expect("u1");
    eprintln!("external disk-only snapshot: {:?}", t.elapsed());
    let u1 = snapshot(&conn, &u1p).await;
    assert_eq!(u1.kind().await.expect("Kind"), "disk-only");
    assert_eq!(u1.state().await.expect("State"), "disk-snapshot");
    let sx = u1.get_xml(no_opts()).await.expect("xml");
    assert!(
        sx.contains("<disk name='vda' snapshot='external' type='file'>")
            && sx.contains("<driver type='qcow2'/>")
            && sx.contains(&format!("<source file='{}'/>", overlay("u1").display())),
        "{sx}"
    );
    let got = sigs.take().await;
    assert!(lifecycle(&got).is_empty());
    assert_eq!(strings(&got, &p, "Job"), ["snapshot-create", ""]);
    let live = dom.get_xml(no_opts()).await.expect("live");
    let want = [
        overlay("u1").display().to_string(),
        base.display().to_string(),
    ];
    assert_eq!(chain_of(&live), want, "{live}");
    let inactive = dom.get_xml(opts([b("inactive")])).await.expect("inactive");
    assert_eq!(chain_of(&inactive), want, "{inactive}");
    let on_disk =
        std::fs::read_to_string(d.state.join(format!("domains/{uuid}.xml"))).expect("state file");
    assert_eq!(
        chain_of(&on_disk),
        want,
        "persisted before the call returned"
    );
    let info = guest::image_info(&overlay("u1"), true);
    let files: Vec<&str> = info
        .as_array()
        .expect("chain")
        .iter()
        .map(|i| i["filename"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(files, want);
    assert_eq!(info[0]["format"], "qcow2");
    assert_eq!(info[0]["backing-filename-format"], "qcow2");

    // quiesced q1: the agent reports frozen during it, thawed after
    step("quiesced q1");
    let t = Instant::now();
    dom.create_snapshot(&snap("q1"), q()).await.expect("q1");
    eprintln!("quiesced disk-only snapshot: {:?}", t.elapsed());
    assert_eq!(observed(&hooks, "q1"), ["frozen"]);
    assert_thawed(&dom, &ga, "after q1").await;
    assert_eq!(
        chain_of(&dom.get_xml(no_opts()).await.expect("live")),
        [
            overlay("u1.q1").display().to_string(),
            overlay("u1").display().to_string(),
            base.display().to_string()
        ]
    );
    // the proof: taken under the same load, the unquiesced image needs journal recovery,
    // the quiesced one does not
    assert!(guest::ext4_needs_recovery(&base), "u1 (unquiesced)");
    assert!(!guest::ext4_needs_recovery(&overlay("u1")), "q1 (quiesced)");

    // rule 3: the user froze first: the snapshot is taken, their freeze left alone
    step("rule 3");
    assert_eq!(dom.fs_freeze(no_opts()).await.expect("freeze"), 1);
    dom.create_snapshot(&snap("q2"), q())
        .await
        .expect("under the user's freeze");
    assert_eq!(observed(&hooks, "q2"), ["frozen"]);
    assert_eq!(
        dom.fs_thaw(no_opts()).await.expect("thaw"),
        1,
        "still the user's freeze"
    );
    assert_thawed(&dom, &ga, "after the user's thaw").await;
    let top = overlay("u1.q1.q2").display().to_string();
    let failed = |n: &str| overlay(&format!("u1.q1.q2.{n}"));

    // rule 5: a freeze the agent fails fails the snapshot, in the agent's words; rule 4: a
    // thaw follows; nothing is left behind
    step("rule 5");
    ga.sh("touch /run/vb-fail-freeze").await;
    let r = dom.create_snapshot(&snap("q3"), q()).await;
    ga.sh("rm /run/vb-fail-freeze").await;
    assert_eq!(error_name(&r), "org.virtbus1.Error.Failed", "{r:?}");
    let m = error_message(&r);
    assert!(m.contains("fsfreeze hook has failed with status 3"), "{m}");
    assert!(m.contains("a thaw was sent"), "{m}");
    assert!(!failed("q3").exists(), "no stray overlay");
    assert_eq!(
        chain_of(&dom.get_xml(no_opts()).await.expect("live"))[0],
        top
    );
    assert_eq!(dom.snapshot_count().await.expect("count"), 3);
    assert_thawed(&dom, &ga, "after a failed freeze").await;

    // rule 4: the agent connection breaks mid-freeze: a thaw after reconnecting undoes it
    step("rule 4, lost connection");
    set_fault(&hooks, Some("drop-freeze-reply"));
    let r = dom.create_snapshot(&snap("q4"), q()).await;
    set_fault(&hooks, None);
    let m = error_message(&r);
    assert_eq!(error_name(&r), "org.virtbus1.Error.Failed", "{r:?}");
    assert!(m.contains("connection to the guest agent was lost"), "{m}");
    assert!(
        m.contains("confirms the guest is thawed (1 filesystem(s) thawed)"),
        "the thaw after reconnecting thawed the frozen disk: {m}"
    );
    assert!(!failed("q4").exists());
    assert_eq!(dom.snapshot_count().await.expect("count"), 3);
    assert_thawed(&dom, &ga, "after a lost connection").await;

    // rule 4: the freeze times out (the guest's CPUs stopped right after it was written, by
    // the test hook): the snapshot fails, a thaw is queued behind the freeze, and the
    // domain warns until the resumed guest's agent confirms the thaw
    step("rule 4, freeze timeout");
    set_fault(&hooks, Some("pause-after-freeze"));
    sigs.take().await;
    let d2 = dom.clone();
    let stuck = tokio::spawn(async move { d2.create_snapshot(&snap("q5"), q()).await });
    wait_event(&mut sigs, "suspended", "paused", Duration::from_secs(10)).await;
    // meanwhile, reads of the domain answer at once, and show the job
    let t = Instant::now();
    assert_eq!(dom.job().await.expect("Job"), "snapshot-create");
    dom.get_xml(no_opts()).await.expect("xml");
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    let r = stuck.await.expect("join");
    set_fault(&hooks, None);
    assert_eq!(error_name(&r), "org.virtbus1.Error.Timeout", "{r:?}");
    let m = error_message(&r);
    assert!(m.contains("guest-fsfreeze-freeze"), "{m}");
    assert!(m.contains("may still be frozen"), "{m}");
    let w = dom.warning().await.expect("Warning");
    assert!(w.contains("may still be frozen"), "{w:?}");
    assert!(!failed("q5").exists());
    assert_eq!(dom.snapshot_count().await.expect("count"), 3);
    assert_eq!(dom.state().await.expect("State"), "paused");
    dom.resume(no_opts()).await.expect("resume");
    wait_warning(&d, &dom, true, Duration::from_secs(30)).await;
    assert_thawed(&dom, &ga, "after the timed-out freeze, resumed").await;

    // rule 2: a paused domain is refused before anything reaches the agent
    step("rule 2");
    dom.suspend(no_opts()).await.expect("suspend");
    let r = dom.create_snapshot(&snap("q6"), q()).await;
    assert_eq!(error_name(&r), "org.virtbus1.Error.InvalidState", "{r:?}");
    assert!(observed(&hooks, "q6").is_empty());
    dom.resume(no_opts()).await.expect("resume");
    assert_thawed(&dom, &ga, "resumed after the refusal").await;

    // rule 4: the caller leaves and the daemon is told to stop mid-freeze: the daemon
    // finishes (thaw queued) before it exits; restarted, it still warns until the resumed
    // guest confirms the thaw
    step("rule 4, caller leaves and daemon stops");
    set_fault(&hooks, Some("pause-after-freeze"));
    let c2 = bus.connect().await;
    let dom2 = domain(&c2, &path).await;
    let leaving = tokio::spawn(async move { dom2.create_snapshot(&snap("q7"), q()).await });
    wait_event(&mut sigs, "suspended", "paused", Duration::from_secs(10)).await;
    leaving.abort();
    drop(c2);
    d.signal_stop();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(d.running(), "the daemon waits for the thaw");
    let status = d.wait_exit();
    assert!(status.success(), "{status}");
    set_fault(&hooks, None);
    let log = d.log_text();
    assert!(log.contains("operations that must finish"), "{log}");
    assert!(
        log.contains("QEMU holds the agent connection with the thaw on it"),
        "{log}"
    );
    assert!(!failed("q7").exists());
    d.restart(&bus).await;
    let conn = bus.connect().await;
    let dom = domain(&conn, &path).await;
    assert_eq!(dom.state().await.expect("State"), "paused");
    let w = dom.warning().await.expect("Warning");
    assert!(
        w.contains("may still be frozen"),
        "kept across the restart: {w:?}"
    );
    dom.resume(no_opts()).await.expect("resume");
    wait_warning(&d, &dom, true, Duration::from_secs(30)).await;
    let log = d.log_text();
    assert!(log.contains("confirms the filesystems are thawed"), "{log}");
    // the thaw queued by the daemon that stopped reached the guest: QEMU held that agent
    // connection open, so nothing had to be thawed again
    assert!(log.contains("QEMU let go of the agent connection"), "{log}");
    assert!(!log.contains("still frozen by our freeze"), "{log}");
    assert_thawed(&dom, &ga, "after the daemon stopped mid-freeze").await;
    assert_eq!(dom.snapshot_count().await.expect("count"), 3);

    // rule 4: the daemon is killed (SIGKILL) right after the freeze was written and before
    // any thaw. The freeze was recorded in the status file before it was sent, so the
    // restarted daemon warns, checks, and thaws once the resumed guest has run the freeze
    // (without the record nobody would: the guest would stay frozen).
    step("rule 4, daemon killed mid-freeze");
    set_fault(&hooks, Some("pause-after-freeze"));
    let mut sigs = Signals::new(&conn).await;
    let d2 = dom.clone();
    let killed = tokio::spawn(async move { d2.create_snapshot(&snap("q8"), q()).await });
    wait_event(&mut sigs, "suspended", "paused", Duration::from_secs(10)).await;
    d.kill();
    set_fault(&hooks, None);
    let r = killed.await.expect("join");
    assert!(r.is_err(), "the call died with the daemon: {r:?}");
    d.restart(&bus).await;
    let conn = bus.connect().await;
    let dom = domain(&conn, &path).await;
    assert_eq!(dom.state().await.expect("State"), "paused");
    let w = dom.warning().await.expect("Warning");
    assert!(
        w.contains("may still be frozen"),
        "the freeze was recorded before it was sent: {w:?}"
    );
    dom.resume(no_opts()).await.expect("resume");
    wait_warning(&d, &dom, true, Duration::from_secs(40)).await;
    assert_thawed(&dom, &ga, "after the daemon was killed mid-freeze").await;
    assert_eq!(dom.snapshot_count().await.expect("count"), 3);

    // metadata-only forgets an external snapshot and keeps its images (reverts and merging
    // deletes: external_snapshots_revert_and_delete_with_data_merged)
    step("metadata-only forgets an external snapshot, its images kept");
    let u1 = snapshot(&conn, &u1p).await;
    u1.delete(opts([b("metadata-only")]))
        .await
        .expect("metadata-only");
    assert!(base.exists() && overlay("u1").exists(), "images kept");

    // an existing overlay file is refused without reuse-external, and reused with it
    step("an existing overlay file is refused without reuse-external, and reused with it");
    let given = dir.join("given.qcow2");
    std::fs::write(&given, b"not mine").expect("file");
    let xml = format!(
        "<domainsnapshot><name>g1</name><disks><disk name='vda'><source file='{}'/></disk>\
         </disks></domainsnapshot>",
        given.display()
    );
    let r = dom.create_snapshot(&xml, opts([b("disk-only")])).await;
    assert_eq!(
        error_name(&r),
        "org.virtbus1.Error.InvalidArgument",
        "{r:?}"
    );
    assert!(error_message(&r).contains("already exists"), "{r:?}");
    assert_eq!(std::fs::read(&given).expect("kept"), b"not mine");
    let r = dom
        .create_snapshot(&xml, opts([b("disk-only"), b("reuse-external")]))
        .await;
    assert_eq!(
        error_name(&r),
        "org.virtbus1.Error.InvalidArgument",
        "{r:?}"
    );
    let st = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-u", "-F", "qcow2", "-b"])
        .arg(&top)
        .arg(&given)
        .arg("64M")
        .status()
        .expect("qemu-img");
    assert!(st.success());
    dom.create_snapshot(&xml, opts([b("disk-only"), b("reuse-external")]))
        .await
        .expect("reused");
    assert_eq!(
        chain_of(&dom.get_xml(no_opts()).await.expect("live"))[..2],
        [given.display().to_string(), top.clone()]
    );

    // an internal snapshot with memory on top of the overlays, and back to it
    step("an internal snapshot with memory on top of the overlays, and back to it");
    ga.sh("echo over > /mnt/data/marker && sync").await;
    let i1 = dom
        .create_snapshot(&snap("i1"), no_opts())
        .await
        .expect("i1");
    ga.sh("echo later > /mnt/data/marker && sync").await;
    snapshot(&conn, &i1)
        .await
        .revert(no_opts())
        .await
        .expect("revert i1");
    assert_eq!(ga.sh("cat /mnt/data/marker").await, "over\n");

    // shut off: an external snapshot by qemu-img alone; the guest boots from the chain
    step("shut off");
    dom.destroy(no_opts()).await.expect("destroy");
    dom.create_snapshot(&snap("o1"), opts([b("disk-only")]))
        .await
        .expect("offline external");
    // i1 lives in the image o1 now holds under its overlay: loading it would rewrite o1
    let r = snapshot(&conn, &i1).await.revert(no_opts()).await;
    assert_eq!(error_name(&r), "org.virtbus1.Error.NotSupported", "{r:?}");
    assert!(error_message(&r).contains("would rewrite image"), "{r:?}");
    let inactive = dom.get_xml(no_opts()).await.expect("xml");
    assert_eq!(
        chain_of(&inactive)[..2],
        [
            dir.join("given.o1.qcow2").display().to_string(),
            given.display().to_string()
        ]
    );
    let t = Instant::now();
    dom.start(no_opts()).await.expect("start on the chain");
    wait_agent(&dom).await;
    assert!(t.elapsed() < BOOT);
    let ga = guest::TestAgent::of(&dom.get_xml(no_opts()).await.expect("xml")).await;
    assert_eq!(ga.sh("cat /mnt/data/marker").await, "over\n");
    dom.destroy(no_opts()).await.expect("destroy");
}

/// `qemu-img check` of an image no QEMU has open: clean.
fn assert_image_clean(image: &Path) {
    let out = std::process::Command::new("qemu-img")
        .arg("check")
        .arg(image)
        .output()
        .expect("qemu-img");
    assert!(
        out.status.success(),
        "qemu-img check {}: {}{}",
        image.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Which of the marker files `names` the guest's data disk has, space-separated.
async fn present(ga: &guest::TestAgent, names: &[&str]) -> String {
    let test: Vec<String> = names
        .iter()
        .map(|n| format!("test -e /mnt/data/{n} && echo -n '{n} '"))
        .collect();
    ga.sh(&format!("{}; true", test.join("; ")))
        .await
        .trim()
        .to_owned()
}

async fn mark(ga: &guest::TestAgent, name: &str) {
    ga.sh(&format!("echo {name} > /mnt/data/{name} && sync"))
        .await;
}

/// External snapshots reverted to and deleted with their data merged, as libvirt 9.7+: live
/// (a revert boots the guest afresh on new overlays over the snapshot's images; deletes
/// commit through QEMU's jobs, the guest running on) and shut off (qemu-img).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_snapshots_revert_and_delete_with_data_merged() {
    let _permit = guests(1).await;
    let t0 = Instant::now();
    let bus = Bus::start();
    let d = Daemon::start(&bus).await;
    let conn = bus.connect().await;
    let mut sigs = Signals::new(&conn).await;
    let mgr = manager(&conn).await;
    let dir = bus.dir.path();
    let base = dir.join("xr.qcow2");
    guest::data_disk(&base);
    let path = mgr
        .define_domain(
            &guest::domain_xml("xr", &base, guest::TEST_CHANNEL),
            no_opts(),
        )
        .await
        .expect("define");
    let p = path.as_str().to_owned();
    let dom = domain(&conn, &path).await;
    let _kill = KillQemu {
        runtime: d.runtime.clone(),
        uuid: dom.uuid().await.expect("uuid"),
    };
    let img = |n: &str| dir.join(n);
    let disk_only = || opts([b("disk-only")]);
    dom.start(no_opts()).await.expect("start");
    wait_agent(&dom).await;
    let ga = guest::TestAgent::of(&dom.get_xml(no_opts()).await.expect("xml")).await;
    let all = ["m1", "m2", "m3", "m4", "m5"];

    step("live: e1, a marker, e2, another");
    mark(&ga, "m1").await;
    let e1p = dom
        .create_snapshot(&snap("e1"), disk_only())
        .await
        .expect("e1");
    mark(&ga, "m2").await;
    let e2p = dom
        .create_snapshot(&snap("e2"), disk_only())
        .await
        .expect("e2");
    // named after the image each covers: <stem>.<snapshot>.qcow2
    assert!(img("xr.e1.qcow2").exists() && img("xr.e1.e2.qcow2").exists());

    step("live: revert to e1, running: a fresh boot on a new overlay over e1's image");
    let e1 = snapshot(&conn, &e1p).await;
    sigs.take().await;
    e1.revert(opts([b("running")])).await.expect("revert e1");
    let got = sigs.take().await;
    assert_eq!(
        lifecycle(&got),
        [
            ev("stopped", "from-snapshot"),
            ev("started", "from-snapshot")
        ]
    );
    assert_eq!(strings(&got, &p, "Job"), ["snapshot-revert", ""]);
    assert_eq!(current(&conn, &dom).await, "e1");
    let revert1 = img("xr.e1-revert1.qcow2");
    let live = dom.get_xml(no_opts()).await.expect("xml");
    assert_eq!(
        chain_of(&live),
        [revert1.display().to_string(), base.display().to_string()]
    );
    assert_eq!(
        chain_of(&dom.get_xml(opts([b("inactive")])).await.expect("xml")),
        chain_of(&live),
        "the persistent definition too"
    );
    assert!(
        !img("xr.e1.e2.qcow2").exists(),
        "the state left behind (e2's overlay) is gone"
    );
    assert!(img("xr.e1.qcow2").exists(), "e2's image stays");
    wait_agent(&dom).await;
    let ga = guest::TestAgent::of(&live).await;
    assert_eq!(present(&ga, &all).await, "m1");

    step("live: delete e2 (its branch reverted away: its image goes)");
    let e2 = snapshot(&conn, &e2p).await;
    e2.delete(no_opts()).await.expect("delete e2");
    assert!(!img("xr.e1.qcow2").exists());
    assert_eq!(snapshot_names(&conn, &dom).await, ["e1"]);

    step("live: delete e1 (the revert overlay committed into the base, the disk pivots)");
    mark(&ga, "m3").await;
    sigs.take().await;
    e1.delete(no_opts()).await.expect("delete e1");
    let got = sigs.take().await;
    assert!(lifecycle(&got).is_empty(), "{got:?}");
    assert_eq!(strings(&got, &p, "Job"), ["snapshot-delete", ""]);
    let progress: Vec<f64> = changes_of(&got, &p, "JobProgress")
        .iter()
        .map(|v| f64::try_from(v.try_clone().expect("v")).expect("d"))
        .collect();
    assert!(progress.contains(&1.0), "commit progress: {progress:?}");
    assert_eq!(
        chain_of(&dom.get_xml(no_opts()).await.expect("xml")),
        [base.display().to_string()]
    );
    assert_eq!(
        chain_of(&dom.get_xml(opts([b("inactive")])).await.expect("xml")),
        [base.display().to_string()]
    );
    assert!(!revert1.exists(), "merged, removed");
    assert_eq!(dom.snapshot_count().await.expect("count"), 0);
    assert_eq!(current(&conn, &dom).await, "");
    assert_eq!(dom.state().await.expect("State"), "running");
    mark(&ga, "m4").await;
    assert_eq!(present(&ga, &all).await, "m1 m3 m4");
    eprintln!("live part: {:?}", t0.elapsed());

    step("shut off: o1, a marker (booted), o2");
    dom.destroy(no_opts()).await.expect("destroy");
    assert_image_clean(&base);
    let o1p = dom
        .create_snapshot(&snap("o1"), disk_only())
        .await
        .expect("o1");
    dom.start(no_opts()).await.expect("start");
    wait_agent(&dom).await;
    let ga = guest::TestAgent::of(&dom.get_xml(no_opts()).await.expect("xml")).await;
    mark(&ga, "m5").await;
    dom.destroy(no_opts()).await.expect("destroy");
    let o2p = dom
        .create_snapshot(&snap("o2"), disk_only())
        .await
        .expect("o2");
    assert!(img("xr.o1.qcow2").exists() && img("xr.o1.o2.qcow2").exists());

    step("shut off: revert to o1 (stays shut off), then o2 deleted, then o1");
    let o1 = snapshot(&conn, &o1p).await;
    sigs.take().await;
    o1.revert(no_opts()).await.expect("revert o1");
    assert!(lifecycle(&sigs.take().await).is_empty());
    assert_eq!(dom.state().await.expect("State"), "shut-off");
    let orev = img("xr.o1-revert1.qcow2");
    assert_eq!(
        chain_of(&dom.get_xml(no_opts()).await.expect("xml")),
        [orev.display().to_string(), base.display().to_string()]
    );
    assert!(!img("xr.o1.o2.qcow2").exists());
    snapshot(&conn, &o2p)
        .await
        .delete(no_opts())
        .await
        .expect("delete o2");
    assert!(!img("xr.o1.qcow2").exists(), "o2's image went with it");
    // again, asking for it paused: booted paused on a second revert overlay, the first one
    // (unused now) gone
    sigs.take().await;
    o1.revert(opts([b("paused")]))
        .await
        .expect("revert o1 paused");
    assert_eq!(
        lifecycle(&sigs.take().await),
        [
            ev("started", "from-snapshot"),
            ev("suspended", "from-snapshot")
        ]
    );
    assert_eq!(dom.state().await.expect("State"), "paused");
    assert!(!orev.exists());
    let orev = img("xr.o1-revert2.qcow2");
    assert_eq!(
        chain_of(&dom.get_xml(no_opts()).await.expect("xml")),
        [orev.display().to_string(), base.display().to_string()]
    );
    dom.resume(no_opts()).await.expect("resume");
    // something written over o1 before its delete
    wait_agent(&dom).await;
    let ga = guest::TestAgent::of(&dom.get_xml(no_opts()).await.expect("xml")).await;
    assert_eq!(present(&ga, &all).await, "m1 m3 m4", "o1's state: no m5");
    ga.sh("echo m2 > /mnt/data/m2 && sync").await;
    dom.destroy(no_opts()).await.expect("destroy");
    o1.delete(no_opts()).await.expect("delete o1 offline");
    assert!(!orev.exists(), "merged, removed");
    assert_eq!(
        chain_of(&dom.get_xml(no_opts()).await.expect("xml")),
        [base.display().to_string()]
    );
    assert_eq!(dom.snapshot_count().await.expect("count"), 0);
    assert_image_clean(&base);
    dom.start(no_opts()).await.expect("start");
    wait_agent(&dom).await;
    let ga = guest::TestAgent::of(&dom.get_xml(no_opts()).await.expect("xml")).await;
    assert_eq!(
        present(&ga, &all).await,
        "m1 m2 m3 m4",
        "merged into the base"
    );
    dom.destroy(no_opts()).await.expect("destroy");
    assert_image_clean(&base);
    let left: Vec<String> = std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("xr."))
        .collect();
    assert_eq!(left, ["xr.qcow2"], "no overlay left");
    eprintln!(
        "external revert and delete, live and offline: {:?}",
        t0.elapsed()
    );
}

/// The daemon killed (SIGKILL) between making a snapshot's overlay and recording the
/// snapshot: the restarted daemon removes the overlay nothing references, shut off and live,
/// and the domain goes on on its image.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlays_of_a_snapshot_killed_half_way_are_removed_at_start() {
    let _permit = guests(1).await;
    let t0 = Instant::now();
    let bus = Bus::start();
    let (mut d, hooks) = hooked_daemon(&bus).await;
    let conn = bus.connect().await;
    let mgr = manager(&conn).await;
    let dir = bus.dir.path();
    let base = dir.join("kx.qcow2");
    guest::data_disk(&base);
    let path = mgr
        .define_domain(
            &guest::domain_xml("kx", &base, guest::TEST_CHANNEL),
            no_opts(),
        )
        .await
        .expect("define");
    let dom = domain(&conn, &path).await;
    let _kill = KillQemu {
        runtime: d.runtime.clone(),
        uuid: dom.uuid().await.expect("uuid"),
    };
    let mut dom = dom;
    for (live, name) in [(false, "k1"), (true, "k2")] {
        step(if live { "live" } else { "shut off" });
        if live {
            dom.start(no_opts()).await.expect("start");
            wait_agent(&dom).await;
        }
        set_fault(&hooks, Some("hang-after-overlay"));
        let d2 = dom.clone();
        let n = name.to_owned();
        let call =
            tokio::spawn(
                async move { d2.create_snapshot(&snap(&n), opts([b("disk-only")])).await },
            );
        let overlay = dir.join(format!("kx.{name}.qcow2"));
        until("the overlay is made", Duration::from_secs(20), async || {
            observed(&hooks, name).contains(&"overlay-made".to_owned())
        })
        .await;
        assert!(overlay.exists());
        d.kill();
        set_fault(&hooks, None);
        assert!(call.await.expect("join").is_err(), "died with the daemon");
        d.restart(&bus).await;
        let conn = bus.connect().await;
        dom = domain(&conn, &path).await;
        assert!(
            !overlay.exists(),
            "removed at start; daemon log:\n{}",
            d.log_text()
        );
        assert_eq!(dom.snapshot_count().await.expect("count"), 0);
        assert_eq!(
            chain_of(&dom.get_xml(no_opts()).await.expect("xml")),
            [base.display().to_string()]
        );
        if live {
            assert_eq!(dom.state().await.expect("State"), "running");
            let ga = guest::TestAgent::of(&dom.get_xml(no_opts()).await.expect("xml")).await;
            mark(&ga, "after").await;
            // and a snapshot now is taken as usual, its overlay kept
            dom.create_snapshot(&snap("k3"), opts([b("disk-only")]))
                .await
                .expect("k3");
            assert!(dir.join("kx.k3.qcow2").exists());
            dom.destroy(no_opts()).await.expect("destroy");
        }
    }
    eprintln!("killed half-way, twice: {:?}", t0.elapsed());
}
