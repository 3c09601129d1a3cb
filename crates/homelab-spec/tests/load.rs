//! Property tests of loading a spec: arbitrary text and bytes, and arbitrary mutations of the
//! seed spec, never panic, every problem points inside the file, the result does not depend
//! on anything but the input, and a secret written anywhere never appears in what is shown.

use homelab_spec::templates::SEED;
use homelab_spec::{Diagnostic, InvalidSpec, LoadedSpec, Span, load_bytes, load_str};
use proptest::prelude::*;

/// Keys of the spec (and near misses), for renames that hit real structure.
const KEYS: &[&str] = &[
    "name",
    "network",
    "subnet",
    "gateway",
    "domain",
    "loadBalancerPool",
    "ingressIp",
    "dns",
    "provider",
    "remoteAccess",
    "tailscale",
    "cluster",
    "k3sVersion",
    "nodes",
    "role",
    "address",
    "ssh",
    "user",
    "port",
    "labels",
    "taints",
    "gpu",
    "etcdSnapshots",
    "schedule",
    "retention",
    "dir",
    "storage",
    "nfs",
    "server",
    "path",
    "tls",
    "acmeEmail",
    "challenge",
    "type",
    "apiToken",
    "secret",
    "alerting",
    "receivers",
    "severities",
    "ntfy",
    "topic",
    "services",
    "monitoring",
    "postgres",
    "databases",
    "owner",
    "backup",
    "keep",
    "apps",
    "image",
    "host",
    "env",
    "secretEnv",
    "volumes",
    "mountPath",
    "size",
    "adress",
    "nmae",
    "servics",
    "password",
    "x",
    "",
    "- a",
    "[",
    "{",
    "&a",
    "*a",
    "!tag",
    "\"q",
    "'q",
    "? k",
    "|",
    ">",
    "#",
];

/// Pieces YAML is made of, for text that is almost YAML.
const TOKENS: &[&str] = &[
    ":",
    ": ",
    "-",
    "- ",
    "[",
    "]",
    "{",
    "}",
    ",",
    "\n",
    "\n  ",
    "\n    ",
    "  ",
    "\t",
    "#",
    "&a ",
    "*a",
    "!!str ",
    "!x ",
    "\"",
    "'",
    "|",
    ">-",
    "---",
    "...",
    "%YAML 1.2",
    "?",
    "~",
    "null",
    "true",
    "yes",
    "0x1F",
    "1e9",
    "192.168.2.20",
    "/24",
    "v1.34.2+k3s1",
    "name",
    "nodes",
    "address",
    "server",
    "agent",
    "{secret: x}",
    "\u{feff}",
    "é",
    "\u{0}",
    "\r\n",
];

#[derive(Debug, Clone)]
enum Mutation {
    FlipBit { at: usize, bit: u8 },
    DeleteLine(usize),
    DuplicateLine(usize),
    Indent { line: usize, by: i8 },
    RenameKey { line: usize, key: usize },
    SwapValues(usize, usize),
    InsertLine { at: usize, text: String },
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit { at, bit }),
        any::<usize>().prop_map(Mutation::DeleteLine),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        (any::<usize>(), -6i8..6).prop_map(|(line, by)| Mutation::Indent { line, by }),
        (any::<usize>(), 0..KEYS.len()).prop_map(|(line, key)| Mutation::RenameKey { line, key }),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapValues(a, b)),
        (any::<usize>(), yamlish()).prop_map(|(at, text)| Mutation::InsertLine { at, text }),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn yamlish() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..12).prop_map(|t| t.concat())
}

