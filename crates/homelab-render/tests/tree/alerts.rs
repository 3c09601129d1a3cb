//! NFR5 for the rendered lab: every P1 (critical) path from the breach to the phone fits in
//! a minute. The sum is computed from the rendered rules, the kube-prometheus-stack values
//! and the Alertmanager configuration (which amtool checks and routes), and promtool's rule
//! unit tests show each P1 firing within its share of the minute after the breach starts,
//! at every phase of the scrapes against the evaluations, and never for one bad scrape.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::alert_budget::{self, BUDGET_SECONDS, P1Path, PrometheusTiming, RuleSource, seconds};
use crate::common::*;
use crate::validators::{amtool_minor, for_amtool, layers_of};

/// A rendered lab's alerting: its PrometheusRules, Prometheus's settings and Alertmanager's
/// configuration, as the tree carries them.
#[derive(Clone)]
struct Alerting {
    rules: Vec<Value>,
    prometheus_spec: Value,
    alertmanager: Value,
}

impl Alerting {
    fn of(spec: &str) -> (tempfile::TempDir, Alerting) {
        let (tmp, objects) = layers_of(spec);
        let values = yaml_value(
            &std::fs::read_to_string(tmp.path().join("monitoring/prometheus/values-homelab.yaml"))
                .unwrap(),
        );
        let alerting = Alerting {
            rules: objects
                .into_iter()
                .filter(|o| o["kind"] == "PrometheusRule")
                .collect(),
            prometheus_spec: values["prometheus"]["prometheusSpec"].clone(),
            alertmanager: values["alertmanager"]["config"].clone(),
        };
        (tmp, alerting)
    }

    fn sources(&self) -> Vec<RuleSource<'_>> {
        self.rules
            .iter()
            .map(|r| RuleSource {
                name: format!(
                    "PrometheusRule {}",
                    r["metadata"]["name"].as_str().unwrap_or_default()
                ),
                groups: &r["spec"]["groups"],
            })
            .collect()
    }

    fn timing(&self) -> PrometheusTiming {
        PrometheusTiming::from_spec(&self.prometheus_spec, "the kube-prometheus-stack values")
    }

    fn paths(&self) -> Vec<P1Path> {
        alert_budget::p1_paths(&self.sources(), &self.timing(), &self.alertmanager)
    }
}

