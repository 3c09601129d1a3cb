//! Test helpers for the secrets commands: a scratch lab with its own HOME, running the real
//! `homelab` binary (with stdin, or on a pseudo-terminal), every byte of the lab and HOME
//! captured to prove a failed command changed nothing, and the external tools the tests run.
//! Nothing here asserts behaviour of its own.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

pub use crate::run::Run;

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

/// The Python of the test venv (its standard library drives pseudo-terminals).
pub fn venv_python() -> PathBuf {
    let venv = std::env::var_os("HOMELAB_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv-test"));
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{} does not exist; run scripts/install-test-deps (it creates the test venv)",
        python.display()
    );
    python
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/homelab sits two levels below the workspace root")
        .to_path_buf()
}

/// The reference SOPS files of the secrets crate.
pub fn sops_vector(name: &str) -> PathBuf {
    workspace_root()
        .join("crates/homelab-secrets/tests/testdata/sops")
        .join(name)
}

/// A lab directory with its spec, a private HOME and a runtime directory, all in one
/// temporary directory that removes itself.
pub struct Lab {
    tmp: tempfile::TempDir,
    /// Extra environment for every run.
    env: Vec<(String, String)>,
}

impl Lab {
    /// A lab with the seed spec (`homelab init`) and no secrets yet.
    pub fn seed() -> Lab {
        Lab::with_spec(homelab_spec::templates::SEED)
    }

    pub fn with_spec(spec: &str) -> Lab {
        let tmp = tempfile::tempdir().expect("a temporary directory");
        for d in ["lab", "home", "runtime"] {
            std::fs::create_dir(tmp.path().join(d)).expect("create a scratch directory");
        }
        std::fs::set_permissions(
            tmp.path().join("runtime"),
            std::fs::Permissions::from_mode(0o700),
        )
        .expect("chmod the runtime directory");
        std::fs::write(tmp.path().join("lab/homelab.yaml"), spec).expect("write the spec");
        Lab {
            tmp,
            env: Vec::new(),
        }
    }

    pub fn root(&self) -> &Path {
        self.tmp.path()
    }

    pub fn dir(&self) -> PathBuf {
        self.tmp.path().join("lab")
    }

    pub fn home(&self) -> PathBuf {
        self.tmp.path().join("home")
    }

    /// `$XDG_RUNTIME_DIR` of every run: where `edit` puts its plaintext copy.
    pub fn runtime(&self) -> PathBuf {
        self.tmp.path().join("runtime")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir().join(name)
    }

    pub fn store(&self) -> PathBuf {
        self.path("secrets.sops.yaml")
    }

    /// The default identity file under the private HOME.
    pub fn identity(&self) -> PathBuf {
        self.home().join(".config/homelab/age.key")
    }

    pub fn write(&self, name: &str, text: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("create a directory");
        }
        std::fs::write(&p, text).expect("write a lab file");
        p
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).expect("read a lab file")
    }

    /// Adds an environment variable to every later run.
    pub fn set_env(&mut self, key: &str, value: impl AsRef<str>) {
        self.env.push((key.to_string(), value.as_ref().to_string()));
    }

    /// The binary with a clean environment: this lab's HOME, no key variables from the
    /// developer's shell, no editor, no colours; run in the lab directory.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_homelab"));
        for var in [
            "HOMELAB_FILE",
            "SOPS_AGE_KEY",
            "SOPS_AGE_KEY_FILE",
            "XDG_CONFIG_HOME",
            "VISUAL",
            "EDITOR",
            "VAULT_ADDR",
            "VAULT_TOKEN",
            "BAO_ADDR",
            "BAO_TOKEN",
            "VAULT_ROLE_ID",
            "VAULT_SECRET_ID",
            "BAO_ROLE_ID",
            "BAO_SECRET_ID",
            "VAULT_CACERT",
            "BAO_CACERT",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("HOME", self.home())
            .env("XDG_RUNTIME_DIR", self.runtime())
            .env("NO_COLOR", "1")
            // Some test labs start from the example lab; refusing its values is tested on
            // its own (spec::cli).
            .env("HOMELAB_ALLOW_EXAMPLE_VALUES", "1")
            .current_dir(self.dir());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// `homelab ARGS` with an empty stdin.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, &[], "")
    }

    /// `homelab ARGS` with `stdin` piped in.
    pub fn run_stdin(&self, args: &[&str], stdin: &str) -> Run {
        self.run_with(args, &[], stdin)
    }

    /// `homelab ARGS` with extra environment and `stdin` piped in.
    pub fn run_with(&self, args: &[&str], env: &[(&str, &str)], stdin: impl AsRef<[u8]>) -> Run {
        let mut cmd = assert_cmd::Command::from_std(self.command());
        cmd.args(args).write_stdin(stdin.as_ref().to_vec());
        for (k, v) in env {
            cmd.env(k, v);
        }
        Run::from_output(cmd.output().expect("the homelab binary starts"))
    }

    /// `homelab ARGS` on a pseudo-terminal (stdin, stdout and stderr all the terminal). For
    /// each `(prompt, answer)`, waits for the prompt and for the program to turn echo off,
    /// then types the answer and Enter. Returns everything the terminal showed.
    pub fn run_tty(&self, args: &[&str], dialog: &[(&str, &str)]) -> Run {
        let python = venv_python();
        let driver = self.root().join("pty-driver.py");
        std::fs::write(&driver, PTY_DRIVER).expect("write the pty driver");
        let cmd = self.command();
        let mut py = Command::new(python);
        py.arg(&driver)
            .arg(env!("CARGO_BIN_EXE_homelab"))
            .args(args);
        // Same environment as `command()`.
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => py.env(k, v),
                None => py.env_remove(k),
            };
        }
        py.current_dir(self.dir());
        let sep = "\u{1f}";
        py.env(
            "PTY_PROMPTS",
            dialog.iter().map(|(p, _)| *p).collect::<Vec<_>>().join(sep),
        )
        .env(
            "PTY_ANSWERS",
            dialog.iter().map(|(_, a)| *a).collect::<Vec<_>>().join(sep),
        );
        let out = py.output().expect("python starts");
        Run {
            code: out.status.code().expect("driver exits normally"),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Every file and directory below the scratch root (lab, HOME and runtime directory) with
    /// its bytes and mode.
    pub fn state(&self) -> BTreeMap<PathBuf, (Vec<u8>, u32)> {
        let mut out = BTreeMap::new();
        collect(self.root(), self.root(), &mut out);
        out.remove(Path::new("pty-driver.py"));
        out
    }

    /// Runs `secrets init` and returns its JSON report.
    pub fn init_secrets(&self) -> serde_json::Value {
        self.run(&["secrets", "init", "--output", "json"])
            .ok()
            .json()
    }

    /// The value of a secret, through `secrets get` into a pipe, without its newline.
    pub fn get(&self, name: &str) -> String {
        let run = self.run(&["secrets", "get", name]).ok();
        run.stdout
            .strip_suffix('\n')
            .unwrap_or_else(|| panic!("`get` ends its value with a newline: {run:?}"))
            .to_string()
    }

    /// Every secret's value (set ones) by name.
    pub fn values(&self) -> BTreeMap<String, String> {
        let list = self
            .run(&["secrets", "list", "--output", "json"])
            .ok()
            .json();
        list["secrets"]
            .as_array()
            .expect("a list of secrets")
            .iter()
            .filter(|s| s["set"] == true)
            .map(|s| {
                let name = s["name"].as_str().expect("a name").to_string();
                let value = self.get(&name);
                (name, value)
            })
            .collect()
    }
}

