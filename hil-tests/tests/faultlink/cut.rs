//! Cutting the line: for a while (bytes vanish, connections stay) and for good
//! (connections close, endpoints go away), and restoring it.

use std::io::Read;
use std::time::Duration;

use corral_hil_tests::faultlink::{EndpointAddr, FaultLink, Faults, LinkState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{random_bytes, wait_until, within, TcpRig};

#[tokio::test]
async fn a_timed_cut_discards_both_ways_and_restore_resumes() {
    let rig = TcpRig::start(Faults::none(), 20).await;
    let (link, mut gateway, mut device) = (rig.link, rig.gateway, rig.device);
    link.connected().await;
    link.cut(Some(Duration::from_secs(3600))).await.unwrap();
    assert_eq!(link.stats().state, LinkState::Cut);

    gateway.write_all(&[1; 1000]).await.unwrap();
    device.write_all(&[2; 500]).await.unwrap();
    wait_until("the link to read what was sent", || {
        let s = link.stats();
        s.a2b.bytes_in == 1000 && s.b2a.bytes_in == 500
    })
    .await;
    let stats = link.stats();
    assert_eq!((stats.a2b.discarded_cut, stats.a2b.bytes_out), (1000, 0));
    assert_eq!((stats.b2a.discarded_cut, stats.b2a.bytes_out), (500, 0));
    assert!(stats.connected, "a timed cut keeps the connections open");

    link.restore().await.unwrap();
    assert_eq!(link.stats().state, LinkState::Up);
    let after = random_bytes(1000, 200);
    gateway.write_all(&after).await.unwrap();
    device.write_all(&after).await.unwrap();
    // The first bytes to arrive are the ones sent after the restore: nothing from
    // during the cut leaks through.
    let mut got = vec![0u8; after.len()];
    within("a→b after restore", device.read_exact(&mut got))
        .await
        .unwrap();
    assert_eq!(got, after);
    within("b→a after restore", gateway.read_exact(&mut got))
        .await
        .unwrap();
    assert_eq!(got, after);
    link.shutdown().await;
}

#[tokio::test]
async fn a_timed_cut_ends_by_itself() {
    let rig = TcpRig::start(Faults::none(), 21).await;
    let (link, mut gateway, mut device) = (rig.link, rig.gateway, rig.device);
    link.cut(Some(Duration::from_millis(200))).await.unwrap();
    // Well past the cut; this only waits, it measures nothing.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(link.stats().state, LinkState::Up);
    gateway.write_all(b"hello").await.unwrap();
    let mut got = [0u8; 5];
    within("bytes after the cut expired", device.read_exact(&mut got))
        .await
        .unwrap();
    assert_eq!(&got, b"hello");
    link.shutdown().await;
}

#[tokio::test]
async fn cut_forever_closes_both_peers_and_restore_listens_on_the_same_port() {
    let rig = TcpRig::start(Faults::none(), 22).await;
    let (link, mut gateway, mut device) = (rig.link, rig.gateway, rig.device);
    let port = link.a_addr().socket_addr().unwrap();
    link.connected().await;

    link.cut(None).await.unwrap();
    assert_eq!(link.stats().state, LinkState::Down);
    // Both peers see their connection end, as with a pulled cable and a dead device.
    let mut buf = [0u8; 16];
    let at_gateway = within("the gateway seeing the cut", gateway.read(&mut buf)).await;
    assert!(
        matches!(at_gateway, Ok(0) | Err(_)),
        "gateway read {at_gateway:?}"
    );
    let at_device = within("the device seeing the cut", device.read(&mut buf)).await;
    assert!(
        matches!(at_device, Ok(0) | Err(_)),
        "device read {at_device:?}"
    );
    // Nobody listens any more.
    assert!(
        TcpStream::connect(port).await.is_err(),
        "the listener must be closed while down"
    );

    link.restore().await.unwrap();
    assert_eq!(
        link.a_addr().socket_addr(),
        Some(port),
        "restore keeps the port"
    );
    let (mut gateway, mut device) = crate::common::connect(&link, &rig.device_listener).await;
    gateway.write_all(b"back").await.unwrap();
    let mut got = [0u8; 4];
    within("bytes after restore", device.read_exact(&mut got))
        .await
        .unwrap();
    assert_eq!(&got, b"back");
    link.shutdown().await;
}

#[tokio::test]
async fn cut_forever_hangs_up_a_pty_and_restore_moves_its_symlink_to_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let symlink = dir.path().join("ttyV0");
    let link = FaultLink::start(
        format!("pty:{}", symlink.display()).parse().unwrap(),
        "tcp-listen:127.0.0.1:0".parse().unwrap(),
        Faults::none(),
        23,
    )
    .await
    .unwrap();
    let mut port = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&symlink)
        .unwrap();
    let reader = tokio::task::spawn_blocking(move || {
        let mut buf = [0u8; 16];
        port.read(&mut buf)
    });

    link.cut(None).await.unwrap();
    let read = within("the pty user seeing the hang-up", reader)
        .await
        .unwrap();
    // Linux reports a hung-up terminal as end of file or EIO.
    assert!(
        matches!(read, Ok(0)) || read.as_ref().is_err_and(|e| e.raw_os_error() == Some(5)),
        "{read:?}"
    );
    assert!(
        std::fs::symlink_metadata(&symlink).is_err(),
        "the symlink goes with the pty"
    );

    link.restore().await.unwrap();
    let EndpointAddr::Pty { slave, .. } = link.a_addr() else {
        panic!()
    };
    assert_eq!(std::fs::read_link(&symlink).unwrap(), slave);
    link.shutdown().await;
}
