//! The messages: what travels inside a link's records.
//!
//! A record holds one [`Envelope`] encoded with postcard: a request id and a
//! [`Body`]. The requester (the gateway) picks ids; every reply, stream chunk,
//! credit or cancel about a request carries that request's id, so several
//! requests run at once over one link. Unsolicited messages (device logs) use
//! id 0.
//!
//! Compatibility rules (see `docs/protocol.md` §6): variants are only ever
//! appended at the end of [`Body`]; a body kind a peer does not know is answered
//! with [`Body::Unsupported`], which [`Envelope::decode`] makes possible by
//! reporting the id and kind of what it could not decode. Codes that may grow
//! ([`ErrorCode`], [`LogLevel`]) are integers with named constants, not enums,
//! so an old peer can still print a new code.
//!
//! ```
//! use corral_protocol::message::{Body, Envelope};
//! let mut buf = [0u8; 64];
//! let n = Envelope { id: 7, body: Body::Ping(42) }.encode(&mut buf).unwrap();
//! assert_eq!(Envelope::decode(&buf[..n]).unwrap(), Envelope { id: 7, body: Body::Ping(42) });
//! ```

use core::fmt;
use serde::{Deserialize, Serialize};

use crate::codec::{Reader, Wire, Writer};

/// A list of strings carried as one string, each item terminated by `\0`
/// (the way `execve` sees argv): `"ls\0-l\0"`. Zero-copy and needs no
/// allocation to decode.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[serde(transparent)]
pub struct StrList<'a>(#[serde(borrow)] pub &'a str);

impl<'a> StrList<'a> {
    /// The empty list.
    pub const EMPTY: StrList<'static> = StrList("");

    /// The items. A final item without its terminator is still returned.
    pub fn iter(&self) -> impl Iterator<Item = &'a str> + 'a {
        let s = self.0;
        // What is left: `None` once the last item was returned. The same
        // items as `split('\0')` of the list without its final NUL, by
        // hand: on firmware that saves the generic splitter and `memchr`
        // (lists are a few short arguments).
        let mut rest = (!s.is_empty()).then(|| s.strip_suffix('\0').unwrap_or(s));
        core::iter::from_fn(move || {
            let r = rest?;
            // A NUL byte is always a char boundary, so `get` cannot fail.
            let (item, tail) = match r.bytes().position(|b| b == 0) {
                Some(i) => (r.get(..i)?, r.get(i + 1..)),
                None => (r, None),
            };
            rest = tail;
            Some(item)
        })
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// True if there are no items.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Writes `items` in list form into `buf` and returns the list borrowing
    /// it; `None` if it does not fit or an item contains `\0`.
    pub fn build<'b, I, S>(items: I, buf: &'b mut [u8]) -> Option<StrList<'b>>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut n = 0;
        for item in items {
            let item = item.as_ref().as_bytes();
            if item.contains(&0) {
                return None;
            }
            buf.get_mut(n..n + item.len())?.copy_from_slice(item);
            *buf.get_mut(n + item.len())? = 0;
            n += item.len() + 1;
        }
        core::str::from_utf8(&buf[..n]).ok().map(StrList)
    }
}

/// The first message of a session, from the host.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
pub struct HostHello<'a> {
    /// The host's name, for device logs.
    pub name: &'a str,
    /// The host software's version.
    pub software: &'a str,
}

/// What a device can do.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Limits {
    /// Commands that may run at once.
    pub max_commands: u16,
    /// File storage capacity in bytes (0 if no file store).
    pub storage_bytes: u64,
    /// Free file storage in bytes.
    pub storage_free: u64,
    /// Largest file the store takes.
    pub max_file: u64,
}

/// The device's identity and limits, the reply to [`Body::Hello`].
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
pub struct DeviceInfo<'a> {
    /// Name the device gives itself.
    pub name: &'a str,
    /// Board or machine type.
    pub board: &'a str,
    /// Serial number.
    pub serial: &'a str,
    /// Firmware or agent version.
    pub firmware: &'a str,
    /// Boot id: changes at every boot.
    pub boot_id: u32,
    /// What it can do.
    pub limits: Limits,
    /// Built-in commands (firmware); empty if it runs any program (an OS).
    #[serde(borrow)]
    pub commands: StrList<'a>,
}

