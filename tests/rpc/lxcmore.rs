//! libvirt's LXC program and the container procedures through unchanged virsh on
//! `lxc:///`: `lxc-enter-namespace` (LXC_PROC_DOMAIN_OPEN_NAMESPACE, the init's namespaces
//! passed back as descriptors), `send-process-signal`, and `start`/`create --pass-fds`
//! (descriptors passed in a CALL_WITH_FDS packet, the init reading one as its fd 3) — the
//! same session against the daemon and against Debian's libvirtd LXC driver, compared.

use std::{
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use super::{Rpc, libvirt_test, rootfs};
use crate::support::libvirtd::Libvirtd;

const NAME: &str = "lxc-more";
const FDNAME: &str = "lxc-fds";
/// The walked container (a name of its own: tests run at once and containers of one name
/// share cgroups).
const WALKED: &str = "lxc-walk";
/// The descriptor number virsh holds the pipe's read end at (`--pass-fds`).
const PASSED: i32 = 10;

struct Side {
    uri: String,
    home: PathBuf,
}

impl Side {
    /// virsh with `args`, `fd` (if any) at descriptor [`PASSED`]: status, stdout, stderr.
    fn run(&self, args: &[&str], fd: Option<i32>) -> (bool, String, String) {
        let mut cmd = Command::new("virsh");
        cmd.arg("-c")
            .arg(&self.uri)
            .args(args)
            .env("HOME", &self.home)
            .env("LC_ALL", "C")
            .env_remove("LIBVIRT_DEFAULT_URI")
            .stdin(Stdio::null());
        if let Some(fd) = fd {
            // SAFETY: dup2 only, in the child before exec.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::dup2(fd, PASSED) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let out = cmd.output().expect("virsh (package libvirt-clients)");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn virsh(&self, args: &[&str]) -> (bool, String, String) {
        self.run(args, None)
    }

    fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.virsh(args);
        assert!(ok, "virsh {args:?} on {} failed: {err}", self.uri);
        out
    }

    fn wait_state(&self, dom: &str, want: &str) -> String {
        let t = Instant::now();
        loop {
            let st = self.ok(&["domstate", "--reason", dom]).trim().to_owned();
            if st.starts_with(want) || t.elapsed() > Duration::from_secs(20) {
                return st;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Destroys and undefines the containers should the test fail midway.
struct Cleanup<'a>(&'a Side);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for d in [NAME, FDNAME, WALKED] {
            let _ = self.0.virsh(&["destroy", d]);
            let _ = self.0.virsh(&["undefine", d]);
        }
    }
}

fn wait_file(p: &Path) -> String {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(20) {
        if let Ok(s) = std::fs::read_to_string(p)
            && s.ends_with('\n')
        {
            return s.trim().to_owned();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    format!("{} never appeared", p.display())
}

/// A pipe holding `line`: its read end (the write end closed, so the reader sees the end).
fn pipe_with(line: &str) -> i32 {
    let mut p = [0; 2];
    // SAFETY: plain syscalls on descriptors we own.
    unsafe {
        assert_eq!(libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC), 0);
        assert_eq!(
            libc::write(p[1], line.as_ptr().cast(), line.len()),
            line.len() as isize
        );
        libc::close(p[1]);
    }
    p[0]
}

fn close(fd: i32) {
    // SAFETY: closing a descriptor this test opened.
    unsafe { libc::close(fd) };
}

/// The session on one side: each step's success, output and error (outputs that name
/// nothing host-specific).
fn session(side: &Side, root: &Path, dir: &Path) -> Vec<(String, String)> {
    let _cleanup = Cleanup(side);
    let out = root.join("out");
    for f in ["usr1", "fd3", "fd3-create"] {
        let _ = std::fs::remove_file(out.join(f));
    }
    let mut t: Vec<(String, String)> = Vec::new();
    fn record(t: &mut Vec<(String, String)>, name: &str, r: (bool, String, String)) {
        t.push((
            name.to_owned(),
            format!("ok={} out={} err={}", r.0, r.1.trim(), r.2.trim()),
        ));
    }
    // the init marks SIGUSR1 in a file and ends on SIGKILL only
    let script = "trap 'echo usr1 > /out/usr1' USR1; while true; do sleep 0.1; done";
    let xml = dir.join("more.xml");
    std::fs::write(&xml, rootfs::domain(NAME, root, script, "", "")).expect("xml");
    side.ok(&["define", &xml.to_string_lossy()]);
    side.ok(&["start", NAME]);
    // inside: the container's hostname, a file only its root has, its own init as pid 1
    record(
        &mut t,
        "lxc-enter-namespace",
        side.virsh(&[
            "lxc-enter-namespace",
            NAME,
            "--noseclabel",
            "--",
            "/bin/sh",
            "-c",
            "hostname; cat /only-in-container; cat /proc/1/cmdline | wc -c",
        ]),
    );
    record(
        &mut t,
        "send-process-signal 1 SIGUSR1",
        side.virsh(&["send-process-signal", NAME, "1", "SIGUSR1"]),
    );
    t.push(("usr1 seen".into(), wait_file(&out.join("usr1"))));
    record(
        &mut t,
        "send-process-signal 2",
        side.virsh(&["send-process-signal", NAME, "2", "SIGTERM"]),
    );
    record(
        &mut t,
        "send-process-signal bad name",
        side.virsh(&["send-process-signal", NAME, "1", "SIGNOPE"]),
    );
    record(
        &mut t,
        "send-process-signal 1 nop",
        side.virsh(&["send-process-signal", NAME, "1", "0"]),
    );
    record(
        &mut t,
        "send-process-signal 1 SIGKILL",
        side.virsh(&["send-process-signal", NAME, "1", "SIGKILL"]),
    );
    t.push(("after SIGKILL".into(), side.wait_state(NAME, "shut off")));
    record(
        &mut t,
        "send-process-signal inactive",
        side.virsh(&["send-process-signal", NAME, "1", "SIGTERM"]),
    );
    record(
        &mut t,
        "lxc-enter-namespace inactive",
        side.virsh(&[
            "lxc-enter-namespace",
            NAME,
            "--noseclabel",
            "--",
            "/bin/true",
        ]),
    );
    side.ok(&["undefine", NAME]);
    // --pass-fds: the init reads a line from its fd 3
    let script =
        |f: &str| format!("read l <&3; echo \"$l\" > /out/{f}; while true; do sleep 0.1; done");
    let xml = dir.join("fds.xml");
    std::fs::write(&xml, rootfs::domain(FDNAME, root, &script("fd3"), "", "")).expect("xml");
    side.ok(&["define", &xml.to_string_lossy()]);
    let fd = pipe_with("through-fd-3\n");
    let r = side.run(
        &["start", "--pass-fds", &PASSED.to_string(), FDNAME],
        Some(fd),
    );
    close(fd);
    record(&mut t, "start --pass-fds", r);
    t.push(("fd 3 read".into(), wait_file(&out.join("fd3"))));
    side.ok(&["destroy", FDNAME]);
    side.ok(&["undefine", FDNAME]);
    std::fs::write(
        &xml,
        rootfs::domain(FDNAME, root, &script("fd3-create"), "", ""),
    )
    .expect("xml");
    let fd = pipe_with("created-with-fd\n");
    let r = side.run(
        &[
            "create",
            &xml.to_string_lossy(),
            "--pass-fds",
            &PASSED.to_string(),
        ],
        Some(fd),
    );
    close(fd);
    record(&mut t, "create --pass-fds", r);
    t.push((
        "create fd 3 read".into(),
        wait_file(&out.join("fd3-create")),
    ));
    side.ok(&["destroy", FDNAME]);
    t
}

/// The daemon's and libvirtd's outputs, with the differences that are no difference made
/// equal: the created domain's name line is the same, ids differ (libvirt's is the
/// controller's pid) — none of the recorded steps prints one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lxc_program_signals_and_passed_files_as_libvirtd() {
    let r = Rpc::start().await;
    let dir = r.bus.dir.path().to_owned();
    let root = rootfs::build(&dir);
    std::fs::write(root.join("only-in-container"), "marker-inside\n").expect("marker");
    let ours = Side {
        uri: r.uri("lxc:///system"),
        home: dir.clone(),
    };
    let got = tokio::task::block_in_place(|| session(&ours, &root, &dir));
    let get = |t: &[(String, String)], k: &str| {
        t.iter()
            .find(|(s, _)| s == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let inside = get(&got, "lxc-enter-namespace");
    assert!(
        inside.starts_with(&format!("ok=true out={NAME}\nmarker-inside\n")),
        "not inside the container: {inside}\n{}",
        r.daemon.log_text()
    );
    assert_eq!(get(&got, "usr1 seen"), "usr1");
    assert_eq!(get(&got, "fd 3 read"), "through-fd-3");
    assert_eq!(get(&got, "create fd 3 read"), "created-with-fd");
    assert!(get(&got, "after SIGKILL").starts_with("shut off"));
    if let Err(e) = Libvirtd::available_lxc() {
        panic!("no libvirtd to compare with: {e}");
    }
    let lv = Libvirtd::start_lxc();
    let oracle = Side {
        uri: lv.lxc_uri(),
        home: dir.clone(),
    };
    let want = tokio::task::block_in_place(|| session(&oracle, &root, &dir));
    for ((step, g), (_, w)) in got.iter().zip(&want) {
        eprintln!("virsh {step}:\n{g}");
        assert_eq!(
            g, w,
            "virsh {step}: virtbus (left) and libvirtd (right) differ"
        );
    }
    assert_eq!(got.len(), want.len());
}

/// The test flavor answers as libvirt's test driver (in libvirt.so): a signal to pid 1
/// changes nothing, others are refused; it has no LXC program.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_flavor_as_libvirts_test_driver() {
    let r = Rpc::start().await;
    for args in [
        &["send-process-signal", "test", "1", "SIGTERM"][..],
        &["send-process-signal", "test", "2", "SIGTERM"],
        &[
            "lxc-enter-namespace",
            "test",
            "--noseclabel",
            "--",
            "/bin/true",
        ],
    ] {
        let got = tokio::task::block_in_place(|| r.virsh("test+unix:///default", args));
        let want = libvirt_test(args);
        assert_eq!(
            (got.0, got.1.trim()),
            (want.0, want.1.trim()),
            "virsh {args:?}: {} / {}",
            got.2,
            want.2
        );
        assert_eq!(got.2.trim(), want.2.trim(), "virsh {args:?}");
    }
}

/// `qemu:///` has none of these, as libvirt's QEMU driver: libvirt's "not supported by the
/// connection driver" naming the API, a passed descriptor dropped, nothing started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_refuses_as_libvirts_qemu_driver() {
    let r = Rpc::start().await;
    let xml = r.bus.dir.path().join("q.xml");
    std::fs::write(
        &xml,
        "<domain type='qemu'><name>lxcmore-q</name><memory unit='MiB'>64</memory>\
         <os><type arch='x86_64'>hvm</type></os></domain>",
    )
    .expect("xml");
    let xml = xml.to_string_lossy().into_owned();
    let q = "qemu:///system";
    tokio::task::block_in_place(|| {
        r.ok(q, &["define", &xml]);
        for (args, api) in [
            (
                &["send-process-signal", "lxcmore-q", "1", "SIGTERM"][..],
                "virDomainSendProcessSignal",
            ),
            (
                &[
                    "lxc-enter-namespace",
                    "lxcmore-q",
                    "--noseclabel",
                    "--",
                    "/bin/true",
                ],
                "virDomainLxcOpenNamespace",
            ),
            // descriptor 0 is virsh's /dev/null
            (
                &["start", "--pass-fds", "0", "lxcmore-q"],
                "virDomainCreateWithFiles",
            ),
            (
                &["create", &xml, "--pass-fds", "0"],
                "virDomainCreateXMLWithFiles",
            ),
        ] {
            let err = r.fails(q, args);
            assert!(
                err.contains(&format!(
                    "this function is not supported by the connection driver: {api}"
                )),
                "virsh {args:?}: {err}"
            );
        }
        assert_eq!(
            r.ok(q, &["domstate", "lxcmore-q"]).trim(),
            "shut off",
            "nothing started"
        );
        r.ok(q, &["undefine", "lxcmore-q"]);
    });
}

/// virsh's domain commands that answer on `lxc:///` as libvirtd's LXC driver does (outputs
/// and errors equal), walked on a running container; the README lists those that differ.
const WALK: &[&[&str]] = &[
    &["domifaddr", WALKED],
    &["shutdown", "--mode", "acpi", WALKED],
    &["reboot", "--mode", "agent", WALKED],
    &["domfsinfo", WALKED],
    &["domblklist", WALKED],
    &["domiflist", WALKED],
    &["domtime", WALKED],
    &["managedsave", WALKED],
    &["inject-nmi", WALKED],
    &["send-key", WALKED, "KEY_A"],
    &["ttyconsole", WALKED],
    &["domdisplay", WALKED],
    &["dompmsuspend", WALKED, "mem"],
    &["guestinfo", WALKED],
    &["domlaunchsecinfo", WALKED],
    &["domdirtyrate-calc", WALKED],
    &["emulatorpin", WALKED],
    &["numatune", WALKED],
    &["iothreadinfo", WALKED],
    &["setvcpus", WALKED, "1"],
    &["setmem", WALKED, "32768"],
    &["suspend", WALKED],
    &["resume", WALKED],
    &["destroy", "--graceful", WALKED],
    &["destroy", WALKED],
];

/// Each step's outcome; with `ours`, also the memory limit `setmem` left in the
/// container's cgroup (libvirtd's cgroup is named its own way).
fn walk(side: &Side, xml: &Path, ours: bool) -> (Vec<(String, String)>, String) {
    let mut limit = String::new();
    let _c = Cleanup(side);
    side.ok(&["define", &xml.to_string_lossy()]);
    side.ok(&["start", WALKED]);
    let steps = WALK
        .iter()
        .map(|args| {
            let (ok, out, err) = side.virsh(args);
            // the console's pty is whichever is free
            let out = match out.trim().strip_prefix("/dev/pts/") {
                Some(_) => "/dev/pts/N".to_owned(),
                None => out,
            };
            if args[0] == "setmem" && ours {
                limit = memory_limit(WALKED);
            }
            (
                args.join(" "),
                format!("ok={ok} out={} err={}", out.trim(), err.trim()),
            )
        })
        .collect();
    (steps, limit)
}

/// The memory limit of the container `name`'s cgroup (v1's `memory` hierarchy, where this
/// host mounts it; virtbus's cgroup is `<name>.virtbus-lxc`).
fn memory_limit(name: &str) -> String {
    let mut dirs = vec![PathBuf::from("/sys/fs/cgroup/memory")];
    for _ in 0..3 {
        let mut next = Vec::new();
        for d in &dirs {
            for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if !e.path().is_dir() {
                    continue;
                }
                if n == format!("{name}.virtbus-lxc") {
                    return std::fs::read_to_string(e.path().join("memory.limit_in_bytes"))
                        .map(|l| l.trim().to_owned())
                        .unwrap_or_else(|e| e.to_string());
                }
                next.push(e.path());
            }
        }
        dirs = next;
    }
    "no cgroup".into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn domain_commands_as_libvirtd() {
    let r = Rpc::start().await;
    let dir = r.bus.dir.path().to_owned();
    let root = rootfs::build(&dir);
    let script = "trap 'exit 0' TERM; while true; do sleep 0.1; done";
    let xml = dir.join("walk.xml");
    std::fs::write(&xml, rootfs::domain(WALKED, &root, script, "", "")).expect("xml");
    let ours = Side {
        uri: r.uri("lxc:///system"),
        home: dir.clone(),
    };
    let (got, limit) = tokio::task::block_in_place(|| walk(&ours, &xml, true));
    assert_eq!(
        limit,
        (32768u64 * 1024).to_string(),
        "setmem's cgroup limit"
    );
    if let Err(e) = Libvirtd::available_lxc() {
        panic!("no libvirtd to compare with: {e}");
    }
    let lv = Libvirtd::start_lxc();
    let oracle = Side {
        uri: lv.lxc_uri(),
        home: dir.clone(),
    };
    let (want, _) = tokio::task::block_in_place(|| walk(&oracle, &xml, false));
    let differ: Vec<String> = got
        .iter()
        .zip(&want)
        .filter(|(g, w)| g != w)
        .map(|((step, g), (_, w))| format!("virsh {step}:\n  virtbus:  {g}\n  libvirtd: {w}"))
        .collect();
    assert!(differ.is_empty(), "{}", differ.join("\n"));
}
