//! Canary values for tests: recognisable random secret values, a store holding them, and
//! checks that a text, file or directory tree contains none of them (plain or base64). Its
//! reports name the canary and the place, never the value.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rand::Rng;
use rand::distributions::Alphanumeric;
use rand::rngs::OsRng;
use secrecy::SecretString;

use crate::error::Result;
use crate::generate::{Generator, SecretRequirement, argon2id_hash, htpasswd_line};
use crate::identity::Recipient;
use crate::redact::{Encoding, KnownSecrets, Matcher};
use crate::store::SecretsStore;

/// Where a canary value was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanaryLeak {
    /// The text's label or the file's path.
    pub place: String,
    /// 1-based line.
    pub line: usize,
    /// The canary's name.
    pub secret: String,
    /// How it appeared.
    pub encoding: Encoding,
}

impl fmt::Display for CanaryLeak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: canary `{}` ({})",
            self.place, self.line, self.secret, self.encoding
        )
    }
}

/// A set of canary values.
#[derive(Debug, Clone)]
pub struct Canaries {
    known: KnownSecrets,
}

fn canary_value(name: &str) -> String {
    let tag: String = name
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(12)
        .collect();
    let random: String = (0..24)
        .map(|_| char::from(OsRng.sample(Alphanumeric)))
        .collect();
    format!("Canary{tag}{random}")
}

impl Canaries {
    /// One fresh canary value per name (`Canary<name><24 random alphanumerics>`).
    pub fn generate(names: &[&str]) -> Self {
        let mut known = KnownSecrets::new();
        for name in names {
            known.insert(name, SecretString::from(canary_value(name)));
        }
        Self { known }
    }

    /// Canaries for a requirement list; htpasswd entries get a line for their canary password.
    pub fn for_requirements(requirements: &[SecretRequirement]) -> Result<Self> {
        let mut known = KnownSecrets::new();
        for req in requirements {
            if !matches!(
                req.generator,
                Generator::BcryptHtpasswd { .. } | Generator::Argon2idHash { .. }
            ) {
                known.insert(&req.name, SecretString::from(canary_value(&req.name)));
            }
        }
        for req in requirements {
            if let Generator::BcryptHtpasswd {
                user,
                password_from,
            } = &req.generator
            {
                let password = known
                    .get(password_from)
                    .cloned()
                    .unwrap_or_else(|| SecretString::from(canary_value(password_from)));
                known.insert(&req.name, htpasswd_line(user, &password)?);
            }
            if let Generator::Argon2idHash { password_from } = &req.generator {
                let password = known
                    .get(password_from)
                    .cloned()
                    .unwrap_or_else(|| SecretString::from(canary_value(password_from)));
                known.insert(&req.name, argon2id_hash(&password)?);
            }
        }
        Ok(Self { known })
    }

    /// The values, for a redactor or a scan.
    pub fn known(&self) -> &KnownSecrets {
        &self.known
    }

    /// The canary for `name`.
    pub fn value(&self, name: &str) -> Option<&SecretString> {
        self.known.get(name)
    }

    /// Writes a secrets store holding every canary (mode 0600), for runs that must not leak.
    pub fn write_store(&self, path: &Path, recipients: &[Recipient]) -> Result<()> {
        let mut store = SecretsStore::create(path, recipients)?;
        for name in self.known.names() {
            let value = self.known.get(name).expect("listed name").clone();
            store.set(name, value)?;
        }
        store.save()
    }

    /// Every canary occurrence in a text.
    pub fn check_text(&self, label: &str, text: &str) -> Vec<CanaryLeak> {
        self.check_bytes(label, text.as_bytes())
    }

    /// Every canary occurrence in a file.
    pub fn check_file(&self, path: &Path) -> io::Result<Vec<CanaryLeak>> {
        let bytes = fs::read(path)?;
        Ok(self.check_bytes(&path.display().to_string(), &bytes))
    }

    /// Every canary occurrence in the files under `dir` (recursively, symlinks not followed).
    pub fn check_dir(&self, dir: &Path) -> io::Result<Vec<CanaryLeak>> {
        let mut leaks = Vec::new();
        let mut stack: Vec<PathBuf> = vec![dir.to_owned()];
        while let Some(d) = stack.pop() {
            let mut entries: Vec<_> = fs::read_dir(&d)?.collect::<io::Result<_>>()?;
            entries.sort_by_key(|e| e.path());
            for entry in entries {
                let ty = entry.file_type()?;
                if ty.is_dir() {
                    stack.push(entry.path());
                } else if ty.is_file() {
                    leaks.extend(self.check_file(&entry.path())?);
                }
            }
        }
        Ok(leaks)
    }

    /// Panics, naming each leak (never the value), when `text` contains a canary.
    pub fn assert_absent(&self, label: &str, text: &str) {
        let leaks = self.check_text(label, text);
        assert!(
            leaks.is_empty(),
            "canary values leaked:\n{}",
            render(&leaks)
        );
    }

    fn check_bytes(&self, place: &str, bytes: &[u8]) -> Vec<CanaryLeak> {
        let matcher = Matcher::new(&self.known, 1);
        matcher
            .find_all(bytes)
            .into_iter()
            .map(|m| CanaryLeak {
                place: place.to_owned(),
                line: 1 + bytes[..m.start].iter().filter(|b| **b == b'\n').count(),
                secret: m.name,
                encoding: m.encoding,
            })
            .collect()
    }
}

fn render(leaks: &[CanaryLeak]) -> String {
    leaks.iter().map(|l| format!("  {l}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use secrecy::ExposeSecret;

    #[test]
    fn finds_plain_and_base64_canaries_with_lines() {
        let c = Canaries::generate(&["k3s-token", "grafana-admin"]);
        let token = c.value("k3s-token").unwrap().expose_secret().to_owned();
        let b64 = base64::engine::general_purpose::STANDARD
            .encode(c.value("grafana-admin").unwrap().expose_secret());
        let text = format!("ok\ntoken: {token}\ndata: {b64}\n");
        let leaks = c.check_text("out.yaml", &text);
        assert_eq!(leaks.len(), 2);
        assert_eq!(leaks[0].line, 2);
        assert_eq!(leaks[0].secret, "k3s-token");
        assert_eq!(leaks[1].encoding, Encoding::Base64);
        assert!(!leaks[0].to_string().contains(&token));
        assert!(c.check_text("clean", "nothing here").is_empty());
    }

    #[test]
    fn checks_directories_recursively() {
        let c = Canaries::generate(&["n8n-key"]);
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("a/b")).unwrap();
        fs::write(dir.path().join("a/clean.txt"), "nothing").unwrap();
        fs::write(
            dir.path().join("a/b/leak.env"),
            format!("X=1\nKEY={}\n", c.value("n8n-key").unwrap().expose_secret()),
        )
        .unwrap();
        let leaks = c.check_dir(dir.path()).unwrap();
        assert_eq!(leaks.len(), 1);
        assert!(leaks[0].place.ends_with("leak.env"));
        assert_eq!(leaks[0].line, 2);
    }

    #[test]
    #[should_panic(expected = "canary `k` (plain)")]
    fn assert_absent_panics_with_the_name_only() {
        let c = Canaries::generate(&["k"]);
        let v = c.value("k").unwrap().expose_secret().to_owned();
        c.assert_absent("log", &format!("leaked {v}"));
    }
}
