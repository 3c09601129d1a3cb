//! `homelab up` and `homelab down` through the real binary, from nothing to a lab that
//! `status` reports healthy: real sshd test hosts running the k3s stand-ins (the node and
//! kubeconfig steps), the Kubernetes API stand-in (apply and status; a thread plays what
//! cert-manager and MetalLB do once their charts are in), and an HTTPS server with a private
//! CA answering for the lab's URL. One set-up serves every scenario of a test, in order:
//! each scenario starts from what the one before left, as a user's next run does.

#[path = "../../homelab-kube/tests/support/mod.rs"]
mod kube_support;
#[path = "common/postgres.rs"]
mod postgres;
#[path = "../../homelab-proxmox/tests/support/mod.rs"]
mod pve_support;
#[path = "common/run.rs"]
mod run;
#[path = "common/terminal.rs"]
mod terminal;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use homelab_nodes::Role;
use homelab_nodes::testkit::TestLab;
use kube_support::tls::{HttpsServer, make_certificates};
use kube_support::{StandIn, StandInOptions};
use run::Run;
use serde_json::{Value, json};

const CLOUDFLARE_TOKEN: &str = "cf-up-test-token-93e1d7";
const PVE_TOKEN_ID: &str = "homelab@pve!lab";
const PVE_TOKEN: &str = "5d1e-up-test-pve-token";
const HOSTS: [(&str, Role); 2] = [("s1", Role::Server), ("a1", Role::Agent)];

/// A lab directory (spec, secrets, age key, HOME) for the test hosts, with the API stand-in
/// and the HTTPS server the cluster steps talk to.
struct UpLab {
    /// The PostgreSQL server the backup Jobs reach, for a lab with `services.postgres`.
    pg: Option<postgres::PgServer>,
    /// The Proxmox VE simulator the VMs are made on, for a lab with `proxmox:`.
    pve: Option<pve_support::FakePve>,
    hosts: TestLab,
    standin: StandIn,
    https: HttpsServer,
    dir: tempfile::TempDir,
    /// Set while the thread that plays cert-manager and MetalLB should stop.
    stop_controllers: Arc<AtomicBool>,
}

impl Drop for UpLab {
    fn drop(&mut self) {
        self.stop_controllers.store(true, Ordering::SeqCst);
    }
}

impl UpLab {
    fn start() -> UpLab {
        Self::start_with(false, false)
    }

    /// With `postgres`: NFS storage on the test NAS, `services.postgres`, a real PostgreSQL
    /// server, and a stand-in that runs the backup Jobs on this machine (ADR 0048).
    /// With `proxmox`: the nodes are VMs on fakepve (a template at VMID 9000), booted by its
    /// guests' side at the test hosts' addresses, where the test hosts' sshd answers.
    fn start_with(postgres: bool, proxmox: bool) -> UpLab {
        let hosts = TestLab::start(&HOSTS);
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("home")).unwrap();
        std::fs::create_dir(dir.path().join("lab")).unwrap();
        let pg = postgres.then(|| {
            assert!(
                postgres::is_root(),
                "the backup Jobs run in their own mount namespaces: run as root"
            );
            let pg = postgres::PgServer::start_on_loopback();
            pg.fill();
            pg
        });
        let run_jobs = pg.as_ref().map(|pg| {
            std::fs::create_dir(dir.path().join("volume")).unwrap();
            let config = dir.path().join("job-runner.json");
            std::fs::write(
                &config,
                serde_json::to_string_pretty(&json!({
                    "workdir": dir.path().join("pods"),
                    "claims": {"data/postgres-backup": dir.path().join("volume")},
                    "env": {"PGHOST": "127.0.0.1", "PGPORT": pg.port.to_string()},
                    "path": format!("{}:/usr/bin:/bin", pg.bin_dir().display()),
                    "retry_delay": 0.2,
                }))
                .unwrap(),
            )
            .unwrap();
            config
        });
        let standin = StandIn::start(&StandInOptions {
            nodes: HOSTS.iter().map(|(n, _)| n.to_string()).collect(),
            run_jobs,
            ..StandInOptions::default()
        });
        register_charts(&standin);
        std::fs::create_dir(dir.path().join("certs")).unwrap();
        make_certificates(&dir.path().join("certs"), "*.lab.example.com");
        let https = HttpsServer::start(&dir.path().join("certs"), "TLSv1_3");
        let pve = proxmox.then(|| {
            pve_support::FakePve::with_tokens(
                json!({"guests_boot": true, "guests": [{"vmid": 9000, "name": "tmpl", "template": true, "config": {
                    "scsi0": "local-lvm:base-9000-disk-0,size=4G",
                    "ide2": "local-lvm:vm-9000-cloudinit,media=cdrom",
                    "net0": "virtio=BC:24:11:00:00:01,bridge=vmbr0",
                    "scsihw": "virtio-scsi-pci", "memory": 2048, "cores": 1}}]}),
                &[(PVE_TOKEN_ID, PVE_TOKEN)],
            )
        });
        let lab = UpLab {
            pg,
            pve,
            hosts,
            standin,
            https,
            dir,
            stop_controllers: Arc::new(AtomicBool::new(false)),
        };
        lab.write_spec();
        lab.play_controllers();
        lab
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn write_spec(&self) {
        let (net, _) = self.hosts.gateway.rsplit_once('.').unwrap();
        let mut nodes = String::new();
        for h in &self.hosts.hosts {
            nodes.push_str(&format!(
                "    - {{name: {}, role: {}, address: {}, ssh: {{user: root}}{}}}\n",
                h.name,
                match h.role {
                    Role::Server => "server",
                    Role::Agent => "agent",
                },
                h.ip,
                if self.pve.is_some() { ", vm: {}" } else { "" }
            ));
        }
        let spec = format!(
            "name: test-lab\nnetwork:\n  subnet: {net}.0/24\n  gateway: {gw}\n  domain: lab.example.com\n  loadBalancerPool: {net}.100-{net}.120\n\
cluster:\n  k3sVersion: v1.31.2+k3s1\n  nodes:\n{nodes}\
tls:\n  acmeEmail: you@example.com\n  challenge: {{type: dns01, provider: cloudflare, apiToken: {{secret: cloudflare-api-token}}}}\n{postgres}",
            // The NAS stand-in is this machine, the hosts' gateway; the spec may not name
            // the NAS as its gateway, and nothing the steps do reads the gateway.
            gw = if self.pg.is_some() {
                format!("{net}.254")
            } else {
                self.hosts.gateway.clone()
            },
            postgres = if self.pg.is_some() {
                format!(
                    "storage:\n  nfs: {{server: {}, path: /volume1/k8s-data}}\nservices:\n  postgres:\n    databases: [{{name: shop}}, {{name: notes}}]\n",
                    self.hosts.nas_address()
                )
            } else {
                String::new()
            }
        );
        let spec = match &self.pve {
            Some(pve) => format!(
                "{spec}proxmox:\n  endpoint: {}\n  node: pve1\n  verifyTls: false\n  tokenId: {PVE_TOKEN_ID}\n  tokenSecret: {{secret: proxmox-token}}\n  sshKeys: [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHomelabTestKeyOnly you@host\"]\n  template: 9000\n",
                pve.endpoint
            ),
            None => spec,
        };
        std::fs::write(self.path("lab/homelab.yaml"), spec).unwrap();
    }

