//! The component catalog: one module per component, each turning the Lab into its part of the
//! Plan; this module orders them and collects what spans components (secrets, node plans).

mod apps;
mod authelia;
mod cert_manager;
mod charts;
mod dev_containers;
mod dev_proxy;
mod dns_records;
mod gpu;
mod k3s;
/// The secret holding the K3s join token (written to each node's token file, never to its config).
pub use k3s::TOKEN_SECRET as K3S_TOKEN_SECRET;
mod local_path;
mod logging;
pub mod manifests;
mod metallb;
mod monitoring;
mod n8n;
mod nfs;
mod ollama;
mod open_webui;
mod openbao;
pub use openbao::{OpenBaoPolicy, policies as openbao_policies};
mod paperless;
mod postgres;
mod shares;
mod traefik;
mod vllm;

use std::collections::{BTreeMap, BTreeSet};

use homelab_spec::Lab;
use homelab_spec::lab::{AcmeEnvironment, Tls};

use crate::{Component, Plan, SecretGenerator, SecretNeed};

/// What every component reads besides the Lab.
pub(crate) struct Ctx<'a> {
    pub lab: &'a Lab,
    /// The ClusterIssuer Ingresses use.
    pub issuer: &'static str,
    /// The StorageClass for persistent data.
    pub storage_class: String,
    /// Secrets the components ask for, collected into the plan.
    secrets: std::cell::RefCell<BTreeMap<String, SecretNeed>>,
}

impl<'a> Ctx<'a> {
    fn new(lab: &'a Lab) -> Self {
        Ctx {
            lab,
            issuer: match &lab.tls {
                Tls::Acme(a) => {
                    crate::meta::cluster_issuer(a.environment == AcmeEnvironment::Production)
                }
                Tls::InternalCa => cert_manager::CA_ISSUER,
            },
            storage_class: lab
                .storage
                .as_ref()
                .map_or_else(|| "local-path".to_string(), |s| s.storage_class.clone()),
            secrets: Default::default(),
        }
    }

    /// Records that `component` needs the secret `name`, made by `generator`.
    pub fn need_secret(
        &self,
        name: &str,
        generator: SecretGenerator,
        component: &str,
        description: &str,
    ) {
        let mut secrets = self.secrets.borrow_mut();
        let entry = secrets
            .entry(name.to_string())
            .or_insert_with(|| SecretNeed {
                name: name.to_string(),
                generator,
                used_by: BTreeSet::new(),
                description: description.to_string(),
                manual_rotation: None,
                optional: None,
            });
        entry.used_by.insert(component.to_string());
    }

    /// Records that `component` can use the user-provided secret `name` and works without it;
    /// `without` says what is missing then (ADR 0133). Whatever mounts a Secret reading it
    /// must mount it `optional: true`, since that Secret is not applied while it has no value.
    pub fn need_optional_secret(
        &self,
        name: &str,
        component: &str,
        description: &str,
        without: &str,
    ) {
        self.need_secret(name, SecretGenerator::UserProvided, component, description);
        if let Some(need) = self.secrets.borrow_mut().get_mut(name) {
            need.optional = Some(without.to_string());
        }
    }

    /// Records that `component` also reads a secret another component made known.
    pub fn uses_secret(&self, name: &str, component: &str) {
        if let Some(need) = self.secrets.borrow_mut().get_mut(name) {
            need.used_by.insert(component.to_string());
        }
    }

    /// Records that a new value of `name` does not take effect by re-applying, and how to
    /// change it instead.
    pub fn manual_rotation(&self, name: &str, how: String) {
        if let Some(need) = self.secrets.borrow_mut().get_mut(name) {
            need.manual_rotation = Some(how);
        }
    }

    pub fn fqdn(&self, host: &str) -> String {
        self.lab.network.fqdn(host)
    }

    pub fn domain(&self) -> &str {
        &self.lab.network.domain
    }
}

