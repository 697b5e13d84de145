//! `corral lock`.

use crate::api::wire::LeaseBody;
use crate::cli::{exit, CmdResult, Context};
use std::time::Duration;

/// Take a device's lease and print its id, for --lease.
///
/// While you hold it, the device is yours: a series of commands (or a
/// person at a desk) has it to itself.
///
/// Pass the id to later commands with --lease ID or CORRAL_LEASE=ID (see
/// the example below).
///
/// The lease lasts --ttl after its last use (every command under it renews
/// it), so a forgotten lock frees itself. While someone else holds the
/// device this waits (up to --wait), or fails at once with --no-wait
/// (exit 1).
#[derive(clap::Args, Debug)]
#[command(after_help = concat!(
    "Example:\n",
    "  export CORRAL_LEASE=$(corral lock pico-1)\n",
    "  corral push pico-1 fw.bin fw.bin && corral exec pico-1 -- selftest\n",
    "  corral unlock pico-1 $CORRAL_LEASE\n\n",
    crate::exit_codes!()
))]
pub struct Cmd {
    /// The device (a gateway's device name).
    pub device: String,
    /// How long the lease lasts after its last use.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
    /// How long to wait for the device.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = humantime::parse_duration)]
    pub wait: Duration,
    /// Who holds it, as others see it (default: USER@HOST).
    #[arg(long, value_name = "NAME")]
    pub holder: Option<String>,
}

/// Takes the lease.
pub async fn run(ctx: &Context, cmd: Cmd) -> CmdResult {
    let name = ctx.gateway_only(&cmd.device, "a lease")?;
    let holder = cmd.holder.clone().unwrap_or_else(|| {
        let user = std::env::var("USER").unwrap_or_else(|_| "someone".into());
        format!("{user}@{}", crate::gateway::host_name())
    });
    let body = LeaseBody {
        holder,
        ttl_ms: cmd.ttl.as_millis() as u64,
        wait_ms: if ctx.hold.no_wait {
            0
        } else {
            cmd.wait.as_millis() as u64
        },
    };
    let lease = tokio::select! {
        l = ctx.api.lease(&name, &body) => l?,
        _ = tokio::signal::ctrl_c() => return Ok(exit::INTERRUPTED),
    };
    println!("{}", lease.id);
    eprintln!(
        "corral: {name} is leased to {} as lease {} until {} after its last use; give it back with `corral unlock {name} {}`",
        lease.holder,
        lease.id,
        crate::report::human_duration(Duration::from_millis(lease.ttl_ms)),
        lease.id
    );
    Ok(exit::OK)
}
