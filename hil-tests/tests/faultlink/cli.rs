//! The `corral-faultlink` binary, driven the way a user drives it.

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;

use crate::common::within;

const BINARY: &str = env!("CARGO_BIN_EXE_corral-faultlink");

#[tokio::test]
async fn help_explains_every_flag_with_examples() {
    let output = Command::new(BINARY).arg("--help").output().await.unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for flag in [
        "--a <ENDPOINT>",
        "--b <ENDPOINT>",
        "--seed",
        "--baud",
        "--drop",
        "--corrupt",
        "--duplicate",
        "--delay",
        "--jitter",
        "--reorder",
        "--reorder-chunk",
        "--a2b",
        "--b2a",
        "--control",
        "--no-stdin",
        "tcp-listen:HOST:PORT",
        "pty:LINKPATH",
        "serial:PATH",
        "Examples:",
        "cut forever",
    ] {
        assert!(
            help.contains(flag),
            "--help does not mention {flag}:\n{help}"
        );
    }
}

#[tokio::test]
async fn bad_arguments_name_the_problem_and_the_fix() {
    for (args, expected) in [
        (&["--a", "pty", "--b", "tcp:localhost"][..], "HOST:PORT"),
        (
            &["--a", "pty", "--b", "pty", "--corrupt", "1.5"][..],
            "between 0 and 1",
        ),
        (
            &["--a", "pty", "--b", "pty", "--a2b", "loss=0.1"][..],
            "unknown fault `loss`",
        ),
        (
            &["--a", "pty", "--b", "pty", "--control", "/tmp/x"][..],
            "unix:PATH",
        ),
    ] {
        let output = Command::new(BINARY).args(args).output().await.unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    let output = Command::new(BINARY)
        .args([
            "--a",
            "serial:/nonexistent/ttyUSB9",
            "--b",
            "pty",
            "--no-stdin",
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("serial:/nonexistent/ttyUSB9") && stderr.contains("plugged in"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_user_runs_the_link_and_controls_it_on_stdin() {
    let device = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut child = Command::new(BINARY)
        .args(["--a", "tcp-listen:127.0.0.1:0", "--b"])
        .arg(format!("tcp:{}", device.local_addr().unwrap()))
        .args(["--seed", "42", "--b2a", "corrupt=1.0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next_line = async || {
        within("a line on stdout", stdout.next_line())
            .await
            .unwrap()
            .unwrap()
    };

    let ready = next_line().await;
    let a = ready
        .split_whitespace()
        .find_map(|word| word.strip_prefix("a=tcp-listen:"))
        .unwrap_or_else(|| panic!("no a=tcp-listen: in {ready:?}"));
    assert!(ready.ends_with("seed=42"), "{ready}");

    let mut gateway = TcpStream::connect(a).await.unwrap();
    let (mut on_device, _) = within("the link dialling the device", device.accept())
        .await
        .unwrap();
    gateway.write_all(b"ping").await.unwrap();
    let mut got = [0u8; 4];
    within("a→b bytes", on_device.read_exact(&mut got))
        .await
        .unwrap();
    assert_eq!(&got, b"ping", "a2b has no faults");
    on_device.write_all(b"pong").await.unwrap();
    within("b→a bytes", gateway.read_exact(&mut got))
        .await
        .unwrap();
    assert!(
        got.iter()
            .zip(b"pong")
            .all(|(g, s)| (g ^ s).count_ones() == 1),
        "b2a corrupts"
    );

    stdin
        .write_all(b"set a2b duplicate sometimes\n")
        .await
        .unwrap();
    let reply = next_line().await;
    assert!(
        reply.starts_with("error: bad value `sometimes` for duplicate"),
        "{reply}"
    );
    stdin.write_all(b"stats\n").await.unwrap();
    let stats: serde_json::Value = serde_json::from_str(&next_line().await).unwrap();
    assert_eq!(stats["a2b"]["bytes_out"], 4);
    assert_eq!(stats["b2a"]["corrupted"], 4);
    assert_eq!(stats["connected"], true);

    stdin.write_all(b"cut forever\n").await.unwrap();
    assert!(next_line().await.starts_with("ok cut for good"));
    let mut rest = Vec::new();
    let read = within("the gateway seeing the cut", gateway.read_to_end(&mut rest)).await;
    assert!(read.is_err() || rest.is_empty(), "{read:?} {rest:?}");

    stdin.write_all(b"shutdown\n").await.unwrap();
    assert_eq!(next_line().await, "ok shutting down");
    let status = within("the process to exit", child.wait()).await.unwrap();
    assert!(status.success(), "{status}");
}
