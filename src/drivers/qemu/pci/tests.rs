//! Layouts libvirt 9.0 gives, checked device by device.

use super::super::{caps, defaults};
use crate::model::DomainDef;

/// libvirt's own test input `x86_64-q35-graphics.xml` (its test suite, LGPL-2.1+), and
/// the layout libvirt 9.0 gives it (`qemuxml2xmloutdata`).
#[test]
fn the_layout_libvirt_gives_a_q35_guest() {
    let mut def =
        DomainDef::from_xml(include_str!("../testdata/q35-graphics.xml")).expect("domain");
    defaults::apply(&mut def, &caps::tests::x86_64()).expect("defaults");
    let out = def.to_xml(&Default::default());
    let addr = |bus: u32, slot: u32, f: u32| {
        format!(
            "<address type='pci' domain='0x0000' bus='{bus:#04x}' slot='{slot:#04x}' \
             function='{f:#x}'"
        )
    };
    // each device, then the address libvirt gives it
    for (device, at) in [
        ("<target dev='vda' bus='virtio'/>", addr(4, 0, 0)),
        (
            "<controller type='usb' index='0' model='qemu-xhci' ports='15'>",
            addr(2, 0, 0),
        ),
        ("<controller type='sata' index='0'>", addr(0, 0x1f, 2)),
        ("<controller type='virtio-serial' index='0'>", addr(3, 0, 0)),
        ("<model type='virtio'/>", addr(1, 0, 0)),
        ("<video>", addr(0, 1, 0)),
        ("<memballoon model='virtio'>", addr(5, 0, 0)),
        ("<rng model='virtio'>", addr(6, 0, 0)),
    ] {
        let i = out
            .find(device)
            .unwrap_or_else(|| panic!("{device} in {out}"));
        let next = out[i..].find("<address").expect("an address") + i;
        assert!(out[next..].starts_with(&at), "{device}: {at} in {out}");
    }
    // seven root ports (six used and a spare for hot-plug) as functions of slot 2
    for idx in 1..=7u32 {
        let port = format!(
            "<controller type='pci' index='{idx}' model='pcie-root-port'>\n      \
             <model name='pcie-root-port'/>\n      <target chassis='{idx}' port='{:#x}'/>\n      \
             {}",
            0x10 + idx - 1,
            addr(0, 2, idx - 1)
        );
        assert!(out.contains(&port), "{port} in {out}");
    }
    assert!(!out.contains("index='8'"), "{out}");
    assert!(out.contains("function='0x0' multifunction='on'/>"), "{out}");
}

fn laid_out(machine: &str, devices: &str) -> Result<String, crate::drivers::DriverError> {
    let xml = format!(
        "<domain type='qemu'><name>t</name><memory>65536</memory>\
         <os><type arch='x86_64' machine='{machine}'>hvm</type></os><devices>{devices}</devices>\
         </domain>"
    );
    let mut def = DomainDef::from_xml(&xml).expect("parses");
    defaults::apply(&mut def, &caps::tests::x86_64())?;
    let out = def.to_xml(&Default::default());
    // stable under a second pass, as libvirt's is
    let mut again = DomainDef::from_xml(&out).expect("reparses");
    defaults::apply(&mut again, &caps::tests::x86_64()).expect("again");
    assert_eq!(again.to_xml(&Default::default()), out, "idempotent");
    Ok(out)
}

/// The PCI address following `what` in `out`, as (bus, slot, function).
fn address_of(out: &str, what: &str) -> String {
    let at = out.find(what).unwrap_or_else(|| panic!("{what} in {out}"));
    let rest = &out[at..];
    let a = rest.find("<address type='pci'").expect("an address");
    let end = rest[a..].find("/>").expect("end") + a;
    rest[a..end].to_owned()
}

