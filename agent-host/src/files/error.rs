//! Errors of the file store, one variant per wire error code.

use std::io;
use std::path::{Path, PathBuf};

/// Why a file operation failed. Each variant names the path as the caller gave
/// it, so the message makes sense on the gateway side.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// The path, or a directory on the way to it, does not exist.
    #[error("no such file or directory: {}", .path.display())]
    NotFound {
        /// The path as requested.
        path: PathBuf,
    },
    /// The operating system refused access (file mode, read-only mount, …).
    #[error("permission denied: {}", .path.display())]
    PermissionDenied {
        /// The path as requested.
        path: PathBuf,
    },
    /// The path leads outside the store's root: through `..`, as an absolute
    /// path elsewhere, or through a symlink (absolute symlinks always count as
    /// leaving the root).
    #[error(
        "path {} leads outside the file root {}; give a path relative to the root, \
         or an absolute path inside it, without `..` or symlinks that leave it",
        .path.display(), .root.display()
    )]
    Escape {
        /// The path as requested.
        path: PathBuf,
        /// The store's root (canonical).
        root: PathBuf,
    },
    /// The operation needs a regular file and the path is something else
    /// (a device, a FIFO, a socket).
    #[error("not a regular file: {}", .path.display())]
    NotAFile {
        /// The path as requested.
        path: PathBuf,
    },
    /// The operation needs a file and the path is a directory.
    #[error("is a directory: {}", .path.display())]
    IsADirectory {
        /// The path as requested.
        path: PathBuf,
    },
    /// The operation needs a directory (to list it, or to go through it) and
    /// found something else.
    #[error("not a directory: {}", .path.display())]
    NotADirectory {
        /// The path as requested.
        path: PathBuf,
    },
    /// Only empty directories are removed.
    #[error("directory not empty: {}", .path.display())]
    NotEmpty {
        /// The path as requested.
        path: PathBuf,
    },
    /// The pushed data does not have the announced SHA-256; it was deleted.
    #[error(
        "hash mismatch for {}: expected {}, got {}; the partial file was deleted, push it again",
        .path.display(), hex(.expected), hex(.actual)
    )]
    HashMismatch {
        /// The path as requested.
        path: PathBuf,
        /// The hash announced when the put was opened.
        expected: [u8; 32],
        /// The hash of the data received.
        actual: [u8; 32],
    },
    /// A put was committed before all announced bytes were written. The data
    /// so far is kept, so the push can resume.
    #[error(
        "incomplete put of {}: {expected} bytes announced, {actual} received; resume from {actual}",
        .path.display()
    )]
    SizeMismatch {
        /// The path as requested.
        path: PathBuf,
        /// The size announced when the put was opened.
        expected: u64,
        /// The bytes present.
        actual: u64,
    },
    /// The file system is full (or the quota is used up).
    #[error("no space left on the device for {}", .path.display())]
    NoSpace {
        /// The path as requested.
        path: PathBuf,
    },
    /// The request itself is wrong (bad offset, bad mode, a path that cannot
    /// name a file, removing the root, …); the reason says what to change.
    #[error("invalid request for {}: {reason}", .path.display())]
    InvalidArgument {
        /// The path as requested.
        path: PathBuf,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// Any other I/O failure.
    #[error("{op} {}: {source}", .path.display())]
    Io {
        /// What the store was doing ("reading", "renaming into place", …).
        op: &'static str,
        /// The path as requested.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl FileError {
    pub(crate) fn invalid(path: &Path, reason: impl Into<String>) -> Self {
        FileError::InvalidArgument {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }

    /// Classifies an I/O error from an operation on `path`.
    pub(crate) fn from_io(err: io::Error, op: &'static str, path: &Path, root: &Path) -> Self {
        let path = path.to_path_buf();
        if is_escape(&err) {
            return FileError::Escape {
                path,
                root: root.to_path_buf(),
            };
        }
        if let Some(errno) = err.raw_os_error().map(rustix::io::Errno::from_raw_os_error) {
            use rustix::io::Errno;
            match errno {
                Errno::NOSPC | Errno::DQUOT => return FileError::NoSpace { path },
                Errno::NOTDIR => return FileError::NotADirectory { path },
                Errno::ISDIR => return FileError::IsADirectory { path },
                Errno::NOTEMPTY => return FileError::NotEmpty { path },
                _ => {}
            }
        }
        match err.kind() {
            io::ErrorKind::NotFound => FileError::NotFound { path },
            io::ErrorKind::PermissionDenied => FileError::PermissionDenied { path },
            _ => FileError::Io {
                op,
                path,
                source: err,
            },
        }
    }
}

/// cap-std reports every attempt to leave its directory (`..` above it, an
/// absolute symlink, a symlink leading out) as a synthesised
/// `PermissionDenied` error that carries no OS error number, while a real
/// `EACCES` always has one. That difference is what tells an escape from a
/// permission problem.
pub(crate) fn is_escape(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::PermissionDenied && err.raw_os_error().is_none()
}

/// Lower-case hex of a hash.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
