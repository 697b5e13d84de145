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
//!   and through the gateway, side by side with `scp`.
//!
//! Run with `cargo xtask bench` (which installs openssh-server as root) or
//! `cargo bench -p corral-gateway --bench scale`. Set `CORRAL_BENCH_ONLY`
//! to `scale`, `exec` or `push` to run one part.

use corral_agent::agent::{Agent, AgentOptions};
use corral_agent::exec::ExecConfig;
use corral_agent::files::FileStore;
use corral_agent::identity::Identity;
use corral_agent::serve::TcpServer;
use corral_agent::KeepPolicy;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::sync::watch;

const CORRAL: &str = env!("CARGO_BIN_EXE_corral");

fn main() {
    raise_fd_limit();
    let only = std::env::var("CORRAL_BENCH_ONLY").unwrap_or_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    if only.is_empty() || only == "scale" {
        rt.block_on(scale(dir.path()));
    }
    if only.is_empty() || only == "exec" {
        rt.block_on(exec_rtt(dir.path()));
    }
    if only.is_empty() || only == "push" {
        rt.block_on(push(dir.path()));
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

/// Starts `n` agents on loopback TCP (no key: loopback) and returns their
/// addresses.
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
    child: Child,
    api: u16,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_gateway(dir: &Path, name: &str, addrs: &[SocketAddr]) -> Gateway {
    let api = free_port();
    let inv = dir.join(format!("{name}.toml"));
    write_inventory(&inv, api, addrs);
    let child = Command::new(CORRAL)
        .args(["gateway", "--config"])
        .arg(&inv)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting corral gateway");
    Gateway { child, api }
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

fn wait_idle(gw: &Gateway, n: usize, limit: Duration) -> Duration {
    let t = Instant::now();
    loop {
        if devices_in_state(gw.api, "idle") == Some(n) {
            return t.elapsed();
        }
        assert!(
            t.elapsed() < limit,
            "only {:?} of {n} devices idle after {limit:?}",
            devices_in_state(gw.api, "idle")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
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
    let (_stop_tx, stop) = watch::channel(false);
    // Baseline: a gateway with no devices.
    let empty = start_gateway(dir, "empty", &[]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, rss0) = proc_usage(empty.child.id());
    drop(empty);

    let addrs = start_agents(dir, N, stop).await;
    let gw = start_gateway(dir, "scale", &addrs);
    let up = tokio::task::spawn_blocking({
        let api = gw.api;
        move || {
            let g = Gateway {
                child: Command::new("true").spawn().unwrap(),
                api,
            };
            let d = wait_idle(&g, N, Duration::from_secs(120));
            std::mem::forget(g);
            d
        }
    })
    .await
    .unwrap();
    eprintln!("  {N} devices idle after {up:.1?}");
    // Let start-up work settle, then measure a quiet period.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pid = gw.child.id();
    let (cpu0, _) = proc_usage(pid);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (cpu1, rss) = proc_usage(pid);
    let pct = (cpu1 - cpu0) / t0.elapsed().as_secs_f64() * 100.0;
    let per_device = rss.saturating_sub(rss0) / N as u64;
    println!("BENCH gateway_1000_devices_idle_cpu {pct:.2} percent_of_one_core");
    println!(
        "BENCH gateway_1000_devices_rss_per_device {:.1} KiB",
        per_device as f64 / 1024.0
    );
    eprintln!(
        "  gateway RSS {} MiB with {N} devices, {} MiB empty",
        rss >> 20,
        rss0 >> 20
    );
    assert_eq!(
        devices_in_state(gw.api, "idle"),
        Some(N),
        "devices dropped while idle"
    );
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn time_runs(n: usize, mut f: impl FnMut() -> bool) -> Vec<Duration> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        assert!(f(), "a run failed");
        v.push(t.elapsed());
    }
    v.sort();
    v
}

/// A throwaway sshd on a spare loopback port with a fresh key.
struct Sshd {
    child: Child,
    port: u16,
    key: PathBuf,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_sshd(dir: &Path) -> Option<Sshd> {
    let sshd = ["/usr/sbin/sshd", "/usr/bin/sshd"]
        .into_iter()
        .find(|p| Path::new(p).exists())?;
    let d = dir.join("ssh");
    std::fs::create_dir_all(&d).ok()?;
    let keygen = |path: &Path| {
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(path)
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    if !keygen(&d.join("host_key")) || !keygen(&d.join("user_key")) {
        return None;
    }
    std::fs::copy(d.join("user_key.pub"), d.join("authorized_keys")).ok()?;
    let _ = std::fs::create_dir_all("/run/sshd");
    let port = free_port();
    let cfg = d.join("sshd_config");
    std::fs::write(
        &cfg,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nAuthorizedKeysFile {ak}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nPermitRootLogin prohibit-password\nStrictModes no\nPidFile {pid}\nSubsystem sftp internal-sftp\n",
            hk = d.join("host_key").display(),
            ak = d.join("authorized_keys").display(),
            pid = d.join("sshd.pid").display()
        ),
    )
    .ok()?;
    let child = Command::new(sshd)
        .args(["-D", "-e", "-f"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    // Wait until it accepts connections.
    for _ in 0..50 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(Sshd {
                child,
                port,
                key: d.join("user_key"),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

fn ssh_args(s: &Sshd) -> Vec<String> {
    vec![
        "-q".into(),
        "-i".into(),
        s.key.display().to_string(),
        "-o".into(),
        "StrictHostKeyChecking=no".into(),
        "-o".into(),
        "UserKnownHostsFile=/dev/null".into(),
        "-o".into(),
        "BatchMode=yes".into(),
    ]
}

async fn exec_rtt(dir: &Path) {
    let (_stop_tx, stop) = watch::channel(false);
    let addrs = start_agents(dir, 1, stop).await;
    let gw = start_gateway(dir, "exec", &addrs);
    let api = gw.api;
    let url = format!("http://127.0.0.1:{api}");
    let corral = tokio::task::spawn_blocking(move || {
        let g = Gateway {
            child: Command::new("true").spawn().unwrap(),
            api,
        };
        wait_idle(&g, 1, Duration::from_secs(30));
        std::mem::forget(g);
        time_runs(200, || {
            Command::new(CORRAL)
                .args(["--gateway", &url, "exec", "dev-0", "--", "true"])
                .stdout(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        })
    })
    .await
    .unwrap();
    println!(
        "BENCH exec_rtt_corral_p50 {:.2} ms",
        percentile(&corral, 0.5).as_secs_f64() * 1e3
    );
    println!(
        "BENCH exec_rtt_corral_p99 {:.2} ms",
        percentile(&corral, 0.99).as_secs_f64() * 1e3
    );
    let Some(sshd) = start_sshd(dir) else {
        println!("BENCH exec_rtt_ssh_p50 unavailable (no sshd: apt-get install openssh-server)");
        return;
    };
    let mut args = ssh_args(&sshd);
    args.extend([
        "-p".into(),
        sshd.port.to_string(),
        "127.0.0.1".into(),
        "true".into(),
    ]);
    let ssh = time_runs(50, || {
        Command::new("ssh")
            .args(&args)
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    });
    println!(
        "BENCH exec_rtt_ssh_p50 {:.2} ms",
        percentile(&ssh, 0.5).as_secs_f64() * 1e3
    );
    println!(
        "BENCH exec_rtt_ssh_p99 {:.2} ms",
        percentile(&ssh, 0.99).as_secs_f64() * 1e3
    );
    println!(
        "BENCH exec_rtt_p50_ratio_corral_over_ssh {:.4} ratio",
        percentile(&corral, 0.5).as_secs_f64() / percentile(&ssh, 0.5).as_secs_f64()
    );
}

async fn push(dir: &Path) {
    const SIZE: usize = 256 << 20;
    let file = dir.join("big.bin");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        let mut x: u64 = 0x1234_5678_9abc_def1;
        let mut block = vec![0u8; 1 << 20];
        for _ in 0..SIZE >> 20 {
            for b in block.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            f.write_all(&block).unwrap();
        }
    }
    let (_stop_tx, stop) = watch::channel(false);
    // Two agents: one owned by the gateway, one the CLI reaches directly
    // (an agent serves one session at a time; a second would replace the
    // gateway's).
    let addrs = start_agents(dir, 2, stop).await;
    let gw = start_gateway(dir, "push", &addrs[..1]);
    let api = gw.api;
    let agent = addrs[1];
    let f = file.clone();
    let (direct, via_gateway) = tokio::task::spawn_blocking(move || {
        let g = Gateway {
            child: Command::new("true").spawn().unwrap(),
            api,
        };
        wait_idle(&g, 1, Duration::from_secs(30));
        std::mem::forget(g);
        let run = |args: &[&str]| {
            let t = Instant::now();
            let ok = Command::new(CORRAL)
                .args(args)
                .stdout(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            assert!(ok, "corral {args:?} failed");
            t.elapsed()
        };
        let target = format!("tcp://{agent}");
        let local = f.display().to_string();
        let best = |args: &[&str]| (0..3).map(|_| run(args)).min().unwrap();
        let direct = best(&["push", &target, &local, "big-direct.bin"]);
        let url = format!("http://127.0.0.1:{api}");
        let via = best(&["--gateway", &url, "push", "dev-0", &local, "big-gw.bin"]);
        (direct, via)
    })
    .await
    .unwrap();
    let mbps = |d: Duration| SIZE as f64 / d.as_secs_f64() / 1e6;
    println!(
        "BENCH push_256MiB_corral_direct {:.0} MB_per_s",
        mbps(direct)
    );
    println!(
        "BENCH push_256MiB_corral_via_gateway {:.0} MB_per_s",
        mbps(via_gateway)
    );
    let Some(sshd) = start_sshd(dir) else {
        println!("BENCH push_256MiB_scp unavailable (no sshd: apt-get install openssh-server)");
        return;
    };
    let mut args = ssh_args(&sshd);
    args.extend([
        "-P".into(),
        sshd.port.to_string(),
        file.display().to_string(),
        format!("127.0.0.1:{}", dir.join("scp-copy.bin").display()),
    ]);
    let scp = (0..3)
        .map(|_| {
            let t = Instant::now();
            assert!(
                Command::new("scp")
                    .args(&args)
                    .status()
                    .map(|s| s.success())
                    .unwrap_or(false),
                "scp failed"
            );
            t.elapsed()
        })
        .min()
        .unwrap();
    println!("BENCH push_256MiB_scp {:.0} MB_per_s", mbps(scp));
    println!(
        "BENCH push_256MiB_ratio_corral_direct_over_scp {:.2} ratio",
        mbps(direct) / mbps(scp)
    );
}
