//! Exercises the failure path end to end: a deadline sleep, a panic, the
//! reset it causes, and the boot id after the reset.
//!
//! Prints the banner, sleeps until a deadline 500 ms away with nothing to
//! wake it but the deadline timer, prints how long it slept according to the
//! clock, then panics. The panic handler prints the message and resets, so
//! the output repeats with a new boot id each round until QEMU is stopped.
//! `boards/scripts/qemu-echo-check.sh` checks all of it.

#![no_std]
#![no_main]

use core::fmt::Write;

use corral_board_common::{write_banner, Board, Clock, SerialWriter};
use corral_board_qemu_lm3s6965::Lm3s6965;

const SLEEP_MICROS: u64 = 500_000;

#[cortex_m_rt::entry]
fn main() -> ! {
    let Some(mut board) = Lm3s6965::take() else {
        panic!("board already taken");
    };
    write_banner(&mut board);
    let start = board.now_micros();
    board.sleep_until(Some(start + SLEEP_MICROS));
    let slept = board.now_micros() - start;
    let _ = write!(
        SerialWriter(board.serial()),
        "deadline asked={SLEEP_MICROS}us slept={slept}us\r\n"
    );
    // The panic handler prints plain messages only (formatting would cost
    // flash), so the boot id goes on its own line first.
    let boot_id = board.boot_id();
    let _ = write!(
        SerialWriter(board.serial()),
        "panicking in boot {boot_id:08x}\r\n"
    );
    panic!("deliberate panic");
}
