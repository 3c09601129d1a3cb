//! What the chart tier needs from outside the repository, found once: `helm`, the upstream
//! charts at the pinned versions (`shared/charts`), and working copies of the charts whose
//! vendored dependencies are missing there. Also runs `helm template`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The `helm` binary: `HOMELAB_TEST_HELM`, else `.test-tools/bin/helm` of the workspace (put
/// there by scripts/install-test-deps), else `helm` on PATH.
pub fn helm() -> PathBuf {
    if let Some(p) = std::env::var_os("HOMELAB_TEST_HELM") {
        return PathBuf::from(p);
    }
    let local = workspace().join(".test-tools/bin/helm");
    if local.exists() {
        return local;
    }
    for dir in std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
    {
        if dir.join("helm").is_file() {
            return dir.join("helm");
        }
    }
    panic!(
        "`helm` is needed by the chart tier but was not found; run scripts/install-test-deps (it unpacks helm into .test-tools/bin), or point HOMELAB_TEST_HELM at a helm v4 binary"
    );
}

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The upstream charts: `HOMELAB_TEST_CHARTS`, else the first `shared/charts` beside the
/// workspace or one of its parents (a worktree lives a level deeper than the main checkout).
pub fn charts_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("HOMELAB_TEST_CHARTS") {
        return PathBuf::from(p);
    }
    let start = workspace().canonicalize().unwrap_or_else(|_| workspace());
    for dir in start.ancestors() {
        let candidate = dir.join("shared/charts");
        if candidate.join("README.md").exists() {
            return candidate;
        }
    }
    panic!(
        "the upstream charts (shared/charts, see its README) were not found beside {}; set HOMELAB_TEST_CHARTS to their directory",
        start.display()
    );
}

/// Values for the stand-in of a dependency that is missing from `shared/charts`: the
/// upstream defaults of the keys the parent chart's own templates read from it, so the
/// parent renders as it would with the real dependency (whose own objects are then absent).
const STUB_VALUES: &[(&str, &str)] = &[
    // kube-prometheus-stack's prometheus ClusterRole reads these (both default to false upstream).
    ("kube-state-metrics", "kubeRBACProxy:\n  enabled: false\n"),
    (
        "prometheus-node-exporter",
        "kubeRBACProxy:\n  enabled: false\n",
    ),
];

/// A chart ready for `helm template`, and the dependencies that had to be stood in for.
#[derive(Debug, Clone)]
pub struct PreparedChart {
    pub dir: PathBuf,
    /// `name version` of each dependency that `shared/charts` lacks and that an empty chart
    /// replaces here; its objects are not in the templated output.
    pub stubbed: Vec<String>,
    /// Remote `$ref`s of the chart's values.schema.json (the tier runs offline): each is left
    /// out of the working copy's schema, so the values under it are not checked.
    pub unresolved_refs: Vec<String>,
}

