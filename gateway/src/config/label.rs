//! Device labels: `key=value` pairs or bare `key` tags that jobs select
//! devices by (`board=rp2040`, `pool=ci`, `cap=usb`, `flaky`).
//!
//! Labels are written as a list of strings rather than a TOML table because a
//! key may repeat (`cap=usb`, `cap=wifi`) and a bare tag has no value. They
//! contain no spaces or commas, so a CLI can take several as
//! `--labels board=rp2040,pool=ci`.

use std::fmt;
use std::str::FromStr;

/// Longest key and longest value, in bytes.
pub const MAX_LABEL_PART: usize = 63;

/// One label: a key and an optional value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label {
    /// Letters, digits, `.`, `_`, `-`; starts with a letter or digit.
    pub key: String,
    /// Letters, digits, `.`, `_`, `-`, `:`, `/`, `+`; `None` for a bare tag.
    pub value: Option<String>,
}

impl Label {
    /// Whether every label in `required` is among `have`.
    pub fn all_present(required: &[Label], have: &[Label]) -> bool {
        required.iter().all(|r| have.contains(r))
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{}={}", self.key, v),
            None => f.write_str(&self.key),
        }
    }
}

/// Why a string is not a label. The text says how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LabelError(String);

impl FromStr for Label {
    type Err = LabelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |why: &str| Err(LabelError(format!("{s:?} is not a label: {why}")));
        if s.chars().any(char::is_whitespace) {
            return err("labels contain no spaces (write \"board=rp2040\")");
        }
        if s.contains(',') {
            return err("one label per string (write [\"a=1\", \"b=2\"])");
        }
        let (key, value) = match s.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (s, None),
        };
        if key.is_empty() {
            return err("the key before '=' is empty");
        }
        if key.len() > MAX_LABEL_PART {
            return err("the key is longer than 63 bytes");
        }
        if !key.starts_with(|c: char| c.is_ascii_alphanumeric())
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return err(
                "the key must start with a letter or digit and use only letters, digits, '.', '_' and '-'",
            );
        }
        if let Some(v) = value {
            if v.is_empty() {
                return err("the value after '=' is empty (write a bare \"key\" for a tag)");
            }
            if v.len() > MAX_LABEL_PART {
                return err("the value is longer than 63 bytes");
            }
            if !v.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '/' | '+')
            }) {
                return err(
                    "the value may use only letters, digits and '.', '_', '-', ':', '/', '+'",
                );
            }
        }
        Ok(Label {
            key: key.to_string(),
            value: value.map(str::to_string),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pairs_and_tags() {
        let l: Label = "board=rp2040".parse().unwrap();
        assert_eq!(l.key, "board");
        assert_eq!(l.value.as_deref(), Some("rp2040"));
        assert_eq!(l.to_string(), "board=rp2040");
        let t: Label = "flaky".parse().unwrap();
        assert_eq!(t.value, None);
        assert_eq!(t.to_string(), "flaky");
        assert!("fw=v1.2+rc:3/x".parse::<Label>().is_ok());
    }

    #[test]
    fn says_what_is_wrong() {
        let e = |s: &str| s.parse::<Label>().unwrap_err().to_string();
        assert_eq!(
            e("board = rp2040"),
            "\"board = rp2040\" is not a label: labels contain no spaces (write \"board=rp2040\")"
        );
        assert_eq!(
            e("board="),
            "\"board=\" is not a label: the value after '=' is empty (write a bare \"key\" for a tag)"
        );
        assert_eq!(
            e("=x"),
            "\"=x\" is not a label: the key before '=' is empty"
        );
        assert!(e("a=1,b=2").contains("one label per string"));
        assert!(e("-x").contains("start with a letter or digit"));
        assert!(e("a=b=c").contains("the value may use only"));
    }

    #[test]
    fn selection_needs_every_required_label() {
        let have: Vec<Label> = ["board=rp2040", "pool=ci", "cap=usb"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let want = |v: &[&str]| -> Vec<Label> { v.iter().map(|s| s.parse().unwrap()).collect() };
        assert!(Label::all_present(
            &want(&["board=rp2040", "cap=usb"]),
            &have
        ));
        assert!(!Label::all_present(&want(&["board=stm32"]), &have));
        assert!(Label::all_present(&[], &have));
    }
}
