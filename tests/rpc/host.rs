//! virsh's "Host and Hypervisor" commands: `qemu:///system` compared with Debian's libvirtd
//! (both reading this host), `test+unix:///default` with libvirt's own test driver (linked
//! into virsh). Host settings are only written with the value they already have, or changed
//! and put back at once (KSM's `sleep_millisecs`); the host is never suspended.

use std::process::Output;

use super::Rpc;
use crate::support::libvirtd::Libvirtd;

const TEST: &str = "test+unix:///default";
const QEMU: &str = "qemu:///system";

fn triple(out: Output) -> (bool, String, String) {
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A count from `/sys`, which both daemons read.
fn sys(path: &str) -> u64 {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The first number of `text`.
fn number(text: &str) -> u64 {
    text.split(|c: char| !c.is_ascii_digit())
        .find(|w| !w.is_empty())
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no number in {text:?}"))
}

#[tokio::test]
async fn qemu_host_commands_are_libvirtds() {
    if let Err(why) = Libvirtd::available() {
        panic!("Debian's libvirtd is needed as the oracle: {why}");
    }
    let r = Rpc::start().await;
    let lv = Libvirtd::start();
    let nr = "/sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages";
    let pool = sys(nr).to_string();
    let same: Vec<Vec<&str>> = vec![
        vec!["maxvcpus", "--type", "bogus"],
        vec!["freecell", "--cellno", "3"],
        vec!["freepages"],
        vec!["freepages", "--cellno", "0", "--pagesize", "2048"],
        vec!["freepages", "--cellno", "0", "--pagesize", "1048576"],
        vec!["freepages", "--cellno", "0", "--pagesize", "1000"],
        vec!["freepages", "--cellno", "7", "--pagesize", "2048"],
        // refusals: no such cell, no such page size, the system page size
        vec!["allocpages", "2048", "0", "--cellno", "5"],
        vec!["allocpages", "1000", "0"],
        vec!["allocpages", "4", "10"],
        vec!["allocpages", "4", "10", "--cellno", "0"],
        // no change: the pool set to the size it has, grown by nothing
        vec!["allocpages", "2048", &pool, "--cellno", "0"],
        vec!["allocpages", "2048", "0", "--add"],
        vec!["-r", "allocpages", "2048", &pool],
        vec!["node-memory-tune"],
        vec!["node-memory-tune", "--shm-pages-to-scan", "-1"],
        vec!["-r", "node-memory-tune", "--shm-sleep-millisecs", "20"],
        vec!["nodesuspend", "mem", "60"],
        vec!["nodesuspend", "disk", "0"],
        vec!["nodesuspend", "hybrid", "10"],
        vec!["-r", "nodesuspend", "mem", "60"],
        vec!["nodesevinfo"],
        vec!["cpu-models", "x86_64"],
        vec!["cpu-models", "i686"],
        vec!["cpu-models", "ppc64le"],
        vec!["cpu-models", "aarch64"],
        vec!["cpu-models", "s390x"],
        vec!["cpu-models", "riscv64"],
        vec!["cpu-models", "none"],
        vec!["cpu-models", "bogus"],
        vec!["domxml-from-native", "qemu-argv", "/etc/hostname"],
        vec!["domxml-to-native", "bogus", "--xml", "/etc/hostname"],
    ];
    // libvirtd's virsh runs quiet (-q)
    fn quiet<'a>(cmd: &[&'a str]) -> Vec<&'a str> {
        [&["-q"][..], cmd].concat()
    }
    for cmd in &same {
        let want = triple(lv.virsh(cmd));
        let got = r.virsh(QEMU, &quiet(cmd));
        assert_eq!(
            got,
            want,
            "virsh {cmd:?}: ours (left) differs from libvirtd's\ndaemon log:\n{}",
            r.daemon.log_text()
        );
    }
    assert_eq!(sys(nr).to_string(), pool, "the pool was left as it was");
    // the comparisons compare something
    let models = r.ok(QEMU, &["cpu-models", "x86_64"]);
    assert!(models.lines().any(|l| l == "Skylake-Client"), "{models}");
    let tune = r.ok(QEMU, &["node-memory-tune"]);
    assert!(tune.contains("shm_merge_across_nodes"), "{tune}");

    // free memory moves while we look: the same cells, about the same figures
    let cells = |out: &str| -> Vec<(String, u64)> {
        out.lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(':')?;
                // "Node 0:" heads its page sizes
                let v = v.trim();
                Some((
                    k.trim().to_owned(),
                    if v.is_empty() { 0 } else { number(v) },
                ))
            })
            .collect()
    };
    for cmd in [
        &["freecell", "--all"][..],
        &["freecell", "--cellno", "0"],
        &["freepages", "--all"],
        &["freepages", "--cellno", "0", "--pagesize", "4"],
    ] {
        let theirs = triple(lv.virsh(cmd));
        assert!(theirs.0, "{cmd:?}: {}", theirs.2);
        let ours = r.ok(QEMU, &quiet(cmd));
        let (t, o) = (cells(&theirs.1), cells(&ours));
        assert_eq!(
            o.iter().map(|c| &c.0).collect::<Vec<_>>(),
            t.iter().map(|c| &c.0).collect::<Vec<_>>(),
            "{cmd:?}: ours {ours}\ntheirs {}",
            theirs.1
        );
        for ((k, a), (_, b)) in o.iter().zip(&t) {
            let tolerance = (*b / 10).max(1024);
            assert!(
                a.abs_diff(*b) <= tolerance,
                "{cmd:?} {k}: ours {a}, libvirtd's {b}"
            );
        }
    }

    // the vCPU limit: libvirtd (and virsh) take it from the domain capabilities. Not
    // compared: `--type kvm`, whose domain capabilities differ (virtbus's give the machine's
    // limit, libvirtd's the smaller of it and KVM's on a /dev/kvm virtbus finds unusable).
    let kvm = r.ok(QEMU, &["-q", "maxvcpus", "--type", "kvm"]);
    assert!(kvm.trim().parse::<u32>().is_ok_and(|n| n > 0), "{kvm}");
    for cmd in [&["maxvcpus"][..], &["maxvcpus", "--type", "qemu"]] {
        let want = triple(lv.virsh(cmd));
        let got = r.virsh(QEMU, &quiet(cmd));
        assert!(
            got.0 && want.0,
            "{cmd:?}: ours {got:?}, libvirtd's {want:?}"
        );
        assert_eq!(got.1, want.1, "{cmd:?}");
    }

    // not implemented: CPU comparison and baselines, the QEMU command line of a definition
    let dir = tempfile::tempdir().expect("tempdir");
    let cpu = dir.path().join("cpu.xml");
    std::fs::write(&cpu, "<cpu><arch>x86_64</arch><model>qemu64</model></cpu>").expect("cpu.xml");
    let cpu = cpu.to_string_lossy().into_owned();
    for (cmd, api) in [
        ("hypervisor-cpu-compare", "virConnectCompareHypervisorCPU"),
        ("hypervisor-cpu-baseline", "virConnectBaselineHypervisorCPU"),
    ] {
        let err = r.fails(QEMU, &[cmd, &cpu]);
        assert!(
            err.contains(&format!(
                "this function is not supported by the connection driver: {api}"
            )),
            "{cmd}: {err}"
        );
    }
    let dom = dir.path().join("dom.xml");
    std::fs::write(
        &dom,
        "<domain type='qemu'><name>vbhost-native</name><memory>65536</memory>\
         <os><type>hvm</type></os></domain>",
    )
    .expect("dom.xml");
    let err = r.fails(
        QEMU,
        &["domxml-to-native", "qemu-argv", &dom.to_string_lossy()],
    );
    assert!(
        err.contains("not supported by the connection driver: virConnectDomainXMLToNative"),
        "{err}"
    );

    // one more 2 MiB page in node 0's pool through virtbus, seen by libvirtd, put back
    let grown = (sys(nr) + 1).to_string();
    let free = sys(&nr.replace("nr_hugepages", "free_hugepages"));
    let set = r.virsh(QEMU, &["allocpages", "2048", "1", "--cellno", "0", "--add"]);
    let now = sys(nr).to_string();
    let seen = triple(lv.virsh(&["freepages", "--cellno", "0", "--pagesize", "2048"]));
    let restored = r.virsh(QEMU, &["allocpages", "2048", &pool, "--cellno", "0"]);
    assert_eq!(sys(nr).to_string(), pool, "restored: {restored:?}");
    assert!(set.0, "{set:?}");
    assert_eq!(now, grown);
    assert_eq!(seen.1.trim(), format!("2048KiB: {}", free + 1), "{seen:?}");

    // KSM's scan interval, changed through virtbus, seen by libvirtd, put back
    let ksm = "/sys/kernel/mm/ksm/sleep_millisecs";
    let before = sys(ksm);
    let changed = (before + 1).to_string();
    let set = r.virsh(
        QEMU,
        &["node-memory-tune", "--shm-sleep-millisecs", &changed],
    );
    let seen = triple(lv.virsh(&["node-memory-tune"]));
    let restored = r.virsh(
        QEMU,
        &[
            "node-memory-tune",
            "--shm-sleep-millisecs",
            &before.to_string(),
        ],
    );
    assert_eq!(sys(ksm), before, "restored: {restored:?}");
    assert!(set.0, "{set:?}");
    assert!(
        seen.1
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["shm_sleep_millisecs", changed.as_str()]),
        "{seen:?}"
    );
}

