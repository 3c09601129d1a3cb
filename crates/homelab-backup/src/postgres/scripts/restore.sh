#!/usr/bin/env bash
# shellcheck disable=SC2317 # functions run from traps
# homelab PostgreSQL restore. Restores a dump into a new database, checks every table's row count
# and checksum against those the backup recorded, then swaps it in by renames (or leaves it
# beside the original with --into). The original database is kept, renamed, until the swap has
# succeeded. Rendered by homelab from homelab.yaml.
set -uo pipefail
HB_HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd) || exit 2
# shellcheck source=lib.sh
. "$HB_HERE/lib.sh"

usage() {
  cat <<EOF
usage: restore.sh --db NAME [--from FILE | --latest] [--into NEW | --drop-old]
       restore.sh --globals [--from FILE | --latest]

  --db NAME     the database to restore (one that has dumps in $HB_BACKUP_DIR/db)
  --from FILE   the dump to restore: a path, or a file name in the database's dump directory
  --latest      the newest valid dump (the default)
  --into NEW    restore into the new database NEW and leave NAME untouched
  --drop-old    after a successful swap, drop the previous database instead of keeping it
  --globals     apply the roles and tablespaces of a globals dump (errors about roles that
                already exist are expected and reported, not fatal)

Without --into, the dump is restored into a new database, checked, and swapped in: connections
to NAME are closed, NAME is renamed to NAME_before_restore_<time> and the restored database
takes its name. Lines 'HOMELAB-RESTORE <JSON>' on stdout report failed tables and the outcome.

exit status: 0 restored and checked (and swapped in); 1 the restore, the check or the swap
failed (NAME is unchanged); 2 bad arguments, or an unknown database, file or target.
EOF
}

DB=''
FROM=''
LATEST=0
INTO=''
DROP_OLD=0
GLOBALS=0
have_db=0
while (($# > 0)); do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --db | --from | --into)
      (($# >= 2)) || hb_usage_error "$1 needs a value"
      [[ -n $2 ]] || hb_usage_error "$1 needs a non-empty value"
      case $1 in
        --db) DB=$2; have_db=1 ;;
        --from) FROM=$2 ;;
        --into) INTO=$2 ;;
      esac
      shift 2
      ;;
    --db=* | --from=* | --into=*)
      hb_usage_error "write '${1%%=*} VALUE' (with a space), not '$1'" ;;
    --latest) LATEST=1; shift ;;
    --drop-old) DROP_OLD=1; shift ;;
    --globals) GLOBALS=1; shift ;;
    *) hb_usage_error "unknown argument '$1'" ;;
  esac
done
[[ -n $FROM && $LATEST == 1 ]] && hb_usage_error "--from and --latest exclude each other"
if ((GLOBALS)); then
  ((have_db)) && hb_usage_error "--globals restores the roles; it takes no --db"
  [[ -n $INTO ]] && hb_usage_error "--into applies to a database restore, not to --globals"
  ((DROP_OLD)) && hb_usage_error "--drop-old applies to a database restore, not to --globals"
