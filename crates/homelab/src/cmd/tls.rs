//! `homelab tls ca`: the lab's root certificate (public part only) on stdout or into a file,
//! with its fingerprint, expiry and how to trust it on each platform. One `homelab-ops` call
//! reads it from the secrets file; the CA's key is never read into any output.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use homelab_ops::tls::{RootCa, TlsError, root_ca};
use serde_json::json;

use crate::cli::Global;
use crate::cmd::shared::secrets::{LabFiles, open_store};
use crate::cmd::shared::spec;
use crate::exit::{self, Exit};
use crate::output::Output;

#[derive(Debug, Args)]
pub struct TlsArgs {
    #[command(subcommand)]
    pub command: TlsCommand,
}

#[derive(Debug, Subcommand)]
pub enum TlsCommand {
    /// Print the lab's root CA certificate and how to trust it (`tls.mode: internal-ca`).
    ///
    /// The certificate goes to stdout (or --out FILE), the steps for macOS, Windows, Linux,
    /// iOS, Android and Firefox to stderr. Only the public certificate is ever printed.
    /// Example: `homelab tls ca --out homelab-ca.pem`.
    Ca {
        /// Write the certificate to this file (PEM, mode 0644) instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

pub fn run(global: &Global, args: &TlsArgs, out: &Output) -> anyhow::Result<u8> {
    match &args.command {
        TlsCommand::Ca { out: file } => ca(global, file.as_ref(), out),
    }
}

fn ca(global: &Global, file: Option<&PathBuf>, out: &Output) -> anyhow::Result<u8> {
    let loaded = spec::load_valid(&global.file, out)?;
    let lab = LabFiles::of(&global.file);
    if !matches!(loaded.lab.tls, homelab_spec::lab::Tls::InternalCa) {
        return Err(root_ca_error(TlsError::NotInternalCa {
            lab: loaded.lab.name.clone(),
        }));
    }
    let store = open_store(&lab, out)?;
    let ca = root_ca(&loaded.lab, &store).map_err(root_ca_error)?;
    let summary = summary(&ca);
    let data = json!({
        "subject": ca.info.common_name,
        "notBefore": ca.info.not_before.to_string(),
        "notAfter": ca.info.not_after.to_string(),
        "sha256": ca.info.sha256,
        "daysLeft": ca.days_left(),
        "file": file.map(|f| f.display().to_string()),
        "certificate": if file.is_none() { Some(ca.pem.as_str()) } else { None },
    });
    match file {
        Some(path) => {
            write_public(path, &ca.pem)?;
            let name = path.display().to_string();
            out.result(
                || {
                    format!(
                        "wrote the root certificate of lab `{}` to {name}\n{summary}\n\nTrust it once on each device:\n{}",
                        loaded.lab.name,
                        homelab_plan::trust::trust_steps(&name)
                    )
                },
                &data,
            );
        }
        None if out.is_json() => out.json(&data),
        None => {
            out.raw(&ca.pem);
            out.status(format!(
                "{summary}\n\nSave it (e.g. `homelab tls ca --out homelab-ca.pem`) and trust it once on each device:\n{}",
                homelab_plan::trust::trust_steps("homelab-ca.pem")
            ));
        }
    }
    Ok(exit::OK)
}

fn summary(ca: &RootCa) -> String {
    let days = ca.days_left();
    format!(
        "subject: {}\nSHA-256 fingerprint: {}\nvalid until {} ({days} days from now)",
        ca.info.common_name.as_deref().unwrap_or("(no common name)"),
        ca.info.sha256,
        ca.info.not_after
    )
}

/// Writes the public certificate; a certificate is not secret, so it is readable by all.
fn write_public(path: &PathBuf, pem: &str) -> anyhow::Result<()> {
    std::fs::write(path, pem).with_context(|| {
        format!(
            "cannot write {}; check the directory exists and is writable",
            path.display()
        )
    })?;
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
        .with_context(|| format!("cannot make {} readable (mode 0644)", path.display()))?;
    Ok(())
}

/// Exit 2 for a lab without a CA (the command does not apply), 1 when the secrets file lacks
/// or spoils the root.
fn root_ca_error(e: TlsError) -> anyhow::Error {
    let (code, help) = match &e {
        TlsError::NotInternalCa { .. } => (
            exit::USAGE,
            "set `tls: {mode: internal-ca}` in the spec for the lab's own certificate authority; nothing was written",
        ),
        TlsError::Missing => (exit::FAILURE, "nothing was written"),
        TlsError::Unreadable { .. } => (
            exit::FAILURE,
            "`homelab secrets list` shows the lab's secrets; nothing was written",
        ),
    };
    Exit::new(code, e.to_string()).help(help).into()
}
