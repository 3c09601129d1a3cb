//! `homelab version`: this build's version and every version it pins (K3s for new labs, each
//! chart and image); with a valid spec at hand, the K3s release that lab pins too. Reads
//! nothing else and changes nothing.

use homelab_plan::versions;
use serde_json::json;

use crate::cli::Global;
use crate::exit;
use crate::output::Output;

pub fn run(global: &Global, out: &Output) -> anyhow::Result<u8> {
    let tool = env!("CARGO_PKG_VERSION");
    // The lab's own pin is extra information: a missing or invalid spec is not an error here.
    let lab = crate::cmd::shared::spec::read(&global.file)
        .ok()
        .and_then(Result::ok)
        .map(|l| (l.lab.name.clone(), l.lab.cluster.k3s_version.to_string()));
    let pins = versions::all();
    let charts: Vec<_> = pins
        .iter()
        .filter(|p| p.datasource == "helm" || p.dep_name.contains("/charts/"))
        .collect();
    let images: Vec<_> = pins.iter().filter(|p| !charts.contains(p)).collect();
    out.answer(
        || {
            let mut t = format!(
                "homelab {tool}\nK3s {} (pinned by `homelab init`)\n",
                homelab_spec::templates::K3S_VERSION
            );
            if let Some((name, k3s)) = &lab {
                t.push_str(&format!("K3s {k3s} (pinned by lab `{name}` in {})\n", global.file.display()));
            }
            t.push_str("\nCharts:\n");
            let width = charts.iter().map(|p| short(p.dep_name).len()).max().unwrap_or(0).max("traefik (K3s)".len());
            for p in &charts {
                t.push_str(&format!("  {:width$}  {}\n", short(p.dep_name), p.version));
            }
            t.push_str(&format!("  {:width$}  {} (bundled with K3s)\n", "traefik", versions::K3S_TRAEFIK_CHART));
            t.push_str("\nImages:\n");
            for p in &images {
                t.push_str(&format!("  {}\n", p.image()));
            }
            t
        },
        &json!({
            "version": tool,
            "k3s": homelab_spec::templates::K3S_VERSION,
            "lab": lab.as_ref().map(|(name, k3s)| json!({
                "name": name,
                "file": global.file.display().to_string(),
                "k3s": k3s,
            })),
            "charts": charts.iter().map(|p| json!({
                "name": short(p.dep_name),
                "version": p.version,
                "repository": if p.registry_url.is_empty() { format!("oci://{}", p.dep_name) } else { p.registry_url.to_string() },
            })).chain(std::iter::once(json!({
                "name": "traefik",
                "version": versions::K3S_TRAEFIK_CHART,
                "repository": "bundled with K3s",
            }))).collect::<Vec<_>>(),
            "images": images.iter().map(|p| p.image()).collect::<Vec<_>>(),
        }),
    );
    Ok(exit::OK)
}

/// `cert-manager` for `quay.io/jetstack/charts/cert-manager`.
fn short(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}
