//! The dashboard's one credential: a token read from a file, asked as HTTP Basic (any user
//! name, the token as password, so a browser prompts for it) or as a Bearer token. Must not
//! print, log or `Debug` the token.

use std::path::Path;

use base64::Engine;

/// A token every request must carry when the dashboard listens beyond loopback.
#[derive(Clone)]
pub struct AuthToken(String);

impl std::fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthToken(<redacted>)")
    }
}

/// Shorter tokens are refused: a guessable token on a LAN-facing port is no auth at all.
pub const MIN_TOKEN_LEN: usize = 16;

impl AuthToken {
    /// The token in `path` (its first line, surrounding whitespace dropped).
    pub fn from_file(path: &Path) -> Result<AuthToken, String> {
        let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
        let token = text.lines().next().unwrap_or_default().trim().to_string();
        if token.len() < MIN_TOKEN_LEN {
            return Err(format!(
                "the token is {} characters long, at least {MIN_TOKEN_LEN} are needed",
                token.len()
            ));
        }
        Ok(AuthToken(token))
    }

    /// Whether an `Authorization` header value carries this token.
    pub(crate) fn accepts(&self, header: Option<&str>) -> bool {
        let Some(header) = header else {
            return false;
        };
        let given = if let Some(b) = header.strip_prefix("Bearer ") {
            b.trim().as_bytes().to_vec()
        } else if let Some(b) = header.strip_prefix("Basic ") {
            let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(b.trim()) else {
                return false;
            };
            match decoded.iter().position(|&c| c == b':') {
                Some(i) => decoded[i + 1..].to_vec(),
                None => return false,
            }
        } else {
            return false;
        };
        constant_time_eq(&given, self.0.as_bytes())
    }
}

/// Compares without stopping at the first difference, so that timing does not tell how much
/// of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> AuthToken {
        AuthToken("0123456789abcdef-token".into())
    }

    #[test]
    fn basic_with_any_user_and_bearer_are_accepted_anything_else_not() {
        let t = token();
        let basic = base64::engine::general_purpose::STANDARD.encode("me:0123456789abcdef-token");
        assert!(t.accepts(Some(&format!("Basic {basic}"))));
        assert!(t.accepts(Some("Bearer 0123456789abcdef-token")));
        let wrong = base64::engine::general_purpose::STANDARD.encode("me:0123456789abcdef-tokeX");
        assert!(!t.accepts(Some(&format!("Basic {wrong}"))));
        assert!(!t.accepts(Some("Bearer 0123456789abcdef")));
        assert!(!t.accepts(Some("Basic !!!")));
        assert!(!t.accepts(None));
        assert_eq!(format!("{t:?}"), "AuthToken(<redacted>)");
    }

    #[test]
    fn a_short_or_missing_token_file_is_refused() {
        let dir = std::env::temp_dir().join(format!("homelab-dash-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let short = dir.join("short");
        std::fs::write(&short, "abc\n").unwrap();
        let err = AuthToken::from_file(&short).unwrap_err();
        assert!(err.contains("at least 16"), "{err}");
        assert!(AuthToken::from_file(&dir.join("none")).is_err());
        let good = dir.join("good");
        std::fs::write(&good, "  0123456789abcdef-token  \nignored\n").unwrap();
        assert!(
            AuthToken::from_file(&good)
                .unwrap()
                .accepts(Some("Bearer 0123456789abcdef-token"))
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
