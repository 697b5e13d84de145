//! `corral exec`.

use crate::api::wire::{ExecBody, ExecLine, EXEC_ID_HEADER, MAX_STDIN};
use crate::cli::{exit, CmdResult, Context, Failure, Target};
use base64::Engine;
use corral_io::client::{DeviceClient, ExecEvent, ExecOptions, ExitInfo};
use corral_protocol::message::ExitReason;
use futures_util::StreamExt;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::signal::unix::{signal, SignalKind};
use tokio::time::Instant;

/// Run a command on a device, streaming its output; exit with its status.
///
/// Its stdout and stderr go to this process's stdout and stderr as they
/// come.
///
/// The command is an argv, not a shell string: write `corral exec DEV -- sh
/// -c 'a | b'` for a shell. `--timeout` is enforced on the device, which
/// kills the command (and its process group) when it runs out. Ctrl-C
/// cancels the remote command, waits for it to end and exits 130; a second
/// Ctrl-C stops waiting.
///
/// Standard input is not read unless `-i` is given: then all of it (up to 4
/// MiB) is read and sent to the command, whose stdin is closed after it.
///
/// Through a gateway, the command waits while someone else holds the device
/// (see `corral lock`), unless --no-wait.
#[derive(clap::Args, Debug)]
#[command(after_help = concat!(
    crate::device_help!(),
    "\n\nExit status: the remote command's own (128+N if signal N killed it, also when it ran past\n",
    "--timeout; 127 if it could not start), or:\n",
    "  2    usage error: bad arguments, an unknown or ambiguous device\n",
    "  1    the device or the gateway refused the request (device leased and --no-wait)\n",
    "  130  interrupted by Ctrl-C; the remote command was cancelled\n",
    "  255  infrastructure failure: no gateway, device offline, link lost, device rebooted"
))]
pub struct Cmd {
    /// The device.
    pub device: String,
    /// Environment variable for the command (repeatable).
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Working directory on the device.
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<String>,
    /// Kill the command on the device after this long (e.g. 30s, 5m).
    #[arg(short, long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
    /// Send this process's standard input to the command (read to its end
    /// first, at most 4 MiB).
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// The program and its arguments, after `--`.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGV"
    )]
    pub argv: Vec<String>,
}

/// How long to wait for the command's exit after a cancel.
const CANCEL_WAIT: Duration = Duration::from_secs(30);
/// How long past its timeout a command's exit may take before the link is
/// called dead (direct mode).
const EXIT_GRACE: Duration = Duration::from_secs(15);
/// Longest NDJSON line accepted from a gateway: output chunks are at most
/// a link message (64 KiB) in base64, so this is generous.
const MAX_LINE: usize = 16 << 20;

fn parse_env(items: &[String]) -> Result<Vec<(String, String)>, Failure> {
    items
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(Failure::usage(format!(
                "--env {kv:?}: write KEY=VALUE, e.g. --env RUST_LOG=debug"
            ))),
        })
        .collect()
}

async fn read_stdin() -> Result<Vec<u8>, Failure> {
    let mut buf = Vec::new();
    tokio::io::stdin()
        .take(MAX_STDIN as u64 + 1)
        .read_to_end(&mut buf)
        .await
        .map_err(|e| Failure::usage(format!("reading standard input: {e}")))?;
    if buf.len() > MAX_STDIN {
        return Err(Failure::usage(format!(
            "standard input is larger than {} — push it as a file (`corral push`) and redirect on the device",
            crate::cli::progress::human_bytes(MAX_STDIN as u64)
        )));
    }
    Ok(buf)
}

