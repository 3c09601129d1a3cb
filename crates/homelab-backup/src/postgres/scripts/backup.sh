#!/usr/bin/env bash
# shellcheck disable=SC2317 # functions run from traps
# homelab PostgreSQL backup. Dumps every database in custom format plus the globals (roles,
# tablespaces), verifies each dump as soon as it is written, records per-table row counts and
# checksums taken in the very snapshot the dump reads, keeps the newest valid dumps, and writes
# the status records. Exit 0 means every dump of this run is written and verified.
# Rendered by homelab from homelab.yaml.
set -uo pipefail
HB_HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd) || exit 2
# shellcheck source=lib.sh
. "$HB_HERE/lib.sh"

usage() {
  cat <<EOF
usage: backup.sh

Dumps the databases and the globals of the PostgreSQL server named by PGHOST/PGPORT/PGUSER/
PGPASSWORD into $HB_BACKUP_DIR, verifies them, keeps the newest $HB_KEEP valid dumps per
database and writes $HB_STATUS_FILE (last success) and $HB_LAST_RUN_FILE (last attempt).
The last line on stdout is 'HOMELAB-BACKUP <JSON run record>'.

exit status: 0 all dumps written and verified; 1 a dump, its verification or the clean-up
failed (nothing was deleted when a dump failed); 2 bad arguments; 3 another backup holds the lock.
EOF
}

case $# in
  0) ;;
  1) [[ $1 == -h || $1 == --help ]] && { usage; exit 0; }
     hb_usage_error "unknown argument '$1': backup.sh takes no arguments" ;;
  *) hb_usage_error "backup.sh takes no arguments, got $#" ;;
esac

RUN_STARTED=$(hb_epoch)
STAMP=$(hb_stamp "$RUN_STARTED")
ERRORS=()
WARNINGS=()
DB_RECORDS=()
INVALID=()
DELETED=()
GLOBALS_RECORD=null
DUMP_FAILED=0
LOCKED=0
LOCK_DIR=$HB_BACKUP_DIR/.lock
WORK=''
SESSION_PID=''
DUMP_PID=''

record_error() {
  ERRORS+=("$1")
  hb_log "error: $1"
}

record_warning() {
  WARNINGS+=("$1")
  hb_log "warning: $1"
}

run_record() {
  local result=$1 finished sep
  finished=$(hb_epoch)
  printf '{"format":%s,"kind":"backup","result":"%s","started_at":"%s","finished_at":"%s","duration_seconds":%s,' \
    "$HB_RECORD_FORMAT" "$result" "$(hb_iso "$RUN_STARTED")" "$(hb_iso "$finished")" "$((finished - RUN_STARTED))"
  printf '"backup_dir":%s,"keep":%s,"globals":%s,"databases":[' "$(hb_json_str "$HB_BACKUP_DIR")" "$HB_KEEP" "$GLOBALS_RECORD"
  sep=''
  for r in "${DB_RECORDS[@]}"; do
    printf '%s%s' "$sep" "$r"
    sep=','
  done
  printf '],"invalid_dumps":['
  sep=''
  for r in "${INVALID[@]}"; do
    printf '%s%s' "$sep" "$r"
    sep=','
  done
  printf '],"deleted":%s,"warnings":%s,"errors":%s}' \
    "$(hb_json_str_array "${DELETED[@]}")" "$(hb_json_str_array "${WARNINGS[@]}")" "$(hb_json_str_array "${ERRORS[@]}")"
}

# The partial files a backup run writes, into PARTIALS: dumps and manifests being written
# (db/<name>/ and globals/ belong to the backups alone) and the two run records' temporary files.
# Nothing else is matched: the drill writes its report beside them without taking the lock.
find_partials() {
  local f
  PARTIALS=()
  for f in "$HB_BACKUP_DIR"/globals/.*.partial "$HB_BACKUP_DIR"/db/*/.*.partial \
    "${HB_STATUS_FILE%/*}/.${HB_STATUS_FILE##*/}.partial" "${HB_LAST_RUN_FILE%/*}/.${HB_LAST_RUN_FILE##*/}.partial"; do
    [[ -f $f || -L $f ]] && PARTIALS+=("$f")
  done
}

