//! A YAML document as a tree of nodes that remember where they came from; it parses text that
//! the caller already read and never touches the disk.
//!
//! We build our own small tree (on `saphyr-parser` events) rather than deserializing straight
//! from text because validation must report every problem at once, each at its exact place,
//! and must reject what serde-based loaders quietly accept (duplicate keys, several documents).

use saphyr_parser::{Event, Parser, ScalarStyle};

use crate::diag::{Diagnostic, Span};

/// The largest spec we read. A lab spec is a few kilobytes; even 5,000 custom apps stay far below.
pub const MAX_SPEC_BYTES: usize = 4 * 1024 * 1024;

/// How many nodes alias expansion may produce, against "billion laughs" documents.
const MAX_NODES: usize = 2_000_000;

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A scalar as written; its type is resolved by whoever reads it (YAML 1.2 core schema).
    Scalar {
        text: String,
        quoted: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

/// What a plain scalar means under the YAML 1.2 core schema.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolved<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
}

impl Node {
    pub fn resolve(&self) -> Option<Resolved<'_>> {
        match &self.value {
            Value::Scalar { text, quoted: true } => Some(Resolved::Str(text)),
            Value::Scalar {
                text,
                quoted: false,
            } => Some(resolve_plain(text)),
            _ => None,
        }
    }

    /// A short description of what the node holds, for "expected X, found Y" messages.
    pub fn describe(&self) -> String {
        match self.resolve() {
            None => match self.value {
                Value::Seq(_) => "a list".into(),
                _ => "a mapping".into(),
            },
            Some(Resolved::Null) => "nothing".into(),
            Some(Resolved::Bool(b)) => format!("the boolean `{b}`"),
            Some(Resolved::Int(i)) => format!("the number `{i}`"),
            Some(Resolved::Float(_)) => {
                format!("the number `{}`", self.scalar_text().unwrap_or_default())
            }
            Some(Resolved::Str(s)) => format!("the text `{}`", shorten(s)),
        }
    }

    pub fn scalar_text(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }
}

impl Node {
    /// The node as JSON with scalars resolved by the YAML 1.2 core schema (for reading back
    /// documents, e.g. in tests and for values embedded in manifests).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.scalar_text().unwrap_or_default().to_string(), v.to_json()))
                    .collect(),
            ),
            Value::Scalar { .. } => match self.resolve() {
                Some(Resolved::Null) | None => J::Null,
                Some(Resolved::Bool(b)) => J::Bool(b),
                Some(Resolved::Int(i)) => J::from(i),
                Some(Resolved::Float(f)) => serde_json::Number::from_f64(f).map_or(J::Null, J::Number),
                Some(Resolved::Str(s)) => J::String(s.to_string()),
            },
        }
    }
}

fn shorten(s: &str) -> String {
    let mut out: String = s.chars().take(40).collect();
    if s.chars().count() > 40 {
        out.push('…');
    }
    out.replace('\n', "\\n")
}

pub fn resolve_plain(text: &str) -> Resolved<'_> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Resolved::Null,
        "true" | "True" | "TRUE" => return Resolved::Bool(true),
        "false" | "False" | "FALSE" => return Resolved::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Resolved::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Resolved::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Resolved::Float(f64::NAN),
        _ => {}
    }
    let bytes = text.as_bytes();
    let digits_only = |s: &str, radix: u32| !s.is_empty() && s.chars().all(|c| c.is_digit(radix));
    if let Some(hex) = text.strip_prefix("0x") {
        if digits_only(hex, 16)
            && let Ok(i) = i64::from_str_radix(hex, 16)
        {
            return Resolved::Int(i);
        }
        return Resolved::Str(text);
    }
    if let Some(oct) = text.strip_prefix("0o") {
        if digits_only(oct, 8)
            && let Ok(i) = i64::from_str_radix(oct, 8)
        {
            return Resolved::Int(i);
        }
        return Resolved::Str(text);
    }
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits_only(unsigned, 10) {
        if let Ok(i) = text.parse::<i64>() {
            return Resolved::Int(i);
        }
        return Resolved::Str(text);
    }
    // Floats: [-+]? ( . [0-9]+ | [0-9]+ ( . [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
    let is_float = !unsigned.is_empty()
        && bytes
            .iter()
            .all(|b| b.is_ascii_digit() || b".eE+-".contains(b))
        && unsigned
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit() || c == '.')
        && unsigned.chars().any(|c| c.is_ascii_digit());
    if is_float && let Ok(f) = text.parse::<f64>() {
        return Resolved::Float(f);
    }
    Resolved::Str(text)
}

