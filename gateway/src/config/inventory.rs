//! The gateway's device inventory: which devices it owns, how to reach each
//! one, how to power it, and the labels jobs select it by.
//!
//! The inventory is a TOML file. Relative paths in it are resolved against the
//! directory of the file itself, so `corral gateway --inventory lab/gw.toml`
//! works from any working directory.
//!
//! ```toml
//! [gateway]                          # optional section
//! listen = "127.0.0.1:7700"          # HTTP API; default 127.0.0.1:7700
//! token_file = "token"               # required when `listen` is not loopback
//! name = "lab-pc-3"                  # optional; shown to the coordinator
//!
//! [[device]]
//! name = "pico-1"                    # letters, digits, '.', '_', '-'
//! labels = ["board=rp2040", "pool=ci", "cap=usb"]
//! serial = { usb_serial = "E6614C311B7A2C2B", baud = 115200, dtr = "off", rts = "off" }
//! idle_power_off_after = "5m"
//! power_on = ["uhubctl", "-a", "on", "-l", "1-1", "-p", "2"]
//! power_off = ["uhubctl", "-a", "off", "-l", "1-1", "-p", "2"]
//! health_check = "jobs/health.toml"
//! recover_after = "30s"              # the recovery ladder's windows (defaults shown)
//! recovery_wait = "60s"
//! health_check_every = "1m"
//!
//! [[device]]
//! name = "rpi-1"
//! tcp = { address = "10.0.0.5:7878", key_file = "keys/rpi.key" }
//!
//! [[device]]
//! name = "qemu-1"
//! unix = { path = "/run/corral/qemu-1.sock" }      # an emulator's UART socket
//! power_on = ["boards/scripts/qemu-run.sh", "--socket", "/run/corral/qemu-1.sock"]
//! ```
//!
//! A device has exactly one link: `serial`, `tcp`, or `unix` (a Unix socket
//! served by an emulator such as QEMU's `-chardev socket,server=on`; it
//! behaves like a serial line). A serial port is found
//! by what the USB device says about itself, which survives re-plugging,
//! rather than by a `/dev` name, which does not:
//!
//! * `usb_serial = "E6614C311B7A2C2B"` — the USB serial number;
//! * `usb = "2e8a:000a"` — vendor and product id (alone, or together with
//!   `usb_serial` when serial numbers are not unique across vendors);
//! * `interface = 1` — with either of the above, picks one port of a
//!   multi-port adapter (FT2232, CP2105);
//! * `path = "/dev/ttyUSB0"` — a fixed path, for on-board UARTs, ptys and
//!   `/dev/serial/by-path/...` links; not combined with the USB keys.
//!
//! `baud` defaults to 115200. `dtr` and `rts` (`"on"` or `"off"`) set the
//! modem lines after opening; left out, the operating system's default
//! stands (on Linux opening a port raises DTR, which resets some boards).
//!
//! `power_on` and `power_off` are argv lists (no shell) run with the
//! inventory's directory as working directory. `idle_power_off_after` needs
//! `power_on`, so that an idle device that was switched off can come back.
//! `health_check` names a job file that must pass before a quarantined device
//! takes work again; [`Inventory::load`] checks that it parses. Without one,
//! a handshake and an answered ping are the health check.
//!
//! The recovery ladder (see `device::recovery`): a device that was connected
//! and has not answered for `recover_after` (default 30 s) gets a soft reset
//! over the protocol if its link is up, then a power cycle if it has
//! `power_on`, each followed by up to `recovery_wait` (default 60 s) for its
//! handshake, and is quarantined with the reason when nothing helped. A
//! latent device also gets `recovery_wait` for its handshake after every
//! power-on, so set it above the device's boot time. A quarantined device runs its health check
//! whenever it connects again, and again every `health_check_every` (default
//! one minute; a latent device is power-cycled for it) until one passes.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::de::DeTable;
use toml::Spanned;

use super::diag::{self, Collector, ConfigError, Source};
use super::label::Label;

/// Where the HTTP API listens when the inventory does not say.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7700";

/// Baud rate used when a serial link does not give one.
pub const DEFAULT_BAUD: u32 = 115_200;

