//! Leak scan: plaintext secrets in a working tree and in the git history of its repository
//! (known values, private key blocks, age secret keys, high-entropy values under secret-looking
//! keys, literal values assigned to password-like names). Reads files and runs `git`; findings carry a fingerprint, never the secret.

use std::fmt;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::LazyLock;

use regex::Regex;

use crate::error::{Error, Result};
use crate::redact::{Encoding, KnownSecrets, Matcher, fingerprint};

/// Known values shorter than this are not searched for: they would match ordinary text.
pub const MIN_KNOWN_VALUE_LEN: usize = 6;
/// Files larger than this are skipped.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// What was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FindingKind {
    /// A value from the secrets file.
    KnownSecret {
        /// The secret's name.
        name: String,
        /// Plain or base64.
        encoding: Encoding,
    },
    /// A `-----BEGIN ... PRIVATE KEY-----` block.
    PrivateKeyBlock {
        /// The block's label (`RSA PRIVATE KEY`, `OPENSSH PRIVATE KEY`, ...).
        label: String,
    },
    /// An age identity `AGE-SECRET-KEY-1...`.
    AgeSecretKey,
    /// A random-looking value under a secret-looking key in a YAML/JSON/env file.
    HighEntropy {
        /// The key.
        key: String,
    },
    /// A literal value (not a reference, template or placeholder) given to a password-like
    /// name: `password: "..."`, `token=...`, `PGPASSWORD=...`, in configuration, scripts
    /// and docs.
    Assignment {
        /// The name the value is given to.
        key: String,
    },
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FindingKind::KnownSecret { name, encoding } => match encoding {
                Encoding::Plain => write!(f, "value of secret `{name}`"),
                Encoding::Base64 => write!(f, "base64 of secret `{name}`"),
            },
            FindingKind::PrivateKeyBlock { label } => write!(f, "{label} block"),
            FindingKind::AgeSecretKey => f.write_str("age secret key"),
            FindingKind::HighEntropy { key } => write!(f, "high-entropy value under `{key}`"),
            FindingKind::Assignment { key } => write!(f, "literal value assigned to `{key}`"),
        }
    }
}

impl FindingKind {
    /// A short machine-readable name: `known-secret`, `private-key`, `age-secret-key`,
    /// `high-entropy`, `assignment`.
    pub fn code(&self) -> &'static str {
        match self {
            FindingKind::KnownSecret { .. } => "known-secret",
            FindingKind::PrivateKeyBlock { .. } => "private-key",
            FindingKind::AgeSecretKey => "age-secret-key",
            FindingKind::HighEntropy { .. } => "high-entropy",
            FindingKind::Assignment { .. } => "assignment",
        }
    }
}

/// Where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A file in the working tree (path relative to the scanned directory).
    WorkingTree {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
    },
    /// A line added by a commit (path relative to the repository root).
    History {
        /// The full commit hash.
        commit: String,
        /// The file.
        path: String,
        /// 1-based line in that commit's version of the file.
        line: usize,
    },
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::WorkingTree { path, line } => write!(f, "{}:{line}", path.display()),
            Location::History { commit, path, line } => {
                write!(f, "{}:{path}:{line}", &commit[..commit.len().min(12)])
            }
        }
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Where.
    pub location: Location,
    /// What.
    pub kind: FindingKind,
    /// The first two characters and the length of the matched value.
    pub fingerprint: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} [{}]", self.location, self.kind, self.fingerprint)
    }
}

/// The result of a scan.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScanReport {
    /// Findings: working tree first, then history (newest commit first).
    pub findings: Vec<Finding>,
    /// Working-tree files read.
    pub files_scanned: usize,
    /// Commits read.
    pub commits_scanned: usize,
    /// The git repository root, when the path is in one.
    pub repository: Option<PathBuf>,
}

impl ScanReport {
    /// Whether nothing was found.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }
}

/// The file listing paths the scan skips (test fixtures, documented example keys), one glob
/// per line, relative to the repository root (or the scanned directory outside git).
pub const IGNORE_FILE: &str = ".homelab-scan-ignore";

