//! The P1 "no recent PostgreSQL backup" alert as data, for the plan's PrometheusRule; pure:
//! builds strings, renders no manifest itself.
//!
//! It reads kube-state-metrics' `kube_cronjob_status_last_successful_time`, which only moves
//! when a Job of the CronJob exits 0, and `backup.sh` exits 0 only when every dump of the run
//! was written and verified. A CronJob that never succeeded has no such series: the second
//! half of the expression covers it from `kube_cronjob_created`.
//!
//! The rule has no `for:`: it is a P1, due on the phone within a minute of the threshold
//! (NFR5), and its signal is a timestamp compared with the clock, which one bad scrape cannot
//! fake (a failed scrape leaves no sample, so the rule sees nothing rather than an old time).

/// A Prometheus alerting rule, field by field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRule {
    pub name: String,
    pub expr: String,
    /// The rule's `for:` duration.
    pub for_duration: String,
    pub severity: String,
    pub summary: String,
    pub description: String,
    /// Name of the runbook (`docs/runbooks/<name>.md`) that answers the alert.
    pub runbook: &'static str,
}

/// Name of the alert [`backup_freshness_alert`] builds.
pub const BACKUP_ALERT_NAME: &str = "PostgresBackupMissing";

/// The alert that fires when the backup CronJob `namespace/cronjob` has had no successful run
/// for more than `max_age_hours` (26 in the lab: a daily schedule plus slack for a slow run).
pub fn backup_freshness_alert(namespace: &str, cronjob: &str, max_age_hours: u32) -> AlertRule {
    let selector = format!(
        "namespace=\"{}\", cronjob=\"{}\"",
        promql_escape(namespace),
        promql_escape(cronjob)
    );
    let seconds = u64::from(max_age_hours) * 3600;
    let expr = format!(
        "(time() - max by (namespace, cronjob) (kube_cronjob_status_last_successful_time{{{selector}}}) > {seconds})\n\
         or\n\
         ((time() - max by (namespace, cronjob) (kube_cronjob_created{{{selector}}}) > {seconds})\n\
         \x20 unless on (namespace, cronjob) kube_cronjob_status_last_successful_time{{{selector}}})"
    );
    AlertRule {
        name: BACKUP_ALERT_NAME.to_string(),
        expr,
        for_duration: "0s".to_string(),
        severity: "critical".to_string(),
        summary: format!("No successful PostgreSQL backup for more than {max_age_hours} hours"),
        description: format!(
            "CronJob {namespace}/{cronjob} has not completed successfully for more than \
             {max_age_hours} hours (or never has): the newest verified dump is getting old. \
             Check the last Job's log."
        ),
        runbook: "postgres-backup",
    }
}

fn promql_escape(value: &str) -> String {
    value.replace('\\', r"\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alert_selects_the_cronjob_and_the_threshold() {
        let rule = backup_freshness_alert("data", "postgres-backup", 26);
        assert!(rule.expr.contains(
            "kube_cronjob_status_last_successful_time{namespace=\"data\", cronjob=\"postgres-backup\"}"
        ));
        assert!(rule.expr.contains("> 93600"));
        assert_eq!(rule.severity, "critical");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(promql_escape(r#"a"b\c"#), r#"a\"b\\c"#);
    }
}
