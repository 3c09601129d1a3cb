//! The dev proxy's rendered nginx configuration and reload loop, run for real: `nginx -t`,
//! requests through a real nginx to a local HTTP server, a reload when the configuration
//! changes (same master process), and SSH through the `stream` port to a local sshd.
//!
//! What the test adapts, and only in its own copy of the rendered files: Debian's nginx has
//! the stream module as a dynamic module (the official image has it built in), so a
//! `load_module` line is added; the listen ports become free loopback ports; the cluster DNS
//! address (`resolver 10.43.0.10`) becomes a small DNS server of the test on loopback that
//! answers every `*.svc.cluster.local` name with 127.0.0.1, and the dev container's SSH port
//! 22 becomes the test sshd's port; `/tmp` paths and the ConfigMap mount path move into the
//! test's temporary directory. Route targets are set in the spec itself.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

const MOUNT: &str = "/etc/nginx/homelab";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The dev proxy ConfigMap's files (nginx.conf, reload-loop.sh) of a spec.
fn proxy_files(spec: &str) -> (String, String) {
    let tree = render_k3s(&plan_of(spec));
    let cm = yaml_docs(tree.text("applications/nginx/configmap.yaml").unwrap())
        .into_iter()
        .find(|d| d["kind"] == "ConfigMap")
        .unwrap();
    (
        cm["data"]["nginx.conf"].as_str().unwrap().to_string(),
        cm["data"]["reload-loop.sh"].as_str().unwrap().to_string(),
    )
}

struct Ports {
    http: u16,
    ssh: u16,
    dns: u16,
    sshd: u16,
}

/// The test's copy of the configuration (see the module comment for every change).
fn adapt(conf: &str, dir: &Path, p: &Ports) -> String {
    let d = dir.display();
    let mut c = format!("load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n{conf}");
    c = c.replace("pid /tmp/nginx.pid;", &format!("pid {d}/nginx.pid;"));
    for t in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"] {
        c = c.replace(&format!("/tmp/{t};"), &format!("{d}/{t};"));
    }
    assert!(c.contains("listen 8080;") && c.contains("listen 2222;"));
    c = c.replace("listen 8080;", &format!("listen 127.0.0.1:{};", p.http));
    c = c.replace("listen 2222;", &format!("listen 127.0.0.1:{};", p.ssh));
    assert!(c.contains("resolver 10.43.0.10 "));
    c = c.replace(
        "resolver 10.43.0.10 ",
        &format!("resolver 127.0.0.1:{} ", p.dns),
    );
    c = c.replace(
        ".svc.cluster.local:22\"",
        &format!(".svc.cluster.local:{}\"", p.sshd),
    );
    c
}

fn adapt_loop(script: &str, dir: &Path) -> String {
    assert!(script.contains(MOUNT));
    script
        .replace(MOUNT, &dir.join("homelab").display().to_string())
        .replace(
            "/tmp/nginx-test.log",
            &dir.join("nginx-test.log").display().to_string(),
        )
}

/// A DNS server answering A queries for `*.svc.cluster.local` with 127.0.0.1.
fn start_dns() -> u16 {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            let q = &buf[..n];
            if n < 17 {
                continue;
            }
            let mut i = 12;
            let mut labels = Vec::new();
            while i < n && q[i] != 0 {
                let len = q[i] as usize;
                labels.push(String::from_utf8_lossy(&q[i + 1..i + 1 + len]).to_string());
                i += 1 + len;
            }
            let end = i + 5;
            let name = labels.join(".");
            let qtype = u16::from_be_bytes([q[i + 1], q[i + 2]]);
            let found = name.ends_with(".svc.cluster.local") && qtype == 1;
            let mut r = Vec::with_capacity(64);
            r.extend_from_slice(&q[0..2]);
            r.extend_from_slice(if found { &[0x81, 0x80] } else { &[0x81, 0x83] });
            r.extend_from_slice(&[0, 1, 0, if found { 1 } else { 0 }, 0, 0, 0, 0]);
            r.extend_from_slice(&q[12..end]);
            if found {
                r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 127, 0, 0, 1]);
            }
            let _ = sock.send_to(&r, from);
        }
    });
    port
}

