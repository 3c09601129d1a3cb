//! `homelab dns plan|apply` through the binary against the Pi-hole v6 stand-in (the one
//! homelab-dns's tests use): the plan, a first apply, a second that changes nothing, the JSON
//! form, a refused password and a record homelab did not make, each changing nothing; and the
//! records `manual` prints. The password appears in no output.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::process::{Child, Command, Stdio};

use crate::support::*;

const PASSWORD: &str = "pihole-canary-Hq27x";

struct Standin {
    child: Child,
    port: u16,
}

impl Drop for Standin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Standin {
    fn pihole(records: serde_json::Value) -> Standin {
        let script = workspace_root().join("crates/homelab-dns/tests/standin/dns_apis.py");
        let config = serde_json::json!({"secret": PASSWORD, "records": records});
        let mut child = Command::new("python3")
            .arg(script)
            .arg("pihole")
            .arg(config.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the stand-in");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        Standin {
            child,
            port: line.trim().parse().unwrap(),
        }
    }

    fn state(&self) -> serde_json::Value {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "GET /_state HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let body = text.split("\r\n\r\n").nth(1).unwrap();
        serde_json::from_str(body).unwrap()
    }
}

fn spec(dns: &str) -> String {
    let min = homelab_spec::templates::MINIMAL;
    let line = min
        .lines()
        .find(|l| l.starts_with("  domain: "))
        .expect("the minimal spec has a domain");
    min.replace(line, &format!("{line}\n  dns:\n{dns}"))
}

fn pihole_lab(s: &Standin) -> Lab {
    let lab = Lab::with_spec(&spec(&format!(
        "    provider: pihole\n    url: http://127.0.0.1:{}\n    password: {{secret: pihole-password}}\n",
        s.port
    )));
    lab.init_secrets();
    lab.run_stdin(&["secrets", "set", "cloudflare-api-token"], "cf-token-1\n")
        .ok();
    lab.run_stdin(
        &["secrets", "set", "pihole-password"],
        &format!("{PASSWORD}\n"),
    )
    .ok();
    lab
}

fn no_password(run: &Run) {
    assert!(
        !run.stdout.contains(PASSWORD) && !run.stderr.contains(PASSWORD),
        "the password leaked"
    );
}

#[test]
fn plan_then_apply_makes_the_records_and_a_second_apply_changes_nothing() {
    let s = Standin::pihole(serde_json::json!(["192.168.1.5 nas.home.example.com"]));
    let lab = pihole_lab(&s);
    let plan = lab.run(&["dns", "plan"]).ok();
    no_password(&plan);
    assert!(
        plan.stdout.contains("+ traefik.home.example.com A "),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("`homelab dns apply` makes them"),
        "{}",
        plan.stdout
    );
    assert!(
        s.state()["writes"].as_array().unwrap().is_empty(),
        "plan wrote"
    );

    let json = lab.run(&["dns", "plan", "--output", "json"]).ok().json();
    let changes = json["live"]["changes"].as_array().unwrap().len();
    assert!(changes > 0, "{json}");

    let apply = lab.run(&["dns", "apply"]).ok();
    no_password(&apply);
    let state = s.state();
    assert_eq!(
        state["writes"].as_array().unwrap().len(),
        changes,
        "{state}"
    );
    let records = state["records"].to_string();
    assert!(
        records.contains("nas.home.example.com"),
        "left alone: {records}"
    );
    assert!(records.contains(" traefik.home.example.com"), "{records}");
    let note = lab.read(".homelab/dns.json");
    assert!(
        note.contains("traefik.home.example.com") && !note.contains(PASSWORD),
        "{note}"
    );

    let again = lab.run(&["dns", "apply"]).ok();
    assert!(again.stdout.contains("nothing changed"), "{}", again.stdout);
    assert_eq!(s.state()["writes"].as_array().unwrap().len(), changes);
    let plan = lab.run(&["dns", "plan"]).ok();
    assert!(plan.stdout.contains("nothing to change"), "{}", plan.stdout);
}

#[test]
fn a_refused_password_is_exit_1_with_the_secret_to_check_and_nothing_changed() {
    let s = Standin::pihole(serde_json::json!([]));
    let lab = pihole_lab(&s);
    lab.run_stdin(
        &["secrets", "set", "pihole-password", "--force"],
        "wrong-one\n",
    )
    .ok();
    let run = lab.run(&["dns", "apply"]).expect(1);
    assert!(
        run.stderr.contains("refused the credential"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("homelab secrets set"), "{}", run.stderr);
    assert!(!run.stderr.contains("wrong-one"), "{}", run.stderr);
    assert!(s.state()["writes"].as_array().unwrap().is_empty());
    assert!(!lab.path(".homelab/dns.json").exists());
}

#[test]
fn a_record_homelab_did_not_make_is_refused_and_nothing_changes() {
    let before = serde_json::json!(["10.0.0.9 traefik.home.example.com"]);
    let s = Standin::pihole(before.clone());
    let lab = pihole_lab(&s);
    let plan = lab.run(&["dns", "plan"]).ok();
    assert!(plan.stdout.contains("will refuse"), "{}", plan.stdout);
    let run = lab.run(&["dns", "apply"]).expect(1);
    no_password(&run);
    assert!(
        run.stderr
            .contains("`traefik.home.example.com` already answers A 10.0.0.9"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("nothing was changed"), "{}", run.stderr);
    assert!(run.stderr.contains("dns-record-conflict"), "{}", run.stderr);
    let state = s.state();
    assert!(state["writes"].as_array().unwrap().is_empty(), "{state}");
    assert_eq!(state["records"], before);
}

#[test]
fn manual_prints_the_records_to_create() {
    let lab = Lab::with_spec(&spec("    provider: manual\n"));
    let run = lab.run(&["dns", "plan"]).ok();
    assert!(
        run.stdout.contains("*.home.example.com. 300 IN A "),
        "{}",
        run.stdout
    );
    let apply = lab.run(&["dns", "apply"]).ok();
    assert!(
        apply.stdout.contains("*.home.example.com. 300 IN A "),
        "{}",
        apply.stdout
    );
}
