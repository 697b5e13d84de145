//! The link: a reliable, pipelined, flow-controlled message stream over an
//! unreliable byte pipe, as a sans-IO state machine.
//!
//! Heads up: before changing this module read `docs/protocol.md` §3–§5. The
//! design is TCP's, cut down for a UART: a three-way HELLO handshake with
//! session ids (so a rebooted peer is noticed at its first frame), a byte
//! stream with cumulative and selective acknowledgements, RACK and RTO loss
//! detection, and a receive window that is the free space of the receiver's
//! buffer. Messages are length-prefixed records inside the stream, so a lost
//! frame is re-sent in smaller pieces when the line gets noisy.
//!
//! The link never reads a clock, touches a socket or allocates. The caller
//! drives it:
//!
//! ```
//! use corral_protocol::link::{Config, Event, Link};
//! use corral_protocol::Instant;
//!
//! let cfg = Config::device();
//! let mut a = Link::<_, 8>::new(cfg.clone(), vec![0u8; cfg.storage_len()], 0x1111, Instant::ZERO).unwrap();
//! let mut b = Link::<_, 8>::new(cfg.clone(), vec![0u8; cfg.storage_len()], 0x2222, Instant::ZERO).unwrap();
//! let mut wire = [0u8; 2048];
//! let mut now = Instant::ZERO;
//! let mut got = None;
//! for step in 0..20 {
//!     now = Instant::from_millis(step);
//!     if step == 5 {
//!         a.send(b"hello").unwrap();
//!     }
//!     let n = a.poll_transmit(now, &mut wire);
//!     b.receive(now, &wire[..n]);
//!     let n = b.poll_transmit(now, &mut wire);
//!     a.receive(now, &wire[..n]);
//!     while let Some(ev) = b.poll_event() {
//!         if let Event::Message(m) = ev {
//!             got = Some(m.to_vec());
//!         }
//!     }
//!     while a.poll_event().is_some() {}
//! }
//! assert_eq!(got.as_deref(), Some(&b"hello"[..]));
//! ```

mod rtt;
mod rx;
mod sizer;
mod tx;

use crate::frame::{self, Decoded, FrameDecoderState, FrameStats};
use crate::schema::{SCHEMA_HASH, VERSION};
use crate::time::{earliest, Instant};
use crate::wire::{
    session_tag, AckRepr, HelloRepr, RejectReason, RejectRepr, SegRepr, Version, WireError,
    HELLO_NEEDS_REPLY, KIND_HELLO, KIND_REJECT, KIND_SEG, MAX_SACK_BLOCKS, SEG_MAX_HEADER,
};
use core::fmt;
use core::time::Duration;
use heapless::Deque;
use rtt::RttEstimator;
use rx::{Accepted, RxState};
use sizer::SegmentSizer;
use tx::TxState;

/// Smallest segment payload a peer may announce.
pub const MIN_SEGMENT: u16 = 16;
/// Smallest message a peer must accept.
pub const MIN_MESSAGE: u16 = 64;
/// Bytes in front of every message record: its length, u16 LE.
pub const RECORD_HEADER: usize = 2;
/// Data segments up to this size carry a pending ack; bigger ones go after a
/// separate ack frame.
const PIGGYBACK_MAX: usize = 256;
/// Segments in flight while frames are being lost.
const LOSSY_IN_FLIGHT: usize = 12;

/// Sizes and timing of a link. The four buffers are carved, in order, out of
/// the one storage block given to [`Link::new`], which must be at least
/// [`storage_len`](Config::storage_len) bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Send buffer: unacknowledged and unsent stream bytes.
    pub tx_buffer: usize,
    /// Receive buffer: reassembly and unread messages. It is the window the
    /// peer may fill, and a message can be at most this minus 2 bytes.
    pub rx_buffer: usize,
    /// Decoder buffer: the largest encoded frame accepted.
    pub frame_buffer: usize,
    /// Console text waiting for [`Link::poll_event`]; 0 discards (and counts)
    /// console text, which suits devices.
    pub console_buffer: usize,
    /// Largest segment payload sent or accepted (also limited by
    /// `frame_buffer`).
    pub max_segment: u16,
    /// Smallest segment payload the adaptive sizing may choose.
    pub min_segment: u16,
    /// Shrink segments when frames get lost, grow them back when the line is
    /// clean. Off only for measurements.
    pub adaptive_segments: bool,
    /// Feature bits offered in the handshake (see [`crate::features`]).
    pub features: u32,
    /// HELLO retransmission interval while not connected.
    pub hello_interval: Duration,
    /// Idle time after which a keepalive asks the peer for an ack.
    pub keepalive_interval: Duration,
    /// Silence after which the peer is reported [`Event::Down`].
    pub dead_after: Duration,
    /// Retransmission timeout before the first RTT sample.
    pub rto_initial: Duration,
    /// Lower bound of the retransmission timeout.
    pub rto_min: Duration,
    /// Upper bound of the retransmission timeout, backoff included.
    pub rto_max: Duration,
    /// Quiet time after which an unterminated chunk is flushed as console
    /// text (a boot banner has no frame delimiter after it).
    pub console_flush_after: Duration,
}

