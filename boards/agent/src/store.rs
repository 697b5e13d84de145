//! The boards' file store: small files in RAM, big images in the
//! write-only [`ImageSlot`] under `image/`.

use corral_agent_core::{FileStore, RamHandle, RamStore, StoreError, StoreInfo};
use corral_protocol::message::{DirEntry, ErrorCode, FileHash, FileKind, FileStat};

use crate::image::{self, ImageSlot};

/// Files the RAM store holds.
pub const RAM_FILES: usize = 4;
/// Bytes (names and contents) the RAM store holds.
pub const RAM_BYTES: usize = 1024;

/// Where a path points.
enum Place<'a> {
    Ram(&'a str),
    /// `image` itself.
    ImageDir,
    Image(&'a str),
}

fn place(path: &str) -> Place<'_> {
    let p = path.strip_prefix('/').unwrap_or(path);
    let p = p.strip_suffix('/').unwrap_or(p);
    match p.strip_prefix(image::DIR) {
        Some("") => Place::ImageDir,
        Some(rest) if rest.starts_with('/') => Place::Image(&rest[1..]),
        _ => Place::Ram(path),
    }
}

/// An open file or directory of a [`BoardStore`].
#[derive(Debug, Clone, Copy)]
pub enum Handle {
    /// In the RAM store (its root lists `image` after its own files).
    Ram(RamHandle, bool),
    /// The `image` directory.
    ImageDir,
}

const IMAGE_DIR_STAT: FileStat = FileStat {
    kind: FileKind::Dir,
    size: 0,
    mode: 0o755,
    mtime: 0,
};

/// RAM files plus the image slot.
#[derive(Default)]
pub struct BoardStore {
    ram: RamStore<RAM_FILES, RAM_BYTES>,
    image: ImageSlot,
}

impl BoardStore {
    /// An empty store.
    pub const fn new() -> Self {
        BoardStore {
            ram: RamStore::new(),
            image: ImageSlot::new(),
        }
    }
}

const TOO_LARGE_FOR_RAM: StoreError = StoreError::new(
    ErrorCode::TOO_LARGE,
    "larger than the RAM file store (1 KiB); images go to image/NAME",
);

const IS_DIR: StoreError =
    StoreError::new(ErrorCode::IS_A_DIRECTORY, "names the directory, not a file");

impl FileStore for BoardStore {
    type Handle = Handle;

    fn info(&self) -> StoreInfo {
        let ram = self.ram.info();
        StoreInfo {
            capacity: ram.capacity + ImageSlot::CAPACITY,
            free: ram.free + ImageSlot::CAPACITY,
            max_file: ImageSlot::CAPACITY,
        }
    }

    fn put_open(
        &mut self,
        path: &str,
        size: u64,
        sha256: &[u8; 32],
        mode: u32,
    ) -> Result<u64, StoreError> {
        // One put at a time across both: opening one abandons the other.
        match place(path) {
            Place::Image(name) => {
                let held = self.image.put_open(name, size, sha256, mode)?;
                Ok(held)
            }
            Place::ImageDir => Err(IS_DIR),
            Place::Ram(p) => {
                self.image.discard_put();
                self.ram.put_open(p, size, sha256, mode).map_err(|e| {
                    if e.code == ErrorCode::TOO_LARGE {
                        TOO_LARGE_FOR_RAM
                    } else {
                        e
                    }
                })
            }
        }
    }

    fn put_room(&self) -> u64 {
        if self.image.put_open_here() {
            u64::MAX
        } else {
            self.ram.put_room()
        }
    }

    fn put_write(&mut self, offset: u64, data: &[u8]) -> Result<(), StoreError> {
        if self.image.put_open_here() {
            self.image.put_write(offset, data)
        } else {
            self.ram.put_write(offset, data)
        }
    }

    fn put_commit(&mut self) -> Result<(), StoreError> {
        if self.image.put_open_here() {
            self.image.put_commit()
        } else {
            self.ram.put_commit()
        }
    }

    fn open_file(&mut self, path: &str) -> Result<(Handle, FileHash), StoreError> {
        match place(path) {
            Place::Image(name) => Err(self.image.open(name)),
            Place::ImageDir => Err(IS_DIR),
            Place::Ram(p) => {
                let (h, hash) = self.ram.open_file(p)?;
                Ok((Handle::Ram(h, false), hash))
            }
        }
    }