/// Rates accepted for `baud`: the termios rates, the common non-POSIX ones
/// and a few that embedded tools use (31250 MIDI, 74880 ESP8266 boot ROM,
/// 250000 DMX). Anything else is far more likely a typo than a real rate.
pub const STANDARD_BAUD_RATES: &[u32] = &[
    50, 75, 110, 134, 150, 200, 300, 600, 1200, 1800, 2400, 4800, 7200, 9600, 14400, 19200, 28800,
    31250, 38400, 56000, 57600, 74880, 76800, 115200, 128000, 153600, 230400, 250000, 256000,
    460800, 500000, 576000, 921600, 1000000, 1152000, 1500000, 2000000, 2500000, 3000000, 3500000,
    4000000, 6000000, 12000000,
];

/// How long a device may stay silent before the recovery ladder starts.
pub const DEFAULT_RECOVER_AFTER: Duration = Duration::from_secs(30);

/// How long the ladder waits for a handshake after a soft reset or a power
/// cycle.
pub const DEFAULT_RECOVERY_WAIT: Duration = Duration::from_secs(60);

/// How often a quarantined device's health check is tried again.
pub const DEFAULT_HEALTH_CHECK_EVERY: Duration = Duration::from_secs(60);

/// Longest device or gateway name, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// A loaded and validated inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory {
    /// The file it was loaded from, as the caller named it.
    pub path: PathBuf,
    /// The `[gateway]` section.
    pub gateway: GatewaySettings,
    /// The devices, in file order.
    pub devices: Vec<Device>,
}

/// The `[gateway]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewaySettings {
    /// Address of the HTTP API.
    pub listen: SocketAddr,
    /// File holding the API token; always set when `listen` is not loopback.
    pub token_file: Option<PathBuf>,
    /// Name reported to the coordinator; `None` means the daemon picks one
    /// (the host name).
    pub name: Option<String>,
}

/// One device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Unique within the inventory; usable in URLs and on a command line.
    pub name: String,
    /// Sorted, without duplicates.
    pub labels: Vec<Label>,
    /// How to reach the device's agent.
    pub link: Link,
    /// Run to switch the device on (e.g. start an emulator, power a hub port).
    pub power_on: Option<Command>,
    /// Run to switch the device off.
    pub power_off: Option<Command>,
    /// Switch the device off after it has been idle this long.
    pub idle_power_off_after: Option<Duration>,
    /// A job file that must pass before a quarantined device returns to work.
    pub health_check: Option<PathBuf>,
    /// Silence after which the recovery ladder starts.
    pub recover_after: Duration,
    /// Wait for the handshake after each rung of the ladder.
    pub recovery_wait: Duration,
    /// Interval between health checks of a quarantined device.
    pub health_check_every: Duration,
}

/// How the gateway talks to a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// A serial port (USB CDC, USB-UART adapter, on-board UART, pty).
    Serial(SerialLink),
    /// A TCP connection to a `corral-agent` listening on the device.
    Tcp(TcpLink),
    /// A Unix socket an emulator serves its UART on.
    Unix(UnixLink),
}

/// A Unix-socket link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixLink {
    /// The socket, resolved against the inventory's directory.
    pub path: PathBuf,
}

/// A serial link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialLink {
    /// Which port.
    pub port: PortSelector,
    /// Line rate.
    pub baud: u32,
    /// DTR level to set after opening; `None` leaves the OS default.
    pub dtr: Option<LineLevel>,
    /// RTS level to set after opening; `None` leaves the OS default.
    pub rts: Option<LineLevel>,
}

/// How to find a serial port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortSelector {
    /// A fixed path, opened as is.
    Path(PathBuf),
    /// The port of the USB device that matches every given field.
    Usb(UsbMatch),
}

/// USB identity of a serial port. At least one of `id` and `serial_number`
/// is set; every field that is set must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsbMatch {
    /// Vendor and product id.
    pub id: Option<UsbId>,
    /// The USB serial number string.
    pub serial_number: Option<String>,
    /// The USB interface number, for adapters with several ports.
    pub interface: Option<u8>,
}

/// A USB vendor and product id, written `"2e8a:000a"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UsbId {
    /// Vendor id.
    pub vendor: u16,
    /// Product id.
    pub product: u16,
}

impl std::fmt::Display for UsbId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04x}:{:04x}", self.vendor, self.product)
    }
}

