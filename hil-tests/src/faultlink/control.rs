//! The line-based control channel: change faults, cut and restore, read counters,
//! one command per line, while the link runs.
//!
//! `corral-faultlink` serves it on stdin/stdout and, with `--control unix:PATH`, on a
//! Unix socket (`socat - UNIX-CONNECT:PATH`, or `nc -U PATH`). Every command gets one
//! reply line, except `help`: `ok ...` when it worked, `error: ...` when it did not,
//! or a JSON object for `stats` and `faults`. A bad command never stops the link.
//!
//! ```text
//! > set a2b corrupt 0.01
//! ok a2b corrupt=0.01
//! > cut 2s
//! ok cut for 2s
//! > stats
//! {"a2b":{"bytes_in":1024,...},"b2a":{...},"state":"cut","connected":true,"sessions":1,"seed":42}
//! > set a2b corupt 0.01
//! error: unknown fault `corupt`; the faults are: baud, drop, corrupt, ...
//! ```

use std::fmt;
use std::io;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::task::{JoinHandle, JoinSet};

use super::endpoint::bind_unix;
use super::{parse_duration, Direction, FaultLinkHandle, FaultSetting, Faults, FAULT_KEYS};

/// The longest command line accepted; longer lines are answered with an error and
/// skipped, so a misbehaving client cannot make the link buffer without bound.
pub const MAX_LINE: usize = 4096;

/// One control command.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Command {
    /// `help`: list the commands.
    Help,
    /// `stats`: counters and state as JSON.
    Stats,
    /// `faults`: the faults of both directions as JSON.
    Faults,
    /// `addr`: where the endpoints are.
    Addr,
    /// `set [a2b|b2a|both] FAULT VALUE [FAULT VALUE ...]` (also `FAULT=VALUE`);
    /// without a direction, both.
    Set {
        /// Which way.
        direction: Direction,
        /// The changes, applied together.
        settings: Vec<FaultSetting>,
    },
    /// `clear [a2b|b2a|both]`: back to a perfect line.
    Clear {
        /// Which way.
        direction: Direction,
    },
    /// `cut DURATION` (`None` is `cut forever`).
    Cut(Option<Duration>),
    /// `restore`.
    Restore,
    /// `shutdown`: stop the link (and `corral-faultlink`).
    Shutdown,
}

/// A command line that could not be understood; the message says how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CommandError(String);

const COMMANDS: &str = "set, clear, cut, restore, stats, faults, addr, help, shutdown";

impl FromStr for Command {
    type Err = CommandError;

    fn from_str(line: &str) -> Result<Self, Self::Err> {
        let mut words = line.split_whitespace();
        let Some(verb) = words.next() else {
            return Err(CommandError(format!(
                "empty command; the commands are: {COMMANDS}"
            )));
        };
        let rest: Vec<&str> = words.collect();
        let no_arguments = |command: Command| {
            if rest.is_empty() {
                Ok(command)
            } else {
                Err(CommandError(format!("`{verb}` takes no arguments")))
            }
        };
        match verb.to_ascii_lowercase().as_str() {
            "help" | "?" => no_arguments(Command::Help),
            "stats" => no_arguments(Command::Stats),
            "faults" | "show" => no_arguments(Command::Faults),
            "addr" => no_arguments(Command::Addr),
            "restore" => no_arguments(Command::Restore),
            "shutdown" => no_arguments(Command::Shutdown),
            "set" => parse_set(&rest),
            "clear" => {
                let direction = match rest.as_slice() {
                    [] => Direction::Both,
                    [dir] => parse_direction(dir)?,
                    _ => return Err(CommandError("usage: clear [a2b|b2a|both]".into())),
                };
                Ok(Command::Clear { direction })
            }
            "cut" => match rest.as_slice() {
                ["forever"] => Ok(Command::Cut(None)),
                [duration] => parse_duration(duration)
                    .map(|d| Command::Cut(Some(d)))
                    .map_err(|_| {
                        CommandError(format!(
                            "`{duration}` is not a duration; write e.g. `cut 2s`, `cut 500ms` or `cut forever`"
                        ))
                    }),
                _ => Err(CommandError(
                    "cut needs a duration (e.g. `cut 2s`) or `forever`".into(),
                )),
            },
            _ => Err(CommandError(format!(
                "unknown command `{verb}`; the commands are: {COMMANDS} (`help` explains them)"
            ))),
        }
    }
}

fn parse_direction(word: &str) -> Result<Direction, CommandError> {
    word.parse().map_err(|e| CommandError(format!("{e}")))
}

