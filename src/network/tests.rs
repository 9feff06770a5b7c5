//! Network model tests: round trips in libvirt's order, defaults, and refusals that name
//! the element or attribute.

use super::defaults::{self, DEFAULT_NETWORK_XML};
use super::*;
use crate::model::XmlError;

const NAT_FULL: &str = "<network>
  <name>lab</name>
  <uuid>81ff0d90-c91e-6742-64da-4a736edb9a9b</uuid>
  <forward dev='eth1' mode='nat'>
    <nat>
      <address start='10.0.0.5' end='10.0.0.9'/>
      <port start='1024' end='65535'/>
    </nat>
  </forward>
  <bridge name='virbr7' stp='off' delay='2'/>
  <mtu size='9000'/>
  <mac address='52:54:00:ab:cd:ef'/>
  <domain name='lab.example' localOnly='yes'/>
  <dns enable='yes'>
    <forwarder addr='8.8.8.8'/>
    <forwarder domain='corp' addr='10.1.1.1'/>
    <txt name='example' value='example value'/>
    <srv service='name' protocol='tcp' domain='test-domain-name' target='.' port='1024' priority='10' weight='10'/>
    <host ip='192.168.100.2'>
      <hostname>host</hostname>
      <hostname>gateway</hostname>
    </host>
  </dns>
  <ip address='192.168.100.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='192.168.100.128' end='192.168.100.254'/>
      <host mac='00:16:3e:77:e2:ed' name='a.example.com' ip='192.168.100.10'/>
      <host name='b' ip='192.168.100.11'/>
    </dhcp>
  </ip>
  <ip family='ipv6' address='2001:db8:ac10:fe01::1' prefix='64'>
    <dhcp>
      <range start='2001:db8:ac10:fe01::1:0' end='2001:db8:ac10:fe01::1:f'/>
    </dhcp>
  </ip>
</network>
";

fn bad(xml: &str) -> XmlError {
    NetworkDef::from_xml(xml).expect_err("must be refused")
}

#[test]
fn full_nat_network_round_trips() {
    let def = NetworkDef::from_xml(NAT_FULL).unwrap();
    assert_eq!(def.to_xml(), NAT_FULL);
    assert_eq!(def.mode(), Some(ForwardMode::Nat));
    assert_eq!(def.ips[0].prefix_len(), 24);
    assert_eq!(NetworkDef::from_xml(&def.to_xml()).unwrap(), def);
}

#[test]
fn modes_round_trip_in_libvirt_order() {
    // written out of order and in short forms: libvirt's order comes back
    let isolated = "<network><ip address='10.9.0.1' prefix='24'/><name>iso</name>\
                    <uuid>11111111-2222-3333-4444-555555555555</uuid></network>";
    let def = NetworkDef::from_xml(isolated).unwrap();
    assert_eq!(def.mode(), None);
    // as libvirt: a network with a bridge of its own shows STP and delay, and <ip> is
    // never self-closed
    assert_eq!(
        def.to_xml(),
        "<network>\n  <name>iso</name>\n  <uuid>11111111-2222-3333-4444-555555555555</uuid>\n  \
         <bridge stp='on' delay='0'/>\n  <ip address='10.9.0.1' prefix='24'>\n  </ip>\n\
         </network>\n"
    );
    for mode in ["route", "open"] {
        let x = format!(
            "<network>\n  <name>n</name>\n  <uuid>11111111-2222-3333-4444-555555555555</uuid>\n  \
             <forward mode='{mode}'/>\n  <bridge stp='on' delay='0'/>\n  \
             <ip address='10.9.0.1' prefix='24'>\n  </ip>\n</network>\n"
        );
        assert_eq!(NetworkDef::from_xml(&x).unwrap().to_xml(), x);
    }
    let host = "<network>\n  <name>host-bridge</name>\n  \
                <uuid>11111111-2222-3333-4444-555555555555</uuid>\n  \
                <forward mode='bridge'/>\n  <bridge name='br0'/>\n</network>\n";
    let def = NetworkDef::from_xml(host).unwrap();
    assert!(!def.is_virtual());
    assert_eq!(def.to_xml(), host);
}

