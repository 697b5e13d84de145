//! `cargo xtask test`: what CI runs.

use crate::setup::{ensure_packages, ensure_targets};
use crate::util::{self, run_env, step};
use anyhow::Result;
use std::path::Path;
use std::time::Instant;

/// Bare-metal targets the no_std crates and firmware build for.
pub const TARGETS: &[&str] = &["thumbv7m-none-eabi", "riscv32imc-unknown-none-elf"];

/// Boards and the directory (under `boards/`) and target of each: the
/// emulated board CI runs, and the real ones it only builds.
pub const BOARDS: &[(&str, &str)] = &[
    ("qemu-lm3s6965", "thumbv7m-none-eabi"),
    ("nucleo-f401re", "thumbv7em-none-eabihf"),
];

/// Debian packages the suites need, by the program they provide.
pub const PACKAGES: &[(&str, &str)] = &[
    ("qemu-system-arm", "qemu-system-arm"),
    // The board bring-up checks (boards/scripts/qemu_board_check.py).
    ("python3", "python3"),
];

pub fn run(root: &Path) -> Result<()> {
    let t = Instant::now();
    step("set-up: rustup targets and Debian packages");
    ensure_targets(TARGETS)?;
    ensure_targets(&BOARDS.iter().map(|(_, t)| *t).collect::<Vec<_>>())?;
    ensure_packages(PACKAGES)?;

    step("formatting");
    util::run(root, "cargo", &["fmt", "--all", "--", "--check"])?;
    util::run(
        &root.join("boards"),
        "cargo",
        &["fmt", "--all", "--", "--check"],
    )?;

    step("clippy (host crates, all targets)");
    util::run(
        root,
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    )?;

    step("no_std builds");
    for target in TARGETS {
        util::run(
            root,
            "cargo",
            &["build", "-p", "corral-protocol", "--target", target],
        )?;
    }
    util::run(
        root,
        "cargo",
        &[
            "build",
            "-p",
            "corral-agent-core",
            "--target",
            "thumbv7m-none-eabi",
        ],
    )?;

    step("firmware");
    build_firmware(root)?;
    util::run(
        &root.join("boards"),
        "cargo",
        &["clippy", "--workspace", "--", "-D", "warnings"],
    )?;
    for (board, _) in BOARDS {
        // Each board lints for its own target (set in its .cargo/config.toml).
        util::run(
            &root.join("boards").join(board),
            "cargo",
            &["clippy", "--all-targets", "--", "-D", "warnings"],
        )?;
    }
    util::run(
        &root.join("boards"),
        "cargo",
        &[
            "test",
            "-p",
            "corral-board-common",
            "-p",
            "corral-board-agent",
        ],
    )?;

    step("board bring-up under QEMU (UART echo, receive ring, reset, panic)");
    util::run(
        &root.join("boards"),
        "bash",
        &["scripts/qemu-echo-check.sh"],
    )?;

    step("tests (unit, end-to-end, QEMU)");
    let firmware = firmware_path(root);
    run_env(
        root,
        "cargo",
        &["test", "--workspace", "--no-fail-fast"],
        &[(
            "CORRAL_FIRMWARE_LM3S6965",
            firmware.to_str().unwrap_or_default(),
        )],
    )?;

    println!("\nall checks passed in {:.0?}", t.elapsed());
    Ok(())
}

/// Builds every board's release firmware once; the end-to-end suites use
/// these images.
pub fn build_firmware(root: &Path) -> Result<()> {
    for (board, _) in BOARDS {
        util::run(
            &root.join("boards").join(board),
            "cargo",
            &["build", "--release"],
        )?;
    }
    Ok(())
}

/// The emulated Cortex-M3 board's firmware image.
pub fn firmware_path(root: &Path) -> std::path::PathBuf {
    root.join("boards/target/thumbv7m-none-eabi/release/corral-board-qemu-lm3s6965")
}
