//! The agent: a protocol link plus the state of every request in flight.
//!
//! [`Agent::poll`] does a bounded amount of work and never waits:
//!
//! 1. at most [`MESSAGES_PER_POLL`] incoming messages are handled, each with
//!    at most one immediate reply. A message is only taken from the link if
//!    its reply is sure to fit in the send buffer ([`REPLY_RESERVE`]), so
//!    replies never need a queue of their own and are never dropped; while
//!    the buffer is that full, requests wait in the link and its window
//!    pushes back on the gateway.
//! 2. the reply to `Hello` (DeviceInfo, whose size depends on the board).
//! 3. one step of every runnable command, then its buffered output and, once
//!    it has ended, its exit report.
//! 4. write credit for a push in progress.
//! 5. up to [`CHUNKS_PER_POLL`] messages of a pull or listing.
//!
//! Streams (output, pulled data, listings) leave [`REPLY_RESERVE`] bytes of
//! the send buffer free, so they never starve replies.

use core::time::Duration;

use corral_protocol::credit::SendCredit;
use corral_protocol::features;
use corral_protocol::link::{Config, ConfigError, Event, Link, SendError, State, RECORD_HEADER};
use corral_protocol::message::{
    Body, DecodeError, Envelope, ErrorCode, ErrorReply, ExecRequest, ExitReason, ExitReport,
    FileHash, FileStat, Get, LogLevel, LogLine, Output, PutOpen, PutReady, Started, StrList, Write,
};
use corral_protocol::Instant;

use crate::builtin;
use crate::command::{limits, Ctx, OutState, Printer, Step, STATE_WORDS};
use crate::platform::{Identity, Platform};
use crate::store::{FileStore, StoreError};
use crate::wire;

/// Incoming messages handled per [`Agent::poll`] at most.
pub const MESSAGES_PER_POLL: usize = 8;
/// Messages of a pull or listing sent per [`Agent::poll`] at most.
pub const CHUNKS_PER_POLL: usize = 4;
/// Largest piece of a file in one `Data` message: small enough that
/// command output and replies interleave with a pull.
pub const DATA_CHUNK: usize = 512;
/// Send-buffer bytes kept free for replies. Every immediate reply (an
/// error with its explanation, a stat, a hash) is smaller.
pub const REPLY_RESERVE: usize = 128;
/// How long a reset waits for the gateway to acknowledge the `Ok` before it
/// goes ahead anyway.
pub const RESET_GRACE: Duration = Duration::from_secs(2);

/// Exit code reported for a command the agent stopped (timeout, cancel):
/// not 0, so that a careless reader never takes it for success.
const KILLED: i32 = -1;

/// Worst-case bytes of an `Output` message besides its data: request id
/// (5), kind (1), stream (1), data length (3).
const OUTPUT_OVERHEAD: usize = 10;

/// An immediate reply to a request.
#[derive(Debug, Clone, Copy)]
enum Reply {
    Pong(u64),
    Ok,
    Error(ErrorCode, &'static str),
    Unsupported(u32),
    Started,
    PutReady(PutReady),
    Stat(FileStat),
    Hash(FileHash),
}

impl From<StoreError> for Reply {
    fn from(e: StoreError) -> Self {
        Reply::Error(e.code, e.message)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Free,
    Running,
    /// Stopped; its buffered output and then its exit report are being sent.
    Finishing {
        reason: ExitReason,
        code: i32,
        duration_ms: u64,
    },
}

/// One command that may run at a time: its arguments, state and output.
struct Slot<P, const ARGV: usize, const OUT: usize> {
    phase: Phase,
    id: u32,
    run: Option<fn(&mut Ctx<'_, P>) -> Step>,
    argv: [u8; ARGV],
    argv_len: u16,
    started: Instant,
    deadline: Option<Instant>,
    /// Not stepped before this (`Instant::ZERO`: at the next poll).
    wake: Instant,
    state: [u32; STATE_WORDS],
    out: [u8; OUT],
    os: OutState,
}

impl<P, const ARGV: usize, const OUT: usize> Slot<P, ARGV, OUT> {
    const fn new() -> Self {
        Slot {
            phase: Phase::Free,
            id: 0,
            run: None,
            argv: [0; ARGV],
            argv_len: 0,
            started: Instant::ZERO,
            deadline: None,
            wake: Instant::ZERO,
            state: [0; STATE_WORDS],
            out: [0; OUT],
            os: OutState::new(0),
        }
    }

