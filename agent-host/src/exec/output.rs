//! Output of a running command: pipe readers, the bounded queue towards the
//! consumer, and the tail kept while nobody forwards.
//!
//! Everything a command prints goes through one [`OutputHub`] guarded by one
//! mutex. That single lock is what makes switching between
//! [`OutputMode::Forward`] and [`OutputMode::Tail`] lossless and ordered: when
//! the caller switches to `Tail`, the chunks still queued move into the tail in
//! the order they were read, and nothing read afterwards can overtake them.
//! (With a channel plus a separate ring, a reader that had already reserved a
//! channel slot could slip an old chunk in after the switch.)

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{watch, Notify};

use super::report::ExitReport;
use super::tail::TailRing;

/// Which standard stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamKind {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Bytes a command wrote to one stream, in the order they were read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputChunk {
    /// The stream the bytes came from.
    pub stream: StreamKind,
    /// The bytes; never empty.
    pub data: Vec<u8>,
}

/// What happens to output as it is produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputMode {
    /// Every chunk is queued for [`RunningCommand::next_output`](super::RunningCommand::next_output).
    /// The queue is bounded: when it is full the pipe is no longer read, and the
    /// command blocks on its next write once the pipe buffer is full too.
    #[default]
    Forward,
    /// Only the last [`ExecConfig::tail_bytes`](super::ExecConfig::tail_bytes)
    /// of each stream are kept; the command never blocks on output. Used while
    /// the link to the gateway is down.
    Tail,
}

/// The last bytes of each stream, taken with
/// [`RunningCommand::take_tail`](super::RunningCommand::take_tail).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tail {
    /// Last bytes of standard output, oldest first.
    pub stdout: Vec<u8>,
    /// Last bytes of standard error, oldest first.
    pub stderr: Vec<u8>,
    /// Standard output bytes that were produced in tail mode but not kept.
    pub stdout_dropped: u64,
    /// Standard error bytes that were produced in tail mode but not kept.
    pub stderr_dropped: u64,
}

/// Shared between the pipe readers (producers) and the command handle
/// (consumer).
#[derive(Debug)]
pub(crate) struct OutputHub {
    state: Mutex<HubState>,
    /// Woken when a chunk is queued or a stream ends.
    data_ready: Notify,
    /// Woken when queue space frees up or the mode no longer needs space.
    space_ready: Notify,
    queue_chunks: usize,
}

#[derive(Debug)]
struct HubState {
    mode: OutputMode,
    /// The handle was dropped: nobody will ever read the queue again.
    consumer_gone: bool,
    queue: VecDeque<OutputChunk>,
    stdout_tail: TailRing,
    stderr_tail: TailRing,
    /// Pipe readers still running.
    open_streams: usize,
}

impl HubState {
    fn keep_in_tail(&mut self, chunk: &OutputChunk) {
        match chunk.stream {
            StreamKind::Stdout => self.stdout_tail.push(&chunk.data),
            StreamKind::Stderr => self.stderr_tail.push(&chunk.data),
        }
    }

    fn queue_into_tail(&mut self) {
        while let Some(chunk) = self.queue.pop_front() {
            self.keep_in_tail(&chunk);
        }
    }
}

