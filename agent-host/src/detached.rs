//! Commands that can be re-attached after a lost link.
//!
//! A command started with a non-zero token registers here for its whole
//! life. Its task (see `session::exec`) owns the command; the registry only
//! holds a channel to that task, through which a later `Attach(token)` hands
//! it the new link. When the link is lost the task keeps the command's output
//! as a bounded tail; once the command has ended, the result stays here until
//! it is collected, until it is older than [`KeepPolicy::max_age`], or until
//! more than [`KeepPolicy::max_results`] ended results are kept (the oldest
//! goes first). Running commands are bounded by the executor's limit, so the
//! registry as a whole is bounded.
//!
//! A result is kept even after its `Exit` was sent, because "sent" is not
//! "received": a gateway that lost the link just as the command ended attaches
//! again and gets the exit report once more (without the output that was
//! already delivered).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::session::Attachment;

/// How many ended results of re-attachable commands are kept, and how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeepPolicy {
    /// At most this many ended results are kept; beyond it the oldest is
    /// forgotten.
    pub max_results: usize,
    /// An ended result is forgotten this long after the command ended.
    pub max_age: Duration,
}

impl Default for KeepPolicy {
    /// 32 results, each for an hour after its command ended.
    fn default() -> Self {
        KeepPolicy {
            max_results: 32,
            max_age: Duration::from_secs(3600),
        }
    }
}

/// Why a token cannot be registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RegisterError {
    /// A running command already uses the token.
    InUse,
    /// The registry was closed by a reset or shutdown.
    Closed,
}

/// A registered command's place in the registry.
#[derive(Debug)]
pub(crate) struct Registration {
    pub token: u64,
    /// Tells this registration from a later one with the same token.
    pub serial: u64,
    /// Where `Attach` hands over a new link.
    pub attach: mpsc::Receiver<Attachment>,
}

#[derive(Debug)]
pub(crate) struct Registry {
    policy: KeepPolicy,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    closed: bool,
    next_serial: u64,
    slots: HashMap<u64, Slot>,
}

#[derive(Debug)]
struct Slot {
    serial: u64,
    attach: mpsc::Sender<Attachment>,
    ended_at: Option<Instant>,
}

impl Registry {
    pub(crate) fn new(policy: KeepPolicy) -> Self {
        Registry {
            policy,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn policy(&self) -> &KeepPolicy {
        &self.policy
    }

    /// Registers a new command under `token`. An ended result with the same
    /// token is forgotten: the gateway reuses its tokens only once it is done
    /// with them.
    pub(crate) fn register(&self, token: u64) -> Result<Registration, RegisterError> {
        let mut inner = self.lock();
        if inner.closed {
            return Err(RegisterError::Closed);
        }
        if let Some(slot) = inner.slots.get(&token) {
            if slot.ended_at.is_none() && !slot.attach.is_closed() {
                return Err(RegisterError::InUse);
            }
        }
        inner.next_serial += 1;
        let serial = inner.next_serial;
        // Room for one hand-over at a time: the task takes it at once.
        let (tx, rx) = mpsc::channel(1);
        inner.slots.insert(
            token,
            Slot {
                serial,
                attach: tx,
                ended_at: None,
            },
        );
        Ok(Registration {
            token,
            serial,
            attach: rx,
        })
    }

    /// The channel to the task of the command with `token`, if it is known.
    pub(crate) fn find(&self, token: u64) -> Option<mpsc::Sender<Attachment>> {
        let inner = self.lock();
        inner
            .slots
            .get(&token)
            .filter(|s| !s.attach.is_closed())
            .map(|s| s.attach.clone())
    }

    /// Records that the command ended; forgets the oldest ended results
    /// beyond the limit (their tasks see their channel close and finish).
    pub(crate) fn ended(&self, token: u64, serial: u64) {
        let mut inner = self.lock();
        if let Some(slot) = inner.slots.get_mut(&token) {
            if slot.serial == serial && slot.ended_at.is_none() {
                slot.ended_at = Some(Instant::now());
            }
        }
        let mut ended: Vec<(Instant, u64)> = inner
            .slots
            .iter()
            .filter_map(|(t, s)| s.ended_at.map(|at| (at, *t)))
            .collect();
        if ended.len() > self.policy.max_results {
            ended.sort();
            let excess = ended.len() - self.policy.max_results;
            for (_, token) in ended.into_iter().take(excess) {
                tracing::info!(token, "forgetting the oldest kept command result");
                inner.slots.remove(&token);
            }
        }
    }

    /// Forgets a registration (if it is still the one with `serial`).
    pub(crate) fn remove(&self, token: u64, serial: u64) {
        let mut inner = self.lock();
        if inner.slots.get(&token).is_some_and(|s| s.serial == serial) {
            inner.slots.remove(&token);
        }
    }

    /// Forgets everything and refuses new registrations (reset, shutdown).
    pub(crate) fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        inner.slots.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(max_results: usize) -> Registry {
        Registry::new(KeepPolicy {
            max_results,
            max_age: Duration::from_secs(60),
        })
    }

    #[test]
    fn a_running_token_is_in_use_and_an_ended_one_is_replaced() {
        let r = registry(4);
        let a = r.register(7).unwrap();
        assert_eq!(r.register(7).unwrap_err(), RegisterError::InUse);
        r.ended(7, a.serial);
        let b = r.register(7).unwrap();
        assert_ne!(a.serial, b.serial);
        // The old registration no longer removes the new one.
        r.remove(7, a.serial);
        assert!(r.find(7).is_some());
        r.remove(7, b.serial);
        assert!(r.find(7).is_none());
    }

    #[test]
    fn only_the_newest_ended_results_are_kept() {
        let r = registry(2);
        let regs: Vec<_> = (1..=3).map(|t| r.register(t).unwrap()).collect();
        for reg in &regs {
            r.ended(reg.token, reg.serial);
        }
        assert!(r.find(1).is_none(), "the oldest was forgotten");
        assert!(r.find(2).is_some());
        assert!(r.find(3).is_some());
    }

    #[test]
    fn close_forgets_everything_and_refuses_more() {
        let r = registry(2);
        let _a = r.register(1).unwrap();
        r.close();
        assert!(r.find(1).is_none());
        assert_eq!(r.register(2).unwrap_err(), RegisterError::Closed);
    }
}
