"""Debian packages as a source of real text, fetched without installing anything.

Every corpus the project builds (the bundled sample crawl, the shipped
quality models and their fixtures, the benchmark corpora) reads documentation
and sources that Debian ships. A package is fetched with `apt-get download`
(no root, no package database; `apt-get update` must have run once) and
unpacked with `dpkg-deb -x`. One cache serves every builder, so a package is
downloaded once:

    CACHE/<package>_<version>_<arch>.deb    the downloaded package
    CACHE/<package>/                        its unpacked tree

The tree is unpacked beside its final name and renamed, so an existing folder
is always complete. The default cache, `build/debian-docs`, is relative to the
working directory: commands run from the repository root share it (bench/dedup.py
reads the unpacked trees there directly).
"""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterable

from crawl2model.core.log import get_logger, progress

DEFAULT_CACHE = Path("build/debian-docs")

log = get_logger("debian")


def fetch(package: str, cache: Path | str = DEFAULT_CACHE) -> Path:
    """The unpacked tree of `package`, downloading and unpacking it the first time."""
    cache = Path(cache)
    root = cache / package
    if root.is_dir():
        return root
    partial = cache / f"{package}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    subprocess.run(["dpkg-deb", "-x", str(deb(package, cache)), str(partial)], check=True)
    partial.rename(root)
    return root


def fetch_packages(packages: Iterable[str], cache: Path | str = DEFAULT_CACHE) -> dict[str, Path]:
    """{package: unpacked tree} for several packages, with a progress bar on a terminal."""
    packages = list(packages)
    return {name: fetch(name, cache) for name in progress(packages, len(packages), "debian packages", "pkg")}


def deb(package: str, cache: Path | str = DEFAULT_CACHE) -> Path:
    """The downloaded .deb of `package` (the newest, should several versions be cached)."""
    cache = Path(cache)
    found = sorted(cache.glob(f"{package}_*.deb"))
    if not found:
        cache.mkdir(parents=True, exist_ok=True)
        log.info("apt-get download %s", package)
        subprocess.run(["apt-get", "download", package], cwd=cache, check=True, stdout=subprocess.DEVNULL)
        found = sorted(cache.glob(f"{package}_*.deb"))
    return found[-1]


def version(package: str, cache: Path | str = DEFAULT_CACHE) -> str:
    """The version of the cached .deb: corpora record it so a rebuild on a newer Debian can be told apart."""
    return subprocess.run(["dpkg-deb", "-f", str(deb(package, cache)), "Version"], check=True,
                          capture_output=True, text=True).stdout.strip()


def files(root: Path | str, pattern: str) -> list[Path]:
    """Files of an unpacked tree matching a glob, sorted by path string.

    `glob.glob` rather than `Path.glob`, whose `**` skips symlinked folders and
    whose `*` matches dotfiles: the shipped models were built with glob's choice.
    """
    return [Path(p) for p in sorted(glob.glob(os.path.join(root, pattern), recursive=True)) if os.path.isfile(p)]
