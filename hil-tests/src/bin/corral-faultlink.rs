//! `corral-faultlink`: forwards bytes between two endpoints while injecting faults,
//! so a gateway, a device or any serial protocol can be tested under noise.
//!
//! Everything here is argument handling and process plumbing; the link itself is
//! `corral_hil_tests::faultlink`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use corral_hil_tests::faultlink::{
    control, parse_baud, parse_delay, parse_probability, parse_reorder_chunk, Endpoint, FaultLink,
    FaultLinkHandle, FaultSetting, Faults, FaultsError, LinkFaults,
};
use tokio::io::AsyncWriteExt;
use tracing_subscriber::EnvFilter;

const EXAMPLES: &str = "\
Examples:
  # A noisy 115200-baud line between a gateway (connecting to port 7000) and a
  # Linux agent listening on TCP port 7878:
  corral-faultlink --a tcp-listen:127.0.0.1:7000 --b tcp:127.0.0.1:7878 \\
      --baud 115200 --corrupt 0.001 --seed 42

  # A virtual USB serial adapter in front of an emulated board. Start QEMU with
  # `-chardev socket,id=s0,path=/tmp/board.sock -serial chardev:s0`, and point
  # the gateway at /tmp/ttyBOARD0:
  corral-faultlink --a pty:/tmp/ttyBOARD0 --b unix-listen:/tmp/board.sock \\
      --baud 115200 --drop 0.1%

  # A real board, different noise each way, controlled from another terminal:
  corral-faultlink --a pty:/tmp/ttyPICO --b serial:/dev/ttyACM0,baud=115200 \\
      --a2b corrupt=0.01 --b2a drop=0.001,delay=5ms --control unix:/tmp/faultlink.ctl
  echo 'cut 2s' | socat - UNIX-CONNECT:/tmp/faultlink.ctl

On start, one line goes to stdout: `ready a=ENDPOINT b=ENDPOINT seed=N`, with the
bound port of a port-0 listener and the slave path of a pty. Logs go to stderr
(RUST_LOG=debug for more). Ctrl-C or SIGTERM stops the link cleanly.";

/// Forward bytes between two endpoints, injecting faults on the way.
///
/// corral-faultlink sits between a gateway and a device and passes bytes both ways
/// as a plain byte pipe, knowing nothing of the protocol on top. It can slow the
/// line to a baud rate with UART timing, drop, corrupt (one bit flipped), duplicate,
/// delay and reorder bytes, and cut the line, separately for each direction
/// ("a2b": from endpoint a to endpoint b; "b2a": back). All random decisions come
/// from --seed, so the same seed and the same input give the same faults.
///
/// Fault flags apply to both directions; --a2b and --b2a override them per
/// direction. Everything can be changed while it runs through the control
/// channel: type `help` on stdin.
#[derive(Debug, Parser)]
#[command(name = "corral-faultlink", version, after_long_help = long_help())]
struct Args {
    /// Endpoint a, usually where the gateway connects.
    ///
    /// One of: tcp-listen:HOST:PORT (port 0 picks a free port), tcp:HOST:PORT,
    /// unix-listen:PATH, unix:PATH, pty (creates a pseudo-terminal; the gateway
    /// opens its slave like a USB serial adapter), pty:LINKPATH (the same, with a
    /// stable symlink at LINKPATH), serial:PATH or serial:PATH,baud=N (an existing
    /// terminal, e.g. /dev/ttyUSB0). Listeners serve one connection at a time;
    /// tcp: and unix: connect once the other side has a peer, anew for every
    /// connection there.
    #[arg(long, value_name = "ENDPOINT")]
    a: Endpoint,

    /// Endpoint b, usually the device. Same forms as --a.
    #[arg(long, value_name = "ENDPOINT")]
    b: Endpoint,

    /// Seed for every random fault decision. Without it a random seed is chosen
    /// and printed, so a run can be replayed.
    #[arg(long, value_name = "N")]
    seed: Option<u64>,

