//! Property tests of the messages (`docs/protocol.md` §6): every body kind
//! round-trips with any field values, and decoding never panics on any
//! bytes.

use corral_protocol::message::{
    Body, Data, DecodeError, DeviceInfo, DirEntry, Envelope, ErrorCode, ErrorReply, ExecRequest,
    ExitReason, ExitReport, FileHash, FileKind, FileStat, Get, HostHello, Limits, LogLevel,
    LogLine, Output, PutOpen, PutReady, Started, StrList, Stream, Write, ALL_KINDS, BODY_KINDS,
};
use proptest::collection::vec;
use proptest::prelude::*;

/// Owned material for one message of any kind; [`body`] borrows from it.
#[derive(Debug, Clone)]
struct Raw {
    id: u32,
    kind: u32,
    s: [String; 4],
    bytes: Vec<u8>,
    n: [u64; 4],
    signed: i64,
    flag: bool,
    sha: [u8; 32],
    small: u8,
}

/// Strings with any characters, NUL and multi-byte ones included.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => "(?s).{0,24}",
        1 => "[a-z/\\x00=]{0,16}",
    ]
}

/// Numbers that hit every varint length, not only the long ones.
fn number() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        0u64..200,
        (0u32..64).prop_map(|b| 1u64 << b),
        (1u32..64).prop_map(|b| (1u64 << b) - 1)
    ]
}

fn raw() -> impl Strategy<Value = Raw> {
    (
        prop_oneof![any::<u32>(), 0u32..300],
        0..BODY_KINDS,
        proptest::array::uniform4(text()),
        vec(any::<u8>(), 0..64),
        proptest::array::uniform4(number()),
        prop_oneof![any::<i64>(), -300i64..300],
        any::<bool>(),
        any::<[u8; 32]>(),
        any::<u8>(),
    )
        .prop_map(|(id, kind, s, bytes, n, signed, flag, sha, small)| Raw {
            id,
            kind,
            s,
            bytes,
            n,
            signed,
            flag,
            sha,
            small,
        })
}

/// The body of kind `r.kind`, its fields taken from `r`.
fn body(r: &Raw) -> Body<'_> {
    let [a, b, c, d] = &r.s;
    let [n0, n1, n2, n3] = r.n;
    let stat = FileStat {
        kind: [
            FileKind::File,
            FileKind::Dir,
            FileKind::Symlink,
            FileKind::Other,
        ][(n3 % 4) as usize],
        size: n1,
        mode: n2 as u32,
        mtime: r.signed,
    };
    match r.kind {
        0 => Body::Hello(HostHello {
            name: a,
            software: b,
        }),
        1 => Body::DeviceInfo(DeviceInfo {
            name: a,
            board: b,
            serial: c,
            firmware: d,
            boot_id: n0 as u32,
            limits: Limits {
                max_commands: n1 as u16,
                storage_bytes: n1,
                storage_free: n2,
                max_file: n3,
            },
            commands: StrList(d),
        }),
        2 => Body::Ping(n0),
        3 => Body::Pong(n0),
        4 => Body::Exec(ExecRequest {
            argv: StrList(a),
            env: StrList(b),
            cwd: c,
            timeout_ms: n0 as u32,
            stdin: r.flag,
            credit: n1 as u32,
            token: n2,
        }),
        5 => Body::Started(Started { pid: n0 as u32 }),
        6 => Body::Stdin(&r.bytes),
        7 => Body::StdinClose,
        8 => Body::Output(Output {
            stream: if r.flag {
                Stream::Stderr
            } else {
                Stream::Stdout
            },
            data: &r.bytes,
        }),
        9 => Body::Exit(ExitReport {
            reason: [
                ExitReason::Exited,
                ExitReason::Signaled,
                ExitReason::TimedOut,
                ExitReason::Cancelled,
                ExitReason::FailedToStart,
            ][(n0 % 5) as usize],
            code: r.signed as i32,
            signal: r.small,
            duration_ms: n1,
            output_dropped: n2,
            detail: a,
        }),
        10 => Body::Cancel,
        11 => Body::Credit(n0 as u32),
        12 => Body::Attach(n0),
        13 => Body::PutOpen(PutOpen {
            path: a,
            size: n0,
            sha256: r.sha,
            mode: n1 as u32,
        }),
        14 => Body::PutReady(PutReady {
            have: n0,
            credit: n1 as u32,
        }),
        15 => Body::Write(Write {
            offset: n0,
            data: &r.bytes,
        }),
        16 => Body::Commit,
        17 => Body::Get(Get {
            path: a,
            offset: n0,
            credit: n1 as u32,
        }),
        18 => Body::Data(Data {
            offset: n0,
            data: &r.bytes,
        }),
        19 => Body::Stat(a),
        20 => Body::StatReply(stat),
        21 => Body::List(a),
        22 => Body::Entry(DirEntry { name: a, stat }),
        23 => Body::Remove(a),
        24 => Body::Hash(a),
        25 => Body::HashReply(FileHash {
            size: n0,
            sha256: r.sha,
        }),
        26 => Body::Reset,
        27 => Body::Log(LogLine {
            level: LogLevel(r.small),
            text: a,
        }),
        28 => Body::Ok,
        29 => Body::Error(ErrorReply {
            code: ErrorCode(n0 as u16),
            message: a,
        }),
        30 => Body::Unsupported(n0 as u32),
        k => panic!("kind {k} has no strategy: add one for the new Body variant"),
    }
}

