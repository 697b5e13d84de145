//! The fault-injecting link: a byte pipe between two endpoints that makes the line
//! slow, lossy, noisy or cut, reproducibly.
//!
//! It knows nothing of Corral's protocol. It forwards bytes both ways between
//! endpoint *a* and endpoint *b* (TCP, Unix sockets, a pty it creates, or an existing
//! serial port; see [`Endpoint`]) and on the way applies [`Faults`], configured per
//! [`Direction`] and changeable while it runs: a UART-like rate limit, dropped,
//! corrupted, duplicated, delayed and reordered bytes, and cuts. Every random
//! decision comes from a seed, so a failure seen under noise can be replayed.
//!
//! In a test:
//!
//! ```
//! use corral_hil_tests::faultlink::{Direction, Endpoint, FaultLink, Faults};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The "device": anything listening. Here, a TCP socket the test holds.
//! let device = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let link = FaultLink::start(
//!     Endpoint::TcpListen("127.0.0.1:0".into()),
//!     Endpoint::Tcp(device.local_addr()?.to_string()),
//!     Faults::default(),
//!     7,
//! )
//! .await?;
//! // Flip one bit in every byte from the gateway to the device.
//! link.set_faults(Direction::AToB, Faults { corrupt: 1.0, ..Faults::default() })?;
//!
//! // The "gateway" connects to side a; the link then connects on to side b.
//! let mut gateway = tokio::net::TcpStream::connect(link.a_addr().socket_addr().unwrap()).await?;
//! let (mut on_device, _) = device.accept().await?;
//! gateway.write_all(&[0u8; 4]).await?;
//! let mut received = [0u8; 4];
//! on_device.read_exact(&mut received).await?;
//! assert!(received.iter().all(|b| b.count_ones() == 1));
//! assert_eq!(link.stats().a2b.corrupted, 4);
//! link.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! From the command line, the same link is the `corral-faultlink` binary, and the
//! [`control`] module is its line-based control channel.

pub mod control;
mod endpoint;
mod faults;
mod pacing;
mod pipe;
mod shared;
mod stats;
mod supervisor;
mod tty;

use std::fmt;
use std::io;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use endpoint::{Endpoint, EndpointAddr, EndpointParseError, ENDPOINT_FORMS};
pub use faults::{
    parse_baud, parse_delay, parse_duration, parse_probability, parse_reorder_chunk, FaultSetting,
    Faults, FaultsError, DEFAULT_REORDER_CHUNK, FAULT_KEYS, MAX_BAUD, MAX_DELAY, MAX_REORDER_CHUNK,
};
pub use pipe::{HALF_CLOSE_LINGER, REORDER_HOLD};
pub use stats::{DirectionStats, LinkState, Stats};

use shared::{lock, Cut, Shared, A2B, B2A};
use supervisor::Request;

/// Which way bytes travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From endpoint a to endpoint b (`a2b`).
    AToB,
    /// From endpoint b to endpoint a (`b2a`).
    BToA,
    /// Both ways (`both`).
    Both,
}

impl Direction {
    fn indices(self) -> &'static [usize] {
        match self {
            Direction::AToB => &[A2B],
            Direction::BToA => &[B2A],
            Direction::Both => &[A2B, B2A],
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::AToB => "a2b",
            Direction::BToA => "b2a",
            Direction::Both => "both",
        })
    }
}

/// A direction name that is not `a2b`, `b2a` or `both`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown direction `{0}`; use a2b, b2a or both")]
pub struct DirectionParseError(String);

impl FromStr for Direction {
    type Err = DirectionParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "a2b" | "a>b" | "atob" => Ok(Direction::AToB),
            "b2a" | "b>a" | "btoa" => Ok(Direction::BToA),
            "both" => Ok(Direction::Both),
            _ => Err(DirectionParseError(s.to_owned())),
        }
    }
}

/// The faults of both directions.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LinkFaults {
    /// Applied from endpoint a to endpoint b.
    pub a2b: Faults,
    /// Applied from endpoint b to endpoint a.
    pub b2a: Faults,
}