/// Applies mutations to the text's bytes (a bit flip may leave it invalid UTF-8).
fn apply(text: &str, mutations: &[Mutation]) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    for m in mutations {
        if let Mutation::FlipBit { at, bit } = m {
            if !bytes.is_empty() {
                let i = at % bytes.len();
                bytes[i] ^= 1 << bit;
            }
            continue;
        }
        if let Mutation::Truncate(at) = m {
            bytes.truncate(at % (bytes.len() + 1));
            continue;
        }
        let mut lines: Vec<Vec<u8>> = bytes.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
        let n = lines.len();
        match m {
            Mutation::DeleteLine(i) => {
                lines.remove(i % n);
            }
            Mutation::DuplicateLine(i) => {
                let line = lines[i % n].clone();
                lines.insert(i % n, line);
            }
            Mutation::Indent { line, by } => {
                let l = &mut lines[line % n];
                if *by >= 0 {
                    l.splice(0..0, std::iter::repeat_n(b' ', *by as usize));
                } else {
                    let strip = l
                        .iter()
                        .take_while(|b| **b == b' ')
                        .count()
                        .min(by.unsigned_abs() as usize);
                    l.drain(..strip);
                }
            }
            Mutation::RenameKey { line, key } => {
                let l = &mut lines[line % n];
                if let Some(colon) = l.iter().position(|b| *b == b':') {
                    let start = l
                        .iter()
                        .take_while(|b| **b == b' ' || **b == b'-')
                        .count()
                        .min(colon);
                    l.splice(start..colon, KEYS[*key].bytes());
                }
            }
            Mutation::SwapValues(a, b) => {
                let value_of = |l: &[u8]| l.windows(2).position(|w| w == b": ").map(|p| p + 2);
                let (a, b) = (a % n, b % n);
                if let (Some(pa), Some(pb)) = (value_of(&lines[a]), value_of(&lines[b])) {
                    let va = lines[a][pa..].to_vec();
                    let vb = lines[b][pb..].to_vec();
                    lines[a].truncate(pa);
                    lines[a].extend(vb);
                    lines[b].truncate(pb);
                    lines[b].extend(va);
                }
            }
            Mutation::InsertLine { at, text } => {
                lines.insert(at % (n + 1), text.clone().into_bytes())
            }
            Mutation::FlipBit { .. } | Mutation::Truncate(_) => unreachable!(),
        }
        bytes = lines.join(&b'\n');
    }
    bytes
}

/// Every invariant a load result must keep, whatever the input.
fn check(result: &Result<LoadedSpec, InvalidSpec>) -> Result<(), TestCaseError> {
    let (text, diags) = match result {
        Ok(loaded) => {
            prop_assert!(loaded.warnings.iter().all(|d| !d.is_error()));
            (loaded.source.text(), &loaded.warnings)
        }
        Err(invalid) => {
            prop_assert!(invalid.errors().count() > 0, "an invalid spec has an error");
            (invalid.file.text(), &invalid.diagnostics)
        }
    };
    for d in diags {
        let span = d
            .span
            .ok_or_else(|| TestCaseError::fail(format!("no location: {d:?}")))?;
        inside(text, span, d)?;
        for (related, _) in &d.related {
            inside(text, *related, d)?;
        }
        prop_assert!(
            d.help.as_ref().is_some_and(|h| !h.is_empty()),
            "no help: {d:?}"
        );
    }
    let file = match result {
        Ok(l) => &l.source,
        Err(i) => &i.file,
    };
    let rendered = file.render(diags);
    let headers = rendered
        .lines()
        .filter(|l| l.starts_with("error[") || l.starts_with("warning["))
        .count();
    let locations = rendered
        .lines()
        .filter(|l| l.trim_start().starts_with("--> lab.yaml:"))
        .count();
    prop_assert_eq!(
        (headers, locations),
        (diags.len(), diags.len()),
        "{}",
        rendered
    );
    let json = file.to_json(diags);
    for (d, j) in diags.iter().zip(&json) {
        let pos = file.position(d.span.unwrap().start);
        prop_assert_eq!((j.line, j.column), (Some(pos.line), Some(pos.column)));
        prop_assert!(pos.line <= text.lines().count().max(1) + 1);
    }
    Ok(())
}

fn inside(text: &str, span: Span, d: &Diagnostic) -> Result<(), TestCaseError> {
    prop_assert!(
        span.start <= span.end && span.end <= text.len(),
        "span {:?} outside a file of {} bytes: {:?}",
        span,
        text.len(),
        d
    );
    prop_assert!(
        text.is_char_boundary(span.start) && text.is_char_boundary(span.end),
        "span {span:?} splits a character: {d:?}"
    );
    Ok(())
}

