//! The state shared by the link's handle, its supervisor task and its pipes:
//! current faults, counters, whether the line is cut, and where the endpoints are.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;
use tokio::time::Instant;

use super::endpoint::EndpointAddr;
use super::faults::Faults;
use super::stats::{DirCounters, LinkState, Stats};
use super::LinkFaults;

/// Index of the a→b direction in the per-direction arrays.
pub(crate) const A2B: usize = 0;
/// Index of the b→a direction in the per-direction arrays.
pub(crate) const B2A: usize = 1;

/// Locks a mutex even if a panicking thread poisoned it: every value behind these
/// mutexes is valid at all times, so there is nothing to recover.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A temporary cut of the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cut {
    /// Bytes flow.
    Off,
    /// Bytes are discarded until this instant.
    Until(Instant),
    /// Bytes are discarded until `restore` (a duration too long to represent).
    UntilRestore,
}

pub(crate) struct Shared {
    pub seed: u64,
    pub faults: [Mutex<Faults>; 2],
    pub counters: [DirCounters; 2],
    cut: Mutex<Cut>,
    /// Cut for good: endpoints closed until restored.
    pub down: AtomicBool,
    /// Whether a session is running; a watch so callers can wait for it.
    pub connected: watch::Sender<bool>,
    /// Sessions started so far.
    pub sessions: AtomicU64,
    /// Where endpoints a and b are; changes when a pty is recreated on restore.
    pub addrs: Mutex<[EndpointAddr; 2]>,
    /// Set once the supervisor task has stopped and released the endpoints.
    pub stopped: watch::Sender<bool>,
}

impl Shared {
    pub fn new(seed: u64, faults: LinkFaults, addrs: [EndpointAddr; 2]) -> Self {
        Shared {
            seed,
            faults: [Mutex::new(faults.a2b), Mutex::new(faults.b2a)],
            counters: Default::default(),
            cut: Mutex::new(Cut::Off),
            down: AtomicBool::new(false),
            connected: watch::Sender::new(false),
            sessions: AtomicU64::new(0),
            addrs: Mutex::new(addrs),
            stopped: watch::Sender::new(false),
        }
    }

    /// The current faults of direction `dir` ([`A2B`] or [`B2A`]).
    pub fn faults(&self, dir: usize) -> Faults {
        lock(&self.faults[dir]).clone()
    }

    pub fn set_cut(&self, cut: Cut) {
        *lock(&self.cut) = cut;
    }

    /// Whether bytes crossing the line at `now` are to be discarded.
    pub fn is_cut(&self, now: Instant) -> bool {
        match *lock(&self.cut) {
            Cut::Off => false,
            Cut::Until(until) => now < until,
            Cut::UntilRestore => true,
        }
    }

    pub fn state(&self) -> LinkState {
        if self.down.load(Ordering::Relaxed) {
            LinkState::Down
        } else if self.is_cut(Instant::now()) {
            LinkState::Cut
        } else {
            LinkState::Up
        }
    }

    pub fn stats(&self) -> Stats {
        Stats {
            a2b: self.counters[A2B].snapshot(),
            b2a: self.counters[B2A].snapshot(),
            state: self.state(),
            connected: *self.connected.borrow(),
            sessions: self.sessions.load(Ordering::Relaxed),
            seed: self.seed,
        }
    }
}
