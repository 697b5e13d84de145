//! Golden test vectors: the byte-exact contract of the wire format.
//!
//! The files in `tests/vectors/` are what every implementation of the
//! protocol must decode and encode byte for byte (`docs/protocol.md` §11
//! describes their format). This test checks this implementation against
//! them in two ways:
//!
//! 1. each vector in the files is decoded, its decoded values are compared
//!    with the values the vector states, and it is encoded again and compared
//!    byte for byte;
//! 2. the vectors are generated again from the Rust values below and compared
//!    with the files, so a change of the wire format cannot slip through with
//!    the old vectors left in place.
//!
//! After an intentional change of the format, regenerate the files with
//! `UPDATE_VECTORS=1 cargo test -p corral-protocol --test vectors`, review
//! the diff by hand against the spec, and commit both. Without
//! `UPDATE_VECTORS=1` this test never writes anything.

use corral_protocol::auth;
use corral_protocol::frame::{self, Decoded, FrameDecoderState, FrameStats};
use corral_protocol::link::Config;
use corral_protocol::message::{
    Body, Data, DecodeError, DeviceInfo, DirEntry, Envelope, ErrorCode, ErrorReply, ExecRequest,
    ExitReason, ExitReport, FileHash, FileKind, FileStat, Get, HostHello, Limits, LogLevel,
    LogLine, Output, PutOpen, PutReady, Started, StrList, Stream, Write, ALL_KINDS, BODY_KINDS,
};
use corral_protocol::schema::{SCHEMA_HASH, VERSION};
use corral_protocol::wire::{
    session_tag, AckRepr, HelloRepr, RejectReason, RejectRepr, SegRepr, Version, WireError,
    HELLO_NEEDS_REPLY, KIND_HELLO, KIND_REJECT, KIND_SEG, MAX_SACK_BLOCKS, SEG_MAX_HEADER,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt::Debug;
use std::path::PathBuf;

// ---------------------------------------------------------------------------
// File handling
// ---------------------------------------------------------------------------

fn vector_path(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(file)
}

fn updating() -> bool {
    std::env::var_os("UPDATE_VECTORS").is_some_and(|v| v == "1")
}

/// Writes `generated` to `file` when updating; otherwise loads the file and
/// checks that it holds exactly what this implementation generates. Returns
/// the file's content, typed, for the independent checks.
fn golden<G, T>(file: &str, generated: &G) -> T
where
    G: Serialize,
    T: DeserializeOwned,
{
    let path = vector_path(file);
    let text = to_json(generated);
    if updating() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }
    let stored = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "reading {}: {e}\n(generate the vectors with UPDATE_VECTORS=1 and review them)",
            path.display()
        )
    });
    let stored_value: Value = serde_json::from_str(&stored)
        .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()));
    let generated_value = serde_json::to_value(generated).expect("vectors serialise");
    if stored_value != generated_value {
        let mut differences = Vec::new();
        collect_differences(&stored_value, &generated_value, "", &mut differences);
        panic!(
            "{} differs from what this implementation generates at {:?}: the wire format changed. \
             If that is intended, run `UPDATE_VECTORS=1 cargo test -p corral-protocol --test \
             vectors`, review `git diff` against docs/protocol.md, and commit the new vectors.",
            path.display(),
            differences
        );
    }
    serde_json::from_value(stored_value)
        .unwrap_or_else(|e| panic!("{} is not a valid vector file: {e}", path.display()))
}

/// Paths (as `a.b[3].c`) where two JSON values differ, for the failure
/// message.
fn collect_differences(a: &Value, b: &Value, at: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys().filter(|k| !x.contains_key(*k))) {
                let (va, vb) = (
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                );
                collect_differences(va, vb, &format!("{at}.{k}"), out);
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                collect_differences(va, vb, &format!("{at}[{i}]"), out);
            }
        }
        _ if a != b => out.push(at.to_string()),
        _ => {}
    }
}

/// Serialises with the layout of the vector files: one object member per
/// line, arrays on one line (so byte lists stay readable and diffs small).
fn to_json<T: Serialize>(value: &T) -> String {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, VectorStyle::default());
    value.serialize(&mut ser).expect("vectors serialise");
    out.push(b'\n');
    String::from_utf8(out).expect("JSON is UTF-8")
}

/// The JSON layout of the vector files.
#[derive(Default)]
struct VectorStyle {
    /// For each open object: whether it has members yet.
    open: Vec<bool>,
}

impl serde_json::ser::Formatter for VectorStyle {
    fn begin_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.open.push(false);
        w.write_all(b"{")
    }

    fn end_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        if self.open.pop() == Some(true) {
            w.write_all(b"\n")?;
            w.write_all("  ".repeat(self.open.len()).as_bytes())?;
        }
        w.write_all(b"}")
    }

    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if let Some(has) = self.open.last_mut() {
            *has = true;
        }
        if !first {
            w.write_all(b",")?;
        }
        w.write_all(b"\n")?;
        w.write_all("  ".repeat(self.open.len()).as_bytes())
    }

    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }

    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }
}

/// Bytes as lowercase hex pairs separated by spaces.
fn hx(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parses hex with any whitespace between the digits.
fn unhex(text: &str) -> Vec<u8> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    hex::decode(&compact).unwrap_or_else(|e| panic!("bad hex {text:?}: {e}"))
}

/// A 32-bit value written as `0x` and 8 hex digits, which is easier to
/// compare with little-endian bytes than a decimal number.
mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u32, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("0x{v:08x}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let text = String::deserialize(d)?;
        let digits = text
            .strip_prefix("0x")
            .ok_or_else(|| serde::de::Error::custom("expected 0x followed by 8 hex digits"))?;
        u32::from_str_radix(digits, 16).map_err(serde::de::Error::custom)
    }
}

mod hex32_opt {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<u32>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => super::hex32::serialize(v, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(text) => u32::from_str_radix(text.trim_start_matches("0x"), 16)
                .map(Some)
                .map_err(serde::de::Error::custom),
        }
    }
}

// ---------------------------------------------------------------------------
// Frames
// ---------------------------------------------------------------------------

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct FrameFile {
    about: String,
    vectors: Vec<FrameVector>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct FrameVector {
    name: String,
    description: String,
    /// The frame body (a datagram, or any bytes).
    body: String,
    /// CRC-32C of the body; on the wire as 4 bytes little-endian after it.
    #[serde(with = "hex32")]
    crc32c: u32,
    /// The encoded frame as the encoder writes it, trailing delimiter
    /// included (a sender may put one more `00` in front of a burst).
    wire: String,
}

fn encode_frame(body: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; frame::max_encoded_len(body.len())];
    let n = frame::encode(&[body], &mut out).expect("buffer of max_encoded_len fits");
    out.truncate(n);
    out
}

fn crc32c(bytes: &[u8]) -> u32 {
    crc::Crc::<u32>::new(&crc::CRC_32_ISCSI).checksum(bytes)
}

