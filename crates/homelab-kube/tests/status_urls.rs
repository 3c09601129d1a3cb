//! URL checks of `status` against real HTTPS servers (Python's ssl module, certificates made
//! by the openssl CLI): TLS version, certificate validity for the host, HTTP status.

mod support;

use std::net::SocketAddr;

use homelab_kube::{
    Cluster, Health, KubeconfigSource, StatusChecks, StatusOptions, TlsCheckOptions, UrlCheck,
};
use support::tls::{HttpsServer, make_certificates};
use support::{StandIn, StandInOptions};

#[tokio::test]
async fn url_checks_verify_tls_version_certificate_host_and_status() {
    let dir = tempfile::tempdir().unwrap();
    make_certificates(dir.path(), "web.lab.example");
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
