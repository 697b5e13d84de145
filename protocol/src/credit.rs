//! Per-request flow control by credit.
//!
//! The link's window stops a sender when the receiver's buffer is full, but
//! that would stall every request on the link behind one slow consumer. So
//! streams inside a link also run on credit: a command's output, a push's
//! writes and a pull's data may only be sent as far as the receiving side
//! granted ([`Body::Credit`](crate::message::Body::Credit)). A device busy
//! erasing flash simply grants nothing and the pusher pauses, while pings and
//! other commands keep flowing.

/// The sending side's view: how much it may still send.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendCredit {
    available: u64,
}

impl SendCredit {
    /// Starts with `initial` bytes of credit.
    pub const fn new(initial: u32) -> Self {
        SendCredit {
            available: initial as u64,
        }
    }

    /// Bytes that may be sent now.
    pub fn available(&self) -> u64 {
        self.available
    }

    /// Takes up to `want` bytes of credit and returns how many were taken.
    pub fn take(&mut self, want: usize) -> usize {
        let n = (want as u64).min(self.available);
        self.available -= n;
        n as usize
    }

    /// Adds credit the receiver granted.
    pub fn grant(&mut self, n: u32) {
        self.available = self.available.saturating_add(u64::from(n));
    }
}

/// The receiving side's view: grants more once enough was consumed, so
/// credits go out in a few large messages rather than one per chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiveCredit {
    window: u32,
    unannounced: u32,
    received: u64,
    granted: u64,
}

impl ReceiveCredit {
    /// A receiver that keeps `window` bytes of credit outstanding; the
    /// initial grant (sent with the request) is `window`.
    pub const fn new(window: u32) -> Self {
        ReceiveCredit {
            window,
            unannounced: 0,
            received: 0,
            granted: window as u64,
        }
    }

    /// The initial grant.
    pub fn initial(&self) -> u32 {
        self.window
    }

    /// Records `n` bytes received. Returns false if the sender exceeded its
    /// credit (a protocol violation the caller should report).
    pub fn received(&mut self, n: usize) -> bool {
        self.received += n as u64;
        self.received <= self.granted
    }

    /// Records `n` bytes consumed (written to disk, printed). Returns a
    /// credit to send once half the window was consumed.
    pub fn consumed(&mut self, n: usize) -> Option<u32> {
        self.unannounced = self
            .unannounced
            .saturating_add(n.min(u32::MAX as usize) as u32);
        if self.unannounced >= self.window / 2 {
            let g = core::mem::take(&mut self.unannounced);
            self.granted += u64::from(g);
            Some(g)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_stops_at_zero_and_resumes_on_grant() {
        let mut c = SendCredit::new(10);
        assert_eq!(c.take(6), 6);
        assert_eq!(c.take(6), 4);
        assert_eq!(c.take(6), 0);
        c.grant(3);
        assert_eq!(c.take(6), 3);
    }

    #[test]
    fn receiver_grants_in_halves_and_detects_overrun() {
        let mut r = ReceiveCredit::new(100);
        assert!(r.received(60));
        assert_eq!(r.consumed(40), None);
        assert_eq!(r.consumed(20), Some(60));
        assert!(r.received(100));
        assert!(!r.received(1), "160 granted, 161 received");
    }
}
