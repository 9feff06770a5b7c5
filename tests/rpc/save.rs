//! `virsh save` / `restore` / `save-image-*` / `dump` / `dommemstat --period` with unchanged
//! virsh: on a running tiny guest (the file in libvirt's save image layout, the guest's
//! memory surviving the round trip, the dump an ELF of the guest's memory, the image read and
//! restored by Debian's libvirtd), and on
//! `test+unix:///default` compared with libvirt's own test driver.

use std::{path::Path, process::Command};

use super::{Rpc, guest, libvirt_test};
use crate::support::libvirtd::Libvirtd;

const TEST: &str = "test+unix:///default";
const QEMU: &str = "qemu:///system";

/// Run python3-libvirt `body` (with `c` the connection to `uri` on this daemon, read-only
/// when `ro`): `Ok` with what it printed, or `Err` with libvirt's error message. virsh's
/// `save` and `dump` run the call on a thread whose quick end can be missed by virsh 9.0's
/// event loop (it then waits forever), so calls that fail at once go through python.
fn py(r: &Rpc, uri: &str, ro: bool, body: &str) -> Result<String, String> {
    let uri = format!("{uri}?socket={}", r.sock.display());
    py_at(r, &uri, ro, body)
}

/// [`py`] at `uri` as it is (`test:///default`: libvirt's own test driver, in-process).
fn py_at(r: &Rpc, uri: &str, ro: bool, body: &str) -> Result<String, String> {
    let script = format!(
        "import libvirt, sys\n\
         c = libvirt.{open}('{uri}')\n\
         try:\n    {body}\n\
         except libvirt.libvirtError as e:\n    print(e.get_error_message()); sys.exit(3)\n",
        open = if ro { "openReadOnly" } else { "open" },
    );
    let out = Command::new("/usr/bin/python3")
        .args(["-c", &script])
        .env("HOME", r.bus.dir.path())
        .output()
        .expect("python3-libvirt");
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    match out.status.code() {
        Some(0) => Ok(text),
        Some(3) => Err(text),
        _ => panic!(
            "python: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            r.daemon.log_text()
        ),
    }
}

