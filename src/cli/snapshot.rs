//! snapshot create, list (a tree), show, revert, delete.

use std::collections::HashMap;

use serde_json::json;
use zbus::Variant;

use super::{
    Ctx,
    api::{domain as d, opts, snapshot as s},
    args::SnapshotCommand,
    domains::{self, SnapshotInfo, read_input},
    error::Result,
    output, progress,
};

pub async fn run(ctx: &Ctx, cmd: SnapshotCommand) -> Result<()> {
    match cmd {
        SnapshotCommand::Create {
            domain,
            name,
            description,
            disk_only,
            xml,
        } => {
            let text = match xml {
                Some(f) => read_input(&f)?,
                None => snapshot_xml(name.as_deref(), description.as_deref()),
            };
            create(ctx, &domain, text, disk_only).await
        }
        SnapshotCommand::List { domain } => list(ctx, &domain).await,
        SnapshotCommand::Show {
            domain,
            snapshot,
            xml,
        } => show(ctx, &domain, &snapshot, xml).await,
        SnapshotCommand::Revert {
            domain,
            snapshot,
            running,
            paused,
            force,
        } => {
            let o = opts([
                ("running", Variant::from(running)),
                ("paused", Variant::from(paused)),
                ("force", Variant::from(force)),
            ]);
            let (dom, domain) = domains::resolve(ctx.bus(), &domain).await?;
            let snap = domains::lookup_snapshot(ctx.bus(), &dom, &snapshot).await?;
            let bus = ctx.bus();
            let args = (o,);
            let call = bus.change(&s::REVERT, &snap, &args);
            progress::run(ctx, &dom, &domain, "reverting", call).await?;
            println!("{domain} reverted to {snapshot}");
            Ok(())
        }
        SnapshotCommand::Delete {
            domain,
            snapshot,
            children,
            children_only,
        } => {
            let o = opts([
                ("children", Variant::from(children)),
                ("children-only", Variant::from(children_only)),
            ]);
            let (dom, domain) = domains::resolve(ctx.bus(), &domain).await?;
            let snap = domains::lookup_snapshot(ctx.bus(), &dom, &snapshot).await?;
            let bus = ctx.bus();
            let args = (o,);
            let call = bus.change(&s::DELETE, &snap, &args);
            progress::run(ctx, &dom, &domain, "deleting a snapshot", call).await?;
            println!("snapshot {snapshot} of {domain} deleted");
            Ok(())
        }
    }
}

/// Escape text for XML content and quoted attributes.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&apos;")
        .replace('"', "&quot;")
}

fn snapshot_xml(name: Option<&str>, description: Option<&str>) -> String {
    let mut x = String::from("<domainsnapshot>");
    if let Some(n) = name {
        x.push_str(&format!("<name>{}</name>", escape(n)));
    }
    if let Some(dsc) = description {
        x.push_str(&format!("<description>{}</description>", escape(dsc)));
    }
    x.push_str("</domainsnapshot>");
    x
}

async fn create(ctx: &Ctx, domain: &str, xml: String, disk_only: bool) -> Result<()> {
    let (dom, domain) = domains::resolve(ctx.bus(), domain).await?;
    let domain = domain.as_str();
    let o = opts([("disk-only", Variant::from(disk_only))]);
    let bus = ctx.bus();
    let args = (xml, o);
    let call = bus.change(&d::CREATE_SNAPSHOT, &dom, &args);
    let path = progress::run(ctx, &dom, domain, "taking a snapshot", call).await?;
    let name = bus.get(&s::NAME, path.as_str()).await?;
    println!("snapshot {name} of {domain} created");
    Ok(())
}

