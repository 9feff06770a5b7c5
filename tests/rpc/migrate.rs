//! `virsh migrate` between two virtbus daemons on this host through unchanged libvirt.so
//! (normal, client-managed mode: the version 3 steps with extensible parameters), with the
//! tiny guest on a disk both reach: its memory survives the move (a file in its RAM root
//! filesystem, its agent), the lifecycle events on both sides come in libvirt's order, a
//! slowed migration can be followed and aborted, an offline one moves the definition, and
//! the tuning commands round-trip. Errors for a lone daemon are compared with Debian's
//! libvirtd.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use super::{Rpc, guest};
use crate::support::libvirtd::Libvirtd;

const QEMU: &str = "qemu:///system";

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
    agent(
        r,
        dom,
        serde_json::json!({"execute": "guest-file-write",
                           "arguments": {"handle": h, "buf-b64": b64(text.as_bytes())}}),
    );
    agent(
        r,
        dom,
        serde_json::json!({"execute": "guest-file-close", "arguments": {"handle": h}}),
    );
}

fn guest_read(r: &Rpc, dom: &str, path: &str) -> String {
    let h = agent(
        r,
        dom,
        serde_json::json!({"execute": "guest-file-open", "arguments": {"path": path}}),
    );
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
    got["count"].to_string()
}

