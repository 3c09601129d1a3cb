//! Custom apps from the spec's `apps:` list: Deployment, Service, HTTPS Ingress (optionally
//! behind the lab's login), NFS volumes and shares, ports on a LoadBalancer address, a
//! ServiceMonitor, secret environment and an optional PostgreSQL database, without new code
//! per app.

use std::collections::BTreeMap;

use homelab_spec::lab::{App, AppAuth, PortProtocol, VolumeSource};
use serde_json::{Value, json};

use super::Ctx;
use crate::meta::{ingress, labels, labels_map, metadata, namespace, pvc, selector, service};
use crate::{Component, Endpoint, HealthCheck, Layer, SecretGenerator, SecretObject, SecretSource};

/// The name of the PersistentVolumeClaim of a share in every namespace that mounts it.
pub(crate) fn share_claim(share: &str) -> String {
    format!("share-{share}")
}

/// The pod label value that tells an app's own objects from its LoadBalancer Service, so a
/// ServiceMonitor selects exactly one Service.
const COMPONENT: &str = "app";

pub(super) fn component(ctx: &Ctx, app: &App) -> Component {
    let ns = app.namespace.as_str();
    let mut c = Component::new(&app.name, Layer::Applications, Some(ns));
    c.depends_on.push("traefik".into());
    if app
        .volumes
        .iter()
        .any(|v| matches!(v.source, VolumeSource::Claim { .. }))
    {
        c.depends_on.push("nfs".into());
    }
    if app
        .volumes
        .iter()
        .any(|v| matches!(v.source, VolumeSource::Share { .. }))
    {
        c.depends_on.push("shares".into());
    }
    if app.database.is_some() {
        c.depends_on.push("postgres".into());
    }
    if app.metrics.is_some() {
        // Its ServiceMonitor needs the CRD kube-prometheus-stack installs.
        c.depends_on.push("prometheus".into());
    }
    // The host network is only allowed in a privileged namespace.
    let level = if app.host_network {
        "privileged"
    } else {
        "baseline"
    };
    c.add("namespace.yaml", namespace(ns, Some(level)));
    let l = || labels(&app.name, &app.name, COMPONENT);
    let mut env: Vec<Value> = app
        .env
        .iter()
        .map(|(k, v)| json!({"name": k, "value": v}))
        .collect();
    let mut secret_data = BTreeMap::new();
    for (var, r) in &app.secret_env {
        ctx.need_secret(
            r.name(),
            SecretGenerator::UserProvided,
            &app.name,
            &format!("{var} of app `{}`", app.name),
        );
        secret_data.insert(var.clone(), SecretSource::Secret(r.name().into()));
    }
    if let Some(db_name) = &app.database {
        let db = ctx
            .lab
            .services
            .postgres
            .as_ref()
            .and_then(|p| p.databases.iter().find(|d| &d.name == db_name))
            .expect("validation guarantees the database exists");
        env.push(json!({"name": "PGHOST", "value": "postgres.data.svc.cluster.local"}));
        env.push(json!({"name": "PGPORT", "value": "5432"}));
        env.push(json!({"name": "PGDATABASE", "value": db.name}));
        env.push(json!({"name": "PGUSER", "value": db.owner}));
        secret_data.insert(
            "PGPASSWORD".into(),
            SecretSource::Secret(db.password.name().into()),
        );
    }
    let secret_name = format!("{}-env", app.name);
    if !secret_data.is_empty() {
        c.secret_objects.push(SecretObject {
            name: secret_name.clone(),
            namespace: ns.into(),
            data: secret_data,
            labels: labels_map(&app.name, &app.name, COMPONENT),
        });
    }
    let mut mounts = Vec::new();
    let mut volumes = Vec::new();
    let mut own_claims = false;
    for v in &app.volumes {
        let mut mount = json!({"name": v.name, "mountPath": v.mount_path});
        if v.read_only {
            mount["readOnly"] = json!(true);
        }
        let claim = match &v.source {
            VolumeSource::Claim { size } => {
                own_claims = true;
                let claim = format!("{}-{}", app.name, v.name);
                c.add(
                    "pvc.yaml",
                    pvc(
                        &claim,
                        ns,
                        l(),
                        &size.to_string(),
                        &ctx.storage_class,
                        "ReadWriteOnce",
                    ),
                );
                c.health.push(HealthCheck::Pvc {
                    namespace: ns.into(),
                    name: claim.clone(),
                });
                claim
            }
            VolumeSource::Share { share, sub_path } => {
                if let Some(sp) = sub_path {
                    mount["subPath"] = json!(sp);
                }
                share_claim(share)
            }
        };
        mounts.push(mount);
        volumes.push(json!({"name": v.name, "persistentVolumeClaim": {"claimName": claim}}));
    }
    let mut container_ports = vec![json!({"name": "http", "containerPort": app.port})];
    for p in &app.ports {
        if p.port == app.port && p.protocol == PortProtocol::Tcp {
            continue;
        }
        container_ports.push(
            json!({"name": p.name, "containerPort": p.port, "protocol": p.protocol.to_string()}),
        );
    }
    let metrics_port = app.metrics.as_ref().map(|m| m.port);
    if let Some(mp) = metrics_port
        && mp != app.port
        && !app
            .ports
            .iter()
            .any(|p| p.port == mp && p.protocol == PortProtocol::Tcp)
    {
        container_ports.push(json!({"name": "metrics", "containerPort": mp}));
    }
    let mut container = json!({
        "name": app.name,
        "image": app.image,
        "ports": container_ports,
        "env": env,
        "volumeMounts": mounts,
        "resources": resources(app),
    });
    if !app.command.is_empty() {
        container["command"] = json!(app.command);
    }
    if !app.args.is_empty() {
        container["args"] = json!(app.args);
    }
    if let Some(p) = &app.probe {
        let get = json!({"path": p.path, "port": p.port});
        container["readinessProbe"] =
            json!({"httpGet": get, "periodSeconds": 10, "timeoutSeconds": 5});
        // Generous, so a slow start (a library scan, a migration) is not a restart loop.
        container["livenessProbe"] = json!({
            "httpGet": get, "initialDelaySeconds": 30, "periodSeconds": 20,
            "timeoutSeconds": 5, "failureThreshold": 6,
        });
    }
    if !c.secret_objects.is_empty() {
        container["envFrom"] = json!([{"secretRef": {"name": secret_name}}]);
    }
    let mut pod = json!({
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": volumes,
    });
    if app.host_network {
        pod["hostNetwork"] = json!(true);
        // Without it a host-network pod cannot resolve cluster names.
        pod["dnsPolicy"] = json!("ClusterFirstWithHostNet");
    }
    if app.gpu {
        pod["runtimeClassName"] = json!("nvidia");
        pod["nodeSelector"] = json!({"homelab/gpu": "nvidia"});
        if super::gpu::tainted(ctx.lab) {
            pod["tolerations"] = json!([super::gpu::toleration()]);
        }
    }
    let replicated = app.replicas.is_some_and(|r| r >= 2);
    if replicated {
        // Replicas on different nodes, so that one node's loss leaves the app running. Pods on
        // the node's network cannot share one node's ports at all; the others may pile up when
        // the lab has fewer nodes than replicas rather than stay pending.
        pod["topologySpreadConstraints"] = json!([{
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": if app.host_network { "DoNotSchedule" } else { "ScheduleAnyway" },
            "labelSelector": {"matchLabels": selector(&app.name, &app.name)},
        }]);
    }
    // Two pods at once cannot hold one node's ports, one GPU or a volume of their own.
    let recreate = own_claims || app.host_network || app.gpu;
    let mut spec = json!({
        "strategy": {"type": if recreate { "Recreate" } else { "RollingUpdate" }},
        "selector": {"matchLabels": selector(&app.name, &app.name)},
        "template": {"metadata": {"labels": l()}, "spec": pod},
    });
    // Left out unless the spec sets it: server-side apply then leaves the field to whoever
    // scales the Deployment (`kubectl scale`, an autoscaler).
    if let Some(r) = app.replicas {
        spec["replicas"] = json!(r);
    }
    c.add(
        "deployment.yaml",
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": metadata(&app.name, Some(ns), l()),
            "spec": spec,
        }),
    );
    if replicated {
        // A drain (an upgrade, `nodes remove`) takes one replica at a time.
        c.add(
            "deployment.yaml",
            json!({
                "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                "metadata": metadata(&app.name, Some(ns), l()),
                "spec": {
                    "maxUnavailable": 1,
                    "selector": {"matchLabels": selector(&app.name, &app.name)},
                },
            }),
        );
    }
    let mut service_ports = vec![json!({"name": "http", "port": app.port, "targetPort": "http"})];
    if let Some(mp) = metrics_port
        && mp != app.port
    {
        service_ports.push(json!({"name": "metrics", "port": mp, "targetPort": mp}));
    }
    c.add(
        "deployment.yaml",
        service(
            &app.name,
            ns,
            l(),
            selector(&app.name, &app.name),
            json!(service_ports),
        ),
    );
    c.health.push(HealthCheck::Workload {
        kind: "Deployment".into(),
        namespace: ns.into(),
        name: app.name.clone(),
    });
    let mut access = vec![format!(
        "In the cluster: http://{}.{ns}.svc.cluster.local:{}",
        app.name, app.port
    )];
    if !app.ports.is_empty() {
        let lb_name = format!("{}-lb", app.name);
        let mut annotations = serde_json::Map::new();
        if let Some(ip) = app.load_balancer_ip {
            annotations.insert("metallb.io/loadBalancerIPs".into(), json!(ip.to_string()));
        }
        let mut meta = metadata(
            &lb_name,
            Some(ns),
            labels(&app.name, &app.name, "load-balancer"),
        );
        if !annotations.is_empty() {
            meta["annotations"] = Value::Object(annotations);
        }
        c.add(
            "load-balancer.yaml",
            json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": meta,
                "spec": {
                    "type": "LoadBalancer",
                    // Clients keep their own address (what Pi-hole and Plex log and decide on).
                    "externalTrafficPolicy": "Local",
                    "selector": selector(&app.name, &app.name),
                    "ports": app.ports.iter().map(|p| json!({
                        "name": p.name,
                        "port": p.port,
                        "targetPort": p.port,
                        "protocol": p.protocol.to_string(),
                    })).collect::<Vec<_>>(),
                },
            }),
        );
        c.health.push(HealthCheck::LoadBalancer {
            namespace: ns.into(),
            name: lb_name,
            expected_ip: app.load_balancer_ip.map(|ip| ip.to_string()),
        });
        let at = app.load_balancer_ip.map_or_else(
            || "the address MetalLB assigns (`kubectl -n NS get svc`)".replace("NS", ns),
            |ip| ip.to_string(),
        );
        access.push(format!(
            "On the LAN at {at}: {}",
            app.ports
                .iter()
                .map(|p| format!("{}/{} ({})", p.port, p.protocol, p.name))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if let Some(m) = &app.metrics {
        let port = if m.port == app.port {
            "http"
        } else {
            "metrics"
        };
        c.add(
            "servicemonitor.yaml",
            json!({
                "apiVersion": "monitoring.coreos.com/v1",
                "kind": "ServiceMonitor",
                "metadata": metadata(&app.name, Some(ns), l()),
                "spec": {
                    "selector": {"matchLabels": {
                        "app.kubernetes.io/name": app.name,
                        "app.kubernetes.io/instance": app.name,
                        "app.kubernetes.io/component": COMPONENT,
                    }},
                    "endpoints": [{"port": port, "path": m.path, "interval": "30s"}],
                },
            }),
        );
    }
    if let Some(h) = &app.host {
        let host = ctx.fqdn(h);
        let mut ing = ingress(&app.name, ns, l(), &host, &app.name, app.port, ctx.issuer);
        if app.auth == AppAuth::Basic {
            let middleware = format!("{}-basic-auth", app.name);
            ing["metadata"]["annotations"]["traefik.ingress.kubernetes.io/router.middlewares"] =
                json!(format!("{ns}-{middleware}@kubernetescrd"));
            c.add(
                "basic-auth.yaml",
                json!({
                    "apiVersion": "traefik.io/v1alpha1",
                    "kind": "Middleware",
                    "metadata": metadata(&middleware, Some(ns), labels(&app.name, &middleware, "ingress")),
                    "spec": {"basicAuth": {"secret": middleware, "removeHeader": true}},
                }),
            );
            // The lab's one login, as for the Traefik dashboard and Prometheus; Traefik reads
            // the Secret in the Middleware's namespace, so each app gets its copy.
            ctx.uses_secret(super::traefik::DASHBOARD_HTPASSWD, &app.name);
            c.secret_objects.push(SecretObject {
                name: middleware.clone(),
                namespace: ns.into(),
                data: BTreeMap::from([(
                    "users".to_string(),
                    SecretSource::Secret(super::traefik::DASHBOARD_HTPASSWD.into()),
                )]),
                labels: labels_map(&app.name, &middleware, "ingress"),
            });
        }
        if app.auth == AppAuth::Sso {
            let (mw, annotation) = super::authelia::middleware(ns, &app.name);
            ing["metadata"]["annotations"]["traefik.ingress.kubernetes.io/router.middlewares"] =
                json!(annotation);
            c.add("sso.yaml", mw);
        }
        c.add("ingress.yaml", ing);
        c.endpoints.push(Endpoint {
            name: app.name.clone(),
            url: format!("https://{host}"),
            host: host.clone(),
            description: match app.auth {
                AppAuth::Basic => format!("app {} (dashboard login)", app.name),
                AppAuth::Sso => format!("app {} (single sign-on)", app.name),
                AppAuth::None => format!("app {}", app.name),
            },
        });
        c.health.push(HealthCheck::Certificate {
            namespace: ns.into(),
            name: format!("{}-tls", app.name),
        });
        c.health.push(HealthCheck::Url {
            url: format!("https://{host}"),
            host: host.clone(),
        });
        access.insert(
            0,
            match app.auth {
                AppAuth::Basic => format!(
                    "https://{host} (user `admin`, password: `homelab secrets get {}`)",
                    super::traefik::DASHBOARD_PASSWORD
                ),
                AppAuth::Sso => format!("https://{host} (single sign-on)"),
                AppAuth::None => format!("https://{host}"),
            },
        );
    }
    let mut what = format!(
        "The container image `{}` listening on port {}, from the `apps:` list of homelab.yaml",
        app.image, app.port
    );
    if app.host_network {
        what.push_str(", on the node's network");
    }
    if app.gpu {
        what.push_str(", on a GPU node");
    }
    what.push('.');
    c.docs = crate::ComponentDocs {
        title: app.name.clone(),
        what,
        why: "Declared in homelab.yaml so that it is rebuilt with the lab.".into(),
        access,
        data: if app.volumes.is_empty() {
            "No persistent volume.".to_string()
        } else {
            app.volumes
                .iter()
                .map(|v| match &v.source {
                    VolumeSource::Claim { size } => {
                        format!("{} ({size}) at {} on NFS", v.name, v.mount_path)
                    }
                    VolumeSource::Share { share, sub_path } => format!(
                        "{} at {}: the share `{share}`{}",
                        v.name,
                        v.mount_path,
                        sub_path
                            .as_ref()
                            .map_or_else(String::new, |p| format!(" (its directory `{p}`)"))
                    ),
                })
                .collect::<Vec<_>>()
                .join("; ")
        },
        backup: match (&app.database, app.backup && !app.volumes.is_empty()) {
            (Some(db), true) => {
                format!("Volumes: NAS snapshots; database `{db}`: the nightly PostgreSQL dumps.")
            }
            (Some(db), false) => format!("Database `{db}`: the nightly PostgreSQL dumps."),
            (None, true) => "Volumes: NAS snapshots (see docs/runbooks/nfs-restore.md).".into(),
            (None, false) => "Not backed up.".into(),
        },
        requirements: vec!["FR7".into(), "FR8".into(), "FR11".into(), "NFR21".into()],
    };
    c
}

/// The container's requests and limits, with one NVIDIA GPU for a GPU app.
fn resources(app: &App) -> Value {
    let r = &app.resources;
    let mut requests = serde_json::Map::new();
    let mut limits = serde_json::Map::new();
    if let Some(v) = &r.requests_cpu {
        requests.insert("cpu".into(), json!(v));
    }
    if let Some(v) = &r.requests_memory {
        requests.insert("memory".into(), json!(v));
    }
    if let Some(v) = &r.limits_cpu {
        limits.insert("cpu".into(), json!(v));
    }
    if let Some(v) = &r.limits_memory {
        limits.insert("memory".into(), json!(v));
    }
    if app.gpu {
        limits.insert("nvidia.com/gpu".into(), json!(1));
    }
    let mut out = serde_json::Map::new();
    if !requests.is_empty() {
        out.insert("requests".into(), Value::Object(requests));
    }
    if !limits.is_empty() {
        out.insert("limits".into(), Value::Object(limits));
    }
    Value::Object(out)
}
