//! Hot-plug and hot-unplug in a running guest: virtio disks (their block nodes, then
//! `device_add`) and network interfaces (a netdev, then `device_add`); out again with
//! `device_del`, the guest's acknowledgement (`DEVICE_DELETED`), then the nodes or the
//! netdev dropped. Node names, aliases and NIC models are the command line's own.

use std::time::Duration;

use serde_json::json;

use super::{
    cmdline::{self, CmdlineError},
    monitor::Vm,
    net,
    snapshot::nodes,
};
use crate::{
    drivers::{DriverError, DriverResult},
    model::{
        Address,
        devices::{
            Device, Disk, DiskBus, DiskDevice, Interface, InterfaceType, LinkState, NetDriverName,
        },
    },
    util::lock,
};

mod slot;

/// How long the guest gets to release a device (an ACPI eject under TCG takes a moment).
const RELEASE_WAIT: Duration = Duration::from_secs(20);

fn refuse(vm: &Vm, what: &str, why: &str) -> DriverError {
    DriverError::NotSupported(format!(
        "cannot hot-plug {what} in running domain '{}': {why}",
        vm.name
    ))
}

fn cmdline_error(e: CmdlineError) -> DriverError {
    match e {
        CmdlineError::NotSupported(m) => DriverError::NotSupported(m),
        CmdlineError::Invalid(m) => DriverError::InvalidArgument(m),
    }
}

/// Add `device` to the guest; returns it as the guest has it (alias filled in).
pub async fn attach(vm: &Vm, device: &Device) -> DriverResult<Device> {
    let d = device.as_devices();
    if let Some(disk) = d.disks.first() {
        return attach_disk(vm, disk.clone()).await.map(Device::disk);
    }
    if let Some(nic) = d.interfaces.first() {
        return attach_nic(vm, nic.clone()).await.map(Device::interface);
    }
    Err(refuse(
        vm,
        &format!("a <{}> device", device.element()),
        "only disks and interfaces hot-plug",
    ))
}

/// The PCI slot a hot-plugged device takes (see [`slot::pick`]): QEMU's view of the buses
/// counts with the live definition's, for devices QEMU placed before virtbus recorded
/// addresses.
async fn free_slot(
    vm: &Vm,
    wanted: Option<&Address>,
    pcie: bool,
    what: &str,
) -> DriverResult<slot::Slot> {
    let pci = vm.command("query-pci", None).await?;
    slot::pick(&vm.live(), &pci, wanted, pcie, what)
}

async fn attach_disk(vm: &Vm, mut d: Disk) -> DriverResult<Disk> {
    let what = format!("disk '{}'", d.target_dev);
    let bus = d.target_bus.unwrap_or(if d.target_dev.starts_with("vd") {
        DiskBus::Virtio
    } else {
        DiskBus::Sata
    });
    if d.device != DiskDevice::Disk || bus != DiskBus::Virtio {
        return Err(refuse(
            vm,
            &what,
            "only virtio hard disks hot-plug (a CD-ROM's medium changes with UpdateDevice)",
        ));
    }
    if let Some(why) = cmdline::hotplug_refusal(&d) {
        return Err(refuse(vm, &what, &why));
    }
    let path = d
        .source
        .as_ref()
        .and_then(|s| s.path.clone())
        .ok_or_else(|| DriverError::InvalidArgument(format!("{what} has no source")))?;
    let node = cmdline::node_base(&d.target_dev).map_err(cmdline_error)?;
    let idx = cmdline::disk_index(&d.target_dev).ok_or_else(|| {
        DriverError::InvalidArgument(format!(
            "{what}: a target name is a prefix (vd) and letters, like 'vdb'"
        ))
    })?;
    let alias = format!("virtio-disk{idx}");
    let iothread = d.driver.as_ref().and_then(|x| x.iothread);
    if let Some(id) = iothread
        && !vm.live().tuning.iothreads.iter().any(|t| t.id == id)
    {
        return Err(DriverError::InvalidArgument(format!(
            "{what}: <driver iothread='{id}'> names no I/O thread of the running guest"
        )));
    }
    let (file, fmt) = cmdline::image_nodes(&d, &path, &node, &what).map_err(cmdline_error)?;
    vm.command("blockdev-add", Some(file)).await?;
    let file_node = format!("{node}-file");
    if let Err(e) = vm.command("blockdev-add", Some(fmt)).await {
        del_nodes(vm, &[&file_node]).await;
        return Err(e);
    }
    let slot = match free_slot(vm, d.info.address.as_ref(), true, &what).await {
        Ok(s) => s,
        Err(e) => {
            del_nodes(vm, &[&node, &file_node]).await;
            return Err(e);
        }
    };
    let mut args = json!({"driver": "virtio-blk-pci", "id": alias, "drive": node,
                          "bus": slot.qdev_bus, "addr": slot.addr()});
    if let Some(s) = &d.serial {
        args["serial"] = json!(s);
    }
    if let Some(id) = iothread {
        args["iothread"] = json!(format!("iothread{id}"));
    }
    if let Some(o) = d.boot_order {
        args["bootindex"] = json!(o);
    }
    let cache = d.driver.as_ref().and_then(|x| x.cache);
    if let Some(wc) = cmdline::cache_flags(cache).2 {
        args["write-cache"] = json!(if wc { "on" } else { "off" });
    }
    if let Err(e) = vm.command("device_add", Some(args)).await {
        del_nodes(vm, &[&node, &file_node]).await;
        return Err(e);
    }
    d.target_bus = Some(DiskBus::Virtio);
    d.info.alias = Some(alias);
    d.info.address = Some(slot.address());
    lock(&vm.live).devices.disks.push(d.clone());
    Ok(d)
}

