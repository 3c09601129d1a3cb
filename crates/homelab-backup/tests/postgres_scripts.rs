//! The rendered backup, restore, drill and listing scripts, run with bash against a real
//! PostgreSQL server started for each test.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Lab, Tmpfs, substitute_dump};
use homelab_backup::records::{
    BackupListing, BackupRun, DrillDatabaseStatus, DrillReport, DumpValidity, Manifest,
    RestoreReport, RestoreStatus, TableStatus,
};

/// A database with the column types, table kinds and names that trip backup tools up.
const SHOP_SQL: &str = r#"
CREATE ROLE shop_owner LOGIN PASSWORD 'not-a-real-secret';
CREATE DATABASE shop OWNER shop_owner;
ALTER DATABASE shop SET work_mem = '8MB';
"#;

const SHOP_TABLES_SQL: &str = r#"
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TYPE pair AS (a int, b text);
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE DOMAIN jdom AS json;
CREATE SCHEMA "Odd Schema";
CREATE TABLE items (
  id serial PRIMARY KEY, name text, price numeric(12,2), qty posint, at timestamptz, d date,
  mood mood, tags varchar(20)[], data jsonb, j json, doc xml, p point, blob bytea,
  f double precision, r int4range, pr pair, jd jdom, iv interval, u uuid, big text, gone int
);
INSERT INTO items (name, price, qty, at, d, mood, tags, data, j, doc, p, blob, f, r, pr, jd, iv, u, big, gone)
SELECT 'item ' || g, g * 1.25, g, '2026-01-01 00:00:00+00'::timestamptz + g * interval '1 hour',
       date '2026-01-01' + g, (ARRAY['sad','ok','happy']::mood[])[1 + g % 3],
       ARRAY['t' || g, 'x'], jsonb_build_object('g', g, 'even', g % 2 = 0),
       json_build_object('g', g), xmlparse(content '<a>' || g || '</a>'), point(g, -g),
       decode(md5(g::text), 'hex'), g / 7.0, int4range(g, g + 10), ROW(g, 'p' || g)::pair,
       '{"k": 1}'::json, g * interval '1 minute', md5(g::text)::uuid,
       CASE WHEN g % 100 = 0 THEN repeat(md5(g::text), 400) END, g
FROM generate_series(1, 2000) g;
INSERT INTO items (name) VALUES (NULL), ('only a name');
ALTER TABLE items DROP COLUMN gone;
ALTER TABLE items OWNER TO shop_owner;
CREATE TABLE "Odd Schema"."Mixed ""Quote"" Table" (k int, v text);
INSERT INTO "Odd Schema"."Mixed ""Quote"" Table" SELECT g, E'tab\there ' || g FROM generate_series(1, 50) g;
CREATE TABLE no_columns ();
INSERT INTO no_columns DEFAULT VALUES;
INSERT INTO no_columns DEFAULT VALUES;
CREATE TABLE measurements (city int, day date, v real) PARTITION BY RANGE (day);
CREATE TABLE measurements_2025 PARTITION OF measurements FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE measurements_2026 PARTITION OF measurements FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
INSERT INTO measurements SELECT g % 5, date '2025-06-01' + g, g / 3.0 FROM generate_series(1, 400) g;
CREATE TABLE parent_t (a int);
CREATE TABLE child_t (b int) INHERITS (parent_t);
INSERT INTO parent_t VALUES (1), (2);
INSERT INTO child_t VALUES (3, 30);
CREATE UNLOGGED TABLE scratch (a int);
INSERT INTO scratch VALUES (42);
CREATE TABLE no_rows (a int);
"#;

const ODD_DB: &str = "Wéird db's \"name\"";

fn make_shop(lab: &Lab) {
    lab.pg.sql("postgres", SHOP_SQL);
    lab.pg.sql("shop", SHOP_TABLES_SQL);
}

fn make_odd_db(lab: &Lab) {
    lab.pg.sql(
        "postgres",
        &format!("CREATE DATABASE {};", quote_ident(ODD_DB)),
    );
    lab.pg.sql(
        ODD_DB,
        "CREATE TABLE t (a int, b text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 300) g;",
    );
}

fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn backup_ok(lab: &Lab) -> BackupRun {
    let run = lab.run("backup.sh", &[]);
    run.assert_code(0);
    let record = BackupRun::from_log(&run.stdout).unwrap();
    assert!(record.succeeded(), "{record:?}");
    record
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn backup_drop_restore_gives_back_every_row() {
    let lab = Lab::new(7, |_| {});
    make_shop(&lab);
    make_odd_db(&lab);
    let shop_before = lab.pg.snapshot("shop");
    let odd_before = lab.pg.snapshot(ODD_DB);

    let record = backup_ok(&lab);
    let names: Vec<&str> = record.databases.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, [ODD_DB, "postgres", "shop"]);
    let shop = &record.databases[2];
    // items, the quoted table, no_columns, two partitions, parent_t, child_t, scratch, no_rows
    assert_eq!(shop.tables, Some(9));
    assert_eq!(shop.rows, Some(2002 + 50 + 2 + 400 + 2 + 1 + 1));
    let status = fs::read_to_string(&lab.params.status_file).unwrap();
    assert_eq!(BackupRun::from_json(&status).unwrap(), record);

    let manifest = Manifest::parse(
        &fs::read_to_string(lab.backup_dir().join(shop.manifest.as_ref().unwrap())).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest.database.as_deref(), Some("shop"));
    assert!(
        manifest
            .tables
            .iter()
            .any(|t| t.table == "\"Odd Schema\".\"Mixed \"\"Quote\"\" Table\"" && t.rows == 50),
        "{manifest:?}"
    );

    lab.pg.sql("postgres", "DROP DATABASE shop;");
    lab.pg.sql(
        "postgres",
        &format!("DROP DATABASE {};", quote_ident(ODD_DB)),
    );

    for db in ["shop", ODD_DB] {
        let run = lab.run("restore.sh", &["--db", db]);
        run.assert_code(0);
        let report = RestoreReport::parse(&run.stdout).unwrap();
        assert_eq!(report.summary.status, RestoreStatus::Restored);
        assert_eq!(report.summary.restored_as.as_deref(), Some(db));
        assert_eq!(report.summary.previous_kept_as, None);
        assert_eq!(report.summary.mismatches, Some(0));
    }
    assert_eq!(lab.pg.snapshot("shop"), shop_before);
    assert_eq!(lab.pg.snapshot(ODD_DB), odd_before);
    // The database-level entries of the dump came back too.
    assert_eq!(
        lab.pg.sql(
            "postgres",
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'shop';"
        ),
        "shop_owner\n"
    );
    assert_eq!(
        lab.pg.sql(
            "postgres",
            "SELECT array_to_string(setconfig, ',') FROM pg_db_role_setting s \
             JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = 'shop';"
        ),
        "work_mem=8MB\n"
    );
    assert!(
        !lab.pg
            .databases()
            .iter()
            .any(|d| d.starts_with("homelab_restore_")),
        "a temporary restore database was left behind"
    );
}