/// Runs the command.
pub async fn run(ctx: &Context, cmd: Cmd) -> CmdResult {
    let env = parse_env(&cmd.env)?;
    let stdin = if cmd.stdin {
        Some(read_stdin().await?)
    } else {
        None
    };
    let mut interrupt = signal(SignalKind::interrupt())
        .map_err(|e| Failure::infra(format!("installing the Ctrl-C handler: {e}")))?;
    match ctx.target(&cmd.device).await? {
        Target::Gateway(name) => {
            let body = ExecBody {
                argv: cmd.argv.clone(),
                env,
                cwd: cmd.cwd.clone().unwrap_or_default(),
                timeout_ms: cmd.timeout.map(|t| t.as_millis() as u64),
                stdin_b64: stdin.map(|s| base64::engine::general_purpose::STANDARD.encode(s)),
            };
            via_gateway(ctx, &name, &body, &cmd.argv[0], &mut interrupt).await
        }
        Target::Direct(client) => {
            let opts = ExecOptions {
                argv: cmd.argv.clone(),
                env,
                cwd: cmd.cwd.clone().unwrap_or_default(),
                timeout: cmd.timeout,
                stdin: stdin.is_some(),
                token: rand::random::<u64>() | 1,
            };
            direct(&client, &opts, stdin.as_deref(), &mut interrupt).await
        }
    }
}

/// Writes output as it comes, flushing so a slow command's lines show at
/// once.
async fn emit(stderr: bool, data: &[u8]) -> Result<(), Failure> {
    let r = if stderr {
        let mut e = tokio::io::stderr();
        match e.write_all(data).await {
            Ok(()) => e.flush().await,
            Err(x) => Err(x),
        }
    } else {
        let mut o = tokio::io::stdout();
        match o.write_all(data).await {
            Ok(()) => o.flush().await,
            Err(x) => Err(x),
        }
    };
    // A closed stdout (`corral exec … | head`) is the reader's choice.
    r.map_err(|e| Failure::refused(format!("writing the command's output: {e}")))
}

/// The exit status for an ended command, with a word on stderr when it did
/// not simply exit.
fn status_of(
    program: &str,
    reason: &str,
    code: i32,
    status: i32,
    detail: &str,
    dropped: u64,
    ran: Duration,
) -> i32 {
    if dropped > 0 {
        eprintln!("corral: {dropped} bytes of output were lost while the link was down");
    }
    match reason {
        "exited" if code == 0 => 0,
        // Exit statuses are 8 bits; a firmware command may return anything,
        // and a non-zero code must never read as success.
        "exited" => match code & 0xff {
            0 => 1,
            c => c,
        },
        "timed_out" => {
            eprintln!(
                "corral: {program} ran past its timeout ({}) and was killed",
                crate::report::human_duration(ran)
            );
            status
        }
        "failed_to_start" => {
            eprintln!("corral: could not start {program}: {detail}");
            exit::NOT_STARTED
        }
        _ => status,
    }
}

