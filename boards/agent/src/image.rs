//! A write-only image slot: where a board takes a file far bigger than its
//! RAM, the way a firmware-update slot takes an image.
//!
//! A microcontroller with 8 KiB of RAM cannot hold a 256 KiB file, yet a
//! test farm pushes images that size (a new firmware, a bitstream, a test
//! vector set) and must know they arrived intact. The slot streams a put
//! through SHA-256 as it arrives and keeps only what a real update slot
//! would report afterwards: the image's name, size and verified hash. On a
//! board with spare flash, this is where the bytes would be programmed.
//!
//! Writes must come in order (the hash is computed as bytes arrive), which
//! is what the protocol's pusher does; an interrupted put keeps its hash
//! state, so a later put of the same name, size and hash resumes where the
//! bytes stopped instead of starting again.
//!
//! The slot holds one image. Reading it back is refused: its content is not
//! kept; `stat` and `hash` answer from what the put verified.

use corral_agent_core::StoreError;
use corral_protocol::message::{ErrorCode, FileHash, FileKind, FileStat};
use sha2::{Digest, Sha256};

/// The directory the slot appears as, e.g. `image/fw.bin`.
pub const DIR: &str = "image";

/// Longest image name (after `image/`).
pub const MAX_NAME: usize = 48;

/// A name, in a fixed buffer.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Name {
    len: u8,
    bytes: [u8; MAX_NAME],
}

impl Name {
    fn new(name: &str) -> Result<Name, StoreError> {
        if name.is_empty() || name.len() > MAX_NAME || name.contains('/') || name == ".." {
            return Err(StoreError::new(
                ErrorCode::INVALID_ARGUMENT,
                "image names are 1 to 48 bytes, no `/`: image/NAME",
            ));
        }
        let mut bytes = [0; MAX_NAME];
        bytes[..name.len()].copy_from_slice(name.as_bytes());
        Ok(Name {
            len: name.len() as u8,
            bytes,
        })
    }

    fn as_str(&self) -> &str {
        // Only ever built from a `&str` in `new`.
        core::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }
}

/// A put in progress.
#[derive(Clone)]
struct Pending {
    name: Name,
    size: u64,
    sha256: [u8; 32],
    mode: u32,
    /// Bytes hashed so far: the next write starts here.
    received: u64,
    hasher: Sha256,
}

/// The image the last successful put verified.
#[derive(Clone, Copy)]
struct Image {
    name: Name,
    hash: FileHash,
    mode: u32,
}

/// The slot. See the module documentation.
#[derive(Default)]
pub struct ImageSlot {
    pending: Option<Pending>,
    image: Option<Image>,
}

const NOT_FOUND: StoreError = StoreError::new(ErrorCode::NOT_FOUND, "no such image");
const WRITE_ONLY: StoreError = StoreError::new(
    ErrorCode::PERMISSION_DENIED,
    "the image slot is write-only: use stat or hash",
);
const NO_PUT: StoreError = StoreError::new(ErrorCode::NO_SUCH_REQUEST, "no put is open");

impl ImageSlot {
    /// Largest image the slot takes.
    pub const CAPACITY: u64 = 16 * 1024 * 1024;

    /// An empty slot.
    pub const fn new() -> Self {
        ImageSlot {
            pending: None,
            image: None,
        }
    }

    /// Whether a put to the slot is open.
    pub fn put_open_here(&self) -> bool {
        self.pending.is_some()
    }

    /// Forgets an unfinished put (another put began elsewhere).
    pub fn discard_put(&mut self) {
        self.pending = None;
    }

    /// Starts or resumes a put of `name`; returns the bytes already held.
    pub fn put_open(
        &mut self,
        name: &str,
        size: u64,
        sha256: &[u8; 32],
        mode: u32,
    ) -> Result<u64, StoreError> {
        let name = Name::new(name)?;
        if size > Self::CAPACITY {
            return Err(StoreError::new(
                ErrorCode::TOO_LARGE,
                "larger than the image slot (16 MiB)",
            ));
        }
        if let Some(p) = &mut self.pending {
            if p.name == name && p.size == size && &p.sha256 == sha256 {
                p.mode = mode;
                return Ok(p.received);
            }
        }
        self.pending = Some(Pending {
            name,
            size,
            sha256: *sha256,
            mode,
            received: 0,
            hasher: Sha256::new(),
        });
        Ok(0)
    }

    /// Hashes the open put's bytes at `offset`.
    pub fn put_write(&mut self, offset: u64, data: &[u8]) -> Result<(), StoreError> {
        let p = self.pending.as_mut().ok_or(NO_PUT)?;
        if offset > p.received {
            return Err(StoreError::new(
                ErrorCode::BAD_OFFSET,
                "image bytes must arrive in order",
            ));
        }
        // Bytes before `received` were hashed already (a resent write).
        let skip = (p.received - offset).min(data.len() as u64) as usize;
        let new = &data[skip..];
        if p.received + new.len() as u64 > p.size {
            return Err(StoreError::new(
                ErrorCode::BAD_OFFSET,
                "write past the announced size",
            ));
        }
        p.hasher.update(new);
        p.received += new.len() as u64;
        Ok(())
    }

    /// Checks the open put's length and hash, and makes it the image.
    pub fn put_commit(&mut self) -> Result<(), StoreError> {
        let p = self.pending.take().ok_or(NO_PUT)?;
        if p.received != p.size {
            // Not all there yet: keep it, so the rest can still come.
            self.pending = Some(p);
            return Err(StoreError::new(
                ErrorCode::BAD_OFFSET,
                "the image is not complete",
            ));
        }
        let got: [u8; 32] = p.hasher.finalize().into();
        if got != p.sha256 {
            return Err(StoreError::new(
                ErrorCode::HASH_MISMATCH,
                "image SHA-256 differs from the announced one; discarded",
            ));
        }
        self.image = Some(Image {
            name: p.name,
            hash: FileHash {
                size: p.size,
                sha256: got,
            },
            mode: p.mode,
        });
        Ok(())
    }