    fn read(&mut self, file: &Handle, offset: u64, buf: &mut [u8]) -> Result<usize, StoreError> {
        match file {
            Handle::Ram(h, _) => self.ram.read(h, offset, buf),
            Handle::ImageDir => Err(IS_DIR),
        }
    }

    fn open_dir(&mut self, path: &str) -> Result<Handle, StoreError> {
        match place(path) {
            Place::ImageDir => Ok(Handle::ImageDir),
            Place::Image(name) => Err(match self.image.stat(name) {
                Ok(_) => {
                    StoreError::new(ErrorCode::NOT_A_DIRECTORY, "names a file, not a directory")
                }
                Err(e) => e,
            }),
            Place::Ram(p) => {
                let h = self.ram.open_dir(p)?;
                Ok(Handle::Ram(h, true))
            }
        }
    }

    fn entry(&mut self, dir: &Handle, index: usize) -> Result<Option<DirEntry<'_>>, StoreError> {
        match dir {
            Handle::ImageDir => Ok((index == 0)
                .then(|| self.image.entry())
                .flatten()
                .map(|(name, stat)| DirEntry { name, stat })),
            Handle::Ram(h, root) => {
                let files = self.ram.len();
                if *root && index == files {
                    return Ok(Some(DirEntry {
                        name: image::DIR,
                        stat: IMAGE_DIR_STAT,
                    }));
                }
                self.ram.entry(h, index)
            }
        }
    }

    fn stat(&mut self, path: &str) -> Result<FileStat, StoreError> {
        match place(path) {
            Place::ImageDir => Ok(IMAGE_DIR_STAT),
            Place::Image(name) => self.image.stat(name),
            Place::Ram(p) => self.ram.stat(p),
        }
    }

    fn hash(&mut self, path: &str) -> Result<FileHash, StoreError> {
        match place(path) {
            Place::ImageDir => Err(IS_DIR),
            Place::Image(name) => self.image.hash(name),
            Place::Ram(p) => self.ram.hash(p),
        }
    }

    fn remove(&mut self, path: &str) -> Result<(), StoreError> {
        match place(path) {
            Place::ImageDir => Err(IS_DIR),
            Place::Image(name) => self.image.remove(name),
            Place::Ram(p) => self.ram.remove(p),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};
    use std::string::String;
    use std::vec::Vec;

    fn put(s: &mut BoardStore, path: &str, data: &[u8]) -> Result<(), StoreError> {
        let sha: [u8; 32] = Sha256::digest(data).into();
        let have = s.put_open(path, data.len() as u64, &sha, 0o644)?;
        s.put_write(have, &data[have as usize..])?;
        s.put_commit()
    }

    fn list(s: &mut BoardStore, dir: &str) -> Vec<String> {
        let h = s.open_dir(dir).unwrap();
        let mut names = Vec::new();
        let mut i = 0;
        while let Some(e) = s.entry(&h, i).unwrap() {
            names.push(String::from(e.name));
            i += 1;
        }
        names
    }

    #[test]
    fn small_files_go_to_ram_and_images_to_the_slot() {
        let mut s = BoardStore::new();
        put(&mut s, "cfg.txt", b"speed=3\n").unwrap();
        let big = [0xa5u8; 8192];
        put(&mut s, "/image/fw.bin", &big).unwrap();
        assert_eq!(list(&mut s, "/"), ["cfg.txt", "image"]);
        assert_eq!(list(&mut s, "image"), ["fw.bin"]);
        assert_eq!(s.hash("image/fw.bin").unwrap().size, 8192);
        assert_eq!(s.stat("image").unwrap().kind, FileKind::Dir);
        assert_eq!(s.stat("/cfg.txt").unwrap().size, 8);
        let (h, _) = s.open_file("cfg.txt").unwrap();
        let mut buf = [0; 16];
        assert_eq!(s.read(&h, 0, &mut buf), Ok(8));
        assert_eq!(
            s.open_file("image/fw.bin").unwrap_err().code,
            ErrorCode::PERMISSION_DENIED
        );
        // Too big for RAM, with a hint of where big files go.
        let e = put(&mut s, "big.bin", &big).unwrap_err();
        assert_eq!(e.code, ErrorCode::TOO_LARGE);
        assert!(e.message.contains("image/"), "{}", e.message);
        s.remove("image/fw.bin").unwrap();
        assert_eq!(list(&mut s, "image"), Vec::<String>::new());
    }
}