impl Config {
    /// A microcontroller with a few KiB of RAM: window of two 256-byte
    /// segments, 3.4 KiB of storage.
    pub fn tiny() -> Self {
        Config {
            tx_buffer: 768,
            rx_buffer: 640,
            frame_buffer: 320,
            console_buffer: 0,
            max_segment: 256,
            ..Self::device()
        }
    }

    /// A microcontroller agent with room for 1 KiB messages.
    pub fn device() -> Self {
        Config {
            tx_buffer: 1536,
            rx_buffer: 1536,
            frame_buffer: 600,
            console_buffer: 0,
            max_segment: 512,
            min_segment: 32,
            adaptive_segments: true,
            features: crate::features::ALL,
            hello_interval: Duration::from_millis(250),
            keepalive_interval: Duration::from_millis(1000),
            dead_after: Duration::from_secs(5),
            rto_initial: Duration::from_millis(1000),
            rto_min: Duration::from_millis(20),
            rto_max: Duration::from_secs(3),
            console_flush_after: Duration::from_millis(100),
        }
    }

    /// A capable peer on a serial line (the gateway, `corral-agent`): 4 KiB
    /// frames and a 64 KiB window.
    pub fn serial() -> Self {
        Config {
            tx_buffer: 64 * 1024,
            rx_buffer: 64 * 1024,
            frame_buffer: frame_buffer_for(4096),
            console_buffer: 4096,
            max_segment: 4096,
            ..Self::device()
        }
    }

    /// A capable peer on a stream transport (TCP, stdio, a pipe): 16 KiB
    /// frames and a 256 KiB window.
    pub fn stream() -> Self {
        Config {
            tx_buffer: 256 * 1024,
            rx_buffer: 256 * 1024,
            frame_buffer: frame_buffer_for(16 * 1024),
            console_buffer: 4096,
            max_segment: 16 * 1024,
            dead_after: Duration::from_secs(10),
            ..Self::device()
        }
    }

    /// Storage bytes [`Link::new`] needs for this configuration.
    pub const fn storage_len(&self) -> usize {
        self.tx_buffer + self.rx_buffer + self.frame_buffer + self.console_buffer
    }

    /// Largest segment payload this side accepts.
    pub fn accepted_segment(&self) -> u16 {
        let fit = max_payload_for_frame_buffer(self.frame_buffer);
        (self.max_segment as usize).min(fit).min(u16::MAX as usize) as u16
    }

    /// Largest message this side accepts.
    pub fn accepted_message(&self) -> u16 {
        self.rx_buffer
            .saturating_sub(RECORD_HEADER)
            .min(u16::MAX as usize) as u16
    }
}

/// Decoder buffer needed to accept segments of `max_segment` payload bytes.
pub const fn frame_buffer_for(max_segment: usize) -> usize {
    frame::max_encoded_len(SEG_MAX_HEADER + max_segment)
}

fn max_payload_for_frame_buffer(frame_buffer: usize) -> usize {
    // Inverse of frame_buffer_for, conservatively.
    let body = (frame_buffer.saturating_sub(3 + frame::CRC_LEN)) * 254 / 255;
    body.saturating_sub(SEG_MAX_HEADER + 1)
}

/// Where a link stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Sending HELLOs, waiting for a compatible peer.
    Handshaking,
    /// Connected: messages flow.
    Established,
    /// Connected, but the peer has not been heard for
    /// [`Config::dead_after`]. Data is kept and resent if it comes back.
    Down,
    /// The handshake was refused (see [`Link::rejection`]). A compatible HELLO
    /// (e.g. after the peer was updated) starts over.
    Failed,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Handshaking => "handshaking",
            State::Established => "established",
            State::Down => "down",
            State::Failed => "failed",
        })
    }
}

/// What was agreed in the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionInfo {
    /// This side's session id.
    pub session: u32,
    /// The peer's session id (its boot id for a device).
    pub peer_session: u32,
    /// The peer's protocol version.
    pub peer_version: Version,
    /// Features both sides support.
    pub features: u32,
    /// Largest message this side may send.
    pub max_message: u16,
    /// Largest segment payload this side may send.
    pub max_segment: u16,
}

/// A refused handshake, printable on both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    /// Why.
    pub reason: RejectReason,
    /// True if the peer refused us, false if we refused the peer.
    pub by_peer: bool,
    /// The peer's version.
    pub peer_version: Version,
    /// The peer's schema hash.
    pub peer_schema: u32,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.by_peer {
            f.write_str("the peer refused the handshake: ")?;
        } else {
            f.write_str("refused the peer's handshake: ")?;
        }
        write!(
            f,
            "{} (peer: protocol {} schema {:08x}; here: protocol {} schema {:08x})",
            self.reason, self.peer_version, self.peer_schema, VERSION, SCHEMA_HASH
        )
    }
}

