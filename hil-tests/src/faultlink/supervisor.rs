//! The link's one task: it pairs connections from both endpoints into sessions,
//! one after another, and carries out the requests that change the endpoints
//! themselves (a cut for good, restore, shutdown).
//!
//! A timed cut and fault changes do not come through here; the pipes read them
//! from [`Shared`] as they go. What does come here has to stop the running session,
//! and the simplest correct way to stop it is to drop it: its connections close,
//! which is exactly what the peers should see when the cable is pulled for good.

use std::convert::Infallible;
use std::io;
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::{sleep, Instant};

use super::endpoint::{self, Conn, Endpoint, Opened};
use super::pipe::{self, DirState};
use super::shared::{lock, Shared, A2B, B2A};
use super::FaultLinkError;

/// What the handle asks of the supervisor.
pub(crate) enum Request {
    /// Close both endpoints until restored.
    CutForever(oneshot::Sender<()>),
    /// Reopen the endpoints if they were closed.
    Restore(oneshot::Sender<Result<(), FaultLinkError>>),
    /// Close everything and stop.
    Shutdown,
}

/// Why the running sessions were stopped.
enum Stop {
    CutForever(oneshot::Sender<()>),
    Shutdown,
}

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// A session shorter than this that ends is treated like a failure to connect, so a
/// peer that accepts and hangs up at once does not make the link spin.
const SHORT_SESSION: Duration = Duration::from_secs(1);

/// Opens `endpoint` as side `which`, turning a failure into an error that names it.
pub(crate) async fn open(
    which: &'static str,
    endpoint: &Endpoint,
) -> Result<Opened, FaultLinkError> {
    Opened::open(endpoint)
        .await
        .map_err(|source| FaultLinkError::Open {
            which,
            endpoint: endpoint.to_string(),
            hint: endpoint::hint(endpoint, &source),
            source,
        })
}

/// Marks the supervisor stopped however it exits, so `stopped()` never hangs.
struct StoppedGuard<'a>(&'a Shared);

impl Drop for StoppedGuard<'_> {
    fn drop(&mut self) {
        self.0.connected.send_replace(false);
        self.0.stopped.send_replace(true);
    }
}

pub(crate) async fn supervise(
    a: Opened,
    b: Opened,
    shared: Arc<Shared>,
    mut requests: mpsc::Receiver<Request>,
) {
    let _stopped = StoppedGuard(&shared);
    let mut dirs = [
        DirState::new(shared.seed, A2B),
        DirState::new(shared.seed, B2A),
    ];
    let mut ends = Some([a, b]);
    // What to open again on restore, remembered while the link is down.
    let mut reopen: Option<[Endpoint; 2]> = None;
    loop {
        let Some(pair) = ends.as_mut() else {
            match requests.recv().await {
                Some(Request::Restore(reply)) => {
                    let Some([spec_a, spec_b]) = reopen.take() else {
                        let _ = reply.send(Ok(()));
                        continue;
                    };
                    match reopen_pair(&spec_a, &spec_b).await {
                        Ok(pair) => {
                            *lock(&shared.addrs) = [pair[0].addr(), pair[1].addr()];
                            tracing::info!(a = %pair[0].addr(), b = %pair[1].addr(), "link restored");
                            ends = Some(pair);
                            shared.down.store(false, Ordering::Relaxed);
                            let _ = reply.send(Ok(()));
                        }
                        Err(e) => {
                            tracing::warn!("restoring the link failed: {e}");
                            reopen = Some([spec_a, spec_b]);
                            let _ = reply.send(Err(e));
                        }
                    }
                }
                Some(Request::CutForever(reply)) => {
                    let _ = reply.send(());
                }
                Some(Request::Shutdown) | None => return,
            }
            continue;
        };

        let stop = {
            let mut sessions = pin!(run_sessions(pair, &mut dirs, &shared));
            loop {
                tokio::select! {
                    never = &mut sessions => match never {},
                    request = requests.recv() => match request {
                        Some(Request::Restore(reply)) => {
                            // Up already; the handle has lifted any timed cut.
                            let _ = reply.send(Ok(()));
                        }
                        Some(Request::CutForever(reply)) => break Stop::CutForever(reply),
                        Some(Request::Shutdown) | None => break Stop::Shutdown,
                    },
                }
            }
        };
        // The session future is gone, and with it the connections it held.
        shared.connected.send_replace(false);
        pipe::book_closed(&mut dirs, &shared);
        match stop {
            Stop::CutForever(reply) => {
                reopen = Some([pair[0].reopen_as(), pair[1].reopen_as()]);
                // Dropping the endpoints closes listeners and ptys and removes the
                // socket files and symlinks they made.
                ends = None;
                shared.down.store(true, Ordering::Relaxed);
                tracing::info!("link cut for good: endpoints closed until restored");
                let _ = reply.send(());
            }
            Stop::Shutdown => return,
        }
    }
}

async fn reopen_pair(a: &Endpoint, b: &Endpoint) -> Result<[Opened; 2], FaultLinkError> {
    let a = open("a", a).await?;
    let b = open("b", b).await?;
    Ok([a, b])
}

/// Connects both sides, then forwards, forever; only dropping it stops it.
async fn run_sessions(
    pair: &mut [Opened; 2],
    dirs: &mut [DirState; 2],
    shared: &Shared,
) -> Infallible {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let (a, b) = match acquire(pair).await {
            Ok(conns) => conns,
            Err((which, e)) => {
                let addr = pair[usize::from(which == "b")].addr();
                tracing::warn!("endpoint {which} ({addr}): {e}; trying again in {backoff:?}");
                sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        let number = shared.sessions.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::info!(session = number, a = %pair[0].addr(), b = %pair[1].addr(), "connected");
        shared.connected.send_replace(true);
        let started = Instant::now();
        let end = pipe::run_session(a, b, dirs, shared).await;
        shared.connected.send_replace(false);
        tracing::info!(session = number, "disconnected: {}", end.reason);
        if end.a_broken {
            pair[0].forget_broken();
        }
        if end.b_broken {
            pair[1].forget_broken();
        }
        if end.a_broken || end.b_broken || started.elapsed() < SHORT_SESSION {
            sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        } else {
            backoff = FIRST_BACKOFF;
        }
    }
}

/// Gets one connection on each side: first waits for the accepting and fixed
/// sides, then dials the dialling ones, so a device is only connected to when there
/// is someone on the other end. If dialling fails, the accepted connection is
/// dropped, and its peer sees the link close as it would with no device attached.
async fn acquire(pair: &mut [Opened; 2]) -> Result<(Conn, Conn), (&'static str, io::Error)> {
    let [a, b] = pair;
    let (conn_a, conn_b) =
        tokio::try_join!(async { a.wait().await.map_err(|e| ("a", e)) }, async {
            b.wait().await.map_err(|e| ("b", e))
        },)?;
    let conn_a = match conn_a {
        Some(conn) => conn,
        None => a.dial().await.map_err(|e| ("a", e))?,
    };
    let conn_b = match conn_b {
        Some(conn) => conn,
        None => b.dial().await.map_err(|e| ("b", e))?,
    };
    Ok((conn_a, conn_b))
}
