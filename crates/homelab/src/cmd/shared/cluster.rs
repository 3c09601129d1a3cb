//! What the commands that use the Kubernetes API share: the kubeconfig and retry flags,
//! connection problems as exit codes, retries as progress lines, the runtime, and the plan as `homelab-kube` input with its Secrets
//! filled from the secrets file. Decides nothing about objects and never prints a secret value.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use homelab_kube::{ApplyEvent, ConnectError, KubeconfigSource, Progress, RetryPolicy};
use homelab_ops::cluster_plan::{self, ClusterPlan};
use homelab_plan::Plan;
use homelab_secrets::SecretsStore;
use homelab_spec::LoadedSpec;

use super::secrets::{LabFiles, fail, identities, opened_with};
use super::spec;
use crate::cli::Global;
use crate::exit::{self, Exit};
use crate::output::Output;

/// Which cluster to talk to; shared by every command that uses the Kubernetes API.
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// The kubeconfig to use [default, as kubectl: the files of $KUBECONFIG, else
    /// ~/.kube/config (its context named like the lab, else its current one), else
    /// ~/.kube/<lab>.yaml, the file `homelab kubeconfig` writes].
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use instead of its current one.
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// How often a request that failed for a passing reason (HTTP 429 or 5xx, a reset
    /// connection, or a refused one once the API has answered, as while K3s restarts) is
    /// tried again, with pauses from 0.25 s doubling to 8 s (jittered); each retry is shown.
    /// 0 gives up at once.
    #[arg(long, value_name = "N", default_value_t = 7)]
    pub api_retries: u32,
}

impl ClusterArgs {
    /// The retries `--api-retries` asks for.
    pub fn retry(&self) -> RetryPolicy {
        RetryPolicy::with_retries(self.api_retries)
    }

    /// Where to find the kubeconfig, in the documented order.
    pub fn source(&self, lab_name: &str) -> KubeconfigSource {
        let kube_dir = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| PathBuf::from(h).join(".kube"));
        KubeconfigSource {
            home_config: kube_dir.as_ref().map(|d| d.join("config")),
            lab_context: Some(lab_name.to_string()),
            ..KubeconfigSource::from_env(
                self.kubeconfig.clone(),
                self.context.clone(),
                kube_dir.map(|d| d.join(format!("{lab_name}.yaml"))),
            )
        }
    }
}

/// A connection problem as the CLI reports it: a kubeconfig that is missing or wrong is a
/// usage error (2); an API that does not answer is `unreachable_code`.
pub(crate) fn connect_error(e: ConnectError, unreachable_code: u8) -> anyhow::Error {
    let code = match e {
        ConnectError::Unreachable { .. } | ConnectError::Client { .. } => unreachable_code,
        _ => exit::USAGE,
    };
    Exit {
        code,
        message: e.to_string(),
        help: None,
    }
    .into()
}

/// Shows the retries of API requests as progress lines (`retrying list ... in 0.4s (attempt 1
/// failed: HTTP 503: ...)`); silent with `--quiet` and `--output json`. For commands whose
/// only progress is retries (`diff`, `status`, connecting).
pub(crate) struct RetryLines<'o>(pub &'o Output);

impl Progress for RetryLines<'_> {
    fn event(&self, event: ApplyEvent) {
        if let Some(line) = retry_line(&event) {
            self.0.status(line);
        }
    }
}

/// The progress line of a retry event.
pub(crate) fn retry_line(event: &ApplyEvent) -> Option<String> {
    match event {
        ApplyEvent::Retrying {
            action,
            object,
            attempt,
            backoff,
            reason,
        } => Some(format!(
            "retrying {action} {object} in {:.1}s (attempt {attempt} failed: {reason})",
            backoff.as_secs_f64()
        )),
        _ => None,
    }
}

/// A runtime for the one library call a command makes.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime that drives the Kubernetes API requests")
}

/// The spec, its plan, and the plan as `homelab-kube` input with its Secrets filled from the
/// secrets file. Fails before any network access when a secret cannot be read, and, for a
/// command that changes the cluster (`examples` given), before the secrets are opened when
/// the spec holds values copied from an example.
pub(crate) fn load_cluster_plan(
    global: &Global,
    examples: Option<&spec::ExampleValuesArgs>,
    out: &Output,
) -> anyhow::Result<(LoadedSpec, Plan, ClusterPlan)> {
    let loaded = spec::load_valid(&global.file, out)?;
    if let Some(examples) = examples {
        spec::refuse_example_values(&global.file, &loaded, examples)?;
    }
    let plan = homelab_plan::plan(&loaded.lab);
    let needs_secrets = plan.components.iter().any(|c| !c.secret_objects.is_empty());
    let cluster = if needs_secrets {
        let files = LabFiles::of(&global.file);
        let identities = identities(loaded.lab.secrets.vault.as_ref(), out)?;
        let store = SecretsStore::open(&files.store, &identities).map_err(fail)?;
        opened_with(&files.store, store.opened_with(), out);
        cluster_plan::cluster_plan(&plan, &store).map_err(plan_error)?
    } else {
        cluster_plan::cluster_plan(&plan, &NoSecrets).map_err(plan_error)?
    };
    // Once, before anything is sent: what goes without its optional secret (ADR 0133).
    for left_out in &cluster.left_out {
        out.warn(left_out.describe());
    }
    Ok((loaded, plan, cluster))
}

/// Secrets the lab cannot do without are the user's to give, as for an invalid spec (2);
/// a patch that no longer applies is a failure (1).
fn plan_error(e: cluster_plan::ClusterPlanError) -> anyhow::Error {
    let code = match e {
        cluster_plan::ClusterPlanError::Secrets(_) => exit::USAGE,
        cluster_plan::ClusterPlanError::Patch(_) => exit::FAILURE,
    };
    Exit {
        code,
        message: e.to_string(),
        help: None,
    }
    .into()
}

/// The optional secrets without a value and the Secrets left out for them, for `--output json`.
pub(crate) fn left_out_json(cluster: &ClusterPlan) -> serde_json::Value {
    cluster
        .left_out
        .iter()
        .map(|l| {
            serde_json::json!({
                "secret": l.secret,
                "object": l.object,
                "without": l.without,
                "command": format!("homelab secrets set {}", l.secret),
            })
        })
        .collect()
}

struct NoSecrets;

impl homelab_render::SecretValues for NoSecrets {
    fn secret(&self, name: &str) -> Result<secrecy::SecretString, String> {
        Err(format!("no secrets file is read for `{name}`"))
    }
}
