//! The guest events beyond the lifecycle, through unchanged clients on a running tiny guest:
//! `virsh event --loop --all` sees the RTC change (the guest writes its clock), graphics (a
//! VNC client's handshake), balloon change (`setmem`) and tray change (`change-media`), with
//! their fields; `virsh qemu-monitor-event` sees the raw QMP events (with its name filters);
//! `virsh console` ends cleanly when the guest powers off; `vol-download --sparse` recreates
//! a sparse file.

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use super::{Rpc, guest};

const QEMU: &str = "qemu:///system";

/// An unchanged virsh running in the background (an event loop), its output collected.
struct Bg {
    child: Child,
    reader: Option<std::thread::JoinHandle<String>>,
    seen: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Bg {
    /// `virsh -c <qemu> args…`.
    fn start(r: &Rpc, args: &[&str]) -> Bg {
        let mut cmd = Command::new("virsh");
        cmd.args(["-c", &r.uri(QEMU)]).args(args);
        Bg::run(r, cmd)
    }

    fn run(r: &Rpc, mut cmd: Command) -> Bg {
        let mut child = cmd
            .env("HOME", r.bus.dir.path())
            .env_remove("LIBVIRT_DEFAULT_URI")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn a client");
        let mut out = child.stdout.take().expect("stdout");
        let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let s2 = seen.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                s2.lock()
                    .expect("lock")
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
            String::new()
        });
        Bg {
            child,
            reader: Some(reader),
            seen,
        }
    }

    fn text(&self) -> String {
        self.seen.lock().expect("lock").clone()
    }

    /// Wait until a line satisfying `f` is printed; that line.
    fn wait_line(&self, what: &str, f: impl Fn(&str) -> bool, r: &Rpc) -> String {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(l) = self.text().lines().find(|l| f(l)) {
                return l.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no {what} in:\n{}\ndaemon log:\n{}",
                self.text(),
                r.daemon.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stop it as a user would (SIGINT); all it printed.
    fn stop(mut self) -> String {
        // SAFETY: kill with a pid of our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let t = Instant::now();
        while self.child.try_wait().expect("wait").is_none()
            && t.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(h) = self.reader.take() {
            let _ = h.join();
        }
        self.text()
    }
}

/// An attribute's value in the first element of `xml` that has `within`.
fn attr_after(xml: &str, within: &str, attr: &str) -> String {
    let at = xml
        .find(within)
        .unwrap_or_else(|| panic!("no {within} in {xml}"));
    let rest = &xml[at..];
    let end = rest.find('>').unwrap_or(rest.len());
    let tag = &rest[..end];
    let key = format!("{attr}='");
    let i = tag
        .find(&key)
        .unwrap_or_else(|| panic!("no {attr} in {tag}"));
    tag[i + key.len()..]
        .split('\'')
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// A VNC client's connection: RFB version, no security, ClientInit, ServerInit; then closed.
fn vnc_handshake(port: u16) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to QEMU's VNC server");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let local = s.local_addr().expect("addr").port();
    let mut version = [0u8; 12];
    s.read_exact(&mut version).expect("server version");
    assert_eq!(&version, b"RFB 003.008\n");
    s.write_all(b"RFB 003.008\n").expect("client version");
    let mut n = [0u8; 1];
    s.read_exact(&mut n).expect("security types");
    let mut types = vec![0u8; n[0] as usize];
    s.read_exact(&mut types).expect("types");
    assert!(types.contains(&1), "no 'None' security: {types:?}");
    s.write_all(&[1]).expect("choose None");
    let mut result = [0u8; 4];
    s.read_exact(&mut result).expect("security result");
    assert_eq!(result, [0, 0, 0, 0]);
    // ClientInit: shared
    s.write_all(&[1]).expect("client init");
    let mut init = [0u8; 24];
    s.read_exact(&mut init).expect("server init");
    let name_len = u32::from_be_bytes([init[20], init[21], init[22], init[23]]) as usize;
    let mut name = vec![0u8; name_len];
    s.read_exact(&mut name).expect("name");
    drop(s);
    local
}

#[tokio::test]
async fn guest_events_reach_virsh_event_and_qemu_monitor_event() {
    let r = Rpc::start().await;
    let dir = r.bus.dir.path();
    let disk = dir.join("evt.qcow2");
    guest::data_disk(&disk);
    let medium = dir.join("m.iso");
    std::fs::write(&medium, vec![0u8; 64 * 2048]).expect("medium");
    let cdrom = format!(
        "<disk type='file' device='cdrom'><driver name='qemu' type='raw'/>\
         <source file='{}'/><target dev='sdb' bus='sata'/><readonly/></disk>{}",
        medium.display(),
        guest::TEST_CHANNEL
    );
    // a variable clock an hour ahead: RTC offsets count from it
    let xml = guest::domain_xml("evt", &disk, &cdrom).replace(
        "<features>",
        "<clock offset='variable' adjustment='3600' basis='utc'/><features>",
    );
    let xml_path = dir.join("evt.xml");
    std::fs::write(&xml_path, xml).expect("write xml");
    r.ok(QEMU, &["define", &xml_path.to_string_lossy()]);

    let events = Bg::start(&r, &["event", "--loop", "--all", "--timeout", "300"]);
    let monitor = Bg::start(
        &r,
        &[
            "qemu-monitor-event",
            "--domain",
            "evt",
            "--loop",
            "--timeout",
            "300",
        ],
    );
    let vnc_only = Bg::start(
        &r,
        &[
            "qemu-monitor-event",
            "--loop",
            "--timeout",
            "300",
            "--event",
            "^vnc_",
            "--regex",
            "--no-case",
        ],
    );
    let exact = Bg::start(
        &r,
        &[
            "qemu-monitor-event",
            "--loop",
            "--timeout",
            "300",
            "--event",
            "rtc_change",
            "--no-case",
        ],
    );
    let script = dir.join("guest_events.py");
    std::fs::write(&script, include_str!("guest_events.py")).expect("script");
    let mut py = Command::new("/usr/bin/python3");
    py.arg(&script).arg(r.uri(QEMU)).arg("300");
    let python = Bg::run(&r, py);
    python.wait_line("python3-libvirt registered", |l| l == "ready", &r);
    // virsh prints nothing once registered: give it time to
    std::thread::sleep(Duration::from_secs(2));
    r.ok(QEMU, &["start", "evt"]);
    let live = r.ok(QEMU, &["dumpxml", "evt"]);
    let agent = guest::TestAgent::of(&live).await;

    // RTC: the guest sets its clock 100 s ahead of where it is and writes it to the RTC
    let out = agent
        .sh("date -u -s @$(( $(date +%s) + 100 )) >/dev/null && hwclock -u -w && echo done")
        .await;
    assert!(out.contains("done"), "{out}");
    let rtc = events.wait_line(
        "rtc-change",
        |l| l.contains("event 'rtc-change' for domain 'evt': "),
        &r,
    );
    let offset: i64 = rtc
        .rsplit(": ")
        .next()
        .unwrap_or_default()
        .trim()
        .parse()
        .expect("offset");
    // QEMU counts from the hour-ahead base; libvirt adds the start adjustment back
    assert!((3690..=3720).contains(&offset), "{rtc}");
    let live = r.ok(QEMU, &["dumpxml", "evt"]);
    assert!(
        live.contains(&format!(
            "<clock offset='variable' adjustment='{offset}' basis='utc'"
        )),
        "{live}"
    );
    let raw = monitor.wait_line("RTC_CHANGE", |l| l.starts_with("event RTC_CHANGE at "), &r);
    assert!(raw.contains("for domain 'evt': {\"offset\":"), "{raw}");
    exact.wait_line(
        "RTC_CHANGE (no-case)",
        |l| l.starts_with("event RTC_CHANGE at "),
        &r,
    );

    // graphics: a VNC client connects, finishes its handshake, leaves
    let port: u16 = attr_after(&live, "<graphics type='vnc'", "port")
        .parse()
        .expect("port");
    let client = vnc_handshake(port);
    // each phase with both addresses and the auth scheme QEMU tells in each
    for phase in ["connect", "initialize", "disconnect"] {
        let w = format!(
            "event 'graphics' for domain 'evt': {phase} local[IPv4 127.0.0.1 {port}] \
             remote[IPv4 127.0.0.1 {client}] none"
        );
        events.wait_line(phase, |l| l == w, &r);
    }
    for name in ["VNC_CONNECTED", "VNC_INITIALIZED", "VNC_DISCONNECTED"] {
        vnc_only.wait_line(name, |l| l.starts_with(&format!("event {name} at ")), &r);
    }

    // balloon: setmem moves the balloon; its last event is the new size
    r.ok(QEMU, &["setmem", "evt", "200M", "--live"]);
    events.wait_line(
        "balloon-change to 204800",
        |l| l == "event 'balloon-change' for domain 'evt': 204800KiB",
        &r,
    );
    monitor.wait_line(
        "BALLOON_CHANGE",
        |l| l.starts_with("event BALLOON_CHANGE at "),
        &r,
    );

    // tray: change-media ejects through update-device: the tray opens (and closes again)
    r.ok(QEMU, &["change-media", "evt", "sdb", "--eject"]);
    let alias = attr_after(
        &live[live.find("<target dev='sdb'").expect("sdb")..],
        "<alias",
        "name",
    );
    events.wait_line(
        "tray opened",
        |l| l == format!("event 'tray-change' for domain 'evt' disk {alias}: opened"),
        &r,
    );
    monitor.wait_line(
        "DEVICE_TRAY_MOVED",
        |l| l.starts_with("event DEVICE_TRAY_MOVED at "),
        &r,
    );

    // python3-libvirt's callbacks got the same, in the same order, with every field
    python.wait_line("python's tray change", |l| l.starts_with("tray "), &r);
    r.ok(QEMU, &["destroy", "evt"]);
    let py = python.stop();
    let py: Vec<&str> = py.lines().filter(|l| *l != "ready").collect();
    let want_py =
        |phase: u8| format!("graphics evt {phase} 0 127.0.0.1 {port} 0 127.0.0.1 {client} none []");
    assert_eq!(py[0], format!("rtc evt {offset}"), "{py:?}");
    assert_eq!(&py[1..4], [want_py(0), want_py(1), want_py(2)], "{py:?}");
    let balloons: Vec<&&str> = py.iter().filter(|l| l.starts_with("balloon ")).collect();
    assert_eq!(
        balloons.last().map(|l| **l),
        Some("balloon evt 204800"),
        "{py:?}"
    );
    assert_eq!(
        py.iter().find(|l| l.starts_with("tray ")).copied(),
        Some(format!("tray evt {alias} 0").as_str()),
        "{py:?}"
    );
    let ev = events.stop();
    let mon = monitor.stop();
    let vnc = vnc_only.stop();
    let ex = exact.stop();
    // the filters let through only their names
    let names = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| l.starts_with("event ") && l.contains(" at "))
            .filter_map(|l| l.split(' ').nth(1).map(str::to_owned))
            .collect()
    };
    assert_eq!(
        names(&vnc),
        ["VNC_CONNECTED", "VNC_INITIALIZED", "VNC_DISCONNECTED"],
        "{vnc}"
    );
    assert_eq!(names(&ex), ["RTC_CHANGE"], "{ex}");
    assert!(vnc.contains("events received: 3"), "{vnc}");
    // the order: rtc, graphics, balloon, tray, as they happened
    let pos = |s: &str| ev.find(s).unwrap_or_else(|| panic!("no {s} in {ev}"));
    assert!(pos("'rtc-change'") < pos("'graphics'"));
    assert!(pos("'graphics'") < pos("'balloon-change'"));
    assert!(pos("'balloon-change'") < pos("'tray-change'"));
    // the monitor's own events came too (the guest was started and stopped)
    assert!(
        mon.contains("event RESUME at ") || mon.contains("event SHUTDOWN at "),
        "{mon}"
    );
    r.ok(QEMU, &["undefine", "evt"]);
}

