//! `corral console`.

use crate::cli::{exit, CmdResult, Context, Failure, Target};
use futures_util::StreamExt;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Show a device's console output and agent log, live.
///
/// Console output is boot banners and `printf` text that share the line
/// with the protocol; agent log lines are prefixed `[log]`. Runs until
/// Ctrl-C.
///
/// Through a gateway this follows the device across reconnects and resets
/// and takes no lease: anyone may watch while a job runs.
#[derive(clap::Args, Debug)]
#[command(after_help = concat!(crate::device_help!(), "\n\n", crate::exit_codes!()))]
pub struct Cmd {
    /// The device.
    pub device: String,
    /// Stop after this long (e.g. 30s) instead of at Ctrl-C.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
}

async fn out(data: &[u8]) -> Result<(), Failure> {
    let mut o = tokio::io::stdout();
    o.write_all(data)
        .await
        .and(o.flush().await)
        .map_err(|e| Failure::refused(format!("writing the console text: {e}")))
}

/// Follows the console.
pub async fn run(ctx: &Context, cmd: Cmd) -> CmdResult {
    let until = async {
        match cmd.duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(until);
    match ctx.target(&cmd.device).await? {
        Target::Gateway(name) => {
            let mut stream = ctx.api.console(&name).await?.bytes_stream();
            loop {
                tokio::select! {
                    c = stream.next() => match c {
                        Some(Ok(b)) => out(&b).await?,
                        Some(Err(e)) => return Err(Failure::infra(format!("the console stream broke: {e}"))),
                        None => return Err(Failure::infra("the gateway closed the console stream (did it stop?)")),
                    },
                    _ = tokio::signal::ctrl_c() => return Ok(exit::OK),
                    _ = &mut until => return Ok(exit::OK),
                }
            }
        }
        Target::Direct(client) => {
            let mut text = client.console();
            let mut logs = client.logs();
            let mut state = client.state();
            loop {
                tokio::select! {
                    t = text.recv() => if let Ok(t) = t { out(&t).await? },
                    l = logs.recv() => if let Ok(l) = l { out(format!("[log] {}\n", l.trim_end()).as_bytes()).await? },
                    c = state.changed() => {
                        let closed = c.is_err() || matches!(&*state.borrow(), corral_io::client::SessionState::Closed(_));
                        if closed {
                            return Err(Failure::infra(format!("the link to {} closed", cmd.device)));
                        }
                    }
                    _ = tokio::signal::ctrl_c() => return Ok(exit::OK),
                    _ = &mut until => return Ok(exit::OK),
                }
            }
        }
    }
}
