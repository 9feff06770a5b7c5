//! virsh's guest agent commands (`domtime`, `domfsinfo`, `domfstrim`, `guestvcpus`,
//! `set-user-password`, `get-/set-user-sshkeys`, `guestinfo`'s users, filesystems and
//! disks) through the RPC server: on a running tiny guest whose qemu-ga answers (or refuses,
//! as busybox's world makes it), against libvirt's own test driver for `test+unix://`, and
//! from a raw client for what virsh never sends (bad flags, a read-only connection).

use std::{
    io::{Read, Write},
    os::unix::net::UnixStream,
    process::{Command, Stdio},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use virtbus::rpc::{
    frame::{Header, MsgType, Status, packet},
    proto::{
        ConnectOpenArgs, Dom, DomainFlagsArgs, DomainRet, MessageError, REMOTE_PROGRAM,
        REMOTE_VERSION, procs,
    },
    xdr::{Array, Reader, encode},
};

use super::{Rpc, guest};

const TEST: &str = "test+unix:///default";
const QEMU: &str = "qemu:///system";

#[tokio::test]
async fn test_uri_agent_commands_are_libvirts_test_driver() {
    let r = Rpc::start().await;
    for cmd in [
        &["domtime", "test"][..],
        &["domtime", "test", "--pretty"],
        &["domtime", "test", "--now"],
        &["domtime", "test", "--sync"],
        &["domfsinfo", "test"],
        &["domfstrim", "test"],
        &["domfstrim", "test", "--mountpoint", "/boot"],
        &["domfstrim", "test", "--mountpoint", "/x"],
        &["set-user-password", "test", "root", "pw"],
        &["set-user-password", "test", "root", "pw", "--encrypted"],
        &["guestvcpus", "test"],
        &["guestvcpus", "test", "--cpulist", "1", "--disable"],
        &["get-user-sshkeys", "test", "root"],
        &["set-user-sshkeys", "test", "root", "--reset"],
    ] {
        r.assert_as_libvirt_test(cmd);
    }
    // the clock keeps what is set (libvirt's test driver forgets it between virsh runs)
    r.ok(TEST, &["domtime", "test", "--time", "5"]);
    assert_eq!(r.ok(TEST, &["domtime", "test"]).trim(), "Time: 5");
    // a domain that is not running
    r.ok(TEST, &["destroy", "test"]);
    let e = r.fails(TEST, &["domtime", "test"]);
    assert!(
        e.contains("Requested operation is not valid: domain is not running"),
        "{e}"
    );
}

// What virsh never sends: a raw client.

/// `remote_domain_set_time_args`.
fn set_time_args(dom: &Dom, seconds: i64, flags: u32) -> Vec<u8> {
    [encode(dom), encode(&seconds), encode(&0u32), encode(&flags)].concat()
}

/// `remote_domain_fstrim_args`.
fn fstrim_args(dom: &Dom, flags: u32) -> Vec<u8> {
    let none: Option<String> = None;
    [encode(dom), encode(&none), encode(&0u64), encode(&flags)].concat()
}

/// `remote_domain_set_guest_vcpus_args`.
fn set_vcpus_args(dom: &Dom, cpumap: &str, state: i32) -> Vec<u8> {
    [
        encode(dom),
        encode(&cpumap.to_owned()),
        encode(&state),
        encode(&0u32),
    ]
    .concat()
}

/// `remote_domain_authorized_ssh_keys_set_args`.
fn ssh_keys_args(dom: &Dom, flags: u32) -> Vec<u8> {
    let keys: Array<String, 2048> = Array(vec!["k".into()]);
    [
        encode(dom),
        encode(&"root".to_owned()),
        encode(&keys),
        encode(&flags),
    ]
    .concat()
}

const GET_TIME: i32 = 337;
const SET_TIME: i32 = 338;
const FSTRIM: i32 = 294;
const GET_FSINFO: i32 = 349;
const GET_GUEST_VCPUS: i32 = 371;
const SET_GUEST_VCPUS: i32 = 372;
const SSH_KEYS_SET: i32 = 425;

struct Raw {
    s: UnixStream,
    serial: u32,
}

impl Raw {
    fn open(r: &Rpc, uri: &str, flags: u32) -> Raw {
        let s = UnixStream::connect(&r.sock).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let mut raw = Raw { s, serial: 0 };
        let args = ConnectOpenArgs {
            name: Some(uri.into()),
            flags,
        };
        let (st, _) = raw.call(procs::CONNECT_OPEN, &encode(&args));
        assert_eq!(st, Status::Ok);
        raw
    }

    fn call(&mut self, proc_: i32, body: &[u8]) -> (Status, Vec<u8>) {
        self.serial += 1;
        let h = Header {
            prog: REMOTE_PROGRAM,
            vers: REMOTE_VERSION,
            proc_,
            kind: MsgType::Call,
            serial: self.serial,
            status: Status::Ok,
        };
        self.s.write_all(&packet(&h, body)).expect("send");
        let mut len = [0u8; 4];
        self.s.read_exact(&mut len).expect("reply length");
        let mut buf = vec![0u8; u32::from_be_bytes(len) as usize - 4];
        self.s.read_exact(&mut buf).expect("reply");
        let mut rd = Reader::new(&buf[..24]);
        let rh: Header = virtbus::rpc::xdr::Xdr::get(&mut rd).expect("header");
        assert_eq!((rh.serial, rh.kind), (self.serial, MsgType::Reply));
        (rh.status, buf[24..].to_vec())
    }

    fn domain(&mut self, name: &str) -> Dom {
        let (st, b) = self.call(procs::DOMAIN_LOOKUP_BY_NAME, &encode(&name.to_owned()));
        assert_eq!(st, Status::Ok);
        Reader::decode::<DomainRet>(&b).expect("domain").dom
    }

    /// The error of a call that must fail: code and message.
    fn error(&mut self, proc_: i32, body: &[u8]) -> (i32, String) {
        let (st, b) = self.call(proc_, body);
        assert_eq!(st, Status::Error, "procedure {proc_} succeeded");
        let e: MessageError = Reader::decode(&b).expect("virNetMessageError");
        (e.code, e.message.unwrap_or_default())
    }
}

fn flags_args(dom: &Dom, flags: u32) -> Vec<u8> {
    encode(&DomainFlagsArgs {
        dom: dom.clone(),
        flags,
    })
}

#[tokio::test]
async fn read_only_connections_and_bad_flags_are_refused() {
    let r = Rpc::start().await;
    // read-only: every one of them, the getters too (they ask the guest), as libvirt's API
    let mut ro = Raw::open(&r, "test:///default", 1);
    let dom = ro.domain("test");
    let set_time = set_time_args(&dom, 1, 0);
    let trim = fstrim_args(&dom, 0);
    let keys = ssh_keys_args(&dom, 1);
    for (p, body, api) in [
        (GET_TIME, flags_args(&dom, 0), "virDomainGetTime"),
        (SET_TIME, set_time.clone(), "virDomainSetTime"),
        (FSTRIM, trim, "virDomainFSTrim"),
        (GET_FSINFO, flags_args(&dom, 0), "virDomainGetFSInfo"),
        (
            GET_GUEST_VCPUS,
            flags_args(&dom, 0),
            "virDomainGetGuestVcpus",
        ),
        (SSH_KEYS_SET, keys, "virDomainAuthorizedSSHKeysSet"),
    ] {
        let (code, msg) = ro.error(p, &body);
        assert_eq!(code, 29, "{api}: {msg}");
        assert_eq!(
            msg,
            format!("operation forbidden: read only access prevents {api}")
        );
    }
    // the test driver's clock did not change
    assert_eq!(r.ok(TEST, &["domtime", "test"]).trim(), "Time: 627319920");

    // flags libvirt does not know, in its words (VIR_ERR_INVALID_ARG)
    let mut rw = Raw::open(&r, "test:///default", 0);
    let dom = rw.domain("test");
    let (code, msg) = rw.error(GET_TIME, &flags_args(&dom, 8));
    assert_eq!(code, 8);
    assert_eq!(msg, "unsupported flags (0x8) in function testDomainGetTime");
    let bad_sync = set_time_args(&dom, 1, 2);
    let (_, msg) = rw.error(SET_TIME, &bad_sync);
    assert_eq!(msg, "unsupported flags (0x2) in function testDomainSetTime");
    // keys appended and removed at once
    let both = ssh_keys_args(&dom, 3);
    let (code, msg) = rw.error(SSH_KEYS_SET, &both);
    assert_eq!(code, 8);
    assert_eq!(
        msg,
        "Flags 'VIR_DOMAIN_AUTHORIZED_SSH_KEYS_SET_APPEND' and \
         'VIR_DOMAIN_AUTHORIZED_SSH_KEYS_SET_REMOVE' are mutually exclusive"
    );
    // a state that is neither online nor offline, a map that is none
    let vcpus = |cpumap: &str, state| set_vcpus_args(&dom, cpumap, state);
    let (code, msg) = rw.error(SET_GUEST_VCPUS, &vcpus("1", 2));
    assert_eq!(
        (code, msg.as_str()),
        (8, "invalid argument: unsupported state value")
    );
    let (_, msg) = rw.error(SET_GUEST_VCPUS, &vcpus("1-x", 1));
    assert_eq!(msg, "invalid argument: Failed to parse bitmap '1-x'");
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

fn field<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(key)?.trim_start().strip_prefix(':'))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {key} in:\n{out}"))
}

