//! The LXC driver with real namespaces and cgroups, through the real daemon on a private
//! bus, over a busybox root filesystem built at test time. Run as root.

#[path = "../support/mod.rs"]
mod support;

mod compat;
mod console;
mod fs;
mod net;
mod power;
mod rootfs;

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use support::{proxies::*, *};

/// The host pids of the container `name`'s processes (from its v2 cgroup).
fn procs(name: &str) -> Vec<i32> {
    std::fs::read_to_string(cgroup_dir("unified", name).join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn cgroup_dir(hierarchy: &str, name: &str) -> PathBuf {
    Path::new("/sys/fs/cgroup")
        .join(hierarchy)
        .join("machine")
        .join(format!("{name}.virtbus-lxc"))
}

fn pid_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks existence.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// Wait until `f` holds, or fail saying `what`.
async fn until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < within, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Wait until the file exists and has content; returns it trimmed.
async fn read_when_there(p: &Path) -> String {
    until(&format!("{}", p.display()), Duration::from_secs(10), || {
        std::fs::read_to_string(p).is_ok_and(|s| s.ends_with('\n'))
    })
    .await;
    std::fs::read_to_string(p).expect("read").trim().to_owned()
}

/// The console pty of a running domain, from its live XML.
fn console_pty(xml: &str) -> String {
    let doc = roxmltree::Document::parse(xml).expect("xml");
    doc.descendants()
        .find(|n| n.has_tag_name("console"))
        .and_then(|c| c.children().find(|n| n.has_tag_name("source")))
        .and_then(|s| s.attribute("path"))
        .unwrap_or_else(|| panic!("no console source path in {xml}"))
        .to_owned()
}

/// Read the console until `needle` shows up; returns what was read.
fn read_console(pty: &str, needle: &str, within: Duration) -> String {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(pty)
        .expect("open console pty");
    let t = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while t.elapsed() < within {
        match f.read(&mut buf) {
            Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
        if String::from_utf8_lossy(&got).contains(needle) {
            break;
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

struct Setup {
    bus: Bus,
    daemon: Daemon,
    conn: zbus::Connection,
    root: PathBuf,
}

async fn setup() -> Setup {
    let bus = Bus::start();
    let daemon = Daemon::start(&bus).await;
    let conn = bus.connect().await;
    let root = rootfs::build(bus.dir.path());
    Setup {
        bus,
        daemon,
        conn,
        root,
    }
}

impl Setup {
    async fn start(&self, xml: &str) -> DomainProxy<'static> {
        let mgr = manager(&self.conn).await;
        let path = mgr
            .define_domain(xml, no_opts())
            .await
            .unwrap_or_else(|e| panic!("define: {e}\n{}", self.daemon.log_text()));
        let dom = domain(&self.conn, &path).await;
        dom.start(no_opts())
            .await
            .unwrap_or_else(|e| panic!("start: {e}\n{}", self.daemon.log_text()));
        dom
    }

    fn out(&self) -> PathBuf {
        self.root.join("out")
    }
}

/// The container's init is PID 1 of its own PID namespace, has the domain's name as
/// hostname, sees only its own processes and only a loopback interface, lives in a cgroup
/// with the memory limit, writes on the console the test reads, and a read-only bind is
/// read-only inside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_is_isolated_and_talks_on_its_console() {
    let s = setup().await;
    let ro = s.bus.dir.path().join("ro-src");
    std::fs::create_dir_all(&ro).expect("mkdir");
    std::fs::write(ro.join("file"), "host data\n").expect("write");
    let script = "echo $$ > /out/pid; hostname > /out/hostname; \
        ls /proc | grep -c '^[0-9]' > /out/nprocs; ls /sys/class/net > /out/net; \
        cat /ro/file > /out/ro_read; touch /ro/new 2>/dev/null; echo $? > /out/ro_rc; \
        touch /sys/x 2>/dev/null; echo $? > /out/sys_rc; id -u > /out/uid; \
        echo hello; while true; do sleep 1; done";
    let xml = rootfs::domain(
        "lxc-iso",
        &s.root,
        script,
        "",
        &format!(
            "<filesystem type='mount'><source dir='{}'/><target dir='/ro'/><readonly/>\
             </filesystem><filesystem type='ram'><source usage='4096'/><target dir='/mnt'/>\
             </filesystem>",
            ro.display()
        ),
    );
    let dom = s.start(&xml).await;
    assert_eq!(dom.state().await.expect("state"), "running");
    let live = dom.get_xml(no_opts()).await.expect("xml");
    let pty = console_pty(&live);
    let console =
        tokio::task::spawn_blocking(move || read_console(&pty, "hello", Duration::from_secs(10)))
            .await
            .expect("console");
    assert!(console.contains("hello"), "console said {console:?}");
    let out = s.out();
    assert_eq!(read_when_there(&out.join("uid")).await, "0");
    assert_eq!(
        read_when_there(&out.join("pid")).await,
        "1",
        "init is PID 1"
    );
    assert_eq!(read_when_there(&out.join("hostname")).await, "lxc-iso");
    let n: u32 = read_when_there(&out.join("nprocs"))
        .await
        .parse()
        .expect("n");
    assert!(n <= 3, "the container sees only its own processes: {n}");
    assert_eq!(
        read_when_there(&out.join("net")).await,
        "lo",
        "only a loopback"
    );
    assert_eq!(read_when_there(&out.join("ro_read")).await, "host data");
    assert_ne!(
        read_when_there(&out.join("ro_rc")).await,
        "0",
        "readonly bind"
    );
    assert_ne!(
        read_when_there(&out.join("sys_rc")).await,
        "0",
        "read-only /sys"
    );
    // its cgroup has the memory limit and its processes
    let limit =
        std::fs::read_to_string(cgroup_dir("memory", "lxc-iso").join("memory.limit_in_bytes"))
            .expect("memory cgroup");
    assert_eq!(limit.trim(), (64u64 << 20).to_string());
    let pids = procs("lxc-iso");
    assert!(!pids.is_empty(), "the init is in the container's cgroup");
    // the init is not in the daemon's PID namespace's view as PID 1
    assert!(pids.iter().all(|p| *p > 1));
    // statistics come from the cgroups
    let stats = dom.get_stats(no_opts()).await.expect("stats");
    assert!(stats.contains_key("cpu.time"), "{:?}", stats.keys());
    assert!(stats.contains_key("balloon.current"), "{:?}", stats.keys());
    // the live definition has the console's pty and libvirt's default partition
    assert!(live.contains("<partition>/machine</partition>"), "{live}");
    assert!(live.contains("type='lxc'"), "{live}");
    dom.destroy(no_opts()).await.expect("destroy");
    assert_eq!(dom.state().await.expect("state"), "shut-off");
    until("the cgroups to go", Duration::from_secs(5), || {
        !cgroup_dir("unified", "lxc-iso").exists() && !cgroup_dir("memory", "lxc-iso").exists()
    })
    .await;
    for p in pids {
        assert!(!pid_alive(p), "pid {p} outlived its container");
    }
}

/// Shutdown ends a container whose init honours SIGTERM; Destroy kills a tree of
/// processes that ignore it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_it_and_destroy_kills_a_stubborn_tree() {
    let s = setup().await;
    let mut sigs = Signals::new(&s.conn).await;
    let polite = s
        .start(&rootfs::domain(
            "lxc-polite",
            &s.root,
            "trap 'exit 0' TERM; echo up > /out/polite; while true; do sleep 0.1; done",
            "",
            "",
        ))
        .await;
    read_when_there(&s.out().join("polite")).await;
    polite.shutdown(no_opts()).await.expect("shutdown");
    let t = Instant::now();
    while polite.state().await.expect("state") != "shut-off" {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "shutdown did not end it"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let got = sigs.drain(Duration::from_millis(300)).await;
    assert!(
        lifecycle(&got)
            .iter()
            .any(|(e, d)| e == "stopped" && d == "shutdown"),
        "{:?}",
        lifecycle(&got)
    );

    let stubborn = s
        .start(&rootfs::domain(
            "lxc-stubborn",
            &s.root,
            "trap '' TERM; (trap '' TERM; while true; do sleep 1; done) & \
             (trap '' TERM; sleep 1000) & echo up > /out/stubborn; \
             while true; do sleep 1; done",
            "",
            "",
        ))
        .await;
    read_when_there(&s.out().join("stubborn")).await;
    let pids = procs("lxc-stubborn");
    assert!(pids.len() >= 3, "a tree: {pids:?}");
    stubborn.destroy(no_opts()).await.expect("destroy");
    assert_eq!(stubborn.state().await.expect("state"), "shut-off");
    for p in pids {
        assert!(!pid_alive(p), "pid {p} survived destroy");
    }
}

/// Suspend freezes every process (a counter stops), resume lets it go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_freezes_and_resume_continues() {
    let s = setup().await;
    let dom = s
        .start(&rootfs::domain(
            "lxc-freeze",
            &s.root,
            "i=0; while true; do i=$((i+1)); echo $i > /out/count.tmp; \
             cat /out/count.tmp > /out/count; sleep 0.05; done",
            "",
            "",
        ))
        .await;
    let count = s.out().join("count");
    let read = || {
        std::fs::read_to_string(&count)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    until("the counter to start", Duration::from_secs(10), || {
        read() > 2
    })
    .await;
    dom.suspend(no_opts()).await.expect("suspend");
    assert_eq!(dom.state().await.expect("state"), "paused");
    let frozen = read();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(read(), frozen, "the counter stopped");
    dom.resume(no_opts()).await.expect("resume");
    assert_eq!(dom.state().await.expect("state"), "running");
    until("the counter to go on", Duration::from_secs(5), || {
        read() > frozen + 2
    })
    .await;
    dom.destroy(no_opts()).await.expect("destroy");
}

/// Containers outlive a `kill -9` of the daemon and are adopted by the next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_kill_9_keeps_two_containers_running() {
    let mut s = setup().await;
    let script = "trap 'exit 0' TERM; while true; do sleep 0.1; done";
    let a = s
        .start(&rootfs::domain("lxc-keep-a", &s.root, script, "", ""))
        .await;
    let b = s
        .start(&rootfs::domain("lxc-keep-b", &s.root, script, "", ""))
        .await;
    b.suspend(no_opts()).await.expect("suspend b");
    let (ida, idb) = (a.id().await.expect("id"), b.id().await.expect("id"));
    let (pa, pb) = (procs("lxc-keep-a"), procs("lxc-keep-b"));
    assert!(!pa.is_empty() && !pb.is_empty());
    let pty_a = console_pty(&a.get_xml(no_opts()).await.expect("xml"));

    s.daemon.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        pid_alive(pa[0]) && pid_alive(pb[0]),
        "containers outlive the daemon"
    );
    s.daemon.restart(&s.bus).await;

    let conn = s.bus.connect().await;
    let mgr = manager(&conn).await;
    let a = domain(&conn, &mgr.lookup_domain("lxc-keep-a").await.expect("a")).await;
    let b = domain(&conn, &mgr.lookup_domain("lxc-keep-b").await.expect("b")).await;
    assert_eq!(
        a.state().await.expect("state"),
        "running",
        "{}",
        s.daemon.log_text()
    );
    assert_eq!(b.state().await.expect("state"), "paused");
    assert_eq!(a.id().await.expect("id"), ida);
    assert_eq!(b.id().await.expect("id"), idb);
    assert_eq!(
        procs("lxc-keep-a")[0],
        pa[0],
        "the same init, not a new one"
    );
    assert_eq!(
        console_pty(&a.get_xml(no_opts()).await.expect("xml")),
        pty_a
    );
    // and controllable
    b.resume(no_opts()).await.expect("resume b");
    a.shutdown(no_opts()).await.expect("shutdown a");
    until("a to stop", Duration::from_secs(10), || !pid_alive(pa[0])).await;
    b.destroy(no_opts()).await.expect("destroy b");
    assert!(!pid_alive(pb[0]));
    let t = Instant::now();
    while a.state().await.expect("state") != "shut-off" {
        assert!(t.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// With `<idmap>` the container's root is an unprivileged host uid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idmap_root_is_an_unprivileged_host_uid() {
    let s = setup().await;
    let dom = s
        .start(&rootfs::domain(
            "lxc-userns",
            &s.root,
            "id -u > /out/uid; while true; do sleep 1; done",
            "<idmap><uid start='0' target='200000' count='65536'/>\
             <gid start='0' target='200000' count='65536'/></idmap>",
            "",
        ))
        .await;
    assert_eq!(
        read_when_there(&s.out().join("uid")).await,
        "0",
        "root inside"
    );
    let pids = procs("lxc-userns");
    let status = std::fs::read_to_string(format!("/proc/{}/status", pids[0])).expect("status");
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).expect("Uid");
    assert!(
        uid_line.split_whitespace().skip(1).all(|u| u == "200000"),
        "{uid_line}"
    );
    dom.destroy(no_opts()).await.expect("destroy");
}

/// Bad input is refused with typed errors naming the element, and nothing is left running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_by_element_and_leaves_nothing() {
    let s = setup().await;
    let mgr = manager(&s.conn).await;
    let missing_root = rootfs::domain(
        "lxc-noroot",
        &s.bus.dir.path().join("no-such-dir"),
        "true",
        "",
        "",
    );
    let p = mgr
        .define_domain(&missing_root, no_opts())
        .await
        .expect("define");
    let r = domain(&s.conn, &p).await.start(no_opts()).await;
    assert_eq!(
        error_name(&r),
        "org.virtbus1.Error.InvalidArgument",
        "{r:?}"
    );
    assert!(error_message(&r).contains("<source dir="), "{r:?}");

    let no_init = rootfs::domain("lxc-noinit", &s.root, "true", "", "")
        .replace("<init>/bin/sh</init>", "<init>/sbin/nope</init>");
    let p = mgr
        .define_domain(&no_init, no_opts())
        .await
        .expect("define");
    let r = domain(&s.conn, &p).await.start(no_opts()).await;
    assert_eq!(
        error_name(&r),
        "org.virtbus1.Error.InvalidArgument",
        "{r:?}"
    );
    assert!(
        error_message(&r).contains("<os><init> '/sbin/nope'"),
        "{r:?}"
    );

    let overlap = rootfs::domain(
        "lxc-overlap",
        &s.root,
        "true",
        "<idmap><uid start='0' target='100000' count='1000'/>\
         <uid start='500' target='300000' count='10'/>\
         <gid start='0' target='100000' count='1000'/></idmap>",
        "",
    );
    let r = mgr.define_domain(&overlap, no_opts()).await;
    assert!(error_message(&r).contains("/domain/idmap/uid"), "{r:?}");

    let vm_device = rootfs::domain("lxc-disk", &s.root, "true", "", "<graphics type='vnc'/>");
    let r = mgr.define_domain(&vm_device, no_opts()).await;
    assert_eq!(error_name(&r), "org.virtbus1.Error.NotSupported", "{r:?}");
    assert!(error_message(&r).contains("<graphics>"), "{r:?}");

    for n in ["lxc-noroot", "lxc-noinit", "lxc-overlap"] {
        assert!(!cgroup_dir("unified", n).exists(), "{n} left a cgroup");
        assert!(!cgroup_dir("memory", n).exists(), "{n} left a cgroup");
    }
    let runtime = s.daemon.runtime.display().to_string();
    let left: Vec<String> = std::fs::read_dir("/proc")
        .expect("proc")
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains("--lxc-controller") && c.contains(&runtime))
        .collect();
    assert!(left.is_empty(), "controllers left running: {left:?}");
}

/// A reboot (SIGHUP to the init, which reboots with `reboot(2)`) ends the container's init
/// and starts it anew, as libvirt's `<on_reboot>restart`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reboot_starts_the_init_anew() {
    let s = setup().await;
    let dom = s
        .start(&rootfs::domain(
            "lxc-reboot",
            &s.root,
            "echo $$ >> /out/boots; trap 'reboot -f' HUP; while true; do sleep 0.1; done",
            "",
            "",
        ))
        .await;
    let boots = s.out().join("boots");
    read_when_there(&boots).await;
    let first = procs("lxc-reboot");
    dom.reboot(no_opts()).await.expect("reboot");
    let t = Instant::now();
    while !std::fs::read_to_string(&boots).is_ok_and(|b| b.lines().count() == 2) {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "no second boot:\n{}\n{}",
            s.daemon.log_text(),
            std::fs::read_to_string(s.daemon.runtime.join("lxc/log/lxc-reboot.log"))
                .unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        dom.state().await.expect("state"),
        "running",
        "{}",
        s.daemon.log_text()
    );
    let again = procs("lxc-reboot");
    assert!(
        !again.is_empty() && again[0] != first[0],
        "{first:?} {again:?}"
    );
    assert!(!pid_alive(first[0]));
    dom.destroy(no_opts()).await.expect("destroy");
}

