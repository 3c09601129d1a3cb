//! `homelab serve`: parses the listen address, auth and refresh flags and hands the plan, its
//! status checks and the kubeconfig to `homelab_dashboard::serve`. Prints where it listens
//! (one line, or one JSON object with `--output json`) and nothing per request. Reads no
//! secrets file and writes nothing.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use homelab_dashboard::{ServeError, ServeOptions};
use homelab_kube::StatusOptions;
use serde_json::json;

use crate::cli::Global;
use crate::cmd::shared::checks::UrlCheckArgs;
use crate::cmd::shared::cluster::{ClusterArgs, connect_error, runtime};
use crate::cmd::shared::format::parse_duration;
use crate::cmd::shared::spec;
use crate::exit::{self, Exit};
use crate::output::Output;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address to listen on. Beyond loopback it needs `--auth-token-file`; port 0 picks
    /// a free port (the address is printed).
    #[arg(long, value_name = "ADDRESS:PORT", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// A file whose first line is the token every request must carry (HTTP Basic with any
    /// user name and the token as password, or `Authorization: Bearer TOKEN`); `/healthz`
    /// needs none.
    #[arg(long, value_name = "FILE")]
    pub auth_token_file: Option<PathBuf>,
    /// The pause between two status passes; pages show the last one.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub refresh: Duration,
    #[command(flatten)]
    pub urls: UrlCheckArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

pub fn run(global: &Global, args: &ServeArgs, out: &Output) -> anyhow::Result<u8> {
    let loaded = spec::load_valid(&global.file, out)?;
    let plan = homelab_plan::plan(&loaded.lab);
    let checks = homelab_ops::cluster_plan::status_checks(&plan);
    let options = ServeOptions {
        listen: args.listen,
        auth_token_file: args.auth_token_file.clone(),
        refresh: args.refresh,
        status: StatusOptions {
            tls: args.urls.tls(&checks)?,
            retry: args.cluster.retry(),
            ..StatusOptions::default()
        },
        etcd_snapshot_schedule: Some(
            loaded
                .lab
                .cluster
                .etcd_snapshots
                .schedule
                .as_str()
                .to_string(),
        ),
    };
    let source = args.cluster.source(&loaded.lab.name);
    let rt = runtime()?;
    let served = rt.block_on(homelab_dashboard::serve(
        &plan,
        checks,
        &source,
        options,
        |s| {
            if out.is_json() {
                out.raw(&json!({"listening": s.url, "auth": s.auth}).to_string());
            } else {
                out.raw(&format!(
                    "Dashboard of lab `{}` at {} (read-only{}); Ctrl-C stops it",
                    loaded.lab.name,
                    s.url,
                    if s.auth { ", token required" } else { "" }
                ));
            }
        },
        std::future::pending(),
    ));
    match served {
        Ok(()) => Ok(exit::OK),
        Err(ServeError::Connect(e)) => Err(connect_error(e, exit::USAGE)),
        Err(e) => {
            let code = if e.is_usage() {
                exit::USAGE
            } else {
                exit::FAILURE
            };
            Err(Exit {
                code,
                help: e.help(),
                message: e.to_string(),
            }
            .into())
        }
    }
}
