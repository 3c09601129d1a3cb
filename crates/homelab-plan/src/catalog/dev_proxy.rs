//! The nginx dev proxy: `dev.<domain>/<path>` to development servers on the LAN, and SSH to
//! the dev containers through nginx `stream` ports on the ingress address; reloads itself when
//! its ConfigMap changes, without a pod restart.

use serde_json::json;

use super::Ctx;
use super::traefik::SHARED_IP_KEY;
use crate::meta::{ingress, labels, metadata, namespace, selector, service};
use crate::{Component, Endpoint, HealthCheck, Layer, versions};

pub(crate) const NS: &str = "dev";
/// CoreDNS' address in every K3s cluster with the default service network.
const CLUSTER_DNS: &str = "10.43.0.10";
const HTTP_PORT: u16 = 8080;

pub(super) fn component(ctx: &Ctx) -> Component {
    let s = &ctx.lab.services;
    let host_label = s.dev_proxy.as_ref().map_or("dev", |d| d.host.as_str());
    let host = ctx.fqdn(host_label);
    let mut c = Component::new("nginx", Layer::Applications, Some(NS));
    c.depends_on
        .extend(["traefik".to_string(), "metallb".to_string()]);
    c.add("namespace.yaml", namespace(NS, Some("baseline")));
    let l = || labels("nginx", "nginx-proxy", "proxy");
    let conf = nginx_conf(ctx);
    c.add(
        "configmap.yaml",
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": metadata("nginx-proxy-config", Some(NS), l()),
            "data": {"nginx.conf": conf},
        }),
    );
    c.add("deployment.yaml", json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": metadata("nginx-proxy", Some(NS), l()),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector("nginx", "nginx-proxy")},
            "template": {
                "metadata": {"labels": l()},
                "spec": {
                    "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "nginx",
                        "image": versions::NGINX.image(),
                        "command": ["/bin/sh", "/etc/nginx/homelab/reload-loop.sh"],
                        "ports": ports(ctx),
                        "volumeMounts": [
                            {"name": "config", "mountPath": "/etc/nginx/homelab"},
                        ],
                        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10},
                        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "128Mi"}},
                    }],
                    "volumes": [{"name": "config", "configMap": {"name": "nginx-proxy-config", "items": [
                        {"key": "nginx.conf", "path": "nginx.conf"},
                        {"key": "reload-loop.sh", "path": "reload-loop.sh"},
                    ]}}],
                },
            },
        },
    }));
    // The ConfigMap carries the reload loop too, so the image stays the stock one.
    if let Some(obj) = c.objects.iter_mut().find(|o| o.kind() == "ConfigMap") {
        obj.manifest["data"]["reload-loop.sh"] = json!(RELOAD_LOOP);
    }
    c.add(
        "service.yaml",
        service(
            "nginx-proxy",
            NS,
            l(),
            selector("nginx", "nginx-proxy"),
            json!([{"name": "http", "port": 80, "targetPort": "http"}]),
        ),
    );
    if !s.dev_containers.is_empty() {
        let ssh_ports: Vec<_> = s
            .dev_containers
            .iter()
            .map(|d| json!({"name": format!("ssh-{}", d.name), "port": d.ssh_port, "targetPort": d.ssh_port, "protocol": "TCP"}))
            .collect();
        c.add("service.yaml", json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {
                "name": "nginx-proxy-ssh",
                "namespace": NS,
                "labels": l(),
                "annotations": {
                    // Share the ingress address, so `ssh -p PORT dev@dev.<domain>` works.
                    "metallb.io/loadBalancerIPs": ctx.lab.network.ingress_ip.to_string(),
                    "metallb.io/allow-shared-ip": SHARED_IP_KEY,
                },
            },
            "spec": {"type": "LoadBalancer", "selector": selector("nginx", "nginx-proxy"), "ports": ssh_ports},
        }));
        c.health.push(HealthCheck::LoadBalancer {
            namespace: NS.into(),
            name: "nginx-proxy-ssh".into(),
            expected_ip: Some(ctx.lab.network.ingress_ip.to_string()),
        });
    }
    let mut ing = ingress("nginx-proxy", NS, l(), &host, "nginx-proxy", 80, ctx.issuer);
    if super::authelia::sso(ctx).is_some() {
        // Development servers have no login; the proxy puts them on the LAN's HTTPS.
        let (mw, annotation) = super::authelia::middleware(NS, "nginx");
        ing["metadata"]["annotations"]["traefik.ingress.kubernetes.io/router.middlewares"] =
            json!(annotation);
        c.add("sso.yaml", mw);
    }
    c.add("ingress.yaml", ing);
    c.endpoints.push(Endpoint {
        name: "dev-proxy".into(),
        url: format!("https://{host}"),
        host: host.clone(),
        description: "dev proxy: /<path> to development servers on the LAN".into(),
    });
    c.health.push(HealthCheck::Workload {
        kind: "Deployment".into(),
        namespace: NS.into(),
        name: "nginx-proxy".into(),
    });
    c.health.push(HealthCheck::Certificate {
        namespace: NS.into(),
        name: "nginx-proxy-tls".into(),
    });
    c.health.push(HealthCheck::Url {
        url: format!("https://{host}/healthz"),
        host: host.clone(),
    });
    let routes: Vec<String> = s
        .dev_proxy
        .iter()
        .flat_map(|d| d.routes.iter())
        .map(|r| {
            format!(
                "https://{host}{}/ -> http://{}:{}/",
                r.path, r.target_host, r.target_port
            )
        })
        .collect();
    let mut access = routes.clone();
    for d in &s.dev_containers {
        access.push(format!(
            "`ssh -p {} dev@{host}` -> dev container `{}`",
            d.ssh_port, d.name
        ));
    }
    c.docs = crate::ComponentDocs {
        title: "Dev proxy (nginx)".into(),
        what: "nginx routing URL paths under the dev host to development servers on the LAN (with WebSocket upgrades for hot reload), and SSH ports to the dev containers through its `stream` module.".into(),
        why: "One stable HTTPS address with a real certificate for any dev server, without touching the router; adding a route is a spec change and `homelab apply`, and nginx reloads within a minute without dropping connections or restarting the pod (FR43).".into(),
        access,
        data: "None: the configuration is the ConfigMap `nginx-proxy-config`.".into(),
        backup: "Nothing to back up.".into(),
        requirements: vec!["FR41".into(), "FR42".into(), "FR43".into(), "FR59".into(), "FR61".into()],
    };
    c
}

