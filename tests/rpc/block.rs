//! virsh's disk commands through the RPC socket: `blkdeviotune` and `domblkerror` against
//! libvirt's own test driver, and on a running tiny guest with a chain of qcow2 overlays of
//! the test's own: throttling read back from QEMU, a resize seen in the image, a write
//! threshold crossed by the guest, commit, pull, active commit with pivot and copy with
//! pivot checked in the image chain (`qemu-img info`) and the domain XML, a cancelled copy,
//! the block-job events `virsh event` sees, and a real I/O error (a disk image on a full
//! tmpfs) raising libvirt's I/O error events.

use std::{
    io::Read,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use super::{Rpc, guest, libvirt_test};

const TEST: &str = "test+unix:///default";
const QEMU: &str = "qemu:///system";

#[tokio::test]
async fn test_uri_block_tuning_and_errors_are_libvirts_test_driver() {
    let r = Rpc::start().await;
    for cmd in [
        &["blkdeviotune", "test", "vda"][..],
        &["blkdeviotune", "test", "vda", "--config"],
        &["blkdeviotune", "test", "vda", "--total-bytes-sec", "5000"],
        &["domblkerror", "test"],
        &["blkdeviotune", "test", "vdz"],
        &["blkdeviotune", "test", "vdz", "--total-bytes-sec", "1"],
        // what libvirt's test driver does not implement
        &["blockjob", "test", "vda", "--info"],
        &["blockresize", "test", "vda", "1G"],
        &["domblkthreshold", "test", "vda", "1"],
        &["blockpull", "test", "vda"],
    ] {
        let want = libvirt_test(cmd);
        let got = r.virsh(TEST, cmd);
        assert_eq!(
            got,
            want,
            "virsh {cmd:?}: ours (left) differs from libvirt's test driver\n{}",
            r.daemon.log_text()
        );
    }
    // the comparison compares something
    let tune = r.ok(TEST, &["blkdeviotune", "test", "vda"]);
    assert_eq!(value(&tune, "total_bytes_sec"), "0", "{tune}");
    // a change is kept (libvirt's in-process driver forgets it with its process); the test
    // driver wants a maximum at least as high as each rate
    r.ok(
        TEST,
        &[
            "blkdeviotune",
            "test",
            "vda",
            "--total-iops-sec",
            "77",
            "--total-iops-sec-max",
            "100",
        ],
    );
    let tune = r.ok(TEST, &["blkdeviotune", "test", "vda"]);
    assert_eq!(value(&tune, "total_iops_sec"), "77", "{tune}");
    let e = r.fails(
        TEST,
        &[
            "blkdeviotune",
            "test",
            "vda",
            "--total-bytes-sec",
            "1",
            "--read-bytes-sec",
            "1",
        ],
    );
    assert!(
        e.contains("total and read/write of bytes_sec cannot be set at the same time"),
        "{e}"
    );
    let errs = r.ok(TEST, &["domblkerror", "test"]);
    assert!(errs.contains("vda: unspecified error"), "{errs}");
}

/// The value of a `key: value` line of virsh's output (keys padded with spaces).
fn value<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key).then(|| v.trim())
        })
        .unwrap_or_else(|| panic!("no {key} in:\n{out}"))
}

fn qemu_img_info(path: &Path) -> serde_json::Value {
    let out = Command::new("qemu-img")
        .args(["info", "-U", "--output=json"])
        .arg(path)
        .output()
        .expect("qemu-img");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("qemu-img json")
}

/// The backing file an image's header names.
fn backing(path: &Path) -> Option<String> {
    qemu_img_info(path)["backing-filename"]
        .as_str()
        .map(str::to_owned)
}

fn overlay(path: &Path, over: &Path) {
    let st = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
        .arg(over)
        .arg(path)
        .status()
        .expect("qemu-img");
    assert!(st.success());
}

/// `virsh event --loop --all` on `uri`, collecting its output.
struct Events {
    child: Child,
}

