//! The command line of the spec commands: global flags, exit codes, completions, help, and
//! clear messages for files that cannot be read.

use std::process::Command;

use crate::support::{Run, Spec, Workdir, homelab};

fn invalid_spec() -> Spec {
    Spec::seed().replace("address: 192.168.2.22", "address: 192.168.2.21")
}

#[test]
fn file_flag_long_short_env_and_default_all_choose_the_spec() {
    let work = Workdir::new();
    work.write("homelab.yaml", Spec::minimal().text());
    work.write("bad.yaml", invalid_spec().text());

    assert_eq!(work.run(&["validate"]).code, 0, "default ./homelab.yaml");
    assert_eq!(work.run(&["validate", "-f", "bad.yaml"]).code, 2);
    assert_eq!(work.run(&["validate", "--file", "bad.yaml"]).code, 2);
    assert_eq!(work.run(&["validate", "--file=bad.yaml"]).code, 2);
    assert_eq!(
        work.run(&["-f", "bad.yaml", "validate"]).code,
        2,
        "global before the subcommand"
    );
    let env = Run::of(
        homelab()
            .current_dir(work.path())
            .env("HOMELAB_FILE", "bad.yaml")
            .arg("validate"),
    );
    assert_eq!(env.code, 2, "{}", env.transcript());
    assert!(env.stderr.contains("bad.yaml:"), "{}", env.stderr);
    let flag_wins = Run::of(
        homelab()
            .current_dir(work.path())
            .env("HOMELAB_FILE", "bad.yaml")
            .args(["validate", "-f", "homelab.yaml"]),
    );
    assert_eq!(flag_wins.code, 0, "{}", flag_wins.transcript());
}

#[test]
fn exit_codes_are_0_valid_2_invalid_or_usage_1_failure() {
    let work = Workdir::new();
    work.write("ok.yaml", Spec::seed().text());
    work.write("bad.yaml", invalid_spec().text());
    let ok = work.run(&["validate", "-f", "ok.yaml"]);
    assert_eq!(ok.code, 0, "{}", ok.transcript());
    assert_eq!(
        ok.stdout,
        "ok.yaml is valid: lab `home-lab`, 3 nodes, 8 services, 0 apps\n"
    );
    let bad = work.run(&["validate", "-f", "bad.yaml"]);
    assert_eq!(bad.code, 2, "{}", bad.transcript());
    assert_eq!(bad.stdout, "bad.yaml is not valid: 1 error\n");
    assert!(
        bad.stderr.contains("error[duplicate-node-address]"),
        "{}",
        bad.stderr
    );
    for usage in [
        vec!["validate", "--no-such-flag"],
        vec!["no-such-command"],
        vec!["validate", "--output", "yaml"],
        vec!["validate", "-q", "-v"],
        vec!["init", "--preset", "huge"],
    ] {
        let run = work.run(&usage);
        assert_eq!(run.code, 2, "{usage:?}: {}", run.transcript());
        assert!(run.stderr.contains("error:"), "{usage:?}: {}", run.stderr);
    }
    // A file that exists but cannot be read is a failure (1), not a usage error.
    let run = work.run(&["validate", "-f", "/proc/self/mem"]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(
        run.stderr.contains("cannot read the spec /proc/self/mem"),
        "{}",
        run.stderr
    );
}

#[test]
fn output_json_prints_one_document_for_results_and_errors() {
    let work = Workdir::new();
    work.write("homelab.yaml", Spec::seed().text());
    let ok = work.run(&["validate", "--output", "json"]);
    let doc = ok.json();
    assert_eq!(doc["valid"], true);
    assert_eq!(doc["lab"]["nodes"], 3);
    assert_eq!(doc["lab"]["services"], 8);
    assert_eq!(ok.stderr, "");

    let missing = work.run(&["validate", "-f", "nope.yaml", "--output", "json"]);
    assert_eq!(missing.code, 2);
    let doc = missing.json();
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["exitCode"], 2);
    assert!(
        doc["error"]
            .as_str()
            .unwrap()
            .contains("nope.yaml does not exist")
    );
    assert_eq!(missing.stderr, "", "JSON mode keeps stderr clean");
}

