//! `homelab backup postgres|list|drill` and `homelab restore postgres` through the real binary,
//! end to end: the Kubernetes API stand-in holds the lab's PostgreSQL objects as the plan
//! renders them (scripts ConfigMap, backup PVC, CronJob) and runs the Jobs the commands create
//! for real (`job_runner.py`): the rendered scripts run with bash, as the pod's user, against
//! a real PostgreSQL server started by the test, on a directory standing in for the backup
//! volume. Asserts what the user sees (output, exit codes) and what happened to the databases
//! and the dumps.

#[path = "../../homelab-kube/tests/support/mod.rs"]
mod support;

#[path = "common/postgres.rs"]
mod postgres;
#[path = "common/terminal.rs"]
mod terminal;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use homelab_nodes::Role;
use homelab_nodes::testkit::TestLab;
use postgres::{PgServer, check, is_root};
use serde_json::{Value, json};
use support::{StandIn, StandInOptions};

const SUPERUSER_PASSWORD: &str = "pg-superuser-5b9e2c";

const SPEC: &str = r#"name: backup-lab
network:
  subnet: 192.168.2.0/24
  gateway: 192.168.2.1
  domain: home.example.com
  loadBalancerPool: 192.168.2.100-192.168.2.120
cluster:
  k3sVersion: v1.34.2+k3s1
  nodes:
    - name: k3s-master
      role: server
      address: 192.168.2.20
storage:
  nfs:
    server: 192.168.2.2
    path: /volume1/k8s-data
tls:
  acmeEmail: you@example.com
  challenge: {type: dns01, provider: cloudflare, apiToken: {secret: cloudflare-api-token}}
services:
  postgres:
    databases:
      - name: shop
      - name: notes
"#;

/// A lab directory with the spec, a PostgreSQL server, and a stand-in cluster that holds the
/// plan's PostgreSQL objects and runs Jobs on this machine.
struct Lab {
    dir: tempfile::TempDir,
    pg: PgServer,
    standin: StandIn,
    spec: String,
    ssh_config: PathBuf,
}

impl Lab {
    fn start() -> Lab {
        Lab::start_with(SPEC, None)
    }

