//! Backup and restore of the lab's data: the PostgreSQL dump scripts, their status records,
//! drills and restores, and the data-safety runbooks; pure: this crate renders text and parses
//! text, it never opens a connection, spawns a process or touches a cluster.
//!
//! - [`postgres::scripts`] renders `backup.sh`, `restore.sh`, `drill.sh`, `list.sh` and their
//!   shared `lib.sh` from [`postgres::PostgresBackupParams`], to be mounted from a ConfigMap
//!   into a CronJob or Job running the official `postgres` image.
//! - [`records`] reads what those scripts write and print (run records, drill and restore
//!   reports, listings, manifests).
//! - [`runbooks`] renders the Markdown runbooks with the lab's real names and paths.
//! - [`alerts`] describes the "no recent backup" alert the runbooks refer to.

pub mod alerts;
pub mod postgres;
pub mod records;
pub mod runbooks;
pub mod time;

pub use postgres::{ParamsError, PostgresBackupParams, Script, TableChecksums, scripts};
pub use records::{BackupListing, BackupRun, DrillReport, Manifest, RecordError, RestoreReport};
pub use time::UtcTime;
