//! list and status.

use std::collections::BTreeMap;

use comfy_table::Cell;
use serde_json::json;
use zbus::OwnedVariant;

use super::{
    Ctx,
    api::{SNAPSHOT, domain as d, opts},
    args::{ListArgs, StateFilter},
    domains::{self, DomainInfo},
    error::Result,
    output::{self, kib, yes_no},
};

fn state_matches(f: StateFilter, state: &str) -> bool {
    match f {
        StateFilter::Running => state == "running",
        StateFilter::Paused => state == "paused",
        StateFilter::ShutOff => state == "shut-off",
        StateFilter::Other => !matches!(state, "running" | "paused" | "shut-off"),
    }
}

fn selected(a: &ListArgs, dom: &DomainInfo) -> bool {
    let all = a.all || !a.state.is_empty() || a.managed_save;
    (all || dom.active)
        && (a.state.is_empty() || a.state.iter().any(|f| state_matches(*f, &dom.state)))
        && (!a.autostart || dom.autostart)
        && (!a.no_autostart || !dom.autostart)
        && (!a.managed_save || dom.managed_save)
        && (!a.with_snapshot || dom.snapshots > 0)
}

pub async fn list(ctx: &Ctx, a: &ListArgs) -> Result<()> {
    let doms: Vec<DomainInfo> = domains::all(ctx.bus())
        .await?
        .into_iter()
        .filter(|dom| selected(a, dom))
        .collect();
    if ctx.json {
        output::json(&json!(
            doms.iter()
                .map(DomainInfo::summary_json)
                .collect::<Vec<_>>()
        ));
        return Ok(());
    }
    if a.name {
        for dom in &doms {
            println!("{}", dom.name);
        }
        return Ok(());
    }
    if doms.is_empty() {
        println!(
            "No {}domains.",
            if a.all || !a.state.is_empty() {
                ""
            } else {
                "active "
            }
        );
        return Ok(());
    }
    let mut t = output::table(&[
        "NAME",
        "STATE",
        "ID",
        "VCPUS",
        "MEMORY",
        "AUTOSTART",
        "SNAPSHOTS",
    ]);
    for dom in &doms {
        let id = if dom.active && dom.id >= 0 {
            dom.id.to_string()
        } else {
            "-".into()
        };
        t.add_row(vec![
            Cell::new(&dom.name),
            output::state_cell(&dom.state),
            Cell::new(id),
            Cell::new(dom.vcpus),
            Cell::new(kib(dom.memory_kib)),
            Cell::new(yes_no(dom.autostart)),
            Cell::new(dom.snapshots),
        ]);
    }
    output::align_right(&mut t, &[2, 3, 4, 6]);
    output::print_table(&mut t);
    println!();
    println!("{} listed.", output::count(doms.len(), "domain"));
    Ok(())
}

/// One guest network interface and its addresses.
struct Iface {
    name: String,
    hwaddr: String,
    addrs: Vec<(String, String, u32)>,
}

