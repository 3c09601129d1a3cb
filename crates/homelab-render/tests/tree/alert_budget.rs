//! NFR5's minute, computed: for every `critical` (P1) alerting rule, the worst-case time from
//! the breach to the notification, read from the rendered rules, Prometheus's settings and
//! the Alertmanager configuration. Pure: the callers read the files and run the tools.
//!
//! The worst case of one P1 path is the sum of
//! - detection: the breach is first visible in the next scrape (the scrape interval), or
//!   later when the rule confirms its signal over a range (`max_over_time(x[30s])` holds once
//!   the window holds bad samples only: its length); the larger of the two counts,
//! - the rule group's evaluation interval (the condition may turn true just after an
//!   evaluation) plus its query offset,
//! - the rule's `for:`,
//! - Alertmanager's wait on the route the alert takes: `group_wait` when each alert is its
//!   own group (`group_by: ['...']`), else `group_interval` too, since an alert that joins a
//!   group already notified waits for the group's next flush.
//!
//! A clock-based rule (`time() - last_success > …`) needs no fresh sample; counting one for
//! it overstates its path, which is the safe side of a budget.

use std::collections::BTreeMap;

use serde_json::Value;

/// NFR5: a P1 alert reaches the phone within 1 minute of the breach.
pub const BUDGET_SECONDS: u64 = 60;

/// prometheus-operator's defaults when the Prometheus resource leaves them empty.
const OPERATOR_SCRAPE_INTERVAL: &str = "30s";
const OPERATOR_EVALUATION_INTERVAL: &str = "30s";

/// A Prometheus duration (`1h30m`, `15s`, `500ms`) in whole seconds, rounded up; empty is 0.
pub fn seconds(text: &str) -> u64 {
    let text = text.trim();
    if text.is_empty() {
        return 0;
    }
    let mut total_ms: u64 = 0;
    let mut number = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit_ms: u64 = match c {
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                1
            }
            's' => 1_000,
            'm' => 60_000,
            'h' => 3_600_000,
            'd' => 86_400_000,
            'w' => 7 * 86_400_000,
            'y' => 365 * 86_400_000,
            _ => panic!("{text:?} is not a Prometheus duration"),
        };
        let n: u64 = number
            .parse()
            .unwrap_or_else(|_| panic!("{text:?} is not a Prometheus duration"));
        total_ms += n * unit_ms;
        number.clear();
    }
    assert!(number.is_empty(), "{text:?} is not a Prometheus duration");
    total_ms.div_ceil(1000)
}

/// The longest range (`[30s]`, the range of a subquery `[5m:1m]`) in an expression.
pub fn longest_range(expr: &str) -> u64 {
    let re = regex::Regex::new(r"\[\s*([0-9][0-9a-z]*)\s*(?::[^\]]*)?\]").unwrap();
    re.captures_iter(expr)
        .map(|c| seconds(&c[1]))
        .max()
        .unwrap_or(0)
}

/// What Prometheus runs the rules with: the Prometheus resource's (or the chart values')
/// `scrapeInterval`, `evaluationInterval` and `ruleQueryOffset`, and the slowest interval
/// a monitor sets on one of its endpoints (a P1 rule may read any target's `up`).
#[derive(Debug, Clone)]
pub struct PrometheusTiming {
    pub scrape_interval: u64,
    pub evaluation_interval: u64,
    pub query_offset: u64,
    /// Where the figures come from, for messages.
    pub source: String,
}

impl PrometheusTiming {
    /// From a `prometheusSpec` (chart values) or a Prometheus resource's `spec`.
    pub fn from_spec(spec: &Value, source: &str) -> Self {
        let field = |key: &str, default: &str| {
            let v = spec[key].as_str().unwrap_or_default();
            seconds(if v.is_empty() { default } else { v })
        };
        PrometheusTiming {
            scrape_interval: field("scrapeInterval", OPERATOR_SCRAPE_INTERVAL),
            evaluation_interval: field("evaluationInterval", OPERATOR_EVALUATION_INTERVAL),
            query_offset: field("ruleQueryOffset", "0s"),
            source: source.to_string(),
        }
    }

