//! Checkpoints on a running QEMU: one persistent dirty bitmap per included disk, in the
//! disk's top qcow2 image, as libvirt 9.0 keeps them (every checkpoint's bitmap records on
//! its own; deleting one removes its bitmap, nothing is merged).
//!
//! API for other QMP transactions (backup-begin's `--checkpointxml`): [`add_actions`] turns
//! a checkpoint's bitmaps into `transaction` actions, given a `query-block` reply; run them
//! in your own `transaction`, then record the checkpoint with
//! `Core::checkpoint_record` (see `crate::core::checkpoints`).

use serde_json::{Value, json};

use super::{monitor::Vm, snapshot::nodes::top_node};
use crate::{
    drivers::{
        DriverError, DriverResult,
        checkpoint::{BitmapRequest, DiskBitmap},
    },
    model::DomainDef,
};

/// The top format node of disk `target` in a `query-block` reply.
fn node_of(query_block: &Value, live: &DomainDef, target: &str) -> DriverResult<String> {
    let alias = live
        .devices
        .disks
        .iter()
        .find(|d| d.target_dev == target)
        .and_then(|d| d.info.alias.clone())
        .ok_or_else(|| {
            DriverError::InvalidArgument(format!("the running domain has no disk '{target}'"))
        })?;
    top_node(query_block, &alias)
        .map(|t| t.node)
        .ok_or_else(|| DriverError::Failed(format!("QEMU reports no image for disk '{target}'")))
}

/// The `transaction` actions that add `bitmaps` as persistent, recording bitmaps
/// (libvirt's `qemuMonitorTransactionBitmapAdd(.., persistent, !disabled, 0)`).
pub fn add_actions(
    query_block: &Value,
    live: &DomainDef,
    bitmaps: &[DiskBitmap],
) -> DriverResult<Vec<Value>> {
    bitmaps
        .iter()
        .map(|b| {
            let node = node_of(query_block, live, &b.target)?;
            Ok(json!({
                "type": "block-dirty-bitmap-add",
                "data": {"node": node, "name": b.bitmap, "persistent": true},
            }))
        })
        .collect()
}

/// The bitmaps of node `node` in a `query-named-block-nodes` reply.
fn bitmaps_of<'a>(named: &'a Value, node: &str) -> Vec<&'a Value> {
    named
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n.get("node-name").and_then(Value::as_str) == Some(node))
        .and_then(|n| n.get("dirty-bitmaps"))
        .and_then(Value::as_array)
        .map(|v| v.iter().collect())
        .unwrap_or_default()
}

/// Bitmap `name` of `node`, when it is there and usable: persistent, not inconsistent.
fn usable<'a>(named: &'a Value, node: &str, name: &str) -> Option<&'a Value> {
    bitmaps_of(named, node).into_iter().find(|b| {
        b.get("name").and_then(Value::as_str) == Some(name)
            && b.get("persistent").and_then(Value::as_bool) == Some(true)
            && b.get("inconsistent").and_then(Value::as_bool) != Some(true)
    })
}

/// Carry out `req` on the running guest.
pub async fn request(
    vm: &Vm,
    live: &DomainDef,
    req: BitmapRequest,
) -> DriverResult<Vec<Option<u64>>> {
    let blocks = vm.command("query-block", None).await?;
    match req {
        BitmapRequest::Add(b) => {
            let actions = add_actions(&blocks, live, &b)?;
            if !actions.is_empty() {
                vm.command("transaction", Some(json!({ "actions": actions })))
                    .await?;
            }
            Ok(Vec::new())
        }
        BitmapRequest::Remove(b) => {
            let named = vm
                .command("query-named-block-nodes", Some(json!({"flat": true})))
                .await?;
            let mut actions = Vec::new();
            for d in &b {
                let node = node_of(&blocks, live, &d.target)?;
                if !bitmaps_of(&named, &node)
                    .iter()
                    .any(|x| x.get("name").and_then(Value::as_str) == Some(d.bitmap.as_str()))
                {
                    return Err(DriverError::Failed(format!(
                        "bitmap '{}' not found in backing chain of '{}'",
                        d.bitmap, d.target
                    )));
                }
                actions.push(json!({
                    "type": "block-dirty-bitmap-remove",
                    "data": {"node": node, "name": d.bitmap},
                }));
            }
            if !actions.is_empty() {
                vm.command("transaction", Some(json!({ "actions": actions })))
                    .await?;
            }
            Ok(Vec::new())
        }
        BitmapRequest::Measure(b) => {
            let named = vm
                .command("query-named-block-nodes", Some(json!({"flat": true})))
                .await?;
            b.iter()
                .map(|d| {
                    let node = node_of(&blocks, live, &d.target)?;
                    Ok(usable(&named, &node, &d.bitmap)
                        .and_then(|x| x.get("count").and_then(Value::as_u64)))
                })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_persistent_consistent_bitmaps_count() {
        let named = json!([{"node-name": "vb-vda", "dirty-bitmaps": [
            {"name": "a", "persistent": true, "count": 65536},
            {"name": "b", "persistent": false, "count": 0},
            {"name": "c", "persistent": true, "inconsistent": true, "count": 0},
        ]}]);
        assert!(usable(&named, "vb-vda", "a").is_some());
        assert!(usable(&named, "vb-vda", "b").is_none());
        assert!(usable(&named, "vb-vda", "c").is_none());
        assert!(usable(&named, "vb-vdb", "a").is_none());
    }
}
