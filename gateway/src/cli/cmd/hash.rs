//! `corral hash`.

use crate::api::wire::HashReply;
use crate::cli::{exit, CmdResult, Context, Target};
use std::time::Duration;

/// Print the SHA-256 of a file on a device.
///
/// Computed on the device, printed like `sha256sum`: `HASH  PATH`.
#[derive(clap::Args, Debug)]
#[command(after_help = concat!(crate::device_help!(), "\n\n", crate::exit_codes!()))]
pub struct Cmd {
    /// The device.
    pub device: String,
    /// The file on the device.
    pub path: String,
    /// Print JSON ({size, sha256}).
    #[arg(long)]
    pub json: bool,
}

/// Prints the hash.
pub async fn run(ctx: &Context, cmd: Cmd) -> CmdResult {
    let h: HashReply = match ctx.target(&cmd.device).await? {
        Target::Gateway(name) => ctx.api.hash(&name, &ctx.hold, &cmd.path).await?,
        Target::Direct(client) => {
            let (size, sha) = client.hash(&cmd.path, Duration::from_secs(300)).await?;
            HashReply {
                size,
                sha256: crate::transfer::hex(&sha),
            }
        }
    };
    if cmd.json {
        println!("{}", serde_json::to_string_pretty(&h).unwrap_or_default());
    } else {
        println!("{}  {}", h.sha256, crate::report::visible_text(&cmd.path));
    }
    Ok(exit::OK)
}
