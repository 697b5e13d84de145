//! End-to-end suites on the emulated Cortex-M3 board: the real firmware
//! under QEMU, the real gateway, the real CLI — as a user drives them.
//!
//! With `CORRAL_HIL_INVENTORY=path/to/gateway.toml`, the job suite also runs
//! on every device of that inventory labelled `hil=firmware` (boards flashed
//! with a Corral firmware that has the sample commands); see
//! hil-tests/README.md.

mod hil;

use corral_hil_tests::faultlink::{Endpoint, FaultLink, Faults, LinkFaults};
use hil::*;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

fn toml_list(argv: &[String]) -> String {
    let items: Vec<String> = argv.iter().map(|a| format!("{a:?}")).collect();
    format!("[{}]", items.join(", "))
}

/// A latent QEMU board: the gateway starts it when a job needs it.
fn latent_board(name: &str, sock: &Path) -> String {
    format!(
        "[[device]]\nname = \"{name}\"\nlabels = [\"board=lm3s6965\"]\nunix = {{ path = \"{}\" }}\npower_on = {}\n\n",
        sock.display(),
        toml_list(&qemu_argv(sock))
    )
}

/// A board the test starts and kills itself.
fn board(name: &str, sock: &Path) -> String {
    format!("[[device]]\nname = \"{name}\"\nlabels = [\"board=lm3s6965\"]\nunix = {{ path = \"{}\" }}\n\n", sock.display())
}

const FIRMWARE_JOB: &str = r#"
name = "firmware-suite"
timeout = "5m"

[defaults]
timeout = "60s"
on_failure = "continue"

[[step]]
name = "selftest passes"
exec = ["selftest"]

[[step]]
name = "push a file"
push = { local = "small.bin", remote = "small.bin" }

[[step]]
name = "hash on the device"
exec = ["hash", "small.bin"]

[[step]]
name = "selftest-fail fails"
exec = ["selftest-fail"]

[[step]]
name = "crash reboots the board"
exec = ["crash"]

[[step]]
name = "selftest after the crash"
exec = ["selftest"]
"#;

fn step<'a>(result: &'a Value, name: &str) -> &'a Value {
    result["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no step {name:?} in {result}"))
}

/// The job suite on one device: a pass, a test failure, and a crash that
/// is an infrastructure error — never mixed up.
fn job_suite(gw: &Gateway, dir: &Path, device: &str) {
    std::fs::write(
        dir.join("small.bin"),
        (0..512u32)
            .map(|i| (i * 31 % 251) as u8)
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let job = dir.join("job.toml");
    std::fs::write(&job, FIRMWARE_JOB).unwrap();
    let json = dir.join(format!("{device}.json"));
    let junit = dir.join(format!("{device}.xml"));
    let out = gw.corral(&[
        "run",
        job.to_str().unwrap(),
        "--device",
        device,
        "--json",
        json.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
    ]);
    // A test failed: the run says so.
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {}\nstderr: {}\n{}",
        text(&out.stdout),
        text(&out.stderr),
        gw.log()
    );
    let results: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let result = if results.is_array() {
        &results[0]
    } else {
        &results
    };
    assert_eq!(
        step(result, "selftest passes")["outcome"]["status"],
        "passed",
        "{result}"
    );
    assert_eq!(
        step(result, "push a file")["outcome"]["status"],
        "passed",
        "{result}"
    );
    let hash = step(result, "hash on the device");
    assert_eq!(hash["outcome"]["status"], "passed", "{result}");
    let want = {
        use sha2::Digest;
        let d = sha2::Sha256::digest(std::fs::read(dir.join("small.bin")).unwrap());
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    assert!(
        hash["stdout"]["text"]
            .as_str()
            .unwrap_or("")
            .contains(&want),
        "device hash output: {}",
        hash["stdout"]
    );
    assert_eq!(
        step(result, "selftest-fail fails")["outcome"]["status"],
        "failed",
        "{result}"
    );
    let crash = step(result, "crash reboots the board");
    assert_eq!(
        crash["outcome"]["status"], "error",
        "a crash is an infrastructure error: {result}"
    );
    assert_eq!(crash["outcome"]["kind"], "device_rebooted", "{result}");
    assert_eq!(
        step(result, "selftest after the crash")["outcome"]["status"],
        "passed",
        "the board came back: {result}"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains("<failure") && xml.contains("<error"),
        "JUnit keeps failures and errors apart: {xml}"
    );
}

#[test]
fn qemu_board_pass_fail_and_crash_through_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("qemu-1.sock");
    let mut devices = latent_board("qemu-1", &sock);
    let real = real_devices();
    devices.push_str(&real.1);
    let gw = Gateway::start(dir.path(), &devices);
    assert_eq!(
        gw.state("qemu-1"),
        "powered_off",
        "a latent board is off until needed"
    );
    job_suite(&gw, dir.path(), "qemu-1");
    for name in real.0 {
        job_suite(&gw, dir.path(), &name);
    }
}

