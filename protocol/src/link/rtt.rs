//! Round-trip time estimation and the retransmission timeout (RFC 6298).
//!
//! Times are whole microseconds (`u64`), not `Duration`s: making a
//! `Duration` from microseconds divides a `u64`, a library routine on a
//! 32-bit MCU.
//!
//! Samples include the time a frame spends being clocked out on a slow line,
//! so on a UART the estimate grows with the frame size on its own; no baud rate
//! needs to be configured for the timeout to be right.

use core::time::Duration;

/// Smoothed RTT, its variation, and the current timeout with backoff.
#[derive(Debug, Clone)]
pub(crate) struct RttEstimator {
    srtt: u64,
    rttvar: u64,
    min_rtt: u64,
    backoff: u32,
    rto_min: u64,
    rto_max: u64,
    rto_initial: u64,
}

impl RttEstimator {
    pub(crate) fn new(rto_initial: Duration, rto_min: Duration, rto_max: Duration) -> Self {
        RttEstimator {
            srtt: 0,
            rttvar: 0,
            min_rtt: u64::MAX,
            backoff: 0,
            rto_min: crate::time::micros(rto_min),
            rto_max: crate::time::micros(rto_max),
            rto_initial: crate::time::micros(rto_initial),
        }
    }

    /// Feeds one sample (µs) from a segment that was sent exactly once
    /// (Karn).
    pub(crate) fn sample(&mut self, rtt: u64) {
        let r = rtt.max(1);
        if self.srtt == 0 {
            self.srtt = r;
            self.rttvar = r / 2;
        } else {
            let diff = self.srtt.abs_diff(r);
            self.rttvar = (3 * self.rttvar + diff) / 4;
            self.srtt = (7 * self.srtt + r) / 8;
        }
        self.min_rtt = self.min_rtt.min(r);
        self.backoff = 0;
    }

    /// Forgets the backoff: the peer acknowledged new data, so the path
    /// works even if no clean sample was possible (Karn's rule excludes
    /// retransmitted segments, and on a noisy line most are).
    pub(crate) fn reset_backoff(&mut self) {
        self.backoff = 0;
    }

    /// Doubles the timeout after a retransmission timeout.
    pub(crate) fn back_off(&mut self) {
        self.backoff = (self.backoff + 1).min(16);
    }

    /// The current retransmission timeout (µs), backoff included.
    pub(crate) fn rto(&self) -> u64 {
        let base = if self.srtt == 0 {
            self.rto_initial
        } else {
            // Not `clamp`: it panics if min > max (a configuration nobody
            // checks), and its panic message keeps `u64`'s `Debug` in
            // firmware.
            (self.srtt + (4 * self.rttvar).max(1000))
                .max(self.rto_min)
                .min(self.rto_max)
        };
        let backed = base.saturating_mul(1u64 << self.backoff.min(16));
        backed.min(self.rto_max.max(self.rto_initial))
    }

    /// Smoothed RTT (µs), or `None` before the first sample.
    pub(crate) fn srtt(&self) -> Option<u64> {
        (self.srtt != 0).then_some(self.srtt)
    }

    /// How long after a later segment was delivered an earlier one counts as
    /// lost rather than reordered (RACK's reordering window: a quarter of the
    /// minimum RTT), in µs.
    pub(crate) fn reorder_window(&self) -> u64 {
        if self.min_rtt == u64::MAX {
            self.rto_min / 4
        } else {
            self.min_rtt / 4
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_follows_samples_and_backs_off() {
        let ms = Duration::from_millis;
        let mut r = RttEstimator::new(ms(1000), ms(50), ms(4000));
        assert_eq!(r.rto(), 1_000_000);
        for _ in 0..20 {
            r.sample(100_000);
        }
        let settled = r.rto();
        assert!((100_000..200_000).contains(&settled), "{settled}");
        r.back_off();
        assert_eq!(r.rto(), settled * 2);
        for _ in 0..20 {
            r.back_off();
        }
        assert_eq!(r.rto(), 4_000_000);
    }
}
