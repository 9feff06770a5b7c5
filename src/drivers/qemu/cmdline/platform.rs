//! Platform devices: `<panic>`, `<shmem>`, `<iommu>` and `<vsock>`, as libvirt 9.0 builds
//! them for QEMU 7.2.

use super::{Builder, CmdlineError, Result, alias, esc, on_off, pci_addr, unsupported};
use crate::model::{
    AddressType, DomainDef,
    devices::{IommuModel, PanicModel, ShmemModel, ShmemRole, VsockModel},
};

/// `-device pvpanic` for each ISA panic device, and for `<on_crash>` when none is defined
/// (without one the guest's panics go unseen). Whether the guest's panics pause it for the
/// core to apply `<on_crash>`.
pub(super) fn panics(b: &mut Builder<'_>, def: &DomainDef) -> Result<()> {
    let mut isa = 0;
    for p in &def.devices.panics {
        let model = p.model.unwrap_or(PanicModel::Isa);
        let what = format!("<panic model='{model}'>");
        match model {
            PanicModel::Isa => {
                isa += 1;
                if isa > 1 {
                    return Err(CmdlineError::Invalid(format!(
                        "{what}: only one ISA panic device fits a machine"
                    )));
                }
                b.need("pvpanic", &what)?;
                let port = match &p.info.address {
                    None => None,
                    Some(a) if a.kind == AddressType::Isa => {
                        match a.get("iobase").map(super::parse_num) {
                            None => None,
                            Some(Some(n)) if n <= 0xffff => Some(n),
                            Some(_) => {
                                return Err(CmdlineError::Invalid(format!(
                                    "{what}: iobase '{}' is not an I/O port",
                                    a.get("iobase").unwrap_or_default()
                                )));
                            }
                        }
                    }
                    Some(a) => {
                        return Err(CmdlineError::Invalid(format!(
                            "{what}: address type '{}' (an ISA panic device takes an 'isa' \
                             address)",
                            a.kind
                        )));
                    }
                };
                b.device(match port {
                    Some(n) => format!("pvpanic,ioport={n}"),
                    None => "pvpanic".to_owned(),
                });
            }
            // Hyper-V's crash MSRs are a CPU feature, which the CPU options carry.
            PanicModel::Hyperv => {}
            PanicModel::Pseries | PanicModel::S390 => {
                return unsupported(format!("{what} on {}", b.env.caps.arch));
            }
        }
    }
    if def.on_crash.is_some() || !def.devices.panics.is_empty() {
        if isa == 0
            && !def
                .devices
                .panics
                .iter()
                .any(|p| p.model == Some(PanicModel::Hyperv))
        {
            b.need(
                "pvpanic",
                "<on_crash> (needs a pvpanic device to see panics)",
            )?;
            b.device("pvpanic");
        }
        b.arg("-action", "panic=pause");
    }
    Ok(())
}

/// The `hv-crash` CPU property a Hyper-V panic device stands for.
pub(super) fn hyperv_crash(def: &DomainDef) -> bool {
    def.devices
        .panics
        .iter()
        .any(|p| p.model == Some(PanicModel::Hyperv))
}

/// Shared memory: a file in `/dev/shm` behind `ivshmem-plain`, or an ivshmem server's
/// socket behind `ivshmem-doorbell`.
pub(super) fn shmems(b: &mut Builder<'_>, def: &DomainDef) -> Result<()> {
    for (i, s) in def.devices.shmems.iter().enumerate() {
        let model = s.model.unwrap_or(ShmemModel::Ivshmem);
        let what = format!("<shmem name='{}'>", s.name);
        if s.info.address.is_none() && b.q35 {
            return unsupported(format!(
                "{what}: an ivshmem device is conventional PCI, which needs a PCI address on \
                 this machine"
            ));
        }
        let a = alias(&s.info, format!("shmem{i}"));
        let addr = pci_addr(&s.info, &what)?;
        match model {
            ShmemModel::Ivshmem => {
                return unsupported(format!(
                    "{what}: model 'ivshmem' (QEMU {} has only ivshmem-plain and \
                     ivshmem-doorbell)",
                    b.env.caps.version
                ));
            }
            ShmemModel::IvshmemPlain => {
                if s.server.is_some() {
                    return Err(CmdlineError::Invalid(format!(
                        "{what}: model 'ivshmem-plain' takes no <server>"
                    )));
                }
                b.need("ivshmem-plain", &what)?;
                let size = s.size.unwrap_or(4 << 20);
                let mem = format!("shmmem-{a}");
                b.arg(
                    "-object",
                    format!(
                        "memory-backend-file,id={mem},mem-path=/dev/shm/{},size={size},share=on",
                        esc(&s.name)
                    ),
                );
                let mut dev = format!("ivshmem-plain,id={a},memdev={mem}");
                if let Some(r) = s.role {
                    dev.push_str(&format!(",master={}", on_off(r == ShmemRole::Master)));
                }
                dev.push_str(&addr);
                b.device(dev);
            }
            ShmemModel::IvshmemDoorbell => {
                let Some(server) = &s.server else {
                    return Err(CmdlineError::Invalid(format!(
                        "{what}: model 'ivshmem-doorbell' needs a <server>"
                    )));
                };
                if s.size.is_some() {
                    return Err(CmdlineError::Invalid(format!(
                        "{what}: model 'ivshmem-doorbell' takes its size from the server, not \
                         <size>"
                    )));
                }
                b.need("ivshmem-doorbell", &what)?;
                let path = match &server.path {
                    Some(p) => p.clone(),
                    None => super::socket_path(b.env.dir.join(format!("shmem-{}-sock", s.name)))?
                        .display()
                        .to_string(),
                };
                let chr = format!("char{a}");
                let mut dev = format!("ivshmem-doorbell,id={a},chardev={chr}");
                if let Some(r) = s.role {
                    dev.push_str(&format!(",master={}", on_off(r == ShmemRole::Master)));
                }
                let msi = s.msi.unwrap_or_default();
                if let Some(v) = msi.vectors {
                    dev.push_str(&format!(",vectors={v}"));
                }
                dev.push_str(&format!(
                    ",ioeventfd={}",
                    on_off(msi.ioeventfd.unwrap_or(true))
                ));
                dev.push_str(&addr);
                b.device(dev);
                b.arg("-chardev", format!("socket,id={chr},path={}", esc(&path)));
            }
        }
        b.live.devices.shmems[i].info.alias = Some(a);
    }
    Ok(())
}

