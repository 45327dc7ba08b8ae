"""The Kubernetes image's Dockerfile agrees with pyproject.toml (it is not built here: no registry)."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "infra" / "container" / "Dockerfile"


def test_dockerfile_installs_existing_extras_on_an_allowed_python_with_every_package_folder():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    text = DOCKERFILE.read_text()
    extras = re.search(r"ARG EXTRAS=(\S+)", text).group(1).split(",")
    assert set(extras) <= set(project["optional-dependencies"]), extras
    python = re.search(r"FROM python:(\d+)\.(\d+)", text).groups()
    minimum = re.search(r">=\s*(\d+)\.(\d+)", project["requires-python"]).groups()
    assert tuple(map(int, python)) >= tuple(map(int, minimum))
    folders = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"].values())
    copied = set(re.findall(r"^COPY (\S+) \1$", text, re.M))
    assert folders <= copied, folders - copied  # every folder the package is built from
