//! [`RamStore`]: a file store in a fixed block of RAM.
//!
//! Files are kept back to back in one byte pool, each as its name followed by
//! its content; a table of `FILES` entries records where each starts, its
//! size, mode and SHA-256. An unfinished put lives right after the last file
//! and becomes a file when its commit passes the hash check, so the old file
//! of the same name stays readable until that moment. Removing or replacing
//! a file moves everything after it down (one `copy_within` of at most
//! `BYTES` bytes): no fragmentation, and "free space" is simply the tail.
//!
//! The pool has one flat directory: paths are plain names, with an optional
//! leading `/`; `""`, `"/"` and `"."` name the directory itself.

use corral_protocol::message::{DirEntry, ErrorCode, FileHash, FileKind, FileStat};
use sha2::{Digest, Sha256};

use crate::store::{FileStore, StoreError, StoreInfo, PAST_END};

/// Longest file name the RAM store takes, in bytes.
pub const MAX_NAME: usize = 64;

/// A file or the directory, opened for reading by [`RamStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RamHandle(Opened);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opened {
    Root,
    /// A file by table index and generation: a read after the file was
    /// replaced or removed notices that the generation changed.
    File {
        index: u16,
        generation: u32,
    },
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Where the name starts in the pool; the content follows it.
    start: u32,
    name_len: u8,
    size: u32,
    mode: u32,
    sha256: [u8; 32],
    generation: u32,
}

impl Entry {
    fn span(&self) -> usize {
        usize::from(self.name_len) + self.size as usize
    }

    fn data_start(&self) -> usize {
        self.start as usize + usize::from(self.name_len)
    }
}

/// An unfinished put. Its name and the bytes received so far sit in the pool
/// right after the last file.
#[derive(Debug, Clone)]
struct Pending {
    name_len: u8,
    size: u32,
    written: u32,
    mode: u32,
    sha256: [u8; 32],
    /// Hash of the bytes received so far, so that commit costs nothing and a
    /// resumed put goes on hashing where it stopped.
    hasher: Sha256,
}

impl Pending {
    fn reserved(&self) -> usize {
        usize::from(self.name_len) + self.size as usize
    }
}

/// A file store of at most `FILES` files and `BYTES` bytes (names included)
/// in RAM. It loses its content at reset, which suits test binaries and
/// scratch data; a board with flash would implement
/// [`FileStore`] over it instead.
///
/// `new` is a `const fn`, so a board can place the store in a `static` (it
/// is `BYTES` plus about 60 bytes per file plus 170 bytes).
///
/// ```
/// use corral_agent_core::{FileStore, RamStore};
/// use sha2::{Digest, Sha256};
///
/// let mut store = RamStore::<4, 256>::new();
/// let data = b"hello\n";
/// let sha: [u8; 32] = Sha256::digest(data).into();
/// let have = store.put_open("greeting.txt", data.len() as u64, &sha, 0o644).unwrap();
/// store.put_write(have, &data[have as usize..]).unwrap();
/// store.put_commit().unwrap();
/// assert_eq!(store.hash("/greeting.txt").unwrap().sha256, sha);
/// ```
pub struct RamStore<const FILES: usize, const BYTES: usize> {
    pool: [u8; BYTES],
    files: [Option<Entry>; FILES],
    /// Bytes of committed files at the start of the pool.
    used: usize,
    put: Option<Pending>,
    next_generation: u32,
}

impl<const FILES: usize, const BYTES: usize> Default for RamStore<FILES, BYTES> {
    fn default() -> Self {
        Self::new()
    }
}

const NOT_FOUND: StoreError = StoreError::new(ErrorCode::NOT_FOUND, "no such file");
const NO_PUT: StoreError = StoreError::new(ErrorCode::NO_SUCH_REQUEST, "no put is open");
const IS_DIR: StoreError =
    StoreError::new(ErrorCode::IS_A_DIRECTORY, "names the directory, not a file");
const NOT_DIR: StoreError =
    StoreError::new(ErrorCode::NOT_A_DIRECTORY, "names a file, not a directory");
const FULL_TABLE: StoreError = StoreError::new(
    ErrorCode::NO_SPACE,
    "the file store holds no more files: remove one",
);

/// What a path names in the flat store.
enum Path<'a> {
    Root,
    File(&'a str),
}

