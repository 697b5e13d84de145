//! Drives `corral_agent::files` on real temporary directories and checks what
//! a user would: file contents, hashes, what appears (or does not) on disk,
//! and that nothing outside the root is read or written.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use corral_agent::files::{FileError, FileKind, FileStore, PUT_TEMP_PREFIX};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

fn sha(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Deterministic, non-repeating test data.
fn data(len: usize) -> Vec<u8> {
    let mut state = 0x1234_5678_u32;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

fn store() -> (tempfile::TempDir, FileStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    (dir, store)
}

/// Names in a host directory, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

async fn put(store: &FileStore, path: &str, content: &[u8], mode: u32) -> Result<(), FileError> {
    let mut handle = store
        .open_put(path, content.len() as u64, sha(content), mode)
        .await?;
    let mut offset = handle.already_have() as usize;
    for chunk in content[offset..].chunks(64 * 1024) {
        handle.write_at(offset as u64, chunk).await?;
        offset += chunk.len();
    }
    handle.commit().await
}

async fn get_all(store: &FileStore, path: &str, offset: u64) -> Vec<u8> {
    let mut reader = store.get(path, offset).await.unwrap();
    let mut out = Vec::new();
    reader.read_to_end(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn put_commit_then_hash_get_and_stat() {
    let (dir, store) = store();
    let content = data(1024 * 1024 + 17);
    put(&store, "a/b/c.bin", &content, 0o750).await.unwrap();

    let on_disk = dir.path().join("a/b/c.bin");
    assert_eq!(std::fs::read(&on_disk).unwrap(), content);
    assert_eq!(
        std::fs::metadata(&on_disk).unwrap().permissions().mode() & 0o7777,
        0o750
    );
    assert_eq!(
        names(&dir.path().join("a/b")),
        ["c.bin"],
        "no temporary file left"
    );

    assert_eq!(store.hash("a/b/c.bin").await.unwrap(), sha(&content));
    assert_eq!(get_all(&store, "a/b/c.bin", 0).await, content);
    assert_eq!(get_all(&store, "a/b/c.bin", 1000).await, &content[1000..]);
    let reader = store.get("a/b/c.bin", 1000).await.unwrap();
    assert_eq!(reader.size(), content.len() as u64);
    assert_eq!(reader.remaining(), content.len() as u64 - 1000);

    let stat = store.stat("a/b/c.bin").await.unwrap();
    assert_eq!(stat.kind, FileKind::File);
    assert_eq!(stat.size, content.len() as u64);
    assert_eq!(stat.mode, 0o750);
    assert!(stat.mtime.is_some());
    assert_eq!(store.stat("a/b").await.unwrap().kind, FileKind::Dir);
}

#[tokio::test]
async fn put_replaces_an_existing_file_and_empty_files_work() {
    let (dir, store) = store();
    std::fs::write(dir.path().join("f"), b"old contents").unwrap();
    put(&store, "f", b"new", 0o644).await.unwrap();
    assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"new");

    put(&store, "empty", b"", 0o600).await.unwrap();
    assert_eq!(std::fs::read(dir.path().join("empty")).unwrap(), b"");
    assert_eq!(store.hash("empty").await.unwrap(), sha(b""));
}

#[tokio::test]
async fn interrupted_put_resumes_where_it_stopped() {
    let (dir, store) = store();
    let content = data(300_000);
    let hash = sha(&content);

    let mut first = store
        .open_put("logs/big.bin", 300_000, hash, 0o644)
        .await
        .unwrap();
    assert_eq!(first.already_have(), 0);
    first.write_at(0, &content[..100_000]).await.unwrap();
    first
        .write_at(100_000, &content[100_000..123_456])
        .await
        .unwrap();
    // A retransmitted chunk overlapping what is there is fine.
    first
        .write_at(50_000, &content[50_000..60_000])
        .await
        .unwrap();
    assert_eq!(first.written(), 123_456);
    drop(first); // the link dropped mid-push
    assert!(
        !dir.path().join("logs/big.bin").exists(),
        "nothing at the target yet"
    );

    let mut second = store
        .open_put("logs/big.bin", 300_000, hash, 0o644)
        .await
        .unwrap();
    assert_eq!(second.already_have(), 123_456);
    second.write_at(123_456, &content[123_456..]).await.unwrap();
    second.commit().await.unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("logs/big.bin")).unwrap(),
        content
    );
    assert_eq!(store.hash("logs/big.bin").await.unwrap(), hash);
    assert_eq!(names(&dir.path().join("logs")), ["big.bin"]);
}

#[tokio::test]
async fn a_different_content_does_not_resume_from_another_push() {
    let (_dir, store) = store();
    let one = data(1000);
    let mut handle = store.open_put("x", 1000, sha(&one), 0o644).await.unwrap();
    handle.write_at(0, &one[..500]).await.unwrap();
    drop(handle);
    let other = vec![7u8; 1000];
    let handle = store.open_put("x", 1000, sha(&other), 0o644).await.unwrap();
    assert_eq!(handle.already_have(), 0);
}

#[tokio::test]
async fn writes_with_gaps_or_past_the_size_are_refused() {
    let (_dir, store) = store();
    let content = data(100);
    let mut handle = store
        .open_put("f", 100, sha(&content), 0o644)
        .await
        .unwrap();
    let gap = handle.write_at(10, &content[10..20]).await.unwrap_err();
    assert!(matches!(gap, FileError::InvalidArgument { .. }), "{gap}");
    assert!(gap.to_string().contains("gap"), "{gap}");
    handle.write_at(0, &content[..90]).await.unwrap();
    let past = handle.write_at(90, &[0u8; 11]).await.unwrap_err();
    assert!(matches!(past, FileError::InvalidArgument { .. }), "{past}");
    assert!(past.to_string().contains("announced size of 100"), "{past}");

    // Committing early keeps the data for a resume.
    let early = handle.commit().await.unwrap_err();
    assert!(
        matches!(
            early,
            FileError::SizeMismatch {
                expected: 100,
                actual: 90,
                ..
            }
        ),
        "{early}"
    );
    let handle = store
        .open_put("f", 100, sha(&content), 0o644)
        .await
        .unwrap();
    assert_eq!(handle.already_have(), 90);
}

#[tokio::test]
async fn hash_mismatch_is_refused_and_nothing_appears() {
    let (dir, store) = store();
    let announced = sha(b"what the pusher meant");
    let mut handle = store
        .open_put("sub/target", 13, announced, 0o644)
        .await
        .unwrap();
    handle.write_at(0, b"something els").await.unwrap();
    let err = handle.commit().await.unwrap_err();
    let message = err.to_string();
    match err {
        FileError::HashMismatch {
            expected, actual, ..
        } => {
            assert_eq!(expected, announced);
            assert_eq!(actual, sha(b"something els"));
        }
        other => panic!("expected HashMismatch, got {other:?}"),
    }
    assert!(
        message.starts_with("hash mismatch for sub/target: expected "),
        "{message}"
    );
    assert!(
        !dir.path().join("sub/target").exists(),
        "nothing at the target"
    );
    assert!(
        names(&dir.path().join("sub")).is_empty(),
        "temporary file deleted"
    );
}

#[tokio::test]
async fn discard_deletes_the_partial_data() {
    let (dir, store) = store();
    let mut handle = store
        .open_put("f", 10, sha(b"0123456789"), 0o644)
        .await
        .unwrap();
    handle.write_at(0, b"01234").await.unwrap();
    assert_eq!(names(dir.path()).len(), 1);
    assert!(names(dir.path())[0].starts_with(PUT_TEMP_PREFIX));
    handle.discard().await.unwrap();
    assert!(names(dir.path()).is_empty());
}

#[tokio::test]
async fn put_onto_a_directory_is_refused() {
    let (dir, store) = store();
    std::fs::create_dir(dir.path().join("d")).unwrap();
    let err = store.open_put("d", 1, sha(b"x"), 0o644).await.unwrap_err();
    assert!(matches!(err, FileError::IsADirectory { .. }), "{err}");
    let err = store.open_put("", 1, sha(b"x"), 0o644).await.unwrap_err();
    assert!(matches!(err, FileError::InvalidArgument { .. }), "{err}");
    let err = store
        .open_put("f", 1, sha(b"x"), 0o100644)
        .await
        .unwrap_err();
    assert!(matches!(err, FileError::InvalidArgument { .. }), "{err}");
}

fn assert_escape(result: Result<impl std::fmt::Debug, FileError>, what: &str, root: &Path) {
    match result {
        Err(err @ FileError::Escape { .. }) => {
            let message = err.to_string();
            assert!(
                message.contains(&root.display().to_string()),
                "{what}: message does not name the root: {message}"
            );
        }
        other => panic!("{what}: expected Escape, got {other:?}"),
    }
}

#[tokio::test]
async fn dot_dot_and_absolute_paths_outside_are_refused() {
    let (_dir, store) = store();
    let root = store.root().to_path_buf();
    for path in ["../x", "a/../../x", "/etc/passwd"] {
        assert_escape(store.stat(path).await, path, &root);
        assert_escape(store.get(path, 0).await, path, &root);
        assert_escape(store.hash(path).await, path, &root);
        assert_escape(store.list(path).await, path, &root);
        assert_escape(store.remove(path).await, path, &root);
        assert_escape(store.open_put(path, 1, sha(b"x"), 0o644).await, path, &root);
        assert_escape(store.create_dir_all(path).await, path, &root);
    }
    let message = store.stat("../x").await.unwrap_err().to_string();
    assert!(
        message.contains("../x"),
        "the message names the path: {message}"
    );
}

#[tokio::test]
async fn absolute_paths_inside_the_root_round_trip() {
    let (_dir, store) = store();
    put(&store, "f", b"abc", 0o644).await.unwrap();
    let absolute = store.root().join("f");
    assert_eq!(store.hash(&absolute).await.unwrap(), sha(b"abc"));
    assert_eq!(store.host_path("f").await.unwrap(), absolute);
    assert_eq!(store.host_path("").await.unwrap(), store.root());
}

#[tokio::test]
async fn symlinks_leading_outside_are_refused() {
    let (dir, store) = store();
    let root = store.root().to_path_buf();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), b"outside data").unwrap();
    // A symlink in the root pointing to a directory outside (like /tmp).
    symlink(outside.path(), dir.path().join("out")).unwrap();
    // A symlink in the root pointing to a file outside.
    symlink(
        outside.path().join("secret"),
        dir.path().join("secret-link"),
    )
    .unwrap();

    // Through a symlinked parent directory.
    assert_escape(store.get("out/secret", 0).await, "get out/secret", &root);
    assert_escape(store.hash("out/secret").await, "hash out/secret", &root);
    assert_escape(store.stat("out/secret").await, "stat out/secret", &root);
    assert_escape(store.list("out").await, "list out", &root);
    assert_escape(
        store.open_put("out/new", 1, sha(b"x"), 0o644).await,
        "put out/new",
        &root,
    );
    assert_escape(
        store.open_put("out/deeper/new", 1, sha(b"x"), 0o644).await,
        "put out/deeper/new",
        &root,
    );
    assert_escape(store.remove("out/secret").await, "remove out/secret", &root);
    // Through a symlink as the last component.
    assert_escape(store.get("secret-link", 0).await, "get secret-link", &root);
    assert_escape(store.hash("secret-link").await, "hash secret-link", &root);
    assert_escape(
        store.open_put("secret-link", 1, sha(b"x"), 0o644).await,
        "put secret-link",
        &root,
    );

    // Nothing outside was written or removed.
    assert_eq!(names(outside.path()), ["secret"]);
    assert_eq!(
        std::fs::read(outside.path().join("secret")).unwrap(),
        b"outside data"
    );

    // Looking at a link itself is not an escape, and removing it removes the
    // link only.
    assert_eq!(store.stat("out").await.unwrap().kind, FileKind::Symlink);
    store.remove("secret-link").await.unwrap();
    assert!(outside.path().join("secret").exists());
}

