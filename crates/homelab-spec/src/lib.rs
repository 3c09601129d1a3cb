//! Spec types, parsing with source positions, validation, defaults and the JSON Schema of
//! `homelab.yaml`; pure: no network, no disk, no terminal.

mod conceal;
pub mod de;
pub mod diag;
pub mod emit;
pub mod lab;
pub mod manifests;
pub mod raw;
pub mod templates;
pub mod types;
mod validate;
pub mod yaml;

pub use diag::{Diagnostic, Severity, SourceFile, Span};
pub use lab::Lab;
pub use validate::{PLATFORM_HOSTS, RESERVED_PORTS};

/// The code of the warnings about values copied from an example (the example lab's domain,
/// email, ntfy topic or SSH key; an RFC 2606 name with Let's Encrypt).
pub const EXAMPLE_VALUE: &str = validate::examples::CODE;

/// A spec that passed validation, with its warnings and the source they point into.
#[derive(Debug, Clone)]
pub struct LoadedSpec {
    pub lab: Lab,
    pub warnings: Vec<Diagnostic>,
    pub source: SourceFile,
    /// Where secrets are referenced by name (`{secret: NAME}`) in the source.
    pub secret_ref_spans: Vec<(String, Span)>,
}

impl LoadedSpec {
    /// The warnings about values copied from an example, which the operations that build the
    /// lab refuse unless told otherwise.
    pub fn example_values(&self) -> Vec<&Diagnostic> {
        self.warnings
            .iter()
            .filter(|d| d.code == EXAMPLE_VALUE)
            .collect()
    }

