//! Just enough YAML for kubeconfig files: parse a document into a JSON value (through
//! saphyr-parser's events) and write a value back as block-style YAML. Pure.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle};
use serde_json::{Map, Number, Value};

enum Frame {
    Seq(Vec<Value>, usize),
    Map(Map<String, Value>, Option<String>, usize),
}

fn resolve_plain(s: &str) -> Value {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    if !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit())
        && let Ok(i) = s.parse::<i64>()
    {
        return Value::Number(i.into());
    }
    if let Some(hex) = s.strip_prefix("0x")
        && let Ok(i) = i64::from_str_radix(hex, 16)
    {
        return Value::Number(i.into());
    }
    let looks_float = !digits.is_empty()
        && digits
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+'))
        && digits
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit() || c == '.')
        && digits.contains(|c: char| c.is_ascii_digit());
    if looks_float && let Some(n) = s.parse::<f64>().ok().and_then(Number::from_f64) {
        return Value::Number(n);
    }
    Value::String(s.to_string())
}

/// Parses the first YAML document of `text`; an empty text is `Null`.
pub(crate) fn parse(text: &str) -> Result<Value, String> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, Value> = HashMap::new();
    let mut root: Option<Value> = None;
    for ev in Parser::new_from_str(text) {
        let (ev, span) = ev.map_err(|e| format!("not valid YAML: {e}"))?;
        let mut value: Option<(Value, usize)> = None;
        match ev {
            Event::StreamStart | Event::DocumentStart(_) | Event::Nothing => {}
            Event::DocumentEnd | Event::StreamEnd => {
                if root.is_some() {
                    break;
                }
            }
            Event::Alias(id) => {
                let v = anchors.get(&id).cloned().ok_or_else(|| {
                    format!("line {}: alias to an unknown anchor", span.start.line())
                })?;
                value = Some((v, 0));
            }
            Event::Scalar(text, style, anchor, tag) => {
                let is_str_tag = tag.as_ref().is_some_and(|t| t.suffix == "str");
                let v = if style == ScalarStyle::Plain && !is_str_tag {
                    resolve_plain(&text)
                } else {
                    Value::String(text.into_owned())
                };
                value = Some((v, anchor));
            }
            Event::SequenceStart(anchor, _) => stack.push(Frame::Seq(Vec::new(), anchor)),
            Event::MappingStart(anchor, _) => stack.push(Frame::Map(Map::new(), None, anchor)),
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq(items, anchor)) => value = Some((Value::Array(items), anchor)),
                _ => return Err("unbalanced sequence".into()),
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map(map, _, anchor)) => value = Some((Value::Object(map), anchor)),
                _ => return Err("unbalanced mapping".into()),
            },
        }
        if let Some((v, anchor)) = value {
            if anchor != 0 {
                anchors.insert(anchor, v.clone());
            }
            match stack.last_mut() {
                None => root = Some(v),
                Some(Frame::Seq(items, _)) => items.push(v),
                Some(Frame::Map(map, key, _)) => match key.take() {
                    None => {
                        let k = match v {
                            Value::String(s) => s,
                            Value::Null => String::new(),
                            Value::Bool(_) | Value::Number(_) => v.to_string(),
                            _ => {
                                return Err(format!(
                                    "line {}: a mapping key must be a plain value",
                                    span.start.line()
                                ));
                            }
                        };
                        *key = Some(k);
                    }
                    Some(k) => {
                        map.insert(k, v);
                    }
                },
            }
        }
    }
    Ok(root.unwrap_or(Value::Null))
}

fn plain_ok(s: &str) -> bool {
    if s.is_empty() || s != s.trim() || resolve_plain(s) != Value::String(s.to_string()) {
        return false;
    }
    let lower = s.to_ascii_lowercase();
    if ["yes", "no", "on", "off", "y", "n", ".inf", "-.inf", ".nan"].contains(&lower.as_str()) {
        return false;
    }
    let first = s.chars().next().expect("non-empty");
    if "-?:,[]{}#&*!|>'\"%@`".contains(first) {
        return false;
    }
    !(s.contains(": ") || s.contains(" #") || s.ends_with(':') || s.chars().any(|c| c.is_control()))
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) if plain_ok(s) => s.clone(),
        Value::String(s) => serde_json::to_string(s).expect("strings serialise"),
        other => serde_json::to_string(other).expect("values serialise"),
    }
}

