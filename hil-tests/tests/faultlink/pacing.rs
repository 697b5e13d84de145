//! The baud-rate limit, counted in bytes rather than timed: however fast or slow
//! the machine, a 9600-baud line cannot have carried more than 960 bytes a second.
//! (The exact pacing is checked in simulated time by the unit tests in `pipe.rs`.)

use std::time::Instant;

use corral_hil_tests::faultlink::{Direction, Faults};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{random_bytes, within, TcpRig};

#[tokio::test]
async fn a_9600_baud_line_never_carries_more_than_960_bytes_a_second() {
    let rig = TcpRig::start(
        Faults {
            baud: Some(9600),
            ..Faults::none()
        },
        30,
    )
    .await;
    let (mut gateway, mut device) = (rig.gateway, rig.device);
    let input = random_bytes(1200, 300);
    let start = Instant::now();
    gateway.write_all(&input).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let passed = rig.link.stats().a2b.bytes_out;
    let elapsed = start.elapsed().as_secs_f64();
    // A ceiling, not a speed: the line may be slower on a busy machine, never faster.
    // One extra byte of slack for the slice in progress.
    let ceiling = (elapsed * 960.0).ceil() as u64 + 1;
    assert!(
        passed <= ceiling,
        "{passed} bytes passed in {elapsed:.3}s, at most {ceiling} fit"
    );
    assert!(
        passed < input.len() as u64,
        "the whole input passed at once"
    );

    // Everything still arrives, unchanged.
    let mut got = vec![0u8; input.len()];
    within("the paced bytes", device.read_exact(&mut got))
        .await
        .unwrap();
    assert!(got == input);
    // Lifting the limit while running lets bytes through without pacing.
    rig.link
        .update_faults(Direction::Both, |f| f.baud = None)
        .unwrap();
    let big = random_bytes(256 << 10, 301);
    gateway.write_all(&big).await.unwrap();
    let mut got = vec![0u8; big.len()];
    within("unpaced bytes", device.read_exact(&mut got))
        .await
        .unwrap();
    assert!(got == big);
    rig.link.shutdown().await;
}
