//! What a user sees when starting `corral-agent` wrongly: a message that
//! names the problem and how to fix it, and exit status 2.

mod common;

use std::process::{Command, Output};

use common::agent_bin;

fn agent(args: &[&str]) -> Output {
    Command::new(agent_bin())
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run corral-agent")
}

fn assert_refused(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "exit status 2; stderr: {stderr}"
    );
    assert!(stderr.contains(needle), "{needle:?} not in: {stderr}");
}

#[test]
fn non_loopback_listen_without_a_key_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path().to_str().unwrap();
    let out = agent(&["--root", root, "--listen", "tcp://0.0.0.0:0"]);
    assert_refused(&out, "--key-file");
}

#[test]
fn a_missing_or_unusable_root_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let out = agent(&["--root", missing.to_str().unwrap(), "--stdio"]);
    assert_refused(&out, "no such directory");

    let file = dir.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let out = agent(&["--root", file.to_str().unwrap(), "--stdio"]);
    assert_refused(&out, "not a directory");

    let out = agent(&["--stdio"]);
    assert_refused(&out, "--root");
}

#[test]
fn a_bad_key_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("bad.key");
    std::fs::write(&key, "not a key\n").unwrap();
    let root = dir.path().to_str().unwrap();
    let out = agent(&[
        "--root",
        root,
        "--listen",
        "127.0.0.1:0",
        "--key-file",
        key.to_str().unwrap(),
    ]);
    assert_refused(&out, "64 hexadecimal characters");

    let missing = dir.path().join("missing.key");
    let out = agent(&[
        "--root",
        root,
        "--listen",
        "127.0.0.1:0",
        "--key-file",
        missing.to_str().unwrap(),
    ]);
    assert_refused(&out, "missing.key");
}

#[test]
fn exactly_one_transport_is_required() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path().to_str().unwrap();
    assert_eq!(agent(&["--root", root]).status.code(), Some(2));
    let out = agent(&["--root", root, "--stdio", "--listen", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn keygen_writes_a_private_key_and_never_overwrites_one() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agent.key");
    let out = agent(&["keygen", file.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text.trim().len(), 64);
    assert!(text.trim().chars().all(|c| c.is_ascii_hexdigit()));
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "nobody but the owner can read the key");

    let out = agent(&["keygen", file.to_str().unwrap()]);
    assert!(!out.status.success(), "an existing key is not overwritten");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
}
