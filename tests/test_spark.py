"""The session helper: profiles, conf pairs, and the settings every stage relies on."""
import os
import sys

import pytest

from crawl2model.core.errors import ConfigError
from crawl2model.pipeline.spark import PROFILES_DIR, parse_conf_pairs, read_profile


def test_profiles_parse_and_name_their_master():
    masters = {p.stem: read_profile(p.stem).get("spark.master") for p in PROFILES_DIR.glob("*.conf")}
    assert masters["local"] == "local[*]" and masters["yarn"] == "yarn"
    assert set(masters) >= {"local", "standalone", "yarn", "k8s"}


def test_bad_profile_and_conf_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="known: .*local"):
        read_profile("nosuch")
    bad = tmp_path / "bad.conf"
    bad.write_text("spark.executor.memory\n")
    with pytest.raises(ConfigError, match="bad.conf:1"):
        read_profile(str(bad))
    assert parse_conf_pairs(["a.b=1", "c = x=y"]) == {"a.b": "1", "c": "x=y"}
    with pytest.raises(ConfigError, match="key=value"):
        parse_conf_pairs(["novalue"])


@pytest.mark.spark
def test_session_settings(spark):
    conf = spark.sparkContext.getConf()
    assert conf.get("spark.sql.execution.arrow.pyspark.enabled") == "true"
    assert os.environ["PYSPARK_PYTHON"] == sys.executable
    # Workers run this interpreter: they can import the project.
    got = spark.sparkContext.parallelize([0], 1).map(lambda _: __import__("crawl2model.pipeline").pipeline.__name__).collect()
    assert got == ["crawl2model.pipeline"]


@pytest.mark.spark
def test_workers_started_ahead_serve_the_sql_stages(spark):
    """The warm-up's RDD tasks and the stages' Arrow tasks share one pool of Python workers
    (one daemon), and that daemon is the project's (pipeline/worker_daemon.py)."""
    from crawl2model.pipeline.cluster import _run_in_workers

    def daemon(_):
        import os
        import sys

        yield os.getppid(), getattr(sys.modules["__main__"].__spec__, "name", None)

    def daemon_arrow(batches):
        import os
        import sys

        import pyarrow as pa

        for b in batches:
            yield pa.RecordBatch.from_pydict({"ppid": [os.getppid()] * b.num_rows,
                                              "main": [getattr(sys.modules["__main__"].__spec__, "name", None)] * b.num_rows})

    sc = spark.sparkContext
    assert _run_in_workers(sc, 2, None)
    rdd = set(sc.parallelize(range(2), 2).mapPartitions(daemon).collect())
    sql = {(r.ppid, r.main) for r in spark.range(2, numPartitions=2).mapInArrow(daemon_arrow, "ppid long, main string").collect()}
    assert rdd == sql and len(rdd) == 1, (rdd, sql)
    assert next(iter(rdd))[1] == "crawl2model.pipeline.worker_daemon"  # the daemon that forked them


def test_cluster_fit_never_asks_more_than_the_smallest_worker_and_widens_with_input(tmp_path):
    from crawl2model.pipeline.cluster import (
        INTERPRETED,
        Worker,
        codegen_conf,
        executor_conf,
        fitted_conf,
        jit_conf,
        shuffle_conf,
    )

    conf = executor_conf([Worker(4, 16384), Worker(2, 4096)])
    assert conf == {"spark.executor.cores": "2", "spark.executor.memory": "2048m", "spark.cores.max": "6"}
    assert executor_conf([Worker(1, 512)])["spark.executor.memory"] == "512m"  # the floor
    small, big = shuffle_conf(6, 10 << 20), shuffle_conf(6, 100 << 30)
    assert small["spark.sql.shuffle.partitions"] == "12"           # two per core
    assert big["spark.sql.shuffle.partitions"] == str(100 * 16)    # one per 64 MB
    assert big["spark.sql.adaptive.coalescePartitions.enabled"] == "true"
    # Local mode keeps its profile (and lists no object store); a small input is interpreted.
    assert fitted_conf("local[2]", {}, ["s3://not/listed"]) == {}
    assert fitted_conf("local[2]", {}, [str(tmp_path)]) == INTERPRETED
    assert fitted_conf("local[2]", {"spark.sql.codegen.wholeStage": "true"}, []) == {
        "spark.sql.codegen.factoryMode": "NO_CODEGEN"}
    assert codegen_conf(2, 65 << 20) == {} and codegen_conf(4, 65 << 20) == INTERPRETED
    stated = {"spark.executor.instances": "10", "spark.executor.cores": "4", "spark.sql.shuffle.partitions": "7"}
    fitted = fitted_conf("yarn", stated, [])
    assert fitted["spark.default.parallelism"] == "80" and "spark.sql.shuffle.partitions" not in fitted
    # A small input on 40 cores: short-lived executors compile with C1 only; a large one keeps the JVM's default.
    assert "TieredStopAtLevel=1" in fitted["spark.executor.defaultJavaOptions"]
    assert "ParallelGCThreads=4" in fitted["spark.executor.defaultJavaOptions"]
    assert jit_conf(40, 4, 100 << 30) == {}
    assert fitted["spark.sql.codegen.factoryMode"] == "NO_CODEGEN"  # 0 bytes on 40 cores


def test_ship_needs_a_cluster_and_an_archive(tmp_path, capsys):
    from crawl2model.jobs.cli import main as cli

    archive = tmp_path / "env.tar.gz"
    argv = ["ingest", "--input", str(tmp_path), "--output", str(tmp_path / "out")]
    assert cli([*argv, "--ship", str(archive), "--master", "spark://127.0.0.1:1"]) == 2
    assert "--ship archive not found" in capsys.readouterr().err
    archive.write_bytes(b"")
    assert cli([*argv, "--ship", str(archive)]) == 2
    assert "local mode runs this Python" in capsys.readouterr().err
