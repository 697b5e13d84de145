//! The Corral gateway: the host daemon that owns the devices attached to one
//! PC, and the library behind the `corral` CLI.
//!
//! * [`gateway`] — the daemon's core: one task per device, leases, jobs;
//! * [`api`] — its local HTTP API (`gateway/openapi.yaml`) and the client
//!   the CLI uses;
//! * [`cli`] — the `corral` command, one module per subcommand;
//! * [`config`] — the device inventory and job files (TOML), validated with
//!   errors that name file, line, column and key;
//! * [`report`] — job results, as JSON for storage, JUnit XML for CI and a
//!   table for the terminal;
//! * [`scan`] — serial port discovery for `corral scan`, rendering
//!   ready-to-paste inventory entries.
//!
//! ```
//! use std::path::Path;
//! use corral_gateway::config::Inventory;
//!
//! let inventory = Inventory::parse(
//!     r#"
//!     [[device]]
//!     name = "pico-1"
//!     labels = ["board=rp2040"]
//!     serial = { usb_serial = "E6614C311B7A2C2B" }
//!     "#,
//!     Path::new("gateway.toml"),
//! )?;
//! assert_eq!(inventory.devices[0].name, "pico-1");
//! # Ok::<(), corral_gateway::config::ConfigError>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod cli;
pub mod config;
pub mod demo;
pub mod device;
pub mod gateway;
pub mod lease;
pub mod report;
pub mod runner;
pub mod scan;
pub mod transfer;

pub use gateway::{Gateway, LookupError, RunError, Target};
