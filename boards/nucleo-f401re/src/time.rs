//! Time: a monotonic microsecond clock and a deadline wake-up, both on TIM5
//! (RM0368 section 13, "General-purpose timers (TIM2 to TIM5)").
//!
//! - **Clock.** TIM5 is a 32-bit timer. Its prescaler divides the 84 MHz
//!   APB1 timer clock down to exactly 1 MHz, so TIM5_CNT counts
//!   microseconds; it wraps every 2^32 µs (71.6 minutes), and the update
//!   interrupt counts the wraps. [`now_micros`] puts the two together as a
//!   `u64`, which never wraps.
//! - **Deadline.** Capture/compare channel 1 in output-compare mode raises
//!   TIM5_SR.CC1IF, and with it the TIM5 interrupt, when the counter reaches
//!   TIM5_CCR1. Its only job is to end a `wfi` at a deadline (see
//!   `NucleoF401re::sleep_until`). The compare does not disturb the counter,
//!   so one timer does both, and nothing else wakes the CPU periodically
//!   (the wrap interrupt aside, once every 71 minutes).
//!
//! Before the clock starts, `lsi_jitter` borrows TIM5 to time the internal
//! low-speed RC oscillator (LSI) against the PLL: entropy for the boot id.

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::NVIC;
use cortex_m_rt::interrupt;

use crate::mmio::Reg;
use crate::rcc::{APB1_TIMER_HZ, RCC_CSR};
use crate::vectors::{interrupt, Interrupt};

const TIM5: usize = 0x4000_0c00;
// SAFETY: TIM5 registers, RM0368 section 13.4.
const TIM_CR1: Reg = unsafe { Reg::at(TIM5) };
const TIM_DIER: Reg = unsafe { Reg::at(TIM5 + 0x0c) };
const TIM_SR: Reg = unsafe { Reg::at(TIM5 + 0x10) };
const TIM_EGR: Reg = unsafe { Reg::at(TIM5 + 0x14) };
const TIM_CCMR2: Reg = unsafe { Reg::at(TIM5 + 0x1c) };
const TIM_CCER: Reg = unsafe { Reg::at(TIM5 + 0x20) };
const TIM_CNT: Reg = unsafe { Reg::at(TIM5 + 0x24) };
const TIM_PSC: Reg = unsafe { Reg::at(TIM5 + 0x28) };
const TIM_ARR: Reg = unsafe { Reg::at(TIM5 + 0x2c) };
const TIM_CCR1: Reg = unsafe { Reg::at(TIM5 + 0x34) };
const TIM_CCR4: Reg = unsafe { Reg::at(TIM5 + 0x40) };
/// TIM5 option register: what feeds input 4.
const TIM5_OR: Reg = unsafe { Reg::at(TIM5 + 0x50) };

const CR1_CEN: u32 = 1 << 0;
/// Update request source: only an overflow raises the update interrupt,
/// not a software update (EGR.UG).
const CR1_URS: u32 = 1 << 2;
const DIER_UIE: u32 = 1 << 0;
const DIER_CC1IE: u32 = 1 << 1;
/// Status flags are rc_w0: writing 0 clears a flag, writing 1 leaves it, so
/// clearing one flag never loses another.
const SR_UIF: u32 = 1 << 0;
const SR_CC1IF: u32 = 1 << 1;
const SR_CC4IF: u32 = 1 << 4;
const EGR_UG: u32 = 1 << 0;
/// CC4S = 01: channel 4 is an input, IC4 mapped on TI4; IC4PSC = 11: one
/// capture every 8 edges.
const CCMR2_IC4_TI4_DIV8: u32 = (0b01 << 8) | (0b11 << 10);
const CCER_CC4E: u32 = 1 << 12;
/// TI4_RMP[7:6] = 01: the LSI oscillator drives TI4 (meant for calibrating
/// LSI).
const OR_TI4_LSI: u32 = 0b01 << 6;

const CSR_LSION: u32 = 1 << 0;
const CSR_LSIRDY: u32 = 1 << 1;

/// TIM5 counts at 1 MHz.
const PRESCALER: u32 = APB1_TIMER_HZ / 1_000_000 - 1;
const _: () = assert!(APB1_TIMER_HZ.is_multiple_of(1_000_000));

/// Longest single arming of the deadline, in µs (about 18 minutes). Longer
/// waits are armed again when it expires. Below 2^31 so that "is the
/// compare value still ahead of the counter" is a signed comparison.
const MAX_ARM_MICROS: u64 = 1 << 30;

/// Wraps of TIM5_CNT since boot, counted by the update interrupt.
static WRAPS: AtomicU32 = AtomicU32::new(0);

/// Starts TIM5 as the microsecond clock, at 0.
pub(crate) fn start_clock() {
    TIM_CR1.write(0);
    TIM_DIER.write(0);
    TIM_PSC.write(PRESCALER);
    TIM_ARR.write(u32::MAX);
    TIM_CR1.write(CR1_URS);
    // The prescaler is buffered; an update event loads it (and zeroes the
    // counter). With URS set it raises no interrupt.
    TIM_EGR.write(EGR_UG);
    TIM_SR.write(0);
    TIM_DIER.write(DIER_UIE);
    // SAFETY: the handler counts wraps and acknowledges the deadline; it
    // shares nothing else.
    unsafe { NVIC::unmask(Interrupt::TIM5) };
    TIM_CR1.write(CR1_URS | CR1_CEN);
}