impl Events {
    fn start(r: &Rpc, uri: &str) -> Events {
        let child = Command::new("virsh")
            .args(["-c", &r.uri(uri), "event", "--loop", "--all"])
            .env("HOME", r.bus.dir.path())
            .env_remove("LIBVIRT_DEFAULT_URI")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("virsh event");
        // virsh prints nothing once its callbacks are registered: give it time to
        std::thread::sleep(Duration::from_millis(1500));
        Events { child }
    }

    /// Stop it (SIGINT, as a user would) and return what it printed.
    fn stop(mut self) -> String {
        let mut out = self.child.stdout.take().expect("stdout");
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        });
        std::thread::sleep(Duration::from_millis(500));
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && self.child.try_wait().ok().flatten().is_none() {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        reader.join().expect("reader")
    }
}

/// The source file of disk `vda` in a domain XML.
fn vda_source(xml: &str) -> String {
    let doc = roxmltree::Document::parse(xml).expect("xml");
    doc.descendants()
        .find(|n| {
            n.has_tag_name("disk")
                && n.children()
                    .any(|c| c.has_tag_name("target") && c.attribute("dev") == Some("vda"))
        })
        .and_then(|d| d.children().find(|c| c.has_tag_name("source")))
        .and_then(|s| s.attribute("file"))
        .unwrap_or_default()
        .to_owned()
}

/// The images of vda's `<backingStore>` chain in a domain XML.
fn vda_chain(xml: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse(xml).expect("xml");
    let Some(disk) = doc.descendants().find(|n| {
        n.has_tag_name("disk")
            && n.children()
                .any(|c| c.has_tag_name("target") && c.attribute("dev") == Some("vda"))
    }) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut at = disk.children().find(|c| c.has_tag_name("backingStore"));
    while let Some(b) = at {
        if let Some(f) = b
            .children()
            .find(|c| c.has_tag_name("source"))
            .and_then(|s| s.attribute("file"))
        {
            out.push(f.to_owned());
        }
        at = b.children().find(|c| c.has_tag_name("backingStore"));
    }
    out
}

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

