//! `services.openWebui` read into an `OpenWebui`: the admin account checked, and the rule that
//! it needs a model server of the lab (Ollama or vLLM) to talk to; no I/O.

use super::Checker;
use crate::de::Spanned;
use crate::diag::{Diagnostic, Span};
use crate::lab::{OpenWebui, Services};
use crate::raw::RawOpenWebui;

pub(super) fn open_webui(c: &mut Checker, o: &Spanned<RawOpenWebui>) -> OpenWebui {
    if let Some(a) = &o.auth {
        c.error(
            Diagnostic::error(
                "open-webui-auth",
                "Open WebUI cannot sit behind the lab's basic auth",
            )
            .at(a.span)
            .label("its own login is the only one")
            .help("remove `auth`: Open WebUI's pages call its API with `Authorization: Bearer`, which a basic-auth check in front answers with 401; it has its own login, with sign-up off and the admin account from the secrets file"),
        );
    }
    let admin_email = o.admin_email.as_ref().map(|e| {
        if !is_email(&e.value) {
            c.error(
                Diagnostic::error(
                    "invalid-admin-email",
                    format!("`{}` is not an e-mail address", e.value),
                )
                .at(e.span)
                .help("Open WebUI logs in with an e-mail address: write one such as `admin@example.com`, or leave `adminEmail` out for `admin@<domain>`"),
            );
        }
        e.value.clone()
    });
    OpenWebui {
        admin_email,
        admin_password: c.secret(&o.admin_password, "open-webui-admin-password"),
        storage: c.quantity(&o.storage, "5Gi"),
        host: o
            .host
            .as_ref()
            .map_or_else(|| "chat".into(), |h| h.value.clone()),
    }
}

/// Open WebUI talks to the lab's Ollama and vLLM only; without either it has no model.
pub(super) fn needs_a_model_server(c: &mut Checker, services: &Services, span: Span) {
    if services.open_webui.is_none() || services.ollama.is_some() || services.vllm.is_some() {
        return;
    }
    c.error(
        Diagnostic::error(
            "open-webui-without-models",
            "Open WebUI is on, but the lab serves no model for it: neither `services.ollama` nor `services.vllm` is on",
        )
        .at(span)
        .help("add `ollama: {models: [llama3.2:3b]}` (CPU or GPU) or `vllm: {model: OWNER/NAME}` (GPU) under `services`, or remove `services.openWebui`"),
    );
}

/// One `@` between a non-empty local part and a domain with a dot, no spaces: what Open
/// WebUI's sign-in form accepts.
fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(|ch| ch.is_whitespace() || ch.is_control())
}

#[cfg(test)]
mod tests {
    use super::is_email;

    #[test]
    fn e_mail_addresses_as_the_login_takes_them() {
        for ok in ["admin@example.com", "a.b+c@home.arpa"] {
            assert!(is_email(ok), "{ok}");
        }
        for bad in [
            "",
            "admin",
            "@example.com",
            "admin@",
            "admin@localhost",
            "a@b@c.d",
            "a b@c.d",
            "a@.c",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
    }
}
