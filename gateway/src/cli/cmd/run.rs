//! `corral run`.

use crate::api::wire::JobBody;
use crate::cli::target::Address;
use crate::cli::{color_stdout, exit, CmdResult, Context, Failure};
use crate::config::{Inventory, Job, Label};
use crate::report::{self, JobOutcome, JobResult};
use crate::{Gateway, Target};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Run a job file on a device and report its results.
///
/// A job is TOML: push, exec, pull, reset and wait-for-console steps with
/// timeouts. A table of its steps is printed; --junit and --json write the
/// results.
///
/// The device is --device NAME, or any free device with all the --label
/// KEY=VALUE given (or, with neither, the job's own `labels`). A busy device
/// is waited for (up to --wait; --no-wait fails at once). The job's
/// relative `local` paths are relative to the job file; the gateway reads
/// and writes them on its machine. --device may also be a direct address
/// (tcp://, serial://, unix://): then the job runs in this process, no
/// gateway needed.
///
/// A failed test (a command's exit code other than `expect_exit`, a step
/// timeout) fails the job; a lost link, a rebooted device or a silent agent
/// is an infrastructure error, never counted as a test failure.
#[derive(clap::Args, Debug)]
#[command(after_help = concat!(
    "Exit status:\n",
    "  0    every step passed\n",
    "  1    a test failed\n",
    "  2    usage error: bad arguments, a bad job file (file:line:col), an unknown device\n",
    "  130  interrupted by Ctrl-C\n",
    "  255  no test failed, but the infrastructure did (no gateway, device offline, link lost,\n",
    "       device rebooted): retrying may help"
))]
pub struct Cmd {
    /// The job file.
    pub job: PathBuf,
    /// Run on this device.
    #[arg(short, long, value_name = "DEVICE", conflicts_with = "label")]
    pub device: Option<String>,
    /// Run on a free device with this label (repeatable; all must match).
    #[arg(short, long, value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// Write JUnit XML here.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write the result as JSON here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// How long to wait for a free device.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = humantime::parse_duration)]
    pub wait: Duration,
}

/// Runs the job.
pub async fn run(ctx: &Context, cmd: Cmd) -> CmdResult {
    let text = std::fs::read_to_string(&cmd.job)
        .map_err(|e| Failure::usage(format!("reading {}: {e}", cmd.job.display())))?;
    // Checked here first, so a typo is reported against the path the user
    // typed, without a round trip.
    let job = Job::parse(&text, &cmd.job).map_err(|e| Failure::usage(e.to_string()))?;
    for l in &cmd.label {
        l.parse::<Label>()
            .map_err(|e| Failure::usage(format!("--label {l:?}: {e}")))?;
    }
    let origin = std::path::absolute(&cmd.job).unwrap_or_else(|_| cmd.job.clone());
    let wait_ms = if ctx.hold.no_wait {
        0
    } else {
        cmd.wait.as_millis() as u64
    };
    let direct = match &cmd.device {
        Some(d) => Address::parse(d)?.map(|a| (d.clone(), a)),
        None => None,
    };
    let result = tokio::select! {
        r = async {
            match direct {
                Some((device, addr)) => run_here(ctx, &device, &addr, &text, &origin, wait_ms).await,
                None => {
                    let body = JobBody {
                        toml: text.clone(),
                        origin: origin.display().to_string(),
                        device: cmd.device.clone(),
                        labels: cmd.label.clone(),
                        holder: format!("{} running {}", ctx.hold.holder, job.name),
                        wait_ms,
                    };
                    Ok(ctx.api.run_job(&body).await?)
                }
            }
        } => r?,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("corral: interrupted; the job stops and its device is released");
            return Ok(exit::INTERRUPTED);
        }
    };
    let results = std::slice::from_ref(&result);
    print!("{}", report::table::render_table(results, color_stdout()));
    if let Some(path) = &cmd.junit {
        write(path, &report::junit::to_junit_string(results))?;
    }
    if let Some(path) = &cmd.json {
        write(path, &result.to_json())?;
    }
    Ok(match result.outcome() {
        JobOutcome::Passed => exit::OK,
        JobOutcome::Failed => exit::FAILED,
        JobOutcome::Error => exit::INFRASTRUCTURE,
    })
}

fn write(path: &Path, text: &str) -> Result<(), Failure> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| Failure::refused(format!("creating {}: {e}", dir.display())))?;
    }
    std::fs::write(path, text)
        .map_err(|e| Failure::refused(format!("writing {}: {e}", path.display())))
}

/// A TOML string literal.
fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// Runs the job in this process on a device given by its address: a
/// one-device gateway, without the daemon.
async fn run_here(
    ctx: &Context,
    device: &str,
    addr: &Address,
    text: &str,
    origin: &Path,
    wait_ms: u64,
) -> Result<JobResult, Failure> {
    let name: String = device
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect::<String>()
        .trim_matches('-')
        .chars()
        .take(crate::config::inventory::MAX_NAME_LEN)
        .collect();
    let link = match addr {
        Address::Tcp(a) => match &ctx.key_file {
            Some(k) => {
                let k = std::path::absolute(k).unwrap_or_else(|_| k.clone());
                format!(
                    "tcp = {{ address = {}, key_file = {} }}",
                    quoted(a),
                    quoted(&k.display().to_string())
                )
            }
            None => format!("tcp = {{ address = {} }}", quoted(a)),
        },
        Address::Serial { path, baud } => {
            format!("serial = {{ path = {}, baud = {baud} }}", quoted(path))
        }
        Address::Unix(p) => format!("unix = {{ path = {} }}", quoted(p)),
    };
    let inv_text = format!("[[device]]\nname = {}\n{link}\n", quoted(&name));
    let here = std::env::current_dir()
        .unwrap_or_default()
        .join("(command line)");
    let inventory =
        Inventory::parse(&inv_text, &here).map_err(|e| Failure::usage(format!("{device}: {e}")))?;
    let job = Job::parse(text, origin).map_err(|e| Failure::usage(e.to_string()))?;
    let gateway = Gateway::start(inventory);
    let r = async {
        let dev = gateway
            .device(&name)
            .map_err(|e| Failure::usage(e.to_string()))?;
        dev.client(Duration::from_secs(30))
            .await
            .map_err(|e| Failure::infra(format!("{device}: {e}")))?;
        let wait = (wait_ms > 0).then(|| Duration::from_millis(wait_ms));
        gateway
            .run_job(&job, &Target::Device(name.clone()), &ctx.hold.holder, wait)
            .await
            .map_err(|e| Failure::infra(e.to_string()))
    }
    .await;
    gateway.shutdown().await;
    r
}
