//! The link driver task.
//!
//! One task per link owns the [`Link`] and the writing half of the transport;
//! a second task only reads, so two peers that write at the same time over a
//! small buffer (a pty holds about 4 KiB) never deadlock waiting for each
//! other to read. The application talks to the driver through a bounded
//! channel of outgoing messages and a bounded channel of [`LinkEvent`]s: a
//! slow application stops draining events, the link's receive window fills
//! and the peer pauses — nothing is dropped and memory stays bounded.

use corral_protocol::link::{Rejection, SessionInfo};
use corral_protocol::{Config, Event, Instant, Link, LinkStats, SendError};
use std::io;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Segments in flight a host link tracks at most.
pub const HOST_SEGMENTS: usize = 128;

/// The link type hosts use.
pub type HostLink = Link<Vec<u8>, HOST_SEGMENTS>;

/// What the driver reports to the application.
#[derive(Debug)]
pub enum LinkEvent {
    /// The handshake completed; send away.
    Connected(SessionInfo),
    /// The peer restarted: everything in flight is lost. `Connected` follows.
    PeerReset,
    /// The peer went quiet (see [`Config::dead_after`]).
    Down,
    /// The peer answers again; nothing was lost.
    Up,
    /// The handshake was refused.
    Rejected(Rejection),
    /// The peer broke the protocol; the session restarts.
    ProtocolViolation,
    /// Text from the line that was not protocol (boot banners, printf).
    Console(Vec<u8>),
    /// One message.
    Message(Vec<u8>),
    /// The transport ended (EOF) or failed. The driver has stopped.
    Closed(Option<io::Error>),
}

impl LinkEvent {
    fn from_event(ev: Event<'_>) -> Self {
        match ev {
            Event::Connected(s) => LinkEvent::Connected(s),
            Event::PeerReset => LinkEvent::PeerReset,
            Event::Down => LinkEvent::Down,
            Event::Up => LinkEvent::Up,
            Event::Rejected(r) => LinkEvent::Rejected(r),
            Event::ProtocolViolation => LinkEvent::ProtocolViolation,
            Event::Console(t) => LinkEvent::Console(t.to_vec()),
            Event::Message(m) => LinkEvent::Message(m.to_vec()),
        }
    }
}

/// Sends messages to a link; cheap to clone.
#[derive(Clone)]
pub struct LinkSender {
    tx: mpsc::Sender<Vec<u8>>,
    shared: Arc<Shared>,
}

/// Why a message could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum LinkSendError {
    /// The driver stopped (transport closed).
    #[error("the link is closed")]
    Closed,
    /// The message is larger than the peer accepts.
    #[error("message of {len} bytes is larger than the peer accepts ({max})")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The peer's limit.
        max: usize,
    },
}

struct Shared {
    stats: Mutex<LinkStats>,
    max_message: Mutex<usize>,
    session: Mutex<Option<SessionInfo>>,
}

impl LinkSender {
    /// Queues one encoded message; waits while the link's send buffer is
    /// full (backpressure). Messages sent before the link connects wait for
    /// it.
    pub async fn send(&self, message: Vec<u8>) -> Result<(), LinkSendError> {
        let max = *lock(&self.shared.max_message);
        if max != 0 && message.len() > max {
            return Err(LinkSendError::TooLarge {
                len: message.len(),
                max,
            });
        }
        self.tx
            .send(message)
            .await
            .map_err(|_| LinkSendError::Closed)
    }

    /// Encodes and queues an envelope.
    pub async fn send_envelope(
        &self,
        env: &corral_protocol::Envelope<'_>,
    ) -> Result<(), LinkSendError> {
        let max = self
            .max_message()
            .max(corral_protocol::link::MIN_MESSAGE as usize);
        // Most messages are small; start small and grow rather than
        // allocate the peer's largest message for every ack and credit.
        let mut cap = 256.min(max);
        loop {
            let mut buf = vec![0u8; cap];
            if let Some(n) = env.encode(&mut buf) {
                buf.truncate(n);
                return self.send(buf).await;
            }
            if cap >= max {
                return Err(LinkSendError::TooLarge { len: max + 1, max });
            }
            cap = (cap * 8).min(max);
        }
    }