#[test]
fn a_second_restore_in_the_same_second_keeps_the_old_database_under_a_free_name() {
    // Every database is discovered, so the backup at the end shows which it skips.
    let lab = Lab::new(7, |_| {});
    make_shop(&lab);
    backup_ok(&lab);
    // The names a restore started in the next seconds would take are already kept databases,
    // as after a restore that ran a moment before. A loaded machine can be slower than that
    // window, so a run that started after it is repeated.
    let mut taken = Vec::new();
    let mut kept = None;
    for _ in 0..6 {
        let now = jiff::Timestamp::now();
        for s in 0..5 {
            let at = now.checked_add(jiff::SignedDuration::from_secs(s)).unwrap();
            let name = format!("shop_before_restore_{}", at.strftime("%Y%m%d%H%M%S"));
            if !taken.contains(&name) {
                lab.pg
                    .sql("postgres", &format!("CREATE DATABASE \"{name}\";"));
                taken.push(name);
            }
        }
        let run = lab.run("restore.sh", &["--db", "shop", "--latest"]);
        run.assert_code(0);
        let report = RestoreReport::parse(&run.stdout).unwrap();
        let name = report.summary.previous_kept_as.clone().unwrap();
        if taken.iter().any(|t| name == format!("{t}_2")) {
            kept = Some(name);
            break;
        }
        assert!(
            !taken.contains(&name),
            "the restore kept the old database under the taken name {name}"
        );
        taken.push(name);
    }
    let kept = kept.expect("no restore started inside the window of taken names");
    let dbs = lab.pg.databases();
    assert!(dbs.contains(&kept), "{kept} is not there");
    for t in &taken {
        assert!(dbs.contains(t), "{t} was touched");
    }
    // Kept databases, counted ones too, are not backed up themselves.
    let record = backup_ok(&lab);
    let backed_up: Vec<&str> = record.databases.iter().map(|d| d.name.as_str()).collect();
    assert!(backed_up.contains(&"shop"), "{backed_up:?}");
    assert!(
        !backed_up.iter().any(|d| d.contains("_before_restore_")),
        "{backed_up:?}"
    );
}

