//! The one place that writes to the terminal: results to stdout, progress and diagnostics to
//! stderr, honouring `--output json`, `--quiet` and `--verbose` for every command.

use std::io::{IsTerminal, Write};

use serde::Serialize;
use serde_json::{Map, Value};
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Format {
    /// Text for people.
    #[default]
    Text,
    /// One JSON document on stdout, for scripts.
    Json,
}

#[derive(Debug)]
pub struct Output {
    pub format: Format,
    pub quiet: bool,
    pub verbose: u8,
    color: bool,
    /// The command's JSON document, printed by [`Output::finish`] once its exit code is known.
    pending: Mutex<Option<Value>>,
}

impl Output {
    pub fn new(format: Format, quiet: bool, verbose: u8) -> Self {
        let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Output {
            format,
            quiet,
            verbose,
            color,
            pending: Mutex::new(None),
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

    /// The outcome of a command that changes or checks something (`wrote ...`, `... is
    /// valid`): `text` for people, `data` for `--output json`. `--quiet` hides the text, since
    /// the exit code says the same.
    pub fn result<T: Serialize>(&self, text: impl FnOnce() -> String, data: &T) {
        if self.quiet && !self.is_json() {
            return;
        }
        self.answer(text, data);
    }

    /// What the user asked to see (findings, a listing, a plan, versions): `text` for people,
    /// `data` for `--output json`. Printed with `--quiet` too, which hides only progress.
    pub fn answer<T: Serialize>(&self, text: impl FnOnce() -> String, data: &T) {
        match self.format {
            Format::Json => self.json(data),
            Format::Text => {
                let text = text();
                if !text.is_empty() {
                    stdout_line(text.trim_end_matches('\n'));
                }
            }
        }
    }

    /// Raw output the user asked for (a schema, a secret, a completion script): printed even
    /// with `--quiet`, unchanged by `--output`.
    pub fn raw(&self, text: &str) {
        if text.ends_with('\n') {
            stdout_write(text.as_bytes());
        } else {
            stdout_line(text);
        }
    }

    /// Keeps `data` as the command's one JSON document; [`Output::finish`] prints it.
    pub fn json<T: Serialize>(&self, data: &T) {
        let value = serde_json::to_value(data).expect("output data serializes");
        *self.pending.lock().expect("output lock") = Some(value);
    }

    /// Ends the command with exit code `code`: prints the JSON document kept by
    /// [`Output::result`] or [`Output::json`], led by `ok` and `exitCode` (unless the command
    /// set them itself), so that every command's JSON has the same shape.
    pub fn finish(&self, code: u8) {
        let Some(value) = self.pending.lock().expect("output lock").take() else {
            return;
        };
        let value = match value {
            Value::Object(fields) => {
                let mut led = Map::new();
                let ok = fields.get("ok").cloned().unwrap_or(Value::Bool(code == 0));
                let exit_code = fields.get("exitCode").cloned().unwrap_or(code.into());
                led.insert("ok".into(), ok);
                led.insert("exitCode".into(), exit_code);
                led.extend(
                    fields
                        .into_iter()
                        .filter(|(k, _)| k != "ok" && k != "exitCode"),
                );
                Value::Object(led)
            }
            other => other,
        };
        print_json(&value);
    }

    /// The top-level error, printed once (instead of any result kept for `--output json`) and
    /// in one layout for every command: what failed and where, what to do next, then the
    /// causes, each on its own line.
    pub fn error(&self, err: &anyhow::Error, code: u8) {
        let chain: Vec<String> = err.chain().map(|e| e.to_string()).collect();
        let help = crate::exit::help_of(err);
        match self.format {
            Format::Json => {
                self.pending.lock().expect("output lock").take();
                print_json(&serde_json::json!({
                    "ok": false,
                    "exitCode": code,
                    "error": chain.first(),
                    "help": help,
                    "causes": &chain[1.min(chain.len())..],
                }))
            }
            Format::Text => eprintln!("{}", self.error_text(&chain, help)),
        }
    }

    fn error_text(&self, chain: &[String], help: Option<&str>) -> String {
        let mut msg = format!("{}{}", self.paint("error: ", "31;1"), chain[0]);
        if let Some(help) = help {
            msg.push_str(&format!("\n  {}{help}", self.paint("help: ", "36")));
        }
        for cause in &chain[1..] {
            msg.push_str(&format!("\n  caused by: {cause}"));
        }
        msg
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

fn print_json(value: &Value) {
    let text = serde_json::to_string_pretty(value).expect("output data serializes");
    stdout_line(&text);
}

/// Asks a yes/no question on the terminal (stderr, answer on stdin); only `yes` goes ahead.
/// Callers check that there is a terminal first and refuse without one unless `--yes`.
pub fn ask_yes(question: &str) -> bool {
    use std::io::BufRead;
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "{question}\nType yes to go ahead: ");
    let _ = err.flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    answer.trim().eq_ignore_ascii_case("yes")
}

/// Asks for one line on the terminal (question on stderr, answer on stdin), showing the
/// default an empty answer takes. `None` when stdin is closed.
pub fn ask_line(question: &str, default: Option<&str>) -> std::io::Result<Option<String>> {
    use std::io::BufRead;
    let mut err = std::io::stderr().lock();
    match default {
        Some(d) => write!(err, "{question} [{d}]: ")?,
        None => write!(err, "{question}: ")?,
    }
    err.flush()?;
    drop(err);
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer)? == 0 {
        return Ok(None);
    }
    let answer = answer.trim();
    Ok(Some(match (answer.is_empty(), default) {
        (true, Some(d)) => d.to_string(),
        _ => answer.to_string(),
    }))
}

/// A line for the person answering questions (stderr), whatever the output format: without
/// it they would not know why a question comes again.
pub fn tell(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

/// Writes a line to stdout. A reader that went away (`homelab ... | head`) ends the program
/// quietly, as other command-line tools do, instead of a panic.
fn stdout_line(text: &str) {
    let mut line = String::with_capacity(text.len() + 1);
    line.push_str(text);
    line.push('\n');
    stdout_write(line.as_bytes());
}

fn stdout_write(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(bytes).and_then(|()| out.flush())
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(0);
    }
}

/// `1.5 MiB`: sizes as people read them.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::human_size;

    #[test]
    fn sizes_are_readable() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(16552), "16.2 KiB");
        assert_eq!(human_size(5 * 1024 * 1024), "5.0 MiB");
    }
}
