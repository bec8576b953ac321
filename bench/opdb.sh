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

cargo build --release --locked -p sentio-sql --bin sentio --manifest-path "$ROOT/Cargo.toml" >&2
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
declare -A T
for r in $(seq $REPS); do
  t=$(now); SENTIO_OPDB_URL=$URL "$SENTIO" sql --no-progress -c \
    "SELECT COUNT(*), SUM(k), MAX(label), SUM(amount), MAX(at) FROM opdb.big" >/dev/null 2>&1
  T[sentio_read]+="$(echo "$(now) - $t" | bc) "
  t=$(now); psql -Xq "$URL" -c "COPY big TO STDOUT (FORMAT binary)" >/dev/null
  T[copy_out]+="$(echo "$(now) - $t" | bc) "
  psql -Xq "$URL" -c "TRUNCATE big_copy"
  t=$(now); SENTIO_OPDB_URL=$URL "$SENTIO" sql --no-progress -c \
    "INSERT INTO opdb.big_copy SELECT * FROM opdb.big" >/dev/null 2>&1
  T[sentio_write]+="$(echo "$(now) - $t" | bc) "
  [ "$(psql -XAtq "$URL" -c 'SELECT COUNT(*) FROM big_copy')" = "$ROWS" ] || { echo "write lost rows" >&2; exit 1; }
  psql -Xq "$URL" -c "TRUNCATE big_copy"
  t=$(now); psql -Xq "$URL" -c "\\copy big_copy FROM '$WORK/big.bin' (FORMAT binary)"
  T[copy_in]+="$(echo "$(now) - $t" | bc) "
done

python3 - "$ROWS" "${T[sentio_read]}" "${T[copy_out]}" "${T[sentio_write]}" "${T[copy_in]}" <<'PY'
import statistics, sys
rows = int(sys.argv[1])
med = lambda s: statistics.median(float(x) for x in s.split())
sr, co, sw, ci = (med(a) for a in sys.argv[2:6])
print(f"| operation | Sentio s | Sentio rows/s | COPY s | COPY rows/s | Sentio ÷ COPY (time) |")
print(f"|---|---|---|---|---|---|")
print(f"| read {rows:,} rows | {sr:.2f} | {rows/sr:,.0f} | {co:.2f} | {rows/co:,.0f} | {sr/co:.2f} |")
print(f"| write {rows:,} rows | {sw:.2f} | {rows/sw:,.0f} | {ci:.2f} | {rows/ci:,.0f} | {sw/ci:.2f} |")
PY
