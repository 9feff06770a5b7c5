//! Which block node a running QEMU uses for each disk, and what its images hold. Node names
//! change with external snapshots (the overlay becomes the top), so they are asked of QEMU
//! (`query-block` by device, `query-named-block-nodes` by image) rather than assumed.

use serde_json::Value;

use super::super::monitor::Vm;
use crate::drivers::{DriverError, DriverResult};

/// A disk's top node as the running QEMU has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopNode {
    pub node: String,
    pub file: String,
    pub format: String,
    pub virtual_size: u64,
    pub snapshots: Vec<String>,
    /// How many images lie below it.
    pub backing_depth: u64,
    pub read_only: bool,
}

/// An image node (format layer) anywhere in any chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageNode {
    pub node: String,
    pub file: String,
    pub read_only: bool,
    pub snapshots: Vec<String>,
}

fn snapshots_of(image: Option<&Value>) -> Vec<String> {
    image
        .and_then(|i| i.get("snapshots"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.get("name").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

/// The top node of the disk with device alias `alias` (e.g. `virtio-disk0`), from a
/// `query-block` reply.
pub fn top_node(query_block: &Value, alias: &str) -> Option<TopNode> {
    let base = format!("/machine/peripheral/{alias}");
    let dev = query_block.as_array()?.iter().find(|d| {
        d.get("qdev")
            .and_then(Value::as_str)
            .is_some_and(|q| q == base || q.starts_with(&format!("{base}/")))
    })?;
    inserted(dev)
}

/// The top node of every device with a medium, from a `query-block` reply.
pub fn tops(query_block: &Value) -> Vec<TopNode> {
    query_block
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(inserted)
        .collect()
}

fn inserted(dev: &Value) -> Option<TopNode> {
    let ins = dev.get("inserted")?;
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let image = ins.get("image");
    Some(TopNode {
        node: s(ins, "node-name")?,
        file: s(ins, "file").unwrap_or_default(),
        format: s(ins, "drv").unwrap_or_default(),
        virtual_size: image
            .and_then(|i| i.get("virtual-size"))
            .and_then(Value::as_u64)
            .unwrap_or(0),
        snapshots: snapshots_of(image),
        backing_depth: ins
            .get("backing_file_depth")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        read_only: ins.get("ro").and_then(Value::as_bool).unwrap_or(true),
    })
}

/// The format-layer nodes of a `query-named-block-nodes` reply.
pub fn image_nodes(named: &Value) -> Vec<ImageNode> {
    named
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| {
            !matches!(
                n.get("drv").and_then(Value::as_str),
                Some("file" | "host_device" | "host_cdrom")
            )
        })
        .filter_map(|n| {
            Some(ImageNode {
                node: n.get("node-name")?.as_str()?.to_owned(),
                file: n.get("file")?.as_str()?.to_owned(),
                read_only: n.get("ro").and_then(Value::as_bool).unwrap_or(true),
                snapshots: snapshots_of(n.get("image")),
            })
        })
        .collect()
}

/// The top nodes of the disks named by `targets`, in that order.
pub async fn top_nodes(vm: &Vm, targets: &[&str]) -> DriverResult<Vec<TopNode>> {
    let blocks = vm.command("query-block", None).await?;
    let live = vm.live();
    targets
        .iter()
        .map(|t| {
            let alias = live
                .devices
                .disks
                .iter()
                .find(|d| d.target_dev == *t)
                .and_then(|d| d.info.alias.clone())
                .ok_or_else(|| {
                    DriverError::Failed(format!("domain '{}': no running disk '{t}'", vm.name))
                })?;
            top_node(&blocks, &alias).ok_or_else(|| {
                DriverError::Failed(format!(
                    "domain '{}': QEMU reports no image for disk '{t}' ({alias})",
                    vm.name
                ))
            })
        })
        .collect()
}

/// The top node of every disk of the running QEMU.
pub async fn all_tops(vm: &Vm) -> DriverResult<Vec<TopNode>> {
    Ok(tops(&vm.command("query-block", None).await?))
}

/// Every image node of the running QEMU.
pub async fn all_images(vm: &Vm) -> DriverResult<Vec<ImageNode>> {
    let named = vm
        .command(
            "query-named-block-nodes",
            Some(serde_json::json!({"flat": true})),
        )
        .await?;
    Ok(image_nodes(&named))
}

/// Every node of the running QEMU, format and protocol layers alike: (node, driver, file).
pub async fn all_nodes(vm: &Vm) -> DriverResult<Vec<(String, String, String)>> {
    let named = vm
        .command(
            "query-named-block-nodes",
            Some(serde_json::json!({"flat": true})),
        )
        .await?;
    let s = |n: &Value, k: &str| n.get(k).and_then(Value::as_str).map(str::to_owned);
    Ok(named
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| Some((s(n, "node-name")?, s(n, "drv")?, s(n, "file")?)))
        .collect())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Trimmed from QEMU 7.2's answers for the test guest after one external snapshot.
    fn query_block() -> Value {
        json!([{
            "device": "",
            "qdev": "/machine/peripheral/virtio-disk0/virtio-backend",
            "inserted": {
                "node-name": "vb-vda-s1", "drv": "qcow2", "ro": false,
                "file": "/img/a.s1.qcow2", "backing_file_depth": 1,
                "image": {"virtual-size": 67108864, "format": "qcow2",
                          "snapshots": [{"name": "m1", "id": "1"}]}
            }
        }, {"device": "", "qdev": "/machine/peripheral/ide0-1-0", "type": "unknown"}])
    }

    #[test]
    fn top_node_by_alias() {
        let t = top_node(&query_block(), "virtio-disk0").expect("vda");
        assert_eq!(t.node, "vb-vda-s1");
        assert_eq!(t.file, "/img/a.s1.qcow2");
        assert_eq!(t.virtual_size, 64 << 20);
        assert_eq!(t.snapshots, ["m1"]);
        assert_eq!(t.backing_depth, 1);
        assert!(top_node(&query_block(), "virtio-disk1").is_none());
        assert!(
            top_node(&query_block(), "ide0-1-0").is_none(),
            "empty drive"
        );
    }

    #[test]
    fn image_nodes_skip_protocol_layers() {
        let named = json!([
            {"node-name": "vb-vda-s1", "drv": "qcow2", "file": "/img/a.s1.qcow2", "ro": false,
             "image": {"snapshots": []}},
            {"node-name": "#block074", "drv": "file", "file": "/img/a.s1.qcow2", "ro": false},
            {"node-name": "vb-vda", "drv": "qcow2", "file": "/img/a.qcow2", "ro": true,
             "image": {"snapshots": [{"name": "m0"}]}}
        ]);
        let n = image_nodes(&named);
        assert_eq!(n.len(), 2);
        assert!(n[1].read_only && n[1].snapshots == ["m0"]);
    }
}
