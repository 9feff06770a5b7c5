//! Networks, storage, host interfaces, node devices and statistics through libvirt's RPC
//! protocol, driven by unchanged clients: python3-libvirt replaying virt-manager's start-up
//! and stats polling (`virt_manager.py`), virt-install, virt-xml, and virsh compared with
//! Debian's libvirtd. The daemon runs in a network namespace the test creates, so the
//! network it starts (bridge, nftables, dnsmasq) never touches the host.

use std::{path::Path, process::Command};

use super::{Rpc, guest};
use crate::support::libvirtd::Libvirtd;

const QEMU: &str = "qemu:///system";

/// A network namespace of the test's own, deleted with what runs in it.
pub struct Netns(pub String);

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let name = format!("vbt-{tag}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("ip (package iproute2)")
            .success();
        assert!(ok, "ip netns add {name}");
        Command::new("ip")
            .args(["-n", &name, "link", "set", "lo", "up"])
            .status()
            .expect("ip");
        Netns(name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Ok(out) = Command::new("ip").args(["netns", "pids", &self.0]).output() {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

const LAB: &str = "<network><name>lab</name>\
    <uuid>6c1f7a2e-3d4b-4c5d-8e9f-0a1b2c3d4e5f</uuid><forward mode='nat'/>\
    <bridge name='vbtrpc0'/><mac address='52:54:00:79:00:01'/><ip address='10.79.0.1' prefix='24'><dhcp>\
    <range start='10.79.0.10' end='10.79.0.50'/></dhcp></ip></network>";

fn virt_install(r: &Rpc, name: &str, disk: &Path, extra: &[&str]) -> Command {
    let g = guest::dir();
    let mut c = Command::new("virt-install");
    c.arg("--connect")
        .arg(r.uri(QEMU))
        .args(["--name", name, "--memory", "256", "--vcpus", "1"])
        .arg("--disk")
        .arg(format!("{},bus=virtio", disk.display()))
        .arg("--boot")
        .arg(format!(
            "kernel={},initrd={},kernel_args=console=ttyS0 quiet",
            g.join("vmlinux").display(),
            g.join("initramfs.cpio.gz").display()
        ))
        .args(["--network", "network=lab", "--graphics", "none"])
        .args(["--osinfo", "linux2022", "--noautoconsole"])
        .args(extra);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virt_manager_virt_install_and_virt_xml() {
    let ns = Netns::new("rpcobj");
    let r = Rpc::start_in(&ns.0).await;
    let dir = r.bus.dir.path();

    // a network started in the namespace, a pool, a volume
    let net = dir.join("lab.xml");
    std::fs::write(&net, LAB).expect("write network");
    let net = net.to_string_lossy().into_owned();
    assert!(
        r.ok(QEMU, &["net-define", &net])
            .contains("Network lab defined")
    );
    r.ok(QEMU, &["net-start", "lab"]);
    r.ok(QEMU, &["net-autostart", "lab"]);
    let pool_dir = r.daemon.state.join("images/rp");
    let pool_arg = pool_dir.to_string_lossy().into_owned();
    r.ok(
        QEMU,
        &["pool-define-as", "rp", "dir", "--target", &pool_arg],
    );
    r.ok(QEMU, &["pool-build", "rp"]);
    r.ok(QEMU, &["pool-start", "rp"]);
    let out = r.ok(
        QEMU,
        &[
            "vol-create-as",
            "rp",
            "tiny.qcow2",
            "64M",
            "--format",
            "qcow2",
        ],
    );
    assert!(out.contains("Vol tiny.qcow2 created"), "{out}");
    let disk = pool_dir.join("tiny.qcow2");

    // virt-install --print-xml defines nothing
    let xml = r.client(&mut virt_install(
        &r,
        "tiny",
        &disk,
        &["--import", "--print-xml"],
    ));
    assert!(xml.contains("<domain type=\"qemu\">"), "{xml}");
    assert!(xml.contains(&disk.display().to_string()), "{xml}");
    assert!(xml.contains("<source network=\"lab\"/>"), "{xml}");
    assert!(!r.ok(QEMU, &["list", "--all"]).contains("tiny"));
    // a real import: defined and running
    r.client(&mut virt_install(&r, "tiny", &disk, &["--import"]));
    assert_eq!(r.ok(QEMU, &["domstate", "tiny"]).trim(), "running");
    let info = r.ok(QEMU, &["dominfo", "tiny"]);
    assert!(info.contains("Persistent:     yes"), "{info}");
    // --disk size=N: virt-install makes the volume in the pool
    let out = r.client(
        Command::new("virt-install")
            .arg("--connect")
            .arg(r.uri(QEMU))
            .args(["--name", "sized", "--memory", "128", "--import"])
            .args(["--disk", "size=1,pool=rp,format=qcow2", "--network", "none"])
            .args(["--graphics", "none", "--osinfo", "linux2022", "--print-xml"]),
    );
    assert!(out.contains("sized.qcow2"), "{out}");
    let vols = r.ok(QEMU, &["vol-list", "rp"]);
    assert!(vols.contains("sized.qcow2"), "{vols}");

    // virt-manager's start-up and two ticks of its polling
    let out = r.client(
        Command::new("/usr/bin/python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rpc/virt_manager.py"))
            .arg(r.uri(QEMU))
            .arg("2"),
    );
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["type"], "QEMU");
    assert_eq!(v["domcaps"], true);
    let lab = &v["networks"]["lab"];
    assert_eq!(lab["active"], 1, "{lab}");
    assert_eq!(lab["autostart"], 1, "{lab}");
    assert_eq!(lab["bridge"], "vbtrpc0");
    assert_eq!(lab["by_uuid"], "lab");
    assert_eq!(lab["uuid"], "6c1f7a2e-3d4b-4c5d-8e9f-0a1b2c3d4e5f");
    let rp = &v["pools"]["rp"];
    assert_eq!(rp["active"], 1, "{rp}");
    assert_eq!(rp["info"][0], 2, "running: {rp}");
    let vol = &rp["volumes"]["tiny.qcow2"];
    assert_eq!(vol["path"], disk.display().to_string());
    assert_eq!(vol["by_path"], "tiny.qcow2");
    assert_eq!(vol["pool"], "rp");
    assert_eq!(vol["info"][1], 64 * 1024 * 1024, "{vol}");
    assert_eq!(v["node_device_computer"], true);
    assert!(v["interfaces"]["lo"]["xml"] == true, "{}", v["interfaces"]);
    let tiny = &v["domains"]["tiny"];
    assert_eq!(tiny["info"][0], 1, "running: {tiny}");
    assert_eq!(tiny["info"][1], 262_144);
    assert_eq!(tiny["persistent"], 1);
    assert_eq!(tiny["state"][0], 1);
    for tick in v["polls"].as_array().expect("polls") {
        let all = &tick["all"]["tiny"];
        assert_eq!(all["state.state"], 1, "{all}");
        assert_eq!(all["block.count"], 1, "{all}");
        assert_eq!(all["block.0.name"], "vda");
        assert_eq!(all["net.count"], 1, "{all}");
        assert!(all["cpu.time"].as_u64().unwrap_or(0) > 0, "{all}");
        let per = &tick["tiny"];
        // counters QEMU keeps (the guest may not have read yet): not libvirt's -1
        assert_eq!(per["block"].as_array().map(Vec::len), Some(5), "{per}");
        assert!(per["block"][0].as_i64().unwrap_or(-1) >= 0, "reads: {per}");
        assert!(
            per["block_flags"]["rd_bytes"].as_i64().unwrap_or(-1) >= 0,
            "{per}"
        );
        assert_eq!(per["net"].as_array().map(Vec::len), Some(8), "{per}");
        assert_eq!(per["vcpus"].as_array().map(Vec::len), Some(1), "{per}");
        assert_eq!(per["info"][0], 1);
    }

    // virt-xml edits a device of the definition; the running guest keeps its own
    let out = r.client(
        Command::new("virt-xml")
            .arg("--connect")
            .arg(r.uri(QEMU))
            .args(["tiny", "--edit", "--network", "model=e1000"]),
    );
    assert!(out.contains("defined successfully"), "{out}");
    let inactive = r.ok(QEMU, &["dumpxml", "--inactive", "tiny"]);
    assert!(inactive.contains("<model type='e1000'/>"), "{inactive}");
    let live = r.ok(QEMU, &["dumpxml", "tiny"]);
    assert!(live.contains("<model type='virtio'/>"), "{live}");

    // the network cannot go while it is being used... by virtbus it can; stop the guest first
    r.ok(QEMU, &["destroy", "tiny"]);
    r.ok(QEMU, &["undefine", "tiny"]);
    r.ok(QEMU, &["vol-delete", "--pool", "rp", "tiny.qcow2"]);
    assert!(!r.ok(QEMU, &["vol-list", "rp"]).contains("tiny.qcow2"));
    r.ok(QEMU, &["net-destroy", "lab"]);
    r.ok(QEMU, &["net-undefine", "lab"]);
    assert!(!r.ok(QEMU, &["net-list", "--all"]).contains("lab"));
    // a bad network definition: the model's error, nothing defined
    std::fs::write(
        dir.join("bad.xml"),
        "<network><name>b</name><bogus/></network>",
    )
    .expect("write");
    let bad = dir.join("bad.xml").to_string_lossy().into_owned();
    let e = r.fails(QEMU, &["net-define", &bad]);
    assert!(e.contains("bogus"), "{e}");
    assert!(!r.ok(QEMU, &["net-list", "--all"]).contains(" b "));
    // a read-only connection changes nothing
    let e = r.fails(QEMU, &["-r", "net-define", &net]);
    assert!(e.contains("read only access prevents"), "{e}");
}

/// The lines of a virsh table, without its header.
fn rows(out: &str) -> Vec<String> {
    out.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty() && !l.starts_with("Name") && !l.starts_with("---"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virsh_objects_like_libvirtd() {
    if let Err(why) = Libvirtd::available() {
        panic!("Debian's libvirtd is the oracle here: {why}");
    }
    let lv = Libvirtd::start();
    // no network starts here: both daemons read the host's interfaces and devices
    let r = Rpc::start().await;
    let ours = |args: &[&str]| {
        let mut a = vec!["-q"];
        a.extend_from_slice(args);
        r.ok(QEMU, &a)
    };
    let theirs = |args: &[&str]| {
        let o = lv.virsh(args);
        assert!(
            o.status.success(),
            "libvirtd: virsh {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    // the same definitions on both
    let dir = r.bus.dir.path();
    let net = dir.join("lab.xml");
    std::fs::write(&net, LAB).expect("write network");
    let net = net.to_string_lossy().into_owned();
    for v in [&ours as &dyn Fn(&[&str]) -> String, &theirs] {
        v(&["net-define", &net]);
        v(&["net-autostart", "lab"]);
    }
    assert_eq!(
        rows(&ours(&["net-list", "--all"])),
        rows(&theirs(&["net-list", "--all"]))
    );
    assert_eq!(
        rows(&ours(&["net-list", "--inactive", "--autostart"])),
        rows(&theirs(&["net-list", "--inactive", "--autostart"]))
    );
    assert_eq!(
        ours(&["net-dumpxml", "--inactive", "lab"]),
        theirs(&["net-dumpxml", "--inactive", "lab"])
    );
    assert_eq!(ours(&["net-uuid", "lab"]), theirs(&["net-uuid", "lab"]));
    assert_eq!(
        ours(&["net-name", "6c1f7a2e-3d4b-4c5d-8e9f-0a1b2c3d4e5f"]),
        theirs(&["net-name", "6c1f7a2e-3d4b-4c5d-8e9f-0a1b2c3d4e5f"])
    );
    // pools and volumes: each in its own directory, compared without it
    let our_pool = r.daemon.state.join("images/cmp");
    let their_pool = lv.dir.path().join("cmp-pool");
    for (v, d) in [
        (&ours as &dyn Fn(&[&str]) -> String, &our_pool),
        (&theirs, &their_pool),
    ] {
        let d = d.to_string_lossy().into_owned();
        v(&["pool-define-as", "cmp", "dir", "--target", &d]);
        v(&["pool-build", "cmp"]);
        v(&["pool-start", "cmp"]);
        v(&[
            "vol-create-as",
            "cmp",
            "a.qcow2",
            "16M",
            "--format",
            "qcow2",
        ]);
        v(&["vol-create-as", "cmp", "b.raw", "1M", "--format", "raw"]);
    }
    assert_eq!(
        rows(&ours(&["pool-list", "--all"])),
        rows(&theirs(&["pool-list", "--all"]))
    );
    let strip = |s: String, d: &Path| s.replace(&d.to_string_lossy().into_owned(), "DIR");
    assert_eq!(
        rows(&strip(ours(&["vol-list", "cmp"]), &our_pool)),
        rows(&strip(theirs(&["vol-list", "cmp"]), &their_pool))
    );
    let cap = |out: String| {
        out.lines()
            .filter(|l| l.starts_with("Name") || l.starts_with("Type") || l.starts_with("Capacity"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        cap(ours(&["vol-info", "--pool", "cmp", "a.qcow2"])),
        cap(theirs(&["vol-info", "--pool", "cmp", "a.qcow2"]))
    );
    // node devices: the same host; the computer and every PCI device both list
    let nd_ours = ours(&["nodedev-list", "--cap", "pci"]);
    assert!(!nd_ours.trim().is_empty());
    assert_eq!(nd_ours, theirs(&["nodedev-list", "--cap", "pci"]));
    assert!(ours(&["nodedev-list"]).lines().any(|l| l == "computer"));
    // host interfaces: the same host's, as libvirt's udev backend lists them
    assert_eq!(
        rows(&ours(&["iface-list", "--all"])),
        rows(&theirs(&["iface-list", "--all"]))
    );
}
