use std::path::Path;

use super::*;
use crate::config::inventory::{Link, PortSelector};
use crate::config::Inventory;

fn usb(
    path: &str,
    id: &str,
    serial: Option<&str>,
    product: Option<&str>,
    interface: Option<u8>,
) -> PortInfo {
    PortInfo {
        path: path.into(),
        kind: PortKind::Usb(UsbPort {
            id: id.parse().unwrap(),
            serial_number: serial.map(Into::into),
            manufacturer: Some("Maker".into()),
            product: product.map(Into::into),
            interface,
        }),
    }
}

/// A lab bench: a Pico, a two-port FTDI, two identical serial-less CH340s, a
/// lone CP2102 without a serial number, two boards from different vendors
/// that both claim serial "0001", a device with hostile strings, and an
/// on-board UART.
fn bench() -> Vec<PortInfo> {
    vec![
        usb(
            "/dev/ttyACM0",
            "2e8a:000a",
            Some("E6614C311B7A2C2B"),
            Some("Pico"),
            Some(0),
        ),
        usb(
            "/dev/ttyACM1",
            "0483:5740",
            Some("0001"),
            Some("STM32 Virtual ComPort"),
            Some(0),
        ),
        usb(
            "/dev/ttyACM2",
            "1209:0001",
            Some("0001"),
            Some("pid.codes Test PID"),
            Some(0),
        ),
        usb(
            "/dev/ttyACM3",
            "cafe:4001",
            Some("A\"B\\C"),
            Some("Evil\n\u{1b}[2J board"),
            Some(0),
        ),
        usb(
            "/dev/ttyUSB0",
            "0403:6010",
            Some("FT4ABC12"),
            Some("Dual RS232-HS"),
            Some(0),
        ),
        usb(
            "/dev/ttyUSB1",
            "0403:6010",
            Some("FT4ABC12"),
            Some("Dual RS232-HS"),
            Some(1),
        ),
        usb(
            "/dev/ttyUSB2",
            "1a86:7523",
            None,
            Some("USB Serial"),
            Some(0),
        ),
        usb(
            "/dev/ttyUSB3",
            "1a86:7523",
            None,
            Some("USB Serial"),
            Some(0),
        ),
        usb(
            "/dev/ttyUSB4",
            "10c4:ea60",
            None,
            Some("CP2102 USB to UART Bridge Controller"),
            Some(0),
        ),
        PortInfo {
            path: "/dev/ttyS0".into(),
            kind: PortKind::Other,
        },
    ]
}

#[test]
fn rendered_entries_parse_and_each_finds_exactly_its_port() {
    let ports = bench();
    let text = render_inventory(&ports, 115200);
    let inv = Inventory::parse(&text, Path::new("/lab/gateway.toml"))
        .unwrap_or_else(|e| panic!("rendered inventory does not load:\n{e}\n---\n{text}"));
    assert_eq!(inv.devices.len(), 9, "one entry per USB port:\n{text}");
    for (device, port) in inv.devices.iter().zip(ports.iter()) {
        let Link::Serial(link) = &device.link else {
            panic!()
        };
        assert_eq!(link.baud, 115200);
        match &link.port {
            PortSelector::Usb(m) => {
                assert_eq!(m.find(&ports).unwrap().path, port.path, "{device:?}")
            }
            PortSelector::Path(p) => assert_eq!(p.to_str().unwrap(), port.path),
        }
    }
}

#[test]
fn entries_prefer_the_most_stable_selector() {
    let text = render_inventory(&bench(), 115200);
    let selectors: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("serial = { "))
        .collect();
    assert_eq!(
        selectors,
        [
            "usb_serial = \"E6614C311B7A2C2B\", baud = 115200 }",
            // Two vendors use "0001": the vendor:product tells them apart.
            "usb_serial = \"0001\", usb = \"0483:5740\", baud = 115200 }",
            "usb_serial = \"0001\", usb = \"1209:0001\", baud = 115200 }",
            // Quotes and backslashes are written so TOML reads them back.
            "usb_serial = 'A\"B\\C', baud = 115200 }",
            // One adapter, two ports: the interface tells them apart.
            "usb_serial = \"FT4ABC12\", interface = 0, baud = 115200 }",
            "usb_serial = \"FT4ABC12\", interface = 1, baud = 115200 }",
            // Identical adapters without serial numbers: only the path is left.
            "path = \"/dev/ttyUSB2\", baud = 115200 }",
            "path = \"/dev/ttyUSB3\", baud = 115200 }",
            "usb = \"10c4:ea60\", baud = 115200 }",
        ]
    );
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("name = "))
        .collect();
    assert_eq!(
        names,
        [
            "\"pico-1\"",
            "\"stm32-virtual-comport-1\"",
            "\"pid-codes-test-pid-1\"",
            "\"evil-2j-board-1\"",
            "\"dual-rs232-hs-1\"",
            "\"dual-rs232-hs-2\"",
            "\"usb-serial-1\"",
            "\"usb-serial-2\"",
            "\"cp2102-usb-to-uart-1\"",
        ]
    );
}

