//! Running real processes for a remote caller.
//!
//! An [`Executor`] starts commands described by a [`CommandSpec`] (argv, never a
//! shell string; env; cwd; stdin; timeout) and returns a [`RunningCommand`]
//! handle for each. The layer keeps these promises whatever the caller does:
//!
//! - Each command leads its own process group. A timeout, a cancel or an agent
//!   shutdown sends `SIGTERM` to the whole group, then `SIGKILL` after
//!   [`ExecConfig::kill_grace`]; when the main process ends by itself, whatever
//!   it left running in its group gets `SIGKILL`. No grandchild survives its
//!   command unless it left the group on purpose (`setsid`).
//! - Timeouts and cancels are enforced by a supervisor task of the layer, so
//!   they hold while nobody reads the output or after the handle was dropped.
//! - Output is read as it is produced into chunks tagged stdout/stderr and
//!   queued in a bounded queue: a consumer that stops reading makes the
//!   command block on its pipe, never makes the agent buffer without bound.
//! - The caller can switch a command to keeping only a tail of its output
//!   ([`OutputMode::Tail`], used while the gateway link is down) and back,
//!   without losing bytes or the exit report.
//! - A program that cannot be started gives an [`ExitStatus::FailedToStart`]
//!   report with a message that names it, not an error or a panic.
//!
//! ```no_run
//! use std::time::Duration;
//! use corral_agent::exec::{CommandSpec, ExecConfig, Executor};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let exec = Executor::new(ExecConfig::default())?;
//! let cmd = exec.spawn(
//!     CommandSpec::new(["sh", "-c", "echo hello; echo oops >&2; exit 3"])
//!         .timeout(Duration::from_secs(10)),
//! )?;
//! while let Some(chunk) = cmd.next_output().await {
//!     println!("{:?}: {:?}", chunk.stream, String::from_utf8_lossy(&chunk.data));
//! }
//! let report = cmd.wait().await;
//! println!("{} after {:?}", report.status, report.duration);
//! # Ok(()) }
//! ```

mod group;
mod output;
mod report;
mod spawn;
mod spec;
mod tail;

pub use output::{OutputChunk, OutputMode, StreamKind, Tail};
pub use report::{ExitReport, ExitStatus};
pub use spawn::{Canceller, ExecError, Executor, RunningCommand, StdinWriter};
pub use spec::{CommandSpec, ExecConfig, StdinMode};
pub use tail::TailRing;