/// Something the application must know, from [`Link::poll_event`].
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// The handshake completed; messages may be sent.
    Connected(SessionInfo),
    /// The peer restarted (rebooted, or lost our session). Everything in
    /// flight in both directions is gone; requests must be failed. A
    /// [`Event::Connected`] follows once the new session is up.
    PeerReset,
    /// The peer has not been heard for [`Config::dead_after`].
    Down,
    /// The peer answers again, same session: nothing was lost.
    Up,
    /// The handshake was refused.
    Rejected(Rejection),
    /// The peer sent a message longer than this side accepts; the session was
    /// dropped and starts over.
    ProtocolViolation,
    /// Bytes from the line that were not frames: boot banners, `printf`.
    Console(&'a [u8]),
    /// One message, as the peer sent it.
    Message(&'a [u8]),
}

#[derive(Debug, Clone, Copy)]
enum Pending {
    Connected(SessionInfo),
    PeerReset,
    Down,
    Up,
    Rejected(Rejection),
    ProtocolViolation,
}

/// Why a message could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// No session: wait for [`Event::Connected`].
    NotConnected,
    /// Longer than the peer accepts (see [`Link::max_message`]).
    TooLarge,
    /// Not enough room in the send buffer now; try again after the peer
    /// acknowledged more (after the next [`Link::receive`]).
    Full,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SendError::NotConnected => "link not connected",
            SendError::TooLarge => "message larger than the peer accepts",
            SendError::Full => "send buffer full",
        })
    }
}

/// Counters of a link, for `corral info` and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Frames put on the wire.
    pub frames_sent: u64,
    /// Valid frames received.
    pub frames_received: u64,
    /// Bytes put on the wire.
    pub bytes_sent: u64,
    /// Bytes received from the wire.
    pub bytes_received: u64,
    /// Stream bytes sent for the first time (retransmissions excluded).
    pub payload_sent: u64,
    /// Stream bytes received in order.
    pub payload_received: u64,
    /// Frames dropped for a failed CRC or broken COBS.
    pub bad_frames: u32,
    /// Frames dropped for being longer than the decoder buffer.
    pub oversized: u32,
    /// Valid frames whose datagram could not be parsed.
    pub malformed: u32,
    /// Console text bytes seen.
    pub console_bytes: u32,
    /// Console text bytes dropped because nobody read them in time.
    pub console_dropped: u32,
    /// Segments sent again.
    pub retransmits: u32,
    /// Retransmission timeouts.
    pub timeouts: u32,
    /// Segments received that carried nothing new.
    pub duplicates: u32,
    /// Segments received after a gap.
    pub out_of_order: u32,
    /// Segments received outside the window.
    pub dropped_segments: u32,
    /// Out-of-order segments dropped for lack of room to remember them.
    pub no_range: u32,
    /// Frames of another session.
    pub wrong_session: u32,
    /// Times the peer restarted.
    pub peer_resets: u32,
    /// Times the peer went quiet.
    pub downs: u32,
    /// Smoothed round-trip time in microseconds (0 before a sample).
    pub srtt_us: u32,
    /// Current segment payload size.
    pub segment_size: u16,
}

#[derive(Debug, Clone, Copy)]
struct Peer {
    session: u32,
    version: Version,
    features: u32,
    max_segment: u16,
    window: u32,
    max_message: u16,
}

/// The first `n` bytes of `*rest` (fewer if it is shorter), cut off it.
fn take<'a>(rest: &mut &'a mut [u8], n: usize) -> &'a mut [u8] {
    let all = core::mem::take(rest);
    let (head, tail) = all.split_at_mut(n.min(all.len()));
    *rest = tail;
    head
}

/// The four regions of the storage block.
struct Bufs<'a> {
    tx: &'a mut [u8],
    rx: &'a mut [u8],
    frame: &'a mut [u8],
    console: &'a mut [u8],
}

fn split<'a>(storage: &'a mut [u8], cfg: &Config) -> Bufs<'a> {
    // `Link::new` checked that the storage holds all four; `take` cuts
    // short rather than panic, which keeps panic paths out of firmware.
    let mut rest = storage;
    let tx = take(&mut rest, cfg.tx_buffer);
    let rx = take(&mut rest, cfg.rx_buffer);
    let frame = take(&mut rest, cfg.frame_buffer);
    let console = take(&mut rest, cfg.console_buffer);
    Bufs {
        tx,
        rx,
        frame,
        console,
    }
}

/// A storage block too small for the configuration, or a configuration that
/// cannot work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigError(pub &'static str);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// The link state machine. `B` is its storage (an array on a device, a `Vec`
/// on a host); `S` is the number of segments that may be in flight.
pub struct Link<B, const S: usize> {
    storage: B,
    cfg: Config,
    st: Core<S>,
}

struct Core<const S: usize> {
    state: State,
    my_session: u32,
    peer: Option<Peer>,
    rejection: Option<Rejection>,
    tx: TxState<S>,
    rx: RxState,
    rtt: RttEstimator,
    sizer: SegmentSizer,
    dec: FrameDecoderState,
    console_len: usize,
    console_clear: bool,
    consume: usize,
    events: Deque<Pending, 8>,
    hello_reply: bool,
    next_hello: Instant,
    reject: Option<RejectRepr>,
    ack_pending: bool,
    adv_window: u32,
    last_rx: Instant,
    last_tx: Instant,
    last_rx_byte: Instant,
    rack_deadline: Option<Instant>,
    stats: LinkStats,
}

