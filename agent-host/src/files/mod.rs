//! The agent's file store: every file operation of the protocol, confined to
//! one root directory (`--root DIR`).
//!
//! Paths from the wire are relative to the root, or absolute inside the
//! root's canonical path; anything that leads outside is refused with
//! [`FileError::Escape`]: textual checks first, then every file system call
//! goes through a `cap_std::fs::Dir` on the root, which cannot be led out of
//! it (the `path` module explains why cap-std and what it implies). No
//! operation writes anywhere but the path asked for, except the hidden
//! temporary file of a put, which sits next to its target.
//!
//! All methods are async and run the file system calls on Tokio's blocking
//! thread pool, so a slow SD card never stalls the protocol task.
//!
//! ```no_run
//! use corral_agent::files::FileStore;
//! use sha2::{Digest, Sha256};
//!
//! # async fn demo() -> Result<(), corral_agent::files::FileError> {
//! let store = FileStore::open("/var/lib/corral/root")?;
//! let data = b"hello\n";
//! let sha256: [u8; 32] = Sha256::digest(data).into();
//! let mut put = store.open_put("logs/hello.txt", data.len() as u64, sha256, 0o644).await?;
//! let from = put.already_have();
//! put.write_at(from, &data[from as usize..]).await?;
//! put.commit().await?;
//! assert_eq!(store.hash("logs/hello.txt").await?, sha256);
//! # Ok(()) }
//! ```

mod error;
mod meta;
mod path;
mod put;
mod read;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cap_std::ambient_authority;
use cap_std::fs::Dir;

pub use error::FileError;
pub use meta::{DirEntryInfo, DirListing, FileKind, FileStat};
pub use put::{PutHandle, PUT_TEMP_PREFIX};
pub use read::FileReader;

/// A file store rooted at one directory. Cheap to clone; clones share the
/// root handle.
#[derive(Debug, Clone)]
pub struct FileStore {
    inner: Arc<StoreInner>,
}

#[derive(Debug)]
pub(crate) struct StoreInner {
    /// The root as a capability: every call resolves beneath it.
    dir: Dir,
    /// Canonical path of the root, for absolute wire paths and messages.
    root: PathBuf,
}

impl StoreInner {
    /// Classifies an I/O error on the wire path `wire`.
    pub(crate) fn err(&self, err: std::io::Error, op: &'static str, wire: &Path) -> FileError {
        FileError::from_io(err, op, wire, &self.root)
    }

    fn relative(&self, wire: &Path) -> Result<PathBuf, FileError> {
        path::relative(&self.root, wire)
    }

    /// `mkdir -p rel`, beneath the root.
    pub(crate) fn create_dir_all(&self, wire: &Path, rel: &Path) -> Result<(), FileError> {
        if rel.as_os_str().is_empty() {
            return Ok(());
        }
        let err = match self.dir.create_dir_all(rel) {
            Ok(()) => return Ok(()),
            Err(err) => err,
        };
        // cap-std reports a component that exists but is not a usable
        // directory (a file, or a symlink leading out) as `AlreadyExists`.
        // Find the first such component to say what is really wrong.
        let mut prefix = PathBuf::new();
        for component in rel.components() {
            prefix.push(component);
            match self.dir.metadata(&prefix) {
                Ok(meta) if meta.is_dir() => continue,
                Ok(_) => {
                    return Err(FileError::NotADirectory {
                        path: wire.to_path_buf(),
                    })
                }
                Err(e) if error::is_escape(&e) => return Err(self.err(e, "creating", wire)),
                Err(_) => break,
            }
        }
        Err(self.err(err, "creating", wire))
    }
}

/// Runs blocking file system work on Tokio's blocking pool.
pub(crate) async fn blocking<T, F>(inner: Arc<StoreInner>, work: F) -> Result<T, FileError>
where
    T: Send + 'static,
    F: FnOnce(&StoreInner) -> Result<T, FileError> + Send + 'static,
{
    let root = inner.root.clone();
    tokio::task::spawn_blocking(move || work(&inner))
        .await
        .unwrap_or_else(|join| {
            // Only a panic in this module (a bug) or a runtime shutting down
            // gets here; report it as an I/O failure rather than panic the
            // caller.
            Err(FileError::Io {
                op: "file operation",
                path: root,
                source: std::io::Error::other(join.to_string()),
            })
        })
}

impl FileStore {
    /// Opens the store on an existing directory. The root is canonicalised
    /// once, here; absolute wire paths are compared against that path.
    pub fn open(root: impl AsRef<Path>) -> Result<Self, FileError> {
        let given = root.as_ref();
        let canonical = std::fs::canonicalize(given)
            .map_err(|e| FileError::from_io(e, "opening the file root", given, given))?;
        if !canonical.is_dir() {
            return Err(FileError::NotADirectory {
                path: given.to_path_buf(),
            });
        }
        let dir = Dir::open_ambient_dir(&canonical, ambient_authority())
            .map_err(|e| FileError::from_io(e, "opening the file root", given, &canonical))?;
        tracing::info!(root = %canonical.display(), "file store opened");
        Ok(Self {
            inner: Arc::new(StoreInner {
                dir,
                root: canonical,
            }),
        })
    }