/// Devices of `CORRAL_HIL_INVENTORY` labelled `hil=firmware`: their names
/// and their inventory entries (paths made absolute by re-rendering).
fn real_devices() -> (Vec<String>, String) {
    let Some(path) = std::env::var_os("CORRAL_HIL_INVENTORY") else {
        return (Vec::new(), String::new());
    };
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("CORRAL_HIL_INVENTORY={path:?}: {e}"));
    let doc: toml::Table = text
        .parse()
        .unwrap_or_else(|e| panic!("CORRAL_HIL_INVENTORY: {e}"));
    let mut names = Vec::new();
    let mut entries = String::new();
    for d in doc
        .get("device")
        .and_then(|d| d.as_array())
        .cloned()
        .unwrap_or_default()
    {
        let labels: Vec<&str> = d
            .get("labels")
            .and_then(|l| l.as_array())
            .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        if labels.contains(&"hil=firmware") {
            names.push(d["name"].as_str().unwrap_or_default().to_string());
            let mut t = toml::Table::new();
            t.insert("device".into(), toml::Value::Array(vec![d.clone()]));
            entries.push_str(&toml::to_string(&t).unwrap());
            entries.push('\n');
        }
    }
    (names, entries)
}

fn sha_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noisy_link_push_completes_and_a_cut_push_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let qemu_sock = dir.path().join("qemu.sock");
    let gw_sock = dir.path().join("gw.sock");
    let _qemu = start_qemu(&qemu_sock);
    let line = Faults {
        baud: Some(115_200),
        corrupt: 0.001,
        ..Faults::none()
    };
    // Give QEMU a moment to create its socket; the link dials per session.
    let t = Instant::now();
    while !qemu_sock.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "QEMU did not create its socket"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let link = FaultLink::start_with(
        Endpoint::UnixListen(gw_sock.clone()),
        Endpoint::Unix(qemu_sock.clone()),
        LinkFaults {
            a2b: line.clone(),
            b2a: line,
        },
        7,
    )
    .await
    .unwrap();
    let gw = Gateway::start(dir.path(), &board("qemu-noisy", &gw_sock));
    let big: Vec<u8> = (0..256 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let local = dir.path().join("big.bin");
    std::fs::write(&local, &big).unwrap();
    let want = sha_hex(&big);
    let gw = std::sync::Arc::new(gw);

    // 256 KiB through 115200 baud with 0.1 % of bytes corrupted.
    let g = gw.clone();
    let l = local.clone();
    let out = tokio::task::spawn_blocking(move || {
        g.wait_state("qemu-noisy", &["idle"], Duration::from_secs(60));
        g.corral(&["push", "qemu-noisy", l.to_str().unwrap(), "image/big.bin"])
    })
    .await
    .unwrap();
    gw.ok(&out);
    let g = gw.clone();
    let out =
        tokio::task::spawn_blocking(move || g.corral(&["hash", "qemu-noisy", "image/big.bin"]))
            .await
            .unwrap();
    assert!(
        gw.ok(&out).contains(&want),
        "the device's hash of the image: {}",
        text(&out.stdout)
    );
    let stats = link.stats();
    assert!(
        stats.a2b.corrupted + stats.b2a.corrupted > 0,
        "the line really was noisy: {stats:?}"
    );

    // The link cut for good in the middle of a second push: the push fails
    // (an infrastructure failure, exit 255); once the cable is back the same
    // push resumes from what the board already has.
    let big2: Vec<u8> = big.iter().map(|b| b ^ 0x5a).collect();
    std::fs::write(&local, &big2).unwrap();
    let g = gw.clone();
    let l = local.clone();
    let push = tokio::task::spawn_blocking(move || {
        g.corral(&["push", "qemu-noisy", l.to_str().unwrap(), "image/big2.bin"])
    });
    tokio::time::sleep(Duration::from_secs(8)).await;
    link.cut(None).await.unwrap();
    let out = push.await.unwrap();
    assert_eq!(
        out.status.code(),
        Some(255),
        "a cut link is an infrastructure failure: {}",
        text(&out.stderr)
    );
    link.restore().await.unwrap();
    let g = gw.clone();
    let l = local.clone();
    let out = tokio::task::spawn_blocking(move || {
        g.wait_state("qemu-noisy", &["idle"], Duration::from_secs(60));
        g.corral(&["push", "qemu-noisy", l.to_str().unwrap(), "image/big2.bin"])
    })
    .await
    .unwrap();
    let said = gw.ok(&out) + &text(&out.stderr);
    assert!(said.contains("resum"), "the second push resumed: {said}");
    let g = gw.clone();
    let out =
        tokio::task::spawn_blocking(move || g.corral(&["hash", "qemu-noisy", "image/big2.bin"]))
            .await
            .unwrap();
    assert!(gw.ok(&out).contains(&sha_hex(&big2)));
    link.shutdown().await;
}