impl<B: AsRef<[u8]> + AsMut<[u8]>, const S: usize> Link<B, S> {
    /// A link that starts its handshake at the first
    /// [`poll_transmit`](Self::poll_transmit). `session` must be non-zero
    /// and new at every boot (a device's boot id).
    pub fn new(cfg: Config, storage: B, session: u32, now: Instant) -> Result<Self, ConfigError> {
        if storage.as_ref().len() < cfg.storage_len() {
            return Err(ConfigError(
                "storage block smaller than Config::storage_len()",
            ));
        }
        if session == 0 {
            return Err(ConfigError("session id must not be 0"));
        }
        if cfg.accepted_segment() < MIN_SEGMENT {
            return Err(ConfigError(
                "frame buffer too small for the minimum segment",
            ));
        }
        if cfg.accepted_message() < MIN_MESSAGE
            || cfg.tx_buffer < usize::from(MIN_MESSAGE) + RECORD_HEADER
        {
            return Err(ConfigError("buffers too small for the minimum message"));
        }
        if S == 0 {
            return Err(ConfigError(
                "at least one segment must be allowed in flight",
            ));
        }
        let st = Core {
            state: State::Handshaking,
            my_session: session,
            peer: None,
            rejection: None,
            tx: TxState::new(session, 0),
            rx: RxState::new(0),
            rtt: RttEstimator::new(cfg.rto_initial, cfg.rto_min, cfg.rto_max),
            sizer: SegmentSizer::new(cfg.min_segment, cfg.max_segment, cfg.adaptive_segments),
            dec: FrameDecoderState::new(),
            console_len: 0,
            console_clear: false,
            consume: 0,
            events: Deque::new(),
            hello_reply: false,
            next_hello: now,
            reject: None,
            ack_pending: false,
            adv_window: 0,
            last_rx: now,
            last_tx: now,
            last_rx_byte: now,
            rack_deadline: None,
            stats: LinkStats::default(),
        };
        Ok(Link { storage, cfg, st })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Where the link stands.
    pub fn state(&self) -> State {
        self.st.state
    }

    /// This side's session id.
    pub fn session_id(&self) -> u32 {
        self.st.my_session
    }

    /// The current session, if connected (also while [`State::Down`]).
    pub fn session(&self) -> Option<SessionInfo> {
        match self.st.state {
            State::Established | State::Down => self.st.session_info(&self.cfg),
            _ => None,
        }
    }

    /// Why the handshake failed, while [`State::Failed`].
    pub fn rejection(&self) -> Option<Rejection> {
        self.st.rejection
    }

    /// Counters.
    pub fn stats(&self) -> LinkStats {
        let mut s = self.st.stats;
        let d: FrameStats = self.st.dec.stats;
        s.bad_frames = d.bad_frames;
        s.oversized = d.oversized;
        s.console_bytes = d.console_bytes;
        s.srtt_us = self
            .st
            .rtt
            .srtt()
            .map_or(0, |us| us.min(u64::from(u32::MAX)) as u32);
        s.segment_size = self.st.send_mss(&self.cfg);
        s
    }

    /// Largest message the peer accepts (0 before the handshake).
    pub fn max_message(&self) -> usize {
        self.session().map_or(0, |s| usize::from(s.max_message))
    }

    /// Largest message that can be queued right now.
    pub fn send_capacity(&self) -> usize {
        if !matches!(self.st.state, State::Established | State::Down) {
            return 0;
        }
        let free = self.st.tx.free(self.cfg.tx_buffer);
        free.saturating_sub(RECORD_HEADER).min(self.max_message())
    }

    /// Bytes queued or in flight and not yet acknowledged.
    pub fn unacknowledged(&self) -> usize {
        self.st.tx.buffered()
    }

    /// Queues one message.
    pub fn send(&mut self, message: &[u8]) -> Result<(), SendError> {
        self.send_with(|buf| {
            let dst = buf.get_mut(..message.len())?;
            dst.copy_from_slice(message);
            Some(message.len())
        })
        .map(|_| ())
    }

    /// Queues one message written in place by `fill`, which gets the space
    /// available (at most [`max_message`](Self::max_message) bytes) and
    /// returns the length it wrote, or `None` if it did not fit.
    pub fn send_with(
        &mut self,
        fill: impl FnOnce(&mut [u8]) -> Option<usize>,
    ) -> Result<usize, SendError> {
        let mut fill = Some(fill);
        self.send_dyn(&mut |buf| fill.take().and_then(|f| f(buf)))
    }

    /// [`send_with`](Self::send_with) without its type parameter: one copy
    /// of this code however many callers (firmware flash), for the cost of
    /// an indirect call per message.
    fn send_dyn(
        &mut self,
        fill: &mut dyn FnMut(&mut [u8]) -> Option<usize>,
    ) -> Result<usize, SendError> {
        self.release();
        if !matches!(self.st.state, State::Established | State::Down) {
            return Err(SendError::NotConnected);
        }
        let max = self.max_message();
        let free = self.st.tx.free(self.cfg.tx_buffer);
        let room_all = free.saturating_sub(RECORD_HEADER).min(max);
        let b = split(self.storage.as_mut(), &self.cfg);
        if free <= RECORD_HEADER {
            return Err(SendError::Full);
        }
        let written = self.st.tx.write_with(b.tx, usize::MAX, |buf| {
            if buf.len() < RECORD_HEADER {
                return None;
            }
            let room = room_all.min(buf.len() - RECORD_HEADER);
            let (head, body) = buf.split_at_mut(RECORD_HEADER);
            let n = fill(body.get_mut(..room)?)?;
            if n > room {
                return None;
            }
            head.copy_from_slice(&(n as u16).to_le_bytes());
            Some(RECORD_HEADER + n)
        });
        match written {
            Some(n) => Ok(n - RECORD_HEADER),
            None if free >= max + RECORD_HEADER => Err(SendError::TooLarge),
            None => Err(SendError::Full),
        }
    }

    /// Feeds bytes received from the line.
    pub fn receive(&mut self, now: Instant, mut input: &[u8]) {
        self.release();
        if input.is_empty() {
            return;
        }
        self.st.stats.bytes_received += input.len() as u64;
        self.st.last_rx_byte = now;
        let cfg = &self.cfg;
        let b = split(self.storage.as_mut(), cfg);
        let (frame_buf, rx_buf, console_buf) = (b.frame, b.rx, b.console);
        while !input.is_empty() {
            let (used, item) = self.st.dec.push(frame_buf, input);
            input = input.get(used..).unwrap_or_default();
            match item {
                Some(Decoded::Frame(body)) => {
                    self.st.stats.frames_received += 1;
                    self.st.on_frame(cfg, now, body, rx_buf);
                }
                Some(Decoded::Console(text)) => self.st.push_console(console_buf, text),
                None => {}
            }
        }
    }

    /// Writes the frames due now into `out` and returns how many bytes to
    /// send. Call it after every [`receive`](Self::receive) and
    /// [`send`](Self::send) and whenever [`poll_timeout`](Self::poll_timeout)
    /// passes, until it returns 0. `out` should hold at least one frame of
    /// the largest segment ([`frame_buffer_for`] of `max_segment`).
    pub fn poll_transmit(&mut self, now: Instant, out: &mut [u8]) -> usize {
        self.release();
        let cfg = &self.cfg;
        let b = split(self.storage.as_mut(), cfg);
        self.st.on_timers(cfg, now, b.frame, b.console);
        let mut w = 0;
        loop {
            let lead = usize::from(w == 0);
            if out.len() <= w + lead {
                break;
            }
            match self.st.next_frame(cfg, now, b.tx, &mut out[w + lead..]) {
                Some(n) => {
                    if lead == 1 {
                        // A delimiter before each burst separates it from text
                        // printed on the same line just before.
                        out[0] = frame::DELIMITER;
                    }
                    w += lead + n;
                    self.st.stats.frames_sent += 1;
                }
                None => break,
            }
        }
        self.st.stats.bytes_sent += w as u64;
        w
    }

    /// The next time [`poll_transmit`](Self::poll_transmit) has work, if
    /// nothing arrives before. `Some(Instant::ZERO)` means now.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.st.poll_timeout(&self.cfg)
    }

