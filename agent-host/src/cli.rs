//! The command line of `corral-agent`. The doc comments here are the
//! `--help` text.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Args, Parser, Subcommand};
use corral_agent::agent::AgentOptions;
use corral_agent::exec::ExecConfig;
use corral_agent::files::FileStore;
use corral_agent::identity::Identity;
use corral_agent::KeepPolicy;
use corral_protocol::auth::Key;

/// corral-agent: the Corral agent for Linux boards and PCs.
///
/// Serves the Corral protocol to a gateway over TCP, a serial port or
/// standard input/output. It runs programs for the gateway (argv, never a
/// shell string; env; working directory; stdin; a timeout that kills the
/// whole process group), streams their stdout and stderr, and keeps files
/// under one root directory that nothing can escape.
///
/// Examples:
///
///   corral-agent keygen /etc/corral/agent.key
///
///   corral-agent --root /var/lib/corral --listen tcp://0.0.0.0:7878 --key-file /etc/corral/agent.key
///
///   corral-agent --root /var/lib/corral --serial /dev/ttyGS0 --baud 115200
///
///   ssh pi@board corral-agent --root /home/pi/corral --stdio
///
/// Logs go to standard error; set RUST_LOG (e.g. RUST_LOG=corral_agent=debug)
/// or use -v for more detail. SIGTERM or SIGINT stops every running command
/// and exits with status 0. Bad arguments exit with status 2.
#[derive(Debug, Parser)]
#[command(
    name = "corral-agent",
    version,
    subcommand_negates_reqs = true,
    args_conflicts_with_subcommands = true,
    max_term_width = 100
)]
pub struct Cli {
    /// A tool instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// How to serve.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Tools.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a new random pre-shared key to FILE (readable only by you).
    ///
    /// Give the same file to the agent (--key-file) and to the gateway. The
    /// file must not exist yet. Example:
    ///
    ///   corral-agent keygen /etc/corral/agent.key
    Keygen {
        /// Where to write the key: 64 hexadecimal characters and a newline.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

/// The options of the agent when it serves.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Directory that holds every file the gateway pushes, pulls, lists or
    /// removes, and the default working directory of commands. Paths from the
    /// gateway are relative to it (or absolute inside it); anything leading
    /// outside, such as `../x` or `/etc/passwd`, is refused. It must exist.
    ///
    /// Example: --root /var/lib/corral
    #[arg(long, value_name = "DIR", required = true)]
    pub root: Option<PathBuf>,

    /// Where the gateway reaches the agent.
    #[command(flatten)]
    pub transport: TransportArgs,

    /// The pre-shared key every TCP connection must prove it knows before it
    /// may talk to the agent (see `corral-agent keygen`). Required unless
    /// --listen is a loopback address; when given, it is required on
    /// loopback too.
    ///
    /// Example: --key-file /etc/corral/agent.key
    #[arg(long, value_name = "FILE", requires = "listen")]
    pub key_file: Option<PathBuf>,

    /// Line rate of the serial port.
    #[arg(
        long,
        value_name = "BAUD",
        default_value_t = 115_200,
        requires = "serial"
    )]
    pub baud: u32,

    /// Name the agent reports to the gateway. Default: the host name.
    ///
    /// Example: --name pi-bench-3
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Serial number the agent reports to the gateway. Default: the content
    /// of /etc/machine-id.
    #[arg(long, value_name = "SERIAL")]
    pub serial_number: Option<String>,

    /// Commands that may run at once; more are refused as busy.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_commands: u16,

    /// On a timeout, a cancel or shutdown a command's process group gets
    /// SIGTERM, then SIGKILL after this grace.
    ///
    /// Example: --kill-grace 500ms
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = humantime::parse_duration)]
    pub kill_grace: Duration,

    /// Bytes of each output stream a command keeps while no gateway is
    /// attached (the rest is counted as dropped in its exit report).
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024)]
    pub tail_bytes: usize,

    /// Results of re-attachable commands (started with a token) kept for a
    /// gateway that lost its link; beyond this the oldest is forgotten.
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub keep_results: usize,

    /// How long a result of a re-attachable command is kept after it ended.
    ///
    /// Example: --keep-results-for 30m
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = humantime::parse_duration)]
    pub keep_results_for: Duration,

    /// Run this shell command (with `sh -c`) when the gateway asks for a
    /// reset, instead of the built-in reset. The built-in reset stops every
    /// running command, forgets kept results, takes a new boot id and
    /// restarts the link; files are kept.
    ///
    /// Example: --reset-command 'systemctl reboot'
    #[arg(long, value_name = "COMMAND")]
    pub reset_command: Option<String>,

    /// More log detail: -v for debug, -vv for trace. RUST_LOG, when set,
    /// takes precedence.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// Exactly one way to reach the agent.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct TransportArgs {
    /// Listen for the gateway on this TCP address, `tcp://HOST:PORT` or
    /// `HOST:PORT`. One gateway at a time: a new connection replaces the
    /// current one (its commands go on and can be re-attached). A non-loopback
    /// address needs --key-file.
    ///
    /// Examples: --listen tcp://0.0.0.0:7878, --listen 127.0.0.1:7878
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,

    /// Serve on this serial port (a USB gadget port, a UART, a pty). It is
    /// opened exclusively and reopened with a backoff whenever it fails or
    /// disappears.
    ///
    /// Example: --serial /dev/ttyGS0
    #[arg(long, value_name = "PATH")]
    pub serial: Option<PathBuf>,

    /// Serve on standard input and output (for example over ssh). Standard
    /// output is then the protocol, so logs go to standard error only. When
    /// standard input ends the gateway is gone for good: the agent stops its
    /// commands and exits.
    #[arg(long)]
    pub stdio: bool,
}