#[test]
fn forward_without_mode_is_nat_and_uuid_is_generated() {
    let def = NetworkDef::from_xml(DEFAULT_NETWORK_XML).unwrap();
    assert_eq!(def.mode(), Some(ForwardMode::Nat));
    assert!(def.to_xml().contains("<forward mode='nat'/>"));
    let again = NetworkDef::from_xml(DEFAULT_NETWORK_XML).unwrap();
    assert_ne!(def.uuid, again.uuid);
}

#[test]
fn defaults_pick_a_free_bridge_and_fill_stp_and_mac() {
    let mut def = NetworkDef::from_xml(
        "<network><name>n</name><forward/><ip address='10.1.0.1' prefix='16'/></network>",
    )
    .unwrap();
    defaults::fill(&mut def, &|n| n == "virbr0" || n == "virbr1").unwrap();
    let b = def.bridge.as_ref().unwrap();
    assert_eq!(b.name.as_deref(), Some("virbr2"));
    assert_eq!((b.stp, b.delay), (Some(true), Some(0)));
    let mac = def.mac.unwrap().0;
    assert_eq!(&mac[..3], &[0x52, 0x54, 0x00]);
    assert!(
        def.to_xml()
            .contains("<bridge name='virbr2' stp='on' delay='0'/>")
    );
    // a template
    let mut t = NetworkDef::from_xml(
        "<network><name>t</name><bridge name='lab%d'/><ip address='10.2.0.1' prefix='16'/></network>",
    )
    .unwrap();
    defaults::fill(&mut t, &|n| n == "lab0").unwrap();
    assert_eq!(t.bridge_name(), Some("lab1"));
    // a host bridge network gets nothing
    let mut h = NetworkDef::from_xml(
        "<network><name>h</name><forward mode='bridge'/><bridge name='br0'/></network>",
    )
    .unwrap();
    let before = h.clone();
    defaults::fill(&mut h, &|_| false).unwrap();
    assert_eq!(h, before);
}

#[test]
fn unknown_xml_is_refused_with_its_path() {
    let e = bad("<network><name>n</name><portgroup name='x'/></network>");
    assert_eq!(e.path(), Some("/network/portgroup"));
    let e = bad("<network><name>n</name><bridge name='b' zone='z'/></network>");
    assert_eq!(e.path(), Some("/network/bridge/@zone"));
    let e = bad("<network><name>n</name><ip address='10.0.0.1'><tftp root='/x'/></ip></network>");
    assert_eq!(e.path(), Some("/network/ip/tftp"));
    let e = bad("<network><name>n</name><forward mode='vepa'/></network>");
    assert_eq!(e.path(), Some("/network/forward/@mode"));
}

#[test]
fn bad_values_name_element_and_value() {
    let e = bad("<network><name>a/b</name></network>");
    assert!(
        matches!(&e, XmlError::InvalidValue { path, value, .. }
        if path == "/network/name" && value == "a/b"),
        "{e}"
    );
    let e = bad("<network><name>n</name><ip address='10.0.0.1' prefix='24'>\
                 <dhcp><range start='10.0.1.2' end='10.0.1.9'/></dhcp></ip></network>");
    assert!(
        matches!(&e, XmlError::InvalidValue { path, value, reason }
        if path == "/network/ip[1]/dhcp/range[1]" && value == "10.0.1.2"
           && reason.contains("10.0.0.0/24")),
        "{e}"
    );
    let e = bad("<network><name>n</name><ip address='10.0.0.1' prefix='24'>\
                 <dhcp><range start='10.0.0.9' end='10.0.0.2'/></dhcp></ip></network>");
    assert_eq!(e.path(), Some("/network/ip/dhcp/range/@end"));
    let e = bad("<network><name>n</name><ip address='10.0.0.1' netmask='255.0.255.0'/></network>");
    assert_eq!(e.path(), Some("/network/ip/@netmask"));
    let e = bad("<network><name>n</name><ip address='10.0.0.1' prefix='33'/></network>");
    assert_eq!(e.path(), Some("/network/ip/@prefix"));
    let e = bad("<network><name>n</name><forward mode='nat'/></network>");
    assert!(matches!(e, XmlError::Missing { .. }), "{e}");
    let e = bad("<network><name>n</name><forward mode='bridge'/></network>");
    assert_eq!(e.path(), Some("/network/bridge/@name"));
    let e = bad("<network><name>n</name><bridge name='a-very-long-bridge-name'/></network>");
    assert_eq!(e.path(), Some("/network/bridge/@name"));
    let e = bad("<network><name>n</name><mac address='01:00:00:00:00:01'/></network>");
    assert_eq!(e.path(), Some("/network/mac/@address"));
}

