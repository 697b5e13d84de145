//! The `corral` command: device commands, jobs, leases and the gateway
//! daemon. One module per subcommand under [`cmd`]; each one's doc comment
//! is its `--help` text.
//!
//! A DEVICE is an inventory name served by a running gateway (found at
//! `--gateway`, `CORRAL_GATEWAY`, or <http://127.0.0.1:7700>), or a direct
//! address that needs no daemon: `tcp://HOST:PORT`,
//! `serial:///dev/ttyUSB0?baud=115200`, `unix:///path/to/uart.sock` — the way
//! `adb` works with or without its server.

pub mod cmd;
pub mod progress;
pub mod target;

pub use target::{Address, Context, Target};

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Exit status of `corral`. `corral exec` passes the remote command's own
/// status through instead of [`OK`](exit::OK) and [`FAILED`](exit::FAILED).
pub mod exit {
    /// Everything worked.
    pub const OK: i32 = 0;
    /// The request was refused (no such file on the device, the device is
    /// leased and `--no-wait` was given), or a test failed (`corral run`).
    pub const FAILED: i32 = 1;
    /// Wrong usage: bad arguments, a bad inventory or job file, an unknown
    /// or ambiguous device name.
    pub const USAGE: i32 = 2;
    /// The remote command could not be started (`corral exec`), as a shell
    /// reports a command it cannot run.
    pub const NOT_STARTED: i32 = 127;
    /// Interrupted (Ctrl-C); a remote command was cancelled first.
    pub const INTERRUPTED: i32 = 130;
    /// Infrastructure failure: no gateway, device offline, link lost,
    /// device rebooted. Never the software under test's doing.
    pub const INFRASTRUCTURE: i32 = 255;
}

/// The exit status table every `--help` shows (a macro, so `concat!` can
/// put it into help texts).
#[macro_export]
#[doc(hidden)]
macro_rules! exit_codes {
    () => {
        "Exit status:
  0    success
  1    refused (e.g. no such file on the device; device leased and --no-wait), or a test failed (`run`)
  2    usage error: bad arguments, a bad inventory or job file, an unknown or ambiguous device
  130  interrupted by Ctrl-C (a remote command is cancelled first)
  255  infrastructure failure: no gateway, device offline, link lost, device rebooted"
    };
}

/// What DEVICE may be, for every help text that takes one.
#[macro_export]
#[doc(hidden)]
macro_rules! device_help {
    () => {
        "DEVICE is an inventory name when a gateway runs (a unique prefix works), or a direct address
that needs no daemon: tcp://HOST:PORT (key: --key-file or CORRAL_KEY_FILE),
serial:///dev/ttyACM0?baud=115200, unix:///run/corral/qemu-1.sock."
    };
}

const AFTER_HELP: &str = concat!(
    device_help!(),
    "\n\n",
    exit_codes!(),
    "\n`exec` exits with the remote command's status instead (128+N if signal N killed it, 127 if it
could not start); its own failures still exit 2 or 255.

Environment: CORRAL_GATEWAY, CORRAL_TOKEN, CORRAL_KEY_FILE, CORRAL_LEASE, NO_COLOR, RUST_LOG."
);

/// Corral: run tests on real and emulated hardware.
///
/// `corral gateway` is the daemon that owns the devices attached to this
/// machine; the other commands talk to it, or straight to one device by its
/// address.
#[derive(Parser, Debug)]
#[command(name = "corral", version, after_help = AFTER_HELP, max_term_width = 100)]
pub struct Cli {
    /// The gateway's HTTP API.
    #[arg(
        long,
        global = true,
        env = "CORRAL_GATEWAY",
        default_value = "http://127.0.0.1:7700",
        value_name = "URL"
    )]
    pub gateway: String,
    /// File holding the gateway's API token, needed when it listens beyond
    /// loopback (or set CORRAL_TOKEN to the token itself).
    #[arg(long, global = true, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Key file for direct tcp:// devices (as written by `corral-agent
    /// keygen`).
    #[arg(long, global = true, env = "CORRAL_KEY_FILE", value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// Operate under this lease (from `corral lock`) instead of taking a
    /// short one for the command.
    #[arg(long, global = true, env = "CORRAL_LEASE", value_name = "ID")]
    pub lease: Option<u64>,
    /// Fail at once (exit 1) instead of waiting while someone else holds
    /// the device.
    #[arg(long, global = true)]
    pub no_wait: bool,
    /// More logging on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands. Each one's help text is the doc comment of its `Cmd`
