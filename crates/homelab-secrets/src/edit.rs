//! `edit`: decrypt a SOPS file into a private temporary file, run the user's editor on it,
//! re-encrypt. The temporary plaintext is overwritten and removed on every exit path, panics
//! included; the original file changes only after the edited text is valid.

use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use secrecy::ExposeSecret;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::files::{open_file, write_secret_file};
use crate::identity::Identities;
use crate::sops::METADATA_KEY;
use crate::yaml::{self, Value};

/// The editor to run: `$VISUAL`, else `$EDITOR`, else `vi` (empty values count as unset).
pub fn resolve_editor(visual: Option<&OsStr>, editor: Option<&OsStr>) -> String {
    [visual, editor]
        .into_iter()
        .flatten()
        .map(|v| v.to_string_lossy().trim().to_owned())
        .find(|v| !v.is_empty())
        .unwrap_or_else(|| "vi".to_owned())
}

/// [`resolve_editor`] from the process environment.
pub fn editor_from_env() -> String {
    resolve_editor(
        std::env::var_os("VISUAL").as_deref(),
        std::env::var_os("EDITOR").as_deref(),
    )
}

/// How to edit.
#[derive(Debug, Clone)]
pub struct EditOptions {
    /// The editor command line; the file path is appended as one argument. It runs through
    /// `sh -c`, so `code --wait` or `vim -n` work.
    pub editor: String,
    /// Where the private temporary directory goes; by default `$XDG_RUNTIME_DIR`, else
    /// `/dev/shm` (memory-backed), else the system temporary directory.
    pub temp_parent: Option<PathBuf>,
}

impl EditOptions {
    /// Edit with this editor command.
    pub fn new(editor: impl Into<String>) -> Self {
        Self {
            editor: editor.into(),
            temp_parent: None,
        }
    }
}

/// What an edit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditOutcome {
    /// The text did not change; the file was not rewritten.
    Unchanged,
    /// The file was re-encrypted and replaced.
    Saved,
}

/// Edits any SOPS YAML file.
pub fn edit_file(
    path: &Path,
    identities: &Identities,
    options: &EditOptions,
) -> Result<EditOutcome> {
    edit_file_checked(path, identities, options, &|_| Ok(()))
}

/// Edits a SOPS file, running `check` on the edited documents before saving; a rejection
/// (an error message) leaves the file unchanged.
pub fn edit_file_checked(
    path: &Path,
    identities: &Identities,
    options: &EditOptions,
    check: &dyn Fn(&[Value]) -> std::result::Result<(), String>,
) -> Result<EditOutcome> {
    let mut doc = open_file(path, identities)?;
    let original = Zeroizing::new(doc.to_plain_yaml().expose_secret().to_owned());
    let workspace = PrivateWorkspace::create(options.temp_parent.as_deref(), path)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().replace(".sops", ""))
        .unwrap_or_else(|| "secrets.yaml".to_owned());
    let plain_path = workspace.dir.join(file_name);
    write_private(&plain_path, original.as_bytes()).map_err(|source| Error::Write {
        path: plain_path.clone(),
        source,
    })?;

    run_editor(&options.editor, &plain_path, path)?;

    let edited = Zeroizing::new(fs::read_to_string(&plain_path).map_err(|e| Error::Editor {
        command: options.editor.clone(),
        reason: format!("the edited file could not be read back ({e})"),
        path: path.to_owned(),
    })?);
    if *edited == *original {
        return Ok(EditOutcome::Unchanged);
    }
    let invalid = |reason: String| Error::EditInvalid {
        path: path.to_owned(),
        reason,
    };
    let documents =
        yaml::parse_documents(&edited).map_err(|e| invalid(format!("YAML syntax error at {e}")))?;
    for (i, d) in documents.iter().enumerate() {
        match d {
            Value::Map(m) if m.contains_key(METADATA_KEY) => {
                return Err(invalid(format!(
                    "document {} has a top-level `{METADATA_KEY}` key, which is reserved for SOPS metadata",
                    i + 1
                )));
            }
            Value::Map(_) | Value::Null => {}
            other => {
                return Err(invalid(format!(
                    "document {} is a {}, but SOPS files hold mappings",
                    i + 1,
                    other.type_name()
                )));
            }
        }
    }
    check(&documents).map_err(invalid)?;
    *doc.documents_mut() = documents;
    let encrypted = doc.encrypt().map_err(|reason| Error::Encrypt {
        path: path.to_owned(),
        reason,
    })?;
    write_secret_file(path, &encrypted)?;
    Ok(EditOutcome::Saved)
}

