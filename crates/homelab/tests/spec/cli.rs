//! The command line of the spec commands: global flags, exit codes, completions, help, and
//! clear messages for files that cannot be read.

use std::process::Command;

use crate::support::{Run, Spec, Workdir, homelab};

fn invalid_spec() -> Spec {
    Spec::seed_own().replace("address: 192.168.2.22", "address: 192.168.2.21")
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
    work.write("ok.yaml", Spec::seed_own().text());
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
    // A file that exists but cannot be read is a usage error (2) like a missing one.
    let run = work.run(&["validate", "-f", "/proc/self/mem"]);
    assert_eq!(run.code, 2, "{}", run.transcript());
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
        (
            &[
                "init",
                "-f",
                "new.yaml",
                "--domain",
                "lab.sams-house.net",
                "--email",
                "sam@sams-house.net",
                "--subnet",
                "10.44.0.0/24",
                "--nodes",
                "cp=10.44.0.10",
                "--nfs",
                "10.44.0.3:/k8s",
                "--preset",
                "minimal",
            ],
            0,
        ),
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
    work.write("homelab.yaml", Spec::seed_own().text());
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
    let run = quiet_init.run(&[
        "init",
        "-q",
        "--preset",
        "minimal",
        "--domain",
        "lab.sams-house.net",
        "--email",
        "sam@sams-house.net",
        "--subnet",
        "10.44.0.0/24",
        "--nodes",
        "cp=10.44.0.10",
        "--nfs",
        "10.44.0.3:/k8s",
    ]);
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
        "error: homelab.yaml does not exist\n  help: run `homelab init` to write a commented spec, or pass `-f FILE`\n"
    );
    std::fs::create_dir(work.join("lab")).unwrap();
    let dir = work.run(&["validate", "-f", "lab"]);
    assert_eq!(dir.code, 2);
    assert_eq!(
        dir.stderr,
        "error: lab is a directory\n  help: pass the spec file with `-f FILE`\n"
    );
}

/// Root reads any file regardless of its mode, so the unreadable file is read as the
/// unprivileged `nobody` when the tests run as root. Unreadable is a usage error like missing.
#[test]
fn an_unreadable_file_gives_a_clear_message_and_exit_2() {
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
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(
        stderr,
        format!(
            "error: cannot read the spec {}\n  help: check the path and its permissions, or pass another spec with `-f FILE`\n  caused by: Permission denied (os error 13)\n",
            path.display()
        ),
    );
}

/// A spec that cannot be opened for another reason (a symbolic link to itself) is exit 2 too,
/// in the same layout, in text and JSON, and for every command that reads the spec.
#[test]
fn a_spec_that_cannot_be_opened_exits_2_in_the_error_layout() {
    let work = Workdir::new();
    std::os::unix::fs::symlink("loop.yaml", work.join("loop.yaml")).unwrap();
    for cmd in ["validate", "plan", "render"] {
        let mut args = vec![cmd, "-f", "loop.yaml"];
        if cmd == "render" {
            args.extend(["--out", "lab"]);
        }
        let run = work.run(&args);
        assert_eq!(run.code, 2, "{cmd}: {}", run.transcript());
        let lines: Vec<&str> = run.stderr.lines().collect();
        assert_eq!(lines[0], "error: cannot read the spec loop.yaml", "{cmd}");
        assert!(
            lines[1].starts_with("  help: check the path"),
            "{cmd}: {lines:?}"
        );
        assert!(
            lines[2].starts_with("  caused by: ") && lines[2].contains("symbolic links"),
            "{cmd}: {lines:?}"
        );
        assert_eq!(lines.len(), 3, "{cmd}: {lines:?}");
    }
    let json = work.run(&["validate", "-f", "loop.yaml", "--output", "json"]);
    assert_eq!(json.code, 2);
    let v = json.json();
    assert_eq!(v["exitCode"], 2);
    assert_eq!(v["error"], "cannot read the spec loop.yaml");
    assert!(v["help"].as_str().unwrap().starts_with("check the path"));
    assert!(v["causes"][0].as_str().unwrap().contains("symbolic links"));
    assert!(!work.join("lab").exists(), "render wrote nothing");
}

