//! What the commands that check the lab's URLs share (`status`, `up`): the `--resolve` and
//! `--ca-file` flags and the TLS check options they make. Decides nothing about health.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use homelab_kube::{StatusChecks, TlsCheckOptions};

use crate::exit;

/// How the lab's URLs are reached when they are checked.
#[derive(Debug, Clone, Args)]
pub struct UrlCheckArgs {
    /// Connect to a lab host at this address instead of asking DNS, like `curl --resolve`:
    /// `HOST=ADDRESS:PORT`, or `*=ADDRESS:PORT` for every URL of the lab (e.g.
    /// `--resolve '*=192.168.2.200:443'` before DNS knows the lab's names). Repeatable.
    #[arg(long, value_name = "HOST=ADDRESS:PORT")]
    pub resolve: Vec<String>,
    /// Trust the certificates in this PEM file instead of the system's roots when checking
    /// URLs (a lab with a private CA, or Let's Encrypt staging).
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
}

impl UrlCheckArgs {
    /// The TLS check options for `checks`: explicit hosts win over `*`, whatever the order
    /// they were given in. A bad `--resolve` is a usage error; an unreadable CA file names it.
    pub fn tls(&self, checks: &StatusChecks) -> anyhow::Result<TlsCheckOptions> {
        let mut tls = TlsCheckOptions::default();
        let mut resolve = BTreeMap::new();
        let parsed: Vec<(String, SocketAddr)> = self
            .resolve
            .iter()
            .map(|r| parse_resolve(r).map_err(exit::usage))
            .collect::<anyhow::Result<_>>()?;
        for (host, addr) in &parsed {
            if host == "*" {
                for u in &checks.urls {
                    resolve.entry(u.host.clone()).or_insert(*addr);
                }
            }
        }
        for (host, addr) in parsed {
            if host != "*" {
                resolve.insert(host, addr);
            }
        }
        tls.resolve = resolve;
        if let Some(path) = &self.ca_file {
            tls.ca_pem = Some(std::fs::read(path).with_context(|| {
                format!(
                    "cannot read --ca-file {}; pass a PEM file with the CA certificate(s)",
                    path.display()
                )
            })?);
        }
        Ok(tls)
    }
}

/// `HOST=ADDRESS:PORT` into its parts.
pub fn parse_resolve(text: &str) -> Result<(String, SocketAddr), String> {
    let (host, target) = text
        .split_once('=')
        .ok_or_else(|| format!("--resolve {text:?} is not HOST=ADDRESS:PORT"))?;
    let addr = target
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            format!(
                "--resolve {text:?}: {target:?} is not an ADDRESS:PORT (e.g. 192.168.2.200:443)"
            )
        })?;
    if host.is_empty() {
        return Err(format!("--resolve {text:?} has no host before `=`"));
    }
    Ok((host.to_string(), addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_takes_host_and_socket_address() {
        let (host, addr) = parse_resolve("grafana.lab.example=192.168.2.200:443").unwrap();
        assert_eq!(host, "grafana.lab.example");
        assert_eq!(addr.to_string(), "192.168.2.200:443");
        assert_eq!(parse_resolve("*=127.0.0.1:8443").unwrap().0, "*");
        for bad in ["grafana", "=1.2.3.4:443", "h=1.2.3.4", "h=not an address"] {
            let e = parse_resolve(bad).unwrap_err();
            assert!(e.contains("--resolve"), "{e}");
        }
    }
}
