//! Running a job on a device: its steps in order, each with its timeout,
//! into a [`JobResult`].
//!
//! The one rule that matters most here: a test that failed is a *failure*,
//! and a link that died, a device that rebooted or an agent that stopped
//! answering is an *error* (infrastructure). They are never mixed up, so a
//! red result means the software under test, and an error means the lab.

use crate::config::job::{Action, Job, OnFailure, Step};
use crate::device::Device;
use crate::report::{
    ErrorKind, ExitReason as RExit, ExitStatus, JobResult, Outcome, Output, OutputBuffer,
    StepResult, DEFAULT_OUTPUT_LIMIT, RESULT_FORMAT,
};
use crate::transfer::{self, TransferError};
use corral_io::client::{ClientError, ExecEvent, ExecOptions};
use corral_protocol::message::{ErrorCode, ExitReason};
use std::time::{Duration, SystemTime};
use tokio::sync::broadcast;
use tokio::time::Instant;

/// How long past a command's own timeout the gateway waits for its exit
/// report before it calls the link dead.
const EXIT_GRACE: Duration = Duration::from_secs(15);

/// Options of a run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The gateway's name, recorded in the result.
    pub gateway: Option<String>,
}

/// Console text seen during the previous and the current step.
struct ConsoleLog {
    rx: broadcast::Receiver<Vec<u8>>,
    previous: Vec<u8>,
    current: Vec<u8>,
}

impl ConsoleLog {
    fn drain(&mut self) {
        loop {
            match self.rx.try_recv() {
                Ok(t) => self.current.extend_from_slice(&t),
                Err(broadcast::error::TryRecvError::Lagged(n)) => {
                    self.current
                        .extend_from_slice(format!("\n[{n} console chunks lost]\n").as_bytes());
                }
                Err(_) => return,
            }
        }
    }

    fn next_step(&mut self) {
        self.drain();
        self.previous = std::mem::take(&mut self.current);
        // Bound memory: only recent text can matter to a pattern.
        const KEEP: usize = 256 * 1024;
        if self.previous.len() > KEEP {
            self.previous.drain(..self.previous.len() - KEEP);
        }
    }

    fn text(&self) -> String {
        let mut all = self.previous.clone();
        all.extend_from_slice(&self.current);
        String::from_utf8_lossy(&all).into_owned()
    }
}

/// Runs `job` on `device`, which the caller has leased.
pub async fn run_job(job: &Job, device: &Device, opts: &RunOptions) -> JobResult {
    let started_at = SystemTime::now();
    let t0 = Instant::now();
    let deadline = job.timeout.map(|t| t0 + t);
    let mut console = ConsoleLog {
        rx: device.console(),
        previous: Vec::new(),
        current: Vec::new(),
    };
    let mut stop: Option<String> = None;
    let mut steps = Vec::new();
    for step in &job.steps {
        console.next_step();
        let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let result = if let Some(why) = stop.as_ref().filter(|_| !step.always) {
            skipped(step, why.clone())
        } else if remaining == Some(Duration::ZERO) {
            skipped(
                step,
                format!(
                    "the job's timeout of {} ran out",
                    crate::report::human_duration(job.timeout.unwrap_or_default())
                ),
            )
        } else {
            let budget = remaining.map_or(step.timeout, |r| r.min(step.timeout));
            run_step(step, device, budget, &mut console).await
        };
        tracing::info!(device = device.name(), job = %job.name, step = step.number, name = %step.name, outcome = result.outcome.label(), "step done");
        if !matches!(result.outcome, Outcome::Passed | Outcome::Skipped { .. })
            && step.on_failure == OnFailure::Stop
            && stop.is_none()
        {
            stop = Some(format!(
                "step {} ({}) {}",
                step.number,
                step.name,
                result.outcome.label()
            ));
        }
        steps.push(result);
    }
    JobResult {
        format: RESULT_FORMAT,
        job: job.name.clone(),
        device: device.name().to_string(),
        gateway: opts.gateway.clone(),
        started_at,
        duration: t0.elapsed(),
        steps,
    }
}

fn skipped(step: &Step, why: String) -> StepResult {
    StepResult {
        number: step.number,
        name: step.name.clone(),
        kind: step.action.kind(),
        outcome: Outcome::Skipped { message: why },
        duration: Duration::ZERO,
        exit: None,
        stdout: Output::default(),
        stderr: Output::default(),
    }
}

