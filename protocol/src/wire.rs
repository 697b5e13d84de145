//! Link-layer datagrams: the bodies carried inside frames.
//!
//! Following smoltcp's `wire` module, each datagram has a validated
//! representation (`*Repr`) with `parse` for untrusted bytes and `emit` for
//! sending; field offsets are named constants. The link state machine only ever
//! sees validated representations.
//!
//! Every body starts with a kind byte:
//!
//! | kind | datagram | purpose |
//! |------|----------|---------|
//! | 0x01 | HELLO    | handshake, session ids, limits; also a liveness probe |
//! | 0x02 | REJECT   | handshake refused, with the reason |
//! | 0x03 | SEG      | stream data, acknowledgements, keepalive |
//!
//! All integers are little-endian. See `docs/protocol.md` §3 for diagrams.

use core::fmt;

/// Kind byte of a HELLO.
pub const KIND_HELLO: u8 = 0x01;
/// Kind byte of a REJECT.
pub const KIND_REJECT: u8 = 0x02;
/// Kind byte of a SEG.
pub const KIND_SEG: u8 = 0x03;

/// Why a datagram could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireError {
    /// Shorter than its fixed part.
    Truncated,
    /// The kind byte is not one this version knows.
    UnknownKind(u8),
    /// A HELLO without the protocol's magic bytes.
    BadMagic,
    /// Reserved bits were set.
    Reserved,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated => f.write_str("datagram truncated"),
            WireError::UnknownKind(k) => write!(f, "unknown datagram kind {k:#04x}"),
            WireError::BadMagic => f.write_str("HELLO without the CR magic"),
            WireError::Reserved => f.write_str("reserved bits set"),
        }
    }
}

// The field accessors below never panic: callers check lengths first, and
// where the optimizer cannot see that (variable offsets), a panicking
// index would keep a bounds check, its panic location and message in
// firmware for every field. Out of range reads 0 and writes nothing.

/// The little-endian `u16` at `at`.
fn u16_at(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .and_then(|f| f.try_into().ok())
        .map_or(0, u16::from_le_bytes)
}

/// The little-endian `u32` at `at`.
fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .and_then(|f| f.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

/// Writes `bytes` at `at`.
fn put(b: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(field) = b.get_mut(at..at + bytes.len()) {
        field.copy_from_slice(bytes);
    }
}

/// A protocol version. Peers with different `major` cannot talk; `minor`
/// versions only add (new message kinds at the end of enums, new fields
/// behind feature flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    /// Incompatible changes.
    pub major: u8,
    /// Compatible additions.
    pub minor: u8,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

mod hello {
    pub const KIND: usize = 0;
    pub const MAGIC: core::ops::Range<usize> = 1..3;
    pub const VERSION_MAJOR: usize = 3;
    pub const VERSION_MINOR: usize = 4;
    pub const FLAGS: usize = 5;
    pub const SCHEMA_HASH: usize = 6;
    pub const FEATURES: usize = 10;
    pub const SESSION: usize = 14;
    pub const PEER_SESSION: usize = 18;
    pub const MAX_SEGMENT: usize = 22;
    pub const WINDOW: usize = 24;
    pub const MAX_MESSAGE: usize = 28;
    pub const LEN: usize = 30;
}

/// The two bytes after a HELLO's kind byte: "CR".
pub const HELLO_MAGIC: [u8; 2] = *b"CR";
/// HELLO flag: the sender has not finished its handshake and wants a HELLO back.
pub const HELLO_NEEDS_REPLY: u8 = 0x01;

/// A HELLO: who I am, whom I think I am talking to, and what I can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HelloRepr {
    /// The sender's protocol version.
    pub version: Version,
    /// [`HELLO_NEEDS_REPLY`] or 0.
    pub flags: u8,
    /// Hash of the sender's message schema (see [`crate::schema`]).
    pub schema_hash: u32,
    /// Feature bits the sender supports (see [`crate::features`]).
    pub features: u32,
    /// The sender's session id: new at every boot or link start, never 0.
    pub session: u32,
    /// The session id the sender believes its peer has; 0 if it knows none.
    pub peer_session: u32,
    /// Largest SEG payload the sender accepts.
    pub max_segment: u16,
    /// Receive buffer of the sender: bytes the peer may have in flight.
    pub window: u32,
    /// Largest message record the sender can take.
    pub max_message: u16,
}

