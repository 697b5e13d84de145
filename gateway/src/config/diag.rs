//! Error reporting shared by the config loaders.
//!
//! Every config error is a [`Diagnostic`] that names the file, the line and
//! column, the device or step it is in and the dotted key it concerns, e.g.
//! `gateway.toml:7:10: device "pico-1": serial.baud: 11520 is not a standard
//! baud rate (did you mean 115200?)`. Syntax and type errors come from `toml`
//! with a byte span; this module turns the span into a line and column and
//! walks the spanned document tree ([`toml::de::DeTable`]) to find which
//! element of an array of tables (`[[device]]`, `[[step]]`) and which key the
//! span falls in, because `toml`'s own message does not say.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// One problem in a config file, with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file, as the caller named it.
    pub path: PathBuf,
    /// 1-based line number.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    /// What is wrong, starting with the device or step and the key it
    /// concerns, e.g. `device "pico-1": serial.baud: ...`.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

/// Why a config file could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file was read but is not valid: a syntax error, a wrong type or
    /// unknown key, or a value that failed validation. Validation reports
    /// every problem it finds, not just the first.
    #[error("{}", DiagnosticList(diagnostics))]
    Invalid {
        /// The problems, in the order they appear in the file.
        diagnostics: Vec<Diagnostic>,
    },
}

impl ConfigError {
    /// The positioned problems (empty for [`ConfigError::Read`]).
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid { diagnostics } => diagnostics,
        }
    }
}

struct DiagnosticList<'a>(&'a [Diagnostic]);

impl fmt::Display for DiagnosticList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// The text of a config file and the name to report it under.
pub(crate) struct Source<'a> {
    pub(crate) path: &'a Path,
    pub(crate) text: &'a str,
}

impl<'a> Source<'a> {
    pub(crate) fn new(path: &'a Path, text: &'a str) -> Self {
        Source { path, text }
    }

    /// 1-based line and character column of a byte offset. Offsets past the
    /// end or inside a UTF-8 sequence are clamped rather than trusted.
    pub(crate) fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = self.floor_boundary(offset);
        let before = &self.text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let line = before.matches('\n').count() + 1;
        let column = before[line_start..].chars().count() + 1;
        (line, column)
    }

    /// `offset` clamped into the text and moved back to a character
    /// boundary, so slicing with it cannot panic.
    fn floor_boundary(&self, offset: usize) -> usize {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        offset
    }

    pub(crate) fn diagnostic(&self, offset: usize, message: String) -> Diagnostic {
        let (line, column) = self.line_col(offset);
        Diagnostic {
            path: self.path.to_path_buf(),
            line,
            column,
            message,
        }
    }

    /// Turns an error from `toml` (syntax, wrong type, unknown or missing
    /// key) into a diagnostic. `context` names the array-of-tables element
    /// the error is in (given its key, index and table), e.g. `device
    /// "pico-1"`.
    pub(crate) fn toml_error(
        &self,
        error: &toml::de::Error,
        context: &dyn Fn(&str, usize, Option<&DeTable<'_>>) -> String,
    ) -> Diagnostic {
        let offset = error.span().map_or(0, |s| s.start);
        let mut message = error.message().to_string();
        if let Some(hint) = did_you_mean_for_serde(&message) {
            message.push_str(&hint);
        }
        let unknown = message
            .strip_prefix("unknown field `")
            .and_then(|m| m.split('`').next());
        let prefix = match DeTable::parse(self.text) {
            // A type, missing or unknown key error in a well-formed document.
            Ok(root) => describe_position(self.text, root.get_ref(), offset, unknown, context),
            // A syntax error: the lines before it still say which `[[device]]`
            // or `[[step]]` it is in, since a line belongs to the last header
            // above it.
            Err(_) => {
                let line_start = self.text[..self.floor_boundary(offset)]
                    .rfind('\n')
                    .map_or(0, |i| i + 1);
                let before = &self.text[..line_start];
                let (root, _) = DeTable::parse_recoverable(before);
                describe_position(before, root.get_ref(), offset, None, context)
            }
        };
        self.diagnostic(offset, format!("{prefix}{message}"))
    }
}

/// A step on the way from the root of a document to an error.
#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Key(String),
    Index(usize),
}

