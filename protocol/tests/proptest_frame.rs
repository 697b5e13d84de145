//! Property tests of the framing (`docs/protocol.md` §2): every frame comes
//! out exactly once whatever surrounds it, and the decoder never panics or
//! holds more than its buffer whatever it is fed.

use corral_protocol::frame::{self, looks_like_text, Decoded, FrameDecoderState};
use proptest::collection::vec;
use proptest::prelude::*;

/// Encodes a frame from `parts`, exactly as the link does.
fn encode_parts(parts: &[&[u8]]) -> Vec<u8> {
    let len = parts.iter().map(|p| p.len()).sum();
    let mut out = vec![0u8; frame::max_encoded_len(len)];
    let n = frame::encode(parts, &mut out).expect("max_encoded_len is enough");
    out.truncate(n);
    out
}

#[derive(Debug, Default, PartialEq)]
struct Out {
    frames: Vec<Vec<u8>>,
    console: Vec<u8>,
}

/// Feeds `input` in reads of the given sizes (cycled) and checks the
/// decoder's promises at every step.
fn feed(dec: &mut FrameDecoderState, buf: &mut [u8], input: &[u8], reads: &[usize], out: &mut Out) {
    let cap = buf.len();
    let mut at = 0;
    let mut r = 0;
    while at < input.len() {
        let size = reads
            .get(r % reads.len().max(1))
            .copied()
            .unwrap_or(input.len())
            .max(1);
        r += 1;
        let mut chunk = &input[at..(at + size).min(input.len())];
        at += chunk.len();
        // Each call either consumes a byte or hands out an item, so this
        // loop ends after at most two calls per byte.
        let mut calls = 0;
        while !chunk.is_empty() {
            calls += 1;
            assert!(calls <= 2 * size + 2, "decoder makes no progress");
            let (used, item) = dec.push(buf, chunk);
            assert!(used <= chunk.len());
            assert!(used > 0 || item.is_some(), "no progress and no item");
            match item {
                Some(Decoded::Frame(f)) => {
                    assert!(!f.is_empty() && f.len() <= cap);
                    out.frames.push(f.to_vec());
                }
                Some(Decoded::Console(t)) => {
                    assert!(!t.is_empty() && t.len() <= cap);
                    assert!(
                        looks_like_text(t),
                        "console text that is not text: {t:02x?}"
                    );
                    out.console.extend_from_slice(t);
                }
                None => {}
            }
            assert!(dec.pending() <= cap, "holds more than its buffer");
            chunk = &chunk[used..];
        }
    }
}

/// What a line carries between frames.
#[derive(Debug, Clone)]
enum Piece {
    /// A frame body (at least one byte: a chunk of 4 decoded bytes or fewer
    /// is never a frame).
    Frame(Vec<u8>),
    /// Console text: printable ASCII, whitespace and UTF-8.
    Text(String),
    /// Binary garbage with at least one control byte, so it never counts as
    /// text; delimited on both sides.
    Garbage(Vec<u8>),
}

