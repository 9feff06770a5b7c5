//! virsh's `iothreadadd`, `iothreaddel`, `iothreadset` and `perf` on a running tiny guest:
//! each change seen from outside (QMP `query-iothreads`, the thread's cgroup and affinity,
//! perf counters rising), `--config` round trips, the live state kept across a daemon
//! restart, the same commands' outputs and errors equal to Debian's libvirtd running the same
//! guest, and `test+unix:///default` against libvirt's own test driver.

use std::{path::PathBuf, process::Output};

use super::{Rpc, guest, wait_for};
use crate::support::libvirtd::Libvirtd;

const QEMU: &str = "qemu:///system";

#[tokio::test]
async fn iothreads_on_the_test_uri_are_libvirts_test_driver() {
    let r = Rpc::start().await;
    // one virsh run, so that libvirt's (per-process) test driver keeps its changes too
    r.assert_as_libvirt_test(&[
        "iothreadinfo test; iothreadadd test 5; iothreadinfo test; iothreadadd test 5; \
         iothreaddel test 9; iothreadadd test 6 --config; iothreadinfo test --config; \
         iothreadadd test 7 --live --config; iothreadset test 5 --poll-max-ns 100; \
         iothreadset test 5 --thread-pool-min 2; iothreadset test 5 --poll-grow 3 --config; \
         iothreadset test 9 --poll-grow 3; iothreaddel test 6 --config; \
         iothreadinfo test --config; iothreaddel test 5; iothreadinfo test; \
         iothreaddel test 5 --live --config",
    ]);
    r.assert_as_libvirt_test(&[
        "perf test; perf test --enable task_clock; perf test; perf test --enable bogus; \
         perf test --live --config; perf test --config --enable cpu_clock,cmt; \
         perf test --config; perf test --disable task_clock; perf test --live",
    ]);
    // what the comparison compares is there (the first run left id 5 deleted again)
    r.ok("test+unix:///default", &["iothreadadd", "test", "8"]);
    let out = r.ok("test+unix:///default", &["iothreadinfo", "test"]);
    assert!(
        out.lines().any(|l| l.trim_start().starts_with("8 ")),
        "{out}"
    );
}

/// One QMP command's `return`, through virsh.
fn qmp(r: &Rpc, dom: &str, cmd: &str) -> serde_json::Value {
    let out = r.ok(
        QEMU,
        &[
            "qemu-monitor-command",
            dom,
            &format!(r#"{{"execute":"{cmd}"}}"#),
        ],
    );
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON");
    v["return"].clone()
}

/// (id, thread id) of each I/O thread QEMU runs.
fn iothreads(r: &Rpc, dom: &str) -> Vec<(String, i32)> {
    qmp(r, dom, "query-iothreads")
        .as_array()
        .expect("array")
        .iter()
        .map(|t| {
            (
                t["id"].as_str().expect("id").to_owned(),
                t["thread-id"].as_i64().expect("thread-id") as i32,
            )
        })
        .collect()
}

fn qom_get(r: &Rpc, dom: &str, path: &str, prop: &str) -> serde_json::Value {
    let out = r.ok(
        QEMU,
        &[
            "qemu-monitor-command",
            dom,
            &format!(
                r#"{{"execute":"qom-get","arguments":{{"path":"{path}","property":"{prop}"}}}}"#
            ),
        ],
    );
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON");
    v["return"].clone()
}

fn cpus_allowed(tid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{tid}/status"))
        .expect("status")
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .expect("Cpus_allowed_list")
        .trim()
        .to_owned()
}

/// The v1 cpu cgroup directory thread `tid` is in (`None` on a v2 host).
fn v1_cpu_cgroup(tid: i32) -> Option<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{tid}/cgroup")).ok()?;
    let path = text.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
        ctrls
            .split(',')
            .any(|c| c == "cpu")
            .then(|| path.to_owned())
    })?;
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    let root = mounts
        .lines()
        .map(|m| m.split_whitespace().collect::<Vec<_>>())
        .find(|m| m[2] == "cgroup" && m[3].split(',').any(|o| o == "cpu"))
        .map(|m| m[1].to_owned())?;
    Some(PathBuf::from(root).join(path.trim_start_matches('/')))
}

/// The tiny guest with one I/O thread, which its disk uses.
fn guest_xml(name: &str, disk: &std::path::Path) -> String {
    guest::domain_xml(name, disk, "")
        .replace(
            "<vcpu>1</vcpu>",
            "<vcpu>1</vcpu>\n  <iothreads>1</iothreads>",
        )
        .replace(
            "<driver name='qemu' type='qcow2'/>",
            "<driver name='qemu' type='qcow2' iothread='1'/>",
        )
}

