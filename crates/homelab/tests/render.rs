//! `homelab plan` and `homelab render` end to end: the binary, a spec on disk, a secrets
//! store with canary values, and what a user sees (output, exit codes, files).

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use homelab_secrets::canary::Canaries;
use homelab_secrets::{Recipient, SecretRequirement};
use serde_json::Value;

/// A lab directory: homelab.yaml, optionally an age identity and a canary secrets store,
/// and a home directory of its own so nothing outside the test is read.
struct Lab {
    dir: tempfile::TempDir,
    key: Option<PathBuf>,
    canaries: Option<Canaries>,
}

impl Lab {
    fn new(spec: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("homelab.yaml"), spec).unwrap();
        std::fs::create_dir(dir.path().join("home")).unwrap();
        Lab {
            dir,
            key: None,
            canaries: None,
        }
    }

    fn seed() -> Self {
        Self::new(homelab_spec::templates::SEED)
    }

    /// Adds an age identity and `secrets.sops.yaml` holding a canary for every secret.
    fn with_secrets(mut self) -> Self {
        let key = self.dir.path().join("age.key");
        let (_, recipient): (_, Recipient) =
            homelab_secrets::identity::create_identity_file(&key).unwrap();
        let spec = std::fs::read_to_string(self.path("homelab.yaml")).unwrap();
        let plan = homelab_plan::plan(&homelab_spec::load_str("homelab.yaml", &spec).unwrap().lab);
        let reqs: Vec<SecretRequirement> = plan
            .secrets
            .iter()
            .map(|s| match &s.generator {
                homelab_plan::SecretGenerator::Password { length } => {
                    SecretRequirement::password(&s.name, *length)
                }
                homelab_plan::SecretGenerator::Hex { bytes } => {
                    SecretRequirement::hex_key(&s.name, *bytes)
                }
                homelab_plan::SecretGenerator::Htpasswd {
                    user,
                    password_secret,
                } => SecretRequirement::htpasswd(&s.name, user, password_secret),
                homelab_plan::SecretGenerator::Argon2id { password_secret } => {
                    SecretRequirement::argon2id(&s.name, password_secret)
                }
                homelab_plan::SecretGenerator::UserProvided => {
                    SecretRequirement::user_provided(&s.name, "test")
                }
                homelab_plan::SecretGenerator::CaKey => SecretRequirement::ca_key(&s.name),
                homelab_plan::SecretGenerator::CaCertificate {
                    common_name,
                    key_secret,
                    days,
                } => SecretRequirement::ca_certificate(&s.name, common_name, key_secret, *days),
            })
            .collect();
        let canaries = Canaries::for_requirements(&reqs).unwrap();
        canaries
            .write_store(&self.path("secrets.sops.yaml"), &[recipient])
            .unwrap();
        self.key = Some(key);
        self.canaries = Some(canaries);
        self
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::cargo_bin("homelab").unwrap();
        cmd.current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.path("home"))
            .env("NO_COLOR", "1")
            .args(args);
        if let Some(key) = &self.key {
            cmd.env("SOPS_AGE_KEY_FILE", key);
        }
        cmd.output().unwrap()
    }

    /// Fails when any canary appears in the output or under `dir`.
    fn assert_no_canary(&self, out: &Output, dir: Option<&Path>) {
        let canaries = self.canaries.as_ref().unwrap();
        canaries.assert_absent("stdout", &String::from_utf8_lossy(&out.stdout));
        canaries.assert_absent("stderr", &String::from_utf8_lossy(&out.stderr));
        if let Some(d) = dir {
            let leaks = canaries.check_dir(d).unwrap();
            assert!(leaks.is_empty(), "canaries in {}: {leaks:?}", d.display());
        }
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn plan_shows_components_urls_nodes_and_secrets() {
    let lab = Lab::seed();
    let out = lab.run(&["plan"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let order: Vec<usize> = [
        "1. k3s",
        "local-path",
        "nfs",
        "metallb",
        "cert-manager",
        "traefik",
        "prometheus",
        "postgres",
        "n8n",
    ]
    .iter()
    .map(|c| {
        text.find(&format!(" {c} ("))
            .unwrap_or_else(|| panic!("{c} missing:\n{text}"))
    })
    .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "not in apply order:\n{text}"
    );
    for want in [
        "helm: metallb <- chart metallb 0.16.1 from https://metallb.github.io/metallb",
        "IPAddressPool lab-pool  [ip-pool.yaml]",
        "after: postgres, traefik",
        "https://grafana.home.jetzinger.com",
        "k3s-master (server, cluster-init, 192.168.2.20):",
        "grafana-admin-password: generated password",
        "cloudflare-api-token: you provide it",
    ] {
        assert!(text.contains(want), "plan lacks {want:?}:\n{text}");
    }

    let json = lab.run(&["plan", "--output", "json"]);
    assert!(json.status.success());
    let v: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["lab"], "home-lab");
    assert_eq!(v["components"][0]["name"], "k3s");
    let n8n = v["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "n8n")
        .unwrap();
    assert_eq!(n8n["dependsOn"], serde_json::json!(["postgres", "traefik"]));
    assert_eq!(n8n["releases"][0]["version"], "1.24.32");
    assert!(v["urls"].as_array().unwrap().len() >= 8);
    assert_eq!(v["nodes"].as_array().unwrap().len(), 3);
    assert!(
        v["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "k3s-token")
    );
    // Nothing was written.
    assert_eq!(std::fs::read_dir(lab.dir.path()).unwrap().count(), 2);
}

#[test]
fn render_writes_the_tree_and_says_what_it_did() {
    let lab = Lab::seed();
    let out = lab.run(&["render", "--out", "lab"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("Rendered lab `home-lab` (flavor k3s) into lab: "),
        "{text}"
    );
    assert!(
        lab.path("lab/infrastructure/metallb/helmchart.yaml")
            .exists()
    );
    assert!(lab.path("lab/.homelab-rendered").exists());

    let again = lab.run(&["render", "--out", "lab", "--output", "json"]);
    assert!(again.status.success());
    let v: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(v["flavor"], "k3s");
    assert_eq!(v["written"], serde_json::json!([]));
    assert!(v["unchanged"].as_u64().unwrap() > 100);
}

#[test]
fn render_names_files_under_out_with_one_slash_however_out_is_spelt() {
    let lab = Lab::seed();
    for out_dir in ["lab/", "lab", "./lab//"] {
        let out = lab.run(&["render", "--out", out_dir]);
        assert!(out.status.success(), "{}", stderr(&out));
        let text = stdout(&out);
        let next = text.lines().find(|l| l.starts_with("Next: ")).unwrap();
        let want_readme = format!("{}/README.md", out_dir.trim_end_matches('/'));
        assert!(
            next.contains(&format!("read {want_readme}, "))
                && next.contains(&format!(
                    "`kubectl kustomize {}/infrastructure`",
                    out_dir.trim_end_matches('/')
                )),
            "{out_dir}: {next}"
        );
        assert!(!next.contains("//"), "{out_dir}: {next}");
    }
}

#[test]
fn render_refuses_a_directory_it_did_not_write_unless_forced() {
    let lab = Lab::seed();
    std::fs::create_dir(lab.path("lab")).unwrap();
    std::fs::write(lab.path("lab/notes.txt"), "mine").unwrap();
    let out = lab.run(&["render", "--out", "lab"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("notes.txt") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(lab.path("lab")).unwrap().count(), 1);

    let out = lab.run(&["render", "--out", "lab", "--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(lab.path("lab/notes.txt")).unwrap(),
        "mine"
    );
}

#[test]
fn render_of_an_invalid_spec_fails_and_writes_nothing() {
    let lab = Lab::new(
        &homelab_spec::templates::SEED.replace("k3sVersion: v1.34.2+k3s1", "k3sVersion: latest"),
    );
    let out = lab.run(&["render", "--out", "lab"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("homelab.yaml is not valid"),
        "{}",
        stderr(&out)
    );
    assert!(!lab.path("lab").exists());
}

#[test]
fn flux_without_a_secrets_file_fails_clearly() {
    let lab = Lab::seed();
    let out = lab.run(&["render", "--out", "lab", "--flavor", "flux"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("secrets.sops.yaml")
            && err.contains("does not exist")
            && err.contains("homelab secrets init"),
        "{err}"
    );
    assert!(!lab.path("lab").exists());
}

#[test]
fn no_canary_value_leaves_plan_or_render_in_either_flavor() {
    let lab = Lab::seed().with_secrets();
    for args in [
        vec!["plan"],
        vec!["plan", "--output", "json"],
        vec!["validate", "--output", "json"],
    ] {
        let out = lab.run(&args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        lab.assert_no_canary(&out, None);
    }
    for (flavor, dir) in [("k3s", "k3s"), ("flux", "flux")] {
        for extra in [&[][..], &["--output", "json", "-v"][..]] {
            let mut args = vec!["render", "--out", dir, "--flavor", flavor];
            args.extend_from_slice(extra);
            let out = lab.run(&args);
            assert!(out.status.success(), "{args:?}: {}", stderr(&out));
            lab.assert_no_canary(&out, Some(&lab.path(dir)));
        }
    }
    // The flux tree holds the Secrets, encrypted.
    let secret = lab.path("flux/monitoring/prometheus/secret-grafana-admin.sops.yaml");
    let text = std::fs::read_to_string(&secret).unwrap();
    assert!(
        text.contains("ENC[AES256_GCM,") && text.contains("encrypted_regex: ^(data|stringData)$"),
        "{text}"
    );
    // A wrong key cannot read the store: the error names the file, not a value.
    let other = lab.path("other.key");
    homelab_secrets::identity::create_identity_file(&other).unwrap();
    let mut cmd = Command::cargo_bin("homelab").unwrap();
    let out = cmd
        .current_dir(lab.dir.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", lab.path("home"))
        .env("SOPS_AGE_KEY_FILE", &other)
        .args(["render", "--out", "flux2", "--flavor", "flux"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("secrets.sops.yaml"),
        "{}",
        stderr(&out)
    );
    lab.assert_no_canary(&out, None);
    assert!(!lab.path("flux2").exists());
}

#[test]
fn help_teaches_with_an_example() {
    let lab = Lab::seed();
    for cmd in ["plan", "render"] {
        let out = lab.run(&[cmd, "--help"]);
        assert!(out.status.success());
        assert!(
            stdout(&out).contains("Example: `homelab "),
            "{cmd} --help has no example"
        );
    }
    let help = stdout(&lab.run(&["render", "--help"]));
    for want in [
        "--out <DIR>",
        "--flavor <FLAVOR>",
        "--force",
        "--secrets <FILE>",
        ".homelab-rendered",
    ] {
        assert!(help.contains(want), "render --help lacks {want}");
    }
}

// ---- an interrupted render -----------------------------------------------------------------

/// The seed lab with `apps` more web apps: a tree of several hundred files.
fn large_spec(apps: usize) -> String {
    let mut list = String::from("apps:\n");
    for i in 0..apps {
        list.push_str(&format!(
            "  - name: app-{i:03}\n    image: docker.io/traefik/whoami:v1.10.3\n    port: 80\n"
        ));
    }
    let spec = homelab_spec::templates::SEED.replace("apps: []\n", &list);
    assert_ne!(spec, homelab_spec::templates::SEED);
    spec
}

/// Every file below `dir` (relative path -> bytes), temporary files of the writer included.
fn files_below(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let e = e.unwrap();
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap_or_default());
            }
        }
    }
    out
}

/// Starts `homelab render --out lab` with the writer slowed down (the test seam), waits until
/// it has written some files, then sends `signal` to it; returns what it did.
fn interrupt_render(lab: &Lab, signal: &str) -> Output {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("homelab"));
    cmd.current_dir(lab.dir.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", lab.path("home"))
        .env("NO_COLOR", "1")
        .env("HOMELAB_TEST_WRITE_PAUSE_MS", "5")
        .args(["render", "--out", "lab"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    // Waits for progress, not for a time: the signal must come while files are written.
    let out_dir = lab.path("lab");
    let mut polls = 0u32;
    while files_below(&out_dir).len() < 60 {
        polls += 1;
        assert!(polls < 60_000, "the render wrote nothing");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let sent = std::process::Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    child.wait_with_output().unwrap()
}

#[test]
fn ctrl_c_during_a_render_finishes_the_file_list_and_the_next_render_works() {
    let lab = Lab::new(&large_spec(120));
    let reference = lab.run(&["render", "--out", "reference"]);
    assert!(reference.status.success(), "{}", stderr(&reference));
    let expected = files_below(&lab.path("reference"));
    assert!(expected.len() > 600, "{} files", expected.len());

    let out = interrupt_render(&lab, "-INT");
    assert_eq!(
        out.status.code(),
        Some(1),
        "the render ends by itself, not by the signal:\n{}",
        stderr(&out)
    );
    assert!(
        stderr(&out)
            .contains("interrupted while writing lab: the render finished its file list first"),
        "{}",
        stderr(&out)
    );
    // The tree is the whole render, byte for byte, with no temporary file left behind.
    assert_eq!(
        files_below(&lab.path("lab")).keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    assert!(
        files_below(&lab.path("lab")) == expected,
        "a file differs from a whole render"
    );

    let again = lab.run(&["render", "--out", "lab", "--output", "json"]);
    assert!(again.status.success(), "{}", stderr(&again));
    let v: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(v["written"], serde_json::json!([]));
}

#[test]
fn a_render_killed_halfway_leaves_a_tree_the_next_render_takes_over() {
    let lab = Lab::new(&large_spec(120));
    let reference = lab.run(&["render", "--out", "reference"]);
    assert!(reference.status.success(), "{}", stderr(&reference));
    let expected = files_below(&lab.path("reference"));

    let out = interrupt_render(&lab, "-KILL");
    assert_eq!(out.status.code(), None, "SIGKILL cannot be caught");
    let half = files_below(&lab.path("lab"));
    assert!(
        half.len() < expected.len(),
        "the render was stopped halfway"
    );
    // The file list already names every file the render was writing, so what is on disk is
    // the tool's own and the next render (without --force) finishes it.
    let listed = String::from_utf8(half[".homelab-rendered"].clone()).unwrap();
    for f in half
        .keys()
        .filter(|f| !f.ends_with(".homelab-tmp") && *f != ".homelab-rendered")
    {
        assert!(
            listed.lines().any(|l| l == f),
            "{f} is on disk but not listed"
        );
    }

    let again = lab.run(&["render", "--out", "lab"]);
    assert!(again.status.success(), "{}", stderr(&again));
    let after = files_below(&lab.path("lab"));
    // A temporary file of the killed write is the next write's of the same file, renamed.
    let stray: Vec<&String> = after
        .keys()
        .filter(|f| !expected.contains_key(*f))
        .collect();
    assert!(stray.is_empty(), "files no render wrote: {stray:?}");
    for (f, bytes) in &expected {
        assert_eq!(after.get(f), Some(bytes), "{f} after the next render");
    }
}