/// Run a command.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
pub struct ExecRequest<'a> {
    /// Program and arguments; never interpreted by a shell.
    #[serde(borrow)]
    pub argv: StrList<'a>,
    /// `KEY=VALUE` items added to the environment.
    #[serde(borrow)]
    pub env: StrList<'a>,
    /// Working directory; empty for the agent's default.
    pub cwd: &'a str,
    /// Kill the command after this long; 0 for no limit.
    pub timeout_ms: u32,
    /// The requester will send [`Body::Stdin`]; otherwise stdin is empty.
    pub stdin: bool,
    /// Output bytes the device may send before it gets [`Body::Credit`].
    pub credit: u32,
    /// Non-zero: a token to re-attach with ([`Body::Attach`]) if the link is
    /// lost while the command runs.
    pub token: u64,
}

/// A command started.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
pub struct Started {
    /// Process id, or 0 where there is none.
    pub pid: u32,
}

/// Which output stream.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Output of a running command.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
pub struct Output<'a> {
    /// Which stream.
    pub stream: Stream,
    /// The bytes, as produced.
    pub data: &'a [u8],
}

/// How a command ended.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
pub enum ExitReason {
    /// It exited by itself with `code`.
    Exited,
    /// It was killed by `signal`.
    Signaled,
    /// Its timeout expired and the agent killed it.
    TimedOut,
    /// The requester cancelled it and the agent killed it.
    Cancelled,
    /// It could not be started; `detail` says why.
    FailedToStart,
}

/// The end of a command.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
pub struct ExitReport<'a> {
    /// How it ended.
    pub reason: ExitReason,
    /// Exit code (for [`ExitReason::Exited`]).
    pub code: i32,
    /// Signal number (for [`ExitReason::Signaled`], and the signal used to
    /// kill on timeout or cancel), 0 if none.
    pub signal: u8,
    /// Run time in milliseconds.
    pub duration_ms: u64,
    /// Output bytes that could not be delivered (kept only as a tail while
    /// the link was lost).
    pub output_dropped: u64,
    /// A human explanation, e.g. why it failed to start.
    pub detail: &'a str,
}

/// Open a file for writing (push).
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
pub struct PutOpen<'a> {
    /// Where.
    pub path: &'a str,
    /// Final size.
    pub size: u64,
    /// SHA-256 of the whole file; the commit is refused if it differs.
    pub sha256: [u8; 32],
    /// Unix permission bits.
    pub mode: u32,
}

/// The device is ready for [`Body::Write`]s.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
pub struct PutReady {
    /// Bytes already held from an interrupted push: continue from here.
    pub have: u64,
    /// Bytes that may be written before more [`Body::Credit`].
    pub credit: u32,
}

/// A piece of a file being pushed.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
pub struct Write<'a> {
    /// Offset in the file; must continue where the last write ended.
    pub offset: u64,
    /// The bytes.
    pub data: &'a [u8],
}

/// Read a file (pull).
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
pub struct Get<'a> {
    /// Which file.
    pub path: &'a str,
    /// Start here (resume).
    pub offset: u64,
    /// Bytes the device may send before more [`Body::Credit`].
    pub credit: u32,
}

/// A piece of a file being pulled.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
pub struct Data<'a> {
    /// Offset in the file.
    pub offset: u64,
    /// The bytes.
    pub data: &'a [u8],
}

/// What a path is.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// Anything else (device node, socket, …).
    Other,
}

/// Facts about a path.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
pub struct FileStat {
    /// What it is.
    pub kind: FileKind,
    /// Size in bytes.
    pub size: u64,
    /// Unix permission bits.
    pub mode: u32,
    /// Modification time, seconds since the Unix epoch (0 if unknown).
    pub mtime: i64,
}

/// One entry of a directory listing.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
pub struct DirEntry<'a> {
    /// Name within the directory.
    pub name: &'a str,
    /// Its facts.
    pub stat: FileStat,
}

/// A file's size and SHA-256.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
pub struct FileHash {
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the content.
    pub sha256: [u8; 32],
}

/// Severity of a device log line.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(transparent)]
pub struct LogLevel(pub u8);

