//! vCPU pinning and guest NUMA with real guests: the affinity of QEMU's vCPU, I/O and
//! emulator threads is what `<cputune>` says, and the guest sees the cells `<cpu><numa>`
//! defines, with their distances.

use crate::{
    define_guest_with, guest, guests, qemu_pid, support::proxies::*, support::*, wait_agent,
};

/// `Cpus_allowed_list` of every thread of `pid`, by thread name.
fn affinities(pid: i32) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("tasks")
        .flatten()
    {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
        let allowed = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap_or("")
            .trim()
            .to_owned();
        out.push((comm.trim().to_owned(), allowed));
    }
    out
}

fn allowed_of<'a>(threads: &'a [(String, String)], name: &str) -> &'a str {
    threads
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, a)| a.as_str())
        .unwrap_or_else(|| panic!("no thread '{name}' in {threads:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vcpu_iothread_and_emulator_pinning_is_applied() {
    let _permit = guests(1).await;
    let g = define_guest_with("pinned", "", |xml| {
        xml.replace(
            "<vcpu>1</vcpu>",
            "<vcpu>2</vcpu><iothreads>1</iothreads><cputune>\
             <vcpupin vcpu='0' cpuset='1'/><vcpupin vcpu='1' cpuset='0'/>\
             <emulatorpin cpuset='0'/><iothreadpin iothread='1' cpuset='1'/></cputune>",
        )
    })
    .await;
    let dom = domain(&g.conn, &g.path).await;
    dom.start(no_opts()).await.expect("start");
    let pid = qemu_pid(&g.daemon.runtime, &dom.uuid().await.expect("uuid"));
    let threads = affinities(pid);
    // QEMU names its threads (-name debug-threads=on): one per vCPU under multi-threaded TCG
    assert_eq!(allowed_of(&threads, "CPU 0/TCG"), "1", "{threads:?}");
    assert_eq!(allowed_of(&threads, "CPU 1/TCG"), "0", "{threads:?}");
    assert_eq!(allowed_of(&threads, "IO iothread1"), "1", "{threads:?}");
    // the main thread is the emulator's
    assert_eq!(allowed_of(&threads, "qemu-system-x86"), "0", "{threads:?}");
    let pins = dom.get_vcpu_pinning(no_opts()).await.expect("pinning");
    assert_eq!(pins, [vec![false, true], vec![true, false]]);
    let live = dom.get_xml(no_opts()).await.expect("live");
    assert!(live.contains("<vcpupin vcpu='0' cpuset='1'/>"), "{live}");
    // the guest runs on its pinned vCPUs
    wait_agent(&dom).await;
    dom.destroy(no_opts()).await.expect("destroy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_sees_two_numa_cells() {
    let _permit = guests(1).await;
    let g = define_guest_with("numa", guest::TEST_CHANNEL, |xml| {
        xml.replace(
            "<vcpu>1</vcpu>",
            "<vcpu>2</vcpu><cpu><numa>\
             <cell id='0' cpus='0' memory='128' unit='MiB'>\
             <distances><sibling id='1' value='21'/></distances></cell>\
             <cell id='1' cpus='1' memory='128' unit='MiB'/></numa></cpu>",
        )
    })
    .await;
    let dom = domain(&g.conn, &g.path).await;
    let xml = dom.get_xml(no_opts()).await.expect("xml");
    assert!(xml.contains("<memory unit='KiB'>262144</memory>"), "{xml}");
    assert!(
        xml.contains("<sibling id='0' value='21'/>"),
        "symmetric: {xml}"
    );
    dom.start(no_opts()).await.expect("start");
    wait_agent(&dom).await;
    let live = dom.get_xml(no_opts()).await.expect("live");
    let ga = guest::TestAgent::of(&live).await;
    let nodes = ga
        .sh("ls /sys/devices/system/node | grep '^node'; true")
        .await;
    let nodes: Vec<&str> = nodes.split_whitespace().collect();
    assert_eq!(nodes, ["node0", "node1"]);
    assert_eq!(
        ga.sh("cat /sys/devices/system/node/node0/cpulist")
            .await
            .trim(),
        "0"
    );
    assert_eq!(
        ga.sh("cat /sys/devices/system/node/node1/cpulist")
            .await
            .trim(),
        "1"
    );
    assert_eq!(
        ga.sh("cat /sys/devices/system/node/node1/distance")
            .await
            .trim(),
        "21 10"
    );
    dom.destroy(no_opts()).await.expect("destroy");
}
