//! kube-prometheus-stack: Prometheus, Grafana, Alertmanager with the lab's receivers and
//! routes, K3s control-plane scraping, and the P1/P2/P3 alert rules with their runbooks.

use std::collections::BTreeMap;

use homelab_spec::lab::{AlertSeverity, ReceiverKind};
use serde_json::{Value, json};

use super::Ctx;
use crate::meta::{labels, labels_map, metadata, namespace};
use crate::{
    ChartRef, Component, Endpoint, HealthCheck, HelmRelease, Layer, Runbook, SecretObject,
    SecretSource, versions,
};

pub(crate) const NS: &str = "monitoring";
const RELEASE: &str = "kube-prometheus-stack";
const RECEIVER_SECRET: &str = "alertmanager-receivers";
const SECRETS_DIR: &str = "/etc/alertmanager/secrets";
/// Basic auth in front of Prometheus and Alertmanager, with the Traefik dashboard's user: a
/// Middleware in this namespace, because Traefik resolves Secrets in the Middleware's own.
const AUTH_MIDDLEWARE: &str = "monitoring-basic-auth";

// The P1 path, end to end, within NFR5's minute (docs/adr/0081-p1-alerts-within-a-minute.md):
// a breach is seen by the second scrape after it (the P1 rules confirm a signal over two
// samples, `CONFIRM`), the P1 group evaluates every 15 s, the rules have no `for:`, and
// Alertmanager sends each P1 alone after 10 s: 30 + 15 + 0 + 10 = 55 s at worst.
/// Every target's scrape interval (the operator's default is 30 s, too slow for the P1 path).
const SCRAPE_INTERVAL: &str = "15s";
/// Every rule group but the P1 one: the chart's recording rules are the costly ones.
const EVALUATION_INTERVAL: &str = "30s";
/// The P1 group's own evaluation interval.
const P1_EVALUATION_INTERVAL: &str = "15s";
/// The window over which a P1 rule confirms its signal: two scrapes, so that one bad
/// sample never pages (`max_over_time(x[30s]) == 0` holds only when both are bad).
const CONFIRM: &str = "30s";
/// How old an object or a scrape target must be before a P1 rule looks at it: a node that
/// joins, a pod that pulls its image or a first PostgreSQL start is not an outage.
const SETTLE_SECONDS: u32 = 300;
/// Alertmanager's wait before the first notification of a P1 (each P1 is its own group).
const P1_GROUP_WAIT: &str = "10s";

/// The alerts kube-prometheus-stack 88.5.3's default rules mark `critical`. Their `for:`
/// (1 minute to 1 hour) and their SLO and prediction windows are built for minutes to hours,
/// so none can reach the phone within NFR5's minute: they are rendered as P2 (`warning`)
/// through the chart's `customRules`, and the lab's own P1 rules cover the outages they
/// stand for (TargetDown for every `…Down` of a control-plane target). The chart tier fails
/// on any critical rule of a chart that misses the budget, so a chart upgrade that adds one
/// shows up there.
const CHART_CRITICAL_ALERTS: &[&str] = &[
    "AlertmanagerClusterCrashlooping",
    "AlertmanagerClusterDown",
    "AlertmanagerClusterFailedToSendAlerts",
    "AlertmanagerConfigInconsistent",
    "AlertmanagerFailedReload",
    "AlertmanagerMembersInconsistent",
    "KubeAPIDown",
    "KubeAPIErrorBudgetBurn",
    "KubeClientCertificateExpiration",
    "KubeControllerManagerDown",
    "KubePersistentVolumeErrors",
    "KubePersistentVolumeFillingUp",
    "KubePersistentVolumeInodesFillingUp",
    "KubeProxyDown",
    "KubeSchedulerDown",
    "KubeStateMetricsListErrors",
    "KubeStateMetricsShardingMismatch",
    "KubeStateMetricsShardsMissing",
    "KubeStateMetricsWatchErrors",
    "KubeletClientCertificateExpiration",
    "KubeletDown",
    "KubeletServerCertificateExpiration",
    "NodeFileDescriptorLimit",
    "NodeFilesystemAlmostOutOfFiles",
    "NodeFilesystemAlmostOutOfSpace",
    "NodeFilesystemFilesFillingUp",
    "NodeFilesystemSpaceFillingUp",
    "NodeRAIDDegraded",
    "PrometheusBadConfig",
    "PrometheusErrorSendingAlertsToAnyAlertmanager",
    "PrometheusRemoteStorageFailures",
    "PrometheusRemoteWriteBehind",
    "PrometheusRuleFailures",
    "PrometheusTargetSyncFailure",
    "etcdDatabaseQuotaLowSpace",
    "etcdGRPCRequestsSlow",
    "etcdHighFsyncDurations",
    "etcdHighNumberOfFailedGRPCRequests",
    "etcdInsufficientMembers",
    "etcdNoLeader",
];

/// One alert rule of the lab, with the runbook that tells what to do when it fires.
pub(crate) struct Alert {
    pub name: &'static str,
    pub priority: &'static str,
    pub expr: String,
    /// The rule's `for:`; `0s` for every P1, whose expression confirms the signal itself.
    pub for_: String,
    pub summary: String,
    pub description: String,
    pub runbook: &'static str,
}

impl Alert {
    fn severity(&self) -> &'static str {
        match self.priority {
            "P1" => "critical",
            "P2" => "warning",
            _ => "info",
        }
    }
}

