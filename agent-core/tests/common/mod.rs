//! The test bench: a device agent and a gateway-side link joined by two
//! simulated serial lines, in simulated time.
//!
//! The gateway end is a plain `corral_protocol::Link` with the serial
//! configuration; tests queue requests on it and read the decoded replies
//! from [`Sim::inbox`]. Credits for command output and pulled data are
//! granted the way a gateway does (see [`Sim::grant_as_consumed`]), and the
//! bench checks on every message that the device never sent more than it
//! was granted.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use corral_agent_core::{
    Agent, Command, Ctx, FileStore, Identity, Platform, RamHandle, RamStore, Step, StoreError,
    StoreInfo, DEVICE_STORAGE,
};
use corral_protocol::link::{Config, Event, Link, SessionInfo};
use corral_protocol::message::{
    Body, DirEntry, Envelope, ErrorCode, ExecRequest, ExitReason, FileHash, FileStat, Get, Limits,
    PutOpen, PutReady, StrList, Stream, Write,
};
use corral_protocol::sim::{Channel, ChannelStats, Faults};
use corral_protocol::Instant;
use sha2::{Digest, Sha256};

/// A RAM store that can play slow flash: it takes only `room` more bytes
/// until the test makes room again (an erase finished).
pub struct Throttled {
    pub store: RamStore<4, 1024>,
    pub room: u64,
}

impl FileStore for Throttled {
    type Handle = RamHandle;

    fn info(&self) -> StoreInfo {
        self.store.info()
    }
    fn put_open(
        &mut self,
        path: &str,
        size: u64,
        sha256: &[u8; 32],
        mode: u32,
    ) -> Result<u64, StoreError> {
        self.store.put_open(path, size, sha256, mode)
    }
    fn put_room(&self) -> u64 {
        self.room
    }
    fn put_write(&mut self, offset: u64, data: &[u8]) -> Result<(), StoreError> {
        assert!(
            data.len() as u64 <= self.room,
            "the agent let the pusher overrun the store's room"
        );
        self.room -= data.len() as u64;
        self.store.put_write(offset, data)
    }
    fn put_commit(&mut self) -> Result<(), StoreError> {
        self.store.put_commit()
    }
    fn open_file(&mut self, path: &str) -> Result<(RamHandle, FileHash), StoreError> {
        self.store.open_file(path)
    }
    fn read(&mut self, file: &RamHandle, offset: u64, buf: &mut [u8]) -> Result<usize, StoreError> {
        self.store.read(file, offset, buf)
    }
    fn open_dir(&mut self, path: &str) -> Result<RamHandle, StoreError> {
        self.store.open_dir(path)
    }
    fn entry(&mut self, dir: &RamHandle, index: usize) -> Result<Option<DirEntry<'_>>, StoreError> {
        self.store.entry(dir, index)
    }
    fn stat(&mut self, path: &str) -> Result<FileStat, StoreError> {
        self.store.stat(path)
    }
    fn hash(&mut self, path: &str) -> Result<FileHash, StoreError> {
        self.store.hash(path)
    }
    fn remove(&mut self, path: &str) -> Result<(), StoreError> {
        self.store.remove(path)
    }
}

/// The board the tests run the agent on: a RAM store and a few commands of
/// its own next to the built-ins.
pub struct TestBoard {
    pub files: Throttled,
    pub resets: u32,
    pub boot_id: u32,
}

impl TestBoard {
    pub fn new(boot_id: u32) -> Self {
        TestBoard {
            files: Throttled {
                store: RamStore::new(),
                room: u64::MAX,
            },
            resets: 0,
            boot_id,
        }
    }
}

/// `count N`: the numbers 1 to N, one per line, through the raw writer.
/// State: `[next number, bytes of its line already written]`.
fn count(cx: &mut Ctx<'_, TestBoard>) -> Step {
    let Some(n) = cx.arg(1).and_then(|a| a.parse::<u32>().ok()) else {
        cx.eprint("usage: count N\n");
        return cx.exit(2);
    };
    if cx.state()[0] == 0 {
        cx.state()[0] = 1;
    }
    loop {
        let [next, done, ..] = *cx.state();
        if next > n {
            return Step::Exit(0);
        }
        let line = format!("{next}\n");
        let took = cx.stdout().write(&line.as_bytes()[done as usize..]);
        if done as usize + took == line.len() {
            cx.state()[0] = next + 1;
            cx.state()[1] = 0;
        } else {
            cx.state()[1] = done + took as u32;
            return Step::Pending;
        }
    }
}