fn piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        3 => vec(any::<u8>(), 1..300).prop_map(Piece::Frame),
        1 => "[ -~\t\r\né°€✓]{1,120}".prop_map(Piece::Text),
        1 => (vec(1u8..=255, 1..80), any::<prop::sample::Index>()).prop_map(|(mut g, i)| {
            let at = i.index(g.len());
            g[at] = 0x01;
            Piece::Garbage(g)
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any body survives encoding and decoding, and encoding it in parts
    /// (how the link writes header and data) gives the same bytes.
    #[test]
    fn frame_round_trips_and_parts_do_not_matter(
        body in vec(any::<u8>(), 1..700),
        cuts in vec(any::<prop::sample::Index>(), 0..4),
    ) {
        let whole = encode_parts(&[&body]);
        prop_assert_eq!(*whole.last().unwrap(), 0);
        prop_assert!(!whole[..whole.len() - 1].contains(&0));
        prop_assert!(whole.len() < frame::max_encoded_len(body.len()));
        let mut at: Vec<usize> = cuts.iter().map(|i| i.index(body.len() + 1)).collect();
        at.sort_unstable();
        let mut parts: Vec<&[u8]> = Vec::new();
        let mut from = 0;
        for &cut in &at {
            parts.push(&body[from..cut]);
            from = cut;
        }
        parts.push(&body[from..]);
        prop_assert_eq!(&encode_parts(&parts), &whole);
        let mut buf = vec![0u8; whole.len()];
        let mut dec = FrameDecoderState::new();
        let mut out = Out::default();
        feed(&mut dec, &mut buf, &whole, &[whole.len()], &mut out);
        prop_assert_eq!(out.frames, vec![body]);
        prop_assert_eq!(dec.stats.frames, 1);
    }

    /// A line carrying frames, console text and garbage in any order, read
    /// in reads of any size: every frame comes out exactly once and in
    /// order, and the text comes out complete.
    #[test]
    fn every_frame_comes_out_once_between_text_and_garbage(
        pieces in vec(piece(), 1..12),
        reads in vec(1usize..64, 1..8),
    ) {
        let mut line = Vec::new();
        let mut frames = Vec::new();
        let mut text = Vec::new();
        for p in &pieces {
            match p {
                Piece::Frame(body) => {
                    // The leading delimiter of a burst ends text before it.
                    line.push(0);
                    line.extend(encode_parts(&[body]));
                    frames.push(body.clone());
                }
                Piece::Text(t) => {
                    line.extend_from_slice(t.as_bytes());
                    text.extend_from_slice(t.as_bytes());
                }
                Piece::Garbage(g) => {
                    line.push(0);
                    line.extend_from_slice(g);
                    line.push(0);
                }
            }
        }
        let mut buf = vec![0u8; 512];
        let mut dec = FrameDecoderState::new();
        let mut out = Out::default();
        feed(&mut dec, &mut buf, &line, &reads, &mut out);
        if let Some(t) = dec.flush_text(&mut buf) {
            out.console.extend_from_slice(t);
        }
        prop_assert_eq!(out.frames, frames);
        prop_assert_eq!(out.console, text);
        prop_assert_eq!(dec.pending(), 0);
    }

    /// Whatever the input and however small the buffer: no panic, no more
    /// held than the buffer, progress at every call, and every frame that
    /// comes out is one an encoder could have sent.
    #[test]
    fn decoder_never_panics_nor_holds_more_than_its_buffer(
        input in vec(prop_oneof![3 => any::<u8>(), 1 => Just(0u8), 1 => 0x20u8..0x7f], 0..2000),
        buffer in 1usize..80,
        reads in vec(1usize..100, 1..8),
    ) {
        let mut buf = vec![0u8; buffer];
        let mut dec = FrameDecoderState::new();
        let mut out = Out::default();
        feed(&mut dec, &mut buf, &input, &reads, &mut out);
        let _ = dec.flush_text(&mut buf);
        prop_assert!(dec.pending() <= buffer);
        for f in &out.frames {
            let wire = encode_parts(&[f]);
            let mut b = vec![0u8; wire.len()];
            let mut d = FrameDecoderState::new();
            let mut o = Out::default();
            feed(&mut d, &mut b, &wire, &[wire.len()], &mut o);
            prop_assert_eq!(&o.frames, &vec![f.clone()]);
        }
    }

    /// One flipped bit never turns a frame into another frame: it arrives
    /// intact or not at all (CRC-32C), and the next frame still arrives.
    #[test]
    fn a_flipped_bit_never_delivers_a_wrong_body(
        body in vec(any::<u8>(), 1..300),
        at in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let mut wire = encode_parts(&[&body]);
        let i = at.index(wire.len());
        wire[i] ^= 1 << bit;
        let next = encode_parts(&[b"\x03next"]);
        let line = [&[0u8][..], &wire, &[0], &next].concat();
        let mut buf = vec![0u8; 400];
        let mut dec = FrameDecoderState::new();
        let mut out = Out::default();
        feed(&mut dec, &mut buf, &line, &[line.len()], &mut out);
        prop_assert_eq!(out.frames.last(), Some(&b"\x03next".to_vec()));
        for f in &out.frames[..out.frames.len() - 1] {
            prop_assert_eq!(f, &body, "a damaged frame came out with another body");
        }
    }
}

/// FIXME: `frame::encode` accepts an empty body, but no decoder ever
/// delivers it: a chunk that decodes to 4 bytes or fewer (the CRC alone) is
/// not a frame (`docs/protocol.md` §2.5). No datagram is empty, so the link
/// never sends one, but the encoder should refuse what the decoder cannot
/// return. Today the empty body encodes to `01 01 01 01 01 00` and is counted
/// as a bad frame.
#[test]
fn empty_body_encodes_but_is_never_delivered() {
    let wire = encode_parts(&[]);
    assert_eq!(wire, [0x01, 0x01, 0x01, 0x01, 0x01, 0x00]);
    let mut buf = vec![0u8; 16];
    let mut dec = FrameDecoderState::new();
    let mut out = Out::default();
    feed(&mut dec, &mut buf, &wire, &[wire.len()], &mut out);
    assert!(out.frames.is_empty());
    assert_eq!(dec.stats.bad_frames, 1);
}
