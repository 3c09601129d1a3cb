//! Shared helpers: labs to render, rendering into temporary directories, reading YAML with a
//! third-party parser, and finding the external tools the validators need.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use homelab_plan::Plan;
use homelab_render::{Flavor, Tree, WriteOptions, WriteReport};
use serde_json::Value;

pub const SEED: &str = homelab_spec::templates::SEED;

/// A lab with every optional part the seed lacks: Pushover and an ntfy token, custom apps
/// with volumes, secret environment and a database.
pub fn wide_spec() -> String {
    let mut s = SEED.replace(
        "      - name: n8n\n        owner: n8n\n",
        "      - name: n8n\n        owner: n8n\n      - name: mealie\n        owner: mealie\n",
    );
    s = s.replace(
        "        topic: jetzinger-home-lab-alerts\n      severities: [critical]\n",
        "        topic: jetzinger-home-lab-alerts\n        token: {secret: ntfy-token}\n      severities: [critical]\n    - name: pager\n      pushover:\n        userKey: {secret: pushover-user-key}\n        token: {secret: pushover-token}\n      severities: [critical]\n",
    );
    s = s.replace(
        "apps: []\n",
        "apps:\n  - name: mealie\n    image: ghcr.io/mealie-recipes/mealie:v2.3.0\n    port: 9000\n    host: recipes\n    env: {TZ: Europe/Berlin}\n    secretEnv: {SMTP_PASSWORD: {secret: mealie-smtp-password}}\n    database: mealie\n    volumes:\n      - {name: data, mountPath: /app/data, size: 5Gi}\n  - name: whoami\n    image: docker.io/traefik/whoami:v1.10.3\n    port: 80\n    host: whoami\n",
    );
    assert!(s.contains("pushover") && s.contains("mealie-smtp-password"));
    s
}

/// The seed lab with single sign-on (TOTP required) in front of an app, the dev proxy, Ollama,
/// Prometheus and Alertmanager, and an app that keeps its own login.
pub fn sso_spec() -> String {
    assert!(SEED.contains("apps: []"), "the seed lab changed");
    SEED.replace(
        "apps: []",
        "apps:\n  - name: whoami\n    image: docker.io/traefik/whoami:v1.10.3\n    port: 80\n  - name: mealie\n    image: ghcr.io/mealie-recipes/mealie:v2.3.0\n    port: 9000\n    auth: none\n",
    ) + "\nauth:\n  sso:\n    provider: authelia\n    totp: true\n    users:\n      - {name: alice, displayName: Alice Smith, groups: [admins]}\n      - {name: bob, email: bob@example.org}\n"
}

pub fn minimal_spec() -> String {
    homelab_spec::templates::MINIMAL.to_string()
}

/// The plan of a spec; a `manifests:` directory is read beside the examples (as for
/// examples/media-lab.yaml).
pub fn plan_of(spec: &str) -> Plan {
    let loaded = homelab_spec::load_str("homelab.yaml", spec).unwrap_or_else(|e| {
        panic!("test spec is invalid:\n{}", e.render());
    });
    let files = match &loaded.lab.manifests {
        Some(m) => Ok(manifest_files(&examples_dir().join(&m.dir))),
        None => Ok(Vec::new()),
    };
    let loaded = homelab_plan::manifests::check_loaded(loaded, files).unwrap_or_else(|e| {
        panic!("test spec's manifests are invalid:\n{}", e.render());
    });
    homelab_plan::plan(&loaded.lab)
}

pub fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// Every YAML file under `dir`, relative to it.
pub fn manifest_files(dir: &Path) -> Vec<homelab_spec::manifests::ManifestFile> {
    read_dir_files(dir)
        .into_iter()
        .filter(|(path, _)| path.ends_with(".yaml") || path.ends_with(".yml"))
        .map(|(path, bytes)| homelab_spec::manifests::ManifestFile {
            path,
            text: String::from_utf8(bytes).unwrap(),
        })
        .collect()
}

