//! I/O threads of a running QEMU added (`object-add` of an `iothread` named `iothreadN`, as
//! libvirt names them), removed (`object-del`) and retuned (`qom-set`), as libvirt's QEMU
//! driver does for `iothreadadd`, `iothreaddel` and `iothreadset`.

use serde_json::{Value, json};

use super::{cgtune::Groups, livetune::iothread_threads, monitor::Vm, pinning};
use crate::drivers::{
    DriverError, DriverResult,
    livecfg::{IoThreadChange, IoThreadParams},
};
use crate::model::DomainDef;

/// Carries `change` out on `vm`, whose own live definition then has `live`'s I/O threads
/// (so the status file, written next, keeps them across a daemon restart).
pub(super) async fn change(vm: &Vm, live: &DomainDef, change: IoThreadChange) -> DriverResult<()> {
    match change {
        IoThreadChange::Add(id) => add(vm, live, id).await?,
        IoThreadChange::Remove(id) => remove(vm, live, id).await?,
        IoThreadChange::Set(id, p) => set(vm, id, p).await?,
    }
    crate::util::lock(&vm.live).tuning.iothreads = live.tuning.iothreads.clone();
    Ok(())
}

fn alias(id: u32) -> String {
    format!("iothread{id}")
}

async fn add(vm: &Vm, live: &DomainDef, id: u32) -> DriverResult<()> {
    let name = alias(id);
    vm.command(
        "object-add",
        Some(json!({ "qom-type": "iothread", "id": name })),
    )
    .await?;
    let placed = async {
        let threads = iothread_threads(vm).await?;
        if !threads.iter().any(|(i, _)| *i == id) {
            return Err(DriverError::Failed(format!(
                "cannot find new IOThread '{id}' in QEMU monitor."
            )));
        }
        // the new thread into its cgroup (v1) and onto its CPUs, as at start
        pinning::apply(vm, live).await
    }
    .await;
    if let Err(e) = placed {
        if let Err(d) = vm.command("object-del", Some(json!({ "id": name }))).await {
            tracing::warn!(domain = %vm.name, iothread = id, "cannot remove iothread object: {d}");
        }
        return Err(e);
    }
    Ok(())
}

async fn remove(vm: &Vm, live: &DomainDef, id: u32) -> DriverResult<()> {
    let name = alias(id);
    vm.command("object-del", Some(json!({ "id": name })))
        .await?;
    let left = iothread_threads(vm).await?;
    if left.len() != live.tuning.iothreads.len() {
        return Err(DriverError::Failed(format!(
            "got wrong number of IOThread ids from QEMU monitor. got {}, wanted {}",
            left.len(),
            live.tuning.iothreads.len()
        )));
    }
    Groups::locate(&live.uuid)
        .remove_thread_group(&name)
        .map_err(|e| DriverError::Failed(format!("domain '{}': {e}", vm.name)))
}

async fn qom_set(vm: &Vm, path: &str, prop: &str, value: Value) -> DriverResult<()> {
    vm.command(
        "qom-set",
        Some(json!({ "path": path, "property": prop, "value": value })),
    )
    .await
    .map(|_| ())
}

async fn set(vm: &Vm, id: u32, p: IoThreadParams) -> DriverResult<()> {
    let path = format!("/objects/{}", alias(id));
    if let Some(v) = p.poll_max_ns {
        qom_set(vm, &path, "poll-max-ns", json!(v)).await?;
    }
    if let Some(v) = p.poll_grow {
        qom_set(vm, &path, "poll-grow", json!(v)).await?;
    }
    if let Some(v) = p.poll_shrink {
        qom_set(vm, &path, "poll-shrink", json!(v)).await?;
    }
    // the maximum first when the new minimum is above the current maximum (QEMU refuses
    // a minimum above the maximum)
    let mut max_first = false;
    if let (Some(min), Some(_)) = (p.pool_min, p.pool_max) {
        let cur = vm
            .command(
                "qom-get",
                Some(json!({ "path": path, "property": "thread-pool-max" })),
            )
            .await?;
        max_first = cur.as_i64().is_some_and(|m| m < i64::from(min));
    }
    let (a, b) = if max_first {
        (
            ("thread-pool-max", p.pool_max),
            ("thread-pool-min", p.pool_min),
        )
    } else {
        (
            ("thread-pool-min", p.pool_min),
            ("thread-pool-max", p.pool_max),
        )
    };
    for (prop, v) in [a, b] {
        if let Some(v) = v {
            qom_set(vm, &path, prop, json!(v)).await?;
        }
    }
    Ok(())
}

/// libvirt's `iothread.*` statistics from a `query-iothreads` reply: the count, and each
/// thread's polling values (by its id).
pub(super) fn stats(reply: &Value, out: &mut crate::drivers::Stats) {
    use crate::drivers::StatValue;
    let list: Vec<&Value> = reply.as_array().into_iter().flatten().collect();
    if list.is_empty() {
        return;
    }
    out.push(("iothread.count".into(), StatValue::U64(list.len() as u64)));
    for t in list {
        let Some(id) = t
            .get("id")
            .and_then(Value::as_str)
            .and_then(|s| s.strip_prefix("iothread"))
        else {
            continue;
        };
        for key in ["poll-max-ns", "poll-grow", "poll-shrink"] {
            if let Some(v) = t.get(key).and_then(Value::as_u64) {
                out.push((format!("iothread.{id}.{key}"), StatValue::U64(v)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_are_libvirts() {
        let reply = json!([{ "id": "iothread2", "thread-id": 7, "poll-max-ns": 32768,
            "poll-grow": 0, "poll-shrink": 0, "aio-max-batch": 0 }]);
        let mut out = Vec::new();
        stats(&reply, &mut out);
        let keys: Vec<&str> = out.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "iothread.count",
                "iothread.2.poll-max-ns",
                "iothread.2.poll-grow",
                "iothread.2.poll-shrink"
            ]
        );
    }
}
