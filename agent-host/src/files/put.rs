//! Atomic, resumable file puts.
//!
//! A put writes into a hidden temporary file next to the target, named after
//! the expected hash and the target name (`.corral-put-<16 hex>-<name>`). A
//! push that was interrupted (link lost, agent restarted) leaves that file
//! behind; a later put of the same content to the same target finds it and
//! reports its length as [`PutHandle::already_have`], so the pusher sends only
//! the rest. Nothing appears at the target until [`PutHandle::commit`] has
//! checked the size and SHA-256 of the whole file, synced it and renamed it
//! into place in one step: readers see the old file or the new one, never a
//! mix.
//!
//! Because the temporary file only ever grows by contiguous writes (gaps are
//! refused), its length is exactly the prefix received. If a power cut leaves
//! a prefix with garbage in it (file systems may extend a file before its data
//! reaches the disk), the hash check at commit catches it, deletes the file,
//! and the pusher starts over.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cap_std::fs::{Dir, OpenOptions, OpenOptionsExt};
use rustix::fs::OFlags;
use sha2::{Digest, Sha256};

use super::error::{hex, FileError};
use super::meta::FileKind;
use super::read::sha256_of;
use super::{blocking, StoreInner};

/// Prefix of temporary put files. A leading dot hides them from `ls` and
/// globs.
pub const PUT_TEMP_PREFIX: &str = ".corral-put-";

/// Longest file name most Linux file systems accept (`NAME_MAX`).
const NAME_MAX: usize = 255;

/// A put in progress. Write the bytes from [`already_have`](Self::already_have)
/// on with [`write_at`](Self::write_at), then [`commit`](Self::commit).
/// Dropping the handle without committing keeps the data received so far for
/// a later resume; [`discard`](Self::discard) deletes it.
#[derive(Debug)]
pub struct PutHandle {
    inner: Arc<StoreInner>,
    /// The target path as the caller gave it, for messages.
    wire: PathBuf,
    parent: Arc<Dir>,
    target_name: OsString,
    temp_name: OsString,
    file: Arc<std::fs::File>,
    size: u64,
    sha256: [u8; 32],
    mode: u32,
    already_have: u64,
    /// Length of the contiguous data in the temporary file.
    written: u64,
}

impl PutHandle {
    /// Bytes already present from an interrupted put of the same content to
    /// the same target; the pusher resumes at this offset. Zero for a fresh
    /// put.
    pub fn already_have(&self) -> u64 {
        self.already_have
    }

