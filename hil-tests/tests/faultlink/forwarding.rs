//! With no faults the link is a perfect wire: every byte, both ways, in order,
//! through TCP, a pty, and a serial port.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use corral_hil_tests::faultlink::{Endpoint, EndpointAddr, FaultLink, Faults};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{random_bytes, within, TcpRig};

const MIB: usize = 1 << 20;

#[tokio::test]
async fn one_mebibyte_crosses_tcp_to_tcp_unchanged_both_ways() {
    let rig = TcpRig::start(Faults::none(), 1).await;
    let to_device = random_bytes(MIB, 10);
    let to_gateway = random_bytes(MIB, 11);
    let (mut gateway_read, mut gateway_write) = rig.gateway.into_split();
    let (mut device_read, mut device_write) = rig.device.into_split();
    let (mut at_gateway, mut at_device) = (Vec::new(), Vec::new());
    within("a mebibyte each way", async {
        tokio::join!(
            async {
                gateway_write.write_all(&to_device).await.unwrap();
                gateway_write.shutdown().await.unwrap();
            },
            async {
                device_write.write_all(&to_gateway).await.unwrap();
                device_write.shutdown().await.unwrap();
            },
            async { gateway_read.read_to_end(&mut at_gateway).await.unwrap() },
            async { device_read.read_to_end(&mut at_device).await.unwrap() },
        )
    })
    .await;
    assert!(at_device == to_device, "a→b bytes differ");
    assert!(at_gateway == to_gateway, "b→a bytes differ");
    let stats = rig.link.stats();
    assert_eq!(
        (stats.a2b.bytes_in, stats.a2b.bytes_out),
        (MIB as u64, MIB as u64)
    );
    assert_eq!(
        (stats.b2a.bytes_in, stats.b2a.bytes_out),
        (MIB as u64, MIB as u64)
    );
    rig.link.shutdown().await;
}

/// Opens a terminal the way a gateway opens a USB serial adapter.
fn open_tty(path: &Path) -> File {
    let fd = rustix::fs::open(
        path,
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOCTTY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    File::from(fd)
}

/// Writes `out` to and reads `expected_len` bytes from a terminal, on blocking
/// threads as a serial-port user would.
async fn exchange_on_tty(path: PathBuf, out: Vec<u8>, expected_len: usize) -> Vec<u8> {
    let mut writer = open_tty(&path);
    let mut reader = writer.try_clone().unwrap();
    let write = tokio::task::spawn_blocking(move || writer.write_all(&out).unwrap());
    let read = tokio::task::spawn_blocking(move || {
        let mut received = vec![0u8; expected_len];
        reader.read_exact(&mut received).unwrap();
        received
    });
    write.await.unwrap();
    read.await.unwrap()
}

/// Writes `out` to and reads `expected_len` bytes from a TCP stream at once.
async fn exchange_on_tcp(stream: TcpStream, out: Vec<u8>, expected_len: usize) -> Vec<u8> {
    let (mut read, mut write) = stream.into_split();
    let mut received = vec![0u8; expected_len];
    tokio::join!(async { write.write_all(&out).await.unwrap() }, async {
        read.read_exact(&mut received).await.unwrap()
    },);
    received
}

#[tokio::test]
async fn one_mebibyte_crosses_a_pty_unchanged_both_ways() {
    let link = FaultLink::start(
        Endpoint::Pty { link: None },
        Endpoint::TcpListen("127.0.0.1:0".into()),
        Faults::none(),
        2,
    )
    .await
    .unwrap();
    let EndpointAddr::Pty { slave, link: None } = link.a_addr() else {
        panic!("side a should be a pty, got {}", link.a_addr());
    };
    assert!(slave.starts_with("/dev/pts"), "{}", slave.display());
    let device = TcpStream::connect(link.b_addr().socket_addr().unwrap())
        .await
        .unwrap();
    // Random bytes include ^C, ^S/^Q, CR and LF: raw mode must pass them untouched.
    let from_gateway = random_bytes(MIB, 20);
    let from_device = random_bytes(MIB, 21);
    let (at_gateway, at_device) = within("a mebibyte each way over a pty", async {
        tokio::join!(
            exchange_on_tty(slave.clone(), from_gateway.clone(), MIB),
            exchange_on_tcp(device, from_device.clone(), MIB),
        )
    })
    .await;
    assert!(at_device == from_gateway, "pty→tcp bytes differ");
    assert!(at_gateway == from_device, "tcp→pty bytes differ");
    link.shutdown().await;
}

#[tokio::test]
async fn a_serial_endpoint_drives_an_existing_terminal_through_a_pty_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let symlink = dir.path().join("ttyBOARD0");
    // The first link plays a USB serial adapter: a pty with a stable name.
    let adapter = FaultLink::start(
        format!("pty:{}", symlink.display()).parse().unwrap(),
        "tcp-listen:127.0.0.1:0".parse().unwrap(),
        Faults::none(),
        3,
    )
    .await
    .unwrap();
    let EndpointAddr::Pty {
        slave,
        link: Some(reported),
    } = adapter.a_addr()
    else {
        panic!("expected a pty with a link, got {}", adapter.a_addr());
    };
    assert_eq!(reported, symlink);
    assert_eq!(std::fs::read_link(&symlink).unwrap(), slave);
    // The second link opens that port by its stable name, as a user would open
    // /dev/ttyUSB0.
    let user = FaultLink::start(
        format!("serial:{},baud=115200", symlink.display())
            .parse()
            .unwrap(),
        "tcp-listen:127.0.0.1:0".parse().unwrap(),
        Faults::none(),
        4,
    )
    .await
    .unwrap();
    let device = TcpStream::connect(adapter.b_addr().socket_addr().unwrap())
        .await
        .unwrap();
    let gateway = TcpStream::connect(user.b_addr().socket_addr().unwrap())
        .await
        .unwrap();
    let (from_gateway, from_device) = (random_bytes(64 << 10, 30), random_bytes(64 << 10, 31));
    let (at_device, at_gateway) = within("64 KiB each way through pty and serial", async {
        tokio::join!(
            exchange_on_tcp(device, from_device.clone(), from_gateway.len()),
            exchange_on_tcp(gateway, from_gateway.clone(), from_device.len()),
        )
    })
    .await;
    assert!(at_device == from_gateway, "gateway→device bytes differ");
    assert!(at_gateway == from_device, "device→gateway bytes differ");
    user.shutdown().await;
    adapter.shutdown().await;
    assert!(
        std::fs::symlink_metadata(&symlink).is_err(),
        "the pty's symlink must be removed on shutdown"
    );
}

