"""Filesystems: a local path or a URI (s3://, gs://, hdfs://, http(s):// to read) -> a pyarrow filesystem.

Every byte a stage reads or writes outside Spark goes through here, so that
one place decides how a URI maps to a filesystem.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import posixpath
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from crawl2model.core.errors import InputError

# Hadoop's names for S3 (what Spark users write) are the same buckets to pyarrow.
SCHEME_ALIASES = {"s3a": "s3", "s3n": "s3"}
CHECKSUM_SUFFIX = ".sha256"
HTTP_SCHEMES = ("http://", "https://")
GCS_SCHEMES = ("gs://", "gcs://")
GCS_EMULATOR_ENV = "CLOUD_STORAGE_EMULATOR_ENDPOINT"


def normalize_uri(path: str) -> str:
    """`s3a://b/k` -> `s3://b/k`; other paths unchanged."""
    scheme, sep, rest = path.partition("://")
    return f"{SCHEME_ALIASES[scheme]}://{rest}" if sep and scheme in SCHEME_ALIASES else path


def filesystem(path: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path inside it) for a local path or a URI (s3://, s3a://, gs://, hdfs://, https://).

    S3 endpoint, region and credentials come from the standard AWS environment
    variables and config files (AWS_ENDPOINT_URL, AWS_PROFILE, ...), as the AWS SDK reads them;
    GCS's from Google's (GOOGLE_APPLICATION_CREDENTIALS, GOOGLE_CLOUD_PROJECT, and
    CLOUD_STORAGE_EMULATOR_ENDPOINT for an emulator or a private endpoint).
    """
    if path.startswith("file://"):
        path = path[len("file://"):]
    elif path.startswith(HTTP_SCHEMES):
        return http_filesystem(), path  # fsspec's HTTP paths are the URLs themselves
    elif path.startswith(GCS_SCHEMES) and os.environ.get(GCS_EMULATOR_ENV):
        return gcs_emulator(os.environ[GCS_EMULATOR_ENV]), path.split("://", 1)[1]
    elif "://" in path:
        try:
            return pafs.FileSystem.from_uri(normalize_uri(path))
        except (ValueError, OSError) as e:  # pyarrow raises ArrowInvalid (a ValueError) for unknown schemes
            raise InputError(f"cannot open {path}: {e}") from None
    return pafs.LocalFileSystem(), os.path.abspath(path)


@functools.cache
def gcs_emulator(endpoint: str) -> pafs.FileSystem:
    """GCS at `CLOUD_STORAGE_EMULATOR_ENDPOINT` (the Google SDKs' variable), without credentials.

    pyarrow's GCS client does not read that variable itself: it would look for
    credentials on the metadata server and hang where there is none.
    """
    scheme, sep, host = endpoint.partition("://")
    return pafs.GcsFileSystem(anonymous=True, endpoint_override=host if sep else scheme,
                              scheme=scheme if sep else "http", project_id=os.environ.get("GOOGLE_CLOUD_PROJECT"))


@functools.cache
def http_filesystem() -> pafs.FileSystem:
    """Read-only HTTP(S) with ranged reads (`https://data.commoncrawl.org/...`), through fsspec.

    pyarrow has no HTTP filesystem; fsspec's (on aiohttp) answers `get_file_info`
    with HEAD and reads with Range requests, so a split of a remote WARC starts
    at its own bytes and no file is downloaded whole. One per process: it holds
    a connection pool.
    """
    try:
        from fsspec.implementations.http import HTTPFileSystem
    except ImportError as e:
        raise InputError(f"reading http(s):// paths needs fsspec and aiohttp ({e.name} is missing): "
                         "pip install 'crawl2model[data]'") from None

    class RangedHandler(pafs.FSSpecHandler):
        """pyarrow asks fsspec `isfile` before each open, which over HTTP is a GET of the
        whole body; opening asks HEAD for the size anyway (and raises FileNotFoundError)."""

        def open_input_file(self, path: str) -> Any:
            return pa.PythonFile(self.fs.open(path, mode="rb"), mode="r")

        open_input_stream = open_input_file

    return pafs.PyFileSystem(RangedHandler(HTTPFileSystem()))


def is_read_only(path: str) -> bool:
    """Paths no stage can write to (HTTP)."""
    return path.startswith(HTTP_SCHEMES)


def s3_settings(endpoint: str | None = None, region: str | None = None) -> dict[str, str]:
    """Explicit S3 settings as the AWS environment variables every S3 client here reads.

    Set in this process (before any JVM or worker starts, so local Spark workers
    inherit them) and returned, so a cluster's executors can be given the same
    through `spark.executorEnv.*`.
    """
    env = {}
    if endpoint:
        env["AWS_ENDPOINT_URL"] = endpoint
    if region:
        env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = region
    os.environ.update(env)
    return env