/// The guest's clock as `virsh domtime` prints it.
fn guest_time(r: &Rpc) -> i64 {
    let out = r.ok(QEMU, &["domtime", "tiny"]);
    field(&out, "Time").parse().expect("seconds")
}

#[tokio::test]
async fn agent_commands_on_a_real_guest() {
    let r = Rpc::start().await;
    let dir = r.bus.dir.path();
    let disk = dir.join("data.qcow2");
    guest::data_disk(&disk);
    let xml = guest::domain_xml("tiny", &disk, "").replace("<vcpu>1</vcpu>", "<vcpu>2</vcpu>");
    let xml_path = dir.join("tiny.xml");
    std::fs::write(&xml_path, xml).expect("write xml");
    r.ok(QEMU, &["define", &xml_path.to_string_lossy()]);

    // not running: libvirt's state error
    let e = r.fails(QEMU, &["domtime", "tiny"]);
    assert!(
        e.contains("Requested operation is not valid: domain is not running"),
        "{e}"
    );
    // `virsh event` follows the agent's lifecycle from before the start
    let uri = format!("{QEMU}?socket={}", r.sock.display());
    let mut ev = Command::new("virsh")
        .args([
            "-c",
            &uri,
            "event",
            "--domain",
            "tiny",
            "--event",
            "agent-lifecycle",
        ])
        .args(["--loop", "--timeout", "120"])
        .env("HOME", dir)
        .env_remove("LIBVIRT_DEFAULT_URI")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("virsh");
    let mut stdout = ev.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    // virsh prints nothing once its callback is registered: give it time to
    std::thread::sleep(Duration::from_millis(1500));
    r.ok(QEMU, &["start", "tiny"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let t = loop {
        let (ok, out, err) = r.virsh(QEMU, &["domtime", "tiny"]);
        if ok {
            break field(&out, "Time").parse::<i64>().expect("seconds");
        }
        // until the agent answers: libvirt's unresponsive agent
        assert!(
            err.contains("Guest agent is not responding"),
            "{err}\n{}",
            r.daemon.log_text()
        );
        assert!(std::time::Instant::now() < deadline, "{err}");
        std::thread::sleep(Duration::from_millis(500));
    };
    // the agent connected: both events, libvirt's wording (stop virsh as a user would)
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: kill with the pid of our own child.
    unsafe { libc::kill(ev.id() as i32, libc::SIGINT) };
    let stop = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < stop && ev.try_wait().expect("wait").is_none() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = ev.kill();
    let _ = ev.wait();
    let out = reader.join().expect("reader");
    let events: Vec<&str> = out.lines().filter(|l| l.starts_with("event '")).collect();
    assert_eq!(
        events,
        [
            "event 'agent-lifecycle' for domain 'tiny': state: 'disconnected' reason: 'domain started'",
            "event 'agent-lifecycle' for domain 'tiny': state: 'connected' reason: 'channel event'",
        ],
        "{out}"
    );

    // the guest's clock starts from the host's (its RTC)
    assert!((t - now()).abs() < 120, "guest {t}, host {}", now());

    // setting: a time of ours (qemu-ga writes it to the RTC too, so --sync, which reads
    // the RTC, keeps it), then back to the host's
    r.ok(QEMU, &["domtime", "tiny", "--time", "1000000000"]);
    let t = guest_time(&r);
    assert!((1_000_000_000..1_000_000_100).contains(&t), "{t}");
    r.ok(QEMU, &["domtime", "tiny", "--sync"]);
    let t = guest_time(&r);
    assert!((1_000_000_000..1_000_000_100).contains(&t), "{t}");
    r.ok(QEMU, &["domtime", "tiny", "--now"]);
    assert!((guest_time(&r) - now()).abs() < 30);
    r.ok(QEMU, &["domtime", "tiny", "--sync"]);
    assert!((guest_time(&r) - now()).abs() < 30);
    let pretty = r.ok(QEMU, &["domtime", "tiny", "--pretty"]);
    assert!(pretty.starts_with("Time: 20"), "{pretty}");

    // filesystems: the data disk, named by the domain's target
    let fs = r.ok(QEMU, &["domfsinfo", "tiny"]);
    let row: Vec<&str> = fs
        .lines()
        .find(|l| l.contains("/mnt/data"))
        .unwrap_or_else(|| panic!("{fs}"))
        .split_whitespace()
        .collect();
    assert_eq!(row, ["/mnt/data", "vda", "ext4", "vda"], "{fs}");
    r.ok(QEMU, &["domfstrim", "tiny"]);
    r.ok(QEMU, &["domfstrim", "tiny", "--minimum", "4096"]);
    let e = r.fails(QEMU, &["domfstrim", "tiny", "--mountpoint", "/mnt/data"]);
    assert!(
        e.contains("argument unsupported: Specifying mount point is not supported for now"),
        "{e}"
    );

    // vCPUs as the guest sees them: 1 may go offline, 0 may not
    let v = r.ok(QEMU, &["guestvcpus", "tiny"]);
    assert_eq!(field(&v, "vcpus"), "0-1", "{v}");
    assert_eq!(field(&v, "online"), "0-1", "{v}");
    assert_eq!(field(&v, "offlinable"), "1", "{v}");
    r.ok(QEMU, &["guestvcpus", "tiny", "--cpulist", "1", "--disable"]);
    let v = r.ok(QEMU, &["guestvcpus", "tiny"]);
    assert_eq!(field(&v, "online"), "0", "{v}");
    let e = r.fails(QEMU, &["guestvcpus", "tiny", "--cpulist", "0", "--disable"]);
    assert!(
        e.contains("Operation not supported: vCPU '0' is not offlinable"),
        "{e}"
    );
    let e = r.fails(
        QEMU,
        &["guestvcpus", "tiny", "--cpulist", "1,4-5", "--enable"],
    );
    assert!(
        e.contains("invalid argument: guest is missing vCPUs '4-5'"),
        "{e}"
    );
    r.ok(QEMU, &["guestvcpus", "tiny", "--cpulist", "1", "--enable"]);
    let v = r.ok(QEMU, &["guestvcpus", "tiny"]);
    assert_eq!(field(&v, "online"), "0-1", "{v}");

    // the guest has no passwd program: the agent's error, as libvirt words it
    let e = r.fails(QEMU, &["set-user-password", "tiny", "root", "secret"]);
    assert!(
        e.contains(
            "internal error: unable to execute QEMU agent command 'guest-set-user-password': \
             cannot find 'passwd' program in PATH"
        ),
        "{e}"
    );

    // SSH keys: added, appended, removed, reset (root's home is / in the guest)
    let k1 =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl one@host";
    let k2 =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHh5dQv0rLxn9JZk0cbqgk0W3Y9Wm0Gf9gXk4lA4e9cP two@host";
    let f1 = dir.join("k1");
    let f2 = dir.join("k2");
    std::fs::write(&f1, k1).expect("key file");
    std::fs::write(&f2, k2).expect("key file");
    let (f1, f2) = (f1.to_string_lossy(), f2.to_string_lossy());
    r.ok(
        QEMU,
        &["set-user-sshkeys", "tiny", "root", "--file", &f1, "--reset"],
    );
    assert_eq!(r.ok(QEMU, &["get-user-sshkeys", "tiny", "root"]).trim(), k1);
    r.ok(QEMU, &["set-user-sshkeys", "tiny", "root", "--file", &f2]);
    // virsh prints the keys one after the other, as the agent lists them (newest first)
    let keys = r.ok(QEMU, &["get-user-sshkeys", "tiny", "root"]);
    assert_eq!(keys.trim(), format!("{k2}{k1}"), "{keys}");
    r.ok(
        QEMU,
        &[
            "set-user-sshkeys",
            "tiny",
            "root",
            "--file",
            &f1,
            "--remove",
        ],
    );
    assert_eq!(r.ok(QEMU, &["get-user-sshkeys", "tiny", "root"]).trim(), k2);
    r.ok(QEMU, &["set-user-sshkeys", "tiny", "root", "--reset"]);
    assert_eq!(r.ok(QEMU, &["get-user-sshkeys", "tiny", "root"]).trim(), "");
    let e = r.fails(QEMU, &["get-user-sshkeys", "tiny", "nobody"]);
    assert!(
        e.contains(
            "internal error: unable to execute QEMU agent command \
             'guest-ssh-get-authorized-keys': failed to lookup user 'nobody'"
        ),
        "{e}"
    );

    // guestinfo: users (none logged in), filesystems and disks with their targets
    let gi = r.ok(QEMU, &["guestinfo", "tiny", "--user"]);
    assert_eq!(field(&gi, "user.count"), "0", "{gi}");
    let gi = r.ok(QEMU, &["guestinfo", "tiny", "--filesystem"]);
    assert_eq!(field(&gi, "fs.count"), "1", "{gi}");
    assert_eq!(field(&gi, "fs.0.mountpoint"), "/mnt/data", "{gi}");
    assert_eq!(field(&gi, "fs.0.fstype"), "ext4", "{gi}");
    assert_eq!(field(&gi, "fs.0.disk.0.alias"), "vda", "{gi}");
    assert_eq!(field(&gi, "fs.0.disk.0.device"), "/dev/vda", "{gi}");
    let gi = r.ok(QEMU, &["guestinfo", "tiny", "--disk"]);
    assert_eq!(field(&gi, "disk.count"), "1", "{gi}");
    assert_eq!(field(&gi, "disk.0.name"), "/dev/vda", "{gi}");
    assert_eq!(field(&gi, "disk.0.partition"), "no", "{gi}");
    assert_eq!(field(&gi, "disk.0.alias"), "vda", "{gi}");
    // everything, in libvirt's order: users first, interfaces last
    let gi = r.ok(QEMU, &["guestinfo", "tiny"]);
    let at = |k: &str| gi.find(k).unwrap_or_else(|| panic!("no {k} in {gi}"));
    assert!(at("user.count") < at("os.id"), "{gi}");
    assert!(at("hostname") < at("fs.count"), "{gi}");
    assert!(at("fs.count") < at("disk.count"), "{gi}");
    assert!(at("disk.count") < at("if.count"), "{gi}");

    // a raw client: flags libvirt's QEMU driver does not know
    let mut raw = Raw::open(&r, "qemu:///system", 0);
    let dom = raw.domain("tiny");
    let (code, msg) = raw.error(GET_FSINFO, &flags_args(&dom, 4));
    assert_eq!(code, 8);
    assert_eq!(
        msg,
        "unsupported flags (0x4) in function qemuDomainGetFSInfo"
    );

    // paused: the agent cannot answer, refused at once
    r.ok(QEMU, &["suspend", "tiny"]);
    let e = r.fails(QEMU, &["domtime", "tiny"]);
    assert!(
        e.contains("Requested operation is not valid: domain is not running"),
        "{e}"
    );
    r.ok(QEMU, &["destroy", "tiny"]);
    r.ok(QEMU, &["undefine", "tiny"]);

    // a domain without the agent's channel
    let xml = guest::domain_xml("noagent", &disk, "").replace(
        "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>",
        "",
    );
    assert!(!xml.contains("guest_agent"));
    std::fs::write(&xml_path, xml).expect("write xml");
    r.ok(QEMU, &["create", &xml_path.to_string_lossy()]);
    let e = r.fails(QEMU, &["domfsinfo", "noagent"]);
    assert!(
        e.contains("argument unsupported: QEMU guest agent is not configured"),
        "{e}"
    );
    r.ok(QEMU, &["destroy", "noagent"]);
}

/// What `virsh -q` shows for the agent commands on a running `tiny` at `uri`, stdout of those
/// that succeed and stderr of those that fail, with the filesystem sizes (which move as the
/// guest writes) left out; and the agent lifecycle events seen from before the start.
fn agent_answers(uri: &str, home: &std::path::Path, start: &dyn Fn()) -> Vec<String> {
    let virsh = |args: &[&str]| {
        let o = Command::new("virsh")
            .args(["-q", "-c", uri])
            .args(args)
            .env("HOME", home)
            .env("LC_ALL", "C")
            .env_remove("LIBVIRT_DEFAULT_URI")
            .output()
            .expect("virsh");
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    // every domain's: `tiny` does not exist before it is created
    let mut ev = Command::new("virsh")
        .args(["-c", uri, "event", "--event", "agent-lifecycle"])
        .args(["--loop", "--timeout", "120"])
        .env("HOME", home)
        .env_remove("LIBVIRT_DEFAULT_URI")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("virsh");
    let mut stdout = ev.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    std::thread::sleep(Duration::from_millis(1500));
    start();
    // at once: the guest has not booted far enough to open the agent's port
    let (ok, _, e) = virsh(&["domtime", "tiny"]);
    let mut out = vec![format!("before the agent: ok={ok}\n{e}")];
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while !virsh(&["domtime", "tiny"]).0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the agent never answered"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    for cmd in [
        &["domfsinfo", "tiny"][..],
        &["guestvcpus", "tiny"],
        &["guestinfo", "tiny", "--user"],
        &["guestinfo", "tiny", "--filesystem"],
        &["guestinfo", "tiny", "--disk"],
        &["domfstrim", "tiny"],
        &["domfstrim", "tiny", "--mountpoint", "/mnt/data"],
        &["guestvcpus", "tiny", "--cpulist", "0", "--disable"],
        &["guestvcpus", "tiny", "--cpulist", "1,4-5", "--enable"],
        &["guestvcpus", "tiny", "--cpulist", "1", "--disable"],
        &["guestvcpus", "tiny"],
        &["guestvcpus", "tiny", "--cpulist", "1", "--enable"],
        &["set-user-password", "tiny", "root", "secret"],
        &["get-user-sshkeys", "tiny", "nobody"],
        &["get-user-sshkeys", "tiny", "root"],
        &["domtime", "tiny", "--sync"],
    ] {
        let (ok, o, e) = virsh(cmd);
        let text = if ok { o } else { e };
        let kept: Vec<&str> = text.lines().filter(|l| !l.contains("-bytes")).collect();
        out.push(format!("{cmd:?} ok={ok}\n{}", kept.join("\n")));
    }
    // SAFETY: kill with the pid of our own child.
    unsafe { libc::kill(ev.id() as i32, libc::SIGINT) };
    let stop = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < stop && ev.try_wait().expect("wait").is_none() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = ev.kill();
    let _ = ev.wait();
    let events = reader.join().expect("reader");
    out.push(
        events
            .lines()
            .filter(|l| l.starts_with("event '"))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    virsh(&["destroy", "tiny"]);
    out
}

#[tokio::test]
async fn agent_commands_answer_as_libvirtd() {
    if let Err(why) = crate::support::libvirtd::Libvirtd::available() {
        panic!("Debian's libvirtd is needed as the oracle: {why}");
    }
    let r = Rpc::start().await;
    let dir = r.bus.dir.path();
    let disk = dir.join("data.qcow2");
    let xml = guest::domain_xml("tiny", &disk, "").replace("<vcpu>1</vcpu>", "<vcpu>2</vcpu>");
    let xml_path = dir.join("tiny.xml");
    std::fs::write(&xml_path, xml).expect("write xml");
    let xml_arg = xml_path.to_string_lossy().into_owned();
    // one guest at a time: libvirt's first, each on a fresh data disk
    let theirs = {
        let lv = crate::support::libvirtd::Libvirtd::start();
        guest::data_disk(&disk);
        let start = || {
            let o = lv.virsh(&["create", &xml_arg]);
            assert!(o.status.success(), "{}", lv.log_text());
        };
        agent_answers(&lv.uri(), dir, &start)
    };
    std::fs::remove_file(&disk).expect("remove disk");
    guest::data_disk(&disk);
    let uri = format!("{QEMU}?socket={}", r.sock.display());
    let start = || {
        r.ok(QEMU, &["create", &xml_arg]);
    };
    let ours = agent_answers(&uri, dir, &start);
    assert_eq!(ours.len(), theirs.len());
    for (o, t) in ours.iter().zip(&theirs) {
        assert_eq!(o, t, "ours (left) differs from libvirtd's");
    }
    // the comparison compares something: the data disk was seen with its target, and the
    // agent's connection
    assert!(
        theirs[0].contains("Guest agent is not responding: QEMU guest agent is not connected"),
        "{}",
        theirs[0]
    );
    assert!(
        theirs[1].contains("/mnt/data") && theirs[1].contains("vda"),
        "{}",
        theirs[1]
    );
    let events = theirs.last().expect("events");
    assert!(
        events.contains("state: 'connected' reason: 'channel event'"),
        "{events}"
    );
}
