#!/usr/bin/env bash
# Installs Sentio's binaries, systemd units and configuration on a Linux host.
# The CloudFormation template's user data runs it; it works as is on any host.
#
#   install.sh --role scheduler|executor [--role …] [--executors N]
#              [--bin DIR] [--root DIR] [--no-start]
#
# Configuration comes from the environment (nothing secret is accepted):
#   SENTIO_LAKE                  lake folder or s3://bucket/prefix (required)
#   SENTIO_SCHEDULER_HOST        the scheduler's address as executors reach it (required)
#   SENTIO_EXTERNAL_HOST         this host's address as the others reach it
#                                (default: SENTIO_SCHEDULER_HOST for a scheduler)
#   AWS_REGION                   region of the lake and the secrets
#   SENTIO_BIND_HOST             address to listen on (default 0.0.0.0)
#   SENTIO_SCHEDULER_PORT        default 50050
#   SENTIO_EXECUTOR_PORT         default 50051; executor N uses PORT+3N,
#                                its gRPC port the next, its health port the one after
#   SENTIO_SECRET_SOURCE         secretsmanager | ssm | none (default none)
#   SENTIO_OPDB_URL_SECRET       secret id / parameter name of the writer URL
#   SENTIO_OPDB_READ_URL_SECRET  … of the read replica URL (optional)
#   SENTIO_USERS_SECRET          … of the front end's users file (scheduler; optional)
#   SENTIO_FLIGHT_SQL_PORT       the front end's port, default 50060
#   SENTIO_MEMORY_LIMIT          what an executor's tasks may hold in memory (e.g. 48GiB;
#                                default 70 % of the host's memory); beyond it they spill
#   SENTIO_EXECUTOR_ARGS, SENTIO_SCHEDULER_ARGS   extra flags
#   SENTIO_SCRIPT                a SQL script to run on a schedule (scheduler; a file)
#   SENTIO_SCRIPT_NAME           its name in ml.script_runs and the units (default nightly)
#   SENTIO_SCRIPT_SCHEDULE       when, as systemd's OnCalendar (default *-*-* 02:00:00)
#
# Installs into ROOT (default /): ROOT/usr/local/bin/sentio{,-scheduler,-executor},
# ROOT/usr/local/lib/sentio/sentio-fetch-secrets, ROOT/etc/systemd/system/*.service,
# ROOT/etc/sentio/sentio.env and, for executors 1…N-1 of a host that runs
# several, ROOT/etc/sentio/executor-<i>.env. With ROOT = / it also creates the
# `sentio` system user and enables and starts the units (unless --no-start).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
roles=()
executors=1
bin="$here/../../bin"
root=/
start=1

die() { echo "install.sh: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --role) roles+=("$2"); shift 2 ;;
    --executors) executors=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --root) root=$2; shift 2 ;;
    --no-start) start=0; shift ;;
    -h|--help) sed -n '2,32p' "$0"; exit 0 ;;
    *) die "unknown option: $1" ;;
  esac
done

[ ${#roles[@]} -gt 0 ] || die "give --role scheduler and/or --role executor"
for r in "${roles[@]}"; do
  case "$r" in scheduler|executor) ;; *) die "unknown role: $r" ;; esac
done
[[ "$executors" =~ ^[1-9][0-9]*$ ]] || die "--executors must be a positive number"
has_role() { local r; for r in "${roles[@]}"; do [ "$r" = "$1" ] && return 0; done; return 1; }

# Secrets never go into files on disk or the user data: refuse them here.
for v in SENTIO_OPDB_URL SENTIO_OPDB_READ_URL AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN; do
  [ -z "${!v:-}" ] || die "$v is set: credentials are not installed into files; store the DB URLs in \
Secrets Manager or SSM and name them with SENTIO_OPDB_URL_SECRET / SENTIO_OPDB_READ_URL_SECRET"
done
[ -n "${SENTIO_LAKE:-}" ] || die "SENTIO_LAKE is required (a folder or s3://bucket/prefix)"
[ -n "${SENTIO_SCHEDULER_HOST:-}" ] || die "SENTIO_SCHEDULER_HOST is required"
if [ -z "${SENTIO_EXTERNAL_HOST:-}" ]; then
  has_role scheduler && ! has_role executor || die "SENTIO_EXTERNAL_HOST is required for an executor"
  SENTIO_EXTERNAL_HOST=$SENTIO_SCHEDULER_HOST
fi
scheduler_port=${SENTIO_SCHEDULER_PORT:-50050}
executor_port=${SENTIO_EXECUTOR_PORT:-50051}
source_kind=${SENTIO_SECRET_SOURCE:-none}
case "$source_kind" in secretsmanager|ssm|none) ;; *) die "SENTIO_SECRET_SOURCE must be secretsmanager, ssm or none" ;; esac

# One value per line, no newline or quote that could smuggle in another key.
check_value() {
  case "$2" in *$'\n'*|*\'*|*\"*|*\\*) die "$1 holds a newline, quote or backslash" ;; esac
}

for b in sentio sentio-scheduler sentio-executor; do
  [ -x "$bin/$b" ] || die "cannot find $bin/$b (give --bin DIR)"
done

install -d -m 0755 "$root/usr/local/bin" "$root/usr/local/lib/sentio" "$root/etc/systemd/system"
install -d -m 0755 "$root/etc/sentio"
for b in sentio sentio-scheduler sentio-executor; do
  install -m 0755 "$bin/$b" "$root/usr/local/bin/$b"
