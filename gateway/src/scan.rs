//! Serial port discovery for `corral scan`, and matching inventory entries
//! against the ports present.
//!
//! Ports are listed with the `serialport` crate built without its `libudev`
//! feature: on Linux it then reads the same attributes udev would report
//! (`idVendor`, `idProduct`, `serial`, `manufacturer`, `product`,
//! `bInterfaceNumber`) straight from `/sys/class/tty/*/device/..`, so the
//! gateway builds and runs without `libudev-dev`/`libudev.so` and works in
//! containers without a udev daemon. On macOS and Windows the crate uses the
//! platform APIs. We convert its answer into our own [`PortInfo`] so that the
//! rendering and matching code is tested with fixed data and does not depend
//! on the crate's feature-dependent structs.
//!
//! [`render_inventory`] prints a ready-to-paste `[[device]]` entry per USB
//! port, choosing the most stable way to find the port again: the USB serial
//! number when the device has one, otherwise vendor:product, adding the
//! interface number for multi-port adapters and falling back to the path
//! only when nothing else tells the port apart.

use std::fmt::{self, Write as _};

use crate::config::inventory::{UsbId, UsbMatch};
use crate::report::visible_text;

/// A serial port present on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    /// Device path, e.g. `/dev/ttyACM0` or `COM3`.
    pub path: String,
    /// How the port is attached.
    pub kind: PortKind,
}

/// How a serial port is attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortKind {
    /// A USB device (CDC ACM or a USB-UART adapter).
    Usb(UsbPort),
    /// A PCI card.
    Pci,
    /// A Bluetooth RFCOMM port.
    Bluetooth,
    /// Anything else (on-board UARTs, platform devices).
    Other,
}

/// What a USB serial port says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsbPort {
    /// Vendor and product id.
    pub id: UsbId,
    /// The serial number string, if the device has one.
    pub serial_number: Option<String>,
    /// The manufacturer string.
    pub manufacturer: Option<String>,
    /// The product string.
    pub product: Option<String>,
    /// The USB interface this port belongs to.
    pub interface: Option<u8>,
}

/// Why ports could not be listed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScanError {
    /// Linux without sysfs (a minimal container).
    #[error("/sys/class/tty does not exist, so serial ports cannot be listed (is sysfs mounted? inside a container, mount /sys)")]
    NoSysfs,
    /// The platform's enumeration failed.
    #[error("listing serial ports: {0}")]
    Enumerate(#[from] serialport::Error),
}

/// Lists the serial ports present, sorted by path.
pub fn scan_ports() -> Result<Vec<PortInfo>, ScanError> {
    // serialport's sysfs walker panics when the directory is missing.
    #[cfg(target_os = "linux")]
    if !std::path::Path::new("/sys/class/tty").is_dir() {
        return Err(ScanError::NoSysfs);
    }
    let mut ports: Vec<PortInfo> = serialport::available_ports()?
        .into_iter()
        .map(|p| PortInfo {
            path: p.port_name,
            kind: match p.port_type {
                serialport::SerialPortType::UsbPort(u) => PortKind::Usb(UsbPort {
                    id: UsbId {
                        vendor: u.vid,
                        product: u.pid,
                    },
                    serial_number: u.serial_number.filter(|s| !s.is_empty()),
                    manufacturer: u.manufacturer.filter(|s| !s.is_empty()),
                    product: u.product.filter(|s| !s.is_empty()),
                    interface: u.interface,
                }),
                serialport::SerialPortType::PciPort => PortKind::Pci,
                serialport::SerialPortType::BluetoothPort => PortKind::Bluetooth,
                serialport::SerialPortType::Unknown => PortKind::Other,
            },
        })
        .collect();
    ports.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(ports)
}

