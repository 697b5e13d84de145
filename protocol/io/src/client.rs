//! The host side of a device session: request multiplexing and the
//! operations a gateway or the CLI performs (exec, push, pull, …).
//!
//! A [`DeviceClient`] sits on a link driver. A pump task reads link events,
//! introduces itself after every (re)connect (`Hello` → `DeviceInfo`), and
//! routes each incoming message by request id to the request waiting for it.
//! When the peer resets or the link closes, every request in flight fails
//! with a [`ClientError`] that says so — an infrastructure error, never a
//! test failure.

use crate::driver::{LinkEvent, LinkReceiver, LinkSendError, LinkSender};
use corral_protocol::credit::{ReceiveCredit, SendCredit};
use corral_protocol::message::{
    Body, DecodeError, Envelope, ErrorCode, ExecRequest, ExitReason, FileKind, FileStat, Get,
    HostHello, Limits, PutOpen, StrList, Stream, Write,
};
use corral_protocol::LinkStats;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{broadcast, mpsc, watch};

/// Credit granted for command output and pulls: enough to keep a fast link
/// busy, small enough to bound memory per request.
pub const STREAM_CREDIT: u32 = 256 * 1024;

/// Why a request failed for reasons other than the device's answer.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ClientError {
    /// The device restarted while the request ran.
    #[error("the device restarted (link reset) while the request was running")]
    PeerReset,
    /// The link closed.
    #[error("the link to the device closed{}", .0.as_deref().map(|e| format!(": {e}")).unwrap_or_default())]
    Closed(Option<String>),
    /// The device did not answer in time.
    #[error("the device did not answer within {0:?}")]
    Timeout(Duration),
    /// The device answered with an error.
    #[error("{message} ({code})")]
    Device {
        /// The code.
        code: ErrorCode,
        /// Its message.
        message: String,
    },
    /// The device does not support the request.
    #[error("the device does not support this request (message kind {0})")]
    Unsupported(u32),
    /// The device answered something that makes no sense here.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A local file could not be read or written.
    #[error("{0}")]
    Local(String),
    /// The handshake was refused.
    #[error("{0}")]
    Rejected(String),
}

impl ClientError {
    /// True if this is an infrastructure failure (link, reset, timeout of
    /// the link) rather than a device's answer to the request.
    pub fn is_infrastructure(&self) -> bool {
        matches!(
            self,
            ClientError::PeerReset
                | ClientError::Closed(_)
                | ClientError::Timeout(_)
                | ClientError::Protocol(_)
                | ClientError::Rejected(_)
        )
    }
}

impl From<LinkSendError> for ClientError {
    fn from(e: LinkSendError) -> Self {
        match e {
            LinkSendError::Closed => ClientError::Closed(None),
            e @ LinkSendError::TooLarge { .. } => ClientError::Protocol(e.to_string()),
        }
    }
}

/// A device's identity, owned.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceIdentity {
    /// Name it gives itself.
    pub name: String,
    /// Board or machine type.
    pub board: String,
    /// Serial number.
    pub serial: String,
    /// Firmware or agent version.
    pub firmware: String,
    /// Changes at every boot.
    pub boot_id: u32,
    /// Its limits.
    pub limits: Limits,
    /// Built-in commands (empty: runs any program).
    pub commands: Vec<String>,
}

/// Where the session stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionState {
    /// Waiting for the link handshake and the device's identity.
    Connecting,
    /// Ready for requests.
    Ready(Box<DeviceIdentity>),
    /// The device stopped answering (requests wait; it may come back).
    Unresponsive,
    /// The handshake was refused (incompatible versions).
    Rejected(String),
    /// The link is gone.
    Closed(Option<String>),
}

