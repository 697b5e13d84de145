//! `cargo xtask`: the one entry point for everything that is more than
//! `cargo test` (see ARCHITECTURE.md). CI runs `cargo xtask test`.
//!
//! Every command prints what it does, installs what it needs when it can
//! (rustup targets; Debian packages when running as root) and says exactly
//! what is missing when it cannot.

mod bench;
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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let root = util::repo_root()?;
    match cli.cmd {
        Cmd::Test => test::run(&root),
        Cmd::Bench => bench::run(&root),
        Cmd::Firmware => {
            setup::ensure_targets(&["thumbv7m-none-eabi"])?;
            test::build_firmware(&root)?;
            bench::footprint(&root)
        }
    }
}
