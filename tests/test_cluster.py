"""The flow on a real Spark standalone cluster on 127.0.0.1, executors running the packed environment.

One master and two workers (1 core, 2 GB each) are started for this module
with infra/spark/start-standalone.sh and stopped with stop-standalone.sh at the
end, also on failure; they start with a minimal environment (no virtualenv on
their PATH), so the executors can only run the archive `make dist` builds
(`scripts/pack_env.py`). The stages run in driver processes of their own, as a
user runs them, and must write exactly the bytes of the local run.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from flow import committed_data, flow_steps

from crawl2model.core.fs import read_json

pytestmark = [pytest.mark.spark, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
ARCHIVE = ROOT / "dist" / "crawl2model-env.tar.gz"
SOURCES = ("core", "pipeline", "quality_models", "tokenizer", "jobs", "infra", "corpora")

# Several stages in one driver (one application, so executors unpack the archive once),
# then a probe of what the executors run.
RUNNER = """
import json, sys
from crawl2model.jobs.cli import main
steps, extra = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for argv in steps:
    rc = main(argv + extra)
    if rc:
        sys.exit(rc)
from pyspark.sql import SparkSession
sc = SparkSession.getActiveSession().sparkContext
seen = sc.parallelize(range(8), 8).map(
    lambda _: (__import__("sys").executable, __import__("crawl2model").__file__)).distinct().collect()
print("EXECUTORS " + json.dumps(sorted(seen)), flush=True)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stale(archive: Path) -> bool:
    if not archive.is_file():
        return True
    built = archive.stat().st_mtime
    newest = max(p.stat().st_mtime for folder in SOURCES for p in (ROOT / folder).rglob("*")
                 if p.is_file() and "__pycache__" not in p.parts)  # not what runs write (numba caches)
    return max(newest, (ROOT / "pyproject.toml").stat().st_mtime) > built


@pytest.fixture(scope="module")
def packed_env() -> Path:
    """dist/crawl2model-env.tar.gz, rebuilt (as `make dist` does) when the sources are newer."""
    if _stale(ARCHIVE):
        subprocess.run([sys.executable, str(ROOT / "scripts" / "pack_env.py")], check=True)
    return ARCHIVE


class Cluster:
    def __init__(self, folder: Path):
        self.folder, self.port, self.ui = folder, _free_port(), _free_port()
        self.url = f"spark://127.0.0.1:{self.port}"
        import pyspark

        self.env = {**os.environ, "SPARK_HOME": os.path.dirname(pyspark.__file__)}

    def script(self, name: str, *args: str) -> None:
        subprocess.run(["bash", str(ROOT / "infra" / "spark" / name), *args], check=True, env=self.env,
                       timeout=180, stdout=subprocess.DEVNULL)

    def start(self) -> None:
        self.script("start-standalone.sh", "--dir", str(self.folder), "--workers", "2", "--cores", "1",
                    "--memory", "2g", "--host", "127.0.0.1", "--port", str(self.port),
                    "--webui-port", str(self.ui))

    def stop(self) -> None:
        self.script("stop-standalone.sh", str(self.folder))

    def workers(self) -> list[dict]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ui}/json/", timeout=5) as r:
            return json.load(r)["workers"]

    def flags(self, archive: Path) -> list[str]:
        return ["--master", self.url, "--ship", str(archive), "--spark-conf", f"spark.master.ui.port={self.ui}"]

    def driver(self, steps: list[list[str]], archive: Path, log: Path) -> subprocess.Popen:
        """A driver process running `steps` on the cluster (stdout: the executors probe; its log in `log`)."""
        return subprocess.Popen([sys.executable, "-c", RUNNER, json.dumps(steps), json.dumps(self.flags(archive))],
                                stdout=subprocess.PIPE, stderr=log.open("w"), text=True)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, packed_env):
    c = Cluster(tmp_path_factory.mktemp("spark-cluster"))
    try:
        c.start()
        yield c
    finally:
        c.stop()


def _finish(proc: subprocess.Popen, log: Path, timeout: float = 420) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, log.read_text()[-3000:]
    return out