#[test]
fn restore_swaps_in_and_keeps_the_old_database_until_it_succeeded() {
    let lab = Lab::new(7, |p| p.databases = Some(vec!["shop".into()]));
    make_shop(&lab);
    let at_backup = lab.pg.snapshot("shop");
    backup_ok(&lab);
    lab.pg.sql(
        "shop",
        "DELETE FROM items WHERE id <= 1000; UPDATE no_rows SET a = 1;",
    );
    let damaged = lab.pg.snapshot("shop");

    // An application still connected to the database: the swap has to close its session.
    let mut app = lab
        .pg
        .client("psql")
        .args(["-X", "-d", "shop", "-c", "SELECT pg_sleep(600)"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while lab.pg.sql(
        "postgres",
        "SELECT count(*) FROM pg_stat_activity WHERE datname = 'shop' AND query LIKE '%pg_sleep%';",
    ) != "1\n"
    {
        assert!(
            Instant::now() < deadline,
            "the application session did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let run = lab.run("restore.sh", &["--db", "shop", "--latest"]);
    run.assert_code(0);
    let report = RestoreReport::parse(&run.stdout).unwrap();
    assert!(report.summary.swapped);
    let old = report.summary.previous_kept_as.clone().unwrap();
    assert!(old.starts_with("shop_before_restore_"), "{old}");
    assert!(
        run.stderr.contains(&old),
        "the restore must say where the old database is"
    );

    assert_eq!(lab.pg.snapshot("shop"), at_backup);
    assert_eq!(lab.pg.snapshot(&old), damaged);
    let status = app.wait().unwrap();
    assert!(
        !status.success(),
        "the application's session should have been closed"
    );
    // The kept database accepts connections again.
    assert_eq!(lab.pg.sql(&old, "SELECT 1;"), "1\n");

    // --drop-old replaces and drops.
    let run = lab.run("restore.sh", &["--db", "shop", "--drop-old"]);
    run.assert_code(0);
    let report = RestoreReport::parse(&run.stdout).unwrap();
    assert_eq!(report.summary.previous_kept_as, None);
    let dbs = lab.pg.databases();
    assert_eq!(
        dbs.iter()
            .filter(|d| d.starts_with("shop_before_restore_"))
            .count(),
        1,
        "{dbs:?}"
    );
}

#[test]
fn restore_into_a_new_database_leaves_the_original_alone() {
    let lab = Lab::new(7, |p| p.databases = Some(vec!["shop".into()]));
    make_shop(&lab);
    let at_backup = lab.pg.snapshot("shop");
    backup_ok(&lab);
    lab.pg.sql("shop", "TRUNCATE items;");
    let now = lab.pg.snapshot("shop");

    let run = lab.run("restore.sh", &["--db", "shop", "--into", "shop_copy"]);
    run.assert_code(0);
    let report = RestoreReport::parse(&run.stdout).unwrap();
    assert_eq!(report.summary.restored_as.as_deref(), Some("shop_copy"));
    assert!(!report.summary.swapped);
    assert_eq!(lab.pg.snapshot("shop_copy"), at_backup);
    assert_eq!(lab.pg.snapshot("shop"), now);

    // The same target again is refused, and changes nothing.
    let before = lab.pg.snapshot("shop_copy");
    let run = lab.run("restore.sh", &["--db", "shop", "--into", "shop_copy"]);
    run.assert_code(2);
    assert!(
        run.stderr.contains("shop_copy already exists"),
        "{}",
        run.stderr
    );
    assert_eq!(lab.pg.snapshot("shop_copy"), before);
}

#[test]
fn a_restore_that_fails_its_check_keeps_the_original_and_drops_the_attempt() {
    let lab = Lab::new(7, |p| p.databases = Some(vec!["shop".into()]));
    make_shop(&lab);
    backup_ok(&lab);
    // The dump now holds different data than recorded at dump time.
    lab.pg.sql("shop", "DELETE FROM items WHERE id % 2 = 0;");
    let current = lab.pg.snapshot("shop");
    let dump = lab.dumps("shop").pop().unwrap();
    substitute_dump(&lab, &dump, "shop");

    let dbs_before = lab.pg.databases();
    let run = lab.run("restore.sh", &["--db", "shop"]);
    run.assert_code(1);
    let report = RestoreReport::parse(&run.stdout).unwrap();
    assert_eq!(report.summary.status, RestoreStatus::Failed);
    assert!(
        report
            .failed_tables
            .iter()
            .any(|t| t.table == "public.items" && t.status == TableStatus::Mismatch),
        "{report:?}"
    );
    assert!(
        run.stderr.contains("differ from the backup's record"),
        "{}",
        run.stderr
    );
    assert_eq!(lab.pg.snapshot("shop"), current);
    assert_eq!(
        lab.pg.databases(),
        dbs_before,
        "the failed attempt must be dropped"
    );
}

#[test]
fn retention_keeps_the_newest_valid_dumps() {
    let keep = 2;
    let lab = Lab::new(keep, |p| p.databases = Some(vec!["shop".into()]));
    make_shop(&lab);
    let mut written = Vec::new();
    for i in 0..keep + 3 {
        lab.pg
            .sql("shop", &format!("INSERT INTO no_rows VALUES ({i});"));
        let record = backup_ok(&lab);
        written.push(record.databases[0].file.clone().unwrap());
        let dumps = lab.dumps("shop");
        assert!(dumps.len() <= keep as usize, "{dumps:?}");
        if i >= keep {
            assert_eq!(
                record.deleted.len(),
                2,
                "one dump and one globals file: {record:?}"
            );
        }
    }
    let kept: Vec<String> = lab
        .dumps("shop")
        .iter()
        .map(|p| {
            p.strip_prefix(lab.backup_dir())
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    assert_eq!(kept, written[written.len() - keep as usize..]);
    assert_eq!(lab.globals().len(), keep as usize);
    // Every kept dump has its manifest, and no manifest is left without its dump.
    let manifests = fs::read_dir(lab.dumps("shop")[0].parent().unwrap())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".manifest")
        })
        .count();
    assert_eq!(manifests, keep as usize);
}

#[test]
fn truncated_and_corrupted_dumps_are_reported_and_older_dumps_stay() {
    let lab = Lab::new(3, |p| p.databases = Some(vec!["shop".into()]));
    make_shop(&lab);
    for _ in 0..3 {
        backup_ok(&lab);
    }
    let dumps = lab.dumps("shop");
    let (oldest, middle, newest) = (&dumps[0], &dumps[1], &dumps[2]);
    let oldest_sha = sha256(oldest);
    // Truncate the newest, flip one byte in the middle of the second.
    let len = fs::metadata(newest).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(newest)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let mut bytes = fs::read(middle).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x55;
    fs::write(middle, &bytes).unwrap();

    let record = backup_ok(&lab);
    let reported: Vec<(&str, &str)> = record
        .invalid_dumps
        .iter()
        .map(|d| (d.file.as_str(), d.reason.as_str()))
        .collect();
    assert_eq!(reported.len(), 2, "{reported:?}");
    assert!(reported[0].1.contains("truncated"), "{reported:?}");
    assert!(reported[1].1.contains("corrupted"), "{reported:?}");
    assert!(
        record.deleted.iter().all(|d| !d.ends_with(".dump")),
        "{record:?}"
    );
    assert_eq!(
        sha256(oldest),
        oldest_sha,
        "the oldest valid dump was touched"
    );
    assert_eq!(lab.dumps("shop").len(), 4);

    // The drill reports both and fails; the restore skips them for the newest valid dump and
    // refuses them by name.
    let drill = lab.run("drill.sh", &[]);
    drill.assert_code(1);
    let report = DrillReport::parse(&drill.stdout).unwrap();
    assert_eq!(report.summary.invalid_dumps, 2);
    assert!(!report.passed());
    let db = report
        .databases
        .iter()
        .find(|d| d.database == "shop")
        .unwrap();
    assert_eq!(db.status, DrillDatabaseStatus::Ok);

    let name = newest.file_name().unwrap().to_str().unwrap();
    let run = lab.run("restore.sh", &["--db", "shop", "--from", name]);
    run.assert_code(1);
    assert!(run.stderr.contains("truncated"), "{}", run.stderr);
    let name = middle.file_name().unwrap().to_str().unwrap();
    let run = lab.run("restore.sh", &["--db", "shop", "--from", name]);
    run.assert_code(1);
    assert!(run.stderr.contains("corrupted"), "{}", run.stderr);
    let run = lab.run("restore.sh", &["--db", "shop", "--into", "shop_check"]);
    run.assert_code(0);
}

#[test]
fn a_backup_while_another_session_writes_is_consistent() {
    let lab = Lab::new(3, |p| p.databases = Some(vec!["bank".into()]));
    lab.pg.sql("postgres", "CREATE DATABASE bank;");
    let init = lab
        .pg
        .client("pgbench")
        .args(["-i", "-q", "-s", "4", "bank"])
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "pgbench -i: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    let commits = || -> i64 {
        lab.pg
            .sql("bank", "SELECT count(*) FROM pgbench_history;")
            .trim()
            .parse()
            .unwrap()
    };

    // pgbench's TPC-B-like transactions move money between accounts, tellers and branches and
    // log every move: in any consistent snapshot the four sums are equal.
    let mut writer = lab
        .pg
        .client("pgbench")
        .args(["-n", "-c", "2", "-T", "300", "bank"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while commits() < 200 {
        assert!(Instant::now() < deadline, "pgbench made no progress");
        std::thread::sleep(Duration::from_millis(100));
    }
    let before = commits();
    let record = backup_ok(&lab);
    let after = commits();
    let _ = writer.kill();
    let _ = writer.wait();
    assert!(
        after > before,
        "the writer must have committed during the backup"
    );
    assert!(record.databases[0].rows.unwrap() >= 400_000);

    let drill = lab.run("drill.sh", &[]);
    drill.assert_code(0);
    let report = DrillReport::parse(&drill.stdout).unwrap();
    assert!(report.passed());
    assert!(report.tables.iter().all(|t| t.status == TableStatus::Ok));

    let run = lab.run("restore.sh", &["--db", "bank", "--into", "bank_at_backup"]);
    run.assert_code(0);
    let sums = lab.pg.sql(
        "bank_at_backup",
        "SELECT (SELECT sum(abalance) FROM pgbench_accounts), (SELECT sum(tbalance) FROM pgbench_tellers), \
                (SELECT sum(bbalance) FROM pgbench_branches), (SELECT coalesce(sum(delta), 0) FROM pgbench_history), \
                (SELECT count(*) FROM pgbench_history);",
    );
    let fields: Vec<&str> = sums.trim().split('|').collect();
    assert_eq!(fields[0], fields[1], "{sums}");
    assert_eq!(fields[1], fields[2], "{sums}");
    assert_eq!(fields[2], fields[3], "{sums}");
    let dumped: i64 = fields[4].parse().unwrap();
    assert!(
        dumped >= before && dumped <= after,
        "the dump holds {dumped} transactions, committed were {before} before and {after} after"
    );
}

#[test]
fn a_full_backup_volume_fails_the_run_and_keeps_the_previous_dumps() {
    let fs_ = Tmpfs::mount(1024 * 1024);
    let work = tempfile::tempdir().unwrap();
    let lab = Lab::with_backup_dir(work, &fs_.path.join("backups"), 7, |p| {
        p.databases = Some(vec!["shop".into()])
    });
    lab.pg.sql("postgres", "CREATE DATABASE shop;");
    lab.pg.sql(
        "shop",
        "CREATE TABLE t (a int, b text); INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 100) g;",
    );
    let first = backup_ok(&lab);
    let tree = lab.tree();
    // Now the dump cannot fit: random hex compresses to about half, 4 MB > 1 MB.
    lab.pg.sql(
        "shop",
        "INSERT INTO t SELECT g, md5(random()::text) || md5(random()::text) FROM generate_series(1, 60000) g;",
    );
    let run = lab.run("backup.sh", &[]);
    run.assert_code(1);
    let record = BackupRun::from_log(&run.stdout).unwrap();
    assert!(!record.succeeded());
    let all = record.errors.join("\n");
    assert!(
        all.contains("No space left on device") || all.contains("full"),
        "{all}"
    );
    assert!(record.deleted.is_empty());
    // The previous dumps and the last success record are untouched; what is new is only the
    // globals dump of this run (complete and verified), and no partial file is left.
    let now = lab.tree();
    for (path, hash) in tree.iter().filter(|(p, _)| p != "last-run.json") {
        assert!(
            now.iter().any(|(p, h)| p == path && h == hash),
            "{path} changed or vanished: {now:?}"
        );
    }
    for (path, _) in now.iter().filter(|e| !tree.contains(e)) {
        assert!(
            path == "last-run.json" || path.starts_with("globals/globals."),
            "unexpected new file {path}"
        );
    }
    let status = fs::read_to_string(&lab.params.status_file).unwrap();
    assert_eq!(BackupRun::from_json(&status).unwrap(), first);
}

#[test]
fn a_read_only_backup_volume_fails_the_run_and_changes_nothing() {
    let fs_ = Tmpfs::mount(8 * 1024 * 1024);
    let work = tempfile::tempdir().unwrap();
    let lab = Lab::with_backup_dir(work, &fs_.path.join("backups"), 7, |p| {
        p.databases = Some(vec!["shop".into()])
    });
    make_shop(&lab);
    backup_ok(&lab);
    let tree = lab.tree();
    fs_.remount_read_only();
    let run = lab.run("backup.sh", &[]);
    run.assert_code(1);
    let record = BackupRun::from_log(&run.stdout).unwrap();
    assert!(!record.succeeded());
    assert!(
        record
            .errors
            .join("\n")
            .contains("cannot write to the backup directory"),
        "{record:?}"
    );
    assert_eq!(lab.tree(), tree);
}

#[test]
fn a_failed_dump_deletes_nothing() {
    let lab = Lab::new(1, |p| {
        p.databases = Some(vec!["shop".into(), "missing_db".into()])
    });
    make_shop(&lab);
    lab.pg.sql("postgres", "CREATE DATABASE missing_db;");
    backup_ok(&lab);
    lab.pg.sql("postgres", "DROP DATABASE missing_db;");
    let run = lab.run("backup.sh", &[]);
    run.assert_code(1);
    let record = BackupRun::from_log(&run.stdout).unwrap();
    let failed = record
        .databases
        .iter()
        .find(|d| d.name == "missing_db")
        .unwrap();
    assert!(
        failed.error.as_deref().unwrap().contains("does not exist"),
        "{failed:?}"
    );
    // keep = 1, yet the previous dump of shop stays beside the new one: the run failed.
    assert_eq!(lab.dumps("shop").len(), 2);
    assert_eq!(lab.dumps("missing_db").len(), 1);
    assert!(record.deleted.is_empty());
    let last_run = fs::read_to_string(&lab.params.last_run_file).unwrap();
    assert!(!BackupRun::from_json(&last_run).unwrap().succeeded());
    let status =
        BackupRun::from_json(&fs::read_to_string(&lab.params.status_file).unwrap()).unwrap();
    assert!(status.succeeded(), "status.json keeps the last success");
}

#[test]
fn the_drill_passes_on_good_dumps_and_fails_on_a_tampered_one() {
    let lab = Lab::new(7, |_| {});
    make_shop(&lab);
    make_odd_db(&lab);
    backup_ok(&lab);

    let run = lab.run("drill.sh", &[]);
    run.assert_code(0);
    let report = DrillReport::parse(&run.stdout).unwrap();
    assert!(report.passed());
    assert_eq!(report.summary.databases, 3);
    assert_eq!(report.summary.tables, 9 + 1);
    assert!(report.dumps.iter().all(|d| d.status == DumpValidity::Valid));
    let saved = fs::read_to_string(&lab.params.drill_report_file).unwrap();
    assert_eq!(DrillReport::parse(&saved).unwrap(), report);
    assert!(
        !lab.pg
            .databases()
            .iter()
            .any(|d| d.starts_with("homelab_drill_"))
    );

    lab.pg
        .sql("shop", "UPDATE items SET price = price + 1 WHERE id = 7;");
    let dump = lab.dumps("shop").pop().unwrap();
    substitute_dump(&lab, &dump, "shop");
    let run = lab.run("drill.sh", &[]);
    run.assert_code(1);
    let report = DrillReport::parse(&run.stdout).unwrap();
    assert!(!report.passed());
    let differences: Vec<(&str, &str, TableStatus)> = report
        .differences()
        .map(|t| (t.database.as_str(), t.table.as_str(), t.status))
        .collect();
    assert_eq!(
        differences,
        [("shop", "public.items", TableStatus::Mismatch)]
    );
    let items = report
        .tables
        .iter()
        .find(|t| t.table == "public.items")
        .unwrap();
    assert_eq!(
        items.expected_rows, items.actual_rows,
        "same rows, other content"
    );
    assert_ne!(items.expected_checksum, items.actual_checksum);
    assert!(
        !lab.pg
            .databases()
            .iter()
            .any(|d| d.starts_with("homelab_drill_"))
    );

    // --db limits the drill to one database.
    let run = lab.run("drill.sh", &["--db", ODD_DB]);
    run.assert_code(0);
    assert_eq!(
        DrillReport::parse(&run.stdout).unwrap().summary.databases,
        1
    );
}

#[test]
fn the_globals_restore_brings_back_a_dropped_role() {
    let lab = Lab::new(7, |p| p.databases = Some(vec!["postgres".into()]));
    lab.pg.sql(
        "postgres",
        "CREATE ROLE reporting LOGIN PASSWORD 'also-not-real';",
    );
    backup_ok(&lab);
    lab.pg.sql("postgres", "DROP ROLE reporting;");
    let run = lab.run("restore.sh", &["--globals"]);
    run.assert_code(0);
    assert!(run.stderr.contains("already exists"), "{}", run.stderr);
    assert_eq!(
        lab.pg.sql(
            "postgres",
            "SELECT rolcanlogin FROM pg_roles WHERE rolname = 'reporting';"
        ),
        "t\n"
    );
}

#[test]
fn list_reports_dumps_and_records() {
    let lab = Lab::new(7, |p| p.databases = Some(vec!["shop".into()]));
    make_shop(&lab);
    let record = backup_ok(&lab);
    lab.run("drill.sh", &[]).assert_code(0);
    let run = lab.run("list.sh", &["--verify"]);
    run.assert_code(0);
    let listing = BackupListing::parse(&run.stdout).unwrap();
    assert_eq!(listing.dumps.len(), 2, "{listing:?}");
    let latest = listing.latest_valid("shop").unwrap();
    assert_eq!(Some(&latest.file), record.databases[0].file.as_ref());
    assert_eq!(latest.bytes, record.databases[0].bytes);
    assert_eq!(latest.created_at, record.started_at);
    assert_eq!(latest.rows, record.databases[0].rows.unwrap());
    assert_eq!(listing.last_success.as_ref(), Some(&record));
    assert_eq!(listing.last_run.as_ref(), Some(&record));
    assert!(listing.last_drill.unwrap().passed());
}

#[test]
fn a_held_lock_refuses_a_second_backup_and_a_stale_one_is_broken() {
    let lab = Lab::new(7, |p| p.databases = Some(vec!["postgres".into()]));
    let lock = lab.backup_dir().join(".lock");
    fs::create_dir_all(&lock).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    fs::write(lock.join("owner"), format!("{now} 4242 other-host\n")).unwrap();
    let run = lab.run("backup.sh", &[]);
    run.assert_code(3);
    assert!(
        run.stderr.contains("pid 4242 on other-host"),
        "{}",
        run.stderr
    );
    assert!(
        lock.join("owner").exists(),
        "the other run's lock must stay"
    );
    assert!(lab.dumps("postgres").is_empty());

    fs::write(
        lock.join("owner"),
        format!("{} 4242 other-host\n", now - 7 * 3600),
    )
    .unwrap();
    let record = backup_ok(&lab);
    assert!(record.warnings[0].contains("stale lock"), "{record:?}");
    assert!(!lock.exists());
}

#[test]
fn bad_arguments_are_refused_and_change_nothing() {
    let lab = Lab::new(7, |p| p.databases = Some(vec!["shop".into()]));
    make_shop(&lab);
    backup_ok(&lab);
    let tree = lab.tree();
    let dbs = lab.pg.databases();
    let shop = lab.pg.snapshot("shop");
    let cases: &[(&str, &[&str], &str)] = &[
        ("backup.sh", &["--now"], "takes no arguments"),
        ("backup.sh", &["a", "b"], "takes no arguments"),
        ("restore.sh", &[], "--db NAME is required"),
        ("restore.sh", &["--db"], "--db needs a value"),
        ("restore.sh", &["--db", ""], "non-empty"),
        ("restore.sh", &["--db=shop"], "with a space"),
        (
            "restore.sh",
            &["--db", "shop", "--from", "x.dump", "--latest"],
            "exclude each other",
        ),
        (
            "restore.sh",
            &["--db", "shop", "--into", "x", "--drop-old"],
            "--drop-old applies to a swap",
        ),
        (
            "restore.sh",
            &["--db", "shop", "--into", "shop"],
            "must name a new database",
        ),
        (
            "restore.sh",
            &["--globals", "--db", "shop"],
            "takes no --db",
        ),
        (
            "restore.sh",
            &["--db", "shop", "--bogus"],
            "unknown argument '--bogus'",
        ),
        (
            "restore.sh",
            &["--db", "nosuch"],
            "no dumps of database 'nosuch'",
        ),
        (
            "restore.sh",
            &["--db", "shop", "--from", "nosuch.dump"],
            "no dump 'nosuch.dump'",
        ),
        (
            "restore.sh",
            &["--db", "shop", "--from", "/etc/hostname"],
            "is not a database dump",
        ),
        ("drill.sh", &["--bogus"], "unknown argument '--bogus'"),
        (
            "drill.sh",
            &["--db", "nosuch"],
            "no dumps of database 'nosuch'",
        ),
        ("drill.sh", &["--db"], "--db needs a value"),
        ("list.sh", &["--all"], "unknown argument '--all'"),
    ];
    for (script, args, message) in cases {
        let run = lab.run(script, args);
        assert_eq!(run.code, 2, "{script} {args:?}: {}", run.all());
        assert!(
            run.stderr.contains(message),
            "{script} {args:?} should say {message:?}:\n{}",
            run.stderr
        );
    }
    // A dump of another database given to --db is refused too.
    lab.pg.sql("postgres", "CREATE DATABASE other;");
    let shop_dump = lab.dumps("shop").pop().unwrap();
    let copy = lab.work.path().join(shop_dump.file_name().unwrap());
    fs::copy(&shop_dump, &copy).unwrap();
    fs::copy(
        shop_dump.with_extension("manifest"),
        copy.with_extension("manifest"),
    )
    .unwrap();
    fs::create_dir_all(lab.backup_dir().join("db/other")).unwrap();
    let run = lab.run(
        "restore.sh",
        &["--db", "other", "--from", copy.to_str().unwrap()],
    );
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stderr
            .contains("is a dump of database \"shop\", not of \"other\""),
        "{}",
        run.stderr
    );
    fs::remove_dir(lab.backup_dir().join("db/other")).unwrap();
    lab.pg.sql("postgres", "DROP DATABASE other;");

    assert_eq!(lab.tree(), tree);
    assert_eq!(lab.pg.databases(), dbs);
    assert_eq!(lab.pg.snapshot("shop"), shop);
}

#[test]
fn row_counts_only_mode_records_counts_and_catches_lost_rows() {
    let lab = Lab::new(7, |p| {
        p.databases = Some(vec!["shop".into()]);
        p.table_checksums = homelab_backup::postgres::TableChecksums::RowCountsOnly;
    });
    make_shop(&lab);
    let record = backup_ok(&lab);
    let manifest = Manifest::parse(
        &fs::read_to_string(
            lab.backup_dir()
                .join(record.databases[0].manifest.as_ref().unwrap()),
        )
        .unwrap(),
    )
    .unwrap();
    assert!(manifest.tables.iter().all(|t| {
        t.method == homelab_backup::records::ChecksumMethod::RowCount && t.checksum == "-"
    }));
    let items = manifest
        .tables
        .iter()
        .find(|t| t.table == "public.items")
        .unwrap();
    assert_eq!(items.rows, 2002);
    lab.run("drill.sh", &[]).assert_code(0);

    lab.pg.sql("shop", "DELETE FROM items WHERE id = 5;");
    substitute_dump(&lab, &lab.dumps("shop").pop().unwrap(), "shop");
    let run = lab.run("drill.sh", &[]);
    run.assert_code(1);
    let report = DrillReport::parse(&run.stdout).unwrap();
    let diff: Vec<_> = report.differences().collect();
    assert_eq!(diff.len(), 1, "{diff:?}");
    assert_eq!(
        (diff[0].expected_rows, diff[0].actual_rows),
        (Some(2002), Some(2001))
    );
}

/// Tables whose columns are named like the alias, the functions and the keywords of the
/// checksum SQL (`... count(*), sum(hash_record_extended(ROW(t.*), 0)) FROM ONLY <table> AS t`),
/// hashed with the types' hash functions column by column (method v).
const SHADOWING_HASHABLE_SQL: &str = r#"
CREATE TABLE events (id int, t timestamptz, note text);
INSERT INTO events SELECT g, '2026-01-01 00:00:00+00'::timestamptz + g * interval '1 day', 'note ' || g
  FROM generate_series(1, 30) g;
CREATE SCHEMA t;
CREATE TABLE t.t (t int, count int, sum text, "coalesce" int, pg_catalog int, row int,
  hash_record_extended int, hashtextextended int, "only" int, "as" int, "from" int, "ONLY" text);
INSERT INTO t.t SELECT g, g, 's' || g, g, g, g, g, g, g, g, g, 'o' FROM generate_series(1, 30) g;
"#;

/// A column `t` beside columns without a hash function (point, json): hashed by their text form
/// (method t).
const SHADOWING_TEXT_SQL: &str = r#"
CREATE TYPE tt AS (t int, x text);
CREATE TABLE places (id int, t int, p point);
INSERT INTO places SELECT g, g % 3, point(g, g * 2) FROM generate_series(1, 30) g;
CREATE TABLE nested (t tt, j json);
INSERT INTO nested SELECT ROW(g, 'x' || g)::tt, json_build_object('g', g) FROM generate_series(1, 30) g;
"#;

/// Backs up database `awkward` made by `sql`, checks that each of `tables` has `method`, that
/// the drill passes and that a restore gives back every row; then runs `change` in the
/// database, substitutes a dump of it and checks that the drill names exactly `tables`.
fn shadowing_case(
    sql: &str,
    tables: &[&str],
    method: homelab_backup::records::ChecksumMethod,
    change: &str,
) {
    let lab = Lab::new(7, |p| p.databases = Some(vec!["awkward".into()]));
    lab.pg.sql("postgres", "CREATE DATABASE awkward;");
    lab.pg.sql("awkward", sql);
    let before = lab.pg.snapshot("awkward");
    let record = backup_ok(&lab);
    let manifest = Manifest::parse(
        &fs::read_to_string(
            lab.backup_dir()
                .join(record.databases[0].manifest.as_ref().unwrap()),
        )
        .unwrap(),
    )
    .unwrap();
    let recorded: Vec<(&str, _)> = manifest
        .tables
        .iter()
        .map(|t| (t.table.as_str(), t.method))
        .collect();
    let expected: Vec<(&str, _)> = tables.iter().map(|t| (*t, method)).collect();
    assert_eq!(recorded, expected);
    lab.run("drill.sh", &[]).assert_code(0);
    lab.run("restore.sh", &["--db", "awkward", "--into", "awkward_copy"])
        .assert_code(0);
    assert_eq!(lab.pg.snapshot("awkward_copy"), before);

    // A dump whose other columns differ from what was recorded is caught, table by table.
    lab.pg.sql("awkward", change);
    substitute_dump(&lab, &lab.dumps("awkward").pop().unwrap(), "awkward");
    let run = lab.run("drill.sh", &[]);
    run.assert_code(1);
    let report = DrillReport::parse(&run.stdout).unwrap();
    let differences: Vec<(&str, TableStatus)> = report
        .differences()
        .map(|t| (t.table.as_str(), t.status))
        .collect();
    let expected: Vec<(&str, TableStatus)> =
        tables.iter().map(|t| (*t, TableStatus::Mismatch)).collect();
    assert_eq!(differences, expected);
}

#[test]
fn columns_named_like_the_checksum_sql_do_not_break_the_backup() {
    shadowing_case(
        SHADOWING_HASHABLE_SQL,
        &["public.events", "t.t"],
        homelab_backup::records::ChecksumMethod::ValueHash,
        r#"UPDATE events SET note = 'changed' WHERE id = 3; UPDATE t.t SET "ONLY" = 'p' WHERE t = 6;"#,
    );
}

#[test]
fn a_column_named_t_beside_an_unhashable_type_does_not_hide_a_changed_value() {
    shadowing_case(
        SHADOWING_TEXT_SQL,
        &["public.nested", "public.places"],
        homelab_backup::records::ChecksumMethod::TextHash,
        r#"UPDATE places SET p = point(0, 0) WHERE id = 4; UPDATE nested SET j = '{"g": 0}' WHERE (t).t = 5;"#,
    );
}

/// Tables hashed column by column (method v), each with a change a weak combination of the
/// columns' hashes would miss: values swapped between two columns of one row or between two
/// rows, a change past the first character of a `char(n)` (directly and through a domain), an
/// empty string becoming NULL, and columns without a callable hash function of their own
/// (timestamptz, arrays), which are hashed together as one record. Enums hash their labels
/// (their own hash is of an OID that the restore changes); in an array they make the table use
/// the text method.
const PER_COLUMN_SQL: &str = r#"
CREATE TABLE swapped (id int, a int, b int);
INSERT INTO swapped SELECT g, g, g * 7 FROM generate_series(1, 30) g;
CREATE TABLE moved (id int, v text);
INSERT INTO moved SELECT g, 'v' || g FROM generate_series(1, 30) g;
CREATE DOMAIN code6 AS char(6);
CREATE TABLE chars (id int, c char(6), d code6, "Mixed Case" varchar(8));
INSERT INTO chars SELECT g, 'abcde' || g % 10, 'uvwxy' || g % 10, 'é' || g FROM generate_series(1, 30) g;
CREATE TYPE mood AS ENUM ('sad', 'ok', 'glad');
CREATE TABLE mixed (id int, at timestamptz, tags int[], m mood, note text);
INSERT INTO mixed SELECT g, '2026-01-01 00:00:00+00'::timestamptz + g * interval '1 hour',
  ARRAY[g, g + 1], (ARRAY['sad', 'ok', 'glad'])[1 + g % 3]::mood, CASE WHEN g % 2 = 0 THEN '' END
  FROM generate_series(1, 30) g;
CREATE TABLE no_columns ();
INSERT INTO no_columns DEFAULT VALUES;
CREATE TABLE enum_arrays (id int, ms mood[], r regclass);
INSERT INTO enum_arrays SELECT g, ARRAY['ok', 'glad']::mood[], 'public.moved' FROM generate_series(1, 3) g;
"#;

#[test]
fn per_column_hashes_catch_swapped_moved_and_nulled_values() {
    let lab = Lab::new(7, |p| p.databases = Some(vec!["awkward".into()]));
    lab.pg.sql("postgres", "CREATE DATABASE awkward;");
    lab.pg.sql("awkward", PER_COLUMN_SQL);
    let before = lab.pg.snapshot("awkward");
    let record = backup_ok(&lab);
    let manifest_path = lab
        .backup_dir()
        .join(record.databases[0].manifest.as_ref().unwrap());
    let manifest = Manifest::parse(&fs::read_to_string(&manifest_path).unwrap()).unwrap();
    let recorded: Vec<(&str, _)> = manifest
        .tables
        .iter()
        .map(|t| (t.table.as_str(), t.method))
        .collect();
    let v = homelab_backup::records::ChecksumMethod::ValueHash;
    assert_eq!(
        recorded,
        [
            ("public.chars", v),
            (
                "public.enum_arrays",
                homelab_backup::records::ChecksumMethod::TextHash
            ),
            ("public.mixed", v),
            ("public.moved", v),
            ("public.no_columns", v),
            ("public.swapped", v)
        ]
    );
    lab.run("drill.sh", &[]).assert_code(0);
    lab.run("restore.sh", &["--db", "awkward", "--into", "awkward_copy"])
        .assert_code(0);
    assert_eq!(lab.pg.snapshot("awkward_copy"), before);

    lab.pg.sql(
        "awkward",
        "UPDATE swapped SET a = b, b = a WHERE id = 4;          UPDATE moved SET v = CASE id WHEN 1 THEN 'v2' ELSE 'v1' END WHERE id IN (1, 2);          UPDATE chars SET c = 'abcdeX' WHERE id = 5;          UPDATE mixed SET note = NULL WHERE id = 6;",
    );
    substitute_dump(&lab, &lab.dumps("awkward").pop().unwrap(), "awkward");
    let run = lab.run("drill.sh", &[]);
    run.assert_code(1);
    let report = DrillReport::parse(&run.stdout).unwrap();
    let differences: Vec<(&str, TableStatus)> = report
        .differences()
        .map(|t| (t.table.as_str(), t.status))
        .collect();
    assert_eq!(
        differences,
        [
            ("public.chars", TableStatus::Mismatch),
            ("public.mixed", TableStatus::Mismatch),
            ("public.moved", TableStatus::Mismatch),
            ("public.swapped", TableStatus::Mismatch)
        ]
    );

    // The domain column, the enum and the array are in the sums too.
    lab.pg.sql(
        "awkward",
        "UPDATE swapped SET a = b, b = a WHERE id = 4;          UPDATE moved SET v = 'v' || id WHERE id IN (1, 2);          UPDATE chars SET c = 'abcde5' WHERE id = 5;          UPDATE mixed SET note = '' WHERE id = 6;          UPDATE chars SET d = 'uvwxyZ' WHERE id = 7;          UPDATE mixed SET m = 'glad', tags = ARRAY[0] WHERE id = 8;",
    );
    substitute_dump(&lab, &lab.dumps("awkward").pop().unwrap(), "awkward");
    let run = lab.run("drill.sh", &[]);
    run.assert_code(1);
    let report = DrillReport::parse(&run.stdout).unwrap();
    let differences: Vec<&str> = report.differences().map(|t| t.table.as_str()).collect();
    assert_eq!(differences, ["public.chars", "public.mixed"]);
}

#[test]
fn manifests_of_whole_record_hashes_are_still_checked_with_them() {
    let lab = Lab::new(7, |p| p.databases = Some(vec!["awkward".into()]));
    lab.pg.sql("postgres", "CREATE DATABASE awkward;");
    lab.pg.sql("awkward", SHADOWING_HASHABLE_SQL);
    let record = backup_ok(&lab);
    let manifest_path = lab
        .backup_dir()
        .join(record.databases[0].manifest.as_ref().unwrap());
    // What a backup of the earlier scripts recorded: method r, the sum of
    // hash_record_extended over each row.
    let text = fs::read_to_string(&manifest_path).unwrap();
    let rewritten: Vec<String> = text
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            if f[0] != "table" {
                return l.to_string();
            }
            let table: String = serde_json::from_str(f[1]).unwrap();
            let sum = lab.pg.sql(
                "awkward",
                &format!(
                    "SELECT COALESCE(sum(hash_record_extended(ROW(x.*), 0)), 0) FROM ONLY {table} AS x"
                ),
            );
            format!("table\t{}\tr\t{}\t{}", f[1], f[3], sum.trim())
        })
        .collect();
    fs::write(&manifest_path, rewritten.join("\n") + "\n").unwrap();
    let run = lab.run("drill.sh", &[]);
    run.assert_code(0);
    let report = DrillReport::parse(&run.stdout).unwrap();
    assert_eq!(report.differences().count(), 0);

    // And a changed value still shows under the old method.
    lab.pg.sql(
        "awkward",
        "UPDATE events SET note = 'changed' WHERE id = 3;",
    );
    substitute_dump(&lab, &lab.dumps("awkward").pop().unwrap(), "awkward");
    let run = lab.run("drill.sh", &[]);
    run.assert_code(1);
    let report = DrillReport::parse(&run.stdout).unwrap();
    let differences: Vec<&str> = report.differences().map(|t| t.table.as_str()).collect();
    assert_eq!(differences, ["public.events"]);
}

/// Polls `done` every 50 ms until it holds; panics after 60 s saying `what` never happened.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "{what} did not happen");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A session holding an ACCESS EXCLUSIVE lock on `table` of `db` until it is killed: a dump of
/// that database stops at the table, with its file open and partly written.
fn hold_table_lock(lab: &Lab, db: &str, table: &str) -> std::process::Child {
    let child = lab
        .pg
        .client("psql")
        .args(["-X", "-q", "-d"])
        .arg(common::conninfo(db))
        .arg("-c")
        .arg(format!(
            "BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(600);"
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the table lock", || {
        lab.pg.sql(
            db,
            &format!(
                "SELECT count(*) FROM pg_locks WHERE relation = '{table}'::regclass \
                 AND mode = 'AccessExclusiveLock' AND granted;"
            ),
        ) == "1\n"
    });
    child
}

/// The `.partial` files under the backup directory, relative to it.
fn partial_files(lab: &Lab) -> Vec<String> {
    lab.tree()
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| p.ends_with(".partial"))
        .collect()
}