/// Maps a session failure to the step's outcome: infrastructure errors are
/// errors; a device's refusal of what the job asked is a failure.
pub fn outcome_of(e: &ClientError) -> Outcome {
    let error = |kind, message: String| Outcome::Error { kind, message };
    match e {
        ClientError::PeerReset => error(ErrorKind::DeviceRebooted, e.to_string()),
        ClientError::Closed(_) => error(ErrorKind::LinkLost, e.to_string()),
        ClientError::Timeout(_) => error(ErrorKind::LinkTimeout, e.to_string()),
        ClientError::Rejected(_) | ClientError::Protocol(_) => {
            error(ErrorKind::Agent, e.to_string())
        }
        ClientError::Local(_) => error(ErrorKind::Gateway, e.to_string()),
        ClientError::Device { code, .. } => match *code {
            ErrorCode::BUSY
            | ErrorCode::NO_SPACE
            | ErrorCode::IO
            | ErrorCode::INTERNAL
            | ErrorCode::HASH_MISMATCH
            | ErrorCode::CREDIT_EXCEEDED => error(ErrorKind::Agent, e.to_string()),
            _ => Outcome::Failed {
                message: e.to_string(),
            },
        },
        ClientError::Unsupported(_) => Outcome::Failed {
            message: e.to_string(),
        },
    }
}

fn transfer_outcome(e: &TransferError, local_is_input: bool) -> Outcome {
    match e {
        TransferError::Device(c) => outcome_of(c),
        // A file the job names that is not there is the job's fault.
        TransferError::Local(m) if local_is_input => Outcome::Failed { message: m.clone() },
        TransferError::Local(m) => Outcome::Error {
            kind: ErrorKind::Gateway,
            message: m.clone(),
        },
        TransferError::HashMismatch { .. } => Outcome::Error {
            kind: ErrorKind::LinkLost,
            message: e.to_string(),
        },
    }
}

async fn run_step(
    step: &Step,
    device: &Device,
    budget: Duration,
    console: &mut ConsoleLog,
) -> StepResult {
    let t = Instant::now();
    let mut result = StepResult {
        number: step.number,
        name: step.name.clone(),
        kind: step.action.kind(),
        outcome: Outcome::Passed,
        duration: Duration::ZERO,
        exit: None,
        stdout: Output::default(),
        stderr: Output::default(),
    };
    let timed_out = || Outcome::Failed {
        message: format!(
            "did not finish within its timeout of {}",
            crate::report::human_duration(budget)
        ),
    };
    if let Action::WaitForConsole(w) = &step.action {
        result.outcome = wait_for_console(&w.regex, budget, console).await;
        result.duration = t.elapsed();
        return result;
    }
    let client = match device.client(budget.min(Duration::from_secs(30))).await {
        Ok(c) => c,
        Err(e) => {
            result.outcome = Outcome::Error {
                kind: ErrorKind::LinkLost,
                message: e.to_string(),
            };
            result.duration = t.elapsed();
            return result;
        }
    };
    match &step.action {
        Action::Push(p) => {
            let mut progress = |_, _| {};
            let fut = transfer::push_file(&client, &p.local, &p.remote, p.mode, &mut progress);
            result.outcome = match tokio::time::timeout(budget, fut).await {
                Ok(Ok(_)) => Outcome::Passed,
                Ok(Err(e)) => transfer_outcome(&e, true),
                Err(_) => timed_out(),
            };
        }
        Action::Pull(p) => {
            let mut progress = |_| {};
            let fut = transfer::pull_file(&client, &p.remote, &p.local, &mut progress);
            result.outcome = match tokio::time::timeout(budget, fut).await {
                Ok(Ok(_)) => Outcome::Passed,
                Ok(Err(e)) => transfer_outcome(&e, false),
                Err(_) => timed_out(),
            };
        }
        Action::Exec(x) => {
            let opts = ExecOptions {
                argv: x.argv.clone(),
                env: x.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                cwd: x.cwd.clone().unwrap_or_default(),
                timeout: Some(budget),
                stdin: x.stdin.is_some(),
                token: rand::random::<u64>() | 1,
            };
            let mut out = OutputBuffer::new(DEFAULT_OUTPUT_LIMIT);
            let mut err = OutputBuffer::new(DEFAULT_OUTPUT_LIMIT);
            result.outcome = exec_step(
                &client,
                &opts,
                x.stdin.as_deref(),
                x.expect_exit,
                budget,
                &mut out,
                &mut err,
                &mut result.exit,
            )
            .await;
            result.stdout = out.finish();
            result.stderr = err.finish();
        }
        Action::Reset => {
            result.outcome = reset_step(device, &client, budget).await;
        }
        Action::WaitForConsole(_) => unreachable!("handled above"),
    }
    // The device took a request and never answered: let its task check
    // whether it still answers at all (and recover it if not).
    if let Outcome::Error {
        kind: ErrorKind::LinkTimeout,
        message,
    } = &result.outcome
    {
        device.report_unanswered(&format!("step {} ({}): {message}", step.number, step.name));
    }
    result.duration = t.elapsed();
    result
}

