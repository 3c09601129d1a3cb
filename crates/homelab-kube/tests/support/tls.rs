//! Real TLS for URL checks: a private CA and a server certificate made by the openssl CLI, and
//! an HTTPS server (`https_server.py`, Python's ssl module) that serves with them. Asserts
//! nothing of its own.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap_or_else(|e| {
            panic!("the openssl CLI is needed ({e}): run scripts/install-test-deps")
        });
    assert!(status.success(), "openssl {args:?} failed");
}

/// Writes into `dir` a private CA (`ca.pem`, `ca.key`) and a server certificate for `name`
/// (`server.pem`, `server.key`) signed by it; `name` may be a wildcard such as `*.lab.example`.
pub fn make_certificates(dir: &Path, name: &str) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=homelab test CA",
    ]);
    openssl(dir, &ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    let subject = format!("/CN={name}");
    csr.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        subject.as_str(),
    ]);
    openssl(dir, &csr);
    std::fs::write(
        dir.join("ext.cnf"),
        format!(
            "subjectAltName=DNS:{name}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
        ),
    )
    .expect("write ext.cnf");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
}

/// An HTTPS server on a free port of 127.0.0.1, stopped when dropped.
pub struct HttpsServer {
    child: Child,
    pub port: u16,
    log: Option<PathBuf>,
}

/// One request the HTTPS server received: when (seconds of the system's monotonic clock, the
/// clock of the API stand-in's journal too), for which `Host` and path.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub at: f64,
    pub host: String,
    pub path: String,
}

impl HttpsServer {
    /// Serves with the certificate [`make_certificates`] wrote into `dir`, allowing TLS
    /// versions up to `max_tls` (`TLSv1_2` or `TLSv1_3`).
    pub fn start(dir: &Path, max_tls: &str) -> HttpsServer {
        HttpsServer::spawn(dir, max_tls, None)
    }

    /// Like [`HttpsServer::start`], noting each request it receives (see
    /// [`HttpsServer::received`]) in `dir/requests.log`.
    pub fn start_logging(dir: &Path, max_tls: &str) -> HttpsServer {
        HttpsServer::spawn(dir, max_tls, Some(dir.join("requests.log")))
    }

    /// The requests received so far (only when started with [`HttpsServer::start_logging`]).
    pub fn received(&self) -> Vec<Received> {
        let Some(log) = &self.log else {
            return vec![];
        };
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| {
                let mut parts = line.splitn(3, ' ');
                Some(Received {
                    at: parts.next()?.parse().ok()?,
                    host: parts.next()?.to_string(),
                    path: parts.next()?.to_string(),
                })
            })
            .collect()
    }

    /// Forgets the requests received so far.
    pub fn clear_received(&self) {
        if let Some(log) = &self.log {
            std::fs::write(log, "").expect("truncate the request log");
        }
    }

    fn spawn(dir: &Path, max_tls: &str, log: Option<PathBuf>) -> HttpsServer {
        let script =
            super::workspace_root().join("crates/homelab-kube/tests/support/https_server.py");
        let mut child = Command::new(super::test_python())
            .arg(script)
            .arg(dir.join("server.pem"))
            .arg(dir.join("server.key"))
            .arg(max_tls)
            .args(log.iter())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start https_server.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("a stdout pipe"))
            .read_line(&mut line)
            .expect("the server's port line");
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("https server said {line:?}"));
        HttpsServer { child, port, log }
    }
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
