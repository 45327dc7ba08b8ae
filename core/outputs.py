"""Stage outputs: claimed by one run, written aside, committed with a fingerprint.

A run first claims the output with a lock file beside it (`.<name>.lock`,
created exclusively, naming host, pid and the run's token); a second run that
finds a live claim stops without touching anything. It writes into a hidden
sibling `.<name>.tmp-<token>`, and only when all of it (data, report, resolved
config) is there writes `_SUCCESS` and renames the folder into place. So a
folder named like the output is either finished or absent; leftovers of a
killed run (a dead claim, its `.tmp-` folder, an unfinished output) are
removed by the next run that claims the output.

`_SUCCESS` holds the fingerprint of the resolved config and of the inputs,
the config itself (so a rerun can say which keys changed) and the list of
files the output holds, each with its size and sha256: readers read what it
lists, and `crawl2model verify` checks the bytes against it.

Object stores cannot rename a folder, so there the run writes straight into
the output's own prefix instead: the claim first clears whatever an abandoned
attempt left there and writes `_STARTED`; `_SUCCESS` (with every file, its
size and checksum) comes last. Readers refuse a folder with `_STARTED` and no `_SUCCESS`,
and read only the files `_SUCCESS` lists, so a half-written attempt is never
read. Outputs that grow in place (a training run's checkpoints) use
`in_place=True`: the same claim and marker, nothing cleared.
"""
from __future__ import annotations

import contextlib
import json
import os
import posixpath
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pyarrow.fs as pafs

from crawl2model.core.errors import ConfigError, InputError, OutputBusyError
from crawl2model.core.fs import (
    CHECKSUM_SUFFIX,
    checksum_sidecar,
    exists,
    filesystem,
    is_hidden,
    is_local,
    is_read_only,
    list_files,
    read_json_from,
    sha256_file,
    write_json,
)

SUCCESS = "_SUCCESS"
STARTED = "_STARTED"  # written first where the output is written in place (object stores)
HEARTBEAT_S = 30.0       # a claim's lock file is refreshed this often
STALE_AFTER_S = 600.0    # a claim from another host not refreshed for this long is dead


def read_success(fs: pafs.FileSystem, path: str) -> dict[str, Any] | None:
    """The `_SUCCESS` marker of a finished output, None if there is none."""
    marker = posixpath.join(path, SUCCESS)
    if not exists(fs, marker):
        return None
    with fs.open_input_stream(marker) as f:
        raw = f.read()
    try:
        value = json.loads(raw or b"{}")
    except json.JSONDecodeError:  # an empty marker written by another tool (Hadoop)
        return {}
    return value if isinstance(value, dict) else {}


def listed_entries(marker: dict[str, Any]) -> list[dict[str, Any]]:
    """The `files` of a `_SUCCESS` marker as {path, size, sha256} entries (older markers list bare names)."""
    return [f if isinstance(f, dict) else {"path": f} for f in marker.get("files", [])]


def committed_files(path: str) -> list[str] | None:
    """The files a finished output lists in `_SUCCESS` (relative paths), None without a list."""
    fs, p = filesystem(path)
    marker = read_success(fs, p)
    if marker is None or "files" not in marker:
        return None
    return [f["path"] for f in listed_entries(marker)]


def verify(path: str) -> tuple[int, list[str]]:
    """(files checked, problems) for a finished output: each file `_SUCCESS` lists must be there
    with its listed size and sha256. Files it does not list are not read by anyone and not checked."""
    fs, p = filesystem(path)
    marker = read_success(fs, p)
    if marker is None:
        raise InputError(f"{path} is not a finished stage output (no {SUCCESS})")
    listed = listed_entries(marker)

    def check(entry: dict[str, Any]) -> str | None:
        file = posixpath.join(p, entry["path"])
        info = fs.get_file_info(file)
        if info.type != pafs.FileType.File:
            return f"{entry['path']}: missing"
        if "size" in entry and info.size != entry["size"]:
            return f"{entry['path']}: {info.size} bytes, {SUCCESS} lists {entry['size']}"
        if "sha256" in entry and sha256_file(fs, file) != entry["sha256"]:
            return f"{entry['path']}: sha256 differs from {SUCCESS}"
        return None

    with ThreadPoolExecutor(max_workers=8) as pool:
        problems = [m for m in pool.map(check, listed) if m]
    return len(listed), problems


