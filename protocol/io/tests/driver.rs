//! Two link drivers talking over real byte streams.

use corral_io::driver::{spawn_link, LinkEvent, LinkReceiver, LinkSender};
use corral_io::transport::{authenticate_as_server, connect_tcp, TransportError};
use corral_protocol::auth::Key;
use corral_protocol::Config;
use std::time::Duration;

async fn until_connected(rx: &mut LinkReceiver) {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("no event in 10 s")
        {
            Some(LinkEvent::Connected(_)) => return,
            Some(LinkEvent::Closed(e)) => panic!("closed: {e:?}"),
            Some(_) => {}
            None => panic!("driver gone"),
        }
    }
}

async fn next_message(rx: &mut LinkReceiver) -> Vec<u8> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("no message in 10 s")
        {
            Some(LinkEvent::Message(m)) => return m,
            Some(LinkEvent::Closed(e)) => panic!("closed: {e:?}"),
            Some(_) => {}
            None => panic!("driver gone"),
        }
    }
}

async fn exchange(
    a: (LinkSender, LinkReceiver),
    b: (LinkSender, LinkReceiver),
    count: usize,
    size: usize,
) {
    let (atx, mut arx) = a;
    let (btx, mut brx) = b;
    until_connected(&mut arx).await;
    until_connected(&mut brx).await;
    let sender = tokio::spawn(async move {
        for i in 0..count {
            let mut m = vec![(i % 251) as u8; size];
            m[..8].copy_from_slice(&(i as u64).to_le_bytes());
            atx.send(m).await.unwrap();
        }
        atx
    });
    // Both directions at once: b echoes while a is still sending, and a's
    // echoes are read as they come (a reader that stops would rightly stall
    // the whole exchange through backpressure).
    let collector = tokio::spawn(async move {
        for i in 0..count {
            let m = next_message(&mut arx).await;
            assert_eq!(u64::from_le_bytes(m[..8].try_into().unwrap()), i as u64);
        }
        arx
    });
    for i in 0..count {
        let m = next_message(&mut brx).await;
        assert_eq!(m.len(), size);
        assert_eq!(u64::from_le_bytes(m[..8].try_into().unwrap()), i as u64);
        btx.send(m).await.unwrap();
    }
    let _atx = sender.await.unwrap();
    let _arx = collector.await.unwrap();
}

#[tokio::test]
async fn messages_flow_both_ways_over_a_pty_pair() {
    let (a, b) = tokio_serial::SerialStream::pair().expect("pty pair");
    let cfg = Config::serial();
    exchange(
        spawn_link(a, cfg.clone(), 0x11),
        spawn_link(b, cfg, 0x22),
        300,
        3000,
    )
    .await;
}

#[tokio::test]
async fn messages_flow_both_ways_over_tcp_with_a_key() {
    let key = Key::from_bytes([5; 32]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server_key = key.clone();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        authenticate_as_server(&mut s, &server_key, "test")
            .await
            .unwrap();
        s
    });
    let client = connect_tcp(&addr, Some(&key)).await.unwrap();
    let server = server.await.unwrap();
    let cfg = Config::stream();
    exchange(
        spawn_link(client, cfg.clone(), 0x33),
        spawn_link(server, cfg, 0x44),
        200,
        60_000,
    )
    .await;
}

#[tokio::test]
async fn wrong_key_is_refused_on_both_sides() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        authenticate_as_server(&mut s, &Key::from_bytes([1; 32]), "test").await
    });
    let client = connect_tcp(&addr, Some(&Key::from_bytes([2; 32]))).await;
    let err = client.expect_err("a wrong key must be refused");
    assert!(matches!(err, TransportError::Auth { .. }), "{err}");
    assert!(err.to_string().contains("refused our key"), "{err}");
    assert!(server.await.unwrap().is_err());
}

#[tokio::test]
async fn peer_going_away_is_reported_as_closed() {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let (_atx, mut arx) = spawn_link(a, Config::stream(), 0x55);
    let (btx, mut brx) = spawn_link(b, Config::stream(), 0x66);
    until_connected(&mut arx).await;
    until_connected(&mut brx).await;
    drop(btx);
    drop(brx);
    loop {
        match tokio::time::timeout(Duration::from_secs(10), arx.recv())
            .await
            .unwrap()
        {
            Some(LinkEvent::Closed(_)) => break,
            Some(_) => {}
            None => panic!("driver gone without Closed"),
        }
    }
}
