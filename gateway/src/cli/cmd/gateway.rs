//! `corral gateway`: the daemon.

use crate::cli::{exit, CmdResult, Failure};
use crate::config::Inventory;
use crate::Gateway;
use std::path::PathBuf;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};

/// Run the gateway daemon for the devices of an inventory.
///
/// It owns the devices of the inventory and serves the HTTP API the other
/// commands use.
///
/// Every device gets its own task that connects, reconnects with backoff
/// and keeps its state (offline, connecting, idle, busy, quarantined). The
/// API listens where the inventory's `[gateway] listen` says (default
/// 127.0.0.1:7700); an address beyond loopback needs `token_file`, and then
/// every request must carry `Authorization: Bearer <token>`.
///
/// Signals: SIGHUP reloads the inventory (devices whose entry did not change
/// keep their links; a file with errors is reported and the old inventory
/// stays); SIGTERM and SIGINT stop the daemon cleanly, releasing the ports.
/// Logs go to stderr (RUST_LOG=debug for more).
#[derive(clap::Args, Debug)]
#[command(after_help = concat!(
    "Example inventory: gateway/examples/gateway.toml; systemd unit: gateway/examples/corral-gateway.service.\n\n",
    crate::exit_codes!()
))]
pub struct Cmd {
    /// The inventory (TOML).
    #[arg(long, short = 'c', value_name = "FILE", env = "CORRAL_CONFIG")]
    pub config: PathBuf,
    /// Listen here instead of the inventory's `[gateway] listen`.
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<std::net::SocketAddr>,
}

/// How long running requests get to finish after SIGTERM.
const DRAIN: Duration = Duration::from_secs(5);

fn read_token(inv: &Inventory) -> Result<Option<String>, Failure> {
    let Some(path) = &inv.gateway.token_file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        Failure::usage(format!(
            "reading the API token file {} (token_file in {}): {e}",
            path.display(),
            inv.path.display()
        ))
    })?;
    let token = text.trim().to_string();
    if token.is_empty() {
        return Err(Failure::usage(format!(
            "the API token file {} is empty; put a long random string in it (e.g. `openssl rand -hex 32 > {}`)",
            path.display(),
            path.display()
        )));
    }
    Ok(Some(token))
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(cmd: Cmd) -> CmdResult {
    let inventory = Inventory::load(&cmd.config).map_err(|e| Failure::usage(e.to_string()))?;
    let token = read_token(&inventory)?;
    let listen = cmd.listen.unwrap_or(inventory.gateway.listen);
    if !listen.ip().is_loopback() && token.is_none() {
        return Err(Failure::usage(format!(
            "refusing to serve the API on {listen} without a token: anyone who reaches it could drive the devices. Set token_file in [gateway] of {}, or listen on 127.0.0.1",
            cmd.config.display()
        )));
    }
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        Failure::refused(format!(
            "listening on {listen}: {e} (is another gateway running? choose another address with --listen or [gateway] listen)"
        ))
    })?;
    let mut hup = signal(SignalKind::hangup())
        .map_err(|e| Failure::refused(format!("SIGHUP handler: {e}")))?;
    let mut term = signal(SignalKind::terminate())
        .map_err(|e| Failure::refused(format!("SIGTERM handler: {e}")))?;
    let mut int = signal(SignalKind::interrupt())
        .map_err(|e| Failure::refused(format!("SIGINT handler: {e}")))?;

    let gateway = Gateway::start(inventory);
    tracing::info!(%listen, config = %cmd.config.display(), "HTTP API listening");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::api::server::serve(
        listener,
        gateway.clone(),
        token,
        async move {
            let _ = stop_rx.await;
        },
    ));
    tokio::pin!(server);
    let code = loop {
        tokio::select! {
            _ = hup.recv() => reload(&gateway, &cmd.config),
            _ = term.recv() => break exit::OK,
            _ = int.recv() => break exit::OK,
            r = &mut server => {
                // The server stops by itself only when it fails.
                let why = match r {
                    Ok(Ok(())) => "stopped".to_string(),
                    Ok(Err(e)) => e.to_string(),
                    Err(e) => e.to_string(),
                };
                tracing::error!(error = %why, "the HTTP API failed");
                gateway.shutdown().await;
                return Err(Failure::infra(format!("the HTTP API failed: {why}")));
            }
        }
    };
    tracing::info!("stopping");
    let _ = stop_tx.send(());
    // Streams that never end on their own (console) must not hold the
    // daemon up.
    if tokio::time::timeout(DRAIN, &mut server).await.is_err() {
        tracing::warn!("requests still running after {DRAIN:?}; closing them");
        server.abort();
    }
    gateway.shutdown().await;
    tracing::info!("stopped");
    Ok(code)
}

fn reload(gateway: &Gateway, path: &std::path::Path) {
    match Inventory::load(path) {
        Ok(new) => {
            let diff = gateway.reload(new);
            if diff.gateway_changed {
                tracing::warn!("the [gateway] section changed; listen address, token and name take effect after a restart");
            }
            if diff.is_empty() {
                tracing::info!("inventory reloaded: nothing changed");
            }
        }
        Err(e) => {
            tracing::error!("not reloading: {e}; the old inventory stays in force");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_inventory_is_valid() {
        let inv = Inventory::parse(
            include_str!("../../../examples/gateway.toml"),
            std::path::Path::new("examples/gateway.toml"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(inv.devices.len(), 3);
        assert!(inv.gateway.listen.ip().is_loopback());
    }
}
