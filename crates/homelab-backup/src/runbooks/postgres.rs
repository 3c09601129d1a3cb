//! The postgres-backup, postgres-restore and postgres-connectivity runbooks; pure text.

use std::fmt::Write as _;

use super::{MEASURED_RESTORE, code, megabytes, seconds, table};
use crate::alerts::BACKUP_ALERT_NAME;
use crate::postgres::{
    BACKUP_SCRIPT, DRILL_SCRIPT, EXIT_LOCKED, LIST_SCRIPT, PostgresBackupParams, RESTORE_SCRIPT,
    encode_database_name,
};

/// The names and paths of the lab's PostgreSQL, as the plan renders them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresRunbookParams {
    pub namespace: String,
    pub statefulset: String,
    /// The server's pod (`<statefulset>-0`).
    pub pod: String,
    /// The PostgreSQL container's name in that pod.
    pub container: String,
    pub service: String,
    pub port: u16,
    /// The cluster's DNS domain (`cluster.local` unless changed).
    pub cluster_domain: String,
    /// PVC holding the server's data directory.
    pub data_pvc: String,
    /// PVC the dumps are written to.
    pub backup_pvc: String,
    pub backup_cronjob: String,
    /// The CronJob's schedule (cron syntax, the cluster's time zone: UTC on k3s by default).
    pub schedule: String,
    /// ConfigMap holding the scripts of [`crate::postgres::scripts`].
    pub scripts_configmap: String,
    /// Directory the scripts are mounted at in the backup container.
    pub script_dir: String,
    /// The image the server and the backup Jobs run (`postgres:<major>`).
    pub image: String,
    pub superuser: String,
    /// Secret holding the superuser's password, and its key.
    pub superuser_secret: String,
    pub superuser_secret_key: String,
    pub databases: Vec<DatabaseAccess>,
    pub backup: PostgresBackupParams,
    /// Age in hours after which the P1 backup alert fires.
    pub alert_max_age_hours: u32,
}

/// A database applications connect to, with the Secret holding its owner's password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseAccess {
    pub name: String,
    pub owner: String,
    pub secret: String,
    pub secret_key: String,
}

impl PostgresRunbookParams {
    fn host(&self) -> String {
        format!(
            "{}.{}.svc.{}",
            self.service, self.namespace, self.cluster_domain
        )
    }

    fn script(&self, name: &str) -> String {
        format!("{}/{name}", self.script_dir.trim_end_matches('/'))
    }

    fn backup_dir(&self) -> &str {
        self.backup.backup_dir.trim_end_matches('/')
    }

    fn kubectl(&self) -> String {
        format!("kubectl -n {}", self.namespace)
    }

    /// A database to use in examples: the first configured one.
    fn example_db(&self) -> &str {
        self.databases
            .first()
            .map(|d| d.name.as_str())
            .or_else(|| {
                self.backup
                    .databases
                    .as_ref()
                    .and_then(|d| d.first().map(String::as_str))
            })
            .unwrap_or("app")
    }

    fn databases_line(&self) -> String {
        match &self.backup.databases {
            None => {
                let mut s = "every database that is not a template and accepts connections, found at each run"
                    .to_string();
                if !self.databases.is_empty() {
                    let names: Vec<String> = self.databases.iter().map(|d| code(&d.name)).collect();
                    let _ = write!(s, " (today: {} and `postgres`)", names.join(", "));
                }
                s
            }
            Some(list) => list.iter().map(|d| code(d)).collect::<Vec<_>>().join(", "),
        }
    }

