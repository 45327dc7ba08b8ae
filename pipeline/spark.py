"""The one place a SparkSession is built.

Run from plain Python (the CLI, tests), the session is embedded in local mode
with the `local` profile; run under `spark-submit --master ...`, the master and
conf given there win, because nothing here sets a master unless asked to. A profile under
`infra/spark/<name>.conf` (spark-defaults format, package data) or `--spark-conf k=v` adds conf.
"""
from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from crawl2model.core.errors import ConfigError
from crawl2model.core.log import get_logger
from crawl2model.core.resources import resource

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

PROFILES_DIR = resource("crawl2model.infra", "spark")

# Settings every stage relies on; profiles and flags may override them.
BASE_CONF: dict[str, str] = {
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    # Batches of a few hundred documents keep mapInArrow memory bounded even
    # when documents are large.
    "spark.sql.execution.arrow.maxRecordsPerBatch": "512",
    "spark.sql.session.timeZone": "UTC",
    # Row groups of a few thousand documents: Spark makes one input task per
    # row group, so huge row groups would serialize the next stage.
    "spark.hadoop.parquet.block.size": str(32 * 1024 * 1024),
    "spark.hadoop.parquet.block.row.count.limit": "4096",
    "spark.sql.parquet.compression.codec": "zstd",
    "spark.python.worker.reuse": "true",
    # PySpark's daemon, after importing what the stage's workers need (pipeline/worker_daemon.py).
    "spark.python.daemon.module": "crawl2model.pipeline.worker_daemon",
}


