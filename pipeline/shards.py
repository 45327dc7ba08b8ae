"""Curated Parquet shards of about a target size, with the same bytes on every rerun.

Rows arrive at a Spark task sorted by (shard, shuffle key); each shard is
written by one task with pyarrow, named by its shard number, in row groups of
exactly ROW_GROUP_ROWS rows however Spark cut its Arrow batches, so the bytes
depend only on the rows. The driver decides which rows go to which shard
before anything is written: file bytes per raw byte are measured by writing a
sample of the real rows in pieces of the shard's size, and shards are cut
where the modelled size is closest to the target.
"""
from __future__ import annotations

import io
import json
import posixpath
from typing import Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from crawl2model.core.fs import AtomicFile, filesystem
from crawl2model.pipeline.parquet_out import ROW_GROUP_ROWS, plain_type

COMPRESSION = "zstd"
RESULT_SCHEMA = pa.schema([("shard", pa.int32()), ("path", pa.string()), ("documents", pa.int64()),
                           ("bytes", pa.int64()), ("row_groups", pa.string()), ("domains", pa.string()),
                           ("sha256", pa.string())])


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.parquet"


def file_schema(schema: pa.Schema, columns: Sequence[str]) -> pa.Schema:
    return pa.schema([pa.field(c, plain_type(schema.field(c).type)) for c in columns])


class ShardFile:
    """One Parquet file written in row groups of exactly `row_group_rows` rows (the last may be short)."""

    def __init__(self, sink, schema: pa.Schema, row_group_rows: int = ROW_GROUP_ROWS) -> None:
        self.schema, self.rows = schema, row_group_rows
        self.writer = pq.ParquetWriter(sink, schema, compression=COMPRESSION)
        self.pending: list[pa.RecordBatch] = []
        self.n_pending = 0
        self.row_groups: list[int] = []

    def write(self, batch: pa.RecordBatch) -> None:
        self.pending.append(batch.select(self.schema.names).cast(self.schema))
        self.n_pending += batch.num_rows
        if self.n_pending >= self.rows:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        table = pa.Table.from_batches(self.pending, self.schema)
        start = 0
        while table.num_rows - start >= self.rows or (final and start < table.num_rows):
            chunk = table.slice(start, self.rows)
            self.writer.write_table(chunk, row_group_size=self.rows)
            self.row_groups.append(chunk.num_rows)
            start += chunk.num_rows
        self.pending = table.slice(start).to_batches()
        self.n_pending = table.num_rows - start

    def close(self) -> list[int]:
        if self.n_pending:
            self._flush(final=True)
        self.writer.close()
        return self.row_groups


def _file_size(table: pa.Table, schema: pa.Schema) -> int:
    sink = io.BytesIO()
    f = ShardFile(sink, schema)
    for batch in table.to_batches():
        f.write(batch)
    f.close()
    return sink.tell()


def calibrate(sample: pa.Table, columns: Sequence[str], raw_col: str, target: int, rounds: int = 4) -> float:
    """File bytes per raw byte for shards of `target` file bytes made of rows like `sample`.

    Compression depends on shard size below a few MB (one page holds the whole
    column, so short shards find less redundancy) and per-file costs matter, so
    the ratio is measured at the shard's own scale: the sample (in shuffle
    order) is cut into pieces of the raw size the current ratio predicts, the
    pieces are written, and the ratio is updated; a sample smaller than one
    shard is written whole (beyond a few MB the ratio no longer moves).
    """
    schema = file_schema(sample.schema, columns)
    raw = sample.column(raw_col).to_numpy()
    if sample.num_rows == 0 or raw.sum() <= 0:
        return 1.0
    ratio = _file_size(sample, schema) / raw.sum()
    ends = raw.cumsum()
    for _ in range(rounds):
        piece = target / ratio
        n_pieces = int(ends[-1] // piece)
        if n_pieces < 1:
            break
        bounds = [0, *(int(b) + 1 for b in np.searchsorted(ends, piece * np.arange(1, n_pieces + 1)))]
        bounds = sorted(set(min(b, sample.num_rows) for b in bounds))
        pieces = [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]
        size = sum(_file_size(sample.slice(a, b - a), schema) for a, b in pieces)
        ratio = size / float(ends[pieces[-1][1] - 1])
    return max(ratio, 1e-6)


def cut(raw_per_bucket: Sequence[float], target: int, ratio: float) -> list[int]:
    """Shard number of each bucket (buckets in shuffle order): a shard closes at the bucket
    boundary where its modelled file size is closest to `target`."""
    shard, acc, out = 0, 0.0, []
    for raw in raw_per_bucket:
        size = ratio * raw
        if acc > 0 and abs(acc - target) <= abs(acc + size - target):
            shard, acc = shard + 1, 0.0
        acc += size
        out.append(shard)
    return out


def write_shards(batches: Iterable[pa.RecordBatch], folder: str, columns: Sequence[str], shard_col: str,
                 domain_col: str, size_col: str) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: rows sorted by shard -> one file per shard, one result row per shard.

    Each file is an `AtomicFile`, so a retried task never leaves half a shard behind.
    """
    fs, base = filesystem(folder)
    current: dict | None = None

    def finish(state: dict) -> pa.RecordBatch:
        row_groups = state["file"].close()
        out = state["out"]
        out.commit()
        stats = {d: {"documents": n, "units": u} for d, (n, u) in sorted(state["domains"].items())}
        return pa.record_batch([[state["shard"]], [shard_name(state["shard"])], [sum(row_groups)],
                                [out.stream.size], [json.dumps(row_groups)], [json.dumps(stats)],
                                [out.sha256]], schema=RESULT_SCHEMA)

    for batch in batches:
        shards = batch.column(shard_col).to_pylist()
        domains = batch.column(domain_col).to_pylist()
        sizes = batch.column(size_col).to_pylist()
        start = 0
        for i in range(1, batch.num_rows + 1):
            if i < batch.num_rows and shards[i] == shards[start]:
                continue
            if current is not None and current["shard"] != shards[start]:
                yield finish(current)
                current = None
            if current is None:
                out = AtomicFile(fs, posixpath.join(base, shard_name(shards[start])))
                current = {"shard": shards[start], "out": out, "domains": {},
                           "file": ShardFile(out.stream, file_schema(batch.schema, columns))}
            current["file"].write(batch.slice(start, i - start))
            for d, s in zip(domains[start:i], sizes[start:i]):
                n, u = current["domains"].get(d, (0, 0))
                current["domains"][d] = (n + 1, u + s)
            start = i
    if current is not None:
        yield finish(current)


def read_shards(folder: str, columns: Sequence[str] | None = None) -> pa.Table:
    """Every row of a shard folder in manifest order (shard by shard, row groups in order).

    What a consumer of the shards sees; the training side reads token shards
    (`crawl2model tokenize`), so this is for checks and small tools.
    """
    fs, base = filesystem(folder)
    with fs.open_input_stream(posixpath.join(base, "manifest.json")) as f:
        listing = json.loads(f.read())
    tables = [pq.read_table(posixpath.join(base, s["path"]), columns=columns, filesystem=fs)
              for s in listing["shards"]]
    return pa.concat_tables(tables) if tables else pa.table({})
