//! Located diagnostics (file:line:col, the source line, a `help:` line) and their text and JSON
//! renderings; this module formats, it never reads files or prints.

use std::fmt::Write as _;

use serde::Serialize;

/// A byte range in a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span {
            start,
            end: end.max(start),
        }
    }

    /// An empty span at one position.
    pub fn point(at: usize) -> Self {
        Span { start: at, end: at }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem found in a spec, with where it is and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// A stable identifier, e.g. `node-address-outside-subnet`, for scripts and docs.
    pub code: &'static str,
    pub message: String,
    pub span: Option<Span>,
    /// A short text shown under the marked source.
    pub label: Option<String>,
    pub help: Option<String>,
    /// Other places that explain the problem (e.g. the first of two duplicates).
    pub related: Vec<(Span, String)>,
    /// A part of the source to show as `*` in every snippet: it may be a secret written where
    /// a reference belongs, and diagnostics must never repeat a secret.
    pub conceal: Option<Span>,
    /// A replacement for the marked text that fixes the problem (e.g. the key a typo meant).
    pub suggestion: Option<String>,
    /// The whole mapping a "missing key" diagnostic is about.
    pub scope: Option<Span>,
}

impl Diagnostic {
    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            span: None,
            label: None,
            help: None,
            related: Vec::new(),
            conceal: None,
            suggestion: None,
            scope: None,
        }
    }

    pub fn warning(code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, message)
        }
    }

    pub fn at(mut self, span: Span) -> Self {
        self.span = Some(span);
        self
    }

    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn related(mut self, span: Span, text: impl Into<String>) -> Self {
        self.related.push((span, text.into()));
        self
    }

    pub fn conceal(mut self, span: Span) -> Self {
        self.conceal = Some(span);
        self
    }

    pub fn suggest(mut self, replacement: impl Into<String>) -> Self {
        self.suggestion = Some(replacement.into());
        self
    }

    pub fn scope(mut self, span: Span) -> Self {
        self.scope = Some(span);
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// A source file held in memory with its line starts, to turn byte offsets into positions.
#[derive(Debug, Clone)]
pub struct SourceFile {
    name: String,
    text: String,
    line_starts: Vec<usize>,
}

/// A 1-based line and column (the column counts characters, as editors do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl SourceFile {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        let text = text.into();
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        SourceFile {
            name: name.into(),
            text,
            line_starts,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn position(&self, offset: usize) -> Position {
        let offset = self.clamp(offset);
        let line = self.line_starts.partition_point(|&s| s <= offset) - 1;
        let column = self.text[self.line_starts[line]..offset].chars().count() + 1;
        Position {
            line: line + 1,
            column,
        }
    }

    /// The text of a 1-based line without its line break.
    pub fn line_text(&self, line: usize) -> &str {
        let start = self.line_starts[line - 1];
        let end = self
            .line_starts
            .get(line)
            .map_or(self.text.len(), |&next| next);
        self.text[start..end].trim_end_matches(['\n', '\r'])
    }

    fn clamp(&self, offset: usize) -> usize {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        offset
    }

    /// Renders diagnostics the way compilers do: header, location, source line, marker, help.
    pub fn render(&self, diagnostics: &[Diagnostic]) -> String {
        let mut out = String::new();
        for (i, d) in diagnostics.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            self.render_one(d, &mut out);
        }
        out
    }

    fn render_one(&self, d: &Diagnostic, out: &mut String) {
        let kind = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let _ = writeln!(out, "{kind}[{}]: {}", d.code, d.message);
        let Some(span) = d.span else {
            let _ = writeln!(out, "  --> {}", self.name);
            if let Some(help) = &d.help {
                let _ = writeln!(out, "  = help: {help}");
            }
            return;
        };
        let start = self.position(span.start);
        let gutter = digits(
            d.related
                .iter()
                .map(|(s, _)| self.position(s.start).line)
                .chain([start.line])
                .max()
                .unwrap_or(1),
        );
        let pad = " ".repeat(gutter);
        let _ = writeln!(
            out,
            "{pad}--> {}:{}:{}",
            self.name, start.line, start.column
        );
        let _ = writeln!(out, "{pad} |");
        self.snippet(span, d.label.as_deref(), d.conceal, gutter, out);
        for (rspan, text) in &d.related {
            let rpos = self.position(rspan.start);
            let _ = writeln!(out, "{pad} ::: {}:{}:{}", self.name, rpos.line, rpos.column);
            self.snippet(*rspan, Some(text), d.conceal, gutter, out);
        }
        if let Some(help) = &d.help {
            let _ = writeln!(out, "{pad} = help: {help}");
        }
    }

    fn snippet(
        &self,
        span: Span,
        label: Option<&str>,
        conceal: Option<Span>,
        gutter: usize,
        out: &mut String,
    ) {
        let start = self.position(span.start);
        let line_start = self.line_starts[start.line - 1];
        let end = self.position(span.end);
        let line = self.line_text(start.line);
        let line_chars = line.chars().count();
        let from = start.column - 1;
        let to = if end.line == start.line {
            (end.column - 1).max(from + 1)
        } else {
            line_chars.max(from + 1)
        };
        let shown: String = match conceal {
            Some(hide) => line
                .char_indices()
                .map(|(i, c)| {
                    let at = line_start + i;
                    if at >= hide.start && at < hide.end.max(hide.start + 1) {
                        '*'
                    } else {
                        c
                    }
                })
                .collect(),
            None => line.to_string(),
        };
        let shown = shown.replace('\t', " ");
        let _ = writeln!(out, "{:>gutter$} | {}", start.line, shown);
        let marker = format!(
            "{}{}",
            " ".repeat(from),
            "^".repeat(to.saturating_sub(from).max(1))
        );
        match label {
            Some(l) => {
                let _ = writeln!(out, "{} | {marker} {l}", " ".repeat(gutter));
            }
            None => {
                let _ = writeln!(out, "{} | {marker}", " ".repeat(gutter));
            }
        }
    }

    /// The diagnostics as data, for `--output json`.
    pub fn to_json(&self, diagnostics: &[Diagnostic]) -> Vec<DiagnosticJson> {
        diagnostics
            .iter()
            .map(|d| {
                let (start, end) = match d.span {
                    Some(s) => (Some(self.position(s.start)), Some(self.position(s.end))),
                    None => (None, None),
                };
                DiagnosticJson {
                    severity: d.severity,
                    code: d.code,
                    message: d.message.clone(),
                    file: self.name.clone(),
                    line: start.map(|p| p.line),
                    column: start.map(|p| p.column),
                    end_line: end.map(|p| p.line),
                    end_column: end.map(|p| p.column),
                    label: d.label.clone(),
                    help: d.help.clone(),
                    suggestion: d.suggestion.clone(),
                }
            })
            .collect()
    }
}

