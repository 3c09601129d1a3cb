//! Writes `Value` trees as block-style YAML laid out as go-yaml v3 lays it out (sops's writer:
//! its indentation rule, quoting choices and block scalars); pure, and it must never write a
//! scalar that reads back as a different value or type.

use base64::Engine as _;

use super::resolve::{go_float_g, is_base60_float, is_old_bool, resolve_plain};
use super::{Mapping, Value};

/// Writes a stream of documents, separated by `---` as go-yaml v3's encoder does.
pub fn emit_documents(docs: &[Value], indent: usize) -> String {
    let mut e = Emitter {
        out: String::new(),
        best: indent.max(2),
    };
    for (i, doc) in docs.iter().enumerate() {
        if i > 0 {
            e.out.push_str("---\n");
        }
        e.document(doc);
    }
    e.out
}

/// Writes one document.
pub fn emit_document(doc: &Value, indent: usize) -> String {
    emit_documents(std::slice::from_ref(doc), indent)
}

struct Emitter {
    out: String,
    best: usize,
}

impl Emitter {
    fn document(&mut self, doc: &Value) {
        match doc {
            Value::Map(m) if !m.is_empty() => self.block_map(m, 0, false),
            Value::Map(m) if !m.comments().is_empty() => {
                self.block_map(m, 0, false);
                self.out.push_str("{}\n");
            }
            Value::Seq(s) if !s.is_empty() => self.block_seq(s, 0, false),
            other => {
                self.scalar(other, self.best, false);
                self.out.push('\n');
            }
        }
    }

    /// go-yaml v3 aligns nested blocks to the next multiple of the indent width.
    fn nested(&self, col: usize) -> usize {
        self.best * ((col + self.best) / self.best)
    }

    fn pad(&mut self, col: usize) {
        self.out.extend(std::iter::repeat_n(' ', col));
    }

    fn comment(&mut self, text: &str, col: usize) {
        self.pad(col);
        self.out.push('#');
        self.out.push_str(text);
        self.out.push('\n');
    }

    /// The comments of `m` before entry `index`.
    fn map_comments(&mut self, m: &Mapping, index: usize, col: usize) {
        for (_, text) in m.comments().iter().filter(|(at, _)| *at == index) {
            self.comment(text, col);
        }
    }

    /// Writes the comments a collection starts with, before the `- ` of the list item that
    /// holds it (after `- ` they would turn the item into a null); returns how many.
    fn leading_comments(&mut self, item: &Value, col: usize) -> usize {
        match item {
            Value::Map(m) if !m.is_empty() => {
                self.map_comments(m, 0, col);
                0
            }
            Value::Seq(items) => {
                let n = items
                    .iter()
                    .take_while(|i| matches!(i, Value::Comment(_)))
                    .count();
                if n == items.len() {
                    return 0;
                }
                for i in &items[..n] {
                    if let Value::Comment(text) = i {
                        self.comment(text, col);
                    }
                }
                n
            }
            _ => 0,
        }
    }

    fn block_map(&mut self, m: &Mapping, col: usize, first_inline: bool) {
        for (i, (key, value)) in m.iter().enumerate() {
            if !(i == 0 && first_inline) {
                self.map_comments(m, i, col);
                self.pad(col);
            }
            if key == "<<" {
                // go-yaml v3 writes a merge key with its tag, as sops prints it.
                self.out.push_str("!!merge <<");
            } else {
                self.string(key, col, true);
            }
            self.out.push(':');
            match value {
                Value::Map(inner) if !inner.is_empty() => {
                    self.out.push('\n');
                    let next = self.nested(col);
                    self.block_map(inner, next, false);
                }
                Value::Seq(items) if !items.is_empty() => {
                    self.out.push('\n');
                    let next = self.nested(col);
                    self.block_seq(items, next, false);
                }
                scalar => {
                    self.out.push(' ');
                    let next = self.nested(col);
                    self.scalar(scalar, next, true);
                    self.out.push('\n');
                }
            }
        }
        self.map_comments(m, m.len(), col);
    }