/// An HTTP server that answers every request with its request line and Host header.
fn start_backend(tag: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            std::thread::spawn(move || {
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&req);
                let line = text.lines().next().unwrap_or_default().to_string();
                let prefix = text
                    .lines()
                    .find(|l| l.to_ascii_lowercase().starts_with("x-forwarded-prefix:"))
                    .unwrap_or("x-forwarded-prefix: -")
                    .to_string();
                let body = format!("{tag} {line} {prefix}\n");
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    port
}

/// `GET path` on 127.0.0.1:port: (status, body).
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: dev.home.jetzinger.com\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split_whitespace().nth(1)?.parse().ok()?;
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
    Some((status, body))
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

/// Kills the started processes when the test ends, passed or not.
struct Procs(Vec<Child>, Option<PathBuf>);

impl Drop for Procs {
    fn drop(&mut self) {
        if let Some(pid_file) = &self.1
            && let Ok(pid) = std::fs::read_to_string(pid_file)
        {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spec_with_routes(b1: u16, b2: u16) -> String {
    SEED.replace(
        "target: 192.168.2.50:3000",
        &format!("target: 127.0.0.1:{b1}"),
    )
    .replace(
        "target: 192.168.2.51:8080",
        &format!("target: 127.0.0.1:{b2}"),
    )
}

#[test]
fn nginx_accepts_the_rendered_config() {
    let tmp = tempfile::tempdir().unwrap();
    let (conf, _) = proxy_files(SEED);
    let ports = Ports {
        http: free_port(),
        ssh: free_port(),
        dns: 53,
        sshd: 22,
    };
    let file = tmp.path().join("nginx.conf");
    std::fs::write(&file, adapt(&conf, tmp.path(), &ports)).unwrap();
    let out = run_ok(
        Command::new(tool("nginx"))
            .arg("-t")
            .arg("-c")
            .arg(&file)
            .arg("-p")
            .arg(tmp.path()),
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("test is successful"));

    // nginx -t can fail: a route without its closing brace is refused.
    std::fs::write(
        &file,
        adapt(&conf, tmp.path(), &ports).replacen(
            "location = /healthz {",
            "location = /healthz",
            1,
        ),
    )
    .unwrap();
    let out = Command::new(tool("nginx"))
        .arg("-t")
        .arg("-c")
        .arg(&file)
        .arg("-p")
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn dev_proxy_routes_reloads_and_forwards_ssh_for_real() {
    let nginx = tool("nginx");
    let sshd = tool("sshd");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let b1 = start_backend("app-one");
    let b2_port = free_port(); // nothing listens here yet: /app2 answers 502
    let ports = Ports {
        http: free_port(),
        ssh: free_port(),
        dns: start_dns(),
        sshd: free_port(),
    };

    // A real sshd for the dev container, with a key pair of the test.
    let user = String::from_utf8(run_ok(Command::new("id").arg("-un")).stdout)
        .unwrap()
        .trim()
        .to_string();
    run_ok(
        Command::new(tool("ssh-keygen"))
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(dir.join("host_key")),
    );
    run_ok(
        Command::new(tool("ssh-keygen"))
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(dir.join("client_key")),
    );
    std::fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys")).unwrap();
    std::fs::create_dir_all("/run/sshd").ok();
    let sshd_config = dir.join("sshd_config");
    std::fs::write(
        &sshd_config,
        format!(
            "Port {}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\nPidFile {d}/sshd.pid\nStrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nAllowUsers {user}\n",
            ports.sshd,
            d = dir.display()
        ),
    )
    .unwrap();
    let mut procs = Procs(Vec::new(), Some(dir.join("nginx.pid")));
    procs.0.push(
        Command::new(&sshd)
            .args(["-D", "-e", "-f"])
            .arg(&sshd_config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sshd"),
    );

    // The rendered configuration and reload loop, adapted, in the "mounted ConfigMap".
    let (conf, script) = proxy_files(&spec_with_routes(b1, b2_port));
    let mount = dir.join("homelab");
    std::fs::create_dir(&mount).unwrap();
    std::fs::write(mount.join("nginx.conf"), adapt(&conf, dir, &ports)).unwrap();
    std::fs::write(mount.join("reload-loop.sh"), adapt_loop(&script, dir)).unwrap();
    let log = std::fs::File::create(dir.join("loop.log")).unwrap();
    let bin = nginx.parent().unwrap().display().to_string();
    procs.0.push(
        Command::new("/bin/sh")
            .arg(mount.join("reload-loop.sh"))
            .env("PATH", format!("{bin}:/usr/sbin:/usr/bin:/bin"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start the reload loop"),
    );
    wait_for("nginx to answer /healthz", Duration::from_secs(20), || {
        get(ports.http, "/healthz").is_some_and(|(s, b)| s == 200 && b == "ok\n")
    });
    let master = std::fs::read_to_string(dir.join("nginx.pid")).unwrap();

    // Routes: prefix stripped, prefix header set, redirect to the slash form, 404 elsewhere.
    let (status, body) = get(ports.http, "/app1/api/items?x=1").unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        "app-one GET /api/items?x=1 HTTP/1.1 X-Forwarded-Prefix: /app1\n"
    );
    assert_eq!(get(ports.http, "/app1").unwrap().0, 301);
    assert_eq!(get(ports.http, "/app2/").unwrap().0, 502);
    let (status, body) = get(ports.http, "/nowhere").unwrap();
    assert_eq!(
        (status, body.as_str()),
        (404, "no dev route for this path\n")
    );

    // A changed ConfigMap (here: /app2 now points at a running server) is picked up by a
    // reload of the same master process, not a restart.
    let b2 = start_backend("app-two");
    let (conf2, _) = proxy_files(&spec_with_routes(b1, b2));
    let tmp_conf = mount.join(".nginx.conf.new");
    std::fs::write(&tmp_conf, adapt(&conf2, dir, &ports)).unwrap();
    std::fs::rename(&tmp_conf, mount.join("nginx.conf")).unwrap();
    wait_for("the reload to route /app2", Duration::from_secs(30), || {
        get(ports.http, "/app2/x")
            .is_some_and(|(s, b)| s == 200 && b.starts_with("app-two GET /x "))
    });
    assert_eq!(
        std::fs::read_to_string(dir.join("nginx.pid")).unwrap(),
        master
    );
    let loop_log = std::fs::read_to_string(dir.join("loop.log")).unwrap();
    assert!(
        loop_log.contains("configuration changed: nginx reloaded"),
        "{loop_log}"
    );

    // A broken configuration is reported and the running one kept.
    std::fs::write(&tmp_conf, "this is not nginx configuration\n").unwrap();
    std::fs::rename(&tmp_conf, mount.join("nginx.conf")).unwrap();
    wait_for(
        "the loop to report the broken configuration",
        Duration::from_secs(30),
        || {
            std::fs::read_to_string(dir.join("loop.log"))
                .unwrap()
                .contains("configuration changed but is invalid")
        },
    );
    assert_eq!(get(ports.http, "/app2/y").unwrap().0, 200);
    assert_eq!(
        std::fs::read_to_string(dir.join("nginx.pid")).unwrap(),
        master
    );

    // SSH to the dev container through the stream port (name resolved at connect time).
    wait_for("sshd to listen", Duration::from_secs(10), || {
        TcpStream::connect(("127.0.0.1", ports.sshd)).is_ok()
    });
    let out = run_ok(
        Command::new(tool("ssh"))
            .args(["-p", &ports.ssh.to_string(), "-i"])
            .arg(dir.join("client_key"))
            .args([
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "ConnectTimeout=10",
                &format!("{user}@127.0.0.1"),
                "echo through-the-stream-port",
            ]),
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "through-the-stream-port"
    );
    drop(procs);
}