    /// `homelab secrets init`, and the one secret only the user can give.
    fn init_secrets(&self) {
        self.run(&["secrets", "init"], &[]).ok();
        self.run_stdin(
            &["secrets", "set", "cloudflare-api-token"],
            CLOUDFLARE_TOKEN,
        )
        .ok();
        if self.pve.is_some() {
            self.run_stdin(&["secrets", "set", "--force", "proxmox-token"], PVE_TOKEN)
                .ok();
        }
    }

    fn environment(&self, cmd: &mut Command) {
        cmd.current_dir(self.path("lab"))
            .env_clear()
            // Some test labs start from the example lab; refusing its values is tested on
            // its own (spec::cli).
            .env("HOMELAB_ALLOW_EXAMPLE_VALUES", "1")
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.path("home"))
            .env("SOPS_AGE_KEY_FILE", self.path("lab/age.key"))
            .env("HOMELAB_SSH_CONFIG", self.hosts.ssh_config())
            .env("HOMELAB_K3S_INSTALLER_URL", self.hosts.installer_url());
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("homelab"));
        self.environment(&mut cmd);
        cmd.args(args);
        cmd
    }

    fn run(&self, args: &[&str], extra: &[&str]) -> Run {
        let mut cmd = self.command(args);
        cmd.args(extra).stdin(Stdio::null());
        let started = Instant::now();
        let run = Run::from_output(cmd.output().unwrap());
        eprintln!(
            "$ homelab {} {}\n[{:.2}s] {}",
            args.join(" "),
            extra.join(" "),
            started.elapsed().as_secs_f64(),
            run.transcript()
        );
        assert!(
            !run.stdout.contains(CLOUDFLARE_TOKEN) && !run.stderr.contains(CLOUDFLARE_TOKEN),
            "a secret was printed"
        );
        run
    }

    fn run_stdin(&self, args: &[&str], input: &str) -> Run {
        use std::io::Write as _;
        let mut cmd = self.command(args);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        Run::from_output(child.wait_with_output().unwrap())
    }

    /// The flags that point `up` at the stand-in and the HTTPS server.
    fn cluster_flags(&self) -> Vec<String> {
        vec![
            "--kubeconfig".into(),
            self.standin.kubeconfig.display().to_string(),
            "--resolve".into(),
            format!("*=127.0.0.1:{}", self.https.port),
            "--ca-file".into(),
            self.path("certs/ca.pem").display().to_string(),
            "--timeout".into(),
            "30s".into(),
        ]
    }

    /// `homelab up ARGS` with the cluster flags.
    fn up(&self, args: &[&str]) -> Run {
        let flags = self.cluster_flags();
        let mut all = vec!["up"];
        all.extend(args);
        if !args.contains(&"--wait") {
            all.extend(["--wait", "20s"]);
        }
        let extra: Vec<&str> = flags.iter().map(String::as_str).collect();
        self.run(&all, &extra)
    }

    /// Starts `homelab up` (the cluster flags, its default wait) and kills it (SIGKILL) as soon
    /// as `reached` says it got to the point `what` names.
    fn kill_up_when(&self, what: &str, reached: impl Fn() -> bool) {
        let flags = self.cluster_flags();
        let mut child = self
            .command(&["up"])
            .args(&flags)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while !reached() {
            assert!(
                child.try_wait().unwrap().is_none(),
                "up ended before {what}"
            );
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "up never got to where {what}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9),
            "up was killed, not finished, when {what}"
        );
    }

    fn status(&self) -> Run {
        let flags = self.cluster_flags();
        let extra: Vec<&str> = flags[..6].iter().map(String::as_str).collect();
        self.run(&["status", "--output", "json"], &extra)
    }

    fn journal(&self) -> Option<Value> {
        std::fs::read_to_string(self.path("lab/.homelab/up.json"))
            .ok()
            .map(|t| serde_json::from_str(&t).unwrap())
    }

    /// The names of the PersistentVolumeClaims in `namespace` on the stand-in.
    fn claims(&self, namespace: &str) -> Vec<String> {
        let (_, list) = self.standin.request(
            "GET",
            &format!("/api/v1/namespaces/{namespace}/persistentvolumeclaims"),
            "application/json",
            None,
        );
        let mut names: Vec<String> = list["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Whether the stand-in has the object at `path`.
    fn exists(&self, path: &str) -> bool {
        self.standin
            .request("GET", path, "application/json", None)
            .0
            == 200
    }

    fn installed(&self, host: &str) -> bool {
        self.hosts.file(host, homelab_nodes::CONFIG_PATH).is_some()
    }

    /// Plays MetalLB (the ingress address on Traefik's Service, once MetalLB's pool is in the
    /// cluster), as long as the lab lives.
    fn play_controllers(&self) {
        let port = self.standin.port;
        let stop = self.stop_controllers.clone();
        let (net, _) = self.hosts.gateway.rsplit_once('.').unwrap();
        let ingress = format!("{net}.100");
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                controllers_pass(port, &ingress);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
    }
}

/// One pass of the controllers the stand-in does not play itself.
fn controllers_pass(port: u16, ingress: &str) {
    let get = |path: &str| kube_support::http_json(port, "GET", path, "application/json", None).0;
    // The StatefulSet controller's claim for PostgreSQL's data.
    if get("/apis/apps/v1/namespaces/data/statefulsets/postgres") == 200
        && get("/api/v1/namespaces/data/persistentvolumeclaims/data-postgres-0") == 404
    {
        kube_support::http_json(
            port,
            "POST",
            "/api/v1/namespaces/data/persistentvolumeclaims",
            "application/json",
            Some(&json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": "data-postgres-0", "namespace": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})),
        );
    }
    if get("/apis/metallb.io/v1beta1/namespaces/infra/ipaddresspools/lab-pool") == 200
        && get("/api/v1/namespaces/kube-system/services/traefik") == 404
    {
        let mut svc = service("traefik", 443);
        svc["metadata"]["namespace"] = json!("kube-system");
        svc["metadata"]["annotations"] = json!({"metallb.io/loadBalancerIPs": ingress});
        svc["spec"]["type"] = json!("LoadBalancer");
        kube_support::http_json(
            port,
            "POST",
            "/api/v1/namespaces/kube-system/services",
            "application/json",
            Some(&svc),
        );
    }
}

fn crd(group: &str, kind: &str, plural: &str, version: &str, scope: &str) -> Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{group}")},
        "spec": {"group": group, "scope": scope,
                 "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase()},
                 "versions": [{"name": version, "served": true, "storage": true,
                               "subresources": {"status": {}},
                               "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}})
}

fn workload(kind: &str, name: &str) -> Value {
    let labels = json!({"app.kubernetes.io/name": name});
    let mut spec = json!({"selector": {"matchLabels": labels},
        "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": name, "image": "registry.k8s.io/pause:3.10"}]}}});
    if kind != "DaemonSet" {
        spec["replicas"] = json!(1);
    }
    json!({"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name}, "spec": spec})
}

fn service(name: &str, port: u16) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
        "spec": {"selector": {"app.kubernetes.io/name": name}, "ports": [{"name": "https", "port": port, "targetPort": port}]}})
}

