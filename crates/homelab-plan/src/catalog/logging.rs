//! Loki (single binary, filesystem, retention with the compactor) and Alloy shipping every
//! pod's logs to it.

use serde_json::json;

use super::Ctx;
use super::monitoring::NS;
use crate::meta::namespace;
use crate::{ChartRef, Component, HealthCheck, HelmRelease, Layer, versions};

pub(super) fn component(ctx: &Ctx) -> Component {
    let logging = ctx
        .lab
        .services
        .logging
        .as_ref()
        .expect("planned only when enabled");
    let mut c = Component::new("loki", Layer::Monitoring, Some(NS));
    c.depends_on
        .extend(["nfs".to_string(), "prometheus".to_string()]);
    c.add("namespace.yaml", namespace(NS, Some("privileged")));
    let retention = logging.retention.as_hours();
    let loki = versions::LOKI;
    c.releases.push(HelmRelease {
        name: "loki".into(),
        namespace: NS.into(),
        chart: ChartRef { name: loki.dep_name.into(), repo: loki.registry_url.into(), version: loki.version.into() },
        create_namespace: false,
        values: json!({
            "deploymentMode": "SingleBinary",
            "loki": {
                "auth_enabled": false,
                "commonConfig": {"replication_factor": 1},
                "storage": {"type": "filesystem"},
                "schemaConfig": {"configs": [{
                    "from": "2024-04-01",
                    "store": "tsdb",
                    "object_store": "filesystem",
                    "schema": "v13",
                    "index": {"prefix": "loki_index_", "period": "24h"},
                }]},
                "limits_config": {"retention_period": retention},
                // Retention only deletes with the compactor on, and since Loki 3 it also
                // needs a store for delete requests.
                "compactor": {
                    "retention_enabled": true,
                    "delete_request_store": "filesystem",
                    "working_directory": "/var/loki/compactor",
                },
            },
            "singleBinary": {
                "replicas": 1,
                "persistence": {"enabled": true, "size": logging.storage.to_string(), "storageClass": ctx.storage_class},
            },
            "read": {"replicas": 0},
            "write": {"replicas": 0},
            "backend": {"replicas": 0},
            "gateway": {"enabled": false},
            "chunksCache": {"enabled": false},
            "resultsCache": {"enabled": false},
            "lokiCanary": {"enabled": false},
            "test": {"enabled": false},
            "minio": {"enabled": false},
        }),
    });
    let alloy = versions::ALLOY;
    c.releases.push(HelmRelease {
        name: "alloy".into(),
        namespace: NS.into(),
        chart: ChartRef {
            name: alloy.dep_name.into(),
            repo: alloy.registry_url.into(),
            version: alloy.version.into(),
        },
        create_namespace: false,
        values: json!({
            // One replica reading logs through the API is enough for a small lab and needs no
            // host paths; Promtail, the old agent, is end of life.
            "controller": {"type": "deployment", "replicas": 1},
            "alloy": {"configMap": {"create": true, "content": ALLOY_CONFIG}},
        }),
    });
    c.health.push(HealthCheck::HelmChart {
        namespace: "kube-system".into(),
        name: "loki".into(),
    });
    c.health.push(HealthCheck::HelmChart {
        namespace: "kube-system".into(),
        name: "alloy".into(),
    });
    c.health.push(HealthCheck::Workload {
        kind: "StatefulSet".into(),
        namespace: NS.into(),
        name: "loki".into(),
    });
    c.health.push(HealthCheck::Workload {
        kind: "Deployment".into(),
        namespace: NS.into(),
        name: "alloy".into(),
    });
    c.health.push(HealthCheck::Pvc {
        namespace: NS.into(),
        name: "storage-loki-0".into(),
    });
    c.docs = crate::ComponentDocs {
        title: "Logging: Loki and Alloy".into(),
        what: format!("Alloy reads every pod's log through the Kubernetes API and pushes it to Loki, which keeps {} ({retention}); search them in Grafana (Explore, data source Loki).", logging.retention),
        why: "Loki indexes only labels, so a week of logs fits a small NFS volume; Alloy is Grafana's supported agent now that Promtail is end of life.".into(),
        access: vec![
            format!("Grafana Explore at https://{} with the Loki data source", ctx.fqdn("grafana")),
            "In the cluster: http://loki.monitoring.svc.cluster.local:3100".into(),
        ],
        data: format!("Chunks and index on a {} NFS volume (PVC storage-loki-0); the compactor deletes what is older than {}.", logging.storage, logging.retention),
        backup: "Logs are not backed up; the NAS snapshots cover the volume.".into(),
        requirements: vec!["FR13".into(), "NFR19".into()],
    };
    c
}

const ALLOY_CONFIG: &str = r#"discovery.kubernetes "pods" {
  role = "pod"
}

discovery.relabel "pods" {
  targets = discovery.kubernetes.pods.targets
  rule {
    source_labels = ["__meta_kubernetes_namespace"]
    target_label  = "namespace"
  }
  rule {
    source_labels = ["__meta_kubernetes_pod_name"]
    target_label  = "pod"
  }
  rule {
    source_labels = ["__meta_kubernetes_pod_container_name"]
    target_label  = "container"
  }
  rule {
    source_labels = ["__meta_kubernetes_pod_label_app_kubernetes_io_name"]
    target_label  = "app"
  }
  rule {
    source_labels = ["__meta_kubernetes_pod_node_name"]
    target_label  = "node"
  }
}

loki.source.kubernetes "pods" {
  targets    = discovery.relabel.pods.output
  forward_to = [loki.write.default.receiver]
}

loki.write "default" {
  endpoint {
    url = "http://loki.monitoring.svc.cluster.local:3100/loki/api/v1/push"
  }
}
"#;
