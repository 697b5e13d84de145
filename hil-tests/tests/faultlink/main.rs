//! End-to-end tests of the fault link over loopback sockets and real ptys.
//!
//! One test binary with modules, so the suite links once.

mod common;

mod cli;
mod control;
mod cut;
mod faults;
mod forwarding;
mod pacing;
