//! Every pinned version of the lab in one place, with what Renovate needs to update it; data only.

/// A pinned artifact and where Renovate looks for new versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pin {
    /// Renovate datasource: `helm`, `docker` or `github-releases`.
    pub datasource: &'static str,
    /// Chart, image or repository name.
    pub dep_name: &'static str,
    /// Helm repository (for `helm`); empty otherwise.
    pub registry_url: &'static str,
    pub version: &'static str,
}

impl Pin {
    /// The comment Renovate's regex manager reads, placed on the line above the version.
    pub fn renovate_comment(&self) -> String {
        let mut c = format!(
            "# renovate: datasource={} depName={}",
            self.datasource, self.dep_name
        );
        if !self.registry_url.is_empty() {
            c.push_str(&format!(" registryUrl={}", self.registry_url));
        }
        c
    }

    /// `name:version` for images.
    pub fn image(&self) -> String {
        format!("{}:{}", self.dep_name, self.version)
    }
}

const fn helm(dep_name: &'static str, registry_url: &'static str, version: &'static str) -> Pin {
    Pin {
        datasource: "helm",
        dep_name,
        registry_url,
        version,
    }
}

const fn docker(dep_name: &'static str, version: &'static str) -> Pin {
    Pin {
        datasource: "docker",
        dep_name,
        registry_url: "",
        version,
    }
}

pub const NFS_PROVISIONER: Pin = helm(
    "nfs-subdir-external-provisioner",
    "https://kubernetes-sigs.github.io/nfs-subdir-external-provisioner/",
    "4.0.18",
);
pub const METALLB: Pin = helm("metallb", "https://metallb.github.io/metallb", "0.16.1");
/// cert-manager is published as an OCI chart; Renovate reads it with the docker datasource.
pub const CERT_MANAGER: Pin = Pin {
    datasource: "docker",
    dep_name: "quay.io/jetstack/charts/cert-manager",
    registry_url: "",
    version: "v1.21.1",
};
pub const KUBE_PROMETHEUS_STACK: Pin = helm(
    "kube-prometheus-stack",
    "https://prometheus-community.github.io/helm-charts",
    "88.5.3",
);
pub const LOKI: Pin = helm(
    "loki",
    "https://grafana-community.github.io/helm-charts",
    "18.11.0",
);
pub const ALLOY: Pin = helm("alloy", "https://grafana.github.io/helm-charts", "1.11.1");
pub const OLLAMA: Pin = helm("ollama", "https://otwld.github.io/ollama-helm/", "1.77.0");
pub const N8N: Pin = helm(
    "n8n",
    "https://community-charts.github.io/helm-charts",
    "1.24.32",
);

pub const OPENBAO: Pin = helm(
    "openbao",
    "https://openbao.github.io/openbao-helm",
    "0.29.2",
);

pub const AUTHELIA: Pin = helm("authelia", "https://charts.authelia.com", "0.11.5");
pub const OPEN_WEBUI: Pin = helm("open-webui", "https://helm.openwebui.com", "16.0.0");

pub const NVIDIA_DEVICE_PLUGIN: Pin = helm(
    "nvidia-device-plugin",
    "https://nvidia.github.io/k8s-device-plugin",
    "0.20.0",
);
pub const DCGM_EXPORTER: Pin = docker(
    "nvcr.io/nvidia/k8s/dcgm-exporter",
    "4.2.3-4.1.3-ubuntu22.04",
);

/// The Traefik chart K3s v1.34 bundles (its HelmChartConfig's values go over it); K3s
/// upgrades it, so no Renovate comment follows it.
pub const K3S_TRAEFIK_CHART: &str = "37.1.0";

pub const LOCAL_PATH_PROVISIONER: Pin =
    docker("docker.io/rancher/local-path-provisioner", "v0.0.32");
/// The helper image local-path runs to create and delete volume directories.
pub const BUSYBOX: Pin = docker("docker.io/library/busybox", "1.37.0");
pub const POSTGRES_EXPORTER: Pin =
    docker("quay.io/prometheuscommunity/postgres-exporter", "v0.18.1");
pub const POSTGRES_IMAGE_REPO: &str = "docker.io/library/postgres";
pub const REDIS: Pin = docker("docker.io/library/redis", "8.2.3-alpine");
pub const PAPERLESS: Pin = docker("ghcr.io/paperless-ngx/paperless-ngx", "2.19.6");
/// vLLM's official image of its OpenAI-compatible server (CUDA).
pub const VLLM: Pin = docker("docker.io/vllm/vllm-openai", "v0.23.0");
pub const NGINX: Pin = docker("docker.io/library/nginx", "1.29.3-alpine");
pub const DEV_CONTAINER_BASE: Pin = docker("docker.io/library/ubuntu", "24.04");
/// The repository, in the lab's registry, of the dev-container image built from the rendered
/// Dockerfile; its tag is the build context's content hash.
pub const DEV_CONTAINER_REPOSITORY: &str = "homelab/dev-container";

/// The minor release pinned for each PostgreSQL major the spec may choose.
pub fn postgres(major: u32) -> Pin {
    let version = match major {
        13 => "13.23-bookworm",
        14 => "14.20-bookworm",
        15 => "15.15-bookworm",
        16 => "16.11-bookworm",
        18 => "18.1-bookworm",
        _ => "17.7-bookworm",
    };
    docker(POSTGRES_IMAGE_REPO, version)
}

/// Every pin, for `renovate.json` and the docs.
pub fn all() -> Vec<Pin> {
    vec![
        NFS_PROVISIONER,
        METALLB,
        CERT_MANAGER,
        KUBE_PROMETHEUS_STACK,
        LOKI,
        ALLOY,
        OLLAMA,
        N8N,
        REDIS,
        PAPERLESS,
        NGINX,
        DEV_CONTAINER_BASE,
        LOCAL_PATH_PROVISIONER,
        BUSYBOX,
        POSTGRES_EXPORTER,
        NVIDIA_DEVICE_PLUGIN,
        DCGM_EXPORTER,
        OPENBAO,
        AUTHELIA,
        VLLM,
        OPEN_WEBUI,
    ]
}