/// `<memtune>`: the hard limit replaces `<memory>`'s, and the soft and memory+swap limits
/// are set, in the memory controller's files (v1's here: this host's v2 hierarchy offers no
/// memory controller; v2's `memory.max`/`high`/`swap.max` where it does);
/// `<min_guarantee>` is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memtune_sets_the_memory_cgroup() {
    let s = setup().await;
    let tune = "<memtune><hard_limit unit='MiB'>48</hard_limit>\
        <soft_limit unit='MiB'>32</soft_limit><swap_hard_limit unit='MiB'>96</swap_hard_limit>\
        </memtune>";
    let dom = s
        .start(&rootfs::domain(
            "lxc-memtune",
            &s.root,
            "echo up > /out/up; while true; do sleep 1; done",
            tune,
            "",
        ))
        .await;
    read_when_there(&s.out().join("up")).await;
    let v1 = cgroup_dir("memory", "lxc-memtune");
    let read = |d: &Path, f: &str| {
        std::fs::read_to_string(d.join(f))
            .unwrap_or_else(|e| panic!("{f}: {e}"))
            .trim()
            .to_owned()
    };
    if v1.exists() {
        assert_eq!(
            read(&v1, "memory.limit_in_bytes"),
            (48u64 << 20).to_string()
        );
        assert_eq!(
            read(&v1, "memory.soft_limit_in_bytes"),
            (32u64 << 20).to_string()
        );
        assert_eq!(
            read(&v1, "memory.memsw.limit_in_bytes"),
            (96u64 << 20).to_string()
        );
    } else {
        let v2 = cgroup_dir("unified", "lxc-memtune");
        assert_eq!(read(&v2, "memory.max"), (48u64 << 20).to_string());
        assert_eq!(read(&v2, "memory.high"), (32u64 << 20).to_string());
        assert_eq!(read(&v2, "memory.swap.max"), (48u64 << 20).to_string());
    }
    let live = dom.get_xml(no_opts()).await.expect("xml");
    assert!(
        live.contains("<hard_limit unit='KiB'>49152</hard_limit>"),
        "{live}"
    );
    dom.destroy(no_opts()).await.expect("destroy");

    let mgr = manager(&s.conn).await;
    let r = mgr
        .define_domain(
            &rootfs::domain(
                "lxc-guarantee",
                &s.root,
                "true",
                "<memtune><min_guarantee unit='MiB'>8</min_guarantee></memtune>",
                "",
            ),
            no_opts(),
        )
        .await;
    assert!(error_message(&r).contains("<min_guarantee>"), "{r:?}");
}