/// What the charts of this lab create when their HelmChart is installed, and what K3s
/// brings up by itself (Traefik's CRDs, Deployment and LoadBalancer Service).
fn register_charts(standin: &StandIn) {
    standin.register_chart(
        "kube-system",
        "metallb",
        &[
            crd(
                "metallb.io",
                "IPAddressPool",
                "ipaddresspools",
                "v1beta1",
                "Namespaced",
            ),
            crd(
                "metallb.io",
                "L2Advertisement",
                "l2advertisements",
                "v1beta1",
                "Namespaced",
            ),
            service("metallb-webhook-service", 443),
            workload("Deployment", "metallb-controller"),
            workload("DaemonSet", "metallb-speaker"),
        ],
    );
    standin.register_chart(
        "kube-system",
        "cert-manager",
        &[
            crd(
                "cert-manager.io",
                "Certificate",
                "certificates",
                "v1",
                "Namespaced",
            ),
            crd(
                "cert-manager.io",
                "ClusterIssuer",
                "clusterissuers",
                "v1",
                "Cluster",
            ),
            crd("cert-manager.io", "Issuer", "issuers", "v1", "Namespaced"),
            service("cert-manager-webhook", 443),
            workload("Deployment", "cert-manager"),
            workload("Deployment", "cert-manager-webhook"),
            workload("Deployment", "cert-manager-cainjector"),
        ],
    );
    standin.register_chart(
        "kube-system",
        "nfs-provisioner",
        &[workload(
            "Deployment",
            "nfs-provisioner-nfs-subdir-external-provisioner",
        )],
    );
    let post = |collection: &str, body: Value| {
        let (code, answer) = standin.request("POST", collection, "application/json", Some(&body));
        assert_eq!(code, 201, "POST {collection}: {answer}");
    };
    for (kind, plural) in [
        ("Middleware", "middlewares"),
        ("IngressRoute", "ingressroutes"),
        ("TLSOption", "tlsoptions"),
    ] {
        post(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            crd("traefik.io", kind, plural, "v1alpha1", "Namespaced"),
        );
    }
    let mut traefik = workload("Deployment", "traefik");
    traefik["metadata"]["namespace"] = json!("kube-system");
    post("/apis/apps/v1/namespaces/kube-system/deployments", traefik);
}