#[tokio::test]
async fn a_gateway_that_reconnects_gets_a_fresh_connection_to_the_device() {
    let rig = TcpRig::start(Faults::none(), 5).await;
    let (mut gateway, mut device) = (rig.gateway, rig.device);
    for round in 0..2u8 {
        gateway.write_all(&[round; 100]).await.unwrap();
        let mut got = [0u8; 100];
        within("bytes reaching the device", device.read_exact(&mut got))
            .await
            .unwrap();
        assert_eq!(got, [round; 100]);
        // The gateway hangs up; the device sees its connection end too.
        drop(gateway);
        let mut rest = Vec::new();
        within("the device seeing the end", device.read_to_end(&mut rest))
            .await
            .unwrap();
        assert!(rest.is_empty());
        (gateway, device) = crate::common::connect(&rig.link, &rig.device_listener).await;
    }
    crate::common::wait_until("the third session to start", || {
        rig.link.stats().sessions == 3
    })
    .await;
    rig.link.shutdown().await;
}

#[tokio::test]
async fn unix_socket_endpoints_forward_like_qemu_chardev_sockets() {
    let dir = tempfile::tempdir().unwrap();
    let board_socket = dir.path().join("board.sock");
    let link = FaultLink::start(
        "tcp-listen:127.0.0.1:0".parse().unwrap(),
        format!("unix-listen:{}", board_socket.display())
            .parse()
            .unwrap(),
        Faults::none(),
        6,
    )
    .await
    .unwrap();
    // QEMU's `-chardev socket,path=...` connects as a client.
    let board = tokio::net::UnixStream::connect(&board_socket)
        .await
        .unwrap();
    let gateway = TcpStream::connect(link.a_addr().socket_addr().unwrap())
        .await
        .unwrap();
    let (mut board_read, mut board_write) = board.into_split();
    let (from_gateway, from_board) = (random_bytes(100_000, 60), random_bytes(100_000, 61));
    let mut at_board = vec![0u8; from_gateway.len()];
    let at_gateway = within("bytes over a Unix socket", async {
        let (at_gateway, ..) = tokio::join!(
            exchange_on_tcp(gateway, from_gateway.clone(), from_board.len()),
            async { board_write.write_all(&from_board).await.unwrap() },
            async { board_read.read_exact(&mut at_board).await.unwrap() },
        );
        at_gateway
    })
    .await;
    assert!(at_board == from_gateway && at_gateway == from_board);
    link.shutdown().await;
    assert!(
        !board_socket.exists(),
        "the socket file must be removed on shutdown"
    );
}