/// An emulated IOMMU: Intel's VT-d on q35, or virtio-iommu.
pub(super) fn iommu(b: &mut Builder<'_>, def: &DomainDef) -> Result<()> {
    let Some(m) = &def.devices.iommu else {
        return Ok(());
    };
    let what = format!("<iommu model='{}'>", m.model);
    let a = alias(&m.info, "iommu0".into());
    let d = m.driver.unwrap_or_default();
    match m.model {
        IommuModel::Intel => {
            if !b.q35 {
                return unsupported(format!("{what}: Intel's IOMMU needs a q35 machine"));
            }
            if d.eim == Some(true) && d.intremap != Some(true) {
                return Err(CmdlineError::Invalid(format!(
                    "{what}: eim='on' needs intremap='on'"
                )));
            }
            b.need("intel-iommu", &what)?;
            let mut s = format!("intel-iommu,id={a}");
            for (k, v) in [
                ("intremap", d.intremap),
                ("caching-mode", d.caching_mode),
                ("eim", d.eim),
                ("device-iotlb", d.iotlb),
            ] {
                if let Some(on) = v {
                    s.push_str(&format!(",{k}={}", on_off(on)));
                }
            }
            if let Some(bits) = d.aw_bits {
                if bits != 39 && bits != 48 {
                    return Err(CmdlineError::Invalid(format!(
                        "{what}: aw_bits '{bits}' (QEMU's Intel IOMMU has 39 or 48)"
                    )));
                }
                s.push_str(&format!(",aw-bits={bits}"));
            }
            b.device(s);
        }
        IommuModel::Virtio => {
            if d != Default::default() {
                return unsupported(format!("{what}: <driver> options (Intel's IOMMU only)"));
            }
            b.need("virtio-iommu-pci", &what)?;
            let addr = pci_addr(&m.info, &what)?;
            b.device(format!("virtio-iommu-pci,id={a}{addr}"));
        }
        IommuModel::Smmuv3 => {
            return unsupported(format!("{what} on {}", b.env.caps.arch));
        }
    }
    if let Some(live) = b.live.devices.iommu.as_mut() {
        live.info.alias = Some(a);
    }
    Ok(())
}

