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

/// How many values alias expansion may add, against "billion laughs" documents. A spec that
/// shares a few settings through anchors adds hundreds; this leaves room for thousands of
/// apps sharing settings and stays fast to refuse.
const MAX_ALIAS_NODES: usize = 100_000;

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
                Some(Resolved::Float(f)) => {
                    serde_json::Number::from_f64(f).map_or(J::Null, J::Number)
                }
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
                    "the file is larger than {} MB; a lab spec is a few kilobytes (even thousands of apps stay under 2 MB)",
                    MAX_SPEC_BYTES / (1024 * 1024)
                ),
            )
            .at(Span::point(0))
            .help("check that `-f` names the spec and not a log, an archive or a generated file (`homelab init` writes a commented example)"),
        ));
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let at = e.valid_up_to();
            let d = if looks_binary(bytes) {
                Diagnostic::error(
                    "not-utf8",
                    format!(
                        "this looks like a binary file, not a YAML spec (byte 0x{:02x} at offset {at} is not text)",
                        bytes[at]
                    ),
                )
                .help("check that `-f` names the spec; a spec is a YAML text file")
            } else {
                Diagnostic::error(
                    "not-utf8",
                    format!(
                        "the file is not UTF-8: byte 0x{:02x} at offset {at} is not valid UTF-8",
                        bytes[at]
                    ),
                )
                .label("not UTF-8")
                .help("save the file as UTF-8 (it may have been written as Latin-1 or Windows-1252); a spec is a YAML text file")
            };
            return Err(Box::new(d.at(Span::point(at))));
        }
    };
    if let Some((i, c)) = text
        .char_indices()
        .find(|&(_, c)| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        let binary = looks_binary(bytes);
        let message = if binary {
            format!(
                "this looks like a binary file, not a YAML spec (it contains the control character U+{:04X})",
                c as u32
            )
        } else {
            format!(
                "the file contains the control character U+{:04X}, which YAML does not allow",
                c as u32
            )
        };
        let help = if binary {
            "check that `-f` names the spec; a spec is a YAML text file"
        } else {
            "remove the character (it is shown as a symbol above); it may have come from copying text out of another program"
        };
        return Err(Box::new(
            Diagnostic::error("control-character", message)
                .at(Span::new(i, i + c.len_utf8()))
                .label("control character")
                .help(help),
        ));
    }
    Ok(text)
}

/// Whether bytes look like a binary file rather than text with a stray character or in the
/// wrong encoding: many control bytes near the start.
fn looks_binary(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(1024)];
    let odd = head
        .iter()
        .filter(|&&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r'))
        .count();
    odd >= 8 || odd * 20 > head.len()
}

/// Parses one YAML document. On failure returns every problem it could find.
pub fn parse(text: &str) -> Result<Node, Vec<Diagnostic>> {
    let offsets = Offsets::new(text);
    let text_body = text.trim_start_matches('\u{feff}');
    if text_body.trim().is_empty() {
        return Err(vec![
            Diagnostic::error("empty-file", "the file is empty")
                .at(Span::point(0))
                .help("run `homelab init` to write a commented spec for your lab (it asks for what it needs)"),
        ]);
    }
    if text_body
        .lines()
        .all(|l| l.trim_start().starts_with('#') || l.trim().is_empty())
    {
        return Err(vec![
            Diagnostic::error("empty-file", "the file holds only comments, no settings")
                .at(Span::point(0))
                .help("run `homelab init -f <new file>` to write a commented spec for your lab (it asks for what it needs)"),
        ]);
    }
    let mut builder = Builder {
        stack: Vec::new(),
        anchors: Vec::new(),
        root: None,
        documents: 0,
        alias_nodes: 0,
        diags: Vec::new(),
        stream: None,
    };
    builder.run(text, &offsets)?;
    builder.root.ok_or_else(|| {
        vec![
            Diagnostic::error("empty-file", "the file holds no YAML document")
                .at(Span::point(0))
                .help("run `homelab init -f <new file>` to write a commented spec, then edit it"),
        ]
    })
}

/// Parses a stream of YAML documents (a manifest file with `---` between objects); empty
/// documents are left out. On failure returns every problem it could find.
pub fn parse_stream(text: &str) -> Result<Vec<Node>, Vec<Diagnostic>> {
    let offsets = Offsets::new(text);
    let mut builder = Builder {
        stack: Vec::new(),
        anchors: Vec::new(),
        root: None,
        documents: 0,
        alias_nodes: 0,
        diags: Vec::new(),
        stream: Some(Vec::new()),
    };
    builder.run(text, &offsets)?;
    Ok(builder
        .stream
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n.resolve() != Some(Resolved::Null))
        .collect())
}