impl std::str::FromStr for UsbId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!(
                "{s:?} is not a USB vendor:product id; write four hex digits each, e.g. \"2e8a:000a\" (`corral scan` prints them)"
            )
        };
        let (v, p) = s.split_once(':').ok_or_else(bad)?;
        let hex4 = |x: &str| {
            if x.len() == 4 && x.chars().all(|c| c.is_ascii_hexdigit()) {
                u16::from_str_radix(x, 16).ok()
            } else {
                None
            }
        };
        Ok(UsbId {
            vendor: hex4(v).ok_or_else(bad)?,
            product: hex4(p).ok_or_else(bad)?,
        })
    }
}

/// Level of a modem control line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LineLevel {
    /// Asserted.
    On,
    /// Deasserted.
    Off,
}

/// A TCP link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpLink {
    /// `host:port` (`[v6addr]:port` for IPv6). Host names are resolved when
    /// connecting, so a DHCP lease change needs no inventory edit.
    pub address: String,
    /// Shared key authenticating the gateway to the agent; always set unless
    /// the address is loopback.
    pub key_file: Option<PathBuf>,
}

impl TcpLink {
    /// Whether the address is on this machine (`localhost`, 127.0.0.0/8,
    /// `::1`), where the link needs no key.
    pub fn is_loopback(&self) -> bool {
        split_host_port(&self.address).is_some_and(|(host, _)| host_is_loopback(host))
    }
}

/// A command line run by the gateway, never through a shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// Program and arguments; never empty.
    pub argv: Vec<String>,
    /// Working directory: the inventory file's directory.
    pub cwd: PathBuf,
}

/// What changed between two inventories; see [`Inventory::diff`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InventoryDiff {
    /// Whether the `[gateway]` section changed (the daemon needs a restart
    /// to listen elsewhere).
    pub gateway_changed: bool,
    /// Names of devices only in the new inventory, in its order.
    pub added: Vec<String>,
    /// Names of devices only in the old inventory, in its order.
    pub removed: Vec<String>,
    /// Devices in both whose settings differ, in the new inventory's order.
    pub changed: Vec<DeviceChange>,
}

impl InventoryDiff {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        !self.gateway_changed
            && self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
    }
}

/// A device present in both inventories with different settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceChange {
    /// The device.
    pub name: String,
    /// Which settings differ.
    pub fields: Vec<DeviceField>,
}

impl DeviceChange {
    /// Whether the link must be closed and reopened; other changes apply to
    /// a connected device in place.
    pub fn needs_relink(&self) -> bool {
        self.fields.contains(&DeviceField::Link)
    }
}

/// A setting of a [`Device`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeviceField {
    /// `labels`.
    Labels,
    /// `serial` or `tcp`.
    Link,
    /// `power_on`.
    PowerOn,
    /// `power_off`.
    PowerOff,
    /// `idle_power_off_after`.
    IdlePowerOffAfter,
    /// `health_check`.
    HealthCheck,
    /// `recover_after`, `recovery_wait` or `health_check_every`.
    Recovery,
}

impl Inventory {
    /// Reads, parses and validates the inventory at `path`, and checks that
    /// the files it names exist (`token_file`, `key_file`) and that health
    /// check jobs parse.
    pub fn load(path: &Path) -> Result<Inventory, ConfigError> {
        let text = diag::read(path)?;
        parse(path, &text, true)
    }

    /// Parses and validates inventory text as if read from `origin`, which
    /// names the file in errors and is the base of relative paths. It does
    /// not touch the file system.
    pub fn parse(text: &str, origin: &Path) -> Result<Inventory, ConfigError> {
        parse(origin, text, false)
    }

    /// The device called `name`.
    pub fn device(&self, name: &str) -> Option<&Device> {
        self.devices.iter().find(|d| d.name == name)
    }

