//! The LM3S6965-specific half of the vector table (device interrupts 0..=19).
//!
//! cortex-m-rt provides the Cortex-M exception vectors; with its `device`
//! feature it expects the device's interrupt vectors in a static named
//! `__INTERRUPTS`. Only the interrupts this board uses are named; the others
//! point at `DefaultHandler`, which reports and resets (see `fault.rs`).
//! A full device crate (`lm3s6965`) exists, but it ships its own `memory.x`,
//! which would compete with ours on the linker search path.

use cortex_m::interrupt::InterruptNumber;

/// The LM3S6965 interrupts this board uses, numbered as in the data sheet's
/// interrupt table.
///
/// The variant names must equal the handler symbol names in `device.x`,
/// because cortex-m-rt's `#[interrupt]` attribute checks them against this
/// enum.
#[allow(clippy::upper_case_acronyms)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum Interrupt {
    /// UART0 (receive, receive timeout, ...).
    UART0 = 5,
    /// General-purpose timer 0, sub-timer A (the deadline timer).
    TIMER0A = 19,
}

// `#[interrupt]` refers to interrupts as `interrupt::NAME`.
pub(crate) use Interrupt as interrupt;

// SAFETY: the numbers are the LM3S6965's interrupt numbers, all below 240.
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
    fn UART0();
    fn TIMER0A();
    fn DefaultHandler();
}

const DEFAULT: Vector = Vector {
    handler: DefaultHandler,
};

/// Interrupt vectors 0..=19, placed after the exception vectors by
/// cortex-m-rt's `link.x`.
#[doc(hidden)]
#[link_section = ".vector_table.interrupts"]
#[no_mangle]
pub static __INTERRUPTS: [Vector; 20] = [
    DEFAULT, // 0: GPIO port A
    DEFAULT, // 1: GPIO port B
    DEFAULT, // 2: GPIO port C
    DEFAULT, // 3: GPIO port D
    DEFAULT, // 4: GPIO port E
    Vector { handler: UART0 },
    DEFAULT, // 6: UART1
    DEFAULT, // 7: SSI0
    DEFAULT, // 8: I2C0
    DEFAULT, // 9: PWM fault
    DEFAULT, // 10: PWM generator 0
    DEFAULT, // 11: PWM generator 1
    DEFAULT, // 12: PWM generator 2
    DEFAULT, // 13: QEI0
    DEFAULT, // 14: ADC sequence 0
    DEFAULT, // 15: ADC sequence 1
    DEFAULT, // 16: ADC sequence 2
    DEFAULT, // 17: ADC sequence 3
    DEFAULT, // 18: watchdog
    Vector { handler: TIMER0A },
];