/// Turns the parser's character positions into byte offsets.
struct Offsets {
    /// Byte offset of each character, present only when the text is not pure ASCII.
    table: Option<Vec<usize>>,
    len: usize,
}

impl Offsets {
    fn new(text: &str) -> Self {
        let table = (!text.is_ascii()).then(|| text.char_indices().map(|(i, _)| i).collect());
        Offsets {
            table,
            len: text.len(),
        }
    }

    fn byte(&self, char_index: usize) -> usize {
        match &self.table {
            None => char_index.min(self.len),
            Some(t) => t.get(char_index).copied().unwrap_or(self.len),
        }
    }
}

/// Checks the raw bytes of a spec before parsing: size, encoding, control characters.
pub fn check_bytes(bytes: &[u8]) -> Result<&str, Box<Diagnostic>> {
    if bytes.len() > MAX_SPEC_BYTES {
        return Err(Box::new(
            Diagnostic::error(
                "file-too-large",
                format!(
                    "the file is {:.1} MB; a lab spec is a few kilobytes and at most {} MB",
                    bytes.len() as f64 / 1_000_000.0,
                    MAX_SPEC_BYTES / (1024 * 1024)
                ),
            )
            .at(Span::point(0))
            .help("check that this is the right file (`homelab init` writes a commented example)"),
        ));
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let at = e.valid_up_to();
            return Err(Box::new(Diagnostic::error(
                "not-utf8",
                format!(
                    "the file is not UTF-8 text (byte 0x{:02x} at offset {at}); is it a binary file?",
                    bytes[at]
                ),
            )
            .at(Span::point(at))
            .help("a spec is a YAML text file; save it as UTF-8")));
        }
    };
    if let Some((i, c)) = text
        .char_indices()
        .find(|&(_, c)| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err(Box::new(Diagnostic::error(
            "control-character",
            format!(
                "the file contains the control character U+{:04X}; is it a binary file?",
                c as u32
            ),
        )
        .at(Span::new(i, i + c.len_utf8()))
        .help(
            "a spec is plain YAML text; remove the character or check that this is the right file",
        )));
    }
    Ok(text)
}

/// Parses one YAML document. On failure returns every problem it could find.
pub fn parse(text: &str) -> Result<Node, Vec<Diagnostic>> {
    let offsets = Offsets::new(text);
    let text_body = text.trim_start_matches('\u{feff}');
    if text_body.trim().is_empty()
        || text_body
            .lines()
            .all(|l| l.trim_start().starts_with('#') || l.trim().is_empty())
    {
        return Err(vec![
            Diagnostic::error("empty-file", "the file has no content")
                .at(Span::point(0))
                .help("run `homelab init` to write a commented spec for the example lab, then edit it"),
        ]);
    }
    let mut builder = Builder {
        stack: Vec::new(),
        anchors: Vec::new(),
        root: None,
        documents: 0,
        nodes: 0,
        diags: Vec::new(),
    };
    for event in Parser::new_from_str(text) {
        match event {
            Ok((event, span)) => {
                let span = Span::new(
                    offsets.byte(span.start.index()),
                    offsets.byte(span.end.index()),
                );
                if let Err(d) = builder.event(event, span) {
                    builder.diags.push(*d);
                    return Err(builder.diags);
                }
            }
            Err(e) => {
                let at = offsets.byte(e.marker().index());
                builder.diags.push(scan_error(text, at, e.info()));
                return Err(builder.diags);
            }
        }
    }
    if !builder.diags.is_empty() {
        return Err(builder.diags);
    }
    builder.root.ok_or_else(|| {
        vec![Diagnostic::error("empty-file", "the file has no YAML document").at(Span::point(0))]
    })
}

