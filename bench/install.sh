#!/usr/bin/env bash
# Installs the benchmark's peers into bench/.venv when they are missing:
# pyspark, duckdb, scikit-learn, implicit (ALS for implicit feedback),
# lightgbm and xgboost-cpu (boosted trees),
# pyarrow and psutil, from PyPI. Spark also
# needs Java 17 or newer on PATH (scripts/test.sh installs it when missing).
set -euo pipefail
venv="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/.venv"
if ! "$venv/bin/python" -c 'import pyspark, duckdb, sklearn, implicit, lightgbm, xgboost, pyarrow, psutil' 2>/dev/null; then
  echo "== installing the peers into bench/.venv (pyspark, duckdb, scikit-learn, implicit, lightgbm, xgboost, pyarrow, psutil)" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    'pyspark==4.3.*' 'duckdb==1.*' 'scikit-learn==1.*' 'implicit==0.7.*' 'lightgbm==4.*' 'xgboost-cpu==3.*' 'pyarrow' 'psutil' 'numpy'
fi