    fn finish(&mut self, now: Instant, reason: ExitReason, code: i32) {
        // Without `Duration`, whose conversions divide a `u64` (a library
        // routine on a 32-bit MCU).
        let us = now.micros_since(self.started);
        self.phase = Phase::Finishing {
            reason,
            code,
            duration_ms: corral_protocol::time::div_rem_small(us, 1000).0,
        };
    }
}

/// A push in progress.
#[derive(Debug, Clone, Copy)]
struct PutState {
    id: u32,
    size: u64,
    /// End of the data written so far.
    written: u64,
    /// Credit granted and not used yet.
    credit_left: u64,
}

/// A pull or a listing in progress.
#[derive(Debug, Clone, Copy)]
struct ReadJob<H> {
    id: u32,
    handle: H,
    what: Reading,
}

#[derive(Debug, Clone, Copy)]
enum Reading {
    File {
        pos: u64,
        hash: FileHash,
        credit: SendCredit,
    },
    Dir {
        index: usize,
    },
}

/// The Corral agent for a device.
///
/// - `P`: the board ([`Platform`]).
/// - `B`: the link's storage, at least [`Config::storage_len`] bytes: an
///   array, or `&'static mut [u8; N]` to keep it out of the agent value.
/// - `S`: link segments in flight (see [`Link`]).
/// - `SLOTS`: commands that may run at once.
/// - `ARGV`: bytes of arguments a command takes (`argv` as sent, each item
///   with its NUL).
/// - `OUT`: output buffer per command slot; also the largest `Output`
///   message.
///
/// See the crate documentation for the main loop that drives it.
pub struct Agent<
    P: Platform,
    B,
    const S: usize = 8,
    const SLOTS: usize = 2,
    const ARGV: usize = 64,
    const OUT: usize = 128,
> {
    link: Link<B, S>,
    core: Core<P, SLOTS, ARGV, OUT>,
}

struct Core<P: Platform, const SLOTS: usize, const ARGV: usize, const OUT: usize> {
    platform: P,
    slots: [Slot<P, ARGV, OUT>; SLOTS],
    put: Option<PutState>,
    /// The last put that ended early: writes it still had in flight are
    /// dropped quietly instead of drawing an error each.
    closed_put: Option<u32>,
    read: Option<ReadJob<<P::Files as FileStore>::Handle>>,
    /// A `Hello` to answer.
    hello: Option<u32>,
    /// A reset was requested: it happens once the `Ok` is acknowledged, or
    /// at this time.
    reset_by: Option<Instant>,
    /// The last poll stopped at a bound with work left.
    again: bool,
}

impl<P, B, const S: usize, const SLOTS: usize, const ARGV: usize, const OUT: usize>
    Agent<P, B, S, SLOTS, ARGV, OUT>
where
    P: Platform,
    B: AsRef<[u8]> + AsMut<[u8]>,
{
    /// An agent for `platform` over a link with `cfg` (usually
    /// [`Config::device`]) and `storage`. The link's session id is the
    /// platform's boot id, and its features are set to what this agent
    /// supports: `EXEC` (if `SLOTS > 0`), `FILES` (if the platform has a
    /// store), `RESET` and `LOGS`; never `STDIN` or `ATTACH`.
    ///
    /// Fails if the link refuses `cfg` or `storage` (too small), if the boot
    /// id is 0, or if `OUT` does not fit the link's send buffer.
    pub fn new(
        mut cfg: Config,
        storage: B,
        mut platform: P,
        now: Instant,
    ) -> Result<Self, ConfigError> {
        if OUT == 0 || OUT > usize::from(u16::MAX) || ARGV > usize::from(u16::MAX) {
            return Err(ConfigError("OUT must be 1..=65535 and ARGV at most 65535"));
        }
        if OUT + OUTPUT_OVERHEAD + REPLY_RESERVE + RECORD_HEADER > cfg.tx_buffer {
            return Err(ConfigError(
                "the output buffer (OUT) does not fit the link's send buffer with room for replies",
            ));
        }
        let mut offered = features::RESET | features::LOGS;
        if SLOTS > 0 {
            offered |= features::EXEC;
        }
        if platform.files().is_some() {
            offered |= features::FILES;
        }
        cfg.features = offered;
        let session = platform.identity().boot_id;
        let link = Link::new(cfg, storage, session, now)?;
        Ok(Agent {
            link,
            core: Core {
                platform,
                slots: core::array::from_fn(|_| Slot::new()),
                put: None,
                closed_put: None,
                read: None,
                hello: None,
                reset_by: None,
                again: false,
            },
        })
    }

    /// Feeds bytes received from the line.
    pub fn receive(&mut self, now: Instant, bytes: &[u8]) {
        self.link.receive(now, bytes);
    }

    /// Does the work due now: handles requests, steps commands, streams
    /// output and files. Bounded; call it after every
    /// [`receive`](Self::receive) and whenever
    /// [`poll_timeout`](Self::poll_timeout) passes.
    pub fn poll(&mut self, now: Instant) {
        self.core.again = false;
        if let Some(by) = self.core.reset_by {
            // Nothing else happens while a reset is pending: the gateway was
            // told everything stops.
            if self.link.unacknowledged() == 0 || now >= by {
                self.core.reset_by = None;
                self.core.platform.reset();
            }
            return;
        }
        self.take_messages(now);
        if self.core.reset_by.is_some() {
            return;
        }
        self.core.answer_hello(&mut self.link);
        self.core.run_commands(&mut self.link, now);
        self.core.grant_put_credit(&mut self.link);
        self.core.stream_reads(&mut self.link);
    }

    /// Writes the frames due now into `out` (one frame of the largest
    /// segment should fit: 600 bytes with [`Config::device`]) and returns
    /// how many bytes to send. Call it after every [`poll`](Self::poll), and
    /// again while it returns more than 0.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut [u8]) -> usize {
        self.link.poll_transmit(now, out)
    }

