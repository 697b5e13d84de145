//! Reading files out of the store: [`FileReader`] for `get`, and hashing.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use cap_std::fs::{File, OpenOptions, OpenOptionsExt};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, ReadBuf};

use super::error::FileError;
use super::meta::{FileKind, FileStat};
use super::StoreInner;

/// Read buffer for hashing: large enough that the cost of each `read` call
/// vanishes next to SHA-256 itself (over 1 GB/s on CPUs with SHA-NI, which
/// `sha2` detects at run time), and a negligible allocation.
const HASH_BUF: usize = 256 * 1024;

/// An open file being read from an offset (the `get` operation).
#[derive(Debug)]
pub struct FileReader {
    file: tokio::fs::File,
    size: u64,
    offset: u64,
}

impl FileReader {
    /// Size of the whole file when it was opened.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The offset reading started at.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Bytes from the offset to the end, as the file was when opened.
    pub fn remaining(&self) -> u64 {
        self.size - self.offset
    }

    /// The underlying file, positioned at the offset.
    pub fn into_file(self) -> tokio::fs::File {
        self.file
    }
}

impl AsyncRead for FileReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.file).poll_read(cx, buf)
    }
}

impl StoreInner {
    /// Opens a regular file for reading, following symlinks only while they
    /// stay under the root.
    pub(crate) fn open_regular(&self, wire: &Path, rel: &Path) -> Result<File, FileError> {
        let mut options = OpenOptions::new();
        options.read(true);
        // A FIFO would block `open` until some writer shows up; with
        // O_NONBLOCK it opens at once and is refused below as not a file.
        // The flag has no effect on regular files.
        options.custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32);
        let file = self
            .dir
            .open_with(rel, &options)
            .map_err(|e| self.err(e, "opening", wire))?;
        let meta = file
            .metadata()
            .map_err(|e| self.err(e, "examining", wire))?;
        match FileStat::from_metadata(&meta).kind {
            FileKind::File => Ok(file),
            FileKind::Dir => Err(FileError::IsADirectory {
                path: wire.to_path_buf(),
            }),
            FileKind::Symlink | FileKind::Other => Err(FileError::NotAFile {
                path: wire.to_path_buf(),
            }),
        }
    }

    pub(crate) fn get(
        &self,
        wire: &Path,
        rel: &Path,
        offset: u64,
    ) -> Result<FileReader, FileError> {
        let file = self.open_regular(wire, rel)?;
        let size = file
            .metadata()
            .map_err(|e| self.err(e, "examining", wire))?
            .len();
        if offset > size {
            return Err(FileError::invalid(
                wire,
                format!("offset {offset} is past the end of the file ({size} bytes)"),
            ));
        }
        let mut file = file.into_std();
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| self.err(e, "seeking in", wire))?;
        // O_NONBLOCK stays on the descriptor; reads of a regular file ignore it.
        Ok(FileReader {
            file: tokio::fs::File::from_std(file),
            size,
            offset,
        })
    }

    pub(crate) fn hash(&self, wire: &Path, rel: &Path) -> Result<[u8; 32], FileError> {
        let file = self.open_regular(wire, rel)?;
        sha256_of(file.into_std()).map_err(|e| self.err(e, "hashing", wire))
    }
}

/// SHA-256 of everything readable from `reader`.
pub(crate) fn sha256_of(mut reader: impl Read) -> std::io::Result<[u8; 32]> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; HASH_BUF];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        }
    }
    Ok(hasher.finalize().into())
}
