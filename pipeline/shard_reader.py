"""Streaming reader of remix shards (manifest.json + Parquet) for the stages after remix.

The unit of work is a Parquet row group: row groups are dealt in manifest order
to the consumers (consumer = rank * num_workers + worker), each to the one with
the fewest documents so far, so every document is read by exactly one consumer
per epoch, the consumers' counts differ by less than one row group, and a
consumer reads only its own row groups (no n-fold I/O). Within a consumer,
documents go through an optional shuffle buffer; its choices come from a hash
of (seed, epoch, consumer, step), not from a stateful generator, so the whole
state is a few integers plus the positions of the buffered documents:
`state_dict()` after any document, and a new reader built with that cursor
yields exactly what the first one would have yielded next.

Any filesystem pyarrow knows works with the same code: a local path, a URI
(s3://, gs://, hdfs://), a `pyarrow.fs.FileSystem`, or an fsspec filesystem.
"""
from __future__ import annotations

import hashlib
import heapq
import json
import posixpath
import struct
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import pyarrow.fs as pafs
import pyarrow.parquet as pq

from crawl2model.core.fs import filesystem as resolve_filesystem
from crawl2model.core.fs import sha256_file

CURSOR_VERSION = 1


class ShardChecksumError(ValueError):
    """A shard's bytes do not match the sha256 in manifest.json."""


@dataclass
class _State:
    epoch: int = 0
    unit_pos: int = 0      # index into this consumer's row groups
    row: int = 0           # next row within that row group
    step: int = 0          # shuffle draws made this epoch
    buffer: list[tuple[tuple[int, int], dict]] = field(default_factory=list)  # ((unit, row), document)


def _as_arrow_fs(fs: Any) -> pafs.FileSystem:
    if isinstance(fs, pafs.FileSystem):
        return fs
    return pafs.PyFileSystem(pafs.FSSpecHandler(fs))  # an fsspec filesystem


def _deal(units: list[tuple[int, int, int]], consumers: int) -> list[list[tuple[int, int, int]]]:
    """Row groups (shard, group, rows) in manifest order, each to the consumer with the fewest rows so far
    (ties: the lowest number): every consumer's share is within one row group of the others'."""
    heap = [(0, c) for c in range(consumers)]
    out: list[list[tuple[int, int, int]]] = [[] for _ in range(consumers)]
    for unit in units:
        rows, c = heapq.heappop(heap)
        out[c].append(unit)
        heapq.heappush(heap, (rows + unit[2], c))
    return out


def _draw(*values: int) -> int:
    return int.from_bytes(hashlib.blake2b(struct.pack(f"<{len(values)}q", *values), digest_size=8).digest(), "little")


