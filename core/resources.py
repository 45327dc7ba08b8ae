"""Files that ship inside the package (Spark profiles, domain rules, DeepSpeed configs,
shipped models, the demo sample), found the same way in a checkout and in a wheel."""
from __future__ import annotations

import importlib.resources
import os
import shutil
from collections.abc import Callable
from pathlib import Path


def resource(package: str, *parts: str) -> Path:
    """The path of a package data file, e.g. resource("crawl2model.infra", "spark", "local.conf").

    Packages are installed as folders (never zipped), so the traversable is a
    real path that Spark, fastText and KenLM can open by name.
    """
    return Path(str(importlib.resources.files(package).joinpath(*parts)))


def user_cache(*parts: str) -> Path:
    """A folder under the user's cache (`$XDG_CACHE_HOME/crawl2model/...`) for what is rebuilt on demand."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base, "crawl2model", *parts)


def publish_folder(final: Path, write: Callable[[Path], None]) -> None:
    """Let `write` fill a folder beside `final`, then rename it into place: a reader of a cache
    sees all of its files or none. When another process got there first, its copy wins (it is
    the same); any other failure is raised, with the half-written folder removed."""
    tmp = final.with_name(f"{final.name}.tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        write(tmp)
        os.replace(tmp, final)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not final.is_dir():
            raise
