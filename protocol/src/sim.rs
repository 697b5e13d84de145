//! A simulated serial line with faults and simulated time, for tests and
//! benchmarks of anything built on the link (enabled by the `sim` feature,
//! which needs `std`).
//!
//! A [`Channel`] is one direction of a line. It clocks bytes out at a baud
//! rate with 8N1 timing (10 bits per byte), adds a fixed delay, and can drop,
//! corrupt (flip one random bit), duplicate or reorder what it carries, all
//! from a seeded generator so a failing run can be replayed. [`run_pair`]
//! drives two [`Node`]s connected by two channels in simulated time.

use crate::time::Instant;
use core::time::Duration;
use std::collections::VecDeque;
use std::vec::Vec;

/// Faults and timing of one direction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Line rate in baud (8N1: baud/10 bytes per second); `None` is instant.
    pub baud: Option<u32>,
    /// Fixed delay added to every byte (propagation, device turnaround).
    pub delay: Duration,
    /// Extra random delay per piece, up to this much (reorders pieces).
    pub jitter: Duration,
    /// Probability that a byte is lost.
    pub drop: f64,
    /// Probability that a byte has one random bit flipped.
    pub corrupt: f64,
    /// Probability that a piece is delivered twice.
    pub duplicate: f64,
    /// Probability that a piece swaps places with the one before it.
    pub reorder: f64,
}

/// SplitMix64: a tiny, good, seedable generator (no dependency needed for a
/// test utility).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }

    /// Uniform in [0, n).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
}

/// Counters of a channel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChannelStats {
    /// Bytes put in.
    pub bytes_in: u64,
    /// Bytes delivered.
    pub bytes_out: u64,
    /// Bytes dropped.
    pub dropped: u64,
    /// Bytes with a flipped bit.
    pub corrupted: u64,
    /// Pieces delivered twice.
    pub duplicated: u64,
    /// Pieces reordered.
    pub reordered: u64,
}

/// One direction of a simulated line.
#[derive(Debug, Clone)]
pub struct Channel {
    faults: Faults,
    rng: Rng,
    /// Pieces in transit, by delivery time.
    queue: VecDeque<(Instant, Vec<u8>)>,
    /// When the transmitter finishes clocking out what it was given.
    busy_until: Instant,
    stats: ChannelStats,
}

/// Bytes per piece: a UART FIFO's or a USB packet's worth. Faults that act on
/// pieces (duplicate, reorder) act on these.
pub const PIECE: usize = 64;

impl Channel {
    /// A channel with these faults, seeded.
    pub fn new(faults: Faults, seed: u64) -> Self {
        Channel {
            faults,
            rng: Rng::new(seed),
            queue: VecDeque::new(),
            busy_until: Instant::ZERO,
            stats: ChannelStats::default(),
        }
    }

    /// Changes the faults from now on.
    pub fn set_faults(&mut self, faults: Faults) {
        self.faults = faults;
    }

    /// Counters.
    pub fn stats(&self) -> ChannelStats {
        self.stats
    }

    fn byte_time_ns(&self) -> u64 {
        self.faults
            .baud
            .map_or(0, |b| 10_000_000_000 / u64::from(b.max(1)))
    }

    /// True if the transmitter is idle at `now` (a UART driver would refill
    /// its FIFO now).
    pub fn idle(&self, now: Instant) -> bool {
        self.busy_until <= now
    }

    /// When the transmitter becomes idle.
    pub fn idle_at(&self) -> Instant {
        self.busy_until
    }

    /// Puts bytes on the line at `now` (after anything still being sent).
    pub fn send(&mut self, now: Instant, bytes: &[u8]) {
        self.stats.bytes_in += bytes.len() as u64;
        let bt = self.byte_time_ns();
        let mut t_ns = self.busy_until.max(now).as_micros() * 1000;
        for piece in bytes.chunks(PIECE) {
            t_ns += bt * piece.len() as u64;
            let mut data = Vec::with_capacity(piece.len());
            for &b in piece {
                if self.rng.chance(self.faults.drop) {
                    self.stats.dropped += 1;
                    continue;
                }
                if self.rng.chance(self.faults.corrupt) {
                    self.stats.corrupted += 1;
                    data.push(b ^ (1 << self.rng.below(8)));
                } else {
                    data.push(b);
                }
            }
            let jitter = if self.faults.jitter.is_zero() {
                0
            } else {
                self.rng.below(self.faults.jitter.as_micros() as u64 + 1)
            };
            let at = Instant::from_micros(t_ns.div_ceil(1000))
                + self.faults.delay
                + Duration::from_micros(jitter);
            self.push_piece(at, data.clone());
            if self.rng.chance(self.faults.duplicate) {
                self.stats.duplicated += 1;
                self.push_piece(at, data);
            }
        }
        self.busy_until = Instant::from_micros(t_ns.div_ceil(1000));
    }