fn parse_set(words: &[&str]) -> Result<Command, CommandError> {
    const USAGE: &str = "usage: set [a2b|b2a|both] FAULT VALUE ..., e.g. `set a2b corrupt 0.01`";
    let (direction, mut words) = match words.first().map(|w| w.parse::<Direction>()) {
        Some(Ok(direction)) => (direction, &words[1..]),
        _ => (Direction::Both, words),
    };
    let mut settings = Vec::new();
    while let Some((first, rest)) = words.split_first() {
        let (key, value, rest) = match first.split_once('=') {
            Some((key, value)) => (key, value, rest),
            None => match rest.split_first() {
                Some((value, rest)) => (*first, *value, rest),
                None => return Err(CommandError(format!("`{first}` needs a value; {USAGE}"))),
            },
        };
        settings.push(FaultSetting::parse(key, value).map_err(|e| CommandError(e.to_string()))?);
        words = rest;
    }
    if settings.is_empty() {
        return Err(CommandError(USAGE.into()));
    }
    Ok(Command::Set {
        direction,
        settings,
    })
}

/// The answer to a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// Whether the command worked.
    pub ok: bool,
    /// The text to show, without the `error: ` prefix.
    pub text: String,
    /// The command was `shutdown`: after showing the reply, shut the link down.
    pub shutdown: bool,
}

impl Reply {
    fn ok(text: impl Into<String>) -> Self {
        Reply {
            ok: true,
            text: text.into(),
            shutdown: false,
        }
    }

    fn error(text: impl fmt::Display) -> Self {
        Reply {
            ok: false,
            text: text.to_string(),
            shutdown: false,
        }
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ok {
            f.write_str(&self.text)
        } else {
            write!(f, "error: {}", self.text)
        }
    }
}

/// The text `help` answers with.
pub fn help_text() -> String {
    let mut text = String::from(
        "commands (one per line):\n\
         \x20 set [a2b|b2a|both] FAULT VALUE [FAULT VALUE ...]   change faults (default: both ways)\n\
         \x20 clear [a2b|b2a|both]                               remove all faults\n\
         \x20 cut DURATION                                       discard all bytes for a while, e.g. cut 2s\n\
         \x20 cut forever                                        close both endpoints until restore\n\
         \x20 restore                                            end a cut, reopen closed endpoints\n\
         \x20 stats                                              counters and state as JSON\n\
         \x20 faults                                             current faults as JSON\n\
         \x20 addr                                               where the endpoints are\n\
         \x20 shutdown                                           stop the link\n\
         faults:\n",
    );
    for (key, description) in FAULT_KEYS {
        text.push_str(&format!("  {key:<14} {description}\n"));
    }
    text.push_str("example: set a2b corrupt 0.01 delay 20ms");
    text
}

/// Carries out one command on the link. `shutdown` is not carried out here but
/// flagged in the reply, so the caller can deliver the reply before the link (and
/// perhaps the process) goes away.
pub async fn execute(link: &FaultLinkHandle, command: &Command) -> Reply {
    match command {
        Command::Help => Reply::ok(help_text()),
        Command::Stats => match serde_json::to_string(&link.stats()) {
            Ok(json) => Reply::ok(json),
            Err(e) => Reply::error(e),
        },
        Command::Faults => match serde_json::to_string(&link.faults()) {
            Ok(json) => Reply::ok(json),
            Err(e) => Reply::error(e),
        },
        Command::Addr => Reply::ok(format!("a={} b={}", link.a_addr(), link.b_addr())),
        Command::Set {
            direction,
            settings,
        } => match link.update_faults(*direction, |faults| {
            for setting in settings {
                setting.apply(faults);
            }
        }) {
            Ok(()) => {
                let list: Vec<String> = settings.iter().map(ToString::to_string).collect();
                Reply::ok(format!("ok {direction} {}", list.join(" ")))
            }
            Err(e) => Reply::error(e),
        },
        Command::Clear { direction } => match link.set_faults(*direction, Faults::none()) {
            Ok(()) => Reply::ok(format!("ok {direction} cleared")),
            Err(e) => Reply::error(e),
        },
        Command::Cut(duration) => match link.cut(*duration).await {
            Ok(()) => Reply::ok(match duration {
                Some(d) => format!("ok cut for {}", humantime::format_duration(*d)),
                None => "ok cut for good; endpoints closed until `restore`".to_owned(),
            }),
            Err(e) => Reply::error(e),
        },
        Command::Restore => match link.restore().await {
            Ok(()) => Reply::ok(format!(
                "ok restored: a={} b={}",
                link.a_addr(),
                link.b_addr()
            )),
            Err(e) => Reply::error(e),
        },
        Command::Shutdown => Reply {
            ok: true,
            text: "ok shutting down".into(),
            shutdown: true,
        },
    }
}

/// Parses and carries out one line. Returns `None` for a blank line or a `#`
/// comment, which get no reply.
pub async fn handle_line(link: &FaultLinkHandle, line: &str) -> Option<Reply> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    Some(match line.parse::<Command>() {
        Ok(command) => {
            tracing::debug!(?command, "control command");
            execute(link, &command).await
        }
        Err(e) => Reply::error(e),
    })
}

/// One line read with a bound on its length.
enum Line {
    Text(String),
    TooLong,
    NotUtf8,
}