/// Microseconds since the clock started at boot.
pub fn now_micros() -> u64 {
    critical_section::with(|_| {
        let mut wraps = WRAPS.load(Ordering::Relaxed);
        let mut count = TIM_CNT.read();
        if TIM_SR.read() & SR_UIF != 0 {
            // The counter wrapped but the interrupt has not counted it yet
            // (we are in a critical section). `count` may be from before or
            // after the wrap, so read it again: now it is after.
            wraps = wraps.wrapping_add(1);
            count = TIM_CNT.read();
        }
        (u64::from(wraps) << 32) | u64::from(count)
    })
}

/// Arms the deadline wake-up for `deadline` (µs, as [`now_micros`]), given
/// the current time `now < deadline`; at most [`MAX_ARM_MICROS`] ahead.
/// Call with interrupts masked.
///
/// Returns `false` if the counter may already have passed the compare value
/// when it was written (the deadline was a few µs away): then no interrupt
/// may come until the next wrap, and the caller must not `wfi` but look at
/// the clock again.
pub(crate) fn arm_deadline(now: u64, deadline: u64) -> bool {
    let wait = (deadline - now).min(MAX_ARM_MICROS);
    let target = (now as u32).wrapping_add(wait as u32);
    TIM_SR.write(!SR_CC1IF);
    TIM_CCR1.write(target);
    TIM_DIER.modify(|v| v | DIER_CC1IE);
    // Still ahead of the counter: the match, and its interrupt, are to come.
    (target.wrapping_sub(TIM_CNT.read()) as i32) > 0
}

/// Disarms the deadline wake-up and drops a match it may have signalled.
/// Call with interrupts masked.
pub(crate) fn disarm_deadline() {
    TIM_DIER.modify(|v| v & !DIER_CC1IE);
    TIM_SR.write(!SR_CC1IF);
}

/// Rounds of LSI timing; each takes 8 LSI periods, about 250 µs.
const LSI_ROUNDS: usize = 8;
/// Polls before giving up on an LSI edge or on LSI starting (each a few
/// cycles at 84 MHz, so about 10 ms): a dead oscillator costs some
/// entropy, never the boot.
const MAX_POLLS: u32 = 100_000;

/// Times the LSI oscillator (nominally 32 kHz, an RC oscillator independent
/// of the HSI that clocks the core) with TIM5 running at the full 84 MHz,
/// and passes each measured duration of 8 LSI periods (about 21000 ticks)
/// to `sample`. The low bits vary from run to run with the two oscillators'
/// jitter, and the whole value with temperature and supply: entropy for the
/// boot id, on a chip without a random number generator.
///
/// Leaves TIM5 stopped and LSI off; call it before [`start_clock`].
pub(crate) fn lsi_jitter(mut sample: impl FnMut(u32)) {
    RCC_CSR.modify(|v| v | CSR_LSION);
    let mut polls = 0;
    while RCC_CSR.read() & CSR_LSIRDY == 0 && polls < MAX_POLLS {
        polls += 1;
    }
    sample(polls);

    TIM_CR1.write(0);
    TIM_DIER.write(0);
    TIM_PSC.write(0);
    TIM_ARR.write(u32::MAX);
    TIM_EGR.write(EGR_UG);
    TIM5_OR.write(OR_TI4_LSI);
    TIM_CCMR2.write(CCMR2_IC4_TI4_DIV8);
    TIM_CCER.write(CCER_CC4E);
    TIM_SR.write(0);
    TIM_CR1.write(CR1_CEN);

    let mut previous = None;
    for _ in 0..=LSI_ROUNDS {
        let mut polls = 0;
        while TIM_SR.read() & SR_CC4IF == 0 && polls < MAX_POLLS {
            polls += 1;
        }
        if polls == MAX_POLLS {
            break;
        }
        // Reading CCR4 clears CC4IF.
        let captured = TIM_CCR4.read();
        if let Some(previous) = previous {
            sample(captured.wrapping_sub(previous));
        }
        previous = Some(captured);
    }

    TIM_CR1.write(0);
    TIM_CCER.write(0);
    TIM_CCMR2.write(0);
    TIM5_OR.write(0);
    TIM_SR.write(0);
    RCC_CSR.modify(|v| v & !CSR_LSION);
}

#[interrupt]
fn TIM5() {
    let sr = TIM_SR.read();
    // Acknowledge first: a flag cleared at the very end of a handler can
    // still be set when the handler returns, and the interrupt would run
    // again for nothing.
    TIM_SR.write(!(sr & (SR_UIF | SR_CC1IF)));
    if sr & SR_UIF != 0 {
        WRAPS.fetch_add(1, Ordering::Relaxed);
    }
    // CC1IF: waking the CPU from `wfi` was the whole purpose.
}