    /// When [`poll`](Self::poll) and [`poll_transmit`](Self::poll_transmit)
    /// next have work if nothing is received before: the link's timers,
    /// command deadlines and wake-ups, a pending reset. `Some(Instant::ZERO)`
    /// (or any time already past) means now; `None` means only received bytes
    /// can make work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.core.again {
            return Some(Instant::ZERO);
        }
        let mut t = self.link.poll_timeout();
        if let Some(by) = self.core.reset_by {
            return Some(earliest(t, by));
        }
        for slot in &self.core.slots {
            if slot.phase != Phase::Running {
                continue;
            }
            if let Some(deadline) = slot.deadline {
                t = Some(t.map_or(deadline, |t| earliest(Some(t), deadline)));
            }
            if !slot.os.stalled {
                t = Some(earliest(t, slot.wake));
            }
        }
        t
    }

    /// Sends a device log line (request id 0) if the link can take it now.
    pub fn log(&mut self, level: LogLevel, text: &str) -> Result<(), SendError> {
        if !matches!(self.link.state(), State::Established | State::Down) {
            return Err(SendError::NotConnected);
        }
        let env = Envelope::new(0, Body::Log(LogLine { level, text }));
        if wire::queue(&mut self.link, REPLY_RESERVE, &env) {
            Ok(())
        } else {
            Err(SendError::Full)
        }
    }

    /// The link, for its state and counters.
    pub fn link(&self) -> &Link<B, S> {
        &self.link
    }

    /// The board.
    pub fn platform(&self) -> &P {
        &self.core.platform
    }

    /// The board, mutable.
    pub fn platform_mut(&mut self) -> &mut P {
        &mut self.core.platform
    }

    /// Commands running or finishing now.
    pub fn commands_running(&self) -> usize {
        self.core
            .slots
            .iter()
            .filter(|s| s.phase != Phase::Free)
            .count()
    }

