//! `corral-agent`: the Corral agent for devices with an operating system
//! (Linux boards, PCs).
//!
//! This library holds the agent's OS-facing layers, independent of the wire
//! protocol:
//!
//! - [`exec`] runs real processes for a remote caller: process groups,
//!   timeouts, cancel, streamed output with backpressure, output tails while
//!   the link is down.
//! - [`files`] is the file store under one root directory: escape-proof path
//!   resolution, atomic resumable puts, get, stat, list, remove, hash.
//!
//! The protocol session that drives them lives in its own module and maps
//! their types to wire messages.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod exec;
pub mod files;
