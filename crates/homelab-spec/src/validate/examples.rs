//! Values copied from the example lab (examples/homelab.yaml, the planning documents' lab:
//! its domain, ACME email, public ntfy topic and SSH key) that would only fail later or hand
//! the lab to someone else. Warnings with the code `example-value` that `apply`, `nodes apply`
//! and `up` turn into a refusal; no I/O. RFC 2606 names are left alone (ADR 0132).

use super::Checker;
use crate::diag::Diagnostic;
use crate::lab::Tls;
use crate::raw::RawLab;

/// The code of every finding here: what the operations look for to refuse.
pub const CODE: &str = "example-value";

/// The example lab's own domain: someone else's, so no certificate and no DNS record of it
/// can be the user's.
const SEED_DOMAIN: &str = "jetzinger.com";
/// The example lab's ntfy topic: topics on ntfy.sh are public, so alerts sent there are read
/// by whoever else copied it.
const SEED_TOPIC: &str = "jetzinger-home-lab-alerts";
/// The key material of the example's SSH key (type and base64, without the comment).
const SEED_KEY: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIKq2X0Vb0p1Xh0Zrj7J8Qm6v2V8nK9rZ3Yt1w5sS4uPq";
/// `name` is `zone` or a name under it (case-insensitive, a trailing dot ignored).
fn under(name: &str, zone: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == zone || name.ends_with(&format!(".{zone}"))
}

pub(crate) fn check(c: &mut Checker, raw: &RawLab, tls: Option<&Tls>) {
    let acme = matches!(tls, Some(Tls::Acme(_)));
    let help_init = "write your own lab with `homelab init` (it asks for the domain, email and nodes), or change the value; `apply`, `nodes apply` and `up` refuse it unless `--allow-example-values`";
    if let Some(domain) = raw.network.as_ref().and_then(|n| n.value.domain.as_ref())
        && under(&domain.value, SEED_DOMAIN)
    {
        c.diags.push(
            Diagnostic::warning(CODE, format!("`{}` is the example lab's domain, not yours: no certificate or DNS record for it can be made", domain.value))
                .at(domain.span)
                .label("the domain of examples/homelab.yaml")
                .help(format!("use a domain you own (or `lab.home.arpa` with `tls.mode: internal-ca`); {help_init}")),
        );
    }
    if acme && let Some(email) = raw.tls.as_ref().and_then(|t| t.value.acme_email.as_ref()) {
        let host = email.value.rsplit_once('@').map_or("", |(_, h)| h);
        if under(host, SEED_DOMAIN) {
            c.diags.push(
                Diagnostic::warning(CODE, format!("`{}` is the example lab's ACME email: Let's Encrypt would send your expiry warnings to someone else", email.value))
                    .at(email.span)
                    .label("the ACME email of examples/homelab.yaml")
                    .help(format!("give an address you read; {help_init}")),
            );
        }
    }
    for receiver in raw.alerting.iter().flat_map(|a| &a.value.receivers) {
        let Some(topic) = receiver
            .value
            .ntfy
            .as_ref()
            .and_then(|n| n.value.topic.as_ref())
        else {
            continue;
        };
        if topic.value == SEED_TOPIC {
            c.diags.push(
                Diagnostic::warning(CODE, format!("`{}` is the example lab's ntfy topic: ntfy.sh topics are public, so your alerts would go to whoever else uses it", topic.value))
                    .at(topic.span)
                    .label("the topic of examples/homelab.yaml")
                    .help(format!("pick a long random topic (`homelab init` makes one) and subscribe to it in the ntfy app; {help_init}")),
            );
        }
    }
    let containers = raw.services.iter().flat_map(|s| &s.value.dev_containers);
    for key in containers.flat_map(|d| &d.value.authorized_keys) {
        if key.value.split_whitespace().nth(1) == Some(SEED_KEY) {
            c.diags.push(
                Diagnostic::warning(CODE, "this SSH key is the example lab's: its owner could log in to your dev container, and you could not")
                    .at(key.span)
                    .label("the key of examples/homelab.yaml")
                    .help(format!("put your own public key here (`cat ~/.ssh/id_ed25519.pub`); {help_init}")),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::templates::{MINIMAL, SEED};

    fn found(text: &str) -> Vec<(String, usize, usize)> {
        let loaded =
            crate::load_str("homelab.yaml", text).unwrap_or_else(|e| panic!("{}", e.render()));
        loaded
            .example_values()
            .iter()
            .map(|d| {
                let p = loaded.source.position(d.span.unwrap().start);
                (d.message.clone(), p.line, p.column)
            })
            .collect()
    }

    #[test]
    fn the_example_labs_domain_email_topic_and_key_are_each_found_where_they_are() {
        let found = found(SEED);
        let at: Vec<(usize, usize)> = found.iter().map(|f| (f.1, f.2)).collect();
        assert_eq!(at, [(16, 11), (66, 14), (83, 16), (128, 11)], "{found:?}");
        assert!(
            found[0]
                .0
                .contains("`home.jetzinger.com` is the example lab's domain")
        );
        assert!(
            found[1]
                .0
                .contains("`tom@jetzinger.com` is the example lab's ACME email")
        );
        assert!(found[2].0.contains("ntfy.sh topics are public"));
        assert!(found[3].0.contains("SSH key is the example lab's"));
        let loaded = crate::load_str("homelab.yaml", SEED).unwrap();
        assert!(
            loaded.example_values().iter().all(|d| !d.is_error()),
            "warnings, not errors"
        );
    }

    #[test]
    fn a_lab_of_its_own_and_rfc_2606_names_are_not_example_values() {
        assert_eq!(found(MINIMAL), []);
        let own = SEED
            .replace("home.jetzinger.com", "home.notjetzinger.com")
            .replace("tom@jetzinger.com", "tom@jetzinger.community")
            .replace(
                "jetzinger-home-lab-alerts",
                "jetzinger-home-lab-alerts-x8k2",
            )
            .replace(
                "AAAAIKq2X0Vb0p1Xh0Zrj7J8Qm6v2V8nK9rZ3Yt1w5sS4uPq",
                "AAAAIJm2mYq0000000000000000000000000000000000000",
            );
        assert_eq!(found(&own), []);
        // Under the example's domain is still the example's.
        let sub = SEED.replace("domain: home.jetzinger.com", "domain: lab.jetzinger.com");
        assert_eq!(found(&sub).len(), 4);
    }

    #[test]
    fn the_example_email_is_found_in_a_lab_of_its_own() {
        let internal =
            MINIMAL.replace("acmeEmail: you@example.com", "acmeEmail: tom@jetzinger.com");
        assert_eq!(found(&internal).len(), 1, "{internal}");
    }
}
