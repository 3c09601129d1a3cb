//! `homelab secrets openbao-init`: one call to
//! `homelab_ops::openbao_init::init_unseal_and_configure` for the lab's OpenBao server, with the secrets file opened by the shared helpers, printed
//! as what was done (or JSON). It never prints a key or the root token: the report holds
//! names only.

use homelab_ops::openbao_init::{
    ConfigureReport, InitOptions, InitReport, OpenBaoInitError, init_unseal_and_configure,
    server_address,
};
use homelab_secrets::{Error, SecretsStore, VaultEnv, VaultOperator};
use serde_json::json;

use super::{count, lab_spec};
use crate::cli::Global;
use crate::cmd::shared::secrets::{LabFiles, fail, identities, opened_with};
use crate::exit::{self, Exit};
use crate::output::Output;

/// What the command line asked for.
pub struct OpenbaoInitArgs<'a> {
    pub address: Option<&'a str>,
    pub shares: u32,
    pub threshold: u32,
}

pub fn run(
    global: &Global,
    lab: &LabFiles,
    args: &OpenbaoInitArgs<'_>,
    out: &Output,
) -> anyhow::Result<u8> {
    let (loaded, _) = lab_spec(global, out)?;
    let env = VaultEnv::from_process_env();
    let server = server_address(args.address, &env, &loaded.lab).map_err(init_failed)?;
    out.detail(format!(
        "OpenBao server {} (from {})",
        server.address, server.source
    ));
    let ca_pem = match &env.ca_cert {
        Some(path) => Some(std::fs::read(path).map_err(|e| {
            exit::usage(format!(
                "cannot read the CA certificate {} named by VAULT_CACERT/BAO_CACERT: {e}; nothing was changed",
                path.display()
            ))
        })?),
        None => None,
    };
    let operator = VaultOperator::new(&server.address, ca_pem.clone()).map_err(|e| {
        exit::usage(format!(
            "{e} (from {}); give it as https://HOST[:PORT]; nothing was changed",
            server.source
        ))
    })?;
    if !lab.store.exists() {
        return Err(fail(Error::StoreMissing {
            path: lab.store.clone(),
        }));
    }
    let ids = identities(loaded.lab.secrets.vault.as_ref(), out)?;
    let mut store = SecretsStore::open(&lab.store, &ids).map_err(fail)?;
    opened_with(&lab.store, store.opened_with(), out);
    let (report, configured) = init_unseal_and_configure(
        &operator,
        ca_pem,
        &mut store,
        &loaded.lab,
        InitOptions {
            shares: args.shares,
            threshold: args.threshold,
        },
    )
    .map_err(init_failed)?;
    let file = lab.store.display().to_string();
    out.result(
        || format!("{}\n{}", text(&report, &file), configure_text(&configured)),
        &json!({
            "address": report.address,
            "file": file,
            "initialized_now": report.initialized_now,
            "unsealed_now": report.unsealed_now,
            "stored": report.stored,
            "policies_written": configured.policies_written,
            "policies_unchanged": configured.policies_unchanged,
            "transit_mounted": configured.transit_mounted,
            "transit_key_created": configured.key_created,
            "configure_skipped": configured.skipped,
        }),
    );
    Ok(exit::OK)
}

fn text(report: &InitReport, file: &str) -> String {
    let address = &report.address;
    match (report.initialized_now, report.unsealed_now) {
        (true, _) => format!(
            "initialised {address}: stored {} and the root token in {file} (names: {}); unsealed it",
            count(report.stored.len().saturating_sub(1), "unseal key"),
            report.stored.join(", ")
        ),
        (false, true) => format!(
            "{address} was initialised already and sealed: unsealed it with the keys in {file}; nothing was written"
        ),
        (false, false) => format!(
            "{address} is initialised and unsealed already; nothing was done and nothing was written"
        ),
    }
}

fn configure_text(c: &ConfigureReport) -> String {
    if let Some(why) = &c.skipped {
        return format!("not configured: {why}");
    }
    let mut parts = Vec::new();
    if !c.policies_written.is_empty() {
        parts.push(format!("wrote policies {}", c.policies_written.join(", ")));
    }
    if !c.policies_unchanged.is_empty() {
        parts.push(format!(
            "policies {} were as rendered",
            c.policies_unchanged.join(", ")
        ));
    }
    if c.transit_mounted {
        parts.push("mounted the transit engine".into());
    }
    if c.key_created {
        parts.push("created the transit key".into());
    }
    format!("configured: {}", parts.join("; "))
}

/// The operation's refusals as exit codes: bad options and a missing server are usage errors,
/// the rest failures; every one left the secrets file as it was.
fn init_failed(err: OpenBaoInitError) -> anyhow::Error {
    let (code, help) = match &err {
        OpenBaoInitError::Options(_) => (exit::USAGE, Some("nothing was changed")),
        OpenBaoInitError::NoServer => (exit::USAGE, None),
        OpenBaoInitError::Server { .. } => (
            exit::FAILURE,
            Some(
                "check that the server is running and reachable at that address (`bao status`); nothing was written",
            ),
        ),
        OpenBaoInitError::Secrets { .. } => (exit::FAILURE, None),
        OpenBaoInitError::Configure { .. } => (
            exit::FAILURE,
            Some(
                "the server is unsealed and its keys are in the secrets file; fix the cause and run `homelab secrets openbao-init` again to finish",
            ),
        ),
        OpenBaoInitError::KeysOfAnotherServer { .. }
        | OpenBaoInitError::KeysMissing { .. }
        | OpenBaoInitError::StillSealed { .. } => (exit::FAILURE, None),
    };
    Exit {
        code,
        message: err.to_string(),
        help: help.map(str::to_owned),
    }
    .into()
}