/// What can go wrong starting or driving a fault link.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FaultLinkError {
    /// The faults given are out of range.
    #[error("bad faults: {0}")]
    Faults(#[from] FaultsError),
    /// An endpoint could not be bound, created or opened.
    #[error("opening endpoint {which} ({endpoint}): {source}{hint}")]
    Open {
        /// `a` or `b`.
        which: &'static str,
        /// The endpoint as written.
        endpoint: String,
        /// What the system said.
        source: io::Error,
        /// Advice for the person reading, or empty.
        hint: &'static str,
    },
    /// The link was shut down; it no longer takes requests.
    #[error("the fault link has shut down")]
    Stopped,
}

/// Starts fault links. See [`FaultLink::start`].
#[derive(Debug)]
#[non_exhaustive]
pub struct FaultLink;

impl FaultLink {
    /// Opens both endpoints (binds listeners, creates the pty, opens the serial
    /// port; dialling endpoints are only dialled once the other side has a peer)
    /// and starts forwarding in a background task, applying `faults` in both
    /// directions with every random decision drawn from `seed`.
    ///
    /// Returns once the endpoints are open, so a test can connect to
    /// [`FaultLinkHandle::a_addr`] at once. Must be called within a tokio runtime.
    pub async fn start(
        a: Endpoint,
        b: Endpoint,
        faults: Faults,
        seed: u64,
    ) -> Result<FaultLinkHandle, FaultLinkError> {
        let faults = LinkFaults {
            a2b: faults.clone(),
            b2a: faults,
        };
        FaultLink::start_with(a, b, faults, seed).await
    }

    /// Like [`start`](Self::start), with different faults in each direction from
    /// the first byte on.
    pub async fn start_with(
        a: Endpoint,
        b: Endpoint,
        faults: LinkFaults,
        seed: u64,
    ) -> Result<FaultLinkHandle, FaultLinkError> {
        faults.a2b.validate()?;
        faults.b2a.validate()?;
        let opened_a = supervisor::open("a", &a).await?;
        let opened_b = supervisor::open("b", &b).await?;
        let shared = Arc::new(Shared::new(
            seed,
            faults,
            [opened_a.addr(), opened_b.addr()],
        ));
        tracing::info!(a = %opened_a.addr(), b = %opened_b.addr(), seed, "fault link started");
        let (requests, rx) = mpsc::channel(8);
        let task = tokio::spawn(supervisor::supervise(
            opened_a,
            opened_b,
            shared.clone(),
            rx,
        ));
        Ok(FaultLinkHandle {
            inner: Arc::new(Inner {
                shared,
                requests,
                task: Mutex::new(Some(task)),
            }),
        })
    }
}

struct Inner {
    shared: Arc<Shared>,
    requests: mpsc::Sender<Request>,
    task: Mutex<Option<JoinHandle<()>>>,
}

/// Controls a running fault link. Clones control the same link. The link stops
/// when [`shutdown`](Self::shutdown) is called or the last clone is dropped.
#[derive(Clone)]
pub struct FaultLinkHandle {
    inner: Arc<Inner>,
}

impl fmt::Debug for FaultLinkHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultLinkHandle")
            .field("a", &self.a_addr())
            .field("b", &self.b_addr())
            .field("seed", &self.inner.shared.seed)
            .finish()
    }
}

impl FaultLinkHandle {
    /// Where endpoint a is: the bound address of `tcp-listen:HOST:0`, the slave path
    /// of a `pty`. A pty gets a new slave path after a cut for good and restore
    /// (its `pty:LINK` symlink is moved to the new one).
    pub fn a_addr(&self) -> EndpointAddr {
        lock(&self.inner.shared.addrs)[A2B].clone()
    }

    /// Where endpoint b is; see [`a_addr`](Self::a_addr).
    pub fn b_addr(&self) -> EndpointAddr {
        lock(&self.inner.shared.addrs)[B2A].clone()
    }

    /// The seed driving every fault decision.
    pub fn seed(&self) -> u64 {
        self.inner.shared.seed
    }

