//! `cargo xtask fuzz`: runs the protocol's cargo-fuzz targets
//! (`protocol/fuzz/`) for a while each and fails if one finds a crash.
//!
//! cargo-fuzz instruments the code with compiler flags that only nightly
//! Rust accepts (`-Zsanitizer=address` and friends). The toolchain is chosen
//! in this order:
//!
//! 1. an installed `nightly` toolchain;
//! 2. `rustup toolchain install nightly --profile minimal`, if that works;
//! 3. the default (stable) toolchain with `RUSTC_BOOTSTRAP=1`, which unlocks
//!    the same flags on a stable compiler. It works (the targets build and
//!    run with AddressSanitizer on stable 1.95), but it is not a supported
//!    use of the stable compiler, so it is only the fallback for machines
//!    that cannot download a nightly.
//!
//! `cargo-fuzz` itself is installed from crates.io when missing. The corpus
//! of each target (`protocol/fuzz/corpus/<target>/`, not committed) is
//! seeded with the golden test vectors, so the fuzzer starts from valid
//! frames, datagrams and messages instead of searching for a CRC.

use crate::util::{have, output, step};
use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime};

/// The fuzz targets, in the order they run.
pub const TARGETS: &[&str] = &["frame_decoder", "message_decoder", "link_receive"];

/// Seconds per target when the command line does not say.
pub const DEFAULT_SECONDS: u64 = 60;

/// How cargo-fuzz gets a compiler that takes its flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Toolchain {
    /// `cargo +nightly fuzz …`.
    Nightly,
    /// `RUSTC_BOOTSTRAP=1 cargo fuzz …` with the default toolchain.
    Bootstrap,
}

/// Runs `target` (or every target) for `seconds` each. Installs cargo-fuzz
/// and a nightly toolchain when they are missing. Fails at the first target
/// that crashes, printing the reproducer's path, its bytes and the command
/// that replays it.
pub fn run(root: &Path, target: Option<&str>, seconds: u64) -> Result<()> {
    let targets: Vec<&str> = match target {
        None => TARGETS.to_vec(),
        Some(t) if TARGETS.contains(&t) => vec![t],
        Some(t) => bail!(
            "there is no fuzz target {t:?}; the targets are {}",
            TARGETS.join(", ")
        ),
    };
    if seconds == 0 {
        bail!("the fuzzing time must be at least 1 second per target");
    }
    let protocol = root.join("protocol");
    if !protocol.join("fuzz/Cargo.toml").is_file() {
        bail!(
            "{} has no fuzz/Cargo.toml: is this the Corral repository?",
            protocol.display()
        );
    }
    let toolchain = ensure_toolchain()?;
    ensure_cargo_fuzz()?;
    let mut summary = Vec::new();
    for t in targets {
        let seeds = seed_corpus(root, t)?;
        step(&format!(
            "fuzzing {t} for {seconds} s ({seeds} seeds from the golden vectors)"
        ));
        let stats = run_target(&protocol, toolchain, t, seconds)?;
        summary.push((t, stats));
    }
    step("fuzzing summary");
    for (t, s) in &summary {
        println!(
            "    {t:<16} {:>12} runs  {:>8} execs/s  coverage {:>6}  no crash",
            s.runs.map_or("?".into(), |n| n.to_string()),
            s.execs_per_sec.map_or("?".into(), |n| n.to_string()),
            s.coverage.map_or("?".into(), |n| n.to_string()),
        );
    }
    Ok(())
}

/// Picks (and if needed installs) the toolchain cargo-fuzz builds with.
fn ensure_toolchain() -> Result<Toolchain> {
    if !have("rustup") {
        println!("    rustup not found: using the default toolchain with RUSTC_BOOTSTRAP=1");
        return Ok(Toolchain::Bootstrap);
    }
    let nightly_works = || {
        output(
            Path::new("."),
            "rustup",
            &["run", "nightly", "rustc", "--version"],
        )
        .is_ok()
    };
    if nightly_works() {
        return Ok(Toolchain::Nightly);
    }
    step("installing a nightly toolchain for cargo-fuzz");
    let status = Command::new("rustup")
        .args(["toolchain", "install", "nightly", "--profile", "minimal"])
        .status()
        .context("starting rustup")?;
    if status.success() && nightly_works() {
        return Ok(Toolchain::Nightly);
    }
    println!(
        "    could not install nightly ({status}): falling back to the default toolchain with \
         RUSTC_BOOTSTRAP=1, which accepts the same flags"
    );
    Ok(Toolchain::Bootstrap)
}

/// Installs cargo-fuzz from crates.io if `cargo fuzz` does not run.
fn ensure_cargo_fuzz() -> Result<()> {
    if output(Path::new("."), "cargo", &["fuzz", "--version"]).is_ok() {
        return Ok(());
    }
    step("installing cargo-fuzz");
    let status = Command::new("cargo")
        .args(["install", "cargo-fuzz", "--locked"])
        .status()
        .context("starting `cargo install cargo-fuzz`")?;
    if !status.success() {
        bail!("`cargo install cargo-fuzz --locked` failed ({status}); install it by hand and run again");
    }
    Ok(())
}

