//! Builds `Value` trees from `saphyr-parser` events, with the comment lines placed where sops
//! (go-yaml v3) places them; pure, it must not drop a key, value or comment silently
//! (duplicate keys and complex keys are errors, as in go-yaml v3).

use std::collections::HashMap;

use base64::Engine as _;
use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Span, Tag};

use super::resolve::resolve_plain;
use super::{Mapping, Value, YamlError};
use crate::timefmt::parse_yaml_timestamp;

/// Alias expansion copies nodes; this bounds the copies so a small file cannot explode.
const MAX_ALIAS_NODES: usize = 1_000_000;

enum Frame {
    Seq {
        items: Vec<Value>,
        anchor: usize,
        /// The column of the key (or list item) this sequence is the value of.
        owner_col: usize,
        /// The column of the sequence itself (its `-` indicators).
        col: usize,
    },
    Map {
        map: Mapping,
        pending_key: Option<String>,
        /// The column of the key waiting for its value.
        key_col: usize,
        anchor: usize,
        owner_col: usize,
    },
}

/// A comment in the source: where it starts (character index, line, column) and the text
/// after its `#`.
struct SourceComment {
    index: usize,
    line: usize,
    col: usize,
    text: String,
}

struct Builder {
    stack: Vec<Frame>,
    docs: Vec<Value>,
    anchors: HashMap<usize, Value>,
    /// The source text of anchored scalars, for aliases used as mapping keys.
    anchor_texts: HashMap<usize, String>,
    alias_nodes: usize,
    /// Comments not placed yet, in source order.
    comments: std::collections::VecDeque<SourceComment>,
}

