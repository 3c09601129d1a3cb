//! An order-preserving YAML tree with typed scalars, its parser (on `saphyr-parser` events) and
//! a block-style emitter that writes what sops (go-yaml v3) writes; it must never retype a
//! scalar on a round trip, and its `Debug` never shows a scalar's content (trees hold secrets).

mod emit;
mod parse;
mod resolve;

use std::fmt;

use zeroize::Zeroize;

pub use emit::{emit_document, emit_documents};
pub use parse::parse_documents;
pub(crate) use resolve::parse_go_float;
pub use resolve::{go_float_g, go_float_text};

/// A YAML node: a scalar of one of the types sops knows, a sequence or a mapping.
#[derive(Clone, PartialEq)]
pub enum Value {
    /// `null`, `~` or an empty plain scalar.
    Null,
    /// `true` / `false` (and the `True`/`TRUE` spellings go-yaml v3 accepts).
    Bool(bool),
    /// A 64-bit signed integer.
    Int(i64),
    /// A 64-bit float.
    Float(f64),
    /// A string.
    Str(String),
    /// A plain scalar that YAML resolves to a timestamp, kept as written.
    Timestamp(String),
    /// `!!binary` content, decoded.
    Bytes(Vec<u8>),
    /// A sequence.
    Seq(Vec<Value>),
    /// A mapping with its key order.
    Map(Mapping),
    /// A comment line between the items of a sequence (the text after `#`). sops keeps comments
    /// in its tree; in a sequence they are items, encrypted as `type:comment` values.
    Comment(String),
}

impl Value {
    /// The mapping inside, if this is one.
    pub fn as_map(&self) -> Option<&Mapping> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The mapping inside, mutably, if this is one.
    pub fn as_map_mut(&mut self) -> Option<&mut Mapping> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The string inside, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A short name of the node's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "string",
            Value::Timestamp(_) => "timestamp",
            Value::Bytes(_) => "binary",
            Value::Seq(_) => "list",
            Value::Map(_) => "map",
            Value::Comment(_) => "comment",
        }
    }

    /// The text of a scalar as YAML would show it (strings unquoted); `None` for collections.
    pub fn scalar_text(&self) -> Option<String> {
        match self {
            Value::Null => Some(String::new()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(go_float_g(*f)),
            Value::Str(s) | Value::Timestamp(s) => Some(s.clone()),
            Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
            Value::Seq(_) | Value::Map(_) | Value::Comment(_) => None,
        }
    }
}

impl Zeroize for Value {
    fn zeroize(&mut self) {
        match self {
            Value::Str(s) | Value::Timestamp(s) | Value::Comment(s) => s.zeroize(),
            Value::Bytes(b) => b.zeroize(),
            Value::Int(i) => i.zeroize(),
            Value::Float(f) => f.zeroize(),
            Value::Bool(b) => b.zeroize(),
            Value::Seq(items) => items.iter_mut().for_each(Zeroize::zeroize),
            Value::Map(m) => m.zeroize(),
            Value::Null => {}
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Seq(items) => f.debug_list().entries(items).finish(),
            Value::Map(m) => m.fmt(f),
            Value::Null => f.write_str("null"),
            other => write!(f, "<{} redacted>", other.type_name()),
        }
    }
}

/// A YAML mapping with string keys, in file order, and the comment lines between its entries.
#[derive(Clone, PartialEq, Default)]
pub struct Mapping {
    entries: Vec<(String, Value)>,
    /// Comment lines (the text after `#`), each with the number of entries before it.
    comments: Vec<(usize, String)>,
}

impl Mapping {
    /// An empty mapping.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The value under `key`, mutably.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.entries
            .iter_mut()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key` to `value`: in place when the key exists (keeping its position), else at the end.
    /// Returns the previous value.
    pub fn insert(&mut self, key: impl Into<String>, value: Value) -> Option<Value> {
        let key = key.into();
        if let Some(slot) = self.get_mut(&key) {
            return Some(std::mem::replace(slot, value));
        }
        self.entries.push((key, value));
        None
    }

    /// Removes `key`, returning its value. Comments before it stay where the entry was.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let index = self.entries.iter().position(|(k, _)| k == key)?;
        for (at, _) in &mut self.comments {
            if *at > index {
                *at -= 1;
            }
        }
        Some(self.entries.remove(index).1)
    }

    /// The comment lines with the number of entries before each, in order.
    pub fn comments(&self) -> &[(usize, String)] {
        &self.comments
    }

    /// Adds a comment line after the entries there are now.
    pub fn push_comment(&mut self, text: impl Into<String>) {
        self.comments.push((self.entries.len(), text.into()));
    }

    /// Replaces the comment lines (positions as [`Mapping::comments`] gives them).
    pub fn set_comments(&mut self, comments: Vec<(usize, String)>) {
        self.comments = comments;
    }

    /// Entries in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Entries in order, values mutable.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&str, &mut Value)> {
        self.entries.iter_mut().map(|(k, v)| (k.as_str(), v))
    }

    /// Keys in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }
}

impl FromIterator<(String, Value)> for Mapping {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Self {
        let mut m = Mapping::new();
        for (k, v) in iter {
            m.insert(k, v);
        }
        m
    }
}

impl IntoIterator for Mapping {
    type Item = (String, Value);
    type IntoIter = std::vec::IntoIter<(String, Value)>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl Zeroize for Mapping {
    fn zeroize(&mut self) {
        for (_, v) in &mut self.entries {
            v.zeroize();
        }
        for (_, c) in &mut self.comments {
            c.zeroize();
        }
    }
}

impl fmt::Debug for Mapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.entries.iter().map(|(k, v)| (k, v)))
            .finish()
    }
}

/// A YAML syntax or structure error with its position (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct YamlError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}
