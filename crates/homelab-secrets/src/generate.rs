//! What secrets a lab needs and how each value is made: random passwords, hex/base64 keys,
//! bcrypt htpasswd lines, argon2id password hashes, CA keys, and user-provided placeholders. Randomness comes from the OS; the
//! generated values only ever leave as `SecretString`.

use rand::Rng;
use rand::RngCore;
use rand::distributions::Uniform;
use rand::rngs::OsRng;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use base64::Engine as _;

use crate::error::{Error, Result};

/// bcrypt cost for htpasswd lines: strong enough, and Traefik checks it on every request.
pub const BCRYPT_COST: u32 = 10;
/// bcrypt only reads the first 72 bytes of a password.
pub const BCRYPT_MAX_PASSWORD_BYTES: usize = 72;

const ALPHANUMERIC: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// Symbols that survive URLs, shells, YAML and connection strings without quoting surprises.
const SAFE_SYMBOLS: &str = "-_.~+=^%!";

/// The characters a random password is drawn from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alphabet {
    /// `A-Z a-z 0-9`: safe everywhere (database URLs, env files, shells).
    Alphanumeric,
    /// Alphanumerics plus `-_.~+=^%!`.
    AlphanumericSymbols,
    /// Exactly these characters (at least 2 distinct, printable, no whitespace).
    Custom(String),
}

impl Alphabet {
    fn characters(&self) -> Vec<char> {
        let mut chars: Vec<char> = match self {
            Alphabet::Alphanumeric => ALPHANUMERIC.chars().collect(),
            Alphabet::AlphanumericSymbols => {
                ALPHANUMERIC.chars().chain(SAFE_SYMBOLS.chars()).collect()
            }
            Alphabet::Custom(s) => s.chars().collect(),
        };
        chars.sort_unstable();
        chars.dedup();
        chars
    }
}

/// How a secret's value is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Generator {
    /// A random password.
    Password {
        /// Number of characters.
        length: usize,
        /// Characters to draw from.
        alphabet: Alphabet,
    },
    /// Random bytes, hex-encoded (`2 * bytes` characters).
    HexKey {
        /// Number of random bytes.
        bytes: usize,
    },
    /// Random bytes, standard base64 with padding.
    Base64Key {
        /// Number of random bytes.
        bytes: usize,
    },
    /// An htpasswd line `user:$2y$...` (bcrypt) for the password stored in another secret;
    /// Traefik's basic-auth middleware reads it.
    BcryptHtpasswd {
        /// The user name.
        user: String,
        /// The secret holding the password (generated first when it is also required).
        password_from: String,
    },
    /// An argon2id hash in PHC form (`$argon2id$v=19$m=65536,t=3,p=4$SALT$HASH`) of the password
    /// stored in another secret, with Authelia's default parameters; its file backend reads it.
    Argon2idHash {
        /// The secret holding the password (generated first when it is also required).
        password_from: String,
    },
    /// A certificate authority's private key: ECDSA P-256, PKCS#8 PEM.
    CaKey,
    /// A self-signed CA certificate (PEM) for the key stored in another secret; rotating it
    /// rotates the key.
    CaCertificate {
        /// The subject's common name.
        common_name: String,
        /// The secret holding the key (a [`Generator::CaKey`]).
        key_from: String,
        /// How long it is valid.
        days: u32,
    },
    /// A value only the user can give (git credentials, DNS API token); stored as unset.
    UserProvided {
        /// What to set, for `homelab secrets list`.
        hint: String,
    },
}

impl Generator {
    /// A short description for listings.
    pub fn describe(&self) -> String {
        match self {
            Generator::Password { length, .. } => format!("random password ({length} characters)"),
            Generator::HexKey { bytes } => format!("random hex key ({bytes} bytes)"),
            Generator::Base64Key { bytes } => format!("random base64 key ({bytes} bytes)"),
            Generator::BcryptHtpasswd {
                user,
                password_from,
            } => {
                format!("bcrypt htpasswd line for `{user}` from `{password_from}`")
            }
            Generator::Argon2idHash { password_from } => {
                format!("argon2id hash of `{password_from}`")
            }
            Generator::UserProvided { hint } => format!("set by you: {hint}"),
            Generator::CaKey => "CA private key (ECDSA P-256)".to_owned(),
            Generator::CaCertificate { key_from, days, .. } => {
                format!("self-signed CA certificate for `{key_from}` ({days} days)")
            }
        }
    }

    /// Whether the value is made from another secret (generated after it, and again when it
    /// rotates).
    pub fn derived_from(&self) -> Option<&str> {
        match self {
            Generator::BcryptHtpasswd { password_from, .. }
            | Generator::Argon2idHash { password_from } => Some(password_from),
            Generator::CaCertificate { key_from, .. } => Some(key_from),
            _ => None,
        }
    }
}

