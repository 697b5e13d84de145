use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

fn parse(text: &str) -> Result<Job, ConfigError> {
    Job::parse(text, Path::new("/ci/jobs/smoke.toml"))
}

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

const SMOKE: &str = r#"
name = "smoke"
timeout = "10m"
labels = ["board=rp2040"]

[defaults]
timeout = "60s"

[[step]]
push = { local = "build/selftest", remote = "bin/selftest", mode = 0o755 }

[[step]]
name = "selftest passes"
exec = ["bin/selftest", "--quick"]
expect_exit = 0
timeout = "30s"
env = { RUST_LOG = "debug" }
on_failure = "continue"

[[step]]
exec = ["bin/selftest", "--slow mode"]
expect_exit = 3
cwd = "bin"
stdin = "y\n"

[[step]]
pull = { remote = "logs/run.txt", local = "out/run.txt" }
always = true

[[step]]
reset = {}

[[step]]
wait_for_console = { regex = "boot id=[0-9a-f]{8}" }
timeout = "5s"
"#;

#[test]
fn smoke_example_loads() {
    let job = parse(SMOKE).unwrap();
    assert_eq!(job.name, "smoke");
    assert_eq!(job.timeout, Some(Duration::from_secs(600)));
    assert_eq!(job.labels, vec!["board=rp2040".parse::<Label>().unwrap()]);
    assert_eq!(job.steps.len(), 6);

    let s = &job.steps[0];
    assert_eq!(
        (s.number, s.name.as_str(), s.named),
        (1, "push build/selftest to bin/selftest", false)
    );
    assert_eq!(s.timeout, Duration::from_secs(60), "from [defaults]");
    assert_eq!(s.on_failure, OnFailure::Stop);
    let Action::Push(p) = &s.action else { panic!() };
    assert_eq!(
        p,
        &Push {
            local: PathBuf::from("/ci/jobs/build/selftest"),
            remote: "bin/selftest".into(),
            mode: Some(0o755),
        }
    );

    let s = &job.steps[1];
    assert_eq!((s.name.as_str(), s.named), ("selftest passes", true));
    assert_eq!(s.timeout, Duration::from_secs(30));
    assert_eq!(s.on_failure, OnFailure::Continue);
    let Action::Exec(e) = &s.action else { panic!() };
    assert_eq!(e.argv, ["bin/selftest", "--quick"]);
    assert_eq!(e.env.get("RUST_LOG").map(String::as_str), Some("debug"));
    assert_eq!(e.expect_exit, 0);

    let s = &job.steps[2];
    assert_eq!(
        s.name, "bin/selftest \"--slow mode\"",
        "derived names quote spaces"
    );
    let Action::Exec(e) = &s.action else { panic!() };
    assert_eq!(
        (e.expect_exit, e.cwd.as_deref(), e.stdin.as_deref()),
        (3, Some("bin"), Some("y\n"))
    );

    let s = &job.steps[3];
    assert!(s.always);
    let Action::Pull(p) = &s.action else { panic!() };
    assert_eq!(p.local, PathBuf::from("/ci/jobs/out/run.txt"));
    assert_eq!(s.action.kind(), StepKind::Pull);

    assert!(matches!(job.steps[4].action, Action::Reset));

    let s = &job.steps[5];
    assert_eq!(s.timeout, Duration::from_secs(5));
    let Action::WaitForConsole(w) = &s.action else {
        panic!()
    };
    assert!(w.regex.is_match("hello\nboot id=0badc0de\n"));
    assert!(!w.regex.is_match("boot id=xyz"));

    let cases: Vec<&str> = job.test_cases().map(|s| s.name.as_str()).collect();
    assert_eq!(cases, ["selftest passes", "bin/selftest \"--slow mode\""]);
}

#[test]
fn defaults_apply_when_not_given() {
    let job = parse("[[step]]\nexec = [\"true\"]\n").unwrap();
    assert_eq!(job.name, "smoke", "named after the file");
    assert_eq!(job.timeout, None);
    assert_eq!(job.steps[0].timeout, DEFAULT_STEP_TIMEOUT);
    assert_eq!(job.steps[0].on_failure, OnFailure::Stop);
    let job =
        parse("[defaults]\non_failure = \"continue\"\n[[step]]\nexec = [\"true\"]\n").unwrap();
    assert_eq!(job.steps[0].on_failure, OnFailure::Continue);
}

