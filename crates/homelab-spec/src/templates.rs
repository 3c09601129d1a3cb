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
