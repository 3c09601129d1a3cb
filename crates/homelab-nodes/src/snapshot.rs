//! `homelab etcd snapshot save|list|prune|restore`: on-demand etcd snapshots through
//! `k3s etcd-snapshot` on the first server, and restore (cluster reset on the first server,
//! then the other servers rejoin) behind a confirmation the caller gives. A restore changes
//! nothing before the caller has confirmed it.

use futures::future::BoxFuture;

use crate::apply::{first_server_index, preflight};
use crate::common::{self, connect_all};
use crate::error::{HostError, HostErrorKind, NodesError};
use crate::event::{Confirm, EventSink, Report};
use crate::history::{self, HistoryEntry};
use crate::inventory::{Inventory, Role};
use crate::phase::{Mode, OnFailure, Phase, Run, Step};
use crate::shell::quote;

/// The default on-demand snapshot name prefix of k3s.
pub const DEFAULT_SNAPSHOT_PREFIX: &str = "on-demand";

/// One etcd snapshot, as `k3s etcd-snapshot list` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Full snapshot name (`<prefix>-<node>-<unix time>`).
    pub name: String,
    /// Where it is stored (`file:///var/lib/rancher/k3s/server/db/snapshots/...` or `s3://...`).
    pub location: String,
    /// Size in bytes.
    pub size_bytes: u64,
    /// Creation time as k3s printed it (RFC 3339).
    pub created: String,
    /// How long ago it was created (`3h`, `2d`), when the time could be read.
    pub age: Option<String>,
}

/// Parses the table `k3s etcd-snapshot list` prints.
pub(crate) fn parse_list(text: &str, now: i64) -> Vec<SnapshotInfo> {
    let mut out: Vec<SnapshotInfo> = text
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (name, location, size, created) = match f.as_slice() {
                [n, l, s, c] => (*n, *l, *s, *c),
                [n, s, c] => (*n, "", *s, *c),
                _ => return None,
            };
            let size_bytes = size.parse().ok()?;
            Some(SnapshotInfo {
                name: name.to_string(),
                location: location.to_string(),
                size_bytes,
                created: created.to_string(),
                age: crate::time::parse_rfc3339(created).map(|t| crate::time::age(now, t)),
            })
        })
        .collect();
    out.sort_by(|a, b| {
        let ta = crate::time::parse_rfc3339(&a.created);
        let tb = crate::time::parse_rfc3339(&b.created);
        ta.cmp(&tb).then_with(|| a.name.cmp(&b.name))
    });
    out
}

/// The name in `Snapshot <name> saved.` from k3s's output.
fn saved_name(output: &str) -> Option<String> {
    output.lines().find_map(|l| {
        let rest = &l[l.find("Snapshot ")? + "Snapshot ".len()..];
        let (name, tail) = rest.split_once(' ')?;
        tail.starts_with("saved")
            .then(|| name.trim_matches('"').to_string())
    })
}

fn check_name(kind: &str, name: &str) -> Result<(), NodesError> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    if ok {
        Ok(())
    } else {
        Err(NodesError::Refused {
            operation: format!("use snapshot {kind} {name:?}"),
            reason: "snapshot names may contain only letters, digits, '-', '.' and '_' (at most 100 characters)".into(),
        })
    }
}

async fn on_first_server<T>(
    inv: &Inventory,
    events: &dyn EventSink,
    work: impl for<'r> FnOnce(&'r Run<'_>, usize) -> BoxFuture<'r, Result<T, NodesError>>,
) -> Result<T, NodesError> {
    preflight(inv)?;
    let control = first_server_index(inv);
    let c = control.expect("validated inventory has a server");
    let mut run = Run::new(inv, events, false, control);
    let result = match connect_all(&run, vec![c]).await {
        Ok(()) => work(&run, c).await,
        Err(e) => Err(e),
    };
    run.close().await;
    result
}