/// Computes the plan for a validated lab. Pure: the same lab always gives the same plan.
pub fn plan(lab: &Lab) -> Plan {
    let ctx = Ctx::new(lab);
    let s = &lab.services;
    let mut components: Vec<Component> = vec![k3s::component(&ctx), local_path::component(&ctx)];
    if lab.storage.is_some() {
        components.push(nfs::component(&ctx));
    }
    components.push(metallb::component(&ctx));
    components.push(cert_manager::component(&ctx));
    components.push(traefik::component(&ctx));
    if lab.auth.sso.is_some() {
        components.push(authelia::component(&ctx));
    }
    if gpu::planned(lab) {
        components.push(gpu::component(&ctx));
    }
    if s.monitoring.is_some() {
        components.push(monitoring::component(&ctx));
    }
    if s.logging.is_some() {
        components.push(logging::component(&ctx));
    }
    if s.postgres.is_some() {
        components.push(postgres::component(&ctx));
    }
    if s.ollama.is_some() {
        components.push(ollama::component(&ctx));
    }
    if s.n8n.is_some() {
        components.push(n8n::component(&ctx));
    }
    if s.paperless.is_some() {
        components.push(paperless::component(&ctx));
    }
    if s.openbao.is_some() {
        components.push(openbao::component(&ctx));
    }
    if s.vllm.is_some() {
        components.push(vllm::component(&ctx));
    }
    if s.open_webui.is_some() {
        components.push(open_webui::component(&ctx));
    }
    if s.dev_proxy.is_some() || !s.dev_containers.is_empty() {
        components.push(dev_proxy::component(&ctx));
    }
    if !s.dev_containers.is_empty() {
        components.push(dev_containers::component(&ctx));
    }
    let mounts_share = |a: &homelab_spec::lab::App| {
        a.volumes
            .iter()
            .any(|v| matches!(v.source, homelab_spec::lab::VolumeSource::Share { .. }))
    };
    if lab.apps.iter().any(mounts_share) {
        components.push(shares::component(&ctx));
    }
    for app in &lab.apps {
        components.push(apps::component(&ctx, app));
    }
    for chart in &lab.charts {
        components.push(charts::component(&ctx, chart));
    }
    for c in &mut components {
        apply_helm_overrides(lab, c);
    }
    let present: BTreeSet<String> = components.iter().map(|c| c.name.clone()).collect();
    for c in &mut components {
        c.depends_on.retain(|d| present.contains(d));
        c.depends_on.sort();
        c.depends_on.dedup();
    }
    let mut components = order(components);
    dedupe_shared_objects(&mut components);
    if let Some(m) = &lab.manifests {
        let c = manifests::component(m, &components);
        components.push(c);
        manifests::attach(m, &mut components);
    }
    let nodes = k3s::node_plans(&ctx);
    let mut runbooks = if s.monitoring.is_some() {
        monitoring::runbooks(&ctx)
    } else {
        Vec::new()
    };
    runbooks.extend(data_runbooks(&ctx, &components));
    runbooks.extend(vllm::runbook(&ctx));
    runbooks.extend(authelia::runbook(&ctx));
    runbooks.extend(open_webui::runbook(&ctx));
    runbooks.extend(dns_records::runbook(&ctx));
    if matches!(lab.tls, Tls::InternalCa) {
        runbooks.push(cert_manager::ca_runbook(&ctx));
    }
    runbooks.sort_by(|a, b| a.name.cmp(&b.name));
    let secrets = ctx.secrets.into_inner().into_values().collect();
    Plan {
        lab_name: lab.name.clone(),
        domain: lab.network.domain.clone(),
        components,
        nodes,
        secrets,
        runbooks,
        secrets_vault: lab.secrets.vault.clone(),
        network: lab.network.clone(),
        k3s_version: lab.cluster.k3s_version.to_string(),
    }
}

/// The spec's `helm:` settings on the releases of a component: another version, the user's
/// values merged over the generated ones, and the record of both for the plan.
fn apply_helm_overrides(lab: &Lab, c: &mut Component) {
    for r in &mut c.releases {
        let Some(over) = lab.helm_overrides.get(&r.name) else {
            continue;
        };
        let pinned = r.chart.version.clone();
        if let Some(v) = &over.version {
            r.chart.version = v.clone();
        }
        let generated = r.values.clone();
        let changes = merge_override(over, &mut r.values);
        c.overrides.push(crate::ChartOverride {
            release: r.name.clone(),
            chart: r.chart.name.clone(),
            pinned_version: pinned,
            version: r.chart.version.clone(),
            generated,
            values: r.values.clone(),
            changes,
        });
    }
}

/// Merges the override's values into `values`, returning what changed.
pub(crate) fn merge_override(
    over: &homelab_spec::lab::HelmOverride,
    values: &mut serde_json::Value,
) -> Vec<crate::values::ValueChange> {
    let Some(user) = &over.values else {
        return Vec::new();
    };
    let generated = values.clone();
    let user = user.to_json();
    if user.is_object() {
        crate::values::merge(values, &user);
    }
    crate::values::changes(&generated, values)
}

