//! The real firmware's push efficiency over a real 115200-baud line: the
//! QEMU board behind the fault link (8N1 pacing, seeded byte corruption),
//! driven by the `corral` CLI, at 0 % and 0.1 % corrupted bytes.
//!
//! Efficiency is payload bytes divided by what the line could carry in the
//! same time (baud / 10 bytes per second), so 1.0 would be every bit of
//! the line spent on file content. Run: `cargo bench -p corral-hil-tests
//! --bench faultlink` (or `cargo xtask bench`); prints `BENCH` lines.

#[path = "../tests/hil/mod.rs"]
mod hil;

use corral_hil_tests::faultlink::{Endpoint, FaultLink, Faults, LinkFaults};
use hil::*;
use std::process::Command;
use std::time::{Duration, Instant};

const BAUD: u32 = 115_200;
const SIZE: usize = 256 * 1024;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let data: Vec<u8> = (0..SIZE as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    println!(
        "faultlink: {} KiB pushed to the lm3s6965 firmware under QEMU at {BAUD} baud 8N1",
        SIZE / 1024
    );
    for (name, corrupt) in [("clean", 0.0), ("corrupt_0.1pct", 0.001)] {
        let (secs, stats) = rt.block_on(push_once(&data, corrupt));
        let line_bytes_per_s = f64::from(BAUD) / 10.0;
        let efficiency = SIZE as f64 / (secs * line_bytes_per_s);
        println!("BENCH faultlink_push_{BAUD}_{name}_efficiency {efficiency:.4} ratio");
        println!(
            "BENCH faultlink_push_{BAUD}_{name}_throughput {:.0} bytes/s",
            SIZE as f64 / secs
        );
        println!("  ({secs:.1} s; line: {stats})");
    }
}

async fn push_once(data: &[u8], corrupt: f64) -> (f64, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let qemu_sock = dir.path().join("qemu.sock");
    let gw_sock = dir.path().join("line.sock");
    let _qemu = start_qemu(&qemu_sock);
    let t = Instant::now();
    while !qemu_sock.exists() {
        assert!(t.elapsed() < Duration::from_secs(10), "QEMU did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let line = Faults {
        baud: Some(BAUD),
        corrupt,
        ..Faults::none()
    };
    let link = FaultLink::start_with(
        Endpoint::UnixListen(gw_sock.clone()),
        Endpoint::Unix(qemu_sock),
        LinkFaults {
            a2b: line.clone(),
            b2a: line,
        },
        11,
    )
    .await
    .expect("fault link");
    let local = dir.path().join("image.bin");
    std::fs::write(&local, data).expect("writing the image");
    let address = format!("unix://{}", gw_sock.display());
    let corral = corral_bin().to_path_buf();
    let (secs, out) = tokio::task::spawn_blocking(move || {
        let t = Instant::now();
        let out = Command::new(corral)
            .args(["push", &address])
            .arg(&local)
            .arg("image/bench.bin")
            .output()
            .expect("running corral push");
        (t.elapsed().as_secs_f64(), out)
    })
    .await
    .expect("push task");
    assert!(
        out.status.success(),
        "corral push failed: {}",
        text(&out.stderr)
    );
    let stats = link.stats();
    link.shutdown().await;
    (
        secs,
        format!(
            "{} + {} bytes corrupted of {} + {}",
            stats.a2b.corrupted, stats.b2a.corrupted, stats.a2b.bytes_in, stats.b2a.bytes_in
        ),
    )
}