    fn create_job_lines(&self, out: &mut String, job: &str, args: &str) {
        let k = self.kubectl();
        let _ = writeln!(out, "```sh");
        let _ = writeln!(
            out,
            "{k} create job {job} --from=cronjob/{} --dry-run=client -o yaml > {job}.yaml",
            self.backup_cronjob
        );
        let _ = writeln!(
            out,
            "# edit {job}.yaml: set the container's command to  [\"bash\", \"{}\"{args}]",
            self.script(RESTORE_SCRIPT)
        );
        let _ = writeln!(out, "kubectl apply -f {job}.yaml");
        let _ = writeln!(out, "{k} logs -f job/{job}");
        let _ = writeln!(out, "```");
    }
}

fn facts_table(out: &mut String, p: &PostgresRunbookParams) {
    let keep = p.backup.keep;
    table(
        out,
        &["what", "where"],
        &[
            vec![
                "Server".into(),
                format!(
                    "StatefulSet {} (pod {}, container {}) in namespace {}, image {}",
                    code(&p.statefulset),
                    code(&p.pod),
                    code(&p.container),
                    code(&p.namespace),
                    code(&p.image)
                ),
            ],
            vec!["Data volume".into(), format!("PVC {}", code(&p.data_pvc))],
            vec![
                "Backup job".into(),
                format!(
                    "CronJob {}, schedule {} (UTC)",
                    code(&p.backup_cronjob),
                    code(&p.schedule)
                ),
            ],
            vec![
                "Backup volume".into(),
                format!(
                    "PVC {} mounted at {} in the backup Jobs",
                    code(&p.backup_pvc),
                    code(p.backup_dir())
                ),
            ],
            vec![
                "Scripts".into(),
                format!(
                    "ConfigMap {} mounted at {}: {}, {}, {}, {}",
                    code(&p.scripts_configmap),
                    code(&p.script_dir),
                    code(BACKUP_SCRIPT),
                    code(RESTORE_SCRIPT),
                    code(DRILL_SCRIPT),
                    code(LIST_SCRIPT)
                ),
            ],
            vec!["Databases dumped".into(), p.databases_line()],
            vec![
                "Retention".into(),
                format!("the newest {keep} valid dumps per database, and of the globals"),
            ],
            vec![
                "Status records".into(),
                format!(
                    "{} (last success), {} (last attempt), {} (last drill)",
                    code(&p.backup.status_file),
                    code(&p.backup.last_run_file),
                    code(&p.backup.drill_report_file)
                ),
            ],
            vec![
                "Credentials".into(),
                format!(
                    "superuser {}, password in Secret {} key {}",
                    code(&p.superuser),
                    code(&p.superuser_secret),
                    code(&p.superuser_secret_key)
                ),
            ],
        ],
    );
}

