//! The tree's documentation, written from the plan: a README per component (NFR26) and for
//! the lab, the lab's architecture decisions, runbooks and a Mermaid diagram. Pure text.

use std::fmt::Write as _;

use homelab_plan::{Component, HealthCheck, HelmRelease, PlainFile, Plan, SecretObject};
use serde_json::Value;

use crate::flux::{
    FLUX_NAMESPACE, SOPS_AGE_SECRET, SOPS_VAULT_SECRET, SOPS_VAULT_TOKEN_KEY, needs_own_crds,
};
use crate::k3s::HELM_NAMESPACE;
use crate::secrets::kubectl_commands;
use crate::secrets::{SOPS_KEY_ENV, shell_word, sops_extract};
use crate::{Flavor, Surroundings};

/// One line of a component README's file table.
pub(crate) struct FileNote {
    file: String,
    what: String,
}

impl FileNote {
    pub(crate) fn objects(file: &str, objects: &[&Value]) -> Self {
        let what: Vec<String> = objects
            .iter()
            .map(|o| {
                format!(
                    "{} `{}`",
                    o["kind"].as_str().unwrap_or_default(),
                    o["metadata"]["name"].as_str().unwrap_or_default()
                )
            })
            .collect();
        FileNote {
            file: file.into(),
            what: what.join(", "),
        }
    }

    pub(crate) fn values(file: &str, r: &HelmRelease) -> Self {
        FileNote {
            file: file.into(),
            what: format!("Helm values of the release `{}`", r.name),
        }
    }

    pub(crate) fn releases(file: &str, kind: &str, c: &Component) -> Self {
        let what: Vec<String> = c
            .releases
            .iter()
            .map(|r| {
                format!(
                    "{kind} `{}` (chart `{}` {})",
                    r.name, r.chart.name, r.chart.version
                )
            })
            .collect();
        FileNote {
            file: file.into(),
            what: what.join(", "),
        }
    }

