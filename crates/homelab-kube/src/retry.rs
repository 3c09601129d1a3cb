//! Retries Kubernetes API calls that failed for a passing reason (409, 429, 5xx, timeouts,
//! dropped connections) with exponential backoff, then turns the last failure into an error
//! naming the object. Must not retry what cannot succeed (4xx other than 409/429).

use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::ApplyError;
use crate::events::{ApplyEvent, Progress};

/// How often and how patiently to retry a failed API call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicy {
    /// Total attempts, the first included (at least 1).
    pub attempts: u32,
    /// Wait before the second attempt; doubles each time.
    pub initial_backoff: Duration,
    /// Upper bound of one wait.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(8),
        }
    }
}

impl RetryPolicy {
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// Whether a failed call may succeed when tried again.
pub(crate) fn is_transient(err: &kube::Error) -> bool {
    match err {
        kube::Error::Api(status) => {
            status.code == 409 || status.code == 429 || (500..=599).contains(&status.code)
        }
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// The server's message for an error, or a description of the transport failure.
pub(crate) fn message_of(err: &kube::Error) -> (Option<u16>, String) {
    match err {
        kube::Error::Api(status) => {
            let message = if status.message.is_empty() {
                status.reason.clone()
            } else {
                status.message.clone()
            };
            (Some(status.code), message)
        }
        other => {
            let mut text = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            (None, text)
        }
    }
}

pub(crate) fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == 404)
}

pub(crate) fn is_conflict(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == 409)
}

/// Runs `call` until it succeeds, fails for good, or the attempts are used up.
/// `action` and `object` name the call in events and in the final error.
pub(crate) async fn with_retry<T, F, Fut>(
    policy: &RetryPolicy,
    progress: &dyn Progress,
    action: &'static str,
    object: &str,
    call: F,
) -> Result<T, ApplyError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    with_retry_if(policy, progress, action, object, is_transient, call).await
}

/// Like [`with_retry`], with `transient` deciding which failures are tried again.
pub(crate) async fn with_retry_if<T, F, Fut>(
    policy: &RetryPolicy,
    progress: &dyn Progress,
    action: &'static str,
    object: &str,
    transient: fn(&kube::Error) -> bool,
    mut call: F,
) -> Result<T, ApplyError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let attempts = policy.attempts.max(1);
    let mut attempt = 1;
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(err) if transient(&err) && attempt < attempts => {
                let backoff = policy.backoff(attempt);
                let (code, message) = message_of(&err);
                tracing::debug!(action, object, attempt, ?backoff, ?code, %message, "retrying a Kubernetes API call");
                progress.event(ApplyEvent::Retrying {
                    action: action.to_string(),
                    object: object.to_string(),
                    attempt,
                    backoff,
                    reason: match code {
                        Some(c) => format!("HTTP {c}: {message}"),
                        None => message,
                    },
                });
                tokio::time::sleep(backoff).await;
                attempt += 1;
            }
            Err(err) => {
                let (code, message) = message_of(&err);
                return Err(ApplyError::Api {
                    action,
                    object: object.to_string(),
                    code,
                    message,
                    attempts: attempt,
                });
            }
        }
    }
}

/// Like [`with_retry`] but a 404 is an answer (`None`), not an error.
pub(crate) async fn with_retry_opt<T, F, Fut>(
    policy: &RetryPolicy,
    progress: &dyn Progress,
    action: &'static str,
    object: &str,
    mut call: F,
) -> Result<Option<T>, ApplyError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    with_retry(policy, progress, action, object, || {
        let fut = call();
        async move {
            match fut.await {
                Ok(v) => Ok(Some(v)),
                Err(e) if is_not_found(&e) => Ok(None),
                Err(e) => Err(e),
            }
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy {
            attempts: 6,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
        };
        let waits: Vec<u128> = (1..=5).map(|a| p.backoff(a).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 500, 500]);
    }

    #[test]
    fn only_passing_failures_are_transient() {
        let api = |code: u16| {
            kube::Error::Api(Box::new(kube::core::Status {
                code,
                ..Default::default()
            }))
        };
        for code in [409, 429, 500, 502, 503, 504] {
            assert!(is_transient(&api(code)), "{code}");
        }
        for code in [400, 401, 403, 404, 422] {
            assert!(!is_transient(&api(code)), "{code}");
        }
    }
}
