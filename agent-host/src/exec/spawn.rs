//! Starting commands, supervising them (timeout, cancel, reaping) and the
//! handle the caller keeps.

use std::collections::HashMap;
use std::future::pending;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::process::{Child, ChildStdin};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};

use super::group;
use super::output::{pump, OutputChunk, OutputHub, OutputMode, StreamKind, Tail};
use super::report::{ExitReport, ExitStatus};
use super::spec::{CommandSpec, ExecConfig, StdinMode};

/// Why [`Executor::spawn`] refused to start a command. A command that was
/// accepted but could not be started is not an error here: its handle reports
/// [`ExitStatus::FailedToStart`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExecError {
    /// `limit` commands are already running.
    #[error("busy: {limit} commands are already running (the limit); wait for one to finish")]
    Busy {
        /// The configured [`ExecConfig::max_concurrent`].
        limit: usize,
    },
    /// [`Executor::shutdown`] was called.
    #[error("the agent is shutting down and starts no new command")]
    ShuttingDown,
    /// Called outside a Tokio runtime.
    #[error("no Tokio runtime: commands must be spawned from inside one")]
    NoRuntime,
    /// The [`ExecConfig`] given to [`Executor::new`] is unusable.
    #[error("invalid executor configuration: {0}")]
    InvalidConfig(String),
}

/// Starts commands and keeps track of the running ones, up to
/// [`ExecConfig::max_concurrent`] at once. Cheap to clone; clones share the
/// limit and the set of running commands.
#[derive(Debug, Clone)]
pub struct Executor {
    inner: Arc<ExecInner>,
}

#[derive(Debug)]
struct ExecInner {
    config: ExecConfig,
    slots: Arc<Semaphore>,
    running: Mutex<HashMap<u64, Canceller>>,
    next_id: AtomicU64,
    shutting_down: AtomicBool,
}

impl ExecInner {
    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Canceller>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Executor {
    /// An executor with the given limits.
    pub fn new(config: ExecConfig) -> Result<Self, ExecError> {
        if config.max_concurrent == 0 {
            return Err(ExecError::InvalidConfig(
                "max_concurrent is 0; at least 1 command must be allowed".into(),
            ));
        }
        if config.max_concurrent > Semaphore::MAX_PERMITS
            || config.max_concurrent > u32::MAX as usize
        {
            return Err(ExecError::InvalidConfig(format!(
                "max_concurrent is {}; it must be at most {}",
                config.max_concurrent,
                u32::MAX
            )));
        }
        if config.chunk_size == 0 || config.queue_chunks == 0 {
            return Err(ExecError::InvalidConfig(
                "chunk_size and queue_chunks must both be at least 1".into(),
            ));
        }
        Ok(Self {
            inner: Arc::new(ExecInner {
                slots: Arc::new(Semaphore::new(config.max_concurrent)),
                config,
                running: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(0),
                shutting_down: AtomicBool::new(false),
            }),
        })
    }

    /// The configuration this executor was made with.
    pub fn config(&self) -> &ExecConfig {
        &self.inner.config
    }

    /// How many commands may run at once (the value for the handshake).
    pub fn max_concurrent(&self) -> usize {
        self.inner.config.max_concurrent
    }

    /// How many commands are running now (started and not yet reaped).
    pub fn running(&self) -> usize {
        self.inner.running().len()
    }

    /// Starts a command.
    ///
    /// Returns at once. The command counts against the limit until its main
    /// process has been reaped. A command that cannot be started (no such
    /// program, bad working directory, …) still returns a handle, whose report
    /// is already [`ExitStatus::FailedToStart`] and whose output is empty, so
    /// the caller handles every accepted command the same way.
    ///
    /// Must be called from inside a Tokio runtime.
    pub fn spawn(&self, spec: CommandSpec) -> Result<RunningCommand, ExecError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(ExecError::NoRuntime);
        }
        if self.inner.shutting_down.load(Ordering::SeqCst) {
            return Err(ExecError::ShuttingDown);
        }
        let permit = Arc::clone(&self.inner.slots)
            .try_acquire_owned()
            .map_err(|_| ExecError::Busy {
                limit: self.inner.config.max_concurrent,
            })?;
        let config = &self.inner.config;
        let canceller = Canceller::new();
        let started = Instant::now();

