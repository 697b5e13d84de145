//! The link over a simulated faulty line: every message arrives exactly once
//! and in order, whatever the line does; reboots, silence and incompatible
//! peers are reported, never hung on.

use corral_protocol::link::{Config, Event, Link, State};
use corral_protocol::sim::{run_pair, Channel, Faults, Node, RunEnd};
use corral_protocol::Instant;
use std::time::Duration;

struct Peer {
    link: Link<Vec<u8>, 32>,
    to_send: Vec<Vec<u8>>,
    sent: usize,
    received: Vec<Vec<u8>>,
    events: Vec<String>,
    console: Vec<u8>,
    expect: usize,
    reading: bool,
}

impl Peer {
    fn new(cfg: Config, session: u32, to_send: Vec<Vec<u8>>, expect: usize) -> Self {
        let storage = vec![0u8; cfg.storage_len()];
        Peer {
            link: Link::new(cfg, storage, session, Instant::ZERO).unwrap(),
            to_send,
            sent: 0,
            received: Vec::new(),
            events: Vec::new(),
            console: Vec::new(),
            expect,
            reading: true,
        }
    }

    fn pump(&mut self) {
        while self.sent < self.to_send.len() {
            match self.link.send(&self.to_send[self.sent]) {
                Ok(()) => self.sent += 1,
                Err(_) => break,
            }
        }
        if !self.reading {
            return;
        }
        while let Some(ev) = self.link.poll_event() {
            match ev {
                Event::Message(m) => self.received.push(m.to_vec()),
                Event::Console(t) => self.console.extend_from_slice(t),
                other => self.events.push(format!("{other:?}")),
            }
        }
    }
}

impl Node for Peer {
    fn receive(&mut self, now: Instant, bytes: &[u8]) {
        self.link.receive(now, bytes);
        self.pump();
    }
    fn transmit(&mut self, now: Instant, out: &mut [u8]) -> usize {
        self.pump();
        self.link.poll_transmit(now, out)
    }
    fn next_wakeup(&self) -> Option<Instant> {
        self.link.poll_timeout()
    }
    fn done(&self) -> bool {
        self.received.len() >= self.expect
            && self.sent == self.to_send.len()
            && self.link.unacknowledged() == 0
    }
}

fn messages(seed: u64, count: usize, max_len: usize) -> Vec<Vec<u8>> {
    let mut rng = corral_protocol::sim::Rng::new(seed);
    (0..count)
        .map(|i| {
            let len = 1 + rng.below(max_len as u64) as usize;
            let mut m: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            m[..4.min(len)].copy_from_slice(&(i as u32).to_le_bytes()[..4.min(len)]);
            m
        })
        .collect()
}