/// A secret the lab needs: its name, how to make its value, and which components use it (to
/// re-apply after a rotation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRequirement {
    /// The secret's name in the store.
    pub name: String,
    /// How its value is made.
    pub generator: Generator,
    /// Components that read it.
    pub used_by: Vec<String>,
}

impl SecretRequirement {
    /// A random alphanumeric password.
    pub fn password(name: impl Into<String>, length: usize) -> Self {
        Self::new(
            name,
            Generator::Password {
                length,
                alphabet: Alphabet::Alphanumeric,
            },
        )
    }

    /// A random hex key of `bytes` bytes.
    pub fn hex_key(name: impl Into<String>, bytes: usize) -> Self {
        Self::new(name, Generator::HexKey { bytes })
    }

    /// A random base64 key of `bytes` bytes.
    pub fn base64_key(name: impl Into<String>, bytes: usize) -> Self {
        Self::new(name, Generator::Base64Key { bytes })
    }

    /// A bcrypt htpasswd line for `user` with the password in `password_from`.
    pub fn htpasswd(
        name: impl Into<String>,
        user: impl Into<String>,
        password_from: impl Into<String>,
    ) -> Self {
        Self::new(
            name,
            Generator::BcryptHtpasswd {
                user: user.into(),
                password_from: password_from.into(),
            },
        )
    }

    /// An argon2id hash of the password in `password_from`.
    pub fn argon2id(name: impl Into<String>, password_from: impl Into<String>) -> Self {
        Self::new(
            name,
            Generator::Argon2idHash {
                password_from: password_from.into(),
            },
        )
    }

    /// A CA private key.
    pub fn ca_key(name: impl Into<String>) -> Self {
        Self::new(name, Generator::CaKey)
    }

    /// A self-signed CA certificate for the key in `key_from`.
    pub fn ca_certificate(
        name: impl Into<String>,
        common_name: impl Into<String>,
        key_from: impl Into<String>,
        days: u32,
    ) -> Self {
        Self::new(
            name,
            Generator::CaCertificate {
                common_name: common_name.into(),
                key_from: key_from.into(),
                days,
            },
        )
    }

    /// A value the user must set.
    pub fn user_provided(name: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::new(name, Generator::UserProvided { hint: hint.into() })
    }

    /// Any generator.
    pub fn new(name: impl Into<String>, generator: Generator) -> Self {
        Self {
            name: name.into(),
            generator,
            used_by: Vec::new(),
        }
    }

    /// Adds the components that use this secret.
    pub fn used_by<I, S>(mut self, components: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.used_by.extend(components.into_iter().map(Into::into));
        self
    }
}

/// Checks a requirement list: unique, valid names; sane lengths; htpasswd sources that exist.
pub fn validate_requirements(requirements: &[SecretRequirement]) -> Result<()> {
    for (i, req) in requirements.iter().enumerate() {
        let fail = |reason: String| Error::Requirement {
            name: req.name.clone(),
            reason,
        };
        crate::store::validate_name(&req.name)?;
        if requirements[..i].iter().any(|r| r.name == req.name) {
            return Err(fail("it is listed twice".to_owned()));
        }
        match &req.generator {
            Generator::Password { length, alphabet } => {
                if !(12..=1024).contains(length) {
                    return Err(fail(format!(
                        "a password length must be between 12 and 1024, not {length}"
                    )));
                }
                let chars = alphabet.characters();
                if chars.len() < 2 || chars.iter().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(fail(
                        "the alphabet needs at least 2 distinct printable characters and no whitespace"
                            .to_owned(),
                    ));
                }
            }
            Generator::HexKey { bytes } | Generator::Base64Key { bytes } => {
                if !(16..=1024).contains(bytes) {
                    return Err(fail(format!(
                        "a key must have between 16 and 1024 random bytes, not {bytes}"
                    )));
                }
            }
            Generator::BcryptHtpasswd {
                user,
                password_from,
            } => {
                if user.is_empty() || user.contains([':', '\n', '\r']) {
                    return Err(fail(
                        "the htpasswd user must be non-empty without `:` or line breaks".to_owned(),
                    ));
                }
                if password_from == &req.name {
                    return Err(fail(
                        "an htpasswd line cannot be its own password".to_owned(),
                    ));
                }
                if let Some(source) = requirements.iter().find(|r| &r.name == password_from) {
                    match &source.generator {
                        Generator::Password { length, alphabet } => {
                            let widest = alphabet.characters().iter().map(|c| c.len_utf8()).max();
                            if length * widest.unwrap_or(1) > BCRYPT_MAX_PASSWORD_BYTES {
                                return Err(fail(format!(
                                    "bcrypt reads only {BCRYPT_MAX_PASSWORD_BYTES} bytes of a password; make `{password_from}` shorter"
                                )));
                            }
                        }
                        Generator::UserProvided { .. } => {}
                        _ => {
                            return Err(fail(format!(
                                "`{password_from}` must be a password or user-provided secret"
                            )));
                        }
                    }
                }
            }
            Generator::Argon2idHash { password_from } => {
                if password_from == &req.name {
                    return Err(fail(
                        "a password hash cannot be its own password".to_owned(),
                    ));
                }
                if let Some(source) = requirements.iter().find(|r| &r.name == password_from)
                    && !matches!(
                        source.generator,
                        Generator::Password { .. } | Generator::UserProvided { .. }
                    )
                {
                    return Err(fail(format!(
                        "`{password_from}` must be a password or user-provided secret"
                    )));
                }
            }
            Generator::CaCertificate {
                common_name,
                key_from,
                days,
            } => {
                if common_name.trim().is_empty() || common_name.chars().any(char::is_control) {
                    return Err(fail(
                        "a CA certificate needs a printable common name".to_owned(),
                    ));
                }
                if !(1..=36_500).contains(days) {
                    return Err(fail(format!(
                        "a CA certificate must be valid between 1 and 36500 days, not {days}"
                    )));
                }
                match requirements.iter().find(|r| &r.name == key_from) {
                    Some(SecretRequirement {
                        generator: Generator::CaKey,
                        ..
                    }) => {}
                    _ => {
                        return Err(fail(format!(
                            "its key `{key_from}` must be a listed CA key"
                        )));
                    }
                }
            }
            Generator::CaKey | Generator::UserProvided { .. } => {}
        }
    }
    Ok(())
}

