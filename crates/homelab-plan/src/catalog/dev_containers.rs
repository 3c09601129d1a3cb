//! Dev containers: one Deployment each with sshd, a workspace on node-local storage, keys from
//! a ConfigMap and git credentials from a Secret; plus the base image's Dockerfile and the
//! image reference made from its content hash. Pure: it builds nothing and reads no disk.

use std::collections::BTreeMap;

use serde_json::json;
use sha2::{Digest, Sha256};

use super::Ctx;
use super::dev_proxy::NS;
use super::local_path::CLASS as LOCAL_CLASS;
use crate::meta::{labels, labels_map, metadata, namespace, pvc, selector, service};
use crate::{Component, HealthCheck, Layer, PlainFile, SecretObject, SecretSource, versions};

pub(super) fn component(ctx: &Ctx) -> Component {
    let s = &ctx.lab.services;
    let host = ctx.fqdn(s.dev_proxy.as_ref().map_or("dev", |d| d.host.as_str()));
    let mut c = Component::new("dev-containers", Layer::Applications, Some(NS));
    c.depends_on
        .extend(["nginx".to_string(), "local-path".to_string()]);
    c.add("namespace.yaml", namespace(NS, Some("baseline")));
    let context = build_context();
    let built = built_image(&registry_host(ctx), &context);
    c.files.extend(context);
    for d in &s.dev_containers {
        let image = d.image.as_deref().unwrap_or(&built);
        let name = format!("dev-{}", d.name);
        let l = || labels("dev-container", &name, "development");
        let git_secret = format!("devcontainer-{}-git-credentials", d.name);
        // Optional: the container works without, only `git push` over https asks for a
        // password; SSH remotes and local work need nothing (ADR 0133).
        ctx.need_optional_secret(
            &git_secret,
            "dev-containers",
            &format!("git credentials for dev container `{}` (a `.git-credentials` line, e.g. https://user:token@github.com)", d.name),
            &format!("dev container `{}` runs without git credentials (git over https asks for them; SSH remotes work)", d.name),
        );
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
                            // `optional`: the Secret exists only once its credentials are set.
                            {"name": "git", "secret": {"secretName": format!("{name}-git"), "defaultMode": 0o400, "optional": true}},
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
            a.push(format!("Build the image: `docker build -t {built} base-image/ && docker push {built}`"));
            a
        },
        data: "The workspace (/workspace) on a local-path volume on one node; SSH host keys are kept there so they survive restarts.".into(),
        backup: "Workspaces are not backed up: push your branches. Losing the node loses the workspace.".into(),
        requirements: vec!["FR59".into(), "FR60".into(), "FR61".into(), "FR62".into(), "FR63".into()],
    };
    c
}

/// The host of the lab's registry, where the built image is pushed and pulled from.
fn registry_host(ctx: &Ctx) -> String {
    ctx.fqdn("registry")
}

/// The base image's build context: the files under `base-image/` in the rendered tree.
fn build_context() -> Vec<PlainFile> {
    vec![
        PlainFile {
            path: "base-image/Dockerfile".into(),
            content: dockerfile(),
            mode: 0o644,
        },
        PlainFile {
            path: "base-image/entrypoint.sh".into(),
            content: ENTRYPOINT.into(),
            mode: 0o755,
        },
    ]
}

/// `REGISTRY/homelab/dev-container:HASH12`, the tag being the first 12 hex digits of the
/// SHA-256 of the build context (each file's path, mode and content, length-prefixed), so that
/// any change to what goes into the image gives a new tag and nothing else does.
pub(crate) fn built_image(registry: &str, context: &[PlainFile]) -> String {
    let mut files: Vec<&PlainFile> = context.iter().collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let mut h = Sha256::new();
    for f in files {
        for part in [
            f.path.as_bytes(),
            format!("{:o}", f.mode).as_bytes(),
            f.content.as_bytes(),
        ] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
    }
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{registry}/{}:{}",
        versions::DEV_CONTAINER_REPOSITORY,
        &hex[..12]
    )
}

fn dockerfile() -> String {
    format!(
        r#"# Base image of the lab's dev containers (FR60-FR62).
# The lab builds it from this directory and tags it with the hash of the directory's files,
# so editing a file here gives a new tag; see the dev containers' page for the command.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tag_is_the_build_context_hash() {
        let context = build_context();
        let image = built_image("registry.home.example.com", &context);
        let tag = image
            .strip_prefix("registry.home.example.com/homelab/dev-container:")
            .expect("the lab's registry and repository");
        assert_eq!(tag.len(), 12);
        assert!(
            tag.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_eq!(
            image,
            built_image("registry.home.example.com", &context),
            "stable"
        );
        let reversed: Vec<PlainFile> = context.iter().rev().cloned().collect();
        assert_eq!(
            image,
            built_image("registry.home.example.com", &reversed),
            "order-free"
        );
        assert!(built_image("registry.other.example.com", &context).ends_with(&format!(":{tag}")));
    }

    #[test]
    fn any_change_to_the_build_context_changes_the_tag() {
        let context = build_context();
        let tag = |c: &[PlainFile]| built_image("r.example.com", c);
        let base = tag(&context);
        let mut edited = context.clone();
        edited[0].content.push_str("RUN true\n");
        assert_ne!(tag(&edited), base, "the Dockerfile's content");
        let mut edited = context.clone();
        edited[1].content.push('\n');
        assert_ne!(tag(&edited), base, "another file of the context");
        let mut edited = context.clone();
        edited[1].mode = 0o644;
        assert_ne!(tag(&edited), base, "a file's mode");
        // Moving bytes from one file's end to the next path's start must not collide.
        let mut a = context.clone();
        a[0].content.push('x');
        let mut b = context.clone();
        b[0].path.push('x');
        assert_ne!(tag(&a), tag(&b));
    }
}