fn frame_vectors() -> FrameFile {
    let mut v = Vec::new();
    let mut add = |name: &str, description: &str, body: Vec<u8>| {
        v.push(FrameVector {
            name: name.into(),
            description: description.into(),
            body: hx(&body),
            crc32c: crc32c(&body),
            wire: hx(&encode_frame(&body)),
        });
    };
    add(
        "crc_check_value",
        "The ASCII body \"123456789\": its CRC-32C is the check value of the algorithm, 0xe3069283, \
         sent as 83 92 06 e3. No zero byte anywhere, so COBS only adds one code byte (0x0e = 13 bytes to the end).",
        b"123456789".to_vec(),
    );
    add(
        "one_byte",
        "The shortest body a decoder accepts: one byte.",
        vec![0x03],
    );
    add(
        "zeros",
        "A body of four zero bytes: every zero becomes a code byte 0x01.",
        vec![0, 0, 0, 0],
    );
    add(
        "zeros_inside",
        "Zeros at the start, the middle and the end of the body.",
        vec![0x00, 0x11, 0x22, 0x00, 0x00, 0x33, 0x00],
    );
    add(
        "pure_ack_seg",
        "A real SEG body: tag 0x5a, flags ACK, ack 0x22222222, window 1536.",
        seg_body(
            &SegRepr {
                ack: Some(AckRepr {
                    ack: 0x2222_2222,
                    window: 1536,
                }),
                ..SegRepr::empty(0x5a)
            },
            &[],
        ),
    );
    add(
        "run_253",
        "249 bytes 0x01 and a CRC without zero bytes: 253 data bytes without a zero, one code byte 0xfe.",
        vec![0x01; 249],
    );
    add(
        "run_254_at_end",
        "250 bytes 0x01 + CRC = exactly 254 non-zero bytes: code 0xff and the 254 bytes, and no \
         trailing code byte (a decoder must also accept the form with a final 0x01, see the decoder vectors).",
        vec![0x01; 250],
    );
    add(
        "run_255",
        "251 bytes 0x01 + CRC: a block of 254 (code 0xff) then a block of 1 (code 0x02).",
        vec![0x01; 251],
    );
    let mut run_then_zero = vec![0x11u8; 254];
    run_then_zero.extend([0x00, 0x22]);
    add(
        "run_254_then_zero",
        "254 bytes 0x11, a zero, 0x22: after a 0xff block no zero is implied, so the zero needs its own code byte 0x01.",
        run_then_zero,
    );
    add(
        "long_600",
        "600 bytes counting 0..=255 and around: zeros every 256 bytes, blocks of various lengths.",
        (0..600u32).map(|i| i as u8).collect(),
    );
    FrameFile {
        about: "Frames: COBS(body || CRC-32C(body) as u32 LE) followed by the delimiter 00. \
                docs/protocol.md §2."
            .into(),
        vectors: v,
    }
}

#[test]
fn frame_vectors_encode_and_decode_byte_for_byte() {
    let file: FrameFile = golden("frames.json", &frame_vectors());
    for v in &file.vectors {
        let body = unhex(&v.body);
        let wire = unhex(&v.wire);
        assert_eq!(crc32c(&body), v.crc32c, "{}: CRC", v.name);
        // The CRC trailer is the last 4 bytes of the decoded COBS data.
        assert_eq!(encode_frame(&body), wire, "{}: encoding", v.name);
        assert_eq!(*wire.last().unwrap(), 0, "{}: trailing delimiter", v.name);
        assert!(
            !wire[..wire.len() - 1].contains(&0),
            "{}: no zero inside",
            v.name
        );
        assert!(
            wire.len() < frame::max_encoded_len(body.len()),
            "{}: bound",
            v.name
        );
        // With and without the leading delimiter of a burst.
        for input in [wire.clone(), [&[0u8][..], &wire].concat()] {
            let (items, stats, _) = decode_stream(wire.len() + 8, &input, false);
            assert_eq!(items, [Item::Frame(hx(&body))], "{}: decoding", v.name);
            assert_eq!(stats.frames, 1);
        }
    }
}