/// Describes where `offset` is: `device "pico-1": serial.baud: `. An offset on
/// a key (an unknown field) names the table holding the key, since the
/// message already names the key itself.
fn describe_position(
    text: &str,
    root: &DeTable<'_>,
    offset: usize,
    unknown_key: Option<&str>,
    context: &dyn Fn(&str, usize, Option<&DeTable<'_>>) -> String,
) -> String {
    let mut path = Vec::new();
    Locator { text, offset }.in_table(root, &mut path);
    // An unknown `[table]` is itself the key the message names.
    if let (Some(Segment::Key(k)), Some(u)) = (path.last(), unknown_key) {
        if k == u {
            path.pop();
        }
    }
    let mut out = String::new();
    let mut rest: &[Segment] = &path;
    if let [Segment::Key(key), Segment::Index(i), tail @ ..] = rest {
        let element = root
            .iter()
            .find(|(k, _)| k.get_ref() == key)
            .and_then(|(_, v)| v.get_ref().as_array())
            .and_then(|a| a.get(*i))
            .and_then(|v| v.get_ref().as_table());
        out.push_str(&context(key, *i, element));
        out.push_str(": ");
        rest = tail;
    }
    let keys: Vec<String> = rest
        .iter()
        .map(|s| match s {
            Segment::Key(k) => k.clone(),
            Segment::Index(i) => format!("[{}]", i + 1),
        })
        .collect();
    if !keys.is_empty() {
        out.push_str(&keys.join(".").replace(".[", "["));
        out.push_str(": ");
    }
    out
}

/// Finds the keys and indices leading to a byte offset in a document.
struct Locator<'t> {
    text: &'t str,
    offset: usize,
}

impl Locator<'_> {
    fn contains(&self, r: &Range<usize>) -> bool {
        r.start <= self.offset && self.offset < r.end.max(r.start + 1)
    }

    /// Whether a table or array element was written with a `[header]`
    /// rather than inline.
    fn is_header(&self, value: &Spanned<DeValue<'_>>) -> bool {
        self.text.as_bytes().get(value.span().start) == Some(&b'[')
            && matches!(value.get_ref(), DeValue::Table(_))
    }

    /// Appends to `path` the keys and indices leading to the offset; returns
    /// true if the offset is on a key rather than in a value.
    fn in_table(&self, table: &DeTable<'_>, path: &mut Vec<Segment>) -> bool {
        for (key, _) in table.iter() {
            if self.contains(&key.span()) {
                path.push(Segment::Key(key.get_ref().to_string()));
                return true;
            }
        }
        // Choose the smallest enclosing value: a table header such as
        // `[device.serial]` can make extents of siblings overlap.
        let mut best: Option<(usize, &str, &Spanned<DeValue<'_>>)> = None;
        for (key, value) in table.iter() {
            let ext = extent(value);
            if self.contains(&ext) {
                let len = ext.end - ext.start;
                if best.is_none_or(|(l, _, _)| len < l) {
                    best = Some((len, key.get_ref(), value));
                }
            }
        }
        // Failing that, a line belongs to the last `[header]` before it. This
        // places errors the recovering parser left out of the tree, such as a
        // duplicate key.
        if best.is_none() {
            for (key, value) in table.iter() {
                let start = match value.get_ref() {
                    DeValue::Array(a) => a
                        .iter()
                        .filter(|v| self.is_header(v) && v.span().start <= self.offset)
                        .map(|v| v.span().start)
                        .max(),
                    _ if self.is_header(value) && value.span().start <= self.offset => {
                        Some(value.span().start)
                    }
                    _ => None,
                };
                if let Some(start) = start {
                    if best.is_none_or(|(s, _, _)| start > s) {
                        best = Some((start, key.get_ref(), value));
                    }
                }
            }
        }
        if let Some((_, key, value)) = best {
            path.push(Segment::Key(key.to_string()));
            return self.in_value(value, path);
        }
        false
    }

    fn in_value(&self, value: &Spanned<DeValue<'_>>, path: &mut Vec<Segment>) -> bool {
        match value.get_ref() {
            DeValue::Table(t) => {
                if self.in_table(t, path) {
                    // The unknown key is named by the message; report its table.
                    path.pop();
                }
                false
            }
            DeValue::Array(a) => {
                let found = a
                    .iter()
                    .position(|item| self.contains(&extent(item)))
                    .or_else(|| {
                        a.iter()
                            .enumerate()
                            .filter(|(_, v)| self.is_header(v) && v.span().start <= self.offset)
                            .max_by_key(|(_, v)| v.span().start)
                            .map(|(i, _)| i)
                    });
                match found {
                    Some(i) => {
                        path.push(Segment::Index(i));
                        self.in_value(&a[i], path)
                    }
                    None => false,
                }
            }
            _ => false,
        }
    }
}

/// The bytes a value and everything under it cover. A table written with a
/// header (`[[device]]`) has a span covering only the header, so the keys
/// under it are included here.
fn extent(value: &Spanned<DeValue<'_>>) -> Range<usize> {
    let mut r = value.span();
    match value.get_ref() {
        DeValue::Table(t) => {
            for (k, v) in t.iter() {
                let e = extent(v);
                r.start = r.start.min(k.span().start).min(e.start);
                r.end = r.end.max(k.span().end).max(e.end);
            }
        }
        DeValue::Array(a) => {
            for v in a.iter() {
                let e = extent(v);
                r.start = r.start.min(e.start);
                r.end = r.end.max(e.end);
            }
        }
        _ => {}
    }
    r
}

