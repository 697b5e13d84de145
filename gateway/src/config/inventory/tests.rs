use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

fn parse(text: &str) -> Result<Inventory, ConfigError> {
    Inventory::parse(text, Path::new("/lab/gateway.toml"))
}

/// The messages a user sees, one per problem.
fn errors(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e.diagnostics().iter().map(ToString::to_string).collect(),
    }
}

fn error(text: &str) -> String {
    let e = errors(text);
    assert_eq!(e.len(), 1, "expected one error, got {e:#?}");
    e.into_iter().next().unwrap()
}

const FULL: &str = r#"
[gateway]
listen = "0.0.0.0:7700"
token_file = "token"
name = "lab-pc-3"

[[device]]
name = "pico-1"
labels = ["pool=ci", "board=rp2040", "cap=usb"]
serial = { usb_serial = "E6614C311B7A2C2B", baud = 921600, dtr = "off", rts = "on" }
power_on = ["uhubctl", "-a", "on", "-p", "2"]
power_off = ["uhubctl", "-a", "off", "-p", "2"]
idle_power_off_after = "5m"
health_check = "jobs/health.toml"

[[device]]
name = "ftdi-b"
serial = { usb = "0403:6010", usb_serial = "FT12345", interface = 1 }

[[device]]
name = "uart0"
serial = { path = "/dev/ttyAMA0" }

[[device]]
name = "qemu-lm3s"
labels = ["board=lm3s6965", "emulated"]
tcp = { address = "127.0.0.1:4444" }
power_on = ["qemu-system-arm", "-M", "lm3s6965evb"]

[[device]]
name = "rpi-1"
tcp = { address = "10.0.0.5:7878", key_file = "keys/rpi.key" }
"#;

#[test]
fn full_example_loads_with_paths_resolved_against_the_file() {
    let inv = parse(FULL).unwrap();
    assert_eq!(inv.gateway.listen, "0.0.0.0:7700".parse().unwrap());
    assert_eq!(inv.gateway.token_file, Some(PathBuf::from("/lab/token")));
    assert_eq!(inv.gateway.name.as_deref(), Some("lab-pc-3"));
    assert_eq!(inv.devices.len(), 5);

    let pico = inv.device("pico-1").unwrap();
    let labels: Vec<String> = pico.labels.iter().map(ToString::to_string).collect();
    assert_eq!(labels, ["board=rp2040", "cap=usb", "pool=ci"], "sorted");
    assert_eq!(
        pico.link,
        Link::Serial(SerialLink {
            port: PortSelector::Usb(UsbMatch {
                id: None,
                serial_number: Some("E6614C311B7A2C2B".into()),
                interface: None,
            }),
            baud: 921600,
            dtr: Some(LineLevel::Off),
            rts: Some(LineLevel::On),
        })
    );
    assert_eq!(
        pico.power_on,
        Some(Command {
            argv: vec![
                "uhubctl".into(),
                "-a".into(),
                "on".into(),
                "-p".into(),
                "2".into()
            ],
            cwd: PathBuf::from("/lab"),
        })
    );
    assert_eq!(pico.idle_power_off_after, Some(Duration::from_secs(300)));
    assert_eq!(
        pico.health_check,
        Some(PathBuf::from("/lab/jobs/health.toml"))
    );

    let Link::Serial(ftdi) = &inv.device("ftdi-b").unwrap().link else {
        panic!()
    };
    assert_eq!(
        ftdi.port,
        PortSelector::Usb(UsbMatch {
            id: Some(UsbId {
                vendor: 0x0403,
                product: 0x6010
            }),
            serial_number: Some("FT12345".into()),
            interface: Some(1),
        })
    );
    assert_eq!(ftdi.baud, DEFAULT_BAUD);
    assert_eq!((ftdi.dtr, ftdi.rts), (None, None));

    let Link::Serial(uart) = &inv.device("uart0").unwrap().link else {
        panic!()
    };
    assert_eq!(uart.port, PortSelector::Path("/dev/ttyAMA0".into()));

    let Link::Tcp(qemu) = &inv.device("qemu-lm3s").unwrap().link else {
        panic!()
    };
    assert!(qemu.is_loopback());
    assert_eq!(qemu.key_file, None);

    let Link::Tcp(rpi) = &inv.device("rpi-1").unwrap().link else {
        panic!()
    };
    assert!(!rpi.is_loopback());
    assert_eq!(rpi.key_file, Some(PathBuf::from("/lab/keys/rpi.key")));
}