fn steps(run: &Run) -> Vec<(String, String)> {
    run.json()["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["step"].as_str().unwrap().to_string(),
                s["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn outcome(run: &Run, step: &str) -> String {
    steps(run)
        .into_iter()
        .find(|(s, _)| s == step)
        .unwrap_or_else(|| panic!("no step {step}:\n{}", run.transcript()))
        .1
}

#[test]
fn up_from_nothing_to_healthy_resumes_after_each_kind_of_stop_and_down_takes_it_away() {
    let lab = UpLab::start();

    // A secret only the user can give is missing: the secrets step stops before any host is
    // contacted (exit 2, as for an invalid input), naming the command that sets it, and the
    // journal records that validation finished.
    lab.run(&["secrets", "init"], &[]).ok();
    let stopped = lab.up(&["--output", "json"]).expect(2);
    let report = stopped.json();
    assert_eq!(report["failedStep"], "secrets", "{}", stopped.transcript());
    assert!(
        report["error"]
            .as_str()
            .unwrap()
            .contains("`homelab secrets set cloudflare-api-token`"),
        "{report}"
    );
    assert_eq!(
        steps(&stopped),
        [("validate".to_string(), "unchanged".to_string())]
    );
    assert!(
        lab.hosts.logins("s1") + lab.hosts.logins("a1") == 0,
        "no host was contacted"
    );
    let journal = lab.journal().expect("the journal records validate");
    assert_eq!(journal["complete"], false);
    assert_eq!(journal["finished"][0]["step"], "validate");
    assert_eq!(journal["finished"].as_array().unwrap().len(), 1);
    lab.init_secrets();

    // The dry run from nothing: every step checks, nothing changes, the journal included.
    let dry = lab.up(&["--dry-run", "--output", "json"]).ok();
    assert_eq!(outcome(&dry, "nodes"), "dryRun", "{}", dry.transcript());
    assert_eq!(outcome(&dry, "kubeconfig"), "dryRun");
    assert_eq!(outcome(&dry, "vms"), "skipped");
    assert_eq!(dry.json()["changed"], false);
    assert!(!lab.installed("s1") && !lab.installed("a1"));
    assert_eq!(
        lab.journal().unwrap(),
        journal,
        "a dry run writes no journal"
    );
    assert!(!lab.path("home/.kube").exists());

    // An installer mirror that does not answer stops the nodes step; the run says which
    // step and what to do, and the steps before it are recorded.
    let stopped = lab
        .up(&[
            "--installer-url",
            "http://127.0.0.1:9/install.sh",
            "--output",
            "json",
        ])
        .expect(1);
    let report = stopped.json();
    assert_eq!(report["failedStep"], "nodes", "{}", stopped.transcript());
    assert_eq!(report["resumedAt"], "secrets");
    assert!(
        report["help"]
            .as_str()
            .unwrap()
            .contains("run `homelab up` again"),
        "{report}"
    );
    assert_eq!(
        steps(&stopped),
        [
            ("validate".to_string(), "unchanged".to_string()),
            ("secrets".into(), "unchanged".into()),
            ("vms".into(), "skipped".into())
        ]
    );
    assert!(!lab.installed("a1"));
    let journal = lab
        .journal()
        .expect("the journal records the finished steps");
    assert_eq!(journal["complete"], false);
    assert_eq!(journal["finished"].as_array().unwrap().len(), 3);

    // Killed in the middle of the nodes step (every remote command slowed by the hosts'
    // login shell): the server has its k3s config, the agent nothing yet.
    lab.hosts.slow_login_shell(Duration::from_millis(300));
    lab.kill_up_when("the server's k3s config is written", || {
        lab.journal().is_some_and(|j| j["complete"] == false) && lab.installed("s1")
    });
    lab.hosts.plain_login_shell();
    assert!(
        !lab.installed("a1"),
        "the kill came after the nodes step, not in it"
    );
    assert_eq!(
        lab.journal().unwrap()["finished"].as_array().unwrap().len(),
        3
    );

    // The next run says where it resumes and goes from there to healthy.
    let resumed = lab.up(&[]).ok();
    assert!(
        resumed.stderr.contains(
            "Resuming at `nodes` (converge the nodes): the last run finished validate, secrets, vms"
        ),
        "{}",
        resumed.transcript()
    );
    assert!(
        resumed.stdout.contains("Lab `test-lab` is up and healthy"),
        "{}",
        resumed.transcript()
    );
    assert!(lab.installed("a1"));
    let merged = std::fs::read_to_string(lab.path("home/.kube/config")).unwrap();
    assert!(merged.contains("name: test-lab"), "{merged}");
    assert!(lab.path("home/.kube/test-lab.yaml").exists());
    let status = lab.status().ok().json();
    assert_eq!(status["health"], "healthy");
    assert_eq!(status["nodes"].as_array().unwrap().len(), 2);
    assert_eq!(lab.journal().unwrap()["complete"], true);

    // The same command again changes nothing, on the hosts or in the cluster.
    lab.hosts.clear_calls();
    let again = lab.up(&["--output", "json"]).ok();
    let report = again.json();
    assert_eq!(report["changed"], false, "{}", again.transcript());
    assert_eq!(report["resumedAt"], Value::Null);
    for (step, outcome) in steps(&again) {
        assert!(
            outcome == "unchanged" || outcome == "skipped",
            "{step} {outcome}: {}",
            again.transcript()
        );
    }
    let calls = lab.hosts.calls();
    assert!(
        calls.iter().all(|(_, c)| !c.contains("install")),
        "a converged lab installs nothing: {calls:?}"
    );

    // An age key that does not open the secrets file (another one in its place) stops the
    // secrets step, before any host is contacted; with the right key back, the next run goes
    // on from there and finds nothing to change.
    let key = lab.path("lab/age.key");
    std::fs::rename(&key, lab.path("right.key")).unwrap();
    let made = Command::new("age-keygen")
        .arg("-o")
        .arg(&key)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(made.success());
    lab.hosts.clear_calls();
    let before = std::fs::read(lab.path("home/.kube/config")).unwrap();
    let stopped = lab.up(&["--output", "json"]).expect(1);
    let report = stopped.json();
    assert_eq!(report["failedStep"], "secrets", "{}", stopped.transcript());
    let error = report["error"].as_str().unwrap();
    assert!(
        error.contains("cannot be opened here")
            && error.contains("wrong key")
            && error.contains("SOPS_AGE_KEY_FILE"),
        "{error}"
    );
    assert!(lab.hosts.calls().is_empty(), "no host was contacted");
    assert_eq!(
        lab.journal().unwrap()["finished"].as_array().unwrap().len(),
        1
    );
    std::fs::rename(lab.path("right.key"), &key).unwrap();
    let resumed = lab.up(&["--output", "json"]).ok();
    let report = resumed.json();
    assert_eq!(report["resumedAt"], "secrets", "{}", resumed.transcript());
    assert_eq!(report["changed"], false, "{}", resumed.transcript());
    assert_eq!(
        std::fs::read(lab.path("home/.kube/config")).unwrap(),
        before
    );

    // An API that fails stops the apply step; the next run goes on from there.
    lab.standin.inject_fault("GET", "/helmcharts", 503, 1000);
    let stopped = lab
        .up(&["--api-retries", "0", "--output", "json"])
        .expect(1);
    assert_eq!(
        stopped.json()["failedStep"],
        "apply",
        "{}",
        stopped.transcript()
    );
    lab.standin.clear_faults();
    let resumed = lab.up(&[]).ok();
    assert!(
        resumed
            .stderr
            .contains("Resuming at `apply` (apply the lab to the cluster)"),
        "{}",
        resumed.transcript()
    );

    // A workload that does not become ready stops the status step after --wait, naming it.
    let controller = "/apis/apps/v1/namespaces/infra/deployments/metallb-controller";
    lab.standin.patch_status(
        controller,
        json!({"availableReplicas": 0, "readyReplicas": 0}),
    );
    let stopped = lab.up(&["--wait", "2s"]).expect(1);
    assert!(
        stopped
            .stderr
            .contains("wait until the lab is healthy failed")
            && stopped.stderr.contains("metallb-controller"),
        "{}",
        stopped.transcript()
    );
    lab.standin.patch_status(
        controller,
        json!({"availableReplicas": 1, "readyReplicas": 1}),
    );
    let resumed = lab.up(&["--output", "json"]).ok();
    assert_eq!(resumed.json()["resumedAt"], "status");

    // A kubeconfig that cannot be written stops its step; nothing after it runs.
    let kube = lab.path("home/.kube");
    std::fs::rename(&kube, lab.path("home/kube.saved")).unwrap();
    std::fs::write(&kube, "not a directory").unwrap();
    let stopped = lab.up(&["--output", "json"]).expect(1);
    assert_eq!(
        stopped.json()["failedStep"],
        "kubeconfig",
        "{}",
        stopped.transcript()
    );
    std::fs::remove_file(&kube).unwrap();
    std::fs::rename(lab.path("home/kube.saved"), &kube).unwrap();
    let resumed = lab.up(&["--output", "json"]).ok();
    assert_eq!(resumed.json()["resumedAt"], "kubeconfig");

    // Killed in the middle of the apply step (a slow API): the next run finishes it.
    lab.standin.set_latency(Duration::from_millis(300));
    lab.kill_up_when("the apply step has started", || {
        // The journal of this run (not the complete one of the run before) past kubeconfig,
        // and some of apply's (slow) requests on their way.
        let at_apply = lab.journal().is_some_and(|j| {
            j["complete"] == false
                && j["finished"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|f| f["step"] == "kubeconfig")
        });
        if at_apply {
            std::thread::sleep(Duration::from_millis(500));
        }
        at_apply
    });
    lab.standin.set_latency(Duration::ZERO);
    let resumed = lab.up(&["--output", "json"]).ok();
    assert_eq!(
        resumed.json()["resumedAt"],
        "apply",
        "{}",
        resumed.transcript()
    );

    // down: refused without a terminal or --yes, and nothing goes.
    let refused = lab.run(&["down"], &[]).expect(1);
    assert!(
        refused
            .stderr
            .contains("refusing to take lab `test-lab` down")
            && refused.stderr.contains("k3s and all its data on a1, s1")
            && refused.stderr.contains("--yes"),
        "{}",
        refused.transcript()
    );
    assert!(lab.installed("s1") && lab.installed("a1"));
    let dry = lab
        .run(&["down", "--dry-run", "--output", "json"], &[])
        .ok();
    assert_eq!(outcome(&dry, "resetNodes"), "dryRun");
    assert!(lab.installed("s1") && lab.installed("a1"));

    // With --yes: k3s goes from every host, agents first, and the journal with it.
    let down = lab.run(&["down", "--yes", "--output", "json"], &[]).ok();
    assert_eq!(
        outcome(&down, "resetNodes"),
        "changed",
        "{}",
        down.transcript()
    );
    assert_eq!(outcome(&down, "deleteData"), "skipped");
    assert!(!lab.installed("s1") && !lab.installed("a1"));
    assert!(lab.journal().is_none());
    let again = lab.run(&["down", "--yes", "--output", "json"], &[]).ok();
    assert_eq!(
        outcome(&again, "resetNodes"),
        "unchanged",
        "{}",
        again.transcript()
    );
}

/// With PostgreSQL on: the first run backs the databases up and drills the dumps once the
/// lab is healthy apart from the backup that has not run yet; the next run drills no more.
#[test]
fn up_with_postgres_runs_a_first_backup_and_drill_once() {
    let lab = UpLab::start_with(true, false);
    lab.init_secrets();

    // PostgreSQL is down: the first backup fails, so the drill step stops the run with what
    // to do (exit 1); the journal has every step before it and no drill.
    let pg = lab.pg.as_ref().unwrap();
    pg.stop();
    let stopped = lab.up(&["--output", "json"]).expect(1);
    let report = stopped.json();
    assert_eq!(report["failedStep"], "drill", "{}", stopped.transcript());
    let error = report["error"].as_str().unwrap();
    assert!(error.contains("the first backup failed"), "{error}");
    assert!(
        report["help"]
            .as_str()
            .unwrap()
            .contains("`homelab backup drill` runs this step alone"),
        "{report}"
    );
    let journal = lab.journal().unwrap();
    let finished: Vec<&str> = journal["finished"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        finished,
        [
            "validate",
            "secrets",
            "vms",
            "nodes",
            "kubeconfig",
            "apply",
            "status"
        ]
    );
    assert!(journal.get("firstDrillPassed").is_none(), "{journal}");

    // With PostgreSQL back, the next run goes on at the drill; the steps before find nothing
    // to change.
    pg.start_server();
    let first = lab.up(&["--output", "json"]).ok();
    assert_eq!(first.json()["resumedAt"], "drill", "{}", first.transcript());
    for (step, outcome) in steps(&first) {
        if step != "drill" {
            assert!(
                outcome == "unchanged" || outcome == "skipped",
                "{step} {outcome}: {}",
                first.transcript()
            );
        }
    }
    assert_eq!(
        outcome(&first, "drill"),
        "changed",
        "{}",
        first.transcript()
    );
    let drill = first.json()["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "drill")
        .unwrap()["summary"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        drill.contains("backed up 3 database(s)")
            && drill.contains("compared 3 table(s): all match"),
        "{drill}"
    );
    let dumps: Vec<String> = walk(&lab.path("volume"));
    assert!(
        dumps.iter().any(|d| d.contains("shop")) && dumps.iter().any(|d| d.contains("notes")),
        "{dumps:?}"
    );
    assert!(lab.journal().unwrap()["firstDrillPassed"].is_string());
    let status = lab.status().ok().json();
    assert_eq!(status["backups"][0]["ok"], true, "{status}");

    let again = lab.up(&["--output", "json"]).ok();
    assert_eq!(
        outcome(&again, "drill"),
        "unchanged",
        "{}",
        again.transcript()
    );
    assert_eq!(outcome(&again, "status"), "unchanged");
    assert_eq!(again.json()["changed"], false);
    let jobs = lab
        .standin
        .request(
            "GET",
            "/apis/batch/v1/namespaces/data/jobs",
            "application/json",
            None,
        )
        .1;
    let backup_jobs = jobs["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| {
            let c = &j["metadata"]["labels"]["app.kubernetes.io/component"];
            c == "backup" || c == "backup-drill"
        })
        .count();
    assert_eq!(
        backup_jobs, 3,
        "the failed backup's Job, then one backup and one drill Job, none from the next run: {jobs}"
    );

    // down keeps the volumes' data unless --delete-data, and asks before either.
    let claims = || lab.claims("data");
    assert!(
        claims().contains(&"postgres-backup".to_string()),
        "{:?}",
        claims()
    );
    let kube = [
        "--kubeconfig".to_string(),
        lab.standin.kubeconfig.display().to_string(),
    ];
    let kube: Vec<&str> = kube.iter().map(String::as_str).collect();
    let mut args = vec!["down", "--delete-data"];
    args.extend(&kube);
    let (code, shown) = terminal::run_on_terminal(&args, "no\n", |cmd| lab.environment(cmd));
    assert_eq!(code, 1, "{shown}");
    assert!(
        shown.contains("Take lab `test-lab` down? This loses:")
            && shown.contains(&format!(
                "the data of the lab's volumes on NFS ({}:/volume1/k8s-data)",
                lab.hosts.nas_address()
            ))
            && shown.contains("nothing was changed"),
        "{shown}"
    );
    assert!(lab.installed("s1") && lab.installed("a1"), "{shown}");
    assert!(claims().contains(&"postgres-backup".to_string()));
    let refused = lab.run(&["down", "--delete-data"], &kube).expect(1);
    assert!(
        refused
            .stderr
            .contains("refusing to take lab `test-lab` down")
            && refused
                .stderr
                .contains("the data of the lab's volumes on NFS")
            && refused.stderr.contains("--yes"),
        "{}",
        refused.transcript()
    );
    assert!(lab.installed("s1") && claims().contains(&"postgres-backup".to_string()));

    // Without --delete-data: k3s goes, the lab's objects and claims are left alone.
    let kept_before = claims();
    let down = lab.run(&["down", "--yes", "--output", "json"], &kube).ok();
    assert_eq!(
        outcome(&down, "deleteData"),
        "skipped",
        "{}",
        down.transcript()
    );
    assert_eq!(outcome(&down, "resetNodes"), "changed");
    assert!(!lab.installed("s1") && !lab.installed("a1"));
    assert_eq!(claims(), kept_before, "{}", down.transcript());
    assert!(lab.exists("/apis/apps/v1/namespaces/data/statefulsets/postgres"));

    // Back up, then down with --delete-data (confirmed on a terminal): the lab's objects and
    // every claim of its volumes are deleted before the nodes go.
    lab.up(&[]).ok();
    let dry = lab
        .run(
            &["down", "--delete-data", "--dry-run", "--output", "json"],
            &kube,
        )
        .ok();
    assert_eq!(
        outcome(&dry, "deleteData"),
        "dryRun",
        "{}",
        dry.transcript()
    );
    assert_eq!(claims(), kept_before, "a dry run deletes nothing");
    let (code, shown) = terminal::run_on_terminal(&args, "yes\n", |cmd| lab.environment(cmd));
    assert_eq!(code, 0, "{shown}");
    assert!(
        shown.contains("and the 1 claim(s) its StatefulSets made (data/data-postgres-0)"),
        "{shown}"
    );
    assert_eq!(claims(), Vec::<String>::new(), "{shown}");
    assert!(!lab.exists("/apis/apps/v1/namespaces/data/statefulsets/postgres"));
    assert!(!lab.exists("/apis/batch/v1/namespaces/data/cronjobs/postgres-backup"));
    assert!(!lab.installed("s1") && !lab.installed("a1"), "{shown}");
}

/// With `proxmox:` the nodes' VMs come first: from no VM to a healthy lab in one command
/// (after a lost quorum stopped the VM step), the same command again writes nothing to
/// Proxmox, and `down` destroys the lab's VMs (which takes k3s with them).
#[test]
fn up_on_proxmox_makes_the_vms_first_and_down_destroys_them() {
    let lab = UpLab::start_with(false, true);
    let pve = lab.pve.as_ref().unwrap();
    lab.init_secrets();
    let dry = lab.up(&["--dry-run", "--output", "json"]).ok();
    assert_eq!(outcome(&dry, "vms"), "dryRun", "{}", dry.transcript());
    assert!(
        summary(&dry, "vms").contains("2 VM(s) to clone"),
        "{}",
        dry.transcript()
    );

    pve.control(json!({"op": "lose_quorum"}));
    let stopped = lab.up(&["--output", "json"]).expect(1);
    assert_eq!(
        stopped.json()["failedStep"],
        "vms",
        "{}",
        stopped.transcript()
    );
    pve.control(json!({"op": "regain_quorum"}));

    // Killed in the middle of the VM step (a slow Proxmox API), once the first clone was
    // asked for: the next run adopts what the killed one made and finishes the rest.
    pve.control(json!({"op": "latency", "value": 0.3}));
    lab.kill_up_when("the first clone is asked for", || {
        pve.requests()
            .iter()
            .any(|(m, p)| m == "POST" && p.ends_with("/clone"))
    });
    pve.control(json!({"op": "latency", "value": 0.0}));
    assert!(!lab.installed("s1") && !lab.installed("a1"));

    let first = lab.up(&["--output", "json"]).ok();
    let report = first.json();
    assert_eq!(report["resumedAt"], "vms", "{}", first.transcript());
    assert_eq!(outcome(&first, "vms"), "changed");
    let made = summary(&first, "vms");
    assert!(
        made.contains("a1: cloned from 9000") && made.contains("2 of 2 VM(s) answer SSH"),
        "{made}"
    );
    assert_eq!(outcome(&first, "status"), "unchanged");

    pve.control(json!({"op": "clear_requests"}));
    let again = lab.up(&["--output", "json"]).ok();
    assert_eq!(
        outcome(&again, "vms"),
        "unchanged",
        "{}",
        again.transcript()
    );
    assert_eq!(again.json()["changed"], false);
    let writes: Vec<(String, String)> = pve
        .requests()
        .into_iter()
        .filter(|(m, p)| m != "GET" && !p.ends_with("/access/ticket"))
        .collect();
    assert!(writes.is_empty(), "a no-op run writes nothing: {writes:?}");

    let down = lab.run(&["down", "--yes", "--output", "json"], &[]).ok();
    assert_eq!(
        outcome(&down, "destroyVms"),
        "changed",
        "{}",
        down.transcript()
    );
    assert_eq!(outcome(&down, "resetNodes"), "skipped");
    let dry = lab.up(&["--dry-run", "--output", "json"]).ok();
    assert!(
        summary(&dry, "vms").contains("2 VM(s) to clone"),
        "{}",
        dry.transcript()
    );
}

fn summary(run: &Run, step: &str) -> String {
    run.json()["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == step)
        .unwrap_or_else(|| panic!("no step {step}:\n{}", run.transcript()))["summary"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Every file under `dir`, as paths relative to it.
fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                pending.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out
}

/// Before any host is contacted: a lab without a secrets file is told to run `secrets init`
/// (exit 2), and on a terminal `up` offers to run it, then names the secret only the user
/// can give.
#[test]
fn up_without_secrets_names_secrets_init_and_offers_it_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("home")).unwrap();
    std::fs::write(
        dir.path().join("homelab.yaml"),
        homelab_spec::templates::MINIMAL,
    )
    .unwrap();
    let env = |cmd: &mut Command| {
        cmd.current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir.path().join("home"))
            .env("HOMELAB_ALLOW_EXAMPLE_VALUES", "1")
            .env("SOPS_AGE_KEY_FILE", dir.path().join("age.key"));
    };
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("homelab"));
    env(&mut cmd);
    let run = Run::from_output(cmd.arg("up").stdin(Stdio::null()).output().unwrap()).expect(2);
    assert!(
        run.stderr.contains("secrets.sops.yaml does not exist")
            && run.stderr.contains("run `homelab secrets init`"),
        "{}",
        run.transcript()
    );
    assert!(!dir.path().join("secrets.sops.yaml").exists());
    assert!(!dir.path().join("age.key").exists());

    let (code, shown) = terminal::run_on_terminal(&["up"], "yes\n", env);
    assert_eq!(code, 2, "{shown}");
    assert!(shown.contains("Run `homelab secrets init` now?"), "{shown}");
    assert!(dir.path().join("secrets.sops.yaml").exists(), "{shown}");
    assert!(
        shown.contains("`homelab secrets set cloudflare-api-token`"),
        "{shown}"
    );
}

