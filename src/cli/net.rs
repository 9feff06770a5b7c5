//! net list/info/define/create/start/stop/undefine/autostart/dumpxml/edit/dhcp-leases/update.

use comfy_table::{Cell, Color};
use serde_json::json;
use zbus::Variant;

use super::{
    Ctx,
    api::{MANAGER_PATH, PropMap, manager_net as m, network as n, opts},
    args::{NetCommand, OnOff, UpdateCommand},
    domains::read_input,
    error::Result,
    objects::{self, NetworkInfo},
    output::{self, yes_no},
    polkit::Agent,
    xml::edit_loop,
};

pub async fn run(ctx: &Ctx, c: NetCommand) -> Result<()> {
    use NetCommand as C;
    match c {
        C::List { all, name } => list(ctx, all, name).await,
        C::Info { network } => info(ctx, &network).await,
        C::Define { file } => define(ctx, &read_input(&file)?, false).await,
        C::Create { file } => define(ctx, &read_input(&file)?, true).await,
        C::Start { network } => act(ctx, &network, &n::START, "started").await,
        C::Stop { network } => act(ctx, &network, &n::STOP, "stopped").await,
        C::Undefine { network } => act(ctx, &network, &n::UNDEFINE, "undefined").await,
        C::Autostart { network, state } => autostart(ctx, &network, state).await,
        C::Dumpxml { network, inactive } => {
            let net = objects::network(ctx.bus(), &network).await?;
            let o = opts([("inactive", Variant::from(inactive))]);
            let xml = ctx.bus().call(&n::GET_XML, &net.path, &(o,)).await?;
            output::xml(ctx.json, &xml);
            Ok(())
        }
        C::Edit { network } => edit(ctx, &network).await,
        C::DhcpLeases { network, mac } => leases(ctx, &network, mac).await,
        C::Update {
            network,
            command,
            section,
            xml,
            live,
            config,
            ip_index,
        } => {
            update(
                ctx,
                &network,
                command,
                &section,
                &xml,
                (live, config, ip_index),
            )
            .await
        }
    }
}

async fn list(ctx: &Ctx, all: bool, names: bool) -> Result<()> {
    let nets: Vec<NetworkInfo> = objects::networks(ctx.bus())
        .await?
        .into_iter()
        .filter(|n| all || n.active)
        .collect();
    if ctx.json {
        output::json(&json!(nets.iter().map(|n| n.to_json()).collect::<Vec<_>>()));
        return Ok(());
    }
    if names {
        for net in &nets {
            println!("{}", net.name);
        }
        return Ok(());
    }
    if nets.is_empty() {
        println!("No {}networks.", if all { "" } else { "active " });
        return Ok(());
    }
    let mut t = output::table(&["NAME", "STATE", "AUTOSTART", "PERSISTENT", "BRIDGE"]);
    for net in &nets {
        let state = Cell::new(net.state());
        t.add_row(vec![
            Cell::new(&net.name),
            if net.active {
                state.fg(Color::Green)
            } else {
                state
            },
            Cell::new(yes_no(net.autostart)),
            Cell::new(yes_no(net.persistent)),
            Cell::new(&net.bridge),
        ]);
    }
    output::print_table(&mut t);
    println!();
    println!("{} listed.", output::count(nets.len(), "network"));
    Ok(())
}

async fn info(ctx: &Ctx, name: &str) -> Result<()> {
    let net = objects::network(ctx.bus(), name).await?;
    if ctx.json {
        output::json(&net.to_json());
        return Ok(());
    }
    output::fields(
        &net.name,
        &[
            ("State", net.state().to_owned()),
            ("UUID", net.uuid.clone()),
            ("Bridge", net.bridge.clone()),
            ("Persistent", yes_no(net.persistent).into()),
            ("Autostart", yes_no(net.autostart).into()),
        ],
    );
    Ok(())
}

async fn define(ctx: &Ctx, xml: &str, start: bool) -> Result<()> {
    let bus = ctx.bus();
    let _agent = Agent::start(bus.interactive);
    let method = if start {
        &m::CREATE_NETWORK
    } else {
        &m::DEFINE_NETWORK
    };
    let path = bus
        .change(method, MANAGER_PATH, &(xml.to_owned(), opts([])))
        .await?;
    let net = objects::network_at(bus, path.as_str()).await?;
    let done = if start { "started" } else { "defined" };
    println!("network {} {done} ({})", net.name, net.uuid);
    Ok(())
}