#[test]
fn gateway_section_is_optional_and_defaults_to_loopback() {
    let inv = parse("[[device]]\nname = \"a\"\nserial = { path = \"/dev/ttyACM0\" }\n").unwrap();
    assert_eq!(inv.gateway.listen, DEFAULT_LISTEN.parse().unwrap());
    assert_eq!(inv.gateway.token_file, None);
    assert!(parse("").unwrap().devices.is_empty());
}

#[test]
fn unknown_key_names_device_table_and_suggests_the_right_one() {
    assert_eq!(
        error("[[device]]\nname = \"pico-1\"\nserial = { usb_serial = \"X\", baudd = 115200 }\n"),
        "/lab/gateway.toml:3:30: device \"pico-1\": serial: unknown field `baudd`, expected one of `path`, `usb`, `usb_serial`, `interface`, `baud`, `dtr`, `rts` (did you mean `baud`?)"
    );
    // Also when the table is written with its own header.
    assert_eq!(
        error("[[device]]\nname = \"pico-1\"\n[device.serial]\nusb_serial = \"X\"\nbaudd = 115200\n"),
        "/lab/gateway.toml:5:1: device \"pico-1\": serial: unknown field `baudd`, expected one of `path`, `usb`, `usb_serial`, `interface`, `baud`, `dtr`, `rts` (did you mean `baud`?)"
    );
    assert_eq!(
        error("[[device]]\nname = \"a\"\nserial = { path = \"/dev/x\" }\n\n[[device]]\nname = \"b\"\nlabel = [\"x\"]\n"),
        "/lab/gateway.toml:7:1: device \"b\": unknown field `label`, expected one of `name`, `labels`, `serial`, `tcp`, `unix`, `power_on`, `power_off`, `idle_power_off_after`, `health_check`, `recover_after`, `recovery_wait`, `health_check_every` (did you mean `labels`?)"
    );
    assert_eq!(
        error("[gateway]\nlisten = \"127.0.0.1:7700\"\ntoken = \"x\"\n"),
        "/lab/gateway.toml:3:1: gateway: unknown field `token`, expected one of `listen`, `token_file`, `name`"
    );
    assert_eq!(
        error("[gatway]\n"),
        "/lab/gateway.toml:1:2: unknown field `gatway`, expected `gateway` or `device` (did you mean `gateway`?)"
    );
}

#[test]
fn wrong_types_name_the_key() {
    assert_eq!(
        error("[[device]]\nname = \"pico-1\"\nserial = { usb_serial = \"X\", baud = \"fast\" }\n"),
        "/lab/gateway.toml:3:37: device \"pico-1\": serial.baud: invalid type: string \"fast\", expected u32"
    );
    assert_eq!(
        error("[[device]]\nname = \"pico-1\"\nserial = { path = \"/dev/x\", dtr = \"of\" }\n"),
        "/lab/gateway.toml:3:35: device \"pico-1\": serial.dtr: unknown variant `of`, expected `on` or `off` (did you mean `on`?)"
    );
    assert_eq!(
        error("[[device]]\nserial = { path = \"/dev/x\" }\n"),
        "/lab/gateway.toml:1:1: device 1: missing field `name`"
    );
    assert_eq!(
        error("[[device]]\nname = \"a\"\nserial = { path = \"/dev/x\" }\npower_on = \"qemu-system-arm -M x\"\n"),
        "/lab/gateway.toml:4:12: device \"a\": power_on: invalid type: string \"qemu-system-arm -M x\", expected a sequence"
    );
}

