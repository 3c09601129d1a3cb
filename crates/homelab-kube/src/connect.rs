//! Finds the kubeconfig as kubectl does (`--kubeconfig`, then `KUBECONFIG`, then
//! `~/.kube/config`, then the lab's own `~/.kube/<lab>.yaml`), builds a client from it and checks the API answers, waiting (bounded, reported) for one that is still
//! starting. Must not write anything to the cluster.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::error::{ApplyError, ConnectError};
use crate::events::{NoProgress, Progress};
use crate::retry::{RetryPolicy, Transport, is_transient, transport_failure, with_retry_if};

/// Where to look for the kubeconfig, in the order the CLI documents.
#[derive(Debug, Clone, Default)]
pub struct KubeconfigSource {
    /// `--kubeconfig FILE`: used alone when given.
    pub explicit: Option<PathBuf>,
    /// `--context NAME`: instead of the file's current context.
    pub context: Option<String>,
    /// The value of `KUBECONFIG` (a path list); used when `explicit` is not given.
    pub env: Option<OsString>,
    /// `~/.kube/config`, kubectl's own file; used when neither of the above is given. Its
    /// context named like the lab is used when there is one; else the lab's own file when
    /// it exists; else this file's current context.
    pub home_config: Option<PathBuf>,
    /// The lab's name: the context looked for in `home_config`.
    pub lab_context: Option<String>,
    /// The file `homelab kubeconfig` writes (`~/.kube/<lab>.yaml`); used when none of the
    /// above exists.
    pub default_path: Option<PathBuf>,
}

/// The kubeconfig found, the context to use in it (none: its current one), and the files it
/// was read from.
#[derive(Debug, Clone)]
pub struct ResolvedKubeconfig {
    pub kubeconfig: Kubeconfig,
    pub context: Option<String>,
    pub files: Vec<PathBuf>,
}

impl KubeconfigSource {
    /// Reads `KUBECONFIG` from the environment.
    pub fn from_env(
        explicit: Option<PathBuf>,
        context: Option<String>,
        default_path: Option<PathBuf>,
    ) -> KubeconfigSource {
        KubeconfigSource {
            explicit,
            context,
            env: std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()),
            default_path,
            ..KubeconfigSource::default()
        }
    }

    /// Reads and merges the kubeconfig file(s) this source points at.
    pub fn load(&self) -> Result<Kubeconfig, ConnectError> {
        self.resolve().map(|r| r.kubeconfig)
    }

    /// Finds the kubeconfig as kubectl does: `--kubeconfig` alone; else every existing file
    /// of `KUBECONFIG`, merged (the first to set a value wins); else `~/.kube/config` with the
    /// lab's context; else the lab's own file; else `~/.kube/config`'s current context.
    /// Nothing found is an error naming every file tried.
    pub fn resolve(&self) -> Result<ResolvedKubeconfig, ConnectError> {
        let read = |path: &PathBuf| {
            Kubeconfig::read_from(path).map_err(|source| ConnectError::ReadKubeconfig {
                path: path.clone(),
                source,
            })
        };
        let found = |kubeconfig, files| ResolvedKubeconfig {
            kubeconfig,
            context: self.context.clone(),
            files,
        };
        if let Some(path) = &self.explicit {
            return Ok(found(read(path)?, vec![path.clone()]));
        }
        if let Some(env) = &self.env {
            let paths: Vec<PathBuf> = std::env::split_paths(env)
                .filter(|p| !p.as_os_str().is_empty())
                .collect();
            let existing: Vec<PathBuf> = paths.iter().filter(|p| p.is_file()).cloned().collect();
            if existing.is_empty() {
                return Err(ConnectError::NoKubeconfig { looked_at: paths });
            }
            let mut merged: Option<Kubeconfig> = None;
            for path in &existing {
                let next = read(path)?;
                merged = Some(match merged {
                    None => next,
                    Some(m) => m
                        .merge(next)
                        .map_err(|source| ConnectError::ReadKubeconfig {
                            path: path.clone(),
                            source,
                        })?,
                });
            }
            let merged = merged.expect("at least one file was read");
            return Ok(found(merged, existing));
        }
        let mut looked_at = Vec::new();
        // ~/.kube/config when it has the lab's context (or the one --context names)...
        let mut home_current = None;
        if let Some(path) = &self.home_config {
            if path.is_file() {
                let kubeconfig = read(path)?;
                let lab_context = self
                    .lab_context
                    .as_ref()
                    .filter(|lab| kubeconfig.contexts.iter().any(|c| &c.name == *lab));
                if self.context.is_some() || lab_context.is_some() {
                    let context = self.context.clone().or_else(|| lab_context.cloned());
                    return Ok(ResolvedKubeconfig {
                        kubeconfig,
                        context,
                        files: vec![path.clone()],
                    });
                }
                if kubeconfig
                    .current_context
                    .as_ref()
                    .is_some_and(|c| !c.is_empty())
                {
                    home_current = Some(kubeconfig);
                }
            }
            looked_at.push(path.clone());
        }
        // ...else the lab's own file, before a current context that may be another cluster
        // (applying the lab to a work cluster is worse than asking for --kubeconfig)...
        if let Some(path) = &self.default_path {
            if path.is_file() {
                return Ok(found(read(path)?, vec![path.clone()]));
            }
            looked_at.push(path.clone());
        }
        // ...else ~/.kube/config's current context, as kubectl would use.
        if let (Some(kubeconfig), Some(path)) = (home_current, &self.home_config) {
            return Ok(found(kubeconfig, vec![path.clone()]));
        }
        Err(ConnectError::NoKubeconfig { looked_at })
    }
}