#[tokio::test]
async fn block_commands_on_a_running_guest() {
    let r = Rpc::start().await;
    let dir = r.bus.dir.path();
    // base <- l1 <- l2 <- top, all ours
    let base = dir.join("base.qcow2");
    let (l1, l2, top) = (
        dir.join("l1.qcow2"),
        dir.join("l2.qcow2"),
        dir.join("top.qcow2"),
    );
    guest::data_disk(&base);
    overlay(&l1, &base);
    overlay(&l2, &l1);
    overlay(&top, &l2);
    let xml_path = dir.join("tiny.xml");
    std::fs::write(&xml_path, guest::domain_xml("tiny", &top, "")).expect("write xml");
    r.ok(QEMU, &["define", &s(&xml_path)]);

    // not running: refused as libvirtd refuses
    let e = r.fails(QEMU, &["blockresize", "tiny", "vda", "100M"]);
    assert!(e.contains("domain is not running"), "{e}");
    let e = r.fails(QEMU, &["domblkerror", "tiny"]);
    assert!(e.contains("domain is not running"), "{e}");
    // the definition's throttling, on a domain that is not running
    r.ok(
        QEMU,
        &[
            "blkdeviotune",
            "tiny",
            "vda",
            "--config",
            "--read-iops-sec",
            "50",
        ],
    );
    let xml = r.ok(QEMU, &["dumpxml", "--inactive", "tiny"]);
    assert!(xml.contains("<read_iops_sec>50</read_iops_sec>"), "{xml}");

    let events = Events::start(&r, QEMU);
    r.ok(QEMU, &["start", "tiny"]);
    let xml = r.ok(QEMU, &["dumpxml", "tiny"]);
    assert_eq!(vda_chain(&xml), [s(&l2), s(&l1), s(&base)], "{xml}");
    // the guest formats its data disk; wait for its agent (it starts after the mount)
    r.ok_eventually(&["qemu-agent-command", "tiny", r#"{"execute":"guest-ping"}"#]);

    // read-only connections change nothing
    for cmd in [
        &["blockresize", "tiny", "vda", "100M"][..],
        &["blkdeviotune", "tiny", "vda", "--total-bytes-sec", "1"],
        &["domblkthreshold", "tiny", "vda", "1"],
        &["blockpull", "tiny", "vda"],
        &["blockjob", "tiny", "vda", "--abort"],
    ] {
        let mut args = vec!["-r"];
        args.extend_from_slice(cmd);
        let e = r.fails(QEMU, &args);
        assert!(e.contains("read only access prevents"), "{cmd:?}: {e}");
    }

    // throttling: set live, read back from virsh and from QEMU itself
    r.ok(
        QEMU,
        &[
            "blkdeviotune",
            "tiny",
            "vda",
            "--live",
            "--total-bytes-sec",
            "10485760",
            "--total-iops-sec",
            "400",
        ],
    );
    let tune = r.ok(QEMU, &["blkdeviotune", "tiny", "vda"]);
    assert_eq!(value(&tune, "total_bytes_sec"), "10485760", "{tune}");
    assert_eq!(value(&tune, "total_iops_sec"), "400", "{tune}");
    let q = r.ok(
        QEMU,
        &[
            "qemu-monitor-command",
            "tiny",
            r#"{"execute":"query-block"}"#,
        ],
    );
    let q: serde_json::Value = serde_json::from_str(q.trim()).expect("json");
    let dev = q["return"]
        .as_array()
        .and_then(|a| a.iter().find(|d| d["inserted"]["file"] == s(&top).as_str()))
        .unwrap_or_else(|| panic!("{q}"));
    assert_eq!(dev["inserted"]["bps"], 10485760, "{dev}");
    assert_eq!(dev["inserted"]["iops"], 400, "{dev}");
    // the config kept its own
    let tune = r.ok(QEMU, &["blkdeviotune", "tiny", "vda", "--config"]);
    assert_eq!(value(&tune, "read_iops_sec"), "50", "{tune}");
    assert_eq!(value(&tune, "total_bytes_sec"), "0", "{tune}");
    // bad input
    let e = r.fails(
        QEMU,
        &["blkdeviotune", "tiny", "vdz", "--total-bytes-sec", "1"],
    );
    assert!(e.contains("disk 'vdz' not found in domain"), "{e}");
    let e = r.fails(
        QEMU,
        &[
            "blkdeviotune",
            "tiny",
            "vda",
            "--total-bytes-sec",
            "1",
            "--read-bytes-sec",
            "2",
        ],
    );
    assert!(
        e.contains("total and read/write of bytes_sec cannot be set at the same time"),
        "{e}"
    );
    // throttling off again
    r.ok(
        QEMU,
        &[
            "blkdeviotune",
            "tiny",
            "vda",
            "--total-bytes-sec",
            "0",
            "--total-iops-sec",
            "0",
        ],
    );

    let errs = r.ok(QEMU, &["domblkerror", "tiny"]);
    assert!(errs.contains("No errors found"), "{errs}");

    // resize: the image grows
    r.ok(QEMU, &["blockresize", "tiny", "vda", "96M"]);
    assert_eq!(
        qemu_img_info(&top)["virtual-size"],
        96 * 1024 * 1024,
        "{}",
        r.daemon.log_text()
    );
    let e = r.fails(QEMU, &["blockresize", "tiny", "vdz", "96M"]);
    assert!(
        e.contains("disk 'vdz' was not found in the domain config"),
        "{e}"
    );

    // a write threshold just past the image's end: the guest's writes cross it
    let size = std::fs::metadata(&top).expect("stat").len();
    r.ok(QEMU, &["domblkthreshold", "tiny", "vda", &size.to_string()]);
    let e = r.fails(QEMU, &["domblkthreshold", "tiny", "vdz", "1"]);
    assert!(e.contains("failed to find disk 'vdz'"), "{e}");
    let e = r.fails(QEMU, &["domblkthreshold", "tiny", "vda[9]", "1"]);
    assert!(e.contains("failed to find disk 'vda[9]'"), "{e}");
    // an image below the top, by the live XML's index (read-only: never crossed)
    r.ok(QEMU, &["domblkthreshold", "tiny", "vda[4]", "1048576"]);
    r.ok(
        QEMU,
        &[
            "qemu-agent-command",
            "tiny",
            r#"{"execute":"guest-exec","arguments":{"path":"/bin/sh","arg":["-c","dd if=/dev/urandom of=/mnt/data/blob bs=65536 count=32; sync"]}}"#,
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::metadata(&top).expect("stat").len() <= size + 1024 * 1024 {
        assert!(Instant::now() < deadline, "the guest did not write");
        std::thread::sleep(Duration::from_millis(200));
    }

    // no job yet
    let info = r.ok(QEMU, &["blockjob", "tiny", "vda", "--info"]);
    assert!(info.contains("No current block job for vda"), "{info}");
    let e = r.fails(QEMU, &["blockjob", "tiny", "vda", "--abort"]);
    assert!(
        e.contains("disk vda does not have an active block job"),
        "{e}"
    );
    let e = r.fails(QEMU, &["blockcommit", "tiny", "vda", "--wait"]);
    assert!(
        e.contains("commit of 'vda' active layer requires active flag"),
        "{e}"
    );
    let e = r.fails(
        QEMU,
        &["blockpull", "tiny", "vda", "--base", "/nonexistent.qcow2"],
    );
    assert!(
        e.contains("could not find image '/nonexistent.qcow2'"),
        "{e}"
    );

    // commit l1 into base: top -> l2 -> base
    r.ok(
        QEMU,
        &[
            "blockcommit",
            "tiny",
            "vda",
            "--top",
            &s(&l1),
            "--base",
            &s(&base),
            "--wait",
        ],
    );
    assert_eq!(backing(&l2), Some(s(&base)));
    let xml = r.ok(QEMU, &["dumpxml", "tiny"]);
    assert_eq!(vda_chain(&xml), [s(&l2), s(&base)], "{xml}");

    // pull l2 into top, down to base: top -> base
    r.ok(
        QEMU,
        &["blockpull", "tiny", "vda", "--base", &s(&base), "--wait"],
    );
    assert_eq!(backing(&top), Some(s(&base)));
    let xml = r.ok(QEMU, &["dumpxml", "tiny"]);
    assert_eq!(vda_chain(&xml), [s(&base)], "{xml}");

    // active commit with pivot: the disk is base now, live and in the definition
    r.ok(
        QEMU,
        &[
            "blockcommit",
            "tiny",
            "vda",
            "--active",
            "--pivot",
            "--wait",
        ],
    );
    let xml = r.ok(QEMU, &["dumpxml", "tiny"]);
    assert_eq!(vda_source(&xml), s(&base), "{xml}");
    assert!(vda_chain(&xml).is_empty(), "{xml}");
    let xml = r.ok(QEMU, &["dumpxml", "--inactive", "tiny"]);
    assert_eq!(vda_source(&xml), s(&base), "{xml}");
    assert_eq!(qemu_img_info(&base)["virtual-size"], 96 * 1024 * 1024);

    // copy with pivot into a new image: a persistent domain needs a transient job
    let copy = dir.join("copy.qcow2");
    let e = r.fails(
        QEMU,
        &["blockcopy", "tiny", "vda", &s(&copy), "--wait", "--pivot"],
    );
    assert!(e.contains("domain is not transient"), "{e}");
    r.ok(
        QEMU,
        &[
            "blockcopy",
            "tiny",
            "vda",
            &s(&copy),
            "--format",
            "qcow2",
            "--transient-job",
            "--wait",
            "--pivot",
        ],
    );
    let xml = r.ok(QEMU, &["dumpxml", "tiny"]);
    assert_eq!(vda_source(&xml), s(&copy), "{xml}");
    assert_eq!(backing(&copy), None);
    assert_eq!(qemu_img_info(&copy)["virtual-size"], 96 * 1024 * 1024);
    let list = r.ok(QEMU, &["domblklist", "tiny"]);
    assert!(list.contains(&s(&copy)), "{list}");
    // a pull with nothing below: done at once
    r.ok(QEMU, &["blockpull", "tiny", "vda", "--wait"]);

    // a slow copy: its progress and speed, then cancelled; the disk stays
    let copy2 = dir.join("copy2.qcow2");
    r.ok(
        QEMU,
        &[
            "blockcopy",
            "tiny",
            "vda",
            &s(&copy2),
            "--format",
            "qcow2",
            "--transient-job",
            "--bandwidth",
            "1",
        ],
    );
    let e = r.fails(QEMU, &["blockpull", "tiny", "vda"]);
    assert!(e.contains("already in active block job"), "{e}");
    let info = r.ok(QEMU, &["blockjob", "tiny", "vda", "--info", "--raw"]);
    assert!(info.contains("bandwidth=1\n"), "{info}");
    let end: u64 = value(&info.replace('=', ":"), "end").parse().expect("end");
    assert!(end > 0, "{info}");
    r.ok(QEMU, &["blockjob", "tiny", "vda", "--bandwidth", "2"]);
    let info = r.ok(QEMU, &["blockjob", "tiny", "vda", "--info", "--bytes"]);
    assert!(info.contains("Bandwidth limit: 2097152 bytes/s"), "{info}");
    r.ok(QEMU, &["blockjob", "tiny", "vda", "--abort"]);
    let info = r.ok(QEMU, &["blockjob", "tiny", "vda", "--info"]);
    assert!(info.contains("No current block job for vda"), "{info}");
    let xml = r.ok(QEMU, &["dumpxml", "tiny"]);
    assert_eq!(vda_source(&xml), s(&copy), "{xml}");

    r.ok(QEMU, &["destroy", "tiny"]);
    let out = events.stop();
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("block-job") || l.contains("block-threshold"))
        .collect();
    let has = |want: &str| lines.iter().any(|l| l.contains(want));
    for want in [
        &format!(
            "event 'block-threshold' for domain 'tiny': dev: vda({}) {size} ",
            s(&top)
        )[..],
        &format!(
            "event 'block-job' for domain 'tiny': Block Commit for {} completed",
            s(&top)
        ),
        "event 'block-job-2' for domain 'tiny': Block Commit for vda completed",
        "event 'block-job-2' for domain 'tiny': Block Pull for vda completed",
        &format!(
            "event 'block-job' for domain 'tiny': Block Pull for {} completed",
            s(&copy)
        ),
        "event 'block-job-2' for domain 'tiny': Active Block Commit for vda ready",
        "event 'block-job-2' for domain 'tiny': Active Block Commit for vda completed",
        "event 'block-job-2' for domain 'tiny': Block Copy for vda ready",
        "event 'block-job-2' for domain 'tiny': Block Copy for vda completed",
        "event 'block-job-2' for domain 'tiny': Block Copy for vda canceled",
    ] {
        assert!(has(want), "no {want:?} in:\n{out}");
    }
    // the live throttle change raised libvirt's tunable event
    for want in [
        "event 'tunable' for domain 'tiny':\n\tblkdeviotune.disk: vda\n",
        "\tblkdeviotune.total_bytes_sec: 10485760\n",
        "\tblkdeviotune.total_iops_sec: 400\n",
    ] {
        assert!(out.contains(want), "no {want:?} in:\n{out}");
    }
    r.ok(QEMU, &["undefine", "tiny"]);
}

/// A small tmpfs of our own, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: PathBuf, size: &str) -> Tmpfs {
        std::fs::create_dir_all(&at).expect("mkdir");
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&at)
            .status()
            .expect("mount");
        assert!(st.success(), "mount tmpfs");
        Tmpfs(at)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test]
async fn a_full_disk_raises_io_error_events() {
    let r = Rpc::start().await;
    let dir = r.bus.dir.path();
    // a 64 MiB raw image on a 256 KiB tmpfs: the guest's mke2fs runs out of room
    let fs = Tmpfs::mount(dir.join("small"), "256k");
    let img = fs.0.join("full.raw");
    let st = Command::new("truncate")
        .args(["-s", "64M"])
        .arg(&img)
        .status()
        .expect("truncate");
    assert!(st.success());
    let xml = guest::domain_xml("full", &img, "")
        .replace("type='qcow2'/>", "type='raw' error_policy='stop'/>");
    assert!(xml.contains("error_policy='stop'"), "{xml}");
    let xml_path = dir.join("full.xml");
    std::fs::write(&xml_path, xml).expect("write xml");
    r.ok(QEMU, &["define", &s(&xml_path)]);
    let events = Events::start(&r, QEMU);
    r.ok(QEMU, &["start", "full"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let st = r.ok(QEMU, &["domstate", "full", "--reason"]);
        if st.contains("paused (I/O error)") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the guest did not stop on the I/O error: {st}\n{}",
            r.daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let errs = r.ok(QEMU, &["domblkerror", "full"]);
    assert!(errs.contains("vda: no space"), "{errs}");
    r.ok(QEMU, &["destroy", "full"]);
    let out = events.stop();
    let path = s(&img);
    for want in [
        format!("event 'io-error' for domain 'full': {path} (virtio-disk0) pause"),
        format!(
            "event 'io-error-reason' for domain 'full': {path} (virtio-disk0) pause due to enospc"
        ),
        "event 'lifecycle' for domain 'full': Suspended I/O Error".to_owned(),
    ] {
        assert!(out.contains(&want), "no {want:?} in:\n{out}");
    }
    r.ok(QEMU, &["undefine", "full"]);
    drop(fs);
}

#[tokio::test]
async fn refusals_on_a_stopped_domain_are_libvirtds() {
    if let Err(why) = crate::support::libvirtd::Libvirtd::available() {
        panic!("Debian's libvirtd is needed as the oracle: {why}");
    }
    let r = Rpc::start().await;
    let lv = crate::support::libvirtd::Libvirtd::start();
    let dir = r.bus.dir.path();
    let disk = dir.join("data.qcow2");
    guest::data_disk(&disk);
    let xml_path = dir.join("tiny.xml");
    std::fs::write(&xml_path, guest::domain_xml("tiny", &disk, "")).expect("write xml");
    r.ok(QEMU, &["define", &s(&xml_path)]);
    let o = lv.virsh(&["define", &s(&xml_path)]);
    assert!(o.status.success(), "{}", lv.log_text());
    let set = [
        "blkdeviotune",
        "tiny",
        "vda",
        "--config",
        "--read-iops-sec",
        "50",
        "--write-bytes-sec",
        "1000",
    ];
    r.ok(QEMU, &set);
    assert!(lv.virsh(&set).status.success());
    let copy = s(&dir.join("copy.qcow2"));
    for cmd in [
        &["blkdeviotune", "tiny", "vda", "--config"][..],
        &["blkdeviotune", "tiny", "vda"],
        &["blkdeviotune", "tiny", "vdz", "--config"],
        &[
            "blkdeviotune",
            "tiny",
            "vdz",
            "--config",
            "--total-bytes-sec",
            "1",
        ],
        &[
            "blkdeviotune",
            "tiny",
            "vda",
            "--config",
            "--total-bytes-sec",
            "1",
            "--read-bytes-sec",
            "1",
        ],
        &[
            "blkdeviotune",
            "tiny",
            "vda",
            "--live",
            "--total-bytes-sec",
            "1",
        ],
        &[
            "blkdeviotune",
            "tiny",
            "vda",
            "--config",
            "--group-name",
            "g1",
        ],
        &["blkdeviotune", "tiny", "vda", "--config"],
        &["blockresize", "tiny", "vda", "100M"],
        &["domblkerror", "tiny"],
        &["domblkthreshold", "tiny", "vda", "1"],
        &["blockjob", "tiny", "vda", "--info"],
        &["blockjob", "tiny", "vda", "--abort"],
        &["blockpull", "tiny", "vda"],
        &["blockcommit", "tiny", "vda", "--active"],
        &["blockcopy", "tiny", "vda", &copy, "--transient-job"],
    ] {
        let theirs = lv.virsh(cmd);
        let (ok, out, err) = r.virsh(QEMU, cmd);
        assert_eq!(
            (ok, out.trim(), err.trim()),
            (
                theirs.status.success(),
                String::from_utf8_lossy(&theirs.stdout).trim(),
                String::from_utf8_lossy(&theirs.stderr).trim()
            ),
            "virsh {cmd:?}: ours (left) differs from libvirtd's"
        );
    }
    r.ok(QEMU, &["undefine", "tiny"]);
}