/// The `$ref`s of a schema that point at the network.
fn remote_refs(schema: &Value, out: &mut Vec<String>) {
    match schema {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref")
                && (r.starts_with("http://") || r.starts_with("https://"))
            {
                out.push(r.clone());
            }
            m.values().for_each(|v| remote_refs(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| remote_refs(v, out)),
        _ => {}
    }
}

/// `schema` without its remote `$ref`s.
fn drop_remote_refs(schema: &mut Value) {
    match schema {
        Value::Object(m) => {
            if m.get("$ref")
                .and_then(Value::as_str)
                .is_some_and(|r| r.starts_with("http://") || r.starts_with("https://"))
            {
                m.remove("$ref");
            }
            m.values_mut().for_each(drop_remote_refs);
        }
        Value::Array(a) => a.iter_mut().for_each(drop_remote_refs),
        _ => {}
    }
}

/// `<chart>-<version>` of `shared/charts`, or a working copy of it (made once, shared by the
/// tier's test processes) in which every dependency missing from `charts/` is an empty chart.
pub fn prepare_chart(name: &str, version: &str) -> Result<PreparedChart, String> {
    let source = charts_dir().join(format!("{name}-{version}"));
    let chart_yaml = std::fs::read_to_string(source.join("Chart.yaml")).map_err(|e| {
        format!(
            "chart {name} {version} is not in {} ({e}); add it there (see its README)",
            charts_dir().display()
        )
    })?;
    let chart = crate::common::yaml_value(&chart_yaml);
    let present = vendored_charts(&source.join("charts"));
    let mut missing = Vec::new();
    for dep in chart["dependencies"].as_array().into_iter().flatten() {
        let dep_name = dep["name"].as_str().unwrap_or_default();
        if !present.contains_key(dep_name) {
            let dep_version = dep["version"]
                .as_str()
                .unwrap_or("0.0.0")
                .replace(".*", ".0")
                .trim_start_matches(['^', '~', '='])
                .to_string();
            missing.push((dep_name.to_string(), dep_version));
        }
    }
    let schema: Option<Value> = std::fs::read_to_string(source.join("values.schema.json"))
        .ok()
        .map(|t| serde_json::from_str(&t).expect("a chart's values.schema.json is JSON"));
    let mut unresolved_refs = Vec::new();
    if let Some(s) = &schema {
        remote_refs(s, &mut unresolved_refs);
    }
    unresolved_refs.sort();
    unresolved_refs.dedup();
    if missing.is_empty() && unresolved_refs.is_empty() {
        return Ok(PreparedChart {
            dir: source,
            stubbed: Vec::new(),
            unresolved_refs,
        });
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("charts")
        .join(format!("{name}-{version}"));
    if !dir.join("Chart.yaml").exists() {
        let tmp = dir.with_extension(format!("tmp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        copy_dir(&source, &tmp).map_err(|e| format!("cannot copy {}: {e}", source.display()))?;
        for (dep, dep_version) in &missing {
            let stub = tmp.join("charts").join(dep);
            std::fs::create_dir_all(&stub).unwrap();
            std::fs::write(
                stub.join("Chart.yaml"),
                format!(
                    "apiVersion: v2\nname: {dep}\nversion: {dep_version}\ndescription: empty stand-in for a dependency missing from shared/charts\n"
                ),
            )
            .unwrap();
            if let Some((_, values)) = STUB_VALUES.iter().find(|(n, _)| n == dep) {
                std::fs::write(stub.join("values.yaml"), values).unwrap();
            }
        }
        if let Some(mut s) = schema.filter(|_| !unresolved_refs.is_empty()) {
            drop_remote_refs(&mut s);
            std::fs::write(
                tmp.join("values.schema.json"),
                serde_json::to_string_pretty(&s).unwrap(),
            )
            .unwrap();
        }
        // Another test process may have finished first; its copy is as good as this one.
        if std::fs::rename(&tmp, &dir).is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        assert!(
            dir.join("Chart.yaml").exists(),
            "no chart at {}",
            dir.display()
        );
    }
    Ok(PreparedChart {
        dir,
        stubbed: missing
            .into_iter()
            .map(|(n, v)| format!("{n} {v}"))
            .collect(),
        unresolved_refs,
    })
}

/// Chart name -> path of the charts vendored in a `charts/` directory (unpacked or `.tgz`).
fn vendored_charts(dir: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.join("Chart.yaml").exists() {
            let chart =
                crate::common::yaml_value(&std::fs::read_to_string(p.join("Chart.yaml")).unwrap());
            if let Some(n) = chart["name"].as_str() {
                out.insert(n.to_string(), p);
            }
        } else if let Some(file) = p.file_name().and_then(|f| f.to_str())
            && let Some(stem) = file.strip_suffix(".tgz")
            && let Some((n, _)) = stem.rsplit_once('-')
        {
            out.insert(n.to_string(), p);
        }
    }
    out
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let target = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &target)?;
        } else {
            std::fs::copy(e.path(), &target)?;
            let mut perms = std::fs::metadata(&target)?.permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perms.set_readonly(false);
            std::fs::set_permissions(&target, perms)?;
        }
    }
    Ok(())
}

