//! The k3s configuration file a host gets: the rendered config plus the keys the node engine
//! owns (node name, token file, how to join). Pure text work; never sees the token itself.

/// Where k3s reads its configuration.
pub const CONFIG_PATH: &str = "/etc/rancher/k3s/config.yaml";
/// Where the cluster token lives on each host (mode 0600, referenced by `token-file`).
pub const TOKEN_PATH: &str = "/etc/rancher/k3s/cluster-token";
/// The admin kubeconfig k3s writes on servers.
pub const KUBECONFIG_PATH: &str = "/etc/rancher/k3s/k3s.yaml";

/// Top-level keys the node engine sets itself; a rendered config's values for them are replaced.
const OWNED_KEYS: [&str; 4] = ["node-name", "token-file", "cluster-init", "server"];
/// Keys that would put a secret into config.yaml.
const SECRET_KEYS: [&str; 3] = ["token", "agent-token", "datastore-endpoint"];

/// How a host enters the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Join {
    /// The first server: starts the embedded etcd cluster.
    ClusterInit,
    /// Another server or an agent: joins through the API endpoint.
    Via { url: String },
}

/// Top-level key of a YAML line, if the line starts one.
fn top_level_key(line: &str) -> Option<&str> {
    if line.starts_with([' ', '\t', '#', '-']) || line.trim().is_empty() {
        return None;
    }
    let (key, _) = line.split_once(':')?;
    let key = key.trim().trim_matches(['"', '\'']);
    (!key.is_empty() && !key.contains(' ')).then_some(key)
}

/// Refuses rendered configs that would put a secret into config.yaml.
pub(crate) fn check_rendered(rendered: &str) -> Result<(), String> {
    for line in rendered.lines() {
        if let Some(key) = top_level_key(line)
            && SECRET_KEYS.contains(&key)
        {
            return Err(format!(
                "it sets `{key}:`, which would write a secret into {CONFIG_PATH}; the cluster token comes from the secrets file and is written to {TOKEN_PATH}, so remove `{key}` from the k3s config"
            ));
        }
    }
    Ok(())
}

/// The exact content of `/etc/rancher/k3s/config.yaml` for a host.
pub(crate) fn managed_config(rendered: &str, node_name: &str, join: &Join) -> String {
    let mut out =
        String::from("# Written by homelab nodes; edit homelab.yaml instead of this file.\n");
    let mut skipping = false;
    for line in rendered.lines() {
        if let Some(key) = top_level_key(line) {
            skipping = OWNED_KEYS.contains(&key);
        } else if line.starts_with("# Written by homelab nodes")
            || line.starts_with("# Set per host by homelab nodes")
        {
            continue;
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push_str("# Set per host by homelab nodes:\n");
    out.push_str(&format!("node-name: \"{node_name}\"\n"));
    out.push_str(&format!("token-file: \"{TOKEN_PATH}\"\n"));
    match join {
        Join::ClusterInit => out.push_str("cluster-init: true\n"),
        Join::Via { url } => out.push_str(&format!("server: \"{url}\"\n")),
    }
    out
}

/// A short, secret-free account of how two config files differ, line by line.
pub(crate) fn describe_difference(current: &str, desired: &str) -> String {
    let cur: Vec<&str> = current.lines().collect();
    let des: Vec<&str> = desired.lines().collect();
    let removed: Vec<&&str> = cur.iter().filter(|l| !des.contains(l)).collect();
    let added: Vec<&&str> = des.iter().filter(|l| !cur.contains(l)).collect();
    let mut parts = Vec::new();
    for l in added.iter().take(5) {
        parts.push(format!("+ {l}"));
    }
    for l in removed.iter().take(5) {
        parts.push(format!("- {l}"));
    }
    if added.len() + removed.len() > 10 {
        parts.push(format!(
            "({} lines differ in all)",
            added.len() + removed.len()
        ));
    }
    if parts.is_empty() {
        parts.push("line order or whitespace differs".into());
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const RENDERED: &str = "cluster-init: true\nserver: https://old:6443\nwrite-kubeconfig-mode: \"0600\"\ndisable:\n  - servicelb\ntls-san:\n  - lab.example.ts.net\nnode-name: other\n";

    #[test]
    fn owned_keys_are_replaced_and_the_rest_kept() {
        let first = managed_config(RENDERED, "s1", &Join::ClusterInit);
        assert!(first.contains("disable:\n  - servicelb\n"));
        assert!(first.contains("tls-san:\n  - lab.example.ts.net\n"));
        assert!(first.contains("node-name: \"s1\"\n"));
        assert!(first.contains("token-file: \"/etc/rancher/k3s/cluster-token\"\n"));
        assert!(first.ends_with("cluster-init: true\n"));
        assert!(!first.contains("https://old"));
        assert!(!first.contains("other"));
        assert_eq!(first.matches("cluster-init").count(), 1);

        let join = managed_config(
            RENDERED,
            "s2",
            &Join::Via {
                url: "https://10.0.0.1:6443".into(),
            },
        );
        assert!(join.ends_with("server: \"https://10.0.0.1:6443\"\n"));
        assert!(!join.contains("cluster-init"));
    }

    #[test]
    fn managing_twice_gives_the_same_file() {
        let once = managed_config(RENDERED, "s1", &Join::ClusterInit);
        assert_eq!(managed_config(&once, "s1", &Join::ClusterInit), once);
    }

    #[test]
    fn secrets_in_the_rendered_config_are_refused() {
        assert!(check_rendered(RENDERED).is_ok());
        for bad in ["token: abc\n", "agent-token: abc\n", "\"token\": abc\n"] {
            let e = check_rendered(bad).unwrap_err();
            assert!(e.contains("secret") && !e.contains("abc"), "{e}");
        }
        assert!(
            check_rendered("# token: in a comment\nkubelet-arg:\n  - token: not-top-level\n")
                .is_ok()
        );
    }

    #[test]
    fn differences_are_summarised() {
        let d = describe_difference("a: 1\nb: 2\n", "a: 1\nb: 3\n");
        assert_eq!(d, "+ b: 3; - b: 2");
    }
}
