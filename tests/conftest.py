"""Shared fixtures. One SparkSession serves the whole test run: starting a JVM
costs seconds, and 2-core CI machines cannot afford one per test."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
SAMPLE = ROOT / "jobs" / "sample"  # the demo's package data

os.environ.setdefault("CRAWL2MODEL_SPARK_UI", "0")


@pytest.fixture(scope="session")
def spark():
    from crawl2model.pipeline.spark import get_spark

    session = get_spark(
        "crawl2model-tests",
        master="local[2]",
        conf={
            "spark.sql.shuffle.partitions": "4",
            "spark.default.parallelism": "2",
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            "spark.driver.memory": "2g",
        },
    )
    yield session
    session.stop()


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    if not SAMPLE.is_dir():
        pytest.skip("bundled sample missing: run scripts/build_sample.py")
    return SAMPLE