pub async fn status(ctx: &Ctx, domain: &str) -> Result<()> {
    let bus = ctx.bus();
    let info = domains::get(bus, domain).await?;
    let stats: BTreeMap<String, OwnedVariant> = if info.active {
        bus.call(&d::GET_STATS, &info.path, &(opts([]),))
            .await
            .map(|m| m.into_iter().collect())
            .unwrap_or_default()
    } else {
        BTreeMap::new()
    };
    // Addresses come from the guest agent: absent without one, which is no error here.
    let ifaces: Vec<Iface> = if info.state == "running" {
        bus.call(&d::INTERFACE_ADDRESSES, &info.path, &(opts([]),))
            .await
            .map(|v| {
                v.into_iter()
                    .map(|(name, hwaddr, addrs)| Iface {
                        name,
                        hwaddr,
                        addrs: addrs
                            .into_iter()
                            .map(|(t, a, p)| (if t == 1 { "ipv6" } else { "ipv4" }.into(), a, p))
                            .collect(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let current = match &info.current_snapshot {
        Some(p) => bus
            .get_all(p, SNAPSHOT)
            .await
            .ok()
            .and_then(|m| super::api::snapshot::NAME.in_map(&m)),
        None => None,
    };
    if ctx.json {
        let mut v = info.summary_json();
        if let Some(o) = v.as_object_mut() {
            o.insert("title".into(), json!(info.title));
            o.insert("driver".into(), json!(info.driver));
            o.insert("state_reason".into(), json!(info.reason));
            o.insert("active".into(), json!(info.active));
            o.insert("current_snapshot".into(), json!(current));
            o.insert("warning".into(), json!(info.warning));
            o.insert("job".into(), json!(info.job));
            o.insert("job_progress".into(), json!(info.job_progress));
            let s: serde_json::Map<String, serde_json::Value> = stats
                .iter()
                .map(|(k, v)| (k.clone(), output::value_json(v)))
                .collect();
            o.insert("stats".into(), serde_json::Value::Object(s));
            o.insert(
                "interfaces".into(),
                json!(
                    ifaces
                        .iter()
                        .map(|i| json!({
                            "name": i.name,
                            "hwaddr": i.hwaddr,
                            "addresses": i.addrs.iter().map(|(t, a, p)| json!({
                                "type": t, "address": a, "prefix": p
                            })).collect::<Vec<_>>(),
                        }))
                        .collect::<Vec<_>>()
                ),
            );
        }
        output::json(&v);
        return Ok(());
    }
    let mut rows: Vec<(&str, String)> = Vec::new();
    let state = if info.reason.is_empty() {
        info.state.clone()
    } else {
        format!("{} ({})", info.state, info.reason)
    };
    rows.push(("State", state));
    if info.active && info.id >= 0 {
        rows.push(("Id", info.id.to_string()));
    }
    rows.push(("UUID", info.uuid.clone()));
    if !info.title.is_empty() {
        rows.push(("Title", info.title.clone()));
    }
    rows.push(("Driver", info.driver.clone()));
    rows.push(("vCPUs", info.vcpus.to_string()));
    rows.push(("Memory", kib(info.memory_kib)));
    rows.push(("Persistent", yes_no(info.persistent).into()));
    rows.push(("Autostart", yes_no(info.autostart).into()));
    rows.push(("Managed save", yes_no(info.managed_save).into()));
    let snaps = match &current {
        Some(c) => format!("{} (current: {c})", info.snapshots),
        None => info.snapshots.to_string(),
    };
    rows.push(("Snapshots", snaps));
    if !info.job.is_empty() {
        rows.push((
            "Job",
            format!("{} ({:.0}%)", info.job, info.job_progress * 100.0),
        ));
    }
    let u64_stat = |k: &str| stats.get(k).and_then(|v| u64::try_from(v).ok());
    if let Some(ns) = u64_stat("cpu.time") {
        rows.push(("CPU time", format!("{:.2}s", ns as f64 / 1e9)));
    }
    if let Some(k) = u64_stat("balloon.current") {
        rows.push(("Balloon", kib(k)));
    }
    if let Some(n) = u64_stat("block.count") {
        let (mut rd, mut wr) = (0, 0);
        for i in 0..n {
            rd += u64_stat(&format!("block.{i}.rd.bytes")).unwrap_or(0);
            wr += u64_stat(&format!("block.{i}.wr.bytes")).unwrap_or(0);
        }
        rows.push((
            "Disk I/O",
            format!(
                "{n} disks, read {}, written {}",
                output::bytes(rd),
                output::bytes(wr)
            ),
        ));
    }
    if let Some(n) = u64_stat("net.count") {
        let (mut rx, mut tx) = (0, 0);
        for i in 0..n {
            rx += u64_stat(&format!("net.{i}.rx.bytes")).unwrap_or(0);
            tx += u64_stat(&format!("net.{i}.tx.bytes")).unwrap_or(0);
        }
        rows.push((
            "Network",
            format!(
                "{n} interfaces, received {}, sent {}",
                output::bytes(rx),
                output::bytes(tx)
            ),
        ));
    }
    for i in &ifaces {
        let addrs: Vec<String> = i.addrs.iter().map(|(_, a, p)| format!("{a}/{p}")).collect();
        let hw = if i.hwaddr.is_empty() {
            String::new()
        } else {
            format!(" ({})", i.hwaddr)
        };
        rows.push(("Address", format!("{}{hw}: {}", i.name, addrs.join(", "))));
    }
    if !info.warning.is_empty() {
        rows.push(("Warning", info.warning.clone()));
    }
    println!("{}", info.name);
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in rows {
        println!("  {k:>width$}: {v}");
    }
    Ok(())
}