// ---------------------------------------------------------------------------
// Frame decoder: how a byte stream splits into frames and console text
// ---------------------------------------------------------------------------

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct StreamFile {
    about: String,
    vectors: Vec<StreamVector>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
#[serde(rename_all = "snake_case")]
enum Item {
    /// A frame body, hex.
    Frame(String),
    /// Console text, hex (it may be any bytes that look like text).
    Console(String),
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Stats {
    frames: u32,
    bad_frames: u32,
    oversized: u32,
    console_bytes: u32,
}

impl From<FrameStats> for Stats {
    fn from(s: FrameStats) -> Self {
        Stats {
            frames: s.frames,
            bad_frames: s.bad_frames,
            oversized: s.oversized,
            console_bytes: s.console_bytes,
        }
    }
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct StreamVector {
    name: String,
    description: String,
    /// Size of the decoder's buffer (the longest encoded chunk it holds).
    buffer: usize,
    /// The bytes received.
    input: String,
    /// Whether the receiver flushes an unterminated chunk as text at the end
    /// (what the link does after a quiet time).
    flush_at_end: bool,
    /// What comes out, in order.
    items: Vec<Item>,
    /// The decoder's counters afterwards.
    stats: Stats,
    /// Bytes of an unfinished chunk held afterwards.
    pending: usize,
}

/// Runs `input` through a decoder with a `buffer`-byte buffer.
fn decode_stream(buffer: usize, mut input: &[u8], flush: bool) -> (Vec<Item>, Stats, usize) {
    let mut buf = vec![0u8; buffer];
    let mut dec = FrameDecoderState::new();
    let mut items = Vec::new();
    while !input.is_empty() {
        let (used, item) = dec.push(&mut buf, input);
        input = &input[used..];
        match item {
            Some(Decoded::Frame(f)) => items.push(Item::Frame(hx(f))),
            Some(Decoded::Console(t)) => items.push(Item::Console(hx(t))),
            None => {}
        }
    }
    if flush {
        if let Some(t) = dec.flush_text(&mut buf) {
            items.push(Item::Console(hx(t)));
        }
    }
    (items, dec.stats.into(), dec.pending())
}

/// The same, one byte at a time: the outcome must not depend on how the
/// bytes were split into reads.
fn decode_stream_bytewise(buffer: usize, input: &[u8], flush: bool) -> (Vec<Item>, Stats, usize) {
    let mut buf = vec![0u8; buffer];
    let mut dec = FrameDecoderState::new();
    let mut items = Vec::new();
    for i in 0..input.len() {
        let mut rest = &input[i..i + 1];
        while !rest.is_empty() {
            let (used, item) = dec.push(&mut buf, rest);
            rest = &rest[used..];
            match item {
                Some(Decoded::Frame(f)) => items.push(Item::Frame(hx(f))),
                Some(Decoded::Console(t)) => items.push(Item::Console(hx(t))),
                None => {}
            }
        }
    }
    if flush {
        if let Some(t) = dec.flush_text(&mut buf) {
            items.push(Item::Console(hx(t)));
        }
    }
    (items, dec.stats.into(), dec.pending())
}

fn stream_vectors() -> StreamFile {
    let mut v = Vec::new();
    let mut add = |name: &str, description: &str, buffer: usize, input: Vec<u8>, flush: bool| {
        let (items, stats, pending) = decode_stream(buffer, &input, flush);
        v.push(StreamVector {
            name: name.into(),
            description: description.into(),
            buffer,
            input: hx(&input),
            flush_at_end: flush,
            items,
            stats,
            pending,
        });
    };
    let ping = encode_frame(b"\x03\x07\x01\x34\x12\xed\x5e\x03\x00\x07\x02\x2a");
    let short = encode_frame(b"\x03ok");
    add(
        "burst_with_leading_delimiter",
        "A sender's burst: a delimiter, then two frames. Empty chunks between delimiters are ignored.",
        64,
        [&[0u8][..], &ping, &short].concat(),
        false,
    );
    add(
        "banner_then_frame",
        "A boot banner on the same line just before a burst: the leading delimiter ends it, it comes out as console text.",
        64,
        [&b"U-Boot 2024.01\r\n"[..], &[0], &short].concat(),
        false,
    );
    add(
        "text_without_delimiter_is_flushed",
        "Text never followed by a delimiter stays pending until the receiver flushes it after a quiet time.",
        64,
        b"login: ".to_vec(),
        true,
    );
    let mut bad = ping.clone();
    bad[4] ^= 0x01;
    add(
        "corrupted_frame_then_good_frame",
        "One bit flipped in the first frame: the CRC fails, the chunk is dropped and counted, the next frame arrives.",
        64,
        [&bad[..], &short].concat(),
        false,
    );
    add(
        "binary_garbage_between_frames",
        "Bytes that are neither text nor a valid frame (control bytes) are dropped as a bad frame; frames around them survive.",
        64,
        [&short[..], &[0x01, 0x02, 0x03, 0x00], &short].concat(),
        false,
    );
    add(
        "chunk_of_four_bytes_is_not_a_frame",
        "A chunk that decodes to 4 bytes or fewer cannot hold a body and a CRC: the frame of an empty body \
         (the CRC-32C of no bytes is 00000000, encoded 01 01 01 01 01) is counted as a bad frame.",
        64,
        encode_frame(&[]),
        false,
    );
    add(
        "oversized_binary_chunk_is_skipped",
        "A 40-byte binary chunk into a 16-byte buffer: dropped up to the next delimiter and counted once; the next frame arrives.",
        16,
        [&[0x01u8; 40][..], &[0], &short].concat(),
        false,
    );
    add(
        "long_text_comes_out_in_buffer_sized_pieces",
        "Text longer than the buffer is passed on in pieces of the buffer's size, the rest at the delimiter.",
        16,
        [&b"0123456789abcdefghijklmnopqrstuvwxyz"[..], &[0]].concat(),
        false,
    );
    let mut long_form = encode_frame(&[0x01; 250]);
    long_form.insert(long_form.len() - 1, 0x01);
    add(
        "cobs_final_empty_block_is_accepted",
        "The frame of vector run_254_at_end with a final code byte 0x01 after the 0xff block, as other \
         COBS encoders write it: it decodes to the same body.",
        300,
        long_form,
        false,
    );
    add(
        "frame_longer_than_buffer_is_dropped",
        "A valid frame whose encoded chunk (30 bytes) is longer than the 16-byte buffer is dropped as oversized.",
        16,
        encode_frame(&[0x01; 25]),
        false,
    );
    add(
        "utf8_text_is_console",
        "Bytes 0x80-0xff count as text (UTF-8), as do tab, CR, LF, ESC and backspace.",
        64,
        ["température: 21 °C\t\x1b[0m\r\n".as_bytes(), &[0]].concat(),
        false,
    );
    StreamFile {
        about: "The frame decoder: input bytes and what comes out of them, in order. docs/protocol.md §2."
            .into(),
        vectors: v,
    }
}

#[test]
fn frame_decoder_vectors_split_streams_the_same_way() {
    let file: StreamFile = golden("frame_decoder.json", &stream_vectors());
    for v in &file.vectors {
        let input = unhex(&v.input);
        for (how, (items, stats, pending)) in [
            ("whole", decode_stream(v.buffer, &input, v.flush_at_end)),
            (
                "bytewise",
                decode_stream_bytewise(v.buffer, &input, v.flush_at_end),
            ),
        ] {
            assert_eq!(items, v.items, "{} ({how}): items", v.name);
            assert_eq!(stats, v.stats, "{} ({how}): counters", v.name);
            assert_eq!(pending, v.pending, "{} ({how}): pending", v.name);
        }
    }
}

// ---------------------------------------------------------------------------
// Datagrams
// ---------------------------------------------------------------------------

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct DatagramFile {
    about: String,
    hello: Vec<HelloVector>,
    reject: Vec<RejectVector>,
    seg: Vec<SegVector>,
    invalid: Vec<InvalidVector>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct HelloVector {
    name: String,
    description: String,
    hex: String,
    version_major: u8,
    version_minor: u8,
    flags: u8,
    #[serde(with = "hex32")]
    schema_hash: u32,
    #[serde(with = "hex32")]
    features: u32,
    #[serde(with = "hex32")]
    session: u32,
    #[serde(with = "hex32")]
    peer_session: u32,
    max_segment: u16,
    window: u32,
    max_message: u16,
}

impl HelloVector {
    fn repr(&self) -> HelloRepr {
        HelloRepr {
            version: Version {
                major: self.version_major,
                minor: self.version_minor,
            },
            flags: self.flags,
            schema_hash: self.schema_hash,
            features: self.features,
            session: self.session,
            peer_session: self.peer_session,
            max_segment: self.max_segment,
            window: self.window,
            max_message: self.max_message,
        }
    }
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct RejectVector {
    name: String,
    description: String,
    hex: String,
    reason: u8,
    #[serde(with = "hex32")]
    session: u32,
    #[serde(with = "hex32")]
    peer_session: u32,
    version_major: u8,
    version_minor: u8,
    #[serde(with = "hex32")]
    schema_hash: u32,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct SegVector {
    name: String,
    description: String,
    hex: String,
    /// The two session ids the tag is computed from.
    #[serde(with = "hex32")]
    session_a: u32,
    #[serde(with = "hex32")]
    session_b: u32,
    tag: u8,
    flags: u8,
    #[serde(with = "hex32_opt")]
    ack: Option<u32>,
    window: Option<u32>,
    ack_request: bool,
    /// `[start, end)` pairs, `0x`-hex.
    sacks: Vec<[String; 2]>,
    #[serde(with = "hex32_opt")]
    seq: Option<u32>,
    /// The data after the header, hex.
    data: String,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct InvalidVector {
    name: String,
    description: String,
    hex: String,
    /// The parse error, as this implementation names it.
    error: String,
}

fn hello_vector(name: &str, description: &str, h: HelloRepr) -> HelloVector {
    let mut b = [0u8; HelloRepr::LEN];
    h.emit(&mut b);
    HelloVector {
        name: name.into(),
        description: description.into(),
        hex: hx(&b),
        version_major: h.version.major,
        version_minor: h.version.minor,
        flags: h.flags,
        schema_hash: h.schema_hash,
        features: h.features,
        session: h.session,
        peer_session: h.peer_session,
        max_segment: h.max_segment,
        window: h.window,
        max_message: h.max_message,
    }
}

fn reject_vector(name: &str, description: &str, r: RejectRepr) -> RejectVector {
    let mut b = [0u8; RejectRepr::LEN];
    r.emit(&mut b);
    RejectVector {
        name: name.into(),
        description: description.into(),
        hex: hx(&b),
        reason: b[1],
        session: r.session,
        peer_session: r.peer_session,
        version_major: r.version.major,
        version_minor: r.version.minor,
        schema_hash: r.schema_hash,
    }
}

fn seg_body(s: &SegRepr, data: &[u8]) -> Vec<u8> {
    let mut h = [0u8; SEG_MAX_HEADER];
    let n = s.emit(&mut h);
    [&h[..n], data].concat()
}

fn seg_vector(name: &str, description: &str, a: u32, b: u32, s: SegRepr, data: &[u8]) -> SegVector {
    assert_eq!(s.tag, session_tag(a, b));
    let body = seg_body(&s, data);
    SegVector {
        name: name.into(),
        description: description.into(),
        hex: hx(&body),
        session_a: a,
        session_b: b,
        tag: s.tag,
        flags: body[2],
        ack: s.ack.map(|a| a.ack),
        window: s.ack.map(|a| a.window),
        ack_request: s.ack_request,
        sacks: s
            .sack_blocks()
            .iter()
            .map(|&(x, y)| [format!("0x{x:08x}"), format!("0x{y:08x}")])
            .collect(),
        seq: s.seq,
        data: hx(data),
    }
}

/// Session ids of the examples: a device whose boot id is 0x5eed1234 and a
/// gateway whose link started as 0x0badcafe.
const DEV: u32 = 0x5eed_1234;
const GW: u32 = 0x0bad_cafe;

fn datagram_vectors() -> DatagramFile {
    let device = Config::device();
    let serial = Config::serial();
    let dev_hello = HelloRepr {
        version: VERSION,
        flags: HELLO_NEEDS_REPLY,
        schema_hash: SCHEMA_HASH,
        features: corral_protocol::features::EXEC
            | corral_protocol::features::FILES
            | corral_protocol::features::RESET
            | corral_protocol::features::LOGS,
        session: DEV,
        peer_session: 0,
        max_segment: device.accepted_segment(),
        window: device.rx_buffer as u32,
        max_message: device.accepted_message(),
    };
    let gw_hello = HelloRepr {
        version: VERSION,
        flags: HELLO_NEEDS_REPLY,
        schema_hash: SCHEMA_HASH,
        features: corral_protocol::features::ALL,
        session: GW,
        peer_session: DEV,
        max_segment: serial.accepted_segment(),
        window: serial.rx_buffer as u32,
        max_message: serial.accepted_message(),
    };
    let hello = vec![
        hello_vector(
            "device_first_hello",
            "A device (Config::device, agent-core features EXEC|FILES|RESET|LOGS) that knows no peer yet: \
             peer_session 0, NEEDS_REPLY.",
            dev_hello,
        ),
        hello_vector(
            "gateway_answer",
            "The gateway's answer (Config::serial): it knows the device's session and still wants a reply.",
            gw_hello,
        ),
        hello_vector(
            "device_established",
            "The device's last HELLO of the handshake: it knows the gateway and is established, so no NEEDS_REPLY.",
            HelloRepr {
                flags: 0,
                peer_session: GW,
                ..dev_hello
            },
        ),
        hello_vector(
            "future_minor_version",
            "A HELLO of a later minor version 1.3 with another schema hash and unknown feature bits: accepted \
             (schemas are only compared within the same minor version).",
            HelloRepr {
                version: Version { major: 1, minor: 3 },
                schema_hash: 0x1234_5678,
                features: 0xffff_ffff,
                ..gw_hello
            },
        ),
    ];
    let reject = vec![
        reject_vector(
            "reject_version",
            "The device refuses a HELLO of session 0x0badcafe with major version 2.",
            RejectRepr {
                reason: RejectReason::Version,
                session: DEV,
                peer_session: GW,
                version: VERSION,
                schema_hash: SCHEMA_HASH,
            },
        ),
        reject_vector(
            "reject_schema",
            "Same version, different schema hash.",
            RejectRepr {
                reason: RejectReason::Schema,
                session: DEV,
                peer_session: GW,
                version: VERSION,
                schema_hash: SCHEMA_HASH,
            },
        ),
        reject_vector(
            "reject_parameters",
            "Limits too small, or session id 0 (here the rejected HELLO had session 0).",
            RejectRepr {
                reason: RejectReason::Parameters,
                session: GW,
                peer_session: 0,
                version: VERSION,
                schema_hash: SCHEMA_HASH,
            },
        ),
        reject_vector(
            "reject_future_reason",
            "A reason code a later version added (7): printed as a number.",
            RejectRepr {
                reason: RejectReason::Other(7),
                session: DEV,
                peer_session: GW,
                version: Version { major: 1, minor: 2 },
                schema_hash: 0xdead_beef,
            },
        ),
    ];
    let tag = session_tag(DEV, GW);
    let ack = |ack: u32, window: u32| Some(AckRepr { ack, window });
    let mut sacked = SegRepr {
        ack: ack(GW.wrapping_add(100), 1200),
        ..SegRepr::empty(tag)
    };
    sacked.sacks[0] = (GW.wrapping_add(200), GW.wrapping_add(300));
    sacked.sack_count = 1;
    let mut sacked3 = sacked;
    sacked3.sacks[1] = (GW.wrapping_add(400), GW.wrapping_add(450));
    sacked3.sacks[2] = (GW.wrapping_add(512), GW.wrapping_add(1024));
    sacked3.sack_count = 3;
    let mut everything = sacked;
    everything.sacks[1] = (GW.wrapping_add(400), GW.wrapping_add(450));
    everything.sack_count = 2;
    everything.ack_request = true;
    everything.seq = Some(DEV.wrapping_add(7));
    let record = [0x03, 0x00, 0x07, 0x02, 0x2a];
    let seg = vec![
        seg_vector(
            "pure_ack",
            "An acknowledgement without data: the device has everything before 0x0badcafe + 1000 and 536 bytes free.",
            DEV,
            GW,
            SegRepr {
                ack: ack(GW.wrapping_add(1000), 536),
                ..SegRepr::empty(tag)
            },
            &[],
        ),
        seg_vector(
            "keepalive",
            "A keepalive: an acknowledgement with ACK_REQ (the peer answers with an ack at once).",
            DEV,
            GW,
            SegRepr {
                ack: ack(GW, 1536),
                ack_request: true,
                ..SegRepr::empty(tag)
            },
            &[],
        ),
        seg_vector(
            "first_data",
            "The first stream bytes of the device: sequence number = its session id. The data is one record: \
             length 3 (u16 LE) and the message 07 02 2a (Ping(42), request 7).",
            DEV,
            GW,
            SegRepr {
                seq: Some(DEV),
                ..SegRepr::empty(tag)
            },
            &record,
        ),
        seg_vector(
            "data_with_piggybacked_ack",
            "Data with an acknowledgement of the other direction.",
            DEV,
            GW,
            SegRepr {
                ack: ack(GW.wrapping_add(5), 1531),
                seq: Some(DEV.wrapping_add(5)),
                ..SegRepr::empty(tag)
            },
            &record,
        ),
        seg_vector(
            "ack_with_one_sack",
            "Ack 0x0badcafe + 100, and bytes 200..300 received beyond a gap.",
            DEV,
            GW,
            sacked,
            &[],
        ),
        seg_vector(
            "ack_with_three_sacks",
            "The most SACK blocks a SEG carries: 3.",
            DEV,
            GW,
            sacked3,
            &[],
        ),
        seg_vector(
            "everything",
            "DATA, ACK, ACK_REQ and two SACK blocks at once: every optional part in its order.",
            DEV,
            GW,
            everything,
            &record,
        ),
        seg_vector(
            "sequence_wraps",
            "Sequence numbers wrap modulo 2^32: data at 0xfffffffe carries on to 0x00000001.",
            0xffff_fff0,
            0x0000_000f,
            SegRepr {
                seq: Some(0xffff_fffe),
                ack: ack(0x0000_0010, 0),
                ..SegRepr::empty(session_tag(0xffff_fff0, 0x0000_000f))
            },
            &[0x01, 0x00, 0x1c],
        ),
    ];
    let invalid_hello = {
        let mut b = [0u8; HelloRepr::LEN];
        dev_hello.emit(&mut b);
        b
    };
    let invalid = vec![
        InvalidVector {
            name: "hello_truncated".into(),
            description: "A HELLO one byte short of 30.".into(),
            hex: hx(&invalid_hello[..29]),
            error: format!("{:?}", WireError::Truncated),
        },
        InvalidVector {
            name: "hello_bad_magic".into(),
            description: "A HELLO whose magic is not \"CR\".".into(),
            hex: hx(&[&invalid_hello[..1], &b"cr"[..], &invalid_hello[3..]].concat()),
            error: format!("{:?}", WireError::BadMagic),
        },
        InvalidVector {
            name: "reject_truncated".into(),
            description: "A REJECT of 15 bytes.".into(),
            hex: hx(&[KIND_REJECT, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]),
            error: format!("{:?}", WireError::Truncated),
        },
        InvalidVector {
            name: "seg_reserved_flag_0x08".into(),
            description: "SEG flag bit 3 is reserved.".into(),
            hex: hx(&[KIND_SEG, tag, 0x08]),
            error: format!("{:?}", WireError::Reserved),
        },
        InvalidVector {
            name: "seg_reserved_flag_0x80".into(),
            description: "SEG flag bits 6 and 7 are reserved.".into(),
            hex: hx(&[KIND_SEG, tag, 0x80]),
            error: format!("{:?}", WireError::Reserved),
        },
        InvalidVector {
            name: "seg_truncated_ack".into(),
            description: "ACK set but only 7 of its 8 bytes present.".into(),
            hex: hx(&[KIND_SEG, tag, 0x02, 1, 2, 3, 4, 5, 6, 7]),
            error: format!("{:?}", WireError::Truncated),
        },
        InvalidVector {
            name: "seg_truncated_sack".into(),
            description: "One SACK block announced (flags 0x10) but missing.".into(),
            hex: hx(&[KIND_SEG, tag, 0x10, 1, 2, 3, 4]),
            error: format!("{:?}", WireError::Truncated),
        },
        InvalidVector {
            name: "seg_truncated_seq".into(),
            description: "DATA set but the sequence number has only 3 bytes.".into(),
            hex: hx(&[KIND_SEG, tag, 0x01, 1, 2, 3]),
            error: format!("{:?}", WireError::Truncated),
        },
        InvalidVector {
            name: "seg_too_short".into(),
            description: "A SEG needs at least kind, tag and flags.".into(),
            hex: hx(&[KIND_SEG, tag]),
            error: format!("{:?}", WireError::Truncated),
        },
        InvalidVector {
            name: "unknown_kind".into(),
            description: "Kind 0x04 is not defined by this version.".into(),
            hex: hx(&[0x04, 0x00, 0x00]),
            error: format!("{:?}", WireError::UnknownKind(4)),
        },
    ];
    DatagramFile {
        about: "Link datagrams, the bodies of frames: HELLO (30 bytes), REJECT (16), SEG (3 + optional parts + data). \
                All integers little-endian. docs/protocol.md §3."
            .into(),
        hello,
        reject,
        seg,
        invalid,
    }
}

/// Parses a datagram the way the link dispatches it, by its kind byte.
fn parse_datagram(b: &[u8]) -> Result<(), WireError> {
    match b.first() {
        Some(&KIND_HELLO) => HelloRepr::parse(b).map(|_| ()),
        Some(&KIND_REJECT) => RejectRepr::parse(b).map(|_| ()),
        Some(&KIND_SEG) => SegRepr::parse(b).map(|_| ()),
        Some(&k) => Err(WireError::UnknownKind(k)),
        None => Err(WireError::Truncated),
    }
}

fn reject_reason(code: u8) -> RejectReason {
    match code {
        1 => RejectReason::Version,
        2 => RejectReason::Schema,
        3 => RejectReason::Parameters,
        x => RejectReason::Other(x),
    }
}

fn sack_value(text: &str) -> u32 {
    u32::from_str_radix(text.trim_start_matches("0x"), 16).unwrap()
}

#[test]
fn datagram_vectors_parse_and_emit_byte_for_byte() {
    let file: DatagramFile = golden("datagrams.json", &datagram_vectors());
    for v in &file.hello {
        let b = unhex(&v.hex);
        assert_eq!(b.len(), HelloRepr::LEN, "{}", v.name);
        let parsed = HelloRepr::parse(&b).unwrap_or_else(|e| panic!("{}: {e}", v.name));
        assert_eq!(parsed, v.repr(), "{}: fields", v.name);
        let mut out = [0u8; HelloRepr::LEN];
        parsed.emit(&mut out);
        assert_eq!(out[..], b[..], "{}: emit", v.name);
        // A later minor version may append fields: they are ignored.
        let longer = [&b[..], &[0xaa, 0xbb, 0xcc]].concat();
        assert_eq!(
            HelloRepr::parse(&longer),
            Ok(parsed),
            "{}: longer HELLO",
            v.name
        );
    }
    for v in &file.reject {
        let b = unhex(&v.hex);
        assert_eq!(b.len(), RejectRepr::LEN, "{}", v.name);
        let parsed = RejectRepr::parse(&b).unwrap_or_else(|e| panic!("{}: {e}", v.name));
        let want = RejectRepr {
            reason: reject_reason(v.reason),
            session: v.session,
            peer_session: v.peer_session,
            version: Version {
                major: v.version_major,
                minor: v.version_minor,
            },
            schema_hash: v.schema_hash,
        };
        assert_eq!(parsed, want, "{}: fields", v.name);
        let mut out = [0u8; RejectRepr::LEN];
        parsed.emit(&mut out);
        assert_eq!(out[..], b[..], "{}: emit", v.name);
    }
    for v in &file.seg {
        let b = unhex(&v.hex);
        let (parsed, data) = SegRepr::parse(&b).unwrap_or_else(|e| panic!("{}: {e}", v.name));
        assert_eq!(
            session_tag(v.session_a, v.session_b),
            v.tag,
            "{}: tag",
            v.name
        );
        assert_eq!(
            session_tag(v.session_b, v.session_a),
            v.tag,
            "{}: tag is symmetric",
            v.name
        );
        assert_eq!(parsed.tag, v.tag, "{}: tag", v.name);
        assert_eq!(b[2], v.flags, "{}: flags", v.name);
        assert_eq!(parsed.ack.map(|a| a.ack), v.ack, "{}: ack", v.name);
        assert_eq!(parsed.ack.map(|a| a.window), v.window, "{}: window", v.name);
        assert_eq!(parsed.ack_request, v.ack_request, "{}: ack_request", v.name);
        let sacks: Vec<(u32, u32)> = v
            .sacks
            .iter()
            .map(|[s, e]| (sack_value(s), sack_value(e)))
            .collect();
        assert_eq!(parsed.sack_blocks(), &sacks[..], "{}: sacks", v.name);
        assert!(sacks.len() <= MAX_SACK_BLOCKS);
        assert_eq!(parsed.seq, v.seq, "{}: seq", v.name);
        assert_eq!(hx(data), v.data, "{}: data", v.name);
        assert_eq!(seg_body(&parsed, data), b, "{}: emit", v.name);
        assert_eq!(
            parsed.header_len() + data.len(),
            b.len(),
            "{}: header_len",
            v.name
        );
    }
    for v in &file.invalid {
        let b = unhex(&v.hex);
        let err = parse_datagram(&b).expect_err(&v.name);
        assert_eq!(format!("{err:?}"), v.error, "{}", v.name);
    }
}

// ---------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------

/// `V` is the type of the decoded values: `Envelope` when generating (so
/// fields appear in their wire order), `Value` when loading.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct MessageFile<V> {
    about: String,
    schema_hash: String,
    messages: Vec<MessageVector<V>>,
    lenient: Vec<LenientVector<V>>,
    errors: Vec<ErrorVector>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct MessageVector<V> {
    name: String,
    description: String,
    /// The `Body` kind (variant index).
    kind: u32,
    /// The encoded `Envelope`.
    hex: String,
    /// The decoded value: serde's JSON form of the `Envelope` (enums as
    /// `{"Variant": value}` or `"Variant"`, byte strings as arrays of
    /// numbers).
    value: V,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct LenientVector<V> {
    name: String,
    description: String,
    /// Input a decoder of this implementation accepts though no encoder
    /// writes it.
    hex: String,
    value: V,
    /// What an encoder writes for the same value.
    canonical: String,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct ErrorVector {
    name: String,
    description: String,
    hex: String,
    /// The decode error, as this implementation names it.
    error: String,
}

const SHA_HELLO: [u8; 32] = [
    0x2c, 0xf2, 0x4d, 0xba, 0x5f, 0xb0, 0xa3, 0x0e, 0x26, 0xe8, 0x3b, 0x2a, 0xc5, 0xb9, 0xe2, 0x9e,
    0x1b, 0x16, 0x1e, 0x5c, 0x1f, 0xa7, 0x42, 0x5e, 0x73, 0x04, 0x33, 0x62, 0x93, 0x8b, 0x98, 0x24,
];

/// Every message of the vectors: (name, description, envelope).
fn message_list() -> Vec<(&'static str, &'static str, Envelope<'static>)> {
    let stat = FileStat {
        kind: FileKind::File,
        size: 5,
        mode: 0o644,
        mtime: 1_735_689_600,
    };
    vec![
        (
            "hello",
            "The host's first message of a session.",
            Envelope::new(
                1,
                Body::Hello(HostHello {
                    name: "lab-pc-3",
                    software: "corral 0.1.0",
                }),
            ),
        ),
        (
            "device_info",
            "A microcontroller's identity, limits and built-in commands (a list of NUL-terminated names).",
            Envelope::new(
                1,
                Body::DeviceInfo(DeviceInfo {
                    name: "pico-3",
                    board: "lm3s6965evb",
                    serial: "E6614103E7",
                    firmware: "corral-fw 0.1.0",
                    boot_id: 0x5eed_1234,
                    limits: Limits {
                        max_commands: 2,
                        storage_bytes: 65536,
                        storage_free: 61440,
                        max_file: 32768,
                    },
                    commands: StrList("echo\0info\0led\0"),
                }),
            ),
        ),
        (
            "device_info_os",
            "A Linux agent: it runs any program, so the command list is empty.",
            Envelope::new(
                1,
                Body::DeviceInfo(DeviceInfo {
                    name: "rpi4-lab2",
                    board: "aarch64",
                    serial: "10000000a3b2c1d0",
                    firmware: "corral-agent 0.1.0",
                    boot_id: 0x8f1e_0042,
                    limits: Limits {
                        max_commands: 16,
                        storage_bytes: 31_268_536_320,
                        storage_free: 20_000_000_000,
                        max_file: u64::MAX,
                    },
                    commands: StrList::EMPTY,
                }),
            ),
        ),
        ("ping", "Ping with a 64-bit value (varint of 9 bytes).", Envelope::new(2, Body::Ping(0x0123_4567_89ab_cdef))),
        ("ping_small", "Ping(42): three bytes in all.", Envelope::new(7, Body::Ping(42))),
        ("pong", "The answer to ping, same value.", Envelope::new(2, Body::Pong(0x0123_4567_89ab_cdef))),
        (
            "exec",
            "Run `ls -l /tmp` with LANG=C in /home/pi, 30 s timeout, no stdin, 64 KiB of output credit, no re-attach token.",
            Envelope::new(
                3,
                Body::Exec(ExecRequest {
                    argv: StrList("ls\0-l\0/tmp\0"),
                    env: StrList("LANG=C\0"),
                    cwd: "/home/pi",
                    timeout_ms: 30_000,
                    stdin: false,
                    credit: 65536,
                    token: 0,
                }),
            ),
        ),
        (
            "exec_with_stdin_and_token",
            "Run `cat` reading stdin, no timeout, with a re-attach token.",
            Envelope::new(
                300,
                Body::Exec(ExecRequest {
                    argv: StrList("cat\0"),
                    env: StrList::EMPTY,
                    cwd: "",
                    timeout_ms: 0,
                    stdin: true,
                    credit: 16384,
                    token: 0x1122_3344_5566_7788,
                }),
            ),
        ),
        ("started", "The command runs as process 4242.", Envelope::new(3, Body::Started(Started { pid: 4242 }))),
        ("stdin", "Bytes for the command's standard input.", Envelope::new(300, Body::Stdin(b"hello\n"))),
        ("stdin_close", "End of standard input.", Envelope::new(300, Body::StdinClose)),
        (
            "output_stdout",
            "Standard output of the command.",
            Envelope::new(
                3,
                Body::Output(Output {
                    stream: Stream::Stdout,
                    data: b"total 0\n",
                }),
            ),
        ),
        (
            "output_stderr",
            "Standard error, with a byte that is not UTF-8 (output is bytes).",
            Envelope::new(
                3,
                Body::Output(Output {
                    stream: Stream::Stderr,
                    data: b"warn\xff\n",
                }),
            ),
        ),
        (
            "exit_exited",
            "The command exited with code 0 after 1234 ms.",
            Envelope::new(
                3,
                Body::Exit(ExitReport {
                    reason: ExitReason::Exited,
                    code: 0,
                    signal: 0,
                    duration_ms: 1234,
                    output_dropped: 0,
                    detail: "",
                }),
            ),
        ),
        (
            "exit_negative_code",
            "Exit code -2: zig-zag encoded as 3.",
            Envelope::new(
                3,
                Body::Exit(ExitReport {
                    reason: ExitReason::Exited,
                    code: -2,
                    signal: 0,
                    duration_ms: 5,
                    output_dropped: 0,
                    detail: "",
                }),
            ),
        ),
        (
            "exit_signaled",
            "Killed by signal 9; 4096 bytes of output were lost while the link was down.",
            Envelope::new(
                3,
                Body::Exit(ExitReport {
                    reason: ExitReason::Signaled,
                    code: 0,
                    signal: 9,
                    duration_ms: 60_000,
                    output_dropped: 4096,
                    detail: "",
                }),
            ),
        ),
        (
            "exit_timed_out",
            "The 30 s timeout expired; the agent killed it with SIGKILL.",
            Envelope::new(
                3,
                Body::Exit(ExitReport {
                    reason: ExitReason::TimedOut,
                    code: 0,
                    signal: 9,
                    duration_ms: 30_000,
                    output_dropped: 0,
                    detail: "timeout after 30000 ms",
                }),
            ),
        ),
        (
            "exit_cancelled",
            "Cancelled by the requester; killed with SIGTERM.",
            Envelope::new(
                3,
                Body::Exit(ExitReport {
                    reason: ExitReason::Cancelled,
                    code: 0,
                    signal: 15,
                    duration_ms: 700,
                    output_dropped: 0,
                    detail: "",
                }),
            ),
        ),
        (
            "exit_failed_to_start",
            "The program could not be started.",
            Envelope::new(
                3,
                Body::Exit(ExitReport {
                    reason: ExitReason::FailedToStart,
                    code: -1,
                    signal: 0,
                    duration_ms: 0,
                    output_dropped: 0,
                    detail: "no such file or directory: lss",
                }),
            ),
        ),
        ("cancel", "Stop request 3.", Envelope::new(3, Body::Cancel)),
        ("credit", "The receiver may send 32768 more bytes for request 3.", Envelope::new(3, Body::Credit(32768))),
        ("attach", "Re-attach to the command started with this token.", Envelope::new(301, Body::Attach(0x1122_3344_5566_7788))),
        (
            "put_open",
            "Push 1 MiB to /data/fw.bin with its SHA-256, mode 0644.",
            Envelope::new(
                4,
                Body::PutOpen(PutOpen {
                    path: "/data/fw.bin",
                    size: 1_048_576,
                    sha256: SHA_HELLO,
                    mode: 0o644,
                }),
            ),
        ),
        (
            "put_ready_resume",
            "The device already holds 512 KiB of this push: continue from there, 16 KiB of credit.",
            Envelope::new(
                4,
                Body::PutReady(PutReady {
                    have: 524_288,
                    credit: 16384,
                }),
            ),
        ),
        (
            "write",
            "File data at offset 524288.",
            Envelope::new(
                4,
                Body::Write(Write {
                    offset: 524_288,
                    data: &[0x7f, 0x45, 0x4c, 0x46, 0x02, 0x01, 0x01, 0x00],
                }),
            ),
        ),
        ("commit", "Finish the push: check the hash and move the file into place.", Envelope::new(4, Body::Commit)),
        (
            "get",
            "Pull /var/log/syslog from the start with 64 KiB of credit.",
            Envelope::new(
                5,
                Body::Get(Get {
                    path: "/var/log/syslog",
                    offset: 0,
                    credit: 65536,
                }),
            ),
        ),
        (
            "data",
            "File data of a pull at offset 4096.",
            Envelope::new(
                5,
                Body::Data(Data {
                    offset: 4096,
                    data: b"hello",
                }),
            ),
        ),
        ("stat", "Facts about a path.", Envelope::new(6, Body::Stat("/etc/hostname"))),
        ("stat_reply", "A 5-byte regular file, mode 0644, modified 2025-01-01T00:00:00Z.", Envelope::new(6, Body::StatReply(stat))),
        (
            "stat_reply_dir",
            "A directory with a modification time before 1970 (negative, zig-zag).",
            Envelope::new(
                6,
                Body::StatReply(FileStat {
                    kind: FileKind::Dir,
                    size: 4096,
                    mode: 0o755,
                    mtime: -86_400,
                }),
            ),
        ),
        ("list", "List a directory.", Envelope::new(8, Body::List("/tmp"))),
        ("entry", "One directory entry.", Envelope::new(8, Body::Entry(DirEntry { name: "hello.txt", stat }))),
        (
            "entry_symlink",
            "A symbolic link entry.",
            Envelope::new(
                8,
                Body::Entry(DirEntry {
                    name: "latest",
                    stat: FileStat {
                        kind: FileKind::Symlink,
                        size: 9,
                        mode: 0o777,
                        mtime: 0,
                    },
                }),
            ),
        ),
        ("remove", "Remove a file.", Envelope::new(9, Body::Remove("/tmp/hello.txt"))),
        ("hash", "Hash a file.", Envelope::new(10, Body::Hash("/tmp/hello.txt"))),
        (
            "hash_reply",
            "Size and SHA-256 of the 5-byte file \"hello\".",
            Envelope::new(
                10,
                Body::HashReply(FileHash {
                    size: 5,
                    sha256: SHA_HELLO,
                }),
            ),
        ),
        ("reset", "Restart the device.", Envelope::new(11, Body::Reset)),
        (
            "log",
            "A device log line, unsolicited: request id 0.",
            Envelope::new(
                0,
                Body::Log(LogLine {
                    level: LogLevel::WARN,
                    text: "flash erase took 812 ms",
                }),
            ),
        ),
        ("ok", "Success without data.", Envelope::new(9, Body::Ok)),
        (
            "error",
            "A typed error: code 1 (not found) and a message for a human.",
            Envelope::new(
                6,
                Body::Error(ErrorReply {
                    code: ErrorCode::NOT_FOUND,
                    message: "no such file: /etc/hostname",
                }),
            ),
        ),
        (
            "error_future_code",
            "An error code this version does not name (300, a varint of 2 bytes): still decodes.",
            Envelope::new(
                6,
                Body::Error(ErrorReply {
                    code: ErrorCode(300),
                    message: "",
                }),
            ),
        ),
        ("unsupported", "The peer does not know message kind 31, sent as request 12.", Envelope::new(12, Body::Unsupported(31))),
        (
            "large_request_id",
            "Request id 0xffffffff: the longest u32 varint, 5 bytes.",
            Envelope::new(u32::MAX, Body::Ping(0)),
        ),
    ]
}

fn encode_message(env: &Envelope<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    let n = env.encode(&mut buf).expect("message fits 4 KiB");
    buf.truncate(n);
    buf
}

fn message_vectors() -> MessageFile<Envelope<'static>> {
    let messages = message_list()
        .into_iter()
        .map(|(name, description, env)| MessageVector {
            name: name.into(),
            description: description.into(),
            kind: env.kind(),
            hex: hx(&encode_message(&env)),
            value: env,
        })
        .collect();
    let lenient = [
        (
            "trailing_bytes_ignored",
            "Bytes after a complete message are ignored (a later version may append fields to the last struct).",
            vec![0x07, 0x02, 0x2a, 0xff, 0xff],
        ),
        (
            "overlong_varint",
            "The kind 2 written as the 2-byte varint 82 00: postcard decoders accept varints that are not minimal.",
            vec![0x07, 0x82, 0x00, 0x2a],
        ),
    ]
    .into_iter()
    .map(|(name, description, bytes)| {
        let bytes: &'static [u8] = Vec::leak(bytes);
        let env = Envelope::decode(bytes).expect("lenient vector decodes");
        LenientVector {
            name: name.into(),
            description: description.into(),
            hex: hx(bytes),
            value: env,
            canonical: hx(&encode_message(&env)),
        }
    })
    .collect();
    let errors = [
        ("empty", "No bytes: not even a request id.", vec![]),
        (
            "id_too_long",
            "A varint longer than 5 bytes cannot be a u32 request id.",
            vec![0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
        ),
        ("kind_missing", "A request id and nothing else.", vec![0x07]),
        (
            "unknown_kind",
            "Kind 31 is not known to this version: answer Unsupported(31) to request 7.",
            vec![0x07, 0x1f],
        ),
        (
            "unknown_large_kind",
            "Kind 1000 (varint e8 07).",
            vec![0x07, 0xe8, 0x07],
        ),
        (
            "truncated_body",
            "Ping whose u64 varint is cut off: a bad body of a known kind.",
            vec![0x07, 0x02, 0x80],
        ),
        (
            "bad_bool",
            "Exec whose stdin flag is 2 (a bool is 00 or 01).",
            {
                let mut b = encode_message(&Envelope::new(
                    7,
                    Body::Exec(ExecRequest {
                        argv: StrList("ls\0"),
                        env: StrList::EMPTY,
                        cwd: "",
                        timeout_ms: 0,
                        stdin: false,
                        credit: 1,
                        token: 0,
                    }),
                ));
                let at = b.len() - 3;
                assert_eq!(b[at], 0);
                b[at] = 2;
                b
            },
        ),
        (
            "bad_utf8",
            "A Stat path that is not UTF-8.",
            vec![0x07, 0x13, 0x02, 0xc3, 0x28],
        ),
        (
            "bad_enum",
            "Output with stream 2 (only 0 stdout and 1 stderr exist).",
            vec![0x07, 0x08, 0x02, 0x01, 0x41],
        ),
    ]
    .into_iter()
    .map(
        |(name, description, bytes): (&str, &str, Vec<u8>)| ErrorVector {
            name: name.into(),
            description: description.into(),
            hex: hx(&bytes),
            error: format!("{:?}", Envelope::decode(&bytes).expect_err(name)),
        },
    )
    .collect();
    MessageFile {
        about: "Messages: postcard-encoded Envelope { id: u32, body: Body }, the content of one record. \
                docs/protocol.md §6."
            .into(),
        schema_hash: format!("0x{SCHEMA_HASH:08x}"),
        messages,
        lenient,
        errors,
    }
}

#[test]
fn message_vectors_decode_and_encode_byte_for_byte() {
    let file: MessageFile<Value> = golden("messages.json", &message_vectors());
    assert_eq!(file.schema_hash, format!("0x{SCHEMA_HASH:08x}"));
    let mut kinds = vec![false; BODY_KINDS as usize];
    for v in &file.messages {
        let b = unhex(&v.hex);
        let env = Envelope::decode(&b).unwrap_or_else(|e| panic!("{}: {e}", v.name));
        assert_eq!(env.kind(), v.kind, "{}: kind", v.name);
        assert_eq!(
            serde_json::to_value(env).unwrap(),
            v.value,
            "{}: value",
            v.name
        );
        assert_eq!(encode_message(&env), b, "{}: encoding", v.name);
        kinds[v.kind as usize] = true;
    }
    let missing: Vec<usize> = (0..kinds.len()).filter(|&k| !kinds[k]).collect();
    assert!(missing.is_empty(), "no vector for body kinds {missing:?}");
    for v in &file.lenient {
        let bytes = unhex(&v.hex);
        let env = Envelope::decode(&bytes).unwrap_or_else(|e| panic!("{}: {e}", v.name));
        assert_eq!(
            serde_json::to_value(env).unwrap(),
            v.value,
            "{}: value",
            v.name
        );
        assert_eq!(
            hx(&encode_message(&env)),
            v.canonical,
            "{}: canonical",
            v.name
        );
    }
    for v in &file.errors {
        let err = Envelope::decode(&unhex(&v.hex)).expect_err(&v.name);
        assert_eq!(format!("{err:?}"), v.error, "{}", v.name);
        // The request id is recovered whenever there is one, so the peer
        // can be answered.
        match err {
            DecodeError::UnknownKind { kind, .. } => assert!(kind >= BODY_KINDS),
            DecodeError::BadBody { kind, .. } => assert!(kind < BODY_KINDS),
            DecodeError::Malformed => {}
        }
    }
}

/// The firmware's codec (`Envelope::decode_kinds` / `encode_kinds`, not
/// serde) reads and writes every message vector the same way.
#[test]
fn message_vectors_through_the_firmware_codec() {
    let file: MessageFile<Value> = golden("messages.json", &message_vectors());
    let messages = file.messages.iter().map(|v| (&v.name, &v.hex));
    let lenient = file.lenient.iter().map(|v| (&v.name, &v.hex));
    for (name, hex) in messages.chain(lenient) {
        let b = unhex(hex);
        let env = Envelope::decode_kinds::<ALL_KINDS>(&b).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(Ok(env), Envelope::decode(&b), "{name}");
        let mut buf = vec![0u8; b.len() + 16];
        let n = env.encode_kinds::<ALL_KINDS>(&mut buf).unwrap();
        assert_eq!(buf[..n], encode_message(&env), "{name}: encoding");
    }
    for v in &file.errors {
        let err = Envelope::decode_kinds::<ALL_KINDS>(&unhex(&v.hex)).expect_err(&v.name);
        assert_eq!(format!("{err:?}"), v.error, "{}", v.name);
    }
}

/// The wire kind of every body is its position in the schema text, which is
/// what the HELLO's schema hash covers.
#[test]
fn message_vectors_kind_matches_schema_line() {
    for (name, _, env) in message_list() {
        let b = encode_message(&env);
        let after_id = postcard::take_from_bytes::<u32>(&b).unwrap().1;
        let kind = postcard::take_from_bytes::<u32>(after_id).unwrap().0;
        assert_eq!(kind, env.kind(), "{name}");
        let line = corral_protocol::schema::SCHEMA
            .lines()
            .nth(kind as usize + 1)
            .unwrap_or_else(|| panic!("{name}: no schema line for kind {kind}"));
        assert!(line.starts_with(&format!("{kind} ")), "{name}: {line}");
    }
}

// ---------------------------------------------------------------------------
// Authentication
// ---------------------------------------------------------------------------

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct AuthFile {
    about: String,
    vectors: Vec<AuthVector>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct AuthVector {
    name: String,
    description: String,
    /// The key file's content (64 hex characters).
    key: String,
    agent_nonce: String,
    gateway_nonce: String,
    /// agent → gateway, 44 bytes.
    challenge: String,
    /// gateway → agent, 64 bytes (computed with `gateway_key` if given).
    response: String,
    /// agent → gateway, 33 bytes.
    verdict: String,
    /// The key the gateway used, if it differs from the agent's.
    gateway_key: Option<String>,
}

fn auth_vectors() -> AuthFile {
    let key_text = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    let key = auth::Key::from_hex(key_text).unwrap();
    let an: [u8; 32] = std::array::from_fn(|i| 0xa0 + i as u8 % 16);
    let gn: [u8; 32] = std::array::from_fn(|i| 0x40 + i as u8);
    let challenge = auth::challenge(&an);
    let response = auth::respond(&key, &challenge, &gn).unwrap();
    let verdict = auth::verify_response(&key, &an, &response).unwrap();
    let wrong_text = "ff".repeat(32);
    let wrong = auth::Key::from_hex(&wrong_text).unwrap();
    let bad_response = auth::respond(&wrong, &challenge, &gn).unwrap();
    AuthFile {
        about: "TCP authentication: CHALLENGE = \"CORRAL-AUTH1\" || agent_nonce; RESPONSE = gateway_nonce || \
                HMAC-SHA-256(key, \"client\" || agent_nonce || gateway_nonce); VERDICT = 01 || \
                HMAC-SHA-256(key, \"server\" || agent_nonce || gateway_nonce), or 33 zero bytes. docs/protocol.md §8."
            .into(),
        vectors: vec![
            AuthVector {
                name: "accepted".into(),
                description: "Both sides hold the key: the agent accepts and proves it knows the key too.".into(),
                key: key_text.into(),
                agent_nonce: hx(&an),
                gateway_nonce: hx(&gn),
                challenge: hx(&challenge),
                response: hx(&response),
                verdict: hx(&verdict),
                gateway_key: None,
            },
            AuthVector {
                name: "refused".into(),
                description: "The gateway holds another key: the agent refuses with 33 zero bytes and closes.".into(),
                key: key_text.into(),
                agent_nonce: hx(&an),
                gateway_nonce: hx(&gn),
                challenge: hx(&challenge),
                response: hx(&bad_response),
                verdict: hx(&auth::refusal()),
                gateway_key: Some(wrong_text),
            },
        ],
    }
}

fn array<const N: usize>(text: &str) -> [u8; N] {
    unhex(text)
        .try_into()
        .unwrap_or_else(|v: Vec<u8>| panic!("expected {N} bytes, got {}", v.len()))
}

#[test]
fn auth_vectors_reproduce_both_sides() {
    let file: AuthFile = golden("auth.json", &auth_vectors());
    for v in &file.vectors {
        let key = auth::Key::from_hex(&v.key).unwrap();
        let gw_key = auth::Key::from_hex(v.gateway_key.as_deref().unwrap_or(&v.key)).unwrap();
        let an: [u8; 32] = array(&v.agent_nonce);
        let gn: [u8; 32] = array(&v.gateway_nonce);
        let challenge: [u8; auth::CHALLENGE_LEN] = array(&v.challenge);
        let response: [u8; auth::RESPONSE_LEN] = array(&v.response);
        let verdict: [u8; auth::VERDICT_LEN] = array(&v.verdict);
        assert_eq!(auth::challenge(&an), challenge, "{}: challenge", v.name);
        assert_eq!(&challenge[..12], auth::MAGIC);
        assert_eq!(
            auth::respond(&gw_key, &challenge, &gn).unwrap(),
            response,
            "{}: response",
            v.name
        );
        match auth::verify_response(&key, &an, &response) {
            Ok(ours) => {
                assert_eq!(ours, verdict, "{}: verdict", v.name);
                assert_eq!(
                    auth::verify_verdict(&gw_key, &challenge, &gn, &verdict),
                    Ok(())
                );
            }
            Err(e) => {
                assert_eq!(e, auth::AuthError::WrongKey, "{}", v.name);
                assert_eq!(verdict, auth::refusal(), "{}: refusal", v.name);
                assert_eq!(
                    auth::verify_verdict(&gw_key, &challenge, &gn, &verdict),
                    Err(auth::AuthError::Refused)
                );
            }
        }
    }
}