/// What a result says, to compare two runs.
fn summary(result: &Result<LoadedSpec, InvalidSpec>) -> Vec<(&'static str, Option<Span>, String)> {
    let diags = match result {
        Ok(l) => &l.warnings,
        Err(i) => &i.diagnostics,
    };
    diags
        .iter()
        .map(|d| (d.code, d.span, d.message.clone()))
        .collect()
}

proptest! {
    // 256 cases each by default; `PROPTEST_CASES=10000` searches harder.
    #![proptest_config(ProptestConfig::default())]

    #[test]
    fn arbitrary_text_never_panics_and_every_problem_is_located(text in any::<String>()) {
        check(&load_str("lab.yaml", &text))?;
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_every_problem_is_located(
        bytes in prop::collection::vec(any::<u8>(), 0..512)
    ) {
        check(&load_bytes("lab.yaml", &bytes))?;
    }

    #[test]
    fn almost_yaml_never_panics_and_every_problem_is_located(text in yamlish()) {
        check(&load_str("lab.yaml", &text))?;
        let seeded = format!("{SEED}{text}");
        check(&load_str("lab.yaml", &seeded))?;
    }

    #[test]
    fn mutations_of_the_seed_spec_never_panic_and_are_deterministic(
        mutations in prop::collection::vec(mutation(), 1..6)
    ) {
        let bytes = apply(SEED, &mutations);
        let first = load_bytes("lab.yaml", &bytes);
        check(&first)?;
        let second = load_bytes("lab.yaml", &bytes);
        prop_assert_eq!(summary(&first), summary(&second));
    }

    #[test]
    fn a_secret_written_anywhere_never_shows(
        mutations in prop::collection::vec(mutation(), 0..4),
        at in any::<usize>(),
        indent in 0usize..8,
        key in prop::sample::select(&["password", "apiToken", "grafanaAdminPassword", "token", "superuserPassword", "DB_PASSWORD"][..]),
        flow in any::<bool>(),
    ) {
        const SECRET: &str = "hunter2-pr0p-value";
        let safe: Vec<Mutation> = mutations
            .into_iter()
            .filter(|m| !matches!(m, Mutation::FlipBit { .. } | Mutation::InsertLine { .. } | Mutation::Truncate(_)))
            .collect();
        let text = String::from_utf8(apply(SEED, &safe)).expect("line edits keep UTF-8");
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        let line = if flow {
            format!("{}x: {{a: 1, {key}: {SECRET}}}", " ".repeat(indent))
        } else {
            format!("{}{key}: {SECRET}", " ".repeat(indent))
        };
        let at = at % (lines.len() + 1);
        lines.insert(at, line);
        let text = lines.join("\n");
        let result = load_str("lab.yaml", &text);
        check(&result)?;
        let (file, diags) = match &result {
            Ok(l) => (&l.source, &l.warnings),
            Err(i) => (&*i.file, &i.diagnostics),
        };
        let rendered = file.render(diags);
        prop_assert!(!rendered.contains("hunter2"), "{}", rendered);
        let json = serde_json::to_string(&file.to_json(diags)).unwrap();
        prop_assert!(!json.contains("hunter2"), "{}", json);
    }
}

#[test]
fn the_mutations_do_change_the_seed() {
    let deleted = apply(SEED, &[Mutation::DeleteLine(12)]);
    assert!(deleted.len() < SEED.len());
    let renamed =
        String::from_utf8(apply(SEED, &[Mutation::RenameKey { line: 8, key: 56 }])).unwrap();
    assert!(renamed.contains("adress: home-lab"), "{renamed}");
    let swapped = String::from_utf8(apply(SEED, &[Mutation::SwapValues(8, 12)])).unwrap();
    assert!(swapped.contains("name: 192.168.2.0/24"), "{swapped}");
    let err = load_bytes(
        "lab.yaml",
        &apply(SEED, &[Mutation::Indent { line: 13, by: 3 }]),
    )
    .expect_err("a key indented deeper than its sibling breaks the spec");
    assert_eq!(err.diagnostics[0].code, "yaml-indentation");
}
