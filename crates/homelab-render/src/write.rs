//! Puts a rendered tree on disk, the crate's only I/O. Every file goes through a temporary
//! file and a rename; `.homelab-rendered` lists what was written, so the next render replaces
//! exactly those files, deletes the ones it no longer writes and leaves every other file
//! alone. It never follows a symlink out of the output directory and never deletes outside it.

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use homelab_secrets::{Identities, Recipient, SopsError, VaultKey};
use secrecy::ExposeSecret;

use crate::{Content, Flavor, Surroundings, Tree, UserAdr};

/// The list of files the last render wrote, at the root of the output directory.
pub const MANIFEST_FILE: &str = ".homelab-rendered";

/// Entries of a directory that do not make it "not empty" for a first render.
const IGNORED_WHEN_EMPTY: &[&str] = &[".git"];

/// The keys the flux flavor's Secrets are encrypted with.
#[derive(Clone, Copy)]
pub struct SopsKeys<'a> {
    /// Who can decrypt (the lab's recipients, including the cluster's key for Flux).
    pub recipients: &'a [Recipient],
    /// Identities that can open the previous render's files: an unchanged Secret keeps its
    /// file byte for byte instead of being encrypted again with a new data key. Their Vault
    /// credentials wrap new data keys with the transit keys of `vault`.
    pub identities: &'a Identities,
    /// Vault/OpenBao transit keys that also wrap each Secret's data key (the plan's
    /// `secrets_vault`), so Flux can decrypt with a Vault token.
    pub vault: &'a [VaultKey],
}

/// How to write.
#[derive(Clone, Copy)]
pub struct WriteOptions<'a> {
    pub flavor: Flavor,
    /// Write into a non-empty directory that has no manifest, and over files the tool did
    /// not write. Files the tool does not write are still never deleted.
    pub force: bool,
    /// Needed when the tree holds encrypted Secrets.
    pub sops: Option<SopsKeys<'a>>,
    /// A test seam: a pause after each file written, so that a test can interrupt a render
    /// while it writes. `None` outside tests.
    pub pause_per_file: Option<std::time::Duration>,
}

/// What a write did, with paths relative to the output directory.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WriteReport {
    /// Files created or changed.
    pub written: Vec<String>,
    /// Files whose content and mode were already right (left untouched).
    pub unchanged: Vec<String>,
    /// Files of the previous render that this one no longer writes, deleted.
    pub removed: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{} is not a directory; pass a directory (new or empty) to --out", path.display())]
    NotADirectory { path: PathBuf },
    #[error(
        "{} is not empty and has no {MANIFEST_FILE}, so `homelab render` did not write it (it holds {}); render into a new or empty directory, or pass --force to write into it anyway (files the render does not produce are left alone)",
        path.display(), examples.join(", ")
    )]
    NotOurs {
        path: PathBuf,
        examples: Vec<String>,
    },
    #[error(
        "{} holds files that `homelab render` did not write but would now overwrite: {}; move them away, or pass --force to overwrite them",
        path.display(), files.join(", ")
    )]
    WouldOverwrite { path: PathBuf, files: Vec<String> },
    #[error(
        "{} line {line} lists `{entry}`, which is not a path inside the output directory; nothing was written or deleted (fix or remove that line)",
        path.display()
    )]
    BadManifest {
        path: PathBuf,
        line: usize,
        entry: String,
    },
    #[error("refusing to use {}: {reason}; nothing was written or deleted", path.display())]
    Unsafe { path: PathBuf, reason: String },
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot encrypt {object} into {}: {source}; nothing was written", path.display())]
    Encrypt {
        object: String,
        path: PathBuf,
        #[source]
        source: SopsError,
    },
    #[error(
        "{object} is written SOPS-encrypted, but no age recipients were given; nothing was written"
    )]
    NoRecipients { object: String },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> WriteError + 'a {
    move |source| WriteError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// Whether `p` is a plain relative path below the output directory.
fn is_safe_relative(p: &str) -> bool {
    !p.is_empty()
        && !p.starts_with('/')
        && !p.contains('\0')
        && !p.contains('\\')
        && p.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}

/// Reads the previous render's file list.
fn read_manifest(out: &Path) -> Result<Option<BTreeSet<String>>, WriteError> {
    let path = out.join(MANIFEST_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("read", &path)(e)),
    };
    let mut entries = BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        let entry = line.trim_end();
        if entry.is_empty() || entry.starts_with('#') {
            continue;
        }
        if !is_safe_relative(entry) || entry == MANIFEST_FILE {
            return Err(WriteError::BadManifest {
                path,
                line: i + 1,
                entry: entry.to_string(),
            });
        }
        entries.insert(entry.to_string());
    }
    Ok(Some(entries))
}