    fn block_seq(&mut self, items: &[Value], col: usize, first_inline: bool) {
        let mut pending_dash = first_inline;
        for item in items {
            if let Value::Comment(text) = item {
                if pending_dash {
                    // Only reached for a list of comments alone, which `leading_comments` leaves.
                    self.out.push_str("[]\n");
                    pending_dash = false;
                }
                self.comment(text, col);
                continue;
            }
            let skip = if pending_dash {
                0
            } else {
                let n = self.leading_comments(item, col);
                self.pad(col);
                n
            };
            pending_dash = false;
            self.out.push_str("- ");
            match item {
                Value::Map(inner) if !inner.is_empty() => self.block_map(inner, col + 2, true),
                Value::Seq(inner) if inner.len() > skip => {
                    self.block_seq(&inner[skip..], col + 2, true)
                }
                scalar => {
                    self.scalar(scalar, col + 2, true);
                    self.out.push('\n');
                }
            }
        }
    }

    /// Writes a scalar (or an empty collection) without the final line break.
    /// `block_indent` is where a block scalar's lines go.
    fn scalar(&mut self, v: &Value, block_indent: usize, block_ok: bool) {
        match v {
            Value::Null => self.out.push_str("null"),
            Value::Bool(b) => self.out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => self.out.push_str(&i.to_string()),
            Value::Float(f) => self.out.push_str(&go_float_g(*f)),
            Value::Timestamp(t) => {
                if matches!(resolve_plain(t), Value::Timestamp(_)) && analyze(t).plain {
                    self.out.push_str(t);
                } else {
                    self.out.push_str("!!timestamp ");
                    write_double_quoted(&mut self.out, t);
                }
            }
            Value::Bytes(b) => {
                self.out.push_str("!!binary ");
                self.out
                    .push_str(&base64::engine::general_purpose::STANDARD.encode(b));
            }
            Value::Str(s) | Value::Comment(s) => self.string(s, block_indent, !block_ok),
            Value::Seq(_) => self.out.push_str("[]"),
            Value::Map(_) => self.out.push_str("{}"),
        }
    }

    fn string(&mut self, s: &str, block_indent: usize, single_line: bool) {
        match choose_style(s, single_line) {
            Style::Plain => self.out.push_str(s),
            Style::SingleQuoted => {
                self.out.push('\'');
                self.out.push_str(&s.replace('\'', "''"));
                self.out.push('\'');
            }
            Style::DoubleQuoted => write_double_quoted(&mut self.out, s),
            Style::Literal => self.literal(s, block_indent),
        }
    }

