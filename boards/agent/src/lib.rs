//! The Corral agent for any board: [`run`] drives `corral-agent-core` over
//! a board's serial port, forever.
//!
//! A board crate supplies the hardware (a [`Board`]: serial port, clock,
//! sleep, boot id, reset); this crate supplies everything else, the same on
//! every board: the agent with the device-sized link ([`DeviceAgent`]), the
//! sample commands ([`commands`]), and the file store ([`BoardStore`]: small
//! files in RAM, big images through the write-only [`ImageSlot`] under
//! `image/`). A firmware image is then:
//!
//! ```text
//! #[cortex_m_rt::entry]
//! fn main() -> ! {
//!     let mut board = MyBoard::take().unwrap();
//!     corral_board_common::write_banner(&mut board);
//!     corral_board_agent::run(board)
//! }
//! ```
//!
//! The loop: take what the serial port received, hand it and the time to
//! the agent, let the agent work, write what it wants to send, then sleep
//! until a byte arrives or the agent's next deadline. The agent never
//! blocks, so neither does a long command: the board sleeps with `wfi` when
//! there is nothing to do and never busy-polls.
//!
//! The agent lives in a `static` (a [`StaticCell`]): its 7 KiB are then
//! counted by `size` as static RAM, where the footprint bar applies, instead
//! of hiding on the stack.

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(test)]
extern crate std;

pub mod commands;
pub mod image;
pub mod store;

use corral_agent_core::{Command, DeviceAgent, Identity, Platform, DEVICE_STORAGE};
use corral_board_common::{Board, SerialPort};
use corral_protocol::link::Config;
use corral_protocol::Instant;
use static_cell::StaticCell;

pub use image::ImageSlot;
pub use store::BoardStore;

/// Longest serial number kept from the board.
const SERIAL_LEN: usize = 32;

/// The platform the agent runs on: identity, commands, store. It does not
/// own the board (the main loop needs the serial port and the clock); a
/// reset request is handed to the loop as a flag.
pub struct Firmware {
    board: &'static str,
    boot_id: u32,
    serial: [u8; SERIAL_LEN],
    serial_len: usize,
    store: BoardStore,
    reset_requested: bool,
}

impl Firmware {
    /// The platform of a board with this name, boot id and serial number
    /// (cut to 32 bytes).
    pub fn new(board: &'static str, boot_id: u32, serial: &str) -> Self {
        let mut s = [0; SERIAL_LEN];
        let mut len = serial.len().min(SERIAL_LEN);
        while !serial.is_char_boundary(len) {
            len -= 1;
        }
        s[..len].copy_from_slice(&serial.as_bytes()[..len]);
        Firmware {
            board,
            boot_id,
            serial: s,
            serial_len: len,
            store: BoardStore::new(),
            reset_requested: false,
        }
    }

    /// True once the gateway asked for a reset and the agent agreed.
    pub fn reset_requested(&self) -> bool {
        self.reset_requested
    }
}

impl Platform for Firmware {
    type Files = BoardStore;
    const COMMANDS: &'static [Command<Self>] = commands::COMMANDS;

    fn identity(&self) -> Identity<'_> {
        Identity {
            name: self.board,
            board: self.board,
            serial: core::str::from_utf8(&self.serial[..self.serial_len]).unwrap_or(""),
            firmware: env!("CARGO_PKG_VERSION"),
            boot_id: self.boot_id,
        }
    }

    fn files(&mut self) -> Option<&mut BoardStore> {
        Some(&mut self.store)
    }

    fn reset(&mut self) {
        // The loop resets the board after writing what the agent sent.
        self.reset_requested = true;
    }
}

/// Bytes read from the serial port per round.
const RX_CHUNK: usize = 64;
/// The transmit buffer: one frame of the device link at most.
const TX_BUF: usize = 600;

static AGENT: StaticCell<DeviceAgent<Firmware>> = StaticCell::new();

fn now<B: Board>(board: &B) -> Instant {
    Instant::from_micros(board.now_micros())
}

/// Runs the agent on `board` forever. Call it once, after the boot banner.
pub fn run<B: Board>(mut board: B) -> ! {
    let platform = Firmware::new(B::NAME, board.boot_id(), board.serial_number());
    let start = now(&board);
    let agent = AGENT.init_with(|| {
        match DeviceAgent::new(Config::device(), [0; DEVICE_STORAGE], platform, start) {
            Ok(agent) => agent,
            // Config::device() and DEVICE_STORAGE are made for each other
            // (agent-core's tests check it); only a bad boot id of 0 lands
            // here, and the board's boot-id code never makes one.
            Err(_) => panic!("agent configuration refused"),
        }
    });
    let mut rx = [0u8; RX_CHUNK];
    let mut tx = [0u8; TX_BUF];
    loop {
        let n = board.serial().read(&mut rx);
        let t = now(&board);
        if n > 0 {
            agent.receive(t, &rx[..n]);
        }
        agent.poll(t);
        loop {
            let len = agent.poll_transmit(t, &mut tx);
            if len == 0 {
                break;
            }
            board.serial().write(&tx[..len]);
        }
        if agent.platform().reset_requested() {
            board.reset();
        }
        if n == rx.len() {
            // More may be waiting: read again before sleeping.
            continue;
        }
        match agent.poll_timeout() {
            Some(deadline) if deadline <= now(&board) => {}
            deadline => board.sleep_until(deadline.map(Instant::as_micros)),
        }
    }
}