/// What to scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanOptions {
    /// Also scan every commit reachable from any ref.
    pub history: bool,
    /// Path globs to skip, in addition to those in [`IGNORE_FILE`]: `*` within a path
    /// segment, `**` across segments, a trailing `/` for a directory, and a pattern without
    /// `/` matches a file name anywhere. `GLOB @COMMIT` skips the path only in the history of
    /// that commit (a hash or its prefix of at least 7 digits): a fixture that one commit
    /// once held, while the file itself is still scanned.
    pub ignore: Vec<String>,
}

impl Default for ScanOptions {
    fn default() -> Self {
        Self {
            history: true,
            ignore: Vec::new(),
        }
    }
}

/// Compiled ignore globs: those for every commit and the tree, and those pinned to one commit.
struct IgnoreList {
    patterns: Vec<Regex>,
    pinned: Vec<(Regex, String)>,
}

/// The shortest commit prefix an ignore line may name, so that it cannot match by chance.
const MIN_COMMIT_PREFIX: usize = 7;

impl IgnoreList {
    fn new(globs: &[String]) -> Self {
        let mut list = Self {
            patterns: Vec::new(),
            pinned: Vec::new(),
        };
        for line in globs.iter().map(|g| g.trim()) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (glob, commit) = match line.rsplit_once(" @") {
                Some((glob, commit))
                    if commit.len() >= MIN_COMMIT_PREFIX
                        && commit.chars().all(|c| c.is_ascii_hexdigit()) =>
                {
                    (glob.trim(), Some(commit.to_ascii_lowercase()))
                }
                _ => (line, None),
            };
            let Ok(pattern) = Regex::new(&glob_to_regex(glob)) else {
                continue;
            };
            match commit {
                Some(commit) => list.pinned.push((pattern, commit)),
                None => list.patterns.push(pattern),
            }
        }
        list
    }

    /// Whether `relative` is skipped everywhere (the tree and every commit).
    fn ignores(&self, relative: &str) -> bool {
        self.patterns.iter().any(|p| p.is_match(relative))
    }

    /// Whether `relative` is skipped in the diff of `commit`.
    fn ignores_in(&self, commit: &str, relative: &str) -> bool {
        self.ignores(relative)
            || self
                .pinned
                .iter()
                .any(|(p, c)| commit.starts_with(c.as_str()) && p.is_match(relative))
    }
}

fn glob_to_regex(glob: &str) -> String {
    let glob = glob.trim_start_matches("./");
    let (glob, directory) = match glob.strip_suffix('/') {
        Some(g) => (g, true),
        None => (glob, false),
    };
    let anchored = glob.contains('/');
    let glob = glob.trim_start_matches('/');
    let mut re = String::from("^");
    if !anchored {
        re.push_str("(?:.*/)?");
    }
    let chars: Vec<char> = glob.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' if chars.get(i + 1) == Some(&'*') => {
                if chars.get(i + 2) == Some(&'/') {
                    re.push_str("(?:.*/)?");
                    i += 3;
                } else {
                    re.push_str(".*");
                    i += 2;
                }
                continue;
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
        i += 1;
    }
    re.push_str(if directory { "/.*$" } else { "(?:/.*)?$" });
    re
}

/// Scans the working tree under `path` and the git history of its repository.
pub fn scan(path: &Path, known: &KnownSecrets) -> Result<ScanReport> {
    scan_with(path, known, &ScanOptions::default())
}

