//! How a command ended.

use std::fmt;
use std::time::Duration;

/// Why a command stopped.
///
/// The distinction matters to the gateway: `Exited` and `Signaled` are the test's
/// own result, `TimedOut` and `Cancelled` were decided by the agent, and
/// `FailedToStart` means the command never ran (an infrastructure or request
/// error, not a test failure).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExitStatus {
    /// The main process exited by itself with this code.
    Exited(i32),
    /// The main process was killed by this signal, not sent by the agent
    /// (for example a crash with `SIGSEGV`, or `kill -9 $$`).
    Signaled(i32),
    /// The timeout expired and the agent killed the process group.
    TimedOut,
    /// The caller cancelled the command (or the agent shut down) and the agent
    /// killed the process group.
    Cancelled,
    /// The command could not be started; the message says why and names the
    /// program or directory.
    FailedToStart(String),
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitStatus::Exited(code) => write!(f, "exited with code {code}"),
            ExitStatus::Signaled(sig) => write!(f, "killed by signal {sig}"),
            ExitStatus::TimedOut => f.write_str("timed out"),
            ExitStatus::Cancelled => f.write_str("cancelled"),
            ExitStatus::FailedToStart(why) => write!(f, "failed to start: {why}"),
        }
    }
}

/// The final report of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitReport {
    /// How it ended.
    pub status: ExitStatus,
    /// Time from start until the main process was reaped (zero if it never
    /// started).
    pub duration: Duration,
    /// The last signal the agent sent to the process group to stop it
    /// (`SIGTERM`, or `SIGKILL` once the grace ran out) for
    /// [`ExitStatus::TimedOut`] and [`ExitStatus::Cancelled`]; `None` when the
    /// command ended by itself. The gateway reports it as the signal of a
    /// timed-out or cancelled command.
    pub kill_signal: Option<i32>,
}

impl ExitReport {
    /// True only for `Exited(0)`.
    pub fn success(&self) -> bool {
        self.status == ExitStatus::Exited(0)
    }
}
