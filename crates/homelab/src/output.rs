//! The one place that writes to the terminal: results to stdout, progress and diagnostics to
//! stderr, honouring `--output json`, `--quiet` and `--verbose` for every command.

use std::io::{IsTerminal, Write};

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Format {
    /// Text for people.
    #[default]
    Text,
    /// One JSON document on stdout, for scripts.
    Json,
}

#[derive(Debug, Clone)]
pub struct Output {
    pub format: Format,
    pub quiet: bool,
    pub verbose: u8,
    color: bool,
}

impl Output {
    pub fn new(format: Format, quiet: bool, verbose: u8) -> Self {
        let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Output {
            format,
            quiet,
            verbose,
            color,
        }
    }

    pub fn is_json(&self) -> bool {
        self.format == Format::Json
    }

    /// A progress or context line on stderr; silent with `--quiet` or `--output json`.
    pub fn status(&self, line: impl AsRef<str>) {
        if !self.quiet && !self.is_json() {
            eprintln!("{}", line.as_ref());
        }
    }

    /// Detail shown only with `-v`.
    pub fn detail(&self, line: impl AsRef<str>) {
        if self.verbose > 0 && !self.is_json() {
            eprintln!("{}", line.as_ref());
        }
    }

    /// A warning on stderr; shown even with `--quiet`, but not in JSON mode (it is in the data).
    pub fn warn(&self, line: impl AsRef<str>) {
        if !self.is_json() {
            eprintln!("{}{}", self.paint("warning: ", "33"), line.as_ref());
        }
    }

    /// Diagnostics already rendered with locations; stderr, in text mode only.
    pub fn diagnostics(&self, rendered: &str) {
        if !self.is_json() && !rendered.is_empty() {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(self.colorize_diagnostics(rendered).as_bytes());
        }
    }

    /// The result of a command: `text` for people, `data` for `--output json`.
    pub fn result<T: Serialize>(&self, text: impl FnOnce() -> String, data: &T) {
        match self.format {
            Format::Json => self.json(data),
            Format::Text => {
                if !self.quiet {
                    let text = text();
                    if !text.is_empty() {
                        println!("{}", text.trim_end_matches('\n'));
                    }
                }
            }
        }
    }

    /// Raw output the user asked for (a schema, a secret, a completion script): printed even
    /// with `--quiet`, unchanged by `--output`.
    pub fn raw(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        if !text.ends_with('\n') {
            let _ = out.write_all(b"\n");
        }
    }

    pub fn json<T: Serialize>(&self, data: &T) {
        let text = serde_json::to_string_pretty(data).expect("output data serializes");
        println!("{text}");
    }

    /// The top-level error, with its whole chain, printed once.
    pub fn error(&self, err: &anyhow::Error, code: u8) {
        let chain: Vec<String> = err.chain().map(|e| e.to_string()).collect();
        match self.format {
            Format::Json => self.json(&serde_json::json!({
                "ok": false,
                "exitCode": code,
                "error": chain.first(),
                "causes": &chain[1.min(chain.len())..],
            })),
            Format::Text => {
                let mut msg = format!("{}{}", self.paint("error: ", "31;1"), chain[0]);
                for cause in &chain[1..] {
                    msg.push_str(&format!("\n  caused by: {cause}"));
                }
                eprintln!("{msg}");
            }
        }
    }

    fn paint(&self, text: &str, code: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    fn colorize_diagnostics(&self, rendered: &str) -> String {
        if !self.color {
            return rendered.to_string();
        }
        rendered
            .lines()
            .map(|l| {
                if l.starts_with("error[") {
                    self.paint(l, "31;1")
                } else if l.starts_with("warning[") {
                    self.paint(l, "33;1")
                } else if l.trim_start().starts_with("= help:") {
                    self.paint(l, "36")
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    }
}
