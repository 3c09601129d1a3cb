//! A running `homelab serve` for the tests that read its pages: started from a prepared
//! command, its address read from the line it prints, stopped (killed) when dropped, and a
//! plain HTTP/1.1 GET so that the tests see exactly the bytes a browser would.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One answer: status code, header block (lower-cased names) and body.
#[derive(Debug)]
pub struct Answer {
    pub code: u16,
    pub headers: String,
    pub body: String,
}

pub struct Dashboard {
    child: Child,
    pub addr: SocketAddr,
    /// The line `serve` printed when it started listening.
    pub banner: String,
    /// What it printed after that, once it has stopped.
    rest: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Dashboard {
    /// Starts `command` (a `homelab ... serve --listen 127.0.0.1:0 ...`) and waits for the line
    /// that says where it listens.
    pub fn start(command: Command) -> Dashboard {
        Dashboard::start_with_stderr(command, Stdio::inherit())
    }

    /// [`Dashboard::start`] with its stderr sent to `stderr` (a file, to read what it logged).
    pub fn start_with_stderr(mut command: Command, stderr: Stdio) -> Dashboard {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        let mut child = command.spawn().expect("homelab serve starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout);
        let mut banner = String::new();
        lines
            .read_line(&mut banner)
            .expect("homelab serve prints where it listens");
        let url = banner
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .or_else(|| banner.split('"').find(|w| w.starts_with("http://")))
            .unwrap_or_else(|| panic!("no URL in the first line of serve: {banner:?}"));
        let addr: SocketAddr = url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .expect("serve prints ADDRESS:PORT");
        // Keep reading stdout so that the process never blocks on a full pipe.
        let rest = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = rest.clone();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = lines.read_to_string(&mut text);
            *sink.lock().unwrap() = text;
        });
        Dashboard {
            child,
            addr,
            banner,
            rest,
        }
    }

    /// `GET path` with extra header lines (`Name: value`).
    pub fn get_with(&self, path: &str, headers: &[&str]) -> Answer {
        self.request("GET", path, headers)
    }

    pub fn get(&self, path: &str) -> Answer {
        self.request("GET", path, &[])
    }

    pub fn request(&self, method: &str, path: &str, headers: &[&str]) -> Answer {
        let mut stream = TcpStream::connect(self.addr).expect("connect to the dashboard");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.addr
        );
        for h in headers {
            req.push_str(h);
            req.push_str("\r\n");
        }
        if method != "GET" {
            req.push_str("Content-Length: 0\r\n");
        }
        req.push_str("\r\n");
        stream.write_all(req.as_bytes()).unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).expect("read the answer");
        let text = String::from_utf8(raw).expect("the answer is UTF-8");
        let (head, body) = text.split_once("\r\n\r\n").expect("a header block");
        let code = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .expect("a status line");
        Answer {
            code,
            headers: head.to_ascii_lowercase(),
            body: body.to_string(),
        }
    }

    /// `/api/overview` once `done` holds for it.
    pub fn overview_when(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let answer = self.get("/api/overview");
            assert_eq!(answer.code, 200, "{answer:?}");
            let v: serde_json::Value =
                serde_json::from_str(&answer.body).expect("the overview is JSON");
            if done(&v) {
                return v;
            }
            assert!(
                start.elapsed() < timeout,
                "timed out waiting for {what}; last overview: {v:#}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Dashboard {
    /// Stops it and returns everything it printed on stdout.
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The reader thread ends with the pipe; give it the moment it needs.
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if std::sync::Arc::strong_count(&self.rest) == 1 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        format!("{}{}", self.banner, self.rest.lock().unwrap())
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
