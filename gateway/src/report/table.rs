//! A plain-text table of job results for the terminal.
//!
//! ```text
//! STEP                          OUTCOME  DURATION  DEVICE
//! push build/selftest to bin/…  passed      120ms  pico-1
//! selftest passes               FAILED      1.50s  pico-1
//!     exit code 1, expected 0
//! smoke on pico-1: FAILED (tests: 0 passed, 1 failed, 0 errors, 0 skipped) in 2.10s
//! ```
//!
//! Colour is the caller's decision (`NO_COLOR`, `--color`, whether stdout is
//! a terminal); this module reads no environment. Names and messages are
//! passed through [`visible_text`] so a device cannot send escape sequences
//! to the user's terminal.

use std::fmt::Write as _;

use super::{human_duration, visible_text, JobOutcome, JobResult, Outcome};

const GREEN: &str = "\x1b[32m";
const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";
const DIM: &str = "\x1b[2m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

/// Longest step name shown before it is shortened with `…`.
pub const MAX_NAME_WIDTH: usize = 60;

/// Renders every step of every result, each job followed by a summary line.
/// With `color`, outcomes are coloured with ANSI escapes.
pub fn render_table(results: &[JobResult], color: bool) -> String {
    let paint = |code: &str, s: &str| {
        if color {
            format!("{code}{s}{RESET}")
        } else {
            s.to_string()
        }
    };
    let name_of = |s: &str| one_line(s, MAX_NAME_WIDTH);
    let name_w = results
        .iter()
        .flat_map(|r| &r.steps)
        .map(|s| name_of(&s.name).chars().count())
        .max()
        .unwrap_or(0)
        .max("STEP".len());
    let dur_w = results
        .iter()
        .flat_map(|r| &r.steps)
        .map(|s| human_duration(s.duration).len())
        .max()
        .unwrap_or(0)
        .max("DURATION".len());
    const OUTCOME_W: usize = 7;

    let mut out = String::new();
    let header = format!(
        "{:<name_w$}  {:<OUTCOME_W$}  {:>dur_w$}  DEVICE",
        "STEP", "OUTCOME", "DURATION"
    );
    let _ = writeln!(out, "{}", paint(BOLD, &header));
    for r in results {
        let device = one_line(&r.device, MAX_NAME_WIDTH);
        for s in &r.steps {
            let (word, code) = match &s.outcome {
                Outcome::Passed => ("passed", GREEN),
                Outcome::Failed { .. } => ("FAILED", RED),
                Outcome::Error { .. } => ("ERROR", YELLOW),
                Outcome::Skipped { .. } => ("skipped", DIM),
            };
            let name = name_of(&s.name);
            let pad = name_w - name.chars().count();
            let _ = writeln!(
                out,
                "{name}{:pad$}  {}{:opad$}  {:>dur_w$}  {device}",
                "",
                paint(code, word),
                "",
                human_duration(s.duration),
                opad = OUTCOME_W - word.len(),
            );
            if let Some(message) = s.outcome.message() {
                if !matches!(s.outcome, Outcome::Skipped { .. }) {
                    for line in visible_text(message).lines() {
                        let _ = writeln!(out, "    {}", one_line(line, 200));
                    }
                }
            }
        }
        let c = r.counts();
        let (verdict, code) = match r.outcome() {
            JobOutcome::Passed => ("passed", GREEN),
            JobOutcome::Failed => ("FAILED", RED),
            JobOutcome::Error => ("ERROR", YELLOW),
        };
        let _ = writeln!(
            out,
            "{} on {}: {} (tests: {} passed, {} failed, {} errors, {} skipped) in {}",
            one_line(&r.job, MAX_NAME_WIDTH),
            device,
            paint(code, verdict),
            c.passed,
            c.failed,
            c.errors,
            c.skipped,
            human_duration(r.duration)
        );
    }
    out
}

/// Makes `s` safe and single-line for a table cell, shortened to `max`
/// characters.
fn one_line(s: &str, max: usize) -> String {
    let s: String = visible_text(s)
        .chars()
        .map(|c| {
            if c == '\n' || c == '\r' || c == '\t' {
                ' '
            } else {
                c
            }
        })
        .collect();
    if s.chars().count() <= max {
        s
    } else {
        let mut cut: String = s.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}