async fn read_line<R: AsyncBufRead + Unpin>(reader: &mut R) -> io::Result<Option<Line>> {
    let mut line = Vec::new();
    let mut too_long = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            // End of input; a last line without a newline still counts.
            if line.is_empty() && !too_long {
                return Ok(None);
            }
            break;
        }
        let (chunk, consumed, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], i + 1, true),
            None => (available, available.len(), false),
        };
        if !too_long {
            if line.len() + chunk.len() > MAX_LINE {
                too_long = true;
                line = Vec::new();
            } else {
                line.extend_from_slice(chunk);
            }
        }
        reader.consume(consumed);
        if done {
            break;
        }
    }
    if too_long {
        return Ok(Some(Line::TooLong));
    }
    Ok(Some(match String::from_utf8(line) {
        Ok(text) => Line::Text(text),
        Err(_) => Line::NotUtf8,
    }))
}

/// Serves the control channel on a reader and a writer (stdin and stdout, or one
/// connection) until the reader ends or a `shutdown` command has been carried out.
pub async fn serve<R, W>(link: &FaultLinkHandle, reader: R, mut writer: W) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut reader = BufReader::new(reader);
    while let Some(line) = read_line(&mut reader).await? {
        let reply = match line {
            Line::Text(text) => match handle_line(link, &text).await {
                Some(reply) => reply,
                None => continue,
            },
            Line::TooLong => Reply::error(format!("line longer than {MAX_LINE} bytes ignored")),
            Line::NotUtf8 => Reply::error("line is not UTF-8 text; ignored"),
        };
        writer.write_all(format!("{reply}\n").as_bytes()).await?;
        writer.flush().await?;
        if reply.shutdown {
            link.shutdown().await;
            return Ok(());
        }
    }
    Ok(())
}

/// Serves the control channel on a Unix socket at `path`, for any number of
/// clients, until the link stops; then removes the socket file. A stale socket left
/// at `path` by a dead process is replaced; anything else there is an error.
pub fn serve_unix(link: FaultLinkHandle, path: &Path) -> io::Result<JoinHandle<()>> {
    let (listener, guard) = bind_unix(path)?;
    let path = path.to_owned();
    Ok(tokio::spawn(async move {
        let _guard = guard;
        let mut clients = JoinSet::new();
        loop {
            tokio::select! {
                () = link.stopped() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let link = link.clone();
                        clients.spawn(async move {
                            let (reader, writer) = stream.into_split();
                            if let Err(e) = serve(&link, reader, writer).await {
                                tracing::debug!("control client went away: {e}");
                            }
                        });
                    }
                    Err(e) => {
                        tracing::warn!(path = %path.display(), "accepting a control connection failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(_) = clients.join_next(), if !clients.is_empty() => {}
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_as_typed() {
        let cases: &[(&str, Command)] = &[
            (
                "set a2b corrupt 0.01",
                Command::Set {
                    direction: Direction::AToB,
                    settings: vec![FaultSetting::Corrupt(0.01)],
                },
            ),
            (
                "set drop=1% baud 9600",
                Command::Set {
                    direction: Direction::Both,
                    settings: vec![FaultSetting::Drop(0.01), FaultSetting::Baud(Some(9600))],
                },
            ),
            (
                "SET b2a delay 20ms jitter=5ms",
                Command::Set {
                    direction: Direction::BToA,
                    settings: vec![
                        FaultSetting::Delay(Duration::from_millis(20)),
                        FaultSetting::Jitter(Duration::from_millis(5)),
                    ],
                },
            ),
            ("cut 2s", Command::Cut(Some(Duration::from_secs(2)))),
            ("cut forever", Command::Cut(None)),
            ("  restore ", Command::Restore),
            ("stats", Command::Stats),
            (
                "clear a2b",
                Command::Clear {
                    direction: Direction::AToB,
                },
            ),
            (
                "clear",
                Command::Clear {
                    direction: Direction::Both,
                },
            ),
            ("help", Command::Help),
        ];
        for (line, expected) in cases {
            assert_eq!(&line.parse::<Command>().unwrap(), expected, "{line}");
        }
    }

    #[test]
    fn bad_commands_explain_themselves() {
        for (line, expected) in [
            ("frobnicate", "unknown command `frobnicate`"),
            ("set", "usage: set"),
            ("set a2b", "usage: set"),
            ("set a2b corrupt", "`corrupt` needs a value"),
            ("set a2b corrupt 2", "between 0 and 1"),
            ("set sideways corrupt 0.1", "unknown fault `sideways`"),
            ("cut", "cut needs a duration"),
            ("cut soon", "not a duration"),
            ("stats now", "takes no arguments"),
            ("clear up", "unknown direction `up`"),
            ("", "empty command"),
        ] {
            let err = line.parse::<Command>().unwrap_err().to_string();
            assert!(err.contains(expected), "{line:?}: {err}");
        }
    }
}
