//! Job files: a named list of steps run against one device.
//!
//! ```toml
//! name = "smoke"                   # default: the file name without .toml
//! timeout = "10m"                  # whole job; optional
//! labels = ["board=rp2040"]        # what a device needs to run it; optional
//!
//! [defaults]
//! timeout = "60s"                  # per step; 60s if not given
//! on_failure = "stop"              # or "continue"; "stop" if not given
//!
//! [[step]]
//! push = { local = "build/selftest", remote = "bin/selftest", mode = 0o755 }
//!
//! [[step]]
//! name = "selftest passes"
//! exec = ["bin/selftest", "--quick"]
//! expect_exit = 0                  # default 0
//! timeout = "30s"
//! env = { RUST_LOG = "debug" }
//! cwd = "bin"                      # on the device; optional
//! stdin = "yes\n"                  # optional
//! on_failure = "continue"          # run the next steps even if this fails
//!
//! [[step]]
//! pull = { remote = "logs/run.txt", local = "out/run.txt" }
//! always = true                    # also after an earlier step failed
//!
//! [[step]]
//! reset = {}
//!
//! [[step]]
//! wait_for_console = { regex = "boot id=[0-9a-f]{8}" }
//! timeout = "5s"
//! ```
//!
//! Each step has exactly one action: `push`, `pull`, `exec`, `reset` or
//! `wait_for_console`, plus the common keys `name`, `timeout`, `on_failure`
//! and `always`. `expect_exit`, `env`, `cwd` and `stdin` belong to `exec`.
//! `local` paths are resolved against the job file's directory; `remote`
//! paths are the device's business. Every `exec` step is a test case in the
//! results.
//!
//! A step that fails stops the job unless it says `on_failure = "continue"`;
//! the steps after it are skipped, except those marked `always = true`
//! (collecting logs). An infrastructure error (link lost, device rebooted)
//! always stops the job. `wait_for_console` matches console text the device
//! printed since the previous step started, so a `reset` followed by a wait
//! does not miss a fast boot banner.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::de::DeTable;
use toml::Spanned;

use super::diag::{self, Collector, ConfigError, Source};
use super::label::Label;

/// Per-step timeout when neither the step nor `[defaults]` gives one.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest job or step name, in characters.
pub const MAX_JOB_NAME_LEN: usize = 200;

/// A loaded and validated job.
#[derive(Debug, Clone)]
pub struct Job {
    /// The job's name.
    pub name: String,
    /// The file it was loaded from, as the caller named it.
    pub path: PathBuf,
    /// Limit on the whole job, if any.
    pub timeout: Option<Duration>,
    /// Labels a device must have to run the job (sorted, no duplicates).
    pub labels: Vec<Label>,
    /// The steps, in order; never empty.
    pub steps: Vec<Step>,
}

/// One step of a job.
#[derive(Debug, Clone)]
pub struct Step {
    /// 1-based position in the job, as error messages and results count.
    pub number: usize,
    /// The given name, or one derived from the action (`bin/selftest
    /// --quick`, `push build/x to bin/x`). Unique within the job.
    pub name: String,
    /// Whether `name` was written in the file.
    pub named: bool,
    /// Limit on this step.
    pub timeout: Duration,
    /// What a failure of this step does to the rest of the job.
    pub on_failure: OnFailure,
    /// Run even when an earlier step failed.
    pub always: bool,
    /// What the step does.
    pub action: Action,
}

/// What a failed step does to the steps after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Skip the remaining steps (except `always` ones).
    Stop,
    /// Go on with the next step.
    Continue,
}

/// The kind of a step, as recorded in results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// Copy a file to the device.
    Push,
    /// Copy a file from the device.
    Pull,
    /// Run a command on the device.
    Exec,
    /// Reset the device.
    Reset,
    /// Wait for console text.
    WaitForConsole,
}

