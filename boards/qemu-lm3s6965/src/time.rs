//! Time: a monotonic microsecond clock and a one-shot deadline timer.
//!
//! - **Clock.** SysTick counts the core clock with a period of exactly one
//!   second (`SYSCLK_HZ` ticks); its interrupt counts seconds, and
//!   [`now_micros`] adds the ticks elapsed in the current second. One
//!   interrupt a second is the only periodic wake-up the board has.
//! - **Deadline timer.** General-purpose timer 0 (sub-timer A) in 32-bit
//!   one-shot mode raises an interrupt after a given number of ticks; its
//!   only job is to end a `wfi` at a deadline (see `Lm3s6965::sleep_until`).
//!   SysTick cannot do that too without being restarted, which would lose
//!   ticks from the clock. QEMU models this timer's interrupt (not reading its
//!   count), which is all this needs.
//!
//! Both run in QEMU's virtual clock, which follows the host's real time.

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::{NVIC, SCB, SYST};
use cortex_m_rt::{exception, interrupt};

use crate::mmio::Reg;
use crate::vectors::{interrupt, Interrupt};
use crate::SYSCLK_HZ;

/// SysTick counts `SYST_RELOAD + 1` ticks per period: one second.
const SYST_RELOAD: u32 = SYSCLK_HZ - 1;
const _: () = assert!(SYST_RELOAD <= 0x00ff_ffff, "SysTick is a 24-bit counter");

/// The conversions below work in units of 2 µs so that they stay in integer
/// arithmetic at 12.5 MHz (25 ticks per 2 µs).
const TICKS_PER_2_MICROS: u32 = SYSCLK_HZ / 500_000;
const _: () = assert!(SYSCLK_HZ.is_multiple_of(500_000));
const _: () = assert!(SYST_RELOAD.checked_mul(2).is_some());

/// Longest single arming of the deadline timer, in µs. Longer waits are armed
/// again after it expires. Must keep the tick count within 32 bits.
const MAX_ARM_MICROS: u64 = 300_000_000;
const _: () = assert!(MAX_ARM_MICROS * TICKS_PER_2_MICROS as u64 / 2 < u32::MAX as u64);

/// Whole seconds since boot, counted by the SysTick interrupt.
static SECONDS: AtomicU32 = AtomicU32::new(0);

const GPTM0: usize = 0x4003_0000;
// SAFETY: general-purpose timer 0 registers from the LM3S6965 data sheet.
const GPTM_CFG: Reg = unsafe { Reg::at(GPTM0) };
const GPTM_TAMR: Reg = unsafe { Reg::at(GPTM0 + 0x04) };
const GPTM_CTL: Reg = unsafe { Reg::at(GPTM0 + 0x0c) };
const GPTM_IMR: Reg = unsafe { Reg::at(GPTM0 + 0x18) };
const GPTM_ICR: Reg = unsafe { Reg::at(GPTM0 + 0x24) };
const GPTM_TAILR: Reg = unsafe { Reg::at(GPTM0 + 0x28) };

const CFG_32_BIT: u32 = 0;
const TAMR_ONE_SHOT: u32 = 1;
const CTL_TAEN: u32 = 1;
const INT_TATO: u32 = 1;

/// Polls of the counter (each a few hundred core cycles apart) before
/// `start_clock` gives up waiting for the first reload. Far more than QEMU
/// needs (a few thousand at most); silicon needs one.
const MAX_START_POLLS: u32 = 1_000_000;

/// Starts SysTick as the clock and waits until it counts. Returns how many
/// polls that took, which under QEMU varies from boot to boot (an entropy
/// sample for the boot id).
///
/// The wait matters under QEMU: after the counter is enabled it reads 0 until
/// QEMU's timer callback first reloads it, which takes up to a few
/// milliseconds of host time. A 0 there would look like the end of a period
/// to [`now_micros`], and the clock would jump back once counting starts.
pub(crate) fn start_clock(mut syst: SYST) -> u32 {
    syst.disable_counter();
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(SYST_RELOAD);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
    let mut polls = 0;
    while SYST::get_current() == 0 && polls < MAX_START_POLLS {
        // Space the polls out: each read of the counter is an exit from
        // QEMU's translated code that competes with the thread that runs
        // the timer callback we are waiting for.
        cortex_m::asm::delay(200);
        polls += 1;
    }
    polls
}

/// Microseconds since the clock started at boot.
pub fn now_micros() -> u64 {
    critical_section::with(|_| {
        let mut seconds = SECONDS.load(Ordering::Relaxed);
        let mut current = SYST::get_current();
        if SCB::is_pendst_pending() {
            // The counter wrapped but the interrupt has not counted it yet
            // (we are in a critical section). `current` may be from before or
            // after the wrap, so read it again: now it is after.
            seconds = seconds.wrapping_add(1);
            current = SYST::get_current();
        }
        let elapsed_ticks = SYST_RELOAD - current.min(SYST_RELOAD);
        u64::from(seconds) * 1_000_000 + u64::from(elapsed_ticks * 2 / TICKS_PER_2_MICROS)
    })
}

/// A fast-changing timer reading for entropy gathering.
pub(crate) fn raw_ticks() -> u32 {
    SYST::get_current()
}

/// Sets up the deadline timer, stopped.
pub(crate) fn init_deadline_timer() {
    GPTM_CTL.write(0);
    GPTM_CFG.write(CFG_32_BIT);
    GPTM_TAMR.write(TAMR_ONE_SHOT);
    GPTM_ICR.write(INT_TATO);
    GPTM_IMR.write(INT_TATO);
    // SAFETY: the handler only acknowledges the timer's own interrupt.
    unsafe { NVIC::unmask(Interrupt::TIMER0A) };
}

/// Arms the deadline timer to interrupt `micros` µs from now (at most
/// [`MAX_ARM_MICROS`]; rounded up to whole ticks so it never fires early).
pub(crate) fn arm_deadline(micros: u64) {
    let ticks = (micros.min(MAX_ARM_MICROS) * u64::from(TICKS_PER_2_MICROS)).div_ceil(2);
    // A one-shot timer reloads when it is enabled, so stop it first.
    GPTM_CTL.write(0);
    GPTM_TAILR.write((ticks as u32).max(1));
    GPTM_ICR.write(INT_TATO);
    GPTM_CTL.write(CTL_TAEN);
}

/// Stops the deadline timer and drops a timeout it may have signalled.
pub(crate) fn disarm_deadline() {
    GPTM_CTL.write(0);
    GPTM_ICR.write(INT_TATO);
}

#[exception]
fn SysTick() {
    SECONDS.fetch_add(1, Ordering::Relaxed);
}

#[interrupt]
fn TIMER0A() {
    // Waking the CPU from `wfi` is the whole purpose; acknowledge and return.
    GPTM_ICR.write(INT_TATO);
}