#[tokio::test]
async fn qemu_monitor_event_is_refused_without_a_qemu_driver_and_with_bad_flags() {
    let r = Rpc::start().await;
    // the test driver has no QEMU monitor
    let (ok, _, e) = r.virsh(
        "test+unix:///default",
        &["qemu-monitor-event", "--timeout", "1"],
    );
    assert!(!ok);
    assert!(e.contains("not supported"), "{e}");
    // a regular expression that does not compile: refused with libvirt's words
    let e = r.fails(
        QEMU,
        &[
            "qemu-monitor-event",
            "--timeout",
            "1",
            "--event",
            "(",
            "--regex",
        ],
    );
    assert!(e.contains("failed to compile regex '('"), "{e}");
    // read-only connections may not listen to the monitor
    let e = r.fails(QEMU, &["-r", "qemu-monitor-event", "--timeout", "1"]);
    assert!(e.contains("read only access prevents"), "{e}");
    // an unknown domain
    let e = r.fails(
        QEMU,
        &["qemu-monitor-event", "--domain", "nope", "--timeout", "1"],
    );
    assert!(e.contains("nope"), "{e}");
}

#[tokio::test]
async fn virsh_console_ends_cleanly_when_the_guest_powers_off() {
    use super::support::pty::{expect, on_terminal, openpty};
    let r = Rpc::start().await;
    let dir = r.bus.dir.path();
    let disk = dir.join("cend.qcow2");
    guest::data_disk(&disk);
    let xml = dir.join("cend.xml");
    std::fs::write(&xml, guest::domain_xml("cend", &disk, "")).expect("write xml");
    r.ok(QEMU, &["define", &xml.to_string_lossy()]);
    r.ok(QEMU, &["start", "cend"]);
    let (mut master, slave) = openpty();
    let uri = r.uri(QEMU);
    let mut cmd = Command::new("virsh");
    cmd.args(["-c", &uri, "console", "cend"])
        .env("HOME", dir)
        .env_remove("LIBVIRT_DEFAULT_URI");
    on_terminal(&mut cmd, &slave);
    let mut child = cmd.spawn().expect("virsh console");
    let mut seen = String::new();
    let long = Duration::from_secs(90);
    expect(&mut master, &mut seen, "Escape character is ^]", b"", long);
    seen.clear();
    expect(&mut master, &mut seen, "hi-42", b"echo hi-$((6*7))\r", long);
    // the guest powers itself off: the console's end reaches virsh, which leaves at once
    r.ok_eventually(&["shutdown", "cend", "--mode", "acpi"]);
    let t = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        assert!(
            t.elapsed() < Duration::from_secs(90),
            "virsh console did not end with the guest:\n{seen}\n{}",
            r.daemon.log_text()
        );
        // keep draining the terminal
        seen.push_str(&drain(&mut master));
        std::thread::sleep(Duration::from_millis(100));
    };
    // libvirt.so saw a clean end: no "unexpected async stream finish confirmation"
    seen.push_str(&drain(&mut master));
    let tail = seen[seen.find("hi-42").unwrap_or(0)..].to_owned();
    assert!(!tail.contains("error:"), "{tail}");
    assert!(status.success(), "virsh console failed: {status:?} {tail}");
    r.ok(QEMU, &["undefine", "cend"]);
}

