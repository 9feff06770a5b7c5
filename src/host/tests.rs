//! The host readers over sysfs trees built here: shapes this CI machine lacks (bridges,
//! bonds, USB, SCSI, PCIe bridges), checked against the XML libvirt 9.0 writes for them.

use std::{
    net::IpAddr,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
};

use super::{
    interfaces::{self, Address, Filter},
    nodedev::{self, caps_match},
};

/// A sysfs tree under a temporary directory.
struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    fn new() -> Tree {
        Tree {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Write attribute files (`name=value` pairs; a value gets a newline as the kernel's do).
    fn attrs(&self, dir: &str, attrs: &[(&str, &str)]) -> PathBuf {
        let d = self.root().join(dir);
        std::fs::create_dir_all(&d).unwrap();
        for (k, v) in attrs {
            let f = d.join(k);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, format!("{v}\n")).unwrap();
        }
        d
    }

    /// A link `from` -> `to`, both relative to the root.
    fn link(&self, from: &str, to: &str) {
        let f = self.root().join(from);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        symlink(self.root().join(to), f).unwrap();
    }

    /// A device directory with its subsystem link and class/bus entry.
    fn device(&self, path: &str, subsystem: &str, entry: &str, attrs: &[(&str, &str)]) {
        self.attrs(path, attrs);
        std::fs::create_dir_all(self.root().join("subsys").join(subsystem)).unwrap();
        self.link(&format!("{path}/subsystem"), &format!("subsys/{subsystem}"));
        self.link(entry, path);
    }

    fn net(&self, path: &str, name: &str, extra: &[(&str, &str)]) {
        let mut a = vec![("uevent", ""), ("operstate", "up"), ("mtu", "1500")];
        a.extend_from_slice(extra);
        let uevent = format!(
            "INTERFACE={name}\n{}",
            a.iter()
                .find(|(k, _)| *k == "uevent")
                .map(|(_, v)| *v)
                .unwrap_or("")
        );
        let a: Vec<(&str, &str)> = a
            .into_iter()
            .filter(|(k, _)| *k != "uevent")
            .chain([("uevent", uevent.as_str())])
            .collect();
        self.device(path, "net", &format!("class/net/{name}"), &a);
    }
}

fn addr(ip: &str, prefix: u8) -> Address {
    Address {
        ip: ip.parse::<IpAddr>().unwrap(),
        prefix,
    }
}

#[test]
fn ethernet_with_addresses_as_libvirt_writes_it() {
    let t = Tree::new();
    t.net(
        "devices/pci0000:00/0000:00:03.0/virtio2/net/eth0",
        "eth0",
        &[
            ("address", "52:54:00:aa:bb:cc"),
            ("speed", "1000"),
            ("mtu", "1400"),
        ],
    );
    let r = interfaces::Reader::new(
        t.root(),
        vec![
            ("eth0".into(), addr("192.168.1.5", 24)),
            ("eth0".into(), addr("fe80::1", 64)),
            ("lo".into(), addr("127.0.0.1", 8)),
        ],
    );
    let i = r.read("eth0").unwrap();
    assert!(i.active());
    assert_eq!(
        i.to_xml(),
        "<interface type='ethernet' name='eth0'>\n  <mtu size='1400'/>\n  \
         <protocol family='ipv4'>\n    <ip address='192.168.1.5' prefix='24'/>\n  </protocol>\n  \
         <protocol family='ipv6'>\n    <ip address='fe80::1' prefix='64'/>\n  </protocol>\n  \
         <link speed='1000' state='up'/>\n  <mac address='52:54:00:aa:bb:cc'/>\n</interface>\n"
    );
    assert_eq!(r.by_mac("52:54:00:AA:BB:CC").unwrap().name, "eth0");
    assert!(matches!(
        r.by_mac("52:54:00:00:00:00"),
        Err(super::Error::NoInterfaceMac(_))
    ));
    assert!(matches!(r.read("nope"), Err(super::Error::NoInterface(_))));
    assert!(matches!(r.read("../x"), Err(super::Error::NoInterface(_))));
}

#[test]
fn bridge_holds_its_ports_and_hides_them_and_taps_from_the_list() {
    let t = Tree::new();
    t.net(
        "devices/virtual/net/br0",
        "br0",
        &[
            ("uevent", "DEVTYPE=bridge"),
            ("address", "52:54:00:00:00:01"),
            ("bridge/stp_state", "0"),
            ("bridge/forward_delay", "1500"),
        ],
    );
    t.net(
        "devices/pci0000:00/0000:00:03.0/net/eth1",
        "eth1",
        &[
            ("address", "52:54:00:00:00:02"),
            ("operstate", "down"),
            ("brport/state", "3"),
        ],
    );
    t.link("class/net/br0/brif/eth1", "class/net/eth1/brport");
    t.net(
        "devices/virtual/net/vnet0",
        "vnet0",
        &[("address", "fe:54:00:00:00:03"), ("tun_flags", "0x1002")],
    );
    t.net(
        "devices/virtual/net/lo",
        "lo",
        &[
            ("address", "00:00:00:00:00:00"),
            ("operstate", "unknown"),
            ("mtu", "65536"),
        ],
    );
    let r = interfaces::Reader::new(t.root(), vec![("br0".into(), addr("10.0.0.1", 16))]);
    assert_eq!(r.names(Filter::default()), ["br0", "lo"]);
    let active = Filter {
        active: true,
        inactive: false,
    };
    let inactive = Filter {
        active: false,
        inactive: true,
    };
    assert_eq!(r.names(active), ["br0"]);
    // operstate "unknown" is not up: libvirt counts lo as inactive.
    assert_eq!(r.names(inactive), ["lo"]);
    let br = r.read("br0").unwrap();
    assert_eq!(br.ports(), ["eth1"]);
    assert_eq!(
        br.to_xml(),
        "<interface type='bridge' name='br0'>\n  <mtu size='1500'/>\n  \
         <protocol family='ipv4'>\n    <ip address='10.0.0.1' prefix='16'/>\n  </protocol>\n  \
         <bridge stp='off' delay='1500'>\n    <interface type='ethernet' name='eth1'>\n      \
         <link state='down'/>\n      <mac address='52:54:00:00:00:02'/>\n    </interface>\n  \
         </bridge>\n</interface>\n"
    );
}

#[test]
fn bond_with_mii_monitoring() {
    let t = Tree::new();
    t.net(
        "devices/virtual/net/bond0",
        "bond0",
        &[
            ("uevent", "DEVTYPE=bond"),
            ("address", "52:54:00:00:00:09"),
            ("bonding/mode", "active-backup 1"),
            ("bonding/miimon", "100"),
            ("bonding/updelay", "0"),
            ("bonding/downdelay", "200"),
            ("bonding/use_carrier", "1"),
            ("bonding/arp_interval", "0"),
            ("bonding/arp_ip_target", ""),
            ("bonding/arp_validate", "none 0"),
        ],
    );
    t.net(
        "devices/pci0000:00/0000:00:04.0/net/eth2",
        "eth2",
        &[("address", "52:54:00:00:00:09")],
    );
    t.link("class/net/bond0/lower_eth2", "class/net/eth2");
    let r = interfaces::Reader::new(t.root(), Vec::new());
    assert_eq!(
        r.read("bond0").unwrap().to_xml(),
        "<interface type='bond' name='bond0'>\n  <mtu size='1500'/>\n  <link state='up'/>\n  \
         <bond mode='active-backup'>\n    <miimon freq='100' downdelay='200' carrier='netif'/>\n    \
         <interface type='ethernet' name='eth2'>\n      <link state='up'/>\n      \
         <mac address='52:54:00:00:00:09'/>\n    </interface>\n  </bond>\n</interface>\n"
    );
}

#[test]
fn host_addresses_include_loopback() {
    let all = interfaces::host_addresses().unwrap();
    assert!(
        all.iter().any(|(n, a)| n == "lo"
            && a.ip == "127.0.0.1".parse::<IpAddr>().unwrap()
            && a.prefix == 8),
        "{all:?}"
    );
}

/// A USB stick behind an xHCI controller and a virtio-scsi disk: names, parents, XML.
#[test]
fn usb_and_scsi_devices_with_libvirt_names_and_parents() {
    let t = Tree::new();
    let pci = "devices/pci0000:00/0000:00:05.0";
    let mut cfg = vec![0u8; 256];
    cfg[0x06] = 0x10; // capability list
    cfg[0x0e] = 0x00;
    cfg[0x34] = 0x40;
    cfg[0x40] = 0x10; // PCI Express
    cfg[0x41] = 0x00;
    cfg[0x42] = 0x02; // version 2, type 0 (endpoint)
    cfg[0x4c..0x50].copy_from_slice(&0x0100_0041u32.to_le_bytes()); // port 1, x4, 2.5 GT/s
    cfg[0x52..0x54].copy_from_slice(&0x0041u16.to_le_bytes());
    t.device(
        pci,
        "pci",
        "bus/pci/devices/0000:00:05.0",
        &[
            ("uevent", "DRIVER=xhci_hcd\nPCI_CLASS=C0330"),
            ("vendor", "0x1b36"),
            ("device", "0x000d"),
            ("numa_node", "-1"),
        ],
    );
    std::fs::write(t.root().join(pci).join("config"), &cfg).unwrap();
    std::fs::create_dir_all(t.root().join("kernel/iommu_groups/7/devices/0000:00:05.0")).unwrap();
    t.link(&format!("{pci}/iommu_group"), "kernel/iommu_groups/7");
    let usb1 = format!("{pci}/usb1");
    t.device(
        &usb1,
        "usb",
        "bus/usb/devices/usb1",
        &[
            (
                "uevent",
                "DEVTYPE=usb_device\nDRIVER=usb\nBUSNUM=001\nDEVNUM=001\nDEVNAME=bus/usb/001/001",
            ),
            ("idVendor", "1d6b"),
            ("idProduct", "0002"),
        ],
    );
    let stick = format!("{usb1}/1-1");
    t.device(
        &stick,
        "usb",
        "bus/usb/devices/1-1",
        &[
            (
                "uevent",
                "DEVTYPE=usb_device\nDRIVER=usb\nBUSNUM=001\nDEVNUM=002\nDEVNAME=bus/usb/001/002",
            ),
            ("idVendor", "fff0"),
            ("idProduct", "0001"),
            ("manufacturer", "ACME"),
            ("product", "Stick"),
        ],
    );
    t.device(
        &format!("{stick}/1-1:1.0"),
        "usb",
        "bus/usb/devices/1-1:1.0",
        &[
            ("uevent", "DEVTYPE=usb_interface\nDRIVER=usb-storage"),
            ("bInterfaceNumber", "00"),
            ("bInterfaceClass", "08"),
            ("bInterfaceSubClass", "06"),
            ("bInterfaceProtocol", "50"),
        ],
    );
    let host = format!("{stick}/1-1:1.0/host2");
    t.device(
        &host,
        "scsi",
        "bus/scsi/devices/host2",
        &[("uevent", "DEVTYPE=scsi_host")],
    );
    t.attrs(&format!("{host}/scsi_host/host2"), &[("unique_id", "3")]);
    let target = format!("{host}/target2:0:0");
    t.device(
        &target,
        "scsi",
        "bus/scsi/devices/target2:0:0",
        &[("uevent", "DEVTYPE=scsi_target")],
    );
    let lun = format!("{target}/2:0:0:0");
    t.device(
        &lun,
        "scsi",
        "bus/scsi/devices/2:0:0:0",
        &[
            ("uevent", "DEVTYPE=scsi_device\nDRIVER=sd"),
            ("type", "0"),
            ("vendor", "ACME    "),
            ("model", "Stick           "),
        ],
    );
    t.device(
        &format!("{lun}/block/sdb"),
        "block",
        "class/block/sdb",
        &[
            ("uevent", "MAJOR=8\nMINOR=16\nDEVNAME=sdb\nDEVTYPE=disk"),
            ("size", "2048"),
            ("queue/logical_block_size", "512"),
            ("removable", "1"),
        ],
    );
    t.device(
        &format!("{lun}/block/sdb/sdb1"),
        "block",
        "class/block/sdb1",
        &[("uevent", "DEVNAME=sdb1\nDEVTYPE=partition")],
    );
    t.device(
        "devices/virtual/block/loop0",
        "block",
        "class/block/loop0",
        &[("uevent", "DEVNAME=loop0\nDEVTYPE=disk"), ("size", "0")],
    );
    t.device(
        &format!("{lun}/scsi_generic/sg1"),
        "scsi_generic",
        "class/scsi_generic/sg1",
        &[("uevent", "MAJOR=21\nMINOR=1\nDEVNAME=sg1")],
    );
    // The scsi_device link makes the disk's "device" attributes readable.
    t.link(&format!("{lun}/block/sdb/device"), &lun);

    let devs = nodedev::Reader::new(t.root()).list();
    let names: Vec<(&str, &str)> = devs
        .iter()
        .map(|d| (d.name.as_str(), d.parent.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(
        names,
        [
            ("computer", ""),
            ("block_sdb", "scsi_2_0_0_0"),
            ("pci_0000_00_05_0", "computer"),
            ("scsi_2_0_0_0", "scsi_target2_0_0"),
            ("scsi_generic_sg1", "scsi_2_0_0_0"),
            ("scsi_host2", "usb_1_1_1_0"),
            ("scsi_target2_0_0", "scsi_host2"),
            ("usb_1_1", "usb_usb1"),
            ("usb_1_1_1_0", "usb_1_1"),
            ("usb_usb1", "pci_0000_00_05_0"),
        ]
    );
    let xml = |n: &str| devs.iter().find(|d| d.name == n).unwrap().to_xml();
    assert_eq!(
        xml("pci_0000_00_05_0"),
        "<device>\n  <name>pci_0000_00_05_0</name>\n  <path>/sys/devices/pci0000:00/0000:00:05.0</path>\n  \
         <parent>computer</parent>\n  <driver>\n    <name>xhci_hcd</name>\n  </driver>\n  \
         <capability type='pci'>\n    <class>0x0c0330</class>\n    <domain>0</domain>\n    <bus>0</bus>\n    \
         <slot>5</slot>\n    <function>0</function>\n    <product id='0x000d'>QEMU XHCI Host Controller</product>\n    \
         <vendor id='0x1b36'>Red Hat, Inc.</vendor>\n    <iommuGroup number='7'>\n      \
         <address domain='0x0000' bus='0x00' slot='0x05' function='0x0'/>\n    </iommuGroup>\n    \
         <pci-express>\n      <link validity='cap' port='1' speed='2.5' width='4'/>\n      \
         <link validity='sta' speed='2.5' width='4'/>\n    </pci-express>\n  </capability>\n</device>\n"
    );
    assert_eq!(
        xml("usb_1_1"),
        "<device>\n  <name>usb_1_1</name>\n  <path>/sys/devices/pci0000:00/0000:00:05.0/usb1/1-1</path>\n  \
         <devnode type='dev'>/dev/bus/usb/001/002</devnode>\n  <parent>usb_usb1</parent>\n  \
         <driver>\n    <name>usb</name>\n  </driver>\n  <capability type='usb_device'>\n    \
         <bus>1</bus>\n    <device>2</device>\n    <product id='0x0001'>Stick</product>\n    \
         <vendor id='0xfff0'>ACME</vendor>\n  </capability>\n</device>\n"
    );
    assert!(xml("usb_usb1").contains("<vendor id='0x1d6b'>Linux Foundation</vendor>"));
    assert!(xml("usb_1_1_1_0").contains(
        "<capability type='usb'>\n    <number>0</number>\n    <class>8</class>\n    \
         <subclass>6</subclass>\n    <protocol>80</protocol>\n  </capability>"
    ));
    assert!(xml("scsi_host2").contains("<host>2</host>\n    <unique_id>3</unique_id>\n"));
    assert!(xml("scsi_target2_0_0").contains("<target>target2:0:0</target>"));
    assert!(xml("scsi_2_0_0_0").contains(
        "<host>2</host>\n    <bus>0</bus>\n    <target>0</target>\n    <lun>0</lun>\n    <type>disk</type>"
    ));
    assert!(xml("scsi_generic_sg1").contains("<char>/dev/sg1</char>"));
    assert_eq!(
        xml("block_sdb"),
        "<device>\n  <name>block_sdb</name>\n  \
         <path>/sys/devices/pci0000:00/0000:00:05.0/usb1/1-1/1-1:1.0/host2/target2:0:0/2:0:0:0/block/sdb</path>\n  \
         <devnode type='dev'>/dev/sdb</devnode>\n  <parent>scsi_2_0_0_0</parent>\n  \
         <capability type='storage'>\n    <block>/dev/sdb</block>\n    <drive_type>disk</drive_type>\n    \
         <model>Stick</model>\n    <vendor>ACME</vendor>\n    <size>1048576</size>\n    \
         <logical_block_size>512</logical_block_size>\n    <num_blocks>2048</num_blocks>\n  \
         </capability>\n</device>\n"
    );
    // Capability flags: bit 2 usb_device, bit 8 storage.
    let with = |flags: u32| -> Vec<&str> {
        devs.iter()
            .filter(|d| caps_match(&d.cap_names(), flags))
            .map(|d| d.name.as_str())
            .collect()
    };
    assert_eq!(with(1 << 2), ["usb_1_1", "usb_usb1"]);
    assert_eq!(with(1 << 8), ["block_sdb"]);
    assert_eq!(with((1 << 0) | (1 << 11)), ["computer", "scsi_generic_sg1"]);
    assert_eq!(with(0).len(), devs.len());
}

#[test]
fn computer_from_dmi() {
    let t = Tree::new();
    t.attrs(
        "class/dmi/id",
        &[
            ("product_name", "Standard PC (Q35 + ICH9, 2009)"),
            ("sys_vendor", "QEMU"),
            ("product_version", "pc-q35-7.2"),
            ("product_uuid", "8A7C1A2E-0000-4000-8000-000000000001"),
            ("bios_vendor", "SeaBIOS"),
            ("bios_version", "1.16.2"),
            ("bios_date", "04/01/2014"),
        ],
    );
    let devs = nodedev::Reader::new(t.root()).list();
    assert_eq!(
        devs[0].to_xml(),
        "<device>\n  <name>computer</name>\n  <capability type='system'>\n    \
         <product>Standard PC (Q35 + ICH9, 2009)</product>\n    <hardware>\n      <vendor>QEMU</vendor>\n      \
         <version>pc-q35-7.2</version>\n      <uuid>8a7c1a2e-0000-4000-8000-000000000001</uuid>\n    </hardware>\n    \
         <firmware>\n      <vendor>SeaBIOS</vendor>\n      <version>1.16.2</version>\n      \
         <release_date>04/01/2014</release_date>\n    </firmware>\n  </capability>\n</device>\n"
    );
}