    /// The slowest endpoint interval among these ServiceMonitors and PodMonitors counts as
    /// the scrape interval when it is slower than the global one.
    pub fn with_monitors<'a>(mut self, monitors: impl IntoIterator<Item = &'a Value>) -> Self {
        for m in monitors {
            let endpoints = match m["kind"].as_str() {
                Some("ServiceMonitor") => &m["spec"]["endpoints"],
                Some("PodMonitor") => &m["spec"]["podMetricsEndpoints"],
                _ => continue,
            };
            for e in endpoints.as_array().into_iter().flatten() {
                let interval = seconds(e["interval"].as_str().unwrap_or_default());
                if interval > self.scrape_interval {
                    self.scrape_interval = interval;
                    self.source = format!(
                        "{}, {} {}'s endpoint interval",
                        self.source,
                        m["kind"].as_str().unwrap_or_default(),
                        m["metadata"]["name"].as_str().unwrap_or_default()
                    );
                }
            }
        }
        self
    }
}

/// One P1 path: a critical rule and a receiver it reaches, with each part of its worst case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct P1Path {
    pub alert: String,
    /// Where the rule comes from (PrometheusRule, group).
    pub rule: String,
    pub receiver: String,
    pub detection: u64,
    pub evaluation: u64,
    pub for_: u64,
    pub notification: u64,
}

impl P1Path {
    pub fn total(&self) -> u64 {
        self.detection + self.evaluation + self.for_ + self.notification
    }

    pub fn show(&self) -> String {
        format!(
            "{} ({}) to {}: detection {} s + evaluation {} s + for {} s + Alertmanager {} s = {} s",
            self.alert,
            self.rule,
            self.receiver,
            self.detection,
            self.evaluation,
            self.for_,
            self.notification,
            self.total()
        )
    }
}

/// A PrometheusRule's groups with the name to report them by.
pub struct RuleSource<'a> {
    pub name: String,
    pub groups: &'a Value,
}

/// The critical rules of these sources: (source and group, group, rule).
pub fn critical_rules<'a>(sources: &'a [RuleSource<'a>]) -> Vec<(String, &'a Value, &'a Value)> {
    let mut out = Vec::new();
    for s in sources {
        for g in s.groups.as_array().into_iter().flatten() {
            for r in g["rules"].as_array().into_iter().flatten() {
                if r.get("alert").is_some() && r["labels"]["severity"] == "critical" {
                    out.push((
                        format!(
                            "{}, group {}",
                            s.name,
                            g["name"].as_str().unwrap_or_default()
                        ),
                        g,
                        r,
                    ));
                }
            }
        }
    }
    out
}

/// Every P1 path: each critical rule with each receiver other than `null` that it reaches.
/// A critical rule that reaches no receiver has no path (a lab without a P1 receiver).
pub fn p1_paths(
    sources: &[RuleSource],
    prometheus: &PrometheusTiming,
    alertmanager: &Value,
) -> Vec<P1Path> {
    let mut out = Vec::new();
    for (origin, group, rule) in critical_rules(sources) {
        let alert = rule["alert"].as_str().unwrap_or_default().to_string();
        let evaluation = group["interval"]
            .as_str()
            .map(seconds)
            .unwrap_or(prometheus.evaluation_interval)
            + group["query_offset"]
                .as_str()
                .map(seconds)
                .unwrap_or(prometheus.query_offset);
        let detection = prometheus
            .scrape_interval
            .max(longest_range(rule["expr"].as_str().unwrap_or_default()));
        let for_ = seconds(rule["for"].as_str().unwrap_or_default());
        let mut labels: BTreeMap<String, String> = rule["labels"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        labels.insert("alertname".into(), alert.clone());
        for r in routes_for(alertmanager, &labels) {
            if r.receiver == "null" {
                continue;
            }
            out.push(P1Path {
                alert: alert.clone(),
                rule: origin.clone(),
                receiver: r.receiver,
                detection,
                evaluation,
                for_,
                notification: r.wait,
            });
        }
    }
    out
}

/// The paths over the budget, each as a line that says what to lower.
pub fn over_budget(paths: &[P1Path], prometheus: &PrometheusTiming) -> Vec<String> {
    paths
        .iter()
        .filter(|p| p.total() > BUDGET_SECONDS)
        .map(|p| {
            format!(
                "P1 {} exceeds NFR5's {BUDGET_SECONDS} s (scrape interval {} s from {})",
                p.show(),
                prometheus.scrape_interval,
                prometheus.source
            )
        })
        .collect()
}

/// A receiver an alert reaches and how long Alertmanager holds it there at worst.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub receiver: String,
    pub wait: u64,
}

