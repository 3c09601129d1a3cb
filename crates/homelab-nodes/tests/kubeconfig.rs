//! `kubeconfig` against an sshd test host: fetched, renamed, pointed at the chosen address,
//! written 0600, and merged without touching other contexts.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::Recorder;
use homelab_nodes::testkit::TestLab;
use homelab_nodes::{ApplyOptions, KubeconfigOptions, NodesError, Role, apply, kubeconfig};

const V: &str = "v1.31.2+k3s1";

const MINE: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: work\n  cluster:\n    server: https://work.example:443\n    certificate-authority-data: V09SSw==\n\
contexts:\n- name: work\n  context:\n    cluster: work\n    user: work\n    namespace: team\ncurrent-context: work\npreferences: {}\n\
users:\n- name: work\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: aws\n      args:\n      - eks\n      - get-token\n";

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeconfig_merges_without_touching_other_contexts() {
    let lab = TestLab::start(&[("s1", Role::Server)]);
    let inv = lab.inventory(V);
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join(".kube/config");
    let own = home.path().join("testlab.yaml");

    // Before k3s is installed there is nothing to fetch, and nothing is written.
    let err = kubeconfig(
        &inv,
        &KubeconfigOptions {
            server: None,
            write_to: own.clone(),
            merge_into: None,
            switch_context: false,
        },
        &Recorder::default(),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("run `homelab nodes apply` first"),
        "{err}"
    );
    assert!(!own.exists());

    apply(&inv, &ApplyOptions::default(), &Recorder::default())
        .await
        .unwrap();
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(&config, MINE).unwrap();
    let opts = KubeconfigOptions {
        server: Some("lab.tailnet.ts.net".into()),
        write_to: own.clone(),
        merge_into: Some(config.clone()),
        switch_context: false,
    };
    let out = kubeconfig(&inv, &opts, &Recorder::default()).await.unwrap();
    assert_eq!(out.server, "https://lab.tailnet.ts.net:6443");
    assert_eq!(out.current_context.as_deref(), Some("work"));
    assert!(!out.replaced_existing);
    assert_eq!(mode(&own), 0o600);
    assert_eq!(mode(&config), 0o600);

    let mine: serde_json::Value = yaml(MINE);
    let merged = yaml(&std::fs::read_to_string(&config).unwrap());
    for list in ["clusters", "contexts", "users"] {
        let work = |doc: &serde_json::Value| {
            doc[list]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["name"] == "work")
                .cloned()
        };
        assert_eq!(
            work(&merged),
            work(&mine),
            "{list} entry `work` must be untouched"
        );
        assert!(
            merged[list]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["name"] == "testlab")
        );
    }
    let cluster = merged["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "testlab")
        .unwrap();
    assert_eq!(
        cluster["cluster"]["server"],
        "https://lab.tailnet.ts.net:6443"
    );
    assert_eq!(
        cluster["cluster"]["certificate-authority-data"],
        "c3RhbmRpbi1jYQ=="
    );
    let lab_only = yaml(&std::fs::read_to_string(&own).unwrap());
    assert_eq!(lab_only["current-context"], "testlab");
    assert_eq!(lab_only["contexts"].as_array().unwrap().len(), 1);

    // Again, now on the LAN address and switching to it: replaced in place, still one entry each.
    let opts = KubeconfigOptions {
        server: None,
        switch_context: true,
        ..opts
    };
    let out = kubeconfig(&inv, &opts, &Recorder::default()).await.unwrap();
    assert!(out.replaced_existing);
    let merged = yaml(&std::fs::read_to_string(&config).unwrap());
    assert_eq!(merged["current-context"], "testlab");
    assert_eq!(merged["clusters"].as_array().unwrap().len(), 2);
    let cluster = merged["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "testlab")
        .unwrap();
    assert_eq!(
        cluster["cluster"]["server"],
        format!("https://{}:6443", lab.host("s1").ip)
    );

    // A kubeconfig we cannot understand is left exactly as it was.
    std::fs::write(&config, "clusters: {not: a list}\n").unwrap();
    std::fs::remove_file(&own).unwrap();
    let err = kubeconfig(&inv, &opts, &Recorder::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, NodesError::BadKubeconfig { .. })
            && err.to_string().contains("left unchanged"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        "clusters: {not: a list}\n"
    );
    assert!(!own.exists());
}

/// Reads YAML with PyYAML, independently of the crate's own reader.
fn yaml(text: &str) -> serde_json::Value {
    let out = std::process::Command::new(common::venv_python())
        .args([
            "-c",
            "import sys, json, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(text.as_bytes())?;
            c.wait_with_output()
        })
        .expect("the test virtualenv's python runs");
    assert!(out.status.success(), "PyYAML could not read:\n{text}");
    serde_json::from_slice(&out.stdout).unwrap()
}
