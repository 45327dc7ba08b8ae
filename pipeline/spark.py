"""The one place a SparkSession is built.

Run from plain Python (the CLI, tests), the session is embedded in local mode
with the `local` profile; run under `spark-submit --master ...`, the master and
conf given there win, because nothing here sets a master unless asked to. A profile under
`infra/spark/<name>.conf` (spark-defaults format, package data) or `--spark-conf k=v` adds conf.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from crawl2model.core.errors import ConfigError
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
              profile: str | None = None, conf: dict[str, str] | None = None) -> "SparkSession":
    """Return the active session, or build one with the project's settings."""
    # Workers must run this interpreter so they find the installed packages.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active

    settings = dict(BASE_CONF)
    log4j = PROFILES_DIR / "log4j2.properties"
    if log4j.is_file():
        settings["spark.driver.extraJavaOptions"] = f"-Dlog4j2.configurationFile=file:{log4j}"
    if os.environ.get("CRAWL2MODEL_SPARK_UI", "1") == "0":
        settings["spark.ui.enabled"] = "false"
    if not sys.stderr.isatty():
        settings["spark.ui.showConsoleProgress"] = "false"  # progress bars garble logs
    under_spark_submit = "PYSPARK_GATEWAY_PORT" in os.environ
    if profile:
        settings.update(read_profile(profile))
    elif not master and not under_spark_submit:
        # Embedded local mode: the local profile's small shuffle sizes, not the
        # cluster default of 200 partitions per shuffle.
        settings.update(read_profile("local"))
    settings.update(conf or {})
    master = master or settings.pop("spark.master", None)

    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("CRAWL2MODEL_SPARK_LOG_LEVEL", "WARN"))
    return spark


def add_spark_arguments(parser) -> None:
    g = parser.add_argument_group("Spark")
    g.add_argument("--master", help="Spark master URL (default: spark-submit's, else local[*])")
    g.add_argument("--spark-profile", metavar="NAME|FILE",
                   help="conf profile from infra/spark/ (local, standalone, yarn, k8s) or a file")
    g.add_argument("--spark-conf", metavar="KEY=VALUE", action="append",
                   help="extra Spark conf, repeatable")


def use_checkpoint_dir(spark: "SparkSession", out) -> str:
    """Where Spark checkpoints go: `spark.checkpoint.dir` if set (cluster storage), else beside the output.

    Spark writes checkpoints through Hadoop filesystems, which know no s3:// without
    hadoop-aws; an output on an object store without that conf checkpoints to local disk.
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
    spark.sparkContext.setCheckpointDir(folder)
    return folder


def check_spark_arguments(args) -> None:
    """Fail on a bad --spark-conf pair or profile line before any work (or the JVM) starts."""
    parse_conf_pairs(args.spark_conf)
    if args.spark_profile:
        read_profile(args.spark_profile)


def spark_from_args(args, app_name: str, extra: dict[str, str] | None = None) -> "SparkSession":
    """The session for a stage's flags; `extra` conf comes first, so `--spark-conf` still wins."""
    return get_spark(app_name, master=args.master, profile=args.spark_profile,
                     conf={**(extra or {}), **parse_conf_pairs(args.spark_conf)})
