//! One module per `corral` subcommand. Each has a `Cmd` (clap derive; its
//! doc comment is the `--help` text) and a `run` function returning the
//! exit status.

pub mod console;
pub mod demo;
pub mod devices;
pub mod exec;
pub mod gateway;
pub mod hash;
pub mod info;
pub mod lock;
pub mod ls;
pub mod pull;
pub mod push;
pub mod reset;
pub mod rm;
pub mod run;
pub mod scan;
pub mod stat;
pub mod unlock;
