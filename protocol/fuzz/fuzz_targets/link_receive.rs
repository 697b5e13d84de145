//! Arbitrary input into a `Link`: nothing may panic, whatever the peer
//! sends and whenever.
//!
//! Raw bytes alone would almost never get past the CRC, so the input is read
//! as a script of operations, and the harness frames what the fuzzer
//! chooses: raw line bytes, framed bodies, HELLOs and REJECTs with chosen
//! fields, SEGs with the right session tag and chosen acks, SACKs, sequence
//! numbers and data, the passing of time, messages to send, event polling,
//! and exchanges with a second, real link over a line that drops and
//! corrupts bytes. Everything the link transmits must be well-formed frames
//! holding datagrams that parse.
//!
//! The first byte picks the configuration; then each operation is an opcode
//! byte (modulo 10) and its operands, read until the input ends:
//!
//! | op | operands | what |
//! |----|----------|------|
//! | 0 | n: u8, n bytes | raw bytes into `receive` |
//! | 1 | n: u8, n bytes | the bytes framed (leading delimiter, COBS, CRC) into `receive` |
//! | 2 | session: u32, flags: u8, features: u32, [segment: u16, window: u32, message: u16 if flags & 8] | a HELLO from the peer |
//! | 3 | flags: u8, ... | a SEG from the peer (see `seg`) |
//! | 4 | t: u16 | time passes: t × 100 µs, or t ms if t's top bit is set |
//! | 5 | n: u16 | `send` a message of n % 2048 bytes |
//! | 6 | n: u8 | up to n % 16 + 1 events polled |
//! | 7 | n: u16 | `poll_transmit` into a buffer of n % 2048 + 1 bytes |
//! | 8 | reason: u8, flags: u8 | a REJECT from the peer |
//! | 9 | how: u8, at: u16 | one exchange with the real peer over a faulty line |
//!
//! `cargo xtask fuzz` seeds the corpus with op 1 around each golden
//! datagram vector; keep the two in step.

#![no_main]

use corral_protocol::frame::{self, Decoded, FrameDecoder};
use corral_protocol::link::{Config, Event, Link};
use corral_protocol::message::{Body, Envelope};
use corral_protocol::schema::{SCHEMA_HASH, VERSION};
use corral_protocol::wire::{
    session_tag, AckRepr, HelloRepr, RejectReason, RejectRepr, SegRepr, Version, HELLO_NEEDS_REPLY,
    KIND_HELLO, KIND_REJECT, KIND_SEG, SEG_MAX_HEADER,
};
use corral_protocol::Instant;
use libfuzzer_sys::fuzz_target;

/// The session id of the link under test.
const OURS: u32 = 0x5eed_1234;
/// The session id of the real peer link.
const PEER: u32 = 0x0bad_cafe;

type L = Link<Vec<u8>, 4>;

/// Operands read from the fuzzer's input; `None` once it runs out.
struct Script<'a>(&'a [u8]);

impl<'a> Script<'a> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes([self.u8()?, self.u8()?]))
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes([
            self.u8()?,
            self.u8()?,
            self.u8()?,
            self.u8()?,
        ]))
    }

    /// Up to `n` bytes (fewer at the end of the input).
    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.0.len());
        let (b, rest) = self.0.split_at(n);
        self.0 = rest;
        b
    }
}

fn link(cfg: Config, session: u32) -> L {
    let storage = vec![0u8; cfg.storage_len()];
    Link::new(cfg, storage, session, Instant::ZERO).expect("valid configuration")
}

/// Frames `body` as a sender would and feeds it to `link`.
fn deliver_frame(link: &mut L, now: Instant, body: &[u8]) {
    let mut out = vec![0u8; frame::max_encoded_len(body.len())];
    out[0] = frame::DELIMITER;
    let n = frame::encode(&[body], &mut out[1..]).expect("max_encoded_len fits");
    link.receive(now, &out[..n + 1]);
}

