//! Signals to a command's whole process group.
//!
//! Every command is started as the leader of a new process group
//! (`process_group(0)`), so its pid is also its group id, and everything it
//! starts without calling `setsid`/`setpgid` itself (`sh -c 'a & b'`, test
//! runners forking workers) is in that group. Killing `-pgid` reaches them
//! all, where killing only the leader would leave grandchildren running and
//! holding the output pipes open.

use rustix::process::{kill_process_group, Pid, Signal};

/// Sends `signal` to every process in group `pgid`. A group that no longer
/// exists is not an error: the point is that it is gone.
pub(crate) fn signal_group(pgid: u32, signal: Signal) {
    let Some(pid) = i32::try_from(pgid).ok().and_then(Pid::from_raw) else {
        // Pid 0 or a value that does not fit would address the wrong group
        // (0 is our own group): never send it.
        tracing::error!(pgid, "refusing to signal an invalid process group");
        return;
    };
    match kill_process_group(pid, signal) {
        Ok(()) => tracing::debug!(pgid, ?signal, "signalled process group"),
        Err(rustix::io::Errno::SRCH) => {}
        Err(err) => tracing::warn!(pgid, ?signal, %err, "signalling process group failed"),
    }
}

/// `SIGTERM`: asks the group to stop.
pub(crate) fn terminate(pgid: u32) {
    signal_group(pgid, Signal::TERM);
}

/// `SIGKILL`: stops the group for sure.
pub(crate) fn kill(pgid: u32) {
    signal_group(pgid, Signal::KILL);
}
