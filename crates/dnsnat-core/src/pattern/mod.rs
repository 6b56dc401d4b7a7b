//! Domain patterns (docs/architecture.md#one-dns-query).
//!
//! A pattern is a domain name whose labels may contain wildcards:
//!
//! - `?` matches exactly one character inside one label;
//! - `*` matches any run of characters (possibly empty) inside one label, and a
//!   pattern that *starts* with the whole label `*.` also matches the bare parent
//!   (`*.corp.example` matches `corp.example`);
//! - `**`, as a whole label, matches zero or more whole labels, anywhere in the
//!   pattern (`app.**.corp.example` matches `app.corp.example` and `app.x.y.corp.example`).
//!
//! Matching is ASCII case-insensitive and ignores a trailing dot. Wildcards never
//! match a dot. The rightmost label (the TLD) must be literal, so no pattern can
//! capture every name.
//!
//! The client matches a name against all resource patterns at once with
//! [`PatternSet`] (a label trie walked from the TLD); the gateway validates one
//! domain against one resource pattern with [`Pattern::matches`].

mod glob;
mod set;

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

pub use set::PatternSet;

use glob::Glob;

/// The longest pattern text accepted, as for a presentation-format domain name.
pub const MAX_PATTERN_LEN: usize = 253;
/// The longest label, wildcards included.
pub const MAX_LABEL_LEN: usize = 63;

/// Why a pattern was rejected. Values from the pattern are quoted and
/// escaped (`{:?}`): a message is one line whatever the pattern holds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("pattern is empty")]
    Empty,
    #[error("pattern is longer than {MAX_PATTERN_LEN} characters")]
    TooLong,
    #[error("pattern has an empty label (two dots in a row, or a leading dot)")]
    EmptyLabel,
    #[error("label {0:?} is longer than {MAX_LABEL_LEN} characters")]
    LabelTooLong(String),
    #[error(
        "character {c:?} is not allowed (use letters, digits, \"-\", \"_\", \"?\", \"*\"; write internationalised names in punycode)",
        c = .0.to_string()
    )]
    InvalidChar(char),
    #[error("\"**\" must be a whole label (as in \"**.corp.example\"), found {0:?}")]
    DoubleStarInLabel(String),
    #[error("the last label (the TLD) must not contain wildcards")]
    WildcardInTld,
}

/// One label of a pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum LabelPattern {
    /// Matches exactly these (lower-case) bytes.
    Literal(Box<[u8]>),
    /// Contains `?` and/or `*`.
    Glob(Glob),
    /// `**`: zero or more whole labels.
    AnyLabels,
}

impl LabelPattern {
    fn parse(label: &str) -> Result<Self, PatternError> {
        if label.is_empty() {
            return Err(PatternError::EmptyLabel);
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(PatternError::LabelTooLong(label.to_owned()));
        }
        if label == "**" {
            return Ok(Self::AnyLabels);
        }
        if label.contains("**") {
            return Err(PatternError::DoubleStarInLabel(label.to_owned()));
        }
        for c in label.chars() {
            if !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '?' | '*')) {
                return Err(PatternError::InvalidChar(c));
            }
        }
        let lower = label.to_ascii_lowercase().into_bytes();
        if lower.iter().any(|b| matches!(b, b'?' | b'*')) {
            Ok(Self::Glob(Glob::new(&lower)))
        } else {
            Ok(Self::Literal(lower.into_boxed_slice()))
        }
    }

    /// Whether this label pattern matches one (lower-case) label.
    pub(crate) fn matches_label(&self, label: &[u8]) -> bool {
        match self {
            Self::Literal(lit) => **lit == *label,
            Self::Glob(g) => g.matches(label),
            Self::AnyLabels => true,
        }
    }

    fn specificity(&self) -> LabelSpecificity {
        match self {
            Self::Literal(_) => LabelSpecificity {
                class: SpecificityClass::Exact,
                wildcard_chars: 0,
            },
            Self::Glob(g) => LabelSpecificity {
                class: if g.has_star() {
                    SpecificityClass::Star
                } else {
                    SpecificityClass::Question
                },
                // Fewer literal characters means less specific: `b*` beats `*`.
                wildcard_chars: (MAX_LABEL_LEN - g.literal_len()) as u8,
            },
            Self::AnyLabels => LabelSpecificity {
                class: SpecificityClass::AnyLabels,
                wildcard_chars: 0,
            },
        }
    }

    fn is_lone_star(&self) -> bool {
        matches!(self, Self::Glob(g) if g.is_lone_star())
    }
}

/// How specific one label is, most specific first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SpecificityClass {
    Exact,
    Question,
    Star,
    AnyLabels,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct LabelSpecificity {
    class: SpecificityClass,
    wildcard_chars: u8,
}