/// `yell TEXT`: TEXT on stdout, then on stderr, then exit 3.
fn yell(cx: &mut Ctx<'_, TestBoard>) -> Step {
    let text = cx.arg(1).unwrap_or("");
    cx.print(text);
    cx.eprint(text);
    cx.exit(3)
}

/// `echo`, replaced by the board: proves board commands come first.
fn loud_echo(cx: &mut Ctx<'_, TestBoard>) -> Step {
    cx.print("ECHO\n");
    cx.exit(0)
}

impl Platform for TestBoard {
    type Files = Throttled;
    const COMMANDS: &'static [Command<Self>] = &[
        Command::new("count", "N - print 1 to N, one per line", count),
        Command::new(
            "yell",
            "TEXT - print TEXT on stdout and stderr, exit 3",
            yell,
        ),
        Command::new("loud-echo", "- print ECHO", loud_echo),
    ];

    fn identity(&self) -> Identity<'_> {
        Identity {
            name: "bench-1",
            board: "testboard",
            serial: "SN-0042",
            firmware: "9.9.9",
            boot_id: self.boot_id,
        }
    }

    fn files(&mut self) -> Option<&mut Self::Files> {
        Some(&mut self.files)
    }

    fn reset(&mut self) {
        self.resets += 1;
    }
}

/// The agent as firmware would configure it.
pub type TestAgent = Agent<TestBoard, [u8; DEVICE_STORAGE], 8, 2, 64, 128>;

/// A `DeviceInfo` as the gateway received it.
#[derive(Debug, Clone, PartialEq)]
pub struct Info {
    pub name: String,
    pub board: String,
    pub serial: String,
    pub firmware: String,
    pub boot_id: u32,
    pub limits: Limits,
    pub commands: Vec<String>,
}

/// A message the gateway received, decoded into owned values.
#[derive(Debug, Clone, PartialEq)]
pub enum Got {
    DeviceInfo(Box<Info>),
    Pong(u64),
    Started,
    Output(Stream, Vec<u8>),
    Exit {
        reason: ExitReason,
        code: i32,
        duration_ms: u64,
    },
    PutReady(PutReady),
    Credit(u32),
    Data(u64, Vec<u8>),
    Stat(FileStat),
    Entry(String, FileStat),
    Hash(FileHash),
    Log(u8, String),
    Ok,
    Error(ErrorCode, String),
    Unsupported(u32),
    /// Anything a device should never send.
    Other(u32),
}

impl Got {
    fn from_body(body: &Body<'_>) -> Self {
        match *body {
            Body::DeviceInfo(d) => Got::DeviceInfo(Box::new(Info {
                name: d.name.into(),
                board: d.board.into(),
                serial: d.serial.into(),
                firmware: d.firmware.into(),
                boot_id: d.boot_id,
                limits: d.limits,
                commands: d.commands.iter().map(String::from).collect(),
            })),
            Body::Pong(v) => Got::Pong(v),
            Body::Started(_) => Got::Started,
            Body::Output(o) => Got::Output(o.stream, o.data.to_vec()),
            Body::Exit(e) => Got::Exit {
                reason: e.reason,
                code: e.code,
                duration_ms: e.duration_ms,
            },
            Body::PutReady(r) => Got::PutReady(r),
            Body::Credit(n) => Got::Credit(n),
            Body::Data(d) => Got::Data(d.offset, d.data.to_vec()),
            Body::StatReply(s) => Got::Stat(s),
            Body::Entry(e) => Got::Entry(e.name.into(), e.stat),
            Body::HashReply(h) => Got::Hash(h),
            Body::Log(l) => Got::Log(l.level.0, l.text.into()),
            Body::Ok => Got::Ok,
            Body::Error(e) => Got::Error(e.code, e.message.into()),
            Body::Unsupported(k) => Got::Unsupported(k),
            ref other => Got::Other(other.kind()),
        }
    }
}

/// One received message and when it arrived.
#[derive(Debug, Clone, PartialEq)]
pub struct Msg {
    pub id: u32,
    pub got: Got,
    pub at: Instant,
}

/// Credit bookkeeping of one stream, seen from the gateway.
#[derive(Debug, Default, Clone, Copy)]
struct Ledger {
    granted: u64,
    received: u64,
    /// Grant back what arrives, keeping the initial credit outstanding.
    refill: bool,
}