/// The guest's end of a host-guest socket; the context id was settled at start.
pub(super) fn vsock(b: &mut Builder<'_>, def: &DomainDef) -> Result<()> {
    let Some(v) = &def.devices.vsock else {
        return Ok(());
    };
    let model = v.model.unwrap_or(VsockModel::Virtio);
    let what = format!("<vsock model='{model}'>");
    let dev = match model {
        VsockModel::Virtio => "vhost-vsock-pci",
        VsockModel::VirtioTransitional => "vhost-vsock-pci-transitional",
        VsockModel::VirtioNonTransitional => "vhost-vsock-pci-non-transitional",
    };
    b.need(dev, &what)?;
    let a = alias(&v.info, "vsock0".into());
    // `cid auto` is resolved into an address before the command line is built; the check
    // at define time stands in the lowest guest cid
    let cid = v.cid.unwrap_or(3);
    let addr = pci_addr(&v.info, &what)?;
    b.device(format!("{dev},id={a},guest-cid={cid}{addr}"));
    if let Some(live) = b.live.devices.vsock.as_mut() {
        live.info.alias = Some(a);
        live.cid = Some(cid);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::drivers::qemu::cmdline::tests::{build_with, parse_error};
    use crate::drivers::qemu::{
        caps::tests::x86_64,
        cmdline::{Accel, CmdlineError, Plan},
        defaults,
    };
    use crate::model::DomainDef;

    /// A definition with `devices`, through the QEMU driver's defaults.
    fn defined(machine: &str, devices: &str) -> DomainDef {
        let xml = format!(
            "<domain type='qemu'><name>t</name><uuid>00000000-0000-4000-8000-000000000001</uuid>\
             <memory unit='MiB'>64</memory><os><type machine='{machine}'>hvm</type></os>\
             <devices>{devices}</devices></domain>"
        );
        let mut def = DomainDef::from_xml(&xml).unwrap_or_else(|e| panic!("{e}: {xml}"));
        defaults::apply(&mut def, &x86_64()).expect("defaults");
        def
    }

    fn plan(def: &DomainDef) -> Result<Plan, CmdlineError> {
        let caps = x86_64();
        build_with(def, &caps, Accel::Tcg)
    }

    fn args(def: &DomainDef) -> String {
        plan(def).expect("builds").args.join(" ")
    }

    fn xml(def: &DomainDef) -> String {
        def.to_xml(&Default::default())
    }

    /// libvirt's `shmem-plain-doorbell` test: its canonical XML and QEMU 7.2 arguments
    /// (libvirt writes `bus=pci.0`, which is QEMU's default bus here).
    #[test]
    fn shmem_as_libvirt() {
        let def = defined(
            "pc",
            "<shmem name='shmem0'><model type='ivshmem-plain'/></shmem>\
             <shmem name='shmem1' role='peer'><model type='ivshmem-plain'/>\
             <size unit='M'>128</size></shmem>\
             <shmem name='shmem2' role='master'><model type='ivshmem-plain'/>\
             <size unit='M'>256</size>\
             <address type='pci' domain='0x0000' bus='0x00' slot='0x04' function='0x0'/></shmem>\
             <shmem name='shmem3'><model type='ivshmem-doorbell'/><server/></shmem>\
             <shmem name='shmem6'><model type='ivshmem-doorbell'/>\
             <server path='/tmp/shmem6-sock'/><msi vectors='16'/></shmem>\
             <memballoon model='none'/>",
        );
        let x = xml(&def);
        for want in [
            "<shmem name='shmem0'>\n      <model type='ivshmem-plain'/>\n      \
             <size unit='M'>4</size>\n      \
             <address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x0'/>",
            "<shmem name='shmem3'>\n      <model type='ivshmem-doorbell'/>\n      <server/>\n      \
             <msi ioeventfd='on'/>",
            "<msi vectors='16' ioeventfd='on'/>",
        ] {
            assert!(x.contains(want), "{want}\nin\n{x}");
        }
        let a = args(&def);
        for want in [
            "-object memory-backend-file,id=shmmem-shmem0,mem-path=/dev/shm/shmem0,size=4194304,share=on \
             -device ivshmem-plain,id=shmem0,memdev=shmmem-shmem0,addr=0x2.0",
            "-device ivshmem-plain,id=shmem1,memdev=shmmem-shmem1,master=off,addr=0x3.0",
            "size=268435456,share=on -device ivshmem-plain,id=shmem2,memdev=shmmem-shmem2,master=on,addr=0x4.0",
            "-device ivshmem-doorbell,id=shmem3,chardev=charshmem3,ioeventfd=on,addr=0x5.0 \
             -chardev socket,id=charshmem3,path=/run/vb/qemu/d1/shmem-shmem3-sock",
            "-device ivshmem-doorbell,id=shmem4,chardev=charshmem4,vectors=16,ioeventfd=on,addr=0x6.0 \
             -chardev socket,id=charshmem4,path=/tmp/shmem6-sock",
        ] {
            assert!(a.contains(want), "{want}\nin\n{a}");
        }
    }

    #[test]
    fn shmem_refusals_name_the_device() {
        // libvirt's default model is the legacy ivshmem, which QEMU 7.2 no longer has
        let e = plan(&defined("pc", "<shmem name='old'/>")).expect_err("legacy");
        assert!(
            matches!(&e, CmdlineError::NotSupported(m) if m.contains("<shmem name='old'>: model 'ivshmem'")),
            "{e}"
        );
        let e = plan(&defined(
            "pc",
            "<shmem name='d'><model type='ivshmem-doorbell'/></shmem>",
        ))
        .expect_err("no server");
        assert!(e.to_string().contains("needs a <server>"), "{e}");
        // conventional PCI on q35: behind the pcie-to-pci-bridge libvirt adds, slot 1
        let a = args(&defined(
            "q35",
            "<shmem name='p'><model type='ivshmem-plain'/></shmem>",
        ));
        assert!(
            a.contains("-device pcie-pci-bridge,id=pci.4,bus=pci.1,addr=0x0.0")
                && a.contains("ivshmem-plain,id=shmem0,memdev=shmmem-shmem0,bus=pci.4,addr=0x1.0"),
            "{a}"
        );
        for bad in [
            "<shmem name='a/b'/>",
            "<shmem name='s'><size unit='M'>3</size></shmem>",
            "<shmem name='s'><size>4096</size></shmem>",
            "<shmem name='s'/><shmem name='s'/>",
        ] {
            let e = parse_error(bad);
            assert!(e.contains("/domain/devices/shmem"), "{bad}: {e}");
        }
    }

    /// libvirt's `panic` test: an ISA device at its I/O port; without a model, ISA.
    #[test]
    fn panic_devices() {
        let def = defined("pc", "<panic><address type='isa' iobase='0x505'/></panic>");
        assert!(xml(&def).contains(
            "<panic model='isa'>\n      <address type='isa' iobase='0x505'/>\n    </panic>"
        ));
        let a = args(&def);
        assert!(
            a.contains("-device pvpanic,ioport=1285 -action panic=pause"),
            "{a}"
        );
        assert_eq!(a.matches("pvpanic").count(), 1, "one device: {a}");
        let a = args(&defined("pc", "<panic model='isa'/>"));
        assert!(a.contains("-device pvpanic -action panic=pause"), "{a}");
        let a = args(&defined("pc", "<panic model='hyperv'/>"));
        assert!(a.contains(",hv-crash=on"), "{a}");
        assert!(!a.contains("-device pvpanic"), "{a}");
        let e = plan(&defined("pc", "<panic model='pseries'/>")).expect_err("ppc");
        assert!(e.to_string().contains("<panic model='pseries'>"), "{e}");
        let e = plan(&defined("pc", "<panic/><panic/>")).expect_err("two");
        assert!(e.to_string().contains("only one ISA panic"), "{e}");
    }

    #[test]
    fn iommu_devices() {
        let def = defined(
            "q35",
            "<iommu model='intel'><driver intremap='on' caching_mode='on' eim='on' iotlb='on' \
             aw_bits='48'/></iommu>",
        );
        assert!(xml(&def).contains(
            "<iommu model='intel'>\n      <driver intremap='on' caching_mode='on' eim='on' \
             iotlb='on' aw_bits='48'/>\n    </iommu>"
        ));
        let a = args(&def);
        assert!(
            a.contains(
                "-device intel-iommu,id=iommu0,intremap=on,caching-mode=on,eim=on,\
                 device-iotlb=on,aw-bits=48"
            ),
            "{a}"
        );
        let e = plan(&defined("pc", "<iommu model='intel'/>")).expect_err("pc");
        assert!(e.to_string().contains("needs a q35 machine"), "{e}");
        let e = plan(&defined(
            "q35",
            "<iommu model='intel'><driver eim='on'/></iommu>",
        ))
        .expect_err("eim");
        assert!(
            e.to_string().contains("eim='on' needs intremap='on'"),
            "{e}"
        );
        // an integrated device: on pcie.0 itself, as libvirt places it
        let def = defined("q35", "<iommu model='virtio'/>");
        let a = args(&def);
        assert!(
            a.contains("-device virtio-iommu-pci,id=iommu0,addr=0x2.0"),
            "{a}"
        );
    }

    /// libvirt's `vhost-vsock` test, and `vhost-vsock-auto`'s canonical form.
    #[test]
    fn vsock_devices() {
        let def = defined(
            "pc",
            "<vsock model='virtio'><cid auto='no' address='4'/></vsock><memballoon model='none'/>",
        );
        let x = xml(&def);
        assert!(
            x.contains(
                "<vsock model='virtio'>\n      <cid auto='no' address='4'/>\n      \
                 <address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x0'/>"
            ),
            "{x}"
        );
        let a = args(&def);
        assert!(
            a.contains("-device vhost-vsock-pci,id=vsock0,guest-cid=4,addr=0x2.0"),
            "{a}"
        );
        let def = defined("pc", "<vsock><cid auto='yes'/></vsock>");
        assert!(xml(&def).contains("<vsock model='virtio'>\n      <cid auto='yes'/>"));
        let bad = "<domain type='qemu'><name>t</name><memory>65536</memory><os><type>hvm\
                   </type></os><devices><vsock><cid address='2'/></vsock></devices></domain>";
        let e = DomainDef::from_xml(bad).expect_err("cid 2");
        assert!(
            e.to_string().contains("/domain/devices/vsock/cid/@address"),
            "{e}"
        );
    }
}