/// Writes the golden vectors that suit `target` into its corpus directory;
/// returns how many.
fn seed_corpus(root: &Path, target: &str) -> Result<usize> {
    let seeds = seeds(root, target)?;
    let dir = root.join("protocol/fuzz/corpus").join(target);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for (i, seed) in seeds.iter().enumerate() {
        let path = dir.join(format!("golden-{i:03}"));
        std::fs::write(&path, seed).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(seeds.len())
}

/// The seed inputs of `target`, made from the golden vectors.
fn seeds(root: &Path, target: &str) -> Result<Vec<Vec<u8>>> {
    let vectors = root.join("protocol/tests/vectors");
    let read = |file: &str| -> Result<String> {
        let path = vectors.join(file);
        std::fs::read_to_string(&path)
            .with_context(|| format!("reading the golden vectors {}", path.display()))
    };
    let seeds: Vec<Vec<u8>> = match target {
        "frame_decoder" => {
            let mut s = hex_values(&read("frames.json")?, "wire");
            s.extend(hex_values(&read("frame_decoder.json")?, "input"));
            s
        }
        "message_decoder" => {
            let text = read("messages.json")?;
            let mut s = hex_values(&text, "hex");
            s.extend(hex_values(&text, "canonical"));
            s
        }
        "link_receive" => {
            let mut s: Vec<Vec<u8>> = hex_values(&read("datagrams.json")?, "hex")
                .into_iter()
                .filter(|body| body.len() <= 255)
                .map(|body| link_script(&body))
                .collect();
            s.push(link_conversation());
            s
        }
        other => bail!("no seeds defined for fuzz target {other}"),
    };
    Ok(seeds)
}

/// Every string value of `"key"` in a vector file, as bytes (the vector
/// files write bytes as hex pairs separated by spaces).
fn hex_values(json: &str, key: &str) -> Vec<Vec<u8>> {
    let needle = format!("\"{key}\": \"");
    json.match_indices(&needle)
        .filter_map(|(at, _)| {
            let rest = &json[at + needle.len()..];
            let text = &rest[..rest.find('"')?];
            let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
            if !digits.len().is_multiple_of(2) {
                return None;
            }
            digits
                .chunks(2)
                .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
                .collect()
        })
        .collect()
}

/// A `link_receive` script (see `protocol/fuzz/fuzz_targets/link_receive.rs`
/// for the operations) that completes a handshake, delivers `body` as a
/// frame, then polls events and transmits.
fn link_script(body: &[u8]) -> Vec<u8> {
    let mut s = vec![0x00];
    // op 2: a HELLO from session 0x0badcafe that knows ours, NEEDS_REPLY,
    // all features.
    s.extend([0x02, 0xfe, 0xca, 0xad, 0x0b, 0x01, 0x3f, 0x00, 0x00, 0x00]);
    // op 7: transmit into a 2048-byte buffer.
    s.extend([0x07, 0xff, 0x07]);
    // op 1: the datagram, framed.
    s.push(0x01);
    s.push(body.len() as u8);
    s.extend_from_slice(body);
    // op 6: poll 16 events; op 4: 50 ms pass; op 7 again.
    s.extend([0x06, 0x0f, 0x04, 0x32, 0x80, 0x07, 0xff, 0x07]);
    s
}

/// A `link_receive` script of the two real links talking over a clean line
/// with messages and time passing.
fn link_conversation() -> Vec<u8> {
    let mut s = vec![0x01];
    for i in 0..12u8 {
        // op 9: an exchange, the peer sending a message every other time.
        s.extend([0x09, if i % 2 == 0 { 0x04 } else { 0x00 }, 0x10 + i, 0x02]);
        // op 5: we send a message; op 4: 5 ms pass.
        s.extend([0x05, 0x40 + i, 0x00, 0x04, 0x05, 0x80]);
    }
    s
}

/// What libFuzzer reported at the end of a run.
#[derive(Debug, Default)]
struct RunStats {
    runs: Option<u64>,
    execs_per_sec: Option<u64>,
    coverage: Option<u64>,
}

fn run_target(
    protocol: &Path,
    toolchain: Toolchain,
    target: &str,
    seconds: u64,
) -> Result<RunStats> {
    let max_time = format!("-max_total_time={seconds}");
    let mut args: Vec<&str> = Vec::new();
    if toolchain == Toolchain::Nightly {
        args.push("+nightly");
    }
    // Release build with debug assertions: overflow checks and the link's
    // internal consistency checks turn silent corruption into crashes.
    args.extend([
        "fuzz",
        "run",
        "--release",
        "--debug-assertions",
        target,
        "--",
    ]);
    args.extend([
        max_time.as_str(),
        "-max_len=4096",
        "-timeout=10",
        "-rss_limit_mb=2048",
        "-print_final_stats=1",
    ]);
    let shown = format!(
        "{}cargo {}",
        if toolchain == Toolchain::Bootstrap {
            "RUSTC_BOOTSTRAP=1 "
        } else {
            ""
        },
        args.join(" ")
    );
    println!("    $ {shown}");
    let started = SystemTime::now();
    let t = Instant::now();
    let mut cmd = Command::new("cargo");
    cmd.args(&args).current_dir(protocol).stderr(Stdio::piped());
    if toolchain == Toolchain::Bootstrap {
        cmd.env("RUSTC_BOOTSTRAP", "1");
    }
    let mut child = cmd.spawn().with_context(|| format!("starting `{shown}`"))?;
    let mut stats = RunStats::default();
    // libFuzzer reports on stderr. Pass it on without the line per new
    // corpus entry, and keep the final statistics.
    if let Some(err) = child.stderr.take() {
        let mut out = std::io::stderr();
        // Split on bytes: a crash report may quote input that is not UTF-8.
        for line in BufReader::new(err).split(b'\n') {
            let line = line.context("reading the fuzzer's output")?;
            let line = String::from_utf8_lossy(&line);
            let value = |key: &str| {
                line.strip_prefix(key)
                    .and_then(|v| v.trim().parse::<u64>().ok())
            };
            if let Some(v) = value("stat::number_of_executed_units:") {
                stats.runs = Some(v);
            } else if let Some(v) = value("stat::average_exec_per_sec:") {
                stats.execs_per_sec = Some(v);
            }
            if line.starts_with('#') {
                if let Some(cov) = line
                    .split("cov: ")
                    .nth(1)
                    .and_then(|r| r.split_whitespace().next())
                {
                    stats.coverage = cov.parse().ok();
                }
                if matches!(line.split_whitespace().nth(1), Some("NEW" | "REDUCE")) {
                    continue;
                }
            }
            // The dictionary libFuzzer recommends at exit is of no use here.
            if line.contains("Recommended dictionary") || line.contains("# Uses:") {
                continue;
            }
            let _ = writeln!(out, "{line}");
        }
    }
    let status = child
        .wait()
        .with_context(|| format!("waiting for `{shown}`"))?;
    if status.success() {
        println!("    ok in {:.0?}", t.elapsed());
        return Ok(stats);
    }
    let artifacts = protocol.join("fuzz/artifacts").join(target);
    match newest_artifact(&artifacts, started) {
        Some(path) => {
            let bytes = std::fs::read(&path).unwrap_or_default();
            let shown_bytes: Vec<String> =
                bytes.iter().take(512).map(|b| format!("{b:02x}")).collect();
            bail!(
                "fuzz target {target} crashed ({:.0?} after the start, build included).\n  reproducer: {}\n  input ({} bytes): {}{}\n  \
                 replay: (cd protocol && {}cargo {}fuzz run --release --debug-assertions {target} {})",
                t.elapsed(),
                path.display(),
                bytes.len(),
                shown_bytes.join(" "),
                if bytes.len() > 512 { " …" } else { "" },
                if toolchain == Toolchain::Bootstrap { "RUSTC_BOOTSTRAP=1 " } else { "" },
                if toolchain == Toolchain::Nightly { "+nightly " } else { "" },
                path.strip_prefix(protocol).unwrap_or(&path).display(),
            )
        }
        None => bail!(
            "`{shown}` failed ({status}) without leaving a reproducer in {}",
            artifacts.display()
        ),
    }
}

/// The most recent file in `dir` written after `since`.
fn newest_artifact(dir: &Path, since: SystemTime) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .filter(|(modified, _)| *modified >= since)
        .max_by_key(|(modified, _)| *modified)
        .map(|(_, path)| path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_values_reads_the_vector_files_format() {
        let json = "{\n  \"hex\": \"01 02 ff\",\n  \"wire\": \"00\",\n  \"hex\": \"\"\n}";
        assert_eq!(hex_values(json, "hex"), vec![vec![1, 2, 255], vec![]]);
        assert_eq!(hex_values(json, "wire"), vec![vec![0]]);
    }

    #[test]
    fn every_target_is_seeded_from_the_golden_vectors() {
        let root = crate::util::repo_root().unwrap();
        for target in TARGETS {
            let seeds = seeds(&root, target).unwrap();
            assert!(seeds.len() >= 10, "{target}: only {} seeds", seeds.len());
        }
        // The frame vectors are whole frames, ending with their delimiter.
        let frames = seeds(&root, "frame_decoder").unwrap();
        assert!(frames.iter().filter(|s| s.last() == Some(&0)).count() >= 10);
    }
}
