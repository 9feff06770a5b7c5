//! Conventional PCI devices on a q35 machine, placed as libvirt places them: behind a
//! pcie-to-pci-bridge that sits on a PCI Express root port of its own.

use crate::{define_guest_with, guest, guests, support::*, wait_agent};

/// An e1000 NIC and an ICH6 sound card are conventional PCI only: the definition gets a
/// pcie-to-pci-bridge for them (slots from 1), and the guest finds both behind it, three PCI
/// levels down (root port, bridge, device), with their vendor and device ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conventional_pci_devices_sit_behind_a_pcie_to_pci_bridge() {
    let _permit = guests(1).await;
    let devices = format!(
        "{}<interface type='user'><mac address='52:54:00:3c:00:01'/><model type='e1000'/>\
         </interface><sound model='ich6'><audio id='1'/></sound><audio id='1' type='none'/>",
        guest::TEST_CHANNEL
    );
    let g = define_guest_with("pcibr", &devices, |xml| {
        xml.replace("<type arch='x86_64'>", "<type arch='x86_64' machine='q35'>")
    })
    .await;
    let dom = proxies::domain(&g.conn, &g.path).await;
    let inactive = dom.get_xml(no_opts()).await.expect("xml");
    let bridge = inactive
        .find("model='pcie-to-pci-bridge'>")
        .map(|i| &inactive[i..])
        .expect("a pcie-to-pci-bridge");
    assert!(
        bridge.contains("<model name='pcie-pci-bridge'/>"),
        "{inactive}"
    );
    let idx = inactive[..inactive.find("model='pcie-to-pci-bridge'>").unwrap_or(0)]
        .rsplit("index='")
        .next()
        .and_then(|s| s.split('\'').next())
        .and_then(|s| s.parse::<u32>().ok())
        .expect("the bridge's index");
    for what in ["<model type='e1000'/>", "<sound model='ich6'>"] {
        let at = &inactive[inactive.find(what).expect(what)..];
        let addr = &at[at.find("<address").expect("address")..];
        assert!(
            addr.starts_with(&format!(
                "<address type='pci' domain='0x0000' bus='{idx:#04x}'"
            )),
            "{what} not on the bridge's bus {idx}: {addr}"
        );
    }
    dom.start(no_opts()).await.expect("start");
    wait_agent(&dom).await;
    let live = dom.get_xml(no_opts()).await.expect("live");
    let ga = guest::TestAgent::of(&live).await;
    let list = ga
        .sh("for d in /sys/bus/pci/devices/*; do \
             echo $(cat $d/vendor):$(cat $d/device) $(readlink -f $d); done")
        .await;
    // vendor:device, then how many PCI levels lead to it
    let depth = |id: &str| {
        list.lines()
            .find(|l| l.starts_with(id))
            .map(|l| l.matches("/0000:").count())
            .unwrap_or_else(|| panic!("no {id} in\n{list}"))
    };
    assert_eq!(
        depth("0x1b36:0x000e"),
        2,
        "the bridge on a root port:\n{list}"
    );
    assert_eq!(
        depth("0x8086:0x100e"),
        3,
        "the e1000 behind the bridge:\n{list}"
    );
    assert_eq!(
        depth("0x8086:0x2668"),
        3,
        "the ICH6 audio behind the bridge:\n{list}"
    );
    dom.destroy(no_opts()).await.expect("destroy");
}
