"""Atomic, idempotent stage outputs on any filesystem pyarrow knows (local, s3, gcs, hdfs).

A stage writes into a hidden sibling `.<name>.tmp-<token>`, and only when all
of it (data, report, resolved config) is there, writes `_SUCCESS` and renames
the folder into place. So a folder named like the output is either finished
or absent; a killed run leaves a `.tmp-` folder that the next run removes.
"""
from __future__ import annotations

import json
import posixpath
import secrets
import sys
import time
from dataclasses import dataclass
from typing import Any

import pyarrow.fs as pafs

SUCCESS = "_SUCCESS"


def filesystem(path: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path inside it) for a local path or a URI such as s3://b/k."""
    if "://" in path and not path.startswith("file://"):
        return pafs.FileSystem.from_uri(path)
    if path.startswith("file://"):
        path = path[len("file://"):]
    import os

    return pafs.LocalFileSystem(), os.path.abspath(path)


def exists(fs: pafs.FileSystem, path: str) -> bool:
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def write_json(fs: pafs.FileSystem, path: str, obj: Any) -> None:
    with fs.open_output_stream(path) as f:
        f.write((json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n").encode())


def read_json(path: str) -> Any:
    fs, p = filesystem(path)
    with fs.open_input_stream(p) as f:
        return json.loads(f.read())


def sha256_file(fs: pafs.FileSystem, path: str) -> str:
    """Hex sha256 of a file, streamed: manifests list it so readers can verify shards."""
    import hashlib

    h = hashlib.sha256()
    with fs.open_input_stream(path) as f:
        while block := f.read(1 << 22):
            h.update(block)
    return h.hexdigest()


@dataclass
class StageOutput:
    """The output folder of one stage run; use `begin()` then `commit()`."""

    final: str  # as the user gave it (local path or URI)
    overwrite: bool = False

    def __post_init__(self) -> None:
        self.fs, self.final_path = filesystem(self.final)
        parent, name = posixpath.split(self.final_path.rstrip("/"))
        self.parent, self.name = parent, name
        self.tmp_path = posixpath.join(parent, f".{name}.tmp-{secrets.token_hex(4)}")

    @property
    def done(self) -> bool:
        """True when a finished output exists and must not be recomputed."""
        return not self.overwrite and exists(self.fs, posixpath.join(self.final_path, SUCCESS))

    @property
    def tmp_uri(self) -> str:
        """The temporary folder spelled the way the user spelled the output (for Spark)."""
        head = self.final.rstrip("/").rsplit("/", 1)[0] if "/" in self.final.rstrip("/") else "."
        return f"{head}/{posixpath.basename(self.tmp_path)}"

    def begin(self) -> str:
        """Clear leftovers of killed runs and return the folder to write into."""
        self.fs.create_dir(self.parent, recursive=True)
        for info in self.fs.get_file_info(pafs.FileSelector(self.parent)):
            if info.base_name.startswith(f".{self.name}.tmp-"):
                self.fs.delete_dir(info.path)
        if exists(self.fs, self.final_path) and not exists(self.fs, posixpath.join(self.final_path, SUCCESS)):
            print(f"[crawl2model] removing unfinished output {self.final}", file=sys.stderr)
            self.fs.delete_dir(self.final_path)
        self.fs.create_dir(self.tmp_path, recursive=True)
        return self.tmp_path

    def path(self, *parts: str) -> str:
        """A path inside the temporary folder."""
        return posixpath.join(self.tmp_path, *parts)

    def commit(self, stage: str) -> None:
        """Write the marker and move the finished folder into place."""
        write_json(self.fs, self.path(SUCCESS), {"stage": stage, "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        if exists(self.fs, self.final_path):
            old = posixpath.join(self.parent, f".{self.name}.old-{secrets.token_hex(4)}")
            self.fs.move(self.final_path, old)
            self.fs.move(self.tmp_path, self.final_path)
            self.fs.delete_dir(old)
        else:
            self.fs.move(self.tmp_path, self.final_path)

    def abort(self) -> None:
        if exists(self.fs, self.tmp_path):
            self.fs.delete_dir(self.tmp_path)

