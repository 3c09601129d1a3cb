//! The canary test: with a secrets file holding known canary values, every command that
//! reads the lab (render in both flavors, plan, validate with errors, secrets list/init/edit/
//! rekey/scan), in text, `--output json` and `-v`, must show none of them, plain or base64,
//! on stdout, on stderr or in any file it writes. The same holds for a lab whose secrets file
//! is also wrapped by a Vault/OpenBao transit key (a real OpenBao server), opened through
//! Vault alone, and the Vault token never shows either. `homelab serve` against a cluster
//! that holds the canaries in its Secrets shows none on any page, JSON or log.

#[path = "common/run.rs"]
mod run;

#[path = "secrets/support.rs"]
mod support;

#[path = "../../homelab-secrets/tests/common/tools.rs"]
mod tools;

#[path = "../../homelab-kube/tests/support/mod.rs"]
mod kube_support;

#[path = "common/dashboard.rs"]
mod dashboard;

use std::path::Path;

use homelab_secrets::canary::{Canaries, CanaryLeak};
use homelab_secrets::{Identities, Recipient};
use secrecy::ExposeSecret;
use support::*;

/// A seed lab whose secrets file holds a canary for every secret the lab needs.
fn canary_lab() -> (Lab, Canaries) {
    canary_lab_with(Lab::seed())
}

