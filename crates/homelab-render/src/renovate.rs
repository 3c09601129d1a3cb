//! Renovate: the `# renovate:` comment above every pinned chart and image version, and the
//! `renovate.json` whose regex manager reads them back; pure text.

use homelab_plan::ChartRef;
use serde_json::json;

use crate::yaml::{Line, unquote, walk};

/// The regex manager's patterns (ECMAScript/RE2 syntax, which Rust's `regex` also reads):
/// a chart `version:` (or an OCIRepository's `tag:`), a container `image:` and a Dockerfile
/// `FROM`, each on the line after the comment.
pub const RENOVATE_MATCH_STRINGS: [&str; 3] = [
    r#"# renovate: datasource=(?<datasource>\S+) depName=(?<depName>\S+)(?: registryUrl=(?<registryUrl>\S+))?\n\s*(?:version|tag): ['"]?(?<currentValue>[^'"\s]+)['"]?\n"#,
    r#"# renovate: datasource=(?<datasource>\S+) depName=(?<depName>\S+)(?: registryUrl=(?<registryUrl>\S+))?\n\s*(?:- )?image: ['"]?\S+:(?<currentValue>[^\s:/@'"]+)['"]?\n"#,
    r#"# renovate: datasource=(?<datasource>\S+) depName=(?<depName>\S+)(?: registryUrl=(?<registryUrl>\S+))?\nFROM \S+:(?<currentValue>\S+)\n"#,
];

/// `renovate.json` for the rendered repository.
pub fn renovate_json() -> String {
    let config = json!({
        "$schema": "https://docs.renovatebot.com/renovate-schema.json",
        "extends": ["config:recommended"],
        // Only the comments below: the built-in Dockerfile manager would propose the same
        // base-image update a second time.
        "enabledManagers": ["custom.regex"],
        "customManagers": [{
            "customType": "regex",
            "description": "Chart and image versions pinned by homelab render, each below a `# renovate:` comment",
            "managerFilePatterns": ["/\\.ya?ml$/", "/(^|/)Dockerfile$/"],
            "matchStrings": RENOVATE_MATCH_STRINGS,
        }],
    });
    let mut text = serde_json::to_string_pretty(&config).expect("JSON");
    text.push('\n');
    text
}

/// The comment for a chart pin (an OCI chart is looked up with the docker datasource).
pub(crate) fn chart_comment(chart: &ChartRef) -> String {
    match chart.repo.strip_prefix("oci://") {
        Some(registry) => format!(
            "# renovate: datasource=docker depName={}/{}",
            registry.trim_end_matches('/'),
            chart.name
        ),
        None => format!(
            "# renovate: datasource=helm depName={} registryUrl={}",
            chart.name, chart.repo
        ),
    }
}

/// `repository:tag` of an image reference; `None` without a tag or with a digest.
pub(crate) fn image_pin(reference: &str) -> Option<(&str, &str)> {
    if reference.contains('@') {
        return None;
    }
    let slash = reference.rfind('/').map_or(0, |i| i + 1);
    let colon = reference[slash..].rfind(':')? + slash;
    let (repo, tag) = (&reference[..colon], &reference[colon + 1..]);
    (!repo.is_empty() && !tag.is_empty()).then_some((repo, tag))
}

/// Adds the Renovate comment above every `image:` with a tag, and above the key at
/// `chart_version` (a key path such as `spec.version`) with `chart_comment`.
pub(crate) fn annotate(text: &str, chart_version: Option<(&[&str], &str)>) -> String {
    let mut out = String::with_capacity(text.len() + 512);
    let mut first = true;
    walk(text, |line: &Line<'_>| {
        if !first {
            out.push('\n');
        }
        first = false;
        if let Some(comment) = comment_for(line, chart_version) {
            out.push_str(&" ".repeat(line.indent));
            out.push_str(&comment);
            out.push('\n');
        }
        out.push_str(line.raw);
    });
    out
}

fn comment_for(line: &Line<'_>, chart_version: Option<(&[&str], &str)>) -> Option<String> {
    if line.in_block {
        return None;
    }
    let key = line.key?;
    if let Some((path, comment)) = chart_version
        && path.last() == Some(&key)
        && line.path == path
    {
        return Some(comment.to_string());
    }
    if key == "image" {
        let reference = unquote(line.value?);
        let (repo, _) = image_pin(&reference)?;
        return Some(format!("# renovate: datasource=docker depName={repo}"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references() {
        assert_eq!(
            image_pin("docker.io/library/redis:8.2.3-alpine"),
            Some(("docker.io/library/redis", "8.2.3-alpine"))
        );
        assert_eq!(
            image_pin("registry:5000/team/app:1.2"),
            Some(("registry:5000/team/app", "1.2"))
        );
        assert_eq!(image_pin("registry:5000/team/app"), None);
        assert_eq!(image_pin("nginx"), None);
        assert_eq!(image_pin("nginx@sha256:abc"), None);
    }

    #[test]
    fn comments_go_above_pins_but_not_into_block_scalars() {
        let text = "spec:\n  chart: x\n  version: '1.0'\n  valuesContent: |\n    image: a/b:1\n    version: 2\n  containers:\n    - image: a/b:2\n      name: c\n";
        let out = annotate(text, Some((&["spec", "version"], "# renovate: X")));
        assert_eq!(
            out,
            "spec:\n  chart: x\n  # renovate: X\n  version: '1.0'\n  valuesContent: |\n    image: a/b:1\n    version: 2\n  containers:\n    # renovate: datasource=docker depName=a/b\n    - image: a/b:2\n      name: c\n"
        );
    }
}
