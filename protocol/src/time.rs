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
}
