//! `corral`: the gateway daemon and the command line for devices, jobs and
//! leases. Everything lives in [`corral_gateway::cli`]; this only sets up
//! logging and the runtime.

use clap::Parser;
use corral_gateway::cli::{self, Cli, Command};
use tracing_subscriber::EnvFilter;

fn main() {
    let cli = Cli::parse();
    let daemon = matches!(cli.command, Command::Gateway(_) | Command::Demo(_));
    // The daemon logs what it does; a command only what went wrong, unless
    // asked.
    let default = match (daemon, cli.verbose) {
        (_, 2..) => "debug",
        (true, _) | (_, 1) => "info",
        _ => "warn",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(
            cli::stderr_is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        )
        .init();
    let runtime = if daemon {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    } else {
        // One command, one device: a single thread starts faster.
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("corral: starting the async runtime: {e}");
            std::process::exit(cli::exit::INFRASTRUCTURE);
        }
    };
    let code = runtime.block_on(cli::run(cli));
    // Streams still open (a console, an exec the gateway is cancelling)
    // must not keep the process alive.
    runtime.shutdown_background();
    std::process::exit(code);
}
