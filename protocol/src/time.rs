//! Time as the protocol sees it: a monotonic instant in microseconds, passed in
//! by the caller.
//!
//! The protocol never reads a clock. Firmware passes its SysTick-derived time,
//! the gateway passes `tokio::time::Instant` converted to microseconds since
//! its start, tests pass simulated time. Only differences between instants
//! matter, so any epoch works as long as it is monotonic.

use core::fmt;
use core::ops::{Add, Sub};
use core::time::Duration;

/// A point in time, in microseconds since an arbitrary epoch chosen by the
/// caller.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant {
    micros: u64,
}

impl Instant {
    /// The epoch.
    pub const ZERO: Instant = Instant { micros: 0 };

    /// An instant `micros` microseconds after the epoch.
    pub const fn from_micros(micros: u64) -> Self {
        Instant { micros }
    }

    /// An instant `millis` milliseconds after the epoch.
    pub const fn from_millis(millis: u64) -> Self {
        Instant {
            micros: millis.saturating_mul(1000),
        }
    }

    /// Microseconds since the epoch.
    pub const fn as_micros(self) -> u64 {
        self.micros
    }

    /// Milliseconds since the epoch (rounded down).
    pub const fn as_millis(self) -> u64 {
        div_rem_small(self.micros, 1000).0
    }

    /// The instant `micros` microseconds later, saturating.
    pub const fn add_micros(self, micros: u64) -> Instant {
        Instant {
            micros: self.micros.saturating_add(micros),
        }
    }

    /// Microseconds elapsed from `earlier` to `self`, or 0 if `earlier` is
    /// later. Cheaper on a microcontroller than [`saturating_since`]
    /// (making a [`Duration`] divides a `u64`).
    ///
    /// [`saturating_since`]: Instant::saturating_since
    pub const fn micros_since(self, earlier: Instant) -> u64 {
        self.micros.saturating_sub(earlier.micros)
    }

    /// Time elapsed from `earlier` to `self`, or zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration::from_micros(self.micros.saturating_sub(earlier.micros))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    // Out of line for the same reason as `micros`.
    #[inline(never)]
    fn add(self, rhs: Duration) -> Instant {
        Instant {
            micros: self.micros.saturating_add(micros(rhs)),
        }
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_since(rhs)
    }
}

impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:06}s",
            self.micros / 1_000_000,
            self.micros % 1_000_000
        )
    }
}

/// Converts a duration to whole microseconds, saturating.
///
/// The same as `u64::try_from(d.as_micros()).unwrap_or(u64::MAX)` without
/// its `u128` arithmetic, which a 32-bit MCU does in software (several
/// hundred bytes of flash at every inlined use). Kept out of line: even
/// the 64-bit multiply is a dozen instructions on such an MCU, and time
/// arithmetic is everywhere in the link.
#[inline(never)]
pub(crate) fn micros(d: Duration) -> u64 {
    d.as_secs()
        .saturating_mul(1_000_000)
        .saturating_add(u64::from(d.subsec_micros()))
}

/// `n / d` and `n % d` for a divisor `d` below 2¹⁶ (not 0), with 32-bit
/// divisions only.
///
/// A `u64` division is a library routine on a 32-bit MCU (close to 1 KiB of
/// flash on a Cortex-M3, which divides only 32-bit numbers in hardware);
/// this is schoolbook division in 16-bit digits, each step a 32-bit
/// division. Exact for every `n`.
pub const fn div_rem_small(n: u64, d: u16) -> (u64, u16) {
    let d = d as u32;
    // The top 32 bits, then two 16-bit digits: every dividend stays below
    // d · 2¹⁶ ≤ 2³², so it fits a u32.
    let hi = (n >> 32) as u32;
    let (q1, r1) = (hi / d, hi % d);
    let mid = (r1 << 16) | ((n >> 16) as u32 & 0xffff);
    let (q2, r2) = (mid / d, mid % d);
    let lo = (r2 << 16) | (n as u32 & 0xffff);
    let (q3, r3) = (lo / d, lo % d);
    (
        ((q1 as u64) << 32) | ((q2 as u64) << 16) | q3 as u64,
        r3 as u16,
    )
}

/// The earlier of two optional deadlines.
pub(crate) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_saturates_like_the_u128_conversion() {
        for d in [
            Duration::ZERO,
            Duration::from_nanos(999),
            Duration::from_nanos(1_999),
            Duration::new(3, 999_999_999),
            Duration::from_micros(u64::MAX),
            Duration::new(u64::MAX / 1_000_000, 551_615_999),
            Duration::new(u64::MAX / 1_000_000, 551_616_000),
            Duration::new(u64::MAX / 1_000_000 + 1, 0),
            Duration::MAX,
        ] {
            assert_eq!(
                micros(d),
                u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
                "{d:?}"
            );
        }
        assert_eq!(
            Instant::from_micros(5) + Duration::from_millis(2),
            Instant::from_micros(2005)
        );
    }

    #[test]
    fn small_division_is_exact() {
        let ns = [
            0u64,
            1,
            9,
            10,
            999,
            1000,
            65_535,
            65_536,
            u64::from(u32::MAX),
            u64::from(u32::MAX) + 1,
            0x1234_5678_9abc_def0,
            u64::MAX - 1,
            u64::MAX,
        ];
        for n in ns {
            for d in [1u16, 2, 3, 7, 10, 1000, 65_535] {
                assert_eq!(
                    div_rem_small(n, d),
                    (n / u64::from(d), (n % u64::from(d)) as u16),
                    "{n} / {d}"
                );
            }
        }
        // And a spread of values (a fixed xorshift sequence).
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let d = (x >> 48) as u16 | 1;
            let n = x.rotate_left(d.into()) >> (x % 64);
            assert_eq!(
                div_rem_small(n, d),
                (n / u64::from(d), (n % u64::from(d)) as u16)
            );
        }
        assert_eq!(Instant::from_micros(12_345_678).as_millis(), 12_345);
        assert_eq!(
            Instant::from_micros(7).micros_since(Instant::from_micros(9)),
            0
        );
        assert_eq!(
            Instant::from_micros(u64::MAX - 1).add_micros(5).as_micros(),
            u64::MAX
        );
    }
}
