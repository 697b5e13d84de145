//! The two ends of the link: what a user writes ([`Endpoint`]), what it became once
//! opened ([`EndpointAddr`]), and the machinery that turns an opened endpoint into
//! one connection after another.
//!
//! Endpoints play one of three roles in getting a connection:
//! - *accepting* ones (`tcp-listen`, `unix-listen`) wait for a peer, one at a time;
//! - *connecting* ones (`tcp`, `unix`) dial out, but only once the other side has a
//!   peer, so a device only sees a connection when a gateway is really there;
//! - *fixed* ones (`pty`, `serial`) are always there, like a cable plugged in.

use std::fmt;
use std::fs;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

use super::tty::{self, Pty, TtyFd};

/// One side of the link, as written on the command line.
///
/// | text | meaning |
/// |---|---|
/// | `tcp-listen:HOST:PORT` | listen; serve one connection at a time (port 0 picks a free port) |
/// | `tcp:HOST:PORT` | connect once the other side is connected; reconnect for every new session |
/// | `unix-listen:PATH` | listen on a Unix socket (QEMU's `-chardev socket,path=PATH` connects to it) |
/// | `unix:PATH` | connect to a Unix socket |
/// | `pty` | create a pseudo-terminal in raw mode; the gateway opens its slave like a USB serial port |
/// | `pty:LINK` | the same, plus a stable symlink `LINK` to the slave |
/// | `serial:PATH` | an existing terminal, e.g. `/dev/ttyUSB0` or a pty slave, in raw mode |
/// | `serial:PATH,baud=N` | the same, also setting the port's line speed |
///
/// ```
/// use corral_hil_tests::faultlink::Endpoint;
/// let ep: Endpoint = "tcp-listen:127.0.0.1:0".parse().unwrap();
/// assert_eq!(ep, Endpoint::TcpListen("127.0.0.1:0".into()));
/// assert!("tcp:localhost".parse::<Endpoint>().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Endpoint {
    /// Listen on `HOST:PORT` (IPv6 hosts in brackets) and accept one connection at a time.
    TcpListen(String),
    /// Connect to `HOST:PORT`.
    Tcp(String),
    /// Listen on a Unix socket at this path. A stale socket file left by a dead
    /// process is replaced; anything else at the path is an error.
    UnixListen(PathBuf),
    /// Connect to the Unix socket at this path.
    Unix(PathBuf),
    /// Create a pseudo-terminal pair; `link` is an optional symlink to its slave.
    Pty {
        /// Where to put a stable symlink to the slave, e.g. `/tmp/ttyCORRAL0`.
        link: Option<PathBuf>,
    },
    /// Open an existing terminal.
    Serial {
        /// The terminal's path.
        path: PathBuf,
        /// The line speed to set, or `None` to leave it as it is.
        baud: Option<u32>,
    },
}

/// The forms an endpoint can take, for error messages and `--help`.
pub const ENDPOINT_FORMS: &str = "tcp-listen:HOST:PORT, tcp:HOST:PORT, unix-listen:PATH, unix:PATH, pty, pty:LINKPATH, serial:PATH or serial:PATH,baud=N";

/// An endpoint that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad endpoint `{text}`: {problem}")]
pub struct EndpointParseError {
    text: String,
    problem: String,
}

impl EndpointParseError {
    fn new(text: &str, problem: impl Into<String>) -> Self {
        EndpointParseError {
            text: text.to_owned(),
            problem: problem.into(),
        }
    }
}

fn parse_host_port(text: &str, rest: &str) -> Result<String, EndpointParseError> {
    let (host, port) = rest.rsplit_once(':').ok_or_else(|| {
        EndpointParseError::new(text, "expected HOST:PORT, for example 127.0.0.1:7000")
    })?;
    if host.is_empty() {
        return Err(EndpointParseError::new(
            text,
            "the host is empty; write 127.0.0.1 (or 0.0.0.0 for every interface)",
        ));
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err(EndpointParseError::new(
            text,
            "write an IPv6 host in brackets, for example [::1]:7000",
        ));
    }
    port.parse::<u16>().map_err(|_| {
        EndpointParseError::new(
            text,
            format!(
                "`{port}` is not a port number (0 to 65535; 0 picks a free port when listening)"
            ),
        )
    })?;
    Ok(rest.to_owned())
}

fn parse_path(text: &str, rest: &str) -> Result<PathBuf, EndpointParseError> {
    if rest.is_empty() {
        Err(EndpointParseError::new(text, "the path is empty"))
    } else {
        Ok(PathBuf::from(rest))
    }
}