/// `docs/runbooks/postgres-backup.md`: what is backed up, how to check it, what to do when the
/// P1 backup alert fires.
pub fn postgres_backup(p: &PostgresRunbookParams) -> String {
    let mut o = String::new();
    let k = p.kubectl();
    let dir = p.backup_dir();
    let db = p.example_db();
    let enc = encode_database_name(db);
    let _ = writeln!(o, "# Runbook: PostgreSQL backups\n");
    let _ = writeln!(
        o,
        "The lab dumps its PostgreSQL databases on a schedule to an NFS volume, checks every dump \
         as soon as it is written, and proves on demand that the dumps restore. This page says \
         where everything is, how to check it, and what to do when the backup alert fires.\n"
    );
    let _ = writeln!(o, "## Facts\n");
    facts_table(&mut o, p);

    let _ = writeln!(o, "## What a backup run does\n");
    let _ = writeln!(
        o,
        "1. Takes the lock {} (a second run started meanwhile exits with status {EXIT_LOCKED}).",
        code(&format!("{dir}/.lock"))
    );
    let _ = writeln!(
        o,
        "2. Dumps the globals (roles with their password hashes, tablespaces) with \
         `pg_dumpall --globals-only` into {}.",
        code(&format!("{dir}/globals/globals.<UTC time>.sql"))
    );
    let recorded = match p.backup.table_checksums {
        crate::postgres::TableChecksums::RowHashes => {
            "counts the rows of every table and sums a hash of every row"
        }
        crate::postgres::TableChecksums::RowCountsOnly => {
            "counts the rows of every table (row counts only, `verify: row-counts`: lost or extra \
             rows are caught, a changed value is not; set `verify: checksums` to hash every row)"
        }
    };
    let _ = writeln!(
        o,
        "3. For each database: opens a session that exports a snapshot, runs `pg_dump -Fc \
         --snapshot=<it>` and, inside the same snapshot, {recorded}. The dump and the recorded \
         figures therefore see exactly the same data, even while applications write."
    );
    let _ = writeln!(
        o,
        "4. Verifies the new dump before it gets its name: `pg_restore --list` reads it back and \
         its size is at least {} bytes; then writes its manifest (size, SHA-256, per-table rows \
         and checksums) and renames both into place, e.g. {}.",
        p.backup.min_dump_bytes,
        code(&format!("{dir}/db/{enc}/{enc}.20261101T020000Z.dump"))
    );
    let _ = writeln!(
        o,
        "5. Only when every dump of the run succeeded: keeps the newest {} valid dumps per \
         database and deletes older ones. A dump whose size or SHA-256 no longer matches its \
         manifest is reported, left in place and not counted. Nothing is deleted in a run where \
         any dump failed, and the last valid dump is never deleted.",
        p.backup.keep
    );
    let _ = writeln!(
        o,
        "6. Writes {} and {} and exits 0 only if all of the above held. Kubernetes records that \
         as the CronJob's last successful time, which the alert below watches.\n",
        code(&p.backup.status_file),
        code(&p.backup.last_run_file)
    );

    let _ = writeln!(o, "## Check the backups\n");
    let _ = writeln!(o, "```sh");
    let _ = writeln!(
        o,
        "homelab backup list          # dumps with ages and sizes, last run, last drill"
    );
    let _ = writeln!(
        o,
        "homelab backup drill         # restore the latest dumps into scratch databases and compare"
    );
    let _ = writeln!(
        o,
        "{k} get cronjob {}            # LAST SCHEDULE, and whether it is suspended",
        p.backup_cronjob
    );
    let _ = writeln!(o, "{k} get jobs --sort-by=.metadata.creationTimestamp");
    let _ = writeln!(o, "```\n");
    let _ = writeln!(
        o,
        "The drill checks the SHA-256 of every kept dump, restores the newest dump of each \
         database into a scratch database, compares every table's row count and checksum with \
         those recorded at dump time, drops the scratch database, and fails on any difference. \
         Run it after changing the backup setup and at least monthly.\n"
    );

    let _ = writeln!(o, "## Run a backup now\n");
    let _ = writeln!(o, "```sh");
    let _ = writeln!(
        o,
        "homelab backup postgres      # starts a Job from the CronJob and follows it to the end"
    );
    let _ = writeln!(o, "# without the homelab CLI:");
    let _ = writeln!(
        o,
        "{k} create job --from=cronjob/{} manual-backup-$(date +%s)",
        p.backup_cronjob
    );
    let _ = writeln!(o, "{k} logs -f job/manual-backup-<the number printed>");
    let _ = writeln!(o, "```\n");
    let _ = writeln!(
        o,
        "Take one before an upgrade of PostgreSQL or of an application that migrates its \
         schema. The log's last line starts with `HOMELAB-BACKUP` and holds the run record.\n"
    );

    let _ = writeln!(
        o,
        "## Alert: {BACKUP_ALERT_NAME} (P1)\n\nFires when the CronJob {} has had no successful \
         run for more than {} hours (or never had one). The newest verified dump is getting \
         old: a disaster now would lose more than a day of data.\n",
        code(&format!("{}/{}", p.namespace, p.backup_cronjob)),
        p.alert_max_age_hours
    );
    let _ = writeln!(
        o,
        "1. Look at the last Jobs and the log of the newest one:\n\n   ```sh\n   {k} get jobs \
         --sort-by=.metadata.creationTimestamp\n   {k} logs job/<newest job>\n   ```\n"
    );
    let _ = writeln!(o, "2. Find the first `error:` line and act on it:\n");
    table(
        &mut o,
        &["message", "cause", "fix"],
        &[
            vec![
                "`cannot list the databases` / `could not connect`".into(),
                format!("the server is down or unreachable"),
                format!(
                    "`{k} get pod {}`; see [postgres-connectivity](postgres-connectivity.md)",
                    p.pod
                ),
            ],
            vec![
                "`No space left on device`, `directory full or read-only?`".into(),
                format!("the backup volume {} is full", code(&p.backup_pvc)),
                format!(
                    "free space on the NAS or lower `keep`; the previous dumps are intact \
                     (a failed run deletes nothing)"
                ),
            ],
            vec![
                "`cannot write to the backup directory`, `Read-only file system`".into(),
                "the NFS share is read-only or not mounted".into(),
                "check the NAS and the NFS export; see [nfs-restore](nfs-restore.md)".into(),
            ],
            vec![
                "`pg_dump failed ... permission denied`".into(),
                "the backup role lacks rights".into(),
                format!(
                    "the Job must connect as the superuser {} (Secret {})",
                    code(&p.superuser),
                    code(&p.superuser_secret)
                ),
            ],
            vec![
                format!("exit status {EXIT_LOCKED}, `another backup has held ... .lock`"),
                "a previous run still runs, or died without cleaning up".into(),
                format!(
                    "if `{k} get jobs` shows none running: the next run after {} hours breaks \
                     the stale lock by itself; sooner, delete the `.lock` directory in the \
                     volume's directory on the NAS ([nfs-restore](nfs-restore.md))",
                    p.backup.lock_stale_after_secs / 3600
                ),
            ],
            vec![
                "no Job at all".into(),
                "the CronJob is suspended, or its pods cannot start".into(),
                format!(
                    "`{k} get cronjob {}` (SUSPEND), `{k} describe job <job>`, `{k} get events`",
                    p.backup_cronjob
                ),
            ],
        ],
    );
    let _ = writeln!(
        o,
        "3. Fix the cause, run a backup now (above) and watch it finish with \
         `backup finished`. The alert resolves on the next evaluation.\n"
    );

    let _ = writeln!(o, "## Notes\n");
    let _ = writeln!(
        o,
        "- The globals dump holds every role's password hash and the database dumps hold every \
         row: the files are written mode 0600; keep the NFS share restricted to the cluster \
         nodes."
    );
    let _ = writeln!(
        o,
        "- Dumps are PostgreSQL's custom format: compressed, restorable table by table, and \
         readable only with `pg_restore` of the same or a newer major version."
    );
    let _ = writeln!(
        o,
        "- Space: about {} times one day's dumps per database, plus the NAS's own snapshots of \
         the share. A new dump less than {}% the size of the previous one is reported as a \
         warning in the run record.",
        p.backup.keep, p.backup.shrink_warn_percent
    );
    let _ = writeln!(
        o,
        "- To restore, see [postgres-restore](postgres-restore.md)."
    );
    o
}

