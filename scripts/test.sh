#!/usr/bin/env bash
# Sentio's whole test suite, exactly as CI runs it (.ci/run calls this).
#
# Installs or starts what the tests need when it is missing — an
# S3-compatible server (moto, from PyPI, into ./.venv), scikit-learn, cfn-lint,
# the AWS CLI and the ADBC Flight SQL driver (into the same .venv), the benchmark's peers (pyspark, duckdb,
# scikit-learn, lightgbm, xgboost into bench/.venv) and Java, PostgreSQL, MariaDB and Chromium —
# then checks formatting (cargo fmt) and lints (clippy, -D warnings), builds
# the binaries and runs every test.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '\n== %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=0
apt_install() {
  [ $apt_updated = 1 ] || { as_root apt-get update -qq; apt_updated=1; }
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

# --- S3-compatible server (moto) ------------------------------------------
if [ ! -x .venv/bin/moto_server ]; then
  log "installing moto[server] into .venv"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check 'moto[server]==5.*'
fi
# scikit-learn: the independent implementation ML accuracy is compared with.
if ! .venv/bin/python -c 'import sklearn' 2>/dev/null; then
  log "installing scikit-learn into .venv"
  .venv/bin/pip install --quiet --disable-pip-version-check 'scikit-learn==1.*'
fi
# cfn-lint checks the CloudFormation template; the AWS CLI is what
# deploy/systemd/sentio-fetch-secrets calls (against moto's Secrets Manager).
if [ ! -x .venv/bin/cfn-lint ] || [ ! -x .venv/bin/aws ]; then
  log "installing cfn-lint and awscli into .venv"
  .venv/bin/pip install --quiet --disable-pip-version-check 'cfn-lint==1.*' 'awscli==1.*'
fi
# The Python ADBC Flight SQL driver: a client written elsewhere that the
# front-end tests connect with.
if ! .venv/bin/python -c 'import adbc_driver_flightsql.dbapi, pyarrow' 2>/dev/null; then
  log "installing the ADBC Flight SQL driver and pyarrow into .venv"
  .venv/bin/pip install --quiet --disable-pip-version-check 'adbc-driver-flightsql==1.*' 'pyarrow>=14'
fi
export SENTIO_MOTO_SERVER="$PWD/.venv/bin/moto_server"
# The benchmark's peers (pyspark, duckdb, scikit-learn, lightgbm, xgboost) in bench/.venv, and
# Java for Spark: the test suite runs the benchmark harness in quick mode.
bash bench/install.sh
command -v java >/dev/null || { log "installing Java (for Spark)"; apt_install openjdk-17-jre-headless; }

# --- PostgreSQL on 127.0.0.1:5432 -----------------------------------------
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  log "starting PostgreSQL"
  command -v pg_ctlcluster >/dev/null || apt_install postgresql postgresql-client
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 60); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.5; done
  pg_isready -h 127.0.0.1 -p 5432 || echo "warning: PostgreSQL is not answering on 127.0.0.1:5432" >&2
fi

# --- MariaDB on 127.0.0.1:3306 --------------------------------------------
if ! (exec 3<>/dev/tcp/127.0.0.1/3306) 2>/dev/null; then
  log "starting MariaDB"
  command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || apt_install mariadb-server
  as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
  for _ in $(seq 60); do (exec 3<>/dev/tcp/127.0.0.1/3306) 2>/dev/null && break; sleep 0.5; done
fi

# --- systemd-analyze (checks the unit files in deploy/systemd) -------------
command -v systemd-analyze >/dev/null || { log "installing systemd"; apt_install systemd; }

# --- headless Chromium (renders the demo's HTML report) --------------------
command -v chromium >/dev/null || { log "installing chromium"; apt_install chromium; }
command -v strace >/dev/null || { log "installing strace (the front-end test lists the client's connections)"; apt_install strace; }

# --- style, lints, build and test ------------------------------------------
# rustfmt and clippy ship with the toolchain (rustup's default profile); a
# minimal toolchain gets them here.
for component in rustfmt clippy; do
  cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1 || rustup component add "$component"
done
log "checking formatting (rustfmt.toml)"
cargo fmt --all --check
log "linting (clippy, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "building the binaries"
cargo build --workspace --bins --locked

log "running the tests"
# The never-blocks test runs last and alone: it compares the database's
# latency under Sentio's load with an idle baseline, so no other test may load
# the machine while it measures. It prints both latencies (--nocapture), so
# every run's log shows them, passed or not.
# cargo-nextest, when the machine has it, runs each integration test in a
# process of its own and prints each one's time, so a CI log shows which
# tests grew; plain `cargo test` runs the same tests otherwise.
never_blocks=opdb::the_operational_db_is_never_blocked
cargo test --workspace --exclude sentio-integration --locked -- --test-threads 2
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run -p sentio-integration --locked --test-threads 2 --no-fail-fast -E "not test(=$never_blocks)"
else
  cargo test -p sentio-integration --locked -- --test-threads 2 --skip "$never_blocks"
fi
cargo test -p sentio-integration --locked -- --test-threads 1 --exact "$never_blocks" --nocapture
