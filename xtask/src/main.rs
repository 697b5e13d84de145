//! `cargo xtask`: the one entry point for everything that is more than
//! `cargo test` (see ARCHITECTURE.md). CI runs `cargo xtask test`.
//!
//! Every command prints what it does, installs what it needs when it can
//! (rustup targets; Debian packages when running as root) and says exactly
//! what is missing when it cannot.

mod bench;
mod fuzz;
mod setup;
mod test;
mod util;

use clap::{Parser, Subcommand};

/// Corral's task runner.
#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Everything CI checks: set-up, formatting, clippy, the no_std and
    /// firmware builds, and every test suite (unit, end-to-end, QEMU).
    Test,
    /// Benchmarks: prints `BENCH <name> <value> <unit>` lines.
    Bench,
    /// Builds the firmware of every board (release) and prints its size.
    Firmware,
    /// Runs the cargo-fuzz targets (frame decoder, message decoder, link),
    /// each for the given time; fails on a crash and prints the reproducer.
    Fuzz {
        /// One target only (frame_decoder, message_decoder, link_receive).
        target: Option<String>,
        /// Seconds per target.
        #[arg(long, default_value_t = fuzz::DEFAULT_SECONDS)]
        seconds: u64,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let root = util::repo_root()?;
    match cli.cmd {
        Cmd::Test => test::run(&root),
        Cmd::Bench => bench::run(&root),
        Cmd::Fuzz { target, seconds } => fuzz::run(&root, target.as_deref(), seconds),
        Cmd::Firmware => {
            setup::ensure_targets(&["thumbv7m-none-eabi"])?;
            test::build_firmware(&root)?;
            bench::footprint(&root)
        }
    }
}