done
install -m 0755 "$here/sentio-fetch-secrets" "$root/usr/local/lib/sentio/sentio-fetch-secrets"
units=(sentio-secrets.service)
has_role scheduler && units+=(sentio-scheduler.service)
has_role executor && units+=(sentio-executor@.service)
for u in "${units[@]}"; do
  install -m 0644 "$here/$u" "$root/etc/systemd/system/$u"
done

# A scheduled script: sentio-script@NAME.{service,timer}, the script in
# /etc/sentio/scripts/NAME.sql and the schedule in a drop-in.
script_name=""
if [ -n "${SENTIO_SCRIPT:-}" ]; then
  has_role scheduler || die "SENTIO_SCRIPT runs on the scheduler host: give --role scheduler"
  [ -f "$SENTIO_SCRIPT" ] || die "SENTIO_SCRIPT: no such file: $SENTIO_SCRIPT"
  script_name=${SENTIO_SCRIPT_NAME:-nightly}
  [[ "$script_name" =~ ^[A-Za-z0-9_-]+$ ]] || die "SENTIO_SCRIPT_NAME must be letters, digits, _ and -"
  schedule=${SENTIO_SCRIPT_SCHEDULE:-*-*-* 02:00:00}
  check_value SENTIO_SCRIPT_SCHEDULE "$schedule"
  install -d -m 0755 "$root/etc/sentio/scripts" "$root/etc/systemd/system/sentio-script@$script_name.timer.d"
  install -m 0644 "$SENTIO_SCRIPT" "$root/etc/sentio/scripts/$script_name.sql"
  for u in sentio-script@.service sentio-script@.timer; do
    install -m 0644 "$here/$u" "$root/etc/systemd/system/$u"
  done
  printf '[Timer]\n# Written by install.sh from SENTIO_SCRIPT_SCHEDULE.\nOnCalendar=\nOnCalendar=%s\n' "$schedule" \
    >"$root/etc/systemd/system/sentio-script@$script_name.timer.d/schedule.conf"
fi

env_file="$root/etc/sentio/sentio.env"
{
  echo "# Written by deploy/systemd/install.sh; keys are described in its sentio.env example."
  echo "# Nothing secret: the DB URLs are fetched at boot by sentio-secrets.service."
  for kv in \
    "SENTIO_LAKE=$SENTIO_LAKE" \
    "AWS_REGION=${AWS_REGION:-}" \
    "SENTIO_BIND_HOST=${SENTIO_BIND_HOST:-0.0.0.0}" \
    "SENTIO_EXTERNAL_HOST=$SENTIO_EXTERNAL_HOST" \
    "SENTIO_SCHEDULER_HOST=$SENTIO_SCHEDULER_HOST" \
    "SENTIO_SCHEDULER_PORT=$scheduler_port" \
    "SENTIO_FLIGHT_SQL_PORT=${SENTIO_FLIGHT_SQL_PORT:-50060}" \
    "SENTIO_EXECUTOR_PORT=$executor_port" \
    "SENTIO_EXECUTOR_GRPC_PORT=$((executor_port + 1))" \
    "SENTIO_EXECUTOR_HEALTH_PORT=$((executor_port + 2))" \
    "SENTIO_SCHEDULER_ARGS=${SENTIO_SCHEDULER_ARGS:-}" \
    "SENTIO_EXECUTOR_ARGS=${SENTIO_EXECUTOR_ARGS:-}" \
    "SENTIO_MEMORY_LIMIT=${SENTIO_MEMORY_LIMIT:-}" \
    "RUST_LOG=${RUST_LOG:-info}" \
    "SENTIO_SECRET_SOURCE=$source_kind" \
    "SENTIO_OPDB_URL_SECRET=${SENTIO_OPDB_URL_SECRET:-}" \
    "SENTIO_OPDB_READ_URL_SECRET=${SENTIO_OPDB_READ_URL_SECRET:-}" \
    "SENTIO_USERS_SECRET=${SENTIO_USERS_SECRET:-}"; do
    check_value "${kv%%=*}" "${kv#*=}"
    echo "$kv"
  done
} >"$env_file.tmp"
chmod 0644 "$env_file.tmp"
mv "$env_file.tmp" "$env_file"

if has_role executor; then
  for i in $(seq 1 $((executors - 1))); do
    p=$((executor_port + 3 * i))
    printf '# Ports of executor %d on this host.\nSENTIO_EXECUTOR_PORT=%d\nSENTIO_EXECUTOR_GRPC_PORT=%d\nSENTIO_EXECUTOR_HEALTH_PORT=%d\n' \
      "$i" "$p" $((p + 1)) $((p + 2)) >"$root/etc/sentio/executor-$i.env"
  done
fi

if [ "$root" = / ]; then
  id sentio >/dev/null 2>&1 || useradd --system --home-dir /var/lib/sentio --shell /usr/sbin/nologin sentio
  install -d -o sentio -g sentio -m 0750 /var/lib/sentio
  systemctl daemon-reload
  enable=(sentio-secrets.service)
  has_role scheduler && enable+=(sentio-scheduler.service)
  if has_role executor; then
    for i in $(seq 0 $((executors - 1))); do enable+=("sentio-executor@$i.service"); done
  fi
  [ -z "$script_name" ] || enable+=("sentio-script@$script_name.timer")
  if [ $start = 1 ]; then systemctl enable --now "${enable[@]}"; else systemctl enable "${enable[@]}"; fi
fi
echo "installed Sentio (${roles[*]}) into $root"
