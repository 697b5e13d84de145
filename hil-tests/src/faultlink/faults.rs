//! What can go wrong on the line, and the seeded machinery that makes it go wrong.
//!
//! [`Faults`] is the configuration of one direction. [`FaultSetting`] is one change
//! to it as typed by a person (`corrupt=0.01`, `delay 20ms`), shared by the CLI and
//! the control channel so both accept exactly the same words.
//!
//! The engine ([`FaultEngine`]) draws every decision from ChaCha streams seeded from
//! the link's seed, one stream per direction and per kind of fault. The per-byte
//! faults draw the same number of values for every byte, so which byte is dropped,
//! flipped or doubled depends only on the seed and the byte's position in the
//! stream, never on how the bytes happened to be split into reads. Jitter has its
//! own stream, so timing never shifts the byte decisions either.

use std::fmt;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Serialize, Serializer};

/// The longest `delay` or `jitter` accepted. A line that holds bytes for more than
/// an hour is a cut, not a delay, and the bound keeps deadline arithmetic far from
/// overflow.
pub const MAX_DELAY: Duration = Duration::from_secs(3600);

/// The largest `reorder-chunk` accepted, so a held chunk pair stays small.
pub const MAX_REORDER_CHUNK: usize = 64 * 1024;

/// The default size of the chunks that `reorder` swaps.
pub const DEFAULT_REORDER_CHUNK: usize = 16;

/// The highest `baud` accepted: far above any UART, low enough that the pacing
/// arithmetic cannot overflow.
pub const MAX_BAUD: u32 = 1_000_000_000;

/// The faults applied to one direction of the link.
///
/// The default is a perfect line: no rate limit and no faults. Build one with
/// struct update syntax:
///
/// ```
/// use corral_hil_tests::faultlink::Faults;
/// let noisy_uart = Faults { baud: Some(115_200), corrupt: 0.001, ..Faults::default() };
/// assert!(noisy_uart.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Faults {
    /// Line speed in bits per second with 8N1 framing (10 bits per byte), or `None`
    /// for no rate limit. Bytes leave one after another at `baud / 10` per second,
    /// as on a UART, and the link reads no faster than that, so a fast sender is
    /// held back instead of having bytes buffered without bound.
    pub baud: Option<u32>,
    /// Probability, per byte, that the byte is lost.
    pub drop: f64,
    /// Probability, per byte, that exactly one random bit of the byte is flipped.
    pub corrupt: f64,
    /// Probability, per byte, that the byte is delivered twice.
    pub duplicate: f64,
    /// Fixed latency added to every byte after it has crossed the line.
    #[serde(serialize_with = "serialize_duration")]
    pub delay: Duration,
    /// Extra latency, uniformly random between zero and this, added on top of
    /// `delay`. Jitter never reorders bytes: a byte never overtakes an earlier one.
    #[serde(serialize_with = "serialize_duration")]
    pub jitter: Duration,
    /// Probability that a chunk of `reorder_chunk` bytes is swapped with the chunk
    /// after it. A chunk held for a swap is sent in order if no further byte comes
    /// within [`REORDER_HOLD`](crate::faultlink::REORDER_HOLD).
    pub reorder: f64,
    /// Size in bytes of the chunks that `reorder` swaps, counted from the start of
    /// the stream.
    pub reorder_chunk: usize,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            baud: None,
            drop: 0.0,
            corrupt: 0.0,
            duplicate: 0.0,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            reorder: 0.0,
            reorder_chunk: DEFAULT_REORDER_CHUNK,
        }
    }
}

impl Faults {
    /// A perfect line: no rate limit, no faults. Same as [`Faults::default`].
    pub fn none() -> Self {
        Faults::default()
    }

    /// Checks that every field is in range; the link refuses faults that do not pass.
    pub fn validate(&self) -> Result<(), FaultsError> {
        if let Some(baud) = self.baud {
            check_baud(baud)?;
        }
        check_probability("drop", self.drop)?;
        check_probability("corrupt", self.corrupt)?;
        check_probability("duplicate", self.duplicate)?;
        check_probability("reorder", self.reorder)?;
        check_delay("delay", self.delay)?;
        check_delay("jitter", self.jitter)?;
        check_reorder_chunk(self.reorder_chunk)?;
        Ok(())
    }

