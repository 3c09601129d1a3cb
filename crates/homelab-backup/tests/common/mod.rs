//! Test harness: a real PostgreSQL server from Debian's packages per test, and the rendered
//! backup scripts written to a temporary directory and run with bash against it.
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use homelab_backup::postgres::{PostgresBackupParams, scripts};
use tempfile::TempDir;

mod pg_server;
pub use pg_server::*;

/// What a script printed and how it ended.
#[derive(Debug)]
pub struct ScriptRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl ScriptRun {
    pub fn from_output(out: &Output) -> ScriptRun {
        ScriptRun {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn assert_code(&self, code: i32) -> &ScriptRun {
        assert_eq!(
            self.code, code,
            "exit status {} (expected {code})\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// The only programs the scripts may run: what the official `postgres` image has (Debian's
/// bash, coreutils, findutils, grep, and the PostgreSQL client tools). The scripts run with a
/// PATH holding nothing else, so a dependency on anything more fails the tests.
const IMAGE_TOOLS: &[&str] = &[
    "bash",
    "cat",
    "dirname",
    "find",
    "grep",
    "mkdir",
    "mkfifo",
    "mktemp",
    "mv",
    "rm",
    "sha256sum",
    "sleep",
    "stat",
    "sync",
];
const PG_CLIENT_TOOLS: &[&str] = &["psql", "pg_dump", "pg_dumpall", "pg_restore"];

fn image_path(dir: &Path, pg_bin: &Path) -> PathBuf {
    let bin = dir.join("image-bin");
    fs::create_dir_all(&bin).unwrap();
    for tool in IMAGE_TOOLS {
        let found = ["/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("{tool} is not installed"));
        std::os::unix::fs::symlink(found, bin.join(tool)).unwrap();
    }
    for tool in PG_CLIENT_TOOLS {
        std::os::unix::fs::symlink(pg_bin.join(tool), bin.join(tool)).unwrap();
    }
    bin
}

/// A server, the rendered scripts in a directory, and a backup directory.
pub struct Lab {
    pub pg: PgServer,
    pub params: PostgresBackupParams,
    pub scripts_dir: TempDir,
    pub work: TempDir,
}

impl Lab {
    /// A server and scripts rendered with `PostgresBackupParams::new(<tmp>/backups, keep)`
    /// changed by `adjust`.
    pub fn new(keep: u32, adjust: impl FnOnce(&mut PostgresBackupParams)) -> Lab {
        let work = tempfile::Builder::new()
            .prefix("homelab-backup-")
            .tempdir()
            .unwrap();
        let backup_dir = work.path().join("backups");
        Lab::with_backup_dir(work, &backup_dir, keep, adjust)
    }

    pub fn with_backup_dir(
        work: TempDir,
        backup_dir: &Path,
        keep: u32,
        adjust: impl FnOnce(&mut PostgresBackupParams),
    ) -> Lab {
        let pg = PgServer::start();
        let mut params = PostgresBackupParams::new(backup_dir.display().to_string(), keep);
        adjust(&mut params);
        let scripts_dir = tempfile::Builder::new()
            .prefix("homelab-scripts-")
            .tempdir()
            .unwrap();
        for s in scripts(&params).expect("the test parameters are valid") {
            let path = scripts_dir.path().join(s.file_name);
            fs::write(&path, &s.content).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(s.mode)).unwrap();
        }
        Lab {
            pg,
            params,
            scripts_dir,
            work,
        }
    }

    pub fn backup_dir(&self) -> PathBuf {
        PathBuf::from(&self.params.backup_dir)
    }

    /// The command that runs `script` as the CronJob's container would: the image's tools only.
    fn command(&self, script: &str, args: &[&str]) -> Command {
        let tmp = self.work.path().join("tmp");
        fs::create_dir_all(&tmp).unwrap();
        let bin = self.work.path().join("image-bin");
        if !bin.exists() {
            image_path(self.work.path(), self.pg.bin_dir());
        }
        let mut cmd = Command::new("bash");
        cmd.arg(self.scripts_dir.path().join(script))
            .args(args)
            .env_clear()
            .env("PATH", &bin)
            .env("TMPDIR", &tmp)
            .env("HOSTNAME", "test-host")
            .stdin(Stdio::null());
        for (k, v) in self.pg.env() {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn run(&self, script: &str, args: &[&str]) -> ScriptRun {
        let out = self.command(script, args).output().expect("run bash");
        ScriptRun::from_output(&out)
    }

    /// Starts `script` in a process group of its own (whose id is the child's pid), as a
    /// container's processes are, so that a test can kill all of it at once.
    pub fn spawn(&self, script: &str, args: &[&str]) -> std::process::Child {
        use std::os::unix::process::CommandExt as _;
        self.command(script, args)
            .process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run bash")
    }

    /// The dump files of database `db`, oldest first.
    pub fn dumps(&self, db: &str) -> Vec<PathBuf> {
        let dir = self
            .backup_dir()
            .join("db")
            .join(homelab_backup::postgres::encode_database_name(db));
        list_with_suffix(&dir, ".dump")
    }

    pub fn globals(&self) -> Vec<PathBuf> {
        list_with_suffix(&self.backup_dir().join("globals"), ".sql")
    }

    /// Every file under the backup directory with its content hash, sorted.
    pub fn tree(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        walk(&self.backup_dir(), &self.backup_dir(), &mut out);
        out.sort();
        out
    }
}

fn list_with_suffix(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with(suffix) && !n.starts_with('.'))
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(root, &p, out);
        } else {
            let bytes = fs::read(&p).unwrap_or_default();
            out.push((
                p.strip_prefix(root).unwrap().display().to_string(),
                format!("{}:{:x}", bytes.len(), fnv(&bytes)),
            ));
        }
    }
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// A small tmpfs mounted for the test's lifetime (a volume that fills up or turns read-only).
pub struct Tmpfs {
    pub path: PathBuf,
    _dir: TempDir,
}

impl Tmpfs {
    pub fn mount(bytes: u64) -> Tmpfs {
        assert!(
            is_root(),
            "this test mounts a small tmpfs to fill it up: run the tests as root (CI does)"
        );
        let dir = tempfile::Builder::new()
            .prefix("homelab-tmpfs-")
            .tempdir()
            .unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={bytes},mode=0755"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output()
            .expect("run mount");
        check(&out, "mount -t tmpfs");
        Tmpfs {
            path: dir.path().to_path_buf(),
            _dir: dir,
        }
    }

    pub fn remount_read_only(&self) {
        let out = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.path)
            .output()
            .unwrap();
        check(&out, "mount -o remount,ro");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// A directory bind-mounted read-only onto itself for the test's lifetime: nothing in it can be
/// removed, not even by root.
pub struct ReadOnlyBind {
    pub path: PathBuf,
}

impl ReadOnlyBind {
    pub fn mount(path: &Path) -> ReadOnlyBind {
        assert!(
            is_root(),
            "this test bind-mounts a directory read-only: run the tests as root (CI does)"
        );
        let out = Command::new("mount")
            .arg("--bind")
            .arg(path)
            .arg(path)
            .output()
            .expect("run mount");
        check(&out, "mount --bind");
        let bind = ReadOnlyBind {
            path: path.to_path_buf(),
        };
        let out = Command::new("mount")
            .args(["-o", "remount,bind,ro"])
            .arg(path)
            .output()
            .unwrap();
        check(&out, "mount -o remount,bind,ro");
        bind
    }
}

impl Drop for ReadOnlyBind {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Replaces `dump` by a dump of database `from_db` taken now and rewrites the manifest's size
/// and SHA-256 to match, leaving its recorded table checksums alone: a dump that passes every
/// integrity check but does not hold what was recorded at dump time.
pub fn substitute_dump(lab: &Lab, dump: &Path, from_db: &str) {
    let out = lab
        .pg
        .client("pg_dump")
        .args(["-Fc", "-d"])
        .arg(conninfo(from_db))
        .arg("-f")
        .arg(dump)
        .output()
        .unwrap();
    check(&out, "pg_dump for the substitute");
    let bytes = fs::read(dump).unwrap();
    let sha = Command::new("sha256sum").arg(dump).output().unwrap();
    let sha = String::from_utf8_lossy(&sha.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let manifest = dump.with_extension("manifest");
    let text = fs::read_to_string(&manifest).unwrap();
    let rewritten: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with("bytes\t") {
                format!("bytes\t{}", bytes.len())
            } else if l.starts_with("sha256\t") {
                format!("sha256\t{sha}")
            } else {
                l.to_string()
            }
        })
        .collect();
    fs::write(&manifest, rewritten.join("\n") + "\n").unwrap();
}
