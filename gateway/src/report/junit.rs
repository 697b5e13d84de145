//! JUnit XML for CI systems (Jenkins, GitLab, GitHub test reporters).
//!
//! One `<testsuite>` per job result (a job on a device), inside one
//! `<testsuites>` root. Each test case ([`JobResult::test_cases`]) is a
//! `<testcase>`; a test failure is `<failure>`, an infrastructure problem is
//! `<error>` (never the other way round), a skipped step is `<skipped>`, and
//! the step's output is attached as `<system-out>` / `<system-err>`. The
//! device, gateway, start time and duration are suite `<properties>`;
//! `classname` is `job.device`, which CI tools show as package and class.
//!
//! Text is escaped here rather than by quick-xml so that everything a device
//! prints survives: `<`, `&`, `>` (and with it `]]>`) become references,
//! carriage returns and, in attributes, newlines and tabs become character
//! references (a parser would otherwise normalise them away), and the control
//! characters XML 1.0 forbids become visible control pictures (see
//! [`visible_text`]).

use std::borrow::Cow;
use std::io;

use quick_xml::events::attributes::Attribute;
use quick_xml::events::{BytesDecl, BytesText, Event};
use quick_xml::name::QName;
use quick_xml::Writer;

use super::{human_duration, visible_text, JobResult, Outcome, StepResult};

/// Writes `results` as one JUnit XML document.
pub fn write_junit<W: io::Write>(results: &[JobResult], out: W) -> io::Result<()> {
    let mut w = Writer::new_with_indent(out, b' ', 2);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    let total = results
        .iter()
        .fold(super::Counts::default(), |acc, r| acc.merge(r.counts()));
    let time: f64 = results.iter().map(|r| r.duration.as_secs_f64()).sum();
    let name = match results {
        [only] => only.job.clone(),
        _ => "corral".to_string(),
    };
    w.create_element("testsuites")
        .with_attribute(attr("name", &name))
        .with_attribute(attr("tests", &total.tests.to_string()))
        .with_attribute(attr("failures", &total.failed.to_string()))
        .with_attribute(attr("errors", &total.errors.to_string()))
        .with_attribute(attr("skipped", &total.skipped.to_string()))
        .with_attribute(attr("time", &format!("{time:.3}")))
        .write_inner_content(|w| {
            for (id, r) in results.iter().enumerate() {
                write_suite(w, id, r)?;
            }
            Ok(())
        })?;
    w.get_mut().write_all(b"\n")
}

/// [`write_junit`] into a string.
pub fn to_junit_string(results: &[JobResult]) -> String {
    let mut buf = Vec::new();
    write_junit(results, &mut buf).expect("writing to a Vec cannot fail");
    String::from_utf8(buf).expect("the writer emits UTF-8")
}

fn write_suite<W: io::Write>(w: &mut Writer<W>, id: usize, r: &JobResult) -> io::Result<()> {
    let counts = r.counts();
    let started = super::clamp_time(r.started_at);
    // The JUnit schema's timestamp has no zone; it is UTC here.
    let timestamp = humantime::format_rfc3339_seconds(started).to_string();
    let timestamp = timestamp.trim_end_matches('Z');
    let mut suite = w
        .create_element("testsuite")
        .with_attribute(attr("name", &format!("{} on {}", r.job, r.device)))
        .with_attribute(attr("id", &id.to_string()))
        .with_attribute(attr("tests", &counts.tests.to_string()))
        .with_attribute(attr("failures", &counts.failed.to_string()))
        .with_attribute(attr("errors", &counts.errors.to_string()))
        .with_attribute(attr("skipped", &counts.skipped.to_string()))
        .with_attribute(attr("time", &seconds(r.duration)))
        .with_attribute(attr("timestamp", timestamp));
    if let Some(g) = &r.gateway {
        suite = suite.with_attribute(attr("hostname", g));
    }
    suite.write_inner_content(|w| {
        w.create_element("properties").write_inner_content(|w| {
            let mut property = |name: &str, value: &str| -> io::Result<()> {
                w.create_element("property")
                    .with_attribute(attr("name", name))
                    .with_attribute(attr("value", value))
                    .write_empty()?;
                Ok(())
            };
            property("job", &r.job)?;
            property("device", &r.device)?;
            if let Some(g) = &r.gateway {
                property("gateway", g)?;
            }
            property(
                "started_at",
                &humantime::format_rfc3339_millis(started).to_string(),
            )?;
            property("duration", &human_duration(r.duration))?;
            property("duration_ms", &r.duration.as_millis().to_string())?;
            Ok(())
        })?;
        let classname = format!("{}.{}", r.job, r.device);
        for s in r.test_cases() {
            write_case(w, &classname, s)?;
        }
        Ok(())
    })?;
    Ok(())
}