/// Snapshots ordered as a tree: each root, then its children (oldest first), depth-first.
fn tree(snaps: &HashMap<String, SnapshotInfo>) -> Vec<(usize, Vec<bool>, &SnapshotInfo)> {
    let mut children: HashMap<Option<&str>, Vec<&SnapshotInfo>> = HashMap::new();
    for sn in snaps.values() {
        let parent = sn.parent.as_deref().filter(|p| snaps.contains_key(*p));
        children.entry(parent).or_default().push(sn);
    }
    for v in children.values_mut() {
        v.sort_by(|a, b| (a.creation_time, &a.name).cmp(&(b.creation_time, &b.name)));
    }
    let mut out = Vec::new();
    fn walk<'a>(
        node: Option<&str>,
        depth: usize,
        lasts: &mut Vec<bool>,
        children: &HashMap<Option<&str>, Vec<&'a SnapshotInfo>>,
        out: &mut Vec<(usize, Vec<bool>, &'a SnapshotInfo)>,
    ) {
        let Some(kids) = children.get(&node) else {
            return;
        };
        for (i, sn) in kids.iter().enumerate() {
            lasts.push(i + 1 == kids.len());
            out.push((depth, lasts.clone(), *sn));
            walk(Some(sn.path.as_str()), depth + 1, lasts, children, out);
            lasts.pop();
        }
    }
    walk(None, 0, &mut Vec::new(), &children, &mut out);
    out
}

async fn list(ctx: &Ctx, domain: &str) -> Result<()> {
    let dom = domains::lookup(ctx.bus(), domain).await?;
    let snaps = domains::snapshots(ctx.bus(), &dom).await?;
    let ordered = tree(&snaps);
    let name_of = |p: &Option<String>| {
        p.as_ref()
            .and_then(|p| snaps.get(p))
            .map(|sn| sn.name.clone())
    };
    if ctx.json {
        let v: Vec<_> = ordered
            .iter()
            .map(|(_, _, sn)| sn.to_json(name_of(&sn.parent).as_deref()))
            .collect();
        output::json(&json!(v));
        return Ok(());
    }
    if ordered.is_empty() {
        println!("{domain} has no snapshots.");
        return Ok(());
    }
    let mut t = output::table(&["NAME", "CREATED", "STATE", "KIND", "DESCRIPTION"]);
    for (depth, lasts, sn) in &ordered {
        let mut prefix = String::new();
        if *depth > 0 {
            for last in &lasts[1..*depth] {
                prefix.push_str(if *last { "   " } else { "│  " });
            }
            prefix.push_str(if lasts[*depth] { "└─ " } else { "├─ " });
        }
        let mark = if sn.current { " *" } else { "" };
        t.add_row(vec![
            format!("{prefix}{}{mark}", sn.name),
            format_time(sn.creation_time),
            sn.state.clone(),
            sn.kind.clone(),
            sn.description.clone(),
        ]);
    }
    output::print_table(&mut t);
    println!();
    println!(
        "{}; * marks the current one.",
        output::count(ordered.len(), "snapshot")
    );
    Ok(())
}

async fn show(ctx: &Ctx, domain: &str, snapshot: &str, xml: bool) -> Result<()> {
    let bus = ctx.bus();
    let dom = domains::lookup(bus, domain).await?;
    let path = domains::lookup_snapshot(bus, &dom, snapshot).await?;
    if xml {
        let text = bus.call(&s::GET_XML, &path, &(opts([]),)).await?;
        if ctx.json {
            output::json(&json!({ "xml": text }));
        } else {
            println!("{}", text.trim_end());
        }
        return Ok(());
    }
    let props = bus.get_all(&path, super::api::SNAPSHOT).await?;
    let sn = SnapshotInfo::from_props(&path, &props);
    let parent = match &sn.parent {
        Some(p) => bus.get(&s::NAME, p).await.ok(),
        None => None,
    };
    if ctx.json {
        output::json(&sn.to_json(parent.as_deref()));
        return Ok(());
    }
    println!("{}", sn.name);
    let rows = [
        ("Domain", domain.to_owned()),
        ("Created", format_time(sn.creation_time)),
        ("State", sn.state.clone()),
        ("Kind", sn.kind.clone()),
        ("Parent", parent.unwrap_or_else(|| "-".into())),
        ("Current", output::yes_no(sn.current).into()),
        (
            "Description",
            if sn.description.is_empty() {
                "-".into()
            } else {
                sn.description.clone()
            },
        ),
    ];
    for (k, v) in rows {
        println!("  {k:>11}: {v}");
    }
    Ok(())
}

/// Seconds since the epoch as UTC `YYYY-MM-DD HH:MM:SS` (a fixed zone keeps scripts and
/// golden outputs stable).
pub fn format_time(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
