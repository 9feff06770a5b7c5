//! events: follow the daemon's signals until Ctrl-C, one line (or one JSON object) each.

use std::collections::HashMap;

use serde_json::json;
use zbus::{MatchRule, MessageStream, OwnedVariant, message::Type};

use super::{
    Ctx,
    api::{DOMAIN, MANAGER, PropMap, SERVICE, SNAPSHOT, domain as d, manager as m},
    domains,
    error::Result,
    output, progress,
};

/// One event, as printed.
struct Event {
    domain: String,
    kind: &'static str,
    text: String,
    json: serde_json::Value,
}

pub async fn follow(ctx: &Ctx, only: Option<&str>) -> Result<()> {
    let bus = ctx.bus();
    let rule = MatchRule::builder()
        .msg_type(Type::Signal)
        .sender(SERVICE)
        .build()?;
    let mut stream =
        MessageStream::for_match_rule(rule, &bus.conn, std::num::NonZeroUsize::new(256)).await?;
    // Names of the domains, kept current from the signals themselves.
    let mut names: HashMap<String, String> = domains::all(bus)
        .await?
        .into_iter()
        .map(|i| (i.path, i.name))
        .collect();
    let only_path = match only {
        Some(n) => Some(domains::lookup(bus, n).await?),
        None => None,
    };
    if !ctx.json {
        eprintln!("Following events; Ctrl-C ends.");
    }
    loop {
        let msg = tokio::select! {
            m = progress::next(&mut stream) => match m {
                Some(Ok(msg)) => msg,
                Some(Err(_)) => continue,
                None => return Ok(()),
            },
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let header = msg.header();
        let path = header.path().map(|p| p.to_string()).unwrap_or_default();
        let iface = header
            .interface()
            .map(|i| i.to_string())
            .unwrap_or_default();
        let member = header.member().map(|m| m.to_string()).unwrap_or_default();
        let ev = decode(&msg, &path, &iface, &member, &mut names);
        let Some(ev) = ev else { continue };
        if let Some(p) = &only_path
            && !(ev.domain == *p || ev.domain.starts_with(&format!("{p}/")))
        {
            continue;
        }
        if ctx.json {
            println!("{}", ev.json);
        } else {
            let name = domain_name(&names, &ev.domain);
            println!("{} {name} {}: {}", clock(), ev.kind, ev.text);
        }
    }
}

/// The name of the domain a path belongs to (a domain's or one of its snapshots').
fn domain_name(names: &HashMap<String, String>, path: &str) -> String {
    let dom = path.split("/snapshot/").next().unwrap_or(path);
    names.get(dom).cloned().unwrap_or_else(|| dom.to_owned())
}

fn make(
    names: &HashMap<String, String>,
    domain: &str,
    kind: &'static str,
    text: String,
    extra: serde_json::Value,
) -> Option<Event> {
    let name = domain_name(names, domain);
    let mut j = json!({ "domain": name, "path": domain, "kind": kind });
    if let (Some(o), serde_json::Value::Object(e)) = (j.as_object_mut(), extra) {
        o.extend(e);
    }
    Some(Event {
        domain: domain.to_owned(),
        kind,
        text,
        json: j,
    })
}

fn decode(
    msg: &zbus::Message,
    path: &str,
    iface: &str,
    member: &str,
    names: &mut HashMap<String, String>,
) -> Option<Event> {
    let body = msg.body();
    match (iface, member) {
        (MANAGER, "DomainEvent") if member == m::DOMAIN_EVENT.name() => {
            let (dom, event, detail): (zbus::OwnedObjectPath, String, String) =
                body.deserialize().ok()?;
            let text = if detail.is_empty() {
                event.clone()
            } else {
                format!("{event} ({detail})")
            };
            make(
                names,
                dom.as_str(),
                "lifecycle",
                text,
                json!({ "event": event, "detail": detail }),
            )
        }
        ("org.freedesktop.DBus.Properties", "PropertiesChanged") => {
            let (iface, changed, _): (String, PropMap, Vec<String>) = body.deserialize().ok()?;
            if iface == DOMAIN
                && let Some(n) = d::NAME.in_map(&changed)
            {
                names.insert(path.to_owned(), n);
            }
            let mut keys: Vec<&String> = changed.keys().collect();
            keys.sort();
            let text = keys
                .iter()
                .map(|k| format!("{k}={}", show(&changed[*k])))
                .collect::<Vec<_>>()
                .join(" ");
            let props: serde_json::Map<String, serde_json::Value> = changed
                .iter()
                .map(|(k, v)| (k.clone(), output::value_json(v)))
                .collect();
            let kind = if iface == SNAPSHOT {
                "snapshot-properties"
            } else {
                "properties"
            };
            make(names, path, kind, text, json!({ "properties": props }))
        }
        ("org.freedesktop.DBus.ObjectManager", "InterfacesAdded") => {
            let (obj, ifaces): (zbus::OwnedObjectPath, HashMap<String, PropMap>) =
                body.deserialize().ok()?;
            if let Some(p) = ifaces.get(DOMAIN) {
                let name = d::NAME.in_map(p).unwrap_or_default();
                names.insert(obj.to_string(), name.clone());
                make(
                    names,
                    obj.as_str(),
                    "added",
                    format!("domain {name}"),
                    json!({}),
                )
            } else if let Some(p) = ifaces.get(SNAPSHOT) {
                let name = super::api::snapshot::NAME.in_map(p).unwrap_or_default();
                make(
                    names,
                    obj.as_str(),
                    "snapshot-added",
                    format!("snapshot {name}"),
                    json!({ "snapshot": name }),
                )
            } else {
                None
            }
        }
        ("org.freedesktop.DBus.ObjectManager", "InterfacesRemoved") => {
            let (obj, ifaces): (zbus::OwnedObjectPath, Vec<String>) = body.deserialize().ok()?;
            let kind = if ifaces.iter().any(|i| i == SNAPSHOT) {
                "snapshot-removed"
            } else {
                "removed"
            };
            let what = obj
                .as_str()
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_owned();
            make(names, obj.as_str(), kind, what, json!({}))
        }
        (DOMAIN, name) if name == d::REBOOTED.name() => {
            make(names, path, "rebooted", String::new(), json!({}))
        }
        (DOMAIN, name) if name == d::DEVICE_ADDED.name() || name == d::DEVICE_REMOVED.name() => {
            let (dev,): (String,) = body.deserialize().ok()?;
            let kind = if name == d::DEVICE_ADDED.name() {
                "device-added"
            } else {
                "device-removed"
            };
            make(names, path, kind, dev.clone(), json!({ "device": dev }))
        }
        (DOMAIN, name) if name == d::METADATA_CHANGED.name() => {
            let (kind, uri): (String, String) = body.deserialize().ok()?;
            make(
                names,
                path,
                "metadata-changed",
                format!("{kind} {uri}").trim().to_owned(),
                json!({ "metadata": kind, "uri": uri }),
            )
        }
        _ => None,
    }
}

/// A property value as one short word.
fn show(v: &OwnedVariant) -> String {
    match output::value_json(v) {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    }
}

/// The wall-clock time of day (UTC), for event lines.
fn clock() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    super::snapshot::format_time(secs)
        .split(' ')
        .nth(1)
        .unwrap_or_default()
        .to_owned()
}
