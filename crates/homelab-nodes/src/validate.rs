//! Whether a host can take part in the lab as it is: pure checks of its facts against the
//! inventory, giving refusals (the host is not touched) and warnings.

use crate::airgap::AirgapFiles;
use crate::facts::{AGENT_PORTS, Facts, SERVER_PORTS};
use crate::inventory::{Host, InstallSource, Inventory, Role};
use crate::version::K3sVersion;

/// The result of checking one host.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
}

/// Checks `host` before `apply` changes anything on it.
pub(crate) fn check(
    inv: &Inventory,
    host: &Host,
    facts: &Facts,
    pinned: &K3sVersion,
    airgap: Option<&AirgapFiles>,
) -> Verdict {
    let mut v = Verdict::default();
    let arch = facts.k3s_arch();
    match arch {
        None => v.problems.push(format!(
            "architecture {} is not supported by k3s (amd64, arm64 and armhf are)",
            facts.arch
        )),
        Some(a) => {
            if let Some(files) = airgap
                && let Some(missing) = files.missing_for(a)
            {
                v.problems.push(missing);
            }
        }
    }
    if let Some(unit) = &facts.k3s_unit
        && unit != host.role.unit()
    {
        let installed = if unit == "k3s" {
            Role::Server
        } else {
            Role::Agent
        };
        v.problems.push(format!(
                "k3s is installed here as {installed} but the spec says {}; a node cannot change role in place: run `homelab nodes remove {}` then `homelab nodes reset {}`, then apply again",
                host.role, host.name, host.name
            ));
    }
    if let Some(installed) = &facts.k3s_version {
        if installed > pinned {
            v.problems.push(format!(
                "k3s {installed} is installed, newer than the pinned {pinned}; k3s cannot be downgraded in place: pin {installed} or newer in homelab.yaml"
            ));
        } else if installed < pinned && facts.k3s_unit.is_some() {
            v.problems.push(format!(
                "k3s {installed} is installed and {pinned} is pinned; apply does not upgrade running nodes: run `homelab nodes upgrade` (it drains and upgrades one node at a time)"
            ));
        }
    }
    if facts.k3s_unit.is_none() {
        let needed: &[u16] = match host.role {
            Role::Server => &SERVER_PORTS,
            Role::Agent => &AGENT_PORTS,
        };
        let busy: Vec<String> = needed
            .iter()
            .filter(|p| facts.listening_ports.contains(p))
            .map(u16::to_string)
            .collect();
        if !busy.is_empty() {
            v.problems.push(format!(
                "port {} already in use, and k3s ({}) needs it; stop whatever listens there (`ss -tlnp` shows it) or use another host",
                busy.join(", "),
                host.role
            ));
        }
    }
    let skew = facts.clock_offset_ms.abs() - facts.clock_uncertainty_ms;
    if skew > inv.limits.max_clock_skew.as_millis() as i64 {
        v.problems.push(format!(
            "the clock is {:.1}s off from this machine's (more than the {}s allowed); etcd and certificates need synchronised clocks: enable NTP (`timedatectl set-ntp true`)",
            facts.clock_offset_ms as f64 / 1000.0,
            inv.limits.max_clock_skew.as_secs()
        ));
    }
    if facts.swap_kib > 0 {
        v.warnings.push(format!(
            "{} MiB of swap is active; Kubernetes memory limits are less predictable with swap (`swapoff -a` and remove it from /etc/fstab)",
            facts.swap_kib / 1024
        ));
    }
    if matches!(inv.install, InstallSource::Online { .. })
        && !facts.has_curl
        && facts.k3s_version.as_ref() != Some(pinned)
    {
        v.problems.push("curl is not installed and the online installer needs it: install curl, or use an airgap install".into());
    }
    if !missing_packages(inv, host, facts).is_empty() && !facts.has_apt_get {
        v.problems.push(format!(
            "packages are missing ({}) and this host has no apt-get ({}); install them with the host's package manager",
            missing_packages(inv, host, facts).join(", "),
            facts.os_pretty
        ));
    }
    if host.gpu {
        v.problems.extend(crate::gpu::driver_problem(facts));
        if !facts.has_nvidia_runtime && !facts.has_apt_get {
            v.problems.push(format!(
                "the NVIDIA container toolkit is missing and this host has no apt-get ({}); install `nvidia-container-toolkit` with the host's package manager, then run `homelab nodes apply` again",
                facts.os_pretty
            ));
        }
    }
    v
}