fn ports(ctx: &Ctx) -> serde_json::Value {
    let mut p = vec![json!({"name": "http", "containerPort": HTTP_PORT})];
    for d in &ctx.lab.services.dev_containers {
        p.push(json!({"name": format!("ssh-{}", short(&d.name)), "containerPort": d.ssh_port}));
    }
    json!(p)
}

/// Container port names are limited to 15 characters.
fn short(name: &str) -> String {
    name.chars().take(11).collect()
}

/// The whole nginx configuration. Targets are resolved at request time (variables plus a
/// resolver), so a dev server or container that does not exist yet cannot stop nginx.
pub(crate) fn nginx_conf(ctx: &Ctx) -> String {
    let s = &ctx.lab.services;
    let mut http_routes = String::new();
    for (i, r) in s.dev_proxy.iter().flat_map(|d| d.routes.iter()).enumerate() {
        http_routes.push_str(&format!(
            "\n        location = {path} {{\n            return 301 {path}/;\n        }}\n\n        location {path}/ {{\n            set $route_{i} \"{host}:{port}\";\n            rewrite ^{path}/(.*)$ /$1 break;\n            proxy_pass http://$route_{i};\n            proxy_http_version 1.1;\n            proxy_set_header Host $host;\n            proxy_set_header Upgrade $http_upgrade;\n            proxy_set_header Connection $connection_upgrade;\n            proxy_set_header X-Forwarded-Prefix {path};\n            proxy_set_header X-Forwarded-Proto https;\n            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n            proxy_read_timeout 1h;\n        }}\n",
            path = r.path,
            host = r.target_host,
            port = r.target_port,
        ));
    }
    let mut stream = String::new();
    if !s.dev_containers.is_empty() {
        stream.push_str(&format!(
            "\nstream {{\n    resolver {CLUSTER_DNS} valid=30s ipv6=off;\n"
        ));
        for d in &s.dev_containers {
            stream.push_str(&format!(
                "\n    # dev container {name}\n    server {{\n        listen {port};\n        set $dev_{var} \"dev-{name}.{NS}.svc.cluster.local:22\";\n        proxy_pass $dev_{var};\n        proxy_connect_timeout 10s;\n        proxy_timeout 12h;\n    }}\n",
                name = d.name,
                var = d.name.replace('-', "_"),
                port = d.ssh_port,
            ));
        }
        stream.push_str("}\n");
    }
    format!(
        "# nginx configuration of the dev proxy, written by homelab from homelab.yaml.\nworker_processes 1;\npid /tmp/nginx.pid;\nerror_log /dev/stderr warn;\n\nevents {{\n    worker_connections 1024;\n}}\n\nhttp {{\n    access_log /dev/stdout;\n    client_body_temp_path /tmp/client_body;\n    proxy_temp_path /tmp/proxy;\n    fastcgi_temp_path /tmp/fastcgi;\n    uwsgi_temp_path /tmp/uwsgi;\n    scgi_temp_path /tmp/scgi;\n    client_max_body_size 100m;\n    resolver {CLUSTER_DNS} valid=30s ipv6=off;\n\n    map $http_upgrade $connection_upgrade {{\n        default upgrade;\n        ''      close;\n    }}\n\n    server {{\n        listen {HTTP_PORT};\n\n        location = /healthz {{\n            access_log off;\n            default_type text/plain;\n            return 200 \"ok\\n\";\n        }}\n{http_routes}\n        location / {{\n            default_type text/plain;\n            return 404 \"no dev route for this path\\n\";\n        }}\n    }}\n}}\n{stream}"
    )
}

/// Starts nginx and reloads it when the mounted configuration changes (Kubernetes updates a
/// ConfigMap volume in place within about a minute); a broken new config is reported and the
/// running one kept.
pub(crate) const RELOAD_LOOP: &str = r#"#!/bin/sh
# Runs nginx and reloads it when /etc/nginx/homelab/nginx.conf changes.
conf=/etc/nginx/homelab/nginx.conf
nginx -c "$conf" -g 'daemon off;' &
pid=$!
last=$(md5sum "$conf" | cut -d' ' -f1)
trap 'kill -TERM "$pid"; wait "$pid"; exit 0' TERM INT
while kill -0 "$pid" 2>/dev/null; do
    sleep 5 &
    wait $!
    now=$(md5sum "$conf" | cut -d' ' -f1)
    if [ "$now" != "$last" ]; then
        if nginx -t -c "$conf" 2>/tmp/nginx-test.log; then
            nginx -c "$conf" -s reload && echo "configuration changed: nginx reloaded"
            last=$now
        else
            echo "configuration changed but is invalid; keeping the running one:" >&2
            cat /tmp/nginx-test.log >&2
            last=$now
        fi
    fi
done
wait "$pid"
exit $?
"#;
