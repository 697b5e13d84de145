//! End-to-end tests of `corral-agent --serial` on a pseudo-terminal, which
//! stands in for a USB gadget serial port: the agent opens the slave side by
//! its path, the test drives the master side as the gateway would drive the
//! device's serial port.

mod common;

use std::io::Cursor;

use common::{agent_command, run, sh, PATIENCE};
use corral_io::client::TransferOptions;
use corral_io::driver::spawn_link;
use corral_protocol::message::ExitReason;
use corral_protocol::Config;
use tokio_serial::{SerialPort, SerialStream};

#[tokio::test]
async fn commands_and_files_over_a_pty() {
    let (master, slave) = SerialStream::pair().expect("a pty pair");
    let path = slave.name().expect("the slave has a path");
    // The test keeps its slave handle open (unused) so that the master does
    // not see a hang-up before the agent has opened the port.
    let root = tempfile::tempdir().unwrap();
    let mut agent = agent_command(root.path(), &["--serial", &path, "--baud", "115200"])
        .spawn()
        .expect("start corral-agent --serial");
    let _log = common::collect_log(&mut agent);
    let (tx, rx) = spawn_link(master, Config::serial(), corral_io::new_session_id());
    let client = common::client(tx, rx).await;
    assert_eq!(client.identity().unwrap().serial, "SN-TEST");

    let ran = run(&client, &sh("echo out; echo err >&2; exit 3")).await;
    assert_eq!((ran.exit.reason, ran.exit.code), (ExitReason::Exited, 3));
    assert_eq!(ran.stdout(), "out\n");
    assert_eq!(ran.stderr(), "err\n");

    let (data, hash) = common::random_file(200_000);
    client
        .push(
            &mut Cursor::new(data.clone()),
            data.len() as u64,
            hash,
            "fw/image.bin",
            0o644,
            &TransferOptions::default(),
            &mut |_| {},
        )
        .await
        .expect("push over the pty");
    assert!(std::fs::read(root.path().join("fw/image.bin")).unwrap() == data);
    assert_eq!(
        client.hash("fw/image.bin", PATIENCE).await.unwrap(),
        (data.len() as u64, hash)
    );
    let mut pulled = Vec::new();
    let (size, pulled_hash) = client
        .pull(
            "fw/image.bin",
            0,
            &mut pulled,
            &TransferOptions::default(),
            &mut |_| {},
        )
        .await
        .expect("pull over the pty");
    assert_eq!((size, pulled_hash), (data.len() as u64, hash));
    assert!(pulled == data);
    drop(slave);
}

/// A USB gadget port disappears when the cable is pulled and comes back
/// when it is plugged in again. Here the agent's port path is a symlink: it
/// names nothing at first, then one pty, then (after that pty is gone) a
/// new one; the agent keeps reopening it and serves each in turn.
#[tokio::test]
async fn the_port_is_reopened_when_it_disappears_and_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ttyGS0");
    let root = tempfile::tempdir().unwrap();
    let mut agent = agent_command(root.path(), &["--serial", link.to_str().unwrap()])
        .spawn()
        .expect("start corral-agent --serial");
    let log = common::collect_log(&mut agent);
    let logged = |needle: &str| log.lock().unwrap().contains(needle);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !logged("retrying until it opens") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the agent says it waits for the port"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let mut boot_id = None;
    for round in 0..2 {
        let (master, slave) = SerialStream::pair().expect("a pty pair");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(slave.name().unwrap(), &link).unwrap();
        let (master, cutter) = common::severable(master);
        let (tx, rx) = spawn_link(master, Config::serial(), corral_io::new_session_id());
        let client = common::client(tx, rx).await;
        let ran = run(&client, &sh(&format!("echo round {round}"))).await;
        assert_eq!(ran.stdout(), format!("round {round}\n"));
        // The same agent process served both ports.
        let id = client.identity().unwrap().boot_id;
        assert_eq!(*boot_id.get_or_insert(id), id);
        // Pull the cable: the pty goes away with both of its ends.
        cutter.cut();
        drop(slave);
        drop(client);
    }
}
