"""The Python daemon Spark starts on each executor (`spark.python.daemon.module`): PySpark's, after a preload.

PySpark's daemon forks one worker per task slot, and each worker then imports pyarrow,
pandas and the stage's code and loads what the stage needs on its own: on a core of this
project's 2-core machine ~1.5 s per worker for the filter (jieba's dictionary alone ~1 s),
and as much memory again per slot. This daemon first imports, and calls, what the stage
lists in `PRELOAD_ENV` ("module" or "module:function", comma-separated), then runs
PySpark's daemon, so every worker it forks starts with all of it done, the pages shared
copy-on-write. The list reaches the daemon through the context's Python environment
(`SparkContext.environment`), which Spark passes to the daemon it starts for the tasks'
environment, on a local master and on every executor alike.

Forking after imports is what PySpark's daemon avoids, for libraries that start threads
on import: pyarrow's allocator does (jemalloc's background thread), and registers fork
handlers for it, as Python's multiprocessing relies on. A preload that fails is reported on
stderr and skipped: it only costs its head start, and the worker meets any real error.
"""
from __future__ import annotations

import importlib
import os
import sys

PRELOAD_ENV = "CRAWL2MODEL_WORKER_PRELOAD"
# What every worker imports before its first task, whatever the stage.
COMMON = ("pyarrow", "pandas", "pyspark.worker")


def preload(spec: str) -> None:
    """Import (and call) each entry of `spec` and COMMON; a failure is reported and skipped."""
    for item in (*COMMON, *(s.strip() for s in spec.split(",") if s.strip())):
        module, _, function = item.partition(":")
        try:
            loaded = importlib.import_module(module)
            if function:
                getattr(loaded, function)()
        except Exception as e:  # noqa: BLE001 - see the module docstring
            print(f"crawl2model worker daemon: preloading {item} failed: {type(e).__name__}: {e}",
                  file=sys.stderr, flush=True)


def main() -> None:
    # The daemon tells the JVM its port on stdout: nothing a preload prints may land there first.
    stdout = os.dup(1)
    os.dup2(2, 1)
    try:
        preload(os.environ.get(PRELOAD_ENV, ""))
    finally:
        sys.stdout.flush()
        os.dup2(stdout, 1)
        os.close(stdout)
    from pyspark.daemon import manager

    manager()


if __name__ == "__main__":
    main()
