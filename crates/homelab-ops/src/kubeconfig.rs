//! Where the lab's admin kubeconfig is written and merged, and which API address it names,
//! worked out from the spec, the caller's choices and the environment as kubectl reads it.
//! Pure: reads no file and contacts no host (`homelab_nodes::kubeconfig` does the fetching).

use std::path::{Path, PathBuf};

use homelab_nodes::KubeconfigOptions;
use homelab_plan::Plan;
use homelab_spec::lab::{KubeconfigAddress, Lab};

use crate::inventory::api_certificate_names;

/// What the caller chose beyond the spec.
#[derive(Debug, Clone, Default)]
pub struct KubeconfigChoice {
    /// Also merge into the user's kubeconfig.
    pub merge: bool,
    /// Where to write the lab's own file instead of `~/.kube/<lab>.yaml`.
    pub output_file: Option<PathBuf>,
    /// `lan`, `tailscale` or an address; `None` is the spec's `kubeconfigAddress`.
    pub server: Option<String>,
    /// Make the lab's context the current one when merging.
    pub use_context: bool,
}

/// The environment the paths come from (`$HOME`, `$KUBECONFIG`), passed in so that the
/// choice is testable and the library reads no process state of its own.
#[derive(Debug, Clone, Default)]
pub struct KubeEnv {
    pub home: Option<PathBuf>,
    pub kubeconfig: Option<String>,
}

impl KubeEnv {
    /// `$HOME` and `$KUBECONFIG` of this process (an empty `$HOME` counts as unset).
    pub fn from_process_env() -> KubeEnv {
        KubeEnv {
            home: std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(PathBuf::from),
            kubeconfig: std::env::var("KUBECONFIG").ok(),
        }
    }
}

/// Why the kubeconfig targets cannot be worked out; each says what to pass instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KubeconfigTargetError {
    #[error("HOME is not set, so there is no ~/.kube; pass --output-file PATH")]
    NoHome,
    #[error("--merge needs $KUBECONFIG or $HOME to find your kubeconfig")]
    NoMergeTarget,
    #[error(
        "--output-file {} is the kubeconfig --merge writes into; drop --output-file to keep the lab's own copy elsewhere, or drop --merge",
        .0.display()
    )]
    OutputIsMergeTarget(PathBuf),
    #[error(
        "--server tailscale needs network.remoteAccess.tailscale in the spec (the node's Tailscale name, which the server certificate then covers); use --server lan or an address"
    )]
    NoTailscaleName,
}

/// The options for `homelab_nodes::kubeconfig`, and a warning when the chosen address is not
/// one the API server certificate covers.
#[derive(Debug, Clone)]
pub struct KubeconfigTargets {
    pub options: KubeconfigOptions,
    pub warning: Option<String>,
}

/// The user's kubeconfig as kubectl finds it: the first entry of `$KUBECONFIG`, else
/// `~/.kube/config`.
pub fn default_kubeconfig(kubeconfig_env: Option<&str>, home: Option<&Path>) -> Option<PathBuf> {
    if let Some(first) =
        kubeconfig_env.and_then(|v| std::env::split_paths(v).find(|p| !p.as_os_str().is_empty()))
    {
        return Some(first);
    }
    home.map(|h| h.join(".kube/config"))
}

