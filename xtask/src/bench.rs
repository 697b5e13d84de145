//! `cargo xtask bench`: every figure the issues name, as
//! `BENCH <name> <value> <unit>` lines.

use crate::util::{self, output, step};
use anyhow::{bail, Context, Result};
use std::path::Path;

/// Runs every benchmark. A part that fails is reported and the others still
/// run (their figures are worth having); the command fails at the end.
pub fn run(root: &Path) -> Result<()> {
    machine();
    let mut failed = Vec::new();
    let mut part = |name: &str, r: Result<()>| {
        if let Err(e) = r {
            println!("    FAILED {name}: {e:#}");
            failed.push(name.to_string());
        }
    };
    step("protocol: 1 MiB push over a simulated 8N1 line; framing speed");
    part(
        "protocol",
        util::run(
            root,
            "cargo",
            &["bench", "-p", "corral-protocol", "--bench", "link"],
        ),
    );
    step("firmware footprint");
    part(
        "firmware footprint",
        crate::setup::ensure_targets(&["thumbv7m-none-eabi"])
            .and_then(|()| crate::test::build_firmware(root))
            .and_then(|()| footprint(root)),
    );
    step("gateway: 1,000 idle devices; exec round trip beside ssh; 256 MiB push beside scp");
    if let Err(e) = ensure_ssh() {
        println!("    note: {e:#}");
        println!("    the ssh and scp figures are skipped; corral's own figures follow");
    }
    part(
        "gateway",
        util::run(
            root,
            "cargo",
            &["bench", "-p", "corral-gateway", "--bench", "scale"],
        ),
    );
    if !failed.is_empty() {
        bail!("benchmarks failed: {}", failed.join(", "));
    }
    Ok(())
}

/// The peers the gateway bench compares with: Debian's sshd (started by the
/// bench on a spare loopback port) and the ssh/scp clients. Installed when
/// running as root; otherwise the error says what to install. sshd lives
/// in /usr/sbin, which is not on every user's PATH, so it is checked by its
/// path; openssh-client brings ssh, scp and ssh-keygen together.
fn ensure_ssh() -> Result<()> {
    crate::setup::ensure_packages(&[
        ("/usr/sbin/sshd", "openssh-server"),
        ("scp", "openssh-client"),
    ])
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