    /// The next event, if any: state changes first, then console text, then
    /// messages in order. The borrowed data is valid until the next call on
    /// the link.
    pub fn poll_event(&mut self) -> Option<Event<'_>> {
        self.release();
        if let Some(p) = self.st.events.pop_front() {
            return Some(match p {
                Pending::Connected(s) => Event::Connected(s),
                Pending::PeerReset => Event::PeerReset,
                Pending::Down => Event::Down,
                Pending::Up => Event::Up,
                Pending::Rejected(r) => Event::Rejected(r),
                Pending::ProtocolViolation => Event::ProtocolViolation,
            });
        }
        let tx_len = self.cfg.tx_buffer;
        let rx_len = self.cfg.rx_buffer;
        if self.st.console_len > 0 {
            self.st.console_clear = true;
            let at = tx_len + rx_len + self.cfg.frame_buffer;
            return Some(Event::Console(
                &self.storage.as_ref()[at..at + self.st.console_len],
            ));
        }
        if !matches!(self.st.state, State::Established | State::Down) {
            return None;
        }
        let rx_buf = &self.storage.as_ref()[tx_len..tx_len + rx_len];
        let readable = self.st.rx.readable(rx_buf);
        if readable.len() < RECORD_HEADER {
            return None;
        }
        let len = usize::from(u16::from_le_bytes([readable[0], readable[1]]));
        if RECORD_HEADER + len > rx_len {
            // Can never complete: the peer ignored our limit.
            let at = self.st.last_rx;
            self.st.protocol_violation(at);
            return self.st.events.pop_front().map(|_| Event::ProtocolViolation);
        }
        if readable.len() < RECORD_HEADER + len {
            return None;
        }
        self.st.consume = RECORD_HEADER + len;
        let rx_buf = &self.storage.as_ref()[tx_len..tx_len + rx_len];
        let readable = self.st.rx.readable(rx_buf);
        Some(Event::Message(
            &readable[RECORD_HEADER..RECORD_HEADER + len],
        ))
    }

    /// Applies what the previous [`poll_event`](Self::poll_event) handed out.
    fn release(&mut self) {
        if core::mem::take(&mut self.st.console_clear) {
            self.st.console_len = 0;
        }
        let n = core::mem::take(&mut self.st.consume);
        if n > 0 {
            self.st.rx.consume(n);
            self.st.stats.payload_received += n as u64;
            let w = self.st.rx.window(self.cfg.rx_buffer);
            // Tell the peer when a good part of the window reopened, so a
            // sender stalled on a full window resumes without waiting for a
            // keepalive.
            let step =
                (self.cfg.rx_buffer / 4).max(usize::from(self.cfg.accepted_segment())) as u32;
            if w >= self.st.adv_window.saturating_add(step) {
                self.st.ack_pending = true;
            }
        }
    }
}

