//! `homelab render`: writes the plan as a GitOps tree (flavor k3s or flux) into `--out`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use homelab_render::{Flavor, SecretValues, SopsKeys, WriteError, WriteOptions};
use homelab_secrets::sops_config::{FLUX_SECRETS_PATH_REGEX, SOPS_CONFIG_FILE, SopsConfig};
use homelab_secrets::{Identities, IdentityEnv, Recipient, SECRETS_FILE, SecretsStore, VaultKey};
use homelab_spec::lab::VaultSettings;
use serde_json::json;

use crate::cli::{self, Global, RenderArgs};
use crate::cmd::shared::spec;
use crate::exit;
use crate::output::Output;

pub fn run(global: &Global, args: &RenderArgs, out: &Output) -> anyhow::Result<u8> {
    let loaded = spec::load_valid(&global.file, out)?;
    let plan = homelab_plan::plan(&loaded.lab);
    let flavor = match args.flavor {
        cli::Flavor::K3s => Flavor::K3s,
        cli::Flavor::Flux => Flavor::Flux,
    };
    let lab_root = global
        .file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let flux = match flavor {
        Flavor::K3s => None,
        Flavor::Flux => Some(open_secrets(
            &lab_root,
            args.secrets.as_deref(),
            loaded.lab.secrets.vault.as_ref(),
        )?),
    };
    let values = flux.as_ref().map(|f| &f.store as &dyn SecretValues);
    let secrets_file = args
        .secrets
        .clone()
        .unwrap_or_else(|| lab_root.join(SECRETS_FILE));
    let around = match homelab_render::surroundings(&args.out, &lab_root, &secrets_file) {
        Ok(a) => a,
        Err(e @ WriteError::BadManifest { .. }) => return Err(exit::usage(e.to_string())),
        Err(e) => return Err(e.into()),
    };
    let tree = homelab_render::render_in(&plan, flavor, values, &around)?;
    let options = WriteOptions {
        flavor,
        force: args.force,
        sops: flux.as_ref().map(|f| SopsKeys {
            recipients: &f.recipients,
            identities: &f.identities,
            vault: &f.vault,
        }),
        pause_per_file: test_pause(),
    };
    // Ctrl-C (or a TERM) from here on is held until the file list is complete: a tree half
    // old and half new is worse than one that takes a moment longer.
    let interrupted = hold_interrupts()?;
    let report = match homelab_render::write_tree(&tree, &args.out, &options) {
        Ok(r) => r,
        Err(
            e @ (WriteError::NotADirectory { .. }
            | WriteError::NotOurs { .. }
            | WriteError::WouldOverwrite { .. }
            | WriteError::BadManifest { .. }),
        ) => return Err(exit::usage(e.to_string())),
        Err(e) => return Err(e.into()),
    };
    let stopped = interrupted.load(Ordering::SeqCst);
    for f in &report.written {
        out.detail(format!("wrote {f}"));
    }
    for f in &report.removed {
        out.detail(format!("removed {f} (no longer rendered)"));
    }
    // `lab/` and `lab//` are spelt `lab` in what is printed, so paths below it have one slash.
    let out_dir: PathBuf = args.out.components().collect();
    let dir = out_dir.display().to_string();
    out.result(
        || {
            let mut t = format!(
                "Rendered lab `{}` (flavor {flavor}) into {dir}: {} files, {} written, {} unchanged",
                plan.lab_name,
                tree.len(),
                report.written.len(),
                report.unchanged.len()
            );
            if !report.removed.is_empty() {
                t.push_str(&format!(
                    ", {} removed (no longer rendered)",
                    report.removed.len()
                ));
            }
            t.push_str(&format!(
                ".\nNext: read {}, or check a layer with `kubectl kustomize {}`.",
                out_dir.join("README.md").display(),
                out_dir.join("infrastructure").display()
            ));
            t
        },
        &json!({
            "lab": plan.lab_name,
            "flavor": flavor.name(),
            "out": dir,
            "files": tree.len(),
            "written": report.written,
            "unchanged": report.unchanged.len(),
            "removed": report.removed,
        }),
    );
    if stopped {
        return Err(anyhow::anyhow!(
            "interrupted while writing {dir}: the render finished its file list first, so the tree is complete and `homelab render` can run again at any time"
        ));
    }
    Ok(exit::OK)
}

