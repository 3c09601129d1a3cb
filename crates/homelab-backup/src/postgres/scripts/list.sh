#!/usr/bin/env bash
# shellcheck disable=SC2317 # functions run from traps
# homelab backup listing: prints the kept dumps with their sizes and times, and the status
# records, as machine-readable lines. Reads the backup directory only; needs no database.
# Rendered by homelab from homelab.yaml.
set -uo pipefail
HB_HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd) || exit 2
# shellcheck source=lib.sh
. "$HB_HERE/lib.sh"

usage() {
  cat <<EOF
usage: list.sh [--verify]

Prints one 'HOMELAB-DUMP <JSON>' line per dump in $HB_BACKUP_DIR (databases, then globals),
then 'HOMELAB-STATUS <JSON>' (the last successful backup), 'HOMELAB-LAST-RUN <JSON>' (the last
attempt) and 'HOMELAB-DRILL <JSON>' (the last drill's report) for the records that exist.
Without --verify a dump is "valid" when its manifest is complete and its size matches; with
--verify its SHA-256 is checked too (reads every dump in full).

exit status: 0 listed; 2 bad arguments.
EOF
}

DEPTH=size
while (($# > 0)); do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --verify) DEPTH=full; shift ;;
    *) hb_usage_error "unknown argument '$1'" ;;
  esac
done

# 20261101T020000Z -> 2026-11-01T02:00:00Z
stamp_to_iso() {
  local s=$1
  printf '%s-%s-%sT%s:%s:%sZ' "${s:0:4}" "${s:4:2}" "${s:6:2}" "${s:9:2}" "${s:11:2}" "${s:13:2}"
}

print_files() {
  local kind=$1 jdb=$2 f name stamp bytes status reason man tables rows k j m r s
  for f in "${HB_FILES[@]}"; do
    name=${f##*/}
    stamp=${name%.*}
    stamp=${stamp##*.}
    bytes=$(hb_file_size "$f" 2>/dev/null) || bytes=''
    if hb_check_dump "$f" "$DEPTH"; then
      status=valid
      reason=null
    else
      status=invalid
      reason=$(hb_json_str "$HB_REASON")
    fi
    tables=0
    rows=0
    man=$(hb_manifest_path "$f")
    if [[ -f $man ]]; then
      while IFS=$'\t' read -r k j m r s; do
        if [[ $k == table && $r =~ ^[0-9]+$ ]]; then
          tables=$((tables + 1))
          rows=$((rows + r))
        fi
      done <"$man"
    fi
    printf 'HOMELAB-DUMP {"kind":"%s","database":%s,"file":%s,"bytes":%s,"created_at":"%s","status":"%s","reason":%s,"tables":%s,"rows":%s}\n' \
      "$kind" "$jdb" "$(hb_json_str "$(hb_rel "$f")")" "$(hb_json_int "$bytes")" "$(stamp_to_iso "$stamp")" \
      "$status" "$reason" "$tables" "$rows"
  done
}

hb_dumped_database_dirs
for enc in "${HB_DIRS[@]}"; do
  printf -v name '%b' "${enc//%/\\x}"
  hb_list_dumps "$HB_BACKUP_DIR/db/$enc" "$enc"
  print_files database "$(hb_json_str "$name")"
done
hb_list_globals
print_files globals null

print_record() {
  local tag=$1 file=$2 line
  [[ -f $file ]] || return 0
  while IFS= read -r line; do
    [[ -n $line ]] && printf '%s %s\n' "$tag" "$line"
  done <"$file"
}
print_record HOMELAB-STATUS "$HB_STATUS_FILE"
print_record HOMELAB-LAST-RUN "$HB_LAST_RUN_FILE"
if [[ -f $HB_DRILL_REPORT_FILE ]]; then
  while IFS= read -r line; do
    [[ $line == "HOMELAB-DRILL "* ]] && printf '%s\n' "$line"
  done <"$HB_DRILL_REPORT_FILE"
fi
exit 0