fn write_case<W: io::Write>(w: &mut Writer<W>, classname: &str, s: &StepResult) -> io::Result<()> {
    w.create_element("testcase")
        .with_attribute(attr("name", &s.name))
        .with_attribute(attr("classname", classname))
        .with_attribute(attr("time", &seconds(s.duration)))
        .write_inner_content(|w| {
            match &s.outcome {
                Outcome::Passed => {}
                Outcome::Failed { message } => {
                    let kind = match &s.exit {
                        Some(e) if e.signal.is_some() => "signal",
                        Some(e) if e.reason == super::ExitReason::Exited => "exit_code",
                        Some(e) => e.reason.as_str(),
                        None => s.kind.as_str(),
                    };
                    w.create_element("failure")
                        .with_attribute(attr("message", message))
                        .with_attribute(attr("type", kind))
                        .write_text_content(text(&details(message, s)))?;
                }
                Outcome::Error { kind, message } => {
                    w.create_element("error")
                        .with_attribute(attr("message", message))
                        .with_attribute(attr("type", kind.as_str()))
                        .write_text_content(text(&details(message, s)))?;
                }
                Outcome::Skipped { message } => {
                    w.create_element("skipped")
                        .with_attribute(attr("message", message))
                        .write_empty()?;
                }
            }
            if !s.stdout.text.is_empty() {
                w.create_element("system-out")
                    .write_text_content(text(&s.stdout.text))?;
            }
            if !s.stderr.text.is_empty() {
                w.create_element("system-err")
                    .write_text_content(text(&s.stderr.text))?;
            }
            Ok(())
        })?;
    Ok(())
}

/// The body of a `<failure>` or `<error>`: the message, then how the command
/// ended.
fn details(message: &str, s: &StepResult) -> String {
    let mut out = message.to_string();
    if let Some(e) = &s.exit {
        out.push_str(&format!("\n{} step; ended: {}", s.kind, e.reason.as_str()));
        if let Some(code) = e.code {
            out.push_str(&format!(", exit code {code}"));
        }
        if let Some(sig) = e.signal {
            out.push_str(&format!(", signal {sig}"));
        }
    }
    if s.stdout.truncated || s.stderr.truncated {
        out.push_str("\n(output was shortened; see the job result for sizes)");
    }
    out
}

fn seconds(d: std::time::Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

fn text(s: &str) -> BytesText<'static> {
    BytesText::from_escaped(escape(s, false))
}

fn attr<'a>(key: &'a str, value: &str) -> Attribute<'a> {
    Attribute {
        key: QName(key.as_bytes()),
        value: Cow::Owned(escape(value, true).into_bytes()),
    }
}

/// Escapes text for XML 1.0 content or a double-quoted attribute value.
fn escape(s: &str, attribute: bool) -> String {
    let s = visible_text(s);
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attribute => out.push_str("&quot;"),
            '\r' => out.push_str("&#13;"),
            '\n' if attribute => out.push_str("&#10;"),
            '\t' if attribute => out.push_str("&#9;"),
            c => out.push(c),
        }
    }
    out
}
