//! Benchmark driver for the apply part of scripts/bench-status: writes the seed-sized plan and
//! times applies of it (`status` itself is timed through the CLI on the seed lab, see
//! `bench_seed_lab_status_through_the_cli` in crates/homelab/tests/cluster.rs).
//!
//! cluster_bench write DIR                      plan.json
//! cluster_bench apply KUBECONFIG PLAN RUNS     times RUNS applies (the first may create)

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use homelab_kube::{ApplyOptions, ApplyPlan, Cluster, KubeconfigSource};

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

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("write") => {
            let dir = PathBuf::from(&args[1]);
            let (plan, _) = support::seed_sized_lab();
            std::fs::write(dir.join("plan.json"), plan.to_string()).unwrap();
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
        _ => {
            eprintln!("usage: see the module documentation of examples/cluster_bench.rs");
            std::process::exit(2);
        }
    }
}
