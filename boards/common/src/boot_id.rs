//! Boot identifiers that change on every reset.
//!
//! The protocol numbers each session from the device's boot id, and the
//! gateway shows it, so a device that rebooted is noticed at once. This module
//! is the hardware-independent half of producing one; a board supplies two
//! things:
//!
//! 1. **A few words of RAM that survive a reset** and that neither the startup
//!    code nor a loader initialises (on the LM3S6965 board: the last 16 bytes
//!    of SRAM, placed outside every ELF segment). They hold a [`BootRecord`]:
//!    a counter plus a check word, so garbage left by a power-up is told apart
//!    from a record written by the previous boot.
//! 2. **Whatever entropy it has**, folded into an [`EntropyPool`]: timer
//!    jitter, a hardware RNG, a unique chip id.
//!
//! On each boot the board reads the words, calls [`BootRecord::next`] and
//! writes the result back. If the previous record is valid, its counter is
//! incremented; otherwise (cold start, RAM cleared, corrupted record) a new
//! counter is seeded from the entropy. The boot id is a bijective mix of the
//! counter ([`mix32`]), so:
//!
//! - consecutive boots that keep RAM (a soft reset through `SYSRESETREQ`, a
//!   watchdog, a reset pin) are **guaranteed** different ids, for 2^32 boots;
//! - after a power cycle (or a fresh QEMU process, which zeroes RAM) the id is
//!   only as unique as the board's entropy. The protocol does not rely on it
//!   alone to detect resets.
//!
//! ```
//! use corral_board_common::boot_id::{BootRecord, EntropyPool};
//!
//! // First boot: RAM holds zeros (or garbage), so no valid record.
//! let saved = [0u32; BootRecord::WORDS];
//! let mut pool = EntropyPool::new();
//! pool.add(0x1234); // e.g. timer jitter
//! let first = BootRecord::next(BootRecord::from_words(saved), pool.finish());
//!
//! // The board writes `first.to_words()` back; after a soft reset it reads them.
//! let second = BootRecord::next(BootRecord::from_words(first.to_words()), 0);
//! assert_eq!(second.counter(), first.counter().wrapping_add(1));
//! assert_ne!(second.boot_id(), first.boot_id());
//! ```

/// Marks a valid record ("Crrl" in ASCII).
const MAGIC: u32 = 0x4372_726c;
/// Mixed into the check word so that a record of all-equal words (all zeros,
/// all ones: typical fill patterns) is never valid.
const CHECK_KEY: u32 = 0x5a17_c3e9;
/// Offsets the counter before mixing, so that counter 0 does not map to id 0.
const ID_OFFSET: u32 = 0x9e37_79b9;

/// What a board keeps in reset-surviving RAM between boots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootRecord {
    counter: u32,
}

impl BootRecord {
    /// Number of 32-bit words a board must reserve for the record.
    pub const WORDS: usize = 3;

    /// Validates the words left in RAM by the previous boot. Returns `None`
    /// when they do not hold a record (cold start, garbage, corruption).
    pub fn from_words(words: [u32; Self::WORDS]) -> Option<BootRecord> {
        let [magic, counter, check] = words;
        (magic == MAGIC && check == check_word(counter)).then_some(BootRecord { counter })
    }

    /// The words to store in RAM for the next boot to read.
    pub fn to_words(self) -> [u32; Self::WORDS] {
        [MAGIC, self.counter, check_word(self.counter)]
    }

    /// The record for this boot: the previous counter plus one if there was a
    /// valid record, else a counter seeded from `entropy`.
    pub fn next(previous: Option<BootRecord>, entropy: u32) -> BootRecord {
        let counter = match previous {
            Some(prev) => prev.counter.wrapping_add(1),
            None => entropy,
        };
        BootRecord { counter }
    }

    /// The raw boot counter (how many soft resets since the record was seeded,
    /// plus the seed).
    pub fn counter(self) -> u32 {
        self.counter
    }

