//! Property tests of the link datagrams (`docs/protocol.md` §3): emit and
//! parse are inverse for any field values, parsing never panics, and what
//! parses emits back to the same bytes (there is exactly one encoding).

use corral_protocol::wire::{
    session_tag, AckRepr, HelloRepr, RejectReason, RejectRepr, SegRepr, Version, WireError,
    KIND_HELLO, KIND_REJECT, KIND_SEG, MAX_SACK_BLOCKS, SEG_MAX_HEADER,
};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

fn version() -> impl Strategy<Value = Version> {
    (any::<u8>(), any::<u8>()).prop_map(|(major, minor)| Version { major, minor })
}

fn hello() -> impl Strategy<Value = HelloRepr> {
    (
        version(),
        any::<u8>(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        any::<u16>(),
        any::<u32>(),
        any::<u16>(),
    )
        .prop_map(
            |(
                version,
                flags,
                schema_hash,
                features,
                session,
                peer_session,
                max_segment,
                window,
                max_message,
            )| {
                HelloRepr {
                    version,
                    flags,
                    schema_hash,
                    features,
                    session,
                    peer_session,
                    max_segment,
                    window,
                    max_message,
                }
            },
        )
}

/// A reason as the wire carries it: codes 1-3 are named, others are kept.
fn reason() -> impl Strategy<Value = RejectReason> {
    any::<u8>().prop_map(|x| match x {
        1 => RejectReason::Version,
        2 => RejectReason::Schema,
        3 => RejectReason::Parameters,
        x => RejectReason::Other(x),
    })
}

fn reject() -> impl Strategy<Value = RejectRepr> {
    (
        reason(),
        any::<u32>(),
        any::<u32>(),
        version(),
        any::<u32>(),
    )
        .prop_map(
            |(reason, session, peer_session, version, schema_hash)| RejectRepr {
                reason,
                session,
                peer_session,
                version,
                schema_hash,
            },
        )
}

fn seg() -> impl Strategy<Value = SegRepr> {
    (
        any::<u8>(),
        option::of((any::<u32>(), any::<u32>()).prop_map(|(ack, window)| AckRepr { ack, window })),
        any::<bool>(),
        vec((any::<u32>(), any::<u32>()), 0..=MAX_SACK_BLOCKS),
        option::of(any::<u32>()),
    )
        .prop_map(|(tag, ack, ack_request, blocks, seq)| {
            let mut s = SegRepr::empty(tag);
            s.ack = ack;
            s.ack_request = ack_request;
            for (i, b) in blocks.iter().enumerate() {
                s.sacks[i] = *b;
            }
            s.sack_count = blocks.len() as u8;
            s.seq = seq;
            s
        })
}

fn emit_seg(s: &SegRepr, data: &[u8]) -> Vec<u8> {
    let mut h = [0u8; SEG_MAX_HEADER];
    let n = s.emit(&mut h);
    assert_eq!(n, s.header_len());
    [&h[..n], data].concat()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn hello_round_trips(h in hello(), extra in vec(any::<u8>(), 0..8)) {
        let mut b = [0u8; HelloRepr::LEN];
        h.emit(&mut b);
        prop_assert_eq!(HelloRepr::parse(&b), Ok(h));
        // A later minor version may append fields; they are ignored.
        prop_assert_eq!(HelloRepr::parse(&[&b[..], &extra].concat()), Ok(h));
        prop_assert_eq!(HelloRepr::parse(&b[..HelloRepr::LEN - 1]), Err(WireError::Truncated));
    }

    #[test]
    fn reject_round_trips(r in reject()) {
        let mut b = [0u8; RejectRepr::LEN];
        r.emit(&mut b);
        prop_assert_eq!(RejectRepr::parse(&b), Ok(r));
        prop_assert_eq!(RejectRepr::parse(&b[..RejectRepr::LEN - 1]), Err(WireError::Truncated));
    }

    #[test]
    fn seg_round_trips(s in seg(), data in vec(any::<u8>(), 0..64)) {
        let b = emit_seg(&s, &data);
        let (parsed, rest) = SegRepr::parse(&b).expect("emitted SEG parses");
        prop_assert_eq!(parsed, s);
        prop_assert_eq!(rest, &data[..]);
        // Cutting into the header is noticed, never misread.
        for cut in 0..s.header_len() {
            prop_assert_eq!(SegRepr::parse(&b[..cut]).map(|_| ()), Err(WireError::Truncated));
        }
    }

    /// Any bytes: no panic, and whatever parses emits back to exactly the
    /// bytes it was parsed from, so every datagram has one encoding.
    #[test]
    fn parsing_never_panics_and_is_canonical(
        kind in prop_oneof![Just(KIND_HELLO), Just(KIND_REJECT), Just(KIND_SEG), any::<u8>()],
        magic in any::<bool>(),
        rest in vec(any::<u8>(), 0..80),
    ) {
        let mut b = vec![kind];
        if magic {
            b.extend_from_slice(b"CR");
        }
        b.extend_from_slice(&rest);
        if let Ok(h) = HelloRepr::parse(&b) {
            let mut out = [0u8; HelloRepr::LEN];
            h.emit(&mut out);
            prop_assert_eq!(&out[..], &b[..HelloRepr::LEN]);
        }
        if let Ok(r) = RejectRepr::parse(&b) {
            let mut out = [0u8; RejectRepr::LEN];
            r.emit(&mut out);
            prop_assert_eq!(&out[..], &b[..RejectRepr::LEN]);
        }
        if let Ok((s, data)) = SegRepr::parse(&b) {
            prop_assert_eq!(emit_seg(&s, data), b.clone());
            prop_assert!(s.sack_blocks().len() <= MAX_SACK_BLOCKS);
        }
    }

    /// Both directions of a session compute the same tag.
    #[test]
    fn session_tag_is_symmetric(a in any::<u32>(), b in any::<u32>()) {
        prop_assert_eq!(session_tag(a, b), session_tag(b, a));
        prop_assert_eq!(session_tag(a, a), 0);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The largest segment a side announces in its HELLO always fits its
    /// own frame buffer, even with the longest SEG header and data without
    /// a single zero byte (the worst case for COBS). Otherwise a peer
    /// sending full-size segments would have every one dropped as
    /// oversized and the link would stall.
    #[test]
    fn announced_segment_fits_the_frame_buffer(frame_buffer in 64usize..20_000) {
        use corral_protocol::frame;
        use corral_protocol::link::Config;
        let cfg = Config { frame_buffer, max_segment: u16::MAX, ..Config::device() };
        let payload = usize::from(cfg.accepted_segment());
        let body = vec![0xa5u8; SEG_MAX_HEADER + payload];
        let mut out = vec![0u8; frame::max_encoded_len(body.len())];
        let n = frame::encode(&[&body], &mut out).unwrap();
        // The decoder holds the chunk between delimiters.
        prop_assert!(n - 1 <= frame_buffer, "{} bytes announced, chunk {} > {frame_buffer}", payload, n - 1);
    }
}

/// FIXME: `frame_buffer_for(m)` is meant to be the buffer that accepts
/// segments of `m` bytes, but `Config::accepted_segment` inverts it
/// conservatively and announces up to 2 bytes less: `Config::serial()`
/// configures 4096-byte segments and announces 4094, `Config::stream()`
/// 16384 and announces 16382. Harmless (the peer just sends 2 bytes less per
/// frame), but the HELLO does not say what the configuration says. When
/// fixed, both sides of these assertions become equal.
#[test]
fn frame_buffer_for_m_announces_slightly_less_than_m() {
    use corral_protocol::link::{frame_buffer_for, Config};
    assert_eq!(Config::serial().max_segment, 4096);
    assert_eq!(Config::serial().frame_buffer, frame_buffer_for(4096));
    assert_eq!(Config::serial().accepted_segment(), 4094);
    assert_eq!(Config::stream().max_segment, 16384);
    assert_eq!(Config::stream().accepted_segment(), 16382);
    // Small segments are not affected.
    assert_eq!(Config::device().accepted_segment(), 512);
    assert_eq!(Config::tiny().accepted_segment(), 256);
}
