//! Firmware image for the Nucleo-F401RE: the Corral agent on USART2, the
//! ST-Link's virtual COM port.
//!
//! Boot banner first (console text the gateway shows), then the agent loop
//! of `corral-board-agent` forever.

#![no_std]
#![no_main]

use corral_board_common::write_banner;
use corral_board_nucleo_f401re::NucleoF401re;

#[cortex_m_rt::entry]
fn main() -> ! {
    let Some(mut board) = NucleoF401re::take() else {
        // Only reachable if something took the board before `main`.
        panic!("board already taken");
    };
    write_banner(&mut board);
    corral_board_agent::run(board)
}
