//! Platform devices in a real guest: an ISA panic device and ivshmem shared memory.

use crate::{
    BOOT, define_guest, guest, guests,
    support::{no_opts, proxies::domain},
    until, wait_agent,
};

/// The guest finds the panic device in its ACPI tables and the ivshmem device on its PCI
/// bus (vendor 1af4, device 1110), the host holds the shared memory in /dev/shm while the
/// guest runs, and the live definition names both devices as libvirt does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_and_shared_memory_reach_the_guest() {
    let _permit = guests(1).await;
    let shm = format!("vb-test-{}", std::process::id());
    let extra = format!(
        "{}<panic model='isa'><address type='isa' iobase='0x505'/></panic>\
         <shmem name='{shm}'><model type='ivshmem-plain'/><size unit='M'>2</size></shmem>",
        guest::TEST_CHANNEL
    );
    let g = define_guest("platform", &extra).await;
    let dom = domain(&g.conn, &g.path).await;
    dom.start(no_opts()).await.expect("start");
    wait_agent(&dom).await;
    let live = dom.get_xml(no_opts()).await.expect("live");
    assert!(live.contains("<alias name='shmem0'/>"), "{live}");
    let host = std::path::Path::new("/dev/shm").join(&shm);
    let len = std::fs::metadata(&host).expect("host shared memory").len();
    assert_eq!(len, 2 << 20, "{}", host.display());
    let ga = guest::TestAgent::of(&live).await;
    until("the guest lists its PCI devices", BOOT, async || {
        ga.try_sh("ls /sys/bus/pci/devices").await.is_ok()
    })
    .await;
    let ids = ga
        .sh("for d in /sys/bus/pci/devices/*; do echo $(cat $d/vendor):$(cat $d/device); done")
        .await;
    assert!(
        ids.lines().any(|l| l == "0x1af4:0x1110"),
        "no ivshmem in\n{ids}"
    );
    let acpi = ga.sh("ls /sys/bus/acpi/devices").await;
    assert!(acpi.contains("QEMU0001"), "no pvpanic in\n{acpi}");
    dom.destroy(no_opts()).await.expect("destroy");
    let _ = std::fs::remove_file(&host);
}