        let mut child = match start_child(&spec) {
            Ok(child) => child,
            Err(why) => {
                tracing::info!(argv = ?spec.argv, %why, "command failed to start");
                let report = ExitReport {
                    status: ExitStatus::FailedToStart(why),
                    duration: Duration::ZERO,
                    kill_signal: None,
                };
                let (_, report_rx) = watch::channel(Some(report));
                return Ok(RunningCommand {
                    pid: None,
                    hub: Arc::new(OutputHub::new(config.queue_chunks, config.tail_bytes, 0)),
                    report: report_rx,
                    canceller,
                    stdin: None,
                });
            }
        };
        // A child that was spawned has a pid until it is reaped, and only the
        // supervisor below reaps it.
        let pid = child.id().unwrap_or_default();
        tracing::info!(pid, argv = ?spec.argv, "command started");

        let (report_tx, report_rx) = watch::channel(None);
        let hub = Arc::new(OutputHub::new(config.queue_chunks, config.tail_bytes, 2));
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(pump(
                stdout,
                StreamKind::Stdout,
                Arc::clone(&hub),
                report_rx.clone(),
                config.chunk_size,
                config.drain_idle,
            ));
        }
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(pump(
                stderr,
                StreamKind::Stderr,
                Arc::clone(&hub),
                report_rx.clone(),
                config.chunk_size,
                config.drain_idle,
            ));
        }
        let stdin = child.stdin.take().map(|stdin| StdinWriter { stdin });

        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        self.inner.running().insert(id, canceller.clone());
        tokio::spawn(supervise(Supervision {
            child,
            pgid: pid,
            started,
            timeout: spec.timeout,
            kill_grace: config.kill_grace,
            canceller: canceller.clone(),
            report_tx,
            exec: Arc::clone(&self.inner),
            id,
            permit,
        }));

        Ok(RunningCommand {
            pid: Some(pid),
            hub,
            report: report_rx,
            canceller,
            stdin,
        })
    }

    /// Stops every running command and waits until all are reaped; used when
    /// the agent itself receives `SIGTERM`. Spawns after this call are refused
    /// with [`ExecError::ShuttingDown`]. Each command gets the usual
    /// `SIGTERM`, grace, `SIGKILL` sequence and reports
    /// [`ExitStatus::Cancelled`].
    pub async fn shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
        let cancellers: Vec<Canceller> = self.inner.running().values().cloned().collect();
        tracing::info!(count = cancellers.len(), "shutting down running commands");
        for canceller in cancellers {
            canceller.cancel();
        }
        // Every running command holds one permit until it is reaped, so
        // holding all of them means none is left. The semaphore is never
        // closed, so this cannot fail; the count was checked in `new`.
        let all = self.inner.config.max_concurrent as u32;
        if let Ok(permits) = self.inner.slots.acquire_many(all).await {
            // Keep the slots taken: nothing may start after a shutdown.
            permits.forget();
        }
    }
}

