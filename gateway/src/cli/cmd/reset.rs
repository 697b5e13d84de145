//! `corral reset`.

use crate::cli::{exit, CmdResult, Context, Failure, Target};
use corral_io::client::SessionState;
use std::time::Duration;

/// Restart a device and wait until it is back.
///
/// Back means connected again with a new boot id.
///
/// On a microcontroller this is a system reset; `corral-agent` restarts its
/// session. A device that does not come back within a minute is an
/// infrastructure failure (exit 255).
#[derive(clap::Args, Debug)]
#[command(after_help = concat!(crate::device_help!(), "\n\n", crate::exit_codes!()))]
pub struct Cmd {
    /// The device.
    pub device: String,
}

/// How long a reset may take.
const BACK_WITHIN: Duration = Duration::from_secs(60);

/// Resets the device.
pub async fn run(ctx: &Context, cmd: Cmd) -> CmdResult {
    match ctx.target(&cmd.device).await? {
        Target::Gateway(name) => {
            let status = ctx.api.reset(&name, &ctx.hold).await?;
            let boot = status["identity"]["boot_id"].as_str().unwrap_or("?");
            eprintln!("corral: {name} is back, boot id {boot}");
        }
        Target::Direct(client) => {
            let before = client.identity().map(|i| i.boot_id);
            let mut state = client.state();
            client.reset(Duration::from_secs(30)).await?;
            let back = tokio::time::timeout(BACK_WITHIN, async {
                loop {
                    match &*state.borrow_and_update() {
                        SessionState::Ready(id) if Some(id.boot_id) != before => {
                            return Ok(id.boot_id)
                        }
                        SessionState::Closed(_) => return Err(
                            "the device closed the link while restarting; connect again to use it",
                        ),
                        _ => {}
                    }
                    if state.changed().await.is_err() {
                        return Err("the session ended");
                    }
                }
            })
            .await;
            match back {
                Ok(Ok(boot)) => eprintln!("corral: {} is back, boot id {boot:08x}", cmd.device),
                // A direct link may not survive the restart (TCP): the
                // reset itself was acknowledged.
                Ok(Err(why)) => eprintln!("corral: reset acknowledged; {why}"),
                Err(_) => {
                    return Err(Failure::infra(format!(
                        "{} did not come back within {BACK_WITHIN:?} after the reset",
                        cmd.device
                    )))
                }
            }
        }
    }
    Ok(exit::OK)
}
