//! Arbitrary bytes into the frame decoder.
//!
//! Three decoders read the same input: a large buffer fed all at once, a
//! large buffer fed one byte at a time, and a 16-byte buffer fed in reads of
//! 7 bytes. Besides "no panic", each call must make progress and hold no
//! more than its buffer, every item must be well formed, every frame must
//! re-encode to a frame of the same body, and how the input was split into
//! reads must not change what comes out.

#![no_main]

use corral_protocol::frame::{self, looks_like_text, Decoded, FrameDecoderState};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, PartialEq)]
enum Item {
    Frame(Vec<u8>),
    Console(Vec<u8>),
}

fn run(buffer: usize, input: &[u8], read: usize) -> Vec<Item> {
    let mut buf = vec![0u8; buffer];
    let mut dec = FrameDecoderState::new();
    let mut items = Vec::new();
    for piece in input.chunks(read) {
        let mut rest = piece;
        let mut calls = 0;
        while !rest.is_empty() {
            calls += 1;
            assert!(calls <= 2 * piece.len() + 2, "no progress");
            let (used, item) = dec.push(&mut buf, rest);
            assert!(used <= rest.len());
            assert!(used > 0 || item.is_some(), "neither consumed nor produced");
            match item {
                Some(Decoded::Frame(f)) => {
                    assert!(!f.is_empty() && f.len() <= buffer);
                    items.push(Item::Frame(f.to_vec()));
                }
                Some(Decoded::Console(t)) => {
                    assert!(!t.is_empty() && t.len() <= buffer);
                    assert!(looks_like_text(t));
                    items.push(Item::Console(t.to_vec()));
                }
                None => {}
            }
            assert!(dec.pending() <= buffer);
            rest = &rest[used..];
        }
    }
    if let Some(t) = dec.flush_text(&mut buf) {
        assert!(looks_like_text(t));
        items.push(Item::Console(t.to_vec()));
    }
    let frames = items.iter().filter(|i| matches!(i, Item::Frame(_))).count();
    assert_eq!(dec.stats.frames as usize, frames);
    items
}

fuzz_target!(|data: &[u8]| {
    let whole = run(1024, data, data.len().max(1));
    let bytewise = run(1024, data, 1);
    assert_eq!(whole, bytewise, "the split into reads changed the output");
    let _ = run(16, data, 7);
    for item in &whole {
        if let Item::Frame(body) = item {
            let mut out = vec![0u8; frame::max_encoded_len(body.len())];
            let n = frame::encode(&[body], &mut out).expect("max_encoded_len fits");
            let again = run(n, &out[..n], n);
            assert_eq!(again, [Item::Frame(body.clone())]);
        }
    }
});
