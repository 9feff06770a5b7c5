//! virsh's tuning commands (`schedinfo`, `memtune`, `vcpupin`, `emulatorpin`,
//! `iothreadinfo`, `cpu-stats`) on a running tiny guest, each change read back from the
//! host (the guest's cgroup files, its threads' `Cpus_allowed_list`) and from
//! `dumpxml --inactive`; the tunable event; and `test+unix:///default` against libvirt's own
//! test driver.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    time::Duration,
};

use super::{Rpc, guest};

const TEST: &str = "test+unix:///default";
const QEMU: &str = "qemu:///system";

#[tokio::test]
async fn tuning_on_the_test_uri_is_libvirts_test_driver() {
    let r = Rpc::start().await;
    for cmd in [
        &["schedinfo", "test"][..],
        &["schedinfo", "test", "--config"],
        &["schedinfo", "test", "--live"],
        &["schedinfo", "test", "weight=100"],
        &["schedinfo", "test", "cpu_shares=100"],
        &["memtune", "test"],
        &["memtune", "test", "--config"],
        &["memtune", "test", "--hard-limit", "1000"],
        &["cpu-stats", "test"],
        &["cpu-stats", "test", "--total"],
        &["cpu-stats", "test", "--start", "1", "--count", "1"],
        &["emulatorpin", "test"],
        &["emulatorpin", "test", "1"],
        &["emulatorpin", "test", "0", "--config"],
        &["vcpupin", "test"],
        &["vcpupin", "test", "0", "1"],
        &["vcpupin", "test", "0", "1", "--config"],
        &["iothreadinfo", "test"],
        &["iothreadpin", "test", "1", "0"],
        &["iothreadpin", "test", "1", "0", "--config"],
        &["numatune", "test"],
        &["numatune", "test", "--config"],
        &["numatune", "test", "--nodeset", "0"],
        &["numatune", "test", "--nodeset", "0", "--config"],
        &[
            "numatune",
            "test",
            "--mode",
            "strict",
            "--nodeset",
            "0",
            "--live",
        ],
        &["numatune", "test", "--nodeset", "x"],
        &["blkiotune", "test"],
        &["blkiotune", "test", "--config"],
        &["blkiotune", "test", "--weight", "500"],
        &[
            "blkiotune",
            "test",
            "--device-read-iops-sec",
            "/dev/sda,100",
        ],
        &["blkiotune", "test", "--device-read-iops-sec", "/dev/sda"],
        &[
            "blkiotune",
            "test",
            "--device-write-bytes-sec",
            "/dev/sda,x",
        ],
    ] {
        r.assert_as_libvirt_test(cmd);
    }
    // what the comparison compares is there, and changes stay (one connection: our daemon)
    let out = r.ok(TEST, &["schedinfo", "test"]);
    assert!(out.contains("weight         : 50"), "{out}");
    r.ok(TEST, &["memtune", "test", "--hard-limit", "1000"]);
    let out = r.ok(TEST, &["memtune", "test"]);
    assert!(out.contains("hard_limit     : 1000"), "{out}");
    r.ok(
        TEST,
        &[
            "blkiotune",
            "test",
            "--weight",
            "500",
            "--device-read-iops-sec",
            "/dev/sda,100,/dev/sdb,7",
        ],
    );
    r.ok(
        TEST,
        &[
            "blkiotune",
            "test",
            "--device-write-bytes-sec",
            "/dev/sda,9",
        ],
    );
    let out = r.ok(TEST, &["blkiotune", "test"]);
    assert!(out.contains("weight         : 500"), "{out}");
    assert!(
        out.contains("device_read_iops_sec: /dev/sda,100,/dev/sdb,7"),
        "{out}"
    );
    assert!(out.contains("device_write_bytes_sec: /dev/sda,9"), "{out}");
    r.ok(TEST, &["numatune", "test", "--nodeset", "0"]);
    let out = r.ok(TEST, &["numatune", "test"]);
    assert!(out.contains("numa_nodeset   : 0"), "{out}");
    r.ok(TEST, &["emulatorpin", "test", "1"]);
    let out = r.ok(TEST, &["emulatorpin", "test"]);
    assert!(out.contains("*: 1\n"), "{out}");
}

