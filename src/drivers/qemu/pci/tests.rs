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