#[test]
fn syntax_errors_have_a_position() {
    assert_eq!(
        error("[[device]\nname = \"a\"\n"),
        "/lab/gateway.toml:1:10: unclosed array table, expected `]`"
    );
    assert_eq!(
        error("[[device]]\nname = \"a\"\nname = \"b\"\n"),
        "/lab/gateway.toml:3:1: device \"a\": duplicate key"
    );
}

#[test]
fn baud_typo_suggests_the_standard_rate() {
    assert_eq!(
        error("[[device]]\nname = \"pico-1\"\nserial = { usb_serial = \"X\", baud = 11520 }\n"),
        "/lab/gateway.toml:3:37: device \"pico-1\": serial.baud: 11520 is not a standard baud rate (did you mean 115200?)"
    );
    assert_eq!(
        error("[[device]]\nname = \"pico-1\"\nserial = { usb_serial = \"X\", baud = 1 }\n"),
        "/lab/gateway.toml:3:37: device \"pico-1\": serial.baud: 1 is not a standard baud rate (common rates are 9600, 115200, 460800 and 921600)"
    );
    for rate in [9600, 74880, 115200, 1000000] {
        let text =
            format!("[[device]]\nname = \"a\"\nserial = {{ usb_serial = \"X\", baud = {rate} }}\n");
        assert!(parse(&text).is_ok(), "{rate} is a real rate");
    }
}

#[test]
fn names_must_be_unique_and_url_safe() {
    assert_eq!(
        error("[[device]]\nname = \"pico 1\"\nserial = { path = \"/dev/x\" }\n"),
        "/lab/gateway.toml:2:8: device 1: name: \"pico 1\" contains ' '; use only letters, digits, '.', '_' and '-' (it appears in URLs and on command lines)"
    );
    assert_eq!(
        error("[[device]]\nname = \"a\"\nserial = { path = \"/dev/x\" }\n[[device]]\nname = \"a\"\nserial = { path = \"/dev/y\" }\n"),
        "/lab/gateway.toml:5:8: device \"a\": name: another device on line 2 is already called that; names must be unique"
    );
    assert!(
        error("[[device]]\nname = \"..\"\nserial = { path = \"/dev/x\" }\n")
            .contains("\"..\" is not a usable name")
    );
    assert!(error("[gateway]\nname = \"lab/pc\"\n")
        .starts_with("/lab/gateway.toml:2:8: gateway.name: \"lab/pc\" contains '/'"));
}

#[test]
fn exactly_one_link() {
    assert_eq!(
        error("[[device]]\nname = \"a\"\n"),
        "/lab/gateway.toml:1:1: device \"a\": no link: add serial = { usb_serial = \"...\" }, tcp = { address = \"host:port\" } or unix = { path = \"...\" } (`corral scan` prints serial entries)"
    );
    assert_eq!(
        error("[[device]]\nname = \"a\"\nserial = { path = \"/dev/x\" }\ntcp = { address = \"127.0.0.1:1\" }\n"),
        "/lab/gateway.toml:4:7: device \"a\": give one link (serial, tcp or unix), not several"
    );
    let inv = Inventory::parse(
        "[[device]]\nname = \"qemu\"\nunix = { path = \"run/qemu.sock\" }\n",
        Path::new("/lab/gateway.toml"),
    )
    .unwrap();
    assert_eq!(
        inv.devices[0].link,
        Link::Unix(UnixLink {
            path: PathBuf::from("/lab/run/qemu.sock")
        })
    );
}