impl OutputHub {
    pub(crate) fn new(queue_chunks: usize, tail_bytes: usize, open_streams: usize) -> Self {
        Self {
            state: Mutex::new(HubState {
                mode: OutputMode::Forward,
                consumer_gone: false,
                queue: VecDeque::with_capacity(queue_chunks),
                stdout_tail: TailRing::new(tail_bytes),
                stderr_tail: TailRing::new(tail_bytes),
                open_streams,
            }),
            data_ready: Notify::new(),
            space_ready: Notify::new(),
            queue_chunks: queue_chunks.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HubState> {
        // A panic while holding this lock can only come from a bug in this
        // module; the state is still consistent enough to keep serving output.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Hands one chunk over, waiting for queue space in forward mode.
    async fn deliver(&self, chunk: OutputChunk) {
        loop {
            // Register for the wake-up before looking at the state, so a
            // consumer that frees space in between is not missed.
            let space = self.space_ready.notified();
            tokio::pin!(space);
            space.as_mut().enable();
            {
                let mut state = self.lock();
                if state.mode == OutputMode::Tail || state.consumer_gone {
                    state.keep_in_tail(&chunk);
                    return;
                }
                if state.queue.len() < self.queue_chunks {
                    state.queue.push_back(chunk);
                    drop(state);
                    self.data_ready.notify_waiters();
                    return;
                }
            }
            space.await;
        }
    }

    fn stream_closed(&self) {
        let mut state = self.lock();
        state.open_streams = state.open_streams.saturating_sub(1);
        drop(state);
        self.data_ready.notify_waiters();
    }

    /// The next queued chunk, at most `max_len` bytes (a larger chunk is split
    /// and its rest stays first in the queue). `None` once every stream has
    /// ended and the queue is empty.
    pub(crate) async fn next(&self, max_len: usize) -> Option<OutputChunk> {
        let max_len = max_len.max(1);
        loop {
            let ready = self.data_ready.notified();
            tokio::pin!(ready);
            ready.as_mut().enable();
            {
                let mut state = self.lock();
                if let Some(mut chunk) = state.queue.pop_front() {
                    if chunk.data.len() > max_len {
                        let rest = chunk.data.split_off(max_len);
                        state.queue.push_front(OutputChunk {
                            stream: chunk.stream,
                            data: rest,
                        });
                    }
                    drop(state);
                    self.space_ready.notify_waiters();
                    return Some(chunk);
                }
                if state.open_streams == 0 {
                    return None;
                }
            }
            ready.await;
        }
    }

    /// True once every stream has ended and every queued chunk was taken.
    pub(crate) fn finished(&self) -> bool {
        let state = self.lock();
        state.open_streams == 0 && state.queue.is_empty()
    }

    pub(crate) fn mode(&self) -> OutputMode {
        self.lock().mode
    }

    pub(crate) fn set_mode(&self, mode: OutputMode) {
        let mut state = self.lock();
        if state.mode == mode {
            return;
        }
        tracing::debug!(from = ?state.mode, to = ?mode, "output mode");
        state.mode = mode;
        if mode == OutputMode::Tail {
            // Queued chunks are older than anything read from now on, and newer
            // than what the tail already holds: appending keeps the order.
            state.queue_into_tail();
        }
        drop(state);
        self.space_ready.notify_waiters();
        self.data_ready.notify_waiters();
    }

    /// The consumer is gone for good: never block a reader again.
    pub(crate) fn detach_consumer(&self) {
        let mut state = self.lock();
        state.consumer_gone = true;
        state.queue_into_tail();
        drop(state);
        self.space_ready.notify_waiters();
    }

    pub(crate) fn take_tail(&self) -> Tail {
        let mut state = self.lock();
        let (stdout, stdout_dropped) = state.stdout_tail.take();
        let (stderr, stderr_dropped) = state.stderr_tail.take();
        Tail {
            stdout,
            stderr,
            stdout_dropped,
            stderr_dropped,
        }
    }
}

/// Reads one pipe until end-of-file and hands its bytes to the hub.
///
/// Once the command's main process has exited (the report is published), a
/// read that brings nothing for `drain_idle` ends the pump: whoever still holds
/// the pipe escaped the process group and is not part of the command any more.
pub(crate) async fn pump<R>(
    mut reader: R,
    stream: StreamKind,
    hub: std::sync::Arc<OutputHub>,
    mut exited: watch::Receiver<Option<ExitReport>>,
    chunk_size: usize,
    drain_idle: Duration,
) where
    R: AsyncRead + Unpin,
{
    let mut buf = vec![0u8; chunk_size.max(1)];
    let mut leader_done = exited.borrow().is_some();
    loop {
        let read = if leader_done {
            match tokio::time::timeout(drain_idle, reader.read(&mut buf)).await {
                Ok(read) => read,
                Err(_) => {
                    tracing::debug!(
                        ?stream,
                        "pipe still open after the command exited; stop reading"
                    );
                    break;
                }
            }
        } else {
            // `read` on a pipe is cancel-safe: losing the race to `changed`
            // loses no bytes.
            tokio::select! {
                read = reader.read(&mut buf) => read,
                changed = exited.changed() => {
                    // An error means the supervisor is gone without a report
                    // (runtime shutdown): stop waiting on it either way.
                    leader_done = changed.is_err() || exited.borrow().is_some();
                    continue;
                }
            }
        };
        match read {
            Ok(0) => break,
            Ok(n) => {
                hub.deliver(OutputChunk {
                    stream,
                    data: buf[..n].to_vec(),
                })
                .await
            }
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => {
                tracing::warn!(?stream, %err, "reading command output failed");
                break;
            }
        }
    }
    hub.stream_closed();
}
