//! stats (one reading) and top (rates, refreshed).

use std::{
    collections::{BTreeMap, HashMap},
    io::{IsTerminal, Write},
    time::{Duration, Instant},
};

use comfy_table::Cell;
use serde_json::json;
use zbus::{OwnedVariant, Variant};

use super::{
    Ctx,
    api::{MANAGER_PATH, manager as m, opts},
    domains,
    error::{Error, Kind, Result},
    output,
};

/// The totals of one domain at one moment.
#[derive(Debug, Clone, Default)]
struct Sample {
    state: String,
    cpu_ns: u64,
    mem_kib: u64,
    rd: u64,
    wr: u64,
    rx: u64,
    tx: u64,
}

fn sum(stats: &HashMap<String, OwnedVariant>, count: &str, key: &str) -> u64 {
    let get = |k: &str| stats.get(k).and_then(|v| u64::try_from(v).ok());
    let n = get(count).unwrap_or(0);
    (0..n)
        .filter_map(|i| get(&format!("{}.{i}.{key}", count.trim_end_matches(".count"))))
        .sum()
}

fn sample(stats: &HashMap<String, OwnedVariant>, state: &str) -> Sample {
    let get = |k: &str| stats.get(k).and_then(|v| u64::try_from(v).ok());
    Sample {
        state: state.to_owned(),
        cpu_ns: get("cpu.time").unwrap_or(0),
        mem_kib: get("balloon.current").unwrap_or(0),
        rd: sum(stats, "block.count", "rd.bytes"),
        wr: sum(stats, "block.count", "wr.bytes"),
        rx: sum(stats, "net.count", "rx.bytes"),
        tx: sum(stats, "net.count", "tx.bytes"),
    }
}

/// Each domain's totals and raw statistics, by name.
type Reading = BTreeMap<String, (Sample, HashMap<String, OwnedVariant>)>;

/// Every selected domain's statistics, by name.
async fn read(ctx: &Ctx, only: &[String]) -> Result<Reading> {
    let bus = ctx.bus();
    let doms = domains::all(bus).await?;
    let mut wanted = Vec::new();
    for name in only {
        wanted.push(domains::lookup(bus, name).await?);
    }
    let o = opts([("active", Variant::from(true))]);
    let all = bus
        .call(&m::GET_ALL_DOMAIN_STATS, MANAGER_PATH, &(o,))
        .await?;
    let mut out = BTreeMap::new();
    for dom in doms {
        if !wanted.is_empty() && !wanted.contains(&dom.path) {
            continue;
        }
        let Some((_, stats)) = all.iter().find(|(p, _)| p.as_str() == dom.path) else {
            continue;
        };
        let stats: HashMap<String, OwnedVariant> = stats
            .iter()
            .filter_map(|(k, v)| v.try_clone().ok().map(|v| (k.clone(), v)))
            .collect();
        out.insert(dom.name.clone(), (sample(&stats, &dom.state), stats));
    }
    Ok(out)
}

pub async fn stats(ctx: &Ctx, only: &[String]) -> Result<()> {
    let all = read(ctx, only).await?;
    if ctx.json {
        let v: serde_json::Map<String, serde_json::Value> = all
            .iter()
            .map(|(name, (_, stats))| {
                let s: serde_json::Map<String, serde_json::Value> = stats
                    .iter()
                    .map(|(k, v)| (k.clone(), output::value_json(v)))
                    .collect();
                (name.clone(), serde_json::Value::Object(s))
            })
            .collect();
        output::json(&json!(v));
        return Ok(());
    }
    if all.is_empty() {
        println!("No active domains.");
        return Ok(());
    }
    let mut t = output::table(&[
        "NAME",
        "STATE",
        "CPU TIME",
        "MEMORY",
        "DISK READ",
        "DISK WRITTEN",
        "NET RX",
        "NET TX",
    ]);
    for (name, (s, _)) in &all {
        t.add_row(vec![
            Cell::new(name),
            output::state_cell(&s.state),
            Cell::new(format!("{:.2}s", s.cpu_ns as f64 / 1e9)),
            Cell::new(output::kib(s.mem_kib)),
            Cell::new(output::bytes(s.rd)),
            Cell::new(output::bytes(s.wr)),
            Cell::new(output::bytes(s.rx)),
            Cell::new(output::bytes(s.tx)),
        ]);
    }
    output::align_right(&mut t, &[2, 3, 4, 5, 6, 7]);
    output::print_table(&mut t);
    Ok(())
}

fn rate(now: u64, before: u64, secs: f64) -> String {
    format!(
        "{}/s",
        output::bytes((now.saturating_sub(before) as f64 / secs) as u64)
    )
}

pub async fn top(ctx: &Ctx, delay: f64, iterations: Option<u32>) -> Result<()> {
    if !(delay.is_finite() && delay >= 0.1) {
        return Err(Error::new(
            Kind::Usage,
            "--delay must be at least 0.1 seconds",
        ));
    }
    let tty = std::io::stdout().is_terminal();
    let mut prev: Option<(Instant, Reading)> = None;
    let mut shown = 0u32;
    loop {
        let now = Instant::now();
        let cur = read(ctx, &[]).await?;
        if let Some((then, before)) = &prev {
            let secs = now.duration_since(*then).as_secs_f64().max(1e-3);
            let mut t = output::table(&[
                "NAME",
                "STATE",
                "CPU",
                "MEMORY",
                "DISK READ",
                "DISK WRITE",
                "NET RX",
                "NET TX",
            ]);
            for (name, (s, _)) in &cur {
                let b = before.get(name).map(|(b, _)| b.clone()).unwrap_or_default();
                let cpu = s.cpu_ns.saturating_sub(b.cpu_ns) as f64 / 1e9 / secs * 100.0;
                t.add_row(vec![
                    Cell::new(name),
                    output::state_cell(&s.state),
                    Cell::new(format!("{cpu:.1}%")),
                    Cell::new(output::kib(s.mem_kib)),
                    Cell::new(rate(s.rd, b.rd, secs)),
                    Cell::new(rate(s.wr, b.wr, secs)),
                    Cell::new(rate(s.rx, b.rx, secs)),
                    Cell::new(rate(s.tx, b.tx, secs)),
                ]);
            }
            output::align_right(&mut t, &[2, 3, 4, 5, 6, 7]);
            let mut out = std::io::stdout().lock();
            if tty {
                let _ = crossterm::execute!(
                    out,
                    crossterm::terminal::Clear(crossterm::terminal::ClearType::All),
                    crossterm::cursor::MoveTo(0, 0)
                );
            }
            let _ = writeln!(
                out,
                "{} active, every {delay}s (Ctrl-C ends)",
                output::count(cur.len(), "domain")
            );
            for col in t.column_iter_mut() {
                col.set_padding((0, 2));
            }
            for line in t.lines() {
                let _ = writeln!(out, "{}", line.trim_end());
            }
            let _ = writeln!(out);
            let _ = out.flush();
            shown += 1;
            if iterations.is_some_and(|n| shown >= n) {
                return Ok(());
            }
        }
        prev = Some((now, cur));
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs_f64(delay)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}