/// A guest agent command's `return` member.
fn agent(r: &Rpc, dom: &str, cmd: serde_json::Value) -> serde_json::Value {
    let out = r.ok(QEMU, &["qemu-agent-command", dom, &cmd.to_string()]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("agent JSON");
    v["return"].clone()
}

/// Write `text` to `path` in the guest's memory-only root filesystem.
fn guest_write(r: &Rpc, dom: &str, path: &str, text: &str) {
    let h = agent(
        r,
        dom,
        serde_json::json!({"execute": "guest-file-open", "arguments": {"path": path, "mode": "w"}}),
    );
    let b64 = base64(text.as_bytes());
    agent(
        r,
        dom,
        serde_json::json!({"execute": "guest-file-write", "arguments": {"handle": h, "buf-b64": b64}}),
    );
    agent(
        r,
        dom,
        serde_json::json!({"execute": "guest-file-close", "arguments": {"handle": h}}),
    );
}

/// Read `path` in the guest, `None` when it does not exist.
fn guest_read(r: &Rpc, dom: &str, path: &str) -> Option<String> {
    let open = serde_json::json!({"execute": "guest-file-open", "arguments": {"path": path}});
    let (ok, out, _) = r.virsh(QEMU, &["qemu-agent-command", dom, &open.to_string()]);
    if !ok {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("agent JSON");
    let h = v["return"].clone();
    let got = agent(
        r,
        dom,
        serde_json::json!({"execute": "guest-file-read", "arguments": {"handle": h}}),
    );
    agent(
        r,
        dom,
        serde_json::json!({"execute": "guest-file-close", "arguments": {"handle": h}}),
    );
    let b = unbase64(got["buf-b64"].as_str().unwrap_or_default());
    Some(String::from_utf8_lossy(&b).into_owned())
}

const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64(b: &[u8]) -> String {
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn unbase64(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes() {
        let Some(v) = B64.iter().position(|&x| x == c) else {
            continue;
        };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// The bytes of guest memory an ELF core file holds: the sum of its `PT_LOAD` segments.
fn elf_load_bytes(path: &Path) -> u64 {
    let b = std::fs::read(path).expect("read dump");
    assert_eq!(&b[..4], b"\x7fELF", "not an ELF file");
    assert_eq!(b[4], 2, "ELF64");
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
    let u64_at = |o: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[o..o + 8]);
        u64::from_le_bytes(w)
    };
    let phoff = u64_at(0x20) as usize;
    let phentsize = usize::from(u16_at(0x36));
    let phnum = usize::from(u16_at(0x38));
    (0..phnum)
        .map(|i| phoff + i * phentsize)
        .filter(|&o| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]) == 1)
        .map(|o| u64_at(o + 0x28))
        .sum()
}

/// The guest's 256 MiB, and the few MiB of ROM and video memory QEMU maps beside it.
fn assert_guest_memory(bytes: u64) {
    assert!(
        (256 << 20..(256 + 16) << 20).contains(&bytes),
        "{bytes} bytes of memory dumped"
    );
}

fn state(r: &Rpc, dom: &str) -> String {
    r.ok(QEMU, &["domstate", "--reason", dom]).trim().to_owned()
}

#[tokio::test]
async fn save_restore_and_dump_a_real_guest() {
    let r = Rpc::start().await;
    let dir = r.bus.dir.path();
    let disk = dir.join("data.qcow2");
    guest::data_disk(&disk);
    let xml_path = dir.join("tiny.xml");
    std::fs::write(&xml_path, guest::domain_xml("tiny", &disk, "")).expect("write xml");
    r.ok(QEMU, &["define", &xml_path.to_string_lossy()]);
    r.ok(QEMU, &["start", "tiny"]);
    r.ok_eventually(&["qemu-agent-command", "tiny", r#"{"execute":"guest-ping"}"#]);
    // a mark in the guest's memory (its root filesystem is the initramfs): a guest restored
    // from its state has it, a guest booted afresh would not
    guest_write(&r, "tiny", "/vb-mark", "before save");

    // the balloon's statistics period, live and in the definition
    r.ok(
        QEMU,
        &["dommemstat", "tiny", "--period", "3", "--live", "--config"],
    );
    let live = r.ok(QEMU, &["dumpxml", "tiny"]);
    assert!(live.contains("<stats period='3'/>"), "{live}");
    let config = r.ok(QEMU, &["dumpxml", "--inactive", "tiny"]);
    assert!(config.contains("<stats period='3'/>"), "{config}");

    // the NIC's link, through update-device and QMP set_link, as domif-setlink does it
    let mac = live
        .split("<mac address='")
        .nth(1)
        .and_then(|r| r.split('\'').next())
        .expect("a MAC address")
        .to_owned();
    r.ok(QEMU, &["domif-setlink", "tiny", &mac, "down"]);
    let link = r.ok(QEMU, &["domif-getlink", "tiny", &mac]);
    assert!(link.trim().ends_with("down"), "{link}");
    r.ok(QEMU, &["domif-setlink", "tiny", &mac, "up"]);
    let link = r.ok(QEMU, &["domif-getlink", "tiny", &mac]);
    assert!(link.trim().ends_with("up"), "{link}");

    // bad paths and flags: refused, the guest runs on
    let e = py(
        &r,
        QEMU,
        false,
        "c.lookupByName('tiny').save('/nonexistent-vb/dir/x.save')",
    )
    .expect_err("no such directory");
    assert!(
        e.contains("Failed to create file '/nonexistent-vb/dir/x.save'"),
        "{e}"
    );
    assert_eq!(state(&r, "tiny"), "running (booted)");
    let e = r.fails(QEMU, &["save", "tiny", "/tmp/x", "--running", "--paused"]);
    assert!(e.contains("mutually exclusive"), "{e}");
    // read-only connections change nothing
    for call in [
        "c.lookupByName('tiny').save('/tmp/vb-ro.save')",
        "c.lookupByName('tiny').coreDump('/tmp/vb-ro.core', 0)",
        "c.lookupByName('tiny').setMemoryStatsPeriod(5, 0)",
    ] {
        let e = py(&r, QEMU, true, call).expect_err(call);
        assert!(e.contains("read only access prevents"), "{call}: {e}");
    }
    assert!(!Path::new("/tmp/vb-ro.save").exists());

    // a save in progress: its job shows, and domjobabort cancels it (the migration stream
    // slowed down so that it is still running when asked)
    let e = r.fails(QEMU, &["domjobabort", "tiny"]);
    assert!(e.contains("no job is active on the domain"), "{e}");
    let bandwidth = |bytes: u64| {
        let cmd = serde_json::json!({"execute": "migrate-set-parameters",
                                     "arguments": {"max-bandwidth": bytes}});
        r.ok(QEMU, &["qemu-monitor-command", "tiny", &cmd.to_string()]);
    };
    bandwidth(256 << 10);
    let aborted = dir.join("aborted.save");
    let saving = Command::new("virsh")
        .arg("-c")
        .arg(format!("{QEMU}?socket={}", r.sock.display()))
        .args(["save", "tiny", &aborted.to_string_lossy()])
        .env("HOME", dir)
        .env_remove("LIBVIRT_DEFAULT_URI")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("virsh save");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let job = r.ok(QEMU, &["domjobinfo", "tiny"]);
        if job.contains("Unbounded") {
            assert!(job.contains("Save"), "{job}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no save job: {job}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    r.ok(QEMU, &["domjobabort", "tiny"]);
    let out = saving.wait_with_output().expect("virsh save");
    assert!(!out.status.success(), "the save was not aborted");
    assert!(!aborted.exists(), "an aborted save leaves no file");
    assert_eq!(state(&r, "tiny"), "running (booted)");
    bandwidth(128 << 20);

    // a memory-only dump is an ELF core file of the guest's 256 MiB
    let core = dir.join("tiny.core");
    let core_arg = core.to_string_lossy().into_owned();
    let out = r.ok(QEMU, &["dump", "tiny", &core_arg, "--memory-only"]);
    assert!(out.contains("Domain 'tiny' dumped to"), "{out}");
    assert_guest_memory(elf_load_bytes(&core));
    assert_eq!(state(&r, "tiny"), "running (booted)");
    let live_core = dir.join("tiny-live.core");
    r.ok(
        QEMU,
        &[
            "dump",
            "tiny",
            &live_core.to_string_lossy(),
            "--memory-only",
            "--live",
            "--format",
            "elf",
        ],
    );
    assert_guest_memory(elf_load_bytes(&live_core));
    let e = py(
        &r,
        QEMU,
        false,
        &format!("c.lookupByName('tiny').coreDumpWithFormat('{core_arg}', 1, 0)"),
    )
    .expect_err("kdump without memory-only");
    assert!(
        e.contains("kdump-compressed format is only supported with memory-only dump"),
        "{e}"
    );

    // job statistics: no job runs now, and none completed is kept
    for args in [
        &["domjobinfo", "tiny"][..],
        &["domjobinfo", "tiny", "--completed"],
    ] {
        let job = r.ok(QEMU, args);
        assert!(
            job.lines()
                .any(|l| l.starts_with("Job type:") && l.trim_end().ends_with("None")),
            "{args:?}: {job}"
        );
    }

    // save: the file is libvirt's save image, the domain stops as saved
    let image = dir.join("tiny.save");
    let image_arg = image.to_string_lossy().into_owned();
    let out = r.ok(QEMU, &["save", "tiny", &image_arg]);
    assert!(out.contains("Domain 'tiny' saved to"), "{out}");
    assert_eq!(state(&r, "tiny"), "shut off (saved)");
    let bytes = std::fs::read(&image).expect("image");
    assert_eq!(&bytes[..16], b"LibvirtQemudSave");
    assert_eq!(
        u32::from_ne_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]),
        2
    );
    // whether it ran, then the XML after the 92-byte header, then QEMU's stream ("QEVM")
    assert_eq!(
        u32::from_ne_bytes([bytes[24], bytes[25], bytes[26], bytes[27]]),
        1
    );
    let data_len = u32::from_ne_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]) as usize;
    assert!(bytes[92..].starts_with(b"<domain type='qemu'>"));
    assert_eq!(&bytes[92 + data_len..92 + data_len + 4], b"QEVM");

    // Debian's libvirtd reads the header and XML of our image as its own
    let lv = Libvirtd::start();
    let theirs = lv.virsh(&["save-image-dumpxml", &image_arg]);
    assert!(
        theirs.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&theirs.stderr),
        lv.log_text()
    );
    assert!(String::from_utf8_lossy(&theirs.stdout).contains("<name>tiny</name>"));
    // and restores it: the guest answers its agent there (a copy: ours is restored below)
    let copy = dir.join("copy.save");
    std::fs::copy(&image, &copy).expect("copy");
    let lv_ok = |args: &[&str]| {
        let o = lv.virsh(args);
        assert!(
            o.status.success(),
            "libvirtd: virsh {args:?}: {}\n{}",
            String::from_utf8_lossy(&o.stderr),
            lv.log_text()
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    lv_ok(&["restore", &copy.to_string_lossy()]);
    let pong = lv_ok(&["qemu-agent-command", "tiny", r#"{"execute":"guest-ping"}"#]);
    assert_eq!(pong.trim(), r#"{"return":{}}"#);
    lv_ok(&["destroy", "tiny"]);
    drop(lv);

    // the XML it holds, and a replacement
    let xml = r.ok(QEMU, &["save-image-dumpxml", &image_arg]);
    assert!(xml.contains("<name>tiny</name>"), "{xml}");
    assert!(!xml.contains(" id='"), "{xml}");
    let edited = xml.replace(
        "<name>tiny</name>",
        "<name>tiny</name>\n  <description>restored here</description>",
    );
    let edited_path = dir.join("edited.xml");
    std::fs::write(&edited_path, &edited).expect("write");
    r.ok(
        QEMU,
        &[
            "save-image-define",
            &image_arg,
            &edited_path.to_string_lossy(),
        ],
    );
    let xml = r.ok(QEMU, &["save-image-dumpxml", &image_arg]);
    assert!(
        xml.contains("<description>restored here</description>"),
        "{xml}"
    );
    let renamed = dir.join("renamed.xml");
    std::fs::write(
        &renamed,
        xml.replace("<name>tiny</name>", "<name>other</name>"),
    )
    .expect("write");
    let e = r.fails(
        QEMU,
        &["save-image-define", &image_arg, &renamed.to_string_lossy()],
    );
    assert!(
        e.contains("Target domain name 'other' does not match source 'tiny'"),
        "{e}"
    );
    let e = r.fails(
        QEMU,
        &[
            "-r",
            "save-image-define",
            &image_arg,
            &edited_path.to_string_lossy(),
        ],
    );
    assert!(e.contains("read only"), "{e}");

    // not an image, no such file
    let e = r.fails(QEMU, &["restore", &xml_path.to_string_lossy()]);
    assert!(e.contains("image magic is incorrect"), "{e}");
    let e = r.fails(QEMU, &["restore", "/nonexistent-vb/x.save"]);
    assert!(e.contains("No such file or directory"), "{e}");
    let e = r.fails(QEMU, &["-r", "restore", &image_arg]);
    assert!(e.contains("read only"), "{e}");

    // restore: the same guest, its memory as it was
    let out = r.ok(QEMU, &["restore", &image_arg]);
    assert!(out.contains("Domain restored from"), "{out}");
    assert_eq!(state(&r, "tiny"), "running (restored)");
    r.ok_eventually(&["qemu-agent-command", "tiny", r#"{"execute":"guest-ping"}"#]);
    assert_eq!(
        guest_read(&r, "tiny", "/vb-mark").as_deref(),
        Some("before save")
    );
    let live = r.ok(QEMU, &["dumpxml", "tiny"]);
    assert!(
        live.contains("<description>restored here</description>"),
        "{live}"
    );
    // not while that domain runs
    let e = r.fails(QEMU, &["restore", &image_arg]);
    assert!(e.contains("domain 'tiny' is already active"), "{e}");

    // saved to run paused, restored paused
    let paused = dir.join("paused.save");
    r.ok(
        QEMU,
        &["save", "tiny", &paused.to_string_lossy(), "--paused"],
    );
    r.ok(QEMU, &["restore", &paused.to_string_lossy()]);
    assert_eq!(state(&r, "tiny"), "paused (user)");
    r.ok(QEMU, &["resume", "tiny"]);
    assert_eq!(
        guest_read(&r, "tiny", "/vb-mark").as_deref(),
        Some("before save")
    );

    // a crash dump stops the guest
    r.ok(
        QEMU,
        &["dump", "tiny", &core_arg, "--memory-only", "--crash"],
    );
    assert_eq!(state(&r, "tiny"), "shut off (crashed)");
    r.ok(QEMU, &["undefine", "tiny"]);
    // a transient domain comes back from its image
    r.ok(QEMU, &["restore", &paused.to_string_lossy(), "--running"]);
    assert_eq!(state(&r, "tiny"), "running (restored)");
    let info = r.ok(QEMU, &["dominfo", "tiny"]);
    assert!(
        info.lines()
            .any(|l| l.starts_with("Persistent:") && l.ends_with("no")),
        "{info}"
    );
    r.ok(QEMU, &["destroy", "tiny"]);
    let (ok, _, _) = r.virsh(QEMU, &["dominfo", "tiny"]);
    assert!(!ok, "a transient domain goes when it stops");
}

#[tokio::test]
async fn test_driver_save_restore_and_dump_as_libvirts() {
    let r = Rpc::start().await;
    let dir = r.bus.dir.path();
    let ours = dir.join("ours.save");
    let theirs = dir.join("theirs.save");
    let (o, t) = (
        ours.to_string_lossy().into_owned(),
        theirs.to_string_lossy().into_owned(),
    );
    // libvirt's test driver (in-process in python) and ours: state, image XML, restore
    let walk = |f: &str| {
        format!(
            "d = c.lookupByName('test'); d.save('{f}'); print(d.state()); \
             print(c.saveImageGetXMLDesc('{f}', 0)); c.restore('{f}'); print(d.state()); \
             print(d.XMLDesc(0))"
        )
    };
    let theirs_out = py_at(&r, "test:///default", false, &walk(&t)).expect("libvirt");
    let ours_out = py(&r, TEST, false, &walk(&o)).expect("ours");
    assert_eq!(ours_out.replace(&o, &t), theirs_out);
    assert!(
        theirs_out.starts_with("[5, 5]"),
        "shut off, saved: {theirs_out}"
    );
    // the same file, byte for byte
    assert_eq!(
        std::fs::read(&ours).expect("ours"),
        std::fs::read(&theirs).expect("theirs")
    );
    // what the test driver refuses, in its words (virsh 9.0 hangs after a failed save or
    // dump on test:///default, so only restore is compared; the rest in libvirt's words)
    let (lok, _, lerr) = libvirt_test(&[&format!("restore {t} --paused")]);
    let (ook, _, oerr) = r.virsh(TEST, &["restore", &o, "--paused"]);
    assert!(!lok && !ook);
    assert_eq!(oerr.replace(&o, &t), lerr);
    for (call, want) in [
        (
            format!(
                "c.lookupByName('test').saveFlags('{o}', None, libvirt.VIR_DOMAIN_SAVE_RUNNING)"
            ),
            "unsupported flags (0x2) in function testDomainSaveFlags",
        ),
        (
            format!("c.lookupByName('test').coreDump('{o}', libvirt.VIR_DUMP_MEMORY_ONLY)"),
            "unsupported flags (0x10) in function testDomainCoreDumpWithFormat",
        ),
        (
            format!("c.lookupByName('test').saveFlags('{o}', '<domain/>', 0)"),
            "xml modification unsupported",
        ),
    ] {
        let e = py(&r, TEST, false, &call).expect_err(&call);
        assert!(e.contains(want), "{call}: {e}");
    }
    // no such file: the test driver's words (libvirt words it as a system error)
    let e = r.fails(TEST, &["restore", "/nonexistent-vb/x"]);
    assert!(
        e.contains("cannot read domain image '/nonexistent-vb/x': No such file or directory"),
        "{e}"
    );
    // a dump holds the test driver's magic alone; a crash dump stops the domain
    let core = dir.join("test.core");
    py(
        &r,
        TEST,
        false,
        &format!(
            "c.lookupByName('test').coreDump('{}', libvirt.VIR_DUMP_CRASH)",
            core.display()
        ),
    )
    .expect("dump");
    assert_eq!(std::fs::read(&core).expect("core"), b"TestGuestMagic\0");
    assert_eq!(
        r.ok(TEST, &["domstate", "test", "--reason"]).trim(),
        "shut off (crashed)"
    );
}
