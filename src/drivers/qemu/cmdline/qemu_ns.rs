//! libvirt's QEMU namespace beyond `<qemu:commandline>`: `<qemu:capabilities>` adds devices
//! to, or takes them from, what the emulator was probed to have (virtbus's capabilities are
//! its device list, so only libvirt's device capabilities have a meaning here), and
//! `<qemu:override>` sets or removes properties of the `-device` whose id is the alias.

use super::{CmdlineError, Result};
use crate::drivers::qemu::caps::Caps;
use crate::model::qemu_ns::{OverrideType, QemuTweaks};

/// The probed capabilities with the definition's additions and deletions; a name virtbus
/// has no equivalent for is refused by name.
pub(super) fn adjusted_caps(caps: &Caps, t: &QemuTweaks) -> Result<Option<Caps>> {
    let Some(c) = &t.capabilities else {
        return Ok(None);
    };
    let mut out = caps.clone();
    for (names, add) in [(&c.add, true), (&c.del, false)] {
        for name in names {
            let devices: Vec<&str> = DEVICE_CAPS
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, d)| *d)
                .collect();
            if devices.is_empty() {
                return Err(CmdlineError::NotSupported(format!(
                    "<qemu:capabilities><qemu:{} capability='{name}'>: virtbus has no \
                     equivalent of this libvirt capability (only device capabilities, which \
                     add or remove a QEMU device type, are understood)",
                    if add { "add" } else { "del" }
                )));
            }
            for d in devices {
                if add {
                    if !out.has_device(d) {
                        out.devices.push(d.to_owned());
                    }
                } else {
                    out.devices.retain(|x| x != d);
                }
            }
        }
    }
    out.devices.sort();
    Ok(Some(out))
}

/// Split a `-device` value at its unescaped commas (`,,` is a literal comma).
fn split(v: &str) -> Vec<String> {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut chars = v.chars().peekable();
    while let Some(c) = chars.next() {
        if c != ',' {
            cur.push(c);
        } else if chars.peek() == Some(&',') {
            chars.next();
            cur.push_str(",,");
        } else {
            parts.push(std::mem::take(&mut cur));
        }
    }
    parts.push(cur);
    parts
}

/// Apply `<qemu:override>` to the `-device` arguments; an alias no device has is refused.
pub(super) fn apply_overrides(args: &mut [String], t: &QemuTweaks) -> Result<()> {
    let Some(list) = &t.overrides else {
        return Ok(());
    };
    for d in list {
        let what = format!("<qemu:override><qemu:device alias='{}'>", d.alias);
        let id = format!("id={}", d.alias.replace(',', ",,"));
        let at = (1..args.len()).find(|&i| {
            args[i - 1] == "-device" && split(&args[i]).iter().skip(1).any(|p| *p == id)
        });
        let Some(i) = at else {
            return Err(CmdlineError::Invalid(format!(
                "{what}: no device has this alias"
            )));
        };
        let Some(props) = &d.frontend else { continue };
        let mut parts = split(&args[i]);
        for p in props {
            let key = format!("{}=", p.name);
            let pos = parts
                .iter()
                .skip(1)
                .position(|x| x.starts_with(&key))
                .map(|j| j + 1);
            let value = p.value.as_deref().unwrap_or_default();
            let new = match p.kind {
                OverrideType::Remove => None,
                OverrideType::String => Some(value.replace(',', ",,")),
                OverrideType::Signed | OverrideType::Unsigned => Some(value.to_owned()),
                OverrideType::Bool => Some(if value == "true" { "on" } else { "off" }.to_owned()),
            };
            match (pos, new) {
                (Some(j), Some(v)) => parts[j] = format!("{key}{v}"),
                (None, Some(v)) => parts.push(format!("{key}{v}")),
                (Some(j), None) => {
                    parts.remove(j);
                }
                (None, None) => {}
            }
        }
        args[i] = parts.join(",");
    }
    Ok(())
}

