//! `/org/libvirt/Test`'s core: libvirt's `test:///default` connection as it starts, in
//! memory, on every daemon start: one domain `test`, running (for no recorded reason), with
//! id 1 and no snapshots; its NAT network `default`, active, with nothing made on the host
//! (the test driver's rules, [`crate::network::Flavour::Test`]); its host interface `eth1`
//! and node devices, which never change (virtbus's host interfaces and devices are
//! read-only); and its storage pool `default-pool`, active, not autostarted, without
//! volumes, held in memory only.

use std::sync::Arc;

use crate::{
    core::{Core, Error, options::StartOptions, store::Store},
    drivers::test::TestDriver,
    model::{DomainDef, DomainType, state::StateReason},
    network::NetworkDriver,
};

/// The network of `test:///default`: active, not autostarted.
pub const TEST_NETWORK_XML: &str = "<network>
  <name>default</name>
  <uuid>dd8fe884-6c02-601e-7551-cca97df1c5df</uuid>
  <bridge name='virbr0'/>
  <forward/>
  <ip address='192.168.122.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='192.168.122.2' end='192.168.122.254'/>
    </dhcp>
  </ip>
</network>
";

/// The domain of `test:///default`, as libvirt shows its definition.
pub const TEST_DOMAIN_XML: &str = "<domain type='test'>
  <name>test</name>
  <uuid>6695eb01-f6a4-8304-79aa-97f2502e193f</uuid>
  <memory unit='KiB'>8388608</memory>
  <currentMemory unit='KiB'>2097152</currentMemory>
  <vcpu placement='static'>2</vcpu>
  <os>
    <type arch='i686'>hvm</type>
    <boot dev='hd'/>
  </os>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <source file='/guest/diskimage1'/>
      <target dev='vda' bus='virtio'/>
      <address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>
    </disk>
    <interface type='network'>
      <mac address='aa:bb:cc:dd:ee:ff'/>
      <source network='default'/>
      <target dev='testnet0'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x01' function='0x0'/>
    </interface>
    <memballoon model='virtio'>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x0'/>
    </memballoon>
  </devices>
</domain>
";

/// The storage pool of `test:///default` (libvirt's test driver gives every pool a
/// capacity of 100 GiB, see [`crate::storage::memory`]).
pub const TEST_POOL_XML: &str = "<pool type='dir'>
  <name>default-pool</name>
  <uuid>dfe224cb-28fb-8dd0-c4b2-64eb3f0f4566</uuid>
  <target>
    <path>/default-pool</path>
  </target>
</pool>
";

/// The interface of `test:///default`: active, as libvirt's test driver formats it.
pub const TEST_INTERFACE: TestInterface = TestInterface {
    name: "eth1",
    mac: "aa:bb:cc:dd:ee:ff",
    active: true,
    xml: "<interface type='ethernet' name='eth1'>
  <start mode='onboot'/>
  <mtu size='1492'/>
  <protocol family='ipv4'>
    <ip address='192.168.0.5' prefix='24'/>
    <route gateway='192.168.0.1'/>
  </protocol>
  <mac address='aa:bb:cc:dd:ee:ff'/>
</interface>
",
};

pub struct TestInterface {
    pub name: &'static str,
    pub mac: &'static str,
    pub active: bool,
    pub xml: &'static str,
}

/// A node device of `test:///default`.
pub struct TestDevice {
    pub name: &'static str,
    pub parent: Option<&'static str>,
    /// What `ListCaps` gives.
    pub caps: &'static [&'static str],
    /// The capabilities the list filters match (the nested `fc_host` and `vport_ops` too).
    pub filter_caps: &'static [&'static str],
    pub xml: &'static str,
}