pub(super) fn component(ctx: &Ctx) -> Component {
    let lab = ctx.lab;
    let mon = lab
        .services
        .monitoring
        .as_ref()
        .expect("planned only when enabled");
    let mut c = Component::new("prometheus", Layer::Monitoring, Some(NS));
    c.depends_on.extend([
        "traefik".to_string(),
        "cert-manager".to_string(),
        "nfs".to_string(),
    ]);
    c.add("namespace.yaml", namespace(NS, Some("privileged")));

    let grafana = ctx.fqdn("grafana");
    let prometheus = ctx.fqdn("prometheus");
    let alertmanager = ctx.fqdn("alertmanager");
    let servers: Vec<String> = lab
        .cluster
        .servers()
        .map(|n| n.address.to_string())
        .collect();
    let all_nodes: Vec<String> = lab
        .cluster
        .nodes
        .iter()
        .map(|n| n.address.to_string())
        .collect();
    let (am_config, receiver_secrets) = alertmanager_config(ctx);
    // Prometheus and Alertmanager have no login of their own: the single sign-on when the lab
    // has one, else the dashboard's basic auth.
    let sso = super::authelia::sso(ctx).is_some();
    let guard = if sso {
        let (mw, annotation) = super::authelia::middleware(NS, "prometheus");
        c.add("sso.yaml", mw);
        annotation
    } else {
        format!("{NS}-{AUTH_MIDDLEWARE}@kubernetescrd")
    };
    let login = if sso {
        "single sign-on"
    } else {
        "dashboard login"
    };
    let ingress = |host: &str, secret: &str, auth: bool| {
        let mut annotations = crate::meta::ingress_annotations(ctx.issuer);
        if auth {
            annotations["traefik.ingress.kubernetes.io/router.middlewares"] = json!(guard);
        }
        json!({
            "enabled": true,
            "ingressClassName": "traefik",
            "annotations": annotations,
            "hosts": [host],
            "paths": ["/"],
            "tls": [{"secretName": secret, "hosts": [host]}],
        })
    };
    let mut grafana_values = json!({
        "admin": {"existingSecret": "grafana-admin", "userKey": "admin-user", "passwordKey": "admin-password"},
        "ingress": ingress(&grafana, "grafana-tls", false),
        "persistence": {"enabled": true, "storageClassName": ctx.storage_class, "size": "5Gi"},
        "sidecar": {"dashboards": {"enabled": true, "searchNamespace": "ALL"}, "datasources": {"enabled": true}},
        "grafana.ini": {"server": {"root_url": format!("https://{grafana}")}, "analytics": {"check_for_updates": false, "reporting_enabled": false}},
    });
    if lab.services.logging.is_some() {
        grafana_values["additionalDataSources"] = json!([{
            "name": "Loki",
            "type": "loki",
            "uid": "loki",
            "url": "http://loki.monitoring.svc.cluster.local:3100",
            "access": "proxy",
        }]);
    }
    let mut am_spec = json!({
        "storage": {"volumeClaimTemplate": {"spec": {
            "storageClassName": ctx.storage_class,
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
        }}},
    });
    if !receiver_secrets.is_empty() {
        am_spec["secrets"] = json!([RECEIVER_SECRET]);
    }
    let control_plane = |port: u16, https: bool| {
        let mut v = json!({
            "enabled": true,
            "endpoints": servers,
            "service": {"enabled": true, "port": port, "targetPort": port},
        });
        if https {
            v["serviceMonitor"] = json!({"https": true, "insecureSkipVerify": true});
        }
        v
    };
    let chart_rules_as_p2: serde_json::Map<String, Value> = CHART_CRITICAL_ALERTS
        .iter()
        .map(|name| (name.to_string(), json!({"severity": "warning"})))
        .collect();
    let values = json!({
        "crds": {"enabled": true},
        "defaultRules": {"create": true, "rules": {"kubeProxy": true}},
        "customRules": chart_rules_as_p2,
        "grafana": grafana_values,
        "prometheus": {
            "ingress": ingress(&prometheus, "prometheus-tls", true),
            "prometheusSpec": {
                "scrapeInterval": SCRAPE_INTERVAL,
                "evaluationInterval": EVALUATION_INTERVAL,
                "retention": mon.retention.to_string(),
                // Keep a margin below the volume so Prometheus compacts before the disk is full.
                "retentionSize": retention_size(mon.storage.bytes()),
                "ruleSelectorNilUsesHelmValues": false,
                "serviceMonitorSelectorNilUsesHelmValues": false,
                "podMonitorSelectorNilUsesHelmValues": false,
                "storageSpec": {"volumeClaimTemplate": {"spec": {
                    "storageClassName": ctx.storage_class,
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": mon.storage.to_string()}},
                }}},
            },
        },
        "alertmanager": {
            "ingress": ingress(&alertmanager, "alertmanager-tls", true),
            "config": am_config,
            "alertmanagerSpec": am_spec,
        },
        // K3s runs the control plane in one process; these endpoints are opened by the
        // bind-address and metrics settings in the K3s configuration.
        "kubeEtcd": control_plane(2381, false),
        "kubeControllerManager": control_plane(10257, true),
        "kubeScheduler": control_plane(10259, true),
        "kubeProxy": {"enabled": true, "endpoints": all_nodes, "service": {"enabled": true, "port": 10249, "targetPort": 10249}},
    });
    let pin = versions::KUBE_PROMETHEUS_STACK;
    c.releases.push(HelmRelease {
        name: RELEASE.into(),
        namespace: NS.into(),
        chart: ChartRef {
            name: pin.dep_name.into(),
            repo: pin.registry_url.into(),
            version: pin.version.into(),
        },
        create_namespace: false,
        values,
    });
    c.secret_objects.push(SecretObject {
        name: "grafana-admin".into(),
        namespace: NS.into(),
        data: BTreeMap::from([
            (
                "admin-user".to_string(),
                SecretSource::Literal("admin".into()),
            ),
            (
                "admin-password".to_string(),
                SecretSource::Secret(mon.grafana_admin_password.name().into()),
            ),
        ]),
        labels: labels_map("grafana", "grafana", "monitoring"),
    });
    ctx.need_secret(
        mon.grafana_admin_password.name(),
        crate::SecretGenerator::Password { length: 24 },
        "prometheus",
        "Grafana's `admin` password",
    );
    ctx.manual_rotation(
        mon.grafana_admin_password.name(),
        format!("Grafana reads this password only when it first creates its database: set the new value with `homelab secrets set {}`, run `homelab apply`, then `kubectl -n monitoring exec deploy/{RELEASE}-grafana -c grafana -- grafana cli admin reset-admin-password NEW`", mon.grafana_admin_password),
    );
    if !receiver_secrets.is_empty() {
        c.secret_objects.push(SecretObject {
            name: RECEIVER_SECRET.into(),
            namespace: NS.into(),
            data: receiver_secrets,
            labels: labels_map("alertmanager", "alertmanager", "monitoring"),
        });
    }

    let alerts = alerts(ctx);
    c.add(
        "custom-rules.yaml",
        prometheus_rule(&alerts, lab.alerting.runbook_base_url.as_deref()),
    );
    if !sso {
        c.add(
            "basic-auth.yaml",
            json!({
                "apiVersion": "traefik.io/v1alpha1",
                "kind": "Middleware",
                "metadata": metadata(AUTH_MIDDLEWARE, Some(NS), labels("prometheus", AUTH_MIDDLEWARE, "ingress")),
                "spec": {"basicAuth": {"secret": AUTH_MIDDLEWARE, "removeHeader": true}},
            }),
        );
        ctx.uses_secret(super::traefik::DASHBOARD_HTPASSWD, "prometheus");
        c.secret_objects.push(SecretObject {
            name: AUTH_MIDDLEWARE.into(),
            namespace: NS.into(),
            data: BTreeMap::from([(
                "users".to_string(),
                SecretSource::Secret(super::traefik::DASHBOARD_HTPASSWD.into()),
            )]),
            labels: labels_map("prometheus", AUTH_MIDDLEWARE, "ingress"),
        });
    }
    for monitor in pod_monitors(ctx) {
        c.add("monitors.yaml", monitor);
    }
    if super::gpu::planned(lab) {
        for object in super::gpu::monitoring_objects(NS) {
            c.add("gpu.yaml", object);
        }
    }
    if lab.services.openbao.is_some() {
        for object in super::openbao::monitoring_objects(NS) {
            c.add("monitors.yaml", object);
        }
    }
    for object in metallb_monitor() {
        c.add("monitors.yaml", object);
    }
    c.endpoints.push(Endpoint {
        name: "grafana".into(),
        url: format!("https://{grafana}"),
        host: grafana.clone(),
        description: "Grafana dashboards (user `admin`)".into(),
    });
    c.endpoints.push(Endpoint {
        name: "prometheus".into(),
        url: format!("https://{prometheus}"),
        host: prometheus.clone(),
        description: format!("Prometheus queries and targets ({login})"),
    });
    c.endpoints.push(Endpoint {
        name: "alertmanager".into(),
        url: format!("https://{alertmanager}"),
        host: alertmanager.clone(),
        description: format!("Alertmanager: active alerts and silences ({login})"),
    });
    c.health.push(HealthCheck::HelmChart {
        namespace: "kube-system".into(),
        name: RELEASE.into(),
    });
    c.health.push(HealthCheck::Crd {
        name: "prometheusrules.monitoring.coreos.com".into(),
    });
    c.health.push(HealthCheck::Workload {
        kind: "StatefulSet".into(),
        namespace: NS.into(),
        name: format!("prometheus-{RELEASE}-prometheus"),
    });
    c.health.push(HealthCheck::Workload {
        kind: "StatefulSet".into(),
        namespace: NS.into(),
        name: format!("alertmanager-{RELEASE}-alertmanager"),
    });
    c.health.push(HealthCheck::Workload {
        kind: "Deployment".into(),
        namespace: NS.into(),
        name: format!("{RELEASE}-grafana"),
    });
    c.health.push(HealthCheck::Workload {
        kind: "DaemonSet".into(),
        namespace: NS.into(),
        name: format!("{RELEASE}-prometheus-node-exporter"),
    });
    for (host, secret) in [
        (&grafana, "grafana-tls"),
        (&prometheus, "prometheus-tls"),
        (&alertmanager, "alertmanager-tls"),
    ] {
        c.health.push(HealthCheck::Certificate {
            namespace: NS.into(),
            name: secret.into(),
        });
        c.health.push(HealthCheck::Url {
            url: format!("https://{host}"),
            host: host.clone(),
        });
    }
    // What node-exporter sees of the etcd snapshot mount, for `status` (no SSH needed).
    if let Some(mount) = super::k3s::etcd_snapshot_mount(lab) {
        c.health.push(HealthCheck::Alert {
            namespace: NS.into(),
            service: format!("{RELEASE}-prometheus"),
            port: 9090,
            alert: super::k3s::SNAPSHOT_MOUNT_ALERT.into(),
            subject_label: "node".into(),
            healthy: format!(
                "etcd snapshot directory {} is mounted from the NAS on every server",
                mount.dir
            ),
            problem: format!(
                "etcd snapshot directory {} is not mounted from the NAS ({})",
                mount.dir,
                mount.source()
            ),
            fix: "run `homelab nodes apply` (it mounts the NAS there and says why it cannot); see docs/runbooks/cluster-backup.md".into(),
        });
    }
    let receivers: Vec<String> = lab
        .alerting
        .receivers
        .iter()
        .map(|r| {
            format!(
                "{} ({})",
                r.name,
                r.severities
                    .iter()
                    .map(|s| format!("{s:?}").to_lowercase())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
        .collect();
    c.docs = crate::ComponentDocs {
        title: "Monitoring: Prometheus, Grafana, Alertmanager".into(),
        what: format!(
            "kube-prometheus-stack: Prometheus keeps {} of metrics from every node (node-exporter), every Kubernetes object (kube-state-metrics) and the K3s control plane; Grafana shows them; Alertmanager sends P1 alerts to {}.",
            mon.retention,
            if receivers.is_empty() { "no receiver yet".to_string() } else { receivers.join(", ") }
        ),
        why: "The standard monitoring stack for Kubernetes with dashboards and alert rules maintained upstream; the lab adds its own P1/P2/P3 rules, each with a runbook.".into(),
        access: vec![
            format!("Grafana: https://{grafana} (user `admin`, password: `homelab secrets get {}`)", mon.grafana_admin_password),
            format!("Prometheus: https://{prometheus}"),
            format!("Alertmanager: https://{alertmanager}"),
        ],
        data: format!("Prometheus' TSDB on a {} NFS volume, Grafana's settings on a 5Gi volume, Alertmanager's silences on a 1Gi volume.", mon.storage),
        backup: "Metrics are not backed up (they are rebuilt by scraping); dashboards and rules are in this repository; the volumes are covered by the NAS snapshots.".into(),
        requirements: ["FR24", "FR25", "FR26", "FR27", "FR28", "FR29", "FR30", "NFR5", "NFR14", "NFR18", "NFR22"].iter().map(|s| s.to_string()).collect(),
    };
    c
}

fn retention_size(bytes: u128) -> String {
    let gib = (bytes * 85 / 100) >> 30;
    if gib >= 1 {
        format!("{gib}GB")
    } else {
        format!("{}MB", (bytes * 85 / 100) >> 20)
    }
}

/// Alertmanager's configuration and the receiver secrets it reads from files.
fn alertmanager_config(ctx: &Ctx) -> (Value, BTreeMap<String, SecretSource>) {
    let mut secrets = BTreeMap::new();
    let mut receivers = vec![json!({"name": "null"})];
    let mut routes =
        vec![json!({"matchers": ["alertname=~\"Watchdog|InfoInhibitor\""], "receiver": "null"})];
    let file = |key: &str| format!("{SECRETS_DIR}/{RECEIVER_SECRET}/{key}");
    for r in &ctx.lab.alerting.receivers {
        let receiver = match &r.kind {
            ReceiverKind::Ntfy { url, topic, token } => {
                let mut cfg = json!({
                    // ntfy formats Alertmanager's JSON itself with its built-in template.
                    "url": format!("{url}/{topic}?template=alertmanager"),
                    "send_resolved": true,
                });
                if let Some(t) = token {
                    let key = format!("{}-ntfy-token", r.name);
                    secrets.insert(key.clone(), SecretSource::Secret(t.name().into()));
                    ctx.need_secret(
                        t.name(),
                        crate::SecretGenerator::UserProvided,
                        "prometheus",
                        "ntfy access token for the alert topic",
                    );
                    cfg["http_config"] = json!({"authorization": {"type": "Bearer", "credentials_file": file(&key)}});
                }
                json!({"name": r.name, "webhook_configs": [cfg]})
            }
            ReceiverKind::Pushover { user_key, token } => {
                let uk = format!("{}-pushover-user-key", r.name);
                let tk = format!("{}-pushover-token", r.name);
                secrets.insert(uk.clone(), SecretSource::Secret(user_key.name().into()));
                secrets.insert(tk.clone(), SecretSource::Secret(token.name().into()));
                ctx.need_secret(
                    user_key.name(),
                    crate::SecretGenerator::UserProvided,
                    "prometheus",
                    "Pushover user key",
                );
                ctx.need_secret(
                    token.name(),
                    crate::SecretGenerator::UserProvided,
                    "prometheus",
                    "Pushover application token",
                );
                json!({"name": r.name, "pushover_configs": [{
                    "user_key_file": file(&uk),
                    "token_file": file(&tk),
                    "send_resolved": true,
                    "priority": "{{ if eq .CommonLabels.severity \"critical\" }}2{{ else }}0{{ end }}",
                }]})
            }
            ReceiverKind::Webhook { url } => {
                json!({"name": r.name, "webhook_configs": [{"url": url, "send_resolved": true}]})
            }
        };
        receivers.push(receiver);
        let severities: Vec<&str> = r
            .severities
            .iter()
            .map(|s| match s {
                AlertSeverity::Critical => "critical",
                AlertSeverity::Warning => "warning",
                AlertSeverity::Info => "info",
            })
            .collect();
        let (critical, others): (Vec<&str>, Vec<&str>) =
            severities.iter().partition(|s| **s == "critical");
        if !critical.is_empty() {
            // Each P1 is its own group, so it always waits `group_wait` only: an alert that
            // joins a group already notified would wait for the group's next interval.
            routes.push(json!({
                "matchers": ["severity=\"critical\""],
                "receiver": r.name,
                "group_by": ["..."],
                "group_wait": P1_GROUP_WAIT,
                "group_interval": "1m",
                // Let a second receiver get the same alert (e.g. phone and webhook).
                "continue": true,
            }));
        }
        if !others.is_empty() {
            routes.push(json!({
                "matchers": [format!("severity=~\"{}\"", others.join("|"))],
                "receiver": r.name,
                "continue": true,
            }));
        }
    }
    let config = json!({
        "global": {"resolve_timeout": "5m"},
        "route": {
            "receiver": "null",
            "group_by": ["alertname", "namespace"],
            // P2 and P3 wait for their group to fill; the P1 routes wait less (NFR5).
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
            "routes": routes,
        },
        "inhibit_rules": [{
            "source_matchers": ["severity=\"critical\""],
            "target_matchers": ["severity=~\"warning|info\""],
            "equal": ["alertname", "namespace"],
        }],
        "receivers": receivers,
    });
    (config, secrets)
}

pub(crate) fn alerts(ctx: &Ctx) -> Vec<Alert> {
    let lab = ctx.lab;
    // Only objects created before the settling time.
    let settled = |created_metric: &str, selector: &str, on: &str| {
        let selector = if selector.is_empty() {
            String::new()
        } else {
            format!("{{{selector}}}")
        };
        format!("on ({on}) ({created_metric}{selector} < time() - {SETTLE_SECONDS})")
    };
    let mut out = vec![
        Alert {
            name: "NodeDown",
            priority: "P1",
            expr: format!(
                "max_over_time(kube_node_status_condition{{condition=\"Ready\",status=\"true\"}}[{CONFIRM}]) == 0\nand {}",
                settled("kube_node_created", "", "node")
            ),
            for_: "0s".into(),
            summary: "Node {{ $labels.node }} is not Ready".into(),
            description: format!("Kubernetes has reported node {{{{ $labels.node }}}} not Ready in every scrape for {CONFIRM}; its pods will be rescheduled after the eviction timeout."),
            runbook: "node-down",
        },
        Alert {
            name: "TargetDown",
            priority: "P1",
            // A target counts as down when every scrape of the last two failed and it was
            // already discovered before the settling time (a new pod may still be starting).
            expr: format!(
                "100 * (\n  count by (job, namespace, service) ((max_over_time(up[{CONFIRM}]) == 0) and (up offset {SETTLE_SECONDS}s))\n  / count by (job, namespace, service) (up)\n) > 10"
            ),
            for_: "0s".into(),
            summary: "{{ $value | humanize }}% of {{ $labels.job }} targets in {{ $labels.namespace }} are down".into(),
            description: format!("Prometheus has failed every scrape of {{{{ $labels.job }}}}/{{{{ $labels.service }}}} for {CONFIRM}; the component may be down or unreachable."),
            runbook: "target-down",
        },
    ];
    if lab.services.postgres.is_some() {
        let sts = "namespace=\"data\",statefulset=\"postgres\"";
        out.push(Alert {
            name: "PostgresDown",
            priority: "P1",
            expr: format!(
                "(\n  max_over_time(kube_statefulset_status_replicas_ready{{{sts}}}[{CONFIRM}]) < 1\n  and {}\n)\nor\n(max_over_time(pg_up{{namespace=\"data\"}}[{CONFIRM}]) == 0 and (pg_up{{namespace=\"data\"}} offset {SETTLE_SECONDS}s))",
                settled("kube_statefulset_created", sts, "namespace, statefulset")
            ),
            for_: "0s".into(),
            summary: "PostgreSQL in data is down".into(),
            description: format!("postgres-0 has not been ready, or its exporter has not reached the server, in every scrape for {CONFIRM}; n8n and apps using PostgreSQL fail."),
            runbook: "postgres-connectivity",
        });
        let backup = homelab_backup::alerts::backup_freshness_alert("data", "postgres-backup", 26);
        out.push(Alert {
            name: "PostgresBackupMissing",
            priority: "P1",
            expr: backup.expr,
            for_: backup.for_duration,
            summary: backup.summary,
            description: backup.description,
            runbook: "postgres-backup",
        });
    }
    if lab.storage.is_some() {
        let dep = "namespace=\"infra\",deployment=~\".*nfs-subdir-external-provisioner\"";
        out.push(Alert {
            name: "NfsProvisionerDown",
            priority: "P1",
            expr: format!(
                "max_over_time(kube_deployment_status_replicas_available{{{dep}}}[{CONFIRM}]) < 1\nand {}",
                settled("kube_deployment_created", dep, "namespace, deployment")
            ),
            for_: "0s".into(),
            summary: "The NFS provisioner is down".into(),
            description: format!("The NFS provisioner has had no available replica in every scrape for {CONFIRM}: new volumes cannot be created and the NFS export may be unreachable."),
            runbook: "nfs-provisioner-down",
        });
    }
    out.extend(super::k3s::alerts(lab));
    if lab.services.openbao.is_some() {
        let ns = super::openbao::NS;
        out.push(Alert {
            name: "OpenBaoSealed",
            priority: "P1",
            expr: format!(
                "{} == 0\nand (max by (namespace, pod) (vault_core_unsealed{{namespace=\"{ns}\"}} offset {SETTLE_SECONDS}s))",
                super::openbao::unsealed_by_pod(CONFIRM)
            ),
            for_: "0s".into(),
            summary: format!("OpenBao {{{{ $labels.pod }}}} in {ns} is sealed"),
            description: format!("The server has reported itself sealed in every scrape for {CONFIRM}: it answers no secret until it is unsealed with the keys in the secrets file. A new server is left alone for its first {SETTLE_SECONDS}s, while it is initialised."),
            runbook: "openbao-sealed",
        });
    }
    if super::gpu::planned(lab) {
        out.extend(super::gpu::alerts());
    }
    out.extend([
        Alert {
            name: "PersistentVolumeClaimLost",
            priority: "P1",
            expr: format!("min_over_time(kube_persistentvolumeclaim_status_phase{{phase=\"Lost\"}}[{CONFIRM}]) == 1"),
            for_: "0s".into(),
            summary: "PVC {{ $labels.namespace }}/{{ $labels.persistentvolumeclaim }} has lost its volume".into(),
            description: "The claim's PersistentVolume is gone: the pods using it cannot start, and its data may be only on the NAS or in a backup.".into(),
            runbook: "pvc-lost",
        },
        Alert {
            name: "PersistentVolumeClaimNotBound",
            priority: "P2",
            // Pending is normal for seconds (provisioning) or until a pod is scheduled
            // (WaitForFirstConsumer); 15 minutes is not.
            expr: "kube_persistentvolumeclaim_status_phase{phase=\"Pending\"} == 1".into(),
            for_: "15m".into(),
            summary: "PVC {{ $labels.namespace }}/{{ $labels.persistentvolumeclaim }} is Pending".into(),
            description: "The claim has not been bound for 15 minutes: the NFS provisioner or the NAS may be down.".into(),
            runbook: "pvc-not-bound",
        },
        Alert {
            name: "PodCrashLooping",
            priority: "P2",
            expr: "max_over_time(kube_pod_container_status_waiting_reason{reason=\"CrashLoopBackOff\"}[5m]) >= 1".into(),
            for_: "15m".into(),
            summary: "Pod {{ $labels.namespace }}/{{ $labels.pod }} ({{ $labels.container }}) is crash-looping".into(),
            description: "The container keeps restarting; check its logs and events.".into(),
            runbook: "pod-crash-looping",
        },
        Alert {
            name: "NodeMemoryPressure",
            priority: "P2",
            expr: "kube_node_status_condition{condition=\"MemoryPressure\",status=\"true\"} == 1 or (1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes) > 0.9".into(),
            for_: "10m".into(),
            summary: "Node {{ $labels.node }}{{ $labels.instance }} is low on memory".into(),
            description: "Less than 10% of memory is available or the kubelet reports memory pressure; pods may be evicted.".into(),
            runbook: "memory-pressure",
        },
        Alert {
            name: "CertificateExpiringSoon",
            priority: "P3",
            expr: "certmanager_certificate_expiration_timestamp_seconds - time() < 14 * 24 * 3600".into(),
            for_: "1h".into(),
            summary: "Certificate {{ $labels.namespace }}/{{ $labels.name }} expires in less than 14 days".into(),
            description: "cert-manager renews 30 days before expiry, so a certificate this close to expiry failed to renew.".into(),
            runbook: "certificate-expiring",
        },
        Alert {
            name: "DiskSpaceLow",
            priority: "P3",
            expr: "node_filesystem_avail_bytes{fstype!~\"tmpfs|overlay|squashfs\"} / node_filesystem_size_bytes{fstype!~\"tmpfs|overlay|squashfs\"} < 0.15".into(),
            for_: "30m".into(),
            summary: "{{ $labels.mountpoint }} on {{ $labels.instance }} has less than 15% free".into(),
            description: "Free space is running out; etcd, images and logs need room.".into(),
            runbook: "disk-space",
        },
    ]);
    out
}

fn prometheus_rule(alerts: &[Alert], runbook_base_url: Option<&str>) -> Value {
    let mut groups = Vec::new();
    for (priority, group) in [
        ("P1", "homelab.p1-critical"),
        ("P2", "homelab.p2-warning"),
        ("P3", "homelab.p3-info"),
    ] {
        let rules: Vec<Value> = alerts
            .iter()
            .filter(|a| a.priority == priority)
            .map(|a| {
                json!({
                    "alert": a.name,
                    "expr": a.expr,
                    "for": a.for_,
                    "labels": {"severity": a.severity(), "priority": a.priority},
                    "annotations": {
                        "summary": a.summary,
                        "description": a.description,
                        "runbook_url": runbook_url(runbook_base_url, a.runbook),
                    },
                })
            })
            .collect();
        if !rules.is_empty() {
            let mut g = json!({"name": group, "rules": rules});
            if priority == "P1" {
                g["interval"] = json!(P1_EVALUATION_INTERVAL);
            }
            groups.push(g);
        }
    }
    let mut l = labels("prometheus", "homelab-alerts", "alerting");
    l["release"] = json!(RELEASE);
    json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": metadata("homelab-alerts", Some(NS), l),
        "spec": {"groups": groups},
    })
}

/// Runbooks live in the lab's repository: the link is relative to its root, or under
/// `alerting.runbookBaseUrl` when the spec says where the tree can be browsed (ADR-0003).
pub(crate) fn runbook_url(base: Option<&str>, name: &str) -> String {
    match base {
        Some(base) => format!("{base}/docs/runbooks/{name}.md"),
        None => format!("docs/runbooks/{name}.md"),
    }
}

fn pod_monitors(ctx: &Ctx) -> Vec<Value> {
    let mut out = Vec::new();
    let mut pm = |name: &str, ns: &str, selector: Value, port: &str| {
        out.push(json!({
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PodMonitor",
            "metadata": metadata(name, Some(NS), labels(name, name, "monitoring")),
            "spec": {
                "namespaceSelector": {"matchNames": [ns]},
                "selector": {"matchLabels": selector},
                "podMetricsEndpoints": [{"port": port}],
            },
        }));
    };
    pm(
        "traefik",
        "kube-system",
        json!({"app.kubernetes.io/name": "traefik"}),
        "metrics",
    );
    pm(
        "cert-manager",
        "infra",
        json!({"app.kubernetes.io/name": "cert-manager", "app.kubernetes.io/component": "controller"}),
        "http-metrics",
    );
    if ctx.lab.services.postgres.is_some() {
        pm(
            "postgres",
            "data",
            json!({"app.kubernetes.io/name": "postgres"}),
            "metrics",
        );
    }
    out
}

/// MetalLB's controller and speaker serve their metrics themselves, always over HTTPS and
/// only to a caller whose token may `get /metrics` (Prometheus's ClusterRole may), on the
/// port `metricshttps` (9120). A headless Service over both and a ServiceMonitor with
/// Prometheus's own token scrape them. They live here rather than in the chart's values:
/// the chart's monitors need the monitoring CRDs, which this component installs after
/// MetalLB, and 0.16.1's PodMonitor names a port (`monitoring`) its pods do not have
/// (docs/adr/0080-metallb-metrics-from-the-monitoring-component.md).
fn metallb_monitor() -> Vec<Value> {
    let metallb_ns = super::nfs::NS;
    let l = labels("metallb", "metallb-metrics", "monitoring");
    vec![
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata("metallb-metrics", Some(metallb_ns), l.clone()),
            "spec": {
                "clusterIP": "None",
                "selector": {"app.kubernetes.io/name": "metallb", "app.kubernetes.io/instance": "metallb"},
                "ports": [{"name": "metricshttps", "port": 9120, "targetPort": "metricshttps"}],
            },
        }),
        json!({
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "ServiceMonitor",
            "metadata": metadata("metallb", Some(NS), labels("metallb", "metallb", "monitoring")),
            "spec": {
                "namespaceSelector": {"matchNames": [metallb_ns]},
                "selector": {"matchLabels": {"app.kubernetes.io/name": "metallb", "app.kubernetes.io/instance": "metallb-metrics"}},
                "endpoints": [{
                    "port": "metricshttps",
                    "scheme": "https",
                    "bearerTokenFile": "/var/run/secrets/kubernetes.io/serviceaccount/token",
                    // The serving certificate is self-signed by MetalLB itself.
                    "tlsConfig": {"insecureSkipVerify": true},
                }],
            },
        }),
    ]
}

