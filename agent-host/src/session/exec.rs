//! `Exec` and `Attach`: running a command for the gateway, and keeping it
//! going when the link is lost.
//!
//! One task (a [`Job`]) owns each command for its whole life. While a
//! gateway is attached it sends `Started`, then `Output` within the credit
//! the gateway grants, then `Exit` once both streams have ended. Around that:
//!
//! - **Link down** (the gateway is silent but the session may come back): the
//!   command switches to keeping a bounded tail of its output, so it never
//!   blocks on a pipe nobody drains; when the link is up again the tail is
//!   sent and forwarding goes on. Bytes that did not fit the tail are counted
//!   in `Exit::output_dropped`.
//! - **Session gone** (link closed, peer restarted, a new connection replaced
//!   this one, reset): a command started with a token keeps running to its
//!   end or timeout with its output kept as a tail, and waits for
//!   `Attach(token)`. An attach gets `Started`, any output that was taken but
//!   not sent, the kept tail (stdout, then stderr), live output if the command
//!   still runs, and `Exit` last. Its results are kept under the registry's
//!   [`KeepPolicy`](crate::detached::KeepPolicy) (see `detached`), including
//!   after the `Exit` was sent, in case it never arrived.
//! - A command started **without a token** cannot be asked for again, so
//!   when its session is gone its output and report are discarded; it still
//!   runs to its end or timeout (the executor enforces the timeout), and the
//!   agent's log records how it ended.
//! - `Attach` while the command is attached to another session takes it
//!   over: the gateway that asks last gets the output.
//!
//! A command that cannot be started gets no `Started`, only `Exit` with
//! reason `FailedToStart` and the reason in `detail`. Stdin stays open across
//! a lost link (a re-attached gateway can go on writing); it is closed by
//! `StdinClose` or when the command ends.

use std::collections::VecDeque;
use std::future::pending;

use corral_protocol::credit::SendCredit;
use corral_protocol::message::{
    Body, ErrorCode, ExecRequest, ExitReason, ExitReport as WireExit, Output, Started, Stream,
};
use tokio::sync::{mpsc, OwnedSemaphorePermit};

use super::files::file_error_code;
use super::outbox::until;
use super::{Ctx, FollowUp, LinkState, Outbox};
use crate::agent::AgentState;
use crate::detached::{RegisterError, Registration};
use crate::exec::{
    CommandSpec, ExecError, ExitReport, ExitStatus, OutputChunk, OutputMode, RunningCommand,
    StdinMode, StdinWriter, StreamKind,
};

/// Output credit assumed for an attach: `Attach` carries no credit field,
/// and the gateway's client grants its usual stream window.
pub const ATTACH_CREDIT: u32 = corral_io::client::STREAM_CREDIT;

/// An `Exec` request, owned.
#[derive(Debug, Clone)]
pub(crate) struct ExecArgs {
    argv: Vec<String>,
    env: Vec<String>,
    cwd: String,
    timeout_ms: u32,
    stdin: bool,
    credit: u32,
    token: u64,
}

impl ExecArgs {
    pub(crate) fn from_wire(req: &ExecRequest<'_>) -> Self {
        ExecArgs {
            argv: req.argv.iter().map(str::to_string).collect(),
            env: req.env.iter().map(str::to_string).collect(),
            cwd: req.cwd.to_string(),
            timeout_ms: req.timeout_ms,
            stdin: req.stdin,
            credit: req.credit,
            token: req.token,
        }
    }
}

/// A new link for a command: handed to its task by `Attach`.
#[derive(Debug)]
pub(crate) struct Attachment {
    outbox: Outbox,
    followups: mpsc::UnboundedReceiver<FollowUp>,
    credit: u32,
}

/// Runs an `Exec` request.
pub(crate) async fn run(
    ctx: Ctx,
    id: u32,
    args: ExecArgs,
    followups: mpsc::UnboundedReceiver<FollowUp>,
) {
    let outbox = ctx.link.outbox(id);
    let spec = match command_spec(&ctx, &args).await {
        Ok(spec) => spec,
        Err((code, message)) => {
            let _ = outbox.error(code, &message).await;
            return;
        }
    };
    let registration = if args.token == 0 {
        None
    } else {
        match ctx.state.detached.register(args.token) {
            Ok(r) => Some(r),
            Err(RegisterError::InUse) => {
                let message = format!(
                    "token {} belongs to a command that is still running; use a new token or attach to it",
                    args.token
                );
                let _ = outbox.error(ErrorCode::INVALID_ARGUMENT, &message).await;
                return;
            }
            Err(RegisterError::Closed) => {
                let _ = outbox
                    .error(ErrorCode::BUSY, "the agent is restarting; try again")
                    .await;
                return;
            }
        }
    };
    let mut job = Job {
        state: ctx.state.clone(),
        cmd: None,
        stdin: None,
        registration,
        backlog: VecDeque::new(),
        dropped: 0,
        output_done: false,
    };
    let mut cmd = match ctx.state.executor.spawn(spec) {
        Ok(cmd) => cmd,
        Err(err) => {
            let code = match err {
                ExecError::Busy { .. } | ExecError::ShuttingDown => ErrorCode::BUSY,
                _ => ErrorCode::INTERNAL,
            };
            let _ = outbox.error(code, &err.to_string()).await;
            return;
        }
    };
    job.stdin = cmd.take_stdin().map(|writer| {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(pump_stdin(writer, rx));
        tx
    });
    job.cmd = Some(cmd);
    job.drive(Attachment {
        outbox,
        followups,
        credit: args.credit,
    })
    .await;
}

