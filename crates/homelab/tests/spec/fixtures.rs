//! Every fixture under `tests/fixtures/` through the real binary: the rendered diagnostics
//! (snapshots, reviewed like code), exit codes, the JSON form of the same diagnostics, and
//! that no secret written in a fixture ever appears in any output.

use std::path::{Path, PathBuf};

use crate::support::{Run, Workdir, fixtures, homelab};

/// Every secret value written in a fixture contains this, so one search finds a leak.
const SECRET_MARK: &str = "hunter2";

fn validate(path: &Path, json: bool) -> Run {
    let mut cmd = homelab();
    cmd.arg("validate").arg("-f").arg(path);
    if json {
        cmd.args(["--output", "json"]);
    }
    Run::of(&mut cmd)
}

fn fixture_files(kind: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures().join(kind))
        .expect("the fixture directory exists")
        .map(|e| e.expect("a fixture entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// Insta filters that turn this checkout's absolute fixture path into `tests/fixtures`.
fn path_filters() -> Vec<(String, &'static str)> {
    let dir = fixtures().display().to_string();
    let escaped: String = dir
        .chars()
        .flat_map(|c| {
            let special = "\\.+*?()|[]{}^$#&-~".contains(c);
            special.then_some('\\').into_iter().chain([c])
        })
        .collect();
    vec![
        (escaped, "tests/fixtures"),
        // Whether the secrets file holds every referenced secret is `homelab secrets`'
        // business and tested there; these snapshots are about the spec's diagnostics.
        (r"(?m)^secrets not checked: .*\n".to_string(), ""),
    ]
}

/// Snapshots a run's transcript under the calling test's name, with paths made portable.
macro_rules! snapshot {
    ($run:expr) => {{
        let filters = path_filters();
        let filters: Vec<(&str, &str)> = filters.iter().map(|(a, b)| (a.as_str(), *b)).collect();
        insta::with_settings!({ filters => filters, omit_expression => true }, {
            insta::assert_snapshot!($run.transcript());
        });
    }};
}

#[test]
fn there_are_enough_invalid_fixtures() {
    let n = fixture_files("invalid").len();
    assert!(
        n >= 40,
        "only {n} invalid fixtures; the spec needs at least 40"
    );
}

/// Snapshots are named `invalid@<fixture>`; each one is reviewed like code: it must say
/// what is wrong, where, and what to do.
#[test]
fn invalid() {
    insta::glob!("../fixtures", "invalid/*.yaml", |path| {
        let run = validate(path, false);
        assert_eq!(run.code, 2, "{}:\n{}", path.display(), run.transcript());
        assert!(
            run.stdout.contains(" is not valid: "),
            "{}",
            run.transcript()
        );
        snapshot!(run);
    });
}

#[test]
fn warning() {
    insta::glob!("../fixtures", "warning/*.yaml", |path| {
        let run = validate(path, false);
        assert_eq!(run.code, 0, "{}:\n{}", path.display(), run.transcript());
        assert!(run.stderr.contains("warning["), "{}", run.transcript());
        assert!(!run.stderr.contains("error["), "{}", run.transcript());
        snapshot!(run);
    });
}

/// The `--> file:line:col` locations and the codes of the text rendering, in order.
fn text_locations(stderr: &str) -> Vec<(String, usize, usize)> {
    let mut codes = Vec::new();
    let mut out = Vec::new();
    for line in stderr.lines() {
        if let Some(rest) = line
            .strip_prefix("error[")
            .or_else(|| line.strip_prefix("warning["))
        {
            codes.push(rest[..rest.find(']').expect("a closing bracket")].to_string());
        } else if let Some(loc) = line.trim_start().strip_prefix("--> ") {
            let mut parts = loc.rsplitn(3, ':');
            let col = parts.next().and_then(|c| c.parse().ok()).expect("a column");
            let line = parts.next().and_then(|l| l.parse().ok()).expect("a line");
            out.push((codes.last().cloned().expect("a header first"), line, col));
        }
    }
    assert_eq!(
        codes.len(),
        out.len(),
        "every diagnostic has a location:\n{stderr}"
    );
    out
}

#[test]
fn json_output_holds_the_same_diagnostics_with_file_line_column_code_and_help() {
    for (kind, exit) in [("invalid", 2), ("warning", 0)] {
        for path in fixture_files(kind) {
            let name = path.display().to_string();
            let json_run = validate(&path, true);
            assert_eq!(json_run.code, exit, "{name}:\n{}", json_run.transcript());
            assert_eq!(
                json_run.stderr, "",
                "{name}: JSON mode writes nothing to stderr"
            );
            let doc = json_run.json();
            assert_eq!(doc["file"], name.as_str());
            assert_eq!(doc["valid"], exit == 0, "{name}");
            let diags = doc["diagnostics"].as_array().expect("a diagnostics list");
            assert!(!diags.is_empty(), "{name}: no diagnostics");
            let errors = diags.iter().filter(|d| d["severity"] == "error").count();
            assert_eq!(doc["errors"], errors, "{name}");
            assert_eq!(doc["warnings"], diags.len() - errors, "{name}");
            assert_eq!(errors > 0, exit == 2, "{name}: errors decide the exit code");
            for d in diags {
                let what = format!("{name}: {d}");
                assert_eq!(d["file"], name.as_str(), "{what}");
                let code = d["code"].as_str().expect("a code");
                assert!(
                    !code.is_empty()
                        && code
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                    "{what}"
                );
                assert!(
                    ["error", "warning"].contains(&d["severity"].as_str().unwrap()),
                    "{what}"
                );
                assert!(
                    d["message"].as_str().is_some_and(|m| m.len() > 10),
                    "{what}"
                );
                assert!(
                    d["help"].as_str().is_some_and(|h| h.len() > 10),
                    "{what}: every diagnostic says what to do"
                );
                let line = d["line"].as_u64().expect("a line");
                let column = d["column"].as_u64().expect("a column");
                assert!(line >= 1 && column >= 1, "{what}");
                assert!(
                    d["endLine"].as_u64().expect("an end line") >= line,
                    "{what}"
                );
            }
            let text_run = validate(&path, false);
            let from_json: Vec<(String, usize, usize)> = diags
                .iter()
                .map(|d| {
                    (
                        d["code"].as_str().unwrap().to_string(),
                        d["line"].as_u64().unwrap() as usize,
                        d["column"].as_u64().unwrap() as usize,
                    )
                })
                .collect();
            assert_eq!(
                text_locations(&text_run.stderr),
                from_json,
                "{name}: text and JSON report the same problems at the same places"
            );
        }
    }
}

#[test]
fn several_problems_are_all_reported_in_one_run() {
    let run = validate(&fixtures().join("invalid/several-problems.yaml"), true);
    let doc = run.json();
    let codes: Vec<&str> = doc["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        [
            "invalid-subnet",
            "invalid-k3s-version",
            "invalid-name",
            "unknown-choice",
            "invalid-email",
            "unknown-key"
        ],
        "{}",
        run.stdout
    );
    let lines: Vec<u64> = doc["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["line"].as_u64().unwrap())
        .collect();
    assert!(
        lines.windows(2).all(|w| w[0] <= w[1]),
        "reported top to bottom: {lines:?}"
    );
}

#[test]
fn secrets_written_in_fixtures_never_appear_in_any_output() {
    let mut checked = 0;
    for kind in ["invalid", "warning"] {
        for path in fixture_files(kind) {
            let text = std::fs::read(&path).unwrap();
            if !String::from_utf8_lossy(&text).contains(SECRET_MARK) {
                continue;
            }
            checked += 1;
            for json in [false, true] {
                let run = validate(&path, json);
                assert!(
                    !run.stdout.contains(SECRET_MARK) && !run.stderr.contains(SECRET_MARK),
                    "{} (json: {json}) shows a secret:\n{}",
                    path.display(),
                    run.transcript()
                );
            }
        }
    }
    assert!(checked >= 10, "only {checked} fixtures hold a secret value");
}

#[test]
fn five_megabytes() {
    let work = Workdir::new();
    let mut text = homelab_spec::templates::SEED.to_string();
    let filler = format!("# {}\n", "padding ".repeat(12));
    while text.len() < 5 * 1024 * 1024 {
        text.push_str(&filler);
    }
    let path = work.write("huge.yaml", &text);
    let run = Run::of(
        homelab()
            .current_dir(work.path())
            .args(["validate", "-f", "huge.yaml"]),
    );
    assert_eq!(run.code, 2, "{}", run.transcript());
    insta::assert_snapshot!(run.transcript());
    let json = Run::of(homelab().current_dir(work.path()).args([
        "validate",
        "-f",
        "huge.yaml",
        "--output",
        "json",
    ]));
    let doc = json.json();
    assert_eq!(doc["diagnostics"][0]["code"], "file-too-large");
    assert_eq!(doc["diagnostics"][0]["line"], 1);
    assert_eq!(
        std::fs::read(&path).unwrap().len(),
        text.len(),
        "the file is untouched"
    );
}