/// Group settings a route inherits from its parent.
#[derive(Clone)]
struct Inherited {
    receiver: String,
    group_by: Vec<String>,
    group_wait: u64,
    group_interval: u64,
}

/// The receivers an alert with these labels reaches, as Alertmanager routes it: depth first,
/// the first matching child unless it says `continue: true`, the node itself when no child
/// matches; group settings inherited from the parent. Defaults as Alertmanager's: group_wait
/// 30 s, group_interval 5 m.
pub fn routes_for(config: &Value, labels: &BTreeMap<String, String>) -> Vec<Delivery> {
    let root = &config["route"];
    let base = Inherited {
        receiver: String::new(),
        group_by: Vec::new(),
        group_wait: 30,
        group_interval: 300,
    };
    let mut out = Vec::new();
    walk(root, &inherit(root, &base), labels, &mut out);
    out
}

fn inherit(route: &Value, parent: &Inherited) -> Inherited {
    Inherited {
        receiver: route["receiver"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| parent.receiver.clone()),
        group_by: route["group_by"]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_else(|| parent.group_by.clone()),
        group_wait: route["group_wait"]
            .as_str()
            .map(seconds)
            .unwrap_or(parent.group_wait),
        group_interval: route["group_interval"]
            .as_str()
            .map(seconds)
            .unwrap_or(parent.group_interval),
    }
}

/// Delivers at the deepest matching routes below (and including) `route`.
fn walk(
    route: &Value,
    settings: &Inherited,
    labels: &BTreeMap<String, String>,
    out: &mut Vec<Delivery>,
) {
    let mut matched_child = false;
    for child in route["routes"].as_array().into_iter().flatten() {
        if !route_matches(child, labels) {
            continue;
        }
        matched_child = true;
        walk(child, &inherit(child, settings), labels, out);
        if child["continue"] != Value::Bool(true) {
            break;
        }
    }
    if !matched_child {
        let wait = if settings.group_by.iter().any(|g| g == "...") {
            settings.group_wait
        } else {
            settings.group_wait.max(settings.group_interval)
        };
        out.push(Delivery {
            receiver: settings.receiver.clone(),
            wait,
        });
    }
}

fn route_matches(route: &Value, labels: &BTreeMap<String, String>) -> bool {
    let value = |name: &str| labels.get(name).map(String::as_str).unwrap_or("");
    let anchored = |re: &str| regex::Regex::new(&format!("^(?:{re})$")).unwrap();
    for m in route["matchers"].as_array().into_iter().flatten() {
        let text = m.as_str().unwrap_or_default();
        let (name, op, want) = parse_matcher(text);
        let got = value(&name);
        let ok = match op {
            "=" => got == want,
            "!=" => got != want,
            "=~" => anchored(&want).is_match(got),
            "!~" => !anchored(&want).is_match(got),
            _ => unreachable!(),
        };
        if !ok {
            return false;
        }
    }
    for (name, want) in route["match"].as_object().into_iter().flatten() {
        if value(name) != want.as_str().unwrap_or_default() {
            return false;
        }
    }
    for (name, want) in route["match_re"].as_object().into_iter().flatten() {
        if !anchored(want.as_str().unwrap_or_default()).is_match(value(name)) {
            return false;
        }
    }
    true
}

/// `name="value"`, `name=~"re"`, `name!="value"`, `name!~"re"` (value quoted or bare).
fn parse_matcher(text: &str) -> (String, &'static str, String) {
    let re =
        regex::Regex::new(r#"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$"#).unwrap();
    let c = re
        .captures(text)
        .unwrap_or_else(|| panic!("cannot read the Alertmanager matcher {text:?}"));
    let op = match &c[2] {
        "=" => "=",
        "!=" => "!=",
        "=~" => "=~",
        _ => "!~",
    };
    let raw = &c[3];
    let value = match raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(quoted) => serde_json::from_str::<String>(&format!("\"{quoted}\""))
            .unwrap_or_else(|_| quoted.to_string()),
        None => raw.to_string(),
    };
    (c[1].to_string(), op, value)
}