fn canary_lab_with(lab: Lab) -> (Lab, Canaries) {
    lab.init_secrets();
    let list = lab
        .run(&["secrets", "list", "--output", "json"])
        .ok()
        .json();
    let names: Vec<String> = list["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let canaries = Canaries::generate(&names);
    let recipients: Vec<Recipient> = Identities::load_file(&lab.identity())
        .expect("the identity init wrote")
        .recipients();
    std::fs::remove_file(lab.store()).unwrap();
    canaries
        .write_store(&lab.store(), &recipients)
        .expect("write the canary store");
    (lab, canaries)
}

fn leaks_in_dir(canaries: &Canaries, dir: &Path) -> Vec<CanaryLeak> {
    canaries
        .check_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
}

#[test]
fn no_command_shows_or_writes_a_secret_value() {
    let (lab, canaries) = canary_lab();
    // The canaries really are the lab's values: `get` (which is asked to) shows one.
    let token = canaries
        .value("k3s-token")
        .unwrap()
        .expose_secret()
        .to_string();
    assert_eq!(lab.get("k3s-token"), token);

    // A spec with errors beside the valid one (same lab directory, same secrets file): one
    // invalid outright, one valid but referencing a secret the file lacks.
    let seed = homelab_spec::templates::SEED;
    lab.write("broken.yaml", seed.replacen("domain: ", "domian: ", 1));
    lab.write(
        "typo.yaml",
        seed.replace(
            "{secret: grafana-admin-password}",
            "{secret: grafana-admn-password}",
        ),
    );
    // A directory with a leaked canary for `scan` to report (by name, never by value).
    let leak_dir = lab.root().join("leaky");
    std::fs::create_dir(&leak_dir).unwrap();
    std::fs::write(leak_dir.join("notes.env"), format!("TOKEN={token}\n")).unwrap();
    let leak_dir_arg = leak_dir.display().to_string();
    let (_, other) = age_keygen(&lab.root().join("other.key"));
    // A real server for `openbao-init`: the first run initialises it (its keys join the
    // file), the later ones find it unsealed.
    let bao = tools::BaoServer::start();

    let commands: Vec<(Vec<&str>, i32)> = vec![
        (vec!["render", "--out", "out-k3s"], 0),
        (vec!["render", "--out", "out-flux", "--flavor", "flux"], 0),
        (vec!["plan"], 0),
        (vec!["validate"], 0),
        (vec!["-f", "broken.yaml", "validate"], 2),
        (vec!["-f", "typo.yaml", "validate"], 2),
        (vec!["-f", "broken.yaml", "plan"], 2),
        (
            vec![
                "-f",
                "typo.yaml",
                "render",
                "--out",
                "out-typo",
                "--flavor",
                "flux",
            ],
            -1,
        ),
        (vec!["secrets", "list"], 0),
        (vec!["secrets", "init"], 0),
        (vec!["secrets", "edit"], 0),
        (vec!["secrets", "rekey", "--add", &other], 0),
        (vec!["secrets", "scan", &leak_dir_arg, "--no-history"], 1),
        (vec!["secrets", "doctor"], 0),
        (
            vec!["secrets", "openbao-init", "--address", &bao.address],
            0,
        ),
        (vec!["secrets", "set", "no-such-secret"], 2),
        (vec!["secrets", "rotate", "cloudflare-api-token"], 2),
    ];
    let mut leaks = Vec::new();
    let mut ran = 0;
    let mut openbao_outputs = Vec::new();
    for (args, code) in &commands {
        for extra in [
            &[][..],
            &["--output", "json"][..],
            &["-v"][..],
            &["-vv"][..],
        ] {
            let mut all: Vec<&str> = args.clone();
            all.extend_from_slice(extra);
            let run = lab.run_with(&all, &[("EDITOR", "true")], "");
            if *code >= 0 {
                assert_eq!(run.code, *code, "{all:?}:\n{}", run.transcript());
            }
            if extra.first() == Some(&"--output") && run.code != 0 && !run.stdout.is_empty() {
                run.json();
            }
            leaks.extend(canaries.check_text(&format!("stdout of {all:?}"), &run.stdout));
            leaks.extend(canaries.check_text(&format!("stderr of {all:?}"), &run.stderr));
            if args.contains(&"openbao-init") {
                openbao_outputs.push((all.join(" "), run.transcript()));
            }
            ran += 1;
        }
    }
    assert_eq!(ran, commands.len() * 4);
    // The server's keys and root token, generated by it rather than planted, are on no output.
    for n in (1..=5)
        .map(|n| format!("openbao-unseal-key-{n}"))
        .chain(["openbao-root-token".to_string()])
    {
        let value = lab.get(&n);
        for (args, transcript) in &openbao_outputs {
            assert!(!transcript.contains(&value), "`{args}` shows {n}");
        }
    }
    // The scan found the planted canary (so it was looking), without printing it.
    let scan = lab
        .run(&["secrets", "scan", &leak_dir_arg, "--no-history"])
        .expect(1);
    assert!(
        scan.stdout
            .contains("notes.env:1: value of secret `k3s-token`"),
        "{}",
        scan.stdout
    );

    // Every file the commands wrote: the lab (spec, rules, secrets file, both rendered
    // trees), HOME and the runtime directory. The planted leak is the only expected hit.
    let everything: Vec<CanaryLeak> = leaks_in_dir(&canaries, lab.root())
        .into_iter()
        .filter(|l| !l.place.contains("/leaky/"))
        .collect();
    leaks.extend(everything);
    assert!(
        leaks.is_empty(),
        "canary values leaked:\n{}",
        leaks
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );

    // Positive control: the flux tree carries the values, encrypted; decrypting a rendered
    // Secret shows a canary, so the checks above would have seen a plaintext one.
    let flux = lab.dir().join("out-flux");
    let mut encrypted = Vec::new();
    collect_files(&flux, &mut encrypted);
    let secret_files: Vec<_> = encrypted
        .iter()
        .filter(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains("ENC[AES256_GCM,")))
        .collect();
    assert!(
        !secret_files.is_empty(),
        "the flux flavor writes encrypted Secrets"
    );
    let mut seen = Vec::new();
    for file in &secret_files {
        let run = lab
            .run(&["secrets", "decrypt", file.to_str().unwrap()])
            .ok();
        seen.extend(canaries.check_text(&file.display().to_string(), &run.stdout));
    }
    assert!(
        seen.iter().any(|l| l.secret == "grafana-admin-password"),
        "a decrypted flux Secret holds the Grafana canary: {seen:?}"
    );
}

fn collect_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_files(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// Arguments, extra environment and the exit code expected.
type VaultRun<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, i32);

