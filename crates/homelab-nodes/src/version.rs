//! k3s release versions (`v1.31.2+k3s1`): parsing and ordering; pure.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// A k3s release such as `v1.31.2+k3s1` (optionally with a pre-release: `v1.32.0-rc1+k3s1`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct K3sVersion {
    /// Kubernetes major version (always 1 today).
    pub major: u32,
    /// Kubernetes minor version.
    pub minor: u32,
    /// Kubernetes patch version.
    pub patch: u32,
    /// Pre-release tag such as `rc1`, if any.
    pub pre: Option<String>,
    /// The k3s build number after `+k3s`.
    pub k3s: u32,
}

impl K3sVersion {
    /// True when going from `self` to `to` skips at least one Kubernetes minor release,
    /// which Kubernetes does not support.
    pub fn skips_minor_to(&self, to: &K3sVersion) -> bool {
        to.major != self.major || to.minor > self.minor + 1
    }

    /// The version with characters that k3s refuses in snapshot names replaced.
    pub(crate) fn slug(&self) -> String {
        self.to_string().replace(['+', '.'], "-")
    }
}

impl fmt::Display for K3sVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}.{}", self.major, self.minor, self.patch)?;
        if let Some(pre) = &self.pre {
            write!(f, "-{pre}")?;
        }
        write!(f, "+k3s{}", self.k3s)
    }
}

impl FromStr for K3sVersion {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!(
                "{s:?} is not a k3s release version; write it like v1.31.2+k3s1 (see https://github.com/k3s-io/k3s/releases)"
            )
        };
        let rest = s.strip_prefix('v').ok_or_else(bad)?;
        let (kube, build) = rest.split_once("+k3s").ok_or_else(bad)?;
        let k3s: u32 = build.parse().map_err(|_| bad())?;
        let (numbers, pre) = match kube.split_once('-') {
            Some((n, p))
                if !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '.') =>
            {
                (n, Some(p.to_string()))
            }
            Some(_) => return Err(bad()),
            None => (kube, None),
        };
        let parts: Vec<&str> = numbers.split('.').collect();
        if parts.len() != 3 {
            return Err(bad());
        }
        let num = |p: &str| -> Result<u32, String> {
            if p.is_empty() || !p.chars().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            p.parse().map_err(|_| bad())
        };
        Ok(K3sVersion {
            major: num(parts[0])?,
            minor: num(parts[1])?,
            patch: num(parts[2])?,
            pre,
            k3s,
        })
    }
}

impl Ord for K3sVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| match (&self.pre, &other.pre) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(a), Some(b)) => a.cmp(b),
            })
            .then_with(|| self.k3s.cmp(&other.k3s))
    }
}

impl PartialOrd for K3sVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Reads the version out of `k3s --version` output (`k3s version v1.31.2+k3s1 (6da20424)`).
pub(crate) fn from_version_output(out: &str) -> Option<K3sVersion> {
    let line = out.lines().next()?;
    let mut words = line.split_whitespace();
    if words.next()? != "k3s" || words.next()? != "version" {
        return None;
    }
    words.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> K3sVersion {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_prints_release_versions() {
        let x = v("v1.31.2+k3s1");
        assert_eq!((x.major, x.minor, x.patch, x.k3s), (1, 31, 2, 1));
        assert_eq!(x.to_string(), "v1.31.2+k3s1");
        assert_eq!(v("v1.32.0-rc1+k3s2").to_string(), "v1.32.0-rc1+k3s2");
    }

    #[test]
    fn refuses_what_is_not_a_k3s_version() {
        for bad in [
            "1.31.2+k3s1",
            "v1.31+k3s1",
            "v1.31.2",
            "v1.31.2+k3s",
            "latest",
            "v1.31.x+k3s1",
            "v1.31.2-+k3s1",
        ] {
            let err = bad.parse::<K3sVersion>().unwrap_err();
            assert!(err.contains("v1.31.2+k3s1"), "{err}");
        }
    }

    #[test]
    fn orders_by_kubernetes_then_build() {
        assert!(v("v1.31.2+k3s1") < v("v1.31.2+k3s2"));
        assert!(v("v1.31.2+k3s9") < v("v1.31.10+k3s1"));
        assert!(v("v1.32.0-rc1+k3s1") < v("v1.32.0+k3s1"));
        assert!(v("v1.30.9+k3s1") < v("v1.31.0+k3s1"));
    }

    #[test]
    fn knows_when_a_minor_release_is_skipped() {
        assert!(!v("v1.30.4+k3s1").skips_minor_to(&v("v1.31.0+k3s1")));
        assert!(v("v1.30.4+k3s1").skips_minor_to(&v("v1.32.0+k3s1")));
    }

    #[test]
    fn reads_version_output() {
        let out = "k3s version v1.31.2+k3s1 (6da20424)\ngo version go1.22.8\n";
        assert_eq!(from_version_output(out), Some(v("v1.31.2+k3s1")));
        assert_eq!(from_version_output("bash: k3s: not found"), None);
    }
}
