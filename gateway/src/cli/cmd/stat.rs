//! `corral stat`.

use crate::api::wire::StatReply;
use crate::cli::{exit, CmdResult, Context, Target};
use std::time::Duration;

/// Show facts about a path on a device.
///
/// Kind, size, permission bits and modification time. Exits 1 if it does
/// not exist.
#[derive(clap::Args, Debug)]
#[command(after_help = concat!(crate::device_help!(), "\n\n", crate::exit_codes!()))]
pub struct Cmd {
    /// The device.
    pub device: String,
    /// The path on the device.
    pub path: String,
    /// Print JSON ({kind, size, mode, mtime}).
    #[arg(long)]
    pub json: bool,
}

/// Shows the path.
pub async fn run(ctx: &Context, cmd: Cmd) -> CmdResult {
    let s: StatReply = match ctx.target(&cmd.device).await? {
        Target::Gateway(name) => ctx.api.stat(&name, &ctx.hold, &cmd.path).await?,
        Target::Direct(client) => {
            let s = client.stat(&cmd.path, Duration::from_secs(30)).await?;
            StatReply {
                name: String::new(),
                kind: corral_io::client::kind_name(s.kind).into(),
                size: s.size,
                mode: s.mode,
                mtime: s.mtime,
            }
        }
    };
    if cmd.json {
        println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
    } else {
        let when = u64::try_from(s.mtime)
            .ok()
            .map(|t| {
                humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(t))
                    .to_string()
            })
            .unwrap_or_else(|| s.mtime.to_string());
        println!("path      {}", crate::report::visible_text(&cmd.path));
        println!("kind      {}", s.kind);
        println!("size      {}", s.size);
        println!("mode      {:04o}", s.mode & 0o7777);
        println!("modified  {when}");
    }
    Ok(exit::OK)
}