fn parse(path: &str) -> Result<Path<'_>, StoreError> {
    let name = path.strip_prefix('/').unwrap_or(path);
    if name.is_empty() || name == "." {
        return Ok(Path::Root);
    }
    if name == ".." {
        return Err(StoreError::new(
            ErrorCode::OUTSIDE_ROOT,
            "`..` leaves the file store",
        ));
    }
    if name.contains('/') {
        return Err(StoreError::new(
            ErrorCode::INVALID_ARGUMENT,
            "no subdirectories: use a plain file name",
        ));
    }
    if name.len() > MAX_NAME || name.contains('\0') {
        return Err(StoreError::new(
            ErrorCode::INVALID_ARGUMENT,
            "file names are at most 64 bytes, without NUL",
        ));
    }
    Ok(Path::File(name))
}

fn file_name(path: &str) -> Result<&str, StoreError> {
    match parse(path)? {
        Path::File(name) => Ok(name),
        Path::Root => Err(IS_DIR),
    }
}

impl<const FILES: usize, const BYTES: usize> RamStore<FILES, BYTES> {
    /// An empty store.
    pub const fn new() -> Self {
        RamStore {
            pool: [0; BYTES],
            files: [None; FILES],
            used: 0,
            put: None,
            next_generation: 1,
        }
    }

    /// Number of files held.
    pub fn len(&self) -> usize {
        self.files.iter().flatten().count()
    }

    /// True if no file is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The content of a file, for a board's own commands.
    pub fn contents(&self, path: &str) -> Option<&[u8]> {
        let name = file_name(path).ok()?;
        let e = self.files[self.find(name)?]?;
        Some(&self.pool[e.data_start()..e.data_start() + e.size as usize])
    }

    // The pool is indexed with `get` throughout: the entries' bounds always
    // hold, and panicking indexing would keep panic paths and their
    // locations in firmware for nothing.

    fn name_of(&self, e: &Entry) -> &[u8] {
        self.pool
            .get(e.start as usize..e.data_start())
            .unwrap_or_default()
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.files.iter().position(|f| {
            f.as_ref()
                .is_some_and(|e| self.name_of(e) == name.as_bytes())
        })
    }

    fn pending_name(&self) -> Option<&[u8]> {
        let p = self.put.as_ref()?;
        self.pool
            .get(self.used..self.used + usize::from(p.name_len))
    }

    /// Removes `len` bytes at `start` from the pool, moving the files after
    /// it, and the unfinished put's bytes, down.
    fn cut(&mut self, start: usize, len: usize) {
        let put_bytes = self
            .put
            .as_ref()
            .map_or(0, |p| usize::from(p.name_len) + p.written as usize);
        let tail = self.used + put_bytes;
        self.pool.copy_within(start + len..tail, start);
        for e in self.files.iter_mut().flatten() {
            if e.start as usize > start {
                e.start -= len as u32;
            }
        }
        self.used -= len;
    }

    fn entry_at(&self, handle: &RamHandle) -> Result<Entry, StoreError> {
        match handle.0 {
            Opened::File { index, generation } => {
                match self.files.get(usize::from(index)).copied().flatten() {
                    Some(e) if e.generation == generation => Ok(e),
                    _ => Err(StoreError::new(
                        ErrorCode::NOT_FOUND,
                        "file replaced or removed while open",
                    )),
                }
            }
            Opened::Root => Err(IS_DIR),
        }
    }
}

fn stat_of(e: &Entry) -> FileStat {
    FileStat {
        kind: FileKind::File,
        size: u64::from(e.size),
        mode: e.mode,
        mtime: 0,
    }
}

const ROOT_STAT: FileStat = FileStat {
    kind: FileKind::Dir,
    size: 0,
    mode: 0o755,
    mtime: 0,
};

impl<const FILES: usize, const BYTES: usize> FileStore for RamStore<FILES, BYTES> {
    type Handle = RamHandle;

    fn info(&self) -> StoreInfo {
        let reserved = self.put.as_ref().map_or(0, Pending::reserved);
        StoreInfo {
            capacity: BYTES as u64,
            free: BYTES.saturating_sub(self.used + reserved) as u64,
            max_file: BYTES.saturating_sub(1) as u64,
        }
    }