/// Builds and spawns the child, or says in one sentence why it cannot run.
fn start_child(spec: &CommandSpec) -> Result<Child, String> {
    let Some((program, args)) = spec.argv.split_first() else {
        return Err("empty argv: name a program to run".into());
    };
    if let Some(cwd) = &spec.cwd {
        // Checked here because a failing chdir in the child is reported by
        // spawn as the same ENOENT as a missing program.
        match std::fs::metadata(cwd) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(format!(
                    "working directory is not a directory: {}",
                    cwd.display()
                ))
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Err(format!("no such working directory: {}", cwd.display()))
            }
            Err(err) => {
                return Err(format!(
                    "cannot use working directory {}: {err}",
                    cwd.display()
                ))
            }
        }
    }
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(match spec.stdin {
            StdinMode::Null => Stdio::null(),
            StdinMode::Piped => Stdio::piped(),
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A new process group led by the child: see `group`.
        .process_group(0)
        // The supervisor decides when the child dies, not a dropped handle.
        .kill_on_drop(false);
    if let Some(cwd) = &spec.cwd {
        cmd.current_dir(cwd);
    }
    cmd.spawn().map_err(|err| {
        let name = program.to_string_lossy();
        let has_slash = name.contains('/');
        match err.kind() {
            io::ErrorKind::NotFound if has_slash => format!("no such file: {name}"),
            io::ErrorKind::NotFound => format!("program not found in PATH: {name}"),
            io::ErrorKind::PermissionDenied => format!(
                "permission denied: {name} (is it an executable file in a searchable directory?)"
            ),
            _ if err.raw_os_error() == Some(rustix::io::Errno::NOEXEC.raw_os_error()) => {
                format!("not an executable format: {name} (a script needs a #! line)")
            }
            _ => format!("cannot start {name}: {err}"),
        }
    })
}

struct Supervision {
    child: Child,
    pgid: u32,
    started: Instant,
    timeout: Option<Duration>,
    kill_grace: Duration,
    canceller: Canceller,
    report_tx: watch::Sender<Option<ExitReport>>,
    exec: Arc<ExecInner>,
    id: u64,
    permit: OwnedSemaphorePermit,
}

/// Waits for the command to end, by itself, by timeout or by cancel, kills the
/// process group and publishes the report. Runs whether or not anybody reads
/// the output or holds the handle: that is what makes timeouts hold for
/// commands whose link is gone.
async fn supervise(mut s: Supervision) {
    let deadline = s.timeout.map(|limit| s.started + limit);
    let expired = async {
        match deadline {
            Some(at) => tokio::time::sleep_until(at.into()).await,
            None => pending().await,
        }
    };
    let ending = tokio::select! {
        waited = s.child.wait() => Ending::Exited(waited),
        () = expired => Ending::Kill(ExitStatus::TimedOut),
        () = s.canceller.cancelled() => Ending::Kill(ExitStatus::Cancelled),
    };
    let (status, kill_signal) = match ending {
        Ending::Exited(Ok(status)) => (status_from_std(status), None),
        Ending::Exited(Err(err)) => {
            // Waiting on our own child only fails if something else reaped it;
            // the process is gone but we do not know how it ended.
            tracing::error!(pid = s.pgid, %err, "waiting for command failed");
            (
                ExitStatus::FailedToStart(format!("lost track of process {}: {err}", s.pgid)),
                None,
            )
        }
        Ending::Kill(why) => {
            tracing::info!(pid = s.pgid, reason = %why, "stopping command");
            let signal = stop_group(&mut s.child, s.pgid, s.kill_grace).await;
            (why, Some(signal))
        }
    };
    // Whatever the main process left behind in its group (`cmd &` without
    // `wait`) is part of the command and dies with it, so a test leaves the
    // device as it found it and the pipes reach end-of-file. A daemon meant to
    // outlive the command must leave the group (`setsid`).
    //
    // The group id is the leader's pid, which the kernel does not hand out
    // again while any member of the group is alive, so this cannot hit an
    // unrelated group while there is anything to kill.
    group::kill(s.pgid);
    let report = ExitReport {
        status,
        duration: s.started.elapsed(),
        kill_signal,
    };
    tracing::info!(pid = s.pgid, status = %report.status, duration = ?report.duration, "command ended");
    // Free the slot before publishing, so a caller woken by the report can
    // start the next command at once.
    s.exec.running().remove(&s.id);
    drop(s.permit);
    s.report_tx.send_replace(Some(report));
}

enum Ending {
    Exited(io::Result<std::process::ExitStatus>),
    Kill(ExitStatus),
}

/// `SIGTERM` to the group, then `SIGKILL` if the leader is still there after
/// the grace; returns once the leader is reaped, with the last signal sent.
async fn stop_group(child: &mut Child, pgid: u32, grace: Duration) -> i32 {
    if !grace.is_zero() {
        group::terminate(pgid);
        if tokio::time::timeout(grace, child.wait()).await.is_ok() {
            return rustix::process::Signal::TERM.as_raw();
        }
    }
    group::kill(pgid);
    if let Err(err) = child.wait().await {
        tracing::error!(pid = pgid, %err, "waiting for killed command failed");
    }
    rustix::process::Signal::KILL.as_raw()
}

fn status_from_std(status: std::process::ExitStatus) -> ExitStatus {
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitStatus::Exited(code),
        (None, Some(signal)) => ExitStatus::Signaled(signal),
        // `wait` only returns for a terminated process, which has one or the
        // other; keep a value rather than panic should that ever change.
        (None, None) => ExitStatus::Exited(-1),
    }
}

/// Cancels one command from any task. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Canceller {
    inner: Arc<CancelState>,
}

#[derive(Debug)]
struct CancelState {
    cancelled: AtomicBool,
    notify: Notify,
}

impl Canceller {
    fn new() -> Self {
        Self {
            inner: Arc::new(CancelState {
                cancelled: AtomicBool::new(false),
                notify: Notify::new(),
            }),
        }
    }

    /// Asks for the command to be stopped: its group gets `SIGTERM`, then
    /// `SIGKILL` after the grace, and it reports [`ExitStatus::Cancelled`].
    /// Does nothing if the command already ended.
    pub fn cancel(&self) {
        self.inner.cancelled.store(true, Ordering::SeqCst);
        self.inner.notify.notify_waiters();
    }

