//! The client against fakepve: both logins, calls, tasks waited for to `OK`, a failed task with
//! its log, and sshkeys accepted only in the doubly encoded form.

mod support;

use std::time::Duration;

use homelab_proxmox::wire::sshkeys_value;
use homelab_proxmox::{Client, Credentials, ProxmoxError, Tls};
use serde_json::json;
use support::FakePve;

fn guests() -> serde_json::Value {
    json!({"guests": [
        {"vmid": 9000, "name": "tmpl", "template": true,
         "config": {"scsi0": "local-lvm:base-9000-disk-0,size=4G", "memory": 2048}},
        {"vmid": 200, "name": "busy", "lock": "backup",
         "config": {"scsi0": "local-lvm:vm-200-disk-0,size=4G"}}
    ]})
}

fn password_client(pve: &FakePve, password: &str) -> Client {
    Client::new(
        &pve.endpoint,
        Credentials::Password {
            user: "root@pam".into(),
            password: password.into(),
        },
        Tls::Unverified,
    )
    .unwrap()
}

#[tokio::test]
async fn a_ticket_login_reads_and_a_clone_task_is_waited_for() {
    let pve = FakePve::start(guests());
    let mut client = password_client(&pve, "lab-test-pw");
    client.poll_every = Duration::from_millis(50);
    let version = client.get("read the version", "/version").await.unwrap();
    assert!(version.get("version").is_some(), "{version}");
    client
        .run_task(
            "clone the template",
            true,
            "/nodes/pve1/qemu/9000/clone",
            &[("newid", "101"), ("name", "k3s-master"), ("full", "1")],
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    let config = client
        .get("read the VM", "/nodes/pve1/qemu/101/config")
        .await
        .unwrap();
    assert_eq!(config["name"], "k3s-master");
}

#[tokio::test]
async fn sshkeys_pass_only_encoded_twice() {
    let pve = FakePve::start(guests());
    let client = password_client(&pve, "lab-test-pw");
    let keys = vec!["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAITest+key/= tom@laptop".to_string()];
    client
        .post(
            "set the keys",
            "/nodes/pve1/qemu/9000/config",
            &[("sshkeys", &sshkeys_value(&keys))],
        )
        .await
        .unwrap();
    let config = client
        .get("read the template", "/nodes/pve1/qemu/9000/config")
        .await
        .unwrap();
    assert_eq!(config["sshkeys"], sshkeys_value(&keys));
    let raw = client
        .post(
            "set the keys unencoded",
            "/nodes/pve1/qemu/9000/config",
            &[("sshkeys", &keys[0])],
        )
        .await;
    assert!(
        matches!(raw, Err(ProxmoxError::Api { status: 400, .. })),
        "{raw:?}"
    );
}

#[tokio::test]
async fn a_wrong_password_is_a_login_error_without_the_password() {
    let pve = FakePve::start(guests());
    let client = password_client(&pve, "not-the-pw-x1");
    let err = client
        .get("read the version", "/version")
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ProxmoxError::Login { .. }), "{text}");
    assert!(
        text.contains("root@pam") && text.contains(&pve.endpoint),
        "{text}"
    );
    assert!(!text.contains("not-the-pw-x1"), "{text}");
}

#[tokio::test]
async fn a_locked_vm_is_a_lock_error_worth_a_retry() {
    let pve = FakePve::start(guests());
    let client = password_client(&pve, "lab-test-pw");
    let result = client
        .run_task(
            "start the VM",
            true,
            "/nodes/pve1/qemu/200/status/start",
            &[],
            Duration::from_secs(30),
        )
        .await;
    let err = result.unwrap_err();
    assert!(err.to_string().contains("start the VM"), "{err}");
    assert!(
        err.to_string().contains("locked") || err.is_lock_timeout(),
        "{err}"
    );
}

#[tokio::test]
async fn nothing_listening_is_unreachable_naming_the_endpoint() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("https://127.0.0.1:{port}");
    let client = Client::new(
        &endpoint,
        Credentials::Token {
            id: "homelab@pve!lab".into(),
            secret: "0b7e-secret-x1".into(),
        },
        Tls::Unverified,
    )
    .unwrap();
    let err = client
        .get("list the VMs", "/cluster/resources")
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ProxmoxError::Unreachable { .. }), "{text}");
    assert!(
        text.starts_with("list the VMs: cannot reach") && text.contains(&endpoint),
        "{text}"
    );
    assert!(!text.contains("0b7e-secret-x1"));
}

#[tokio::test]
async fn an_api_token_calls_and_a_wrong_secret_is_refused() {
    let pve = FakePve::with_tokens(guests(), &[("homelab@pve!lab", "0b7e-good-x1")]);
    let token = |secret: &str| {
        Client::new(
            &pve.endpoint,
            Credentials::Token {
                id: "homelab@pve!lab".into(),
                secret: secret.into(),
            },
            Tls::Unverified,
        )
        .unwrap()
    };
    let config = token("0b7e-good-x1")
        .get("read the template", "/nodes/pve1/qemu/9000/config")
        .await
        .unwrap();
    assert_eq!(config["name"], "tmpl");
    let err = token("0b7e-bad-x2")
        .get("read the template", "/nodes/pve1/qemu/9000/config")
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProxmoxError::Api { status: 401, .. }),
        "{err}"
    );
    assert!(!err.to_string().contains("0b7e-bad-x2"), "{err}");
}
