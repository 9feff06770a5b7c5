//! virtbusd: the virtbus service.

use std::process::ExitCode;

use virtbus::{
    config,
    daemon::{self, args::Args, logging, notify::Notifier},
};

/// BSD's `EX_CONFIG`, which systemd reports as "CONFIG".
const EXIT_CONFIG: u8 = 78;

fn main() -> ExitCode {
    // a container's controller, started by the LXC driver (see drivers::lxc::controller)
    let mut argv = std::env::args_os().skip(1);
    if argv.next().as_deref() == Some(virtbus::drivers::lxc::CONTROLLER_OPTION.as_ref())
        && let Some(plan) = argv.next()
    {
        return virtbus::drivers::lxc::controller::main(std::path::Path::new(&plan));
    }
    let args = match Args::parse_from(std::env::args_os()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("virtbusd: {e}\n\n{}", daemon::args::USAGE);
            return ExitCode::from(2);
        }
    };
    if args.help {
        print!("{}", daemon::args::USAGE);
        return ExitCode::SUCCESS;
    }
    if args.version {
        println!("virtbusd {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    // SAFETY: no other thread exists yet.
    let notifier = unsafe { Notifier::take_from_env() };
    let bus = args.bus.unwrap_or_else(daemon::default_bus);
    let loaded = match config::load(args.config.as_deref(), bus) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("virtbusd: {e}");
            notifier.status(&format!("Bad configuration: {e}"));
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let sink = logging::init(&loaded.config.log_level);
    if let logging::Sink::StderrNoJournal(e) = &sink {
        tracing::warn!("cannot log to the journal ({e}); logging to stderr");
    }
    match &loaded.path {
        Some(p) => tracing::info!("configuration from {}", p.display()),
        None => tracing::info!("no configuration file; using the built-in defaults"),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(daemon::run(args, loaded.config, notifier)) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
