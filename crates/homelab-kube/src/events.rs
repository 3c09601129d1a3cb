//! Progress of an apply as events for the caller to show; the library itself never prints.
//! Events name objects and conditions, never object content.

use std::time::Duration;

use serde::Serialize;

use crate::model::ObjectRef;

/// What server-side apply did to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectOutcome {
    /// The object did not exist and was created (or would be, in a dry run).
    Created,
    /// The object existed and changed (or would change).
    Configured,
    /// Applying changed nothing.
    Unchanged,
}

impl ObjectOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectOutcome::Created => "created",
            ObjectOutcome::Configured => "configured",
            ObjectOutcome::Unchanged => "unchanged",
        }
    }
}

/// One step of `apply`, in the order it happens.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(
    tag = "event",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum ApplyEvent {
    /// The ApplySet parent was updated to cover the plan (before any member is applied).
    ApplySetUpdated {
        id: String,
        group_kinds: Vec<String>,
        namespaces: Vec<String>,
    },
    /// A unit starts; `objects` is how many manifests it holds.
    UnitStarted { unit: String, objects: usize },
    /// One object was applied.
    ObjectApplied {
        unit: String,
        object: ObjectRef,
        outcome: ObjectOutcome,
    },
    /// A request failed and will be tried again after `backoff`.
    Retrying {
        action: String,
        object: String,
        attempt: u32,
        backoff: Duration,
        reason: String,
    },
    /// The unit waits for something before the next step.
    Waiting { unit: String, what: String },
    /// A wait finished.
    WaitDone { unit: String, what: String },
    /// A wait was not done because this is a dry run.
    WaitSkipped { unit: String, what: String },
    /// The unit is applied and its waits passed; `changed` is false when every object was
    /// unchanged.
    UnitReady { unit: String, changed: bool },
    /// The unit failed; the apply stops here.
    UnitFailed { unit: String, error: String },
    /// A member of the ApplySet that the plan no longer has was deleted (or would be).
    Pruned { object: ObjectRef },
    /// A member that would be pruned was kept, and why.
    PruneSkipped { object: ObjectRef, reason: String },
}

/// Receives progress events. Implemented for closures and for tokio channel senders.
pub trait Progress: Send + Sync {
    fn event(&self, event: ApplyEvent);
}

impl<F> Progress for F
where
    F: Fn(ApplyEvent) + Send + Sync,
{
    fn event(&self, event: ApplyEvent) {
        self(event)
    }
}

impl Progress for tokio::sync::mpsc::UnboundedSender<ApplyEvent> {
    fn event(&self, event: ApplyEvent) {
        // A caller that stopped listening does not stop the apply.
        let _ = self.send(event);
    }
}

/// Discards every event.
pub(crate) struct NoProgress;

impl Progress for NoProgress {
    fn event(&self, _event: ApplyEvent) {}
}
