//! Board support for the ST Nucleo-F401RE (STM32F401RE: Cortex-M4F at up to
//! 84 MHz, 512 KiB flash, 96 KiB SRAM).
//!
//! This is everything below the Corral agent: the clock tree (HSI through
//! the PLL at 84 MHz, [`rcc`]), USART2 on the ST-Link's virtual COM port as
//! the serial port to the gateway ([`usart`]), a monotonic microsecond clock
//! and a deadline wake-up on TIM5 ([`time`]), sleeping with `wfi` until
//! either wakes the CPU
//! ([`NucleoF401re::sleep_until`](corral_board_common::Board::sleep_until)),
//! a boot id that changes on every reset and the chip's unique id as serial
//! number ([`boot_id`]), a panic handler that prints the location and
//! resets (`fault.rs`), and [`reset`]. [`NucleoF401re`] implements
//! [`corral_board_common::Board`], which is what the agent glue is written
//! against.
//!
//! Registers are the reference manual's, RM0368 ("STM32F401xB/C and
//! STM32F401xD/E advanced Arm-based 32-bit MCUs"), accessed directly
//! (`mmio.rs`) rather than through a generated peripheral access crate.
//!
//! Linking this library into a firmware image also links its panic handler,
//! fault handlers and interrupt vectors, so a firmware image is just:
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! use corral_board_common::write_banner;
//! use corral_board_nucleo_f401re::NucleoF401re;
//!
//! #[cortex_m_rt::entry]
//! fn main() -> ! {
//!     let mut board = NucleoF401re::take().unwrap();
//!     write_banner(&mut board);
//!     corral_board_agent::run(board)
//! }
//! ```

#![no_std]
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod boot_id;
mod fault;
mod mmio;
pub mod rcc;
pub mod time;
pub mod usart;
mod vectors;

use corral_board_common::{Board, Clock};
use cortex_m::peripheral::SCB;

pub use usart::Usart2;
pub use vectors::Interrupt;

/// The board: owns USART2 and TIM5. Create it with [`NucleoF401re::take`].
pub struct NucleoF401re {
    usart: Usart2,
    boot_id: u32,
    serial_number: [u8; boot_id::SERIAL_LEN],
}

impl NucleoF401re {
    /// Brings the board up (84 MHz clock, boot id, TIM5 clock, USART2) and
    /// returns it. Returns `None` if called a second time: the board and its
    /// peripherals exist once.
    pub fn take() -> Option<NucleoF401re> {
        // Claimed only so that a second `take` fails; the board uses none of
        // the core peripherals but NVIC and SCB, through their associated
        // functions.
        cortex_m::Peripherals::take()?;
        let ring = cortex_m::singleton!(: usart::RxRing = usart::RxRing::new())?;
        rcc::init();
        rcc::enable_peripheral_clocks();
        // The boot id borrows TIM5 before it becomes the clock.
        let boot_id = boot_id::init();
        time::start_clock();
        let usart = Usart2::init(ring);
        Some(NucleoF401re {
            usart,
            boot_id,
            serial_number: boot_id::serial_number(),
        })
    }
}

impl Clock for NucleoF401re {
    fn now_micros(&self) -> u64 {
        time::now_micros()
    }
}

impl Board for NucleoF401re {
    type Serial = Usart2;
    const NAME: &'static str = "nucleo-f401re";

    fn serial(&mut self) -> &mut Usart2 {
        &mut self.usart
    }

    fn sleep_until(&mut self, deadline_micros: Option<u64>) {
        debug_assert!(
            !cortex_m::register::primask::read().is_active(),
            "sleep_until needs interrupts enabled"
        );
        loop {
            // With interrupts masked, a byte or deadline that arrives between
            // the checks and `wfi` leaves its interrupt pending, and a
            // pending interrupt makes `wfi` return at once: no lost wake-up.
            cortex_m::interrupt::disable();
            if self.usart.rx_ready() {
                break;
            }
            let armed = match deadline_micros {
                None => true,
                Some(deadline) => {
                    let now = time::now_micros();
                    if now >= deadline {
                        break;
                    }
                    time::arm_deadline(now, deadline)
                }
            };
            if armed {
                cortex_m::asm::wfi();
            }
            // SAFETY: not inside a critical section (checked above); the
            // pending handler runs here, then we look again. TIM5's wrap
            // interrupt (every 71 minutes) also lands here.
            unsafe { cortex_m::interrupt::enable() };
        }
        time::disarm_deadline();
        // SAFETY: as above.
        unsafe { cortex_m::interrupt::enable() };
    }

    fn boot_id(&self) -> u32 {
        self.boot_id
    }

    fn serial_number(&self) -> &str {
        // Hex digits: always UTF-8.
        core::str::from_utf8(&self.serial_number).unwrap_or("")
    }

    fn reset(&mut self) -> ! {
        reset()
    }
}

/// Waits for USART2 to send what it has, then resets the whole chip via
/// `SYSRESETREQ` (SRAM, and with it the boot record, survives).
pub fn reset() -> ! {
    usart::flush();
    SCB::sys_reset()
}
