//! This board's boot id: the record in reset-surviving RAM plus timer jitter.
//!
//! The record lives in the last 16 bytes of SRAM, which `memory.x` keeps out
//! of every section (see there for why that makes it survive a reset). See
//! [`corral_board_common::boot_id`] for the record's logic.
//!
//! How unique the id is on this board:
//!
//! - **Soft reset** (`SYSRESETREQ` from [`crate::reset`] or the panic
//!   handler, QEMU's `system_reset`): RAM survives, the counter is
//!   incremented, so the id is guaranteed to differ from the previous boot's.
//! - **Fresh QEMU process**: RAM starts zeroed, so the counter is seeded from
//!   entropy alone. The only entropy is jitter: SysTick runs in QEMU's
//!   virtual clock, which follows the host's real time, so how long SysTick
//!   takes to start counting after it is enabled (up to a few ms, decided by
//!   when QEMU's main loop runs its timer callback) and how many ticks a
//!   stretch of boot code takes vary with the host (scheduling, MMIO exits). Measured fresh boots gave distinct ids (see the
//!   boards README), but nothing guarantees it; the protocol detects resets by
//!   other means too.
//! - **Silicon**: power-up SRAM content is also mixed in, which on real parts
//!   is noisy; execution timing there is nearly deterministic.

use core::ptr::{self, addr_of_mut};

use corral_board_common::boot_id::{BootRecord, EntropyPool};

use crate::time;

extern "C" {
    /// Start of the 16 reserved bytes at the top of SRAM (from `memory.x`).
    static mut _corral_boot_record: [u32; 4];
}

/// Rounds of jitter sampling. Each takes a few microseconds under QEMU.
const JITTER_ROUNDS: u32 = 32;

/// Reads the previous boot's record, derives this boot's and stores it.
/// Needs the SysTick clock running (for the jitter); `clock_start_polls` is
/// what [`time::start_clock`] returned, itself a jitter sample.
pub(crate) fn init(clock_start_polls: u32) -> u32 {
    // Taking the address reads nothing. The symbol is the reserved area of
    // SRAM, 16 bytes, which no Rust object occupies and nothing else in the
    // firmware touches.
    let record = addr_of_mut!(_corral_boot_record).cast::<u32>();
    let mut saved = [0u32; BootRecord::WORDS];
    for (i, word) in saved.iter_mut().enumerate() {
        // SAFETY: `i < 3`, inside the reserved area; volatile because the
        // content comes from before the reset, not from this program.
        *word = unsafe { ptr::read_volatile(record.add(i)) };
    }

    let mut pool = EntropyPool::new();
    pool.add(clock_start_polls);
    for word in saved {
        pool.add(word);
    }
    for round in 0..JITTER_ROUNDS {
        let before = time::raw_ticks();
        // Spin for a round-dependent while so that consecutive samples are
        // not in lockstep; under QEMU the host time this takes varies.
        cortex_m::asm::delay(64 + 8 * round);
        let after = time::raw_ticks();
        pool.add(before.wrapping_sub(after) ^ (after << 16));
    }

    let this_boot = BootRecord::next(BootRecord::from_words(saved), pool.finish());
    for (i, word) in this_boot.to_words().into_iter().enumerate() {
        // SAFETY: as above.
        unsafe { ptr::write_volatile(record.add(i), word) };
    }
    this_boot.boot_id()
}
