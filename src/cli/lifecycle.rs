//! start, shutdown, reboot, reset, destroy, suspend, resume, save, restore, autostart.

use zbus::Variant;

use super::{
    Ctx,
    api::{domain as d, opts},
    args::OnOff,
    domains,
    error::{Error, Kind, Result},
    progress,
};

/// The lifecycle calls that take no options of their own.
#[derive(Debug, Clone, Copy)]
pub enum Simple {
    Reset,
    Suspend,
    Resume,
}

/// Run a lifecycle action on `domain` and say what happened.
async fn act(
    ctx: &Ctx,
    domain: &str,
    method: &d::Action,
    o: super::api::Opts,
    label: &str,
    done: &str,
) -> Result<String> {
    let (path, name) = domains::resolve(ctx.bus(), domain).await?;
    let bus = ctx.bus();
    progress::run(ctx, &path, &name, label, bus.change(method, &path, &(o,))).await?;
    println!("{name} {done}");
    Ok(path)
}

pub async fn start(ctx: &Ctx, domain: &str, paused: bool, force_boot: bool) -> Result<()> {
    let info = domains::get(ctx.bus(), domain).await?;
    let restoring = info.managed_save && !force_boot;
    let label = if restoring { "restoring" } else { "starting" };
    let o = opts([
        ("paused", Variant::from(paused)),
        ("force-boot", Variant::from(force_boot)),
    ]);
    let done = if restoring { "restored" } else { "started" };
    act(ctx, domain, &d::START, o, label, done).await?;
    Ok(())
}

pub async fn shutdown(ctx: &Ctx, domain: &str, wait: bool, mode: Option<String>) -> Result<()> {
    let mut o = opts([]);
    if let Some(m) = mode {
        o.insert("mode".into(), Variant::from(m));
    }
    let (path, domain) = domains::resolve(ctx.bus(), domain).await?;
    let domain = domain.as_str();
    let bus = ctx.bus();
    progress::run(
        ctx,
        &path,
        domain,
        "shutting down",
        bus.change(&d::SHUTDOWN, &path, &(o,)),
    )
    .await?;
    if wait {
        progress::wait_state(ctx, &path, domain, "shut-off").await?;
        println!("{domain} is shut off");
    } else {
        println!("{domain} is shutting down");
    }
    Ok(())
}

pub async fn reboot(ctx: &Ctx, domain: &str, mode: Option<String>) -> Result<()> {
    let mut o = opts([]);
    if let Some(m) = mode {
        o.insert("mode".into(), Variant::from(m));
    }
    act(ctx, domain, &d::REBOOT, o, "rebooting", "is rebooting").await?;
    Ok(())
}

pub async fn destroy(ctx: &Ctx, domain: &str, graceful: bool) -> Result<()> {
    let o = opts([("graceful", Variant::from(graceful))]);
    act(ctx, domain, &d::DESTROY, o, "destroying", "destroyed").await?;
    Ok(())
}

pub async fn simple(ctx: &Ctx, domain: &str, which: Simple) -> Result<()> {
    let (method, label, done) = match which {
        Simple::Reset => (&d::RESET, "resetting", "was reset"),
        Simple::Suspend => (&d::SUSPEND, "suspending", "suspended"),
        Simple::Resume => (&d::RESUME, "resuming", "resumed"),
    };
    act(ctx, domain, method, opts([]), label, done).await?;
    Ok(())
}

pub async fn autostart(ctx: &Ctx, domain: &str, state: OnOff) -> Result<()> {
    let (path, domain) = domains::resolve(ctx.bus(), domain).await?;
    let on = matches!(state, OnOff::On);
    let bus = ctx.bus();
    let _agent = super::polkit::Agent::start(bus.interactive);
    bus.set(&d::AUTOSTART, &path, on).await?;
    println!(
        "{domain} {}",
        if on {
            "starts at boot"
        } else {
            "no longer starts at boot"
        }
    );
    Ok(())
}

pub async fn save(
    ctx: &Ctx,
    domain: &str,
    running: bool,
    paused: bool,
    remove: bool,
) -> Result<()> {
    if remove {
        act(
            ctx,
            domain,
            &d::MANAGED_SAVE_REMOVE,
            opts([]),
            "removing the saved state",
            "has no saved state any more",
        )
        .await?;
        return Ok(());
    }
    let o = opts([
        ("running", Variant::from(running)),
        ("paused", Variant::from(paused)),
    ]);
    act(
        ctx,
        domain,
        &d::MANAGED_SAVE,
        o,
        "saving",
        "saved; `start` restores it",
    )
    .await?;
    Ok(())
}

pub async fn restore(ctx: &Ctx, domain: &str, paused: bool) -> Result<()> {
    let info = domains::get(ctx.bus(), domain).await?;
    if !info.managed_save {
        return Err(Error::new(
            Kind::State,
            format!("{} has no saved state to restore", info.name),
        ));
    }
    let o = opts([("paused", Variant::from(paused))]);
    act(ctx, domain, &d::START, o, "restoring", "restored").await?;
    Ok(())
}