async fn attach_nic(vm: &Vm, mut n: Interface) -> DriverResult<Interface> {
    let what = format!("interface {}", n.mac);
    if n.driver_queues.is_some_and(|q| q > 1) || n.driver_name == Some(NetDriverName::Vhost) {
        return Err(refuse(vm, &what, "vhost or queues"));
    }
    let model = n.model.as_deref().unwrap_or(cmdline::NIC_MODEL);
    let qdev = cmdline::nic_qdev(model)
        .ok_or_else(|| refuse(vm, &what, &format!("NIC model '{model}'")))?
        .to_owned();
    // the first netN the guest does not have
    let (alias, i) = {
        let live = lock(&vm.live);
        let used: Vec<&str> = live
            .devices
            .interfaces
            .iter()
            .filter_map(|x| x.info.alias.as_deref())
            .collect();
        (0..)
            .map(|i| (format!("net{i}"), i))
            .find(|(a, _)| !used.contains(&a.as_str()))
            .unwrap_or_default()
    };
    let host = format!("host{alias}");
    if (n.script.is_some() || n.downscript.is_some()) && n.iface_type != InterfaceType::Ethernet {
        return Err(DriverError::InvalidArgument(format!(
            "{what}: <script> and <downscript> are for interfaces of type 'ethernet'"
        )));
    }
    let netdev = match n.iface_type {
        InterfaceType::User => json!({"type": "user", "id": host}),
        // the core gave a network's interface its bridge (`Core::resolved_interface`)
        InterfaceType::Network if n.source_bridge.is_none() => {
            return Err(DriverError::InvalidArgument(format!(
                "{what}: network '{}' was not resolved to a bridge",
                n.source_network.as_deref().unwrap_or_default()
            )));
        }
        InterfaceType::Bridge | InterfaceType::Ethernet | InterfaceType::Network => {
            let tap = match &n.target_dev {
                Some(t) if n.iface_type == InterfaceType::Ethernet => t.clone(),
                _ => format!("vb{}n{i}", vm.id),
            };
            n.target_dev = Some(tap.clone());
            json!({"type": "tap", "id": host, "ifname": tap,
                   "script": n.script.as_deref().unwrap_or("no"),
                   "downscript": n.downscript.as_deref().unwrap_or("no")})
        }
        other => {
            return Err(refuse(vm, &what, &format!("interface type '{other}'")));
        }
    };
    vm.command("netdev_add", Some(netdev)).await?;
    let undo = async || {
        let _ = vm.command("netdev_del", Some(json!({"id": host}))).await;
    };
    if let Some(tap) = &n.target_dev {
        let set = match (&n.source_bridge, n.iface_type) {
            (Some(br), InterfaceType::Bridge | InterfaceType::Network) => net::attach(tap, br),
            _ if n.target_managed != Some(false) => net::up(tap),
            _ => Ok(()),
        };
        if let Err(e) = set {
            undo().await;
            return Err(DriverError::Failed(format!(
                "{what}: host device {tap}: {e}"
            )));
        }
        // as at start: libvirt's default qdisc, then the shaping
        super::bandwidth::set_default_qdisc(tap);
        if let Some(bw) = &n.bandwidth
            && let Err(e) = super::bandwidth::apply(tap, Some(bw))
        {
            undo().await;
            return Err(DriverError::Failed(e));
        }
    }
    // virtio and e1000e are PCI Express devices (a root port on q35); older models are not
    let pcie = matches!(model, "virtio" | "e1000e");
    let slot = match free_slot(vm, n.info.address.as_ref(), pcie, &what).await {
        Ok(s) => s,
        Err(e) => {
            undo().await;
            return Err(e);
        }
    };
    let mut args = json!({"driver": qdev, "netdev": host, "id": alias,
                          "mac": n.mac.to_string(), "bus": slot.qdev_bus,
                          "addr": slot.addr()});
    match n.boot_order {
        Some(o) => args["bootindex"] = json!(o),
        None if qdev == "virtio-net-pci" => args["romfile"] = json!(""),
        None => {}
    }
    if let Err(e) = vm.command("device_add", Some(args)).await {
        undo().await;
        return Err(e);
    }
    if n.link_state == Some(LinkState::Down) {
        vm.command("set_link", Some(json!({"name": alias, "up": false})))
            .await?;
    }
    n.info.alias = Some(alias);
    n.info.address = Some(slot.address());
    lock(&vm.live).devices.interfaces.push(n.clone());
    Ok(n)
}

