//! Firmware image for QEMU's lm3s6965evb.
//!
//! For now this is the bring-up demo: print the boot banner, then echo every
//! received byte, sleeping with `wfi` in between. `boards/scripts/
//! qemu-echo-check.sh` drives it from the host.
//!
//! Agent integration goes here: once `corral-agent-core` can run, `main`
//! keeps `take()` and `write_banner`, and replaces `echo_forever` with the
//! agent loop shown in `corral_board_common`'s crate docs (read serial, poll
//! the agent with `now_micros()`, write its output, `sleep_until` its next
//! deadline). Everything that loop needs is in the `Board` trait.

#![no_std]
#![no_main]

use corral_board_common::{write_banner, Board, SerialPort};
use corral_board_qemu_lm3s6965::Lm3s6965;

#[cortex_m_rt::entry]
fn main() -> ! {
    let Some(mut board) = Lm3s6965::take() else {
        // Only reachable if something took the board before `main`.
        panic!("board already taken");
    };
    write_banner(&mut board);
    echo_forever(&mut board)
}

/// Sends back every received byte, unchanged and in order.
fn echo_forever<B: Board>(board: &mut B) -> ! {
    let mut buf = [0u8; 64];
    loop {
        let n = board.serial().read(&mut buf);
        if n == 0 {
            board.sleep_until(None);
            continue;
        }
        board.serial().write(&buf[..n]);
    }
}