fn manifest_text(flavor: Flavor, paths: &[&str]) -> String {
    let mut out = format!(
        "# Files written by `homelab render --flavor {flavor}`. The next render replaces them and\n# deletes the ones it no longer writes; every other file in this directory is left alone.\n"
    );
    for p in paths {
        out.push_str(p);
        out.push('\n');
    }
    out
}

/// Checks that every existing ancestor of `rel` below `out` is a real directory (not a
/// symlink that could lead outside), caching what was checked.
fn check_ancestors(out: &Path, rel: &str, checked: &mut HashSet<String>) -> Result<(), WriteError> {
    let mut prefix = String::new();
    let parts: Vec<&str> = rel.split('/').collect();
    for part in &parts[..parts.len() - 1] {
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(part);
        if checked.contains(&prefix) {
            continue;
        }
        let path = out.join(&prefix);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(WriteError::Unsafe {
                    path,
                    reason: "it is a symbolic link, which could lead outside the output directory"
                        .into(),
                });
            }
            Ok(m) if !m.is_dir() => {
                return Err(WriteError::Unsafe {
                    path,
                    reason: "a directory is needed here, but a file is in the way".into(),
                });
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("inspect", &path)(e)),
        }
        checked.insert(prefix.clone());
    }
    Ok(())
}

