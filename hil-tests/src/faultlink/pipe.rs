//! Forwarding between one connected pair of endpoints (a *session*).
//!
//! Each direction is a reader and a writer joined by a small bounded queue:
//!
//! ```text
//! source ─read─▶ pace (UART timing) ─▶ cut? ─▶ drop/corrupt/duplicate ─▶ reorder
//!        ─▶ stamp release time (delay + jitter) ─▶ queue ─▶ wait ─▶ cut? ─▶ write ─▶ sink
//! ```
//!
//! Faults are applied after pacing because noise happens on the wire: a byte that
//! is lost still took its time on the line. The reader only reads as fast as the
//! line carries, and the queue is bounded, so a fast sender is held back rather
//! than buffered without limit. Everything runs in the supervisor's task, which
//! can drop a session at any moment (for a cut) and thereby close its connections.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::time::{sleep_until, Instant};

use super::endpoint::Conn;
use super::faults::{FaultEngine, Faults};
use super::pacing::{self, Pacer};
use super::shared::{Shared, A2B, B2A};
use super::stats::{add, sub};

/// How long a chunk held back for a `reorder` swap waits for the next chunk before
/// it is sent in order.
pub const REORDER_HOLD: Duration = Duration::from_millis(100);

/// After one direction reached end of stream, how long the other may stay quiet
/// before the session ends. Terminals never report end of stream, so without this a
/// session with a pty on one side would outlive its TCP peer forever.
pub const HALF_CLOSE_LINGER: Duration = Duration::from_secs(1);

/// Largest single read from a source when the line is not rate-limited.
const READ_LEN: usize = 16 * 1024;

/// Pieces queued between reader and writer; with `READ_LEN` this bounds the bytes a
/// delayed direction holds to about 1 MiB.
const PIECES_IN_FLIGHT: usize = 64;

/// The state of one direction that lives as long as the link.
pub(crate) struct DirState {
    pub engine: FaultEngine,
    pacer: Pacer,
}

impl DirState {
    pub fn new(seed: u64, dir: usize) -> Self {
        DirState {
            engine: FaultEngine::new(seed, dir as u64),
            pacer: Pacer::default(),
        }
    }
}

/// Why a direction stopped early.
#[derive(Debug)]
enum DirError {
    /// Reading the source failed.
    Read(io::Error),
    /// Writing the sink failed.
    Write(io::Error),
}

/// How a session ended.
#[derive(Debug)]
pub(crate) struct SessionEnd {
    /// Endpoint a failed (as opposed to closing normally).
    pub a_broken: bool,
    /// Endpoint b failed.
    pub b_broken: bool,
    /// For the log.
    pub reason: String,
}

/// Bytes on their way to the sink, to be written at `release`.
struct Piece {
    release: Instant,
    bytes: Vec<u8>,
}

/// Everything the reader of one direction needs.
struct Reader<'a> {
    dir: usize,
    state: &'a mut DirState,
    shared: &'a Shared,
    tx: mpsc::Sender<Piece>,
    last_release: Option<Instant>,
}