# Removes partial files. $1 "leftovers": every one (at the start, under the lock: they are left by
# runs that stopped while writing, and each is reported); "own": only those this run created.
# A file that cannot be removed is an error of the run, never ignored.
remove_partials() {
  local which=$1 f err
  # Only a run that holds the lock may touch partial files: the others belong to the lock holder.
  ((LOCKED)) && [[ -n $WORK && -d $WORK ]] || return 0
  find_partials
  for f in "${PARTIALS[@]}"; do
    [[ $which == own && ! $f -nt $WORK ]] && continue
    if ! err=$(rm -f -- "$f" 2>&1); then
      record_error "cannot remove the partial file $f: ${err:-rm failed}; remove it by hand"
    elif [[ $which == leftovers ]]; then
      DELETED+=("$(hb_rel "$f")")
      record_warning "removed $(hb_rel "$f"), left by a run that stopped while writing it"
    else
      hb_log "removed $(hb_rel "$f"), not completed by this run"
    fi
  done
}

# Stops the dump and the checksum session, if running, and waits for them: nothing of this run
# writes any more once it returns.
stop_children() {
  local pid
  for pid in "$DUMP_PID" "$SESSION_PID"; do
    [[ -n $pid ]] || continue
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  DUMP_PID=''
  SESSION_PID=''
}

cleanup() {
  stop_children
  remove_partials own
  [[ -n $WORK ]] && rm -rf -- "$WORK"
  ((LOCKED)) && rm -rf -- "$LOCK_DIR"
  LOCKED=0
}