/// Runs both directions at once until everything is delivered.
fn exchange(cfg: Config, faults: Faults, seed: u64, count: usize) -> (Peer, Peer, RunEnd) {
    let a_msgs = messages(seed, count, 700);
    let b_msgs = messages(seed ^ 0xffff, count, 300);
    let mut a = Peer::new(
        cfg.clone(),
        0xa11c_e000 | seed as u32 & 0xfff,
        a_msgs,
        count,
    );
    let mut b = Peer::new(
        cfg.clone(),
        0xb0b0_0000 | seed as u32 & 0xfff,
        b_msgs,
        count,
    );
    let mut ab = Channel::new(faults.clone(), seed * 2 + 1);
    let mut ba = Channel::new(faults, seed * 2 + 2);
    let limit = Instant::from_millis(
        std::env::var("SIM_LIMIT_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(30 * 60 * 1000),
    );
    let end = run_pair(&mut a, &mut b, &mut ab, &mut ba, 8192, limit);
    (a, b, end)
}

fn assert_exactly_once_in_order(a: &Peer, b: &Peer) {
    assert_eq!(b.received.len(), a.to_send.len());
    for (i, (got, want)) in b.received.iter().zip(&a.to_send).enumerate() {
        assert_eq!(got, want, "message {i} from a differs");
    }
    assert_eq!(a.received.len(), b.to_send.len());
    for (i, (got, want)) in a.received.iter().zip(&b.to_send).enumerate() {
        assert_eq!(got, want, "message {i} from b differs");
    }
}

#[test]
fn clean_line_delivers_everything_in_order() {
    let faults = Faults {
        baud: Some(921_600),
        delay: Duration::from_millis(2),
        ..Faults::default()
    };
    let (a, b, end) = exchange(Config::serial(), faults, 1, 300);
    assert!(matches!(end, RunEnd::Done(_)), "{end:?}");
    assert_exactly_once_in_order(&a, &b);
    assert_eq!(a.link.stats().retransmits, 0);
}

#[test]
fn every_fault_at_once_still_delivers_exactly_once_in_order() {
    for seed in 1..=12u64 {
        let faults = Faults {
            baud: Some(115_200),
            delay: Duration::from_millis(3),
            jitter: Duration::from_millis(4),
            drop: 0.002,
            corrupt: 0.002,
            duplicate: 0.02,
            reorder: 0.02,
        };
        let cfg = if seed % 2 == 0 {
            Config::serial()
        } else {
            Config::device()
        };
        let (a, b, end) = exchange(cfg, faults, seed, 120);
        assert!(matches!(end, RunEnd::Done(_)), "seed {seed}: {end:?}");
        assert_exactly_once_in_order(&a, &b);
        let s = a.link.stats();
        assert!(
            s.retransmits > 0,
            "seed {seed}: the faults should have cost retransmissions"
        );
    }
}

#[test]
fn heavy_corruption_adapts_segment_size_and_completes() {
    let faults = Faults {
        baud: Some(115_200),
        corrupt: 0.01,
        ..Faults::default()
    };
    let (a, b, end) = exchange(Config::serial(), faults, 99, 40);
    assert!(matches!(end, RunEnd::Done(_)), "{end:?}");
    assert_exactly_once_in_order(&a, &b);
    assert!(a.link.stats().segment_size < 512, "{:?}", a.link.stats());
}

#[test]
fn tiny_device_window_of_two_segments_works() {
    let faults = Faults {
        baud: Some(115_200),
        delay: Duration::from_millis(2),
        corrupt: 0.001,
        ..Faults::default()
    };
    let cfg = Config::tiny();
    let a_msgs = messages(5, 50, 500);
    let mut a = Peer::new(Config::serial(), 0x1234, a_msgs, 0);
    let mut b = Peer::new(cfg, 0x5678, Vec::new(), 50);
    let mut ab = Channel::new(faults.clone(), 10);
    let mut ba = Channel::new(faults, 11);
    let end = run_pair(
        &mut a,
        &mut b,
        &mut ab,
        &mut ba,
        8192,
        Instant::from_millis(600_000),
    );
    assert!(matches!(end, RunEnd::Done(_)), "{end:?}");
    assert_eq!(b.received, a.to_send);
}

/// Steps two links by hand over perfect channels for `ms` milliseconds.
fn step(a: &mut Peer, b: &mut Peer, from: u64, ms: u64, cut: bool) {
    let mut buf = vec![0u8; 70_000];
    for t in from..from + ms {
        let now = Instant::from_millis(t);
        a.pump();
        let n = a.link.poll_transmit(now, &mut buf);
        if !cut {
            b.link.receive(now, &buf[..n]);
        }
        b.pump();
        let n = b.link.poll_transmit(now, &mut buf);
        if !cut {
            a.link.receive(now, &buf[..n]);
        }
        a.pump();
    }
}

#[test]
fn peer_reboot_is_reported_at_once_as_a_reset() {
    let mut host = Peer::new(Config::serial(), 0x0101, Vec::new(), 0);
    let mut dev = Peer::new(Config::device(), 0xd001, Vec::new(), 0);
    step(&mut host, &mut dev, 0, 20, false);
    assert_eq!(host.link.state(), State::Established);
    // Reboot: a new link with a new boot id, same line.
    let mut dev = Peer::new(Config::device(), 0xd002, Vec::new(), 0);
    host.events.clear();
    step(&mut host, &mut dev, 20, 5, false);
    assert_eq!(
        host.events.first().map(String::as_str),
        Some("PeerReset"),
        "{:?}",
        host.events
    );
    assert!(
        host.events.iter().any(|e| e.starts_with("Connected")),
        "{:?}",
        host.events
    );
    assert_eq!(host.link.session().unwrap().peer_session, 0xd002);
}

#[test]
fn restart_with_the_same_boot_id_is_still_a_reset() {
    // QEMU starts from zeroed RAM: a board may come back with the same id.
    let mut host = Peer::new(Config::serial(), 0x0101, Vec::new(), 0);
    let mut dev = Peer::new(Config::device(), 0xd001, Vec::new(), 0);
    step(&mut host, &mut dev, 0, 20, false);
    let mut dev = Peer::new(Config::device(), 0xd001, Vec::new(), 0);
    host.events.clear();
    step(&mut host, &mut dev, 20, 5, false);
    assert_eq!(
        host.events.first().map(String::as_str),
        Some("PeerReset"),
        "{:?}",
        host.events
    );
    assert_eq!(host.link.state(), State::Established);
}

#[test]
fn silence_is_reported_down_and_recovery_loses_nothing() {
    let mut host = Peer::new(Config::serial(), 0x0101, Vec::new(), 0);
    let mut dev = Peer::new(Config::device(), 0xd001, Vec::new(), 0);
    step(&mut host, &mut dev, 0, 20, false);
    host.to_send = vec![b"sent while the cable was out".to_vec()];
    step(&mut host, &mut dev, 20, 6_000, true);
    assert!(host.events.iter().any(|e| e == "Down"), "{:?}", host.events);
    assert_eq!(host.link.state(), State::Down);
    step(&mut host, &mut dev, 6_020, 4_000, false);
    assert!(host.events.iter().any(|e| e == "Up"), "{:?}", host.events);
    assert_eq!(dev.received, host.to_send);
    assert!(!dev.events.iter().any(|e| e == "PeerReset"));
}

#[test]
fn a_reader_that_stops_pauses_the_sender_without_loss() {
    let msgs = messages(3, 200, 1000);
    let mut host = Peer::new(Config::serial(), 0x0101, msgs.clone(), 0);
    let mut dev = Peer::new(Config::device(), 0xd001, Vec::new(), 0);
    step(&mut host, &mut dev, 0, 10, false);
    dev.reading = false;
    step(&mut host, &mut dev, 10, 200, false);
    assert!(host.sent < msgs.len(), "the sender must have been paused");
    assert!(host.link.unacknowledged() > 0);
    dev.reading = true;
    step(&mut host, &mut dev, 210, 3000, false);
    assert_eq!(dev.received, msgs);
}

#[test]
fn console_text_before_and_between_frames_is_surfaced() {
    let mut host = Peer::new(Config::serial(), 0x0101, Vec::new(), 0);
    let mut dev = Peer::new(Config::device(), 0xd001, vec![b"first".to_vec()], 0);
    host.link
        .receive(Instant::ZERO, b"Booting firmware v1.2\r\n");
    step(&mut host, &mut dev, 0, 20, false);
    host.link
        .receive(Instant::from_millis(21), b"panic: oops\r\n");
    step(&mut host, &mut dev, 300, 5, false);
    let text = String::from_utf8_lossy(&host.console).to_string();
    assert!(text.contains("Booting firmware v1.2\r\n"), "{text:?}");
    assert!(text.contains("panic: oops\r\n"), "{text:?}");
    assert_eq!(host.received, vec![b"first".to_vec()]);
}

#[test]
fn message_larger_than_the_peer_accepts_is_refused_up_front() {
    let mut host = Peer::new(Config::serial(), 0x0101, Vec::new(), 0);
    let mut dev = Peer::new(Config::tiny(), 0xd001, Vec::new(), 0);
    step(&mut host, &mut dev, 0, 20, false);
    let max = host.link.max_message();
    assert_eq!(max, Config::tiny().rx_buffer - 2);
    assert_eq!(
        host.link.send(&vec![1u8; max + 1]),
        Err(corral_protocol::SendError::TooLarge)
    );
    assert_eq!(host.link.send(&vec![1u8; max]), Ok(()));
}
