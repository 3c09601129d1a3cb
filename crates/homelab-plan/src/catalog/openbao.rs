//! OpenBao from its official chart: one server on integrated (raft) storage, its UI and API
//! behind the lab's TLS, a declarative file audit device whose log a sidecar hands to the
//! lab's log shipper and another rotates, and what the monitoring component adds for it
//! (monitor, P1 alert, runbook). No operator calls here: initialising and unsealing belong to
//! homelab-ops.

use serde_json::{Value, json};

use super::Ctx;
use crate::meta::{labels, metadata, namespace};
use crate::{ChartRef, Component, Endpoint, HealthCheck, HelmRelease, Layer, Runbook, versions};

pub(crate) const NS: &str = "openbao";
const RELEASE: &str = "openbao";
const API_PORT: u16 = 8200;
/// Where the chart mounts the audit volume (`server.auditStorage`).
const AUDIT_DIR: &str = "/openbao/audit";
const AUDIT_FILE: &str = "/openbao/audit/audit.log";

/// The server's configuration. Metrics are unauthenticated because a sealed server has no
/// token to check and the sealed state is exactly what the alert needs to see; the audit
/// device is declarative because OpenBao refuses to enable one through the API.
fn server_config() -> String {
    format!(
        r#"ui = true

listener "tcp" {{
  tls_disable = 1
  address = "[::]:{API_PORT}"
  cluster_address = "[::]:8201"
  telemetry {{
    unauthenticated_metrics_access = true
  }}
}}

storage "raft" {{
  path = "/openbao/data"
}}

telemetry {{
  prometheus_retention_time = "30s"
  disable_hostname = true
}}

audit "file" "file" {{
  description = "every request and response, HMAC-hashed; shipped to Loki"
  options {{
    file_path = "{AUDIT_FILE}"
  }}
}}
"#
    )
}