impl LogLevel {
    /// Something failed.
    pub const ERROR: LogLevel = LogLevel(1);
    /// Something is wrong.
    pub const WARN: LogLevel = LogLevel(2);
    /// Normal operation.
    pub const INFO: LogLevel = LogLevel(3);
    /// Details.
    pub const DEBUG: LogLevel = LogLevel(4);
}

/// A device log line.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
pub struct LogLine<'a> {
    /// Severity.
    pub level: LogLevel,
    /// The text, without a newline.
    pub text: &'a str,
}

/// What went wrong, as a number both sides can print (see
/// [`ErrorCode::name`]). New codes may be added; unknown ones print as their
/// number.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug, Hash)]
#[serde(transparent)]
pub struct ErrorCode(pub u16);

macro_rules! error_codes {
    ($($(#[$doc:meta])* $name:ident = $value:expr, $text:expr;)*) => {
        impl ErrorCode {
            $($(#[$doc])* pub const $name: ErrorCode = ErrorCode($value);)*

            /// A short name for the code, `None` if this version does not know it.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($value => Some($text),)*
                    _ => None,
                }
            }
        }
    };
}

error_codes! {
    /// No such file, directory or request.
    NOT_FOUND = 1, "not found";
    /// The device refused access.
    PERMISSION_DENIED = 2, "permission denied";
    /// The path leaves the agent's root directory.
    OUTSIDE_ROOT = 3, "path outside the agent root";
    /// A directory where a file was expected.
    IS_A_DIRECTORY = 4, "is a directory";
    /// A file where a directory was expected.
    NOT_A_DIRECTORY = 5, "not a directory";
    /// The content does not match the announced SHA-256.
    HASH_MISMATCH = 6, "hash mismatch";
    /// Storage is full.
    NO_SPACE = 7, "no space left";
    /// Larger than the device takes.
    TOO_LARGE = 8, "too large";
    /// All command slots (or the file store) are in use.
    BUSY = 9, "busy";
    /// A malformed or nonsensical request.
    INVALID_ARGUMENT = 10, "invalid argument";
    /// A write that does not continue where the last one ended.
    BAD_OFFSET = 11, "bad offset";
    /// A request id or token that is not (or no longer) known.
    NO_SUCH_REQUEST = 12, "no such request";
    /// `argv[0]` names no built-in command.
    UNKNOWN_COMMAND = 13, "unknown command";
    /// An I/O error on the device.
    IO = 14, "I/O error";
    /// A bug on the device side.
    INTERNAL = 15, "internal error";
    /// The request was sent with more data than its credit allowed.
    CREDIT_EXCEEDED = 16, "credit exceeded";
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "error {}", self.0),
        }
    }
}

/// A typed error reply.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
pub struct ErrorReply<'a> {
    /// What kind of failure.
    pub code: ErrorCode,
    /// Details for a human.
    pub message: &'a str,
}