/// For serde's `unknown field `x`, expected ...` and `unknown variant` messages,
/// suggests the closest expected name.
fn did_you_mean_for_serde(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("unknown variant `"))?;
    let (word, rest) = rest.split_once('`')?;
    let expected: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
    let best = closest(word, expected.iter().copied())?;
    Some(format!(" (did you mean `{best}`?)"))
}

/// The candidate closest to `word` by edit distance, if it is close enough to
/// be a plausible typo.
pub(crate) fn closest<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over characters.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Parses a humantime duration such as `"90s"`, `"5m"` or `"1h 30m"`.
pub(crate) fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    match humantime::parse_duration(text) {
        Ok(d) if d.is_zero() => Err(format!("{text:?} is zero; give a positive duration")),
        Ok(d) => Ok(d),
        Err(e) => Err(format!(
            "{text:?} is not a duration ({e}); write e.g. \"90s\", \"5m\" or \"1h 30m\""
        )),
    }
}

/// Resolves a path from a config file against the file's directory.
pub(crate) fn resolve(base: &Path, path: &str) -> PathBuf {
    base.join(path)
}

/// The directory relative paths in the file at `origin` are resolved against,
/// made absolute so a later change of working directory does not move them.
pub(crate) fn base_dir(origin: &Path) -> PathBuf {
    let absolute = std::path::absolute(origin).unwrap_or_else(|_| origin.to_path_buf());
    absolute
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Collects diagnostics during validation.
pub(crate) struct Collector<'a> {
    pub(crate) source: &'a Source<'a>,
    pub(crate) diagnostics: Vec<Diagnostic>,
}

impl<'a> Collector<'a> {
    pub(crate) fn new(source: &'a Source<'a>) -> Self {
        Collector {
            source,
            diagnostics: Vec::new(),
        }
    }

    /// Records a problem at `span`.
    pub(crate) fn error(&mut self, span: Range<usize>, message: String) {
        self.diagnostics
            .push(self.source.diagnostic(span.start, message));
    }

    /// Ends validation: the value if nothing was wrong, else every problem
    /// in file order.
    pub(crate) fn finish<T>(mut self, value: T) -> Result<T, ConfigError> {
        if self.diagnostics.is_empty() {
            Ok(value)
        } else {
            self.diagnostics.sort_by_key(|d| (d.line, d.column));
            Err(ConfigError::Invalid {
                diagnostics: self.diagnostics,
            })
        }
    }
}

/// Reads a config file, reporting the path on failure.
pub(crate) fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The ```toml blocks of a file's `//!` docs, so tests can prove the
/// documented examples load.
#[cfg(test)]
pub(crate) fn doc_toml(source: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in source.lines() {
        let Some(doc) = line.strip_prefix("//!") else {
            continue;
        };
        let doc = doc.strip_prefix(' ').unwrap_or(doc);
        if doc.starts_with("```toml") {
            inside = true;
        } else if doc.starts_with("```") {
            inside = false;
        } else if inside {
            out.push_str(doc);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_characters() {
        let src = Source::new(Path::new("x.toml"), "a = 1\nb = \"é\" x\n");
        assert_eq!(src.line_col(0), (1, 1));
        assert_eq!(src.line_col(6), (2, 1));
        // 'x' sits after a two-byte character.
        assert_eq!(src.line_col(15), (2, 9));
        assert_eq!(src.line_col(10_000), (3, 1));
    }

    #[test]
    fn suggestions_only_for_plausible_typos() {
        assert_eq!(closest("baudd", ["baud", "usb", "path"]), Some("baud"));
        assert_eq!(closest("speed", ["baud", "usb", "path"]), None);
        assert_eq!(
            did_you_mean_for_serde("unknown field `baudd`, expected `baud` or `usb`").as_deref(),
            Some(" (did you mean `baud`?)")
        );
        assert_eq!(did_you_mean_for_serde("missing field `name`"), None);
    }

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("90s"),
            Ok(std::time::Duration::from_secs(90))
        );
        assert_eq!(
            parse_duration("1h 30m"),
            Ok(std::time::Duration::from_secs(5400))
        );
        assert_eq!(
            parse_duration("0s").unwrap_err(),
            "\"0s\" is zero; give a positive duration"
        );
        assert!(parse_duration("ten minutes")
            .unwrap_err()
            .starts_with("\"ten minutes\" is not a duration ("));
    }
}