/// Handles `Attach(token)`: hands the link to the command's task, or answers
/// `NO_SUCH_REQUEST`.
pub(crate) async fn attach(
    ctx: &Ctx,
    id: u32,
    token: u64,
    followups: mpsc::UnboundedReceiver<FollowUp>,
) {
    let outbox = ctx.link.outbox(id);
    let found = if token == 0 {
        None
    } else {
        ctx.state.detached.find(token)
    };
    let Some(task) = found else {
        let message = format!(
            "no command with token {token} is running or kept on this agent (boot id {:08x})",
            ctx.state.boot_id
        );
        let _ = outbox.error(ErrorCode::NO_SUCH_REQUEST, &message).await;
        return;
    };
    tracing::info!(token, id, "gateway re-attaches to a command");
    let attachment = Attachment {
        outbox,
        followups,
        credit: ATTACH_CREDIT,
    };
    // The task takes hand-overs at once; waiting here must still not hold up
    // the session loop.
    tokio::spawn(async move {
        if let Err(mpsc::error::SendError(attachment)) = task.send(attachment).await {
            let _ = attachment
                .outbox
                .error(
                    ErrorCode::NO_SUCH_REQUEST,
                    &format!("the command with token {token} was just forgotten"),
                )
                .await;
        }
    });
}

/// Turns the request into a command, resolving the working directory inside
/// the file root.
async fn command_spec(ctx: &Ctx, args: &ExecArgs) -> Result<CommandSpec, (ErrorCode, String)> {
    if args.argv.is_empty() {
        return Err((
            ErrorCode::INVALID_ARGUMENT,
            "empty argv: name a program to run".into(),
        ));
    }
    let mut spec = CommandSpec::new(&args.argv);
    for item in &args.env {
        match item.split_once('=') {
            Some((name, value)) if !name.is_empty() => spec = spec.env(name, value),
            _ => {
                return Err((
                    ErrorCode::INVALID_ARGUMENT,
                    format!("environment item {item:?} is not NAME=VALUE"),
                ))
            }
        }
    }
    let cwd = ctx
        .agent
        .store()
        .host_path(&args.cwd)
        .await
        .map_err(|e| (file_error_code(&e), format!("working directory: {e}")))?;
    match tokio::fs::metadata(&cwd).await {
        Ok(meta) if meta.is_dir() => {}
        _ => {
            return Err((
                ErrorCode::NOT_A_DIRECTORY,
                format!("working directory {:?} is not a directory", args.cwd),
            ))
        }
    }
    spec = spec.cwd(cwd);
    if args.stdin {
        spec = spec.stdin(StdinMode::Piped);
    }
    if args.timeout_ms != 0 {
        spec = spec.timeout(std::time::Duration::from_millis(u64::from(args.timeout_ms)));
    }
    Ok(spec)
}

type StdinTx = mpsc::UnboundedSender<(Vec<u8>, OwnedSemaphorePermit)>;

/// Writes stdin as the command reads it. Each chunk's budget permit is
/// released once it is written (or dropped because the command stopped
/// reading). Closing the channel closes the pipe.
async fn pump_stdin(
    mut writer: StdinWriter,
    mut rx: mpsc::UnboundedReceiver<(Vec<u8>, OwnedSemaphorePermit)>,
) {
    let mut open = true;
    while let Some((data, _permit)) = rx.recv().await {
        if open {
            if let Err(err) = writer.write(&data).await {
                tracing::debug!(%err, "the command stopped reading stdin; dropping the rest");
                open = false;
            }
        }
    }
    if open {
        let _ = writer.close().await;
    }
}

/// How a stretch of attached life ended.
enum Live {
    /// `Exit` was sent.
    Finished,
    /// Another `Attach` took the command over.
    TakenOver(Attachment),
    /// The session is gone.
    Gone,
}