impl<const S: usize> Core<S> {
    fn session_info(&self, cfg: &Config) -> Option<SessionInfo> {
        let p = self.peer?;
        Some(SessionInfo {
            session: self.my_session,
            peer_session: p.session,
            peer_version: p.version,
            features: cfg.features & p.features,
            max_message: p.max_message.min(
                cfg.tx_buffer
                    .saturating_sub(RECORD_HEADER)
                    .min(u16::MAX as usize) as u16,
            ),
            max_segment: p.max_segment.min(cfg.max_segment),
        })
    }

    fn send_mss(&self, cfg: &Config) -> u16 {
        let cap = self
            .peer
            .map_or(cfg.max_segment, |p| p.max_segment.min(cfg.max_segment));
        self.sizer.current().min(cap)
    }

    /// Segments allowed in flight: all of the scoreboard on a clean line, a
    /// few on a lossy one (see [`SegmentSizer::lossy`]). A serial line's
    /// round trip is a few frames long, so a few suffice to keep it busy.
    fn max_in_flight(&self) -> usize {
        if self.sizer.lossy() {
            LOSSY_IN_FLIGHT
        } else {
            S
        }
    }

    fn tag(&self) -> u8 {
        session_tag(self.my_session, self.peer.map_or(0, |p| p.session))
    }

    fn push_event(&mut self, e: Pending) {
        if self.events.is_full() {
            // Oldest state changes matter least once newer ones are queued.
            self.events.pop_front();
        }
        let _ = self.events.push_back(e);
    }

    fn push_console(&mut self, console: &mut [u8], text: &[u8]) {
        if self.console_clear {
            self.console_clear = false;
            self.console_len = 0;
        }
        let room = console.len() - self.console_len;
        let n = room.min(text.len());
        console[self.console_len..self.console_len + n].copy_from_slice(&text[..n]);
        self.console_len += n;
        self.stats.console_dropped += (text.len() - n) as u32;
    }

    fn set_state(&mut self, s: State) {
        self.state = s;
    }

    fn on_frame(&mut self, cfg: &Config, now: Instant, body: &[u8], rx_buf: &mut [u8]) {
        let r = match body.first() {
            Some(&KIND_HELLO) => HelloRepr::parse(body).map(|h| self.on_hello(cfg, now, &h)),
            Some(&KIND_REJECT) => RejectRepr::parse(body).map(|r| self.on_reject(now, &r)),
            Some(&KIND_SEG) => {
                SegRepr::parse(body).map(|(s, data)| self.on_seg(cfg, now, &s, data, rx_buf))
            }
            Some(&k) => Err(WireError::UnknownKind(k)),
            None => Err(WireError::Truncated),
        };
        if r.is_err() {
            self.stats.malformed += 1;
        }
    }

    fn on_hello(&mut self, cfg: &Config, now: Instant, h: &HelloRepr) {
        let reason = if h.version.major != VERSION.major {
            Some(RejectReason::Version)
        } else if h.version.minor == VERSION.minor && h.schema_hash != SCHEMA_HASH {
            Some(RejectReason::Schema)
        } else if h.session == 0
            || h.max_segment < MIN_SEGMENT
            || h.max_message < MIN_MESSAGE
            || h.window < u32::from(h.max_message) + RECORD_HEADER as u32
        {
            Some(RejectReason::Parameters)
        } else {
            None
        };
        if let Some(reason) = reason {
            self.reject = Some(RejectRepr {
                reason,
                session: self.my_session,
                peer_session: h.session,
                version: VERSION,
                schema_hash: SCHEMA_HASH,
            });
            self.fail(
                now,
                Rejection {
                    reason,
                    by_peer: false,
                    peer_version: h.version,
                    peer_schema: h.schema_hash,
                },
            );
            return;
        }
        self.last_rx = now;
        let same_peer = self.peer.is_some_and(|p| p.session == h.session);
        let knows_us = h.peer_session == self.my_session;
        if matches!(self.state, State::Established | State::Down) && (!same_peer || !knows_us) {
            // A new session id means the peer rebooted; its own id with a
            // wrong idea of ours means it restarted its link (a deterministic
            // boot id, a new connection).
            self.peer_reset(now);
        }
        if !matches!(self.state, State::Established | State::Down) {
            self.peer = Some(Peer {
                session: h.session,
                version: h.version,
                features: h.features,
                max_segment: h.max_segment,
                window: h.window,
                max_message: h.max_message,
            });
        }
        match self.state {
            State::Handshaking | State::Failed if knows_us => self.establish(cfg, now),
            State::Handshaking | State::Failed => self.set_state(State::Handshaking),
            State::Down => {
                self.set_state(State::Established);
                self.push_event(Pending::Up);
            }
            State::Established => {}
        }
        if h.flags & HELLO_NEEDS_REPLY != 0 {
            self.hello_reply = true;
        }
    }

