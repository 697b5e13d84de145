//! Opening the byte streams a link runs over.
//!
//! Errors say what was being opened and what to do about it: a user should
//! read "opening /dev/ttyACM0: permission denied (add yourself to the dialout
//! group)", not "os error 13".

use corral_protocol::auth::{self, Key, CHALLENGE_LEN, RESPONSE_LEN, VERDICT_LEN};
use std::io;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long either side waits for the other during authentication.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(10);

/// A transport could not be opened or authenticated.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// An I/O error with what we were doing.
    #[error("{context}: {source}{hint}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: io::Error,
        /// Advice, starting with " (" or empty.
        hint: String,
    },
    /// Authentication failed.
    #[error("{context}: {reason}")]
    Auth {
        /// With whom.
        context: String,
        /// Why.
        reason: auth::AuthError,
    },
    /// The peer did not answer in time.
    #[error("{context}: no answer within {timeout:?}")]
    Timeout {
        /// With whom.
        context: String,
        /// How long we waited.
        timeout: Duration,
    },
    /// A key file that is not a key.
    #[error("key file {path}: {reason}")]
    KeyFile {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

fn io_err(context: impl Into<String>, source: io::Error) -> TransportError {
    let hint = match source.kind() {
        io::ErrorKind::PermissionDenied => {
            " (is your user in the dialout group, or does another program hold the port?)"
        }
        io::ErrorKind::NotFound => " (is the device plugged in? `corral scan` lists serial ports)",
        io::ErrorKind::ConnectionRefused => " (is corral-agent running and listening there?)",
        _ => "",
    };
    TransportError::Io {
        context: context.into(),
        source,
        hint: hint.to_string(),
    }
}

/// Reads a key file: 64 hex characters, as `openssl rand -hex 32` prints.
pub fn load_key_file(path: &Path) -> Result<Key, TransportError> {
    let text = std::fs::read_to_string(path).map_err(|e| TransportError::KeyFile {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    Key::from_hex(&text).map_err(|e| TransportError::KeyFile {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// Writes a new random key file readable only by its owner.
pub fn write_new_key_file(path: &Path) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let bytes: [u8; 32] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    writeln!(f, "{hex}")?;
    Ok(())
}

/// Serial line settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialSettings {
    /// Device path (`/dev/ttyACM0`, a pty slave).
    pub path: String,
    /// Baud rate.
    pub baud: u32,
    /// Drive DTR to this level after opening (`None`: leave it).
    pub dtr: Option<bool>,
    /// Drive RTS to this level after opening (`None`: leave it).
    pub rts: Option<bool>,
}

/// Opens a serial port raw, 8N1, exclusively (TIOCEXCL: a second opener
/// gets "busy" instead of stealing bytes).
pub fn open_serial(s: &SerialSettings) -> Result<tokio_serial::SerialStream, TransportError> {
    use tokio_serial::SerialPort;
    let ctx = || format!("opening serial port {}", s.path);
    let builder = tokio_serial::new(&s.path, s.baud)
        .data_bits(tokio_serial::DataBits::Eight)
        .parity(tokio_serial::Parity::None)
        .stop_bits(tokio_serial::StopBits::One)
        .flow_control(tokio_serial::FlowControl::None);
    let mut port =
        tokio_serial::SerialStream::open(&builder).map_err(|e| io_err(ctx(), e.into()))?;
    port.set_exclusive(true)
        .map_err(|e| io_err(format!("locking serial port {}", s.path), e.into()))?;
    if let Some(level) = s.dtr {
        // ptys do not have modem lines; that is fine for them.
        if let Err(e) = port.write_data_terminal_ready(level) {
            tracing::debug!(path = %s.path, error = %e, "could not set DTR");
        }
    }
    if let Some(level) = s.rts {
        if let Err(e) = port.write_request_to_send(level) {
            tracing::debug!(path = %s.path, error = %e, "could not set RTS");
        }
    }
    Ok(port)
}

/// Connects to an agent over TCP and, with a key, proves we know it and
/// checks that the agent does too.
pub async fn connect_tcp(address: &str, key: Option<&Key>) -> Result<TcpStream, TransportError> {
    let ctx = format!("connecting to {address}");
    let mut stream = TcpStream::connect(address)
        .await
        .map_err(|e| io_err(ctx.clone(), e))?;
    // Small messages (acks, pings) must not wait for Nagle.
    stream
        .set_nodelay(true)
        .map_err(|e| io_err(ctx.clone(), e))?;
    if let Some(key) = key {
        with_timeout(&ctx, authenticate_as_client(&mut stream, key, &ctx)).await?;
    }
    Ok(stream)
}

async fn with_timeout<T>(
    ctx: &str,
    fut: impl std::future::Future<Output = Result<T, TransportError>>,
) -> Result<T, TransportError> {
    match tokio::time::timeout(AUTH_TIMEOUT, fut).await {
        Ok(r) => r,
        Err(_) => Err(TransportError::Timeout {
            context: ctx.to_string(),
            timeout: AUTH_TIMEOUT,
        }),
    }
}

/// The gateway's side of the challenge–response.
pub async fn authenticate_as_client<S>(
    s: &mut S,
    key: &Key,
    ctx: &str,
) -> Result<(), TransportError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut challenge = [0u8; CHALLENGE_LEN];
    s.read_exact(&mut challenge)
        .await
        .map_err(|e| io_err(format!("{ctx}: reading the challenge"), e))?;
    let nonce: [u8; 32] = rand::random();
    let response =
        auth::respond(key, &challenge, &nonce).map_err(|reason| TransportError::Auth {
            context: ctx.to_string(),
            reason,
        })?;
    s.write_all(&response)
        .await
        .map_err(|e| io_err(format!("{ctx}: sending our proof"), e))?;
    let mut verdict = [0u8; VERDICT_LEN];
    s.read_exact(&mut verdict)
        .await
        .map_err(|e| io_err(format!("{ctx}: reading the verdict"), e))?;
    auth::verify_verdict(key, &challenge, &nonce, &verdict).map_err(|reason| TransportError::Auth {
        context: ctx.to_string(),
        reason,
    })
}

/// The agent's side of the challenge–response. On a wrong key the peer is
/// told so and an error returned; the caller closes the connection.
pub async fn authenticate_as_server<S>(
    s: &mut S,
    key: &Key,
    ctx: &str,
) -> Result<(), TransportError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let fut = async {
        let nonce: [u8; 32] = rand::random();
        s.write_all(&auth::challenge(&nonce))
            .await
            .map_err(|e| io_err(format!("{ctx}: sending the challenge"), e))?;
        let mut response = [0u8; RESPONSE_LEN];
        s.read_exact(&mut response)
            .await
            .map_err(|e| io_err(format!("{ctx}: reading the response"), e))?;
        match auth::verify_response(key, &nonce, &response) {
            Ok(verdict) => {
                s.write_all(&verdict)
                    .await
                    .map_err(|e| io_err(format!("{ctx}: sending the verdict"), e))?;
                Ok(())
            }
            Err(reason) => {
                let _ = s.write_all(&auth::refusal()).await;
                Err(TransportError::Auth {
                    context: ctx.to_string(),
                    reason,
                })
            }
        }
    };
    with_timeout(ctx, fut).await
}

/// Standard input and output as one byte stream (for `corral-agent --stdio`
/// and running an agent over ssh).
pub fn stdio() -> impl AsyncRead + AsyncWrite + Send + Unpin {
    tokio::io::join(tokio::io::stdin(), tokio::io::stdout())
}
