"""The wheel is what a cluster's executors get: it must work without the source tree.

Builds the wheel, installs it into a fresh venv outside the checkout (its
third-party dependencies are borrowed from the test venv through a path entry,
so nothing of the checkout can leak in), and runs from an unrelated folder:
`crawl2model scaling hparams` and a real Spark stage on the sample that ships
inside the package.
"""
from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.slow, pytest.mark.spark]


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 600) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    work = tmp_path_factory.mktemp("wheel")
    # Built from a copy: setuptools' build/ folder in the checkout could hold modules deleted since.
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "runs", "*.egg-info", "__pycache__", "data", "out", ".pytest_cache"))
    dist = work / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(source)], cwd=work)
    wheel = next(dist.glob("crawl2model-*.whl"))
    venv = work / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=work)
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index",
          str(wheel)], cwd=work)
    purelib = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        cwd=work).strip())
    # A plain path entry: the test venv's packages, without running its .pth files (which hold the
    # editable install's finder pointing back at this checkout).
    deps = [p for p in site.getsitepackages() + [sysconfig.get_paths()["purelib"]] if Path(p).is_dir()]
    (purelib / "_crawl2model_test_deps.pth").write_text("\n".join(dict.fromkeys(deps)) + "\n")
    return wheel, venv


def test_wheel_holds_one_import_name_and_its_data(installed):
    wheel, _ = installed
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"crawl2model", wheel.name.split("-py3")[0] + ".dist-info"}
    for data in ("crawl2model/infra/spark/local.conf", "crawl2model/infra/spark/log4j2.properties",
                 "crawl2model/infra/remix/domains.toml", "crawl2model/infra/deepspeed/zero1.json",
                 "crawl2model/quality_models/models/quality_en_zh.ftz", "crawl2model/jobs/sample/expected.json"):
        assert data in names, data


def test_installed_commands_run_outside_the_checkout(installed, tmp_path):
    _, venv = installed
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON")}
    env.update(CRAWL2MODEL_SPARK_UI="0", PATH=f"{venv / 'bin'}:{env['PATH']}")
    python = str(venv / "bin" / "python")
    where = _run([python, "-c", "import crawl2model, crawl2model.jobs.demo as d; print(crawl2model.__file__); "
                               "print(d.SAMPLE_DIR)"], cwd=tmp_path, env=env).split()
    assert all(str(venv) in w and str(ROOT) not in w for w in where), where

    hparams = json.loads(_run([str(venv / "bin" / "crawl2model"), "scaling", "hparams", "--preset", "deepseek-7b",
                               "--tokens", "2T", "--json"], cwd=tmp_path, env=env))
    assert hparams["lr"] == pytest.approx(4.2e-4, rel=0.02)

    sample = Path(where[1]) / "CC-MAIN-2024-10"
    _run([str(venv / "bin" / "crawl2model"), "ingest", "--input", str(sample), "--output", "docs",
          "--master", "local[2]"], cwd=tmp_path, env=env)
    report = json.loads((tmp_path / "docs" / "report.json").read_text())
    assert report["stage"] == "ingest" and report["docs_out"] > 0
    assert report["docs_in"] == report["docs_out"] + sum(report["removed_by_reason"].values())
