//! vCPU hot-plug and hot-unplug of a running QEMU, as libvirt's QEMU driver does for
//! `setvcpus --live`: a vCPU comes with `device_add` of the CPU type and properties QEMU
//! names in `query-hotpluggable-cpus` (id `vcpuN`, as libvirt names it), and goes with
//! `device_del` once the guest released it (`DEVICE_DELETED`). Only vCPUs added so can go:
//! those of `-smp` are not hotpluggable.

use serde_json::{Map, Value, json};

use super::{hotplug::remove_device, monitor::Vm};
use crate::drivers::{DriverError, DriverResult};
use crate::model::{DomainDef, tuning::VcpuState};

/// How long the guest gets to release a vCPU: libvirt's wait.
const UNPLUG_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// libvirt's alias of a hot-plugged vCPU.
fn alias(id: usize) -> String {
    format!("vcpu{id}")
}

/// Each vCPU's state in `live`: as `<vcpus>` says, or (without it) the first `current`
/// online and not hotpluggable (they came with `-smp`), in order of creation.
pub(super) fn states(live: &DomainDef) -> Vec<VcpuState> {
    if !live.tuning.vcpus.is_empty() {
        return live.tuning.vcpus.clone();
    }
    let cur = live.vcpus();
    (0..live.max_vcpus)
        .map(|i| VcpuState {
            enabled: i < cur,
            hotpluggable: i >= cur,
            order: (i < cur).then_some(i + 1),
        })
        .collect()
}

/// One entry of `query-hotpluggable-cpus`: the device type and its placement properties.
struct Slot {
    driver: String,
    props: Map<String, Value>,
}

/// The properties that place a CPU, outermost first.
const SLOT_KEYS: [&str; 7] = [
    "drawer-id",
    "book-id",
    "socket-id",
    "die-id",
    "cluster-id",
    "core-id",
    "thread-id",
];

/// The hot-pluggable CPU slots by vCPU id: QEMU lists them from the last, each one vCPU
/// wide when each core has one thread.
async fn slots(vm: &Vm, max: usize) -> DriverResult<Vec<Slot>> {
    let reply = vm.command("query-hotpluggable-cpus", None).await?;
    let mut list: Vec<(Vec<i64>, Slot)> = Vec::new();
    for e in reply.as_array().into_iter().flatten() {
        if e.get("vcpus-count").and_then(Value::as_u64) != Some(1) {
            return Err(DriverError::NotSupported(
                "target vm vcpu granularity does not allow the desired vcpu count".into(),
            ));
        }
        let props = e
            .get("props")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let key = SLOT_KEYS
            .iter()
            .map(|k| props.get(*k).and_then(Value::as_i64).unwrap_or(0))
            .collect();
        let driver = e
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        list.push((key, Slot { driver, props }));
    }
    if list.len() != max {
        return Err(DriverError::Failed(format!(
            "domain '{}': QEMU reports {} hotpluggable vCPU slots, the definition has {max}",
            vm.name,
            list.len()
        )));
    }
    list.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(list.into_iter().map(|(_, s)| s).collect())
}

/// Renumbers the online vCPUs' `order` by creation (as QEMU lists them), the ones just
/// added last.
fn renumber(states: &mut [VcpuState]) {
    let mut online: Vec<usize> = (0..states.len()).filter(|i| states[*i].enabled).collect();
    online.sort_by_key(|i| (states[*i].order.unwrap_or(u32::MAX), *i));
    for s in states.iter_mut() {
        s.order = None;
    }
    for (n, i) in online.into_iter().enumerate() {
        states[i].order = Some(n as u32 + 1);
    }
}

