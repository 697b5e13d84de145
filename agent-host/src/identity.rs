//! Who this agent says it is: the strings of the `DeviceInfo` reply.
//!
//! Defaults come from the machine so that an agent started without options
//! still tells devices apart: the host name, `linux-<machine>` from `uname`,
//! and `/etc/machine-id` (stable across reboots, unique per installation).
//! Each can be overridden on the command line, e.g. when several agents run
//! on one PC for several boards.

use std::path::Path;

/// The identity strings an agent reports in `DeviceInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The device's name (`--name`, default: the host name).
    pub name: String,
    /// Board or machine type, e.g. `linux-x86_64` or `linux-aarch64`.
    pub board: String,
    /// Serial number (`--serial-number`, default: `/etc/machine-id`).
    pub serial: String,
    /// `corral-agent <version>`.
    pub firmware: String,
}

impl Identity {
    /// The identity of this machine, with `name` and `serial` overriding the
    /// discovered values when given.
    pub fn discover(name: Option<String>, serial: Option<String>) -> Self {
        let uname = rustix::system::uname();
        let sysname = uname.sysname().to_string_lossy().to_lowercase();
        let machine = uname.machine().to_string_lossy().into_owned();
        let name = name.unwrap_or_else(|| uname.nodename().to_string_lossy().into_owned());
        let serial = serial.unwrap_or_else(machine_id);
        Identity {
            name,
            board: format!("{sysname}-{machine}"),
            serial,
            firmware: concat!("corral-agent ", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }
}

/// The machine id systemd (or D-Bus on older systems) keeps, or an empty
/// string on systems that have neither.
fn machine_id() -> String {
    for path in ["/etc/machine-id", "/var/lib/dbus/machine-id"] {
        if let Some(id) = read_trimmed(Path::new(path)) {
            return id;
        }
    }
    tracing::debug!("no machine id found; reporting an empty serial number");
    String::new()
}

fn read_trimmed(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_win_and_defaults_are_filled() {
        let id = Identity::discover(Some("bench-3".into()), Some("SN42".into()));
        assert_eq!(id.name, "bench-3");
        assert_eq!(id.serial, "SN42");
        assert!(id.board.contains('-'), "board {:?}", id.board);
        assert!(id.firmware.starts_with("corral-agent "));
        let id = Identity::discover(None, None);
        assert!(!id.name.is_empty());
    }
}
