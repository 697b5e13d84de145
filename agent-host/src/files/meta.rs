//! File metadata ([`FileStat`]) and directory listings ([`DirListing`]).

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use cap_std::fs::{Metadata, MetadataExt, ReadDir};

use super::error::FileError;
use super::{blocking, StoreInner};

/// What kind of object a path names. Symlinks are reported as themselves,
/// never followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// Anything else: device, FIFO, socket.
    Other,
}

/// Metadata of one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStat {
    /// What the path names.
    pub kind: FileKind,
    /// Size in bytes (for a symlink, the length of its target text).
    pub size: u64,
    /// Permission bits, including setuid/setgid/sticky (`mode & 0o7777`).
    pub mode: u32,
    /// Last modification time, if the file system keeps one.
    pub mtime: Option<SystemTime>,
}

impl FileStat {
    pub(crate) fn from_metadata(meta: &Metadata) -> Self {
        let file_type = meta.file_type();
        let kind = if file_type.is_symlink() {
            FileKind::Symlink
        } else if file_type.is_dir() {
            FileKind::Dir
        } else if file_type.is_file() {
            FileKind::File
        } else {
            FileKind::Other
        };
        FileStat {
            kind,
            size: meta.len(),
            mode: meta.mode() & 0o7777,
            mtime: meta.modified().ok().map(|t| t.into_std()),
        }
    }
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntryInfo {
    /// The entry's name (not a path); may not be UTF-8.
    pub name: OsString,
    /// Its metadata, not following symlinks.
    pub stat: FileStat,
}

/// A directory being listed, batch by batch, so a directory with millions of
/// entries never has to fit in memory at once.
///
/// Entries come in the order the file system returns them (not sorted);
/// `.` and `..` are never included. An entry removed between being read and
/// being examined is skipped.
#[derive(Debug)]
pub struct DirListing {
    inner: Arc<StoreInner>,
    path: PathBuf,
    entries: Option<ReadDir>,
}

impl DirListing {
    pub(crate) fn new(inner: Arc<StoreInner>, path: PathBuf, entries: ReadDir) -> Self {
        Self {
            inner,
            path,
            entries: Some(entries),
        }
    }

    /// Up to `max` (at least 1) further entries; an empty vector means the
    /// listing is complete.
    pub async fn next_batch(&mut self, max: usize) -> Result<Vec<DirEntryInfo>, FileError> {
        let Some(mut entries) = self.entries.take() else {
            return Ok(Vec::new());
        };
        let max = max.max(1);
        let path = self.path.clone();
        let (entries, batch) = blocking(Arc::clone(&self.inner), move |inner| {
            let mut batch = Vec::new();
            while batch.len() < max {
                let Some(entry) = entries.next() else {
                    return Ok((None, batch));
                };
                let entry = entry.map_err(|e| inner.err(e, "listing", &path))?;
                let meta = match entry.metadata() {
                    Ok(meta) => meta,
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(err) => return Err(inner.err(err, "examining an entry of", &path)),
                };
                batch.push(DirEntryInfo {
                    name: entry.file_name(),
                    stat: FileStat::from_metadata(&meta),
                });
            }
            Ok((Some(entries), batch))
        })
        .await?;
        self.entries = entries;
        Ok(batch)
    }
}
