//! The data-safety runbooks (Markdown) rendered with the lab's real names and paths; pure:
//! functions from small parameter structs to text, deterministic, nothing read or written.
//!
//! | runbook | function |
//! |---|---|
//! | `postgres-backup` | [`postgres_backup`] |
//! | `postgres-restore` | [`postgres_restore`] |
//! | `postgres-connectivity` | [`postgres_connectivity`] |
//! | `cluster-backup` | [`cluster_backup`] |
//! | `cluster-restore` | [`cluster_restore`] |
//! | `nfs-restore` | [`nfs_restore`] |

mod cluster;
mod nfs;
mod postgres;

pub use cluster::{ClusterRunbookParams, NodeRef, cluster_backup, cluster_restore};
pub use nfs::{NfsRunbookParams, NfsVolume, nfs_restore};
pub use postgres::{
    DatabaseAccess, PostgresRunbookParams, postgres_backup, postgres_connectivity, postgres_restore,
};

/// One rendered runbook, to be written to `docs/runbooks/<name>.md`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runbook {
    pub name: &'static str,
    pub markdown: String,
}

impl Runbook {
    pub fn file_name(&self) -> String {
        format!("{}.md", self.name)
    }
}

/// All six runbooks, in a fixed order.
pub fn all(
    postgres: &PostgresRunbookParams,
    cluster: &ClusterRunbookParams,
    nfs: &NfsRunbookParams,
) -> Vec<Runbook> {
    vec![
        Runbook {
            name: "postgres-backup",
            markdown: postgres_backup(postgres),
        },
        Runbook {
            name: "postgres-restore",
            markdown: postgres_restore(postgres),
        },
        Runbook {
            name: "postgres-connectivity",
            markdown: postgres_connectivity(postgres),
        },
        Runbook {
            name: "cluster-backup",
            markdown: cluster_backup(cluster),
        },
        Runbook {
            name: "cluster-restore",
            markdown: cluster_restore(cluster),
        },
        Runbook {
            name: "nfs-restore",
            markdown: nfs_restore(nfs),
        },
    ]
}

/// Restore figures measured by `scripts/bench-backup`, quoted in the postgres-restore runbook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeasuredRestore {
    /// CPU, cores, memory, disk and OS of the machine the figures come from.
    pub machine: &'static str,
    /// How the database was generated.
    pub database: &'static str,
    pub database_bytes: u64,
    pub dump_bytes: u64,
    /// `restore.sh --into`: `pg_restore` into a new database, median of the runs.
    pub restore_millis: u64,
    /// The per-table row count and checksum check that follows, median of the runs.
    pub check_millis: u64,
    /// Runs the medians are taken over.
    pub runs: u32,
    /// Day of the measurement (UTC).
    pub measured_on: &'static str,
}

/// Figures from `scripts/bench-backup` (BENCHMARKS.md, section "Backups").
pub const MEASURED_RESTORE: MeasuredRestore = MeasuredRestore {
    machine: "a 2-vCPU Intel Xeon virtual machine with 24 GiB RAM and a virtio disk, \
              PostgreSQL 15.18 with stock settings, otherwise idle (load average 1.5-2)",
    database: "pgbench -i -s 70 (7,000,000 accounts)",
    database_bytes: 1_105_396_227,
    dump_bytes: 19_696_120,
    restore_millis: 13_456,
    check_millis: 2_504,
    runs: 5,
    measured_on: "2026-11-22",
};

/// Milliseconds as seconds with one decimal.
pub(crate) fn seconds(millis: u64) -> String {
    let tenths = (millis + 50) / 100;
    format!("{}.{} s", tenths / 10, tenths % 10)
}

/// Megabytes with one decimal, for prose.
pub(crate) fn megabytes(bytes: u64) -> String {
    let tenths = (bytes + 50_000) / 100_000;
    format!("{}.{} MB", tenths / 10, tenths % 10)
}

/// A Markdown table from a header and rows (cells are inserted verbatim).
pub(crate) fn table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    use std::fmt::Write as _;
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
    for row in rows {
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    out.push('\n');
}

/// `value` in backticks, safe for Markdown code spans that may contain backticks themselves.
pub(crate) fn code(value: &str) -> String {
    if value.contains('`') {
        format!("`` {value} ``")
    } else {
        format!("`{value}`")
    }
}