#[test]
fn repeated_derived_names_get_their_step_number() {
    let job = parse("[[step]]\nexec = [\"t\"]\n[[step]]\nreset = {}\n[[step]]\nexec = [\"t\"]\n")
        .unwrap();
    let names: Vec<&str> = job.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["t", "reset", "t (step 3)"]);
}

#[test]
fn unknown_keys_and_wrong_types_name_the_step() {
    assert_eq!(
        error("[[step]]\nname = \"selftest\"\nexec = [\"x\"]\nexpect_exitt = 1\n"),
        "/ci/jobs/smoke.toml:4:1: step 1 (\"selftest\"): unknown field `expect_exitt`, expected one of `name`, `timeout`, `on_failure`, `always`, `push`, `pull`, `exec`, `reset`, `wait_for_console`, `expect_exit`, `env`, `cwd`, `stdin` (did you mean `expect_exit`?)"
    );
    assert_eq!(
        error("[[step]]\nexec = [\"a\"]\n\n[[step]]\npush = { local = \"a\", remot = \"b\" }\n"),
        "/ci/jobs/smoke.toml:5:23: step 2: push: unknown field `remot`, expected one of `local`, `remote`, `mode` (did you mean `remote`?)"
    );
    assert_eq!(
        error("[[step]]\nexec = \"bin/selftest --quick\"\n"),
        "/ci/jobs/smoke.toml:2:8: step 1: exec: invalid type: string \"bin/selftest --quick\", expected a sequence"
    );
    assert_eq!(
        error("[[step]]\npush = { local = \"a\" }\n"),
        "/ci/jobs/smoke.toml:2:8: step 1: push: missing field `remote`"
    );
    assert_eq!(
        error("[[step]]\nexec = [\"a\"]\non_failure = \"ignore\"\n"),
        "/ci/jobs/smoke.toml:3:14: step 1: on_failure: unknown variant `ignore`, expected `stop` or `continue`"
    );
    // A wait with its own timeout: one timeout per step, on the step.
    assert_eq!(
        error("[[step]]\nwait_for_console = { regex = \"x\", timeout = \"5s\" }\n"),
        "/ci/jobs/smoke.toml:2:35: step 1: wait_for_console: unknown field `timeout`, expected `regex`"
    );
}

#[test]
fn exactly_one_action_per_step() {
    assert_eq!(
        error("[[step]]\nname = \"x\"\n"),
        "/ci/jobs/smoke.toml:1:1: step 1 (\"x\"): no action; give one of push, pull, exec, reset or wait_for_console"
    );
    assert_eq!(
        error("[[step]]\nexec = [\"a\"]\npush = { local = \"a\", remote = \"b\" }\n"),
        "/ci/jobs/smoke.toml:3:8: step 1: one action per step, but it has both exec and push; split it into two [[step]]s"
    );
    assert_eq!(
        error("[[step]]\npush = { local = \"a\", remote = \"b\" }\nexpect_exit = 1\n"),
        "/ci/jobs/smoke.toml:3:15: step 1: expect_exit: only exec steps take expect_exit, this is a push step"
    );
    assert_eq!(
        error("name = \"x\"\n"),
        "/ci/jobs/smoke.toml:1:1: the job has no steps; add one, e.g.\n[[step]]\nexec = [\"bin/selftest\"]"
    );
}

