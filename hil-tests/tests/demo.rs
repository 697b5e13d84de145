//! The README's main command, `corral demo`, run as a user runs it: the
//! real binary builds what it needs, starts a gateway with two Linux agents
//! and the QEMU board, runs a job on each, and must pass them all.

mod hil;

use hil::*;
use serde_json::Value;
use std::process::Command;

#[test]
fn corral_demo_passes_on_every_device_including_the_qemu_board() {
    // Set CORRAL_FIRMWARE_LM3S6965 aside: the demo builds the firmware itself
    // (a no-op when `cargo xtask test` already built it).
    let _ = firmware();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(corral_bin())
        .args(["demo", "--dir"])
        .arg(dir.path().join("demo"))
        .env("NO_COLOR", "1")
        .output()
        .expect("running corral demo");
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "corral demo failed (exit {:?})\n{stdout}\n{}",
        out.status.code(),
        text(&out.stderr)
    );
    let results: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("demo/results.json")).unwrap(),
    )
    .unwrap();
    let jobs = results.as_array().expect("a list of job results");
    let devices: Vec<&str> = jobs.iter().filter_map(|j| j["device"].as_str()).collect();
    assert_eq!(
        devices,
        ["linux-tcp", "linux-pty", "qemu-lm3s6965"],
        "{stdout}"
    );
    for job in jobs {
        for step in job["steps"].as_array().unwrap() {
            assert_eq!(step["outcome"]["status"], "passed", "{step}\n{stdout}");
        }
    }
    // The board's job streamed a 64 KiB image and read its hash back.
    let board = &jobs[2];
    let hash = board["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "the image's hash on the device")
        .expect("the image hash step");
    let image = std::fs::read(dir.path().join("demo/image.bin")).unwrap();
    let want: String = {
        use sha2::Digest;
        sha2::Sha256::digest(&image)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    assert!(
        hash["stdout"]["text"]
            .as_str()
            .unwrap_or("")
            .contains(&want),
        "{hash}"
    );
    assert!(
        std::fs::read_to_string(dir.path().join("demo/results.xml"))
            .unwrap()
            .contains("<testsuite"),
        "JUnit written"
    );
}