/// Which vCPUs to plug (`true`) or unplug to reach `count`, as libvirt picks them: the
/// lowest offline ones, or the highest hot-plugged ones.
pub(super) fn select(states: &[VcpuState], count: u32) -> DriverResult<(Vec<usize>, bool)> {
    let cur = states.iter().filter(|s| s.enabled).count() as u32;
    let (ids, enable): (Vec<usize>, bool) = if count >= cur {
        let ids = (0..states.len())
            .filter(|i| !states[*i].enabled)
            .take((count - cur) as usize)
            .collect();
        (ids, true)
    } else {
        let ids = (0..states.len())
            .rev()
            .filter(|i| states[*i].enabled && states[*i].hotpluggable)
            .take((cur - count) as usize)
            .collect();
        (ids, false)
    };
    if ids.len() as u32 != count.abs_diff(cur) {
        return Err(DriverError::NotSupported(
            "failed to find appropriate hotpluggable vcpus to reach the desired target vcpu \
             count"
                .into(),
        ));
    }
    Ok((ids, enable))
}

/// Plug (`enable`) or unplug the vCPUs `ids`; returns every vCPU's state afterwards (also
/// when one failed midway: what changed so far), and keeps it in `vm`'s live definition.
pub(super) async fn change(
    vm: &Vm,
    ids: &[usize],
    enable: bool,
) -> (Vec<VcpuState>, DriverResult<()>) {
    let mut st = states(&vm.live());
    let r = apply(vm, &mut st, ids, enable).await;
    renumber(&mut st);
    {
        let mut live = crate::util::lock(&vm.live);
        let on = st.iter().filter(|s| s.enabled).count() as u32;
        live.current_vcpus = (on < live.max_vcpus).then_some(on);
        live.tuning.vcpus = st.clone();
    }
    (st, r)
}

async fn apply(vm: &Vm, st: &mut [VcpuState], ids: &[usize], enable: bool) -> DriverResult<()> {
    if enable {
        let slots = slots(vm, st.len()).await?;
        for &i in ids {
            let slot = &slots[i];
            let mut args = slot.props.clone();
            args.insert("driver".into(), json!(slot.driver));
            args.insert("id".into(), json!(alias(i)));
            vm.command("device_add", Some(Value::Object(args))).await?;
            st[i] = VcpuState {
                enabled: true,
                hotpluggable: true,
                order: Some(u32::MAX),
            };
        }
    } else {
        for &i in ids {
            if !st[i].hotpluggable {
                return Err(DriverError::NotSupported(format!(
                    "vcpu '{i}' can't be unplugged"
                )));
            }
            remove_device(vm, &alias(i), &format!("vCPU {i}"), UNPLUG_WAIT)
                .await
                .map_err(|e| match e {
                    DriverError::Timeout(_) => DriverError::Timeout(
                        "vcpu unplug request timed out. Unplug result must be manually \
                         inspected in the domain"
                            .into(),
                    ),
                    e => e,
                })?;
            st[i] = VcpuState {
                enabled: false,
                hotpluggable: true,
                order: None,
            };
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(enabled: bool, hotpluggable: bool, order: Option<u32>) -> VcpuState {
        VcpuState {
            enabled,
            hotpluggable,
            order,
        }
    }

    #[test]
    fn selects_as_libvirt() {
        let s = [
            st(true, false, Some(1)),
            st(false, true, None),
            st(false, true, None),
        ];
        assert_eq!(select(&s, 2).expect("plug"), (vec![1], true));
        assert_eq!(select(&s, 3).expect("plug"), (vec![1, 2], true));
        // vCPU 0 came with -smp: nothing may go
        assert!(select(&s, 0).is_err());
        let s = [
            st(true, false, Some(1)),
            st(true, true, Some(2)),
            st(true, true, Some(3)),
        ];
        assert_eq!(select(&s, 1).expect("unplug"), (vec![2, 1], false));
    }

    #[test]
    fn orders_follow_creation() {
        let mut s = vec![
            st(true, false, Some(1)),
            st(false, true, None),
            st(true, true, Some(3)),
            st(true, true, Some(u32::MAX)),
        ];
        renumber(&mut s);
        let orders: Vec<_> = s.iter().map(|v| v.order).collect();
        assert_eq!(orders, [Some(1), None, Some(2), Some(3)]);
    }
}