else
  ((have_db)) || hb_usage_error "--db NAME is required (or --globals)"
  [[ -n $INTO && $DROP_OLD == 1 ]] && hb_usage_error "--drop-old applies to a swap; --into leaves the original in place"
  [[ -n $INTO && $INTO == "$DB" ]] && hb_usage_error "--into must name a new database, not $DB itself"
  ((${#INTO} <= 63)) || hb_usage_error "--into: database names are at most 63 bytes"
fi

RUN_STARTED=$(hb_epoch)
STAMP14=$(printf '%(%Y%m%d%H%M%S)T' "$RUN_STARTED")
HB_CREATED_DB=''
SWAPPED=0
KEEP_CREATED=0
T_RESTORE=''
T_RESTORED=''
T_CHECKED=''
TMP_CHECKSUMS=''

cleanup() {
  if [[ -n $HB_CREATED_DB && $SWAPPED == 0 && $KEEP_CREATED == 0 ]]; then
    hb_log "dropping $HB_CREATED_DB: the restore did not complete"
    hb_drop_database "$HB_CREATED_DB"
  fi
  [[ -n $TMP_CHECKSUMS ]] && rm -f -- "$TMP_CHECKSUMS" "$TMP_CHECKSUMS.lines"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

summary() {
  local status=$1 error=${2:-} restored_as=${3:-} kept=${4:-} file=${5:-} restore_ms='' check_ms=''
  [[ -n $T_RESTORE && -n $T_RESTORED ]] && restore_ms=$((T_RESTORED - T_RESTORE))
  [[ -n $T_RESTORED && -n $T_CHECKED ]] && check_ms=$((T_CHECKED - T_RESTORED))
  printf 'HOMELAB-RESTORE {"kind":"summary","status":"%s","database":%s,"file":%s,"restored_as":%s,"swapped":%s,"previous_kept_as":%s,"tables":%s,"mismatches":%s,"duration_seconds":%s,"restore_millis":%s,"check_millis":%s,"error":%s}\n' \
    "$status" "$(hb_json_str "$DB")" \
    "$(if [[ -n $file ]]; then hb_json_str "$(hb_rel "$file")"; else printf null; fi)" \
    "$(if [[ -n $restored_as ]]; then hb_json_str "$restored_as"; else printf null; fi)" \
    "$( ((SWAPPED)) && printf true || printf false)" \
    "$(if [[ -n $kept ]]; then hb_json_str "$kept"; else printf null; fi)" \
    "$(hb_json_int "${HB_TABLES:-}")" "$(hb_json_int "${HB_MISMATCHES:-}")" \
    "$(($(hb_epoch) - RUN_STARTED))" "$(hb_json_int "$restore_ms")" "$(hb_json_int "$check_ms")" \
    "$(if [[ -n $error ]]; then hb_json_str "$error"; else printf null; fi)"
}

fail() {
  hb_log "error: $1"
  summary failed "$1" "" "" "${DUMP-}"
  exit "${2:-1}"
}

# Names of the databases that have dumps, for error messages.
known_databases() {
  local enc name out='' sep=''
  hb_dumped_database_dirs
  for enc in "${HB_DIRS[@]}"; do
    printf -v name '%b' "${enc//%/\\x}"
    out+="$sep$name"
    sep=', '
  done
  printf '%s' "${out:-none}"
}

# Resolves --from / --latest among the files of HB_FILES (kind $1) in directory $2 into DUMP.
resolve_dump() {
  local kind=$1 dir=$2 ext=$3 candidate line
  if [[ -n $FROM ]]; then
    if [[ -f $FROM ]]; then
      candidate=$FROM
    elif [[ $FROM != */* && -f $dir/$FROM ]]; then
      candidate=$dir/$FROM
    else
      fail "no dump '$FROM': neither that path nor $dir/$FROM exists; list the dumps with list.sh" 2
    fi
    [[ $candidate == *"$ext" ]] || fail "'$FROM' is not a $kind dump (*$ext)" 2
    candidate=$(cd -- "$(dirname -- "$candidate")" && printf '%s/%s' "$(pwd)" "${candidate##*/}")
    DUMP=$candidate
    if ! hb_check_dump "$DUMP"; then
      fail "refusing $DUMP: $HB_REASON" 1
    fi
  else
    if [[ $kind == globals ]]; then hb_list_globals; else hb_list_dumps "$dir" "$ENC"; fi
    if ! hb_pick_latest_valid; then
      fail "no valid $kind dump in $dir${HB_BAD:+; invalid: ${HB_BAD//$'\n'/; }}" 1
    fi
    DUMP=$HB_DUMP
    if [[ -n $HB_BAD ]]; then
      while IFS=$'\t' read -r line reason; do
        [[ -n $line ]] && hb_log "warning: skipping the newer dump $(hb_rel "$line"): $reason"
      done <<<"$HB_BAD"
    fi
  fi
}

restore_globals() {
  local out errors=0 other=0 line
  DB=''
  resolve_dump globals "$HB_BACKUP_DIR/globals" .sql
  hb_log "applying the globals of $(hb_rel "$DUMP")"
  out=$(psql -X -q -w -d "$(hb_conninfo "$HB_MAINTENANCE_DB")" -f "$DUMP" 2>&1 >/dev/null)
  while IFS= read -r line; do
    [[ $line == *ERROR:* ]] || continue
    errors=$((errors + 1))
    if [[ $line == *" already exists"* ]]; then
      hb_log "expected: $line"
    else
      other=$((other + 1))
      hb_log "error: $line"
    fi
  done <<<"$out"
  if ((other > 0)); then
    fail "$other statement(s) of the globals failed (see above)" 1
  fi
  hb_log "globals applied ($errors 'already exists' message(s) for roles that were present)"
  summary restored "" "" "" "$DUMP"
  exit 0
}

((GLOBALS)) && restore_globals

ENC=$(hb_encode_name "$DB")
DIR=$HB_BACKUP_DIR/db/$ENC
if [[ ! -d $DIR ]]; then
  fail "no dumps of database '$DB' in $HB_BACKUP_DIR/db; databases with dumps: $(known_databases)" 2
fi
resolve_dump database "$DIR" .dump
MANIFEST=$(hb_manifest_path "$DUMP")
if [[ $(hb_manifest_get "$MANIFEST" database) != "$(hb_json_str "$DB")" ]]; then
  fail "$DUMP is a dump of database $(hb_manifest_get "$MANIFEST" database), not of \"$DB\"" 2
fi
hb_log "restoring database $DB from $(hb_rel "$DUMP")"

hb_server_version_num >/dev/null 2>&1 || fail "cannot reach the PostgreSQL server (PGHOST=${PGHOST:-}, PGPORT=${PGPORT:-})" 1
hb_db_exists "$DB"
case $? in
  0) ORIGINAL_EXISTS=1 ;;
  1) ORIGINAL_EXISTS=0 ;;
  *) fail "cannot reach the PostgreSQL server" 1 ;;
esac
if [[ -n $INTO ]]; then
  hb_db_exists "$INTO"
  case $? in
    0) fail "database $INTO already exists: choose a new name for --into, or drop it first" 2 ;;
    1) ;;
    *) fail "cannot reach the PostgreSQL server" 1 ;;
  esac
  TARGET=$INTO
