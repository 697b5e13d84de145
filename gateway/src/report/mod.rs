//! Job results: the record of what each step of a job did on a device.
//!
//! [`JobResult`] is the one model; it is written as JSON for storage and the
//! coordinator ([`JobResult::to_json`]), as JUnit XML for CI ([`junit`]), and
//! as a table for a person at a terminal ([`table`]).
//!
//! The model keeps two kinds of "not passed" strictly apart:
//!
//! * [`Outcome::Failed`] — the test or the job itself is wrong: a command
//!   exited with an unexpected code, was killed by a signal, ran past its
//!   timeout or could not be started; a regex never matched; a file to push
//!   does not exist. Running it again elsewhere would fail the same way.
//! * [`Outcome::Error`] — the infrastructure let the job down: the link was
//!   lost, the device rebooted under it, the agent stopped answering. The job
//!   may be retried on another attempt.
//!
//! Output captured from a device can be anything and any size;
//! [`OutputBuffer`] keeps a bounded head and tail of it.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

pub use crate::config::job::StepKind;

pub mod junit;
pub mod table;

/// Version of the JSON layout, stored in every result as `format`. It goes
/// up when a field changes meaning; adding a field does not change it, and
/// readers ignore fields they do not know.
pub const RESULT_FORMAT: u32 = 1;

/// Default cap on captured stdout or stderr per step, in bytes.
pub const DEFAULT_OUTPUT_LIMIT: usize = 64 * 1024;

/// The result of one job on one device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobResult {
    /// Layout version; [`RESULT_FORMAT`] when written by this code.
    pub format: u32,
    /// The job's name.
    pub job: String,
    /// The device it ran on.
    pub device: String,
    /// The gateway that ran it, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// When the job started; RFC 3339 UTC in JSON.
    #[serde(with = "rfc3339")]
    pub started_at: SystemTime,
    /// How long the whole job took; whole milliseconds in JSON
    /// (`duration_ms`).
    #[serde(rename = "duration_ms", with = "millis")]
    pub duration: Duration,
    /// Every step of the job, in order, including skipped ones.
    pub steps: Vec<StepResult>,
}

/// The result of one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepResult {
    /// 1-based position of the step in the job.
    pub number: usize,
    /// The step's name (unique within the job).
    pub name: String,
    /// What kind of step it was.
    pub kind: StepKind,
    /// How it ended.
    pub outcome: Outcome,
    /// How long it took; whole milliseconds in JSON (`duration_ms`).
    #[serde(rename = "duration_ms", with = "millis")]
    pub duration: Duration,
    /// How the command ended, for `exec` steps that ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<ExitStatus>,
    /// Captured standard output (for `wait_for_console`, the console text).
    #[serde(default)]
    pub stdout: Output,
    /// Captured standard error.
    #[serde(default)]
    pub stderr: Output,
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// It did what was expected.
    Passed,
    /// The test or job is wrong (see the module docs).
    Failed {
        /// What went wrong, for a person.
        message: String,
    },
    /// The infrastructure failed (see the module docs).
    Error {
        /// Which part failed.
        kind: ErrorKind,
        /// What went wrong, for a person.
        message: String,
    },
    /// It did not run.
    Skipped {
        /// Why, e.g. "step 2 failed".
        message: String,
    },
}

impl Outcome {
    /// `passed`, `failed`, `error` or `skipped`.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Failed { .. } => "failed",
            Outcome::Error { .. } => "error",
            Outcome::Skipped { .. } => "skipped",
        }
    }

    /// The message of a step that did not pass.
    pub fn message(&self) -> Option<&str> {
        match self {
            Outcome::Passed => None,
            Outcome::Failed { message }
            | Outcome::Error { message, .. }
            | Outcome::Skipped { message } => Some(message),
        }
    }
}

/// Which part of the infrastructure failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The link to the device went down (cable pulled, port vanished,
    /// connection reset).
    LinkLost,
    /// The device rebooted while the step ran (its boot id changed).
    DeviceRebooted,
    /// The link is up but the agent stopped answering.
    LinkTimeout,
    /// The agent reported an internal failure (out of memory, storage full).
    Agent,
    /// The gateway itself failed (e.g. could not open a local file it needs).
    Gateway,
    /// A kind written by a newer version.
    #[serde(other)]
    Other,
}