fn scan_error(text: &str, at: usize, info: &str) -> Diagnostic {
    let line_start = text[..at.min(text.len())].rfind('\n').map_or(0, |i| i + 1);
    let line = &text[line_start..];
    let line = &line[..line.find('\n').unwrap_or(line.len())];
    if info.contains("tab")
        || line.starts_with('\t')
        || line.trim_start_matches(' ').starts_with('\t')
    {
        let tab = line_start + line.find('\t').unwrap_or(0);
        return Diagnostic::error("tab-indentation", "a tab character is used for indentation")
            .at(Span::new(tab, tab + 1))
            .label("tab")
            .help("YAML indentation must use spaces; replace the tab with spaces (2 per level in this file)");
    }
    let help = if info.contains("mapping values are not allowed") {
        "a `:` followed by a space starts a key; quote the value if it contains `: `, or check the indentation of this line"
    } else if info.contains("flow") {
        "a `[` or `{` is not closed; close it or quote the value"
    } else if info.contains("did not find expected key") || info.contains("block") {
        "check the indentation: keys of one mapping start in the same column"
    } else {
        "fix the YAML syntax at this place; quoting the value often helps"
    };
    Diagnostic::error("yaml-syntax", format!("invalid YAML: {info}"))
        .at(Span::new(at, (at + 1).min(text.len())))
        .help(help)
}

enum Frame {
    Seq {
        start: Span,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        start: Span,
        anchor: usize,
        entries: Vec<(Node, Node)>,
        pending_key: Option<Node>,
    },
}

struct Builder {
    stack: Vec<Frame>,
    anchors: Vec<(usize, Node)>,
    root: Option<Node>,
    documents: usize,
    nodes: usize,
    diags: Vec<Diagnostic>,
}

impl Builder {
    fn event(&mut self, event: Event<'_>, span: Span) -> Result<(), Box<Diagnostic>> {
        match event {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(Box::new(Diagnostic::error(
                        "several-documents",
                        "the file holds more than one YAML document",
                    )
                    .at(span)
                    .help("a spec is one document: remove the `---` line and what follows, or merge the documents")));
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                let mut quoted = !matches!(style, ScalarStyle::Plain);
                if let Some(tag) = tag {
                    if tag.is_yaml_core_schema() && tag.suffix == "str" {
                        quoted = true;
                    } else if !tag.is_yaml_core_schema() {
                        return Err(Box::new(
                            Diagnostic::error(
                                "yaml-tag",
                                format!(
                                    "the YAML tag `{}{}` is not supported here",
                                    tag.handle, tag.suffix
                                ),
                            )
                            .at(span)
                            .help("remove the tag; the spec uses plain YAML values"),
                        ));
                    }
                }
                let node = Node {
                    value: Value::Scalar {
                        text: text.into_owned(),
                        quoted,
                    },
                    span,
                };
                self.finish(node, anchor)?;
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Frame::Seq {
                start: span,
                anchor,
                items: Vec::new(),
            }),
            Event::MappingStart(anchor, _) => self.stack.push(Frame::Map {
                start: span,
                anchor,
                entries: Vec::new(),
                pending_key: None,
            }),
            Event::SequenceEnd => {
                if let Some(Frame::Seq {
                    start,
                    anchor,
                    items,
                }) = self.stack.pop()
                {
                    let end = items.last().map_or(span.end, |n| n.span.end.max(start.end));
                    let node = Node {
                        value: Value::Seq(items),
                        span: Span::new(start.start, end),
                    };
                    self.finish(node, anchor)?;
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map {
                    start,
                    anchor,
                    entries,
                    ..
                }) = self.stack.pop()
                {
                    let end = entries
                        .last()
                        .map_or(span.end, |(_, v)| v.span.end.max(start.end));
                    let node = Node {
                        value: Value::Map(entries),
                        span: Span::new(start.start, end),
                    };
                    self.finish(node, anchor)?;
                }
            }
            Event::Alias(id) => {
                let Some((_, target)) = self.anchors.iter().rev().find(|(a, _)| *a == id) else {
                    return Err(Box::new(
                        Diagnostic::error("yaml-alias", "this alias refers to an unknown anchor")
                            .at(span)
                            .help("define the anchor (`&name`) before using it (`*name`)"),
                    ));
                };
                let mut node = target.clone();
                self.nodes += count_nodes(&node);
                if self.nodes > MAX_NODES {
                    return Err(Box::new(
                        Diagnostic::error(
                            "yaml-too-many-nodes",
                            "aliases expand this document to more than two million values",
                        )
                        .at(span)
                        .help(
                            "use fewer nested aliases; a lab spec needs only a few hundred values",
                        ),
                    ));
                }
                node.span = span;
                self.finish(node, 0)?;
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
        }
        Ok(())
    }

