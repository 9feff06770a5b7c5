//! virsh's `setvcpus --live` on a running tiny QEMU guest: vCPUs plugged (`device_add`) and
//! unplugged (`device_del`), seen by QEMU (`query-cpus-fast`) and in the live XML, kept
//! across a daemon restart, and the same commands' outputs and errors equal to Debian's
//! libvirtd running the same guest.

use std::process::Output;

use super::{Rpc, guest, wait_for};
use crate::support::libvirtd::Libvirtd;

const QEMU: &str = "qemu:///system";

/// The tiny guest with two vCPUs, one of them online at start.
fn guest_xml(name: &str, disk: &std::path::Path) -> String {
    guest::domain_xml(name, disk, "").replace(
        "<vcpu>1</vcpu>",
        "<vcpu placement='static' current='1'>2</vcpu>",
    )
}

/// The vCPUs QEMU runs.
fn qemu_cpus(r: &Rpc, dom: &str) -> usize {
    let out = r.ok(
        QEMU,
        &[
            "qemu-monitor-command",
            dom,
            r#"{"execute":"query-cpus-fast"}"#,
        ],
    );
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON");
    v["return"].as_array().expect("array").len()
}

/// The `<vcpu>` and `<vcpus>` lines of a domain XML.
fn vcpu_lines(xml: &str) -> Vec<String> {
    xml.lines()
        .map(str::trim)
        .filter(|l| l.starts_with("<vcpu") || l.starts_with("</vcpus"))
        .map(str::to_owned)
        .collect()
}

/// The commands compared with libvirtd, in order, on the running guest `G` (`XML` compares
/// the live XML's vCPU lines).
const COMPARED: &[&[&str]] = &[
    &["vcpucount", "G"],
    &["setvcpus", "G", "3", "--live"],
    &["setvcpus", "G", "2", "--live"],
    &["XML"],
    &["vcpucount", "G"],
    &["vcpucount", "G", "--live", "--active"],
    &["setvcpus", "G", "2", "--live"],
];

fn outcome(o: Output) -> (bool, String, String) {
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[tokio::test]
async fn setvcpus_live_on_a_running_qemu_guest() {
    if let Err(why) = Libvirtd::available() {
        panic!("Debian's libvirtd is needed as the oracle: {why}");
    }
    let mut r = Rpc::start().await;
    let dir = r.bus.dir.path().to_owned();
    let ours = dir.join("ours.qcow2");
    guest::data_disk(&ours);
    let xml = dir.join("vp.xml");
    std::fs::write(&xml, guest_xml("tiny-vp", &ours)).expect("write xml");
    r.ok(QEMU, &["define", &xml.to_string_lossy()]);
    r.ok(QEMU, &["start", "tiny-vp"]);
    assert_eq!(qemu_cpus(&r, "tiny-vp"), 1);

    let lv = Libvirtd::start();
    let theirs = dir.join("theirs.qcow2");
    guest::data_disk(&theirs);
    let lxml = dir.join("vp-lv.xml");
    std::fs::write(&lxml, guest_xml("tiny-vp", &theirs)).expect("write xml");
    let d = lv.virsh(&["define", &lxml.to_string_lossy()]);
    assert!(d.status.success(), "{d:?}\n{}", lv.log_text());
    let s = lv.virsh(&["start", "tiny-vp"]);
    assert!(s.status.success(), "{s:?}\n{}", lv.log_text());
    for cmd in COMPARED {
        if cmd[0] == "XML" {
            let mine = vcpu_lines(&r.ok(QEMU, &["dumpxml", "tiny-vp"]));
            let o = lv.virsh(&["dumpxml", "tiny-vp"]);
            let libvirt = vcpu_lines(&String::from_utf8_lossy(&o.stdout));
            assert_eq!(mine, libvirt, "live XML: ours (left) differs from libvirtd");
            continue;
        }
        let args: Vec<&str> = cmd
            .iter()
            .map(|a| if *a == "G" { "tiny-vp" } else { a })
            .collect();
        let mine = r.virsh(QEMU, &[&["-q"][..], &args].concat());
        let libvirt = outcome(lv.virsh(&args));
        assert_eq!(
            mine,
            libvirt,
            "virsh {args:?}: ours (left) differs from libvirtd\ndaemon log:\n{}",
            r.daemon.log_text()
        );
    }
    let _ = lv.virsh(&["destroy", "tiny-vp"]);
    drop(lv);

    // seen by QEMU, and kept across a daemon restart
    assert_eq!(qemu_cpus(&r, "tiny-vp"), 2);
    let before = vcpu_lines(&r.ok(QEMU, &["dumpxml", "tiny-vp"]));
    assert!(
        before.contains(&"<vcpu id='1' enabled='yes' hotpluggable='yes' order='2'/>".to_owned()),
        "{before:?}"
    );
    r.daemon.restart(&r.bus).await;
    wait_for(&r.sock, &r.daemon);
    r.ok_eventually(&["vcpucount", "tiny-vp"]);
    assert_eq!(vcpu_lines(&r.ok(QEMU, &["dumpxml", "tiny-vp"])), before);
    r.ok(QEMU, &["destroy", "tiny-vp"]);
    r.ok(QEMU, &["undefine", "tiny-vp"]);
}