impl ErrorKind {
    /// The snake_case name used in JSON and JUnit.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::LinkLost => "link_lost",
            ErrorKind::DeviceRebooted => "device_rebooted",
            ErrorKind::LinkTimeout => "link_timeout",
            ErrorKind::Agent => "agent",
            ErrorKind::Gateway => "gateway",
            ErrorKind::Other => "other",
        }
    }
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    /// Why it ended.
    pub reason: ExitReason,
    /// Exit code, if it exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    /// Signal number, if a signal ended it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
}

/// Why a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ExitReason {
    /// It exited by itself (with a code or by a signal).
    Exited,
    /// It was killed at its timeout.
    TimedOut,
    /// It was cancelled.
    Cancelled,
    /// It could not be started (no such program, not executable).
    FailedToStart,
    /// A reason written by a newer version.
    #[serde(other)]
    Other,
}

impl ExitReason {
    /// The snake_case name used in JSON and JUnit.
    pub fn as_str(self) -> &'static str {
        match self {
            ExitReason::Exited => "exited",
            ExitReason::TimedOut => "timed_out",
            ExitReason::Cancelled => "cancelled",
            ExitReason::FailedToStart => "failed_to_start",
            ExitReason::Other => "other",
        }
    }
}

/// Captured output of a step, possibly shortened.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Output {
    /// The text (invalid UTF-8 replaced by U+FFFD). When `truncated`, the
    /// middle was dropped and a line `[... N bytes omitted ...]` stands in
    /// for it.
    pub text: String,
    /// Whether some of the output was dropped.
    pub truncated: bool,
    /// How many bytes the step produced in all.
    pub total_bytes: u64,
}

impl Output {
    /// Output kept in full.
    pub fn from_text(text: impl Into<String>) -> Self {
        let text = text.into();
        Output {
            total_bytes: text.len() as u64,
            text,
            truncated: false,
        }
    }
}

/// Collects a stream of output in bounded memory, keeping its first and last
/// bytes: the start shows what ran, the end shows how it failed.
#[derive(Debug, Clone)]
pub struct OutputBuffer {
    head_limit: usize,
    tail_limit: usize,
    head: Vec<u8>,
    tail: VecDeque<u8>,
    total: u64,
}

impl OutputBuffer {
    /// A buffer keeping at most `limit` bytes: half from the start, half from
    /// the end.
    pub fn new(limit: usize) -> Self {
        let head_limit = limit / 2;
        OutputBuffer {
            head_limit,
            tail_limit: limit - head_limit,
            head: Vec::new(),
            tail: VecDeque::new(),
            total: 0,
        }
    }

    /// Appends bytes as they arrive.
    pub fn push(&mut self, mut bytes: &[u8]) {
        self.total = self.total.saturating_add(bytes.len() as u64);
        let room = self.head_limit - self.head.len();
        let take = room.min(bytes.len());
        self.head.extend_from_slice(&bytes[..take]);
        bytes = &bytes[take..];
        if bytes.len() >= self.tail_limit {
            self.tail.clear();
            self.tail.extend(&bytes[bytes.len() - self.tail_limit..]);
        } else {
            let overflow = (self.tail.len() + bytes.len()).saturating_sub(self.tail_limit);
            self.tail.drain(..overflow);
            self.tail.extend(bytes);
        }
    }

    /// Bytes seen so far.
    pub fn total_bytes(&self) -> u64 {
        self.total
    }

    /// The captured output.
    pub fn finish(self) -> Output {
        let kept = (self.head.len() + self.tail.len()) as u64;
        let tail: Vec<u8> = self.tail.into_iter().collect();
        if kept == self.total {
            let mut all = self.head;
            all.extend_from_slice(&tail);
            return Output {
                text: String::from_utf8_lossy(&all).into_owned(),
                truncated: false,
                total_bytes: self.total,
            };
        }
        let mut text = String::from_utf8_lossy(&self.head).into_owned();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!("[... {} bytes omitted ...]\n", self.total - kept));
        text.push_str(&String::from_utf8_lossy(&tail));
        Output {
            text,
            truncated: true,
            total_bytes: self.total,
        }
    }
}

/// Counts of test cases by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Test cases in all.
    pub tests: usize,
    /// Passed.
    pub passed: usize,
    /// Failed.
    pub failed: usize,
    /// Infrastructure errors.
    pub errors: usize,
    /// Skipped.
    pub skipped: usize,
}

