//! What the board does when the firmware fails: report on the UART, reset.
//!
//! A board in a test farm must never hang silently. The panic handler and
//! the fault handlers print one line of console text and reset the board
//! through `SYSRESETREQ`. The gateway shows the line as console text (it is
//! not a protocol frame) and notices the reset by the new boot id.
//!
//! The line is framed by `0x00` bytes, the protocol's frame delimiter: the
//! leading one ends any frame the firmware was half-way through sending, so
//! the text is not glued to it, and the trailing one hands the text to the
//! gateway at once instead of after a quiet period.

use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

use corral_board_common::hex::u32_hex;
use cortex_m_rt::{exception, ExceptionFrame};

use crate::uart;

/// Set by the first panic, so that a panic while reporting one (which should
/// not happen: formatting onto the UART cannot fail) resets at once instead
/// of recursing.
static PANICKING: AtomicBool = AtomicBool::new(false);

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    cortex_m::interrupt::disable();
    if PANICKING.swap(true, Ordering::Relaxed) {
        crate::reset();
    }
    uart::ensure_tx_enabled();
    corral_board_common::write_panic_line(
        info.location().map(|l| (l.file(), l.line())),
        info.message().as_str(),
        uart::write_blocking,
    );
    crate::reset()
}

/// Prints `\0\r\n<what> <hex value>\r\n\0` and resets.
fn report_and_reset(what: &[u8], value: u32) -> ! {
    cortex_m::interrupt::disable();
    uart::ensure_tx_enabled();
    uart::write_blocking(b"\0\r\n");
    uart::write_blocking(what);
    uart::write_blocking(&u32_hex(value));
    uart::write_blocking(b"\r\n\0");
    crate::reset()
}

#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    report_and_reset(b"hard fault, pc=0x", frame.pc())
}

#[exception]
unsafe fn DefaultHandler(irqn: i16) {
    // `irqn` is the exception number minus 16: negative for core exceptions
    // (e.g. -12 for a bus fault that was not escalated), else the interrupt.
    report_and_reset(b"unexpected exception, irqn=0x", irqn as i32 as u32)
}
