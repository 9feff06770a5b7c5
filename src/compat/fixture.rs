//! `/org/libvirt/Test`'s core: libvirt's `test:///default` connection as it starts, in
//! memory, on every daemon start: one domain `test`, running (for no recorded reason), with
//! id 1 and no snapshots.

use std::sync::Arc;

use crate::{
    core::{Core, Error, options::StartOptions, store::Store},
    drivers::test::TestDriver,
    model::{DomainDef, DomainType, state::StateReason},
};

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

/// A core of its own (a test driver of its own, a store that keeps nothing) in the state
/// `test:///default` starts in.
pub async fn test_default() -> Result<Core, Error> {
    let core = Core::new(
        vec![(DomainType::Test, Arc::new(TestDriver::new()))],
        Store::memory(),
    );
    let def = DomainDef::from_xml(TEST_DOMAIN_XML)?;
    let dom = core.define(def, Default::default()).await?;
    core.start_as(&dom, StartOptions::default(), StateReason::Unknown)
        .await?;
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
    }
}
