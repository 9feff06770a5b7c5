//! Live migration with QEMU's own migration stream over TCP, as libvirt's QEMU driver runs
//! it in its normal (client-managed) mode: the destination's QEMU starts with
//! `-incoming defer` and listens (`migrate-incoming`), the source's `migrate`s to it with
//! the capabilities and parameters asked for, and each side's job follows `query-migrate`.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::monitor::Vm;
use crate::drivers::{
    DriverError, DriverEvent, DriverResult,
    migrate::{MigrateOut, MigrateSetting, MigrationStats, qemu_uri},
};

/// The longest a migration may take.
const LIMIT: Duration = Duration::from_secs(1800);

/// How often the migration's status is read (and its progress reported).
const POLL: Duration = Duration::from_millis(50);

/// libvirt's range of incoming migration ports (`migration_port_min`/`max`).
const PORTS: std::ops::RangeInclusive<u16> = 49152..=49215;

/// Ports handed to incoming migrations that have not bound them yet.
static LEASED: std::sync::Mutex<Vec<(u16, std::time::Instant)>> = std::sync::Mutex::new(Vec::new());

/// A port of libvirt's migration range nobody listens on at `addr`.
pub fn free_port(addr: &str) -> Option<u16> {
    let mut leased = crate::util::lock(&LEASED);
    leased.retain(|(_, t)| t.elapsed() < Duration::from_secs(60));
    let host = if addr.is_empty() { "0.0.0.0" } else { addr };
    let p = PORTS.clone().find(|p| {
        !leased.iter().any(|(l, _)| l == p) && std::net::TcpListener::bind((host, *p)).is_ok()
    })?;
    leased.push((p, std::time::Instant::now()));
    Some(p)
}

fn tcp(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("tcp:[{host}]:{port}")
    } else {
        format!("tcp:{host}:{port}")
    }
}

/// Listen for the incoming stream at `host:port` (QEMU runs with `-incoming defer`).
pub async fn listen(vm: &Vm, host: &str, port: u16) -> DriverResult<()> {
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    let caps = json!({"capabilities": [{"capability": "events", "state": true}]});
    vm.command("migrate-set-capabilities", Some(caps)).await?;
    vm.command("migrate-incoming", Some(json!({ "uri": tcp(host, port) })))
        .await?;
    Ok(())
}

