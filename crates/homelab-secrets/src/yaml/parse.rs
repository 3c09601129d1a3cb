//! Builds `Value` trees from `saphyr-parser` events; pure, it must not drop a key or value
//! silently (duplicate keys and complex keys are errors, as in go-yaml v3).

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
    },
    Map {
        map: Mapping,
        pending_key: Option<String>,
        anchor: usize,
    },
}

struct Builder {
    stack: Vec<Frame>,
    docs: Vec<Value>,
    anchors: HashMap<usize, Value>,
    /// The source text of anchored scalars, for aliases used as mapping keys.
    anchor_texts: HashMap<usize, String>,
    alias_nodes: usize,
}

/// Parses every document of a YAML stream. An empty stream gives no documents.
pub fn parse_documents(text: &str) -> Result<Vec<Value>, YamlError> {
    let mut parser = Parser::new_from_str(text);
    let mut b = Builder {
        stack: Vec::new(),
        docs: Vec::new(),
        anchors: HashMap::new(),
        anchor_texts: HashMap::new(),
        alias_nodes: 0,
    };
    while let Some(next) = parser.next_event() {
        let (event, span) = next.map_err(scan_error)?;
        match event {
            Event::StreamEnd => break,
            Event::Nothing | Event::StreamStart | Event::DocumentStart(_) | Event::DocumentEnd => {}
            Event::Scalar(text, style, anchor, tag) => {
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
                b.stack.push(Frame::Seq {
                    items: Vec::new(),
                    anchor,
                });
            }
            Event::MappingStart(anchor, _) => {
                if b.awaiting_key() {
                    return Err(at(span, "complex mapping keys (maps) are not supported"));
                }
                b.stack.push(Frame::Map {
                    map: Mapping::new(),
                    pending_key: None,
                    anchor,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (value, anchor) = match b.stack.pop() {
                    Some(Frame::Seq { items, anchor }) => (Value::Seq(items), anchor),
                    Some(Frame::Map { map, anchor, .. }) => (Value::Map(map), anchor),
                    None => return Err(at(span, "unbalanced end of collection")),
                };
                b.complete(value, anchor, span)?;
            }
            Event::Alias(id) => {
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
    Ok(b.docs)
}

impl Builder {
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
            map, pending_key, ..
        }) = self.stack.last_mut()
        {
            if map.contains_key(&text) {
                return Err(at(span, format!("mapping key `{text}` is defined twice")));
            }
            *pending_key = Some(text);
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
    fn complex_keys_are_rejected() {
        assert!(parse_documents("? [a, b]\n: c\n").is_err());
    }
}