    pub(crate) fn secret(file: &str, s: &SecretObject) -> Self {
        FileNote {
            file: file.into(),
            what: format!(
                "Secret `{}`, SOPS-encrypted (keys {})",
                s.name,
                s.data
                    .keys()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    pub(crate) fn plain(c: &Component, f: &PlainFile) -> Self {
        let what = if let Some(node) = f
            .path
            .strip_prefix("nodes/")
            .and_then(|n| n.strip_suffix(".yaml"))
        {
            format!(
                "K3s configuration of node `{node}`: `/etc/rancher/k3s/config.yaml` on that node (`homelab nodes apply` writes it)"
            )
        } else if f.path.starts_with("backup/") {
            "backup script, run by the CronJob from the ConfigMap that carries the same text"
                .to_string()
        } else if f.path.ends_with("Dockerfile") {
            "build file of the dev-container base image".to_string()
        } else if f.path.starts_with("base-image/") {
            "part of the dev-container base image's build context".to_string()
        } else if f.path == "values-homelab.yaml" && c.releases.is_empty() {
            "Helm values the HelmChartConfig gives the chart K3s bundles".to_string()
        } else {
            "file of the component".to_string()
        };
        FileNote {
            file: f.path.clone(),
            what,
        }
    }
}

fn health_line(h: &HealthCheck) -> String {
    match h {
        HealthCheck::HelmChart { namespace, name } => {
            format!("Helm release `{name}` installed (HelmChart in `{namespace}`)")
        }
        HealthCheck::Workload {
            kind,
            namespace,
            name,
        } => format!("{kind} `{namespace}/{name}` ready"),
        HealthCheck::Pvc { namespace, name } => {
            format!("PersistentVolumeClaim `{namespace}/{name}` bound")
        }
        HealthCheck::LoadBalancer {
            namespace,
            name,
            expected_ip,
        } => match expected_ip {
            Some(ip) => format!("Service `{namespace}/{name}` has the address {ip}"),
            None => format!("Service `{namespace}/{name}` has an external address"),
        },
        HealthCheck::Certificate { namespace, name } => {
            format!("Certificate `{namespace}/{name}` ready and not about to expire")
        }
        HealthCheck::Url { url, .. } => format!("{url} answers over valid HTTPS"),
        HealthCheck::Backup {
            namespace,
            cronjob,
            max_age_hours,
        } => format!(
            "CronJob `{namespace}/{cronjob}` succeeded within the last {max_age_hours} hours"
        ),
        HealthCheck::Crd { name } => format!("CRD `{name}` established"),
        HealthCheck::Alert { alert, healthy, .. } => {
            format!("{healthy} (Prometheus' alert {alert} is not firing)")
        }
        HealthCheck::CaSecret { namespace, name } => {
            format!(
                "root CA in Secret `{namespace}/{name}` readable and not within 90 days of its end"
            )
        }
    }
}

/// The README of one component directory.
pub(crate) fn component_readme(
    plan: &Plan,
    c: &Component,
    flavor: Flavor,
    notes: &[FileNote],
    around: &Surroundings,
) -> String {
    let d = &c.docs;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# {}\n",
        if d.title.is_empty() {
            &c.name
        } else {
            &d.title
        }
    );
    let _ = writeln!(o, "{}\n", d.what);
    if let Some(ns) = &c.namespace {
        let _ = writeln!(o, "Namespace: `{ns}`. Layer: `{}`.\n", c.layer.dir());
    }
    let _ = writeln!(o, "## Why this\n\n{}\n", d.why);
    if !d.access.is_empty() {
        let _ = writeln!(o, "## How to reach it\n");
        for a in &d.access {
            let _ = writeln!(o, "- {a}");
        }
        o.push('\n');
    }
    let _ = writeln!(o, "## Where its data lives\n\n{}\n", d.data);
    let _ = writeln!(o, "## Backup and restore\n\n{}\n", d.backup);
    for b in &c.backups {
        let _ = writeln!(
            o,
            "- CronJob `{}/{}` at `{}` (UTC): {}; keeps {}; to {}.",
            b.namespace, b.cronjob, b.schedule, b.what, b.keep, b.target
        );
    }
    if !c.backups.is_empty() {
        o.push('\n');
    }
    if !c.releases.is_empty() {
        let _ = writeln!(
            o,
            "## Helm releases\n\n| release | namespace | chart | version | repository |\n|---|---|---|---|---|"
        );
        for r in &c.releases {
            let _ = writeln!(
                o,
                "| `{}` | `{}` | `{}` | {} | {} |",
                r.name, r.namespace, r.chart.name, r.chart.version, r.chart.repo
            );
        }
        o.push('\n');
        match flavor {
            Flavor::K3s => {
                let _ = writeln!(
                    o,
                    "K3s' helm-controller installs each release from `helmchart.yaml` (HelmChart in `{HELM_NAMESPACE}`) with the values of `values-homelab*.yaml`; `kubectl -n {HELM_NAMESPACE} logs job/helm-install-<release>` shows how the install went.\n"
                );
            }
            Flavor::Flux => {
                let _ = writeln!(
                    o,
                    "Flux installs each release from `helmrelease.yaml` with the chart source in `helmrepository.yaml` (`ocirepository.yaml` for a chart from an OCI registry); `flux get helmreleases -A` shows their state.\n"
                );
            }
        }
    }
    if !c.overrides.is_empty() {
        let _ = writeln!(
            o,
            "## Changed by homelab.yaml\n\nThe spec's `helm:` settings change what the catalog generates for this component:\n"
        );
        for ov in &c.overrides {
            if ov.version != ov.pinned_version {
                let _ = writeln!(
                    o,
                    "- `{}`: chart version {} instead of the pinned {}",
                    ov.release, ov.version, ov.pinned_version
                );
            }
            for ch in &ov.changes {
                let _ = writeln!(o, "- `{}`: `{}`", ov.release, ch.describe());
            }
        }
        o.push('\n');
    }
    if !c.secret_objects.is_empty() {
        let _ = writeln!(o, "## Secrets\n");
        match flavor {
            Flavor::K3s => {
                let _ = writeln!(
                    o,
                    "No secret value is in this repository. `homelab apply` creates these Secrets from the encrypted secrets file (`{}`, next to `homelab.yaml`). Without this tool, run from the root of this tree (needs `kubectl` and the `sops` CLI; `SOPS_AGE_KEY_FILE` names your age key, change it when yours is elsewhere):\n",
                    around.secrets_file
                );
                let _ = writeln!(o, "```sh");
                if let Some(ns) = c.secret_objects.first().map(|s| s.namespace.as_str()) {
                    o.push_str(&namespace_command(ns));
                }
                for s in &c.secret_objects {
                    o.push_str(&secret_commands(plan, s, &around.secrets_file));
                }
                let _ = writeln!(o, "```\n");
            }
            Flavor::Flux => {
                let _ = writeln!(
                    o,
                    "Each Secret is in `secret-<name>.sops.yaml`, SOPS-encrypted with `encrypted_regex: ^(data|stringData)$` (names and labels stay readable); Flux decrypts them with {}. Change a value with `homelab secrets set` and render again.\n",
                    flux_decryption(plan)
                );
                for s in &c.secret_objects {
                    let reads: Vec<String> =
                        s.data.values().flat_map(|v| v.secret_names()).collect();
                    let _ = writeln!(
                        o,
                        "- `{}/{}`: {}{}",
                        s.namespace,
                        s.name,
                        s.data
                            .keys()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", "),
                        if plan.may_leave_out(&reads) {
                            " (optional: not written while its secret has no value)"
                        } else {
                            ""
                        }
                    );
                }
                o.push('\n');
            }
        }
    }
    if !notes.is_empty() {
        let _ = writeln!(o, "## Files\n\n| file | what |\n|---|---|");
        for n in notes {
            let _ = writeln!(o, "| `{}` | {} |", n.file, n.what);
        }
        let _ = writeln!(o, "| `README.md` | this page |\n");
    }
    let _ = writeln!(o, "## Apply\n");
    let has_resources = !c.objects.is_empty()
        || !c.releases.is_empty()
        || (flavor == Flavor::Flux && !c.secret_objects.is_empty());
    if !has_resources {
        let _ = writeln!(
            o,
            "Nothing here is applied to the cluster: `homelab nodes apply` puts these files on the hosts.\n"
        );
    } else {
        match flavor {
            Flavor::K3s => {
                let _ = writeln!(
                    o,
                    "`homelab apply` applies the whole lab in order and waits. This directory alone, once what it depends on is ready:\n\n```sh\n{}```\n",
                    apply_commands(c)
                );
            }
            Flavor::Flux => {
                let _ = writeln!(
                    o,
                    "The Flux Kustomization `{}` in `clusters/{}/components.yaml` applies this directory{}.\n",
                    c.name,
                    plan.lab_name,
                    if c.objects.iter().any(|ob| needs_own_crds(c, ob)) {
                        format!(
                            "; `{}-config` applies `config/` once the chart's CRDs exist",
                            c.name
                        )
                    } else {
                        String::new()
                    }
                );
            }
        }
    }
    if !c.depends_on.is_empty() {
        let _ = writeln!(o, "Depends on:\n");
        for dep in &c.depends_on {
            if let Some(dc) = plan.component(dep) {
                let _ = writeln!(o, "- `{dep}` (`{}`)", dc.dir());
            }
        }
        o.push('\n');
    }
    if !c.health.is_empty() {
        let _ = writeln!(o, "## What `homelab status` checks\n");
        for h in &c.health {
            let _ = writeln!(o, "- {}", health_line(h));
        }
        o.push('\n');
    }
    if !d.requirements.is_empty() {
        let _ = writeln!(
            o,
            "## Requirements\n\nFulfils {} of the planning documents.",
            d.requirements.join(", ")
        );
    }
    o
}

/// Creates a namespace if missing, so its Secrets can exist before the component is applied.
fn namespace_command(ns: &str) -> String {
    format!("kubectl create namespace {ns} --dry-run=client -o yaml | kubectl apply -f -\n")
}

/// `kubectl` steps that apply one component directory and wait until it is ready.
fn apply_commands(c: &Component) -> String {
    let dir = c.dir();
    let mut o = String::new();
    let late = c.objects.iter().any(|ob| needs_own_crds(c, ob));
    if late {
        let _ = writeln!(
            o,
            "kubectl apply -k {dir} || true  # custom resources fail until the chart's CRDs exist"
        );
    } else {
        let _ = writeln!(o, "kubectl apply -k {dir}");
    }
    o.push_str(&wait_commands(c));
    if late {
        let _ = writeln!(o, "kubectl apply -k {dir}");
    }
    o
}

/// Waits until a component's charts are installed, its CRDs established and its workloads
/// rolled out. The install Job is waited for to exist first: helm-controller creates it a
/// moment after the HelmChart, and `kubectl wait` fails at once on a missing object.
fn wait_commands(c: &Component) -> String {
    let mut o = String::new();
    for r in &c.releases {
        let _ = writeln!(
            o,
            "kubectl -n {HELM_NAMESPACE} wait --for=create job/helm-install-{} --timeout=5m",
            r.name
        );
        let _ = writeln!(
            o,
            "kubectl -n {HELM_NAMESPACE} wait --for=condition=complete job/helm-install-{} --timeout=15m",
            r.name
        );
    }
    for h in &c.health {
        match h {
            HealthCheck::Workload {
                kind,
                namespace,
                name,
            } => {
                let _ = writeln!(
                    o,
                    "kubectl -n {namespace} rollout status {}/{name} --timeout=10m",
                    kind.to_ascii_lowercase()
                );
            }
            HealthCheck::Crd { name } => {
                let _ = writeln!(
                    o,
                    "kubectl wait --for=condition=established crd/{name} --timeout=5m"
                );
            }
            _ => {}
        }
    }
    o
}

/// Everything outside the component directories: the lab README, ADRs, runbooks, diagram.
pub(crate) fn lab_docs(
    plan: &Plan,
    flavor: Flavor,
    around: &Surroundings,
) -> Vec<(String, String)> {
    let mut out = vec![("README.md".to_string(), lab_readme(plan, flavor, around))];
    let adrs = adrs(plan, flavor);
    let mut index = String::from(
        "# Architecture decisions of this lab\n\nEach record says what was decided, why, and what follows from it. They describe this lab as `homelab render` built it from homelab.yaml.\n\n",
    );
    for a in &adrs {
        let _ = writeln!(index, "- [ADR-{:03}: {}]({})", a.number, a.title, a.file());
        out.push((format!("docs/adrs/{}", a.file()), a.text()));
    }
    let generated: Vec<String> = adrs.iter().map(Adr::file).collect();
    let own: Vec<_> = around
        .user_adrs
        .iter()
        .filter(|a| !generated.contains(&a.link))
        .collect();
    if !own.is_empty() {
        let _ = writeln!(
            index,
            "\n## The lab's own decisions\n\nRecords written for this lab by hand, found in `docs/adrs/` (of this tree, and beside homelab.yaml). `homelab render` lists them here and leaves them as they are.\n"
        );
        for a in own {
            let _ = writeln!(index, "- [{}]({})", a.title, a.link);
        }
    }
    out.push(("docs/adrs/README.md".into(), index));
    let mut index = String::from(
        "# Runbooks\n\nWhat to do when an alert fires or data must be restored. Alert rules link here through their `runbook_url` annotation: a path relative to the repository root, or a full link when the spec sets `alerting.runbookBaseUrl`.\n\n",
    );
    for r in &plan.runbooks {
        let _ = writeln!(index, "- [{}]({}.md)", r.title, r.name);
        let text = if r.content.starts_with("# ") {
            r.content.clone()
        } else {
            format!("# {}\n\n{}", r.title, r.content)
        };
        out.push((format!("docs/runbooks/{}.md", r.name), text));
    }
    out.push(("docs/runbooks/README.md".into(), index));
    out.push((
        "docs/diagrams/architecture.md".into(),
        crate::diagrams::architecture(plan),
    ));
    out.push((
        "docs/diagrams/apply-order.md".into(),
        crate::diagrams::apply_order(plan),
    ));
    out.push(("docs/host-preparation.md".into(), crate::hosts::guide(plan)));
    out
}

/// How kustomize-controller decrypts the lab's Secrets, for prose.
fn flux_decryption(plan: &Plan) -> String {
    match &plan.secrets_vault {
        Some(v) => format!(
            "the Vault/OpenBao transit key `{}`, using the token in the Secret `{FLUX_NAMESPACE}/{SOPS_VAULT_SECRET}` (key `{SOPS_VAULT_TOKEN_KEY}`)",
            v.key_uri()
        ),
        None => format!("the age key in the Secret `{FLUX_NAMESPACE}/{SOPS_AGE_SECRET}`"),
    }
}

/// The one step that gives kustomize-controller what it decrypts with.
fn flux_decryption_setup(plan: &Plan) -> String {
    match &plan.secrets_vault {
        Some(v) => format!(
            "give it a Vault/OpenBao token that may use `{path}/decrypt/{key}` on {address} (the controller calls that server itself, so it must reach it from the cluster):\n\n```sh\nprintf '%s' \"$FLUX_VAULT_TOKEN\" | kubectl -n {FLUX_NAMESPACE} create secret generic {SOPS_VAULT_SECRET} --from-file={SOPS_VAULT_TOKEN_KEY}=/dev/stdin\n```\n\nThe token expires with its policy's TTL: use a periodic token (`bao token create -policy=... -period=768h`) and renew it, or Flux stops decrypting when it lapses.",
            path = v.transit_path,
            key = v.key,
            address = v.address
        ),
        None => format!(
            "give it the age key that decrypts the Secrets:\n\n```sh\nkubectl -n {FLUX_NAMESPACE} create secret generic {SOPS_AGE_SECRET} --from-file=age.agekey=$HOME/.config/homelab/age.key\n```"
        ),
    }
}

pub(crate) fn ingress_ip(plan: &Plan) -> Option<String> {
    plan.component("traefik")?
        .health
        .iter()
        .find_map(|h| match h {
            HealthCheck::LoadBalancer { expected_ip, .. } => expected_ip.clone(),
            _ => None,
        })
}

pub(crate) fn nfs_export(plan: &Plan) -> Option<(String, String)> {
    let values = &plan.component("nfs")?.releases.first()?.values["nfs"];
    Some((
        values["server"].as_str()?.to_string(),
        values["path"].as_str()?.to_string(),
    ))
}

/// The headings of the README's steps without the tool (tests find the blocks by them).
pub const HAND_STEP_K3S: &str = "#### 1. K3s on each node";
pub const HAND_STEP_KUBECONFIG: &str = "#### 2. The kubeconfig";
pub const HAND_STEP_SECRETS: &str = "#### 3. The Secrets";
pub const HAND_STEP_LAYERS: &str = "#### 4. The layers, in order";

/// The K3s installer run on each node: the node's configuration and the join token first
/// (the token only through a pipe, never on a command line), the server that initialises
/// the cluster first and Ready before anyone joins it.
fn k3s_install_commands(plan: &Plan, secrets_file: &str) -> String {
    use homelab_spec::lab::NodeRole;
    let mut nodes: Vec<&homelab_plan::NodePlan> = plan.nodes.iter().collect();
    nodes.sort_by_key(|n| (!n.init, n.role != NodeRole::Server));
    let token = sops_extract(homelab_plan::catalog::K3S_TOKEN_SECRET, secrets_file);
    let mut o = String::new();
    for n in nodes {
        let (dest, port) = crate::hosts::ssh_target(n);
        let ssh = format!("ssh {port}{dest}");
        let role = match n.role {
            NodeRole::Server => "server",
            NodeRole::Agent => "agent",
        };
        let _ = writeln!(
            o,
            "# {} ({role}{})",
            n.name,
            if n.init {
                ", initialises the cluster"
            } else {
                ""
            }
        );
        let _ = writeln!(
            o,
            "{ssh} 'sudo mkdir -p /etc/rancher/k3s && sudo tee /etc/rancher/k3s/config.yaml >/dev/null' < {}",
            shell_word(&format!("infrastructure/k3s/nodes/{}.yaml", n.name))
        );
        let _ = writeln!(
            o,
            "{token} | {ssh} 'sudo sh -c \"umask 077 && cat > /etc/rancher/k3s/cluster-token\"'"
        );
        let _ = writeln!(
            o,
            "{ssh} 'curl -sfL https://get.k3s.io | INSTALL_K3S_VERSION={} sh -s - {role}'",
            plan.k3s_version
        );
        if n.init {
            let _ = writeln!(
                o,
                "{ssh} 'sudo k3s kubectl wait --for=condition=Ready node/{} --timeout=5m'",
                n.name
            );
        }
    }
    o
}

/// The admin kubeconfig from the first server, with its address in place of 127.0.0.1.
fn kubeconfig_commands(plan: &Plan) -> String {
    use homelab_spec::lab::KubeconfigAddress;
    let Some(first) = plan.nodes.iter().find(|n| n.init) else {
        return String::new();
    };
    let (dest, port) = crate::hosts::ssh_target(first);
    let remote = &plan.network.remote_access;
    let address = match (&remote.kubeconfig_address, &remote.tailscale) {
        (KubeconfigAddress::Tailscale, Some(t)) => t.clone(),
        _ => first.address.clone(),
    };
    let file = format!("~/.kube/{}.yaml", plan.lab_name);
    let names: Vec<&str> = plan.nodes.iter().map(|n| n.name.as_str()).collect();
    format!(
        "mkdir -p ~/.kube\n(umask 077 && ssh {port}{dest} 'sudo cat /etc/rancher/k3s/k3s.yaml' | sed 's/127.0.0.1/{address}/' > {file})\nexport KUBECONFIG={file}\nkubectl get nodes   # {} Ready\n",
        names.join(", ")
    )
}

/// `kubectl apply -k` per layer in order, with the waits of its components in between.
fn layer_commands(plan: &Plan) -> String {
    use homelab_plan::Layer;
    let mut o = String::new();
    for layer in [
        Layer::Infrastructure,
        Layer::Monitoring,
        Layer::Applications,
    ] {
        let members: Vec<&Component> = plan
            .components
            .iter()
            .filter(|c| c.layer == layer && (!c.objects.is_empty() || !c.releases.is_empty()))
            .collect();
        if members.is_empty() {
            continue;
        }
        let dir = layer.dir();
        let late = members
            .iter()
            .any(|c| c.objects.iter().any(|ob| needs_own_crds(c, ob)));
        if late {
            let _ = writeln!(
                o,
                "kubectl apply -k {dir} || true  # custom resources fail until their charts' CRDs exist"
            );
        } else {
            let _ = writeln!(o, "kubectl apply -k {dir}");
        }
        for c in members {
            o.push_str(&wait_commands(c));
        }
        if late {
            let _ = writeln!(o, "kubectl apply -k {dir}");
        }
    }
    o
}

fn lab_readme(plan: &Plan, flavor: Flavor, around: &Surroundings) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# {}\n\nThe home lab `{}` on K3s, as files: every component under `infrastructure/`, `monitoring/` and `applications/` with its manifests, Helm values and a README; decisions, runbooks and a diagram under `docs/`. `homelab render --flavor {}` wrote this tree from `homelab.yaml`; nothing here needs the tool to be applied.\n",
        plan.lab_name, plan.lab_name, flavor
    );
    let urls: Vec<_> = plan.urls().collect();
    if !urls.is_empty() {
        let _ = writeln!(o, "## Services\n\n| service | URL | what |\n|---|---|---|");
        for e in &urls {
            let _ = writeln!(o, "| {} | {} | {} |", e.name, e.url, e.description);
        }
        o.push('\n');
        if let Some(ip) = ingress_ip(plan) {
            let _ = writeln!(
                o,
                "Every host resolves to the ingress address {ip}: point the wildcard DNS record `*.{}` at it. Certificates come from Let's Encrypt through cert-manager.\n",
                plan.domain
            );
        }
    }
    let _ = writeln!(o, "## Components, in the order they are applied\n");
    let _ = writeln!(
        o,
        "| component | directory | namespace | depends on |\n|---|---|---|---|"
    );
    for c in &plan.components {
        let _ = writeln!(
            o,
            "| [{}]({}/README.md) | `{}/` | {} | {} |",
            if c.docs.title.is_empty() {
                &c.name
            } else {
                &c.docs.title
            },
            c.dir(),
            c.dir(),
            c.namespace
                .as_deref()
                .map_or("-".to_string(), |n| format!("`{n}`")),
            if c.depends_on.is_empty() {
                "-".to_string()
            } else {
                c.depends_on.join(", ")
            }
        );
    }
    o.push('\n');
    let _ = writeln!(
        o,
        "Architecture (how requests and alerts flow): [docs/diagrams/architecture.md](docs/diagrams/architecture.md); the apply order: [docs/diagrams/apply-order.md](docs/diagrams/apply-order.md). Decisions: [docs/adrs/](docs/adrs/README.md). Runbooks: [docs/runbooks/](docs/runbooks/README.md).\n"
    );
    let _ = writeln!(o, "## Nodes\n\n| node | role | address |\n|---|---|---|");
    for n in &plan.nodes {
        let _ = writeln!(
            o,
            "| {} | {:?}{} | {} |",
            n.name,
            n.role,
            if n.init { " (cluster-init)" } else { "" },
            n.address
        );
    }
    let _ = writeln!(
        o,
        "\nEach node's K3s configuration is `infrastructure/k3s/nodes/<node>.yaml` (it goes to `/etc/rancher/k3s/config.yaml`); the join token is never in this tree.\n"
    );
    let _ = writeln!(
        o,
        "## Apply\n\nFirst prepare the machines, the NAS and the DNS: [docs/host-preparation.md](docs/host-preparation.md).\n\nWith the tool, from the directory holding `homelab.yaml`:\n\n```sh\nhomelab secrets init     # once: age key, .sops.yaml, generated secrets\nhomelab nodes apply      # K3s on every node\nhomelab apply            # every component in order, waiting for each\nhomelab status           # what is healthy and what is not\n```\n"
    );
    let _ = writeln!(
        o,
        "### Without the tool\n\nRun every block from the root of this tree. It needs `ssh`, `kubectl` 1.31 or newer and the `sops` CLI; the secrets file is `{file}` from here, and `{SOPS_KEY_ENV}` in front of each `sops` decryption names your age key (change the path when yours is elsewhere). The nodes' users need sudo without a password prompt (see the host preparation).\n",
        file = around.secrets_file
    );
    let _ = writeln!(o, "{}", HAND_STEP_K3S);
    o.push_str("\n```sh\n");
    o.push_str(&k3s_install_commands(plan, &around.secrets_file));
    o.push_str("```\n\n");
    let _ = writeln!(o, "{}", HAND_STEP_KUBECONFIG);
    o.push_str("\n```sh\n");
    o.push_str(&kubeconfig_commands(plan));
    o.push_str("```\n\n");
    match flavor {
        Flavor::K3s => {
            let _ = writeln!(
                o,
                "{HAND_STEP_SECRETS}\n\nThe namespaces they live in, then each Secret from the secrets file:\n\n```sh"
            );
            let mut namespaces: Vec<&str> = Vec::new();
            for c in &plan.components {
                for s in &c.secret_objects {
                    if !namespaces.contains(&s.namespace.as_str()) {
                        namespaces.push(&s.namespace);
                    }
                }
            }
            for ns in namespaces {
                o.push_str(&namespace_command(ns));
            }
            for c in &plan.components {
                for s in &c.secret_objects {
                    o.push_str(&secret_commands(plan, s, &around.secrets_file));
                }
            }
            let _ = writeln!(o, "```\n");
            let _ = writeln!(
                o,
                "{HAND_STEP_LAYERS}\n\nEach layer with `kubectl apply -k`, waiting until its charts are installed and its workloads ready before the next (the order of the table above; each component's README has the same commands for its directory alone):\n\n```sh"
            );
            o.push_str(&layer_commands(plan));
            let _ = writeln!(o, "```\n");
        }
        Flavor::Flux => {
            let _ = writeln!(
                o,
                "#### 3. Flux\n\nBootstrap Flux on this repository with `--path=clusters/{lab}` (`flux bootstrap git ... --path=clusters/{lab}`), then {}\n\n`clusters/{lab}/components.yaml` holds one Flux Kustomization per component (and a `-config` one for custom resources that need the component's own CRDs), each waiting for the ones it depends on.\n",
                flux_decryption_setup(plan),
                lab = plan.lab_name
            );
        }
    }
    let _ = writeln!(o, "## Secrets\n");
    match flavor {
        Flavor::K3s => {
            let _ = writeln!(
                o,
                "No secret value is in this tree. They live encrypted (SOPS, age) in `{}` next to `homelab.yaml`; `homelab apply` creates the Kubernetes Secrets from it, and `homelab secrets get NAME` shows one. Without the tool, step 3 above creates them.\n",
                around.secrets_file
            );
        }
        Flavor::Flux => {
            let _ = writeln!(
                o,
                "Every Secret is in its component directory as `secret-<name>.sops.yaml`, encrypted with SOPS (age) for the recipients of the lab's secrets file; only `data` and `stringData` are encrypted. The values come from `{}` next to `homelab.yaml`: change one with `homelab secrets set NAME` and render again. `{SOPS_KEY_ENV} sops -d <file>` shows one if you hold a key.\n",
                around.secrets_file
            );
        }
    }
    if !plan.secrets.is_empty() {
        let _ = writeln!(o, "| secret | used by | what |\n|---|---|---|");
        for s in &plan.secrets {
            let _ = writeln!(
                o,
                "| `{}` | {} | {} |",
                s.name,
                s.used_by.iter().cloned().collect::<Vec<_>>().join(", "),
                s.description
            );
        }
        o.push('\n');
    }
    let _ = writeln!(
        o,
        "## Upgrades\n\nEvery chart and image version is pinned and carries a `# renovate:` comment on the line above it; `renovate.json` configures Renovate's regex manager to read them, so new versions arrive as pull requests. The tool pins the versions it was tested with, and rendering again writes those: to keep an upgrade Renovate made here, move to a homelab release that pins it before rendering again.\n"
    );
    let _ = writeln!(
        o,
        "## Rendering again\n\n`homelab render` replaces the files it wrote before (listed in `.homelab-rendered`) and deletes those it no longer writes; any other file you add here is left alone. Change `homelab.yaml`, not the generated files: edits to those are replaced on the next render."
    );
    o
}

