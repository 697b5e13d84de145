//! Firmware image for QEMU's lm3s6965evb: the Corral agent on UART0.
//!
//! Boot banner first (console text the gateway shows and the tests wait
//! for), then the agent loop of `corral-board-agent` forever.

#![no_std]
#![no_main]

use corral_board_common::write_banner;
use corral_board_qemu_lm3s6965::Lm3s6965;

#[cortex_m_rt::entry]
fn main() -> ! {
    let Some(mut board) = Lm3s6965::take() else {
        // Only reachable if something took the board before `main`.
        panic!("board already taken");
    };
    write_banner(&mut board);
    corral_board_agent::run(board)
}