/// What the terminal has to read now.
fn drain(master: &mut std::fs::File) -> String {
    use std::os::fd::AsRawFd;
    let mut out = String::new();
    let mut buf = [0u8; 4096];
    loop {
        let mut pfd = libc::pollfd {
            fd: master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, 50) } <= 0 {
            return out;
        }
        match master.read(&mut buf) {
            Ok(n) if n > 0 => out.push_str(&String::from_utf8_lossy(&buf[..n])),
            _ => return out,
        }
    }
}

/// Allocated bytes of `p` (stat's 512-byte blocks).
fn allocated(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).expect("stat").blocks() * 512
}

#[tokio::test]
async fn vol_download_sparse_recreates_the_holes() {
    let r = Rpc::start().await;
    let dir = r.bus.dir.path();
    let pool = r.daemon.state.join("images/sp");
    let pool_arg = pool.to_string_lossy().into_owned();
    r.ok(
        QEMU,
        &["pool-define-as", "sp", "dir", "--target", &pool_arg],
    );
    r.ok(QEMU, &["pool-build", "sp"]);
    r.ok(QEMU, &["pool-start", "sp"]);
    // 64 MiB with data at its start, in the middle and at 60 MiB; the rest is holes,
    // ending in one
    let vol = pool.join("v.raw");
    {
        use std::io::{Seek, SeekFrom};
        let mut f = std::fs::File::create(&vol).expect("vol");
        for (at, byte) in [(0u64, 1u8), (20 << 20, 2), (60 << 20, 3)] {
            f.seek(SeekFrom::Start(at)).expect("seek");
            f.write_all(&vec![byte; 1 << 20]).expect("data");
        }
        f.set_len(64 << 20).expect("size");
    }
    r.ok(QEMU, &["pool-refresh", "sp"]);
    let back = dir.join("back.raw");
    let back_arg = back.to_string_lossy().into_owned();
    r.ok(
        QEMU,
        &[
            "vol-download",
            "--sparse",
            "--pool",
            "sp",
            "v.raw",
            &back_arg,
        ],
    );
    assert!(
        std::fs::read(&back).expect("back") == std::fs::read(&vol).expect("vol"),
        "the same bytes"
    );
    assert_eq!(std::fs::metadata(&back).expect("stat").len(), 64 << 20);
    // the holes came as holes: about the 3 MiB of data is allocated, not 64
    let a = allocated(&back);
    assert!(a <= 8 << 20, "{a} bytes allocated");
    // without --sparse the holes are written out as zeros
    let full = dir.join("full.raw");
    let full_arg = full.to_string_lossy().into_owned();
    r.ok(QEMU, &["vol-download", "--pool", "sp", "v.raw", &full_arg]);
    assert!(std::fs::read(&full).expect("full") == std::fs::read(&vol).expect("vol"));
    assert!(allocated(&full) >= 60 << 20, "{}", allocated(&full));
    // a window: from 19 MiB, 3 MiB long (a hole, data, a hole)
    let win = dir.join("win.raw");
    let win_arg = win.to_string_lossy().into_owned();
    r.ok(
        QEMU,
        &[
            "vol-download",
            "--sparse",
            "--offset",
            &(19u64 << 20).to_string(),
            "--length",
            &(3u64 << 20).to_string(),
            "--pool",
            "sp",
            "v.raw",
            &win_arg,
        ],
    );
    let w = std::fs::read(&win).expect("win");
    assert_eq!(w.len(), 3 << 20);
    assert!(w[..1 << 20].iter().all(|b| *b == 0) && w[1 << 20..2 << 20].iter().all(|b| *b == 2));
    r.ok(QEMU, &["pool-destroy", "sp"]);
    r.ok(QEMU, &["pool-undefine", "sp"]);
}

