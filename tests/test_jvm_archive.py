"""The driver JVM's class-data archive: which options a session starts with, and the dump itself."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from crawl2model.pipeline import jvm_archive


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("CRAWL2MODEL_JVM_CDS", raising=False)
    monkeypatch.setattr(jvm_archive, "_recording", None)
    return tmp_path


def _has_jcmd() -> bool:
    java = jvm_archive._java()
    return bool(java) and os.access(os.path.join(os.path.dirname(java), "jcmd"), os.X_OK)


def test_options_record_then_map_then_off(cache, monkeypatch):
    path = jvm_archive.archive_path()
    assert path is not None and str(path).startswith(str(cache))
    assert f"-XX:ArchiveClassesAtExit={path}.tmp{os.getpid()}" in jvm_archive.driver_options()
    assert jvm_archive._recording == path
    assert jvm_archive.driver_options(record=False) == ""
    path.write_bytes(b"x")
    assert f"-XX:SharedArchiveFile={path}" in jvm_archive.driver_options()
    monkeypatch.setenv("CRAWL2MODEL_JVM_CDS", "0")
    assert jvm_archive.driver_options() == "" and jvm_archive.archive_path() is None


def test_recording_removes_partial_archives_of_dead_processes(cache):
    path = jvm_archive.archive_path()
    path.parent.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan, alive = jvm_archive._partial(path, int(dead.stdout)), jvm_archive._partial(path, os.getppid())
    orphan.write_bytes(b"x")
    alive.write_bytes(b"x")
    assert "-XX:ArchiveClassesAtExit" in jvm_archive.driver_options()
    assert not orphan.exists() and alive.exists()


def test_publishing_keeps_the_newest_other_archives(cache):
    folder = cache / "crawl2model" / "jvm"
    folder.mkdir(parents=True)
    archives = [folder / f"spark-4.3.0-{k:012d}.jsa" for k in range(6)]
    for age, archive in enumerate(archives):
        archive.write_bytes(b"x")
        os.utime(archive, (1_000_000 - age, 1_000_000 - age))  # archives[0] is the newest
    jvm_archive._prune(archives[5], keep=3)
    assert sorted(folder.iterdir()) == sorted([*archives[:3], archives[5]])


def test_a_failed_dump_is_not_retried(cache):
    path = jvm_archive.archive_path()
    path.parent.mkdir(parents=True)
    path.with_suffix(".failed").touch()
    assert jvm_archive.driver_options() == ""


SESSION = """
import re, subprocess
from crawl2model.pipeline import jvm_archive
from crawl2model.pipeline.spark import get_spark
spark = get_spark("archive-test", master="local[1]", conf={"spark.ui.enabled": "false"})
spark.range(3).count()
pid = spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()
info = subprocess.run(["jcmd", str(pid), "VM.info"], capture_output=True, text=True).stdout
print("MAPPED", re.search(r"CDS archive\\(s\\) mapped at: .*size (\\d+)", info).group(1))
"""


@pytest.mark.spark
@pytest.mark.skipif(not _has_jcmd(), reason="needs the JDK's jcmd")
def test_first_session_writes_the_archive_and_the_next_maps_it(tmp_path):
    """Two real sessions: the first records, its JVM writes the archive as the process ends (and
    the archive is published whole), the second maps Spark's classes from it."""
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path), PYSPARK_PYTHON=sys.executable)
    env.pop("CRAWL2MODEL_JVM_CDS", None)
    mapped = []
    for _ in range(2):
        run = subprocess.run([sys.executable, "-c", SESSION], env=env, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-2000:]
        mapped.append(int(run.stdout.split("MAPPED ", 1)[1].split()[0]))
        folder = tmp_path / "crawl2model" / "jvm"
        archives = list(folder.glob("*.jsa"))
        assert len(archives) == 1 and archives[0].stat().st_size > 10_000_000, run.stderr[-2000:]
        assert [p.name for p in folder.iterdir()] == [archives[0].name]  # no partial dump, no failure marker
    # The JDK's own base archive is ~12 MB; with Spark's classes added it is several times that.
    assert mapped[1] > 3 * mapped[0], mapped