/// The node devices of `test:///default` in the order libvirt lists them, with the XML its
/// test driver gives (which zeroes the vport counts its definition sets).
pub const TEST_DEVICES: [TestDevice; 4] = [
    TestDevice {
        name: "scsi_host1",
        parent: Some("computer"),
        caps: &["scsi_host"],
        filter_caps: &["scsi_host", "fc_host", "vports"],
        xml: "<device>
  <name>scsi_host1</name>
  <parent>computer</parent>
  <capability type='scsi_host'>
    <host>1</host>
    <unique_id>0</unique_id>
    <capability type='fc_host'>
      <wwnn>2000000012341234</wwnn>
      <wwpn>1000000012341234</wwpn>
      <fabric_wwn>2000000043214321</fabric_wwn>
    </capability>
    <capability type='vport_ops'>
      <max_vports>0</max_vports>
      <vports>0</vports>
    </capability>
  </capability>
</device>
",
    },
    TestDevice {
        name: "scsi_host2",
        parent: Some("computer"),
        caps: &["scsi_host"],
        filter_caps: &["scsi_host", "fc_host", "vports"],
        xml: "<device>
  <name>scsi_host2</name>
  <parent>computer</parent>
  <capability type='scsi_host'>
    <host>2</host>
    <unique_id>1</unique_id>
    <capability type='fc_host'>
      <wwnn>2000000056785678</wwnn>
      <wwpn>1000000056785678</wwpn>
      <fabric_wwn>2000000087658765</fabric_wwn>
    </capability>
    <capability type='vport_ops'>
      <max_vports>0</max_vports>
      <vports>0</vports>
    </capability>
  </capability>
</device>
",
    },
    TestDevice {
        name: "computer",
        parent: None,
        caps: &["system"],
        filter_caps: &["system"],
        xml: "<device>
  <name>computer</name>
  <capability type='system'>
    <hardware>
      <vendor>Libvirt</vendor>
      <version>Test driver</version>
      <serial>123456</serial>
      <uuid>11111111-2222-3333-4444-555555555555</uuid>
    </hardware>
    <firmware>
      <vendor>Libvirt</vendor>
      <version>Test Driver</version>
      <release_date>01/22/2007</release_date>
    </firmware>
  </capability>
</device>
",
    },
    TestDevice {
        name: "scsi_host11",
        parent: Some("scsi_host1"),
        caps: &["scsi_host"],
        filter_caps: &["scsi_host", "fc_host"],
        xml: "<device>
  <name>scsi_host11</name>
  <parent>scsi_host1</parent>
  <capability type='scsi_host'>
    <host>11</host>
    <unique_id>10</unique_id>
    <capability type='fc_host'>
      <wwnn>2000000034563456</wwnn>
      <wwpn>1000000034563456</wwpn>
      <fabric_wwn>2000000043214321</fabric_wwn>
    </capability>
  </capability>
</device>
",
    },
];

/// A core of its own (a test driver of its own, a store that keeps nothing) in the state
/// `test:///default` starts in.
pub async fn test_default() -> Result<Core, Error> {
    let core = Core::new(
        vec![(DomainType::Test, Arc::new(TestDriver::new()))],
        Store::memory(),
    );
    core.set_storage(crate::storage::Storage::new_in_memory());
    let pool = core.storage().define(TEST_POOL_XML).await?;
    core.storage().start(&pool.name).await?;
    let def = DomainDef::from_xml(TEST_DOMAIN_XML)?;
    let dom = core.define(def, Default::default()).await?;
    core.start_as(&dom, StartOptions::default(), StateReason::Unknown)
        .await?;
    let nets = NetworkDriver::in_memory();
    let net = nets.define(TEST_NETWORK_XML).await?;
    nets.start(&net.name).await?;
    core.attach_networks(nets);
    Ok(core)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn starts_as_libvirts_test_default() {
        let core = test_default().await.expect("fixture");
        let dom = core.lookup("test").expect("test");
        let info = dom.info();
        assert_eq!(info.id, Some(1));
        assert!(info.persistent && info.status.is_active());
        assert_eq!(info.status.reason, StateReason::Unknown);
        assert_eq!(info.snapshot_count, 0);
        let xml = core.domain_xml(&dom, Default::default()).expect("xml");
        assert_eq!(
            xml,
            TEST_DOMAIN_XML.replace("<domain type='test'>", "<domain type='test' id='1'>")
        );
        let nets = core.networks().expect("networks").list().await;
        assert_eq!(nets.len(), 1);
        let n = &nets[0];
        assert_eq!(
            (n.name.as_str(), n.active, n.persistent, n.autostart),
            ("default", true, true, false)
        );
        assert_eq!(n.bridge, "virbr0");
        let xml = core
            .networks()
            .expect("networks")
            .xml("default", false)
            .await
            .expect("xml");
        // as libvirt's test driver formats it: no MAC filled in, STP shown
        assert_eq!(
            xml,
            "<network>
  <name>default</name>
  <uuid>dd8fe884-6c02-601e-7551-cca97df1c5df</uuid>
  <forward mode='nat'/>
  <bridge name='virbr0' stp='on' delay='0'/>
  <ip address='192.168.122.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='192.168.122.2' end='192.168.122.254'/>
    </dhcp>
  </ip>
</network>
"
        );
        let pools = core.storage().list_pools();
        assert_eq!(pools.len(), 1);
        let p = &pools[0];
        assert!(p.active && p.persistent && !p.autostart);
        assert_eq!(
            (p.sizes.capacity, p.sizes.allocation, p.sizes.available),
            (100 << 30, 0, 100 << 30)
        );
        let xml = core.storage().pool_xml("default-pool", false).expect("xml");
        assert!(
            xml.contains("<capacity unit='bytes'>107374182400</capacity>"),
            "{xml}"
        );
        assert!(xml.contains("<path>/default-pool</path>"), "{xml}");
        assert!(
            core.storage()
                .list_volumes("default-pool")
                .expect("vols")
                .is_empty()
        );
    }
}
