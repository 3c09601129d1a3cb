//! The UDP lookup against a real resolver: dnsmasq on loopback, started here with a hosts file
//! and a wildcard, answering, saying NXDOMAIN, and a resolver that is not there.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use homelab_dns::resolve::{Lookup, lookup_a};

struct Dnsmasq(Child);

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn dnsmasq(dir: &std::path::Path) -> (Dnsmasq, SocketAddrV4) {
    let hosts = dir.join("hosts");
    std::fs::write(
        &hosts,
        "192.168.2.100 grafana.home.example.com\n10.0.0.9 n8n.home.example.com\n",
    )
    .unwrap();
    let port = free_port();
    let bin = ["/usr/sbin/dnsmasq", "dnsmasq"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .stdout(Stdio::null())
                .status()
                .is_ok()
        })
        .expect("dnsmasq is installed (scripts/install-test-deps)");
    let child = Command::new(bin)
        .args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            "--listen-address=127.0.0.1",
            "--user=root",
            "--pid-file=",
        ])
        .arg(format!("--port={port}"))
        .arg(format!("--addn-hosts={}", hosts.display()))
        .arg("--address=/wild.example.com/192.168.2.100")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("dnsmasq starts");
    (Dnsmasq(child), SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
}

/// Asks until dnsmasq has bound its port (it starts in the background); not a timing assertion.
async fn ask(server: SocketAddrV4, name: &str) -> Lookup {
    for _ in 0..50 {
        let l = lookup_a(server, name, Duration::from_millis(200), 1).await;
        if !matches!(l, Lookup::NoAnswer { .. }) {
            return l;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    lookup_a(server, name, Duration::from_millis(200), 1).await
}

#[tokio::test]
async fn dnsmasq_answers_hosts_and_wildcards_and_says_nxdomain() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, server) = dnsmasq(dir.path());
    let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
    assert_eq!(
        ask(server, "grafana.home.example.com").await,
        Lookup::Answered {
            addresses: vec![ip("192.168.2.100")]
        }
    );
    assert_eq!(
        ask(server, "n8n.home.example.com").await,
        Lookup::Answered {
            addresses: vec![ip("10.0.0.9")]
        }
    );
    assert_eq!(
        ask(server, "anything.wild.example.com").await,
        Lookup::Answered {
            addresses: vec![ip("192.168.2.100")]
        }
    );
    assert!(matches!(
        ask(server, "missing.home.example.com").await,
        Lookup::NoSuchName | Lookup::Failed { .. }
    ));
}

#[tokio::test]
async fn a_resolver_that_is_not_there_is_no_answer() {
    let server = SocketAddrV4::new(Ipv4Addr::LOCALHOST, free_port());
    let l = lookup_a(
        server,
        "grafana.home.example.com",
        Duration::from_millis(200),
        2,
    )
    .await;
    assert!(matches!(l, Lookup::NoAnswer { .. }), "{l:?}");
}
