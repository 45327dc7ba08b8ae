"""Writing a DataFrame as Parquet with the same bytes on every rerun.

Spark's own writer names files after a random job id and lists column
encodings in JVM hash order, so two runs never write the same bytes. Here
rows are hash-partitioned and sorted by fixed keys, and each task writes its
files with pyarrow, named by partition index: the bytes depend only on the
data, not on the cluster, the number of cores or the input layout.
"""
from __future__ import annotations

import posixpath
from typing import TYPE_CHECKING, Iterator, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from crawl2model.core.fs import AtomicFile, filesystem

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

ROW_GROUP_ROWS = 4096  # a few thousand documents: one Spark input task each downstream


def plain_type(t: pa.DataType) -> pa.DataType:
    """Spark hands Arrow large types; files keep the ordinary ones the document schema uses."""
    if pa.types.is_large_string(t):
        return pa.string()
    if pa.types.is_large_binary(t):
        return pa.binary()
    if pa.types.is_large_list(t):
        return pa.list_(plain_type(t.value_type))
    return t


FILE_COLUMN = "__file"  # which file of `num_files` a row goes to: a hash of its sort key


def _write_partition(batches: Iterator[pa.RecordBatch], root: str, partition_by: Sequence[str],
                     split_by: str | None = None, drop: dict[str, Sequence[str]] | None = None
                     ) -> Iterator[pa.RecordBatch]:
    """Write one task's rows, sorted by (file, [split_by,] *partition_by, *sort_by), into
    `root/[<split value>/]<col>=<value>/.../part-<file>.zstd.parquet`, one file per key; the
    files under a split value leave out its `drop` columns. Yields (side, file, rows) per file.

    A task may hold several files' rows (adaptive execution coalesces small
    partitions) and Spark cuts its Arrow batches wherever it likes, so rows are
    buffered and written in row groups of exactly ROW_GROUP_ROWS: the bytes of a
    file depend on its rows only.
    """
    fs, base = filesystem(root)
    splits = [split_by] if split_by else []
    key_cols = [FILE_COLUMN, *splits, *partition_by]
    writer = out = key = schema = None
    pending: list[pa.RecordBatch] = []
    files, counts, sides = [], [], []

    def flush(final: bool) -> None:
        rows = sum(b.num_rows for b in pending)
        if not rows or (rows < ROW_GROUP_ROWS and not final):
            return
        table = pa.Table.from_batches(pending, schema)
        whole = rows if final else rows - rows % ROW_GROUP_ROWS
        writer.write_table(table.slice(0, whole), row_group_size=ROW_GROUP_ROWS)
        pending[:] = table.slice(whole).to_batches()
        counts[-1] += whole

    def close() -> None:
        if writer is not None:
            flush(final=True)
            pending.clear()
            writer.close()
            files.append(out.commit())

    try:
        for batch in batches:
            if not batch.num_rows:
                continue
            keys = list(zip(*(batch.column(c).to_pylist() for c in key_cols)))
            start = 0
            for i in range(1, batch.num_rows + 1):
                if i < batch.num_rows and keys[i] == keys[start]:
                    continue
                if keys[start] != key:
                    close()
                    key = keys[start]
                    split = key[1:1 + len(splits)]
                    side = split[0] if split else None
                    sides.append(side)
                    left_out = {*key_cols, *(drop or {}).get(side, ())}
                    data_cols = [c for c in batch.schema.names if c not in left_out]
                    folder = posixpath.join(base, *split, *(f"{c}={v}" for c, v in
                                                            zip(partition_by, key[1 + len(splits):])))
                    fs.create_dir(folder, recursive=True)
                    out = AtomicFile(fs, posixpath.join(folder, f"part-{key[0]:05d}.zstd.parquet"))
                    schema = pa.schema([pa.field(c, plain_type(batch.schema.field(c).type)) for c in data_cols])
                    writer = pq.ParquetWriter(out.stream, schema, compression="zstd")
                    counts.append(0)
                pending.append(pa.RecordBatch.from_arrays(
                    [batch.column(c).slice(start, i - start).cast(f.type) for c, f in zip(data_cols, schema)],
                    schema=schema))
                flush(final=False)
                start = i
        close()
    except BaseException:
        if writer is not None:
            writer.close()
            out.discard()
        raise
    yield pa.RecordBatch.from_pydict({"side": sides, "file": files, "rows": counts}, schema=pa.schema(
        [("side", pa.string()), ("file", pa.string()), ("rows", pa.int64())]))


def write_parquet(df: "DataFrame", root: str, *, partition_by: Sequence[str] = (), sort_by: Sequence[str],
                  num_files: int) -> list[tuple[str, int]]:
    """Write `df` under `root` (hive folders for `partition_by`); returns (file, rows), sorted.

    `sort_by` must identify rows uniquely (e.g. doc_id), or ties make the order,
    and so the bytes, depend on the input layout. Each row's file is a hash of
    its `sort_by` values, not the task that happens to hold it.
    """
    return [(f, n) for _, f, n in _write(df, root, list(partition_by), list(sort_by), num_files)]


def write_sides(df: "DataFrame", root: str, side: str, *, drop: dict[str, Sequence[str]] | None = None,
                partition_by: Sequence[str] = (), sort_by: Sequence[str],
                num_files: int) -> dict[str, list[tuple[str, int]]]:
    """`write_parquet` of each value v of the string column `side` to `root/v`, less `drop[v]`'s
    columns: the same files as one write per value (a stage's kept/ and rejected/), from one
    shuffle. Returns (file, rows) per value written."""
    out: dict[str, list[tuple[str, int]]] = {}
    for value, f, n in _write(df, root, list(partition_by), list(sort_by), num_files, side, drop):
        out.setdefault(value, []).append((f, n))
    return out


def _write(df: "DataFrame", root: str, partition_by: list[str], sort_by: list[str], num_files: int,
           split_by: str | None = None, drop: dict[str, Sequence[str]] | None = None) -> list[tuple]:
    from pyspark.sql import functions as F

    splits = [split_by] if split_by else []
    ordered = (df.withColumn(FILE_COLUMN, F.pmod(F.xxhash64(*sort_by), F.lit(num_files)).cast("int"))
                 .repartition(num_files, FILE_COLUMN)
                 .sortWithinPartitions(FILE_COLUMN, *splits, *partition_by, *sort_by))
    rows = ordered.mapInArrow(lambda it: _write_partition(it, root, partition_by, split_by, drop),
                              "side string, file string, rows long").collect()
    return sorted((r["side"], r["file"], r["rows"]) for r in rows)