    /// True once [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::SeqCst)
    }

    async fn cancelled(&self) {
        loop {
            let notified = self.inner.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}

/// The write end of a command's standard input ([`StdinMode::Piped`]).
///
/// Writes wait while the pipe is full (the command is not reading). Dropping
/// the writer closes the pipe, like [`close`](Self::close).
#[derive(Debug)]
pub struct StdinWriter {
    stdin: ChildStdin,
}

impl StdinWriter {
    /// Writes all of `data`. Fails with `BrokenPipe` once the command closed
    /// its standard input or exited.
    pub async fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.stdin.write_all(data).await
    }

    /// Closes the pipe: the command reads end-of-file.
    pub async fn close(mut self) -> io::Result<()> {
        self.stdin.shutdown().await
    }
}

/// The caller's handle on one command.
///
/// Output is delivered with [`next_output`](Self::next_output) while the mode
/// is [`OutputMode::Forward`]; switch to [`OutputMode::Tail`] with
/// [`set_output_mode`](Self::set_output_mode) when nobody can forward (link
/// lost) and back when someone can again, taking what was kept with
/// [`take_tail`](Self::take_tail). The exit report stays available through
/// every switch.
///
/// Dropping the handle detaches the command: it runs on until it exits, times
/// out or is stopped by [`Executor::shutdown`], its output is no longer
/// queued, and its report is lost with the handle. Keep the handle to collect
/// the report later.
#[derive(Debug)]
pub struct RunningCommand {
    pid: Option<u32>,
    hub: Arc<OutputHub>,
    report: watch::Receiver<Option<ExitReport>>,
    canceller: Canceller,
    stdin: Option<StdinWriter>,
}

impl RunningCommand {
    /// Process id of the main process, which is also its process group id;
    /// `None` if it failed to start.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// The next output chunk, in the order it was read from its stream (the
    /// order between the two streams is the order the reads happened, which is
    /// only approximately the order the command wrote them). `None` once both
    /// streams have ended and everything was delivered.
    ///
    /// Not reading makes the command block on its output once the bounded
    /// queue and the pipe buffer are full; that is the backpressure the
    /// protocol's credits rely on.
    pub async fn next_output(&self) -> Option<OutputChunk> {
        self.hub.next(usize::MAX).await
    }

    /// Like [`next_output`](Self::next_output), but a chunk is at most
    /// `max_len` bytes (at least 1): the rest of a larger chunk is delivered
    /// next. Meant for sending exactly as much as the peer granted credit for.
    pub async fn next_output_limited(&self, max_len: usize) -> Option<OutputChunk> {
        self.hub.next(max_len).await
    }

    /// True once both streams ended and every chunk was delivered (or moved
    /// into the tail).
    pub fn output_finished(&self) -> bool {
        self.hub.finished()
    }

    /// The current output mode.
    pub fn output_mode(&self) -> OutputMode {
        self.hub.mode()
    }

    /// Switches between forwarding every chunk and keeping only a tail.
    /// Switching to `Tail` moves the chunks still queued into the tail, so no
    /// byte is lost or reordered across the switch.
    pub fn set_output_mode(&self, mode: OutputMode) {
        self.hub.set_mode(mode);
    }

    /// Takes the bytes kept in tail mode and empties the tail.
    pub fn take_tail(&self) -> Tail {
        self.hub.take_tail()
    }

    /// A handle that cancels this command from another task.
    pub fn canceller(&self) -> Canceller {
        self.canceller.clone()
    }

    /// Cancels the command; see [`Canceller::cancel`].
    pub fn cancel(&self) {
        self.canceller.cancel();
    }

    /// The exit report, if the command has ended.
    pub fn exit_report(&self) -> Option<ExitReport> {
        self.report.borrow().clone()
    }

    /// Waits for the exit report. It is published when the main process has
    /// been reaped, possibly before the last output was delivered: drain
    /// [`next_output`](Self::next_output) to `None` before telling the peer the
    /// command ended, so output never arrives after the report.
    pub async fn wait(&self) -> ExitReport {
        let mut report = self.report.clone();
        let waited = report.wait_for(Option::is_some).await.map(|r| r.clone());
        match waited {
            Ok(Some(report)) => report,
            // The supervisor was dropped without reporting, which only happens
            // when the runtime shuts down under it: the command was stopped by
            // the agent, not by the test.
            _ => ExitReport {
                status: ExitStatus::Cancelled,
                duration: Duration::ZERO,
                kill_signal: None,
            },
        }
    }

    /// Takes the standard input writer ([`StdinMode::Piped`] only; `None`
    /// otherwise or when already taken). Writing can then happen in another
    /// task than reading output.
    pub fn take_stdin(&mut self) -> Option<StdinWriter> {
        self.stdin.take()
    }
}

impl Drop for RunningCommand {
    fn drop(&mut self) {
        self.hub.detach_consumer();
    }
}
