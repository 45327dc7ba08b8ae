#!/usr/bin/env bash
# Start a Spark standalone master and/or workers on this host, from the Spark that pyspark
# ships (no separate Spark download). Everything it writes goes under --dir: logs/, work/
# (executors' folders, where --ship archives unpack), pids/ and master-url.
#
#   infra/spark/start-standalone.sh --dir /scratch/spark --workers 2 --cores 4 --memory 16g
#   infra/spark/start-standalone.sh --dir /scratch/spark --role workers --master spark://HEAD:7077
#   infra/spark/stop-standalone.sh /scratch/spark
#
# Daemons start with a minimal environment (PATH, JAVA_HOME, SPARK_HOME, HOME): executors
# see no virtualenv of this shell, so a job runs the Python its driver names, or the packed
# environment it ships (crawl2model <stage> --master URL --ship dist/crawl2model-env.tar.gz).
set -euo pipefail
usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
dir="" role=all workers=1 cores="" memory="" host="" port=7077 webui=8080 master=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --dir) dir="$2"; shift 2;;
    --role) role="$2"; shift 2;;
    --workers) workers="$2"; shift 2;;
    --cores) cores="$2"; shift 2;;
    --memory) memory="$2"; shift 2;;
    --host) host="$2"; shift 2;;
    --port) port="$2"; shift 2;;
    --webui-port) webui="$2"; shift 2;;
    --master) master="$2"; shift 2;;
    -h|--help) usage;;
    *) echo "start-standalone.sh: unknown argument $1 (see --help)" >&2; exit 2;;
  esac
done
[[ -n "$dir" ]] || { echo "start-standalone.sh: --dir DIR is required (logs, work dirs and pids go there)" >&2; exit 2; }
case "$role" in all|master|workers) ;; *) echo "start-standalone.sh: --role is all, master or workers" >&2; exit 2;; esac
SPARK_HOME="${SPARK_HOME:-$(python -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')}"
JAVA_HOME="${JAVA_HOME:-$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")}"
host="${host:-$(hostname -f)}"
master="${master:-spark://$host:$port}"
mkdir -p "$dir/logs" "$dir/work" "$dir/pids"
dir="$(cd "$dir" && pwd)"
daemon() {  # name, class, args...
  local name="$1"; shift
  env -i PATH="/usr/local/bin:/usr/bin:/bin" JAVA_HOME="$JAVA_HOME" SPARK_HOME="$SPARK_HOME" HOME="${HOME:-/tmp}" \
    SPARK_LOCAL_IP="$host" SPARK_LOG_DIR="$dir/logs" SPARK_NO_DAEMONIZE=1 \
    setsid "$SPARK_HOME/bin/spark-class" "$@" >"$dir/logs/$name.log" 2>&1 < /dev/null &
  echo $! >"$dir/pids/$name.pid"
}
wait_for() {  # log file, pattern
  for _ in $(seq 1 120); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.5; done
  echo "start-standalone.sh: timed out waiting for '$2' in $1" >&2; exit 1
}
if [[ "$role" != workers ]]; then
  daemon master org.apache.spark.deploy.master.Master --host "$host" --port "$port" --webui-port "$webui"
  wait_for "$dir/logs/master.log" "I have been elected leader"
  echo "$master" >"$dir/master-url"
  echo "master: $master (web UI http://$host:$webui, log $dir/logs/master.log)"
fi
if [[ "$role" != master ]]; then
  for i in $(seq 1 "$workers"); do
    args=(--work-dir "$dir/work/worker-$i" --host "$host" --webui-port 0)
    [[ -n "$cores" ]] && args+=(--cores "$cores")
    [[ -n "$memory" ]] && args+=(--memory "$memory")
    daemon "worker-$i" org.apache.spark.deploy.worker.Worker "${args[@]}" "$master"
  done
  for i in $(seq 1 "$workers"); do wait_for "$dir/logs/worker-$i.log" "Successfully registered with master"; done
  echo "$workers worker(s) -> $master${cores:+, $cores cores}${memory:+, $memory} each (logs $dir/logs/)"
fi
echo "submit with: crawl2model ingest --master $master --ship dist/crawl2model-env.tar.gz ..." \
     "(--spark-conf spark.master.ui.port=$webui if not 8080)"
