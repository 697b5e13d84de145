//! The protocol's benchmark: a 1 MiB file pushed through the link over a
//! simulated serial line, and raw framing speed on this machine.
//!
//! Prints one `BENCH <name> <value> <unit>` line per figure. The line is
//! simulated (8N1 timing, a fixed device turnaround, seeded bit flips), so the
//! throughput figures are exact for the protocol and do not depend on the
//! machine; only the MB/s figures do. Run it with `cargo xtask bench` or
//! `cargo bench -p corral-protocol --features sim --bench link`.

use corral_protocol::credit::{ReceiveCredit, SendCredit};
use corral_protocol::frame::{self, Decoded, FrameDecoder};
use corral_protocol::link::{Config, Event, Link};
use corral_protocol::message::{Body, Envelope, ErrorCode, ErrorReply, PutOpen, PutReady, Write};
use corral_protocol::sim::{run_pair, Channel, Faults, Node, Rng, RunEnd};
use corral_protocol::Instant;
use sha2::{Digest, Sha256};
use std::time::Duration;

const FILE_LEN: usize = 1 << 20;
const PUT_ID: u32 = 1;

type HostLink = Link<Vec<u8>, 128>;

/// The gateway's side of a push, as a sans-IO node.
struct Pusher {
    link: HostLink,
    data: Vec<u8>,
    sha: [u8; 32],
    opened: bool,
    offset: usize,
    credit: Option<SendCredit>,
    committed: bool,
    result: Option<Result<(), String>>,
    done_at: Option<Instant>,
    now: Instant,
}

impl Pusher {
    fn step(&mut self) {
        while let Some(ev) = self.link.poll_event() {
            match ev {
                Event::Message(m) => match Envelope::decode(m).map(|e| e.body) {
                    Ok(Body::PutReady(r)) => self.credit = Some(SendCredit::new(r.credit)),
                    Ok(Body::Credit(n)) => {
                        if let Some(c) = self.credit.as_mut() {
                            c.grant(n)
                        }
                    }
                    Ok(Body::Ok) => {
                        self.result = Some(Ok(()));
                        self.done_at = Some(self.now);
                    }
                    Ok(Body::Error(e)) => {
                        self.result = Some(Err(format!("{}: {}", e.code, e.message)))
                    }
                    other => self.result = Some(Err(format!("unexpected {other:?}"))),
                },
                Event::PeerReset | Event::Rejected(_) => {
                    self.result = Some(Err("link reset".into()))
                }
                _ => {}
            }
        }
        if self.link.session().is_none() {
            return;
        }
        if !self.opened {
            let open = Body::PutOpen(PutOpen {
                path: "bench.bin",
                size: self.data.len() as u64,
                sha256: self.sha,
                mode: 0o644,
            });
            if self.link.send_message(&Envelope::new(PUT_ID, open)).is_ok() {
                self.opened = true;
            }
            return;
        }
        let Some(credit) = self.credit.as_mut() else {
            return;
        };
        // The same chunking as corral-io's DeviceClient.
        let chunk = self
            .link
            .max_message()
            .saturating_sub(32)
            .clamp(32, 60 * 1024);
        while self.offset < self.data.len() {
            let want = chunk.min(self.data.len() - self.offset);
            let room = self.link.send_capacity().saturating_sub(32);
            let n = want.min(room).min(credit.available() as usize);
            if n == 0 || (n < want && n < 1024) {
                return;
            }
            let w = Body::Write(Write {
                offset: self.offset as u64,
                data: &self.data[self.offset..self.offset + n],
            });
            if self.link.send_message(&Envelope::new(PUT_ID, w)).is_err() {
                return;
            }
            credit.take(n);
            self.offset += n;
        }
        if !self.committed
            && self
                .link
                .send_message(&Envelope::new(PUT_ID, Body::Commit))
                .is_ok()
        {
            self.committed = true;
        }
    }
}

impl Node for Pusher {
    fn receive(&mut self, now: Instant, bytes: &[u8]) {
        self.now = now;
        self.link.receive(now, bytes);
        self.step();
    }
    fn transmit(&mut self, now: Instant, out: &mut [u8]) -> usize {
        self.now = now;
        self.step();
        self.link.poll_transmit(now, out)
    }
    fn next_wakeup(&self) -> Option<Instant> {
        self.link.poll_timeout()
    }
    fn done(&self) -> bool {
        self.result.is_some()
    }
}