def is_local(fs: pafs.FileSystem) -> bool:
    return isinstance(fs, pafs.LocalFileSystem)


def exists(fs: pafs.FileSystem, path: str) -> bool:
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def write_json(fs: pafs.FileSystem, path: str, obj: Any) -> None:
    with fs.open_output_stream(path) as f:
        f.write((json.dumps(obj, indent=2, default=str, ensure_ascii=False) + "\n").encode())


def read_json(path: str) -> Any:
    return read_json_from(*filesystem(path))


def read_json_from(fs: pafs.FileSystem, path: str) -> Any:
    with fs.open_input_stream(path) as f:
        return json.loads(f.read())


def sha256_file(fs: pafs.FileSystem, path: str) -> str:
    """Hex sha256 of a file, streamed: manifests list it so readers can verify shards."""
    h = hashlib.sha256()
    with fs.open_input_stream(path) as f:
        while block := f.read(1 << 22):
            h.update(block)
    return h.hexdigest()


def list_files(fs: pafs.FileSystem, root: str) -> list[pafs.FileInfo]:
    """Every file under `root` (or `root` itself when it is a file), sorted by path."""
    info = fs.get_file_info(root)
    if info.type == pafs.FileType.File:
        return [info]
    if info.type == pafs.FileType.NotFound:
        return []
    found = fs.get_file_info(pafs.FileSelector(root, recursive=True))
    return sorted((f for f in found if f.type == pafs.FileType.File), key=lambda f: f.path)


def total_size(paths: list[str]) -> int:
    """Bytes under `paths` (folders, files, URIs); what cannot be listed counts 0 (its reader reports it)."""
    total = 0
    for path in paths:
        try:
            fs, p = filesystem(path)
            total += sum(f.size or 0 for f in list_files(fs, p))
        except (OSError, ValueError, InputError):
            continue
    return total


def is_hidden(relative: str) -> bool:
    """A path (relative to a folder) that readers skip: any part starting with "." or "_"
    (temporary folders, claims, markers, `_skipped/` side outputs)."""
    return any(part.startswith((".", "_")) for part in relative.split("/") if part not in ("", "."))


class HashingStream:
    """A writable stream that keeps the sha256 and size of what passed through it.

    Writers on object stores cannot read their output back cheaply, so the
    checksum that `_SUCCESS` lists is taken on the way out."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self._hash.update(view)
        self.size += view.nbytes
        return self._stream.write(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self._stream.flush()

    def close(self) -> None:
        self._stream.close()

    @property
    def closed(self) -> bool:
        return self._stream.closed

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def checksum_sidecar(path: str) -> str:
    """Where a committed file's checksum waits for `_SUCCESS` (hidden, so readers skip it)."""
    head, name = posixpath.split(path)
    return posixpath.join(head, f".{name}{CHECKSUM_SUFFIX}")


def write_checksum(fs: pafs.FileSystem, path: str, size: int, sha256: str) -> None:
    with fs.open_output_stream(checksum_sidecar(path)) as f:
        f.write(json.dumps({"size": size, "sha256": sha256}).encode())


class AtomicFile:
    """One file that appears whole or not at all, the same on every filesystem.

    On a local disk it is written aside (`.NAME.<pid>.inprogress`) and renamed
    into place. On an object store an object appears only when its upload
    completes, and a rename is a copy, so it is written to its key directly.
    Its sha256 is taken while writing and left in a hidden sidecar beside it,
    which the stage's commit folds into `_SUCCESS`.
    """

    def __init__(self, fs: pafs.FileSystem, path: str) -> None:
        self.fs, self.path = fs, path
        head, name = posixpath.split(path)
        self.tmp = posixpath.join(head, f".{name}.{os.getpid()}.inprogress") if is_local(fs) else path
        self.stream = HashingStream(fs.open_output_stream(self.tmp))

    @property
    def sha256(self) -> str:
        return self.stream.hexdigest()

    def commit(self) -> str:
        """Close and put the file in place; returns its path."""
        self.stream.close()
        if self.tmp != self.path:
            self.fs.move(self.tmp, self.path)
        write_checksum(self.fs, self.path, self.stream.size, self.sha256)
        return self.path

    def discard(self) -> None:
        """Close and remove what was written (a failed task leaves nothing behind)."""
        if not self.stream.closed:
            self.stream.close()
        if exists(self.fs, self.tmp):
            self.fs.delete_file(self.tmp)
