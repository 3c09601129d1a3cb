//! Finds the kubeconfig (`--kubeconfig`, then `KUBECONFIG`, then the default path), builds a
//! client from it and checks the API answers, waiting (bounded, reported) for one that is still
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
    /// The file `homelab kubeconfig` writes; used when neither of the above is given.
    pub default_path: Option<PathBuf>,
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
        }
    }

    /// Reads and merges the kubeconfig file(s) this source points at.
    pub fn load(&self) -> Result<Kubeconfig, ConnectError> {
        let read = |path: &PathBuf| {
            Kubeconfig::read_from(path).map_err(|source| ConnectError::ReadKubeconfig {
                path: path.clone(),
                source,
            })
        };
        if let Some(path) = &self.explicit {
            return read(path);
        }
        if let Some(env) = &self.env {
            let paths: Vec<PathBuf> = std::env::split_paths(env)
                .filter(|p| !p.as_os_str().is_empty())
                .collect();
            let existing: Vec<&PathBuf> = paths.iter().filter(|p| p.is_file()).collect();
            if existing.is_empty() {
                return Err(ConnectError::NoKubeconfig { looked_at: paths });
            }
            let mut merged: Option<Kubeconfig> = None;
            for path in existing {
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
            return Ok(merged.expect("at least one file was read"));
        }
        match &self.default_path {
            Some(path) if path.is_file() => read(path),
            Some(path) => Err(ConnectError::NoKubeconfig {
                looked_at: vec![path.clone()],
            }),
            None => Err(ConnectError::NoKubeconfig { looked_at: vec![] }),
        }
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
        let kubeconfig = source.load()?;
        if let Some(context) = &source.context
            && !kubeconfig.contexts.iter().any(|c| &c.name == context)
        {
            return Err(ConnectError::UnknownContext {
                context: context.clone(),
                available: kubeconfig.contexts.iter().map(|c| c.name.clone()).collect(),
            });
        }
        let options = KubeConfigOptions {
            context: source.context.clone(),
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
