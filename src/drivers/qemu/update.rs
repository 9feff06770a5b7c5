//! Changes to a running guest's devices in place, as `UpdateDevice` asks: new media in a
//! CD-ROM (QMP's tray and medium commands, with the same `-blockdev` node names a start
//! gives the drive) and the link state of a network interface (`set_link`). Anything else
//! about a running device cannot change in place and is refused by name.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::monitor::Vm;
use crate::{
    drivers::{DriverError, DriverResult},
    model::devices::{Device, Disk, DiskDevice, Interface, LinkState},
    util::lock,
};

/// How long a guest that holds its tray closed gets to open it (without `force`).
const TRAY_WAIT: Duration = Duration::from_secs(10);

/// `what` of the running guest cannot change in place, and `why`.
fn refuse(vm: &Vm, what: &str, why: &str) -> DriverError {
    DriverError::NotSupported(format!(
        "cannot change {what} of running domain '{}' in place: {why}",
        vm.name
    ))
}

/// Apply `device` (a disk or an interface, as the new definition has it) to the running
/// guest, and record it in the driver's live definition.
pub async fn update(vm: &Vm, device: &Device, force: bool) -> DriverResult<()> {
    let d = device.as_devices();
    if let Some(new) = d.disks.first() {
        return media(vm, new, force).await;
    }
    if let Some(new) = d.interfaces.first() {
        return link(vm, new).await;
    }
    Err(refuse(
        vm,
        &format!("a <{}> device", device.element()),
        "only disks and interfaces change in place",
    ))
}