/// A device that stores the pushed file and checks its hash.
struct Sink {
    link: Link<Vec<u8>, 128>,
    file: Vec<u8>,
    hasher: Sha256,
    want: Option<[u8; 32]>,
    credit: ReceiveCredit,
    replies: Vec<Vec<u8>>,
}

impl Sink {
    fn step(&mut self) {
        while let Some(ev) = self.link.poll_event() {
            let Event::Message(m) = ev else { continue };
            let mut buf = [0u8; 128];
            let reply = match Envelope::decode(m).map(|e| e.body) {
                Ok(Body::PutOpen(p)) => {
                    self.want = Some(p.sha256);
                    Some(Body::PutReady(PutReady {
                        have: 0,
                        credit: self.credit.initial(),
                    }))
                }
                Ok(Body::Write(w)) => {
                    assert_eq!(w.offset as usize, self.file.len(), "writes arrive in order");
                    assert!(
                        self.credit.received(w.data.len()),
                        "pusher exceeded its credit"
                    );
                    self.file.extend_from_slice(w.data);
                    self.hasher.update(w.data);
                    self.credit.consumed(w.data.len()).map(Body::Credit)
                }
                Ok(Body::Commit) => {
                    let got: [u8; 32] = self.hasher.clone().finalize().into();
                    if Some(got) == self.want {
                        Some(Body::Ok)
                    } else {
                        Some(Body::Error(ErrorReply {
                            code: ErrorCode::HASH_MISMATCH,
                            message: "hash mismatch",
                        }))
                    }
                }
                _ => None,
            };
            if let Some(body) = reply {
                let n = Envelope::new(PUT_ID, body).encode(&mut buf).unwrap();
                self.replies.push(buf[..n].to_vec());
            }
        }
        while let Some(r) = self.replies.first() {
            if self.link.send(r).is_err() {
                break;
            }
            self.replies.remove(0);
        }
    }
}

impl Node for Sink {
    fn receive(&mut self, now: Instant, bytes: &[u8]) {
        self.link.receive(now, bytes);
        self.step();
    }
    fn transmit(&mut self, now: Instant, out: &mut [u8]) -> usize {
        self.step();
        self.link.poll_transmit(now, out)
    }
    fn next_wakeup(&self) -> Option<Instant> {
        self.link.poll_timeout()
    }
    fn done(&self) -> bool {
        true
    }
}

struct Outcome {
    seconds: f64,
    wire_bytes_forward: u64,
    wire_bytes_reverse: u64,
    corrupted: u64,
    ok: bool,
    segment: u16,
}

fn push(host: Config, device: Config, faults: Faults, seed: u64) -> Outcome {
    let mut rng = Rng::new(seed);
    let data: Vec<u8> = (0..FILE_LEN).map(|_| rng.next_u64() as u8).collect();
    let sha: [u8; 32] = Sha256::digest(&data).into();
    let mut pusher = Pusher {
        link: Link::new(
            host.clone(),
            vec![0; host.storage_len()],
            0x6a7e_0001,
            Instant::ZERO,
        )
        .unwrap(),
        data,
        sha,
        opened: false,
        offset: 0,
        credit: None,
        committed: false,
        result: None,
        done_at: None,
        now: Instant::ZERO,
    };
    let mut sink = Sink {
        link: Link::new(
            device.clone(),
            vec![0; device.storage_len()],
            0xde71_0001,
            Instant::ZERO,
        )
        .unwrap(),
        file: Vec::with_capacity(FILE_LEN),
        hasher: Sha256::new(),
        want: None,
        credit: ReceiveCredit::new(256 * 1024),
        replies: Vec::new(),
    };
    // Only the forward direction has the device's turnaround: its replies
    // (acks, credit) leave 2 ms after what they answer arrived.
    let mut fwd = Channel::new(
        Faults {
            delay: Duration::ZERO,
            ..faults.clone()
        },
        seed ^ 1,
    );
    let mut rev = Channel::new(faults, seed ^ 2);
    let out_len = frame::max_encoded_len(host.max_segment as usize + 64).max(1024);
    let end = run_pair(
        &mut pusher,
        &mut sink,
        &mut fwd,
        &mut rev,
        out_len,
        Instant::from_millis(3_600_000),
    );
    let ok = matches!(pusher.result, Some(Ok(()))) && sink.file == pusher.data;
    if std::env::var_os("BENCH_DEBUG").is_some() {
        eprintln!(
            "end {end:?} result {:?} offset {} sink {} pusher {:?} sink {:?}",
            pusher.result,
            pusher.offset,
            sink.file.len(),
            pusher.link.stats(),
            sink.link.stats()
        );
    }
    let seconds = match (end, pusher.done_at) {
        (RunEnd::Done(_), Some(t)) => t.as_micros() as f64 / 1e6,
        _ => f64::INFINITY,
    };
    Outcome {
        seconds,
        wire_bytes_forward: fwd.stats().bytes_in,
        wire_bytes_reverse: rev.stats().bytes_in,
        corrupted: fwd.stats().corrupted + rev.stats().corrupted,
        ok,
        segment: pusher.link.stats().segment_size,
    }
}