#[test]
fn every_json_document_starts_with_ok_and_the_exit_code() {
    let work = Workdir::new();
    work.write("homelab.yaml", Spec::seed().text());
    work.write("invalid.yaml", invalid_spec().text());
    let cases: [(&[&str], i32); 7] = [
        (&["validate"], 0),
        (&["validate", "-f", "invalid.yaml"], 2),
        (&["plan"], 0),
        (&["render", "--out", "tree"], 0),
        (&["secrets", "list"], 0),
        (&["init", "-f", "new.yaml"], 0),
        (&["init"], 2),
    ];
    for (args, code) in cases {
        let mut args = args.to_vec();
        args.extend(["--output", "json"]);
        let run = work.run(&args);
        assert_eq!(run.code, code, "{args:?}\n{}", run.transcript());
        let doc = run.json();
        let keys: Vec<&String> = doc.as_object().expect("an object").keys().take(2).collect();
        assert_eq!(keys, ["ok", "exitCode"], "{args:?}: {doc}");
        assert_eq!(doc["ok"], code == 0, "{args:?}: {doc}");
        assert_eq!(doc["exitCode"], code, "{args:?}: {doc}");
    }
}

#[test]
fn quiet_prints_only_problems_and_verbose_adds_detail() {
    let work = Workdir::new();
    work.write("homelab.yaml", Spec::seed().text());
    work.write("bad.yaml", invalid_spec().text());

    let quiet = work.run(&["validate", "-q"]);
    assert_eq!(
        (quiet.code, quiet.stdout.as_str(), quiet.stderr.as_str()),
        (0, "", "")
    );
    let quiet_bad = work.run(&["validate", "--quiet", "-f", "bad.yaml"]);
    assert_eq!(quiet_bad.code, 2);
    assert!(
        quiet_bad.stderr.contains("error[duplicate-node-address]"),
        "problems still show"
    );

    let quiet_init = Workdir::new();
    let run = quiet_init.run(&["init", "-q"]);
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (0, "", "")
    );

    let verbose = work.run(&["validate", "-v"]);
    assert_eq!(verbose.code, 0);
    for node in ["k3s-master", "k3s-worker-01", "k3s-worker-02"] {
        assert!(
            verbose.stderr.contains(&format!("node {node} ")),
            "{}",
            verbose.stderr
        );
    }
    let normal = work.run(&["validate"]);
    assert!(
        !normal.stderr.contains("node k3s-master"),
        "{}",
        normal.stderr
    );
}

#[test]
fn missing_file_and_directory_give_a_clear_message_and_exit_2() {
    let work = Workdir::new();
    let missing = work.run(&["validate"]);
    assert_eq!(missing.code, 2);
    assert_eq!(
        missing.stderr,
        "error: homelab.yaml does not exist; run `homelab init` to write a commented spec, or pass `-f FILE`\n"
    );
    std::fs::create_dir(work.join("lab")).unwrap();
    let dir = work.run(&["validate", "-f", "lab"]);
    assert_eq!(dir.code, 2);
    assert_eq!(
        dir.stderr,
        "error: lab is a directory; pass the spec file with `-f FILE`\n"
    );
}

/// Root reads any file regardless of its mode, so the unreadable file is read as the
/// unprivileged `nobody` when the tests run as root.
#[test]
fn an_unreadable_file_gives_a_clear_message_and_exit_1() {
    let work = Workdir::new();
    let path = work.write("secret-lab.yaml", Spec::seed().text());
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    std::fs::set_permissions(
        work.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    // A copy of the binary inside the scratch directory, so `nobody` can run it even when the
    // build directory sits below a private home directory.
    let bin = work.join("homelab");
    std::fs::copy(env!("CARGO_BIN_EXE_homelab"), &bin).unwrap();
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
    let out = if root {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&bin)
            .args(["validate", "-f"])
            .arg(&path)
            .env("NO_COLOR", "1")
            .output()
            .expect("setpriv (util-linux) runs; run scripts/install-test-deps")
    } else {
        Command::new(&bin)
            .args(["validate", "-f"])
            .arg(&path)
            .output()
            .unwrap()
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot read the spec {}", path.display()))
            && stderr.contains("Permission denied"),
        "{stderr}"
    );
}

