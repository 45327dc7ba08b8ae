"""Reading a stage's table back, with Spark or with pyarrow.

A stage folder holds its Parquet partitions (`dump=<id>/`) next to
report.json, config.json and plots. Neither Spark nor pyarrow would read such
a folder as it is (a JSON file is not Parquet, and a file beside partition
folders breaks partition discovery), so readers list the data paths first.
A user's own Parquet dataset (files, or hive folders, only) reads the same way.
"""
from __future__ import annotations

import posixpath
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.dataset as ds

from crawl2model.core.errors import InputError
from crawl2model.core.fs import filesystem, is_local
from crawl2model.core.log import get_logger
from crawl2model.core.outputs import data_files

log = get_logger("tables")

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType


def parquet_files(path: str) -> list[str]:
    """The Parquet files of a table, spelled like `path`, sorted: what its stage's `_SUCCESS`
    lists (an unfinished output is refused), or a user's own Parquet dataset."""
    return data_files(path, (".parquet",))


def read_table(spark: "SparkSession", paths: str | list[str]) -> "DataFrame":
    """One or more tables as one DataFrame, with hive partition columns (e.g. `dump`).

    Local tables are read by Spark itself; tables on object stores are read by
    pyarrow inside the tasks, so no Hadoop connector (hadoop-aws) is needed.
    Several tables are unioned by column name; a column one of them lacks is
    null there.
    """
    frames = []
    for p in [paths] if isinstance(paths, str) else paths:
        files = parquet_files(p)
        if is_local(filesystem(p)[0]):
            # basePath keeps hive partition columns (dump=...) of a folder; a single file has none.
            reader = spark.read if files == [p] else spark.read.option("basePath", p)
            if (schema := _data_schema(files[0], p)) is not None:
                reader = reader.schema(schema)
            frames.append(reader.parquet(*files))
        else:
            frames.append(_read_with_arrow(spark, p, files))
    if not frames:
        raise InputError("no input table given")
    table = frames[0]
    for other in frames[1:]:
        table = table.unionByName(other, allowMissingColumns=True)
    return table


def local_rows(paths: str | list[str], most_files: int = 1000) -> int | None:
    """Rows of local Parquet tables, summed from their footers: no Spark job (a count job is most of
    a second on a small input). None where a table is on an object store or has more than
    `most_files` files, whose footers Spark's own count reads in parallel."""
    import pyarrow.parquet as pq

    files = []
    for p in [paths] if isinstance(paths, str) else paths:
        if not is_local(filesystem(p)[0]):
            return None
        files += parquet_files(p)
    if len(files) > most_files:
        return None
    return sum(pq.read_metadata(f).num_rows for f in files)


def require_columns(df: "DataFrame", columns: tuple[str, ...], stage: str, paths: list[str]) -> None:
    """A user's table without the columns a stage reads: one line naming the input and what it lacks."""
    missing = set(columns) - set(df.columns)
    if missing:
        raise InputError(f"{stage}: {', '.join(paths)} lacks document columns: {', '.join(sorted(missing))}")


def _data_schema(file: str, base: str) -> "StructType | None":
    """The Spark schema of a local file's columns, from its footer; None where Spark must infer it.

    Without a schema Spark reads that same footer in a job of its own (one task), which in a
    fresh session costs most of a second of cold JVM before any work starts. Partition columns
    (`dump=...`) are left out, so Spark still infers them from the paths as it would have.
    Fields are nullable, as Spark makes every field of a file source.
    """
    from pyspark.sql.pandas.types import from_arrow_schema

    keys = _partition_values(base, file) if file != base else {}
    try:
        return from_arrow_schema(pa.schema([f.with_nullable(True) for f in _file_fields(file, keys)]))
    except (OSError, TypeError, ValueError, pa.ArrowException) as e:  # a type PySpark cannot map: Spark's own way
        log.debug(f"schema of {file} left to Spark: {e}")
        return None