    /// What a reload from `old` to `new` changes, by device name: a device
    /// whose settings are equal is not in the diff, so its link can stay up.
    pub fn diff(old: &Inventory, new: &Inventory) -> InventoryDiff {
        let old_by_name: HashMap<&str, &Device> =
            old.devices.iter().map(|d| (d.name.as_str(), d)).collect();
        let new_by_name: HashMap<&str, &Device> =
            new.devices.iter().map(|d| (d.name.as_str(), d)).collect();
        let mut diff = InventoryDiff {
            gateway_changed: old.gateway != new.gateway,
            ..InventoryDiff::default()
        };
        for d in &new.devices {
            match old_by_name.get(d.name.as_str()) {
                None => diff.added.push(d.name.clone()),
                Some(o) => {
                    let mut fields = Vec::new();
                    if o.labels != d.labels {
                        fields.push(DeviceField::Labels);
                    }
                    if o.link != d.link {
                        fields.push(DeviceField::Link);
                    }
                    if o.power_on != d.power_on {
                        fields.push(DeviceField::PowerOn);
                    }
                    if o.power_off != d.power_off {
                        fields.push(DeviceField::PowerOff);
                    }
                    if o.idle_power_off_after != d.idle_power_off_after {
                        fields.push(DeviceField::IdlePowerOffAfter);
                    }
                    if o.health_check != d.health_check {
                        fields.push(DeviceField::HealthCheck);
                    }
                    if (o.recover_after, o.recovery_wait, o.health_check_every)
                        != (d.recover_after, d.recovery_wait, d.health_check_every)
                    {
                        fields.push(DeviceField::Recovery);
                    }
                    if !fields.is_empty() {
                        diff.changed.push(DeviceChange {
                            name: d.name.clone(),
                            fields,
                        });
                    }
                }
            }
        }
        for d in &old.devices {
            if !new_by_name.contains_key(d.name.as_str()) {
                diff.removed.push(d.name.clone());
            }
        }
        diff
    }
}

