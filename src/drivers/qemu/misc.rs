//! QEMU's side of virsh's smaller domain commands: keys through `send-key`, the guest's
//! reboot action through `set-action`, guest suspend through the agent and wakeup through
//! `system_wakeup`, and the dirty page rate through `calc-dirty-rate` / `query-dirty-rate`.

use std::time::Duration;

use serde_json::{Value, json};

use super::{monitor::Vm, qga::Agent};
use crate::{
    drivers::{
        DriverError, DriverResult,
        misc::{DirtyRate, SuspendTarget},
    },
    model::{DomainDef, LifecycleAction},
};

/// Press `keys` (QEMU numbers) together, held `hold_ms` (0: QEMU's 100 ms).
pub async fn send_key(vm: &Vm, keys: &[u32], hold_ms: u32) -> DriverResult<()> {
    if let Some((i, k)) = keys.iter().enumerate().find(|(_, k)| **k > 0xffff) {
        return Err(DriverError::Failed(format!(
            "keycode {i} is invalid: 0x{k:X}"
        )));
    }
    let keys: Vec<Value> = keys
        .iter()
        .map(|k| json!({"type": "number", "data": k}))
        .collect();
    let mut args = json!({ "keys": keys });
    if hold_ms > 0 {
        args["hold-time"] = json!(hold_ms);
    }
    vm.command("send-key", Some(args)).await?;
    Ok(())
}

/// The lifecycle actions QEMU guests can have, refused in libvirt's words (its QEMU
/// driver's rules), and core dumps, which virtbus does not write.
pub fn lifecycle_check(def: &DomainDef) -> DriverResult<()> {
    use LifecycleAction as A;
    let (off, reboot, crash) = (def.on_poweroff, def.on_reboot, def.on_crash);
    let refuse = |m: &str| Err(DriverError::NotSupported(m.to_owned()));
    if [off, reboot, crash].contains(&Some(A::RenameRestart)) {
        return refuse(
            "qemu driver doesn't support the 'rename-restart' action for \
             'on_reboot'/'on_poweroff'/'on_crash'",
        );
    }
    if off == Some(A::Preserve) || reboot == Some(A::Preserve) {
        return refuse(
            "qemu driver doesn't support the 'preserve' action for 'on_reboot'/'on_poweroff'",
        );
    }
    if off == Some(A::Restart) && reboot == Some(A::Destroy) {
        return refuse(
            "qemu driver doesn't support 'onReboot' set to 'destroy and 'onPoweroff' set to \
             'reboot'",
        );
    }
    if let Some(a @ (A::CoredumpDestroy | A::CoredumpRestart)) = crash {
        return Err(DriverError::NotSupported(format!(
            "<on_crash>{a}</on_crash>: virtbus writes no guest core dumps"
        )));
    }
    Ok(())
}

/// Make the guest's own reboot a shutdown (`on_reboot` destroy, which the core then
/// carries out) or a reset in place.
pub async fn set_reboot_action(vm: &Vm, live: &DomainDef) -> DriverResult<()> {
    let reboot = if live.on_reboot == Some(LifecycleAction::Destroy) {
        "shutdown"
    } else {
        "reset"
    };
    vm.command("set-action", Some(json!({ "reboot": reboot })))
        .await?;
    Ok(())
}

/// Ask the guest agent to suspend the guest, after the checks libvirt makes: the machine
/// must support waking up from suspend, and `<pm>` must not forbid the target.
pub async fn pm_suspend(
    vm: &Vm,
    agent: &Agent,
    live: &DomainDef,
    target: SuspendTarget,
    timeout: Duration,
) -> DriverResult<()> {
    let machine = vm.command("query-current-machine", None).await?;
    if machine
        .get("wakeup-suspend-support")
        .and_then(Value::as_bool)
        != Some(true)
    {
        return Err(DriverError::NotSupported(
            "Domain does not have suspend support".into(),
        ));
    }
    let pm = live.pm.unwrap_or_default();
    let (s3, s4) = (pm.suspend_to_mem, pm.suspend_to_disk);
    if s3 == Some(false) && matches!(target, SuspendTarget::Mem | SuspendTarget::Hybrid) {
        return Err(DriverError::Failed(
            "S3 state is disabled for this domain".into(),
        ));
    }
    if s4 == Some(false) && target == SuspendTarget::Disk {
        return Err(DriverError::Failed(
            "S4 state is disabled for this domain".into(),
        ));
    }
    let cmd = match target {
        SuspendTarget::Mem => "guest-suspend-ram",
        SuspendTarget::Disk => "guest-suspend-disk",
        SuspendTarget::Hybrid => "guest-suspend-hybrid",
    };
    agent
        .execute_no_reply(cmd, None, timeout)
        .await
        .map_err(|e| DriverError::Failed(format!("domain '{}': guest agent: {e}", vm.name)))
}

/// Wake a guest suspended to RAM.
pub async fn pm_wakeup(vm: &Vm) -> DriverResult<()> {
    vm.command("system_wakeup", None).await?;
    Ok(())
}

/// Start measuring the dirty page rate for `secs` seconds. The dirty-bitmap mode needs KVM:
/// QEMU 7.2 under TCG dies of a segmentation fault measuring so.
pub async fn dirty_rate_calc(vm: &Vm, secs: u32, mode: &str) -> DriverResult<()> {
    let mut args = json!({ "calc-time": secs });
    if mode != "page-sampling" {
        let kvm = vm.command("query-kvm", None).await?;
        if kvm.get("enabled").and_then(Value::as_bool) != Some(true) {
            return Err(DriverError::NotSupported(format!(
                "{mode} calculation mode needs KVM: QEMU crashes measuring so under TCG"
            )));
        }
        args["mode"] = json!(mode);
    }
    vm.command("calc-dirty-rate", Some(args)).await?;
    Ok(())
}

/// The last measurement, as `query-dirty-rate` gives it.
pub async fn dirty_rate(vm: &Vm) -> DriverResult<DirtyRate> {
    let r = vm.command("query-dirty-rate", None).await?;
    let bad = |what: &str| {
        DriverError::Failed(format!("query-dirty-rate reply was missing '{what}' data"))
    };
    let status = match r.get("status").and_then(Value::as_str) {
        Some("unstarted") => 0,
        Some("measuring") => 1,
        Some("measured") => 2,
        Some(other) => {
            return Err(DriverError::Failed(format!(
                "Unknown dirty rate status: {other}"
            )));
        }
        None => return Err(bad("status")),
    };
    let int = |k: &str| r.get(k).and_then(Value::as_i64);
    Ok(DirtyRate {
        status,
        start_time: int("start-time").ok_or_else(|| bad("start-time"))?,
        period: int("calc-time").ok_or_else(|| bad("calc-time"))?,
        mode: r
            .get("mode")
            .and_then(Value::as_str)
            .unwrap_or("page-sampling")
            .to_owned(),
        mib_per_sec: if status == 2 {
            Some(int("dirty-rate").ok_or_else(|| bad("dirty-rate"))?)
        } else {
            None
        },
    })
}