#[test]
fn serial_port_selection_rules() {
    assert_eq!(
        error("[[device]]\nname = \"a\"\nserial = { baud = 9600 }\n"),
        "/lab/gateway.toml:3:10: device \"a\": serial: say which port: usb_serial = \"...\", usb = \"vvvv:pppp\" or path = \"/dev/...\" (`corral scan` lists them)"
    );
    assert_eq!(
        error("[[device]]\nname = \"a\"\nserial = { path = \"/dev/x\", usb_serial = \"S\" }\n"),
        "/lab/gateway.toml:3:19: device \"a\": serial.path: give either path or the USB keys (usb, usb_serial, interface), not both"
    );
    assert_eq!(
        error("[[device]]\nname = \"a\"\nserial = { usb = \"2e8a-000a\" }\n"),
        "/lab/gateway.toml:3:18: device \"a\": serial.usb: \"2e8a-000a\" is not a USB vendor:product id; write four hex digits each, e.g. \"2e8a:000a\" (`corral scan` prints them)"
    );
    assert!(
        error("[[device]]\nname = \"a\"\nserial = { interface = 1 }\n")
            .ends_with("serial: interface needs usb or usb_serial to say which adapter")
    );
}

#[test]
fn tcp_off_this_machine_needs_a_key() {
    assert_eq!(
        error("[[device]]\nname = \"rpi-1\"\ntcp = { address = \"10.0.0.5:7878\" }\n"),
        "/lab/gateway.toml:3:19: device \"rpi-1\": tcp: 10.0.0.5:7878 is not on this machine, so key_file is required (the key the agent was started with)"
    );
    assert_eq!(
        error("[[device]]\nname = \"rpi-1\"\ntcp = { address = \"10.0.0.5\" }\n"),
        "/lab/gateway.toml:3:19: device \"rpi-1\": tcp.address: \"10.0.0.5\" is not host:port; write e.g. \"10.0.0.5:7878\", \"rpi-3.lab:7878\" or \"[fd00::5]:7878\""
    );
    for ok in ["localhost:7878", "[::1]:7878", "127.0.0.2:7878"] {
        let text = format!("[[device]]\nname = \"a\"\ntcp = {{ address = \"{ok}\" }}\n");
        assert!(parse(&text).is_ok(), "{ok} is loopback");
    }
    assert!(parse(
        "[[device]]\nname = \"a\"\ntcp = { address = \"[fd00::5]:7878\", key_file = \"k\" }\n"
    )
    .is_ok());
}

#[test]
fn public_listen_needs_a_token() {
    assert_eq!(
        error("[gateway]\nlisten = \"0.0.0.0:7700\"\n"),
        "/lab/gateway.toml:2:10: gateway.listen: 0.0.0.0:7700 is reachable from other machines, so token_file is required (a file holding the API token); or listen on 127.0.0.1:7700 to keep the API local"
    );
    assert_eq!(
        error("[gateway]\nlisten = \"localhost:7700\"\n"),
        "/lab/gateway.toml:2:10: gateway.listen: \"localhost:7700\" is not an IP address and port; write e.g. \"127.0.0.1:7700\" (local only) or \"0.0.0.0:7700\" (all interfaces, needs token_file)"
    );
}

#[test]
fn labels_power_and_durations() {
    assert_eq!(
        error("[[device]]\nname = \"a\"\nlabels = [\"board = rp2040\"]\nserial = { path = \"/dev/x\" }\n"),
        "/lab/gateway.toml:3:11: device \"a\": labels: \"board = rp2040\" is not a label: labels contain no spaces (write \"board=rp2040\")"
    );
    assert_eq!(
        error("[[device]]\nname = \"a\"\nlabels = [\"x=1\", \"x=1\"]\nserial = { path = \"/dev/x\" }\n"),
        "/lab/gateway.toml:3:18: device \"a\": labels: \"x=1\" is given twice"
    );
    assert_eq!(
        error("[[device]]\nname = \"a\"\nserial = { path = \"/dev/x\" }\npower_off = []\n"),
        "/lab/gateway.toml:4:13: device \"a\": power_off: give the program and its arguments, e.g. [\"uhubctl\", \"-a\", \"on\", \"-p\", \"2\"]"
    );
    assert_eq!(
        error("[[device]]\nname = \"a\"\nserial = { path = \"/dev/x\" }\npower_on = [\"x\"]\nidle_power_off_after = \"5 minuts\"\n"),
        "/lab/gateway.toml:5:24: device \"a\": idle_power_off_after: \"5 minuts\" is not a duration (unknown time unit \"minuts\", supported units: ns, us/µs, ms, sec, min, hours, days, weeks, months, years (and few variations)); write e.g. \"90s\", \"5m\" or \"1h 30m\""
    );
    assert_eq!(
        error("[[device]]\nname = \"a\"\nserial = { path = \"/dev/x\" }\nidle_power_off_after = \"5m\"\n"),
        "/lab/gateway.toml:4:24: device \"a\": idle_power_off_after: needs power_on, or the device could not be switched on again"
    );
}