impl HelloRepr {
    /// Length of a HELLO emitted by this version. Longer HELLOs from later
    /// minor versions parse; the extra bytes are ignored.
    pub const LEN: usize = hello::LEN;

    /// Parses a HELLO body.
    pub fn parse(b: &[u8]) -> Result<Self, WireError> {
        if b.len() < hello::LEN {
            return Err(WireError::Truncated);
        }
        if b[hello::KIND] != KIND_HELLO {
            return Err(WireError::UnknownKind(b[hello::KIND]));
        }
        if b[hello::MAGIC] != HELLO_MAGIC {
            return Err(WireError::BadMagic);
        }
        Ok(HelloRepr {
            version: Version {
                major: b[hello::VERSION_MAJOR],
                minor: b[hello::VERSION_MINOR],
            },
            flags: b[hello::FLAGS],
            schema_hash: u32_at(b, hello::SCHEMA_HASH),
            features: u32_at(b, hello::FEATURES),
            session: u32_at(b, hello::SESSION),
            peer_session: u32_at(b, hello::PEER_SESSION),
            max_segment: u16_at(b, hello::MAX_SEGMENT),
            window: u32_at(b, hello::WINDOW),
            max_message: u16_at(b, hello::MAX_MESSAGE),
        })
    }

    /// Writes the HELLO body.
    pub fn emit(&self, b: &mut [u8; hello::LEN]) {
        b[hello::KIND] = KIND_HELLO;
        b[hello::MAGIC].copy_from_slice(&HELLO_MAGIC);
        b[hello::VERSION_MAJOR] = self.version.major;
        b[hello::VERSION_MINOR] = self.version.minor;
        b[hello::FLAGS] = self.flags;
        put(b, hello::SCHEMA_HASH, &self.schema_hash.to_le_bytes());
        put(b, hello::FEATURES, &self.features.to_le_bytes());
        put(b, hello::SESSION, &self.session.to_le_bytes());
        put(b, hello::PEER_SESSION, &self.peer_session.to_le_bytes());
        put(b, hello::MAX_SEGMENT, &self.max_segment.to_le_bytes());
        put(b, hello::WINDOW, &self.window.to_le_bytes());
        put(b, hello::MAX_MESSAGE, &self.max_message.to_le_bytes());
    }
}

/// Why a handshake was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// Different major protocol versions.
    Version,
    /// Same version but a different message schema: one side was built from a
    /// modified protocol without a version bump.
    Schema,
    /// Limits too small to work with (segment, window or message size), or a
    /// zero session id.
    Parameters,
    /// A reason added by a later version.
    Other(u8),
}

impl RejectReason {
    fn to_u8(self) -> u8 {
        match self {
            RejectReason::Version => 1,
            RejectReason::Schema => 2,
            RejectReason::Parameters => 3,
            RejectReason::Other(x) => x,
        }
    }

    fn from_u8(x: u8) -> Self {
        match x {
            1 => RejectReason::Version,
            2 => RejectReason::Schema,
            3 => RejectReason::Parameters,
            x => RejectReason::Other(x),
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RejectReason::Version => f.write_str("incompatible protocol versions"),
            RejectReason::Schema => {
                f.write_str("same protocol version but different message schemas")
            }
            RejectReason::Parameters => f.write_str("unusable link parameters"),
            RejectReason::Other(x) => write!(f, "reason code {x}"),
        }
    }
}

mod reject {
    pub const KIND: usize = 0;
    pub const REASON: usize = 1;
    pub const SESSION: usize = 2;
    pub const PEER_SESSION: usize = 6;
    pub const VERSION_MAJOR: usize = 10;
    pub const VERSION_MINOR: usize = 11;
    pub const SCHEMA_HASH: usize = 12;
    pub const LEN: usize = 16;
}

/// A REJECT: the sender refuses the handshake and says why, with its own
/// version and schema so the other side can print both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RejectRepr {
    /// Why.
    pub reason: RejectReason,
    /// The rejecting side's session id.
    pub session: u32,
    /// The session id of the HELLO being rejected.
    pub peer_session: u32,
    /// The rejecting side's version.
    pub version: Version,
    /// The rejecting side's schema hash.
    pub schema_hash: u32,
}

