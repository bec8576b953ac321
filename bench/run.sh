#!/usr/bin/env bash
# Sentio against Spark, DuckDB and scikit-learn on the same files, in the same
# run: statistics queries, training, prediction and operational-DB writes.
#
#   bash bench/run.sh [--quick] [--scale S] [--reps N] [--train-rows N]
#                     [--workloads stats,frontend,scaleout,train,predict,write,recommend]
#                     [--bin DIR] [--out FILE]
#
# Installs its peers (pyspark, duckdb, scikit-learn, pyarrow, psutil) into
# bench/.venv when they are missing, builds Sentio in release mode (unless
# --bin names a folder with sentio, sentio-scheduler and sentio-executor), and
# runs bench/harness.py. --quick is a small run (< 5 minutes) that the test
# suite uses so the harness never rots; its numbers mean nothing.
# docs/benchmarks.md explains the workloads and holds the results.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)

bash "$here/install.sh"
command -v java >/dev/null || { echo "Spark needs Java 17 or newer (java is not on PATH)" >&2; exit 1; }

bin=""
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin=$2; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
if [ -z "$bin" ]; then
  echo "== building Sentio (release)" >&2
  cargo build --release --locked --bins --manifest-path "$root/Cargo.toml" >&2
  bin="$root/target/release"
fi
exec "$here/.venv/bin/python" "$here/harness.py" --bin "$bin" "${args[@]}"
