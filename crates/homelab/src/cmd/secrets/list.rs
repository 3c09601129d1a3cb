//! `homelab secrets list`: every secret of the lab with where it is used and whether it is
//! set, read without the key; it never decrypts, so it cannot show a value.

use std::fmt::Write as _;

use homelab_secrets::{SecretListing, store};
use serde_json::json;

use super::{count, lab_requirements};
use crate::cli::Global;
use crate::cmd::shared::secrets::{LabFiles, fail};
use crate::exit;
use crate::output::Output;

/// How a secret stands: in the file with a value, in the file waiting for one, or not there.
fn state(s: &SecretListing) -> &'static str {
    match (s.stored, s.set) {
        (false, _) => "missing",
        (true, true) => "set",
        (true, false) => "set me",
    }
}

pub fn run(global: &Global, lab: &LabFiles, out: &Output) -> anyhow::Result<u8> {
    let requirements = lab_requirements(global, out)?;
    let exists = lab.store.exists();
    let statuses = if exists {
        out.detail(format!(
            "reading names from {} without decrypting",
            lab.store.display()
        ));
        store::peek_names(&lab.store).map_err(fail)?
    } else {
        out.warn(format!(
            "{} does not exist; create it with `homelab secrets init`",
            lab.store.display()
        ));
        Vec::new()
    };
    let listing = store::listing(&statuses, &requirements);
    let file = lab.store.display().to_string();
    out.answer(
        || text(&listing, &file),
        &json!({
            "file": file,
            "exists": exists,
            "secrets": listing.iter().map(|s| json!({
                "name": s.name,
                "state": state(s),
                "set": s.set,
                "stored": s.stored,
                "usedBy": s.used_by,
                "source": s.source,
            })).collect::<Vec<_>>(),
        }),
    );
    Ok(exit::OK)
}

fn text(listing: &[SecretListing], file: &str) -> String {
    let name_width = listing
        .iter()
        .map(|s| s.name.len())
        .chain([4])
        .max()
        .unwrap_or(4);
    let used_by = |s: &SecretListing| {
        if s.used_by.is_empty() {
            "(not used by the lab)".to_string()
        } else {
            s.used_by.join(", ")
        }
    };
    let used_width = listing
        .iter()
        .map(|s| used_by(s).len())
        .chain([7])
        .max()
        .unwrap_or(7);
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{:<name_width$}  {:<7}  {:<used_width$}  HOW IT IS MADE",
        "NAME", "STATE", "USED BY"
    );
    for s in listing {
        let _ = writeln!(
            t,
            "{:<name_width$}  {:<7}  {:<used_width$}  {}",
            s.name,
            state(s),
            used_by(s),
            s.source.as_deref().unwrap_or("-")
        );
    }
    let of = |st: &str| listing.iter().filter(|s| state(s) == st).count();
    let (set, unset, missing) = (of("set"), of("set me"), of("missing"));
    let _ = write!(
        t,
        "\n{} in {file}: {set} set, {unset} to set, {missing} missing",
        count(listing.len(), "secret")
    );
    if missing > 0 {
        let _ = write!(t, "\nnext: `homelab secrets init` adds the missing ones");
    }
    if unset > 0 {
        let _ = write!(
            t,
            "\nnext: `homelab secrets set NAME` for each secret marked \"set me\""
        );
    }
    t
}
