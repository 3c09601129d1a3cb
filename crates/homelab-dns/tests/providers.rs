//! Each provider's client against a stand-in that answers as the API's documentation says
//! (tests/standin/dns_apis.py): a first run makes the lab's records, a second changes nothing,
//! a refused credential, a rate limit that is waited out, and a record homelab did not make
//! that is refused with nothing changed.

use std::io::{BufRead as _, BufReader};
use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};

use homelab_dns::http::{Http, Method};
use homelab_dns::records::{desired, plan};
use homelab_dns::{ApplyError, Client, DnsError, Note, apply, mark_owned, note_after};
use homelab_spec::lab::{DnsApi, DnsProvider, DnsRecords, SecretRef};
use serde_json::{Value, json};

const SECRET: &str = "s3cret-canary-Zq81";
const IP: Ipv4Addr = Ipv4Addr::new(192, 168, 2, 100);
const ZONE: &str = "023e105f4ecef8ad9ca31a8372d0c353";

struct Standin {
    child: Child,
    url: String,
}

impl Drop for Standin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Standin {
    fn start(kind: &str, config: Value) -> Standin {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/standin/dns_apis.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(kind)
            .arg(config.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the stand-in");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the stand-in prints its port");
        let port: u16 = line.trim().parse().expect("a port");
        Standin {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn state(&self) -> Value {
        let a = Http::new(&self.url)
            .unwrap()
            .send(Method::Get, "/_state", &[], None)
            .await
            .unwrap();
        a.json().unwrap()
    }
}

struct Case {
    kind: &'static str,
    provider: DnsProvider,
    mode: DnsRecords,
}

const CASES: &[Case] = &[
    Case {
        kind: "pihole",
        provider: DnsProvider::Pihole,
        mode: DnsRecords::Hosts,
    },
    Case {
        kind: "adguard",
        provider: DnsProvider::Adguard,
        mode: DnsRecords::Wildcard,
    },
    Case {
        kind: "nextdns",
        provider: DnsProvider::Nextdns,
        mode: DnsRecords::Wildcard,
    },
    Case {
        kind: "cloudflare",
        provider: DnsProvider::Cloudflare,
        mode: DnsRecords::Wildcard,
    },
];

fn api(kind: &str, url: &str) -> DnsApi {
    let s = SecretRef("dns-secret".into());
    match kind {
        "pihole" => DnsApi::Pihole {
            url: url.into(),
            password: s,
        },
        "adguard" => DnsApi::Adguard {
            url: url.into(),
            username: "admin".into(),
            password: s,
        },
        "nextdns" => DnsApi::Nextdns {
            profile: "abc123".into(),
            api_key: s,
        },
        _ => DnsApi::Cloudflare {
            zone_id: ZONE.into(),
            api_token: s,
        },
    }
}

fn client(kind: &str, s: &Standin, secret: &str) -> Client {
    Client::new(&api(kind, &s.url), secret.into(), "lab", Some(&s.url)).unwrap()
}

fn hosts() -> Vec<String> {
    ["grafana", "n8n", "traefik"]
        .iter()
        .map(|h| format!("{h}.home.example.com"))
        .collect()
}

fn config(_kind: &str, records: Value, rate_limit: u32) -> Value {
    json!({"secret": SECRET, "records": records, "rateLimit": rate_limit, "perPage": 2,
           "profile": "abc123", "zone": ZONE, "user": "admin"})
}

/// One run as `homelab dns apply` makes it: list, mark, plan, apply, and the next note.
async fn run(
    c: &Client,
    case: &Case,
    note: Option<&Note>,
) -> Result<(homelab_dns::Plan, Note), ApplyError> {
    let mut existing = c.list().await.map_err(|error| ApplyError::Failed {
        error,
        done: vec![],
    })?;
    mark_owned(c, &mut existing, note);
    let want = desired(case.provider, case.mode, "home.example.com", &hosts(), IP);
    let p = plan(&want, &hosts(), &existing);
    apply(c, &p).await?;
    Ok((p.clone(), note_after(c, &p)))
}

/// Records someone else made, in each API's own shape.
fn foreign(kind: &str) -> Value {
    match kind {
        "pihole" => json!([
            "192.168.2.5 nas.home.example.com",
            "10.0.0.9 grafana.home.example.com"
        ]),
        "adguard" => {
            json!([{"domain": "*.home.example.com", "answer": "10.0.0.9", "enabled": true}])
        }
        "nextdns" => {
            json!([{"id": "f00d", "name": "home.example.com", "type": "A", "content": "10.0.0.9"}])
        }
        _ => json!([
            {"id": "a1", "name": "www.example.com", "type": "A", "content": "203.0.113.7", "proxied": true, "comment": null},
            {"id": "a2", "name": "*.home.example.com", "type": "A", "content": "10.0.0.9", "proxied": false, "comment": "by hand"},
        ]),
    }
}

#[tokio::test]
async fn a_first_run_makes_the_records_and_a_second_changes_nothing() {
    for case in CASES {
        // A record of someone else's elsewhere in the zone stays as it is.
        let others = match case.kind {
            "pihole" => json!(["192.168.2.5 nas.home.example.com"]),
            "cloudflare" => json!([
                {"id": "a1", "name": "www.example.com", "type": "A", "content": "203.0.113.7", "proxied": true, "comment": null},
                {"id": "a3", "name": "mail.example.com", "type": "MX", "content": "mx.example.com", "proxied": false, "comment": null},
            ]),
            _ => json!([]),
        };
        let s = Standin::start(case.kind, config(case.kind, others.clone(), 0));
        let c = client(case.kind, &s, SECRET);
        let (first, note) = run(&c, case, None)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", case.kind));
        assert!(!first.changes.is_empty(), "{}", case.kind);
        let state = s.state().await;
        let written = state["writes"].as_array().unwrap().len();
        assert_eq!(written, first.changes.len(), "{}: {state}", case.kind);
        let text = state["records"].to_string();
        match case.kind {
            "pihole" => {
                for h in hosts() {
                    assert!(text.contains(&format!("192.168.2.100 {h}")), "{text}");
                }
                assert!(text.contains("192.168.2.5 nas.home.example.com"));
            }
            "nextdns" => assert!(text.contains(r#""name":"home.example.com""#), "{text}"),
            "cloudflare" => {
                assert!(text.contains(r#""name":"*.home.example.com""#), "{text}");
                assert!(text.contains(r#""proxied":false"#));
                assert!(text.contains("managed by homelab (lab lab)"));
                assert!(text.contains("203.0.113.7"), "untouched: {text}");
            }
            _ => assert!(text.contains(r#""domain":"*.home.example.com""#), "{text}"),
        }

        let (second, _) = run(&c, case, Some(&note)).await.unwrap();
        assert!(second.is_empty(), "{}: {second:?}", case.kind);
        let after = s.state().await;
        assert_eq!(
            after["writes"].as_array().unwrap().len(),
            written,
            "{}: a second run wrote",
            case.kind
        );
        c.close().await;
    }
}

#[tokio::test]
async fn a_moved_ingress_moves_only_homelabs_records() {
    let case = &CASES[0];
    let s = Standin::start(
        "pihole",
        config("pihole", json!(["192.168.2.5 nas.home.example.com"]), 0),
    );
    let c = client("pihole", &s, SECRET);
    let (_, note) = run(&c, case, None).await.unwrap();
    let want = desired(
        case.provider,
        case.mode,
        "home.example.com",
        &hosts()[..2],
        Ipv4Addr::new(192, 168, 2, 101),
    );
    let mut existing = c.list().await.unwrap();
    mark_owned(&c, &mut existing, Some(&note));
    let p = plan(&want, &hosts()[..2], &existing);
    assert!(p.conflicts.is_empty(), "{p:?}");
    apply(&c, &p).await.unwrap();
    let text = s.state().await["records"].to_string();
    assert!(
        text.contains("192.168.2.101 grafana.home.example.com"),
        "{text}"
    );
    assert!(!text.contains("traefik"), "the unwanted host went: {text}");
    assert!(text.contains("192.168.2.5 nas.home.example.com"), "{text}");
    assert!(!text.contains("192.168.2.100"), "{text}");
}

#[tokio::test]
async fn a_refused_credential_is_an_auth_error_that_says_what_to_check() {
    for case in CASES {
        let s = Standin::start(case.kind, config(case.kind, json!([]), 0));
        let c = client(case.kind, &s, "wrong-password");
        let e = c.list().await.expect_err(case.kind);
        assert!(matches!(e, DnsError::Auth { .. }), "{}: {e:?}", case.kind);
        let text = e.to_string();
        assert!(
            text.contains("refused the credential") && text.contains("homelab secrets set"),
            "{text}"
        );
        assert!(
            !text.contains("wrong-password") && !text.contains(SECRET),
            "{text}"
        );
        assert!(s.state().await["writes"].as_array().unwrap().is_empty());
    }
}

#[tokio::test]
async fn a_rate_limit_is_waited_out_as_retry_after_says() {
    for case in CASES {
        let s = Standin::start(case.kind, config(case.kind, json!([]), 1));
        let c = client(case.kind, &s, SECRET);
        run(&c, case, None)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", case.kind));
        let state = s.state().await;
        assert_eq!(state["limited"], 1, "{}", case.kind);
        assert!(
            !state["writes"].as_array().unwrap().is_empty(),
            "{}: {state}",
            case.kind
        );
    }
}

#[tokio::test]
async fn a_rate_limit_that_lasts_ends_the_run_with_what_to_do() {
    let case = &CASES[3];
    let s = Standin::start(case.kind, config(case.kind, json!([]), 100));
    let c = client(case.kind, &s, SECRET);
    let e = run(&c, case, None).await.expect_err("still limited");
    let text = e.to_string();
    assert!(
        text.contains("still rate limited after 5 attempts") && text.contains("wait 1s"),
        "{text}"
    );
    assert!(text.contains("nothing was changed"), "{text}");
}

#[tokio::test]
async fn a_record_homelab_did_not_make_is_a_conflict_and_nothing_changes() {
    for case in CASES {
        let before = foreign(case.kind);
        let s = Standin::start(case.kind, config(case.kind, before.clone(), 0));
        let c = client(case.kind, &s, SECRET);
        let e = run(&c, case, None).await.expect_err(case.kind);
        let ApplyError::Conflicts { conflicts, .. } = &e else {
            panic!("{}: {e}", case.kind)
        };
        assert!(!conflicts.is_empty());
        let text = e.to_string();
        assert!(
            text.contains("10.0.0.9") && text.contains("nothing was changed"),
            "{text}"
        );
        assert!(text.contains("dns-record-conflict"), "{text}");
        let state = s.state().await;
        assert!(
            state["writes"].as_array().unwrap().is_empty(),
            "{}: {state}",
            case.kind
        );
        assert_eq!(state["records"], before, "{}", case.kind);

        // Not even a note naming the record makes it homelab's where the provider marks its own.
        if case.kind == "cloudflare" {
            let mut existing = c.list().await.unwrap();
            let note = Note {
                provider: c.provider().into(),
                target: c.target(),
                records: vec![homelab_dns::Record {
                    name: "*.home.example.com".into(),
                    address: "10.0.0.9".parse().unwrap(),
                }],
            };
            mark_owned(&c, &mut existing, Some(&note));
            assert!(existing.iter().all(|e| !e.owned));
        }
    }
}

#[tokio::test]
async fn nextdns_reports_errors_it_answers_with_200() {
    let s = Standin::start("nextdns", config("nextdns", json!([]), 0));
    let c = client("nextdns", &s, SECRET);
    let r = homelab_dns::Record {
        name: "home.example.com".into(),
        address: IP,
    };
    c.create(&r).await.unwrap();
    let e = c.create(&r).await.expect_err("a duplicate");
    assert!(
        e.to_string()
            .contains("duplicate: a rewrite for this name exists"),
        "{e}"
    );
}

#[tokio::test]
async fn cloudflare_reads_every_page() {
    let recs: Vec<Value> = (0..5)
        .map(|i| json!({"id": format!("r{i}"), "name": format!("h{i}.example.com"), "type": "A", "content": "203.0.113.1", "proxied": false, "comment": null}))
        .collect();
    let s = Standin::start("cloudflare", config("cloudflare", Value::Array(recs), 0));
    let c = client("cloudflare", &s, SECRET);
    assert_eq!(c.list().await.unwrap().len(), 5);
}