    /// Whether any per-byte fault is switched on.
    fn has_byte_faults(&self) -> bool {
        self.drop > 0.0 || self.corrupt > 0.0 || self.duplicate > 0.0
    }
}

fn serialize_duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_duration(*d))
}

/// A fault setting that is out of range or could not be understood.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum FaultsError {
    /// A probability outside 0..=1 (or not a number).
    #[error(
        "{key} must be a probability between 0 and 1 (or a percentage such as 0.1%), got {value}"
    )]
    Probability {
        /// The fault's name, e.g. `corrupt`.
        key: &'static str,
        /// The value given.
        value: f64,
    },
    /// A baud rate of zero or above [`MAX_BAUD`].
    #[error("baud {0} is not a usable line speed: give 1..={MAX_BAUD} bits per second, or `off` for no rate limit")]
    Baud(u32),
    /// A delay or jitter above [`MAX_DELAY`].
    #[error("{key} of {} is too long: the most is 1h (to lose the line for longer, cut it)", humantime::format_duration(*.value))]
    Delay {
        /// `delay` or `jitter`.
        key: &'static str,
        /// The value given.
        value: Duration,
    },
    /// A reorder chunk of zero bytes or above [`MAX_REORDER_CHUNK`].
    #[error("reorder-chunk must be between 1 and {MAX_REORDER_CHUNK} bytes, got {0}")]
    ReorderChunk(usize),
    /// A name that is not a fault.
    #[error("unknown fault `{0}`; the faults are: {keys}", keys = fault_names())]
    UnknownKey(String),
    /// A value that does not parse as what the fault needs.
    #[error("bad value `{value}` for {key}: {expected}")]
    BadValue {
        /// The fault's name.
        key: &'static str,
        /// The text given.
        value: String,
        /// What was expected instead, with an example.
        expected: &'static str,
    },
    /// A `KEY=VALUE` list entry without `=`.
    #[error("`{0}` is not KEY=VALUE (for example corrupt=0.01)")]
    NotAnAssignment(String),
}

fn check_probability(key: &'static str, value: f64) -> Result<(), FaultsError> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(FaultsError::Probability { key, value })
    }
}

fn check_baud(baud: u32) -> Result<(), FaultsError> {
    if (1..=MAX_BAUD).contains(&baud) {
        Ok(())
    } else {
        Err(FaultsError::Baud(baud))
    }
}

fn check_delay(key: &'static str, value: Duration) -> Result<(), FaultsError> {
    if value <= MAX_DELAY {
        Ok(())
    } else {
        Err(FaultsError::Delay { key, value })
    }
}

fn check_reorder_chunk(n: usize) -> Result<(), FaultsError> {
    if (1..=MAX_REORDER_CHUNK).contains(&n) {
        Ok(())
    } else {
        Err(FaultsError::ReorderChunk(n))
    }
}

/// The names of the faults with a one-line description each, as the CLI and the
/// control channel's `help` show them.
pub const FAULT_KEYS: &[(&str, &str)] = &[
    (
        "baud",
        "line speed in bit/s, 8N1 (10 bits a byte); `off` for none. e.g. baud 115200",
    ),
    (
        "drop",
        "probability a byte is lost; e.g. drop 0.001 or drop 0.1%",
    ),
    (
        "corrupt",
        "probability a byte gets one random bit flipped; e.g. corrupt 0.01",
    ),
    (
        "duplicate",
        "probability a byte arrives twice; e.g. duplicate 0.001",
    ),
    ("delay", "fixed latency; e.g. delay 20ms"),
    (
        "jitter",
        "extra random latency from 0 to this, order kept; e.g. jitter 5ms",
    ),
    (
        "reorder",
        "probability a chunk is swapped with the next one; e.g. reorder 0.01",
    ),
    (
        "reorder-chunk",
        "size in bytes of the chunks reorder swaps (default 16)",
    ),
];