/// Checks that what a link transmitted is a burst of well-formed frames
/// holding datagrams that parse.
fn check_transmitted(bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    assert_eq!(
        bytes[0],
        frame::DELIMITER,
        "a burst starts with a delimiter"
    );
    assert_eq!(
        *bytes.last().unwrap(),
        frame::DELIMITER,
        "a burst ends with a delimiter"
    );
    let mut dec = FrameDecoder::<{ 20 * 1024 }>::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (used, item) = dec.push(rest);
        rest = &rest[used..];
        match item {
            Some(Decoded::Frame(body)) => {
                let ok = match body[0] {
                    KIND_HELLO => HelloRepr::parse(body).is_ok(),
                    KIND_REJECT => RejectRepr::parse(body).is_ok(),
                    KIND_SEG => SegRepr::parse(body).is_ok(),
                    _ => false,
                };
                assert!(ok, "the link sent a malformed datagram: {body:02x?}");
            }
            Some(Decoded::Console(t)) => {
                panic!("the link sent something that is not a frame: {t:02x?}")
            }
            None => {}
        }
    }
    let stats = dec.stats();
    assert_eq!(
        (stats.bad_frames, stats.oversized),
        (0, 0),
        "the link sent a damaged frame"
    );
}

/// Polls up to `n` events, decoding messages as an application would.
fn drain(link: &mut L, n: usize) {
    for _ in 0..n {
        match link.poll_event() {
            None => return,
            Some(Event::Message(m)) => {
                let _ = Envelope::decode(m);
            }
            Some(_) => {}
        }
    }
}

/// A SEG from the peer. Operands: flags, then as the flags say: ack offset
/// (u16) and window (u16); SACK blocks (offset u16, length u8 each); seq
/// offset (u16); a tag (u8) if flags & 0x80; data length (u8) and data,
/// wrapped as a record if flags & 0x40.
fn seg(s: &mut Script<'_>, peer: u32) -> Option<Vec<u8>> {
    let flags = s.u8()?;
    let mut seg = SegRepr::empty(session_tag(OURS, peer));
    if flags & 0x01 != 0 {
        seg.ack = Some(AckRepr {
            ack: OURS.wrapping_add(u32::from(s.u16()?)),
            window: u32::from(s.u16()?),
        });
    }
    let sacks = usize::from((flags >> 1) & 3);
    for i in 0..sacks {
        let start = OURS.wrapping_add(u32::from(s.u16()?));
        seg.sacks[i] = (start, start.wrapping_add(u32::from(s.u8()?)));
    }
    seg.sack_count = sacks as u8;
    seg.ack_request = flags & 0x08 != 0;
    if flags & 0x10 != 0 {
        seg.seq = Some(peer.wrapping_add(u32::from(s.u16()?)));
    }
    if flags & 0x80 != 0 {
        seg.tag = s.u8()?;
    }
    let n = usize::from(s.u8().unwrap_or(0));
    let data = s.bytes(n);
    let mut h = [0u8; SEG_MAX_HEADER];
    let hl = seg.emit(&mut h);
    let mut body = h[..hl].to_vec();
    if flags & 0x40 != 0 {
        body.extend_from_slice(&(data.len() as u16).to_le_bytes());
    }
    body.extend_from_slice(data);
    Some(body)
}

/// Delivers `bytes` over a faulty line: `how` picks whether to drop the
/// first half and whether to flip a byte (at `at`).
fn faulty(bytes: &[u8], how: u8, at: u16) -> Vec<u8> {
    let mut b = if how & 1 != 0 {
        bytes[bytes.len() / 2..].to_vec()
    } else {
        bytes.to_vec()
    };
    if how & 2 != 0 && !b.is_empty() {
        let i = usize::from(at) % b.len();
        b[i] ^= 1 << (how >> 5);
    }
    b
}

