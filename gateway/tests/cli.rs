//! End to end: the real `corral gateway` process with real `corral-agent`s
//! over TCP (with a key) and over a pty null-modem cable, driven with the
//! `corral` CLI the way a user drives it, and checked by what a user sees:
//! exit codes, output, files.

mod common;

use common::*;
use corral_hil_tests::faultlink::{Endpoint, FaultLink, Faults};
use std::io::BufRead;
use std::path::Path;
use std::time::{Duration, Instant};

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

/// Two `date +%s%N` stamps a command printed: when it started and ended.
fn span(out: &std::process::Output) -> (u128, u128) {
    let stdout = ok(out);
    let v: Vec<u128> = stdout
        .lines()
        .map(|l| l.trim().parse().expect("a timestamp"))
        .collect();
    assert_eq!(v.len(), 2, "{stdout}");
    (v[0], v[1])
}

fn inventory(api: u16, tcp_port: u16, extra: &str) -> String {
    format!(
        r#"[gateway]
listen = "127.0.0.1:{api}"

[[device]]
name = "dev-tcp"
labels = ["os=linux", "link=tcp"]
tcp = {{ address = "127.0.0.1:{tcp_port}", key_file = "agent.key" }}

[[device]]
name = "dev-pty"
labels = ["os=linux", "link=serial"]
serial = {{ path = "tty-gateway", baud = 115200 }}
{extra}"#
    )
}