    /// Limit the line to BAUD bits/s with 8N1 timing: bytes leave one by one at
    /// BAUD/10 per second, like a UART, and a faster sender is held back.
    /// Example: --baud 115200.
    #[arg(long, value_name = "BAUD", value_parser = baud)]
    baud: Option<u32>,

    /// Probability that a byte is lost, as a fraction or percentage.
    /// Example: --drop 0.001 or --drop 0.1%.
    #[arg(long, value_name = "P", value_parser = |s: &str| parse_probability("drop", s))]
    drop: Option<f64>,

    /// Probability that a byte gets exactly one random bit flipped.
    /// Example: --corrupt 0.01.
    #[arg(long, value_name = "P", value_parser = |s: &str| parse_probability("corrupt", s))]
    corrupt: Option<f64>,

    /// Probability that a byte is delivered twice. Example: --duplicate 0.001.
    #[arg(long, value_name = "P", value_parser = |s: &str| parse_probability("duplicate", s))]
    duplicate: Option<f64>,

    /// Fixed latency added to every byte. Example: --delay 20ms.
    #[arg(long, value_name = "DURATION", value_parser = |s: &str| parse_delay("delay", s))]
    delay: Option<Duration>,

    /// Extra random latency between 0 and DURATION on top of --delay; bytes keep
    /// their order. Example: --jitter 5ms.
    #[arg(long, value_name = "DURATION", value_parser = |s: &str| parse_delay("jitter", s))]
    jitter: Option<Duration>,

    /// Probability that a chunk of --reorder-chunk bytes is swapped with the next
    /// chunk. Example: --reorder 0.01.
    #[arg(long, value_name = "P", value_parser = |s: &str| parse_probability("reorder", s))]
    reorder: Option<f64>,

    /// Size in bytes of the chunks --reorder swaps. Default 16.
    #[arg(long, value_name = "BYTES", value_parser = parse_reorder_chunk)]
    reorder_chunk: Option<usize>,

    /// Faults for the a-to-b direction only, as FAULT=VALUE pairs separated by
    /// commas, overriding the flags above. Faults: baud, drop, corrupt,
    /// duplicate, delay, jitter, reorder, reorder-chunk.
    /// Example: --a2b corrupt=0.01,baud=9600.
    #[arg(long, value_name = "FAULTS")]
    a2b: Option<SettingList>,

    /// Faults for the b-to-a direction only; same form as --a2b.
    /// Example: --b2a drop=0.1%,delay=5ms.
    #[arg(long, value_name = "FAULTS")]
    b2a: Option<SettingList>,

    /// Also serve the control channel on a Unix socket, for any number of
    /// clients. Example: --control unix:/tmp/faultlink.ctl, then
    /// `echo stats | socat - UNIX-CONNECT:/tmp/faultlink.ctl`.
    #[arg(long, value_name = "unix:PATH")]
    control: Option<ControlSocket>,

    /// Do not read control commands from stdin (e.g. when stdin is not yours).
    #[arg(long)]
    no_stdin: bool,
}

fn long_help() -> String {
    format!(
        "{EXAMPLES}\n\nControl channel (type on stdin, or send to the --control socket); {}",
        control::help_text()
    )
}

fn baud(s: &str) -> Result<u32, FaultsError> {
    parse_baud(s)?.ok_or_else(|| FaultsError::BadValue {
        key: "baud",
        value: s.to_owned(),
        expected: "a line speed in bit/s such as 115200 (leave --baud out for no limit)",
    })
}

/// A `FAULT=VALUE,...` list given to --a2b or --b2a.
#[derive(Clone, Debug)]
struct SettingList(Vec<FaultSetting>);

impl FromStr for SettingList {
    type Err = FaultsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FaultSetting::parse_list(s).map(SettingList)
    }
}

/// The path given to --control.
#[derive(Clone, Debug)]
struct ControlSocket(PathBuf);

