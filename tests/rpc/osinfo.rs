//! Definitions that Debian's virt-install, unchanged, writes for the osinfo profiles of Debian
//! 12's osinfo-db (current Linux distributions, BSD, Windows 10/11 and servers, the generic
//! ones), made through our RPC socket: each defines, starts and reaches its firmware.
//!
//! The only edit is `type='kvm'` to `qemu` (this machine runs guests under TCG). Every guest
//! gets a blank 64 MiB qcow2 volume, `--import` (boot from that disk), 512 MiB and one vCPU
//! (the profiles' sizes would only slow TCG down: OVMF with SMM on win11's four TCG vCPUs
//! does not reach its boot manager within minutes, on one it takes seconds). "Reached
//! its firmware" is proven by the guest reading its disk: SeaBIOS reads the boot sector, OVMF
//! probes the partition table. A guest whose CPU never leaves reset, or whose firmware stops
//! before its boot manager, reads nothing (QEMU's own open of the image is not counted in the
//! guest's statistics). Two guests run at a time, in a network namespace of the test's own
//! (virt-install puts each guest on the network `default`).

use std::{
    panic::AssertUnwindSafe,
    path::Path,
    process::Command,
    sync::atomic::{AtomicBool, AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use super::{Rpc, objects::Netns};

const QEMU: &str = "qemu:///system";

/// An isolated `default` with an IPv4 address: without one in the namespace, glibc's
/// getaddrinfo (AI_ADDRCONFIG) refuses SPICE's 127.0.0.1.
const DEFAULT_NET: &str = "<network><name>default</name><bridge name='vbtosi0'/>\
    <ip address='192.168.122.1' prefix='24'/></network>";

/// The pool the guests' disks are made in (virt-install looks their paths up in a pool).
const POOL: &str = "osi";

/// osinfo-db 0.20221130 (Debian 12) profiles: Linux distributions of the time, a BSD,
/// Windows desktops and servers (win11 with UEFI, secure boot and an emulated TPM), and
/// the generic entries.
const PROFILES: &[&str] = &[
    "debian11",
    "ubuntu22.04",
    "ubuntu20.04",
    "fedora37",
    "centos-stream9",
    "rhel9.0",
    "rhel8.6",
    "rocky9",
    "almalinux9",
    "opensuse15.4",
    "opensusetumbleweed",
    "archlinux",
    "alpinelinux3.17",
    "freebsd13.1",
    "win10",
    "win11",
    "win2k16",
    "win2k19",
    "win2k22",
    "linux2022",
    "generic",
];

/// How long a guest may take from start to its first disk read (OVMF with SMM under TCG,
/// beside another guest, is the slow one).
const FIRMWARE: Duration = Duration::from_secs(180);

/// virt-install's definition for `profile`, with `kvm` made `qemu`.
fn definition(r: &Rpc, profile: &str, name: &str, disk: &Path) -> String {
    let xml = r.client(
        Command::new("virt-install")
            .arg("--connect")
            .arg(r.uri(QEMU))
            .args(["--name", name, "--osinfo", profile])
            .args(["--memory", "512", "--vcpus", "1"])
            .arg("--disk")
            .arg(disk)
            .args(["--import", "--noautoconsole", "--print-xml"]),
    );
    let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{profile}: {e}\n{xml}"));
    let ty = doc.root_element().attribute("type").unwrap_or_default();
    assert!(ty == "kvm" || ty == "qemu", "{profile}: type {ty}\n{xml}");
    xml.replacen("<domain type=\"kvm\">", "<domain type=\"qemu\">", 1)
}

/// The target of the domain's one disk.
fn disk_target(xml: &str) -> String {
    let doc = roxmltree::Document::parse(xml).expect("domain XML");
    doc.descendants()
        .find(|n| n.has_tag_name("disk"))
        .and_then(|d| d.children().find(|n| n.has_tag_name("target")))
        .and_then(|t| t.attribute("dev"))
        .expect("a disk target")
        .to_owned()
}

/// The guest's read requests on `dev`.
fn reads(r: &Rpc, name: &str, dev: &str) -> u64 {
    let out = r.ok(QEMU, &["domblkstat", name, dev]);
    out.lines()
        .find_map(|l| l.split_once("rd_req")?.1.trim().parse().ok())
        .unwrap_or_else(|| panic!("no rd_req in {out}"))
}

/// One profile, from virt-install to undefine; what was seen, for the summary.
fn profile(r: &Rpc, profile: &str) -> String {
    let dir = r.bus.dir.path();
    let name = format!("osi-{}", profile.replace('.', "_"));
    let vol = format!("{name}.qcow2");
    r.ok(
        QEMU,
        &["vol-create-as", POOL, &vol, "64M", "--format", "qcow2"],
    );
    let disk = r.daemon.state.join("images").join(POOL).join(&vol);
    let xml = definition(r, profile, &name, &disk);
    let file = dir.join(format!("{name}.xml"));
    std::fs::write(&file, &xml).expect("write definition");
    let (ok, _, err) = r.virsh(QEMU, &["define", &file.to_string_lossy()]);
    assert!(
        ok,
        "{profile}: define failed: {err}\n{xml}\n{}",
        r.daemon.log_text()
    );
    let (ok, _, err) = r.virsh(QEMU, &["start", &name]);
    assert!(
        ok,
        "{profile}: start failed: {err}\n{xml}\n{}",
        r.daemon.log_text()
    );
    let live = r.ok(QEMU, &["dumpxml", &name]);
    let dev = disk_target(&live);
    let t = Instant::now();
    let mut n = reads(r, &name, &dev);
    while n == 0 {
        assert!(
            t.elapsed() < FIRMWARE,
            "{profile}: the guest read nothing from {dev} within {FIRMWARE:?}\n{live}"
        );
        std::thread::sleep(Duration::from_millis(250));
        n = reads(r, &name, &dev);
    }
    let efi = live.contains("<loader ");
    let tpm = live.contains("<tpm ");
    r.ok(QEMU, &["destroy", &name]);
    r.ok(QEMU, &["undefine", "--nvram", &name]);
    r.ok(QEMU, &["vol-delete", &vol, "--pool", POOL]);
    format!(
        "{profile}: {} firmware{} read {dev} after {:.1}s",
        if efi { "UEFI" } else { "BIOS" },
        if tpm { " + TPM" } else { "" },
        t.elapsed().as_secs_f32()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virt_install_osinfo_profiles_define_start_and_reach_firmware() {
    // virt-install gives every guest of qemu:///system a NIC on the network 'default', as a
    // host with libvirt has: an isolated one here, in a namespace of the test's own
    let ns = Netns::new("osinfo");
    let r = Rpc::start_in(&ns.0).await;
    let net = r.bus.dir.path().join("default.xml");
    std::fs::write(&net, DEFAULT_NET).expect("write network");
    r.ok(QEMU, &["net-define", &net.to_string_lossy()]);
    r.ok(QEMU, &["net-start", "default"]);
    let pool = r.daemon.state.join("images").join(POOL);
    let pool = pool.to_string_lossy().into_owned();
    r.ok(QEMU, &["pool-define-as", POOL, "dir", "--target", &pool]);
    r.ok(QEMU, &["pool-build", POOL]);
    r.ok(QEMU, &["pool-start", POOL]);
    let next = AtomicUsize::new(0);
    // a worker that fails stops the other one taking more profiles
    let failed = AtomicBool::new(false);
    let t = Instant::now();
    let seen: Vec<String> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let mut seen = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some(p) = PROFILES.get(i).filter(|_| !failed.load(Ordering::SeqCst))
                        else {
                            return seen;
                        };
                        match std::panic::catch_unwind(AssertUnwindSafe(|| profile(&r, p))) {
                            Ok(l) => seen.push(l),
                            Err(e) => {
                                failed.store(true, Ordering::SeqCst);
                                std::panic::resume_unwind(e);
                            }
                        }
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("worker"))
            .collect()
    });
    for l in &seen {
        eprintln!("{l}");
    }
    eprintln!("{} profiles in {:?}", seen.len(), t.elapsed());
    assert_eq!(seen.len(), PROFILES.len());
    // win11 needs UEFI and a TPM: virt-install asked for both, and both ran
    assert!(
        seen.iter()
            .any(|l| l.starts_with("win11: UEFI firmware + TPM")),
        "{seen:?}"
    );
    assert!(r.ok(QEMU, &["list", "--all", "--name"]).trim().is_empty());
}