/// `docs/runbooks/postgres-restore.md`: restoring a database, the globals, or a whole server.
pub fn postgres_restore(p: &PostgresRunbookParams) -> String {
    let mut o = String::new();
    let k = p.kubectl();
    let dir = p.backup_dir();
    let db = p.example_db();
    let enc = encode_database_name(db);
    let m = MEASURED_RESTORE;
    let _ = writeln!(o, "# Runbook: restore PostgreSQL\n");
    let _ = writeln!(
        o,
        "Every restore goes into a new database first, is checked table by table against the \
         row counts and checksums recorded when the dump was taken, and only then replaces the \
         original. The original database is renamed, not dropped, until you drop it.\n"
    );
    let _ = writeln!(o, "## Facts\n");
    facts_table(&mut o, p);

    let _ = writeln!(o, "## How long it takes\n");
    let _ = writeln!(
        o,
        "Measured with `scripts/bench-backup` on {} ({}):\n",
        m.machine, m.measured_on
    );
    table(
        &mut o,
        &[
            "database",
            "size on disk",
            "dump",
            "restore",
            "check",
            "total",
        ],
        &[vec![
            m.database.to_string(),
            megabytes(m.database_bytes),
            megabytes(m.dump_bytes),
            seconds(m.restore_millis),
            seconds(m.check_millis),
            seconds(m.restore_millis + m.check_millis),
        ]],
    );
    let _ = writeln!(
        o,
        "Median of {} runs. Restore time follows the size of the data and its indexes, not \
         the size of the dump (pgbench's rows compress unusually well); over NFS and on a \
         slower node expect more. `homelab backup drill` prints the times for your own \
         databases (`restoreSeconds` and `verifySeconds` with `--output json`).\n",
        m.runs
    );

    let _ = writeln!(o, "## Pick the procedure\n");
    table(
        &mut o,
        &["situation", "do"],
        &[
            vec![
                "some rows or a table were deleted or damaged; the rest of the database is fine".into(),
                "[restore beside the original](#restore-beside-the-original) and copy the rows back".into(),
            ],
            vec![
                "a database is dropped, corrupted, or a migration went wrong".into(),
                "[restore and swap in](#restore-and-swap-in)".into(),
            ],
            vec![
                format!(
                    "the server's volume {} is lost (new, empty server)",
                    code(&p.data_pvc)
                ),
                "[rebuild the whole server](#rebuild-the-whole-server)".into(),
            ],
            vec![
                "you only want to know that the backups work".into(),
                "`homelab backup drill`".into(),
            ],
        ],
    );

    let _ = writeln!(o, "## Choose the dump\n");
    let _ = writeln!(o, "```sh\nhomelab backup list\n```\n");
    let _ = writeln!(
        o,
        "Dumps are named {} and live in {} (in file names, characters other than letters, \
         digits, `_` and `-` are written as `%XX`). Without `--from`, the newest valid dump is \
         used; a newer one that fails its size or SHA-256 check is skipped with a warning. To go \
         back further, pass its file name: {}.\n",
        code("<database>.<YYYYMMDDTHHMMSSZ>.dump"),
        code(&format!("{dir}/db/<database>/")),
        code(&format!("--from {enc}.20261101T020000Z.dump"))
    );

    let _ = writeln!(o, "## Restore beside the original\n");
    let _ = writeln!(o, "```sh");
    let _ = writeln!(o, "homelab restore postgres --db {db} --into {db}_restored");
    let _ = writeln!(o, "```\n");
    let _ = writeln!(
        o,
        "`{db}` is not touched. Compare and copy what you need, e.g. from a shell in the server \
         pod (`{k} exec -it {} -c {} -- psql -U {}`):\n",
        p.pod, p.container, p.superuser
    );
    let _ = writeln!(o, "```sh");
    let _ = writeln!(
        o,
        "{k} exec {} -c {} -- sh -c 'pg_dump -U {} --data-only -t <table> {db}_restored | psql -U {} {db}'",
        p.pod, p.container, p.superuser, p.superuser
    );
    let _ = writeln!(o, "```\n");
    let _ = writeln!(
        o,
        "(that appends the restored rows; delete the damaged ones first, or copy into a new \
         table and merge with SQL). Drop the copy when done: `DROP DATABASE {db}_restored;`.\n"
    );

    let _ = writeln!(o, "## Restore and swap in\n");
    let _ = writeln!(
        o,
        "1. Stop the applications that write to the database if you can (scale their \
         Deployment to 0); the swap closes their connections anyway."
    );
    let _ = writeln!(
        o,
        "2. Restore:\n\n   ```sh\n   homelab restore postgres --db {db}            # newest valid dump\n   \
         homelab restore postgres --db {db} --from {enc}.20261101T020000Z.dump\n   ```\n"
    );
    let _ = writeln!(
        o,
        "   The restore creates `homelab_restore_<time>`, restores into it, checks every table, \
         then blocks new connections to `{db}`, closes the open ones, and in one transaction \
         renames `{db}` to `{db}_before_restore_<time>` and the restored database to `{db}`. \
         The owner, database settings and grants of the dump are applied before the swap. If \
         anything fails before the swap, `{db}` is unchanged and the partial restore is \
         dropped.\n"
    );
    let _ = writeln!(
        o,
        "3. Start the applications again and check them. Then drop the previous database (the \
         restore prints its exact name):\n\n   ```sh\n   {k} exec {} -c {} -- psql -U {} -c \
         'DROP DATABASE \"{db}_before_restore_<time>\"'\n   ```\n",
        p.pod, p.container, p.superuser
    );
    let _ = writeln!(
        o,
        "Without the homelab CLI, run the restore script in a Job made from the backup CronJob:\n"
    );
    p.create_job_lines(
        &mut o,
        &format!("restore-{}", sanitize_job(db)),
        &format!(", \"--db\", \"{db}\", \"--latest\""),
    );
    o.push('\n');

    let _ = writeln!(o, "## Rebuild the whole server\n");
    let _ = writeln!(
        o,
        "When {} is lost, the StatefulSet starts an empty server with the superuser from \
         Secret {} and the databases and owners of the spec.\n",
        code(&p.data_pvc),
        code(&p.superuser_secret)
    );
    let _ = writeln!(
        o,
        "1. Wait until `{k} get pod {}` is Running and Ready.",
        p.pod
    );
    let _ = writeln!(
        o,
        "2. Restore the roles first (their password hashes included):\n\n   ```sh\n   homelab \
         restore postgres --globals\n   ```\n\n   Errors saying a role `already exists` are \
         expected for the roles the server created at start and are reported, not fatal. \
         Every role gets the password it had at dump time, the superuser {} included: if a \
         password Secret changed since, set the password again from it. Without the CLI, use \
         the Job above with the arguments `\"--globals\", \"--latest\"`.",
        code(&p.superuser)
    );
    let _ = writeln!(
        o,
        "3. Restore each database, swapping in over the empty one:\n"
    );
    let _ = writeln!(o, "   ```sh");
    let names: Vec<&str> = match &p.backup.databases {
        Some(list) => list.iter().map(String::as_str).collect(),
        None => p.databases.iter().map(|d| d.name.as_str()).collect(),
    };
    for name in &names {
        let _ = writeln!(o, "   homelab restore postgres --db {name} --drop-old");
    }
    if names.is_empty() {
        let _ = writeln!(o, "   homelab restore postgres --db <name> --drop-old");
    }
    let _ = writeln!(o, "   ```\n");
    let _ = writeln!(
        o,
        "   `--drop-old` drops the empty database the server created, once the restored one \
         has replaced it."
    );
    let _ = writeln!(
        o,
        "4. Run `homelab backup drill`, then `homelab backup postgres` to start a new series \
         of dumps from the rebuilt server.\n"
    );

    let _ = writeln!(o, "## By hand, without the scripts\n");
    let _ = writeln!(
        o,
        "If neither the CLI nor the backup Job can run, copy a dump out of the NAS share (see \
         [nfs-restore](nfs-restore.md) for the directory of {}) and restore it with the tools \
         in the server pod:\n",
        code(&p.backup_pvc)
    );
    let _ = writeln!(o, "```sh");
    let _ = writeln!(
        o,
        "{k} cp {enc}.20261101T020000Z.dump {}:/tmp/restore.dump -c {}",
        p.pod, p.container
    );
    let _ = writeln!(
        o,
        "{k} exec {} -c {} -- createdb -U {} -T template0 {db}_restored",
        p.pod, p.container, p.superuser
    );
    let _ = writeln!(
        o,
        "{k} exec {} -c {} -- pg_restore -U {} --exit-on-error -d {db}_restored /tmp/restore.dump",
        p.pod, p.container, p.superuser
    );
    let _ = writeln!(o, "```\n");
    let _ = writeln!(
        o,
        "The dump's manifest ({}) lists the row count of every table at dump time: compare \
         with `SELECT count(*) FROM <table>` before renaming the databases by hand \
         (`ALTER DATABASE ... RENAME TO ...` while nobody is connected).\n",
        code(&format!("{enc}.20261101T020000Z.manifest"))
    );

    let _ = writeln!(o, "## When the restore fails\n");
    table(
        &mut o,
        &["message", "what to do"],
        &[
            vec![
                "`no dumps of database ...; databases with dumps: ...`".into(),
                "check the name; the message lists the databases that have dumps".into(),
            ],
            vec![
                "`refusing ...: size is ... (truncated ...)` or `SHA-256 is ... (corrupted)`"
                    .into(),
                "the file was damaged after it was written; pick an older dump with `--from`, \
                 or get an intact copy from the NAS's snapshots ([nfs-restore](nfs-restore.md))"
                    .into(),
            ],
            vec![
                "`role ... does not exist`".into(),
                "restore the globals first (`--globals`), then the database".into(),
            ],
            vec![
                "`... table(s) differ from the backup's record`".into(),
                "the restored data is not what was dumped: the original stays in place; run \
                 `homelab backup drill` and try an older dump"
                    .into(),
            ],
            vec![
                "`cannot swap ...`".into(),
                "something kept connecting to the database during ten attempts; the checked \
                 restore is kept under the name printed; stop the clients and swap by hand with \
                 `ALTER DATABASE ... RENAME TO ...`"
                    .into(),
            ],
        ],
    );
    o
}

