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
    from crawl2model.pipeline.spark import get_spark, read_profile

    session = get_spark(
        "crawl2model-tests",
        master="local[2]",
        conf={
            "spark.sql.shuffle.partitions": "4",
            "spark.default.parallelism": "2",
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            "spark.driver.memory": "2g",
            # The JIT settings users' local mode runs with (infra/spark/local.conf).
            "spark.driver.defaultJavaOptions": read_profile("local")["spark.driver.defaultJavaOptions"],
        },
    )
    yield session
    session.stop()


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    if not SAMPLE.is_dir():
        pytest.skip("bundled sample missing: run scripts/build_sample.py")
    return SAMPLE


@pytest.fixture(scope="session")
def local_flow(spark, sample_dir, tmp_path_factory) -> dict[str, str]:
    """The flow on the sample in local mode, once per session: what other runs must equal byte for byte.
    Keys: each stage's output, `tok` (a small tokenizer trained on the filtered text) and `crawl`."""
    from flow import TOKENIZER_ARGS, run_flow

    from crawl2model.jobs.cli import main as cli

    root = tmp_path_factory.mktemp("local-flow")
    out = run_flow(str(root), str(sample_dir), None)
    out["tok"], out["crawl"] = str(root / "tok"), str(sample_dir)
    assert cli(["tokenizer", "train", "--input", out["filter"] + "/kept", "--output", out["tok"],
                *TOKENIZER_ARGS]) == 0
    assert cli(["tokenize", "--tokenizer", out["tok"], "--input", out["shards"], "--output", out["tokens"]]) == 0
    return out


@pytest.fixture()
def one_torch_thread():
    """torch on one thread: on 2 shared CI cores OpenMP spinning with 2 threads is ~20x slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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
# The same for GCS: gs:// paths go to an emulator (gcp-storage-emulator) on 127.0.0.1.
GCS_ENDPOINT = f"http://127.0.0.1:{_free_port()}"
os.environ.update({"CLOUD_STORAGE_EMULATOR_ENDPOINT": GCS_ENDPOINT, "GOOGLE_CLOUD_PROJECT": "crawl2model-tests"})


def _serve(argv: list[str], url: str, name: str):
    """Start a test server, wait until `url` answers (any HTTP status), yield, stop it."""
    import subprocess
    import time
    import urllib.error
    import urllib.request

    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(url, timeout=1)
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail(f"{name} did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="session")
def s3_server():
    """An S3-compatible server (moto's standalone server) on 127.0.0.1 for the whole test session.

    The AWS environment variables (set above) point every pyarrow S3 filesystem at it,
    in this process and in Spark's workers; the server is stopped afterwards.
    """
    import sys

    if importlib.util.find_spec("moto") is None:
        pytest.skip("moto[server] is not installed")
    port = S3_ENDPOINT.rsplit(":", 1)[1]
    yield from _serve([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", port], S3_ENDPOINT, "moto")


@pytest.fixture(scope="session")
def gcs_server():
    """A GCS emulator (gcp-storage-emulator, in memory) on 127.0.0.1 for the whole test session."""
    import sys

    if importlib.util.find_spec("gcp_storage_emulator") is None:
        pytest.skip("gcp-storage-emulator is not installed")
    port = GCS_ENDPOINT.rsplit(":", 1)[1]
    argv = [sys.executable, "-c", "from gcp_storage_emulator.__main__ import main; main()",
            "start", "--host", "127.0.0.1", "--port", port, "--in-memory"]
    yield from _serve(argv, GCS_ENDPOINT, "gcp-storage-emulator")


@pytest.fixture()
def s3_bucket(s3_server, request) -> str:
    """A fresh bucket per test: `s3://<name>`."""
    import re

    import pyarrow.fs as pafs

    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:50].strip("-") or "bucket"
    pafs.S3FileSystem(endpoint_override=s3_server, allow_bucket_creation=True).create_dir(name)
    return f"s3://{name}"
