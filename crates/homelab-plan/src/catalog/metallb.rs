//! MetalLB: LoadBalancer addresses from the lab's pool, announced on the LAN (layer 2).

use serde_json::json;

use super::Ctx;
use crate::meta::{labels, metadata};
use crate::{ChartRef, Component, HealthCheck, HelmRelease, Layer, versions};

use super::nfs::{NS, infra_namespace};

pub(crate) const POOL: &str = "lab-pool";

pub(super) fn component(ctx: &Ctx) -> Component {
    let net = &ctx.lab.network;
    let mut c = Component::new("metallb", Layer::Infrastructure, Some(NS));
    c.add("namespace.yaml", infra_namespace());
    let values = json!({
        // Layer 2 only: the spec has no BGP, so neither the FRR sidecar nor the FRR-K8s
        // DaemonSet (the chart's default BGP backend since 0.15) is deployed.
        "speaker": {"frr": {"enabled": false}},
        "frrk8s": {"enabled": false},
        "controller": {"resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}}},
    });
    let pin = versions::METALLB;
    c.releases.push(HelmRelease {
        name: "metallb".into(),
        namespace: NS.into(),
        chart: ChartRef {
            name: pin.dep_name.into(),
            repo: pin.registry_url.into(),
            version: pin.version.into(),
        },
        create_namespace: false,
        values,
    });
    let l = || labels("metallb", "metallb", "load-balancer");
    c.add(
        "ip-pool.yaml",
        json!({
            "apiVersion": "metallb.io/v1beta1",
            "kind": "IPAddressPool",
            "metadata": metadata(POOL, Some(NS), l()),
            "spec": {"addresses": [net.load_balancer_pool.to_string()], "autoAssign": true},
        }),
    );
    c.add(
        "ip-pool.yaml",
        json!({
            "apiVersion": "metallb.io/v1beta1",
            "kind": "L2Advertisement",
            "metadata": metadata(POOL, Some(NS), l()),
            "spec": {"ipAddressPools": [POOL]},
        }),
    );
    c.health.push(HealthCheck::HelmChart {
        namespace: "kube-system".into(),
        name: "metallb".into(),
    });
    c.health.push(HealthCheck::Crd {
        name: "ipaddresspools.metallb.io".into(),
    });
    c.health.push(HealthCheck::Workload {
        kind: "Deployment".into(),
        namespace: NS.into(),
        name: "metallb-controller".into(),
    });
    c.health.push(HealthCheck::Workload {
        kind: "DaemonSet".into(),
        namespace: NS.into(),
        name: "metallb-speaker".into(),
    });
    c.docs = crate::ComponentDocs {
        title: "MetalLB".into(),
        what: format!(
            "Gives Services of type LoadBalancer an address from {} ({} addresses) and answers ARP for it on the LAN; Traefik gets {}.",
            net.load_balancer_pool,
            net.load_balancer_pool.len(),
            net.ingress_ip
        ),
        why: "K3s' built-in servicelb binds node ports on every node and cannot give a service a stable address of its own; MetalLB in layer-2 mode needs nothing from the router.".into(),
        access: vec!["`kubectl get svc -A | grep LoadBalancer` shows the assigned addresses".into()],
        data: "None: the pool and advertisement are in this directory.".into(),
        backup: "Nothing to back up; re-apply this directory.".into(),
        requirements: vec!["FR19".into()],
    };
    c
}