async fn list_on(run: &Run<'_>, c: usize) -> Result<Vec<SnapshotInfo>, HostError> {
    let out = run
        .remote(c)?
        .run(
            "listing etcd snapshots",
            "k3s etcd-snapshot list",
            run.inv.timeouts.command,
        )
        .await?;
    Ok(parse_list(&out, crate::time::now_unix()))
}

/// Takes an on-demand snapshot on the first server; returns its full name.
pub async fn snapshot_save(
    inv: &Inventory,
    name: Option<&str>,
    events: &dyn EventSink,
) -> Result<String, NodesError> {
    let prefix = name.unwrap_or(DEFAULT_SNAPSHOT_PREFIX).to_string();
    check_name("name", &prefix)?;
    on_first_server(inv, events, move |run, c| {
        Box::pin(async move { Ok(save_on(run, c, &prefix).await?) })
    })
    .await
}

pub(crate) async fn save_on(run: &Run<'_>, c: usize, prefix: &str) -> Result<String, HostError> {
    let remote = run.remote(c)?;
    let out = remote
        .exec(
            &format!("k3s etcd-snapshot save --name {}", quote(prefix)),
            crate::ssh::Input::None,
            run.inv.timeouts.install,
        )
        .await?;
    if out.status != 0 {
        return Err(crate::ssh::command_failed(
            &remote.host,
            "taking an etcd snapshot",
            &out,
        ));
    }
    if let Some(n) = saved_name(&out.stderr).or_else(|| saved_name(&out.stdout)) {
        return Ok(n);
    }
    let node = &run.host(c).name;
    list_on(run, c)
        .await?
        .into_iter()
        .rev()
        .find(|s| s.name.starts_with(&format!("{prefix}-{node}")))
        .map(|s| s.name)
        .ok_or_else(|| {
            HostError::new(
                &remote.host,
                HostErrorKind::CommandFailed,
                "k3s reported no snapshot name and none is listed",
            )
        })
}

/// Lists the snapshots k3s knows, oldest first.
pub async fn snapshot_list(
    inv: &Inventory,
    events: &dyn EventSink,
) -> Result<Vec<SnapshotInfo>, NodesError> {
    on_first_server(inv, events, |run, c| {
        Box::pin(async move { Ok(list_on(run, c).await?) })
    })
    .await
}

/// Deletes on-demand snapshots named `<prefix>-...` beyond the newest `retention`; returns
/// the names that were removed.
pub async fn snapshot_prune(
    inv: &Inventory,
    retention: usize,
    prefix: Option<&str>,
    events: &dyn EventSink,
) -> Result<Vec<String>, NodesError> {
    if retention == 0 {
        return Err(NodesError::Refused {
            operation: "prune etcd snapshots".into(),
            reason: "a retention of 0 would delete every snapshot; keep at least 1".into(),
        });
    }
    let prefix = prefix.unwrap_or(DEFAULT_SNAPSHOT_PREFIX).to_string();
    check_name("prefix", &prefix)?;
    on_first_server(inv, events, move |run, c| {
        Box::pin(async move {
            let before = list_on(run, c).await?;
            let script = format!(
                "k3s etcd-snapshot prune --snapshot-retention {retention} --name {}",
                quote(&prefix)
            );
            run.remote(c)?
                .run("pruning etcd snapshots", &script, run.inv.timeouts.install)
                .await?;
            let after: Vec<String> = list_on(run, c).await?.into_iter().map(|s| s.name).collect();
            Ok(before
                .into_iter()
                .map(|s| s.name)
                .filter(|n| !after.contains(n))
                .collect())
        })
    })
    .await
}

const DB_DIR: &str = "/var/lib/rancher/k3s/server/db";

