//! GPU hosts: what the facts say about the NVIDIA driver, and the commands that install the
//! NVIDIA container toolkit from NVIDIA's package repository; builds text only, runs nothing.

use crate::facts::Facts;

/// NVIDIA's package repository of the container toolkit (`libnvidia-container`).
pub const NVIDIA_REPO: &str = "https://nvidia.github.io/libnvidia-container";

/// Where the repository's signing key is kept, and the apt source that names it.
pub(crate) const KEYRING_PATH: &str = "/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg";
pub(crate) const SOURCE_PATH: &str = "/etc/apt/sources.list.d/nvidia-container-toolkit.list";

/// What the driver check found on the host: `nvidia-smi -L`'s GPUs, or why there are none.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Driver {
    /// `nvidia-smi` is not installed: the driver is missing.
    #[default]
    Missing,
    /// `nvidia-smi` failed, with the first line it printed.
    Failed(String),
    /// The GPUs `nvidia-smi -L` lists.
    Gpus(Vec<String>),
}

/// The facts script's lines about the driver.
pub(crate) const FACTS_SCRIPT: &str = r#"if command -v nvidia-smi >/dev/null 2>&1; then
  if gpus=$(nvidia-smi -L 2>&1); then printf '%s\n' "$gpus" | sed -n 's/^\(GPU [0-9][0-9]*: .*\)$/nvidia_gpu=\1/p'; say nvidia_smi ok
  else say nvidia_smi "failed: $(printf '%s' "$gpus" | head -n 1)"; fi
fi
"#;

/// Why this GPU host cannot run GPU pods, if it cannot.
pub(crate) fn driver_problem(facts: &Facts) -> Option<String> {
    match &facts.nvidia_driver {
        Driver::Missing => Some(
            "the spec marks this host as a GPU node but the NVIDIA driver is not installed (`nvidia-smi` not found); install the driver (Ubuntu: `sudo ubuntu-drivers install`, Debian: `sudo apt-get install nvidia-driver`), reboot, check `nvidia-smi`, then run `homelab nodes apply` again".into(),
        ),
        Driver::Failed(why) => Some(format!(
            "the spec marks this host as a GPU node but `nvidia-smi` fails ({why}); the driver is installed but not working: reboot after a driver or kernel update, or reinstall the driver, then run `homelab nodes apply` again"
        )),
        Driver::Gpus(gpus) if gpus.is_empty() => Some(
            "the spec marks this host as a GPU node but `nvidia-smi -L` lists no GPU; check that the card is passed through to this machine (Proxmox: a PCI device on the VM), then run `homelab nodes apply` again".into(),
        ),
        Driver::Gpus(_) => None,
    }
}

/// Adds NVIDIA's repository (its signing key and an apt source that names it) and installs
/// `nvidia-container-toolkit`; runs as root.
pub(crate) fn toolkit_script(repo: &str) -> String {
    format!(
        "set -e\nexport DEBIAN_FRONTEND=noninteractive\n\
         curl -fsSL '{repo}/gpgkey' | gpg --batch --yes --dearmor -o {KEYRING_PATH}\n\
         curl -fsSL '{repo}/stable/deb/nvidia-container-toolkit.list' | sed 's#deb https://#deb [signed-by={KEYRING_PATH}] https://#g' > {SOURCE_PATH}.tmp\n\
         mv {SOURCE_PATH}.tmp {SOURCE_PATH}\n\
         apt-get -o DPkg::Lock::Timeout=300 update -qq\n\
         apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends nvidia-container-toolkit\n\
         command -v nvidia-container-runtime >/dev/null\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_signs_the_source_with_the_key_it_fetched() {
        let s = toolkit_script("https://example.org/repo");
        assert!(s.contains("curl -fsSL 'https://example.org/repo/gpgkey' | gpg --batch --yes --dearmor -o /usr/share/keyrings/nvidia-container-toolkit-keyring.gpg"));
        assert!(s.contains("[signed-by=/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg]"));
        assert!(s.contains("install -y -qq --no-install-recommends nvidia-container-toolkit"));
        assert!(s.starts_with("set -e\n"));
    }

    #[test]
    fn each_driver_state_but_gpus_is_a_problem_that_says_what_to_do() {
        let mut f = Facts::default();
        assert!(driver_problem(&f).unwrap().contains("not installed"));
        f.nvidia_driver = Driver::Failed("NVIDIA-SMI has failed".into());
        assert!(
            driver_problem(&f)
                .unwrap()
                .contains("NVIDIA-SMI has failed")
        );
        f.nvidia_driver = Driver::Gpus(vec![]);
        assert!(driver_problem(&f).unwrap().contains("lists no GPU"));
        f.nvidia_driver = Driver::Gpus(vec!["GPU 0: NVIDIA GeForce RTX 3060".into()]);
        assert_eq!(driver_problem(&f), None);
    }
}