impl StepKind {
    /// The key used in job files and results.
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Push => "push",
            StepKind::Pull => "pull",
            StepKind::Exec => "exec",
            StepKind::Reset => "reset",
            StepKind::WaitForConsole => "wait_for_console",
        }
    }
}

impl std::fmt::Display for StepKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a step does.
#[derive(Debug, Clone)]
pub enum Action {
    /// Copy a local file to the device.
    Push(Push),
    /// Copy a file from the device.
    Pull(Pull),
    /// Run a command on the device.
    Exec(Exec),
    /// Reset the device and wait for its agent to come back.
    Reset,
    /// Wait until console text matches.
    WaitForConsole(WaitForConsole),
}

impl Action {
    /// The kind of action.
    pub fn kind(&self) -> StepKind {
        match self {
            Action::Push(_) => StepKind::Push,
            Action::Pull(_) => StepKind::Pull,
            Action::Exec(_) => StepKind::Exec,
            Action::Reset => StepKind::Reset,
            Action::WaitForConsole(_) => StepKind::WaitForConsole,
        }
    }
}

/// `push = { local, remote, mode }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// The local file, resolved against the job file's directory.
    pub local: PathBuf,
    /// Where it goes on the device.
    pub remote: String,
    /// Permission bits to set (at most `0o7777`), e.g. `0o755`.
    pub mode: Option<u32>,
}

/// `pull = { remote, local }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pull {
    /// The file on the device.
    pub remote: String,
    /// Where to write it, resolved against the job file's directory.
    pub local: PathBuf,
}

/// `exec = [argv...]` with its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exec {
    /// Program and arguments; never empty.
    pub argv: Vec<String>,
    /// Extra environment variables.
    pub env: BTreeMap<String, String>,
    /// Working directory on the device.
    pub cwd: Option<String>,
    /// Bytes written to the command's standard input.
    pub stdin: Option<String>,
    /// The exit code that means the test passed.
    pub expect_exit: i32,
}

/// `wait_for_console = { regex }`.
#[derive(Debug, Clone)]
pub struct WaitForConsole {
    /// The pattern; the step passes when console text matches it.
    pub regex: regex::Regex,
}

impl Job {
    /// Reads, parses and validates the job file at `path`.
    pub fn load(path: &Path) -> Result<Job, ConfigError> {
        let text = diag::read(path)?;
        Job::parse(&text, path)
    }

    /// Parses and validates job text as if read from `origin`, which names
    /// the file in errors, gives the default job name, and is the base of
    /// relative local paths. It does not touch the file system.
    pub fn parse(text: &str, origin: &Path) -> Result<Job, ConfigError> {
        let source = Source::new(origin, text);
        let raw: RawJob = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            diagnostics: vec![source.toml_error(&e, &step_context)],
        })?;
        validate(&source, raw)
    }

    /// The `exec` steps: the test cases.
    pub fn test_cases(&self) -> impl Iterator<Item = &Step> {
        self.steps
            .iter()
            .filter(|s| matches!(s.action, Action::Exec(_)))
    }
}

// ---------------------------------------------------------------------------
// The file as written.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJob {
    name: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    #[serde(default)]
    labels: Vec<Spanned<String>>,
    defaults: Option<RawDefaults>,
    #[serde(default)]
    step: Vec<Spanned<RawStep>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    timeout: Option<Spanned<String>>,
    on_failure: Option<OnFailure>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    name: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    on_failure: Option<OnFailure>,
    #[serde(default)]
    always: bool,

    push: Option<Spanned<RawPush>>,
    pull: Option<Spanned<RawPull>>,
    exec: Option<Spanned<Vec<String>>>,
    reset: Option<Spanned<RawReset>>,
    wait_for_console: Option<Spanned<RawWait>>,

    expect_exit: Option<Spanned<i32>>,
    env: Option<Spanned<BTreeMap<String, String>>>,
    cwd: Option<Spanned<String>>,
    stdin: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPush {
    local: Spanned<String>,
    remote: Spanned<String>,
    mode: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPull {
    remote: Spanned<String>,
    local: Spanned<String>,
}

/// `reset = {}`: no options yet; a table so that some can be added.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReset {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWait {
    regex: Spanned<String>,
}

