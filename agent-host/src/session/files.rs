//! File requests: push (`PutOpen`, `Write`…, `Commit`), pull (`Get`), and
//! `Stat`, `List`, `Remove`, `Hash`, on the agent's [`FileStore`].
//!
//! A push is answered `PutReady { have, credit }`: `have` is what an earlier,
//! interrupted push of the same content to the same path left (continue from
//! there), `credit` a window of [`PUT_WINDOW`] bytes that is topped up with
//! `Credit` as writes reach the disk. A write that does not start where the
//! previous one ended is refused with `BAD_OFFSET`, one beyond the credit with
//! `CREDIT_EXCEEDED`; either ends the push, keeping the data for a resume. A
//! push whose session is gone ends the same way.
//!
//! A pull sends `Data` within the requester's credit, then `HashReply` with
//! the size and SHA-256 of the whole file (from offset 0, also when the pull
//! resumed at an offset), so the gateway can check what it assembled.

use std::path::Path;

use corral_protocol::credit::SendCredit;
use corral_protocol::message::{
    Body, Data, DirEntry, ErrorCode, FileHash, FileKind as WireKind, FileStat as WireStat, Get,
    PutOpen, PutReady,
};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;

use super::{Ctx, FollowUp, Outbox, SharedCredit};
use crate::files::{FileError, FileKind, FileStat};

/// Push window: bytes the gateway may send beyond what is on disk.
pub const PUT_WINDOW: u32 = 1024 * 1024;

/// Directory entries read from the disk at a time while listing.
const LIST_BATCH: usize = 64;

/// The wire code for a file store error.
pub(crate) fn file_error_code(err: &FileError) -> ErrorCode {
    match err {
        FileError::NotFound { .. } => ErrorCode::NOT_FOUND,
        FileError::PermissionDenied { .. } => ErrorCode::PERMISSION_DENIED,
        FileError::Escape { .. } => ErrorCode::OUTSIDE_ROOT,
        FileError::IsADirectory { .. } => ErrorCode::IS_A_DIRECTORY,
        FileError::NotADirectory { .. } => ErrorCode::NOT_A_DIRECTORY,
        FileError::HashMismatch { .. } => ErrorCode::HASH_MISMATCH,
        FileError::NoSpace { .. } => ErrorCode::NO_SPACE,
        // The message says what is wrong: not a regular file, not empty,
        // committed before all bytes arrived, a bad mode or offset.
        FileError::NotAFile { .. }
        | FileError::NotEmpty { .. }
        | FileError::SizeMismatch { .. }
        | FileError::InvalidArgument { .. } => ErrorCode::INVALID_ARGUMENT,
        FileError::Io { .. } => ErrorCode::IO,
    }
}

async fn reply_error(outbox: &Outbox, err: &FileError) {
    let _ = outbox.error(file_error_code(err), &err.to_string()).await;
}

/// A `PutOpen` request, owned.
#[derive(Debug, Clone)]
pub(crate) struct PutArgs {
    path: String,
    size: u64,
    sha256: [u8; 32],
    mode: u32,
}

impl PutArgs {
    pub(crate) fn from_wire(open: &PutOpen<'_>) -> Self {
        PutArgs {
            path: open.path.to_string(),
            size: open.size,
            sha256: open.sha256,
            mode: open.mode,
        }
    }
}

/// Serves a push.
pub(crate) async fn put(
    ctx: Ctx,
    id: u32,
    args: PutArgs,
    credit: SharedCredit,
    mut followups: mpsc::UnboundedReceiver<FollowUp>,
) {
    let outbox = ctx.link.outbox(id);
    serve_put(&ctx, &outbox, args, credit, &mut followups).await;
    // Whatever the gateway sent after the push ended: a `Commit` still gets
    // an answer. Closing first means a later one is refused by the session
    // loop instead of being queued here unseen.
    followups.close();
    while let Ok(up) = followups.try_recv() {
        if matches!(up, FollowUp::Commit) {
            let message = "commit for a push that has already ended (see its earlier error)";
            let _ = outbox.error(ErrorCode::NO_SUCH_REQUEST, message).await;
        }
    }
}