/// One diagnostic as data.
#[derive(Debug, Clone, Serialize)]
pub struct DiagnosticJson {
    pub severity: Severity,
    pub code: &'static str,
    pub message: String,
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub end_line: Option<usize>,
    pub end_column: Option<usize>,
    pub label: Option<String>,
    pub help: Option<String>,
    pub suggestion: Option<String>,
}

fn digits(n: usize) -> usize {
    n.to_string().len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_characters_not_bytes() {
        let src = SourceFile::new("f.yaml", "a: 1\nnäme: x\n");
        let x = src.text().find('x').unwrap();
        assert_eq!(src.position(x), Position { line: 2, column: 7 });
        assert_eq!(src.line_text(2), "näme: x");
    }

    #[test]
    fn renders_location_source_marker_and_help() {
        let src = SourceFile::new("lab.yaml", "nodes:\n  - address: 10.0.0.300\n");
        let start = src.text().find("10.").unwrap();
        let d = Diagnostic::error("bad-address", "`10.0.0.300` is not an IPv4 address")
            .at(Span::new(start, start + 10))
            .label("not an address")
            .help("write four numbers 0-255 separated by dots");
        assert_eq!(
            src.render(&[d]),
            "error[bad-address]: `10.0.0.300` is not an IPv4 address\n \
             --> lab.yaml:2:14\n  |\n2 |   - address: 10.0.0.300\n  |              ^^^^^^^^^^ not an address\n  \
             = help: write four numbers 0-255 separated by dots\n"
        );
    }

    #[test]
    fn concealed_source_hides_the_marked_text() {
        let src = SourceFile::new("lab.yaml", "password: hunter2\n");
        let d = Diagnostic::error("plain-secret", "a secret value is written in the spec")
            .at(Span::new(10, 17))
            .conceal(Span::new(10, 17));
        let out = src.render(&[d]);
        assert!(!out.contains("hunter2"), "{out}");
        assert!(out.contains("password: *******"), "{out}");
    }
}
