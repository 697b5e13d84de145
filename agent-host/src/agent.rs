//! The agent's state that outlives any one link: the file store, the
//! executor, the results of commands whose link was lost, and the boot id.
//!
//! Links come and go (a gateway reconnects, a USB gadget port is re-plugged,
//! a new TCP connection replaces the old one); the [`Agent`] stays. What a
//! built-in reset restarts is the [`AgentState`]: every running command is
//! stopped, kept results are forgotten, and a new boot id tells the gateway
//! that nothing from before the reset is left.

use std::sync::{Arc, Mutex};

use corral_protocol::message::Limits;

use crate::detached::{KeepPolicy, Registry};
use crate::exec::{ExecConfig, ExecError, Executor};
use crate::files::FileStore;
use crate::identity::Identity;
use crate::logfwd::LogForwarder;

/// How an [`Agent`] is set up.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// What the agent reports in `DeviceInfo`.
    pub identity: Identity,
    /// Limits and tunables of command execution.
    pub exec: ExecConfig,
    /// How many results of detached commands are kept, and for how long.
    pub keep: KeepPolicy,
    /// A shell command to run on `Reset` instead of the built-in restart
    /// (for example `systemctl reboot`).
    pub reset_command: Option<String>,
}

/// The part of the agent that a built-in reset replaces.
#[derive(Debug)]
pub struct AgentState {
    /// Reported as `DeviceInfo::boot_id`: random at start and after every
    /// reset, so a gateway notices that the agent's commands are gone.
    pub boot_id: u32,
    /// Runs commands.
    pub executor: Executor,
    /// Commands that can be re-attached by token.
    pub(crate) detached: Registry,
}

/// The agent: everything the protocol sessions of all links share.
#[derive(Debug)]
pub struct Agent {
    store: FileStore,
    options: AgentOptions,
    state: Mutex<Arc<AgentState>>,
    logs: Option<LogForwarder>,
}

impl Agent {
    /// An agent serving `store`. `logs`, when given, is where the agent's own
    /// warnings come from to be forwarded to the gateway as `Log` messages.
    pub fn new(
        store: FileStore,
        options: AgentOptions,
        logs: Option<LogForwarder>,
    ) -> Result<Arc<Self>, ExecError> {
        let state = Arc::new(AgentState::new(&options)?);
        tracing::info!(
            boot_id = format_args!("{:08x}", state.boot_id),
            "agent started"
        );
        Ok(Arc::new(Agent {
            store,
            options,
            state: Mutex::new(state),
            logs,
        }))
    }

    /// The file store.
    pub fn store(&self) -> &FileStore {
        &self.store
    }

    /// How the agent was set up.
    pub fn options(&self) -> &AgentOptions {
        &self.options
    }

    /// The current state (replaced by [`restart`](Self::restart)).
    pub fn state(&self) -> Arc<AgentState> {
        Arc::clone(&self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Where forwarded log lines come from, if forwarding is on.
    pub fn logs(&self) -> Option<&LogForwarder> {
        self.logs.as_ref()
    }

    /// What the agent can do now: command slots, and the size and free space
    /// of the file system that holds the root.
    pub fn limits(&self) -> Limits {
        let state = self.state();
        let (storage_bytes, storage_free) = match rustix::fs::statvfs(self.store.root()) {
            Ok(vfs) => (
                vfs.f_blocks.saturating_mul(vfs.f_frsize),
                vfs.f_bavail.saturating_mul(vfs.f_frsize),
            ),
            Err(err) => {
                tracing::debug!(%err, "cannot query the size of the file root's file system");
                (0, 0)
            }
        };
        Limits {
            max_commands: state.executor.max_concurrent().min(u16::MAX as usize) as u16,
            storage_bytes,
            storage_free,
            // A file can take all the free space, but no more: the put is
            // refused up front when it does not fit.
            max_file: storage_free,
        }
    }

    /// The built-in reset: stops every running command (the usual `SIGTERM`,
    /// grace, `SIGKILL`), forgets every kept result and takes a new boot id.
    /// The file store is left as it is, partial pushes included. The caller
    /// restarts the link afterwards so the gateway sees a new session.
    pub async fn restart(&self) {
        let fresh = match AgentState::new(&self.options) {
            Ok(state) => Arc::new(state),
            Err(err) => {
                // The options were accepted once, so this cannot fail; keep
                // the old state rather than run without an executor.
                tracing::error!(%err, "cannot restart the agent state");
                return;
            }
        };
        let old = std::mem::replace(
            &mut *self.state.lock().unwrap_or_else(|p| p.into_inner()),
            Arc::clone(&fresh),
        );
        tracing::warn!(
            old_boot_id = format_args!("{:08x}", old.boot_id),
            new_boot_id = format_args!("{:08x}", fresh.boot_id),
            "reset: stopping every command and starting afresh"
        );
        old.detached.close();
        old.executor.shutdown().await;
    }

    /// Stops every running command and waits until they are gone; used when
    /// the agent exits.
    pub async fn shutdown(&self) {
        let state = self.state();
        state.detached.close();
        state.executor.shutdown().await;
    }
}

impl AgentState {
    fn new(options: &AgentOptions) -> Result<Self, ExecError> {
        Ok(AgentState {
            boot_id: corral_io::new_session_id(),
            executor: Executor::new(options.exec.clone())?,
            detached: Registry::new(options.keep.clone()),
        })
    }
}
