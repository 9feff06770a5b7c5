//! Round trips and refusals of the storage elements: disk options, network sources,
//! `<filesystem>` and `<memoryBacking>`.

use crate::model::{DomainDef, FormatOptions};

fn domain(pre: &str, devices: &str) -> String {
    format!(
        "<domain type='qemu'>\n  <name>s</name>\n  <uuid>00000000-0000-4000-8000-000000000009</uuid>\n  \
         <memory unit='KiB'>65536</memory>\n{pre}  <vcpu>1</vcpu>\n  <os>\n    <type>hvm</type>\n  \
         </os>\n  <devices>\n{devices}  </devices>\n</domain>\n"
    )
}

fn canonical(xml: &str) -> String {
    let d = DomainDef::from_xml(xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    let out = d.to_xml(&FormatOptions::default());
    let again = DomainDef::from_xml(&out).expect("reparse");
    assert_eq!(again, d, "reparse differs:\n{out}");
    out
}

fn error(devices: &str) -> String {
    match DomainDef::from_xml(&domain("", devices)) {
        Ok(_) => panic!("accepted: {devices}"),
        Err(e) => e.to_string(),
    }
}

/// Written in libvirt's order (virDomainDiskDefFormat): driver attributes, source, geometry,
/// blockio, target, iotune, readonly, shareable, transient, serial, wwn, vendor, product.
#[test]
fn disk_options_in_libvirts_order() {
    let canonical_disk = "    <disk type='file' device='disk'>
      <driver name='qemu' type='raw' cache='none' error_policy='stop' rerror_policy='report' io='native' ioeventfd='on' event_idx='off' copy_on_read='on' discard='unmap' iothread='1' detect_zeroes='unmap' queues='4' queue_size='256'/>
      <source file='/i/a.img'/>
      <geometry cyls='16383' heads='16' secs='63' trans='lba'/>
      <blockio logical_block_size='512' physical_block_size='4096'/>
      <target dev='sda' bus='scsi' rotation_rate='7200'/>
      <iotune>
        <total_bytes_sec>1000</total_bytes_sec>
        <read_iops_sec>5</read_iops_sec>
        <size_iops_sec>4096</size_iops_sec>
        <group_name>g</group_name>
        <total_bytes_sec_max_length>10</total_bytes_sec_max_length>
      </iotune>
      <shareable/>
      <transient shareBacking='yes'/>
      <serial>S1</serial>
      <wwn>5000c50015ea71ac</wwn>
      <vendor>VB</vendor>
      <product>Disk 1</product>
      <boot order='1'/>
      <address type='drive' controller='0' bus='0' target='0' unit='0'/>
    </disk>
";
    // the same elements, shuffled, with attributes out of order and a zero limit
    let input = "<disk type='file' device='disk'><product>Disk 1</product><wwn>5000c50015ea71ac</wwn>\
      <iotune><group_name>g</group_name><total_bytes_sec_max_length>10</total_bytes_sec_max_length>\
      <size_iops_sec>4096</size_iops_sec><read_iops_sec>5</read_iops_sec>\
      <write_bytes_sec>0</write_bytes_sec><total_bytes_sec>1000</total_bytes_sec></iotune>\
      <target dev='sda' bus='scsi' rotation_rate='7200'/><serial>S1</serial><vendor>VB</vendor>\
      <driver queue_size='256' queues='4' detect_zeroes='unmap' iothread='1' discard='unmap' \
      copy_on_read='on' event_idx='off' ioeventfd='on' io='native' rerror_policy='report' \
      error_policy='stop' cache='none' type='raw' name='qemu'/>\
      <transient shareBacking='yes'/><shareable/><boot order='1'/>\
      <address type='drive' controller='0' bus='0' target='0' unit='0'/>\
      <blockio physical_block_size='4096' logical_block_size='512'/>\
      <geometry trans='lba' secs='63' heads='16' cyls='16383'/><source file='/i/a.img'/></disk>";
    let out = canonical(&domain("", input));
    assert_eq!(out, domain("", canonical_disk));
}

#[test]
fn network_sources_round_trip() {
    let disks = "    <disk type='network' device='disk'>
      <driver name='qemu' type='raw'/>
      <source protocol='nbd' name='bar'>
        <host name='example.org' port='6000'/>
      </source>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='network' device='disk'>
      <source protocol='nbd'>
        <host transport='unix' socket='/run/nbd.sock'/>
      </source>
      <target dev='vdb' bus='virtio'/>
    </disk>
    <disk type='network' device='disk'>
      <source protocol='rbd' name='pool/image'>
        <host name='mon1.example.org' port='6321'/>
        <host name='mon2.example.org' port='6322'/>
      </source>
      <target dev='vdc' bus='virtio'/>
    </disk>
    <disk type='network' device='cdrom'>
      <source protocol='https' name='test4.img' query='par=val&amp;other=ble' tls='no'>
        <host name='example.org' port='1234'/>
        <ssl verify='no'/>
        <readahead size='1024'/>
        <timeout seconds='1234'/>
      </source>
      <target dev='hdc' bus='ide'/>
      <readonly/>
    </disk>
";
    assert_eq!(canonical(&domain("", disks)), domain("", disks));
    // libvirt leaves the default transport unwritten and fills in the protocol's port
    let tcp = canonical(&domain(
        "",
        "<disk type='network'><source protocol='nbd'><host name='h' transport='tcp'/></source>\
         <target dev='vda'/></disk><disk type='network' device='cdrom'><source \
         protocol='https' name='a.iso'><host name='h'/></source><target dev='hdc'/></disk>",
    ));
    assert!(tcp.contains("<host name='h' port='10809'/>"), "{tcp}");
    assert!(tcp.contains("<host name='h' port='443'/>"), "{tcp}");
}

#[test]
fn filesystems_and_memory_backing_round_trip() {
    let pre = "  <memoryBacking>\n    <source type='memfd'/>\n    <access mode='shared'/>\n  </memoryBacking>\n";
    let fss = "    <filesystem type='mount' accessmode='passthrough'>
      <driver type='virtiofs' queue='1024'/>
      <binary path='/usr/lib/qemu/virtiofsd' xattr='on'>
        <cache mode='always'/>
        <sandbox mode='chroot'/>
        <lock posix='off' flock='off'/>
        <thread_pool size='16'/>
      </binary>
      <source dir='/path'/>
      <target dir='mount_tag'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x0'/>
    </filesystem>
    <filesystem type='mount'>
      <driver type='virtiofs'/>
      <source socket='/tmp/sock'/>
      <target dir='tag'/>
    </filesystem>
    <filesystem type='mount' accessmode='mapped' multidevs='remap' fmode='0644' dmode='0755'>
      <driver type='path' wrpolicy='immediate'/>
      <source dir='/export'/>
      <target dir='/import'/>
      <readonly/>
    </filesystem>
";
    assert_eq!(canonical(&domain(pre, fss)), domain(pre, fss));
}

/// libvirt's parser keeps disks of one bus in target order, after the last of their bus.
#[test]
fn disks_are_ordered_as_libvirt_inserts_them() {
    let out = canonical(&domain(
        "",
        "<disk><source file='/a'/><target dev='vdb' bus='virtio'/></disk>\
         <disk><source file='/b'/><target dev='hdc' bus='ide'/></disk>\
         <disk><source file='/c'/><target dev='vda' bus='virtio'/></disk>\
         <disk><source file='/d'/><target dev='hda' bus='ide'/></disk>\
         <disk><source file='/e'/><target dev='vdc' bus='virtio'/></disk>",
    ));
    let order: Vec<&str> = out
        .match_indices("<target dev='")
        .map(|(i, _)| &out[i + 13..i + 16])
        .collect();
    assert_eq!(order, ["vda", "vdb", "vdc", "hda", "hdc"], "{out}");
}

#[test]
fn storage_refusals_name_the_place() {
    let cases = [
        (
            "<disk><driver rerror_policy='enospace'/><source file='/a'/><target dev='vda'/></disk>",
            "/domain/devices/disk/driver/@rerror_policy",
        ),
        (
            "<disk><source file='/a'/><target dev='vda'/><wwn>123</wwn></disk>",
            "/domain/devices/disk/wwn",
        ),
        (
            "<disk><source file='/a'/><target dev='sda'/><vendor>123456789</vendor></disk>",
            "/domain/devices/disk/vendor",
        ),
        (
            "<disk><source file='/a'/><target dev='vda'/><iotune><total_bytes_sec>1\
             </total_bytes_sec><read_bytes_sec>2</read_bytes_sec></iotune></disk>",
            "cannot be set at the same time",
        ),
        (
            "<disk><source file='/a'/><blockio logical_block_size='1000'/><target dev='vda'/></disk>",
            "/domain/devices/disk/blockio/@logical_block_size",
        ),
        (
            "<disk type='network'><source protocol='http'><host name='h'/></source>\
             <target dev='vda'/></disk>",
            "/domain/devices/disk/source/@name",
        ),
        (
            "<disk type='network'><source protocol='nbd'><host transport='unix'/></source>\
             <target dev='vda'/></disk>",
            "/domain/devices/disk/source/host/@socket",
        ),
        (
            "<disk type='network'><source protocol='nbd'><host name='h'/><auth username='u'/>\
             </source><target dev='vda'/></disk>",
            "/domain/devices/disk/source/auth",
        ),
        (
            "<disk type='volume'><source pool='p' volume='v' mode='host'/><target dev='vda'/></disk>",
            "/domain/devices/disk/source/@mode",
        ),
        (
            "<filesystem><source socket='/s'/><target dir='t'/></filesystem>",
            "/domain/devices/filesystem/source/@socket",
        ),
        (
            "<filesystem><binary path='/b'/><source dir='/s'/><target dir='t'/></filesystem>",
            "/domain/devices/filesystem/binary",
        ),
        (
            "<filesystem accessmode='mapped'><driver type='virtiofs'/><source dir='/s'/>\
             <target dir='t'/></filesystem>",
            "/domain/devices/filesystem/@accessmode",
        ),
        (
            "<filesystem><source dir='/s'/><target dir='t'/><space_hard_limit>1\
             </space_hard_limit></filesystem>",
            "/domain/devices/filesystem/space_hard_limit",
        ),
    ];
    for (devices, want) in cases {
        let e = error(devices);
        assert!(e.contains(want), "{devices}: {e}");
    }
}