else
  TARGET=homelab_restore_$STAMP14
  hb_db_exists "$TARGET" && fail "database $TARGET already exists (another restore is running?)" 1
fi

T_RESTORE=$(hb_millis)
if ! hb_restore_into "$DUMP" "$TARGET" "$DB" properties; then
  fail "$HB_REASON" 1
fi
T_RESTORED=$(hb_millis)
hb_log "restored into $TARGET; checking every table against the backup's record"
TMP_CHECKSUMS=$(mktemp "${TMPDIR:-/tmp}/homelab-restore.XXXXXX") || fail "cannot create a temporary file" 1
hb_compute_checksums "$TARGET" "$TMP_CHECKSUMS" "$MANIFEST" || fail "$HB_REASON" 1
hb_compare_checksums "$MANIFEST" "$TMP_CHECKSUMS" "$DB" HOMELAB-RESTORE 1
T_CHECKED=$(hb_millis)
if ((HB_MISMATCHES > 0)); then
  fail "$HB_MISMATCHES of $HB_TABLES table(s) differ from the backup's record; $DB is unchanged" 1
fi
hb_log "all $HB_TABLES table(s) match the backup's record"

if [[ -n $INTO ]]; then
  KEEP_CREATED=1
  hb_log "database $INTO holds the restore; $DB is untouched"
  summary restored "" "$INTO" "" "$DUMP"
  exit 0
