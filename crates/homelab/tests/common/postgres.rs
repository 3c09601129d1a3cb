//! The real PostgreSQL server of the tests that run the backup Jobs (`backup`, `up`): the
//! backup crate's test server, listening on loopback as the backup pod reaches it.
#![allow(dead_code)]

#[path = "../../../homelab-backup/tests/common/pg_server.rs"]
mod pg_server;
pub use pg_server::*;