    /// True while a requested reset waits for its `Ok` to be acknowledged.
    pub fn reset_pending(&self) -> bool {
        self.core.reset_by.is_some()
    }

    fn take_messages(&mut self, now: Instant) {
        for _ in 0..MESSAGES_PER_POLL {
            let connected = matches!(self.link.state(), State::Established | State::Down);
            if connected && self.link.send_capacity() < REPLY_RESERVE.min(self.link.max_message()) {
                // The reply might not fit: leave the request in the link.
                // Acknowledgements (in `receive`) make room.
                return;
            }
            let reply = match self.link.poll_event() {
                None => return,
                Some(Event::Message(bytes)) => self.core.on_message(now, bytes),
                Some(Event::PeerReset) => {
                    // The gateway restarted: nobody waits for the requests in
                    // flight any more.
                    self.core.abandon_all();
                    None
                }
                Some(_) => None,
            };
            if let Some((id, reply)) = reply {
                send_reply(&mut self.link, id, reply);
            }
            if self.core.reset_by.is_some() {
                return;
            }
        }
        self.core.again = true;
    }
}

fn earliest(t: Option<Instant>, u: Instant) -> Instant {
    t.map_or(u, |t| t.min(u))
}

fn send_reply<B: AsRef<[u8]> + AsMut<[u8]>, const S: usize>(
    link: &mut Link<B, S>,
    id: u32,
    reply: Reply,
) {
    let body = match reply {
        Reply::Pong(v) => Body::Pong(v),
        Reply::Ok => Body::Ok,
        Reply::Error(code, message) => Body::Error(ErrorReply { code, message }),
        Reply::Unsupported(kind) => Body::Unsupported(kind),
        Reply::Started => Body::Started(Started { pid: 0 }),
        Reply::PutReady(r) => Body::PutReady(r),
        Reply::Stat(s) => Body::StatReply(s),
        Reply::Hash(h) => Body::HashReply(h),
    };
    // Room was checked before the request was taken (REPLY_RESERVE), so this
    // only fails if the session was lost meanwhile, and then nobody waits
    // for the reply.
    let _ = wire::send(link, &Envelope::new(id, body));
}

const NO_REQUEST: Reply = Reply::Error(
    ErrorCode::NO_SUCH_REQUEST,
    "no request with this id is in progress",
);