#[test]
fn recovery_windows_default_and_are_validated() {
    let inv = parse("[[device]]\nname = \"a\"\nserial = { path = \"/dev/x\" }\n").unwrap();
    let a = &inv.devices[0];
    assert_eq!(a.recover_after, Duration::from_secs(30));
    assert_eq!(a.recovery_wait, Duration::from_secs(60));
    assert_eq!(a.health_check_every, Duration::from_secs(60));
    let inv = parse("[[device]]\nname = \"a\"\nserial = { path = \"/dev/x\" }\nrecover_after = \"2s\"\nrecovery_wait = \"500ms\"\nhealth_check_every = \"5m\"\n").unwrap();
    let a = &inv.devices[0];
    assert_eq!(a.recover_after, Duration::from_secs(2));
    assert_eq!(a.recovery_wait, Duration::from_millis(500));
    assert_eq!(a.health_check_every, Duration::from_secs(300));
    assert_eq!(
        error("[[device]]\nname = \"a\"\nserial = { path = \"/dev/x\" }\nrecover_after = \"soon\"\n"),
        "/lab/gateway.toml:4:17: device \"a\": recover_after: \"soon\" is not a duration (expected number at 0); write e.g. \"90s\", \"5m\" or \"1h 30m\""
    );
    assert_eq!(
        error("[[device]]\nname = \"a\"\nserial = { path = \"/dev/x\" }\nrecovery_wait = \"0s\"\n"),
        "/lab/gateway.toml:4:17: device \"a\": recovery_wait: \"0s\" is zero; give a positive duration"
    );
    assert_eq!(
        error("[[device]]\nname = \"a\"\nserial = { path = \"/dev/x\" }\nrecover_afer = \"1s\"\n"),
        "/lab/gateway.toml:4:1: device \"a\": unknown field `recover_afer`, expected one of `name`, `labels`, `serial`, `tcp`, `unix`, `power_on`, `power_off`, `idle_power_off_after`, `health_check`, `recover_after`, `recovery_wait`, `health_check_every` (did you mean `recover_after`?)"
    );
}

#[test]
fn all_validation_problems_are_reported_together_in_file_order() {
    let e = errors(
        "[gateway]\nlisten = \"0.0.0.0:1\"\n\n[[device]]\nname = \"a\"\nserial = { usb_serial = \"X\", baud = 11520 }\n\n[[device]]\nname = \"b c\"\ntcp = { address = \"10.1.1.1:1\" }\n",
    );
    let lines: Vec<&str> = e.iter().map(|s| s.split(": ").next().unwrap()).collect();
    assert_eq!(
        lines,
        [
            "/lab/gateway.toml:2:10",
            "/lab/gateway.toml:6:37",
            "/lab/gateway.toml:9:8",
            "/lab/gateway.toml:10:19"
        ]
    );
    // The Display of the whole error is one problem per line.
    let whole = parse("[[device]]\nname = \"a\"\n[[device]]\nname = \"b\"\n")
        .unwrap_err()
        .to_string();
    assert_eq!(whole.lines().count(), 2);
}