# Writes the records, prints the run record and exits with $2.
finish() {
  local result=$1 code=$2 record nerrors=${#ERRORS[@]}
  stop_children
  remove_partials own
  if [[ $result == success ]] && ((${#ERRORS[@]} > nerrors)); then
    result=failure
    code=1
  fi
  record=$(run_record "$result")
  if ! hb_write_atomic "$HB_LAST_RUN_FILE" "$record"; then
    hb_log "error: cannot write $HB_LAST_RUN_FILE"
    if [[ $result == success ]]; then
      result=failure
      code=1
      ERRORS+=("cannot write $HB_LAST_RUN_FILE")
      record=$(run_record failure)
    fi
  fi
  if [[ $result == success ]] && ! hb_write_atomic "$HB_STATUS_FILE" "$record"; then
    ERRORS+=("cannot write $HB_STATUS_FILE")
    hb_log "error: cannot write $HB_STATUS_FILE"
    record=$(run_record failure)
    hb_write_atomic "$HB_LAST_RUN_FILE" "$record"
    code=1
  fi
  printf 'HOMELAB-BACKUP %s\n' "$record"
  if ((code == 0)); then
    hb_log "backup finished: ${#DB_RECORDS[@]} database(s), ${#DELETED[@]} old file(s) removed"
  else
    hb_log "backup FAILED: ${ERRORS[*]}"
  fi
  cleanup
  trap - EXIT
  exit "$code"
}

acquire_lock() {
  local started pid host now err
  if ! err=$(mkdir -p -- "$HB_BACKUP_DIR" 2>&1); then
    record_error "cannot create the backup directory $HB_BACKUP_DIR: $err"
    return 1
  fi
  for _ in 1 2; do
    if err=$(mkdir -- "$LOCK_DIR" 2>&1); then
      LOCKED=1
      if ! printf '%s %s %s\n' "$RUN_STARTED" "$$" "${HOSTNAME:-unknown}" >"$LOCK_DIR/owner" 2>/dev/null; then
        record_error "cannot write to the backup directory $HB_BACKUP_DIR (read-only or full?)"
        return 1
      fi
      return 0
    fi
    if [[ ! -d $LOCK_DIR ]]; then
      record_error "cannot write to the backup directory $HB_BACKUP_DIR: $err"
      return 1
    fi
    started=''
    read -r started pid host <"$LOCK_DIR/owner" 2>/dev/null
    [[ $started =~ ^[0-9]+$ ]] || started=$(stat -c %Y -- "$LOCK_DIR" 2>/dev/null) || started=$RUN_STARTED
    now=$(hb_epoch)
    if ((now - started <= HB_LOCK_STALE_SECONDS)); then
      hb_log "error: another backup has held $LOCK_DIR since $(hb_iso "$started") (pid ${pid:-?} on ${host:-?}); not starting a second one"
      hb_log "if no backup is running, remove $LOCK_DIR"
      exit 3
    fi
    record_warning "removing a stale lock left by a backup started at $(hb_iso "$started") on ${host:-?}"
    rm -rf -- "$LOCK_DIR"
  done
  record_error "cannot take the lock $LOCK_DIR"
  return 1
}

# Lines of the psql session, up to the marker, into SESSION_LINES; fails when psql went away.
session_send() { printf '%s\n\\echo %s\n' "$1" "$HB_MARK" 2>/dev/null 1>&"$SESSION_IN"; }
session_reply() {
  local l
  SESSION_LINES=()
  while IFS= read -r -u "$SESSION_OUT" l; do
    [[ $l == "$HB_MARK" ]] && return 0
    SESSION_LINES+=("$l")
  done
  return 1
}
session_close() {
  [[ -n ${SESSION_IN-} ]] && exec {SESSION_IN}>&-
  [[ -n ${SESSION_OUT-} ]] && exec {SESSION_OUT}<&-
  SESSION_IN=''
  SESSION_OUT=''
  if [[ -n $SESSION_PID ]]; then
    kill "$SESSION_PID" 2>/dev/null
    wait "$SESSION_PID" 2>/dev/null
  fi
  SESSION_PID=''
}

last_error_line() {
  local f=$1 line last=''
  while IFS= read -r line; do [[ -n $line ]] && last=$line; done <"$f"
  printf '%s' "${last:-no error message}"
}

db_failed() {
  local db=$1 msg=$2 t0=$3
  DUMP_FAILED=1
  record_error "database $db: $msg"
  DB_RECORDS+=("$(printf '{"name":%s,"result":"failure","error":%s,"duration_seconds":%s}' \
    "$(hb_json_str "$db")" "$(hb_json_str "$msg")" "$(($(hb_epoch) - t0))")")
}

# Dumps database $1; appends its record to DB_RECORDS. Returns 1 on failure.
backup_database() {
  local db=$1 t0 enc dir base dump man tmp_dump tmp_man snap version rc err bytes sha line
  local j m r s ntables=0 rows=0 prev_bytes
  t0=$(hb_epoch)
  enc=$(hb_encode_name "$db")
  dir=$HB_BACKUP_DIR/db/$enc
  base=$enc.$STAMP
  dump=$dir/$base.dump
  man=$dir/$base.manifest
  tmp_dump=$dir/.$base.dump.partial
  tmp_man=$dir/.$base.manifest.partial
  hb_log "dumping database $db"
  if ! err=$(mkdir -p -- "$dir" 2>&1); then
    db_failed "$db" "cannot create $dir: $err" "$t0"
    return 1
  fi

  # The session that exports the snapshot stays open, in one transaction, until pg_dump is done:
  # pg_dump reads that snapshot and the checksum pass runs inside it, beside the dump.
  rm -f -- "$WORK/in" "$WORK/out"
  if ! mkfifo -- "$WORK/in" "$WORK/out"; then
    db_failed "$db" "cannot create the session pipes in $WORK" "$t0"
    return 1
  fi
  psql -X -q -A -t -w -F $'\t' -v ON_ERROR_STOP=1 -d "$(hb_conninfo "$db")" \
    <"$WORK/in" >"$WORK/out" 2>"$WORK/session.err" &
  SESSION_PID=$!
  exec {SESSION_IN}>"$WORK/in" {SESSION_OUT}<"$WORK/out"

  # The database's name as an identifier comes from this session too (no second connection):
  # the first line is the version, the rest the name (which may itself hold line breaks).
  local qdb
  if ! session_send "$(hb_session_settings_sql)" || ! session_reply ||
    ! session_send $'SHOW server_version_num;\nSELECT pg_catalog.quote_ident(pg_catalog.current_database());' ||
    ! session_reply || ((${#SESSION_LINES[@]} < 2)); then
    session_close
    db_failed "$db" "cannot open a session: $(last_error_line "$WORK/session.err")" "$t0"
    return 1
  fi
  version=${SESSION_LINES[0]}
  printf -v qdb '%s\n' "${SESSION_LINES[@]:1}"
  qdb=${qdb%$'\n'}
  if ! session_send $'BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;\nSELECT pg_catalog.pg_export_snapshot();' ||
    ! session_reply || ((${#SESSION_LINES[@]} != 1)); then
    session_close
    db_failed "$db" "cannot export a snapshot: $(last_error_line "$WORK/session.err")" "$t0"
    return 1
  fi
  snap=${SESSION_LINES[0]}

  pg_dump -w -Fc --snapshot="$snap" -d "$(hb_conninfo "$db")" -f "$tmp_dump" \
    2>"$WORK/pg_dump.err" {SESSION_IN}>&- {SESSION_OUT}<&- &
  DUMP_PID=$!

  local checksums_ok=1
  if ! session_send "$(hb_checksum_sql "$version" "" "$HB_CHECKSUMS")" || ! session_reply; then
    checksums_ok=0
  fi
  local -a table_lines=("${SESSION_LINES[@]}")
  if wait "$DUMP_PID"; then rc=0; else rc=$?; fi
  DUMP_PID=''
  if ((checksums_ok)); then
    if ! session_send 'COMMIT;'; then checksums_ok=0; fi
    session_reply || checksums_ok=0
  fi
  session_close

  if ((rc != 0)); then
    rm -f -- "$tmp_dump"
    db_failed "$db" "pg_dump failed (exit $rc): $(last_error_line "$WORK/pg_dump.err")" "$t0"
    return 1
  fi
  if ((!checksums_ok)); then
    rm -f -- "$tmp_dump"
    db_failed "$db" "the checksum pass failed: $(last_error_line "$WORK/session.err")" "$t0"
    return 1
  fi
  local table_re=$'^"[^\t]*"\t([rtv]\t[0-9]+\t-?[0-9]+|c\t[0-9]+\t-)$'
  for line in "${table_lines[@]}"; do
    if [[ ! $line =~ $table_re ]]; then
      rm -f -- "$tmp_dump"
      db_failed "$db" "unexpected line from the checksum pass: $line" "$t0"
      return 1
    fi
  done

  # Verify before the dump gets its real name: the archive's table of contents reads back and
  # the size is plausible. The one listing serves the database-level check below as well.
  local toc
  if ! toc=$(pg_restore --list --create -- "$tmp_dump" 2>"$WORK/pg_restore.err"); then
    rm -f -- "$tmp_dump"
    db_failed "$db" "the new dump does not read back (pg_restore --list): $(last_error_line "$WORK/pg_restore.err")" "$t0"
    return 1
  fi
  # Every database-level statement (owner, settings, grants, comment) must be one the restore
  # can apply to the database under a new name; a dump that would lose one is not a backup.
  if ! hb_database_entries_sql "$tmp_dump" "$toc" || ! hb_split_database_statements "$qdb"; then
    rm -f -- "$tmp_dump"
    db_failed "$db" "the new dump cannot be restored whole: $HB_REASON" "$t0"
    return 1
  fi
  bytes=$(hb_file_size "$tmp_dump") || bytes=0
  if ((bytes < HB_MIN_DUMP_BYTES)); then
    rm -f -- "$tmp_dump"
    db_failed "$db" "the new dump is only $bytes bytes (minimum $HB_MIN_DUMP_BYTES)" "$t0"
    return 1
  fi
  local mtime
  if ! sha=$(hb_sha256 "$tmp_dump") || ! mtime=$(hb_file_mtime "$tmp_dump"); then
    rm -f -- "$tmp_dump"
    db_failed "$db" "cannot read the new dump back" "$t0"
    return 1
  fi
  hb_list_dumps "$dir" "$enc"
  if ((${#HB_FILES[@]} > 0)); then
    prev_bytes=$(hb_manifest_get "$(hb_manifest_path "${HB_FILES[-1]}")" bytes 2>/dev/null) || prev_bytes=''
    if [[ $prev_bytes =~ ^[0-9]+$ ]] && ((bytes * 100 < prev_bytes * HB_SHRINK_WARN_PERCENT)); then
      record_warning "database $db: the new dump is $bytes bytes, less than $HB_SHRINK_WARN_PERCENT% of the previous one ($prev_bytes bytes); check that no data was lost"
    fi
  fi

  if ! {
    printf 'homelab-backup-manifest\t%s\n' "$HB_MANIFEST_FORMAT"
    printf 'database\t%s\n' "$(hb_json_str "$db")"
    printf 'dump\t%s\n' "$base.dump"
    printf 'bytes\t%s\n' "$bytes"
    printf 'sha256\t%s\n' "$sha"
    printf 'mtime\t%s\n' "$mtime"
    printf 'snapshot\t%s\n' "$snap"
    printf 'dumped_at\t%s\n' "$(hb_iso "$t0")"
    printf 'server_version_num\t%s\n' "$version"
    for line in "${table_lines[@]}"; do
      IFS=$'\t' read -r j m r s <<<"$line"
      printf 'table\t%s\t%s\t%s\t%s\n' "$j" "$m" "$r" "$s"
      ntables=$((ntables + 1))
      rows=$((rows + r))
    done
    printf 'end\t%s\n' "$ntables"
  } >"$tmp_man" 2>/dev/null; then
    rm -f -- "$tmp_dump" "$tmp_man"
    db_failed "$db" "cannot write the manifest $tmp_man (directory full or read-only?)" "$t0"
    return 1
  fi
  if ! err=$(sync -- "$tmp_dump" "$tmp_man" 2>&1); then
    rm -f -- "$tmp_dump" "$tmp_man"
    db_failed "$db" "cannot flush the new dump to storage: $err" "$t0"
    return 1
  fi
  # The manifest takes its name first: a dump under its real name always has its manifest.
  if ! err=$(mv -f -- "$tmp_man" "$man" 2>&1) || ! err=$(mv -f -- "$tmp_dump" "$dump" 2>&1); then
    rm -f -- "$tmp_dump" "$tmp_man" "$man"
    db_failed "$db" "cannot move the verified dump into place: $err" "$t0"
    return 1
  fi
  sync -- "$dir" 2>/dev/null
  hb_log "database $db: $(hb_rel "$dump"), $bytes bytes, $ntables table(s), $rows row(s)"
  DB_RECORDS+=("$(printf '{"name":%s,"result":"success","file":%s,"manifest":%s,"bytes":%s,"sha256":"%s","duration_seconds":%s,"tables":%s,"rows":%s}' \
    "$(hb_json_str "$db")" "$(hb_json_str "$(hb_rel "$dump")")" "$(hb_json_str "$(hb_rel "$man")")" \
    "$bytes" "$sha" "$(($(hb_epoch) - t0))" "$ntables" "$rows")")
  FRESH+=("$dump")
  return 0
}

backup_globals() {
  local dir=$HB_BACKUP_DIR/globals base file man tmp tmp_man err bytes sha mtime
  base=globals.$STAMP
  file=$dir/$base.sql
  man=$dir/$base.manifest
  tmp=$dir/.$base.sql.partial
  tmp_man=$dir/.$base.manifest.partial
  hb_log "dumping the globals (roles, tablespaces)"
  if ! err=$(mkdir -p -- "$dir" 2>&1); then
    record_error "globals: cannot create $dir: $err"
    return 1
  fi
  if ! pg_dumpall -w --globals-only -l "$HB_MAINTENANCE_DB" -f "$tmp" 2>"$WORK/pg_dumpall.err"; then
    rm -f -- "$tmp"
    record_error "globals: pg_dumpall failed: $(last_error_line "$WORK/pg_dumpall.err")"
    return 1
  fi
  if ! grep -q -- '^-- PostgreSQL database cluster dump complete' "$tmp" 2>/dev/null; then
    rm -f -- "$tmp"
    record_error "globals: the dump is incomplete (no completion line)"
    return 1
  fi
  bytes=$(hb_file_size "$tmp") || bytes=0
  sha=$(hb_sha256 "$tmp") || sha=''
  mtime=$(hb_file_mtime "$tmp") || sha=''
  if [[ -z $sha ]] || ! printf 'homelab-backup-manifest\t%s\nglobals\t1\ndump\t%s\nbytes\t%s\nsha256\t%s\nmtime\t%s\ndumped_at\t%s\nend\t0\n' \
    "$HB_MANIFEST_FORMAT" "$base.sql" "$bytes" "$sha" "$mtime" "$(hb_iso "$RUN_STARTED")" >"$tmp_man" 2>/dev/null ||
    ! sync -- "$tmp" "$tmp_man" 2>/dev/null ||
    ! mv -f -- "$tmp_man" "$man" 2>/dev/null || ! mv -f -- "$tmp" "$file" 2>/dev/null; then
    rm -f -- "$tmp" "$tmp_man" "$man"
    record_error "globals: cannot write $file (directory full or read-only?)"
    return 1
  fi
  GLOBALS_RECORD=$(printf '{"file":%s,"manifest":%s,"bytes":%s,"sha256":"%s"}' \
    "$(hb_json_str "$(hb_rel "$file")")" "$(hb_json_str "$(hb_rel "$man")")" "$bytes" "$sha")
  FRESH+=("$file")
}

is_fresh() {
  local f
  for f in "${FRESH[@]}"; do [[ $f == "$1" ]] && return 0; done
  return 1
}

# Keeps the newest HB_KEEP valid files of HB_FILES (oldest first) and deletes the older ones.
# A kept file is hashed again only when it was written since its manifest recorded it: re-reading
# every kept dump each night would cost keep x dump size of I/O; the drill hashes them all.
# Invalid files among the newest are reported and left alone; the last valid dump is never
# deleted, since deleting starts only after HB_KEEP >= 1 valid newer ones were found.
retain() {
  local what=$1 i f valid=0 man
  for ((i = ${#HB_FILES[@]} - 1; i >= 0; i--)); do
    f=${HB_FILES[i]}
    if ((valid < HB_KEEP)); then
      if is_fresh "$f" || hb_check_dump "$f" recorded; then
        valid=$((valid + 1))
      else
        INVALID+=("$(printf '{"file":%s,"reason":%s}' "$(hb_json_str "$(hb_rel "$f")")" "$(hb_json_str "$HB_REASON")")")
        record_warning "$what: $(hb_rel "$f") is not a valid dump: $HB_REASON; left in place and not counted"
      fi
    else
      man=$(hb_manifest_path "$f")
      if rm -f -- "$f" "$man" 2>/dev/null; then
        DELETED+=("$(hb_rel "$f")")
        hb_log "$what: removed $(hb_rel "$f") (older than the newest $HB_KEEP valid dumps)"
      else
        record_error "$what: cannot remove $(hb_rel "$f")"
      fi
    fi
  done
}

# Manifests whose dump is gone describe nothing (a run that stopped between the two renames).
remove_orphan_manifests() {
  local dir=$1 m
  for m in "$dir"/*.manifest; do
    [[ -f $m ]] || continue
    [[ -f ${m%.manifest}.dump || -f ${m%.manifest}.sql ]] && continue
    rm -f -- "$m" 2>/dev/null && hb_log "removed $(hb_rel "$m") (its dump does not exist)"
  done
}

discover_databases() {
  local out line
  if ((HB_DISCOVER == 0)); then
    DATABASES=("${HB_DATABASES[@]}")
    return 0
  fi
  if ! out=$(hb_admin_psql 2>"$WORK/discover.err" <<'SQL'
SELECT pg_catalog.to_json(datname)::text FROM pg_catalog.pg_database
 WHERE NOT datistemplate AND datallowconn
   AND datname !~ '^homelab_(restore|drill)_[0-9]{14}$'
   AND datname !~ '_before_restore_[0-9]{14}(_[0-9])?$'
 ORDER BY datname COLLATE "C";
SQL
  ); then
    record_error "cannot list the databases: $(last_error_line "$WORK/discover.err")"
    return 1
  fi
  DATABASES=()
  while IFS= read -r line; do
    [[ -n $line ]] && DATABASES+=("$(hb_json_unquote "$line")")
  done <<<"$out"
}

trap cleanup EXIT
trap 'record_error "interrupted"; finish failure 1' INT TERM

if ! WORK=$(mktemp -d "${TMPDIR:-/tmp}/homelab-backup.XXXXXX"); then
  hb_log "error: cannot create a work directory in ${TMPDIR:-/tmp}"
  exit 1
fi
FRESH=()

acquire_lock || finish failure 1
# Leftovers of runs that died mid-write (killed, node lost) are never valid dumps; they only take
# space.
remove_partials leftovers
# One run, one stamp: a second run within the same second waits for the next one.
while compgen -G "$HB_BACKUP_DIR/globals/globals.$STAMP.*" >/dev/null ||
  compgen -G "$HB_BACKUP_DIR/db/*/*.$STAMP.*" >/dev/null; do
  sleep 1
  STAMP=$(hb_stamp "$(hb_epoch)")
done

discover_databases || finish failure 1
hb_log "backing up ${#DATABASES[@]} database(s) into $HB_BACKUP_DIR"
backup_globals || DUMP_FAILED=1
for db in "${DATABASES[@]}"; do
  if [[ $HB_DISCOVER == 0 ]] && ! hb_db_exists "$db"; then
    db_failed "$db" "database $db does not exist on the server (it is listed in the backup configuration)" "$(hb_epoch)"
    continue
  fi
  backup_database "$db"
done

if ((DUMP_FAILED)); then
  hb_log "a dump failed: nothing is deleted in this run"
  finish failure 1
fi

for db in "${DATABASES[@]}"; do
  enc=$(hb_encode_name "$db")
  hb_list_dumps "$HB_BACKUP_DIR/db/$enc" "$enc"
  retain "database $db"
  remove_orphan_manifests "$HB_BACKUP_DIR/db/$enc"
done
hb_list_globals
retain globals
remove_orphan_manifests "$HB_BACKUP_DIR/globals"

if ((${#ERRORS[@]} > 0)); then
  finish failure 1
fi
finish success 0