impl FromStr for ControlSocket {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.strip_prefix("unix:") {
            Some(path) if !path.is_empty() => Ok(ControlSocket(PathBuf::from(path))),
            _ => Err(format!(
                "`{s}` is not unix:PATH; write for example --control unix:/tmp/faultlink.ctl"
            )),
        }
    }
}

impl Args {
    /// The faults of each direction: the common flags, then the overrides.
    fn faults(&self) -> LinkFaults {
        let mut common = Faults::none();
        if let Some(baud) = self.baud {
            common.baud = Some(baud);
        }
        common.drop = self.drop.unwrap_or(common.drop);
        common.corrupt = self.corrupt.unwrap_or(common.corrupt);
        common.duplicate = self.duplicate.unwrap_or(common.duplicate);
        common.delay = self.delay.unwrap_or(common.delay);
        common.jitter = self.jitter.unwrap_or(common.jitter);
        common.reorder = self.reorder.unwrap_or(common.reorder);
        common.reorder_chunk = self.reorder_chunk.unwrap_or(common.reorder_chunk);
        let with = |overrides: &Option<SettingList>| {
            let mut faults = common.clone();
            for setting in overrides.iter().flat_map(|list| &list.0) {
                setting.apply(&mut faults);
            }
            faults
        };
        LinkFaults {
            a2b: with(&self.a2b),
            b2a: with(&self.b2a),
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(args));
    // A blocking read of stdin cannot be cancelled; do not wait for it.
    runtime.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    // A random seed stays below 2^53, so it survives JSON tools that read numbers
    // as doubles and can be pasted back into --seed from `stats`.
    let seed = args.seed.unwrap_or_else(|| rand::random::<u64>() >> 11);
    let faults = args.faults();
    let link = FaultLink::start_with(args.a.clone(), args.b.clone(), faults, seed)
        .await
        .context("starting the fault link")?;
    tracing::info!(seed, "replay these faults with --seed {seed}");
    let mut stdout = tokio::io::stdout();
    stdout
        .write_all(
            format!(
                "ready a={} b={} seed={seed}\n",
                link.a_addr(),
                link.b_addr()
            )
            .as_bytes(),
        )
        .await
        .context("writing to stdout")?;
    stdout.flush().await.context("writing to stdout")?;

    let _control_socket = match &args.control {
        Some(ControlSocket(path)) => Some(
            control::serve_unix(link.clone(), path)
                .with_context(|| format!("serving control socket {}", path.display()))?,
        ),
        None => None,
    };
    if !args.no_stdin && stdin_is_ours() {
        let link = link.clone();
        tokio::spawn(async move {
            match control::serve(&link, tokio::io::stdin(), tokio::io::stdout()).await {
                Ok(()) => tracing::debug!("stdin closed; the link keeps running"),
                Err(e) => tracing::warn!("control on stdin stopped: {e}"),
            }
        });
    }

    wait_for_stop(&link).await?;
    link.shutdown().await;
    tracing::info!(stats = %serde_json::to_string(&link.stats()).unwrap_or_default(), "stopped");
    Ok(())
}

/// Whether reading stdin is safe. Started with `&` from an interactive shell, the
/// process is in a background job, and reading the terminal would stop it (SIGTTIN)
/// with the link in it.
fn stdin_is_ours() -> bool {
    let stdin = std::io::stdin();
    if !rustix::termios::isatty(&stdin) {
        return true;
    }
    match rustix::termios::tcgetpgrp(&stdin) {
        Ok(foreground) if foreground != rustix::process::getpgrp() => {
            tracing::info!(
                "running in the background: not reading commands from the terminal (use --control)"
            );
            false
        }
        _ => true,
    }
}

/// Waits for Ctrl-C, SIGTERM, or a `shutdown` command.
async fn wait_for_stop(link: &FaultLinkHandle) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => {
            result.context("listening for Ctrl-C")?;
            tracing::info!("interrupted; shutting down");
        }
        _ = terminate.recv() => tracing::info!("terminated; shutting down"),
        () = link.stopped() => {}
    }
    Ok(())
}
