//! `homelab kubeconfig`: works out where to write and merge and which API address to use, then
//! one call into `homelab-nodes` fetches, rewrites, writes (0600) and merges the admin
//! kubeconfig. Never prints the kubeconfig's credentials.

use std::path::{Path, PathBuf};

use clap::Args;
use homelab_nodes::KubeconfigOptions;
use homelab_spec::lab::KubeconfigAddress;
use serde_json::json;

use homelab_ops::inventory::{Needs, api_certificate_names};

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

/// The user's kubeconfig as kubectl finds it: the first entry of `$KUBECONFIG`, else
/// `~/.kube/config`.
fn default_kubeconfig(kubeconfig_env: Option<&str>, home: Option<&Path>) -> Option<PathBuf> {
    if let Some(first) =
        kubeconfig_env.and_then(|v| std::env::split_paths(v).find(|p| !p.as_os_str().is_empty()))
    {
        return Some(first);
    }
    home.map(|h| h.join(".kube/config"))
}

pub fn run(global: &Global, args: &KubeconfigArgs, out: &Output) -> anyhow::Result<u8> {
    let (loaded, plan, lab) = load_inventory(global, &args.conn, None, Needs::SudoOnly, out)?;
    let inv = &lab.inventory;
    let spec = &loaded.lab;
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from);
    let write_to = match (&args.output_file, &home) {
        (Some(p), _) => p.clone(),
        (None, Some(h)) => h.join(".kube").join(format!("{}.yaml", spec.name)),
        (None, None) => {
            return Err(exit::usage(
                "HOME is not set, so there is no ~/.kube; pass --output-file PATH",
            ));
        }
    };
    let merge_into = if args.merge {
        let env = std::env::var("KUBECONFIG").ok();
        let target = default_kubeconfig(env.as_deref(), home.as_deref()).ok_or_else(|| {
            exit::usage("--merge needs $KUBECONFIG or $HOME to find your kubeconfig")
        })?;
        if target == write_to {
            return Err(exit::usage(format!(
                "--output-file {} is the kubeconfig --merge writes into; drop --output-file to keep the lab's own copy elsewhere, or drop --merge",
                write_to.display()
            )));
        }
        Some(target)
    } else {
        None
    };

    let tailscale = spec.network.remote_access.tailscale.clone();
    let server = match args.server.as_deref() {
        Some("lan") => None,
        Some("tailscale") => Some(tailscale.ok_or_else(|| {
            exit::usage(
                "--server tailscale needs network.remoteAccess.tailscale in the spec (the node's Tailscale name, which the server certificate then covers); use --server lan or an address",
            )
        })?),
        Some(address) => Some(address.to_string()),
        None => match spec.network.remote_access.kubeconfig_address {
            KubeconfigAddress::Tailscale => tailscale,
            KubeconfigAddress::Lan => None,
        },
    };
    let first = spec.cluster.first_server();
    if let Some(address) = &server {
        let names = api_certificate_names(&plan, &first.name);
        if !names.is_empty() && !names.iter().any(|n| n == address) {
            out.warn(format!(
                "{address} is not among the names the API server certificate covers ({}), so kubectl will reject the connection; add it to network.remoteAccess.extraSans and run `homelab nodes apply`",
                names.join(", ")
            ));
        }
    }

    let opts = KubeconfigOptions {
        server,
        write_to,
        merge_into,
        switch_context: args.use_context,
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeconfig_is_found_as_kubectl_finds_it() {
        let home = Path::new("/home/me");
        assert_eq!(
            default_kubeconfig(None, Some(home)),
            Some(PathBuf::from("/home/me/.kube/config"))
        );
        assert_eq!(
            default_kubeconfig(Some(":/a/one:/b/two"), Some(home)),
            Some(PathBuf::from("/a/one"))
        );
        assert_eq!(
            default_kubeconfig(Some(""), Some(home)),
            Some(PathBuf::from("/home/me/.kube/config"))
        );
        assert_eq!(default_kubeconfig(None, None), None);
    }
}