/// Edits the lab secrets store: the result must stay a flat map of name to value.
pub fn edit_store(
    path: &Path,
    identities: &Identities,
    options: &EditOptions,
) -> Result<EditOutcome> {
    edit_file_checked(path, identities, options, &check_store_shape)
}

fn check_store_shape(documents: &[Value]) -> std::result::Result<(), String> {
    let map = match documents {
        [] | [Value::Null] => return Ok(()),
        [Value::Map(m)] => m,
        [_, ..] if documents.len() > 1 => {
            return Err("the secrets file must hold one YAML document".to_owned());
        }
        _ => return Err("the secrets file must be a map of name to value".to_owned()),
    };
    for (name, value) in map.iter() {
        crate::store::validate_name(name).map_err(|e| e.to_string())?;
        if matches!(value, Value::Map(_) | Value::Seq(_) | Value::Bytes(_)) {
            return Err(format!(
                "secret `{name}` holds a {}; each secret is a single string value",
                value.type_name()
            ));
        }
    }
    Ok(())
}

fn run_editor(editor: &str, file: &Path, original: &Path) -> Result<()> {
    let fail = |reason: String| Error::Editor {
        command: editor.to_owned(),
        reason,
        path: original.to_owned(),
    };
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("homelab-edit")
        .arg(file)
        .status()
        .map_err(|e| fail(format!("it could not be started ({e})")))?;
    if !status.success() {
        return Err(fail(match status.code() {
            Some(code) => format!("it exited with status {code}"),
            None => "it was killed by a signal".to_owned(),
        }));
    }
    Ok(())
}

fn write_private(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(content)?;
    f.sync_all()
}

/// A 0700 directory for the plaintext copy; its files are overwritten with zeros and removed
/// on drop, which also runs while a panic unwinds.
struct PrivateWorkspace {
    dir: PathBuf,
}

impl PrivateWorkspace {
    fn create(parent: Option<&Path>, for_file: &Path) -> Result<Self> {
        let parent = match parent {
            Some(p) => p.to_owned(),
            None => default_temp_parent(),
        };
        let dir = tempfile::Builder::new()
            .prefix("homelab-edit-")
            .tempdir_in(&parent)
            .map_err(|source| Error::Write {
                path: parent.clone(),
                source,
            })?
            .keep();
        // tempfile creates it 0700 already; make sure, whatever the umask.
        fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).map_err(
            |source| Error::Write {
                path: for_file.to_owned(),
                source,
            },
        )?;
        Ok(Self { dir })
    }
}

impl Drop for PrivateWorkspace {
    fn drop(&mut self) {
        if let Ok(entries) = fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                let p = entry.path();
                if let Ok(meta) = fs::symlink_metadata(&p)
                    && meta.is_file()
                    && let Ok(mut f) = OpenOptions::new().write(true).open(&p)
                {
                    let zeros = vec![0u8; meta.len() as usize];
                    let _ = f.write_all(&zeros);
                    let _ = f.sync_all();
                }
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn default_temp_parent() -> PathBuf {
    let candidates = [
        std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from),
        Some(PathBuf::from("/dev/shm")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.is_dir() && is_writable_dir(p))
        .unwrap_or_else(std::env::temp_dir)
}

fn is_writable_dir(p: &Path) -> bool {
    tempfile::Builder::new()
        .prefix(".homelab-probe-")
        .tempfile_in(p)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn editor_resolution_order() {
        assert_eq!(
            resolve_editor(Some(OsStr::new("code --wait")), Some(OsStr::new("nano"))),
            "code --wait"
        );
        assert_eq!(
            resolve_editor(Some(OsStr::new(" ")), Some(OsStr::new("nano"))),
            "nano"
        );
        assert_eq!(resolve_editor(None, None), "vi");
    }

    #[test]
    fn store_shape_rules() {
        let ok = yaml::parse_documents("a: x\nb: ''\n").unwrap();
        assert!(check_store_shape(&ok).is_ok());
        let nested = yaml::parse_documents("a:\n  b: c\n").unwrap();
        assert!(check_store_shape(&nested).unwrap_err().contains("`a`"));
        let bad_name = yaml::parse_documents("'bad name': x\n").unwrap();
        assert!(check_store_shape(&bad_name).is_err());
    }
}
