//! `corral info`.

use crate::cli::{exit, CmdResult, Context, Target};
use serde_json::{json, Value};
use std::time::Duration;

/// Show a device's identity, limits, state and link statistics.
///
/// Identity: name, board, serial number, firmware, boot id. Limits:
/// concurrent commands, storage. Link statistics: reconnects, resets, CRC
/// errors, retransmissions, round-trip time.
#[derive(clap::Args, Debug)]
#[command(after_help = concat!(crate::device_help!(), "\n\n", crate::exit_codes!()))]
pub struct Cmd {
    /// The device.
    pub device: String,
    /// Print JSON (the device object of `GET /v1/devices/{name}`).
    #[arg(long)]
    pub json: bool,
}

/// Shows the device.
pub async fn run(ctx: &Context, cmd: Cmd) -> CmdResult {
    let info = match ctx.target(&cmd.device).await? {
        Target::Gateway(name) => ctx.api.device(&name).await?,
        Target::Direct(client) => {
            let rtt = client.ping(Duration::from_secs(10)).await?;
            let id = client.identity().unwrap_or_default();
            let st = client.link_stats();
            json!({
                "name": cmd.device,
                "link": cmd.device,
                "state": "idle",
                "reason": "connected directly",
                "identity": {
                    "name": id.name,
                    "board": id.board,
                    "serial": id.serial,
                    "firmware": id.firmware,
                    "boot_id": format!("{:08x}", id.boot_id),
                    "max_commands": id.limits.max_commands,
                    "storage_bytes": id.limits.storage_bytes,
                    "storage_free": id.limits.storage_free,
                    "max_file": id.limits.max_file,
                    "commands": id.commands,
                },
                "counters": {
                    "crc_errors": st.bad_frames,
                    "retransmits": st.retransmits,
                    "timeouts": st.timeouts,
                    "frames_sent": st.frames_sent,
                    "frames_received": st.frames_received,
                    "bytes_sent": st.bytes_sent,
                    "bytes_received": st.bytes_received,
                },
                "rtt_us": rtt.as_micros() as u64,
            })
        }
    };
    if cmd.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&info).unwrap_or_default()
        );
    } else {
        print!("{}", render(&info));
    }
    Ok(exit::OK)
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => crate::report::visible_text(s).into_owned(),
        Value::Null => "-".into(),
        Value::Array(a) if a.is_empty() => "-".into(),
        Value::Array(a) => a.iter().map(text).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

/// The human form of a device object.
pub fn render(d: &Value) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<19}{v}\n"));
    line("device", text(&d["name"]));
    line(
        "state",
        format!("{} ({})", text(&d["state"]), text(&d["reason"])),
    );
    line("link", text(&d["link"]));
    if d.get("labels").is_some() {
        line("labels", text(&d["labels"]));
    }
    if let Some(l) = d.get("lease").filter(|l| !l.is_null()) {
        line(
            "lease",
            format!(
                "{} held by {} ({} s left)",
                text(&l["id"]),
                text(&l["holder"]),
                l["expires_in_ms"].as_u64().unwrap_or(0) / 1000
            ),
        );
    }
    let id = &d["identity"];
    if id.is_object() {
        line("agent", text(&id["name"]));
        line("board", text(&id["board"]));
        line("serial number", text(&id["serial"]));
        line("firmware", text(&id["firmware"]));
        line("boot id", text(&id["boot_id"]));
        line("commands at once", text(&id["max_commands"]));
        line(
            "storage",
            format!(
                "{} free of {} (largest file {})",
                human(&id["storage_free"]),
                human(&id["storage_bytes"]),
                human(&id["max_file"])
            ),
        );
        line("built-in commands", {
            let c = text(&id["commands"]);
            if c == "-" {
                "(runs any program)".into()
            } else {
                c
            }
        });
    } else {
        line("identity", "(not connected yet)".into());
    }
    if let Some(rtt) = d["rtt_us"].as_u64() {
        line("round trip", format!("{:.2} ms", rtt as f64 / 1000.0));
    }
    if let Some(c) = d["counters"].as_object() {
        let parts: Vec<String> = c.iter().map(|(k, v)| format!("{k}={v}")).collect();
        line("link counters", parts.join(" "));
    }
    out
}

fn human(v: &Value) -> String {
    match v.as_u64() {
        Some(n) => crate::cli::progress::human_bytes(n),
        None => "-".into(),
    }
}