/// Names a `[[step]]` element in messages: `step 3 ("selftest passes")` or
/// `step 3`.
fn step_context(key: &str, index: usize, table: Option<&DeTable<'_>>) -> String {
    let name = table.and_then(|t| {
        t.iter()
            .find(|(k, _)| k.get_ref() == "name")
            .and_then(|(_, v)| v.get_ref().as_str().map(str::to_string))
    });
    match name {
        Some(n) if key == "step" => format!("step {} ({n:?})", index + 1),
        _ => format!("{key} {}", index + 1),
    }
}

fn validate(source: &Source<'_>, raw: RawJob) -> Result<Job, ConfigError> {
    let mut c = Collector::new(source);
    let base = diag::base_dir(source.path);

    let name = match &raw.name {
        Some(n) => {
            if let Err(why) = valid_job_name(n.get_ref()) {
                c.error(n.span(), format!("name: {why}"));
            }
            n.get_ref().clone()
        }
        None => source
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "job".into()),
    };

    let mut duration = |what: &str, d: &Option<Spanned<String>>| -> Option<Duration> {
        let d = d.as_ref()?;
        diag::parse_duration(d.get_ref())
            .map_err(|why| c.error(d.span(), format!("{what}: {why}")))
            .ok()
    };
    let timeout = duration("timeout", &raw.timeout);
    let (default_timeout, default_on_failure) = match &raw.defaults {
        Some(d) => (
            duration("defaults.timeout", &d.timeout).unwrap_or(DEFAULT_STEP_TIMEOUT),
            d.on_failure.unwrap_or(OnFailure::Stop),
        ),
        None => (DEFAULT_STEP_TIMEOUT, OnFailure::Stop),
    };

    let mut labels = Vec::new();
    for l in &raw.labels {
        match l.get_ref().parse::<Label>() {
            Ok(label) if labels.contains(&label) => c.error(
                l.span(),
                format!("labels: {:?} is given twice", l.get_ref()),
            ),
            Ok(label) => labels.push(label),
            Err(e) => c.error(l.span(), format!("labels: {e}")),
        }
    }
    labels.sort();

    if raw.step.is_empty() {
        c.error(
            0..0,
            "the job has no steps; add one, e.g.\n[[step]]\nexec = [\"bin/selftest\"]".into(),
        );
    }

    let mut steps = Vec::new();
    let mut explicit_names: BTreeMap<String, usize> = BTreeMap::new();
    for (i, s) in raw.step.into_iter().enumerate() {
        let number = i + 1;
        let header = s.span();
        let s = s.into_inner();
        let ctx = match &s.name {
            Some(n) => format!("step {number} ({:?})", n.get_ref()),
            None => format!("step {number}"),
        };
        if let Some(n) = &s.name {
            if let Err(why) = valid_job_name(n.get_ref()) {
                c.error(n.span(), format!("{ctx}: name: {why}"));
            } else if let Some(prev) = explicit_names.get(n.get_ref()) {
                c.error(
                    n.span(),
                    format!(
                        "{ctx}: name: step {prev} has the same name; test names must be unique"
                    ),
                );
            } else {
                explicit_names.insert(n.get_ref().clone(), number);
            }
        }
        let step_timeout = s.timeout.as_ref().and_then(|t| {
            diag::parse_duration(t.get_ref())
                .map_err(|why| c.error(t.span(), format!("{ctx}: timeout: {why}")))
                .ok()
        });
        if let Some(step) = validate_step(&mut c, &ctx, number, header, s, &base) {
            steps.push(Step {
                timeout: step_timeout.unwrap_or(default_timeout),
                on_failure: step.on_failure.unwrap_or(default_on_failure),
                ..step.step
            });
        }
    }

    // Derived names can repeat (two identical `exec`s); a test report needs
    // them unique, so a repeat gets its step number.
    let mut used: std::collections::HashSet<String> = steps
        .iter()
        .filter(|s| s.named)
        .map(|s| s.name.clone())
        .collect();
    for s in steps.iter_mut().filter(|s| !s.named) {
        if !used.insert(s.name.clone()) {
            s.name = format!("{} (step {})", s.name, s.number);
            used.insert(s.name.clone());
        }
    }

    c.finish(Job {
        name,
        path: source.path.to_path_buf(),
        timeout,
        labels,
        steps,
    })
}