/// Where to write (and merge) the kubeconfig of `lab` and which address it names.
pub fn targets(
    lab: &Lab,
    plan: &Plan,
    choice: &KubeconfigChoice,
    env: &KubeEnv,
) -> Result<KubeconfigTargets, KubeconfigTargetError> {
    let write_to = match (&choice.output_file, &env.home) {
        (Some(p), _) => p.clone(),
        (None, Some(h)) => h.join(".kube").join(format!("{}.yaml", lab.name)),
        (None, None) => return Err(KubeconfigTargetError::NoHome),
    };
    let merge_into = if choice.merge {
        let target = default_kubeconfig(env.kubeconfig.as_deref(), env.home.as_deref())
            .ok_or(KubeconfigTargetError::NoMergeTarget)?;
        if target == write_to {
            return Err(KubeconfigTargetError::OutputIsMergeTarget(write_to));
        }
        Some(target)
    } else {
        None
    };
    let tailscale = lab.network.remote_access.tailscale.clone();
    let server = match choice.server.as_deref() {
        Some("lan") => None,
        Some("tailscale") => Some(tailscale.ok_or(KubeconfigTargetError::NoTailscaleName)?),
        Some(address) => Some(address.to_string()),
        None => match lab.network.remote_access.kubeconfig_address {
            KubeconfigAddress::Tailscale => tailscale,
            KubeconfigAddress::Lan => None,
        },
    };
    let mut warning = None;
    if let Some(address) = &server {
        let names = api_certificate_names(plan, &lab.cluster.first_server().name);
        if !names.is_empty() && !names.iter().any(|n| n == address) {
            warning = Some(format!(
                "{address} is not among the names the API server certificate covers ({}), so kubectl will reject the connection; add it to network.remoteAccess.extraSans and run `homelab nodes apply`",
                names.join(", ")
            ));
        }
    }
    Ok(KubeconfigTargets {
        options: KubeconfigOptions {
            server,
            write_to,
            merge_into,
            switch_context: choice.use_context,
        },
        warning,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab() -> (Lab, Plan) {
        let loaded = homelab_spec::load_str("homelab.yaml", homelab_spec::templates::MINIMAL)
            .expect("the minimal preset is valid");
        let plan = homelab_plan::plan(&loaded.lab);
        (loaded.lab, plan)
    }

    #[test]
    fn kubeconfig_is_found_as_kubectl_finds_it() {
        let home = Path::new("/home/me");
        assert_eq!(
            default_kubeconfig(None, Some(home)),
            Some(PathBuf::from("/home/me/.kube/config"))
        );
        assert_eq!(
            default_kubeconfig(Some(":/a/one:/b/two"), Some(home)),
            Some(PathBuf::from("/a/one"))
        );
        assert_eq!(
            default_kubeconfig(Some(""), Some(home)),
            Some(PathBuf::from("/home/me/.kube/config"))
        );
        assert_eq!(default_kubeconfig(None, None), None);
    }

    #[test]
    fn the_lab_file_goes_under_home_and_merges_into_the_users_kubeconfig() {
        let (lab, plan) = lab();
        let env = KubeEnv {
            home: Some(PathBuf::from("/home/me")),
            kubeconfig: None,
        };
        let merge = KubeconfigChoice {
            merge: true,
            ..KubeconfigChoice::default()
        };
        let t = targets(&lab, &plan, &merge, &env).unwrap();
        assert_eq!(
            t.options.write_to,
            PathBuf::from("/home/me/.kube/home-lab.yaml")
        );
        assert_eq!(
            t.options.merge_into,
            Some(PathBuf::from("/home/me/.kube/config"))
        );
        assert_eq!(t.options.server, None);
        assert!(t.warning.is_none());
    }

    #[test]
    fn bad_choices_are_refused_with_what_to_pass() {
        let (lab, plan) = lab();
        let none = KubeEnv::default();
        assert_eq!(
            targets(&lab, &plan, &KubeconfigChoice::default(), &none).unwrap_err(),
            KubeconfigTargetError::NoHome
        );
        let env = KubeEnv {
            home: Some(PathBuf::from("/h")),
            kubeconfig: Some("/h/.kube/home-lab.yaml".into()),
        };
        let merge = KubeconfigChoice {
            merge: true,
            ..KubeconfigChoice::default()
        };
        assert!(matches!(
            targets(&lab, &plan, &merge, &env).unwrap_err(),
            KubeconfigTargetError::OutputIsMergeTarget(_)
        ));
        let tailscale = KubeconfigChoice {
            server: Some("tailscale".into()),
            ..KubeconfigChoice::default()
        };
        let e = targets(&lab, &plan, &tailscale, &env).unwrap_err();
        assert!(
            e.to_string().contains("network.remoteAccess.tailscale"),
            "{e}"
        );
    }

    #[test]
    fn an_address_the_certificate_does_not_cover_is_a_warning() {
        let (lab, plan) = lab();
        let env = KubeEnv {
            home: Some(PathBuf::from("/h")),
            kubeconfig: None,
        };
        let other = KubeconfigChoice {
            server: Some("elsewhere.example".into()),
            ..KubeconfigChoice::default()
        };
        let t = targets(&lab, &plan, &other, &env).unwrap();
        assert_eq!(t.options.server.as_deref(), Some("elsewhere.example"));
        let w = t.warning.expect("a warning");
        assert!(w.contains("extraSans"), "{w}");
    }
}