fi

MAINT=$(hb_maintenance_db_for "$DB")
swap_psql() { hb_psql -d "$(hb_conninfo "$MAINT")" "$@"; }
if ((ORIGINAL_EXISTS == 0)); then
  if ! err=$(swap_psql -v tmp="$TARGET" -v db="$DB" 2>&1 <<<'ALTER DATABASE :"tmp" RENAME TO :"db";'); then
    fail "cannot rename $TARGET to $DB: $err" 1
  fi
  SWAPPED=1
  hb_log "database $DB restored (it did not exist before)"
  summary restored "" "$DB" "" "$DUMP"
  exit 0
fi

# Two restores within one second (a restore, then `--drop-old` straight after) share the stamp;
# a counter keeps the name free instead of failing the second one.
OLD=''
for n in '' _2 _3 _4 _5 _6 _7 _8 _9; do
  name=$(hb_db_name_with_suffix "$DB" "_before_restore_$STAMP14$n") || fail "cannot reach the PostgreSQL server" 1
  hb_db_exists "$name"
  case $? in
    0) ;;
    1) OLD=$name; break ;;
    *) fail "cannot reach the PostgreSQL server" 1 ;;
  esac
done
[[ -n $OLD ]] || fail "databases ${DB}_before_restore_${STAMP14} to _9 all exist; drop the ones you no longer need and run the restore again" 1
PREV_ALLOW=$(swap_psql -v db="$DB" <<<"SELECT datallowconn FROM pg_catalog.pg_database WHERE datname = :'db';") ||
  fail "cannot read the settings of $DB" 1
if ! err=$(swap_psql -v db="$DB" 2>&1 <<<'ALTER DATABASE :"db" WITH ALLOW_CONNECTIONS false;'); then
  fail "cannot stop new connections to $DB: $err" 1
fi
hb_log "closing the connections to $DB and swapping in the restored database"
swap_error=''
for attempt in 1 2 3 4 5 6 7 8 9 10; do
  swap_psql -v db="$DB" >/dev/null 2>&1 <<<"SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity WHERE datname = :'db' AND pid <> pg_catalog.pg_backend_pid();"
  if swap_error=$(swap_psql -v db="$DB" -v old="$OLD" -v tmp="$TARGET" 2>&1 <<'SQL'
BEGIN;
ALTER DATABASE :"db" RENAME TO :"old";
ALTER DATABASE :"tmp" RENAME TO :"db";
COMMIT;
SQL
  ); then
    SWAPPED=1
    break
  fi
  hb_log "swap attempt $attempt failed: $swap_error"
  sleep 1
done
if ((SWAPPED == 0)); then
  swap_psql -v db="$DB" >/dev/null 2>&1 <<<'ALTER DATABASE :"db" WITH ALLOW_CONNECTIONS true;'
  KEEP_CREATED=1
  fail "cannot swap $TARGET in for $DB: $swap_error; $DB is unchanged and the checked restore is kept as $TARGET" 1
fi
if [[ $PREV_ALLOW == t ]]; then
  swap_psql -v old="$OLD" >/dev/null 2>&1 <<<'ALTER DATABASE :"old" WITH ALLOW_CONNECTIONS true;' ||
    hb_log "warning: could not allow connections to $OLD again"
fi
if ((DROP_OLD)); then
  if hb_drop_database "$OLD"; then
    hb_log "database $DB restored and swapped in; the previous database was dropped (--drop-old)"
    summary restored "" "$DB" "" "$DUMP"
    exit 0
  fi
  hb_log "warning: the previous database is kept as $OLD"
fi
hb_log "database $DB restored and swapped in; the previous database is kept as $OLD"
printf -v drop_hint 'dropdb -- %q' "$OLD"
hb_log "when satisfied, drop it: $drop_hint"
summary restored "" "$DB" "$OLD" "$DUMP"
exit 0