    fn find(&self, name: &str) -> Result<&Image, StoreError> {
        self.image
            .as_ref()
            .filter(|i| i.name.as_str() == name)
            .ok_or(NOT_FOUND)
    }

    /// Reading an image back is refused (its bytes are not kept); a missing
    /// one is `NOT_FOUND`.
    pub fn open(&self, name: &str) -> StoreError {
        match self.find(name) {
            Ok(_) => WRITE_ONLY,
            Err(e) => e,
        }
    }

    /// Size and hash of the image.
    pub fn hash(&self, name: &str) -> Result<FileHash, StoreError> {
        Ok(self.find(name)?.hash)
    }

    /// Facts about the image.
    pub fn stat(&self, name: &str) -> Result<FileStat, StoreError> {
        let i = self.find(name)?;
        Ok(FileStat {
            kind: FileKind::File,
            size: i.hash.size,
            mode: i.mode,
            mtime: 0,
        })
    }

    /// The image's name and facts, for listing `image/`.
    pub fn entry(&self) -> Option<(&str, FileStat)> {
        let i = self.image.as_ref()?;
        Some((
            i.name.as_str(),
            FileStat {
                kind: FileKind::File,
                size: i.hash.size,
                mode: i.mode,
                mtime: 0,
            },
        ))
    }

    /// Forgets the image.
    pub fn remove(&mut self, name: &str) -> Result<(), StoreError> {
        self.find(name)?;
        self.image = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(data: &[u8]) -> [u8; 32] {
        Sha256::digest(data).into()
    }

    fn data(n: usize) -> std::vec::Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[test]
    fn a_put_in_pieces_is_verified_and_reported() {
        let d = data(10_000);
        let mut slot = ImageSlot::new();
        assert_eq!(slot.put_open("fw.bin", 10_000, &sha(&d), 0o644), Ok(0));
        for (i, chunk) in d.chunks(512).enumerate() {
            slot.put_write(i as u64 * 512, chunk).unwrap();
        }
        slot.put_commit().unwrap();
        assert_eq!(
            slot.hash("fw.bin"),
            Ok(FileHash {
                size: 10_000,
                sha256: sha(&d)
            })
        );
        assert_eq!(slot.stat("fw.bin").unwrap().size, 10_000);
        assert_eq!(slot.open("fw.bin").code, ErrorCode::PERMISSION_DENIED);
        assert_eq!(slot.entry().unwrap().0, "fw.bin");
    }

    #[test]
    fn an_interrupted_put_resumes_where_it_stopped() {
        let d = data(4096);
        let mut slot = ImageSlot::new();
        slot.put_open("a", 4096, &sha(&d), 0).unwrap();
        slot.put_write(0, &d[..1000]).unwrap();
        // The same put again: resume at 1000; a different one starts over.
        assert_eq!(slot.put_open("a", 4096, &sha(&d), 0), Ok(1000));
        // A resent piece overlapping what is held is skipped, not re-hashed.
        slot.put_write(500, &d[500..2000]).unwrap();
        slot.put_write(2000, &d[2000..]).unwrap();
        slot.put_commit().unwrap();
        assert_eq!(slot.hash("a").unwrap().sha256, sha(&d));
        assert_eq!(slot.put_open("a", 4096, &sha(b"other"), 0), Ok(0));
    }

    #[test]
    fn bad_puts_are_refused_and_keep_the_old_image() {
        let d = data(100);
        let mut slot = ImageSlot::new();
        slot.put_open("a", 100, &sha(&d), 0).unwrap();
        slot.put_write(0, &d).unwrap();
        slot.put_commit().unwrap();

        let mut bad = d.clone();
        bad[50] ^= 1;
        slot.put_open("a", 100, &sha(&d), 0).unwrap();
        assert_eq!(
            slot.put_write(10, &bad).unwrap_err().code,
            ErrorCode::BAD_OFFSET,
            "a gap"
        );
        slot.put_write(0, &bad).unwrap();
        assert_eq!(
            slot.put_write(100, &[1]).unwrap_err().code,
            ErrorCode::BAD_OFFSET,
            "past the size"
        );
        assert_eq!(
            slot.put_commit().unwrap_err().code,
            ErrorCode::HASH_MISMATCH
        );
        assert_eq!(slot.hash("a").unwrap().sha256, sha(&d), "old image kept");
        assert_eq!(
            slot.put_open("x", ImageSlot::CAPACITY + 1, &sha(&d), 0)
                .unwrap_err()
                .code,
            ErrorCode::TOO_LARGE
        );
        assert_eq!(
            slot.put_open("a/b", 1, &sha(&d), 0).unwrap_err().code,
            ErrorCode::INVALID_ARGUMENT
        );
        slot.remove("a").unwrap();
        assert_eq!(slot.hash("a").unwrap_err().code, ErrorCode::NOT_FOUND);
    }

    #[test]
    fn a_short_put_is_not_committed_and_can_still_finish() {
        let d = data(300);
        let mut slot = ImageSlot::new();
        slot.put_open("a", 300, &sha(&d), 0).unwrap();
        slot.put_write(0, &d[..200]).unwrap();
        assert_eq!(slot.put_commit().unwrap_err().code, ErrorCode::BAD_OFFSET);
        slot.put_write(200, &d[200..]).unwrap();
        slot.put_commit().unwrap();
        assert_eq!(slot.hash("a").unwrap().size, 300);
    }
}