    fn put_open(
        &mut self,
        path: &str,
        size: u64,
        sha256: &[u8; 32],
        mode: u32,
    ) -> Result<u64, StoreError> {
        let name = file_name(path)?;
        if let Some(p) = &self.put {
            if u64::from(p.size) == size
                && p.sha256 == *sha256
                && self.pending_name() == Some(name.as_bytes())
            {
                let have = p.written;
                if let Some(p) = &mut self.put {
                    p.mode = mode;
                }
                return Ok(u64::from(have));
            }
        }
        self.put = None;
        let too_large = StoreError::new(ErrorCode::TOO_LARGE, "larger than the whole file store");
        let size32 = u32::try_from(size).map_err(|_| too_large)?;
        let need = name.len() + size32 as usize;
        if need > BYTES {
            return Err(too_large);
        }
        let existing = self.find(name);
        if existing.is_none() && self.files.iter().all(Option::is_some) {
            return Err(FULL_TABLE);
        }
        if self.used + need > BYTES {
            return Err(StoreError::new(
                ErrorCode::NO_SPACE,
                if existing.is_some() {
                    "no room for the new file beside the old one: remove it first"
                } else {
                    "not enough free space"
                },
            ));
        }
        if let Some(dst) = self
            .pool
            .get_mut(self.used..)
            .and_then(|p| p.get_mut(..name.len()))
        {
            dst.copy_from_slice(name.as_bytes());
        }
        self.put = Some(Pending {
            name_len: name.len() as u8,
            size: size32,
            written: 0,
            mode,
            sha256: *sha256,
            hasher: Sha256::new(),
        });
        Ok(0)
    }

    fn put_write(&mut self, offset: u64, data: &[u8]) -> Result<(), StoreError> {
        let base = self.used;
        let Some(p) = &mut self.put else {
            return Err(NO_PUT);
        };
        let written = u64::from(p.written);
        if offset > written {
            return Err(StoreError::new(
                ErrorCode::BAD_OFFSET,
                "write leaves a gap after the bytes held",
            ));
        }
        let end = offset.saturating_add(data.len() as u64);
        if end > u64::from(p.size) {
            return Err(StoreError::new(
                ErrorCode::INVALID_ARGUMENT,
                "write goes past the announced size",
            ));
        }
        // The link delivers in order, so an overlap is a resumed pusher
        // repeating bytes it was not sure we had; we keep the ones we hashed.
        let skip = (written - offset) as usize;
        let Some(new) = data.get(skip..) else {
            return Ok(());
        };
        let at = base + usize::from(p.name_len) + p.written as usize;
        if let Some(dst) = self.pool.get_mut(at..).and_then(|p| p.get_mut(..new.len())) {
            dst.copy_from_slice(new);
        }
        p.hasher.update(new);
        p.written += new.len() as u32;
        Ok(())
    }

    fn put_commit(&mut self) -> Result<(), StoreError> {
        match &self.put {
            None => return Err(NO_PUT),
            Some(p) if p.written < p.size => {
                return Err(StoreError::new(
                    ErrorCode::INVALID_ARGUMENT,
                    "commit before all bytes were written",
                ))
            }
            Some(_) => {}
        }
        let Some(p) = self.put.take() else {
            return Err(NO_PUT);
        };
        let reserved = p.reserved();
        let digest: [u8; 32] = p.hasher.finalize().into();
        if digest != p.sha256 {
            return Err(StoreError::new(
                ErrorCode::HASH_MISMATCH,
                "data does not match the announced SHA-256; discarded",
            ));
        }
        let name_at = self.used;
        let name = self.pool.get(name_at..name_at + usize::from(p.name_len));
        let name = core::str::from_utf8(name.unwrap_or_default()).unwrap_or("");
        let existing = self.find(name);
        let Some(index) = existing.or_else(|| self.files.iter().position(Option::is_none)) else {
            // Unreachable: put_open checked for a free entry, and only
            // removals happened since. Refuse rather than lose a file.
            return Err(FULL_TABLE);
        };
        let mut start = self.used;
        self.used += reserved;
        if let Some(old) = existing.and_then(|i| self.files[i].take()) {
            self.cut(old.start as usize, old.span());
            start -= old.span();
        }
        self.files[index] = Some(Entry {
            start: start as u32,
            name_len: p.name_len,
            size: p.size,
            mode: p.mode,
            sha256: p.sha256,
            generation: self.next_generation,
        });
        self.next_generation = self.next_generation.wrapping_add(1);
        Ok(())
    }

    fn open_file(&mut self, path: &str) -> Result<(RamHandle, FileHash), StoreError> {
        let name = file_name(path)?;
        let index = self.find(name).ok_or(NOT_FOUND)?;
        let e = self.files[index].ok_or(NOT_FOUND)?;
        let handle = RamHandle(Opened::File {
            index: index as u16,
            generation: e.generation,
        });
        Ok((
            handle,
            FileHash {
                size: u64::from(e.size),
                sha256: e.sha256,
            },
        ))
    }