impl Reader<'_> {
    /// Stamps `bytes` with their release time and queues them for the writer.
    async fn send(&mut self, faults: &Faults, bytes: &mut Vec<u8>) -> Result<(), DirError> {
        if bytes.is_empty() {
            return Ok(());
        }
        let jitter = self.state.engine.jitter(faults.jitter);
        let mut release = Instant::now() + faults.delay + jitter;
        // Jitter must not let a byte overtake an earlier one.
        if let Some(previous) = self.last_release {
            release = release.max(previous);
        }
        self.last_release = Some(release);
        let piece = Piece {
            release,
            bytes: std::mem::take(bytes),
        };
        self.tx
            .send(piece)
            .await
            .map_err(|_| DirError::Write(io::Error::other("the writer stopped")))
    }

    /// Sends what the reorderer holds, in order.
    async fn flush_reorder(&mut self) -> Result<(), DirError> {
        let mut out = Vec::new();
        self.state.engine.reorder.flush(&mut out);
        let faults = self.shared.faults(self.dir);
        self.send(&faults, &mut out).await
    }

    /// Takes one slice that has just crossed the line through the faults.
    async fn line_delivered(&mut self, slice: &[u8]) -> Result<(), DirError> {
        let counters = &self.shared.counters[self.dir];
        let len = slice.len() as u64;
        if self.shared.is_cut(Instant::now()) {
            add(&counters.discarded_cut, len);
            sub(&counters.in_flight, len);
            return Ok(());
        }
        let faults = self.shared.faults(self.dir);
        let mut faulted = Vec::with_capacity(slice.len() + slice.len() / 8);
        let counts = self
            .state
            .engine
            .apply_byte_faults(&faults, slice, &mut faulted);
        counters.add_byte_faults(counts);
        let mut out = Vec::with_capacity(faulted.len());
        let swaps = self.state.engine.reorder.push(&faults, &faulted, &mut out);
        add(&counters.reordered, swaps);
        self.send(&faults, &mut out).await
    }

    async fn run<R: AsyncRead + Unpin>(
        mut self,
        mut src: R,
        mut half_closed: watch::Receiver<bool>,
    ) -> Result<(), DirError> {
        let mut buf = vec![0u8; READ_LEN];
        let mut last_input = Instant::now();
        let mut lingering = *half_closed.borrow_and_update();
        loop {
            let baud = self.shared.faults(self.dir).baud;
            let read_len = baud.map_or(READ_LEN, pacing::read_len).min(READ_LEN);
            let holding = self.state.engine.reorder.is_holding();
            let n = tokio::select! {
                biased;
                read = src.read(&mut buf[..read_len]) => read.map_err(DirError::Read)?,
                () = sleep_until(last_input + REORDER_HOLD), if holding => {
                    self.flush_reorder().await?;
                    continue;
                }
                _ = half_closed.changed(), if !lingering => {
                    lingering = true;
                    last_input = Instant::now();
                    continue;
                }
                () = sleep_until(last_input + HALF_CLOSE_LINGER), if lingering => {
                    tracing::debug!(dir = dir_name(self.dir), "the other direction ended and this one went quiet");
                    0
                }
            };
            if n == 0 {
                // End of stream: what is held goes out in order, then dropping the
                // queue's sender lets the writer drain and close the sink.
                return self.flush_reorder().await;
            }
            last_input = Instant::now();
            let counters = &self.shared.counters[self.dir];
            add(&counters.bytes_in, n as u64);
            add(&counters.in_flight, n as u64);
            let mut rest = &buf[..n];
            while !rest.is_empty() {
                // Read the settings per slice, so a change applies within one
                // millisecond of line time even in the middle of a buffer.
                let take = match self.shared.faults(self.dir).baud {
                    Some(baud) => {
                        let take = pacing::slice_len(baud).min(rest.len());
                        let done = self.state.pacer.schedule(Instant::now(), take, baud);
                        sleep_until(done).await;
                        take
                    }
                    None => rest.len(),
                };
                let (slice, tail) = rest.split_at(take);
                self.line_delivered(slice).await?;
                rest = tail;
            }
        }
    }
}

/// Writes queued pieces to the sink at their release time, then closes the sink's
/// sending side once the reader is done.
async fn write_side<W: AsyncWrite + Unpin>(
    mut sink: W,
    mut rx: mpsc::Receiver<Piece>,
    shared: &Shared,
    dir: usize,
) -> Result<(), DirError> {
    let counters = &shared.counters[dir];
    while let Some(piece) = rx.recv().await {
        if piece.release > Instant::now() {
            sleep_until(piece.release).await;
        }
        let len = piece.bytes.len() as u64;
        if shared.is_cut(Instant::now()) {
            add(&counters.discarded_cut, len);
            sub(&counters.in_flight, len);
            continue;
        }
        sink.write_all(&piece.bytes)
            .await
            .map_err(DirError::Write)?;
        add(&counters.bytes_out, len);
        sub(&counters.in_flight, len);
    }
    sink.shutdown().await.map_err(DirError::Write)
}