    /// Bytes present now (contiguous from offset 0).
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The announced size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Writes `data` at `offset`. The offset may repeat data already written
    /// (a retransmission) but may not leave a gap after the data present, and
    /// the write may not go past the announced size.
    pub async fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), FileError> {
        if offset > self.written {
            return Err(FileError::invalid(
                &self.wire,
                format!(
                    "write at offset {offset} would leave a gap: only {} bytes are present; \
                     continue from offset {}",
                    self.written, self.written
                ),
            ));
        }
        let end = offset
            .checked_add(data.len() as u64)
            .filter(|end| *end <= self.size)
            .ok_or_else(|| {
                FileError::invalid(
                    &self.wire,
                    format!(
                        "write of {} bytes at offset {offset} goes past the announced size of {} bytes",
                        data.len(),
                        self.size
                    ),
                )
            })?;
        if data.is_empty() {
            return Ok(());
        }
        let file = Arc::clone(&self.file);
        let data = data.to_vec();
        let wire = self.wire.clone();
        blocking(Arc::clone(&self.inner), move |inner| {
            file.write_all_at(&data, offset)
                .map_err(|e| inner.err(e, "writing", &wire))
        })
        .await?;
        self.written = self.written.max(end);
        Ok(())
    }

    /// Checks that the temporary file has the announced size and SHA-256,
    /// syncs it, gives it the requested mode and renames it over the target.
    ///
    /// A short file is [`FileError::SizeMismatch`] and stays for a resume; a
    /// hash mismatch is [`FileError::HashMismatch`] and deletes it, so nothing
    /// wrong ever appears at the target.
    pub async fn commit(self) -> Result<(), FileError> {
        let inner = Arc::clone(&self.inner);
        blocking(inner, move |inner| self.commit_blocking(inner)).await
    }

    fn commit_blocking(self, inner: &StoreInner) -> Result<(), FileError> {
        let wire = &self.wire;
        let len = self
            .file
            .metadata()
            .map_err(|e| inner.err(e, "examining the temporary file of", wire))?
            .len();
        if len != self.size {
            return Err(FileError::SizeMismatch {
                path: wire.clone(),
                expected: self.size,
                actual: len,
            });
        }
        let actual = sha256_of(PositionalReader::new(&self.file))
            .map_err(|e| inner.err(e, "hashing the temporary file of", wire))?;
        if actual != self.sha256 {
            if let Err(err) = self.parent.remove_file(&self.temp_name) {
                tracing::warn!(path = %wire.display(), %err, "removing a put with a wrong hash failed");
            }
            return Err(FileError::HashMismatch {
                path: wire.clone(),
                expected: self.sha256,
                actual,
            });
        }
        // fchmod on the open file: exact bits, no umask, no path lookup.
        self.file
            .set_permissions(std::fs::Permissions::from_mode(self.mode))
            .map_err(|e| inner.err(e, "setting the mode of", wire))?;
        self.file
            .sync_all()
            .map_err(|e| inner.err(e, "syncing", wire))?;
        // The target may have changed since the put was opened.
        check_target(inner, &self.parent, &self.target_name, wire)?;
        self.parent
            .rename(&self.temp_name, &self.parent, &self.target_name)
            .map_err(|e| inner.err(e, "renaming into place", wire))?;
        // Make the rename itself durable: it lives in the directory. The
        // `Dir` handle is an `O_PATH` descriptor, which cannot be synced, so
        // open the directory itself ("." beneath it cannot go anywhere else).
        let sync_dir = || -> std::io::Result<()> {
            let fd = rustix::fs::openat(
                &*self.parent,
                ".",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )?;
            rustix::fs::fsync(&fd)?;
            Ok(())
        };
        sync_dir().map_err(|e| inner.err(e, "syncing the directory of", wire))?;
        tracing::info!(path = %wire.display(), size = self.size, sha256 = %hex(&self.sha256), "put committed");
        Ok(())
    }

    /// Abandons the put and deletes the data received so far.
    pub async fn discard(self) -> Result<(), FileError> {
        let inner = Arc::clone(&self.inner);
        blocking(inner, move |inner| {
            match self.parent.remove_file(&self.temp_name) {
                Ok(()) => Ok(()),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(err) => Err(inner.err(err, "removing the temporary file of", &self.wire)),
            }
        })
        .await
    }
}

/// Reads a file from offset 0 with `pread`, independent of the descriptor's
/// position.
struct PositionalReader<'a> {
    file: &'a std::fs::File,
    offset: u64,
}

impl<'a> PositionalReader<'a> {
    fn new(file: &'a std::fs::File) -> Self {
        Self { file, offset: 0 }
    }
}

impl std::io::Read for PositionalReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read_at(buf, self.offset)?;
        self.offset += n as u64;
        Ok(n)
    }
}

/// Name of the temporary file for `target_name` with hash `sha256`.
pub(crate) fn temp_name(target_name: &OsStr, sha256: &[u8; 32]) -> OsString {
    let mut name = OsString::from(PUT_TEMP_PREFIX);
    name.push(hex(&sha256[..8]));
    name.push("-");
    if PUT_TEMP_PREFIX.len() + 17 + target_name.len() <= NAME_MAX {
        name.push(target_name);
    } else {
        // A long target name would make the temporary name too long for the
        // file system: use a hash of the name instead, still unique per target.
        let digest = Sha256::digest(target_name.as_bytes());
        name.push(hex(&digest[..16]));
    }
    name
}