struct StopServers;
impl Phase for StopServers {
    fn title(&self) -> &str {
        "Stop k3s on every server"
    }
    fn hosts(&self, run: &Run<'_>) -> Vec<usize> {
        servers(run.inv)
    }
    fn on_failure(&self, _run: &Run<'_>, _host: usize) -> OnFailure {
        OnFailure::StopRun
    }
    fn run<'r>(&'r self, run: &'r Run<'_>, h: usize) -> BoxFuture<'r, Result<Step, HostError>> {
        Box::pin(async move {
            run.remote(h)?
                .run(
                    "stopping k3s",
                    "systemctl stop k3s",
                    run.inv.timeouts.command,
                )
                .await?;
            Ok(Step::Changed("stopped k3s".into()))
        })
    }
}

struct ResetFirst {
    path: String,
}
impl Phase for ResetFirst {
    fn title(&self) -> &str {
        "Reset the cluster to the snapshot"
    }
    fn hosts(&self, run: &Run<'_>) -> Vec<usize> {
        run.control.into_iter().collect()
    }
    fn run<'r>(&'r self, run: &'r Run<'_>, h: usize) -> BoxFuture<'r, Result<Step, HostError>> {
        Box::pin(async move {
            let remote = run.remote(h)?;
            let script = format!(
                "k3s server --cluster-reset --cluster-reset-restore-path={}",
                quote(&self.path)
            );
            remote
                .run(
                    "resetting etcd from the snapshot",
                    &script,
                    run.inv.timeouts.install,
                )
                .await?;
            remote
                .run(
                    "starting k3s",
                    "systemctl start k3s",
                    run.inv.timeouts.install,
                )
                .await?;
            common::wait_ready(run, self.title(), h, None).await?;
            Ok(Step::Changed(format!(
                "restored etcd from {} and started k3s",
                self.path
            )))
        })
    }
}

struct Rejoin {
    stamp: String,
}
impl Phase for Rejoin {
    fn title(&self) -> &str {
        "Rejoin the other servers"
    }
    fn hosts(&self, run: &Run<'_>) -> Vec<usize> {
        servers(run.inv)
            .into_iter()
            .filter(|&h| Some(h) != run.control)
            .collect()
    }
    fn mode(&self) -> Mode {
        Mode::OneAtATime
    }
    fn on_failure(&self, _run: &Run<'_>, _host: usize) -> OnFailure {
        OnFailure::StopRun
    }
    fn run<'r>(&'r self, run: &'r Run<'_>, h: usize) -> BoxFuture<'r, Result<Step, HostError>> {
        Box::pin(async move {
            let remote = run.remote(h)?;
            let aside = format!("{DB_DIR}.homelab-before-restore-{}", self.stamp);
            let script = format!(
                "if [ -d {DB_DIR} ]; then mv {DB_DIR} {}; fi; systemctl start k3s",
                quote(&aside)
            );
            remote
                .run(
                    "moving old etcd data aside and starting k3s",
                    &script,
                    run.inv.timeouts.install,
                )
                .await?;
            common::wait_ready(run, self.title(), h, None).await?;
            Ok(Step::Changed(format!(
                "moved its old etcd data to {aside} and rejoined"
            )))
        })
    }
}

fn servers(inv: &Inventory) -> Vec<usize> {
    (0..inv.hosts.len())
        .filter(|&h| inv.hosts[h].role == Role::Server)
        .collect()
}

