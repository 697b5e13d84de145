//! Hardware-independent board support for Corral firmware.
//!
//! Every board crate under `boards/` implements [`Board`] (and through it
//! [`Clock`] and [`SerialPort`]); the firmware's agent glue is written once
//! against these traits and never touches a register. The crate also holds
//! the parts of board bring-up that need no hardware and can therefore be
//! tested on the host: the boot-id record ([`boot_id`]) and hex formatting for
//! banners ([`hex`]).
//!
//! The loop the agent glue runs looks like this (here with an in-memory board
//! that loops its output back to its input):
//!
//! ```
//! use corral_board_common::{Board, Clock, SerialPort};
//!
//! # struct Loopback { pending: Vec<u8>, now: u64 }
//! # impl SerialPort for Loopback {
//! #     fn read(&mut self, buf: &mut [u8]) -> usize {
//! #         let n = buf.len().min(self.pending.len());
//! #         buf[..n].copy_from_slice(&self.pending[..n]);
//! #         self.pending.drain(..n);
//! #         n
//! #     }
//! #     fn write(&mut self, data: &[u8]) { self.pending.extend_from_slice(data) }
//! #     fn flush(&mut self) {}
//! # }
//! # impl Clock for Loopback { fn now_micros(&self) -> u64 { self.now } }
//! # impl Board for Loopback {
//! #     type Serial = Self;
//! #     const NAME: &'static str = "loopback";
//! #     fn serial(&mut self) -> &mut Self { self }
//! #     fn sleep_until(&mut self, deadline: Option<u64>) {
//! #         if self.pending.is_empty() { self.now = deadline.unwrap_or(self.now).max(self.now) }
//! #     }
//! #     fn boot_id(&self) -> u32 { 7 }
//! #     fn reset(&mut self) -> ! { panic!("reset") }
//! # }
//! fn serve<B: Board>(board: &mut B, rounds: usize) -> usize {
//!     let mut buf = [0u8; 64];
//!     let mut moved = 0;
//!     for _ in 0..rounds {
//!         // 1. Take whatever arrived, without blocking.
//!         let n = board.serial().read(&mut buf);
//!         // 2. Hand it and the current time to the agent; here we just echo.
//!         let _now = board.now_micros();
//!         board.serial().write(&buf[..n]);
//!         moved += n;
//!         // 3. Sleep until more input arrives or the agent's next deadline.
//!         let deadline = board.now_micros() + 10_000;
//!         board.sleep_until(Some(deadline));
//!     }
//!     moved
//! }
//! # let mut board = Loopback { pending: b"hello".to_vec(), now: 0 };
//! # assert_eq!(serve(&mut board, 3), 15);
//! ```

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(test)]
extern crate std;

pub mod boot_id;
pub mod hex;
mod panic_line;
mod writer;

pub use panic_line::write_panic_line;
pub use writer::SerialWriter;

/// Prints the boot banner, `corral <board> boot id=<8 hex digits>\r\n`, on the
/// board's serial port.
///
/// It is the first thing every Corral firmware prints. The gateway shows it as
/// console text (it is not a protocol frame), and the host tests wait for it
/// to know the board is up.
pub fn write_banner<B: Board>(board: &mut B) {
    let id = hex::u32_hex(board.boot_id());
    let serial = board.serial();
    serial.write(b"corral ");
    serial.write(B::NAME.as_bytes());
    serial.write(b" boot id=");
    serial.write(&id);
    serial.write(b"\r\n");
}

/// A byte pipe to the gateway, usually a UART.
///
/// Reading never blocks: received bytes are buffered by the board (for a UART,
/// by its receive interrupt) until the firmware takes them. Writing blocks
/// until every byte has been handed to the hardware.
pub trait SerialPort {
    /// Moves up to `buf.len()` received bytes into `buf` and returns how many
    /// were moved; `0` means nothing is waiting. Never blocks.
    fn read(&mut self, buf: &mut [u8]) -> usize;

    /// Sends all of `data`, blocking while the hardware's transmit buffer is
    /// full. Returns once the last byte is queued in the hardware, which may
    /// be before it has left the pin (see [`SerialPort::flush`]).
    fn write(&mut self, data: &[u8]);

    /// Blocks until every byte written so far has left the hardware, e.g.
    /// before a reset that would cut a message short.
    fn flush(&mut self);
}

/// A monotonic clock.
pub trait Clock {
    /// Microseconds since an arbitrary point at or before boot. Never goes
    /// backwards while the board runs; starts again after a reset.
    fn now_micros(&self) -> u64;
}

/// Everything the agent glue needs from a board.
///
/// Boards implement this once; the firmware's main loop is generic over it
/// (see the crate example).
pub trait Board: Clock {
    /// The serial port wired to the gateway.
    type Serial: SerialPort;

    /// Short board name for banners and the handshake, e.g. `"lm3s6965"`.
    const NAME: &'static str;

    /// The serial port wired to the gateway.
    fn serial(&mut self) -> &mut Self::Serial;

    /// Sleeps (with the CPU halted, not polling) until received serial data
    /// is waiting or `now_micros() >= deadline_micros`, whichever comes
    /// first. Returns at once if either is already true. With `None` it waits
    /// for serial data only.
    ///
    /// Must be called with interrupts enabled: interrupts are what fill the
    /// receive buffer and end the sleep.
    fn sleep_until(&mut self, deadline_micros: Option<u64>);

    /// An identifier of this boot, different after every reset that keeps RAM
    /// powered (and, with whatever entropy the board has, likely different
    /// after a power cycle). See [`boot_id`] for how boards derive it.
    fn boot_id(&self) -> u32;

    /// The board's serial number as text (e.g. a chip's unique id in hex),
    /// reported in the handshake; empty if the board has none.
    fn serial_number(&self) -> &str {
        ""
    }

    /// Resets the whole board after flushing the serial port. Does not return.
    fn reset(&mut self) -> !;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    struct FakeBoard {
        out: Vec<u8>,
    }

    impl SerialPort for FakeBoard {
        fn read(&mut self, _: &mut [u8]) -> usize {
            0
        }
        fn write(&mut self, data: &[u8]) {
            self.out.extend_from_slice(data);
        }
        fn flush(&mut self) {}
    }

    impl Clock for FakeBoard {
        fn now_micros(&self) -> u64 {
            0
        }
    }

    impl Board for FakeBoard {
        type Serial = Self;
        const NAME: &'static str = "fake";
        fn serial(&mut self) -> &mut Self {
            self
        }
        fn sleep_until(&mut self, _: Option<u64>) {}
        fn boot_id(&self) -> u32 {
            0x0bad_cafe
        }
        fn reset(&mut self) -> ! {
            panic!("reset")
        }
    }

    #[test]
    fn banner_names_board_and_boot_id() {
        let mut board = FakeBoard { out: Vec::new() };
        write_banner(&mut board);
        assert_eq!(board.out, b"corral fake boot id=0badcafe\r\n");
    }
}
