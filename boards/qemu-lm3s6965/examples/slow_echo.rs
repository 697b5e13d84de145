//! Echo with a deliberately slow reader, to exercise the receive ring's
//! full -> pause -> resume path.
//!
//! After the banner it echoes like the main firmware, but busy-waits 2 ms
//! after every read (as an agent erasing flash might), so a fast sender fills
//! the ring. Once it has echoed [`TOTAL`] bytes it prints
//! `\r\nrx pauses=<n>\r\n`. `boards/scripts/qemu-echo-check.sh` checks that
//! the echo is byte-exact and that reception did pause.

#![no_std]
#![no_main]

use core::fmt::Write;

use corral_board_common::{write_banner, Board, Clock, SerialPort, SerialWriter};
use corral_board_qemu_lm3s6965::Lm3s6965;

/// Bytes the host sends.
const TOTAL: usize = 16 * 1024;
/// Busy time after each read.
const STALL_MICROS: u64 = 2_000;

#[cortex_m_rt::entry]
fn main() -> ! {
    let Some(mut board) = Lm3s6965::take() else {
        panic!("board already taken");
    };
    write_banner(&mut board);
    let mut buf = [0u8; 64];
    let mut echoed = 0;
    while echoed < TOTAL {
        let n = board.serial().read(&mut buf);
        if n == 0 {
            board.sleep_until(None);
            continue;
        }
        board.serial().write(&buf[..n]);
        echoed += n;
        let stall_until = board.now_micros() + STALL_MICROS;
        while board.now_micros() < stall_until {}
    }
    let pauses = board.serial().rx_pauses();
    let _ = write!(SerialWriter(board.serial()), "\r\nrx pauses={pauses}\r\n");
    loop {
        board.sleep_until(None);
    }
}
