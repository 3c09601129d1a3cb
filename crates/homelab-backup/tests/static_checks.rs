//! The rendered scripts pass shellcheck and bash's parser, the library's SQL statement splitter
//! keeps quoted text whole and refuses what it does not know, and the backup alert fires when
//! promtool evaluates it against series that should make it fire, and only then.

use std::fs;
use std::process::Command;

use homelab_backup::alerts::backup_freshness_alert;
use homelab_backup::postgres::{PostgresBackupParams, TableChecksums, scripts};

fn tool(name: &str) -> Command {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "{name} is not installed: run scripts/install-test-deps (Debian package listed in scripts/deps/apt.txt)"
    );
    Command::new(name)
}

/// The scripts rendered with a configuration that exercises the quoting: a path with a space,
/// database names with quotes, the row-count mode. The rest of the text does not depend on it.
fn rendered_variants() -> Vec<(String, tempfile::TempDir)> {
    let mut listed = PostgresBackupParams::new("/var/lib/backups dir/pg", 3);
    listed.databases = Some(vec!["n8n".into(), "it's \"odd\"".into()]);
    listed.table_checksums = TableChecksums::RowCountsOnly;
    let dir = tempfile::tempdir().unwrap();
    for s in scripts(&listed).unwrap() {
        fs::write(dir.path().join(s.file_name), s.content).unwrap();
    }
    vec![("listed databases".to_string(), dir)]
}

