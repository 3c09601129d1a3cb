//! The spec's `secrets.vault` section: defaults, the addresses it accepts, and each mistake
//! reported at its place with the value shown (settings, not secrets).

use homelab_spec::lab::{VaultAuth, VaultSettings};
use homelab_spec::templates::SEED;
use homelab_spec::{InvalidSpec, LoadedSpec, load_str};

fn with_secrets(section: &str) -> Result<LoadedSpec, InvalidSpec> {
    load_str("homelab.yaml", &format!("{SEED}\n{section}"))
}

fn vault(section: &str) -> VaultSettings {
    let loaded = with_secrets(section).unwrap_or_else(|e| panic!("{}", e.render()));
    loaded.lab.secrets.vault.expect("a vault section")
}

fn errors(section: &str) -> Vec<(String, String)> {
    let invalid = with_secrets(section).expect_err(section);
    invalid
        .errors()
        .map(|d| (d.code.to_string(), d.message.clone()))
        .collect()
}

#[test]
fn defaults_are_the_transit_mount_and_a_token() {
    let v = vault(
        "secrets:\n  vault:\n    address: https://bao.lab.example.com:8200/\n    key: homelab\n",
    );
    assert_eq!(
        v,
        VaultSettings {
            address: "https://bao.lab.example.com:8200".into(),
            transit_path: "transit".into(),
            key: "homelab".into(),
            auth: VaultAuth::Token,
        }
    );
    assert_eq!(
        v.key_uri(),
        "https://bao.lab.example.com:8200/v1/transit/keys/homelab"
    );
    assert!(
        with_secrets("secrets: {}\n")
            .unwrap()
            .lab
            .secrets
            .vault
            .is_none()
    );
}

#[test]
fn every_setting_is_read_and_loopback_http_is_no_warning() {
    for (address, path) in [
        ("http://127.0.0.1:8200", "/sops/transit/"),
        ("http://localhost:8200", "transit"),
        ("http://[::1]:8200", "transit"),
        ("https://[fd00::5]", "transit"),
    ] {
        let loaded = with_secrets(&format!(
            "secrets:\n  vault:\n    address: {address}\n    transitPath: {path}\n    key: lab.key_1\n    auth: approle\n"
        ))
        .unwrap_or_else(|e| panic!("{address}: {}", e.render()));
        let v = loaded.lab.secrets.vault.unwrap();
        assert_eq!(v.address, address);
        assert_eq!(v.transit_path, path.trim_matches('/'));
        assert_eq!(v.auth, VaultAuth::Approle);
        assert!(
            !loaded.warnings.iter().any(|w| w.code == "vault-plain-http"),
            "{address}"
        );
    }
}

#[test]
fn plain_http_to_another_host_is_a_warning_naming_it() {
    let loaded = with_secrets(
        "secrets:\n  vault:\n    address: http://bao.lab.example.com:8200\n    key: homelab\n",
    )
    .unwrap();
    let w = loaded
        .warnings
        .iter()
        .find(|w| w.code == "vault-plain-http")
        .expect("a warning");
    assert!(w.message.contains("bao.lab.example.com"), "{}", w.message);
}

#[test]
fn bad_settings_are_errors_at_their_place() {
    let cases: &[(&str, &str)] = &[
        ("address: bao.lab:8200\n    key: k", "vault-address"),
        ("address: ftp://bao.lab\n    key: k", "vault-address"),
        ("address: https://\n    key: k", "vault-address"),
        ("address: https://bao.lab:0\n    key: k", "vault-address"),
        (
            "address: https://bao.lab:99999\n    key: k",
            "vault-address",
        ),
        ("address: https://bao.lab:port\n    key: k", "vault-address"),
        ("address: https://bao.lab/v1\n    key: k", "vault-address"),
        ("address: https://me@bao.lab\n    key: k", "vault-address"),
        ("address: https://bao.lab?x=1\n    key: k", "vault-address"),
        ("address: https://[::1\n    key: k", "vault-address"),
        ("address: https://[::1]x\n    key: k", "vault-address"),
        ("address: https://bao.lab\n    key: a/b", "vault-key-name"),
        ("address: https://bao.lab\n    key: ''", "vault-key-name"),
        ("address: https://bao.lab\n    key: ..", "vault-key-name"),
        (
            "address: https://bao.lab\n    key: k\n    transitPath: a/../b",
            "vault-transit-path",
        ),
        (
            "address: https://bao.lab\n    key: k\n    transitPath: /",
            "vault-transit-path",
        ),
        (
            "address: https://bao.lab\n    key: k\n    transitPath: 'a b'",
            "vault-transit-path",
        ),
        ("key: k", "missing-key"),
        ("address: https://bao.lab", "missing-key"),
        (
            "address: https://bao.lab\n    key: k\n    auth: ldap",
            "unknown-choice",
        ),
        (
            "address: https://bao.lab\n    key: k\n    tokn: x",
            "unknown-key",
        ),
    ];
    for (body, code) in cases {
        let found = errors(&format!("secrets:\n  vault:\n    {body}\n"));
        assert!(
            found.iter().any(|(c, _)| c == code),
            "`{body}`: expected {code}, got {found:?}"
        );
        assert_eq!(found.len(), 1, "`{body}`: {found:?}");
    }
}

#[test]
fn a_token_written_under_the_section_is_never_shown() {
    let invalid = with_secrets(
        "secrets:\n  vault:\n    address: https://bao.lab\n    key: k\n    token: hvs.hunter2\n",
    )
    .expect_err("unknown key");
    let shown = invalid.render();
    assert!(shown.contains("token"), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");
}