impl Builder {
    fn run(&mut self, text: &str, offsets: &Offsets) -> Result<(), Vec<Diagnostic>> {
        let builder = self;
        for event in Parser::new_from_str(text) {
            match event {
                Ok((event, span)) => {
                    let span = Span::new(
                        offsets.byte(span.start.index()),
                        offsets.byte(span.end.index()),
                    );
                    if let Err(d) = builder.event(event, span) {
                        builder.diags.push(*d);
                        return Err(std::mem::take(&mut builder.diags));
                    }
                }
                Err(e) => {
                    let at = offsets.byte(e.marker().index());
                    let open = builder.innermost_flow(text);
                    builder.diags.push(scan_error(text, at, e.info(), open));
                    return Err(std::mem::take(&mut builder.diags));
                }
            }
        }
        if !builder.diags.is_empty() {
            return Err(std::mem::take(&mut builder.diags));
        }
        Ok(())
    }
}

fn scan_error(text: &str, at: usize, info: &str, open: Option<Span>) -> Diagnostic {
    let at = at.min(text.len());
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line = &text[line_start..];
    let line = &line[..line.find('\n').unwrap_or(line.len())];
    let indent = &line[..line.len() - line.trim_start_matches([' ', '\t']).len()];
    let tab = match indent.find('\t') {
        Some(i) => Some(line_start + i),
        None if info.contains("tab") => text[at..]
            .find('\t')
            .map(|i| at + i)
            .or_else(|| text[line_start..at].rfind('\t').map(|i| line_start + i)),
        None => None,
    };
    if let Some(tab) = tab {
        let tab_line_start = text[..tab].rfind('\n').map_or(0, |i| i + 1);
        let span = Span::new(tab, tab + 1);
        if text[tab_line_start..tab]
            .trim_start_matches([' ', '\t'])
            .is_empty()
        {
            return Diagnostic::error("tab-indentation", "a tab character is used for indentation")
                .at(span)
                .label("tab (shown as ␉)")
                .help("YAML indentation must use spaces: replace the tab with spaces, lined up with the keys above it");
        }
        return Diagnostic::error(
            "tab-character",
            "a tab character where YAML does not allow one",
        )
        .at(span)
        .label("tab (shown as ␉)")
        .help("replace the tab with spaces, or quote the value if the tab belongs in it");
    }
    let point = Span::new(at, at + text[at..].chars().next().map_or(0, char::len_utf8));
    if info.contains("recursion limit") {
        return Diagnostic::error(
            "yaml-too-deep",
            "lists and mappings are nested too deeply here (more than a few hundred levels)",
        )
        .at(point)
        .help("a lab spec nests only a few levels; check for brackets that are opened but never closed");
    }
    if info.contains("flow") {
        let d = Diagnostic::error("yaml-syntax", format!("invalid YAML: {info}"))
            .at(point)
            .help("a `[` or `{` is not closed where YAML expects it: close it, or quote the value if the bracket belongs in it");
        return match open {
            Some(open) => d
                .label("expected `,` or a closing bracket before this")
                .related(open, "opened here"),
            None => d,
        };
    }
    if info.contains("mapping values are not allowed") {
        if let Some(d) = deeper_than_above(text, line_start, line, point) {
            return d;
        }
        return Diagnostic::error("yaml-syntax", format!("invalid YAML: {info}"))
            .at(point)
            .label("unexpected `:`")
            .help("a `: ` starts a new key, which is not allowed here: quote the value if it contains `: `, or check the indentation of this line");
    }
    if info.contains("trailing content after") {
        return Diagnostic::error(
            "yaml-syntax",
            "invalid YAML: more text follows the closing quote of a value",
        )
        .at(point)
        .label("text after the closing quote")
        .help("quote the whole value; inside single quotes write a quote twice (`'it''s'`), or use double quotes (`\"it's\"`)");
    }
    if info.contains("document start") || info.contains("document end") {
        return Diagnostic::error("yaml-syntax", "invalid YAML: more text follows a complete document")
            .at(point)
            .label("YAML expected nothing more here")
            .help("YAML read a complete value before this line and does not expect more; is this a YAML file? A spec is a mapping such as `name: home-lab` (run `homelab init` for an example)");
    }
    let help = if info.contains("quoted scalar") {
        "a quoted value is not closed: add the closing quote"
    } else if info.contains("'-' indicator") {
        "check the indentation: the items of one list start with `-` in the same column"
    } else if info.contains("did not find expected key")
        || info.contains("block")
        || info.contains("indentation")
    {
        "check the indentation: the keys of one mapping start in the same column"
    } else if info.contains("anchor") || info.contains("alias") {
        "define an anchor (`&name`) once, before any alias (`*name`) that uses it"
    } else {
        "fix the YAML syntax at this place; quoting the value often helps"
    };
    Diagnostic::error("yaml-syntax", format!("invalid YAML: {info}"))
        .at(point)
        .help(help)
}