impl Counts {
    fn add(&mut self, outcome: &Outcome) {
        self.tests += 1;
        match outcome {
            Outcome::Passed => self.passed += 1,
            Outcome::Failed { .. } => self.failed += 1,
            Outcome::Error { .. } => self.errors += 1,
            Outcome::Skipped { .. } => self.skipped += 1,
        }
    }

    /// Sums counts.
    pub fn merge(self, other: Counts) -> Counts {
        Counts {
            tests: self.tests + other.tests,
            passed: self.passed + other.passed,
            failed: self.failed + other.failed,
            errors: self.errors + other.errors,
            skipped: self.skipped + other.skipped,
        }
    }
}

/// The verdict on a whole job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobOutcome {
    /// Every step passed or was skipped without a failure.
    Passed,
    /// A step failed. This wins over `Error`: a real failure is never hidden
    /// behind a later infrastructure error, and is never retried silently.
    Failed,
    /// No step failed, but the infrastructure did; the job may be retried.
    Error,
}

impl JobResult {
    /// The steps reported as test cases: every `exec` step, and any other
    /// step that failed or hit an error, so that a broken `push` makes a CI
    /// report red instead of showing only skipped tests.
    pub fn test_cases(&self) -> impl Iterator<Item = &StepResult> {
        self.steps.iter().filter(|s| {
            s.kind == StepKind::Exec
                || matches!(s.outcome, Outcome::Failed { .. } | Outcome::Error { .. })
        })
    }

    /// Counts over [`JobResult::test_cases`].
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for s in self.test_cases() {
            c.add(&s.outcome);
        }
        c
    }

    /// The verdict over all steps.
    pub fn outcome(&self) -> JobOutcome {
        let any = |f: fn(&Outcome) -> bool| self.steps.iter().any(|s| f(&s.outcome));
        if any(|o| matches!(o, Outcome::Failed { .. })) {
            JobOutcome::Failed
        } else if any(|o| matches!(o, Outcome::Error { .. })) {
            JobOutcome::Error
        } else {
            JobOutcome::Passed
        }
    }

    /// Pretty-printed JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a JobResult always serialises")
    }

    /// Reads a result written by [`JobResult::to_json`] (or a newer version
    /// with extra fields).
    pub fn from_json(json: &str) -> Result<JobResult, serde_json::Error> {
        serde_json::from_str(json)
    }
}

/// Replaces characters that would corrupt a terminal or an XML document —
/// C0 controls other than tab and newline, DEL, and the non-characters
/// U+FFFE/U+FFFF — with visible stand-ins: the Unicode control pictures
/// (`␛` for ESC, `␀` for NUL, `␡` for DEL) and U+FFFD.
pub fn visible_text(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(needs_replacing) {
        return std::borrow::Cow::Borrowed(s);
    }
    std::borrow::Cow::Owned(s.chars().map(replacement).collect())
}

fn needs_replacing(c: char) -> bool {
    (c < ' ' && c != '\t' && c != '\n' && c != '\r')
        || c == '\u{7f}'
        || c == '\u{fffe}'
        || c == '\u{ffff}'
}

fn replacement(c: char) -> char {
    match c {
        '\u{7f}' => '\u{2421}',
        '\u{fffe}' | '\u{ffff}' => '\u{fffd}',
        c if needs_replacing(c) => char::from_u32(0x2400 + c as u32).unwrap_or('\u{fffd}'),
        c => c,
    }
}

mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

pub(crate) mod rfc3339 {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    /// humantime panics outside 1970..=9999; a clock that far off is clamped
    /// rather than allowed to take the gateway down.
    pub(crate) fn clamp(t: SystemTime) -> SystemTime {
        let max = UNIX_EPOCH + Duration::from_secs(253_402_300_799);
        if t < UNIX_EPOCH {
            UNIX_EPOCH
        } else if t > max {
            max
        } else {
            t
        }
    }

    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_millis(clamp(*t)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_rfc3339(&text).map_err(|e| D::Error::custom(format!("{text:?}: {e}")))
    }
}

pub(crate) use rfc3339::clamp as clamp_time;

/// Formats a duration for people: `850ms`, `1.23s`, `2m03s`, `1h02m`.
pub fn human_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.2}s", d.as_secs_f64())
    } else if ms < 3_600_000 {
        let s = d.as_secs();
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        let m = d.as_secs() / 60;
        format!("{}h{:02}m", m / 60, m % 60)
    }
}

#[cfg(test)]
pub(crate) mod tests;