/// Makes a fresh value for a self-contained random generator (`None` for htpasswd, CA and
/// user-provided, which the store makes).
pub(crate) fn fresh_value(generator: &Generator) -> Option<SecretString> {
    match generator {
        Generator::Password { length, alphabet } => {
            let chars = alphabet.characters();
            let pick = Uniform::new(0, chars.len());
            let value: String = (0..*length).map(|_| chars[OsRng.sample(pick)]).collect();
            Some(SecretString::from(value))
        }
        Generator::HexKey { bytes } => {
            let raw = random_bytes(*bytes);
            Some(SecretString::from(
                raw.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            ))
        }
        Generator::Base64Key { bytes } => {
            let raw = random_bytes(*bytes);
            Some(SecretString::from(
                base64::engine::general_purpose::STANDARD.encode(&raw[..]),
            ))
        }
        Generator::BcryptHtpasswd { .. }
        | Generator::Argon2idHash { .. }
        | Generator::UserProvided { .. }
        | Generator::CaKey
        | Generator::CaCertificate { .. } => None,
    }
}

fn random_bytes(n: usize) -> Zeroizing<Vec<u8>> {
    let mut raw = Zeroizing::new(vec![0u8; n]);
    OsRng.fill_bytes(&mut raw);
    raw
}

/// An htpasswd line `user:$2y$10$...` for `password`.
pub fn htpasswd_line(user: &str, password: &SecretString) -> Result<SecretString> {
    let password = password.expose_secret();
    if password.len() > BCRYPT_MAX_PASSWORD_BYTES {
        return Err(Error::Requirement {
            name: user.to_owned(),
            reason: format!("bcrypt reads only {BCRYPT_MAX_PASSWORD_BYTES} bytes of a password"),
        });
    }
    let parts =
        bcrypt::hash_with_result(password, BCRYPT_COST).map_err(|e| Error::Requirement {
            name: user.to_owned(),
            reason: format!("bcrypt failed: {e}"),
        })?;
    Ok(SecretString::from(format!(
        "{user}:{}",
        parts.format_for_version(bcrypt::Version::TwoY)
    )))
}

/// Authelia's default argon2id parameters (memory in KiB, iterations, lanes), which its
/// documentation recommends and its own `authelia crypto hash generate` uses.
pub const ARGON2_MEMORY_KIB: u32 = 65_536;
pub const ARGON2_ITERATIONS: u32 = 3;
pub const ARGON2_PARALLELISM: u32 = 4;

/// An argon2id PHC string for `password` with a fresh 16-byte salt and a 32-byte digest.
pub fn argon2id_hash(password: &SecretString) -> Result<SecretString> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let fail = |reason: String| Error::Requirement {
        name: "argon2id".to_owned(),
        reason,
    };
    let params = argon2::Params::new(
        ARGON2_MEMORY_KIB,
        ARGON2_ITERATIONS,
        ARGON2_PARALLELISM,
        Some(32),
    )
    .map_err(|e| fail(format!("argon2 parameters: {e}")))?;
    let hasher = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::encode_b64(&random_bytes(16)[..])
        .map_err(|e| fail(format!("argon2 salt: {e}")))?;
    let hash = hasher
        .hash_password(password.expose_secret().as_bytes(), &salt)
        .map_err(|e| fail(format!("argon2 failed: {e}")))?;
    Ok(SecretString::from(hash.to_string()))
}