#[test]
fn one_entry_in_full() {
    let text = render_inventory(&bench()[..1], 921600);
    assert_eq!(
        text,
        "\
# /dev/ttyACM0: USB 2e8a:000a, Pico, by Maker, serial E6614C311B7A2C2B, interface 0
[[device]]
name = \"pico-1\"
labels = []  # e.g. [\"board=rp2040\", \"pool=ci\"]
serial = { usb_serial = \"E6614C311B7A2C2B\", baud = 921600 }

"
    );
}

#[test]
fn device_strings_cannot_break_out_of_comments() {
    let text = render_inventory(&bench()[3..4], 115200);
    assert_eq!(
        text.lines().next().unwrap(),
        "# /dev/ttyACM3: USB cafe:4001, Evil\u{fffd}\u{241b}[2J board, by Maker, serial A\"B\\C, interface 0"
    );
    assert!(!text.contains('\u{1b}'));
}

#[test]
fn fallbacks_are_explained() {
    let text = render_inventory(&bench(), 115200);
    assert!(text.contains("# /dev/ttyS0: not a USB port; if a board is wired to it, use serial = { path = \"/dev/ttyS0\" }\n"));
    assert!(text.contains(
        "# Nothing USB-specific tells this port apart from another, so it is found by path"
    ));
    assert!(text.contains("# No usable USB serial number: found by vendor:product"));
    assert_eq!(render_inventory(&[], 115200), "# no serial ports found\n");
}

#[test]
fn port_table() {
    let ports = bench();
    let text = render_ports(&[ports[0].clone(), ports[6].clone(), ports[9].clone()]);
    assert_eq!(
        text,
        "\
PATH          USB ID     SERIAL            IF  MANUFACTURER  PRODUCT
/dev/ttyACM0  2e8a:000a  E6614C311B7A2C2B  0   Maker         Pico
/dev/ttyUSB2  1a86:7523  -                 0   Maker         USB Serial
/dev/ttyS0    -          -                 -   -             (not USB)
"
    );
    assert_eq!(render_ports(&[]), "no serial ports found\n");
}

#[test]
fn find_reports_missing_and_ambiguous_ports() {
    let ports = bench();
    let m = |id: Option<&str>, serial: Option<&str>, interface: Option<u8>| UsbMatch {
        id: id.map(|s| s.parse().unwrap()),
        serial_number: serial.map(Into::into),
        interface,
    };
    assert_eq!(
        m(None, Some("FT4ABC12"), Some(1))
            .find(&ports)
            .unwrap()
            .path,
        "/dev/ttyUSB1"
    );
    assert_eq!(
        m(None, Some("NOPE"), None).find(&ports).unwrap_err().to_string(),
        "no serial port has usb_serial = \"NOPE\" (is it plugged in? `corral scan` lists the ports present)"
    );
    assert_eq!(
        m(None, Some("FT4ABC12"), None).find(&ports).unwrap_err().to_string(),
        "2 serial ports have usb_serial = \"FT4ABC12\": /dev/ttyUSB0, /dev/ttyUSB1; add usb_serial or interface to tell them apart (`corral scan` shows them)"
    );
    assert!(
        !m(Some("2e8a:000a"), None, None).matches(&ports[9]),
        "non-USB ports never match"
    );
}

#[test]
fn scanning_this_machine_lists_only_existing_devices() {
    // There is no serial hardware here, but the scan must not fail, and every
    // port it reports must exist.
    let ports = scan_ports().expect("listing ports works without libudev");
    for p in &ports {
        assert!(Path::new(&p.path).exists(), "{} does not exist", p.path);
    }
    let mut sorted = ports.clone();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(ports, sorted);
}