async fn serve_put(
    ctx: &Ctx,
    outbox: &Outbox,
    args: PutArgs,
    credit: SharedCredit,
    followups: &mut mpsc::UnboundedReceiver<FollowUp>,
) {
    let id = outbox.id();
    let store = ctx.agent.store();
    let mut handle = match store
        .open_put(&args.path, args.size, args.sha256, args.mode)
        .await
    {
        Ok(h) => h,
        Err(err) => return reply_error(outbox, &err).await,
    };
    let have = handle.already_have();
    if have > 0 {
        tracing::info!(path = args.path, have, size = args.size, "resuming a push");
    }
    let ready = PutReady {
        have,
        credit: PUT_WINDOW,
    };
    if outbox.send(Body::PutReady(ready)).await.is_err() {
        return;
    }
    let mut expected = have;
    let link = outbox.watch();
    while let Some(up) = followups.recv().await {
        if *link.borrow() == super::LinkState::Gone {
            // Writes still queued from a session that is gone are dropped:
            // a resumed push may already be writing the same file.
            break;
        }
        match up {
            FollowUp::Write {
                offset,
                data,
                permit,
                within_credit,
            } => {
                if !within_credit {
                    let message = format!(
                        "write of {} bytes at offset {offset} goes beyond the credit granted; \
                         wait for Credit messages",
                        data.len()
                    );
                    let _ = outbox.error(ErrorCode::CREDIT_EXCEEDED, &message).await;
                    return;
                }
                if offset != expected {
                    let message = format!(
                        "write at offset {offset}, but the file continues at offset {expected}"
                    );
                    let _ = outbox.error(ErrorCode::BAD_OFFSET, &message).await;
                    return;
                }
                if let Err(err) = handle.write_at(offset, &data).await {
                    return reply_error(outbox, &err).await;
                }
                drop(permit);
                expected += data.len() as u64;
                let more = credit
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .consumed(data.len());
                if let Some(more) = more {
                    if outbox.send(Body::Credit(more)).await.is_err() {
                        return;
                    }
                }
            }
            FollowUp::Commit => {
                let result = handle.commit().await;
                match result {
                    Ok(()) => {
                        let _ = outbox.send(Body::Ok).await;
                    }
                    Err(err) => reply_error(outbox, &err).await,
                }
                return;
            }
            FollowUp::Cancel => {
                tracing::info!(
                    path = args.path,
                    at = expected,
                    "push cancelled; data kept for a resume"
                );
                return;
            }
            FollowUp::Credit(_) | FollowUp::Stdin(..) | FollowUp::StdinClose => {
                tracing::debug!(id, "ignoring a follow-up that does not belong to a push");
            }
        }
    }
    // The session is gone: the data received stays for a resume.
    tracing::info!(
        path = args.path,
        at = expected,
        "push interrupted; data kept for a resume"
    );
}

/// A `Get` request, owned.
#[derive(Debug, Clone)]
pub(crate) struct GetArgs {
    path: String,
    offset: u64,
    credit: u32,
}

impl GetArgs {
    pub(crate) fn from_wire(get: &Get<'_>) -> Self {
        GetArgs {
            path: get.path.to_string(),
            offset: get.offset,
            credit: get.credit,
        }
    }
}

/// Serves a pull.
pub(crate) async fn get(
    ctx: Ctx,
    id: u32,
    args: GetArgs,
    mut followups: mpsc::UnboundedReceiver<FollowUp>,
) {
    let outbox = ctx.link.outbox(id);
    let store = ctx.agent.store();
    let reader = match store.get(&args.path, args.offset).await {
        Ok(r) => r,
        Err(err) => return reply_error(&outbox, &err).await,
    };
    // The whole file's hash: the part before the offset is read first.
    let mut hasher = Sha256::new();
    if args.offset > 0 {
        let prefix = match store.get(&args.path, 0).await {
            Ok(r) => r,
            Err(err) => return reply_error(&outbox, &err).await,
        };
        match hash_into(prefix.take(args.offset), &mut hasher).await {
            Ok(n) if n == args.offset => {}
            Ok(_) => {
                let message = "the file shrank while it was being read; pull it again";
                let _ = outbox.error(ErrorCode::IO, message).await;
                return;
            }
            Err(err) => {
                let _ = outbox
                    .error(ErrorCode::IO, &format!("reading {}: {err}", args.path))
                    .await;
                return;
            }
        }
    }
    let remaining = reader.remaining();
    let mut reader = reader.take(remaining);
    let mut credit = SendCredit::new(args.credit);
    let mut offset = args.offset;
    let mut buf = vec![0u8; outbox.max_payload()];
    loop {
        // Wait for credit, taking every follow-up that already arrived.
        loop {
            let next = if credit.available() == 0 {
                followups.recv().await
            } else {
                match followups.try_recv() {
                    Ok(up) => Some(up),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => None,
                }
            };
            match next {
                Some(FollowUp::Credit(n)) => credit.grant(n),
                Some(FollowUp::Cancel) | None => return,
                Some(_) => {
                    tracing::debug!(id, "ignoring a follow-up that does not belong to a pull")
                }
            }
        }
        let want = (credit.available() as usize).min(buf.len());
        let n = match read_some(&mut reader, &mut buf[..want]).await {
            Ok(n) => n,
            Err(err) => {
                let _ = outbox
                    .error(ErrorCode::IO, &format!("reading {}: {err}", args.path))
                    .await;
                return;
            }
        };
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        let data = Data {
            offset,
            data: &buf[..n],
        };
        if outbox.send(Body::Data(data)).await.is_err() {
            return;
        }
        credit.take(n);
        offset += n as u64;
    }
    let hash = FileHash {
        size: offset,
        sha256: hasher.finalize().into(),
    };
    let _ = outbox.send(Body::HashReply(hash)).await;
}

