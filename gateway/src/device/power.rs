//! Switching latent devices on and off (BuildBot's latent workers, for
//! devices): an emulator started on demand, a hub port, a PDU outlet.

use crate::config::inventory::Command;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Child;

/// A device switched on by its `power_on` command.
pub(crate) struct Powered {
    /// The `power_on` process if it is still running (an emulator is the
    /// device itself; a hub switch exits at once).
    child: Option<Child>,
}

/// Runs `power_on`. A command that exits at once must succeed; one that
/// keeps running (an emulator) is the device.
pub(crate) async fn power_on(device: &str, cmd: &Command) -> Result<Powered, String> {
    tracing::info!(device, argv = ?cmd.argv, "powering on");
    let mut child = tokio::process::Command::new(&cmd.argv[0])
        .args(&cmd.argv[1..])
        .current_dir(&cmd.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("power_on: starting {}: {e}", cmd.argv[0]))?;
    // Give a quick command the chance to finish and report failure.
    match tokio::time::timeout(Duration::from_millis(300), child.wait()).await {
        Ok(Ok(status)) if status.success() => Ok(Powered { child: None }),
        Ok(Ok(status)) => {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use tokio::io::AsyncReadExt;
                let _ = e.read_to_string(&mut err).await;
            }
            Err(format!(
                "power_on {:?} failed ({status}): {}",
                cmd.argv,
                err.trim()
            ))
        }
        Ok(Err(e)) => Err(format!("power_on: waiting for {}: {e}", cmd.argv[0])),
        Err(_) => Ok(Powered { child: Some(child) }),
    }
}

impl Powered {
    /// True if the power_on process (the emulator) died.
    pub(crate) fn died(&mut self) -> Option<String> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => Some(format!("the power_on process exited ({status})")),
            _ => None,
        }
    }

    /// Runs `power_off` (if given) and ends the power_on process.
    pub(crate) async fn power_off(mut self, device: &str, cmd: Option<&Command>) {
        tracing::info!(device, "powering off");
        if let Some(cmd) = cmd {
            run_power_off(device, cmd).await;
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
        }
    }
}

/// Runs a `power_off` command, logging a failure.
pub(crate) async fn run_power_off(device: &str, cmd: &Command) {
    let r = tokio::process::Command::new(&cmd.argv[0])
        .args(&cmd.argv[1..])
        .current_dir(&cmd.cwd)
        .stdin(Stdio::null())
        .status()
        .await;
    match r {
        Ok(s) if s.success() => {}
        Ok(s) => tracing::warn!(device, status = %s, "power_off failed"),
        Err(e) => tracing::warn!(device, error = %e, "power_off failed"),
    }
}