impl UsbMatch {
    /// Whether `port` has every property this match names.
    pub fn matches(&self, port: &PortInfo) -> bool {
        let PortKind::Usb(usb) = &port.kind else {
            return false;
        };
        self.id.is_none_or(|id| id == usb.id)
            && self
                .serial_number
                .as_ref()
                .is_none_or(|s| usb.serial_number.as_ref() == Some(s))
            && self.interface.is_none_or(|i| usb.interface == Some(i))
    }

    /// The one port in `ports` this match names.
    pub fn find<'p>(&self, ports: &'p [PortInfo]) -> Result<&'p PortInfo, FindPortError> {
        let found: Vec<&PortInfo> = ports.iter().filter(|p| self.matches(p)).collect();
        match found.as_slice() {
            [] => Err(FindPortError::NotFound {
                wanted: describe_match(self),
            }),
            [one] => Ok(one),
            many => Err(FindPortError::Ambiguous {
                wanted: describe_match(self),
                paths: many.iter().map(|p| p.path.clone()).collect(),
            }),
        }
    }
}

/// Why [`UsbMatch::find`] found no single port.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FindPortError {
    /// No port matches (unplugged, or the entry is wrong).
    #[error(
        "no serial port has {wanted} (is it plugged in? `corral scan` lists the ports present)"
    )]
    NotFound {
        /// The match, as written in the inventory.
        wanted: String,
    },
    /// Several ports match; the gateway never guesses which one.
    #[error("{} serial ports have {wanted}: {}; add usb_serial or interface to tell them apart (`corral scan` shows them)", paths.len(), paths.join(", "))]
    Ambiguous {
        /// The match, as written in the inventory.
        wanted: String,
        /// The ports that match.
        paths: Vec<String>,
    },
}

fn describe_match(m: &UsbMatch) -> String {
    let mut parts = Vec::new();
    if let Some(s) = &m.serial_number {
        parts.push(format!("usb_serial = {}", toml_string(s)));
    }
    if let Some(id) = m.id {
        parts.push(format!("usb = \"{id}\""));
    }
    if let Some(i) = m.interface {
        parts.push(format!("interface = {i}"));
    }
    parts.join(", ")
}