fn line(baud: u32, corrupt: f64) -> Faults {
    Faults {
        baud: Some(baud),
        delay: Duration::from_millis(2),
        corrupt,
        ..Faults::default()
    }
}

fn report_line_rate(name: &str, baud: u32, o: &Outcome) {
    let rate = FILE_LEN as f64 / o.seconds / (f64::from(baud) / 10.0);
    println!("BENCH {name} {rate:.4} fraction_of_line_rate");
    eprintln!(
        "  {name}: {:.2} s, hash verified: {}, {} bytes corrupted on the line, final segment {} B",
        o.seconds, o.ok, o.corrupted, o.segment
    );
    assert!(
        o.ok,
        "{name}: the push did not complete with the hash verified"
    );
}

fn main() {
    // `cargo bench` passes `--bench`; anything else filters nothing here.
    let capable = Config::serial();
    eprintln!("1 MiB push, host Config::serial() -> device Config::serial() unless noted; simulated 8N1 line, 2 ms device turnaround");

    let clean = push(capable.clone(), capable.clone(), Faults::default(), 7);
    let eff = FILE_LEN as f64 / clean.wire_bytes_forward as f64;
    let eff_both = FILE_LEN as f64 / (clean.wire_bytes_forward + clean.wire_bytes_reverse) as f64;
    println!("BENCH wire_efficiency {eff:.4} payload_per_wire_byte");
    println!("BENCH wire_efficiency_both_directions {eff_both:.4} payload_per_wire_byte");
    assert!(clean.ok);

    for baud in [115_200u32, 921_600] {
        let o = push(capable.clone(), capable.clone(), line(baud, 0.0), 11);
        report_line_rate(&format!("push_1MiB_{baud}_clean"), baud, &o);
    }
    let o = push(capable.clone(), capable.clone(), line(115_200, 0.001), 13);
    report_line_rate("push_1MiB_115200_corrupt_0.1pct", 115_200, &o);
    let o = push(capable.clone(), capable.clone(), line(115_200, 0.01), 17);
    report_line_rate("push_1MiB_115200_corrupt_1pct", 115_200, &o);
    let o = push(capable.clone(), Config::tiny(), line(115_200, 0.0), 19);
    report_line_rate("push_1MiB_115200_small_device_window2_256B", 115_200, &o);

    framing_speed();
}

/// Encode + decode of 4 KiB frames, wall clock on this machine.
fn framing_speed() {
    let body: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut wire = vec![0u8; frame::max_encoded_len(body.len())];
    let mut dec = FrameDecoder::<8192>::new();
    let rounds = 20_000;
    let t = std::time::Instant::now();
    let mut total = 0usize;
    for _ in 0..rounds {
        let n = frame::encode(&[&body], &mut wire).unwrap();
        let (_, item) = dec.push(&wire[..n]);
        match item {
            Some(Decoded::Frame(f)) => total += f.len(),
            other => panic!("{other:?}"),
        }
    }
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(total, rounds * body.len());
    println!(
        "BENCH frame_encode_decode {:.0} MB_per_s",
        total as f64 / secs / 1e6
    );
}