/// A total order on patterns by how specific they are: **smaller is more specific**.
///
/// Labels are compared from the TLD leftwards; at the first label that differs,
/// exact beats `?` beats `*` beats `**` (and within `?`/`*`, more literal characters
/// win). If one pattern's labels are a prefix of the other's (from the right), the
/// shorter one wins: for two patterns matching the same name the extra labels can
/// only have matched zero labels (`**`, or the parent rule of `*.`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Specificity(Vec<LabelSpecificity>);

/// A parsed, normalised domain pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    text: String,
    /// Left to right, as written.
    labels: Vec<LabelPattern>,
    specificity: Specificity,
}

impl Pattern {
    /// Parses a pattern. Upper case is folded to lower case and one trailing dot is
    /// ignored, so `*.Corp.Example.` and `*.corp.example` are the same pattern.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        let trimmed = text.strip_suffix('.').unwrap_or(text);
        if trimmed.is_empty() {
            return Err(PatternError::Empty);
        }
        if trimmed.len() > MAX_PATTERN_LEN {
            return Err(PatternError::TooLong);
        }
        let labels = trimmed
            .split('.')
            .map(LabelPattern::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if !matches!(labels.last(), Some(LabelPattern::Literal(_))) {
            return Err(PatternError::WildcardInTld);
        }
        let specificity = Specificity(labels.iter().rev().map(|l| l.specificity()).collect());
        Ok(Self {
            text: trimmed.to_ascii_lowercase(),
            labels,
            specificity,
        })
    }

    /// The normalised text (lower case, no trailing dot).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the pattern contains no wildcard at all.
    pub fn is_exact(&self) -> bool {
        self.labels
            .iter()
            .all(|l| matches!(l, LabelPattern::Literal(_)))
    }

    pub fn specificity(&self) -> &Specificity {
        &self.specificity
    }

    /// Compares two patterns by specificity, then by text, so that the order is
    /// total and deterministic. `Less` means `self` is preferred.
    pub fn cmp_specificity(&self, other: &Self) -> Ordering {
        self.specificity
            .cmp(&other.specificity)
            .then_with(|| self.text.cmp(&other.text))
    }

    pub(crate) fn labels(&self) -> &[LabelPattern] {
        &self.labels
    }

    /// Whether the pattern starts with the whole label `*`, which also matches the
    /// bare parent.
    pub(crate) fn starts_with_lone_star(&self) -> bool {
        self.labels.first().is_some_and(LabelPattern::is_lone_star)
    }

    /// Whether `domain` (presentation format, any case, optional trailing dot)
    /// matches this pattern. This is the gateway's check of an `AssignedIps` domain,
    /// so it also insists on a plain host name: labels of 1 to 63 letters, digits,
    /// `-` or `_`, at most 253 characters in all (the client's stub never reports
    /// any other name).
    pub fn matches(&self, domain: &str) -> bool {
        let domain = domain.strip_suffix('.').unwrap_or(domain);
        if !is_hostname(domain) {
            return false;
        }
        let lower = domain.to_ascii_lowercase();
        let labels: Vec<&[u8]> = lower.split('.').map(str::as_bytes).collect();
        self.matches_labels(&labels)
    }

    /// Matches lower-case labels given left to right.
    pub fn matches_labels(&self, name: &[&[u8]]) -> bool {
        if labels_match(&self.labels, name) {
            return true;
        }
        self.starts_with_lone_star() && labels_match(&self.labels[1..], name)
    }
}

/// Whether `domain` (no trailing dot) is a plain host name: 1 to 253 characters,
/// labels of 1 to 63 letters, digits, `-` or `_`.
pub fn is_hostname(domain: &str) -> bool {
    !domain.is_empty()
        && domain.len() <= MAX_PATTERN_LEN
        && domain.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= MAX_LABEL_LEN
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Dynamic programming over (pattern labels × name labels), so that several `**`
/// labels cost O(p·n) rather than exponential backtracking.
fn labels_match(pattern: &[LabelPattern], name: &[&[u8]]) -> bool {
    if name.iter().any(|l| l.is_empty()) {
        return false;
    }
    let n = name.len();
    // row[j]: pattern[i..] matches name[j..]
    let mut next = vec![false; n + 1];
    next[n] = true;
    let mut row = vec![false; n + 1];
    for p in pattern.iter().rev() {
        for j in (0..=n).rev() {
            row[j] = match p {
                LabelPattern::AnyLabels => next[j] || (j < n && row[j + 1]),
                _ => j < n && p.matches_label(name[j]) && next[j + 1],
            };
        }
        std::mem::swap(&mut row, &mut next);
    }
    next[0]
}

impl FromStr for Pattern {
    type Err = PatternError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}
impl Eq for Pattern {}

impl std::hash::Hash for Pattern {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.text.hash(state);
    }
}

#[cfg(test)]
mod tests;