    /// Canonical path of the root. Absolute paths under it are accepted on
    /// the wire.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The absolute host path of an existing directory or file under the
    /// root, with symlinks resolved (only those that stay inside). Meant for
    /// resolving a command's working directory against the store.
    ///
    /// The answer is only true when it is given: unlike the other operations
    /// the caller then uses the path outside the store's protection.
    pub async fn host_path(&self, path: impl AsRef<Path>) -> Result<PathBuf, FileError> {
        let wire = path.as_ref().to_path_buf();
        let rel = self.inner.relative(&wire)?;
        blocking(Arc::clone(&self.inner), move |inner| {
            let inside = inner
                .dir
                .canonicalize(if rel.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    &rel
                })
                .map_err(|e| inner.err(e, "resolving", &wire))?;
            Ok(inner.root.join(inside))
        })
        .await
    }

    /// Metadata of a path. Symlinks are not followed: a symlink is reported as
    /// [`FileKind::Symlink`], wherever it points (looking at the link itself
    /// never leaves the root). Symlinked *parent* directories are followed
    /// only while they stay inside.
    pub async fn stat(&self, path: impl AsRef<Path>) -> Result<FileStat, FileError> {
        let wire = path.as_ref().to_path_buf();
        let rel = self.inner.relative(&wire)?;
        blocking(Arc::clone(&self.inner), move |inner| {
            let meta = if rel.as_os_str().is_empty() {
                inner.dir.dir_metadata()
            } else {
                inner.dir.symlink_metadata(&rel)
            }
            .map_err(|e| inner.err(e, "examining", &wire))?;
            Ok(FileStat::from_metadata(&meta))
        })
        .await
    }

    /// Starts listing a directory (the root for `""` or `"."`). Fetch the
    /// entries with [`DirListing::next_batch`].
    pub async fn list(&self, path: impl AsRef<Path>) -> Result<DirListing, FileError> {
        let wire = path.as_ref().to_path_buf();
        let rel = self.inner.relative(&wire)?;
        let entries = blocking(Arc::clone(&self.inner), {
            let wire = wire.clone();
            move |inner| {
                if rel.as_os_str().is_empty() {
                    inner.dir.entries()
                } else {
                    inner.dir.read_dir(&rel)
                }
                .map_err(|e| inner.err(e, "listing", &wire))
            }
        })
        .await?;
        Ok(DirListing::new(Arc::clone(&self.inner), wire, entries))
    }

    /// Opens a regular file for reading from `offset` (at most its size).
    pub async fn get(&self, path: impl AsRef<Path>, offset: u64) -> Result<FileReader, FileError> {
        let wire = path.as_ref().to_path_buf();
        let rel = self.inner.relative(&wire)?;
        blocking(Arc::clone(&self.inner), move |inner| {
            inner.get(&wire, &rel, offset)
        })
        .await
    }

    /// SHA-256 of a regular file.
    pub async fn hash(&self, path: impl AsRef<Path>) -> Result<[u8; 32], FileError> {
        let wire = path.as_ref().to_path_buf();
        let rel = self.inner.relative(&wire)?;
        blocking(Arc::clone(&self.inner), move |inner| {
            inner.hash(&wire, &rel)
        })
        .await
    }

    /// Removes a file, a symlink (the link itself, never its target) or an
    /// empty directory. The root itself is never removed.
    pub async fn remove(&self, path: impl AsRef<Path>) -> Result<(), FileError> {
        let wire = path.as_ref().to_path_buf();
        let rel = self.inner.relative(&wire)?;
        if path::is_root(&rel) {
            return Err(FileError::invalid(
                &wire,
                "refusing to remove the file root itself; name something inside it",
            ));
        }
        if rel.file_name().is_none() {
            return Err(FileError::invalid(
                &wire,
                "the path must end in the name to remove, not in `..`",
            ));
        }
        blocking(Arc::clone(&self.inner), move |inner| {
            let meta = inner
                .dir
                .symlink_metadata(&rel)
                .map_err(|e| inner.err(e, "examining", &wire))?;
            if meta.is_dir() {
                inner.dir.remove_dir(&rel)
            } else {
                inner.dir.remove_file(&rel)
            }
            .map_err(|e| inner.err(e, "removing", &wire))
        })
        .await
    }

    /// Creates a directory and its missing parents (`mkdir -p`), inside the
    /// root. An existing directory is fine.
    pub async fn create_dir_all(&self, path: impl AsRef<Path>) -> Result<(), FileError> {
        let wire = path.as_ref().to_path_buf();
        let rel = self.inner.relative(&wire)?;
        blocking(Arc::clone(&self.inner), move |inner| {
            inner.create_dir_all(&wire, &rel)
        })
        .await
    }

    /// Starts (or resumes) putting a file of `size` bytes with SHA-256
    /// `sha256` at `path`, with permission bits `mode` (at most `0o7777`,
    /// applied exactly, without umask) once committed. Missing parent
    /// directories are created inside the root.
    ///
    /// If an earlier put of the same content to the same target was
    /// interrupted, its data is reused: see [`PutHandle::already_have`].
    pub async fn open_put(
        &self,
        path: impl AsRef<Path>,
        size: u64,
        sha256: [u8; 32],
        mode: u32,
    ) -> Result<PutHandle, FileError> {
        let wire = path.as_ref().to_path_buf();
        let rel = self.inner.relative(&wire)?;
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || inner.open_put(&wire, &rel, size, sha256, mode))
            .await
            .unwrap_or_else(|join| {
                Err(FileError::Io {
                    op: "opening a put",
                    path: path.as_ref().to_path_buf(),
                    source: std::io::Error::other(join.to_string()),
                })
            })
    }
}