/// A human-readable table of ports.
pub fn render_ports(ports: &[PortInfo]) -> String {
    let rows: Vec<[String; 6]> = ports
        .iter()
        .map(|p| {
            let dash = || "-".to_string();
            let clean = |s: &Option<String>| s.as_deref().map_or_else(dash, cell);
            match &p.kind {
                PortKind::Usb(u) => [
                    cell(&p.path),
                    u.id.to_string(),
                    clean(&u.serial_number),
                    u.interface.map_or_else(dash, |i| i.to_string()),
                    clean(&u.manufacturer),
                    clean(&u.product),
                ],
                other => [
                    cell(&p.path),
                    dash(),
                    dash(),
                    dash(),
                    dash(),
                    match other {
                        PortKind::Pci => "(PCI)".into(),
                        PortKind::Bluetooth => "(Bluetooth)".into(),
                        _ => "(not USB)".into(),
                    },
                ],
            }
        })
        .collect();
    let header = ["PATH", "USB ID", "SERIAL", "IF", "MANUFACTURER", "PRODUCT"].map(String::from);
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    if ports.is_empty() {
        out.push_str("no serial ports found\n");
        return out;
    }
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, (c, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(c);
            } else {
                let pad = w - c.chars().count();
                let _ = write!(line, "{c}{:pad$}  ", "");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Ready-to-paste inventory entries: a `[[device]]` for every USB port and a
/// comment for every other port. Each entry picks the most stable way to find
/// the port again that tells it apart from every other port in `ports`.
pub fn render_inventory(ports: &[PortInfo], baud: u32) -> String {
    let mut out = String::new();
    let mut used_names: Vec<String> = Vec::new();
    for port in ports {
        let PortKind::Usb(usb) = &port.kind else {
            let _ = writeln!(
                out,
                "# {}: not a USB port; if a board is wired to it, use serial = {{ path = {} }}\n",
                cell(&port.path),
                toml_string(&port.path)
            );
            continue;
        };
        let name = suggest_name(usb, &mut used_names);
        let mut about = vec![format!("USB {}", usb.id)];
        if let Some(p) = &usb.product {
            about.push(cell(p));
        }
        if let Some(m) = &usb.manufacturer {
            about.push(format!("by {}", cell(m)));
        }
        if let Some(s) = &usb.serial_number {
            about.push(format!("serial {}", cell(s)));
        }
        if let Some(i) = usb.interface {
            about.push(format!("interface {i}"));
        }
        let _ = writeln!(out, "# {}: {}", cell(&port.path), about.join(", "));
        let selector = match choose_match(port, usb, ports) {
            Some(m) => {
                if m.serial_number.is_none() {
                    let _ = writeln!(
                        out,
                        "# No usable USB serial number: found by vendor:product, so a second identical adapter would make this ambiguous."
                    );
                }
                describe_match(&m)
            }
            None => {
                let _ = writeln!(
                    out,
                    "# Nothing USB-specific tells this port apart from another, so it is found by path, which can change on re-plug. A /dev/serial/by-path/... link is steadier."
                );
                format!("path = {}", toml_string(&port.path))
            }
        };
        let _ = writeln!(out, "[[device]]");
        let _ = writeln!(out, "name = {}", toml_string(&name));
        let _ = writeln!(out, "labels = []  # e.g. [\"board=rp2040\", \"pool=ci\"]");
        let _ = writeln!(out, "serial = {{ {selector}, baud = {baud} }}");
        out.push('\n');
    }
    if out.is_empty() {
        out.push_str("# no serial ports found\n");
    }
    out
}

/// The first of the candidate matches, from most to least stable, that names
/// exactly this port among `ports`.
fn choose_match(port: &PortInfo, usb: &UsbPort, ports: &[PortInfo]) -> Option<UsbMatch> {
    // A serial number the inventory would refuse cannot be used.
    let serial = usb
        .serial_number
        .clone()
        .filter(|s| !s.is_empty() && !s.chars().any(char::is_control));
    let mut candidates = Vec::new();
    let with = |id: bool, serial: bool, interface: bool| -> Option<UsbMatch> {
        Some(UsbMatch {
            id: id.then_some(usb.id),
            serial_number: if serial {
                Some(usb.serial_number.clone()?)
            } else {
                None
            },
            interface: if interface {
                Some(usb.interface?)
            } else {
                None
            },
        })
    };
    if serial.is_some() {
        candidates.extend([
            with(false, true, false),
            with(false, true, true),
            with(true, true, false),
            with(true, true, true),
        ]);
    }
    candidates.extend([with(true, false, false), with(true, false, true)]);
    candidates
        .into_iter()
        .flatten()
        .find(|m| matches!(m.find(ports), Ok(p) if p.path == port.path))
}

/// A device name from the product string: `pico-1`, `cp2102-usb-to-uart-1`.
fn suggest_name(usb: &UsbPort, used: &mut Vec<String>) -> String {
    // Whole words of the product string, up to 24 characters.
    let source = usb.product.as_deref().unwrap_or("serial");
    let mut slug = String::new();
    for word in source
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let word = word.to_ascii_lowercase();
        if slug.is_empty() {
            slug = word.chars().take(24).collect();
        } else if slug.len() + 1 + word.len() <= 24 {
            slug.push('-');
            slug.push_str(&word);
        } else {
            break;
        }
    }
    let slug = slug.as_str();
    let slug = if slug.is_empty() { "serial" } else { slug };
    let mut n = 1;
    loop {
        let name = format!("{slug}-{n}");
        if !used.contains(&name) {
            used.push(name.clone());
            return name;
        }
        n += 1;
    }
}

/// A TOML basic string with everything escaped that needs it.
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// Text from a device made safe for one line of a comment or table.
fn cell(s: &str) -> String {
    visible_text(s)
        .chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

impl fmt::Display for PortInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&cell(&self.path))
    }
}

#[cfg(test)]
mod tests;
