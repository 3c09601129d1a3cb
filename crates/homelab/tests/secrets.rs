//! Integration tests of `homelab secrets ...` and the secrets check of `homelab validate`,
//! through the real `homelab` binary with HOME, the age key variables and the editor pointed
//! at temporary directories: one test binary, one module per concern. The real `sops` and
//! OpenBao helpers are the secrets crate's.

#[path = "common/run.rs"]
mod run;

#[path = "secrets/support.rs"]
mod support;

#[path = "secrets/init.rs"]
mod init;

#[path = "secrets/values.rs"]
mod values;

#[path = "secrets/files.rs"]
mod files;

#[path = "secrets/scan.rs"]
mod scan;

#[path = "secrets/validate.rs"]
mod validate;

#[path = "../../homelab-secrets/tests/common/tools.rs"]
mod tools;

#[path = "secrets/vault.rs"]
mod vault;

#[path = "secrets/tls_ca.rs"]
mod tls_ca;

#[path = "secrets/doctor.rs"]
mod doctor;

#[path = "secrets/openbao.rs"]
mod openbao;

#[path = "secrets/dns.rs"]
mod dns;
