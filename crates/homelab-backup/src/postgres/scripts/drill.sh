#!/usr/bin/env bash
# shellcheck disable=SC2317 # functions run from traps
# homelab restore drill. Checks the integrity of every kept dump, restores the latest dump of each
# database into a scratch database, compares every table's row count and checksum with those the
# backup recorded in the dump's snapshot, reports per table, and drops the scratch database.
# Exit 0 only when everything matches. Rendered by homelab from homelab.yaml.
set -uo pipefail
HB_HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd) || exit 2
# shellcheck source=lib.sh
. "$HB_HERE/lib.sh"

usage() {
  cat <<EOF
usage: drill.sh [--db NAME]...

Drills every database that has dumps in $HB_BACKUP_DIR/db, or only those named with --db.
Report lines on stdout: 'HOMELAB-DRILL <JSON>', one per dump checked ("kind":"dump"), per table
("kind":"table"), per database ("kind":"database") and a last one ("kind":"summary"). The report
is also written to $HB_DRILL_REPORT_FILE.

exit status: 0 every dump intact and every table matches; 1 a difference, an invalid dump or a
failed restore; 2 bad arguments or an unknown database.
EOF
}

ONLY=()
while (($# > 0)); do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --db)
      (($# >= 2)) || hb_usage_error "--db needs a value"
      [[ -n $2 ]] || hb_usage_error "--db needs a non-empty value"
      ONLY+=("$2")
      shift 2
      ;;
    *) hb_usage_error "unknown argument '$1'" ;;
  esac
done

RUN_STARTED=$(hb_epoch)
STAMP14=$(printf '%(%Y%m%d%H%M%S)T' "$RUN_STARTED")
REPORT=()
HB_CREATED_DB=''
WORK=''
TOTAL_TABLES=0
TOTAL_MISMATCHES=0
INVALID_DUMPS=0
FAILED_DBS=0
DRILLED=0

cleanup() {
  if [[ -n $HB_CREATED_DB ]]; then
    hb_drop_database "$HB_CREATED_DB"
    HB_CREATED_DB=''
  fi
  [[ -n $WORK ]] && rm -rf -- "$WORK"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

emit() {
  local line
  while IFS= read -r line; do
    [[ -z $line ]] && continue
    REPORT+=("$line")
    printf '%s\n' "$line"
  done <<<"$1"
}

# Integrity of every kept file of HB_FILES; prints dump lines. $1: database name or empty.
check_files() {
  local db=$1 f jdb status reason
  if [[ -n $db ]]; then jdb=$(hb_json_str "$db"); else jdb=null; fi
  for f in "${HB_FILES[@]}"; do
    if hb_check_dump "$f"; then
      status=valid
      reason=null
    else
      status=invalid
      reason=$(hb_json_str "$HB_REASON")
      INVALID_DUMPS=$((INVALID_DUMPS + 1))
      hb_log "error: $(hb_rel "$f") is not a valid dump: $HB_REASON"
    fi
    emit "$(printf 'HOMELAB-DRILL {"kind":"dump","database":%s,"file":%s,"status":"%s","reason":%s}' \
      "$jdb" "$(hb_json_str "$(hb_rel "$f")")" "$status" "$reason")"
  done
}

db_line() {
  local db=$1 status=$2 file=$3 restore_s=$4 verify_s=$5 error=$6
  emit "$(printf 'HOMELAB-DRILL {"kind":"database","database":%s,"status":"%s","file":%s,"tables":%s,"mismatches":%s,"restore_seconds":%s,"verify_seconds":%s,"error":%s}' \
    "$(hb_json_str "$db")" "$status" \
    "$(if [[ -n $file ]]; then hb_json_str "$(hb_rel "$file")"; else printf null; fi)" \
    "$(hb_json_int "${HB_TABLES:-}")" "$(hb_json_int "${HB_MISMATCHES:-}")" \
    "$(hb_json_int "$restore_s")" "$(hb_json_int "$verify_s")" \
    "$(if [[ -n $error ]]; then hb_json_str "$error"; else printf null; fi)")"
}

drill_database() {
  local db=$1 enc=$2 latest scratch t0 t1 t2 manifest
  HB_TABLES=''
  HB_MISMATCHES=''
  DRILLED=$((DRILLED + 1))
  hb_list_dumps "$HB_BACKUP_DIR/db/$enc" "$enc"
  check_files "$db"
  if ((${#HB_FILES[@]} == 0)); then
    FAILED_DBS=$((FAILED_DBS + 1))
    db_line "$db" failed "" "" "" "no dumps in $HB_BACKUP_DIR/db/$enc"
    return
  fi
  latest=${HB_FILES[-1]}
  if ! hb_check_dump "$latest"; then
    FAILED_DBS=$((FAILED_DBS + 1))
    db_line "$db" failed "$latest" "" "" "the latest dump is not valid: $HB_REASON"
    return
  fi
  manifest=$(hb_manifest_path "$latest")
  scratch=homelab_drill_$STAMP14
  hb_log "database $db: restoring $(hb_rel "$latest") into the scratch database $scratch"
  t0=$(hb_epoch)
  if hb_db_exists "$scratch"; then
    FAILED_DBS=$((FAILED_DBS + 1))
    db_line "$db" failed "$latest" "" "" "the scratch database $scratch already exists (another drill running?)"
    return
  fi
  if ! hb_restore_into "$latest" "$scratch" "$db"; then
    FAILED_DBS=$((FAILED_DBS + 1))
    db_line "$db" failed "$latest" "$(($(hb_epoch) - t0))" "" "$HB_REASON"
    cleanup_scratch
    return
  fi
  t1=$(hb_epoch)
  if ! hb_compute_checksums "$scratch" "$WORK/checksums" "$manifest"; then
    FAILED_DBS=$((FAILED_DBS + 1))
    db_line "$db" failed "$latest" "$((t1 - t0))" "" "$HB_REASON"
    cleanup_scratch
    return
  fi
  t2=$(hb_epoch)
  hb_compare_checksums "$manifest" "$WORK/checksums" "$db" HOMELAB-DRILL 0 >"$WORK/tables"
  emit "$(<"$WORK/tables")"
  TOTAL_TABLES=$((TOTAL_TABLES + HB_TABLES))
  TOTAL_MISMATCHES=$((TOTAL_MISMATCHES + HB_MISMATCHES))
  cleanup_scratch
  if ((HB_MISMATCHES > 0)); then
    FAILED_DBS=$((FAILED_DBS + 1))
    hb_log "database $db: $HB_MISMATCHES of $HB_TABLES table(s) differ from the backup's record"
    db_line "$db" failed "$latest" "$((t1 - t0))" "$((t2 - t1))" "$HB_MISMATCHES table(s) differ from the backup's record"
  else
    hb_log "database $db: all $HB_TABLES table(s) match (restore $((t1 - t0)) s, check $((t2 - t1)) s)"
    db_line "$db" ok "$latest" "$((t1 - t0))" "$((t2 - t1))" ""
  fi
}

cleanup_scratch() {
  if [[ -n $HB_CREATED_DB ]]; then
    hb_drop_database "$HB_CREATED_DB"
    HB_CREATED_DB=''
  fi
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/homelab-drill.XXXXXX") || { hb_log "error: cannot create a work directory"; exit 1; }

hb_dumped_database_dirs
declare -A DIR_OF=()
for enc in "${HB_DIRS[@]}"; do
  printf -v name '%b' "${enc//%/\\x}"
  DIR_OF["$name"]=$enc
done
if ((${#ONLY[@]} > 0)); then
  for db in "${ONLY[@]}"; do
    if [[ -z ${DIR_OF["$db"]+x} ]]; then
      known=''
      for n in "${!DIR_OF[@]}"; do known+="${known:+, }$n"; done
      hb_usage_error "no dumps of database '$db' in $HB_BACKUP_DIR/db; databases with dumps: ${known:-none}"
    fi
  done
  TARGETS=("${ONLY[@]}")
else
  TARGETS=()
  for enc in "${HB_DIRS[@]}"; do
    printf -v name '%b' "${enc//%/\\x}"
    TARGETS+=("$name")
  done
fi
if ((${#TARGETS[@]} == 0)); then
  hb_log "error: no dumps in $HB_BACKUP_DIR/db: nothing to drill (has a backup run yet?)"
  FAILED_DBS=1
fi

if ! hb_server_version_num >/dev/null 2>"$WORK/connect.err"; then
  hb_log "error: cannot reach the PostgreSQL server: $(<"$WORK/connect.err")"
  FAILED_DBS=$((FAILED_DBS + ${#TARGETS[@]}))
  TARGETS=()
fi

for db in "${TARGETS[@]}"; do
  drill_database "$db" "${DIR_OF["$db"]}"
done
if ((${#ONLY[@]} == 0)); then
  hb_list_globals
  check_files ""
fi

finished=$(hb_epoch)
if ((FAILED_DBS == 0 && INVALID_DUMPS == 0 && TOTAL_MISMATCHES == 0)); then status=passed; else status=failed; fi
emit "$(printf 'HOMELAB-DRILL {"kind":"summary","status":"%s","databases":%s,"failed_databases":%s,"tables":%s,"mismatches":%s,"invalid_dumps":%s,"started_at":"%s","finished_at":"%s","duration_seconds":%s}' \
  "$status" "$DRILLED" "$FAILED_DBS" "$TOTAL_TABLES" "$TOTAL_MISMATCHES" "$INVALID_DUMPS" \
  "$(hb_iso "$RUN_STARTED")" "$(hb_iso "$finished")" "$((finished - RUN_STARTED))")"
report_text=$(printf '%s\n' "${REPORT[@]}")
if ! hb_write_atomic "$HB_DRILL_REPORT_FILE" "$report_text"; then
  hb_log "warning: cannot write the report to $HB_DRILL_REPORT_FILE"
fi
if [[ $status == passed ]]; then
  hb_log "drill passed: $DRILLED database(s), $TOTAL_TABLES table(s), every one matches"
  exit 0
fi
hb_log "drill FAILED: $FAILED_DBS database(s) failed, $TOTAL_MISMATCHES table(s) differ, $INVALID_DUMPS invalid dump(s)"
exit 1