#[test]
fn values_are_checked() {
    assert_eq!(
        error("[[step]]\nexec = []\n"),
        "/ci/jobs/smoke.toml:2:8: step 1: exec: give the program and its arguments, e.g. [\"bin/selftest\", \"--quick\"]"
    );
    assert_eq!(
        error("[[step]]\npush = { local = \"a\", remote = \"\" }\n"),
        "/ci/jobs/smoke.toml:2:32: step 1: push.remote: is empty; give a path on the device"
    );
    assert_eq!(
        error("[[step]]\npull = { remote = \"a\", local = \"\" }\n"),
        "/ci/jobs/smoke.toml:2:32: step 1: pull.local: is empty; give a path relative to the job file"
    );
    assert_eq!(
        error("[[step]]\npush = { local = \"a\", remote = \"b\", mode = 755 }\n"),
        "/ci/jobs/smoke.toml:2:44: step 1: push.mode: 755 is decimal, which is mode 0o1363; write file modes in octal, e.g. 0o755"
    );
    assert_eq!(
        error("[[step]]\npush = { local = \"a\", remote = \"b\", mode = 0o17777 }\n"),
        "/ci/jobs/smoke.toml:2:44: step 1: push.mode: 0o17777 is not a file mode; write e.g. 0o755 or 0o644 (at most 0o7777)"
    );
    assert_eq!(
        error("[[step]]\nexec = [\"a\"]\nenv = { \"A=B\" = \"1\" }\n"),
        "/ci/jobs/smoke.toml:3:7: step 1: env: \"A=B\" is not a variable name (empty, or contains '=' or NUL)"
    );
    assert_eq!(
        error("[[step]]\nexec = [\"a\"]\ntimeout = \"30\"\n"),
        "/ci/jobs/smoke.toml:3:11: step 1: timeout: \"30\" is not a duration (time unit needed, for example 30sec or 30ms); write e.g. \"90s\", \"5m\" or \"1h 30m\""
    );
    assert_eq!(
        error("timeout = \"0s\"\n[[step]]\nexec = [\"a\"]\n"),
        "/ci/jobs/smoke.toml:1:11: timeout: \"0s\" is zero; give a positive duration"
    );
    // The detail under the first line is the regex crate's, with a caret
    // under the problem.
    let e = error("[[step]]\nwait_for_console = { regex = \"boot id=[0-9a-f{8}\" }\n");
    assert!(e.starts_with(
        "/ci/jobs/smoke.toml:2:30: step 1: wait_for_console.regex: not a valid regular expression:\n    regex parse error:\n        boot id=[0-9a-f{8}\n"
    ), "{e}");
    assert!(e.ends_with("error: unclosed character class"), "{e}");
    assert_eq!(
        error("[[step]]\nname = \"a\"\nexec = [\"a\"]\n[[step]]\nname = \"a\"\nexec = [\"b\"]\n"),
        "/ci/jobs/smoke.toml:5:8: step 2 (\"a\"): name: step 1 has the same name; test names must be unique"
    );
    assert_eq!(
        error("labels = [\"pool\", \"pool\"]\n[[step]]\nreset = {}\n"),
        "/ci/jobs/smoke.toml:1:19: labels: \"pool\" is given twice"
    );
}

#[test]
fn toml_octal_modes_are_read_as_octal() {
    // TOML 1.0 has 0o octal integers; a decimal 755 is a different mode and
    // is refused above, so nobody ends up with --wxrw--wt by accident.
    let job = parse("[[step]]\npush = { local = \"a\", remote = \"b\", mode = 0o644 }\n").unwrap();
    let Action::Push(p) = &job.steps[0].action else {
        panic!()
    };
    assert_eq!(p.mode, Some(420));
}

#[test]
fn every_problem_is_reported() {
    let e = errors("[[step]]\nexec = []\n[[step]]\npush = { local = \"\", remote = \"\" }\n[[step]]\nreset = {}\nstdin = \"x\"\n");
    assert_eq!(e.len(), 4, "{e:#?}");
    assert!(e[0].starts_with("/ci/jobs/smoke.toml:2:8: step 1: exec:"));
    assert!(e[1].starts_with("/ci/jobs/smoke.toml:4:18: step 2: push.local:"));
    assert!(e[2].starts_with("/ci/jobs/smoke.toml:4:31: step 2: push.remote:"));
    assert!(e[3].starts_with(
        "/ci/jobs/smoke.toml:7:9: step 3: stdin: only exec steps take stdin, this is a reset step"
    ));
}

#[test]
fn load_reads_the_file_and_resolves_against_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("health.toml");
    std::fs::write(
        &path,
        "[[step]]\npush = { local = \"fw.bin\", remote = \"fw.bin\" }\n",
    )
    .unwrap();
    let job = Job::load(&path).unwrap();
    assert_eq!(job.name, "health");
    let Action::Push(p) = &job.steps[0].action else {
        panic!()
    };
    assert_eq!(p.local, dir.path().join("fw.bin"));
}

#[test]
fn the_documented_example_loads() {
    let text = crate::config::diag::doc_toml(include_str!("../job.rs"));
    assert!(text.contains("[[step]]"), "found the example");
    if let Err(e) = Job::parse(&text, Path::new("/ci/smoke.toml")) {
        panic!("the example in the module docs does not load:\n{e}\n---\n{text}");
    }
}