#[tokio::test]
async fn test_uri_host_commands_are_libvirts_test_driver() {
    let r = Rpc::start().await;
    // Not compared: plain `maxvcpus`, which virsh takes from the domain capabilities
    // virtbus's test flavor has (libvirt's test driver has none: virsh falls back to
    // virConnectGetMaxVcpus, 32, which an unknown type shows here), and `freecell --all` and
    // `freepages --all`, which walk the cells of the capabilities: virtbus's test flavor
    // shows the host's, libvirt's test driver two made-up ones.
    for cmd in [
        &["maxvcpus", "--type", "bogus"][..],
        &["freecell"],
        &["freecell", "--cellno", "1"],
        &["freecell", "--cellno", "3"],
        &["freepages", "--cellno", "0", "--pagesize", "2048"],
        &["freepages", "--cellno", "1", "--pagesize", "4"],
        &["allocpages", "2048", "0"],
        &["node-memory-tune"],
        &["node-memory-tune", "--shm-sleep-millisecs", "20"],
        &["nodesuspend", "mem", "60"],
        &["nodesevinfo"],
        &["cpu-models", "x86_64"],
        &["cpu-models", "bogus"],
        &["cpu-models", "riscv64"],
        &["domxml-from-native", "qemu-argv", "/etc/hostname"],
        &["domxml-to-native", "qemu-argv", "--xml", "/etc/hostname"],
    ] {
        r.assert_as_libvirt_test(cmd);
    }
    let cells = r.ok(TEST, &["freecell", "--cellno", "1"]);
    assert!(cells.contains("4096 KiB"), "{cells}");
}
