#!/usr/bin/env bash
# Start, stop or query the local Azure Storage emulator (Azurite, pinned in infra/azurite) for wf, the tests and CI.
#
#   scripts/azurite.sh start  [--dir DIR] [--blob-port N] [--queue-port N] [--table-port N]
#   scripts/azurite.sh stop   [--dir DIR]
#   scripts/azurite.sh status [--dir DIR]
#   scripts/azurite.sh connection-string [--dir DIR]
#
# DIR (default: .wf/azurite under the repository root) holds the on-disk data (data/), the log (azurite.log) and the
# pid file (azurite.pid). `start` and `connection-string` print the emulator's connection string, alone on stdout
# (messages go to stderr), so CI can do
#   export WF_TEST_AZURITE_CONNECTION_STRING="$(scripts/azurite.sh start)"
# It holds only Azurite's public, well-known development key, never a real secret.
#
# Flags passed to Azurite, and why:
#   --location DIR/data       on-disk persistence. NOT --inMemoryPersistence: under DTFx load it stalls for 20-45 s.
#   --skipApiVersionCheck     Azure.Storage.Blobs 12.30.1 sends x-ms-version 2026-10-06, Azurite 3.37.0 accepts at
#                             most 2026-06-06 and answers 400 otherwise. Pinning the service version in our own
#                             BlobClientOptions would not cover the queue/table/blob clients DTFx builds internally,
#                             and would pin production Azure to an older version too; skipping the check on the
#                             emulator side fixes every client at once and changes nothing against real Azure.
#   --loose                   ignore headers/parameters Azurite does not implement instead of failing the request.
#   --disableTelemetry        the emulator must not try to reach the internet.
#   --silent                  no per-request access log (it costs throughput and fills the log).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
azurite_pkg="$repo_root/infra/azurite"
azurite_bin="$azurite_pkg/node_modules/.bin/azurite"

cmd="${1:-}"
[[ -n "$cmd" ]] && shift || true
work_dir="$repo_root/.wf/azurite"
blob_port=10000
queue_port=10001
table_port=10002
ready_timeout_s="${AZURITE_READY_TIMEOUT_S:-60}"

usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --dir) work_dir="$2"; shift 2 ;;
    --blob-port) blob_port="$2"; shift 2 ;;
    --queue-port) queue_port="$2"; shift 2 ;;
    --table-port) table_port="$2"; shift 2 ;;
    -h|--help) usage ;;
    *) echo "azurite.sh: unknown option '$1'" >&2; usage ;;
  esac
done

mkdir -p "$work_dir"
work_dir="$(cd "$work_dir" && pwd)"
pid_file="$work_dir/azurite.pid"
ports_file="$work_dir/azurite.ports"
log_file="$work_dir/azurite.log"

running_pid() {
  [[ -f "$pid_file" ]] || return 1
  local pid; pid="$(cat "$pid_file")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && { echo "$pid"; return 0; }
  return 1
}

port_in_use() {
  # bash's /dev/tcp connects: success means something already listens there.
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

connection_string() {
  local b="$1" q="$2" t="$3"
  # Azurite's documented, public development account and key (not a secret).
  echo "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:$b/devstoreaccount1;QueueEndpoint=http://127.0.0.1:$q/devstoreaccount1;TableEndpoint=http://127.0.0.1:$t/devstoreaccount1;"
}

ensure_installed() {
  if [[ -x "$azurite_bin" ]]; then return 0; fi
  if ! command -v npm >/dev/null 2>&1; then
    echo "azurite.sh: Azurite is not installed and npm is not on PATH; install Node.js (>= 20) and npm, then run 'npm ci' in infra/azurite" >&2
    exit 1
  fi
  echo "azurite.sh: installing the pinned Azurite (npm ci in infra/azurite)..." >&2
  # --ignore-scripts: Azurite needs no install scripts (the one dependency that has one only prints a warning).
  (cd "$azurite_pkg" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) >&2
}

start() {
  if pid="$(running_pid)"; then
    read -r b q t < "$ports_file"
    echo "azurite.sh: already running (pid $pid, blob port $b)" >&2
    connection_string "$b" "$q" "$t"
    return 0
  fi
  ensure_installed
  for p in "$blob_port" "$queue_port" "$table_port"; do
    if port_in_use "$p"; then
      echo "azurite.sh: port $p on 127.0.0.1 is already in use; stop what listens there or pass --blob-port/--queue-port/--table-port" >&2
      exit 1
    fi
  done
  mkdir -p "$work_dir/data"
  # setsid: its own process group, so `stop` can end node and anything it spawned, and the caller's Ctrl-C does not.
  setsid node "$azurite_pkg/node_modules/azurite/dist/src/azurite.js" \
    --location "$work_dir/data" \
    --blobHost 127.0.0.1 --blobPort "$blob_port" \
    --queueHost 127.0.0.1 --queuePort "$queue_port" \
    --tableHost 127.0.0.1 --tablePort "$table_port" \
    --skipApiVersionCheck --loose --disableTelemetry --silent \
    >>"$log_file" 2>&1 < /dev/null &
  local pid=$!
  echo "$pid" > "$pid_file"
  echo "$blob_port $queue_port $table_port" > "$ports_file"

  local deadline=$(( SECONDS + ready_timeout_s ))
  until port_in_use "$blob_port" && port_in_use "$queue_port" && port_in_use "$table_port"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$pid_file"
      echo "azurite.sh: Azurite exited during start; last lines of $log_file:" >&2
      tail -n 20 "$log_file" >&2
      exit 1
    fi
    if (( SECONDS >= deadline )); then
      echo "azurite.sh: Azurite did not answer on ports $blob_port/$queue_port/$table_port within ${ready_timeout_s}s; stopping it" >&2
      stop_pid "$pid"
      exit 1
    fi
    sleep 0.2
  done
  echo "azurite.sh: Azurite 3.37.0 listening on 127.0.0.1:$blob_port (blob) $queue_port (queue) $table_port (table), pid $pid, data in $work_dir/data" >&2
  connection_string "$blob_port" "$queue_port" "$table_port"
}

stop_pid() {
  local pid="$1"
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  # Azurite saves its databases right after SIGTERM but may linger while idle keep-alive connections time out.
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
}

stop() {
  if pid="$(running_pid)"; then
    stop_pid "$pid"
    echo "azurite.sh: stopped Azurite (pid $pid)" >&2
  else
    echo "azurite.sh: not running" >&2
  fi
  rm -f "$pid_file" "$ports_file"
}

status() {
  if pid="$(running_pid)"; then
    read -r b q t < "$ports_file"
    if port_in_use "$b"; then
      echo "running (pid $pid, blob $b, queue $q, table $t, data in $work_dir/data)"
      return 0
    fi
    echo "starting or unresponsive (pid $pid, blob port $b not answering)"
    return 1
  fi
  echo "not running"
  return 3
}

print_connection_string() {
  if running_pid >/dev/null; then
    read -r b q t < "$ports_file"
    connection_string "$b" "$q" "$t"
  else
    echo "azurite.sh: not running" >&2
    return 3
  fi
}

case "$cmd" in
  start) start ;;
  connection-string) print_connection_string ;;
  stop) stop ;;
  status) status ;;
  *) usage ;;
esac