/// Recognises the most common indentation slip: a key indented deeper than the `key: value`
/// line above it, which YAML reads as a continuation of that value.
fn deeper_than_above(text: &str, line_start: usize, line: &str, point: Span) -> Option<Diagnostic> {
    let indent_of = |l: &str| l.len() - l.trim_start_matches(' ').len();
    let above = text[..line_start]
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))?;
    let (key_above, value_above) = above
        .trim_start()
        .trim_start_matches("- ")
        .split_once(':')?;
    let value_above = value_above.trim();
    let (key, _) = line.trim_start().split_once(':')?;
    if indent_of(line) <= indent_of(above)
        || value_above.is_empty()
        || value_above.starts_with(['|', '>', '#'])
    {
        return None;
    }
    let start = line_start + indent_of(line);
    Some(
        Diagnostic::error(
            "yaml-indentation",
            format!(
                "`{}` is indented deeper than `{}` above it, so YAML reads it as part of that value",
                key.trim(),
                key_above.trim()
            ),
        )
        .at(Span::new(start, start + key.len().max(1)))
        .related(point, "here the `:` is then unexpected")
        .help(format!(
            "indent `{}` with {} spaces like `{}` if both belong to the same mapping",
            key.trim(),
            indent_of(above) + if above.trim_start().starts_with("- ") { 2 } else { 0 },
            key_above.trim()
        )),
    )
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
    /// Values added by expanding aliases so far.
    alias_nodes: usize,
    diags: Vec<Diagnostic>,
    /// The documents so far when reading a stream of them (`None`: exactly one document).
    stream: Option<Vec<Node>>,
}

impl Builder {
    /// Where the innermost `[` or `{` that is still open begins, for "not closed" errors.
    fn innermost_flow(&self, text: &str) -> Option<Span> {
        self.stack.iter().rev().find_map(|frame| {
            let start = match frame {
                Frame::Seq { start, .. } | Frame::Map { start, .. } => *start,
            };
            text[start.start.min(text.len())..]
                .starts_with(['[', '{'])
                .then(|| Span::new(start.start, start.start + 1))
        })
    }

    fn event(&mut self, event: Event<'_>, span: Span) -> Result<(), Box<Diagnostic>> {
        match event {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 && self.stream.is_none() {
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
                            .help("remove the tag: the spec uses plain YAML values, and a secret is referenced as `{secret: NAME}` and stored with `homelab secrets set NAME`"),
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
                self.alias_nodes += count_nodes(target);
                if self.alias_nodes > MAX_ALIAS_NODES {
                    return Err(Box::new(
                        Diagnostic::error(
                            "yaml-too-many-nodes",
                            "aliases expand this document to more than 100,000 values",
                        )
                        .at(span)
                        .label("expanding this alias passes the limit")
                        .help(
                            "write the values out or use fewer nested aliases; a lab spec needs a few hundred values \
                             (a document like this one, a \"billion laughs\", is how YAML readers are attacked)",
                        ),
                    ));
                }
                let mut node = target.clone();
                node.span = span;
                self.finish(node, 0)?;
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
        }
        Ok(())
    }

    fn finish(&mut self, node: Node, anchor: usize) -> Result<(), Box<Diagnostic>> {
        if anchor != 0 {
            self.anchors.push((anchor, node.clone()));
        }
        match self.stack.last_mut() {
            None => match &mut self.stream {
                Some(documents) => {
                    // Anchors do not reach across documents.
                    self.anchors.clear();
                    documents.push(node);
                }
                None => self.root = Some(node),
            },
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
