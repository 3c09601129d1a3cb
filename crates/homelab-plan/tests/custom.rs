//! The media lab (examples/media-lab.yaml) through the plan: apps with ports at load-balancer
//! addresses, the host network, a GPU, probes, resources and a login; a share of existing NFS
//! data; and a chart of the user's own ordered by its `dependsOn`.

use homelab_plan::{Component, HealthCheck, Plan, plan};
use serde_json::{Value, json};

const MEDIA_LAB: &str = include_str!("../../../examples/media-lab.yaml");

fn media() -> Plan {
    let loaded = homelab_spec::load_str("media-lab.yaml", MEDIA_LAB)
        .unwrap_or_else(|e| panic!("the media lab is valid:\n{}", e.render()));
    plan(&loaded.lab)
}

fn object<'a>(c: &'a Component, kind: &str, name: &str) -> &'a Value {
    &c.objects
        .iter()
        .find(|o| o.kind() == kind && o.name() == name)
        .unwrap_or_else(|| panic!("{}: no {kind} {name}", c.name))
        .manifest
}

fn deployment<'a>(p: &'a Plan, app: &str) -> &'a Value {
    object(p.component(app).unwrap(), "Deployment", app)
}

#[test]
fn replicas_are_sent_only_when_the_spec_sets_them() {
    let p = media();
    assert!(
        deployment(&p, "sonarr")["spec"].get("replicas").is_none(),
        "left to `kubectl scale`"
    );
    assert_eq!(deployment(&p, "pihole")["spec"]["replicas"], 1);
}

/// The media lab with `replicas:` added to two apps.
fn media_with_replicas() -> Plan {
    let text = MEDIA_LAB
        .replace(
            "  - name: sonarr\n    image: lscr.io/linuxserver/sonarr:4.0.11\n",
            "  - name: sonarr\n    image: lscr.io/linuxserver/sonarr:4.0.11\n    replicas: 3\n",
        )
        .replace(
            "    hostNetwork: true            # mDNS and device discovery on the LAN\n",
            "    hostNetwork: true            # mDNS and device discovery on the LAN\n    replicas: 2\n",
        );
    assert_eq!(
        text.matches("replicas: ").count(),
        3,
        "the media lab changed"
    );
    let loaded = homelab_spec::load_str("media-lab.yaml", &text)
        .unwrap_or_else(|e| panic!("{}", e.render()));
    plan(&loaded.lab)
}