#[allow(clippy::too_many_arguments)]
async fn exec_step(
    client: &corral_io::client::DeviceClient,
    opts: &ExecOptions,
    stdin: Option<&str>,
    expect: i32,
    budget: Duration,
    out: &mut OutputBuffer,
    err: &mut OutputBuffer,
    exit: &mut Option<ExitStatus>,
) -> Outcome {
    let mut h = match client.exec(opts).await {
        Ok(h) => h,
        Err(e) => return outcome_of(&e),
    };
    if let Some(input) = stdin {
        if let Err(e) = h.write_stdin(input.as_bytes()).await {
            return outcome_of(&e);
        }
        if let Err(e) = h.close_stdin().await {
            return outcome_of(&e);
        }
    }
    // The device enforces the timeout; the gateway only gives up on a link
    // that stays silent well past it.
    let silence = budget + EXIT_GRACE;
    while let Some(ev) = h.next(silence).await {
        match ev {
            Ok(ExecEvent::Started(_)) => {}
            Ok(ExecEvent::Stdout(d)) => out.push(&d),
            Ok(ExecEvent::Stderr(d)) => err.push(&d),
            Ok(ExecEvent::Exit(info)) => {
                let (reason, code, signal) = match info.reason {
                    ExitReason::Exited => (RExit::Exited, Some(info.code), None),
                    ExitReason::Signaled => (RExit::Exited, None, Some(i32::from(info.signal))),
                    ExitReason::TimedOut => (
                        RExit::TimedOut,
                        None,
                        (info.signal != 0).then_some(i32::from(info.signal)),
                    ),
                    ExitReason::Cancelled => (
                        RExit::Cancelled,
                        None,
                        (info.signal != 0).then_some(i32::from(info.signal)),
                    ),
                    ExitReason::FailedToStart => (RExit::FailedToStart, None, None),
                };
                *exit = Some(ExitStatus {
                    reason,
                    code,
                    signal,
                });
                return match info.reason {
                    ExitReason::Exited if info.code == expect => Outcome::Passed,
                    ExitReason::Exited => Outcome::Failed {
                        message: format!("exit code {}, expected {expect}", info.code),
                    },
                    ExitReason::Signaled => Outcome::Failed {
                        message: format!("killed by signal {}", info.signal),
                    },
                    ExitReason::TimedOut => Outcome::Failed {
                        message: format!(
                            "timed out after {} and was killed",
                            crate::report::human_duration(budget)
                        ),
                    },
                    ExitReason::Cancelled => Outcome::Failed {
                        message: "cancelled".into(),
                    },
                    ExitReason::FailedToStart => Outcome::Failed {
                        message: format!("could not start: {}", info.detail),
                    },
                };
            }
            Err(e) => return outcome_of(&e),
        }
    }
    Outcome::Error {
        kind: ErrorKind::Agent,
        message: "the command's reply stream ended without an exit report".into(),
    }
}

async fn reset_step(
    device: &Device,
    client: &corral_io::client::DeviceClient,
    budget: Duration,
) -> Outcome {
    let before = device.status().identity.map(|i| i.boot_id);
    let t = Instant::now();
    if let Err(e) = tokio::time::timeout(budget, client.reset(budget))
        .await
        .unwrap_or(Err(ClientError::Timeout(budget)))
    {
        return outcome_of(&e);
    }
    // Wait for the agent to come back with a new boot id.
    let mut watch = device.watch();
    loop {
        {
            let s = watch.borrow_and_update();
            let now = s.identity.as_ref().map(|i| i.boot_id.clone());
            if matches!(
                s.state,
                crate::device::DeviceState::Idle
                    | crate::device::DeviceState::Busy
                    | crate::device::DeviceState::Quarantined
            ) && now.is_some()
                && now != before
            {
                return Outcome::Passed;
            }
        }
        let left = budget.saturating_sub(t.elapsed());
        match tokio::time::timeout(left, watch.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => {
                return Outcome::Error {
                    kind: ErrorKind::LinkTimeout,
                    message: format!(
                        "the device did not come back within {} after the reset",
                        crate::report::human_duration(budget)
                    ),
                }
            }
        }
    }
}

async fn wait_for_console(
    re: &regex::Regex,
    budget: Duration,
    console: &mut ConsoleLog,
) -> Outcome {
    let deadline = Instant::now() + budget;
    loop {
        console.drain();
        if re.is_match(&console.text()) {
            return Outcome::Passed;
        }
        match tokio::time::timeout_at(deadline, console.rx.recv()).await {
            Ok(Ok(t)) => console.current.extend_from_slice(&t),
            Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(broadcast::error::RecvError::Closed)) | Err(_) => {
                return Outcome::Failed {
                    message: format!(
                        "no console text matched /{}/ within {}",
                        re.as_str(),
                        crate::report::human_duration(budget)
                    ),
                }
            }
        }
    }
}