#[test]
fn no_vault_path_shows_a_secret_value_or_the_token() {
    let bao = tools::Bao::start();
    let token = bao.sops_token();
    let spec = format!(
        "{}\nsecrets:\n  vault:\n    address: {}\n    key: homelab\n",
        homelab_spec::templates::SEED,
        bao.address
    );
    let mut lab = Lab::with_spec(&spec);
    lab.set_env("VAULT_TOKEN", &token);
    let (lab, canaries) = canary_lab_with(lab);
    lab.run(&["secrets", "rekey", "--add-vault"]).ok();
    let keyless = lab.root().join("keyless-home");
    std::fs::create_dir(&keyless).unwrap();
    let keyless = keyless.display().to_string();
    let revoked = bao.sops_token();
    bao.ok(&["token", "revoke", &revoked]);
    let (_, other) = age_keygen(&lab.root().join("other.key"));

    let commands: Vec<VaultRun> = vec![
        (vec!["secrets", "list"], vec![("HOME", &keyless)], 0),
        (vec!["secrets", "init"], vec![("HOME", &keyless)], 0),
        (vec!["secrets", "edit"], vec![("HOME", &keyless)], 0),
        (
            vec!["secrets", "rekey", "--add-vault"],
            vec![("HOME", &keyless)],
            0,
        ),
        (
            vec!["secrets", "rekey", "--add", &other],
            vec![("HOME", &keyless)],
            0,
        ),
        (
            vec!["secrets", "rotate", "cloudflare-api-token"],
            vec![("HOME", &keyless)],
            2,
        ),
        (vec!["validate"], vec![("HOME", &keyless)], 0),
        (
            vec!["secrets", "get", "k3s-token"],
            vec![("HOME", &keyless), ("VAULT_TOKEN", &revoked)],
            1,
        ),
        (
            vec!["secrets", "rekey", "--remove-vault"],
            vec![("HOME", &keyless), ("VAULT_TOKEN", &revoked)],
            1,
        ),
        (vec!["secrets", "list"], vec![("VAULT_TOKEN", &revoked)], 0),
        (
            vec!["secrets", "scan", "--no-history"],
            vec![("HOME", &keyless)],
            0,
        ),
        (vec!["secrets", "doctor"], vec![("HOME", &keyless)], 0),
        (
            vec!["secrets", "doctor"],
            vec![("VAULT_TOKEN", &revoked)],
            1,
        ),
        (
            vec!["render", "--out", "out-flux", "--flavor", "flux"],
            vec![("HOME", &keyless)],
            0,
        ),
    ];
    let mut leaks = Vec::new();
    for (args, env, code) in &commands {
        for extra in [
            &[][..],
            &["--output", "json"][..],
            &["-v"][..],
            &["-vv"][..],
        ] {
            let mut all: Vec<&str> = args.clone();
            all.extend_from_slice(extra);
            let mut env = env.clone();
            env.push(("EDITOR", "true"));
            let run = lab.run_with(&all, &env, "");
            assert_eq!(run.code, *code, "{all:?}:\n{}", run.transcript());
            leaks.extend(canaries.check_text(&format!("stdout of {all:?}"), &run.stdout));
            leaks.extend(canaries.check_text(&format!("stderr of {all:?}"), &run.stderr));
            for t in [&token, &revoked] {
                assert!(
                    !run.stdout.contains(t.as_str()) && !run.stderr.contains(t.as_str()),
                    "{all:?} shows a Vault token:\n{}",
                    run.transcript()
                );
            }
            if extra.first() == Some(&"-v") && args.contains(&"rekey") && *code == 0 {
                assert!(
                    run.stderr.contains("using the Vault transit key"),
                    "{all:?} opened the file through Vault:\n{}",
                    run.transcript()
                );
            }
        }
    }
    leaks.extend(leaks_in_dir(&canaries, lab.root()));
    assert!(
        leaks.is_empty(),
        "canary values leaked:\n{}",
        leaks
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
    let mut files = Vec::new();
    collect_files(lab.root(), &mut files);
    for f in files {
        let bytes = std::fs::read(&f).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(token.as_str()),
            "{} holds the Vault token",
            f.display()
        );
    }
    // Positive control: the store is wrapped by the transit key and opens through it, and so
    // are the rendered Secrets, which Flux decrypts with the token Secret.
    let mut rendered = Vec::new();
    collect_files(&lab.dir().join("out-flux"), &mut rendered);
    let secrets: Vec<_> = rendered
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".sops.yaml"))
        .collect();
    assert!(!secrets.is_empty());
    for p in secrets {
        assert!(
            std::fs::read_to_string(p).unwrap().contains("hc_vault:"),
            "{}",
            p.display()
        );
    }
    let components =
        std::fs::read_to_string(lab.dir().join("out-flux/clusters/home-lab/components.yaml"))
            .expect("the Flux Kustomizations");
    assert!(components.contains("name: sops-hcvault"), "{components}");
    assert!(lab.read("secrets.sops.yaml").contains("hc_vault:"));
    let run = lab
        .run_with(&["secrets", "get", "k3s-token"], &[("HOME", &keyless)], "")
        .ok();
    assert_eq!(
        run.stdout.trim_end(),
        canaries.value("k3s-token").unwrap().expose_secret()
    );
}