/// An owned reply routed to a request.
#[derive(Debug, Clone)]
enum Reply {
    Started(u32),
    Output(Stream, Vec<u8>),
    Exit(ExitInfo),
    PutReady { have: u64, credit: u32 },
    Credit(u32),
    Data { offset: u64, data: Vec<u8> },
    Hash { size: u64, sha256: [u8; 32] },
    Stat(FileStat),
    Entry(String, FileStat),
    Ok,
    Pong(u64),
    Failed(ClientError),
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitInfo {
    /// How.
    pub reason: ExitReason,
    /// Exit code.
    pub code: i32,
    /// Signal, 0 if none.
    pub signal: u8,
    /// Run time on the device.
    pub duration: Duration,
    /// Output bytes lost while the link was down.
    pub output_dropped: u64,
    /// Explanation.
    pub detail: String,
}

impl ExitInfo {
    /// The exit status a shell would report: the code, or 128 + signal.
    pub fn shell_status(&self) -> i32 {
        match self.reason {
            ExitReason::Exited => self.code,
            _ if self.signal != 0 => 128 + i32::from(self.signal),
            _ => 128 + 9,
        }
    }
}

struct Inner {
    sender: LinkSender,
    next_id: AtomicU32,
    routes: Mutex<HashMap<u32, mpsc::UnboundedSender<Reply>>>,
    state: watch::Sender<SessionState>,
    console: broadcast::Sender<Vec<u8>>,
    logs: broadcast::Sender<String>,
    host_name: String,
    identity: Mutex<Option<DeviceIdentity>>,
    /// Dropped with the last client: tells the pump to stop, which drops
    /// the link receiver and so closes the transport.
    _closing: tokio::sync::oneshot::Sender<()>,
}

/// A session with one device over one link. Cheap to clone.
#[derive(Clone)]
pub struct DeviceClient {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl DeviceClient {
    /// Starts a session on a link driver. `host_name` is how this side
    /// introduces itself.
    pub fn new(sender: LinkSender, receiver: LinkReceiver, host_name: &str) -> Self {
        let (state, _) = watch::channel(SessionState::Connecting);
        let (console, _) = broadcast::channel(256);
        let (logs, _) = broadcast::channel(256);
        let (closing, closed) = tokio::sync::oneshot::channel();
        let inner = Arc::new(Inner {
            sender,
            next_id: AtomicU32::new(1),
            routes: Mutex::new(HashMap::new()),
            state,
            console,
            logs,
            host_name: host_name.to_string(),
            identity: Mutex::new(None),
            _closing: closing,
        });
        tokio::spawn(pump(Arc::downgrade(&inner), receiver, closed));
        DeviceClient { inner }
    }

    /// Watches the session state.
    pub fn state(&self) -> watch::Receiver<SessionState> {
        self.inner.state.subscribe()
    }

    /// Console text from the device's line (boot banners, panics).
    pub fn console(&self) -> broadcast::Receiver<Vec<u8>> {
        self.inner.console.subscribe()
    }

    /// Device log lines.
    pub fn logs(&self) -> broadcast::Receiver<String> {
        self.inner.logs.subscribe()
    }

    /// Link counters.
    pub fn link_stats(&self) -> LinkStats {
        self.inner.sender.stats()
    }

    /// The device's identity once ready.
    pub fn identity(&self) -> Option<DeviceIdentity> {
        match &*self.inner.state.borrow() {
            SessionState::Ready(id) => Some((**id).clone()),
            _ => None,
        }
    }