/// The current content of a regular file (not following a symlink), when there is one.
fn existing_file(path: &Path) -> Result<Option<(Vec<u8>, u32)>, WriteError> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_file() => {
            let bytes = fs::read(path).map_err(io_err("read", path))?;
            Ok(Some((bytes, m.permissions().mode() & 0o7777)))
        }
        Ok(m) if m.is_dir() => Err(WriteError::Unsafe {
            path: path.to_owned(),
            reason: "a directory is in the way of a file".into(),
        }),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("inspect", path)(e)),
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename.
fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), WriteError> {
    let dir = path.parent().expect("a file below the output directory");
    let name = path.file_name().expect("a file name").to_string_lossy();
    let tmp = dir.join(format!(".{name}.homelab-tmp"));
    let result = (|| {
        let mut f = fs::File::create(&tmp).map_err(io_err("create", &tmp))?;
        f.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(io_err("set the mode of", &tmp))?;
        f.write_all(bytes).map_err(io_err("write", &tmp))?;
        drop(f);
        fs::rename(&tmp, path).map_err(io_err("replace", path))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Writes the tree into `out` (created when missing) and returns what changed.
pub fn write_tree(
    tree: &Tree,
    out: &Path,
    options: &WriteOptions<'_>,
) -> Result<WriteReport, WriteError> {
    match fs::metadata(out) {
        Ok(m) if !m.is_dir() => {
            return Err(WriteError::NotADirectory {
                path: out.to_owned(),
            });
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("inspect", out)(e)),
    }
    for path in tree.paths() {
        if !is_safe_relative(path) || path == MANIFEST_FILE {
            return Err(WriteError::Unsafe {
                path: out.join(path),
                reason: "the path is not a plain relative path".into(),
            });
        }
    }
    let previous = read_manifest(out)?;
    let ours: BTreeSet<String> = previous.clone().unwrap_or_default();
    if previous.is_none() && !options.force && out.is_dir() {
        let mut examples: Vec<String> = fs::read_dir(out)
            .map_err(io_err("list", out))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !IGNORED_WHEN_EMPTY.contains(&n.as_str()))
            .collect();
        if !examples.is_empty() {
            examples.sort();
            examples.truncate(5);
            return Err(WriteError::NotOurs {
                path: out.to_owned(),
                examples,
            });
        }
    }

    // Everything is decided and encrypted before the first byte is written.
    let mut checked = HashSet::new();
    let mut planned: Vec<(&str, Vec<u8>, u32, bool)> = Vec::with_capacity(tree.len());
    let mut foreign = Vec::new();
    for (rel, file) in tree.iter() {
        check_ancestors(out, rel, &mut checked)?;
        let path = out.join(rel);
        let current = existing_file(&path)?;
        let bytes = match &file.content {
            Content::Text(t) => t.as_bytes().to_vec(),
            Content::Sops(secret) => {
                let keys = options.sops.ok_or_else(|| WriteError::NoRecipients {
                    object: secret.object.clone(),
                })?;
                if keys.recipients.is_empty() {
                    return Err(WriteError::NoRecipients {
                        object: secret.object.clone(),
                    });
                }
                let previous_text = current
                    .as_ref()
                    .filter(|_| ours.contains(rel))
                    .and_then(|(b, _)| std::str::from_utf8(b).ok());
                homelab_secrets::encrypt_kubernetes_secret_stable_with(
                    secret.plaintext.expose_secret(),
                    keys.recipients,
                    keys.vault,
                    previous_text,
                    keys.identities,
                )
                .map_err(|source| WriteError::Encrypt {
                    object: secret.object.clone(),
                    path: path.clone(),
                    source,
                })?
                .into_bytes()
            }
        };
        // `current` is None for a symlink too, which must count as existing.
        let exists = current.is_some() || fs::symlink_metadata(&path).is_ok();
        let same = current
            .as_ref()
            .is_some_and(|(b, m)| *b == bytes && *m == file.mode);
        if exists && !ours.contains(rel) && current.as_ref().is_none_or(|(b, _)| *b != bytes) {
            foreign.push(rel.to_string());
        }
        planned.push((rel, bytes, file.mode, same));
    }
    if !foreign.is_empty() && !options.force {
        foreign.truncate(10);
        return Err(WriteError::WouldOverwrite {
            path: out.to_owned(),
            files: foreign,
        });
    }

    // Stale files are checked now too, so an unsafe one stops the render before any write.
    let new: BTreeSet<&str> = tree.paths().collect();
    let stale: Vec<&String> = ours.iter().filter(|p| !new.contains(p.as_str())).collect();
    for rel in &stale {
        check_ancestors(out, rel, &mut checked)?;
    }

    let mut report = WriteReport::default();
    fs::create_dir_all(out).map_err(io_err("create the directory", out))?;
    // The list first names every file this render may write besides those of the last one,
    // so that a render stopped halfway (killed, power lost) leaves only files the next
    // render knows as its own: it then replaces or deletes them instead of refusing a
    // directory it did not write.
    let mut journal: BTreeSet<&str> = ours.iter().map(String::as_str).collect();
    journal.extend(tree.paths());
    if previous.as_ref().is_none_or(|p| journal.len() != p.len()) {
        let listed: Vec<&str> = journal.into_iter().collect();
        write_atomic(
            &out.join(MANIFEST_FILE),
            manifest_text(options.flavor, &listed).as_bytes(),
            0o644,
        )?;
    }
    let mut made: HashSet<PathBuf> = HashSet::new();
    for (rel, bytes, mode, same) in &planned {
        if *same {
            report.unchanged.push(rel.to_string());
            continue;
        }
        let path = out.join(rel);
        let dir = path.parent().expect("a file below the output directory");
        if !made.contains(dir) {
            fs::create_dir_all(dir).map_err(io_err("create the directory", dir))?;
            made.insert(dir.to_path_buf());
        }
        write_atomic(&path, bytes, *mode)?;
        report.written.push(rel.to_string());
        if let Some(pause) = options.pause_per_file {
            std::thread::sleep(pause);
        }
    }

    for rel in stale {
        if remove_stale(out, rel, &mut checked)? {
            report.removed.push(rel.clone());
        }
    }
    let paths: Vec<&str> = tree.paths().collect();
    write_atomic(
        &out.join(MANIFEST_FILE),
        manifest_text(options.flavor, &paths).as_bytes(),
        0o644,
    )?;
    Ok(report)
}

/// Deletes a file of the previous render, then the directories that became empty, up to
/// (not including) `out`. Returns whether a file was deleted.
fn remove_stale(out: &Path, rel: &str, checked: &mut HashSet<String>) -> Result<bool, WriteError> {
    check_ancestors(out, rel, checked)?;
    let path = out.join(rel);
    match fs::symlink_metadata(&path) {
        Ok(m) if m.is_dir() => return Ok(false),
        Ok(_) => fs::remove_file(&path).map_err(io_err("delete", &path))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io_err("inspect", &path)(e)),
    }
    let mut dir = Path::new(rel).parent();
    while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
        // Fails (and stops) at the first directory that still holds something.
        if fs::remove_dir(out.join(d)).is_err() {
            break;
        }
        checked.remove(&d.to_string_lossy().into_owned());
        dir = d.parent();
    }
    Ok(true)
}

/// At most this many of the user's ADRs are listed; more is not a lab's decision log.
const MAX_USER_ADRS: usize = 500;
/// How much of an ADR is read to find its title.
const ADR_HEAD_BYTES: u64 = 16 * 1024;

/// The absolute, lexically normalised form of `p` (`.` and `..` resolved without touching
/// the disk, so that a directory that does not exist yet has one too).
fn absolute(p: &Path) -> Result<PathBuf, WriteError> {
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(io_err("find the current directory for", p))?
            .join(p)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    Ok(out)
}