    /// Replaces the faults of one direction or both. Takes effect within about a
    /// millisecond of line time, also for bytes already read.
    pub fn set_faults(&self, direction: Direction, faults: Faults) -> Result<(), FaultsError> {
        self.update_faults(direction, |f| *f = faults.clone())
    }

    /// Changes the faults of one direction or both in place, e.g. one field. The
    /// change is checked first and applied to no direction if it is out of range.
    pub fn update_faults(
        &self,
        direction: Direction,
        change: impl Fn(&mut Faults),
    ) -> Result<(), FaultsError> {
        let shared = &self.inner.shared;
        let mut updated = Vec::new();
        for &dir in direction.indices() {
            let mut faults = shared.faults(dir);
            change(&mut faults);
            faults.validate()?;
            updated.push((dir, faults));
        }
        for (dir, faults) in updated {
            tracing::info!(dir = %if dir == A2B { "a2b" } else { "b2a" }, ?faults, "faults changed");
            *lock(&shared.faults[dir]) = faults;
        }
        Ok(())
    }

    /// The faults currently applied in each direction.
    pub fn faults(&self) -> LinkFaults {
        LinkFaults {
            a2b: self.inner.shared.faults(A2B),
            b2a: self.inner.shared.faults(B2A),
        }
    }

    /// Cuts the line.
    ///
    /// With `Some(duration)`, like a pulled cable put back after `duration`:
    /// connections stay open, and every byte in either direction is discarded
    /// (counted in `discarded_cut`) until the time is up or
    /// [`restore`](Self::restore) is called.
    ///
    /// With `None`, for good: both endpoints are closed, so connected peers see end
    /// of stream, listeners stop listening (connecting is refused), a pty goes away
    /// with its symlink. Returns once that is done. [`restore`](Self::restore)
    /// reopens them at the same addresses (a pty gets a new slave path).
    pub async fn cut(&self, duration: Option<Duration>) -> Result<(), FaultLinkError> {
        match duration {
            Some(duration) => {
                let until = Instant::now()
                    .checked_add(duration)
                    .map_or(Cut::UntilRestore, Cut::Until);
                self.inner.shared.set_cut(until);
                tracing::info!(?duration, "link cut");
                Ok(())
            }
            None => {
                let (reply, done) = oneshot::channel();
                self.request(Request::CutForever(reply)).await?;
                done.await.map_err(|_| FaultLinkError::Stopped)
            }
        }
    }

    /// Ends any cut. After a cut for good, reopens the endpoints and returns once
    /// they listen (or are created) again; an error there leaves the link down and
    /// can be retried.
    pub async fn restore(&self) -> Result<(), FaultLinkError> {
        self.inner.shared.set_cut(Cut::Off);
        let (reply, done) = oneshot::channel();
        self.request(Request::Restore(reply)).await?;
        let result = done.await.map_err(|_| FaultLinkError::Stopped)?;
        if result.is_ok() {
            tracing::info!("link restored");
        }
        result
    }

    /// A snapshot of the counters and the link's state.
    pub fn stats(&self) -> Stats {
        self.inner.shared.stats()
    }

    /// Waits until both endpoints are connected through the link (a session is
    /// running). Returns at once if they are. Useful before cutting in a test.
    pub async fn connected(&self) {
        let mut rx = self.inner.shared.connected.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }

    /// Closes both endpoints and stops the link, waiting until socket files and
    /// symlinks it made are removed. Calling it again does nothing.
    pub async fn shutdown(&self) {
        let _ = self.inner.requests.send(Request::Shutdown).await;
        let task = lock(&self.inner.task).take();
        if let Some(task) = task {
            if let Err(e) = task.await {
                tracing::error!("the fault link's task failed: {e}");
            }
        }
        self.stopped().await;
    }

    /// Waits until the link has stopped (after [`shutdown`](Self::shutdown), from
    /// any clone or from the control channel).
    pub async fn stopped(&self) {
        let mut rx = self.inner.shared.stopped.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    async fn request(&self, request: Request) -> Result<(), FaultLinkError> {
        self.inner
            .requests
            .send(request)
            .await
            .map_err(|_| FaultLinkError::Stopped)
    }
}