fn collect(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, (Vec<u8>, u32)>) {
    use std::os::unix::fs::MetadataExt;
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("list a directory")
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let meta = std::fs::symlink_metadata(&path).expect("stat");
        let rel = path
            .strip_prefix(root)
            .expect("below the root")
            .to_path_buf();
        if meta.is_dir() {
            out.insert(rel, (Vec::new(), meta.mode()));
            collect(root, &path, out);
        } else {
            out.insert(rel, (std::fs::read(&path).unwrap_or_default(), meta.mode()));
        }
    }
}

/// Asserts that nothing below the scratch root changed, naming the first difference.
pub fn assert_unchanged(
    before: &BTreeMap<PathBuf, (Vec<u8>, u32)>,
    after: &BTreeMap<PathBuf, (Vec<u8>, u32)>,
    what: &str,
) {
    let names = |m: &BTreeMap<PathBuf, (Vec<u8>, u32)>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        names(before),
        names(after),
        "{what}: files appeared or vanished"
    );
    for (path, state) in before {
        assert!(after[path] == *state, "{what}: {} changed", path.display());
    }
}

/// A fresh age identity made by the real `age-keygen`; returns (file, public key).
pub fn age_keygen(path: &Path) -> (PathBuf, String) {
    require_tool("age-keygen");
    let out = Command::new("age-keygen")
        .arg("-o")
        .arg(path)
        .output()
        .expect("age-keygen runs");
    assert!(out.status.success(), "age-keygen failed: {out:?}");
    let public = Command::new("age-keygen")
        .arg("-y")
        .arg(path)
        .output()
        .expect("age-keygen -y runs");
    assert!(public.status.success());
    (
        path.to_path_buf(),
        String::from_utf8(public.stdout).unwrap().trim().to_string(),
    )
}

/// Drives a program on a pseudo-terminal: waits for each prompt and for echo to be off
/// before typing the answer, so a program that echoes would show the answer in the output.
const PTY_DRIVER: &str = r#"
import os, pty, select, sys, termios, time

pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], ["homelab"] + sys.argv[2:])

buf = b""
def pump(timeout):
    global buf
    ready, _, _ = select.select([fd], [], [], timeout)
    if not ready:
        return True
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        return False
    if not chunk:
        return False
    buf += chunk
    return True

def split(name):
    value = os.environ.get(name, "")
    return value.split("\x1f") if value else []

searched = 0
for prompt, answer in zip(split("PTY_PROMPTS"), split("PTY_ANSWERS")):
    deadline = time.time() + 60
    while buf.find(prompt.encode(), searched) < 0:
        if time.time() > deadline or not pump(0.05):
            sys.stderr.write("pty driver: no prompt %r in %r\n" % (prompt, buf))
            sys.exit(97)
    searched = buf.find(prompt.encode(), searched) + len(prompt)
    deadline = time.time() + 60
    while termios.tcgetattr(fd)[3] & termios.ECHO:
        if time.time() > deadline:
            sys.stderr.write("pty driver: echo was never turned off at %r\n" % prompt)
            sys.exit(98)
        pump(0.01)
    os.write(fd, answer.encode() + b"\n")

deadline = time.time() + 120
while True:
    if time.time() > deadline:
        os.kill(pid, 9)
        sys.stderr.write("pty driver: the program did not finish\n")
        break
    ready, _, _ = select.select([fd], [], [], 0.5)
    if not ready:
        continue
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        break
    if not chunk:
        break
    buf += chunk
_, status = os.waitpid(pid, 0)
sys.stdout.buffer.write(buf)
sys.exit(os.waitstatus_to_exitcode(status))
"#;
