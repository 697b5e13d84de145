//! The send side of the reliable stream: the send buffer and the scoreboard.
//!
//! The buffer holds stream bytes from `una` (the oldest byte not yet
//! acknowledged) to `end` (the last byte the application wrote). Bytes before
//! `nxt` were sent at least once; the scoreboard has one entry per segment in
//! flight with its send time, so losses are found by RACK (a segment sent
//! before one that was delivered, and older than an RTT plus a reordering
//! window, is lost) or by the retransmission timeout. A lost segment larger
//! than the current segment size is split before it is sent again, so a line
//! that turned noisy never keeps retrying a frame too big to get through.

use crate::seq::{before, before_eq, dist};
use crate::time::Instant;
use heapless::Vec;

/// One segment in flight.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Seg {
    pub(crate) seq: u32,
    pub(crate) len: u16,
    pub(crate) sent_at: Instant,
    pub(crate) transmissions: u8,
    pub(crate) sacked: bool,
    pub(crate) lost: bool,
}

impl Seg {
    fn end(&self) -> u32 {
        self.seq.wrapping_add(u32::from(self.len))
    }
}

/// The next segment [`TxState::next_segment`] proposes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NextSeg {
    /// Index in the scoreboard if it is a retransmission.
    pub(crate) index: Option<usize>,
    pub(crate) seq: u32,
    pub(crate) len: u16,
}

/// What an acknowledgement did.
#[derive(Debug, Default)]
pub(crate) struct AckOutcome {
    pub(crate) acked_bytes: u32,
    /// Round-trip time in µs, from a segment sent once.
    pub(crate) rtt_sample: Option<u64>,
}

#[derive(Debug, Clone)]
pub(crate) struct TxState<const S: usize> {
    una: u32,
    start: usize,
    nxt: u32,
    end: u32,
    peer_wnd_end: u32,
    /// Highest sequence number ever sent: data below it going out again is
    /// a retransmission even if the scoreboard forgot it was sent.
    high: u32,
    segs: Vec<Seg, S>,
    /// Send time of the most recently sent segment known to be delivered.
    rack_sent_at: Option<Instant>,
}

impl<const S: usize> TxState<S> {
    pub(crate) fn new(isn: u32, peer_window: u32) -> Self {
        TxState {
            una: isn,
            start: 0,
            nxt: isn,
            end: isn,
            peer_wnd_end: isn.wrapping_add(peer_window),
            high: isn,
            segs: Vec::new(),
            rack_sent_at: None,
        }
    }

    /// The scoreboard covers `[una, nxt)` without gaps or overlaps.
    fn check(&self) -> bool {
        let mut at = self.una;
        for s in &self.segs {
            if s.seq != at || s.len == 0 {
                return false;
            }
            at = s.end();
        }
        at == self.nxt && before_eq(self.nxt, self.end)
    }

    /// Bytes written and not yet acknowledged.
    pub(crate) fn buffered(&self) -> usize {
        dist(self.una, self.end) as usize
    }

    /// Room for new data.
    pub(crate) fn free(&self, cap: usize) -> usize {
        cap.saturating_sub(self.buffered())
    }

    /// Appends to the stream; `fill` writes into the free space and returns how
    /// many bytes it used, or `None` to write nothing.
    pub(crate) fn write_with(
        &mut self,
        buf: &mut [u8],
        max: usize,
        fill: impl FnOnce(&mut [u8]) -> Option<usize>,
    ) -> Option<usize> {
        let used = self.buffered();
        let room = buf.len().saturating_sub(used).min(max);
        if self.start + used + room > buf.len() {
            buf.copy_within(self.start..self.start + used, 0);
            self.start = 0;
        }
        let at = self.start + used;
        let n = fill(buf.get_mut(at..at + room)?)?;
        let n = n.min(room);
        self.end = self.end.wrapping_add(n as u32);
        Some(n)
    }

