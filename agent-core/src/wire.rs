//! Encoding messages straight into the link's send buffer.
//!
//! Two messages carry data the agent does not hold in one piece: `Data`
//! (read from the store) and `DeviceInfo` (the command names, from two
//! tables). Instead of assembling them in a buffer of their own, they are
//! written in place: postcard encodes a message as its fields in order
//! (varints, and strings or byte strings as a varint length and the bytes;
//! see `corral_protocol::schema`), so the fixed fields are written with the
//! protocol's firmware codec (`corral_protocol::codec`) and the variable
//! tail after them. The tests decode the result with [`Envelope::decode`]
//! to keep this honest.

use corral_protocol::codec::{Wire, Writer};
use corral_protocol::link::Link;
use corral_protocol::message::{Envelope, Limits};

use crate::platform::Identity;

/// Wire kind of `Body::DeviceInfo`.
pub(crate) const KIND_DEVICE_INFO: u32 = 1;
/// Wire kind of `Body::Exec`.
pub(crate) const KIND_EXEC: u32 = 4;
/// Wire kind of `Body::Stdin`.
pub(crate) const KIND_STDIN: u32 = 6;
/// Wire kind of `Body::Data`.
pub(crate) const KIND_DATA: u32 = 18;

/// The kinds the agent decodes ([`Envelope::decode_kinds`]): the requests it
/// handles. The replies in [`IGNORED_KINDS`] are dropped and everything else
/// (`Stdin`, `Attach`, and what only a device sends) is answered with
/// `Unsupported`, both without being decoded, so the firmware carries no
/// decoder for them.
pub(crate) const RECEIVED_KINDS: u32 = kinds(&[
    0,  // Hello
    2,  // Ping
    4,  // Exec
    10, // Cancel
    11, // Credit
    13, // PutOpen
    15, // Write
    16, // Commit
    17, // Get
    19, // Stat
    21, // List
    23, // Remove
    24, // Hash
    26, // Reset
]);

/// Replies to requests this device never makes (`Pong`, `Ok`, `Error`,
/// `Unsupported`): dropped unread. Answering them, even with `Unsupported`,
/// could start an endless exchange with a gateway that answers everything.
pub(crate) const IGNORED_KINDS: u32 = kinds(&[3, 28, 29, 30]);

/// True if `kind` is in the mask `kinds`.
pub(crate) fn has_kind(kinds: u32, kind: u32) -> bool {
    1u32.checked_shl(kind).is_some_and(|bit| kinds & bit != 0)
}

/// The kinds the agent sends through [`send`] and [`queue`]
/// ([`Envelope::encode_kinds`]); `Data` and `DeviceInfo` are written in
/// place by [`data`] and [`device_info`]. Only these encoders are built in.
pub(crate) const SENT_KINDS: u32 = kinds(&[
    3,  // Pong
    5,  // Started
    8,  // Output
    9,  // Exit
    11, // Credit
    14, // PutReady
    20, // StatReply
    22, // Entry
    25, // HashReply
    27, // Log
    28, // Ok
    29, // Error
    30, // Unsupported
]);

/// A kind mask with the bits of `list` set.
const fn kinds(list: &[u32]) -> u32 {
    let mut mask = 0;
    let mut i = 0;
    while i < list.len() {
        mask |= 1 << list[i];
        i += 1;
    }
    mask
}

/// Worst-case bytes of a `Data` message besides its data: request id (5),
/// kind (1), offset (10), length (3).
pub(crate) const DATA_OVERHEAD: usize = 19;

/// Queues `env`; false if it does not fit (nothing is queued).
pub(crate) fn send<B: AsRef<[u8]> + AsMut<[u8]>, const S: usize>(
    link: &mut Link<B, S>,
    env: &Envelope<'_>,
) -> bool {
    link.send_with(|buf| env.encode_kinds::<SENT_KINDS>(buf))
        .is_ok()
}

/// Queues `env` if it fits while leaving `headroom` bytes of the send
/// buffer free. False if it does not fit now (nothing is queued).
pub(crate) fn queue<B: AsRef<[u8]> + AsMut<[u8]>, const S: usize>(
    link: &mut Link<B, S>,
    headroom: usize,
    env: &Envelope<'_>,
) -> bool {
    let Some(room) = link.send_capacity().checked_sub(headroom) else {
        return false;
    };
    link.send_with(|buf| {
        let room = room.min(buf.len());
        env.encode_kinds::<SENT_KINDS>(buf.get_mut(..room)?)
    })
    .is_ok()
}