    fn on_reject(&mut self, now: Instant, r: &RejectRepr) {
        if r.peer_session != self.my_session {
            return;
        }
        self.fail(
            now,
            Rejection {
                reason: r.reason,
                by_peer: true,
                peer_version: r.version,
                peer_schema: r.schema_hash,
            },
        );
    }

    fn fail(&mut self, now: Instant, r: Rejection) {
        if matches!(self.state, State::Established | State::Down) {
            self.push_event(Pending::PeerReset);
        }
        self.set_state(State::Failed);
        self.rejection = Some(r);
        self.peer = None;
        self.push_event(Pending::Rejected(r));
        self.next_hello = now + Duration::from_secs(2);
    }

    fn establish(&mut self, cfg: &Config, now: Instant) {
        let Some(peer) = self.peer else { return };
        self.tx = TxState::new(self.my_session, peer.window);
        self.rx = RxState::new(peer.session);
        self.rtt = RttEstimator::new(cfg.rto_initial, cfg.rto_min, cfg.rto_max);
        self.sizer = SegmentSizer::new(cfg.min_segment, cfg.max_segment, cfg.adaptive_segments);
        self.rejection = None;
        self.consume = 0;
        self.ack_pending = false;
        self.adv_window = cfg.rx_buffer as u32;
        self.last_rx = now;
        self.last_tx = now;
        self.rack_deadline = None;
        self.set_state(State::Established);
        if let Some(info) = self.session_info(cfg) {
            self.push_event(Pending::Connected(info));
        }
    }

    fn peer_reset(&mut self, now: Instant) {
        self.stats.peer_resets += 1;
        self.push_event(Pending::PeerReset);
        self.set_state(State::Handshaking);
        self.tx = TxState::new(self.my_session, 0);
        self.rx = RxState::new(0);
        self.consume = 0;
        self.ack_pending = false;
        self.next_hello = now;
    }

    fn protocol_violation(&mut self, now: Instant) {
        self.push_event(Pending::ProtocolViolation);
        self.peer_reset(now);
        self.peer = None;
    }

    fn on_seg(
        &mut self,
        cfg: &Config,
        now: Instant,
        seg: &SegRepr,
        data: &[u8],
        rx_buf: &mut [u8],
    ) {
        if self.peer.is_none() || seg.tag != self.tag() || self.state == State::Failed {
            self.stats.wrong_session += 1;
            if self.state != State::Established {
                // The peer believes in a session we do not have: tell it who
                // we are so it notices at once instead of timing out.
                self.hello_reply = true;
            }
            return;
        }
        match self.state {
            State::Handshaking => {
                // Only a peer that knows our session id computes our tag.
                self.establish(cfg, now);
            }
            State::Down => {
                self.set_state(State::Established);
                self.push_event(Pending::Up);
            }
            _ => {}
        }
        self.last_rx = now;
        if let Some(a) = seg.ack {
            let out = self.tx.on_ack(now, a.ack, a.window);
            if let Some(sample) = out.rtt_sample {
                self.rtt.sample(sample);
            }
            if out.acked_bytes > 0 {
                self.rtt.reset_backoff();
            }
        }
        if seg.sack_count > 0 {
            self.tx.on_sack(seg.sack_blocks());
        }
        if let Some(seq) = seg.seq {
            match self.rx.accept(rx_buf, seq, data) {
                Accepted::InOrder => {}
                Accepted::OutOfOrder => self.stats.out_of_order += 1,
                Accepted::Duplicate => self.stats.duplicates += 1,
                Accepted::Dropped => self.stats.dropped_segments += 1,
                Accepted::NoRange => self.stats.no_range += 1,
            }
            self.ack_pending = true;
        }
        if seg.ack_request {
            self.ack_pending = true;
        }
    }

    fn on_timers(
        &mut self,
        cfg: &Config,
        now: Instant,
        frame_buf: &mut [u8],
        console_buf: &mut [u8],
    ) {
        if self.dec.pending() > 0 && now >= self.last_rx_byte + cfg.console_flush_after {
            if let Some(text) = self.dec.flush_text(frame_buf) {
                self.push_console(console_buf, text);
            }
        }
        if !matches!(self.state, State::Established | State::Down) {
            return;
        }
        if let Some(oldest) = self.tx.oldest_outstanding() {
            if now >= oldest.add_micros(self.rtt.rto()) {
                let n = self.tx.on_timeout();
                self.rtt.back_off();
                self.sizer.on_lost(n);
                self.stats.timeouts += 1;
            }
        }
        // In µs, saturating, like all time arithmetic here.
        let wait = self
            .rtt
            .srtt()
            .unwrap_or_else(|| self.rtt.rto())
            .saturating_add(self.rtt.reorder_window());
        let (lost, next) = self.tx.detect_losses(now, wait);
        self.sizer.on_lost(lost);
        self.rack_deadline = next;
        if self.state == State::Established && now >= self.last_rx + cfg.dead_after {
            self.stats.downs += 1;
            self.set_state(State::Down);
            self.push_event(Pending::Down);
            self.next_hello = now;
        }
    }

