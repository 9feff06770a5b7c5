//! `virsh backup-begin` / `backup-dumpxml` / `domjobinfo` / `domjobabort` on a running tiny
//! guest through the RPC socket: a push backup whose target `qemu-img` reads and holds what
//! the guest wrote before the backup began (read with `debugfs`, the guest's disk is ext4) and
//! not what it wrote after; a pull backup read over NBD with `qemu-img convert`, showing the
//! disk as it was when the backup began while the guest writes on; the job completed event
//! seen by a python3-libvirt callback; and refusals and `backup-dumpxml` compared with
//! Debian's libvirtd running the same guest.

use std::{
    io::Read,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use super::{Rpc, guest};

const QEMU: &str = "qemu:///system";

/// A virsh runner: status, stdout, stderr.
type Virsh<'a> = &'a dyn Fn(&[&str]) -> (bool, String, String);

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Run `cmd` with `/bin/sh -c` in the guest through its agent and wait for its end.
fn guest_sh(run: Virsh, dom: &str, cmd: &str) {
    let exec = serde_json::json!({"execute": "guest-exec", "arguments": {
        "path": "/bin/sh", "arg": ["-c", cmd]}});
    let (ok, out, err) = run(&["qemu-agent-command", dom, &exec.to_string()]);
    assert!(ok, "guest-exec {cmd}: {err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    let pid = v["return"]["pid"].as_i64().expect("pid");
    let status = serde_json::json!({"execute": "guest-exec-status", "arguments": {"pid": pid}});
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (ok, out, err) = run(&["qemu-agent-command", dom, &status.to_string()]);
        assert!(ok, "guest-exec-status: {err}");
        let v: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
        if v["return"]["exited"] == true {
            assert_eq!(v["return"]["exitcode"], 0, "{cmd}: {v}");
            return;
        }
        assert!(Instant::now() < deadline, "{cmd} did not finish");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn agent(run: Virsh, dom: &str, cmd: &str) {
    let (ok, _, err) = run(&["qemu-agent-command", dom, cmd]);
    assert!(ok, "{cmd}: {err}");
}

fn freeze(run: Virsh, dom: &str) {
    agent(run, dom, r#"{"execute":"guest-fsfreeze-freeze"}"#);
}

fn thaw(run: Virsh, dom: &str) {
    agent(run, dom, r#"{"execute":"guest-fsfreeze-thaw"}"#);
}

/// The content of file `name` in the ext4 filesystem of raw image `raw` (`None`: absent).
fn ext4_file(raw: &Path, name: &str) -> Option<String> {
    let out = Command::new("debugfs")
        .arg("-R")
        .arg(format!("cat /{name}"))
        .arg(raw)
        .output()
        .expect("debugfs (package e2fsprogs)");
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("File not found") {
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `qemu-img convert` of `src` (format `fmt`) to a raw image at `dst`.
fn to_raw(src: &str, fmt: &str, dst: &Path) {
    let out = Command::new("qemu-img")
        .args(["convert", "-f", fmt, "-O", "raw", src])
        .arg(dst)
        .output()
        .expect("qemu-img");
    assert!(
        out.status.success(),
        "qemu-img convert {src}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A python3-libvirt client registered for job completed events: one line per event.
struct JobEvents {
    child: Child,
}

const LISTENER: &str = r#"
import libvirt, sys, time
libvirt.virEventRegisterDefaultImpl()
c = libvirt.open(sys.argv[1])
want = int(sys.argv[2])
seen = []
def done(conn, dom, params, opaque):
    seen.append(1)
    print("job-completed %s %s" % (dom.name(), sorted(params.items())), flush=True)
c.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_JOB_COMPLETED, done, None)
print("ready", flush=True)
deadline = time.time() + 240
while len(seen) < want and time.time() < deadline:
    libvirt.virEventRunDefaultImpl()
"#;

impl JobEvents {
    fn start(r: &Rpc, want: usize) -> JobEvents {
        let mut child = Command::new("/usr/bin/python3")
            .args(["-c", LISTENER, &r.uri(QEMU), &want.to_string()])
            .env("HOME", r.bus.dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 (package python3-libvirt)");
        // wait for its registration
        let mut stdout = child.stdout.take().expect("stdout");
        let mut buf = [0u8; 6];
        stdout.read_exact(&mut buf).expect("listener ready");
        assert_eq!(&buf, b"ready\n");
        child.stdout = Some(stdout);
        JobEvents { child }
    }

    /// The events seen, once it has seen what it waited for.
    fn finish(mut self) -> String {
        let status = self.child.wait().expect("wait");
        let mut out = String::new();
        if let Some(mut o) = self.child.stdout.take() {
            o.read_to_string(&mut out).expect("read");
        }
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            e.read_to_string(&mut err).expect("read");
        }
        assert!(status.success(), "listener: {err}");
        out
    }
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A value of a `key: value` line of virsh's output.
fn value<'a>(out: &'a str, key: &str) -> Option<&'a str> {
    out.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == key).then(|| v.trim())
    })
}

#[tokio::test]
async fn push_and_pull_backups_of_a_running_guest() {
    let r = Rpc::start().await;
    let dir = r.bus.dir.path().to_path_buf();
    let disk = dir.join("data.qcow2");
    guest::data_disk(&disk);
    let xml_path = dir.join("tiny.xml");
    std::fs::write(&xml_path, guest::domain_xml("tiny", &disk, "")).expect("write xml");
    r.ok(QEMU, &["define", &s(&xml_path)]);

    // not running: libvirt's refusal, after the XML is read
    let bx = dir.join("push.xml");
    let target = dir.join("push.qcow2");
    std::fs::write(
        &bx,
        format!(
            "<domainbackup><disks><disk name='vda' type='file'><driver type='qcow2'/>\
             <target file='{}'/></disk></disks></domainbackup>",
            target.display()
        ),
    )
    .expect("write");
    let e = r.fails(QEMU, &["backup-begin", "tiny", &s(&bx)]);
    assert!(
        e.contains("Operation not supported: cannot perform disk backup for inactive domain"),
        "{e}"
    );
    let e = r.fails(QEMU, &["backup-dumpxml", "tiny"]);
    assert!(
        e.contains("Domain backup job id not found: no domain backup job present"),
        "{e}"
    );

    r.ok(QEMU, &["start", "tiny"]);
    r.ok_eventually(&["qemu-agent-command", "tiny", r#"{"execute":"guest-ping"}"#]);
    let run = |a: &[&str]| r.virsh(QEMU, a);
    // the guest formatted and mounted its data disk before its agent started
    guest_sh(
        &run,
        "tiny",
        "echo before-push > /mnt/data/before.txt; sync",
    );
    let events = JobEvents::start(&r, 2);

    // read-only connections start nothing
    let e = r.fails(QEMU, &["-r", "backup-begin", "tiny", &s(&bx)]);
    assert!(
        e.contains("read only access prevents virDomainBackupBegin"),
        "{e}"
    );

    // push: the target holds the disk as it was when the backup began
    freeze(&run, "tiny");
    r.ok(QEMU, &["backup-begin", "tiny", &s(&bx)]);
    thaw(&run, "tiny");
    guest_sh(&run, "tiny", "echo after-push > /mnt/data/after.txt; sync");
    // the job ends by itself; until then its XML and statistics are readable
    let (ok, xml, _) = r.virsh(QEMU, &["backup-dumpxml", "tiny"]);
    if ok {
        assert!(xml.contains("<domainbackup mode='push'>"), "{xml}");
        assert!(
            xml.contains(&format!("<target file='{}'/>", target.display())),
            "{xml}"
        );
    }
    wait_until("the push backup did not end", || {
        !r.virsh(QEMU, &["backup-dumpxml", "tiny"]).0
    });
    let done = r.ok(
        QEMU,
        &["domjobinfo", "tiny", "--completed", "--keep-completed"],
    );
    assert_eq!(value(&done, "Job type"), Some("Completed"), "{done}");
    assert_eq!(value(&done, "Operation"), Some("Backup"), "{done}");
    assert!(value(&done, "File processed").is_some(), "{done}");
    let info = guest::image_info(&target, false);
    assert_eq!(info["format"], "qcow2", "{info}");
    assert_eq!(info["virtual-size"], 64 * 1024 * 1024, "{info}");
    let raw = dir.join("push.raw");
    to_raw(&s(&target), "qcow2", &raw);
    assert_eq!(
        ext4_file(&raw, "before.txt").as_deref(),
        Some("before-push\n")
    );
    assert_eq!(
        ext4_file(&raw, "after.txt"),
        None,
        "written after the backup began"
    );
    // the target exists now: libvirt's refusal
    let e = r.fails(QEMU, &["backup-begin", "tiny", &s(&bx)]);
    assert!(
        e.contains(&format!(
            "invalid argument: store '{}' for backup of 'vda' exists",
            target.display()
        )),
        "{e}"
    );

    // pull: exported over NBD, the scratch image keeps what the guest overwrites
    let sock = dir.join("nbd.sock");
    let scratch = dir.join("scratch.qcow2");
    let px = dir.join("pull.xml");
    std::fs::write(
        &px,
        format!(
            "<domainbackup mode='pull'><server transport='unix' socket='{}'/>\
             <disks><disk name='vda' type='file'><scratch file='{}'/></disk></disks>\
             </domainbackup>",
            sock.display(),
            scratch.display()
        ),
    )
    .expect("write");
    freeze(&run, "tiny");
    r.ok(QEMU, &["backup-begin", "tiny", &s(&px)]);
    thaw(&run, "tiny");
    let xml = r.ok(QEMU, &["backup-dumpxml", "tiny"]);
    assert!(xml.contains("<domainbackup mode='pull'>"), "{xml}");
    assert!(
        xml.contains(&format!(
            "<server transport='unix' socket='{}'/>",
            sock.display()
        )),
        "{xml}"
    );
    assert!(xml.contains("exportname='vda'"), "{xml}");
    assert!(xml.contains("<driver type='qcow2'/>"), "{xml}");
    // a second backup is refused while this one runs
    let e = r.fails(QEMU, &["backup-begin", "tiny", &s(&px)]);
    assert!(e.contains("another backup job is already running"), "{e}");
    // the guest overwrites its files and adds one
    guest_sh(
        &run,
        "tiny",
        "echo changed > /mnt/data/before.txt; echo after-pull > /mnt/data/pulled.txt; sync",
    );
    freeze(&run, "tiny");
    thaw(&run, "tiny");
    let running = r.ok(QEMU, &["domjobinfo", "tiny"]);
    assert_eq!(value(&running, "Job type"), Some("Unbounded"), "{running}");
    assert_eq!(value(&running, "Operation"), Some("Backup"), "{running}");
    assert!(
        value(&running, "Temporary disk space use").is_some(),
        "{running}"
    );
    let pulled = dir.join("pull.raw");
    to_raw(
        &format!("nbd+unix:///vda?socket={}", sock.display()),
        "raw",
        &pulled,
    );
    assert_eq!(
        ext4_file(&pulled, "before.txt").as_deref(),
        Some("before-push\n")
    );
    assert_eq!(
        ext4_file(&pulled, "after.txt").as_deref(),
        Some("after-push\n")
    );
    assert_eq!(ext4_file(&pulled, "pulled.txt"), None);
    r.ok(QEMU, &["domjobabort", "tiny"]);
    wait_until("the pull backup did not end", || {
        !r.virsh(QEMU, &["backup-dumpxml", "tiny"]).0
    });
    // the scratch image is gone, as libvirt removes it
    assert!(!scratch.exists());
    let done = r.ok(QEMU, &["domjobinfo", "tiny", "--completed"]);
    assert_eq!(value(&done, "Job type"), Some("Completed"), "{done}");
    // read once: forgotten then
    let again = r.ok(QEMU, &["domjobinfo", "tiny", "--completed"]);
    assert_eq!(value(&again, "Job type"), Some("None"), "{again}");
    let e = r.fails(QEMU, &["domjobabort", "tiny"]);
    assert!(e.contains("no job is active on the domain"), "{e}");

    let seen = events.finish();
    let lines: Vec<&str> = seen.lines().collect();
    assert_eq!(lines.len(), 2, "{seen}");
    for l in &lines {
        assert!(l.starts_with("job-completed tiny "), "{seen}");
        assert!(l.contains("('operation', 9)"), "{seen}");
        assert!(l.contains("('success', True)"), "{seen}");
    }
    assert!(lines[0].contains("('disk_total', "), "{seen}");
    assert!(lines[1].contains("('disk_temp_total', "), "{seen}");
    r.ok(QEMU, &["destroy", "tiny"]);
    r.ok(QEMU, &["undefine", "tiny"]);
}

#[tokio::test]
async fn refusals_and_backup_xml_are_libvirtds() {
    if let Err(why) = crate::support::libvirtd::Libvirtd::available() {
        panic!("Debian's libvirtd is needed as the oracle: {why}");
    }
    let r = Rpc::start().await;
    let lv = crate::support::libvirtd::Libvirtd::start();
    let dir = r.bus.dir.path().to_path_buf();
    let ours_disk = dir.join("ours.qcow2");
    let theirs_disk = dir.join("theirs.qcow2");
    guest::data_disk(&ours_disk);
    guest::data_disk(&theirs_disk);
    for (disk, name) in [(&ours_disk, "ours.xml"), (&theirs_disk, "theirs.xml")] {
        std::fs::write(dir.join(name), guest::domain_xml("tiny", disk, "")).expect("write");
    }
    r.ok(QEMU, &["define", &s(&dir.join("ours.xml"))]);
    let o = lv.virsh(&["define", &s(&dir.join("theirs.xml"))]);
    assert!(o.status.success(), "{o:?}");
    let theirs = |a: &[&str]| {
        let o = lv.virsh(a);
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let ours = |a: &[&str]| r.virsh(QEMU, a);
    let same = |cmd: &[&str]| {
        let (a, b) = (ours(cmd), theirs(cmd));
        assert_eq!(
            (a.0, a.1.trim(), a.2.trim()),
            (b.0, b.1.trim(), b.2.trim()),
            "virsh {cmd:?}: ours (left) differs from libvirtd's\n{}",
            r.daemon.log_text()
        );
    };
    let file = |name: &str, body: String| -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, body).expect("write");
        p
    };
    let exists = dir.join("exists.qcow2");
    guest::data_disk(&exists);
    let scratch = dir.join("scratch.qcow2");
    let sock = dir.join("nbd.sock");
    let cases: Vec<PathBuf> = vec![
        file(
            "nodisk.xml",
            "<domainbackup><disks><disk name='vdz' type='file'/></disks></domainbackup>".into(),
        ),
        file(
            "twice.xml",
            "<domainbackup><disks><disk name='vda' type='file'/><disk name='vda' type='file'/></disks></domainbackup>"
                .into(),
        ),
        file(
            "noport.xml",
            "<domainbackup mode='pull'><server name='localhost'/></domainbackup>".into(),
        ),
        file(
            "exists.xml",
            format!(
                "<domainbackup><disks><disk name='vda' type='file'><target file='{}'/></disk></disks>\
                 </domainbackup>",
                exists.display()
            ),
        ),
        file(
            "nosel.xml",
            "<domainbackup><disks><disk name='vda' backup='no'/></disks></domainbackup>".into(),
        ),
    ];
    let pull = file(
        "pull.xml",
        format!(
            "<domainbackup mode='pull'><server transport='unix' socket='{}'/><disks>\
             <disk name='vda' type='file' exportname='exp'><scratch file='{}'/></disk></disks>\
             </domainbackup>",
            sock.display(),
            scratch.display()
        ),
    );
    // shut off
    same(&["backup-dumpxml", "tiny"]);
    same(&["backup-begin", "tiny", &s(&cases[0])]);
    same(&["domjobinfo", "tiny"]);
    // running
    r.ok(QEMU, &["start", "tiny"]);
    let o = lv.virsh(&["start", "tiny"]);
    assert!(o.status.success(), "{o:?}\n{}", lv.log_text());
    same(&["backup-dumpxml", "tiny"]);
    same(&["backup-dumpxml", "tiny", "--xpath", "/x"]);
    for c in &cases {
        same(&["backup-begin", "tiny", &s(c)]);
    }
    same(&["domjobabort", "tiny"]);
    // what libvirt's schema refuses: refused on both sides, ours naming the offending part
    for (name, body, part) in [
        (
            "bogus.xml",
            "<domainbackup><disks><disk name='vda' type='file'><bogus/></disk></disks></domainbackup>"
                .to_owned(),
            "/domainbackup/disks/disk/bogus",
        ),
        (
            "rawpull.xml",
            format!(
                "<domainbackup mode='pull'><server transport='unix' socket='{}'/><disks>\
                 <disk name='vda' type='file'><driver type='raw'/><scratch file='{}'/></disk>\
                 </disks></domainbackup>",
                sock.display(),
                scratch.display()
            ),
            "scratch image must be qcow2",
        ),
        (
            "noserver.xml",
            "<domainbackup mode='pull'/>".to_owned(),
            "/domainbackup/server",
        ),
    ] {
        let p = file(name, body);
        let (ok, _, err) = ours(&["backup-begin", "tiny", &s(&p)]);
        assert!(!ok && err.contains(part), "{name}: {err}");
        let (ok, _, err) = theirs(&["backup-begin", "tiny", &s(&p)]);
        assert!(!ok && err.contains("failed to validate"), "{name}: {err}");
    }
    // one pull backup at a time on each side: the same definition back
    r.ok(QEMU, &["backup-begin", "tiny", &s(&pull)]);
    let ours_xml = r.ok(QEMU, &["backup-dumpxml", "tiny"]);
    r.ok(QEMU, &["domjobabort", "tiny"]);
    wait_until("our pull backup did not end", || {
        !r.virsh(QEMU, &["backup-dumpxml", "tiny"]).0
    });
    let (ok, _, err) = theirs(&["backup-begin", "tiny", &s(&pull)]);
    assert!(ok, "{err}\n{}", lv.log_text());
    let (_, theirs_xml, _) = theirs(&["backup-dumpxml", "tiny"]);
    let (ok, _, err) = theirs(&["domjobabort", "tiny"]);
    assert!(ok, "{err}");
    assert_eq!(
        ours_xml, theirs_xml,
        "backup-dumpxml: ours (left), libvirtd's"
    );
    for side in [&ours as Virsh<'_>, &theirs] {
        wait_until("a pull backup did not end", || {
            !side(&["backup-dumpxml", "tiny"]).0
        });
        let (ok, _, err) = side(&["destroy", "tiny"]);
        assert!(ok, "{err}");
        let (ok, _, err) = side(&["undefine", "tiny"]);
        assert!(ok, "{err}");
    }
}