/// Encodes a `Data` message of up to `want` bytes at `offset` into `buf`:
/// `read` fills the data part and returns how much it wrote. Returns the
/// message length, `None` if `read` did or nothing fits.
pub(crate) fn data(
    buf: &mut [u8],
    id: u32,
    offset: u64,
    want: usize,
    read: impl FnOnce(&mut [u8]) -> Option<usize>,
) -> Option<usize> {
    let head = data_header(buf, id, offset, want)?;
    let got = read(buf.get_mut(head..)?.get_mut(..want)?)?.min(want);
    if got == want {
        return Some(head + want);
    }
    // A short read: the length prefix shrinks (or stays). The header for
    // `got` is measured in a scratch buffer, the data moves down behind
    // it, and then the header is written in front.
    let mut short = [0u8; DATA_OVERHEAD];
    let new_head = data_header(&mut short, id, offset, got)?;
    buf.get_mut(new_head..head + got)?
        .copy_within(head.checked_sub(new_head)?.., 0);
    data_header(buf, id, offset, got)?;
    Some(new_head + got)
}

/// Writes the part of a `Data` message before its bytes (request id, kind,
/// offset, length) at the start of `buf`; returns its length.
fn data_header(buf: &mut [u8], id: u32, offset: u64, len: usize) -> Option<usize> {
    let mut w = Writer::new(buf);
    id.write(&mut w)?;
    KIND_DATA.write(&mut w)?;
    offset.write(&mut w)?;
    w.varint(len as u64)?;
    Some(w.len())
}