/// libvirt's `virtio-transitional` test (without its host device and transitional disk,
/// which virtbus has not): conventional PCI devices go behind a pcie-to-pci-bridge on a root
/// port of its own (bus 1), from slot 1, and a spare root port follows.
#[test]
fn transitional_virtio_goes_behind_a_pcie_to_pci_bridge() {
    let out = laid_out(
        "q35",
        "<interface type='user'><mac address='00:11:22:33:44:55'/>\
         <model type='virtio-transitional'/></interface>\
         <rng model='virtio-transitional'><backend model='random'>/dev/urandom</backend></rng>\
         <filesystem type='mount' accessmode='passthrough' model='virtio-transitional'>\
         <source dir='/export/fs1'/><target dir='fs1'/></filesystem>\
         <controller type='virtio-serial' model='virtio-transitional'/>\
         <controller type='scsi' model='virtio-transitional'/>\
         <controller type='usb' model='none'/>\
         <memballoon model='virtio-transitional'/>",
    )
    .expect("lays out");
    let pci = |b: u32, s: u32, f: u32| {
        format!(
            "<address type='pci' domain='0x0000' bus='{b:#04x}' slot='{s:#04x}' function='{f:#x}'"
        )
    };
    for (what, at) in [
        (
            "<controller type='pci' index='1' model='pcie-root-port'>",
            pci(0, 1, 0),
        ),
        (
            "<controller type='pci' index='2' model='pcie-to-pci-bridge'>",
            pci(1, 0, 0),
        ),
        (
            "<controller type='pci' index='3' model='pcie-root-port'>",
            pci(0, 1, 1),
        ),
        ("<filesystem", pci(2, 1, 0)),
        ("<interface", pci(2, 2, 0)),
        ("<controller type='virtio-serial'", pci(2, 3, 0)),
        ("<controller type='scsi'", pci(2, 4, 0)),
        ("<memballoon", pci(2, 5, 0)),
        ("<rng", pci(2, 6, 0)),
    ] {
        assert!(
            address_of(&out, what).starts_with(&at),
            "{what}: {at} in {out}"
        );
    }
    assert!(
        out.contains(
            "<controller type='pci' index='2' model='pcie-to-pci-bridge'>\n      \
             <model name='pcie-pci-bridge'/>"
        ),
        "{out}"
    );
    assert!(!out.contains("index='4'"), "{out}");
}

/// Addresses a definition gives on a bridge's bus are checked against it: slot 0 of a
/// pcie-to-pci-bridge is its own, a root port has slot 0 only, a bus must exist, and two
/// devices in one place are both named.
#[test]
fn user_addresses_on_bridges_are_checked() {
    let bridge = "<controller type='pci' index='1' model='pcie-root-port'/>\
                  <controller type='pci' index='2' model='pcie-to-pci-bridge'/>";
    let nic = |mac: u8, bus: u32, slot: u32| {
        format!(
            "<interface type='user'><mac address='52:54:00:00:00:{mac:02x}'/>\
             <model type='e1000'/><address type='pci' domain='0x0000' bus='{bus:#04x}' \
             slot='{slot:#04x}' function='0x0'/></interface>"
        )
    };
    let e = laid_out("q35", &format!("{bridge}{}", nic(1, 2, 0)))
        .expect_err("slot 0")
        .to_string();
    assert!(
        e.contains("<interface> 1")
            && e.contains("0000:02:00.0")
            && e.contains("pcie-to-pci-bridge"),
        "{e}"
    );
    let e = laid_out("q35", &format!("{bridge}{}", nic(1, 1, 2)))
        .expect_err("root port slot 2")
        .to_string();
    assert!(e.contains("slot must be at most 0"), "{e}");
    let e = laid_out("q35", &format!("{bridge}{}{}", nic(1, 2, 4), nic(2, 2, 4)))
        .expect_err("collision")
        .to_string();
    assert!(
        e.contains("<interface> 2") && e.contains("already in use by <interface> 1"),
        "{e}"
    );
    let out = laid_out("q35", &format!("{bridge}{}", nic(1, 2, 0x1f))).expect("slot 31");
    assert!(out.contains("bus='0x02' slot='0x1f'"), "{out}");
}

/// A q35 guest's e1000 and ICH6 sound share the bridge libvirt adds; the virtio NIC takes a
/// root port; the ICH9 audio stays at 00:1b.0.
#[test]
fn e1000_and_ich6_share_the_bridge() {
    let out = laid_out(
        "q35",
        "<interface type='user'><mac address='52:54:00:00:00:01'/><model type='e1000'/>\
         </interface><interface type='user'><mac address='52:54:00:00:00:02'/>\
         <model type='virtio'/></interface><sound model='ich6'/><sound model='ich9'/>",
    )
    .expect("lays out");
    let bus_of_bridge = address_of(&out, "model='pcie-to-pci-bridge'>");
    assert!(bus_of_bridge.contains("slot='0x00'"), "{out}");
    let idx: u32 = out[..out.find("model='pcie-to-pci-bridge'>").expect("bridge")]
        .rsplit("index='")
        .next()
        .and_then(|s| s.split('\'').next())
        .and_then(|s| s.parse().ok())
        .expect("index");
    assert!(
        address_of(&out, "<model type='e1000'/>")
            .contains(&format!("bus='{idx:#04x}' slot='0x01'")),
        "{out}"
    );
    assert!(
        address_of(&out, "<sound model='ich6'>").contains(&format!("bus='{idx:#04x}' slot='0x02'")),
        "{out}"
    );
    assert!(
        address_of(&out, "<sound model='ich9'>").contains("bus='0x00' slot='0x1b'"),
        "{out}"
    );
    assert!(
        !address_of(&out, "<model type='virtio'/>").contains(&format!("bus='{idx:#04x}'")),
        "{out}"
    );
}
