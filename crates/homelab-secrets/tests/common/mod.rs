//! Helpers shared by the integration tests: external tools, test vectors, identities.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod tools;
#[allow(unused_imports)]
pub use tools::{Bao, BaoServer, Sops, venv, venv_tool};

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
