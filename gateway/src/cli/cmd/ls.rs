//! `corral ls`.

use crate::api::wire::StatReply;
use crate::cli::{exit, CmdResult, Context, Target};
use std::time::Duration;

/// List a directory on a device.
///
/// Kind, permission bits, size and name of every entry.
#[derive(clap::Args, Debug)]
#[command(after_help = concat!(crate::device_help!(), "\n\n", crate::exit_codes!()))]
pub struct Cmd {
    /// The device.
    pub device: String,
    /// The directory (default: the agent's root).
    #[arg(default_value = "")]
    pub path: String,
    /// Print JSON (an array of {name, kind, size, mode, mtime}).
    #[arg(long)]
    pub json: bool,
}

/// Lists the directory.
pub async fn run(ctx: &Context, cmd: Cmd) -> CmdResult {
    let mut entries: Vec<StatReply> = match ctx.target(&cmd.device).await? {
        Target::Gateway(name) => ctx.api.list(&name, &ctx.hold, &cmd.path).await?,
        Target::Direct(client) => client
            .list(&cmd.path, Duration::from_secs(30))
            .await?
            .into_iter()
            .map(|(name, s)| StatReply {
                name,
                kind: corral_io::client::kind_name(s.kind).into(),
                size: s.size,
                mode: s.mode,
                mtime: s.mtime,
            })
            .collect(),
    };
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    if cmd.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&entries).unwrap_or_default()
        );
        return Ok(exit::OK);
    }
    let width = entries
        .iter()
        .map(|e| e.size.to_string().len())
        .max()
        .unwrap_or(1);
    for e in &entries {
        let kind = match e.kind.as_str() {
            "dir" => 'd',
            "symlink" => 'l',
            "file" => '-',
            _ => '?',
        };
        let suffix = if e.kind == "dir" { "/" } else { "" };
        println!(
            "{kind} {:04o} {:>width$} {}{suffix}",
            e.mode & 0o7777,
            e.size,
            crate::report::visible_text(&e.name)
        );
    }
    Ok(exit::OK)
}
