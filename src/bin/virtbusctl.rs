//! virtbusctl: the command-line client of virtbusd. It talks to the daemon only over D-Bus
//! (the `org.virtbus1` API), so it uses nothing of the daemon's library.

#[path = "../cli/mod.rs"]
mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