    fn push_piece(&mut self, at: Instant, data: Vec<u8>) {
        if data.is_empty() {
            return;
        }
        let mut at = at;
        if self.rng.chance(self.faults.reorder) {
            if let Some(last) = self.queue.back_mut() {
                // Deliver this piece before the previous one.
                self.stats.reordered += 1;
                at = at.min(last.0);
                last.0 = at + Duration::from_micros(1);
            }
        }
        // Keep the queue sorted by delivery time (stable for equal times).
        let pos = self
            .queue
            .iter()
            .rposition(|(t, _)| *t <= at)
            .map_or(0, |p| p + 1);
        self.queue.insert(pos, (at, data));
    }

    /// When the next piece arrives, if any is in transit.
    pub fn next_delivery(&self) -> Option<Instant> {
        self.queue.front().map(|(t, _)| *t)
    }

    /// Takes every byte that has arrived by `now`, in arrival order.
    pub fn deliver(&mut self, now: Instant, out: &mut Vec<u8>) {
        while let Some((t, _)) = self.queue.front() {
            if *t > now {
                break;
            }
            if let Some((_, data)) = self.queue.pop_front() {
                self.stats.bytes_out += data.len() as u64;
                out.extend_from_slice(&data);
            }
        }
    }
}

/// One end of a simulated line: anything that takes bytes and time and
/// gives bytes back (a link with an application on top).
pub trait Node {
    /// Bytes arrived at `now`.
    fn receive(&mut self, now: Instant, bytes: &[u8]);
    /// Bytes to put on the line now (called when the line is idle); 0 if
    /// nothing.
    fn transmit(&mut self, now: Instant, out: &mut [u8]) -> usize;
    /// When this node next has something to do without new input.
    fn next_wakeup(&self) -> Option<Instant>;
    /// True when the node considers its work done ([`run_pair`] ends when
    /// both are).
    fn done(&self) -> bool {
        false
    }
}

/// Why [`run_pair`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    /// Both nodes reported done.
    Done(Instant),
    /// The time limit passed first.
    TimeLimit(Instant),
}

/// Runs two nodes joined by `a_to_b` and `b_to_a` until both are done or
/// simulated time passes `limit`. `out_len` is the transmit buffer per call,
/// a UART driver's buffer: it should fit one frame of the largest segment.
pub fn run_pair(
    a: &mut dyn Node,
    b: &mut dyn Node,
    a_to_b: &mut Channel,
    b_to_a: &mut Channel,
    out_len: usize,
    limit: Instant,
) -> RunEnd {
    let mut now = Instant::ZERO;
    let mut out = std::vec![0u8; out_len];
    let mut inbox = Vec::new();
    loop {
        // Deliver what has arrived.
        inbox.clear();
        a_to_b.deliver(now, &mut inbox);
        if !inbox.is_empty() {
            b.receive(now, &inbox);
        }
        inbox.clear();
        b_to_a.deliver(now, &mut inbox);
        if !inbox.is_empty() {
            a.receive(now, &inbox);
        }
        // Refill idle transmitters.
        let mut a_sent = false;
        let mut b_sent = false;
        if a_to_b.idle(now) {
            let n = a.transmit(now, &mut out);
            if n > 0 {
                a_to_b.send(now, &out[..n]);
                a_sent = true;
            }
        }
        if b_to_a.idle(now) {
            let n = b.transmit(now, &mut out);
            if n > 0 {
                b_to_a.send(now, &out[..n]);
                b_sent = true;
            }
        }
        if a.done() && b.done() {
            return RunEnd::Done(now);
        }
        if a_sent || b_sent {
            // Instant channels may be idle again at once; loop without
            // advancing time only while something moves.
            if a_to_b.idle(now) && b_to_a.idle(now) && a_to_b.next_delivery() == Some(now) {
                continue;
            }
        }
        // Advance to the next thing that can happen.
        let mut next: Option<Instant> = None;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                let t = t.max(now);
                next = Some(next.map_or(t, |n: Instant| n.min(t)));
            }
        };
        consider(a_to_b.next_delivery());
        consider(b_to_a.next_delivery());
        let wa = a.next_wakeup();
        let wb = b.next_wakeup();
        // A node that wants to send waits for its line to be idle.
        consider(wa.map(|t| t.max(a_to_b.idle_at())));
        consider(wb.map(|t| t.max(b_to_a.idle_at())));
        let Some(t) = next else {
            return RunEnd::TimeLimit(now);
        };
        // Guarantee progress when a node asks to run "now" repeatedly but has
        // nothing to send.
        now = if t <= now && !(a_sent || b_sent) {
            now + Duration::from_micros(1)
        } else {
            t.max(now)
        };
        if now > limit {
            return RunEnd::TimeLimit(now);
        }
    }
}
