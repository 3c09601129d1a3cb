//! The small record `up` keeps in `.homelab/up.json` beside the spec: which steps of the last
//! run finished, whether it completed, and when the first backup drill passed. It lets the
//! output say "resuming at ..." and spares a second first drill; nothing depends on it for
//! correctness (every step is idempotent), so a missing or damaged journal is only a note.
//! Holds step names and times, never a secret; writes atomically.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::secrets::lab_dir;

/// The directory beside the spec that holds the journal.
pub const JOURNAL_DIR: &str = homelab_spec::templates::JOURNAL_DIR;
/// The journal's file name in [`JOURNAL_DIR`].
pub const JOURNAL_FILE: &str = "up.json";

/// One finished step: its id (as [`crate::up::Step::id`]) and when it finished (RFC 3339).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finished {
    pub step: String,
    pub at: String,
}

/// What the journal records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JournalData {
    /// The lab the journal is about: a journal of another lab (a copied directory) is ignored.
    pub lab: String,
    /// When the last run started.
    pub started: String,
    /// The steps of the last run that finished, in order.
    pub finished: Vec<Finished>,
    /// Whether the last run finished every step.
    pub complete: bool,
    /// When the first backup drill passed, once it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_drill_passed: Option<String>,
}

/// Why the journal cannot be written (reading problems are notes, never errors).
#[derive(Debug, thiserror::Error)]
#[error("cannot write the up journal {}: {source}; check that the directory beside the spec is writable", .path.display())]
pub struct JournalError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// The journal of the lab whose spec is `spec`.
#[derive(Debug, Clone)]
pub struct Journal {
    pub path: PathBuf,
    pub data: JournalData,
}

/// Where the journal of the spec `spec` lives.
pub fn journal_path(spec: &Path) -> PathBuf {
    lab_dir(spec).join(JOURNAL_DIR).join(JOURNAL_FILE)
}

impl Journal {
    /// The journal of `lab` beside `spec`: what the last run recorded, or an empty one with a
    /// note saying why the recorded one was not used.
    pub fn read(spec: &Path, lab: &str) -> (Journal, Option<String>) {
        let path = journal_path(spec);
        let empty = |path: PathBuf| Journal {
            path,
            data: JournalData {
                lab: lab.to_string(),
                ..JournalData::default()
            },
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (empty(path), None),
            Err(e) => {
                let note = format!(
                    "cannot read {} ({e}); every step runs and checks for itself",
                    path.display()
                );
                return (empty(path), Some(note));
            }
        };
        match serde_json::from_str::<JournalData>(&text) {
            Ok(data) if data.lab == lab => (Journal { path, data }, None),
            Ok(data) => {
                let note = format!(
                    "{} is the journal of lab `{}`, not `{lab}`; it is replaced",
                    path.display(),
                    data.lab
                );
                (empty(path), Some(note))
            }
            Err(e) => {
                let note = format!(
                    "{} is not a journal homelab wrote ({e}); it is replaced, and every step runs and checks for itself",
                    path.display()
                );
                (empty(path), Some(note))
            }
        }
    }

    /// The step ids the last run finished, when it did not complete.
    pub fn unfinished_run(&self) -> Option<Vec<String>> {
        (!self.data.complete && !self.data.finished.is_empty())
            .then(|| self.data.finished.iter().map(|f| f.step.clone()).collect())
    }

    /// Starts a new run at `now`: forgets the finished steps, keeps the first drill.
    pub fn start(&mut self, now: &str) {
        self.data.started = now.to_string();
        self.data.finished.clear();
        self.data.complete = false;
    }

    /// Records that `step` finished at `now`.
    pub fn finish(&mut self, step: &str, now: &str) {
        self.data.finished.push(Finished {
            step: step.to_string(),
            at: now.to_string(),
        });
    }

    /// Writes the journal: to a temporary file beside it, then renamed over it, so a run
    /// killed while writing leaves the previous journal whole.
    pub fn save(&self) -> Result<(), JournalError> {
        let fail = |source| JournalError {
            path: self.path.clone(),
            source,
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(fail)?;
        let text = serde_json::to_string_pretty(&self.data).expect("the journal serializes");
        let tmp = dir.join(format!(".{JOURNAL_FILE}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, format!("{text}\n")).map_err(fail)?;
        std::fs::rename(&tmp, &self.path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            fail(e)
        })
    }

    /// Removes the journal (after `down`); a missing one is fine.
    pub fn remove(spec: &Path) -> Result<bool, JournalError> {
        let path = journal_path(spec);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(JournalError { path, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_recorded_step_by_step_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let spec = dir.path().join("homelab.yaml");
        let (mut j, note) = Journal::read(&spec, "lab");
        assert!(note.is_none());
        assert_eq!(j.unfinished_run(), None);
        j.start("2026-01-01T00:00:00Z");
        j.finish("validate", "2026-01-01T00:00:01Z");
        j.finish("secrets", "2026-01-01T00:00:02Z");
        j.save().unwrap();
        assert_eq!(j.path, dir.path().join(".homelab/up.json"));
        let (again, note) = Journal::read(&spec, "lab");
        assert!(note.is_none());
        assert_eq!(
            again.unfinished_run(),
            Some(vec!["validate".to_string(), "secrets".to_string()])
        );
        let mut done = again.clone();
        done.data.complete = true;
        done.data.first_drill_passed = Some("t".into());
        done.save().unwrap();
        let (mut read, _) = Journal::read(&spec, "lab");
        assert_eq!(read.unfinished_run(), None);
        read.start("2026-01-02T00:00:00Z");
        assert!(read.data.finished.is_empty());
        assert_eq!(read.data.first_drill_passed.as_deref(), Some("t"));
        assert!(Journal::remove(&spec).unwrap());
        assert!(!Journal::remove(&spec).unwrap());
    }

    #[test]
    fn a_damaged_or_foreign_journal_is_a_note_and_starts_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let spec = dir.path().join("homelab.yaml");
        std::fs::create_dir(dir.path().join(".homelab")).unwrap();
        std::fs::write(journal_path(&spec), "{not json").unwrap();
        let (j, note) = Journal::read(&spec, "lab");
        assert!(note.unwrap().contains("not a journal homelab wrote"));
        assert_eq!(j.data.lab, "lab");
        assert!(j.data.finished.is_empty());
        let other = JournalData {
            lab: "other".into(),
            finished: vec![Finished {
                step: "nodes".into(),
                at: "t".into(),
            }],
            ..JournalData::default()
        };
        std::fs::write(journal_path(&spec), serde_json::to_string(&other).unwrap()).unwrap();
        let (j, note) = Journal::read(&spec, "lab");
        assert!(note.unwrap().contains("lab `other`"));
        assert_eq!(j.unfinished_run(), None);
    }
}
