//! `homelab dns plan|apply` as library calls: the records the lab wants (from the plan's hosts
//! and the ingress address), the provider's client logged in with the secret from the secrets
//! file, the live plan with homelab's records marked, applying it and keeping the note of
//! homelab's records (`.homelab/dns.json`) for providers whose records carry no mark.
//! Never prints; the credential never reaches an error.

use std::path::{Path, PathBuf};

use homelab_dns::records::{self, Record};
use homelab_dns::{ApplyError, Change, Client, DnsError, Note};
use homelab_plan::Plan;
use homelab_render::SecretValues;
use homelab_spec::lab::{DnsProvider, Lab};
use secrecy::ExposeSecret as _;
use serde::Serialize;

use crate::secrets::lab_dir;

/// The note's file name in the directory beside the spec.
pub const NOTE_FILE: &str = "dns.json";

#[derive(Debug, thiserror::Error)]
pub enum DnsOpError {
    #[error("the secret `{name}` (network.dns) cannot be read: {reason}")]
    Secret { name: String, reason: String },
    #[error(transparent)]
    Provider(#[from] DnsError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error("{} is not a note homelab wrote ({reason}); move it away only if you know no record at the provider is homelab's", .path.display())]
    BadNote { path: PathBuf, reason: String },
    #[error("cannot write {}: {reason}; the records were changed, so a next run sees them as not homelab's until it can write the note", .path.display())]
    NoteWrite { path: PathBuf, reason: String },
}

/// Where the note of the spec `spec` lives.
pub fn note_path(spec: &Path) -> PathBuf {
    lab_dir(spec)
        .join(homelab_spec::templates::JOURNAL_DIR)
        .join(NOTE_FILE)
}

/// The full host names the lab serves, each once, in name order.
pub fn hosts(plan: &Plan) -> Vec<String> {
    let mut h: Vec<String> = plan.urls().map(|e| e.host.to_ascii_lowercase()).collect();
    h.sort();
    h.dedup();
    h
}

/// The records the spec wants, whichever provider holds them.
pub fn wanted(lab: &Lab, plan: &Plan) -> Vec<Record> {
    let n = &lab.network;
    records::desired(
        n.dns_provider,
        n.dns.records,
        &n.domain,
        &hosts(plan),
        n.ingress_ip,
    )
}

/// The provider's client, or `None` when the spec gives no API (`manual`, or a provider
/// named alone). `base` replaces a hosted API's address (`HOMELAB_DNS_API` in the CLI).
pub fn connect(
    lab: &Lab,
    secrets: &dyn SecretValues,
    base: Option<&str>,
) -> Result<Option<Client>, DnsOpError> {
    let Some(api) = &lab.network.dns.api else {
        return Ok(None);
    };
    let name = api.secret().name();
    let value = secrets.secret(name).map_err(|reason| DnsOpError::Secret {
        name: name.to_string(),
        reason,
    })?;
    Ok(Some(Client::new(
        api,
        value.expose_secret().to_string(),
        &lab.name,
        base,
    )?))
}

/// What `dns plan` shows: where, what is wanted, and the comparison when there is an API.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DnsPlan {
    pub provider: String,
    /// The server, profile or zone; `None` without an API.
    pub target: Option<String>,
    pub records: Vec<Record>,
    /// The records as zone-file lines (for `manual`, and to check by hand).
    pub zone_lines: Vec<String>,
    /// The comparison with what the provider has; `None` without an API.
    pub live: Option<records::Plan>,
}

fn provider_label(p: DnsProvider) -> &'static str {
    match p {
        DnsProvider::Pihole => "Pi-hole",
        DnsProvider::Adguard => "AdGuard Home",
        DnsProvider::Nextdns => "NextDNS",
        DnsProvider::Cloudflare => "Cloudflare",
        DnsProvider::Manual => "manual",
    }
}

/// The note beside `spec`, if one is there.
pub fn read_note(spec: &Path) -> Result<Option<Note>, DnsOpError> {
    let path = note_path(spec);
    match std::fs::read_to_string(&path) {
        Ok(t) => serde_json::from_str(&t)
            .map(Some)
            .map_err(|e| DnsOpError::BadNote {
                path,
                reason: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(DnsOpError::BadNote {
            path,
            reason: e.to_string(),
        }),
    }
}

/// The plan: without a client only the wanted records; with one, compared with the provider's.
pub async fn plan(
    lab: &Lab,
    plan: &Plan,
    client: Option<&Client>,
    spec: &Path,
) -> Result<DnsPlan, DnsOpError> {
    let want = wanted(lab, plan);
    let mut out = DnsPlan {
        provider: provider_label(lab.network.dns_provider).to_string(),
        target: client.map(Client::target),
        zone_lines: records::zone_lines(&want),
        records: want.clone(),
        live: None,
    };
    let Some(c) = client else {
        return Ok(out);
    };
    let note = read_note(spec)?;
    let mut existing = c.list().await?;
    homelab_dns::mark_owned(c, &mut existing, note.as_ref());
    out.live = Some(records::plan(&want, &hosts(plan), &existing));
    Ok(out)
}

/// What `dns apply` did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DnsReport {
    pub done: Vec<Change>,
    /// The note written, when the provider keeps no mark of its own.
    pub note: Option<PathBuf>,
}

/// Makes the live plan true and records homelab's records in the note.
pub async fn apply(client: &Client, p: &DnsPlan, spec: &Path) -> Result<DnsReport, DnsOpError> {
    let Some(live) = &p.live else {
        return Ok(DnsReport {
            done: Vec::new(),
            note: None,
        });
    };
    let result = homelab_dns::apply(client, live).await;
    client.close().await;
    let mut note = None;
    // Written after a failure part way too: the records made before it are homelab's. A
    // wanted record that was not made yet is only ever marked once it exists as written.
    let ran = !matches!(result, Err(ApplyError::Conflicts { .. }));
    if ran && !client.marks_records() {
        let path = note_path(spec);
        write_note(&path, &homelab_dns::note_after(client, live))?;
        note = Some(path);
    }
    let done = result?;
    Ok(DnsReport { done, note })
}

fn write_note(path: &Path, note: &Note) -> Result<(), DnsOpError> {
    let fail = |e: std::io::Error| DnsOpError::NoteWrite {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(fail)?;
    let tmp = dir.join(format!(".{NOTE_FILE}.{}.tmp", std::process::id()));
    let text = serde_json::to_string_pretty(note).expect("the note serializes");
    std::fs::write(&tmp, format!("{text}\n")).map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        fail(e)
    })
}