/// The sidecar that follows the audit file on its stdout, where the log shipper reads every
/// container's output. It starts at the end of the file: after a restart of the pod, records
/// already shipped are not sent again.
fn audit_shipper() -> Value {
    json!({
        "name": "audit-log",
        "image": versions::BUSYBOX.image(),
        "command": ["sh", "-c", format!("touch {AUDIT_FILE} 2>/dev/null; exec tail -n 0 -F {AUDIT_FILE}")],
        "volumeMounts": [{"name": "audit", "mountPath": AUDIT_DIR, "readOnly": true}],
        "securityContext": {
            "runAsNonRoot": true,
            "runAsUser": 100,
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "resources": {"requests": {"cpu": "5m", "memory": "8Mi"}, "limits": {"memory": "32Mi"}},
    })
}

/// Rotated audit files kept beside the live one.
const AUDIT_KEEP: u32 = 5;
/// How often the rotation looks at the file's size, in seconds.
const ROTATE_EVERY_SECONDS: u32 = 60;

/// The rotation's script: once the audit file reaches `max_bytes` it is renamed to
/// `audit.log.1` (older ones shift up, the oldest beyond [`AUDIT_KEEP`] is dropped) and the
/// server gets SIGHUP, on which the file audit device reopens its path. The sidecar that ships
/// the file follows it by name (`tail -F`), so it moves on to the new file.
pub(crate) fn audit_rotate_script(max_bytes: u128) -> String {
    format!(
        r#"f={AUDIT_FILE}
max={max_bytes}
keep={AUDIT_KEEP}
while :; do
  size=$(($(wc -c 2>/dev/null < "$f" || echo 0)))
  if [ "$size" -ge "$max" ]; then
    i=$keep
    while [ "$i" -gt 1 ]; do
      if [ -f "$f.$((i - 1))" ]; then mv "$f.$((i - 1))" "$f.$i"; fi
      i=$((i - 1))
    done
    mv "$f" "$f.1"
    pid=$(pidof bao)
    if [ -n "$pid" ]; then
      kill -HUP $pid && echo "audit-rotate: rotated $f at $size bytes; signalled bao ($pid)"
    else
      echo "audit-rotate: rotated $f at $size bytes, but no bao process to signal: it writes to $f.1 until it restarts" >&2
    fi
  fi
  sleep {ROTATE_EVERY_SECONDS}
done
"#
    )
}

/// The sidecar that keeps the audit volume from filling: the file is rotated at a tenth of
/// the volume, so the live file and the kept ones stay within about 60 % of it. It runs as the
/// server's user, which with the pod's shared process namespace may signal it.
fn audit_rotator(audit_storage_bytes: u128) -> Value {
    json!({
        "name": "audit-rotate",
        "image": versions::BUSYBOX.image(),
        "command": ["sh", "-c", audit_rotate_script(audit_storage_bytes / 10)],
        "volumeMounts": [{"name": "audit", "mountPath": AUDIT_DIR}],
        "securityContext": {
            "runAsNonRoot": true,
            "runAsUser": 100,
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "resources": {"requests": {"cpu": "5m", "memory": "8Mi"}, "limits": {"memory": "32Mi"}},
    })
}

/// An OpenBao ACL policy for one reader of the lab's server, as the server stores it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OpenBaoPolicy {
    /// The policy's name on the server.
    pub name: String,
    /// Who gets a token with it.
    pub used_by: String,
    /// The policy document (HCL).
    pub hcl: String,
}

/// The policies of the lab's readers of OpenBao: with `secrets.vault`, whoever writes the
/// secrets files (`homelab secrets`, the Flux flavor's render) may encrypt and decrypt with
/// its transit key, and Flux's kustomize-controller (the `sops-hcvault` token) may only
/// decrypt. No other component reads OpenBao yet; every other path is denied by omission.
pub fn policies(lab: &homelab_spec::Lab) -> Vec<OpenBaoPolicy> {
    let (Some(_), Some(v)) = (&lab.services.openbao, &lab.secrets.vault) else {
        return Vec::new();
    };
    let rule = |op: &str, why: &str| {
        format!(
            "# {why}\npath \"{}/{op}/{}\" {{\n  capabilities = [\"update\"]\n}}\n",
            v.transit_path, v.key
        )
    };
    vec![
        OpenBaoPolicy {
            name: "homelab-sops".into(),
            used_by: "homelab secrets and render (encrypting the secrets files)".into(),
            hcl: format!(
                "{}\n{}",
                rule("encrypt", "Wrap a new data key of a secrets file."),
                rule("decrypt", "Open a secrets file.")
            ),
        },
        OpenBaoPolicy {
            name: "flux-sops-decrypt".into(),
            used_by: "Flux kustomize-controller (the sops-hcvault token)".into(),
            hcl: rule("decrypt", "Decrypt the rendered Secrets; nothing else."),
        },
    ]
}

pub(super) fn component(ctx: &Ctx) -> Component {
    let o = ctx
        .lab
        .services
        .openbao
        .as_ref()
        .expect("planned only when enabled");
    let host = ctx.fqdn(&o.host);
    let mut c = Component::new("openbao", Layer::Applications, Some(NS));
    c.depends_on.push("traefik".to_string());
    c.add("namespace.yaml", namespace(NS, Some("baseline")));
    let pin = versions::OPENBAO;
    let mut ingress = crate::meta::chart_ingress(&host, "openbao-tls", ctx.issuer);
    // This chart names the class `ingressClassName` and takes paths as plain strings.
    ingress["ingressClassName"] = ingress["className"].take();
    ingress.as_object_mut().expect("object").remove("className");
    ingress["hosts"] = json!([{"host": host, "paths": []}]);
    c.releases.push(HelmRelease {
        name: RELEASE.into(),
        namespace: NS.into(),
        chart: ChartRef {
            name: pin.dep_name.into(),
            repo: pin.registry_url.into(),
            version: pin.version.into(),
        },
        create_namespace: false,
        values: json!({
            "injector": {"enabled": false},
            "server": {
                "standalone": {"enabled": true, "config": server_config()},
                "dataStorage": {"enabled": true, "size": o.storage.to_string(), "storageClass": ctx.storage_class},
                "auditStorage": {"enabled": true, "size": o.audit_storage.to_string(), "storageClass": ctx.storage_class},
                "ingress": ingress,
                "extraContainers": [audit_shipper(), audit_rotator(o.audit_storage.bytes())],
                // The rotation signals the server after renaming its audit file.
                "shareProcessNamespace": true,
                "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
            },
        }),
    });
    // For review beside the tree; `homelab secrets openbao-init` writes them to the server.
    for p in policies(ctx.lab) {
        c.files.push(crate::PlainFile {
            path: format!("policies/{}.hcl", p.name),
            content: format!(
                "# OpenBao policy `{}`, for {}.\n{}",
                p.name, p.used_by, p.hcl
            ),
            mode: 0o644,
        });
    }
    c.endpoints.push(Endpoint {
        name: "openbao".into(),
        url: format!("https://{host}"),
        host: host.clone(),
        description: "OpenBao API and UI".into(),
    });
    c.health.push(HealthCheck::HelmChart {
        namespace: "kube-system".into(),
        name: RELEASE.into(),
    });
    c.health.push(HealthCheck::Certificate {
        namespace: NS.into(),
        name: "openbao-tls".into(),
    });
    c.docs = crate::ComponentDocs {
        title: "OpenBao".into(),
        what: format!("A secrets server (OpenBao) on integrated storage in a {} volume; every request is recorded by the audit device in {AUDIT_FILE} (a {} volume) and follows the pod logs to Loki; the file is rotated at a tenth of that volume, keeping {AUDIT_KEEP} older files.", o.storage, o.audit_storage),
        why: "Secrets with policies, short-lived tokens, revocation and an audit trail of who read what, for labs that want more than SOPS files in git.".into(),
        access: vec![
            format!("https://{host} (UI and API; `BAO_ADDR=https://{host}`)"),
            "`homelab secrets openbao-init` initialises it once, its unseal keys and root token straight into the encrypted secrets file (`openbao-unseal-key-N`, `openbao-root-token`), never on a terminal; run again after a restart, it unseals it from them".into(),
        ],
        data: format!("The raft data in the PVC `data-openbao-0` and the audit log in `audit-openbao-0` (namespace `{NS}`); the unseal keys and root token as `openbao-unseal-key-N` and `openbao-root-token` in the secrets file."),
        backup: "Snapshots of the raft storage (`bao operator raft snapshot save`); without the unseal keys in the secrets file a snapshot cannot be opened, so keep that file backed up too.".into(),
        requirements: vec![],
    };
    c
}

/// What the monitoring component carries for OpenBao: its metrics, which a sealed server
/// serves too.
pub(crate) fn monitoring_objects(monitoring_ns: &str) -> Vec<Value> {
    vec![json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": metadata(RELEASE, Some(monitoring_ns), labels(RELEASE, RELEASE, "monitoring")),
        "spec": {
            "namespaceSelector": {"matchNames": [NS]},
            "selector": {
                "matchLabels": {"app.kubernetes.io/name": RELEASE, "app.kubernetes.io/instance": RELEASE},
                // The headless Service selects the same pod; one Service keeps one target.
                "matchExpressions": [{"key": "openbao-internal", "operator": "DoesNotExist"}],
            },
            "endpoints": [{
                "port": "http",
                "path": "/v1/sys/metrics",
                "params": {"format": ["prometheus"]},
            }],
        },
    })]
}