/// A connection to one cluster's API.
#[derive(Clone)]
pub struct Cluster {
    client: Client,
    server: String,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("server", &self.server)
            .finish()
    }
}

impl Cluster {
    /// Loads the kubeconfig and checks that the API answers (`GET /version`), retrying with
    /// the default policy without reporting the retries (see [`Cluster::connect_with`]).
    pub async fn connect(source: &KubeconfigSource) -> Result<Cluster, ConnectError> {
        Cluster::connect_with(source, &RetryPolicy::default(), &NoProgress).await
    }

    /// Loads the kubeconfig and checks that the API answers, retrying a server that is still
    /// starting (429, 5xx, a reset connection) as [`Cluster::ping_with`] does.
    pub async fn connect_with(
        source: &KubeconfigSource,
        retry: &RetryPolicy,
        progress: &dyn Progress,
    ) -> Result<Cluster, ConnectError> {
        let cluster = Cluster::load(source).await?;
        cluster.ping_with(retry, progress).await?;
        Ok(cluster)
    }

    /// Loads the kubeconfig and builds a client without contacting the API.
    pub async fn load(source: &KubeconfigSource) -> Result<Cluster, ConnectError> {
        let ResolvedKubeconfig {
            kubeconfig,
            context,
            ..
        } = source.resolve()?;
        if let Some(context) = &context
            && !kubeconfig.contexts.iter().any(|c| &c.name == context)
        {
            return Err(ConnectError::UnknownContext {
                context: context.clone(),
                available: kubeconfig.contexts.iter().map(|c| c.name.clone()).collect(),
            });
        }
        let options = KubeConfigOptions {
            context,
            ..Default::default()
        };
        let mut config = Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|source| ConnectError::Config { source })?;
        // Retries are ours (409/429/5xx, bounded, reported); the client's own would wait up
        // to minutes without telling anyone.
        config.default_retry = false;
        config.connect_timeout = Some(Duration::from_secs(5));
        config.read_timeout = Some(Duration::from_secs(30));
        let server = config.cluster_url.to_string();
        let client = Client::try_from(config).map_err(|source| ConnectError::Client {
            server: server.clone(),
            source,
        })?;
        Ok(Cluster { client, server })
    }

    /// Wraps an existing client (tests use a mock service).
    pub fn from_client(client: Client, server: impl Into<String>) -> Cluster {
        Cluster {
            client,
            server: server.into(),
        }
    }

    /// Asks the API for its version once; an error means the cluster is unreachable.
    pub async fn ping(&self) -> Result<String, ConnectError> {
        self.ping_with(&RetryPolicy::with_retries(0), &NoProgress)
            .await
    }

    /// Asks the API for its version. A server that answers 429 or 5xx, or resets the
    /// connection, is asked again under `retry` (each retry reported to `progress`): K3s
    /// answers 503 for seconds while it starts. A refused connection, a TLS or DNS failure
    /// fail at once: before anything ever answered, that is a wrong address or a cluster
    /// that is down, and waiting would only hide it.
    pub async fn ping_with(
        &self,
        retry: &RetryPolicy,
        progress: &dyn Progress,
    ) -> Result<String, ConnectError> {
        let first_answer_possible =
            |e: &kube::Error| is_transient(e) && transport_failure(e) != Some(Transport::Refused);
        let result = with_retry_if(
            retry,
            progress,
            "read",
            "version of the Kubernetes API",
            first_answer_possible,
            || self.client.apiserver_version(),
        )
        .await;
        match result {
            Ok(info) => Ok(info.git_version),
            Err(ApplyError::Api {
                code,
                message,
                attempts,
                ..
            }) => Err(ConnectError::Unreachable {
                server: self.server.clone(),
                reason: match (code, attempts) {
                    (Some(c), 1) => format!("{message} (HTTP {c})"),
                    (Some(c), n) => format!("{message} (HTTP {c}, after {n} attempts)"),
                    (None, 1) => message,
                    (None, n) => format!("{message} (after {n} attempts)"),
                },
            }),
            Err(other) => Err(ConnectError::Unreachable {
                server: self.server.clone(),
                reason: other.to_string(),
            }),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The API server URL from the kubeconfig.
    pub fn server(&self) -> &str {
        &self.server
    }
}

#[cfg(test)]
mod lookup_tests {
    use super::*;

    /// A kubeconfig whose contexts are `contexts`, each for a server named after it.
    fn kubeconfig(path: &std::path::Path, contexts: &[&str], current: Option<&str>) {
        let mut text = String::from("apiVersion: v1\nkind: Config\n");
        if let Some(c) = current {
            text.push_str(&format!("current-context: {c}\n"));
        }
        text.push_str("clusters:\n");
        for c in contexts {
            text.push_str(&format!(
                "- name: {c}\n  cluster: {{server: 'https://{c}.test:6443'}}\n"
            ));
        }
        text.push_str("users:\n");
        for c in contexts {
            text.push_str(&format!("- name: {c}\n  user: {{token: t}}\n"));
        }
        text.push_str("contexts:\n");
        for c in contexts {
            text.push_str(&format!(
                "- name: {c}\n  context: {{cluster: {c}, user: {c}}}\n"
            ));
        }
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    struct Home {
        dir: tempfile::TempDir,
    }

    impl Home {
        fn new() -> Home {
            Home {
                dir: tempfile::tempdir().unwrap(),
            }
        }
        fn path(&self, p: &str) -> PathBuf {
            self.dir.path().join(p)
        }
        /// The source the CLI builds for lab `home-lab` with this home directory.
        fn source(&self) -> KubeconfigSource {
            KubeconfigSource {
                home_config: Some(self.path(".kube/config")),
                lab_context: Some("home-lab".into()),
                default_path: Some(self.path(".kube/home-lab.yaml")),
                ..KubeconfigSource::default()
            }
        }
    }

    fn used(r: &ResolvedKubeconfig) -> (Vec<PathBuf>, Option<String>) {
        (r.files.clone(), r.context.clone())
    }

    #[test]
    fn explicit_then_env_then_home_config_then_the_labs_file() {
        let home = Home::new();
        // Nothing anywhere: every file tried is named.
        let err = home.source().resolve().unwrap_err();
        let ConnectError::NoKubeconfig { looked_at } = &err else {
            panic!("{err}")
        };
        assert_eq!(
            looked_at,
            &[home.path(".kube/config"), home.path(".kube/home-lab.yaml")]
        );
        let text = err.to_string();
        assert!(
            text.contains(".kube/config") && text.contains(".kube/home-lab.yaml"),
            "{text}"
        );

        // Only the lab's own file.
        kubeconfig(
            &home.path(".kube/home-lab.yaml"),
            &["home-lab"],
            Some("home-lab"),
        );
        let r = home.source().resolve().unwrap();
        assert_eq!(used(&r), (vec![home.path(".kube/home-lab.yaml")], None));

        // ~/.kube/config with the lab's context (not current): that context, from that file.
        kubeconfig(
            &home.path(".kube/config"),
            &["work", "home-lab"],
            Some("work"),
        );
        let r = home.source().resolve().unwrap();
        assert_eq!(
            used(&r),
            (vec![home.path(".kube/config")], Some("home-lab".into()))
        );
        // --context wins over the lab's name.
        let r = KubeconfigSource {
            context: Some("work".into()),
            ..home.source()
        }
        .resolve()
        .unwrap();
        assert_eq!(r.context.as_deref(), Some("work"));

        // ~/.kube/config without the lab's context: the lab's own file, never another
        // cluster's current context while the lab's file exists.
        kubeconfig(&home.path(".kube/config"), &["work"], Some("work"));
        let r = home.source().resolve().unwrap();
        assert_eq!(used(&r), (vec![home.path(".kube/home-lab.yaml")], None));
        // Without the lab's file: ~/.kube/config's current context, as kubectl.
        std::fs::rename(home.path(".kube/home-lab.yaml"), home.path("lab.yaml")).unwrap();
        let r = home.source().resolve().unwrap();
        assert_eq!(used(&r), (vec![home.path(".kube/config")], None));
        // Neither a lab context nor a current one nor the lab's file: both files named.
        kubeconfig(&home.path(".kube/config"), &["work"], None);
        let err = home.source().resolve().unwrap_err();
        assert!(
            matches!(&err, ConnectError::NoKubeconfig { looked_at } if looked_at.len() == 2),
            "{err}"
        );
        std::fs::rename(home.path("lab.yaml"), home.path(".kube/home-lab.yaml")).unwrap();

        // KUBECONFIG, a colon list: its existing files merged, ~/.kube/config not read.
        kubeconfig(&home.path("a.yaml"), &["a"], Some("a"));
        kubeconfig(&home.path("b.yaml"), &["b"], Some("b"));
        let list = format!(
            "{}:{}:{}",
            home.path("missing.yaml").display(),
            home.path("a.yaml").display(),
            home.path("b.yaml").display()
        );
        let r = KubeconfigSource {
            env: Some(list.into()),
            ..home.source()
        }
        .resolve()
        .unwrap();
        assert_eq!(r.files, [home.path("a.yaml"), home.path("b.yaml")]);
        let names: Vec<&str> = r
            .kubeconfig
            .contexts
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(r.kubeconfig.current_context.as_deref(), Some("a"));

        // --kubeconfig alone, whatever else exists.
        let r = KubeconfigSource {
            explicit: Some(home.path("b.yaml")),
            env: Some(home.path("a.yaml").into_os_string()),
            ..home.source()
        }
        .resolve()
        .unwrap();
        assert_eq!(r.files, [home.path("b.yaml")]);
    }

    #[tokio::test]
    async fn the_client_talks_to_the_context_the_lookup_chose() {
        let home = Home::new();
        kubeconfig(
            &home.path(".kube/config"),
            &["work", "home-lab"],
            Some("work"),
        );
        let cluster = Cluster::load(&home.source()).await.unwrap();
        assert_eq!(cluster.server, "https://home-lab.test:6443/");
        kubeconfig(&home.path(".kube/config"), &["work"], Some("work"));
        let cluster = Cluster::load(&home.source()).await.unwrap();
        assert_eq!(cluster.server, "https://work.test:6443/");
    }
}
