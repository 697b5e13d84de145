//! System control: peripheral clock gating.

use crate::mmio::Reg;

// SAFETY: system control registers from the LM3S6965 data sheet.
const RCGC1: Reg = unsafe { Reg::at(0x400f_e104) };
const RCGC2: Reg = unsafe { Reg::at(0x400f_e108) };

const RCGC1_UART0: u32 = 1 << 0;
const RCGC1_TIMER0: u32 = 1 << 16;
const RCGC2_GPIOA: u32 = 1 << 0;

/// Turns on the clocks of UART0, timer 0 and GPIO port A (UART0's pins).
///
/// QEMU runs peripherals whether or not their clock is on, but silicon does
/// not, so the board does what real firmware must.
pub(crate) fn enable_clocks() {
    RCGC1.modify(|v| v | RCGC1_UART0 | RCGC1_TIMER0);
    RCGC2.modify(|v| v | RCGC2_GPIOA);
    // The data sheet asks for a few cycles between enabling a clock and
    // touching the peripheral.
    cortex_m::asm::delay(4);
}