    /// A lab for `spec`; SSH to its nodes goes through `ssh_config`, or ends at a closed port.
    fn start_with(spec: &str, ssh_config: Option<PathBuf>) -> Lab {
        assert!(
            is_root(),
            "these tests run the backup Jobs in their own mount namespaces (unshare, mount, chroot): run them as root (CI does)"
        );
        let pg = PgServer::start_on_loopback();
        pg.fill();
        let dir = tempfile::Builder::new()
            .prefix("homelab-backup-cli-")
            .tempdir()
            .unwrap();
        fs::create_dir(dir.path().join("home")).unwrap();
        fs::create_dir(dir.path().join("volume")).unwrap();
        fs::write(dir.path().join("homelab.yaml"), spec).unwrap();
        let ssh_config = ssh_config.unwrap_or_else(|| {
            // SSH to the lab's nodes ends at a closed port: etcd snapshots cannot be listed.
            let closed = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let path = dir.path().join("ssh_config");
            fs::write(
                &path,
                format!(
                    "Host *\n  HostName 127.0.0.1\n  Port {closed}\n  UserKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  BatchMode yes\n"
                ),
            )
            .unwrap();
            path
        });
        let config = dir.path().join("job-runner.json");
        fs::write(
            &config,
            serde_json::to_string_pretty(&json!({
                "workdir": dir.path().join("pods"),
                "claims": {"data/postgres-backup": dir.path().join("volume")},
                "env": {"PGHOST": "127.0.0.1", "PGPORT": pg.port.to_string()},
                "path": format!("{}:/usr/bin:/bin", pg.bin_dir().display()),
                "retry_delay": 0.2,
            }))
            .unwrap(),
        )
        .unwrap();
        let standin = StandIn::start(&StandInOptions {
            run_jobs: Some(config),
            nodes: vec!["k3s-master".into()],
            ..Default::default()
        });
        let lab = Lab {
            dir,
            pg,
            standin,
            spec: spec.to_string(),
            ssh_config,
        };
        lab.apply_postgres_objects(|_| true);
        lab
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// Creates what `homelab apply` would for the PostgreSQL backups: the plan's namespace,
    /// scripts ConfigMap, backup PVC and CronJob (those `keep` accepts), and the superuser
    /// Secret.
    fn apply_postgres_objects(&self, keep: impl Fn(&Value) -> bool) {
        let loaded = homelab_spec::load_str("homelab.yaml", &self.spec)
            .unwrap_or_else(|e| panic!("{}", e.render()));
        let plan = homelab_plan::plan(&loaded.lab);
        let pg = plan.component("postgres").expect("the spec has postgres");
        let mut objects: Vec<Value> = pg
            .objects
            .iter()
            .map(|o| o.manifest.clone())
            .filter(|m| {
                (m["kind"] == "Namespace")
                    || (m["kind"] == "ConfigMap"
                        && m["metadata"]["name"] == "postgres-backup-scripts")
                    || (m["kind"] == "PersistentVolumeClaim"
                        && m["metadata"]["name"] == "postgres-backup")
                    || m["kind"] == "CronJob"
            })
            .collect();
        objects.push(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "postgres-superuser", "namespace": "data"},
            "type": "Opaque", "stringData": {"username": "postgres", "password": SUPERUSER_PASSWORD},
        }));
        for o in objects.into_iter().filter(|o| keep(o)) {
            self.create(&o);
        }
    }

    fn create(&self, o: &Value) {
        let (kind, ns) = (
            o["kind"].as_str().unwrap(),
            o["metadata"]["namespace"].as_str(),
        );
        let path = match (kind, ns) {
            ("Namespace", _) => "/api/v1/namespaces".to_string(),
            ("CronJob", Some(ns)) => format!("/apis/batch/v1/namespaces/{ns}/cronjobs"),
            ("ConfigMap", Some(ns)) => format!("/api/v1/namespaces/{ns}/configmaps"),
            ("Secret", Some(ns)) => format!("/api/v1/namespaces/{ns}/secrets"),
            ("PersistentVolumeClaim", Some(ns)) => {
                format!("/api/v1/namespaces/{ns}/persistentvolumeclaims")
            }
            other => panic!("not created by this test: {other:?}"),
        };
        let (code, body) = self
            .standin
            .request("POST", &path, "application/json", Some(o));
        assert_eq!(code, 201, "create {kind}: {body}");
    }

    fn get(&self, path: &str) -> Value {
        let (code, body) = self.standin.request("GET", path, "application/json", None);
        assert_eq!(code, 200, "GET {path}: {body}");
        body
    }

    fn jobs(&self) -> Vec<Value> {
        self.get("/apis/batch/v1/namespaces/data/jobs")["items"]
            .as_array()
            .unwrap()
            .clone()
    }

    fn environment(&self, cmd: &mut Command) {
        cmd.current_dir(self.dir.path())
            .env_clear()
            // Some test labs start from the example lab; refusing its values is tested on
            // its own (spec::cli).
            .env("HOMELAB_ALLOW_EXAMPLE_VALUES", "1")
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.path("home"))
            .env("KUBECONFIG", &self.standin.kubeconfig)
            .env("HOMELAB_SSH_CONFIG", &self.ssh_config)
            .env("NO_COLOR", "1");
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("homelab"));
        self.environment(&mut cmd);
        cmd.args(args);
        let started = std::time::Instant::now();
        let out = cmd.output().unwrap();
        eprintln!(
            "$ homelab {}\n[exit {:?} after {:.2}s]\n--- stdout\n{}--- stderr\n{}",
            args.join(" "),
            out.status.code(),
            started.elapsed().as_secs_f64(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Runs, expects exit code `code`, and returns (stdout, stderr).
    fn expect(&self, code: i32, args: &[&str]) -> (String, String) {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "`homelab {}`",
            args.join(" ")
        );
        let text = (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        );
        assert!(
            !text.0.contains(SUPERUSER_PASSWORD) && !text.1.contains(SUPERUSER_PASSWORD),
            "the superuser password reached the output"
        );
        text
    }

    fn json(&self, code: i32, args: &[&str]) -> Value {
        let mut full = vec!["--output", "json"];
        full.extend_from_slice(args);
        let (stdout, stderr) = self.expect(code, &full);
        assert!(
            stderr.is_empty(),
            "--output json prints nothing on stderr: {stderr}"
        );
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("not one JSON document ({e}): {stdout}"))
    }

    /// Runs on a pseudo-terminal (util-linux `script`), typing `input`; returns the exit code
    /// and what the terminal showed.
    fn run_on_terminal(&self, args: &[&str], input: &str) -> (i32, String) {
        let (code, shown) = terminal::run_on_terminal(args, input, |cmd| self.environment(cmd));
        assert!(!shown.contains(SUPERUSER_PASSWORD));
        (code, shown)
    }

    /// The dump files of `db` on the backup volume, oldest first.
    fn dumps(&self, db: &str) -> Vec<PathBuf> {
        let dir = self.path("volume").join("db").join(db);
        let mut v: Vec<PathBuf> = fs::read_dir(&dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|e| e == "dump"))
                    .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Every file on the backup volume with its size and modification time.
    fn volume_state(&self) -> Vec<(PathBuf, u64, std::time::SystemTime)> {
        fn walk(dir: &Path, out: &mut Vec<(PathBuf, u64, std::time::SystemTime)>) {
            for e in fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = e.path();
                let m = e.metadata().unwrap();
                if m.is_dir() {
                    walk(&p, out);
                } else {
                    out.push((p, m.len(), m.modified().unwrap()));
                }
            }
        }
        let mut v = Vec::new();
        walk(&self.path("volume"), &mut v);
        v.sort();
        v
    }
}

