"""Spark settings that fit the cluster a job runs on and the input it reads.

A fixed profile either asks for more than a worker has (a 4-core, 8 GB
executor on 2-core workers never starts: "Initial job has not accepted any
resources") or wastes most of a big one. So for a standalone master the
executor is sized from what its workers offer (the master's JSON status page),
and for every cluster the shuffle starts wide enough for the input and the
cores and lets adaptive execution coalesce what is too small. Settings a
profile or `--spark-conf` states explicitly win over these.
"""
from __future__ import annotations

import json
import math
import time
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING

from crawl2model.core.fs import total_size
from crawl2model.core.log import get_logger

MASTER_UI_PORT = 8080           # Spark's default for the standalone master's web UI
ADVISORY_PARTITION = 64 << 20   # what AQE coalesces shuffle partitions towards
HEAP_SHARE = 0.5                # of a worker's memory for the executor JVM; Python workers use the rest
MIN_HEAP_MB = 512
MAX_SHUFFLE_PARTITIONS = 20_000
# An input of at most this much per core keeps executors alive for minutes, not hours: their JVMs
# compile with C1 only, as local mode's does (infra/spark/local.conf), because C2's compilation
# costs more CPU than it saves in so short a life (the sample on a 2-core cluster: ~2x less JVM CPU).
SHORT_JOB_BYTES_PER_CORE = 256 << 20
# An input of at most this much per core is seconds of work for the JVM: it interprets Spark's
# expressions instead of generating a class per operator and projection and compiling it with
# Janino, which in a fresh JVM costs more CPU than it saves (the 400-document filter: ~1 s less
# JVM CPU of 12, 0.5-2 s less wall; dedup of 50,000 documents, 39 MB on 2 cores: no change).
INTERPRETED_BYTES_PER_CORE = 32 << 20
INTERPRETED = {"spark.sql.codegen.wholeStage": "false", "spark.sql.codegen.factoryMode": "NO_CODEGEN"}
SIMPLIFIED_TRACEBACK_CONF = "spark.sql.execution.pyspark.udf.simplifiedTraceback.enabled"
SHORT_JOB_JVM = "-XX:TieredStopAtLevel=1 -XX:+UseParallelGC -XX:ParallelGCThreads={threads}"

log = get_logger("spark")

if TYPE_CHECKING:
    from collections.abc import Callable

    from pyspark import SparkContext


@dataclass(frozen=True)
class Worker:
    cores: int
    memory_mb: int


def standalone_workers(master: str, ui_port: int = MASTER_UI_PORT, timeout: float = 3.0) -> list[Worker] | None:
    """The alive workers of a `spark://HOST:PORT` master, from its web UI's /json/; None if unreachable."""
    host = master.removeprefix("spark://").split(",")[0].rsplit(":", 1)[0]
    try:
        with urllib.request.urlopen(f"http://{host}:{ui_port}/json/", timeout=timeout) as r:
            status = json.load(r)
    except (OSError, ValueError):
        return None
    return [Worker(int(w["cores"]), int(w["memory"])) for w in status.get("workers", [])
            if w.get("state") == "ALIVE"]


def executor_conf(workers: list[Worker]) -> dict[str, str]:
    """One executor per worker, as large as the smallest worker allows."""
    if not workers:
        return {}
    cores = min(w.cores for w in workers)
    heap = max(MIN_HEAP_MB, int(min(w.memory_mb for w in workers) * HEAP_SHARE))
    return {"spark.executor.cores": str(cores), "spark.executor.memory": f"{heap}m",
            "spark.cores.max": str(sum(w.cores for w in workers))}


