//! The lab's history of k3s version changes (installs, upgrades, restores): JSON lines in a
//! file on the first server, appended by operations and read by `homelab nodes history`.
//! Append only: past entries are never rewritten.

use serde::{Deserialize, Serialize};

use crate::common::connect_all;
use crate::error::{HostError, HostErrorKind, NodesError};
use crate::event::EventSink;
use crate::inventory::Inventory;
use crate::phase::Run;
use crate::ssh::{Input, Remote};

/// Where the history lives on the first server.
pub const HISTORY_PATH: &str = "/var/lib/rancher/k3s/homelab-history.jsonl";

/// One recorded change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// When it finished (RFC 3339, UTC, this machine's clock).
    pub time: String,
    /// `install`, `upgrade`, `restore`, `remove` or `reset`.
    pub action: String,
    /// The node concerned.
    pub node: String,
    /// The node's role (`server` or `agent`).
    pub role: String,
    /// The k3s version before, if there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The k3s version after, if there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// `ok` or `failed`.
    pub result: String,
    /// More about it: the snapshot taken first, or what failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl HistoryEntry {
    pub(crate) fn now(
        action: &str,
        node: &str,
        role: &str,
        from: Option<String>,
        to: Option<String>,
        ok: bool,
        detail: Option<String>,
    ) -> Self {
        HistoryEntry {
            time: crate::time::format_rfc3339(crate::time::now_unix()),
            action: action.into(),
            node: node.into(),
            role: role.into(),
            from,
            to,
            result: if ok { "ok" } else { "failed" }.into(),
            detail,
        }
    }
}

/// Appends entries to the history on `remote`.
pub(crate) async fn append(
    remote: &Remote,
    entries: &[HistoryEntry],
    limit: std::time::Duration,
) -> Result<(), HostError> {
    if entries.is_empty() {
        return Ok(());
    }
    let mut lines = String::new();
    for e in entries {
        lines.push_str(&serde_json::to_string(e).expect("history entries serialise"));
        lines.push('\n');
    }
    let script = format!(
        "set -e; umask 077; mkdir -p \"$(dirname {p})\"; cat >> {p}",
        p = HISTORY_PATH
    );
    remote
        .run_with_input(
            "recording the history",
            &script,
            Input::Bytes(lines.as_bytes()),
            limit,
        )
        .await
        .map(|_| ())
}

/// Parses the history file; a damaged line is an error naming its number.
pub(crate) fn parse(text: &str) -> Result<Vec<HistoryEntry>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| format!("line {} of {HISTORY_PATH} is damaged: {e}", i + 1))
        })
        .collect()
}

/// Reads the history from the first server, oldest first.
pub async fn history(
    inv: &Inventory,
    events: &dyn EventSink,
) -> Result<Vec<HistoryEntry>, NodesError> {
    crate::apply::preflight(inv)?;
    let control = crate::apply::first_server_index(inv);
    let c = control.expect("validated inventory has a server");
    let mut run = Run::new(inv, events, false, control);
    let result = async {
        connect_all(&run, vec![c]).await?;
        let remote = run.remote(c)?;
        match remote.read_file(HISTORY_PATH, inv.timeouts.command).await? {
            Some(text) => parse(&text)
                .map_err(|e| HostError::new(&remote.host, HostErrorKind::CommandFailed, e).into()),
            None => Ok(Vec::new()),
        }
    }
    .await;
    run.close().await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_as_json_lines() {
        let e = HistoryEntry::now(
            "upgrade",
            "s1",
            "server",
            Some("v1.30.1+k3s1".into()),
            Some("v1.31.2+k3s1".into()),
            true,
            None,
        );
        let line = serde_json::to_string(&e).unwrap();
        assert!(!line.contains("detail"));
        let parsed = parse(&format!("{line}\n\n{line}\n")).unwrap();
        assert_eq!(parsed, vec![e.clone(), e]);
    }

    #[test]
    fn a_damaged_line_is_named() {
        let err = parse("{\"time\":\"x\"}\n").unwrap_err();
        assert!(
            err.starts_with("line 1 of /var/lib/rancher/k3s/homelab-history.jsonl is damaged"),
            "{err}"
        );
    }
}
