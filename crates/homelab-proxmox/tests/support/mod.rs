//! Starts fakepve (the Proxmox VE API simulator in the test virtualenv) in its own process
//! through launch_fakepve.py, on a loopback port with the guests and API tokens a test names;
//! stops it when dropped. The Rust side talks HTTP to it, and injects faults through the
//! launcher's control lines on stdin (see launch_fakepve.py). Other crates' tests include this
//! file with `#[path]`; the launcher is found beside it from any crate under crates/.

use std::io::Write as _;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::Duration;

pub struct FakePve {
    child: Child,
    pub endpoint: String,
    control: Mutex<(ChildStdin, mpsc::Receiver<String>)>,
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
    #[allow(dead_code)]
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
        let launcher = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../homelab-proxmox/tests/support/launch_fakepve.py");
        let mut child = Command::new(python)
            .arg(launcher)
            .arg(&file)
            .args([port.to_string().as_str(), "lab-test-pw"])
            .args(tokens.iter().map(|(id, secret)| format!("{id}={secret}")))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start fakepve");
        let stdout = child.stdout.take().expect("stdout");
        let stdin = child.stdin.take().expect("stdin");
        let (tx, rx) = mpsc::channel();
        let (answers_tx, answers) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("fakepve listening on ") {
                    let _ = tx.send(url.trim().to_string());
                } else if line == "ok" || line.starts_with("ok ") || line.starts_with("error ") {
                    let _ = answers_tx.send(line);
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
            control: Mutex::new((stdin, answers)),
            _dir: dir,
        }
    }

    /// Sends one control command (`{"op": ...}`) and returns what came back after `ok`;
    /// panics when the launcher refused it.
    #[allow(dead_code)]
    pub fn control(&self, command: serde_json::Value) -> String {
        let mut guard = self.control.lock().expect("control lock");
        let (stdin, answers) = &mut *guard;
        writeln!(stdin, "{command}").expect("write to fakepve");
        stdin.flush().expect("flush to fakepve");
        let line = answers
            .recv_timeout(Duration::from_secs(30))
            .expect("fakepve answers its control line");
        match line.strip_prefix("ok") {
            Some(rest) => rest.trim().to_string(),
            None => panic!("fakepve refused {command}: {line}"),
        }
    }

    /// Every request so far, as (method, path).
    #[allow(dead_code)]
    pub fn requests(&self) -> Vec<(String, String)> {
        serde_json::from_str(&self.control(serde_json::json!({"op": "requests"})))
            .expect("requests as JSON")
    }
}

impl Drop for FakePve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