/// Starts a backup of `shop` and returns once its pg_dump waits on the held lock with the
/// dump's partial file written.
fn backup_stuck_in_pg_dump(lab: &Lab) -> (std::process::Child, std::process::Child) {
    let locker = hold_table_lock(lab, "shop", "items");
    let backup = lab.spawn("backup.sh", &[]);
    wait_for("pg_dump waiting on the lock", || {
        lab.pg.sql(
            "postgres",
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_dump' \
             AND wait_event_type = 'Lock';",
        ) == "1\n"
    });
    wait_for("the dump's partial file", || {
        partial_files(lab)
            .iter()
            .any(|p| p.starts_with("db/shop/.shop.") && p.ends_with(".dump.partial"))
    });
    (locker, backup)
}

/// Ends the session of [`hold_table_lock`]: its server process is terminated, since killing
/// psql alone would leave it sleeping with the lock held.
fn release_table_lock(lab: &Lab, db: &str, table: &str, mut locker: std::process::Child) {
    lab.pg.sql(
        db,
        &format!(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE relation = '{table}'::regclass \
             AND mode = 'AccessExclusiveLock' AND granted;"
        ),
    );
    let _ = locker.wait();
}

#[test]
fn a_run_killed_during_pg_dump_leaves_a_partial_that_the_next_run_removes_and_reports() {
    let lab = Lab::new(7, |p| p.databases = Some(vec!["shop".into()]));
    make_shop(&lab);
    let (locker, backup) = backup_stuck_in_pg_dump(&lab);
    // SIGKILL to every process of the run, as when its pod is killed or its node lost: no
    // trap runs.
    let out = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", backup.id())])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let killed = backup.wait_with_output().unwrap();
    assert!(!killed.status.success());
    release_table_lock(&lab, "shop", "items", locker);
    let left = partial_files(&lab);
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(lab.dumps("shop").is_empty());

    // The killed run's lock stays until it is stale; the next nightly run breaks it.
    let owner = lab.backup_dir().join(".lock/owner");
    let text = fs::read_to_string(&owner).unwrap();
    let (started, rest) = text.split_once(' ').unwrap();
    let started: u64 = started.parse().unwrap();
    fs::write(&owner, format!("{} {rest}", started - 7 * 3600)).unwrap();
    let record = backup_ok(&lab);
    assert!(partial_files(&lab).is_empty(), "{:?}", lab.tree());
    assert_eq!(record.deleted, left, "{record:?}");
    assert!(
        record.warnings.iter().any(|w| w
            == &format!(
                "removed {}, left by a run that stopped while writing it",
                left[0]
            )),
        "{record:?}"
    );
    assert_eq!(lab.dumps("shop").len(), 1);
}

