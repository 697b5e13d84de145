//! The gateway's benchmark: scale, latency and throughput, each compared
//! with what people use today where a peer exists. Prints `BENCH` lines.
//!
//! - `gateway_1000_devices_*`: a real `corral gateway` process holding 1,000
//!   connected devices — real agent sessions (the `corral-agent` library)
//!   served from this process over loopback TCP, heartbeating — its CPU
//!   while idle and its resident memory per device.
//! - `exec_rtt_*`: `corral exec DEV -- true` through the running gateway,
//!   p50 and p99, side by side with `ssh` running `true` on the same
//!   machine over loopback (Debian's sshd on a spare port, key auth).
//! - `push_256MiB_*`: a 256 MiB push over loopback TCP to an agent, direct
//!   and through the gateway, side by side with `scp` of the same file to
//!   the same file system in the same run (rounds interleaved, best of
//!   three each, every copy deleted before the next run). Wall time of the
//!   whole command for all three, connection set-up included; the
//!   `phase_*` lines split a direct push into hashing the local file,
//!   sending, and the commit (the agent's hash check and fsync), and
//!   `local_copy` is what writing the file here costs any tool.
//!
//! Run with `cargo xtask bench` (which installs openssh-server as root) or
//! `cargo bench -p corral-gateway --bench scale`. Set `CORRAL_BENCH_ONLY`
//! to `scale`, `exec` or `push` to run one part. Without sshd, ssh or scp
//! the comparison lines are replaced by a `note:` saying what is missing.
//!
//! Every process the bench starts (gateways, sshd) is killed when its part
//! ends, when the bench panics, and — through `PR_SET_PDEATHSIG` — when the
//! bench itself is killed. Agents are tasks in this process.

use corral_agent::agent::{Agent, AgentOptions};
use corral_agent::exec::ExecConfig;
use corral_agent::files::FileStore;
use corral_agent::identity::Identity;
use corral_agent::serve::TcpServer;
use corral_agent::KeepPolicy;
use corral_io::client::{DeviceClient, TransferOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::sync::watch;

const CORRAL: &str = env!("CARGO_BIN_EXE_corral");
const PARTS: [&str; 3] = ["scale", "exec", "push"];

fn main() {
    raise_fd_limit();
    let only = std::env::var("CORRAL_BENCH_ONLY").unwrap_or_default();
    if !only.is_empty() && !PARTS.contains(&only.as_str()) {
        eprintln!(
            "CORRAL_BENCH_ONLY={only}: expected one of {}",
            PARTS.join(", ")
        );
        std::process::exit(2);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let dir = tempfile::Builder::new()
        .prefix("corral-bench-")
        .tempdir()
        .expect("temp dir");
    // `block_on` runs each part on this (the main) thread, so the processes
    // a part starts outlive no thread of ours but the whole bench (see
    // `Proc`).
    let part_dir = |name: &str| {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).expect("part dir");
        d
    };
    if only.is_empty() || only == "scale" {
        rt.block_on(scale(&part_dir("scale")));
    }
    if only.is_empty() || only == "exec" {
        rt.block_on(exec_rtt(&part_dir("exec")));
    }
    if only.is_empty() || only == "push" {
        rt.block_on(push(&part_dir("push")));
    }
}

/// Devices need file descriptors: two per device in this process (listener
/// and connection), one in the gateway (which inherits the limit).
fn raise_fd_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut l = getrlimit(Resource::Nofile);
    if let Some(max) = l.maximum {
        l.current = Some(max.min(1 << 16));
        let _ = setrlimit(Resource::Nofile, l);
    }
}

/// A process the bench started. Killed and reaped when dropped (also while
/// unwinding from a failed assertion), and killed by the kernel when the
/// bench dies without unwinding: `PR_SET_PDEATHSIG` fires when the thread
/// that spawned it exits, and every `Proc` is spawned from the main thread.
struct Proc {
    child: Child,
}