#[tokio::test]
async fn relative_symlinks_inside_the_root_work() {
    let (dir, store) = store();
    put(&store, "real/file", b"inside", 0o644).await.unwrap();
    symlink("real", dir.path().join("alias")).unwrap();
    assert_eq!(store.hash("alias/file").await.unwrap(), sha(b"inside"));
    assert_eq!(get_all(&store, "alias/file", 0).await, b"inside");
}

#[tokio::test]
async fn list_stat_and_remove() {
    let (dir, store) = store();
    for i in 0..5 {
        put(&store, &format!("d/f{i}"), &data(i * 10), 0o644)
            .await
            .unwrap();
    }
    store.create_dir_all("d/sub/deeper").await.unwrap();
    symlink("f0", dir.path().join("d/link")).unwrap();

    let mut listing = store.list("d").await.unwrap();
    let mut entries = Vec::new();
    loop {
        let batch = listing.next_batch(2).await.unwrap();
        assert!(batch.len() <= 2);
        if batch.is_empty() {
            break;
        }
        entries.extend(batch);
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    let summary: Vec<(String, FileKind, u64)> = entries
        .iter()
        .filter(|e| e.stat.kind != FileKind::Symlink && e.stat.kind != FileKind::Dir)
        .map(|e| {
            (
                e.name.to_string_lossy().into_owned(),
                e.stat.kind,
                e.stat.size,
            )
        })
        .collect();
    assert_eq!(
        summary,
        (0..5)
            .map(|i| (format!("f{i}"), FileKind::File, i as u64 * 10))
            .collect::<Vec<_>>()
    );
    let kind_of = |name: &str| entries.iter().find(|e| e.name == name).unwrap().stat.kind;
    assert_eq!(kind_of("link"), FileKind::Symlink);
    assert_eq!(kind_of("sub"), FileKind::Dir);
    assert_eq!(entries.len(), 7);

    // The root lists too.
    let mut root_listing = store.list("").await.unwrap();
    let top = root_listing.next_batch(100).await.unwrap();
    assert_eq!(top.len(), 1);
    assert_eq!(top[0].name, "d");

    // Remove: a file, a non-empty directory (refused), an empty one, the root (refused).
    store.remove("d/f1").await.unwrap();
    assert!(!dir.path().join("d/f1").exists());
    let err = store.remove("d/sub").await.unwrap_err();
    assert!(matches!(err, FileError::NotEmpty { .. }), "{err}");
    store.remove("d/sub/deeper").await.unwrap();
    store.remove("d/sub").await.unwrap();
    assert!(!dir.path().join("d/sub").exists());
    for root in ["", ".", "d/..", store.root().to_str().unwrap()] {
        let err = store.remove(root).await.unwrap_err();
        assert!(
            matches!(err, FileError::InvalidArgument { .. }),
            "{root}: {err}"
        );
    }
    assert!(dir.path().exists());

    let err = store.remove("d/nope").await.unwrap_err();
    assert!(matches!(err, FileError::NotFound { .. }), "{err}");
    assert_eq!(err.to_string(), "no such file or directory: d/nope");
}

#[tokio::test]
async fn wrong_kinds_and_offsets_are_clear_errors() {
    let (dir, store) = store();
    std::fs::create_dir(dir.path().join("d")).unwrap();
    put(&store, "f", b"12345", 0o644).await.unwrap();
    let err = store.get("d", 0).await.unwrap_err();
    assert!(matches!(err, FileError::IsADirectory { .. }), "{err}");
    let err = store.hash("d").await.unwrap_err();
    assert!(matches!(err, FileError::IsADirectory { .. }), "{err}");
    let err = store.list("f").await.unwrap_err();
    assert!(matches!(err, FileError::NotADirectory { .. }), "{err}");
    let err = store.get("f", 6).await.unwrap_err();
    assert!(matches!(err, FileError::InvalidArgument { .. }), "{err}");
    assert_eq!(get_all(&store, "f", 5).await, b"");
    let err = store.get("missing", 0).await.unwrap_err();
    assert!(matches!(err, FileError::NotFound { .. }), "{err}");
    let err = store
        .open_put("f/under-a-file", 1, sha(b"x"), 0o644)
        .await
        .unwrap_err();
    assert!(matches!(err, FileError::NotADirectory { .. }), "{err}");
}

#[tokio::test]
async fn a_fifo_is_refused_without_blocking() {
    let (dir, store) = store();
    let status = std::process::Command::new("mkfifo")
        .arg(dir.path().join("fifo"))
        .status()
        .unwrap();
    assert!(status.success());
    let err = store.get("fifo", 0).await.unwrap_err();
    assert!(matches!(err, FileError::NotAFile { .. }), "{err}");
    assert_eq!(store.stat("fifo").await.unwrap().kind, FileKind::Other);
}

#[tokio::test]
async fn opening_a_missing_root_names_it() {
    let err = FileStore::open("/nonexistent/corral-root").unwrap_err();
    assert!(matches!(err, FileError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/corral-root"));
}

#[test]
fn handles_can_move_between_tasks() {
    fn send<T: Send>() {}
    send::<FileStore>();
    send::<corral_agent::files::PutHandle>();
    send::<corral_agent::files::DirListing>();
    send::<corral_agent::files::FileReader>();
    send::<FileError>();
}