#[test]
fn conflicts_with_other_networks_are_typed() {
    let mut a = NetworkDef::from_xml(DEFAULT_NETWORK_XML).unwrap();
    defaults::fill(&mut a, &|_| false).unwrap();
    let b = NetworkDef::from_xml(
        "<network><name>b</name><bridge name='virbr0'/><ip address='10.0.0.1' prefix='8'/></network>",
    )
    .unwrap();
    match defaults::check_against(&b, [&a]) {
        Err(NetError::Conflict {
            path, value, other, ..
        }) => {
            assert_eq!(
                (path.as_str(), value.as_str(), other.as_str()),
                ("/network/bridge/@name", "virbr0", "default")
            );
        }
        r => panic!("{r:?}"),
    }
    let c = NetworkDef::from_xml(
        "<network><name>c</name><ip address='192.168.0.1' prefix='16'/></network>",
    )
    .unwrap();
    match defaults::check_against(&c, [&a]) {
        Err(NetError::Conflict {
            path,
            value,
            reason,
            ..
        }) => {
            assert_eq!(
                (path.as_str(), value.as_str(), reason),
                (
                    "/network/ip[1]/@address",
                    "192.168.0.0/16",
                    "overlapping subnet"
                )
            );
        }
        r => panic!("{r:?}"),
    }
    let d = NetworkDef::from_xml(
        "<network><name>d</name><ip address='192.168.123.1' prefix='24'/></network>",
    )
    .unwrap();
    defaults::check_against(&d, [&a]).unwrap();
}

#[test]
fn local_ptr_round_trips_and_gives_the_reverse_domain() {
    // as Cockpit's "Create virtual network" dialog writes it
    let def = NetworkDef::from_xml(
        "<network><name>c</name><forward mode='nat'/><domain name='c' localOnly='yes'/>\
         <ip address='192.168.100.1' netmask='255.255.255.0' localPtr='yes'/>\
         <ip family='ipv6' address='fd00:1:2::1' prefix='48' localPtr='yes'/></network>",
    )
    .unwrap();
    let xml = def.to_xml();
    assert!(
        xml.contains("<ip address='192.168.100.1' netmask='255.255.255.0' localPtr='yes'>"),
        "{xml}"
    );
    assert_eq!(NetworkDef::from_xml(&xml).unwrap().to_xml(), xml);
    assert_eq!(
        def.ips[0].ptr_domain().as_deref(),
        Some("100.168.192.in-addr.arpa")
    );
    assert_eq!(
        def.ips[1].ptr_domain().as_deref(),
        Some("2.0.0.0.1.0.0.0.0.0.d.f.ip6.arpa")
    );
    let odd = NetworkDef::from_xml(
        "<network><name>o</name><ip address='10.0.0.1' prefix='20' localPtr='no'/></network>",
    )
    .unwrap();
    assert_eq!(odd.ips[0].ptr_domain(), None);
    let e = bad(
        "<network><name>b</name><ip address='10.0.0.1' prefix='8' localPtr='maybe'/></network>",
    );
    assert!(e.to_string().contains("localPtr"), "{e}");
}