/// One `helm template` call: a release of a chart with its values files (applied in order,
/// as helm merges `-f` files).
#[derive(Debug, Clone)]
pub struct Release {
    pub name: String,
    pub namespace: String,
    pub chart: String,
    pub version: String,
    /// Values texts, in the order helm applies them.
    pub values: Vec<String>,
    /// `helm template --skip-schema-validation` (charts whose schema refers to the network).
    pub skip_schema_validation: bool,
}

impl Release {
    pub fn id(&self) -> String {
        format!(
            "release {}/{} (chart {} {})",
            self.namespace, self.name, self.chart, self.version
        )
    }
}

/// What `helm template` made of a release.
#[derive(Debug)]
pub struct Templated {
    pub release: Release,
    pub objects: Vec<Value>,
    pub stubbed: Vec<String>,
    pub unresolved_refs: Vec<String>,
}

/// Templates every release at once (one helm process each) and returns them in order, or
/// the releases helm refused with its message.
pub fn template_all(
    releases: &[Release],
    kube_version: &str,
    scratch: &Path,
) -> Vec<Result<Templated, String>> {
    let helm = helm();
    std::thread::scope(|s| {
        let handles: Vec<_> = releases
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let helm = &helm;
                s.spawn(move || {
                    template(
                        helm,
                        r,
                        kube_version,
                        &scratch.join(format!("{i:02}-{}", r.name)),
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn template(helm: &Path, r: &Release, kube_version: &str, dir: &Path) -> Result<Templated, String> {
    let chart = prepare_chart(&r.chart, &r.version).map_err(|e| format!("{}: {e}", r.id()))?;
    std::fs::create_dir_all(dir).unwrap();
    let mut cmd = Command::new(helm);
    cmd.arg("template")
        .arg(&r.name)
        .arg(&chart.dir)
        .args(["--namespace", &r.namespace])
        .args(["--kube-version", kube_version])
        .arg("--include-crds");
    if r.skip_schema_validation {
        cmd.arg("--skip-schema-validation");
    }
    for (i, v) in r.values.iter().enumerate() {
        let file = dir.join(format!("values-{i}.yaml"));
        std::fs::write(&file, v).unwrap();
        cmd.arg("--values").arg(file);
    }
    // helm keeps caches and its registry config under HOME; keep them out of the user's.
    cmd.env("HELM_CACHE_HOME", dir.join("cache"))
        .env("HELM_CONFIG_HOME", dir.join("config"))
        .env("HELM_DATA_HOME", dir.join("data"));
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", helm.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{}: helm template failed with the tree's values:\n{}",
            r.id(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8(out.stdout).map_err(|e| format!("{}: {e}", r.id()))?;
    Ok(Templated {
        release: r.clone(),
        objects: manifests(&text)
            .map_err(|e| format!("{}: helm's output is not YAML: {e}", r.id()))?,
        stubbed: chart.stubbed,
        unresolved_refs: chart.unresolved_refs,
    })
}

/// The documents of helm's output as the API server's YAML reader takes them: a key given
/// twice keeps its last value. (K3s's own Traefik values set `prometheus.io/scrape` in
/// `deployment.podAnnotations`, and the chart writes the same annotation for its metrics.)
fn manifests(text: &str) -> Result<Vec<Value>, serde_saphyr::Error> {
    let options = serde_saphyr::options! {
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::LastWins,
        budget: None,
    };
    Ok(
        serde_saphyr::from_multiple_with_options::<Value>(text, options)?
            .into_iter()
            .filter(|v| !v.is_null())
            .collect(),
    )
}
