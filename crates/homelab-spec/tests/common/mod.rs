//! What the spec test binaries share: loading a spec that must be valid and reading the
//! errors of one that must not be. It holds no lab texts of its own.

use homelab_spec::{LoadedSpec, Severity, load_str};

/// The spec loaded from `text`; panics with the rendered errors if it is invalid.
pub fn load(text: &str) -> LoadedSpec {
    load_str("homelab.yaml", text).unwrap_or_else(|e| panic!("{}", e.render()))
}

/// The errors as `code line:column`, in order.
pub fn errors(text: &str) -> Vec<String> {
    let e = load_str("homelab.yaml", text).expect_err("the spec is invalid");
    e.file
        .to_json(&e.diagnostics)
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| {
            format!(
                "{} {}:{}",
                d.code,
                d.line.unwrap_or(0),
                d.column.unwrap_or(0)
            )
        })
        .collect()
}

/// The rendered errors of an invalid spec, as the user reads them.
pub fn messages(text: &str) -> String {
    load_str("homelab.yaml", text)
        .expect_err("the spec is invalid")
        .render()
}