impl FromStr for Endpoint {
    type Err = EndpointParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        if trimmed == "pty" {
            return Ok(Endpoint::Pty { link: None });
        }
        let (kind, rest) = trimmed.split_once(':').ok_or_else(|| {
            EndpointParseError::new(text, format!("expected one of {ENDPOINT_FORMS}"))
        })?;
        match kind {
            "tcp-listen" => Ok(Endpoint::TcpListen(parse_host_port(text, rest)?)),
            "tcp" => Ok(Endpoint::Tcp(parse_host_port(text, rest)?)),
            "unix-listen" => Ok(Endpoint::UnixListen(parse_path(text, rest)?)),
            "unix" => Ok(Endpoint::Unix(parse_path(text, rest)?)),
            "pty" => Ok(Endpoint::Pty {
                link: Some(parse_path(text, rest)?),
            }),
            "serial" => {
                let (path, baud) = match rest.rsplit_once(",baud=") {
                    Some((path, baud)) => {
                        let baud = baud.parse::<u32>().ok().filter(|b| *b > 0).ok_or_else(|| {
                            EndpointParseError::new(
                                text,
                                format!("`{baud}` is not a line speed; write for example serial:/dev/ttyUSB0,baud=115200"),
                            )
                        })?;
                        (path, Some(baud))
                    }
                    None => (rest, None),
                };
                Ok(Endpoint::Serial {
                    path: parse_path(text, path)?,
                    baud,
                })
            }
            other => Err(EndpointParseError::new(
                text,
                format!("unknown kind `{other}`; expected one of {ENDPOINT_FORMS}"),
            )),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::TcpListen(addr) => write!(f, "tcp-listen:{addr}"),
            Endpoint::Tcp(addr) => write!(f, "tcp:{addr}"),
            Endpoint::UnixListen(path) => write!(f, "unix-listen:{}", path.display()),
            Endpoint::Unix(path) => write!(f, "unix:{}", path.display()),
            Endpoint::Pty { link: None } => write!(f, "pty"),
            Endpoint::Pty { link: Some(link) } => write!(f, "pty:{}", link.display()),
            Endpoint::Serial { path, baud } => {
                write!(f, "serial:{}", path.display())?;
                if let Some(baud) = baud {
                    write!(f, ",baud={baud}")?;
                }
                Ok(())
            }
        }
    }
}

/// Where an endpoint ended up once opened: the bound port, the pty's slave path.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndpointAddr {
    /// Listening on this address (the real port when port 0 was asked for).
    TcpListen(SocketAddr),
    /// Connecting to this `HOST:PORT`.
    Tcp(String),
    /// Listening on this Unix socket.
    UnixListen(PathBuf),
    /// Connecting to this Unix socket.
    Unix(PathBuf),
    /// A pty whose slave is at `slave`, e.g. `/dev/pts/7`.
    Pty {
        /// The slave's path: open this as the serial port.
        slave: PathBuf,
        /// The stable symlink to the slave, if one was asked for.
        link: Option<PathBuf>,
    },
    /// An existing terminal.
    Serial(PathBuf),
}

impl EndpointAddr {
    /// The listening address of a `tcp-listen` endpoint.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match self {
            EndpointAddr::TcpListen(addr) => Some(*addr),
            _ => None,
        }
    }

    /// The path of a Unix socket, pty slave or serial port.
    pub fn path(&self) -> Option<&Path> {
        match self {
            EndpointAddr::UnixListen(p) | EndpointAddr::Unix(p) | EndpointAddr::Serial(p) => {
                Some(p)
            }
            EndpointAddr::Pty { slave, .. } => Some(slave),
            EndpointAddr::TcpListen(_) | EndpointAddr::Tcp(_) => None,
        }
    }
}

impl fmt::Display for EndpointAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndpointAddr::TcpListen(addr) => write!(f, "tcp-listen:{addr}"),
            EndpointAddr::Tcp(addr) => write!(f, "tcp:{addr}"),
            EndpointAddr::UnixListen(path) => write!(f, "unix-listen:{}", path.display()),
            EndpointAddr::Unix(path) => write!(f, "unix:{}", path.display()),
            EndpointAddr::Pty { slave, link } => {
                write!(f, "pty:{}", slave.display())?;
                if let Some(link) = link {
                    write!(f, ",link={}", link.display())?;
                }
                Ok(())
            }
            EndpointAddr::Serial(path) => write!(f, "serial:{}", path.display()),
        }
    }
}