    /// Errors for every secret the spec uses that `existing` (the names in the secrets file)
    /// lacks, at the place it is referenced when it is written in the spec.
    pub fn missing_secrets(&self, existing: &[String]) -> Vec<Diagnostic> {
        let known: Vec<&str> = existing.iter().map(String::as_str).collect();
        let mut out = Vec::new();
        let mut reported = std::collections::BTreeSet::new();
        for (secret, used_by) in self.lab.secret_refs() {
            let name = secret.name();
            if known.contains(&name) || !reported.insert(name.to_string()) {
                continue;
            }
            let mut d = Diagnostic::error(
                "unknown-secret",
                format!(
                    "{used_by} needs the secret `{name}`, which secrets.sops.yaml does not hold"
                ),
            );
            if let Some((_, span)) = self.secret_ref_spans.iter().find(|(n, _)| n == name) {
                d = d.at(*span);
            }
            let listing = if known.is_empty() {
                "the secrets file holds no secrets yet".to_string()
            } else {
                let mut names: Vec<&str> = known.clone();
                names.sort_unstable();
                format!(
                    "it holds {}",
                    names
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            let fix = match de::did_you_mean(name, &known) {
                Some(close) => format!(
                    "did you mean `{close}`? Otherwise set it with `homelab secrets set {name}` ({listing})"
                ),
                None => format!(
                    "set it with `homelab secrets set {name}`, or run `homelab secrets init` to generate the secrets the lab can make itself ({listing})"
                ),
            };
            out.push(d.help(fix));
        }
        out
    }
}

/// A spec that did not pass: every error and warning found, and the source they point into.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{} is not a valid lab spec: {}", file.name(), self.summary())]
pub struct InvalidSpec {
    /// Boxed to keep the error small.
    pub file: Box<SourceFile>,
    pub diagnostics: Vec<Diagnostic>,
    /// Problems in other files the spec names (those of its `manifests:` directory).
    pub others: Vec<(SourceFile, Vec<Diagnostic>)>,
}

impl InvalidSpec {
    /// A spec whose problems are all in the spec file itself.
    pub fn new(file: SourceFile, diagnostics: Vec<Diagnostic>) -> Self {
        InvalidSpec {
            file: Box::new(file),
            diagnostics,
            others: Vec::new(),
        }
    }

    /// Every diagnostic, in the spec file and in the files it names.
    pub fn all(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .chain(self.others.iter().flat_map(|(_, d)| d.iter()))
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.all().filter(|d| d.is_error())
    }

    /// "2 errors, 1 warning" over every file.
    pub fn summary(&self) -> String {
        summary(&self.all().cloned().collect::<Vec<_>>())
    }

    /// The diagnostics rendered for a terminal: each with its location, source line and help.
    pub fn render(&self) -> String {
        std::iter::once(self.file.render(&self.diagnostics))
            .chain(self.others.iter().map(|(file, diags)| file.render(diags)))
            .filter(|text| !text.is_empty())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The diagnostics of every file as data, for `--output json`.
    pub fn to_json(&self) -> Vec<diag::DiagnosticJson> {
        let mut out = self.file.to_json(&self.diagnostics);
        for (file, diags) in &self.others {
            out.extend(file.to_json(diags));
        }
        out
    }
}

/// "3 errors, 1 warning".
pub fn summary(diagnostics: &[Diagnostic]) -> String {
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = diagnostics.len() - errors;
    let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
    match warnings {
        0 => plural(errors, "error"),
        _ => format!(
            "{}, {}",
            plural(errors, "error"),
            plural(warnings, "warning")
        ),
    }
}

/// Parses and validates a spec read by the caller. `name` is how diagnostics name the file.
pub fn load_bytes(name: &str, bytes: &[u8]) -> Result<LoadedSpec, InvalidSpec> {
    let text = match yaml::check_bytes(bytes) {
        Ok(t) => t,
        Err(d) => {
            // Show what can be shown of a binary file without failing on it.
            let lossy = String::from_utf8_lossy(&bytes[..bytes.len().min(yaml::MAX_SPEC_BYTES)])
                .into_owned();
            let mut file = SourceFile::new(name, lossy);
            file.conceal(conceal::in_lines(file.text()));
            let mut d = *d;
            file.scrub(&mut d);
            return Err(InvalidSpec::new(file, vec![d]));
        }
    };
    load_str(name, text)
}

/// Parses and validates spec text.
pub fn load_str(name: &str, text: &str) -> Result<LoadedSpec, InvalidSpec> {
    let mut source = SourceFile::new(name, text);
    source.conceal(conceal::in_lines(text));
    let fail = |mut diagnostics: Vec<Diagnostic>, file: SourceFile| {
        for d in &mut diagnostics {
            file.scrub(d);
        }
        Err(InvalidSpec::new(file, diagnostics))
    };
    if let Err(d) = yaml::check_bytes(text.as_bytes()) {
        return fail(vec![*d], source);
    }
    let root = match yaml::parse(text) {
        Ok(root) => root,
        Err(diags) => return fail(diags, source),
    };
    source.conceal(conceal::in_tree(&root));
    if !matches!(root.value, yaml::Value::Map(_)) {
        let d = Diagnostic::error("not-a-mapping", format!("the spec must be a YAML mapping of sections, but this file holds {}", root.describe()))
            .at(root.span)
            .help("start with `name: my-lab`, then `network:`, `cluster:`, `tls:` (run `homelab init` for a commented example)");
        return fail(vec![d], source);
    }
    let (raw, mut diags) = de::from_node::<raw::RawLab>(&root);
    if let Some(raw) = raw {
        let (lab, more, secret_ref_spans) = validate::validate(&raw, root.span);
        // A value the reader already rejected stands in as a default; what validation says
        // about that stand-in (or about a mapping that stands in for a rejected value) would
        // only repeat the problem.
        let rejected: Vec<(Span, bool)> = diags
            .iter()
            .filter_map(|d| Some((d.span?, d.code != "unknown-key")))
            .collect();
        diags.extend(more.into_iter().filter(|d| {
            d.span.is_none_or(|s| {
                !rejected.iter().any(|&(r, whole)| {
                    r == s || (whole && s.start >= r.start && s.end <= r.end && r.end > r.start)
                })
            })
        }));
        sort(&mut diags);
        if let Some(lab) = lab.filter(|_| !diags.iter().any(Diagnostic::is_error)) {
            for d in &mut diags {
                source.scrub(d);
            }
            return Ok(LoadedSpec {
                lab,
                warnings: diags,
                source,
                secret_ref_spans,
            });
        }
    }
    sort(&mut diags);
    if !diags.iter().any(Diagnostic::is_error) {
        diags.push(
            Diagnostic::error("spec-shape", "the spec could not be read")
                .at(root.span)
                .help("check the structure against `homelab schema`, or compare with `homelab init -f example.yaml`"),
        );
    }
    fail(diags, source)
}

/// Diagnostics in file order, so a reader can fix them top to bottom; a key reported missing
/// is not reported when a misspelt key in the same mapping was already flagged as meaning it.
fn sort(diags: &mut Vec<Diagnostic>) {
    let misspelt: Vec<(Span, String)> = diags
        .iter()
        .filter(|d| d.code == "unknown-key")
        .filter_map(|d| Some((d.span?, d.suggestion.clone()?)))
        .collect();
    diags.retain(|d| {
        let (Some(scope), Some(key)) = (d.scope, &d.suggestion) else {
            return true;
        };
        d.code != "missing-key"
            || !misspelt
                .iter()
                .any(|(at, meant)| meant == key && at.start >= scope.start && at.end <= scope.end)
    });
    diags.sort_by_key(|d| (d.span.map_or(0, |s| s.start), d.severity));
}

/// The JSON Schema of `homelab.yaml`, for editors (yaml-language-server) and `homelab schema`.
pub fn json_schema() -> serde_json::Value {
    let mut schema =
        serde_json::to_value(schemars::schema_for!(raw::RawLab)).expect("a schema is JSON");
    if let Some(obj) = schema.as_object_mut() {
        obj.insert("$id".into(), serde_json::Value::String(SCHEMA_URL.into()));
    }
    schema
}

/// Where the published schema lives; `homelab init` writes it into the first line of the spec.
pub const SCHEMA_URL: &str =
    "https://raw.githubusercontent.com/homelab-rs/homelab/main/schema/homelab.schema.json";