/// Whether an argon2id PHC string accepts `password`.
pub fn verify_argon2id(hash: &SecretString, password: &SecretString) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(hash.expose_secret()).is_ok_and(|parsed| {
        argon2::Argon2::default()
            .verify_password(password.expose_secret().as_bytes(), &parsed)
            .is_ok()
    })
}

/// Whether an htpasswd line (`user:$2y$...`) accepts `password`.
pub fn verify_htpasswd(line: &SecretString, password: &SecretString) -> bool {
    line.expose_secret()
        .split_once(':')
        .is_some_and(|(_, hash)| bcrypt::verify(password.expose_secret(), hash).unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_use_the_alphabet_and_length() {
        let g = Generator::Password {
            length: 40,
            alphabet: Alphabet::Custom("ab".to_owned()),
        };
        let v = fresh_value(&g).unwrap();
        assert_eq!(v.expose_secret().len(), 40);
        assert!(v.expose_secret().chars().all(|c| c == 'a' || c == 'b'));
        let a = fresh_value(&Generator::Password {
            length: 32,
            alphabet: Alphabet::Alphanumeric,
        })
        .unwrap();
        let b = fresh_value(&Generator::Password {
            length: 32,
            alphabet: Alphabet::Alphanumeric,
        })
        .unwrap();
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert!(a.expose_secret().chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn keys_have_the_requested_size() {
        let hex = fresh_value(&Generator::HexKey { bytes: 32 }).unwrap();
        assert_eq!(hex.expose_secret().len(), 64);
        assert!(hex.expose_secret().chars().all(|c| c.is_ascii_hexdigit()));
        let b64 = fresh_value(&Generator::Base64Key { bytes: 32 }).unwrap();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64.expose_secret())
            .unwrap();
        assert_eq!(raw.len(), 32);
    }

    #[test]
    fn htpasswd_lines_verify_and_use_2y() {
        let pw = SecretString::from("correct horse".to_owned());
        let line = htpasswd_line("admin", &pw).unwrap();
        assert!(line.expose_secret().starts_with("admin:$2y$10$"));
        assert!(verify_htpasswd(&line, &pw));
        assert!(!verify_htpasswd(
            &line,
            &SecretString::from("wrong".to_owned())
        ));
    }

    #[test]
    fn argon2id_hashes_have_authelias_format_and_verify() {
        let pw = SecretString::from("correct horse".to_owned());
        let hash = argon2id_hash(&pw).unwrap();
        let text = hash.expose_secret();
        assert!(
            text.starts_with("$argon2id$v=19$m=65536,t=3,p=4$"),
            "{text}"
        );
        let parts: Vec<&str> = text.split('$').collect();
        // "", algorithm, version, parameters, salt (16 bytes), digest (32 bytes), base64 unpadded.
        assert_eq!(parts.len(), 6);
        assert_eq!(parts[4].len(), 22);
        assert_eq!(parts[5].len(), 43);
        assert!(verify_argon2id(&hash, &pw));
        assert!(!verify_argon2id(
            &hash,
            &SecretString::from("wrong".to_owned())
        ));
        assert_ne!(
            argon2id_hash(&pw).unwrap().expose_secret(),
            text,
            "a fresh salt each time"
        );
    }

    #[test]
    fn requirement_lists_are_checked() {
        let ok = [
            SecretRequirement::password("traefik-dashboard-password", 24),
            SecretRequirement::htpasswd(
                "traefik-dashboard-htpasswd",
                "admin",
                "traefik-dashboard-password",
            ),
        ];
        validate_requirements(&ok).unwrap();
        let dup = [
            SecretRequirement::password("a-secret", 24),
            SecretRequirement::hex_key("a-secret", 32),
        ];
        assert!(
            validate_requirements(&dup)
                .unwrap_err()
                .to_string()
                .contains("twice")
        );
        let short = [SecretRequirement::password("p", 4)];
        assert!(validate_requirements(&short).is_err());
        let long_for_bcrypt = [
            SecretRequirement::password("pw", 100),
            SecretRequirement::htpasswd("line", "admin", "pw"),
        ];
        assert!(
            validate_requirements(&long_for_bcrypt)
                .unwrap_err()
                .to_string()
                .contains("72")
        );
        let bad_user = [
            SecretRequirement::password("pw", 20),
            SecretRequirement::htpasswd("line", "ad:min", "pw"),
        ];
        assert!(validate_requirements(&bad_user).is_err());
        let hash_of_a_key = [
            SecretRequirement::hex_key("key", 32),
            SecretRequirement::argon2id("hash", "key"),
        ];
        assert!(
            validate_requirements(&hash_of_a_key)
                .unwrap_err()
                .to_string()
                .contains("must be a password")
        );
    }
}