async fn via_gateway(
    ctx: &Context,
    name: &str,
    body: &ExecBody,
    program: &str,
    interrupt: &mut tokio::signal::unix::Signal,
) -> CmdResult {
    let b64 = base64::engine::general_purpose::STANDARD;
    let resp = tokio::select! {
        r = ctx.api.exec(name, &ctx.hold, body) => r?,
        // Nothing runs yet (waiting for the lease or the device).
        _ = interrupt.recv() => return Ok(exit::INTERRUPTED),
    };
    let id = resp
        .headers()
        .get(EXEC_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut stream = resp.bytes_stream();
    let mut buf: Vec<u8> = Vec::new();
    let mut cancelled: Option<Instant> = None;
    loop {
        let chunk = tokio::select! {
            c = stream.next() => c,
            _ = interrupt.recv() => {
                if cancelled.is_some() {
                    return Ok(exit::INTERRUPTED);
                }
                eprintln!("corral: cancelling the command on {name} (Ctrl-C again to stop waiting)");
                cancelled = Some(Instant::now() + CANCEL_WAIT);
                match id {
                    Some(id) => { let _ = ctx.api.cancel_exec(id).await; }
                    // An old gateway: leaving cancels too.
                    None => return Ok(exit::INTERRUPTED),
                }
                continue;
            }
            _ = tokio::time::sleep_until(cancelled.unwrap_or_else(Instant::now)), if cancelled.is_some() => {
                eprintln!("corral: the command did not report its end within {CANCEL_WAIT:?} of the cancel");
                return Ok(exit::INTERRUPTED);
            }
        };
        match chunk {
            Some(Ok(bytes)) => buf.extend_from_slice(&bytes),
            Some(Err(e)) => {
                return Err(Failure::infra(format!(
                    "the connection to the gateway broke while the command ran: {e}"
                )))
            }
            None => {
                return Err(Failure::infra(
                    "the gateway's answer ended before the command did (did the gateway stop?)",
                ))
            }
        }
        while let Some(pos) = buf.iter().position(|&c| c == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            let line: ExecLine = serde_json::from_slice(&line).map_err(|e| {
                Failure::infra(format!(
                    "the gateway sent a line that is not an exec event: {e}"
                ))
            })?;
            match line {
                ExecLine::Started { .. } => {}
                ExecLine::Stdout { data } => {
                    emit(false, &b64.decode(data).unwrap_or_default()).await?
                }
                ExecLine::Stderr { data } => {
                    emit(true, &b64.decode(data).unwrap_or_default()).await?
                }
                ExecLine::Exit {
                    reason,
                    code,
                    status,
                    duration_ms,
                    output_dropped,
                    detail,
                    ..
                } => {
                    if cancelled.is_some() {
                        return Ok(exit::INTERRUPTED);
                    }
                    return Ok(status_of(
                        program,
                        &reason,
                        code,
                        status,
                        &detail,
                        output_dropped,
                        body.timeout_ms
                            .map_or(Duration::from_millis(duration_ms), Duration::from_millis),
                    ));
                }
                ExecLine::Error {
                    infrastructure,
                    message,
                } => {
                    return Err(if infrastructure {
                        Failure::infra(format!("{name}: {message}"))
                    } else {
                        Failure::refused(format!("{name}: {message}"))
                    });
                }
            }
        }
        if buf.len() > MAX_LINE {
            return Err(Failure::infra(
                "the gateway sent an exec event longer than 16 MiB",
            ));
        }
    }
}

fn reason_name(r: ExitReason) -> &'static str {
    match r {
        ExitReason::Exited => "exited",
        ExitReason::Signaled => "signaled",
        ExitReason::TimedOut => "timed_out",
        ExitReason::Cancelled => "cancelled",
        ExitReason::FailedToStart => "failed_to_start",
    }
}

async fn direct(
    client: &DeviceClient,
    opts: &ExecOptions,
    stdin: Option<&[u8]>,
    interrupt: &mut tokio::signal::unix::Signal,
) -> CmdResult {
    let mut handle = client.exec(opts).await?;
    if let Some(input) = stdin {
        handle.write_stdin(input).await?;
        handle.close_stdin().await?;
    }
    let mut silence = opts
        .timeout
        .map_or(Duration::from_secs(7 * 24 * 3600), |t| t + EXIT_GRACE);
    let mut cancelled = false;
    loop {
        let ev = tokio::select! {
            ev = handle.next(silence) => ev,
            _ = interrupt.recv() => {
                if cancelled {
                    return Ok(exit::INTERRUPTED);
                }
                eprintln!("corral: cancelling the command (Ctrl-C again to stop waiting)");
                cancelled = true;
                silence = CANCEL_WAIT;
                handle.cancel().await?;
                continue;
            }
        };
        match ev {
            Some(Ok(ExecEvent::Started(_))) => {}
            Some(Ok(ExecEvent::Stdout(d))) => emit(false, &d).await?,
            Some(Ok(ExecEvent::Stderr(d))) => emit(true, &d).await?,
            Some(Ok(ExecEvent::Exit(info))) => {
                if cancelled {
                    return Ok(exit::INTERRUPTED);
                }
                return Ok(exit_of(&opts.argv[0], &info, opts.timeout));
            }
            Some(Err(e)) => return Err(e.into()),
            None => {
                return Err(Failure::infra(
                    "the command's events ended without its exit report",
                ))
            }
        }
    }
}

fn exit_of(program: &str, info: &ExitInfo, timeout: Option<Duration>) -> i32 {
    status_of(
        program,
        reason_name(info.reason),
        info.code,
        info.shell_status(),
        &info.detail,
        info.output_dropped,
        timeout.unwrap_or(info.duration),
    )
}
