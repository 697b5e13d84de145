//! Helpers shared by the end-to-end tests: start the real `corral-agent`
//! binary with a temporary root, connect to it the way the gateway does
//! (`corral_io::client::DeviceClient` over TCP, stdio or a pty), run commands
//! and look at processes.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use corral_io::client::{DeviceClient, ExecEvent, ExecHandle, ExecOptions, ExitInfo};
use corral_io::driver::{spawn_link, LinkReceiver, LinkSender};
use corral_protocol::auth::Key;
use corral_protocol::Config;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Longest wait for anything in these tests; only reached when something is
/// broken.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// The binary under test.
pub fn agent_bin() -> &'static str {
    env!("CARGO_BIN_EXE_corral-agent")
}

/// A running agent and what the test needs to talk to it.
pub struct Agent {
    pub child: Child,
    /// Everything the agent logged so far.
    pub log: Arc<Mutex<String>>,
    pub root: tempfile::TempDir,
    pub addr: Option<SocketAddr>,
    pub key: Option<Key>,
    pub key_file: Option<PathBuf>,
    /// Keeps the key file's directory alive.
    _keys: Option<tempfile::TempDir>,
}

/// Writes a key file with `corral-agent keygen` and loads it.
pub fn keygen(dir: &Path) -> (PathBuf, Key) {
    let file = dir.join("agent.key");
    let out = std::process::Command::new(agent_bin())
        .arg("keygen")
        .arg(&file)
        .output()
        .expect("run corral-agent keygen");
    assert!(out.status.success(), "keygen failed: {out:?}");
    let key = corral_io::transport::load_key_file(&file).expect("the new key loads");
    (file, key)
}