#[test]
fn qemu_killed_mid_job_is_an_infrastructure_error_and_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("qemu.sock");
    let qemu = start_qemu(&sock);
    let gw = Gateway::start(dir.path(), &board("qemu-k", &sock));
    gw.wait_state("qemu-k", &["idle"], Duration::from_secs(60));
    let job = dir.path().join("long.toml");
    std::fs::write(&job, "name = \"long\"\n[[step]]\nname = \"long sleep\"\nexec = [\"sleep\", \"60000\"]\ntimeout = \"2m\"\n").unwrap();
    let json = dir.path().join("long.json");
    let corral = corral_bin().to_path_buf();
    let url = gw.url.clone();
    let (job_s, json_s) = (job.display().to_string(), json.display().to_string());
    let run = std::thread::spawn(move || {
        std::process::Command::new(corral)
            .args([
                "--gateway",
                &url,
                "run",
                &job_s,
                "--device",
                "qemu-k",
                "--json",
                &json_s,
            ])
            .output()
            .unwrap()
    });
    gw.wait_state("qemu-k", &["busy"], Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(1));
    drop(qemu); // The board is unplugged.
    let out = run.join().unwrap();
    assert_eq!(
        out.status.code(),
        Some(255),
        "only an infrastructure error: {}",
        text(&out.stderr)
    );
    let results: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let result = if results.is_array() {
        &results[0]
    } else {
        &results
    };
    let s = step(result, "long sleep");
    assert_eq!(s["outcome"]["status"], "error", "{result}");
    assert_eq!(s["outcome"]["kind"], "link_lost", "{result}");
    gw.wait_state(
        "qemu-k",
        &["offline", "connecting"],
        Duration::from_secs(30),
    );
    let _qemu = start_qemu(&sock); // Plugged back in.
    gw.wait_state("qemu-k", &["idle"], Duration::from_secs(60));
}

#[test]
fn eight_boards_and_eight_agents_on_one_gateway_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("agent.key");
    let st = std::process::Command::new(agent_bin())
        .arg("keygen")
        .arg(&key)
        .status()
        .unwrap();
    assert!(st.success());
    let mut devices = String::new();
    let mut agents = Vec::new();
    for i in 0..8 {
        devices.push_str(&latent_board(
            &format!("board-{i}"),
            &dir.path().join(format!("b{i}.sock")),
        ));
        let port = free_port();
        agents.push(start_agent(
            &dir.path().join(format!("agent-{i}")),
            &[
                "--listen",
                &format!("tcp://127.0.0.1:{port}"),
                "--key-file",
                key.to_str().unwrap(),
            ],
        ));
        devices.push_str(&format!("[[device]]\nname = \"agent-{i}\"\nlabels = [\"os=linux\"]\ntcp = {{ address = \"127.0.0.1:{port}\", key_file = \"{}\" }}\n\n", key.display()));
    }
    let gw = Gateway::start(dir.path(), &devices);
    std::fs::write(
        dir.path().join("fw.toml"),
        "name = \"fw\"\n[[step]]\nexec = [\"selftest\"]\n[[step]]\nexec = [\"flood\", \"2000\"]\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("linux.toml"),
        "name = \"linux\"\n[[step]]\nexec = [\"sh\", \"-c\", \"seq 1 20000 | sha256sum\"]\n",
    )
    .unwrap();
    let runs: Vec<_> = (0..8)
        .flat_map(|i| {
            [
                (format!("board-{i}"), "fw.toml"),
                (format!("agent-{i}"), "linux.toml"),
            ]
        })
        .map(|(dev, job)| {
            let corral = corral_bin().to_path_buf();
            let url = gw.url.clone();
            let job = dir.path().join(job);
            std::thread::spawn(move || {
                (
                    dev.clone(),
                    std::process::Command::new(corral)
                        .args([
                            "--gateway",
                            &url,
                            "run",
                            job.to_str().unwrap(),
                            "--device",
                            &dev,
                        ])
                        .output()
                        .unwrap(),
                )
            })
        })
        .collect();
    for r in runs {
        let (dev, out) = r.join().unwrap();
        assert!(
            out.status.success(),
            "{dev}: {}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }
    drop(agents);
}
