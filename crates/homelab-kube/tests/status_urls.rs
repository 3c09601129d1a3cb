//! URL checks of `status` against real HTTPS servers (Python's ssl module, certificates made
//! by the openssl CLI): TLS version, certificate validity for the host, HTTP status.

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use homelab_kube::{
    Cluster, Health, KubeconfigSource, StatusChecks, StatusOptions, TlsCheckOptions, UrlCheck,
};
use support::{StandIn, StandInOptions};

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

/// A private CA and a server certificate for `web.lab.example`.
fn make_certificates(dir: &Path) {
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
    csr.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=web.lab.example",
    ]);
    openssl(dir, &csr);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:web.lab.example\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
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

struct HttpsServer {
    child: Child,
    port: u16,
}

impl HttpsServer {
    fn start(dir: &Path, max_tls: &str) -> HttpsServer {
        let script =
            support::workspace_root().join("crates/homelab-kube/tests/support/https_server.py");
        let mut child = Command::new(support::test_python())
            .arg(script)
            .arg(dir.join("server.pem"))
            .arg(dir.join("server.key"))
            .arg(max_tls)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start https_server.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
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

#[tokio::test]
async fn url_checks_verify_tls_version_certificate_host_and_status() {
    let dir = tempfile::tempdir().unwrap();
    make_certificates(dir.path());
    let tls13 = HttpsServer::start(dir.path(), "TLSv1_3");
    let tls12 = HttpsServer::start(dir.path(), "TLSv1_2");
    let standin = StandIn::start(&StandInOptions {
        nodes: vec![],
        ..Default::default()
    });
    let cluster = Cluster::connect(&KubeconfigSource {
        explicit: Some(standin.kubeconfig.clone()),
        ..Default::default()
    })
    .await
    .unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();

    let url = |host: &str, port: u16, path: &str| UrlCheck {
        url: format!("https://{host}:{port}{path}"),
        host: host.to_string(),
    };
    let checks = StatusChecks {
        urls: vec![
            url("web.lab.example", tls13.port, "/"),
            url("web.lab.example", tls12.port, "/login"),
            url("other.lab.example", tls13.port, "/"),
            url("web.lab.example", tls13.port, "/down"),
            url("closed.lab.example", closed, "/"),
        ],
        ..Default::default()
    };
    let local = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    let options = StatusOptions {
        tls: TlsCheckOptions {
            ca_pem: Some(std::fs::read(dir.path().join("ca.pem")).unwrap()),
            resolve: [
                ("web.lab.example".to_string(), local(tls13.port)),
                ("other.lab.example".to_string(), local(tls13.port)),
                ("closed.lab.example".to_string(), local(closed)),
            ]
            .into_iter()
            .collect(),
            ..Default::default()
        },
        ..Default::default()
    };
    // The override maps a name to one address, so the TLS 1.2 server is reached by port.
    let mut checks12 = checks.clone();
    checks12.urls[1].url = format!("https://127.0.0.1:{}/login", tls12.port);

    let report = cluster.status(&checks12, &options).await;
    let urls = &report.urls;
    assert!(urls[0].ok, "{:?}", urls[0]);
    assert_eq!(
        (urls[0].tls_version.as_deref(), urls[0].http_status),
        (Some("TLS 1.3"), Some(200))
    );
    assert!(urls[1].ok, "{:?}", urls[1]);
    assert_eq!(urls[1].tls_version.as_deref(), Some("TLS 1.2"));
    assert!(!urls[2].ok);
    let error = urls[2].error.clone().unwrap();
    assert!(error.contains("not valid for name"), "{error}");
    assert!(!urls[3].ok);
    assert_eq!(urls[3].http_status, Some(503));
    assert!(!urls[4].ok);
    assert!(
        urls[4]
            .error
            .as_deref()
            .unwrap()
            .starts_with("cannot connect"),
        "{:?}",
        urls[4]
    );
    assert_eq!(report.health, Health::Unhealthy);
    let problems: Vec<&str> = report.problems.iter().map(|p| p.problem.as_str()).collect();
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert_eq!(problems[1], "answered HTTP 503");
    assert!(report.problems.iter().all(|p| p.fix.contains("DNS")));

    // Without the lab CA the certificate is not trusted.
    let mut untrusted = options.clone();
    untrusted.tls.ca_pem = None;
    let only_first = StatusChecks {
        urls: vec![checks.urls[0].clone()],
        ..Default::default()
    };
    let report = cluster.status(&only_first, &untrusted).await;
    let error = report.urls[0].error.clone().unwrap();
    assert!(error.contains("TLS handshake failed"), "{error}");
}