/// The host path of the cgroup (of `controller`, v1; the unified one on v2) thread `tid` is in.
fn cgroup_of(tid: i32, controller: &str) -> PathBuf {
    let text = std::fs::read_to_string(format!("/proc/{tid}/cgroup")).expect("cgroup");
    let mounts = std::fs::read_to_string("/proc/mounts").expect("mounts");
    for l in text.lines() {
        let mut f = l.splitn(3, ':');
        let (_, ctrls, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or(""));
        if ctrls.split(',').any(|c| c == controller) {
            let root = mounts
                .lines()
                .map(|m| m.split_whitespace().collect::<Vec<_>>())
                .find(|m| m[2] == "cgroup" && m[3].split(',').any(|o| o == controller))
                .map(|m| m[1].to_owned())
                .expect("controller mount");
            return PathBuf::from(root).join(path.trim_start_matches('/'));
        }
    }
    let root = mounts
        .lines()
        .map(|m| m.split_whitespace().collect::<Vec<_>>())
        .find(|m| m[2] == "cgroup2")
        .map(|m| m[1].to_owned())
        .expect("cgroup2 mount");
    let path = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .expect("v2 line");
    PathBuf::from(root).join(path.trim_start_matches('/'))
}

fn read(p: PathBuf) -> String {
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_owned()
}

fn cpus_allowed(tid: i32) -> String {
    let st = read(PathBuf::from(format!("/proc/{tid}/status")));
    st.lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .expect("Cpus_allowed_list")
        .trim()
        .to_owned()
}

/// The vCPU thread ids, from QMP.
fn vcpu_tids(r: &Rpc) -> Vec<i32> {
    let out = r.ok(
        QEMU,
        &[
            "qemu-monitor-command",
            "tiny-tune",
            r#"{"execute":"query-cpus-fast"}"#,
        ],
    );
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON");
    v["return"]
        .as_array()
        .expect("array")
        .iter()
        .map(|c| c["thread-id"].as_i64().expect("thread-id") as i32)
        .collect()
}

