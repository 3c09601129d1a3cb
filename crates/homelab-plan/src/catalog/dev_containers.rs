//! Dev containers: one Deployment each with sshd, a workspace on node-local storage, keys from
//! a ConfigMap and git credentials from a Secret; plus the base image's Dockerfile.

use std::collections::BTreeMap;

use serde_json::json;

use super::Ctx;
use super::dev_proxy::NS;
use super::local_path::CLASS as LOCAL_CLASS;
use crate::meta::{labels, labels_map, metadata, namespace, pvc, selector, service};
use crate::{
    Component, HealthCheck, Layer, PlainFile, SecretGenerator, SecretObject, SecretSource, versions,
};

pub(super) fn component(ctx: &Ctx) -> Component {
    let s = &ctx.lab.services;
    let host = ctx.fqdn(s.dev_proxy.as_ref().map_or("dev", |d| d.host.as_str()));
    let mut c = Component::new("dev-containers", Layer::Applications, Some(NS));
    c.depends_on
        .extend(["nginx".to_string(), "local-path".to_string()]);
    c.add("namespace.yaml", namespace(NS, Some("baseline")));
    let image = format!(
        "{}:{}",
        versions::DEV_CONTAINER_IMAGE,
        versions::DEV_CONTAINER_BASE.version
    );
    c.files.push(PlainFile {
        path: "base-image/Dockerfile".into(),
        content: dockerfile(),
        mode: 0o644,
    });
    c.files.push(PlainFile {
        path: "base-image/entrypoint.sh".into(),
        content: ENTRYPOINT.into(),
        mode: 0o755,
    });
    for d in &s.dev_containers {
        let name = format!("dev-{}", d.name);
        let l = || labels("dev-container", &name, "development");
        let git_secret = format!("devcontainer-{}-git-credentials", d.name);
        ctx.need_secret(&git_secret, SecretGenerator::UserProvided, "dev-containers", &format!("git credentials for dev container `{}` (a `.git-credentials` line, e.g. https://user:token@github.com)", d.name));
        c.secret_objects.push(SecretObject {
            name: format!("{name}-git"),
            namespace: NS.into(),
            data: BTreeMap::from([(
                ".git-credentials".to_string(),
                SecretSource::Secret(git_secret.clone()),
            )]),
            labels: labels_map("dev-container", &name, "development"),
        });
        c.add(&format!("{name}.yaml"), json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": metadata(&format!("{name}-ssh"), Some(NS), l()),
            "data": {"authorized_keys": d.authorized_keys.iter().map(|k| format!("{k}\n")).collect::<String>()},
        }));
        c.add(
            &format!("{name}.yaml"),
            pvc(
                &format!("{name}-workspace"),
                NS,
                l(),
                &d.workspace.to_string(),
                LOCAL_CLASS,
                "ReadWriteOnce",
            ),
        );
        c.add(&format!("{name}.yaml"), json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": metadata(&name, Some(NS), l()),
            "spec": {
                "replicas": 1,
                // The workspace volume lives on one node and cannot be shared during a rollout.
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": selector("dev-container", &name)},
                "template": {
                    "metadata": {"labels": l()},
                    "spec": {
                        "securityContext": {"fsGroup": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
                        "containers": [{
                            "name": "dev",
                            "image": image,
                            "ports": [{"name": "ssh", "containerPort": 22}],
                            "env": [{"name": "DEV_CONTAINER_NAME", "value": d.name}],
                            "volumeMounts": [
                                {"name": "workspace", "mountPath": "/workspace"},
                                {"name": "ssh-keys", "mountPath": "/etc/ssh/authorized_keys.d", "readOnly": true},
                                {"name": "git", "mountPath": "/etc/dev-secrets", "readOnly": true},
                            ],
                            "readinessProbe": {"tcpSocket": {"port": "ssh"}, "periodSeconds": 10},
                            "resources": {
                                "requests": {"cpu": "250m", "memory": "512Mi"},
                                "limits": {"cpu": d.cpu, "memory": d.memory.to_string()},
                            },
                        }],
                        "volumes": [
                            {"name": "workspace", "persistentVolumeClaim": {"claimName": format!("{name}-workspace")}},
                            {"name": "ssh-keys", "configMap": {"name": format!("{name}-ssh")}},
                            {"name": "git", "secret": {"secretName": format!("{name}-git"), "defaultMode": 0o400}},
                        ],
                    },
                },
            },
        }));
        c.add(
            &format!("{name}.yaml"),
            service(
                &name,
                NS,
                l(),
                selector("dev-container", &name),
                json!([{"name": "ssh", "port": 22, "targetPort": "ssh"}]),
            ),
        );
        c.health.push(HealthCheck::Workload {
            kind: "Deployment".into(),
            namespace: NS.into(),
            name: name.clone(),
        });
        c.health.push(HealthCheck::Pvc {
            namespace: NS.into(),
            name: format!("{name}-workspace"),
        });
    }
    let access: Vec<String> = s
        .dev_containers
        .iter()
        .map(|d| format!("`{}`: `ssh -p {} dev@{host}`; in VS Code, Remote-SSH with Host {host}, Port {}, User dev", d.name, d.ssh_port, d.ssh_port))
        .collect();
    c.docs = crate::ComponentDocs {
        title: "Dev containers".into(),
        what: "Remote development environments reachable over SSH through the dev proxy: Ubuntu with git (worktrees), Node.js, Python and the Claude Code CLI, a workspace on the node's disk, your public keys, and git credentials from the secrets file.".into(),
        why: "A Deployment per container is simple to add and remove; node-local storage makes git and builds fast (FR63); the base image is built from the Dockerfile here, so it is reproducible.".into(),
        access: {
            let mut a = access;
            a.push(format!("Build the image: `docker build -t {image} base-image/ && docker push {image}`"));
            a
        },
        data: "The workspace (/workspace) on a local-path volume on one node; SSH host keys are kept there so they survive restarts.".into(),
        backup: "Workspaces are not backed up: push your branches. Losing the node loses the workspace.".into(),
        requirements: vec!["FR59".into(), "FR60".into(), "FR61".into(), "FR62".into(), "FR63".into()],
    };
    c
}