    /// Waits until the session is ready and returns the device's identity.
    pub async fn ready(&self, timeout: Duration) -> Result<DeviceIdentity, ClientError> {
        let mut rx = self.state();
        let wait = async {
            loop {
                match &*rx.borrow_and_update() {
                    SessionState::Ready(id) => return Ok((**id).clone()),
                    SessionState::Rejected(r) => return Err(ClientError::Rejected(r.clone())),
                    SessionState::Closed(e) => return Err(ClientError::Closed(e.clone())),
                    _ => {}
                }
                if rx.changed().await.is_err() {
                    return Err(ClientError::Closed(None));
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| ClientError::Timeout(timeout))?
    }

    fn open(&self) -> (u32, mpsc::UnboundedReceiver<Reply>) {
        let mut id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        if id == 0 {
            id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        }
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.inner.routes).insert(id, tx);
        (id, rx)
    }

    fn close(&self, id: u32) {
        lock(&self.inner.routes).remove(&id);
    }

    async fn send(&self, id: u32, body: Body<'_>) -> Result<(), ClientError> {
        self.inner
            .sender
            .send_envelope(&Envelope::new(id, body))
            .await
            .map_err(ClientError::from)
    }

    /// Largest data payload per message: the peer's limit minus room for
    /// the envelope and message header.
    fn chunk_size(&self) -> usize {
        self.inner
            .sender
            .max_message()
            .saturating_sub(32)
            .clamp(32, 60 * 1024)
    }

    async fn simple(&self, body: Body<'_>, timeout: Duration) -> Result<Reply, ClientError> {
        let (id, mut rx) = self.open();
        let r = async {
            self.send(id, body).await?;
            next(&mut rx, timeout).await
        }
        .await;
        self.close(id);
        match r? {
            Reply::Failed(e) => Err(e),
            other => Ok(other),
        }
    }

    /// Round trip of a ping; returns its duration.
    pub async fn ping(&self, timeout: Duration) -> Result<Duration, ClientError> {
        let t = tokio::time::Instant::now();
        let nonce: u64 = rand::random();
        match self.simple(Body::Ping(nonce), timeout).await? {
            Reply::Pong(n) if n == nonce => Ok(t.elapsed()),
            other => Err(unexpected(&other)),
        }
    }

    /// Facts about a path.
    pub async fn stat(&self, path: &str, timeout: Duration) -> Result<FileStat, ClientError> {
        match self.simple(Body::Stat(path), timeout).await? {
            Reply::Stat(s) => Ok(s),
            other => Err(unexpected(&other)),
        }
    }

    /// Removes a file or empty directory.
    pub async fn remove(&self, path: &str, timeout: Duration) -> Result<(), ClientError> {
        match self.simple(Body::Remove(path), timeout).await? {
            Reply::Ok => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Size and SHA-256 of a file.
    pub async fn hash(
        &self,
        path: &str,
        timeout: Duration,
    ) -> Result<(u64, [u8; 32]), ClientError> {
        match self.simple(Body::Hash(path), timeout).await? {
            Reply::Hash { size, sha256 } => Ok((size, sha256)),
            other => Err(unexpected(&other)),
        }
    }

    /// Asks the device to restart. Returns once it acknowledged; the session
    /// then resets and reconnects.
    pub async fn reset(&self, timeout: Duration) -> Result<(), ClientError> {
        match self.simple(Body::Reset, timeout).await {
            Ok(Reply::Ok) => Ok(()),
            // The reset may beat the reply.
            Err(ClientError::PeerReset) => Ok(()),
            Ok(other) => Err(unexpected(&other)),
            Err(e) => Err(e),
        }
    }

    /// Lists a directory.
    pub async fn list(
        &self,
        path: &str,
        timeout: Duration,
    ) -> Result<Vec<(String, FileStat)>, ClientError> {
        let (id, mut rx) = self.open();
        let r = async {
            self.send(id, Body::List(path)).await?;
            let mut out = Vec::new();
            loop {
                match next(&mut rx, timeout).await? {
                    Reply::Entry(name, stat) => out.push((name, stat)),
                    Reply::Ok => return Ok(out),
                    Reply::Failed(e) => return Err(e),
                    other => return Err(unexpected(&other)),
                }
            }
        }
        .await;
        self.close(id);
        r
    }

    /// Starts a command.
    pub async fn exec(&self, opts: &ExecOptions) -> Result<ExecHandle, ClientError> {
        let (id, rx) = self.open();
        let mut argv = vec![0u8; opts.argv.iter().map(|a| a.len() + 1).sum::<usize>()];
        let mut env = vec![
            0u8;
            opts.env
                .iter()
                .map(|(k, v)| k.len() + v.len() + 2)
                .sum::<usize>()
        ];
        let argv_list = StrList::build(&opts.argv, &mut argv)
            .ok_or_else(|| ClientError::Local("argv items must not contain NUL bytes".into()))?;
        let env_items: Vec<String> = opts.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let env_list = StrList::build(&env_items, &mut env).ok_or_else(|| {
            ClientError::Local("environment items must not contain NUL bytes".into())
        })?;
        let credit = ReceiveCredit::new(STREAM_CREDIT);
        let req = ExecRequest {
            argv: argv_list,
            env: env_list,
            cwd: &opts.cwd,
            timeout_ms: opts
                .timeout
                .map_or(0, |t| t.as_millis().clamp(1, u32::MAX as u128) as u32),
            stdin: opts.stdin,
            credit: credit.initial(),
            token: opts.token,
        };
        if let Err(e) = self.send(id, Body::Exec(req)).await {
            self.close(id);
            return Err(e);
        }
        Ok(ExecHandle {
            client: self.clone(),
            id,
            rx,
            credit,
            done: false,
        })
    }

    /// Re-attaches to a command started with a token, after the link was
    /// lost; its output continues from what the device kept.
    pub async fn attach(&self, token: u64) -> Result<ExecHandle, ClientError> {
        let (id, rx) = self.open();
        if let Err(e) = self.send(id, Body::Attach(token)).await {
            self.close(id);
            return Err(e);
        }
        Ok(ExecHandle {
            client: self.clone(),
            id,
            rx,
            credit: ReceiveCredit::new(STREAM_CREDIT),
            done: false,
        })
    }

    /// Pushes `size` bytes from `src` to `remote`, resuming what the device
    /// already holds of an interrupted push of the same content. `progress`
    /// is called with the bytes known to be on the device.
    // Each argument is a different fact of the push; a struct would only
    // rename them.
    #[allow(clippy::too_many_arguments)]
    pub async fn push<R>(
        &self,
        src: &mut R,
        size: u64,
        sha256: [u8; 32],
        remote: &str,
        mode: u32,
        opts: &TransferOptions,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<PushOutcome, ClientError>
    where
        R: AsyncRead + tokio::io::AsyncSeek + Unpin,
    {
        let (id, mut rx) = self.open();
        let r = self
            .push_inner(id, &mut rx, src, size, sha256, remote, mode, opts, progress)
            .await;
        if r.is_err() {
            // Stop the device's side; it keeps what it has for a resume.
            let _ = self
                .inner
                .sender
                .send_envelope(&Envelope::new(id, Body::Cancel))
                .await;
        }
        self.close(id);
        r
    }

    #[allow(clippy::too_many_arguments)]
    async fn push_inner<R>(
        &self,
        id: u32,
        rx: &mut mpsc::UnboundedReceiver<Reply>,
        src: &mut R,
        size: u64,
        sha256: [u8; 32],
        remote: &str,
        mode: u32,
        opts: &TransferOptions,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<PushOutcome, ClientError>
    where
        R: AsyncRead + tokio::io::AsyncSeek + Unpin,
    {
        self.send(
            id,
            Body::PutOpen(PutOpen {
                path: remote,
                size,
                sha256,
                mode,
            }),
        )
        .await?;
        let (have, credit) = match next(rx, opts.timeout).await? {
            Reply::PutReady { have, credit } => (have, credit),
            Reply::Failed(e) => return Err(e),
            other => return Err(unexpected(&other)),
        };
        if have > size {
            return Err(ClientError::Protocol(format!(
                "device claims {have} bytes of a {size}-byte file"
            )));
        }
        let mut credit = SendCredit::new(credit);
        src.seek(std::io::SeekFrom::Start(have))
            .await
            .map_err(|e| ClientError::Local(format!("seeking the local file: {e}")))?;
        progress(have);
        let chunk = self.chunk_size();
        let mut buf = vec![0u8; chunk];
        let mut offset = have;
        while offset < size {
            // Wait for credit without blocking on replies that carry errors.
            while credit.available() == 0 {
                match next(rx, opts.timeout).await? {
                    Reply::Credit(n) => credit.grant(n),
                    Reply::Failed(e) => return Err(e),
                    other => return Err(unexpected(&other)),
                }
            }
            // Take credits that already arrived so the pipe stays full.
            while let Ok(r) = rx.try_recv() {
                match r {
                    Reply::Credit(n) => credit.grant(n),
                    Reply::Failed(e) => return Err(e),
                    other => return Err(unexpected(&other)),
                }
            }
            let want = (chunk as u64).min(size - offset) as usize;
            let n = credit.take(want);
            let got = read_full(src, &mut buf[..n])
                .await
                .map_err(|e| ClientError::Local(format!("reading the local file: {e}")))?;
            if got != n {
                return Err(ClientError::Local(format!(
                    "the local file ended after {} of {size} bytes (was it changed while pushing?)",
                    offset + got as u64
                )));
            }
            self.send(
                id,
                Body::Write(Write {
                    offset,
                    data: &buf[..n],
                }),
            )
            .await?;
            offset += n as u64;
            progress(offset);
        }
        self.send(id, Body::Commit).await?;
        loop {
            match next(rx, opts.commit_timeout).await? {
                Reply::Ok => {
                    return Ok(PushOutcome {
                        resumed_from: have,
                        sent: size - have,
                    })
                }
                Reply::Credit(_) => {}
                Reply::Failed(e) => return Err(e),
                other => return Err(unexpected(&other)),
            }
        }
    }

    /// Pulls `remote` from `offset` into `dst` (positioned at `offset`).
    /// Returns the whole file's size and SHA-256 as the device computed it.
    pub async fn pull<W>(
        &self,
        remote: &str,
        offset: u64,
        dst: &mut W,
        opts: &TransferOptions,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<(u64, [u8; 32]), ClientError>
    where
        W: AsyncWrite + Unpin,
    {
        let (id, mut rx) = self.open();
        let r = async {
            let mut credit = ReceiveCredit::new(STREAM_CREDIT);
            self.send(
                id,
                Body::Get(Get {
                    path: remote,
                    offset,
                    credit: credit.initial(),
                }),
            )
            .await?;
            let mut at = offset;
            loop {
                match next(&mut rx, opts.timeout).await? {
                    Reply::Data { offset: o, data } => {
                        if o != at {
                            return Err(ClientError::Protocol(format!(
                                "pull data at offset {o}, expected {at}"
                            )));
                        }
                        if !credit.received(data.len()) {
                            return Err(ClientError::Protocol(
                                "device sent more than its credit".into(),
                            ));
                        }
                        dst.write_all(&data).await.map_err(|e| {
                            ClientError::Local(format!("writing the local file: {e}"))
                        })?;
                        at += data.len() as u64;
                        progress(at);
                        if let Some(g) = credit.consumed(data.len()) {
                            self.send(id, Body::Credit(g)).await?;
                        }
                    }
                    Reply::Hash { size, sha256 } => {
                        dst.flush().await.map_err(|e| {
                            ClientError::Local(format!("writing the local file: {e}"))
                        })?;
                        if size != at {
                            return Err(ClientError::Protocol(format!(
                                "device says the file has {size} bytes but sent up to {at}"
                            )));
                        }
                        return Ok((size, sha256));
                    }
                    Reply::Failed(e) => return Err(e),
                    other => return Err(unexpected(&other)),
                }
            }
        }
        .await;
        if r.is_err() {
            let _ = self
                .inner
                .sender
                .send_envelope(&Envelope::new(id, Body::Cancel))
                .await;
        }
        self.close(id);
        r
    }
}

async fn read_full<R: AsyncRead + Unpin>(r: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        let k = r.read(&mut buf[n..]).await?;
        if k == 0 {
            break;
        }
        n += k;
    }
    Ok(n)
}

/// Timeouts of a file transfer.
#[derive(Debug, Clone)]
pub struct TransferOptions {
    /// Longest wait for any answer while transferring (credit, data).
    pub timeout: Duration,
    /// Longest wait for the commit (the device hashes the whole file).
    pub commit_timeout: Duration,
}

impl Default for TransferOptions {
    fn default() -> Self {
        TransferOptions {
            timeout: Duration::from_secs(30),
            commit_timeout: Duration::from_secs(120),
        }
    }
}

/// What a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushOutcome {
    /// Bytes the device already had (0 for a fresh push).
    pub resumed_from: u64,
    /// Bytes sent now.
    pub sent: u64,
}

/// How to run a command.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Environment additions.
    pub env: Vec<(String, String)>,
    /// Working directory on the device ("" for the default).
    pub cwd: String,
    /// Killed on the device after this long.
    pub timeout: Option<Duration>,
    /// Stdin will be sent.
    pub stdin: bool,
    /// Non-zero: lets [`DeviceClient::attach`] find it after a lost link.
    pub token: u64,
}

/// What a running command reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecEvent {
    /// It started, with this process id (0 if none).
    Started(u32),
    /// Standard output.
    Stdout(Vec<u8>),
    /// Standard error.
    Stderr(Vec<u8>),
    /// It ended. Nothing follows.
    Exit(ExitInfo),
}

/// A running command.
pub struct ExecHandle {
    client: DeviceClient,
    id: u32,
    rx: mpsc::UnboundedReceiver<Reply>,
    credit: ReceiveCredit,
    done: bool,
}

impl ExecHandle {
    /// The request id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The next event; after [`ExecEvent::Exit`] or an error, `None`.
    /// `silence` bounds the wait when the link is quiet; the command's own
    /// timeout is enforced on the device.
    pub async fn next(&mut self, silence: Duration) -> Option<Result<ExecEvent, ClientError>> {
        if self.done {
            return None;
        }
        let r = match next(&mut self.rx, silence).await {
            Ok(r) => r,
            Err(e) => {
                self.done = true;
                return Some(Err(e));
            }
        };
        let ev = match r {
            Reply::Started(pid) => ExecEvent::Started(pid),
            Reply::Output(stream, data) => {
                if !self.credit.received(data.len()) {
                    self.done = true;
                    return Some(Err(ClientError::Protocol(
                        "device sent more output than its credit".into(),
                    )));
                }
                if let Some(g) = self.credit.consumed(data.len()) {
                    if let Err(e) = self.client.send(self.id, Body::Credit(g)).await {
                        self.done = true;
                        return Some(Err(e));
                    }
                }
                match stream {
                    Stream::Stdout => ExecEvent::Stdout(data),
                    Stream::Stderr => ExecEvent::Stderr(data),
                }
            }
            Reply::Exit(info) => {
                self.done = true;
                ExecEvent::Exit(info)
            }
            Reply::Failed(e) => {
                self.done = true;
                return Some(Err(e));
            }
            other => {
                self.done = true;
                return Some(Err(unexpected(&other)));
            }
        };
        Some(Ok(ev))
    }

    /// Asks the device to kill the command; its `Exit` (reason
    /// `Cancelled`) still arrives through [`next`](Self::next).
    pub async fn cancel(&self) -> Result<(), ClientError> {
        self.client.send(self.id, Body::Cancel).await
    }

    /// Sends bytes to the command's stdin.
    pub async fn write_stdin(&self, data: &[u8]) -> Result<(), ClientError> {
        for chunk in data.chunks(self.client.chunk_size()) {
            self.client.send(self.id, Body::Stdin(chunk)).await?;
        }
        Ok(())
    }

    /// Closes the command's stdin.
    pub async fn close_stdin(&self) -> Result<(), ClientError> {
        self.client.send(self.id, Body::StdinClose).await
    }
}

impl Drop for ExecHandle {
    fn drop(&mut self) {
        self.client.close(self.id);
    }
}

async fn next(
    rx: &mut mpsc::UnboundedReceiver<Reply>,
    timeout: Duration,
) -> Result<Reply, ClientError> {
    match tokio::time::timeout(timeout, rx.recv()).await {
        Ok(Some(r)) => Ok(r),
        Ok(None) => Err(ClientError::Closed(None)),
        Err(_) => Err(ClientError::Timeout(timeout)),
    }
}

fn unexpected(r: &Reply) -> ClientError {
    ClientError::Protocol(format!("unexpected reply {r:?}"))
}

/// Reads link events until the link closes or the client is dropped.
async fn pump(
    inner: std::sync::Weak<Inner>,
    mut rx: LinkReceiver,
    mut closed: tokio::sync::oneshot::Receiver<()>,
) {
    let mut hello_id = None;
    loop {
        let ev = tokio::select! {
            ev = rx.recv() => match ev {
                Some(ev) => ev,
                None => return,
            },
            // The last DeviceClient is gone: close the link.
            _ = &mut closed => return,
        };
        let Some(inner) = inner.upgrade() else { return };
        match ev {
            LinkEvent::Connected(_) => {
                let id = inner.next_id.fetch_add(1, Ordering::Relaxed).max(1);
                hello_id = Some(id);
                let hello = Body::Hello(HostHello {
                    name: &inner.host_name,
                    software: concat!("corral ", env!("CARGO_PKG_VERSION")),
                });
                let sender = inner.sender.clone();
                let msg = encode(&Envelope::new(id, hello));
                tokio::spawn(async move {
                    let _ = sender.send(msg).await;
                });
            }
            LinkEvent::PeerReset | LinkEvent::ProtocolViolation => {
                fail_all(&inner, ClientError::PeerReset);
                inner.state.send_replace(SessionState::Connecting);
            }
            LinkEvent::Down => {
                inner.state.send_replace(SessionState::Unresponsive);
            }
            LinkEvent::Up => {
                // Back with the same session: nothing was lost.
                let known = lock(&inner.identity).clone();
                if let Some(id) = known {
                    inner.state.send_replace(SessionState::Ready(Box::new(id)));
                }
            }
            LinkEvent::Rejected(r) => {
                fail_all(&inner, ClientError::Rejected(r.to_string()));
                inner
                    .state
                    .send_replace(SessionState::Rejected(r.to_string()));
            }
            LinkEvent::Console(text) => {
                let _ = inner.console.send(text);
            }
            LinkEvent::Message(bytes) => on_message(&inner, &bytes, &mut hello_id),
            LinkEvent::Closed(e) => {
                let why = e.map(|e| e.to_string());
                fail_all(&inner, ClientError::Closed(why.clone()));
                inner.state.send_replace(SessionState::Closed(why));
                return;
            }
        }
    }
}

fn encode(env: &Envelope<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; 1024];
    let n = env.encode(&mut buf).unwrap_or(0);
    buf.truncate(n);
    buf
}

fn fail_all(inner: &Inner, e: ClientError) {
    let routes: Vec<_> = lock(&inner.routes).drain().collect();
    for (_, tx) in routes {
        let _ = tx.send(Reply::Failed(e.clone()));
    }
}

fn on_message(inner: &Inner, bytes: &[u8], hello_id: &mut Option<u32>) {
    let env = match Envelope::decode(bytes) {
        Ok(env) => env,
        Err(DecodeError::UnknownKind { id, kind }) | Err(DecodeError::BadBody { id, kind }) => {
            tracing::warn!(id, kind, "undecodable message from the device");
            route(
                inner,
                id,
                Reply::Failed(ClientError::Protocol(format!(
                    "undecodable reply of kind {kind}"
                ))),
            );
            return;
        }
        Err(DecodeError::Malformed) => {
            tracing::warn!("malformed message from the device");
            return;
        }
    };
    let reply = match env.body {
        Body::DeviceInfo(d) => {
            let id = DeviceIdentity {
                name: d.name.to_string(),
                board: d.board.to_string(),
                serial: d.serial.to_string(),
                firmware: d.firmware.to_string(),
                boot_id: d.boot_id,
                limits: d.limits,
                commands: d.commands.iter().map(str::to_string).collect(),
            };
            if *hello_id == Some(env.id) {
                *hello_id = None;
            }
            *lock(&inner.identity) = Some(id.clone());
            inner.state.send_replace(SessionState::Ready(Box::new(id)));
            return;
        }
        Body::Log(l) => {
            let _ = inner.logs.send(l.text.to_string());
            return;
        }
        Body::Pong(n) => Reply::Pong(n),
        Body::Started(s) => Reply::Started(s.pid),
        Body::Output(o) => Reply::Output(o.stream, o.data.to_vec()),
        Body::Exit(x) => Reply::Exit(ExitInfo {
            reason: x.reason,
            code: x.code,
            signal: x.signal,
            duration: Duration::from_millis(x.duration_ms),
            output_dropped: x.output_dropped,
            detail: x.detail.to_string(),
        }),
        Body::PutReady(p) => Reply::PutReady {
            have: p.have,
            credit: p.credit,
        },
        Body::Credit(n) => Reply::Credit(n),
        Body::Data(d) => Reply::Data {
            offset: d.offset,
            data: d.data.to_vec(),
        },
        Body::HashReply(h) => Reply::Hash {
            size: h.size,
            sha256: h.sha256,
        },
        Body::StatReply(s) => Reply::Stat(s),
        Body::Entry(e) => Reply::Entry(e.name.to_string(), e.stat),
        Body::Ok => Reply::Ok,
        Body::Error(e) => Reply::Failed(ClientError::Device {
            code: e.code,
            message: e.message.to_string(),
        }),
        Body::Unsupported(kind) => Reply::Failed(ClientError::Unsupported(kind)),
        other => Reply::Failed(ClientError::Protocol(format!(
            "a device sent a request: kind {}",
            other.kind()
        ))),
    };
    let last = matches!(reply, Reply::Exit(_) | Reply::Failed(_));
    route(inner, env.id, reply);
    if last {
        lock(&inner.routes).remove(&env.id);
    }
}

fn route(inner: &Inner, id: u32, reply: Reply) {
    let tx = lock(&inner.routes).get(&id).cloned();
    match tx {
        Some(tx) => {
            let _ = tx.send(reply);
        }
        None => tracing::debug!(id, "reply for a request nobody waits for"),
    }
}

/// A file's kind as a word.
pub fn kind_name(k: FileKind) -> &'static str {
    match k {
        FileKind::File => "file",
        FileKind::Dir => "dir",
        FileKind::Symlink => "symlink",
        FileKind::Other => "other",
    }
}