    fn finish(&mut self, node: Node, anchor: usize) -> Result<(), Box<Diagnostic>> {
        self.nodes += 1;
        if anchor != 0 {
            self.anchors.push((anchor, node.clone()));
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries,
                pending_key,
                ..
            }) => match pending_key.take() {
                None => {
                    if node.scalar_text().is_none() {
                        self.diags.push(
                            Diagnostic::error(
                                "yaml-complex-key",
                                "a key must be plain text, not a list or mapping",
                            )
                            .at(node.span)
                            .help("write the key as text followed by `:`"),
                        );
                    }
                    *pending_key = Some(node);
                }
                Some(key) => {
                    let name = key.scalar_text().unwrap_or_default();
                    if let Some((first, _)) = entries
                        .iter()
                        .find(|(k, _)| k.scalar_text() == Some(name) && key.scalar_text().is_some())
                    {
                        self.diags.push(
                            Diagnostic::error("duplicate-key", format!("the key `{name}` appears twice in this mapping"))
                                .at(key.span)
                                .label("second definition")
                                .related(first.span, "first defined here")
                                .help("keep one of the two; YAML does not allow a key twice, and silently using one would hide a mistake"),
                        );
                    } else {
                        entries.push((key, node));
                    }
                }
            },
        }
        Ok(())
    }
}

fn count_nodes(node: &Node) -> usize {
    match &node.value {
        Value::Scalar { .. } => 1,
        Value::Seq(items) => 1 + items.iter().map(count_nodes).sum::<usize>(),
        Value::Map(entries) => {
            1 + entries
                .iter()
                .map(|(k, v)| count_nodes(k) + count_nodes(v))
                .sum::<usize>()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_at<'a>(src: &'a str, node: &Node) -> &'a str {
        &src[node.span.start..node.span.end]
    }

    #[test]
    fn spans_point_at_values_in_bytes() {
        let src = "näme: wert\nlist:\n  - a\n  - 'b c'\n";
        let root = parse(src).unwrap();
        let Value::Map(entries) = &root.value else {
            panic!()
        };
        assert_eq!(text_at(src, &entries[0].1), "wert");
        let Value::Seq(items) = &entries[1].1.value else {
            panic!()
        };
        assert_eq!(text_at(src, &items[1]), "'b c'");
        assert_eq!(items[1].resolve(), Some(Resolved::Str("b c")));
    }

    #[test]
    fn duplicate_keys_are_errors_with_both_places() {
        let errs = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].code, "duplicate-key");
        assert_eq!(errs[0].span, Some(Span::new(10, 11)));
        assert_eq!(errs[0].related[0].0, Span::new(0, 1));
    }

    #[test]
    fn core_schema_resolution() {
        assert_eq!(resolve_plain("12"), Resolved::Int(12));
        assert_eq!(resolve_plain("-3"), Resolved::Int(-3));
        assert_eq!(resolve_plain("0x1F"), Resolved::Int(31));
        assert_eq!(resolve_plain("1.5"), Resolved::Float(1.5));
        assert_eq!(resolve_plain("yes"), Resolved::Str("yes"));
        assert_eq!(resolve_plain("~"), Resolved::Null);
        assert_eq!(resolve_plain("1.2.3"), Resolved::Str("1.2.3"));
        assert_eq!(resolve_plain("192.168.2.1"), Resolved::Str("192.168.2.1"));
        assert_eq!(resolve_plain("e5"), Resolved::Str("e5"));
    }

    #[test]
    fn tabs_and_several_documents_are_located() {
        let errs = parse("a:\n\tb: 1\n").unwrap_err();
        assert_eq!(errs[0].code, "tab-indentation");
        assert_eq!(errs[0].span, Some(Span::new(3, 4)));
        let errs = parse("a: 1\n---\nb: 2\n").unwrap_err();
        assert_eq!(errs[0].code, "several-documents");
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut src = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        let mut prev = 'a';
        for c in 'b'..='h' {
            src.push_str(&format!(
                "{c}: &{c} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
            prev = c;
        }
        let errs = parse(&src).unwrap_err();
        assert_eq!(errs[0].code, "yaml-too-many-nodes");
    }
}
