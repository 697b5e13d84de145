//! The `corral-agent` binary: parses the command line (`cli`), sets up
//! logging, serves the chosen transport, and on SIGTERM or SIGINT stops every
//! running command before it exits.

mod cli;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use corral_agent::agent::Agent;
use corral_agent::logfwd::{self, LogForwarder};
use corral_agent::serve::{serve_serial, serve_stdio, TcpServer};
use corral_io::transport::SerialSettings;
use tokio::sync::watch;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use cli::{Cli, Command, Plan, Transport};

/// Exit status for arguments that cannot work.
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Keygen { file }) = &cli.command {
        return match cli::keygen(file) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("corral-agent: error: {err:#}");
                ExitCode::FAILURE
            }
        };
    }
    let logs = init_logging(cli.serve.verbose);
    let plan = match cli.serve.into_plan() {
        Ok(plan) => plan,
        Err(err) => {
            eprintln!("corral-agent: error: {err:#}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("corral-agent: error: starting the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(run(plan, logs));
    // A read of standard input in progress would otherwise keep the process
    // alive until the gateway writes again.
    runtime.shutdown_timeout(Duration::from_millis(500));
    code
}

/// Logs to standard error (never standard output, which is the protocol in
/// `--stdio` mode) and forwards warnings to the gateway.
fn init_logging(verbose: u8) -> LogForwarder {
    let default = match verbose {
        0 => "warn,corral_agent=info,corral_io=info",
        1 => "info,corral_agent=debug,corral_io=debug",
        _ => "debug,corral_agent=trace,corral_io=trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let (forward, logs) = logfwd::forwarding();
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    tracing_subscriber::registry()
        .with(filter)
        .with(stderr)
        .with(forward)
        .init();
    logs
}

async fn run(plan: Plan, logs: LogForwarder) -> ExitCode {
    let agent = match Agent::new(plan.store, plan.options, Some(logs)) {
        Ok(agent) => agent,
        Err(err) => {
            eprintln!("corral-agent: error: {err}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let (stop_tx, stop) = watch::channel(false);
    let served = match plan.transport {
        Transport::Tcp { addr, key } => {
            let server = match TcpServer::bind(addr, key).await {
                Ok(server) => server,
                Err(err) => {
                    eprintln!("corral-agent: error: listening on {addr}: {err}");
                    return ExitCode::FAILURE;
                }
            };
            match server.local_addr() {
                Ok(bound) => tracing::info!("listening on tcp://{bound}"),
                Err(err) => tracing::warn!(%err, "cannot tell the bound address"),
            }
            tokio::spawn(server.run(Arc::clone(&agent), stop))
        }
        Transport::Serial { path, baud } => {
            let settings = SerialSettings {
                path,
                baud,
                dtr: None,
                rts: None,
            };
            tokio::spawn(serve_serial(Arc::clone(&agent), settings, stop))
        }
        Transport::Stdio => tokio::spawn(serve_stdio(Arc::clone(&agent), stop)),
    };
    tokio::pin!(served);
    tokio::select! {
        signal = terminated() => {
            match signal {
                Ok(name) => tracing::info!("{name} received; stopping every command and exiting"),
                Err(err) => tracing::error!(%err, "cannot watch for SIGTERM; exiting"),
            }
            stop_tx.send_replace(true);
            let _ = (&mut served).await;
        }
        _ = &mut served => {}
    }
    agent.shutdown().await;
    tracing::info!("agent stopped");
    ExitCode::SUCCESS
}

/// Completes on SIGTERM or SIGINT, with the signal's name.
async fn terminated() -> std::io::Result<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}