def shuffle_conf(total_cores: int, input_bytes: int) -> dict[str, str]:
    """A shuffle width for the input (one advisory-sized partition per 64 MB, at least 2 per core),
    with AQE coalescing small partitions and splitting skewed joins."""
    width = max(2 * max(total_cores, 1), math.ceil(input_bytes / ADVISORY_PARTITION))
    return {
        "spark.sql.shuffle.partitions": str(min(width, MAX_SHUFFLE_PARTITIONS)),
        "spark.default.parallelism": str(max(2 * total_cores, 2)),
        "spark.sql.adaptive.enabled": "true",
        "spark.sql.adaptive.coalescePartitions.enabled": "true",
        "spark.sql.adaptive.advisoryPartitionSizeInBytes": str(ADVISORY_PARTITION),
        # Coalesce towards the advisory size, not down to spark.default.parallelism only: a small
        # shuffle (a few MB of dedup's edges) runs as one task, not one per core, each paying
        # its launch on an executor; a large one still gets one task per 64 MB.
        "spark.sql.adaptive.coalescePartitions.parallelismFirst": "false",
        "spark.sql.adaptive.skewJoin.enabled": "true",
    }


def fitted_conf(master: str | None, stated: dict[str, str], inputs: list[str]) -> dict[str, str]:
    """What to set for `master` beyond what a profile or the flags `stated`: for local mode (its
    profile is tuned) only interpreted expressions for a small input; on a cluster also the
    executor size, a shuffle width for the `inputs` and the JIT. Nothing under spark-submit."""
    if not master:
        return {}
    if master.startswith("local"):
        if any("://" in p and not p.startswith("file://") for p in inputs):
            return {}  # no listing of an object store here: a large input is assumed
        small = codegen_conf(local_cores(master), total_size(inputs))
        return {k: v for k, v in small.items() if k not in stated}
    derived: dict[str, str] = {}
    total = int(stated.get("spark.cores.max", 0) or 0)
    if master.startswith("spark://"):
        workers = standalone_workers(master, int(stated.get("spark.master.ui.port", MASTER_UI_PORT)))
        if workers is None:
            log.warning(f"cannot read the workers of {master} from its web UI; executor size left to the profile "
                        "(set spark.master.ui.port if the UI is not on 8080)")
        else:
            derived.update(executor_conf(workers))
            # The session waits (up to spark.scheduler.maxRegisteredResourcesWaitingTime, 30 s) for
            # all of them, so the first job is not spread over whichever executor registered first.
            derived["spark.scheduler.minRegisteredResourcesRatio"] = "1.0"
            total = total or sum(w.cores for w in workers)
            log.info(f"{len(workers)} workers, {total} cores: executors of {derived.get('spark.executor.cores')} "
                     f"cores and {derived.get('spark.executor.memory')}")
    if not total:
        instances = int(stated.get("spark.executor.instances", 0) or 0)
        total = instances * int(stated.get("spark.executor.cores", 1) or 1)
    input_bytes = total_size(inputs)
    derived.update(shuffle_conf(total or 8, input_bytes))
    cores = int(stated.get("spark.executor.cores") or derived.get("spark.executor.cores") or 1)
    derived.update(jit_conf(total or 8, cores, input_bytes))
    derived.update(codegen_conf(total or 8, input_bytes))
    return {k: v for k, v in derived.items() if k not in stated}


def jit_conf(total_cores: int, executor_cores: int, input_bytes: int) -> dict[str, str]:
    """C1-only JIT for the executors and the driver of a short job (see SHORT_JOB_BYTES_PER_CORE)."""
    if input_bytes > SHORT_JOB_BYTES_PER_CORE * max(total_cores, 1):
        return {}
    return {"spark.executor.defaultJavaOptions": SHORT_JOB_JVM.format(threads=max(executor_cores, 1)),
            "spark.driver.defaultJavaOptions": SHORT_JOB_JVM.format(threads=2)}


def codegen_conf(total_cores: int, input_bytes: int) -> dict[str, str]:
    """Interpreted expressions for a small input (see INTERPRETED_BYTES_PER_CORE)."""
    return dict(INTERPRETED) if input_bytes <= INTERPRETED_BYTES_PER_CORE * max(total_cores, 1) else {}