fn dockerfile() -> String {
    format!(
        r#"# Base image of the lab's dev containers (FR60-FR62).
# Build and push it where the cluster can pull it:
#   docker build -t {image}:{tag} . && docker push {image}:{tag}
{renovate}
FROM {base}

ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      openssh-server sudo git git-lfs curl ca-certificates gnupg less vim tmux \
      build-essential python3 python3-pip python3-venv nodejs npm jq ripgrep \
 && rm -rf /var/lib/apt/lists/* \
 && npm install -g @anthropic-ai/claude-code \
 && npm cache clean --force

# The login user; passwordless sudo inside the container only.
RUN useradd --create-home --uid 1000 --shell /bin/bash dev \
 && echo 'dev ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/dev \
 && mkdir -p /run/sshd /workspace \
 && chown dev:dev /workspace

# Keys only: no passwords, no root login; keys come from the mounted ConfigMap.
RUN printf '%s\n' \
      'PasswordAuthentication no' \
      'KbdInteractiveAuthentication no' \
      'PermitRootLogin no' \
      'AuthorizedKeysFile /etc/ssh/authorized_keys.d/authorized_keys' \
      'AllowUsers dev' \
      'HostKey /workspace/.sshd/ssh_host_ed25519_key' \
      'HostKey /workspace/.sshd/ssh_host_rsa_key' \
    > /etc/ssh/sshd_config.d/homelab.conf \
 && git config --system credential.helper 'store --file /etc/dev-secrets/.git-credentials' \
 && git config --system init.defaultBranch main

COPY entrypoint.sh /usr/local/bin/entrypoint.sh
EXPOSE 22
WORKDIR /workspace
ENTRYPOINT ["/usr/local/bin/entrypoint.sh"]
"#,
        image = versions::DEV_CONTAINER_IMAGE,
        tag = versions::DEV_CONTAINER_BASE.version,
        renovate = versions::DEV_CONTAINER_BASE.renovate_comment(),
        base = versions::DEV_CONTAINER_BASE.image(),
    )
}

const ENTRYPOINT: &str = r#"#!/bin/sh
# Keeps the SSH host keys on the workspace volume, so clients see the same host after a
# restart, then runs sshd in the foreground.
set -eu
mkdir -p /workspace/.sshd
chmod 700 /workspace/.sshd
[ -f /workspace/.sshd/ssh_host_ed25519_key ] || ssh-keygen -q -t ed25519 -N '' -f /workspace/.sshd/ssh_host_ed25519_key
[ -f /workspace/.sshd/ssh_host_rsa_key ] || ssh-keygen -q -t rsa -b 3072 -N '' -f /workspace/.sshd/ssh_host_rsa_key
chown dev:dev /workspace
exec /usr/sbin/sshd -D -e
"#;
