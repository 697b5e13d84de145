use std::time::{Duration, SystemTime, UNIX_EPOCH};

use quick_xml::events::Event;
use quick_xml::Reader;

use super::junit::to_junit_string;
use super::table::render_table;
use super::*;

/// A result with one step of each outcome, output full of things that break
/// naive XML writers, and a skipped step after an infrastructure error.
pub(crate) fn sample() -> JobResult {
    let nasty = "line 1 <tag> & \"q\" 'a'\n]]> end\r\n\u{1b}[31mred\u{1b}[0m \u{0} nul \u{7} bell \u{7f} del \u{fffe}\ttab";
    JobResult {
        format: RESULT_FORMAT,
        job: "smoke".into(),
        device: "pico-1".into(),
        gateway: Some("lab-pc-3".into()),
        started_at: UNIX_EPOCH + Duration::from_millis(1_714_564_800_250),
        duration: Duration::from_millis(12_345),
        steps: vec![
            StepResult {
                number: 1,
                name: "push build/selftest to bin/selftest".into(),
                kind: StepKind::Push,
                outcome: Outcome::Passed,
                duration: Duration::from_millis(120),
                exit: None,
                stdout: Output::default(),
                stderr: Output::default(),
            },
            StepResult {
                number: 2,
                name: "selftest passes".into(),
                kind: StepKind::Exec,
                outcome: Outcome::Passed,
                duration: Duration::from_millis(1500),
                exit: Some(ExitStatus {
                    reason: ExitReason::Exited,
                    code: Some(0),
                    signal: None,
                }),
                stdout: Output::from_text("all 12 checks ok\n"),
                stderr: Output::default(),
            },
            StepResult {
                number: 3,
                name: "bin/selftest --slow".into(),
                kind: StepKind::Exec,
                outcome: Outcome::Failed {
                    message: "exit code 1, expected 0".into(),
                },
                duration: Duration::from_millis(2250),
                exit: Some(ExitStatus {
                    reason: ExitReason::Exited,
                    code: Some(1),
                    signal: None,
                }),
                stdout: Output::from_text(nasty),
                stderr: Output::from_text("assertion failed: x < y\n"),
            },
            StepResult {
                number: 4,
                name: "stress".into(),
                kind: StepKind::Exec,
                outcome: Outcome::Error {
                    kind: ErrorKind::LinkLost,
                    message: "link to pico-1 lost: /dev/ttyACM0 disappeared\n(re-plugged?)".into(),
                },
                duration: Duration::from_millis(800),
                exit: None,
                stdout: Output::from_text("partial <output>"),
                stderr: Output::default(),
            },
            StepResult {
                number: 5,
                name: "final check".into(),
                kind: StepKind::Exec,
                outcome: Outcome::Skipped {
                    message: "step 4 hit an infrastructure error".into(),
                },
                duration: Duration::ZERO,
                exit: None,
                stdout: Output::default(),
                stderr: Output::default(),
            },
            StepResult {
                number: 6,
                name: "pull logs/run.txt".into(),
                kind: StepKind::Pull,
                outcome: Outcome::Skipped {
                    message: "step 4 hit an infrastructure error".into(),
                },
                duration: Duration::ZERO,
                exit: None,
                stdout: Output::default(),
                stderr: Output::default(),
            },
        ],
    }
}

#[test]
fn json_round_trips_and_has_the_documented_shape() {
    let r = sample();
    let json = r.to_json();
    assert_eq!(JobResult::from_json(&json).unwrap(), r);

    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["format"], 1);
    assert_eq!(v["started_at"], "2024-05-01T12:00:00.250Z");
    assert_eq!(v["duration_ms"], 12345);
    assert_eq!(v["steps"][2]["kind"], "exec");
    assert_eq!(
        v["steps"][2]["outcome"],
        serde_json::json!({"status": "failed", "message": "exit code 1, expected 0"})
    );
    assert_eq!(
        v["steps"][2]["exit"],
        serde_json::json!({"reason": "exited", "code": 1})
    );
    assert_eq!(v["steps"][3]["outcome"]["status"], "error");
    assert_eq!(v["steps"][3]["outcome"]["kind"], "link_lost");
    assert_eq!(v["steps"][4]["outcome"]["status"], "skipped");
    assert_eq!(
        v["steps"][0]["stdout"],
        serde_json::json!({"text": "", "truncated": false, "total_bytes": 0})
    );
    assert!(v["steps"][0].get("exit").is_none());
}

