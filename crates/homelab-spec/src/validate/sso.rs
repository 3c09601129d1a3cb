//! `auth.sso` read into an `Sso`: the portal's users (login names, e-mail addresses, groups)
//! checked and defaulted; no I/O. Which services it guards is the plan's business.

use std::collections::HashMap;

use super::Checker;
use crate::de::Spanned;
use crate::diag::{Diagnostic, Span};
use crate::lab::{Auth, Sso, SsoUser};
use crate::raw::{RawAuth, RawSso, RawSsoUser};

/// The portal's host label when `host` is not given.
pub const DEFAULT_HOST: &str = "auth";

pub(super) fn auth(c: &mut Checker, a: Option<&Spanned<RawAuth>>, domain: Option<&str>) -> Auth {
    Auth {
        sso: a
            .and_then(|a| a.sso.as_ref())
            .and_then(|s| sso(c, s, domain.unwrap_or("example.com"))),
    }
}

fn sso(c: &mut Checker, s: &Spanned<RawSso>, domain: &str) -> Option<Sso> {
    c.require(
        &s.provider,
        s.span,
        "provider",
        "which login portal runs",
        "add `provider: authelia`",
    );
    if s.users.is_empty() {
        c.error(
            Diagnostic::error("sso-no-users", "single sign-on without users locks everyone out")
                .at(Span::point(s.span.start))
                .scope(s.span)
                .help("add `users: [{name: alice}]`; the password is generated into the secrets file by `homelab secrets init`"),
        );
    }
    let mut seen: HashMap<String, Span> = HashMap::new();
    let mut users = Vec::new();
    for u in &s.users {
        if let Some(user) = user(c, u, domain) {
            let span = u.name.as_ref().map_or(u.span, |n| n.span);
            if let Some(first) = seen.insert(user.name.clone(), span) {
                c.error(
                    Diagnostic::error(
                        "sso-duplicate-user",
                        format!("two users are named `{}`", user.name),
                    )
                    .at(span)
                    .related(first, "first listed here")
                    .help("list each person once; give another person another login name"),
                );
                continue;
            }
            users.push(user);
        }
    }
    Some(Sso {
        host: s
            .host
            .as_ref()
            .map_or_else(|| DEFAULT_HOST.to_string(), |h| h.value.clone()),
        totp: s.totp.as_ref().is_some_and(|t| t.value),
        users,
    })
}

fn user(c: &mut Checker, u: &Spanned<RawSsoUser>, domain: &str) -> Option<SsoUser> {
    let name = c.require(
        &u.name,
        u.span,
        "name",
        "the user's login name",
        "add `name: alice`",
    )?;
    if !is_login_name(&name.value) {
        c.error(
            Diagnostic::error(
                "sso-user-name",
                format!("`{}` is not a login name", name.value),
            )
            .at(name.span)
            .help("use 1 to 64 lowercase letters, digits, `-`, `_` and `.`, starting with a letter, e.g. `alice` (it also names the user's password secret)"),
        );
        return None;
    }
    let display_name = match &u.display_name {
        Some(d) if d.value.trim().is_empty() || d.value.chars().any(char::is_control) => {
            c.error(
                Diagnostic::error("sso-display-name", "the display name is empty or has control characters")
                    .at(d.span)
                    .help("write the name the portal greets with, e.g. `displayName: Alice Smith`, or remove it to use the login name"),
            );
            name.value.clone()
        }
        Some(d) => d.value.trim().to_string(),
        None => name.value.clone(),
    };
    let email = match &u.email {
        Some(e) if !is_email(&e.value) => {
            c.error(
                Diagnostic::error("sso-email", format!("`{}` is not an e-mail address", e.value))
                    .at(e.span)
                    .help("write `local@domain`, e.g. `alice@example.com`, or remove it to use NAME@<the lab's domain>"),
            );
            String::new()
        }
        Some(e) => e.value.clone(),
        None => format!("{}@{domain}", name.value),
    };
    let mut groups = Vec::new();
    for g in &u.groups {
        if g.value.is_empty()
            || !g
                .value
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.'))
        {
            c.error(
                Diagnostic::error("sso-group", format!("`{}` is not a group name", g.value))
                    .at(g.span)
                    .help("use letters, digits, `-`, `_` and `.`, e.g. `admins`"),
            );
        } else if !groups.contains(&g.value) {
            groups.push(g.value.clone());
        }
    }
    Some(SsoUser {
        name: name.value.clone(),
        display_name,
        email,
        groups,
    })
}

/// A login name that is also safe in a secret's name and a YAML key without quoting.
fn is_login_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.starts_with(|ch: char| ch.is_ascii_lowercase())
        && s.chars().all(|ch| {
            ch.is_ascii_lowercase() || ch.is_ascii_digit() || matches!(ch, '-' | '_' | '.')
        })
}

fn is_email(s: &str) -> bool {
    let Some((local, host)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !host.is_empty()
        && !host.contains('@')
        && !host.starts_with('.')
        && !host.ends_with('.')
        && !s.chars().any(|ch| ch.is_whitespace() || ch.is_control())
}