/// Parses every document of a YAML stream, comments included. An empty stream gives no
/// documents.
pub fn parse_documents(text: &str) -> Result<Vec<Value>, YamlError> {
    let mut events = Vec::new();
    let mut parser = Parser::new_from_str(text);
    while let Some(next) = parser.next_event() {
        let (event, span) = next.map_err(scan_error)?;
        let end = matches!(event, Event::StreamEnd);
        events.push((event, span));
        if end {
            break;
        }
    }
    let scalars: Vec<(usize, usize)> = events
        .iter()
        .filter(|(e, _)| matches!(e, Event::Scalar(..)))
        .map(|(_, span)| (span.start.index(), span.end.index()))
        .collect();
    let mut b = Builder {
        stack: Vec::new(),
        docs: Vec::new(),
        anchors: HashMap::new(),
        anchor_texts: HashMap::new(),
        alias_nodes: 0,
        comments: scan_comments(text, &scalars).into(),
    };
    let mut doc_starts = Vec::new();
    for (event, span) in events {
        match event {
            Event::StreamEnd => break,
            Event::DocumentStart(_) => doc_starts.push(span.start.index()),
            Event::Nothing | Event::StreamStart | Event::DocumentEnd => {}
            Event::Scalar(text, style, anchor, tag) => {
                b.before_node(span);
                if b.awaiting_key() {
                    b.key(text.into_owned(), anchor, span)?;
                } else {
                    let value =
                        scalar_value(&text, style, tag.as_deref()).map_err(|m| at(span, m))?;
                    if anchor != 0 {
                        b.anchor_texts.insert(anchor, text.into_owned());
                    }
                    b.complete(value, anchor, span)?;
                }
            }
            Event::SequenceStart(anchor, _) => {
                if b.awaiting_key() {
                    return Err(at(span, "complex mapping keys (lists) are not supported"));
                }
                b.before_node(span);
                let owner_col = b.owner_col();
                b.stack.push(Frame::Seq {
                    items: Vec::new(),
                    anchor,
                    owner_col,
                    col: span.start.col(),
                });
            }
            Event::MappingStart(anchor, _) => {
                if b.awaiting_key() {
                    return Err(at(span, "complex mapping keys (maps) are not supported"));
                }
                b.before_node(span);
                let owner_col = b.owner_col();
                b.stack.push(Frame::Map {
                    map: Mapping::new(),
                    pending_key: None,
                    key_col: 0,
                    anchor,
                    owner_col,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                b.foot_comments(span);
                let (value, anchor) = match b.stack.pop() {
                    Some(Frame::Seq { items, anchor, .. }) => (Value::Seq(items), anchor),
                    Some(Frame::Map { map, anchor, .. }) => (Value::Map(map), anchor),
                    None => return Err(at(span, "unbalanced end of collection")),
                };
                b.complete(value, anchor, span)?;
            }
            Event::Alias(id) => {
                b.before_node(span);
                if b.awaiting_key() {
                    let text =
                        b.anchor_texts.get(&id).cloned().ok_or_else(|| {
                            at(span, "an alias used as a key must point to a scalar")
                        })?;
                    b.key(text, 0, span)?;
                    continue;
                }
                let value = b
                    .anchors
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| at(span, "alias to an unknown anchor"))?;
                b.alias_nodes += node_count(&value);
                if b.alias_nodes > MAX_ALIAS_NODES {
                    return Err(at(span, "aliases expand to too many nodes"));
                }
                b.complete(value, 0, span)?;
            }
        }
    }
    // What is left are comments after the last entry of a document: they end its mapping.
    while let Some(c) = b.comments.pop_front() {
        let doc = doc_starts
            .iter()
            .rposition(|start| *start <= c.index)
            .unwrap_or(0);
        if let Some(Value::Map(m)) = b.docs.get_mut(doc) {
            m.push_comment(c.text);
        } else if let Some(Value::Seq(items)) = b.docs.get_mut(doc) {
            items.push(Value::Comment(c.text));
        }
    }
    Ok(b.docs)
}

/// Finds every comment: a `#` at the start of a line or after white space that is not inside
/// a scalar (`scalars` are the character ranges of every scalar, in order).
fn scan_comments(text: &str, scalars: &[(usize, usize)]) -> Vec<SourceComment> {
    let mut out = Vec::new();
    let inside = |index: usize| {
        let after = scalars.partition_point(|(start, _)| *start <= index);
        after > 0 && index < scalars[after - 1].1
    };
    let mut index = 0;
    for (line_no, line) in text.split('\n').enumerate() {
        let mut previous_blank = true;
        for (col, c) in line.chars().enumerate() {
            if c == '#' && previous_blank && !inside(index + col) {
                let text: String = line.chars().skip(col + 1).collect();
                out.push(SourceComment {
                    index: index + col,
                    line: line_no + 1,
                    col,
                    text: text.trim_end_matches('\r').to_owned(),
                });
                break;
            }
            previous_blank = matches!(c, ' ' | '\t');
        }
        index += line.chars().count() + 1;
    }
    out
}

impl Builder {
    /// The column that owns a collection starting now: the key it is the value of, or the
    /// list it is an item of.
    fn owner_col(&self) -> usize {
        match self.stack.last() {
            Some(Frame::Map { key_col, .. }) => *key_col,
            Some(Frame::Seq { col, .. }) => *col,
            None => 0,
        }
    }

    /// Places the comments before a node that starts an entry (a key, or a list item), and
    /// those on the node's own line (sops writes line comments before their entry).
    fn before_node(&mut self, span: Span) {
        let starts_entry = matches!(
            self.stack.last(),
            Some(Frame::Map {
                pending_key: None,
                ..
            }) | Some(Frame::Seq { .. })
        );
        if !starts_entry {
            return;
        }
        let line = span.start.line();
        while self
            .comments
            .front()
            .is_some_and(|c| c.index < span.start.index() || c.line == line)
        {
            let c = self.comments.pop_front().expect("checked above");
            match self.stack.last_mut() {
                Some(Frame::Map { map, .. }) => map.push_comment(c.text),
                Some(Frame::Seq { items, .. }) => items.push(Value::Comment(c.text)),
                None => {}
            }
        }
    }

    /// Places the comments that end the collection closing at `span`: those before the next
    /// token, indented deeper than it and at least as deep as the collection's owner (go-yaml
    /// v3's foot comments). The last collection of a document takes all that are left before.
    fn foot_comments(&mut self, span: Span) {
        let next_col = span.start.col();
        let last = self.stack.len() == 1;
        let Some(frame) = self.stack.last_mut() else {
            return;
        };
        let owner_col = match frame {
            Frame::Map { owner_col, .. } | Frame::Seq { owner_col, .. } => *owner_col,
        };
        while self.comments.front().is_some_and(|c| {
            c.index < span.start.index() && (last || (c.col > next_col && c.col >= owner_col))
        }) {
            let c = self.comments.pop_front().expect("checked above");
            match frame {
                Frame::Map { map, .. } => map.push_comment(c.text),
                Frame::Seq { items, .. } => items.push(Value::Comment(c.text)),
            }
        }
    }

    fn awaiting_key(&self) -> bool {
        matches!(
            self.stack.last(),
            Some(Frame::Map {
                pending_key: None,
                ..
            })
        )
    }

    fn key(&mut self, text: String, anchor: usize, span: Span) -> Result<(), YamlError> {
        if anchor != 0 {
            self.anchor_texts.insert(anchor, text.clone());
            self.anchors.insert(anchor, Value::Str(text.clone()));
        }
        if let Some(Frame::Map {
            map,
            pending_key,
            key_col,
            ..
        }) = self.stack.last_mut()
        {
            if map.contains_key(&text) {
                return Err(at(span, format!("mapping key `{text}` is defined twice")));
            }
            *pending_key = Some(text);
            *key_col = span.start.col();
        }
        Ok(())
    }

    fn complete(&mut self, value: Value, anchor: usize, span: Span) -> Result<(), YamlError> {
        if anchor != 0 {
            self.anchors.insert(anchor, value.clone());
        }
        match self.stack.last_mut() {
            None => self.docs.push(value),
            Some(Frame::Seq { items, .. }) => items.push(value),
            Some(Frame::Map {
                map, pending_key, ..
            }) => match pending_key.take() {
                Some(key) => {
                    map.insert(key, value);
                }
                None => return Err(at(span, "a mapping key must be a scalar")),
            },
        }
        Ok(())
    }
}

fn node_count(v: &Value) -> usize {
    match v {
        Value::Seq(items) => 1 + items.iter().map(node_count).sum::<usize>(),
        Value::Map(m) => 1 + m.iter().map(|(_, v)| node_count(v)).sum::<usize>(),
        _ => 1,
    }
}

/// Types a scalar from its text, quoting style and tag.
fn scalar_value(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> Result<Value, String> {
    if let Some(tag) = tag {
        if tag.is_yaml_core_schema() {
            return core_tagged(text, &tag.suffix);
        }
        if tag.handle == "!" && tag.suffix.is_empty() {
            // The non-specific tag `!` forces a string.
            return Ok(Value::Str(text.to_owned()));
        }
    }
    Ok(match style {
        ScalarStyle::Plain => resolve_plain(text),
        _ => Value::Str(text.to_owned()),
    })
}

fn core_tagged(text: &str, suffix: &str) -> Result<Value, String> {
    let bad = |what: &str| format!("`{text}` is not a valid {what}");
    match suffix {
        "str" => Ok(Value::Str(text.to_owned())),
        "null" => Ok(Value::Null),
        "bool" => match resolve_plain(text) {
            v @ Value::Bool(_) => Ok(v),
            _ => Err(bad("!!bool")),
        },
        "int" => match resolve_plain(text) {
            v @ Value::Int(_) => Ok(v),
            _ => Err(bad("!!int")),
        },
        "float" => match resolve_plain(text) {
            Value::Int(i) => Ok(Value::Float(i as f64)),
            v @ Value::Float(_) => Ok(v),
            _ => Err(bad("!!float")),
        },
        "timestamp" => {
            if parse_yaml_timestamp(text).is_some() {
                Ok(Value::Timestamp(text.to_owned()))
            } else {
                Err(bad("!!timestamp"))
            }
        }
        "binary" => {
            let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
            base64::engine::general_purpose::STANDARD
                .decode(compact)
                .map(Value::Bytes)
                .map_err(|_| bad("!!binary (base64)"))
        }
        "merge" => Ok(Value::Str(text.to_owned())),
        other => Err(format!("the tag `!!{other}` cannot be used on a scalar")),
    }
}

fn at(span: Span, message: impl Into<String>) -> YamlError {
    YamlError {
        line: span.start.line(),
        column: span.start.col() + 1,
        message: message.into(),
    }
}

fn scan_error(e: ScanError) -> YamlError {
    YamlError {
        line: e.marker().line(),
        column: e.marker().col() + 1,
        message: e.info().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Value {
        let mut docs = parse_documents(text).unwrap();
        assert_eq!(docs.len(), 1);
        docs.remove(0)
    }

    #[test]
    fn keeps_order_and_types() {
        let v = one("b: 1\na: '1'\nc: [true, 1.5, ~]\nd:\n  - x\n  - y: z\n");
        let m = v.as_map().unwrap();
        assert_eq!(m.keys().collect::<Vec<_>>(), ["b", "a", "c", "d"]);
        assert_eq!(m.get("b"), Some(&Value::Int(1)));
        assert_eq!(m.get("a"), Some(&Value::Str("1".into())));
        assert_eq!(
            m.get("c"),
            Some(&Value::Seq(vec![
                Value::Bool(true),
                Value::Float(1.5),
                Value::Null
            ]))
        );
    }

    #[test]
    fn block_scalars_and_tags() {
        let v = one(
            "a: |\n  line1\n  line2\nb: >-\n  folded\n  text\nc: !!str 12\nd: !!binary aGk=\ne: !!float 3\n",
        );
        let m = v.as_map().unwrap();
        assert_eq!(m.get("a"), Some(&Value::Str("line1\nline2\n".into())));
        assert_eq!(m.get("b"), Some(&Value::Str("folded text".into())));
        assert_eq!(m.get("c"), Some(&Value::Str("12".into())));
        assert_eq!(m.get("d"), Some(&Value::Bytes(b"hi".to_vec())));
        assert_eq!(m.get("e"), Some(&Value::Float(3.0)));
    }

    #[test]
    fn aliases_are_expanded_and_keys_keep_their_text() {
        let v = one("base: &b {x: 1}\ncopy: *b\n0x10: hex key\n");
        let m = v.as_map().unwrap();
        assert_eq!(m.get("copy"), m.get("base"));
        assert_eq!(m.get("0x10"), Some(&Value::Str("hex key".into())));
    }

    #[test]
    fn duplicate_keys_are_errors_with_position() {
        let err = parse_documents("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.line, 3);
        assert!(err.message.contains("`a`"), "{err}");
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = parse_documents("a: 1\nb: [unclosed\nc: 2\n").unwrap_err();
        assert!(err.line >= 2, "{err}");
        let err = parse_documents("a: b: c\n").unwrap_err();
        assert_eq!(err.line, 1, "{err}");
    }

    #[test]
    fn multiple_documents_and_empty_stream() {
        assert!(parse_documents("").unwrap().is_empty());
        let docs = parse_documents("a: 1\n---\nb: 2\n").unwrap();
        assert_eq!(docs.len(), 2);
        let docs = parse_documents("---\n").unwrap();
        assert_eq!(docs, vec![Value::Null]);
    }

    #[test]
    fn comments_are_placed_as_sops_places_them_and_hashes_in_scalars_are_not_comments() {
        let v = one(
            "# top\ndb:\n    # head\n    user: app # inline\n    list:\n        # item\n        - a\n        - b\n    # foot\n# next\napi: 'x # y'\nblock: |\n    # not a comment\nplain: a#b\n# end\n",
        );
        let m = v.as_map().unwrap();
        assert_eq!(
            m.comments(),
            [
                (0, " top".to_owned()),
                (1, " next".to_owned()),
                (4, " end".to_owned())
            ]
        );
        let db = m.get("db").unwrap().as_map().unwrap();
        assert_eq!(
            db.comments(),
            [(0, " head".to_owned()), (0, " inline".to_owned())]
        );
        assert_eq!(
            db.get("list"),
            Some(&Value::Seq(vec![
                Value::Comment(" item".into()),
                Value::Str("a".into()),
                Value::Str("b".into()),
                Value::Comment(" foot".into()),
            ]))
        );
        assert_eq!(m.get("api"), Some(&Value::Str("x # y".into())));
        assert_eq!(
            m.get("block"),
            Some(&Value::Str("# not a comment\n".into()))
        );
        assert_eq!(m.get("plain"), Some(&Value::Str("a#b".into())));
    }

    #[test]
    fn complex_keys_are_rejected() {
        assert!(parse_documents("? [a, b]\n: c\n").is_err());
    }
}