pub struct Sim {
    pub now: Instant,
    pub agent: TestAgent,
    pub gw: Link<Vec<u8>, 32>,
    up: Channel,
    down: Channel,
    buf: Vec<u8>,
    pub inbox: VecDeque<Msg>,
    /// Everything ever received, in order.
    pub log: Vec<Msg>,
    ledgers: HashMap<u32, Ledger>,
    pub session: Option<SessionInfo>,
    pub peer_resets: u32,
    gw_session: u32,
    /// For every platform reset: whether the gateway had the `Ok` by then.
    pub resets: Vec<bool>,
    reset_request: Option<u32>,
    next_id: u32,
}

pub const BOOT_ID: u32 = 0xb007_0001;

impl Sim {
    /// A bench with a clean line.
    pub fn new() -> Self {
        Self::with_faults(Faults::default(), Faults::default())
    }

    /// A bench whose gateway→device (`up`) and device→gateway (`down`)
    /// directions have these faults.
    pub fn with_faults(up: Faults, down: Faults) -> Self {
        let agent = TestAgent::new(
            Config::device(),
            [0; DEVICE_STORAGE],
            TestBoard::new(BOOT_ID),
            Instant::ZERO,
        )
        .expect("the device configuration is valid");
        let gw_session = 0x6a7e_0001;
        let cfg = Config::serial();
        let gw = Link::new(
            cfg.clone(),
            vec![0; cfg.storage_len()],
            gw_session,
            Instant::ZERO,
        )
        .unwrap();
        Sim {
            now: Instant::ZERO,
            agent,
            gw,
            up: Channel::new(up, 1),
            down: Channel::new(down, 2),
            buf: vec![0; 8192],
            inbox: VecDeque::new(),
            log: Vec::new(),
            ledgers: HashMap::new(),
            session: None,
            peer_resets: 0,
            gw_session,
            resets: Vec::new(),
            reset_request: None,
            next_id: 1,
        }
    }

    /// A bench that is connected and has said hello.
    pub fn connected() -> Self {
        let mut sim = Self::new();
        sim.connect();
        sim
    }

    /// Runs until the link is up.
    pub fn connect(&mut self) {
        assert!(
            self.run_until(Duration::from_secs(10), |s| s.session.is_some()),
            "the link did not come up"
        );
    }

    /// A fresh request id.
    pub fn id(&mut self) -> u32 {
        self.next_id += 1;
        self.next_id
    }

    /// Simulates a gateway restart: a new link with a new session id, and
    /// nothing remembered from before.
    pub fn restart_gateway(&mut self) {
        self.gw_session += 1;
        let cfg = Config::serial();
        self.gw = Link::new(
            cfg.clone(),
            vec![0; cfg.storage_len()],
            self.gw_session,
            self.now,
        )
        .unwrap();
        self.session = None;
        self.inbox.clear();
        self.ledgers.clear();
        self.connect();
    }

    /// Counters of the gateway→device and device→gateway lines.
    pub fn line_stats(&self) -> (ChannelStats, ChannelStats) {
        (self.up.stats(), self.down.stats())
    }

    /// Changes the faults of the device→gateway direction from now on.
    pub fn set_down_faults(&mut self, faults: Faults) {
        self.down.set_faults(faults);
    }

    /// Queues a request on the gateway's link.
    pub fn send(&mut self, id: u32, body: Body<'_>) {
        if let Body::Reset = body {
            self.reset_request = Some(id);
        }
        self.gw
            .send_message(&Envelope::new(id, body))
            .expect("the gateway link takes the request");
    }

