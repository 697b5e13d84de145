//! Opening a device's link as the inventory describes it.

use crate::config::inventory::{LineLevel, Link, PortSelector};
use crate::scan;
use corral_io::transport::{self, SerialSettings};
use tokio::io::{AsyncRead, AsyncWrite};

/// A byte stream the link runs over.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// An opened link: the stream, the protocol configuration that suits it,
/// and what was opened (the path a USB device has now).
pub(crate) struct Opened {
    pub(crate) stream: Box<dyn Stream>,
    pub(crate) config: corral_protocol::Config,
    pub(crate) endpoint: String,
}

/// A short description of a link for status displays.
pub fn describe_link(link: &Link) -> String {
    match link {
        Link::Serial(s) => {
            let port = match &s.port {
                PortSelector::Path(p) => p.display().to_string(),
                PortSelector::Usb(m) => {
                    let mut parts = Vec::new();
                    if let Some(id) = &m.id {
                        parts.push(format!("usb={id}"));
                    }
                    if let Some(sn) = &m.serial_number {
                        parts.push(format!("usb_serial={sn}"));
                    }
                    if let Some(i) = m.interface {
                        parts.push(format!("interface={i}"));
                    }
                    parts.join(" ")
                }
            };
            format!("serial {port} {}", s.baud)
        }
        Link::Tcp(t) => format!("tcp {}", t.address),
        Link::Unix(u) => format!("unix {}", u.path.display()),
    }
}

/// Finds and opens the link. Errors are ready for a person to read.
pub(crate) async fn open(link: &Link) -> Result<Opened, String> {
    match link {
        Link::Serial(s) => {
            let path = match &s.port {
                PortSelector::Path(p) => p.display().to_string(),
                PortSelector::Usb(m) => {
                    // Looked up again at every connect: a board plugged back
                    // in may come back at another /dev path.
                    let ports =
                        scan::scan_ports().map_err(|e| format!("listing serial ports: {e}"))?;
                    match m.find(&ports) {
                        Ok(p) => p.path.clone(),
                        Err(e) => return Err(e.to_string()),
                    }
                }
            };
            let settings = SerialSettings {
                path: path.clone(),
                baud: s.baud,
                dtr: s.dtr.map(|l| l == LineLevel::On),
                rts: s.rts.map(|l| l == LineLevel::On),
            };
            let port = transport::open_serial(&settings).map_err(|e| e.to_string())?;
            Ok(Opened {
                stream: Box::new(port),
                config: corral_protocol::Config::serial(),
                endpoint: path,
            })
        }
        Link::Unix(u) => {
            let stream = tokio::net::UnixStream::connect(&u.path)
                .await
                .map_err(|e| {
                    format!(
                        "connecting to {}: {e} (is the emulator running?)",
                        u.path.display()
                    )
                })?;
            // An emulated UART: the device runs the firmware's link
            // configuration, so the serial one suits this side.
            Ok(Opened {
                stream: Box::new(stream),
                config: corral_protocol::Config::serial(),
                endpoint: u.path.display().to_string(),
            })
        }
        Link::Tcp(t) => {
            let key = match &t.key_file {
                Some(path) => Some(transport::load_key_file(path).map_err(|e| e.to_string())?),
                None => None,
            };
            let stream = transport::connect_tcp(&t.address, key.as_ref())
                .await
                .map_err(|e| e.to_string())?;
            Ok(Opened {
                stream: Box::new(stream),
                config: corral_protocol::Config::stream(),
                endpoint: t.address.clone(),
            })
        }
    }
}