#[tokio::test]
async fn qemu_monitor_event_needs_the_passthrough_permission() {
    use std::os::unix::fs::PermissionsExt;
    let o = super::polkit::OwnerRpc::start().await;
    let (w, daemon) = (o.env.workdir(), &o.daemon);
    let virsh = |user: &str, args: &[&str]| {
        let out = o.virsh(user, QEMU, args);
        (out.status.success(), super::polkit::text(&out))
    };
    // alice owns her domain and may follow its domain events, not its monitor's
    let xml = w.join("vm.xml");
    std::fs::write(&xml, guest::domain_xml("alices", &w.join("none.qcow2"), "")).expect("xml");
    std::fs::set_permissions(&xml, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let (ok, out) = virsh("alice", &["define", &xml.to_string_lossy()]);
    assert!(ok, "{out}\n{}", daemon.log_text());
    // (virsh reports a timed-out loop as a failure: its words tell it registered)
    let (_, out) = virsh(
        "alice",
        &["event", "--domain", "alices", "--all", "--timeout", "1"],
    );
    assert!(
        out.contains("event loop timed out") && !out.contains("error"),
        "{out}"
    );
    for args in [
        &["qemu-monitor-event", "--domain", "alices", "--timeout", "1"][..],
        &["qemu-monitor-event", "--timeout", "1"],
    ] {
        let (ok, out) = virsh("alice", args);
        assert!(!ok, "{args:?}: {out}");
        assert!(out.contains("access denied"), "{args:?}: {out}");
    }
    // root may
    let (_, out) = virsh(
        "root",
        &["qemu-monitor-event", "--domain", "alices", "--timeout", "1"],
    );
    assert!(
        out.contains("event loop timed out") && !out.contains("error"),
        "{out}"
    );
}