#[test]
fn completions_are_scripts_for_each_shell() {
    let work = Workdir::new();
    for (shell, marker) in [
        ("bash", "-F _clap_complete_homelab homelab"),
        ("zsh", "#compdef homelab"),
        (
            "fish",
            "complete --keep-order --exclusive --command homelab",
        ),
        ("elvish", "set edit:completion:arg-completer[homelab]"),
        (
            "powershell",
            "Register-ArgumentCompleter -Native -CommandName homelab",
        ),
    ] {
        let run = work.run(&["completions", shell]);
        assert_eq!(run.code, 0, "{shell}: {}", run.transcript());
        assert!(run.stdout.contains(marker), "{shell}:\n{}", run.stdout);
        // The script asks the `homelab` on PATH, so it outlives the build that printed it.
        assert!(
            run.stdout.contains("HOMELAB_COMPLETE"),
            "{shell}:\n{}",
            run.stdout
        );
        assert!(
            !run.stdout.contains(env!("CARGO_BIN_EXE_homelab")),
            "{shell} script names this build's path:\n{}",
            run.stdout
        );
    }
    let bad = work.run(&["completions", "tcsh"]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("possible values"), "{}", bad.stderr);
}

/// Runs real bash with the registration script sourced and `homelab` on PATH, completes
/// `line` as a TAB at its end would (the function `complete -p` names, with the variables
/// bash sets), and returns the candidates.
fn bash_complete(work: &Workdir, line: &str) -> Vec<String> {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_homelab"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let script = r#"
source ./homelab.bash
spec=$(complete -p homelab) || exit 3
func=${spec#*-F }; func=${func%% *}
read -r -a COMP_WORDS <<<"$LINE"
[[ $LINE == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
COMP_LINE=$LINE; COMP_POINT=${#LINE}; COMP_TYPE=9
"$func" homelab "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
"#;
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", script])
        .env("LINE", line)
        .env("PATH", path)
        .env_remove("HOMELAB_FILE")
        .current_dir(work.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bash for {line:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn bash_completes_subcommands_flags_and_the_specs_names() {
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
    work.write("homelab.yaml", Spec::seed().text());
    let other = Spec::seed()
        .replace("k3s-worker-01", "blue-01")
        .replace("      - name: n8n\n", "      - name: shop\n")
        .replace("database: n8n", "database: shop");
    work.write("other.yaml", other.text());

    assert_eq!(bash_complete(&work, "homelab val"), ["validate"]);
    let outputs = bash_complete(&work, "homelab validate --output ");
    assert!(
        outputs.contains(&"text".into()) && outputs.contains(&"json".into()),
        "{outputs:?}"
    );
    let presets = bash_complete(&work, "homelab init --preset ");
    assert!(
        presets.contains(&"seed".into()) && presets.contains(&"minimal".into()),
        "{presets:?}"
    );

    // Node names from ./homelab.yaml; a prefix narrows them.
    let nodes = bash_complete(&work, "homelab nodes remove ");
    for node in ["k3s-master", "k3s-worker-01", "k3s-worker-02"] {
        assert!(nodes.contains(&node.into()), "{node} in {nodes:?}");
    }
    assert_eq!(
        bash_complete(&work, "homelab nodes remove k3s-w"),
        ["k3s-worker-01", "k3s-worker-02"]
    );
    assert_eq!(
        bash_complete(&work, "homelab nodes reset k3s-m"),
        ["k3s-master"]
    );
    // The spec the line names with -f, before or after the subcommand.
    let named = bash_complete(&work, "homelab -f other.yaml nodes remove ");
    assert!(
        named.contains(&"blue-01".into()) && !named.contains(&"k3s-worker-01".into()),
        "{named:?}"
    );
    let named = bash_complete(&work, "homelab nodes remove --file=other.yaml b");
    assert_eq!(named, ["blue-01"]);

    // Databases of services.postgres, for restore and the drill.
    assert_eq!(
        bash_complete(&work, "homelab restore postgres --db "),
        ["n8n"]
    );
    assert_eq!(
        bash_complete(&work, "homelab -f other.yaml restore postgres --db "),
        ["shop"]
    );
    assert_eq!(bash_complete(&work, "homelab backup drill --db n"), ["n8n"]);

    // Secret names the lab needs.
    let secrets = bash_complete(&work, "homelab secrets set ");
    for name in [
        "k3s-token",
        "grafana-admin-password",
        "cloudflare-api-token",
    ] {
        assert!(secrets.contains(&name.into()), "{name} in {secrets:?}");
    }
    assert_eq!(
        bash_complete(&work, "homelab secrets rotate k3s-t"),
        ["k3s-token"]
    );

    // Without a readable, valid spec there is nothing to offer, and no error on the line.
    std::fs::remove_file(work.join("homelab.yaml")).unwrap();
    let none = bash_complete(&work, "homelab nodes remove k");
    assert!(none.is_empty(), "{none:?}");
    work.write("homelab.yaml", "name: [broken");
    let none = bash_complete(&work, "homelab restore postgres --db n");
    assert!(none.is_empty(), "{none:?}");
}

#[test]
fn man_writes_a_page_per_command_and_subcommand() {
    let work = Workdir::new();
    let run = work.run(&["man", "--out", "share/man/man1"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(
        run.stdout.contains("man pages to share/man/man1"),
        "{}",
        run.stdout
    );
    let dir = work.join("share/man/man1");
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(format!("{name}.1")))
            .unwrap_or_else(|e| panic!("no page {name}.1: {e}"))
    };
    // From the top page down, every subcommand a page lists has its own page, which names
    // it in its title and NAME section.
    let mut todo = vec!["homelab".to_string()];
    let mut seen = Vec::new();
    while let Some(name) = todo.pop() {
        let page = read(&name);
        assert!(
            page.contains(&format!(".TH {name} 1 ")),
            "{name}.1 title:\n{page}"
        );
        let escaped = name.replace('-', "\\-");
        assert!(
            page.contains(&format!(".SH NAME\n{escaped} \\- ")),
            "{name}.1 NAME:\n{page}"
        );
        assert!(page.contains(".SH SYNOPSIS") && page.contains(".SH OPTIONS"));
        if let Some(subs) = page.split(".SH SUBCOMMANDS\n").nth(1) {
            for line in subs.lines().filter(|l| l.ends_with("(1)")) {
                todo.push(line.trim_end_matches("(1)").replace("\\-", "-"));
            }
        }
        seen.push(name);
    }
    for name in [
        "homelab-nodes-remove",
        "homelab-restore-postgres",
        "homelab-secrets-set",
        "homelab-man",
        "homelab-completions",
    ] {
        assert!(seen.contains(&name.to_string()), "{name} in {seen:?}");
    }
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut expected: Vec<String> = seen.iter().map(|n| format!("{n}.1")).collect();
    expected.sort();
    assert_eq!(files, expected, "one page per command, no `help` pages");
    assert!(read("homelab-nodes-remove").contains("\\-\\-drain\\-timeout"));

    // The pages are real roff: man (or groff) formats them.
    let page = dir.join("homelab-nodes-remove.1");
    let formatted = if which("man") {
        Command::new("man")
            .arg("-l")
            .arg(&page)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "80")
            .output()
            .unwrap()
    } else if which("groff") {
        Command::new("groff")
            .args(["-man", "-Tutf8"])
            .arg(&page)
            .output()
            .unwrap()
    } else {
        eprintln!("neither man nor groff is installed: checked the roff header only");
        return;
    };
    assert!(formatted.status.success());
    let text = String::from_utf8_lossy(&formatted.stdout);
    assert!(
        text.contains("NAME") && text.contains("--drain-timeout"),
        "{text}"
    );
    assert!(!text.contains(".TH"), "{text}");

    let json = work.run(&["man", "--out", "again", "--output", "json"]);
    assert_eq!(json.code, 0, "{}", json.transcript());
    assert_eq!(
        json.json()["pages"].as_array().unwrap().len(),
        expected.len()
    );
}

#[test]
fn man_into_a_place_that_cannot_be_a_directory_says_so_and_writes_nothing() {
    let work = Workdir::new();
    work.write("taken", "a file\n");
    let run = work.run(&["man", "--out", "taken/man1"]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(
        run.stderr
            .contains("cannot create the man page directory taken/man1"),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read_to_string(work.join("taken")).unwrap(),
        "a file\n"
    );
    let missing = work.run(&["man"]);
    assert_eq!(missing.code, 2);
    assert!(missing.stderr.contains("--out <DIR>"), "{}", missing.stderr);
}

fn which(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn example_values_warn_in_validate_and_stop_apply_nodes_apply_and_up() {
    let work = Workdir::new();
    work.write("homelab.yaml", Spec::seed().text());
    let run = work.run(&["validate"]);
    assert_eq!(run.code, 0, "warnings only: {}", run.transcript());
    for (at, says) in [
        (
            "homelab.yaml:16:11",
            "`home.jetzinger.com` is the example lab's domain",
        ),
        (
            "homelab.yaml:66:14",
            "`tom@jetzinger.com` is the example lab's ACME email",
        ),
        (
            "homelab.yaml:83:16",
            "`jetzinger-home-lab-alerts` is the example lab's ntfy topic",
        ),
        ("homelab.yaml:128:11", "this SSH key is the example lab's"),
    ] {
        assert!(run.stderr.contains(at), "{at}: {}", run.stderr);
        assert!(run.stderr.contains(says), "{says}: {}", run.stderr);
    }
    assert!(
        run.stderr.contains("warning[example-value]"),
        "{}",
        run.stderr
    );
    assert!(
        run.stdout.contains("is valid with 4 warnings"),
        "{}",
        run.stdout
    );
    let json = work.run(&["validate", "--output", "json"]).json();
    let codes: Vec<&str> = json["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["code"].as_str())
        .filter(|c| *c == "example-value")
        .collect();
    assert_eq!(codes.len(), 4, "{json}");

    // The README's first commands still work on the example.
    assert_eq!(work.run(&["plan"]).code, 0);
    assert_eq!(work.run(&["render", "--out", "lab/"]).code, 0);
    let before = work.state();

    for args in [
        &["apply"][..],
        &["apply", "--dry-run"],
        &["nodes", "apply", "--dry-run"],
        &["up", "--dry-run"],
    ] {
        let run = work.run(args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.transcript());
        let error = run
            .stderr
            .lines()
            .find(|l| l.starts_with("error: "))
            .unwrap_or_default();
        assert!(
            error.contains("homelab.yaml holds 4 values copied from an example")
                && error.contains("`tom@jetzinger.com` is the example lab's ACME email")
                && error.contains("at homelab.yaml:66:14")
                && error.contains("at homelab.yaml:128:11"),
            "{args:?}: {}",
            run.stderr
        );
        assert!(
            run.stderr.contains("--allow-example-values"),
            "{}",
            run.stderr
        );
        // Refused before the secrets or any host: nothing else is reported.
        assert!(
            !run.stderr.contains("secrets.sops.yaml"),
            "{args:?}: {}",
            run.stderr
        );
        assert_eq!(work.state(), before, "{args:?} changed nothing");
    }
    let json = work.run(&["apply", "--output", "json"]);
    assert_eq!(json.code, 2);
    assert!(
        json.json()["error"]
            .as_str()
            .unwrap()
            .contains("copied from an example")
    );

    // Allowed, the command goes on to its next check (here: the missing secrets file).
    for args in [
        &["apply", "--allow-example-values"][..],
        &["nodes", "apply", "--dry-run", "--allow-example-values"],
    ] {
        let run = work.run(args);
        assert_ne!(run.code, 0, "{}", run.transcript());
        assert!(
            !run.stderr.contains("copied from an example"),
            "{args:?}: {}",
            run.stderr
        );
        assert!(
            run.stderr.contains("secrets.sops.yaml") || run.stderr.contains("age"),
            "{args:?}: {}",
            run.stderr
        );
    }

    // One value of the user's own is enough to change the count, and a lab without any
    // example value is not refused for that.
    let own = Spec::seed().replace(
        "acmeEmail: tom@jetzinger.com",
        "acmeEmail: me@my-domain.net",
    );
    work.write("homelab.yaml", own.text());
    let run = work.run(&["apply"]);
    assert!(
        run.stderr.contains("holds 3 values copied from an example"),
        "{}",
        run.stderr
    );
    work.write("homelab.yaml", Spec::minimal().text());
    let run = work.run(&["apply"]);
    assert!(
        !run.stderr.contains("copied from an example"),
        "{}",
        run.stderr
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
    let doc = run.json();
    // The example's own values come with warnings of their own; the error is the one here.
    let d = doc["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["severity"] == "error")
        .unwrap();
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

#[test]
fn version_flag_and_command_name_the_build_and_every_pin() {
    let work = Workdir::new();
    let flag = work.run(&["--version"]);
    assert_eq!(
        (flag.code, flag.stdout.as_str()),
        (
            0,
            format!("homelab {}\n", env!("CARGO_PKG_VERSION")).as_str()
        )
    );
    // Without a spec: the build and its pins, exit 0.
    let bare = work.run(&["version"]);
    assert_eq!(bare.code, 0, "{}", bare.transcript());
    let first = bare.stdout.lines().next().unwrap();
    assert_eq!(first, format!("homelab {}", env!("CARGO_PKG_VERSION")));
    assert!(bare.stdout.contains(&format!(
        "K3s {} (pinned by `homelab init`)",
        homelab_spec::templates::K3S_VERSION
    )));
    for pin in homelab_plan::versions::all() {
        assert!(
            bare.stdout.contains(pin.version),
            "{} {} missing:\n{}",
            pin.dep_name,
            pin.version,
            bare.stdout
        );
    }
    assert!(!bare.stdout.contains("pinned by lab"), "{}", bare.stdout);
    // `-q` keeps the answer.
    assert_eq!(work.run(&["-q", "version"]).stdout, bare.stdout);

    // With a spec that pins another release, that one too.
    work.write(
        "homelab.yaml",
        Spec::seed()
            .replace("k3sVersion: v1.34.2+k3s1", "k3sVersion: v1.33.6+k3s1")
            .text(),
    );
    let json = work.run(&["version", "--output", "json"]);
    assert_eq!(json.code, 0, "{}", json.transcript());
    let v = json.json();
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["k3s"], homelab_spec::templates::K3S_VERSION);
    assert_eq!(v["lab"]["k3s"], "v1.33.6+k3s1");
    assert_eq!(v["lab"]["name"], "home-lab");
    let charts: Vec<(&str, &str)> = v["charts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["version"].as_str().unwrap()))
        .collect();
    assert!(charts.contains(&("metallb", homelab_plan::versions::METALLB.version)));
    assert!(charts.contains(&("cert-manager", homelab_plan::versions::CERT_MANAGER.version)));
    assert!(charts.contains(&("traefik", homelab_plan::versions::K3S_TRAEFIK_CHART)));
}

/// Every command that reads the spec reports a missing or invalid one the same way: exit 2,
/// `error:` with what and where, `help:` with what to do, in text and in JSON.
#[test]
fn every_command_reports_a_missing_or_invalid_spec_in_one_layout() {
    let work = Workdir::new();
    work.write("bad.yaml", invalid_spec().text());
    let commands: [&[&str]; 9] = [
        &["validate"],
        &["plan"],
        &["render", "--out", "lab"],
        &["apply"],
        &["diff"],
        &["nodes", "apply", "--dry-run"],
        &["kubeconfig"],
        &["backup", "postgres"],
        &["restore", "postgres", "--db", "shop", "--yes"],
    ];
    for args in commands {
        let run = work.run(args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.transcript());
        assert_eq!(
            run.stderr,
            "error: homelab.yaml does not exist\n  help: run `homelab init` to write a commented spec, or pass `-f FILE`\n",
            "{args:?}"
        );
        let mut json_args = args.to_vec();
        json_args.extend(["--output", "json"]);
        let json = work.run(&json_args).json();
        assert_eq!(json["error"], "homelab.yaml does not exist", "{args:?}");
        assert!(
            json["help"].as_str().unwrap().contains("homelab init"),
            "{args:?}"
        );
        assert_eq!(json["exitCode"], 2);

        if args[0] == "validate" {
            continue; // validate reports an invalid spec as its result, not as an error.
        }
        let mut bad = vec!["-f", "bad.yaml"];
        bad.extend_from_slice(args);
        let run = work.run(&bad);
        assert_eq!(run.code, 2, "{bad:?}: {}", run.transcript());
        let tail: Vec<&str> = run.stderr.lines().rev().take(2).collect();
        assert!(
            tail[1].starts_with("error: bad.yaml is not valid (")
                && tail[0] == "  help: fix it first (`homelab validate` shows every problem)",
            "{bad:?}: {}",
            run.stderr
        );
        assert!(
            run.stderr.contains("error[duplicate-node-address]"),
            "{bad:?}"
        );
    }
    assert!(!work.join("lab").exists());
}