def data_files(path: str, suffixes: tuple[str, ...] = (".parquet",)) -> list[str]:
    """The data files of a table or corpus folder (or `path` itself if it is a file), spelled
    like `path`, sorted.

    A stage output (the folder itself, or `kept/`, `rejected/`, ... inside it) holds
    exactly the files its `_SUCCESS` lists: on an object store a folder may also hold
    what an abandoned attempt left. A folder that a run started and never finished is
    refused. Any other folder (a user's own dataset) is every file with one of the
    `suffixes` below it, hidden ones (`.x`, `_x`) aside.
    """
    fs, p = filesystem(path)
    info = fs.get_file_info(p)
    if info.type == pafs.FileType.NotFound:
        raise InputError(f"not found: {path}")
    if info.type == pafs.FileType.File:
        return [path]
    root = p.rstrip("/")
    for owner in (root, posixpath.dirname(root)):
        if is_unfinished(fs, owner):
            raise InputError(f"{path} belongs to an unfinished stage output (no {SUCCESS} in {owner}): "
                             "rerun the stage that writes it")
    listed = _listed_under(fs, root)
    if listed is None:
        listed = [posixpath.relpath(f.path, root) for f in list_files(fs, root)]
    rels = sorted(r for r in listed if r.endswith(suffixes) and not is_hidden(r))
    if not rels:
        raise InputError(f"no {' or '.join(suffixes)} files in {path}")
    return [f"{path.rstrip('/')}/{r}" for r in rels]


def _listed_under(fs: pafs.FileSystem, root: str) -> list[str] | None:
    """Files under `root` that the `_SUCCESS` of `root` or of its stage folder lists (relative to root)."""
    for owner in (root, posixpath.dirname(root)):
        marker = read_success(fs, owner)
        if marker and "files" in marker:
            prefix = posixpath.relpath(root, owner)
            names = [f["path"] for f in listed_entries(marker)]
            if prefix == ".":
                return names
            return [n[len(prefix) + 1:] for n in names if n.startswith(prefix + "/")]
    return None