pub fn seed_plan() -> Plan {
    plan_of(SEED)
}

pub fn render_k3s(plan: &Plan) -> Tree {
    homelab_render::render(plan, Flavor::K3s, None).expect("k3s render")
}

/// Writes a k3s tree into `dir`.
pub fn write_k3s(tree: &Tree, dir: &Path, force: bool) -> WriteReport {
    homelab_render::write_tree(
        tree,
        dir,
        &WriteOptions {
            flavor: Flavor::K3s,
            force,
            sops: None,
            pause_per_file: None,
        },
    )
    .expect("write")
}

/// Every regular file under `dir`: relative path -> bytes.
pub fn read_dir_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let ty = e.file_type().unwrap();
            if ty.is_dir() {
                stack.push(p);
            } else if ty.is_file() {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// YAML documents of a text, read with serde-saphyr (not our own reader).
pub fn yaml_docs(text: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(text)
        .unwrap_or_else(|e| panic!("not valid YAML: {e}\n{text}"))
        .into_iter()
        .filter(|v| !v.is_null())
        .collect()
}

pub fn yaml_value(text: &str) -> Value {
    serde_saphyr::from_str::<Value>(text).unwrap_or_else(|e| panic!("not valid YAML: {e}\n{text}"))
}

/// An external program the tests run, or a failure that says how to get it.
pub fn tool(name: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/sbin", "/usr/local/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    let venv = venv().join("bin").join(name);
    if venv.exists() {
        return venv;
    }
    panic!(
        "`{name}` is needed by this test but was not found; run scripts/install-test-deps (it installs the Debian and PyPI packages the tests use)"
    );
}

/// The test virtualenv (HOMELAB_TEST_VENV, else <workspace>/.venv-test).
pub fn venv() -> PathBuf {
    std::env::var_os("HOMELAB_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../..")
                .join(".venv-test")
        })
}

pub fn venv_tool(name: &str) -> PathBuf {
    let p = venv().join("bin").join(name);
    assert!(
        p.exists(),
        "`{}` is needed by this test but was not found; run scripts/install-test-deps (it installs kubernetes-validate into .venv-test)",
        p.display()
    );
    p
}

/// Runs a command and returns its output, failing with its stderr when it fails.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Every object of a kustomize build of `layer` in `root`, by `kubectl kustomize`.
pub fn kustomize(root: &Path, layer: &str) -> Vec<Value> {
    let out = run_ok(
        Command::new(tool("kubectl"))
            .arg("kustomize")
            .arg(root.join(layer)),
    );
    yaml_docs(&String::from_utf8(out.stdout).unwrap())
}

/// The group of an apiVersion (`""` for the core group).
pub fn api_group(api_version: &str) -> &str {
    match api_version.split_once('/') {
        Some((g, _)) => g,
        None => "",
    }
}

/// API groups served by Kubernetes itself (validated against the Kubernetes schemas).
pub fn is_core_kind(api_version: &str) -> bool {
    let g = api_group(api_version);
    g.is_empty() || !g.contains('.') || g.ends_with(".k8s.io")
}

/// Runs promtool's rule unit tests on one rule alone in a group `group`, evaluated every
/// `interval`, against the scenarios `tests`; panics with promtool's report when one fails.
pub fn promtool_test_rule(group: &str, rule: &Value, interval: &str, tests: Value) {
    let dir = tempfile::tempdir().unwrap();
    let rules = serde_json::json!({"groups": [{"name": group, "rules": [rule]}]});
    std::fs::write(dir.path().join("rule.yaml"), rules.to_string()).unwrap();
    let test = serde_json::json!({
        "rule_files": ["rule.yaml"],
        "evaluation_interval": interval,
        "tests": tests,
    });
    std::fs::write(dir.path().join("rule.test.yaml"), test.to_string()).unwrap();
    let out = Command::new(tool("promtool"))
        .current_dir(dir.path())
        .args(["test", "rules", "rule.test.yaml"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool test rules:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