async fn media(vm: &Vm, new: &Disk, force: bool) -> DriverResult<()> {
    let old = lock(&vm.live)
        .devices
        .disks
        .iter()
        .find(|d| d.target_dev == new.target_dev)
        .cloned()
        .ok_or_else(|| {
            DriverError::InvalidArgument(format!("no disk with target {}", new.target_dev))
        })?;
    let what = format!("disk '{}'", new.target_dev);
    if old.device != DiskDevice::Cdrom || new.device != DiskDevice::Cdrom {
        return Err(refuse(
            vm,
            &what,
            "only a CD-ROM's medium can change while the guest runs",
        ));
    }
    if new.target_bus.is_some_and(|b| Some(b) != old.target_bus)
        || new.boot_order != old.boot_order
        || new.serial != old.serial
        || new.shareable != old.shareable
    {
        return Err(refuse(
            vm,
            &what,
            "only its medium can change, not its bus, boot order, serial or sharing",
        ));
    }
    let id = old
        .info
        .alias
        .clone()
        .ok_or_else(|| DriverError::Failed(format!("{what} has no device id")))?;
    let node = format!("vb-{}", new.target_dev);
    let path = new.source.as_ref().and_then(|s| s.path.clone());
    // a medium is a file or device path, or a network source
    let has_medium = |d: &Disk| {
        d.source
            .as_ref()
            .is_some_and(|s| s.path.is_some() || s.network.is_some())
    };
    let nodes = if has_medium(new) {
        Some(
            super::cmdline::image_nodes(new, path.as_deref().unwrap_or(""), &node, &what)
                .map_err(|e| DriverError::NotSupported(e.to_string()))?,
        )
    } else {
        None
    };
    if let Some(p) = &path
        && !std::path::Path::new(p).exists()
    {
        return Err(DriverError::InvalidArgument(format!(
            "{what}: cannot read {p}: no such file"
        )));
    }

    // Out with the old medium: open the tray (the guest may hold it closed, unless forced),
    // take the medium out, drop its nodes.
    vm.command(
        "blockdev-open-tray",
        Some(json!({"id": id, "force": force})),
    )
    .await?;
    let t = Instant::now();
    while !tray_open(vm, &id).await? {
        if t.elapsed() > TRAY_WAIT {
            return Err(DriverError::Timeout(format!(
                "{what}: the guest keeps its tray closed (use force to open it anyway)"
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    vm.command("blockdev-remove-medium", Some(json!({"id": id})))
        .await?;
    if has_medium(&old) {
        for n in [node.clone(), format!("{node}-file")] {
            vm.command("blockdev-del", Some(json!({"node-name": n})))
                .await?;
        }
    }

    // In with the new one, if any; the tray closes either way, as a real drive's would.
    if let Some((file, fmt)) = nodes {
        vm.command("blockdev-add", Some(file)).await?;
        vm.command("blockdev-add", Some(fmt)).await?;
        vm.command(
            "blockdev-insert-medium",
            Some(json!({"id": id, "node-name": node})),
        )
        .await?;
    }
    vm.command("blockdev-close-tray", Some(json!({"id": id})))
        .await?;
    let mut live = lock(&vm.live);
    if let Some(d) = live
        .devices
        .disks
        .iter_mut()
        .find(|d| d.target_dev == new.target_dev)
    {
        d.source = new.source.clone();
        d.driver = new.driver.clone();
        d.disk_type = new.disk_type;
    }
    Ok(())
}

/// Whether `query-block` shows the tray of device `id` open.
async fn tray_open(vm: &Vm, id: &str) -> DriverResult<bool> {
    let blocks = vm.command("query-block", None).await?;
    Ok(blocks
        .as_array()
        .into_iter()
        .flatten()
        .find(|b| b.get("qdev").and_then(Value::as_str) == Some(id))
        .and_then(|b| b.get("tray_open"))
        .and_then(Value::as_bool)
        .unwrap_or(false))
}

async fn link(vm: &Vm, new: &Interface) -> DriverResult<()> {
    let old = lock(&vm.live)
        .devices
        .interfaces
        .iter()
        .find(|i| i.mac == new.mac)
        .cloned()
        .ok_or_else(|| {
            DriverError::InvalidArgument(format!("no interface with MAC address {}", new.mac))
        })?;
    let what = format!("interface {}", new.mac);
    let same = |a: &Option<String>, b: &Option<String>| b.is_none() || a == b;
    if new.iface_type != old.iface_type
        || !same(&old.source_bridge, &new.source_bridge)
        || !same(&old.source_network, &new.source_network)
        || !same(&old.model, &new.model)
        || !same(&old.target_dev, &new.target_dev)
        || new.boot_order != old.boot_order
    {
        return Err(refuse(
            vm,
            &what,
            "only its link state can change, not its type, source, model or boot order",
        ));
    }
    let id = old
        .info
        .alias
        .clone()
        .ok_or_else(|| DriverError::Failed(format!("{what} has no device id")))?;
    let up = new.link_state != Some(LinkState::Down);
    if up != (old.link_state != Some(LinkState::Down)) {
        vm.command("set_link", Some(json!({"name": id, "up": up})))
            .await?;
    }
    let mut live = lock(&vm.live);
    if let Some(i) = live
        .devices
        .interfaces
        .iter_mut()
        .find(|i| i.mac == new.mac)
    {
        i.link_state = new.link_state;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::drivers::qemu::fake::{Answer, FakeMonitor, domain, running_vm};

    const ID: &str = "sata0-0-0";

    fn cdrom(source: Option<&str>, alias: bool) -> String {
        format!(
            "<disk type='file' device='cdrom'><driver name='qemu' type='raw'/>{}\
             <target dev='sda' bus='sata'/><readonly/>{}</disk>",
            source.map_or(String::new(), |s| format!("<source file='{s}'/>")),
            if alias {
                format!("<alias name='{ID}'/>")
            } else {
                String::new()
            }
        )
    }

    fn nic(link: &str, alias: bool) -> String {
        format!(
            "<interface type='user'><mac address='52:54:00:00:00:07'/><model type='virtio'/>\
             <link state='{link}'/>{}</interface>",
            if alias { "<alias name='net0'/>" } else { "" }
        )
    }

    fn device(xml: &str) -> Device {
        Device::from_xml(xml).expect("device")
    }

    fn tray(open: bool) -> Answer {
        Answer::ok(json!([{"device": "", "qdev": ID, "tray_open": open, "removable": true}]))
    }

    fn cmd(name: &str, args: serde_json::Value) -> serde_json::Value {
        json!({"execute": name, "arguments": args})
    }

    /// What takes the old medium out: the tray opened, then its nodes dropped.
    fn out_with_the_old(force: bool) -> Vec<serde_json::Value> {
        vec![
            cmd("blockdev-open-tray", json!({"id": ID, "force": force})),
            json!({"execute": "query-block"}),
            cmd("blockdev-remove-medium", json!({"id": ID})),
            cmd("blockdev-del", json!({"node-name": "vb-sda"})),
            cmd("blockdev-del", json!({"node-name": "vb-sda-file"})),
        ]
    }

    #[tokio::test]
    async fn media_change_swaps_nodes_through_the_tray() {
        let dir = tempfile::tempdir().expect("tempdir");
        let iso = dir.path().join("new.iso");
        std::fs::write(&iso, b"").expect("iso");
        let iso = iso.display().to_string();
        let qmp = FakeMonitor::default();
        qmp.answer("query-block", tray(true));
        let vm = running_vm(&qmp, domain(&cdrom(Some("/img/old.iso"), true)));
        update(&vm, &device(&cdrom(Some(&iso), false)), false)
            .await
            .expect("change");
        let mut want = out_with_the_old(false);
        want.extend([
            cmd(
                "blockdev-add",
                json!({"driver": "file", "filename": iso, "node-name": "vb-sda-file",
                       "auto-read-only": true, "read-only": true}),
            ),
            cmd(
                "blockdev-add",
                json!({"node-name": "vb-sda", "driver": "raw", "file": "vb-sda-file",
                       "read-only": true}),
            ),
            cmd(
                "blockdev-insert-medium",
                json!({"id": ID, "node-name": "vb-sda"}),
            ),
            cmd("blockdev-close-tray", json!({"id": ID})),
        ]);
        assert_eq!(qmp.log(), want);
        let live = vm.live();
        let src = live.devices.disks[0].source.as_ref();
        assert_eq!(src.and_then(|s| s.path.as_deref()), Some(iso.as_str()));
    }

    #[tokio::test]
    async fn eject_leaves_the_drive_empty_and_closed() {
        let qmp = FakeMonitor::default();
        qmp.answer("query-block", tray(true));
        let vm = running_vm(&qmp, domain(&cdrom(Some("/img/old.iso"), true)));
        update(&vm, &device(&cdrom(None, false)), true)
            .await
            .expect("eject");
        let mut want = out_with_the_old(true);
        want.push(cmd("blockdev-close-tray", json!({"id": ID})));
        assert_eq!(qmp.log(), want);
        assert!(vm.live().devices.disks[0].source.is_none());
    }

    #[tokio::test]
    async fn a_tray_the_guest_holds_is_polled_until_open() {
        let qmp = FakeMonitor::default();
        qmp.answer_once("query-block", tray(false))
            .answer("query-block", tray(true));
        let vm = running_vm(&qmp, domain(&cdrom(Some("/img/old.iso"), true)));
        update(&vm, &device(&cdrom(None, false)), false)
            .await
            .expect("eject");
        assert_eq!(
            qmp.commands(),
            [
                "blockdev-open-tray",
                "query-block",
                "query-block",
                "blockdev-remove-medium",
                "blockdev-del",
                "blockdev-del",
                "blockdev-close-tray",
            ]
        );
    }

    #[tokio::test]
    async fn a_missing_image_is_refused_before_any_command() {
        let qmp = FakeMonitor::default();
        let vm = running_vm(&qmp, domain(&cdrom(Some("/img/old.iso"), true)));
        let e = update(
            &vm,
            &device(&cdrom(Some("/nonexistent/new.iso"), false)),
            false,
        )
        .await
        .expect_err("no such file");
        assert!(matches!(e, DriverError::InvalidArgument(_)), "{e:?}");
        assert!(qmp.log().is_empty());
    }

    #[tokio::test]
    async fn link_state_goes_through_set_link_only_when_it_changes() {
        let qmp = FakeMonitor::default();
        let vm = running_vm(&qmp, domain(&nic("up", true)));
        update(&vm, &device(&nic("down", false)), false)
            .await
            .expect("down");
        assert_eq!(
            qmp.log(),
            [cmd("set_link", json!({"name": "net0", "up": false}))]
        );
        assert_eq!(
            vm.live().devices.interfaces[0].link_state,
            Some(LinkState::Down)
        );
        update(&vm, &device(&nic("down", false)), false)
            .await
            .expect("same");
        assert_eq!(qmp.log().len(), 1, "no change, no command");
        update(&vm, &device(&nic("up", false)), false)
            .await
            .expect("up");
        assert_eq!(
            qmp.log()[1],
            cmd("set_link", json!({"name": "net0", "up": true}))
        );
    }
}
