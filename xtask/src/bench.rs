//! `cargo xtask bench`: every figure the issues name, as
//! `BENCH <name> <value> <unit>` lines.

use crate::util::{self, output, step};
use anyhow::{Context, Result};
use std::path::Path;

pub fn run(root: &Path) -> Result<()> {
    machine();
    step("protocol: 1 MiB push over a simulated 8N1 line; framing speed");
    util::run(
        root,
        "cargo",
        &["bench", "-p", "corral-protocol", "--bench", "link"],
    )?;
    step("firmware footprint");
    crate::setup::ensure_targets(&["thumbv7m-none-eabi"])?;
    crate::test::build_firmware(root)?;
    footprint(root)
}

/// Says which machine the figures come from.
fn machine() {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    println!("machine: {cpu}, {cores} cores");
}

/// `size` of each board's release ELF, as BENCH lines.
pub fn footprint(root: &Path) -> Result<()> {
    let elf = crate::test::firmware_path(root);
    let text = output(root, "size", &["-A", elf.to_str().unwrap_or_default()])
        .context("running `size` (Debian package binutils)")?;
    let section = |name: &str| -> u64 {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let flash = section(".vector_table") + section(".text") + section(".rodata") + section(".data");
    let ram = section(".data") + section(".bss") + section(".uninit");
    println!("BENCH firmware_lm3s6965_flash {flash} bytes");
    println!("BENCH firmware_lm3s6965_static_ram {ram} bytes");
    Ok(())
}
