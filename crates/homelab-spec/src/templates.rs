//! The commented specs `homelab init` writes; text only, the caller decides where it goes.

/// The lab of the planning documents: three nodes and every service.
pub const SEED: &str = include_str!("../templates/seed.yaml");

/// One node and only the platform (K3s, NFS, MetalLB, cert-manager, Traefik).
pub const MINIMAL: &str = include_str!("../templates/minimal.yaml");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    Seed,
    Minimal,
}

impl Preset {
    pub fn text(self) -> &'static str {
        match self {
            Preset::Seed => SEED,
            Preset::Minimal => MINIMAL,
        }
    }
}

/// The K3s release the templates pin, and so the one a new lab starts on.
pub const K3S_VERSION: &str = "v1.34.2+k3s1";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_pins_the_k3s_release() {
        for preset in [Preset::Seed, Preset::Minimal] {
            let lab = crate::load_str("homelab.yaml", preset.text())
                .expect("templates are valid")
                .lab;
            assert_eq!(
                lab.cluster.k3s_version.to_string(),
                K3S_VERSION,
                "{preset:?}"
            );
        }
    }
}
