//! A real PostgreSQL server for the tests that run the backup Jobs (`backup`, `up`): in a
//! temporary directory, on a free loopback port, trusting local connections, with two
//! databases worth checking; and the checks these tests share. Asserts nothing of its own.
#![allow(dead_code)]

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const INSTALL_HINT: &str =
    "run scripts/install-test-deps (Debian packages postgresql and postgresql-client)";

pub fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("run id -u");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// Directory of the newest installed PostgreSQL server binaries.
pub fn pg_bin_dir() -> PathBuf {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<u32> = fs::read_dir(root)
        .unwrap_or_else(|e| panic!("{} is missing ({e}): {INSTALL_HINT}", root.display()))
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|v: &u32| root.join(v.to_string()).join("bin/initdb").exists())
        .collect();
    versions.sort_unstable();
    let v = versions
        .last()
        .unwrap_or_else(|| panic!("no initdb under {}: {INSTALL_HINT}", root.display()));
    root.join(v.to_string()).join("bin")
}

pub fn check(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A PostgreSQL server in a temporary directory, on a free loopback port, trusting local
/// connections: what the backup pod reaches as `postgres:5432` in a cluster.
pub struct PgServer {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub bin: PathBuf,
}

impl PgServer {
    pub fn start() -> PgServer {
        let bin = pg_bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("homelab-cli-pg-")
            .tempdir()
            .unwrap();
        let out = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(dir.path())
            .output()
            .unwrap_or_else(|e| panic!("cannot run chown ({e})"));
        check(
            &out,
            &format!("chown postgres (the system user): {INSTALL_HINT}"),
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pg = PgServer { dir, port, bin };
        let out = pg
            .as_server_user("initdb")
            .arg("-D")
            .arg(pg.data())
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-N",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ])
            .output()
            .unwrap_or_else(|e| panic!("cannot run initdb ({e}): {INSTALL_HINT}"));
        check(&out, "initdb");
        pg.start_server();
        pg
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn as_server_user(&self, program: &str) -> Command {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(self.bin.join(program));
        c
    }

    pub fn start_server(&self) {
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            self.port,
            self.dir.path().display()
        );
        let out = self
            .as_server_user("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.path().join("server.log"))
            .args(["-o", &opts, "-w", "-t", "60", "start"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        check(&out, "pg_ctl start");
    }

    pub fn stop(&self) {
        let out = self
            .as_server_user("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "fast", "-w", "stop"])
            .output()
            .unwrap();
        check(&out, "pg_ctl stop");
    }

    pub fn client(&self, program: &str) -> Command {
        let mut c = Command::new(self.bin.join(program));
        c.env("PGHOST", "127.0.0.1")
            .env("PGPORT", self.port.to_string())
            .env("PGUSER", "postgres")
            .env("PGCLIENTENCODING", "UTF8");
        c
    }

    pub fn try_sql(&self, db: &str, sql: &str) -> Result<String, String> {
        let mut child = self
            .client("psql")
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", db])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(sql.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        if out.status.success() {
            Ok(String::from_utf8(out.stdout).unwrap())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    pub fn sql(&self, db: &str, sql: &str) -> String {
        self.try_sql(db, sql)
            .unwrap_or_else(|e| panic!("SQL in {db} failed: {e}\n{sql}"))
    }

    pub fn databases(&self) -> Vec<String> {
        self.sql(
            "postgres",
            "SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY 1;",
        )
        .lines()
        .map(str::to_string)
        .collect()
    }

    /// Every row of every user table of `db`, as text, sorted.
    pub fn snapshot(&self, db: &str) -> String {
        let tables = self.sql(
            db,
            "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables \
             WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1;",
        );
        let mut out = String::new();
        for t in tables.lines() {
            let rows = self.sql(
                db,
                &format!(
                    "SELECT coalesce(string_agg(x.r, E'\\n' ORDER BY x.r), '') \
                     FROM (SELECT t::text AS r FROM {t} t) x;"
                ),
            );
            out.push_str(&format!("== {t}\n{rows}"));
        }
        out
    }

    /// Two databases with rows worth checking: a quoted table name, text, numbers, NULLs.
    pub fn fill(&self) {
        self.sql("postgres", "CREATE DATABASE shop; CREATE DATABASE notes;");
        self.sql(
            "shop",
            "CREATE TABLE items (id int PRIMARY KEY, name text, price numeric(10,2));
             INSERT INTO items SELECT g, 'item ' || g, g * 1.25 FROM generate_series(1, 1000) g;
             CREATE TABLE \"Odd \"\"Name\"\"\" (x int, note text);
             INSERT INTO \"Odd \"\"Name\"\"\" VALUES (1, 'tab\there'), (2, NULL), (3, 'ünïcode');",
        );
        self.sql(
            "notes",
            "CREATE TABLE notes (id serial PRIMARY KEY, body text);
             INSERT INTO notes (body) SELECT 'note ' || g FROM generate_series(1, 25) g;",
        );
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = self
            .as_server_user("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
