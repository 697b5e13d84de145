//! Each fault does what it says, reproducibly from the seed.

use std::time::Duration;

use corral_hil_tests::faultlink::{Direction, Faults};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{random_bytes, through_a2b, within, TcpRig};

#[tokio::test]
async fn corrupt_rate_one_flips_exactly_one_bit_in_every_byte() {
    let input = random_bytes(64 << 10, 100);
    let faults = Faults {
        corrupt: 1.0,
        ..Faults::none()
    };
    let (output, link) = through_a2b(faults, 7, &input).await;
    assert_eq!(output.len(), input.len());
    for (i, (sent, got)) in input.iter().zip(&output).enumerate() {
        assert_eq!(
            (sent ^ got).count_ones(),
            1,
            "byte {i}: sent {sent:#04x}, got {got:#04x}"
        );
    }
    assert_eq!(link.stats().a2b.corrupted, input.len() as u64);
    link.shutdown().await;
}

#[tokio::test]
async fn the_same_seed_gives_the_same_faults_and_another_seed_does_not() {
    let input = random_bytes(64 << 10, 101);
    let faults = Faults {
        drop: 0.05,
        corrupt: 0.05,
        duplicate: 0.05,
        ..Faults::none()
    };
    let (first, link) = through_a2b(faults.clone(), 42, &input).await;
    link.shutdown().await;
    let (second, link) = through_a2b(faults.clone(), 42, &input).await;
    link.shutdown().await;
    let (other, link) = through_a2b(faults, 43, &input).await;
    link.shutdown().await;
    assert_ne!(first, input, "the faults must have changed something");
    assert!(
        first == second,
        "same seed, same input: the output must be identical"
    );
    assert!(
        first != other,
        "a different seed must give different faults"
    );
}

#[tokio::test]
async fn dropping_half_the_bytes_delivers_about_half() {
    let input = random_bytes(100 << 10, 102);
    let (output, link) = through_a2b(
        Faults {
            drop: 0.5,
            ..Faults::none()
        },
        8,
        &input,
    )
    .await;
    let share = output.len() as f64 / input.len() as f64;
    assert!(
        (0.4..=0.6).contains(&share),
        "{:.1}% arrived",
        share * 100.0
    );
    let stats = link.stats().a2b;
    assert_eq!(stats.dropped + output.len() as u64, input.len() as u64);
    // What arrives is the input with gaps, never altered or out of order.
    let mut rest = input.iter();
    for (i, byte) in output.iter().enumerate() {
        assert!(
            rest.any(|b| b == byte),
            "byte {i} of the output is not in the input in order"
        );
    }
    link.shutdown().await;
}

#[tokio::test]
async fn duplicate_rate_one_doubles_every_byte() {
    let input = random_bytes(10_000, 103);
    let (output, link) = through_a2b(
        Faults {
            duplicate: 1.0,
            ..Faults::none()
        },
        9,
        &input,
    )
    .await;
    let doubled: Vec<u8> = input.iter().flat_map(|&b| [b, b]).collect();
    assert!(
        output == doubled,
        "every byte must arrive exactly twice, in order"
    );
    assert_eq!(link.stats().a2b.duplicated, input.len() as u64);
    link.shutdown().await;
}

#[tokio::test]
async fn reorder_swaps_neighbouring_chunks_and_loses_nothing() {
    const CHUNK: usize = 4;
    let input: Vec<u8> = (0..4096u32).map(|i| (i / CHUNK as u32) as u8).collect();
    let faults = Faults {
        reorder: 1.0,
        reorder_chunk: CHUNK,
        ..Faults::none()
    };
    let (output, link) = through_a2b(faults, 10, &input).await;
    let (mut sorted_in, mut sorted_out) = (input.clone(), output.clone());
    sorted_in.sort_unstable();
    sorted_out.sort_unstable();
    assert!(
        sorted_in == sorted_out,
        "reordering must neither lose nor add bytes"
    );
    // Every chunk lands where it was or one chunk away.
    let chunks_in: Vec<&[u8]> = input.chunks(CHUNK).collect();
    let mut moved = 0;
    for (i, chunk) in output.chunks(CHUNK).enumerate() {
        let near = chunks_in[i.saturating_sub(1)..(i + 2).min(chunks_in.len())].contains(&chunk);
        assert!(
            near,
            "output chunk {i} ({chunk:?}) came from more than one chunk away"
        );
        moved += usize::from(chunk != chunks_in[i]);
    }
    assert!(
        moved >= chunks_in.len() / 2,
        "only {moved} of {} chunks moved",
        chunks_in.len()
    );
    assert!(link.stats().a2b.reordered > 0);
    link.shutdown().await;
}

#[tokio::test]
async fn delay_and_jitter_never_reorder_or_lose_bytes() {
    let input = random_bytes(64 << 10, 104);
    let faults = Faults {
        delay: Duration::from_millis(20),
        jitter: Duration::from_millis(20),
        ..Faults::none()
    };
    let (output, link) = through_a2b(faults, 11, &input).await;
    assert!(
        output == input,
        "delayed bytes must arrive complete and in order"
    );
    link.shutdown().await;
}

#[tokio::test]
async fn faults_changed_while_running_apply_to_the_next_bytes_in_one_direction_only() {
    let rig = TcpRig::start(Faults::none(), 12).await;
    let (mut gateway, mut device) = (rig.gateway, rig.device);
    let clean = random_bytes(1000, 105);
    let mut got = vec![0u8; clean.len()];
    gateway.write_all(&clean).await.unwrap();
    within("clean bytes", device.read_exact(&mut got))
        .await
        .unwrap();
    assert_eq!(got, clean);

    rig.link
        .set_faults(
            Direction::AToB,
            Faults {
                corrupt: 1.0,
                ..Faults::none()
            },
        )
        .unwrap();
    gateway.write_all(&clean).await.unwrap();
    within("corrupted bytes", device.read_exact(&mut got))
        .await
        .unwrap();
    assert!(got
        .iter()
        .zip(&clean)
        .all(|(g, c)| (g ^ c).count_ones() == 1));
    // The other direction is untouched.
    device.write_all(&clean).await.unwrap();
    within("b→a bytes", gateway.read_exact(&mut got))
        .await
        .unwrap();
    assert_eq!(got, clean);
    assert_eq!(rig.link.faults().b2a, Faults::none());

    let err = rig
        .link
        .set_faults(
            Direction::Both,
            Faults {
                drop: 1.5,
                ..Faults::none()
            },
        )
        .unwrap_err();
    assert!(err.to_string().contains("between 0 and 1"), "{err}");
    assert_eq!(
        rig.link.faults().a2b.corrupt,
        1.0,
        "a rejected change changes nothing"
    );
    rig.link.shutdown().await;
}