def _file_fields(file: str, partition_keys, fs=None) -> list[pa.Field]:
    """A Parquet file's columns from its footer, less the hive partition columns."""
    import pyarrow.parquet as pq

    return [f for f in pq.read_schema(file, filesystem=fs) if f.name not in partition_keys]


def _partition_values(base: str, file: str) -> dict[str, str]:
    """`dump=CC-MAIN-2024-10/part-0.parquet` -> {"dump": "CC-MAIN-2024-10"} (hive layout)."""
    parts = posixpath.relpath(file, base).split("/")[:-1]
    return dict(part.split("=", 1) for part in parts if "=" in part)


def _read_with_arrow(spark: "SparkSession", path: str, files: list[str]) -> "DataFrame":
    """A table read file by file with pyarrow inside Spark tasks (one task per file)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    fs, base = filesystem(path)
    inner = [filesystem(f)[1] for f in files]
    keys = list(_partition_values(base, inner[0]))
    schema = pa.schema(_file_fields(inner[0], keys, fs) + [pa.field(k, pa.string()) for k in keys])

    def read(batches):
        import pyarrow.parquet as pq

        fs, _ = filesystem(path)
        for batch in batches:
            for file in batch.column(0).to_pylist():
                table = pq.read_table(file, filesystem=fs)
                for key, value in _partition_values(base, file).items():
                    table = table.append_column(key, pa.array([value] * table.num_rows, pa.string()))
                yield from table.select(schema.names).cast(schema).to_batches()

    packs = _pack_like_spark(spark, [(f, i.size) for f, i in zip(inner, fs.get_file_info(inner))])
    tasks = spark.sparkContext.parallelize(packs, len(packs)).flatMap(lambda pack: [(f,) for f in pack])
    listing = spark.createDataFrame(tasks, "file string")
    return listing.mapInArrow(read, from_arrow_schema(schema))


def _spark_bytes(text: str) -> int:
    """Spark's byte strings: `134217728b`, `128m`, `4MB` (binary units, as Spark reads them)."""
    value = text.strip().lower().removesuffix("b").removesuffix("i")
    units = {"k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
    return int(float(value[:-1]) * units[value[-1]]) if value and value[-1] in units else int(value)


def _pack_like_spark(spark: "SparkSession", files: list[tuple[str, int]]) -> list[list[str]]:
    """Files grouped into tasks the way Spark's own Parquet scan groups them (FilePartition).

    So a table reads into the same partitions, in the same order, from an object
    store as from a local disk, and what later stages write per partition is
    the same bytes. (Spark also splits a file larger than the split size; here a
    file is never split, so such files give other partitions, not other rows.)
    """
    conf = spark.conf
    max_bytes = _spark_bytes(conf.get("spark.sql.files.maxPartitionBytes", "128m"))
    open_cost = _spark_bytes(conf.get("spark.sql.files.openCostInBytes", "4m"))
    cores = int(conf.get("spark.sql.files.minPartitionNum", None) or spark.sparkContext.defaultParallelism)
    total = sum(size + open_cost for _, size in files)
    split = min(max_bytes, max(open_cost, total // max(cores, 1)))
    packs: list[list[str]] = []
    current: list[str] = []
    size_so_far = 0
    for path, size in sorted(files, key=lambda f: -f[1]):  # stable: ties keep path order
        if current and size_so_far + size > split:
            packs.append(current)
            current, size_so_far = [], 0
        current.append(path)
        size_so_far += size + open_cost
    if current:
        packs.append(current)
    return packs


def arrow_dataset(path: str) -> ds.Dataset:
    """The same table for pyarrow (tests, small tools)."""
    fs, p = filesystem(path)
    files = [filesystem(f)[1] for f in parquet_files(path)]
    if len(files) == 1 and files[0] == p:
        return ds.dataset(files[0], filesystem=fs, format="parquet")
    return ds.dataset(files, filesystem=fs, format="parquet",
                      partitioning=ds.partitioning(flavor="hive"), partition_base_dir=p)