/// Forwards one direction until the source ends and everything is delivered, or
/// until either side fails.
async fn forward<R, W>(
    src: R,
    sink: W,
    state: &mut DirState,
    shared: &Shared,
    dir: usize,
    half_closed: watch::Receiver<bool>,
) -> Result<(), DirError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (tx, rx) = mpsc::channel(PIECES_IN_FLIGHT);
    let reader = Reader {
        dir,
        state,
        shared,
        tx,
        last_release: None,
    };
    tokio::try_join!(
        reader.run(src, half_closed),
        write_side(sink, rx, shared, dir)
    )?;
    Ok(())
}

fn dir_name(dir: usize) -> &'static str {
    if dir == A2B {
        "a2b"
    } else {
        "b2a"
    }
}

/// Turns how one direction ended into a session end. `dir`'s source is endpoint a
/// for a→b, so a read error there means a broke and a write error means b broke.
fn ended(
    dir: usize,
    result: Result<(), DirError>,
    other: Option<Result<(), DirError>>,
) -> SessionEnd {
    let mut end = SessionEnd {
        a_broken: false,
        b_broken: false,
        reason: String::new(),
    };
    let mut reasons = Vec::new();
    for (dir, result) in std::iter::once((dir, result)).chain(other.map(|r| (1 - dir, r))) {
        let (source_is_a, what) = (dir == A2B, dir_name(dir));
        match result {
            Ok(()) => reasons.push(format!("{} closed", if source_is_a { "a" } else { "b" })),
            Err(DirError::Read(e)) => {
                if source_is_a {
                    end.a_broken = true;
                } else {
                    end.b_broken = true;
                }
                reasons.push(format!("{what}: reading failed: {e}"));
            }
            Err(DirError::Write(e)) => {
                if source_is_a {
                    end.b_broken = true;
                } else {
                    end.a_broken = true;
                }
                reasons.push(format!("{what}: writing failed: {e}"));
            }
        }
    }
    end.reason = reasons.join("; ");
    end
}

/// Forwards between `a` and `b` until the session ends, and books whatever was
/// still travelling as lost with the connection.
pub(crate) async fn run_session(
    a: Conn,
    b: Conn,
    dirs: &mut [DirState; 2],
    shared: &Shared,
) -> SessionEnd {
    let (a_read, a_write) = tokio::io::split(a);
    let (b_read, b_write) = tokio::io::split(b);
    let (half_tx, half_rx) = watch::channel(false);
    let [a2b_state, b2a_state] = &mut *dirs;
    let end = {
        let a2b = forward(a_read, b_write, a2b_state, shared, A2B, half_rx.clone());
        let b2a = forward(b_read, a_write, b2a_state, shared, B2A, half_rx);
        tokio::pin!(a2b, b2a);
        tokio::select! {
            result = &mut a2b => match result {
                Ok(()) => {
                    // Half-close: b may still have something to say.
                    half_tx.send_replace(true);
                    let other = (&mut b2a).await;
                    ended(A2B, Ok(()), Some(other))
                }
                Err(e) => ended(A2B, Err(e), None),
            },
            result = &mut b2a => match result {
                Ok(()) => {
                    half_tx.send_replace(true);
                    let other = (&mut a2b).await;
                    ended(B2A, Ok(()), Some(other))
                }
                Err(e) => ended(B2A, Err(e), None),
            },
        }
    };
    book_closed(dirs, shared);
    end
}

