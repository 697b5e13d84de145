//! `corral rm`.

use crate::cli::{exit, CmdResult, Context, Target};
use std::time::Duration;

/// Remove a file or an empty directory on a device.
///
/// Exits 1 if it does not exist.
#[derive(clap::Args, Debug)]
#[command(after_help = concat!(crate::device_help!(), "\n\n", crate::exit_codes!()))]
pub struct Cmd {
    /// The device.
    pub device: String,
    /// The path on the device.
    pub path: String,
}

/// Removes the path.
pub async fn run(ctx: &Context, cmd: Cmd) -> CmdResult {
    match ctx.target(&cmd.device).await? {
        Target::Gateway(name) => ctx.api.remove(&name, &ctx.hold, &cmd.path).await?,
        Target::Direct(client) => client.remove(&cmd.path, Duration::from_secs(30)).await?,
    }
    Ok(exit::OK)
}