/// [`scan`] with options.
pub fn scan_with(path: &Path, known: &KnownSecrets, options: &ScanOptions) -> Result<ScanReport> {
    let detector = Detector::new(known);
    let meta = fs::metadata(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    let dir = if meta.is_dir() {
        path.to_owned()
    } else {
        path.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_owned()
    };
    let repository = git_toplevel(&dir)?;
    let root = repository.clone().unwrap_or_else(|| dir.clone());
    let mut globs = options.ignore.clone();
    let ignore_file = root.join(IGNORE_FILE);
    if ignore_file.is_file() {
        let text = fs::read_to_string(&ignore_file).map_err(|source| Error::Read {
            path: ignore_file.clone(),
            source,
        })?;
        globs.extend(text.lines().map(str::to_owned));
    }
    let ignore = IgnoreList::new(&globs);
    // Working-tree paths are shown relative to `dir` but matched relative to `root`.
    let dir_in_root = fs::canonicalize(&dir)
        .ok()
        .zip(fs::canonicalize(&root).ok())
        .and_then(|(d, r)| d.strip_prefix(&r).ok().map(Path::to_path_buf))
        .unwrap_or_default();
    let files: Vec<PathBuf> = if meta.is_file() {
        vec![PathBuf::from(path.file_name().unwrap_or_default())]
    } else if repository.is_some() {
        git_ls_files(&dir)?
    } else {
        walk_files(&dir)?
    };
    let mut report = ScanReport {
        repository: repository.clone(),
        ..ScanReport::default()
    };
    for rel in files {
        if ignore.ignores(&dir_in_root.join(&rel).to_string_lossy()) {
            continue;
        }
        let full = dir.join(&rel);
        let Some(text) = read_text_file(&full)? else {
            continue;
        };
        report.files_scanned += 1;
        let kind = FileKind::of(&rel.to_string_lossy());
        for (index, line) in text.lines().enumerate() {
            for (kind, fp) in detector.scan_line(line, kind) {
                report.findings.push(Finding {
                    location: Location::WorkingTree {
                        path: rel.clone(),
                        line: index + 1,
                    },
                    kind,
                    fingerprint: fp,
                });
            }
        }
    }
    if let (Some(repo), true) = (&repository, options.history) {
        scan_history(repo, &detector, &ignore, &mut report)?;
    }
    Ok(report)
}

/// Scans one text as if it were a file named `name`: (line, kind, fingerprint) per finding.
pub fn scan_text(
    name: &str,
    text: &str,
    known: &KnownSecrets,
) -> Vec<(usize, FindingKind, String)> {
    let detector = Detector::new(known);
    let kind = FileKind::of(name);
    text.lines()
        .enumerate()
        .flat_map(|(i, line)| {
            detector
                .scan_line(line, kind)
                .into_iter()
                .map(move |(k, fp)| (i + 1, k, fp))
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileKind {
    /// YAML, JSON or env: checked for high-entropy values under secret-looking keys, and for
    /// literal values of password-like names.
    Config,
    /// Shell scripts, other configuration formats and docs, where a password is written as
    /// `NAME=value` or `name = "value"`: checked for literal values of password-like names.
    Script,
    /// Source code and the rest: only known values and key material.
    Other,
}

impl FileKind {
    fn of(path: &str) -> Self {
        let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
        let config = [".yaml", ".yml", ".json", ".env"]
            .iter()
            .any(|ext| name.ends_with(ext))
            || name.starts_with(".env")
            || name == "env";
        let script = [
            ".sh",
            ".bash",
            ".zsh",
            ".toml",
            ".ini",
            ".conf",
            ".cfg",
            ".properties",
            ".tfvars",
            ".service",
            ".md",
            ".txt",
        ]
        .iter()
        .any(|ext| name.ends_with(ext))
            || name == "dockerfile"
            || name == "makefile"
            || name == ".netrc"
            || name == ".pgpass";
        if config {
            FileKind::Config
        } else if script {
            FileKind::Script
        } else {
            FileKind::Other
        }
    }
}

static PRIVATE_KEY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"-----BEGIN ((?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?)-----").expect("valid regex")
});
static AGE_KEY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"AGE-SECRET-KEY-1[02-9AC-HJ-NP-Z]{58}").expect("valid regex"));
static ASSIGNMENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?i)(?:^|[\s{,\[])(?:export\s+)?["']?([a-z0-9_.\-]*(?:password|passwd|passphrase|pwd|secret|token|apikey|api[_\-]key|access[_\-]?key|private[_\-]?key|credential|auth|key))["']?\s*[:=]\s*["']?([^\s"',#}\]]+)"#,
    )
    .expect("valid regex")
});

/// `password: "..."`, `db_password = '...'`, `PGPASSWORD=...`, `--token=...`: a name ending in
/// a password-like word, then `:` or `=`, then the value (quoted or bare). Names that only
/// contain the word (`passwordSecret`, `tokenFile`, `secretName`) are references, not values.
static LITERAL_ASSIGNMENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?i)(?:^|[\s{,\[(;&|])(?:export\s+|--)?["']?([a-z0-9_.\-]*(?:password|passwd|passphrase|pwd|token|api[_\-]?key|secret[_\-]?key|access[_\-]?key|client[_\-]?secret))["']?\s*(?::|=|:=)\s*(?:"([^"]*)"|'([^']*)'|([^\s"',#}\];&|)]+))"#,
    )
    .expect("valid regex")
});

struct Detector {
    known: Matcher,
}

impl Detector {
    fn new(known: &KnownSecrets) -> Self {
        Self {
            known: Matcher::new(known, MIN_KNOWN_VALUE_LEN),
        }
    }

    fn scan_line(&self, line: &str, kind: FileKind) -> Vec<(FindingKind, String)> {
        let mut out = Vec::new();
        for m in self.known.find_all(line.as_bytes()) {
            out.push((
                FindingKind::KnownSecret {
                    name: m.name,
                    encoding: m.encoding,
                },
                fingerprint(&line[m.start..m.end]),
            ));
        }
        for c in PRIVATE_KEY.captures_iter(line) {
            out.push((
                FindingKind::PrivateKeyBlock {
                    label: c[1].to_owned(),
                },
                String::from("key block"),
            ));
        }
        for m in AGE_KEY.find_iter(line) {
            out.push((FindingKind::AgeSecretKey, fingerprint(m.as_str())));
        }
        if kind == FileKind::Config && out.is_empty() {
            for c in ASSIGNMENT.captures_iter(line) {
                let value = &c[2];
                if looks_random(value) {
                    out.push((
                        FindingKind::HighEntropy {
                            key: c[1].to_owned(),
                        },
                        fingerprint(value),
                    ));
                }
            }
        }
        // A value that is not random-looking but written out is still a password.
        if matches!(kind, FileKind::Config | FileKind::Script) && out.is_empty() {
            for c in LITERAL_ASSIGNMENT.captures_iter(line) {
                let value = c
                    .get(2)
                    .or_else(|| c.get(3))
                    .or_else(|| c.get(4))
                    .map_or("", |m| m.as_str());
                if is_literal_password(value) {
                    out.push((
                        FindingKind::Assignment {
                            key: c[1].to_owned(),
                        },
                        fingerprint(value),
                    ));
                }
            }
        }
        out
    }
}

/// Values shorter than this given to a password-like name are not reported: they are flags,
/// numbers or words more often than passwords.
pub const MIN_ASSIGNED_VALUE_LEN: usize = 8;

/// Whether a value given to a password-like name is a password written out, rather than a
/// reference (`$VAR`, `${..}`, `$(..)`, `{{ .. }}`, `<..>`, `{secret: ..}`, `ENC[..]`), a
/// path, a placeholder (`changeme`, `xxxxxxxx`, `your-token-here`, `...`), or a keyword.
fn is_literal_password(v: &str) -> bool {
    let v = v.trim();
    if v.chars().count() < MIN_ASSIGNED_VALUE_LEN {
        return false;
    }
    // In prose, `token: `VAULT_TOKEN`` names where a value comes from.
    let reference = v.starts_with('$')
        || v.starts_with('`')
        || v.contains("${")
        || v.contains("$(")
        || v.contains("{{")
        || v.contains("%(")
        || v.starts_with('<')
        || v.starts_with('{')
        || v.starts_with('[')
        || v.starts_with("ENC[")
        || v.starts_with('/')
        || v.starts_with("./")
        || v.starts_with("~/")
        || v.contains("://")
        || v.ends_with("()")
        || v.contains('(');
    if reference {
        return false;
    }
    let lower = v.to_ascii_lowercase();
    const PLACEHOLDERS: [&str; 14] = [
        "changeme",
        "change-me",
        "change_me",
        "replace",
        "example",
        "redacted",
        "placeholder",
        "your-",
        "your_",
        "dummy",
        "secret-name",
        "null",
        "none",
        "...",
    ];
    if PLACEHOLDERS.iter().any(|p| lower.contains(p)) {
        return false;
    }
    // `xxxxxxxx`, `********`, `--------`: one character repeated hides a value.
    let mut chars = v.chars();
    let first = chars.next().unwrap_or(' ');
    if chars.all(|c| c == first) {
        return false;
    }
    // A value made only of letters, `-`, `_` and `.` reads like a name (`grafana-admin`,
    // `node.kubernetes.io`) unless it is long and mixed like a passphrase; one with a digit
    // or another symbol is written to be hard to guess.
    let wordy = v
        .chars()
        .all(|c| c.is_ascii_alphabetic() || matches!(c, '-' | '_' | '.'));
    !wordy
}

/// Shannon entropy in bits per character.
fn entropy(s: &str) -> f64 {
    let mut counts = std::collections::HashMap::new();
    let mut total = 0usize;
    for c in s.chars() {
        *counts.entry(c).or_insert(0usize) += 1;
        total += 1;
    }
    counts
        .values()
        .map(|&n| {
            let p = n as f64 / total as f64;
            -p * p.log2()
        })
        .sum()
}

/// Whether a value looks like a generated secret rather than a name, path, URL or reference.
fn looks_random(v: &str) -> bool {
    let len = v.chars().count();
    if len < 16 {
        return false;
    }
    // SOPS-encrypted values, references and templates are not leaks.
    if v.starts_with("ENC[")
        || v.contains("${")
        || v.contains("{{")
        || v.contains("$(")
        || v.starts_with('<')
        || v.contains("://")
        || v.starts_with('/')
        || v.starts_with("./")
    {
        return false;
    }
    let lower = v.chars().any(|c| c.is_ascii_lowercase());
    let upper = v.chars().any(|c| c.is_ascii_uppercase());
    let digit = v.chars().any(|c| c.is_ascii_digit());
    let other = v.chars().any(|c| !c.is_ascii_alphanumeric());
    let classes = [lower, upper, digit, other].iter().filter(|b| **b).count();
    let hex = v.chars().all(|c| c.is_ascii_hexdigit()) && digit;
    let e = entropy(v);
    (classes >= 3 && e >= 3.5 && upper && (lower || digit)) || (hex && len >= 32 && e >= 3.0)
}

fn read_text_file(path: &Path) -> Result<Option<String>> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        // Listed by git but deleted from the working tree.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(Error::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    if !meta.is_file() || meta.len() > MAX_FILE_BYTES {
        return Ok(None);
    }
    let bytes = fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    if bytes[..bytes.len().min(8000)].contains(&0) {
        return Ok(None);
    }
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

fn walk_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let full = dir.join(&rel);
        let entries = fs::read_dir(&full).map_err(|source| Error::Read {
            path: full.clone(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| Error::Read {
                path: full.clone(),
                source,
            })?;
            let ty = entry.file_type().map_err(|source| Error::Read {
                path: entry.path(),
                source,
            })?;
            let child = rel.join(entry.file_name());
            if ty.is_dir() {
                if entry.file_name() != ".git" {
                    stack.push(child);
                }
            } else if ty.is_file() {
                out.push(child);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn git(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.arg("-C")
        .arg(dir)
        // Pin settings a user's git config could change and the parser relies on.
        .args([
            "-c",
            "core.quotePath=false",
            "-c",
            "diff.renames=true",
            "-c",
            "diff.noprefix=false",
            "-c",
            "diff.mnemonicPrefix=false",
            "-c",
            "log.showRoot=true",
            "-c",
            "log.showSignature=false",
        ])
        .stdin(Stdio::null());
    cmd
}

fn git_error(dir: &Path, what: &str, e: std::io::Error) -> Error {
    Error::Git {
        path: dir.to_owned(),
        reason: if e.kind() == std::io::ErrorKind::NotFound {
            "the `git` command is not installed".to_owned()
        } else {
            format!("{what}: {e}")
        },
    }
}

fn git_toplevel(dir: &Path) -> Result<Option<PathBuf>> {
    let out = git(dir)
        .args(["rev-parse", "--show-toplevel"])
        .stderr(Stdio::null())
        .output()
        .map_err(|e| git_error(dir, "git rev-parse", e))?;
    if !out.status.success() {
        return Ok(None);
    }
    let top = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    Ok((!top.is_empty()).then(|| PathBuf::from(top)))
}

fn git_ls_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let out = git(dir)
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .output()
        .map_err(|e| git_error(dir, "git ls-files", e))?;
    if !out.status.success() {
        return Err(Error::Git {
            path: dir.to_owned(),
            reason: format!(
                "git ls-files failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    let mut files: Vec<PathBuf> = out
        .stdout
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| PathBuf::from(String::from_utf8_lossy(s).into_owned()))
        .collect();
    files.sort();
    files.dedup();
    Ok(files)
}

/// Reads `git log -p --all` once, checking every added line with its commit, file and line.
fn scan_history(
    repo: &Path,
    detector: &Detector,
    ignore: &IgnoreList,
    report: &mut ScanReport,
) -> Result<()> {
    let mut child = git(repo)
        .args([
            "log",
            "-p",
            "--all",
            "--no-color",
            "--no-ext-diff",
            "--no-textconv",
            "--unified=0",
            "--format=%x00%H",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| git_error(repo, "git log", e))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut reader = BufReader::new(stdout);
    let mut commit = String::new();
    let mut file: Option<String> = None;
    let mut kind = FileKind::Other;
    let mut in_hunk = false;
    let mut next_line = 0usize;
    let mut raw = Vec::new();
    loop {
        raw.clear();
        let n = reader
            .read_until(b'\n', &mut raw)
            .map_err(|e| git_error(repo, "reading git log", e))?;
        if n == 0 {
            break;
        }
        let line = String::from_utf8_lossy(&raw);
        let line = line.strip_suffix('\n').unwrap_or(&line);
        if let Some(hash) = line.strip_prefix('\0') {
            commit = hash.trim().to_owned();
            report.commits_scanned += 1;
            file = None;
            in_hunk = false;
            continue;
        }
        if line.starts_with("diff --git ") {
            file = None;
            in_hunk = false;
            continue;
        }
        if !in_hunk {
            if let Some(target) = line.strip_prefix("+++ ") {
                file = parse_diff_path(target).filter(|p| !ignore.ignores_in(&commit, p));
                kind = file.as_deref().map_or(FileKind::Other, FileKind::of);
            } else if line.starts_with("@@") {
                in_hunk = true;
                next_line = parse_hunk_start(line);
            }
            continue;
        }
        if line.starts_with("@@") {
            next_line = parse_hunk_start(line);
        } else if let Some(added) = line.strip_prefix('+') {
            if let Some(path) = &file {
                for (k, fp) in detector.scan_line(added, kind) {
                    report.findings.push(Finding {
                        location: Location::History {
                            commit: commit.clone(),
                            path: path.clone(),
                            line: next_line,
                        },
                        kind: k,
                        fingerprint: fp,
                    });
                }
            }
            next_line += 1;
        } else if line.starts_with(' ') {
            next_line += 1;
        }
    }
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    let status = child.wait().map_err(|e| git_error(repo, "git log", e))?;
    if !status.success() {
        // A repository without commits has no history to scan.
        if stderr.contains("does not have any commits") {
            return Ok(());
        }
        return Err(Error::Git {
            path: repo.to_owned(),
            reason: format!("git log failed: {}", stderr.trim()),
        });
    }
    Ok(())
}

/// The new-file path of a `+++ b/path` header (`None` for deletions).
fn parse_diff_path(target: &str) -> Option<String> {
    let target = target.trim_end_matches('\t');
    if target == "/dev/null" {
        return None;
    }
    let unquoted = if target.starts_with('"') {
        unquote_c_style(target)
    } else {
        target.to_owned()
    };
    Some(unquoted.strip_prefix("b/").unwrap_or(&unquoted).to_owned())
}

/// git's C-style quoting of unusual file names.
fn unquote_c_style(s: &str) -> String {
    let inner = s.trim_matches('"');
    let mut bytes = Vec::new();
    let mut chars = inner.bytes().peekable();
    while let Some(b) = chars.next() {
        if b != b'\\' {
            bytes.push(b);
            continue;
        }
        match chars.next() {
            Some(b'n') => bytes.push(b'\n'),
            Some(b't') => bytes.push(b'\t'),
            Some(b'"') => bytes.push(b'"'),
            Some(b'\\') => bytes.push(b'\\'),
            Some(d @ b'0'..=b'7') => {
                let mut v = u32::from(d - b'0');
                for _ in 0..2 {
                    if let Some(&n @ b'0'..=b'7') = chars.peek() {
                        v = v * 8 + u32::from(n - b'0');
                        chars.next();
                    }
                }
                bytes.push(v as u8);
            }
            Some(other) => bytes.push(other),
            None => {}
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The new-file start line of `@@ -a,b +c,d @@`.
fn parse_hunk_start(line: &str) -> usize {
    line.split_whitespace()
        .find_map(|part| part.strip_prefix('+'))
        .and_then(|p| p.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    #[test]
    fn detects_each_kind_on_a_line() {
        let mut known = KnownSecrets::new();
        known.insert("k3s-token", SecretString::from("K10abcdefgh123".to_owned()));
        let key_header = include_str!("../tests/testdata/leaks/openssh-private-key.txt")
            .lines()
            .next()
            .expect("a header line");
        let age = include_str!("../tests/testdata/leaks/age-identity.txt");
        let text = format!(
            "\
token: K10abcdefgh123
{key_header}
key: {age}
db_password: \"Xk9mQ2vL8nR4pT7wZ3yB\"
password: ENC[AES256_GCM,data:Xk9mQ2vL8nR4pT7wZ3yB,iv:a,tag:b,type:str]
key: node-role.kubernetes.io/control-plane
secretName: grafana-admin-credentials
"
        );
        let found = scan_text("values.yaml", &text, &known);
        let kinds: Vec<(usize, &str)> = found.iter().map(|(l, k, _)| (*l, k.code())).collect();
        assert_eq!(
            kinds,
            [
                (1, "known-secret"),
                (2, "private-key"),
                (3, "age-secret-key"),
                (4, "high-entropy")
            ]
        );
        for (_, _, fp) in &found {
            assert!(!fp.contains("K10abcdefgh123"));
            assert!(!fp.contains("Xk9mQ2vL8nR4pT7wZ3yB"));
        }
    }

    #[test]
    fn env_and_json_assignments() {
        let k = KnownSecrets::new();
        assert_eq!(
            scan_text(
                ".env",
                "export API_KEY=sk_live_4eC39HqLyjWDarjtT1zdp7dc",
                &k
            )
            .len(),
            1
        );
        assert_eq!(
            scan_text(
                "c.json",
                r#"{"clientSecret": "aB3dE5fG7hJ9kL1mN3pQ5rS7"}"#,
                &k
            )
            .len(),
            1
        );
        // The same line in a Rust file is not a config assignment.
        assert!(
            scan_text(
                "main.rs",
                "let API_KEY=sk_live_4eC39HqLyjWDarjtT1zdp7dc",
                &k
            )
            .is_empty()
        );
        assert!(scan_text("c.yaml", "password: changeme", &k).is_empty());
    }

    #[test]
    fn ignore_globs() {
        let list = IgnoreList::new(&[
            "tests/testdata/".to_owned(),
            "*.key.txt".to_owned(),
            "docs/**/example.yaml".to_owned(),
            "# a comment".to_owned(),
        ]);
        assert!(list.ignores("tests/testdata/sops/a.yaml"));
        assert!(!list.ignores("src/tests/testdata/a.yaml"));
        assert!(list.ignores("crates/x/example.key.txt"));
        assert!(list.ignores("docs/example.yaml"));
        assert!(list.ignores("docs/a/b/example.yaml"));
        assert!(!list.ignores("docs/a/b/other.yaml"));
        assert!(!list.ignores("example.key.txt.bak"));
    }

    #[test]
    fn ignore_lines_pinned_to_a_commit_skip_only_that_commits_diff() {
        let list = IgnoreList::new(&[
            "src/init.rs @780F523c".to_owned(),
            // Too short a prefix to pin: read as a path glob that matches nothing here.
            "src/other.rs @abc".to_owned(),
        ]);
        assert!(!list.ignores("src/init.rs"), "the file itself is scanned");
        assert!(list.ignores_in("780f523cff84aa", "src/init.rs"));
        assert!(!list.ignores_in("38d7f7333a24", "src/init.rs"));
        assert!(!list.ignores_in("780f523cff84aa", "src/main.rs"));
        assert!(!list.ignores_in("abcdef012345", "src/other.rs"));
    }

    #[test]
    fn diff_headers_parse() {
        assert_eq!(parse_hunk_start("@@ -0,0 +1,3 @@"), 1);
        assert_eq!(parse_hunk_start("@@ -10 +12 @@ fn x"), 12);
        assert_eq!(
            parse_diff_path("b/dir/file.yaml").as_deref(),
            Some("dir/file.yaml")
        );
        assert_eq!(parse_diff_path("/dev/null"), None);
        assert_eq!(
            parse_diff_path("\"b/tab\\there\\303\\251\"").as_deref(),
            Some("tab\there\u{e9}")
        );
    }
}
