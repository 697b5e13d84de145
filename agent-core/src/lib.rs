//! The Corral agent for microcontrollers: it drives one protocol link and
//! carries out the gateway's requests on a board. `no_std`, no allocator, no
//! `unsafe`; all memory is fixed at compile time by const generics.
//!
//! A board provides a [`Platform`]: its identity, a table of commands
//! compiled into the firmware (added to the built-ins `info`, `echo`,
//! `sleep` and `hash`), a [`FileStore`] ([`RamStore`] or its own), and
//! reset. The [`Agent`] is sans-IO like the link under it: bytes and the
//! current time go in, bytes and the next deadline come out. It never reads a
//! clock, never blocks, and does a bounded amount of work per call.
//!
//! What the agent cannot do it says: a request kind it does not handle gets
//! `Unsupported`, a command it does not have `UNKNOWN_COMMAND`, a full
//! command table `BUSY`, a file too big for the store `NO_SPACE` or
//! `TOO_LARGE`. Exec timeouts and cancels are enforced by the agent itself
//! (it stops stepping the command and reports `TimedOut` or `Cancelled`),
//! and every stream obeys the credit the gateway grants.
//!
//! A board's main loop (here with a loopback line and a fake clock, so that
//! it runs as a test):
//!
//! ```
//! use corral_agent_core::{DeviceAgent, Identity, Platform, RamStore, DEVICE_STORAGE};
//! use corral_protocol::{link::Config, Instant};
//!
//! struct Board {
//!     files: RamStore<4, 1024>,
//! }
//!
//! impl Platform for Board {
//!     type Files = RamStore<4, 1024>;
//!     fn identity(&self) -> Identity<'_> {
//!         Identity { name: "bench-1", board: "demo", serial: "", firmware: "0.1.0", boot_id: 0x5eed }
//!     }
//!     fn files(&mut self) -> Option<&mut Self::Files> {
//!         Some(&mut self.files)
//!     }
//!     fn reset(&mut self) {
//!         // A real board calls its reset here (cortex_m::peripheral::SCB::sys_reset()).
//!     }
//! }
//!
//! # fn read_uart(_: &mut [u8]) -> usize { 0 }
//! # fn write_uart(_: &[u8]) {}
//! # fn now() -> Instant { Instant::ZERO }
//! # fn sleep_until(_: Option<Instant>) {}
//! let board = Board { files: RamStore::new() };
//! let mut agent: DeviceAgent<Board> =
//!     DeviceAgent::new(Config::device(), [0; DEVICE_STORAGE], board, now()).unwrap();
//! let mut rx = [0u8; 64];
//! let mut tx = [0u8; 600];
//! # for _ in 0..3 {
//! // loop {
//!     let n = read_uart(&mut rx);
//!     agent.receive(now(), &rx[..n]);
//!     agent.poll(now());
//!     loop {
//!         let n = agent.poll_transmit(now(), &mut tx);
//!         if n == 0 {
//!             break;
//!         }
//!         write_uart(&tx[..n]);
//!     }
//!     // Wakes early when a byte arrives. `Some(Instant::ZERO)` means "don't sleep".
//!     sleep_until(agent.poll_timeout());
//! // }
//! # }
//! ```
//!
//! # Memory
//!
//! [`DeviceAgent`] is the configuration sized for a Cortex-M3 with 8 KiB of
//! static RAM for the whole firmware. On `thumbv7m-none-eabi` it takes
//! 5464 bytes plus the platform value: the link with [`Config::device`] is
//! 4736 of them (3672 bytes of buffers and its state), each of the 2 command
//! slots 288 (64 bytes of arguments, 128 of output, state), the rest a few
//! words. A `RamStore<4, 1024>` adds 1424 bytes. With the main loop's
//! buffers (64 + 600 bytes) and the board layer that leaves a few hundred
//! bytes of the 8 KiB. The crate's tests check this budget on the host
//! (whose sizes are never smaller).
//!
//! The link storage may be an array inside the agent (as above) or a
//! `&'static mut [u8; DEVICE_STORAGE]` taken from a `static` with
//! `cortex_m::singleton!`, which keeps the agent value small enough to build
//! on the stack and move.
//!
//! [`Config::device`]: corral_protocol::link::Config::device

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(test)]
extern crate std;

mod agent;
mod builtin;
mod command;
mod platform;
mod ram_store;
mod store;
mod text;
mod wire;

pub use agent::{
    Agent, CHUNKS_PER_POLL, DATA_CHUNK, MESSAGES_PER_POLL, REPLY_RESERVE, RESET_GRACE,
};
pub use builtin::builtins;
pub use command::{Command, Ctx, Printer, Step, Writer, STATE_WORDS};
pub use platform::{Identity, Platform};
pub use ram_store::{RamHandle, RamStore, MAX_NAME};
pub use store::{FileStore, NoFiles, StoreError, StoreInfo};

/// Bytes of link storage for [`Config::device`](corral_protocol::link::Config::device)
/// (its [`storage_len`](corral_protocol::link::Config::storage_len)).
pub const DEVICE_STORAGE: usize = 1536 + 1536 + 600;

/// The agent configuration for a microcontroller with [`Config::device`]
/// link buffers held in the agent: 8 segments in flight, 2 command slots,
/// 64 bytes of arguments and 128 bytes of output per slot.
///
/// [`Config::device`]: corral_protocol::link::Config::device
pub type DeviceAgent<P> = Agent<P, [u8; DEVICE_STORAGE], 8, 2, 64, 128>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_storage_matches_the_device_config() {
        assert_eq!(
            DEVICE_STORAGE,
            corral_protocol::link::Config::device().storage_len()
        );
    }
}