#[test]
fn completions_are_scripts_for_each_shell() {
    let work = Workdir::new();
    for (shell, marker, file_flag) in [
        ("bash", "complete -F _homelab", "--file"),
        ("zsh", "#compdef homelab", "--file"),
        ("fish", "complete -c homelab", "-l file"),
    ] {
        let run = work.run(&["completions", shell]);
        assert_eq!(run.code, 0, "{shell}: {}", run.transcript());
        assert!(run.stdout.contains(marker), "{shell}:\n{}", run.stdout);
        for sub in ["init", "validate", "schema", "completions"] {
            assert!(run.stdout.contains(sub), "{shell} completes `{sub}`");
        }
        assert!(
            run.stdout.contains(file_flag),
            "{shell} completes the global flags"
        );
    }
    let bad = work.run(&["completions", "tcsh"]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("possible values"), "{}", bad.stderr);
}

#[test]
fn bash_completion_completes_subcommands_and_flag_values() {
    let work = Workdir::new();
    let script = work.run(&["completions", "bash"]).stdout;
    work.write("homelab.bash", &script);
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(work.join("homelab.bash"))
        .output()
        .unwrap();
    assert!(
        syntax.status.success(),
        "{}",
        String::from_utf8_lossy(&syntax.stderr)
    );
    let complete = |words: &str| {
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source ./homelab.bash; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
                 COMP_LINE=\"${{COMP_WORDS[*]}}\"; COMP_POINT=${{#COMP_LINE}}; \
                 _homelab homelab \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; \
                 printf '%s\\n' \"${{COMPREPLY[@]}}\""
            ))
            .current_dir(work.path())
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(complete("homelab val").trim(), "validate");
    let outputs = complete("homelab validate --output ''");
    assert!(
        outputs.contains("text") && outputs.contains("json"),
        "{outputs}"
    );
    let presets = complete("homelab init --preset ''");
    assert!(
        presets.contains("seed") && presets.contains("minimal"),
        "{presets}"
    );
}

#[test]
fn help_explains_each_subcommand() {
    let work = Workdir::new();
    for (sub, says) in [
        (
            "init",
            "Refuses to overwrite an existing file unless `--force` is given",
        ),
        (
            "validate",
            "Exits 0 when the spec is valid (warnings allowed) and 2 when it is not",
        ),
        ("schema", "yaml-language-server"),
        ("completions", "Example: `homelab completions bash"),
    ] {
        let run = work.run(&[sub, "--help"]);
        assert_eq!(run.code, 0, "{sub}: {}", run.transcript());
        let help = run.stdout.replace('\n', " ").replace("  ", " ");
        assert!(
            help.contains(says),
            "`homelab {sub} --help` lacks {says:?}:\n{}",
            run.stdout
        );
        assert!(
            help.contains("Example: `homelab"),
            "`homelab {sub} --help` has no example:\n{}",
            run.stdout
        );
        for flag in ["--file", "--output", "--quiet", "--verbose"] {
            assert!(help.contains(flag), "{sub} --help lists {flag}");
        }
    }
}

