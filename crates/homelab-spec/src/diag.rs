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
    /// Parts of the text that may be secrets; every snippet shows them as `*****`.
    concealed: Vec<Span>,
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
            concealed: Vec::new(),
        }
    }

    /// Hides these parts of the text in every snippet rendered from now on, whichever
    /// diagnostic shows their line.
    pub fn conceal(&mut self, spans: impl IntoIterator<Item = Span>) {
        self.concealed.extend(spans);
        self.concealed.sort();
        self.concealed.dedup();
    }

    /// The parts of the text that snippets hide.
    pub fn concealed(&self) -> &[Span] {
        &self.concealed
    }

    /// Removes the concealed parts of the text from a diagnostic's own words too (a message
    /// may quote a value that turns out to sit under a secret-looking key).
    pub fn scrub(&self, d: &mut Diagnostic) {
        let mut secrets: Vec<&str> = self
            .concealed
            .iter()
            .filter_map(|s| self.text.get(s.start..s.end))
            .flat_map(str::lines)
            .map(|t| t.trim().trim_matches(['"', '\'']))
            .filter(|t| t.chars().count() >= 4)
            .collect();
        if secrets.is_empty() {
            return;
        }
        // Longest first, so that a secret containing another is replaced whole.
        secrets.sort_by_key(|t| std::cmp::Reverse(t.len()));
        let clean = |text: &mut String| {
            for secret in &secrets {
                if text.contains(secret) {
                    *text = text.replace(secret, CONCEALED);
                }
            }
        };
        clean(&mut d.message);
        for text in [&mut d.label, &mut d.help, &mut d.suggestion]
            .into_iter()
            .flatten()
        {
            clean(text);
        }
        for (_, text) in &mut d.related {
            clean(text);
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
        let _ = writeln!(out, "{kind}[{}]: {}", d.code, one_line(&d.message));
        let Some(span) = d.span else {
            let _ = writeln!(out, "  --> {}", self.name);
            if let Some(help) = &d.help {
                let _ = writeln!(out, "  = help: {}", one_line(help));
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
            let _ = writeln!(out, "{pad} = help: {}", one_line(help));
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
        let line = self.line_text(start.line);
        let from = self.clamp(span.start).max(line_start) - line_start;
        let to = (self.clamp(span.end).max(line_start) - line_start).min(line.len());
        let hidden = |at: usize| {
            let hit = |s: &Span| at >= s.start && at < s.end.max(s.start + 1);
            conceal.as_ref().is_some_and(hit) || self.concealed.iter().any(hit)
        };
        // A huge line (a minified or binary file) is cut to the bytes around the marker
        // before it is measured.
        let (cut_start, cut_end) = if line.len() > 16 * MAX_SNIPPET_CHARS {
            (
                floor_boundary(line, from.saturating_sub(4 * MAX_SNIPPET_CHARS)),
                floor_boundary(line, (from + 16 * MAX_SNIPPET_CHARS).min(line.len())),
            )
        } else {
            (0, line.len())
        };
        let shown = DisplayLine::new(&line[cut_start..cut_end], line_start + cut_start, &hidden);
        let (text, mark_from, mark_to) = shown.window(
            from - cut_start,
            to.clamp(from, cut_end) - cut_start,
            cut_start > 0,
            cut_end < line.len(),
        );
        let _ = writeln!(out, "{:>gutter$} | {}", start.line, text);
        let marker = format!(
            "{}{}",
            " ".repeat(mark_from),
            "^".repeat(mark_to.saturating_sub(mark_from).max(1))
        );
        match label {
            Some(l) => {
                let _ = writeln!(out, "{} | {marker} {}", " ".repeat(gutter), one_line(l));
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
#[serde(rename_all = "camelCase")]
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

/// How wide a snippet line may be before it is cut around the marked part.
const MAX_SNIPPET_CHARS: usize = 100;

/// What a concealed part of a line looks like: the same for every secret, so not even its
/// length shows.
const CONCEALED: &str = "*****";

/// A source line as a snippet shows it: secrets concealed, tabs and control characters made
/// visible, with the display column of every byte offset so that markers line up.
struct DisplayLine {
    text: Vec<char>,
    /// Display column of each byte offset of the line (and of its end).
    column: Vec<usize>,
}

impl DisplayLine {
    fn new(line: &str, line_start: usize, hidden: &dyn Fn(usize) -> bool) -> Self {
        let mut text = Vec::new();
        let mut column = vec![0; line.len() + 1];
        let mut in_hidden = false;
        for (i, c) in line.char_indices() {
            let col = text.len();
            for slot in &mut column[i..i + c.len_utf8()] {
                *slot = col;
            }
            if hidden(line_start + i) {
                if !in_hidden {
                    text.extend(CONCEALED.chars());
                    in_hidden = true;
                } else {
                    // Every byte of one concealed run maps to its start.
                    for slot in &mut column[i..i + c.len_utf8()] {
                        *slot = col - CONCEALED.len();
                    }
                }
                continue;
            }
            in_hidden = false;
            text.push(visible(c));
        }
        column[line.len()] = text.len();
        DisplayLine { text, column }
    }

    /// The text to print and the marker's display columns, cut to a window around the
    /// marked part when the line is too long to read.
    fn window(
        &self,
        from: usize,
        to: usize,
        cut_left: bool,
        cut_right: bool,
    ) -> (String, usize, usize) {
        let a = self.column[from];
        let mut b = self.column[to];
        if b == a && to > from {
            b = a + CONCEALED.len();
        }
        let b = b.clamp(a, self.text.len());
        if self.text.len() <= MAX_SNIPPET_CHARS && !cut_left && !cut_right {
            return (self.text.iter().collect(), a, b);
        }
        let begin = a.saturating_sub(30);
        let end = (begin + MAX_SNIPPET_CHARS).min(self.text.len());
        let ellipsis_left = begin > 0 || cut_left;
        let mut shown = String::new();
        if ellipsis_left {
            shown.push('…');
        }
        shown.extend(&self.text[begin..end]);
        if end < self.text.len() || cut_right {
            shown.push('…');
        }
        let shift = usize::from(ellipsis_left);
        let a_shown = a - begin + shift;
        let b_shown = b.min(end).max(a) - begin + shift;
        (shown, a_shown, b_shown)
    }
}

fn floor_boundary(s: &str, mut at: usize) -> usize {
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// A text that may quote the user's values, kept on one line so the layout holds.
fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    if text.chars().any(char::is_control) {
        text.chars()
            .map(|c| match c {
                '\n' => "\\n".to_string(),
                c if c.is_control() => visible(c).to_string(),
                c => c.to_string(),
            })
            .collect::<String>()
            .into()
    } else {
        text.into()
    }
}

/// Tabs and control characters as the Unicode symbols for them, so a snippet shows what is
/// really in the file (a terminal would otherwise interpret them).
fn visible(c: char) -> char {
    match c {
        '\t' => '\u{2409}',
        c if (c as u32) < 0x20 => char::from_u32(0x2400 + c as u32).unwrap_or('?'),
        '\u{7f}' => '\u{2421}',
        c if c.is_control() => '\u{fffd}',
        c => c,
    }
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
        assert!(out.contains("password: *****\n"), "{out}");
        assert!(out.contains("  |           ^^^^^\n"), "{out}");
    }

    #[test]
    fn concealed_parts_stay_hidden_in_every_diagnostic_on_their_line() {
        let mut src = SourceFile::new("lab.yaml", "tls: {type: http01, apiToken: hunter2}\n");
        let secret = src.text().find("hunter2").unwrap();
        src.conceal([Span::new(secret, secret + 7)]);
        let d = Diagnostic::warning("unused-key", "unused").at(Span::new(5, 38));
        let out = src.render(&[d]);
        assert!(!out.contains("hunter2"), "{out}");
        assert!(out.contains("apiToken: *****}"), "{out}");
    }

    #[test]
    fn long_lines_are_cut_around_the_marker() {
        let line = format!("key: {}TARGET{}\n", "a".repeat(500), "b".repeat(500));
        let src = SourceFile::new("lab.yaml", line.clone());
        let at = line.find("TARGET").unwrap();
        let out = src.render(&[Diagnostic::error("x", "x").at(Span::new(at, at + 6))]);
        let shown = out.lines().nth(3).unwrap();
        assert!(shown.chars().count() < 120, "{out}");
        assert!(
            shown.contains("…aaa") && shown.contains("TARGETbbb") && shown.ends_with('…'),
            "{out}"
        );
        let marker = out.lines().nth(4).unwrap();
        let col = |s: &str, pat: &str| s[..s.find(pat).unwrap()].chars().count();
        assert_eq!(col(marker, "^^^^^^"), col(shown, "TARGET"), "{out}");
    }

    #[test]
    fn control_characters_and_tabs_are_shown_as_symbols() {
        let src = SourceFile::new("lab.yaml", "a:\tb\u{0}c\n");
        let out = src.render(&[Diagnostic::error("x", "x").at(Span::new(4, 5))]);
        assert!(out.contains("1 | a:\u{2409}b\u{2400}c\n"), "{out}");
        assert!(out.contains("  |     ^\n"), "{out}");
    }
}
