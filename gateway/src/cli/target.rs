//! Where a command goes: through the gateway (an inventory name) or straight
//! to one device (an address), the way `adb` works with or without its
//! server.

use super::{Cli, Failure};
use crate::api::client::{ApiClient, HoldArgs};
use corral_io::client::DeviceClient;
use corral_io::driver::spawn_link;
use corral_io::transport::{self, SerialSettings};
use std::path::PathBuf;
use std::time::Duration;

/// How long a direct connection waits for the device to introduce itself.
const READY: Duration = Duration::from_secs(15);

/// What every command needs.
pub struct Context {
    /// The gateway.
    pub api: ApiClient,
    /// Key for direct TCP devices.
    pub key_file: Option<PathBuf>,
    /// How gateway requests hold the device.
    pub hold: HoldArgs,
}

/// A direct device address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// `tcp://HOST:PORT`.
    Tcp(String),
    /// `serial:///dev/ttyX?baud=N`.
    Serial {
        /// The port.
        path: String,
        /// Its line rate.
        baud: u32,
    },
    /// `unix:///path` (an emulator's UART socket).
    Unix(String),
}

impl Address {
    /// Parses DEVICE: `Ok(None)` for an inventory name.
    pub fn parse(device: &str) -> Result<Option<Address>, Failure> {
        let Some((scheme, rest)) = device.split_once("://") else {
            return Ok(None);
        };
        match scheme {
            "tcp" => {
                if rest.rsplit_once(':').is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err()) {
                    return Err(Failure::usage(format!(
                        "{device}: a TCP address is tcp://HOST:PORT, e.g. tcp://10.0.0.5:7878"
                    )));
                }
                Ok(Some(Address::Tcp(rest.to_string())))
            }
            "serial" => {
                let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
                if path.is_empty() {
                    return Err(Failure::usage(format!(
                        "{device}: name the port, e.g. serial:///dev/ttyACM0?baud=115200"
                    )));
                }
                let mut baud = crate::config::inventory::DEFAULT_BAUD;
                for kv in query.split('&').filter(|s| !s.is_empty()) {
                    match kv.split_once('=') {
                        Some(("baud", v)) => {
                            baud = v.parse().map_err(|_| {
                                Failure::usage(format!("{device}: baud {v:?} is not a number"))
                            })?
                        }
                        _ => {
                            return Err(Failure::usage(format!(
                                "{device}: unknown option {kv:?} (the only one is baud=N)"
                            )))
                        }
                    }
                }
                Ok(Some(Address::Serial {
                    path: path.to_string(),
                    baud,
                }))
            }
            "unix" if !rest.is_empty() => Ok(Some(Address::Unix(rest.to_string()))),
            _ => Err(Failure::usage(format!(
                "{device}: unknown address; use tcp://HOST:PORT, serial:///dev/ttyX?baud=N, unix:///path, or a device name from the gateway's inventory"
            ))),
        }
    }
}

/// A resolved DEVICE argument.
pub enum Target {
    /// A session opened by this process.
    Direct(DeviceClient),
    /// A device of the gateway, by name.
    Gateway(String),
}

/// A byte stream a link can run over.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Io for T {}

impl Context {
    /// The context of a command line; fails if `--token-file` cannot be
    /// read.
    pub fn from_cli(cli: &Cli) -> Result<Self, Failure> {
        let token = match (
            std::env::var("CORRAL_TOKEN")
                .ok()
                .filter(|t| !t.trim().is_empty()),
            &cli.token_file,
        ) {
            (Some(t), _) => Some(t),
            (None, Some(p)) => Some(std::fs::read_to_string(p).map_err(|e| {
                Failure::usage(format!("reading the API token file {}: {e}", p.display()))
            })?),
            (None, None) => None,
        }
        .map(|t| t.trim().to_string());
        let host = crate::gateway::host_name();
        Ok(Context {
            api: ApiClient::new(&cli.gateway, token),
            key_file: cli.key_file.clone(),
            hold: HoldArgs {
                lease: cli.lease,
                no_wait: cli.no_wait,
                holder: format!("corral@{host} pid {}", std::process::id()),
            },
        })
    }

    /// Resolves DEVICE: an address opens a session here, a name goes to the
    /// gateway.
    pub async fn target(&self, device: &str) -> Result<Target, Failure> {
        match Address::parse(device)? {
            None => Ok(Target::Gateway(device.to_string())),
            Some(addr) => Ok(Target::Direct(self.connect(device, &addr).await?)),
        }
    }

    /// Opens a session straight to a device and waits for its handshake.
    pub async fn connect(&self, device: &str, addr: &Address) -> Result<DeviceClient, Failure> {
        let (stream, cfg): (Box<dyn Io>, corral_protocol::Config) = match addr {
            Address::Tcp(a) => {
                let key =
                    match &self.key_file {
                        Some(p) => Some(transport::load_key_file(p).map_err(|e| {
                            Failure::usage(format!("key file {}: {e}", p.display()))
                        })?),
                        None => None,
                    };
                let s = transport::connect_tcp(a, key.as_ref())
                    .await
                    .map_err(|e| Failure::infra(format!("{device}: {e}")))?;
                (Box::new(s), corral_protocol::Config::stream())
            }
            Address::Serial { path, baud } => {
                let s = transport::open_serial(&SerialSettings {
                    path: path.clone(),
                    baud: *baud,
                    dtr: None,
                    rts: None,
                })
                .map_err(|e| Failure::infra(format!("{device}: {e}")))?;
                (Box::new(s), corral_protocol::Config::serial())
            }
            Address::Unix(p) => {
                let s = tokio::net::UnixStream::connect(p)
                    .await
                    .map_err(|e| Failure::infra(format!("{device}: connecting to {p}: {e}")))?;
                (Box::new(s), corral_protocol::Config::serial())
            }
        };
        let (tx, rx) = spawn_link(stream, cfg, corral_io::new_session_id());
        let client = DeviceClient::new(tx, rx, &crate::gateway::host_name());
        client.ready(READY).await.map_err(|e| {
            Failure::infra(format!(
                "{device}: no agent answered ({e}); is corral-agent (or the board) running there, and is the key right?"
            ))
        })?;
        Ok(client)
    }

    /// Fails for commands that only a gateway can do.
    pub fn gateway_only(&self, device: &str, what: &str) -> Result<String, Failure> {
        match Address::parse(device)? {
            None => Ok(device.to_string()),
            Some(_) => Err(Failure::usage(format!(
                "{what} needs a gateway: {device} is a direct address; use a device name from the gateway's inventory"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_names() {
        assert_eq!(Address::parse("pico-1").unwrap(), None);
        assert_eq!(
            Address::parse("tcp://10.0.0.5:7878").unwrap(),
            Some(Address::Tcp("10.0.0.5:7878".into()))
        );
        assert_eq!(
            Address::parse("serial:///dev/ttyUSB0?baud=921600").unwrap(),
            Some(Address::Serial {
                path: "/dev/ttyUSB0".into(),
                baud: 921_600
            })
        );
        assert_eq!(
            Address::parse("unix:///run/q.sock").unwrap(),
            Some(Address::Unix("/run/q.sock".into()))
        );
        let e = Address::parse("tcp://host").unwrap_err();
        assert_eq!(e.code, super::super::exit::USAGE);
        assert!(e.message.contains("tcp://HOST:PORT"), "{}", e.message);
        assert!(Address::parse("serial:///dev/x?speed=9600").is_err());
        assert!(Address::parse("http://x").is_err());
    }
}
