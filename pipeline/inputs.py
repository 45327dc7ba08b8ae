"""Finding the input files of a stage and cutting them into tasks.

A crawl input is a folder with one subfolder per dump (`CC-MAIN-2024-10/`)
holding files at any depth, explicit files/globs given with `--dump`, or a
Common Crawl listing (`warc.paths.gz`: one path per line, relative to a base
such as `s3://commoncrawl/`). Everything here runs on the driver and touches
only file metadata, apart from reading listings.
"""
from __future__ import annotations

import fnmatch
import glob
import gzip
import hashlib
import os
import posixpath
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import pyarrow.fs as pafs

from crawl2model.core.errors import InputError
from crawl2model.core.fs import filesystem, is_hidden

CRAWL_SUFFIXES = (".warc", ".warc.gz", ".wet", ".wet.gz", ".arc", ".arc.gz")
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz", ".json.gz")
PARQUET_SUFFIXES = (".parquet",)
LISTING_SUFFIXES = (".paths", ".paths.gz")
DUMP_PATTERN = re.compile(r"CC-MAIN-\d{4}-\d{2}")
# Where Common Crawl's listed paths (`crawl-data/CC-MAIN-.../...`) live.
COMMONCRAWL_BASE = "s3://commoncrawl/"
_STAT_BATCH = 256        # paths per get_file_info call; batches run in parallel threads
_METADATA_THREADS = 16   # object stores answer one request per file: latency, not bandwidth, bounds it


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


@dataclass(frozen=True, slots=True)
class ListingSelection:
    """How listed paths are resolved and which of them a run takes (all, by default)."""

    base: str = COMMONCRAWL_BASE
    limit: int | None = None        # the first N of each listing, in sorted order
    fraction: float | None = None   # paths whose hash falls below this fraction


@dataclass(slots=True)
class Discovery:
    """What `discover_inputs` found: the files to read and what it passed over, for the report."""

    files: list[InputFile]
    ignored: list[str]    # files of no known kind
    missing: list[str]    # listed, but not found (or not a file)


def file_kind(name: str) -> str | None:
    lower = name.lower()
    if lower.endswith(CRAWL_SUFFIXES):
        return "crawl"
    if lower.endswith(JSONL_SUFFIXES):
        return "jsonl"
    if lower.endswith(PARQUET_SUFFIXES):
        return "parquet"
    return None


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
    """All readable input files of folders, globs and files, sorted, with their dump; plus the paths ignored.

    A folder given without `--dump` is a crawl root: its first-level subfolders
    are the dumps. A single file gets `--dump`, or the dump id found in its path.
    Listings are read by `discover_inputs` only (ingest): other stages read tables.
    """
    found = discover_inputs(inputs, dump, listing=None)
    return found.files, found.ignored


def discover_inputs(inputs: list[str], dump: str | None = None,
                    listing: ListingSelection | None = ListingSelection()) -> Discovery:
    """`discover`, where a Common Crawl listing (`*.paths`, `*.paths.gz`) stands for the files it lists."""
    found: list[InputFile] = []
    ignored: list[str] = []
    missing: list[str] = []
    for spec in inputs:
        matches = _expand(spec)
        if not matches:
            raise InputError(f"input matches no file: {spec}")
        for match in matches:
            if listing is not None and is_listing(match):
                _add_listed(match, dump, listing, found, ignored, missing)
            else:
                _add_path(match, dump, found, ignored)
    unique = {f.path: f for f in found}
    return Discovery(sorted(unique.values(), key=lambda f: (f.dump or "", f.path)), ignored, missing)


def _add_path(match: str, dump: str | None, found: list[InputFile], ignored: list[str]) -> None:
    fs, path = filesystem(match)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise InputError(f"input not found: {match}")
    if info.type == pafs.FileType.Directory:
        for f in sorted(_list_files(fs, path), key=lambda i: i.path):
            rel = posixpath.relpath(f.path, path) if isinstance(fs, pafs.LocalFileSystem) else f.path[len(path):].lstrip("/")
            if is_hidden(rel):
                continue
            kind = file_kind(f.base_name)
            if kind is None:
                ignored.append(_uri(fs, match, f.path))
                continue
            parts = rel.split("/")
            file_dump = dump or (parts[0] if len(parts) > 1 else None)
            _require_dump(file_dump, kind, _uri(fs, match, f.path))
            found.append(InputFile(_uri(fs, match, f.path), file_dump, kind, f.size))
        return
    kind = file_kind(info.base_name)
    if kind is None:
        raise InputError(f"unsupported input file type: {match} "
                         f"(expected {', '.join(CRAWL_SUFFIXES + JSONL_SUFFIXES + PARQUET_SUFFIXES)})")
    m = DUMP_PATTERN.search(match)
    file_dump = dump or (m.group(0) if m else None)
    _require_dump(file_dump, kind, match)
    found.append(InputFile(match if "://" in match else os.path.abspath(match), file_dump, kind, info.size))


