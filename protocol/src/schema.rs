//! The protocol version and the schema hash exchanged in the handshake.
//!
//! [`SCHEMA`] is the canonical description of every message, in wire order.
//! Its hash goes into every HELLO: two builds with the same version but
//! different schemas refuse each other instead of misreading messages. Change
//! a message → change this text → the golden vectors and this hash change, and
//! the `schema_lists_every_body_kind_in_wire_order` test keeps the text honest.

use crate::wire::Version;

/// This implementation's protocol version.
pub const VERSION: Version = Version { major: 1, minor: 0 };

/// Every message body, in wire order (the line number is the kind), with its
/// fields in encoding order. postcard encodes integers as varints (zig-zag for
/// signed), `str` and bytes as a varint length and the bytes, enums as a
/// varint variant index, `bool` as one byte, `[u8; 32]` as 32 bytes.
pub const SCHEMA: &str = "\
Envelope { id: u32, body: Body }
0 Hello { name: str, software: str }
1 DeviceInfo { name: str, board: str, serial: str, firmware: str, boot_id: u32, limits: Limits { max_commands: u16, storage_bytes: u64, storage_free: u64, max_file: u64 }, commands: strlist }
2 Ping(u64)
3 Pong(u64)
4 Exec { argv: strlist, env: strlist, cwd: str, timeout_ms: u32, stdin: bool, credit: u32, token: u64 }
5 Started { pid: u32 }
6 Stdin(bytes)
7 StdinClose
8 Output { stream: enum { Stdout, Stderr }, data: bytes }
9 Exit { reason: enum { Exited, Signaled, TimedOut, Cancelled, FailedToStart }, code: i32, signal: u8, duration_ms: u64, output_dropped: u64, detail: str }
10 Cancel
11 Credit(u32)
12 Attach(u64)
13 PutOpen { path: str, size: u64, sha256: [u8; 32], mode: u32 }
14 PutReady { have: u64, credit: u32 }
15 Write { offset: u64, data: bytes }
16 Commit
17 Get { path: str, offset: u64, credit: u32 }
18 Data { offset: u64, data: bytes }
19 Stat(str)
20 StatReply { kind: enum { File, Dir, Symlink, Other }, size: u64, mode: u32, mtime: i64 }
21 List(str)
22 Entry { name: str, stat: StatReply }
23 Remove(str)
24 Hash(str)
25 HashReply { size: u64, sha256: [u8; 32] }
26 Reset
27 Log { level: u8, text: str }
28 Ok
29 Error { code: u16, message: str }
30 Unsupported(u32)
";

/// 32-bit FNV-1a of [`SCHEMA`].
pub const SCHEMA_HASH: u32 = fnv1a(SCHEMA.as_bytes());

const fn fnv1a(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u32;
        h = h.wrapping_mul(0x0100_0193);
        i += 1;
    }
    h
}
