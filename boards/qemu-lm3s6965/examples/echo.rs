//! The bring-up firmware: boot banner, then every received byte echoed back
//! unchanged and in order, sleeping with `wfi` in between. It checks the
//! UART, the receive ring, sleep and reset without the agent on top;
//! `boards/scripts/qemu-echo-check.sh` drives it from the host.

#![no_std]
#![no_main]

use corral_board_common::{write_banner, Board, SerialPort};
use corral_board_qemu_lm3s6965::Lm3s6965;

#[cortex_m_rt::entry]
fn main() -> ! {
    let Some(mut board) = Lm3s6965::take() else {
        panic!("board already taken");
    };
    write_banner(&mut board);
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