    /// The stream bytes `[seq, seq+len)`, which must be buffered.
    pub(crate) fn bytes<'b>(&self, buf: &'b [u8], seq: u32, len: u16) -> &'b [u8] {
        let off = self.start + dist(self.una, seq) as usize;
        // Never empty in fact; `get` keeps a panic path out of firmware.
        buf.get(off..off + usize::from(len)).unwrap_or_default()
    }

    /// Processes a cumulative acknowledgement and the peer's window.
    pub(crate) fn on_ack(&mut self, now: Instant, ack: u32, window: u32) -> AckOutcome {
        debug_assert!(self.check(), "before ack {ack}: {self:?}");
        let mut out = AckOutcome::default();
        // An ack for data never sent is bogus (or from another session).
        if before(self.high, ack) {
            return out;
        }
        if before_eq(self.una, ack) {
            // The receiver's window end (`base + capacity`) never moves back,
            // so a reordered older ack must not shrink it.
            self.peer_wnd_end = crate::seq::max(self.peer_wnd_end, ack.wrapping_add(window));
        }
        if !before(self.una, ack) {
            return out;
        }
        let n = dist(self.una, ack);
        out.acked_bytes = n;
        while let Some(first) = self.segs.first().copied() {
            if before_eq(first.end(), ack) {
                if first.transmissions == 1 && !first.sacked {
                    out.rtt_sample = Some(now.micros_since(first.sent_at));
                }
                self.note_delivered(first.sent_at);
                self.segs.remove(0);
            } else {
                if before(first.seq, ack) {
                    // Partially acknowledged: keep the rest.
                    let cut = dist(first.seq, ack) as u16;
                    self.segs[0].seq = ack;
                    self.segs[0].len -= cut;
                }
                break;
            }
        }
        self.una = ack;
        // After a rewind the peer may acknowledge data we meant to send again.
        self.nxt = crate::seq::max(self.nxt, ack);
        self.start += n as usize;
        if self.una == self.end {
            self.start = 0;
        }
        debug_assert!(self.check(), "after ack {ack}: {self:?}");
        out
    }

    /// Marks segments covered by selective-acknowledgement blocks.
    pub(crate) fn on_sack(&mut self, blocks: &[(u32, u32)]) {
        let mut delivered: Option<Instant> = None;
        for seg in self.segs.iter_mut() {
            if seg.sacked {
                continue;
            }
            if blocks
                .iter()
                .any(|&(s, e)| before_eq(s, seg.seq) && before_eq(seg.end(), e))
            {
                seg.sacked = true;
                seg.lost = false;
                delivered = Some(delivered.map_or(seg.sent_at, |d| d.max(seg.sent_at)));
            }
        }
        if let Some(d) = delivered {
            self.note_delivered(d);
        }
    }

    fn note_delivered(&mut self, sent_at: Instant) {
        self.rack_sent_at = Some(self.rack_sent_at.map_or(sent_at, |r| r.max(sent_at)));
    }

    /// RACK: marks as lost every segment sent before the latest delivered one
    /// that has been out longer than `rtt + reorder`. Returns how many were
    /// newly marked, and the next time this check could mark one.
    pub(crate) fn detect_losses(&mut self, now: Instant, wait: u64) -> (u32, Option<Instant>) {
        let Some(rack) = self.rack_sent_at else {
            return (0, None);
        };
        let mut lost = 0;
        let mut next: Option<Instant> = None;
        for seg in self.segs.iter_mut() {
            if seg.sacked || seg.lost || seg.sent_at >= rack {
                continue;
            }
            let due = seg.sent_at.add_micros(wait);
            if due <= now {
                seg.lost = true;
                lost += 1;
            } else {
                next = Some(next.map_or(due, |n| n.min(due)));
            }
        }
        (lost, next)
    }

    /// Retransmission timeout: everything in flight and not selectively
    /// acknowledged is presumed lost. Returns how many segments that is.
    pub(crate) fn on_timeout(&mut self) -> u32 {
        let mut n = 0;
        for seg in self.segs.iter_mut() {
            if !seg.sacked && !seg.lost {
                seg.lost = true;
                n += 1;
            }
        }
        // Forget old delivery evidence: it would mark fresh retransmissions.
        self.rack_sent_at = None;
        n
    }

    /// When the oldest unacknowledged segment was last sent, for the
    /// retransmission timer.
    pub(crate) fn oldest_outstanding(&self) -> Option<Instant> {
        self.segs
            .iter()
            .filter(|s| !s.sacked && !s.lost)
            .map(|s| s.sent_at)
            .min()
    }

    /// True if something lost waits for retransmission.
    pub(crate) fn has_lost(&self) -> bool {
        self.segs.iter().any(|s| s.lost)
    }

    /// Proposes the next segment to send: the first lost one (split down to
    /// `mss` if needed), else new data within the peer's window and with at
    /// most `max_segs` segments in flight.
    pub(crate) fn next_segment(&mut self, mss: u16, max_segs: usize) -> Option<NextSeg> {
        let mss = mss.max(1);
        if let Some(i) = self.segs.iter().position(|s| s.lost) {
            if self.segs[i].len > mss && self.segs.is_full() {
                // No room to split: forget this segment and everything sent
                // after it, and send that data again as new, cut to the
                // current size. Rare (a line that turned noisy with a full
                // pipe); the receiver discards what it already has.
                self.nxt = self.segs[i].seq;
                self.segs.truncate(i);
            } else {
                if self.segs[i].len > mss {
                    let seg = self.segs[i];
                    let mut rest = seg;
                    rest.seq = seg.seq.wrapping_add(u32::from(mss));
                    rest.len = seg.len - mss;
                    self.segs[i].len = mss;
                    // Cannot fail: checked not full above.
                    let _ = self.segs.insert(i + 1, rest);
                }
                let s = self.segs[i];
                return Some(NextSeg {
                    index: Some(i),
                    seq: s.seq,
                    len: s.len,
                });
            }
        }
        if self.segs.is_full()
            || self.pipe() >= max_segs
            || !before(self.nxt, self.end)
            || !before(self.nxt, self.peer_wnd_end)
        {
            return None;
        }
        let avail = dist(self.nxt, self.end).min(dist(self.nxt, self.peer_wnd_end));
        let len = avail.min(u32::from(mss)) as u16;
        Some(NextSeg {
            index: None,
            seq: self.nxt,
            len,
        })
    }

    /// Records that the proposed segment went out at `now`.
    pub(crate) fn sent(&mut self, next: NextSeg, now: Instant) {
        match next.index {
            Some(i) => {
                if let Some(seg) = self.segs.get_mut(i) {
                    seg.lost = false;
                    seg.sent_at = now;
                    seg.transmissions = seg.transmissions.saturating_add(1);
                }
            }
            None => {
                let end = next.seq.wrapping_add(u32::from(next.len));
                let seg = Seg {
                    seq: next.seq,
                    len: next.len,
                    sent_at: now,
                    // Data below the high-water mark went out before.
                    transmissions: if before(next.seq, self.high) { 2 } else { 1 },
                    sacked: false,
                    lost: false,
                };
                if self.segs.push(seg).is_ok() {
                    self.nxt = end;
                    self.high = crate::seq::max(self.high, end);
                }
            }
        }
    }

    /// True if the proposed segment carries data never sent before.
    pub(crate) fn is_new(&self, next: &NextSeg) -> bool {
        next.index.is_none() && !before(next.seq, self.high)
    }

    /// Segments believed to be on the wire: sent, neither selectively
    /// acknowledged nor presumed lost (RFC 6675's "pipe").
    fn pipe(&self) -> usize {
        self.segs.iter().filter(|s| !s.sacked && !s.lost).count()
    }

    /// True if new data waits and the window and scoreboard allow sending it.
    pub(crate) fn can_send_new(&self, max_segs: usize) -> bool {
        !self.segs.is_full()
            && self.pipe() < max_segs
            && before(self.nxt, self.end)
            && before(self.nxt, self.peer_wnd_end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(tx: &mut TxState<8>, buf: &mut [u8], data: &[u8]) {
        tx.write_with(buf, usize::MAX, |b| {
            b[..data.len()].copy_from_slice(data);
            Some(data.len())
        })
        .unwrap();
    }

    #[test]
    fn sends_within_window_and_acks_free_space() {
        let mut buf = [0u8; 32];
        let mut tx = TxState::<8>::new(1000, 8);
        fill(&mut tx, &mut buf, b"abcdefghijkl");
        let t0 = Instant::from_millis(1);
        let n = tx.next_segment(5, usize::MAX).unwrap();
        assert_eq!((n.seq, n.len), (1000, 5));
        assert_eq!(tx.bytes(&buf, n.seq, n.len), b"abcde");
        tx.sent(n, t0);
        let n = tx.next_segment(5, usize::MAX).unwrap();
        assert_eq!((n.seq, n.len), (1005, 3), "window of 8 bytes");
        tx.sent(n, t0);
        assert!(tx.next_segment(5, usize::MAX).is_none());
        let out = tx.on_ack(Instant::from_millis(11), 1005, 8);
        assert_eq!(out.acked_bytes, 5);
        assert_eq!(out.rtt_sample, Some(10_000));
        let n = tx.next_segment(5, usize::MAX).unwrap();
        assert_eq!((n.seq, n.len), (1008, 4));
        assert_eq!(tx.bytes(&buf, n.seq, n.len), b"ijkl");
    }

    #[test]
    fn lost_segment_is_split_to_the_current_size() {
        let mut buf = [0u8; 32];
        let mut tx = TxState::<8>::new(0, 100);
        fill(&mut tx, &mut buf, &[7u8; 20]);
        let n = tx.next_segment(20, usize::MAX).unwrap();
        tx.sent(n, Instant::ZERO);
        assert_eq!(tx.on_timeout(), 1);
        let n = tx.next_segment(8, usize::MAX).unwrap();
        assert_eq!((n.seq, n.len), (0, 8));
        tx.sent(n, Instant::from_millis(5));
        let n = tx.next_segment(8, usize::MAX).unwrap();
        assert_eq!((n.seq, n.len), (8, 8), "the rest is split too");
    }

    #[test]
    fn rack_marks_earlier_segment_lost_after_a_later_one_is_sacked() {
        let mut buf = [0u8; 32];
        let mut tx = TxState::<8>::new(0, 100);
        fill(&mut tx, &mut buf, &[1u8; 20]);
        let a = tx.next_segment(10, usize::MAX).unwrap();
        tx.sent(a, Instant::from_millis(0));
        let b = tx.next_segment(10, usize::MAX).unwrap();
        tx.sent(b, Instant::from_millis(1));
        tx.on_sack(&[(10, 20)]);
        let (lost, next) = tx.detect_losses(Instant::from_millis(2), 5_000);
        assert_eq!((lost, next), (0, Some(Instant::from_millis(5))));
        let (lost, _) = tx.detect_losses(Instant::from_millis(5), 5_000);
        assert_eq!(lost, 1);
        assert!(tx.has_lost());
    }
}