#[test]
fn load_checks_the_files_it_names() {
    let dir = tempfile::tempdir().unwrap();
    let inv_path = dir.path().join("gateway.toml");
    std::fs::write(
        &inv_path,
        "[[device]]\nname = \"rpi-1\"\ntcp = { address = \"10.0.0.5:7878\", key_file = \"keys/rpi.key\" }\nhealth_check = \"health.toml\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("health.toml"),
        "[[step]]\nexec = [\"true\"]\nexpect_exit = \"zero\"\n",
    )
    .unwrap();
    let e = Inventory::load(&inv_path).unwrap_err().to_string();
    let key = dir.path().join("keys/rpi.key");
    let health = dir.path().join("health.toml");
    assert_eq!(
        e,
        format!(
            "{inv}:3:47: device \"rpi-1\": tcp.key_file: {key} does not exist or is not a file\n\
             {inv}:4:16: device \"rpi-1\": health_check: job {health} is not usable:\n    \
             {health}:3:15: step 1: expect_exit: invalid type: string \"zero\", expected i32",
            inv = inv_path.display(),
            key = key.display(),
            health = health.display(),
        )
    );

    std::fs::create_dir(dir.path().join("keys")).unwrap();
    std::fs::write(&key, "secret").unwrap();
    std::fs::write(
        dir.path().join("health.toml"),
        "[[step]]\nexec = [\"true\"]\n",
    )
    .unwrap();
    let inv = Inventory::load(&inv_path).unwrap();
    assert_eq!(inv.devices[0].health_check, Some(health));

    let missing = dir.path().join("nope.toml");
    let e = Inventory::load(&missing).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }));
    assert!(e
        .to_string()
        .starts_with(&format!("reading {}: ", missing.display())));
}

#[test]
fn diff_tells_relinks_from_in_place_changes() {
    let old = parse(FULL).unwrap();
    let same = parse(FULL).unwrap();
    assert!(Inventory::diff(&old, &same).is_empty());

    let edited = FULL
        .replace("\"pool=ci\", ", "")
        .replace("baud = 921600", "baud = 115200")
        .replace(
            "[[device]]\nname = \"uart0\"\nserial = { path = \"/dev/ttyAMA0\" }\n",
            "",
        )
        .replace(
            "key_file = \"keys/rpi.key\"",
            "key_file = \"keys/rpi2.key\"",
        )
        + "\n[[device]]\nname = \"new-1\"\nserial = { path = \"/dev/ttyUSB9\" }\n";
    let new = parse(&edited).unwrap();
    let d = Inventory::diff(&old, &new);
    assert!(!d.gateway_changed);
    assert_eq!(d.added, ["new-1"]);
    assert_eq!(d.removed, ["uart0"]);
    assert_eq!(
        d.changed,
        [
            DeviceChange {
                name: "pico-1".into(),
                fields: vec![DeviceField::Labels, DeviceField::Link],
            },
            DeviceChange {
                name: "rpi-1".into(),
                fields: vec![DeviceField::Link],
            },
        ]
    );
    assert!(d.changed.iter().all(DeviceChange::needs_relink));

    let labels_only = parse(&FULL.replace("\"cap=usb\"", "\"cap=wifi\"")).unwrap();
    let d = Inventory::diff(&old, &labels_only);
    assert_eq!(d.changed.len(), 1);
    assert!(
        !d.changed[0].needs_relink(),
        "a label edit must not drop the link"
    );

    let moved = parse(&FULL.replace("0.0.0.0:7700", "0.0.0.0:7701")).unwrap();
    assert!(Inventory::diff(&old, &moved).gateway_changed);
}

#[test]
fn the_documented_example_loads() {
    let text = crate::config::diag::doc_toml(include_str!("../inventory.rs"));
    assert!(text.contains("[[device]]"), "found the example");
    if let Err(e) = Inventory::parse(&text, Path::new("/lab/gateway.toml")) {
        panic!("the example in the module docs does not load:\n{e}\n---\n{text}");
    }
}
