//! End-to-end suites for the gateway's recovery ladder and quarantine: the
//! real firmware under QEMU, the real gateway, the real CLI.
//!
//! Scenario A: a latent board wedges itself (`hang`, which stops answering
//! even keepalives); the running command ends as an infrastructure error,
//! the gateway power-cycles the board and it is back to idle by itself.
//!
//! Scenario B: a board that stays dead is quarantined with the reason; it
//! takes no work; when it is back, it returns to idle only once its health
//! check job passes (a failing one keeps it quarantined, with the failure
//! in the reason).
//!
//! The recovery windows are short so the suites are quick; nothing here
//! asserts how long anything took.

mod hil;

use hil::*;
use serde_json::Value;
use std::time::{Duration, Instant};

fn toml_list(argv: &[String]) -> String {
    let items: Vec<String> = argv.iter().map(|a| format!("{a:?}")).collect();
    format!("[{}]", items.join(", "))
}

fn device<'a>(devices: &'a [Value], name: &str) -> &'a Value {
    devices
        .iter()
        .find(|d| d["name"] == name)
        .unwrap_or_else(|| panic!("no device {name} in {devices:?}"))
}

/// Waits until `name` is in `state` with a reason containing `needle`;
/// returns its status.
fn wait_for(gw: &Gateway, name: &str, state: &str, needle: &str, limit: Duration) -> Value {
    let t = Instant::now();
    loop {
        let devices = gw.devices();
        let d = device(&devices, name).clone();
        if d["state"] == state && d["reason"].as_str().unwrap_or("").contains(needle) {
            return d;
        }
        assert!(
            t.elapsed() < limit,
            "{name} is not {state} with {needle:?} in its reason after {limit:?}: {d}\n{}",
            gw.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_wedged_latent_board_is_power_cycled_and_comes_back_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("qemu-r.sock");
    let inventory = format!(
        "[[device]]\nname = \"qemu-r\"\nunix = {{ path = \"{}\" }}\npower_on = {}\n\
         idle_power_off_after = \"10m\"\nrecover_after = \"1s\"\nrecovery_wait = \"30s\"\n",
        sock.display(),
        toml_list(&qemu_argv(&sock))
    );
    let gw = Gateway::start(dir.path(), &inventory);
    gw.ok(&gw.corral(&["exec", "qemu-r", "--", "selftest"]));

    // The board wedges: the command cannot finish, and that is the lab's
    // fault, not the test's.
    let out = gw.corral(&["exec", "qemu-r", "--", "hang"]);
    assert_eq!(
        out.status.code(),
        Some(255),
        "a wedged board is an infrastructure failure\nstdout: {}\nstderr: {}\n{}",
        text(&out.stdout),
        text(&out.stderr),
        gw.log()
    );

    // The gateway power-cycles it and it is back, with nobody's help.
    let d = wait_for(
        &gw,
        "qemu-r",
        "idle",
        "back after a power cycle",
        Duration::from_secs(90),
    );
    assert!(
        d["counters"]["power_cycles"].as_u64().unwrap_or(0) >= 1,
        "{d}"
    );
    assert_eq!(d["counters"]["quarantines"], 0, "{d}");
    let log = gw.log();
    assert!(log.contains("recovery: power cycle"), "{log}");
    gw.ok(&gw.corral(&["exec", "qemu-r", "--", "selftest"]));
}

#[test]
fn a_dead_board_is_quarantined_until_its_health_check_passes() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("qemu-q.sock");
    let health = dir.path().join("health.toml");
    let write_health = |cmd: &str| {
        std::fs::write(
            &health,
            format!("name = \"health\"\n[[step]]\nname = \"{cmd}\"\nexec = [\"{cmd}\"]\ntimeout = \"30s\"\n"),
        )
        .unwrap()
    };
    write_health("selftest");
    let job = dir.path().join("job.toml");
    std::fs::write(
        &job,
        "name = \"job\"\n[[step]]\nexec = [\"selftest\"]\ntimeout = \"30s\"\n",
    )
    .unwrap();
    let inventory = format!(
        "[[device]]\nname = \"qemu-q\"\nunix = {{ path = \"{}\" }}\nhealth_check = \"health.toml\"\n\
         recover_after = \"1s\"\nrecovery_wait = \"2s\"\nhealth_check_every = \"1s\"\n",
        sock.display(),
    );
    let qemu = start_qemu(&sock);
    let gw = Gateway::start(dir.path(), &inventory);
    gw.wait_state("qemu-q", &["idle"], Duration::from_secs(60));

    // The board dies and stays dead: no soft reset (no link), no power
    // commands — quarantined, saying so.
    drop(qemu);
    let d = wait_for(
        &gw,
        "qemu-q",
        "quarantined",
        "nothing could be tried",
        Duration::from_secs(60),
    );
    let reason = d["reason"].as_str().unwrap();
    assert!(
        reason.contains("not back within") && reason.contains("no power commands"),
        "{reason}"
    );
    assert_eq!(d["counters"]["quarantines"], 1, "{d}");
    let table = gw.ok(&gw.corral(&["devices"]));
    assert!(table.contains("quarantined"), "{table}");

    // It takes no work: a job and a command are refused, as infrastructure.
    let out = gw.corral(&["run", job.to_str().unwrap(), "--device", "qemu-q"]);
    assert_eq!(
        out.status.code(),
        Some(255),
        "stdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains("quarantined"),
        "{}",
        text(&out.stderr)
    );
    let out = gw.corral(&["exec", "qemu-q", "--", "selftest"]);
    assert_eq!(out.status.code(), Some(255), "{}", text(&out.stderr));

    // Back on its socket, but its health check fails: still quarantined,
    // with the job's failure in the reason.
    write_health("selftest-fail");
    let _qemu = start_qemu(&sock);
    let d = wait_for(
        &gw,
        "qemu-q",
        "quarantined",
        "health check failed",
        Duration::from_secs(60),
    );
    let reason = d["reason"].as_str().unwrap();
    assert!(
        reason.contains("selftest-fail") && reason.contains("nothing could be tried"),
        "the cause and the check's failure: {reason}"
    );
    let out = gw.corral(&["exec", "qemu-q", "--", "selftest"]);
    assert_eq!(out.status.code(), Some(255), "{}", text(&out.stderr));

    // Once the check passes (it is tried again by itself), back to work.
    write_health("selftest");
    let d = wait_for(&gw, "qemu-q", "idle", "passed", Duration::from_secs(60));
    assert!(d["reason"].as_str().unwrap().contains("health.toml"), "{d}");
    gw.ok(&gw.corral(&["run", job.to_str().unwrap(), "--device", "qemu-q"]));
    let log = gw.log();
    assert!(log.contains("health check passed"), "{log}");
}