impl<P: Platform, const SLOTS: usize, const ARGV: usize, const OUT: usize>
    Core<P, SLOTS, ARGV, OUT>
{
    /// Handles one message; returns the immediate reply, if any.
    fn on_message(&mut self, now: Instant, bytes: &[u8]) -> Option<(u32, Reply)> {
        let env = match Envelope::decode_kinds::<{ wire::RECEIVED_KINDS }>(bytes) {
            Ok(env) => env,
            Err(DecodeError::UnknownKind { kind, .. })
                if wire::has_kind(wire::IGNORED_KINDS, kind) =>
            {
                return None
            }
            Err(DecodeError::UnknownKind { id, kind }) => {
                return Some((id, Reply::Unsupported(kind)))
            }
            Err(DecodeError::BadBody { id, .. }) => {
                return Some((
                    id,
                    Reply::Error(ErrorCode::INVALID_ARGUMENT, "malformed message body"),
                ))
            }
            Err(DecodeError::Malformed) => {
                return Some((
                    0,
                    Reply::Error(ErrorCode::INVALID_ARGUMENT, "malformed message"),
                ))
            }
        };
        let id = env.id;
        let kind = env.kind();
        let reply = match env.body {
            Body::Hello(_) => {
                self.hello = Some(id);
                return None;
            }
            Body::Ping(v) => Reply::Pong(v),
            Body::Exec(req) => self.exec(now, id, &req),
            Body::Cancel => self.cancel(now, id)?,
            Body::Credit(n) => {
                self.credit(id, n);
                return None;
            }
            Body::Reset => {
                self.abandon_all();
                self.reset_by = Some(now + RESET_GRACE);
                Reply::Ok
            }
            // Replies to requests this device never makes: not decoded (see
            // `wire::IGNORED_KINDS`), and dropped if they were.
            Body::Pong(_) | Body::Ok | Body::Error(_) | Body::Unsupported(_) => return None,
            body => {
                if self.platform.files().is_none() {
                    Reply::Unsupported(kind)
                } else {
                    match body {
                        Body::PutOpen(open) => self.put_open(id, &open),
                        Body::Write(w) => self.write(id, &w)?,
                        Body::Commit => self.commit(id),
                        Body::Get(get) => self.get(id, &get)?,
                        Body::List(path) => self.list(id, path)?,
                        Body::Stat(path) => self.file_op(|f| f.stat(path).map(Reply::Stat)),
                        Body::Hash(path) => self.file_op(|f| f.hash(path).map(Reply::Hash)),
                        Body::Remove(path) => self.file_op(|f| f.remove(path).map(|()| Reply::Ok)),
                        // Stdin, Attach, and kinds only a device sends.
                        _ => Reply::Unsupported(kind),
                    }
                }
            }
        };
        Some((id, reply))
    }

    fn file_op(&mut self, op: impl FnOnce(&mut P::Files) -> Result<Reply, StoreError>) -> Reply {
        match self.platform.files() {
            Some(files) => op(files).unwrap_or_else(Reply::from),
            None => Reply::Error(ErrorCode::INTERNAL, "the file store went away"),
        }
    }

    /// Drops every request in flight (the gateway restarted, or the device
    /// is about to). A put's data stays in the store for a resume.
    fn abandon_all(&mut self) {
        for slot in &mut self.slots {
            slot.phase = Phase::Free;
        }
        self.put = None;
        self.closed_put = None;
        self.read = None;
        self.hello = None;
    }

    fn exec(&mut self, now: Instant, id: u32, req: &ExecRequest<'_>) -> Reply {
        if SLOTS == 0 {
            return Reply::Unsupported(wire::KIND_EXEC);
        }
        if req.stdin {
            // Firmware commands read no input; the STDIN feature is not
            // offered.
            return Reply::Unsupported(wire::KIND_STDIN);
        }
        if !req.env.is_empty() {
            return Reply::Error(
                ErrorCode::INVALID_ARGUMENT,
                "no environment variables on this device",
            );
        }
        if !req.cwd.is_empty() {
            return Reply::Error(
                ErrorCode::INVALID_ARGUMENT,
                "no working directories on this device",
            );
        }
        let Some(name) = req.argv.iter().next().filter(|n| !n.is_empty()) else {
            return Reply::Error(ErrorCode::INVALID_ARGUMENT, "argv is empty");
        };
        if self
            .slots
            .iter()
            .any(|s| s.phase != Phase::Free && s.id == id)
        {
            return Reply::Error(ErrorCode::INVALID_ARGUMENT, "request id already in use");
        }
        let Some(command) = builtin::find::<P>(name) else {
            return Reply::Error(
                ErrorCode::UNKNOWN_COMMAND,
                "no such command (`info` lists them)",
            );
        };
        let raw = req.argv.0.as_bytes();
        if raw.len() > ARGV {
            return Reply::Error(ErrorCode::TOO_LARGE, "arguments too long for this device");
        }
        let Some(slot) = self.slots.iter_mut().find(|s| s.phase == Phase::Free) else {
            return Reply::Error(ErrorCode::BUSY, "all command slots are in use");
        };
        slot.phase = Phase::Running;
        slot.id = id;
        slot.run = Some(command.run);
        // Fits: checked against ARGV above.
        if let Some(dst) = slot.argv.get_mut(..raw.len()) {
            dst.copy_from_slice(raw);
        }
        slot.argv_len = raw.len() as u16;
        slot.started = now;
        slot.deadline =
            (req.timeout_ms > 0).then(|| now.add_micros(u64::from(req.timeout_ms) * 1000));
        slot.wake = Instant::ZERO;
        slot.state = [0; STATE_WORDS];
        slot.os = OutState::new(req.credit);
        Reply::Started
    }

    fn cancel(&mut self, now: Instant, id: u32) -> Option<Reply> {
        if let Some(slot) = self
            .slots
            .iter_mut()
            .find(|s| s.phase != Phase::Free && s.id == id)
        {
            if slot.phase == Phase::Running {
                slot.finish(now, ExitReason::Cancelled, KILLED);
            }
            // The exit report is the answer.
            return None;
        }
        if self.put.is_some_and(|p| p.id == id) {
            self.put = None;
            self.closed_put = Some(id);
            return Some(Reply::Ok);
        }
        if self.read.is_some_and(|r| r.id == id) {
            self.read = None;
            return Some(Reply::Ok);
        }
        Some(NO_REQUEST)
    }

    fn credit(&mut self, id: u32, n: u32) {
        if let Some(slot) = self
            .slots
            .iter_mut()
            .find(|s| s.phase != Phase::Free && s.id == id)
        {
            slot.os.credit.grant(n);
            slot.os.stalled = false;
        } else if let Some(ReadJob {
            id: job,
            what: Reading::File { credit, .. },
            ..
        }) = &mut self.read
        {
            if *job == id {
                credit.grant(n);
            }
        }
        // Credit for a request that just ended is normal: it crossed the
        // final message on the line.
    }

    fn put_open(&mut self, id: u32, open: &PutOpen<'_>) -> Reply {
        if self.put.is_some_and(|p| p.id != id) {
            return Reply::Error(ErrorCode::BUSY, "another put is in progress");
        }
        self.put = None;
        let Some(files) = self.platform.files() else {
            return NO_REQUEST;
        };
        match files.put_open(open.path, open.size, &open.sha256, open.mode) {
            Err(e) => e.into(),
            Ok(have) => {
                let have = have.min(open.size);
                let window = u64::from(<P::Files as FileStore>::PUT_WINDOW);
                let credit = window.min(files.put_room()).min(open.size - have);
                self.put = Some(PutState {
                    id,
                    size: open.size,
                    written: have,
                    credit_left: credit,
                });
                Reply::PutReady(PutReady {
                    have,
                    credit: credit as u32,
                })
            }
        }
    }

    fn write(&mut self, id: u32, w: &Write<'_>) -> Option<Reply> {
        let Some(put) = self.put.as_mut().filter(|p| p.id == id) else {
            return (self.closed_put != Some(id)).then_some(NO_REQUEST);
        };
        let n = w.data.len() as u64;
        if n > put.credit_left {
            self.put = None;
            self.closed_put = Some(id);
            return Some(Reply::Error(
                ErrorCode::CREDIT_EXCEEDED,
                "write exceeds the granted credit",
            ));
        }
        put.credit_left -= n;
        let result = match self.platform.files() {
            Some(files) => files.put_write(w.offset, w.data),
            None => Ok(()),
        };
        match result {
            Ok(()) => {
                put.written = put.written.max(w.offset.saturating_add(n));
                None
            }
            Err(e) => {
                self.put = None;
                self.closed_put = Some(id);
                Some(e.into())
            }
        }
    }

    fn commit(&mut self, id: u32) -> Reply {
        if self.put.is_none_or(|p| p.id != id) {
            return NO_REQUEST;
        }
        self.put = None;
        self.closed_put = Some(id);
        self.file_op(|f| f.put_commit().map(|()| Reply::Ok))
    }

    fn get(&mut self, id: u32, get: &Get<'_>) -> Option<Reply> {
        if self.read.is_some() {
            return Some(Reply::Error(
                ErrorCode::BUSY,
                "another get or list is in progress",
            ));
        }
        let files = self.platform.files()?;
        match files.open_file(get.path) {
            Err(e) => Some(e.into()),
            Ok((_, hash)) if get.offset > hash.size => Some(Reply::from(crate::store::PAST_END)),
            Ok((handle, hash)) => {
                self.read = Some(ReadJob {
                    id,
                    handle,
                    what: Reading::File {
                        pos: get.offset,
                        hash,
                        credit: SendCredit::new(get.credit),
                    },
                });
                None
            }
        }
    }

    fn list(&mut self, id: u32, path: &str) -> Option<Reply> {
        if self.read.is_some() {
            return Some(Reply::Error(
                ErrorCode::BUSY,
                "another get or list is in progress",
            ));
        }
        let files = self.platform.files()?;
        match files.open_dir(path) {
            Err(e) => Some(e.into()),
            Ok(handle) => {
                self.read = Some(ReadJob {
                    id,
                    handle,
                    what: Reading::Dir { index: 0 },
                });
                None
            }
        }
    }

    fn answer_hello<B: AsRef<[u8]> + AsMut<[u8]>, const S: usize>(
        &mut self,
        link: &mut Link<B, S>,
    ) {
        let Some(id) = self.hello else { return };
        let limits = limits(&mut self.platform, SLOTS as u16);
        let identity: Identity<'_> = self.platform.identity();
        let names = builtin::all::<P>().map(|c| c.name);
        let full = link.send_capacity() >= link.max_message();
        match link.send_with(|buf| wire::device_info(buf, id, &identity, &limits, names)) {
            Ok(_) => self.hello = None,
            Err(SendError::Full) if !full => {}
            Err(_) => {
                self.hello = None;
                send_reply(
                    link,
                    id,
                    Reply::Error(ErrorCode::INTERNAL, "device info too large for the gateway"),
                );
            }
        }
    }

    fn run_commands<B: AsRef<[u8]> + AsMut<[u8]>, const S: usize>(
        &mut self,
        link: &mut Link<B, S>,
        now: Instant,
    ) {
        for slot in &mut self.slots {
            if slot.phase == Phase::Running {
                if slot.deadline.is_some_and(|d| now >= d) {
                    slot.finish(now, ExitReason::TimedOut, KILLED);
                } else if !slot.os.stalled && now >= slot.wake {
                    step(&mut self.platform, slot, now, SLOTS as u16);
                }
            }
            if slot.phase == Phase::Free {
                continue;
            }
            flush_output(link, slot);
            if let Phase::Finishing {
                reason,
                code,
                duration_ms,
            } = slot.phase
            {
                if slot.os.len == 0 {
                    let report = ExitReport {
                        reason,
                        code,
                        signal: 0,
                        duration_ms,
                        output_dropped: 0,
                        detail: "",
                    };
                    if wire::queue(link, 0, &Envelope::new(slot.id, Body::Exit(report))) {
                        slot.phase = Phase::Free;
                    }
                }
            }
        }
    }

    fn grant_put_credit<B: AsRef<[u8]> + AsMut<[u8]>, const S: usize>(
        &mut self,
        link: &mut Link<B, S>,
    ) {
        let Some(put) = &mut self.put else { return };
        let Some(files) = self.platform.files() else {
            return;
        };
        let window = u64::from(<P::Files as FileStore>::PUT_WINDOW);
        let needed = put
            .size
            .saturating_sub(put.written)
            .saturating_sub(put.credit_left);
        if needed == 0 {
            return;
        }
        let target = window.min(files.put_room());
        if target <= put.credit_left {
            return;
        }
        let grant = (target - put.credit_left)
            .min(needed)
            .min(u64::from(u32::MAX));
        // Grant in large steps, as the receiving side of `credit` does, not
        // once per write.
        if grant < (window / 2).min(needed) {
            return;
        }
        if wire::queue(link, 0, &Envelope::new(put.id, Body::Credit(grant as u32))) {
            put.credit_left += grant;
        }
    }

    fn stream_reads<B: AsRef<[u8]> + AsMut<[u8]>, const S: usize>(
        &mut self,
        link: &mut Link<B, S>,
    ) {
        for _ in 0..CHUNKS_PER_POLL {
            let Some(job) = &mut self.read else { return };
            let Some(files) = self.platform.files() else {
                self.read = None;
                return;
            };
            let id = job.id;
            let outcome = match &mut job.what {
                Reading::File { pos, hash, credit } => {
                    if *pos >= hash.size {
                        if !wire::queue(link, 0, &Envelope::new(id, Body::HashReply(*hash))) {
                            return;
                        }
                        Some(None)
                    } else {
                        let room = link
                            .send_capacity()
                            .min(link.max_message())
                            .saturating_sub(REPLY_RESERVE + wire::DATA_OVERHEAD);
                        let want = (hash.size - *pos)
                            .min(credit.available())
                            .min(room.min(DATA_CHUNK) as u64)
                            as usize;
                        if want == 0 {
                            // Waiting for credit or for acknowledgements.
                            return;
                        }
                        let mut failed = None;
                        let mut got = 0;
                        let at = *pos;
                        let handle = &job.handle;
                        let sent = link.send_with(|buf| {
                            wire::data(buf, id, at, want, |dst| match files.read(handle, at, dst) {
                                Ok(0) => {
                                    failed = Some(StoreError::new(
                                        ErrorCode::IO,
                                        "file shorter than its size",
                                    ));
                                    None
                                }
                                Ok(n) => {
                                    got = n.min(want);
                                    Some(got)
                                }
                                Err(e) => {
                                    failed = Some(e);
                                    None
                                }
                            })
                        });
                        match (sent, failed) {
                            (_, Some(e)) => Some(Some(Reply::from(e))),
                            (Ok(_), None) => {
                                *pos += got as u64;
                                credit.take(got);
                                None
                            }
                            (Err(_), None) => return,
                        }
                    }
                }
                Reading::Dir { index } => match files.entry(&job.handle, *index) {
                    Ok(Some(entry)) => {
                        if !wire::queue(link, REPLY_RESERVE, &Envelope::new(id, Body::Entry(entry)))
                        {
                            return;
                        }
                        *index += 1;
                        None
                    }
                    Ok(None) => Some(Some(Reply::Ok)),
                    Err(e) => Some(Some(Reply::from(e))),
                },
            };
            // `Some(reply)`: the job is over, with a final reply to send.
            if let Some(last) = outcome {
                self.read = None;
                if let Some(reply) = last {
                    send_reply(link, id, reply);
                }
            }
        }
        if self.read.is_some() {
            self.again = true;
        }
    }
}

