//! A real PostgreSQL server from Debian's packages for tests, in a temporary directory and
//! trusting local connections, with the queries tests compare databases by. Shared by this
//! crate's script tests and the CLI's backup tests (included by path); asserts nothing of
//! the code under test.
#![allow(dead_code)]

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tempfile::TempDir;

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

fn id_of(flag: &str, user: &str) -> u32 {
    let out = Command::new("id")
        .args([flag, user])
        .output()
        .expect("run id");
    assert!(
        out.status.success(),
        "the system user {user} is missing: {INSTALL_HINT}"
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Runs `cmd` as the postgres system user when we are root (initdb refuses root).
fn as_server_user(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
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

/// A PostgreSQL server in a temporary directory, trusting local connections: on its Unix
/// socket only ([`PgServer::start`]), or also on a free loopback port
/// ([`PgServer::start_on_loopback`], what a backup pod reaches as `postgres:5432`).
pub struct PgServer {
    pub dir: TempDir,
    pub socket_dir: PathBuf,
    pub port: u16,
    data: PathBuf,
    bin: PathBuf,
    listen: &'static str,
}

impl PgServer {
    pub fn start() -> PgServer {
        Self::start_listening("''")
    }

    pub fn start_on_loopback() -> PgServer {
        Self::start_listening("127.0.0.1")
    }

    fn start_listening(listen: &'static str) -> PgServer {
        let bin = pg_bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("homelab-pg-")
            .tempdir()
            .unwrap();
        if is_root() {
            let (uid, gid) = (id_of("-u", "postgres"), id_of("-g", "postgres"));
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        let data = dir.path().join("data");
        let socket_dir = dir.path().to_path_buf();
        // A free port: on the socket-only server nothing listens on it, and the number only
        // names the socket file in our private directory.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let out = as_server_user(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
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
        let pg = PgServer {
            dir,
            socket_dir,
            port,
            data,
            bin,
            listen,
        };
        pg.start_server();
        pg
    }

    /// Starts the server again after [`PgServer::stop`].
    pub fn start_server(&self) {
        let opts = format!(
            "-c listen_addresses={} -k {} -p {} -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=60 -c shared_buffers=32MB",
            self.listen,
            self.socket_dir.display(),
            self.port,
        );
        let out = as_server_user(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(self.dir.path().join("server.log"))
            .args(["-o", &opts, "-w", "-t", "60", "start"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        check(&out, "pg_ctl start");
    }

    pub fn stop(&self) {
        let out = as_server_user(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "fast", "-w", "stop"])
            .output()
            .unwrap();
        check(&out, "pg_ctl stop");
    }

    /// The directory of the server's programs (and its clients').
    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("PGHOST", self.socket_dir.display().to_string()),
            ("PGPORT", self.port.to_string()),
            ("PGUSER", "postgres".to_string()),
            ("PGPASSWORD", String::new()),
        ]
    }

    pub fn bin(&self, name: &str) -> PathBuf {
        self.bin.join(name)
    }

    /// A client command with the connection environment set.
    pub fn client(&self, program: &str) -> Command {
        let mut c = Command::new(self.bin(program));
        for (k, v) in self.env() {
            c.env(k, v);
        }
        c.env("PGCLIENTENCODING", "UTF8");
        c
    }

    /// Runs SQL in `db` and returns psql's unaligned, tuples-only output.
    pub fn try_sql(&self, db: &str, sql: &str) -> Result<String, String> {
        let mut child = self
            .client("psql")
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(conninfo(db))
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
            "SELECT datname FROM pg_database ORDER BY datname COLLATE \"C\";",
        )
        .lines()
        .map(str::to_string)
        .collect()
    }

    /// Every row of every user table of `db`, as text, tables and rows sorted: two databases
    /// with equal snapshots hold the same data.
    pub fn snapshot(&self, db: &str) -> String {
        let tables = self.sql(
            db,
            "SELECT name FROM (SELECT format('%I.%I', n.nspname, c.relname) AS name \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND n.nspname NOT LIKE 'pg_toast%') x ORDER BY name COLLATE \"C\";",
        );
        let mut out = String::new();
        for t in tables.lines() {
            let rows = self.sql(
                db,
                &format!(
                    "SET extra_float_digits = 3; SET TimeZone = 'UTC'; \
                     SELECT coalesce(string_agg(x.r, E'\\n' ORDER BY x.r COLLATE \"C\"), '') \
                     FROM (SELECT t::text AS r FROM ONLY {t} t) x;"
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
        let _ = as_server_user(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// libpq connection string for database `db`.
pub fn conninfo(db: &str) -> String {
    format!("dbname='{}'", db.replace('\\', "\\\\").replace('\'', "\\'"))
}