/// Namespaces are declared by every component that uses them; the first one in apply order
/// keeps it, so each object exists once in the plan (and in each `kustomization.yaml`).
/// A component whose objects live in a namespace another component declares depends on that
/// component, so the namespace exists before them however the components are applied.
fn dedupe_shared_objects(components: &mut [Component]) {
    // A namespace declared with different Pod Security levels gets the most permissive one
    // any of its users needs (a host-network app needs `privileged`).
    let rank = |level: &str| match level {
        "privileged" => 2,
        "baseline" => 1,
        _ => 0,
    };
    let mut levels: BTreeMap<String, String> = BTreeMap::new();
    for o in components.iter().flat_map(|c| c.objects.iter()) {
        if o.kind() != "Namespace" {
            continue;
        }
        if let Some(level) =
            o.manifest["metadata"]["labels"]["pod-security.kubernetes.io/enforce"].as_str()
        {
            let entry = levels.entry(o.name().to_string()).or_default();
            if entry.is_empty() || rank(level) > rank(entry) {
                *entry = level.to_string();
            }
        }
    }
    let mut seen: BTreeSet<(String, String, String)> = BTreeSet::new();
    let mut namespace_owner: BTreeMap<String, String> = BTreeMap::new();
    for c in components.iter_mut() {
        c.objects.retain(|o| {
            let key = (
                o.kind().to_string(),
                o.namespace().unwrap_or_default().to_string(),
                o.name().to_string(),
            );
            seen.insert(key)
        });
        for o in &mut c.objects {
            if o.kind() == "Namespace"
                && let Some(level) = levels.get(o.name())
                && let Some(labels) = o.manifest["metadata"]["labels"].as_object_mut()
            {
                for mode in ["enforce", "audit", "warn"] {
                    labels.insert(
                        format!("pod-security.kubernetes.io/{mode}"),
                        serde_json::Value::String(level.clone()),
                    );
                }
            }
        }
        for o in &c.objects {
            if o.kind() == "Namespace" {
                namespace_owner.insert(o.name().to_string(), c.name.clone());
            }
        }
        let mut used: BTreeSet<&str> = c.objects.iter().filter_map(|o| o.namespace()).collect();
        used.extend(c.secret_objects.iter().map(|s| s.namespace.as_str()));
        used.extend(c.releases.iter().map(|r| r.namespace.as_str()));
        let needs: Vec<String> = used
            .into_iter()
            .filter_map(|ns| namespace_owner.get(ns))
            .filter(|owner| **owner != c.name)
            .cloned()
            .collect();
        for owner in needs {
            if !c.depends_on.contains(&owner) {
                c.depends_on.push(owner);
            }
        }
        c.depends_on.sort();
    }
}

