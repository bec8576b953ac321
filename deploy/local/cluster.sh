#!/usr/bin/env bash
# Starts, checks and stops a local Sentio cluster: one sentio-scheduler and N
# sentio-executor processes on loopback.
#
#   deploy/local/cluster.sh start  [--executors N] [--scheduler-port P] [--executor-port Q]
#                                  [--vcores V] [--pin] [--dir DIR] [--bin DIR]
#                                  [--token T] [--users FILE] [--flight-sql-port F]
#                                  [--tls-cert PEM --tls-key PEM]
#   deploy/local/cluster.sh status [--dir DIR]
#   deploy/local/cluster.sh stop   [--dir DIR]
#
# --pin runs executor i on core i mod nproc alone (taskset), to measure how
# SQL scales with executors of one core each (bench/run.sh --workloads scaleout).
#
# Executor i (0-based) listens on Q+3i (tasks), Q+3i+1 (gRPC) and Q+3i+2
# (health: /healthz, /readyz). `start` returns once the scheduler accepts
# connections and every executor reports ready (registered with the
# scheduler); if one does not within 60 s, it prints that log, stops what it
# started and exits 1. `stop` ends every process it started (TERM, then KILL
# after 10 s) and leaves none behind. Logs and pid files live in DIR
# (default ./.sentio-cluster). The processes inherit this shell's environment
# (SENTIO_*, AWS_*), so S3 settings reach every one of them.
#
# With --token T (an `analyst` API token, 16 characters or more) and/or
# --users FILE (entries of a users file, docs/deploy.md), the scheduler also
# serves the Flight SQL front end on port F (default 50060), with a users file
# DIR/users.toml made of both, and `start` prints its endpoint on a line of
# its own: flight_sql=grpc://127.0.0.1:F (grpc+tls:// with --tls-cert and
# --tls-key, the front end's certificate and key).
set -euo pipefail

cmd=${1:-}
[ $# -gt 0 ] && shift
executors=2
scheduler_port=50050
executor_port=50051
vcores=2
pin=
token=
users=
flight_sql_port=50060
tls_cert=
tls_key=
dir=${SENTIO_CLUSTER_DIR:-./.sentio-cluster}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bin="$here/../../target/debug"

while [ $# -gt 0 ]; do
  case "$1" in
    --executors) executors=$2; shift 2 ;;
    --scheduler-port) scheduler_port=$2; shift 2 ;;
    --executor-port) executor_port=$2; shift 2 ;;
    --vcores) vcores=$2; shift 2 ;;
    --pin) pin=1; shift ;;
    --dir) dir=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --token) token=$2; shift 2 ;;
    --users) users=$2; shift 2 ;;
    --flight-sql-port) flight_sql_port=$2; shift 2 ;;
    --tls-cert) tls_cert=$2; shift 2 ;;
    --tls-key) tls_key=$2; shift 2 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
done

