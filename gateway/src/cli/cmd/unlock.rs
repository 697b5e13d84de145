//! `corral unlock`.

use crate::cli::{exit, CmdResult, Context};

/// Give a lease back.
///
/// The lease is one `corral lock` took, so others can have the device.
#[derive(clap::Args, Debug)]
#[command(after_help = crate::exit_codes!())]
pub struct Cmd {
    /// The device.
    pub device: String,
    /// The lease id `corral lock` printed.
    #[arg(env = "CORRAL_LEASE")]
    pub lease: u64,
}

/// Releases the lease.
pub async fn run(ctx: &Context, cmd: Cmd) -> CmdResult {
    let name = ctx.gateway_only(&cmd.device, "a lease")?;
    ctx.api.release(&name, cmd.lease).await?;
    Ok(exit::OK)
}