#[test]
fn a_gateway_serves_agents_over_tcp_and_a_serial_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = d.join("agent.key");
    keygen(&key);

    // The pty null-modem cable lives on a runtime of its own; everything
    // else here is processes.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let cable = rt
        .block_on(FaultLink::start(
            Endpoint::Pty {
                link: Some(d.join("tty-agent")),
            },
            Endpoint::Pty {
                link: Some(d.join("tty-gateway")),
            },
            Faults::none(),
            1,
        ))
        .expect("a pty null-modem cable");

    let tcp_port = free_port();
    let tcp_listen = format!("tcp://127.0.0.1:{tcp_port}");
    let tcp_agent = agent(
        &d.join("dev-tcp"),
        &["--listen", &tcp_listen, "--key-file", s(&key)],
    );
    let _pty_agent = agent(
        &d.join("dev-pty"),
        &["--serial", s(&d.join("tty-agent")), "--baud", "115200"],
    );
    // An agent no gateway knows: for the direct addresses.
    let direct_port = free_port();
    let direct = format!("tcp://127.0.0.1:{direct_port}");
    let _direct_agent = agent(
        &d.join("direct"),
        &["--listen", &direct, "--key-file", s(&key)],
    );

    let api = free_port();
    let config = d.join("gateway.toml");
    std::fs::write(&config, inventory(api, tcp_port, "")).unwrap();
    let gw = Gateway::start(&config, api);
    gw.wait_state("dev-tcp", &["idle"], Duration::from_secs(30));
    gw.wait_state("dev-pty", &["idle"], Duration::from_secs(30));

    // Exit codes and output, through the gateway, on both kinds of link.
    for dev in ["dev-tcp", "dev-pty"] {
        let out = gw.corral(&[
            "exec",
            dev,
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ]);
        let err = code(&out, 3);
        assert_eq!(text(&out.stdout), "out\n");
        assert!(err.contains("err"), "{err}");
        code(
            &gw.corral(&["exec", dev, "--", "sh", "-c", "kill -9 $$"]),
            128 + 9,
        );
        ok(&gw.corral(&["exec", dev, "--", "true"]));
    }
    let err = code(
        &gw.corral(&["exec", "dev-tcp", "--", "no-such-program"]),
        127,
    );
    assert!(err.contains("no-such-program"), "{err}");

    // stdin, environment, working directory, device-side timeout.
    ok(&gw.corral(&["exec", "dev-tcp", "--", "mkdir", "-p", "work"]));
    let out = std::process::Command::new(CORRAL)
        .args([
            "--gateway",
            &gw.url,
            "exec",
            "-i",
            "dev-tcp",
            "--env",
            "GREETING=hello",
            "--cwd",
            "work",
        ])
        .args([
            "--",
            "sh",
            "-c",
            "echo \"$GREETING from $(basename \"$PWD\")\"; tr a-z A-Z",
        ])
        .stdin(
            std::fs::File::open({
                let p = d.join("stdin.txt");
                std::fs::write(&p, "piped in\n").unwrap();
                p
            })
            .unwrap(),
        )
        .output()
        .unwrap();
    assert_eq!(ok(&out), "hello from work\nPIPED IN\n");
    let out = gw.corral(&["exec", "dev-pty", "--timeout", "1s", "--", "sleep", "30"]);
    let err = text(&out.stderr);
    assert!(
        out.status.code().is_some_and(|c| c > 128),
        "killed by a signal: {out:?}"
    );
    assert!(err.contains("timeout"), "{err}");

    // Files over the serial line and over TCP: pushed, hashed on the
    // device, pulled back intact.
    let payload = data(300_000, 7);
    let want = sha256_hex(&payload);
    let local = d.join("payload.bin");
    std::fs::write(&local, &payload).unwrap();
    for dev in ["dev-pty", "dev-tcp"] {
        ok(&gw.corral(&["push", dev, s(&local), "in/payload.bin"]));
        let hash = ok(&gw.corral(&["hash", dev, "in/payload.bin"]));
        assert!(hash.starts_with(&want), "{hash} vs {want}");
        let back = d.join(format!("back-{dev}.bin"));
        ok(&gw.corral(&["pull", dev, "in/payload.bin", s(&back)]));
        assert!(
            std::fs::read(&back).unwrap() == payload,
            "{dev}: the pulled file differs"
        );
        let listing = ok(&gw.corral(&["ls", dev, "in", "--json"]));
        let v: serde_json::Value = serde_json::from_str(&listing).unwrap();
        assert_eq!(v[0]["name"], "payload.bin");
        assert_eq!(v[0]["size"], 300_000);
    }
    ok(&gw.corral(&["rm", "dev-tcp", "in/payload.bin"]));
    code(&gw.corral(&["stat", "dev-tcp", "in/payload.bin"]), 1);

    // Names: a unique prefix works; an unknown name lists the known ones;
    // an ambiguous prefix is refused.
    ok(&gw.corral(&["exec", "dev-t", "--", "true"]));
    let err = code(&gw.corral(&["exec", "nosuch", "--", "true"]), 2);
    assert!(err.contains("dev-pty") && err.contains("dev-tcp"), "{err}");
    let err = code(&gw.corral(&["exec", "dev", "--", "true"]), 2);
    assert!(err.contains("ambiguous"), "{err}");

    // A direct address needs no gateway.
    let k = s(&key);
    code(
        &corral(&["--key-file", k, "exec", &direct, "--", "sh", "-c", "exit 3"]),
        3,
    );
    code(
        &corral(&[
            "--key-file",
            k,
            "exec",
            &direct,
            "--",
            "sh",
            "-c",
            "kill -9 $$",
        ]),
        128 + 9,
    );
    ok(&corral(&[
        "--key-file",
        k,
        "push",
        &direct,
        s(&local),
        "payload.bin",
    ]));
    let back = d.join("back-direct.bin");
    ok(&corral(&[
        "--key-file",
        k,
        "pull",
        &direct,
        "payload.bin",
        s(&back),
    ]));
    assert!(std::fs::read(&back).unwrap() == payload);
    let other_key = d.join("other.key");
    keygen(&other_key);
    let err = code(
        &corral(&["--key-file", s(&other_key), "exec", &direct, "--", "true"]),
        255,
    );
    assert!(err.contains(&direct), "{err}");

    // Two users of one device are served one after the other: each command
    // prints when it started and ended on the device.
    let cmd = [
        "exec",
        "dev-tcp",
        "--",
        "sh",
        "-c",
        "date +%s%N; sleep 1; date +%s%N",
    ];
    let a = gw.spawn(&cmd);
    let b = gw.spawn(&cmd);
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let (a, b) = (span(&a), span(&b));
    assert!(
        a.1 <= b.0 || b.1 <= a.0,
        "the two commands overlapped: {a:?} {b:?}"
    );

    // A lease keeps the device for its holder.
    let id = ok(&gw.corral(&["lock", "dev-tcp", "--ttl", "1m"]))
        .trim()
        .to_string();
    let err = code(
        &gw.corral(&["--no-wait", "exec", "dev-tcp", "--", "true"]),
        1,
    );
    assert!(err.contains("leased"), "{err}");
    ok(&gw.corral(&["--lease", &id, "exec", "dev-tcp", "--", "true"]));
    let dev = gw
        .devices()
        .into_iter()
        .find(|d| d["name"] == "dev-tcp")
        .unwrap();
    assert_eq!(dev["state"], "busy");
    assert_eq!(dev["lease"]["id"].to_string(), id);
    ok(&gw.corral(&["unlock", "dev-tcp", &id]));
    code(&gw.corral(&["unlock", "dev-tcp", &id]), 1);
    ok(&gw.corral(&["--no-wait", "exec", "dev-tcp", "--", "true"]));

    // Ctrl-C cancels the remote command before corral exits 130.
    let mut child = gw.spawn(&[
        "exec",
        "dev-tcp",
        "--",
        "sh",
        "-c",
        "echo $$ > victim.pid; echo ready; exec sleep 60",
    ]);
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ready\n");
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    code(&out, 130);
    code(
        &gw.corral(&[
            "exec",
            "dev-tcp",
            "--",
            "sh",
            "-c",
            "kill -0 $(cat victim.pid)",
        ]),
        1,
    );

    // A client that vanishes (kill -9) does not leave its command running.
    let mut child = gw.spawn(&[
        "exec",
        "dev-tcp",
        "--",
        "sh",
        "-c",
        "echo $$ > orphan.pid; echo ready; exec sleep 60",
    ]);
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ready\n");
    child.kill().unwrap();
    child.wait().unwrap();
    let t = Instant::now();
    while gw
        .corral(&[
            "exec",
            "dev-tcp",
            "--",
            "sh",
            "-c",
            "kill -0 $(cat orphan.pid)",
        ])
        .status
        .success()
    {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the command outlived its client"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Resumed transfers say so. An upload cut off half-way leaves the
    // device with a prefix, which the next push reuses.
    let half = payload.len() / 2;
    {
        use std::io::Write;
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", api)).unwrap();
        write!(
            conn,
            "PUT /v1/devices/dev-tcp/files/resumed.bin?size={}&sha256={want} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            payload.len(),
            payload.len()
        )
        .unwrap();
        conn.write_all(&payload[..half]).unwrap();
    }
    let err = ok_err(&gw.corral(&["push", "dev-tcp", s(&local), "resumed.bin"]));
    assert!(err.contains("resumed"), "{err}");
    assert!(ok(&gw.corral(&["hash", "dev-tcp", "resumed.bin"])).starts_with(&want));
    // A pull finds the partial file an interrupted pull left.
    let again = d.join("again.bin");
    std::fs::write(d.join(".again.bin.corral-partial"), &payload[..half]).unwrap();
    let err = ok_err(&gw.corral(&["pull", "dev-tcp", "resumed.bin", s(&again)]));
    assert!(err.contains("resumed"), "{err}");
    assert!(std::fs::read(&again).unwrap() == payload);

    // Identity and link statistics.
    let info: serde_json::Value =
        serde_json::from_str(&ok(&gw.corral(&["info", "dev-pty", "--json"]))).unwrap();
    assert_eq!(
        info["identity"]["firmware"]
            .as_str()
            .map(|f| f.starts_with("corral-agent")),
        Some(true),
        "{info}"
    );
    assert!(info["counters"]["crc_errors"].is_u64(), "{info}");

    // A job: JUnit XML and JSON results; a failing test fails the run.
    std::fs::write(
        d.join("job.toml"),
        format!(
            r#"name = "smoke"

[[step]]
push = {{ local = "payload.bin", remote = "job/payload.bin" }}

[[step]]
name = "payload arrived"
exec = ["sh", "-c", "test $(sha256sum job/payload.bin | cut -d' ' -f1) = {want}"]

[[step]]
name = "fails on purpose"
exec = ["sh", "-c", "echo boom; exit 3"]
on_failure = "continue"

[[step]]
pull = {{ remote = "job/payload.bin", local = "out/payload.bin" }}
"#
        ),
    )
    .unwrap();
    let (junit, json) = (d.join("results/junit.xml"), d.join("results/result.json"));
    let out = gw.corral(&[
        "run",
        s(&d.join("job.toml")),
        "--device",
        "dev-pty",
        "--junit",
        s(&junit),
        "--json",
        s(&json),
    ]);
    code(&out, 1);
    assert!(
        text(&out.stdout).contains("fails on purpose"),
        "{}",
        text(&out.stdout)
    );
    let (suites, cases, failures) = junit_counts(&std::fs::read_to_string(&junit).unwrap());
    assert_eq!(
        suites.get("tests").map(String::as_str),
        Some("2"),
        "{suites:?}"
    );
    assert_eq!(
        suites.get("failures").map(String::as_str),
        Some("1"),
        "{suites:?}"
    );
    assert_eq!(
        suites.get("errors").map(String::as_str),
        Some("0"),
        "{suites:?}"
    );
    assert_eq!((cases, failures), (2, 1));
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(result["device"], "dev-pty");
    let outcomes: Vec<&str> = result["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["outcome"]["status"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(
        outcomes,
        ["passed", "passed", "failed", "passed"],
        "{result}"
    );
    assert!(std::fs::read(d.join("out/payload.bin")).unwrap() == payload);

    // The same job without the failing step passes, on a device chosen by
    // label.
    let job = std::fs::read_to_string(d.join("job.toml")).unwrap();
    let passing = job.replace("exit 3", "exit 0");
    std::fs::write(d.join("passing.toml"), passing).unwrap();
    ok(&gw.corral(&["run", s(&d.join("passing.toml")), "--label", "link=tcp"]));

    // A job can run straight on an address, without the daemon.
    ok(&corral(&[
        "--key-file",
        k,
        "run",
        s(&d.join("passing.toml")),
        "--device",
        &direct,
    ]));

    // A broken job file is a usage error that says where.
    std::fs::write(
        d.join("bad-job.toml"),
        "name = \"bad\"\n\n[[step]]\nexec = [\"true\"]\ntimeout = \"soon\"\n",
    )
    .unwrap();
    let err = code(
        &gw.corral(&["run", s(&d.join("bad-job.toml")), "--device", "dev-tcp"]),
        2,
    );
    assert!(err.contains("bad-job.toml:5:"), "{err}");

    // The API's own documents.
    let (status, yaml) = http_get(api, "/v1/openapi.yaml").unwrap();
    assert_eq!(status, 200);
    assert!(yaml.starts_with("openapi: 3.1"), "{yaml}");
    let (status, metrics) = http_get(api, "/metrics").unwrap();
    assert_eq!(status, 200);
    assert!(
        metrics.contains("corral_device_state{device=\"dev-pty\",state=\"idle\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("corral_jobs_total{outcome=\"failed\"} 1"),
        "{metrics}"
    );

    // SIGHUP: a broken inventory is refused and the old one stays; a good
    // one is applied without dropping the links that did not change.
    let boot = |gw: &Gateway| {
        gw.devices()
            .into_iter()
            .find(|d| d["name"] == "dev-tcp")
            .map(|d| d["identity"]["boot_id"].clone())
            .unwrap()
    };
    let before = boot(&gw);
    std::fs::write(
        &config,
        inventory(
            api,
            tcp_port,
            "\n[[device]]\nname = \"dev-new\"\ntcp = { adress = \"127.0.0.1:1\" }\n",
        ),
    )
    .unwrap();
    gw.signal("HUP");
    let t = Instant::now();
    while !gw.log().contains("not reloading") {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "no word about the broken inventory: {}",
            gw.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        gw.log().contains("gateway.toml:"),
        "the error names the file: {}",
        gw.log()
    );
    assert_eq!(gw.devices().len(), 2);
    let unused = free_port();
    std::fs::write(
        &config,
        inventory(
            api,
            tcp_port,
            &format!(
                "\n[[device]]\nname = \"dev-new\"\ntcp = {{ address = \"127.0.0.1:{unused}\" }}\n"
            ),
        ),
    )
    .unwrap();
    gw.signal("HUP");
    let t = Instant::now();
    while gw.devices().len() != 3 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the new device did not appear: {}",
            gw.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(gw.state("dev-tcp"), "idle");
    assert_eq!(boot(&gw), before, "the unchanged device kept its session");

    // A device whose agent dies is offline, and idle again once the agent
    // is back, by itself.
    drop(tcp_agent);
    gw.wait_state(
        "dev-tcp",
        &["offline", "connecting"],
        Duration::from_secs(30),
    );
    let err = code(
        &gw.corral(&["--no-wait", "exec", "dev-tcp", "--", "true"]),
        255,
    );
    assert!(err.contains("dev-tcp"), "{err}");
    let _tcp_agent = agent(
        &d.join("dev-tcp"),
        &["--listen", &tcp_listen, "--key-file", s(&key)],
    );
    gw.wait_state("dev-tcp", &["idle"], Duration::from_secs(60));
    ok(&gw.corral(&["exec", "dev-tcp", "--", "true"]));

    // SIGTERM stops the daemon cleanly.
    gw.signal("TERM");
    let mut gw = gw;
    let t = Instant::now();
    let status = loop {
        if let Some(st) = gw.proc.0.try_wait().unwrap() {
            break st;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the gateway did not stop: {}",
            gw.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}: {}", gw.log());
    rt.block_on(cable.shutdown());
}

/// The `<testsuites>` attributes, the number of `<testcase>` and of
/// `<failure>` elements.
fn junit_counts(xml: &str) -> (std::collections::HashMap<String, String>, usize, usize) {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut suites = std::collections::HashMap::new();
    let (mut cases, mut failures) = (0, 0);
    loop {
        match reader.read_event().expect("well-formed JUnit XML") {
            Event::Start(e) | Event::Empty(e) => match e.name().as_ref() {
                b"testsuites" => {
                    for a in e.attributes() {
                        let a = a.unwrap();
                        suites.insert(
                            String::from_utf8_lossy(a.key.as_ref()).into_owned(),
                            String::from_utf8_lossy(&a.value).into_owned(),
                        );
                    }
                }
                b"testcase" => cases += 1,
                b"failure" => failures += 1,
                _ => {}
            },
            Event::Eof => return (suites, cases, failures),
            _ => {}
        }
    }
}

#[test]
fn a_bad_inventory_is_a_usage_error_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lab.toml");
    std::fs::write(
        &config,
        "[[device]]\nname = \"pico-1\"\nserial = { path = \"/dev/ttyACM0\", baud = 11520 }\n",
    )
    .unwrap();
    let err = code(&corral(&["gateway", "--config", s(&config)]), 2);
    assert!(err.contains("lab.toml:3:"), "{err}");
    assert!(
        err.contains("115200"),
        "the error suggests the likely rate: {err}"
    );
}

#[test]
fn without_a_gateway_the_cli_says_how_to_start_one() {
    let url = format!("http://127.0.0.1:{}", free_port());
    let err = code(&corral(&["--gateway", &url, "devices"]), 255);
    assert!(err.contains(&format!("no gateway at {url}")), "{err}");
    assert!(err.contains("corral gateway --config"), "{err}");
    let err = code(
        &corral(&["--gateway", &url, "exec", "tcp:/x", "--", "true"]),
        255,
    );
    assert!(
        err.contains("no gateway"),
        "a name without a gateway: {err}"
    );
    let err = code(&corral(&["exec", "tcp://nohost", "--", "true"]), 2);
    assert!(err.contains("tcp://HOST:PORT"), "{err}");
}

#[test]
fn a_token_guards_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let token = d.join("token");
    std::fs::write(&token, "s3cret-token\n").unwrap();
    let api = free_port();
    let config = d.join("gateway.toml");
    std::fs::write(
        &config,
        format!("[gateway]\nlisten = \"127.0.0.1:{api}\"\ntoken_file = \"token\"\n"),
    )
    .unwrap();
    let gw = Gateway::start(&config, api);
    assert_eq!(http_get(api, "/v1/devices").unwrap().0, 401);
    let err = code(&gw.corral(&["devices"]), 2);
    assert!(err.contains("token"), "{err}");
    ok(&gw.corral(&["--token-file", s(&token), "devices"]));

    // Beyond loopback without a token the daemon refuses to start.
    let open = d.join("open.toml");
    std::fs::write(&open, "[gateway]\nlisten = \"127.0.0.1:1\"\n").unwrap();
    let err = code(
        &corral(&["gateway", "--config", s(&open), "--listen", "0.0.0.0:1"]),
        2,
    );
    assert!(err.contains("token"), "{err}");
}
