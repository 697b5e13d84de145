//! The file store a board gives the agent: the [`FileStore`] trait, its
//! error type, and [`NoFiles`] for boards without storage.
//!
//! The agent turns the protocol's file requests into calls of this trait and
//! does the flow control, streaming and replies itself; a store only keeps
//! bytes. [`RamStore`](crate::RamStore) implements it in RAM; a flash store
//! would implement the same calls over its pages.

use corral_protocol::message::{DirEntry, ErrorCode, FileHash, FileStat};

/// Why a store refused an operation: a protocol error code and a short,
/// fixed explanation for a human, sent as the
/// [`ErrorReply`](corral_protocol::message::ErrorReply).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreError {
    /// What kind of failure.
    pub code: ErrorCode,
    /// Why, in a few words (keep it under 100 bytes: it must fit a reply).
    pub message: &'static str,
}

impl StoreError {
    /// An error with this code and explanation.
    pub const fn new(code: ErrorCode, message: &'static str) -> Self {
        StoreError { code, message }
    }
}

/// Capacity of a store, for the handshake's
/// [`Limits`](corral_protocol::message::Limits).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreInfo {
    /// Bytes the store holds in all.
    pub capacity: u64,
    /// Bytes free now (space reserved by an unfinished put is not free).
    pub free: u64,
    /// Largest file it takes.
    pub max_file: u64,
}

/// Storage for files pushed and pulled by the gateway.
///
/// There is at most one put at a time (the agent answers a second one with
/// `BUSY`). A put is resumable: if it is interrupted (the gateway restarted,
/// the link was lost), the store keeps what it received, and a later
/// [`put_open`](Self::put_open) of the same path, size and hash reports those
/// bytes so the pusher sends only the rest. Nothing is visible at the path
/// until [`put_commit`](Self::put_commit) has checked the SHA-256; a reader
/// sees the old file or the new one, never a mix.
///
/// Every call must return quickly (the agent makes them from its poll). A
/// store that needs time, like flash being erased, says so through
/// [`put_room`](Self::put_room): the agent then grants the pusher no more
/// credit until there is room.
pub trait FileStore {
    /// An open file or directory, for reading it piece by piece across polls.
    /// It must stay safe to use after the store changed (a read of a file
    /// replaced or removed since then fails with an error).
    type Handle: Copy;

    /// Write credit the agent keeps granted to a pusher: bytes it may send
    /// ahead of what was written. Bigger keeps a fast line busy, smaller
    /// limits what sits in the link's buffers.
    const PUT_WINDOW: u32 = 2048;

    /// Capacity and free space.
    fn info(&self) -> StoreInfo;

    /// Starts, or resumes, putting a file of `size` bytes whose SHA-256 is
    /// `sha256`. Returns the number of bytes already held from an interrupted
    /// put of the same path, size and hash (0 for a new put); the next write
    /// starts there. Any other unfinished put is discarded. A put that cannot
    /// fit is refused here, before any data is sent (`NO_SPACE`,
    /// `TOO_LARGE`).
    fn put_open(
        &mut self,
        path: &str,
        size: u64,
        sha256: &[u8; 32],
        mode: u32,
    ) -> Result<u64, StoreError>;

    /// Bytes [`put_write`](Self::put_write) can take now without blocking.
    /// The agent never grants a pusher more credit than this. It asks again
    /// at every poll, so a store that becomes ready (an erase finished)
    /// should make the board call [`Agent::poll`](crate::Agent::poll) soon,
    /// e.g. from the interrupt that ends its wait.
    fn put_room(&self) -> u64 {
        u64::MAX
    }

    /// Writes the open put's bytes at `offset`, which must not leave a gap
    /// after the bytes already held (`BAD_OFFSET`). Bytes before that point
    /// are the ones already held and are skipped.
    fn put_write(&mut self, offset: u64, data: &[u8]) -> Result<(), StoreError>;

    /// Finishes the open put: checks that all bytes arrived and that their
    /// SHA-256 is the announced one (else `HASH_MISMATCH`, and the data is
    /// discarded), then makes the file visible at its path in one step,
    /// replacing any file there.
    fn put_commit(&mut self) -> Result<(), StoreError>;

    /// Opens a regular file for reading; returns its handle, size and
    /// SHA-256.
    fn open_file(&mut self, path: &str) -> Result<(Self::Handle, FileHash), StoreError>;

    /// Reads from an open file at `offset` into `buf`; returns the bytes
    /// read (0 only at the end of the file).
    fn read(
        &mut self,
        file: &Self::Handle,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, StoreError>;

    /// Opens a directory for listing.
    fn open_dir(&mut self, path: &str) -> Result<Self::Handle, StoreError>;

    /// The `index`-th entry of an open directory, `None` past the last.
    fn entry(
        &mut self,
        dir: &Self::Handle,
        index: usize,
    ) -> Result<Option<DirEntry<'_>>, StoreError>;

    /// Facts about a path.
    fn stat(&mut self, path: &str) -> Result<FileStat, StoreError>;

    /// Size and SHA-256 of a file. Stores keep the hash they verified at
    /// commit, so this is cheap.
    fn hash(&mut self, path: &str) -> Result<FileHash, StoreError>;

    /// Removes a file.
    fn remove(&mut self, path: &str) -> Result<(), StoreError>;
}

/// The store of a board without file storage: every call is refused. With
/// it, [`Platform::files`](crate::Platform::files) returns `None` and the
/// agent answers file requests `Unsupported`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoFiles;

/// An offset past the end of a file.
pub(crate) const PAST_END: StoreError =
    StoreError::new(ErrorCode::BAD_OFFSET, "offset past the end of the file");

const NO_STORE: StoreError = StoreError::new(ErrorCode::NOT_FOUND, "this device has no file store");

impl FileStore for NoFiles {
    type Handle = ();

    fn info(&self) -> StoreInfo {
        StoreInfo::default()
    }
    fn put_open(&mut self, _: &str, _: u64, _: &[u8; 32], _: u32) -> Result<u64, StoreError> {
        Err(NO_STORE)
    }
    fn put_write(&mut self, _: u64, _: &[u8]) -> Result<(), StoreError> {
        Err(NO_STORE)
    }
    fn put_commit(&mut self) -> Result<(), StoreError> {
        Err(NO_STORE)
    }
    fn open_file(&mut self, _: &str) -> Result<((), FileHash), StoreError> {
        Err(NO_STORE)
    }
    fn read(&mut self, _: &(), _: u64, _: &mut [u8]) -> Result<usize, StoreError> {
        Err(NO_STORE)
    }
    fn open_dir(&mut self, _: &str) -> Result<(), StoreError> {
        Err(NO_STORE)
    }
    fn entry(&mut self, _: &(), _: usize) -> Result<Option<DirEntry<'_>>, StoreError> {
        Err(NO_STORE)
    }
    fn stat(&mut self, _: &str) -> Result<FileStat, StoreError> {
        Err(NO_STORE)
    }
    fn hash(&mut self, _: &str) -> Result<FileHash, StoreError> {
        Err(NO_STORE)
    }
    fn remove(&mut self, _: &str) -> Result<(), StoreError> {
        Err(NO_STORE)
    }
}