/// `scripts/bench-up`: times no-op runs of `homelab up` on a lab that is up (BENCH_RUNS, after
/// one warm-up run), each checked to change nothing, with BENCH_LATENCY_MS added to every API
/// request. Prints the wall time and each step's median.
#[test]
#[ignore = "a benchmark: run it with scripts/bench-up"]
fn bench_up_no_op() {
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let latency: u64 = std::env::var("BENCH_LATENCY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let lab = UpLab::start();
    lab.init_secrets();
    lab.up(&[]).ok();
    lab.standin.set_latency(Duration::from_millis(latency));
    lab.up(&["--output", "json"]).ok();
    let mut wall = Vec::new();
    let mut per_step: Vec<(String, Vec<f64>)> = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let run = lab.up(&["--output", "json"]).ok();
        wall.push(started.elapsed().as_secs_f64() * 1000.0);
        let report = run.json();
        assert_eq!(
            report["changed"],
            false,
            "a no-op run: {}",
            run.transcript()
        );
        for s in report["steps"].as_array().unwrap() {
            let name = s["step"].as_str().unwrap().to_string();
            let ms = s["seconds"].as_f64().unwrap() * 1000.0;
            match per_step.iter_mut().find(|(n, _)| *n == name) {
                Some((_, v)) => v.push(ms),
                None => per_step.push((name, vec![ms])),
            }
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    let mean = wall.iter().sum::<f64>() / wall.len() as f64;
    let (min, max) = (
        wall.iter().cloned().fold(f64::INFINITY, f64::min),
        wall.iter().cloned().fold(0.0, f64::max),
    );
    println!(
        "| `homelab up` no-op, 2 hosts, {latency} ms per API request | {runs} | {:.0} ms | {mean:.0} ms | {min:.0} ms | {max:.0} ms |",
        median(&mut wall)
    );
    for (name, v) in &mut per_step {
        println!("| step `{name}` | {runs} | {:.0} ms |", median(v));
    }
}
