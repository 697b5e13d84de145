//! UART timing: bytes leave one after another at `baud / 10` per second.
//!
//! With 8N1 framing a byte is a start bit, eight data bits and a stop bit, so it
//! occupies the line for `10 / baud` seconds. The pacer keeps the time at which the
//! line becomes free and hands out, for each small slice of bytes, the instant the
//! slice has finished crossing the line. Deadlines accumulate from that instant
//! rather than from "now", so late timer wake-ups do not slow the line down, and an
//! idle line earns no credit: after a pause, bytes do not rush out in a burst
//! (beyond [`LATE_TOLERANCE`], the slack that absorbs late wake-ups).
//!
//! Slices are about a millisecond of line time (at least one byte), which is the
//! resolution of tokio's timer; the pipe therefore behaves like a UART at the
//! granularity anyone can observe, without one timer wake-up per byte at high speed.

use std::time::Duration;

use tokio::time::Instant;

/// How many bytes are released at once at `baud`: about one millisecond of line
/// time, and at least one byte.
pub(crate) fn slice_len(baud: u32) -> usize {
    (baud as usize / 10 / 1000).max(1)
}

/// How many bytes the link takes from a paced sender in one read: roughly a UART's
/// transmit FIFO, so the sender feels back-pressure as it would from real hardware.
pub(crate) fn read_len(baud: u32) -> usize {
    (slice_len(baud) * 2).max(16)
}

/// How long `bytes` bytes occupy a line at `baud` with 10 bits per byte.
pub(crate) fn line_time(bytes: usize, baud: u32) -> Duration {
    let nanos = (bytes as u128) * 10 * 1_000_000_000 / u128::from(baud.max(1));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// How far behind the line's own schedule a slice may start and still count as
/// back-to-back with the one before. Timer wake-ups come up to a tick (1 ms) late,
/// more on a busy machine; starting each slice from the late wake-up instead of
/// from the end of the previous one would lose that time on every slice and run
/// the line well below its baud rate. A line idle for longer than this starts
/// afresh, so a pause never earns more than this much of a burst.
pub(crate) const LATE_TOLERANCE: Duration = Duration::from_millis(5);

/// The state of one direction's line.
#[derive(Debug, Default)]
pub(crate) struct Pacer {
    /// When the last byte handed to the line has finished crossing it.
    line_free: Option<Instant>,
}

impl Pacer {
    /// Puts `bytes` bytes on the line at `now` and returns when the last of them
    /// has arrived at the far end.
    pub fn schedule(&mut self, now: Instant, bytes: usize, baud: u32) -> Instant {
        let start = match self.line_free {
            Some(free) if free + LATE_TOLERANCE >= now => free,
            _ => now,
        };
        let done = start + line_time(bytes, baud);
        self.line_free = Some(done);
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_of_line_time_carries_baud_over_ten_bytes() {
        assert_eq!(line_time(960, 9600), Duration::from_secs(1));
        assert_eq!(line_time(11_520, 115_200), Duration::from_secs(1));
        assert_eq!(slice_len(9600), 1);
        assert_eq!(slice_len(115_200), 11);
        assert_eq!(slice_len(921_600), 92);
    }

    #[test]
    fn back_to_back_bytes_queue_behind_each_other_but_idle_time_earns_no_credit() {
        let t0 = Instant::now();
        let mut pacer = Pacer::default();
        let byte = line_time(1, 9600);
        assert_eq!(pacer.schedule(t0, 1, 9600), t0 + byte);
        // Handed over at the same instant, the second byte waits for the first.
        assert_eq!(pacer.schedule(t0, 1, 9600), t0 + byte * 2);
        // A wake-up a little late does not cost line time.
        let late = t0 + byte * 2 + Duration::from_millis(1);
        assert_eq!(pacer.schedule(late, 1, 9600), t0 + byte * 3);
        // After a long pause the line starts from "now", not from the past.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(pacer.schedule(later, 1, 9600), later + byte);
    }
}
