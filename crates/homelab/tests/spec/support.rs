//! Test helpers for the spec commands: running the real `homelab` binary, scratch
//! directories whose every byte can be compared before and after, and a builder for spec text;
//! nothing here asserts behaviour of its own.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The `homelab` binary of this build, with a clean environment: no `HOMELAB_FILE` from the
/// developer's shell, no colours.
pub fn homelab() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::new(env!("CARGO_BIN_EXE_homelab"));
    cmd.env_remove("HOMELAB_FILE").env("NO_COLOR", "1");
    cmd
}

pub use crate::run::Run;

/// Runs `homelab ARGS` in `dir`.
pub fn run_in(dir: &Path, args: &[&str]) -> Run {
    Run::of(homelab().current_dir(dir).args(args))
}

/// Where the committed fixtures live.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The workspace root (for the committed schema and example).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/homelab sits two levels below the workspace root")
        .to_path_buf()
}

/// A scratch directory that removes itself.
pub struct Workdir {
    dir: tempfile::TempDir,
}

/// Everything about one file that a command could change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileState {
    pub bytes: Vec<u8>,
    pub modified: SystemTime,
    pub inode: u64,
    pub mode: u32,
}

impl Workdir {
    pub fn new() -> Workdir {
        Workdir {
            dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let path = self.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create a directory in the workdir");
        }
        std::fs::write(&path, bytes).expect("write a file in the workdir");
        path
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.join(name)).expect("read a file in the workdir")
    }

    /// Runs `homelab ARGS` here.
    pub fn run(&self, args: &[&str]) -> Run {
        run_in(self.path(), args)
    }

    /// Every entry below the directory (hidden ones too) with its content and metadata.
    pub fn state(&self) -> BTreeMap<PathBuf, FileState> {
        let mut out = BTreeMap::new();
        collect(self.path(), self.path(), &mut out);
        out
    }
}

fn collect(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, FileState>) {
    for entry in std::fs::read_dir(dir).expect("list the workdir") {
        let path = entry.expect("a directory entry").path();
        let meta = std::fs::symlink_metadata(&path).expect("stat a workdir entry");
        let rel = path
            .strip_prefix(root)
            .expect("below the root")
            .to_path_buf();
        if meta.is_dir() {
            out.insert(
                rel,
                FileState {
                    bytes: Vec::new(),
                    modified: meta.modified().expect("mtime"),
                    inode: meta.ino(),
                    mode: meta.mode(),
                },
            );
            collect(root, &path, out);
        } else {
            out.insert(
                rel,
                FileState {
                    bytes: std::fs::read(&path).unwrap_or_default(),
                    modified: meta.modified().expect("mtime"),
                    inode: meta.ino(),
                    mode: meta.mode(),
                },
            );
        }
    }
}

/// Spec text built from a template by exact edits; each edit must match exactly once, so a
/// test cannot silently stop testing what it says when the template changes.
#[derive(Debug, Clone)]
pub struct Spec {
    text: String,
}

impl Spec {
    /// The lab `homelab init` writes by default.
    pub fn seed() -> Spec {
        Spec {
            text: homelab_spec::templates::SEED.to_string(),
        }
    }

    /// The one-node lab of `homelab init --preset minimal`.
    /// The example lab with values of its own where the example's would be warned of
    /// (domain, ACME email, ntfy topic, SSH key): valid without warnings.
    pub fn seed_own() -> Spec {
        Spec::seed()
            .replace("  domain: home.jetzinger.com", "  domain: home.my-lab.net")
            .replace("acmeEmail: tom@jetzinger.com", "acmeEmail: me@my-lab.net")
            .replace(
                "topic: jetzinger-home-lab-alerts",
                "topic: alerts-q8v3k2m9x4w7",
            )
            .replace(
                "AAAAIKq2X0Vb0p1Xh0Zrj7J8Qm6v2V8nK9rZ3Yt1w5sS4uPq",
                "AAAAIJm2mYq0000000000000000000000000000000000000",
            )
    }

    pub fn minimal() -> Spec {
        Spec {
            text: homelab_spec::templates::MINIMAL.to_string(),
        }
    }

    pub fn replace(mut self, old: &str, new: &str) -> Spec {
        let found = self.text.matches(old).count();
        assert_eq!(
            found, 1,
            "`{old}` occurs {found} times in the spec, not once"
        );
        self.text = self.text.replacen(old, new, 1);
        self
    }

    pub fn text(&self) -> &str {
        &self.text
    }
}
