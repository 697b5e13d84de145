//! The receive side of the reliable stream: reassembly and the window.
//!
//! The buffer holds stream bytes from `base` (the first byte the application
//! has not consumed) on. Bytes up to `nxt` arrived in order and are readable;
//! bytes beyond `nxt` arrived out of order and are remembered as a few ranges,
//! which go back to the sender as selective acknowledgements. The window we
//! advertise is the space left after `nxt`, so a peer can never send more than
//! fits, and an application that stops reading stops the sender.

use crate::seq::{before, before_eq, dist, max, min};
use crate::wire::MAX_SACK_BLOCKS;
use heapless::Vec;

/// Out-of-order ranges remembered at most.
const MAX_RANGES: usize = 16;

/// What happened to an arriving data segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Accepted {
    /// New bytes, in order.
    InOrder,
    /// New bytes after a gap.
    OutOfOrder,
    /// Nothing new: everything was received before.
    Duplicate,
    /// Outside the window.
    Dropped,
    /// No room to remember another out-of-order range.
    NoRange,
}

#[derive(Debug, Clone)]
pub(crate) struct RxState {
    base: u32,
    start: usize,
    nxt: u32,
    ranges: Vec<(u32, u32), MAX_RANGES>,
    /// Start of the most recent out-of-order arrival: its range is reported
    /// first (RFC 2018), so a sender that sees only some acks still learns
    /// about every range over time.
    recent: u32,
}

impl RxState {
    pub(crate) fn new(isn: u32) -> Self {
        RxState {
            base: isn,
            start: 0,
            nxt: isn,
            ranges: Vec::new(),
            recent: isn,
        }
    }

    /// Next sequence number expected in order (the cumulative ack).
    pub(crate) fn nxt(&self) -> u32 {
        self.nxt
    }

    /// Bytes the peer may still send beyond [`nxt`](Self::nxt).
    pub(crate) fn window(&self, cap: usize) -> u32 {
        (cap as u32).saturating_sub(dist(self.base, self.nxt))
    }

    /// Out-of-order ranges to report: the one that changed last first, then
    /// the lowest ones (the holes the sender should fill first).
    pub(crate) fn sack_blocks(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        let recent = self
            .ranges
            .iter()
            .position(|&(s, e)| before_eq(s, self.recent) && before(self.recent, e));
        let first = recent.map(|i| self.ranges[i]);
        first
            .into_iter()
            .chain(
                self.ranges
                    .iter()
                    .enumerate()
                    .filter(move |&(i, _)| Some(i) != recent)
                    .map(|(_, &r)| r),
            )
            .take(MAX_SACK_BLOCKS)
    }

    /// Stores an arriving segment.
    pub(crate) fn accept(&mut self, buf: &mut [u8], seq: u32, data: &[u8]) -> Accepted {
        let cap = buf.len();
        let win_end = self.base.wrapping_add(cap as u32);
        let mut s = seq;
        let mut d = data;
        if before(s, self.nxt) {
            let skip = dist(s, self.nxt) as usize;
            if skip >= d.len() {
                return Accepted::Duplicate;
            }
            d = &d[skip..];
            s = self.nxt;
        }
        if !before(s, win_end) || d.is_empty() {
            return Accepted::Dropped;
        }
        let room = dist(s, win_end) as usize;
        let d = &d[..d.len().min(room)];
        let e = s.wrapping_add(d.len() as u32);
        let in_order = s == self.nxt;
        if !in_order
            && self
                .ranges
                .iter()
                .any(|&(rs, re)| before_eq(rs, s) && before_eq(e, re))
        {
            return Accepted::Duplicate;
        }
        if !in_order
            && self.ranges.is_full()
            && !self.ranges.iter().any(|&(rs, re)| overlaps(rs, re, s, e))
        {
            return Accepted::NoRange;
        }
        let off = dist(self.base, s) as usize;
        if self.start + off + d.len() > cap {
            self.compact(buf);
        }
        // `get`: the room was checked above, and a panic path would stay
        // in firmware.
        if let Some(dst) = buf
            .get_mut(self.start + off..)
            .and_then(|b| b.get_mut(..d.len()))
        {
            dst.copy_from_slice(d);
        }
        if in_order {
            self.nxt = e;
            // Swallow remembered ranges that are now contiguous.
            while let Some(&(rs, re)) = self.ranges.first() {
                if before_eq(rs, self.nxt) {
                    self.nxt = max(self.nxt, re);
                    self.ranges.remove(0);
                } else {
                    break;
                }
            }
            Accepted::InOrder
        } else {
            self.insert_range(s, e);
            self.recent = s;
            Accepted::OutOfOrder
        }
    }