/// Encodes the `DeviceInfo` reply, with `names` as its command list, into
/// `buf`. Returns the length, `None` if it does not fit.
pub(crate) fn device_info<'n>(
    buf: &mut [u8],
    id: u32,
    who: &Identity<'_>,
    limits: &Limits,
    names: impl Iterator<Item = &'n str> + Clone,
) -> Option<usize> {
    let mut w = Writer::new(buf);
    id.write(&mut w)?;
    KIND_DEVICE_INFO.write(&mut w)?;
    for s in [who.name, who.board, who.serial, who.firmware] {
        s.write(&mut w)?;
    }
    who.boot_id.write(&mut w)?;
    limits.write(&mut w)?;
    // The command list is one string: every name followed by a NUL.
    let total: usize = names.clone().map(|n| n.len() + 1).sum();
    w.varint(total as u64)?;
    for name in names {
        w.raw(name.as_bytes())?;
        w.byte(0)?;
    }
    Some(w.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use corral_protocol::message::{Body, Data, DeviceInfo, ExecRequest, StrList};

    #[test]
    fn kinds_match_the_protocol() {
        let data = Body::Data(Data {
            offset: 0,
            data: &[],
        });
        assert_eq!(data.kind(), KIND_DATA);
        assert_eq!(Body::Stdin(&[]).kind(), KIND_STDIN);
        let exec = Body::Exec(ExecRequest {
            argv: StrList::EMPTY,
            env: StrList::EMPTY,
            cwd: "",
            timeout_ms: 0,
            stdin: false,
            credit: 0,
            token: 0,
        });
        assert_eq!(exec.kind(), KIND_EXEC);
    }

    #[test]
    fn received_kinds_are_the_handled_requests_and_the_ignored_replies() {
        use corral_protocol::message::{ErrorCode, ErrorReply, FileHash, Get, HostHello, PutOpen};
        let exec = ExecRequest {
            argv: StrList::EMPTY,
            env: StrList::EMPTY,
            cwd: "",
            timeout_ms: 0,
            stdin: false,
            credit: 0,
            token: 0,
        };
        let received = [
            Body::Hello(HostHello {
                name: "",
                software: "",
            }),
            Body::Ping(0),
            Body::Pong(0),
            Body::Exec(exec),
            Body::Cancel,
            Body::Credit(0),
            Body::PutOpen(PutOpen {
                path: "",
                size: 0,
                sha256: [0; 32],
                mode: 0,
            }),
            Body::Write(corral_protocol::message::Write {
                offset: 0,
                data: &[],
            }),
            Body::Commit,
            Body::Get(Get {
                path: "",
                offset: 0,
                credit: 0,
            }),
            Body::Stat(""),
            Body::List(""),
            Body::Remove(""),
            Body::Hash(""),
            Body::Reset,
            Body::Ok,
            Body::Error(ErrorReply {
                code: ErrorCode::IO,
                message: "",
            }),
            Body::Unsupported(0),
        ];
        let mask = received.iter().fold(0, |m, b| m | 1 << b.kind());
        assert_eq!(RECEIVED_KINDS | IGNORED_KINDS, mask);
        assert_eq!(RECEIVED_KINDS & IGNORED_KINDS, 0);
        assert!(has_kind(IGNORED_KINDS, 29) && !has_kind(IGNORED_KINDS, 40));
        // A kind outside the mask is reported unknown, so it gets
        // `Unsupported`, as before.
        let mut buf = [0u8; 64];
        let hash = Body::HashReply(FileHash {
            size: 1,
            sha256: [0; 32],
        });
        let n = Envelope::new(9, hash).encode(&mut buf).unwrap();
        assert_eq!(
            Envelope::decode_kinds::<RECEIVED_KINDS>(&buf[..n]),
            Err(corral_protocol::message::DecodeError::UnknownKind {
                id: 9,
                kind: hash.kind()
            })
        );
        for body in received {
            let n = Envelope::new(9, body).encode(&mut buf).unwrap();
            if has_kind(RECEIVED_KINDS, body.kind()) {
                let env = Envelope::decode_kinds::<RECEIVED_KINDS>(&buf[..n]).unwrap();
                assert_eq!(env.body, body);
            }
        }
    }

    #[test]
    fn sent_kinds_are_what_the_agent_sends() {
        use corral_protocol::message::{
            ErrorCode, ErrorReply, ExitReason, ExitReport, FileHash, FileKind, FileStat, LogLevel,
            LogLine, Output, PutReady, Started, Stream,
        };
        let stat = FileStat {
            kind: FileKind::File,
            size: 1,
            mode: 0o644,
            mtime: 0,
        };
        let sent = [
            Body::Pong(1),
            Body::Started(Started { pid: 0 }),
            Body::Output(Output {
                stream: Stream::Stdout,
                data: b"x",
            }),
            Body::Exit(ExitReport {
                reason: ExitReason::Exited,
                code: 0,
                signal: 0,
                duration_ms: 1,
                output_dropped: 0,
                detail: "",
            }),
            Body::Credit(1),
            Body::PutReady(PutReady { have: 0, credit: 1 }),
            Body::StatReply(stat),
            Body::Entry(corral_protocol::message::DirEntry { name: "f", stat }),
            Body::HashReply(FileHash {
                size: 1,
                sha256: [1; 32],
            }),
            Body::Log(LogLine {
                level: LogLevel::INFO,
                text: "hi",
            }),
            Body::Ok,
            Body::Error(ErrorReply {
                code: ErrorCode::IO,
                message: "e",
            }),
            Body::Unsupported(6),
        ];
        let mask = sent.iter().fold(0, |m, b| m | 1 << b.kind());
        assert_eq!(SENT_KINDS, mask);
        for body in sent {
            let env = Envelope::new(3, body);
            let (mut a, mut b) = ([0u8; 64], [0u8; 64]);
            let n = env.encode_kinds::<SENT_KINDS>(&mut a).unwrap();
            assert_eq!(Some(n), env.encode(&mut b));
            assert_eq!(a[..n], b[..n]);
        }
    }

    #[test]
    fn data_decodes_after_a_full_and_a_short_read() {
        let mut buf = [0u8; 400];
        let content: std::vec::Vec<u8> = (0..=255u8).cycle().take(300).collect();
        let n = data(&mut buf, 0xdead_beef, 1 << 40, 300, |dst| {
            dst.copy_from_slice(&content);
            Some(300)
        })
        .unwrap();
        let env = Envelope::decode(&buf[..n]).unwrap();
        assert_eq!(env.id, 0xdead_beef);
        assert_eq!(
            env.body,
            Body::Data(Data {
                offset: 1 << 40,
                data: &content
            })
        );
        // 300 needs a two-byte length, 100 one: the data must move.
        let n = data(&mut buf, 7, 5, 300, |dst| {
            dst[..100].copy_from_slice(&content[..100]);
            Some(100)
        })
        .unwrap();
        let env = Envelope::decode(&buf[..n]).unwrap();
        assert_eq!(
            env.body,
            Body::Data(Data {
                offset: 5,
                data: &content[..100]
            })
        );
        assert_eq!(
            n,
            Envelope::new(7, env.body).encode(&mut [0u8; 400]).unwrap()
        );
    }

    #[test]
    fn device_info_decodes_with_its_command_list() {
        let who = Identity {
            name: "bench-1",
            board: "lm3s6965",
            serial: "SN42",
            firmware: "1.2.3",
            boot_id: 0x1234_5678,
        };
        let limits = Limits {
            max_commands: 2,
            storage_bytes: 1024,
            storage_free: 1000,
            max_file: 1023,
        };
        let mut buf = [0u8; 200];
        let n = device_info(&mut buf, 3, &who, &limits, ["echo", "sleep"].into_iter()).unwrap();
        let env = Envelope::decode(&buf[..n]).unwrap();
        assert_eq!(env.id, 3);
        assert_eq!(
            env.body,
            Body::DeviceInfo(DeviceInfo {
                name: "bench-1",
                board: "lm3s6965",
                serial: "SN42",
                firmware: "1.2.3",
                boot_id: 0x1234_5678,
                limits,
                commands: StrList("echo\0sleep\0"),
            })
        );
        assert_eq!(
            device_info(&mut buf[..20], 3, &who, &limits, ["echo"].into_iter()),
            None
        );
    }
}