/// One step of the command in `slot`.
fn step<P: Platform, const ARGV: usize, const OUT: usize>(
    platform: &mut P,
    slot: &mut Slot<P, ARGV, OUT>,
    now: Instant,
    max_commands: u16,
) {
    let Some(run) = slot.run else {
        slot.finish(now, ExitReason::FailedToStart, KILLED);
        return;
    };
    let argv = slot
        .argv
        .get(..usize::from(slot.argv_len))
        .unwrap_or_default();
    let argv = core::str::from_utf8(argv).unwrap_or("");
    let mut cx = Ctx {
        platform,
        argv: StrList(argv),
        now,
        started: slot.started,
        id: slot.id,
        max_commands,
        state: &mut slot.state,
        printer: Printer::new(&mut slot.out, &mut slot.os),
    };
    match run(&mut cx) {
        Step::Pending => slot.wake = Instant::ZERO,
        Step::Wait(t) => slot.wake = t,
        Step::Exit(code) => slot.finish(now, ExitReason::Exited, code),
    }
}

/// Sends what the slot's buffer holds, as far as the link has room beyond
/// the reply reserve.
fn flush_output<
    P,
    B: AsRef<[u8]> + AsMut<[u8]>,
    const S: usize,
    const ARGV: usize,
    const OUT: usize,
>(
    link: &mut Link<B, S>,
    slot: &mut Slot<P, ARGV, OUT>,
) {
    let len = usize::from(slot.os.len);
    if len == 0 {
        return;
    }
    let room = link
        .send_capacity()
        .min(link.max_message())
        .saturating_sub(REPLY_RESERVE + OUTPUT_OVERHEAD);
    let n = len.min(room);
    if n == 0 {
        return;
    }
    let Some(data) = slot.out.get(..n) else {
        return;
    };
    let output = Output {
        stream: slot.os.stream,
        data,
    };
    if wire::send(link, &Envelope::new(slot.id, Body::Output(output))) {
        slot.out.copy_within(n..len, 0);
        slot.os.len = (len - n) as u16;
        slot.os.stalled = false;
    }
}
