//! `/metrics` in the Prometheus text format (0.0.4): component health, nodes, certificate
//! days left, backup age, from the same status pass the pages show. Builds a string only.

use std::fmt::Write;

use homelab_kube::Health;

use crate::model::{Overview, Snapshot};

/// A label value with `\`, `"` and newlines escaped as the format asks.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
}

fn bool_value(b: bool) -> u8 {
    u8::from(b)
}

pub fn render(overview: &Overview, snapshot: Option<&Snapshot>) -> String {
    let mut out = String::new();
    let lab = label(&overview.lab);
    family(
        &mut out,
        "homelab_up",
        "Whether the last status pass reached the Kubernetes API (1) or not (0).",
    );
    let reached = snapshot.is_some_and(|s| s.report.health != Health::Unreachable);
    let _ = writeln!(out, "homelab_up{{lab=\"{lab}\"}} {}", bool_value(reached));
    let Some(snapshot) = snapshot else {
        return out;
    };
    family(
        &mut out,
        "homelab_last_check_timestamp_seconds",
        "When the last status pass ran (Unix time).",
    );
    let _ = writeln!(
        out,
        "homelab_last_check_timestamp_seconds{{lab=\"{lab}\"}} {}",
        snapshot.checked_at.as_second()
    );
    family(
        &mut out,
        "homelab_check_duration_seconds",
        "How long the last status pass took.",
    );
    let _ = writeln!(
        out,
        "homelab_check_duration_seconds{{lab=\"{lab}\"}} {:.3}",
        snapshot.seconds
    );
    if !reached {
        return out;
    }
    let report = &snapshot.report;
    family(
        &mut out,
        "homelab_healthy",
        "Whether every status check of the lab passes (1) or not (0).",
    );
    let _ = writeln!(
        out,
        "homelab_healthy{{lab=\"{lab}\"}} {}",
        bool_value(report.health == Health::Healthy)
    );
    family(
        &mut out,
        "homelab_component_healthy",
        "Whether every check of a component (workloads, volumes, certificates, URLs, backups) passes.",
    );
    for c in &overview.components {
        if let Some(h) = c.healthy {
            let _ = writeln!(
                out,
                "homelab_component_healthy{{lab=\"{lab}\",component=\"{}\",layer=\"{}\"}} {}",
                label(&c.name),
                label(&c.layer),
                bool_value(h)
            );
        }
    }
    family(&mut out, "homelab_nodes", "Nodes of the plan by state.");
    for (state, n) in [
        ("expected", overview.nodes.expected),
        ("present", overview.nodes.present),
        ("ready", overview.nodes.ready),
    ] {
        let _ = writeln!(out, "homelab_nodes{{lab=\"{lab}\",state=\"{state}\"}} {n}");
    }
    family(
        &mut out,
        "homelab_node_ready",
        "Whether a node of the plan is Ready.",
    );
    for n in &report.nodes {
        let _ = writeln!(
            out,
            "homelab_node_ready{{lab=\"{lab}\",node=\"{}\"}} {}",
            label(&n.name),
            bool_value(n.ready)
        );
    }
    family(
        &mut out,
        "homelab_certificate_days_left",
        "Whole days until a checked certificate (cert-manager Certificate or the root CA) ends.",
    );
    for c in &report.components {
        for k in &c.checks {
            if let Some(days) = k.days_left {
                let _ = writeln!(
                    out,
                    "homelab_certificate_days_left{{lab=\"{lab}\",component=\"{}\",certificate=\"{}\"}} {days}",
                    label(&c.name),
                    label(&k.what)
                );
            }
        }
    }
    family(
        &mut out,
        "homelab_backup_age_seconds",
        "Seconds since a backup CronJob last succeeded.",
    );
    for b in &report.backups {
        if let Some(age) = b.age_seconds {
            let _ = writeln!(
                out,
                "homelab_backup_age_seconds{{lab=\"{lab}\",namespace=\"{}\",cronjob=\"{}\"}} {age}",
                label(&b.namespace),
                label(&b.cronjob)
            );
        }
    }
    family(
        &mut out,
        "homelab_backup_ok",
        "Whether a backup CronJob succeeded recently enough for its schedule.",
    );
    for b in &report.backups {
        let _ = writeln!(
            out,
            "homelab_backup_ok{{lab=\"{lab}\",namespace=\"{}\",cronjob=\"{}\"}} {}",
            label(&b.namespace),
            label(&b.cronjob),
            bool_value(b.ok)
        );
    }
    family(
        &mut out,
        "homelab_url_up",
        "Whether a URL of the lab answered over HTTPS with a valid certificate.",
    );
    for u in &report.urls {
        let _ = writeln!(
            out,
            "homelab_url_up{{lab=\"{lab}\",url=\"{}\"}} {}",
            label(&u.url),
            bool_value(u.ok)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