/// Debian packages the prepare phase would install.
pub(crate) fn missing_packages(inv: &Inventory, host: &Host, facts: &Facts) -> Vec<&'static str> {
    let mut p = Vec::new();
    // mount.nfs, for the etcd snapshot mount too.
    let nfs = inv.prepare.nfs_common || inv.snapshot_mount_for(host).is_some();
    if nfs && !facts.nfs_common {
        p.push("nfs-common");
    }
    if inv.prepare.unattended_upgrades && !facts.unattended_upgrades {
        p.push("unattended-upgrades");
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::SshTarget;
    use secrecy::SecretString;
    use std::collections::BTreeMap;

    fn setup(role: Role) -> (Inventory, Host, Facts, K3sVersion) {
        let host = Host {
            name: "n1".into(),
            role,
            address: "10.0.0.1".into(),
            ssh: SshTarget::default(),
            labels: BTreeMap::new(),
            taints: vec![],
            gpu: false,
            k3s_config: String::new(),
        };
        let inv = Inventory::new(
            "lab",
            "v1.31.2+k3s1",
            SecretString::from("t"),
            vec![host.clone()],
        );
        let facts = Facts {
            arch: "x86_64".into(),
            os_pretty: "Debian 12".into(),
            nfs_common: true,
            unattended_upgrades: true,
            has_apt_get: true,
            has_curl: true,
            clock_uncertainty_ms: 5,
            ..Facts::default()
        };
        (inv, host, facts, "v1.31.2+k3s1".parse().unwrap())
    }

    #[test]
    fn a_clean_host_passes() {
        let (inv, host, facts, pinned) = setup(Role::Server);
        assert_eq!(
            check(&inv, &host, &facts, &pinned, None),
            Verdict::default()
        );
    }

    #[test]
    fn busy_ports_refuse_a_fresh_server_but_not_an_installed_one() {
        let (inv, host, mut facts, pinned) = setup(Role::Server);
        facts.listening_ports = [22, 6443, 2380].into_iter().collect();
        let v = check(&inv, &host, &facts, &pinned, None);
        assert_eq!(v.problems.len(), 1);
        assert!(
            v.problems[0].contains("port 6443, 2380 already in use"),
            "{:?}",
            v.problems
        );
        facts.k3s_unit = Some("k3s".into());
        facts.k3s_version = Some(pinned.clone());
        assert!(
            check(&inv, &host, &facts, &pinned, None)
                .problems
                .is_empty()
        );
    }

    #[test]
    fn version_role_clock_gpu_and_packages_are_checked() {
        let (mut inv, mut host, mut facts, pinned) = setup(Role::Agent);
        facts.k3s_unit = Some("k3s".into());
        facts.k3s_version = Some("v1.30.5+k3s1".parse().unwrap());
        facts.clock_offset_ms = -7_000;
        facts.nfs_common = false;
        facts.has_apt_get = false;
        facts.swap_kib = 2048 * 1024;
        facts.arch = "riscv64".into();
        host.gpu = true;
        inv.install = InstallSource::Online {
            installer_url: "https://get.k3s.io".into(),
        };
        facts.has_curl = false;
        let v = check(&inv, &host, &facts, &pinned, None);
        let all = v.problems.join("\n");
        for needle in [
            "riscv64 is not supported",
            "installed here as server but the spec says agent",
            "run `homelab nodes upgrade`",
            "clock is -7.0s off",
            "curl is not installed",
            "packages are missing (nfs-common)",
            "the NVIDIA driver is not installed",
            "the NVIDIA container toolkit is missing and this host has no apt-get",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in\n{all}");
        }
        assert!(v.warnings[0].contains("2048 MiB of swap"));
        facts.k3s_version = Some("v1.32.0+k3s1".parse().unwrap());
        assert!(
            check(&inv, &host, &facts, &pinned, None)
                .problems
                .join("\n")
                .contains("cannot be downgraded")
        );
    }
}
