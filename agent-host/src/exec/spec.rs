//! What to run ([`CommandSpec`]) and how the executor behaves ([`ExecConfig`]).

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// Where a command's standard input comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StdinMode {
    /// `/dev/null`: the command reads end-of-file at once. This is the default
    /// because a command that waits for input nobody sends would hang until
    /// its timeout.
    #[default]
    Null,
    /// A pipe the caller writes to through a [`StdinWriter`](super::StdinWriter)
    /// and closes when done.
    Piped,
}

/// One command to run, as the remote caller described it.
///
/// The program is `argv[0]`, run directly with `execve` semantics: never through a
/// shell. A caller who wants shell syntax asks for `["sh", "-c", "..."]` itself.
/// A program name without a `/` is looked up in `PATH` (the `PATH` of the
/// command's environment, so an override in [`env`](Self::env) applies); a name
/// with a `/` is relative to the command's working directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    /// Program and arguments; must not be empty.
    pub argv: Vec<OsString>,
    /// Variables added to the agent's own environment; an entry whose name is
    /// already set overrides it. The agent's environment is inherited otherwise,
    /// because tests on a device usually expect the device's normal `PATH`,
    /// `HOME` and locale.
    pub env: Vec<(OsString, OsString)>,
    /// Working directory, already resolved by the caller (for example against the
    /// file store's root). `None` inherits the agent's working directory.
    pub cwd: Option<PathBuf>,
    /// Standard input: `/dev/null` or a pipe.
    pub stdin: StdinMode,
    /// Wall-clock limit from the start; `None` runs until the command exits or is
    /// cancelled.
    pub timeout: Option<Duration>,
}

impl CommandSpec {
    /// A command with the given argv, the agent's environment and working
    /// directory, stdin from `/dev/null` and no timeout.
    pub fn new<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        Self {
            argv: argv.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            cwd: None,
            stdin: StdinMode::Null,
            timeout: None,
        }
    }

    /// Adds (or overrides) one environment variable.
    pub fn env(mut self, name: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// Sets the working directory.
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Sets where standard input comes from.
    pub fn stdin(mut self, mode: StdinMode) -> Self {
        self.stdin = mode;
        self
    }

    /// Sets the timeout.
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }
}

/// Limits and tunables of an [`Executor`](super::Executor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecConfig {
    /// How many commands may run at once; further spawns are refused with
    /// [`ExecError::Busy`](super::ExecError::Busy). This is the value the agent
    /// advertises in the handshake. Must be at least 1.
    pub max_concurrent: usize,
    /// Largest chunk read from a pipe at once, in bytes.
    pub chunk_size: usize,
    /// How many chunks may wait for the consumer before the reader stops
    /// reading the pipe (so the command blocks on its next write). Together with
    /// `chunk_size` this bounds the memory a command can hold while forwarding.
    pub queue_chunks: usize,
    /// How many bytes of each stream are kept in [`OutputMode::Tail`](super::OutputMode::Tail).
    pub tail_bytes: usize,
    /// On timeout, cancel or shutdown the process group first gets `SIGTERM`,
    /// so test programs can flush logs and remove temporary files, then
    /// `SIGKILL` once this grace has passed. Zero sends `SIGKILL` at once.
    pub kill_grace: Duration,
    /// After the command's main process has exited, how long the output readers
    /// wait for more bytes before they give up on end-of-file. End-of-file
    /// normally comes at once; it does not if a process that escaped the group
    /// (for example with `setsid`) inherited the pipes. Bytes already in a pipe
    /// are always delivered: this only bounds waiting for *new* bytes.
    pub drain_idle: Duration,
}

impl Default for ExecConfig {
    fn default() -> Self {
        Self {
            max_concurrent: 8,
            chunk_size: 16 * 1024,
            queue_chunks: 8,
            tail_bytes: 64 * 1024,
            kill_grace: Duration::from_secs(2),
            drain_idle: Duration::from_secs(1),
        }
    }
}
