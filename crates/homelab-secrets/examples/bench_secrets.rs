//! Benchmark driver for `scripts/bench-secrets`: times opening (decrypt + MAC check) and saving
//! (encrypt) a secrets store, and a leak scan of a generated git history next to the bare
//! `git log -p` it reads. Prints medians; writes nothing outside the temporary directory.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use homelab_secrets::scan::scan;
use homelab_secrets::{Identities, IdentitySource, SecretRequirement, SecretsStore};

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> Duration {
    median(
        (0..runs)
            .map(|_| {
                let start = Instant::now();
                std::hint::black_box(f());
                start.elapsed()
            })
            .collect(),
    )
}

fn git(repo: &Path, args: &[&str]) {
    let status = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args([
            "-c",
            "user.name=Bench",
            "-c",
            "user.email=bench@example.invalid",
        ])
        .args(["-c", "commit.gpgsign=false"])
        .args(args)
        .status()
        .expect("git runs");
    assert!(status.success(), "git {args:?}");
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    let commits: usize = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(500);
    let dir = tempfile::tempdir().expect("temp dir");

    // A store the size of a busy lab: 100 generated secrets.
    let identity = age::x25519::Identity::generate();
    let key_text = format!(
        "{}\n",
        secrecy::ExposeSecret::expose_secret(&identity.to_string())
    );
    let ids = Identities::parse(&key_text, IdentitySource::EnvVar).expect("identity");
    let path = dir.path().join("secrets.sops.yaml");
    let reqs: Vec<SecretRequirement> = (0..100)
        .map(|i| SecretRequirement::password(format!("app-{i}-password"), 32))
        .collect();
    let mut store = SecretsStore::create(&path, &ids.recipients()).expect("store");
    store.generate_missing(&reqs).expect("generate");
    store.save().expect("save");
    let open = time(runs, || SecretsStore::open(&path, &ids).expect("open"));
    let mut opened = SecretsStore::open(&path, &ids).expect("open");
    let save = time(runs, || opened.save().expect("save"));
    println!(
        "store: 100 secrets, {} bytes",
        fs::metadata(&path).unwrap().len()
    );
    println!(
        "store open (age + decrypt + MAC): {:.2} ms",
        open.as_secs_f64() * 1e3
    );
    println!(
        "store save (encrypt + atomic write): {:.2} ms",
        save.as_secs_f64() * 1e3
    );

    // A history of `commits` commits, each rewriting a 40-line values file.
    let repo = dir.path().join("repo");
    fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q"]);
    for c in 0..commits {
        let body: String = (0..40)
            .map(|l| format!("key{l}: value-{c}-{l}-{}\n", (c * 31 + l) % 97))
            .collect();
        fs::write(repo.join("values.yaml"), body).unwrap();
        git(&repo, &["add", "values.yaml"]);
        git(&repo, &["commit", "-q", "-m", "change"]);
    }
    let known = store.known_secrets();
    let scan_time = time(runs, || scan(&repo, &known).expect("scan"));
    let git_time = time(runs, || {
        Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(["log", "-p", "--all", "-U0", "--no-color"])
            .output()
            .expect("git log")
    });
    let report = scan(&repo, &known).expect("scan");
    println!(
        "scan: {} commits x 40 changed lines, {} known values: {:.1} ms (git log -p alone: {:.1} ms), {} findings",
        report.commits_scanned,
        known.len(),
        scan_time.as_secs_f64() * 1e3,
        git_time.as_secs_f64() * 1e3,
        report.findings.len()
    );
}