fn fault_names() -> String {
    FAULT_KEYS
        .iter()
        .map(|(key, _)| *key)
        .collect::<Vec<_>>()
        .join(", ")
}

/// One change to a [`Faults`], parsed from a fault name and a value.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum FaultSetting {
    /// `baud N` or `baud off`.
    Baud(Option<u32>),
    /// `drop P`.
    Drop(f64),
    /// `corrupt P`.
    Corrupt(f64),
    /// `duplicate P`.
    Duplicate(f64),
    /// `delay DURATION`.
    Delay(Duration),
    /// `jitter DURATION`.
    Jitter(Duration),
    /// `reorder P`.
    Reorder(f64),
    /// `reorder-chunk BYTES`.
    ReorderChunk(usize),
}

impl FaultSetting {
    /// Parses one fault name and its value, checking the range.
    ///
    /// Probabilities take a fraction (`0.01`) or a percentage (`1%`); durations take
    /// a number with a unit (`20ms`, `1s`, `1m`); `baud` takes a number or `off`.
    /// Names also accept an underscore for the dash (`reorder_chunk`).
    pub fn parse(key: &str, value: &str) -> Result<Self, FaultsError> {
        let value = value.trim();
        let setting = match key.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "baud" => FaultSetting::Baud(parse_baud(value)?),
            "drop" => FaultSetting::Drop(parse_probability("drop", value)?),
            "corrupt" => FaultSetting::Corrupt(parse_probability("corrupt", value)?),
            "duplicate" | "dup" => FaultSetting::Duplicate(parse_probability("duplicate", value)?),
            "delay" => FaultSetting::Delay(parse_delay("delay", value)?),
            "jitter" => FaultSetting::Jitter(parse_delay("jitter", value)?),
            "reorder" => FaultSetting::Reorder(parse_probability("reorder", value)?),
            "reorder-chunk" => FaultSetting::ReorderChunk(parse_reorder_chunk(value)?),
            _ => return Err(FaultsError::UnknownKey(key.to_owned())),
        };
        Ok(setting)
    }

    /// Parses a comma-separated `KEY=VALUE` list such as `corrupt=0.01,baud=9600`.
    /// An empty list is allowed and changes nothing.
    pub fn parse_list(list: &str) -> Result<Vec<Self>, FaultsError> {
        list.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| {
                let (key, value) = item
                    .split_once('=')
                    .ok_or_else(|| FaultsError::NotAnAssignment(item.to_owned()))?;
                FaultSetting::parse(key, value)
            })
            .collect()
    }

    /// Writes this setting into `faults`.
    pub fn apply(&self, faults: &mut Faults) {
        match *self {
            FaultSetting::Baud(b) => faults.baud = b,
            FaultSetting::Drop(p) => faults.drop = p,
            FaultSetting::Corrupt(p) => faults.corrupt = p,
            FaultSetting::Duplicate(p) => faults.duplicate = p,
            FaultSetting::Delay(d) => faults.delay = d,
            FaultSetting::Jitter(d) => faults.jitter = d,
            FaultSetting::Reorder(p) => faults.reorder = p,
            FaultSetting::ReorderChunk(n) => faults.reorder_chunk = n,
        }
    }
}

impl fmt::Display for FaultSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultSetting::Baud(None) => write!(f, "baud=off"),
            FaultSetting::Baud(Some(b)) => write!(f, "baud={b}"),
            FaultSetting::Drop(p) => write!(f, "drop={p}"),
            FaultSetting::Corrupt(p) => write!(f, "corrupt={p}"),
            FaultSetting::Duplicate(p) => write!(f, "duplicate={p}"),
            FaultSetting::Delay(d) => write!(f, "delay={}", humantime::format_duration(*d)),
            FaultSetting::Jitter(d) => write!(f, "jitter={}", humantime::format_duration(*d)),
            FaultSetting::Reorder(p) => write!(f, "reorder={p}"),
            FaultSetting::ReorderChunk(n) => write!(f, "reorder-chunk={n}"),
        }
    }
}