#[test]
fn json_from_a_newer_writer_still_reads() {
    let mut v: serde_json::Value = serde_json::from_str(&sample().to_json()).unwrap();
    v["coordinator_run"] = "r-17".into();
    v["steps"][3]["outcome"]["kind"] = "power_failure".into();
    v["steps"][2]["exit"]["reason"] = "oom_killed".into();
    let r = JobResult::from_json(&v.to_string()).unwrap();
    assert_eq!(
        r.steps[3].outcome,
        Outcome::Error {
            kind: ErrorKind::Other,
            message: "link to pico-1 lost: /dev/ttyACM0 disappeared\n(re-plugged?)".into()
        }
    );
    assert_eq!(r.steps[2].exit.as_ref().unwrap().reason, ExitReason::Other);
    let bad = sample()
        .to_json()
        .replace("2024-05-01T12:00:00.250Z", "yesterday");
    assert!(JobResult::from_json(&bad)
        .unwrap_err()
        .to_string()
        .contains("\"yesterday\""));
}

#[test]
fn counts_and_verdict_keep_failures_and_errors_apart() {
    let r = sample();
    // Test cases: the four exec steps; the passed push and skipped pull are not.
    assert_eq!(
        r.counts(),
        Counts {
            tests: 4,
            passed: 1,
            failed: 1,
            errors: 1,
            skipped: 1
        }
    );
    // A real failure is not hidden behind a later infrastructure error.
    assert_eq!(r.outcome(), JobOutcome::Failed);

    let mut infra_only = sample();
    infra_only.steps[2].outcome = Outcome::Passed;
    assert_eq!(infra_only.outcome(), JobOutcome::Error);

    let mut passed = sample();
    passed.steps.truncate(3);
    passed.steps[2].outcome = Outcome::Passed;
    assert_eq!(passed.outcome(), JobOutcome::Passed);

    // A failed push is a test case, so JUnit cannot show green.
    let mut bad_push = sample();
    bad_push.steps[0].outcome = Outcome::Failed {
        message: "build/selftest does not exist".into(),
    };
    let names: Vec<&str> = bad_push.test_cases().map(|s| s.name.as_str()).collect();
    assert_eq!(names[0], "push build/selftest to bin/selftest");
    assert_eq!(bad_push.counts().failed, 2);
}

#[test]
fn output_buffer_keeps_head_and_tail_in_bounded_memory() {
    let mut b = OutputBuffer::new(10);
    b.push(b"hello");
    assert_eq!(b.clone().finish(), Output::from_text("hello"));
    b.push(b"-world");
    b.push(b"");
    for _ in 0..1000 {
        b.push(b"0123456789");
    }
    b.push(b"THE END");
    assert_eq!(b.total_bytes(), 11 + 10_000 + 7);
    let out = b.finish();
    assert!(out.truncated);
    assert_eq!(out.total_bytes, 10_018);
    assert_eq!(out.text, "hello\n[... 10008 bytes omitted ...]\nE END");

    // Exactly at the limit nothing is lost; invalid UTF-8 is replaced.
    let mut b = OutputBuffer::new(4);
    b.push(&[b'a', 0xff, b'b', b'c']);
    let out = b.finish();
    assert_eq!(out.text, "a\u{fffd}bc");
    assert!(!out.truncated);

    // One large write larger than the tail.
    let mut b = OutputBuffer::new(6);
    b.push(b"abcdefghijklmnopqrstuvwxyz");
    assert_eq!(b.finish().text, "abc\n[... 20 bytes omitted ...]\nxyz");
}

#[test]
fn human_durations() {
    assert_eq!(human_duration(Duration::from_millis(850)), "850ms");
    assert_eq!(human_duration(Duration::from_millis(1234)), "1.23s");
    assert_eq!(human_duration(Duration::from_secs(123)), "2m03s");
    assert_eq!(human_duration(Duration::from_secs(3720)), "1h02m");
}

// --- JUnit, read back with a real XML parser -------------------------------

#[derive(Debug, Default)]
struct Element {
    name: String,
    attrs: Vec<(String, String)>,
    children: Vec<Element>,
    text: String,
}

impl Element {
    fn attr(&self, name: &str) -> &str {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("<{}> has no {name}", self.name))
    }

    fn all(&self, name: &str) -> Vec<&Element> {
        self.children.iter().filter(|c| c.name == name).collect()
    }

    fn one(&self, name: &str) -> &Element {
        let found = self.all(name);
        assert_eq!(found.len(), 1, "<{}> should have one <{name}>", self.name);
        found[0]
    }
}