/// Wait for the incoming stream to end: `Ok` once QEMU has all the state.
pub async fn wait_incoming(vm: &Vm) -> DriverResult<()> {
    let deadline = Instant::now() + LIMIT;
    loop {
        let st = vm.command("query-migrate", None).await?;
        match st.get("status").and_then(Value::as_str) {
            Some("completed") => return Ok(()),
            Some("failed") | Some("cancelled") => {
                return Err(DriverError::Failed(format!(
                    "migration in job: {}",
                    st.get("error-desc")
                        .and_then(Value::as_str)
                        .unwrap_or("unexpectedly failed")
                )));
            }
            _ => {}
        }
        if Instant::now() >= deadline {
            return Err(DriverError::Timeout(
                "the incoming migration did not end".into(),
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Send the guest's state as `o` says, reporting each new pass over its memory; the guest
/// is paused at the end (QEMU stops it for the switch-over). The STOP and RESUME events are
/// the migration's own: the core reports what the guest went through.
pub async fn send(
    vm: &Vm,
    o: &MigrateOut,
    report: &(dyn Fn(DriverEvent) + Send + Sync),
) -> DriverResult<()> {
    let Some((host, port)) = qemu_uri(&o.uri) else {
        return Err(DriverError::InvalidArgument(format!(
            "unsupported migration URI '{}': virtbus migrates over tcp://HOST:PORT",
            o.uri
        )));
    };
    let cap = |name: &str, on: bool| json!({"capability": name, "state": on});
    let caps = json!({"capabilities": [
        cap("events", true),
        cap("auto-converge", o.auto_converge),
        cap("xbzrle", o.compressed),
        cap("postcopy-ram", o.postcopy),
    ]});
    vm.command("migrate-set-capabilities", Some(caps)).await?;
    let bandwidth = o.bandwidth_mib.saturating_mul(1 << 20).min(i64::MAX as u64);
    vm.command(
        "migrate-set-parameters",
        Some(json!({"max-bandwidth": bandwidth})),
    )
    .await?;
    vm.quiet_run_state(true);
    let r = async {
        if o.pause_first {
            vm.command("stop", None).await?;
        }
        vm.command("migrate", Some(json!({ "uri": tcp(&host, port) })))
            .await?;
        poll_out(vm, report).await
    }
    .await;
    if r.is_err() && o.pause_first {
        let _ = vm.command("cont", None).await;
    }
    vm.barrier().await;
    vm.quiet_run_state(false);
    r
}

async fn poll_out(vm: &Vm, report: &(dyn Fn(DriverEvent) + Send + Sync)) -> DriverResult<()> {
    let deadline = Instant::now() + LIMIT;
    let mut iteration = 0;
    loop {
        let st = vm.command("query-migrate", None).await?;
        let stats = stats_of(&st);
        if stats.memory_iteration > iteration {
            iteration = stats.memory_iteration;
            report(DriverEvent::MigrationIteration(iteration));
        }
        match stats.status.as_str() {
            "completed" => return Ok(()),
            "cancelled" => {
                return Err(DriverError::Failed(
                    "migration out job: canceled by client".into(),
                ));
            }
            "failed" => {
                return Err(DriverError::Failed(format!(
                    "migration out job: {}",
                    st.get("error-desc")
                        .and_then(Value::as_str)
                        .unwrap_or("unexpectedly failed")
                )));
            }
            _ => {}
        }
        if Instant::now() >= deadline {
            let _ = vm.command("migrate_cancel", None).await;
            return Err(DriverError::Timeout(format!(
                "the migration did not finish within {LIMIT:?}"
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// libvirt's migration statistics from a `query-migrate` answer.
pub fn stats_of(st: &Value) -> MigrationStats {
    let n = |v: &Value, k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    let ram = st.get("ram").cloned().unwrap_or(Value::Null);
    let page = n(&ram, "page-size");
    MigrationStats {
        status: st
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        time_elapsed_ms: n(st, "total-time"),
        downtime_ms: st.get("downtime").and_then(Value::as_u64),
        setup_time_ms: st.get("setup-time").and_then(Value::as_u64),
        memory_total: n(&ram, "total"),
        memory_processed: n(&ram, "transferred"),
        memory_remaining: n(&ram, "remaining"),
        // QEMU's Mbps: megabits per second
        memory_bps: (ram.get("mbps").and_then(Value::as_f64).unwrap_or(0.0) * 1e6 / 8.0) as u64,
        memory_constant: n(&ram, "duplicate"),
        memory_normal: n(&ram, "normal"),
        memory_normal_bytes: n(&ram, "normal-bytes"),
        dirty_rate: n(&ram, "dirty-pages-rate"),
        memory_iteration: n(&ram, "dirty-sync-count"),
        memory_page_size: page,
        postcopy_requests: n(&ram, "postcopy-requests"),
    }
}

/// QEMU's name of a migration parameter, and how many bytes its unit is (bandwidths are
/// MiB/s for libvirt, bytes/s for QEMU).
fn parameter(which: MigrateSetting) -> (&'static str, u64) {
    match which {
        MigrateSetting::MaxDowntime => ("downtime-limit", 1),
        MigrateSetting::MaxSpeed => ("max-bandwidth", 1 << 20),
        MigrateSetting::MaxPostcopySpeed => ("max-postcopy-bandwidth", 1 << 20),
        MigrateSetting::CompressionCache => ("xbzrle-cache-size", 1),
    }
}

/// A migration parameter of the running QEMU, in libvirt's unit.
pub async fn setting(vm: &Vm, which: MigrateSetting) -> DriverResult<u64> {
    let (name, unit) = parameter(which);
    let p = vm.command("query-migrate-parameters", None).await?;
    Ok(p.get(name).and_then(Value::as_u64).unwrap_or(0) / unit)
}

/// Set a migration parameter of the running QEMU (`value` in libvirt's unit).
pub async fn set_setting(vm: &Vm, which: MigrateSetting, value: u64) -> DriverResult<()> {
    let (name, unit) = parameter(which);
    let bytes = value.saturating_mul(unit).min(i64::MAX as u64);
    vm.command("migrate-set-parameters", Some(json!({ name: bytes })))
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_in_libvirt_forms_become_qemu_ones() {
        assert_eq!(qemu_uri("tcp://h:49152"), Some(("h".into(), 49152)));
        assert_eq!(qemu_uri("tcp:h:49152"), Some(("h".into(), 49152)));
        assert_eq!(qemu_uri("tcp://[::1]:5/"), Some(("::1".into(), 5)));
        assert_eq!(qemu_uri("rdma://h:1"), None);
        assert_eq!(qemu_uri("tcp://h"), None);
        assert_eq!(tcp("::1", 5), "tcp:[::1]:5");
    }

    #[test]
    fn stats_in_libvirt_units() {
        let st = json!({"status": "active", "total-time": 5,
            "ram": {"total": 100, "transferred": 40, "remaining": 60, "mbps": 8.0,
                    "dirty-sync-count": 2, "page-size": 4096}});
        let s = stats_of(&st);
        assert_eq!(s.memory_bps, 1_000_000);
        assert_eq!(
            (s.memory_total, s.memory_processed, s.memory_remaining),
            (100, 40, 60)
        );
        assert_eq!(s.memory_iteration, 2);
    }
}
