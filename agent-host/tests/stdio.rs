//! End-to-end tests of `corral-agent --stdio`: the gateway's client talks to
//! the agent through the agent's standard input and output, as over ssh.

mod common;

use std::io::Cursor;
use std::process::Stdio;

use common::{agent_command, run, sh, PATIENCE};
use corral_io::client::TransferOptions;
use corral_io::driver::spawn_link;
use corral_protocol::message::ExitReason;
use corral_protocol::Config;

#[tokio::test]
async fn commands_and_files_over_stdio_and_exit_on_end_of_input() {
    let root = tempfile::tempdir().unwrap();
    let mut child = agent_command(root.path(), &["--stdio"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start corral-agent --stdio");
    let _log = common::collect_log(&mut child);
    let stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (io, cutter) = common::severable(tokio::io::join(stdout, stdin));
    let (tx, rx) = spawn_link(io, Config::stream(), corral_io::new_session_id());
    let client = common::client(tx, rx).await;
    assert_eq!(client.identity().unwrap().name, "test-device");

    let ran = run(&client, &sh("echo out; echo err >&2; exit 3")).await;
    assert_eq!((ran.exit.reason, ran.exit.code), (ExitReason::Exited, 3));
    assert_eq!(ran.stdout(), "out\n");
    assert_eq!(ran.stderr(), "err\n");

    let (data, hash) = common::random_file(300_000);
    client
        .push(
            &mut Cursor::new(data.clone()),
            data.len() as u64,
            hash,
            "f.bin",
            0o644,
            &TransferOptions::default(),
            &mut |_| {},
        )
        .await
        .expect("push over stdio");
    assert!(std::fs::read(root.path().join("f.bin")).unwrap() == data);
    let mut pulled = Vec::new();
    let (size, pulled_hash) = client
        .pull(
            "f.bin",
            0,
            &mut pulled,
            &TransferOptions::default(),
            &mut |_| {},
        )
        .await
        .expect("pull over stdio");
    assert_eq!((size, pulled_hash), (data.len() as u64, hash));

    // The gateway goes away: the agent's input ends and it exits cleanly.
    cutter.cut();
    drop(client);
    let status = tokio::time::timeout(PATIENCE, child.wait())
        .await
        .expect("the agent exits when its input ends")
        .unwrap();
    assert_eq!(status.code(), Some(0));
}