const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn b64(b: &[u8]) -> String {
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

fn state(r: &Rpc, dom: &str) -> String {
    r.ok(QEMU, &["domstate", "--reason", dom]).trim().to_owned()
}

/// A python3-libvirt process printing `name event detail` for every lifecycle, migration
/// iteration and job completed event on `uri` until killed; started before what it watches.
fn watch_events(r: &Rpc, uri: &str) -> std::process::Child {
    let script = format!(
        "import libvirt, sys, threading\n\
         libvirt.virEventRegisterDefaultImpl()\n\
         c = libvirt.open('{uri}')\n\
         def p(*a):\n    print(*a, flush=True)\n\
         c.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE,\n\
             lambda c, d, e, x, o: p(d.name(), 'lifecycle', e, x), None)\n\
         c.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_MIGRATION_ITERATION,\n\
             lambda c, d, i, o: p(d.name(), 'iteration', i), None)\n\
         c.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_JOB_COMPLETED,\n\
             lambda c, d, s, o: p(d.name(), 'job-completed', s.get('operation'),\n\
                 s.get('memory_total', 0) > 0), None)\n\
         p('ready')\n\
         while True:\n    libvirt.virEventRunDefaultImpl()\n"
    );
    let mut child = Command::new("/usr/bin/python3")
        .args(["-u", "-c", &script])
        .env("HOME", r.bus.dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3-libvirt");
    // wait for its registrations
    use std::io::BufRead;
    let out = child.stdout.take().expect("stdout");
    let mut lines = std::io::BufReader::new(out);
    let mut first = String::new();
    lines.read_line(&mut first).expect("ready line");
    assert_eq!(first.trim(), "ready");
    child.stdout = Some(lines.into_inner());
    child
}

/// What a [`watch_events`] process printed, once killed.
fn events_of(mut child: std::process::Child) -> Vec<String> {
    std::thread::sleep(Duration::from_millis(500));
    let _ = child.kill();
    let out = child.wait_with_output().expect("python output");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Send the destination's prepare step (`DOMAIN_MIGRATE_PREPARE3_PARAMS`) with `cookie`, as
/// only a broken or foreign source would: the error's message.
fn prepare_with_cookie(r: &Rpc, xml: &str, cookie: &[u8]) -> String {
    use super::badinput::{call, connect, error_of, roundtrip};
    use virtbus::rpc::{
        frame::Status,
        proto::{ConnectOpenArgs, procs},
        xdr::encode,
    };
    let mut s = connect(r);
    let open = ConnectOpenArgs {
        name: Some(QEMU.into()),
        flags: 0,
    };
    let (h, _) = roundtrip(&mut s, &call(procs::CONNECT_OPEN, 1), &encode(&open));
    assert_eq!(h.status, Status::Ok);
    // params<>: one string parameter (VIR_TYPED_PARAM_STRING = 7); opaque cookie<>; flags
    let mut body = encode(&1u32);
    body.extend(encode(&"destination_xml".to_owned()));
    body.extend(encode(&7i32));
    body.extend(encode(&xml.to_owned()));
    body.extend(encode(&(cookie.len() as u32)));
    body.extend_from_slice(cookie);
    body.extend(std::iter::repeat_n(0u8, (4 - cookie.len() % 4) % 4));
    body.extend(encode(&0u32));
    let (h, b) = roundtrip(&mut s, &call(303, 2), &body);
    error_of(&h, &b).message.unwrap_or_default()
}

fn virsh_at(r: &Rpc, args: &[&str]) -> Command {
    let mut c = Command::new("virsh");
    c.arg("-c")
        .arg(r.uri(QEMU))
        .args(args)
        .env("HOME", r.bus.dir.path())
        .env_remove("LIBVIRT_DEFAULT_URI");
    c
}

#[tokio::test]
async fn virsh_migrates_a_running_guest_between_two_daemons() {
    let src = Rpc::start().await;
    let dst = Rpc::start().await;
    let dir = src.bus.dir.path();
    let disk = dir.join("shared.qcow2");
    guest::data_disk(&disk);
    let xml_path = dir.join("mig.xml");
    std::fs::write(&xml_path, guest::domain_xml("mig", &disk, "")).expect("write xml");
    src.ok(QEMU, &["define", &xml_path.to_string_lossy()]);
    src.ok(QEMU, &["start", "mig"]);
    src.ok_eventually(&["qemu-agent-command", "mig", r#"{"execute":"guest-ping"}"#]);
    guest_write(&src, "mig", "/vb-mark", "before migration");
    let dest_uri = format!("qemu+unix:///system?socket={}", dst.sock.display());

    // tuning round trips on the running guest
    src.ok(QEMU, &["migrate-setmaxdowntime", "mig", "450"]);
    assert_eq!(
        src.ok(QEMU, &["migrate-getmaxdowntime", "mig"]).trim(),
        "450"
    );
    src.ok(QEMU, &["migrate-compcache", "mig", "--size", "8388608"]);
    let cache = src.ok(QEMU, &["migrate-compcache", "mig"]);
    assert!(cache.contains("8.000 MiB"), "{cache}");
    let speed = src.ok(QEMU, &["migrate-getspeed", "mig"]);
    assert_eq!(
        speed.trim(),
        "8796093022207",
        "never limited: libvirt's maximum"
    );
    src.ok(QEMU, &["migrate-setspeed", "mig", "--postcopy", "100"]);
    assert_eq!(
        src.ok(QEMU, &["migrate-getspeed", "mig", "--postcopy"])
            .trim(),
        "100"
    );
    let e = src.fails(QEMU, &["migrate-postcopy", "mig"]);
    assert!(
        e.contains("post-copy can only be started while outgoing migration is in progress"),
        "{e}"
    );

    // bad flags and a foreign cookie: refused, the guest runs on where it was
    let e = src.fails(QEMU, &["migrate", "--p2p", "mig", &dest_uri]);
    assert!(
        e.contains("unsupported flags") || e.contains("peer-to-peer"),
        "{e}"
    );
    let e = src.fails(QEMU, &["migrate", "--postcopy", "mig", &dest_uri]);
    assert!(
        e.contains("post-copy migration is not supported with non-live or paused migration"),
        "{e}"
    );
    let e = prepare_with_cookie(
        &dst,
        &std::fs::read_to_string(&xml_path).expect("xml"),
        b"<qemu-migration/>",
    );
    assert!(e.contains("not a virtbus one"), "{e}");
    assert_eq!(state(&src, "mig"), "running (booted)");
    assert!(dst.ok(QEMU, &["list", "--all", "--name"]).trim().is_empty());

    // a migration slowed down, followed with domjobinfo and aborted with domjobabort
    src.ok(QEMU, &["migrate-setspeed", "mig", "1"]);
    assert_eq!(src.ok(QEMU, &["migrate-getspeed", "mig"]).trim(), "1");
    let slow = virsh_at(&src, &["migrate", "--live", "mig", &dest_uri])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("virsh migrate");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job = src.ok(QEMU, &["domjobinfo", "mig"]);
        if job.contains("Memory processed") {
            assert!(job.contains("Unbounded"), "{job}");
            assert!(job.contains("Outgoing migration"), "{job}");
            break;
        }
        assert!(Instant::now() < deadline, "no migration job: {job}");
        std::thread::sleep(Duration::from_millis(200));
    }
    src.ok(QEMU, &["domjobabort", "mig"]);
    let out = slow.wait_with_output().expect("virsh migrate");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("canceled by client"), "{err}");
    assert_eq!(state(&src, "mig"), "running (booted)");
    let left = dst.ok(QEMU, &["list", "--all", "--name"]);
    assert!(left.trim().is_empty(), "left at the destination: {left}");
    src.ok(QEMU, &["migrate-setspeed", "mig", "0"]);

    // the live migration, watched from both sides
    let src_events = watch_events(&src, &src.uri(QEMU));
    let dst_events = watch_events(&dst, &dst.uri(QEMU));
    let out = virsh_at(
        &src,
        &[
            "migrate",
            "--live",
            "--persistent",
            "--undefinesource",
            "--verbose",
            "mig",
            &dest_uri,
        ],
    )
    .output()
    .expect("virsh migrate");
    assert!(
        out.status.success(),
        "migrate: {}\nsource:\n{}\ndestination:\n{}",
        String::from_utf8_lossy(&out.stderr),
        src.daemon.log_text(),
        dst.daemon.log_text()
    );
    let progress = String::from_utf8_lossy(&out.stderr);
    assert!(progress.contains("Migration: [100 %]"), "{progress}");
    assert_eq!(state(&dst, "mig"), "running (migrated)");
    assert!(
        src.ok(QEMU, &["list", "--all", "--name"]).trim().is_empty(),
        "the source keeps nothing"
    );
    let listed = dst.ok(QEMU, &["dominfo", "mig"]);
    assert!(listed.contains("Persistent:     yes"), "{listed}");
    // the guest's memory came along: the file in its RAM filesystem, its agent
    assert_eq!(guest_read(&dst, "mig", "/vb-mark"), "16");
    let job = dst.ok(QEMU, &["domjobinfo", "mig", "--completed"]);
    assert!(job.contains("Completed"), "{job}");
    assert!(job.contains("Incoming migration"), "{job}");

    let src_seen = events_of(src_events);
    let dst_seen = events_of(dst_events);
    let lifecycle = |v: &[String]| -> Vec<String> {
        v.iter()
            .filter(|l| !l.contains("iteration"))
            .cloned()
            .collect()
    };
    // suspended/migrated, job completed (migration out), stopped/migrated, undefined
    assert_eq!(
        lifecycle(&src_seen),
        [
            "mig lifecycle 3 1",
            "mig job-completed 5 True",
            "mig lifecycle 5 3",
            "mig lifecycle 1 0",
        ],
        "{src_seen:?}"
    );
    assert!(
        src_seen.iter().any(|l| l == "mig iteration 1"),
        "{src_seen:?}"
    );
    // started/migrated, defined/added, resumed/migrated, job completed (migration in)
    assert_eq!(
        dst_seen,
        [
            "mig lifecycle 2 1",
            "mig lifecycle 0 0",
            "mig lifecycle 4 1",
            "mig job-completed 4 True",
        ],
        "{dst_seen:?}"
    );

    // offline migration back: the definition alone moves
    dst.ok(QEMU, &["destroy", "mig"]);
    let back = format!("qemu+unix:///system?socket={}", src.sock.display());
    dst.ok(
        QEMU,
        &[
            "migrate",
            "--offline",
            "--persistent",
            "--undefinesource",
            "mig",
            &back,
        ],
    );
    assert_eq!(state(&src, "mig"), "shut off (unknown)");
    assert!(dst.ok(QEMU, &["list", "--all", "--name"]).trim().is_empty());
    let e = src.fails(QEMU, &["migrate", "--offline", "mig", &dest_uri]);
    assert!(
        e.contains("offline migration must be specified with the persistent flag set"),
        "{e}"
    );
    src.ok(QEMU, &["undefine", "mig"]);
}

/// What a lone daemon answers, compared with Debian's libvirtd: the tuning getters on a
/// shut-off domain, and a migration of one that does not run.
#[tokio::test]
async fn migration_errors_as_libvirtd() {
    let r = Rpc::start().await;
    let lv = Libvirtd::start();
    let lv_ok = |args: &[&str]| {
        let o = lv.virsh(args);
        assert!(
            o.status.success(),
            "libvirtd: virsh {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let lv_fails = |args: &[&str]| {
        let o = lv.virsh(args);
        assert!(!o.status.success(), "libvirtd: virsh {args:?} succeeded");
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let dir = r.bus.dir.path();
    let disk = dir.join("off.qcow2");
    guest::data_disk(&disk);
    let xml_path = dir.join("off.xml");
    std::fs::write(&xml_path, guest::domain_xml("off", &disk, "")).expect("write xml");
    r.ok(QEMU, &["define", &xml_path.to_string_lossy()]);
    lv_ok(&["define", &xml_path.to_string_lossy()]);
    for args in [
        &["migrate-getmaxdowntime", "off"][..],
        &["migrate-setmaxdowntime", "off", "100"],
        &["migrate-compcache", "off"],
        &["migrate-postcopy", "off"],
        &["migrate-getspeed", "off", "--postcopy"],
    ] {
        let ours = r.fails(QEMU, args);
        let theirs = lv_fails(args);
        assert_eq!(ours.trim(), theirs.trim(), "virsh {args:?}");
    }
    let args = ["migrate-getspeed", "off"];
    assert_eq!(
        r.ok(QEMU, &args).trim(),
        lv_ok(&args).trim(),
        "virsh {args:?}"
    );
    r.ok(QEMU, &["migrate-setspeed", "off", "5"]);
    assert_eq!(r.ok(QEMU, &["migrate-getspeed", "off"]).trim(), "5");
    r.ok(QEMU, &["undefine", "off"]);
    lv_ok(&["undefine", "off"]);
}