#[test]
fn the_rendered_scripts_pass_shellcheck() {
    for (variant, dir) in rendered_variants() {
        let out = tool("shellcheck")
            .current_dir(dir.path())
            .args([
                "-x",
                "-S",
                "style",
                "lib.sh",
                "backup.sh",
                "restore.sh",
                "drill.sh",
                "list.sh",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "shellcheck ({variant}):\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for f in ["lib.sh", "backup.sh", "restore.sh", "drill.sh", "list.sh"] {
            let out = Command::new("bash")
                .arg("-n")
                .arg(dir.path().join(f))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "bash -n {f} ({variant}): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

fn yaml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

#[test]
fn the_backup_alert_fires_only_without_a_recent_success() {
    let rule = backup_freshness_alert("data", "postgres-backup", 26);
    let dir = tempfile::tempdir().unwrap();
    let rules = format!(
        "groups:\n- name: backup\n  rules:\n  - alert: {}\n    expr: {}\n    for: {}\n    labels:\n      severity: {}\n    annotations:\n      summary: {}\n      description: {}\n      runbook_url: {}\n",
        rule.name,
        yaml_str(&rule.expr),
        rule.for_duration,
        rule.severity,
        yaml_str(&rule.summary),
        yaml_str(&rule.description),
        yaml_str(&format!(
            "https://example.invalid/docs/runbooks/{}.md",
            rule.runbook
        )),
    );
    fs::write(dir.path().join("rules.yaml"), &rules).unwrap();
    let out = tool("promtool")
        .args(["check", "rules"])
        .arg(dir.path().join("rules.yaml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Time starts at 0 in promtool tests. The CronJob exists from 0; in "healthy" it succeeds
    // every day at 02:00 (the metric holds that time); in "stopped" the last success is the
    // first day's; in "never" there is no success at all.
    let sel = r#"namespace="data", cronjob="postgres-backup""#;
    let created = format!("kube_cronjob_created{{{sel}}}");
    let last = format!("kube_cronjob_status_last_successful_time{{{sel}}}");
    // One sample a minute for 3 days (sparser samples go stale between scrapes, as they would
    // in Prometheus).
    let healthy: Vec<String> = (0..4320)
        .map(|i| {
            let t = i * 60;
            let day = t / 86_400;
            let success = if t % 86_400 >= 7200 {
                day * 86_400 + 7200
            } else {
                (day - 1).max(0) * 86_400 + 7200
            };
            success.to_string()
        })
        .collect();
    let test = format!(
        "rule_files: [rules.yaml]\nevaluation_interval: 1m\ntests:\n\
         - interval: 1m\n  input_series:\n  - series: '{created}'\n    values: '0x4319'\n  - series: '{last}'\n    values: '{healthy}'\n  alert_rule_test:\n  - eval_time: 70h\n    alertname: {name}\n    exp_alerts: []\n\
         - interval: 1m\n  input_series:\n  - series: '{created}'\n    values: '0x4319'\n  - series: '{last}'\n    values: '7200x43199'\n  alert_rule_test:\n  - eval_time: 27h\n    alertname: {name}\n    exp_alerts: []\n  - eval_time: 30h\n    alertname: {name}\n    exp_alerts:\n    - exp_labels: {{severity: critical, namespace: data, cronjob: postgres-backup}}\n      exp_annotations:\n        summary: {summary}\n        description: {description}\n        runbook_url: {runbook}\n\
         - interval: 1m\n  input_series:\n  - series: '{created}'\n    values: '0x4319'\n  alert_rule_test:\n  - eval_time: 25h\n    alertname: {name}\n    exp_alerts: []\n  - eval_time: 27h\n    alertname: {name}\n    exp_alerts:\n    - exp_labels: {{severity: critical, namespace: data, cronjob: postgres-backup}}\n      exp_annotations:\n        summary: {summary}\n        description: {description}\n        runbook_url: {runbook}\n",
        healthy = healthy.join(" "),
        name = rule.name,
        summary = yaml_str(&rule.summary),
        description = yaml_str(&rule.description),
        runbook = yaml_str(&format!(
            "https://example.invalid/docs/runbooks/{}.md",
            rule.runbook
        )),
    );
    fs::write(dir.path().join("test.yaml"), &test).unwrap();
    let out = tool("promtool")
        .current_dir(dir.path())
        .args(["test", "rules", "test.yaml"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool test rules:\n{}{}\n{test}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `hb_split_database_statements` of the rendered lib.sh on `sql` for database `"x y"`;
/// returns its exit status and what it printed: the reason, or the statements it kept.
fn split_database_statements(sql: &str) -> (i32, String) {
    let (_, dir) = rendered_variants().pop().unwrap();
    let out = Command::new("bash")
        .arg("-c")
        .arg(
            r#". ./lib.sh; HB_DB_SQL=$1; hb_split_database_statements '"x y"'; rc=$?
               if ((rc)); then printf '%s' "$HB_REASON"; else printf '%s\n--\n' "$HB_DB_CREATE" "${HB_DB_STMTS[@]}"; fi
               exit "$rc""#,
        )
        .arg("split")
        .arg(sql)
        .current_dir(dir.path())
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
    )
}

#[test]
fn database_statements_are_split_outside_quotes_and_unknown_ones_refused() {
    let (code, out) = split_database_statements(
        "SET x = 1;\n\\connect -reuse-previous=on \"dbname='x y'\"\n-- a comment;\n\n\
         CREATE DATABASE \"x y\" WITH TEMPLATE = template0;\n\
         COMMENT ON DATABASE \"x y\" IS 'a;\n-- b\n\"c'';\n';\n\
         GRANT CONNECT ON DATABASE \"x y\" TO \"r;\n\";\n",
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out,
        "WITH TEMPLATE = template0;\n--\n\
         COMMENT ON DATABASE \"x y\" IS 'a;\n-- b\n\"c'';\n';\n--\n\
         GRANT CONNECT ON DATABASE \"x y\" TO \"r;\n\";\n--\n"
    );

    let (code, out) = split_database_statements(
        "ALTER DATABASE \"x y\" OWNER TO a;\nUPDATE pg_catalog.pg_database SET x = 1\n  WHERE y;\n",
    );
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        out,
        "the dump's database-level entries hold a statement this restore does not know how to \
         apply to a renamed database: UPDATE pg_catalog.pg_database SET x = 1"
    );

    let (code, out) = split_database_statements("COMMENT ON DATABASE \"x y\" IS 'never;\nends;\n");
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        out,
        "the dump's database-level entries end inside a statement: COMMENT ON DATABASE \"x y\" IS 'never;"
    );
}