/// An architecture decision of the lab.
struct Adr {
    number: u32,
    slug: &'static str,
    title: String,
    context: String,
    decision: String,
    consequences: String,
}

impl Adr {
    fn file(&self) -> String {
        format!("ADR-{:03}-{}.md", self.number, self.slug)
    }

    fn text(&self) -> String {
        format!(
            "# ADR-{:03}: {}\n\nStatus: accepted\n\n## Context\n\n{}\n\n## Decision\n\n{}\n\n## Consequences\n\n{}\n",
            self.number, self.title, self.context, self.decision, self.consequences
        )
    }
}

/// The ACME challenge of the plan's ClusterIssuers: `http01`, or `dns01` with its provider.
fn challenge(plan: &Plan) -> (String, Option<String>) {
    let solver = plan
        .objects()
        .find(|(_, o)| o.kind() == "ClusterIssuer")
        .map(|(_, o)| o.manifest["spec"]["acme"]["solvers"][0].clone())
        .unwrap_or(Value::Null);
    match solver.get("dns01").and_then(Value::as_object) {
        Some(dns) => ("dns01".into(), dns.keys().next().cloned()),
        None => ("http01".into(), None),
    }
}

fn adrs(plan: &Plan, flavor: Flavor) -> Vec<Adr> {
    let has = |name: &str| plan.component(name).is_some();
    let servers = plan
        .nodes
        .iter()
        .filter(|n| n.role == homelab_spec::lab::NodeRole::Server)
        .count();
    let mut out = vec![Adr {
        number: 1,
        slug: "k3s-over-kubernetes",
        title: "K3s instead of upstream Kubernetes (kubeadm)".into(),
        context: format!(
            "The lab runs on {} small virtual machines with one operator. Upstream Kubernetes installed with kubeadm needs a separate container runtime, CNI, ingress, storage provisioner and load balancer, and several gigabytes of memory for the control plane.",
            plan.nodes.len()
        ),
        decision: format!(
            "Run K3s: one binary with containerd, flannel, CoreDNS, Traefik and a Helm controller, certified conformant. {servers} server(s) with embedded etcd (`cluster-init`), so etcd snapshots work and more servers can join later; the rest are agents."
        ),
        consequences: "Manifests and charts are standard Kubernetes and move to any conformant cluster. K3s' bundled parts are managed through its own configuration (disabled or customised with HelmChartConfig) rather than replaced by hand. Upgrades go node by node with `homelab nodes upgrade`.".into(),
    }];
    if has("nfs") {
        let export = nfs_export(plan)
            .map(|(s, p)| format!("{s}:{p}"))
            .unwrap_or_else(|| "the NAS".into());
        out.push(Adr {
            number: 2,
            slug: "nfs-over-longhorn",
            title: "NFS from the NAS instead of Longhorn or Ceph".into(),
            context: "Stateful services need volumes that survive the loss of a node. Distributed block storage (Longhorn, Ceph) replicates data across nodes but needs at least three nodes with spare disks, memory and CPU, and is itself a system to operate and back up.".into(),
            decision: format!("Use the NAS export {export} through nfs-subdir-external-provisioner as the default StorageClass, reclaim policy Delete with `archiveOnDelete: false`. Node-local storage (local-path, non-default) only for data that may be lost, such as dev-container workspaces."),
            consequences: "The NAS's RAID and hourly snapshots protect the data, and any node can mount any volume. The NAS is a single point of failure: when it is down, pods with NFS volumes hang until it returns (NFR4), and alerts NfsProvisionerDown/PersistentVolumeClaimNotBound fire. Databases on NFS need care (one writer, `hard` mounts); PostgreSQL additionally takes nightly dumps.".into(),
        });
    }
    out.push(Adr {
        number: 3,
        slug: "traefik-ingress",
        title: "Traefik, bundled with K3s, as the ingress".into(),
        context: "Every web service needs HTTPS on its own host name. K3s ships Traefik and upgrades it with the cluster; replacing it with another controller means disabling it and maintaining a second chart.".into(),
        decision: "Keep the bundled Traefik and customise it with a HelmChartConfig: HTTP redirected to HTTPS, TLS 1.2 minimum with strict SNI, a fixed address from MetalLB, Prometheus metrics, and the dashboard at `traefik.<domain>` behind basic auth.".into(),
        consequences: "K3s upgrades keep working; Traefik's chart version is K3s', not pinned here, and a chart major upgrade can rename values (the redirect key moved between majors), so K3s upgrades are checked against `values-homelab.yaml` in infrastructure/traefik.".into(),
    });
    let (kind, provider) = challenge(plan);
    out.push(if kind == "dns01" {
        Adr {
            number: 4,
            slug: "dns01-challenge",
            title: format!("Let's Encrypt certificates through DNS-01 ({})", provider.clone().unwrap_or_default()),
            context: format!("Let's Encrypt must check that the lab controls the names under {} before issuing certificates. With HTTP-01 it connects to the host over the internet, but the ingress address is private and the lab is only reachable over the LAN and Tailscale.", plan.domain),
            decision: format!("Use DNS-01 with the `{}` API: cert-manager writes a TXT record, Let's Encrypt reads it from public DNS. Propagation is checked against public resolvers (1.1.1.1, 9.9.9.9), because the LAN's DNS rewrites the lab's domain. Staging and production ClusterIssuers both exist; Ingresses use the one the spec chooses.", provider.unwrap_or_default()),
            consequences: "No port is opened to the internet. The DNS provider's API token is a secret with write access to the zone: it lives in the encrypted secrets file, and a leaked or expired token stops renewals (alert CertificateExpiringSoon).".into(),
        }
    } else {
        Adr {
            number: 4,
            slug: "http01-challenge",
            title: "Let's Encrypt certificates through HTTP-01".into(),
            context: format!("Let's Encrypt must check that the lab controls the names under {} before issuing certificates.", plan.domain),
            decision: "Use HTTP-01 through Traefik: Let's Encrypt fetches a token from each host over port 80. Staging and production ClusterIssuers both exist.".into(),
            consequences: "Port 80 of the ingress address must be reachable from the internet for every host, which a private LAN address is not; if issuance fails, switch the spec to DNS-01.".into(),
        }
    });
    out.push(Adr {
        number: 5,
        slug: "metallb-layer2",
        title: "MetalLB in layer-2 mode instead of K3s servicelb".into(),
        context: "LoadBalancer Services need an address on the LAN. K3s' servicelb binds the service's ports on every node's own address, so a service has no address of its own and two services cannot share a port.".into(),
        decision: format!("Disable servicelb (`disable: [servicelb]` in the server configuration) and run MetalLB with an IPAddressPool and an L2Advertisement; Traefik gets the fixed address {} and the dev proxy's SSH ports share it.", ingress_ip(plan).unwrap_or_else(|| "from the pool".into())),
        consequences: "Addresses are stable and need nothing from the router. In layer-2 mode one node answers ARP for an address at a time; failover takes a few seconds. The pool must stay out of the DHCP range.".into(),
    });
    out.push(Adr {
        number: 6,
        slug: "ingress-with-cert-manager-annotation",
        title: "Standard Ingress with the cert-manager annotation".into(),
        context: "Traefik also offers its own IngressRoute resource, which needs a separate cert-manager Certificate per host.".into(),
        decision: "Every web service gets a standard `networking.k8s.io/v1` Ingress with `ingressClassName: traefik` and the annotation `cert-manager.io/cluster-issuer`, so cert-manager creates the certificate itself. The Traefik dashboard is the one exception: the chart exposes it as an IngressRoute, so it has an explicit Certificate.".into(),
        consequences: "Manifests stay portable to any ingress controller, and charts that create their own Ingress (Grafana, Ollama, n8n) are configured the same way. Traefik-specific features go through annotations (entry points, middlewares).".into(),
    });
    if has("nfs") && has("local-path") {
        out.push(Adr {
            number: 7,
            slug: "local-path-not-default",
            title: "local-path redeployed as a non-default StorageClass".into(),
            context: "K3s bundles the local-path provisioner and marks its StorageClass as the default again on every restart, even after it was un-marked (k3s-io/k3s#3441, #11936). With NFS also the default, the cluster would have two default classes and new claims would land on either.".into(),
            decision: "Disable K3s' copy (`disable: [local-storage]`) and deploy the same provisioner from `infrastructure/local-path` with its class marked non-default; NFS is the only default.".into(),
            consequences: "Claims without a class go to NFS. Workloads that want fast node-local disks (dev-container workspaces) ask for `local-path` by name and accept that the data is tied to one node. The provisioner's version is pinned here instead of following K3s.".into(),
        });
    }
    if has("prometheus") {
        out.push(Adr {
            number: 8,
            slug: "kube-prometheus-stack",
            title: "kube-prometheus-stack with P1/P2/P3 alert rules and runbooks".into(),
            context: "The lab must show its health and reach the operator's phone within minutes of a critical failure (NFR5), without the operator watching dashboards.".into(),
            decision: "Install kube-prometheus-stack (Prometheus, Alertmanager, Grafana, node-exporter, kube-state-metrics) with K3s' control-plane endpoints opened, and add the lab's own rules in three priorities: P1 critical (to the phone), P2 warning, P3 info. Every rule carries `severity` and a `runbook_url` to `docs/runbooks/` in this repository. A P1 reaches the phone within a minute of the breach: every target is scraped every 15 s, a P1 rule needs its signal bad in two scrapes in a row (30 s) instead of a long `for:`, the P1 rules are evaluated every 15 s, and Alertmanager sends each P1 on its own after 10 s (30 + 15 + 10 = 55 s at worst). The chart's own `critical` rules, built to wait minutes to hours, are sent as P2 (warning).".into(),
            consequences: "Dashboards and upstream rules come maintained. Scraping every 15 s instead of the operator's 30 s doubles the samples Prometheus stores (the retention size bounds the volume). A P1 pages for any outage longer than about half a minute, planned ones included: silence it in Alertmanager before maintenance. Objects and targets younger than 5 minutes (a node joining, a pod pulling its image) do not raise P1 alerts. K3s needs its metrics bind addresses opened on the servers (in the node configuration). Runbook links are repository paths, so they resolve in the git host's file view rather than as absolute URLs.".into(),
        });
    }
    if has("loki") {
        out.push(Adr {
            number: 9,
            slug: "loki-and-alloy",
            title: "Loki with Alloy for logs".into(),
            context: "Logs of every pod must be kept and searchable for at least 7 days (NFR19) on a small NFS volume. Promtail, the usual Loki agent, is end of life; an Elasticsearch stack needs more memory than the lab has to spare.".into(),
            decision: "Run Loki as a single binary on the filesystem with retention through the compactor (`delete_request_store` set, which Loki 3 requires for retention), and Grafana Alloy as the agent, reading logs through the Kubernetes API.".into(),
            consequences: "Logs are searched in Grafana next to the metrics. Loki indexes labels only, so full-text queries scan chunks and are slower than in Elasticsearch. Logs are not backed up.".into(),
        });
    }
    if has("postgres") {
        out.push(Adr {
            number: 10,
            slug: "official-postgresql-image",
            title: "PostgreSQL from the official image as a StatefulSet".into(),
            context: "The planning documents chose the Bitnami chart, but Bitnami froze its free images in 2025, so the chart no longer receives security updates without a subscription.".into(),
            decision: "Run the official `postgres` image as the StatefulSet `postgres` (pod `postgres-0`) on NFS, with a metrics exporter, a Job that creates the databases and owners from the spec, and a nightly CronJob that dumps every database, verifies each dump and keeps the newest ones.".into(),
            consequences: "Upgrades follow the PostgreSQL Docker team's tags. Major upgrades need a dump and restore (see docs/runbooks/postgres-restore.md). One instance, no replication: the dumps and NAS snapshots are the recovery path.".into(),
        });
    }
    if has("paperless") {
        out.push(Adr {
            number: 11,
            slug: "paperless-plain-manifests",
            title: "Paperless-ngx as plain manifests".into(),
            context: "The public Paperless-ngx Helm charts are unmaintained. Paperless watches its consume folder with inotify, which does not see files written over NFS.".into(),
            decision: "Render Paperless-ngx and its Redis as Deployments with Services, an Ingress and four NFS volumes (data, media, consume, export), with the consumer polling every 60 seconds.".into(),
            consequences: "Upgrades are an image tag change (with a Renovate comment). Files dropped into the consume volume are picked up within a minute. SQLite in the data volume serves a single user; more users would call for PostgreSQL.".into(),
        });
    }
    out.push(match flavor {
        Flavor::K3s => Adr {
            number: 12,
            slug: "secrets-outside-the-tree",
            title: "Secrets stay out of this repository".into(),
            context: "Credentials committed to git in plaintext are the most common home-lab leak, and a rendered tree is meant to be pushed.".into(),
            decision: "Secret values live only in `secrets.sops.yaml` next to homelab.yaml, encrypted with SOPS and age. Manifests reference Secrets by name; `homelab apply` creates them from the encrypted file. Each component README shows the `kubectl` + `sops` commands that do the same by hand.".into(),
            consequences: "This tree can be public. Applying it without the tool needs the Secrets created first (or the pods wait for them). Losing the age key loses the secrets: keep a copy of it offline.".into(),
        },
        Flavor::Flux => Adr {
            number: 12,
            slug: "sops-encrypted-secrets-for-flux",
            title: "Secrets SOPS-encrypted in the repository for Flux".into(),
            context: "Flux applies what is in git, so the Secrets must be in git, and must not be readable there.".into(),
            decision: format!(
                "Each Secret is written as `secret-<name>.sops.yaml`, SOPS-encrypted for the recipients of the lab's secrets file{}, with `encrypted_regex: ^(data|stringData)$` so names and labels stay readable; Flux decrypts them with {}.",
                plan.secrets_vault
                    .as_ref()
                    .map(|v| format!(" and wrapped by the Vault/OpenBao transit key `{}`", v.key_uri()))
                    .unwrap_or_default(),
                flux_decryption(plan)
            ),
            consequences: "Rendering again leaves an unchanged Secret's file byte for byte as it was (it is only re-encrypted when its value or recipients change), so git shows real changes only. The cluster's age key must be one of the recipients.".into(),
        },
    });
    if has("dev-containers") {
        out.push(Adr {
            number: 13,
            slug: "dev-containers-behind-nginx",
            title: "Dev containers on node-local storage, reached through the nginx proxy".into(),
            context: "Remote development over SSH (VS Code Remote-SSH) needs a stable address and port per container, fast disks for git and builds, and keys that are not baked into images.".into(),
            decision: "Each dev container is a Deployment running sshd with its workspace on a local-path volume, keys from a ConfigMap and git credentials from a Secret. The nginx dev proxy forwards one `stream` port per container on the ingress address; it reloads itself when its ConfigMap changes.".into(),
            consequences: "Connections survive pod restarts (host keys live on the workspace volume), but a workspace is tied to its node and is not backed up: push branches. The base image is built from `applications/dev-containers/base-image/Dockerfile` and pushed by the operator.".into(),
        });
    }
    out
}

/// The commands that create Secret `s`; for one reading only optional secrets, a comment first
/// saying it can be skipped while they have no value (ADR 0133).
fn secret_commands(plan: &Plan, s: &SecretObject, file: &str) -> String {
    let reads: Vec<String> = s.data.values().flat_map(|v| v.secret_names()).collect();
    let mut out = String::new();
    if plan.may_leave_out(&reads) {
        out.push_str(&format!(
            "# optional: skip this Secret while {} has no value (the pod mounts it optional)\n",
            reads
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    out.push_str(&kubectl_commands(s, file));
    out
}