impl RejectRepr {
    /// Length of a REJECT body.
    pub const LEN: usize = reject::LEN;

    /// Parses a REJECT body.
    pub fn parse(b: &[u8]) -> Result<Self, WireError> {
        if b.len() < reject::LEN {
            return Err(WireError::Truncated);
        }
        if b[reject::KIND] != KIND_REJECT {
            return Err(WireError::UnknownKind(b[reject::KIND]));
        }
        Ok(RejectRepr {
            reason: RejectReason::from_u8(b[reject::REASON]),
            session: u32_at(b, reject::SESSION),
            peer_session: u32_at(b, reject::PEER_SESSION),
            version: Version {
                major: b[reject::VERSION_MAJOR],
                minor: b[reject::VERSION_MINOR],
            },
            schema_hash: u32_at(b, reject::SCHEMA_HASH),
        })
    }

    /// Writes the REJECT body.
    pub fn emit(&self, b: &mut [u8; reject::LEN]) {
        b[reject::KIND] = KIND_REJECT;
        b[reject::REASON] = self.reason.to_u8();
        put(b, reject::SESSION, &self.session.to_le_bytes());
        put(b, reject::PEER_SESSION, &self.peer_session.to_le_bytes());
        b[reject::VERSION_MAJOR] = self.version.major;
        b[reject::VERSION_MINOR] = self.version.minor;
        put(b, reject::SCHEMA_HASH, &self.schema_hash.to_le_bytes());
    }
}

/// SEG flag: a data part (sequence number and bytes) follows the header.
pub const SEG_DATA: u8 = 0x01;
/// SEG flag: the header carries an acknowledgement and a window.
pub const SEG_ACK: u8 = 0x02;
/// SEG flag: the receiver should acknowledge at once (keepalive probe).
pub const SEG_ACK_REQ: u8 = 0x04;
const SEG_SACK_SHIFT: u8 = 4;
const SEG_SACK_MASK: u8 = 0x30;
const SEG_RESERVED: u8 = 0xC8;

/// At most this many selective-acknowledgement blocks fit in a SEG.
pub const MAX_SACK_BLOCKS: usize = 3;

/// Longest SEG header: kind, tag, flags, ack+window, three SACK blocks, seq.
pub const SEG_MAX_HEADER: usize = 3 + 8 + 8 * MAX_SACK_BLOCKS + 4;

/// An acknowledgement: every byte before `ack` arrived, and the receiver can
/// take `window` bytes from `ack` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckRepr {
    /// Next sequence number the receiver expects.
    pub ack: u32,
    /// Free receive buffer from `ack` on.
    pub window: u32,
}

/// A SEG header. The data, if any, is the rest of the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegRepr {
    /// Session tag: [`session_tag`] of both session ids. Segments of another
    /// session are dropped.
    pub tag: u8,
    /// Acknowledgement, if carried.
    pub ack: Option<AckRepr>,
    /// Ask the peer to acknowledge at once.
    pub ack_request: bool,
    /// Ranges `[start, end)` received beyond `ack`.
    pub sacks: [(u32, u32); MAX_SACK_BLOCKS],
    /// How many entries of `sacks` are used.
    pub sack_count: u8,
    /// Sequence number of the first data byte, if data follows.
    pub seq: Option<u32>,
}

impl SegRepr {
    /// A header with nothing set.
    pub const fn empty(tag: u8) -> Self {
        SegRepr {
            tag,
            ack: None,
            ack_request: false,
            sacks: [(0, 0); MAX_SACK_BLOCKS],
            sack_count: 0,
            seq: None,
        }
    }

    /// The used SACK blocks.
    pub fn sack_blocks(&self) -> &[(u32, u32)] {
        &self.sacks[..usize::from(self.sack_count).min(MAX_SACK_BLOCKS)]
    }