// ---------------------------------------------------------------------------
// The file as written. Everything that validation looks at is `Spanned`, so a
// problem can be reported at its line.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInventory {
    gateway: Option<RawGateway>,
    #[serde(default)]
    device: Vec<Spanned<RawDevice>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGateway {
    listen: Option<Spanned<String>>,
    token_file: Option<Spanned<String>>,
    name: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDevice {
    name: Spanned<String>,
    #[serde(default)]
    labels: Vec<Spanned<String>>,
    serial: Option<Spanned<RawSerial>>,
    tcp: Option<Spanned<RawTcp>>,
    unix: Option<Spanned<RawUnix>>,
    power_on: Option<Spanned<Vec<String>>>,
    power_off: Option<Spanned<Vec<String>>>,
    idle_power_off_after: Option<Spanned<String>>,
    health_check: Option<Spanned<String>>,
    recover_after: Option<Spanned<String>>,
    recovery_wait: Option<Spanned<String>>,
    health_check_every: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSerial {
    path: Option<Spanned<String>>,
    usb: Option<Spanned<String>>,
    usb_serial: Option<Spanned<String>>,
    interface: Option<Spanned<u8>>,
    baud: Option<Spanned<u32>>,
    dtr: Option<LineLevel>,
    rts: Option<LineLevel>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUnix {
    path: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTcp {
    address: Spanned<String>,
    key_file: Option<Spanned<String>>,
}

/// Names a `[[device]]` element in messages: `device "pico-1"`, or `device 3`
/// when it has no usable name.
fn device_context(key: &str, index: usize, table: Option<&DeTable<'_>>) -> String {
    let name = table.and_then(|t| {
        t.iter()
            .find(|(k, _)| k.get_ref() == "name")
            .and_then(|(_, v)| v.get_ref().as_str().map(str::to_string))
    });
    match (key, name) {
        ("device", Some(n)) => format!("device {n:?}"),
        (key, _) => format!("{key} {}", index + 1),
    }
}

fn parse(origin: &Path, text: &str, check_files: bool) -> Result<Inventory, ConfigError> {
    let source = Source::new(origin, text);
    let raw: RawInventory = toml::from_str(text).map_err(|e| ConfigError::Invalid {
        diagnostics: vec![source.toml_error(&e, &device_context)],
    })?;
    let base = diag::base_dir(origin);
    let mut c = Collector::new(&source);
    let gateway = validate_gateway(&mut c, raw.gateway, &base);
    let mut devices = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, d) in raw.device.into_iter().enumerate() {
        let header = d.span();
        let d = d.into_inner();
        let ctx = if valid_name(d.name.get_ref()).is_ok() {
            format!("device {:?}", d.name.get_ref())
        } else {
            format!("device {}", i + 1)
        };
        if let Some(prev) = seen.get(d.name.get_ref()) {
            let (line, _) = source.line_col(*prev);
            c.error(
                d.name.span(),
                format!("{ctx}: name: another device on line {line} is already called that; names must be unique"),
            );
        } else {
            seen.insert(d.name.get_ref().clone(), d.name.span().start);
        }
        if let Some(dev) = validate_device(&mut c, &ctx, header, d, &base, check_files) {
            devices.push(dev);
        }
    }
    c.finish(Inventory {
        path: origin.to_path_buf(),
        gateway,
        devices,
    })
}

fn validate_gateway(
    c: &mut Collector<'_>,
    raw: Option<RawGateway>,
    base: &Path,
) -> GatewaySettings {
    let default_listen: SocketAddr = DEFAULT_LISTEN.parse().expect("constant is an address");
    let Some(raw) = raw else {
        return GatewaySettings {
            listen: default_listen,
            token_file: None,
            name: None,
        };
    };
    let listen = match &raw.listen {
        None => default_listen,
        Some(l) => match l.get_ref().parse::<SocketAddr>() {
            Ok(a) => a,
            Err(_) => {
                c.error(
                    l.span(),
                    format!(
                        "gateway.listen: {:?} is not an IP address and port; write e.g. \"127.0.0.1:7700\" (local only) or \"0.0.0.0:7700\" (all interfaces, needs token_file)",
                        l.get_ref()
                    ),
                );
                default_listen
            }
        },
    };
    let token_file = raw.token_file.as_ref().map(|t| {
        if t.get_ref().is_empty() {
            c.error(
                t.span(),
                "gateway.token_file: is empty; give the path of the file holding the API token"
                    .into(),
            );
        }
        diag::resolve(base, t.get_ref())
    });
    if !listen.ip().is_loopback() && token_file.is_none() {
        let span = raw.listen.as_ref().map(Spanned::span).unwrap_or(0..0);
        c.error(
            span,
            format!(
                "gateway.listen: {listen} is reachable from other machines, so token_file is required (a file holding the API token); or listen on 127.0.0.1:{} to keep the API local",
                listen.port()
            ),
        );
    }
    let name = raw.name.map(|n| {
        if let Err(why) = valid_name(n.get_ref()) {
            c.error(n.span(), format!("gateway.name: {why}"));
        }
        n.into_inner()
    });
    GatewaySettings {
        listen,
        token_file,
        name,
    }
}

fn validate_device(
    c: &mut Collector<'_>,
    ctx: &str,
    header: std::ops::Range<usize>,
    d: RawDevice,
    base: &Path,
    check_files: bool,
) -> Option<Device> {
    let errors_before = c.diagnostics.len();
    if let Err(why) = valid_name(d.name.get_ref()) {
        c.error(d.name.span(), format!("{ctx}: name: {why}"));
    }

    let mut labels = Vec::new();
    for l in &d.labels {
        match l.get_ref().parse::<Label>() {
            Ok(label) if labels.contains(&label) => c.error(
                l.span(),
                format!(
                    "{ctx}: labels: {label:?} is given twice",
                    label = l.get_ref()
                ),
            ),
            Ok(label) => labels.push(label),
            Err(e) => c.error(l.span(), format!("{ctx}: labels: {e}")),
        }
    }
    labels.sort();

    let link = match (d.serial, d.tcp, d.unix) {
        (None, None, None) => {
            c.error(
                header,
                format!("{ctx}: no link: add serial = {{ usb_serial = \"...\" }}, tcp = {{ address = \"host:port\" }} or unix = {{ path = \"...\" }} (`corral scan` prints serial entries)"),
            );
            None
        }
        (Some(s), None, None) => validate_serial(c, ctx, s, base).map(Link::Serial),
        (None, Some(t), None) => validate_tcp(c, ctx, t, base, check_files).map(Link::Tcp),
        (None, None, Some(u)) => {
            let span = u.span();
            let path = u.into_inner().path;
            if path.get_ref().is_empty() {
                c.error(
                    span,
                    format!("{ctx}: unix.path: is empty; give the socket's path"),
                );
                None
            } else {
                Some(Link::Unix(UnixLink {
                    path: diag::resolve(base, path.get_ref()),
                }))
            }
        }
        (serial, tcp, unix) => {
            let span = [
                serial.map(|s| s.span()),
                tcp.map(|t| t.span()),
                unix.map(|u| u.span()),
            ]
            .into_iter()
            .flatten()
            .nth(1)
            .unwrap_or(header);
            c.error(
                span,
                format!("{ctx}: give one link (serial, tcp or unix), not several"),
            );
            None
        }
    };

    let mut command = |field: &str, argv: Option<Spanned<Vec<String>>>| {
        let argv = argv?;
        let span = argv.span();
        let argv = argv.into_inner();
        if argv.is_empty() || argv[0].is_empty() {
            c.error(span, format!("{ctx}: {field}: give the program and its arguments, e.g. [\"uhubctl\", \"-a\", \"on\", \"-p\", \"2\"]"));
        } else if argv.iter().any(|a| a.contains('\0')) {
            c.error(
                span,
                format!("{ctx}: {field}: arguments cannot contain NUL characters"),
            );
        }
        Some(Command {
            argv,
            cwd: base.to_path_buf(),
        })
    };
    let power_on = command("power_on", d.power_on);
    let power_off = command("power_off", d.power_off);

    let idle_power_off_after = d.idle_power_off_after.and_then(|t| {
        match diag::parse_duration(t.get_ref()) {
            Ok(v) => {
                if power_on.is_none() {
                    c.error(t.span(), format!("{ctx}: idle_power_off_after: needs power_on, or the device could not be switched on again"));
                }
                Some(v)
            }
            Err(why) => {
                c.error(t.span(), format!("{ctx}: idle_power_off_after: {why}"));
                None
            }
        }
    });

    let health_check = d.health_check.map(|h| {
        let path = diag::resolve(base, h.get_ref());
        if h.get_ref().is_empty() {
            c.error(
                h.span(),
                format!("{ctx}: health_check: is empty; give the path of a job file"),
            );
        } else if check_files {
            if let Err(e) = super::job::Job::load(&path) {
                let detail = e.to_string().replace('\n', "\n    ");
                c.error(
                    h.span(),
                    format!(
                        "{ctx}: health_check: job {} is not usable:\n    {detail}",
                        path.display()
                    ),
                );
            }
        }
        path
    });

    let mut window = |field: &str, raw: Option<Spanned<String>>, default: Duration| {
        let Some(t) = raw else { return default };
        match diag::parse_duration(t.get_ref()) {
            Ok(v) => v,
            Err(why) => {
                c.error(t.span(), format!("{ctx}: {field}: {why}"));
                default
            }
        }
    };
    let recover_after = window("recover_after", d.recover_after, DEFAULT_RECOVER_AFTER);
    let recovery_wait = window("recovery_wait", d.recovery_wait, DEFAULT_RECOVERY_WAIT);
    let health_check_every = window(
        "health_check_every",
        d.health_check_every,
        DEFAULT_HEALTH_CHECK_EVERY,
    );

    if c.diagnostics.len() > errors_before {
        return None;
    }
    Some(Device {
        name: d.name.into_inner(),
        labels,
        link: link?,
        power_on,
        power_off,
        idle_power_off_after,
        health_check,
        recover_after,
        recovery_wait,
        health_check_every,
    })
}

fn validate_serial(
    c: &mut Collector<'_>,
    ctx: &str,
    s: Spanned<RawSerial>,
    base: &Path,
) -> Option<SerialLink> {
    let span = s.span();
    let s = s.into_inner();
    let errors_before = c.diagnostics.len();

    let baud = match &s.baud {
        None => DEFAULT_BAUD,
        Some(b) => {
            let rate = *b.get_ref();
            if !STANDARD_BAUD_RATES.contains(&rate) {
                let text = rate.to_string();
                let strings: Vec<String> = STANDARD_BAUD_RATES.iter().map(u32::to_string).collect();
                let hint = match diag::closest(&text, strings.iter().map(String::as_str)) {
                    Some(best) => format!("did you mean {best}?"),
                    None => "common rates are 9600, 115200, 460800 and 921600".to_string(),
                };
                c.error(
                    b.span(),
                    format!("{ctx}: serial.baud: {rate} is not a standard baud rate ({hint})"),
                );
            }
            rate
        }
    };

    let usb_keys = s.usb.is_some() || s.usb_serial.is_some() || s.interface.is_some();
    let port = match &s.path {
        Some(p) if usb_keys => {
            c.error(p.span(), format!("{ctx}: serial.path: give either path or the USB keys (usb, usb_serial, interface), not both"));
            None
        }
        Some(p) if p.get_ref().is_empty() => {
            c.error(
                p.span(),
                format!("{ctx}: serial.path: is empty; give e.g. \"/dev/ttyACM0\""),
            );
            None
        }
        Some(p) => Some(PortSelector::Path(diag::resolve(base, p.get_ref()))),
        None => {
            if s.usb.is_none() && s.usb_serial.is_none() {
                let why = if s.interface.is_some() {
                    "interface needs usb or usb_serial to say which adapter"
                } else {
                    "say which port: usb_serial = \"...\", usb = \"vvvv:pppp\" or path = \"/dev/...\" (`corral scan` lists them)"
                };
                c.error(span, format!("{ctx}: serial: {why}"));
                None
            } else {
                let id = s
                    .usb
                    .as_ref()
                    .and_then(|u| match u.get_ref().parse::<UsbId>() {
                        Ok(id) => Some(id),
                        Err(why) => {
                            c.error(u.span(), format!("{ctx}: serial.usb: {why}"));
                            None
                        }
                    });
                let serial_number = s.usb_serial.as_ref().map(|n| {
                    let v = n.get_ref();
                    if v.is_empty() || v.chars().any(char::is_control) {
                        c.error(n.span(), format!("{ctx}: serial.usb_serial: {v:?} cannot be a USB serial number (empty or control characters)"));
                    }
                    v.clone()
                });
                Some(PortSelector::Usb(UsbMatch {
                    id,
                    serial_number,
                    interface: s.interface.as_ref().map(|i| *i.get_ref()),
                }))
            }
        }
    };
    if c.diagnostics.len() > errors_before {
        return None;
    }
    Some(SerialLink {
        port: port?,
        baud,
        dtr: s.dtr,
        rts: s.rts,
    })
}

fn validate_tcp(
    c: &mut Collector<'_>,
    ctx: &str,
    t: Spanned<RawTcp>,
    base: &Path,
    check_files: bool,
) -> Option<TcpLink> {
    let t = t.into_inner();
    let errors_before = c.diagnostics.len();
    let address = t.address.get_ref().clone();
    let loopback = match split_host_port(&address) {
        Some((host, _)) => host_is_loopback(host),
        None => {
            c.error(
                t.address.span(),
                format!("{ctx}: tcp.address: {address:?} is not host:port; write e.g. \"10.0.0.5:7878\", \"rpi-3.lab:7878\" or \"[fd00::5]:7878\""),
            );
            true
        }
    };
    let key_file = match &t.key_file {
        Some(k) if k.get_ref().is_empty() => {
            c.error(
                k.span(),
                format!("{ctx}: tcp.key_file: is empty; give the path of the link key"),
            );
            None
        }
        Some(k) => {
            let path = diag::resolve(base, k.get_ref());
            if check_files && !path.is_file() {
                c.error(
                    k.span(),
                    format!(
                        "{ctx}: tcp.key_file: {} does not exist or is not a file",
                        path.display()
                    ),
                );
            }
            Some(path)
        }
        None if !loopback => {
            c.error(
                t.address.span(),
                format!("{ctx}: tcp: {address} is not on this machine, so key_file is required (the key the agent was started with)"),
            );
            None
        }
        None => None,
    };
    if c.diagnostics.len() > errors_before {
        return None;
    }
    Some(TcpLink { address, key_file })
}

/// Whether `name` can name a device or gateway: it appears in URLs, file
/// names and command lines, so it is kept to a safe alphabet.
pub(crate) fn valid_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!("{name:?} is longer than {MAX_NAME_LEN} bytes"));
    }
    if name == "." || name == ".." {
        return Err(format!("{name:?} is not a usable name"));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "{name:?} contains {bad:?}; use only letters, digits, '.', '_' and '-' (it appears in URLs and on command lines)"
        ));
    }
    Ok(())
}

/// Splits `host:port` / `[v6]:port`; `None` if malformed or the port is 0.
fn split_host_port(address: &str) -> Option<(&str, u16)> {
    let (host, port) = if let Some(rest) = address.strip_prefix('[') {
        let (host, rest) = rest.split_once(']')?;
        (host, rest.strip_prefix(':')?)
    } else {
        let (host, port) = address.rsplit_once(':')?;
        if host.contains(':') {
            // A bare IPv6 address: the port is ambiguous without brackets.
            return None;
        }
        (host, port)
    };
    let port: u16 = port.parse().ok()?;
    if host.is_empty() || port == 0 || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    Some((host, port))
}

fn host_is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests;
