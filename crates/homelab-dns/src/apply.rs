//! Carrying out a DNS plan through a provider's client, and the lab's note of the records it
//! made where the provider keeps no mark of its own. A plan with a conflict is refused before
//! the first call, so a refused run changes nothing. Where the note is stored is the caller's.

use serde::{Deserialize, Serialize};

use crate::api::{Client, DnsError};
use crate::records::{Change, Conflict, Existing, Plan, Record};

/// What the lab made at one provider: kept beside the spec for providers whose records carry
/// no comment (Pi-hole, AdGuard Home, NextDNS).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Note {
    pub provider: String,
    /// The server, profile or zone; a note for another one says nothing about this one.
    pub target: String,
    pub records: Vec<Record>,
}

/// Marks as homelab's the listed records the note holds for this provider and target.
///
/// At Pi-hole a line is homelab's only as homelab writes it (`IP NAME`, one name), so that a
/// line someone extended with names of their own is never removed.
pub fn mark_owned(client: &Client, existing: &mut [Existing], note: Option<&Note>) {
    if client.marks_records() {
        return;
    }
    let Some(note) =
        note.filter(|n| n.provider == client.provider() && n.target == client.target())
    else {
        return;
    };
    for e in existing.iter_mut() {
        e.owned = note.records.iter().any(|r| {
            e.kind == "A"
                && e.name.eq_ignore_ascii_case(&r.name)
                && e.answer == r.address.to_string()
                && (!matches!(client, Client::Pihole(_)) || e.id == crate::pihole::line(r))
        });
    }
}

/// The note after a run that made `plan` true.
pub fn note_after(client: &Client, plan: &Plan) -> Note {
    Note {
        provider: client.provider().to_string(),
        target: client.target().to_string(),
        records: plan.owned_after(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{}", conflicts_text(.provider, .conflicts))]
    Conflicts {
        provider: &'static str,
        conflicts: Vec<Conflict>,
    },
    #[error("{error}{}", done_text(.done))]
    Failed { error: DnsError, done: Vec<Change> },
}

fn conflicts_text(provider: &str, conflicts: &[Conflict]) -> String {
    let mut s = format!(
        "{provider}: {} record{} in the way that homelab did not make, so nothing was changed:",
        conflicts.len(),
        if conflicts.len() == 1 { " is" } else { "s are" }
    );
    for c in conflicts {
        s.push_str(&format!("\n  - {} (homelab wants {})", c.reason, c.wanted));
    }
    s.push_str(&format!(
        "\nhomelab never changes or removes a record it did not make. Remove or correct these at {provider} yourself (or point the lab elsewhere), then run `homelab dns apply` again; see docs/runbooks/dns-record-conflict.md"
    ));
    s
}

fn done_text(done: &[Change]) -> String {
    if done.is_empty() {
        "; nothing was changed".into()
    } else {
        format!(
            "; {} change{} made before it stay; run `homelab dns apply` again to finish",
            done.len(),
            if done.len() == 1 { " was" } else { "s were" }
        )
    }
}

/// Makes each change of the plan, in order; refuses a plan with conflicts without a call.
pub async fn apply(client: &Client, plan: &Plan) -> Result<Vec<Change>, ApplyError> {
    if !plan.conflicts.is_empty() {
        return Err(ApplyError::Conflicts {
            provider: client.provider(),
            conflicts: plan.conflicts.clone(),
        });
    }
    let mut done = Vec::new();
    for c in &plan.changes {
        let r = match c {
            Change::Create { record } => client.create(record).await,
            Change::Update { existing, record } => client.update(existing, record).await,
            Change::Delete { existing } => client.delete(existing).await,
        };
        if let Err(error) = r {
            return Err(ApplyError::Failed { error, done });
        }
        done.push(c.clone());
    }
    Ok(done)
}
