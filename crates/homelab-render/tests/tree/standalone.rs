//! The tree as a reader without the tool meets it: the traffic and apply-order diagrams drawn
//! from the plan (with and without components), the host-preparation guide written with the
//! lab's values, the user's own ADRs in the index, and every `sops -d` of the READMEs told
//! where the age key and the secrets file are.

use homelab_render::{Flavor, Surroundings, UserAdr};

use crate::common::*;

fn architecture(spec: &str) -> String {
    let tree = render_k3s(&plan_of(spec));
    tree.text("docs/diagrams/architecture.md")
        .expect("architecture.md")
        .to_string()
}

fn assert_edges(text: &str, edges: &[&str]) {
    for e in edges {
        assert!(
            text.lines().any(|l| l.trim() == *e),
            "missing edge `{e}` in:\n{text}"
        );
    }
}

fn assert_no_line_containing(text: &str, parts: &[&str]) {
    for p in parts {
        assert!(
            !text.lines().any(|l| l.contains(p)),
            "unexpected `{p}` in:\n{text}"
        );
    }
}

/// The minimal preset without its NAS.
fn no_storage_spec() -> String {
    let spec = minimal_spec();
    let start = spec
        .find("\nstorage:")
        .expect("the minimal spec has storage");
    let end = spec[start + 1..]
        .find("\ntls:")
        .map(|i| i + start + 1)
        .expect("tls follows storage");
    let s = format!("{}{}", &spec[..start], &spec[end..]);
    assert!(!s.contains("nfs:"));
    s
}

#[test]
fn the_architecture_diagram_follows_a_request_to_the_nas_and_an_alert_to_the_phone() {
    let text = architecture(SEED);
    assert!(text.contains("```mermaid\nflowchart LR\n"));
    assert_edges(
        &text,
        &[
            "client -->|\"name under home.jetzinger.com\"| dns",
            "dns -->|\"192.168.2.100\"| metallb",
            "metallb -->|\"ports 80, 443\"| traefik",
            "traefik -->|\"n8n.home.jetzinger.com\"| svc_n8n",
            "svc_n8n --> pods_n8n",
            "pods_n8n -->|\"SQL\"| svc_postgres",
            "traefik -->|\"paperless.home.jetzinger.com\"| svc_paperless",
            "svc_paperless --> pods_paperless",
            "pods_paperless --> pvc_paperless",
            "pvc_paperless --> nas",
            "pods_postgres --> pvc_postgres",
            "pvc_postgres --> nas",
            // The dev proxy's SSH ports share the ingress address.
            "metallb -->|\"192.168.2.100 nginx-proxy-ssh\"| svc_nginx",
            "prometheus -->|\"alerts\"| alertmanager",
            "alertmanager --> receiver_phone",
            "alertmanager --> receiver_n8n_webhook",
        ],
    );
    assert!(text.contains("nas[(\"NAS 192.168.2.2:/volume1/k8s-data\")]"));
    assert!(text.contains("receiver_phone>\"phone: ntfy (ntfy.sh)\"]"));
    assert!(text.contains("(rewrite at NextDNS)"));
    // Dev-container workspaces are node-local: on local-path, never on the NAS.
    assert!(text.contains("pvc_dev_containers[(\"PVC dev-tom-workspace<br/>on local-path\")]"));
    assert_no_line_containing(&text, &["pvc_dev_containers --> nas"]);
    // The apply order is no longer drawn here.
    assert_no_line_containing(&text, &["c_n8n --> c_postgres"]);
}

#[test]
fn the_apply_order_has_its_own_diagram() {
    let tree = render_k3s(&seed_plan());
    let text = tree
        .text("docs/diagrams/apply-order.md")
        .expect("apply-order.md");
    assert!(text.contains("```mermaid\nflowchart LR\n"));
    assert_edges(
        text,
        &[
            "c_n8n --> c_postgres",
            "c_k3s --> nodes",
            "subgraph applications[\"applications/\"]",
        ],
    );
    assert!(text.contains("node_k3s_master[\"k3s-master<br/>Server 192.168.2.20\"]"));
    let readme = tree.text("README.md").unwrap();
    assert!(readme.contains("[docs/diagrams/apply-order.md](docs/diagrams/apply-order.md)"));
    assert!(readme.contains("[docs/diagrams/architecture.md](docs/diagrams/architecture.md)"));
}