/// Restores snapshot `name` (a full name from [`snapshot_list`]): stops k3s on every
/// server, resets the cluster from the snapshot on the first server, then moves the other
/// servers' etcd data aside and lets them rejoin one at a time. Asks `confirm` once, after
/// the snapshot was found and before anything is changed.
pub async fn snapshot_restore(
    inv: &Inventory,
    name: &str,
    confirm: &dyn Confirm,
    events: &dyn EventSink,
) -> Result<Report, NodesError> {
    preflight(inv)?;
    check_name("name", name)?;
    let control = first_server_index(inv);
    let c = control.expect("validated inventory has a server");
    let mut run = Run::new(inv, events, false, control);
    let prepared = async {
        connect_all(&run, servers(inv)).await?;
        let snapshots = list_on(&run, c).await?;
        let refuse = |reason: String| NodesError::Refused { operation: format!("restore snapshot {name}"), reason };
        let snap = snapshots.iter().find(|s| s.name == name).ok_or_else(|| {
            let known: Vec<&str> = snapshots.iter().map(|s| s.name.as_str()).collect();
            refuse(format!("there is no snapshot named {name}; known snapshots: {}", if known.is_empty() { "none".into() } else { known.join(", ") }))
        })?;
        let path = snap.location.strip_prefix("file://").map(str::to_string).ok_or_else(|| {
            refuse(format!("it is stored at {}; only snapshots on the first server's disk can be restored here", snap.location))
        })?;
        let present = run.remote(c)?.exec(&format!("test -f {}", quote(&path)), crate::ssh::Input::None, inv.timeouts.command).await?;
        if present.status != 0 {
            return Err(refuse(format!(
                "{path} is not on the first server {} (snapshots are kept on the server that took them); copy it there first",
                inv.hosts[c].name
            )));
        }
        let question = format!(
            "Restore etcd snapshot {name} (taken {}) on lab {}? k3s stops on every server ({}), the first server resets the cluster to the snapshot and the other servers rejoin. Everything changed in the cluster since the snapshot is lost.",
            snap.created,
            inv.lab_name,
            servers(inv).iter().map(|&h| inv.hosts[h].name.as_str()).collect::<Vec<_>>().join(", ")
        );
        if !confirm.confirm(&question) {
            return Err(NodesError::Cancelled { operation: format!("restore of snapshot {name}") });
        }
        Ok(path)
    }
    .await;
    let path = match prepared {
        Ok(p) => p,
        Err(e) => {
            run.close().await;
            return Err(e);
        }
    };
    let stamp = crate::time::now_unix().to_string();
    run.execute(&[&StopServers, &ResetFirst { path }, &Rejoin { stamp }])
        .await;
    let report = run.report();
    if let Ok(remote) = run.control_remote() {
        let entry = HistoryEntry::now(
            "restore",
            &inv.hosts[c].name,
            "server",
            None,
            None,
            report.is_success(),
            Some(format!("snapshot {name}")),
        );
        if let Err(e) = history::append(remote, &[entry], inv.timeouts.command).await {
            run.warn(
                "Restore",
                c,
                format!("the restore was not recorded in the history: {}", e.message),
            );
        }
    }
    let report = run.report();
    run.close().await;
    crate::apply::finish("etcd snapshot restore", report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_list_table() {
        let text = "Name                            Location                                                                  Size    Created\n\
on-demand-s1-1795000000 file:///var/lib/rancher/k3s/server/db/snapshots/on-demand-s1-1795000000 5242912 2026-11-18T11:06:40Z\n\
etcd-snapshot-s1-1794990000 file:///var/lib/rancher/k3s/server/db/snapshots/etcd-snapshot-s1-1794990000 5242880 2026-11-18T06:00:00Z\n";
        let list = parse_list(text, 1_795_000_000 + 7200);
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].name, "etcd-snapshot-s1-1794990000");
        assert_eq!(list[1].size_bytes, 5_242_912);
        assert_eq!(list[1].age.as_deref(), Some("2h"));
        assert!(list[1].location.starts_with("file:///"));
    }

    #[test]
    fn finds_the_saved_name() {
        assert_eq!(
            saved_name("time=\"...\" level=info msg=\"Snapshot on-demand-s1-1795000000 saved.\"")
                .as_deref(),
            Some("on-demand-s1-1795000000")
        );
        assert_eq!(
            saved_name("INFO[0000] Snapshot x-s1-1 saved.").as_deref(),
            Some("x-s1-1")
        );
        assert_eq!(saved_name("nothing here"), None);
    }

    #[test]
    fn snapshot_names_are_checked() {
        assert!(check_name("name", "pre-upgrade_v1.31.2").is_ok());
        for bad in ["", "a b", "x;rm -rf /", &"x".repeat(101)] {
            assert!(check_name("name", bad).is_err(), "{bad}");
        }
    }
}