/// libvirt 9.0's capability names for QEMU device types (its object-type table), and the
/// device each stands for in the probed device list.
pub(super) const DEVICE_CAPS: &[(&str, &str)] = &[
    ("hda-duplex", "hda-duplex"),
    ("hda-micro", "hda-micro"),
    ("ccid-emulated", "ccid-card-emulated"),
    ("ccid-passthru", "ccid-card-passthru"),
    ("piix3-usb-uhci", "piix3-usb-uhci"),
    ("piix4-usb-uhci", "piix4-usb-uhci"),
    ("usb-ehci", "usb-ehci"),
    ("ich9-usb-ehci1", "ich9-usb-ehci1"),
    ("vt82c686b-usb-uhci", "vt82c686b-usb-uhci"),
    ("pci-ohci", "pci-ohci"),
    ("nec-usb-xhci", "nec-usb-xhci"),
    ("usb-redir", "usb-redir"),
    ("usb-hub", "usb-hub"),
    ("ich9-ahci", "ich9-ahci"),
    ("virtio-ccw", "virtio-blk-ccw"),
    ("s390-sclp", "sclpconsole"),
    ("lsi", "lsi53c895a"),
    ("virtio-scsi-pci", "virtio-scsi-pci"),
    ("virtio-scsi-pci", "virtio-scsi-ccw"),
    ("virtio-scsi-pci", "virtio-scsi-device"),
    ("megasas", "megasas"),
    ("qxl", "qxl"),
    ("scsi-block", "scsi-block"),
    ("VGA", "VGA"),
    ("cirrus-vga", "cirrus-vga"),
    ("vmware-svga", "vmware-svga"),
    ("usb-serial", "usb-serial"),
    ("virtio-rng", "virtio-rng-pci"),
    ("virtio-rng", "virtio-rng-ccw"),
    ("virtio-rng", "virtio-rng-device"),
    ("rng-random", "rng-random"),
    ("rng-egd", "rng-egd"),
    ("nvram", "spapr-nvram"),
    ("pci-bridge", "pci-bridge"),
    ("vfio-pci", "vfio-pci"),
    ("dmi-to-pci-bridge", "i82801b11-bridge"),
    ("usb-storage", "usb-storage"),
    ("virtio-mmio", "virtio-mmio"),
    ("ich9-intel-hda", "ich9-intel-hda"),
    ("pvpanic", "pvpanic"),
    ("usb-kbd", "usb-kbd"),
    ("usb-audio", "usb-audio"),
    ("iothread", "iothread"),
    ("ivshmem", "ivshmem"),
    ("pc-dimm", "pc-dimm"),
    ("pci-serial", "pci-serial"),
    ("gpex-pcihost", "gpex-pcihost"),
    ("ioh3420", "ioh3420"),
    ("x3130-upstream", "x3130-upstream"),
    ("xio3130-downstream", "xio3130-downstream"),
    ("rtl8139", "rtl8139"),
    ("e1000", "e1000"),
    ("virtio-net", "virtio-net-pci"),
    ("virtio-net", "virtio-net-ccw"),
    ("virtio-net", "virtio-net-device"),
    ("virtio-gpu", "virtio-gpu-pci"),
    ("virtio-gpu", "virtio-gpu-device"),
    ("virtio-vga", "virtio-vga"),
    ("virtio-keyboard", "virtio-keyboard-device"),
    ("virtio-keyboard", "virtio-keyboard-pci"),
    ("virtio-mouse", "virtio-mouse-device"),
    ("virtio-mouse", "virtio-mouse-pci"),
    ("virtio-tablet", "virtio-tablet-device"),
    ("virtio-tablet", "virtio-tablet-pci"),
    ("virtio-input-host", "virtio-input-host-device"),
    ("virtio-input-host", "virtio-input-host-pci"),
    ("mptsas1068", "mptsas1068"),
    ("pxb", "pxb"),
    ("pxb-pcie", "pxb-pcie"),
    ("intel-iommu", "intel-iommu"),
    ("ivshmem-plain", "ivshmem-plain"),
    ("ivshmem-doorbell", "ivshmem-doorbell"),
    ("vhost-scsi", "vhost-scsi"),
    ("nvdimm", "nvdimm"),
    ("pcie-root-port", "pcie-root-port"),
    ("qemu-xhci", "qemu-xhci"),
    ("spapr-pci-host-bridge", "spapr-pci-host-bridge"),
    ("vmcoreinfo", "vmcoreinfo"),
    ("spapr-vty", "spapr-vty"),
    ("sclplmconsole", "sclplmconsole"),
    ("isa-serial", "isa-serial"),
    ("pl011", "pl011"),
    ("virtio-gpu-ccw", "virtio-gpu-ccw"),
    ("virtio-keyboard-ccw", "virtio-keyboard-ccw"),
    ("virtio-mouse-ccw", "virtio-mouse-ccw"),
    ("virtio-tablet-ccw", "virtio-tablet-ccw"),
    ("pcie-pci-bridge", "pcie-pci-bridge"),
    ("pr-manager-helper", "pr-manager-helper"),
    ("vfio-ccw", "vfio-ccw"),
    ("hda-output", "hda-output"),
    ("vmgenid", "vmgenid"),
    ("vhost-vsock", "vhost-vsock-device"),
    ("mch", "mch"),
    ("sev-guest", "sev-guest"),
    ("vfio-ap", "vfio-ap"),
    ("zpci", "zpci"),
    ("memory-backend-memfd", "memory-backend-memfd"),
    ("virtio-pci-non-transitional", "virtio-blk-pci-transitional"),
    (
        "virtio-pci-non-transitional",
        "virtio-blk-pci-non-transitional",
    ),
    ("virtio-pci-non-transitional", "virtio-net-pci-transitional"),
    (
        "virtio-pci-non-transitional",
        "virtio-net-pci-non-transitional",
    ),
    ("virtio-pci-non-transitional", "vhost-scsi-pci-transitional"),
    (
        "virtio-pci-non-transitional",
        "vhost-scsi-pci-non-transitional",
    ),
    ("virtio-pci-non-transitional", "virtio-rng-pci-transitional"),
    (
        "virtio-pci-non-transitional",
        "virtio-rng-pci-non-transitional",
    ),
    ("virtio-pci-non-transitional", "virtio-9p-pci-transitional"),
    (
        "virtio-pci-non-transitional",
        "virtio-9p-pci-non-transitional",
    ),
    (
        "virtio-pci-non-transitional",
        "virtio-balloon-pci-transitional",
    ),
    (
        "virtio-pci-non-transitional",
        "virtio-balloon-pci-non-transitional",
    ),
    (
        "virtio-pci-non-transitional",
        "vhost-vsock-pci-transitional",
    ),
    (
        "virtio-pci-non-transitional",
        "vhost-vsock-pci-non-transitional",
    ),
    (
        "virtio-pci-non-transitional",
        "virtio-scsi-pci-transitional",
    ),
    (
        "virtio-pci-non-transitional",
        "virtio-scsi-pci-non-transitional",
    ),
    (
        "virtio-pci-non-transitional",
        "virtio-serial-pci-transitional",
    ),
    (
        "virtio-pci-non-transitional",
        "virtio-serial-pci-non-transitional",
    ),
    ("x86-max-cpu", "max-x86_64-cpu"),
    ("bochs-display", "bochs-display"),
    ("dbus-vmstate", "dbus-vmstate"),
    ("vhost-user-gpu", "vhost-user-gpu"),
    ("vhost-user-vga", "vhost-user-vga"),
    ("ramfb", "ramfb"),
    ("arm-max-cpu", "max-arm-cpu"),
    ("i8042", "i8042"),
    ("rng-builtin", "rng-builtin"),
    ("tpm-spapr", "tpm-spapr"),
    ("vhost-user-fs", "vhost-user-fs-device"),
    ("tcg", "tcg-accel"),
    ("pvscsi", "pvscsi"),
    ("spapr-tpm-proxy", "spapr-tpm-proxy"),
    ("machine-vmport-opt", "vmport"),
    ("ncr53c90", "esp"),
    ("dc390", "dc390"),
    ("am53c974", "am53c974"),
    ("virtio-pmem-pci", "virtio-pmem-pci"),
    ("vhost-user-blk", "vhost-user-blk"),
    ("input-linux", "input-linux"),
    ("virtio-gpu-gl-pci", "virtio-gpu-gl-pci"),
    ("virtio-vga-gl", "virtio-vga-gl"),
    ("s390-pv-guest", "s390-pv-guest"),
    ("virtio-mem-pci", "virtio-mem-pci"),
    ("virtio-iommu-pci", "virtio-iommu-pci"),
    ("sgx-epc", "sgx-epc"),
    ("thread-context", "thread-context"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::qemu_ns::{DeviceOverride, OverrideProperty, QemuCapabilities};

    fn prop(name: &str, kind: OverrideType, value: Option<&str>) -> OverrideProperty {
        OverrideProperty {
            name: name.into(),
            kind,
            value: value.map(str::to_owned),
        }
    }

    #[test]
    fn overrides_set_replace_and_remove_properties() {
        let mut args: Vec<String> = [
            "-device",
            "virtio-net-pci,netdev=hostnet0,id=net0,mac=52:54:00:00:00:01,bus=pci.1,addr=0x0",
            "-device",
            "e1000,id=net1,romfile=",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let t = QemuTweaks {
            capabilities: None,
            overrides: Some(vec![DeviceOverride {
                alias: "net0".into(),
                frontend: Some(vec![
                    prop("mac", OverrideType::String, Some("52:54:00:aa:bb:cc")),
                    prop("host_mtu", OverrideType::Unsigned, Some("9000")),
                    prop("x-s", OverrideType::Signed, Some("-3")),
                    prop("rx_queue_size", OverrideType::Remove, None),
                    prop("addr", OverrideType::Remove, None),
                    prop("romfile", OverrideType::String, Some("a,b")),
                    prop("csum", OverrideType::Bool, Some("false")),
                ]),
            }]),
        };
        apply_overrides(&mut args, &t).expect("applies");
        assert_eq!(
            args[1],
            "virtio-net-pci,netdev=hostnet0,id=net0,mac=52:54:00:aa:bb:cc,bus=pci.1,\
             host_mtu=9000,x-s=-3,romfile=a,,b,csum=off"
        );
        assert_eq!(args[3], "e1000,id=net1,romfile=");

        let missing = QemuTweaks {
            capabilities: None,
            overrides: Some(vec![DeviceOverride {
                alias: "ua-nope".into(),
                frontend: None,
            }]),
        };
        let e = apply_overrides(&mut args, &missing).expect_err("no such alias");
        assert!(e.to_string().contains("alias='ua-nope'"), "{e}");
    }

    /// Through the whole command line: the override reaches the NIC's `-device`, and a
    /// device capability taken away makes the bridge the e1000 needs unavailable.
    #[test]
    fn the_namespace_changes_the_command_line() {
        use super::super::{Accel, tests::build_with};
        use crate::drivers::qemu::{caps::tests::x86_64, defaults};
        let define = |ns: &str| {
            let xml = format!(
                "<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\
                 <name>t</name><memory>65536</memory><os><type machine='q35'>hvm</type></os>\
                 <devices><interface type='user'><mac address='52:54:00:00:00:01'/>\
                 <model type='e1000'/></interface></devices>{ns}</domain>"
            );
            let mut d = crate::model::DomainDef::from_xml(&xml).expect("parses");
            defaults::apply(&mut d, &x86_64()).expect("defaults");
            build_with(&d, &x86_64(), Accel::Tcg)
        };
        let plan = define(
            "<qemu:override><qemu:device alias='net0'><qemu:frontend>\
             <qemu:property name='mac' type='string' value='52:54:00:aa:bb:cc'/>\
             <qemu:property name='x-pcie-lnksta-dllla' type='bool' value='true'/>\
             </qemu:frontend></qemu:device></qemu:override>",
        )
        .expect("builds");
        let a = plan.args.join(" ");
        assert!(
            a.contains("e1000,netdev=hostnet0,id=net0,mac=52:54:00:aa:bb:cc,")
                && a.contains(",x-pcie-lnksta-dllla=on"),
            "{a}"
        );
        let e = define(
            "<qemu:capabilities><qemu:del capability='pcie-pci-bridge'/></qemu:capabilities>",
        )
        .expect_err("no bridge device");
        assert!(
            matches!(&e, CmdlineError::NotSupported(m) if m.contains("'pcie-pci-bridge'")),
            "{e}"
        );
        let e = define("<qemu:override><qemu:device alias='net9'/></qemu:override>")
            .expect_err("no such device");
        assert!(e.to_string().contains("alias='net9'"), "{e}");
    }

    #[test]
    fn capabilities_add_and_remove_devices_and_refuse_the_rest() {
        let caps = crate::drivers::qemu::caps::tests::x86_64();
        let t = QemuTweaks {
            capabilities: Some(QemuCapabilities {
                add: vec!["virtio-vga-gl".into()],
                del: vec!["pcie-pci-bridge".into(), "lsi".into()],
            }),
            overrides: None,
        };
        let c = adjusted_caps(&caps, &t).expect("known").expect("changed");
        assert!(c.has_device("virtio-vga-gl"));
        assert!(!c.has_device("pcie-pci-bridge"));
        assert!(!c.has_device("lsi53c895a"));
        let bad = QemuTweaks {
            capabilities: Some(QemuCapabilities {
                add: vec!["blockdev".into()],
                del: vec![],
            }),
            overrides: None,
        };
        let e = adjusted_caps(&caps, &bad).expect_err("no equivalent");
        assert!(
            matches!(&e, CmdlineError::NotSupported(m) if m.contains("capability='blockdev'")),
            "{e}"
        );
    }
}
