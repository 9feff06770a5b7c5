//! Virtio options against libvirt 9.0's tests/qemuxml2argvdata/virtio-options.x86_64-latest.args.

use super::tests::{parse_error, plan_on_pc};
use crate::model::{DomainDef, FormatOptions};

const ALL: &str = "iommu='on' ats='on' packed='on' page_per_vq='on'";
const PROPS: &str = ",iommu_platform=on,ats=on,packed=on,page-per-vq=on";

fn devices() -> String {
    format!(
        "<disk type='file' device='disk'><driver name='qemu' type='raw' {ALL}/>\
         <source file='/var/lib/libvirt/images/img1'/><target dev='vda' bus='virtio'/></disk>\
         <controller type='scsi' index='0' model='virtio-scsi'><driver {ALL}/></controller>\
         <controller type='virtio-serial' index='0'><driver {ALL}/></controller>\
         <filesystem type='mount' accessmode='passthrough'><driver {ALL}/>\
         <source dir='/export/fs1'/><target dir='fs1'/></filesystem>\
         <input type='keyboard' bus='virtio'><driver {ALL}/></input>\
         <memballoon model='virtio'><driver {ALL}/></memballoon>\
         <rng model='virtio'><backend model='random'>/dev/random</backend>\
         <driver iommu='off'/></rng>"
    )
}

#[test]
fn every_virtio_device_takes_them() {
    let plan = plan_on_pc(&devices()).expect("builds");
    let a = plan.args.join(" ");
    for dev in [
        "virtio-scsi-pci",
        "virtio-serial-pci",
        "virtio-blk-pci",
        "virtio-9p-pci",
        "virtio-keyboard-pci",
        "virtio-balloon-pci",
    ] {
        assert!(a.contains(&format!("-device {dev}{PROPS},")), "{dev}: {a}");
    }
    assert!(
        a.contains("-device virtio-rng-pci,iommu_platform=off,rng=objrng0,id=rng0"),
        "{a}"
    );
}

#[test]
fn written_back_where_libvirt_writes_them() {
    let xml = format!(
        "<domain type='qemu'><name>t</name><memory>65536</memory><os><type>hvm</type></os>\
         <devices>{}</devices></domain>",
        devices()
    );
    let d = DomainDef::from_xml(&xml).expect("parses");
    let out = d.to_xml(&FormatOptions::default());
    for want in [
        format!("<driver name='qemu' type='raw' {ALL}/>"),
        format!("<controller type='scsi' index='0' model='virtio-scsi'>\n      <driver {ALL}/>"),
        format!("<filesystem type='mount' accessmode='passthrough'>\n      <driver {ALL}/>"),
        format!("<input type='keyboard' bus='virtio'>\n      <driver {ALL}/>"),
        format!("<memballoon model='virtio'>\n      <driver {ALL}/>"),
        "</backend>\n      <driver iommu='off'/>".to_owned(),
    ] {
        assert!(out.contains(&want), "{want}\n{out}");
    }
    assert_eq!(DomainDef::from_xml(&out).expect("reparses"), d);
}

#[test]
fn refused_on_other_devices_and_bad_values() {
    let e = plan_on_pc("<input type='keyboard' bus='usb'><driver ats='on'/></input>")
        .expect_err("usb keyboard");
    assert!(e.contains("apply to virtio devices only"), "{e}");
    let e = plan_on_pc(
        "<disk type='file' device='disk'><driver name='qemu' iommu='on'/>\
         <source file='/a.img'/><target dev='hda' bus='ide'/></disk>",
    )
    .expect_err("ide disk");
    assert!(e.contains("apply to virtio devices only"), "{e}");
    let e = parse_error("<memballoon model='virtio'><driver packed='yes'/></memballoon>");
    assert!(
        e.contains("/domain/devices/memballoon/driver/@packed"),
        "{e}"
    );
    let e = parse_error("<rng model='virtio'><backend model='random'/><driver name='x'/></rng>");
    assert!(e.contains("/domain/devices/rng/driver/@name"), "{e}");
}
