//! What the end-to-end tests share: the real binaries (`corral` from this
//! package, `corral-agent` built next to it), agents, a `corral gateway`
//! process, and the CLI run the way a user runs it.

#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const CORRAL: &str = env!("CARGO_BIN_EXE_corral");

/// `target/<profile>`, where cargo puts the workspace's binaries.
fn bin_dir() -> PathBuf {
    Path::new(CORRAL)
        .parent()
        .expect("the corral binary is in a directory")
        .to_path_buf()
}

/// The `corral-agent` binary, built once if this test run lacks it (`cargo
/// test -p corral-gateway` alone does not build other packages' binaries).
pub fn agent_bin() -> &'static Path {
    static AGENT: OnceLock<PathBuf> = OnceLock::new();
    AGENT.get_or_init(|| {
        let agent = bin_dir().join("corral-agent");
        if !agent.is_file() {
            let mut cmd = Command::new(env!("CARGO"));
            cmd.args(["build", "-p", "corral-agent"])
                .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
            if bin_dir().ends_with("release") {
                cmd.arg("--release");
            }
            let ok = cmd.status().map(|s| s.success()).unwrap_or(false);
            assert!(ok && agent.is_file(), "building corral-agent failed");
        }
        agent
    })
}

/// A child process, killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Starts `corral-agent --root ROOT ARGS`, logging to ROOT.log.
pub fn agent(root: &Path, args: &[&str]) -> Proc {
    std::fs::create_dir_all(root).unwrap();
    let log = std::fs::File::create(root.with_extension("log")).unwrap();
    let child = Command::new(agent_bin())
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("starting corral-agent");
    Proc(child)
}

/// Writes a new agent key.
pub fn keygen(path: &Path) {
    let out = Command::new(agent_bin())
        .arg("keygen")
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "corral-agent keygen: {}",
        text(&out.stderr)
    );
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `corral ARGS` with nothing on stdin and no colour.
pub fn corral(args: &[&str]) -> Output {
    Command::new(CORRAL)
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("CORRAL_GATEWAY")
        .env_remove("CORRAL_LEASE")
        .env_remove("CORRAL_KEY_FILE")
        .stdin(Stdio::null())
        .output()
        .expect("running corral")
}

/// Asserts success; returns stdout.
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

/// Asserts success; returns stderr.
pub fn ok_err(out: &Output) -> String {
    ok(out);
    text(&out.stderr)
}

/// Asserts the exit code; returns stderr.
pub fn code(out: &Output, want: i32) -> String {
    assert_eq!(
        out.status.code(),
        Some(want),
        "stdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stderr)
}

/// A `corral gateway` process.
pub struct Gateway {
    pub proc: Proc,
    pub url: String,
    pub port: u16,
    pub config: PathBuf,
    pub log: PathBuf,
}

impl Gateway {
    /// Starts a gateway on `config` (whose `[gateway] listen` must be
    /// `127.0.0.1:port`) and waits until it answers.
    pub fn start(config: &Path, port: u16) -> Gateway {
        let log = config.with_extension("log");
        let child = Command::new(CORRAL)
            .args(["gateway", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("starting corral gateway");
        let gw = Gateway {
            proc: Proc(child),
            url: format!("http://127.0.0.1:{port}"),
            port,
            config: config.to_path_buf(),
            log,
        };
        let t = Instant::now();
        while http_get(port, "/healthz").is_none() {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "the gateway did not start: {}",
                gw.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        gw
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `corral --gateway URL ARGS`.
    pub fn corral(&self, args: &[&str]) -> Output {
        let mut all = vec!["--gateway", &self.url];
        all.extend_from_slice(args);
        corral(&all)
    }

    /// A `corral --gateway URL ARGS` process with piped stdout and stderr.
    pub fn spawn(&self, args: &[&str]) -> Child {
        Command::new(CORRAL)
            .arg("--gateway")
            .arg(&self.url)
            .args(args)
            .env("NO_COLOR", "1")
            .env_remove("CORRAL_LEASE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running corral")
    }

    /// `corral devices --json`.
    pub fn devices(&self) -> Vec<Value> {
        let out = self.corral(&["devices", "--json"]);
        serde_json::from_str(&ok(&out)).expect("corral devices --json prints JSON")
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

    /// Sends a signal to the daemon.
    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.proc.pid().to_string())
            .status()
            .unwrap();
        assert!(st.success());
    }
}

/// A plain HTTP/1.0 GET on loopback: `(status, body)`.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .ok()?;
    let mut all = String::new();
    s.read_to_string(&mut all).ok()?;
    let status = all.split(' ').nth(1)?.parse().ok()?;
    let body = all
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// Pseudo-random bytes (xorshift), the same for the same seed.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}
