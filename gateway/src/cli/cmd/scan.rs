//! `corral scan`.

use crate::cli::{exit, CmdResult, Failure};
use crate::scan::{render_inventory, render_ports, scan_ports, PortKind};
use serde_json::json;

/// List serial ports with their USB identity, and inventory entries for them.
///
/// For each port: what its USB device says about itself (vendor:product id,
/// serial number, interface, manufacturer, product); then a ready-to-paste
/// `[[device]]` inventory entry for each USB port.
///
/// The entries find the port by its USB identity, which survives
/// re-plugging, rather than by /dev/ttyACMn, which does not.
#[derive(clap::Args, Debug)]
#[command(after_help = crate::exit_codes!())]
pub struct Cmd {
    /// Line rate written into the inventory entries.
    #[arg(long, default_value_t = crate::config::inventory::DEFAULT_BAUD)]
    pub baud: u32,
    /// Print JSON: {"ports": [...], "inventory": "..."}.
    #[arg(long)]
    pub json: bool,
}

/// Lists the ports.
pub fn run(cmd: Cmd) -> CmdResult {
    let ports = scan_ports().map_err(|e| Failure::refused(e.to_string()))?;
    let inventory = render_inventory(&ports, cmd.baud);
    if cmd.json {
        let list: Vec<_> = ports
            .iter()
            .map(|p| match &p.kind {
                PortKind::Usb(u) => json!({
                    "path": p.path,
                    "kind": "usb",
                    "usb": {
                        "id": u.id.to_string(),
                        "serial_number": u.serial_number,
                        "interface": u.interface,
                        "manufacturer": u.manufacturer,
                        "product": u.product,
                    },
                }),
                PortKind::Pci => json!({"path": p.path, "kind": "pci"}),
                PortKind::Bluetooth => json!({"path": p.path, "kind": "bluetooth"}),
                _ => json!({"path": p.path, "kind": "other"}),
            })
            .collect();
        let doc = json!({ "ports": list, "inventory": inventory });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        return Ok(exit::OK);
    }
    print!("{}", render_ports(&ports));
    if !inventory.trim().is_empty() {
        println!("\n# Inventory entries (paste into gateway.toml):\n");
        print!("{inventory}");
    }
    Ok(exit::OK)
}
