//! `services.devContainers` in the spec: the image override read and checked as an image
//! reference, absent by default; a wrong one reported with its code at file:line:col.

mod common;

use common::{errors, load, messages};

/// A one-node lab whose only service is the dev container `tom`, with `{extra}` appended to
/// its mapping.
fn spec(extra: &str) -> String {
    format!(
        "name: lab
network:
  subnet: 192.168.2.0/24
  gateway: 192.168.2.1
  domain: home.example.com
  loadBalancerPool: 192.168.2.100-192.168.2.120
cluster:
  k3sVersion: v1.34.2+k3s1
  nodes:
    - name: k3s-master
      role: server
      address: 192.168.2.20
storage:
  nfs: {{server: 192.168.2.2, path: /volume1/k8s-data}}
tls:
  acmeEmail: you@example.com
  challenge: {{type: dns01, provider: cloudflare, apiToken: {{secret: cloudflare-api-token}}}}
services:
  devContainers:
    - name: tom
      sshPort: 2222
      authorizedKeys:
        - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTestsOnly tom@laptop
{extra}"
    )
}

#[test]
fn without_an_image_the_lab_builds_its_own() {
    let loaded = load(&spec(""));
    assert_eq!(loaded.lab.services.dev_containers[0].image, None);
}

#[test]
fn an_image_reference_overrides_the_built_one() {
    let loaded = load(&spec(
        "      image: ghcr.io/you/dev-box:1.2@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n",
    ));
    assert_eq!(
        loaded.lab.services.dev_containers[0].image.as_deref(),
        Some(
            "ghcr.io/you/dev-box:1.2@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
        )
    );
    let loaded = load(&spec(
        "      image: registry.home.example.com:5000/dev:0.1\n",
    ));
    assert_eq!(
        loaded.lab.services.dev_containers[0].image.as_deref(),
        Some("registry.home.example.com:5000/dev:0.1")
    );
}

#[test]
fn a_malformed_image_is_an_error_at_its_place() {
    let lines = spec("").lines().count();
    for (image, said) in [
        ("Ghcr.io/You/Dev:1", "the name part `You`"),
        ("'ghcr.io/you/dev:'", "the tag after `:`"),
        ("'ghcr.io/you/dev box:1'", "the name part `dev box`"),
        ("ghcr.io/you/dev@sha256:abc", "the digest after `@`"),
        ("''", "the image reference is empty"),
    ] {
        let text = spec(&format!("      image: {image}\n"));
        assert_eq!(
            errors(&text),
            [format!("invalid-image {}:14", lines + 1)],
            "{image}"
        );
        let m = messages(&text);
        assert!(m.contains(said), "{image}: {m}");
        assert!(m.contains("e.g. `ghcr.io/you/dev-container:1.0`"), "{m}");
    }
}