/// A `corral-agent` command with a fresh root and test-friendly settings.
pub fn agent_command(root: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(agent_bin());
    cmd.arg("--root")
        .arg(root)
        .args(["--name", "test-device", "--serial-number", "SN-TEST"])
        // Killing commands should not make tests wait long.
        .args(["--kill-grace", "500ms"])
        .args(args)
        .env("RUST_LOG", "info,corral_agent=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Collects the agent's standard error into `log` (and echoes it, so a
/// failing test shows what the agent said).
pub fn collect_log(child: &mut Child) -> Arc<Mutex<String>> {
    let log = Arc::new(Mutex::new(String::new()));
    let stderr = child.stderr.take().expect("stderr is piped");
    let sink = Arc::clone(&log);
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("agent: {line}");
            let mut log = sink.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
    log
}

impl Agent {
    /// Starts an agent listening on a free loopback port, with a key unless
    /// `with_key` is false.
    pub async fn tcp(with_key: bool, extra: &[&str]) -> Agent {
        let root = tempfile::tempdir().expect("temp root");
        let keys = tempfile::tempdir().expect("temp key dir");
        let (key_file, key) = if with_key {
            let (f, k) = keygen(keys.path());
            (Some(f), Some(k))
        } else {
            (None, None)
        };
        let mut args = vec!["--listen", "tcp://127.0.0.1:0"];
        let key_arg;
        if let Some(f) = &key_file {
            key_arg = f.display().to_string();
            args.extend(["--key-file", key_arg.as_str()]);
        }
        args.extend(extra);
        let mut child = agent_command(root.path(), &args)
            .spawn()
            .expect("start corral-agent");
        let log = collect_log(&mut child);
        let mut agent = Agent {
            child,
            log,
            root,
            addr: None,
            key,
            key_file,
            _keys: Some(keys),
        };
        let line = agent
            .wait_for_log("listening on tcp://")
            .await
            .expect("the agent says where it listens");
        let addr = line
            .split("listening on tcp://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("cannot parse the address in {line:?}"));
        agent.addr = Some(addr);
        agent
    }

    /// Waits until the agent logged a line containing `needle`; returns it.
    pub async fn wait_for_log(&self, needle: &str) -> Option<String> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Some(line) = self
                .log
                .lock()
                .unwrap()
                .lines()
                .find(|l| l.contains(needle))
            {
                return Some(line.to_string());
            }
            if tokio::time::Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// An authenticated TCP connection to the agent.
    pub async fn tcp_stream(&self) -> tokio::net::TcpStream {
        let addr = self.addr.expect("a TCP agent").to_string();
        corral_io::transport::connect_tcp(&addr, self.key.as_ref())
            .await
            .expect("connect to the agent")
    }

    /// A ready gateway session over TCP.
    pub async fn connect(&self) -> DeviceClient {
        let (tx, rx) = spawn_link(
            self.tcp_stream().await,
            Config::stream(),
            corral_io::new_session_id(),
        );
        client(tx, rx).await
    }

    /// The path of `rel` under the agent's root.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    /// Sends SIGTERM and waits for the agent to exit; returns its status.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        signal_pid(
            self.child.id().expect("agent running"),
            rustix::process::Signal::TERM,
        );
        tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .expect("the agent exits after SIGTERM")
            .expect("wait for the agent")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // SIGTERM, not SIGKILL: the agent then stops the commands it runs,
        // which would otherwise outlive the test in their own process
        // groups.
        if let Some(pid) = self.child.id() {
            signal_pid(pid, rustix::process::Signal::TERM);
            for _ in 0..250 {
                if matches!(self.child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

fn signal_pid(pid: u32, signal: rustix::process::Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

/// A gateway session on a link, once the agent has introduced itself.
pub async fn client(tx: LinkSender, rx: LinkReceiver) -> DeviceClient {
    let client = DeviceClient::new(tx, rx, "e2e-test");
    client
        .ready(PATIENCE)
        .await
        .expect("the agent answers Hello");
    client
}

/// `sh -c SCRIPT`.
pub fn sh(script: &str) -> ExecOptions {
    ExecOptions {
        argv: vec!["sh".into(), "-c".into(), script.into()],
        timeout: Some(Duration::from_secs(60)),
        ..ExecOptions::default()
    }
}

/// Everything a command reported.
#[derive(Debug)]
pub struct Ran {
    pub pid: Option<u32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit: ExitInfo,
}

impl Ran {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Reads a command's events to its `Exit`, checking their order.
pub async fn collect(mut handle: ExecHandle) -> Ran {
    let mut ran = Ran {
        pid: None,
        stdout: Vec::new(),
        stderr: Vec::new(),
        exit: ExitInfo {
            reason: corral_protocol::message::ExitReason::FailedToStart,
            code: 0,
            signal: 0,
            duration: Duration::ZERO,
            output_dropped: 0,
            detail: String::new(),
        },
    };
    let mut seen_output = false;
    while let Some(event) = handle.next(PATIENCE).await {
        match event.expect("the command's events arrive") {
            ExecEvent::Started(pid) => {
                assert!(
                    !seen_output && ran.pid.is_none(),
                    "Started comes first, once"
                );
                ran.pid = Some(pid);
            }
            ExecEvent::Stdout(d) => {
                seen_output = true;
                ran.stdout.extend(d);
            }
            ExecEvent::Stderr(d) => {
                seen_output = true;
                ran.stderr.extend(d);
            }
            ExecEvent::Exit(info) => {
                ran.exit = info;
                assert!(
                    handle.next(PATIENCE).await.is_none(),
                    "Exit is the last event"
                );
                return ran;
            }
        }
    }
    panic!("the command ended without an Exit");
}

/// Runs a command to its end.
pub async fn run(client: &DeviceClient, opts: &ExecOptions) -> Ran {
    let handle = client.exec(opts).await.expect("exec is sent");
    collect(handle).await
}

/// State letter of a process from `/proc/PID/stat`, `None` once it is gone.
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().next()?.chars().next()
}

/// True once `pid` no longer runs (a zombie waiting for its reaper counts
/// as gone), waiting up to [`PATIENCE`]: a killed process dies when it is
/// next scheduled.
pub async fn gone(pid: u32) -> bool {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match proc_state(pid) {
            None | Some('Z') | Some('X') => return true,
            Some(_) if tokio::time::Instant::now() > deadline => return false,
            Some(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// Random bytes and their SHA-256.
pub fn random_file(len: usize) -> (Vec<u8>, [u8; 32]) {
    use rand::RngCore;
    use sha2::{Digest, Sha256};
    let mut data = vec![0u8; len];
    rand::thread_rng().fill_bytes(&mut data);
    let hash = Sha256::digest(&data).into();
    (data, hash)
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(data).into()
}

/// A transport the test can cut at any moment, like a pulled cable: after
/// [`Cutter::cut`] the underlying stream is dropped (the agent sees the
/// connection close or its input end) and this side reads end-of-file.
pub struct Severable<T> {
    state: Arc<Mutex<SevState<T>>>,
}

struct SevState<T> {
    io: Option<T>,
    reader: Option<std::task::Waker>,
    writer: Option<std::task::Waker>,
}

/// Cuts a [`Severable`].
pub struct Cutter<T> {
    state: Arc<Mutex<SevState<T>>>,
}

/// Wraps `io`; the cutter cuts it.
pub fn severable<T>(io: T) -> (Severable<T>, Cutter<T>) {
    let state = Arc::new(Mutex::new(SevState {
        io: Some(io),
        reader: None,
        writer: None,
    }));
    (
        Severable {
            state: Arc::clone(&state),
        },
        Cutter { state },
    )
}

impl<T> Cutter<T> {
    /// Drops the stream and wakes whoever waits on it.
    pub fn cut(&self) {
        let mut state = self.state.lock().unwrap();
        drop(state.io.take());
        for waker in [state.reader.take(), state.writer.take()]
            .into_iter()
            .flatten()
        {
            waker.wake();
        }
    }
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Severable<T> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let mut state = self.state.lock().unwrap();
        let Some(io) = state.io.as_mut() else {
            return std::task::Poll::Ready(Ok(()));
        };
        let polled = std::pin::Pin::new(io).poll_read(cx, buf);
        if polled.is_pending() {
            state.reader = Some(cx.waker().clone());
        }
        polled
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Severable<T> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let mut state = self.state.lock().unwrap();
        let Some(io) = state.io.as_mut() else {
            return std::task::Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into()));
        };
        let polled = std::pin::Pin::new(io).poll_write(cx, buf);
        if polled.is_pending() {
            state.writer = Some(cx.waker().clone());
        }
        polled
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let mut state = self.state.lock().unwrap();
        match state.io.as_mut() {
            Some(io) => std::pin::Pin::new(io).poll_flush(cx),
            None => std::task::Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into())),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let mut state = self.state.lock().unwrap();
        match state.io.as_mut() {
            Some(io) => std::pin::Pin::new(io).poll_shutdown(cx),
            None => std::task::Poll::Ready(Ok(())),
        }
    }
}
