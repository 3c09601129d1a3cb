//! The canary test: with a secrets file holding known canary values, every command that
//! reads the lab (render in both flavors, plan, validate with errors, secrets list/init/edit/
//! rekey/scan), in text, `--output json` and `-v`, must show none of them, plain or base64,
//! on stdout, on stderr or in any file it writes.

#[path = "common/run.rs"]
mod run;

#[path = "secrets/support.rs"]
mod support;

use std::path::Path;

use homelab_secrets::canary::{Canaries, CanaryLeak};
use homelab_secrets::{Identities, Recipient};
use secrecy::ExposeSecret;
use support::*;

/// A seed lab whose secrets file holds a canary for every secret the lab needs.
fn canary_lab() -> (Lab, Canaries) {
    let lab = Lab::seed();
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
        (vec!["secrets", "set", "no-such-secret"], 2),
        (vec!["secrets", "rotate", "cloudflare-api-token"], 2),
    ];
    let mut leaks = Vec::new();
    let mut ran = 0;
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
            ran += 1;
        }
    }
    assert_eq!(ran, commands.len() * 4);
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
