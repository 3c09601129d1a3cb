//! `services.openbao` in both flavors: the official chart on raft storage with its ingress,
//! the declarative audit device and the sidecar that hands its log to the log shipper; the
//! rendered server configuration run by a real `bao server` (sealed, then initialised, the
//! audit file written); the sealed alert proven with promtool; and none of it without the key.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

use crate::common::*;
use crate::flux::Lab;
use crate::validators::{build_layers, kubernetes_version, layers_of, validate_objects};

const MONITORING: &str = "  monitoring:                  # Prometheus, Grafana, Alertmanager\n";

/// The seed lab with OpenBao on its defaults.
fn openbao_spec() -> String {
    let s = SEED.replace(MONITORING, &format!("  openbao: {{}}\n{MONITORING}"));
    assert_ne!(s, SEED, "the seed lab changed");
    s
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn has(objects: &[Value], kind: &str, name: &str) -> bool {
    objects
        .iter()
        .any(|o| o["kind"] == kind && o["metadata"]["name"] == name)
}

fn check_values(values: &Value, domain: &str) {
    assert_eq!(values["injector"]["enabled"], false);
    let server = &values["server"];
    assert_eq!(server["standalone"]["enabled"], true);
    let config = server["standalone"]["config"].as_str().unwrap();
    assert!(config.contains("storage \"raft\""), "{config}");
    assert!(config.contains("audit \"file\""), "{config}");
    assert!(!config.contains("storage \"file\""), "{config}");
    assert_eq!(server["dataStorage"]["enabled"], true);
    assert_eq!(server["dataStorage"]["size"], "5Gi");
    assert_eq!(server["auditStorage"]["enabled"], true);
    assert_eq!(server["auditStorage"]["size"], "5Gi");
    let ingress = &server["ingress"];
    assert_eq!(ingress["enabled"], true);
    assert_eq!(ingress["ingressClassName"], "traefik");
    let host = format!("bao.{domain}");
    assert_eq!(ingress["hosts"], json!([{"host": host, "paths": []}]));
    assert_eq!(
        ingress["tls"],
        json!([{"secretName": "openbao-tls", "hosts": [host]}])
    );
    let sidecar = &server["extraContainers"][0];
    assert_eq!(sidecar["name"], "audit-log");
    assert_eq!(
        sidecar["volumeMounts"],
        json!([{"name": "audit", "mountPath": "/openbao/audit", "readOnly": true}])
    );
    let command = sidecar["command"][2].as_str().unwrap();
    assert!(
        command.contains("tail -n 0 -F /openbao/audit/audit.log"),
        "{command}"
    );
    assert!(
        config.contains("file_path = \"/openbao/audit/audit.log\""),
        "the sidecar follows the file the audit device writes:\n{config}"
    );
    // The rotation: its own container that may write the audit volume and signal the server.
    let rotate = &server["extraContainers"][1];
    assert_eq!(rotate["name"], "audit-rotate");
    assert_eq!(
        rotate["volumeMounts"],
        json!([{"name": "audit", "mountPath": "/openbao/audit"}])
    );
    assert_eq!(server["shareProcessNamespace"], true);
    let script = rotate["command"][2].as_str().unwrap();
    // A tenth of the 5Gi audit volume.
    assert!(script.contains("max=536870912\n"), "{script}");
    assert!(script.contains("f=/openbao/audit/audit.log\n"), "{script}");
    assert!(script.contains("kill -HUP $pid"), "{script}");
}

fn domain(spec: &str) -> String {
    plan_of(spec).domain.clone()
}

#[test]
fn the_k3s_tree_runs_openbao_on_raft_behind_tls_with_its_audit_log_shipped() {
    let spec = openbao_spec();
    let (_tmp, objects) = layers_of(&spec);
    let chart = find(&objects, "HelmChart", "openbao");
    assert_eq!(chart["spec"]["targetNamespace"], "openbao");
    assert_eq!(chart["spec"]["version"], "0.29.2");
    check_values(
        &yaml_value(chart["spec"]["valuesContent"].as_str().unwrap()),
        &domain(&spec),
    );
    let sm = find(&objects, "ServiceMonitor", "openbao");
    assert_eq!(sm["metadata"]["namespace"], "monitoring");
    assert_eq!(
        sm["spec"]["namespaceSelector"]["matchNames"],
        json!(["openbao"])
    );
    assert_eq!(sm["spec"]["endpoints"][0]["path"], "/v1/sys/metrics");
    assert_eq!(
        sm["spec"]["endpoints"][0]["params"],
        json!({"format": ["prometheus"]})
    );
    assert!(sealed_rule(&objects).is_some());
    validate_objects(&objects, &kubernetes_version(&spec));
}

#[test]
fn the_flux_tree_carries_the_same_release() {
    let spec = openbao_spec();
    let lab = Lab::new(&spec);
    let out = lab.dir.path().join("tree");
    lab.render_into(&out);
    let objects: Vec<Value> = build_layers(&out)
        .into_iter()
        .filter(|o| o["kind"] != "Secret")
        .collect();
    let hr = find(&objects, "HelmRelease", "openbao");
    assert_eq!(hr["metadata"]["namespace"], "openbao");
    check_values(&hr["spec"]["values"], &domain(&spec));
    assert!(has(&objects, "ServiceMonitor", "openbao"));
    validate_objects(&objects, &kubernetes_version(&spec));
}

#[test]
fn the_runbook_covers_unseal_after_restart_and_a_lost_key() {
    let spec = openbao_spec();
    let plan = plan_of(&spec);
    let tree = render_k3s(&plan);
    let text = tree.text("docs/runbooks/openbao-sealed.md").unwrap();
    for part in [
        "## After a restart",
        "## A lost key",
        "homelab secrets get openbao-unseal-key-1 | BAO_ADDR=https://bao.",
        "bao operator unseal -",
        "bao operator rekey",
    ] {
        assert!(text.contains(part), "{part}\n{text}");
    }
}

#[test]
fn a_lab_without_openbao_has_none_of_it() {
    let (_tmp, objects) = layers_of(SEED);
    for (kind, name) in [
        ("HelmChart", "openbao"),
        ("ServiceMonitor", "openbao"),
        ("Namespace", "openbao"),
    ] {
        assert!(!has(&objects, kind, name), "{kind} {name}");
    }
    assert!(sealed_rule(&objects).is_none());
    let disabled = SEED.replace(
        MONITORING,
        &format!("  openbao: {{enabled: false}}\n{MONITORING}"),
    );
    let (_tmp, objects) = layers_of(&disabled);
    assert!(!has(&objects, "HelmChart", "openbao"));
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn bao(addr: &str, args: &[&str]) -> std::process::Output {
    Command::new(venv_tool("bao"))
        .env("BAO_ADDR", addr)
        .env_remove("BAO_TOKEN")
        .env_remove("VAULT_TOKEN")
        .args(args)
        .output()
        .unwrap()
}

/// `bao status` until the server answers (exit 2 is "sealed", an answer too).
fn wait_for(addr: &str, server: &mut Server, log: &Path) {
    loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            panic!(
                "bao server exited with {status}:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        let out = bao(addr, &["status", "-format=json"]);
        if out.status.code().is_some_and(|c| c == 0 || c == 2) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The configuration the chart gets is the one a real OpenBao runs: sealed at first with its
/// metrics served anyway, and once initialised the declarative audit device records requests
/// in the file the sidecar follows.
#[test]
fn a_real_bao_server_runs_the_rendered_configuration() {
    let (_tmp, objects) = layers_of(&openbao_spec());
    let values = yaml_value(
        find(&objects, "HelmChart", "openbao")["spec"]["valuesContent"]
            .as_str()
            .unwrap(),
    );
    let config = values["server"]["standalone"]["config"].as_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display().to_string();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::create_dir_all(dir.path().join("audit")).unwrap();
    let (api, cluster) = (free_port(), free_port());
    // Only the places differ from the pod: its volumes and its ports.
    let local = config
        .replace("/openbao/", &format!("{root}/"))
        .replace("[::]:8200", &format!("127.0.0.1:{api}"))
        .replace("[::]:8201", &format!("127.0.0.1:{cluster}"))
        + &format!(
            "api_addr = \"http://127.0.0.1:{api}\"\ncluster_addr = \"http://127.0.0.1:{cluster}\"\n"
        );
    assert_ne!(local, config);
    std::fs::write(dir.path().join("config.hcl"), &local).unwrap();
    let log = dir.path().join("server.log");
    let mut server = Server(
        Command::new(venv_tool("bao"))
            .args(["server", "-config"])
            .arg(dir.path().join("config.hcl"))
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("server.err")).unwrap(),
            ))
            .spawn()
            .unwrap(),
    );
    let addr = format!("http://127.0.0.1:{api}");
    wait_for(&addr, &mut server, &log);
    let metrics = |addr: &str| {
        let out = Command::new(tool("curl"))
            .args(["-sf", &format!("{addr}/v1/sys/metrics?format=prometheus")])
            .output()
            .unwrap();
        assert!(out.status.success(), "metrics unauthenticated while sealed");
        String::from_utf8(out.stdout).unwrap()
    };
    let sealed = metrics(&addr);
    assert!(
        sealed
            .lines()
            .any(|l| l.starts_with("vault_core_unsealed{") && l.ends_with(" 0")),
        "{sealed}"
    );
    let init = bao(
        &addr,
        &[
            "operator",
            "init",
            "-key-shares=1",
            "-key-threshold=1",
            "-format=json",
        ],
    );
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let init: Value = serde_json::from_slice(&init.stdout).unwrap();
    let key = init["unseal_keys_b64"][0].as_str().unwrap();
    let unseal = bao(&addr, &["operator", "unseal", key]);
    assert!(
        unseal.status.success(),
        "{}",
        String::from_utf8_lossy(&unseal.stderr)
    );
    let token = init["root_token"].as_str().unwrap();
    let list = Command::new(venv_tool("bao"))
        .env("BAO_ADDR", &addr)
        .env("BAO_TOKEN", token)
        .args(["audit", "list", "-format=json"])
        .output()
        .unwrap();
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    let devices: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(devices["file/"]["type"], "file");
    let audit = std::fs::read_to_string(dir.path().join("audit/audit.log")).unwrap();
    assert!(
        audit.lines().any(|l| l.contains("\"sys/audit\"")),
        "the audit list call is in the audit log:\n{audit}"
    );
    assert!(!audit.contains(token), "the audit log hashes the token");
    assert!(
        metrics(&addr)
            .lines()
            .any(|l| l.starts_with("vault_core_unsealed{") && l.ends_with(" 1"))
    );

    // The rendered rotation, run once by a real shell against this server: only its places
    // (the audit file, the server's pid, one round instead of a loop) differ from the pod.
    let script = values["server"]["extraContainers"][1]["command"][2]
        .as_str()
        .unwrap();
    let audit_file = dir.path().join("audit/audit.log");
    let size = std::fs::metadata(&audit_file).unwrap().len();
    let local_script = script
        .replace("/openbao/", &format!("{root}/"))
        .replace("max=536870912\n", &format!("max={size}\n"))
        .replace("$(pidof bao)", &server.0.id().to_string())
        .replace("sleep 60", "break");
    assert!(!local_script.contains("pidof") && local_script.contains("break"));
    // Rotated files from earlier rounds: the oldest beyond five is dropped, the rest shift.
    for n in 1..=5 {
        std::fs::write(
            dir.path().join(format!("audit/audit.log.{n}")),
            format!("old {n}\n"),
        )
        .unwrap();
    }
    let before = std::fs::read_to_string(&audit_file).unwrap();
    let run = Command::new(tool("sh"))
        .arg("-c")
        .arg(&local_script)
        .output()
        .unwrap();
    assert!(run.status.success(), "{run:?}");
    let said = String::from_utf8_lossy(&run.stdout);
    assert!(said.contains("audit-rotate: rotated"), "{said}");
    let rotated =
        |n: u32| std::fs::read_to_string(dir.path().join(format!("audit/audit.log.{n}"))).unwrap();
    assert_eq!(rotated(1), before, "the live file became audit.log.1");
    assert_eq!(rotated(2), "old 1\n");
    assert_eq!(rotated(5), "old 4\n", "old 5 was the oldest and is gone");
    assert!(!dir.path().join("audit/audit.log.6").exists());
    // After SIGHUP the server writes a new file at the same path, and keeps serving.
    let mut reopened = String::new();
    for _ in 0..100 {
        let call = Command::new(venv_tool("bao"))
            .env("BAO_ADDR", &addr)
            .env("BAO_TOKEN", token)
            .args(["token", "lookup", "-format=json"])
            .output()
            .unwrap();
        assert!(
            call.status.success(),
            "{}",
            String::from_utf8_lossy(&call.stderr)
        );
        reopened = std::fs::read_to_string(&audit_file).unwrap_or_default();
        if reopened.contains("auth/token/lookup-self") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        reopened.contains("auth/token/lookup-self"),
        "the server reopened its audit file after SIGHUP:\n{reopened}"
    );
    assert!(
        rotated(1).starts_with(&before),
        "the rotated file keeps what it held"
    );
    assert!(
        server.0.try_wait().unwrap().is_none(),
        "SIGHUP did not stop the server"
    );

    // A second round with the file below the limit leaves everything as it is.
    let small = local_script.replace(&format!("max={size}\n"), "max=1000000000\n");
    let run = Command::new(tool("sh"))
        .arg("-c")
        .arg(&small)
        .output()
        .unwrap();
    assert!(run.status.success() && run.stdout.is_empty(), "{run:?}");
    assert_eq!(rotated(2), "old 1\n");
}

fn sealed_rule(objects: &[Value]) -> Option<Value> {
    objects
        .iter()
        .filter(|o| o["kind"] == "PrometheusRule")
        .flat_map(|o| o["spec"]["groups"].as_array().unwrap().iter())
        .flat_map(|g| g["rules"].as_array().unwrap().iter())
        .find(|r| r["alert"] == "OpenBaoSealed")
        .cloned()
}

#[test]
fn openbao_sealed_pages_once_a_running_server_reports_itself_sealed() {
    let (_tmp, objects) = layers_of(&openbao_spec());
    let rule = sealed_rule(&objects).expect("the sealed alert");
    assert_eq!(rule["labels"]["severity"], "critical");
    assert_eq!(rule["labels"]["priority"], "P1");
    assert_eq!(
        rule["annotations"]["runbook_url"],
        "docs/runbooks/openbao-sealed.md"
    );
    let mut labels = json!({"namespace": "openbao", "pod": "openbao-0"});
    for (k, v) in rule["labels"].as_object().unwrap() {
        labels[k] = v.clone();
    }
    let firing = json!([{
        "exp_labels": labels,
        "exp_annotations": {
            "summary": "OpenBao openbao-0 in openbao is sealed",
            "description": rule["annotations"]["description"],
            "runbook_url": rule["annotations"]["runbook_url"],
        },
    }]);
    let series = |values: &str| {
        json!({
            "series": "vault_core_unsealed{namespace=\"openbao\",pod=\"openbao-0\",cluster=\"lab\"}",
            "values": values,
        })
    };
    let check = |at: &str, fires: bool| json!({"eval_time": at, "alertname": "OpenBaoSealed", "exp_alerts": if fires { firing.clone() } else { json!([]) }});
    let tests = json!([
        {
            "name": "unsealed for 10 minutes, then restarted and sealed: pages at once",
            "interval": "30s",
            "input_series": [series("1x19 0x20")],
            "alert_rule_test": [check("9m", false), check("11m", true), check("15m", true)],
        },
        {
            "name": "a new server sealed until it is initialised a few minutes later: no page",
            "interval": "30s",
            "input_series": [series("0x7 1x20")],
            "alert_rule_test": [check("1m", false), check("3m", false), check("8m", false)],
        },
        {
            "name": "a new server left sealed: pages once it has settled",
            "interval": "30s",
            "input_series": [series("0x30")],
            "alert_rule_test": [check("4m", false), check("6m", true)],
        },
        {
            "name": "unsealed throughout: never",
            "interval": "30s",
            "input_series": [series("1x30")],
            "alert_rule_test": [check("6m", false), check("14m", false)],
        },
    ]);
    promtool_test_rule("p1", &rule, "30s", json!(tests));
}

/// With `secrets.vault`, the openbao component carries the policies of the lab's readers for
/// review (the init operation writes the same text to the server); without it, none.
#[test]
fn the_tree_carries_the_policies_of_the_labs_readers() {
    let with_vault = format!(
        "{}\nsecrets:\n  vault:\n    address: https://bao.example.net\n    transitPath: sops\n    key: lab\n",
        openbao_spec()
    );
    let tree = render_k3s(&plan_of(&with_vault));
    let file = |name: &str| {
        let path = tree
            .paths()
            .find(|p| p.ends_with(&format!("/openbao/policies/{name}.hcl")))
            .unwrap_or_else(|| panic!("no policy {name}"))
            .to_string();
        tree.text(&path).unwrap().to_string()
    };
    let sops = file("homelab-sops");
    assert!(
        sops.contains("path \"sops/encrypt/lab\" {\n  capabilities = [\"update\"]\n}")
            && sops.contains("path \"sops/decrypt/lab\""),
        "{sops}"
    );
    let flux = file("flux-sops-decrypt");
    assert!(flux.contains("path \"sops/decrypt/lab\""), "{flux}");
    assert!(!flux.contains("encrypt/"), "Flux only decrypts:\n{flux}");
    let tree = render_k3s(&plan_of(&openbao_spec()));
    assert!(!tree.paths().any(|p| p.contains("/policies/")));
}
