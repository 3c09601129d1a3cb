//! Benchmark driver for scripts/bench-status: writes the seed-sized plan and checks, applies,
//! times `status` and no-op re-applies, and writes the equivalent sequential kubectl script.
//!
//! cluster_bench write DIR                      plan.json, checks.json, kubectl-checks.sh
//! cluster_bench apply KUBECONFIG PLAN RUNS     times RUNS applies (the first may create)
//! cluster_bench status KUBECONFIG CHECKS RUNS  times RUNS status passes
//! cluster_bench backups KUBECONFIG CHECKS      marks every backup CronJob as just succeeded

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use homelab_kube::{
    ApplyOptions, ApplyPlan, Cluster, Health, KubeconfigSource, StatusChecks, StatusOptions,
};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::ApiResource;
use serde_json::json;

fn summary(name: &str, times: &[Duration]) {
    let mut ms: Vec<f64> = times.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let median = ms[ms.len() / 2];
    println!(
        "{name}: runs={} median_ms={median:.1} min_ms={:.1} max_ms={:.1}",
        ms.len(),
        ms[0],
        ms[ms.len() - 1]
    );
}

/// Requests the stand-in has served so far (its admin API); `None` on a real cluster.
async fn served(cluster: &Cluster) -> Option<u64> {
    let req = http::Request::get("/_standin/requests").body(vec![]).ok()?;
    let v: serde_json::Value = cluster.client().request(req).await.ok()?;
    v["count"].as_u64()
}

async fn connect(kubeconfig: &str) -> Cluster {
    Cluster::connect(&KubeconfigSource {
        explicit: Some(PathBuf::from(kubeconfig)),
        ..Default::default()
    })
    .await
    .expect("connect")
}

fn kubectl_script(checks: &StatusChecks) -> String {
    let mut s = String::from(
        "#!/usr/bin/env bash\n# The checks of `homelab status`, one sequential kubectl call each.\nset -u\nk() { kubectl --kubeconfig \"$KUBECONFIG_FILE\" \"$@\"; }\nk get --raw /version >/dev/null\nk get nodes -o json >/dev/null\n",
    );
    for c in &checks.components {
        for h in &c.helm_charts {
            s += &format!(
                "job=$(k -n {0} get helmcharts.helm.cattle.io {1} -o jsonpath='{{.status.jobName}}')\nk -n {0} get jobs.batch \"$job\" -o jsonpath='{{.status.succeeded}}' >/dev/null\n",
                h.namespace, h.name
            );
        }
        for w in &c.workloads {
            s += &format!(
                "k -n {} get {}.apps {} -o jsonpath='{{.status}}' >/dev/null\n",
                c.namespace,
                w.kind.to_string().to_lowercase() + "s",
                w.name
            );
        }
        for p in &c.pvcs {
            s += &format!(
                "k -n {} get persistentvolumeclaims {} -o jsonpath='{{.status.phase}}' >/dev/null\n",
                c.namespace, p
            );
        }
        for l in &c.load_balancers {
            s += &format!(
                "k -n {} get services {} -o jsonpath='{{.status.loadBalancer.ingress}}' >/dev/null\n",
                c.namespace, l
            );
        }
        for cert in &c.certificates {
            s += &format!(
                "k -n {} get certificates.cert-manager.io {} -o jsonpath='{{.status}}' >/dev/null\n",
                c.namespace, cert
            );
        }
    }
    for b in &checks.backups {
        s += &format!(
            "k -n {} get cronjobs.batch {} -o jsonpath='{{.status.lastSuccessfulTime}}' >/dev/null\n",
            b.namespace, b.cronjob
        );
    }
    s
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("write") => {
            let dir = PathBuf::from(&args[1]);
            let (plan, checks) = support::seed_sized_lab();
            let mut checks: StatusChecks = serde_json::from_value(checks).unwrap();
            // URL checks need DNS for the lab's names; kubectl cannot do them either.
            checks.urls.clear();
            std::fs::write(dir.join("plan.json"), plan.to_string()).unwrap();
            std::fs::write(
                dir.join("checks.json"),
                serde_json::to_string(&checks).unwrap(),
            )
            .unwrap();
            std::fs::write(dir.join("kubectl-checks.sh"), kubectl_script(&checks)).unwrap();
            let objects: usize = serde_json::from_value::<ApplyPlan>(plan)
                .unwrap()
                .units
                .iter()
                .map(|u| u.objects.len())
                .sum();
            println!("plan: {objects} objects");
        }
        Some("apply") => {
            let cluster = connect(&args[1]).await;
            let plan: ApplyPlan =
                serde_json::from_slice(&std::fs::read(&args[2]).unwrap()).unwrap();
            let runs: usize = args[3].parse().unwrap();
            let options = ApplyOptions {
                poll_interval: Duration::from_millis(50),
                ..ApplyOptions::default()
            };
            let mut times = Vec::new();
            let before = served(&cluster).await;
            let trace = std::env::var_os("BENCH_TRACE").is_some();
            for i in 0..runs {
                let start = Instant::now();
                let progress = |e: homelab_kube::ApplyEvent| {
                    if trace {
                        eprintln!("{:>6} ms {e:?}", start.elapsed().as_millis());
                    }
                };
                let report = cluster
                    .apply(&plan, &options, &progress)
                    .await
                    .expect("apply");
                times.push(start.elapsed());
                if i > 0 {
                    assert!(!report.changed(), "a re-apply changed something");
                }
            }
            summary("apply", &times);
            if let (Some(a), Some(b)) = (before, served(&cluster).await) {
                println!("  API requests per run: {}", (b - a) / runs as u64);
            }
        }
        Some("status") => {
            let cluster = connect(&args[1]).await;
            let checks: StatusChecks =
                serde_json::from_slice(&std::fs::read(&args[2]).unwrap()).unwrap();
            let runs: usize = args[3].parse().unwrap();
            let mut times = Vec::new();
            let before = served(&cluster).await;
            for _ in 0..runs {
                let start = Instant::now();
                let report = cluster.status(&checks, &StatusOptions::default()).await;
                times.push(start.elapsed());
                assert_eq!(report.health, Health::Healthy, "{:#?}", report.problems);
            }
            summary("status", &times);
            if let (Some(a), Some(b)) = (before, served(&cluster).await) {
                println!("  API requests per run: {}", (b - a) / runs as u64);
            }
        }
        Some("backups") => {
            let cluster = connect(&args[1]).await;
            let checks: StatusChecks =
                serde_json::from_slice(&std::fs::read(&args[2]).unwrap()).unwrap();
            let cronjobs = ApiResource {
                group: "batch".into(),
                version: "v1".into(),
                api_version: "batch/v1".into(),
                kind: "CronJob".into(),
                plural: "cronjobs".into(),
            };
            let now = k8s_openapi::jiff::Timestamp::now()
                .strftime("%Y-%m-%dT%H:%M:%SZ")
                .to_string();
            for b in &checks.backups {
                let api: Api<DynamicObject> =
                    Api::namespaced_with(cluster.client().clone(), &b.namespace, &cronjobs);
                api.patch_status(
                    &b.cronjob,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"status": {"lastSuccessfulTime": now}})),
                )
                .await
                .expect("mark backup");
            }
        }
        _ => {
            eprintln!("usage: see the module documentation of examples/cluster_bench.rs");
            std::process::exit(2);
        }
    }
}
