//! The secrets check of `homelab validate`: names read without the key, each missing
//! reference an error at its place (exit 2), and no secrets file a note rather than a failure.

use super::support::*;

fn line_col_of(text: &str, needle: &str) -> (usize, usize) {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("`{needle}` not in the spec"));
    let line = text[..at].matches('\n').count() + 1;
    let col = at - text[..at].rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

#[test]
fn validate_without_a_secrets_file_passes_and_says_secrets_were_not_checked() {
    let lab = Lab::seed();
    let run = lab.run(&["validate"]).ok();
    assert!(run.stdout.contains("is valid"), "{}", run.stdout);
    assert!(run.stderr.contains("secrets not checked"), "{}", run.stderr);
    assert!(
        run.stderr.contains("homelab secrets init"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("error"), "{}", run.stderr);
    let json = lab.run(&["validate", "--output", "json"]).ok().json();
    assert_eq!(json["valid"], true);
    assert_eq!(json["secrets"]["checked"], false);
}

#[test]
fn validate_reports_each_missing_secret_at_its_reference_without_the_key() {
    let lab = Lab::seed();
    lab.init_secrets();
    let ok = lab.run(&["validate"]).ok();
    assert!(ok.stdout.contains("is valid"), "{}", ok.stdout);
    assert!(
        ok.stderr.contains("not set yet (\"set me\")"),
        "{}",
        ok.stderr
    );
    assert!(ok.stderr.contains("cloudflare-api-token"), "{}", ok.stderr);

    let spec = homelab_spec::templates::SEED.replace(
        "{secret: grafana-admin-password}",
        "{secret: grafana-admn-password}",
    );
    assert_ne!(spec, homelab_spec::templates::SEED);
    lab.write("homelab.yaml", &spec);
    std::fs::remove_file(lab.identity()).unwrap();
    let (line, col) = line_col_of(&spec, "grafana-admn-password");

    let run = lab.run(&["validate"]).expect(2);
    assert!(
        run.stderr.contains(&format!("homelab.yaml:{line}:{col}")),
        "the error points at the reference:\n{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("error[unknown-secret]"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("did you mean `grafana-admin-password`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("homelab secrets set grafana-admn-password"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.contains("is not valid"), "{}", run.stdout);

    let json = lab.run(&["validate", "--output", "json"]).expect(2).json();
    assert_eq!(json["valid"], false);
    assert_eq!(json["errors"], 1);
    assert_eq!(
        json["secrets"]["missing"],
        serde_json::json!(["grafana-admn-password"])
    );
    // The example lab's own values are warned of too; the error is the one here.
    let diagnostic = json["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["severity"] == "error")
        .unwrap();
    assert_eq!(diagnostic["code"], "unknown-secret");
    assert_eq!(diagnostic["line"], line);
    assert_eq!(diagnostic["column"], col);
    assert!(
        diagnostic["help"].as_str().unwrap().contains("`k3s-token`"),
        "the names that exist are listed"
    );
}

#[test]
fn validate_lists_every_missing_secret_and_warns_about_generated_ones() {
    let lab = Lab::seed();
    lab.init_secrets();
    // Remove a spec-referenced secret and a generated one.
    lab.run_with(
        &["secrets", "edit"],
        &[(
            "EDITOR",
            "sed -i -e '/^cloudflare-api-token:/d' -e '/^k3s-token:/d'",
        )],
        "",
    )
    .ok();
    let run = lab.run(&["validate"]).expect(2);
    assert!(
        run.stderr
            .contains("`cloudflare-api-token`, which secrets.sops.yaml does not hold"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("k3s-token"), "{}", run.stderr);
    assert!(
        run.stderr.contains("homelab secrets init"),
        "{}",
        run.stderr
    );
    let json = lab.run(&["validate", "--output", "json"]).expect(2).json();
    assert_eq!(
        json["secrets"]["notGenerated"],
        serde_json::json!(["k3s-token"])
    );

    // Put it back: valid again.
    lab.run_stdin(&["secrets", "set", "cloudflare-api-token"], "cf-123456\n")
        .ok();
    lab.run(&["validate"]).ok();
}

#[test]
fn validate_with_an_unreadable_secrets_file_fails_clearly() {
    let lab = Lab::seed();
    lab.write("secrets.sops.yaml", "- not\n- a map\n");
    let run = lab.run(&["validate"]).expect(1);
    assert!(run.stderr.contains("secrets.sops.yaml"), "{}", run.stderr);
    lab.write("secrets.sops.yaml", "a: [\n");
    let run = lab.run(&["validate"]).expect(1);
    assert!(
        run.stderr.contains("cannot decrypt secrets.sops.yaml"),
        "{}",
        run.stderr
    );
    let json = lab.run(&["validate", "--output", "json"]).expect(1).json();
    assert_eq!(json["ok"], false);
}
