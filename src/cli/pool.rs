//! pool list/info/define/create/build/start/stop/refresh/delete/undefine/autostart/dumpxml.

use comfy_table::{Cell, Color};
use serde_json::json;
use zbus::Variant;

use super::{
    Ctx,
    api::{MANAGER_PATH, manager_net as m, opts, pool as p},
    args::{OnOff, PoolCommand},
    domains::read_input,
    error::Result,
    objects::{self, PoolInfo},
    output::{self, bytes, yes_no},
    polkit::Agent,
};

pub async fn run(ctx: &Ctx, c: PoolCommand) -> Result<()> {
    use PoolCommand as C;
    match c {
        C::List { all, name } => list(ctx, all, name).await,
        C::Info { pool } => info(ctx, &pool).await,
        C::Define { file } => define(ctx, &read_input(&file)?, None).await,
        C::Create { file, build } => define(ctx, &read_input(&file)?, Some(build)).await,
        C::Build { pool } => act(ctx, &pool, &p::BUILD, "built").await,
        C::Start { pool } => act(ctx, &pool, &p::START, "started").await,
        C::Stop { pool } => act(ctx, &pool, &p::STOP, "stopped").await,
        C::Refresh { pool } => act(ctx, &pool, &p::REFRESH, "refreshed").await,
        C::Delete { pool } => act(ctx, &pool, &p::DELETE, "deleted").await,
        C::Undefine { pool } => act(ctx, &pool, &p::UNDEFINE, "undefined").await,
        C::Autostart { pool, state } => autostart(ctx, &pool, state).await,
        C::Dumpxml { pool, inactive } => {
            let pool = objects::pool(ctx.bus(), &pool).await?;
            let o = opts([("inactive", Variant::from(inactive))]);
            let xml = ctx.bus().call(&p::GET_XML, &pool.path, &(o,)).await?;
            output::xml(ctx.json, &xml);
            Ok(())
        }
    }
}

async fn list(ctx: &Ctx, all: bool, names: bool) -> Result<()> {
    let pools: Vec<PoolInfo> = objects::pools(ctx.bus())
        .await?
        .into_iter()
        .filter(|p| all || p.active)
        .collect();
    if ctx.json {
        output::json(&json!(
            pools.iter().map(|p| p.to_json()).collect::<Vec<_>>()
        ));
        return Ok(());
    }
    if names {
        for pool in &pools {
            println!("{}", pool.name);
        }
        return Ok(());
    }
    if pools.is_empty() {
        println!("No {}storage pools.", if all { "" } else { "active " });
        return Ok(());
    }
    let mut t = output::table(&[
        "NAME",
        "STATE",
        "AUTOSTART",
        "CAPACITY",
        "ALLOCATION",
        "AVAILABLE",
        "PATH",
    ]);
    for pool in &pools {
        let state = Cell::new(pool.state());
        let size = |b: u64| {
            if pool.active { bytes(b) } else { "-".into() }
        };
        t.add_row(vec![
            Cell::new(&pool.name),
            if pool.active {
                state.fg(Color::Green)
            } else {
                state
            },
            Cell::new(yes_no(pool.autostart)),
            Cell::new(size(pool.capacity)),
            Cell::new(size(pool.allocation)),
            Cell::new(size(pool.available)),
            Cell::new(&pool.target),
        ]);
    }
    output::align_right(&mut t, &[3, 4, 5]);
    output::print_table(&mut t);
    println!();
    println!("{} listed.", output::count(pools.len(), "pool"));
    Ok(())
}

async fn info(ctx: &Ctx, name: &str) -> Result<()> {
    let bus = ctx.bus();
    let pool = objects::pool(bus, name).await?;
    let volumes = if pool.active {
        Some(objects::volumes(bus, &pool.path).await?.len())
    } else {
        None
    };
    if ctx.json {
        let mut j = pool.to_json();
        j["volumes"] = json!(volumes);
        output::json(&j);
        return Ok(());
    }
    let mut rows = vec![
        ("State", pool.state().to_owned()),
        ("UUID", pool.uuid.clone()),
        ("Path", pool.target.clone()),
        ("Persistent", yes_no(pool.persistent).into()),
        ("Autostart", yes_no(pool.autostart).into()),
    ];
    if let Some(n) = volumes {
        rows.push(("Capacity", bytes(pool.capacity)));
        rows.push(("Allocation", bytes(pool.allocation)));
        rows.push(("Available", bytes(pool.available)));
        rows.push(("Volumes", n.to_string()));
    }
    output::fields(&pool.name, &rows);
    Ok(())
}

/// Define a pool, or with `build` given create (start) a transient one.
async fn define(ctx: &Ctx, xml: &str, build: Option<bool>) -> Result<()> {
    let bus = ctx.bus();
    let _agent = Agent::start(bus.interactive);
    let path = match build {
        None => {
            bus.change(&m::DEFINE_POOL, MANAGER_PATH, &(xml.to_owned(), opts([])))
                .await?
        }
        Some(b) => {
            let o = opts([("build", Variant::from(b))]);
            bus.change(&m::CREATE_POOL, MANAGER_PATH, &(xml.to_owned(), o))
                .await?
        }
    };
    let pool = objects::pool_at(bus, path.as_str()).await?;
    let done = if build.is_some() {
        "started"
    } else {
        "defined"
    };
    println!("pool {} {done} ({})", pool.name, pool.uuid);
    Ok(())
}

async fn act(ctx: &Ctx, name: &str, method: &p::Action, done: &str) -> Result<()> {
    let bus = ctx.bus();
    let pool = objects::pool(bus, name).await?;
    let _agent = Agent::start(bus.interactive);
    bus.change(method, &pool.path, &(opts([]),)).await?;
    println!("pool {} {done}", pool.name);
    Ok(())
}

async fn autostart(ctx: &Ctx, name: &str, state: OnOff) -> Result<()> {
    let bus = ctx.bus();
    let pool = objects::pool(bus, name).await?;
    let on = matches!(state, OnOff::On);
    let _agent = Agent::start(bus.interactive);
    bus.set(&p::AUTOSTART, &pool.path, on).await?;
    let what = if on {
        "starts at boot"
    } else {
        "no longer starts at boot"
    };
    println!("pool {} {what}", pool.name);
    Ok(())
}