/// A short advice to append to an error opening `endpoint`.
pub(crate) fn hint(endpoint: &Endpoint, error: &io::Error) -> &'static str {
    match (endpoint, error.kind()) {
        (Endpoint::TcpListen(_), io::ErrorKind::AddrInUse) => {
            " (another program listens there; choose another port, or port 0 for a free one)"
        }
        (Endpoint::UnixListen(_), io::ErrorKind::AddrInUse) => {
            " (another program listens on that socket; stop it or choose another path)"
        }
        (Endpoint::Serial { .. }, io::ErrorKind::PermissionDenied) => {
            " (are you in the dialout group?)"
        }
        (Endpoint::Serial { .. }, io::ErrorKind::NotFound) => " (is the device plugged in?)",
        (Endpoint::Serial { .. }, io::ErrorKind::ResourceBusy) => {
            " (another program has the port open exclusively)"
        }
        _ => "",
    }
}

/// A connected byte stream of any kind.
pub(crate) trait ByteStream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> ByteStream for T {}

/// One connection through an endpoint.
pub(crate) type Conn = Box<dyn ByteStream>;

/// A Unix socket file we bound, removed again when dropped if it is still ours.
#[derive(Debug)]
pub(crate) struct SocketFileGuard {
    path: PathBuf,
    dev_ino: Option<(u64, u64)>,
}

impl Drop for SocketFileGuard {
    fn drop(&mut self) {
        let ours = fs::symlink_metadata(&self.path)
            .is_ok_and(|m| m.file_type().is_socket() && Some((m.dev(), m.ino())) == self.dev_ino);
        if ours {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Makes `path` free for a listening socket: removes a stale socket nobody listens
/// on, refuses anything else.
fn clear_stale_socket(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    "a program is listening on this socket",
                ))
            } else {
                fs::remove_file(path)
            }
        }
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "the path exists and is not a socket; remove it or choose another path",
        )),
    }
}

/// Binds a Unix socket at `path`, replacing a stale one; the guard removes it again.
pub(crate) fn bind_unix(path: &Path) -> io::Result<(UnixListener, SocketFileGuard)> {
    clear_stale_socket(path)?;
    let listener = UnixListener::bind(path)?;
    let dev_ino = fs::symlink_metadata(path).ok().map(|m| (m.dev(), m.ino()));
    let guard = SocketFileGuard {
        path: path.to_owned(),
        dev_ino,
    };
    Ok((listener, guard))
}

/// An endpoint that has been opened: bound, created, or ready to dial.
pub(crate) enum Opened {
    TcpListen {
        listener: TcpListener,
        addr: SocketAddr,
    },
    Tcp {
        target: String,
    },
    UnixListen {
        listener: UnixListener,
        path: PathBuf,
        _guard: SocketFileGuard,
    },
    Unix {
        path: PathBuf,
    },
    Pty {
        pty: Pty,
        link: Option<PathBuf>,
    },
    Serial {
        path: PathBuf,
        baud: Option<u32>,
        port: Option<TtyFd>,
    },
}

impl Opened {
    /// Binds, creates or opens the endpoint.
    pub async fn open(endpoint: &Endpoint) -> io::Result<Opened> {
        Ok(match endpoint {
            Endpoint::TcpListen(addr) => {
                let listener = TcpListener::bind(addr.as_str()).await?;
                let addr = listener.local_addr()?;
                Opened::TcpListen { listener, addr }
            }
            Endpoint::Tcp(target) => Opened::Tcp {
                target: target.clone(),
            },
            Endpoint::UnixListen(path) => {
                let (listener, guard) = bind_unix(path)?;
                Opened::UnixListen {
                    listener,
                    path: path.clone(),
                    _guard: guard,
                }
            }
            Endpoint::Unix(path) => Opened::Unix { path: path.clone() },
            Endpoint::Pty { link } => Opened::Pty {
                pty: Pty::open(link.as_deref())?,
                link: link.clone(),
            },
            Endpoint::Serial { path, baud } => Opened::Serial {
                port: Some(tty::open_serial(path, *baud)?),
                path: path.clone(),
                baud: *baud,
            },
        })
    }

    /// Where the endpoint is now.
    pub fn addr(&self) -> EndpointAddr {
        match self {
            Opened::TcpListen { addr, .. } => EndpointAddr::TcpListen(*addr),
            Opened::Tcp { target } => EndpointAddr::Tcp(target.clone()),
            Opened::UnixListen { path, .. } => EndpointAddr::UnixListen(path.clone()),
            Opened::Unix { path } => EndpointAddr::Unix(path.clone()),
            Opened::Pty { pty, .. } => EndpointAddr::Pty {
                slave: pty.slave_path().to_owned(),
                link: pty.link_path().map(Path::to_owned),
            },
            Opened::Serial { path, .. } => EndpointAddr::Serial(path.clone()),
        }
    }