    fn insert_range(&mut self, mut s: u32, mut e: u32) {
        // Merge every range touching [s, e), then insert in order.
        let mut i = 0;
        while i < self.ranges.len() {
            let (rs, re) = self.ranges[i];
            if before_eq(rs, e) && before_eq(s, re) {
                s = min(s, rs);
                e = max(e, re);
                self.ranges.remove(i);
            } else {
                i += 1;
            }
        }
        let at = self
            .ranges
            .iter()
            .position(|&(rs, _)| before(s, rs))
            .unwrap_or(self.ranges.len());
        // Cannot fail: either a range was merged away or there was room.
        let _ = self.ranges.insert(at, (s, e));
    }

    /// The in-order bytes not yet consumed.
    pub(crate) fn readable<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        let n = dist(self.base, self.nxt) as usize;
        buf.get(self.start..self.start + n).unwrap_or_default()
    }

    /// Drops `n` consumed bytes from the front.
    pub(crate) fn consume(&mut self, n: usize) {
        let n = n.min(dist(self.base, self.nxt) as usize);
        self.base = self.base.wrapping_add(n as u32);
        self.start += n;
        if self.base == self.nxt && self.ranges.is_empty() {
            self.start = 0;
        }
    }

    /// Moves everything held down to the start of the buffer.
    fn compact(&mut self, buf: &mut [u8]) {
        let end = self
            .ranges
            .last()
            .map_or(self.nxt, |&(_, re)| max(self.nxt, re));
        let used = dist(self.base, end) as usize;
        buf.copy_within(self.start..self.start + used, 0);
        self.start = 0;
    }
}

fn overlaps(rs: u32, re: u32, s: u32, e: u32) -> bool {
    before_eq(rs, e) && before_eq(s, re)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reassembles_out_of_order_and_reports_ranges() {
        let mut buf = [0u8; 16];
        let mut rx = RxState::new(100);
        assert_eq!(rx.accept(&mut buf, 104, b"efgh"), Accepted::OutOfOrder);
        assert_eq!(rx.sack_blocks().next(), Some((104, 108)));
        assert_eq!(rx.readable(&buf), b"");
        assert_eq!(rx.accept(&mut buf, 100, b"abcd"), Accepted::InOrder);
        assert_eq!(rx.readable(&buf), b"abcdefgh");
        assert_eq!(rx.nxt(), 108);
        assert_eq!(rx.accept(&mut buf, 102, b"cd"), Accepted::Duplicate);
        assert_eq!(rx.window(16), 8);
    }

    #[test]
    fn window_limits_and_compaction_keeps_data() {
        let mut buf = [0u8; 8];
        let mut rx = RxState::new(0);
        assert_eq!(rx.accept(&mut buf, 0, b"0123456789"), Accepted::InOrder);
        assert_eq!(rx.readable(&buf), b"01234567");
        assert_eq!(rx.window(8), 0);
        assert_eq!(rx.accept(&mut buf, 8, b"89"), Accepted::Dropped);
        rx.consume(6);
        assert_eq!(rx.accept(&mut buf, 8, b"89ab"), Accepted::InOrder);
        assert_eq!(rx.readable(&buf), b"6789ab");
    }

    #[test]
    fn sequence_wraparound() {
        let mut buf = [0u8; 8];
        let mut rx = RxState::new(u32::MAX - 1);
        assert_eq!(rx.accept(&mut buf, 0, b"cd"), Accepted::OutOfOrder);
        assert_eq!(rx.accept(&mut buf, u32::MAX - 1, b"ab"), Accepted::InOrder);
        assert_eq!(rx.readable(&buf), b"abcd");
    }
}
