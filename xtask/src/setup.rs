//! Installing what the suites need on a fresh Debian machine.

use crate::util::{have, output, run, step};
use anyhow::{bail, Result};
use std::path::Path;

/// Adds rustup targets that are not installed yet.
pub fn ensure_targets(targets: &[&str]) -> Result<()> {
    let installed = output(Path::new("."), "rustup", &["target", "list", "--installed"])?;
    let missing: Vec<&str> = targets
        .iter()
        .copied()
        .filter(|t| !installed.lines().any(|l| l.trim() == *t))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    step(&format!("installing rustup targets {}", missing.join(", ")));
    let mut args = vec!["target", "add"];
    args.extend(&missing);
    run(Path::new("."), "rustup", &args)
}

fn is_root() -> bool {
    output(Path::new("."), "id", &["-u"])
        .map(|s| s.trim() == "0")
        .unwrap_or(false)
}

/// Makes sure Debian packages providing `programs` are installed: installs
/// them with apt-get when running as root, otherwise says what to run.
pub fn ensure_packages(needs: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<(&str, &str)> = needs
        .iter()
        .copied()
        .filter(|(prog, _)| !have(prog))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let packages: Vec<&str> = missing.iter().map(|(_, pkg)| *pkg).collect();
    if !is_root() {
        bail!(
            "missing programs {}: install them with `sudo apt-get install -y --no-install-recommends {}` and run again",
            missing.iter().map(|(p, _)| *p).collect::<Vec<_>>().join(", "),
            packages.join(" ")
        );
    }
    step(&format!(
        "installing Debian packages {}",
        packages.join(" ")
    ));
    let root = Path::new("/");
    run(root, "apt-get", &["update", "-qq"])?;
    let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
    args.extend(&packages);
    crate::util::run_env(
        root,
        "apt-get",
        &args,
        &[("DEBIAN_FRONTEND", "noninteractive")],
    )?;
    for (prog, pkg) in &missing {
        if !have(prog) {
            bail!("installed {pkg} but {prog} is still not on the PATH");
        }
    }
    Ok(())
}