/// Lines of `text` that start with `start`.
fn lines_starting<'t>(text: &'t str, start: &str) -> Vec<&'t str> {
    text.lines().filter(|l| l.starts_with(start)).collect()
}

#[test]
fn a_backup_runs_now_counts_as_the_cronjobs_and_is_listed_with_ages_and_sizes() {
    let lab = Lab::start();
    let (stdout, stderr) = lab.expect(0, &["backup", "postgres"]);
    // Progress while the Job ran: the Job, its pod, and the script's own lines.
    assert!(
        stderr.contains("Started Job data/postgres-backup-manual-"),
        "{stderr}"
    );
    assert!(stderr.contains(": Running"), "{stderr}");
    assert!(
        stderr.contains("  | ") && stderr.contains("backup.sh: "),
        "{stderr}"
    );
    assert!(
        !stderr.contains("HOMELAB-BACKUP"),
        "report lines are not progress"
    );
    // The summary: outcome, sizes, one line per database and the roles.
    assert!(stdout.starts_with("Backup succeeded in "), "{stdout}");
    assert!(stdout.contains("3 database(s) and the roles"), "{stdout}");
    for db in ["shop", "notes", "postgres"] {
        let row = lines_starting(&stdout, &format!("{db} "));
        assert_eq!(row.len(), 1, "one row for {db}: {stdout}");
        assert!(
            row[0].contains(" ok ") && row[0].contains(&format!("db/{db}/{db}.")),
            "{}",
            row[0]
        );
    }
    assert!(lines_starting(&stdout, "(roles) ")[0].contains("globals/globals."));
    let shop_row = lines_starting(&stdout, "shop ")[0];
    assert!(
        shop_row.contains(" 2 ") && shop_row.contains(" 1003 "),
        "tables and rows: {shop_row}"
    );
    // The dumps are on the volume.
    assert_eq!(lab.dumps("shop").len(), 1);
    assert_eq!(lab.dumps("notes").len(), 1);
    assert!(lab.path("volume/status.json").is_file());

    // The Job was made from the CronJob and belongs to it: its success is the CronJob's.
    let jobs = lab.jobs();
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    let cronjob = lab.get("/apis/batch/v1/namespaces/data/cronjobs/postgres-backup");
    assert_eq!(
        job["metadata"]["ownerReferences"][0]["uid"],
        cronjob["metadata"]["uid"]
    );
    assert_eq!(job["metadata"]["ownerReferences"][0]["controller"], true);
    assert_eq!(job["metadata"]["labels"], cronjob["metadata"]["labels"]);
    assert_eq!(
        job["spec"]["template"]["spec"]["containers"][0]["image"],
        cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"]
    );
    let last_success = cronjob["status"]["lastSuccessfulTime"].clone();
    assert!(last_success.is_string(), "{cronjob}");

    // A second run, as JSON.
    let run = lab.json(0, &["backup", "postgres"]);
    assert_eq!(run["ok"], true);
    assert_eq!(run["job"]["succeeded"], true);
    assert_eq!(run["run"]["result"], "success");
    let names: Vec<&str> = run["run"]["databases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["notes", "postgres", "shop"]);
    assert!(run["run"]["databases"][2]["bytes"].as_u64().unwrap() > 1000);
    assert_eq!(lab.dumps("shop").len(), 2);

    // The listing: both dumps of each database, sizes and ages, the last backup; the etcd
    // snapshots are skipped with the reason, and the command still succeeds.
    let (stdout, stderr) = lab.expect(0, &["backup", "list"]);
    assert!(
        stdout
            .starts_with("PostgreSQL dumps on PVC data/postgres-backup (keeping 7 per database):"),
        "{stdout}"
    );
    let shop = lines_starting(&stdout, "shop ");
    assert_eq!(shop.len(), 2, "{stdout}");
    for row in &shop {
        assert!(
            row.contains(" valid ") && row.contains("KiB") && row.contains("Z  "),
            "{row}"
        );
    }
    assert_eq!(lines_starting(&stdout, "(roles) ").len(), 2);
    assert!(stdout.contains("Last successful backup: "), "{stdout}");
    assert!(
        stdout.contains(
            "etcd snapshots: skipped (k3s-master: cannot connect to 192.168.2.20 over SSH: "
        ) && stdout.contains("Connection refused"),
        "{stdout}"
    );
    assert!(
        stderr.contains("Listing the etcd snapshots on k3s-master over SSH"),
        "{stderr}"
    );

    let listed = lab.json(0, &["backup", "list", "--verify"]);
    let dumps = listed["dumps"].as_array().unwrap();
    assert_eq!(dumps.len(), 8, "3 databases and the roles, twice: {listed}");
    for d in dumps {
        assert_eq!(d["status"], "valid", "{d}");
        assert!(d["bytes"].as_u64().unwrap() > 0);
        let age = d["ageSeconds"].as_i64().unwrap();
        assert!((0..600).contains(&age), "{d}");
    }
    assert_eq!(listed["lastSuccess"]["result"], "success");
    assert!(
        listed["etcdSnapshots"]["skipped"]
            .as_str()
            .unwrap()
            .contains("k3s-master")
    );
    assert_eq!(listed["etcdSnapshots"]["snapshots"], json!([]));

    // Listing Jobs are no backups: they carry their own label, have no owner, and the
    // CronJob's last success is the second backup's.
    let lists: Vec<Value> = lab
        .jobs()
        .into_iter()
        .filter(|j| {
            j["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with("postgres-list-")
        })
        .collect();
    assert_eq!(lists.len(), 2);
    for j in &lists {
        assert!(j["metadata"].get("ownerReferences").is_none(), "{j}");
        assert_eq!(
            j["metadata"]["labels"]["app.kubernetes.io/component"],
            "backup-list"
        );
    }
    let cronjob = lab.get("/apis/batch/v1/namespaces/data/cronjobs/postgres-backup");
    assert!(cronjob["status"]["lastSuccessfulTime"].as_str() >= last_success.as_str());
}

#[test]
fn a_dropped_database_is_restored_from_the_latest_dump_and_swaps_keep_the_old_one() {
    let lab = Lab::start();
    let shop = lab.pg.snapshot("shop");
    let notes = lab.pg.snapshot("notes");
    lab.expect(0, &["backup", "postgres"]);

    // Without a terminal and without --yes: refused before anything reaches the cluster.
    let jobs_before = lab.jobs().len();
    let (_, stderr) = lab.expect(1, &["restore", "postgres", "--db", "shop", "--latest"]);
    assert!(
        stderr.contains("refusing to restore database shop without a confirmation: there is no terminal to ask on")
            && stderr.contains("Nothing was changed; run it again with --yes"),
        "{stderr}"
    );
    assert_eq!(lab.jobs().len(), jobs_before, "no Job was started");
    assert_eq!(lab.pg.snapshot("shop"), shop);

    // The application loses its database; restore it.
    lab.pg.sql("postgres", "DROP DATABASE shop;");
    assert!(!lab.pg.databases().contains(&"shop".to_string()));
    let (stdout, stderr) = lab.expect(
        0,
        &["restore", "postgres", "--db", "shop", "--latest", "--yes"],
    );
    assert!(
        stderr.contains("Started Job data/postgres-restore-"),
        "{stderr}"
    );
    assert!(
        stdout.starts_with("Restored database shop from db/shop/shop.")
            && stdout.contains("2 table(s) checked, every row count and checksum matches the dump")
            && stdout.contains("there was no database shop before, so none was kept"),
        "{stdout}"
    );
    assert_eq!(lab.pg.snapshot("shop"), shop, "every row is back");
    assert_eq!(lab.pg.snapshot("notes"), notes);

    // Restoring over a live database keeps the live one beside the restored one.
    lab.pg.sql("shop", "DELETE FROM items WHERE id > 10;");
    let changed = lab.pg.snapshot("shop");
    let (stdout, _) = lab.expect(0, &["restore", "postgres", "--db", "shop", "--yes"]);
    let kept = stdout
        .split("The database it replaced is kept beside it as ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .unwrap_or_else(|| panic!("the kept database is named: {stdout}"))
        .to_string();
    assert!(kept.starts_with("shop_before_restore_"), "{kept}");
    assert!(stdout.contains(&format!("then drop {kept} when you no longer need it")));
    assert_eq!(lab.pg.snapshot("shop"), shop);
    assert_eq!(
        lab.pg.snapshot(&kept),
        changed,
        "the replaced database is kept as it was"
    );

    // --into leaves the database alone and says where the copy went.
    let restored = lab.json(
        0,
        &[
            "restore",
            "postgres",
            "--db",
            "shop",
            "--into",
            "shop_check",
            "--yes",
        ],
    );
    assert_eq!(restored["ok"], true);
    assert_eq!(restored["restore"]["restoredAs"], "shop_check");
    assert_eq!(restored["restore"]["swapped"], false);
    assert_eq!(restored["restore"]["previousKeptAs"], Value::Null);
    assert_eq!(restored["failedTables"], json!([]));
    assert_eq!(lab.pg.snapshot("shop_check"), shop);
    assert_eq!(lab.pg.snapshot("shop"), shop);

    // --drop-old: the replaced database goes once the restored one is in place.
    let kept_databases = |lab: &Lab| {
        lab.pg
            .databases()
            .into_iter()
            .filter(|d| d.starts_with("shop_before_restore_"))
            .count()
    };
    let kept_before = kept_databases(&lab);
    lab.pg.sql("shop", "DELETE FROM items;");
    let (stdout, _) = lab.expect(
        0,
        &["restore", "postgres", "--db", "shop", "--drop-old", "--yes"],
    );
    assert!(
        stdout.contains(
            "shop now holds the restored data; the database it replaced was dropped (--drop-old)"
        ),
        "{stdout}"
    );
    assert_eq!(kept_databases(&lab), kept_before);
    assert_eq!(lab.pg.snapshot("shop"), shop);

    // The roles, as the runbook restores them first on a rebuilt server.
    lab.pg.sql("postgres", "CREATE ROLE app_reader LOGIN;");
    lab.expect(0, &["backup", "postgres"]);
    lab.pg.sql("postgres", "DROP ROLE app_reader;");
    let (stdout, _) = lab.expect(0, &["restore", "postgres", "--globals", "--yes"]);
    assert!(
        stdout.starts_with("Applied the roles from globals/globals."),
        "{stdout}"
    );
    assert_eq!(
        lab.pg.sql(
            "postgres",
            "SELECT rolcanlogin FROM pg_roles WHERE rolname = 'app_reader';"
        ),
        "t\n",
        "the dropped role is back"
    );

    // Restore Jobs are not backups: labelled as restores, owned by nobody.
    let restores: Vec<Value> = lab
        .jobs()
        .into_iter()
        .filter(|j| {
            j["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with("postgres-restore-")
        })
        .collect();
    assert_eq!(restores.len(), 5);
    for j in &restores {
        assert!(j["metadata"].get("ownerReferences").is_none(), "{j}");
        assert_eq!(
            j["metadata"]["labels"]["app.kubernetes.io/component"],
            "backup-restore"
        );
    }

    // A database the lab does not have is refused before a Job starts, and nothing changes.
    let before = lab.pg.databases();
    let jobs = lab.jobs().len();
    let (_, stderr) = lab.expect(2, &["restore", "postgres", "--db", "nope", "--yes"]);
    assert!(
        stderr.contains("error: --db nope: homelab.yaml has no database nope (its databases: "),
        "{stderr}"
    );
    assert_eq!(lab.jobs().len(), jobs, "no Job was started");
    assert_eq!(lab.pg.databases(), before);
}

#[test]
fn on_a_terminal_the_restore_names_the_dump_and_asks_first() {
    let lab = Lab::start();
    let shop = lab.pg.snapshot("shop");
    lab.expect(0, &["backup", "postgres"]);
    let dump = lab.dumps("shop")[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_string();
    lab.pg.sql("shop", "DELETE FROM items;");
    let emptied = lab.pg.snapshot("shop");

    let (code, shown) = lab.run_on_terminal(&["restore", "postgres", "--db", "shop"], "no\n");
    assert_eq!(code, 1, "{shown}");
    assert!(
        shown.contains(&format!(
            "Restore database shop from db/shop/{dump} (taken "
        )) && shown.contains("the current shop is kept, renamed to shop_before_restore_<time>"),
        "{shown}"
    );
    assert!(shown.contains("cancelled, nothing was changed"), "{shown}");
    assert_eq!(lab.pg.snapshot("shop"), emptied);

    let (code, shown) = lab.run_on_terminal(
        &[
            "restore",
            "postgres",
            "--db",
            "shop",
            "--from",
            &dump,
            "--into",
            "shop_back",
        ],
        "yes\n",
    );
    assert_eq!(code, 0, "{shown}");
    assert!(shown.contains("It is restored into the new database shop_back; shop is not changed."));
    assert!(
        shown.contains("into the new database shop_back: 2 table(s) checked")
            && shown.contains("shop was not changed and is kept beside it"),
        "{shown}"
    );
    assert_eq!(lab.pg.snapshot("shop_back"), shop);
    assert_eq!(lab.pg.snapshot("shop"), emptied);

    // A dump that is not there is named as such before anything is asked or changed.
    let (code, shown) = lab.run_on_terminal(
        &[
            "restore",
            "postgres",
            "--db",
            "shop",
            "--from",
            "shop.20200101T000000Z.dump",
        ],
        "yes\n",
    );
    assert_eq!(code, 2, "{shown}");
    assert!(
        shown.contains(
            "shop.20200101T000000Z.dump is not a dump of database shop; its dumps are: db/shop/"
        ),
        "{shown}"
    );
    assert_eq!(lab.pg.snapshot("shop"), emptied);
}

/// Replaces the newest dump of `db` by a dump taken now and rewrites its manifest's size and
/// SHA-256 to match, leaving the recorded table figures alone: only those can tell.
fn substitute_newest_dump(lab: &Lab, db: &str) {
    let dump = lab.dumps(db).pop().unwrap();
    let out = lab
        .pg
        .client("pg_dump")
        .args(["-Fc", "-d", db, "-f"])
        .arg(&dump)
        .output()
        .unwrap();
    check(&out, "pg_dump for the tampered dump");
    let bytes = fs::read(&dump).unwrap();
    let sha = Command::new("sha256sum").arg(&dump).output().unwrap();
    let sha = String::from_utf8_lossy(&sha.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let manifest = dump.with_extension("manifest");
    let text = fs::read_to_string(&manifest).unwrap();
    let rewritten: String = text
        .lines()
        .map(|l| {
            if l.starts_with("bytes\t") {
                format!("bytes\t{}\n", bytes.len())
            } else if l.starts_with("sha256\t") {
                format!("sha256\t{sha}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    fs::write(&manifest, rewritten).unwrap();
}

#[test]
fn the_drill_passes_on_good_dumps_and_fails_on_a_tampered_one() {
    let lab = Lab::start();
    lab.expect(0, &["backup", "postgres"]);
    let (stdout, _) = lab.expect(0, &["backup", "drill"]);
    assert!(
        stdout.starts_with(
            "Drill passed: 3 database(s), 3 table(s), every row count and checksum matches"
        ),
        "{stdout}"
    );
    let items = lines_starting(&stdout, "shop ");
    assert_eq!(items.len(), 2, "{stdout}");
    assert!(
        items
            .iter()
            .any(|l| l.contains("public.items") && l.contains(" 1000 ") && l.ends_with(" ok"))
    );
    let drill = lab.json(0, &["backup", "drill", "--db", "notes"]);
    assert_eq!(drill["summary"]["status"], "passed");
    assert_eq!(drill["tables"].as_array().unwrap().len(), 1);
    assert_eq!(drill["tables"][0]["table"], "public.notes");

    // Tamper: the newest dump of shop now holds other rows, with a manifest whose size and
    // SHA-256 match it (so only the table checksums recorded at dump time can tell).
    lab.pg
        .sql("shop", "UPDATE items SET price = price + 1 WHERE id = 7;");
    substitute_newest_dump(&lab, "shop");

    let before = lab.pg.databases();
    let (stdout, stderr) = lab.expect(1, &["backup", "drill"]);
    assert!(
        stdout.starts_with("Drill FAILED: 1 of 3 database(s) failed, 1 table(s) differ"),
        "{stdout}"
    );
    let items = lines_starting(&stdout, "shop ");
    assert!(
        items.iter().any(|l| l.contains("public.items")
            && l.contains("DIFFERS: same row count, different contents (checksum)")),
        "{stdout}"
    );
    assert!(
        items
            .iter()
            .any(|l| l.contains("Odd") && l.ends_with(" ok")),
        "the other table matches: {stdout}"
    );
    assert!(
        stderr.contains(
            "error: the drill FAILED: 1 table(s) differ from what was recorded at dump time"
        ),
        "{stderr}"
    );
    let json = lab.json(1, &["backup", "drill"]);
    assert_eq!(json["ok"], false);
    assert_eq!(json["summary"]["mismatches"], 1);
    assert_eq!(
        lab.pg.databases(),
        before,
        "the scratch databases are dropped"
    );
}

#[test]
fn a_backup_that_cannot_reach_postgres_fails_with_the_reason_and_keeps_older_dumps() {
    let lab = Lab::start();
    lab.expect(0, &["backup", "postgres"]);
    let volume = lab.volume_state();
    let status = fs::read_to_string(lab.path("volume/status.json")).unwrap();

    lab.pg.stop();
    let (stdout, stderr) = lab.expect(1, &["backup", "postgres"]);
    assert!(stdout.starts_with("Backup FAILED after "), "{stdout}");
    assert!(stdout.contains("no database was dumped"), "{stdout}");
    let error = lines_starting(&stderr, "error: ");
    assert_eq!(error.len(), 1, "{stderr}");
    assert!(
        error[0].starts_with(
            "error: the backup failed, and the dumps kept from earlier runs are untouched: "
        ) && error[0].contains("; see `kubectl -n data logs job/postgres-backup-manual-"),
        "{stderr}"
    );
    assert!(
        error[0].contains("connect") || error[0].contains("server"),
        "the reason names the connection: {stderr}"
    );
    // Every earlier dump is still there, unchanged; the last success is still the first run.
    let after = lab.volume_state();
    for (path, size, modified) in &volume {
        if path.ends_with("last-run.json") {
            continue;
        }
        assert!(
            after
                .iter()
                .any(|(p, s, m)| p == path && s == size && m == modified),
            "{} changed or went away",
            path.display()
        );
    }
    assert_eq!(
        fs::read_to_string(lab.path("volume/status.json")).unwrap(),
        status
    );

    let json = lab.json(1, &["backup", "postgres"]);
    assert_eq!(json["ok"], false);
    assert_eq!(json["exitCode"], 1);
    assert_eq!(json["run"]["result"], "failure");
    assert!(!json["run"]["errors"].as_array().unwrap().is_empty());
}

#[test]
fn missing_objects_bad_arguments_and_a_stuck_pod_are_reported_with_what_to_do() {
    let lab = Lab::start();

    // Bad arguments: refused before anything is contacted.
    let (_, stderr) = lab.expect(
        2,
        &[
            "restore", "postgres", "--db", "shop", "--into", "shop", "--yes",
        ],
    );
    assert!(
        stderr.contains("--into must name a new database, not shop itself"),
        "{stderr}"
    );
    let (_, stderr) = lab.expect(2, &["backup", "drill", "--db", &"x".repeat(64)]);
    assert!(stderr.contains("at most 63 bytes"), "{stderr}");
    let (_, stderr) = lab.expect(
        2,
        &[
            "restore", "postgres", "--db", "shop", "--from", "a", "--latest",
        ],
    );
    assert!(stderr.contains("cannot be used with"), "{stderr}");
    let (_, stderr) = lab.expect(
        2,
        &["restore", "postgres", "--globals", "--into", "x", "--yes"],
    );
    assert!(stderr.contains("cannot be used with"), "{stderr}");
    let (_, stderr) = lab.expect(2, &["restore", "postgres", "--yes"]);
    assert!(stderr.contains("--db <NAME>"), "{stderr}");
    // Without --yes and without a terminal, a wrong name or kubeconfig is said first: the
    // user fixes it before being asked to confirm something that could not run.
    let (_, stderr) = lab.expect(2, &["restore", "postgres", "--db", "nope"]);
    assert!(
        stderr.contains("has no database nope") && !stderr.contains("--yes"),
        "{stderr}"
    );
    let (_, stderr) = lab.expect(
        2,
        &[
            "restore",
            "postgres",
            "--db",
            "shop",
            "--kubeconfig",
            "/nonexistent/kubeconfig",
        ],
    );
    assert!(
        stderr.contains("cannot read kubeconfig /nonexistent/kubeconfig")
            && !stderr.contains("--yes"),
        "{stderr}"
    );
    let (_, stderr) = lab.expect(
        2,
        &[
            "backup",
            "postgres",
            "--kubeconfig",
            "/nonexistent/kubeconfig",
        ],
    );
    assert!(
        stderr.contains("cannot read kubeconfig /nonexistent/kubeconfig"),
        "{stderr}"
    );
    assert!(lab.jobs().is_empty());

    // A lab without PostgreSQL has nothing to back up.
    let no_pg = SPEC.split("services:").next().unwrap();
    fs::write(lab.path("other.yaml"), no_pg).unwrap();
    let (_, stderr) = lab.expect(2, &["-f", "other.yaml", "backup", "postgres"]);
    assert!(stderr.contains("enable `services.postgres`"), "{stderr}");

    // The cluster does not have the CronJob (the lab was never applied).
    let (code, _) = lab.standin.request(
        "DELETE",
        "/apis/batch/v1/namespaces/data/cronjobs/postgres-backup",
        "application/json",
        None,
    );
    assert_eq!(code, 200);
    let (_, stderr) = lab.expect(1, &["backup", "postgres"]);
    assert!(
        stderr.contains("the backup CronJob data/postgres-backup is not in the cluster")
            && stderr.contains("`homelab apply`"),
        "{stderr}"
    );
    // Nor the scripts: no Job is started that would wait for them forever.
    let (code, _) = lab.standin.request(
        "DELETE",
        "/api/v1/namespaces/data/configmaps/postgres-backup-scripts",
        "application/json",
        None,
    );
    assert_eq!(code, 200);
    let (_, stderr) = lab.expect(1, &["backup", "drill"]);
    assert!(
        stderr.contains("the drill Job needs ConfigMap data/postgres-backup-scripts, which is not in the cluster"),
        "{stderr}"
    );
    assert!(lab.jobs().is_empty());

    // A pod that cannot start: the wait ends with what it waited for and what the pod says,
    // and the Job is left for the user to look at.
    lab.apply_postgres_objects(|o| o["kind"] == "ConfigMap");
    let (code, body) = lab.standin.request(
        "PATCH",
        "/api/v1/namespaces/data/secrets/postgres-superuser?fieldManager=test",
        "application/merge-patch+json",
        Some(&json!({"data": {"password": null}})),
    );
    assert_eq!(code, 200, "{body}");
    let (_, stderr) = lab.expect(1, &["backup", "list", "--timeout", "3s"]);
    let error = lines_starting(&stderr, "error: ");
    assert_eq!(error.len(), 1, "{stderr}");
    for part in [
        "error: Job data/postgres-list-",
        "did not finish within 3s: Job: 1 active, 0 succeeded, 0 failed",
        "CreateContainerConfigError: couldn't find key password in Secret data/postgres-superuser",
        "It is still in the cluster",
        "kubectl -n data delete job postgres-list-",
    ] {
        assert!(error[0].contains(part), "{part:?} missing: {stderr}");
    }
    assert_eq!(lab.jobs().len(), 1, "the stuck Job is not deleted");
}

#[test]
fn the_listing_shows_the_etcd_snapshots_of_the_first_server() {
    // A real sshd host running the k3s stand-in, with k3s installed and two snapshots taken.
    let hosts = TestLab::start(&[("s1", Role::Server)]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let inv = hosts.inventory("v1.34.2+k3s1");
    rt.block_on(homelab_nodes::apply(
        &inv,
        &homelab_nodes::ApplyOptions::default(),
        &homelab_nodes::NoEvents,
    ))
    .expect("k3s is installed on the test host");
    let mut saved = Vec::new();
    for name in ["nightly", "before-upgrade"] {
        saved.push(
            rt.block_on(homelab_nodes::snapshot_save(
                &inv,
                Some(name),
                &homelab_nodes::NoEvents,
            ))
            .unwrap(),
        );
    }
    let host = hosts.host("s1");
    let (net, _) = hosts.gateway.rsplit_once('.').unwrap();
    let spec = SPEC
        .replace("192.168.2.0/24", &format!("{net}.0/24"))
        .replace("gateway: 192.168.2.1", &format!("gateway: {}", hosts.gateway))
        .replace(
            "192.168.2.100-192.168.2.120",
            &format!("{net}.100-{net}.120"),
        )
        .replace(
            "    - name: k3s-master\n      role: server\n      address: 192.168.2.20\n",
            &format!("    - name: s1\n      role: server\n      address: {}\n      ssh: {{user: root}}\n", host.ip),
        );
    let lab = Lab::start_with(&spec, Some(hosts.ssh_config()));
    lab.expect(0, &["backup", "postgres"]);

    let (stdout, _) = lab.expect(0, &["backup", "list"]);
    assert!(
        stdout.contains("\netcd snapshots on s1:\nNAME "),
        "{stdout}"
    );
    for name in &saved {
        let row = lines_starting(&stdout, &format!("{name} "));
        assert_eq!(row.len(), 1, "{name}: {stdout}");
        assert!(
            row[0].contains("file:///var/lib/rancher/k3s/server/db/snapshots/"),
            "{}",
            row[0]
        );
    }
    assert_eq!(lines_starting(&stdout, "shop ").len(), 1);

    let listed = lab.json(0, &["backup", "list"]);
    let etcd = &listed["etcdSnapshots"];
    assert_eq!(etcd["server"], "s1");
    assert_eq!(etcd["skipped"], Value::Null);
    // Oldest first; the two were taken within a second, so compare them as a set.
    let mut names: Vec<&str> = etcd["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    let mut expected: Vec<&str> = saved.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(names, expected);
    assert!(etcd["snapshots"][0]["sizeBytes"].as_u64().unwrap() > 0);
    assert!(etcd["snapshots"][0]["age"].is_string());
}

#[test]
fn with_verify_row_counts_the_backup_records_counts_only_and_the_drill_still_checks_them() {
    let spec = SPEC.replace(
        "      - name: notes\n",
        "      - name: notes\n    backup:\n      verify: row-counts\n",
    );
    assert_ne!(spec, SPEC);
    let lab = Lab::start_with(&spec, None);
    lab.expect(0, &["backup", "postgres"]);
    // No hash pass: every table line of every manifest has method c and no checksum.
    for db in ["shop", "notes"] {
        let dump = lab.dumps(db).pop().unwrap();
        let manifest = fs::read_to_string(dump.with_extension("manifest")).unwrap();
        let tables: Vec<&str> = manifest
            .lines()
            .filter(|l| l.starts_with("table\t"))
            .collect();
        assert!(!tables.is_empty(), "{manifest}");
        for line in tables {
            let fields: Vec<&str> = line.split('\t').collect();
            assert_eq!((fields[2], fields[4]), ("c", "-"), "{manifest}");
        }
    }
    let (stdout, _) = lab.expect(0, &["backup", "drill"]);
    assert!(
        stdout.starts_with(
            "Drill passed: 3 database(s), 3 table(s), every row count matches the dump (row counts only"
        ),
        "{stdout}"
    );

    // A changed value goes unnoticed in this mode; a lost row does not.
    lab.pg
        .sql("shop", "UPDATE items SET price = price + 1 WHERE id = 7;");
    substitute_newest_dump(&lab, "shop");
    lab.expect(0, &["backup", "drill"]);
    lab.pg.sql("shop", "DELETE FROM items WHERE id = 8;");
    substitute_newest_dump(&lab, "shop");
    let (stdout, _) = lab.expect(1, &["backup", "drill"]);
    let items = lines_starting(&stdout, "shop ");
    assert!(
        items
            .iter()
            .any(|l| l.contains("public.items") && l.contains("999 (recorded 1000)")),
        "{stdout}"
    );
}
