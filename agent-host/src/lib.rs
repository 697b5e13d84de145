//! `corral-agent`: the Corral agent for devices with an operating system
//! (Linux boards, PCs).
//!
//! The binary serves the Corral protocol over TCP, a serial port or stdio;
//! this library is everything behind it:
//!
//! - [`exec`] runs real processes for a remote caller: process groups,
//!   timeouts, cancel, streamed output with backpressure, output tails while
//!   the link is down.
//! - [`files`] is the file store under one root directory: escape-proof path
//!   resolution, atomic resumable puts, get, stat, list, remove, hash.
//! - [`session`] speaks the protocol on one link and maps requests onto
//!   `exec` and `files`; [`agent`] holds what outlives a link (the executor,
//!   commands waiting to be re-attached, the boot id); `detached` keeps
//!   the commands whose link was lost.
//! - [`serve`] is the transports: a TCP listener with a pre-shared key, a
//!   serial port that is reopened when it disappears, stdio.
//!
//! ```no_run
//! use corral_agent::agent::{Agent, AgentOptions};
//! use corral_agent::files::FileStore;
//! use corral_agent::identity::Identity;
//! use corral_agent::serve::TcpServer;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let store = FileStore::open("/var/lib/corral")?;
//! let options = AgentOptions {
//!     identity: Identity::discover(None, None),
//!     exec: Default::default(),
//!     keep: Default::default(),
//!     reset_command: None,
//! };
//! let agent = Agent::new(store, options, None)?;
//! let key = corral_io::transport::load_key_file("/etc/corral/agent.key".as_ref())?;
//! let server = TcpServer::bind("0.0.0.0:7878".parse()?, Some(key)).await?;
//! let (_stop_tx, stop) = tokio::sync::watch::channel(false);
//! server.run(agent, stop).await;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod agent;
mod detached;
pub mod exec;
pub mod files;
pub mod identity;
pub mod logfwd;
pub mod serve;
pub mod session;

pub use detached::KeepPolicy;
