//! Adapting the segment size to the error rate of the line.
//!
//! On a clean line big segments waste the least on headers. On a noisy one a
//! big segment almost never arrives intact: at 1 % of bytes corrupted, a 1 KiB
//! frame survives with probability 0.99^1024 ≈ 3·10⁻⁵. The sizer estimates the
//! per-byte loss rate λ from the frames it sees lost, and picks the payload `n`
//! that maximises goodput `n/(n+h) · (1-λ)^(n+h)` for a per-frame overhead `h`,
//! which for small λ is `n ≈ √(h/λ)`. The counters decay, so when the line
//! becomes clean again λ falls and segments grow back.

/// Per-frame overhead assumed by the model: SEG header with sequence number,
/// CRC, COBS code byte, delimiters, and a message record header.
const OVERHEAD: u32 = 20;
/// Decay horizon: counters are halved once this many frame bytes were sent.
/// It keeps them small: `u32` counters and arithmetic (a `u64` division is
/// a library routine on a 32-bit MCU).
const HORIZON: u32 = 64 * 1024;

#[derive(Debug, Clone)]
pub(crate) struct SegmentSizer {
    min: u16,
    max: u16,
    current: u16,
    adaptive: bool,
    sent_bytes: u32,
    lost: u32,
}

impl SegmentSizer {
    pub(crate) fn new(min: u16, max: u16, adaptive: bool) -> Self {
        let min = min.min(max).max(1);
        SegmentSizer {
            min,
            max,
            current: max,
            adaptive,
            sent_bytes: 0,
            lost: 0,
        }
    }

    /// The payload size to use for the next segment.
    pub(crate) fn current(&self) -> u16 {
        self.current
    }

    /// True while recent frames were lost: the link then keeps fewer
    /// segments in flight, so losses leave few holes to repair and every
    /// hole fits in the receiver's ranges and the SACK blocks.
    pub(crate) fn lossy(&self) -> bool {
        self.lost > 0
    }

    /// Records a data frame of `frame_len` bytes put on the wire.
    pub(crate) fn on_sent(&mut self, frame_len: usize) {
        let frame_len = u32::try_from(frame_len).unwrap_or(u32::MAX);
        self.sent_bytes = self.sent_bytes.saturating_add(frame_len);
        if self.sent_bytes > HORIZON {
            self.sent_bytes /= 2;
            self.lost /= 2;
        }
        self.update();
    }

    /// Records `count` data frames found lost.
    pub(crate) fn on_lost(&mut self, count: u32) {
        self.lost = self.lost.saturating_add(count);
        self.update();
    }

    fn update(&mut self) {
        if !self.adaptive {
            return;
        }
        // n = sqrt(h / λ) with λ = lost / sent_bytes; no loss, no limit.
        let best = OVERHEAD
            .saturating_mul(self.sent_bytes.max(1))
            .checked_div(self.lost)
            .map_or(u32::from(self.max), isqrt);
        // Not `clamp`, which panics if min > max (here when max is 0) and
        // keeps `Debug` of the integer in firmware for its message.
        self.current = best.max(u32::from(self.min)).min(u32::from(self.max)) as u16;
    }
}

/// Integer square root (floor), by Newton's method.
pub(crate) fn isqrt(n: u32) -> u32 {
    if n < 2 {
        return n;
    }
    let mut x = n;
    let mut y = x.div_ceil(2);
    while y < x {
        x = y;
        y = (x + n / x) / 2;
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isqrt_is_exact_floor() {
        for n in [
            0u32,
            1,
            2,
            3,
            4,
            15,
            16,
            17,
            1 << 30,
            u32::MAX - 1,
            u32::MAX,
        ] {
            let r = isqrt(n);
            assert!(r.checked_mul(r).is_some_and(|sq| sq <= n));
            assert!((r + 1).checked_mul(r + 1).is_none_or(|sq| sq > n));
        }
    }

    #[test]
    fn shrinks_under_loss_and_grows_back_when_clean() {
        let mut s = SegmentSizer::new(32, 4096, true);
        assert_eq!(s.current(), 4096);
        // About 1 % byte errors: roughly one loss every 100 bytes sent.
        for _ in 0..200 {
            s.on_sent(80);
            if s.sent_bytes % 100 < 80 {
                s.on_lost(1);
            }
        }
        assert!(s.current() < 100, "{}", s.current());
        for _ in 0..4000 {
            s.on_sent(usize::from(s.current()) + 20);
        }
        assert_eq!(s.current(), 4096);
    }
}
