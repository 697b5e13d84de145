//! Configuration files: the gateway's device inventory and job files.
//!
//! Both are TOML, read with `deny_unknown_fields` and validated straight after
//! parsing, so that a typo is an error naming the file, line, column and key,
//! never a silently ignored setting. All problems found by validation are
//! reported together ([`ConfigError::Invalid`]).

mod diag;
pub mod inventory;
pub mod job;
pub mod label;

pub use diag::{ConfigError, Diagnostic};
pub use inventory::Inventory;
pub use job::Job;
pub use label::Label;