/// Remove `device` (as the live definition has it) from the guest.
pub async fn detach(vm: &Vm, device: &Device) -> DriverResult<()> {
    let d = device.as_devices();
    if let Some(disk) = d.disks.first() {
        return detach_disk(vm, &disk.target_dev).await;
    }
    if let Some(nic) = d.interfaces.first() {
        return detach_nic(vm, &nic.mac.to_string()).await;
    }
    Err(DriverError::NotSupported(format!(
        "cannot hot-unplug a <{}> device from running domain '{}': only disks and interfaces \
         hot-unplug",
        device.element(),
        vm.name
    )))
}

async fn detach_disk(vm: &Vm, target: &str) -> DriverResult<()> {
    let what = format!("disk '{target}'");
    let disk = lock(&vm.live)
        .devices
        .disks
        .iter()
        .find(|d| d.target_dev == target)
        .cloned()
        .ok_or_else(|| DriverError::InvalidArgument(format!("no {what}")))?;
    if disk.target_bus != Some(DiskBus::Virtio) || disk.device != DiskDevice::Disk {
        return Err(DriverError::NotSupported(format!(
            "cannot hot-unplug {what} from running domain '{}': only virtio hard disks \
             hot-unplug",
            vm.name
        )));
    }
    let node = cmdline::node_base(target).map_err(cmdline_error)?;
    let top = nodes::top_nodes(vm, &[target]).await?;
    if top.first().is_some_and(|t| t.node != node) {
        return Err(DriverError::NotSupported(format!(
            "cannot hot-unplug {what} from running domain '{}': it writes to an external \
             snapshot's overlay",
            vm.name
        )));
    }
    let alias = disk
        .info
        .alias
        .ok_or_else(|| DriverError::Failed(format!("{what} has no device id")))?;
    remove_device(vm, &alias, &what, RELEASE_WAIT).await?;
    del_nodes(vm, &[&node, &format!("{node}-file")]).await;
    lock(&vm.live)
        .devices
        .disks
        .retain(|d| d.target_dev != target);
    Ok(())
}

async fn detach_nic(vm: &Vm, mac: &str) -> DriverResult<()> {
    let what = format!("interface {mac}");
    let alias = lock(&vm.live)
        .devices
        .interfaces
        .iter()
        .find(|i| i.mac.to_string() == mac)
        .map(|i| i.info.alias.clone())
        .ok_or_else(|| DriverError::InvalidArgument(format!("no {what}")))?
        .ok_or_else(|| DriverError::Failed(format!("{what} has no device id")))?;
    remove_device(vm, &alias, &what, RELEASE_WAIT).await?;
    if let Err(e) = vm
        .command("netdev_del", Some(json!({"id": format!("host{alias}")})))
        .await
    {
        tracing::warn!("domain '{}': {what}: {e}", vm.name);
    }
    lock(&vm.live)
        .devices
        .interfaces
        .retain(|i| i.mac.to_string() != mac);
    Ok(())
}

