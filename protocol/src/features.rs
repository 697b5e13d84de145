//! Feature bits offered in the HELLO. A session uses the features both sides
//! offer; a request for a feature the peer lacks is answered `Unsupported`.

/// Runs commands ([`Body::Exec`](crate::message::Body::Exec)).
pub const EXEC: u32 = 1 << 0;
/// Has a file store (put, get, stat, list, remove, hash).
pub const FILES: u32 = 1 << 1;
/// Commands can read stdin.
pub const STDIN: u32 = 1 << 2;
/// Can restart itself ([`Body::Reset`](crate::message::Body::Reset)).
pub const RESET: u32 = 1 << 3;
/// Sends log lines.
pub const LOGS: u32 = 1 << 4;
/// Keeps commands running across a lost link and lets the host re-attach.
pub const ATTACH: u32 = 1 << 5;

/// Every feature this version defines.
pub const ALL: u32 = EXEC | FILES | STDIN | RESET | LOGS | ATTACH;