/// Runbooks for the alerts that no other component documents.
pub(crate) fn runbooks(ctx: &Ctx) -> Vec<Runbook> {
    let domain = ctx.domain();
    let grafana = ctx.fqdn("grafana");
    let mut out = Vec::new();
    let mut rb = |name: &str, title: &str, body: String| {
        out.push(Runbook {
            name: name.into(),
            title: title.into(),
            content: format!("# {title}\n\n{body}"),
        });
    };
    let nodes: Vec<String> = ctx
        .lab
        .cluster
        .nodes
        .iter()
        .map(|n| format!("`{}` ({})", n.name, n.address))
        .collect();
    rb(
        "node-down",
        "Runbook: NodeDown (P1)",
        format!(
            "Kubernetes has reported a node not Ready in two scrapes in a row ({CONFIRM}); the alert reaches you within a minute of that (docs/adrs/ADR-008-kube-prometheus-stack.md explains the timing). Kubernetes itself marks a node not Ready about 40-50 seconds after it stops answering. Nodes: {}.\n\nA node that joined less than {} minutes ago does not raise it: it may still be starting. For planned work (a reboot, a VM resize) add a silence in Alertmanager first.\n\n## Check\n\n1. `kubectl get nodes -o wide` and `kubectl describe node <name>` (Conditions, Events).\n2. Can you reach it? `ssh <user>@<address>`; on the host: `systemctl status k3s` (servers) or `systemctl status k3s-agent` (agents), `journalctl -u k3s -n 200`.\n3. Disk full or memory exhausted? `df -h`, `free -m`.\n\n## Fix\n\n- Host down: power it on (Proxmox UI) and wait for Ready; pods come back by themselves.\n- K3s not running: `sudo systemctl restart k3s` (or `k3s-agent`).\n- Broken beyond repair: `homelab nodes remove <name>`, rebuild the VM, `homelab nodes apply`.\n\n## Verify\n\n`homelab status` shows the node Ready and every component healthy.\n",
            nodes.join(", "),
            SETTLE_SECONDS / 60
        ),
    );
    rb(
        "target-down",
        "Runbook: TargetDown (P1)",
        format!(
            "More than 10% of a job's targets have failed two scrapes in a row ({CONFIRM}); the alert reaches you within a minute of the first failed scrape. A target discovered less than {} minutes ago does not count: its pod may still be pulling its image or starting.\n\n## Check\n\n1. https://{}/targets lists the failing targets and the scrape error.\n2. `kubectl get pods -n <namespace>`: is the component running?\n3. Control-plane targets (etcd, scheduler, controller-manager) need the K3s metrics settings in infrastructure/k3s/nodes/*.yaml: `homelab nodes apply` restores them.\n\n## Fix\n\nRestart or repair the component the target belongs to; see its README in this repository.\n",
            SETTLE_SECONDS / 60,
            ctx.fqdn("prometheus")
        ),
    );
    rb(
        "pvc-lost",
        "Runbook: PersistentVolumeClaimLost (P1)",
        format!(
            "A claim has been `Lost` in two scrapes in a row ({CONFIRM}): the PersistentVolume it was bound to no longer exists, so the pods using it cannot start.\n\n## Check\n\n1. `kubectl get pvc -A | grep Lost` and `kubectl describe pvc -n <namespace> <claim>`.\n2. `kubectl get pv`: was the volume deleted, or is it `Released`/`Failed`?\n3. With the NFS provisioner, the data lives in a directory named after the claim on the export (`<namespace>-<claim>-<volume>`); it is deleted with the volume (`archiveOnDelete: false`).\n\n## Fix\n\n- Volume object deleted, directory still on the NAS: recreate a PersistentVolume pointing at it (see nfs-restore) and bind the claim to it.\n- Directory gone: restore it from a NAS snapshot (docs/runbooks/nfs-restore.md) or, for PostgreSQL, from the nightly dump (postgres-restore).\n"
        ),
    );
    rb("pvc-not-bound", "Runbook: PersistentVolumeClaimNotBound (P2)", "A claim has been Pending for 15 minutes.\n\n## Check\n\n1. `kubectl describe pvc -n <namespace> <claim>`: the Events say why.\n2. `kubectl logs -n infra deploy/nfs-provisioner-nfs-subdir-external-provisioner`.\n3. Is the NAS reachable from a node? `showmount -e <nfs server>` on a node.\n\n## Fix\n\nBring the NAS or the provisioner back (see nfs-provisioner-down); the claim binds by itself.\n".into());
    rb("nfs-provisioner-down", "Runbook: NfsProvisionerDown (P1)", "The NFS provisioner has had no available replica in two scrapes in a row (30 s; the alert reaches you within a minute): new volumes cannot be created, and existing NFS mounts may hang.\n\n## Check\n\n1. `kubectl -n infra get pods -l app=nfs-subdir-external-provisioner` and `kubectl -n infra describe pod <pod>`.\n2. A mount error in the events means the NAS export is unreachable: check the NAS (DSM), its NFS permissions for the node addresses, and the network.\n\n## Fix\n\n- NAS down or in a firmware update: wait for it; pods resume when NFS returns (NFR4).\n- Export permissions changed: allow the node subnet again in the NAS's NFS rules.\n- Provisioner crash: `kubectl -n infra rollout restart deploy/nfs-provisioner-nfs-subdir-external-provisioner`.\n\nData recovery from NAS snapshots: docs/runbooks/nfs-restore.md.\n".into());
    rb(
        "pod-crash-looping",
        "Runbook: PodCrashLooping (P2)",
        format!(
            "A container has been restarting for 15 minutes.\n\n## Check\n\n1. `kubectl -n <namespace> describe pod <pod>`: last state, exit code, events (OOMKilled means raise the memory limit).\n2. `kubectl -n <namespace> logs <pod> -c <container> --previous`.\n3. Logs across restarts: Grafana Explore with Loki at https://{grafana}.\n\n## Fix\n\nCorrect the configuration in homelab.yaml or the secret it reads (`homelab secrets list`), then `homelab apply`.\n"
        ),
    );
    rb("memory-pressure", "Runbook: NodeMemoryPressure (P2)", "A node has less than 10% memory available or reports MemoryPressure.\n\n## Check\n\n1. `kubectl top nodes` and `kubectl top pods -A --sort-by=memory`.\n2. Grafana dashboard \"Node Exporter / Nodes\".\n\n## Fix\n\nLower the heavy workload's limits, move it with a node label, or give the VM more memory in Proxmox (then `homelab nodes apply`).\n".into());
    rb(
        "certificate-expiring",
        "Runbook: CertificateExpiringSoon (P3)",
        format!(
            "A certificate expires in less than 14 days, so its renewal (due at 30 days) failed.\n\n## Check\n\n1. `kubectl get certificates -A` and `kubectl describe certificate -n <namespace> <name>`.\n2. `kubectl get challenges -A`: a pending DNS-01 challenge usually means the DNS provider token is wrong or expired.\n3. `kubectl -n infra logs deploy/cert-manager`.\n\n## Fix\n\nRenew the DNS token (`homelab secrets set <name>`, `homelab apply`) and delete the failed CertificateRequest to retry. Hosts under {domain} must resolve publicly for HTTP-01 only.\n"
        ),
    );
    rb("disk-space", "Runbook: DiskSpaceLow (P3)", "A filesystem on a node has less than 15% free.\n\n## Check\n\n`df -h` on the node; `sudo du -xh --max-depth=2 /var/lib/rancher | sort -h | tail`.\n\n## Fix\n\n- Unused images: `sudo k3s crictl rmi --prune`.\n- Old etcd snapshots: `homelab etcd snapshot prune`.\n- Logs: `sudo journalctl --vacuum-time=7d`.\n- Otherwise grow the VM disk in Proxmox.\n".into());
    if super::gpu::planned(ctx.lab) {
        out.push(super::gpu::runbook(ctx));
    }
    if ctx.lab.services.openbao.is_some() {
        out.push(super::openbao::runbook(ctx));
    }
    out
}