    /// The endpoint to open again after the link was cut for good: the same one,
    /// except that a listener keeps the port it was given, so peers find it again.
    pub fn reopen_as(&self) -> Endpoint {
        match self {
            Opened::TcpListen { addr, .. } => Endpoint::TcpListen(addr.to_string()),
            Opened::Tcp { target } => Endpoint::Tcp(target.clone()),
            Opened::UnixListen { path, .. } => Endpoint::UnixListen(path.clone()),
            Opened::Unix { path } => Endpoint::Unix(path.clone()),
            Opened::Pty { link, .. } => Endpoint::Pty { link: link.clone() },
            Opened::Serial { path, baud, .. } => Endpoint::Serial {
                path: path.clone(),
                baud: *baud,
            },
        }
    }

    /// For accepting and fixed endpoints, waits for the next connection. Dialling
    /// endpoints return `None` at once; then call [`Opened::dial`].
    pub async fn wait(&mut self) -> io::Result<Option<Conn>> {
        Ok(Some(match self {
            Opened::TcpListen { listener, .. } => {
                let (stream, peer) = listener.accept().await?;
                tracing::info!(%peer, "accepted TCP connection");
                tcp_conn(stream)?
            }
            Opened::UnixListen { listener, path, .. } => {
                let (stream, _) = listener.accept().await?;
                tracing::info!(path = %path.display(), "accepted Unix socket connection");
                Box::new(stream)
            }
            Opened::Pty { pty, .. } => Box::new(pty.stream()?),
            Opened::Serial { path, baud, port } => {
                let fd = match port {
                    Some(fd) => fd,
                    None => {
                        let fd = tty::open_serial(path, *baud)?;
                        tracing::info!(path = %path.display(), "reopened serial port");
                        port.insert(fd)
                    }
                };
                Box::new(fd.stream()?)
            }
            Opened::Tcp { .. } | Opened::Unix { .. } => return Ok(None),
        }))
    }

    /// Dials a connecting endpoint (one whose [`Opened::wait`] returned `None`).
    pub async fn dial(&mut self) -> io::Result<Conn> {
        match self {
            Opened::Tcp { target } => {
                let stream = TcpStream::connect(target.as_str()).await?;
                tracing::info!(%target, "connected over TCP");
                tcp_conn(stream)
            }
            Opened::Unix { path } => {
                let stream = UnixStream::connect(&*path).await?;
                tracing::info!(path = %path.display(), "connected to Unix socket");
                Ok(Box::new(stream))
            }
            _ => Err(io::Error::other("this endpoint does not dial out")),
        }
    }

    /// Forgets a broken serial port so the next session opens it afresh (a USB
    /// adapter that was unplugged and plugged back in is a new terminal).
    pub fn forget_broken(&mut self) {
        if let Opened::Serial { port, .. } = self {
            *port = None;
        }
    }
}

fn tcp_conn(stream: TcpStream) -> io::Result<Conn> {
    // The pacer releases a few bytes every millisecond; Nagle would bunch them up
    // again and undo the UART timing.
    stream.set_nodelay(true)?;
    Ok(Box::new(stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_round_trip_through_text() {
        for text in [
            "tcp-listen:127.0.0.1:7000",
            "tcp:[::1]:7878",
            "unix-listen:/tmp/qemu.sock",
            "unix:/tmp/agent.sock",
            "pty",
            "pty:/tmp/ttyCORRAL0",
            "serial:/dev/ttyUSB0",
            "serial:/dev/ttyUSB0,baud=115200",
        ] {
            let endpoint: Endpoint = text.parse().unwrap();
            assert_eq!(endpoint.to_string(), text);
        }
    }

    #[test]
    fn bad_endpoints_say_what_to_write() {
        for (text, expected) in [
            ("tcp:7000", "HOST:PORT"),
            ("tcp-listen::7000", "host is empty"),
            ("tcp:::1:7000", "brackets"),
            ("tcp:localhost:http", "not a port number"),
            ("udp:1.2.3.4:5", "unknown kind `udp`"),
            ("ttyUSB0", "tcp-listen:HOST:PORT"),
            ("unix:", "path is empty"),
            ("serial:/dev/ttyUSB0,baud=fast", "baud=115200"),
        ] {
            let err = text.parse::<Endpoint>().unwrap_err().to_string();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }
}