    fn literal(&mut self, s: &str, indent: usize) {
        let body = s.trim_end_matches('\n');
        let trailing_breaks = s.len() - body.len();
        self.out.push('|');
        match trailing_breaks {
            0 => self.out.push('-'),
            1 => {}
            _ => self.out.push('+'),
        }
        for line in body.split('\n') {
            self.out.push('\n');
            if !line.is_empty() {
                self.pad(indent);
                self.out.push_str(line);
            }
        }
        for _ in 1..trailing_breaks {
            self.out.push('\n');
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Plain,
    SingleQuoted,
    DoubleQuoted,
    Literal,
}

fn choose_style(s: &str, single_line: bool) -> Style {
    let a = analyze(s);
    if s.contains('\n') {
        return if !single_line && a.literal {
            Style::Literal
        } else {
            Style::DoubleQuoted
        };
    }
    // go-yaml v3 double-quotes any string a plain scalar would read back as another type.
    let retyped = !matches!(resolve_plain(s), Value::Str(_))
        || is_old_bool(s)
        || is_base60_float(s)
        || s == "<<";
    if retyped {
        Style::DoubleQuoted
    } else if a.plain {
        Style::Plain
    } else if a.single_quoted {
        Style::SingleQuoted
    } else {
        Style::DoubleQuoted
    }
}

struct Analysis {
    plain: bool,
    single_quoted: bool,
    literal: bool,
}

/// libyaml's `yaml_emitter_analyze_scalar`, for block context.
fn analyze(s: &str) -> Analysis {
    let chars: Vec<char> = s.chars().collect();
    if chars.is_empty() {
        return Analysis {
            plain: false,
            single_quoted: true,
            literal: false,
        };
    }
    let mut block_indicators = s.starts_with("---") || s.starts_with("...");
    let mut special = false;
    let mut line_breaks = false;
    let mut tabs = false;
    let (mut leading_space, mut leading_break) = (false, false);
    let (mut trailing_space, mut trailing_break) = (false, false);
    let (mut break_space, mut space_break) = (false, false);
    let (mut previous_space, mut previous_break) = (false, false);
    let mut preceded_by_whitespace = true;
    let last = chars.len() - 1;
    for (i, &c) in chars.iter().enumerate() {
        let followed_by_whitespace = chars.get(i + 1).is_none_or(|n| is_blank_or_break(*n));
        if i == 0 {
            match c {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"'
                | '%' | '@' | '`' => block_indicators = true,
                '?' | ':' | '-' if followed_by_whitespace => block_indicators = true,
                _ => {}
            }
        } else {
            match c {
                ':' if followed_by_whitespace => block_indicators = true,
                '#' if preceded_by_whitespace => block_indicators = true,
                _ => {}
            }
        }
        if c == '\t' {
            tabs = true;
        }
        if !is_printable(c) {
            special = true;
        }
        if c == '\n' {
            line_breaks = true;
        }
        if c == ' ' {
            if i == 0 {
                leading_space = true;
            }
            if i == last {
                trailing_space = true;
            }
            if previous_break {
                break_space = true;
            }
            previous_space = true;
            previous_break = false;
        } else if c == '\n' {
            if i == 0 {
                leading_break = true;
            }
            if i == last {
                trailing_break = true;
            }
            if previous_space {
                space_break = true;
            }
            previous_space = false;
            previous_break = true;
        } else {
            previous_space = false;
            previous_break = false;
        }
        preceded_by_whitespace = is_blank_or_break(c);
    }
    let mut plain = true;
    let mut single_quoted = !line_breaks;
    let mut literal = true;
    if leading_space || leading_break || trailing_space || trailing_break {
        plain = false;
    }
    if trailing_space || leading_space || leading_break {
        // A block scalar would need an indentation indicator; quoting is simpler and exact.
        literal = false;
    }
    if break_space {
        plain = false;
        single_quoted = false;
    }
    if space_break || tabs || special {
        plain = false;
        single_quoted = false;
    }
    if space_break || special {
        literal = false;
    }
    if line_breaks || block_indicators {
        plain = false;
    }
    Analysis {
        plain,
        single_quoted,
        literal,
    }
}

fn is_blank_or_break(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// go-yaml v3's printable set: what may appear unescaped. Characters outside the Basic
/// Multilingual Plane and the Unicode line separators are escaped.
fn is_printable(c: char) -> bool {
    matches!(c,
        '\n' | ' '..='~' | '\u{A0}'..='\u{2027}' | '\u{202A}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}')
        && c != '\u{FEFF}'
}

fn write_double_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '\0' => out.push_str("\\0"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{b}' => out.push_str("\\v"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            '\u{1b}' => out.push_str("\\e"),
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{85}' => out.push_str("\\N"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c if is_printable(c) => out.push(c),
            c if (c as u32) <= 0xFF => out.push_str(&format!("\\x{:02X}", c as u32)),
            c if (c as u32) <= 0xFFFF => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push_str(&format!("\\U{:08X}", c as u32)),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::super::parse_documents;
    use super::*;

    fn map(entries: &[(&str, Value)]) -> Value {
        Value::Map(
            entries
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        )
    }

    fn s(text: &str) -> Value {
        Value::Str(text.to_owned())
    }

    #[test]
    fn lays_out_like_sops_writes_metadata() {
        let doc = map(&[
            ("hello", s("ENC[AES256_GCM,data:x,iv:y,tag:z,type:str]")),
            (
                "sops",
                map(&[
                    (
                        "age",
                        Value::Seq(vec![map(&[
                            ("recipient", s("age1abc")),
                            (
                                "enc",
                                s(
                                    "-----BEGIN AGE ENCRYPTED FILE-----\nYWJj\n-----END AGE ENCRYPTED FILE-----\n",
                                ),
                            ),
                        ])]),
                    ),
                    ("lastmodified", s("2024-11-12T13:33:42Z")),
                    ("unencrypted_suffix", s("_unencrypted")),
                    ("version", s("3.10.2")),
                ]),
            ),
        ]);
        let expected = "hello: ENC[AES256_GCM,data:x,iv:y,tag:z,type:str]
sops:
    age:
        - recipient: age1abc
          enc: |
            -----BEGIN AGE ENCRYPTED FILE-----
            YWJj
            -----END AGE ENCRYPTED FILE-----
    lastmodified: \"2024-11-12T13:33:42Z\"
    unencrypted_suffix: _unencrypted
    version: 3.10.2
";
        assert_eq!(emit_document(&doc, 4), expected);
        let expected2 = "hello: ENC[AES256_GCM,data:x,iv:y,tag:z,type:str]
sops:
  age:
    - recipient: age1abc
      enc: |
        -----BEGIN AGE ENCRYPTED FILE-----
        YWJj
        -----END AGE ENCRYPTED FILE-----
  lastmodified: \"2024-11-12T13:33:42Z\"
  unencrypted_suffix: _unencrypted
  version: 3.10.2
";
        assert_eq!(emit_document(&doc, 2), expected2);
    }

    #[test]
    fn quotes_strings_that_would_change_type_or_syntax() {
        let cases = [
            ("plain", "plain"),
            ("123", "\"123\""),
            ("true", "\"true\""),
            ("yes", "\"yes\""),
            ("", "\"\""),
            ("~", "\"~\""),
            ("1:20", "\"1:20\""),
            ("a: b", "'a: b'"),
            ("it's: x", "'it''s: x'"),
            ("#hash", "'#hash'"),
            ("x #y", "'x #y'"),
            (" lead", "' lead'"),
            ("tab\there", "\"tab\\there\""),
            ("- item", "'- item'"),
            ("-item", "-item"),
            ("@at", "'@at'"),
            ("p@ss:w0rd", "p@ss:w0rd"),
            ("emoji 😀", "\"emoji \\U0001F600\""),
            ("2024-01-01", "\"2024-01-01\""),
        ];
        for (input, want) in cases {
            let out = emit_document(&map(&[("k", s(input))]), 4);
            assert_eq!(out, format!("k: {want}\n"), "for {input:?}");
        }
    }

    #[test]
    fn multi_line_strings_use_literal_blocks_with_chomping() {
        let doc = map(&[
            ("clip", s("a\nb\n")),
            ("strip", s("a\nb")),
            ("keep", s("a\n\n")),
            ("spaces", s("a \nb")),
        ]);
        let out = emit_document(&doc, 4);
        assert_eq!(
            out,
            "clip: |\n    a\n    b\nstrip: |-\n    a\n    b\nkeep: |+\n    a\n\nspaces: \"a \\nb\"\n"
        );
        assert_eq!(parse_documents(&out).unwrap(), vec![doc]);
    }

    #[test]
    fn typed_scalars_and_empty_collections_round_trip() {
        let doc = map(&[
            ("i", Value::Int(-42)),
            ("f", Value::Float(1.0)),
            ("big", Value::Float(1.5e300)),
            ("b", Value::Bool(false)),
            ("n", Value::Null),
            ("t", Value::Timestamp("2023-12-25T10:31:01Z".into())),
            ("bin", Value::Bytes(vec![0, 159, 146, 150])),
            ("empty_map", Value::Map(Mapping::new())),
            ("empty_seq", Value::Seq(vec![])),
            (
                "nested",
                Value::Seq(vec![
                    Value::Seq(vec![s("a"), s("b")]),
                    map(&[("x", map(&[("y", s("z"))]))]),
                    s("multi\nline\n"),
                ]),
            ),
            ("needs key quote: yes", s("v")),
            ("", s("empty key")),
        ]);
        let out = emit_document(&doc, 4);
        assert_eq!(parse_documents(&out).unwrap(), vec![doc], "{out}");
    }
}