/// The commands compared with libvirtd, in order, on the running guest `G`.
const COMPARED: &[&[&str]] = &[
    &["iothreadadd", "G", "3"],
    &["iothreadadd", "G", "3"],
    &["iothreaddel", "G", "9"],
    &["iothreaddel", "G", "1"],
    &["iothreadset", "G", "9", "--poll-max-ns", "10"],
    &[
        "iothreadset",
        "G",
        "3",
        "--poll-max-ns",
        "1000",
        "--poll-grow",
        "2",
        "--poll-shrink",
        "3",
    ],
    &["domstats", "G", "--iothread"],
    &[
        "iothreadset",
        "G",
        "3",
        "--thread-pool-min",
        "5",
        "--thread-pool-max",
        "4",
    ],
    &["iothreadset", "G", "3", "--thread-pool-min", "2"],
    &[
        "iothreadset",
        "G",
        "3",
        "--thread-pool-min",
        "2",
        "--thread-pool-max",
        "4",
    ],
    &["iothreadset", "G", "3", "--thread-pool-min", "-1"],
    &["iothreadset", "G", "3", "--thread-pool-max", "0"],
    &["iothreadset", "G", "3", "--poll-max-ns", "2147483648"],
    &["iothreadset", "G", "3", "--poll-max-ns", "5", "--config"],
    &["iothreadset", "G", "1", "--poll-max-ns", "5", "--config"],
    &[
        "iothreadset",
        "G",
        "1",
        "--thread-pool-max",
        "8",
        "--config",
    ],
    &["iothreadadd", "G", "4", "--config"],
    &["iothreadinfo", "G", "--config"],
    &["iothreadinfo", "G"],
    &["iothreaddel", "G", "3"],
    &["iothreadinfo", "G"],
    &["iothreaddel", "G", "4", "--config"],
    &["iothreadinfo", "G", "--config"],
    &["perf", "G"],
    &["perf", "G", "--enable", "task_clock,page_faults"],
    &["perf", "G", "--enable", "cpu_cycles"],
    &["perf", "G", "--enable", "cmt"],
    &["perf", "G", "--enable", "bogus"],
    &["perf", "G"],
    &["perf", "G", "--live", "--config"],
    &["perf", "G", "--config", "--enable", "cpu_clock"],
    &["perf", "G", "--config"],
    &["perf", "G", "--disable", "page_faults"],
    &["perf", "G", "--live"],
];

