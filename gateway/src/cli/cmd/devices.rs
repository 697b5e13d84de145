//! `corral devices`.

use crate::cli::{color_stdout, CmdResult, Context};
use serde_json::Value;

/// List the gateway's devices and their state.
///
/// For each: name, state, link, lease holder and why the device is in its
/// state.
///
/// States: offline (unreachable), connecting, idle, busy (leased),
/// quarantined (it stopped answering and neither a soft reset nor a power
/// cycle brought it back; it takes no work until its health check passes),
/// powered_off (a latent device the gateway switches on when needed). While
/// the gateway recovers a device, the reason says which rung it is on.
#[derive(clap::Args, Debug)]
#[command(after_help = crate::exit_codes!())]
pub struct Cmd {
    /// Print JSON (an array of device objects, as `GET /v1/devices`).
    #[arg(long)]
    pub json: bool,
}

/// Lists the devices.
pub async fn run(ctx: &Context, cmd: Cmd) -> CmdResult {
    let devices = ctx.api.devices().await?;
    if cmd.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&devices).unwrap_or_default()
        );
    } else {
        print!("{}", render(&devices, color_stdout()));
    }
    Ok(crate::cli::exit::OK)
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

/// The table `corral devices` prints.
pub fn render(devices: &[Value], color: bool) -> String {
    if devices.is_empty() {
        return "no devices: the gateway's inventory lists none\n".into();
    }
    let rows: Vec<[String; 5]> = devices
        .iter()
        .map(|d| {
            let lease = d
                .get("lease")
                .filter(|l| !l.is_null())
                .map(|l| {
                    format!(
                        "{} ({})",
                        s(l, "holder"),
                        l.get("id").and_then(Value::as_u64).unwrap_or(0)
                    )
                })
                .unwrap_or_else(|| "-".into());
            [
                crate::report::visible_text(s(d, "name")).into_owned(),
                s(d, "state").to_string(),
                crate::report::visible_text(s(d, "link")).into_owned(),
                crate::report::visible_text(&lease).into_owned(),
                crate::report::visible_text(s(d, "reason")).into_owned(),
            ]
        })
        .collect();
    let header = ["NAME", "STATE", "LINK", "LEASE", "REASON"].map(String::from);
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for (i, row) in std::iter::once(&header).chain(&rows).enumerate() {
        let mut line = String::new();
        for (j, (c, w)) in row.iter().zip(widths).enumerate() {
            let pad = w - c.chars().count();
            let shown = if color && i > 0 && j == 1 {
                paint(c)
            } else {
                c.clone()
            };
            if j + 1 == row.len() {
                line.push_str(&shown);
            } else {
                line.push_str(&shown);
                line.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn paint(state: &str) -> String {
    let code = match state {
        "idle" => "32",
        "busy" => "33",
        "offline" | "quarantined" => "31",
        _ => "2",
    };
    format!("\x1b[{code}m{state}\x1b[0m")
}