    /// Parses a SEG body into the header and the data that follows it.
    pub fn parse(b: &[u8]) -> Result<(Self, &[u8]), WireError> {
        if b.len() < 3 {
            return Err(WireError::Truncated);
        }
        if b[0] != KIND_SEG {
            return Err(WireError::UnknownKind(b[0]));
        }
        let flags = b[2];
        if flags & SEG_RESERVED != 0 {
            return Err(WireError::Reserved);
        }
        let mut repr = SegRepr::empty(b[1]);
        repr.ack_request = flags & SEG_ACK_REQ != 0;
        let mut at = 3;
        if flags & SEG_ACK != 0 {
            if b.len() < at + 8 {
                return Err(WireError::Truncated);
            }
            repr.ack = Some(AckRepr {
                ack: u32_at(b, at),
                window: u32_at(b, at + 4),
            });
            at += 8;
        }
        repr.sack_count = (flags & SEG_SACK_MASK) >> SEG_SACK_SHIFT;
        for sack in repr.sacks.iter_mut().take(usize::from(repr.sack_count)) {
            if b.len() < at + 8 {
                return Err(WireError::Truncated);
            }
            *sack = (u32_at(b, at), u32_at(b, at + 4));
            at += 8;
        }
        if flags & SEG_DATA != 0 {
            if b.len() < at + 4 {
                return Err(WireError::Truncated);
            }
            repr.seq = Some(u32_at(b, at));
            at += 4;
        }
        Ok((repr, b.get(at..).unwrap_or_default()))
    }

    /// Length of the header [`emit`](Self::emit) writes.
    pub fn header_len(&self) -> usize {
        3 + if self.ack.is_some() { 8 } else { 0 }
            + 8 * usize::from(self.sack_count).min(MAX_SACK_BLOCKS)
            + if self.seq.is_some() { 4 } else { 0 }
    }

    /// Writes the header; returns its length.
    pub fn emit(&self, b: &mut [u8; SEG_MAX_HEADER]) -> usize {
        let count = self.sack_count.min(MAX_SACK_BLOCKS as u8);
        let mut flags = count << SEG_SACK_SHIFT;
        if self.seq.is_some() {
            flags |= SEG_DATA;
        }
        if self.ack.is_some() {
            flags |= SEG_ACK;
        }
        if self.ack_request {
            flags |= SEG_ACK_REQ;
        }
        b[0] = KIND_SEG;
        b[1] = self.tag;
        b[2] = flags;
        let mut at = 3;
        if let Some(ack) = self.ack {
            put(b, at, &ack.ack.to_le_bytes());
            put(b, at + 4, &ack.window.to_le_bytes());
            at += 8;
        }
        for &(s, e) in self.sacks.iter().take(usize::from(count)) {
            put(b, at, &s.to_le_bytes());
            put(b, at + 4, &e.to_le_bytes());
            at += 8;
        }
        if let Some(seq) = self.seq {
            put(b, at, &seq.to_le_bytes());
            at += 4;
        }
        at
    }
}

/// The one-byte tag both directions of a session carry: the XOR of the two
/// session ids folded to a byte.
pub fn session_tag(a: u32, b: u32) -> u8 {
    let x = a ^ b;
    (x ^ (x >> 8) ^ (x >> 16) ^ (x >> 24)) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seg_round_trip_with_everything() {
        let mut s = SegRepr::empty(0x5a);
        s.ack = Some(AckRepr {
            ack: 7,
            window: 4096,
        });
        s.ack_request = true;
        s.sacks[0] = (10, 20);
        s.sacks[1] = (30, 40);
        s.sack_count = 2;
        s.seq = Some(0xdead_beef);
        let mut b = [0u8; SEG_MAX_HEADER + 3];
        let mut h = [0u8; SEG_MAX_HEADER];
        let n = s.emit(&mut h);
        assert_eq!(n, s.header_len());
        b[..n].copy_from_slice(&h[..n]);
        b[n..n + 3].copy_from_slice(b"abc");
        let (p, data) = SegRepr::parse(&b[..n + 3]).unwrap();
        assert_eq!(p, s);
        assert_eq!(data, b"abc");
    }

    #[test]
    fn truncated_and_reserved_are_refused() {
        assert_eq!(
            SegRepr::parse(&[KIND_SEG, 0, SEG_ACK, 1, 2]),
            Err(WireError::Truncated)
        );
        assert_eq!(
            SegRepr::parse(&[KIND_SEG, 0, 0x80]),
            Err(WireError::Reserved)
        );
        assert_eq!(
            HelloRepr::parse(&[KIND_HELLO; 40]),
            Err(WireError::BadMagic)
        );
    }
}
