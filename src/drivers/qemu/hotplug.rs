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
    model::devices::{
        Device, Disk, DiskBus, DiskDevice, Interface, InterfaceType, LinkState, NetDriverName,
    },
    util::lock,
};

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
    if d.info.address.is_some() {
        return Err(refuse(
            vm,
            &what,
            "QEMU chooses the address of a hot-plugged disk",
        ));
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
    let (file, fmt) = cmdline::image_nodes(&d, &path, &node, &what).map_err(cmdline_error)?;
    vm.command("blockdev-add", Some(file)).await?;
    let file_node = format!("{node}-file");
    if let Err(e) = vm.command("blockdev-add", Some(fmt)).await {
        del_nodes(vm, &[&file_node]).await;
        return Err(e);
    }
    let mut args = json!({"driver": "virtio-blk-pci", "id": alias, "drive": node,
                          "bus": "pci.0"});
    if let Some(s) = &d.serial {
        args["serial"] = json!(s);
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
    lock(&vm.live).devices.disks.push(d.clone());
    Ok(d)
}

async fn attach_nic(vm: &Vm, mut n: Interface) -> DriverResult<Interface> {
    let what = format!("interface {}", n.mac);
    if n.info.address.is_some() {
        return Err(refuse(
            vm,
            &what,
            "QEMU chooses the address of a hot-plugged NIC",
        ));
    }
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
    let netdev = match n.iface_type {
        InterfaceType::User => json!({"type": "user", "id": host}),
        InterfaceType::Bridge | InterfaceType::Ethernet => {
            let tap = match &n.target_dev {
                Some(t) if n.iface_type == InterfaceType::Ethernet => t.clone(),
                _ => format!("vb{}n{i}", vm.id),
            };
            n.target_dev = Some(tap.clone());
            json!({"type": "tap", "id": host, "ifname": tap, "script": "no",
                   "downscript": "no"})
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
            (Some(br), InterfaceType::Bridge) => net::attach(tap, br),
            _ if n.target_managed != Some(false) => net::up(tap),
            _ => Ok(()),
        };
        if let Err(e) = set {
            undo().await;
            return Err(DriverError::Failed(format!(
                "{what}: host device {tap}: {e}"
            )));
        }
    }
    let mut args = json!({"driver": qdev, "netdev": host, "id": alias,
                          "mac": n.mac.to_string(), "bus": "pci.0"});
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
    remove_device(vm, &alias, &what).await?;
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
    remove_device(vm, &alias, &what).await?;
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
async fn remove_device(vm: &Vm, id: &str, what: &str) -> DriverResult<()> {
    let mut deleted = vm.deleted();
    let before = deleted.borrow_and_update().len();
    vm.command("device_del", Some(json!({"id": id}))).await?;
    let released = deleted.wait_for(|v| {
        v.get(before..)
            .is_some_and(|new| new.iter().any(|x| x == id))
    });
    match tokio::time::timeout(RELEASE_WAIT, released).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(_)) => Err(DriverError::Failed(format!(
            "domain '{}': QEMU exited while {what} was being removed",
            vm.name
        ))),
        Err(_) => Err(DriverError::Timeout(format!(
            "domain '{}': the guest did not release {what} within {RELEASE_WAIT:?} (it may \
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
