//! Starts fakepve (the Proxmox VE API simulator in the test virtualenv) in its own process
//! through launch_fakepve.py, on a loopback port with the guests and API tokens a test names;
//! stops it when dropped. The Rust side only talks HTTP to it.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub struct FakePve {
    child: Child,
    pub endpoint: String,
    _dir: tempfile::TempDir,
}

fn venv_python() -> PathBuf {
    let venv = std::env::var_os("HOMELAB_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../..")
                .join(".venv-test")
        });
    let python = venv.join("bin/python");
    let ok = Command::new(&python)
        .args(["-c", "import fakepve"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "fakepve is not installed in {}: run scripts/install-test-deps",
        venv.display()
    );
    python
}

impl FakePve {
    /// `guests` is fakepve's guests file: `{"guests": [{"vmid", "name", ...}]}`.
    pub fn start(guests: serde_json::Value) -> FakePve {
        FakePve::with_tokens(guests, &[])
    }

    /// Also registers API tokens (`(id, secret)`), through the launcher script beside this file.
    pub fn with_tokens(guests: serde_json::Value, tokens: &[(&str, &str)]) -> FakePve {
        let python = venv_python();
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("guests.json");
        std::fs::write(&file, guests.to_string()).expect("guests file");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let launcher =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/launch_fakepve.py");
        let mut child = Command::new(python)
            .arg(launcher)
            .arg(&file)
            .args([port.to_string().as_str(), "lab-test-pw"])
            .args(tokens.iter().map(|(id, secret)| format!("{id}={secret}")))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start fakepve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("fakepve listening on ") {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let endpoint = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!("fakepve did not start listening");
            }
        };
        FakePve {
            child,
            endpoint,
            _dir: dir,
        }
    }
}

impl Drop for FakePve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