    /// This boot's id: a bijective mix of the counter, so different counters
    /// always give different ids and neighbouring counters look unrelated.
    pub fn boot_id(self) -> u32 {
        mix32(self.counter.wrapping_add(ID_OFFSET))
    }
}

fn check_word(counter: u32) -> u32 {
    !counter ^ CHECK_KEY
}

/// Folds entropy samples (timer readings, jitter) into one word.
///
/// Every sample changes the result: each step is a bijection of the state
/// for a fixed sample, so no sample is ever cancelled out entirely.
#[derive(Clone, Copy, Debug, Default)]
pub struct EntropyPool {
    state: u32,
}

impl EntropyPool {
    /// An empty pool.
    pub const fn new() -> Self {
        EntropyPool { state: 0 }
    }

    /// Adds one sample.
    pub fn add(&mut self, sample: u32) {
        self.state = mix32(self.state.rotate_left(7) ^ sample);
    }

    /// The pooled value.
    pub fn finish(self) -> u32 {
        self.state
    }
}

/// The 32-bit finaliser of MurmurHash3: a bijection on `u32` whose output bits
/// each depend on every input bit.
pub const fn mix32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x85eb_ca6b);
    x ^= x >> 13;
    x = x.wrapping_mul(0xc2b2_ae35);
    x ^= x >> 16;
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn zeroed_or_filled_ram_is_not_a_record() {
        for fill in [0u32, u32::MAX, 0xdead_beef, MAGIC] {
            assert_eq!(
                BootRecord::from_words([fill; BootRecord::WORDS]),
                None,
                "{fill:#x}"
            );
        }
    }

    #[test]
    fn a_written_record_reads_back() {
        let rec = BootRecord::next(None, 0x1357_9bdf);
        assert_eq!(BootRecord::from_words(rec.to_words()), Some(rec));
    }

    #[test]
    fn any_corrupted_word_invalidates_the_record() {
        let words = BootRecord::next(None, 77).to_words();
        for i in 0..BootRecord::WORDS {
            for bit in 0..32 {
                let mut bad = words;
                bad[i] ^= 1 << bit;
                assert_eq!(BootRecord::from_words(bad), None, "word {i} bit {bit}");
            }
        }
    }

    #[test]
    fn cold_start_seeds_the_counter_from_entropy() {
        let a = BootRecord::next(None, 1);
        let b = BootRecord::next(None, 2);
        assert_ne!(a.boot_id(), b.boot_id());
    }

    #[test]
    fn soft_resets_never_repeat_an_id() {
        let mut seen = HashSet::new();
        // Start near the wrap so the chain also crosses u32::MAX -> 0.
        let mut rec = BootRecord::next(None, u32::MAX - 5_000);
        for _ in 0..10_000 {
            assert!(
                seen.insert(rec.boot_id()),
                "id {:#x} repeated",
                rec.boot_id()
            );
            let saved = BootRecord::from_words(rec.to_words());
            assert!(saved.is_some());
            rec = BootRecord::next(saved, 0);
        }
    }

    #[test]
    fn counter_zero_does_not_give_id_zero() {
        assert_ne!(BootRecord::next(None, 0).boot_id(), 0);
    }

    #[test]
    fn entropy_pool_depends_on_every_sample() {
        let pooled = |samples: &[u32]| {
            let mut pool = EntropyPool::new();
            for &s in samples {
                pool.add(s);
            }
            pool.finish()
        };
        let base = pooled(&[1, 2, 3, 4]);
        assert_ne!(base, pooled(&[1, 2, 3, 5]));
        assert_ne!(base, pooled(&[0, 2, 3, 4]));
        assert_ne!(base, pooled(&[2, 1, 3, 4]));
    }

    #[test]
    fn mix32_is_injective_on_a_range() {
        let ids: HashSet<u32> = (0..100_000u32).map(mix32).collect();
        assert_eq!(ids.len(), 100_000);
    }
}
