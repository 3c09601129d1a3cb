//! Maps an object's apiVersion and kind to the resource the API serves it under (plural,
//! namespaced or not), asking only for the group-versions the plan uses and caching answers.
//! Must not write to the cluster.

use std::collections::HashMap;

use kube::Client;
use kube::core::ApiResource;

use crate::error::ApplyError;
use crate::events::Progress;
use crate::retry::{RetryPolicy, with_retry_opt};

#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub resource: ApiResource,
    pub namespaced: bool,
}

/// Discovery cache for one run.
impl Resolved {
    /// The API for `object` of this kind: namespaced when the kind is, cluster-wide otherwise.
    /// A namespaced kind without a namespace in its manifest is a plan error.
    pub(crate) fn api_for(
        &self,
        client: &Client,
        object: &crate::model::ObjectRef,
    ) -> Result<kube::Api<kube::core::DynamicObject>, ApplyError> {
        if self.namespaced && object.namespace.is_none() {
            return Err(ApplyError::MissingNamespace {
                object: object.to_string(),
                kind: object.kind.clone(),
            });
        }
        Ok(match (&object.namespace, self.namespaced) {
            (Some(ns), true) => kube::Api::namespaced_with(client.clone(), ns, &self.resource),
            _ => kube::Api::all_with(client.clone(), &self.resource),
        })
    }
}

pub(crate) struct Resolver {
    client: Client,
    // apiVersion -> kind -> resource; `None` when the group-version is not served.
    cache: HashMap<String, Option<HashMap<String, Resolved>>>,
}

impl Resolver {
    pub fn new(client: Client) -> Resolver {
        Resolver {
            client,
            cache: HashMap::new(),
        }
    }

    /// Resolves a kind, asking the API once per group-version. `refresh` asks again when
    /// the cached answer lacks the kind (after a CRD was just installed).
    pub async fn resolve(
        &mut self,
        api_version: &str,
        kind: &str,
        refresh: bool,
        retry: &RetryPolicy,
        progress: &dyn Progress,
    ) -> Result<Option<Resolved>, ApplyError> {
        let cached = self
            .cache
            .get(api_version)
            .map(|gv| gv.as_ref().and_then(|kinds| kinds.get(kind)).cloned());
        match cached {
            Some(Some(found)) => return Ok(Some(found)),
            Some(None) if !refresh => return Ok(None),
            _ => {}
        }
        let kinds = fetch(&self.client, api_version, retry, progress).await?;
        let found = kinds.as_ref().and_then(|k| k.get(kind)).cloned();
        self.cache.insert(api_version.to_string(), kinds);
        Ok(found)
    }

    /// Fetches several group-versions at once and caches them.
    pub async fn prefetch(
        &mut self,
        api_versions: &std::collections::BTreeSet<String>,
        retry: &RetryPolicy,
        progress: &dyn Progress,
    ) -> Result<(), ApplyError> {
        let missing: Vec<&String> = api_versions
            .iter()
            .filter(|av| !self.cache.contains_key(av.as_str()))
            .collect();
        let client = &self.client;
        let fetched = futures::future::try_join_all(missing.iter().map(|av| async move {
            Ok::<_, ApplyError>((av.to_string(), fetch(client, av, retry, progress).await?))
        }))
        .await?;
        self.cache.extend(fetched);
        Ok(())
    }
}

type Kinds = HashMap<String, Resolved>;

/// Asks the API which kinds one group-version serves; `None` when it serves none.
async fn fetch(
    client: &Client,
    api_version: &str,
    retry: &RetryPolicy,
    progress: &dyn Progress,
) -> Result<Option<Kinds>, ApplyError> {
    let client = client.clone();
    let av = api_version.to_string();
    let list = with_retry_opt(retry, progress, "discover", api_version, || {
        let client = client.clone();
        let av = av.clone();
        async move {
            if av.contains('/') {
                client.list_api_group_resources(&av).await
            } else {
                client.list_core_api_resources(&av).await
            }
        }
    })
    .await?;
    let kinds = list.map(|list| {
        let (group, version) = match list.group_version.split_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), list.group_version.clone()),
        };
        list.resources
            .iter()
            .filter(|r| !r.name.contains('/'))
            .map(|r| {
                (
                    r.kind.clone(),
                    Resolved {
                        resource: ApiResource {
                            group: group.clone(),
                            version: version.clone(),
                            api_version: list.group_version.clone(),
                            kind: r.kind.clone(),
                            plural: r.name.clone(),
                        },
                        namespaced: r.namespaced,
                    },
                )
            })
            .collect::<HashMap<_, _>>()
    });
    Ok(kinds)
}
