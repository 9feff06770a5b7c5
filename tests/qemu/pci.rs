//! Conventional PCI devices on a q35 machine, placed as libvirt places them: behind a
//! pcie-to-pci-bridge that sits on a PCI Express root port of its own.

use std::time::Duration;

use crate::{define_guest_with, guest, guests, support::*, until, wait_agent};

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

/// q35's root bus cannot hot-plug: a virtio disk plugged into a running q35 guest takes the
/// spare pcie-root-port the definition got, the guest finds it, the live definition records
/// the port's bus, and after an unplug the same port takes it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q35_hotplug_takes_a_free_root_port() {
    let _permit = guests(1).await;
    let g = define_guest_with("q35hp", guest::TEST_CHANNEL, |xml| {
        xml.replace("<type arch='x86_64'>", "<type arch='x86_64' machine='q35'>")
    })
    .await;
    let dom = proxies::domain(&g.conn, &g.path).await;
    let extra = g.bus.dir.path().join("extra.img");
    let mut data = b"VIRTBUS-Q35-HOTPLUG".to_vec();
    data.resize(1 << 20, 0);
    std::fs::write(&extra, data).expect("image");
    let vdc = format!(
        "<disk type='file' device='disk'><driver name='qemu' type='raw'/>\
         <source file='{}'/><target dev='vdc' bus='virtio'/><serial>Q35HP</serial></disk>",
        extra.display()
    );
    dom.start(no_opts()).await.expect("start");
    wait_agent(&dom).await;
    let live = dom.get_xml(no_opts()).await.expect("live");
    let ga = guest::TestAgent::of(&live).await;
    // the root ports no device sits on yet
    let port_buses = |xml: &str| -> Vec<String> {
        xml.split("<controller type='pci' index='")
            .skip(1)
            .filter(|c| c.contains("model='pcie-root-port'") && !c.contains("hotplug='off'"))
            .filter_map(|c| c.split('\'').next()?.parse::<u32>().ok())
            .map(|i| format!("bus='{i:#04x}'"))
            .filter(|b| !xml.contains(&format!("<address type='pci' domain='0x0000' {b}")))
            .collect()
    };
    let free = port_buses(&live);
    assert!(!free.is_empty(), "a spare root port: {live}");
    let disk_address = |xml: &str| -> String {
        let at = xml
            .find("Q35HP")
            .unwrap_or_else(|| panic!("Q35HP in {xml}"));
        let dev = &xml[at..at + xml[at..].find("</disk>").expect("its </disk>")];
        let a = dev
            .find("<address")
            .unwrap_or_else(|| panic!("an address in {dev}"));
        dev[a..a + dev[a..].find("/>").expect("end")].to_owned()
    };
    let find = "for d in /sys/block/vd*; do [ \"$(cat $d/serial 2>/dev/null)\" = Q35HP ] \
                && echo ${d##*/}; done; true";
    let mut first = String::new();
    for round in 0..2 {
        dom.attach_device(&vdc, no_opts()).await.expect("attach");
        let live = dom.get_xml(no_opts()).await.expect("live");
        let addr = disk_address(&live);
        assert!(
            addr.contains(&free[0]) && addr.contains("slot='0x00'"),
            "round {round}: the first free root port ({}) in {addr}",
            free[0]
        );
        if round == 0 {
            first = addr.clone();
        } else {
            assert_eq!(addr, first, "the freed port is taken again");
        }
        until(
            "the guest reads the new disk",
            Duration::from_secs(60),
            async || {
                let dev = ga.sh(find).await.trim().to_owned();
                !dev.is_empty()
                    && ga
                        .sh(&format!(
                            "dd if=/dev/{dev} bs=512 count=1 2>/dev/null | head -c 19"
                        ))
                        .await
                        == "VIRTBUS-Q35-HOTPLUG"
            },
        )
        .await;
        dom.detach_device(&vdc, no_opts()).await.expect("detach");
        assert_eq!(
            ga.sh(find).await.trim(),
            "",
            "the disk is gone from the guest"
        );
        let live = dom.get_xml(no_opts()).await.expect("live");
        assert!(!live.contains("Q35HP"), "{live}");
        assert_eq!(port_buses(&live), free, "the port is free again");
    }
    dom.destroy(no_opts()).await.expect("destroy");
}