#[tokio::test]
async fn tuning_a_running_qemu_guest() {
    let host_cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let r = Rpc::start().await;
    let disk = r.bus.dir.path().join("data.qcow2");
    guest::data_disk(&disk);
    let last = (host_cpus - 1).to_string();
    // a pin at start, which must survive the guest's move into its cgroups
    let xml = guest::domain_xml("tiny-tune", &disk, "").replace(
        "<vcpu>1</vcpu>",
        &format!(
            "<vcpu>2</vcpu>\n  <iothreads>1</iothreads>\n  \
             <cputune><vcpupin vcpu='0' cpuset='{last}'/></cputune>"
        ),
    );
    assert!(xml.contains("<iothreads>"), "{xml}");
    let xml_path = r.bus.dir.path().join("tiny-tune.xml");
    std::fs::write(&xml_path, xml).expect("write xml");
    r.ok(QEMU, &["define", &xml_path.to_string_lossy()]);
    // not running: libvirt's defaults, from the definition
    let out = r.ok(QEMU, &["schedinfo", "tiny-tune"]);
    assert!(out.contains("Scheduler      : posix"), "{out}");
    assert!(out.contains("cpu_shares     : 0"), "{out}");
    r.ok(QEMU, &["start", "tiny-tune"]);

    let vcpus = vcpu_tids(&r);
    assert_eq!(vcpus.len(), 2);
    assert_eq!(cpus_allowed(vcpus[0]), last);
    let pid = {
        let out = read(PathBuf::from(format!("/proc/{}/status", vcpus[0])));
        out.lines()
            .find_map(|l| l.strip_prefix("Tgid:"))
            .expect("Tgid")
            .trim()
            .parse::<i32>()
            .expect("pid")
    };
    let v1 = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .expect("cgroup")
        .lines()
        .any(|l| {
            l.split(':')
                .nth(1)
                .is_some_and(|c| c.split(',').any(|c| c == "cpu"))
        });

    // the tunable event, as `virsh event` prints it
    let uri = format!("{QEMU}?socket={}", r.sock.display());
    let events = Command::new("virsh")
        .args([
            "-c",
            &uri,
            "event",
            "tiny-tune",
            "--event",
            "tunable",
            "--loop",
        ])
        .env("HOME", r.bus.dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .expect("virsh event");
    tokio::time::sleep(Duration::from_millis(700)).await;

    // schedinfo: live values read back from the cgroups
    let out = r.ok(QEMU, &["schedinfo", "tiny-tune"]);
    for key in [
        "cpu_shares",
        "vcpu_period",
        "vcpu_quota",
        "emulator_period",
        "emulator_quota",
        "global_period",
        "global_quota",
        "iothread_period",
        "iothread_quota",
    ] {
        assert!(out.contains(&format!("{key:<15}:")), "{key}: {out}");
    }
    r.ok(
        QEMU,
        &[
            "schedinfo",
            "tiny-tune",
            "--live",
            "cpu_shares=512",
            "vcpu_period=50000",
            "vcpu_quota=20000",
            "emulator_quota=30000",
        ],
    );
    let vcpu_cg = cgroup_of(vcpus[1], "cpu");
    let emu_cg = cgroup_of(pid, "cpu");
    let dom_cg = vcpu_cg.parent().expect("domain cgroup").to_path_buf();
    if v1 {
        assert_eq!(read(dom_cg.join("cpu.shares")), "512");
        assert_eq!(read(vcpu_cg.join("cpu.cfs_period_us")), "50000");
        assert_eq!(read(vcpu_cg.join("cpu.cfs_quota_us")), "20000");
        assert_eq!(read(emu_cg.join("cpu.cfs_quota_us")), "30000");
    } else {
        assert_eq!(read(dom_cg.join("cpu.weight")), "512");
        assert_eq!(read(vcpu_cg.join("cpu.max")), "20000 50000");
    }
    let out = r.ok(QEMU, &["schedinfo", "tiny-tune"]);
    assert!(out.contains("cpu_shares     : 512"), "{out}");
    assert!(out.contains("vcpu_quota     : 20000"), "{out}");
    assert!(out.contains("emulator_quota : 30000"), "{out}");
    // --config: the persistent definition only
    r.ok(
        QEMU,
        &["schedinfo", "tiny-tune", "--config", "cpu_shares=300"],
    );
    let x = r.ok(QEMU, &["dumpxml", "tiny-tune", "--inactive"]);
    assert!(x.contains("<shares>300</shares>"), "{x}");
    let out = r.ok(QEMU, &["schedinfo", "tiny-tune", "--config"]);
    assert!(out.contains("cpu_shares     : 300"), "{out}");
    let out = r.ok(QEMU, &["schedinfo", "tiny-tune"]);
    assert!(out.contains("cpu_shares     : 512"), "{out}");
    // bad values: libvirt's errors, nothing changed
    let e = r.fails(QEMU, &["schedinfo", "tiny-tune", "cpu_shares=1"]);
    assert!(e.contains("shares '1' must be in range [2, 262144]"), "{e}");
    let e = r.fails(QEMU, &["schedinfo", "tiny-tune", "vcpu_period=10"]);
    assert!(
        e.contains("value of 'vcpu_period' is out of range [1000, 1000000]"),
        "{e}"
    );
    let e = r.fails(QEMU, &["schedinfo", "tiny-tune", "bogus=1"]);
    assert!(e.contains("invalid scheduler option: bogus"), "{e}");
    if v1 {
        assert_eq!(read(dom_cg.join("cpu.shares")), "512");
        assert_eq!(read(vcpu_cg.join("cpu.cfs_period_us")), "50000");
    }

    // vcpupin: the vCPU thread's affinity, and <vcpupin> for --config
    r.ok(QEMU, &["vcpupin", "tiny-tune", "1", "0"]);
    assert_eq!(cpus_allowed(vcpus[1]), "0");
    let out = r.ok(QEMU, &["vcpupin", "tiny-tune"]);
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["1", "0"]),
        "{out}"
    );
    r.ok(QEMU, &["vcpupin", "tiny-tune", "1", &last, "--config"]);
    let x = r.ok(QEMU, &["dumpxml", "tiny-tune", "--inactive"]);
    assert!(
        x.contains(&format!("<vcpupin vcpu='1' cpuset='{last}'/>")),
        "{x}"
    );
    // the running guest's pin is its own
    assert_eq!(cpus_allowed(vcpus[1]), "0");
    let e = r.fails(QEMU, &["vcpupin", "tiny-tune", "5", "0"]);
    assert!(
        e.contains("vcpu 5 is out of range of live cpu count 2"),
        "{e}"
    );
    let beyond = host_cpus.to_string();
    let e = r.fails(QEMU, &["vcpupin", "tiny-tune", "1", &beyond]);
    assert!(e.contains("exceed the maxcpu"), "{e}");
    assert_eq!(cpus_allowed(vcpus[1]), "0");

    // emulatorpin: QEMU's own threads, not the vCPUs
    r.ok(QEMU, &["emulatorpin", "tiny-tune", &last, "--live"]);
    assert_eq!(cpus_allowed(pid), last);
    assert_eq!(cpus_allowed(vcpus[1]), "0");
    let out = r.ok(QEMU, &["emulatorpin", "tiny-tune"]);
    assert!(out.contains(&format!("*: {last}")), "{out}");

    // iothreadinfo: the one I/O thread, on every host CPU
    let out = r.ok(QEMU, &["iothreadinfo", "tiny-tune"]);
    assert!(
        out.lines().any(|l| l.trim_start().starts_with("1 ")),
        "{out}"
    );

    // iothreadpin: the I/O thread's affinity, <iothreadpin> for --config
    let out = r.ok(
        QEMU,
        &[
            "qemu-monitor-command",
            "tiny-tune",
            r#"{"execute":"query-iothreads"}"#,
        ],
    );
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON");
    let io_tid = v["return"][0]["thread-id"].as_i64().expect("iothread tid") as i32;
    r.ok(QEMU, &["iothreadpin", "tiny-tune", "1", "0", "--live"]);
    assert_eq!(cpus_allowed(io_tid), "0");
    let out = r.ok(QEMU, &["iothreadinfo", "tiny-tune"]);
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["1", "0"]),
        "{out}"
    );
    r.ok(QEMU, &["iothreadpin", "tiny-tune", "1", &last, "--config"]);
    let x = r.ok(QEMU, &["dumpxml", "tiny-tune", "--inactive"]);
    assert!(
        x.contains(&format!("<iothreadpin iothread='1' cpuset='{last}'/>")),
        "{x}"
    );
    let e = r.fails(QEMU, &["iothreadpin", "tiny-tune", "7", "0"]);
    assert!(e.contains("iothreadid 7 not found"), "{e}");
    assert_eq!(cpus_allowed(io_tid), "0");

    // memtune: the memory cgroup's limits
    let out = r.ok(QEMU, &["memtune", "tiny-tune"]);
    assert!(out.contains("hard_limit     : unlimited"), "{out}");
    r.ok(
        QEMU,
        &["memtune", "tiny-tune", "--live", "--hard-limit", "524288"],
    );
    let mem_cg = cgroup_of(pid, "memory");
    if v1 {
        assert_eq!(read(mem_cg.join("memory.limit_in_bytes")), "536870912");
    } else {
        assert_eq!(read(mem_cg.join("memory.max")), "536870912");
    }
    let out = r.ok(QEMU, &["memtune", "tiny-tune"]);
    assert!(out.contains("hard_limit     : 524288"), "{out}");
    r.ok(
        QEMU,
        &["memtune", "tiny-tune", "--config", "--soft-limit", "100000"],
    );
    let x = r.ok(QEMU, &["dumpxml", "tiny-tune", "--inactive"]);
    assert!(
        x.contains("<soft_limit unit='KiB'>100000</soft_limit>"),
        "{x}"
    );
    let e = r.fails(
        QEMU,
        &[
            "memtune",
            "tiny-tune",
            "--hard-limit",
            "600000",
            "--swap-hard-limit",
            "500000",
        ],
    );
    assert!(
        e.contains(
            "memory hard_limit tunable value must be lower than or equal to swap_hard_limit"
        ),
        "{e}"
    );
    if v1 {
        assert_eq!(read(mem_cg.join("memory.limit_in_bytes")), "536870912");
    }

    // blkiotune: per-device throttles into the blkio group, --config into <blkiotune>
    let dev = ["/dev/vda", "/dev/sda", "/dev/loop0"]
        .into_iter()
        .find(|d| std::path::Path::new(d).exists())
        .expect("a block device");
    let id = {
        use std::os::unix::fs::MetadataExt;
        let rdev = std::fs::metadata(dev).expect("stat").rdev();
        format!("{}:{}", libc::major(rdev), libc::minor(rdev))
    };
    let iops = format!("{dev},100");
    r.ok(
        QEMU,
        &[
            "blkiotune",
            "tiny-tune",
            "--live",
            "--device-read-iops-sec",
            &iops,
        ],
    );
    if v1 {
        let f = read(cgroup_of(pid, "blkio").join("blkio.throttle.read_iops_device"));
        assert!(f.lines().any(|l| l == format!("{id} 100")), "{f}");
    }
    let bps = format!("{dev},1048576");
    r.ok(
        QEMU,
        &[
            "blkiotune",
            "tiny-tune",
            "--config",
            "--device-write-bytes-sec",
            &bps,
        ],
    );
    let x = r.ok(QEMU, &["dumpxml", "tiny-tune", "--inactive"]);
    assert!(
        x.contains(&format!("<path>{dev}</path>"))
            && x.contains("<write_bytes_sec>1048576</write_bytes_sec>"),
        "{x}"
    );
    let out = r.ok(QEMU, &["blkiotune", "tiny-tune", "--config"]);
    assert!(
        out.contains(&format!("device_write_bytes_sec: {bps}")),
        "{out}"
    );
    let e = r.fails(
        QEMU,
        &[
            "blkiotune",
            "tiny-tune",
            "--live",
            "--device-read-iops-sec",
            "/etc/hostname,5",
        ],
    );
    assert!(e.contains("must be a block device"), "{e}");

    // numatune: the vCPU and emulator groups' cpuset.mems; the mode stays while running
    let out = r.ok(QEMU, &["numatune", "tiny-tune"]);
    assert!(
        out.contains("numa_mode      : strict") && out.contains("numa_nodeset   : \n"),
        "{out}"
    );
    r.ok(QEMU, &["numatune", "tiny-tune", "--live", "--nodeset", "0"]);
    if v1 {
        let mems = read(cgroup_of(vcpus[0], "cpuset").join("cpuset.mems"));
        assert_eq!(mems, "0");
    }
    let out = r.ok(QEMU, &["numatune", "tiny-tune"]);
    assert!(out.contains("numa_nodeset   : 0"), "{out}");
    let e = r.fails(
        QEMU,
        &["numatune", "tiny-tune", "--live", "--mode", "interleave"],
    );
    assert!(
        e.contains("can't change numatune mode for running domain"),
        "{e}"
    );
    let e = r.fails(QEMU, &["numatune", "tiny-tune", "--live", "--nodeset", "5"]);
    assert!(
        e.contains("change of nodeset for running domain requires restrictive numa mode"),
        "{e}"
    );
    r.ok(
        QEMU,
        &[
            "numatune",
            "tiny-tune",
            "--config",
            "--mode",
            "interleave",
            "--nodeset",
            "0",
        ],
    );
    let x = r.ok(QEMU, &["dumpxml", "tiny-tune", "--inactive"]);
    assert!(x.contains("<memory mode='interleave' nodeset='0'/>"), "{x}");
    // pinning still applies inside the cpuset groups
    assert_eq!(cpus_allowed(vcpus[1]), "0");

    // cpu-stats: per host CPU and in total, from cpuacct
    let out = r.ok(QEMU, &["cpu-stats", "tiny-tune"]);
    assert!(out.contains("Total:"), "{out}");
    assert!(out.contains("user_time"), "{out}");
    if v1 {
        assert!(out.contains("CPU0:") && out.contains("vcpu_time"), "{out}");
    }
    let total: f64 = out
        .split("Total:")
        .nth(1)
        .and_then(|t| t.lines().find(|l| l.contains("cpu_time")))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("total cpu_time");
    assert!(total > 0.0, "{out}");

    // read-only connections see, and change nothing
    let ro = Command::new("virsh")
        .args(["-r", "-c", &uri, "schedinfo", "tiny-tune", "cpu_shares=100"])
        .env("HOME", r.bus.dir.path())
        .output()
        .expect("virsh");
    let e = String::from_utf8_lossy(&ro.stderr);
    assert!(
        !ro.status.success() && e.contains("read only access prevents"),
        "{e}"
    );

    r.ok(QEMU, &["destroy", "tiny-tune"]);
    // SIGINT ends virsh's event loop cleanly (its output flushed); the child is ours
    let st = Command::new("kill")
        .args(["-INT", &events.id().to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    let out = events.wait_with_output().expect("virsh event");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("event 'tunable' for domain 'tiny-tune'")
            && text.contains("cputune.cpu_shares: 512")
            && text.contains("cputune.vcpupin1: 0")
            && text.contains("cputune.iothreadpin1: 0"),
        "{text}"
    );
    // the cgroups went with the guest
    if v1 {
        assert!(!dom_cg.exists(), "{}", dom_cg.display());
    }
    r.ok(QEMU, &["undefine", "tiny-tune"]);
}