async fn act(ctx: &Ctx, name: &str, method: &super::api::Method<(), ()>, done: &str) -> Result<()> {
    let bus = ctx.bus();
    let net = objects::network(bus, name).await?;
    let _agent = Agent::start(bus.interactive);
    bus.change(method, &net.path, &()).await?;
    println!("network {} {done}", net.name);
    Ok(())
}

async fn autostart(ctx: &Ctx, name: &str, state: OnOff) -> Result<()> {
    let bus = ctx.bus();
    let net = objects::network(bus, name).await?;
    let on = matches!(state, OnOff::On);
    let _agent = Agent::start(bus.interactive);
    bus.set(&n::AUTOSTART, &net.path, on).await?;
    let what = if on {
        "starts at boot"
    } else {
        "no longer starts at boot"
    };
    println!("network {} {what}", net.name);
    Ok(())
}

async fn edit(ctx: &Ctx, name: &str) -> Result<()> {
    let bus = ctx.bus();
    let net = objects::network(bus, name).await?;
    let o = opts([("inactive", Variant::from(true))]);
    let original = bus.call(&n::GET_XML, &net.path, &(o,)).await?;
    edit_loop(&format!("network {}", net.name), original, async |xml| {
        let _agent = Agent::start(bus.interactive);
        bus.change(&m::DEFINE_NETWORK, MANAGER_PATH, &(xml, opts([])))
            .await?;
        Ok(())
    })
    .await
}

/// One lease, with the daemon's keys (`-` written `_`) and `null` for what it does not know.
fn lease_json(l: &PropMap) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for k in [
        "interface",
        "expiry-time",
        "type",
        "mac",
        "iaid",
        "address",
        "prefix",
        "hostname",
        "client-id",
    ] {
        let v = l
            .get(k)
            .map(|v| output::value_json(v))
            .unwrap_or(serde_json::Value::Null);
        out.insert(k.replace('-', "_"), v);
    }
    serde_json::Value::Object(out)
}

async fn leases(ctx: &Ctx, name: &str, mac: Option<String>) -> Result<()> {
    let bus = ctx.bus();
    let net = objects::network(bus, name).await?;
    let mut o = opts([]);
    if let Some(mac) = mac {
        o.insert("mac".into(), Variant::from(mac));
    }
    let leases = bus.call(&n::GET_DHCP_LEASES, &net.path, &(o,)).await?;
    let rows: Vec<serde_json::Value> = leases.iter().map(lease_json).collect();
    if ctx.json {
        output::json(&json!(rows));
        return Ok(());
    }
    if rows.is_empty() {
        println!("No leases on {}.", net.name);
        return Ok(());
    }
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) if !s.is_empty() => s.clone(),
        serde_json::Value::Null => "-".into(),
        serde_json::Value::String(_) => "-".into(),
        other => other.to_string(),
    };
    let mut t = output::table(&[
        "EXPIRES",
        "MAC",
        "PROTOCOL",
        "ADDRESS",
        "HOSTNAME",
        "CLIENT ID",
    ]);
    for r in &rows {
        let expires = match r["expiry_time"].as_i64() {
            Some(0) => "never".to_owned(),
            Some(secs) => super::snapshot::format_time(secs.max(0) as u64),
            None => "-".into(),
        };
        t.add_row(vec![
            expires,
            text(&r["mac"]),
            text(&r["type"]),
            format!("{}/{}", text(&r["address"]), text(&r["prefix"])),
            text(&r["hostname"]),
            text(&r["client_id"]),
        ]);
    }
    output::print_table(&mut t);
    Ok(())
}

async fn update(
    ctx: &Ctx,
    name: &str,
    command: UpdateCommand,
    section: &str,
    xml: &str,
    (live, config, ip_index): (bool, bool, Option<u32>),
) -> Result<()> {
    // An element inline, or a file holding it (as virsh net-update takes either).
    let xml = if xml.trim_start().starts_with('<') {
        xml.to_owned()
    } else {
        read_input(std::path::Path::new(xml))?
    };
    let bus = ctx.bus();
    let net = objects::network(bus, name).await?;
    let mut o = opts([
        ("live", Variant::from(live)),
        ("config", Variant::from(config)),
    ]);
    if let Some(i) = ip_index {
        o.insert("ip-index".into(), Variant::from(i));
    }
    let _agent = Agent::start(bus.interactive);
    let body = (
        command.as_str().to_owned(),
        section.to_owned(),
        xml.trim().to_owned(),
        o,
    );
    bus.change(&n::UPDATE, &net.path, &body).await?;
    println!(
        "network {} updated ({} {section})",
        net.name,
        command.as_str()
    );
    Ok(())
}