find_bin() {
  if [ -x "$bin/$1" ]; then echo "$bin/$1"; elif command -v "$1" >/dev/null; then command -v "$1"
  else echo "cannot find $1 in $bin or on PATH (build it: cargo build --bins)" >&2; exit 1; fi
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

http_ok() { # GET http://127.0.0.1:$1$2 answers 200
  local reply
  reply=$( (exec 3<>"/dev/tcp/127.0.0.1/$1" && printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&3 && head -c 12 <&3) 2>/dev/null) || return 1
  [[ "$reply" == *" 200"* ]]
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

write_users() { # the front end's users file: FILE's entries, then the token's
  local out=$1
  : >"$out"
  chmod 600 "$out"
  if [ -n "$users" ]; then cat "$users" >>"$out"; echo >>"$out"; fi
  if [ -n "$token" ]; then
    if [ ${#token} -lt 16 ]; then echo "--token: use 16 characters or more" >&2; exit 2; fi
    printf '[[token]]\nname = "cluster-sh"\nrole = "analyst"\nsha256 = "%s"\n' \
      "$(printf %s "$token" | sha256sum | cut -d' ' -f1)" >>"$out"
  fi
}

stop_all() {
  shopt -s nullglob
  local pids=() f
  for f in "$dir"/executor-*.pid "$dir"/scheduler.pid; do
    alive "$f" && { kill -TERM "$(cat "$f")" 2>/dev/null || true; pids+=("$(cat "$f")"); }
  done
  for _ in $(seq 100); do
    local left=0 p
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && left=1; done
    [ $left = 0 ] && break
    sleep 0.1
  done
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  rm -f "$dir"/*.pid
}

wait_for() { # wait_for NAME LOG PIDFILE CHECK...
  local name=$1 log=$2 pidfile=$3; shift 3
  local why="did not become ready within 60 s"
  for _ in $(seq 600); do
    "$@" && return 0
    if ! alive "$pidfile"; then why="exited before it was ready"; break; fi
    sleep 0.1
  done
  echo "$name $why; its errors and last lines ($log):" >&2
  # A backtrace fills the tail; the error that caused it is printed above it.
  grep -m 5 -iE '^(error|Error:)|panicked' "$log" >&2 || true
  tail -n 30 "$log" >&2 || true
  stop_all
  exit 1
}

check_ports() { # every port this cluster binds is distinct and free
  local ports=("$scheduler_port") i p
  for i in $(seq 0 $((executors - 1))); do
    p=$((executor_port + 3 * i))
    ports+=("$p" $((p + 1)) $((p + 2)))
  done
  if [ -n "$token$users" ]; then ports+=("$flight_sql_port"); fi
  local dup
  dup=$(printf '%s\n' "${ports[@]}" | sort | uniq -d | head -n 1)
  if [ -n "$dup" ]; then
    echo "port $dup is given twice (the scheduler's, three per executor from --executor-port, the front end's)" >&2
    exit 2
  fi
  for p in "${ports[@]}"; do
    if port_open "$p"; then echo "port $p is already in use" >&2; exit 1; fi
  done
}

case "$cmd" in
  start)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if alive "$dir/scheduler.pid"; then echo "a cluster is already running from $dir (stop it first)" >&2; exit 1; fi
    scheduler=$(find_bin sentio-scheduler)
    executor=$(find_bin sentio-executor)
    check_ports
    front_end=()
    if [ -n "$token$users" ]; then
      write_users "$dir/users.toml"
      front_end=(--users "$dir/users.toml" --flight-sql-port "$flight_sql_port")
      if [ -n "$tls_cert$tls_key" ]; then front_end+=(--tls-cert "$tls_cert" --tls-key "$tls_key"); fi
    fi
    "$scheduler" --bind-host 127.0.0.1 --external-host 127.0.0.1 --bind-port "$scheduler_port" \
      "${front_end[@]}" --task-distribution round-robin \
      --executor-timeout-seconds 20 --expire-dead-executor-interval-seconds 5 \
      >"$dir/scheduler.log" 2>&1 &
    echo $! >"$dir/scheduler.pid"
    wait_for scheduler "$dir/scheduler.log" "$dir/scheduler.pid" port_open "$scheduler_port"
    if [ ${#front_end[@]} -gt 0 ]; then
      wait_for "Flight SQL front end" "$dir/scheduler.log" "$dir/scheduler.pid" port_open "$flight_sql_port"
    fi
    for i in $(seq 0 $((executors - 1))); do
      p=$((executor_port + 3 * i))
      mkdir -p "$dir/executor-$i"
      pinned=()
      if [ -n "$pin" ]; then pinned=(taskset -c $((i % $(nproc)))); fi
      "${pinned[@]}" "$executor" --bind-host 127.0.0.1 --external-host 127.0.0.1 \
        --bind-port "$p" --bind-grpc-port $((p + 1)) --bind-health-port $((p + 2)) \
        --scheduler-host 127.0.0.1 --scheduler-port "$scheduler_port" \
        --vcores "$vcores" --work-dir "$dir/executor-$i" \
        --executor-heartbeat-interval-seconds 5 \
        >"$dir/executor-$i.log" 2>&1 &
      echo $! >"$dir/executor-$i.pid"
    done
    for i in $(seq 0 $((executors - 1))); do
      p=$((executor_port + 3 * i))
      wait_for "executor $i" "$dir/executor-$i.log" "$dir/executor-$i.pid" http_ok $((p + 2)) /readyz
    done
    echo "Sentio cluster ready: scheduler df://127.0.0.1:$scheduler_port, $executors executors (logs in $dir)"
    if [ ${#front_end[@]} -gt 0 ]; then
      if [ -n "$tls_cert" ]; then echo "flight_sql=grpc+tls://127.0.0.1:$flight_sql_port"
      else echo "flight_sql=grpc://127.0.0.1:$flight_sql_port"; fi
    fi
    ;;
  status)
    shopt -s nullglob
    code=0
    for f in "$dir"/scheduler.pid "$dir"/executor-*.pid; do
      name=$(basename "$f" .pid)
      if alive "$f"; then echo "$name: running (pid $(cat "$f"))"; else echo "$name: not running"; code=1; fi
    done
    exit $code
    ;;
  stop)
    stop_all
    echo "Sentio cluster in $dir stopped"
    ;;
  *)
    sed -n '2,26p' "$0" >&2
    exit 2
    ;;
esac