#[test]
fn a_lab_without_monitoring_or_applications_draws_only_what_it_runs() {
    let text = architecture(&minimal_spec());
    assert_edges(
        &text,
        &[
            "client -->|\"name under home.example.com\"| dns",
            "dns -->|\"192.168.2.100\"| metallb",
            "metallb -->|\"ports 80, 443\"| traefik",
        ],
    );
    assert!(text.contains("nas[(\"NAS 192.168.2.2:/volume1/k8s-data\")]"));
    assert_no_line_containing(
        &text,
        &[
            "prometheus",
            "alertmanager",
            "receiver_",
            "svc_n8n",
            "svc_paperless",
            "svc_postgres",
        ],
    );
}

#[test]
fn a_lab_without_a_nas_has_no_nas_in_its_diagram() {
    let with_app = no_storage_spec().replace(
        "tls:",
        "apps:\n  - name: whoami\n    image: docker.io/traefik/whoami:v1.10.3\n    port: 80\ntls:",
    );
    let text = architecture(&with_app);
    assert_edges(
        &text,
        &[
            "traefik -->|\"whoami.home.example.com\"| svc_whoami",
            "svc_whoami --> pods_whoami",
        ],
    );
    assert_no_line_containing(&text, &["nas[", "--> nas"]);
}

fn guide(spec: &str) -> String {
    render_k3s(&plan_of(spec))
        .text("docs/host-preparation.md")
        .expect("docs/host-preparation.md")
        .to_string()
}

#[test]
fn the_host_guide_is_written_with_the_labs_nodes_export_and_domain() {
    let text = guide(SEED);
    for part in [
        "# Preparing the hosts of home-lab",
        "## 1. Install Ubuntu Server",
        "| k3s-master | server (initialises the cluster) | 192.168.2.20/24 | `tom` |",
        "| k3s-worker-02 | agent | 192.168.2.22/24 | `tom` |",
        "addresses: [192.168.2.21/24]",
        "via: 192.168.2.1",
        "sudo usermod -aG sudo tom",
        "ssh-copy-id tom@192.168.2.20",
        "ssh-copy-id tom@192.168.2.22",
        "ssh tom@192.168.2.21 'sudo -n true && hostname'   # prints k3s-worker-01",
        "`192.168.2.2:/volume1/k8s-data`",
        "/volume1/k8s-data 192.168.2.0/24(rw,sync,no_subtree_check,no_root_squash)",
        "showmount -e 192.168.2.2",
        // The etcd snapshot mount of the server.
        "192.168.2.2:/volume1/k8s-data/k3s-etcd-snapshots/home-lab /mnt/k3s-snapshots nfs4",
        "## 6. The lab's names: *.home.jetzinger.com to 192.168.2.100",
        "Rewrites > add `*.home.jetzinger.com` with the answer `192.168.2.100`",
        "dig +short grafana.home.jetzinger.com        # 192.168.2.100",
        "K3s v1.34.2+k3s1",
    ] {
        assert!(text.contains(part), "the guide lacks `{part}`:\n{text}");
    }
    // Only the spec's DNS provider is explained.
    for other in ["misc.dnsmasq_lines", "grey cloud", "local-zone:"] {
        assert!(!text.contains(other), "{other}");
    }
}

#[test]
fn the_host_guide_explains_the_rewrite_of_each_dns_provider() {
    for (provider, says, not) in [
        (
            "cloudflare",
            "an `A` record `*.home.jetzinger.com` with the content `192.168.2.100`, proxy status \"DNS only\"",
            "Rewrites >",
        ),
        (
            "pihole",
            "address=/home.jetzinger.com/192.168.2.100",
            "grey cloud",
        ),
        (
            "manual",
            "BIND: `*.home.jetzinger.com. IN A 192.168.2.100`",
            "misc.dnsmasq_lines",
        ),
    ] {
        let spec = SEED.replace("provider: nextdns", &format!("provider: {provider}"));
        assert_ne!(spec, SEED);
        let text = guide(&spec);
        assert!(text.contains(says), "{provider}: lacks `{says}`:\n{text}");
        assert!(!text.contains(not), "{provider}: has `{not}`");
    }
}

