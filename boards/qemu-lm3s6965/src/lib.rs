//! Board support for QEMU's `lm3s6965evb` machine (TI Stellaris LM3S6965,
//! Cortex-M3, 256 KiB flash, 64 KiB SRAM).
//!
//! This is everything below the Corral agent: UART0 as the serial port to the
//! gateway ([`uart`]), a monotonic microsecond clock and a deadline timer
//! ([`time`]), sleeping with `wfi` until either wakes the CPU
//! ([`Lm3s6965::sleep_until`](corral_board_common::Board::sleep_until)), a boot
//! id that changes on every reset ([`boot_id`]), a panic handler that prints
//! the message and resets (`fault.rs`), and [`reset`]. [`Lm3s6965`]
//! implements [`corral_board_common::Board`], which is what the agent glue
//! is written against.
//!
//! Linking this library into a firmware image also links its panic handler,
//! fault handlers and interrupt vectors, so a firmware image is just:
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! use corral_board_common::{write_banner, Board};
//! use corral_board_qemu_lm3s6965::Lm3s6965;
//!
//! #[cortex_m_rt::entry]
//! fn main() -> ! {
//!     let mut board = Lm3s6965::take().unwrap();
//!     write_banner(&mut board);
//!     loop {
//!         board.sleep_until(None);
//!         // ... read board.serial(), poll the agent ...
//!     }
//! }
//! ```

#![no_std]
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod boot_id;
mod fault;
mod mmio;
mod sysctl;
pub mod time;
pub mod uart;
mod vectors;

use corral_board_common::{Board, Clock};
use cortex_m::peripheral::SCB;

pub use uart::Uart0;
pub use vectors::Interrupt;

/// Core clock: QEMU's model of the LM3S6965 system control derives it as
/// 200 MHz / (SYSDIV + 1), and SYSDIV resets to 15. The firmware leaves the
/// clock configuration at its reset value, so this is what SysTick counts.
/// (A real LM3S6965 at reset runs from its internal oscillator instead,
/// nominally 12 MHz: this board is only meant for QEMU.)
pub const SYSCLK_HZ: u32 = 12_500_000;

/// The board: owns UART0 and the time peripherals. Create it with
/// [`Lm3s6965::take`].
pub struct Lm3s6965 {
    uart: Uart0,
    boot_id: u32,
}

impl Lm3s6965 {
    /// Brings the board up (clocks, SysTick, boot id, UART0, deadline timer)
    /// and returns it. Returns `None` if called a second time: the board and
    /// its peripherals exist once.
    pub fn take() -> Option<Lm3s6965> {
        let core = cortex_m::Peripherals::take()?;
        let ring = cortex_m::singleton!(: uart::RxRing = uart::RxRing::new())?;
        sysctl::enable_clocks();
        let clock_start_polls = time::start_clock(core.SYST);
        let boot_id = boot_id::init(clock_start_polls);
        let uart = Uart0::init(ring);
        time::init_deadline_timer();
        Some(Lm3s6965 { uart, boot_id })
    }
}

impl Clock for Lm3s6965 {
    fn now_micros(&self) -> u64 {
        time::now_micros()
    }
}

impl Board for Lm3s6965 {
    type Serial = Uart0;
    const NAME: &'static str = "lm3s6965";

    fn serial(&mut self) -> &mut Uart0 {
        &mut self.uart
    }

    fn sleep_until(&mut self, deadline_micros: Option<u64>) {
        debug_assert!(
            !cortex_m::register::primask::read().is_active(),
            "sleep_until needs interrupts enabled"
        );
        loop {
            // With interrupts masked, a byte or timeout that arrives between
            // the checks and `wfi` leaves its interrupt pending, and a
            // pending interrupt makes `wfi` return at once: no lost wake-up.
            cortex_m::interrupt::disable();
            if self.uart.rx_ready() {
                break;
            }
            if let Some(deadline) = deadline_micros {
                let now = time::now_micros();
                if now >= deadline {
                    break;
                }
                time::arm_deadline(deadline - now);
            }
            cortex_m::asm::wfi();
            // SAFETY: not inside a critical section (checked above); the
            // pending handler runs here, then we look again. SysTick's
            // once-a-second interrupt also lands here and re-arms the timer.
            unsafe { cortex_m::interrupt::enable() };
        }
        time::disarm_deadline();
        // SAFETY: as above.
        unsafe { cortex_m::interrupt::enable() };
    }

    fn boot_id(&self) -> u32 {
        self.boot_id
    }

    fn reset(&mut self) -> ! {
        reset()
    }
}

/// Waits for the UART to send what it has, then resets the whole chip via
/// `SYSRESETREQ` (QEMU resets the machine; RAM, and with it the boot record,
/// survives).
pub fn reset() -> ! {
    uart::flush();
    SCB::sys_reset()
}
