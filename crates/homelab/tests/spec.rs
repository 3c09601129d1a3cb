//! Integration tests of the spec commands (`init`, `validate`, `schema`, `completions`)
//! through the real `homelab` binary: one test binary, one module per concern.

#[path = "common/run.rs"]
mod run;

#[path = "common/terminal.rs"]
mod terminal;

#[path = "spec/support.rs"]
mod support;

#[path = "spec/fixtures.rs"]
mod fixtures;

#[path = "spec/files.rs"]
mod files;

#[path = "spec/cli.rs"]
mod cli;

#[path = "spec/schema.rs"]
mod schema;

#[path = "spec/manifests.rs"]
mod manifests;
