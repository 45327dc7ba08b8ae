#!/usr/bin/env bash
# Start a Spark standalone master and one worker on this host, using the Spark
# that pyspark ships (no separate Spark download). Workers on other hosts run:
#   SPARK_MASTER=spark://MASTER:7077 infra/spark/start-standalone.sh worker
set -euo pipefail
SPARK_HOME="${SPARK_HOME:-$(python -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')}"
export SPARK_HOME
export PYSPARK_PYTHON="${PYSPARK_PYTHON:-$(command -v python)}"
role="${1:-all}"
master="${SPARK_MASTER:-spark://$(hostname -f):7077}"
if [[ "$role" == all || "$role" == master ]]; then
  "$SPARK_HOME/bin/spark-class" org.apache.spark.deploy.master.Master --host "$(hostname -f)" --port 7077 \
    >"${TMPDIR:-/tmp}/spark-master.log" 2>&1 &
  echo "master: $master (log ${TMPDIR:-/tmp}/spark-master.log)"
  sleep 3
fi
if [[ "$role" == all || "$role" == worker ]]; then
  "$SPARK_HOME/bin/spark-class" org.apache.spark.deploy.worker.Worker "$master" \
    >"${TMPDIR:-/tmp}/spark-worker.log" 2>&1 &
  echo "worker -> $master (log ${TMPDIR:-/tmp}/spark-worker.log)"
fi
echo "submit with: crawl2model ingest --master $master --spark-profile standalone ..."
