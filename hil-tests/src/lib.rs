//! Corral's hardware-in-the-loop test kit.
//!
//! Its first part is [`faultlink`], a fault-injecting byte pipe that sits between the
//! gateway and a device (real, emulated or a pty) and makes the line between them
//! lossy, noisy, slow or cut, on purpose and reproducibly. Every end-to-end suite can
//! run under noise by putting one in the middle; users get the same tool as the
//! `corral-faultlink` binary to test their own boards.
//!
//! ```no_run
//! use corral_hil_tests::faultlink::{Endpoint, FaultLink, Faults};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! // The gateway connects to the returned port; the link connects on to the agent.
//! let faults = Faults { baud: Some(115_200), corrupt: 0.001, ..Faults::default() };
//! let link = FaultLink::start(
//!     "tcp-listen:127.0.0.1:0".parse()?,
//!     "tcp:127.0.0.1:7878".parse()?,
//!     faults,
//!     42,
//! )
//! .await?;
//! println!("point the gateway at {}", link.a_addr());
//! link.shutdown().await;
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod faultlink;
