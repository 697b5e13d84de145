//! `corral demo`.

use crate::cli::{color_stdout, exit, CmdResult, Failure};
use crate::demo::{self, DemoOptions};
use std::path::PathBuf;

/// Try the whole system on this machine: a gateway, virtual devices, jobs.
///
/// Nothing to set up: it builds `corral-agent`, starts a gateway with
/// virtual devices (agents over TCP with a key and over a pty null-modem
/// cable, and an emulated Cortex-M3 board in QEMU when QEMU is available),
/// runs a sample job on each, prints the results and writes them as JUnit XML
/// and JSON.
#[derive(clap::Args, Debug)]
#[command(after_help = crate::exit_codes!())]
pub struct Cmd {
    /// Where the demo's files and results go (emptied first).
    #[arg(long, value_name = "DIR", default_value = "corral-demo")]
    pub dir: PathBuf,
    /// Leave out the QEMU board.
    #[arg(long)]
    pub no_qemu: bool,
}

/// Runs the demo.
pub async fn run(cmd: Cmd) -> CmdResult {
    let passed = demo::run(DemoOptions {
        dir: cmd.dir,
        color: color_stdout(),
        qemu: !cmd.no_qemu,
    })
    .await
    .map_err(|e| Failure::infra(format!("{e:#}")))?;
    Ok(if passed { exit::OK } else { exit::FAILED })
}