def read_profile(name_or_path: str) -> dict[str, str]:
    """Parse a spark-defaults style file: `key value` per line, `#` comments."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PROFILES_DIR / f"{name_or_path}.conf"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in PROFILES_DIR.glob("*.conf")))
        raise ConfigError(f"Spark profile not found: {name_or_path} (known: {known})")
    conf: dict[str, str] = {}
    for lineno, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split(None, 1)
        if len(parts) != 2:
            raise ConfigError(f"{path}:{lineno}: expected 'key value', got {raw.strip()!r}")
        conf[parts[0]] = parts[1].strip()
    return conf


def parse_conf_pairs(pairs: Iterable[str] | None) -> dict[str, str]:
    conf = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--spark-conf expects key=value, got {pair!r}")
        conf[key.strip()] = value.strip()
    return conf


def get_spark(app_name: str = "crawl2model", master: str | None = None,
              profile: str | None = None, conf: dict[str, str] | None = None,
              ship: str | None = None, inputs: list[str] | None = None,
              worker_preload: Sequence[str] = ()) -> "SparkSession":
    """Return the active session, or build one with the project's settings.

    Conf layers, later wins: BASE_CONF < what fits the cluster and the input
    (`pipeline.cluster`) < the profile < `conf`. `ship` is a packed environment
    (`make dist`) the executors unpack and run instead of a Python of their host.
    `worker_preload` is what each executor's Python daemon imports before it forks
    workers (`pipeline.worker_daemon`); a session already running keeps its own.
    """
    # Workers must run this interpreter so they find the installed packages.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark import SparkConf, SparkContext
    from pyspark.sql import SparkSession

    from crawl2model.pipeline.cluster import fitted_conf, prepare_workers, warm_executors
    from crawl2model.pipeline.jvm_archive import driver_options, publish_at_exit
    from crawl2model.pipeline.worker_daemon import PRELOAD_ENV

    active = SparkSession.getActiveSession()
    if active is not None:
        return active

    settings = dict(BASE_CONF)
    under_spark_submit = "PYSPARK_GATEWAY_PORT" in os.environ
    log4j = PROFILES_DIR / "log4j2.properties"
    driver_opts = [f"-Dlog4j2.configurationFile=file:{log4j}"] if log4j.is_file() else []
    if not under_spark_submit and (archive := driver_options()):  # we start the JVM: it can map one
        driver_opts.append(archive)
    if driver_opts:
        settings["spark.driver.extraJavaOptions"] = " ".join(driver_opts)
    if os.environ.get("CRAWL2MODEL_SPARK_UI", "1") == "0":
        settings["spark.ui.enabled"] = "false"
    if not sys.stderr.isatty():
        settings["spark.ui.showConsoleProgress"] = "false"  # progress bars garble logs
    stated: dict[str, str] = {}
    if profile:
        stated.update(read_profile(profile))
    elif not master and not under_spark_submit:
        # Embedded local mode: the local profile's small shuffle sizes, not the
        # cluster default of 200 partitions per shuffle.
        stated.update(read_profile("local"))
    stated.update(conf or {})
    stated_master = stated.pop("spark.master", None)  # else it would override the --master flag below
    master = master or stated_master
    settings.update(fitted_conf(master, stated, list(inputs or ())))
    settings.update(stated)
    if ship:
        settings.update(ship_conf(ship, settings.get("spark.archives")))
        os.environ["PYSPARK_PYTHON"] = SHIPPED_PYTHON  # what PySpark tells executors to run

    spark_conf = SparkConf().setAppName(app_name).setAll(list(settings.items()))
    if master:
        spark_conf.setMaster(master)
    # The context first: in local mode the Python workers start (in the background) while the
    # SQL session initializes, a second of a fresh JVM.
    sc = SparkContext.getOrCreate(spark_conf)
    publish_at_exit()
    sc.setLogLevel(os.environ.get("CRAWL2MODEL_SPARK_LOG_LEVEL", "WARN"))
    if worker_preload:  # before any Python task, so that all of them share one daemon (one environment)
        sc.environment[PRELOAD_ENV] = ",".join(worker_preload)
    if sc.master.startswith("local"):
        prepare_workers(sc)
    spark = SparkSession.builder.config(conf=spark_conf).getOrCreate()
    if not sc.master.startswith("local"):
        warm_executors(sc)
    return spark


SHIPPED_PYTHON = "./env/bin/python"  # inside the executor's working folder, where spark.archives unpacks


def ship_conf(archive: str, archives: str | None = None) -> dict[str, str]:
    """Conf that ships a packed environment to every executor and runs its Python there."""
    entry = f"{archive if '://' in archive else os.path.abspath(archive)}#env"
    return {"spark.archives": f"{archives},{entry}" if archives else entry,
            "spark.pyspark.python": SHIPPED_PYTHON}


def add_spark_arguments(parser) -> None:
    g = parser.add_argument_group("Spark")
    g.add_argument("--master", help="Spark master URL (default: spark-submit's, else local[*])")
    g.add_argument("--spark-profile", metavar="NAME|FILE",
                   help="conf profile from infra/spark/ (local, standalone, yarn, k8s) or a file")
    g.add_argument("--spark-conf", metavar="KEY=VALUE", action="append",
                   help="extra Spark conf, repeatable")
    g.add_argument("--ship", metavar="ARCHIVE",
                   help="packed environment for the executors (`make dist` builds dist/crawl2model-env.tar.gz): "
                        "unpacked by each executor, whose Python runs from it; nothing is installed on the hosts")


@contextlib.contextmanager
def one_partition_per_file(spark: "SparkSession") -> Iterator[None]:
    """Read each input file (up to `spark.sql.files.maxPartitionBytes`) as its own partition.

    Spark packs small files into partitions sized by the number of cores, so a job
    that writes one file per input partition would write another layout on
    another cluster. An open cost as large as a partition makes every file one.
    """
    key = "spark.sql.files.openCostInBytes"
    before = spark.conf.get(key, None)
    spark.conf.set(key, spark.conf.get("spark.sql.files.maxPartitionBytes", "128m"))
    try:
        yield
    finally:
        if before is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, before)


@contextlib.contextmanager
def checkpoint_dir(spark: "SparkSession", out) -> Iterator[str]:
    """Where Spark checkpoints go while a stage runs: `spark.checkpoint.dir` if set (cluster storage),
    else beside the output.

    Spark writes checkpoints through Hadoop filesystems, which know no s3:// without
    hadoop-aws; an output on an object store without that conf checkpoints to local disk.
    Spark never deletes reliable checkpoints by default (`spark.cleaner.referenceTracking.
    cleanCheckpoints`), and beside the output they would be committed with it: the stage's own
    folder (Spark's per-call subfolder; ours whole) is deleted when the stage ends.
    """
    from crawl2model.core.fs import is_local

    configured = spark.conf.get("spark.checkpoint.dir", None)
    if configured:
        folder = configured
    elif is_local(out.fs):
        folder = f"{out.tmp_uri}/_checkpoints"
    else:
        import tempfile

        folder = tempfile.mkdtemp(prefix="crawl2model-checkpoints-")
    sc = spark.sparkContext
    sc.setCheckpointDir(folder)
    made = sc.getCheckpointDir()  # folder/<uuid>, as the JVM names it
    try:
        yield made
    finally:
        path = sc._jvm.org.apache.hadoop.fs.Path(made)
        path = path if configured else path.getParent()
        try:
            path.getFileSystem(sc._jsc.hadoopConfiguration()).delete(path, True)
        except Exception as e:  # noqa: BLE001 - leftover checkpoints cost space, not the stage's result
            get_logger("spark").warning(f"could not delete the checkpoints in {path.toString()}: {e}")


def check_spark_arguments(args) -> None:
    """Fail on a bad --spark-conf pair, profile line or --ship archive before any work (or the JVM) starts."""
    from crawl2model.core.errors import InputError
    from crawl2model.core.fs import exists, filesystem

    conf = parse_conf_pairs(args.spark_conf)
    profile = read_profile(args.spark_profile) if args.spark_profile else {}
    ship = getattr(args, "ship", None)
    if ship:
        master = args.master or conf.get("spark.master") or profile.get("spark.master") or ""
        if master.startswith("local") or not (master or "PYSPARK_GATEWAY_PORT" in os.environ):
            raise ConfigError("--ship sends an environment to a cluster's executors; local mode runs this "
                              "Python (give --master spark://..., yarn or k8s://..., or drop --ship)")
        if not exists(*filesystem(ship)):
            raise InputError(f"--ship archive not found: {ship} (build it with `make dist`)")


def spark_from_args(args, app_name: str, extra: dict[str, str] | None = None,
                    inputs: list[str] | None = None, worker_preload: Sequence[str] = ()) -> "SparkSession":
    """The session for a stage's flags; `extra` conf comes first, so `--spark-conf` still wins."""
    return get_spark(app_name, master=args.master, profile=args.spark_profile,
                     conf={**(extra or {}), **parse_conf_pairs(args.spark_conf)},
                     ship=getattr(args, "ship", None), inputs=inputs, worker_preload=worker_preload)