/// The data-safety runbooks (postgres, cluster, NFS), rendered with the lab's names.
fn data_runbooks(ctx: &Ctx, components: &[Component]) -> Vec<crate::Runbook> {
    use homelab_backup::runbooks as rb;
    let lab = ctx.lab;
    let ssh_user = lab
        .cluster
        .first_server()
        .ssh
        .user
        .clone()
        .unwrap_or_else(|| "<your ssh user>".into());
    let node_ref = |n: &homelab_spec::lab::Node| rb::NodeRef {
        name: n.name.clone(),
        address: n.address.to_string(),
    };
    let cluster = rb::ClusterRunbookParams {
        servers: lab.cluster.servers().map(node_ref).collect(),
        agents: lab.cluster.agents().map(node_ref).collect(),
        ssh_user,
        snapshot_dir: lab.cluster.etcd_snapshots.dir.clone(),
        snapshot_nfs_source: k3s::etcd_snapshot_mount(lab).map(|m| m.source()),
        snapshot_schedule: lab.cluster.etcd_snapshots.schedule.to_string(),
        snapshot_retention: lab.cluster.etcd_snapshots.retention,
        k3s_config_path: "/etc/rancher/k3s/config.yaml".into(),
        data_dir: "/var/lib/rancher/k3s".into(),
        api_server: format!("https://{}:6443", lab.cluster.first_server().address),
    };
    let mut out = vec![
        runbook(
            "cluster-backup",
            "Runbook: cluster backup (etcd snapshots)",
            rb::cluster_backup(&cluster),
        ),
        runbook(
            "cluster-restore",
            "Runbook: cluster restore (etcd snapshots)",
            rb::cluster_restore(&cluster),
        ),
    ];
    if let Some(storage) = &lab.storage {
        let mut volumes = Vec::new();
        for c in components {
            for check in &c.health {
                if let crate::HealthCheck::Pvc { namespace, name } = check {
                    let workload = c
                        .health
                        .iter()
                        .find_map(|h| match h {
                            crate::HealthCheck::Workload { kind, name, .. } => {
                                Some(format!("{}/{name}", kind.to_ascii_lowercase()))
                            }
                            _ => None,
                        })
                        .unwrap_or_default();
                    volumes.push(rb::NfsVolume {
                        namespace: namespace.clone(),
                        pvc: name.clone(),
                        workload,
                    });
                }
            }
        }
        let nfs = rb::NfsRunbookParams {
            nas: "the NAS".into(),
            server: storage.nfs.server.clone(),
            export_path: storage.nfs.path.clone(),
            storage_class: storage.storage_class.clone(),
            provisioner_namespace: nfs::NS.into(),
            provisioner_deployment: "nfs-provisioner-nfs-subdir-external-provisioner".into(),
            snapshot_schedule: "hourly (configure it in the NAS)".into(),
            snapshot_retention: "as configured in the NAS".into(),
            volumes,
            rto_minutes: 30,
        };
        out.push(runbook(
            "nfs-restore",
            "Runbook: restore NFS volumes from NAS snapshots",
            rb::nfs_restore(&nfs),
        ));
    }
    if let Some(pg) = &lab.services.postgres {
        let params = rb::PostgresRunbookParams {
            namespace: postgres::NS.into(),
            statefulset: "postgres".into(),
            pod: "postgres-0".into(),
            container: "postgres".into(),
            service: "postgres".into(),
            port: 5432,
            cluster_domain: "cluster.local".into(),
            data_pvc: "data-postgres-0".into(),
            backup_pvc: postgres::BACKUP_PVC.into(),
            backup_cronjob: postgres::BACKUP_CRONJOB.into(),
            schedule: pg.backup.schedule.to_string(),
            scripts_configmap: "postgres-backup-scripts".into(),
            script_dir: "/opt/homelab".into(),
            image: crate::versions::postgres(pg.version).image(),
            superuser: "postgres".into(),
            superuser_secret: "postgres-superuser".into(),
            superuser_secret_key: "password".into(),
            databases: pg
                .databases
                .iter()
                .map(|d| rb::DatabaseAccess {
                    name: d.name.clone(),
                    owner: d.owner.clone(),
                    secret: "postgres-roles".into(),
                    secret_key: d.owner.clone(),
                })
                .collect(),
            backup: postgres::backup_params(&pg.backup),
            alert_max_age_hours: 26,
        };
        out.push(runbook(
            "postgres-backup",
            "Runbook: PostgreSQL backup",
            rb::postgres_backup(&params),
        ));
        out.push(runbook(
            "postgres-restore",
            "Runbook: PostgreSQL restore",
            rb::postgres_restore(&params),
        ));
        out.push(runbook(
            "postgres-connectivity",
            "Runbook: PostgreSQL connectivity",
            rb::postgres_connectivity(&params),
        ));
    }
    out
}

fn runbook(name: &str, title: &str, content: String) -> crate::Runbook {
    crate::Runbook {
        name: name.into(),
        title: title.into(),
        content,
    }
}

/// Topological order that keeps the catalog's order among independent components, so the
/// plan reads like the seeds' implementation sequence.
fn order(components: Vec<Component>) -> Vec<Component> {
    let mut done: BTreeSet<String> = BTreeSet::new();
    // Taken components leave a hole instead of shifting the rest: a lab with thousands of
    // apps would otherwise move every remaining component once per component.
    let mut pending: Vec<Option<Component>> = components.into_iter().map(Some).collect();
    let mut out = Vec::with_capacity(pending.len());
    let mut first = 0;
    while out.len() < pending.len() {
        while pending[first].is_none() {
            first += 1;
        }
        let next = (first..pending.len())
            .find(|&i| {
                pending[i]
                    .as_ref()
                    .is_some_and(|c| c.depends_on.iter().all(|d| done.contains(d)))
            })
            .expect("the catalog's dependencies have no cycles");
        let c = pending[next].take().expect("a pending component");
        done.insert(c.name.clone());
        out.push(c);
    }
    out
}
