//! Transports: where links come from, and what happens when they go.
//!
//! - **TCP** ([`TcpServer`]): listens; every connection must pass the
//!   challenge–response of the pre-shared key (when one is configured) before
//!   a single protocol byte is read. One gateway session at a time: a new
//!   authenticated connection replaces the current one, whose commands detach
//!   as when a link is lost (see `session`). A peer that fails authentication
//!   is disconnected and logged with its address.
//! - **Serial** ([`serve_serial`]): opens the port exclusively and serves it;
//!   when it fails (a USB gadget port disappears when the cable is pulled) it
//!   is reopened with a backoff from 250 ms up to 5 s.
//! - **Stdio** ([`serve_stdio`]): standard input and output are the link
//!   (`ssh board corral-agent --root … --stdio`). When standard input ends
//!   the gateway is gone for good, so serving ends.
//!
//! The built-in reset restarts the link on the same transport, so the
//! transport is shared between successive links ([`SharedIo`]).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use corral_io::driver::spawn_link;
use corral_io::transport::{authenticate_as_server, open_serial, SerialSettings};
use corral_protocol::auth::Key;
use corral_protocol::Config;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;

use crate::agent::Agent;
use crate::session::{serve_link, LinkEnd};

/// Connections that may be in authentication at once; more are closed at
/// once, so a flood of idle connections cannot exhaust the agent.
pub const MAX_PENDING_AUTH: usize = 8;

/// Shortest and longest wait before reopening a serial port.
const SERIAL_BACKOFF: (Duration, Duration) = (Duration::from_millis(250), Duration::from_secs(5));

/// A port that stayed open this long was working: its next failure starts
/// the backoff afresh.
const SERIAL_HEALTHY: Duration = Duration::from_secs(10);

/// A byte stream shared by successive links on one transport.
///
/// The link driver owns its transport and drops it when the link ends; a
/// reset must restart the link without closing the TCP connection or the
/// serial port. Each link gets its own handle from [`renew`](Self::renew);
/// every read or write locks the stream for the duration of one
/// non-blocking poll.
///
/// Renewing retires the previous handles: they read end-of-file and fail to
/// write from then on, and a read that was waiting on them is woken so it
/// sees that at once. This matters because the driver of a link that was
/// dropped may leave its reading task behind, parked on the stream; without
/// this it would either steal the next bytes meant for the new link or stay
/// parked forever, keeping the port open.
#[derive(Debug)]
pub struct SharedIo<T> {
    shared: Arc<Shared<T>>,
    epoch: u64,
}

#[derive(Debug)]
struct Shared<T> {
    io: Mutex<T>,
    /// The epoch of the handle in use; older handles are retired.
    current: std::sync::atomic::AtomicU64,
    /// Tasks parked on a read of the current handle.
    readers: Mutex<Vec<std::task::Waker>>,
}

impl<T> SharedIo<T> {
    /// Shares `io`.
    pub fn new(io: T) -> Self {
        SharedIo {
            shared: Arc::new(Shared {
                io: Mutex::new(io),
                current: std::sync::atomic::AtomicU64::new(0),
                readers: Mutex::new(Vec::new()),
            }),
            epoch: 0,
        }
    }

    /// A new handle for the next link; every earlier handle is retired.
    pub fn renew(&self) -> Self {
        let epoch = self
            .shared
            .current
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        let parked = std::mem::take(&mut *lock(&self.shared.readers));
        for waker in parked {
            waker.wake();
        }
        SharedIo {
            shared: Arc::clone(&self.shared),
            epoch,
        }
    }

