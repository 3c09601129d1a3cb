//! Retries Kubernetes API calls that failed for a passing reason (409, 429, 5xx, timeouts,
//! reset or dropped connections, and refused ones once the API has answered) with jittered
//! exponential backoff, bounded in attempts, reporting each retry as an event, then turns the
//! last failure into an error naming the object. Must not retry what cannot succeed (other
//! 4xx, TLS and DNS failures), and must not wait silently.

use std::future::Future;
use std::time::Duration;

use rand::Rng;
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
    /// 8 attempts: the waits between them add up to 12-24 s (jittered), about what K3s takes
    /// to answer again after a restart.
    fn default() -> Self {
        RetryPolicy {
            attempts: 8,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(8),
        }
    }
}

impl RetryPolicy {
    /// The default pauses with `retries` retries (so `retries + 1` attempts).
    pub fn with_retries(retries: u32) -> RetryPolicy {
        RetryPolicy {
            attempts: retries.saturating_add(1),
            ..RetryPolicy::default()
        }
    }

    /// The longest wait after failed attempt `attempt` (1-based): doubling, capped.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(31));
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }

    /// The wait after failed attempt `attempt`: a random point in the upper half of
    /// [`RetryPolicy::backoff`], so that many clients a restart failed at once do not come
    /// back at once; never shorter than the `retryAfterSeconds` a throttling server asked
    /// for (up to `max_backoff`).
    pub(crate) fn wait_after(&self, attempt: u32, err: &kube::Error) -> Duration {
        let cap = self.backoff(attempt);
        let jittered = if cap.is_zero() {
            cap
        } else {
            rand::thread_rng().gen_range(cap / 2..=cap)
        };
        let asked = match err {
            kube::Error::Api(status) => status
                .details
                .as_ref()
                .map(|d| Duration::from_secs(u64::from(d.retry_after_seconds)))
                .unwrap_or_default(),
            _ => Duration::ZERO,
        };
        jittered.max(asked.min(self.max_backoff))
    }
}

/// How a request failed on its way, when it did not get an HTTP answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// Nobody accepted the connection.
    Refused,
    /// The connection was reset or closed before the answer was complete.
    Dropped,
    /// No answer within the connect or read timeout.
    TimedOut,
    /// Anything else (TLS, DNS, a malformed answer): trying again does not help.
    Other,
}

/// What kind of transport failure `err` is, if it is one.
pub(crate) fn transport_failure(err: &kube::Error) -> Option<Transport> {
    if !matches!(err, kube::Error::HyperError(_) | kube::Error::Service(_)) {
        return None;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            match io.kind() {
                ConnectionRefused => return Some(Transport::Refused),
                ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof | NotConnected => {
                    return Some(Transport::Dropped);
                }
                TimedOut => return Some(Transport::TimedOut),
                _ => {}
            }
        }
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            if h.is_incomplete_message() || h.is_canceled() || h.is_closed() {
                return Some(Transport::Dropped);
            }
            if h.is_timeout() {
                return Some(Transport::TimedOut);
            }
        }
        if e.to_string().contains("timed out") || e.to_string().contains("deadline has elapsed") {
            return Some(Transport::TimedOut);
        }
        source = e.source();
    }
    Some(Transport::Other)
}

/// Whether a failed call may succeed when tried again. A refused connection counts: callers
/// reach here only after `GET /version` was answered (see `Cluster::ping_with`), so it is a
/// server restarting, not a wrong address.
pub(crate) fn is_transient(err: &kube::Error) -> bool {
    match err {
        kube::Error::Api(status) => {
            status.code == 409 || status.code == 429 || (500..=599).contains(&status.code)
        }
        other => matches!(
            transport_failure(other),
            Some(Transport::Refused | Transport::Dropped | Transport::TimedOut)
        ),
    }
}

/// The reason a retry event gives: the HTTP status and message, or the transport failure.
pub(crate) fn retry_reason(err: &kube::Error) -> String {
    match message_of(err) {
        (Some(c), message) => format!("HTTP {c}: {message}"),
        (None, message) => message,
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
            let plain = match transport_failure(other) {
                Some(Transport::Refused) => Some("connection refused"),
                Some(Transport::Dropped) => Some("connection reset or closed by the server"),
                Some(Transport::TimedOut) => Some("no answer in time"),
                _ => None,
            };
            if let Some(plain) = plain {
                return (None, plain.to_string());
            }
            // Each layer of the client wraps the one below and often repeats it.
            let mut parts: Vec<String> = vec![other.to_string()];
            let mut source = std::error::Error::source(other);
            while let Some(s) = source {
                let text = s.to_string();
                if !parts.iter().any(|p| p.ends_with(&text)) {
                    parts.push(text);
                }
                source = s.source();
            }
            (None, parts.join(": "))
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
                let backoff = policy.wait_after(attempt, &err);
                let reason = retry_reason(&err);
                tracing::debug!(action, object, attempt, ?backoff, %reason, "retrying a Kubernetes API call");
                progress.event(ApplyEvent::Retrying {
                    action: action.to_string(),
                    object: object.to_string(),
                    attempt,
                    backoff,
                    reason,
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
    fn backoff_doubles_up_to_the_cap_and_waits_are_jittered_below_it() {
        let p = RetryPolicy {
            attempts: 6,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
        };
        let waits: Vec<u128> = (1..=5).map(|a| p.backoff(a).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 500, 500]);
        let err = api(503);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let w = p.wait_after(3, &err);
            assert!(
                w >= Duration::from_millis(200) && w <= Duration::from_millis(400),
                "{w:?}"
            );
            seen.insert(w.as_micros());
        }
        assert!(seen.len() > 10, "waits vary: {seen:?}");
        assert_eq!(RetryPolicy::with_retries(0).attempts, 1);
        assert_eq!(RetryPolicy::default().attempts, 8);
    }

    #[test]
    fn a_throttling_server_is_given_the_time_it_asks_for() {
        let p = RetryPolicy {
            attempts: 3,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_secs(2),
        };
        let mut status = kube::core::Status {
            code: 429,
            ..Default::default()
        };
        status.details = Some(
            serde_json::from_value(serde_json::json!({"retryAfterSeconds": 1}))
                .expect("StatusDetails from JSON"),
        );
        let err = kube::Error::Api(Box::new(status));
        assert_eq!(p.wait_after(1, &err), Duration::from_secs(1));
    }

    fn api(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            ..Default::default()
        }))
    }

    #[test]
    fn only_passing_failures_are_transient() {
        for code in [409, 429, 500, 502, 503, 504] {
            assert!(is_transient(&api(code)), "{code}");
        }
        for code in [400, 401, 403, 404, 422] {
            assert!(!is_transient(&api(code)), "{code}");
        }
        let io = |kind| kube::Error::Service(Box::new(std::io::Error::new(kind, "x")));
        use std::io::ErrorKind::*;
        assert_eq!(
            transport_failure(&io(ConnectionRefused)),
            Some(Transport::Refused)
        );
        assert_eq!(
            transport_failure(&io(ConnectionReset)),
            Some(Transport::Dropped)
        );
        assert_eq!(transport_failure(&io(TimedOut)), Some(Transport::TimedOut));
        assert_eq!(transport_failure(&io(InvalidData)), Some(Transport::Other));
        assert!(is_transient(&io(ConnectionReset)) && is_transient(&io(ConnectionRefused)));
        assert!(
            !is_transient(&io(InvalidData)),
            "a TLS failure is not retried"
        );
        assert_eq!(
            retry_reason(&io(ConnectionReset)),
            "connection reset or closed by the server"
        );
    }
}