#[test]
fn the_host_guide_of_a_lab_without_users_or_nas_says_so() {
    let text = guide(&no_storage_spec());
    assert!(text.contains(
        "| k3s-master | server (initialises the cluster) | 192.168.2.20/24 | from `~/.ssh/config` |"
    ));
    assert!(text.contains("ssh-copy-id 192.168.2.20\n"));
    assert!(text.contains("This lab has no `storage.nfs`"));
    assert!(!text.contains("showmount"));
}

#[test]
fn the_adr_index_lists_the_users_own_records_beside_the_generated_ones() {
    let root = tempfile::tempdir().unwrap();
    let spec_dir = root.path();
    let out = spec_dir.join("lab");
    let plan = seed_plan();
    write_k3s(&render_k3s(&plan), &out, false);
    std::fs::create_dir_all(spec_dir.join("docs/adrs")).unwrap();
    std::fs::write(
        spec_dir.join("docs/adrs/0001-bigger-nas.md"),
        "Status: accepted\n\n# 0001. Buy a bigger NAS\n\nBecause.\n",
    )
    .unwrap();
    std::fs::write(
        spec_dir.join("docs/adrs/README.md"),
        "# the spec side's own index\n",
    )
    .unwrap();
    let mine = "no heading here\n";
    std::fs::write(out.join("docs/adrs/tailscale [exit] node.md"), mine).unwrap();
    std::fs::write(out.join("docs/adrs/notes.txt"), "not an ADR").unwrap();

    let around = homelab_render::surroundings(&out, spec_dir, &spec_dir.join("secrets.sops.yaml"))
        .expect("surroundings");
    assert_eq!(around.secrets_file, "../secrets.sops.yaml");
    assert_eq!(
        around.user_adrs,
        vec![
            UserAdr {
                link: "<tailscale [exit] node.md>".into(),
                title: "tailscale \\[exit\\] node".into(),
            },
            UserAdr {
                link: "../../../docs/adrs/0001-bigger-nas.md".into(),
                title: "0001. Buy a bigger NAS".into(),
            },
        ],
        "generated ADRs, READMEs and other files are not the user's"
    );
    let tree = homelab_render::render_in(&plan, Flavor::K3s, None, &around).unwrap();
    let index = tree.text("docs/adrs/README.md").unwrap();
    assert!(index.contains(
        "- [ADR-001: K3s instead of upstream Kubernetes (kubeadm)](ADR-001-k3s-over-kubernetes.md)"
    ));
    let own = index
        .split("## The lab's own decisions")
        .nth(1)
        .expect("a section for the user's ADRs");
    assert!(own.contains("- [tailscale \\[exit\\] node](<tailscale [exit] node.md>)"));
    assert!(own.contains("- [0001. Buy a bigger NAS](../../../docs/adrs/0001-bigger-nas.md)"));
    assert!(!own.contains("ADR-001"), "{own}");
    // The user's files stay as they were, and the render owns none of them.
    write_k3s(&tree, &out, false);
    assert_eq!(
        std::fs::read_to_string(out.join("docs/adrs/tailscale [exit] node.md")).unwrap(),
        mine
    );
    let manifest = std::fs::read_to_string(out.join(homelab_render::MANIFEST_FILE)).unwrap();
    assert!(!manifest.contains("tailscale"));

    // Without any, the index has no such section.
    let plain = render_k3s(&plan);
    assert!(
        !plain
            .text("docs/adrs/README.md")
            .unwrap()
            .contains("own decisions")
    );
}