    fn retired(&self) -> bool {
        self.shared
            .current
            .load(std::sync::atomic::Ordering::SeqCst)
            != self.epoch
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, T> {
        lock(&self.shared.io)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SharedIo<TcpStream> {
    /// Shuts the connection down in both directions, whoever still holds a
    /// handle: the peer sees the close at once.
    pub fn shutdown(&self) {
        let guard = self.lock();
        if let Err(err) = rustix::net::shutdown(&*guard, rustix::net::Shutdown::Both) {
            tracing::debug!(%err, "shutting a connection down");
        }
    }
}

fn retired_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "this link was replaced on its transport",
    )
}

impl<T: AsyncRead + Unpin> AsyncRead for SharedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.retired() {
            // End of file for the link that was replaced.
            return Poll::Ready(Ok(()));
        }
        let polled = Pin::new(&mut *self.lock()).poll_read(cx, buf);
        if polled.is_pending() {
            let mut readers = lock(&self.shared.readers);
            if !readers.iter().any(|w| w.will_wake(cx.waker())) {
                readers.push(cx.waker().clone());
            }
            drop(readers);
            // Renewed between the check above and the registration: do not
            // sleep through it.
            if self.retired() {
                return Poll::Ready(Ok(()));
            }
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for SharedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.retired() {
            return Poll::Ready(Err(retired_error()));
        }
        Pin::new(&mut *self.lock()).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.retired() {
            return Poll::Ready(Err(retired_error()));
        }
        Pin::new(&mut *self.lock()).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.retired() {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut *self.lock()).poll_shutdown(cx)
    }
}

/// Serves links on `io` until the transport closes or `stop` turns true;
/// restarts the link after a reset. Returns why it stopped.
async fn serve_transport<T>(
    agent: &Arc<Agent>,
    io: &SharedIo<T>,
    cfg: &Config,
    stop: &watch::Receiver<bool>,
) -> LinkEnd
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    loop {
        let (tx, rx) = spawn_link(io.renew(), cfg.clone(), corral_io::new_session_id());
        let mut stop = stop.clone();
        let stop_link = async move { stopped(&mut stop).await };
        match serve_link(Arc::clone(agent), tx, rx, stop_link).await {
            LinkEnd::Reset => {
                tracing::info!("reset done; restarting the link with a new session");
                continue;
            }
            end => return end,
        }
    }
}

/// Completes once `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns must not live across an await.
    let _ = stop.wait_for(|s| *s).await.map(|_| ());
}

/// A bound TCP listener.
#[derive(Debug)]
pub struct TcpServer {
    listener: TcpListener,
    key: Option<Arc<Key>>,
}

struct Current {
    peer: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Current {
    async fn stop(self) {
        self.stop.send_replace(true);
        let _ = self.task.await;
    }
}

impl TcpServer {
    /// Binds `addr`. Connections must prove they know `key` when one is
    /// given.
    pub async fn bind(addr: SocketAddr, key: Option<Key>) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        Ok(TcpServer {
            listener,
            key: key.map(Arc::new),
        })
    }

