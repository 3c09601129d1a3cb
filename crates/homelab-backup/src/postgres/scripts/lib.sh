# shellcheck shell=bash disable=SC2034
# Shared functions of the homelab PostgreSQL backup scripts (backup.sh, restore.sh, drill.sh,
# list.sh). Rendered by homelab from homelab.yaml: change the spec and render again rather than
# editing this file. Needs bash, coreutils, grep and the PostgreSQL client tools of the server's
# major version, all of which the official postgres image carries; nothing else.

#@CONFIG@

readonly HB_MANIFEST_FORMAT=1
readonly HB_RECORD_FORMAT=1
readonly HB_MARK=__HOMELAB_END_OF_REPLY__
export LC_ALL=C TZ=UTC PGCLIENTENCODING=UTF8
# Dumps hold role password hashes and every row of every database: nobody but the owner reads them.
umask 077
# A write to a psql that died must fail the write, not kill the script before it cleans up.
trap '' PIPE

HB_SCRIPT=${0##*/}
HB_REASON=''

hb_log() { printf '%(%Y-%m-%dT%H:%M:%SZ)T %s: %s\n' -1 "$HB_SCRIPT" "$*" >&2; }

hb_usage_error() {
  hb_log "error: $*"
  hb_log "run '$HB_SCRIPT --help' for usage"
  exit 2
}

hb_epoch() { printf '%(%s)T' -1; }
# Milliseconds since the epoch (bash 5's EPOCHREALTIME; the decimal point is '.' under LC_ALL=C).
hb_millis() {
  local t=${EPOCHREALTIME/./}
  printf '%s' $((10#$t / 1000))
}
hb_iso() { printf '%(%Y-%m-%dT%H:%M:%SZ)T' "$1"; }
hb_stamp() { printf '%(%Y%m%dT%H%M%SZ)T' "$1"; }

# JSON string literal of $1 (bash strings hold no NUL; bytes >= 0x80 pass through as UTF-8).
hb_json_str() {
  local s=$1 out='' c i
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\r'/\\r}
  s=${s//$'\t'/\\t}
  if [[ $s == *[$'\001'-$'\037']* ]]; then
    for ((i = 0; i < ${#s}; i++)); do
      c=${s:i:1}
      if [[ $c == [$'\001'-$'\037'] ]]; then printf -v c '\\u%04x' "'$c"; fi
      out+=$c
    done
    s=$out
  fi
  printf '"%s"' "$s"
}

# JSON number, or null when $1 is not an integer.
hb_json_int() { if [[ $1 =~ ^-?[0-9]+$ ]]; then printf '%s' "$1"; else printf 'null'; fi; }

# JSON array of strings from the arguments.
hb_json_str_array() {
  local sep='' s
  printf '['
  for s in "$@"; do
    printf '%s' "$sep"
    hb_json_str "$s"
    sep=','
  done
  printf ']'
}

# A database name as a file-name component: bytes outside [A-Za-z0-9_-] become %XX, so the
# result holds no '/', no '.', and maps back to exactly one name.
hb_encode_name() {
  local s=$1 out='' c h i
  for ((i = 0; i < ${#s}; i++)); do
    c=${s:i:1}
    case $c in
      [A-Za-z0-9_-]) out+=$c ;;
      *)
        printf -v h '%%%02X' "'$c"
        out+=${h: -3}
        ;;
    esac
  done
  printf '%s' "$out"
}

# libpq connection string naming database $1 (quotes and backslashes escaped).
hb_conninfo() {
  local v=${1//\\/\\\\}
  v=${v//\'/\\\'}
  printf "dbname='%s'" "$v"
}

# SQL string literal of $1 (standard_conforming_strings is on since PostgreSQL 9.1).
hb_sql_lit() { printf "'%s'" "${1//\'/\'\'}"; }

hb_psql() { psql -X -q -A -t -w -v ON_ERROR_STOP=1 "$@"; }

# Maintenance database for work on database $1: never the database itself, so that renaming or
# dropping it does not trip over our own connection.
hb_maintenance_db_for() {
  if [[ $1 == "$HB_MAINTENANCE_DB" ]]; then printf 'template1'; else printf '%s' "$HB_MAINTENANCE_DB"; fi
}

# Runs SQL from stdin in the maintenance database; extra arguments go to psql (e.g. -v x=y).
hb_admin_psql() { hb_psql -d "$(hb_conninfo "$HB_MAINTENANCE_DB")" "$@"; }

hb_db_exists() {
  local out
  out=$(hb_admin_psql -v db="$1" <<<"SELECT 1 FROM pg_catalog.pg_database WHERE datname = :'db';") || return 2
  [[ $out == 1 ]]
}

hb_server_version_num() { hb_admin_psql <<<"SHOW server_version_num;"; }

# Session settings that make the text form of every value independent of the server's and the
# role's defaults, and keep timeouts from killing a long dump or checksum pass. No JIT: the
# planner prices the catalog query that writes the checksum statements (recursive CTEs) high
# enough to compile it, which cost 50-100 ms of server CPU for a query that runs in 7 ms, and
# the table scans were measured no faster with it.
hb_session_settings_sql() {
  cat <<'SQL'
SET jit = off;
SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_min_messages = warning;
SET row_security = off;
SET DateStyle = 'ISO, YMD';
SET IntervalStyle = 'postgres';
SET TimeZone = 'UTC';
SET extra_float_digits = 1;
SET bytea_output = 'hex';
SET xmloption = content;
SET lc_monetary = 'C';
SELECT pg_catalog.set_config('search_path', '', false);
SELECT pg_catalog.set_config(name, '0', false) FROM pg_catalog.pg_settings
 WHERE name IN ('idle_session_timeout', 'transaction_timeout');
SQL
}

# SQL that, run through psql's \gexec, prints one line per table:
#   <table as JSON string> TAB <method> TAB <rows> TAB <checksum>
# The checksum is the sum of a 64-bit hash of every row, so it does not depend on the physical
# order of the rows and needs no sort. Method v (PostgreSQL 14 and later, every column type
# hashable) hashes each column with its type's own hash function, seeded with the hash of the
# column's name (so values swapped between columns, and NULLs, which take the seed, count), and
# XORs them: no row value is built for the scan, which is what made method r (hash_record_extended
# of the whole row, still used to check manifests that name it) cost half again as much.
# Columns whose type's hash function cannot be called on them directly (timestamptz, date,
# arrays, ranges, composites) are hashed together as one record; enums and the reg* types hash
# their text, because their values' hashes are OIDs that a restore changes (nested in an array
# or a composite they make the table use method t). Method t hashes the row's text form (any
# type, about twice the cost of r). Whole rows are ROW(t.*), never a bare t: a bare name means
# a column before it means the row; columns are always t.<name>.
# Tables: every ordinary table outside the system schemas
# that no extension owns, which is what pg_dump dumps the data of.
# Method c records the row count only (the checksum field is "-"): cheaper, and still taken in
# the dump's snapshot.
# $1: server_version_num. $2 (optional): SQL VALUES rows (json_name, method) naming the method to
# use for known tables, so that a check recomputes exactly what the backup recorded. $3: "count"
# to record row counts only.
hb_checksum_sql() {
  local version=$1 expected=${2:-} mode=${3:-hash}
  local expected_cte="SELECT NULL::text AS jname, NULL::text AS method WHERE false"
  [[ -n $expected ]] && expected_cte="SELECT * FROM (VALUES $expected) AS v(jname, method)"
  local methods
  if [[ $mode == count ]]; then
    methods="found AS (SELECT t.relid, t.name, 'c'::text AS method FROM tabs t)"
  elif ((version >= 140000)); then
    methods=$(
      cat <<'SQL'
typs(relid, typid, nested) AS (
  SELECT a.attrelid, a.atttypid, false
    FROM pg_catalog.pg_attribute a JOIN tabs t ON t.relid = a.attrelid
   WHERE a.attnum > 0 AND NOT a.attisdropped
  UNION
  SELECT s.relid, sub.typid, s.nested OR sub.nested
    FROM typs s
    JOIN pg_catalog.pg_type ty ON ty.oid = s.typid
   CROSS JOIN LATERAL (
         SELECT ty.typbasetype, false WHERE ty.typtype = 'd'
         UNION ALL
         SELECT ty.typelem, true WHERE ty.typtype = 'b' AND ty.typelem <> 0
            AND ty.typsubscript = 'pg_catalog.array_subscript_handler'::pg_catalog.regproc
         UNION ALL
         SELECT a2.atttypid, true FROM pg_catalog.pg_attribute a2
          WHERE ty.typtype = 'c' AND a2.attrelid = ty.typrelid AND a2.attnum > 0 AND NOT a2.attisdropped
         UNION ALL
         SELECT r.rngsubtype, true FROM pg_catalog.pg_range r WHERE ty.typtype = 'r' AND r.rngtypid = ty.oid
         UNION ALL
         SELECT r.rngsubtype, true FROM pg_catalog.pg_range r WHERE ty.typtype = 'm' AND r.rngmultitypid = ty.oid
       ) AS sub(typid, nested)
),
unhashable AS (
  SELECT DISTINCT s.relid
    FROM typs s JOIN pg_catalog.pg_type ty ON ty.oid = s.typid
   WHERE ty.typtype = 'p'
      OR (s.nested AND (ty.typtype = 'e' OR ty.oid = ANY (ARRAY['pg_catalog.regclass', 'pg_catalog.regtype', 'pg_catalog.regproc', 'pg_catalog.regprocedure', 'pg_catalog.regoper', 'pg_catalog.regoperator', 'pg_catalog.regconfig', 'pg_catalog.regdictionary', 'pg_catalog.regnamespace', 'pg_catalog.regrole', 'pg_catalog.regcollation']::pg_catalog.regtype[])))
      OR (ty.typtype = 'b'
          AND NOT (ty.typelem <> 0 AND ty.typsubscript = 'pg_catalog.array_subscript_handler'::pg_catalog.regproc)
          AND NOT EXISTS (
                SELECT 1
                  FROM pg_catalog.pg_opclass oc
                  JOIN pg_catalog.pg_am am ON am.oid = oc.opcmethod AND am.amname = 'hash'
                  JOIN pg_catalog.pg_amproc p ON p.amprocfamily = oc.opcfamily AND p.amprocnum = 2
                   AND p.amproclefttype = oc.opcintype AND p.amprocrighttype = oc.opcintype
                 WHERE oc.opcdefault
                   AND (oc.opcintype = s.typid
                        OR EXISTS (SELECT 1 FROM pg_catalog.pg_cast k
                                    WHERE k.castsource = s.typid AND k.casttarget = oc.opcintype
                                      AND k.castmethod = 'b'))))
),
found AS (
  SELECT t.relid, t.name, CASE WHEN u.relid IS NULL THEN 'v' ELSE 't' END AS method
    FROM tabs t LEFT JOIN unhashable u ON u.relid = t.relid
),
coltypes(relid, attname, typid) AS (
  SELECT a.attrelid, a.attname, a.atttypid
    FROM pg_catalog.pg_attribute a JOIN tabs t ON t.relid = a.attrelid
   WHERE a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
  SELECT c.relid, c.attname, ty.typbasetype
    FROM coltypes c JOIN pg_catalog.pg_type ty ON ty.oid = c.typid
   WHERE ty.typtype = 'd'
),
coltargets AS MATERIALIZED (
  SELECT b.typid, b.typid AS target, true AS direct
    FROM (SELECT DISTINCT typid FROM coltypes) b
  UNION ALL
  SELECT k.castsource, k.casttarget, false
    FROM pg_catalog.pg_cast k
   WHERE k.castmethod = 'b' AND k.castsource IN (SELECT typid FROM coltypes)
),
hashtypes AS MATERIALIZED (
  SELECT ct.typid, ct.direct,
         pg_catalog.format('%I.%I', pn.nspname, pr.proname) AS fn,
         pg_catalog.format('%I.%I', tn.nspname, it.typname) AS argtype
    FROM coltargets ct
    JOIN pg_catalog.pg_opclass oc ON oc.opcintype = ct.target AND oc.opcdefault
    JOIN pg_catalog.pg_am am ON am.oid = oc.opcmethod AND am.amname = 'hash'
    JOIN pg_catalog.pg_amproc p ON p.amprocfamily = oc.opcfamily AND p.amprocnum = 2
     AND p.amproclefttype = oc.opcintype AND p.amprocrighttype = oc.opcintype
    JOIN pg_catalog.pg_proc pr ON pr.oid = p.amproc AND pr.proargtypes[0] = oc.opcintype
    JOIN pg_catalog.pg_namespace pn ON pn.oid = pr.pronamespace
    JOIN pg_catalog.pg_type it ON it.oid = oc.opcintype
    JOIN pg_catalog.pg_namespace tn ON tn.oid = it.typnamespace
),
cols AS (
  SELECT c.relid, c.attname, pg_catalog.hashtext(c.attname::text) AS seed,
         CASE WHEN b.by_text THEN 'pg_catalog.hashtextextended' ELSE h.fn END AS fn,
         CASE WHEN b.by_text THEN 'pg_catalog.text' ELSE h.argtype END AS argtype
    FROM coltypes c
    JOIN pg_catalog.pg_type ty ON ty.oid = c.typid AND ty.typtype <> 'd'
   CROSS JOIN LATERAL (SELECT ty.typtype = 'e' OR ty.oid = ANY (ARRAY['pg_catalog.regclass', 'pg_catalog.regtype', 'pg_catalog.regproc', 'pg_catalog.regprocedure', 'pg_catalog.regoper', 'pg_catalog.regoperator', 'pg_catalog.regconfig', 'pg_catalog.regdictionary', 'pg_catalog.regnamespace', 'pg_catalog.regrole', 'pg_catalog.regcollation']::pg_catalog.regtype[]) AS by_text) b
    LEFT JOIN LATERAL (
         SELECT x.fn, x.argtype FROM hashtypes x
          WHERE x.typid = c.typid AND ty.typtype = 'b'
          ORDER BY x.direct DESC
          LIMIT 1) h ON NOT b.by_text
),
vexpr AS (
  SELECT t.relid,
         pg_catalog.concat_ws(' # ',
           pg_catalog.string_agg(
             pg_catalog.format('COALESCE(%s(t.%I::%s, %s), %s)', c.fn, c.attname, c.argtype, c.seed, c.seed),
             ' # ' ORDER BY c.attname COLLATE "C") FILTER (WHERE c.fn IS NOT NULL),
           'pg_catalog.hash_record_extended(ROW('
             || pg_catalog.string_agg(pg_catalog.format('t.%I', c.attname), ', ' ORDER BY c.attname COLLATE "C")
                  FILTER (WHERE c.fn IS NULL AND c.attname IS NOT NULL)
             || '), 0)') AS expr
    FROM tabs t LEFT JOIN cols c ON c.relid = t.relid
   GROUP BY t.relid
)
SQL
    )
  else
    methods="found AS (SELECT t.relid, t.name, 't'::text AS method FROM tabs t)"
  fi
  [[ $methods == *'vexpr AS'* ]] ||
    methods+=", vexpr AS (SELECT NULL::pg_catalog.oid AS relid, NULL::text AS expr WHERE false)"
  cat <<SQL
WITH RECURSIVE
expected AS ($expected_cte),
tabs AS (
  SELECT c.oid AS relid, pg_catalog.format('%I.%I', n.nspname, c.relname) AS name
    FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
   WHERE c.relkind = 'r'
     AND n.nspname <> 'information_schema'
     AND n.nspname !~ '^pg_'
     AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                      WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                        AND d.objid = c.oid AND d.deptype = 'e')
),
$methods
SELECT pg_catalog.format(
         'SELECT %L, %L, pg_catalog.count(*), %s FROM ONLY %s AS t',
         pg_catalog.to_json(f.name)::text, m.method,
         CASE m.method
           WHEN 'r' THEN 'COALESCE(pg_catalog.sum(pg_catalog.hash_record_extended(ROW(t.*), 0)), 0)'
           WHEN 't' THEN 'COALESCE(pg_catalog.sum(pg_catalog.hashtextextended(ROW(t.*)::text, 0)), 0)'
           WHEN 'v' THEN pg_catalog.format('COALESCE(pg_catalog.sum(%s), 0)', COALESCE(NULLIF(x.expr, ''), '0'))
           ELSE '''-''' END,
         f.name)
  FROM found f
  LEFT JOIN vexpr x ON x.relid = f.relid
  LEFT JOIN expected e ON e.jname = pg_catalog.to_json(f.name)::text
 CROSS JOIN LATERAL (SELECT COALESCE(e.method, f.method) AS method) m
 ORDER BY f.name COLLATE "C"
\gexec
SQL
}

hb_manifest_path() { printf '%s.manifest' "${1%.*}"; }

hb_file_size() { stat -c %s -- "$1"; }

hb_sha256() {
  local sum
  sum=$(sha256sum -- "$1") || return 1
  printf '%s' "${sum%% *}"
}

# Modification time of file $1 in nanoseconds' precision, as the manifests record it.
hb_file_mtime() { stat -c %.9Y -- "$1"; }

# Checks that $1 is a complete dump as the backup wrote it: its manifest is complete and names
# it, and its size and SHA-256 match. $2=size skips the SHA-256 (for listings); $2=recorded
# skips it too when the file's modification time is still the one its manifest recorded (the
# file was not written since it was hashed; retention uses this, the drill and restores always
# hash). On failure HB_REASON says why.
hb_check_dump() {
  local dump=$1 depth=${2:-full} man k v rest first=1 last='' m_dump='' m_bytes='' m_sha='' m_end=''
  local m_mtime=''
  local ntables=0 actual
  man=$(hb_manifest_path "$dump")
  HB_REASON=''
  if [[ ! -f $dump ]]; then HB_REASON="dump file $dump does not exist"; return 1; fi
  if [[ ! -f $man ]]; then HB_REASON="manifest $man is missing (the dump was never completed)"; return 1; fi
  while IFS=$'\t' read -r k v rest; do
    if ((first)); then
      if [[ $k != homelab-backup-manifest || $v != "$HB_MANIFEST_FORMAT" ]]; then
        HB_REASON="$man is not a homelab backup manifest of format $HB_MANIFEST_FORMAT"
        return 1
      fi
      first=0
      continue
    fi
    case $k in
      dump) m_dump=$v ;;
      bytes) m_bytes=$v ;;
      sha256) m_sha=$v ;;
      mtime) m_mtime=$v ;;
      table) ((ntables++)) ;;
      end) m_end=$v ;;
    esac
    last=$k
  done <"$man"
  if [[ $last != end || $m_end != "$ntables" ]]; then
    HB_REASON="manifest $man is incomplete"
    return 1
  fi
  if [[ $m_dump != "${dump##*/}" ]]; then
    HB_REASON="manifest $man describes $m_dump, not ${dump##*/}"
    return 1
  fi
  actual=$(hb_file_size "$dump") || { HB_REASON="cannot read $dump"; return 1; }
  if [[ $actual != "$m_bytes" ]]; then
    HB_REASON="size is $actual bytes, the backup wrote $m_bytes (truncated or overwritten)"
    return 1
  fi
  [[ $depth == size ]] && return 0
  if [[ $depth == recorded && -n $m_mtime ]]; then
    actual=$(hb_file_mtime "$dump") || { HB_REASON="cannot read $dump"; return 1; }
    [[ $actual == "$m_mtime" ]] && return 0
  fi
  actual=$(hb_sha256 "$dump") || { HB_REASON="cannot read $dump"; return 1; }
  if [[ $actual != "$m_sha" ]]; then
    HB_REASON="SHA-256 is $actual, the backup wrote $m_sha (corrupted)"
    return 1
  fi
  return 0
}

# Prints one manifest header value ($2) of manifest $1.
hb_manifest_get() {
  local k v rest
  while IFS=$'\t' read -r k v rest; do
    if [[ $k == "$2" ]]; then
      printf '%s' "$v"
      return 0
    fi
  done <"$1"
  return 1
}

# The dumps of database directory $1 (encoded name $2), oldest first, into array HB_FILES.
hb_list_dumps() {
  local dir=$1 enc=$2 f name
  HB_FILES=()
  for f in "$dir/$enc".*.dump; do
    [[ -f $f ]] || continue
    name=${f##*/}
    [[ ${name#"$enc".} =~ ^[0-9]{8}T[0-9]{6}Z\.dump$ ]] && HB_FILES+=("$f")
  done
}

hb_list_globals() {
  local f name
  HB_FILES=()
  for f in "$HB_BACKUP_DIR/globals/globals".*.sql; do
    [[ -f $f ]] || continue
    name=${f##*/}
    [[ ${name#globals.} =~ ^[0-9]{8}T[0-9]{6}Z\.sql$ ]] && HB_FILES+=("$f")
  done
}

# Encoded names of the databases that have a dump directory, sorted.
hb_dumped_database_dirs() {
  local d
  HB_DIRS=()
  for d in "$HB_BACKUP_DIR"/db/*/; do
    [[ -d $d ]] || continue
    d=${d%/}
    HB_DIRS+=("${d##*/}")
  done
}

# The database name a dump directory's manifests record ($1: a manifest).
hb_manifest_database() {
  local j
  j=$(hb_manifest_get "$1" database) || return 1
  printf '%s' "$j"
}

# Decodes a JSON string literal made by PostgreSQL's to_json or hb_json_str (only the escapes
# those produce).
hb_json_unquote() {
  local s=$1 out='' c i
  s=${s#\"}
  s=${s%\"}
  for ((i = 0; i < ${#s}; i++)); do
    c=${s:i:1}
    if [[ $c == \\ ]]; then
      ((i++))
      c=${s:i:1}
      case $c in
        n) out+=$'\n' ;;
        r) out+=$'\r' ;;
        t) out+=$'\t' ;;
        b) out+=$'\b' ;;
        f) out+=$'\f' ;;
        u)
          printf -v c '%b' "\\x${s:i+3:2}"
          out+=$c
          ((i += 4))
          ;;
        *) out+=$c ;;
      esac
    else
      out+=$c
    fi
  done
  printf '%s' "$out"
}

# The database-level entries of dump $1 (the database itself, its owner, settings, per-role
# settings, grants, comment, security labels) as the SQL pg_restore writes for them, into
# HB_DB_SQL; $2, when given, is the dump's `pg_restore -l --create` listing, already read.
# On failure HB_REASON says why.
hb_database_entries_sql() {
  local dump=$1 list=${2-}
  if (($# < 2)); then
    list=$(pg_restore -l --create -- "$dump" 2>&1) || { HB_REASON="pg_restore cannot read $dump: $list"; return 1; }
  fi
  HB_DB_LIST=$(grep -E '^[0-9]+; [0-9]+ [0-9]+ (DATABASE - |DATABASE PROPERTIES - |(COMMENT|ACL|SECURITY LABEL) - DATABASE )' <<<"$list")
  HB_DB_SQL=''
  if [[ -n $HB_DB_LIST ]]; then
    HB_DB_SQL=$(pg_restore --create --schema-only -L <(printf '%s\n' "$HB_DB_LIST") -f - -- "$dump" 2>&1) ||
      { HB_REASON="pg_restore cannot read the database entries of $dump: $HB_DB_SQL"; return 1; }
  fi
}

# Splits HB_DB_SQL into statements and sorts them for database $1 (quoted as an identifier):
# HB_DB_CREATE gets the options of its CREATE DATABASE, HB_DB_STMTS every statement that gives
# the database its properties. A statement ends at a ';' at the end of a line outside quotes, so
# literals and quoted names that span lines (a comment with line breaks) stay whole. Fails, with
# HB_REASON, on a statement it does not know or one that never ends: restoring the database
# without it would lose it silently.
hb_split_database_statements() {
  local q=$1 line stmt='' c i quote='' first
  HB_DB_CREATE=''
  HB_DB_STMTS=()
  while IFS= read -r line; do
    if [[ -z $stmt && -z $quote ]]; then
      # Between statements: blank lines, comments and psql's meta-commands.
      [[ -z $line || $line == --* || $line == \\* ]] && continue
    fi
    stmt+=${stmt:+$'\n'}$line
    for ((i = 0; i < ${#line}; i++)); do
      c=${line:i:1}
      if [[ -n $quote ]]; then
        [[ $c == "$quote" ]] && quote=''
      elif [[ $c == "'" || $c == '"' ]]; then
        quote=$c
      elif [[ $c == - && ${line:i+1:1} == - ]]; then
        break
      fi
    done
    [[ -z $quote && $line == *';' ]] || continue
    case $stmt in
      "SET "* | "SELECT pg_catalog.set_config("*) ;;
      "CREATE DATABASE $q "*) HB_DB_CREATE=${stmt#"CREATE DATABASE $q "} ;;
      "ALTER DATABASE $q "* | "ALTER ROLE "*" IN DATABASE $q "* | "GRANT "*" ON DATABASE $q "* | \
        "REVOKE "*" ON DATABASE $q "* | "COMMENT ON DATABASE $q "* | "SECURITY LABEL "*" ON DATABASE $q "*)
        HB_DB_STMTS+=("$stmt")
        ;;
      *)
        first=${stmt%%$'\n'*}
        HB_REASON="the dump's database-level entries hold a statement this restore does not know how to apply to a renamed database: $first"
        return 1
        ;;
    esac
    stmt=''
  done <<<"$HB_DB_SQL"
  if [[ -n $stmt ]]; then
    first=${stmt%%$'\n'*}
    HB_REASON="the dump's database-level entries end inside a statement: $first"
    return 1
  fi
}

# Creates database $2 for restoring dump $1 (of database $3) with the dump's own encoding and
# locale; then hb_apply_database_properties gives it the dump's owner, settings, grants and
# comment. Prints nothing; on failure HB_REASON says why.
hb_create_database_for_dump() {
  local dump=$1 target=$2 orig=$3 qorig qtarget options sql err
  hb_database_entries_sql "$dump" || return 1
  qorig=$(hb_admin_psql -v n="$orig" <<<"SELECT pg_catalog.quote_ident(:'n');") || { HB_REASON="cannot reach the server"; return 1; }
  qtarget=$(hb_admin_psql -v n="$target" <<<"SELECT pg_catalog.quote_ident(:'n');") || { HB_REASON="cannot reach the server"; return 1; }
  HB_DB_QORIG=$qorig
  HB_DB_QTARGET=$qtarget
  hb_split_database_statements "$qorig" || return 1
  options=${HB_DB_CREATE:-WITH TEMPLATE = template0;}
  sql="CREATE DATABASE $qtarget $options"
  if ! err=$(hb_admin_psql 2>&1 <<<"$sql"); then
    HB_REASON="cannot create database $target: $err"
    return 1
  fi
}

# Applies the database-level statements of the dump read by hb_create_database_for_dump (owner,
# ALTER DATABASE ... SET, per-role settings in the database, grants, comment, security labels)
# to the restored database, all of them or none. pg_restore only applies them with --create,
# which cannot rename the database.
hb_apply_database_properties() {
  local stmt sql='' err
  local from=" DATABASE $HB_DB_QORIG " to=" DATABASE $HB_DB_QTARGET "
  ((${#HB_DB_STMTS[@]} > 0)) || return 0
  sql='BEGIN;'$'\n'
  for stmt in "${HB_DB_STMTS[@]}"; do
    sql+=${stmt/"$from"/"$to"}$'\n'
  done
  sql+='COMMIT;'
  if ! err=$(hb_admin_psql 2>&1 <<<"$sql"); then
    HB_REASON="cannot apply the database's owner, settings, grants or comment: $err"
    return 1
  fi
}

# Computes the checksums of database $1 into file $2 (lines as hb_checksum_sql prints them);
# $3 (optional): manifest whose methods to use.
hb_compute_checksums() {
  local db=$1 out=$2 manifest=${3:-} version values='' sep='' k j m rest err
  version=$(hb_server_version_num) || { HB_REASON="cannot reach the server"; return 1; }
  if [[ -n $manifest ]]; then
    while IFS=$'\t' read -r k j m rest; do
      [[ $k == table ]] || continue
      values+="$sep($(hb_sql_lit "$j"), $(hb_sql_lit "$m"))"
      sep=', '
    done <"$manifest"
  fi
  if ! err=$({
    hb_session_settings_sql
    hb_checksum_sql "$version" "$values"
  } | hb_psql -F $'\t' -d "$(hb_conninfo "$db")" 2>&1 >"$out"); then
    HB_REASON="checksum pass over $db failed: $err"
    return 1
  fi
  # set_config's reply lines are not table lines
  local tmp=$out.lines line
  : >"$tmp" || { HB_REASON="cannot write $tmp"; return 1; }
  while IFS= read -r line; do
    [[ $line == \"*$'\t'* ]] && printf '%s\n' "$line"
  done <"$out" >"$tmp"
  mv -f -- "$tmp" "$out"
}

# Compares the table lines of manifest $1 with checksum file $2 (database $3 for the report).
# Prints one report line per table, prefixed with $4; sets HB_TABLES and HB_MISMATCHES.
hb_compare_checksums() {
  local manifest=$1 actual=$2 db=$3 prefix=$4 only_failures=${5:-0}
  local k j m rows sum status
  local -A exp_rows=() exp_sum=() act_rows=() act_sum=()
  local -a order=()
  HB_TABLES=0
  HB_MISMATCHES=0
  while IFS=$'\t' read -r k j m rows sum; do
    [[ $k == table ]] || continue
    exp_rows["$j"]=$rows
    exp_sum["$j"]=$sum
    order+=("$j")
  done <"$manifest"
  while IFS=$'\t' read -r j m rows sum; do
    act_rows["$j"]=$rows
    act_sum["$j"]=$sum
    [[ -n ${exp_rows["$j"]+x} ]] || order+=("$j")
  done <"$actual"
  local jdb
  jdb=$(hb_json_str "$db")
  for j in "${order[@]}"; do
    HB_TABLES=$((HB_TABLES + 1))
    if [[ -z ${act_rows["$j"]+x} ]]; then
      status=missing
    elif [[ -z ${exp_rows["$j"]+x} ]]; then
      status=unexpected
    elif [[ ${exp_rows["$j"]} != "${act_rows["$j"]}" || ${exp_sum["$j"]} != "${act_sum["$j"]}" ]]; then
      status=mismatch
    else
      status=ok
    fi
    [[ $status == ok ]] || HB_MISMATCHES=$((HB_MISMATCHES + 1))
    if [[ $status != ok || $only_failures == 0 ]]; then
      printf '%s {"kind":"table","database":%s,"table":%s,"status":"%s","expected_rows":%s,"actual_rows":%s,"expected_checksum":%s,"actual_checksum":%s}\n' \
        "$prefix" "$jdb" "$j" "$status" \
        "$(hb_json_int "${exp_rows["$j"]-}")" "$(hb_json_int "${act_rows["$j"]-}")" \
        "$(if [[ -n ${exp_sum["$j"]+x} ]]; then hb_json_str "${exp_sum["$j"]}"; else printf null; fi)" \
        "$(if [[ -n ${act_sum["$j"]+x} ]]; then hb_json_str "${act_sum["$j"]}"; else printf null; fi)"
    fi
  done
}

# Restores dump $1 into new database $2 (for original database $3); drops $2 again when the
# restore fails. $4: "properties" to apply the database-level entries too.
hb_restore_into() {
  local dump=$1 target=$2 orig=$3 props=${4:-} err
  hb_create_database_for_dump "$dump" "$target" "$orig" || return 1
  HB_CREATED_DB=$target
  if ! err=$(pg_restore -w --exit-on-error --jobs="$HB_RESTORE_JOBS" -d "$(hb_conninfo "$target")" -- "$dump" 2>&1); then
    HB_REASON="pg_restore into $target failed: $err"
    if [[ $err == *"role "*" does not exist"* ]]; then
      HB_REASON+=$'\n'"The dump's roles are missing on this server: restore the globals first (restore.sh --globals --latest)."
    fi
    return 1
  fi
  if [[ $props == properties ]]; then
    hb_apply_database_properties || return 1
  fi
}

hb_drop_database() {
  local err
  err=$(hb_psql -d "$(hb_conninfo "$(hb_maintenance_db_for "$1")")" -v db="$1" 2>&1 <<<'DROP DATABASE IF EXISTS :"db" WITH (FORCE);') || {
    hb_log "warning: could not drop database $1: $err"
    return 1
  }
}

# A database name made of $1 and suffix $2 that fits PostgreSQL's 63-byte limit.
hb_db_name_with_suffix() {
  hb_admin_psql -v base="$1" -v suffix="$2" <<'SQL'
SELECT pg_catalog.left(:'base', k) || :'suffix'
  FROM pg_catalog.generate_series(pg_catalog.char_length(:'base'), 0, -1) AS k
 WHERE pg_catalog.octet_length(pg_catalog.left(:'base', k) || :'suffix') <= 63
 LIMIT 1;
SQL
}

# Writes $2 to file $1 through a temporary file and a rename, so that readers see either the old
# or the new content.
hb_write_atomic() {
  local tmp
  tmp="${1%/*}/.${1##*/}.partial"
  printf '%s\n' "$2" >"$tmp" 2>/dev/null || { rm -f -- "$tmp"; return 1; }
  mv -f -- "$tmp" "$1" 2>/dev/null || { rm -f -- "$tmp"; return 1; }
}

# The newest file of HB_FILES (oldest first) that passes hb_check_dump, into HB_DUMP; every
# newer one that fails goes to HB_BAD (file TAB reason lines).
hb_pick_latest_valid() {
  local i
  HB_DUMP=''
  HB_BAD=''
  for ((i = ${#HB_FILES[@]} - 1; i >= 0; i--)); do
    if hb_check_dump "${HB_FILES[i]}"; then
      HB_DUMP=${HB_FILES[i]}
      return 0
    fi
    HB_BAD+="${HB_FILES[i]}"$'\t'"$HB_REASON"$'\n'
  done
  return 1
}

# Path of $1 relative to the backup directory (as the status records store it).
hb_rel() { printf '%s' "${1#"$HB_BACKUP_DIR"/}"; }