#[test]
fn a_generated_adr_is_never_listed_as_the_users() {
    let around = Surroundings {
        user_adrs: vec![UserAdr {
            link: "ADR-001-k3s-over-kubernetes.md".into(),
            title: "K3s".into(),
        }],
        ..Surroundings::default()
    };
    let tree = homelab_render::render_in(&seed_plan(), Flavor::K3s, None, &around).unwrap();
    assert!(
        !tree
            .text("docs/adrs/README.md")
            .unwrap()
            .contains("own decisions")
    );
}

#[test]
fn every_sops_decrypt_names_the_age_key_and_the_secrets_file_seen_from_the_tree() {
    let around = Surroundings {
        secrets_file: "../my lab/secrets.sops.yaml".into(),
        ..Surroundings::default()
    };
    let tree = homelab_render::render_in(&seed_plan(), Flavor::K3s, None, &around).unwrap();
    let mut seen = 0;
    for (path, _) in tree.iter() {
        let Some(text) = tree.text(path) else {
            continue;
        };
        let mut rest = text;
        while let Some(i) = rest.find("sops -d") {
            let before = &rest[..i];
            assert!(
                before.ends_with("SOPS_AGE_KEY_FILE=$HOME/.config/homelab/age.key "),
                "{path}: a `sops -d` without SOPS_AGE_KEY_FILE before it: {}",
                &rest[i.saturating_sub(60)..(i + 60).min(rest.len())]
            );
            let line_end = rest[i..].find('\n').map_or(rest.len(), |e| i + e);
            let line = &rest[i..line_end];
            if line.contains("--extract") {
                assert!(
                    line.contains(" '../my lab/secrets.sops.yaml'"),
                    "{path}: {line}"
                );
            }
            seen += 1;
            rest = &rest[i + 7..];
        }
    }
    assert!(seen > 20, "only {seen} sops commands");
}

#[test]
fn the_flux_readmes_sops_command_decrypts_every_rendered_secret_with_the_real_sops() {
    use secrecy::ExposeSecret as _;
    let lab = crate::flux::Lab::new(SEED);
    let out = lab.dir.path().join("tree");
    lab.render_into(&out);
    let readme = std::fs::read_to_string(out.join("README.md")).unwrap();
    let line = readme
        .split('`')
        .find(|s| s.ends_with("sops -d <file>"))
        .expect("the README says how to read a rendered Secret");
    assert_eq!(
        line,
        "SOPS_AGE_KEY_FILE=$HOME/.config/homelab/age.key sops -d <file>"
    );
    // The age key where `homelab secrets init` puts it, in a HOME of the test's own.
    let home = lab.dir.path().join("home");
    std::fs::create_dir_all(home.join(".config/homelab")).unwrap();
    std::fs::copy(
        lab.dir.path().join("age.key"),
        home.join(".config/homelab/age.key"),
    )
    .unwrap();
    let sops_dir = venv().join("bin");
    let mut checked = 0;
    for c in &lab.plan.components {
        for s in &c.secret_objects {
            let file = format!("{}/secret-{}.sops.yaml", c.dir(), s.name);
            let output = run_ok(
                std::process::Command::new("bash")
                    .arg("-c")
                    .arg(line.replace("<file>", &file))
                    .current_dir(&out)
                    .env_clear()
                    .env("HOME", &home)
                    .env("SOPS_DISABLE_VERSION_CHECK", "1")
                    .env(
                        "PATH",
                        format!(
                            "{}:{}",
                            sops_dir.display(),
                            std::env::var("PATH").unwrap_or_default()
                        ),
                    ),
            );
            let plain = yaml_value(&String::from_utf8(output.stdout).unwrap());
            assert_eq!(plain["kind"], "Secret", "{file}");
            for (key, source) in &s.data {
                if let homelab_plan::SecretSource::Secret(name) = source {
                    let want = lab
                        .canaries
                        .value(name)
                        .unwrap()
                        .expose_secret()
                        .to_string();
                    assert_eq!(
                        plain["stringData"][key]
                            .as_str()
                            .or(plain["data"][key].as_str()),
                        Some(want.as_str()),
                        "{file}: {key}"
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 5, "only {checked} values checked");
}