/// Parses `0.01` or `1%` as a probability in 0..=1.
pub fn parse_probability(key: &'static str, value: &str) -> Result<f64, FaultsError> {
    let bad = || FaultsError::BadValue {
        key,
        value: value.to_owned(),
        expected: "a probability such as 0.01 or 1%",
    };
    let p = match value.strip_suffix('%') {
        Some(percent) => percent.trim().parse::<f64>().map_err(|_| bad())? / 100.0,
        None => value.parse::<f64>().map_err(|_| bad())?,
    };
    check_probability(key, p)?;
    Ok(p)
}

/// Parses a baud rate, or `off`/`none`/`0` for no rate limit.
pub fn parse_baud(value: &str) -> Result<Option<u32>, FaultsError> {
    if matches!(value.to_ascii_lowercase().as_str(), "off" | "none" | "0") {
        return Ok(None);
    }
    let baud = value.parse::<u32>().map_err(|_| FaultsError::BadValue {
        key: "baud",
        value: value.to_owned(),
        expected: "a line speed in bit/s such as 115200, or off",
    })?;
    check_baud(baud)?;
    Ok(Some(baud))
}

/// Parses a delay or jitter: a duration with a unit such as `20ms`, at most [`MAX_DELAY`].
pub fn parse_delay(key: &'static str, value: &str) -> Result<Duration, FaultsError> {
    let d = parse_duration(value).map_err(|_| FaultsError::BadValue {
        key,
        value: value.to_owned(),
        expected: "a duration with a unit such as 20ms, 2s or 1m",
    })?;
    check_delay(key, d)?;
    Ok(d)
}

/// Parses a duration such as `20ms`, `2s`, `1m 30s`; a bare `0` means zero.
pub fn parse_duration(value: &str) -> Result<Duration, humantime::DurationError> {
    if value.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(value.trim())
}

/// Parses a reorder chunk size in bytes.
pub fn parse_reorder_chunk(value: &str) -> Result<usize, FaultsError> {
    let n = value.parse::<usize>().map_err(|_| FaultsError::BadValue {
        key: "reorder-chunk",
        value: value.to_owned(),
        expected: "a number of bytes such as 16",
    })?;
    check_reorder_chunk(n)?;
    Ok(n)
}

/// Counts of what the per-byte faults did to one batch of bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ByteFaultCounts {
    pub dropped: u64,
    pub corrupted: u64,
    pub duplicated: u64,
}

/// Indices of the independent random streams of one direction.
const STREAM_BYTES: u64 = 0;
const STREAM_REORDER: u64 = 1;
const STREAM_JITTER: u64 = 2;
const STREAMS_PER_DIRECTION: u64 = 3;

fn rng(seed: u64, direction: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(direction * STREAMS_PER_DIRECTION + stream);
    rng
}

/// The seeded state of one direction's faults. It lives as long as the link, not
/// the connection, so a reconnect continues the same random sequence.
pub(crate) struct FaultEngine {
    bytes: ChaCha8Rng,
    jitter: ChaCha8Rng,
    pub reorder: Reorderer,
}

impl FaultEngine {
    /// `direction` is 0 for a→b and 1 for b→a.
    pub fn new(seed: u64, direction: u64) -> Self {
        FaultEngine {
            bytes: rng(seed, direction, STREAM_BYTES),
            jitter: rng(seed, direction, STREAM_JITTER),
            reorder: Reorderer::new(rng(seed, direction, STREAM_REORDER)),
        }
    }