@pytest.fixture(scope="module")
def cluster_flow(cluster, packed_env, local_flow, tmp_path_factory) -> tuple[dict[str, str], str]:
    root = tmp_path_factory.mktemp("cluster-flow")
    out, steps = flow_steps(str(root), local_flow["crawl"], local_flow["tok"])
    log = root / "driver.log"
    return out, _finish(cluster.driver(steps, packed_env, log), log)


def test_flow_on_the_cluster_writes_the_local_bytes(cluster, cluster_flow, local_flow):
    out, _ = cluster_flow
    for stage in ("docs", "dedup", "filter", "shards", "tokens"):
        ours = committed_data(out[stage])
        assert ours and ours == committed_data(local_flow[stage]), stage
        report = read_json(f"{out[stage]}/report.json")
        assert report["spark"]["master"] == cluster.url, stage
    assert len([w for w in cluster.workers() if w["state"] == "ALIVE"]) == 2


def test_executors_run_the_packed_environment_not_the_test_venv(cluster_flow, cluster):
    _, stdout = cluster_flow
    seen = json.loads(stdout.split("EXECUTORS ", 1)[1])
    assert seen
    for executable, module in seen:
        # ./env/bin/python inside an executor's folder under the cluster's work dir
        assert executable.endswith("/env/bin/python") or executable == "./env/bin/python", executable
        assert str(cluster.folder / "work") in module and "/env/lib/" in module, module
        assert not module.startswith(str(ROOT / "crawl2model")), module  # not this checkout's editable install


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def _into_dedup(proc: subprocess.Popen, log: Path) -> None:
    """Wait until the driver's dedup is at work on the cluster: a line of it after the session started."""
    def started() -> bool:
        return proc.poll() is not None or "[dedup] " in log.read_text().partition("session start:")[2]

    _wait_for(started, 240, "dedup to start")
    assert proc.poll() is None, log.read_text()[-2000:]


@pytest.fixture(scope="module")
def faults(cluster, cluster_flow, packed_env, tmp_path_factory) -> dict:
    """One dedup driver killed mid-stage, then the same command again, during which one worker
    (its JVM and its executor) is killed mid-job; what was seen on the way (the fault tests assert it)."""
    out, _ = cluster_flow
    folder = tmp_path_factory.mktemp("faults")
    target = folder / "dedup"
    steps = [["dedup", "--input", out["docs"], "--output", str(target)]]
    seen: dict = {"target": target}
    proc = cluster.driver(steps, packed_env, folder.parent / "killed-driver.log")
    _into_dedup(proc, folder.parent / "killed-driver.log")
    time.sleep(2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    seen["after_kill"] = sorted(p.name for p in folder.iterdir())
    seen["finished_after_kill"] = (target / "_SUCCESS").exists()
    log = folder.parent / "rerun.log"
    proc = cluster.driver(steps, packed_env, log)  # the same command again
    _into_dedup(proc, log)
    time.sleep(3)
    assert proc.poll() is None, "dedup finished before the worker could be killed"
    worker = int((cluster.folder / "pids" / "worker-2.pid").read_text())
    children = subprocess.run(["pgrep", "-P", str(worker)], capture_output=True, text=True).stdout.split()
    assert children, "worker-2 runs no executor of the rerun"
    for pid in [worker, *map(int, children)]:
        os.kill(pid, signal.SIGKILL)
    _finish(proc, log)
    seen["after_rerun"] = sorted(p.name for p in folder.iterdir())
    return seen


def test_a_killed_driver_leaves_nothing_finished_and_the_rerun_completes(faults, local_flow):
    assert not faults["finished_after_kill"]                          # nothing that looks finished
    assert any(n.startswith(".dedup") for n in faults["after_kill"])  # its claim and tmp folder are left
    assert faults["after_rerun"] == ["dedup"]                         # leftovers cleared by the rerun
    assert committed_data(str(faults["target"])) == committed_data(local_flow["dedup"])


def test_dedup_survives_a_killed_worker(faults, local_flow):
    """The rerun above lost worker-2's JVM and executor mid-job: tasks were retried on the other worker."""
    target = faults["target"]
    assert committed_data(str(target)) == committed_data(local_flow["dedup"])
    report = read_json(str(target / "report.json"))
    assert report["docs_out"] == read_json(f"{local_flow['dedup']}/report.json")["docs_out"]
