#!/usr/bin/env bash
# Stop what start-standalone.sh started under DIR: workers (and their executors) first, then
# the master. Only the processes whose pids it recorded are touched.
#   infra/spark/stop-standalone.sh DIR
set -uo pipefail
dir="${1:?usage: stop-standalone.sh DIR}"
stop() {  # pid file
  local pid; pid="$(cat "$1" 2>/dev/null)" || return 0
  if kill -0 "$pid" 2>/dev/null; then
    local children; children="$(pgrep -P "$pid" || true)"   # a worker's executors
    kill "$pid" $children 2>/dev/null
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" $children 2>/dev/null
  fi
  rm -f "$1"
}
for f in "$dir"/pids/worker-*.pid; do [[ -e "$f" ]] && stop "$f"; done
[[ -e "$dir/pids/master.pid" ]] && stop "$dir/pids/master.pid"
echo "stopped the Spark standalone daemons of $dir"