fn encode(env: &Envelope<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    let n = env.encode(&mut buf).expect("fits 4 KiB");
    buf.truncate(n);
    buf
}

/// Every kind has a strategy, and the strategy builds the kind it claims.
#[test]
fn strategies_cover_every_body_kind() {
    for kind in 0..BODY_KINDS {
        let r = Raw {
            id: 1,
            kind,
            s: Default::default(),
            bytes: Vec::new(),
            n: [0; 4],
            signed: 0,
            flag: false,
            sha: [0; 32],
            small: 0,
        };
        assert_eq!(body(&r).kind(), kind);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any message of any kind decodes to itself, byte for byte, and the
    /// kind number is the second varint on the wire.
    #[test]
    fn envelope_round_trips_for_every_kind(r in raw()) {
        let env = Envelope::new(r.id, body(&r));
        let bytes = encode(&env);
        prop_assert_eq!(Envelope::decode(&bytes), Ok(env));
        // The firmware's codec writes and reads the same bytes.
        let mut compact = vec![0u8; bytes.len()];
        prop_assert_eq!(env.encode_kinds::<ALL_KINDS>(&mut compact), Some(bytes.len()));
        prop_assert_eq!(&compact, &bytes);
        prop_assert_eq!(Envelope::decode_kinds::<ALL_KINDS>(&bytes), Ok(env));
        // Only the kinds asked for (here: all but Hello).
        prop_assert_eq!(env.encode_kinds::<{ ALL_KINDS & !1 }>(&mut compact).is_some(), r.kind != 0);
        prop_assert_eq!(
            Envelope::decode_kinds::<{ ALL_KINDS & !1 }>(&bytes).is_ok(),
            r.kind != 0
        );
        let (id, rest) = postcard::take_from_bytes::<u32>(&bytes).unwrap();
        let (kind, _) = postcard::take_from_bytes::<u32>(rest).unwrap();
        prop_assert_eq!((id, kind), (r.id, r.kind));
        // Too small a buffer is refused, never overrun.
        for short in [0, bytes.len() / 2, bytes.len() - 1] {
            let mut buf = vec![0u8; short];
            prop_assert_eq!(env.encode(&mut buf), None);
            prop_assert_eq!(env.encode_kinds::<ALL_KINDS>(&mut buf), None);
        }
    }

    /// Every proper prefix of a message fails to decode cleanly (no panic,
    /// no wrong value), and the request id is recovered once it is complete.
    #[test]
    fn truncated_messages_are_refused_with_their_id(r in raw()) {
        let env = Envelope::new(r.id, body(&r));
        let bytes = encode(&env);
        let id_len = bytes.len() - postcard::take_from_bytes::<u32>(&bytes).unwrap().1.len();
        for cut in 0..bytes.len() {
            prop_assert_eq!(
                Envelope::decode_kinds::<ALL_KINDS>(&bytes[..cut]),
                Envelope::decode(&bytes[..cut])
            );
            match Envelope::decode(&bytes[..cut]) {
                // A prefix may be a complete shorter message only if the
                // rest was a trailing part the decoder need not read; it
                // can never be a different message of this id and kind.
                Ok(other) => prop_assert!(false, "prefix {cut} of {bytes:02x?} decoded as {other:?}"),
                Err(DecodeError::Malformed) => prop_assert!(cut <= id_len),
                Err(DecodeError::BadBody { id, kind }) => prop_assert_eq!((id, kind), (r.id, r.kind)),
                Err(DecodeError::UnknownKind { .. }) => prop_assert!(false, "known kind reported unknown"),
            }
        }
    }

    /// Arbitrary bytes never panic the decoder; whatever decodes encodes to
    /// a canonical form that is no longer than the input and decodes to the
    /// same value; errors name a kind consistent with the error.
    #[test]
    fn decode_never_panics_and_what_decodes_re_encodes(bytes in vec(any::<u8>(), 0..300)) {
        prop_assert_eq!(Envelope::decode_kinds::<ALL_KINDS>(&bytes), Envelope::decode(&bytes));
        match Envelope::decode(&bytes) {
            Ok(env) => {
                let again = encode(&env);
                prop_assert!(again.len() <= bytes.len());
                prop_assert_eq!(Envelope::decode(&again), Ok(env));
            }
            Err(DecodeError::UnknownKind { kind, .. }) => prop_assert!(kind >= BODY_KINDS),
            Err(DecodeError::BadBody { kind, .. }) => prop_assert!(kind < BODY_KINDS),
            Err(DecodeError::Malformed) => {}
        }
    }

    /// Valid messages with a few bytes changed: the decoder's usual input
    /// from a buggy or hostile peer.
    #[test]
    fn mutated_messages_never_panic(
        r in raw(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = encode(&Envelope::new(r.id, body(&r)));
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        prop_assert_eq!(Envelope::decode_kinds::<ALL_KINDS>(&bytes), Envelope::decode(&bytes));
        if let Ok(env) = Envelope::decode(&bytes) {
            let again = encode(&env);
            prop_assert_eq!(Envelope::decode(&again), Ok(env));
        }
    }

    /// A list of items without NUL builds and reads back as the same items.
    #[test]
    fn strlist_build_and_iter_round_trip(items in vec("[^\\x00]{0,12}", 0..8)) {
        let need: usize = items.iter().map(|i| i.len() + 1).sum();
        let mut buf = vec![0u8; need];
        let list = StrList::build(&items, &mut buf).expect("fits exactly");
        prop_assert_eq!(list.0.len(), need);
        let back: Vec<&str> = list.iter().collect();
        prop_assert_eq!(&back, &items);
        prop_assert_eq!(list.len(), items.len());
        prop_assert_eq!(list.is_empty(), items.is_empty());
        // One byte short does not fit.
        if need > 0 {
            let mut small = vec![0u8; need - 1];
            prop_assert!(StrList::build(&items, &mut small).is_none());
        }
    }

    /// An item containing NUL cannot be put in a list.
    #[test]
    fn strlist_refuses_items_with_nul(before in "[a-z]{0,5}", after in "[a-z]{0,5}") {
        let item = format!("{before}\0{after}");
        let mut buf = vec![0u8; 64];
        prop_assert!(StrList::build([item.as_str()], &mut buf).is_none());
    }
}