def local_cores(master: str) -> int:
    """Task slots of a local master: local -> 1, local[N] / local[N,F] -> N, local[*] -> the host's cores."""
    import os
    import re

    m = re.fullmatch(r"local(?:\[(\*|\d+)(?:,\d+)?\])?", master)
    if m is None:
        raise ValueError(f"not a local master: {master}")
    return (os.cpu_count() or 1) if m.group(1) == "*" else int(m.group(1) or 1)


def _executors(sc: "SparkContext") -> int:
    return len(sc.statusTracker().getExecutorInfos()) - 1  # less the driver


def task_slots(sc: "SparkContext") -> int:
    """How many tasks run at once: a local master's cores, or executors times their cores."""
    if sc.master.startswith("local"):
        return local_cores(sc.master)
    return max(1, _executors(sc)) * int(sc.getConf().get("spark.executor.cores", "1"))


def warm_executors(sc: "SparkContext") -> float:
    """Start every executor's Python worker before the first stage's timer; the seconds it took.

    An executor fetches and unpacks a shipped environment (`--ship`) when its first task
    arrives, and starts a Python worker for it: ~15 s on a 2-core host, which the first stage
    would otherwise count as its own work. One tiny task per executor core makes each
    executor do both now (workers are reused by the stages: `spark.python.worker.reuse`); the
    time is logged as the session's start, where a cluster's start-up belongs.
    """
    t0 = time.perf_counter()
    slots = task_slots(sc)
    seen = _run_in_workers(sc, slots, None)
    seconds = time.perf_counter() - t0
    log.info(f"session start: {_executors(sc)} executors "
             f"({slots} cores) unpacked their environment and started Python ({', '.join(sorted(seen))}) "
             f"in {seconds:.1f} s")
    return seconds


def prepare_workers(sc: "SparkContext", prepare: "Callable[[], object] | None" = None) -> None:
    """Run `prepare` (or just start Python) in every worker slot, in the background.

    A Python worker's start (the daemon, pyarrow, pandas: ~1 s of a core) and a stage's
    models (jieba's dictionary alone takes 0.7 s) otherwise fall on the first batches of
    the first Python stage; here they overlap the session's own start, the driver's planning,
    the reading of footers and listings and the first JVM-only jobs, and the stages reuse
    the workers with what they loaded (`spark.python.worker.reuse`).
    """
    import threading

    slots = task_slots(sc)

    def run() -> None:
        try:
            _run_in_workers(sc, slots, prepare)
        except Exception as e:  # noqa: BLE001 - only a head start is lost; the stage meets any real error itself
            log.debug(f"preparing the Python workers failed: {e}")

    threading.Thread(target=run, name="prepare-python-workers", daemon=True).start()


def _run_in_workers(sc: "SparkContext", slots: int, prepare: "Callable[[], object] | None") -> set[str]:
    """One tiny task per slot, each calling `prepare`; the Python executables that ran them.

    An RDD job, not a DataFrame one: it needs no SparkSession, and in a fresh JVM Catalyst's
    analysis, planning and code generation of even `range().mapInArrow()` delay the first
    Python task by 1-2 s of its CPU. Spark keeps one pool of workers per environment, and
    its SQL runners add SPARK_SIMPLIFIED_TRACEBACK to theirs; the same variable in the
    context's environment (which both kinds of task start from) lets the SQL stages reuse
    these workers (tests/test_spark.py checks that they do).
    """
    if sc.getConf().get(SIMPLIFIED_TRACEBACK_CONF, "true").lower() == "true":
        sc.environment.setdefault("SPARK_SIMPLIFIED_TRACEBACK", "1")

    def started(_):
        import sys

        if prepare is not None:
            prepare()
        yield sys.executable

    return set(sc.parallelize(range(slots), slots).mapPartitions(started).collect())
