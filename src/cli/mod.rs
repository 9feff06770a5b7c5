//! virtbusctl: the command-line client. Each module is one group of commands; all of them
//! reach the daemon through the typed calls of [`api`].

pub mod api;
mod args;
mod conn;
mod console;
mod domains;
mod error;
mod events;
mod gen_docs;
mod lifecycle;
mod list;
mod net;
mod objects;
mod output;
mod polkit;
mod pool;
mod progress;
mod size;
mod snapshot;
mod top;
mod vol;
mod xml;

use std::process::ExitCode;

use clap::FromArgMatches;

use args::{Cli, Command};
use error::{Error, Result};

/// What every command gets: the connection and how to print.
pub struct Ctx {
    pub conn: conn::Connection,
    pub json: bool,
}

impl Ctx {
    pub fn bus(&self) -> &api::Bus {
        &self.conn.bus
    }
}

pub fn main() -> ExitCode {
    let matches = match args::command().try_get_matches() {
        Ok(m) => m,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(error::Kind::Usage.code())
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(error::Kind::Usage.code());
        }
    };
    // Commands that need no daemon.
    match &cli.command {
        Command::Completions { shell } => return gen_docs::completions(*shell),
        Command::Manpage => return gen_docs::manpage(),
        _ => {}
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return Error::failed(format!("cannot start: {e}")).report(),
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => e.report(),
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let conn = conn::connect(&cli.conn).await?;
    let ctx = Ctx {
        conn,
        json: cli.json,
    };
    use Command as C;
    match cli.command {
        C::List(a) => list::list(&ctx, &a).await?,
        C::Status { domain } => list::status(&ctx, &domain).await?,
        C::Define { file } => xml::define(&ctx, &file).await?,
        C::Create { file, paused } => xml::create(&ctx, &file, paused).await?,
        C::Edit { domain } => xml::edit(&ctx, &domain).await?,
        C::Dumpxml {
            domain,
            inactive,
            security_info,
        } => xml::dumpxml(&ctx, &domain, inactive, security_info).await?,
        C::Undefine {
            domain,
            managed_save,
            snapshots_metadata,
            nvram,
        } => xml::undefine(&ctx, &domain, managed_save, snapshots_metadata, nvram).await?,
        C::AttachDevice(a) => xml::device(&ctx, &a, true).await?,
        C::DetachDevice(a) => xml::device(&ctx, &a, false).await?,
        C::Start {
            domain,
            paused,
            force_boot,
        } => lifecycle::start(&ctx, &domain, paused, force_boot).await?,
        C::Shutdown { domain, wait, mode } => {
            lifecycle::shutdown(&ctx, &domain, wait, mode).await?
        }
        C::Reboot { domain, mode } => lifecycle::reboot(&ctx, &domain, mode).await?,
        C::Reset { domain } => lifecycle::simple(&ctx, &domain, lifecycle::Simple::Reset).await?,
        C::Destroy { domain, graceful } => lifecycle::destroy(&ctx, &domain, graceful).await?,
        C::Suspend { domain } => {
            lifecycle::simple(&ctx, &domain, lifecycle::Simple::Suspend).await?
        }
        C::Resume { domain } => lifecycle::simple(&ctx, &domain, lifecycle::Simple::Resume).await?,
        C::Autostart { domain, state } => lifecycle::autostart(&ctx, &domain, state).await?,
        C::Save {
            domain,
            running,
            paused,
            remove,
        } => lifecycle::save(&ctx, &domain, running, paused, remove).await?,
        C::Restore { domain, paused } => lifecycle::restore(&ctx, &domain, paused).await?,
        C::Snapshot(s) => snapshot::run(&ctx, s).await?,
        C::Console {
            domain,
            device,
            force,
        } => console::console(&ctx, &domain, device, force).await?,
        C::Events { domain } => events::follow(&ctx, domain.as_deref()).await?,
        C::Stats { domains } => top::stats(&ctx, &domains).await?,
        C::Top { delay, iterations } => top::top(&ctx, delay, iterations).await?,
        C::Net(c) => net::run(&ctx, c).await?,
        C::Pool(c) => pool::run(&ctx, c).await?,
        C::Vol(c) => vol::run(&ctx, c).await?,
        C::Completions { .. } | C::Manpage => {}
    }
    Ok(ExitCode::SUCCESS)
}