#[test]
fn a_run_stopped_during_pg_dump_removes_its_partial_dump_before_it_ends() {
    let lab = Lab::new(7, |p| p.databases = Some(vec!["shop".into()]));
    make_shop(&lab);
    let (locker, backup) = backup_stuck_in_pg_dump(&lab);
    // SIGTERM to the script alone, as Kubernetes stops a container's first process.
    let out = Command::new("kill")
        .args(["-TERM", &backup.id().to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let run = common::ScriptRun::from_output(&backup.wait_with_output().unwrap());
    run.assert_code(1);
    // Checked while the lock is still held: the stopped pg_dump cannot write again.
    assert!(partial_files(&lab).is_empty(), "{:?}", lab.tree());
    assert!(!lab.backup_dir().join(".lock").exists());
    let record = BackupRun::from_log(&run.stdout).unwrap();
    assert_eq!(record.errors, ["interrupted"], "{record:?}");
    release_table_lock(&lab, "shop", "items", locker);
    let record = backup_ok(&lab);
    assert!(record.warnings.is_empty(), "{record:?}");
    assert!(record.deleted.is_empty(), "{record:?}");
}

#[test]
fn a_partial_file_that_cannot_be_removed_fails_the_run_and_says_so() {
    let lab = Lab::new(7, |p| p.databases = Some(vec!["shop".into()]));
    make_shop(&lab);
    let dir = lab.backup_dir().join("db/gone");
    fs::create_dir_all(&dir).unwrap();
    let partial = dir.join(".gone.20260101T000000Z.dump.partial");
    fs::write(&partial, "half a dump").unwrap();
    let _ro = common::ReadOnlyBind::mount(&dir);
    let run = lab.run("backup.sh", &[]);
    run.assert_code(1);
    let record = BackupRun::from_log(&run.stdout).unwrap();
    assert!(!record.succeeded());
    let expected = format!("cannot remove the partial file {}: ", partial.display());
    let error = record
        .errors
        .iter()
        .find(|e| e.starts_with(&expected))
        .unwrap_or_else(|| panic!("no error names {}: {record:?}", partial.display()));
    assert!(error.contains("Read-only file system"), "{error}");
    assert!(error.ends_with("remove it by hand"), "{error}");
    assert!(run.stderr.contains(&expected), "{}", run.stderr);
    assert!(partial.exists());
    assert!(record.deleted.is_empty(), "{record:?}");
}

/// A database whose database-level entries span lines: a comment with line breaks, quotes and
/// semicolons, a setting whose value holds a line break, and a role whose name does.
const MULTILINE_PROPERTIES_SQL: &str = r#"
CREATE ROLE "two
lines" LOGIN;
CREATE ROLE notes_owner;
CREATE DATABASE notes OWNER notes_owner;
COMMENT ON DATABASE notes IS E'Notes of the lab.\nSecond line; with ''quotes'', "double quotes"\n;\n-- not a comment\nlast line';
ALTER DATABASE notes SET search_path = 'a; b', "x
y";
ALTER DATABASE notes SET work_mem = '8MB';
ALTER DATABASE notes CONNECTION LIMIT 7;
ALTER ROLE "two
lines" IN DATABASE notes SET work_mem = '4MB';
REVOKE TEMPORARY ON DATABASE notes FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE notes TO "two
lines";
"#;

/// The database-level state of `db`: owner, comment, connection limit, grants, settings.
fn database_properties(lab: &Lab, db: &str) -> String {
    lab.pg.sql(
        "postgres",
        &format!(
            "SELECT pg_get_userbyid(d.datdba), shobj_description(d.oid, 'pg_database'), \
             d.datconnlimit, \
             (SELECT string_agg(a::text, ',' ORDER BY a::text) FROM unnest(d.datacl) a), \
             (SELECT string_agg(coalesce(r.rolname, '*') || ':' || array_to_string(s.setconfig, '|'), \
                                ',' ORDER BY r.rolname NULLS FIRST) \
                FROM pg_db_role_setting s LEFT JOIN pg_roles r ON r.oid = s.setrole \
               WHERE s.setdatabase = d.oid) \
             FROM pg_database d WHERE d.datname = {};",
            quote_literal(db)
        ),
    )
}

#[test]
fn restore_gives_back_database_level_entries_that_span_lines() {
    let lab = Lab::new(7, |p| p.databases = Some(vec!["notes".into()]));
    lab.pg.sql("postgres", MULTILINE_PROPERTIES_SQL);
    lab.pg.sql(
        "notes",
        "CREATE TABLE public.n (id int); INSERT INTO public.n VALUES (1);",
    );
    let before = database_properties(&lab, "notes");
    assert!(before.contains("Second line; with 'quotes'"), "{before}");
    assert!(before.contains("two\nlines\"=Tc/notes_owner"), "{before}");
    assert!(before.contains("two\nlines:work_mem=4MB"), "{before}");
    backup_ok(&lab);

    lab.pg.sql("postgres", "DROP DATABASE notes;");
    let run = lab.run("restore.sh", &["--db", "notes"]);
    run.assert_code(0);
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);
    assert_eq!(database_properties(&lab, "notes"), before);

    // The same through a swap, and into a database of another name.
    lab.pg
        .sql("postgres", "COMMENT ON DATABASE notes IS 'changed';");
    lab.run("restore.sh", &["--db", "notes", "--drop-old"])
        .assert_code(0);
    assert_eq!(database_properties(&lab, "notes"), before);
    lab.run("restore.sh", &["--db", "notes", "--into", "notes copy"])
        .assert_code(0);
    assert_eq!(database_properties(&lab, "notes copy"), before);
}

/// Rewrites the middle byte of `dump` and puts its modification time back: same size, same
/// time, other content; only a hash can tell.
fn corrupt_keeping_size_and_time(dump: &Path) {
    let mtime = fs::metadata(dump).unwrap().modified().unwrap();
    let mut bytes = fs::read(dump).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x55;
    fs::write(dump, &bytes).unwrap();
    fs::File::options()
        .write(true)
        .open(dump)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
}

#[test]
fn retention_does_not_hash_kept_dumps_again_and_the_drill_does() {
    let lab = Lab::new(3, |p| p.databases = Some(vec!["shop".into()]));
    make_shop(&lab);
    backup_ok(&lab);
    backup_ok(&lab);
    let dumps = lab.dumps("shop");
    corrupt_keeping_size_and_time(&dumps[0]);
    // The kept dumps were not re-read: the altered one still counts as valid.
    let record = backup_ok(&lab);
    assert!(record.invalid_dumps.is_empty(), "{record:?}");
    // The drill hashes every kept dump and names it.
    let drill = lab.run("drill.sh", &[]);
    drill.assert_code(1);
    let report = DrillReport::parse(&drill.stdout).unwrap();
    let invalid: Vec<_> = report
        .dumps
        .iter()
        .filter(|d| d.status != DumpValidity::Valid)
        .collect();
    assert_eq!(invalid.len(), 1, "{report:?}");
    assert!(
        dumps[0].ends_with(&invalid[0].file),
        "{invalid:?} {:?}",
        dumps[0]
    );

    // A manifest without the recorded time (written before it was recorded) is hashed.
    let manifest = dumps[1].with_extension("manifest");
    let text = fs::read_to_string(&manifest).unwrap();
    assert!(text.contains("\nmtime\t"), "{text}");
    let without: String = text
        .lines()
        .filter(|l| !l.starts_with("mtime\t"))
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(&manifest, without).unwrap();
    corrupt_keeping_size_and_time(&dumps[1]);
    let record = backup_ok(&lab);
    let reported: Vec<(&str, &str)> = record
        .invalid_dumps
        .iter()
        .map(|d| (d.file.as_str(), d.reason.as_str()))
        .collect();
    assert_eq!(reported.len(), 1, "{reported:?}");
    assert!(dumps[1].ends_with(reported[0].0), "{reported:?}");
    assert!(reported[0].1.contains("corrupted"), "{reported:?}");
}