/// The test seam that slows the writer down (`HOMELAB_TEST_WRITE_PAUSE_MS`, a pause after
/// each file), so that a test can send a signal while files are being written.
fn test_pause() -> Option<Duration> {
    std::env::var("HOMELAB_TEST_WRITE_PAUSE_MS")
        .ok()?
        .parse()
        .ok()
        .map(Duration::from_millis)
}

/// Catches SIGINT and SIGTERM for the rest of the process, noting that one came instead of
/// ending the process, so that the writer can finish first.
fn hold_interrupts() -> anyhow::Result<Arc<AtomicBool>> {
    use tokio::signal::unix::{SignalKind, signal};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the signal handler")?;
    // Creating the streams installs the handlers, before the first file is written.
    let (mut int, mut term) = {
        let _entered = rt.enter();
        (
            signal(SignalKind::interrupt()).context("cannot catch SIGINT")?,
            signal(SignalKind::terminate()).context("cannot catch SIGTERM")?,
        )
    };
    let flag = Arc::new(AtomicBool::new(false));
    let seen = Arc::clone(&flag);
    std::thread::spawn(move || {
        rt.block_on(async move {
            loop {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                seen.store(true, Ordering::SeqCst);
            }
        })
    });
    Ok(flag)
}

/// What the flux flavor needs: the opened secrets store and the keys to encrypt with.
struct FluxSecrets {
    store: SecretsStore,
    identities: Identities,
    recipients: Vec<Recipient>,
    /// The spec's transit key, which also wraps every rendered Secret's data key.
    vault: Vec<VaultKey>,
}

fn open_secrets(
    lab_root: &Path,
    explicit: Option<&Path>,
    vault: Option<&VaultSettings>,
) -> anyhow::Result<FluxSecrets> {
    let path: PathBuf = explicit.map_or_else(|| lab_root.join(SECRETS_FILE), Path::to_path_buf);
    if !path.exists() {
        return Err(exit::usage(format!(
            "`render --flavor flux` writes the lab's Secrets SOPS-encrypted and reads their values from {}, which does not exist; create it with `homelab secrets init` (or pass --secrets FILE), or use `--flavor k3s`, whose Secrets `homelab apply` creates",
            path.display()
        )));
    }
    let mut env = IdentityEnv::from_process_env();
    env.vault = env
        .vault
        .with_lab(vault.map(homelab_ops::secrets::lab_vault));
    let identities = Identities::from_env(&env).context(
        "the flux flavor needs your age identity (or a Vault credential) to read the secrets file",
    )?;
    let store = SecretsStore::open(&path, &identities)?;
    let recipients = flux_recipients(lab_root, &store)?;
    let vault = vault
        .map(homelab_ops::secrets::vault_key)
        .transpose()?
        .into_iter()
        .collect();
    Ok(FluxSecrets {
        store,
        identities,
        recipients,
        vault,
    })
}

/// The recipients of `.sops.yaml`'s rule for Flux Secrets when the lab has one, else those
/// of the secrets file.
fn flux_recipients(lab_root: &Path, store: &SecretsStore) -> anyhow::Result<Vec<Recipient>> {
    let config_path = lab_root.join(SOPS_CONFIG_FILE);
    if config_path.exists() {
        let config = SopsConfig::load(&config_path)?;
        if let Some(rule) = config
            .creation_rules
            .iter()
            .find(|r| r.path_regex.as_deref() == Some(FLUX_SECRETS_PATH_REGEX))
            .filter(|r| !r.age.is_empty())
        {
            return Ok(rule.encrypt_options()?.recipients);
        }
    }
    store
        .recipients()
        .iter()
        .map(|r| r.parse().map_err(anyhow::Error::from))
        .collect()
}