struct PartialStep {
    step: Step,
    on_failure: Option<OnFailure>,
}

fn validate_step(
    c: &mut Collector<'_>,
    ctx: &str,
    number: usize,
    header: std::ops::Range<usize>,
    s: RawStep,
    base: &Path,
) -> Option<PartialStep> {
    let errors_before = c.diagnostics.len();
    let mut actions: Vec<(&str, std::ops::Range<usize>)> = Vec::new();
    if let Some(a) = &s.push {
        actions.push(("push", a.span()));
    }
    if let Some(a) = &s.pull {
        actions.push(("pull", a.span()));
    }
    if let Some(a) = &s.exec {
        actions.push(("exec", a.span()));
    }
    if let Some(a) = &s.reset {
        actions.push(("reset", a.span()));
    }
    if let Some(a) = &s.wait_for_console {
        actions.push(("wait_for_console", a.span()));
    }
    actions.sort_by_key(|(_, span)| span.start);
    match actions.as_slice() {
        [] => {
            c.error(
                header,
                format!(
                    "{ctx}: no action; give one of push, pull, exec, reset or wait_for_console"
                ),
            );
            return None;
        }
        [_] => {}
        [first, second, ..] => {
            c.error(
                second.1.clone(),
                format!(
                    "{ctx}: one action per step, but it has both {} and {}; split it into two [[step]]s",
                    first.0, second.0
                ),
            );
            return None;
        }
    }

    if s.exec.is_none() {
        let kind = actions[0].0;
        for (field, span) in [
            ("expect_exit", s.expect_exit.as_ref().map(Spanned::span)),
            ("env", s.env.as_ref().map(Spanned::span)),
            ("cwd", s.cwd.as_ref().map(Spanned::span)),
            ("stdin", s.stdin.as_ref().map(Spanned::span)),
        ] {
            if let Some(span) = span {
                c.error(
                    span,
                    format!("{ctx}: {field}: only exec steps take {field}, this is a {kind} step"),
                );
            }
        }
    }

    let remote = |c: &mut Collector<'_>, field: &str, r: &Spanned<String>| {
        let v = r.get_ref();
        if v.is_empty() {
            c.error(
                r.span(),
                format!("{ctx}: {field}: is empty; give a path on the device"),
            );
        } else if v.contains('\0') {
            c.error(
                r.span(),
                format!("{ctx}: {field}: contains a NUL character"),
            );
        }
        v.clone()
    };
    let local = |c: &mut Collector<'_>, field: &str, l: &Spanned<String>| {
        let v = l.get_ref();
        if v.is_empty() {
            c.error(
                l.span(),
                format!("{ctx}: {field}: is empty; give a path relative to the job file"),
            );
        } else if v.contains('\0') {
            c.error(
                l.span(),
                format!("{ctx}: {field}: contains a NUL character"),
            );
        }
        diag::resolve(base, v)
    };

    let (action, derived_name) = if let Some(p) = s.push {
        let p = p.into_inner();
        let mode = p.mode.as_ref().map(|m| {
            let v = *m.get_ref();
            let written = c.source.text.get(m.span()).unwrap_or("");
            if !written.starts_with("0o") {
                // `mode = 755` is a classic slip: decimal 755 is 0o1363.
                c.error(m.span(), format!("{ctx}: push.mode: {written} is decimal, which is mode {v:#o}; write file modes in octal, e.g. 0o755"));
            } else if v > 0o7777 {
                c.error(m.span(), format!("{ctx}: push.mode: {v:#o} is not a file mode; write e.g. 0o755 or 0o644 (at most 0o7777)"));
            }
            v
        });
        let push = Push {
            local: local(c, "push.local", &p.local),
            remote: remote(c, "push.remote", &p.remote),
            mode,
        };
        let name = format!("push {} to {}", p.local.get_ref(), p.remote.get_ref());
        (Action::Push(push), name)
    } else if let Some(p) = s.pull {
        let p = p.into_inner();
        let pull = Pull {
            remote: remote(c, "pull.remote", &p.remote),
            local: local(c, "pull.local", &p.local),
        };
        (Action::Pull(pull), format!("pull {}", p.remote.get_ref()))
    } else if let Some(argv) = s.exec {
        let span = argv.span();
        let argv = argv.into_inner();
        if argv.is_empty() || argv[0].is_empty() {
            c.error(span.clone(), format!("{ctx}: exec: give the program and its arguments, e.g. [\"bin/selftest\", \"--quick\"]"));
        }
        if argv.iter().any(|a| a.contains('\0')) {
            c.error(
                span,
                format!("{ctx}: exec: arguments cannot contain NUL characters"),
            );
        }
        let env = match s.env {
            None => BTreeMap::new(),
            Some(env) => {
                let span = env.span();
                let env = env.into_inner();
                for (k, v) in &env {
                    if k.is_empty() || k.contains('=') || k.contains('\0') {
                        c.error(span.clone(), format!("{ctx}: env: {k:?} is not a variable name (empty, or contains '=' or NUL)"));
                    }
                    if v.contains('\0') {
                        c.error(
                            span.clone(),
                            format!("{ctx}: env: the value of {k} contains a NUL character"),
                        );
                    }
                }
                env
            }
        };
        let cwd = s.cwd.as_ref().map(|d| remote(c, "cwd", d));
        let exec = Exec {
            env,
            cwd,
            stdin: s.stdin.map(Spanned::into_inner),
            expect_exit: s.expect_exit.map_or(0, Spanned::into_inner),
            argv,
        };
        let name = display_argv(&exec.argv);
        (Action::Exec(exec), name)
    } else if s.reset.is_some() {
        (Action::Reset, "reset".to_string())
    } else {
        let w = s
            .wait_for_console
            .expect("one action is present")
            .into_inner();
        let name = format!("wait for console /{}/", w.regex.get_ref());
        match regex::Regex::new(w.regex.get_ref()) {
            Ok(regex) => (Action::WaitForConsole(WaitForConsole { regex }), name),
            Err(e) => {
                // The regex crate's message spans several lines with a caret
                // under the offending character; keep it readable indented.
                let detail = e.to_string().replace('\n', "\n    ");
                c.error(w.regex.span(), format!("{ctx}: wait_for_console.regex: not a valid regular expression:\n    {detail}"));
                return None;
            }
        }
    };

    if c.diagnostics.len() > errors_before {
        return None;
    }
    let named = s.name.is_some();
    Some(PartialStep {
        step: Step {
            number,
            name: s.name.map_or(derived_name, Spanned::into_inner),
            named,
            timeout: DEFAULT_STEP_TIMEOUT,
            on_failure: OnFailure::Stop,
            always: s.always,
            action,
        },
        on_failure: s.on_failure,
    })
}

/// Shows an argv as a user would type it, quoting arguments with spaces or
/// quotes so a derived step name is unambiguous.
fn display_argv(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if a.is_empty()
                || a.chars()
                    .any(|c| c.is_whitespace() || c == '"' || c == '\'')
            {
                format!("{a:?}")
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn valid_job_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("is empty".into());
    }
    if name.chars().count() > MAX_JOB_NAME_LEN {
        return Err(format!("is longer than {MAX_JOB_NAME_LEN} characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(format!("{name:?} contains control characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
