"""Finding the input files of a stage and cutting them into tasks.

A crawl input is a folder with one subfolder per dump (`CC-MAIN-2024-10/`)
holding files at any depth, or explicit files/globs given with `--dump`.
Everything here runs on the driver and touches only file metadata.
"""
from __future__ import annotations

import fnmatch
import glob
import os
import posixpath
import re
from dataclasses import asdict, dataclass

import pyarrow.fs as pafs

from crawl2model.core.errors import InputError
from crawl2model.core.fs import filesystem

CRAWL_SUFFIXES = (".warc", ".warc.gz", ".wet", ".wet.gz", ".arc", ".arc.gz")
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz", ".json.gz")
PARQUET_SUFFIXES = (".parquet",)
DUMP_PATTERN = re.compile(r"CC-MAIN-\d{4}-\d{2}")


@dataclass(frozen=True, slots=True)
class InputFile:
    path: str          # as readers will open it (local absolute path or URI)
    dump: str | None   # None: rows must carry their own dump (JSONL/Parquet only)
    kind: str          # "crawl" | "jsonl" | "parquet"
    size: int


@dataclass(frozen=True, slots=True)
class Split:
    """A byte range of one file, read by one Spark task."""

    path: str
    dump: str | None
    kind: str
    start: int
    end: int
    splittable: bool

    def as_row(self) -> dict:
        return asdict(self)


def file_kind(name: str) -> str | None:
    lower = name.lower()
    if lower.endswith(CRAWL_SUFFIXES):
        return "crawl"
    if lower.endswith(JSONL_SUFFIXES):
        return "jsonl"
    if lower.endswith(PARQUET_SUFFIXES):
        return "parquet"
    return None


def _is_hidden(rel: str) -> bool:
    return any(part.startswith((".", "_")) for part in rel.split("/") if part)


def _uri(fs: pafs.FileSystem, original: str, path: str) -> str:
    """Spell a path found by listing `original` the way readers will open it."""
    if isinstance(fs, pafs.LocalFileSystem):
        return path
    scheme = original.split("://", 1)[0]
    return f"{scheme}://{path.lstrip('/')}"


def _list_files(fs: pafs.FileSystem, root: str) -> list[pafs.FileInfo]:
    infos = fs.get_file_info(pafs.FileSelector(root, recursive=True))
    return [i for i in infos if i.type == pafs.FileType.File]


def _expand(spec: str) -> list[str]:
    """Expand a glob (local paths and URIs); a plain path is returned as it is."""
    if not any(c in spec for c in "*?["):
        return [spec]
    if "://" not in spec:
        return sorted(glob.glob(spec, recursive=True))
    fs, path = filesystem(spec)
    static = path.split("*", 1)[0].split("?", 1)[0].split("[", 1)[0]
    base = static.rsplit("/", 1)[0]
    return sorted(_uri(fs, spec, i.path) for i in _list_files(fs, base) if fnmatch.fnmatch(i.path, path))


def discover(inputs: list[str], dump: str | None = None) -> tuple[list[InputFile], list[str]]:
    """All readable input files, sorted, with their dump; plus the paths ignored.

    A folder given without `--dump` is a crawl root: its first-level subfolders
    are the dumps. A single file gets `--dump`, or the dump id found in its path.
    """
    found: list[InputFile] = []
    ignored: list[str] = []
    for spec in inputs:
        matches = _expand(spec)
        if not matches:
            raise InputError(f"input matches no file: {spec}")
        for match in matches:
            fs, path = filesystem(match)
            info = fs.get_file_info(path)
            if info.type == pafs.FileType.NotFound:
                raise InputError(f"input not found: {match}")
            if info.type == pafs.FileType.Directory:
                for f in sorted(_list_files(fs, path), key=lambda i: i.path):
                    rel = posixpath.relpath(f.path, path) if isinstance(fs, pafs.LocalFileSystem) else f.path[len(path):].lstrip("/")
                    if _is_hidden(rel):
                        continue
                    kind = file_kind(f.base_name)
                    if kind is None:
                        ignored.append(_uri(fs, match, f.path))
                        continue
                    parts = rel.split("/")
                    file_dump = dump or (parts[0] if len(parts) > 1 else None)
                    _require_dump(file_dump, kind, _uri(fs, match, f.path))
                    found.append(InputFile(_uri(fs, match, f.path), file_dump, kind, f.size))
            else:
                kind = file_kind(info.base_name)
                if kind is None:
                    raise InputError(f"unsupported input file type: {match} "
                                     f"(expected {', '.join(CRAWL_SUFFIXES + JSONL_SUFFIXES + PARQUET_SUFFIXES)})")
                m = DUMP_PATTERN.search(match)
                file_dump = dump or (m.group(0) if m else None)
                _require_dump(file_dump, kind, match)
                found.append(InputFile(match if "://" in match else os.path.abspath(match), file_dump, kind, info.size))
    unique = {f.path: f for f in found}
    return sorted(unique.values(), key=lambda f: (f.dump or "", f.path)), ignored


def _require_dump(dump: str | None, kind: str, path: str) -> None:
    if dump is None and kind == "crawl":
        raise InputError(f"cannot tell the dump of {path}: put it in a folder named by the dump "
                         "(e.g. CC-MAIN-2024-10/) or pass --dump NAME")


def plan_splits(files: list[InputFile], split_bytes: int) -> list[Split]:
    """Cut large member-per-record crawl files into byte ranges; other files stay whole."""
    from crawl2model.pipeline.warc import is_splittable

    splits: list[Split] = []
    for f in files:
        can_split = f.kind == "crawl" and f.size > split_bytes and is_splittable(f.path)
        if not can_split:
            splits.append(Split(f.path, f.dump, f.kind, 0, f.size, False))
            continue
        for start in range(0, f.size, split_bytes):
            splits.append(Split(f.path, f.dump, f.kind, start, min(start + split_bytes, f.size), True))
    return splits


def pack_tasks(splits: list[Split], task_bytes: int) -> list[list[Split]]:
    """Group consecutive splits into tasks of about `task_bytes`, deterministically.

    Many small files make one task each otherwise, and thousands of tiny tasks
    cost more in scheduling than they do in work.
    """
    tasks: list[list[Split]] = []
    current: list[Split] = []
    size = 0
    for s in splits:
        length = max(s.end - s.start, 1)
        if current and size + length > task_bytes:
            tasks.append(current)
            current, size = [], 0
        current.append(s)
        size += length
    if current:
        tasks.append(current)
    return tasks