    fn read(&mut self, file: &RamHandle, offset: u64, buf: &mut [u8]) -> Result<usize, StoreError> {
        let e = self.entry_at(file)?;
        let size = u64::from(e.size);
        if offset > size {
            return Err(PAST_END);
        }
        let n = buf.len().min((size - offset) as usize);
        let at = e.data_start() + offset as usize;
        let src = self
            .pool
            .get(at..)
            .and_then(|p| p.get(..n))
            .unwrap_or_default();
        let n = src.len();
        buf[..n].copy_from_slice(src);
        Ok(n)
    }

    fn open_dir(&mut self, path: &str) -> Result<RamHandle, StoreError> {
        match parse(path)? {
            Path::Root => Ok(RamHandle(Opened::Root)),
            Path::File(name) if self.find(name).is_some() => Err(NOT_DIR),
            Path::File(_) => Err(StoreError::new(ErrorCode::NOT_FOUND, "no such directory")),
        }
    }

    fn entry(&mut self, dir: &RamHandle, index: usize) -> Result<Option<DirEntry<'_>>, StoreError> {
        if dir.0 != Opened::Root {
            return Err(NOT_DIR);
        }
        let Some(e) = self.files.iter().flatten().nth(index) else {
            return Ok(None);
        };
        let name = core::str::from_utf8(self.name_of(e)).unwrap_or("");
        Ok(Some(DirEntry {
            name,
            stat: stat_of(e),
        }))
    }

    fn stat(&mut self, path: &str) -> Result<FileStat, StoreError> {
        match parse(path)? {
            Path::Root => Ok(ROOT_STAT),
            Path::File(name) => {
                let e = self
                    .find(name)
                    .and_then(|i| self.files[i])
                    .ok_or(NOT_FOUND)?;
                Ok(stat_of(&e))
            }
        }
    }

    fn hash(&mut self, path: &str) -> Result<FileHash, StoreError> {
        self.open_file(path).map(|(_, h)| h)
    }

    fn remove(&mut self, path: &str) -> Result<(), StoreError> {
        let name = file_name(path)?;
        let index = self.find(name).ok_or(NOT_FOUND)?;
        if let Some(e) = self.files[index].take() {
            self.cut(e.start as usize, e.span());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(data: &[u8]) -> [u8; 32] {
        Sha256::digest(data).into()
    }

    fn put<const F: usize, const B: usize>(
        s: &mut RamStore<F, B>,
        path: &str,
        data: &[u8],
    ) -> Result<(), StoreError> {
        let have = s.put_open(path, data.len() as u64, &sha(data), 0o644)?;
        s.put_write(have, &data[have as usize..])?;
        s.put_commit()
    }

    #[test]
    fn files_survive_removal_of_their_neighbours() {
        let mut s = RamStore::<4, 64>::new();
        put(&mut s, "a", b"AAAA").unwrap();
        put(&mut s, "b", b"BBBBBB").unwrap();
        put(&mut s, "c", b"CC").unwrap();
        s.remove("b").unwrap();
        assert_eq!(s.contents("a"), Some(&b"AAAA"[..]));
        assert_eq!(s.contents("c"), Some(&b"CC"[..]));
        assert_eq!(s.info().free, 64 - (1 + 4) - (1 + 2));
        assert_eq!(s.remove("b"), Err(NOT_FOUND));
    }

    #[test]
    fn replacing_keeps_the_old_file_until_commit() {
        let mut s = RamStore::<4, 64>::new();
        put(&mut s, "x", b"old").unwrap();
        put(&mut s, "y", b"yy").unwrap();
        let new = b"new content";
        s.put_open("x", new.len() as u64, &sha(new), 0o600).unwrap();
        s.put_write(0, &new[..4]).unwrap();
        assert_eq!(
            s.contents("x"),
            Some(&b"old"[..]),
            "readers see the old file during the put"
        );
        s.put_write(4, &new[4..]).unwrap();
        s.put_commit().unwrap();
        assert_eq!(s.contents("x"), Some(&new[..]));
        assert_eq!(s.contents("y"), Some(&b"yy"[..]));
        assert_eq!(s.stat("x").unwrap().mode, 0o600);
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn a_reader_of_a_replaced_file_gets_an_error_not_a_mix() {
        let mut s = RamStore::<4, 64>::new();
        put(&mut s, "x", b"first").unwrap();
        let (h, _) = s.open_file("x").unwrap();
        let mut buf = [0u8; 2];
        assert_eq!(s.read(&h, 0, &mut buf), Ok(2));
        put(&mut s, "x", b"second").unwrap();
        assert_eq!(
            s.read(&h, 2, &mut buf).unwrap_err().code,
            ErrorCode::NOT_FOUND
        );
    }

    #[test]
    fn an_interrupted_put_resumes_and_survives_a_removal() {
        let mut s = RamStore::<4, 64>::new();
        put(&mut s, "a", b"AAAA").unwrap();
        let data = b"0123456789";
        assert_eq!(s.put_open("p", 10, &sha(data), 0o644), Ok(0));
        s.put_write(0, &data[..6]).unwrap();
        // The pending bytes move down with the pool.
        s.remove("a").unwrap();
        assert_eq!(s.put_open("/p", 10, &sha(data), 0o644), Ok(6));
        // A repeated overlap is skipped, not hashed twice.
        s.put_write(4, &data[4..]).unwrap();
        s.put_commit().unwrap();
        assert_eq!(s.contents("p"), Some(&data[..]));
    }

    #[test]
    fn a_different_put_discards_the_unfinished_one() {
        let mut s = RamStore::<4, 64>::new();
        let data = b"0123456789";
        s.put_open("p", 10, &sha(data), 0).unwrap();
        s.put_write(0, &data[..6]).unwrap();
        assert_eq!(s.put_open("p", 10, &sha(b"other data"), 0), Ok(0));
        assert_eq!(s.info().free, 64 - 11);
    }

    #[test]
    fn wrong_hash_gaps_and_overruns_are_refused() {
        let mut s = RamStore::<4, 64>::new();
        s.put_open("f", 4, &sha(b"abcd"), 0).unwrap();
        assert_eq!(
            s.put_write(1, b"x").unwrap_err().code,
            ErrorCode::BAD_OFFSET
        );
        assert_eq!(
            s.put_write(0, b"abcde").unwrap_err().code,
            ErrorCode::INVALID_ARGUMENT
        );
        assert_eq!(
            s.put_commit().unwrap_err().code,
            ErrorCode::INVALID_ARGUMENT
        );
        s.put_write(0, b"abce").unwrap();
        assert_eq!(s.put_commit().unwrap_err().code, ErrorCode::HASH_MISMATCH);
        assert_eq!(s.stat("f"), Err(NOT_FOUND));
        assert_eq!(
            s.put_commit(),
            Err(NO_PUT),
            "a failed hash check discards the put"
        );
        assert_eq!(s.info().free, 64);
    }

    #[test]
    fn space_and_table_limits_are_refused_up_front() {
        let mut s = RamStore::<2, 32>::new();
        assert_eq!(
            s.put_open("big", 40, &[0; 32], 0).unwrap_err().code,
            ErrorCode::TOO_LARGE
        );
        assert_eq!(
            s.put_open("big", u64::MAX, &[0; 32], 0).unwrap_err().code,
            ErrorCode::TOO_LARGE
        );
        put(&mut s, "a", &[1; 20]).unwrap();
        assert_eq!(
            s.put_open("b", 12, &[0; 32], 0).unwrap_err().code,
            ErrorCode::NO_SPACE
        );
        put(&mut s, "b", &[2; 5]).unwrap();
        assert_eq!(
            s.put_open("c", 1, &[0; 32], 0).unwrap_err().code,
            ErrorCode::NO_SPACE
        );
        // Replacing needs room for both copies until the commit.
        assert_eq!(
            s.put_open("a", 20, &[0; 32], 0).unwrap_err().code,
            ErrorCode::NO_SPACE
        );
    }

    #[test]
    fn paths_name_files_in_one_flat_directory() {
        let mut s = RamStore::<4, 64>::new();
        put(&mut s, "/one", b"1").unwrap();
        put(&mut s, "two", b"22").unwrap();
        assert_eq!(s.stat("").unwrap().kind, FileKind::Dir);
        assert_eq!(s.stat("/").unwrap().kind, FileKind::Dir);
        assert_eq!(s.stat("two").unwrap().size, 2);
        assert_eq!(
            s.put_open("d/x", 1, &[0; 32], 0).unwrap_err().code,
            ErrorCode::INVALID_ARGUMENT
        );
        assert_eq!(s.stat("..").unwrap_err().code, ErrorCode::OUTSIDE_ROOT);
        assert_eq!(
            s.put_open("/", 1, &[0; 32], 0).unwrap_err().code,
            ErrorCode::IS_A_DIRECTORY
        );
        assert_eq!(
            s.open_dir("one").unwrap_err().code,
            ErrorCode::NOT_A_DIRECTORY
        );
        let root = s.open_dir(".").unwrap();
        let mut names = std::vec::Vec::new();
        let mut i = 0;
        while let Some(e) = s.entry(&root, i).unwrap() {
            names.push(std::string::String::from(e.name));
            i += 1;
        }
        assert_eq!(names, ["one", "two"]);
    }
}