class ShardReader:
    """Iterate the documents of a shard folder; see the module docstring.

    `epochs=None` repeats forever. Each document is a dict of `columns` (all by default).
    """

    def __init__(self, path: str, *, filesystem: Any = None, columns: Sequence[str] | None = None,
                 rank: int = 0, world_size: int = 1, worker: int = 0, num_workers: int = 1,
                 shuffle_buffer: int = 0, seed: int = 0, epochs: int | None = 1, verify: bool = False,
                 cursor: dict | None = None) -> None:
        if not (0 <= rank < world_size and 0 <= worker < num_workers):
            raise ValueError(f"need 0 <= rank < world_size and 0 <= worker < num_workers, got rank {rank}/"
                             f"{world_size}, worker {worker}/{num_workers}")
        if filesystem is None:
            self.fs, self.root = resolve_filesystem(path)
        else:
            self.fs, self.root = _as_arrow_fs(filesystem), path.rstrip("/")
        with self.fs.open_input_stream(posixpath.join(self.root, "manifest.json")) as f:
            raw = f.read()
        self.manifest = json.loads(raw)
        self.manifest_sha256 = hashlib.sha256(raw).hexdigest()
        self.columns = list(columns) if columns is not None else None
        self.shuffle_buffer, self.seed, self.epochs, self.verify = shuffle_buffer, seed, epochs, verify
        self.consumer, self.consumers = rank * num_workers + worker, world_size * num_workers
        self._identity = {"rank": rank, "world_size": world_size, "worker": worker, "num_workers": num_workers,
                          "seed": seed, "shuffle_buffer": shuffle_buffer, "manifest_sha256": self.manifest_sha256}
        self.units = _deal([(s, g, n) for s, shard in enumerate(self.manifest["shards"])
                            for g, n in enumerate(shard["row_groups"])], self.consumers)[self.consumer]
        self._open: tuple[int, pq.ParquetFile] | None = None
        self._verified: set[int] = set()
        self._rows: tuple[int, list[dict]] | None = None
        self._state = _State()
        if cursor is not None:
            self._restore(cursor)

    @property
    def documents_per_epoch(self) -> int:
        """Documents this consumer yields per epoch."""
        return sum(n for _, _, n in self.units)

    # --- reading ------------------------------------------------------------------------

    def _file(self, shard: int) -> pq.ParquetFile:
        if self._open is None or self._open[0] != shard:
            entry = self.manifest["shards"][shard]
            path = posixpath.join(self.root, entry["path"])
            if self.verify and shard not in self._verified:
                digest = sha256_file(self.fs, path)
                if digest != entry["sha256"]:
                    raise ShardChecksumError(f"{path}: sha256 {digest} != manifest {entry['sha256']}")
                self._verified.add(shard)
            self._open = (shard, pq.ParquetFile(self.fs.open_input_file(path)))
        return self._open[1]

    def _unit_rows(self, pos: int) -> list[dict]:
        if self._rows is None or self._rows[0] != pos:
            shard, group, _ = self.units[pos]
            self._rows = (pos, self._file(shard).read_row_group(group, columns=self.columns).to_pylist())
        return self._rows[1]

    def _pick(self, n: int) -> int:
        st = self._state
        st.step += 1
        return _draw(self.seed, st.epoch, self.consumer, st.step) % n

    def __iter__(self) -> Iterator[dict]:
        while self.epochs is None or self._state.epoch < self.epochs:
            yield from self._epoch()

    def _epoch(self) -> Iterator[dict]:
        st, size = self._state, self.shuffle_buffer
        while st.unit_pos < len(self.units):
            n_rows = self.units[st.unit_pos][2]
            while st.row < n_rows:
                item = ((st.unit_pos, st.row), self._unit_rows(st.unit_pos)[st.row])
                st.row += 1
                if size <= 0:
                    yield item[1]
                elif len(st.buffer) < size:
                    st.buffer.append(item)
                else:
                    i = self._pick(size)
                    out, st.buffer[i] = st.buffer[i], item
                    yield out[1]
            st.unit_pos, st.row = st.unit_pos + 1, 0
        while st.buffer:
            i = self._pick(len(st.buffer))
            st.buffer[i], st.buffer[-1] = st.buffer[-1], st.buffer[i]
            yield st.buffer.pop()[1]
        st.epoch, st.unit_pos, st.row, st.step = st.epoch + 1, 0, 0, 0

    # --- resuming -----------------------------------------------------------------------

    def state_dict(self) -> dict:
        """A JSON-serializable cursor: where this consumer is, after the last document yielded."""
        st = self._state
        return {"version": CURSOR_VERSION, **self._identity, "epoch": st.epoch, "unit_pos": st.unit_pos,
                "row": st.row, "step": st.step, "buffer": [list(ref) for ref, _ in st.buffer]}

    def _restore(self, cursor: dict) -> None:
        if cursor.get("version") != CURSOR_VERSION:
            raise ValueError(f"unsupported cursor version {cursor.get('version')}")
        wrong = {k: (cursor.get(k), v) for k, v in self._identity.items() if cursor.get(k) != v}
        if wrong:
            raise ValueError("cursor was saved by a different reader setup: " +
                             ", ".join(f"{k} {a!r} != {b!r}" for k, (a, b) in wrong.items()))
        refs = [(pos, row) for pos, row in cursor["buffer"]]
        wanted: dict[int, list[int]] = {}
        for pos, row in refs:
            wanted.setdefault(pos, []).append(row)
        docs = {}
        for pos in sorted(wanted):  # each row group read once
            rows = self._unit_rows(pos)
            docs.update({(pos, row): rows[row] for row in wanted[pos]})
        self._state = _State(cursor["epoch"], cursor["unit_pos"], cursor["row"], cursor["step"],
                             [(ref, docs[ref]) for ref in refs])
