//! The `corral-agent` binary.
//!
//! The command line (`--root`, transports) and the protocol session are wired
//! to the library's `exec` and `files` layers in a later step; until then the
//! binary says so instead of pretending to serve.

fn main() -> std::process::ExitCode {
    eprintln!("corral-agent: the protocol session is not wired in yet; nothing to run");
    std::process::ExitCode::from(2)
}
