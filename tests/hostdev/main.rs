//! libvirt as the oracle for the host's interfaces and node devices: Debian's libvirtd
//! (private, see `support::libvirtd`; its namespace shares this host's /sys) lists and
//! describes them with `virsh`, and virtbus's readers (`virtbus::host`) must give the same
//! names and the same XML, but for the differences kept on purpose:
//! - interfaces: virtbus adds the addresses (`<protocol>`), which libvirt's udev backend
//!   never writes;
//! - net devices: libvirtd, in a network namespace of its own, reads ethtool features only
//!   for its own `lo` (the host's other devices are not in its namespace), so `<feature>`
//!   lines are compared for `lo` alone.

#[path = "../support/mod.rs"]
mod support;

use std::collections::BTreeSet;

use support::libvirtd::Libvirtd;
use virtbus::host::{interfaces, nodedev};

fn virsh_lines(lv: &Libvirtd, args: &[&str]) -> Vec<String> {
    let out = lv.virsh(args);
    assert!(
        out.status.success(),
        "virsh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn virsh_text(lv: &Libvirtd, args: &[&str]) -> String {
    let mut s = virsh_lines(lv, args).join("\n");
    // virsh prints the XML and a blank line after it.
    while s.ends_with('\n') {
        s.pop();
    }
    s + "\n"
}

/// Our interface XML without the `<protocol>` blocks libvirt's udev backend never writes.
fn without_protocols(xml: &str) -> String {
    let mut out = String::new();
    let mut skip = false;
    for l in xml.lines() {
        if l.trim_start().starts_with("<protocol ") {
            skip = true;
        }
        if !skip {
            out.push_str(l);
            out.push('\n');
        }
        if l.trim_start().starts_with("</protocol>") {
            skip = false;
        }
    }
    out
}

#[test]
fn interfaces_and_node_devices_match_libvirt() {
    if let Err(e) = Libvirtd::available() {
        panic!("this test needs Debian's libvirtd: {e}");
    }
    let lv = Libvirtd::start();

    // Interfaces: `virsh -q iface-list --all` gives "Name State MAC" rows.
    let rows = virsh_lines(&lv, &["iface-list", "--all"]);
    let theirs: Vec<(String, bool)> = rows
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_owned(), f[1] == "active")
        })
        .collect();
    let reader = interfaces::Reader::host().unwrap();
    let ours: Vec<(String, bool)> = reader
        .list(interfaces::Filter::default())
        .iter()
        .map(|i| (i.name.clone(), i.active()))
        .collect();
    assert_eq!(ours, theirs, "iface-list --all");
    for (name, _) in &theirs {
        let want = virsh_text(&lv, &["iface-dumpxml", name]);
        let got = reader.read(name).unwrap().to_xml();
        assert_eq!(without_protocols(&got), want, "iface-dumpxml {name}");
    }

    // Node devices.
    let theirs: BTreeSet<String> = virsh_lines(&lv, &["nodedev-list"])
        .into_iter()
        .filter(|l| !l.trim().is_empty())
        .collect();
    let devs = nodedev::Reader::host().list();
    let ours: BTreeSet<String> = devs.iter().map(|d| d.name.clone()).collect();
    assert_eq!(ours, theirs, "nodedev-list");
    for d in &devs {
        let features = |xml: &str| -> String {
            let lo = d.name.starts_with("net_lo_");
            xml.lines()
                .filter(|l| lo || !l.trim_start().starts_with("<feature name="))
                .map(|l| format!("{l}\n"))
                .collect()
        };
        let want = features(&virsh_text(&lv, &["nodedev-dumpxml", &d.name]));
        assert_eq!(features(&d.to_xml()), want, "nodedev-dumpxml {}", d.name);
    }
    // Capability filters as `virsh nodedev-list --cap` applies them.
    for cap in ["system", "pci", "net", "storage", "usb_device", "scsi_host"] {
        let theirs: BTreeSet<String> = virsh_lines(&lv, &["nodedev-list", "--cap", cap])
            .into_iter()
            .filter(|l| !l.trim().is_empty())
            .collect();
        let bit = nodedev::CAP_FLAGS.iter().position(|c| *c == cap).unwrap();
        let ours: BTreeSet<String> = devs
            .iter()
            .filter(|d| nodedev::caps_match(&d.cap_names(), 1 << bit))
            .map(|d| d.name.clone())
            .collect();
        assert_eq!(ours, theirs, "nodedev-list --cap {cap}");
    }
}