/// The alert's series: one per server pod. The maximum per pod hides the series a server
/// keeps for a while under its previous cluster name.
pub(crate) fn unsealed_by_pod(range: &str) -> String {
    format!(
        "max by (namespace, pod) (max_over_time(vault_core_unsealed{{namespace=\"{NS}\"}}[{range}]))"
    )
}

pub(crate) fn runbook(ctx: &Ctx) -> Runbook {
    let title = "Runbook: OpenBaoSealed (P1)";
    let host = ctx
        .lab
        .services
        .openbao
        .as_ref()
        .map_or_else(|| ctx.fqdn("bao"), |o| ctx.fqdn(&o.host));
    Runbook {
        name: "openbao-sealed".into(),
        title: title.into(),
        content: format!(
            "# {title}\n\nOpenBao is sealed: it holds its data but cannot read it and answers no secret until enough unseal keys are given. Every restart of the pod (node reboot, upgrade, eviction) seals it. Its keys are `openbao-unseal-key-1`, `-2`, ... in the secrets file, its root token `openbao-root-token`.\n\n## After a restart\n\n1. `kubectl -n {NS} get pod openbao-0`: running but not ready while sealed; `BAO_ADDR=https://{host} bao status` shows `Sealed true` and how many keys it needs.\n2. For each key up to that threshold: `homelab secrets get openbao-unseal-key-1 | BAO_ADDR=https://{host} bao operator unseal -` (the key goes through the pipe, never onto the screen or into the shell history).\n3. `bao status` shows `Sealed false`; the alert clears at the next scrape.\n\nSteps 2 and 3 in one: `homelab secrets openbao-init` unseals it with the stored keys (it initialises nothing on a server that already is).\n\n## A lost key\n\n- Keys missing from the secrets file: restore the file from git history (`git log -p -- secrets.sops.yaml`), then unseal as above.\n- Fewer keys left than the threshold: nobody can decrypt the data any more, not even with a raft snapshot. Delete the StatefulSet's PVC `data-openbao-0` (namespace `{NS}`), remove the `openbao-*` values from the secrets file, let the pod start empty, initialise it again (new keys into the secrets file) and re-create the secrets from their sources.\n- A key leaked: unseal, run `bao operator rekey` with the current keys, store each new key with `homelab secrets set openbao-unseal-key-N` and remove keys beyond the new share count.\n\nThe audit log in Loki (`{{namespace=\"{NS}\", container=\"audit-log\"}}`) shows what was called before the seal.\n"
        ),
    }
}
