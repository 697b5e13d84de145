//! Corral's wire protocol, shared by the firmware agent, `corral-agent` and
//! the gateway. `no_std`, no allocation, no `unsafe`.
//!
//! Layers, bottom up (the full specification is `docs/protocol.md`):
//!
//! - [`frame`]: COBS frames with a CRC-32C, delimited by `0x00`, that survive a
//!   noisy UART and share it with console text.
//! - [`wire`]: the link's datagrams (HELLO, REJECT, SEG) as validated
//!   representations.
//! - [`link`]: the sans-IO state machine: handshake, reliable pipelined
//!   delivery with selective acknowledgements, flow control by window,
//!   keepalive, reboot detection, adaptive frame size.
//! - [`message`]: the postcard-encoded messages (exec, files, logs, errors)
//!   carried as records on the link, and [`credit`] for per-request flow
//!   control. [`codec`] reads and writes the same bytes without serde, for
//!   firmware (`Envelope::decode_kinds` / `encode_kinds`).
//! - [`auth`]: the challenge–response that guards TCP transports.
//!
//! A link is driven with bytes and time in, bytes and events out:
//!
//! ```no_run
//! # use corral_protocol::{link::{Config, Link, Event}, Instant};
//! # fn now() -> Instant { Instant::ZERO }
//! # fn read_uart(_: &mut [u8]) -> usize { 0 }
//! # fn write_uart(_: &[u8]) {}
//! let cfg = Config::device();
//! let mut link = Link::<[u8; 3672], 8>::new(cfg, [0; 3672], 0x5eed, now()).unwrap();
//! let mut rx = [0u8; 64];
//! let mut tx = [0u8; 600];
//! loop {
//!     let n = read_uart(&mut rx);
//!     link.receive(now(), &rx[..n]);
//!     while let Some(event) = link.poll_event() {
//!         if let Event::Message(bytes) = event { /* decode and handle */ }
//!     }
//!     let n = link.poll_transmit(now(), &mut tx);
//!     write_uart(&tx[..n]);
//!     // sleep until link.poll_timeout() or the next received byte
//! }
//! ```

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(any(feature = "std", feature = "sim"))]
extern crate std;

pub mod auth;
mod cobs;
pub mod codec;
pub mod credit;
pub mod features;
pub mod frame;
pub mod link;
pub mod message;
pub mod schema;
mod seq;
#[cfg(feature = "sim")]
pub mod sim;
pub mod time;
pub mod wire;

pub use link::{Config, Event, Link, LinkStats, SendError, State};
pub use message::{Body, Envelope};
pub use time::Instant;
