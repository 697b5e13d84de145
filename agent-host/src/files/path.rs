//! Turning a path from the wire into a path under the store's root.
//!
//! Two layers keep every operation inside the root:
//!
//! 1. This module checks the path as text: an absolute path must lie inside
//!    the root's canonical path (so paths the agent reports come back
//!    unchanged) and is made relative to it; `..` may not climb above the
//!    root; NUL bytes are refused. This gives the clear error for the common
//!    mistakes without touching the file system.
//! 2. Every file system call then goes through a `cap_std::fs::Dir` opened on
//!    the root. cap-std resolves each component itself (with `openat2` and
//!    `RESOLVE_BENEATH` where the kernel has it, component by component
//!    otherwise), so `..` that climbs out after a symlink, a symlinked parent
//!    directory or a last component that points outside all fail, including
//!    races where a directory is swapped for a symlink between a check and a
//!    use. We use cap-std rather than `canonicalize` + prefix checks because
//!    those checks are only true at the instant they run.
//!
//! A consequence of (2): symlinks with an *absolute* target are treated as
//! leaving the root even when the target happens to be inside it, because a
//! capability-based directory has no notion of where it sits in the global
//! tree. Relative symlinks that stay inside work normally.

use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use super::error::FileError;

/// The relative path (possibly empty, meaning the root itself) that `wire`
/// names under `root`, or the reason it is refused.
pub(crate) fn relative(root: &Path, wire: &Path) -> Result<PathBuf, FileError> {
    if wire.as_os_str().as_bytes().contains(&0) {
        return Err(FileError::invalid(
            wire,
            "a path may not contain a NUL byte",
        ));
    }
    let escape = || FileError::Escape {
        path: wire.to_path_buf(),
        root: root.to_path_buf(),
    };
    let inside = if wire.is_absolute() {
        wire.strip_prefix(root).map_err(|_| escape())?
    } else {
        wire
    };
    let mut rel = PathBuf::new();
    let mut depth: usize = 0;
    for component in inside.components() {
        match component {
            Component::Normal(name) => {
                depth += 1;
                rel.push(name);
            }
            Component::CurDir => {}
            Component::ParentDir => {
                // Textual check only; cap-std still resolves `..` for real,
                // which matters when the component before it is a symlink.
                depth = depth.checked_sub(1).ok_or_else(escape)?;
                rel.push("..");
            }
            // Only possible at the start, and `strip_prefix` removed it from
            // absolute paths; a stray one means the path is not what it seems.
            Component::RootDir | Component::Prefix(_) => return Err(escape()),
        }
    }
    Ok(rel)
}

/// True if `rel` (from [`relative`]) names the root itself, textually.
pub(crate) fn is_root(rel: &Path) -> bool {
    let mut depth: isize = 0;
    for component in rel.components() {
        match component {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            _ => {}
        }
    }
    depth == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(wire: &str) -> Result<PathBuf, FileError> {
        relative(Path::new("/srv/root"), Path::new(wire))
    }

    #[test]
    fn relative_and_absolute_inside_are_accepted() {
        assert_eq!(rel("a/b").unwrap(), Path::new("a/b"));
        assert_eq!(rel("./a//b/").unwrap(), Path::new("a/b"));
        assert_eq!(rel("/srv/root/a/b").unwrap(), Path::new("a/b"));
        assert_eq!(rel("/srv/root").unwrap(), Path::new(""));
        assert_eq!(rel("a/../b").unwrap(), Path::new("a/../b"));
    }

    #[test]
    fn escapes_are_refused() {
        for wire in ["../x", "a/../../x", "/etc/passwd", "/srv/rootx/a", "/srv"] {
            assert!(
                matches!(rel(wire), Err(FileError::Escape { .. })),
                "{wire} was accepted"
            );
        }
    }

    #[test]
    fn nul_is_refused() {
        assert!(matches!(
            rel("a\0b"),
            Err(FileError::InvalidArgument { .. })
        ));
    }

    #[test]
    fn root_is_recognised() {
        assert!(is_root(Path::new("")));
        assert!(is_root(Path::new("a/..")));
        assert!(!is_root(Path::new("a")));
    }
}
