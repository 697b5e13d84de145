//! What the end-to-end suites share: the real binaries, QEMU boards, a
//! gateway process, and the `corral` CLI driven as a user drives it.
//!
//! Binaries are the workspace's own (`corral`, `corral-agent`), found next to
//! this test's executable and built once if missing. The emulated board's
//! firmware comes from `CORRAL_FIRMWARE_LM3S6965` (set by `cargo xtask
//! test`, which builds it once) or is built here. Real hardware joins when
//! `CORRAL_HIL_INVENTORY` names an inventory (see hil-tests/README.md).

#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The workspace's target directory for this build profile.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    // target/<profile>/deps/<test> → target/<profile>
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

/// Builds the binaries the suites drive, once per test process.
pub fn binaries() -> &'static (PathBuf, PathBuf) {
    static BINS: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    BINS.get_or_init(|| {
        let dir = bin_dir();
        let corral = dir.join("corral");
        let agent = dir.join("corral-agent");
        if !corral.is_file() || !agent.is_file() {
            let release = dir.ends_with("release");
            let mut cmd = Command::new(env!("CARGO"));
            cmd.args(["build", "-p", "corral-gateway", "-p", "corral-agent"])
                .current_dir(repo_root());
            if release {
                cmd.arg("--release");
            }
            assert!(
                cmd.status().expect("cargo").success(),
                "building corral and corral-agent failed"
            );
        }
        (corral, agent)
    })
}

pub fn corral_bin() -> &'static Path {
    &binaries().0
}

pub fn agent_bin() -> &'static Path {
    &binaries().1
}

/// The emulated board's firmware, built once.
pub fn firmware() -> PathBuf {
    static FW: OnceLock<PathBuf> = OnceLock::new();
    FW.get_or_init(|| {
        if let Some(p) = std::env::var_os("CORRAL_FIRMWARE_LM3S6965").map(PathBuf::from).filter(|p| p.is_file()) {
            return p;
        }
        let board = repo_root().join("boards/qemu-lm3s6965");
        let ok = Command::new("cargo")
            .args(["build", "--release"])
            .current_dir(&board)
            .env_remove("CARGO_TARGET_DIR")
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "building the lm3s6965 firmware failed (is the thumbv7m-none-eabi target installed? `cargo xtask test` installs it)");
        repo_root().join("boards/target/thumbv7m-none-eabi/release/corral-board-qemu-lm3s6965")
    })
    .clone()
}

/// The QEMU command line that serves the board's UART on `sock`.
pub fn qemu_argv(sock: &Path) -> Vec<String> {
    vec![
        "qemu-system-arm".into(),
        "-machine".into(),
        "lm3s6965evb".into(),
        "-cpu".into(),
        "cortex-m3".into(),
        "-display".into(),
        "none".into(),
        "-monitor".into(),
        "none".into(),
        "-chardev".into(),
        format!("socket,id=uart0,path={},server=on,wait=off", sock.display()),
        "-serial".into(),
        "chardev:uart0".into(),
        "-kernel".into(),
        firmware().display().to_string(),
    ]
}

/// A child process stopped when dropped: SIGTERM first, so a gateway can
/// power off the QEMU boards it started (a SIGKILL would orphan them), then
/// SIGKILL if it is still there after a few seconds.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.0.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(5) {
                if let Ok(Some(_)) = self.0.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a QEMU board serving its UART on `sock`.
pub fn start_qemu(sock: &Path) -> Proc {
    let argv = qemu_argv(sock);
    let child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting qemu-system-arm (cargo xtask test installs it)");
    Proc(child)
}

/// Starts `corral-agent` with a root under `dir`.
pub fn start_agent(root: &Path, args: &[&str]) -> Proc {
    std::fs::create_dir_all(root).unwrap();
    let child = Command::new(agent_bin())
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting corral-agent");
    Proc(child)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `corral gateway` process with an inventory.
pub struct Gateway {
    pub proc: Proc,
    pub url: String,
    pub dir: PathBuf,
}

impl Gateway {
    /// Starts a gateway whose inventory is `devices` (TOML `[[device]]`
    /// entries), in `dir`.
    pub fn start(dir: &Path, devices: &str) -> Gateway {
        let port = free_port();
        let inv = dir.join("gateway.toml");
        std::fs::write(
            &inv,
            format!("[gateway]\nlisten = \"127.0.0.1:{port}\"\n\n{devices}"),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("gateway.log")).unwrap();
        let child = Command::new(corral_bin())
            .args(["gateway", "--config"])
            .arg(&inv)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting corral gateway");
        let gw = Gateway {
            proc: Proc(child),
            url: format!("http://127.0.0.1:{port}"),
            dir: dir.to_path_buf(),
        };
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "the gateway did not start listening: {}",
                gw.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        gw
    }

    /// Asserts a command succeeded, showing its output and the gateway's
    /// log if not.
    pub fn ok(&self, out: &Output) -> String {
        assert!(
            out.status.success(),
            "exit {:?}\nstdout: {}\nstderr: {}\ngateway log:\n{}",
            out.status.code(),
            text(&out.stdout),
            text(&out.stderr),
            self.log()
        );
        text(&out.stdout)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("gateway.log")).unwrap_or_default()
    }

    /// Runs `corral --gateway URL ARGS`.
    pub fn corral(&self, args: &[&str]) -> Output {
        Command::new(corral_bin())
            .arg("--gateway")
            .arg(&self.url)
            .args(args)
            .env("NO_COLOR", "1")
            .output()
            .expect("running corral")
    }

    /// Every device's status, from `corral devices --json`.
    pub fn devices(&self) -> Vec<Value> {
        let out = self.corral(&["devices", "--json"]);
        assert!(
            out.status.success(),
            "corral devices --json: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("corral devices --json prints JSON")
    }

    pub fn state(&self, device: &str) -> String {
        self.devices()
            .iter()
            .find(|d| d["name"] == device)
            .and_then(|d| d["state"].as_str().map(str::to_string))
            .unwrap_or_else(|| panic!("no device {device}"))
    }

    /// Waits until `device` is in one of `states`.
    pub fn wait_state(&self, device: &str, states: &[&str], limit: Duration) {
        let t = Instant::now();
        loop {
            let s = self.state(device);
            if states.contains(&s.as_str()) {
                return;
            }
            assert!(
                t.elapsed() < limit,
                "{device} is {s}, not {states:?}, after {limit:?}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Asserts a command succeeded, showing its output if not.
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}