#[test]
fn the_dashboard_shows_no_secret_value_on_any_page_json_or_log() {
    let (lab, canaries) = canary_lab();
    let standin = kube_support::StandIn::start(&kube_support::StandInOptions {
        nodes: vec![
            "k3s-master".into(),
            "k3s-worker-01".into(),
            "k3s-worker-02".into(),
        ],
        ..Default::default()
    });
    let kc = standin.kubeconfig.display().to_string();
    // Whatever of the lab the stand-in takes (its charts' contents are not played here), the
    // Secrets go in with their component.
    let applied = lab.run(&["apply", "--timeout", "20s", "--kubeconfig", &kc]);
    let (code, secrets) = standin.request("GET", "/api/v1/secrets", "application/json", None);
    assert_eq!(code, 200, "{secrets}");
    let held = canaries.check_text("the cluster's Secrets", &secrets.to_string());
    assert!(
        !held.is_empty(),
        "positive control: the cluster holds canaries in its Secrets\n{}",
        applied.transcript()
    );

    let log = lab.root().join("serve.log");
    let mut cmd = lab.command();
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--refresh",
        "1s",
        "-vv",
        "--kubeconfig",
        &kc,
    ]);
    let dash =
        dashboard::Dashboard::start_with_stderr(cmd, std::fs::File::create(&log).unwrap().into());
    let overview = dash.overview_when(
        "a finished status pass",
        std::time::Duration::from_secs(30),
        |o| o["health"] != "unknown",
    );
    let mut pages = vec![
        "/".to_string(),
        "/api/overview".into(),
        "/metrics".into(),
        "/healthz".into(),
        "/docs".into(),
        "/docs/runbooks/no-such".into(),
        "/nodes".into(),
        "/api/nodes".into(),
        "/backups".into(),
        "/api/backups".into(),
        "/alerts".into(),
        "/api/alerts".into(),
        "/api/docs".into(),
        "/docs?q=password".into(),
        "/api/docs?q=secret".into(),
        "/docs?q=token".into(),
    ];
    let docs = dash.get("/docs").body;
    for part in docs.split("href=\"/docs/").skip(1) {
        pages.push(format!("/docs/{}", &part[..part.find('"').unwrap()]));
    }
    assert!(pages.len() > 20, "{pages:?}");
    let mut leaks = Vec::new();
    for p in &pages {
        let answer = dash.get(p);
        leaks.extend(canaries.check_text(&format!("GET {p}"), &answer.headers));
        leaks.extend(canaries.check_text(&format!("GET {p}"), &answer.body));
    }
    leaks.extend(canaries.check_text("the overview", &overview.to_string()));
    let stdout = dash.stop();
    leaks.extend(canaries.check_text("stdout of serve", &stdout));
    leaks.extend(canaries.check_text("stderr of serve", &std::fs::read_to_string(&log).unwrap()));
    leaks.extend(leaks_in_dir(&canaries, &lab.home()));
    assert!(
        leaks.is_empty(),
        "canary values leaked:\n{}",
        leaks
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
}