/// One command and everything needed to report it.
struct Job {
    state: std::sync::Arc<AgentState>,
    /// Always `Some` once running; an `Option` only so the job exists (and
    /// cleans up its registration) before the command does.
    cmd: Option<RunningCommand>,
    stdin: Option<StdinTx>,
    registration: Option<Registration>,
    /// Output taken from the command but not yet sent, oldest first.
    backlog: VecDeque<OutputChunk>,
    /// Output bytes lost to full tails.
    dropped: u64,
    /// Both streams ended and everything was taken.
    output_done: bool,
}

impl Drop for Job {
    fn drop(&mut self) {
        if let Some(reg) = &self.registration {
            self.state.detached.remove(reg.token, reg.serial);
        }
    }
}

impl Job {
    fn cmd(&self) -> &RunningCommand {
        self.cmd
            .as_ref()
            .expect("the command is set before the job runs")
    }

    async fn drive(mut self, mut att: Attachment) {
        let mut first = true;
        loop {
            if !first {
                self.resume();
            }
            first = false;
            let outcome = match self.cmd().pid() {
                Some(pid) => match att.outbox.send(Body::Started(Started { pid })).await {
                    Ok(()) => self.live(&mut att).await,
                    Err(_) => Live::Gone,
                },
                None => self.live(&mut att).await,
            };
            match outcome {
                Live::TakenOver(next) => {
                    att = next;
                    continue;
                }
                Live::Finished | Live::Gone => {}
            }
            drop(att);
            match self.wait_detached().await {
                Some(next) => att = next,
                None => return,
            }
        }
    }

    /// Back to forwarding: what was kept while nobody forwarded goes out
    /// first, after anything taken but not sent.
    fn resume(&mut self) {
        let cmd = self.cmd();
        // Switch first: output read from now on is queued, so the tail taken
        // next is complete and nothing is reordered.
        cmd.set_output_mode(OutputMode::Forward);
        let tail = cmd.take_tail();
        self.dropped += tail.stdout_dropped + tail.stderr_dropped;
        for (stream, data) in [
            (StreamKind::Stdout, tail.stdout),
            (StreamKind::Stderr, tail.stderr),
        ] {
            if !data.is_empty() {
                self.backlog.push_back(OutputChunk { stream, data });
            }
        }
    }

    async fn live(&mut self, att: &mut Attachment) -> Live {
        let mut credit = SendCredit::new(att.credit);
        let mut link = att.outbox.watch();
        let mut paused = false;
        loop {
            match *link.borrow_and_update() {
                LinkState::Gone => return Live::Gone,
                LinkState::Down if !paused => {
                    paused = true;
                    self.cmd().set_output_mode(OutputMode::Tail);
                }
                LinkState::Up if paused => {
                    paused = false;
                    self.resume();
                }
                _ => {}
            }
            let room = if paused {
                0
            } else {
                (credit.available() as usize).min(att.outbox.max_payload())
            };
            // Older output goes first.
            if room > 0 && !self.backlog.is_empty() {
                let chunk = self.backlog.pop_front().expect("not empty");
                if let Err(gone) = self.send_chunk(att, &mut credit, chunk).await {
                    return gone;
                }
                continue;
            }
            let Some(cmd) = self.cmd.as_ref() else {
                return Live::Gone;
            };
            let handover = async {
                match self.registration.as_mut() {
                    Some(reg) => reg.attach.recv().await,
                    None => pending().await,
                }
            };
            tokio::select! {
                biased;
                changed = link.changed() => {
                    if changed.is_err() {
                        return Live::Gone;
                    }
                }
                next = handover => match next {
                    Some(next) => {
                        tracing::info!(old = att.outbox.id(), new = next.outbox.id(), "command taken over by a new attach");
                        return Live::TakenOver(next);
                    }
                    // The registry forgot us (reset): no attach can come.
                    None => self.registration = None,
                },
                up = att.followups.recv() => match up {
                    Some(up) => self.follow(up, &mut credit),
                    None => return Live::Gone,
                },
                chunk = cmd.next_output_limited(room.max(1)), if room > 0 && !self.output_done => {
                    match chunk {
                        Some(chunk) => {
                            if let Err(gone) = self.send_chunk(att, &mut credit, chunk).await {
                                return gone;
                            }
                        }
                        None => self.output_done = true,
                    }
                }
                report = cmd.wait(), if !paused && self.output_done && self.backlog.is_empty() => {
                    return match att.outbox.send(Body::Exit(self.exit_report(&report))).await {
                        Ok(()) => Live::Finished,
                        Err(_) => Live::Gone,
                    };
                }
            }
        }
    }

