//! `homelab etcd snapshot save|list|prune|restore`: one call into `homelab-nodes` each, run on
//! the first server; prints what was saved, listed, pruned or restored. It never talks to a
//! host itself, and never restores without a confirmation (`--yes` or an answer on a terminal).

use clap::{Args, Subcommand};
use homelab_nodes::{DEFAULT_SNAPSHOT_PREFIX, SnapshotInfo};
use serde_json::json;

use homelab_ops::inventory::Needs;

use crate::cli::Global;
use crate::cmd::shared::format::table;
use crate::cmd::shared::nodes::{
    Confirmation, ConnectArgs, Progress, block_on, conclude, load_inventory, nodes_error,
};
use crate::exit;
use crate::output::{Output, human_size};

#[derive(Debug, Args)]
pub struct EtcdArgs {
    #[command(subcommand)]
    pub command: EtcdCommand,
}

#[derive(Debug, Subcommand)]
pub enum EtcdCommand {
    /// On-demand etcd snapshots of the cluster state, on the first server.
    ///
    /// Scheduled snapshots are taken by k3s itself (`cluster.etcdSnapshots` in the spec);
    /// these commands add named ones, list both with sizes and ages, prune, and restore.
    Snapshot(SnapshotArgs),
}

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    #[command(subcommand)]
    pub command: SnapshotCommand,
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Take a snapshot now (e.g. before a risky change) and print its full name.
    Save {
        /// Name prefix; k3s appends the node name and the time [default: on-demand].
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        #[command(flatten)]
        conn: ConnectArgs,
    },
    /// List the snapshots k3s knows, oldest first, with size and age.
    List {
        #[command(flatten)]
        conn: ConnectArgs,
    },
    /// Delete on-demand snapshots beyond the newest N.
    Prune {
        /// How many to keep [default: the spec's cluster.etcdSnapshots.retention].
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        keep: Option<u32>,
        /// Prune the snapshots saved with this name prefix [default: on-demand].
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        #[command(flatten)]
        conn: ConnectArgs,
    },
    /// Reset the cluster to a snapshot: the first server restores it, the other servers rejoin.
    ///
    /// Everything changed in the cluster since the snapshot is lost. On a terminal you are
    /// asked to confirm; without one it refuses unless `--yes`.
    Restore {
        /// The snapshot's full name, as `homelab etcd snapshot list` shows it.
        name: String,
        /// Do not ask; needed when there is no terminal to ask on.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        conn: ConnectArgs,
    },
}

pub fn run(global: &Global, args: &EtcdArgs, out: &Output) -> anyhow::Result<u8> {
    let EtcdCommand::Snapshot(snapshot) = &args.command;
    match &snapshot.command {
        SnapshotCommand::Save { name, conn } => save(global, name.as_deref(), conn, out),
        SnapshotCommand::List { conn } => list(global, conn, out),
        SnapshotCommand::Prune { keep, name, conn } => {
            prune(global, *keep, name.as_deref(), conn, out)
        }
        SnapshotCommand::Restore { name, yes, conn } => restore(global, name, *yes, conn, out),
    }
}

fn first_server(inv: &homelab_nodes::Inventory) -> String {
    inv.first_server()
        .map(|h| h.name.clone())
        .unwrap_or_default()
}

fn save(
    global: &Global,
    name: Option<&str>,
    conn: &ConnectArgs,
    out: &Output,
) -> anyhow::Result<u8> {
    let (_, _, lab) = load_inventory(global, conn, None, Needs::SudoOnly, out)?;
    let inv = &lab.inventory;
    let server = first_server(inv);
    let progress = Progress::new(out, inv);
    let saved =
        block_on(homelab_nodes::snapshot_save(inv, name, &progress))?.map_err(nodes_error)?;
    out.result(
        || format!("Saved etcd snapshot {saved} on {server}."),
        &json!({ "lab": inv.lab_name, "server": server, "snapshot": saved }),
    );
    Ok(exit::OK)
}

fn snapshot_json(s: &SnapshotInfo) -> serde_json::Value {
    json!({
        "name": s.name,
        "location": s.location,
        "sizeBytes": s.size_bytes,
        "created": s.created,
        "age": s.age,
    })
}

fn list(global: &Global, conn: &ConnectArgs, out: &Output) -> anyhow::Result<u8> {
    let (_, _, lab) = load_inventory(global, conn, None, Needs::SudoOnly, out)?;
    let inv = &lab.inventory;
    let progress = Progress::new(out, inv);
    let snapshots = block_on(homelab_nodes::snapshot_list(inv, &progress))?.map_err(nodes_error)?;
    out.result(
        || {
            if snapshots.is_empty() {
                return "No etcd snapshots yet; take one with `homelab etcd snapshot save`."
                    .to_string();
            }
            let mut rows = vec![
                ["NAME", "SIZE", "AGE", "CREATED", "LOCATION"]
                    .map(String::from)
                    .to_vec(),
            ];
            for s in &snapshots {
                rows.push(vec![
                    s.name.clone(),
                    human_size(s.size_bytes),
                    s.age.clone().unwrap_or_else(|| "?".into()),
                    s.created.clone(),
                    s.location.clone(),
                ]);
            }
            table(&rows)
        },
        &json!({
            "lab": inv.lab_name,
            "snapshots": snapshots.iter().map(snapshot_json).collect::<Vec<_>>(),
        }),
    );
    Ok(exit::OK)
}

fn prune(
    global: &Global,
    keep: Option<u32>,
    name: Option<&str>,
    conn: &ConnectArgs,
    out: &Output,
) -> anyhow::Result<u8> {
    let (loaded, _, lab) = load_inventory(global, conn, None, Needs::SudoOnly, out)?;
    let inv = &lab.inventory;
    let keep = keep.unwrap_or(loaded.lab.cluster.etcd_snapshots.retention) as usize;
    let prefix = name.unwrap_or(DEFAULT_SNAPSHOT_PREFIX);
    let progress = Progress::new(out, inv);
    let removed = block_on(homelab_nodes::snapshot_prune(
        inv,
        keep,
        Some(prefix),
        &progress,
    ))?
    .map_err(nodes_error)?;
    out.result(
        || {
            if removed.is_empty() {
                format!("Nothing to prune: at most {keep} snapshot(s) named {prefix}-... exist.")
            } else {
                let mut t = format!(
                    "Removed {} snapshot(s), kept the newest {keep} named {prefix}-...:",
                    removed.len()
                );
                for r in &removed {
                    t.push_str(&format!("\n  - {r}"));
                }
                t
            }
        },
        &json!({ "lab": inv.lab_name, "keep": keep, "prefix": prefix, "removed": removed }),
    );
    Ok(exit::OK)
}

fn restore(
    global: &Global,
    name: &str,
    yes: bool,
    conn: &ConnectArgs,
    out: &Output,
) -> anyhow::Result<u8> {
    let (_, _, lab) = load_inventory(global, conn, None, Needs::SudoOnly, out)?;
    let inv = &lab.inventory;
    let confirm = Confirmation::new(yes);
    let progress = Progress::new(out, inv);
    let result = match block_on(homelab_nodes::snapshot_restore(
        inv, name, &confirm, &progress,
    ))? {
        Ok(r) => Ok(r),
        Err(e) => Err(confirm.explain(e, &format!("restore snapshot {name}"))?),
    };
    conclude(
        out,
        "etcd snapshot restore",
        result,
        &lab.warnings,
        false,
        |_| {
            format!(
                "Restored the cluster to snapshot {name}. Check it with `kubectl get nodes`; run `homelab nodes apply` if an agent does not come back."
            )
        },
    )
}