#[test]
fn several_replicas_spread_over_the_nodes_and_a_drain_takes_one_at_a_time() {
    let p = media_with_replicas();
    let sonarr = p.component("sonarr").unwrap();
    let pod = &deployment(&p, "sonarr")["spec"]["template"]["spec"];
    let selector = json!({"matchLabels": {
        "app.kubernetes.io/name": "sonarr",
        "app.kubernetes.io/instance": "sonarr",
    }});
    assert_eq!(
        pod["topologySpreadConstraints"],
        json!([{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": selector}])
    );
    let pdb = object(sonarr, "PodDisruptionBudget", "sonarr");
    assert_eq!(pdb["apiVersion"], "policy/v1");
    assert_eq!(
        pdb["spec"],
        json!({"maxUnavailable": 1, "selector": selector})
    );
    // The selector is the Deployment's own.
    assert_eq!(
        deployment(&p, "sonarr")["spec"]["selector"],
        pdb["spec"]["selector"]
    );
    // On the node's network two replicas can never share a node.
    let ha = &deployment(&p, "home-assistant")["spec"]["template"]["spec"];
    assert_eq!(
        ha["topologySpreadConstraints"][0]["whenUnsatisfiable"],
        "DoNotSchedule"
    );
    object(
        p.component("home-assistant").unwrap(),
        "PodDisruptionBudget",
        "home-assistant",
    );
    // One replica (pihole) or none set (radarr): no budget that would block every drain.
    let plain = media();
    for app in ["pihole", "radarr", "sonarr"] {
        let c = plain.component(app).unwrap();
        assert!(
            !c.objects.iter().any(|o| o.kind() == "PodDisruptionBudget"),
            "{app}"
        );
        assert!(
            deployment(&plain, app)["spec"]["template"]["spec"]
                .get("topologySpreadConstraints")
                .is_none(),
            "{app}"
        );
    }
}

#[test]
fn ports_go_to_a_load_balancer_service_at_the_fixed_address() {
    let p = media();
    let pihole = p.component("pihole").unwrap();
    let lb = object(pihole, "Service", "pihole-lb");
    assert_eq!(lb["spec"]["type"], "LoadBalancer");
    assert_eq!(
        lb["metadata"]["annotations"]["metallb.io/loadBalancerIPs"],
        "192.168.2.101"
    );
    assert_eq!(lb["spec"]["externalTrafficPolicy"], "Local");
    assert_eq!(
        lb["spec"]["ports"],
        json!([
            {"name": "dns-udp", "port": 53, "targetPort": 53, "protocol": "UDP"},
            {"name": "dns-tcp", "port": 53, "targetPort": 53, "protocol": "TCP"},
        ])
    );
    let ports = &deployment(&p, "pihole")["spec"]["template"]["spec"]["containers"][0]["ports"];
    assert_eq!(
        ports,
        &json!([
            {"name": "http", "containerPort": 80},
            {"name": "dns-udp", "containerPort": 53, "protocol": "UDP"},
            {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
        ])
    );
    assert!(pihole.health.contains(&HealthCheck::LoadBalancer {
        namespace: "dns".into(),
        name: "pihole-lb".into(),
        expected_ip: Some("192.168.2.101".into()),
    }));
    // The app's own port on the load balancer is declared once in the container.
    let plex = &deployment(&p, "plex")["spec"]["template"]["spec"]["containers"][0]["ports"];
    assert_eq!(plex.as_array().unwrap().len(), 3, "{plex}");
    // Without an address MetalLB picks one: no annotation.
    let qb = object(
        p.component("qbittorrent").unwrap(),
        "Service",
        "qbittorrent-lb",
    );
    assert!(qb["metadata"].get("annotations").is_none());
}

#[test]
fn host_network_makes_its_namespace_privileged() {
    let p = media();
    let ha = deployment(&p, "home-assistant");
    let pod = &ha["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(pod["dnsPolicy"], "ClusterFirstWithHostNet");
    assert_eq!(ha["spec"]["strategy"]["type"], "Recreate");
    let ns = p
        .objects()
        .find(|(_, o)| o.kind() == "Namespace" && o.name() == "home")
        .unwrap()
        .1;
    assert_eq!(
        ns.manifest["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "privileged"
    );
    let media_ns = p
        .objects()
        .find(|(_, o)| o.kind() == "Namespace" && o.name() == "media")
        .unwrap()
        .1;
    assert_eq!(
        media_ns.manifest["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "baseline"
    );
    assert_eq!(
        p.objects()
            .filter(|(_, o)| o.kind() == "Namespace" && o.name() == "media")
            .count(),
        1,
        "declared once although four apps use it"
    );
}

#[test]
fn a_gpu_app_gets_the_runtime_class_a_gpu_and_resources() {
    let p = media();
    let plex = deployment(&p, "plex");
    let pod = &plex["spec"]["template"]["spec"];
    assert_eq!(pod["runtimeClassName"], "nvidia");
    assert_eq!(pod["nodeSelector"], json!({"homelab/gpu": "nvidia"}));
    assert_eq!(
        pod["containers"][0]["resources"],
        json!({"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "4Gi", "nvidia.com/gpu": 1}})
    );
    assert_eq!(
        pod["containers"][0]["readinessProbe"]["httpGet"],
        json!({"path": "/identity", "port": 32400})
    );
    assert_eq!(
        deployment(&p, "sonarr")["spec"]["template"]["spec"]["containers"][0]["resources"],
        json!({"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "1Gi"}}),
        "the defaults without `resources`"
    );
}

#[test]
fn the_nfs_share_is_a_kept_static_volume_mounted_by_several_apps() {
    let p = media();
    let shares = p.component("shares").unwrap();
    let pv = object(shares, "PersistentVolume", "share-media-media");
    assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Retain");
    assert_eq!(pv["spec"]["accessModes"], json!(["ReadWriteMany"]));
    assert_eq!(
        pv["spec"]["nfs"],
        json!({"server": "192.168.2.2", "path": "/volume1/media"})
    );
    assert_eq!(
        pv["spec"]["claimRef"],
        json!({"namespace": "media", "name": "share-media"})
    );
    let pvc = object(shares, "PersistentVolumeClaim", "share-media");
    assert_eq!(pvc["spec"]["volumeName"], "share-media-media");
    assert_eq!(pvc["spec"]["storageClassName"], "");
    for o in [pv, pvc] {
        assert_eq!(
            o["metadata"]["annotations"][homelab_plan::meta::KEEP_ANNOTATION],
            homelab_plan::meta::KEEP_VALUE
        );
    }
    let sonarr = &deployment(&p, "sonarr")["spec"]["template"]["spec"];
    assert_eq!(
        sonarr["containers"][0]["volumeMounts"][1],
        json!({"name": "tv", "mountPath": "/tv", "subPath": "tv"})
    );
    assert_eq!(
        sonarr["volumes"][1],
        json!({"name": "tv", "persistentVolumeClaim": {"claimName": "share-media"}})
    );
    let plex = &deployment(&p, "plex")["spec"]["template"]["spec"];
    assert_eq!(
        plex["containers"][0]["volumeMounts"][1],
        json!({"name": "media", "mountPath": "/data", "readOnly": true})
    );
    for app in ["plex", "sonarr", "radarr", "qbittorrent"] {
        assert!(
            p.component(app)
                .unwrap()
                .depends_on
                .contains(&"shares".to_string()),
            "{app}"
        );
    }
}

#[test]
fn basic_auth_puts_the_labs_login_in_front_of_the_app() {
    let p = media();
    let qb = p.component("qbittorrent").unwrap();
    let ing = object(qb, "Ingress", "qbittorrent");
    assert_eq!(
        ing["metadata"]["annotations"]["traefik.ingress.kubernetes.io/router.middlewares"],
        "media-qbittorrent-basic-auth@kubernetescrd"
    );
    assert_eq!(ing["spec"]["rules"][0]["host"], "torrents.home.example.com");
    let mw = object(qb, "Middleware", "qbittorrent-basic-auth");
    assert_eq!(mw["spec"]["basicAuth"]["secret"], "qbittorrent-basic-auth");
    let secret = qb
        .secret_objects
        .iter()
        .find(|s| s.name == "qbittorrent-basic-auth")
        .unwrap();
    assert_eq!(secret.namespace, "media");
    let need = p
        .secrets
        .iter()
        .find(|s| s.name == "traefik-dashboard-htpasswd")
        .unwrap();
    assert!(
        need.used_by.contains("qbittorrent"),
        "rotation re-applies it"
    );
    // Apps without `auth` get no middleware.
    let sonarr = object(p.component("sonarr").unwrap(), "Ingress", "sonarr");
    assert!(
        sonarr["metadata"]["annotations"]
            .get("traefik.ingress.kubernetes.io/router.middlewares")
            .is_none()
    );
}

#[test]
fn the_users_chart_is_a_release_after_what_it_depends_on_with_its_host() {
    let p = media();
    let names: Vec<&str> = p.components.iter().map(|c| c.name.as_str()).collect();
    let at = |n: &str| names.iter().position(|x| *x == n).unwrap();
    assert!(at("ollama") < at("chat"));
    let c = p.component("chat").unwrap();
    assert_eq!(c.namespace.as_deref(), Some("ai"));
    assert!(c.depends_on.contains(&"ollama".to_string()));
    let r = &c.releases[0];
    assert_eq!(
        (
            r.name.as_str(),
            r.namespace.as_str(),
            r.chart.name.as_str(),
            r.chart.version.as_str(),
            r.chart.repo.as_str()
        ),
        (
            "chat",
            "ai",
            "open-webui",
            "16.0.0",
            "https://helm.openwebui.com"
        )
    );
    assert_eq!(
        r.values["ollamaUrls"][0],
        "http://ollama.ml.svc.cluster.local:11434"
    );
    let ing = object(c, "Ingress", "chat");
    let backend = &ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"];
    assert_eq!(
        backend,
        &json!({"name": "chat-open-webui", "port": {"number": 80}})
    );
    assert_eq!(ing["spec"]["rules"][0]["host"], "chat.home.example.com");
    assert!(c.health.contains(&HealthCheck::HelmChart {
        namespace: "kube-system".into(),
        name: "chat".into(),
    }));
    assert!(p.urls().any(|u| u.url == "https://chat.home.example.com"));
}

/// The spec's list of catalog component names is the plan's.
#[test]
fn the_specs_catalog_names_are_the_plans() {
    let p = media();
    let presence = homelab_spec::lab::CatalogPresence {
        storage: true,
        monitoring: true,
        ollama: true,
        shares: true,
        ..Default::default()
    };
    let mut expected: Vec<&str> = homelab_spec::lab::catalog_components(&presence);
    expected.sort_unstable();
    let mut catalog: Vec<&str> = p
        .components
        .iter()
        .map(|c| c.name.as_str())
        // `manifests` (the lab names a directory) comes after everything: no `dependsOn`
        // may name it, so the spec's list leaves it out.
        .filter(|n| {
            homelab_spec::lab::CATALOG_NAMES.contains(n) && !["k3s", "manifests"].contains(n)
        })
        .collect();
    catalog.sort_unstable();
    assert_eq!(catalog, expected);
    // And for the seed lab, which has every service.
    let seed = homelab_spec::load_str("h.yaml", homelab_spec::templates::SEED).unwrap();
    let sp = plan(&seed.lab);
    let all = homelab_spec::lab::CatalogPresence {
        storage: true,
        monitoring: true,
        logging: true,
        postgres: true,
        ollama: true,
        n8n: true,
        paperless: true,
        openbao: false,
        vllm: false,
        open_webui: false,
        dev_proxy: true,
        dev_containers: true,
        shares: false,
        sso: false,
    };
    let mut expected = homelab_spec::lab::catalog_components(&all);
    expected.sort_unstable();
    let mut names: Vec<&str> = sp
        .components
        .iter()
        .map(|c| c.name.as_str())
        .filter(|n| *n != "k3s")
        .collect();
    names.sort_unstable();
    assert_eq!(names, expected);
}
