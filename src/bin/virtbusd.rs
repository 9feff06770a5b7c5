//! virtbusd: the virtbus service.

use std::process::ExitCode;

use virtbus::daemon::{self, args::Args};

fn main() -> ExitCode {
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
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("virtbusd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(daemon::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