fn run(data: &[u8]) -> Option<()> {
    let mut s = Script(data);
    let setup = s.u8()?;
    let cfg = if setup & 1 == 0 {
        Config::tiny()
    } else {
        Config {
            console_buffer: 64,
            ..Config::device()
        }
    };
    let mut a = link(cfg, OURS);
    let mut b = link(Config::device(), PEER);
    let mut peer = PEER;
    let mut micros = 0u64;
    let mut out = vec![0u8; 2048];
    loop {
        let now = Instant::from_micros(micros);
        match s.u8()? % 10 {
            0 => {
                let n = usize::from(s.u8()?);
                let bytes = s.bytes(n);
                a.receive(now, bytes);
            }
            1 => {
                let n = usize::from(s.u8()?);
                let body = s.bytes(n);
                deliver_frame(&mut a, now, body);
            }
            2 => {
                let session = s.u32()?;
                if session != 0 {
                    peer = session;
                }
                let flags = s.u8()?;
                let features = s.u32()?;
                let (max_segment, window, max_message) = if flags & 0x08 != 0 {
                    (s.u16()?, s.u32()?, s.u16()?)
                } else {
                    (512, 1536, 1534)
                };
                let h = HelloRepr {
                    version: match (flags >> 4) & 3 {
                        0 | 1 => VERSION,
                        2 => Version {
                            major: VERSION.major,
                            minor: VERSION.minor.wrapping_add(1),
                        },
                        _ => Version {
                            major: VERSION.major.wrapping_add(1),
                            minor: 0,
                        },
                    },
                    flags: flags & HELLO_NEEDS_REPLY,
                    schema_hash: if flags & 0x40 != 0 {
                        !SCHEMA_HASH
                    } else {
                        SCHEMA_HASH
                    },
                    features,
                    session: if flags & 0x80 != 0 { 0 } else { peer },
                    peer_session: match (flags >> 1) & 3 {
                        0 | 1 => OURS,
                        2 => 0,
                        _ => features,
                    },
                    max_segment,
                    window,
                    max_message,
                };
                let mut body = [0u8; HelloRepr::LEN];
                h.emit(&mut body);
                deliver_frame(&mut a, now, &body);
            }
            3 => {
                let body = seg(&mut s, peer)?;
                deliver_frame(&mut a, now, &body);
            }
            4 => {
                let t = s.u16()?;
                micros += if t & 0x8000 != 0 {
                    u64::from(t & 0x7fff) * 1000
                } else {
                    u64::from(t) * 100
                };
            }
            5 => {
                let n = usize::from(s.u16()? % 2048);
                let _ = a.send(&vec![0x55; n]);
                let _ = a.send_message(&Envelope::new(n as u32, Body::Ping(n as u64)));
            }
            6 => {
                let n = usize::from(s.u8()? % 16) + 1;
                drain(&mut a, n);
            }
            7 => {
                let n = usize::from(s.u16()? % 2048) + 1;
                let w = a.poll_transmit(now, &mut out[..n]);
                assert!(w <= n);
                check_transmitted(&out[..w]);
            }
            8 => {
                let reason = s.u8()?;
                let flags = s.u8()?;
                let r = RejectRepr {
                    reason: match reason {
                        1 => RejectReason::Version,
                        2 => RejectReason::Schema,
                        3 => RejectReason::Parameters,
                        x => RejectReason::Other(x),
                    },
                    session: peer,
                    peer_session: if flags & 1 != 0 {
                        OURS
                    } else {
                        u32::from(flags)
                    },
                    version: VERSION,
                    schema_hash: SCHEMA_HASH,
                };
                let mut body = [0u8; RejectRepr::LEN];
                r.emit(&mut body);
                deliver_frame(&mut a, now, &body);
            }
            _ => {
                let how = s.u8()?;
                let at = s.u16()?;
                let w = a.poll_transmit(now, &mut out);
                check_transmitted(&out[..w]);
                b.receive(now, &faulty(&out[..w], how, at));
                if how & 4 != 0 {
                    let _ =
                        b.send_message(&Envelope::new(u32::from(at), Body::Ping(u64::from(at))));
                    let _ = b.send(&vec![0xaa; usize::from(at) % 1500]);
                }
                let w = b.poll_transmit(now, &mut out);
                check_transmitted(&out[..w]);
                a.receive(now, &faulty(&out[..w], how >> 2, at.rotate_left(7)));
                drain(&mut b, 16);
            }
        }
        let _ = a.poll_timeout();
        let _ = a.stats();
        let _ = a.session();
        assert!(a.send_capacity() <= a.max_message());
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = run(data);
});
