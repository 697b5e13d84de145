//! This board's boot id and serial number: the record in reset-surviving
//! RAM, the chip's unique id, and oscillator jitter.
//!
//! The record lives in the last 16 bytes of SRAM, which `memory.x` keeps out
//! of every section (see there for why that makes it survive a reset). See
//! [`corral_board_common::boot_id`] for the record's logic. The STM32F401 has
//! no random number generator, so:
//!
//! - **Soft reset** (`SYSRESETREQ` from [`crate::reset`] or the panic
//!   handler, the NRST button, a reset from the debugger): SRAM survives,
//!   the counter is incremented, so the id is guaranteed to differ from the
//!   previous boot's.
//! - **Power cycle** (USB unplugged): SRAM comes up with noisy, partly
//!   chip-specific content, so the record is invalid and the counter is
//!   seeded from entropy: those 16 bytes of power-up SRAM, the chip's 96-bit
//!   unique id (which makes two boards differ, not two boots), and the
//!   timing of the LSI oscillator against the PLL (`time::lsi_jitter`).
//!   Likely different every time, not guaranteed; the protocol detects
//!   resets by other means too.

use core::ptr::{self, addr_of_mut};

use corral_board_common::boot_id::{BootRecord, EntropyPool};
use corral_board_common::hex::u32_hex;

use crate::time;

extern "C" {
    /// Start of the 16 reserved bytes at the top of SRAM (from `memory.x`).
    static mut _corral_boot_record: [u32; 4];
}

/// The 96-bit unique device id (RM0368 section 24.2, "Unique device ID
/// register"), three words from `U_ID` at 0x1FFF_7A10: wafer position, lot
/// and wafer numbers. Factory-programmed, read-only, in system memory.
const UID_BASE: usize = 0x1fff_7a10;

/// The chip's unique id as three words, lowest address first.
pub fn unique_id() -> [u32; 3] {
    let mut uid = [0u32; 3];
    for (i, word) in uid.iter_mut().enumerate() {
        // SAFETY: U_ID is three readable words of system memory on every
        // STM32F401; reading them has no side effects.
        *word = unsafe { ptr::read_volatile((UID_BASE as *const u32).add(i)) };
    }
    uid
}

/// Characters of [`serial_number`]'s text.
pub const SERIAL_LEN: usize = 24;

/// The unique id as 24 lowercase hex digits, `U_ID[31:0]` first, then
/// `U_ID[63:32]`, then `U_ID[95:64]`: the board's serial number in the
/// handshake.
pub fn serial_number() -> [u8; SERIAL_LEN] {
    let mut text = [0u8; SERIAL_LEN];
    for (chunk, word) in text.chunks_exact_mut(8).zip(unique_id()) {
        chunk.copy_from_slice(&u32_hex(word));
    }
    text
}

/// Reads the previous boot's record, derives this boot's and stores it.
/// Borrows TIM5 for the jitter: call it before [`time::start_clock`].
pub(crate) fn init() -> u32 {
    // Taking the address reads nothing. The symbol is the reserved area of
    // SRAM, 16 bytes, which no Rust object occupies and nothing else in the
    // firmware touches.
    let record = addr_of_mut!(_corral_boot_record).cast::<u32>();
    let mut saved = [0u32; 4];
    for (i, word) in saved.iter_mut().enumerate() {
        // SAFETY: `i < 4`, inside the reserved area; volatile because the
        // content comes from before the reset, not from this program.
        *word = unsafe { ptr::read_volatile(record.add(i)) };
    }

    let mut pool = EntropyPool::new();
    // All four words: the fourth is not part of the record, so after a power
    // cycle it is just more power-up noise.
    for word in saved.into_iter().chain(unique_id()) {
        pool.add(word);
    }
    time::lsi_jitter(|sample| pool.add(sample));

    let [a, b, c, _] = saved;
    let this_boot = BootRecord::next(BootRecord::from_words([a, b, c]), pool.finish());
    for (i, word) in this_boot.to_words().into_iter().enumerate() {
        // SAFETY: `i < 3`, inside the reserved area.
        unsafe { ptr::write_volatile(record.add(i), word) };
    }
    this_boot.boot_id()
}