    /// Applies drop, corrupt and duplicate to `input`, appending the result to `out`.
    pub fn apply_byte_faults(
        &mut self,
        faults: &Faults,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> ByteFaultCounts {
        let mut counts = ByteFaultCounts::default();
        if !faults.has_byte_faults() {
            out.extend_from_slice(input);
            return counts;
        }
        for &byte in input {
            // Always four draws per byte, whatever happens to it, so a decision
            // depends only on the byte's position in the stream.
            let drop_draw: f64 = self.bytes.gen();
            let corrupt_draw: f64 = self.bytes.gen();
            let bit: u32 = self.bytes.gen_range(0..8);
            let duplicate_draw: f64 = self.bytes.gen();
            // `gen::<f64>()` is in [0, 1), so probability 1.0 always fires and 0.0 never.
            if drop_draw < faults.drop {
                counts.dropped += 1;
                continue;
            }
            let mut byte = byte;
            if corrupt_draw < faults.corrupt {
                byte ^= 1 << bit;
                counts.corrupted += 1;
            }
            out.push(byte);
            if duplicate_draw < faults.duplicate {
                out.push(byte);
                counts.duplicated += 1;
            }
        }
        counts
    }

    /// A random extra latency between zero and `jitter`.
    pub fn jitter(&mut self, jitter: Duration) -> Duration {
        if jitter.is_zero() {
            Duration::ZERO
        } else {
            jitter.mul_f64(self.jitter.gen::<f64>())
        }
    }
}

/// Where the reorderer is within the current pair of chunks.
enum ReorderState {
    /// Bytes go straight through.
    Pass,
    /// The current chunk is held, to be sent after the next one.
    HoldFirst(Vec<u8>),
    /// The first chunk is complete; the second is being collected.
    HoldSecond(Vec<u8>, Vec<u8>),
}

/// Swaps adjacent fixed-size chunks of the stream.
///
/// Chunk boundaries are counted from the start of the stream, and the swap decision
/// is drawn when a chunk starts, so bytes of a chunk that is not swapped go through
/// without waiting.
pub(crate) struct Reorderer {
    rng: ChaCha8Rng,
    state: ReorderState,
    /// Bytes of the current chunk seen so far.
    filled: usize,
    /// Size of the current chunk, fixed when it starts so a setting change mid-chunk
    /// cannot strand it.
    chunk_len: usize,
}

impl Reorderer {
    fn new(rng: ChaCha8Rng) -> Self {
        Reorderer {
            rng,
            state: ReorderState::Pass,
            filled: 0,
            chunk_len: DEFAULT_REORDER_CHUNK,
        }
    }

    /// Whether bytes are held back waiting for the next chunk.
    pub fn is_holding(&self) -> bool {
        !matches!(self.state, ReorderState::Pass)
    }

    /// Feeds bytes through, appending what may leave now to `out`; returns the
    /// number of swaps completed.
    pub fn push(&mut self, faults: &Faults, mut bytes: &[u8], out: &mut Vec<u8>) -> u64 {
        let mut swaps = 0;
        while !bytes.is_empty() {
            if self.filled == 0 {
                self.chunk_len = faults.reorder_chunk.max(1);
                if matches!(self.state, ReorderState::Pass)
                    && faults.reorder > 0.0
                    && self.rng.gen::<f64>() < faults.reorder
                {
                    self.state = ReorderState::HoldFirst(Vec::with_capacity(self.chunk_len));
                }
            }
            let take = (self.chunk_len - self.filled).min(bytes.len());
            let (now, rest) = bytes.split_at(take);
            match &mut self.state {
                ReorderState::Pass => out.extend_from_slice(now),
                ReorderState::HoldFirst(held) | ReorderState::HoldSecond(_, held) => {
                    held.extend_from_slice(now)
                }
            }
            self.filled += take;
            bytes = rest;
            if self.filled == self.chunk_len {
                self.filled = 0;
                self.state = match std::mem::replace(&mut self.state, ReorderState::Pass) {
                    ReorderState::Pass => ReorderState::Pass,
                    ReorderState::HoldFirst(first) => {
                        ReorderState::HoldSecond(first, Vec::with_capacity(self.chunk_len))
                    }
                    ReorderState::HoldSecond(first, second) => {
                        out.extend_from_slice(&second);
                        out.extend_from_slice(&first);
                        swaps += 1;
                        ReorderState::Pass
                    }
                };
            }
        }
        swaps
    }

    /// Sends whatever is held, in order. The rest of a partly received chunk then
    /// passes straight through, so chunk boundaries stay where they were.
    pub fn flush(&mut self, out: &mut Vec<u8>) {
        match std::mem::replace(&mut self.state, ReorderState::Pass) {
            ReorderState::Pass => {}
            ReorderState::HoldFirst(first) => out.extend_from_slice(&first),
            ReorderState::HoldSecond(first, second) => {
                out.extend_from_slice(&first);
                out.extend_from_slice(&second);
            }
        }
    }

