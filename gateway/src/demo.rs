//! `corral demo`: the whole system on this machine, nothing to install.
//!
//! It builds what it needs (the `corral-agent` binary and, when QEMU is
//! available, the emulated Cortex-M3 board's firmware), starts a gateway with
//! virtual devices — real `corral-agent` processes over TCP and over a pty
//! null-modem cable, and the QEMU board as a latent device that is switched
//! on when its job needs it — runs a sample job on each, prints the result
//! table and writes JUnit and JSON files.

use crate::config::inventory::Inventory;
use crate::config::job::Job;
use crate::gateway::{Gateway, Target};
use crate::report::{self, JobOutcome, JobResult};
use anyhow::{bail, Context, Result};
use corral_hil_tests::faultlink::{Endpoint, FaultLink, Faults};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// Options of the demo.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Where results and working files go.
    pub dir: PathBuf,
    /// Colour in the table.
    pub color: bool,
    /// Include the QEMU board (when QEMU and the firmware can be had).
    pub qemu: bool,
}

/// The repository this binary was built from.
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn say(msg: &str) {
    println!("demo: {msg}");
}

/// The `corral-agent` binary next to this one, built if missing.
fn agent_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the corral binary")?;
    let dir = exe.parent().context("the corral binary has no directory")?;
    let agent = dir.join("corral-agent");
    if agent.is_file() {
        return Ok(agent);
    }
    let release = dir.ends_with("release");
    say(&format!(
        "building corral-agent ({})",
        if release { "release" } else { "debug" }
    ));
    let mut cmd =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(["build", "-p", "corral-agent"])
        .current_dir(repo_root());
    if release {
        cmd.arg("--release");
    }
    let status = cmd
        .status()
        .context("running cargo to build corral-agent")?;
    if !status.success() || !agent.is_file() {
        bail!("could not build corral-agent (cargo build -p corral-agent failed); build it by hand and run the demo again");
    }
    Ok(agent)
}