def is_unfinished(fs: pafs.FileSystem, path: str) -> bool:
    """A stage output that a run started and never finished (killed, or still running)."""
    return exists(fs, posixpath.join(path, STARTED)) and not exists(fs, posixpath.join(path, SUCCESS))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class StageOutput:
    """The output folder of one run: `claim()`, write under `path(...)`, `commit()`."""

    final: str  # as the user gave it (local path or URI)
    overwrite: bool = False
    in_place: bool = False
    token: str = field(default_factory=lambda: secrets.token_hex(4))

    def __post_init__(self) -> None:
        if is_read_only(self.final):
            raise ConfigError(f"cannot write an output to {self.final}: http(s):// is read-only "
                              "(write to a local path or an object store: s3://, gs://, hdfs://)")
        self.fs, self.final_path = filesystem(self.final)
        parent, name = posixpath.split(self.final_path.rstrip("/"))
        self.parent, self.name = parent, name
        self.lock_path = posixpath.join(parent, f".{name}.lock")
        # Written where it will stay: training runs, and every output on an object store.
        self.direct = self.in_place or not is_local(self.fs)
        self.tmp_path = self.final_path if self.direct else posixpath.join(parent, f".{name}.tmp-{self.token}")
        self._heartbeat: threading.Thread | None = None
        self._stop = threading.Event()

    # ------------------------------------------------------------------ state

    def finished(self) -> dict[str, Any] | None:
        """The marker of a finished output at the final path (None when unfinished)."""
        return read_success(self.fs, self.final_path)

    @property
    def done(self) -> bool:
        """True when a finished output exists and must not be recomputed."""
        return not self.overwrite and self.finished() is not None

    @property
    def tmp_uri(self) -> str:
        """The folder being written, spelled the way the user spelled the output (for Spark)."""
        head = self.final.rstrip("/").rsplit("/", 1)[0] if "/" in self.final.rstrip("/") else "."
        return f"{head}/{posixpath.basename(self.tmp_path)}"

    def path(self, *parts: str) -> str:
        """A path inside the folder being written."""
        return posixpath.join(self.tmp_path, *parts)

    # ------------------------------------------------------------------ claim

    def _claim_record(self) -> dict[str, Any]:
        return {"host": socket.gethostname(), "pid": os.getpid(), "token": self.token,
                "started": time.time(), "heartbeat": time.time()}

    def _read_claim(self) -> dict[str, Any] | None:
        try:
            with self.fs.open_input_stream(self.lock_path) as f:
                return json.loads(f.read() or b"{}")
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        except OSError:
            return None if not exists(self.fs, self.lock_path) else {}

    def _claim_alive(self, claim: dict[str, Any]) -> bool:
        if claim.get("host") == socket.gethostname() and isinstance(claim.get("pid"), int):
            return _pid_alive(claim["pid"])
        return time.time() - float(claim.get("heartbeat", 0)) < STALE_AFTER_S

    def _create_lock(self) -> bool:
        """Create the lock file exclusively; False if another run created it first."""
        data = json.dumps(self._claim_record()).encode()
        if is_local(self.fs):
            try:
                fd = os.open(self.lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            return True
        # Object stores have no exclusive create here: write, then read back who won.
        if exists(self.fs, self.lock_path):
            return False
        with self.fs.open_output_stream(self.lock_path) as f:
            f.write(data)
        claim = self._read_claim() or {}
        return claim.get("token") == self.token

    def claim(self) -> str:
        """Claim the output, clear what killed runs left, and return the folder to write into."""
        self.fs.create_dir(self.parent, recursive=True)
        for _ in range(3):
            if self._create_lock():
                break
            claim = self._read_claim()
            if claim is None:
                continue  # released between our two looks
            if claim and self._claim_alive(claim):
                since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(claim.get("started", 0)))
                raise OutputBusyError(
                    f"{self.final} is being written by another run (pid {claim.get('pid')} on "
                    f"{claim.get('host')}, since {since}); wait for it to finish, or remove "
                    f"{self.lock_path} if that run is gone")
            self.fs.delete_file(self.lock_path)  # a dead run's claim
        else:
            raise OutputBusyError(f"could not claim {self.final}: {self.lock_path} keeps reappearing")
        # Holding the claim, every temporary folder of this output is a dead run's.
        for info in self.fs.get_file_info(pafs.FileSelector(self.parent)):
            if info.base_name.startswith(f".{self.name}.tmp-") or info.base_name.startswith(f".{self.name}.old-"):
                self.fs.delete_dir(info.path)
        if exists(self.fs, self.final_path):
            if self.in_place and not self.overwrite:
                if self.finished() is not None:  # growing a finished output: it is unfinished again
                    self.fs.delete_file(posixpath.join(self.final_path, SUCCESS))
            elif self.direct:
                self.fs.delete_dir_contents(self.final_path)  # start afresh, or an abandoned attempt
            elif self.finished() is None:
                self.fs.delete_dir(self.final_path)  # unfinished output of a killed run
        self.fs.create_dir(self.tmp_path, recursive=True)
        if self.direct and not self.in_place:
            write_json(self.fs, self.path(STARTED), self._claim_record())
        self._start_heartbeat()
        return self.tmp_path

    def _start_heartbeat(self) -> None:
        def beat() -> None:
            while not self._stop.wait(HEARTBEAT_S):
                try:
                    record = {**(self._read_claim() or {}), "heartbeat": time.time()}
                    if record.get("token") == self.token:
                        write_json(self.fs, self.lock_path, record)
                except OSError:
                    pass

        self._stop.clear()
        self._heartbeat = threading.Thread(target=beat, name="crawl2model-claim", daemon=True)
        self._heartbeat.start()

    def release(self) -> None:
        """Give up the claim (after commit or abort)."""
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=5)
            self._heartbeat = None
        claim = self._read_claim()
        if claim and claim.get("token") == self.token:
            self.fs.delete_file(self.lock_path)

    # ------------------------------------------------------------------ finish

    def files(self) -> list[dict[str, Any]]:
        """The files written so far, relative to the output folder, with size and sha256.

        A file written through `AtomicFile` brings its checksum in a sidecar (taken
        while writing: an object store's file is never read back); the others
        (reports, configs, plots, models) are small and are hashed here. Outputs
        that grow in place (training runs: checkpoints of many GB, which their own
        loaders check) list sizes only.
        """
        root = self.tmp_path.rstrip("/")
        found = [f for f in list_files(self.fs, root) if posixpath.basename(f.path) not in (SUCCESS, STARTED)]
        sidecars = {f.path for f in found if f.path.endswith(CHECKSUM_SUFFIX)}
        data = [f for f in found if f.path not in sidecars]

        def entry(info: pafs.FileInfo) -> dict[str, Any]:
            side = checksum_sidecar(info.path)
            recorded = read_json_from(self.fs, side) if side in sidecars else {}
            listed = {"path": posixpath.relpath(info.path, root), "size": info.size}
            if recorded.get("size") == info.size:
                return {**listed, "sha256": recorded["sha256"]}
            return listed if self.in_place else {**listed, "sha256": sha256_file(self.fs, info.path)}

        with ThreadPoolExecutor(max_workers=16) as pool:  # one request per file on an object store
            entries = list(pool.map(entry, data))
            list(pool.map(self.fs.delete_file, sorted(sidecars)))
        return entries

    @contextlib.contextmanager
    def local_folder(self) -> Iterator[str]:
        """A local folder whose contents become the output's: the folder being written on a
        local disk; on an object store a temporary folder, uploaded when the block succeeds.
        For libraries that write only local files (fastText, KenLM, tokenizers)."""
        if is_local(self.fs):
            yield self.tmp_path
            return
        with tempfile.TemporaryDirectory(prefix="crawl2model-") as local:
            yield local
            pafs.copy_files(local, self.tmp_path, source_filesystem=pafs.LocalFileSystem(),
                            destination_filesystem=self.fs)

    def commit(self, stage: str, fingerprint: str = "", config: dict[str, Any] | None = None,
               inputs: dict[str, str] | None = None) -> None:
        """Write the marker (last) and move the finished folder into place."""
        marker = {"stage": stage, "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  "fingerprint": fingerprint, "config": config or {}, "inputs": inputs or {},
                  "files": self.files()}
        write_json(self.fs, self.path(SUCCESS), marker)
        try:
            if self.direct:
                if exists(self.fs, self.path(STARTED)):
                    self.fs.delete_file(self.path(STARTED))
                return
            if exists(self.fs, self.final_path):
                old = posixpath.join(self.parent, f".{self.name}.old-{self.token}")
                self.fs.move(self.final_path, old)
                self.fs.move(self.tmp_path, self.final_path)
                self.fs.delete_dir(old)
            else:
                self.fs.move(self.tmp_path, self.final_path)
        finally:
            self.release()

    def abort(self) -> None:
        try:
            if not self.in_place and exists(self.fs, self.tmp_path):
                self.fs.delete_dir(self.tmp_path)  # a failed attempt's files, also on object stores
        finally:
            self.release()