fn is_empty_collection(v: &Value) -> bool {
    matches!(v, Value::Object(m) if m.is_empty()) || matches!(v, Value::Array(a) if a.is_empty())
}

fn write_map(map: &Map<String, Value>, indent: usize, out: &mut String, first_inline: bool) {
    for (i, (k, v)) in map.iter().enumerate() {
        if !(first_inline && i == 0) {
            out.push_str(&" ".repeat(indent));
        }
        out.push_str(&scalar(&Value::String(k.clone())));
        out.push(':');
        match v {
            Value::Object(m) if !m.is_empty() => {
                out.push('\n');
                write_map(m, indent + 2, out, false);
            }
            Value::Array(a) if !a.is_empty() => {
                out.push('\n');
                write_seq(a, indent, out);
            }
            _ => {
                out.push(' ');
                out.push_str(&if is_empty_collection(v) {
                    serde_json::to_string(v).expect("json")
                } else {
                    scalar(v)
                });
                out.push('\n');
            }
        }
    }
}

fn write_seq(items: &[Value], indent: usize, out: &mut String) {
    for item in items {
        out.push_str(&" ".repeat(indent));
        out.push_str("- ");
        match item {
            Value::Object(m) if !m.is_empty() => write_map(m, indent + 2, out, true),
            Value::Array(_) | Value::Object(_) => {
                out.push_str(&serde_json::to_string(item).expect("json"));
                out.push('\n');
            }
            _ => {
                out.push_str(&scalar(item));
                out.push('\n');
            }
        }
    }
}

/// Writes `v` as a YAML document (block style, kubectl's list indentation).
pub(crate) fn to_string(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Object(m) if !m.is_empty() => write_map(m, 0, &mut out, false),
        Value::Array(a) if !a.is_empty() => write_seq(a, 0, &mut out),
        other => {
            out.push_str(&if is_empty_collection(other) {
                serde_json::to_string(other).expect("json")
            } else {
                scalar(other)
            });
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_a_kubeconfig() {
        let v = parse(
            "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: LS0t\n    server: https://127.0.0.1:6443\n  name: default\n\
             preferences: {}\nport: 6443\ninsecure: false\nquoted: \"6443\"\nempty:\nanchor: &a {x: 1}\nalias: *a\n",
        )
        .unwrap();
        assert_eq!(
            v["clusters"][0]["cluster"]["server"],
            "https://127.0.0.1:6443"
        );
        assert_eq!(v["preferences"], json!({}));
        assert_eq!(v["port"], 6443);
        assert_eq!(v["insecure"], false);
        assert_eq!(v["quoted"], "6443");
        assert_eq!(v["empty"], Value::Null);
        assert_eq!(v["alias"], json!({"x": 1}));
    }

    #[test]
    fn writes_what_it_reads() {
        let v = json!({
            "apiVersion": "v1",
            "clusters": [{"cluster": {"server": "https://[fd00::1]:6443", "certificate-authority-data": "LS0tLS1CRUdJTg=="}, "name": "lab"}],
            "contexts": [{"context": {"cluster": "lab", "user": "lab", "namespace": "default"}, "name": "lab"}],
            "users": [{"name": "lab", "user": {"exec": {"args": ["--region", "eu"], "command": "aws", "env": null}}}],
            "preferences": {},
            "strings": ["yes", "true", "123", "a: b", "#x", " lead", "multi\nline", "", "-", "plain value"],
            "nested": [[1, 2], []],
        });
        let text = to_string(&v);
        assert!(
            text.contains("clusters:\n- cluster:\n    server: https://[fd00::1]:6443\n"),
            "{text}"
        );
        assert!(text.contains("preferences: {}\n"));
        assert_eq!(parse(&text).unwrap(), v, "{text}");
    }

    #[test]
    fn refuses_broken_yaml() {
        assert!(parse("a: [1, 2\n").is_err());
        assert_eq!(parse("").unwrap(), Value::Null);
    }
}