/// `device_del`, then wait until the guest has let the device go.
pub(super) async fn remove_device(
    vm: &Vm,
    id: &str,
    what: &str,
    wait: Duration,
) -> DriverResult<()> {
    let mut deleted = vm.deleted();
    let before = deleted.borrow_and_update().len();
    vm.command("device_del", Some(json!({"id": id}))).await?;
    let released = deleted.wait_for(|v| {
        v.get(before..)
            .is_some_and(|new| new.iter().any(|x| x == id))
    });
    match tokio::time::timeout(wait, released).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(_)) => Err(DriverError::Failed(format!(
            "domain '{}': QEMU exited while {what} was being removed",
            vm.name
        ))),
        Err(_) => Err(DriverError::Timeout(format!(
            "domain '{}': the guest did not release {what} within {wait:?} (it may \
             still do so; the device stays in the live definition until then)",
            vm.name
        ))),
    }
}

async fn del_nodes(vm: &Vm, names: &[&str]) {
    for n in names {
        if let Err(e) = vm
            .command("blockdev-del", Some(json!({"node-name": n})))
            .await
        {
            tracing::warn!("domain '{}': blockdev-del {n}: {e}", vm.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::drivers::qemu::fake::{Answer, FakeMonitor, domain, running_vm};

    const DISK: &str = "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>\
        <source file='/img/new.qcow2'/><target dev='vdb' bus='virtio'/><serial>S1</serial>\
        </disk>";
    const LIVE_DISK: &str = "<disk type='file' device='disk'><driver name='qemu' \
        type='qcow2'/><source file='/img/new.qcow2'/><target dev='vdb' bus='virtio'/>\
        <alias name='virtio-disk1'/></disk>";
    const NIC: &str = "<interface type='user'><mac address='52:54:00:00:00:07'/>\
        <model type='virtio'/></interface>";
    const LIVE_NIC: &str = "<interface type='user'><mac address='52:54:00:00:00:07'/>\
        <model type='virtio'/><alias name='net0'/></interface>";

    fn device(xml: &str) -> Device {
        Device::from_xml(xml).expect("device")
    }

    fn file_node() -> Value {
        json!({"execute": "blockdev-add", "arguments": {
            "driver": "file", "filename": "/img/new.qcow2", "node-name": "vb-vdb-file",
            "auto-read-only": true, "read-only": false}})
    }

    fn format_node() -> Value {
        json!({"execute": "blockdev-add", "arguments": {
            "node-name": "vb-vdb", "driver": "qcow2", "file": "vb-vdb-file",
            "read-only": false}})
    }

    fn blockdev_del(node: &str) -> Value {
        json!({"execute": "blockdev-del", "arguments": {"node-name": node}})
    }

    /// `query-block` as QEMU answers it with disk vdb plugged in.
    fn query_block() -> Answer {
        Answer::ok(json!([{
            "device": "", "qdev": "/machine/peripheral/virtio-disk1/virtio-backend",
            "inserted": {"node-name": "vb-vdb", "drv": "qcow2", "ro": false,
                         "file": "/img/new.qcow2", "backing_file_depth": 0,
                         "image": {"virtual-size": 1048576}}
        }]))
    }

    /// `query-pci` as QEMU answers it for an i440fx guest with slots 0 to 3 taken.
    fn query_pci() -> Answer {
        Answer::ok(json!([{"bus": 0, "devices": [
            {"bus": 0, "slot": 0, "function": 0}, {"bus": 0, "slot": 1, "function": 0},
            {"bus": 0, "slot": 1, "function": 1}, {"bus": 0, "slot": 2, "function": 0},
            {"bus": 0, "slot": 3, "function": 0}]}]))
    }

    fn query_pci_call() -> Value {
        json!({"execute": "query-pci"})
    }

    #[tokio::test]
    async fn disk_gets_its_nodes_then_a_free_slot_then_its_device() {
        let qmp = FakeMonitor::default();
        qmp.answer("query-pci", query_pci());
        // slot 4 is free in QEMU but the live definition records a device there
        let vm = running_vm(
            &qmp,
            domain(
                "<memballoon model='virtio'><address type='pci' domain='0x0000' bus='0x00' \
                 slot='0x04' function='0x0'/></memballoon>",
            ),
        );
        let got = attach(&vm, &device(DISK)).await.expect("attach");
        assert_eq!(
            qmp.log(),
            [
                file_node(),
                format_node(),
                query_pci_call(),
                json!({"execute": "device_add", "arguments": {
                    "driver": "virtio-blk-pci", "id": "virtio-disk1", "drive": "vb-vdb",
                    "bus": "pci.0", "addr": "0x5", "serial": "S1"}}),
            ]
        );
        let disk = &got.as_devices().disks[0];
        assert_eq!(disk.info.alias.as_deref(), Some("virtio-disk1"));
        let addr = disk.info.address.as_ref().expect("recorded address");
        assert_eq!(addr.get("slot"), Some("0x05"));
        assert_eq!(vm.live().devices.disks.len(), 1);
    }

    #[tokio::test]
    async fn a_named_slot_is_taken_only_when_free() {
        let qmp = FakeMonitor::default();
        qmp.answer("query-pci", query_pci());
        let vm = running_vm(&qmp, domain(""));
        let at = |slot: &str| {
            device(&DISK.replace(
                "</disk>",
                &format!(
                    "<address type='pci' domain='0x0000' bus='0x00' slot='{slot}' \
                     function='0x0'/></disk>"
                ),
            ))
        };
        let e = attach(&vm, &at("0x03"))
            .await
            .expect_err("slot 3 is QEMU's");
        assert!(
            matches!(&e, DriverError::InvalidArgument(m) if m.contains("0x03")),
            "{e:?}"
        );
        assert!(vm.live().devices.disks.is_empty());
        let got = attach(&vm, &at("0x09")).await.expect("slot 9 is free");
        assert_eq!(
            got.as_devices().disks[0]
                .info
                .address
                .as_ref()
                .and_then(|a| a.get("slot")),
            Some("0x09")
        );
        assert_eq!(
            qmp.log().last().expect("device_add")["arguments"]["addr"],
            "0x9"
        );
    }

    #[tokio::test]
    async fn nic_gets_its_netdev_then_a_free_slot_then_its_device() {
        let qmp = FakeMonitor::default();
        qmp.answer("query-pci", query_pci());
        let vm = running_vm(&qmp, domain(""));
        let got = attach(&vm, &device(NIC)).await.expect("attach");
        assert_eq!(
            qmp.log(),
            [
                json!({"execute": "netdev_add", "arguments": {"type": "user", "id": "hostnet0"}}),
                query_pci_call(),
                json!({"execute": "device_add", "arguments": {
                    "driver": "virtio-net-pci", "netdev": "hostnet0", "id": "net0",
                    "mac": "52:54:00:00:00:07", "bus": "pci.0", "addr": "0x4",
                    "romfile": ""}}),
            ]
        );
        assert_eq!(
            got.as_devices().interfaces[0].info.alias.as_deref(),
            Some("net0")
        );
        assert_eq!(vm.live().devices.interfaces.len(), 1);
    }

    #[tokio::test]
    async fn a_network_nic_needs_its_bridge_from_the_core() {
        let qmp = FakeMonitor::default();
        let vm = running_vm(&qmp, domain(""));
        let nic = "<interface type='network'><mac address='52:54:00:00:00:08'/>\
                   <source network='default'/><model type='virtio'/></interface>";
        let e = attach(&vm, &device(nic)).await.expect_err("no bridge");
        assert!(
            matches!(&e, DriverError::InvalidArgument(m) if m.contains("network 'default'")),
            "{e:?}"
        );
        assert!(qmp.log().is_empty(), "nothing was asked of QEMU");
        assert!(vm.live().devices.interfaces.is_empty());
    }

    #[tokio::test]
    async fn failed_device_add_drops_the_nodes_it_added() {
        let qmp = FakeMonitor::default();
        qmp.answer(
            "device_add",
            Answer::error("GenericError", "Bus 'pci.0' does not support hotplugging"),
        );
        let vm = running_vm(&qmp, domain(""));
        let e = attach(&vm, &device(DISK))
            .await
            .expect_err("device_add fails");
        assert!(
            matches!(&e, DriverError::Failed(m) if m.contains("does not support hotplugging")),
            "{e:?}"
        );
        assert_eq!(
            qmp.commands()[..4],
            ["blockdev-add", "blockdev-add", "query-pci", "device_add"]
        );
        assert_eq!(
            qmp.log()[4..],
            [blockdev_del("vb-vdb"), blockdev_del("vb-vdb-file")]
        );
        assert!(vm.live().devices.disks.is_empty());
    }

    #[tokio::test]
    async fn failed_format_node_drops_the_file_node() {
        let qmp = FakeMonitor::default();
        qmp.answer_once("blockdev-add", Answer::ok(json!({})))
            .answer_once(
                "blockdev-add",
                Answer::error("GenericError", "Image is not in qcow2 format"),
            );
        let vm = running_vm(&qmp, domain(""));
        attach(&vm, &device(DISK))
            .await
            .expect_err("format node fails");
        assert_eq!(
            qmp.log(),
            [file_node(), format_node(), blockdev_del("vb-vdb-file")]
        );
    }

    #[tokio::test]
    async fn failed_nic_device_add_drops_the_netdev() {
        let qmp = FakeMonitor::default();
        qmp.answer(
            "device_add",
            Answer::error("GenericError", "Duplicate device ID"),
        );
        let vm = running_vm(&qmp, domain(""));
        attach(&vm, &device(NIC))
            .await
            .expect_err("device_add fails");
        assert_eq!(
            qmp.commands(),
            ["netdev_add", "query-pci", "device_add", "netdev_del"]
        );
        assert_eq!(qmp.log()[3]["arguments"], json!({"id": "hostnet0"}));
        assert!(vm.live().devices.interfaces.is_empty());
    }

    #[tokio::test]
    async fn disk_unplug_waits_for_the_guest_then_drops_the_nodes() {
        let qmp = FakeMonitor::default();
        qmp.answer("query-block", query_block()).answer(
            "device_del",
            Answer::ok(json!({})).with_event("DEVICE_DELETED", json!({"device": "virtio-disk1"})),
        );
        let vm = running_vm(&qmp, domain(LIVE_DISK));
        detach(&vm, &device(LIVE_DISK)).await.expect("detach");
        assert_eq!(
            qmp.log(),
            [
                json!({"execute": "query-block"}),
                json!({"execute": "device_del", "arguments": {"id": "virtio-disk1"}}),
                blockdev_del("vb-vdb"),
                blockdev_del("vb-vdb-file"),
            ]
        );
        assert!(vm.live().devices.disks.is_empty());
    }

    #[tokio::test]
    async fn nic_unplug_waits_for_the_guest_then_drops_the_netdev() {
        let qmp = FakeMonitor::default();
        qmp.answer(
            "device_del",
            Answer::ok(json!({})).with_event("DEVICE_DELETED", json!({"device": "net0"})),
        );
        let vm = running_vm(&qmp, domain(LIVE_NIC));
        detach(&vm, &device(LIVE_NIC)).await.expect("detach");
        assert_eq!(
            qmp.log(),
            [
                json!({"execute": "device_del", "arguments": {"id": "net0"}}),
                json!({"execute": "netdev_del", "arguments": {"id": "hostnet0"}}),
            ]
        );
        assert!(vm.live().devices.interfaces.is_empty());
    }

    // Paused clock: the guest's twenty seconds pass at once.
    #[tokio::test(start_paused = true)]
    async fn unplug_the_guest_never_acknowledges_times_out_and_keeps_everything() {
        let qmp = FakeMonitor::default();
        qmp.answer("query-block", query_block());
        let vm = running_vm(&qmp, domain(LIVE_DISK));
        // another device's removal is not this one's
        qmp.emit("DEVICE_DELETED", json!({"device": "virtio-disk7"}));
        let e = detach(&vm, &device(LIVE_DISK))
            .await
            .expect_err("no DEVICE_DELETED");
        assert!(
            matches!(&e, DriverError::Timeout(m) if m.contains("did not release")),
            "{e:?}"
        );
        assert_eq!(qmp.commands(), ["query-block", "device_del"]);
        assert_eq!(vm.live().devices.disks.len(), 1);
    }

    #[tokio::test]
    async fn refused_device_del_sends_nothing_more() {
        let qmp = FakeMonitor::default();
        qmp.answer(
            "device_del",
            Answer::error("DeviceNotFound", "Device 'net0' not found"),
        );
        let vm = running_vm(&qmp, domain(LIVE_NIC));
        detach(&vm, &device(LIVE_NIC))
            .await
            .expect_err("device_del fails");
        assert_eq!(qmp.commands(), ["device_del"]);
        assert_eq!(vm.live().devices.interfaces.len(), 1);
    }

    /// A running q35 guest: root ports 1 and 2 (hot-pluggable) and 3 (hotplug='off'),
    /// with `devices` besides.
    fn q35(devices: &str) -> crate::model::DomainDef {
        let port = |i: u32, f: u32, extra: &str| {
            format!(
                "<controller type='pci' index='{i}' model='pcie-root-port'>\
                 <model name='pcie-root-port'/><target chassis='{i}' port='{:#x}'{extra}/>\
                 <address type='pci' domain='0x0000' bus='0x00' slot='0x02' \
                 function='{f:#x}'{}/></controller>",
                0x10 + f,
                if f == 0 { " multifunction='on'" } else { "" }
            )
        };
        crate::model::DomainDef::from_xml(&format!(
            "<domain type='qemu'><name>g</name><uuid>6f2c1d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f</uuid>\
             <memory>131072</memory><os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type>\
             </os><devices><controller type='pci' index='0' model='pcie-root'/>{}{}{}\
             {devices}</devices></domain>",
            port(1, 0, ""),
            port(2, 1, ""),
            port(3, 2, " hotplug='off'"),
        ))
        .expect("q35 domain")
    }

    /// `query-pci` for that guest: the root ports at 00:02.x, `on_port2` behind port 2.
    fn q35_pci(on_port2: Value) -> Answer {
        let port = |f: u32, id: &str, devices: Value| {
            json!({"bus": 0, "slot": 2, "function": f, "qdev_id": id,
                   "pci_bridge": {"bus": {"number": 0, "secondary": f + 1,
                                          "subordinate": f + 1}, "devices": devices}})
        };
        Answer::ok(json!([{"bus": 0, "devices": [
            {"bus": 0, "slot": 0, "function": 0, "qdev_id": ""},
            port(0, "pci.1", json!([])), port(1, "pci.2", on_port2),
            port(2, "pci.3", json!([])),
            {"bus": 0, "slot": 31, "function": 0, "qdev_id": ""}]}]))
    }

    fn device_add_bus(qmp: &FakeMonitor) -> (String, String) {
        let last = qmp
            .log()
            .into_iter()
            .rev()
            .find(|c| c["execute"] == "device_add")
            .expect("device_add");
        (
            last["arguments"]["bus"].as_str().expect("bus").into(),
            last["arguments"]["addr"].as_str().expect("addr").into(),
        )
    }

    fn bus_slot(a: Option<&Address>) -> (Option<String>, Option<String>) {
        let a = a.expect("recorded address");
        (a.get("bus").map(Into::into), a.get("slot").map(Into::into))
    }

    #[tokio::test]
    async fn q35_plugs_take_the_empty_root_ports_in_turn_then_are_refused() {
        let qmp = FakeMonitor::default();
        qmp.answer("query-pci", q35_pci(json!([])));
        let vm = running_vm(&qmp, q35(""));
        let disk = attach(&vm, &device(DISK)).await.expect("disk");
        assert_eq!(device_add_bus(&qmp), ("pci.1".into(), "0x0".into()));
        assert_eq!(
            bus_slot(disk.as_devices().disks[0].info.address.as_ref()),
            (Some("0x01".into()), Some("0x00".into()))
        );
        // QEMU's view is unchanged here: the live definition's disk holds port 1
        let nic = attach(&vm, &device(NIC)).await.expect("nic");
        assert_eq!(device_add_bus(&qmp), ("pci.2".into(), "0x0".into()));
        assert_eq!(
            bus_slot(nic.as_devices().interfaces[0].info.address.as_ref()),
            (Some("0x02".into()), Some("0x00".into()))
        );
        // port 3 has hotplug='off'
        let third = NIC.replace("00:07", "00:08");
        let e = attach(&vm, &device(&third)).await.expect_err("no port");
        assert!(
            matches!(&e, DriverError::InvalidArgument(m)
                if m.contains("no free hot-pluggable PCIe port")),
            "{e:?}"
        );
        assert_eq!(vm.live().devices.interfaces.len(), 1);
        assert_eq!(
            qmp.commands().last().map(String::as_str),
            Some("netdev_del")
        );
    }

    #[tokio::test]
    async fn q35_refuses_an_occupied_port_or_the_root_bus() {
        let qmp = FakeMonitor::default();
        // QEMU has a device of its own behind port 2
        qmp.answer(
            "query-pci",
            q35_pci(json!([{"bus": 2, "slot": 0, "function": 0, "qdev_id": "ua-x"}])),
        );
        let on_port1 = "<disk type='file' device='disk'><source file='/img/a.qcow2'/>\
            <target dev='vda' bus='virtio'/><alias name='virtio-disk0'/>\
            <address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/></disk>";
        let vm = running_vm(&qmp, q35(on_port1));
        let at = |bus: &str| {
            device(&DISK.replace(
                "</disk>",
                &format!(
                    "<address type='pci' domain='0x0000' bus='{bus}' slot='0x00' \
                     function='0x0'/></disk>"
                ),
            ))
        };
        for (bus, holder) in [("0x01", "<disk> vda"), ("0x02", "QEMU device 'ua-x'")] {
            let e = attach(&vm, &at(bus)).await.expect_err("port taken");
            assert!(
                matches!(&e, DriverError::InvalidArgument(m)
                    if m.contains("disk 'vdb'") && m.contains(holder) && m.contains(bus)),
                "{e:?}"
            );
        }
        for bus in ["0x00", "0x03"] {
            let e = attach(&vm, &at(bus)).await.expect_err("not hot-pluggable");
            assert!(
                matches!(&e, DriverError::InvalidArgument(m)
                    if m.contains("cannot take a hot-plugged device") && m.contains(bus)),
                "{e:?}"
            );
        }
        assert_eq!(vm.live().devices.disks.len(), 1);
        assert!(!qmp.commands().iter().any(|c| c == "device_add"));
    }

    #[tokio::test]
    async fn q35_unplug_frees_the_port_for_the_next_plug() {
        let qmp = FakeMonitor::default();
        qmp.answer("query-pci", q35_pci(json!([])))
            .answer("query-block", query_block())
            .answer(
                "device_del",
                Answer::ok(json!({}))
                    .with_event("DEVICE_DELETED", json!({"device": "virtio-disk1"})),
            );
        let vm = running_vm(&qmp, q35(""));
        let first = attach(&vm, &device(DISK)).await.expect("attach");
        assert_eq!(device_add_bus(&qmp).0, "pci.1");
        detach(&vm, &first).await.expect("detach");
        attach(&vm, &device(DISK)).await.expect("attach again");
        assert_eq!(device_add_bus(&qmp).0, "pci.1");
    }

    #[tokio::test]
    async fn i440fx_with_a_full_root_bus_plugs_behind_its_pci_bridge() {
        let qmp = FakeMonitor::default();
        let root: Vec<Value> = (0..32)
            .map(|s| json!({"bus": 0, "slot": s, "function": 0}))
            .collect();
        qmp.answer(
            "query-pci",
            Answer::ok(json!([{"bus": 0, "devices": root}])),
        );
        let vm = running_vm(
            &qmp,
            crate::model::DomainDef::from_xml(
                "<domain type='qemu'><name>g</name>\
                 <uuid>6f2c1d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f</uuid><memory>131072</memory>\
                 <os><type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type></os><devices>\
                 <controller type='pci' index='0' model='pci-root'/>\
                 <controller type='pci' index='1' model='pci-bridge'>\
                 <model name='pci-bridge'/><target chassisNr='1'/>\
                 <address type='pci' domain='0x0000' bus='0x00' slot='0x1f' function='0x0'/>\
                 </controller></devices></domain>",
            )
            .expect("i440fx domain"),
        );
        let got = attach(&vm, &device(DISK)).await.expect("attach");
        assert_eq!(device_add_bus(&qmp), ("pci.1".into(), "0x1".into()));
        assert_eq!(
            bus_slot(got.as_devices().disks[0].info.address.as_ref()),
            (Some("0x01".into()), Some("0x01".into()))
        );
    }
}