    /// The address actually bound (port 0 picks a free port).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts and serves gateways until `stop` turns true.
    pub async fn run(self, agent: Arc<Agent>, mut stop: watch::Receiver<bool>) {
        let (authed_tx, mut authed_rx) = mpsc::channel::<(TcpStream, SocketAddr)>(1);
        let auth_slots = Arc::new(Semaphore::new(MAX_PENDING_AUTH));
        let mut current: Option<Current> = None;
        loop {
            tokio::select! {
                () = stopped(&mut stop) => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let Ok(permit) = Arc::clone(&auth_slots).try_acquire_owned() else {
                            tracing::warn!(%peer, "too many connections waiting for authentication; closing this one");
                            continue;
                        };
                        let key = self.key.clone();
                        let authed = authed_tx.clone();
                        tokio::spawn(async move {
                            let _permit = permit;
                            if let Some(stream) = authenticate(stream, peer, key.as_deref()).await {
                                let _ = authed.send((stream, peer)).await;
                            }
                        });
                    }
                    Err(err) => {
                        // Out of file descriptors and the like: wait instead
                        // of spinning on the error.
                        tracing::warn!(%err, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some((stream, peer)) = authed_rx.recv() => {
                    if let Some(old) = current.take() {
                        tracing::info!(%peer, old = %old.peer, "a new gateway connection replaces the current one");
                        old.stop().await;
                    }
                    tracing::info!(%peer, "gateway connected");
                    let (stop_tx, stop_rx) = watch::channel(false);
                    let task = tokio::spawn(serve_connection(Arc::clone(&agent), stream, peer, stop_rx));
                    current = Some(Current { peer, stop: stop_tx, task });
                }
            }
        }
        if let Some(current) = current.take() {
            current.stop().await;
        }
    }
}

/// Runs the challenge–response; `None` (after logging why) if the peer
/// failed it.
async fn authenticate(
    mut stream: TcpStream,
    peer: SocketAddr,
    key: Option<&Key>,
) -> Option<TcpStream> {
    // Acks and pings must not wait for Nagle.
    if let Err(err) = stream.set_nodelay(true) {
        tracing::debug!(%peer, %err, "cannot disable Nagle's algorithm");
    }
    let Some(key) = key else {
        return Some(stream);
    };
    let ctx = format!("gateway connection from {peer}");
    match authenticate_as_server(&mut stream, key, &ctx).await {
        Ok(()) => Some(stream),
        Err(err) => {
            tracing::warn!(%peer, "refused a connection that failed authentication: {err}");
            None
        }
    }
}

async fn serve_connection(
    agent: Arc<Agent>,
    stream: TcpStream,
    peer: SocketAddr,
    stop: watch::Receiver<bool>,
) {
    let io = SharedIo::new(stream);
    match serve_transport(&agent, &io, &Config::stream(), &stop).await {
        LinkEnd::Closed(Some(err)) => tracing::info!(%peer, %err, "gateway connection failed"),
        LinkEnd::Closed(None) => tracing::info!(%peer, "gateway disconnected"),
        LinkEnd::Stopped | LinkEnd::Reset => {}
    }
    io.shutdown();
    // Wake and retire whatever still reads the connection.
    drop(io.renew());
}

/// Serves a serial port until `stop` turns true, reopening it whenever it
/// fails.
pub async fn serve_serial(
    agent: Arc<Agent>,
    settings: SerialSettings,
    stop: watch::Receiver<bool>,
) {
    let mut backoff = SERIAL_BACKOFF.0;
    let mut last_error: Option<String> = None;
    loop {
        match open_serial(&settings) {
            Ok(port) => {
                tracing::info!(
                    port = settings.path,
                    baud = settings.baud,
                    "serial port open"
                );
                last_error = None;
                let opened = Instant::now();
                let io = SharedIo::new(port);
                let end = serve_transport(&agent, &io, &Config::serial(), &stop).await;
                // Retire the last link's reader so the port is closed before
                // it is opened again.
                drop(io.renew());
                match end {
                    LinkEnd::Stopped => return,
                    LinkEnd::Closed(err) => {
                        let why = err.map_or_else(|| "end of file".to_string(), |e| e.to_string());
                        tracing::warn!(
                            port = settings.path,
                            "serial port failed ({why}); reopening"
                        );
                    }
                    LinkEnd::Reset => {}
                }
                if opened.elapsed() >= SERIAL_HEALTHY {
                    backoff = SERIAL_BACKOFF.0;
                }
            }
            Err(err) => {
                let text = err.to_string();
                // Say it once, not every few seconds while a cable is out.
                if last_error.as_deref() != Some(text.as_str()) {
                    tracing::warn!("{text}; retrying until it opens");
                } else {
                    tracing::debug!("{text}; retrying in {backoff:?}");
                }
                last_error = Some(text);
            }
        }
        let mut stop_wait = stop.clone();
        tokio::select! {
            () = stopped(&mut stop_wait) => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(SERIAL_BACKOFF.1);
    }
}

/// Serves standard input and output until input ends or `stop` turns true.
pub async fn serve_stdio(agent: Arc<Agent>, stop: watch::Receiver<bool>) {
    let io = SharedIo::new(corral_io::transport::stdio());
    match serve_transport(&agent, &io, &Config::stream(), &stop).await {
        LinkEnd::Closed(Some(err)) => tracing::info!(%err, "standard input/output failed"),
        LinkEnd::Closed(None) => tracing::info!("standard input ended; the gateway is gone"),
        LinkEnd::Stopped | LinkEnd::Reset => {}
    }
}
