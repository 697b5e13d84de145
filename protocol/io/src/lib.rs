//! Runs a [`corral_protocol`] link over tokio byte streams.
//!
//! The protocol crate is sans-IO; this crate is its one I/O driver on hosts,
//! shared by `corral-agent` and the gateway so both run the same code:
//!
//! - [`driver`]: a task that owns a transport and a [`Link`](corral_protocol::Link),
//!   feeds it bytes and time, writes what it emits, and talks to the
//!   application through channels with backpressure.
//! - [`transport`]: opening serial ports (exclusively, raw, with DTR/RTS
//!   control), TCP with the challenge–response of [`corral_protocol::auth`], and
//!   stdio.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use corral_io::driver::{spawn_link, LinkEvent};
//! let stream = tokio::net::TcpStream::connect("127.0.0.1:7878").await?;
//! let (tx, mut rx) = spawn_link(stream, corral_protocol::Config::stream(), corral_io::new_session_id());
//! while let Some(event) = rx.recv().await {
//!     if let LinkEvent::Connected(info) = event {
//!         println!("connected to session {:08x}", info.peer_session);
//!         tx.send(b"...".to_vec()).await.ok();
//!     }
//! }
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod driver;
pub mod transport;

/// A random, non-zero session id: a host's equivalent of a boot id. A new
/// one for every link makes the peer notice that this side restarted.
pub fn new_session_id() -> u32 {
    loop {
        let id: u32 = rand::random();
        if id != 0 {
            return id;
        }
    }
}