    /// Forgets held bytes (the connection they belonged to is gone) and starts the
    /// next stream at a chunk boundary.
    pub fn reset(&mut self) {
        self.state = ReorderState::Pass;
        self.filled = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn faults(f: impl FnOnce(&mut Faults)) -> Faults {
        let mut faults = Faults::default();
        f(&mut faults);
        faults
    }

    #[test]
    fn byte_decisions_do_not_depend_on_how_the_stream_is_split() {
        let f = faults(|f| {
            f.drop = 0.2;
            f.corrupt = 0.2;
            f.duplicate = 0.2;
        });
        let input: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        let mut whole = Vec::new();
        FaultEngine::new(9, 0).apply_byte_faults(&f, &input, &mut whole);
        let mut pieces = Vec::new();
        let mut engine = FaultEngine::new(9, 0);
        for piece in input.chunks(37) {
            engine.apply_byte_faults(&f, piece, &mut pieces);
        }
        assert_eq!(whole, pieces);
        let mut other_direction = Vec::new();
        FaultEngine::new(9, 1).apply_byte_faults(&f, &input, &mut other_direction);
        assert_ne!(
            whole, other_direction,
            "directions must draw from different streams"
        );
    }

    #[test]
    fn reorder_always_swaps_pairs_of_chunks() {
        let f = faults(|f| {
            f.reorder = 1.0;
            f.reorder_chunk = 2;
        });
        let mut reorderer = FaultEngine::new(1, 0).reorder;
        let mut out = Vec::new();
        let swaps = reorderer.push(&f, &[0, 1, 2], &mut out);
        assert_eq!((swaps, out.as_slice()), (0, &[][..]));
        let swaps = reorderer.push(&f, &[3, 4, 5, 6, 7, 8], &mut out);
        assert_eq!(swaps, 2);
        assert_eq!(out, [2, 3, 0, 1, 6, 7, 4, 5]);
        assert!(reorderer.is_holding());
        reorderer.flush(&mut out);
        assert_eq!(out, [2, 3, 0, 1, 6, 7, 4, 5, 8]);
        // The rest of the flushed chunk passes straight through.
        reorderer.push(&f, &[9], &mut out);
        assert_eq!(out.last(), Some(&9));
    }

    #[test]
    fn settings_parse_like_a_person_types_them() {
        let list =
            FaultSetting::parse_list("corrupt=0.1%, baud=9600,delay=20ms,reorder_chunk=4").unwrap();
        let mut f = Faults::default();
        for s in &list {
            s.apply(&mut f);
        }
        assert!((f.corrupt - 0.001).abs() < 1e-12);
        assert_eq!(f.baud, Some(9600));
        assert_eq!(f.delay, Duration::from_millis(20));
        assert_eq!(f.reorder_chunk, 4);
        assert_eq!(
            FaultSetting::parse("baud", "off"),
            Ok(FaultSetting::Baud(None))
        );
    }

    #[test]
    fn bad_settings_name_the_problem() {
        let err = FaultSetting::parse("corrupt", "1.5")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("corrupt") && err.contains("between 0 and 1"),
            "{err}"
        );
        let err = FaultSetting::parse("loss", "0.1").unwrap_err().to_string();
        assert!(
            err.contains("unknown fault `loss`") && err.contains("drop"),
            "{err}"
        );
        let err = FaultSetting::parse("delay", "20").unwrap_err().to_string();
        assert!(err.contains("20ms"), "{err}");
        let err = FaultSetting::parse_list("corrupt").unwrap_err().to_string();
        assert!(err.contains("KEY=VALUE"), "{err}");
        assert!(FaultSetting::parse("drop", "NaN").is_err());
        assert!(FaultSetting::parse("delay", "2h").is_err());
        assert!(FaultSetting::parse("reorder-chunk", "0").is_err());
    }
}
