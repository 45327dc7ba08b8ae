"""The driver JVM's class-data archive: which options a session starts with, and the dump itself."""
from __future__ import annotations

import os

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
    if _has_jcmd():
        assert "-XX:+RecordDynamicDumpInfo" in jvm_archive.driver_options()
        assert jvm_archive._recording == path
    assert jvm_archive.driver_options(record=False) == ""
    path.parent.mkdir(parents=True)
    path.write_bytes(b"x")
    assert f"-XX:SharedArchiveFile={path}" in jvm_archive.driver_options()
    monkeypatch.setenv("CRAWL2MODEL_JVM_CDS", "0")
    assert jvm_archive.driver_options() == "" and jvm_archive.archive_path() is None


def test_a_failed_dump_is_not_retried(cache):
    path = jvm_archive.archive_path()
    path.parent.mkdir(parents=True)
    path.with_suffix(".failed").touch()
    assert jvm_archive.driver_options() == ""


@pytest.mark.spark
def test_dump_of_a_recording_session(spark, cache):
    """The test session's JVM records when no archive existed at its start: dump it for real."""
    if "-XX:+RecordDynamicDumpInfo" not in spark.sparkContext.getConf().get("spark.driver.extraJavaOptions", ""):
        pytest.skip("the session started from an archive (or without jcmd): nothing recorded to dump")
    path = jvm_archive.archive_path()
    jvm_archive._recording = path
    jvm_archive.save_archive(spark)
    assert path.is_file() and path.stat().st_size > 1_000_000
    assert not path.with_suffix(".failed").exists() and jvm_archive._recording is None
    assert spark.range(3).count() == 3  # the JVM goes on after the dump
