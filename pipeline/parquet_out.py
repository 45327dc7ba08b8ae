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


def _write_partition(batches: Iterator[pa.RecordBatch], root: str, partition_by: Sequence[str],
                     file_name: str) -> Iterator[pa.RecordBatch]:
    """Write one task's sorted rows into `root/<col>=<value>/.../<file_name>`, one file per key."""
    fs, base = filesystem(root)
    writer = out = key = None
    files, counts = [], []

    def close() -> None:
        if writer is not None:
            writer.close()
            files.append(out.commit())

    try:
        for batch in batches:
            if not batch.num_rows:
                continue
            data_cols = [c for c in batch.schema.names if c not in partition_by]
            schema = pa.schema([pa.field(c, plain_type(batch.schema.field(c).type)) for c in data_cols])
            keys = list(zip(*(batch.column(c).to_pylist() for c in partition_by))) if partition_by \
                else [()] * batch.num_rows
            start = 0
            for i in range(1, batch.num_rows + 1):
                if i < batch.num_rows and keys[i] == keys[start]:
                    continue
                if keys[start] != key:
                    close()
                    key = keys[start]
                    folder = posixpath.join(base, *(f"{c}={v}" for c, v in zip(partition_by, key)))
                    fs.create_dir(folder, recursive=True)
                    out = AtomicFile(fs, posixpath.join(folder, file_name))
                    writer = pq.ParquetWriter(out.stream, schema, compression="zstd")
                    counts.append(0)
                chunk = batch.slice(start, i - start).select(data_cols).cast(schema)
                writer.write_batch(chunk, row_group_size=ROW_GROUP_ROWS)
                counts[-1] += chunk.num_rows
                start = i
        close()
    except BaseException:
        if writer is not None:
            writer.close()
            out.discard()
        raise
    yield pa.RecordBatch.from_pydict({"file": files, "rows": counts},
                                     schema=pa.schema([("file", pa.string()), ("rows", pa.int64())]))


def write_parquet(df: "DataFrame", root: str, *, partition_by: Sequence[str] = (), sort_by: Sequence[str],
                  num_files: int) -> list[tuple[str, int]]:
    """Write `df` under `root` (hive folders for `partition_by`); returns (file, rows), sorted.

    `sort_by` must identify rows uniquely (e.g. doc_id), or ties make the order,
    and so the bytes, depend on the input layout.
    """
    from pyspark import TaskContext

    partition_by, sort_by = list(partition_by), list(sort_by)

    def write(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        name = f"part-{TaskContext.get().partitionId():05d}.zstd.parquet"
        yield from _write_partition(batches, root, partition_by, name)

    ordered = df.repartition(num_files, *sort_by).sortWithinPartitions(*partition_by, *sort_by)
    rows = ordered.mapInArrow(write, "file string, rows long").collect()
    return sorted((r["file"], r["rows"]) for r in rows)