fn sanitize_job(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let s = s.trim_matches('-');
    if s.is_empty() {
        "db".into()
    } else {
        s.chars().take(40).collect()
    }
}

/// `docs/runbooks/postgres-connectivity.md`: how applications and people reach the server.
pub fn postgres_connectivity(p: &PostgresRunbookParams) -> String {
    let mut o = String::new();
    let k = p.kubectl();
    let host = p.host();
    let _ = writeln!(o, "# Runbook: connect to PostgreSQL\n");
    let _ = writeln!(o, "## Address\n");
    table(
        &mut o,
        &["from", "host", "port"],
        &[
            vec![
                "any pod in the cluster".into(),
                code(&host),
                p.port.to_string(),
            ],
            vec![
                format!("a pod in namespace {}", code(&p.namespace)),
                code(&p.service),
                p.port.to_string(),
            ],
            vec![
                "your workstation".into(),
                format!(
                    "`localhost` through `{k} port-forward svc/{} {}:{}`",
                    p.service, p.port, p.port
                ),
                p.port.to_string(),
            ],
        ],
    );
    let _ = writeln!(o, "## Databases and credentials\n");
    let mut rows = vec![vec![
        "(superuser)".to_string(),
        code(&p.superuser),
        format!(
            "{} / {}",
            code(&p.superuser_secret),
            code(&p.superuser_secret_key)
        ),
    ]];
    for d in &p.databases {
        rows.push(vec![
            code(&d.name),
            code(&d.owner),
            format!("{} / {}", code(&d.secret), code(&d.secret_key)),
        ]);
    }
    table(
        &mut o,
        &[
            "database",
            "user",
            &format!("Secret / key (in namespace `{}`)", p.namespace),
        ],
        &rows,
    );
    let _ = writeln!(o, "Read a password:\n");
    let _ = writeln!(o, "```sh");
    let (secret, key) = p
        .databases
        .first()
        .map(|d| (d.secret.as_str(), d.secret_key.as_str()))
        .unwrap_or((p.superuser_secret.as_str(), p.superuser_secret_key.as_str()));
    let _ = writeln!(
        o,
        "{k} get secret {secret} -o jsonpath='{{.data.{key}}}' | base64 -d; echo"
    );
    let _ = writeln!(o, "```\n");
    let _ = writeln!(
        o,
        "Secrets are namespaced: an application in another namespace reads the password from a \
         Secret in its own namespace. Never paste a password into a manifest or into git.\n"
    );

    let _ = writeln!(o, "## Connection strings\n");
    let _ = writeln!(o, "```text");
    for d in &p.databases {
        let _ = writeln!(
            o,
            "postgresql://{}:<password>@{host}:{}/{}",
            d.owner, p.port, d.name
        );
    }
    let _ = writeln!(
        o,
        "host={host} port={} dbname=<database> user=<user> password=<password>",
        p.port
    );
    let _ = writeln!(o, "```\n");

    let _ = writeln!(o, "## Test a connection\n");
    let db = p.databases.first();
    let (user, dbname) = db
        .map(|d| (d.owner.as_str(), d.name.as_str()))
        .unwrap_or((p.superuser.as_str(), "postgres"));
    let _ = writeln!(o, "From inside the cluster, with a throw-away pod:\n");
    let _ = writeln!(o, "```sh");
    let _ = writeln!(
        o,
        "kubectl run psql-test -n default --rm -it --restart=Never --image={} -- \\\n  psql \"host={host} port={} user={user} dbname={dbname}\"",
        p.image, p.port
    );
    let _ = writeln!(o, "```\n");
    let _ = writeln!(
        o,
        "From the server pod itself (no password needed on the local socket):\n"
    );
    let _ = writeln!(
        o,
        "```sh\n{k} exec -it {} -c {} -- psql -U {}\n```\n",
        p.pod, p.container, p.superuser
    );

    let _ = writeln!(o, "## When it does not connect\n");
    table(
        &mut o,
        &["symptom", "check"],
        &[
            vec![
                "`could not translate host name`".into(),
                format!(
                    "the Service exists: `{k} get svc {}`; DNS works: `kubectl run -it --rm dns --image=busybox --restart=Never -- nslookup {host}`",
                    p.service
                ),
            ],
            vec![
                "`Connection refused` / timeout".into(),
                format!(
                    "the pod is Ready: `{k} get pod {}`; the Service has an endpoint: `{k} get endpointslices -l kubernetes.io/service-name={}`; its log: `{k} logs {} -c {}`",
                    p.pod, p.service, p.pod, p.container
                ),
            ],
            vec![
                "`password authentication failed`".into(),
                "the application reads the right Secret and key (table above); the role exists: `\\du` in psql".into(),
            ],
            vec![
                "`database ... does not exist`".into(),
                "the database is in the spec; after a restore check `\\l` for `_before_restore_` leftovers".into(),
            ],
            vec![
                "`too many clients already`".into(),
                "`SELECT datname, count(*) FROM pg_stat_activity GROUP BY 1;` and the applications' pool sizes".into(),
            ],
            vec![
                "pod Pending or restarting".into(),
                format!(
                    "the data volume is bound: `{k} get pvc {}`; see [nfs-restore](nfs-restore.md) for NFS problems",
                    p.data_pvc
                ),
            ],
        ],
    );
    let _ = writeln!(o, "## A new application\n");
    let _ = writeln!(
        o,
        "Add the database and its owner to `homelab.yaml` (`postgres.databases`) with a secret \
         reference for the password, render and apply: the server creates both on start, the \
         backups pick the database up at their next run, and this page lists it."
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_names_are_dns_labels() {
        assert_eq!(sanitize_job("My_DB"), "my-db");
        assert_eq!(sanitize_job("__"), "db");
    }
}
