#!/usr/bin/env bash
# Benchmark: rows per second for reading and writing 1M rows of an operational
# DB table through Sentio, side by side with PostgreSQL's own binary COPY of the
# same rows, on the same machine, in the same run (alternating, 3 repetitions,
# medians). Needs PostgreSQL on 127.0.0.1:5432 (trust auth), as the tests do.
#
#   bash bench/opdb.sh [ROWS]        (default 1000000)
#
# Sentio runs standalone (in-process scheduler + executor) from a release
# build. "Sentio read" decodes every column of every row into Arrow inside the
# cluster and aggregates them (only one row travels to the client); "COPY out"
# is `COPY big TO STDOUT (FORMAT binary)` into /dev/null. "Sentio write" is
# `INSERT INTO opdb.big_copy SELECT * FROM opdb.big` (it reads the rows too,
# then stages and publishes them); "COPY in" is `COPY big_copy FROM` a binary
# file made beforehand.
set -euo pipefail
ROWS=${1:-1000000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REPS=3
DB=sentio_bench_opdb
ADMIN=postgres://postgres@127.0.0.1:5432/postgres
URL=postgres://postgres@127.0.0.1:5432/$DB

cargo build --release --locked -p sentio-cli --bin sentio --manifest-path "$ROOT/Cargo.toml" >&2
SENTIO="$ROOT/target/release/sentio"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

psql -Xq "$ADMIN" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
psql -Xq "$URL" -v ON_ERROR_STOP=1 -c "
  CREATE TABLE big (id bigint PRIMARY KEY, k int, label text, amount numeric(12,2), at timestamp);
  INSERT INTO big SELECT g, g % 1000, 'label-' || (g % 7), (g % 10000) / 100.0,
         timestamp '2024-01-01' + g * interval '1 second' FROM generate_series(1, $ROWS) g;
  ANALYZE big;
  CREATE TABLE big_copy (LIKE big INCLUDING ALL);"
psql -Xq "$URL" -c "\\copy big TO '$WORK/big.bin' (FORMAT binary)"

now() { date +%s.%N; }
# Sentio runs unpaced (duty 1) and at its default bulk duty (0.5, see
# docs/sql.md "Pacing"): the first is its speed, the second what it costs to
# leave the database room for its applications.
DUTIES="1 0.5"
declare -A T
for r in $(seq $REPS); do
  for d in $DUTIES; do
    t=$(now); SENTIO_OPDB_BULK_DUTY=$d SENTIO_OPDB_URL=$URL "$SENTIO" sql --no-progress -c \
      "SELECT COUNT(*), SUM(k), MAX(label), SUM(amount), MAX(at) FROM opdb.big" >/dev/null 2>&1
    T[sentio_read_$d]+="$(echo "$(now) - $t" | bc) "
  done
  t=$(now); psql -Xq "$URL" -c "COPY big TO STDOUT (FORMAT binary)" >/dev/null
  T[copy_out]+="$(echo "$(now) - $t" | bc) "
  for d in $DUTIES; do
    psql -Xq "$URL" -c "TRUNCATE big_copy"
    t=$(now); SENTIO_OPDB_BULK_DUTY=$d SENTIO_OPDB_URL=$URL "$SENTIO" sql --no-progress -c \
      "INSERT INTO opdb.big_copy SELECT * FROM opdb.big" >/dev/null 2>&1
    T[sentio_write_$d]+="$(echo "$(now) - $t" | bc) "
    [ "$(psql -XAtq "$URL" -c 'SELECT COUNT(*) FROM big_copy')" = "$ROWS" ] || { echo "write lost rows" >&2; exit 1; }
  done
  psql -Xq "$URL" -c "TRUNCATE big_copy"
  t=$(now); psql -Xq "$URL" -c "\\copy big_copy FROM '$WORK/big.bin' (FORMAT binary)"
  T[copy_in]+="$(echo "$(now) - $t" | bc) "
done

python3 - "$ROWS" "${T[copy_out]}" "${T[copy_in]}" \
  "${T[sentio_read_1]}" "${T[sentio_write_1]}" "${T[sentio_read_0.5]}" "${T[sentio_write_0.5]}" <<'PY'
import statistics, sys
rows = int(sys.argv[1])
med = lambda s: statistics.median(float(x) for x in s.split())
co, ci, r1, w1, r5, w5 = (med(a) for a in sys.argv[2:8])
print("| operation | Sentio s | Sentio rows/s | COPY s | COPY rows/s | Sentio ÷ COPY (time) |")
print("|---|---|---|---|---|---|")
for name, s, c in [("read", r1, co), ("write", w1, ci)]:
    print(f"| {name} {rows:,} rows, unpaced | {s:.2f} | {rows/s:,.0f} | {c:.2f} | {rows/c:,.0f} | {s/c:.2f} |")
for name, s, c in [("read", r5, co), ("write", w5, ci)]:
    print(f"| {name} {rows:,} rows, duty 0.5 | {s:.2f} | {rows/s:,.0f} | {c:.2f} | {rows/c:,.0f} | {s/c:.2f} |")
PY