#[test]
fn a_json_spec_is_read_like_yaml() {
    let work = Workdir::new();
    let lab = homelab_spec::yaml::parse(homelab_spec::templates::MINIMAL)
        .unwrap()
        .to_json();
    work.write("lab.json", serde_json::to_string_pretty(&lab).unwrap());
    let run = work.run(&["validate", "-f", "lab.json"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
}

#[test]
fn a_thousand_apps_validate() {
    let work = Workdir::new();
    let mut apps = String::from("apps:\n");
    for i in 0..1000 {
        apps.push_str(&format!(
            "  - name: app-{i:04}\n    image: ghcr.io/example/app-{i:04}:1.0.{i}\n    port: 8080\n    \
             env: {{TZ: Europe/Berlin}}\n    volumes:\n      - {{name: data, mountPath: /data, size: 1Gi}}\n"
        ));
    }
    work.write("big.yaml", Spec::seed().replace("apps: []\n", &apps).text());
    let run = work.run(&["validate", "-f", "big.yaml"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(run.stdout.ends_with("1000 apps\n"), "{}", run.stdout);
}

#[test]
fn crlf_line_endings_and_a_byte_order_mark_are_accepted_and_located() {
    let work = Workdir::new();
    let crlf = format!("\u{feff}{}", Spec::seed().text().replace('\n', "\r\n"));
    work.write("windows.yaml", &crlf);
    assert_eq!(work.run(&["validate", "-f", "windows.yaml"]).code, 0);
    let bad = crlf.replace("address: 192.168.2.22", "address: 192.168.9.22");
    work.write("windows-bad.yaml", &bad);
    let run = work.run(&["validate", "-f", "windows-bad.yaml", "--output", "json"]);
    assert_eq!(run.code, 2);
    let d = &run.json()["diagnostics"][0];
    assert_eq!(d["code"], "node-outside-subnet");
    let line = bad
        .split("\r\n")
        .position(|l| l.contains("192.168.9.22"))
        .unwrap()
        + 1;
    assert_eq!(d["line"], line);
    assert_eq!(d["column"], 16);
}

#[test]
fn a_reader_that_stops_early_ends_the_program_quietly() {
    use std::io::{BufRead, BufReader};
    // `homelab plan --output json | head -1`: the reader goes away after one line, long
    // before the document (far larger than a pipe's buffer) is written.
    let work = Workdir::new();
    let mut apps = String::from("apps:\n");
    for i in 0..400 {
        apps.push_str(&format!(
            "  - {{name: app{i}, image: \"ghcr.io/example/app:1.0.{i}\", port: 8080}}\n"
        ));
    }
    let spec = homelab_spec::templates::SEED.replace("apps: []\n", &apps);
    let path = work.path().join("big.yaml");
    std::fs::write(&path, spec).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_homelab"))
        .args(["-f", path.to_str().unwrap(), "plan", "--output", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first.trim(), "{");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

/// `plan` shows what the spec's `helm:` settings change: another version and the values
/// that differ from the generated ones, as text and as JSON.
#[test]
fn plan_shows_what_helm_settings_change() {
    let work = Workdir::new();
    let spec = format!(
        "{}\ninfrastructure:\n  metallb:\n    helm:\n      values:\n        controller: {{logLevel: debug}}\n        speaker: {{frr: null}}\n  certManager:\n    helm:\n      version: v1.21.2\n",
        Spec::seed().text()
    );
    work.write("homelab.yaml", &spec);
    let run = work.run(&["plan"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let text = &run.stdout;
    let metallb = text
        .find("values of metallb changed by homelab.yaml:")
        .unwrap_or_else(|| panic!("{text}"));
    assert!(text[metallb..].contains("\n         - speaker.frr (was {\"enabled\":false})\n         + controller.logLevel: \"debug\"\n"), "{text}");
    assert!(
        text.contains("version of cert-manager: v1.21.2 (homelab pins v1.21.1)"),
        "{text}"
    );
    let doc = work.run(&["plan", "--output", "json"]).json();
    let cm = doc["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "cert-manager")
        .unwrap();
    assert_eq!(cm["releases"][0]["version"], "v1.21.2");
    assert_eq!(cm["overrides"][0]["pinnedVersion"], "v1.21.1");
    let m = doc["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "metallb")
        .unwrap();
    assert_eq!(
        m["overrides"][0]["changes"][1]["path"],
        "controller.logLevel"
    );
}