/// amtool accepts the configuration, and routes an alert with these labels to exactly the
/// receivers the budget was computed for.
fn amtool_routes(dir: &Path, config: &Value, labels: &BTreeMap<String, String>) -> Vec<String> {
    let file = dir.join("alertmanager.yaml");
    std::fs::write(
        &file,
        serde_json::to_string(&for_amtool(config, amtool_minor())).unwrap(),
    )
    .unwrap();
    let out = run_ok(Command::new(tool("amtool")).arg("check-config").arg(&file));
    assert!(String::from_utf8_lossy(&out.stdout).contains("SUCCESS"));
    let out = run_ok(
        Command::new(tool("amtool"))
            .args(["config", "routes", "test"])
            .arg(format!("--config.file={}", file.display()))
            .args(labels.iter().map(|(k, v)| format!("{k}={v}"))),
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

#[test]
fn every_p1_path_fits_in_nfr5s_minute() {
    for (lab, spec) in [("seed", SEED.to_string()), ("wide", wide_spec())] {
        let (tmp, alerting) = Alerting::of(&spec);
        let timing = alerting.timing();
        let sources = alerting.sources();
        let critical = alert_budget::critical_rules(&sources);
        assert!(
            critical.len() >= 3,
            "lab {lab}: only {} P1 rules",
            critical.len()
        );
        let paths = alerting.paths();
        let has_p1_receiver = homelab_spec::load_str("homelab.yaml", &spec)
            .unwrap()
            .lab
            .alerting
            .receivers
            .iter()
            .any(|r| {
                r.severities
                    .contains(&homelab_spec::lab::AlertSeverity::Critical)
            });
        for (_, _, rule) in &critical {
            let name = rule["alert"].as_str().unwrap();
            let mut labels: BTreeMap<String, String> = rule["labels"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect();
            labels.insert("alertname".into(), name.into());
            let by_amtool: BTreeSet<String> =
                amtool_routes(tmp.path(), &alerting.alertmanager, &labels)
                    .into_iter()
                    .filter(|r| r != "null")
                    .collect();
            let by_budget: BTreeSet<String> = paths
                .iter()
                .filter(|p| p.alert == name)
                .map(|p| p.receiver.clone())
                .collect();
            assert_eq!(
                by_amtool, by_budget,
                "lab {lab}: {name}: amtool routes it to {by_amtool:?}, the budget counted {by_budget:?}"
            );
            assert_eq!(
                !by_budget.is_empty(),
                has_p1_receiver,
                "lab {lab}: {name} reaches {by_budget:?}"
            );
        }
        let over = alert_budget::over_budget(&paths, &timing);
        assert!(
            over.is_empty(),
            "lab {lab}:\n{}\nevery path:\n{}",
            over.join("\n"),
            paths
                .iter()
                .map(P1Path::show)
                .collect::<Vec<_>>()
                .join("\n")
        );
        for p in &paths {
            eprintln!("lab {lab}: {}", p.show());
        }

        // P2 and P3 rules keep a `for:` long enough that a blip does not notify anyone.
        for r in &alerting.rules {
            for g in r["spec"]["groups"].as_array().unwrap() {
                for rule in g["rules"].as_array().unwrap() {
                    if rule["labels"]["severity"] != "critical" {
                        let wait = seconds(rule["for"].as_str().unwrap_or_default());
                        assert!(
                            wait >= 600,
                            "lab {lab}: {} ({}) waits only {wait} s",
                            rule["alert"],
                            rule["labels"]["severity"]
                        );
                    }
                }
            }
        }
    }
}

/// The check above fails when any part of a P1 path is raised: a rule's `for:`, its
/// confirmation window, the P1 group's interval (or its removal, back to the global one), the
/// scrape interval, a query offset, the P1 route's `group_wait`, or its grouping (a P1 that
/// joins a notified group waits for `group_interval`).
fn node_down(a: &mut Alerting) -> &mut Value {
    a.rules[0]["spec"]["groups"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .flat_map(|g| g["rules"].as_array_mut().unwrap().iter_mut())
        .find(|r| r["alert"] == "NodeDown")
        .unwrap()
}

fn p1_route(a: &mut Alerting) -> &mut Value {
    a.alertmanager["route"]["routes"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|r| r["receiver"] == "phone" && r["matchers"] == json!(["severity=\"critical\""]))
        .expect("a P1 route to the phone")
}

#[test]
fn raising_any_part_of_a_p1_path_breaks_the_budget() {
    let (_tmp, base) = Alerting::of(SEED);
    assert!(alert_budget::over_budget(&base.paths(), &base.timing()).is_empty());
    type Change = Box<dyn Fn(&mut Alerting)>;
    let changes: Vec<(&str, Change)> = vec![
        (
            "NodeDown for: 1m",
            Box::new(|a| node_down(a)["for"] = json!("1m")),
        ),
        (
            "NodeDown window 45s",
            Box::new(|a| {
                let r = node_down(a);
                r["expr"] = json!(r["expr"].as_str().unwrap().replace("[30s]", "[45s]"));
            }),
        ),
        (
            "P1 group interval 1m",
            Box::new(|a| {
                for g in a.rules[0]["spec"]["groups"].as_array_mut().unwrap() {
                    if g["name"] == "homelab.p1-critical" {
                        g["interval"] = json!("1m");
                    }
                }
            }),
        ),
        (
            "P1 group interval removed (global 30s)",
            Box::new(|a| {
                for g in a.rules[0]["spec"]["groups"].as_array_mut().unwrap() {
                    g.as_object_mut().unwrap().remove("interval");
                }
            }),
        ),
        (
            "scrapeInterval 45s",
            Box::new(|a| a.prometheus_spec["scrapeInterval"] = json!("45s")),
        ),
        (
            "scrapeInterval removed (operator default 30s) and P1 window raised to match",
            Box::new(|a| {
                a.prometheus_spec
                    .as_object_mut()
                    .unwrap()
                    .remove("scrapeInterval");
                let r = node_down(a);
                r["expr"] = json!(r["expr"].as_str().unwrap().replace("[30s]", "[60s]"));
            }),
        ),
        (
            "ruleQueryOffset 10s",
            Box::new(|a| a.prometheus_spec["ruleQueryOffset"] = json!("10s")),
        ),
        (
            "P1 group query_offset 10s",
            Box::new(|a| {
                for g in a.rules[0]["spec"]["groups"].as_array_mut().unwrap() {
                    if g["name"] == "homelab.p1-critical" {
                        g["query_offset"] = json!("10s");
                    }
                }
            }),
        ),
        (
            "P1 route group_wait 30s",
            Box::new(|a| p1_route(a)["group_wait"] = json!("30s")),
        ),
        (
            "P1 route group_wait removed (root's 30s)",
            Box::new(|a| {
                p1_route(a).as_object_mut().unwrap().remove("group_wait");
            }),
        ),
        (
            "P1 route grouped by alertname (group_interval counts)",
            Box::new(|a| p1_route(a)["group_by"] = json!(["alertname"])),
        ),
    ];
    for (what, change) in changes {
        let mut a = base.clone();
        change(&mut a);
        let over = alert_budget::over_budget(&a.paths(), &a.timing());
        assert!(
            over.iter().any(|l| l.starts_with("P1 NodeDown ")),
            "{what}: the budget still holds:\n{}",
            a.paths()
                .iter()
                .map(P1Path::show)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

#[test]
fn the_budget_reads_durations_ranges_and_routes_as_prometheus_and_alertmanager_do() {
    assert_eq!(seconds("1h30m"), 5400);
    assert_eq!(seconds("15s"), 15);
    assert_eq!(seconds("500ms"), 1);
    assert_eq!(seconds(""), 0);
    assert_eq!(
        alert_budget::longest_range("max_over_time(up[30s]) == 0 and rate(x[5m:1m]) > 0"),
        300
    );
    assert_eq!(alert_budget::longest_range("up == 0"), 0);
    let config = json!({
        "route": {
            "receiver": "null", "group_by": ["alertname"], "group_wait": "30s",
            "routes": [
                {"matchers": ["alertname=~\"Watchdog\""], "receiver": "null"},
                {"matchers": ["severity=\"critical\""], "receiver": "a", "group_by": ["..."], "group_wait": "5s", "continue": true},
                {"matchers": ["severity=~\"critical|warning\""], "receiver": "b", "continue": true},
                {"matchers": ["severity!=\"info\""], "receiver": "c"},
                {"matchers": ["severity=\"critical\""], "receiver": "never"},
            ],
        },
    });
    let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let got = alert_budget::routes_for(
        &config,
        &labels(&[("alertname", "X"), ("severity", "critical")]),
    );
    let got: Vec<(String, u64)> = got.into_iter().map(|d| (d.receiver, d.wait)).collect();
    // `b` and `c` are grouped by alertname: group_interval (default 5m) counts there.
    assert_eq!(
        got,
        vec![("a".into(), 5), ("b".into(), 300), ("c".into(), 300)]
    );
    let got = alert_budget::routes_for(
        &config,
        &labels(&[("alertname", "Watchdog"), ("severity", "critical")]),
    );
    assert_eq!(got[0].receiver, "null");
    assert_eq!(got.len(), 1);
}

/// A P1 rule's signal in a promtool scenario: series that stay as they are, one series that
/// turns from good to bad at the breach, and the labels the alert then carries (besides its
/// name and the rule's labels).
struct Scenario {
    name: &'static str,
    alert: &'static str,
    steady: &'static [(&'static str, &'static str)],
    signal: (&'static str, &'static str, &'static str),
    labels: &'static [(&'static str, &'static str)],
    /// Whether the rule ignores objects and targets younger than its settling time.
    settles: bool,
}

const NODE: &str = r#"kube_node_status_condition{condition="Ready",status="true",node="k3s-worker-01",job="kube-state-metrics",namespace="monitoring"}"#;

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "a node turns not Ready",
        alert: "NodeDown",
        steady: &[(
            r#"kube_node_created{node="k3s-worker-01",job="kube-state-metrics",namespace="monitoring"}"#,
            "0",
        )],
        signal: (NODE, "1", "0"),
        labels: &[
            ("condition", "Ready"),
            ("status", "true"),
            ("node", "k3s-worker-01"),
            ("job", "kube-state-metrics"),
            ("namespace", "monitoring"),
        ],
        settles: true,
    },
    Scenario {
        name: "the only n8n target stops answering",
        alert: "TargetDown",
        steady: &[(
            r#"up{job="kube-state-metrics",namespace="monitoring",service="kube-state-metrics",instance="10.42.0.9:8080"}"#,
            "1",
        )],
        signal: (
            r#"up{job="n8n",namespace="apps",service="n8n",instance="10.42.1.7:5678"}"#,
            "1",
            "0",
        ),
        labels: &[("job", "n8n"), ("namespace", "apps"), ("service", "n8n")],
        settles: true,
    },
    Scenario {
        name: "postgres-0 is not ready",
        alert: "PostgresDown",
        steady: &[
            (
                r#"kube_statefulset_created{namespace="data",statefulset="postgres"}"#,
                "0",
            ),
            (r#"pg_up{namespace="data",instance="10.42.1.5:9187"}"#, "1"),
        ],
        signal: (
            r#"kube_statefulset_status_replicas_ready{namespace="data",statefulset="postgres"}"#,
            "1",
            "0",
        ),
        labels: &[("namespace", "data"), ("statefulset", "postgres")],
        settles: true,
    },
    Scenario {
        name: "the exporter cannot reach PostgreSQL",
        alert: "PostgresDown",
        steady: &[
            (
                r#"kube_statefulset_created{namespace="data",statefulset="postgres"}"#,
                "0",
            ),
            (
                r#"kube_statefulset_status_replicas_ready{namespace="data",statefulset="postgres"}"#,
                "1",
            ),
        ],
        signal: (
            r#"pg_up{namespace="data",instance="10.42.1.5:9187"}"#,
            "1",
            "0",
        ),
        labels: &[("namespace", "data"), ("instance", "10.42.1.5:9187")],
        settles: true,
    },
    Scenario {
        name: "the NFS provisioner has no available replica",
        alert: "NfsProvisionerDown",
        steady: &[(
            r#"kube_deployment_created{namespace="infra",deployment="nfs-provisioner-nfs-subdir-external-provisioner"}"#,
            "0",
        )],
        signal: (
            r#"kube_deployment_status_replicas_available{namespace="infra",deployment="nfs-provisioner-nfs-subdir-external-provisioner"}"#,
            "1",
            "0",
        ),
        labels: &[
            ("namespace", "infra"),
            (
                "deployment",
                "nfs-provisioner-nfs-subdir-external-provisioner",
            ),
        ],
        settles: true,
    },
    Scenario {
        name: "a claim loses its volume",
        alert: "PersistentVolumeClaimLost",
        steady: &[],
        signal: (
            r#"kube_persistentvolumeclaim_status_phase{namespace="apps",persistentvolumeclaim="n8n-data",phase="Lost"}"#,
            "0",
            "1",
        ),
        labels: &[
            ("namespace", "apps"),
            ("persistentvolumeclaim", "n8n-data"),
            ("phase", "Lost"),
        ],
        settles: false,
    },
];

/// The alert rule that fires on a clock threshold rather than on a sample.
const CLOCK_ALERT: &str = "PostgresBackupMissing";

/// Samples at whole seconds as promtool's expanding notation with a 1 s interval.
fn at_seconds(samples: &[(u64, String)]) -> String {
    let mut out = Vec::new();
    let mut next = 0;
    for (t, v) in samples {
        assert!(*t >= next, "samples out of order");
        if *t > next {
            out.push(format!("_x{}", t - next));
        }
        out.push(v.clone());
        next = t + 1;
    }
    out.join(" ")
}

fn expected(rule: &Value, extra: impl IntoIterator<Item = (String, String)>) -> Value {
    let mut labels: BTreeMap<String, String> = rule["labels"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    labels.extend(extra);
    json!([{"exp_labels": labels}])
}

#[test]
fn every_p1_fires_within_its_budget_in_promtool_and_never_for_one_bad_scrape() {
    let (_tmp, alerting) = Alerting::of(SEED);
    let cases = p1_scenarios(&alerting, None).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("promtool: {cases} cases passed");

    // The scenarios can fail: a P1 that pages on a single sample, and one that waits a
    // minute more, are both caught.
    let mut single_sample = alerting.clone();
    let r = node_down(&mut single_sample);
    r["expr"] = json!(r["expr"].as_str().unwrap().replace(
        "max_over_time(kube_node_status_condition{condition=\"Ready\",status=\"true\"}[30s])",
        "kube_node_status_condition{condition=\"Ready\",status=\"true\"}"
    ));
    let e = p1_scenarios(&single_sample, Some("NodeDown"))
        .expect_err("a single-sample NodeDown passed");
    assert!(e.contains("one bad scrape"), "{e}");
    let mut slow = alerting.clone();
    node_down(&mut slow)["for"] = json!("1m");
    let e = p1_scenarios(&slow, Some("NodeDown")).expect_err("NodeDown with for: 1m passed");
    assert!(e.contains(": breach, scrape phase"), "{e}");
    let mut eager = alerting.clone();
    let r = node_down(&mut eager);
    let expr = r["expr"].as_str().unwrap().to_string();
    r["expr"] = json!(expr.split("\nand ").next().unwrap());
    let e = p1_scenarios(&eager, Some("NodeDown"))
        .expect_err("NodeDown without its settling time passed");
    assert!(e.contains(": new and bad from the start"), "{e}");
}

/// Runs the promtool scenarios of every P1 rule (or of one alert); the number of cases run,
/// or promtool's report.
fn p1_scenarios(alerting: &Alerting, only: Option<&str>) -> Result<usize, String> {
    let timing = alerting.timing();
    let paths = alerting.paths();
    let sources = alerting.sources();
    let critical = alert_budget::critical_rules(&sources);
    let names: BTreeSet<&str> = critical
        .iter()
        .map(|(_, _, r)| r["alert"].as_str().unwrap())
        .collect();
    let covered: BTreeSet<&str> = SCENARIOS
        .iter()
        .map(|s| s.alert)
        .chain([CLOCK_ALERT])
        .collect();
    assert_eq!(
        names, covered,
        "every P1 rule of the seed lab needs a promtool scenario here (and only those)"
    );

    // The P1 rules as rendered, without their annotations (templates that promtool would
    // expand; `promtool check rules` covers them elsewhere): one group per interval.
    let mut groups: BTreeMap<u64, Vec<Value>> = BTreeMap::new();
    for (_, group, rule) in &critical {
        let interval = group["interval"]
            .as_str()
            .map(seconds)
            .unwrap_or(timing.evaluation_interval);
        let mut r = (*rule).clone();
        r.as_object_mut().unwrap().remove("annotations");
        groups.entry(interval).or_default().push(r);
    }
    assert_eq!(
        groups.len(),
        1,
        "the P1 rules run at one evaluation interval"
    );
    let (&interval, rules) = groups.iter().next().unwrap();
    let scrape = timing.scrape_interval;
    let rule_of = |name: &str| -> &Value {
        critical
            .iter()
            .find(|(_, _, r)| r["alert"] == name)
            .unwrap()
            .2
    };
    // The Alertmanager share of each alert's path (the slowest receiver it reaches).
    let notification = |name: &str| -> u64 {
        paths
            .iter()
            .filter(|p| p.alert == name)
            .map(|p| p.notification)
            .max()
            .unwrap_or_else(|| panic!("{name} reaches no receiver"))
    };

    let mut tests: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for s in SCENARIOS
        .iter()
        .filter(|s| only.is_none_or(|a| a == s.alert))
    {
        let tests = tests.entry(s.alert).or_default();
        let rule = rule_of(s.alert);
        let deadline_after_breach = BUDGET_SECONDS - notification(s.alert);
        let labels: Vec<(String, String)> = s
            .labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        // Every phase of the scrapes against the evaluation grid, to the second.
        for phase in 0..scrape {
            let times: Vec<u64> = (0..)
                .map(|k| phase + k * scrape)
                .take_while(|t| *t <= 900)
                .collect();
            // The last good sample, well after the settling time; the breach starts just
            // after it (the worst case: a whole scrape interval before anyone sees it).
            let last_good = *times.iter().find(|t| **t >= 420).unwrap();
            let series = |signal: &dyn Fn(u64) -> &'static str| -> Vec<Value> {
                let mut list: Vec<Value> = s
                    .steady
                    .iter()
                    .map(|(name, v)| {
                        json!({"series": name, "values": at_seconds(&times.iter().map(|t| (*t, v.to_string())).collect::<Vec<_>>())})
                    })
                    .collect();
                list.push(json!({"series": s.signal.0, "values": at_seconds(&times.iter().map(|t| (*t, signal(*t).to_string())).collect::<Vec<_>>())}));
                list
            };
            let (_, good, bad) = s.signal;
            // The breach, from just after `last_good` on.
            tests.push(json!({
                "name": format!("{}: breach, scrape phase {phase} s", s.name),
                "interval": "1s",
                "input_series": series(&|t| if t > last_good { bad } else { good }),
                "alert_rule_test": [
                    {"eval_time": format!("{last_good}s"), "alertname": s.alert, "exp_alerts": []},
                    {"eval_time": format!("{}s", last_good + deadline_after_breach), "alertname": s.alert, "exp_alerts": expected(rule, labels.clone())},
                ],
            }));
            // One bad scrape between good ones never fires.
            let one_bad = last_good + scrape;
            let quiet: Vec<Value> = (0..=(120 / interval))
                .map(|i| {
                    let t = (one_bad / interval) * interval + i * interval;
                    json!({"eval_time": format!("{t}s"), "alertname": s.alert, "exp_alerts": []})
                })
                .collect();
            tests.push(json!({
                "name": format!("{}: one bad scrape, scrape phase {phase} s", s.name),
                "interval": "1s",
                "input_series": series(&|t| if t == one_bad { bad } else { good }),
                "alert_rule_test": quiet,
            }));
            // A new object or target that starts out bad has its settling time.
            if s.settles {
                let quiet: Vec<Value> = (1..(285 / interval))
                    .map(|i| json!({"eval_time": format!("{}s", i * interval), "alertname": s.alert, "exp_alerts": []}))
                    .collect();
                tests.push(json!({
                    "name": format!("{}: new and bad from the start, scrape phase {phase} s", s.name),
                    "interval": "1s",
                    "input_series": series(&|_| bad),
                    "alert_rule_test": quiet,
                }));
            }
        }
    }

    // The backup alert compares a timestamp with the clock: the breach is the moment the
    // newest success gets too old, at every offset against the evaluation grid.
    let clock = rule_of(CLOCK_ALERT);
    let threshold: u64 = regex::Regex::new(r"> (\d+)")
        .unwrap()
        .captures(clock["expr"].as_str().unwrap())
        .expect("the backup alert compares an age with a number of seconds")[1]
        .parse()
        .unwrap();
    let sel = r#"namespace="data", cronjob="postgres-backup""#;
    let clock_labels = [
        ("namespace".to_string(), "data".to_string()),
        ("cronjob".to_string(), "postgres-backup".to_string()),
    ];
    let mut clock_tests = Vec::new();
    // Just after an evaluation (the worst case) and just before one. Each case evaluates
    // the rule over more than a day, so the offsets are few.
    for offset in [1, interval - 1] {
        let last_success = 1000 + offset;
        let breach = last_success + threshold;
        let samples = (breach + BUDGET_SECONDS) / scrape + 1;
        clock_tests.push(json!({
            "name": format!("{CLOCK_ALERT}: last success too old, offset {offset} s"),
            "interval": format!("{scrape}s"),
            "input_series": [
                {"series": format!("kube_cronjob_created{{{sel}}}"), "values": format!("0x{samples}")},
                {"series": format!("kube_cronjob_status_last_successful_time{{{sel}}}"), "values": format!("{last_success}x{samples}")},
            ],
            "alert_rule_test": [
                {"eval_time": format!("{breach}s"), "alertname": CLOCK_ALERT, "exp_alerts": []},
                {"eval_time": format!("{}s", breach + BUDGET_SECONDS - notification(CLOCK_ALERT)), "alertname": CLOCK_ALERT, "exp_alerts": expected(clock, clock_labels.clone())},
            ],
        }));
    }
    // A CronJob that never succeeded, created just after an evaluation.
    {
        let offset = 1;
        let created = 500 + offset;
        let breach = created + threshold;
        let samples = (breach + BUDGET_SECONDS) / scrape + 1;
        clock_tests.push(json!({
            "name": format!("{CLOCK_ALERT}: never succeeded, offset {offset} s"),
            "interval": format!("{scrape}s"),
            "input_series": [
                {"series": format!("kube_cronjob_created{{{sel}}}"), "values": format!("{created}x{samples}")},
            ],
            "alert_rule_test": [
                {"eval_time": format!("{breach}s"), "alertname": CLOCK_ALERT, "exp_alerts": []},
                {"eval_time": format!("{}s", breach + BUDGET_SECONDS - notification(CLOCK_ALERT)), "alertname": CLOCK_ALERT, "exp_alerts": expected(clock, clock_labels.clone())},
            ],
        }));
    }

    if only.is_none_or(|a| a == CLOCK_ALERT) {
        tests.insert(CLOCK_ALERT, clock_tests);
    }
    // One test file per alert with only that alert's rule: promtool evaluates every rule of
    // its files at every step, and each alert's tests need only their own.
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    let mut count = 0;
    for (alert, tests) in &tests {
        let own: Vec<&Value> = rules.iter().filter(|r| r["alert"] == *alert).collect();
        std::fs::write(
            dir.path().join(format!("{alert}.rules.yaml")),
            serde_json::to_string(&json!({"groups": [{"name": "p1", "interval": format!("{interval}s"), "rules": own}]})).unwrap(),
        )
        .unwrap();
        let file = format!("{alert}.test.yaml");
        std::fs::write(
            dir.path().join(&file),
            serde_json::to_string(&json!({
                "rule_files": [format!("{alert}.rules.yaml")],
                "evaluation_interval": format!("{interval}s"),
                "tests": tests,
            }))
            .unwrap(),
        )
        .unwrap();
        files.push(file);
        count += tests.len();
    }
    let out = Command::new(tool("promtool"))
        .current_dir(dir.path())
        .args(["test", "rules"])
        .args(&files)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(count)
    } else {
        Err(format!(
            "promtool test rules ({count} cases):\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}
