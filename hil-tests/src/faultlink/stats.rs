//! Counters of what the link did, per direction, readable while it runs.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use super::faults::ByteFaultCounts;

/// Whether the link is passing bytes, as reported in [`Stats`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LinkState {
    /// Bytes flow (with whatever faults are configured).
    Up,
    /// Cut for a while: connections stay open, bytes in both directions are discarded.
    Cut,
    /// Cut for good: endpoints are closed until [`restore`](super::FaultLinkHandle::restore).
    Down,
}

/// A snapshot of one direction's counters.
///
/// `bytes_in` counts what the link read from the sending side; `bytes_out` what it
/// wrote to the receiving side. Every byte is accounted for:
/// `bytes_in + duplicated == bytes_out + dropped + discarded_cut + discarded_closed + in_flight`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DirectionStats {
    /// Bytes read from the sending endpoint.
    pub bytes_in: u64,
    /// Bytes written to the receiving endpoint (duplicates included).
    pub bytes_out: u64,
    /// Bytes lost to the `drop` fault.
    pub dropped: u64,
    /// Bytes that had one bit flipped by the `corrupt` fault.
    pub corrupted: u64,
    /// Extra copies sent by the `duplicate` fault.
    pub duplicated: u64,
    /// Pairs of chunks swapped by the `reorder` fault.
    pub reordered: u64,
    /// Bytes discarded because the link was cut.
    pub discarded_cut: u64,
    /// Bytes lost because the connection they were travelling on closed first.
    pub discarded_closed: u64,
    /// Bytes read but not yet written or lost: on the paced line, delayed, or held
    /// for a reorder.
    pub in_flight: u64,
}

/// A snapshot of the whole link's counters and state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// From endpoint a to endpoint b.
    pub a2b: DirectionStats,
    /// From endpoint b to endpoint a.
    pub b2a: DirectionStats,
    /// Up, cut for a while, or down.
    pub state: LinkState,
    /// Whether both endpoints are currently connected to each other through the link.
    pub connected: bool,
    /// How many times both endpoints were connected (1 after the first connection).
    pub sessions: u64,
    /// The seed that drives every fault decision.
    pub seed: u64,
}

/// The live counters of one direction.
#[derive(Debug, Default)]
pub(crate) struct DirCounters {
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub dropped: AtomicU64,
    pub corrupted: AtomicU64,
    pub duplicated: AtomicU64,
    pub reordered: AtomicU64,
    pub discarded_cut: AtomicU64,
    pub discarded_closed: AtomicU64,
    pub in_flight: AtomicU64,
}

/// Adds to a counter. Relaxed ordering is enough: each counter is independent and
/// a snapshot only needs to be eventually up to date.
pub(crate) fn add(counter: &AtomicU64, n: u64) {
    if n > 0 {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// Takes from a counter.
pub(crate) fn sub(counter: &AtomicU64, n: u64) {
    if n > 0 {
        counter.fetch_sub(n, Ordering::Relaxed);
    }
}

impl DirCounters {
    pub fn add_byte_faults(&self, counts: ByteFaultCounts) {
        add(&self.dropped, counts.dropped);
        add(&self.corrupted, counts.corrupted);
        add(&self.duplicated, counts.duplicated);
        add(&self.in_flight, counts.duplicated);
        sub(&self.in_flight, counts.dropped);
    }

    /// Books everything still travelling as lost with its connection.
    pub fn close_in_flight(&self) {
        let lost = self.in_flight.swap(0, Ordering::Relaxed);
        add(&self.discarded_closed, lost);
    }

    pub fn snapshot(&self) -> DirectionStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        DirectionStats {
            bytes_in: get(&self.bytes_in),
            bytes_out: get(&self.bytes_out),
            dropped: get(&self.dropped),
            corrupted: get(&self.corrupted),
            duplicated: get(&self.duplicated),
            reordered: get(&self.reordered),
            discarded_cut: get(&self.discarded_cut),
            discarded_closed: get(&self.discarded_closed),
            in_flight: get(&self.in_flight),
        }
    }
}
