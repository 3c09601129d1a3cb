//! Redaction of known secret values from any text (logs, error messages, outputs), including
//! their base64 forms as Kubernetes `data:` fields hold them; it must never return a known
//! value, and it shows secrets only as names or fingerprints.

use std::fmt;

use aho_corasick::{AhoCorasick, MatchKind};
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};

/// Values shorter than this are not redacted: they would match ordinary words.
pub const MIN_REDACT_LEN: usize = 4;

/// A set of named secret values (for example the store's). `Debug` shows names only.
#[derive(Clone, Default)]
pub struct KnownSecrets {
    entries: Vec<(String, SecretString)>,
}

impl fmt::Debug for KnownSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}

impl KnownSecrets {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a value under a name (empty values are ignored).
    pub fn insert(&mut self, name: &str, value: SecretString) {
        if !value.expose_secret().is_empty() {
            self.entries.push((name.to_owned(), value));
        }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The names.
    pub fn names(&self) -> Vec<&str> {
        self.entries.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// The value under `name`.
    pub fn get(&self, name: &str) -> Option<&SecretString> {
        self.entries.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &SecretString)> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v))
    }
}

/// How a known value appeared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// As is.
    Plain,
    /// Base64-encoded (as in a Kubernetes Secret's `data`).
    Base64,
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Encoding::Plain => "plain",
            Encoding::Base64 => "base64",
        })
    }
}

/// A multi-pattern matcher over known values and their base64 forms.
pub(crate) struct Matcher {
    automaton: Option<AhoCorasick>,
    labels: Vec<(String, Encoding)>,
}

/// A match of a known value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KnownMatch {
    pub name: String,
    pub encoding: Encoding,
    pub start: usize,
    pub end: usize,
}

impl Matcher {
    pub(crate) fn new(known: &KnownSecrets, min_len: usize) -> Self {
        let mut patterns: Vec<Vec<u8>> = Vec::new();
        let mut labels = Vec::new();
        for (name, value) in known.iter() {
            let plain = value.expose_secret();
            if plain.len() < min_len {
                continue;
            }
            patterns.push(plain.as_bytes().to_vec());
            labels.push((name.to_owned(), Encoding::Plain));
            let b64 = base64::engine::general_purpose::STANDARD.encode(plain.as_bytes());
            patterns.push(b64.into_bytes());
            labels.push((name.to_owned(), Encoding::Base64));
        }
        let automaton = (!patterns.is_empty()).then(|| {
            AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(&patterns)
                .expect("literal patterns always build")
        });
        Self { automaton, labels }
    }

    pub(crate) fn find_all(&self, haystack: &[u8]) -> Vec<KnownMatch> {
        let Some(ac) = &self.automaton else {
            return Vec::new();
        };
        ac.find_iter(haystack)
            .map(|m| {
                let (name, encoding) = &self.labels[m.pattern().as_usize()];
                KnownMatch {
                    name: name.clone(),
                    encoding: *encoding,
                    start: m.start(),
                    end: m.end(),
                }
            })
            .collect()
    }
}

/// Replaces known secret values in text with `[REDACTED:name]`.
pub struct Redactor {
    matcher: Matcher,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("patterns", &self.matcher.labels.len())
            .finish()
    }
}

impl Redactor {
    /// A redactor for these values (and their base64 forms); values shorter than
    /// [`MIN_REDACT_LEN`] are left alone.
    pub fn new(known: &KnownSecrets) -> Self {
        Self {
            matcher: Matcher::new(known, MIN_REDACT_LEN),
        }
    }

    /// The text with every known value replaced by `[REDACTED:name]`.
    pub fn redact(&self, text: &str) -> String {
        let matches = self.matcher.find_all(text.as_bytes());
        if matches.is_empty() {
            return text.to_owned();
        }
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for m in matches {
            // Matches are on byte offsets of whole UTF-8 patterns, so they are char boundaries.
            out.push_str(&text[last..m.start]);
            out.push_str("[REDACTED:");
            out.push_str(&m.name);
            out.push(']');
            last = m.end;
        }
        out.push_str(&text[last..]);
        out
    }

    /// Whether the text contains any known value.
    pub fn contains_secret(&self, text: &str) -> bool {
        !self.matcher.find_all(text.as_bytes()).is_empty()
    }
}

/// A fingerprint that identifies a value without revealing it: its first two characters
/// (only for values of 8 or more characters) and its length.
pub fn fingerprint(value: &str) -> String {
    let len = value.chars().count();
    if len >= 8 {
        let head: String = value.chars().take(2).collect();
        format!("{head}… ({len} chars)")
    } else {
        format!("({len} chars)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> KnownSecrets {
        let mut k = KnownSecrets::new();
        k.insert("db", SecretString::from("s3cr3t-value".to_owned()));
        k.insert("tiny", SecretString::from("ab".to_owned()));
        k.insert("empty", SecretString::from(String::new()));
        k
    }

    #[test]
    fn redacts_plain_and_base64_forms() {
        let r = Redactor::new(&known());
        let b64 = base64::engine::general_purpose::STANDARD.encode("s3cr3t-value");
        let text = format!("connect with s3cr3t-value; data: {b64}; ab stays");
        let out = r.redact(&text);
        assert_eq!(
            out,
            "connect with [REDACTED:db]; data: [REDACTED:db]; ab stays"
        );
        assert!(r.contains_secret(&text));
        assert!(!r.contains_secret(&out));
        assert_eq!(known().len(), 2);
    }

    #[test]
    fn debug_and_fingerprints_never_show_values() {
        let k = known();
        assert!(!format!("{k:?}").contains("s3cr3t"));
        assert!(!format!("{:?}", Redactor::new(&k)).contains("s3cr3t"));
        assert_eq!(fingerprint("s3cr3t-value"), "s3… (12 chars)");
        assert_eq!(fingerprint("short"), "(5 chars)");
    }
}