fn have(program: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// QEMU and the board firmware, installed or built when possible; `Err`
/// says what is missing.
fn qemu_board() -> Result<PathBuf, String> {
    if !have("qemu-system-arm") {
        let root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .map(|o| o.stdout == b"0\n")
            .unwrap_or(false);
        if !root {
            return Err("qemu-system-arm is not installed (sudo apt-get install -y --no-install-recommends qemu-system-arm)".into());
        }
        say("installing qemu-system-arm (apt-get)");
        let ok = std::process::Command::new("sh")
            .args(["-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-system-arm"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok || !have("qemu-system-arm") {
            return Err("installing qemu-system-arm failed".into());
        }
    }
    let installed = std::process::Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map_err(|e| format!("running rustup: {e}"))?;
    if !String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|l| l.trim() == "thumbv7m-none-eabi")
    {
        say("adding the rustup target thumbv7m-none-eabi");
        let ok = std::process::Command::new("rustup")
            .args(["target", "add", "thumbv7m-none-eabi"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            return Err("rustup target add thumbv7m-none-eabi failed".into());
        }
    }
    let board = repo_root().join("boards/qemu-lm3s6965");
    say("building the lm3s6965 firmware (release)");
    let ok = std::process::Command::new("cargo")
        .args(["build", "--release", "--quiet"])
        .current_dir(&board)
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    let elf =
        repo_root().join("boards/target/thumbv7m-none-eabi/release/corral-board-qemu-lm3s6965");
    if !ok || !elf.is_file() {
        return Err(format!(
            "building the firmware in {} failed",
            board.display()
        ));
    }
    Ok(elf)
}

/// A spawned agent process, killed when dropped.
struct Agent {
    _child: tokio::process::Child,
}

fn spawn_agent(bin: &Path, root: &Path, args: &[&str]) -> Result<Agent> {
    std::fs::create_dir_all(root)?;
    let child = tokio::process::Command::new(bin)
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    Ok(Agent { _child: child })
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

const LINUX_JOB: &str = r#"
name = "linux-smoke"
timeout = "2m"

[defaults]
timeout = "30s"

[[step]]
name = "push the self-test"
push = { local = "selftest.sh", remote = "bin/selftest.sh", mode = 0o755 }

[[step]]
name = "push 1 MiB of data"
push = { local = "data.bin", remote = "data/data.bin" }

[[step]]
name = "self-test passes"
exec = ["bin/selftest.sh"]

[[step]]
name = "data arrived intact"
exec = ["sh", "-c", "sha256sum data/data.bin | cut -d' ' -f1 > data/data.sha && cat data/data.sha"]

[[step]]
name = "pull the checksum"
pull = { remote = "data/data.sha", local = "out/{device}/data.sha" }
"#;

const SELFTEST_SH: &str =
    "#!/bin/sh\necho \"selftest on $(uname -sm)\"\necho 'all checks passed' >&2\n";

const FIRMWARE_JOB: &str = r#"
name = "firmware-smoke"
timeout = "2m"

[defaults]
timeout = "30s"

[[step]]
name = "self-test passes"
exec = ["selftest"]

[[step]]
name = "echo"
exec = ["echo", "hello", "from", "the", "board"]

[[step]]
name = "push a 512-byte file to RAM"
push = { local = "small.bin", remote = "small.bin" }

[[step]]
name = "its hash on the device"
exec = ["hash", "small.bin"]

[[step]]
name = "stream a 64 KiB image through the image slot"
push = { local = "image.bin", remote = "image/image.bin" }

[[step]]
name = "the image's hash on the device"
exec = ["hash", "image/image.bin"]

[[step]]
name = "reset"
reset = {}

[[step]]
name = "self-test after reset"
exec = ["selftest"]
"#;

/// Runs the demo; returns whether every job passed.
pub async fn run(opts: DemoOptions) -> Result<bool> {
    let dir = &opts.dir;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir.canonicalize()?;
    let agent_bin = agent_binary()?;

    // Inputs of the jobs.
    let mut data = vec![0u8; 1 << 20];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::write(dir.join("data.bin"), &data)?;
    // The board keeps small files in 1 KiB of RAM; big ones stream
    // through its write-only image slot.
    std::fs::write(dir.join("small.bin"), &data[..512])?;
    std::fs::write(dir.join("image.bin"), &data[..64 * 1024])?;
    std::fs::write(dir.join("selftest.sh"), SELFTEST_SH)?;

    // Devices: an agent over TCP with a key, an agent over a pty cable.
    let key = dir.join("agent.key");
    corral_io::transport::write_new_key_file(&key)?;
    let port = free_port()?;
    let listen = format!("tcp://127.0.0.1:{port}");
    let _tcp_agent = spawn_agent(
        &agent_bin,
        &dir.join("dev/linux-tcp"),
        &[
            "--listen",
            &listen,
            "--key-file",
            key.to_str().unwrap_or_default(),
        ],
    )?;
    let cable = FaultLink::start(
        Endpoint::Pty {
            link: Some(dir.join("tty-agent")),
        },
        Endpoint::Pty {
            link: Some(dir.join("tty-gateway")),
        },
        Faults::none(),
        1,
    )
    .await
    .context("making a pty null-modem cable")?;
    let _pty_agent = spawn_agent(
        &agent_bin,
        &dir.join("dev/linux-pty"),
        &[
            "--serial",
            dir.join("tty-agent").to_str().unwrap_or_default(),
            "--baud",
            "115200",
        ],
    )?;

    let mut inventory = format!(
        r#"
[gateway]
name = "demo"

[[device]]
name = "linux-tcp"
labels = ["os=linux", "link=tcp"]
tcp = {{ address = "127.0.0.1:{port}", key_file = "agent.key" }}

[[device]]
name = "linux-pty"
labels = ["os=linux", "link=serial"]
serial = {{ path = "tty-gateway", baud = 115200 }}
"#
    );
    let qemu = if opts.qemu {
        match qemu_board() {
            Ok(elf) => {
                let sock = dir.join("qemu-board.sock");
                inventory.push_str(&format!(
                    r#"
[[device]]
name = "qemu-lm3s6965"
labels = ["os=none", "board=lm3s6965", "emulated"]
unix = {{ path = "{sock}" }}
power_on = ["qemu-system-arm", "-machine", "lm3s6965evb", "-cpu", "cortex-m3", "-display", "none", "-monitor", "none", "-chardev", "socket,id=uart0,path={sock},server=on,wait=off", "-serial", "chardev:uart0", "-kernel", "{elf}"]
"#,
                    sock = sock.display(),
                    elf = elf.display()
                ));
                true
            }
            Err(why) => {
                say(&format!("skipping the emulated board: {why}"));
                false
            }
        }
    } else {
        false
    };
    let inv_path = dir.join("gateway.toml");
    std::fs::write(&inv_path, &inventory)?;
    let inventory = Inventory::load(&inv_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let gateway = Gateway::start(inventory);
    say(&format!(
        "gateway started with {} devices (inventory: {})",
        gateway.devices().len(),
        inv_path.display()
    ));

    let linux_job_path = dir.join("linux.toml");
    std::fs::write(&linux_job_path, LINUX_JOB)?;
    let fw_job_path = dir.join("firmware.toml");
    std::fs::write(&fw_job_path, FIRMWARE_JOB)?;

    let mut runs = Vec::new();
    let mut names = vec!["linux-tcp", "linux-pty"];
    if qemu {
        names.push("qemu-lm3s6965");
    }
    for name in names {
        let text = if name.starts_with("qemu") {
            FIRMWARE_JOB.to_string()
        } else {
            LINUX_JOB.replace("{device}", name)
        };
        let origin = if name.starts_with("qemu") {
            fw_job_path.clone()
        } else {
            linux_job_path.clone()
        };
        let job = Job::parse(&text, &origin).map_err(|e| anyhow::anyhow!("{e}"))?;
        let gw = gateway.clone();
        runs.push(tokio::spawn(async move {
            // A device needs a moment to connect (QEMU to boot): wait for it.
            let _ = gw.device(name).map(|d| d.demand());
            let d = gw.device(name).ok();
            let _keep_on = d.as_ref().map(|d| d.demand());
            if let Some(d) = &d {
                let _ = d.client(Duration::from_secs(60)).await;
            }
            gw.run_job(
                &job,
                &Target::Device(name.to_string()),
                "demo",
                Some(Duration::from_secs(60)),
            )
            .await
        }));
    }
    let mut results: Vec<JobResult> = Vec::new();
    for r in runs {
        match r.await {
            Ok(Ok(res)) => results.push(res),
            Ok(Err(e)) => say(&format!("a job could not run: {e}")),
            Err(e) => say(&format!("a job task failed: {e}")),
        }
    }

    println!();
    print!("{}", report::table::render_table(&results, opts.color));
    println!();
    let statuses: Vec<_> = gateway.devices().iter().map(|d| d.status()).collect();
    for s in &statuses {
        println!(
            "device {:<14} {:<11} {}  crc_errors={} retransmits={}",
            s.name,
            s.state.as_str(),
            s.identity
                .as_ref()
                .map(|i| format!("{} {} boot {}", i.board, i.firmware, i.boot_id))
                .unwrap_or_default(),
            s.counters.crc_errors,
            s.counters.retransmits
        );
    }
    let junit = dir.join("results.xml");
    let json = dir.join("results.json");
    std::fs::write(&junit, report::junit::to_junit_string(&results))?;
    std::fs::write(&json, serde_json::to_string_pretty(&results)?)?;
    println!();
    say(&format!("JUnit results: {}", junit.display()));
    say(&format!("JSON results:  {}", json.display()));
    gateway.shutdown().await;
    cable.shutdown().await;
    let ok = results.len() == if qemu { 3 } else { 2 }
        && results.iter().all(|r| r.outcome() == JobOutcome::Passed);
    Ok(ok)
}