    /// Largest message the peer accepts; 0 before the first connection.
    pub fn max_message(&self) -> usize {
        *lock(&self.shared.max_message)
    }

    /// The current session, if connected.
    pub fn session(&self) -> Option<SessionInfo> {
        *lock(&self.shared.session)
    }

    /// Link counters, updated by the driver as it runs.
    pub fn stats(&self) -> LinkStats {
        *lock(&self.shared.stats)
    }

    /// True once the driver stopped.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Receives link events.
pub struct LinkReceiver {
    rx: mpsc::Receiver<LinkEvent>,
    task: JoinHandle<()>,
}

impl LinkReceiver {
    /// The next event; `None` after [`LinkEvent::Closed`] was delivered.
    pub async fn recv(&mut self) -> Option<LinkEvent> {
        self.rx.recv().await
    }
}

impl Drop for LinkReceiver {
    fn drop(&mut self) {
        // Nobody listens any more: stop the driver and close the transport.
        self.task.abort();
    }
}

/// Starts a driver for `io` with a new [`Link`] and returns the two ends the
/// application uses. Must be called inside a tokio runtime. Dropping the
/// receiver stops the driver.
pub fn spawn_link<T>(io: T, cfg: Config, session: u32) -> (LinkSender, LinkReceiver)
where
    T: AsyncRead + AsyncWrite + Send + 'static,
{
    let storage = vec![0u8; cfg.storage_len()];
    let start = tokio::time::Instant::now();
    let link = match Link::new(cfg, storage, session.max(1), Instant::ZERO) {
        Ok(l) => l,
        Err(e) => panic!("invalid link configuration: {e}"),
    };
    let (msg_tx, msg_rx) = mpsc::channel(4);
    let (ev_tx, ev_rx) = mpsc::channel(64);
    let shared = Arc::new(Shared {
        stats: Mutex::new(LinkStats::default()),
        max_message: Mutex::new(0),
        session: Mutex::new(None),
    });
    let driver = Driver {
        link,
        start,
        shared: shared.clone(),
        msg_rx,
        ev_tx,
        pending_msg: None,
        pending_ev: None,
    };
    let task = tokio::spawn(driver.run(io));
    (
        LinkSender { tx: msg_tx, shared },
        LinkReceiver { rx: ev_rx, task },
    )
}

struct Driver {
    link: HostLink,
    start: tokio::time::Instant,
    shared: Arc<Shared>,
    msg_rx: mpsc::Receiver<Vec<u8>>,
    ev_tx: mpsc::Sender<LinkEvent>,
    /// A message the link had no room for yet.
    pending_msg: Option<Vec<u8>>,
    /// An event the application had no room for yet.
    pending_ev: Option<LinkEvent>,
}

/// Read chunk size: a whole default stream frame, so a fast transport needs
/// few wake-ups.
const READ_CHUNK: usize = 64 * 1024;

impl Driver {
    fn now(&self) -> Instant {
        Instant::from_micros(self.start.elapsed().as_micros() as u64)
    }

    fn instant_of(&self, t: Instant) -> tokio::time::Instant {
        self.start + std::time::Duration::from_micros(t.as_micros())
    }