/// Every message kind. Only ever append at the end; the index is the wire
/// kind, listed in [`crate::schema::SCHEMA`].
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Body<'a> {
    /// Host → device, first message of a session. Reply: [`Body::DeviceInfo`].
    #[serde(borrow)]
    Hello(HostHello<'a>),
    /// Device → host: identity and limits.
    #[serde(borrow)]
    DeviceInfo(DeviceInfo<'a>),
    /// Either way; the reply is [`Body::Pong`] with the same value.
    Ping(u64),
    /// Reply to [`Body::Ping`].
    Pong(u64),
    /// Run a command. Replies: [`Body::Started`], [`Body::Output`]…,
    /// [`Body::Exit`]; or [`Body::Error`].
    #[serde(borrow)]
    Exec(ExecRequest<'a>),
    /// The command runs.
    Started(Started),
    /// Bytes for the command's stdin.
    Stdin(&'a [u8]),
    /// End of the command's stdin.
    StdinClose,
    /// Command output (under credit).
    #[serde(borrow)]
    Output(Output<'a>),
    /// The command ended. Last message of the request.
    #[serde(borrow)]
    Exit(ExitReport<'a>),
    /// Stop the request with this id (a command is killed).
    Cancel,
    /// The receiver of this may send this many more bytes for the request.
    Credit(u32),
    /// Re-attach to a command by its token after a lost link; replies as for
    /// [`Body::Exec`], output from the kept tail.
    Attach(u64),
    /// Start a push. Reply: [`Body::PutReady`] or [`Body::Error`].
    #[serde(borrow)]
    PutOpen(PutOpen<'a>),
    /// Ready for writes.
    PutReady(PutReady),
    /// File data for a push.
    #[serde(borrow)]
    Write(Write<'a>),
    /// Finish a push: check the hash, move into place. Reply: [`Body::Ok`] or
    /// [`Body::Error`].
    Commit,
    /// Start a pull. Replies: [`Body::Data`]…, then [`Body::HashReply`] of the
    /// whole file; or [`Body::Error`].
    #[serde(borrow)]
    Get(Get<'a>),
    /// File data for a pull.
    #[serde(borrow)]
    Data(Data<'a>),
    /// Facts about a path. Reply: [`Body::StatReply`].
    Stat(&'a str),
    /// Reply to [`Body::Stat`].
    StatReply(FileStat),
    /// List a directory. Replies: [`Body::Entry`]…, then [`Body::Ok`].
    List(&'a str),
    /// One directory entry.
    #[serde(borrow)]
    Entry(DirEntry<'a>),
    /// Remove a file or an empty directory. Reply: [`Body::Ok`].
    Remove(&'a str),
    /// Hash a file. Reply: [`Body::HashReply`].
    Hash(&'a str),
    /// A file's size and hash.
    HashReply(FileHash),
    /// Restart the device. Reply: [`Body::Ok`], then a new session.
    Reset,
    /// A device log line (id 0).
    #[serde(borrow)]
    Log(LogLine<'a>),
    /// Success without data.
    Ok,
    /// Failure.
    #[serde(borrow)]
    Error(ErrorReply<'a>),
    /// The request's kind (given) is not supported by this peer.
    Unsupported(u32),
}

/// Number of [`Body`] kinds this version knows.
pub const BODY_KINDS: u32 = 31;

/// Every kind, as a mask for [`Envelope::decode_kinds`].
pub const ALL_KINDS: u32 = (1 << BODY_KINDS) - 1;

/// A kind and its content, as `encode_kinds` writes them.
fn put<'a, T: Wire<'a>>(w: &mut Writer<'_>, kind: u32, content: &T) -> Option<()> {
    kind.write(w)?;
    content.write(w)
}

/// One message: a request id and what it says.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
pub struct Envelope<'a> {
    /// The request this belongs to (0 for unsolicited messages).
    pub id: u32,
    /// The message.
    #[serde(borrow)]
    pub body: Body<'a>,
}

/// Why a message could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Not even a request id could be read.
    Malformed,
    /// A kind this version does not know: reply [`Body::Unsupported`] to `id`.
    UnknownKind {
        /// The request id.
        id: u32,
        /// The unknown kind.
        kind: u32,
    },
    /// A known kind with a body that does not decode: reply
    /// [`ErrorCode::INVALID_ARGUMENT`] to `id`.
    BadBody {
        /// The request id.
        id: u32,
        /// The kind.
        kind: u32,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Malformed => f.write_str("malformed message"),
            DecodeError::UnknownKind { id, kind } => {
                write!(f, "unknown message kind {kind} (request {id})")
            }
            DecodeError::BadBody { id, kind } => {
                write!(f, "malformed body of kind {kind} (request {id})")
            }
        }
    }
}

impl<'a> Envelope<'a> {
    /// A message.
    pub const fn new(id: u32, body: Body<'a>) -> Self {
        Envelope { id, body }
    }

    /// Encodes into `buf`; returns the length, `None` if it does not fit.
    pub fn encode(&self, buf: &mut [u8]) -> Option<usize> {
        postcard::to_slice(self, buf).ok().map(|s| s.len())
    }

    /// Encodes into `buf` if the kind is in `KINDS` (bit `k` set: encode kind
    /// `k`); returns the length, `None` if it does not fit or the kind is
    /// not in `KINDS`. The same bytes as [`Envelope::encode`].
    ///
    /// For firmware: it uses the crate's own small postcard encoder instead
    /// of serde's, and only the encoders of the kinds in `KINDS` are built
    /// in (with [`Envelope::decode_kinds`], several KiB less flash on a
    /// Cortex-M). [`ALL_KINDS`] takes every kind.
    pub fn encode_kinds<const KINDS: u32>(&self, buf: &mut [u8]) -> Option<usize> {
        let want = |k: u32| KINDS & (1 << k) != 0;
        let mut w = Writer::new(buf);
        self.id.write(&mut w)?;
        // Postcard writes an enum as its variant index (the wire kind) and
        // then the variant's content; a unit variant has none, as `()` has
        // none. The guards are constants: the arms of kinds not in `KINDS`
        // are not compiled in.
        let w = &mut w;
        match &self.body {
            Body::Hello(c) if want(0) => put(w, 0, c),
            Body::DeviceInfo(c) if want(1) => put(w, 1, c),
            Body::Ping(c) if want(2) => put(w, 2, c),
            Body::Pong(c) if want(3) => put(w, 3, c),
            Body::Exec(c) if want(4) => put(w, 4, c),
            Body::Started(c) if want(5) => put(w, 5, c),
            Body::Stdin(c) if want(6) => put(w, 6, c),
            Body::StdinClose if want(7) => put(w, 7, &()),
            Body::Output(c) if want(8) => put(w, 8, c),
            Body::Exit(c) if want(9) => put(w, 9, c),
            Body::Cancel if want(10) => put(w, 10, &()),
            Body::Credit(c) if want(11) => put(w, 11, c),
            Body::Attach(c) if want(12) => put(w, 12, c),
            Body::PutOpen(c) if want(13) => put(w, 13, c),
            Body::PutReady(c) if want(14) => put(w, 14, c),
            Body::Write(c) if want(15) => put(w, 15, c),
            Body::Commit if want(16) => put(w, 16, &()),
            Body::Get(c) if want(17) => put(w, 17, c),
            Body::Data(c) if want(18) => put(w, 18, c),
            Body::Stat(c) if want(19) => put(w, 19, c),
            Body::StatReply(c) if want(20) => put(w, 20, c),
            Body::List(c) if want(21) => put(w, 21, c),
            Body::Entry(c) if want(22) => put(w, 22, c),
            Body::Remove(c) if want(23) => put(w, 23, c),
            Body::Hash(c) if want(24) => put(w, 24, c),
            Body::HashReply(c) if want(25) => put(w, 25, c),
            Body::Reset if want(26) => put(w, 26, &()),
            Body::Log(c) if want(27) => put(w, 27, c),
            Body::Ok if want(28) => put(w, 28, &()),
            Body::Error(c) if want(29) => put(w, 29, c),
            Body::Unsupported(c) if want(30) => put(w, 30, c),
            _ => None,
        }?;
        Some(w.len())
    }

    /// Decodes one message. Trailing bytes are ignored.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let (id, rest) =
            postcard::take_from_bytes::<u32>(bytes).map_err(|_| DecodeError::Malformed)?;
        let (kind, _) =
            postcard::take_from_bytes::<u32>(rest).map_err(|_| DecodeError::Malformed)?;
        if kind >= BODY_KINDS {
            return Err(DecodeError::UnknownKind { id, kind });
        }
        let (body, _) = postcard::take_from_bytes::<Body<'a>>(rest)
            .map_err(|_| DecodeError::BadBody { id, kind })?;
        Ok(Envelope { id, body })
    }

    /// Decodes one message if its kind is in `KINDS` (bit `k` set: decode
    /// kind `k`); any other kind is reported as
    /// [`DecodeError::UnknownKind`], as a kind this version does not know
    /// would be. Otherwise the same as [`Envelope::decode`].
    ///
    /// For firmware, as [`Envelope::encode_kinds`]: the crate's own small
    /// postcard decoder, and only for the kinds the device names (the
    /// requests it handles), so it carries no decoder for what only it
    /// sends.
    pub fn decode_kinds<const KINDS: u32>(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let want = |k: u32| KINDS & (1 << k) != 0;
        let r = &mut Reader::new(bytes);
        let id = u32::read(r).ok_or(DecodeError::Malformed)?;
        let kind = u32::read(r).ok_or(DecodeError::Malformed)?;
        // The kind's content follows it (see `encode_kinds`).
        let body = match kind {
            0 if want(0) => Wire::read(r).map(Body::Hello),
            1 if want(1) => Wire::read(r).map(Body::DeviceInfo),
            2 if want(2) => Wire::read(r).map(Body::Ping),
            3 if want(3) => Wire::read(r).map(Body::Pong),
            4 if want(4) => Wire::read(r).map(Body::Exec),
            5 if want(5) => Wire::read(r).map(Body::Started),
            6 if want(6) => Wire::read(r).map(Body::Stdin),
            7 if want(7) => Some(Body::StdinClose),
            8 if want(8) => Wire::read(r).map(Body::Output),
            9 if want(9) => Wire::read(r).map(Body::Exit),
            10 if want(10) => Some(Body::Cancel),
            11 if want(11) => Wire::read(r).map(Body::Credit),
            12 if want(12) => Wire::read(r).map(Body::Attach),
            13 if want(13) => Wire::read(r).map(Body::PutOpen),
            14 if want(14) => Wire::read(r).map(Body::PutReady),
            15 if want(15) => Wire::read(r).map(Body::Write),
            16 if want(16) => Some(Body::Commit),
            17 if want(17) => Wire::read(r).map(Body::Get),
            18 if want(18) => Wire::read(r).map(Body::Data),
            19 if want(19) => Wire::read(r).map(Body::Stat),
            20 if want(20) => Wire::read(r).map(Body::StatReply),
            21 if want(21) => Wire::read(r).map(Body::List),
            22 if want(22) => Wire::read(r).map(Body::Entry),
            23 if want(23) => Wire::read(r).map(Body::Remove),
            24 if want(24) => Wire::read(r).map(Body::Hash),
            25 if want(25) => Wire::read(r).map(Body::HashReply),
            26 if want(26) => Some(Body::Reset),
            27 if want(27) => Wire::read(r).map(Body::Log),
            28 if want(28) => Some(Body::Ok),
            29 if want(29) => Wire::read(r).map(Body::Error),
            30 if want(30) => Wire::read(r).map(Body::Unsupported),
            _ => return Err(DecodeError::UnknownKind { id, kind }),
        };
        let body = body.ok_or(DecodeError::BadBody { id, kind })?;
        Ok(Envelope { id, body })
    }

    /// The kind number of a body.
    pub fn kind(&self) -> u32 {
        self.body.kind()
    }
}

impl Body<'_> {
    /// The wire kind number (the variant index; a test checks it against the
    /// encoding).
    pub fn kind(&self) -> u32 {
        match self {
            Body::Hello(_) => 0,
            Body::DeviceInfo(_) => 1,
            Body::Ping(_) => 2,
            Body::Pong(_) => 3,
            Body::Exec(_) => 4,
            Body::Started(_) => 5,
            Body::Stdin(_) => 6,
            Body::StdinClose => 7,
            Body::Output(_) => 8,
            Body::Exit(_) => 9,
            Body::Cancel => 10,
            Body::Credit(_) => 11,
            Body::Attach(_) => 12,
            Body::PutOpen(_) => 13,
            Body::PutReady(_) => 14,
            Body::Write(_) => 15,
            Body::Commit => 16,
            Body::Get(_) => 17,
            Body::Data(_) => 18,
            Body::Stat(_) => 19,
            Body::StatReply(_) => 20,
            Body::List(_) => 21,
            Body::Entry(_) => 22,
            Body::Remove(_) => 23,
            Body::Hash(_) => 24,
            Body::HashReply(_) => 25,
            Body::Reset => 26,
            Body::Log(_) => 27,
            Body::Ok => 28,
            Body::Error(_) => 29,
            Body::Unsupported(_) => 30,
        }
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>, const S: usize> crate::link::Link<B, S> {
    /// Encodes and queues one message.
    pub fn send_message(&mut self, message: &Envelope<'_>) -> Result<(), crate::link::SendError> {
        self.send_with(|buf| message.encode(buf)).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::StrList;

    #[test]
    fn strlist_items_are_those_of_split() {
        for s in [
            "", "\0", "\0\0", "a", "a\0", "a\0\0", "\0a", "ls\0-l\0", "ls\0-l", "é\0ü\0",
        ] {
            let reference: std::vec::Vec<&str> = if s.is_empty() {
                std::vec::Vec::new()
            } else {
                s.strip_suffix('\0').unwrap_or(s).split('\0').collect()
            };
            let ours: std::vec::Vec<&str> = StrList(s).iter().collect();
            assert_eq!(ours, reference, "{s:?}");
            assert_eq!(StrList(s).len(), reference.len());
        }
    }
}
