//! Real TLS for URL checks: a private CA and a server certificate made by the openssl CLI, and
//! an HTTPS server (`https_server.py`, Python's ssl module) that serves with them. Asserts
//! nothing of its own.

use std::io::{BufRead, BufReader};
use std::path::Path;
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
}

impl HttpsServer {
    /// Serves with the certificate [`make_certificates`] wrote into `dir`, allowing TLS
    /// versions up to `max_tls` (`TLSv1_2` or `TLSv1_3`).
    pub fn start(dir: &Path, max_tls: &str) -> HttpsServer {
        let script =
            super::workspace_root().join("crates/homelab-kube/tests/support/https_server.py");
        let mut child = Command::new(super::test_python())
            .arg(script)
            .arg(dir.join("server.pem"))
            .arg(dir.join("server.key"))
            .arg(max_tls)
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
        HttpsServer { child, port }
    }
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