/// Refuses a target that is a directory or a symlink leading out of the root.
/// A symlink that stays inside is replaced by the file (the rename does not
/// write through it).
fn check_target(
    inner: &StoreInner,
    parent: &Dir,
    target_name: &OsStr,
    wire: &Path,
) -> Result<(), FileError> {
    let meta = match parent.symlink_metadata(target_name) {
        Ok(meta) => meta,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(inner.err(err, "examining", wire)),
    };
    let kind = super::meta::FileStat::from_metadata(&meta).kind;
    if kind == FileKind::Dir {
        return Err(FileError::IsADirectory {
            path: wire.to_path_buf(),
        });
    }
    if kind == FileKind::Symlink {
        match parent.metadata(target_name) {
            Ok(_) => {}
            // A dangling link inside the root is fine to replace.
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(inner.err(err, "examining", wire)),
        }
    }
    Ok(())
}

impl StoreInner {
    pub(crate) fn open_put(
        self: &Arc<Self>,
        wire: &Path,
        rel: &Path,
        size: u64,
        sha256: [u8; 32],
        mode: u32,
    ) -> Result<PutHandle, FileError> {
        if mode & !0o7777 != 0 {
            return Err(FileError::invalid(
                wire,
                format!("mode {mode:#o} has bits beyond 0o7777; give permission bits only"),
            ));
        }
        let Some(target_name) = rel.file_name().map(OsStr::to_os_string) else {
            return Err(FileError::invalid(
                wire,
                "a put needs a file name, not the root or a path ending in `..`",
            ));
        };
        let parent_rel = rel.parent().unwrap_or(Path::new(""));
        let parent = if parent_rel.as_os_str().is_empty() {
            self.dir.try_clone()
        } else {
            // mkdir -p inside the root; cap-std refuses to create anything
            // through a symlink that leads out.
            self.create_dir_all(wire, parent_rel)?;
            self.dir.open_dir(parent_rel)
        }
        .map_err(|e| self.err(e, "opening the directory of", wire))?;
        check_target(self, &parent, &target_name, wire)?;

        let temp_name = temp_name(&target_name, &sha256);
        // Only a regular file we made may be reused; anything else at the
        // temporary name (a symlink planted there, a directory) is not ours to
        // write through.
        match parent.symlink_metadata(&temp_name) {
            Ok(meta) if meta.is_file() => {}
            Ok(_) => {
                return Err(FileError::invalid(
                    wire,
                    format!(
                        "{} exists and is not a regular file; remove it to put this file",
                        parent_rel.join(&temp_name).display()
                    ),
                ))
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(self.err(err, "examining the temporary file of", wire)),
        }
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true);
        // Partial data is private until committed; the requested mode is set
        // at commit.
        options.mode(0o600);
        let file = parent
            .open_with(&temp_name, &options)
            .map_err(|e| self.err(e, "creating the temporary file of", wire))?
            .into_std();
        let mut already_have = file
            .metadata()
            .map_err(|e| self.err(e, "examining the temporary file of", wire))?
            .len();
        if already_have > size {
            // Same hash prefix but more data than announced: not a prefix of
            // this file. Start over.
            file.set_len(0)
                .map_err(|e| self.err(e, "truncating the temporary file of", wire))?;
            already_have = 0;
        }
        check_space(&parent, wire, size - already_have)?;
        tracing::debug!(path = %wire.display(), size, already_have, "put opened");
        Ok(PutHandle {
            inner: Arc::clone(self),
            wire: wire.to_path_buf(),
            parent: Arc::new(parent),
            target_name,
            temp_name,
            file: Arc::new(file),
            size,
            sha256,
            mode,
            already_have,
            written: already_have,
        })
    }
}

/// Refuses a put that cannot fit, before any byte is sent, rather than after
/// most of it was. Uses the space available to unprivileged users, so it can
/// refuse a put that root could still squeeze into reserved blocks.
fn check_space(parent: &Dir, wire: &Path, needed: u64) -> Result<(), FileError> {
    match rustix::fs::fstatvfs(parent) {
        Ok(vfs) => {
            let available = vfs.f_bavail.saturating_mul(vfs.f_frsize);
            if needed > available {
                return Err(FileError::NoSpace {
                    path: wire.to_path_buf(),
                });
            }
            Ok(())
        }
        // Some file systems cannot say; the write will tell.
        Err(err) => {
            tracing::debug!(path = %wire.display(), %err, "cannot query free space");
            Ok(())
        }
    }
}