/// Fills as much of `buf` as the reader gives before its end.
async fn read_some<R: AsyncRead + Unpin>(reader: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        let k = reader.read(&mut buf[n..]).await?;
        if k == 0 {
            break;
        }
        n += k;
    }
    Ok(n)
}

/// Feeds everything from `reader` into `hasher`; returns the byte count.
async fn hash_into<R: AsyncRead + Unpin>(
    mut reader: R,
    hasher: &mut Sha256,
) -> std::io::Result<u64> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            return Ok(total);
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
}

/// The one-shot path requests.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PathOp {
    Stat,
    List,
    Remove,
    Hash,
}

/// Serves `Stat`, `List`, `Remove` or `Hash`. A `Cancel` stops a listing.
pub(crate) async fn path_op(
    ctx: Ctx,
    id: u32,
    op: PathOp,
    path: String,
    mut followups: mpsc::UnboundedReceiver<FollowUp>,
) {
    let outbox = ctx.link.outbox(id);
    let store = ctx.agent.store();
    let result = match op {
        PathOp::Stat => match store.stat(&path).await {
            Ok(stat) => outbox
                .send(Body::StatReply(wire_stat(&stat)))
                .await
                .map_err(|_| None),
            Err(err) => Err(Some(err)),
        },
        PathOp::Remove => match store.remove(&path).await {
            Ok(()) => {
                tracing::info!(path, "removed");
                outbox.send(Body::Ok).await.map_err(|_| None)
            }
            Err(err) => Err(Some(err)),
        },
        PathOp::Hash => match hash_file(&ctx, &path).await {
            Ok(hash) => outbox.send(Body::HashReply(hash)).await.map_err(|_| None),
            Err(err) => Err(Some(err)),
        },
        PathOp::List => list(&ctx, &outbox, &path, &mut followups).await,
    };
    if let Err(Some(err)) = result {
        reply_error(&outbox, &err).await;
    }
}

async fn hash_file(ctx: &Ctx, path: &str) -> Result<FileHash, FileError> {
    let reader = ctx.agent.store().get(path, 0).await?;
    let limit = reader.remaining();
    let mut hasher = Sha256::new();
    let size = hash_into(reader.take(limit), &mut hasher)
        .await
        .map_err(|source| FileError::Io {
            op: "hashing",
            path: Path::new(path).to_path_buf(),
            source,
        })?;
    Ok(FileHash {
        size,
        sha256: hasher.finalize().into(),
    })
}

/// `Entry`… then `Ok`. `Err(None)`: the session is gone or the listing was
/// cancelled; nothing more to say.
async fn list(
    ctx: &Ctx,
    outbox: &Outbox,
    path: &str,
    followups: &mut mpsc::UnboundedReceiver<FollowUp>,
) -> Result<(), Option<FileError>> {
    let mut listing = ctx.agent.store().list(path).await.map_err(Some)?;
    loop {
        if let Ok(FollowUp::Cancel) | Err(mpsc::error::TryRecvError::Disconnected) =
            followups.try_recv()
        {
            return Err(None);
        }
        let batch = listing.next_batch(LIST_BATCH).await.map_err(Some)?;
        if batch.is_empty() {
            return outbox.send(Body::Ok).await.map_err(|_| None);
        }
        for entry in batch {
            let name = entry.name.to_string_lossy();
            let e = DirEntry {
                name: &name,
                stat: wire_stat(&entry.stat),
            };
            outbox.send(Body::Entry(e)).await.map_err(|_| None)?;
        }
    }
}

fn wire_stat(stat: &FileStat) -> WireStat {
    let mtime = stat
        .mtime
        .map_or(0, |t| match t.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
        });
    WireStat {
        kind: match stat.kind {
            FileKind::File => WireKind::File,
            FileKind::Dir => WireKind::Dir,
            FileKind::Symlink => WireKind::Symlink,
            FileKind::Other => WireKind::Other,
        },
        size: stat.size,
        mode: stat.mode,
        mtime,
    }
}
