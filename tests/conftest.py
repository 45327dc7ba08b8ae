"""Shared fixtures. One SparkSession serves the whole test run: starting a JVM
costs seconds, and 2-core CI machines cannot afford one per test."""
from __future__ import annotations

import importlib.util
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


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The S3 test server's address is fixed before any JVM starts: Spark's Python workers
# inherit the environment the JVM was started with, not later changes.
S3_ENDPOINT = f"http://127.0.0.1:{_free_port()}"
S3_ENV = {"AWS_ENDPOINT_URL": S3_ENDPOINT, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
          "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
os.environ.update(S3_ENV)


@pytest.fixture(scope="session")
def s3_server():
    """An S3-compatible server (moto's standalone server) on 127.0.0.1 for the whole test session.

    The AWS environment variables (set above) point every pyarrow S3 filesystem at it,
    in this process and in Spark's workers; the server is stopped afterwards.
    """
    import subprocess
    import sys
    import time
    import urllib.request

    if importlib.util.find_spec("moto") is None:
        pytest.skip("moto[server] is not installed")
    port = S3_ENDPOINT.rsplit(":", 1)[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", port],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(S3_ENDPOINT, timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("moto server did not start")
        yield S3_ENDPOINT
    finally:
        proc.terminate()
        proc.wait(10)
@pytest.fixture()
def s3_bucket(s3_server, request) -> str:
    """A fresh bucket per test: `s3://<name>`."""
    import re

    import pyarrow.fs as pafs

    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:50].strip("-") or "bucket"
    pafs.S3FileSystem(endpoint_override=s3_server, allow_bucket_creation=True).create_dir(name)
    return f"s3://{name}"