    fn hello(&self, cfg: &Config) -> HelloRepr {
        HelloRepr {
            version: VERSION,
            flags: if self.state == State::Established {
                0
            } else {
                HELLO_NEEDS_REPLY
            },
            schema_hash: SCHEMA_HASH,
            features: cfg.features,
            session: self.my_session,
            peer_session: self.peer.map_or(0, |p| p.session),
            max_segment: cfg.accepted_segment(),
            window: cfg.rx_buffer as u32,
            max_message: cfg.accepted_message(),
        }
    }

    /// Encodes the most urgent frame into `out`; `None` if nothing is due or
    /// it does not fit.
    fn next_frame(
        &mut self,
        cfg: &Config,
        now: Instant,
        tx_buf: &[u8],
        out: &mut [u8],
    ) -> Option<usize> {
        if let Some(rej) = self.reject {
            let mut b = [0u8; RejectRepr::LEN];
            rej.emit(&mut b);
            let n = frame::encode(&[&b], out).ok()?;
            self.reject = None;
            return Some(n);
        }
        let hello_due =
            self.hello_reply || (self.state != State::Established && now >= self.next_hello);
        if hello_due {
            let mut b = [0u8; HelloRepr::LEN];
            self.hello(cfg).emit(&mut b);
            let n = frame::encode(&[&b], out).ok()?;
            self.hello_reply = false;
            if self.state != State::Established {
                // In µs: multiplying a `Duration` divides a `u64`, a
                // library routine on a 32-bit MCU.
                let every = crate::time::micros(cfg.hello_interval);
                let every = if self.state == State::Failed {
                    every.saturating_mul(8)
                } else {
                    every
                };
                self.next_hello = now.add_micros(every);
            }
            self.last_tx = now;
            return Some(n);
        }
        if !matches!(self.state, State::Established | State::Down) {
            return None;
        }
        let mss = self.send_mss(cfg);
        if let Some(next) = self.tx.next_segment(mss, self.max_in_flight()) {
            // A pending ack goes out on its own ahead of a big data frame:
            // riding on it, the ack would wait for the whole frame to be
            // clocked out and die with it if the line corrupts any byte.
            if self.ack_pending && usize::from(next.len) > PIGGYBACK_MAX {
                return self.pure_ack(cfg, now, out, false);
            }
            let mut seg = SegRepr::empty(self.tag());
            seg.seq = Some(next.seq);
            if self.ack_pending {
                self.fill_ack(cfg, &mut seg);
            }
            let mut h = [0u8; SEG_MAX_HEADER];
            let hl = seg.emit(&mut h);
            let data = self.tx.bytes(tx_buf, next.seq, next.len);
            let n = frame::encode(&[h.get(..hl)?, data], out).ok()?;
            if self.tx.is_new(&next) {
                self.stats.payload_sent += u64::from(next.len);
            } else {
                self.stats.retransmits += 1;
            }
            self.tx.sent(next, now);
            self.sizer.on_sent(n);
            if seg.ack.is_some() {
                self.ack_pending = false;
            }
            self.last_tx = now;
            return Some(n);
        }
        let keepalive =
            self.state == State::Established && now >= self.last_tx + cfg.keepalive_interval;
        if self.ack_pending || keepalive {
            return self.pure_ack(cfg, now, out, keepalive && !self.ack_pending);
        }
        None
    }

    fn pure_ack(
        &mut self,
        cfg: &Config,
        now: Instant,
        out: &mut [u8],
        request: bool,
    ) -> Option<usize> {
        let mut seg = SegRepr::empty(self.tag());
        self.fill_ack(cfg, &mut seg);
        seg.ack_request = request;
        let mut h = [0u8; SEG_MAX_HEADER];
        let hl = seg.emit(&mut h);
        let n = frame::encode(&[h.get(..hl)?], out).ok()?;
        self.ack_pending = false;
        self.last_tx = now;
        Some(n)
    }

    fn fill_ack(&mut self, cfg: &Config, seg: &mut SegRepr) {
        let window = self.rx.window(cfg.rx_buffer);
        seg.ack = Some(AckRepr {
            ack: self.rx.nxt(),
            window,
        });
        self.adv_window = window;
        let mut i = 0;
        for block in self.rx.sack_blocks() {
            if i == MAX_SACK_BLOCKS {
                break;
            }
            seg.sacks[i] = block;
            i += 1;
        }
        seg.sack_count = i as u8;
    }

    fn poll_timeout(&self, cfg: &Config) -> Option<Instant> {
        if self.reject.is_some() || self.hello_reply || self.ack_pending {
            return Some(Instant::ZERO);
        }
        let mut t = None;
        if self.dec.pending() > 0 {
            t = earliest(t, Some(self.last_rx_byte + cfg.console_flush_after));
        }
        if self.state != State::Established {
            t = earliest(t, Some(self.next_hello));
        }
        if matches!(self.state, State::Established | State::Down) {
            if self.tx.has_lost() || self.tx.can_send_new(self.max_in_flight()) {
                return Some(Instant::ZERO);
            }
            if let Some(oldest) = self.tx.oldest_outstanding() {
                t = earliest(t, Some(oldest.add_micros(self.rtt.rto())));
            }
            t = earliest(t, self.rack_deadline);
        }
        if self.state == State::Established {
            t = earliest(t, Some(self.last_tx + cfg.keepalive_interval));
            t = earliest(t, Some(self.last_rx + cfg.dead_after));
        }
        t
    }
}