    /// Sends (part of) a chunk within the credit; what is not sent goes back
    /// to the front of the backlog.
    async fn send_chunk(
        &mut self,
        att: &Attachment,
        credit: &mut SendCredit,
        mut chunk: OutputChunk,
    ) -> Result<(), Live> {
        let room = (credit.available() as usize).min(att.outbox.max_payload());
        if chunk.data.len() > room {
            let rest = chunk.data.split_off(room);
            self.backlog.push_front(OutputChunk {
                stream: chunk.stream,
                data: rest,
            });
        }
        let stream = match chunk.stream {
            StreamKind::Stdout => Stream::Stdout,
            StreamKind::Stderr => Stream::Stderr,
        };
        let mut link = att.outbox.watch();
        let body = Body::Output(Output {
            stream,
            data: &chunk.data,
        });
        enum Sent {
            Done,
            Gone,
            Down,
        }
        let sent = tokio::select! {
            sent = att.outbox.send(body) => match sent {
                Ok(()) => Sent::Done,
                Err(_) => Sent::Gone,
            },
            // Down while waiting for room: stop waiting, keep the chunk.
            () = until(&mut link, |s| s != LinkState::Up) => Sent::Down,
        };
        match sent {
            Sent::Done => {
                credit.take(chunk.data.len());
                Ok(())
            }
            Sent::Gone => {
                self.backlog.push_front(chunk);
                Err(Live::Gone)
            }
            Sent::Down => {
                // The caller pauses at the top of its loop (or sees the
                // session gone).
                self.backlog.push_front(chunk);
                Ok(())
            }
        }
    }

    fn follow(&mut self, up: FollowUp, credit: &mut SendCredit) {
        match up {
            FollowUp::Cancel => {
                tracing::info!(pid = ?self.cmd().pid(), "command cancelled by the gateway");
                self.cmd().cancel();
            }
            FollowUp::Credit(n) => credit.grant(n),
            FollowUp::Stdin(data, permit) => match &self.stdin {
                Some(tx) => {
                    let _ = tx.send((data, permit));
                }
                None => tracing::debug!("stdin for a command without (open) stdin; dropped"),
            },
            FollowUp::StdinClose => self.stdin = None,
            FollowUp::Write { .. } | FollowUp::Commit => {
                tracing::debug!("file data for a command request; dropped");
            }
        }
    }

    /// After the session is gone: keep the command (if it has a token) for
    /// an attach until it is forgotten. `None` when nobody can attach any
    /// more.
    async fn wait_detached(&mut self) -> Option<Attachment> {
        let cmd = self.cmd.as_ref()?;
        let running = cmd.exit_report().is_none();
        if running || !cmd.output_finished() {
            // Nobody forwards now: keep a tail instead of blocking the
            // command on a full pipe.
            cmd.set_output_mode(OutputMode::Tail);
        }
        let Some(reg) = self.registration.as_mut() else {
            if running {
                tracing::info!(pid = ?cmd.pid(), "session gone; the command runs on without a token to collect it");
            }
            return None;
        };
        if running {
            tracing::info!(token = reg.token, pid = ?cmd.pid(), "session gone; keeping the command for a re-attach");
        }
        let max_age = self.state.detached.policy().max_age;
        let mut forget_at: Option<tokio::time::Instant> = None;
        loop {
            let expiry = async {
                match forget_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => pending().await,
                }
            };
            tokio::select! {
                next = reg.attach.recv() => return next,
                _ = cmd.wait(), if forget_at.is_none() => {
                    self.state.detached.ended(reg.token, reg.serial);
                    forget_at = Some(tokio::time::Instant::now() + max_age);
                }
                () = expiry => {
                    tracing::info!(token = reg.token, "forgetting an uncollected command result");
                    return None;
                }
            }
        }
    }

    fn exit_report<'a>(&self, report: &'a ExitReport) -> WireExit<'a> {
        let signal = |s: Option<i32>| s.and_then(|s| u8::try_from(s).ok()).unwrap_or(0);
        let (reason, code, sig) = match &report.status {
            ExitStatus::Exited(code) => (ExitReason::Exited, *code, 0),
            ExitStatus::Signaled(s) => (ExitReason::Signaled, 0, signal(Some(*s))),
            ExitStatus::TimedOut => (ExitReason::TimedOut, 0, signal(report.kill_signal)),
            ExitStatus::Cancelled => (ExitReason::Cancelled, 0, signal(report.kill_signal)),
            ExitStatus::FailedToStart(_) => (ExitReason::FailedToStart, 0, 0),
        };
        let detail = match &report.status {
            ExitStatus::FailedToStart(why) => why.as_str(),
            ExitStatus::Exited(_) => "",
            ExitStatus::Signaled(_) => "killed by a signal it did not get from the agent",
            ExitStatus::TimedOut => "the timeout expired; the agent stopped the process group",
            ExitStatus::Cancelled => "cancelled; the agent stopped the process group",
        };
        WireExit {
            reason,
            code,
            signal: sig,
            duration_ms: report.duration.as_millis().min(u128::from(u64::MAX)) as u64,
            output_dropped: self.dropped,
            detail,
        }
    }
}