fn outcome(o: Output) -> (bool, String, String) {
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[tokio::test]
async fn live_configuration_of_a_running_qemu_guest() {
    if let Err(why) = Libvirtd::available() {
        panic!("Debian's libvirtd is needed as the oracle: {why}");
    }
    let mut r = Rpc::start().await;
    let dir = r.bus.dir.path().to_owned();
    let ours = dir.join("ours.qcow2");
    guest::data_disk(&ours);
    let xml = dir.join("lc.xml");
    std::fs::write(&xml, guest_xml("tiny-lc", &ours)).expect("write xml");
    r.ok(QEMU, &["define", &xml.to_string_lossy()]);
    r.ok(QEMU, &["start", "tiny-lc"]);
    let before = iothreads(&r, "tiny-lc");
    assert_eq!(before.len(), 1, "{before:?}");
    let dom_v1 = v1_cpu_cgroup(before[0].1).and_then(|p| p.parent().map(PathBuf::from));

    // the oracle: the same commands on libvirtd's own run of the same guest
    let lv = Libvirtd::start();
    let theirs = dir.join("theirs.qcow2");
    guest::data_disk(&theirs);
    let lxml = dir.join("lc-lv.xml");
    std::fs::write(&lxml, guest_xml("tiny-lc", &theirs)).expect("write xml");
    let d = lv.virsh(&["define", &lxml.to_string_lossy()]);
    assert!(d.status.success(), "{d:?}\n{}", lv.log_text());
    let s = lv.virsh(&["start", "tiny-lc"]);
    assert!(s.status.success(), "{s:?}\n{}", lv.log_text());
    for cmd in COMPARED {
        let args: Vec<&str> = cmd
            .iter()
            .map(|a| if *a == "G" { "tiny-lc" } else { a })
            .collect();
        // quiet, as the oracle's virsh runs
        let mine = r.virsh(QEMU, &[&["-q"][..], &args].concat());
        let libvirt = outcome(lv.virsh(&args));
        assert_eq!(
            mine,
            libvirt,
            "virsh {args:?}: ours (left) differs from libvirtd\ndaemon log:\n{}",
            r.daemon.log_text()
        );
    }
    let _ = lv.virsh(&["destroy", "tiny-lc"]);
    drop(lv);

    // seen from outside: a new thread in QEMU, in its own cgroup, pinnable
    r.ok(QEMU, &["iothreadadd", "tiny-lc", "5"]);
    let now = iothreads(&r, "tiny-lc");
    let tid = now
        .iter()
        .find(|(id, _)| id == "iothread5")
        .map(|(_, t)| *t)
        .unwrap_or_else(|| panic!("{now:?}"));
    if let Some(dom) = &dom_v1 {
        assert_eq!(v1_cpu_cgroup(tid), Some(dom.join("iothread5")));
    }
    r.ok(QEMU, &["iothreadpin", "tiny-lc", "5", "0"]);
    assert_eq!(cpus_allowed(tid), "0");
    let out = r.ok(QEMU, &["iothreadinfo", "tiny-lc"]);
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["5", "0"]),
        "{out}"
    );
    r.ok(
        QEMU,
        &[
            "iothreadset",
            "tiny-lc",
            "5",
            "--poll-max-ns",
            "4096",
            "--thread-pool-min",
            "1",
            "--thread-pool-max",
            "3",
        ],
    );
    assert_eq!(
        qom_get(&r, "tiny-lc", "/objects/iothread5", "poll-max-ns"),
        4096
    );
    assert_eq!(
        qom_get(&r, "tiny-lc", "/objects/iothread5", "thread-pool-max"),
        3
    );
    let x = r.ok(QEMU, &["dumpxml", "tiny-lc"]);
    assert!(
        x.contains("<iothread id='5' thread_pool_min='1' thread_pool_max='3'/>"),
        "{x}"
    );
    let out = r.ok(QEMU, &["domstats", "tiny-lc", "--iothread"]);
    assert!(
        out.contains("iothread.count=2") && out.contains("iothread.5.poll-max-ns=4096"),
        "{out}"
    );
    // --config alone leaves the running guest as it is
    r.ok(QEMU, &["iothreadadd", "tiny-lc", "6", "--config"]);
    let x = r.ok(QEMU, &["dumpxml", "tiny-lc", "--inactive"]);
    assert!(
        x.contains("<iothreads>2</iothreads>") && x.contains("<iothread id='6'/>"),
        "{x}"
    );
    assert_eq!(iothreads(&r, "tiny-lc").len(), 2);

    // perf: the counter of QEMU's process rises while the guest runs
    let task_clock = |r: &Rpc| -> u64 {
        let out = r.ok(QEMU, &["domstats", "tiny-lc", "--perf"]);
        out.lines()
            .find_map(|l| l.trim().strip_prefix("perf.task_clock="))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{out}"))
    };
    let a = task_clock(&r);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let b = task_clock(&r);
    assert!(b > a, "{a} then {b}");
    let x = r.ok(QEMU, &["dumpxml", "tiny-lc", "--inactive"]);
    assert!(x.contains("<event name='cpu_clock' enabled='yes'/>"), "{x}");

    // a daemon restart keeps the live set, and the perf counters (reopened)
    r.daemon.restart(&r.bus).await;
    wait_for(&r.sock, &r.daemon);
    let out = r.ok_eventually(&["iothreadinfo", "tiny-lc"]);
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["5", "0"]),
        "{out}"
    );
    let out = r.ok(QEMU, &["perf", "tiny-lc"]);
    assert!(out.contains("task_clock     : enabled"), "{out}");
    assert!(task_clock(&r) > 0);
    r.ok(QEMU, &["perf", "tiny-lc", "--disable", "task_clock"]);
    let out = r.ok(QEMU, &["domstats", "tiny-lc", "--perf"]);
    assert!(!out.contains("perf.task_clock"), "{out}");
    r.ok(QEMU, &["iothreaddel", "tiny-lc", "5"]);
    let now = iothreads(&r, "tiny-lc");
    assert_eq!(now.len(), 1, "{now:?}");
    if let Some(dom) = &dom_v1 {
        assert!(!dom.join("iothread5").exists());
    }
    let x = r.ok(QEMU, &["dumpxml", "tiny-lc"]);
    assert!(x.contains("<iothreads>1</iothreads>"), "{x}");

    // read-only connections change nothing
    let uri = format!("{QEMU}?socket={}", r.sock.display());
    let ro = std::process::Command::new("virsh")
        .args(["-r", "-c", &uri, "iothreadadd", "tiny-lc", "7"])
        .env("HOME", r.bus.dir.path())
        .output()
        .expect("virsh");
    let e = String::from_utf8_lossy(&ro.stderr);
    assert!(
        !ro.status.success() && e.contains("read only access prevents"),
        "{e}"
    );

    r.ok(QEMU, &["destroy", "tiny-lc"]);
    let e = r.fails(QEMU, &["iothreadadd", "tiny-lc", "7", "--live"]);
    assert!(e.contains("domain is not running"), "{e}");
    r.ok(QEMU, &["undefine", "tiny-lc"]);
}