/// in `cmd/<subcommand>.rs`, so the variants carry none (a doc comment here
/// would replace it).
#[derive(Subcommand, Debug)]
#[allow(missing_docs)]
pub enum Command {
    Gateway(cmd::gateway::Cmd),
    Devices(cmd::devices::Cmd),
    Info(cmd::info::Cmd),
    Exec(cmd::exec::Cmd),
    Push(cmd::push::Cmd),
    Pull(cmd::pull::Cmd),
    Ls(cmd::ls::Cmd),
    Stat(cmd::stat::Cmd),
    Hash(cmd::hash::Cmd),
    Rm(cmd::rm::Cmd),
    Reset(cmd::reset::Cmd),
    Console(cmd::console::Cmd),
    Scan(cmd::scan::Cmd),
    Run(cmd::run::Cmd),
    Lock(cmd::lock::Cmd),
    Unlock(cmd::unlock::Cmd),
    Demo(cmd::demo::Cmd),
}

/// A failure with the exit status it maps to and the message to print.
#[derive(Debug)]
pub struct Failure {
    /// Exit status.
    pub code: i32,
    /// What to print (after `corral: `).
    pub message: String,
}

impl Failure {
    /// A usage error (exit 2).
    pub fn usage(m: impl Into<String>) -> Self {
        Failure {
            code: exit::USAGE,
            message: m.into(),
        }
    }

    /// An infrastructure failure (exit 255).
    pub fn infra(m: impl Into<String>) -> Self {
        Failure {
            code: exit::INFRASTRUCTURE,
            message: m.into(),
        }
    }

    /// A refused request (exit 1).
    pub fn refused(m: impl Into<String>) -> Self {
        Failure {
            code: exit::FAILED,
            message: m.into(),
        }
    }
}

impl From<crate::api::client::ApiFailure> for Failure {
    fn from(e: crate::api::client::ApiFailure) -> Self {
        let code = match e.kind() {
            Some("unknown_device" | "ambiguous_device" | "bad_request" | "unauthorized") => {
                exit::USAGE
            }
            _ if e.is_infrastructure() => exit::INFRASTRUCTURE,
            _ => exit::FAILED,
        };
        Failure {
            code,
            message: e.to_string(),
        }
    }
}

impl From<corral_io::client::ClientError> for Failure {
    fn from(e: corral_io::client::ClientError) -> Self {
        if e.is_infrastructure() {
            Failure::infra(e.to_string())
        } else {
            Failure::refused(e.to_string())
        }
    }
}

impl From<crate::transfer::TransferError> for Failure {
    fn from(e: crate::transfer::TransferError) -> Self {
        match e {
            crate::transfer::TransferError::Device(c) => c.into(),
            crate::transfer::TransferError::Local(m) => Failure::refused(m),
            e @ crate::transfer::TransferError::HashMismatch { .. } => {
                Failure::infra(e.to_string())
            }
        }
    }
}

/// The result of a subcommand: its exit status, or a failure to print.
pub type CmdResult = Result<i32, Failure>;

/// Whether to colour what goes to stdout (`NO_COLOR` set and non-empty, or
/// not a terminal: no).
pub fn color_stdout() -> bool {
    no_color_unset() && rustix::termios::isatty(rustix::stdio::stdout())
}

/// Whether stderr is a terminal that progress bars may draw on.
pub fn stderr_is_terminal() -> bool {
    rustix::termios::isatty(rustix::stdio::stderr())
}

fn no_color_unset() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Runs the command line; returns the exit status.
pub async fn run(cli: Cli) -> i32 {
    let ctx = match Context::from_cli(&cli) {
        Ok(c) => c,
        Err(f) => {
            eprintln!("corral: {}", f.message);
            return f.code;
        }
    };
    let r = match cli.command {
        Command::Gateway(c) => cmd::gateway::run(c).await,
        Command::Devices(c) => cmd::devices::run(&ctx, c).await,
        Command::Info(c) => cmd::info::run(&ctx, c).await,
        Command::Exec(c) => cmd::exec::run(&ctx, c).await,
        Command::Push(c) => cmd::push::run(&ctx, c).await,
        Command::Pull(c) => cmd::pull::run(&ctx, c).await,
        Command::Ls(c) => cmd::ls::run(&ctx, c).await,
        Command::Stat(c) => cmd::stat::run(&ctx, c).await,
        Command::Hash(c) => cmd::hash::run(&ctx, c).await,
        Command::Rm(c) => cmd::rm::run(&ctx, c).await,
        Command::Reset(c) => cmd::reset::run(&ctx, c).await,
        Command::Console(c) => cmd::console::run(&ctx, c).await,
        Command::Scan(c) => cmd::scan::run(c),
        Command::Run(c) => cmd::run::run(&ctx, c).await,
        Command::Lock(c) => cmd::lock::run(&ctx, c).await,
        Command::Unlock(c) => cmd::unlock::run(&ctx, c).await,
        Command::Demo(c) => cmd::demo::run(c).await,
    };
    match r {
        Ok(code) => code,
        Err(f) => {
            eprintln!("corral: {}", f.message);
            f.code
        }
    }
}