/// `to` relative to the directory `from` (both absolute and normalised), with `/`.
fn relative(from: &Path, to: &Path) -> String {
    let a: Vec<_> = from.components().collect();
    let b: Vec<_> = to.components().collect();
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut parts: Vec<String> = std::iter::repeat_n("..".to_string(), a.len() - common).collect();
    parts.extend(
        b[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    }
}

/// The title of an ADR file: its first `# ` heading, else its name without `.md`.
fn adr_title(path: &Path, name: &str) -> Result<String, WriteError> {
    use std::io::Read as _;
    let mut head = Vec::new();
    fs::File::open(path)
        .and_then(|f| f.take(ADR_HEAD_BYTES).read_to_end(&mut head))
        .map_err(io_err("read", path))?;
    let text = String::from_utf8_lossy(&head);
    let title = text
        .lines()
        .find_map(|l| l.strip_prefix("# "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| name.trim_end_matches(".md"));
    let title: String = title.chars().take(200).collect();
    Ok(title.replace('[', "\\[").replace(']', "\\]"))
}

/// The `*.md` files of `dir` except its README and `skip`, as (file name, path), sorted.
fn adr_files(dir: &Path, skip: &BTreeSet<String>) -> Result<Vec<(String, PathBuf)>, WriteError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(Vec::new());
        }
        Err(e) => return Err(io_err("list", dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err("list", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".md")
            || name == "README.md"
            || name.starts_with('.')
            || skip.contains(&name)
        {
            continue;
        }
        let path = entry.path();
        // Only regular files: a symlink could point anywhere.
        if fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
            out.push((name, path));
        }
    }
    out.sort();
    Ok(out)
}

/// A Markdown link target: in angle brackets when it has characters that would end it.
fn link_target(link: &str) -> String {
    if link.contains([' ', '(', ')', '<', '>']) {
        format!("<{link}>")
    } else {
        link.to_string()
    }
}

/// What a tree rendered into `out` says about its surroundings: `secrets_file` relative to
/// the tree's root, and the user's own ADRs, the `*.md` files of `docs/adrs/` in `out` that
/// the last render did not write and those of `docs/adrs/` beside the spec (in `spec_dir`).
/// Reads only; a missing directory has no ADRs.
pub fn surroundings(
    out: &Path,
    spec_dir: &Path,
    secrets_file: &Path,
) -> Result<Surroundings, WriteError> {
    let out_abs = absolute(out)?;
    let secrets = relative(&out_abs, &absolute(secrets_file)?);
    let tree_adrs = out_abs.join("docs/adrs");
    let ours: BTreeSet<String> = if fs::metadata(out).is_ok_and(|m| m.is_dir()) {
        read_manifest(out)?
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| p.strip_prefix("docs/adrs/").map(str::to_string))
            .collect()
    } else {
        BTreeSet::new()
    };
    let mut user_adrs = Vec::new();
    for (name, path) in adr_files(&tree_adrs, &ours)? {
        user_adrs.push(UserAdr {
            title: adr_title(&path, &name)?,
            link: link_target(&name),
        });
    }
    let spec_adrs = absolute(spec_dir)?.join("docs/adrs");
    if spec_adrs != tree_adrs {
        for (name, path) in adr_files(&spec_adrs, &BTreeSet::new())? {
            user_adrs.push(UserAdr {
                title: adr_title(&path, &name)?,
                link: link_target(&relative(&tree_adrs, &spec_adrs.join(&name))),
            });
        }
    }
    user_adrs.truncate(MAX_USER_ADRS);
    Ok(Surroundings {
        secrets_file: secrets,
        user_adrs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_between_directories() {
        let p = |s: &str| PathBuf::from(s);
        assert_eq!(
            relative(&p("/a/lab"), &p("/a/secrets.sops.yaml")),
            "../secrets.sops.yaml"
        );
        assert_eq!(
            relative(&p("/a"), &p("/a/secrets.sops.yaml")),
            "secrets.sops.yaml"
        );
        assert_eq!(
            relative(&p("/a/out/docs/adrs"), &p("/a/docs/adrs/0001-x.md")),
            "../../../docs/adrs/0001-x.md"
        );
        assert_eq!(relative(&p("/x/y"), &p("/z")), "../../z");
    }

    #[test]
    fn only_plain_relative_paths_are_safe() {
        for ok in ["a", "a/b.yaml", ".hidden/x"] {
            assert!(is_safe_relative(ok), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a//b",
            "./a",
            "a/",
            "a\\b",
        ] {
            assert!(!is_safe_relative(bad), "{bad}");
        }
    }
}
