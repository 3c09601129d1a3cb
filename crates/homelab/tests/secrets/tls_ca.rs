//! `homelab tls ca`: the lab's root certificate out of the secrets file, checked with the real
//! openssl, with how to trust it; the key never in any output; the refusals that change
//! nothing.

use std::process::Command;

use super::support::*;

const ACME: &str = "tls:\n  acmeEmail: tom@jetzinger.com\n  environment: production      # `staging` while experimenting (untrusted certificates, no rate limits)\n  challenge:\n    # HTTP-01 cannot work here: 192.168.2.100 is private, Let's Encrypt cannot reach it.\n    # DNS-01 proves ownership through a TXT record set with the DNS provider's API.\n    type: dns01\n    provider: cloudflare\n    apiToken: {secret: cloudflare-api-token}\n";

fn internal_ca_lab() -> Lab {
    let seed = homelab_spec::templates::SEED;
    assert!(seed.contains(ACME), "the seed lab's tls section changed");
    let spec = seed
        .replace(ACME, "tls:\n  mode: internal-ca\n")
        .replace("domain: home.jetzinger.com", "domain: lab.home.arpa");
    Lab::with_spec(&spec)
}

fn openssl(args: &[&str]) -> String {
    require_tool("openssl");
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The key's PEM lines that hold its private scalar (the first two of a P-256 PKCS#8 key; the
/// rest is the public point, which the certificate carries too) appear in no output.
fn assert_no_key(lab: &Lab, run: &Run) {
    let key = lab.get("internal-ca-key");
    let private: Vec<&str> = key
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .take(2)
        .collect();
    assert_eq!(private.len(), 2, "a PEM key");
    for line in private {
        assert!(
            !run.stdout.contains(line) && !run.stderr.contains(line),
            "the CA key leaked"
        );
    }
    assert!(!run.stdout.contains("PRIVATE KEY") && !run.stderr.contains("PRIVATE KEY"));
}

#[test]
fn the_root_goes_to_a_file_that_openssl_reads_with_the_steps_to_trust_it() {
    let lab = internal_ca_lab();
    let init = lab.init_secrets();
    let generated = init.to_string();
    assert!(
        generated.contains("internal-ca-key") && generated.contains("internal-ca-cert"),
        "{init}"
    );
    let run = lab.run(&["tls", "ca", "--out", "homelab-ca.pem"]).ok();
    let file = lab.path("homelab-ca.pem");
    let pem = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        pem,
        lab.get("internal-ca-cert").trim_end().to_string() + "\n"
    );
    let path = file.to_str().unwrap();
    let text = openssl(&[
        "x509",
        "-noout",
        "-subject",
        "-fingerprint",
        "-sha256",
        "-in",
        path,
    ]);
    assert!(text.contains("CN = home-lab homelab root CA"), "{text}");
    let fingerprint = text
        .lines()
        .find_map(|l| l.strip_prefix("sha256 Fingerprint="))
        .unwrap();
    assert!(run.stdout.contains(fingerprint), "{}", run.stdout);
    assert!(openssl(&["verify", "-CAfile", path, path]).contains(": OK"));
    for platform in [
        "**macOS**",
        "**Windows**",
        "**Linux**",
        "**iOS, iPadOS**",
        "**Android**",
        "**Firefox**",
    ] {
        assert!(run.stdout.contains(platform), "{platform}\n{}", run.stdout);
    }
    assert!(run.stdout.contains("valid until 20"), "{}", run.stdout);
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o644
    );
    assert_no_key(&lab, &run);

    // On stdout: the certificate alone, the rest on stderr; JSON carries both.
    let run = lab.run(&["tls", "ca"]).ok();
    assert_eq!(run.stdout, pem);
    assert!(run.stderr.contains("**Firefox**"), "{}", run.stderr);
    assert_no_key(&lab, &run);
    let json = lab.run(&["tls", "ca", "--output", "json"]).ok().json();
    assert_eq!(json["certificate"], pem.as_str());
    assert_eq!(json["subject"], "home-lab homelab root CA");
    assert!(json["daysLeft"].as_i64().unwrap() > 3600, "{json}");
    assert!(fingerprint.contains(json["sha256"].as_str().unwrap()));
}

#[test]
fn a_lab_on_lets_encrypt_has_no_ca_to_print_and_nothing_changes() {
    let lab = Lab::seed();
    lab.init_secrets();
    let before = lab.state();
    let run = lab.run(&["tls", "ca", "--out", "ca.pem"]).expect(2);
    assert!(
        run.stderr.contains("`tls.mode` is `acme`"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("mode: internal-ca"), "{}", run.stderr);
    assert_eq!(lab.state(), before, "nothing was written");
}

#[test]
fn without_the_root_in_the_secrets_file_it_says_to_generate_it() {
    // A lab switched to its own CA after its secrets file was made.
    let lab = Lab::seed();
    lab.init_secrets();
    let spec = internal_ca_lab();
    lab.write(
        "homelab.yaml",
        std::fs::read(spec.path("homelab.yaml")).unwrap(),
    );
    let before = lab.state();
    let run = lab.run(&["tls", "ca", "--out", "ca.pem"]).expect(1);
    assert!(
        run.stderr.contains("homelab secrets init"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("internal-ca-cert"), "{}", run.stderr);
    assert_eq!(lab.state(), before, "nothing was written");
}
