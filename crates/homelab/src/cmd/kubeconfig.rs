//! `homelab kubeconfig`: where to write and merge and which API address to use come from
//! `homelab_ops::kubeconfig`, then one call into `homelab-nodes` fetches, rewrites, writes
//! (0600) and merges the admin kubeconfig. Never prints the kubeconfig's credentials.

use std::path::PathBuf;

use clap::Args;
use homelab_ops::inventory::Needs;
use homelab_ops::kubeconfig::{KubeEnv, KubeconfigChoice};
use serde_json::json;

use crate::cli::Global;
use crate::cmd::shared::nodes::{ConnectArgs, Progress, block_on, load_inventory, nodes_error};
use crate::exit;
use crate::output::Output;

#[derive(Debug, Args)]
pub struct KubeconfigArgs {
    /// Also merge the lab's cluster, user and context (named after the lab) into your
    /// kubeconfig: the first file of `$KUBECONFIG`, else `~/.kube/config`. Other contexts
    /// are left as they are; the lab's own entries are replaced.
    #[arg(long)]
    pub merge: bool,
    /// Where to write the lab's kubeconfig (mode 0600) [default: ~/.kube/<lab>.yaml].
    #[arg(long, value_name = "PATH")]
    pub output_file: Option<PathBuf>,
    /// The API address clients use: `lan` (the first server's address), `tailscale` (the
    /// spec's network.remoteAccess.tailscale name) or a host name or IP the server
    /// certificate covers [default: the spec's network.remoteAccess.kubeconfigAddress].
    #[arg(long, value_name = "lan|tailscale|ADDRESS")]
    pub server: Option<String>,
    /// With --merge: make the lab's context the current one (it becomes current anyway when
    /// the file has none).
    #[arg(long, requires = "merge")]
    pub use_context: bool,
    #[command(flatten)]
    pub conn: ConnectArgs,
}

pub fn run(global: &Global, args: &KubeconfigArgs, out: &Output) -> anyhow::Result<u8> {
    let (loaded, plan, lab) = load_inventory(global, &args.conn, None, Needs::SudoOnly, out)?;
    let inv = &lab.inventory;
    let spec = &loaded.lab;
    let choice = KubeconfigChoice {
        merge: args.merge,
        output_file: args.output_file.clone(),
        server: args.server.clone(),
        use_context: args.use_context,
    };
    let targets =
        homelab_ops::kubeconfig::targets(spec, &plan, &choice, &KubeEnv::from_process_env())
            .map_err(|e| exit::usage(e.to_string()))?;
    if let Some(w) = &targets.warning {
        out.warn(w);
    }
    let opts = targets.options;
    let progress = Progress::new(out, inv);
    let done = block_on(homelab_nodes::kubeconfig(inv, &opts, &progress))?.map_err(nodes_error)?;
    let written = done.written.display().to_string();
    let merged = done.merged_into.as_ref().map(|p| p.display().to_string());
    out.result(
        || {
            let mut t = format!(
                "Wrote the admin kubeconfig of lab `{}` (server {}) to {written} (mode 0600).",
                done.context, done.server
            );
            match &merged {
                Some(m) => {
                    t.push_str(&format!(
                        "\n{} context `{}` in {m}; other contexts are unchanged. Current context: {}.",
                        if done.replaced_existing {
                            "Replaced"
                        } else {
                            "Added"
                        },
                        done.context,
                        done.current_context.as_deref().unwrap_or("none")
                    ));
                    t.push_str(&format!(
                        "\nTry: kubectl --context {} get nodes",
                        done.context
                    ));
                }
                None => t.push_str(&format!("\nTry: KUBECONFIG={written} kubectl get nodes")),
            }
            t
        },
        &json!({
            "lab": spec.name,
            "written": written,
            "mergedInto": merged,
            "context": done.context,
            "server": done.server,
            "replacedExisting": done.replaced_existing,
            "currentContext": done.current_context,
        }),
    );
    Ok(exit::OK)
}
