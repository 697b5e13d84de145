//! The STM32F401-specific half of the vector table (device interrupts
//! 0..=84, RM0368 section 10, "Interrupts and events", vector table).
//!
//! cortex-m-rt provides the Cortex-M exception vectors; with its `device`
//! feature it expects the device's interrupt vectors in a static named
//! `__INTERRUPTS`. Only the interrupts this board uses are named; the others
//! point at `DefaultHandler`, which reports and resets (see `fault.rs`).

use cortex_m::interrupt::InterruptNumber;

/// The STM32F401 interrupts this board uses, numbered as in the vector
/// table.
///
/// The variant names must equal the handler symbol names in `device.x`,
/// because cortex-m-rt's `#[interrupt]` attribute checks them against this
/// enum.
#[allow(clippy::upper_case_acronyms)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum Interrupt {
    /// USART2 global interrupt (receive).
    USART2 = 38,
    /// TIM5 global interrupt (counter wrap, deadline compare).
    TIM5 = 50,
}

// `#[interrupt]` refers to interrupts as `interrupt::NAME`.
pub(crate) use Interrupt as interrupt;

// SAFETY: the numbers are the STM32F401's interrupt numbers, all below 240.
unsafe impl InterruptNumber for Interrupt {
    #[inline]
    fn number(self) -> u16 {
        self as u16
    }
}

/// One entry of the vector table.
#[doc(hidden)]
pub union Vector {
    handler: unsafe extern "C" fn(),
    _reserved: usize,
}

extern "C" {
    fn USART2();
    fn TIM5();
    fn DefaultHandler();
}

/// Number of device interrupts: the last one, SPI4, is 84.
const COUNT: usize = 85;

const DEFAULT: Vector = Vector {
    handler: DefaultHandler,
};

const fn table() -> [Vector; COUNT] {
    // Unused and reserved positions go to DefaultHandler: an interrupt that
    // nobody enabled cannot fire, and if one did, it is reported.
    let mut table = [DEFAULT; COUNT];
    table[Interrupt::USART2 as usize] = Vector { handler: USART2 };
    table[Interrupt::TIM5 as usize] = Vector { handler: TIM5 };
    table
}

/// Interrupt vectors 0..=84, placed after the exception vectors by
/// cortex-m-rt's `link.x`.
#[doc(hidden)]
#[link_section = ".vector_table.interrupts"]
#[no_mangle]
pub static __INTERRUPTS: [Vector; COUNT] = table();