    async fn run<T>(mut self, io: T)
    where
        T: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (mut rd, mut wr) = tokio::io::split(io);
        let (in_tx, mut in_rx) = mpsc::channel::<io::Result<Vec<u8>>>(16);
        // The reader must not outlive the driver, even when the driver task
        // is aborted (its receiver dropped): a leftover reader would hold
        // the transport open and steal the next bytes.
        let reader = AbortOnDrop(tokio::spawn(async move {
            loop {
                let mut buf = vec![0u8; READ_CHUNK];
                let r = rd.read(&mut buf).await;
                let end = matches!(r, Ok(0) | Err(_));
                let item = r.map(|n| {
                    buf.truncate(n);
                    buf
                });
                if in_tx.send(item).await.is_err() || end {
                    break;
                }
            }
        }));
        let mut out = vec![0u8; self.link.config().frame_buffer.max(4096) * 4];
        let mut senders_gone = false;
        let result: io::Result<()> = 'run: loop {
            self.fill_link();
            if !self.drain_events() {
                break 'run Ok(());
            }
            // Transmit everything due now.
            loop {
                let now = self.now();
                let n = self.link.poll_transmit(now, &mut out);
                if n == 0 {
                    break;
                }
                if let Err(e) = wr.write_all(&out[..n]).await {
                    break 'run Err(e);
                }
            }
            if let Err(e) = wr.flush().await {
                break 'run Err(e);
            }
            self.publish();
            let deadline = self.link.poll_timeout().map(|t| self.instant_of(t));
            let want_msg = self.pending_msg.is_none() && !senders_gone;
            let have_ev = self.pending_ev.is_some();
            tokio::select! {
                chunk = in_rx.recv() => match chunk {
                    Some(Ok(bytes)) if !bytes.is_empty() => {
                        let now = self.now();
                        self.link.receive(now, &bytes);
                    }
                    Some(Ok(_)) | None => break 'run Ok(()),
                    Some(Err(e)) => break 'run Err(e),
                },
                msg = self.msg_rx.recv(), if want_msg => {
                    match msg {
                        Some(m) => self.pending_msg = Some(m),
                        // Every sender was dropped: nothing more to send,
                        // but keep receiving.
                        None => senders_gone = true,
                    }
                },
                permit = self.ev_tx.reserve(), if have_ev => match permit {
                    Ok(p) => {
                        if let Some(ev) = self.pending_ev.take() {
                            p.send(ev);
                        }
                    }
                    Err(_) => break 'run Ok(()),
                },
                _ = sleep_until(deadline) => {}
            }
        };
        drop(reader);
        self.publish();
        // Deliver what is left, then say why we stopped.
        if let Some(ev) = self.pending_ev.take() {
            let _ = self.ev_tx.send(ev).await;
        }
        let _ = self.ev_tx.send(LinkEvent::Closed(result.err())).await;
    }

    /// Moves queued application messages into the link while it has room.
    fn fill_link(&mut self) {
        loop {
            let msg = match self.pending_msg.take() {
                Some(m) => m,
                None => match self.msg_rx.try_recv() {
                    Ok(m) => m,
                    Err(_) => return,
                },
            };
            match self.link.send(&msg) {
                Ok(()) => {}
                Err(SendError::Full) | Err(SendError::NotConnected) => {
                    self.pending_msg = Some(msg);
                    return;
                }
                Err(SendError::TooLarge) => {
                    tracing::warn!(
                        len = msg.len(),
                        max = self.link.max_message(),
                        "dropping a message larger than the peer accepts"
                    );
                }
            }
        }
    }

    /// Hands link events to the application while it keeps up. Returns
    /// false if the application is gone.
    fn drain_events(&mut self) -> bool {
        loop {
            if let Some(ev) = self.pending_ev.take() {
                match self.ev_tx.try_send(ev) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(ev)) => {
                        self.pending_ev = Some(ev);
                        return true;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return false,
                }
            }
            match self.link.poll_event() {
                Some(ev) => {
                    let ev = LinkEvent::from_event(ev);
                    if matches!(ev, LinkEvent::PeerReset | LinkEvent::ProtocolViolation) {
                        // Everything queued now was written for the old
                        // session (the application has not seen this event
                        // yet); its request ids mean nothing to the new one.
                        self.pending_msg = None;
                        while self.msg_rx.try_recv().is_ok() {}
                    }
                    self.pending_ev = Some(ev);
                }
                None => return true,
            }
        }
    }

    fn publish(&self) {
        *lock(&self.shared.stats) = self.link.stats();
        *lock(&self.shared.max_message) = self.link.max_message();
        *lock(&self.shared.session) = self.link.session();
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
