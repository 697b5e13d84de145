//! A bounded ring that keeps the last N bytes written to it.
//!
//! When the link to the gateway is lost, a command goes on running but nobody
//! forwards its output any more. Keeping all of it would be unbounded memory,
//! dropping all of it would lose the part a person looks at first (the end,
//! where the error usually is). So each stream keeps its last N bytes, plus a
//! count of what was dropped so the report can say "… 12 345 bytes omitted".

use std::collections::VecDeque;

/// Keeps the last `capacity` bytes pushed into it and counts the rest.
#[derive(Debug, Clone)]
pub struct TailRing {
    buf: VecDeque<u8>,
    capacity: usize,
    dropped: u64,
}

impl TailRing {
    /// A ring that keeps at most `capacity` bytes. A capacity of zero keeps
    /// nothing and only counts.
    pub fn new(capacity: usize) -> Self {
        Self {
            // Grow on demand: most commands print far less than the limit.
            buf: VecDeque::new(),
            capacity,
            dropped: 0,
        }
    }

    /// Appends `data`, dropping the oldest bytes beyond the capacity.
    pub fn push(&mut self, data: &[u8]) {
        if data.len() >= self.capacity {
            // The new data alone fills the ring: everything before it goes.
            let skip = data.len() - self.capacity;
            self.dropped += (self.buf.len() + skip) as u64;
            self.buf.clear();
            self.buf.extend(&data[skip..]);
            return;
        }
        let overflow = (self.buf.len() + data.len()).saturating_sub(self.capacity);
        if overflow > 0 {
            self.buf.drain(..overflow);
            self.dropped += overflow as u64;
        }
        self.buf.extend(data);
    }

    /// Number of bytes held.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True when no byte is held.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Number of bytes pushed but no longer held since the last [`take`](Self::take).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The maximum number of bytes held.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Returns the held bytes (oldest first) and the dropped count, and empties
    /// the ring so the next tail starts fresh.
    pub fn take(&mut self) -> (Vec<u8>, u64) {
        let data: Vec<u8> = self.buf.drain(..).collect();
        let dropped = std::mem::take(&mut self.dropped);
        (data, dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::TailRing;

    #[test]
    fn keeps_everything_below_capacity() {
        let mut ring = TailRing::new(8);
        ring.push(b"abc");
        ring.push(b"de");
        assert_eq!(ring.take(), (b"abcde".to_vec(), 0));
        assert!(ring.is_empty());
    }

    #[test]
    fn keeps_only_the_last_bytes_and_counts_the_rest() {
        let mut ring = TailRing::new(4);
        ring.push(b"abc");
        ring.push(b"def");
        assert_eq!(ring.take(), (b"cdef".to_vec(), 2));
        ring.push(b"0123456789");
        assert_eq!(ring.take(), (b"6789".to_vec(), 6));
    }

    #[test]
    fn zero_capacity_only_counts() {
        let mut ring = TailRing::new(0);
        ring.push(b"abc");
        assert_eq!(ring.take(), (Vec::new(), 3));
    }
}