/// Books everything a session still had travelling as lost with its connections.
/// Also called when a session is dropped half-way (a cut for good).
pub(crate) fn book_closed(dirs: &mut [DirState; 2], shared: &Shared) {
    for (dir, state) in dirs.iter_mut().enumerate() {
        state.engine.reorder.reset();
        shared.counters[dir].close_in_flight();
    }
}

#[cfg(test)]
mod tests {
    //! The pipe on in-memory streams in paused, auto-advancing time: every count
    //! here is exact because no real clock or machine speed is involved.

    use std::future::Future;

    use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt, DuplexStream};
    use tokio::time::sleep;

    use super::*;
    use crate::faultlink::endpoint::EndpointAddr;
    use crate::faultlink::shared::Cut;
    use crate::faultlink::LinkFaults;

    fn shared(a2b: Faults) -> Shared {
        let addr = || EndpointAddr::Tcp("memory".into());
        Shared::new(
            1,
            LinkFaults {
                a2b,
                b2a: Faults::none(),
            },
            [addr(), addr()],
        )
    }

    /// Runs `test` against a session between a "gateway" and a "device" stream.
    async fn with_session<F, Fut>(shared: &Shared, test: F)
    where
        F: FnOnce(DuplexStream, DuplexStream) -> Fut,
        Fut: Future<Output = ()>,
    {
        let (gateway, a) = duplex(1 << 16);
        let (device, b) = duplex(1 << 16);
        let mut dirs = [DirState::new(1, A2B), DirState::new(1, B2A)];
        let session = run_session(Box::new(a), Box::new(b), &mut dirs, shared);
        tokio::select! {
            end = session => panic!("the session ended first: {}", end.reason),
            () = test(gateway, device) => {}
        }
    }

    fn bytes_out(shared: &Shared) -> u64 {
        shared.counters[A2B].snapshot().bytes_out
    }

    #[tokio::test(start_paused = true)]
    async fn a_9600_baud_line_carries_480_bytes_in_half_a_second_then_the_rest() {
        let shared = shared(Faults {
            baud: Some(9600),
            ..Faults::none()
        });
        let shared = &shared;
        with_session(shared, |mut gateway, mut device| async move {
            gateway.write_all(&[0x55; 2000]).await.unwrap();
            sleep(Duration::from_millis(500)).await;
            // 960 bytes a second; the 480th byte finishes exactly at 500 ms.
            let passed = bytes_out(shared);
            assert!((479..=480).contains(&passed), "{passed} bytes in 500 ms");
            sleep(Duration::from_millis(500)).await;
            let passed = bytes_out(shared);
            assert!((959..=960).contains(&passed), "{passed} bytes in 1 s");
            let mut got = vec![0u8; 2000];
            device.read_exact(&mut got).await.unwrap();
            assert_eq!(got, [0x55; 2000]);
        })
        .await;
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_line_earns_no_burst() {
        let shared = shared(Faults {
            baud: Some(9600),
            ..Faults::none()
        });
        let shared = &shared;
        with_session(shared, |mut gateway, device| async move {
            // Kept open: a closed device would end the session.
            let _device = device;
            sleep(Duration::from_secs(10)).await;
            gateway.write_all(&[1; 1000]).await.unwrap();
            sleep(Duration::from_millis(100)).await;
            let passed = bytes_out(shared);
            assert!(
                (95..=96).contains(&passed),
                "{passed} bytes in 100 ms after a pause"
            );
        })
        .await;
    }

    #[tokio::test(start_paused = true)]
    async fn delay_holds_every_byte_back_by_exactly_the_delay() {
        let shared = shared(Faults {
            delay: Duration::from_millis(100),
            ..Faults::none()
        });
        let shared = &shared;
        with_session(shared, |mut gateway, mut device| async move {
            gateway.write_all(b"late").await.unwrap();
            sleep(Duration::from_millis(99)).await;
            assert_eq!(bytes_out(shared), 0);
            let mut got = [0u8; 4];
            device.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, b"late");
            assert_eq!(bytes_out(shared), 4);
        })
        .await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_chunk_held_for_a_swap_goes_out_in_order_when_the_sender_pauses() {
        let shared = shared(Faults {
            reorder: 1.0,
            reorder_chunk: 4,
            ..Faults::none()
        });
        let shared = &shared;
        with_session(shared, |mut gateway, mut device| async move {
            gateway.write_all(&[0, 1, 2, 3, 4, 5]).await.unwrap();
            sleep(REORDER_HOLD / 2).await;
            assert_eq!(bytes_out(shared), 0, "held while a swap partner may come");
            let mut got = [0u8; 6];
            device.read_exact(&mut got).await.unwrap();
            assert_eq!(got, [0, 1, 2, 3, 4, 5]);
            assert_eq!(shared.counters[A2B].snapshot().reordered, 0);
        })
        .await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_timed_cut_ends_on_time() {
        let shared = shared(Faults::none());
        shared.set_cut(Cut::Until(Instant::now() + Duration::from_secs(2)));
        let shared = &shared;
        with_session(shared, |mut gateway, mut device| async move {
            gateway.write_all(b"lost").await.unwrap();
            sleep(Duration::from_millis(1999)).await;
            gateway.write_all(b"lost").await.unwrap();
            sleep(Duration::from_millis(2)).await;
            gateway.write_all(b"kept").await.unwrap();
            let mut got = [0u8; 4];
            device.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, b"kept");
            assert_eq!(shared.counters[A2B].snapshot().discarded_cut, 8);
        })
        .await;
    }

    #[tokio::test(start_paused = true)]
    async fn after_one_side_closes_the_other_may_finish_then_the_session_ends() {
        let shared = shared(Faults::none());
        let (gateway, a) = duplex(1 << 16);
        let (mut device, b) = duplex(1 << 16);
        let mut dirs = [DirState::new(1, A2B), DirState::new(1, B2A)];
        let (mut gateway_read, mut gateway_write) = tokio::io::split(gateway);
        let session = run_session(Box::new(a), Box::new(b), &mut dirs, &shared);
        let peers = async {
            gateway_write.write_all(b"bye").await.unwrap();
            gateway_write.shutdown().await.unwrap();
            let mut got = Vec::new();
            device.read_to_end(&mut got).await.unwrap();
            assert_eq!(got, b"bye", "a's bytes are delivered before b is closed");
            // b still answers after a's half-close, within the linger time.
            sleep(HALF_CLOSE_LINGER / 2).await;
            device.write_all(b"ok").await.unwrap();
            let mut answer = [0u8; 2];
            gateway_read.read_exact(&mut answer).await.unwrap();
            assert_eq!(&answer, b"ok");
        };
        let (end, ()) = tokio::join!(session, peers);
        assert!(!end.a_broken && !end.b_broken, "{}", end.reason);
        assert_eq!(shared.counters[B2A].snapshot().bytes_out, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn every_byte_is_accounted_for() {
        let shared = shared(Faults {
            drop: 0.1,
            duplicate: 0.1,
            corrupt: 0.1,
            delay: Duration::from_millis(10),
            ..Faults::none()
        });
        let shared = &shared;
        with_session(shared, |mut gateway, device| async move {
            // Kept open: a closed device would end the session.
            let _device = device;
            gateway.write_all(&[7; 10_000]).await.unwrap();
            sleep(Duration::from_millis(5)).await;
            shared.set_cut(Cut::UntilRestore);
            sleep(Duration::from_millis(20)).await;
            let s = shared.counters[A2B].snapshot();
            assert_eq!(
                s.bytes_in + s.duplicated,
                s.bytes_out + s.dropped + s.discarded_cut + s.discarded_closed + s.in_flight,
                "{s:?}"
            );
            assert!(
                s.discarded_cut > 0 && s.dropped > 0 && s.duplicated > 0,
                "{s:?}"
            );
        })
        .await;
    }
}