fn parse_xml(xml: &str) -> Element {
    let mut reader = Reader::from_str(xml);
    let mut stack = vec![Element::default()];
    let start = |e: &quick_xml::events::BytesStart<'_>| Element {
        name: String::from_utf8(e.name().as_ref().to_vec()).unwrap(),
        attrs: e
            .attributes()
            .map(|a| {
                let a = a.expect("well-formed attribute");
                (
                    String::from_utf8(a.key.as_ref().to_vec()).unwrap(),
                    a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .expect("attribute value unescapes")
                        .into_owned(),
                )
            })
            .collect(),
        ..Element::default()
    };
    loop {
        match reader.read_event().expect("well-formed XML") {
            Event::Start(e) => stack.push(start(&e)),
            Event::Empty(e) => stack.last_mut().unwrap().children.push(start(&e)),
            Event::End(_) => {
                let done = stack.pop().unwrap();
                stack.last_mut().unwrap().children.push(done);
            }
            Event::Text(t) => stack
                .last_mut()
                .unwrap()
                .text
                .push_str(&t.xml10_content().unwrap()),
            Event::CData(_) => panic!("no CDATA is written"),
            Event::GeneralRef(r) => {
                let s = if let Some(c) = r.resolve_char_ref().unwrap() {
                    c.to_string()
                } else {
                    let name = r.decode().unwrap();
                    quick_xml::escape::resolve_predefined_entity(&name)
                        .unwrap_or_else(|| panic!("undefined entity &{name};"))
                        .to_string()
                };
                stack.last_mut().unwrap().text.push_str(&s);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(stack.len(), 1, "every element closed");
    let mut doc = stack.pop().unwrap();
    assert_eq!(doc.children.len(), 1, "one root element");
    doc.children.pop().unwrap()
}

/// Whether a character may appear in an XML 1.0 document.
fn xml10_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{fffe}' && c != '\u{ffff}')
}

#[test]
fn junit_counts_and_structure() {
    let xml = to_junit_string(&[sample()]);
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites"));
    let root = parse_xml(&xml);
    assert_eq!(root.name, "testsuites");
    assert_eq!(
        (
            root.attr("tests"),
            root.attr("failures"),
            root.attr("errors"),
            root.attr("skipped")
        ),
        ("4", "1", "1", "1")
    );
    let suite = root.one("testsuite");
    assert_eq!(suite.attr("name"), "smoke on pico-1");
    assert_eq!(suite.attr("hostname"), "lab-pc-3");
    assert_eq!(suite.attr("time"), "12.345");
    assert_eq!(suite.attr("timestamp"), "2024-05-01T12:00:00");
    assert_eq!(
        (
            suite.attr("tests"),
            suite.attr("failures"),
            suite.attr("errors"),
            suite.attr("skipped")
        ),
        ("4", "1", "1", "1")
    );
    let props: Vec<(&str, &str)> = suite
        .one("properties")
        .all("property")
        .iter()
        .map(|p| (p.attr("name"), p.attr("value")))
        .collect();
    assert!(props.contains(&("device", "pico-1")));
    assert!(props.contains(&("duration", "12.35s")));
    assert!(props.contains(&("duration_ms", "12345")));
    assert!(props.contains(&("started_at", "2024-05-01T12:00:00.250Z")));

    let cases = suite.all("testcase");
    let names: Vec<&str> = cases.iter().map(|c| c.attr("name")).collect();
    assert_eq!(
        names,
        [
            "selftest passes",
            "bin/selftest --slow",
            "stress",
            "final check"
        ]
    );
    assert!(cases.iter().all(|c| c.attr("classname") == "smoke.pico-1"));
    assert_eq!(cases[1].attr("time"), "2.250");

    // Passed: output only.
    assert!(cases[0].all("failure").is_empty() && cases[0].all("error").is_empty());
    assert_eq!(cases[0].one("system-out").text, "all 12 checks ok\n");

    // A test failure is <failure>, never <error>.
    let failure = cases[1].one("failure");
    assert!(cases[1].all("error").is_empty());
    assert_eq!(failure.attr("message"), "exit code 1, expected 0");
    assert_eq!(failure.attr("type"), "exit_code");
    assert_eq!(
        failure.text,
        "exit code 1, expected 0\nexec step; ended: exited, exit code 1"
    );
    assert_eq!(cases[1].one("system-err").text, "assertion failed: x < y\n");

    // An infrastructure problem is <error>, never <failure>.
    let error = cases[2].one("error");
    assert!(cases[2].all("failure").is_empty());
    assert_eq!(error.attr("type"), "link_lost");
    // Newlines in attributes survive as character references.
    assert_eq!(
        error.attr("message"),
        "link to pico-1 lost: /dev/ttyACM0 disappeared\n(re-plugged?)"
    );
    assert_eq!(cases[2].one("system-out").text, "partial <output>");

    assert_eq!(
        cases[3].one("skipped").attr("message"),
        "step 4 hit an infrastructure error"
    );
    assert!(cases[3].all("system-out").is_empty());
}

#[test]
fn junit_escapes_device_output() {
    let xml = to_junit_string(&[sample()]);
    assert!(
        xml.chars().all(xml10_char),
        "only XML 1.0 characters are written"
    );
    let root = parse_xml(&xml);
    let failing = &root.one("testsuite").all("testcase")[1];
    // Markup characters, `]]>`, CR and tab come back exactly; ESC, NUL, BEL,
    // DEL and U+FFFE, which XML 1.0 cannot carry, come back as visible
    // stand-ins.
    assert_eq!(
        failing.one("system-out").text,
        "line 1 <tag> & \"q\" 'a'\n]]> end\r\n\u{241b}[31mred\u{241b}[0m \u{2400} nul \u{2407} bell \u{2421} del \u{fffd}\ttab"
    );
}

#[test]
fn junit_with_several_devices_has_a_suite_each() {
    let a = sample();
    let mut b = sample();
    b.device = "pico-2".into();
    b.gateway = None;
    for s in &mut b.steps {
        if s.kind == StepKind::Exec {
            s.outcome = Outcome::Passed;
        }
    }
    let root = parse_xml(&to_junit_string(&[a, b]));
    assert_eq!(root.attr("name"), "corral");
    assert_eq!(
        (
            root.attr("tests"),
            root.attr("failures"),
            root.attr("errors")
        ),
        ("8", "1", "1")
    );
    let suites = root.all("testsuite");
    assert_eq!(suites.len(), 2);
    assert_eq!(suites[1].attr("name"), "smoke on pico-2");
    assert_eq!(suites[1].attr("failures"), "0");
    assert!(!suites[1].attrs.iter().any(|(k, _)| k == "hostname"));
    assert_eq!(
        suites[1].all("testcase")[0].attr("classname"),
        "smoke.pico-2"
    );
}

#[test]
fn junit_for_no_results_is_still_a_document() {
    let root = parse_xml(&to_junit_string(&[]));
    assert_eq!(root.attr("tests"), "0");
    assert!(root.children.is_empty());
}

// --- terminal table --------------------------------------------------------

#[test]
fn table_without_colour() {
    let text = render_table(&[sample()], false);
    let expected = "\
STEP                                 OUTCOME  DURATION  DEVICE
push build/selftest to bin/selftest  passed      120ms  pico-1
selftest passes                      passed      1.50s  pico-1
bin/selftest --slow                  FAILED      2.25s  pico-1
    exit code 1, expected 0
stress                               ERROR       800ms  pico-1
    link to pico-1 lost: /dev/ttyACM0 disappeared
    (re-plugged?)
final check                          skipped       0ms  pico-1
pull logs/run.txt                    skipped       0ms  pico-1
smoke on pico-1: FAILED (tests: 1 passed, 1 failed, 1 errors, 1 skipped) in 12.35s
";
    assert_eq!(text, expected);
    assert!(!text.contains('\u{1b}'));
}

#[test]
fn table_with_colour_paints_only_outcomes() {
    let text = render_table(&[sample()], true);
    assert!(
        text.contains("\u{1b}[31mFAILED\u{1b}[0m      2.25s"),
        "{text}"
    );
    assert!(text.contains("\u{1b}[32mpassed\u{1b}[0m "));
    assert!(text.contains("\u{1b}[33mERROR\u{1b}[0m "));
    // Columns line up the same with and without colour.
    let strip = |s: &str| {
        let mut out = String::new();
        let mut in_escape = false;
        for c in s.chars() {
            match (in_escape, c) {
                (false, '\u{1b}') => in_escape = true,
                (true, 'm') => in_escape = false,
                (true, _) => {}
                (false, c) => out.push(c),
            }
        }
        out
    };
    assert_eq!(strip(&text), render_table(&[sample()], false));
}

#[test]
fn table_cannot_be_used_to_send_escapes_to_the_terminal() {
    let mut r = sample();
    r.steps[2].name = "evil\u{1b}]0;pwned\u{7}\nname".into();
    r.steps[2].outcome = Outcome::Failed {
        message: "\u{1b}[2Jcleared".into(),
    };
    let text = render_table(&[r], false);
    assert!(!text.contains('\u{1b}') && !text.contains('\u{7}'));
    assert!(text.contains("evil\u{241b}]0;pwned\u{2407} name"));
    assert!(text.contains("    \u{241b}[2Jcleared\n"));
}

#[test]
fn timestamps_outside_what_rfc3339_can_show_are_clamped_not_panicking() {
    let mut r = sample();
    r.started_at = UNIX_EPOCH - Duration::from_secs(10);
    assert!(r.to_json().contains("\"1970-01-01T00:00:00.000Z\""));
    assert!(to_junit_string(&[r.clone()]).contains("timestamp=\"1970-01-01T00:00:00\""));
    r.started_at = SystemTime::UNIX_EPOCH + Duration::from_secs(400_000_000_000);
    assert!(r.to_json().contains("\"9999-12-31T23:59:59.000Z\""));
}