/// A transport, checked.
#[derive(Debug)]
pub enum Transport {
    /// Listen on TCP.
    Tcp {
        /// The address to bind.
        addr: SocketAddr,
        /// The pre-shared key, if any.
        key: Option<Key>,
    },
    /// Serve a serial port.
    Serial {
        /// The port.
        path: String,
        /// Its line rate.
        baud: u32,
    },
    /// Serve stdin/stdout.
    Stdio,
}

/// Everything the agent needs to start, checked.
#[derive(Debug)]
pub struct Plan {
    /// The file store on `--root`.
    pub store: FileStore,
    /// The agent's options.
    pub options: AgentOptions,
    /// Where to serve.
    pub transport: Transport,
}

impl ServeArgs {
    /// Checks the arguments and opens what they name. Every error says
    /// which argument is wrong and how to fix it.
    pub fn into_plan(self) -> anyhow::Result<Plan> {
        let Some(root) = self.root else {
            bail!("--root DIR is required: the directory that holds the agent's files");
        };
        let store = open_root(&root)?;
        let transport = if let Some(listen) = &self.transport.listen {
            let addr = parse_listen(listen)?;
            let key = match &self.key_file {
                Some(path) => Some(
                    corral_io::transport::load_key_file(path)
                        .with_context(|| "--key-file: cannot use this key".to_string())?,
                ),
                None => None,
            };
            if key.is_none() && !addr.ip().is_loopback() {
                bail!(
                    "--listen {listen}: refusing to listen on a non-loopback address without \
                     --key-file, because anyone who can reach {addr} could run commands on this \
                     machine. Create a key with `corral-agent keygen /etc/corral/agent.key`, give \
                     the same file to the gateway and pass --key-file /etc/corral/agent.key \
                     (or listen on 127.0.0.1 only)"
                );
            }
            Transport::Tcp { addr, key }
        } else if let Some(path) = &self.transport.serial {
            let Some(path) = path.to_str() else {
                bail!("--serial {}: the path is not valid UTF-8", path.display());
            };
            Transport::Serial {
                path: path.to_string(),
                baud: self.baud,
            }
        } else {
            Transport::Stdio
        };
        let options = AgentOptions {
            identity: Identity::discover(self.name, self.serial_number),
            exec: ExecConfig {
                max_concurrent: usize::from(self.max_commands),
                tail_bytes: self.tail_bytes,
                kill_grace: self.kill_grace,
                ..ExecConfig::default()
            },
            keep: KeepPolicy {
                max_results: self.keep_results,
                max_age: self.keep_results_for,
            },
            reset_command: self.reset_command,
        };
        Ok(Plan {
            store,
            options,
            transport,
        })
    }
}

fn open_root(root: &Path) -> anyhow::Result<FileStore> {
    match std::fs::metadata(root) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => bail!(
            "--root {}: not a directory; give the directory that should hold the agent's files",
            root.display()
        ),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => bail!(
            "--root {}: no such directory; create it first (mkdir -p {})",
            root.display(),
            root.display()
        ),
        Err(err) => bail!("--root {}: {err}", root.display()),
    }
    FileStore::open(root).with_context(|| format!("--root {}", root.display()))
}

/// `tcp://HOST:PORT` or `HOST:PORT`; a host name is resolved once, here.
fn parse_listen(text: &str) -> anyhow::Result<SocketAddr> {
    let rest = match text.split_once("://") {
        Some(("tcp", rest)) => rest,
        Some((scheme, _)) => bail!(
            "--listen {text}: unknown scheme `{scheme}://`; use tcp://HOST:PORT, \
             e.g. tcp://0.0.0.0:7878"
        ),
        None => text,
    };
    let mut addrs = rest.to_socket_addrs().with_context(|| {
        format!("--listen {text}: not an address to listen on; use HOST:PORT, e.g. 127.0.0.1:7878")
    })?;
    addrs
        .next()
        .with_context(|| format!("--listen {text}: the host name has no address"))
}

/// `corral-agent keygen FILE`.
pub fn keygen(file: &Path) -> anyhow::Result<()> {
    corral_io::transport::write_new_key_file(file).with_context(|| {
        format!(
            "writing a new key to {} (an existing key file is never overwritten)",
            file.display()
        )
    })?;
    println!(
        "wrote a new key to {}; give the same file to the gateway and start the agent with \
         --key-file {}",
        file.display(),
        file.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(
            parse_listen("tcp://127.0.0.1:7878").unwrap(),
            "127.0.0.1:7878".parse().unwrap()
        );
        assert_eq!(parse_listen("[::1]:9").unwrap(), "[::1]:9".parse().unwrap());
        assert!(parse_listen("udp://1.2.3.4:5").is_err());
        assert!(parse_listen("nonsense").is_err());
    }
}