impl Proc {
    fn spawn(cmd: &mut Command) -> std::io::Result<Proc> {
        use std::os::unix::process::CommandExt;
        let parent = rustix::process::getpid();
        // SAFETY: the closure runs between fork and exec and only makes
        // async-signal-safe system calls; it allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                rustix::process::set_parent_process_death_signal(Some(
                    rustix::process::Signal::KILL,
                ))?;
                // The bench died before the line above took effect.
                if rustix::process::getppid() != Some(parent) {
                    return Err(rustix::io::Errno::SRCH.into());
                }
                Ok(())
            });
        }
        Ok(Proc {
            child: cmd.spawn()?,
        })
    }

    fn id(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `n` agents on loopback TCP (no key: loopback), each with its file
/// root `dir/agent-<i>`, and returns their addresses.
async fn start_agents(dir: &Path, n: usize, stop: watch::Receiver<bool>) -> Vec<SocketAddr> {
    let mut addrs = Vec::with_capacity(n);
    for i in 0..n {
        let root = dir.join(format!("agent-{i}"));
        std::fs::create_dir_all(&root).unwrap();
        let store = FileStore::open(&root).unwrap();
        let options = AgentOptions {
            identity: Identity::discover(Some(format!("sim-{i}")), Some(format!("SIM{i:04}"))),
            exec: ExecConfig::default(),
            keep: KeepPolicy::default(),
            reset_command: None,
        };
        let agent = Agent::new(store, options, None).unwrap();
        let server = TcpServer::bind("127.0.0.1:0".parse().unwrap(), None)
            .await
            .unwrap();
        addrs.push(server.local_addr().unwrap());
        tokio::spawn(server.run(agent, stop.clone()));
    }
    addrs
}

fn write_inventory(path: &Path, api: u16, addrs: &[SocketAddr]) {
    let mut f = std::fs::File::create(path).unwrap();
    writeln!(f, "[gateway]\nlisten = \"127.0.0.1:{api}\"\n").unwrap();
    for (i, a) in addrs.iter().enumerate() {
        writeln!(
            f,
            "[[device]]\nname = \"dev-{i}\"\ntcp = {{ address = \"{a}\" }}\n"
        )
        .unwrap();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Gateway {
    proc: Proc,
    api: u16,
}

fn start_gateway(dir: &Path, name: &str, addrs: &[SocketAddr]) -> Gateway {
    let api = free_port();
    let inv = dir.join(format!("{name}.toml"));
    write_inventory(&inv, api, addrs);
    let proc = Proc::spawn(
        Command::new(CORRAL)
            .args(["gateway", "--config"])
            .arg(&inv)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .expect("starting corral gateway");
    Gateway { proc, api }
}

/// Fetches `/metrics` (plain HTTP/1.0 over a socket: nothing to install)
/// and counts devices in `state`.
fn devices_in_state(api: u16, state: &str) -> Option<usize> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", api)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    if !body.starts_with("HTTP/1.") || body.split(' ').nth(1).is_none_or(|c| c != "200") {
        return None;
    }
    Some(
        body.lines()
            .filter(|l| {
                l.starts_with("corral_device_state{")
                    && l.contains(&format!("state=\"{state}\""))
                    && l.ends_with(" 1")
            })
            .count(),
    )
}

/// Waits (on a blocking thread) until the gateway on `api` reports `n`
/// idle devices; returns how long that took.
async fn wait_idle(api: u16, n: usize, limit: Duration) -> Duration {
    tokio::task::spawn_blocking(move || {
        let t = Instant::now();
        loop {
            if devices_in_state(api, "idle") == Some(n) {
                return t.elapsed();
            }
            assert!(
                t.elapsed() < limit,
                "only {:?} of {n} devices idle after {limit:?}",
                devices_in_state(api, "idle")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await
    .expect("waiting for idle devices")
}

/// CPU seconds used so far and resident memory of a process.
fn proc_usage(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15 (1-based), 12 and 13 after ')'.
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    let hz = 100.0; // USER_HZ on Linux.
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss_kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (ticks / hz, rss_kib * 1024)
}

async fn scale(dir: &Path) {
    const N: usize = 1000;
    const QUIET: Duration = Duration::from_secs(10);
    let (_stop_tx, stop) = watch::channel(false);
    // Baseline: a gateway with no devices, once its API answers.
    let empty = start_gateway(dir, "empty", &[]);
    wait_idle(empty.api, 0, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, rss0) = proc_usage(empty.proc.id());
    drop(empty);

    let addrs = start_agents(dir, N, stop).await;
    let gw = start_gateway(dir, "scale", &addrs);
    let up = wait_idle(gw.api, N, Duration::from_secs(120)).await;
    println!(
        "BENCH gateway_1000_devices_all_idle_after {:.2} s",
        up.as_secs_f64()
    );
    // Let start-up work settle, then measure a quiet period.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pid = gw.proc.id();
    let me = std::process::id();
    let (cpu0, rss_start) = proc_usage(pid);
    let (helper0, _) = proc_usage(me);
    let t0 = Instant::now();
    tokio::time::sleep(QUIET).await;
    let (cpu1, rss) = proc_usage(pid);
    let (helper1, _) = proc_usage(me);
    let secs = t0.elapsed().as_secs_f64();
    let pct = (cpu1 - cpu0) / secs * 100.0;
    let per_device = rss.saturating_sub(rss0) / N as u64;
    println!("BENCH gateway_1000_devices_idle_cpu {pct:.2} percent_of_one_core");
    println!(
        "BENCH gateway_1000_devices_rss_per_device {:.1} KiB",
        per_device as f64 / 1024.0
    );
    println!(
        "BENCH gateway_1000_devices_rss {:.1} MiB",
        rss as f64 / f64::from(1 << 20)
    );
    eprintln!(
        "  gateway RSS {:.1} MiB empty, {:.1} -> {:.1} MiB with {N} idle devices over {QUIET:?}; \
         the agents (this process) used {:.1} % of a core",
        rss0 as f64 / f64::from(1 << 20),
        rss_start as f64 / f64::from(1 << 20),
        rss as f64 / f64::from(1 << 20),
        (helper1 - helper0) / secs * 100.0
    );
    let api = gw.api;
    let still = tokio::task::spawn_blocking(move || devices_in_state(api, "idle"))
        .await
        .unwrap();
    assert_eq!(still, Some(N), "devices dropped while idle");
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Runs `f` `warm` times untimed, then `n` times timed; sorted durations.
fn time_runs(warm: usize, n: usize, mut f: impl FnMut() -> bool) -> Vec<Duration> {
    for _ in 0..warm {
        assert!(f(), "a warm-up run failed");
    }
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        assert!(f(), "a run failed");
        v.push(t.elapsed());
    }
    v.sort();
    v
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A throwaway sshd on a spare loopback port with a fresh host key and a
/// fresh user key.
struct Sshd {
    _proc: Proc,
    port: u16,
    key: PathBuf,
}

impl Sshd {
    /// Options that make `ssh`/`scp` use this server's key and nothing of
    /// the user's configuration that could prompt.
    fn client_args(&self) -> Vec<String> {
        [
            "-q",
            "-F",
            "/dev/null",
            "-i",
            &self.key.display().to_string(),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
        ]
        .map(String::from)
        .to_vec()
    }

    /// `ssh ... 127.0.0.1 true`, once; true if it succeeded.
    fn ssh_true(&self) -> bool {
        Command::new("ssh")
            .args(self.client_args())
            .args(["-p", &self.port.to_string(), "127.0.0.1", "true"])
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

/// Starts sshd, or says what is missing or went wrong.
fn start_sshd(dir: &Path) -> Result<Sshd, String> {
    let sshd = ["/usr/sbin/sshd", "/usr/bin/sshd"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .ok_or("/usr/sbin/sshd is missing (Debian package openssh-server)")?;
    let missing: Vec<&str> = ["ssh", "scp", "ssh-keygen"]
        .into_iter()
        .filter(|p| !on_path(p))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "{} missing (Debian package openssh-client)",
            missing.join(", ")
        ));
    }
    let d = dir.join("ssh");
    std::fs::create_dir_all(&d).map_err(|e| format!("creating {}: {e}", d.display()))?;
    let keygen = |name: &str| -> Result<(), String> {
        let ok = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(d.join(name))
            .stdin(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(()).ok_or(format!("ssh-keygen {name} failed"))
    };
    keygen("host_key")?;
    keygen("user_key")?;
    std::fs::copy(d.join("user_key.pub"), d.join("authorized_keys"))
        .map_err(|e| format!("writing authorized_keys: {e}"))?;
    // sshd refuses to start without its privilege separation directory.
    let _ = std::fs::create_dir_all("/run/sshd");
    let port = free_port();
    let cfg = d.join("sshd_config");
    // `Subsystem sftp`: scp speaks SFTP since OpenSSH 9.0.
    std::fs::write(
        &cfg,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nAuthorizedKeysFile {ak}\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
             PermitRootLogin prohibit-password\nStrictModes no\nPidFile {pid}\n\
             Subsystem sftp internal-sftp\n",
            hk = d.join("host_key").display(),
            ak = d.join("authorized_keys").display(),
            pid = d.join("sshd.pid").display()
        ),
    )
    .map_err(|e| format!("writing {}: {e}", cfg.display()))?;
    let log = d.join("sshd.log");
    let proc = Proc::spawn(
        Command::new(sshd)
            .args(["-D", "-e", "-f"])
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?),
    )
    .map_err(|e| format!("starting {sshd}: {e}"))?;
    let s = Sshd {
        _proc: proc,
        port,
        key: d.join("user_key"),
    };
    // Wait until it accepts connections and logs us in.
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if t.elapsed() > Duration::from_secs(10) {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!(
                "sshd did not listen on port {port}: {}",
                log.trim()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if !s.ssh_true() {
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        return Err(format!("ssh to the bench's sshd failed: {}", log.trim()));
    }
    Ok(s)
}

async fn exec_rtt(dir: &Path) {
    let (_stop_tx, stop) = watch::channel(false);
    let addrs = start_agents(dir, 1, stop).await;
    let gw = start_gateway(dir, "exec", &addrs);
    let api = gw.api;
    wait_idle(api, 1, Duration::from_secs(30)).await;
    let url = format!("http://127.0.0.1:{api}");
    let corral = tokio::task::spawn_blocking(move || {
        time_runs(5, 200, || {
            Command::new(CORRAL)
                .args(["--gateway", &url, "exec", "dev-0", "--", "true"])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
    })
    .await
    .unwrap();
    println!(
        "BENCH exec_rtt_corral_p50 {:.2} ms",
        ms(percentile(&corral, 0.5))
    );
    println!(
        "BENCH exec_rtt_corral_p99 {:.2} ms",
        ms(percentile(&corral, 0.99))
    );
    drop(gw);
    let sshd = match start_sshd(dir) {
        Ok(s) => s,
        Err(why) => {
            println!("note: exec_rtt_ssh_* skipped: {why}");
            return;
        }
    };
    let ssh = time_runs(3, 50, || sshd.ssh_true());
    println!("BENCH exec_rtt_ssh_p50 {:.2} ms", ms(percentile(&ssh, 0.5)));
    println!(
        "BENCH exec_rtt_ssh_p99 {:.2} ms",
        ms(percentile(&ssh, 0.99))
    );
    println!(
        "BENCH exec_rtt_p50_ratio_corral_over_ssh {:.4} ratio",
        percentile(&corral, 0.5).as_secs_f64() / percentile(&ssh, 0.5).as_secs_f64()
    );
}

const PUSH_SIZE: usize = 256 << 20;

/// Writes `PUSH_SIZE` pseudo-random (incompressible) bytes to `path`.
fn write_test_file(path: &Path) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut x: u64 = 0x1234_5678_9abc_def1;
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..PUSH_SIZE >> 20 {
        for w in block.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.copy_from_slice(&x.to_le_bytes());
        }
        f.write_all(&block).unwrap();
    }
    f.flush().unwrap();
}

/// Copies `from` to a new file `to` through a 1 MiB buffer: the cost of
/// landing the file in this file system's page cache, which every tool
/// pays. The copy is deleted.
fn local_copy(from: &Path, to: &Path) -> Duration {
    use std::io::Read;
    let t = Instant::now();
    let mut src = std::fs::File::open(from).unwrap();
    let mut dst = std::fs::File::create(to).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = src.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        dst.write_all(&buf[..n]).unwrap();
    }
    drop(dst);
    let d = t.elapsed();
    std::fs::remove_file(to).unwrap();
    d
}

/// One direct push from this process, split into its phases: hashing the
/// local file, sending it, and the commit (from the last byte handed to
/// the link to the agent's answer: its last writes, its hash check of the
/// whole file and its fsync).
async fn push_phases(agent: SocketAddr, file: &Path) -> (Duration, Duration, Duration) {
    let stream = corral_io::transport::connect_tcp(&agent.to_string(), None)
        .await
        .expect("connecting to the agent");
    let (tx, rx) = corral_io::driver::spawn_link(
        stream,
        corral_protocol::Config::stream(),
        corral_io::new_session_id(),
    );
    let client = DeviceClient::new(tx, rx, "bench");
    client
        .ready(Duration::from_secs(15))
        .await
        .expect("agent handshake");
    let t0 = Instant::now();
    let (size, sha) = corral_gateway::transfer::hash_file(file)
        .await
        .expect("hashing");
    let hashed = t0.elapsed();
    let mut f = tokio::fs::File::open(file).await.unwrap();
    let t1 = Instant::now();
    let mut sent = None;
    client
        .push(
            &mut f,
            size,
            sha,
            "big-phases.bin",
            0o644,
            &TransferOptions::default(),
            &mut |done| {
                if done == size && sent.is_none() {
                    sent = Some(Instant::now());
                }
            },
        )
        .await
        .expect("push");
    let end = Instant::now();
    let sent = sent.unwrap_or(end);
    (hashed, sent - t1, end - sent)
}

async fn push(dir: &Path) {
    const ROUNDS: usize = 3;
    let file = dir.join("big.bin");
    write_test_file(&file);
    let mbps = |d: Duration| PUSH_SIZE as f64 / d.as_secs_f64() / 1e6;
    let (_stop_tx, stop) = watch::channel(false);
    // Two agents: one owned by the gateway, one the CLI reaches directly
    // (an agent serves one session at a time; a second would replace the
    // gateway's).
    let addrs = start_agents(dir, 2, stop).await;
    let gw = start_gateway(dir, "push", &addrs[..1]);
    let api = gw.api;
    wait_idle(api, 1, Duration::from_secs(30)).await;
    let sshd = start_sshd(dir);
    if let Err(why) = &sshd {
        println!("note: push_256MiB_scp* skipped: {why}");
    }

    let copy = local_copy(&file, &dir.join("local-copy.bin"));
    println!("BENCH push_256MiB_local_copy {:.0} MB_per_s", mbps(copy));

    let agent = addrs[1];
    let target = format!("tcp://{agent}");
    let url = format!("http://127.0.0.1:{api}");
    let local = file.display().to_string();
    let direct_copy = dir.join("agent-1/big-direct.bin");
    let gw_copy = dir.join("agent-0/big-gw.bin");
    let scp_dir = dir.join("scp");
    std::fs::create_dir_all(&scp_dir).unwrap();
    let scp_copy = scp_dir.join("big-scp.bin");
    let scp_args: Option<Vec<String>> = sshd.as_ref().ok().map(|s| {
        let mut a = s.client_args();
        a.extend([
            "-P".into(),
            s.port.to_string(),
            local.clone(),
            format!("127.0.0.1:{}", scp_copy.display()),
        ]);
        a
    });
    // The rounds interleave the tools so that whatever else the machine is
    // doing meanwhile weighs on all of them alike.
    let (direct, via_gateway, scp) = tokio::task::spawn_blocking(move || {
        let timed = |program: &str, args: &[String], copy: &Path| {
            let t = Instant::now();
            let ok = Command::new(program)
                .args(args)
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            let d = t.elapsed();
            assert!(ok, "{program} {args:?} failed");
            assert_eq!(
                std::fs::metadata(copy).map(|m| m.len()).ok(),
                Some(PUSH_SIZE as u64),
                "{program} left no copy of the right size at {}",
                copy.display()
            );
            // Deleting the copy also drops whatever of it is still waiting
            // to be written back, so the next run starts from the same state.
            std::fs::remove_file(copy).unwrap();
            std::thread::sleep(Duration::from_millis(300));
            d
        };
        let direct_args = ["push", &target, &local, "big-direct.bin"].map(String::from);
        let gw_args = ["--gateway", &url, "push", "dev-0", &local, "big-gw.bin"].map(String::from);
        let mut direct = Vec::new();
        let mut via = Vec::new();
        let mut scp = Vec::new();
        for _ in 0..ROUNDS {
            direct.push(timed(CORRAL, &direct_args, &direct_copy));
            via.push(timed(CORRAL, &gw_args, &gw_copy));
            if let Some(a) = &scp_args {
                scp.push(timed("scp", a, &scp_copy));
            }
        }
        let min = |v: Vec<Duration>| v.into_iter().min();
        (min(direct).unwrap(), min(via).unwrap(), min(scp))
    })
    .await
    .unwrap();
    println!(
        "BENCH push_256MiB_corral_direct {:.0} MB_per_s",
        mbps(direct)
    );
    println!(
        "BENCH push_256MiB_corral_via_gateway {:.0} MB_per_s",
        mbps(via_gateway)
    );
    drop(gw);

    let (hash, send, commit) = push_phases(agent, &file).await;
    let _ = std::fs::remove_file(dir.join("agent-1/big-phases.bin"));
    println!(
        "BENCH push_256MiB_corral_phase_hash_local {:.3} s",
        hash.as_secs_f64()
    );
    println!(
        "BENCH push_256MiB_corral_phase_send {:.3} s",
        send.as_secs_f64()
    );
    println!(
        "BENCH push_256MiB_corral_phase_commit {:.3} s",
        commit.as_secs_f64()
    );

    let (Ok(sshd), Some(scp)) = (sshd, scp) else {
        return;
    };
    // What of scp's time is the ssh connection itself (key exchange, login,
    // session): the same `ssh true` the exec part times.
    let connect = tokio::task::spawn_blocking(move || {
        let v = time_runs(1, 5, || sshd.ssh_true());
        percentile(&v, 0.5)
    })
    .await
    .unwrap();
    println!("BENCH push_256MiB_scp {:.0} MB_per_s", mbps(scp));
    println!(
        "BENCH push_256MiB_scp_excluding_ssh_connect {:.0} MB_per_s",
        mbps(scp.saturating_sub(connect))
    );
    println!(
        "BENCH push_256MiB_ratio_corral_direct_over_scp {:.2} ratio",
        mbps(direct) / mbps(scp)
    );
    println!(
        "BENCH push_256MiB_ratio_corral_via_gateway_over_scp {:.2} ratio",
        mbps(via_gateway) / mbps(scp)
    );
}