    /// Queues raw message bytes, for messages this protocol version cannot
    /// build.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.gw
            .send(bytes)
            .expect("the gateway link takes the message");
    }

    /// Records the credit a request starts with; with `refill`, everything
    /// the device sends is granted back at once, so `initial` stays the
    /// most it may have outstanding.
    pub fn grant_as_consumed(&mut self, id: u32, initial: u32, refill: bool) {
        self.ledgers.insert(
            id,
            Ledger {
                granted: u64::from(initial),
                received: 0,
                refill,
            },
        );
    }

    /// Grants more credit to a request by hand.
    pub fn grant(&mut self, id: u32, n: u32) {
        self.ledgers.entry(id).or_default().granted += u64::from(n);
        self.send(id, Body::Credit(n));
    }

    /// Starts a command; returns its request id.
    pub fn exec(&mut self, argv: &[&str], timeout_ms: u32, credit: u32) -> u32 {
        let id = self.id();
        let mut buf = [0u8; 256];
        let argv = StrList::build(argv, &mut buf).expect("argv fits");
        self.grant_as_consumed(id, credit, true);
        self.send(
            id,
            Body::Exec(ExecRequest {
                argv,
                env: StrList::EMPTY,
                cwd: "",
                timeout_ms,
                stdin: false,
                credit,
                token: 0,
            }),
        );
        id
    }

    /// Runs until the next message for `id` arrives and takes it.
    pub fn next(&mut self, id: u32) -> Got {
        let limit = Duration::from_secs(60);
        assert!(
            self.run_until(limit, |s| s.inbox.iter().any(|m| m.id == id)),
            "no message for request {id} within {limit:?}"
        );
        self.take(id).expect("a message for the request")
    }

    /// Takes the first message for `id` that has arrived, if any.
    pub fn take(&mut self, id: u32) -> Option<Got> {
        let at = self.inbox.iter().position(|m| m.id == id)?;
        self.inbox.remove(at).map(|m| m.got)
    }

    /// Runs a command to its end: its stdout, stderr and exit report.
    pub fn finish(&mut self, id: u32) -> (Vec<u8>, Vec<u8>, Got) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        loop {
            match self.next(id) {
                Got::Started => {}
                Got::Output(Stream::Stdout, d) => out.extend(d),
                Got::Output(Stream::Stderr, d) => err.extend(d),
                exit @ Got::Exit { .. } => return (out, err, exit),
                other => panic!("unexpected {other:?} for command {id}"),
            }
        }
    }

    /// Pushes `data` to `path` like the gateway does (resuming from what
    /// the device has, writing `chunk` bytes at a time under credit), and
    /// commits. Returns the final reply: `Ok`, or the error.
    pub fn push(&mut self, path: &str, data: &[u8], chunk: usize) -> Got {
        let id = self.id();
        self.push_as(id, path, data, chunk, usize::MAX)
    }

    /// [`push`](Self::push) with a request id, stopping (without commit)
    /// after `stop_after` bytes written; returns `Ok` at the stop.
    pub fn push_as(
        &mut self,
        id: u32,
        path: &str,
        data: &[u8],
        chunk: usize,
        stop_after: usize,
    ) -> Got {
        let sha256: [u8; 32] = Sha256::digest(data).into();
        self.send(
            id,
            Body::PutOpen(PutOpen {
                path,
                size: data.len() as u64,
                sha256,
                mode: 0o644,
            }),
        );
        let ready = match self.next(id) {
            Got::PutReady(r) => r,
            other => return other,
        };
        let mut offset = ready.have as usize;
        let mut credit = u64::from(ready.credit);
        let mut sent = 0;
        while offset < data.len() {
            if sent >= stop_after {
                return Got::Ok;
            }
            if credit == 0 {
                match self.next(id) {
                    Got::Credit(n) => credit += u64::from(n),
                    other => return other,
                }
                continue;
            }
            let n = chunk
                .min(credit as usize)
                .min(data.len() - offset)
                .min(stop_after - sent);
            self.send(
                id,
                Body::Write(Write {
                    offset: offset as u64,
                    data: &data[offset..offset + n],
                }),
            );
            offset += n;
            sent += n;
            credit -= n as u64;
            // Let the line move, as a real pusher's loop would.
            self.run_for(Duration::from_millis(1));
            if let Some(e @ Got::Error(..)) = self.take(id) {
                return e;
            }
        }
        self.send(id, Body::Commit);
        loop {
            match self.next(id) {
                Got::Credit(_) => {}
                other => return other,
            }
        }
    }

    /// Pulls a file from `offset` with `credit` kept outstanding; returns
    /// the bytes and the final hash reply, or the error.
    pub fn pull(
        &mut self,
        path: &str,
        offset: u64,
        credit: u32,
    ) -> Result<(Vec<u8>, FileHash), Got> {
        let id = self.id();
        self.grant_as_consumed(id, credit, true);
        self.send(
            id,
            Body::Get(Get {
                path,
                offset,
                credit,
            }),
        );
        let mut data = Vec::new();
        loop {
            match self.next(id) {
                Got::Data(at, d) => {
                    assert_eq!(
                        at,
                        offset + data.len() as u64,
                        "data arrives in order, without gaps"
                    );
                    data.extend(d);
                }
                Got::Hash(h) => return Ok((data, h)),
                other => return Err(other),
            }
        }
    }

    /// Runs for `d` of simulated time.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        self.run_until(d, |s| s.now >= end);
    }

    /// Runs until `done` holds or `limit` of simulated time passed; true if
    /// `done` held.
    pub fn run_until(&mut self, limit: Duration, done: impl Fn(&Sim) -> bool) -> bool {
        let end = self.now + limit;
        loop {
            // Check right after the round's work, before the clock moves on,
            // so that a test can act at the very moment something happened.
            let sent = self.turn();
            if done(self) {
                return true;
            }
            if self.now > end {
                return false;
            }
            self.advance(sent);
        }
    }

    /// One round at the current time: deliver, poll both ends, transmit
    /// (as `corral_protocol::sim::run_pair` does, but keeping the clock
    /// between calls). True if anything was put on a line.
    fn turn(&mut self) -> bool {
        let now = self.now;
        let mut inbox = Vec::new();
        self.up.deliver(now, &mut inbox);
        if !inbox.is_empty() {
            self.agent.receive(now, &inbox);
        }
        inbox.clear();
        self.down.deliver(now, &mut inbox);
        if !inbox.is_empty() {
            self.gw.receive(now, &inbox);
        }
        self.agent.poll(now);
        self.drain_gateway();
        if self.agent.platform().resets as usize > self.resets.len() {
            let id = self.reset_request;
            let had_ok = self
                .log
                .iter()
                .any(|m| Some(m.id) == id && m.got == Got::Ok);
            self.resets.push(had_ok);
        }
        let mut sent = false;
        if self.down.idle(now) {
            let n = self.agent.poll_transmit(now, &mut self.buf);
            if n > 0 {
                self.down.send(now, &self.buf[..n]);
                sent = true;
            }
        }
        if self.up.idle(now) {
            let n = self.gw.poll_transmit(now, &mut self.buf);
            if n > 0 {
                self.up.send(now, &self.buf[..n]);
                sent = true;
            }
        }
        sent
    }

    /// Moves the clock to the next thing that can happen.
    fn advance(&mut self, sent: bool) {
        let now = self.now;
        let mut next: Option<Instant> = None;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                let t = t.max(now);
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        consider(self.up.next_delivery());
        consider(self.down.next_delivery());
        consider(
            self.agent
                .poll_timeout()
                .map(|t| t.max(self.down.idle_at())),
        );
        consider(self.gw.poll_timeout().map(|t| t.max(self.up.idle_at())));
        let t = next.unwrap_or(now + Duration::from_millis(100));
        self.now = if t <= now && !sent {
            now + Duration::from_micros(1)
        } else {
            t.max(now)
        };
    }

    fn drain_gateway(&mut self) {
        let mut credits = Vec::new();
        while let Some(ev) = self.gw.poll_event() {
            match ev {
                Event::Connected(info) => self.session = Some(info),
                Event::PeerReset => self.peer_resets += 1,
                Event::Message(bytes) => {
                    let env =
                        Envelope::decode(bytes).expect("the device sends only valid messages");
                    let got = Got::from_body(&env.body);
                    let len = match &got {
                        Got::Output(_, d) | Got::Data(_, d) => Some(d.len() as u64),
                        _ => None,
                    };
                    if let (Some(len), Some(ledger)) = (len, self.ledgers.get_mut(&env.id)) {
                        ledger.received += len;
                        assert!(
                            ledger.received <= ledger.granted,
                            "request {} got {} bytes with only {} granted",
                            env.id,
                            ledger.received,
                            ledger.granted
                        );
                        if ledger.refill && len > 0 {
                            ledger.granted += len;
                            credits.push((env.id, len as u32));
                        }
                    }
                    let msg = Msg {
                        id: env.id,
                        got,
                        at: self.now,
                    };
                    self.log.push(msg.clone());
                    self.inbox.push_back(msg);
                }
                _ => {}
            }
        }
        for (id, n) in credits {
            self.send(id, Body::Credit(n));
        }
    }
}

/// Hex of a SHA-256, as the `hash` command prints it.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Test content that is not all one byte.
pub fn content(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}