def _add_listed(listing_path: str, dump: str | None, listing: ListingSelection, found: list[InputFile],
                ignored: list[str], missing: list[str]) -> None:
    """The selected files of one listing, stat'ed for their sizes; absent ones go to `missing`."""
    wanted: list[tuple[str, str, str]] = []   # (line, uri, kind)
    for line in select_listed(read_listing(listing_path), listing.limit, listing.fraction):
        uri = resolve_listed(listing.base, line)
        kind = file_kind(line.rsplit("/", 1)[-1])
        if kind is None:
            ignored.append(uri)
        else:
            wanted.append((line, uri, kind))
    try:
        infos = stat_files([uri for _, uri, _ in wanted])
    except OSError as e:
        raise InputError(f"cannot look up the files of listing {listing_path}: {e}") from None
    for (line, uri, kind), info in zip(wanted, infos):
        if info.type != pafs.FileType.File:   # missing (or a folder): counted, not fatal
            missing.append(uri)
            continue
        m = DUMP_PATTERN.search(line) or DUMP_PATTERN.search(uri)
        file_dump = dump or (m.group(0) if m else None)
        _require_dump(file_dump, kind, uri)
        found.append(InputFile(uri, file_dump, kind, info.size))


# --- Common Crawl listings ---------------------------------------------------------------


def is_listing(path: str) -> bool:
    return path.lower().endswith(LISTING_SUFFIXES)


def read_listing(path: str) -> list[str]:
    """The non-blank lines of a listing, plain or gzipped (told by its bytes, not its name).

    A listing is small (one short line per file), so it is read at once; one
    that cannot be read or decoded is the user's input error, not a skipped file.
    """
    try:
        fs, p = filesystem(path)
        with fs.open_input_stream(p, compression=None) as f:
            data = f.read()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise InputError(f"listing not found: {path}") from None
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read listing {path}: {e}") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def path_fraction(path: str) -> float:
    """A stable number in [0, 1) for a path: the same on every machine and run."""
    return int.from_bytes(hashlib.blake2b(path.encode(), digest_size=8).digest(), "big") / 2**64


def select_listed(paths: list[str], limit: int | None, fraction: float | None) -> list[str]:
    """Sorted paths, those below `fraction` by `path_fraction`, then the first `limit`.

    The hash is of the listed path, not of where it resolves, so a local mirror
    and the bucket select the same files; a smaller fraction selects a subset
    of a larger one.
    """
    chosen = sorted(set(paths))
    if fraction is not None:
        chosen = [p for p in chosen if path_fraction(p) < fraction]
    return chosen[:limit] if limit is not None else chosen


def resolve_listed(base: str, line: str) -> str:
    """A listed path as readers open it: relative lines join `base`; a URI or absolute path stays."""
    if "://" in line or line.startswith("/"):
        return line
    if "://" not in base:
        return os.path.join(os.path.abspath(base), line)
    return base.rstrip("/") + "/" + line.lstrip("/")


def _root(uri: str) -> str:
    """`s3://bucket/` of `s3://bucket/key` ("" for a local path): one filesystem per root."""
    if "://" not in uri or uri.startswith("file://"):
        return ""
    scheme, rest = uri.split("://", 1)
    return f"{scheme}://{rest.split('/', 1)[0]}/"


def stat_files(uris: list[str]) -> list[pafs.FileInfo]:
    """File infos of many paths, in order, with one filesystem per root.

    An object store answers one request per path (pyarrow sends them one by
    one), so batches of paths are stat'ed by parallel threads.
    """
    by_root: dict[str, list[int]] = {}
    for i, uri in enumerate(uris):
        by_root.setdefault(_root(uri), []).append(i)
    infos: list[pafs.FileInfo | None] = [None] * len(uris)
    for root, indices in by_root.items():
        if root:
            fs, base = filesystem(root)
            paths = [base.rstrip("/") + "/" + uris[i][len(root):] for i in indices]
        else:
            fs, paths = pafs.LocalFileSystem(), [filesystem(uris[i])[1] for i in indices]
        batches = [paths[i:i + _STAT_BATCH] for i in range(0, len(paths), _STAT_BATCH)]
        with ThreadPoolExecutor(min(_METADATA_THREADS, max(1, len(batches)))) as pool:
            results = [info for batch in pool.map(fs.get_file_info, batches) for info in batch]
        for i, info in zip(indices, results):
            infos[i] = info
    return infos


def _require_dump(dump: str | None, kind: str, path: str) -> None:
    if dump is None and kind == "crawl":
        raise InputError(f"cannot tell the dump of {path}: put it in a folder named by the dump "
                         "(e.g. CC-MAIN-2024-10/) or pass --dump NAME")


def plan_splits(files: list[InputFile], split_bytes: int) -> list[Split]:
    """Cut large member-per-record crawl files into byte ranges; other files stay whole."""
    from crawl2model.pipeline.warc import is_splittable

    large = [f.path for f in files if f.kind == "crawl" and f.size > split_bytes]
    # Each check reads two small pieces of the file's head: on an object store that is
    # latency per file, so a dump's thousands of files are checked by parallel threads.
    with ThreadPoolExecutor(min(_METADATA_THREADS, max(1, len(large)))) as pool:
        splittable = {p for p, ok in zip(large, pool.map(is_splittable, large)) if ok}
    splits: list[Split] = []
    for f in files:
        can_split = f.path in splittable
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
